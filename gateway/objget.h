/* The object read pipeline: bytes [offset, offset + length) of an object (single-part or
 * multipart) fetched from data nodes and delivered in order, with bounded memory, on one
 * libuv loop.
 *
 * Flow control (push with credit): the reader keeps up to `window` stripes in flight or
 * buffered. Each stripe's needed bytes are gathered into one buffer and handed to `on_data`
 * as soon as the stripe and every earlier one are complete. The slice stays valid, and
 * keeps its place in the window, until the caller returns it with gw_objget_consumed()
 * (typically from the socket write's completion callback, so a slow client stops the reads:
 * zero-copy into gw_req_write). Consumption is counted in bytes, in delivery order.
 *
 * Per stripe only the needed byte ranges of the data chunks are read (CHUNK_GET with offset
 * and length); with replication (k = 1) from one copy. Degraded reads: a data chunk whose
 * node the cluster map says is not readable is skipped up front; one whose GET fails
 * (transport failure, time-out, node on hold, LODE_ECORRUPT, LODE_ENOCHUNK, ...) is rebuilt
 * from the same byte range of k surviving chunks (data or parity; a chunk shorter than the
 * range reads as zeroes past its end) with gw_ec. Chunks answered LODE_ECORRUPT or
 * LODE_ENOCHUNK are reported to meta (CORRUPT_REPORT, reason "gateway read") so repair finds
 * them. Every byte delivered was verified by its node (decoded bytes come from verified
 * chunks). More than m chunks of a stripe unavailable: the read fails with
 * LODE_EUNAVAILABLE. A layout inconsistent with its geometry fails with LODE_ECORRUPT.
 *
 * Errors can come after bytes were delivered (the S3 layer then cuts the connection, since
 * the response head is gone): `on_done` reports them.
 *
 * Memory: buffered bytes (stripe buffers plus degraded-read scratch) stay at or below
 * window * (2k + m) * chunk_size (k, m, chunk_size of the largest part), and at or below
 * window * k * chunk_size while no chunk is missing. gw_objget_stats() reports the gauge
 * and its high-water mark. With on_segs, bytes waiting in pipes take the place of stripe
 * buffer bytes (the buffer is kept for what a pipe cannot take and for degraded stripes,
 * which are read back out of the pipes and decoded in memory); a reader holds at most
 * window * k pipes, and the process at most a quarter of its descriptor limit in them.
 *
 * Threading: the reader belongs to the loop it was created on; calls and callbacks are on
 * that loop's thread. Callbacks never run from inside a gw_objget_* call.
 */
#ifndef LODE_GATEWAY_OBJGET_H
#define LODE_GATEWAY_OBJGET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/meta_async.h"
#include "gateway/cluster.h"
#include "gateway/nodepool.h"
#include "meta.pb-c.h"

#define GW_OBJGET_WINDOW_DEFAULT 3u
#define GW_OBJGET_WINDOW_MAX 64u
#define GW_OBJGET_TIMEOUT_DEFAULT 10000u /* ms per CHUNK_GET */
#define GW_OBJGET_SPLICE_MIN (64u << 10)  /* smaller pieces are not worth a pipe */

struct gw_objget;
struct cmn_counter;

/* The next `len` (>= 1) bytes of the range, in order. `p` stays valid until these bytes are
 * returned with gw_objget_consumed() or the reader is closed. */
typedef void (*gw_objget_data_cb)(void *data, const uint8_t *p, size_t len);
/* A piece of a delivered stripe: `len` bytes at `p`, or (fd >= 0) `len` bytes waiting in
 * the pipe whose read end is fd, to be moved out (splice(2), read(2)) by the caller. */
struct gw_objget_seg {
    int fd;
    const uint8_t *p;
    size_t len;
};
/* The next `total` bytes of the range, in order, as n segments (cfg.on_segs). Memory stays
 * valid, and pipes open, until these bytes are returned with gw_objget_consumed(); the
 * caller must have taken exactly seg.len bytes out of each pipe by then. */
typedef void (*gw_objget_segs_cb)(void *data, const struct gw_objget_seg *segs, unsigned n,
                                  size_t total);
/* The read ended: status 0 after every byte of the range was delivered, or the error that
 * stopped it (message valid during the call only). Runs exactly once unless the reader is
 * closed first. Slices delivered before stay valid until consumed or closed. */
typedef void (*gw_objget_done_cb)(void *data, int status, const char *message);

struct gw_objget_config {
    uv_loop_t *loop;
    struct gw_nodepool *pool;           /* of this loop; borrowed until close */
    struct cmn_meta_async *meta;        /* for CORRUPT_REPORT; NULL = do not report */
    struct gw_cluster_map *map;         /* node states; a reference of its own is taken */
    const Lode__ObjectRecord *record;   /* borrowed: must outlive the reader. record->parts
                                           non-empty: multipart (each part's layout and
                                           size, in order); else record->layout */
    uint64_t offset, length;            /* within record->size; a part read is a range */
    unsigned window;                    /* stripes ahead, 1..GW_OBJGET_WINDOW_MAX; 0 = 3 */
    uint32_t timeout_ms;                /* per CHUNK_GET; 0 = GW_OBJGET_TIMEOUT_DEFAULT */
    struct cmn_counter *degraded;       /* optional: += 1 per stripe read degraded */
    gw_objget_data_cb on_data;          /* required unless on_segs is set */
    /* Optional, replaces on_data: chunk bytes are moved from the node sockets into pipes
     * (page references, no copy through user space) where the kernel allows, and delivered
     * as pipe segments; pieces under GW_OBJGET_SPLICE_MIN, degraded stripes and what a pipe
     * cannot take come as memory segments. */
    gw_objget_segs_cb on_segs;
    gw_objget_done_cb on_done;          /* required */
    void *data;
};

/* Creates a reader and starts fetching. Returns 0 and *out; or, with err set and nothing
 * to free: -EINVAL (missing argument), -ERANGE (range outside the object), LODE_ECORRUPT
 * (the record's sizes and layouts disagree), -ENOMEM. An empty range completes with
 * on_done(0) on a later loop iteration. */
int gw_objget_create(const struct gw_objget_config *cfg, struct gw_objget **out,
                     struct cmn_err *err);

/* Returns `len` delivered bytes (oldest first); their slices are invalid afterwards. */
void gw_objget_consumed(struct gw_objget *g, size_t len);

/* Stops (NULL is fine): no callback runs after this returns; every slice becomes invalid.
 * GETs in flight finish in the background; keep the pool open until then (closing the
 * pool completes them). */
void gw_objget_close(struct gw_objget *g);

struct gw_objget_stats {
    uint64_t delivered;                 /* bytes handed to on_data */
    uint64_t stripes;                   /* stripes completed */
    uint64_t degraded_stripes;          /* of which rebuilt from survivors */
    uint64_t chunk_gets;                /* CHUNK_GETs issued */
    uint64_t corrupt_reported;          /* chunks reported to meta */
    uint64_t spliced;                   /* bytes delivered in pipes (on_segs) */
    size_t buffered;                    /* bytes allocated now */
    size_t buffered_max;                /* high-water mark */
    size_t buffer_limit;                /* window * (2k + m) * chunk_size */
};
void gw_objget_stats(const struct gw_objget *g, struct gw_objget_stats *out);

#endif
