/* The gateway's HTTP server: listeners, worker threads and their loops, start and stop.
 * Connections and requests are in gateway/server_conn.c. See gateway/server.h.
 *
 * Each worker owns a listening socket bound with SO_REUSEPORT to the same address, so the
 * kernel spreads new connections over the workers and no connection ever changes loops.
 * The sockets are bound in gw_server_create, on the caller's thread, so a bad address or a
 * port in use fails early and synchronously, and port 0 resolves to one port for all.
 *
 * Stop: gw_server_stop signals each worker (uv_async); the worker closes its listener,
 * closes idle connections, lets requests in progress end within the grace period, then
 * closes the rest (cancelling their handlers), calls the handler's worker_stop, closes its
 * own handles and lets uv_run return. The caller joins the threads.
 */
#include "gateway/server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "gateway/server_int.h"

#define LOG_CTX "http"
#define MAX_WORKERS 256u

void srv_count(struct cmn_counter *c, uint64_t n)
{
    if (c)
        cmn_counter_add(c, n);
}

void srv_gauge_add(struct cmn_gauge *g, double d)
{
    if (g)
        cmn_gauge_add(g, d);
}

static void set_defaults(struct gw_server_opts *o)
{
    if (!o->workers)
        o->workers = 1;
    gw_http_limits_default(&o->limits);
    if (!o->read_buffer)
        o->read_buffer = 64u << 10;
    if (!o->max_conns)
        o->max_conns = 4096;
    if (!o->idle_timeout_ms)
        o->idle_timeout_ms = 60000;
    if (!o->header_timeout_ms)
        o->header_timeout_ms = 20000;
    if (!o->body_timeout_ms)
        o->body_timeout_ms = 60000;
    if (!o->write_timeout_ms)
        o->write_timeout_ms = 60000;
    if (!o->linger_ms)
        o->linger_ms = 2000;
    if (!o->backlog)
        o->backlog = 511;
}

static int bind_one(const struct addrinfo *ai, int port, int backlog, int *fd_out, int *port_out,
                    struct cmn_err *err)
{
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cmn_err_set(err, -errno, "socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int e = errno;
        close(fd);
        return cmn_err_set(err, -e, "setsockopt SO_REUSEPORT: %s", strerror(e));
    }
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return cmn_err_set(err, -e, "bind/listen: %s", strerror(e));
    }
    struct sockaddr_storage got;
    socklen_t len = sizeof(got);
    if (getsockname(fd, (struct sockaddr *)&got, &len) != 0) {
        int e = errno;
        close(fd);
        return cmn_err_set(err, -e, "getsockname: %s", strerror(e));
    }
    *port_out = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                               : ((struct sockaddr_in6 *)&got)->sin6_port);
    *fd_out = fd;
    return 0;
}

static int bind_all(struct gw_server *s, struct cmn_err *err)
{
    char host[256];
    uint16_t port;
    if (cmn_addr_split(s->addr, host, sizeof(host), &port) != 0)
        return cmn_err_set(err, LODE_ECONFIG, "listen address '%s': expected host:port", s->addr);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, NULL, &hints, &res);
    if (g != 0 || !res)
        return cmn_err_set(err, LODE_ECONFIG, "listen address '%s': %s", s->addr,
                           gai_strerror(g));
    int rc = 0, want = port;
    for (unsigned i = 0; i < s->n_workers && rc == 0; i++) {
        int got = 0;
        rc = bind_one(res, want, s->o.backlog, &s->workers[i].fd, &got, err);
        if (rc == 0)
            want = s->port = got; /* port 0: the first bind picks, the others follow */
    }
    freeaddrinfo(res);
    if (rc)
        cmn_err_wrap(err, "listen on %s", s->addr);
    return rc;
}

/* libuv writes with write(2): a client that resets its connection would kill the process
 * with SIGPIPE. A handler the program installed itself is left alone. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

int gw_server_create(const struct gw_server_opts *opts, struct gw_server **out,
                     struct cmn_err *err)
{
    if (!opts || !opts->addr || !opts->handler || !opts->handler->on_request ||
        !opts->handler->on_cancel)
        return cmn_err_set(err, -EINVAL, "http server: address and handler "
                                         "(on_request, on_cancel) are required");
    struct gw_server *s = calloc(1, sizeof(*s));
    if (!s)
        return cmn_err_set(err, -ENOMEM, "http server: out of memory");
    s->o = *opts;
    set_defaults(&s->o);
    if (s->o.workers > MAX_WORKERS || s->o.read_buffer < 1024 ||
        s->o.read_buffer > (64u << 20)) {
        free(s);
        return cmn_err_set(err, LODE_ECONFIG,
                           "http server: workers must be 1..%u, read buffer 1 KiB..64 MiB",
                           MAX_WORKERS);
    }
    s->addr = strdup(opts->addr);
    s->n_workers = s->o.workers;
    s->workers = calloc(s->n_workers, sizeof(*s->workers));
    if (!s->addr || !s->workers) {
        free(s->addr);
        free(s->workers);
        free(s);
        return cmn_err_set(err, -ENOMEM, "http server: out of memory");
    }
    s->o.addr = s->addr;
    for (unsigned i = 0; i < s->n_workers; i++) {
        s->workers[i].s = s;
        s->workers[i].idx = i;
        s->workers[i].fd = -1;
    }
    int rc = bind_all(s, err);
    if (rc) {
        for (unsigned i = 0; i < s->n_workers; i++)
            if (s->workers[i].fd >= 0)
                close(s->workers[i].fd);
        free(s->workers);
        free(s->addr);
        free(s);
        return rc;
    }
    s->start_s = (uint32_t)time(NULL);
    ignore_sigpipe();
    if (s->o.metrics) {
        struct cmn_metrics *m = s->o.metrics;
        s->m_conns = cmn_metrics_counter(m, "lode_gateway_http_connections_total", NULL,
                                         "HTTP connections accepted");
        s->m_requests = cmn_metrics_counter(m, "lode_gateway_http_requests_total", NULL,
                                            "HTTP requests handed to the S3 layer");
        s->m_bad = cmn_metrics_counter(m, "lode_gateway_http_bad_requests_total", NULL,
                                       "Malformed or refused HTTP requests");
        s->m_in = cmn_metrics_counter(m, "lode_gateway_http_received_bytes_total", NULL,
                                      "Bytes read from HTTP clients");
        s->m_out = cmn_metrics_counter(m, "lode_gateway_http_sent_bytes_total", NULL,
                                       "Bytes written to HTTP clients");
        s->m_timeouts = cmn_metrics_counter(m, "lode_gateway_http_timeouts_total", NULL,
                                            "Connections or bodies cut off by a timeout");
        s->m_open = cmn_metrics_gauge(m, "lode_gateway_http_connections_open", NULL,
                                      "HTTP connections open now");
    }
    *out = s;
    return 0;
}

int gw_server_port(const struct gw_server *s)
{
    return s->port;
}

/* ---- worker thread ---- */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

void srv_worker_maybe_finish(struct worker *w)
{
    if (!w->stopping || w->n_conns > 0 || w->finishing)
        return;
    w->finishing = true;
    const struct gw_handler *h = w->s->o.handler;
    if (w->hook_started && h->worker_stop)
        h->worker_stop(w->s->o.handler_data, w->idx, w->wdata);
    if (w->listener_open && !uv_is_closing((uv_handle_t *)&w->listener))
        uv_close((uv_handle_t *)&w->listener, on_handle_closed);
    uv_close((uv_handle_t *)&w->async, on_handle_closed);
    uv_close((uv_handle_t *)&w->kick, on_handle_closed);
    uv_close((uv_handle_t *)&w->grace, on_handle_closed);
    for (unsigned i = 0; i < w->n_pool; i++)
        free(w->pool[i]);
    w->n_pool = 0;
}

static void on_grace(uv_timer_t *t)
{
    struct worker *w = t->data;
    /* Closing may free a connection (and unlink it) inside the loop: take next first. */
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        srv_conn_close(c, LODE_ESHUTDOWN);
    }
}

static void on_async(uv_async_t *a)
{
    struct worker *w = a->data;
    if (w->stopping)
        return;
    w->stopping = true;
    if (w->listener_open)
        uv_close((uv_handle_t *)&w->listener, on_handle_closed);
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (w->grace_ms)
            srv_conn_stop(c);
        else
            srv_conn_close(c, LODE_ESHUTDOWN);
    }
    if (w->n_conns && w->grace_ms)
        uv_timer_start(&w->grace, on_grace, w->grace_ms, 0);
    srv_worker_maybe_finish(w);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    struct gw_server *s = w->s;
    const struct gw_handler *h = s->o.handler;
    int rc = uv_loop_init(&w->loop);
    if (rc) {
        w->start_rc = rc;
        snprintf(w->start_msg, sizeof(w->start_msg), "uv_loop_init: %s", uv_strerror(rc));
        uv_sem_post(&w->ready);
        return;
    }
    w->loop_init = true;
    uv_async_init(&w->loop, &w->async, on_async);
    w->async.data = w;
    uv_idle_init(&w->loop, &w->kick);
    w->kick.data = w;
    uv_timer_init(&w->loop, &w->grace);
    w->grace.data = w;
    if (h->worker_start) {
        rc = h->worker_start(s->o.handler_data, w->idx, &w->loop, &w->wdata);
        if (rc)
            snprintf(w->start_msg, sizeof(w->start_msg), "worker_start: %s",
                     lode_strerror(rc));
        else
            w->hook_started = true;
    }
    if (rc == 0) {
        uv_tcp_init(&w->loop, &w->listener);
        w->listener.data = w;
        w->listener_open = true;
        rc = uv_tcp_open(&w->listener, w->fd);
        if (rc == 0) {
            w->fd = -1;
            rc = uv_listen((uv_stream_t *)&w->listener, s->o.backlog, srv_on_connection);
        }
        if (rc)
            snprintf(w->start_msg, sizeof(w->start_msg), "listen: %s", uv_strerror(rc));
    }
    w->start_rc = rc;
    if (rc) {
        /* Not started: stop at once; the hook's worker_stop still runs if its start did. */
        w->stopping = true;
        srv_worker_maybe_finish(w);
    }
    uv_sem_post(&w->ready);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) == UV_EBUSY) {
        LOG_WARN(LOG_CTX, "worker %u: handles left open at stop; closing them", w->idx);
        uv_walk(&w->loop, close_walk, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
}

int gw_server_start(struct gw_server *s, struct cmn_err *err)
{
    if (s->started || s->stopped)
        return cmn_err_set(err, -EINVAL, "http server already started or stopped");
    s->started = true;
    for (unsigned i = 0; i < s->n_workers; i++) {
        struct worker *w = &s->workers[i];
        uv_sem_init(&w->ready, 0);
        int rc = uv_thread_create(&w->thread, worker_main, w);
        if (rc == 0) {
            w->thread_started = true;
            uv_sem_wait(&w->ready);
            rc = w->start_rc;
        } else {
            snprintf(w->start_msg, sizeof(w->start_msg), "thread: %s", uv_strerror(rc));
        }
        uv_sem_destroy(&w->ready);
        if (rc) {
            cmn_err_set(err, rc, "http worker %u: %s", i, w->start_msg);
            gw_server_stop(s, 0);
            return rc;
        }
    }
    LOG_INFO(LOG_CTX, "listening on %s (port %d), %u worker%s", s->addr, s->port, s->n_workers,
             s->n_workers == 1 ? "" : "s");
    return 0;
}

void gw_server_stop(struct gw_server *s, uint32_t grace_ms)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    for (unsigned i = 0; i < s->n_workers; i++) {
        struct worker *w = &s->workers[i];
        if (!w->thread_started)
            continue;
        if (w->start_rc == 0) {
            w->grace_ms = grace_ms;
            uv_async_send(&w->async);
        }
    }
    for (unsigned i = 0; i < s->n_workers; i++) {
        struct worker *w = &s->workers[i];
        if (w->thread_started) {
            uv_thread_join(&w->thread);
            w->thread_started = false;
        }
    }
}

void gw_server_destroy(struct gw_server *s)
{
    if (!s)
        return;
    gw_server_stop(s, 0);
    for (unsigned i = 0; i < s->n_workers; i++)
        if (s->workers[i].fd >= 0)
            close(s->workers[i].fd);
    free(s->workers);
    free(s->addr);
    free(s);
}

void gw_server_stats(const struct gw_server *s, struct gw_server_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < s->n_workers; i++) {
        const struct worker_stats *st = &s->workers[i].st;
        out->conns_open += atomic_load(&st->conns_open);
        out->conns_total += atomic_load(&st->conns_total);
        out->conns_refused += atomic_load(&st->conns_refused);
        out->requests += atomic_load(&st->requests);
        out->bad_requests += atomic_load(&st->bad_requests);
        out->bytes_in += atomic_load(&st->bytes_in);
        out->bytes_out += atomic_load(&st->bytes_out);
        out->timeouts += atomic_load(&st->timeouts);
        uint64_t mi = atomic_load(&st->max_input), mw = atomic_load(&st->max_write);
        if (mi > out->max_input_buffered)
            out->max_input_buffered = mi;
        if (mw > out->max_write_queued)
            out->max_write_queued = mw;
    }
}
