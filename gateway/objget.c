/* The object read pipeline (gateway/objget.h).
 *
 * Each stripe of the range is a job: phase 1 fetches the needed piece of every data chunk;
 * when all answered and some failed, phase 2 rebuilds the failed pieces from one byte range
 * of k survivors (re-planning while survivors keep failing), reusing the data pieces phase 1
 * already holds when they cover that range. Jobs live in a ring of `window` entries and
 * leave it when the caller has consumed their bytes.
 *
 * With on_segs, each ring slot owns a pipe per data chunk: phase 1 splices the chunk's
 * piece into it (gw_nodepool_get_splice) and the stripe is delivered as pipe segments that
 * the caller splices on to the client. A stripe that needs phase 2 first reads its pipes
 * back into the stripe buffer. A pipe is reused for the slot's next job once the caller
 * consumed everything (it is empty then); after a failed read, or bytes left unconsumed,
 * it is closed.
 */
#include "gateway/objget.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc_methods.h"
#include "gateway/ec.h"
#include "gateway/stripe.h"
#include "node.pb-c.h"

#define LOG_CTX "objget"
#define REPORT_TIMEOUT_MS 30000

struct job;

struct gget {
    struct gw_chunk_req req;
    struct job *job;
    unsigned chunk;
    bool phase2;
    bool piped;                     /* spliced into the slot's pipe for this chunk */
};

struct part {
    const Lode__Layout *layout;
    const struct gw_ec *ec;
    struct gw_geom geom;
    uint64_t start;                 /* object offset of the part */
};

struct job {
    struct gw_objget *g;
    bool used, complete, delivered;
    const struct part *part;
    uint64_t stripe;
    const Lode__Stripe *rec;
    uint64_t a, b;                  /* needed bytes, stripe coordinates */
    uint8_t *out;
    size_t consumed;
    unsigned pending;
    uint32_t failed;                /* chunks that cannot be read */
    uint32_t ok;                    /* data chunks whose phase-1 piece arrived */
    uint32_t want;                  /* data chunks with a piece to rebuild */
    uint32_t have;                  /* chunks whose [x, y) is in scratch */
    bool phase2;
    uint32_t x, y;                  /* the rebuilt range, chunk coordinates */
    uint8_t *scratch;               /* (k + m) * (y - x) */
    uint32_t spliced[GW_EC_MAX_N];  /* leading bytes of chunk c's piece in its pipe */
    struct gget gets[GW_EC_MAX_N];
};

struct gw_objget {
    struct gw_objget_config cfg;
    struct gw_cluster_map *map;
    struct part *parts;
    size_t n_parts;
    size_t cur_part;                /* cursor: next bytes to schedule */
    uint64_t pos, end;
    struct job *jobs;               /* ring of cfg.window */
    /* Each ring slot keeps its last stripe buffer for the next job in it: a multi-megabyte
     * malloc per stripe is an mmap whose pages the kernel zeroes and faults in, then
     * unmaps, which cost more than the bytes' copy. At most one per slot, so what is held
     * stays within the window's bound. */
    struct { uint8_t *buf; size_t cap; } *spare;
    /* on_segs: per slot and data chunk, a pipe {read, write} or {-1, -1}; kmax per slot */
    int (*pipes)[2];
    unsigned kmax;
    bool no_pipes;                  /* a pipe could not be had: memory from here on */
    unsigned head, count;           /* oldest job, jobs in the ring */
    unsigned nd;                    /* jobs from head already delivered */
    unsigned inflight;
    unsigned depth;                 /* user callbacks running */
    bool delivering, closed, done_called, freed;
    int status;
    char message[CMN_ERR_MSG_MAX];
    uv_timer_t defer;
    struct gw_objget_stats st;
};

static void deliver(struct gw_objget *g);
static void pump(struct gw_objget *g);
static void job_step(struct gw_objget *g, struct job *j);

/* ---- pipes (on_segs) ------------------------------------------------------------------- */

/* Pipes held by readers in the whole process: two descriptors each, kept to a quarter of
 * the descriptor limit so that splicing never starves accept() or the node connections. */
static atomic_long pipes_open;

static long pipes_max(void)
{
    static atomic_long max;
    long m = atomic_load(&max);
    if (m == 0) {
        struct rlimit rl;
        m = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                ? (long)(rl.rlim_cur / 8)
                : 128;
        if (m < 1)
            m = 1;
        atomic_store(&max, m);
    }
    return m;
}

static int *slot_pipe(struct gw_objget *g, struct job *j, unsigned c)
{
    return g->pipes[(size_t)(j - g->jobs) * g->kmax + c];
}

static void pipe_close(int *fd)
{
    if (fd[0] < 0)
        return;
    close(fd[0]);
    close(fd[1]);
    fd[0] = fd[1] = -1;
    atomic_fetch_sub(&pipes_open, 1);
}

/* The pipe for chunk c of job j, opened (and sized for `len` bytes) if needed; NULL when
 * none can be had (the reader then stays in memory). */
static int *pipe_for(struct gw_objget *g, struct job *j, unsigned c, size_t len)
{
    if (!g->pipes || g->no_pipes || c >= g->kmax || len < GW_OBJGET_SPLICE_MIN)
        return NULL;
    int *fd = slot_pipe(g, j, c);
    if (fd[0] >= 0)
        return fd;
    if (atomic_fetch_add(&pipes_open, 1) >= pipes_max()) {
        atomic_fetch_sub(&pipes_open, 1);
        return NULL; /* busy process: this piece goes to memory, later ones may not */
    }
    if (pipe2(fd, O_NONBLOCK | O_CLOEXEC) != 0) {
        atomic_fetch_sub(&pipes_open, 1);
        fd[0] = fd[1] = -1;
        g->no_pipes = true;
        return NULL;
    }
    /* Socket pages can be up to 32 KiB per pipe slot, 4 KiB at worst: ask for one slot per
     * page of the piece, within the unprivileged limit (1 MiB); what does not fit is read. */
    int want = len > (1u << 20) ? 1 << 20 : (int)len;
    if (fcntl(fd[1], F_SETPIPE_SZ, want) < 0 && errno == EPERM)
        g->no_pipes = true; /* the user's pipe allowance is spent: stop asking */
    return fd;
}

/* Reads chunk c's spliced bytes back into the stripe buffer (a degraded stripe is decoded
 * in memory). Returns false when the pipe did not give them all. */
static bool unsplice(struct gw_objget *g, struct job *j, unsigned c, uint8_t *dst)
{
    int *fd = slot_pipe(g, j, c);
    size_t want = j->spliced[c], got = 0;
    while (got < want) {
        ssize_t n = read(fd[0], dst + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    j->spliced[c] = 0;
    if (got == want)
        return true;
    pipe_close(fd);
    return false;
}

/* ---- lifetime ------------------------------------------------------------------------- */

static void on_defer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void job_release(struct gw_objget *g, struct job *j)
{
    const struct gw_geom *ge = j->part ? &j->part->geom : NULL;
    if (j->out)
        g->st.buffered -= (size_t)(j->b - j->a);
    if (j->scratch && ge)
        g->st.buffered -= (size_t)(ge->k + ge->m) * (j->y - j->x);
    size_t slot = (size_t)(j - g->jobs);
    /* Bytes left in a pipe (not consumed, a read that failed halfway) must not reach the
     * next job: such pipes are closed. */
    bool drained = j->used && j->consumed == (size_t)(j->b - j->a);
    for (unsigned c = 0; g->pipes && j->used && c < g->kmax; c++) {
        if (j->spliced[c] && !drained)
            pipe_close(slot_pipe(g, j, c));
    }
    if (j->out && g->spare && !g->freed) {
        free(g->spare[slot].buf);
        g->spare[slot].buf = j->out;
        g->spare[slot].cap = (size_t)(j->b - j->a);
    } else {
        free(j->out);
    }
    free(j->scratch);
    memset(j, 0, sizeof(*j));
}

/* Frees the reader once closed, outside callbacks and with nothing in flight. */
static bool maybe_free(struct gw_objget *g)
{
    if (!g->closed || g->depth || g->inflight || g->freed)
        return g->closed;
    g->freed = true;
    for (unsigned i = 0; g->jobs && i < g->cfg.window; i++)
        job_release(g, &g->jobs[i]);
    for (unsigned i = 0; g->spare && i < g->cfg.window; i++)
        free(g->spare[i].buf);
    free(g->spare);
    for (size_t i = 0; g->pipes && i < (size_t)g->cfg.window * g->kmax; i++)
        pipe_close(g->pipes[i]);
    free(g->pipes);
    free(g->jobs);
    free(g->parts);
    gw_cluster_map_put(g->map);
    g->defer.data = g;
    uv_close((uv_handle_t *)&g->defer, on_defer_closed);
    return true;
}

static bool all_done(const struct gw_objget *g);

static void on_defer(uv_timer_t *t)
{
    struct gw_objget *g = t->data;
    if (g->closed || g->done_called)
        return;
    deliver(g);
    if (g->closed || (g->status == 0 && !all_done(g)))
        return;
    g->done_called = true;
    g->depth++;
    g->cfg.on_done(g->cfg.data, g->status, g->message);
    g->depth--;
    maybe_free(g);
}

static void fail(struct gw_objget *g, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct gw_objget *g, int status, const char *fmt, ...)
{
    if (g->status != 0)
        return;
    g->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->message, sizeof(g->message), fmt, ap);
    va_end(ap);
    if (!g->closed)
        uv_timer_start(&g->defer, on_defer, 0, 0);
}

/* ---- corrupt reports ------------------------------------------------------------------ */

static void on_reported(void *data, const struct cmn_rpc_result *res)
{
    (void)data;
    if (res->status != 0)
        LOG_WARN(LOG_CTX, "reporting a damaged chunk to meta failed: %s", res->message);
}

static void report(struct gw_objget *g, const Lode__ChunkRef *ref)
{
    if (!g->cfg.meta)
        return;
    Lode__CorruptChunk cc = LODE__CORRUPT_CHUNK__INIT, *ccp = &cc;
    cc.nid = ref->nid;
    cc.chunk_id = ref->chunk_id;
    cc.reason = (char *)"gateway read";
    /* detected_ms 0: meta stamps its own time (no clock is read here). */
    Lode__ReportCorrupt rep = LODE__REPORT_CORRUPT__INIT;
    rep.n_chunks = 1;
    rep.chunks = &ccp;
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_REPORT_CORRUPT;
    cmd.report_corrupt = &rep;
    if (cmn_meta_async_call(g->cfg.meta, CMN_RPC_CORRUPT_REPORT, 0, &cmd.base,
                            REPORT_TIMEOUT_MS, on_reported, NULL) == 0)
        g->st.corrupt_reported++;
}

/* ---- chunk reads ---------------------------------------------------------------------- */

static bool readable(struct gw_objget *g, const Lode__ChunkRef *ref)
{
    const struct gw_map_node *n = gw_cluster_map_find(g->map, ref->nid);
    return n && gw_map_node_readable(n);
}

static void on_get(struct gw_chunk_req *req);

/* Where the bytes of chunk c's read land: the output buffer (phase 1) or the chunk's row
 * of the decode scratch (phase 2). */
static uint8_t *dest_of(struct job *j, unsigned c, bool phase2)
{
    if (phase2)
        return j->scratch + (size_t)c * (j->y - j->x);
    uint64_t cs = j->part->geom.chunk_size;
    uint64_t lo = j->a > c * cs ? j->a : c * cs;
    return j->out + (lo - j->a);
}

/* Called with the outcome of one read (answered or refused at submission). */
static void got(struct gw_objget *g, struct gget *gg, int status, const uint8_t *p, size_t n,
                size_t spliced)
{
    struct job *j = gg->job;
    unsigned c = gg->chunk;
    const Lode__ChunkRef *ref = j->rec->chunks[c];
    if (status == LODE_ECORRUPT || status == LODE_ENOCHUNK)
        report(g, ref);
    if (status != 0) {
        LOG_DEBUG(LOG_CTX, "chunk read on node %" PRIu32 " failed: %s", ref->nid,
                  lode_strerror(status));
        if (gg->piped)
            pipe_close(slot_pipe(g, j, c)); /* it may hold part of the reply */
        j->failed |= 1u << c;
        return;
    }
    /* Normally the bytes were read from the socket straight into place (issue() passes
     * the destination) or spliced into the pipe; the copy remains for a reply that could
     * not be placed. */
    uint8_t *dst = dest_of(j, c, gg->phase2);
    if (p != dst)
        memcpy(dst, p, n);
    else if (gg->piped)
        j->spliced[c] = (uint32_t)spliced;
    if (!gg->phase2) {
        j->ok |= 1u << c;
    } else {
        uint32_t w = j->y - j->x;
        memset(dst + n, 0, w - n);
        j->have |= 1u << c;
    }
}

static void issue(struct gw_objget *g, struct job *j, unsigned c, uint64_t off, uint64_t len,
                  bool phase2)
{
    struct gget *gg = &j->gets[c];
    memset(gg, 0, sizeof(*gg));
    gg->job = j;
    gg->chunk = c;
    gg->phase2 = phase2;
    gg->req.data = gg;
    gg->req.cb = on_get;
    const Lode__ChunkRef *ref = j->rec->chunks[c];
    g->st.chunk_gets++;
    int *fd = phase2 ? NULL : pipe_for(g, j, c, (size_t)len);
    int rc;
    if (fd) {
        gg->piped = true;
        rc = gw_nodepool_get_splice(g->cfg.pool, &gg->req, ref->nid, ref->chunk_id.data, off,
                                    len, fd[1], dest_of(j, c, phase2), g->cfg.timeout_ms);
    } else {
        rc = gw_nodepool_get_into(g->cfg.pool, &gg->req, ref->nid, ref->chunk_id.data, off,
                                  len, dest_of(j, c, phase2), g->cfg.timeout_ms);
    }
    if (rc == 0) {
        j->pending++;
        g->inflight++;
        return;
    }
    got(g, gg, rc, NULL, 0, 0);
}

static void on_get(struct gw_chunk_req *req)
{
    struct gget *gg = req->data;
    struct job *j = gg->job;
    struct gw_objget *g = j->g;
    g->inflight--;
    j->pending--;
    if (g->closed) {
        maybe_free(g);
        return;
    }
    int status = req->status;
    if (status == 0 && !req->payload && req->payload_len)
        status = LODE_EBADMSG;
    got(g, gg, status, req->payload, req->payload_len, req->spliced);
    if (j->pending == 0 && g->status == 0)
        job_step(g, j);
    deliver(g);
}

/* ---- jobs ----------------------------------------------------------------------------- */

static void piece(const struct job *j, unsigned c, uint64_t *lo, uint64_t *hi)
{
    uint64_t cs = j->part->geom.chunk_size;
    *lo = j->a > c * cs ? j->a : c * cs;
    *hi = j->b < (c + 1) * cs ? j->b : (c + 1) * cs;
}

static void complete(struct gw_objget *g, struct job *j)
{
    j->complete = true;
    g->st.stripes++;
    if (j->scratch) {
        const struct gw_geom *ge = &j->part->geom;
        g->st.buffered -= (size_t)(ge->k + ge->m) * (j->y - j->x);
        free(j->scratch);
        j->scratch = NULL;
    }
}

/* Enters phase 2: which range to rebuild, and what phase 1 already holds of it. */
static int start_phase2(struct gw_objget *g, struct job *j)
{
    const struct gw_geom *ge = &j->part->geom;
    unsigned k = ge->k, n = ge->k + ge->m;
    uint64_t cs = ge->chunk_size;
    j->phase2 = true;
    g->st.degraded_stripes++;
    /* Decoding works on memory: what phase 1 spliced comes back out of the pipes. */
    for (unsigned c = 0; c < k; c++) {
        if (!j->spliced[c])
            continue;
        uint64_t lo, hi;
        piece(j, c, &lo, &hi);
        if (!unsplice(g, j, c, j->out + (lo - j->a))) {
            j->ok &= ~(1u << c);
            j->failed |= 1u << c;
            j->want |= 1u << c;
        }
    }
    if (g->cfg.degraded)
        cmn_counter_add(g->cfg.degraded, 1);
    uint64_t x = UINT64_MAX, y = 0;
    for (unsigned c = 0; c < k; c++) {
        if (!(j->want & (1u << c)))
            continue;
        uint64_t lo, hi;
        piece(j, c, &lo, &hi);
        x = lo - c * cs < x ? lo - c * cs : x;
        y = hi - c * cs > y ? hi - c * cs : y;
    }
    j->x = (uint32_t)x;
    j->y = (uint32_t)y;
    size_t w = (size_t)(y - x);
    j->scratch = calloc(n, w);
    if (!j->scratch)
        return -ENOMEM;
    g->st.buffered += n * w;
    if (g->st.buffered > g->st.buffered_max)
        g->st.buffered_max = g->st.buffered;
    for (unsigned c = 0; c < n; c++) {
        uint32_t len = gw_chunk_len(ge, j->stripe, c);
        if (len <= x) {
            /* Nothing of it lies in the range (absent or short): present as zeroes. */
            j->have |= 1u << c;
            continue;
        }
        if (!(j->failed & (1u << c)) && !readable(g, j->rec->chunks[c]))
            j->failed |= 1u << c;
        if (c >= k || !(j->ok & (1u << c)))
            continue;
        uint64_t lo, hi;
        piece(j, c, &lo, &hi);
        uint64_t need_hi = y < len ? y : len;
        if (lo - c * cs <= x && hi - c * cs >= need_hi) {
            memcpy(j->scratch + (size_t)c * w, j->out + (c * cs + x - j->a),
                   (size_t)(need_hi - x));
            j->have |= 1u << c;
        }
    }
    return 0;
}

/* Every read of the job has answered: finish it, or go on rebuilding. */
static void job_step(struct gw_objget *g, struct job *j)
{
    const struct gw_geom *ge = &j->part->geom;
    unsigned k = ge->k, n = ge->k + ge->m;
    uint64_t cs = ge->chunk_size;
    if (!j->phase2) {
        uint32_t need = 0;
        for (unsigned c = 0; c < k; c++) {
            uint64_t lo, hi;
            piece(j, c, &lo, &hi);
            if (lo < hi)
                need |= 1u << c;
        }
        j->want = need & ~j->ok;
        if (!j->want) {
            complete(g, j);
            return;
        }
        int rc = start_phase2(g, j);
        if (rc) {
            fail(g, rc, "out of memory for a degraded read");
            return;
        }
    }
    for (;;) {
        uint32_t all = n >= 32 ? UINT32_MAX : (1u << n) - 1;
        uint32_t present = all & ~j->failed & ~j->want;
        struct gw_ec_plan plan;
        struct cmn_err err;
        int rc = gw_ec_plan_init(&plan, j->part->ec, present, j->want, &err);
        if (rc) {
            fail(g, rc == LODE_EUNAVAILABLE ? LODE_EUNAVAILABLE : rc,
                 "object bytes at %" PRIu64 ": %s", j->part->start + j->rec->offset + j->a,
                 cmn_err_text(&err));
            return;
        }
        uint32_t missing = gw_ec_plan_sources(&plan) & ~j->have;
        size_t w = j->y - j->x;
        if (!missing) {
            uint8_t *chunks[GW_EC_MAX_N];
            for (unsigned c = 0; c < n; c++)
                chunks[c] = j->scratch + (size_t)c * w;
            if ((rc = gw_ec_plan_run(&plan, w, chunks)) != 0) {
                fail(g, LODE_EINTERNAL, "decoding failed: %s", lode_strerror(rc));
                return;
            }
            for (unsigned c = 0; c < k; c++) {
                if (!(j->want & (1u << c)))
                    continue;
                uint64_t lo, hi;
                piece(j, c, &lo, &hi);
                memcpy(j->out + (lo - j->a), chunks[c] + (lo - c * cs - j->x),
                       (size_t)(hi - lo));
            }
            complete(g, j);
            return;
        }
        for (unsigned c = 0; c < n; c++) {
            if (!(missing & (1u << c)))
                continue;
            uint32_t len = gw_chunk_len(ge, j->stripe, c);
            uint32_t hi = j->y < len ? j->y : len;
            issue(g, j, c, j->x, hi - j->x, true);
        }
        if (j->pending)
            return;
        /* Every read was refused at once: plan again without those chunks. */
    }
}

/* Checks a stripe record before trusting its chunk references. */
static int check_rec(const struct part *pt, uint64_t s, struct cmn_err *err)
{
    const struct gw_geom *ge = &pt->geom;
    const Lode__Stripe *rec = pt->layout->stripes[s];
    if (!rec)
        return cmn_err_set(err, LODE_ECORRUPT, "stripe %" PRIu64 " missing", s);
    int rc = gw_stripe_verify(ge, s, rec->offset, rec->length, (unsigned)rec->n_chunks, err);
    if (rc)
        return rc;
    for (unsigned c = 0; c < ge->k + ge->m; c++) {
        const Lode__ChunkRef *r = rec->chunks[c];
        if (gw_chunk_len(ge, s, c) == 0)
            continue;
        if (!r || r->nid == 0 || r->chunk_id.len != CMN_ID_SIZE)
            return cmn_err_set(err, LODE_ECORRUPT,
                               "stripe %" PRIu64 " chunk %u: no node or a bad chunk id", s, c);
    }
    return 0;
}

static void pump(struct gw_objget *g)
{
    while (g->status == 0 && !g->closed && g->count < g->cfg.window && g->pos < g->end) {
        while (g->pos >= g->parts[g->cur_part].start + g->parts[g->cur_part].geom.size)
            g->cur_part++;
        const struct part *pt = &g->parts[g->cur_part];
        const struct gw_geom *ge = &pt->geom;
        uint64_t p = g->pos - pt->start;
        uint64_t sb = gw_geom_stripe_bytes(ge);
        uint64_t s = p / sb;
        uint64_t so = s * sb;
        uint64_t stop = g->end - pt->start - so;
        uint64_t sl = gw_stripe_len(ge, s);
        struct cmn_err err;
        int rc = check_rec(pt, s, &err);
        if (rc) {
            fail(g, rc, "%s", cmn_err_text(&err));
            return;
        }
        unsigned slot = (g->head + g->count) % g->cfg.window;
        struct job *j = &g->jobs[slot];
        memset(j, 0, sizeof(*j));
        j->g = g;
        j->used = true;
        j->part = pt;
        j->stripe = s;
        j->rec = pt->layout->stripes[s];
        j->a = p - so;
        j->b = stop < sl ? stop : sl;
        if (g->spare[slot].buf && g->spare[slot].cap >= (size_t)(j->b - j->a)) {
            j->out = g->spare[slot].buf;
            g->spare[slot].buf = NULL;
        } else {
            free(g->spare[slot].buf);
            g->spare[slot].buf = NULL;
            j->out = malloc((size_t)(j->b - j->a));
        }
        if (!j->out) {
            fail(g, -ENOMEM, "out of memory for a stripe");
            return;
        }
        g->count++;
        g->st.buffered += (size_t)(j->b - j->a);
        if (g->st.buffered > g->st.buffered_max)
            g->st.buffered_max = g->st.buffered;
        g->pos += j->b - j->a;
        uint64_t cs = ge->chunk_size;
        for (unsigned c = 0; c < ge->k; c++) {
            uint64_t lo, hi;
            piece(j, c, &lo, &hi);
            if (lo >= hi)
                continue;
            if (!readable(g, j->rec->chunks[c]))
                j->failed |= 1u << c; /* known down: go straight to the survivors */
            else
                issue(g, j, c, lo - c * cs, hi - lo, false);
        }
        if (j->pending == 0)
            job_step(g, j);
    }
}

static bool all_done(const struct gw_objget *g)
{
    return g->pos == g->end && g->nd == g->count;
}

static void kick(struct gw_objget *g)
{
    if (!g->closed && !g->done_called)
        uv_timer_start(&g->defer, on_defer, 0, 0);
}

/* A complete stripe as segments: per data chunk, its spliced bytes (pipe) then the rest
 * (memory; adjacent memory runs merged). */
static void deliver_segs(struct gw_objget *g, struct job *j, size_t len)
{
    struct gw_objget_seg segs[2 * GW_EC_MAX_N + 1];
    unsigned n = 0;
    for (unsigned c = 0; c < j->part->geom.k; c++) {
        uint64_t lo, hi;
        piece(j, c, &lo, &hi);
        if (lo >= hi)
            continue;
        size_t sp = j->spliced[c];
        if (sp) {
            segs[n++] = (struct gw_objget_seg){.fd = slot_pipe(g, j, c)[0], .len = sp};
            g->st.spliced += sp;
        }
        const uint8_t *p = j->out + (lo - j->a) + sp;
        size_t rest = (size_t)(hi - lo) - sp;
        if (!rest)
            continue;
        if (n && segs[n - 1].fd < 0 && segs[n - 1].p + segs[n - 1].len == p)
            segs[n - 1].len += rest;
        else
            segs[n++] = (struct gw_objget_seg){.fd = -1, .p = p, .len = rest};
    }
    g->cfg.on_segs(g->cfg.data, segs, n, len);
}

static void deliver(struct gw_objget *g)
{
    if (g->delivering || g->closed)
        return;
    g->delivering = true;
    while (!g->closed && g->status == 0 && g->nd < g->count) {
        struct job *j = &g->jobs[(g->head + g->nd) % g->cfg.window];
        if (!j->complete)
            break;
        j->delivered = true;
        g->nd++;
        size_t len = (size_t)(j->b - j->a);
        g->st.delivered += len;
        g->depth++;
        if (g->cfg.on_segs)
            deliver_segs(g, j, len);
        else
            g->cfg.on_data(g->cfg.data, j->out, len);
        g->depth--;
    }
    g->delivering = false;
    if (maybe_free(g))
        return;
    if (g->status == 0 && all_done(g))
        kick(g);
}

/* ---- the API -------------------------------------------------------------------------- */

static int add_part(struct gw_objget *g, const Lode__Layout *l, uint64_t size, uint64_t start,
                    struct cmn_err *err)
{
    struct part *pt = &g->parts[g->n_parts];
    if (size == 0 && (!l || l->n_stripes == 0))
        return 0; /* an empty part (or object) holds nothing to read */
    if (!l)
        return cmn_err_set(err, LODE_ECORRUPT, "%" PRIu64 " bytes without a layout", size);
    pt->layout = l;
    pt->start = start;
    pt->geom = (struct gw_geom){.k = l->k, .m = l->m, .chunk_size = l->chunk_size,
                                .size = size};
    int rc = gw_geom_check(&pt->geom, err);
    if (rc)
        return cmn_err_set(err, LODE_ECORRUPT, "layout: %s", cmn_err_text(err));
    if (gw_geom_stripes(&pt->geom) != l->n_stripes)
        return cmn_err_set(err, LODE_ECORRUPT,
                           "layout has %zu stripes, %" PRIu64 " bytes need %" PRIu64,
                           l->n_stripes, size, gw_geom_stripes(&pt->geom));
    pt->ec = gw_ec_get(l->k, l->m, err);
    if (!pt->ec)
        return err && err->code ? err->code : -EINVAL;
    size_t lim = (size_t)g->cfg.window * (2 * l->k + l->m) * l->chunk_size;
    if (lim > g->st.buffer_limit)
        g->st.buffer_limit = lim;
    g->n_parts++;
    return 0;
}

int gw_objget_create(const struct gw_objget_config *cfg, struct gw_objget **out,
                     struct cmn_err *err)
{
    *out = NULL;
    if (!cfg->loop || !cfg->pool || !cfg->map || !cfg->record ||
        (!cfg->on_data && !cfg->on_segs) || !cfg->on_done)
        return cmn_err_set(err, -EINVAL, "objget: missing loop, pool, map, record or callback");
    if (cfg->window > GW_OBJGET_WINDOW_MAX)
        return cmn_err_set(err, -EINVAL, "objget window %u above %u", cfg->window,
                           GW_OBJGET_WINDOW_MAX);
    const Lode__ObjectRecord *r = cfg->record;
    if (cfg->offset > r->size || cfg->length > r->size - cfg->offset)
        return cmn_err_set(err, -ERANGE,
                           "range %" PRIu64 "+%" PRIu64 " outside an object of %" PRIu64 " bytes",
                           cfg->offset, cfg->length, r->size);
    struct gw_objget *g = calloc(1, sizeof(*g));
    if (!g)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    g->cfg = *cfg;
    if (!g->cfg.window)
        g->cfg.window = GW_OBJGET_WINDOW_DEFAULT;
    if (!g->cfg.timeout_ms)
        g->cfg.timeout_ms = GW_OBJGET_TIMEOUT_DEFAULT;
    size_t np = r->n_parts ? r->n_parts : 1;
    g->parts = calloc(np, sizeof(*g->parts));
    g->jobs = calloc(g->cfg.window, sizeof(*g->jobs));
    g->spare = calloc(g->cfg.window, sizeof(*g->spare));
    int rc = (!g->parts || !g->jobs || !g->spare) ? cmn_err_set(err, -ENOMEM, "out of memory") : 0;
    if (rc == 0 && r->n_parts) {
        uint64_t start = 0;
        for (size_t i = 0; i < r->n_parts && rc == 0; i++) {
            const Lode__PartInfo *pi = r->parts[i];
            if (!pi || pi->size > GW_OBJECT_MAX || start + pi->size > r->size) {
                rc = cmn_err_set(err, LODE_ECORRUPT, "part %zu exceeds the object's size", i);
                break;
            }
            rc = add_part(g, pi->layout, pi->size, start, err);
            if (rc)
                cmn_err_wrap(err, "part %" PRIu32, pi->number);
            start += pi->size;
        }
        if (rc == 0 && start != r->size)
            rc = cmn_err_set(err, LODE_ECORRUPT, "parts hold %" PRIu64 " of %" PRIu64 " bytes",
                             start, r->size);
    } else if (rc == 0) {
        rc = add_part(g, r->layout, r->size, 0, err);
    }
    for (size_t i = 0; rc == 0 && i < g->n_parts; i++)
        g->kmax = g->parts[i].geom.k > g->kmax ? g->parts[i].geom.k : g->kmax;
    if (rc == 0 && cfg->on_segs && g->kmax) {
        size_t n_pipes = (size_t)g->cfg.window * g->kmax;
        g->pipes = malloc(n_pipes * sizeof(*g->pipes));
        if (!g->pipes)
            rc = cmn_err_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; g->pipes && i < n_pipes; i++)
            g->pipes[i][0] = g->pipes[i][1] = -1;
    }
    if (rc == 0)
        rc = uv_timer_init(cfg->loop, &g->defer);
    if (rc) {
        free(g->pipes);
        free(g->parts);
        free(g->jobs);
        free(g->spare);
        free(g);
        return rc;
    }
    g->defer.data = g;
    g->map = gw_cluster_map_hold(cfg->map);
    g->pos = cfg->offset;
    g->end = cfg->offset + cfg->length;
    pump(g);
    kick(g);
    *out = g;
    return 0;
}

void gw_objget_consumed(struct gw_objget *g, size_t len)
{
    while (len > 0 && g->nd > 0) {
        struct job *j = &g->jobs[g->head];
        size_t left = (size_t)(j->b - j->a) - j->consumed;
        size_t take = len < left ? len : left;
        j->consumed += take;
        len -= take;
        if (j->consumed < (size_t)(j->b - j->a))
            break;
        job_release(g, j);
        g->head = (g->head + 1) % g->cfg.window;
        g->count--;
        g->nd--;
    }
    if (g->closed)
        return;
    pump(g);
    if (g->status == 0 && g->nd < g->count &&
        g->jobs[(g->head + g->nd) % g->cfg.window].complete)
        kick(g);
}

void gw_objget_close(struct gw_objget *g)
{
    if (!g)
        return;
    g->closed = true;
    uv_timer_stop(&g->defer);
    maybe_free(g);
}

void gw_objget_stats(const struct gw_objget *g, struct gw_objget_stats *out)
{
    *out = g->st;
}
