/* The gateway's HTTP/1.1 server on libuv: one listening address, N worker threads, each
 * with its own loop and its own SO_REUSEPORT listener; a connection belongs to one loop for
 * its whole life. Requests are handed to a handler (the S3 layer) through a vtable.
 *
 * Request lifecycle (one request at a time per connection; pipelined requests wait):
 *
 *   on_request(req) ──► handler decides; body bytes are delivered only after it calls
 *        │              gw_req_body_resume() (which sends "100 Continue" when the client
 *        │              asked for it), so authentication can finish first
 *        ├─► on_body(req, bytes) ... (the handler may take fewer bytes than offered: delivery
 *        │   pauses, the socket read stops, until gw_req_body_resume())
 *        ├─► on_body_end(req, GW_S3_OK | error)
 *        ├─► gw_req_respond_head(), gw_req_write() ... each write's callback fires when the
 *        │   kernel has taken the bytes (or the connection died), gw_req_finish()
 *        └─► or gw_req_abort() (close the connection, e.g. a failure after the head went out)
 *
 * Every request given to on_request (or on_bad_request) must be ended exactly once, with
 * gw_req_finish() or gw_req_abort(). Until then its memory, its head and its id stay valid,
 * even when the connection is gone: then on_cancel() has been called (once), every other
 * gw_req_* call fails with LODE_ECLOSED, and pending write callbacks fire with an error.
 * After the end the handler must not touch req again; pending write callbacks still fire.
 *
 * Callbacks run on the connection's loop thread, never from inside a gw_req_* call (work a
 * call causes is deferred to the loop), so a handler may call gw_req_* functions from any
 * callback and from its own callbacks on that loop (RPC replies). gw_req_* functions must
 * only be called on that loop's thread.
 *
 * Bounded memory per connection: one input buffer of read_buffer bytes (allocated while
 * there is input, released when empty), the parser's head (limits), the response head; the
 * body of a response is never copied (gw_req_write borrows the caller's memory until the
 * callback), so a response costs what the handler keeps in flight. Reading stops whenever
 * the input buffer is full: a handler that does not take body bytes holds the client back
 * (TCP backpressure). The next pipelined request starts only once less than 64 KiB of
 * earlier responses is queued.
 *
 * Keep-alive: the connection serves another request only when the client allows it and the
 * request body was read to its end before the response head went out; otherwise the head
 * says Connection: close and the connection closes gracefully after the response.
 *
 * Timeouts (all in milliseconds; see struct gw_server_opts): idle keep-alive, the whole head
 * (slowloris), body inactivity while the handler wants body (slow client; the handler gets
 * on_body_end(GW_S3_REQUEST_TIMEOUT)), and write stalls (client not reading; on_cancel).
 */
#ifndef LODE_GATEWAY_SERVER_H
#define LODE_GATEWAY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "gateway/gw_types.h"
#include "gateway/http.h"
#include "gateway/s3_error.h"

struct gw_server;
struct gw_req;
struct cmn_metrics;

#define GW_REQ_ID_SIZE 17          /* 16 lower-case hex digits + NUL */

/* Write completion: status 0 when the kernel has the bytes, else a negative code (the
 * connection closed first: LODE_ECLOSED or a libuv error). The buffers are the caller's
 * again from here on. */
typedef void (*gw_req_write_cb)(void *arg, int status);

/* Implemented by the S3 layer. Only on_request and on_cancel are required. */
struct gw_handler {
    /* Once per worker, on the worker thread before it accepts anything: set up what the
     * handler needs on this loop (RPC clients). Returns 0 or a negative code (the server
     * fails to start). *worker_data is handed back through gw_req_worker_data(). */
    int (*worker_start)(void *data, unsigned worker, uv_loop_t *loop, void **worker_data);
    /* Once per started worker, on its thread, after every connection of the worker is
     * closed and every request ended: close the handler's handles on the loop. The loop
     * runs until they are closed. */
    void (*worker_stop)(void *data, unsigned worker, void *worker_data);

    /* A request head arrived: gw_req_head(req). */
    void (*on_request)(struct gw_req *req);
    /* Body bytes, in order, only after gw_req_body_resume(). `data` is valid during the
     * call only. Returns how many bytes were taken (0..len); fewer than len pauses delivery
     * and the rest is offered again after gw_req_body_resume(). NULL: bodies are discarded. */
    size_t (*on_body)(struct gw_req *req, const uint8_t *data, size_t len);
    /* The body ended (after gw_req_body_resume()): code GW_S3_OK when it was complete,
     * otherwise why it failed (BAD_REQUEST: malformed chunked framing, INCOMPLETE_BODY: the
     * client closed early, REQUEST_TIMEOUT: the client stopped sending) with a message. A
     * failed body still allows a response (the connection closes after it). NULL: treated
     * as a no-op. */
    void (*on_body_end)(struct gw_req *req, enum gw_s3_error code, const char *msg);
    /* The connection is gone (reset, write stall, server stop after the grace period)
     * while the request had not ended. Called once; the handler still ends req. */
    void (*on_cancel)(struct gw_req *req, int reason);
    /* The input was not a request the server can hand over (malformed, oversized) or the
     * worker is over its connection limit (SLOW_DOWN): answer with an error document and
     * finish; the connection closes after. gw_req_head() is NULL. NULL: the server answers
     * with the status alone. */
    void (*on_bad_request)(struct gw_req *req, enum gw_s3_error code, const char *msg);
};

struct gw_server_opts {
    const char *addr;              /* "host:port" (port 0: any; see gw_server_port) */
    unsigned workers;              /* threads, each with a loop and a listener (default 1) */
    const struct gw_handler *handler;
    void *handler_data;            /* first argument of worker_start / worker_stop */
    struct gw_http_limits limits;  /* request heads (zeros: defaults) */
    size_t read_buffer;            /* input buffer per connection (default 64 KiB) */
    unsigned max_conns;            /* per worker; more are answered SLOW_DOWN (default 4096) */
    uint32_t idle_timeout_ms;      /* keep-alive with no request in progress (default 60 s) */
    uint32_t header_timeout_ms;    /* from the first byte of a head to its end (default 20 s) */
    uint32_t body_timeout_ms;      /* no body byte while the handler wants some (default 60 s) */
    uint32_t write_timeout_ms;     /* no write progress while bytes are queued (default 60 s) */
    uint32_t linger_ms;            /* reading and discarding before a close (default 2 s) */
    int backlog;                   /* listen() backlog (default 511) */
    int socket_buffer;             /* SO_RCVBUF and SO_SNDBUF of accepted connections, in
                                      bytes (0: the kernel's autotuning); bounds what the
                                      kernel holds per connection besides read_buffer */
    struct cmn_metrics *metrics;   /* optional: lode_gateway_http_* counters */
};

/* Totals over all workers since start; read at any time from any thread. */
struct gw_server_stats {
    uint64_t conns_open;           /* now */
    uint64_t conns_total;
    uint64_t conns_refused;        /* over max_conns */
    uint64_t requests;             /* heads handed to on_request */
    uint64_t bad_requests;         /* parse errors and refusals */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t timeouts;             /* idle, head, body and write timeouts that fired */
    uint64_t max_input_buffered;   /* high-water mark of one connection's unparsed input */
    uint64_t max_write_queued;     /* high-water mark of one connection's queued write bytes */
};

/* Validates opts, resolves and binds the listening sockets (one per worker), so the port
 * is known and a bad address fails here. Nothing runs yet. opts is copied (addr too; the
 * handler vtable is borrowed and must outlive the server). Returns 0 or a negative code with
 * err set. On failure nothing needs freeing. */
int gw_server_create(const struct gw_server_opts *opts, struct gw_server **out,
                     struct cmn_err *err);

/* Starts the worker threads; returns once every worker ran worker_start and listens.
 * Returns 0, or a negative code with err set (workers already started are stopped). Call
 * at most once. */
int gw_server_start(struct gw_server *s, struct cmn_err *err);

/* The bound TCP port. */
int gw_server_port(const struct gw_server *s);

/* Graceful stop, from any thread but a worker's: listeners close at once; idle connections
 * close; requests in progress get grace_ms to end (their responses say Connection: close),
 * then their connections are closed and their handlers cancelled; then worker_stop runs,
 * loops close and threads are joined. Blocks until done. Safe to call twice, or without
 * start. */
void gw_server_stop(struct gw_server *s, uint32_t grace_ms);

/* Stops (with no grace) if still running, then frees everything. */
void gw_server_destroy(struct gw_server *s);

void gw_server_stats(const struct gw_server *s, struct gw_server_stats *out);

/* ---- Requests (see the lifecycle above). All on the request's loop thread. ---- */

/* The request head; NULL for requests given to on_bad_request. */
const struct gw_http_request *gw_req_head(const struct gw_req *req);
/* 16 hex digits, unique within the process: start time, worker, sequence number. */
const char *gw_req_id(const struct gw_req *req);
/* The peer's address as text ("192.0.2.1:51514", "[::1]:1234"), for logs. */
const char *gw_req_peer(const struct gw_req *req);
uv_loop_t *gw_req_loop(const struct gw_req *req);
unsigned gw_req_worker(const struct gw_req *req);
void *gw_req_worker_data(const struct gw_req *req);
/* A slot for the handler's own per-request state. */
void gw_req_set_data(struct gw_req *req, void *data);
void *gw_req_data(const struct gw_req *req);

/* Starts or resumes body delivery (deferred to the loop). The first call sends "HTTP/1.1
 * 100 Continue" when the client expects it and nothing has been answered yet. For a request
 * without a body, on_body_end(GW_S3_OK) follows. Returns 0, LODE_ECLOSED, or -EINVAL after
 * the body ended. */
int gw_req_body_resume(struct gw_req *req);

/* Sends the response head (copied). content_length: >= 0, GW_HTTP_LEN_CHUNKED (each write
 * becomes a chunk) or GW_HTTP_LEN_NONE. Adds Date and, when the connection will close,
 * Connection: close (always when the request body was not read to its end). Returns 0,
 * LODE_ECLOSED, -EINVAL (head already sent, bad header: see gw_http_format_head) or
 * -ENOMEM. */
int gw_req_respond_head(struct gw_req *req, int status, const struct gw_header *headers,
                        size_t n_headers, int64_t content_length);

/* Queues body bytes after the head without copying them: the buffers (the uv_buf_t array
 * is copied, the bytes are not) must stay valid until cb(arg, status), which fires exactly
 * once when this returns 0 and never otherwise (cb may be NULL for static bytes). A HEAD request's response takes no bytes.
 * Returns 0, LODE_ECLOSED, -EINVAL (no head yet, finished, or more bytes than the declared
 * Content-Length) or -ENOMEM. */
int gw_req_write(struct gw_req *req, const uv_buf_t *bufs, unsigned nbufs, gw_req_write_cb cb,
                 void *arg);

/* Queues `len` bytes to be moved from the pipe whose read end is `fd` into the socket with
 * splice(2), after everything queued before and before everything queued after (no copy
 * through user space: the pipe's pages go to the socket). The pipe must already hold those
 * bytes: a pipe that runs dry before `len` breaks the response (the connection closes). `fd` must stay open until cb(arg, status), which fires
 * exactly once when this returns 0 and never otherwise. Content-Length responses only.
 * Returns 0, LODE_ECLOSED, -EINVAL (no head yet, finished, chunked or headless framing,
 * len 0, or more bytes than the declared Content-Length) or -ENOMEM. */
int gw_req_write_pipe(struct gw_req *req, int fd, size_t len, gw_req_write_cb cb, void *arg);

/* Bytes queued on the connection and not yet taken by the kernel. */
size_t gw_req_write_queued(const struct gw_req *req);

/* Ends the request: the response is complete (the last chunk is sent for chunked bodies; a
 * Content-Length response that is short of its length closes the connection after the bytes
 * written so far, so the client sees the truncation). The connection goes on to the next
 * request, or closes. Returns 0, or -EINVAL when no head was sent (the request stays open)
 * or the request already ended. After on_cancel it only releases the request (returns 0). */
int gw_req_finish(struct gw_req *req);

/* Ends the request and closes the connection now (queued writes are dropped: their
 * callbacks fire with an error). For failures after the head went out. */
void gw_req_abort(struct gw_req *req);

/* Convenience: head with Content-Length, the body copied, finish. Returns as
 * gw_req_respond_head; on error the request is still open. */
int gw_req_respond(struct gw_req *req, int status, const struct gw_header *headers,
                   size_t n_headers, const void *body, size_t len);

#endif
