/* liblode: the lode client library.
 *
 * Reads objects from a lode cluster straight into memory the application registered (host
 * memory, or CUDA device memory when a CUDA driver is present), and writes objects from
 * it. A read is served by whichever transport fits: lode's `tcp` fan-out (every data node
 * sends its stripes to the client in parallel over its own connection), `rc` (RDMA, where
 * built and available), or a plain S3 GET over HTTP. When the server declines a transport,
 * or it is not available, the library falls back to plain HTTP and says so in the result.
 *
 *   struct lode_client_config cfg;
 *   lode_client_config_init(&cfg);
 *   cfg.endpoint = "127.0.0.1:9000"; cfg.access_key = ak; cfg.secret_key = sk;
 *   lode_client *c;
 *   if (lode_client_create(&cfg, &c) != 0) -> lode_last_error()
 *   lode_buf *b;
 *   lode_buf_register(c, mem, size, LODE_BUF_HOST, &b);
 *   struct lode_result r;
 *   int rc = lode_get(c, "bucket", "key", NULL, b, 0, &r);   // r.bytes landed at mem
 *   if (rc) -> r.message, lode_client_strerror(rc)
 *   lode_buf_deregister(b);
 *   lode_client_destroy(c);
 *
 * Errors: every function returning int returns 0 or a negative code: a negative errno
 * (-EINVAL, -ENOMEM, -ECONNREFUSED, ...), a LODE_E* code of <lode/errno.h> (LODE_ENOKEY,
 * LODE_ENOBUCKET, LODE_EAUTH, LODE_ETIMEOUT, ...), or a LODE_ERR_* code below. All of them
 * have a text through lode_client_strerror(). Each call also leaves a message saying what
 * failed and why, in its struct lode_result when it has one and in lode_last_error() (per
 * thread) in every case.
 *
 * Threads: a client may be used from any number of threads at once; each request takes its
 * own connection. Callbacks of the asynchronous forms run on a liblode worker thread.
 *
 * Security: the secret key is copied into the client and wiped when it is destroyed; no
 * liblode message ever contains it, nor a data-path token (which grants access to the
 * registered memory for the length of one request).
 */
#ifndef LODE_CLIENT_H
#define LODE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lode/errno.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lode_client lode_client; /* a connection to one cluster endpoint */
typedef struct lode_buf lode_buf;       /* a registered memory region */

/* Client-side error codes, beside those of <lode/errno.h>. They are never sent on any
 * wire; the range [-1999, -1900] is reserved for them. */
enum lode_err {
    LODE_OK = 0,
    LODE_ERR_NO_CUDA = -1900,      /* CUDA buffers need libcuda.so.1 and a device: absent */
    LODE_ERR_CUDA = -1901,         /* a CUDA driver call failed (message names it) */
    LODE_ERR_HTTP = -1902,         /* the server answered with an unexpected HTTP status */
    LODE_ERR_PROTOCOL = -1903,     /* malformed or inconsistent response from the server */
    LODE_ERR_DECLINED = -1904,     /* the server declined the data path and fallback was off */
    LODE_ERR_NO_TRANSPORT = -1905, /* the transport asked for is not available here */
    LODE_ERR_TOO_SMALL = -1906,    /* the object does not fit the buffer space given */
    LODE_ERR_RANGE = -1907,        /* the range is not satisfiable (HTTP 416) */
    LODE_ERR_SERVER = -1908,       /* the server failed (HTTP 5xx other than 503) */
    LODE_ERR_CANCELED = -1909,     /* an async request dropped by lode_client_destroy */
    LODE_ERR_DATA_PATH = -1910,    /* the data path failed after the server accepted */
};

/* How data moves. AUTO takes the best one available and falls back silently (the result
 * says so): rc where the library was built with RDMA, the buffer is host memory and an RDMA
 * device reaches the gateway's rc sources, else tcp for reads and HTTP for writes. TCP and
 * RC ask for that transport, and still fall back to HTTP unless LODE_CLIENT_NO_FALLBACK is
 * set; HTTP always uses plain S3 requests. rc moves reads and writes (the gateway reads a
 * PUT's bytes out of the buffer: a staged upload); tcp moves reads only. */
enum lode_transport {
    LODE_TRANSPORT_AUTO = 0,
    LODE_TRANSPORT_TCP = 1,
    LODE_TRANSPORT_RC = 2,
    LODE_TRANSPORT_HTTP = 3,
};

enum lode_buf_kind {
    LODE_BUF_HOST = 0,             /* ordinary process memory */
    LODE_BUF_CUDA = 1,             /* a CUDA device pointer (CUdeviceptr) of the current context */
};

/* Why a request did not use the transport it tried first. */
enum lode_fallback {
    LODE_FALLBACK_NONE = 0,
    LODE_FALLBACK_UNAVAILABLE,     /* not built, or not usable with this buffer kind */
    LODE_FALLBACK_SESSION,         /* the data session could not be set up */
    LODE_FALLBACK_DECLINED,        /* the server answered x-amz-rdma-reply: 501 */
    LODE_FALLBACK_NO_REPLY,        /* the server ignored the token (no x-amz-rdma-reply) */
    LODE_FALLBACK_REFUSED,         /* the server refused the token (400) */
    LODE_FALLBACK_DATA_PATH,       /* the data connections failed before completing */
};

/* Flags of struct lode_client_config. */
#define LODE_CLIENT_NO_FALLBACK 0x1u   /* a decline or an unusable transport is an error */

struct lode_client_config {
    const char *endpoint;          /* "host:port" of a lode-gateway (or "[v6]:port"); required */
    const char *region;            /* SigV4 region; NULL or "": "us-east-1" */
    const char *access_key;        /* required */
    const char *secret_key;        /* required */
    enum lode_transport transport;
    uint32_t flags;                /* LODE_CLIENT_* */
    /* Longest wait for any single network step (connect, a response, progress of a body,
     * the data of a fan-out read), ms; 0: 30000. */
    uint32_t timeout_ms;
    /* Worker threads of the asynchronous calls, started on first use; 0: 4, at most 64. */
    uint32_t async_threads;
    /* rc: a local address of the RDMA device to use ("10.0.0.5"); NULL: the device the
     * route to the first rc source goes through. Every rc source must be reachable through
     * that one device. */
    const char *rdma_local;
};

/* Zeroes *cfg and sets the defaults (transport AUTO). */
void lode_client_config_init(struct lode_client_config *cfg);

/* Creates a client. Copies everything it keeps from *cfg (the caller may free the strings
 * afterwards). Opens no connection: the first request does. Returns 0 and *out, or -EINVAL
 * (missing or malformed field: the message names it), -ENOMEM; *out is NULL on failure. */
int lode_client_create(const struct lode_client_config *cfg, lode_client **out);

/* Destroys a client: waits for the requests running on its worker threads, completes the
 * queued ones with LODE_ERR_CANCELED (their callbacks run), closes every connection and
 * wipes the secret. Registered buffers must have been deregistered (any left are released
 * here). Must not be called from a liblode callback, nor while another thread is inside a
 * call on this client. NULL is a no-op. */
void lode_client_destroy(lode_client *c);

/* Registers size bytes at ptr for reads and writes. For LODE_BUF_CUDA, ptr is a device
 * pointer of the calling thread's current CUDA context (the library loads libcuda.so.1 on
 * first use; LODE_ERR_NO_CUDA when it is not there or no device). The memory stays owned
 * by the caller and must stay valid until lode_buf_deregister. Returns 0 and *out, or
 * -EINVAL (NULL ptr, size 0), LODE_ERR_NO_CUDA, LODE_ERR_CUDA, -ENOMEM. */
int lode_buf_register(lode_client *c, void *ptr, size_t size, enum lode_buf_kind kind,
                      lode_buf **out);

/* Releases a registration. Returns 0, or -EBUSY while a request uses the buffer (nothing
 * changes then). After 0 the handle is gone; once it returns, no liblode thread touches the
 * memory any more (late data-path writes are fenced off). NULL is -EINVAL. */
int lode_buf_deregister(lode_buf *b);

/* The region of a registration. */
void *lode_buf_ptr(const lode_buf *b);
size_t lode_buf_size(const lode_buf *b);
enum lode_buf_kind lode_buf_kind_of(const lode_buf *b);

#define LODE_ETAG_MAX 128
#define LODE_MSG_MAX 256
#define LODE_CONTENT_RANGE_MAX 96

/* The outcome of one request. Filled entirely by every call that takes one, success or not. */
struct lode_result {
    int status;                    /* the call's return code */
    int http_status;               /* status of the last HTTP response, 0 if none */
    uint64_t bytes;                /* GET: bytes written into the buffer; PUT: bytes stored */
    uint64_t offset;               /* GET: object offset of the first byte written */
    uint64_t object_size;          /* GET: the object's total size when known, else 0 */
    char etag[LODE_ETAG_MAX];      /* as the server sent it (quotes included); "" if none */
    char content_range[LODE_CONTENT_RANGE_MAX]; /* GET 206: the Content-Range value */
    enum lode_transport transport; /* what moved the data: TCP, RC or HTTP */
    bool fell_back;                /* the transport tried first was not the one used */
    enum lode_fallback fallback;   /* why, when fell_back */
    uint32_t sources;              /* fan-out: data sources that sent bytes */
    char message[LODE_MSG_MAX];    /* on failure what went wrong; on a fallback why */
};

/* A byte range of an object: `length` bytes from `offset`; LODE_RANGE_TO_END reads to the
 * end of the object. */
struct lode_range {
    uint64_t offset;
    uint64_t length;
};
#define LODE_RANGE_TO_END UINT64_MAX

/* What to read. A zeroed struct (or NULL) is the whole object. */
struct lode_get_opts {
    const struct lode_range *range; /* NULL: no range */
    uint32_t part_number;          /* 1..10000: one part of a multipart object; 0: none */
};

/* Reads an object (or a range, or a part) into buf at buf_offset. The space available is
 * lode_buf_size(buf) - buf_offset:
 *   - whole object: it must fit, else LODE_ERR_TOO_SMALL and nothing is promised about the
 *     space (it may have been written);
 *   - range or part: at most the space is read, from the start of the range or part;
 *     res->offset and res->bytes say which bytes landed.
 * On success exactly res->bytes bytes at buf_offset hold the object's bytes
 * res->offset.. res->offset + res->bytes - 1. On failure the space may hold anything, but
 * no liblode thread writes it after the call returns. `res` may be NULL. Returns 0 or a
 * negative code (LODE_ENOKEY, LODE_ENOBUCKET, LODE_EAUTH, LODE_ERR_*, -errno). */
int lode_get(lode_client *c, const char *bucket, const char *key,
             const struct lode_get_opts *opts, lode_buf *buf, uint64_t buf_offset,
             struct lode_result *res);

/* Asks for an object's size and ETag (an S3 HEAD): res->object_size, res->etag. For sizing a
 * buffer before lode_get. Returns 0 or a negative code (LODE_ENOKEY, ...). */
int lode_head(lode_client *c, const char *bucket, const char *key, struct lode_result *res);

/* Options of a PUT. A zeroed struct (or NULL) is fine. */
struct lode_put_opts {
    const char *content_type;      /* NULL: none (the server's default) */
};

/* Writes `length` bytes at buf_offset of buf as object bucket/key (a new version replaces
 * an old one, as S3). length 0 stores an empty object. The bytes must not change until the
 * call returns. res->etag gets the ETag. Returns 0 or a negative code. */
int lode_put(lode_client *c, const char *bucket, const char *key, lode_buf *buf,
             uint64_t buf_offset, uint64_t length, const struct lode_put_opts *opts,
             struct lode_result *res);

/* ---- multipart uploads ----
 * For objects above one PUT's limit (the gateway's max-put-size, 5 GiB by default) or written
 * in parallel. lode_upload_create starts an upload (S3 CreateMultipartUpload); parts
 * 1..10000 are then written with lode_upload_part, in any order, from any number of threads
 * at once; each part but the last must be at least 5 MiB (the server checks this when the
 * upload completes: EntityTooSmall). Nothing is visible under the key until
 * lode_upload_complete, which assembles the parts written through the handle in part-number
 * order (the object's ETag is then "<hex>-<parts>"). lode_upload_abort discards them. An
 * upload neither completed nor aborted keeps its parts' space on the server until an abort
 * (any S3 client can send one: lode_upload_id names it). Every handle must be completed or
 * aborted before its client is destroyed. */
typedef struct lode_upload lode_upload;

/* Starts an upload of bucket/key; opts->content_type becomes the object's. Returns 0 and
 * *out, or a negative code (*out NULL). */
int lode_upload_create(lode_client *c, const char *bucket, const char *key,
                       const struct lode_put_opts *opts, lode_upload **out,
                       struct lode_result *res);

/* The server's id of the upload (valid while the handle is). "" for NULL. */
const char *lode_upload_id(const lode_upload *u);

/* Writes `length` bytes at buf_offset of buf as part `part_number` (1..10000), with the
 * transports and fallback rules of lode_put (rc: the gateway reads the part out of the
 * buffer). Writing a number again replaces that part. res->etag gets the part's ETag.
 * Returns 0 or a negative code (the upload goes on: the part may be written again). */
int lode_upload_part(lode_upload *u, uint32_t part_number, lode_buf *buf, uint64_t buf_offset,
                     uint64_t length, struct lode_result *res);

/* Completes the upload with every part written through u (call it once all
 * lode_upload_part calls have returned: -EBUSY otherwise). On success res->etag is the
 * object's ETag and u is freed. On failure (e.g. LODE_ERR_HTTP with EntityTooSmall in the
 * message) u stays valid: write parts again and retry, or abort. */
int lode_upload_complete(lode_upload *u, struct lode_result *res);

/* Aborts the upload (S3 AbortMultipartUpload: its parts are dropped) and frees u, even when
 * the server could not be told (the returned code says so; the upload id was in
 * lode_upload_id). -EBUSY, with u kept, while a part is being written. */
int lode_upload_abort(lode_upload *u, struct lode_result *res);

/* Called once per asynchronous request, on a liblode worker thread, with the request's
 * status and result (valid during the call only). It may submit new requests; it must not
 * destroy the client. */
typedef void (*lode_done_cb)(void *user_data, int status, const struct lode_result *res);

/* lode_get, queued to the client's worker threads. The strings and *opts are copied; the
 * buffer must stay registered until the callback. Returns 0 (then `cb` runs exactly once,
 * with LODE_ERR_CANCELED if the client is destroyed first), or a negative code without
 * calling it (-EINVAL, -ENOMEM, -EAGAIN when the thread cannot be started). */
int lode_get_async(lode_client *c, const char *bucket, const char *key,
                   const struct lode_get_opts *opts, lode_buf *buf, uint64_t buf_offset,
                   lode_done_cb cb, void *user_data);

/* lode_put, queued as lode_get_async. */
int lode_put_async(lode_client *c, const char *bucket, const char *key, lode_buf *buf,
                   uint64_t buf_offset, uint64_t length, const struct lode_put_opts *opts,
                   lode_done_cb cb, void *user_data);

/* Text for any code liblode returns (0, -errno, LODE_E*, LODE_ERR_*). Static; never NULL. */
const char *lode_client_strerror(int code);

/* The message of the last liblode call that failed in the calling thread ("" if none).
 * Valid until the next liblode call in this thread. */
const char *lode_last_error(void);

/* "auto", "tcp", "rc", "http". Static. */
const char *lode_transport_name(enum lode_transport t);

/* Parses those names (case-sensitive). Returns 0, or -EINVAL. */
int lode_transport_parse(const char *s, enum lode_transport *out);

/* "none", "unavailable", "session", "declined", "no-reply", "refused", "data-path". Static. */
const char *lode_fallback_name(enum lode_fallback f);

#ifdef __cplusplus
}
#endif
#endif
