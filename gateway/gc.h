/* The garbage collector: deletes from their nodes the chunks lode-meta has queued for
 * collection (overwritten and deleted objects, aborted uploads, replaced parts, failed
 * puts), then removes them from the queue.
 *
 * A pass, on one loop: GC_LIST a batch (after the last sequence seen), CHUNK_DELETE each
 * chunk on its node through a nodepool (`parallel` at a time), GC_ACK the sequences that are
 * done, and go on with the next batch until the queue has been walked once. Per entry:
 *   - delete answered 0 or LODE_ENOCHUNK (already gone): done, acknowledged;
 *   - node REMOVED from the cluster (gone for good, its chunks with it): acknowledged;
 *   - node DOWN, not in the map, on hold after failures, or the delete failed: left queued,
 *     retried by a later pass;
 *   - a malformed entry (no chunk, an id that is not 16 bytes): acknowledged with a warning,
 *     since no pass could ever act on it.
 * Passes run every `interval_ms` once started, and on demand (gw_gc_run).
 *
 * Several gateways may run a collector against one cluster: deletes and acknowledgements
 * are idempotent, so concurrent collectors are safe, only wasteful (each deletes what the
 * others delete). Enable it on one or two gateways; a lease in meta can make it exclusive
 * later.
 */
#ifndef LODE_GATEWAY_GC_H
#define LODE_GATEWAY_GC_H

#include <stdint.h>
#include <uv.h>

#include "common/meta_async.h"
#include "gateway/cluster.h"
#include "gateway/nodepool.h"

struct cmn_metrics;
struct cmn_counter;
struct cmn_gauge;
struct gw_gc;

/* The collector's metrics, owned by the registry they were registered in. */
struct gw_gc_metrics {
    struct cmn_counter *deleted;       /* lode_gateway_gc_collected_total */
    struct cmn_counter *failed;        /* lode_gateway_gc_failed_total */
    struct cmn_counter *skipped;       /* lode_gateway_gc_skipped_total */
    struct cmn_counter *gone;          /* lode_gateway_gc_removed_node_total */
    struct cmn_counter *passes;        /* lode_gateway_gc_passes_total */
    struct cmn_counter *pass_errors;   /* lode_gateway_gc_pass_errors_total */
    struct cmn_gauge *seen;            /* lode_gateway_gc_queue_seen */
};

/* Registers the collector's metrics in m (once per process, before any thread updates
 * metrics of m). Returns 0 or -ENOMEM. */
int gw_gc_metrics_register(struct cmn_metrics *m, struct gw_gc_metrics *out);

struct gw_gc_config {
    uv_loop_t *loop;
    struct cmn_meta_async *meta;       /* of this loop; borrowed until the close callback */
    struct gw_nodepool *pool;          /* of this loop; borrowed likewise */
    struct gw_cluster *cluster;        /* node states */
    uint64_t interval_ms;              /* pause between two passes (> 0) */
    uint32_t batch;                    /* entries per GC_LIST, 1..10000 */
    unsigned parallel;                 /* CHUNK_DELETEs in flight, >= 1 */
    uint32_t delete_timeout_ms;        /* one CHUNK_DELETE (> 0) */
    uint32_t meta_timeout_ms;          /* one GC_LIST or GC_ACK, retries included (> 0) */
    /* Optional: lode_gateway_gc_*. Registration is not thread-safe, so a collector created
     * on a worker thread while others run takes `handles` registered beforehand
     * (gw_gc_metrics_register); `metrics` (registered here) suits a single-threaded process.
     * `handles` wins when both are set. */
    struct cmn_metrics *metrics;
    const struct gw_gc_metrics *handles; /* borrowed; outlives the collector */
};

#define GW_GC_CONFIG_DEFAULT                                                                 \
    {.interval_ms = 10000, .batch = 1000, .parallel = 16, .delete_timeout_ms = 10000,       \
     .meta_timeout_ms = 10000}

/* What one pass did. */
struct gw_gc_pass {
    int status;                        /* 0, or what cut the pass short (a meta error,
                                          LODE_EUNAVAILABLE without a cluster map,
                                          LODE_ECLOSED when closed) */
    char message[256];
    uint64_t listed;                   /* queue entries seen */
    uint64_t deleted;                  /* chunks deleted (or found already gone) */
    uint64_t gone;                     /* entries of removed nodes, acknowledged */
    uint64_t skipped;                  /* left queued: node down, unknown or on hold */
    uint64_t failed;                   /* deletes that failed (left queued) */
    uint64_t acked;                    /* entries removed from the queue */
};

typedef void (*gw_gc_pass_cb)(void *data, const struct gw_gc_pass *pass);

/* Returns 0, -EINVAL (a missing or out-of-range setting), -ENOMEM. */
int gw_gc_create(const struct gw_gc_config *cfg, struct gw_gc **out);

/* Starts the periodic passes: the first after interval_ms. Returns 0 or -EALREADY. */
int gw_gc_start(struct gw_gc *gc);

/* Runs one pass now (besides the periodic ones). Returns 0 (cb, may be NULL, runs once when
 * the pass ends, on a later loop iteration at the earliest), -EBUSY while a pass is running,
 * or LODE_ECLOSED once closing. */
int gw_gc_run(struct gw_gc *gc, gw_gc_pass_cb cb, void *data);

/* The last completed pass (zeroed before the first). */
void gw_gc_last_pass(const struct gw_gc *gc, struct gw_gc_pass *out);

/* Stops: no new pass starts; a pass in flight ends at its next step (its cb gets
 * LODE_ECLOSED). `cb` (may be NULL) runs on a later loop iteration once every call the
 * collector made has completed and its timer is closed; closing the meta client and the pool
 * after this completes their calls at once. Then the collector's memory is freed. */
void gw_gc_close(struct gw_gc *gc, void (*cb)(void *data), void *data);

#endif
