/* RPC server: accepts connections, runs the handshake, dispatches requests, writes replies.
 *
 * Connection state machine:
 *
 *   HANDSHAKE --AUTH ok--> READY --fatal error--> LINGER --EOF / timer--> CLOSING
 *       |                    |                                              ^
 *       +--bad AUTH, REQUEST, timeout, bad frame --> LINGER                 |
 *       +--------------------+--EOF, read/write error, server close --------+
 *
 * LINGER exists so that the error frame we just wrote reaches the peer: closing a socket
 * that still has unread input makes the kernel send RST, and a peer that receives RST may
 * never read the explanation. In LINGER we half-close (shutdown), discard input until the
 * peer closes or a short timer fires, then close.
 *
 * Ownership: the server owns its connections; a connection owns its write requests until
 * their callbacks. Calls are owned by the handler from dispatch until a reply function frees
 * them; when their connection goes away first they are only unlinked (orphaned), never
 * freed behind the handler's back.
 *
 * Zero-copy payloads. Receive: with payload_alloc configured, reads are cut at header and
 * body boundaries (cmn_rpc_rx, rpc_internal.h), and once a REQUEST's body is in, the
 * payload is read by the kernel straight into the memory payload_alloc returned; until it
 * is complete the call sits in conn->rx_call, unseen by the handler. Memory a call still
 * holds when it is freed (not taken, connection gone mid-payload) goes back through
 * payload_free, exactly once. Send: cmn_rpc_reply_payload writes a small header+body buffer
 * and the caller's payload as two uv_bufs; the caller's release runs from the write
 * callback (which libuv also runs, with UV_ECANCELED, when the connection closes first).
 */
#include "common/rpc.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc_internal.h"

#define LOG_CTX "rpc"
#define READ_BUF_SIZE (64u << 10)
#define LINGER_MS 2000
#define DEFAULT_HANDSHAKE_MS 5000
/* Backpressure: stop reading from a connection above the high marks, resume below the low
 * marks, so a client that pipelines without reading replies costs bounded memory. */
#define MAX_CALLS 1024u
#define RESUME_CALLS 512u
#define MAX_QUEUED_BYTES (64u << 20)
#define RESUME_QUEUED_BYTES (32u << 20)

enum conn_state {
    CONN_HANDSHAKE,              /* HELLO sent, waiting for AUTH */
    CONN_READY,                  /* authenticated */
    CONN_LINGER,                 /* error frame sent, draining input before close */
    CONN_CLOSING,                /* uv_close called on the handles */
};

struct conn;

struct cmn_rpc_call {
    struct conn *conn;           /* NULL once orphaned */
    struct cmn_rpc_call *prev, *next;
    struct cmn_rpc_header hdr;
    char peer[CMN_RPC_PEER_MAX];
    size_t bytes;                /* what it counts in conn->call_bytes */
    uint8_t *payload;            /* in data[] when buffered, else payload_alloc's memory */
    void *cookie;                /* payload_alloc's, until taken or given to payload_free */
    void (*payload_free)(void *data, void *cookie); /* copied: calls outlive the server */
    void *payload_free_data;
    uint8_t data[];              /* body, then a buffered payload */
};

struct conn {
    struct cmn_rpc_server *srv;
    struct conn *prev, *next;    /* in srv->conns */
    uv_tcp_t tcp;
    uv_timer_t timer;            /* handshake, idle or linger deadline, by state */
    uv_shutdown_t shutdown_req;
    enum conn_state state;
    int open_handles;
    int reading;
    uint64_t last_active_ms;     /* loop time of the last read, for the idle timeout */
    uint8_t server_nonce[CMN_RPC_NONCE_SIZE];
    struct cmn_rpc_rx rx;
    struct cmn_rpc_call *rx_call; /* its payload is being read into payload_alloc memory */
    struct cmn_rpc_call *calls;  /* unanswered calls */
    unsigned n_calls;
    size_t call_bytes;           /* bodies + payloads held by unanswered calls */
    size_t write_queued;         /* bytes handed to uv_write, not yet completed */
    char peer[CMN_RPC_PEER_MAX];
};

struct wreq {
    uv_write_t req;
    struct conn *conn;
    size_t len;                  /* bytes of the frame (counted in write_queued) */
    size_t data_len;             /* of them in data[] */
    const void *payload;         /* the rest, by reference (cmn_rpc_reply_payload) */
    void (*release)(void *arg);  /* runs once the payload is no longer needed */
    void *release_arg;
    uint8_t data[];              /* the frame, or its header and body */
};

struct cmn_rpc_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t tick;             /* never started; closing it defers close_cb to a later turn */
    int listener_open;
    int tick_open;
    int closing;
    char *service;
    uint8_t *secret;
    size_t secret_len;
    uint32_t max_frame;
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;
    cmn_rpc_handler_cb handler;
    void *data;
    void *(*payload_alloc)(void *data, unsigned method, const uint8_t *body, size_t body_len,
                           uint32_t payload_len, void **cookie);
    void (*payload_free)(void *data, void *cookie);
    struct conn *conns;
    unsigned n_conns;
    void (*close_cb)(void *data);
    void *close_data;
    struct cmn_log_ratelimit warn_rl;
    struct cmn_counter *m_accepted;
    struct cmn_counter *m_requests;
    struct cmn_counter *m_auth_failures;
    struct cmn_counter *m_proto_errors;
    struct cmn_gauge *m_open;
    /* Reads are consumed synchronously inside the read callback, so one buffer serves every
     * connection of the server. */
    uint8_t read_buf[READ_BUF_SIZE];
};

static void conn_close(struct conn *c);

/* ---- helpers --------------------------------------------------------------------------- */

static void count(struct cmn_counter *c)
{
    if (c)
        cmn_counter_add(c, 1);
}

__attribute__((format(printf, 2, 3))) static void warn_peer(struct cmn_rpc_server *srv,
                                                            const char *fmt, ...)
{
    uint32_t suppressed = 0;
    if (!cmn_log_ratelimit_ok(&srv->warn_rl, &suppressed))
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (suppressed)
        LOG_WARN(LOG_CTX, "%s (%u similar warnings suppressed)", line, suppressed);
    else
        LOG_WARN(LOG_CTX, "%s", line);
}

static struct wreq *wreq_new(size_t body_len, size_t payload_len)
{
    size_t len = CMN_RPC_HEADER_SIZE + body_len + payload_len;
    struct wreq *w = malloc(sizeof(*w) + len);
    if (w) {
        w->len = w->data_len = len;
        w->payload = NULL;
        w->release = NULL;
        w->release_arg = NULL;
    }
    return w;
}

/* Frees w, first releasing a payload it references. */
static void wreq_free(struct wreq *w)
{
    if (w->release)
        w->release(w->release_arg);
    free(w);
}

static void call_free(struct cmn_rpc_call *call)
{
    if (call->cookie && call->payload_free)
        call->payload_free(call->payload_free_data, call->cookie);
    free(call);
}

static void header_init(struct cmn_rpc_header *h, uint8_t kind, uint16_t method, uint64_t id,
                        int32_t status, size_t body_len, size_t payload_len)
{
    memset(h, 0, sizeof(*h));
    h->version = CMN_RPC_VERSION;
    h->kind = kind;
    h->method = method;
    h->request_id = id;
    h->status = status;
    h->body_len = (uint32_t)body_len;
    h->payload_len = (uint32_t)payload_len;
}

static void conn_pause_if_needed(struct conn *c)
{
    if (!c->reading || c->state != CONN_READY)
        return;
    if (c->n_calls >= MAX_CALLS || c->write_queued >= MAX_QUEUED_BYTES ||
        c->call_bytes >= MAX_QUEUED_BYTES) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        LOG_DEBUG(LOG_CTX, "%s: backpressure: %u calls unanswered, %zu bytes queued; reading paused",
                  c->peer, c->n_calls, c->write_queued);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_resume_if_possible(struct conn *c)
{
    if (c->reading || c->state != CONN_READY)
        return;
    if (c->n_calls <= RESUME_CALLS && c->write_queued <= RESUME_QUEUED_BYTES &&
        c->call_bytes <= RESUME_QUEUED_BYTES) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
            c->reading = 1;
            LOG_DEBUG(LOG_CTX, "%s: backpressure released; reading resumed", c->peer);
        }
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->conn;
    c->write_queued -= w->len;
    wreq_free(w);
    if (status < 0 && status != UV_ECANCELED) {
        LOG_DEBUG(LOG_CTX, "%s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    conn_resume_if_possible(c);
}

/* Takes ownership of w. Returns 0 or a negative code (the connection is then closed). */
static int conn_submit(struct conn *c, struct wreq *w)
{
    if (c->state == CONN_CLOSING) {
        wreq_free(w);
        return LODE_ECLOSED;
    }
    w->conn = c;
    uv_buf_t b[2] = {uv_buf_init((char *)w->data, (unsigned)w->data_len),
                     uv_buf_init((char *)w->payload, (unsigned)(w->len - w->data_len))};
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, b, w->len > w->data_len ? 2 : 1,
                      on_write);
    if (rc < 0) {
        LOG_DEBUG(LOG_CTX, "%s: write failed: %s", c->peer, uv_strerror(rc));
        wreq_free(w);
        conn_close(c);
        return LODE_ECLOSED;
    }
    c->write_queued += w->len;
    conn_pause_if_needed(c);
    return 0;
}

/* Sends one frame with a raw body (copied). */
static int conn_send(struct conn *c, uint8_t kind, uint16_t method, uint64_t id, int32_t status,
                     const void *body, size_t body_len)
{
    struct wreq *w = wreq_new(body_len, 0);
    if (!w) {
        conn_close(c);
        return -ENOMEM;
    }
    struct cmn_rpc_header h;
    header_init(&h, kind, method, id, status, body_len, 0);
    cmn_rpc_header_pack(&h, w->data);
    if (body_len)
        memcpy(w->data + CMN_RPC_HEADER_SIZE, body, body_len);
    return conn_submit(c, w);
}

static int conn_send_error(struct conn *c, uint8_t kind, uint16_t method, uint64_t id,
                           int status, const char *leader_address, uint64_t leader_id,
                           const char *msg)
{
    struct cmn_buf body;
    cmn_buf_init(&body);
    if (cmn_rpc_error_pack(&body, msg, leader_address, leader_id)) {
        cmn_buf_free(&body);
        conn_close(c);
        return -ENOMEM;
    }
    int rc = conn_send(c, kind, method, id, status, body.data, body.len);
    cmn_buf_free(&body);
    return rc;
}

static void conn_orphan_calls(struct conn *c)
{
    for (struct cmn_rpc_call *call = c->calls; call; call = call->next)
        call->conn = NULL;
    c->calls = NULL;
    c->n_calls = 0;
    c->call_bytes = 0;
}

/* ---- closing --------------------------------------------------------------------------- */

static void server_maybe_finish(struct cmn_rpc_server *srv)
{
    if (!srv->closing || srv->listener_open || srv->tick_open || srv->n_conns)
        return;
    void (*cb)(void *) = srv->close_cb;
    void *data = srv->close_data;
    if (srv->secret) {
        explicit_bzero(srv->secret, srv->secret_len);
        free(srv->secret);
    }
    free(srv->service);
    free(srv);
    if (cb)
        cb(data);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct cmn_rpc_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    if (srv->m_open)
        cmn_gauge_add(srv->m_open, -1);
    /* The socket is closed: nothing reads into the diverted payload any more. */
    if (c->rx_call)
        call_free(c->rx_call);
    cmn_rpc_rx_free(&c->rx);
    free(c);
    server_maybe_finish(srv);
}

/* Idempotent; the memory goes once both handles have closed. The reader is freed only then,
 * because this may run from inside cmn_rpc_rx_feed. */
static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    conn_orphan_calls(c);
    c->reading = 0;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 && status != UV_ECANCELED)
        conn_close(c);
}

static void on_timer(uv_timer_t *t);

/* Tells the peer why (kind PROTO_ERROR or AUTH_FAIL, RpcError body), then closes after the
 * frame is flushed and the peer has had a chance to read it. */
__attribute__((format(printf, 4, 5))) static void conn_fail(struct conn *c, uint8_t kind,
                                                            int status, const char *fmt, ...)
{
    if (c->state == CONN_LINGER || c->state == CONN_CLOSING)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct cmn_rpc_server *srv = c->srv;
    warn_peer(srv, "peer %s: %s; closing the connection", c->peer, msg);
    count(kind == CMN_RPC_AUTH_FAIL ? srv->m_auth_failures : srv->m_proto_errors);
    conn_orphan_calls(c);
    c->state = CONN_LINGER;
    if (conn_send_error(c, kind, 0, 0, status, NULL, 0, msg) < 0)
        return;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}

/* ---- requests -------------------------------------------------------------------------- */

/* A call holding the body and, when `payload` is given, a copy of the payload. */
static struct cmn_rpc_call *call_new(struct conn *c, const struct cmn_rpc_header *h,
                                     const uint8_t *body, const uint8_t *payload,
                                     size_t payload_len)
{
    size_t n = (size_t)h->body_len + payload_len;
    struct cmn_rpc_call *call = malloc(sizeof(*call) + n);
    if (!call)
        return NULL;
    memset(call, 0, sizeof(*call));
    call->hdr = *h;
    call->bytes = n;
    memcpy(call->peer, c->peer, sizeof(call->peer));
    if (h->body_len)
        memcpy(call->data, body, h->body_len);
    if (payload_len)
        memcpy(call->data + h->body_len, payload, payload_len);
    call->payload = call->data + h->body_len;
    return call;
}

/* Links the call to its connection and hands it to the handler. */
static void call_deliver(struct conn *c, struct cmn_rpc_call *call)
{
    struct cmn_rpc_server *srv = c->srv;
    call->conn = c;
    call->prev = NULL;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->n_calls++;
    c->call_bytes += call->bytes;
    conn_pause_if_needed(c);
    srv->handler(srv->data, call);
}

static void answer_ping(struct conn *c, const struct cmn_rpc_header *h, const uint8_t *body)
{
    struct cmn_rpc_server *srv = c->srv;
    Lode__PingRequest *req = lode__ping_request__unpack(NULL, h->body_len, body);
    if (!req) {
        conn_send_error(c, CMN_RPC_RESPONSE, h->method, h->request_id, LODE_EBADMSG, NULL, 0,
                        "PING: malformed PingRequest body");
        return;
    }
    Lode__PingResponse resp = LODE__PING_RESPONSE__INIT;
    resp.payload = req->payload;
    resp.service = srv->service;
    resp.version = (char *)PACKAGE_VERSION;
    size_t n = lode__ping_response__get_packed_size(&resp);
    struct wreq *w = wreq_new(n, 0);
    if (!w) {
        lode__ping_request__free_unpacked(req, NULL);
        conn_close(c);
        return;
    }
    struct cmn_rpc_header rh;
    header_init(&rh, CMN_RPC_RESPONSE, h->method, h->request_id, 0, n, 0);
    cmn_rpc_header_pack(&rh, w->data);
    lode__ping_response__pack(&resp, w->data + CMN_RPC_HEADER_SIZE);
    lode__ping_request__free_unpacked(req, NULL);
    conn_submit(c, w);
}

static void dispatch(struct conn *c, const struct cmn_rpc_header *h, const uint8_t *body,
                     const uint8_t *payload)
{
    struct cmn_rpc_server *srv = c->srv;
    count(srv->m_requests);
    if (h->method == CMN_RPC_PING) {
        answer_ping(c, h, body);
        return;
    }
    if (!cmn_rpc_method_name(h->method) || !srv->handler) {
        char msg[128];
        snprintf(msg, sizeof(msg), "unknown method %u (service %s)", h->method, srv->service);
        conn_send_error(c, CMN_RPC_RESPONSE, h->method, h->request_id, LODE_ENOMETHOD, NULL, 0,
                        msg);
        return;
    }
    struct cmn_rpc_call *call = call_new(c, h, body, payload, h->payload_len);
    if (!call) {
        conn_send_error(c, CMN_RPC_RESPONSE, h->method, h->request_id, -ENOMEM, NULL, 0,
                        "out of memory accepting the request");
        return;
    }
    call_deliver(c, call);
}

/* rx: the body of a frame with a payload is in. A REQUEST the handler will see may have
 * its payload read straight into memory from payload_alloc. */
static uint8_t *rx_divert(void *data, const struct cmn_rpc_header *h, const uint8_t *body)
{
    struct conn *c = data;
    struct cmn_rpc_server *srv = c->srv;
    if (c->state != CONN_READY || h->kind != CMN_RPC_REQUEST || !srv->payload_alloc ||
        !srv->handler || h->method == CMN_RPC_PING || !cmn_rpc_method_name(h->method))
        return NULL;
    struct cmn_rpc_call *call = call_new(c, h, body, NULL, 0);
    if (!call)
        return NULL;
    void *cookie = NULL;
    uint8_t *dest = srv->payload_alloc(srv->data, h->method, body, h->body_len, h->payload_len,
                                       &cookie);
    if (!dest) {
        free(call);
        return NULL;
    }
    call->payload = dest;
    call->cookie = cookie ? cookie : dest;
    call->payload_free = srv->payload_free;
    call->payload_free_data = srv->data;
    c->rx_call = call;
    return dest;
}

/* rx: a diverted payload is complete. */
static int rx_diverted(void *data, const struct cmn_rpc_header *h)
{
    struct conn *c = data;
    struct cmn_rpc_call *call = c->rx_call;
    (void)h;
    c->rx_call = NULL;
    count(c->srv->m_requests);
    call_deliver(c, call);
    return c->state == CONN_READY ? 0 : 1;
}

static void handle_auth(struct conn *c, const struct cmn_rpc_header *h, const uint8_t *body)
{
    struct cmn_rpc_server *srv = c->srv;
    if (h->kind == CMN_RPC_REQUEST) {
        conn_fail(c, CMN_RPC_PROTO_ERROR, LODE_EAUTH,
                  "request (method %u) before authentication: complete the HELLO/AUTH "
                  "handshake first", h->method);
        return;
    }
    if (h->kind != CMN_RPC_AUTH) {
        conn_fail(c, CMN_RPC_PROTO_ERROR, LODE_EBADMSG,
                  "unexpected %s frame during the handshake (expected AUTH)",
                  cmn_rpc_kind_name(h->kind));
        return;
    }
    if (h->body_len != CMN_RPC_NONCE_SIZE + CMN_HMAC_SIZE || h->payload_len != 0) {
        conn_fail(c, CMN_RPC_PROTO_ERROR, LODE_EBADMSG,
                  "malformed AUTH frame: %u-byte body and %u-byte payload (expected %u and 0)",
                  h->body_len, h->payload_len, CMN_RPC_NONCE_SIZE + CMN_HMAC_SIZE);
        return;
    }
    const uint8_t *client_nonce = body;
    uint8_t mac[CMN_HMAC_SIZE];
    if (cmn_rpc_auth_mac(srv->secret, srv->secret_len, 0, c->server_nonce, client_nonce, mac)) {
        conn_fail(c, CMN_RPC_PROTO_ERROR, LODE_EINTERNAL, "internal error computing the MAC");
        return;
    }
    if (!cmn_ct_equal(mac, body + CMN_RPC_NONCE_SIZE, CMN_HMAC_SIZE)) {
        conn_fail(c, CMN_RPC_AUTH_FAIL, LODE_EAUTH, "authentication failed: wrong cluster secret");
        return;
    }
    if (cmn_rpc_auth_mac(srv->secret, srv->secret_len, 1, c->server_nonce, client_nonce, mac)) {
        conn_fail(c, CMN_RPC_PROTO_ERROR, LODE_EINTERNAL, "internal error computing the MAC");
        return;
    }
    if (conn_send(c, CMN_RPC_AUTH_OK, 0, 0, 0, mac, sizeof(mac)) < 0)
        return;
    c->state = CONN_READY;
    uv_timer_stop(&c->timer);
    if (srv->idle_timeout_ms)
        uv_timer_start(&c->timer, on_timer, srv->idle_timeout_ms, 0);
    LOG_DEBUG(LOG_CTX, "%s: authenticated", c->peer);
}

static int on_frame(void *data, const struct cmn_rpc_header *h, const uint8_t *body,
                    const uint8_t *payload)
{
    struct conn *c = data;
    if (c->state == CONN_HANDSHAKE) {
        handle_auth(c, h, body);
    } else if (c->state == CONN_READY) {
        if (h->kind == CMN_RPC_REQUEST) {
            dispatch(c, h, body, payload);
        } else if (h->kind == CMN_RPC_PROTO_ERROR) {
            struct cmn_rpc_result r;
            cmn_rpc_result_init(&r);
            cmn_rpc_result_set_error(&r, h->status, body, h->body_len, NULL);
            warn_peer(c->srv, "peer %s reported a protocol error: %s", c->peer, r.message);
            conn_close(c);
        } else {
            conn_fail(c, CMN_RPC_PROTO_ERROR, LODE_EBADMSG,
                      "unexpected %s frame on an authenticated connection (expected REQUEST)",
                      cmn_rpc_kind_name(h->kind));
        }
    }
    /* Anything after the connection started failing is not worth parsing. */
    return c->state == CONN_HANDSHAKE || c->state == CONN_READY ? 0 : 1;
}

/* ---- I/O callbacks --------------------------------------------------------------------- */

static const struct cmn_rpc_rx_ops rx_ops = {
    .frame = on_frame,
    .divert = rx_divert,
    .diverted = rx_diverted,
};

static const struct cmn_rpc_rx_ops rx_ops_plain = {
    .frame = on_frame,
};

static const struct cmn_rpc_rx_ops *conn_rx_ops(const struct conn *c)
{
    return c->srv->payload_alloc ? &rx_ops : &rx_ops_plain;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    struct cmn_rpc_server *srv = c->srv;
    (void)suggested;
    if (c->state != CONN_READY && c->state != CONN_HANDSHAKE) {
        buf->base = (char *)srv->read_buf; /* lingering: input is discarded */
        buf->len = sizeof(srv->read_buf);
        return;
    }
    size_t len;
    cmn_rpc_rx_next_read(&c->rx, srv->payload_alloc != NULL, srv->read_buf,
                         sizeof(srv->read_buf), &buf->base, &len);
    buf->len = len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread == 0 || c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        if (c->state == CONN_READY || c->state == CONN_HANDSHAKE) {
            if (cmn_rpc_rx_mid_frame(&c->rx))
                warn_peer(c->srv, "peer %s: connection closed in the middle of a frame (%s)",
                          c->peer, nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
            else
                LOG_DEBUG(LOG_CTX, "%s: connection closed (%s)", c->peer,
                          nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
        }
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGER)
        return;
    c->last_active_ms = uv_now(c->srv->loop);
    int rc;
    if (cmn_rpc_rx_is_direct(&c->rx, buf->base))
        rc = cmn_rpc_rx_feed_direct(&c->rx, (size_t)nread, conn_rx_ops(c), c);
    else
        rc = cmn_rpc_rx_feed(&c->rx, (const uint8_t *)buf->base, (size_t)nread, conn_rx_ops(c),
                             c);
    if (rc < 0)
        conn_fail(c, CMN_RPC_PROTO_ERROR, rc, "%s", cmn_err_text(&c->rx.err));
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct cmn_rpc_server *srv = c->srv;
    switch (c->state) {
    case CONN_HANDSHAKE:
        conn_fail(c, CMN_RPC_PROTO_ERROR, LODE_ETIMEOUT,
                  "handshake not completed within %u ms", srv->handshake_timeout_ms);
        break;
    case CONN_READY: {
        uint64_t now = uv_now(srv->loop);
        uint64_t idle = now - c->last_active_ms;
        if (c->n_calls == 0 && c->write_queued == 0 && idle >= srv->idle_timeout_ms) {
            LOG_DEBUG(LOG_CTX, "%s: idle for %llu ms; closing", c->peer, (unsigned long long)idle);
            conn_close(c);
        } else {
            uint64_t next = idle < srv->idle_timeout_ms ? srv->idle_timeout_ms - idle
                                                        : srv->idle_timeout_ms;
            uv_timer_start(&c->timer, on_timer, next, 0);
        }
        break;
    }
    case CONN_LINGER:
        conn_close(c);
        break;
    case CONN_CLOSING:
        break;
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct cmn_rpc_server *srv = listener->data;
    if (status < 0) {
        warn_peer(srv, "accept failed: %s", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        warn_peer(srv, "out of memory accepting a connection");
        return;
    }
    c->srv = srv;
    snprintf(c->peer, sizeof(c->peer), "(unknown peer)");
    cmn_rpc_rx_init(&c->rx, srv->max_frame);
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->state = CONN_HANDSHAKE;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    if (srv->m_open)
        cmn_gauge_add(srv->m_open, 1);

    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        warn_peer(srv, "accept failed: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    count(srv->m_accepted);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        cmn_rpc_format_sockaddr((struct sockaddr *)&ss, c->peer);
    uv_tcp_nodelay(&c->tcp, 1);
    if (cmn_random_bytes(c->server_nonce, sizeof(c->server_nonce)) < 0) {
        LOG_ERROR(LOG_CTX, "%s: no randomness for the handshake nonce; closing", c->peer);
        conn_close(c);
        return;
    }
    c->last_active_ms = uv_now(srv->loop);
    if (conn_send(c, CMN_RPC_HELLO, 0, 0, 0, c->server_nonce, sizeof(c->server_nonce)) < 0)
        return;
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_close(c);
        return;
    }
    c->reading = 1;
    uv_timer_start(&c->timer, on_timer, srv->handshake_timeout_ms, 0);
    LOG_DEBUG(LOG_CTX, "%s: connection accepted", c->peer);
}

/* ---- server API ------------------------------------------------------------------------ */

/* libuv writes with write(2), so a peer that resets its connection would kill the process
 * with SIGPIPE; a remote peer must never be able to do that. A handler the program installed
 * itself is left alone. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

int cmn_rpc_server_create(uv_loop_t *loop, const struct cmn_rpc_server_config *cfg,
                          struct cmn_rpc_server **out)
{
    if (!loop || !cfg || !cfg->secret || cfg->secret_len == 0 || !out)
        return -EINVAL;
    ignore_sigpipe();
    struct cmn_rpc_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    srv->service = strdup(cfg->service ? cfg->service : "lode");
    srv->secret = malloc(cfg->secret_len);
    if (!srv->service || !srv->secret) {
        free(srv->service);
        free(srv->secret);
        free(srv);
        return -ENOMEM;
    }
    memcpy(srv->secret, cfg->secret, cfg->secret_len);
    srv->secret_len = cfg->secret_len;
    srv->max_frame = cfg->max_frame ? cfg->max_frame : CMN_RPC_DEFAULT_MAX_FRAME;
    srv->handshake_timeout_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms
                                                          : DEFAULT_HANDSHAKE_MS;
    srv->idle_timeout_ms = cfg->idle_timeout_ms;
    srv->handler = cfg->handler;
    srv->data = cfg->data;
    srv->payload_alloc = cfg->payload_alloc;
    srv->payload_free = cfg->payload_free;
    srv->warn_rl = (struct cmn_log_ratelimit)CMN_LOG_RATELIMIT_INIT(10000, 20);
    uv_timer_init(loop, &srv->tick);
    srv->tick.data = srv;
    srv->tick_open = 1;
    if (cfg->metrics) {
        char labels[160];
        snprintf(labels, sizeof(labels), "service=\"%s\"", srv->service);
        struct cmn_metrics *m = cfg->metrics;
        srv->m_accepted = cmn_metrics_counter(m, "lode_rpc_connections_total", labels,
                                              "RPC connections accepted");
        srv->m_requests = cmn_metrics_counter(m, "lode_rpc_requests_total", labels,
                                              "Authenticated RPC requests received");
        srv->m_auth_failures = cmn_metrics_counter(m, "lode_rpc_auth_failures_total", labels,
                                                   "RPC handshakes rejected for a wrong secret");
        srv->m_proto_errors = cmn_metrics_counter(m, "lode_rpc_protocol_errors_total", labels,
                                                  "RPC connections closed for a protocol error");
        srv->m_open = cmn_metrics_gauge(m, "lode_rpc_open_connections", labels,
                                        "RPC connections currently open");
    }
    *out = srv;
    return 0;
}

static int resolve_listen(const char *addr, struct sockaddr_storage *ss, struct cmn_err *err)
{
    char host[CMN_RPC_HOST_MAX], port[8];
    int rc = cmn_rpc_addr_split(addr, host, port, err);
    if (rc)
        return rc;
    int p = atoi(port);
    if (!*host)
        snprintf(host, sizeof(host), "0.0.0.0");
    if (uv_ip4_addr(host, p, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(host, p, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0 || !res)
        return cmn_err_set(err, LODE_ECONFIG, "listen on %s: cannot resolve '%s': %s", addr,
                           host, gai_strerror(g));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int cmn_rpc_server_listen(struct cmn_rpc_server *srv, const char *addr, struct cmn_err *err)
{
    if (srv->closing)
        return cmn_err_set(err, LODE_ESHUTDOWN, "listen on %s: server is closing", addr);
    if (srv->listener_open)
        return cmn_err_set(err, -EALREADY, "listen on %s: already listening", addr);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = resolve_listen(addr, &ss, err);
    if (rc)
        return rc;
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = 1;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (rc < 0)
        return cmn_err_set(err, rc, "listen on %s: %s", addr, uv_strerror(rc));
    LOG_INFO(LOG_CTX, "%s: listening for RPC on %s (port %d)", srv->service, addr,
             cmn_rpc_server_port(srv));
    return 0;
}

int cmn_rpc_server_port(const struct cmn_rpc_server *srv)
{
    if (!srv->listener_open)
        return -ENOTCONN;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        return rc;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct cmn_rpc_server *srv = h->data;
    srv->listener_open = 0;
    server_maybe_finish(srv);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct cmn_rpc_server *srv = h->data;
    srv->tick_open = 0;
    server_maybe_finish(srv);
}

void cmn_rpc_server_close(struct cmn_rpc_server *srv, void (*cb)(void *data), void *data)
{
    if (srv->closing)
        return;
    srv->closing = 1;
    srv->close_cb = cb;
    srv->close_data = data;
    if (srv->listener_open)
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    uv_close((uv_handle_t *)&srv->tick, on_tick_closed);
    for (struct conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}

/* ---- calls ----------------------------------------------------------------------------- */

unsigned cmn_rpc_call_method(const struct cmn_rpc_call *call)
{
    return call->hdr.method;
}

unsigned cmn_rpc_call_flags(const struct cmn_rpc_call *call)
{
    return call->hdr.flags;
}

uint64_t cmn_rpc_call_id(const struct cmn_rpc_call *call)
{
    return call->hdr.request_id;
}

const uint8_t *cmn_rpc_call_body(const struct cmn_rpc_call *call, size_t *len)
{
    if (len)
        *len = call->hdr.body_len;
    return call->data;
}

const uint8_t *cmn_rpc_call_payload(const struct cmn_rpc_call *call, size_t *len)
{
    if (len)
        *len = call->hdr.payload_len;
    return call->payload;
}

void *cmn_rpc_call_take_payload(struct cmn_rpc_call *call)
{
    void *cookie = call->cookie;
    call->cookie = NULL;
    return cookie;
}

const char *cmn_rpc_call_peer(const struct cmn_rpc_call *call)
{
    return call->peer;
}

int cmn_rpc_call_orphaned(const struct cmn_rpc_call *call)
{
    return call->conn == NULL;
}

/* Unlinks the call from its connection; returns the connection, or NULL when orphaned. */
static struct conn *call_detach(struct cmn_rpc_call *call)
{
    struct conn *c = call->conn;
    if (!c)
        return NULL;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    c->n_calls--;
    c->call_bytes -= call->bytes;
    call->conn = NULL;
    return c;
}

/* Builds and sends the RESPONSE, then frees the call. The body is produced from `msg` when
 * given, else copied from `body`; both may point into the call itself (an echo), which is
 * why the call is freed only after the frame is built. The payload is copied into the frame,
 * or, with `release`, sent from where it is and released once written (on every path). */
static int reply_common(struct cmn_rpc_call *call, int32_t status, const ProtobufCMessage *msg,
                        const void *body, size_t body_len, const void *payload,
                        size_t payload_len, void (*release)(void *arg), void *arg)
{
    struct conn *c = call_detach(call);
    if (!c || c->state != CONN_READY) {
        call_free(call);
        if (release)
            release(arg);
        return LODE_ECLOSED;
    }
    uint16_t method = call->hdr.method;
    uint64_t id = call->hdr.request_id;
    struct cmn_rpc_server *srv = c->srv;
    int rc;
    if ((uint64_t)body_len + payload_len > srv->max_frame) {
        char m[160];
        snprintf(m, sizeof(m), "reply of %zu bytes exceeds the frame limit of %u bytes",
                 body_len + payload_len, srv->max_frame);
        LOG_WARN(LOG_CTX, "%s: %s %s", c->peer, cmn_rpc_method_name(method), m);
        call_free(call);
        if (release)
            release(arg);
        conn_send_error(c, CMN_RPC_RESPONSE, method, id, LODE_EFRAMETOOBIG, NULL, 0, m);
        rc = LODE_EFRAMETOOBIG;
    } else {
        struct wreq *w = wreq_new(body_len, release ? 0 : payload_len);
        if (!w) {
            call_free(call);
            if (release)
                release(arg);
            conn_close(c);
            return -ENOMEM;
        }
        struct cmn_rpc_header h;
        header_init(&h, CMN_RPC_RESPONSE, method, id, status, body_len, payload_len);
        cmn_rpc_header_pack(&h, w->data);
        uint8_t *p = w->data + CMN_RPC_HEADER_SIZE;
        if (msg)
            protobuf_c_message_pack(msg, p);
        else if (body_len)
            memcpy(p, body, body_len);
        if (release) {
            w->payload = payload;
            w->len += payload_len;
            w->release = release;
            w->release_arg = arg;
        } else if (payload_len) {
            memcpy(p + body_len, payload, payload_len);
        }
        call_free(call);
        rc = conn_submit(c, w);
    }
    if (c->state == CONN_READY)
        conn_resume_if_possible(c);
    return rc;
}

int cmn_rpc_reply(struct cmn_rpc_call *call, const ProtobufCMessage *msg)
{
    size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;
    return reply_common(call, 0, msg, NULL, n, NULL, 0, NULL, NULL);
}

int cmn_rpc_reply_raw(struct cmn_rpc_call *call, const void *body, size_t len,
                      const void *payload, size_t payload_len)
{
    if ((len && !body) || (payload_len && !payload)) {
        cmn_rpc_reply_error(call, LODE_EINTERNAL, NULL, 0, "internal error: reply without data");
        return -EINVAL;
    }
    return reply_common(call, 0, NULL, body, len, payload, payload_len, NULL, NULL);
}

static void release_nothing(void *arg)
{
    (void)arg;
}

int cmn_rpc_reply_payload(struct cmn_rpc_call *call, const ProtobufCMessage *msg,
                          const void *payload, size_t payload_len, void (*release)(void *arg),
                          void *arg)
{
    if (payload_len && !payload) {
        if (release)
            release(arg);
        cmn_rpc_reply_error(call, LODE_EINTERNAL, NULL, 0, "internal error: reply without data");
        return -EINVAL;
    }
    size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;
    /* A NULL release still means "by reference": the caller keeps the memory alive. */
    return reply_common(call, 0, msg, NULL, n, payload, payload_len,
                        release ? release : release_nothing, arg);
}

int cmn_rpc_reply_error(struct cmn_rpc_call *call, int status, const char *leader_address,
                        uint64_t leader_id, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status >= 0)
        status = LODE_EINTERNAL;
    struct cmn_buf body;
    cmn_buf_init(&body);
    if (cmn_rpc_error_pack(&body, msg, leader_address, leader_id)) {
        cmn_buf_free(&body);
        struct conn *c = call_detach(call);
        call_free(call);
        if (c)
            conn_close(c);
        return -ENOMEM;
    }
    int rc = reply_common(call, status, NULL, body.data, body.len, NULL, 0, NULL, NULL);
    cmn_buf_free(&body);
    return rc;
}
