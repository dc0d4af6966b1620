/* The object write pipeline (gateway/objput.h). */
#include "gateway/objput.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>
#include <xxh_x86dispatch.h>

#include "common/id.h"
#include "common/log.h"
#include "common/rpc_methods.h"
#include "gateway/ec.h"
#include "gateway/placement.h"

#define LOG_CTX "objput"
#define GC_BATCH 4096 /* chunk refs per GC_ENQUEUE: keeps each command far below a frame */
#define GC_TIMEOUT_MS 30000

struct objput_slot;

/* One chunk of a stripe in flight: its put request and where it goes. */
struct cput {
    struct gw_chunk_req req;
    struct objput_slot *slot;
    unsigned index;
    unsigned tries;
    uint32_t len;
    uint64_t xxh3;
    uint32_t failed_nids[GW_OBJPUT_RETRIES + 1];
    unsigned n_failed;
    bool inflight;
};

/* One stripe buffer: k data chunks then m parity chunks, chunk_size apart. */
struct objput_slot {
    struct gw_objput *op;
    uint8_t *buf;
    uint64_t stripe;
    uint64_t filled;
    unsigned pending;
    bool busy;
    Lode__Stripe *rec;
    struct cput cp[GW_EC_MAX_N];
};

struct gw_objput {
    struct gw_objput_config cfg;
    struct gw_cluster_map *map;
    struct gw_place_map *place;
    const struct gw_ec *ec;
    struct gw_geom geom;
    uint64_t n_stripes;
    uint64_t next_stripe;          /* next stripe to start filling */
    uint64_t seed;
    size_t slot_bytes;
    struct objput_slot *slots;
    struct objput_slot *fill;      /* stripe being filled, or NULL */
    Lode__Layout *layout;
    size_t stripes_cap;
    unsigned inflight;             /* chunk puts in flight */
    int status;
    char message[CMN_ERR_MSG_MAX];
    bool finished, done_called, delivered, closed, want_ready;
    uv_timer_t defer;
    struct gw_objput_stats st;
};

/* ---- layouts -------------------------------------------------------------------------- */

void gw_layout_free(Lode__Layout *layout)
{
    if (!layout)
        return;
    /* Each stripe record is one block (see new_stripe_rec). */
    for (size_t i = 0; i < layout->n_stripes; i++)
        free(layout->stripes[i]);
    free(layout->stripes);
    free(layout);
}

/* One allocation per stripe: the record, its pointer array, its refs and their ids. */
static Lode__Stripe *new_stripe_rec(unsigned n)
{
    size_t sz = sizeof(Lode__Stripe) + n * (sizeof(Lode__ChunkRef *) + sizeof(Lode__ChunkRef)) +
                n * CMN_ID_SIZE;
    uint8_t *blk = calloc(1, sz);
    if (!blk)
        return NULL;
    Lode__Stripe *st = (Lode__Stripe *)blk;
    lode__stripe__init(st);
    Lode__ChunkRef **ptrs = (Lode__ChunkRef **)(blk + sizeof(Lode__Stripe));
    Lode__ChunkRef *refs = (Lode__ChunkRef *)(ptrs + n);
    uint8_t *ids = (uint8_t *)(refs + n);
    for (unsigned i = 0; i < n; i++) {
        lode__chunk_ref__init(&refs[i]);
        refs[i].chunk_id.data = ids + (size_t)i * CMN_ID_SIZE;
        refs[i].chunk_id.len = 0;
        ptrs[i] = &refs[i];
    }
    st->chunks = ptrs;
    st->n_chunks = n;
    return st;
}

static void on_gc_enqueued(void *data, const struct cmn_rpc_result *res)
{
    size_t n = (size_t)(uintptr_t)data;
    if (res->status != 0)
        LOG_WARN(LOG_CTX, "queueing %zu chunk(s) for collection failed: %s; they stay on their "
                 "nodes until repair reconciles them", n, res->message);
}

/* Sends refs[0..n) in one GC_ENQUEUE. */
static int gc_send(struct cmn_meta_async *meta, Lode__ChunkRef **refs, size_t n,
                   const char *reason)
{
    Lode__GcEnqueue g = LODE__GC_ENQUEUE__INIT;
    g.n_chunks = n;
    g.chunks = refs;
    g.reason = (char *)reason;
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_GC_ENQUEUE;
    cmd.gc_enqueue = &g;
    int rc = cmn_meta_async_call(meta, CMN_RPC_GC_ENQUEUE, 0, &cmd.base, GC_TIMEOUT_MS,
                                 on_gc_enqueued, (void *)(uintptr_t)n);
    if (rc)
        LOG_WARN(LOG_CTX, "queueing %zu chunk(s) for collection failed: %s", n,
                 lode_strerror(rc));
    return rc;
}

/* A single (nid, id) to the queue, for a put attempt that may have been stored. */
static void gc_one(struct cmn_meta_async *meta, uint32_t nid, const uint8_t id[16],
                   const char *reason)
{
    Lode__ChunkRef r = LODE__CHUNK_REF__INIT, *rp = &r;
    r.nid = nid;
    r.chunk_id.data = (uint8_t *)id;
    r.chunk_id.len = CMN_ID_SIZE;
    gc_send(meta, &rp, 1, reason);
}

int gw_objput_discard(struct cmn_meta_async *meta, const Lode__Layout *layout,
                      const char *reason)
{
    if (!meta || !layout)
        return -EINVAL;
    Lode__ChunkRef **batch = malloc(GC_BATCH * sizeof(*batch));
    if (!batch)
        return -ENOMEM;
    size_t n = 0;
    int rc = 0;
    for (size_t s = 0; s < layout->n_stripes; s++) {
        const Lode__Stripe *st = layout->stripes[s];
        for (size_t c = 0; st && c < st->n_chunks; c++) {
            Lode__ChunkRef *r = st->chunks[c];
            if (!r || r->nid == 0 || r->chunk_id.len != CMN_ID_SIZE)
                continue;
            batch[n++] = r;
            if (n == GC_BATCH) {
                int e = gc_send(meta, batch, n, reason);
                rc = rc ? rc : e;
                n = 0;
            }
        }
    }
    if (n) {
        int e = gc_send(meta, batch, n, reason);
        rc = rc ? rc : e;
    }
    free(batch);
    return rc;
}

/* ---- lifetime ------------------------------------------------------------------------- */

static void on_defer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Frees everything; the timer's close callback frees the handle itself. */
static void destroy(struct gw_objput *op)
{
    if (op->slots) {
        for (unsigned i = 0; i < op->cfg.window; i++)
            free(op->slots[i].buf);
        free(op->slots);
    }
    gw_layout_free(op->layout);
    gw_place_map_free(op->place);
    gw_cluster_map_put(op->map);
    op->defer.data = op;
    uv_close((uv_handle_t *)&op->defer, on_defer_closed);
}

/* The caller is gone and nothing is in flight: queue the chunks, then free. */
static void abort_finish(struct gw_objput *op)
{
    if (op->layout && op->layout->n_stripes)
        gw_objput_discard(op->cfg.meta, op->layout, "aborted put");
    destroy(op);
}

static void on_defer(uv_timer_t *t)
{
    struct gw_objput *op = t->data;
    if (op->closed || op->done_called)
        return;
    if (op->status != 0) {
        op->done_called = true;
        op->cfg.done(op->cfg.data, op->status, op->message, NULL);
        return;
    }
    if (op->finished && op->st.stripes_done == op->n_stripes) {
        op->done_called = true;
        op->delivered = true;
        Lode__Layout *l = op->layout;
        op->layout = NULL;
        op->cfg.done(op->cfg.data, 0, "", l);
    }
}

static void schedule_done(struct gw_objput *op)
{
    if (!op->closed && !op->done_called)
        uv_timer_start(&op->defer, on_defer, 0, 0);
}

static void fail(struct gw_objput *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct gw_objput *op, int status, const char *fmt, ...)
{
    if (op->status != 0)
        return;
    op->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->message, sizeof(op->message), fmt, ap);
    va_end(ap);
    schedule_done(op);
}

/* ---- chunk puts ----------------------------------------------------------------------- */

static void on_put(struct gw_chunk_req *req);

static uint64_t next_rand(void *ctx)
{
    return gw_rand_splitmix(ctx);
}

static void submit(struct gw_objput *op, struct cput *cp);

/* Whether a failed put is worth a replacement node: the node is unreachable, full, held or
 * gone, as opposed to the put itself being wrong. */
static bool retryable(int status)
{
    return gw_nodepool_transport_failure(status) || status == LODE_ENOSPACE ||
           status == LODE_EUNAVAILABLE || status == LODE_ENONODE;
}

/* A put failed (answered or refused at submission): re-place it, or fail the object. */
static void put_failed(struct gw_objput *op, struct cput *cp, int status, const char *msg)
{
    struct objput_slot *sl = cp->slot;
    Lode__ChunkRef *ref = sl->rec->chunks[cp->index];
    if (op->status != 0)
        return;
    if (!retryable(status) || cp->tries >= GW_OBJPUT_RETRIES) {
        fail(op, retryable(status) ? LODE_EUNAVAILABLE : status,
             "stripe %" PRIu64 " chunk %u: put on node %" PRIu32 " failed%s: %s", sl->stripe,
             cp->index, ref->nid, cp->tries ? " after retries on other nodes" : "", msg);
        return;
    }
    /* A put that timed out or lost its connection may still land: queue that copy. */
    if (gw_nodepool_transport_failure(status))
        gc_one(op->cfg.meta, ref->nid, ref->chunk_id.data, "failed chunk put");
    cp->failed_nids[cp->n_failed++] = ref->nid;
    unsigned n = op->geom.k + op->geom.m;
    uint32_t nids[GW_EC_MAX_N];
    for (unsigned i = 0; i < n; i++)
        nids[i] = sl->rec->chunks[i]->nid;
    struct cmn_err err;
    uint32_t nid = 0;
    struct gw_rand rnd = {next_rand, &op->seed};
    int rc = gw_place_replace(op->place, nids, n, cp->index, cp->len, cp->failed_nids,
                              cp->n_failed, rnd, &nid, &err);
    if (rc) {
        fail(op, rc == -ENOMEM ? -ENOMEM : LODE_EUNAVAILABLE,
             "stripe %" PRIu64 " chunk %u: put on node %" PRIu32 " failed (%s) and no "
             "replacement node: %s", sl->stripe, cp->index, ref->nid, msg, cmn_err_text(&err));
        return;
    }
    LOG_DEBUG(LOG_CTX, "chunk put on node %" PRIu32 " failed (%s); retrying on node %" PRIu32,
              ref->nid, msg, nid);
    cp->tries++;
    op->st.retries++;
    ref->nid = nid;
    struct cmn_id id = cmn_id_random();
    memcpy(ref->chunk_id.data, id.b, CMN_ID_SIZE);
    submit(op, cp);
}

static void submit(struct gw_objput *op, struct cput *cp)
{
    struct objput_slot *sl = cp->slot;
    Lode__ChunkRef *ref = sl->rec->chunks[cp->index];
    memset(&cp->req, 0, sizeof(cp->req));
    cp->req.data = cp;
    cp->req.cb = on_put;
    const uint8_t *p = sl->buf + (size_t)cp->index * op->geom.chunk_size;
    op->st.chunk_puts++;
    int rc = gw_nodepool_put(op->cfg.pool, &cp->req, ref->nid, ref->chunk_id.data, p, cp->len,
                             cp->xxh3, op->cfg.timeout_ms);
    if (rc == 0) {
        cp->inflight = true;
        sl->pending++;
        op->inflight++;
        return;
    }
    char msg[sizeof(cp->req.message)];
    snprintf(msg, sizeof(msg), "%s", cp->req.message[0] ? cp->req.message : lode_strerror(rc));
    put_failed(op, cp, rc, msg);
}

static void release_slot(struct gw_objput *op, struct objput_slot *sl)
{
    sl->busy = false;
    sl->rec = NULL;
    (void)op;
}

static void on_put(struct gw_chunk_req *req)
{
    struct cput *cp = req->data;
    struct objput_slot *sl = cp->slot;
    struct gw_objput *op = sl->op;
    cp->inflight = false;
    sl->pending--;
    op->inflight--;
    if (op->closed) {
        if (op->inflight == 0)
            abort_finish(op);
        return;
    }
    if (req->status != 0)
        put_failed(op, cp, req->status, req->message);
    if (sl->pending != 0)
        return;
    release_slot(op, sl);
    if (op->status != 0)
        return;
    op->st.stripes_done++;
    if (op->finished && op->st.stripes_done == op->n_stripes)
        schedule_done(op);
    if (op->want_ready) {
        op->want_ready = false;
        op->cfg.ready(op->cfg.data); /* last: the callback may close the put */
    }
}

/* The slot holds a whole stripe: encode, place and send its stored chunks. */
static void issue_stripe(struct gw_objput *op, struct objput_slot *sl)
{
    const struct gw_geom *g = &op->geom;
    unsigned k = g->k, m = g->m, n = k + m;
    op->fill = NULL;
    uint8_t *parity[GW_EC_MAX_M];
    for (unsigned p = 0; p < m; p++)
        parity[p] = sl->buf + (size_t)(k + p) * g->chunk_size;
    long L = gw_ec_encode_stripe(op->ec, sl->buf, g->chunk_size, sl->filled, parity);
    if (L <= 0) {
        fail(op, LODE_EINTERNAL, "stripe %" PRIu64 ": encoding failed", sl->stripe);
        release_slot(op, sl);
        return;
    }
    Lode__Stripe *rec = new_stripe_rec(n);
    if (rec && op->layout->n_stripes == op->stripes_cap) {
        size_t cap = op->stripes_cap ? op->stripes_cap * 2 : 8;
        if (cap > op->n_stripes)
            cap = op->n_stripes;
        Lode__Stripe **ns = realloc(op->layout->stripes, cap * sizeof(*ns));
        if (ns) {
            op->layout->stripes = ns;
            op->stripes_cap = cap;
        } else {
            free(rec);
            rec = NULL;
        }
    }
    if (!rec) {
        fail(op, -ENOMEM, "out of memory for the layout");
        release_slot(op, sl);
        return;
    }
    rec->offset = gw_stripe_offset(g, sl->stripe);
    rec->length = sl->filled;
    op->layout->stripes[op->layout->n_stripes++] = rec;
    sl->rec = rec;

    uint32_t stored = gw_stripe_stored(g, sl->stripe);
    struct gw_place_req pr = {.chunks = stored, .chunk_bytes = gw_chunk_len(g, sl->stripe, 0)};
    uint32_t nids[GW_EC_MAX_N];
    struct cmn_err err;
    struct gw_rand rnd = {next_rand, &op->seed};
    int rc = gw_place_stripe(op->place, &pr, rnd, nids, &err);
    if (rc) {
        fail(op, rc, "stripe %" PRIu64 ": %s", sl->stripe, cmn_err_text(&err));
        release_slot(op, sl);
        return;
    }
    /* Fill every record first: a retry inside submit() reads the other chunks' nodes. */
    for (unsigned c = 0; c < n; c++) {
        Lode__ChunkRef *ref = rec->chunks[c];
        struct cput *cp = &sl->cp[c];
        memset(cp, 0, sizeof(*cp));
        cp->slot = sl;
        cp->index = c;
        if (!(stored & (1u << c)))
            continue;
        ref->nid = nids[c];
        struct cmn_id id = cmn_id_random();
        memcpy(ref->chunk_id.data, id.b, CMN_ID_SIZE);
        ref->chunk_id.len = CMN_ID_SIZE;
        cp->len = gw_chunk_len(g, sl->stripe, c);
        cp->xxh3 = XXH3_64bits_dispatch(sl->buf + (size_t)c * g->chunk_size, cp->len);
    }
    for (unsigned c = 0; c < n && op->status == 0; c++)
        if (stored & (1u << c))
            submit(op, &sl->cp[c]);
    if (sl->pending == 0)
        release_slot(op, sl);
}

/* ---- the API -------------------------------------------------------------------------- */

static int build_place_map(const struct gw_cluster_map *map, struct gw_place_map **out,
                           struct cmn_err *err)
{
    struct gw_node_info *ni = calloc(map->n_nodes ? map->n_nodes : 1, sizeof(*ni));
    if (!ni)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < map->n_nodes; i++) {
        const struct gw_map_node *n = &map->nodes[i];
        ni[i].nid = n->nid;
        ni[i].domain = n->failure_domain ? n->failure_domain : "";
        int st = (int)n->state;
        ni[i].state = (st >= 0 && st <= (int)GW_NODE_REMOVED) ? (enum gw_node_state)st
                                                              : GW_NODE_UNKNOWN;
        ni[i].capacity = n->capacity_bytes;
        ni[i].used = n->used_bytes;
    }
    int rc = gw_place_map_new(ni, map->n_nodes, out, err);
    free(ni);
    return rc;
}

static unsigned popcount(uint32_t x)
{
    return (unsigned)__builtin_popcount(x);
}

/* Chooses the layout, narrowing k when too few failure domains can take a chunk. */
static int choose(struct gw_objput *op, struct cmn_err *err)
{
    const struct gw_objput_config *cfg = &op->cfg;
    struct gw_layout_choice ch;
    int rc = gw_layout_choose(&cfg->policy, cfg->size, &ch, err);
    if (rc)
        return rc;
    for (int round = 0;; round++) {
        op->geom = (struct gw_geom){.k = ch.k, .m = ch.m, .chunk_size = ch.chunk_size,
                                    .size = cfg->size};
        if ((rc = gw_geom_check(&op->geom, err)) != 0)
            return rc;
        op->n_stripes = gw_geom_stripes(&op->geom);
        if (op->n_stripes == 0)
            return 0;
        unsigned need = popcount(gw_stripe_stored(&op->geom, 0));
        unsigned have = gw_place_usable_domains(op->place, gw_chunk_len(&op->geom, 0, 0));
        if (have >= need)
            return 0;
        if (!cfg->allow_degraded || round > 0 || ch.k == 1)
            return cmn_err_set(err, LODE_ENOSPACE,
                               "need %u failure domains with an UP node that has room for a "
                               "%" PRIu32 "-byte chunk, %u available",
                               need, gw_chunk_len(&op->geom, 0, 0), have);
        struct gw_layout_policy pol;
        if ((rc = gw_layout_fit_domains(&cfg->policy, have, &pol, err)) != 0)
            return rc;
        if ((rc = gw_layout_choose(&pol, cfg->size, &ch, err)) != 0)
            return rc;
        LOG_DEBUG(LOG_CTX, "%u failure domains usable: writing %u+%u", have, ch.k, ch.m);
    }
}

int gw_objput_create(const struct gw_objput_config *cfg, struct gw_objput **out,
                     struct cmn_err *err)
{
    *out = NULL;
    if (!cfg->loop || !cfg->pool || !cfg->meta || !cfg->map || !cfg->done || !cfg->ready)
        return cmn_err_set(err, -EINVAL, "objput: missing loop, pool, meta, map or callback");
    if (cfg->size > GW_OBJECT_MAX)
        return cmn_err_set(err, -EINVAL, "object of %" PRIu64 " bytes exceeds the limit",
                           cfg->size);
    if (cfg->window > GW_OBJPUT_WINDOW_MAX)
        return cmn_err_set(err, -EINVAL, "objput window %u above %u", cfg->window,
                           GW_OBJPUT_WINDOW_MAX);
    struct gw_objput *op = calloc(1, sizeof(*op));
    if (!op)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    op->cfg = *cfg;
    if (!op->cfg.window)
        op->cfg.window = GW_OBJPUT_WINDOW_DEFAULT;
    if (!op->cfg.timeout_ms)
        op->cfg.timeout_ms = GW_OBJPUT_TIMEOUT_DEFAULT;
    op->seed = cfg->seed;
    op->map = gw_cluster_map_hold(cfg->map);
    int rc = build_place_map(op->map, &op->place, err);
    if (rc == 0)
        rc = choose(op, err);
    if (rc == 0) {
        op->ec = gw_ec_get(op->geom.k, op->geom.m, err);
        if (!op->ec)
            rc = err && err->code ? err->code : -EINVAL;
    }
    if (rc == 0) {
        /* A one-stripe object needs one buffer whatever the window. */
        if (op->n_stripes < op->cfg.window)
            op->cfg.window = op->n_stripes ? (unsigned)op->n_stripes : 1;
        op->slot_bytes = (size_t)(op->geom.k + op->geom.m) * op->geom.chunk_size;
        op->st.buffer_limit = op->cfg.window * op->slot_bytes;
        op->slots = calloc(op->cfg.window, sizeof(*op->slots));
        op->layout = calloc(1, sizeof(*op->layout));
        if (!op->slots || !op->layout)
            rc = cmn_err_set(err, -ENOMEM, "out of memory");
        else {
            lode__layout__init(op->layout);
            op->layout->k = op->geom.k;
            op->layout->m = op->geom.m;
            op->layout->chunk_size = op->geom.chunk_size;
            op->layout->format = 1;
            for (unsigned i = 0; i < op->cfg.window; i++)
                op->slots[i].op = op;
        }
    }
    if (rc == 0)
        rc = uv_timer_init(cfg->loop, &op->defer);
    if (rc) {
        if (op->slots)
            free(op->slots);
        gw_layout_free(op->layout);
        gw_place_map_free(op->place);
        gw_cluster_map_put(op->map);
        free(op);
        if (err && err->code == 0)
            cmn_err_set(err, rc, "objput: %s", lode_strerror(rc));
        return rc;
    }
    op->defer.data = op;
    *out = op;
    return 0;
}

void gw_objput_scheme(const struct gw_objput *op, unsigned *k, unsigned *m,
                      uint32_t *chunk_size)
{
    if (k)
        *k = op->geom.k;
    if (m)
        *m = op->geom.m;
    if (chunk_size)
        *chunk_size = op->geom.chunk_size;
}

/* A free stripe buffer, allocated on first use, or NULL when all are busy. */
static struct objput_slot *take_slot(struct gw_objput *op)
{
    for (unsigned i = 0; i < op->cfg.window; i++) {
        struct objput_slot *sl = &op->slots[i];
        if (sl->busy)
            continue;
        if (!sl->buf) {
            size_t sz = (op->slot_bytes + GW_STRIPE_ALIGN - 1) / GW_STRIPE_ALIGN *
                        GW_STRIPE_ALIGN;
            sl->buf = aligned_alloc(GW_STRIPE_ALIGN, sz);
            if (!sl->buf)
                return NULL;
            op->st.buffered += op->slot_bytes;
            if (op->st.buffered > op->st.buffered_max)
                op->st.buffered_max = op->st.buffered;
        }
        sl->busy = true;
        sl->filled = 0;
        sl->pending = 0;
        sl->stripe = op->next_stripe++;
        return sl;
    }
    return NULL;
}

ssize_t gw_objput_write(struct gw_objput *op, const void *data, size_t len)
{
    if (op->status != 0)
        return op->status;
    if (op->finished || len > op->geom.size - op->st.written)
        return -EINVAL;
    const uint8_t *p = data;
    size_t taken = 0;
    while (taken < len) {
        if (!op->fill) {
            op->fill = take_slot(op);
            if (!op->fill) {
                bool oom = false;
                for (unsigned i = 0; i < op->cfg.window; i++)
                    oom |= !op->slots[i].busy;
                if (oom) {
                    fail(op, -ENOMEM, "out of memory for a stripe buffer");
                    return op->status;
                }
                op->want_ready = true;
                break;
            }
        }
        struct objput_slot *sl = op->fill;
        uint64_t slen = gw_stripe_len(&op->geom, sl->stripe);
        size_t n = len - taken;
        if (n > slen - sl->filled)
            n = (size_t)(slen - sl->filled);
        memcpy(sl->buf + sl->filled, p + taken, n);
        sl->filled += n;
        taken += n;
        op->st.written += n;
        if (sl->filled == slen) {
            issue_stripe(op, sl);
            if (op->status != 0)
                return op->status;
        }
    }
    return (ssize_t)taken;
}

int gw_objput_finish(struct gw_objput *op)
{
    if (op->status != 0)
        return op->status;
    if (op->finished)
        return -EINVAL;
    if (op->st.written != op->geom.size) {
        fail(op, -EINVAL, "body ended after %" PRIu64 " of %" PRIu64 " bytes", op->st.written,
             op->geom.size);
        return -EINVAL;
    }
    op->finished = true;
    if (op->st.stripes_done == op->n_stripes)
        schedule_done(op);
    return 0;
}

void gw_objput_close(struct gw_objput *op)
{
    if (!op)
        return;
    op->closed = true;
    uv_timer_stop(&op->defer);
    if (op->delivered) {
        destroy(op);
        return;
    }
    if (op->inflight == 0)
        abort_finish(op);
}

void gw_objput_stats(const struct gw_objput *op, struct gw_objput_stats *out)
{
    *out = op->st;
}
