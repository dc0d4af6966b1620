/* The fan-out planner of an RDMA/tcp GET: which data node writes which bytes of the object
 * range into which offset of the client's window, and which stripes the gateway must serve
 * itself. Plus the per-client in-flight cap the pushes are scheduled against.
 *
 * For an object range [start, end) whose byte `start` lands at window offset buf_off:
 *   - stripe by stripe, the data chunks holding bytes of the range are "needed";
 *   - when every needed data chunk of a stripe is on a readable node (nid != 0 and the
 *     caller's readable(nid) says yes), each of those chunks' bytes in the range become
 *     pieces {chunk_id, chunk_offset, length, buf_offset} of the chunk's node, cut at
 *     max_piece bytes;
 *   - otherwise the stripe's part of the range is a "local" range: the gateway reads it
 *     (decoding from parity) and writes it itself;
 *   - with k = 1 (replication: chunks 0..m are copies) any readable copy serves the stripe;
 *     the copies are tried in a rotation that starts at (stripe + spread) mod (1 + m), so
 *     stripes, and requests with different `spread`, spread over the copies.
 * Every byte of [start, end) is in exactly one piece or one local range, and buf_offset =
 * buf_off + (object offset - start) throughout. Parity chunks are never read remotely with
 * k > 1. A multipart object is planned part by part, each with its own offsets.
 *
 * Pure: the only side effects are the allocations of the returned plan and the calls to
 * readable(). Not thread-safe for one plan; separate plans are independent.
 */
#ifndef LODE_GATEWAY_FANOUT_PLAN_H
#define LODE_GATEWAY_FANOUT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "gateway/stripe.h"

/* Default cap on pieces + local ranges in one plan (about 32 MiB of memory at most while it
 * is built, 15 MiB kept): a 4 GiB window in 1 MiB pieces is 4096 of them. */
#define GW_FO_MAX_ENTRIES_DEFAULT ((size_t)1 << 18)

/* One ChunkRef of the layout. nid 0: not stored (a zero-length chunk of a short stripe), or
 * unknown; such a chunk never serves bytes. */
struct gw_fo_chunk {
    uint32_t nid;
    uint8_t id[16];
};

/* Whether node `nid` (never 0) may be asked to push now: up in the cluster view and with a
 * live data session for this client. */
typedef bool (*gw_fo_readable_fn)(void *ctx, uint32_t nid);

struct gw_fo_input {
    struct gw_geom geom;                /* of the object or part (gw_geom_check must pass) */
    const struct gw_fo_chunk *chunks;   /* n_stripes * (k + m) refs, stripe-major: k data
                                         * then m parity; borrowed for the call only */
    uint64_t n_stripes;                 /* must equal gw_geom_stripes(&geom) */
    uint64_t start, end;                /* the object range [start, end), end <= size */
    uint64_t buf_off;                   /* window offset of byte `start` */
    gw_fo_readable_fn readable;
    void *readable_ctx;
    uint32_t max_piece;                 /* >= 1: largest piece handed to a node */
    uint64_t spread;                    /* replica rotation for k = 1 (a request counter) */
    size_t max_entries;                 /* pieces + local ranges; 0: the default above */
};

/* Bytes one node pushes: chunk bytes [chunk_off, chunk_off + len) to window offset buf_off.
 * stripe and chunk say where they came from, for a fallback when the node fails. */
struct gw_fo_piece {
    uint8_t chunk_id[16];
    uint64_t chunk_off;
    uint32_t len;                       /* 1..max_piece */
    uint64_t buf_off;
    uint64_t stripe;
    unsigned chunk;                     /* index in the stripe's refs (a copy for k = 1) */
};

/* The pieces of one node: pieces[first .. first + count), ascending buf_off. */
struct gw_fo_source {
    uint32_t nid;
    size_t first, count;
    uint64_t bytes;                     /* sum of the pieces' len */
};

/* Part of a stripe the gateway serves itself: object bytes [obj_off, obj_off + len) to
 * window offset buf_off. */
struct gw_fo_local {
    uint64_t stripe;
    uint64_t obj_off, len;
    uint64_t buf_off;
};

/* A plan. Owned by the caller once built; free it with gw_fo_plan_free(). */
struct gw_fo_plan {
    struct gw_fo_source *sources;       /* ascending nid, each with >= 1 piece */
    size_t n_sources;
    struct gw_fo_piece *pieces;         /* grouped by source */
    size_t n_pieces;
    struct gw_fo_local *locals;         /* ascending obj_off, one per stripe */
    size_t n_locals;
    uint64_t remote_bytes, local_bytes; /* sum to end - start */
};

/* Builds the plan of in into *out (zeroed first). Returns 0; -EINVAL with a message for an
 * invalid geometry, a chunk count that does not match it, a range outside the object,
 * buf_off + (end - start) wrapping, max_piece 0, or a NULL chunks/readable where needed;
 * LODE_ETOOLARGE when the plan would exceed max_entries (read in smaller ranges); -ENOMEM.
 * On failure *out is empty and owns nothing. An empty range gives an empty plan. */
int gw_fo_plan_build(const struct gw_fo_input *in, struct gw_fo_plan *out, struct cmn_err *err);

/* Frees what a plan owns and empties it; an empty or zeroed plan is fine. */
void gw_fo_plan_free(struct gw_fo_plan *p);

/* A batch of source `src`'s pieces for one FANOUT_PUSH: starting at piece `from` (an index
 * within the source, 0..count), as many consecutive pieces as fit in max_bytes and
 * max_count, but always at least one while any remain (a piece larger than max_bytes goes
 * alone). Returns the number of pieces (0 when from >= count) and their bytes in *bytes.
 * max_count 0 means no count limit. */
size_t gw_fo_batch(const struct gw_fo_plan *p, size_t src, size_t from, uint64_t max_bytes,
                   size_t max_count, uint64_t *bytes);

/* ---- per-client in-flight cap ----
 * One per client (keyed by its session, or by the token's GID for dc), shared by all the
 * client's requests on one event loop; the caller provides any locking. Typical use:
 *   n = gw_fo_batch(plan, src, next[src], cap, max_count, &bytes);
 *   if (n && gw_fo_sched_take(&client->sched, bytes)) { push; next[src] += n; }
 *   ... and gw_fo_sched_done(&client->sched, bytes) when that push answers (or fails). */
struct gw_fo_sched {
    uint64_t cap;                       /* 0: no cap */
    uint64_t inflight;
};

void gw_fo_sched_init(struct gw_fo_sched *s, uint64_t cap);

/* Admits len bytes when inflight + len <= cap, or when nothing is in flight (so a batch
 * larger than the cap still goes, alone, and nothing waits forever). Returns whether it was
 * admitted; inflight grows by len then. */
bool gw_fo_sched_take(struct gw_fo_sched *s, uint64_t len);

/* Returns len admitted bytes (their push answered or failed). Returning more than is in
 * flight is a caller bug: inflight stops at 0 and false is returned. */
bool gw_fo_sched_done(struct gw_fo_sched *s, uint64_t len);

#endif
