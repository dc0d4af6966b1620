/* liblode: fan-out GETs over tcp or rc, and staged rc PUTs. A data session is requested from
 * the gateway once (and again before it expires).
 *
 * tcp: a receiver (client/dp_recv.h) keeps one connection to each data source the session
 * lists. A GET opens a window on the destination, sends the signed request with a tcp token
 * naming it, and completes when every source the reply lists has delivered the bytes it
 * reported. The window is closed (the tcp fence) before the call returns, whatever happened,
 * so no late frame ever touches the buffer afterwards.
 *
 * rc: an RDMA client (client/dp_rc_client.h), made on first use, holds one RC connection to
 * each source that lists an rc endpoint. A request registers its part of the buffer as a
 * window (remote write for a GET, remote read for a PUT), sends the signed request with an
 * rc1 token naming the window and its rkey, and is complete when the gateway answers: an
 * RDMA WRITE completes at its source only once the bytes are placed, and a staged PUT is
 * answered after the gateway has read everything. The window is deregistered (the rc fence:
 * the NIC refuses every later access) before the call returns, whatever happened.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client_int.h"
#include "client/dp_recv.h"
#include "client/parse.h"
#include "common/clock.h"
#include "common/dp_proto.h"
#include "common/id.h"
#include "common/rdma_token.h"
#ifdef HAVE_RDMA
#include "client/dp_rc_client.h"
#endif

/* A session is replaced when less than this is left of its lifetime. */
#define SESSION_MARGIN_MS (10 * 60 * 1000)
/* After the gateway refused sessions (4xx, 501), fan-out is not tried again for a while;
 * after a transient failure only briefly. */
#define REFUSED_RETRY_MS (60 * 1000)
#define TRANSIENT_RETRY_MS (2 * 1000)
/* Failed data connections are retried at most this often. */
#define SOURCE_RETRY_MS 5000
#define CONNECT_WAIT_MAX_MS 5000
/* rc sources that failed are connected again at most this often, and such a retry waits at
 * most this long (a first connection waits up to CONNECT_WAIT_MAX_MS). */
#define RC_RETRY_WAIT_MS 1000

struct session {
    unsigned refs;                 /* users, plus one while it is the current session */
    struct lc_dp_recv *recv;       /* tcp; NULL when the client asked for rc only */
    struct lc_session doc;
    uint64_t last_retry_ms;        /* monotonic */
    /* rc, set up on first use (rc_prepare) */
    pthread_mutex_t rc_mu;         /* the fields below */
#ifdef HAVE_RDMA
    struct lc_rc_client *rc;
#endif
    int rc_failed;                 /* the RDMA client cannot be made here: that code */
    bool rc_tried;                 /* sources connected at least once */
    uint64_t rc_retry_ms;          /* monotonic: the last connection round */
    char rc_why[LODE_MSG_MAX];     /* why rc_failed, or why no source is connected */
};

struct lc_fanout {
    pthread_mutex_t mu;            /* cur, refs, retry_after, why */
    pthread_mutex_t create_mu;     /* one session request at a time */
    struct session *cur;
    uint64_t retry_after_ms;       /* monotonic; 0: none */
    char why[LODE_MSG_MAX];
};

int lc_fanout_create(struct lc_fanout **out)
{
    struct lc_fanout *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->create_mu, NULL);
    *out = f;
    return 0;
}

static void session_free(struct session *s)
{
#ifdef HAVE_RDMA
    lc_rc_client_destroy(s->rc);
#endif
    pthread_mutex_destroy(&s->rc_mu);
    lc_dp_recv_destroy(s->recv);
    lc_session_free(&s->doc);
    free(s);
}

static void session_put(struct lc_fanout *f, struct session *s)
{
    pthread_mutex_lock(&f->mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (last)
        session_free(s);
}

void lc_fanout_destroy(struct lc_fanout *f)
{
    if (!f)
        return;
    if (f->cur)
        session_put(f, f->cur);
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->create_mu);
    free(f);
}

static void hostport(char *out, size_t cap, const char *host, uint16_t port)
{
    snprintf(out, cap, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

/* Asks the gateway for a session and connects to its sources. Returns 0, or a code with a
 * message; *refused tells a definite "no" (the gateway does not offer sessions to us) from a
 * transient failure. */
static int session_new(lode_client *c, struct session **out, bool *refused, struct cmn_err *err)
{
    *refused = false;
    struct lc_s3_req q = {.method = "POST", .query = "x-lode-session", .send_length = true};
    struct lc_call call;
    int rc = lc_call_start(c, &q, NULL, 0, NULL, &call, err);
    if (rc)
        return cmn_err_wrap(err, "session request");
    if (call.resp->status != 200) {
        int st = call.resp->status;
        rc = lc_call_fail(c, &call, "session request", NULL, 0, err);
        lc_call_end(c, &call);
        *refused = st >= 400 && st < 500 ? true : st == 501;
        return rc;
    }
    struct cmn_buf body;
    cmn_buf_init(&body);
    rc = lc_call_read_small(c, &call, &body, LC_SESSION_DOC_MAX, err);
    lc_call_end(c, &call);
    struct session *s = calloc(1, sizeof(*s));
    if (!s && !rc)
        rc = cmn_err_set(err, -ENOMEM, "out of memory");
    if (!rc)
        rc = lc_session_parse((const char *)body.data, body.len, &s->doc, err);
    cmn_buf_free(&body);
    if (rc) {
        free(s);
        return cmn_err_wrap(err, "session request");
    }
    pthread_mutex_init(&s->rc_mu, NULL);
    struct lc_dp_recv_config rcfg = {
        .connect_timeout_ms = c->timeout_ms < CONNECT_WAIT_MAX_MS ? c->timeout_ms
                                                                  : CONNECT_WAIT_MAX_MS,
    };
    memcpy(rcfg.cred.sid, s->doc.sid, sizeof(rcfg.cred.sid));
    rcfg.cred.expires_ms = s->doc.expires_ms;
    memcpy(rcfg.cred.mac, s->doc.mac, sizeof(rcfg.cred.mac));
    if (strcmp(s->doc.access_key, c->access_key) != 0) {
        rc = cmn_err_set(err, LODE_ERR_PROTOCOL, "session request: issued to another access key");
    } else if (cmn_dp_cred_set_key(&rcfg.cred, c->access_key, strlen(c->access_key)) != 0) {
        *refused = true;
        rc = cmn_err_set(err, LODE_ERR_NO_TRANSPORT,
                         "data sessions need an access key of at most %d bytes",
                         CMN_DP_ACCESS_KEY_MAX);
    } else if (c->transport != LODE_TRANSPORT_RC) {
        /* The receiver's I/O thread inherits this thread's signal mask: with SIGPIPE blocked
         * there, a source that resets its connection while we write the HELLO gives EPIPE
         * instead of killing the application. */
        sigset_t pipe, old;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, &old);
        rc = lc_dp_recv_create(&rcfg, &s->recv, err);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    explicit_bzero(&rcfg.cred, sizeof(rcfg.cred));
    for (size_t i = 0; rc == 0 && s->recv && i < s->doc.n_src; i++) {
        const struct lc_session_src *src = &s->doc.src[i];
        if (!src->has_tcp)
            continue;
        char hp[LC_HOST_MAX + 16];
        hostport(hp, sizeof(hp), src->tcp_host, src->tcp_port);
        struct cmn_err aerr;
        cmn_err_clear(&aerr);
        /* A source that cannot be reached is not fatal: the gateway writes what a source
         * without our session would have. */
        lc_dp_recv_add_source(s->recv, src->id, hp, &aerr);
    }
    if (rc == 0) {
        struct cmn_err werr;
        cmn_err_clear(&werr);
        if (s->recv)
            lc_dp_recv_wait_ready(s->recv, rcfg.connect_timeout_ms, &werr);
        s->last_retry_ms = cmn_mono_ms();
        s->refs = 1;
        *out = s;
        return 0;
    }
    session_free(s);
    return rc;
}

/* Reconnects sources whose connection failed, at most every SOURCE_RETRY_MS. */
static void retry_sources(struct lc_fanout *f, struct session *s)
{
    uint64_t now = cmn_mono_ms();
    pthread_mutex_lock(&f->mu);
    bool due = now - s->last_retry_ms >= SOURCE_RETRY_MS;
    if (due)
        s->last_retry_ms = now;
    pthread_mutex_unlock(&f->mu);
    if (!due || !s->recv)
        return;
    for (size_t i = 0; i < s->doc.n_src; i++) {
        const struct lc_session_src *src = &s->doc.src[i];
        if (!src->has_tcp ||
            lc_dp_recv_source_state(s->recv, src->id, NULL) != LC_DP_SOURCE_FAILED)
            continue;
        char hp[LC_HOST_MAX + 16];
        hostport(hp, sizeof(hp), src->tcp_host, src->tcp_port);
        lc_dp_recv_add_source(s->recv, src->id, hp, NULL);
    }
}

static bool fresh(const struct session *s)
{
    int64_t now = cmn_now_ms();
    return now > 0 && (uint64_t)now + SESSION_MARGIN_MS < s->doc.expires_ms;
}

/* A reference to a usable session, creating one if needed. */
static int session_get(lode_client *c, struct session **out, struct cmn_err *err)
{
    struct lc_fanout *f = c->fanout;
    pthread_mutex_lock(&f->mu);
    struct session *s = f->cur && fresh(f->cur) ? f->cur : NULL;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&f->mu);
    if (s) {
        retry_sources(f, s);
        *out = s;
        return 0;
    }
    pthread_mutex_lock(&f->create_mu);
    pthread_mutex_lock(&f->mu);
    s = f->cur && fresh(f->cur) ? f->cur : NULL;
    if (s)
        s->refs++;
    bool wait = !s && f->retry_after_ms && cmn_mono_ms() < f->retry_after_ms;
    int rc = 0;
    if (wait)
        rc = cmn_err_set(err, LODE_ERR_NO_TRANSPORT, "%s", f->why);
    pthread_mutex_unlock(&f->mu);
    if (!s && !wait) {
        bool refused;
        struct session *old = NULL, *ns = NULL;
        rc = session_new(c, &ns, &refused, err);
        pthread_mutex_lock(&f->mu);
        if (rc == 0 && ns) {
            old = f->cur;
            f->cur = s = ns;
            ns->refs++; /* the caller's; the first is the current session's */
            f->retry_after_ms = 0;
        } else {
            f->retry_after_ms = cmn_mono_ms() + (refused ? REFUSED_RETRY_MS : TRANSIENT_RETRY_MS);
            snprintf(f->why, sizeof(f->why), "%s", err->msg);
        }
        pthread_mutex_unlock(&f->mu);
        if (old)
            session_put(f, old);
    }
    pthread_mutex_unlock(&f->create_mu);
    *out = rc ? NULL : s;
    return rc;
}

/* ---- rc: the RDMA client of a session ------------------------------------------------- */

#ifdef HAVE_RDMA
/* Connects the session's rc sources that are not connected: all of them the first time,
 * then those that failed, at most every SOURCE_RETRY_MS. Under s->rc_mu. */
static void rc_connect_round(lode_client *c, struct session *s)
{
    uint64_t now = cmn_mono_ms();
    if (s->rc_tried && now - s->rc_retry_ms < SOURCE_RETRY_MS)
        return;
    struct lc_rc_source *srcs = calloc(s->doc.n_src ? s->doc.n_src : 1, sizeof(*srcs));
    char(*addrs)[LC_HOST_MAX + 16] = calloc(s->doc.n_src ? s->doc.n_src : 1, sizeof(*addrs));
    size_t n = 0;
    for (size_t i = 0; srcs && addrs && i < s->doc.n_src; i++) {
        const struct lc_session_src *src = &s->doc.src[i];
        if (!src->has_rc || lc_rc_client_source_state(s->rc, src->id) == 0)
            continue;
        hostport(addrs[n], sizeof(addrs[n]), src->rc_host, src->rc_port);
        srcs[n] = (struct lc_rc_source){.source_id = src->id, .addr = addrs[n]};
        n++;
    }
    if (n) {
        uint32_t wait = s->rc_tried ? RC_RETRY_WAIT_MS : CONNECT_WAIT_MAX_MS;
        struct cmn_err cerr;
        cmn_err_clear(&cerr);
        /* A source that cannot be reached is not fatal: a node's share is then written by
         * the gateway, and a gateway worker without our connection declines (the request
         * then goes over HTTP). */
        if (lc_rc_client_connect(s->rc, srcs, n, c->timeout_ms < wait ? c->timeout_ms : wait,
                                 &cerr) != 0)
            snprintf(s->rc_why, sizeof(s->rc_why), "%s", cerr.msg);
    }
    free(srcs);
    free(addrs);
    s->rc_tried = true;
    s->rc_retry_ms = cmn_mono_ms();
}
#endif

/* Makes the session's rc side usable: the RDMA client (once) and its connections. Returns 0
 * when at least one rc source is connected, else LODE_ERR_NO_TRANSPORT (or the client's
 * failure) with a message. */
static int rc_prepare(lode_client *c, struct session *s, struct cmn_err *err)
{
#ifndef HAVE_RDMA
    (void)c;
    (void)s;
    return cmn_err_set(err, LODE_ERR_NO_TRANSPORT,
                       "this liblode was built without RDMA (rdma-core was not found)");
#else
    size_t listed = 0;
    for (size_t i = 0; i < s->doc.n_src; i++)
        listed += s->doc.src[i].has_rc;
    if (!listed)
        return cmn_err_set(err, LODE_ERR_NO_TRANSPORT,
                           "the gateway lists no rc sources (no rdma-address configured)");
    pthread_mutex_lock(&s->rc_mu);
    int rc = 0;
    if (s->rc_failed) {
        rc = cmn_err_set(err, s->rc_failed, "%s", s->rc_why);
        goto out;
    }
    if (!s->rc) {
        struct lc_rc_client_config cfg = {.local_host = c->rdma_local};
        memcpy(cfg.cred.sid, s->doc.sid, sizeof(cfg.cred.sid));
        cfg.cred.expires_ms = s->doc.expires_ms;
        memcpy(cfg.cred.mac, s->doc.mac, sizeof(cfg.cred.mac));
        struct cmn_err cerr;
        cmn_err_clear(&cerr);
        rc = cmn_dp_cred_set_key(&cfg.cred, c->access_key, strlen(c->access_key));
        if (rc == 0)
            rc = lc_rc_client_create(&cfg, &s->rc, &cerr);
        else
            cmn_err_set(&cerr, rc, "data sessions need an access key of at most %d bytes",
                        CMN_DP_ACCESS_KEY_MAX);
        explicit_bzero(&cfg.cred, sizeof(cfg.cred));
        if (rc) {
            /* No RDMA connection manager or device here: that does not change while this
             * session lives. */
            s->rc = NULL;
            s->rc_failed = rc;
            snprintf(s->rc_why, sizeof(s->rc_why), "%s", cerr.msg);
            rc = cmn_err_set(err, rc, "%s", s->rc_why);
            goto out;
        }
    }
    rc_connect_round(c, s);
    size_t up = 0;
    for (size_t i = 0; i < s->doc.n_src; i++)
        if (s->doc.src[i].has_rc && lc_rc_client_source_state(s->rc, s->doc.src[i].id) == 0)
            up++;
    if (!up)
        rc = cmn_err_set(err, LODE_ERR_NO_TRANSPORT, "no rc source could be connected: %s",
                         s->rc_why[0] ? s->rc_why : "unknown reason");
out:
    pthread_mutex_unlock(&s->rc_mu);
    return rc;
#endif
}

/* ---- one request's window, on either transport ---------------------------------------- */

#ifdef HAVE_RDMA
#define ACCESS_WRITE LC_RC_REMOTE_WRITE
#define ACCESS_READ LC_RC_REMOTE_READ
#else
#define ACCESS_WRITE 1
#define ACCESS_READ 2
#endif

struct xfer {
    struct session *s;
    const struct lode_buf *dev;    /* the CUDA buffer the window lies in, or NULL (host) */
    lode_client *c;                /* with dev: for the CUDA driver */
    bool rc;
    bool open_failed;              /* xfer_open refused the buffer */
    const char *name;              /* "tcp" or "rc", for messages */
    uint64_t base, size;
    uint32_t tag;                  /* tcp */
    struct lc_dp_window *tw;       /* tcp: the open window */
#ifdef HAVE_RDMA
    struct lc_rc_window *rw;       /* rc: the registered window */
#endif
};

#ifdef HAVE_RDMA
/* Device memory goes to the NIC as a dma-buf the CUDA driver exports (GPUDirect RDMA without
 * the legacy peer-memory module): the NIC then writes (GET) or reads (PUT) GPU memory itself,
 * with no bounce through host memory. The window's address in the token is the device
 * pointer. */
static int register_device(struct xfer *x, void *mem, uint64_t size, unsigned access,
                           struct cmn_err *err)
{
    const struct lc_cuda *cu;
    int rc = lc_client_cuda(x->c, &cu, err);
    if (rc)
        return rc;
    struct lc_cuda_dmabuf db;
    rc = lc_cuda_dmabuf_export(cu, x->dev->ctx, (lc_cudeviceptr)(uintptr_t)mem, (size_t)size, &db,
                               err);
    if (rc)
        return rc;
    rc = lc_rc_window_register_dmabuf(x->s->rc, db.fd, db.offset, (size_t)size,
                                      (uint64_t)(uintptr_t)mem, access, &x->rw, err);
    close(db.fd); /* the registration holds its own reference */
    return rc;
}
#endif

/* Opens the window [mem, mem + size) (tcp: in the receiver, for writes; rc: registered with
 * the NIC with `access`) and formats the request's token. Returns 0, or a code with a
 * message (nothing is open then). */
static int xfer_open(struct xfer *x, void *mem, uint64_t size, const struct lc_dp_sink *sink,
                     unsigned access, char token[CMN_RDMA_TOKEN_FMT_SIZE], struct cmn_err *err)
{
    struct cmn_rdma_token t = {.base = (uint64_t)(uintptr_t)mem, .size = size};
    x->base = t.base;
    x->size = size;
    int rc;
    if (!x->rc) {
        /* A fresh tag per request: a late frame of an earlier request into the same memory
         * carries another tag and never lands in this window. */
        while (x->tag == 0)
            if (cmn_random_bytes(&x->tag, sizeof(x->tag)) != 0)
                return cmn_err_set(err, LODE_EINTERNAL, "no random bytes for the request tag");
        rc = lc_dp_recv_window_open(x->s->recv, x->base, size, x->tag, sink ? NULL : mem, sink,
                                    &x->tw);
        if (rc)
            return cmn_err_set(err, rc, "cannot open the receive window: %s%s",
                               lode_strerror(rc),
                               rc == -EBUSY ? " (another request uses the same memory)" : "");
        t.kind = CMN_RDMA_TCP;
        memcpy(t.u.tcp.sid, x->s->doc.sid, sizeof(t.u.tcp.sid));
        t.u.tcp.tag = x->tag;
    } else {
#ifdef HAVE_RDMA
        (void)sink;
        struct cmn_err rerr;
        cmn_err_clear(&rerr);
        if (x->dev) {
            rc = register_device(x, mem, size, access, &rerr);
        } else {
            rc = lc_rc_window_register(x->s->rc, mem, (size_t)size, access, &x->rw, &rerr);
        }
        if (rc)
            return cmn_err_set(err, rc, "cannot register the buffer for RDMA: %s", rerr.msg);
        t.kind = CMN_RDMA_RC;
        t.base = lc_rc_window_base(x->rw);
        memcpy(t.u.rc.sid, x->s->doc.sid, sizeof(t.u.rc.sid));
        t.u.rc.rkey = lc_rc_window_rkey(x->rw);
#else
        (void)access;
        return cmn_err_set(err, LODE_ERR_NO_TRANSPORT, "built without RDMA");
#endif
    }
    int n = cmn_rdma_token_format(&t, token, CMN_RDMA_TOKEN_FMT_SIZE, err);
    explicit_bzero(&t, sizeof(t));
    return n < 0 ? n : 0;
}

/* The fence: tcp closes the window (later frames are dropped), rc deregisters it (the NIC
 * refuses every later access). Idempotent. */
static void xfer_close(struct xfer *x)
{
    if (x->tw)
        lc_dp_recv_window_close(x->s->recv, x->tw);
    x->tw = NULL;
#ifdef HAVE_RDMA
    if (x->rw)
        lc_rc_window_deregister(x->s->rc, x->rw);
    x->rw = NULL;
#endif
}

/* Everything a fan-out reply must say, checked before waiting for the data. */
struct reply {
    int reply;                     /* x-amz-rdma-reply value */
    uint64_t transferred;
    uint64_t first, last, total;   /* 206 */
    struct lc_src_bytes *src;
    size_t n_src;
};

static int check_reply(const struct lc_http_resp *r, const struct lc_get_args *a, uint64_t window,
                       struct reply *rp, struct cmn_err *err)
{
    size_t n, m;
    const char *v = lc_http_header(r, "x-amz-rdma-bytes-transferred", &n);
    if (r->status != rp->reply)
        return cmn_err_set(err, LODE_ERR_PROTOCOL, "HTTP %d with x-amz-rdma-reply %d",
                           r->status, rp->reply);
    if (r->content_length != 0)
        return cmn_err_set(err, LODE_ERR_PROTOCOL, "a fan-out reply with a body");
    if (!v || lc_parse_u64(v, n, &rp->transferred) != 0)
        return cmn_err_set(err, LODE_ERR_PROTOCOL, "no valid x-amz-rdma-bytes-transferred");
    uint64_t alias;
    v = lc_http_header(r, "x-amz-rdma-bytes", &n);
    if (v && (lc_parse_u64(v, n, &alias) != 0 || alias != rp->transferred))
        return cmn_err_set(err, LODE_ERR_PROTOCOL,
                           "x-amz-rdma-bytes disagrees with x-amz-rdma-bytes-transferred");
    if (rp->transferred > window)
        return cmn_err_set(err, LODE_ERR_PROTOCOL, "%" PRIu64 " bytes reported for a window of %"
                           PRIu64, rp->transferred, window);
    if (rp->reply == 206) {
        v = lc_http_header(r, "content-range", &n);
        if (!a->ranged && !a->part)
            return cmn_err_set(err, LODE_ERR_PROTOCOL, "206 to a request without a range");
        if (!v || lc_parse_content_range(v, n, &rp->first, &rp->last, &rp->total) != 0 ||
            rp->first == UINT64_MAX)
            return cmn_err_set(err, LODE_ERR_PROTOCOL, "206 without a valid Content-Range");
        if (rp->last - rp->first + 1 != rp->transferred)
            return cmn_err_set(err, LODE_ERR_PROTOCOL,
                               "Content-Range and x-amz-rdma-bytes-transferred disagree");
        if (a->ranged && rp->first != a->r_off)
            return cmn_err_set(err, LODE_ERR_PROTOCOL, "the reply covers another range");
    } else if (a->ranged) {
        return cmn_err_set(err, LODE_ERR_PROTOCOL, "200 to a ranged request");
    }
    v = lc_http_header(r, "x-lode-sources", &m);
    rp->src = calloc(LC_SESSION_MAX_SOURCES + 1, sizeof(*rp->src));
    if (!rp->src)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    if (!v || lc_parse_sources(v, m, rp->src, LC_SESSION_MAX_SOURCES + 1, &rp->n_src) != 0)
        return cmn_err_set(err, LODE_ERR_PROTOCOL, "no valid x-lode-sources");
    /* Sources report what they sent; together they must account for every byte. */
    uint64_t sum = 0;
    for (size_t i = 0; i < rp->n_src; i++)
        sum = rp->src[i].bytes > UINT64_MAX - sum ? UINT64_MAX : sum + rp->src[i].bytes;
    if (sum < rp->transferred)
        return cmn_err_set(err, LODE_ERR_PROTOCOL, "the sources account for %" PRIu64
                           " of %" PRIu64 " bytes", sum, rp->transferred);
    return 0;
}

static bool token_refusal(const char *code)
{
    return strcmp(code, "InvalidRDMAToken") == 0 || strcmp(code, "InvalidRequest") == 0 ||
           strcmp(code, "InvalidArgument") == 0 || strcmp(code, "NotImplemented") == 0;
}

/* The GET itself, once the transport is chosen; x->s is the caller's reference. */
static int get_over(lode_client *c, struct xfer *x, const struct lc_get_args *a,
                    struct lode_result *res, enum lode_fallback *why, bool *served_by_body,
                    struct cmn_err *err)
{
    struct session *s = x->s;
    uint64_t window = a->want;
    struct lc_dp_sink sink;
    if (a->stage)
        lc_cuda_stage_dp_sink(a->stage, &sink);
    char token[CMN_RDMA_TOKEN_FMT_SIZE];
    int rc = xfer_open(x, (uint8_t *)a->buf->ptr + a->buf_off, window,
                       a->stage ? &sink : NULL, ACCESS_WRITE, token, err);
    if (rc) {
        xfer_close(x);
        x->open_failed = true;
        if (x->rc) {
            /* The NIC would not take the buffer (memlock limit, no dma-buf export for device
             * memory, ...): not this transport, then. */
            *why = LODE_FALLBACK_UNAVAILABLE;
            return LC_FALLBACK;
        }
        return cmn_err_wrap(err, "GET");
    }
    struct lc_s3_req q = {
        .method = "GET",
        .bucket = a->bucket,
        .key = a->key,
        .query = a->query[0] ? a->query : NULL,
        .range = a->ranged ? a->range : NULL,
        .token = token,
    };
    struct lc_call call = {0};
    struct reply rp = {0};
    bool have_call = false;
    rc = lc_call_start(c, &q, NULL, 0, NULL, &call, err);
    explicit_bzero(token, sizeof(token));
    if (rc) {
        cmn_err_wrap(err, "GET");
        goto out;
    }
    have_call = true;
    res->http_status = call.resp->status;
    size_t n;
    const char *rv = lc_http_header(call.resp, "x-amz-rdma-reply", &n);
    int st = call.resp->status;
    if (!rv || (rp.reply = lc_parse_rdma_reply(rv, n)) == 501) {
        /* Not served. Fence first: the plain bytes go to the same memory. */
        xfer_close(x);
        bool declined = rv != NULL;
        *why = declined ? LODE_FALLBACK_DECLINED : LODE_FALLBACK_NO_REPLY;
        if (st >= 200 && st < 300 && !(c->flags & LODE_CLIENT_NO_FALLBACK)) {
            /* The spec's decline (or a server that ignored the token): the object is in
             * the body, as a plain GET would have it. */
            have_call = false;
            rc = lc_get_consume(c, &call, a, res, err);
            if (rc == 0) {
                *served_by_body = true;
                cmn_err_set(err, 0, "the server %s the %s token",
                            declined ? "declined" : "ignored", x->name);
                rc = LC_FALLBACK;
            }
            goto out;
        }
        char code[64] = "";
        if (st >= 200 && st < 300) {
            rc = LC_FALLBACK;
            cmn_err_set(err, 0, "the server %s the %s token",
                        declined ? "declined" : "ignored", x->name);
        } else {
            rc = lc_call_fail(c, &call, "GET", code, sizeof(code), err);
            if (declined || (st == 400 && token_refusal(code))) {
                *why = declined ? LODE_FALLBACK_DECLINED : LODE_FALLBACK_REFUSED;
                rc = LC_FALLBACK;
            }
        }
        goto out;
    }
    if (rp.reply < 0) {
        rc = cmn_err_set(err, LODE_ERR_PROTOCOL, "GET: malformed x-amz-rdma-reply");
        goto out;
    }
    if (rp.reply != 200 && rp.reply != 206) {
        rc = st >= 300 ? lc_call_fail(c, &call, "GET", NULL, 0, err)
                       : cmn_err_set(err, LODE_ERR_PROTOCOL, "GET: x-amz-rdma-reply %d", rp.reply);
        goto out;
    }
    rc = check_reply(call.resp, a, window, &rp, err);
    if (rc) {
        cmn_err_wrap(err, x->rc ? "GET (rc)" : "GET (tcp)");
        goto out;
    }
    lc_copy_header(call.resp, "etag", res->etag, sizeof(res->etag));
    if (rp.reply == 206)
        lc_copy_header(call.resp, "content-range", res->content_range,
                       sizeof(res->content_range));
    {
        struct cmn_buf none;
        cmn_buf_init(&none);
        rc = lc_call_read_small(c, &call, &none, 0, err);
        cmn_buf_free(&none);
        lc_call_end(c, &call);
        have_call = false;
        if (rc)
            goto out;
    }
    uint32_t used = 0;
    for (size_t i = 0; i < rp.n_src; i++)
        used += rp.src[i].bytes > 0;
    if (!x->rc) {
        struct lc_dp_expect *exp = calloc(rp.n_src ? rp.n_src : 1, sizeof(*exp));
        if (!exp) {
            rc = cmn_err_set(err, -ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < rp.n_src; i++) {
            exp[i].source_id = rp.src[i].id;
            exp[i].bytes = rp.src[i].bytes;
        }
        struct cmn_err werr;
        cmn_err_clear(&werr);
        rc = lc_dp_recv_wait(s->recv, x->tw, exp, rp.n_src, c->timeout_ms, &werr);
        free(exp);
        xfer_close(x);
        if (rc) {
            /* The server sent it all, the data did not all arrive: the window is fenced, so
             * a plain GET may safely write the same memory. */
            *why = LODE_FALLBACK_DATA_PATH;
            cmn_err_set(err, rc, "tcp data path: %s", werr.msg);
            rc = LC_FALLBACK;
            goto out;
        }
    }
    /* rc: every RDMA WRITE completed at its source, so every byte is placed; the reply came
     * after the last completion. */
    xfer_close(x);
    res->transport = x->rc ? LODE_TRANSPORT_RC : LODE_TRANSPORT_TCP;
    res->bytes = rp.transferred;
    res->sources = used;
    if (rp.reply == 206) {
        res->offset = rp.first;
        res->object_size = rp.total == UINT64_MAX ? 0 : rp.total;
    } else {
        res->offset = 0;
        res->object_size = rp.transferred;
    }
out:
    if (have_call)
        lc_call_end(c, &call);
    xfer_close(x);
    free(rp.src);
    return rc;
}

/* Whether a request should try rc: asked for (RC), or AUTO, which prefers rc where it works.
 * Device memory too: it is registered as a dma-buf; where that fails, AUTO goes on with tcp
 * (staged through pinned host memory) and RC falls back to plain HTTP. */
static bool wants_rc(const lode_client *c)
{
    return c->transport == LODE_TRANSPORT_RC || c->transport == LODE_TRANSPORT_AUTO;
}

int lc_fanout_get(lode_client *c, const struct lc_get_args *a, struct lode_result *res,
                  enum lode_fallback *why, bool *served_by_body, struct cmn_err *err)
{
    *served_by_body = false;
    struct session *s;
    int rc = session_get(c, &s, err);
    if (rc) {
        *why = LODE_FALLBACK_SESSION;
        return LC_FALLBACK;
    }
    const struct lode_buf *dev = a->buf->kind == LODE_BUF_HOST ? NULL : a->buf;
    struct xfer x = {.s = s, .name = "tcp", .dev = dev, .c = c};
    if (wants_rc(c)) {
        struct cmn_err rerr;
        cmn_err_clear(&rerr);
        if (rc_prepare(c, s, &rerr) == 0) {
            x.rc = true;
            x.name = "rc";
        } else if (c->transport == LODE_TRANSPORT_RC || !s->recv) {
            *why = LODE_FALLBACK_UNAVAILABLE;
            cmn_err_set(err, LODE_ERR_NO_TRANSPORT, "rc: %s", rerr.msg);
            session_put(c->fanout, s);
            return LC_FALLBACK;
        }
        /* AUTO without a usable rc: tcp. */
    }
    rc = get_over(c, &x, a, res, why, served_by_body, err);
    if (rc == LC_FALLBACK && x.rc && x.open_failed && c->transport == LODE_TRANSPORT_AUTO &&
        s->recv) {
        /* AUTO, and the NIC would not take this buffer: tcp still can. */
        cmn_err_clear(err);
        x = (struct xfer){.s = s, .name = "tcp", .dev = dev, .c = c};
        rc = get_over(c, &x, a, res, why, served_by_body, err);
    }
    session_put(c->fanout, s);
    if (rc == LC_FALLBACK && !*served_by_body) {
        res->bytes = 0;
        res->offset = 0;
        res->object_size = 0;
        res->etag[0] = res->content_range[0] = '\0';
    }
    return rc;
}

int lc_fanout_put(lode_client *c, const struct lc_put_target *t, lode_buf *buf,
                  uint64_t off, uint64_t len, const struct lode_put_opts *opts,
                  struct lode_result *res, enum lode_fallback *why, struct cmn_err *err)
{
    if (!wants_rc(c) || len == 0) {
        *why = LODE_FALLBACK_UNAVAILABLE;
        cmn_err_set(err, LODE_ERR_NO_TRANSPORT, "%s",
                    len == 0 ? "rc: an empty object has no window to read"
                             : "rc: not the client's transport");
        return LC_FALLBACK;
    }
    struct session *s;
    int rc = session_get(c, &s, err);
    if (rc) {
        *why = LODE_FALLBACK_SESSION;
        return LC_FALLBACK;
    }
    struct cmn_err rerr;
    cmn_err_clear(&rerr);
    if (rc_prepare(c, s, &rerr) != 0) {
        session_put(c->fanout, s);
        *why = LODE_FALLBACK_UNAVAILABLE;
        cmn_err_set(err, LODE_ERR_NO_TRANSPORT, "rc: %s", rerr.msg);
        return LC_FALLBACK;
    }
    struct xfer x = {.s = s, .rc = true, .name = "rc", .c = c,
                     .dev = buf->kind == LODE_BUF_HOST ? NULL : buf};
    char token[CMN_RDMA_TOKEN_FMT_SIZE];
    rc = xfer_open(&x, (uint8_t *)buf->ptr + off, len, NULL, ACCESS_READ, token, err);
    if (rc) {
        xfer_close(&x);
        session_put(c->fanout, s);
        *why = LODE_FALLBACK_UNAVAILABLE;
        return LC_FALLBACK;
    }
    /* A staged upload: the token's size is the object's length and the body is empty; the
     * gateway RDMA-READs the window and answers once the object is stored (or not). */
    struct lc_s3_req q = {
        .method = "PUT",
        .bucket = t->bucket,
        .key = t->key,
        .query = t->query,
        .content_type = opts ? opts->content_type : NULL,
        .send_length = true,
        .content_length = 0,
        .token = token,
    };
    struct lc_call call;
    rc = lc_call_start(c, &q, NULL, 0, NULL, &call, err);
    explicit_bzero(token, sizeof(token));
    if (rc) {
        cmn_err_wrap(err, "%s (rc)", t->what);
        goto out;
    }
    int st = call.resp->status;
    res->http_status = st;
    size_t n;
    const char *rv = lc_http_header(call.resp, "x-amz-rdma-reply", &n);
    int reply = rv ? lc_parse_rdma_reply(rv, n) : 0;
    if (st == 200 && reply == 200) {
        lc_copy_header(call.resp, "etag", res->etag, sizeof(res->etag));
        struct cmn_buf ignore;
        cmn_buf_init(&ignore);
        rc = lc_call_read_small(c, &call, &ignore, LC_ERROR_BODY_MAX, err);
        cmn_buf_free(&ignore);
        if (rc == 0) {
            res->bytes = len;
            res->transport = LODE_TRANSPORT_RC;
            res->sources = 1;
        }
    } else if (st == 200 && !rv) {
        /* A server that ignored the token stored what the body held: nothing. The plain
         * PUT that follows replaces it. */
        *why = LODE_FALLBACK_NO_REPLY;
        cmn_err_set(err, 0, "the server ignored the rc token");
        rc = LC_FALLBACK;
    } else if (st >= 300) {
        char code[64] = "";
        rc = lc_call_fail(c, &call, t->what, code, sizeof(code), err);
        if (reply == 501) {
            *why = LODE_FALLBACK_DECLINED;
            rc = LC_FALLBACK;
        } else if (st == 400 && token_refusal(code)) {
            *why = LODE_FALLBACK_REFUSED;
            rc = LC_FALLBACK;
        } else if (strcmp(code, "RDMATransferFailed") == 0) {
            /* Nothing was stored; the bytes can still go in a body. */
            *why = LODE_FALLBACK_DATA_PATH;
            rc = LC_FALLBACK;
        }
    } else {
        rc = cmn_err_set(err, LODE_ERR_PROTOCOL, "%s (rc): HTTP %d with x-amz-rdma-reply %d",
                         t->what, st, reply);
    }
    lc_call_end(c, &call);
out:
    /* The gateway has answered, so it reads no more; deregistering also fences a read a
     * failed gateway might still have in flight. */
    xfer_close(&x);
    session_put(c->fanout, s);
    if (rc == LC_FALLBACK)
        res->etag[0] = '\0';
    return rc;
}
