#include "common/dp_server.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#define LOG_CTX "dataplane"

/* One push: the frame header lives here, the payload stays in the caller's memory. */
struct push {
    uv_write_t req;
    struct push *next;           /* FIFO behind the queue cap */
    struct conn *c;
    uint8_t hdr[CMN_DP_DATA_HDR_SIZE];
    const void *src;
    size_t len;
    cmn_dp_push_cb cb;
    void *data;
};

enum conn_state {
    CONN_HELLO,                  /* reading the 96-byte HELLO */
    CONN_REFUSING,               /* HELLO_ERR being written; closed once it is */
    CONN_LIVE,                   /* a session: send-only */
    CONN_CLOSING,
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;            /* HELLO deadline */
    struct cmn_dp_server *srv;
    struct conn *prev, *next;    /* all connections */
    struct conn *hnext;          /* session table chain (CONN_LIVE only) */
    enum conn_state state;
    int handles;                 /* open uv handles; freed at 0 */
    bool in_table;
    struct cmn_dp_cred cred;
    uint8_t hello[CMN_DP_HELLO_SIZE];
    size_t hello_got;
    uint8_t reply[CMN_DP_REPLY_SIZE];
    uv_write_t reply_req;
    uint8_t junk[64];            /* where bytes a live client must not send are read */
    uint64_t queued;             /* bytes in libuv writes */
    struct push *wait_head, *wait_tail;
    char peer[64];
};

struct cmn_dp_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    uv_tcp_t spare;              /* drops a connection when no memory is left for it */
    bool listener_open, sweep_open, closing, spare_busy;
    uint8_t *secret;
    size_t secret_len;
    uint64_t source_id;
    uint32_t max_sessions, max_frame, hello_timeout_ms, expiry_check_ms, max_handshakes;
    uint32_t handshakes;         /* connections in CONN_HELLO */
    uint64_t max_queued;
    uint64_t (*now_ms)(void *);
    void *clock_data;
    struct conn *conns;
    struct conn **table;         /* sid -> live connection */
    size_t table_mask;
    struct cmn_dp_server_stats st;
    struct cmn_log_ratelimit warn_rl;
    void (*close_cb)(void *);
    void *close_data;
};

static void conn_close(struct conn *c);
static void server_maybe_finish(struct cmn_dp_server *srv);

__attribute__((format(printf, 2, 3))) static void warn_rl(struct cmn_dp_server *srv,
                                                          const char *fmt, ...)
{
    uint32_t suppressed = 0;
    if (!cmn_log_ratelimit_ok(&srv->warn_rl, &suppressed))
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (suppressed)
        LOG_WARN(LOG_CTX, "%s (%u similar warnings suppressed)", line, suppressed);
    else
        LOG_WARN(LOG_CTX, "%s", line);
}

static uint64_t wall_ms(struct cmn_dp_server *srv)
{
    if (srv->now_ms)
        return srv->now_ms(srv->clock_data);
    int64_t n = cmn_now_ms();
    return n < 0 ? 0 : (uint64_t)n;
}

/* ---- address helpers -------------------------------------------------------------------- */

int cmn_dp_resolve(const char *hostport, bool passive, struct sockaddr_storage *out,
                   struct cmn_err *err)
{
    memset(out, 0, sizeof *out);
    if (!hostport)
        return cmn_err_set(err, -EINVAL, "address missing");
    char host[256];
    const char *colon, *h = hostport;
    size_t hlen;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (!close || close[1] != ':')
            return cmn_err_set(err, -EINVAL, "'%s': expected [ipv6]:port", hostport);
        h++;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(h, ':');
        if (!colon)
            return cmn_err_set(err, -EINVAL, "'%s': expected host:port", hostport);
        hlen = (size_t)(colon - h);
    }
    if (hlen >= sizeof host)
        return cmn_err_set(err, -EINVAL, "'%s': host name too long", hostport);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    const char *ps = colon + 1;
    size_t plen = strlen(ps);
    unsigned long port = 0;
    if (plen == 0 || plen > 5 || strspn(ps, "0123456789") != plen ||
        (port = strtoul(ps, NULL, 10)) > 65535)
        return cmn_err_set(err, -EINVAL, "'%s': bad port", hostport);
    if (!*host) {
        if (!passive)
            return cmn_err_set(err, -EINVAL, "'%s': host missing", hostport);
        snprintf(host, sizeof host, "0.0.0.0");
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = passive ? AI_PASSIVE : 0};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g != 0 || !res)
        return cmn_err_set(err, -EHOSTUNREACH, "'%s': cannot resolve '%s': %s", hostport, host,
                           gai_strerror(g));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

void cmn_dp_format_sockaddr(const struct sockaddr *sa, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_ip4_name(in, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(out, size, "%s:%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(in6, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(out, size, "[%s]:%d", ip, port);
    } else {
        snprintf(out, size, "?");
    }
}

/* ---- session table ---------------------------------------------------------------------- */

/* Session ids are random (the gateway draws them; only MAC-verified ones get in), so their
 * first bytes hash well as they are. */
static size_t sid_slot(const struct cmn_dp_server *srv, const uint8_t *sid)
{
    uint64_t h;
    memcpy(&h, sid, sizeof h);
    return (size_t)(h ^ (h >> 29)) & srv->table_mask;
}

static struct conn *table_find(const struct cmn_dp_server *srv, const uint8_t *sid)
{
    for (struct conn *c = srv->table[sid_slot(srv, sid)]; c; c = c->hnext) {
        if (memcmp(c->cred.sid, sid, CMN_DP_SID_SIZE) == 0)
            return c;
    }
    return NULL;
}

static void table_insert(struct cmn_dp_server *srv, struct conn *c)
{
    size_t s = sid_slot(srv, c->cred.sid);
    c->hnext = srv->table[s];
    srv->table[s] = c;
    c->in_table = true;
    srv->st.sessions++;
}

static void table_remove(struct cmn_dp_server *srv, struct conn *c)
{
    if (!c->in_table)
        return;
    for (struct conn **pp = &srv->table[sid_slot(srv, c->cred.sid)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    }
    c->hnext = NULL;
    c->in_table = false;
    srv->st.sessions--;
}

static bool key_matches(const struct conn *c, const char *access_key)
{
    if (!access_key)
        return false;
    size_t n = strnlen(access_key, CMN_DP_ACCESS_KEY_MAX + 1);
    return n == c->cred.access_key_len && memcmp(access_key, c->cred.access_key, n) == 0;
}

static struct conn *find_session(const struct cmn_dp_server *srv, const uint8_t *sid,
                                 const char *access_key)
{
    if (!sid || srv->closing)
        return NULL;
    struct conn *c = table_find(srv, sid);
    if (!c || c->state != CONN_LIVE || !key_matches(c, access_key))
        return NULL;
    return c;
}

/* ---- pushes ----------------------------------------------------------------------------- */

static void pump(struct conn *c);

static void push_finish(struct cmn_dp_server *srv, struct push *p, int status)
{
    if (status == 0) {
        srv->st.frames++;
        srv->st.bytes += p->len;
    } else {
        srv->st.push_failed++;
    }
    cmn_dp_push_cb cb = p->cb;
    void *data = p->data;
    free(p);
    cb(data, status);
}

static void on_push_written(uv_write_t *req, int status)
{
    struct push *p = (struct push *)req;
    struct conn *c = p->c;
    struct cmn_dp_server *srv = c->srv;
    uint64_t n = CMN_DP_DATA_HDR_SIZE + p->len;
    c->queued -= n;
    srv->st.queued_bytes -= n;
    if (status < 0) {
        if (status != UV_ECANCELED)
            LOG_DEBUG(LOG_CTX, "%s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
    } else {
        pump(c);
    }
    push_finish(srv, p, status < 0 ? LODE_ECLOSED : 0);
}

/* Hands p to libuv. On a synchronous failure the connection is closed and p waits in the
 * FIFO, which the close completes (so the caller's cb still never runs inside cmn_dp_push). */
static void submit(struct conn *c, struct push *p)
{
    struct cmn_dp_server *srv = c->srv;
    uv_buf_t b[2] = {uv_buf_init((char *)p->hdr, CMN_DP_DATA_HDR_SIZE),
                     uv_buf_init((char *)p->src, (unsigned)p->len)};
    int rc = uv_write(&p->req, (uv_stream_t *)&c->tcp, b, 2, on_push_written);
    if (rc < 0) {
        LOG_DEBUG(LOG_CTX, "%s: write failed: %s", c->peer, uv_strerror(rc));
        p->next = c->wait_head;
        c->wait_head = p;
        if (!c->wait_tail)
            c->wait_tail = p;
        srv->st.waiting_pushes++;
        srv->st.waiting_bytes += p->len;
        conn_close(c);
        return;
    }
    uint64_t n = CMN_DP_DATA_HDR_SIZE + p->len;
    c->queued += n;
    srv->st.queued_bytes += n;
    if (c->queued > srv->st.queued_peak)
        srv->st.queued_peak = c->queued;
}

/* A push fits when the connection is under its cap with it, or when nothing is queued at all
 * (a cap smaller than one frame must not stall the session forever). */
static bool fits(const struct conn *c, size_t len)
{
    return c->queued == 0 || c->queued + CMN_DP_DATA_HDR_SIZE + len <= c->srv->max_queued;
}

static void pump(struct conn *c)
{
    struct cmn_dp_server *srv = c->srv;
    while (c->state == CONN_LIVE && c->wait_head && fits(c, c->wait_head->len)) {
        struct push *p = c->wait_head;
        c->wait_head = p->next;
        if (!c->wait_head)
            c->wait_tail = NULL;
        p->next = NULL;
        srv->st.waiting_pushes--;
        srv->st.waiting_bytes -= p->len;
        submit(c, p);
    }
}

int cmn_dp_push(struct cmn_dp_server *srv, const uint8_t sid[CMN_DP_SID_SIZE],
                const char *access_key, uint64_t window_base, uint32_t tag, uint64_t addr,
                const void *src, size_t len, cmn_dp_push_cb cb, void *data)
{
    /* Tag 0 names no window (receivers open none with it): such a frame could only ever be
     * dropped, so a caller that forgot the tag hears it here. */
    if (!src || !cb || tag == 0 || len == 0 || len > srv->max_frame)
        return -EINVAL;
    struct conn *c = find_session(srv, sid, access_key);
    if (!c)
        return LODE_ENOSESSION;
    struct push *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->c = c;
    p->src = src;
    p->len = len;
    p->cb = cb;
    p->data = data;
    struct cmn_dp_data_hdr h = {.len = (uint32_t)len, .addr = addr, .window_base = window_base,
                                .tag = tag};
    cmn_dp_data_encode(&h, p->hdr);
    if (!c->wait_head && fits(c, len)) {
        submit(c, p);
        return 0;
    }
    if (c->wait_tail)
        c->wait_tail->next = p;
    else
        c->wait_head = p;
    c->wait_tail = p;
    srv->st.waiting_pushes++;
    srv->st.waiting_bytes += len;
    return 0;
}

int cmn_dp_session_check(const struct cmn_dp_server *srv, const uint8_t sid[CMN_DP_SID_SIZE],
                         const char *access_key)
{
    return find_session(srv, sid, access_key) ? 0 : LODE_ENOSESSION;
}

void cmn_dp_server_stats(const struct cmn_dp_server *srv, struct cmn_dp_server_stats *out)
{
    *out = srv->st;
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct cmn_dp_server *srv = c->srv;
    if (--c->handles > 0)
        return;
    /* libuv has already cancelled the writes it held; what waited behind the cap fails now. */
    while (c->wait_head) {
        struct push *p = c->wait_head;
        c->wait_head = p->next;
        srv->st.waiting_pushes--;
        srv->st.waiting_bytes -= p->len;
        push_finish(srv, p, LODE_ECLOSED);
    }
    c->wait_tail = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->st.connections--;
    explicit_bzero(&c->cred, sizeof c->cred);
    free(c);
    server_maybe_finish(srv);
}

static void set_state(struct conn *c, enum conn_state to)
{
    if (c->state == CONN_HELLO)
        c->srv->handshakes--;
    c->state = to;
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_HELLO && !c->srv->closing)
        c->srv->st.hello_refused++;
    set_state(c, CONN_CLOSING);
    table_remove(c->srv, c);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_reply_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 && status != UV_ECANCELED)
        LOG_DEBUG(LOG_CTX, "%s: hello reply not sent: %s", c->peer, uv_strerror(status));
    if (c->state == CONN_REFUSING)
        conn_close(c);
    else if (status < 0)
        conn_close(c);
}

static void send_reply(struct conn *c, enum cmn_dp_code code)
{
    struct cmn_dp_reply r = {.kind = code == CMN_DP_CODE_OK ? CMN_DP_REPLY_OK : CMN_DP_REPLY_ERR,
                             .code = (uint16_t)code, .source_id = c->srv->source_id};
    cmn_dp_reply_encode(&r, c->reply);
    uv_buf_t b = uv_buf_init((char *)c->reply, CMN_DP_REPLY_SIZE);
    c->reply_req.data = c;
    if (uv_write(&c->reply_req, (uv_stream_t *)&c->tcp, &b, 1, on_reply_written) < 0)
        conn_close(c);
}

static void refuse(struct conn *c, enum cmn_dp_code code, const char *why)
{
    struct cmn_dp_server *srv = c->srv;
    warn_rl(srv, "%s: data session refused: %s", c->peer, why);
    srv->st.hello_refused++;
    set_state(c, CONN_REFUSING);
    uv_timer_stop(&c->timer);
    send_reply(c, code);
}

static void hello_complete(struct conn *c)
{
    struct cmn_dp_server *srv = c->srv;
    struct cmn_err e;
    cmn_err_clear(&e);
    int rc = cmn_dp_hello_decode(c->hello, &c->cred, &e);
    if (rc == 0)
        rc = cmn_dp_cred_verify(srv->secret, srv->secret_len, &c->cred, wall_ms(srv), &e);
    if (rc < 0) {
        refuse(c, cmn_dp_code_from_err(rc), cmn_err_text(&e));
        return;
    }
    if (table_find(srv, c->cred.sid)) {
        refuse(c, CMN_DP_CODE_IN_USE, "session already connected here");
        return;
    }
    if (srv->st.sessions >= srv->max_sessions) {
        refuse(c, CMN_DP_CODE_BUSY, "session table full");
        return;
    }
    uv_timer_stop(&c->timer);
    set_state(c, CONN_LIVE);
    table_insert(srv, c);
    srv->st.sessions_opened++;
    send_reply(c, CMN_DP_CODE_OK);
    LOG_DEBUG(LOG_CTX, "%s: data session open (key %s)", c->peer, c->cred.access_key);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    /* Exactly the rest of the HELLO: nothing the client sends later is ever consumed as
     * part of it. */
    if (c->state == CONN_HELLO)
        *buf = uv_buf_init((char *)c->hello + c->hello_got,
                           (unsigned)(CMN_DP_HELLO_SIZE - c->hello_got));
    else
        *buf = uv_buf_init((char *)c->junk, sizeof c->junk);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = s->data;
    if (nread == 0 || c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        if (c->state == CONN_HELLO && c->hello_got)
            warn_rl(c->srv, "%s: connection closed inside the hello", c->peer);
        conn_close(c);
        return;
    }
    if (c->state == CONN_HELLO) {
        c->hello_got += (size_t)nread;
        if (c->hello_got == CMN_DP_HELLO_SIZE)
            hello_complete(c);
        return;
    }
    if (c->state == CONN_LIVE)
        warn_rl(c->srv, "%s: client sent data on a send-only data connection", c->peer);
    conn_close(c);
}

static void on_hello_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    warn_rl(c->srv, "%s: no hello within %u ms", c->peer, c->srv->hello_timeout_ms);
    conn_close(c);
}

static void on_spare_closed(uv_handle_t *h)
{
    struct cmn_dp_server *srv = h->data;
    srv->spare_busy = false;
    server_maybe_finish(srv);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct cmn_dp_server *srv = l->data;
    if (status < 0 || srv->closing)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        /* libuv holds the accepted socket and stops accepting until it is taken: take it
         * with the spare handle and drop it, so the listener keeps going. */
        warn_rl(srv, "out of memory: data connection dropped");
        if (!srv->spare_busy && uv_tcp_init(srv->loop, &srv->spare) == 0) {
            srv->spare_busy = true;
            srv->spare.data = srv;
            uv_accept(l, (uv_stream_t *)&srv->spare);
            uv_close((uv_handle_t *)&srv->spare, on_spare_closed);
        }
        return;
    }
    c->srv = srv;
    c->state = CONN_HELLO;
    srv->handshakes++;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->st.connections++;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        cmn_dp_format_sockaddr((struct sockaddr *)&ss, c->peer, sizeof c->peer);
    /* Connections that have not said who they are hold memory for free: cap them. */
    if (srv->handshakes > srv->max_handshakes) {
        warn_rl(srv, "%s: too many connections waiting for their hello; closed", c->peer);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_hello_timeout, srv->hello_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

/* ---- expiry ------------------------------------------------------------------------------ */

static void on_sweep(uv_timer_t *t)
{
    struct cmn_dp_server *srv = t->data;
    uint64_t now = wall_ms(srv);
    for (struct conn *c = srv->conns; c; c = c->next) {
        if (c->state == CONN_LIVE && c->cred.expires_ms <= now) {
            LOG_INFO(LOG_CTX, "%s: data session expired; closing", c->peer);
            srv->st.sessions_expired++;
            conn_close(c);
        }
    }
}

/* ---- server ------------------------------------------------------------------------------ */

int cmn_dp_server_create(uv_loop_t *loop, const struct cmn_dp_server_config *cfg,
                         struct cmn_dp_server **out)
{
    *out = NULL;
    if (!cfg->secret || cfg->secret_len == 0)
        return -EINVAL;
    struct cmn_dp_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    srv->source_id = cfg->source_id;
    srv->max_sessions = cfg->max_sessions ? cfg->max_sessions : CMN_DP_DEFAULT_MAX_SESSIONS;
    srv->max_queued = cfg->max_queued_bytes ? cfg->max_queued_bytes : CMN_DP_DEFAULT_MAX_QUEUED;
    srv->max_frame = cfg->max_frame ? cfg->max_frame : CMN_DP_MAX_FRAME_DEFAULT;
    srv->hello_timeout_ms =
        cfg->hello_timeout_ms ? cfg->hello_timeout_ms : CMN_DP_DEFAULT_HELLO_TIMEOUT_MS;
    srv->expiry_check_ms =
        cfg->expiry_check_ms ? cfg->expiry_check_ms : CMN_DP_DEFAULT_EXPIRY_CHECK_MS;
    srv->max_handshakes =
        cfg->max_handshakes ? cfg->max_handshakes : CMN_DP_DEFAULT_MAX_HANDSHAKES;
    srv->now_ms = cfg->now_ms;
    srv->clock_data = cfg->clock_data;
    srv->warn_rl = (struct cmn_log_ratelimit)CMN_LOG_RATELIMIT_INIT(10000, 20);
    size_t buckets = 64;
    while (buckets < srv->max_sessions && buckets < (1u << 20))
        buckets <<= 1;
    srv->table = calloc(buckets, sizeof *srv->table);
    srv->secret = malloc(cfg->secret_len);
    if (!srv->table || !srv->secret) {
        free(srv->table);
        free(srv->secret);
        free(srv);
        return -ENOMEM;
    }
    srv->table_mask = buckets - 1;
    memcpy(srv->secret, cfg->secret, cfg->secret_len);
    srv->secret_len = cfg->secret_len;
    uv_timer_init(loop, &srv->sweep);
    srv->sweep.data = srv;
    srv->sweep_open = true;
    uv_timer_start(&srv->sweep, on_sweep, srv->expiry_check_ms, srv->expiry_check_ms);
    *out = srv;
    return 0;
}

int cmn_dp_server_listen(struct cmn_dp_server *srv, const char *addr, struct cmn_err *err)
{
    if (srv->closing)
        return cmn_err_set(err, LODE_ESHUTDOWN, "data listener %s: server is closing", addr);
    if (srv->listener_open)
        return cmn_err_set(err, -EALREADY, "data listener %s: already listening", addr);
    struct sockaddr_storage ss;
    int rc = cmn_dp_resolve(addr, true, &ss, err);
    if (rc)
        return cmn_err_wrap(err, "data listener");
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = true;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (rc < 0)
        return cmn_err_set(err, rc, "data listener %s: %s", addr, uv_strerror(rc));
    LOG_INFO(LOG_CTX, "listening for data sessions on %s (port %d)", addr,
             cmn_dp_server_port(srv));
    return 0;
}

void cmn_dp_server_set_source_id(struct cmn_dp_server *srv, uint64_t id)
{
    srv->source_id = id;
}

int cmn_dp_server_port(const struct cmn_dp_server *srv)
{
    if (!srv->listener_open)
        return -1;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

static void server_maybe_finish(struct cmn_dp_server *srv)
{
    if (!srv->closing || srv->listener_open || srv->sweep_open || srv->spare_busy || srv->conns)
        return;
    void (*cb)(void *) = srv->close_cb;
    void *data = srv->close_data;
    explicit_bzero(srv->secret, srv->secret_len);
    free(srv->secret);
    free(srv->table);
    free(srv);
    if (cb)
        cb(data);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct cmn_dp_server *srv = h->data;
    srv->listener_open = false;
    server_maybe_finish(srv);
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct cmn_dp_server *srv = h->data;
    srv->sweep_open = false;
    server_maybe_finish(srv);
}

void cmn_dp_server_close(struct cmn_dp_server *srv, void (*cb)(void *data), void *data)
{
    if (srv->closing)
        return;
    srv->closing = true;
    srv->close_cb = cb;
    srv->close_data = data;
    if (srv->listener_open)
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    uv_close((uv_handle_t *)&srv->sweep, on_sweep_closed);
    for (struct conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}
