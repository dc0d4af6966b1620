/* Internals shared by gateway/server.c (server, workers, listeners),
 * gateway/server_conn.c (connections) and gateway/server_req.c (the request API and
 * writes). Not for other modules.
 *
 * Concurrency: everything below a struct worker is touched only by that worker's thread,
 * except the stats (atomics, read by gw_server_stats from any thread) and the async handle
 * (gw_server_stop signals it). struct gw_server is read-only once the workers run.
 */
#ifndef LODE_GATEWAY_SERVER_INT_H
#define LODE_GATEWAY_SERVER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/http.h"
#include "gateway/server.h"

struct cmn_counter;
struct cmn_gauge;

struct worker_stats {
    atomic_uint_fast64_t conns_open, conns_total, conns_refused, requests, bad_requests;
    atomic_uint_fast64_t bytes_in, bytes_out, timeouts, max_input, max_write;
};

struct gw_req {
    struct conn *c;
    const struct gw_http_request *head; /* NULL for a bad request */
    void *data;
    char id[GW_REQ_ID_SIZE];
    bool active;                   /* handed to the handler and not ended */
    bool bad;                      /* given to on_bad_request */
    bool cancelled;                /* on_cancel was called */
    bool body_wanted;              /* gw_req_body_resume called at least once */
    bool body_paused;              /* the handler took fewer bytes than offered */
    bool body_ended;               /* on_body_end was called (or is being called) */
    bool body_timed_out;           /* the body timeout fired; on_body_end to follow */
    bool parse_done;               /* the parser reached the end of this request */
    bool continue_sent;
    bool head_sent;
    bool head_method;              /* a HEAD request: its response has no body */
    bool close_after;              /* the connection closes once this response is out */
    enum gw_http_framing framing;
    uint64_t declared, written;    /* Content-Length framing: promised and queued bytes */
};

struct wreq;                       /* a queued write (server_req.c) */

struct conn {
    struct worker *w;
    struct conn *prev, *next;      /* w->conns */
    struct conn *rq_prev, *rq_next; /* w's run queue, when queued */
    bool queued;
    uv_tcp_t tcp;
    uv_timer_t timer;              /* the earliest deadline of the connection's state */
    uv_shutdown_t shutdown;
    int open_handles;
    struct gw_http_parser *parser;
    uint8_t *buf;                  /* input buffer (read_buffer bytes) or NULL when empty */
    size_t pend_off, pend_len;     /* body bytes offered to the handler and not taken */
    size_t start, end;             /* input not yet parsed */
    bool reading, eof, closing, lingering, shutdown_done, stopping;
    bool in_process, again, fatal, refused, head_timing;
    size_t write_queued;           /* bytes queued (uv_write or held), not yet completed */
    unsigned writes_pending;       /* uv_write requests in flight */
    /* Writes held behind a pipe write (gw_req_write_pipe): spliced by the connection itself,
     * so everything after one waits until it is out (the order on the wire). */
    struct wreq *sq_head, *sq_tail;
    uv_poll_t *wpoll;              /* POLLOUT on a dup of the socket, while splicing waits */
    int wpoll_fd;
    bool shutdown_wanted;          /* lingering: shut down once the held writes are out */
    size_t discarded;              /* while lingering */
    uint64_t t_idle, t_head, t_body, t_write, t_linger; /* loop time (ms) */
    struct gw_req req;
    char peer[64];
};

struct worker {
    struct gw_server *s;
    unsigned idx;
    uv_loop_t loop;
    bool loop_init;
    uv_thread_t thread;
    bool thread_started;
    int fd;                        /* listening socket, owned by `listener` once opened */
    uv_tcp_t listener;
    bool listener_open;
    uv_async_t async;              /* stop signal from gw_server_stop */
    uv_idle_t kick;                /* runs the run queue on the next loop turn */
    uv_timer_t grace;
    uint32_t grace_ms;             /* written before the async is sent */
    bool stopping, finishing, hook_started;
    void *wdata;                   /* from handler->worker_start */
    struct conn *conns;
    unsigned n_conns;
    struct conn *rq_head, *rq_tail;
    uint64_t seq;                  /* request ids */
    uint8_t *pool[16];             /* idle input buffers */
    unsigned n_pool;
    struct worker_stats st;
    uv_sem_t ready;
    int start_rc;
    char start_msg[160];
};

struct gw_server {
    struct gw_server_opts o;
    char *addr;
    struct worker *workers;
    unsigned n_workers;
    int port;
    uint32_t start_s;              /* the time part of request ids */
    bool started, stopped;
    struct cmn_counter *m_conns, *m_requests, *m_bad, *m_in, *m_out, *m_timeouts;
    struct cmn_gauge *m_open;
};

/* The next pipelined request starts once the earlier responses' queued bytes are below
 * this, so a client that pipelines without reading cannot make responses pile up. */
#define PIPELINE_MARK (64u << 10)

static inline void srv_stat_add(atomic_uint_fast64_t *a, uint64_t n)
{
    atomic_fetch_add_explicit(a, n, memory_order_relaxed);
}

static inline void srv_stat_max(atomic_uint_fast64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

/* server_conn.c */
void srv_on_connection(uv_stream_t *listener, int status);
uint64_t srv_now_ms(const struct conn *c);
/* Processes the connection again: in the conn_process on the stack, else next loop turn. */
void srv_conn_kick(struct conn *c);
/* Graceful close: shut down after the queued writes, discard input, then close. */
void srv_conn_linger(struct conn *c);
/* The deferred shutdown of a lingering connection, once its held writes are out. */
void srv_conn_shutdown(struct conn *c);
/* Frees a closed connection once its handles are closed and its request ended. */
void srv_conn_maybe_free(struct conn *c);
void srv_conn_arm_timer(struct conn *c);
/* Begins a graceful stop of one connection (worker stopping). */
void srv_conn_stop(struct conn *c);
/* Closes now; an unended request is cancelled with `reason`. */
void srv_conn_close(struct conn *c, int reason);
void srv_kick_cb(uv_idle_t *idle);

/* server_req.c */
/* Once the connection's socket is closed: fails the held writes (their callbacks fire with
 * LODE_ECLOSED). */
void srv_sq_fail(struct conn *c);
/* Closes the poll handle used by pipe writes, if any (counted in open_handles). */
void srv_sq_close(struct conn *c);
/* Writes a copy of data. On failure (returned) the connection is marked broken and closed
 * on its next processing, never from inside the caller. */
int srv_write_copy(struct conn *c, const void *data, size_t len);

/* server.c */
/* Called when a connection is freed: finishes a stopping worker once none are left. */
void srv_worker_maybe_finish(struct worker *w);
void srv_count(struct cmn_counter *c, uint64_t n);
void srv_gauge_add(struct cmn_gauge *g, double d);

#endif
