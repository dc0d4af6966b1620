/* The object write pipeline: one object (or one multipart part) of known size, cut into
 * stripes, erasure-coded and written to data nodes, on one libuv loop, with bounded memory.
 *
 * Life of a put:
 *   gw_objput_create()   chooses the layout (gw_layout_choose with the policy given, or a
 *                        narrower one when nodes are down, see "Degraded writes"), takes a
 *                        reference to the cluster map;
 *   gw_objput_write()... copies body bytes into the stripe being filled; a full stripe (or
 *                        the last, short one) is encoded and its stored chunks go out as
 *                        parallel CHUNK_PUTs straight from the stripe buffer (no copy);
 *   gw_objput_finish()   after the last byte: `done` runs once every stripe is durable,
 *                        with the layout to commit;
 *   gw_objput_close()    always, last: after a success it only frees the handle (the chunks
 *                        belong to the layout the caller now owns); otherwise it cancels the
 *                        put and queues every chunk written or possibly written for garbage
 *                        collection (GC_ENQUEUE, reason "aborted put").
 *
 * Memory: at most `window` stripe buffers exist at once, each (k + m) * chunk_size bytes
 * (the one being filled included). When all are busy, write() takes fewer bytes than
 * offered (possibly 0) and `ready` runs once a buffer is free again: the caller stops
 * reading its socket meanwhile. gw_objput_stats() reports the gauge and its high-water mark.
 *
 * Failures of one chunk: a transport failure, LODE_ENOSPACE, LODE_EUNAVAILABLE (node on hold)
 * or LODE_ENONODE is retried on a replacement node (gw_place_replace: a failure domain no
 * other chunk of the stripe uses), at most GW_OBJPUT_RETRIES times per chunk; then the whole
 * object fails. A chunk put answered with a transport failure may still have been stored:
 * that (node, chunk) pair is queued for collection at once, so the retry leaves no orphan
 * behind.
 *
 * Errors handed to `done` (and returned by write() once the put has failed):
 *   LODE_ENOSPACE      not enough failure domains with room (S3: XLodeStorageFull, 507);
 *   LODE_EUNAVAILABLE  nodes failed and retries were exhausted, or no cluster map (S3:
 *                      ServiceUnavailable, 503, retryable);
 *   -EINVAL            more bytes written than the size announced, or bad arguments;
 *   -ENOMEM.
 *
 * Degraded writes (policy): a stripe needs as many distinct failure domains as it stores
 * chunks. When fewer usable domains (an UP node with room) exist than the policy's k + m
 * and `allow_degraded` is set, the object is written with the same m and k' = domains - m
 * (gw_layout_fit_domains): it still survives any m losses, at a higher storage overhead.
 * Below m + 1 usable domains the put fails with LODE_ENOSPACE. For 6 nodes in 6 domains and
 * 4+2: 6 up -> 4+2; 5 up -> 3+2; 4 up -> 2+2; 3 up -> 1+2 (three replicas); 2 or fewer ->
 * refused. Small objects (replicated 1+m) need m + 1 domains in every case.
 *
 * Threading: a handle belongs to the loop it was created on; every call and callback is on
 * that loop's thread. Callbacks never run from inside a gw_objput_* call.
 */
#ifndef LODE_GATEWAY_OBJPUT_H
#define LODE_GATEWAY_OBJPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/err.h"
#include "common/meta_async.h"
#include "gateway/cluster.h"
#include "gateway/nodepool.h"
#include "gateway/stripe.h"
#include "meta.pb-c.h"

#define GW_OBJPUT_RETRIES 2u            /* replacement nodes tried per chunk */
#define GW_OBJPUT_WINDOW_DEFAULT 4u     /* stripe buffers per put */
#define GW_OBJPUT_WINDOW_MAX 64u
#define GW_OBJPUT_TIMEOUT_DEFAULT 30000u /* ms per CHUNK_PUT */

struct gw_objput;

/* The put failed or succeeded. status 0: `layout` is the object's layout, now owned by the
 * caller (free it with gw_layout_free, or hand it to an ObjectRecord / PartInfo and free it
 * with that after packing: see gw_layout_free). status < 0: layout is NULL and `message`
 * says why (valid during the call only). Runs at most once per handle. */
typedef void (*gw_objput_done_cb)(void *data, int status, const char *message,
                                  Lode__Layout *layout);
/* A stripe buffer became free after write() took fewer bytes than offered: call write()
 * again. Runs only after such a short write, at most once per short write. */
typedef void (*gw_objput_ready_cb)(void *data);

struct gw_objput_config {
    uv_loop_t *loop;
    struct gw_nodepool *pool;           /* of this loop; borrowed until close */
    struct cmn_meta_async *meta;        /* of this loop, for GC_ENQUEUE; borrowed likewise */
    struct gw_cluster_map *map;         /* a reference of its own is taken */
    struct gw_layout_policy policy;     /* k, m, max chunk size, small threshold */
    bool allow_degraded;                /* narrow k when domains are missing (see above) */
    uint64_t size;                      /* exact object/part size, 0..GW_OBJECT_MAX */
    uint64_t seed;                      /* placement randomness (any value; vary it) */
    unsigned window;                    /* stripe buffers, 1..GW_OBJPUT_WINDOW_MAX; 0 = 4 */
    uint32_t timeout_ms;                /* per CHUNK_PUT; 0 = GW_OBJPUT_TIMEOUT_DEFAULT */
    gw_objput_done_cb done;             /* required */
    gw_objput_ready_cb ready;           /* required */
    void *data;                         /* passed to the callbacks */
};

/* Creates a put. Returns 0 and *out; or, with err set and nothing to free:
 *   -EINVAL (missing loop/pool/meta/map/callback, size above GW_OBJECT_MAX, bad policy),
 *   LODE_ENOSPACE (too few usable failure domains, even degraded),
 *   -ENOMEM. */
int gw_objput_create(const struct gw_objput_config *cfg, struct gw_objput **out,
                     struct cmn_err *err);

/* The layout chosen at create (k and m may be narrower than the policy's when degraded). */
void gw_objput_scheme(const struct gw_objput *op, unsigned *k, unsigned *m,
                      uint32_t *chunk_size);

/* Offers body bytes. Returns how many were taken (0..len): fewer than len when every stripe
 * buffer is busy, and `ready` will run. Returns the put's error (< 0) once it has failed,
 * -EINVAL when the bytes would exceed the size announced or after finish. Writing 0 bytes
 * is allowed. */
ssize_t gw_objput_write(struct gw_objput *op, const void *data, size_t len);

/* Declares the end of the body. Returns 0 (`done` will run on a later loop iteration),
 * -EINVAL when fewer bytes than the size were written (the put is then failed: close it),
 * or the put's error when it already failed (done has run or will run with it). */
int gw_objput_finish(struct gw_objput *op);

/* Ends the put (NULL is fine). If `done` has not delivered a layout, the put is aborted:
 * chunk puts still in flight are waited for in the background and every chunk stored or
 * possibly stored is queued for collection (GC_ENQUEUE, reason "aborted put"). No callback
 * runs after this returns. The pool and meta client must stay open until the background
 * work completes: close them (which completes their calls) only after closing every put. */
void gw_objput_close(struct gw_objput *op);

struct gw_objput_stats {
    uint64_t written;                   /* body bytes taken */
    uint64_t stripes_done;              /* stripes whose chunks are all durable */
    uint64_t chunk_puts;                /* CHUNK_PUTs issued (retries included) */
    uint64_t retries;                   /* chunks re-placed after a failure */
    size_t buffered;                    /* stripe buffer bytes allocated now */
    size_t buffered_max;                /* high-water mark of `buffered` */
    size_t buffer_limit;                /* window * (k + m) * chunk_size */
};
void gw_objput_stats(const struct gw_objput *op, struct gw_objput_stats *out);

/* Queues every stored chunk of `layout` for collection (GC_ENQUEUE with `reason`), for a
 * put whose layout meta refused (OBJECT_PUT / PART_PUT failed) or an overwritten layout.
 * The request is packed before this returns (layout may be freed at once); the outcome is
 * only logged. Returns 0, 0 for a layout without chunks, or the error of
 * cmn_meta_async_call (the chunks are then not queued: log them). */
int gw_objput_discard(struct cmn_meta_async *meta, const Lode__Layout *layout,
                      const char *reason);

/* Frees a layout delivered by `done` (NULL is fine). Never call it on a layout unpacked by
 * protobuf-c. To store it in an ObjectRecord for packing, point record.layout at it and
 * reset record.layout to NULL before the record is freed by other means. */
void gw_layout_free(Lode__Layout *layout);

#endif
