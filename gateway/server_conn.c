/* The gateway's HTTP connections: accepting, reading, parsing, timers, closing. The request
 * API and writes are in gateway/server_req.c; see gateway/server.h for the handler's view.
 *
 * A connection serves one request at a time. Its state is a handful of flags rather than
 * one enum because reading and writing overlap (a handler may answer while the body still
 * arrives), but the phases are:
 *
 *   between requests ──HEAD──► request active ──finish──► between requests (keep-alive)
 *        │  (idle / head timers)      │ (body / write timers)    └──► lingering ──► closed
 *        └──ERROR, over limit──► bad request (active, answered, then lingering)
 *   any ──reset, write stall, abort, stop after grace──► closed (active request cancelled)
 *
 * Lingering: a response that ends the connection must reach the client even when it still
 * sends (an early 403 to a PUT whose body is on the way). Closing with unread input makes
 * the kernel send RST, which can destroy the response in flight; so we shut down our side
 * after the last write, read and discard until the client closes or linger_ms passes.
 *
 * Re-entrancy: handler callbacks are only made from conn_process (and from close, for
 * on_cancel). gw_req_* calls never call back: they set state and "kick" the connection,
 * which either loops again in the conn_process already on the stack or runs it on the next
 * loop turn (the worker's uv_idle run queue).
 *
 * Memory: a connection holds its input buffer only while it holds input; body bytes the
 * handler has not taken stay where they were read (pend_off/pend_len) and the unparsed rest
 * follows them (start/end); both count against the one buffer, and reading stops when it is
 * full. A connection is freed when its handles are closed and its request has ended, never
 * earlier, so a handler may hold a cancelled request as long as it needs to.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <lode/errno.h>

#include "common/buf.h"
#include "common/log.h"
#include "gateway/server_int.h"

#define LOG_CTX "http"
#define LINGER_MAX_BYTES (1u << 20)
/* Passes over one connection per loop turn (each starts at most one request). */
#define MAX_ROUNDS 64u

static const int status_of[GW_S3_ERROR_COUNT] = {
#define GW_S3_ERROR_STATUS(e, code, status, msg) status,
    GW_S3_ERROR_MAP(GW_S3_ERROR_STATUS)
#undef GW_S3_ERROR_STATUS
};

static struct cmn_log_ratelimit accept_rl = CMN_LOG_RATELIMIT_INIT(10000, 5);

static void conn_process(struct conn *c);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

uint64_t srv_now_ms(const struct conn *c)
{
    return uv_now(&c->w->loop);
}

/* ---- input buffers ---- */

static uint8_t *buf_get(struct worker *w)
{
    if (w->n_pool)
        return w->pool[--w->n_pool];
    return malloc(w->s->o.read_buffer);
}

static void buf_put(struct worker *w, uint8_t *b)
{
    if (w->n_pool < sizeof(w->pool) / sizeof(w->pool[0]) && !w->finishing)
        w->pool[w->n_pool++] = b;
    else
        free(b);
}

static size_t keep_from(const struct conn *c)
{
    return c->pend_len ? c->pend_off : c->start;
}

static void release_buf_if_empty(struct conn *c)
{
    if (c->buf && c->start == c->end && c->pend_len == 0) {
        buf_put(c->w, c->buf);
        c->buf = NULL;
        c->start = c->end = c->pend_off = 0;
    }
}

/* ---- the run queue ---- */

static void rq_unlink(struct conn *c)
{
    if (!c->queued)
        return;
    struct worker *w = c->w;
    if (c->rq_prev)
        c->rq_prev->rq_next = c->rq_next;
    else
        w->rq_head = c->rq_next;
    if (c->rq_next)
        c->rq_next->rq_prev = c->rq_prev;
    else
        w->rq_tail = c->rq_prev;
    c->rq_prev = c->rq_next = NULL;
    c->queued = false;
}

void srv_conn_kick(struct conn *c)
{
    if (c->in_process) {
        c->again = true;
        return;
    }
    if (c->queued || c->closing)
        return;
    struct worker *w = c->w;
    c->queued = true;
    c->rq_prev = w->rq_tail;
    c->rq_next = NULL;
    if (w->rq_tail)
        w->rq_tail->rq_next = c;
    else
        w->rq_head = c;
    w->rq_tail = c;
    if (!uv_is_active((uv_handle_t *)&w->kick))
        uv_idle_start(&w->kick, srv_kick_cb);
}

void srv_kick_cb(uv_idle_t *idle)
{
    struct worker *w = idle->data;
    /* Only those queued now: connections kicked while this runs wait for the next turn. */
    unsigned n = 0;
    for (struct conn *c = w->rq_head; c; c = c->rq_next)
        n++;
    while (n-- && w->rq_head) {
        struct conn *c = w->rq_head;
        rq_unlink(c);
        conn_process(c);
    }
    if (!w->rq_head)
        uv_idle_stop(&w->kick);
    srv_worker_maybe_finish(w);
}

/* ---- closing ---- */

void srv_conn_maybe_free(struct conn *c)
{
    if (!c->closing || c->open_handles > 0 || c->req.active)
        return;
    struct worker *w = c->w;
    rq_unlink(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
    atomic_fetch_sub(&w->st.conns_open, 1);
    srv_gauge_add(w->s->m_open, -1);
    if (c->buf)
        buf_put(w, c->buf);
    gw_http_parser_destroy(c->parser);
    free(c);
    /* Finishing the worker calls the handler's worker_stop: not from here, which may be
     * inside a gw_req_* call, but from the run queue's next turn. */
    if (w->stopping && w->n_conns == 0 && !uv_is_active((uv_handle_t *)&w->kick) &&
        !uv_is_closing((uv_handle_t *)&w->kick))
        uv_idle_start(&w->kick, srv_kick_cb);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (h == (uv_handle_t *)&c->tcp)
        srv_sq_fail(c);
    if (--c->open_handles == 0)
        srv_conn_maybe_free(c);
}

void srv_conn_close(struct conn *c, int reason)
{
    if (c->closing)
        return;
    c->closing = true;
    rq_unlink(c);
    struct gw_req *r = &c->req;
    if (r->active && !r->cancelled) {
        r->cancelled = true;
        c->w->s->o.handler->on_cancel(r, reason);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    srv_sq_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    c->shutdown_done = true;
    if (c->closing)
        return;
    if (status < 0 || c->eof) {
        srv_conn_close(c, 0);
        return;
    }
    c->t_linger = srv_now_ms(c) + c->w->s->o.linger_ms;
    srv_conn_arm_timer(c);
}

static void update_read(struct conn *c);

/* Nothing more will be answered: send what is queued, then close gracefully. */
void srv_conn_linger(struct conn *c)
{
    if (c->lingering || c->closing)
        return;
    if (c->write_queued == 0 && c->eof) {
        srv_conn_close(c, 0);
        return;
    }
    c->lingering = true;
    /* Unparsed input will never be parsed now; reads from here on are discarded. */
    c->start = c->end = c->pend_off = c->pend_len = 0;
    release_buf_if_empty(c);
    c->shutdown.data = c;
    if (c->sq_head)
        c->shutdown_wanted = true; /* after the held writes (srv_conn_shutdown) */
    else if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        srv_conn_close(c, 0);
        return;
    }
    update_read(c);
    if (c->fatal) {
        srv_conn_close(c, 0); /* no request is active: nobody to call back */
        return;
    }
    srv_conn_arm_timer(c);
}

void srv_conn_shutdown(struct conn *c)
{
    c->shutdown_wanted = false;
    if (!c->closing && uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        srv_conn_close(c, 0);
}

void srv_conn_stop(struct conn *c)
{
    c->stopping = true;
    if (c->closing || c->lingering || c->req.active)
        return; /* an active request ends first; its response says Connection: close */
    if (c->write_queued)
        srv_conn_linger(c);
    else
        srv_conn_close(c, LODE_ESHUTDOWN);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t);

static bool body_clock_runs(const struct gw_req *r)
{
    return r->active && !r->bad && r->body_wanted && !r->body_paused && !r->body_ended &&
           !r->parse_done;
}

void srv_conn_arm_timer(struct conn *c)
{
    if (c->closing)
        return;
    const struct gw_server_opts *o = &c->w->s->o;
    const struct gw_req *r = &c->req;
    uint64_t dl = UINT64_MAX;
    if (c->lingering) {
        if (c->shutdown_done)
            dl = c->t_linger;
    } else if (!r->active) {
        if (c->head_timing)
            dl = c->t_head + o->header_timeout_ms;
        else if (!c->write_queued)
            dl = c->t_idle + o->idle_timeout_ms;
    } else if (body_clock_runs(r)) {
        dl = c->t_body + o->body_timeout_ms;
    }
    if (c->write_queued && c->t_write + o->write_timeout_ms < dl)
        dl = c->t_write + o->write_timeout_ms;
    if (dl == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = srv_now_ms(c);
    uv_timer_start(&c->timer, on_timer, dl > now ? dl - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    const struct gw_server_opts *o = &c->w->s->o;
    struct gw_req *r = &c->req;
    uint64_t now = srv_now_ms(c);
    if (c->write_queued && now >= c->t_write + o->write_timeout_ms) {
        srv_stat_add(&c->w->st.timeouts, 1);
        srv_count(c->w->s->m_timeouts, 1);
        LOG_DEBUG(LOG_CTX, "%s: write stalled for %u ms", c->peer, o->write_timeout_ms);
        srv_conn_close(c, LODE_ETIMEOUT);
        return;
    }
    if (c->lingering) {
        if (c->shutdown_done && now >= c->t_linger)
            srv_conn_close(c, 0);
        else
            srv_conn_arm_timer(c);
        return;
    }
    if (!r->active) {
        if (c->head_timing && now >= c->t_head + o->header_timeout_ms) {
            srv_stat_add(&c->w->st.timeouts, 1);
            srv_count(c->w->s->m_timeouts, 1);
            LOG_DEBUG(LOG_CTX, "%s: request head not complete after %u ms", c->peer,
                      o->header_timeout_ms);
            srv_conn_close(c, LODE_ETIMEOUT);
            return;
        }
        if (!c->head_timing && !c->write_queued && now >= c->t_idle + o->idle_timeout_ms) {
            srv_conn_close(c, 0);
            return;
        }
    } else if (body_clock_runs(r) && now >= c->t_body + o->body_timeout_ms) {
        srv_stat_add(&c->w->st.timeouts, 1);
        srv_count(c->w->s->m_timeouts, 1);
        r->body_timed_out = true;
        conn_process(c);
        return;
    }
    srv_conn_arm_timer(c);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    struct conn *c = h->data;
    size_t cap = c->w->s->o.read_buffer;
    if (!c->buf) {
        c->buf = buf_get(c->w);
        c->start = c->end = c->pend_off = c->pend_len = 0;
        if (!c->buf) {
            *out = uv_buf_init(NULL, 0);
            return;
        }
    }
    size_t from = keep_from(c);
    if (from > 0 && cap - c->end < cap / 2) {
        memmove(c->buf, c->buf + from, c->end - from);
        c->end -= from;
        c->start -= from;
        if (c->pend_len)
            c->pend_off -= from;
    }
    *out = uv_buf_init((char *)c->buf + c->end, (unsigned)(cap - c->end));
}

static void update_read(struct conn *c)
{
    if (c->closing)
        return;
    bool want;
    if (c->eof)
        want = false;
    else if (c->lingering || !c->buf)
        want = true;
    else
        want = c->end - keep_from(c) < c->w->s->o.read_buffer;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
        else
            c->fatal = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = s->data;
    if (nread > 0) {
        srv_stat_add(&c->w->st.bytes_in, (uint64_t)nread);
        srv_count(c->w->s->m_in, (uint64_t)nread);
        if (c->lingering) {
            c->discarded += (size_t)nread;
            if (c->discarded > LINGER_MAX_BYTES)
                srv_conn_close(c, 0);
            return; /* end not advanced: the bytes are dropped */
        }
        c->end += (size_t)nread;
        srv_stat_max(&c->w->st.max_input, c->end - keep_from(c));
        c->t_body = srv_now_ms(c);
        conn_process(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_EOF) {
        c->eof = true;
        uv_read_stop(s);
        c->reading = false;
        if (c->lingering) {
            if (c->shutdown_done)
                srv_conn_close(c, 0);
            return;
        }
        conn_process(c);
        return;
    }
    if (nread == UV_ENOBUFS) {
        if (!c->buf) {
            LOG_WARN(LOG_CTX, "%s: out of memory for the input buffer", c->peer);
            srv_conn_close(c, -ENOMEM); /* rather than retrying on every loop turn */
            return;
        }
        update_read(c);
        return;
    }
    LOG_DEBUG(LOG_CTX, "%s: read: %s", c->peer, uv_strerror((int)nread));
    srv_conn_close(c, LODE_ECLOSED);
}

/* ---- requests ---- */

static void assign_id(struct conn *c)
{
    struct worker *w = c->w;
    uint64_t v = ((uint64_t)(w->s->start_s & 0xfffff) << 44) | ((uint64_t)(w->idx & 0xff) << 36) |
                 (w->seq++ & 0xfffffffffull);
    snprintf(c->req.id, sizeof(c->req.id), "%016llx", (unsigned long long)v);
}

static void reset_req(struct conn *c)
{
    memset(&c->req, 0, sizeof(c->req));
    c->req.c = c;
    assign_id(c);
}

static void start_bad(struct conn *c, enum gw_s3_error code, const char *msg)
{
    struct gw_req *r = &c->req;
    reset_req(c);
    r->bad = true;
    r->active = true;
    r->close_after = true;
    r->parse_done = true;
    c->head_timing = false;
    srv_stat_add(&c->w->st.bad_requests, 1);
    srv_count(c->w->s->m_bad, 1);
    LOG_DEBUG(LOG_CTX, "%s: refused (%d): %s", c->peer, status_of[code], msg);
    const struct gw_handler *h = c->w->s->o.handler;
    if (h->on_bad_request) {
        h->on_bad_request(r, code, msg);
    } else {
        gw_req_respond(r, status_of[code], NULL, 0, NULL, 0);
    }
}

static void start_request(struct conn *c)
{
    struct gw_req *r = &c->req;
    reset_req(c);
    r->head = gw_http_request(c->parser);
    r->active = true;
    r->head_method = gw_str_eq(r->head->head.method, "HEAD");
    c->head_timing = false;
    if (!r->head->has_body) {
        /* A bodiless request is complete now: the handler may answer and keep the
         * connection in its first callback. */
        struct gw_http_ev ev;
        gw_http_feed(c->parser, "", 0, &ev);
        r->parse_done = ev.type == GW_HTTP_EV_END;
    }
    srv_stat_add(&c->w->st.requests, 1);
    srv_count(c->w->s->m_requests, 1);
    c->t_body = srv_now_ms(c);
    c->w->s->o.handler->on_request(r);
}

static void body_end(struct conn *c, enum gw_s3_error code, const char *msg)
{
    struct gw_req *r = &c->req;
    r->body_ended = true;
    if (code != GW_S3_OK)
        r->close_after = true;
    const struct gw_handler *h = c->w->s->o.handler;
    if (h->on_body_end)
        h->on_body_end(r, code, msg);
}

static void deliver_body(struct conn *c)
{
    struct gw_req *r = &c->req;
    const struct gw_handler *h = c->w->s->o.handler;
    while (r->active && !c->closing && !r->body_paused && !r->body_ended) {
        if (c->pend_len) {
            size_t n = h->on_body ? h->on_body(r, c->buf + c->pend_off, c->pend_len)
                                  : c->pend_len;
            if (n > c->pend_len)
                n = c->pend_len;
            c->pend_off += n;
            c->pend_len -= n;
            if (c->pend_len)
                r->body_paused = true;
            continue;
        }
        if (r->body_timed_out) {
            body_end(c, GW_S3_REQUEST_TIMEOUT, "no body bytes arrived within the timeout");
            break;
        }
        if (r->parse_done) {
            body_end(c, GW_S3_OK, NULL);
            break;
        }
        struct gw_http_ev ev;
        size_t avail = c->buf ? c->end - c->start : 0;
        size_t used = gw_http_feed(c->parser, c->buf ? (void *)(c->buf + c->start) : (void *)"",
                                   avail, &ev);
        c->start += used;
        if (ev.type == GW_HTTP_EV_BODY) {
            c->pend_off = (size_t)(ev.data - c->buf);
            c->pend_len = ev.len;
        } else if (ev.type == GW_HTTP_EV_END) {
            r->parse_done = true;
        } else if (ev.type == GW_HTTP_EV_ERROR) {
            const struct gw_http_error *e = gw_http_error(c->parser);
            body_end(c, e->code, e->msg);
            break;
        } else {
            if (c->eof) {
                gw_http_eof(c->parser, &ev);
                body_end(c, GW_S3_INCOMPLETE_BODY,
                         "the connection closed before the end of the body");
            }
            break;
        }
    }
}

/* The connection has nothing left to answer. Unless the client is gone and nothing is
 * queued, close gracefully: input it still sends must not reset what we sent last. */
static void conn_end(struct conn *c)
{
    if (c->write_queued == 0 && c->eof)
        srv_conn_close(c, 0);
    else
        srv_conn_linger(c);
}

static void process_once(struct conn *c)
{
    struct gw_req *r = &c->req;
    if (c->closing || c->lingering)
        return;
    if (c->fatal) {
        srv_conn_close(c, LODE_ECLOSED);
        return;
    }
    if (r->active) {
        if (r->bad)
            return;
        if (r->body_wanted && !r->body_paused && !r->body_ended)
            deliver_body(c);
        return;
    }
    if (c->refused) {
        c->refused = false;
        start_bad(c, GW_S3_SLOW_DOWN, "too many connections");
        return;
    }
    if (c->write_queued > PIPELINE_MARK)
        return; /* on_write kicks when the earlier responses drain */
    if (c->stopping) {
        conn_end(c);
        return;
    }
    enum gw_http_state st = gw_http_state(c->parser);
    if (st == GW_HTTP_S_CLOSED || st == GW_HTTP_S_ERROR) {
        conn_end(c);
        return;
    }
    struct gw_http_ev ev;
    size_t avail = c->buf ? c->end - c->start : 0;
    size_t used =
        gw_http_feed(c->parser, c->buf ? (void *)(c->buf + c->start) : (void *)"", avail, &ev);
    c->start += used;
    if (ev.type == GW_HTTP_EV_HEAD) {
        start_request(c);
        return;
    }
    if (ev.type == GW_HTTP_EV_ERROR) {
        const struct gw_http_error *e = gw_http_error(c->parser);
        start_bad(c, e->code, e->msg);
        return;
    }
    if (gw_http_state(c->parser) == GW_HTTP_S_HEAD && !c->head_timing) {
        c->head_timing = true;
        c->t_head = srv_now_ms(c);
    }
    if (c->eof)
        conn_end(c); /* idle, or a head cut short: nothing to answer */
}

static void conn_process(struct conn *c)
{
    if (c->in_process) {
        c->again = true;
        return;
    }
    c->in_process = true;
    unsigned rounds = 0;
    do {
        c->again = false;
        process_once(c);
    } while (c->again && !c->closing && ++rounds < MAX_ROUNDS);
    c->in_process = false;
    if (c->closing)
        return;
    if (c->again) {
        /* A client pipelining many small requests waits for the next loop turn, so the
         * other connections of the worker get theirs. */
        c->again = false;
        srv_conn_kick(c);
    }
    release_buf_if_empty(c);
    update_read(c);
    if (c->fatal) {
        srv_conn_close(c, LODE_ECLOSED);
        return;
    }
    srv_conn_arm_timer(c);
}

/* ---- accepting ---- */

static void peer_name(struct conn *c)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
             port);
}

static void on_reject_closed(uv_handle_t *h)
{
    free(h);
}

void srv_on_connection(uv_stream_t *listener, int status)
{
    struct worker *w = listener->data;
    if (status < 0) {
        uint32_t dropped;
        if (cmn_log_ratelimit_ok(&accept_rl, &dropped))
            LOG_WARN(LOG_CTX, "accept: %s (%u similar messages suppressed)",
                     uv_strerror(status), dropped);
        return;
    }
    const struct gw_server_opts *o = &w->s->o;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c || gw_http_parser_create(&o->limits, &c->parser) != 0) {
        /* Take the connection off the queue anyway, or the listener spins on it. */
        free(c);
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t && uv_tcp_init(&w->loop, t) == 0) {
            (void)uv_accept(listener, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, on_reject_closed);
        } else {
            free(t);
        }
        return;
    }
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->req.c = c;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    atomic_fetch_add(&w->st.conns_open, 1);
    srv_stat_add(&w->st.conns_total, 1);
    srv_count(w->s->m_conns, 1);
    srv_gauge_add(w->s->m_open, 1);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        srv_conn_close(c, 0);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (o->socket_buffer > 0) {
        int sz = o->socket_buffer;
        uv_recv_buffer_size((uv_handle_t *)&c->tcp, &sz);
        sz = o->socket_buffer;
        uv_send_buffer_size((uv_handle_t *)&c->tcp, &sz);
    }
    peer_name(c);
    c->t_idle = srv_now_ms(c);
    if (w->stopping) {
        srv_conn_close(c, LODE_ESHUTDOWN);
        return;
    }
    if (w->n_conns > o->max_conns) {
        srv_stat_add(&w->st.conns_refused, 1);
        /* Answering costs a little; past a margin, refusing must cost nothing. */
        if (w->n_conns > o->max_conns + o->max_conns / 8 + 16) {
            srv_conn_close(c, 0);
            return;
        }
        c->refused = true;
    }
    conn_process(c);
}
