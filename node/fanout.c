/* FANOUT_PUSH (see fanout.h).
 *
 * One struct job per request: validated and copied out of the protobuf before anything
 * starts, then driven by store-read and push completions, `depth` pieces at a time, in
 * order. A job is answered once every piece has a status; the answer goes into a small ring
 * of recent results so that a retransmitted request id gets the same answer instead of a
 * second round of writes into the client's window.
 */
#include "node/fanout.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/dc_params.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"

#define LOG_CTX "fanout"
#define DEFAULT_DEPTH 4
#define DEFAULT_LEASE_MS 5000
#define MAX_LEASE_MS 60000
/* Pieces in one request: a 4 GiB window in 64 KiB pieces. */
#define MAX_PIECES 65536
/* Recent results kept for retransmissions. */
#define RECENT 256

enum { TRANSPORT_TCP = NODE_FANOUT_TCP, TRANSPORT_RC = NODE_FANOUT_RC,
       TRANSPORT_DC = NODE_FANOUT_DC };
/* Metrics are kept per transport: index 0 tcp, 1 rc, 2 dc. */
#define N_TRANSPORTS 3

struct piece {
    struct cmn_id id;
    uint64_t chunk_off;
    uint32_t len;
    uint64_t buf_off;
    int status;
    int state;                   /* 0 waiting, 1 reading, 2 pushing, 3 done */
    struct node_read *rd;
    struct job *job;
    struct piece *next_parked;   /* dc: waiting for room in the instance's queue */
};

struct job {
    struct node_fanout *f;
    struct cmn_rpc_call *call;
    void (*done)(void *data, int status);
    void *done_data;
    uint8_t sid[CMN_DP_SID_SIZE];
    char key[CMN_DP_ACCESS_KEY_MAX + 1];
    uint64_t base, size, request_id;
    uint32_t transport;
    uint32_t tag;                /* tcp: stamped on every frame */
    uint32_t rkey;               /* rc: the window's remote key */
    struct cmn_rdma_token dctok; /* dc: the client's token, rebuilt and re-validated */
    size_t dc_posted;            /* dc: writes handed to the instance, callback pending */
    bool fencing;                /* dc: the lease ran out; answer after the fence */
    uv_timer_t lease_timer;      /* dc: fires at the deadline (frees the job once closed) */
    uint64_t deadline_ms;        /* monotonic: no write starts after it */
    uint64_t start_ns;
    struct piece *pieces;
    size_t n, next, active, finished;
    uint64_t bytes;
    bool session_lost;
    struct job *prev, *next_job; /* running jobs */
};

struct recent {
    uint8_t sid[CMN_DP_SID_SIZE];
    uint64_t request_id;
    bool used;
    uint64_t bytes;
    int32_t *statuses;
    size_t n;
};

struct node_fanout {
    uv_loop_t *loop;
    struct node_store *st;
    struct cmn_dp_server *dp;
    struct cmn_dp_rc *rc;
    void *dc;
    const struct node_fanout_dc_ops *dc_ops;
    const struct cmn_dp_dc_config *dc_config;
    struct piece *parked, *parked_tail;
    unsigned depth;
    uint32_t max_piece;
    struct job *running;
    unsigned in_flight;
    struct recent recent[RECENT];
    size_t recent_next;
    struct fo_metrics {
        struct cmn_counter *requests, *refused, *bytes, *piece_errors;
        struct cmn_histogram *latency;
    } m[N_TRANSPORTS];
    struct cmn_counter *rc_direct; /* rc bytes written without a staging copy */
    uint64_t rc_direct_seen;       /* the listener's count when last fed */
    bool dc_stats;                 /* dc_metrics registered */
    struct cmn_dp_dc_metrics dc_metrics;
};

/* The metrics of a transport number from the wire; refusals of unknown ones count as tcp. */
static struct fo_metrics *metrics_of(struct node_fanout *f, uint32_t transport)
{
    return &f->m[transport == TRANSPORT_RC ? 1 : transport == TRANSPORT_DC ? 2 : 0];
}

static void register_metrics(struct cmn_metrics *m, const char *label, struct fo_metrics *out)
{
    out->requests = cmn_metrics_counter(m, "lode_node_fanout_requests_total", label,
                                        "FANOUT_PUSH requests accepted, by transport.");
    out->refused = cmn_metrics_counter(m, "lode_node_fanout_refused_total", label,
                                       "FANOUT_PUSH requests refused before any write "
                                       "(bad fields, window, no session).");
    out->bytes = cmn_metrics_counter(m, "lode_node_fanout_bytes_total", label,
                                     "Bytes written into client windows.");
    out->piece_errors = cmn_metrics_counter(m, "lode_node_fanout_piece_errors_total", label,
                                            "Pieces not written (read error, session lost, "
                                            "lease over).");
    out->latency = cmn_metrics_histogram(m, "lode_node_fanout_seconds", label,
                                         "FANOUT_PUSH time from arrival to answer.", NULL, 0);
}

int node_fanout_create(const struct node_fanout_options *o, struct node_fanout **out)
{
    struct node_fanout *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->loop = o->loop;
    f->st = o->store;
    f->dp = o->dp;
    f->rc = o->rc;
    f->dc = o->dc && o->dc_ops ? o->dc : NULL;
    f->dc_ops = o->dc_ops;
    f->dc_config = o->dc_config;
    f->depth = o->depth ? o->depth : DEFAULT_DEPTH;
    f->max_piece = o->max_piece ? o->max_piece : CMN_DP_MAX_FRAME_DEFAULT;
    if (o->metrics) {
        /* rc series exist only on nodes that serve rc, so dashboards can tell "no rc here"
         * from "rc idle". */
        register_metrics(o->metrics, "transport=\"tcp\"", &f->m[0]);
        if (o->rc) {
            register_metrics(o->metrics, "transport=\"rc\"", &f->m[1]);
            f->rc_direct = cmn_metrics_counter(
                o->metrics, "lode_node_rc_direct_bytes_total", NULL,
                "Bytes the rc listener wrote from the registered read buffers where the disk "
                "put them (rdma-read-buffers), without a copy through its staging memory.");
        }
        if (o->dc) {
            register_metrics(o->metrics, "transport=\"dc\"", &f->m[2]);
            f->dc_stats = cmn_dp_dc_metrics_init(&f->dc_metrics, o->metrics, "lode_node",
                                                 NULL) == 0;
        }
    }
    *out = f;
    return 0;
}

void node_fanout_detach_dc(struct node_fanout *f)
{
    f->dc = NULL;
}

unsigned node_fanout_in_flight(const struct node_fanout *f)
{
    return f->in_flight;
}

void node_fanout_destroy(struct node_fanout *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < RECENT; i++)
        free(f->recent[i].statuses);
    free(f);
}

/* ---- recent results ------------------------------------------------------------------- */

static struct recent *recent_find(struct node_fanout *f, const uint8_t sid[16], uint64_t id)
{
    for (size_t i = 0; i < RECENT; i++) {
        struct recent *r = &f->recent[i];
        if (r->used && r->request_id == id && memcmp(r->sid, sid, 16) == 0)
            return r;
    }
    return NULL;
}

static void recent_add(struct node_fanout *f, const struct job *j)
{
    struct recent *r = &f->recent[f->recent_next];
    f->recent_next = (f->recent_next + 1) % RECENT;
    free(r->statuses);
    memset(r, 0, sizeof(*r));
    r->statuses = malloc(j->n * sizeof(*r->statuses));
    if (!r->statuses)
        return; /* a retransmission then runs again; pushes of verified bytes are idempotent */
    for (size_t i = 0; i < j->n; i++)
        r->statuses[i] = j->pieces[i].status;
    r->n = j->n;
    r->bytes = j->bytes;
    memcpy(r->sid, j->sid, 16);
    r->request_id = j->request_id;
    r->used = true;
}

static void reply_result(struct cmn_rpc_call *call, uint64_t bytes, const int32_t *st, size_t n)
{
    Lode__FanoutPushResponse resp = LODE__FANOUT_PUSH_RESPONSE__INIT;
    Lode__FanoutPieceResult *res = calloc(n ? n : 1, sizeof(*res));
    Lode__FanoutPieceResult **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!res || !ptrs) {
        free(res);
        free(ptrs);
        cmn_rpc_reply_error(call, -ENOMEM, NULL, 0, "out of memory answering FANOUT_PUSH");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        lode__fanout_piece_result__init(&res[i]);
        res[i].status = st[i];
        ptrs[i] = &res[i];
    }
    resp.bytes = bytes;
    resp.n_pieces = n;
    resp.pieces = ptrs;
    cmn_rpc_reply(call, &resp.base);
    free(res);
    free(ptrs);
}

/* ---- a job ---------------------------------------------------------------------------- */

static void job_pump(struct job *j);

static void on_job_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void job_finish(struct job *j)
{
    if (j->transport == TRANSPORT_DC)
        uv_timer_stop(&j->lease_timer);
    struct node_fanout *f = j->f;
    int32_t *st = malloc((j->n ? j->n : 1) * sizeof(*st));
    size_t failed = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (st)
            st[i] = j->pieces[i].status;
        failed += j->pieces[i].status != 0;
    }
    if (st)
        reply_result(j->call, j->bytes, st, j->n);
    else
        cmn_rpc_reply_error(j->call, -ENOMEM, NULL, 0, "out of memory answering FANOUT_PUSH");
    free(st);
    recent_add(f, j);
    struct fo_metrics *m = metrics_of(f, j->transport);
    cmn_counter_add(m->bytes, j->bytes);
    cmn_counter_add(m->piece_errors, failed);
    cmn_histogram_observe(m->latency, (double)(cmn_mono_ns() - j->start_ns) / 1e9);
#ifdef HAVE_RDMA
    if (j->transport == TRANSPORT_RC && f->rc && f->rc_direct) {
        struct cmn_dp_rc_stats rs;
        cmn_dp_rc_get_stats(f->rc, &rs);
        cmn_counter_add(f->rc_direct, rs.bytes_direct - f->rc_direct_seen);
        f->rc_direct_seen = rs.bytes_direct;
    }
#endif
    /* The instance's own statistics move only with dc work: refreshed as each request ends. */
    if (j->transport == TRANSPORT_DC && f->dc && f->dc_stats) {
        struct cmn_dp_dc_stats ds;
        f->dc_ops->get_stats(f->dc, &ds);
        cmn_dp_dc_metrics_feed(&f->dc_metrics, &ds);
    }
    if (failed)
        LOG_DEBUG(LOG_CTX, "request %" PRIu64 ": %zu of %zu pieces not written", j->request_id,
                  failed, j->n);
    if (j->prev)
        j->prev->next_job = j->next_job;
    else
        f->running = j->next_job;
    if (j->next_job)
        j->next_job->prev = j->prev;
    f->in_flight--;
    void (*done)(void *, int) = j->done;
    void *data = j->done_data;
    free(j->pieces);
    j->pieces = NULL;
    if (j->transport == TRANSPORT_DC)
        uv_close((uv_handle_t *)&j->lease_timer, on_job_timer_closed);
    else
        free(j);
    if (done)
        done(data, 0);
}

static void piece_end(struct piece *p, int status)
{
    struct job *j = p->job;
    p->status = status;
    p->state = 3;
    j->active--;
    j->finished++;
    if (status == LODE_ECLOSED || status == LODE_ENOSESSION)
        j->session_lost = true; /* the rest cannot be delivered either */
    /* dc: the client's NIC refused the window, or its target did not answer within the
     * retry budget: the other pieces would fail the same way, each after the drain bound. */
    if (j->transport == TRANSPORT_DC &&
        (status == LODE_EWINDOW || status == LODE_ETIMEOUT || status == LODE_EUNAVAILABLE))
        j->session_lost = true;
}

static void retry_parked(struct node_fanout *f);

static void on_pushed(void *data, int status)
{
    struct piece *p = data;
    struct job *j = p->job;
    struct node_fanout *f = j->f;
    bool dc = j->transport == TRANSPORT_DC;
    if (dc)
        j->dc_posted--;
    node_read_release(p->rd);
    p->rd = NULL;
    if (status == 0)
        j->bytes += p->len;
    /* Every failed rc write closes its session (the client's NIC refused the rkey, the QP
     * broke or stalled, the listener is closing): nothing more can land through it. */
    if (status != 0 && j->transport == TRANSPORT_RC)
        j->session_lost = true;
    piece_end(p, status);
    job_pump(j);
    if (dc)
        retry_parked(f); /* a call left the dc instance's queue: room for a parked one */
}

/* Hands one piece's verified bytes to the job's transport. Returns 0 (on_pushed follows)
 * or the refusal. */
static int push(struct job *j, struct piece *p, const struct node_read *rd)
{
    struct node_fanout *f = j->f;
    uint64_t addr = j->base + p->buf_off;
    if (j->transport == TRANSPORT_DC) {
        if (!f->dc)
            return LODE_ESHUTDOWN;
        /* dc addresses by window offset; the instance re-checks it against the window. */
        int rc = f->dc_ops->write(f->dc, &j->dctok, p->buf_off, rd->data, rd->len, on_pushed, p);
        if (rc == 0)
            j->dc_posted++;
        return rc;
    }
    if (j->transport == TRANSPORT_TCP)
        return cmn_dp_push(f->dp, j->sid, j->key, j->base, j->tag, addr, rd->data, rd->len,
                           on_pushed, p);
#ifdef HAVE_RDMA
    struct cmn_dp_rc_target t = {
        .access_key = j->key,
        .window_base = j->base,
        .window_size = j->size,
        .rkey = j->rkey,
    };
    memcpy(t.sid, j->sid, sizeof(t.sid));
    return cmn_dp_rc_write(f->rc, &t, addr, rd->data, rd->len, on_pushed, p);
#else
    return -EPROTONOSUPPORT;
#endif
}

static void on_read(void *data, int status, struct node_read *rd)
{
    struct piece *p = data;
    struct job *j = p->job;
    if (status == 0 && rd->len != p->len) {
        node_read_release(rd);
        status = LODE_EINTERNAL;
    }
    if (status == 0 && j->session_lost) {
        node_read_release(rd);
        status = LODE_ECLOSED;
    }
    if (status == 0 && cmn_mono_ms() > j->deadline_ms) {
        node_read_release(rd);
        status = LODE_ETIMEOUT;
    }
    if (status != 0) {
        piece_end(p, status);
        job_pump(j);
        return;
    }
    p->rd = rd;
    p->state = 2;
    int rc = push(j, p, rd);
    if (rc == -EAGAIN && j->transport == TRANSPORT_DC) {
        /* The instance's queue is full of calls of ours: one of their completions retries
         * this (retry_parked), so it needs no timer. */
        p->next_parked = NULL;
        if (j->f->parked_tail)
            j->f->parked_tail->next_parked = p;
        else
            j->f->parked = p;
        j->f->parked_tail = p;
        return;
    }
    if (rc != 0) {
        node_read_release(rd);
        p->rd = NULL;
        piece_end(p, rc);
        job_pump(j);
    }
}

/* Parked dc pieces, in order, until the instance pushes back again. */
static void retry_parked(struct node_fanout *f)
{
    while (f->parked) {
        struct piece *p = f->parked;
        struct job *j = p->job;
        int rc;
        if (j->session_lost || j->fencing)
            rc = LODE_ECLOSED;
        else if (cmn_mono_ms() > j->deadline_ms)
            rc = LODE_ETIMEOUT;
        else
            rc = push(j, p, p->rd);
        if (rc == -EAGAIN)
            return;
        f->parked = p->next_parked;
        if (!f->parked)
            f->parked_tail = NULL;
        p->next_parked = NULL;
        if (rc != 0) {
            node_read_release(p->rd);
            p->rd = NULL;
            piece_end(p, rc);
            job_pump(j);
        }
    }
}

static void on_fenced(void *data, int status)
{
    struct job *j = data;
    (void)status; /* 0, or LODE_ESHUTDOWN: either way no write of ours is in flight */
    j->fencing = false;
    job_pump(j);
}

/* dc, at the end of the lease: writes still in the hardware could land after the gateway
 * has moved on, so the target is fenced and the answer waits for the fence. */
static void on_lease(uv_timer_t *t)
{
    struct job *j = t->data;
    struct node_fanout *f = j->f;
    if (j->dc_posted > 0 && f->dc && !j->fencing &&
        f->dc_ops->fence(f->dc, &j->dctok, on_fenced, j) == 0)
        j->fencing = true;
}

/* Starts pieces while fewer than `depth` are active; answers once all have ended. Pieces
 * that can no longer be written (session gone, lease over) end without being read. */
static void job_pump(struct job *j)
{
    struct node_fanout *f = j->f;
    while (j->next < j->n && j->active < f->depth) {
        struct piece *p = &j->pieces[j->next++];
        j->active++;
        p->state = 1;
        int rc = 0;
        if (j->session_lost)
            rc = LODE_ECLOSED;
        else if (cmn_mono_ms() > j->deadline_ms)
            rc = LODE_ETIMEOUT;
        else
            rc = node_store_get(f->st, &p->id, p->chunk_off, p->len, on_read, p);
        if (rc != 0)
            piece_end(p, rc);
    }
    if (j->finished == j->n && j->active == 0 && !j->fencing)
        job_finish(j);
}

/* ---- the request ---------------------------------------------------------------------- */

static int refuse(struct node_fanout *f, struct cmn_rpc_call *call, uint32_t transport,
                  int status, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int refuse(struct node_fanout *f, struct cmn_rpc_call *call, uint32_t transport,
                  int status, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cmn_counter_add(metrics_of(f, transport)->refused, 1);
    cmn_rpc_reply_error(call, status, NULL, 0, "%s", msg);
    return status;
}

/* Whether the request's session is connected to this node's listener of its transport and
 * owned by the verified requester. */
static bool session_ok(const struct node_fanout *f, const Lode__FanoutPushRequest *q)
{
    if (q->transport == TRANSPORT_DC)
        return true; /* no session: the token and the cluster's DC key address the window */
    if (q->transport == TRANSPORT_TCP)
        return cmn_dp_session_check(f->dp, q->sid.data, q->access_key) == 0;
#ifdef HAVE_RDMA
    return cmn_dp_rc_has_session(f->rc, q->sid.data, q->access_key);
#else
    return false;
#endif
}

static int validate(struct node_fanout *f, struct cmn_rpc_call *call,
                    const Lode__FanoutPushRequest *q, struct cmn_rdma_token *dctok)
{
    uint32_t t = q->transport;
    if (q->sid.len != CMN_DP_SID_SIZE)
        return refuse(f, call, t, LODE_EBADMSG, "sid must be %d bytes, not %zu",
                      CMN_DP_SID_SIZE, q->sid.len);
    size_t klen = q->access_key ? strlen(q->access_key) : 0;
    if (klen == 0 || klen > CMN_DP_ACCESS_KEY_MAX)
        return refuse(f, call, t, LODE_EBADMSG, "access_key must be 1 to %d bytes",
                      CMN_DP_ACCESS_KEY_MAX);
    if (!(t == TRANSPORT_TCP && f->dp) && !(t == TRANSPORT_RC && f->rc) &&
        !(t == TRANSPORT_DC && f->dc))
        return refuse(f, call, t, -EPROTONOSUPPORT,
                      "transport %u is not served by this node (tcp = 1: %s, rc = 2: %s, "
                      "dc = 3: %s)", t, f->dp ? "yes" : "no", f->rc ? "yes" : "no",
                      f->dc ? "yes" : "no");
    if (t == TRANSPORT_DC) {
        struct cmn_err err;
        cmn_err_clear(&err);
        if (node_fanout_dc_token(q, f->dc_config, dctok, &err) != 0)
            return refuse(f, call, t, -EINVAL, "%s", cmn_err_text(&err));
    }
    if (q->window_size == 0 || q->window_base > UINT64_MAX - q->window_size)
        return refuse(f, call, t, LODE_EWINDOW,
                      "window %016" PRIx64 "+%" PRIu64 " is empty or wraps", q->window_base,
                      q->window_size);
    if (q->n_pieces == 0 || q->n_pieces > MAX_PIECES)
        return refuse(f, call, t, -EINVAL, "%zu pieces: 1 to %d are allowed", q->n_pieces,
                      MAX_PIECES);
    if (q->lease_ms > MAX_LEASE_MS)
        return refuse(f, call, t, -EINVAL, "lease of %u ms: at most %d", q->lease_ms,
                      MAX_LEASE_MS);
    for (size_t i = 0; i < q->n_pieces; i++) {
        const Lode__FanoutPiece *p = q->pieces[i];
        if (p->chunk_id.len != CMN_ID_SIZE)
            return refuse(f, call, t, LODE_EBADMSG, "piece %zu: chunk_id must be 16 bytes", i);
        if (p->length == 0 || p->length > f->max_piece)
            return refuse(f, call, t, -EINVAL, "piece %zu: %u bytes; 1 to %u are allowed", i,
                          p->length, f->max_piece);
        if (!cmn_dp_range_inside(0, q->window_size, p->buf_offset, p->length))
            return refuse(f, call, t, LODE_EWINDOW,
                          "piece %zu: window bytes %" PRIu64 "+%u lie outside the %" PRIu64
                          "-byte window", i, p->buf_offset, p->length, q->window_size);
    }
    if (!session_ok(f, q))
        return refuse(f, call, t, LODE_ENOSESSION,
                      "no %s data session with this id owned by this access key is connected "
                      "to this node (the client must connect to every data source first)",
                      t == TRANSPORT_RC ? "rc" : "tcp");
    return 0;
}

void node_fanout_push(struct node_fanout *f, struct cmn_rpc_call *call,
                      const Lode__FanoutPushRequest *q, void (*done)(void *data, int status),
                      void *data)
{
    struct cmn_rdma_token dctok;
    memset(&dctok, 0, sizeof(dctok));
    int rc = validate(f, call, q, &dctok);
    if (rc) {
        if (done)
            done(data, rc);
        return;
    }
    struct recent *seen = recent_find(f, q->sid.data, q->request_id);
    if (seen) {
        /* A retransmission: the same answer, no second write. */
        reply_result(call, seen->bytes, seen->statuses, seen->n);
        if (done)
            done(data, 0);
        return;
    }
    for (struct job *r = f->running; r; r = r->next_job) {
        if (r->request_id == q->request_id && memcmp(r->sid, q->sid.data, 16) == 0) {
            rc = refuse(f, call, q->transport, -EALREADY, "request %" PRIu64 " is still running",
                        q->request_id);
            if (done)
                done(data, rc);
            return;
        }
    }
    struct job *j = calloc(1, sizeof(*j));
    struct piece *ps = calloc(q->n_pieces, sizeof(*ps));
    if (!j || !ps) {
        free(j);
        free(ps);
        cmn_rpc_reply_error(call, -ENOMEM, NULL, 0, "out of memory for FANOUT_PUSH");
        if (done)
            done(data, -ENOMEM);
        return;
    }
    j->f = f;
    j->call = call;
    j->done = done;
    j->done_data = data;
    memcpy(j->sid, q->sid.data, 16);
    snprintf(j->key, sizeof(j->key), "%s", q->access_key);
    j->base = q->window_base;
    j->size = q->window_size;
    j->request_id = q->request_id;
    j->transport = q->transport;
    j->tag = q->tag;
    j->rkey = q->rkey;
    j->dctok = dctok;
    j->start_ns = cmn_mono_ns();
    j->deadline_ms = cmn_mono_ms() + (q->lease_ms ? q->lease_ms : DEFAULT_LEASE_MS);
    j->pieces = ps;
    j->n = q->n_pieces;
    for (size_t i = 0; i < j->n; i++) {
        const Lode__FanoutPiece *p = q->pieces[i];
        cmn_id_from_bytes(p->chunk_id.data, p->chunk_id.len, &ps[i].id);
        ps[i].chunk_off = p->chunk_offset;
        ps[i].len = p->length;
        ps[i].buf_off = p->buf_offset;
        ps[i].job = j;
    }
    j->next_job = f->running;
    if (f->running)
        f->running->prev = j;
    f->running = j;
    f->in_flight++;
    cmn_counter_add(metrics_of(f, j->transport)->requests, 1);
    if (j->transport == TRANSPORT_DC) {
        uv_timer_init(f->loop, &j->lease_timer);
        j->lease_timer.data = j;
        uv_timer_start(&j->lease_timer, on_lease, j->deadline_ms - cmn_mono_ms(), 0);
    }
    job_pump(j);
}

/* ---- dc: the request's target --------------------------------------------------------- */

int node_fanout_dc_token(const Lode__FanoutPushRequest *q, const struct cmn_dp_dc_config *cfg,
                         struct cmn_rdma_token *out, struct cmn_err *err)
{
    memset(out, 0, sizeof(*out));
    const Lode__DcTarget *d = q->dc;
    if (!d)
        return cmn_err_set(err, -EINVAL, "dc: the request carries no DcTarget");
    if (d->gid.len != 16)
        return cmn_err_set(err, -EINVAL, "dc: gid must be 16 bytes, not %zu", d->gid.len);
    if (d->g > 1)
        return cmn_err_set(err, -EINVAL, "dc: g must be 0 or 1, not %" PRIu32, d->g);
    if (d->lid > 0xffff)
        return cmn_err_set(err, -EINVAL, "dc: lid %" PRIu32 " does not fit 16 bits", d->lid);
    if (d->dctn > 0xffffff)
        return cmn_err_set(err, -EINVAL, "dc: dctn %" PRIu32 " does not fit 24 bits", d->dctn);
    if (q->window_size == 0 || q->window_base > UINT64_MAX - q->window_size)
        return cmn_err_set(err, -EINVAL, "dc: the window is empty or wraps");
    if (q->window_size > CMN_RDMA_DC_WINDOW_MAX)
        return cmn_err_set(err, -EINVAL, "dc: a %" PRIu64 "-byte window is larger than a DC "
                           "token can name", q->window_size);
    if (d->desc_size == 0 || d->desc_base > UINT64_MAX - d->desc_size)
        return cmn_err_set(err, -EINVAL, "dc: the descriptor window is empty or wraps");
    if (q->window_base < d->desc_base ||
        q->window_base + q->window_size > d->desc_base + d->desc_size)
        return cmn_err_set(err, -EINVAL, "dc: the request window does not lie inside the "
                           "descriptor's window");
    struct cmn_rdma_token t;
    memset(&t, 0, sizeof(t));
    t.kind = CMN_RDMA_DC;
    t.base = q->window_base;
    t.size = q->window_size;
    t.u.dc.rkey = d->rkey;
    t.u.dc.lid = (uint16_t)d->lid;
    t.u.dc.dctn = d->dctn;
    t.u.dc.g = (uint8_t)d->g;
    memcpy(t.u.dc.gid, d->gid.data, 16);
    t.u.dc.desc_base = d->desc_base;
    t.u.dc.desc_size = d->desc_size;
    t.u.dc.legacy = d->desc_base != q->window_base || d->desc_size != q->window_size;

    struct cmn_dp_dc_config defaults;
    if (!cfg) {
        cmn_dp_dc_config_defaults(&defaults);
        cfg = &defaults;
    }
    struct cmn_dc_local local = {
        .sgid_index = cfg->gid_index < 0 ? 0 : (uint8_t)cfg->gid_index,
        .hop_limit = cfg->hop_limit,
        .traffic_class = cfg->traffic_class,
        .sl = cfg->sl,
        .dc_key = cfg->dc_key,
        .timeout = cfg->timeout,
        .retry_cnt = cfg->retry_cnt,
    };
    struct cmn_dc_target target;
    int rc = cmn_dc_derive(&t, &local, &target, err);
    explicit_bzero(&local, sizeof(local));
    explicit_bzero(&target, sizeof(target));
    if (rc != 0)
        return rc;
    *out = t;
    return 0;
}

#ifdef HAVE_MLX5DV
static int verbs_write(void *dc, const struct cmn_rdma_token *t, uint64_t off, const void *src,
                       size_t len, cmn_dp_dc_cb cb, void *data)
{
    return cmn_dp_dc_write(dc, t, off, src, len, cb, data);
}

static int verbs_fence(void *dc, const struct cmn_rdma_token *t, cmn_dp_dc_cb cb, void *data)
{
    return cmn_dp_dc_fence(dc, t, cb, data);
}

static void verbs_stats(void *dc, struct cmn_dp_dc_stats *out) { cmn_dp_dc_get_stats(dc, out); }

const struct node_fanout_dc_ops node_fanout_dc_verbs = {
    .write = verbs_write,
    .fence = verbs_fence,
    .get_stats = verbs_stats,
};
#endif
