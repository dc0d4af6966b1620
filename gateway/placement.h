/* Chunk placement: which nodes receive the chunks of a new stripe.
 *
 * Rules, for every stripe:
 *   - its chunks go to distinct failure domains (so distinct nodes): losing a whole domain
 *     costs a stripe at most one chunk;
 *   - only nodes in state UP with at least the chunk's bytes free are chosen; SUSPECT,
 *     DOWN, DRAINING, REMOVED and UNKNOWN nodes never receive new chunks;
 *   - each eligible domain is included with probability proportional to its free bytes
 *     (the sum over its eligible nodes), capped at 1, and within a chosen domain a node is
 *     drawn in proportion to its free bytes. Over many stripes a node therefore receives
 *     chunks in proportion to its free space (exactly, while no domain holds more than 1/n
 *     of the free bytes), which fills nodes at the same relative rate and pulls utilisation
 *     together;
 *   - which chunk index (data or parity) lands on which chosen node is random, so the read
 *     load of data chunks spreads too.
 * Domains are drawn by systematic sampling with probabilities proportional to size over a
 * random order of the domains, in exact integer arithmetic.
 *
 * Placement works on an immutable snapshot of the cluster map (struct gw_place_map), built
 * once per map epoch and shared read-only by every thread; free bytes are those the map
 * reports (the nodes' last heartbeats), so the snapshot is not charged for chunks placed
 * since. The random source is passed in: the same snapshot, request and random sequence
 * always give the same answer (tests rely on it), whatever the order nodes were listed in.
 * No I/O, no clocks, no global state.
 */
#ifndef LODE_GATEWAY_PLACEMENT_H
#define LODE_GATEWAY_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "gateway/ec.h"

/* Limits of a snapshot. */
#define GW_PLACE_MAX_NODES 16384u
#define GW_PLACE_MAX_DOMAIN_LEN 255u

/* Node states, numbered as lode.NodeState in common/proto/meta.proto, so a state converts
 * by a cast. */
enum gw_node_state {
    GW_NODE_UNKNOWN = 0,
    GW_NODE_UP = 1,
    GW_NODE_SUSPECT = 2,
    GW_NODE_DOWN = 3,
    GW_NODE_DRAINING = 4,
    GW_NODE_REMOVED = 5,
};

/* What placement needs of a lode.NodeInfo. */
struct gw_node_info {
    uint32_t nid;               /* >= 1; unique */
    const char *domain;         /* failure domain, NUL-terminated, at most 255 bytes; an empty
                                 * one counts as a domain of its own for this node */
    enum gw_node_state state;
    uint64_t capacity;          /* bytes */
    uint64_t used;              /* bytes; used >= capacity means full */
};

/* A caller-supplied random source: next(ctx) returns 64 uniformly random bits. Placement
 * makes a bounded number of calls per request (about 2 per domain plus 2 per chunk). */
struct gw_rand {
    uint64_t (*next)(void *ctx);
    void *ctx;
};

/* A ready-made source: splitmix64 over the uint64_t that ctx points to (the seed; advanced
 * by each call). Not for secrets. One state per thread. */
uint64_t gw_rand_splitmix(void *ctx);

/* An immutable snapshot of the cluster map, indexed for placement. */
struct gw_place_map;

/* Builds a snapshot from n nodes (copied: `nodes` and the domain strings may go away
 * afterwards). Returns 0 and *out (free with gw_place_map_free), -EINVAL with a message (nid
 * 0 or repeated, domain too long or NULL, more than GW_PLACE_MAX_NODES nodes, an unknown
 * state) or -ENOMEM. An empty map is valid (every placement then fails). The snapshot is
 * read-only afterwards: any number of threads may place on it at once. */
int gw_place_map_new(const struct gw_node_info *nodes, size_t n, struct gw_place_map **out,
                     struct cmn_err *err);

/* NULL is fine. */
void gw_place_map_free(struct gw_place_map *map);

size_t gw_place_map_nodes(const struct gw_place_map *map);
size_t gw_place_map_domains(const struct gw_place_map *map);

/* The failure domain of node `nid` (the snapshot's copy, valid as long as the snapshot), or
 * NULL when the snapshot does not know the node. */
const char *gw_place_node_domain(const struct gw_place_map *map, uint32_t nid);

/* One placement request. */
struct gw_place_req {
    uint32_t chunks;            /* mask of the chunk indexes (0..GW_EC_MAX_N-1) to place,
                                 * e.g. gw_stripe_stored(): absent chunks get no node */
    uint64_t chunk_bytes;       /* room each chosen node must have (the stripe's largest
                                 * chunk, i.e. the length of chunk 0) */
    const uint32_t *avoid_nids; /* never choose these nodes (e.g. failed writes of this
                                 * request); unknown nids are ignored */
    size_t n_avoid_nids;
};

/* Chooses nodes for the chunks in req->chunks: out[i] is the nid for each chunk i in the
 * mask and 0 for every other i < GW_EC_MAX_N (out has GW_EC_MAX_N entries). Returns 0;
 * LODE_ENOSPACE with a message ("need 6 failure domains with an UP node that has 1048576
 * bytes free, 4 available") when too few domains qualify: the S3 layer answers
 * XLodeStorageFull or ServiceUnavailable; -EINVAL for an empty or out-of-range mask; or
 * -ENOMEM (scratch space in proportion to the snapshot's size). out is untouched on error. */
int gw_place_stripe(const struct gw_place_map *map, const struct gw_place_req *req,
                    struct gw_rand rnd, uint32_t out[GW_EC_MAX_N], struct cmn_err *err);

/* A replacement node for chunk `index` of a stripe whose chunks are on stripe_nids[0..n-1]
 * (0 for absent chunks): for a retry after a failed chunk write, or to repair a lost chunk.
 * Never a domain that holds another chunk of the stripe, never stripe_nids[index] itself,
 * never a node in avoid_nids; the domain of the failed node is allowed (through another of
 * its nodes). Same eligibility and weighting as gw_place_stripe(). Returns 0 and *out;
 * LODE_ENOSPACE when no domain qualifies; LODE_ENONODE when another chunk's node is not in
 * the snapshot (its domain is unknown, so distinctness cannot be guaranteed); -EINVAL for a
 * bad index or n; -ENOMEM. */
int gw_place_replace(const struct gw_place_map *map, const uint32_t *stripe_nids, unsigned n,
                     unsigned index, uint64_t chunk_bytes, const uint32_t *avoid_nids,
                     size_t n_avoid_nids, struct gw_rand rnd, uint32_t *out,
                     struct cmn_err *err);

/* How many failure domains could take a chunk of chunk_bytes now (an UP node with that much
 * free), for gw_layout_fit_domains() and for status output. */
unsigned gw_place_usable_domains(const struct gw_place_map *map, uint64_t chunk_bytes);

#endif
