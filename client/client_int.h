/* liblode internals shared by client.c (handles, connections, errors), get.c (GET and PUT),
 * fanout.c (the tcp and rc fan-out, staged rc PUTs, the data session) and async.c (worker threads). None of these
 * symbols leaves liblode.so: only lode_* names are exported.
 */
#ifndef LODE_CLIENT_CLIENT_INT_H
#define LODE_CLIENT_CLIENT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <lode/client.h>

#include "client/cuda.h"
#include "client/http.h"
#include "client/s3req.h"
#include "common/buf.h"
#include "common/err.h"

#define LC_IDLE_MAX 16                 /* keep-alive connections kept per client */
#define LC_DEFAULT_TIMEOUT_MS 30000
#define LC_DEFAULT_ASYNC_THREADS 4
#define LC_MAX_ASYNC_THREADS 64
#define LC_ERROR_BODY_MAX (64 * 1024)  /* error documents read for their Code and Message */

struct lc_fanout;
struct lc_async;

struct lode_client {
    char *host;                    /* without brackets */
    uint16_t port;
    char *hostport;                /* the Host header: the endpoint as configured */
    char *region, *access_key, *secret_key;
    char *rdma_local;              /* rc: local address choosing the RDMA device, or NULL */
    enum lode_transport transport;
    uint32_t flags, timeout_ms, async_threads;

    pthread_mutex_t lock;          /* idle, bufs, cuda_* */
    struct lc_http_conn *idle[LC_IDLE_MAX];
    size_t n_idle;
    struct lode_buf *bufs;
    bool cuda_tried;
    int cuda_rc;
    struct cmn_err cuda_err;
    struct lc_cuda cuda;

    struct lc_fanout *fanout;      /* fanout.c; created with the client */
    struct lc_async *async;        /* async.c; threads started on first use */
};

struct lode_buf {
    lode_client *c;
    void *ptr;
    size_t size;
    enum lode_buf_kind kind;
    lc_cucontext ctx;              /* CUDA: the allocation's context */
    unsigned users;                /* requests using it (under c->lock) */
    struct lode_buf *prev, *next;
};

/* ---- client.c ---- */

/* Sets the calling thread's lode_last_error() text. */
void lc_set_last_error(const char *msg);

/* Takes a buffer for a request (users++), after checking that [off, off+len) lies in it.
 * Returns 0 or -EINVAL with a message. */
int lc_buf_hold(struct lode_buf *b, uint64_t off, uint64_t len, struct cmn_err *err);
void lc_buf_release(struct lode_buf *b);

/* The loaded CUDA driver, loading it on first use. Returns 0 or its failure (remembered). */
int lc_client_cuda(lode_client *c, const struct lc_cuda **cu, struct cmn_err *err);

/* One HTTP exchange on a pooled connection. */
struct lc_call {
    struct lc_http_conn *conn;
    struct lc_http_resp *resp;     /* malloc'd */
};

/* Formats and signs `q`, sends it with its body (body_len bytes from `body`, or from `src`
 * when body is NULL) on an idle connection or a new one, and reads the response head. A
 * reused connection the server had closed is replaced once, transparently. Returns 0 with
 * call->resp set, or a negative code with a message (call is then empty). */
int lc_call_start(lode_client *c, const struct lc_s3_req *q, const void *body,
                  uint64_t body_len, const struct lc_http_source *src, struct lc_call *call,
                  struct cmn_err *err);

/* Reads a body of at most `limit` bytes into `out`. */
int lc_call_read_small(lode_client *c, struct lc_call *call, struct cmn_buf *out, size_t limit,
                       struct cmn_err *err);

/* For a response that is not the expected success: reads the error document (if small),
 * sets the code from the status and S3 error code and a message "<what>: HTTP <status>
 * <Code>: <Message>". s3code (may be NULL) gets the Code. Returns the code. */
int lc_call_fail(lode_client *c, struct lc_call *call, const char *what, char *s3code,
                 size_t s3code_cap, struct cmn_err *err);

/* Returns the connection to the pool when reusable, else closes it; frees the head. */
void lc_call_end(lode_client *c, struct lc_call *call);

/* The error code for an HTTP status and S3 error code. */
int lc_status_error(int status, const char *s3code);

/* Copies a header value (or "") into dst. */
void lc_copy_header(const struct lc_http_resp *r, const char *name, char *dst, size_t cap);

/* ---- get.c ---- */

/* A result's start (zeroed, transport HTTP) and end (status, message, the thread's last
 * error). lc_result_finish returns rc. */
void lc_result_init(struct lode_result *res);
int lc_result_finish(struct lode_result *res, int rc, const struct cmn_err *err);

/* What a PUT writes: an object (query NULL) or a part of a multipart upload (query
 * "partNumber=N&uploadId=ID"). `what` names the operation in messages ("PUT", "UploadPart"). */
struct lc_put_target {
    const char *bucket, *key;
    const char *query;
    const char *what;
};

/* lode_put for either target: rc staged where usable, else a body; the fallback rules of
 * lode_put. Fills res entirely and returns its status. */
int lc_put(lode_client *c, const struct lc_put_target *t, lode_buf *buf, uint64_t buf_offset,
           uint64_t length, const struct lode_put_opts *opts, struct lode_result *res);

/* A GET as lode_get resolved it. */
struct lc_get_args {
    const char *bucket, *key;
    lode_buf *buf;
    uint64_t buf_off;
    uint64_t space;                /* buf->size - buf_off */
    bool ranged;                   /* a Range header is sent */
    uint64_t r_off;                /* ranged: the first byte asked for */
    uint64_t want;                 /* ranged: bytes asked for (<= space); else space */
    uint32_t part;                 /* 0 or the part number */
    char range[64];                /* the Range value */
    char query[32];                /* "partNumber=N" or "" */
    struct lc_cuda_stage *stage;   /* CUDA buffers: the staging into device memory */
};

/* Validates a plain GET response in call (status, Content-Range, lengths) and reads its
 * body into the destination; fills res (bytes, offset, object_size, etag, content_range).
 * Ends the call either way. Returns 0 or a negative code with a message. */
int lc_get_consume(lode_client *c, struct lc_call *call, const struct lc_get_args *a,
                   struct lode_result *res, struct cmn_err *err);

/* ---- fanout.c ---- */

#define LC_FALLBACK 1              /* lc_fanout_get: not served, do a plain GET */

int lc_fanout_create(struct lc_fanout **out);
void lc_fanout_destroy(struct lc_fanout *f);

/* Tries a fan-out GET over the client's transport: tcp, or rc (RDMA, where built and an RDMA
 * device reaches the session's rc sources; AUTO prefers it; device memory is registered as a
 * dma-buf, and AUTO goes on with tcp where the NIC will not take a buffer). Returns 0
 * (served; res filled, res->transport says which), LC_FALLBACK (not served: *why and err say
 * why, the window is fenced and nothing more will be written; when the server declined with
 * the object in the body, it has been read and *served_by_body is true), or a negative code
 * (final). */
int lc_fanout_get(lode_client *c, const struct lc_get_args *a, struct lode_result *res,
                  enum lode_fallback *why, bool *served_by_body, struct cmn_err *err);

/* Tries a staged rc PUT or UploadPart (transport RC or AUTO, host or device memory, at least
 * 1 byte): registers [buf + off, + len) as a window the gateway RDMA-READs, and sends the
 * request with an rc1 token
 * and no body. Returns 0 (stored; res->etag, res->bytes, res->transport set), LC_FALLBACK
 * (not served, nothing stored: *why and err say why; LODE_FALLBACK_UNAVAILABLE and _SESSION
 * mean rc is not usable here; the window is deregistered, so the caller may send a plain
 * PUT), or a negative code (final). */
int lc_fanout_put(lode_client *c, const struct lc_put_target *t, lode_buf *buf,
                  uint64_t off, uint64_t len, const struct lode_put_opts *opts,
                  struct lode_result *res, enum lode_fallback *why, struct cmn_err *err);

/* ---- async.c ---- */

void lc_async_destroy(struct lc_async *a);

#endif
