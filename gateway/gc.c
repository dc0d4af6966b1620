/* The garbage collector (see gc.h).
 *
 * One pass at a time; within a pass one batch at a time:
 *
 *   LIST(after cursor) -> empty: pass over
 *                      -> entries: classify each; deletes `parallel` at a time
 *                         -> all settled: ACK the done ones (if any)
 *                            -> batch was full: cursor = its last seq, LIST again
 *                            -> otherwise: pass over
 *   any meta error: pass over with that status (what was deleted but not acknowledged is
 *   deleted again next time: harmless)
 *
 * Entries left queued are behind the cursor, so a pass walks the queue once and the next
 * pass (from seq 0) retries them.
 */
#include "gateway/gc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc_methods.h"

#define LOG_CTX "gc"
#define BATCH_MAX 10000                   /* lode-meta's GC_LIST limit */
#define REASON_MAX 200

struct slot {
    struct gw_chunk_req req;
    struct gw_gc *gc;
    uint64_t seq;
};

struct gw_gc {
    struct gw_gc_config cfg;
    uv_timer_t timer;
    bool timer_open, started, closing;
    void (*close_cb)(void *data);
    void *close_data;

    /* The pass in progress. */
    bool running;
    gw_gc_pass_cb cb;
    void *cb_data;
    struct gw_gc_pass pass, last;
    uint64_t cursor;
    bool meta_busy;                       /* a GC_LIST or GC_ACK in flight */
    Lode__GcListResponse *batch;
    size_t next;                          /* next entry of batch to settle */
    unsigned outstanding;                 /* deletes in flight */
    struct gw_cluster_map *map;           /* held for the batch */
    uint64_t *acks;
    size_t n_acks;
    struct slot *slots;
    struct slot **free_slots;
    unsigned n_free;
    bool failing;                         /* the last pass failed (logged once) */

    struct cmn_counter *m_deleted, *m_failed, *m_skipped, *m_gone, *m_passes, *m_pass_errors;
    struct cmn_gauge *m_seen;
};

static void count(struct cmn_counter *c, uint64_t n)
{
    if (c && n)
        cmn_counter_add(c, n);
}

int gw_gc_metrics_register(struct cmn_metrics *m, struct gw_gc_metrics *out)
{
    out->deleted = cmn_metrics_counter(m, "lode_gateway_gc_collected_total", NULL,
                                       "Queued chunks deleted from their nodes (or found "
                                       "already gone)");
    out->failed = cmn_metrics_counter(m, "lode_gateway_gc_failed_total", NULL,
                                      "Chunk deletes that failed (the entry stays queued)");
    out->skipped = cmn_metrics_counter(m, "lode_gateway_gc_skipped_total", NULL,
                                       "Queue entries left for later: node down, unknown or "
                                       "on hold");
    out->gone = cmn_metrics_counter(m, "lode_gateway_gc_removed_node_total", NULL,
                                    "Queue entries of removed nodes, dropped from the queue");
    out->passes = cmn_metrics_counter(m, "lode_gateway_gc_passes_total", NULL,
                                      "Collector passes over the queue");
    out->pass_errors = cmn_metrics_counter(m, "lode_gateway_gc_pass_errors_total", NULL,
                                           "Passes cut short by an error (meta unreachable, "
                                           "no cluster map)");
    out->seen = cmn_metrics_gauge(m, "lode_gateway_gc_queue_seen", NULL,
                                  "Queue entries the last complete pass saw");
    return out->deleted && out->failed && out->skipped && out->gone && out->passes &&
                   out->pass_errors && out->seen
               ? 0
               : -ENOMEM;
}

static int use_metrics(struct gw_gc *gc, const struct gw_gc_config *cfg)
{
    struct gw_gc_metrics reg;
    const struct gw_gc_metrics *h = cfg->handles;
    if (!h) {
        if (!cfg->metrics)
            return 0;
        if (gw_gc_metrics_register(cfg->metrics, &reg) != 0)
            return -ENOMEM;
        h = &reg;
    }
    gc->m_deleted = h->deleted;
    gc->m_failed = h->failed;
    gc->m_skipped = h->skipped;
    gc->m_gone = h->gone;
    gc->m_passes = h->passes;
    gc->m_pass_errors = h->pass_errors;
    gc->m_seen = h->seen;
    return 0;
}

int gw_gc_create(const struct gw_gc_config *cfg, struct gw_gc **out)
{
    *out = NULL;
    if (!cfg || !cfg->loop || !cfg->meta || !cfg->pool || !cfg->cluster || !cfg->interval_ms ||
        cfg->batch == 0 || cfg->batch > BATCH_MAX || cfg->parallel == 0 ||
        !cfg->delete_timeout_ms || !cfg->meta_timeout_ms)
        return -EINVAL;
    struct gw_gc *gc = calloc(1, sizeof(*gc));
    if (!gc)
        return -ENOMEM;
    gc->cfg = *cfg;
    gc->acks = calloc(cfg->batch, sizeof(*gc->acks));
    gc->slots = calloc(cfg->parallel, sizeof(*gc->slots));
    gc->free_slots = calloc(cfg->parallel, sizeof(*gc->free_slots));
    if (!gc->acks || !gc->slots || !gc->free_slots ||
        use_metrics(gc, cfg) != 0) {
        free(gc->acks);
        free(gc->slots);
        free(gc->free_slots);
        free(gc);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < cfg->parallel; i++) {
        gc->slots[i].gc = gc;
        gc->free_slots[gc->n_free++] = &gc->slots[i];
    }
    uv_timer_init(cfg->loop, &gc->timer);
    gc->timer.data = gc;
    gc->timer_open = true;
    *out = gc;
    return 0;
}

static void maybe_closed(struct gw_gc *gc)
{
    if (!gc->closing || gc->running || gc->timer_open)
        return;
    void (*cb)(void *) = gc->close_cb;
    void *data = gc->close_data;
    free(gc->acks);
    free(gc->slots);
    free(gc->free_slots);
    free(gc);
    if (cb)
        cb(data);
}

static void on_timer(uv_timer_t *t);

static void batch_release(struct gw_gc *gc)
{
    if (gc->batch)
        lode__gc_list_response__free_unpacked(gc->batch, NULL);
    gc->batch = NULL;
    gw_cluster_map_put(gc->map);
    gc->map = NULL;
    gc->next = 0;
    gc->n_acks = 0;
}

static void pass_end(struct gw_gc *gc, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pass_end(struct gw_gc *gc, int status, const char *fmt, ...)
{
    struct gw_gc_pass *p = &gc->pass;
    p->status = status;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->message, sizeof(p->message), fmt, ap);
        va_end(ap);
    }
    batch_release(gc);
    gc->running = false;
    gc->last = *p;
    count(gc->m_deleted, p->deleted);
    count(gc->m_failed, p->failed);
    count(gc->m_skipped, p->skipped);
    count(gc->m_gone, p->gone);
    count(gc->m_passes, 1);
    if (status != 0 && status != LODE_ECLOSED) {
        count(gc->m_pass_errors, 1);
        if (!gc->failing)
            LOG_WARN(LOG_CTX, "pass cut short: %s", p->message);
        gc->failing = true;
    } else if (status == 0) {
        if (gc->m_seen)
            cmn_gauge_set(gc->m_seen, (double)p->listed);
        if (gc->failing)
            LOG_INFO(LOG_CTX, "passes complete again");
        gc->failing = false;
    }
    if (p->deleted || p->failed || p->gone)
        LOG_INFO(LOG_CTX, "pass: %" PRIu64 " queued, %" PRIu64 " deleted, %" PRIu64
                 " of removed nodes, %" PRIu64 " left for later, %" PRIu64 " failed",
                 p->listed, p->deleted, p->gone, p->skipped, p->failed);
    gw_gc_pass_cb cb = gc->cb;
    void *data = gc->cb_data;
    gc->cb = NULL;
    gc->cb_data = NULL;
    if (cb)
        cb(data, p);
    if (gc->started && !gc->closing)
        uv_timer_start(&gc->timer, on_timer, gc->cfg.interval_ms, 0);
    maybe_closed(gc);
}

static int list_next(struct gw_gc *gc);
static void dispatch(struct gw_gc *gc);

static void on_ack(void *data, const struct cmn_rpc_result *res)
{
    struct gw_gc *gc = data;
    gc->meta_busy = false;
    bool full = gc->batch && gc->batch->n_entries >= gc->cfg.batch;
    size_t n_acks = gc->n_acks;
    batch_release(gc);
    if (gc->closing) {
        pass_end(gc, LODE_ECLOSED, "collector closed");
        return;
    }
    if (res->status != 0) {
        pass_end(gc, res->status, "GC_ACK of %zu entries: %s", n_acks,
                 res->message[0] ? res->message : lode_strerror(res->status));
        return;
    }
    gc->pass.acked += n_acks;
    if (!full) {
        pass_end(gc, 0, NULL);
        return;
    }
    int rc = list_next(gc);
    if (rc)
        pass_end(gc, rc, "GC_LIST not sent: %s", lode_strerror(rc));
}

/* Every entry of the batch is settled: acknowledge the done ones, then go on. */
static void batch_done(struct gw_gc *gc)
{
    Lode__GcListResponse *b = gc->batch;
    for (size_t i = 0; i < b->n_entries; i++)
        if (b->entries[i] && b->entries[i]->seq > gc->cursor)
            gc->cursor = b->entries[i]->seq;
    if (gc->n_acks == 0) {
        bool full = b->n_entries >= gc->cfg.batch;
        batch_release(gc);
        if (!full) {
            pass_end(gc, 0, NULL);
            return;
        }
        int rc = list_next(gc);
        if (rc)
            pass_end(gc, rc, "GC_LIST not sent: %s", lode_strerror(rc));
        return;
    }
    Lode__GcAck ack = LODE__GC_ACK__INIT;
    ack.seqs = gc->acks;
    ack.n_seqs = gc->n_acks;
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_GC_ACK;
    cmd.gc_ack = &ack;
    int rc = cmn_meta_async_call(gc->cfg.meta, CMN_RPC_GC_ACK, 0, &cmd.base,
                                 gc->cfg.meta_timeout_ms, on_ack, gc);
    if (rc) {
        pass_end(gc, rc, "GC_ACK not sent: %s", lode_strerror(rc));
        return;
    }
    gc->meta_busy = true;
}

static void on_delete(struct gw_chunk_req *req)
{
    struct slot *s = req->data;
    struct gw_gc *gc = s->gc;
    gc->outstanding--;
    gc->free_slots[gc->n_free++] = s;
    if (req->status == 0 || req->status == LODE_ENOCHUNK) {
        gc->pass.deleted++;
        gc->acks[gc->n_acks++] = s->seq;
    } else {
        gc->pass.failed++;
        LOG_DEBUG(LOG_CTX, "entry %" PRIu64 " stays queued: %s", s->seq, req->message);
    }
    if (gc->closing) {
        if (gc->outstanding == 0)
            pass_end(gc, LODE_ECLOSED, "collector closed");
        return;
    }
    dispatch(gc);
}

/* Settles entries until `parallel` deletes are in flight or the batch is exhausted. */
static void dispatch(struct gw_gc *gc)
{
    Lode__GcListResponse *b = gc->batch;
    while (gc->next < b->n_entries && gc->n_free > 0) {
        const Lode__GcEntry *e = b->entries[gc->next++];
        const Lode__ChunkRef *ref = e ? e->chunk : NULL;
        if (!e)
            continue;
        if (!ref || ref->chunk_id.len != 16) {
            LOG_WARN(LOG_CTX, "queue entry %" PRIu64 " names no valid chunk; dropping it",
                     e->seq);
            gc->acks[gc->n_acks++] = e->seq;
            continue;
        }
        const struct gw_map_node *n = gw_cluster_map_find(gc->map, ref->nid);
        if (n && n->state == LODE__NODE_STATE__NODE_REMOVED) {
            gc->pass.gone++;
            gc->acks[gc->n_acks++] = e->seq;
            continue;
        }
        if (!n || n->state == LODE__NODE_STATE__NODE_DOWN) {
            gc->pass.skipped++;
            continue;
        }
        struct slot *s = gc->free_slots[--gc->n_free];
        s->seq = e->seq;
        s->req.data = s;
        s->req.cb = on_delete;
        int rc = gw_nodepool_delete(gc->cfg.pool, &s->req, ref->nid, ref->chunk_id.data,
                                    gc->cfg.delete_timeout_ms);
        if (rc == 0) {
            gc->outstanding++;
            continue;
        }
        gc->free_slots[gc->n_free++] = s;
        if (rc == LODE_EUNAVAILABLE || rc == LODE_ENONODE) {
            gc->pass.skipped++;
        } else {
            gc->pass.failed++;
            LOG_DEBUG(LOG_CTX, "entry %" PRIu64 " stays queued: %s", e->seq, s->req.message);
        }
    }
    if (gc->next == b->n_entries && gc->outstanding == 0)
        batch_done(gc);
}

static void on_list(void *data, const struct cmn_rpc_result *res)
{
    struct gw_gc *gc = data;
    gc->meta_busy = false;
    if (gc->closing) {
        pass_end(gc, LODE_ECLOSED, "collector closed");
        return;
    }
    if (res->status != 0) {
        pass_end(gc, res->status, "GC_LIST: %s",
                 res->message[0] ? res->message : lode_strerror(res->status));
        return;
    }
    gc->batch = lode__gc_list_response__unpack(NULL, res->body.len, res->body.data);
    if (!gc->batch) {
        pass_end(gc, LODE_EBADMSG, "GC_LIST answered with an undecodable list");
        return;
    }
    size_t n = gc->batch->n_entries;
    if (n > gc->cfg.batch) {
        pass_end(gc, LODE_EBADMSG, "GC_LIST answered %zu entries for a batch of %" PRIu32,
                 n, gc->cfg.batch);
        return;
    }
    gc->pass.listed += n;
    if (n == 0) {
        pass_end(gc, 0, NULL);
        return;
    }
    gc->map = gw_cluster_map_get(gc->cfg.cluster);
    if (!gc->map) {
        gc->pass.skipped += n;
        pass_end(gc, LODE_EUNAVAILABLE, "cluster map not yet known");
        return;
    }
    gc->next = 0;
    gc->n_acks = 0;
    dispatch(gc);
}

static int list_next(struct gw_gc *gc)
{
    Lode__GcListRequest q = LODE__GC_LIST_REQUEST__INIT;
    q.after_seq = gc->cursor;
    q.max = gc->cfg.batch;
    int rc = cmn_meta_async_call(gc->cfg.meta, CMN_RPC_GC_LIST, 0, &q.base,
                                 gc->cfg.meta_timeout_ms, on_list, gc);
    if (rc == 0)
        gc->meta_busy = true;
    return rc;
}

/* Starts a pass; on a submission failure nothing is running and no callback is due. */
static int pass_begin(struct gw_gc *gc)
{
    memset(&gc->pass, 0, sizeof(gc->pass));
    gc->cursor = 0;
    int rc = list_next(gc);
    if (rc == 0)
        gc->running = true;
    return rc;
}

static void on_timer(uv_timer_t *t)
{
    struct gw_gc *gc = t->data;
    if (gc->running || gc->closing)
        return;
    int rc = pass_begin(gc);
    if (rc) {
        snprintf(gc->pass.message, sizeof(gc->pass.message), "GC_LIST not sent: %s",
                 lode_strerror(rc));
        gc->pass.status = rc;
        gc->last = gc->pass;
        uv_timer_start(&gc->timer, on_timer, gc->cfg.interval_ms, 0);
    }
}

int gw_gc_start(struct gw_gc *gc)
{
    if (gc->started)
        return -EALREADY;
    if (gc->closing)
        return LODE_ECLOSED;
    gc->started = true;
    if (!gc->running)
        uv_timer_start(&gc->timer, on_timer, gc->cfg.interval_ms, 0);
    return 0;
}

int gw_gc_run(struct gw_gc *gc, gw_gc_pass_cb cb, void *data)
{
    if (gc->closing)
        return LODE_ECLOSED;
    if (gc->running)
        return -EBUSY;
    uv_timer_stop(&gc->timer);
    int rc = pass_begin(gc);
    if (rc) {
        if (gc->started)
            uv_timer_start(&gc->timer, on_timer, gc->cfg.interval_ms, 0);
        return rc;
    }
    gc->cb = cb;
    gc->cb_data = data;
    return 0;
}

void gw_gc_last_pass(const struct gw_gc *gc, struct gw_gc_pass *out)
{
    *out = gc->last;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct gw_gc *gc = h->data;
    gc->timer_open = false;
    maybe_closed(gc);
}

void gw_gc_close(struct gw_gc *gc, void (*cb)(void *data), void *data)
{
    if (gc->closing)
        return;
    gc->closing = true;
    gc->close_cb = cb;
    gc->close_data = data;
    uv_close((uv_handle_t *)&gc->timer, on_timer_closed);
}
