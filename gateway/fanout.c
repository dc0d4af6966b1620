/* One fan-out GET (see fanout.h).
 *
 * State: one struct fplan per part of the object that the range touches (the planner works
 * part by part), batches in flight (one per node and part), and `ranges`, the object ranges
 * this worker must write itself: the planner's local stripes, and the pieces of every batch
 * that failed. Phases: REMOTE (batches) -> FENCE (a timer, only when some node did not
 * answer) -> LOCAL (gw_objget over each range, each delivered slice pushed on this worker's
 * data listener, or RDMA-written through its rc listener, and handed back to objget when
 * the kernel has it or the client's NIC acknowledged it) -> done.
 */
#include "gateway/fanout.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "gateway/objget.h"

#define LOG_CTX "fanout"
#define DEFAULT_PIECE (1u << 20)
#define DEFAULT_BATCH (16ull << 20)
/* Largest DATA frame this worker sends for the ranges it serves itself. */
#define LOCAL_FRAME (8u << 20)
/* How soon a request blocked by the client's in-flight cap looks again when it has nothing
 * in flight of its own to wake it. */
#define CAP_RETRY_MS 2

enum phase { P_REMOTE, P_FENCE, P_LOCAL, P_DONE };

struct fplan {
    struct gw_fo_plan plan;
    size_t *next;                      /* per source: next piece index within the source */
    bool *busy;                        /* per source: a batch in flight */
};

struct batch {
    struct gw_fanout *f;
    struct gw_chunk_req req;
    struct fplan *fp;
    size_t src, from, count;
    uint64_t bytes;
    uint64_t sent_ms;
    Lode__FanoutPiece *pieces;
    Lode__FanoutPiece **ptrs;
};

struct range {
    uint64_t obj_off, len, buf_off;
};

struct lpush {                         /* one frame of a locally served range */
    struct gw_fanout *f;
    size_t len;
    bool last;                         /* the last frame of an objget slice */
    size_t slice_len;
};

struct gw_fanout {
    struct gw_fanout_config cfg;
    uint8_t sid[16];
    char key[CMN_DP_ACCESS_KEY_MAX + 1];
    struct gw_cluster_map *map;
    struct fplan *plans;
    size_t n_plans;
    struct range *ranges;
    size_t n_ranges, cap_ranges, next_range;
    enum phase phase;
    unsigned batches;                  /* in flight */
    unsigned pushes;                   /* local frames in flight */
    uint64_t fence_until_ms;
    uint64_t drain_ms;                 /* after a lease, for a node that did not answer */
    struct cmn_rdma_token dctok;       /* dc: the client's token */
    Lode__DcTarget dct;                /* dc: its fields, for every FANOUT_PUSH */
    /* FANOUT_PUSH request ids: nodes answer a repeated (session, id) from memory without
     * writing, so ids never repeat: a random base per fan-out, then one per batch. */
    uint64_t next_request_id;
    struct gw_objget *g;
    uint64_t pos;                      /* bytes of the current range handed to pushes */
    bool range_done;                   /* objget finished the current range */
    uv_timer_t timer;
    bool timer_open;
    bool aborted;
    bool finished;
    int status;
    char message[256];
    struct gw_fanout_result res;
};

static void pump(struct gw_fanout *f);
static void advance(struct gw_fanout *f);

/* ---- lifetime ------------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    struct gw_fanout *f = h->data;
    for (size_t i = 0; i < f->n_plans; i++) {
        gw_fo_plan_free(&f->plans[i].plan);
        free(f->plans[i].next);
        free(f->plans[i].busy);
    }
    free(f->plans);
    free(f->ranges);
    gw_cluster_map_put(f->map);
    free(f);
}

/* Frees once nothing refers to f any more. */
static void maybe_free(struct gw_fanout *f)
{
    if (!(f->aborted || f->finished) || f->batches || f->pushes || !f->timer_open)
        return;
    if (f->g) {
        gw_objget_close(f->g);
        f->g = NULL;
    }
    f->timer_open = false;
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

static void fail(struct gw_fanout *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct gw_fanout *f, int status, const char *fmt, ...)
{
    if (f->status)
        return;
    f->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
}

static void add_source(struct gw_fanout *f, uint32_t id, uint64_t bytes)
{
    struct gw_fanout_result *r = &f->res;
    for (size_t i = 0; i < r->n_sources; i++) {
        if (r->sources[i].id == id) {
            r->sources[i].bytes += bytes;
            return;
        }
    }
    if (r->n_sources < GW_FANOUT_SOURCES_MAX)
        r->sources[r->n_sources++] = (struct gw_fanout_source){id, bytes};
}

/* Everything in flight has ended: report, once. */
static void finish(struct gw_fanout *f)
{
    if (f->finished || f->batches || f->pushes)
        return;
    f->phase = P_DONE;
    f->finished = true;
    if (f->g) {
        gw_objget_close(f->g);
        f->g = NULL;
    }
    if (!f->aborted) {
        const struct gw_fanout_tmetrics *m = f->cfg.metrics;
        if (m && f->status == 0) {
            cmn_counter_add(m->bytes_gateway, f->res.gateway_bytes);
            cmn_counter_add(m->bytes_nodes, f->res.bytes - f->res.gateway_bytes);
        }
        f->cfg.on_done(f->cfg.data, f->status, f->status ? f->message : NULL,
                       f->status ? NULL : &f->res);
    }
    maybe_free(f);
}

static void on_timer(uv_timer_t *t)
{
    struct gw_fanout *f = t->data;
    if (f->aborted || f->finished)
        return;
    if (f->phase == P_FENCE)
        f->phase = P_LOCAL;
    if (f->phase == P_REMOTE)
        pump(f);
    advance(f);
}

/* ---- ranges the gateway serves -------------------------------------------------------- */

static int add_range(struct gw_fanout *f, uint64_t obj_off, uint64_t len, uint64_t buf_off)
{
    /* Adjacent ranges (the pieces of one failed batch) are merged. */
    if (f->n_ranges) {
        struct range *last = &f->ranges[f->n_ranges - 1];
        if (last->obj_off + last->len == obj_off && last->buf_off + last->len == buf_off) {
            last->len += len;
            return 0;
        }
    }
    if (f->n_ranges == f->cap_ranges) {
        size_t cap = f->cap_ranges ? 2 * f->cap_ranges : 16;
        struct range *r = realloc(f->ranges, cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        f->ranges = r;
        f->cap_ranges = cap;
    }
    f->ranges[f->n_ranges++] = (struct range){obj_off, len, buf_off};
    return 0;
}

/* A piece's object offset: the window starts at object byte `first`. */
static void piece_to_range(struct gw_fanout *f, const struct gw_fo_piece *p)
{
    if (add_range(f, f->cfg.first + p->buf_off, p->len, p->buf_off) != 0)
        fail(f, -ENOMEM, "out of memory planning a fallback");
}

/* ---- remote phase --------------------------------------------------------------------- */

static void batch_free(struct batch *b)
{
    free(b->pieces);
    free(b->ptrs);
    free(b);
}

static void on_batch(struct gw_chunk_req *req)
{
    struct batch *b = req->data;
    struct gw_fanout *f = b->f;
    struct fplan *fp = b->fp;
    const struct gw_fo_source *s = &fp->plan.sources[b->src];
    const struct gw_fanout_tmetrics *m = f->cfg.metrics;
    f->batches--;
    fp->busy[b->src] = false;
    if (f->cfg.sched)
        gw_fo_sched_done(f->cfg.sched, b->bytes);
    if (m)
        cmn_histogram_observe(m->node_latency, (double)(cmn_mono_ms() - b->sent_ms) / 1e3);
    size_t bad = 0;
    for (size_t i = 0; i < b->count; i++) {
        const struct gw_fo_piece *p = &fp->plan.pieces[s->first + b->from + i];
        int st = req->status ? req->status : req->fanout->pieces[i]->status;
        if (st == 0) {
            add_source(f, s->nid, p->len);
            f->res.bytes += p->len;
        } else {
            bad++;
            piece_to_range(f, p);
        }
    }
    if (bad) {
        if (m)
            cmn_counter_add(m->node_failures, 1);
        LOG_DEBUG(LOG_CTX, "node %" PRIu32 ": %zu of %zu pieces to serve here: %s", s->nid, bad,
                  b->count, req->status ? req->message : "piece errors");
    }
    if (req->status && gw_nodepool_transport_failure(req->status)) {
        /* No answer: the node may still write until its lease ends. */
        uint64_t until = b->sent_ms + f->cfg.lease_ms + f->drain_ms;
        if (until > f->fence_until_ms)
            f->fence_until_ms = until;
    }
    batch_free(b);
    if (f->aborted) {
        maybe_free(f);
        return;
    }
    pump(f);
    advance(f);
}

static int send_batch(struct gw_fanout *f, struct fplan *fp, size_t src, size_t n,
                      uint64_t bytes)
{
    const struct gw_fo_source *s = &fp->plan.sources[src];
    struct batch *b = calloc(1, sizeof(*b));
    if (b) {
        b->pieces = calloc(n, sizeof(*b->pieces));
        b->ptrs = calloc(n, sizeof(*b->ptrs));
    }
    if (!b || !b->pieces || !b->ptrs) {
        if (b)
            batch_free(b);
        return -ENOMEM;
    }
    b->f = f;
    b->fp = fp;
    b->src = src;
    b->from = fp->next[src];
    b->count = n;
    b->bytes = bytes;
    for (size_t i = 0; i < n; i++) {
        const struct gw_fo_piece *p = &fp->plan.pieces[s->first + b->from + i];
        Lode__FanoutPiece *q = &b->pieces[i];
        lode__fanout_piece__init(q);
        q->chunk_id.data = (uint8_t *)p->chunk_id;
        q->chunk_id.len = 16;
        q->chunk_offset = p->chunk_off;
        q->length = p->len;
        q->buf_offset = p->buf_off;
        b->ptrs[i] = q;
    }
    Lode__FanoutPushRequest q = LODE__FANOUT_PUSH_REQUEST__INIT;
    q.sid.data = f->sid;
    q.sid.len = 16;
    q.access_key = f->key;
    q.window_base = f->cfg.window_base;
    q.window_size = f->cfg.window_size;
    q.request_id = f->next_request_id++;
    q.lease_ms = f->cfg.lease_ms;
    q.n_pieces = n;
    q.pieces = b->ptrs;
    q.transport = f->cfg.transport;
    q.tag = f->cfg.tag;
    q.rkey = f->cfg.rkey;
    if (f->cfg.transport == GW_FANOUT_DC)
        q.dc = &f->dct;
    b->req.data = b;
    b->req.cb = on_batch;
    b->sent_ms = cmn_mono_ms();
    fp->busy[src] = true;
    fp->next[src] += n;
    f->batches++;
    int rc = gw_nodepool_fanout(f->cfg.pool, &b->req, s->nid, &q, f->cfg.timeout_ms);
    if (rc != 0) {
        /* Refused before sending (node on hold, not in the map): serve it here, no fence. */
        b->req.status = rc;
        on_batch(&b->req);
        return 0;
    }
    return 0;
}

/* Sends every batch that may go now. */
static void pump(struct gw_fanout *f)
{
    if (f->phase != P_REMOTE || f->status)
        return;
    bool blocked = false;
    for (size_t i = 0; i < f->n_plans && !blocked; i++) {
        struct fplan *fp = &f->plans[i];
        for (size_t s = 0; s < fp->plan.n_sources && !blocked; s++) {
            if (fp->busy[s] || fp->next[s] >= fp->plan.sources[s].count)
                continue;
            uint64_t bytes = 0;
            size_t n = gw_fo_batch(&fp->plan, s, fp->next[s], f->cfg.max_batch, 0, &bytes);
            if (n == 0)
                continue;
            if (f->cfg.sched && !gw_fo_sched_take(f->cfg.sched, bytes)) {
                blocked = true;
                break;
            }
            if (send_batch(f, fp, s, n, bytes) != 0) {
                if (f->cfg.sched)
                    gw_fo_sched_done(f->cfg.sched, bytes);
                fail(f, -ENOMEM, "out of memory sending FANOUT_PUSH");
                return;
            }
            if (f->aborted || f->status || f->phase != P_REMOTE)
                return;
        }
    }
    if (blocked && f->batches == 0)
        uv_timer_start(&f->timer, on_timer, CAP_RETRY_MS, 0);
}

static bool remote_left(const struct gw_fanout *f)
{
    for (size_t i = 0; i < f->n_plans; i++) {
        const struct fplan *fp = &f->plans[i];
        for (size_t s = 0; s < fp->plan.n_sources; s++)
            if (fp->busy[s] || fp->next[s] < fp->plan.sources[s].count)
                return true;
    }
    return false;
}

/* ---- local phase ---------------------------------------------------------------------- */

static void start_range(struct gw_fanout *f);

static void on_local_pushed(void *data, int status)
{
    struct lpush *lp = data;
    struct gw_fanout *f = lp->f;
    f->pushes--;
    if (status == 0) {
        f->res.bytes += lp->len;
        f->res.gateway_bytes += lp->len;
        add_source(f, f->cfg.source_id, lp->len);
    } else {
        fail(f, status, "writing into the client's window from the gateway failed: %s",
             lode_strerror(status));
    }
    if (lp->last && f->g && !f->status && !f->aborted)
        gw_objget_consumed(f->g, lp->slice_len);
    free(lp);
    if (f->aborted) {
        maybe_free(f);
        return;
    }
    advance(f);
}

/* One write of the gateway's own share, on this worker's listener of the transport. */
static int local_write(struct gw_fanout *f, uint64_t addr, const uint8_t *p, size_t n,
                       struct lpush *lp)
{
    if (f->cfg.transport == GW_FANOUT_TCP)
        return cmn_dp_push(f->cfg.dp, f->sid, f->key, f->cfg.window_base, f->cfg.tag, addr, p,
                           n, on_local_pushed, lp);
    if (f->cfg.transport == GW_FANOUT_DC) {
#ifdef HAVE_MLX5DV
        /* dc addresses by window offset; the instance re-checks it against the window. */
        return cmn_dp_dc_write(f->cfg.dc, &f->dctok, addr - f->cfg.window_base, p, n,
                               on_local_pushed, lp);
#else
        return -EPROTONOSUPPORT;
#endif
    }
#ifdef HAVE_RDMA
    struct cmn_dp_rc_target t = {
        .access_key = f->key,
        .window_base = f->cfg.window_base,
        .window_size = f->cfg.window_size,
        .rkey = f->cfg.rkey,
    };
    memcpy(t.sid, f->sid, sizeof(t.sid));
    return cmn_dp_rc_write(f->cfg.rc, &t, addr, p, n, on_local_pushed, lp);
#else
    return -EPROTONOSUPPORT;
#endif
}

static void on_local_data(void *data, const uint8_t *p, size_t len)
{
    struct gw_fanout *f = data;
    const struct range *r = &f->ranges[f->next_range];
    size_t off = 0;
    while (off < len && !f->status) {
        size_t n = len - off < LOCAL_FRAME ? len - off : LOCAL_FRAME;
        struct lpush *lp = calloc(1, sizeof(*lp));
        if (!lp) {
            fail(f, -ENOMEM, "out of memory");
            break;
        }
        lp->f = f;
        lp->len = n;
        lp->last = off + n == len;
        lp->slice_len = len;
        uint64_t addr = f->cfg.window_base + r->buf_off + f->pos;
        int rc = local_write(f, addr, p + off, n, lp);
        if (rc != 0) {
            free(lp);
            if (rc == LODE_ENOSESSION)
                fail(f, rc, "the client has no data session with this gateway worker, so the "
                     "bytes the data nodes could not write cannot be delivered");
            else
                fail(f, rc, "pushing from the gateway: %s", lode_strerror(rc));
            break;
        }
        f->pushes++;
        f->pos += n;
        off += n;
    }
}

static void on_local_done(void *data, int status, const char *message)
{
    struct gw_fanout *f = data;
    if (status)
        fail(f, status, "reading object bytes %" PRIu64 "+%" PRIu64 " at the gateway: %s",
             f->ranges[f->next_range].obj_off, f->ranges[f->next_range].len, message);
    f->range_done = true;
    advance(f);
}

static void start_range(struct gw_fanout *f)
{
    const struct range *r = &f->ranges[f->next_range];
    struct gw_objget_config gc = {
        .loop = f->cfg.loop,
        .pool = f->cfg.pool,
        .meta = f->cfg.meta,
        .map = f->map,
        .record = f->cfg.record,
        .offset = r->obj_off,
        .length = r->len,
        .on_data = on_local_data,
        .on_done = on_local_done,
        .data = f,
    };
    struct cmn_err err;
    cmn_err_clear(&err);
    f->pos = 0;
    f->range_done = false;
    int rc = gw_objget_create(&gc, &f->g, &err);
    if (rc) {
        f->g = NULL;
        fail(f, rc, "gateway read: %s", cmn_err_text(&err));
    }
}

/* Moves on when the current phase has nothing left in flight. */
static void advance(struct gw_fanout *f)
{
    if (f->aborted || f->finished)
        return;
    if (f->status) {
        finish(f); /* waits for what is in flight */
        return;
    }
    if (f->phase == P_REMOTE) {
        if (f->batches || remote_left(f))
            return;
        uint64_t now = cmn_mono_ms();
        if (f->n_ranges && f->fence_until_ms > now) {
            f->phase = P_FENCE;
            uv_timer_start(&f->timer, on_timer, f->fence_until_ms - now, 0);
            return;
        }
        f->phase = P_LOCAL;
    }
    if (f->phase == P_FENCE)
        return;
    if (f->phase == P_LOCAL) {
        if (f->g) {
            if (!f->range_done || f->pushes)
                return;
            gw_objget_close(f->g);
            f->g = NULL;
            f->next_range++;
        }
        if (f->next_range < f->n_ranges) {
            start_range(f);
            if (f->status)
                finish(f);
            return;
        }
        finish(f);
    }
}

/* ---- start ---------------------------------------------------------------------------- */

static bool node_readable(void *ctx, uint32_t nid)
{
    struct gw_fanout *f = ctx;
    const struct gw_map_node *n = gw_cluster_map_find(f->map, nid);
    if (!n || !gw_map_node_readable(n))
        return false;
    /* A node without a listener of this transport cannot write: the gateway serves its
     * stripes. (A node that runs dc says so when it registers; should one refuse a push all
     * the same, -EPROTONOSUPPORT before any read or write, its pieces are served here too,
     * with no fence since it wrote nothing.) */
    if (f->cfg.transport == GW_FANOUT_DC)
        return n->dc;
    const char *a = f->cfg.transport == GW_FANOUT_RC ? n->rdma_address : n->data_address;
    return a && a[0];
}

/* Plans the part of [first, first + length) that lies in the object bytes [pstart, pstart +
 * psize) with layout l. */
static int plan_part(struct gw_fanout *f, const Lode__Layout *l, uint64_t pstart, uint64_t psize,
                     struct cmn_err *err)
{
    uint64_t a = f->cfg.first, b = f->cfg.first + f->cfg.length;
    uint64_t lo = a > pstart ? a : pstart, hi = b < pstart + psize ? b : pstart + psize;
    if (lo >= hi)
        return 0;
    if (!l)
        return cmn_err_set(err, LODE_ECORRUPT, "%" PRIu64 " bytes without a layout", psize);
    size_t n = (size_t)l->k + l->m;
    struct gw_fo_chunk *chunks = calloc(l->n_stripes * n + 1, sizeof(*chunks));
    if (!chunks)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    for (size_t s = 0; s < l->n_stripes; s++) {
        const Lode__Stripe *st = l->stripes[s];
        if (st->n_chunks != n) {
            free(chunks);
            return cmn_err_set(err, LODE_ECORRUPT, "stripe %zu has %zu chunks, not %zu", s,
                               st->n_chunks, n);
        }
        for (size_t c = 0; c < n; c++) {
            const Lode__ChunkRef *ref = st->chunks[c];
            chunks[s * n + c].nid = ref->nid;
            if (ref->chunk_id.len == 16)
                memcpy(chunks[s * n + c].id, ref->chunk_id.data, 16);
            else
                chunks[s * n + c].nid = 0;
        }
    }
    struct gw_fo_input in = {
        .geom = {.k = l->k, .m = l->m, .chunk_size = l->chunk_size, .size = psize},
        .chunks = chunks,
        .n_stripes = l->n_stripes,
        .start = lo - pstart,
        .end = hi - pstart,
        .buf_off = lo - a,
        .readable = node_readable,
        .readable_ctx = f,
        .max_piece = f->cfg.max_piece,
        .spread = f->cfg.spread,
    };
    struct fplan *fp = &f->plans[f->n_plans];
    int rc = gw_fo_plan_build(&in, &fp->plan, err);
    free(chunks);
    if (rc)
        return rc;
    f->n_plans++;
    fp->next = calloc(fp->plan.n_sources + 1, sizeof(*fp->next));
    fp->busy = calloc(fp->plan.n_sources + 1, sizeof(*fp->busy));
    if (!fp->next || !fp->busy)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < fp->plan.n_locals; i++) {
        const struct gw_fo_local *lr = &fp->plan.locals[i];
        if (add_range(f, pstart + lr->obj_off, lr->len, lr->buf_off) != 0)
            return cmn_err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

int gw_fanout_start(const struct gw_fanout_config *cfg, struct gw_fanout **out,
                    struct cmn_err *err)
{
    *out = NULL;
    const Lode__ObjectRecord *rec = cfg->record;
    uint32_t transport = cfg->transport ? cfg->transport : GW_FANOUT_TCP;
    bool have_listener = transport == GW_FANOUT_TCP  ? cfg->dp != NULL
                         : transport == GW_FANOUT_RC ? cfg->rc != NULL
                         : transport == GW_FANOUT_DC ? cfg->dc != NULL && cfg->dc_token &&
                                                           cfg->dc_token->kind == CMN_RDMA_DC
                                                     : false;
    if (!cfg->loop || !cfg->pool || !cfg->map || !have_listener || !rec || !cfg->sid ||
        !cfg->access_key || !cfg->on_done)
        return cmn_err_set(err, -EINVAL, "fanout: missing argument");
    if (cfg->first > rec->size || cfg->length > rec->size - cfg->first)
        return cmn_err_set(err, -ERANGE, "range %" PRIu64 "+%" PRIu64 " is outside the %" PRIu64
                           "-byte object", cfg->first, cfg->length, rec->size);
    if (cfg->length > cfg->window_size || strlen(cfg->access_key) > CMN_DP_ACCESS_KEY_MAX)
        return cmn_err_set(err, LODE_EWINDOW, "%" PRIu64 " bytes do not fit the %" PRIu64
                           "-byte window", cfg->length, cfg->window_size);
    struct gw_fanout *f = calloc(1, sizeof(*f));
    if (!f)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    f->cfg = *cfg;
    f->cfg.transport = transport;
    if (!f->cfg.lease_ms)
        f->cfg.lease_ms = GW_FANOUT_LEASE_DEFAULT_MS;
    if (!f->cfg.timeout_ms)
        f->cfg.timeout_ms = f->cfg.lease_ms + GW_FANOUT_DRAIN_MS + 2000;
    if (!f->cfg.max_piece)
        f->cfg.max_piece = DEFAULT_PIECE;
    if (!f->cfg.max_batch)
        f->cfg.max_batch = DEFAULT_BATCH;
    memcpy(f->sid, cfg->sid, 16);
    f->drain_ms = GW_FANOUT_DRAIN_MS;
    if (transport == GW_FANOUT_DC) {
        f->dctok = *cfg->dc_token;
        f->cfg.dc_token = &f->dctok;
        lode__dc_target__init(&f->dct);
        f->dct.rkey = f->dctok.u.dc.rkey;
        f->dct.lid = f->dctok.u.dc.lid;
        f->dct.dctn = f->dctok.u.dc.dctn;
        f->dct.g = f->dctok.u.dc.g;
        f->dct.gid.data = f->dctok.u.dc.gid;
        f->dct.gid.len = 16;
        f->dct.desc_base = f->dctok.u.dc.desc_base;
        f->dct.desc_size = f->dctok.u.dc.desc_size;
#ifdef HAVE_MLX5DV
        /* A silent node's posted DC writes may land for this long after its lease. */
        f->drain_ms = cmn_dp_dc_drain_ms(cfg->dc) + 100;
#endif
        if (!cfg->timeout_ms)
            f->cfg.timeout_ms = f->cfg.lease_ms + (uint32_t)f->drain_ms + 2000;
    }
    if (cmn_random_bytes(&f->next_request_id, sizeof(f->next_request_id)) != 0)
        f->next_request_id = ((uint64_t)cmn_mono_ns() << 16) ^ cfg->spread;
    snprintf(f->key, sizeof(f->key), "%s", cfg->access_key);
    f->map = gw_cluster_map_hold(cfg->map);
    size_t parts = rec->n_parts ? rec->n_parts : 1;
    f->plans = calloc(parts, sizeof(*f->plans));
    int rc = f->plans ? 0 : cmn_err_set(err, -ENOMEM, "out of memory");
    if (rc == 0 && rec->n_parts) {
        uint64_t start = 0;
        for (size_t i = 0; i < rec->n_parts && rc == 0; i++) {
            rc = plan_part(f, rec->parts[i]->layout, start, rec->parts[i]->size, err);
            start += rec->parts[i]->size;
        }
    } else if (rc == 0) {
        rc = plan_part(f, rec->layout, 0, rec->size, err);
    }
    uv_timer_init(cfg->loop, &f->timer);
    f->timer.data = f;
    f->timer_open = true;
    if (rc) {
        f->aborted = true;
        maybe_free(f);
        return rc;
    }
    if (cfg->metrics)
        cmn_counter_add(cfg->metrics->requests, 1);
    *out = f;
    f->phase = P_REMOTE;
    pump(f);
    /* on_done never runs from inside this call: a request with nothing remote goes on from
     * the timer. */
    if (!f->batches)
        uv_timer_start(&f->timer, on_timer, 0, 0);
    return 0;
}

void gw_fanout_abort(struct gw_fanout *f)
{
    if (!f || f->aborted)
        return;
    f->aborted = true;
    if (f->g && f->pushes == 0) {
        gw_objget_close(f->g);
        f->g = NULL;
    }
    maybe_free(f);
}

const char *gw_fo_transport_name(enum gw_fo_transport t)
{
    static const char *const names[GW_FO_TRANSPORTS] = {"tcp", "rc", "dc", "other"};
    return (unsigned)t < GW_FO_TRANSPORTS ? names[t] : "other";
}

static int register_transport(struct cmn_metrics *m, enum gw_fo_transport tr,
                              struct gw_fanout_tmetrics *out)
{
    char l[48];
    snprintf(l, sizeof(l), "transport=\"%s\"", gw_fo_transport_name(tr));
    for (int i = 0; i < GW_RDMA_REASON_COUNT; i++) {
        char label[96];
        snprintf(label, sizeof(label), "%s,reason=\"%s\"", l, gw_rdma_reason_name(i));
        out->declines[i] = cmn_metrics_counter(m, "lode_gateway_rdma_declines_total", label,
                                               "x-amz-rdma-token requests not served over a "
                                               "data transport, by the token's transport and "
                                               "the reason.");
        if (!out->declines[i])
            return -ENOMEM;
    }
    if (tr == GW_FO_OTHER)
        return 0;
    out->requests = cmn_metrics_counter(m, "lode_gateway_fanout_requests_total", l,
                                        "Fan-out GETs served over a data transport.");
    out->bytes_nodes = cmn_metrics_counter(m, "lode_gateway_fanout_node_bytes_total", l,
                                           "Bytes data nodes wrote into client windows.");
    out->bytes_gateway = cmn_metrics_counter(m, "lode_gateway_fanout_gateway_bytes_total", l,
                                             "Bytes the gateway wrote into client windows "
                                             "itself (degraded stripes, failed pieces).");
    out->node_failures = cmn_metrics_counter(m, "lode_gateway_fanout_node_failures_total", l,
                                             "FANOUT_PUSH batches that failed in part or "
                                             "whole (the gateway served those bytes).");
    out->node_latency = cmn_metrics_histogram(m, "lode_gateway_fanout_node_seconds", l,
                                              "FANOUT_PUSH time from send to the node's "
                                              "answer.", NULL, 0);
    out->fallbacks = cmn_metrics_counter(m, "lode_gateway_fanout_fallbacks_total", l,
                                         "Accepted fan-out GETs answered with the object in "
                                         "the body after all (x-amz-rdma-reply 501).");
    out->puts = cmn_metrics_counter(m, "lode_gateway_rdma_puts_total", l,
                                    "Staged uploads (PutObject/UploadPart with a token) whose "
                                    "bytes the gateway reads out of the client's window.");
    out->put_bytes = cmn_metrics_counter(m, "lode_gateway_rdma_put_bytes_total", l,
                                         "Bytes staged uploads read out of client windows.");
    out->put_failures = cmn_metrics_counter(m, "lode_gateway_rdma_put_failures_total", l,
                                            "Staged uploads failed because reading the "
                                            "client's window failed (500 "
                                            "RDMATransferFailed, nothing stored).");
    out->put_direct = cmn_metrics_counter(m, "lode_gateway_rdma_put_direct_bytes_total", l,
                                          "Bytes of staged uploads RDMA-read straight into the "
                                          "registered upload buffers (rdma-upload-buffers), "
                                          "without a copy out of the staging memory.");
    if (!out->requests || !out->bytes_nodes || !out->bytes_gateway || !out->node_failures ||
        !out->node_latency || !out->fallbacks || !out->puts || !out->put_bytes ||
        !out->put_failures || !out->put_direct)
        return -ENOMEM;
    return 0;
}

int gw_fanout_metrics_register(struct cmn_metrics *m, struct gw_fanout_metrics *out)
{
    memset(out, 0, sizeof(*out));
    for (int t = 0; t < GW_FO_TRANSPORTS; t++) {
        int rc = register_transport(m, (enum gw_fo_transport)t, &out->t[t]);
        if (rc)
            return rc;
    }
    return 0;
}

const char *gw_rdma_reason_name(enum gw_rdma_reason r)
{
    static const char *const names[] = {
#define GW_RDMA_REASON_NAME(e, s) s,
        GW_RDMA_REASONS(GW_RDMA_REASON_NAME)
#undef GW_RDMA_REASON_NAME
    };
    return (unsigned)r < GW_RDMA_REASON_COUNT ? names[r] : "unknown";
}
