/* The gateway's process-wide caches of cluster state, shared by every worker loop:
 *
 *   - the cluster map (data nodes: address, failure domain, state, capacity; an epoch), kept
 *     as an immutable, reference-counted snapshot. One refresher on one loop fetches it from
 *     lode-meta (CLUSTER_MAP_GET) every refresh interval and whenever a worker reports trouble
 *     with a node (gw_cluster_kick), and publishes each new snapshot with a pointer swap.
 *     Readers on any thread take a reference (gw_cluster_map_get) and drop it when done
 *     (gw_cluster_map_put); a snapshot is freed when its last holder lets go, so a reader
 *     never sees a map change under its feet and a request can keep the map it started with.
 *
 *   - the access-key cache: access key id -> secret and user (ACCESS_KEY_GET), with a TTL,
 *     a short negative cache for unknown keys, an LRU bound, and one fetch per key per loop
 *     however many requests miss on it at once.
 *
 * Threading: gw_cluster and gw_keys are thread-safe (one mutex each, held only for pointer
 * swaps and table operations, never across I/O or callbacks). Their libuv parts belong to
 * loops: the refresher to the loop given to gw_cluster_start; a key fetch to the loop of the
 * meta client the lookup passed, where its callback runs.
 */
#ifndef LODE_GATEWAY_CLUSTER_H
#define LODE_GATEWAY_CLUSTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/meta_async.h"
#include "meta.pb-c.h"

struct cmn_metrics;

/* ---- the cluster map ----------------------------------------------------------------- */

struct gw_map_node {
    uint32_t nid;                     /* never 0; never reused by meta */
    Lode__NodeState state;
    const char *address;              /* chunk-service host:port, never empty */
    const char *failure_domain;
    const char *data_address;         /* fan-out transport address; "" when none */
    const char *rdma_address;         /* rc (rdma_cm) address; "" when none */
    bool dc;                          /* runs DC initiators (takes dc pushes) */
    uint64_t capacity_bytes;
    uint64_t used_bytes;
};

/* An immutable snapshot. Every field is read-only for its holders; nodes and their strings
 * live as long as the snapshot. */
struct gw_cluster_map {
    uint64_t epoch;                   /* meta's epoch (changes with nodes and their states) */
    uint64_t fetched_ms;              /* monotonic ms (cmn_mono_ms) when it was fetched */
    size_t n_nodes;
    const struct gw_map_node *nodes;  /* sorted by nid, nids distinct */
    atomic_uint refs_;                /* private: holders */
};

/* Whether new chunks may go to the node (UP only: a SUSPECT node's heartbeats are late,
 * a DRAINING one is being emptied). */
bool gw_map_node_writable(const struct gw_map_node *n);
/* Whether reading chunks from it is worth trying (UP, SUSPECT or DRAINING). */
bool gw_map_node_readable(const struct gw_map_node *n);

/* Builds a snapshot (one reference, the caller's) from meta's answer. Refuses a node with
 * nid 0, a repeated nid or an empty, overlong (>= 256 bytes) or malformed address:
 * LODE_EBADMSG with the reason in err; *out is then NULL. -ENOMEM. `pb` is only read. */
int gw_cluster_map_from_proto(const Lode__ClusterMap *pb, uint64_t fetched_ms,
                              struct gw_cluster_map **out, struct cmn_err *err);

/* The node with this nid, or NULL. Points into map (valid while the reference is held).
 * O(log n). */
const struct gw_map_node *gw_cluster_map_find(const struct gw_cluster_map *map, uint32_t nid);

/* One more reference to a snapshot the caller holds; returns map. */
struct gw_cluster_map *gw_cluster_map_hold(struct gw_cluster_map *map);
/* Drops a reference (NULL is fine); the last one frees the snapshot. Any thread. */
void gw_cluster_map_put(struct gw_cluster_map *map);
/* References held right now (for tests and diagnostics; racy by nature). */
unsigned gw_cluster_map_refs(const struct gw_cluster_map *map);

struct gw_cluster;

struct gw_cluster_config {
    uint64_t refresh_ms;              /* 0 = 2000 (config map-refresh) */
    uint64_t kick_gap_ms;             /* least time between fetches that kicks cause; 0 = 250 */
    uint32_t call_timeout_ms;         /* one CLUSTER_MAP_GET, retries included; 0 = 5000 */
    struct cmn_metrics *metrics;      /* optional: lode_gateway_map_* are registered there */
};

/* Creates the shared map holder (no map yet, refresher not running). Returns 0, -ENOMEM,
 * or LODE_ECONFIG when metrics registration fails. */
int gw_cluster_create(const struct gw_cluster_config *cfg, struct gw_cluster **out);

/* Starts the refresher on `loop` (call from that loop's thread): a fetch at once, then every
 * refresh_ms. `ma` must be a meta client of the same loop; it is borrowed until the stop
 * callback has run. Returns 0, -EALREADY (started before) or a libuv error. */
int gw_cluster_start(struct gw_cluster *c, uv_loop_t *loop, struct cmn_meta_async *ma);

/* Stops the refresher (call from its loop's thread). `cb` (may be NULL) runs on a later loop
 * iteration once its handles are closed and a fetch in flight has completed (closing the
 * meta client completes it at once). Published maps stay readable. For a refresher never
 * started (no loop to defer to), cb runs before this returns. */
void gw_cluster_stop(struct gw_cluster *c, void (*cb)(void *data), void *data);

/* Frees the holder and drops its reference to the current map (snapshots still held by
 * readers stay valid). The refresher must be stopped (or never started). */
void gw_cluster_destroy(struct gw_cluster *c);

/* A reference to the current snapshot, or NULL while no map has been fetched yet (callers
 * then fail with "cluster map not yet known", retryable). Any thread; release with
 * gw_cluster_map_put. */
struct gw_cluster_map *gw_cluster_map_get(struct gw_cluster *c);

/* Increases with every publish; lets a per-loop user keep its own reference and take a new
 * one only when this changed (one atomic load instead of a lock per use). Any thread. */
uint64_t gw_cluster_generation(const struct gw_cluster *c);

/* Makes `map` current; takes over the caller's reference (map must not be NULL). The
 * refresher uses it; tests and tools may too. Wakes gw_cluster_wait_ready. Any thread. */
void gw_cluster_publish(struct gw_cluster *c, struct gw_cluster_map *map);

/* Asks the refresher for a fetch soon (at most one per kick_gap_ms, however many kicks):
 * for workers that saw a node refuse connections or time out. Any thread; ignored when the
 * refresher is not running. */
void gw_cluster_kick(struct gw_cluster *c);

/* Whether a map has been published. Any thread. */
bool gw_cluster_ready(struct gw_cluster *c);

/* Blocks the calling thread until a map has been published: 0, or LODE_ETIMEOUT after
 * timeout_ms (err, may be NULL, then says why: the last fetch error). Never call it from the
 * refresher's loop thread, which must run for the map to arrive (use gw_cluster_ready and
 * the loop there). */
int gw_cluster_wait_ready(struct gw_cluster *c, uint32_t timeout_ms, struct cmn_err *err);

struct gw_cluster_stats {
    uint64_t fetches;                 /* CLUSTER_MAP_GET answered with a usable map */
    uint64_t failures;                /* fetches that failed (meta unreachable, bad map) */
    uint64_t kicks;                   /* gw_cluster_kick calls that reached the refresher */
    uint64_t epoch;                   /* of the current map; 0 when none */
};
void gw_cluster_stats(struct gw_cluster *c, struct gw_cluster_stats *out);

/* ---- the access-key cache ------------------------------------------------------------ */

/* Limits lode-meta applies to users and keys. */
#define GW_KEY_ACCESS_MAX 128
#define GW_KEY_SECRET_MAX 128
#define GW_KEY_USER_MAX 64

/* A lookup's answer. Holds a copy of the secret: wipe it (gw_key_wipe) once used. */
struct gw_key {
    int status;                       /* 0; LODE_ENOACCESSKEY (unknown or malformed key); or
                                         why meta could not answer (cmn_meta_async_transient
                                         statuses, -ENOMEM, LODE_ECLOSED...): retryable */
    char user[GW_KEY_USER_MAX + 1];
    char secret[GW_KEY_SECRET_MAX + 1];
    size_t secret_len;
    char message[160];                /* why, when status != 0; never holds the secret */
};

/* Zeroes the whole answer (secret included). */
void gw_key_wipe(struct gw_key *key);

struct gw_keys;

struct gw_keys_config {
    uint64_t ttl_ms;                  /* how long a fetched key is trusted (> 0) */
    uint64_t negative_ttl_ms;         /* how long "unknown" is remembered; 0 = not at all */
    size_t max_entries;               /* known keys kept (>= 1) */
    size_t max_negative;              /* unknown keys kept, apart (>= 1 when negative_ttl) */
    unsigned max_pending;             /* fetches in flight, all loops together (>= 1) */
    uint32_t fetch_timeout_ms;        /* one ACCESS_KEY_GET, retries included (> 0) */
    uint64_t (*clock_ms)(void *clock_data); /* monotonic ms; NULL = cmn_mono_ms */
    void *clock_data;
    struct cmn_metrics *metrics;      /* optional: lode_gateway_key_cache_* */
};

#define GW_KEYS_CONFIG_DEFAULT                                                               \
    {.ttl_ms = 60000, .negative_ttl_ms = 5000, .max_entries = 10000, .max_negative = 2500,  \
     .max_pending = 1024, .fetch_timeout_ms = 5000}

struct gw_keys_req;
typedef void (*gw_keys_cb)(struct gw_keys_req *req);

/* One lookup, embedded in the caller's request; `data` is the caller's. */
struct gw_keys_req {
    void *data;
    gw_keys_cb cb;
    struct gw_key key;                /* the answer, filled before cb runs (or at a HIT) */
    /* private */
    struct gw_keys_req *next_;
    struct gw_keys_fetch *fetch_;
};

/* Returns 0, -EINVAL (a bad setting), -ENOMEM, or LODE_ECONFIG (metrics). */
int gw_keys_create(const struct gw_keys_config *cfg, struct gw_keys **out);

/* Frees the cache, wiping every secret. No fetch may be in flight: close the meta clients
 * used for lookups first (that completes their fetches, waiters getting LODE_ECLOSED). */
void gw_keys_destroy(struct gw_keys *k);

#define GW_KEYS_HIT 1

/* Looks `access_key` (len bytes, not necessarily NUL-terminated) up. `ma` is the meta client
 * of the calling thread's loop; req->cb must be set. Returns
 *   GW_KEYS_HIT: the answer is in req->key now (a cached key, a cached "unknown", or a
 *                malformed key id answered LODE_ENOACCESSKEY without asking meta); cb
 *                will not run;
 *   0:           a fetch is under way (or joined: one ACCESS_KEY_GET per key per loop);
 *                cb runs exactly once on ma's loop, on a later iteration, with the answer in
 *                req->key, unless gw_keys_cancel is called first. req must stay valid
 *                until then;
 *   -EAGAIN:     max_pending fetches are already in flight (answer 503 SlowDown);
 *   -ENOMEM, or the error of cmn_meta_async_call (e.g. LODE_ECLOSED): cb will not run.
 * Failures to reach meta are answered through cb (status set) and not cached. */
int gw_keys_lookup(struct gw_keys *k, struct cmn_meta_async *ma, const char *access_key,
                   size_t len, struct gw_keys_req *req);

/* Withdraws a pending lookup (call on its loop): cb will not run. The fetch goes on and its
 * answer is cached. Harmless on a request not pending. */
void gw_keys_cancel(struct gw_keys_req *req);

/* Forgets a cached key (e.g. after a signature mismatch with a cached secret, so the next
 * lookup asks meta). Any thread. */
void gw_keys_invalidate(struct gw_keys *k, const char *access_key, size_t len);

struct gw_keys_stats {
    uint64_t hits;                    /* answered from a cached key */
    uint64_t negative_hits;           /* answered from a cached "unknown" */
    uint64_t fetches;                 /* ACCESS_KEY_GET calls made */
    uint64_t coalesced;               /* lookups that joined a fetch in flight */
    uint64_t fetch_errors;            /* fetches without an answer from meta */
    uint64_t evictions;               /* entries dropped for room (not expiry) */
    size_t entries;                   /* known keys cached now */
    size_t negative_entries;          /* unknown keys cached now */
    unsigned pending;                 /* fetches in flight now */
};
void gw_keys_stats(struct gw_keys *k, struct gw_keys_stats *out);

#endif
