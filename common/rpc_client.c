/* Asynchronous RPC client for one peer.
 *
 * Connection states (one struct cconn per attempt; a failed attempt is never reused):
 *
 *   RESOLVING -> CONNECTING -> WAIT_HELLO -> WAIT_AUTH_OK -> READY
 *        \____________\_____________\______________\__________\___> DEAD (closing)
 *
 * Calls are packed at submission and wait in `pending` (submission order) until the
 * connection is READY; then they are written and stay in `pending` until their RESPONSE
 * arrives (looked up by request id in a small hash), their timer fires, or the connection
 * dies. Every path that ends a call goes through call_complete(), which fires the callback
 * exactly once and frees the call once its timer handle has closed.
 *
 * Callbacks may submit new calls or close the client. Failing every pending call therefore
 * first detaches the whole list, so calls submitted from a callback go to the next
 * connection instead of being failed by the loop that is running the callback.
 *
 * A call with a payload (cmn_rpc_client_call_payload) writes the caller's memory as a second
 * uv_buf, so its callback must not run while that write is still in libuv's hands (the
 * caller frees the payload in the callback). A call that ends during its write (timeout, a
 * peer answering early, a failed connection) keeps a copy of its result and completes from
 * the write callback; a timeout during such a write fails the connection, since a frame
 * cannot be taken back halfway and a peer that stops reading for that long is stuck anyway.
 *
 * A call with a destination (cmn_rpc_client_call_into) has its reply payload read from the
 * socket straight into the caller's memory: the receiver (cmn_rpc_rx) cuts reads at frame
 * boundaries while such calls are pending, so no payload byte passes through read_buf. The
 * same hazard as above in reverse: a call that ends while its payload is arriving (timeout)
 * must not let the caller reuse that memory while reads still land in it, so the connection
 * is closed first.
 *
 * A call with a pipe (cmn_rpc_client_call_splice) goes one step further: while its payload
 * arrives, the read allocator splices socket bytes into the pipe itself and hands libuv a
 * zero-length buffer, which libuv answers with UV_ENOBUFS in the read callback; that callback
 * then accounts for the bytes moved (callbacks must not run from inside the allocator). Once
 * the pipe is full, or splice() refuses, the rest of the payload is read into dest as for
 * call_into.
 */
#include "common/rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <lode/errno.h>

#include "common/id.h"
#include "common/log.h"
#include "common/rpc_internal.h"

#define LOG_CTX "rpc-client"
#define READ_BUF_SIZE (64u << 10)
#define DEFAULT_CONNECT_MS 3000
#define DEFAULT_CALL_MS 10000
#define HASH_BUCKETS 1024

enum cconn_state {
    CC_RESOLVING,
    CC_CONNECTING,
    CC_WAIT_HELLO,
    CC_WAIT_AUTH_OK,
    CC_READY,
    CC_DEAD,
};

struct cwreq {
    uv_write_t req;
    struct cconn *cc;            /* set when written */
    struct ccall *call;          /* with a payload by reference: the call it belongs to */
    size_t len;
    const void *payload;         /* the caller's, sent after data[] */
    size_t payload_len;
    uint8_t data[];              /* a whole frame, or its header and body */
};

struct ccall {
    struct cmn_rpc_client *cli;
    struct ccall *prev, *next;   /* in cli->pending */
    struct ccall *hnext;         /* hash chain */
    int linked;                  /* in pending and the hash */
    int done;                    /* callback fired */
    uint64_t id;
    unsigned method;
    uint32_t timeout_ms;
    cmn_rpc_response_cb cb;
    void *data;
    uv_timer_t timer;
    struct cwreq *frame;         /* until written */
    struct cconn *writing;       /* its payload is being written (from the caller's memory)
                                    on this connection */
    struct cmn_rpc_result *late; /* result held until that write is over */
    uint8_t *dest;               /* reply payload goes here (call_into), or NULL */
    size_t dest_cap;
    struct cconn *rx_conn;       /* its reply payload is arriving into dest on this one */
    uint8_t *rx_body;            /* the reply body, kept while the payload arrives */
    uint32_t rx_body_len;
    int pipe_wr;                 /* call_splice: the pipe's write end; else -1 */
    int splice_off;              /* the rest of the payload is read, not spliced */
    size_t spliced;              /* payload bytes moved into the pipe */
};

struct cconn {
    struct cmn_rpc_client *cli;
    enum cconn_state state;
    uv_tcp_t tcp;
    uv_timer_t timer;            /* connect + handshake deadline; also defers early failures */
    uv_connect_t connect_req;
    uv_getaddrinfo_t gai;
    int refs;                    /* open handles + outstanding getaddrinfo */
    int tcp_open;
    int deferred_error;          /* failure to report from the timer (never synchronously) */
    uint8_t server_nonce[CMN_RPC_NONCE_SIZE];
    uint8_t client_nonce[CMN_RPC_NONCE_SIZE];
    struct cmn_rpc_rx rx;
    struct ccall *rx_call;       /* whose payload the receiver is diverting */
    int sp_ready;                /* a splice result waits for on_read (UV_ENOBUFS) */
    size_t sp_moved;
    int sp_err;                  /* the socket failed during it: 0, UV_EOF or -errno */
};

struct cmn_rpc_client {
    uv_loop_t *loop;
    char *address;
    char host[CMN_RPC_HOST_MAX];
    char port[8];
    uint8_t *secret;
    size_t secret_len;
    uint32_t max_frame;
    uint32_t connect_timeout_ms;
    struct cconn *conn;          /* current attempt, or NULL */
    struct ccall *pending_head, *pending_tail;
    unsigned n_pending;
    struct ccall *buckets[HASH_BUCKETS];
    uint64_t next_id;
    unsigned n_conns;            /* cconn objects not yet freed */
    unsigned n_calls;            /* ccall objects not yet freed */
    unsigned n_dest;             /* pending calls with a destination */
    uv_timer_t tick;             /* never started; closing it defers close_cb */
    int tick_open;
    int closing;
    void (*close_cb)(void *data);
    void *close_data;
    uint8_t read_buf[READ_BUF_SIZE];
};

static void conn_fail(struct cconn *cc, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- calls ----------------------------------------------------------------------------- */

static void client_maybe_finish(struct cmn_rpc_client *cli)
{
    if (!cli->closing || cli->tick_open || cli->n_conns || cli->n_calls)
        return;
    void (*cb)(void *) = cli->close_cb;
    void *data = cli->close_data;
    explicit_bzero(cli->secret, cli->secret_len);
    free(cli->secret);
    free(cli->address);
    free(cli);
    if (cb)
        cb(data);
}

static void call_unlink(struct ccall *call)
{
    struct cmn_rpc_client *cli = call->cli;
    if (!call->linked)
        return;
    call->linked = 0;
    if (call->prev)
        call->prev->next = call->next;
    else
        cli->pending_head = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        cli->pending_tail = call->prev;
    call->prev = call->next = NULL;
    cli->n_pending--;
    struct ccall **pp = &cli->buckets[call->id % HASH_BUCKETS];
    while (*pp && *pp != call)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = call->hnext;
    call->hnext = NULL;
}

static void on_call_timer_closed(uv_handle_t *h)
{
    struct ccall *call = h->data;
    struct cmn_rpc_client *cli = call->cli;
    free(call);
    cli->n_calls--;
    client_maybe_finish(cli);
}

static void result_free(struct cmn_rpc_result *r)
{
    if (r) {
        cmn_rpc_result_free(r);
        free(r);
    }
}

/* A copy of res that owns its memory (res may borrow the reader's), or NULL. */
static struct cmn_rpc_result *result_copy(const struct cmn_rpc_result *res)
{
    struct cmn_rpc_result *r = malloc(sizeof(*r));
    if (!r)
        return NULL;
    cmn_rpc_result_init(r);
    r->status = res->status;
    r->request_id = res->request_id;
    r->leader_id = res->leader_id;
    r->spliced = res->spliced;
    memcpy(r->message, res->message, sizeof(r->message));
    memcpy(r->leader_address, res->leader_address, sizeof(r->leader_address));
    if (cmn_buf_append(&r->body, res->body.data, res->body.len) ||
        cmn_buf_append(&r->payload, res->payload.data, res->payload.len)) {
        cmn_rpc_result_free(r);
        cmn_rpc_result_set_local(r, -ENOMEM, "out of memory keeping a reply");
    }
    return r;
}

static void call_finish(struct ccall *call, const struct cmn_rpc_result *res)
{
    call->cb(call->data, res);
    free(call->rx_body);
    call->rx_body = NULL;
    uv_close((uv_handle_t *)&call->timer, on_call_timer_closed);
}

static void call_complete(struct ccall *call, const struct cmn_rpc_result *res)
{
    if (call->done)
        return;
    call->done = 1;
    call_unlink(call);
    if (call->dest)
        call->cli->n_dest--;
    if (call->rx_conn && call->rx_conn->rx_call == call)
        call->rx_conn->rx_call = NULL;
    call->rx_conn = NULL;
    uv_timer_stop(&call->timer);
    free(call->frame);
    call->frame = NULL;
    if (call->writing) {
        call->late = result_copy(res);
        return; /* on_write finishes it */
    }
    call_finish(call, res);
}

/* The payload write of `call` is over: its memory is the caller's again. */
static void call_write_done(struct ccall *call)
{
    call->writing = NULL;
    if (!call->done)
        return;
    struct cmn_rpc_result oom;
    struct cmn_rpc_result *res = call->late;
    if (!res) {
        cmn_rpc_result_init(&oom);
        oom.request_id = call->id;
        cmn_rpc_result_set_local(&oom, -ENOMEM, "out of memory keeping a reply");
        res = &oom;
    }
    call->late = NULL;
    call_finish(call, res);
    if (res != &oom)
        result_free(res);
}

static void call_fail(struct ccall *call, int status, const char *msg)
{
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    res.request_id = call->id;
    cmn_rpc_result_set_local(&res, status, "%s", msg);
    call_complete(call, &res);
}

/* Fails every pending call. The list is detached first (see the top of the file). */
static void fail_all(struct cmn_rpc_client *cli, int status, const char *msg)
{
    struct ccall *list = cli->pending_head;
    for (struct ccall *c = list; c; c = c->next)
        c->linked = 0;
    cli->pending_head = cli->pending_tail = NULL;
    cli->n_pending = 0;
    memset(cli->buckets, 0, sizeof(cli->buckets));
    while (list) {
        struct ccall *call = list;
        list = call->next;
        call->prev = call->next = call->hnext = NULL;
        call_fail(call, status, msg);
    }
}

static void on_call_timeout(uv_timer_t *t)
{
    struct ccall *call = t->data;
    struct cmn_rpc_client *cli = call->cli;
    char msg[384];
    const char *name = cmn_rpc_method_name(call->method);
    snprintf(msg, sizeof(msg), "%s to %s: no reply within %u ms", name ? name : "call",
             cli->address, call->timeout_ms);
    struct cconn *writing = call->writing;
    if (call->rx_conn) {
        /* Reads still land in the caller's memory: stop them before the callback hands
         * that memory back (conn_fail fails this call with the same status). */
        conn_fail(call->rx_conn, LODE_ETIMEOUT, "%s (reply payload still arriving)", msg);
        return;
    }
    call_fail(call, LODE_ETIMEOUT, msg);
    /* Its payload is still being written: only closing the connection ends that write. */
    if (writing)
        conn_fail(writing, LODE_ETIMEOUT, "%s (payload not yet sent)", msg);
}

static void on_write(uv_write_t *req, int status)
{
    struct cwreq *w = (struct cwreq *)req;
    struct cconn *cc = w->cc;
    struct ccall *call = w->call;
    free(w);
    if (call)
        call_write_done(call);
    if (status < 0 && status != UV_ECANCELED)
        conn_fail(cc, LODE_ECLOSED, "write to %s failed: %s", cc->cli->address,
                  uv_strerror(status));
}

/* Takes ownership of w. */
static int conn_write(struct cconn *cc, struct cwreq *w)
{
    w->cc = cc;
    uv_buf_t b[2] = {uv_buf_init((char *)w->data, (unsigned)w->len),
                     uv_buf_init((char *)w->payload, (unsigned)w->payload_len)};
    int rc = uv_write(&w->req, (uv_stream_t *)&cc->tcp, b, w->payload_len ? 2 : 1, on_write);
    if (rc < 0) {
        free(w);
        conn_fail(cc, LODE_ECLOSED, "write to %s failed: %s", cc->cli->address, uv_strerror(rc));
    }
    return rc;
}

static void send_call(struct cconn *cc, struct ccall *call)
{
    struct cwreq *w = call->frame;
    call->frame = NULL;
    if (w->payload_len) {
        w->call = call;
        call->writing = cc; /* before the write: a failure completes the call right away */
        if (conn_write(cc, w) < 0)
            call_write_done(call);
        return;
    }
    conn_write(cc, w);
}

static void flush_pending(struct cconn *cc)
{
    struct cmn_rpc_client *cli = cc->cli;
    for (struct ccall *call = cli->pending_head; call && cc->state == CC_READY;
         call = call->next) {
        if (call->frame)
            send_call(cc, call);
    }
}

/* ---- connection ------------------------------------------------------------------------ */

static void conn_unref(struct cconn *cc)
{
    if (--cc->refs > 0)
        return;
    struct cmn_rpc_client *cli = cc->cli;
    cmn_rpc_rx_free(&cc->rx);
    free(cc);
    cli->n_conns--;
    client_maybe_finish(cli);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void conn_fail(struct cconn *cc, int status, const char *fmt, ...)
{
    if (cc->state == CC_DEAD)
        return;
    struct cmn_rpc_client *cli = cc->cli;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cc->state = CC_DEAD;
    if (cli->conn == cc)
        cli->conn = NULL;
    if (cli->n_pending)
        LOG_DEBUG(LOG_CTX, "%s; failing %u pending calls", msg, cli->n_pending);
    uv_close((uv_handle_t *)&cc->timer, on_conn_handle_closed);
    if (cc->tcp_open)
        uv_close((uv_handle_t *)&cc->tcp, on_conn_handle_closed);
    fail_all(cli, status, msg);
}

static void on_conn_timer(uv_timer_t *t)
{
    struct cconn *cc = t->data;
    struct cmn_rpc_client *cli = cc->cli;
    if (cc->deferred_error)
        conn_fail(cc, cc->deferred_error, "connect to %s: %s", cli->address,
                  lode_strerror(cc->deferred_error));
    else
        conn_fail(cc, LODE_ETIMEOUT, "connect to %s: no authenticated connection within %u ms",
                  cli->address, cli->connect_timeout_ms);
}

static void defer_fail(struct cconn *cc, int status)
{
    cc->deferred_error = status;
    uv_timer_start(&cc->timer, on_conn_timer, 0, 0);
}

static int on_frame(void *data, const struct cmn_rpc_header *h, const uint8_t *body,
                    const uint8_t *payload)
{
    struct cconn *cc = data;
    struct cmn_rpc_client *cli = cc->cli;

    if (h->kind == CMN_RPC_AUTH_FAIL || h->kind == CMN_RPC_PROTO_ERROR) {
        struct cmn_rpc_result r;
        cmn_rpc_result_init(&r);
        int status = h->kind == CMN_RPC_AUTH_FAIL ? LODE_EAUTH
                     : h->status < 0           ? h->status
                                               : LODE_EBADMSG;
        cmn_rpc_result_set_error(&r, status, body, h->body_len, NULL);
        conn_fail(cc, status, "%s rejected the connection: %s", cli->address, r.message);
        return 1;
    }
    switch (cc->state) {
    case CC_WAIT_HELLO: {
        if (h->kind != CMN_RPC_HELLO || h->body_len != CMN_RPC_NONCE_SIZE) {
            conn_fail(cc, LODE_EBADMSG, "%s: expected a HELLO frame with a %u-byte nonce, got %s (%u bytes)",
                      cli->address, CMN_RPC_NONCE_SIZE, cmn_rpc_kind_name(h->kind), h->body_len);
            break;
        }
        memcpy(cc->server_nonce, body, CMN_RPC_NONCE_SIZE);
        struct cwreq *w = malloc(sizeof(*w) + CMN_RPC_HEADER_SIZE + 2 * CMN_RPC_NONCE_SIZE);
        if (!w) {
            conn_fail(cc, -ENOMEM, "%s: out of memory during the handshake", cli->address);
            break;
        }
        w->len = CMN_RPC_HEADER_SIZE + 2 * CMN_RPC_NONCE_SIZE;
        w->call = NULL;
        w->payload = NULL;
        w->payload_len = 0;
        uint8_t *p = w->data + CMN_RPC_HEADER_SIZE;
        if (cmn_random_bytes(cc->client_nonce, CMN_RPC_NONCE_SIZE) < 0 ||
            cmn_rpc_auth_mac(cli->secret, cli->secret_len, 0, cc->server_nonce,
                             cc->client_nonce, p + CMN_RPC_NONCE_SIZE) < 0) {
            free(w);
            conn_fail(cc, LODE_EINTERNAL, "%s: cannot compute the handshake MAC", cli->address);
            break;
        }
        memcpy(p, cc->client_nonce, CMN_RPC_NONCE_SIZE);
        struct cmn_rpc_header ah = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_AUTH,
                                    .body_len = 2 * CMN_RPC_NONCE_SIZE};
        cmn_rpc_header_pack(&ah, w->data);
        cc->state = CC_WAIT_AUTH_OK;
        conn_write(cc, w);
        break;
    }
    case CC_WAIT_AUTH_OK: {
        uint8_t expect[CMN_HMAC_SIZE];
        if (h->kind != CMN_RPC_AUTH_OK || h->body_len != CMN_HMAC_SIZE) {
            conn_fail(cc, LODE_EBADMSG, "%s: expected AUTH_OK with a %u-byte MAC, got %s (%u bytes)",
                      cli->address, CMN_HMAC_SIZE, cmn_rpc_kind_name(h->kind), h->body_len);
            break;
        }
        if (cmn_rpc_auth_mac(cli->secret, cli->secret_len, 1, cc->server_nonce, cc->client_nonce,
                             expect) < 0 ||
            !cmn_ct_equal(expect, body, CMN_HMAC_SIZE)) {
            conn_fail(cc, LODE_EAUTH,
                      "%s: authentication failed: the server did not prove the cluster secret "
                      "(wrong secret on one side, or not a lode peer)", cli->address);
            break;
        }
        cc->state = CC_READY;
        uv_timer_stop(&cc->timer);
        LOG_DEBUG(LOG_CTX, "%s: authenticated; %u calls waiting", cli->address, cli->n_pending);
        flush_pending(cc);
        break;
    }
    case CC_READY: {
        if (h->kind != CMN_RPC_RESPONSE) {
            conn_fail(cc, LODE_EBADMSG, "%s: unexpected %s frame (expected RESPONSE)",
                      cli->address, cmn_rpc_kind_name(h->kind));
            break;
        }
        struct ccall *call = cli->buckets[h->request_id % HASH_BUCKETS];
        while (call && call->id != h->request_id)
            call = call->hnext;
        if (!call) {
            LOG_DEBUG(LOG_CTX, "%s: reply to request %llu that is no longer waiting",
                      cli->address, (unsigned long long)h->request_id);
            break;
        }
        struct cmn_rpc_result res;
        cmn_rpc_result_init(&res);
        res.request_id = h->request_id;
        if (h->status == 0) {
            /* The result only lives during the callback, so it borrows the reader's
             * memory instead of copying (cap 0: nothing here ever frees it). */
            res.body.data = (uint8_t *)body;
            res.body.len = h->body_len;
            res.payload.data = (uint8_t *)payload;
            res.payload.len = h->payload_len;
        } else {
            cmn_rpc_result_set_error(&res, h->status, body, h->body_len, NULL);
        }
        call_complete(call, &res);
        break;
    }
    case CC_RESOLVING:
    case CC_CONNECTING:
    case CC_DEAD:
        break;
    }
    return cc->state == CC_DEAD ? 1 : 0;
}

/* The reply to a call with a destination: its payload goes straight there when it fits. */
static uint8_t *rx_divert(void *data, const struct cmn_rpc_header *h, const uint8_t *body)
{
    struct cconn *cc = data;
    struct cmn_rpc_client *cli = cc->cli;
    if (cc->state != CC_READY || h->kind != CMN_RPC_RESPONSE || h->status != 0 || !cli->n_dest)
        return NULL;
    struct ccall *call = cli->buckets[h->request_id % HASH_BUCKETS];
    while (call && call->id != h->request_id)
        call = call->hnext;
    if (!call || !call->dest || h->payload_len > call->dest_cap || call->writing)
        return NULL;
    /* The receiver drops the body once it diverts; the callback needs it. */
    uint8_t *copy = malloc(h->body_len ? h->body_len : 1);
    if (!copy)
        return NULL;
    memcpy(copy, body, h->body_len);
    call->rx_body = copy;
    call->rx_body_len = h->body_len;
    call->rx_conn = cc;
    cc->rx_call = call;
    return call->dest;
}

static int rx_diverted(void *data, const struct cmn_rpc_header *h)
{
    struct cconn *cc = data;
    struct ccall *call = cc->rx_call;
    cc->rx_call = NULL;
    if (!call)
        return cc->state == CC_DEAD ? 1 : 0;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    res.request_id = h->request_id;
    res.body.data = call->rx_body;
    res.body.len = call->rx_body_len;
    res.payload.data = call->dest;
    res.payload.len = h->payload_len;
    res.spliced = call->spliced;
    call_complete(call, &res);
    return cc->state == CC_DEAD ? 1 : 0;
}

static const struct cmn_rpc_rx_ops rx_ops = {
    .frame = on_frame,
    .divert = rx_divert,
    .diverted = rx_diverted,
};

/* Moves what the socket has of rx_call's payload into its pipe. Returns 1 when something
 * was moved or the socket failed (result in cc->sp_*, for on_read), 0 when the socket has
 * nothing now, -1 when the rest must be read instead (pipe full, splice refused). */
static int splice_some(struct cconn *cc, struct ccall *call, size_t left)
{
    int fd;
    if (uv_fileno((uv_handle_t *)&cc->tcp, &fd) != 0) {
        call->splice_off = 1;
        return -1;
    }
    size_t moved = 0;
    int err = 0;
    while (left > 0) {
        ssize_t n = splice(fd, NULL, call->pipe_wr, NULL, left,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            moved += (size_t)n;
            left -= (size_t)n;
            continue;
        }
        if (n == 0) {
            err = UV_EOF;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            /* The socket is empty or the pipe full: only the second ends splicing. A socket
             * that has bytes splice will not take (nothing moved, pipe not full) ends it too,
             * or the level-triggered poll would call us back forever. */
            struct pollfd p = {.fd = call->pipe_wr, .events = POLLOUT};
            int avail = 0;
            if (poll(&p, 1, 0) == 0 ||
                (!moved && ioctl(fd, FIONREAD, &avail) == 0 && avail > 0))
                call->splice_off = 1;
            break;
        }
        if (errno == EINVAL || errno == ENOSYS || errno == EBADF) {
            call->splice_off = 1;
            break;
        }
        err = -errno;
        break;
    }
    if (!moved && !err)
        return call->splice_off ? -1 : 0;
    cc->sp_ready = 1;
    cc->sp_moved = moved;
    cc->sp_err = err;
    return 1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cconn *cc = h->data;
    struct cmn_rpc_client *cli = cc->cli;
    (void)suggested;
    size_t have, left;
    struct ccall *sc = cc->rx_call;
    if (sc && sc->pipe_wr >= 0 && !sc->splice_off && cc->state == CC_READY && !cc->sp_ready &&
        cmn_rpc_rx_direct_state(&cc->rx, &have, &left) && have == sc->spliced && left > 0 &&
        splice_some(cc, sc, left) >= 0) {
        /* Spliced, or nothing to take now: a zero-length buffer makes libuv skip its read. */
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    size_t len;
    /* Exact reads (one per header and body) only while some call wants its payload
     * placed; otherwise read as much as the buffer holds. */
    cmn_rpc_rx_next_read(&cc->rx, cli->n_dest > 0, cli->read_buf, sizeof(cli->read_buf),
                         &buf->base, &len);
    buf->len = len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cconn *cc = s->data;
    struct cmn_rpc_client *cli = cc->cli;
    if (nread == UV_ENOBUFS && !buf->len) {
        /* From on_alloc: the bytes spliced, if any (see the top of the file). */
        if (!cc->sp_ready || cc->state == CC_DEAD) {
            cc->sp_ready = 0;
            return;
        }
        cc->sp_ready = 0;
        size_t moved = cc->sp_moved;
        int err = cc->sp_err;
        if (moved) {
            if (cc->rx_call)
                cc->rx_call->spliced += moved;
            int rc = cmn_rpc_rx_feed_direct(&cc->rx, moved, &rx_ops, cc);
            if (rc < 0 && cc->state != CC_DEAD)
                conn_fail(cc, rc, "%s: %s", cli->address, cmn_err_text(&cc->rx.err));
        }
        if (err && cc->state != CC_DEAD) {
            const char *why = err == UV_EOF ? "closed by the peer" : strerror(-err);
            conn_fail(cc, LODE_ECLOSED, "connection to %s %s with %u calls in flight",
                      cli->address, why, cli->n_pending);
        }
        return;
    }
    if (nread == 0 || cc->state == CC_DEAD)
        return;
    if (nread < 0) {
        const char *why = nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread);
        if (cc->state == CC_READY)
            conn_fail(cc, LODE_ECLOSED, "connection to %s %s with %u calls in flight",
                      cli->address, why, cli->n_pending);
        else
            conn_fail(cc, LODE_ECLOSED, "connection to %s %s during the handshake",
                      cli->address, why);
        return;
    }
    int rc;
    if (cmn_rpc_rx_is_direct(&cc->rx, buf->base))
        rc = cmn_rpc_rx_feed_direct(&cc->rx, (size_t)nread, &rx_ops, cc);
    else
        rc = cmn_rpc_rx_feed(&cc->rx, (const uint8_t *)buf->base, (size_t)nread, &rx_ops, cc);
    if (rc < 0)
        conn_fail(cc, rc, "%s: %s", cli->address, cmn_err_text(&cc->rx.err));
}

static void on_connected(uv_connect_t *req, int status)
{
    struct cconn *cc = req->data;
    if (cc->state == CC_DEAD || status == UV_ECANCELED)
        return;
    if (status < 0) {
        conn_fail(cc, status, "connect to %s: %s", cc->cli->address, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&cc->tcp, 1);
    cc->state = CC_WAIT_HELLO;
    int rc = uv_read_start((uv_stream_t *)&cc->tcp, on_alloc, on_read);
    if (rc < 0)
        conn_fail(cc, rc, "connect to %s: %s", cc->cli->address, uv_strerror(rc));
}

static void conn_connect(struct cconn *cc, const struct sockaddr *sa)
{
    struct cmn_rpc_client *cli = cc->cli;
    int rc = uv_tcp_init(cli->loop, &cc->tcp);
    if (rc < 0) {
        defer_fail(cc, rc);
        return;
    }
    cc->tcp.data = cc;
    cc->tcp_open = 1;
    cc->refs++;
    cc->state = CC_CONNECTING;
    cc->connect_req.data = cc;
    rc = uv_tcp_connect(&cc->connect_req, &cc->tcp, sa, on_connected);
    if (rc < 0)
        defer_fail(cc, rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct cconn *cc = req->data;
    if (cc->state != CC_DEAD) {
        if (status < 0 || !res)
            conn_fail(cc, status < 0 ? status : -EHOSTUNREACH, "connect to %s: cannot resolve '%s': %s",
                      cc->cli->address, cc->cli->host, uv_strerror(status));
        else
            conn_connect(cc, res->ai_addr);
    }
    if (res)
        uv_freeaddrinfo(res);
    conn_unref(cc);
}

static int conn_start(struct cmn_rpc_client *cli)
{
    struct cconn *cc = calloc(1, sizeof(*cc));
    if (!cc)
        return -ENOMEM;
    cc->cli = cli;
    cc->state = CC_RESOLVING;
    cmn_rpc_rx_init(&cc->rx, cli->max_frame);
    uv_timer_init(cli->loop, &cc->timer);
    cc->timer.data = cc;
    cc->refs = 1;
    cli->conn = cc;
    cli->n_conns++;
    uv_timer_start(&cc->timer, on_conn_timer, cli->connect_timeout_ms, 0);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int port = atoi(cli->port);
    if (uv_ip4_addr(cli->host, port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(cli->host, port, (struct sockaddr_in6 *)&ss) == 0) {
        conn_connect(cc, (struct sockaddr *)&ss);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    cc->gai.data = cc;
    int rc = uv_getaddrinfo(cli->loop, &cc->gai, on_resolved, cli->host, cli->port, &hints);
    if (rc < 0)
        defer_fail(cc, rc);
    else
        cc->refs++;
    return 0;
}

/* ---- client API ------------------------------------------------------------------------ */

/* libuv writes with write(2), so a peer that resets its connection would kill the process
 * with SIGPIPE; a remote peer must never be able to do that. A handler the program installed
 * itself is left alone. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

int cmn_rpc_client_create(uv_loop_t *loop, const struct cmn_rpc_client_config *cfg,
                          struct cmn_rpc_client **out)
{
    if (!loop || !cfg || !cfg->address || !cfg->secret || !cfg->secret_len || !out)
        return -EINVAL;
    ignore_sigpipe();
    struct cmn_rpc_client *cli = calloc(1, sizeof(*cli));
    if (!cli)
        return -ENOMEM;
    int rc = cmn_rpc_addr_split(cfg->address, cli->host, cli->port, NULL);
    if (rc) {
        free(cli);
        return rc;
    }
    if (!cli->host[0])
        snprintf(cli->host, sizeof(cli->host), "127.0.0.1");
    cli->loop = loop;
    cli->address = strdup(cfg->address);
    cli->secret = malloc(cfg->secret_len);
    if (!cli->address || !cli->secret) {
        free(cli->address);
        free(cli->secret);
        free(cli);
        return -ENOMEM;
    }
    memcpy(cli->secret, cfg->secret, cfg->secret_len);
    cli->secret_len = cfg->secret_len;
    cli->max_frame = cfg->max_frame ? cfg->max_frame : CMN_RPC_DEFAULT_MAX_FRAME;
    cli->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
                                                      : DEFAULT_CONNECT_MS;
    uv_timer_init(loop, &cli->tick);
    cli->tick.data = cli;
    cli->tick_open = 1;
    *out = cli;
    return 0;
}

static int client_call(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                       const ProtobufCMessage *req, const void *payload, size_t payload_len,
                       void *dest, size_t dest_cap, int pipe_wr, uint32_t timeout_ms,
                       cmn_rpc_response_cb cb, void *data)
{
    if (!cb || method > UINT16_MAX || flags > UINT16_MAX || (payload_len && !payload) ||
        (dest_cap && !dest))
        return -EINVAL;
    if (cli->closing)
        return LODE_ECLOSED;
    size_t body_len = req ? protobuf_c_message_get_packed_size(req) : 0;
    if ((uint64_t)body_len + payload_len > cli->max_frame)
        return LODE_EFRAMETOOBIG;
    struct ccall *call = calloc(1, sizeof(*call));
    struct cwreq *w = malloc(sizeof(*w) + CMN_RPC_HEADER_SIZE + body_len);
    if (!call || !w) {
        free(call);
        free(w);
        return -ENOMEM;
    }
    if (!cli->conn) {
        int rc = conn_start(cli);
        if (rc) {
            free(call);
            free(w);
            return rc;
        }
    }
    call->cli = cli;
    call->id = ++cli->next_id;
    call->method = method;
    call->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_CALL_MS;
    call->cb = cb;
    call->data = data;
    call->pipe_wr = pipe_wr;
    if (dest_cap) {
        call->dest = dest;
        call->dest_cap = dest_cap;
        cli->n_dest++;
    }
    w->len = CMN_RPC_HEADER_SIZE + body_len;
    w->call = NULL;
    w->payload = payload;
    w->payload_len = payload_len;
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .flags = (uint16_t)flags, .method = (uint16_t)method,
                               .request_id = call->id, .body_len = (uint32_t)body_len,
                               .payload_len = (uint32_t)payload_len};
    cmn_rpc_header_pack(&h, w->data);
    if (req)
        protobuf_c_message_pack(req, w->data + CMN_RPC_HEADER_SIZE);
    call->frame = w;

    uv_timer_init(cli->loop, &call->timer);
    call->timer.data = call;
    uv_timer_start(&call->timer, on_call_timeout, call->timeout_ms, 0);
    cli->n_calls++;

    call->linked = 1;
    call->prev = cli->pending_tail;
    if (cli->pending_tail)
        cli->pending_tail->next = call;
    else
        cli->pending_head = call;
    cli->pending_tail = call;
    cli->n_pending++;
    struct ccall **bucket = &cli->buckets[call->id % HASH_BUCKETS];
    call->hnext = *bucket;
    *bucket = call;

    if (cli->conn->state == CC_READY)
        send_call(cli->conn, call);
    return 0;
}

int cmn_rpc_client_call(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                        const ProtobufCMessage *req, uint32_t timeout_ms,
                        cmn_rpc_response_cb cb, void *data)
{
    return client_call(cli, method, flags, req, NULL, 0, NULL, 0, -1, timeout_ms, cb, data);
}

int cmn_rpc_client_call_payload(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                                const ProtobufCMessage *req, const void *payload,
                                size_t payload_len, uint32_t timeout_ms, cmn_rpc_response_cb cb,
                                void *data)
{
    return client_call(cli, method, flags, req, payload, payload_len, NULL, 0, -1, timeout_ms,
                       cb, data);
}

int cmn_rpc_client_call_into(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                             const ProtobufCMessage *req, void *dest, size_t dest_cap,
                             uint32_t timeout_ms, cmn_rpc_response_cb cb, void *data)
{
    if (!dest_cap)
        return -EINVAL;
    return client_call(cli, method, flags, req, NULL, 0, dest, dest_cap, -1, timeout_ms, cb,
                       data);
}

int cmn_rpc_client_call_splice(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                               const ProtobufCMessage *req, int pipe_wr, void *dest,
                               size_t dest_cap, uint32_t timeout_ms, cmn_rpc_response_cb cb,
                               void *data)
{
    if (!dest_cap || pipe_wr < 0)
        return -EINVAL;
    return client_call(cli, method, flags, req, NULL, 0, dest, dest_cap, pipe_wr, timeout_ms,
                       cb, data);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct cmn_rpc_client *cli = h->data;
    cli->tick_open = 0;
    client_maybe_finish(cli);
}

void cmn_rpc_client_close(struct cmn_rpc_client *cli, void (*cb)(void *data), void *data)
{
    if (cli->closing)
        return;
    cli->closing = 1;
    cli->close_cb = cb;
    cli->close_data = data;
    char msg[384];
    snprintf(msg, sizeof(msg), "call to %s abandoned: client closed", cli->address);
    if (cli->conn)
        conn_fail(cli->conn, LODE_ECLOSED, "%s", msg);
    fail_all(cli, LODE_ECLOSED, msg);
    uv_close((uv_handle_t *)&cli->tick, on_tick_closed);
}
