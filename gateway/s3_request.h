/* The S3 request layer: the handler the HTTP server (gateway/server.h) calls, turning each
 * request into an S3 operation over lode-meta and the data path.
 *
 * Per request (struct gw_s3_req, one per HTTP request, owned by this layer):
 *
 *   route (s3_route) -> parse auth (sigv4) -> key lookup (gw_keys, async) -> verify
 *   (constant time) -> bucket check (exists, caller owns it: the worker's bucket cache where
 *   gw_s3_op_bucket_cacheable, else BUCKET_HEAD) -> the operation's handler (s3_bucket.c,
 *   s3_object.c, s3_multipart.c; gw_s3_op_family) -> response, then end.
 *
 * Every response carries x-amz-request-id (the server's request id) and x-amz-id-2; every
 * refusal is an S3 XML error document (none for HEAD). Anonymous requests are refused
 * (AccessDenied): every bucket is private to its owner, the user of the access key that
 * created it; another user gets AccessDenied.
 *
 * Bodies: nothing is read before authentication succeeded (so "100 Continue" goes out only
 * then). A body is decoded by a gw_s3_body pipe: aws-chunked framing and chunk signatures
 * for the STREAMING-* modes, the x-amz-content-sha256 digest for signed payloads; a failure
 * there refuses the request and nothing may have been made visible.
 *
 * Threading: a gw_s3_ctx is shared by every worker (read-only after gw_s3_ctx_init, apart
 * from the thread-safe caches and the metrics it points to, registered before the workers
 * start); a gw_s3_worker, its bucket cache and its requests belong to one loop thread.
 */
#ifndef LODE_GATEWAY_S3_REQUEST_H
#define LODE_GATEWAY_S3_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <pthread.h>

#include "common/buf.h"
#include "common/dp_dc.h"
#include "common/dp_rc.h"
#include "common/dp_server.h"
#include "common/meta_async.h"
#include "common/rpc.h"
#include "gateway/cluster.h"
#include "gateway/config.h"
#include "gateway/fanout.h"
#include "gateway/gc.h"
#include "gateway/nodepool.h"
#include "gateway/s3_bcache.h"
#include "gateway/s3_errdoc.h"
#include "gateway/s3_route.h"
#include "gateway/server.h"
#include "gateway/sigv4.h"
#include "gateway/sigv4_stream.h"
#include "gateway/xml.h"
#include "meta.pb-c.h"

/* ---- process-wide context ---- */

/* The layer's metrics, registered once by the daemon before the workers start (registration
 * is not thread-safe) and shared by every worker through the context. */
struct gw_s3_metrics {
    struct cmn_counter *bucket_hit;    /* bucket checks answered by the worker's cache */
    struct cmn_counter *bucket_miss;   /* bucket checks that asked lode-meta */
    struct cmn_counter *get_spliced;   /* GetObject body bytes sent from pipes (no copy) */
    struct cmn_counter *get_buffered;  /* ... and from the gateway's memory */
    struct gw_gc_metrics gc;           /* the collector's (worker 0 with run_gc) */
    struct gw_fanout_metrics fanout;   /* fan-out GETs, declines, fallbacks */
};

/* Registers lode_gateway_bucket_cache_total{result=hit|miss},
 * lode_gateway_get_body_bytes_total{path=spliced|buffered} and the collector's
 * lode_gateway_gc_* in m. Returns 0 or -ENOMEM. */
int gw_s3_metrics_register(struct cmn_metrics *m, struct gw_s3_metrics *out);

struct gw_s3_ctx {
    const struct gw_config *cfg;       /* borrowed; outlives the server */
    struct gw_cluster *cluster;        /* borrowed */
    struct gw_keys *keys;              /* borrowed */
    struct gw_route_config route;      /* base domains from cfg */
    const struct gw_nodepool_metrics *pool_metrics; /* optional */
    const struct gw_s3_metrics *metrics; /* optional, borrowed */
    /* The GC collector runs on worker 0's loop when set. */
    bool run_gc;
    /* Worker 0 also runs the cluster-map refresher (gw_cluster_start). */
    bool run_refresher;
    /* Each worker keeps bucket records this long (cfg's bucket-cache-ttl; 0: none). */
    uint64_t bucket_cache_ttl_ms;
    /* Fan-out: the advertised data listener of each worker (data-address set), filled as
     * the workers start (port 0 binds any free port); read under data_lock. */
    const struct gw_fanout_metrics *fo_metrics;
    unsigned n_data_addrs;
    pthread_mutex_t data_lock;
    char data_addrs[GW_WORKERS_MAX][GW_ADDR_MAX];
    /* rc: each worker's rc listener (rdma-address set), filled as data_addrs (under
     * data_lock); "" for a worker whose listener is not up. */
    unsigned n_rc_addrs;
    char rc_addrs[GW_WORKERS_MAX][GW_ADDR_MAX];
    /* dc: the series of each worker's dc instance (worker w feeds entry w only), registered
     * before the workers start; NULL when dc is off. */
    struct cmn_dp_dc_metrics *dc_metrics;
};

/* Source ids of gateway workers in data sessions: GW_SOURCE_GATEWAY | worker index. */
#define GW_SOURCE_GATEWAY 0x80000000u
/* Clients whose in-flight cap a worker tracks at once (gateway/s3_fanout.c). */
#define GW_FO_CLIENTS 64
struct gw_fo_clients;
struct gw_fo_clients *gw_fo_clients_new(uint64_t cap);
void gw_fo_clients_free(struct gw_fo_clients *t);

/* Fills ctx from a finished configuration and the shared caches (all borrowed). */
void gw_s3_ctx_init(struct gw_s3_ctx *ctx, const struct gw_config *cfg,
                    struct gw_cluster *cluster, struct gw_keys *keys);

/* The handler vtable to give the server (gw_server_opts.handler) with handler_data = the
 * gw_s3_ctx. Its worker_start creates the loop's meta client and node pool (and on worker 0
 * the refresher and the collector when asked); worker_stop closes them. */
extern const struct gw_handler gw_s3_handler;

/* ---- per loop ---- */

struct gw_s3_worker {
    struct gw_s3_ctx *ctx;
    unsigned index;
    uv_loop_t *loop;
    struct cmn_meta_async *meta;
    struct gw_nodepool *pool;
    struct gw_gc *gc;                  /* worker 0 with run_gc */
    bool refresher;                    /* this loop runs the map refresher */
    struct gw_bcache *buckets;         /* NULL when bucket_cache_ttl_ms is 0 */
    struct cmn_dp_server *dp;          /* this worker's data listener, or NULL */
    struct cmn_dp_rc *rc;              /* this worker's rc listener, or NULL */
    struct cmn_dp_dc *dc;              /* this worker's DC initiators (dc-device/dc-address
                                          set, mlx5dv build), or NULL: DC tokens declined */
    uint32_t source_id;                /* GW_SOURCE_GATEWAY | index */
    struct gw_fo_clients *fo_clients;  /* per-client in-flight caps */
    struct cmn_arena *upload_arena;    /* registered with rc and dc: staged uploads land here */
    uint64_t fo_spread;                /* fan-out requests so far (replica rotation) */
};

/* ---- per request (shared by s3_request.c, s3_bucket.c, s3_object.c, s3_multipart.c) ---- */

struct gw_s3_req;
typedef void (*gw_s3_meta_cb)(struct gw_s3_req *r, const struct cmn_rpc_result *res);
/* Payload slices of a body, in order; return how many bytes were taken (fewer pauses the
 * body until gw_s3_body_resume). */
typedef size_t (*gw_s3_data_cb)(struct gw_s3_req *r, const uint8_t *p, size_t n);
/* The body ended: GW_S3_OK when complete and verified (signatures, digest), else why not
 * (err filled). */
typedef void (*gw_s3_end_cb)(struct gw_s3_req *r, const struct gw_s3_err *err);

struct gw_s3_req {
    struct gw_req *req;
    struct gw_s3_worker *w;
    const struct gw_http_request *http;
    const struct gw_request_head *head;
    struct gw_route route;
    struct gw_sigv4_auth auth;
    struct gw_keys_req key_req;
    bool key_pending;                  /* key_req is waiting for meta */
    uint8_t signing_key[GW_SIGV4_KEY_SIZE];
    char user[GW_KEY_USER_MAX + 1];    /* the caller (owner of what it creates) */
    Lode__BucketRecord *bucket;        /* BUCKET_HEAD answer for bucket-level checks */
    int64_t now_ms;                    /* when the request arrived (wall clock) */
    bool head_request;

    /* lifecycle */
    bool cancelled;                    /* the connection is gone */
    bool ended;
    unsigned busy;                     /* async calls in flight that hold the request */

    /* body pipe */
    gw_s3_data_cb on_data;
    gw_s3_end_cb on_end;
    bool body_started, body_ended;
    bool chunked_on;                   /* aws-chunked decoding */
    struct gw_chunked chunked;
    bool sha_on;                       /* x-amz-content-sha256 is a digest */
    struct gw_sigv4_body sha;
    struct gw_s3_err body_err;         /* first failure while decoding */
    uint64_t body_limit;               /* collect: the most bytes accepted */
    struct cmn_buf collected;          /* collect: the whole (decoded) body */
    /* An external body source (gw_s3_body_start_external): what gw_s3_body_resume wakes
     * instead of the connection. */
    void (*body_ext_resume)(void *data);
    void *body_ext_data;

    /* the operation's own state (s3_object.c, s3_multipart.c) */
    void *op;
    void (*op_free)(struct gw_s3_req *r);
    /* Called instead of ending at once when the connection goes away while no meta call is
     * in flight: the operation stops its own work and ends the request (gw_s3_end). */
    void (*op_cancel)(struct gw_s3_req *r);
    unsigned depth;                    /* inside a callback: freeing waits for its return */
    size_t pending_payload;            /* aws-chunked: payload bytes handed out, not taken */
};

/* ---- helpers for the operation handlers ---- */

/* Sends an error document (none for HEAD) and ends the request. */
void gw_s3_fail(struct gw_s3_req *r, const struct gw_s3_err *err);
/* The same for a code with an optional printf message. */
void gw_s3_failf(struct gw_s3_req *r, enum gw_s3_error code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a lode status (meta, data path) to the S3 error and fails with the message. */
void gw_s3_fail_lode(struct gw_s3_req *r, int status, const char *msg);
/* gw_s3_fail with extra response headers (may be NULL). */
void gw_s3_fail_headers(struct gw_s3_req *r, const struct gw_s3_err *err,
                        const struct gw_header *extra, size_t n_extra);
/* Answers `status` with the XML document the writer holds (taken) and ends the request;
 * a writer error gives InternalError. Extra headers may be NULL. */
void gw_s3_respond_xml(struct gw_s3_req *r, int status, struct gw_xml_w *xw,
                       const struct gw_header *extra, size_t n_extra);
/* Answers with headers and no body (Content-Length 0, or none for 204/304) and ends. */
void gw_s3_respond_empty(struct gw_s3_req *r, int status, const struct gw_header *extra,
                         size_t n_extra);
/* Adds x-amz-request-id and x-amz-id-2 after the n headers in h (which must have room for
 * 2 more); returns the new count. */
size_t gw_s3_std_headers(struct gw_s3_req *r, struct gw_header *h, size_t n);
/* Ends the request (finish) and frees its state; for handlers that wrote their response
 * with gw_req_* themselves. With abort, closes the connection (a failure after the head). */
void gw_s3_end(struct gw_s3_req *r, bool abort);

/* For the operation's own callbacks that hold the request (r->busy++ when started):
 * releases one hold; frees the request when it has ended and nothing holds it. */
void gw_s3_unbusy(struct gw_s3_req *r);

/* Calls lode-meta on the worker's client; cb runs later on the loop, unless the request was
 * cancelled meanwhile (then the request is ended instead). On a submission failure, fails
 * the request (cb never runs) and returns false. `msg` is only read during the call. */
bool gw_s3_meta_call(struct gw_s3_req *r, unsigned method, ProtobufCMessage *msg,
                     gw_s3_meta_cb cb);
/* Checks a meta answer to a Command (frame status, then CommandResult.status) and unpacks
 * the result: NULL after failing the request. Free with lode__command_result__free_unpacked. */
Lode__CommandResult *gw_s3_command_result(struct gw_s3_req *r, const struct cmn_rpc_result *res);
/* Unpacks a meta answer of type `desc`; NULL after failing the request. */
ProtobufCMessage *gw_s3_unpack(struct gw_s3_req *r, const ProtobufCMessageDescriptor *desc,
                               const struct cmn_rpc_result *res);
/* Initialises a Command (schema version, now) for op `op_case`. */
void gw_s3_command_init(struct gw_s3_req *r, Lode__Command *cmd, Lode__Command__OpCase op_case);

/* Starts reading the body through the pipe (decoding, verifying): on_data gets payload, and
 * on_end the outcome. Sends 100 Continue when asked. Returns false after failing the
 * request (bad streaming headers). */
bool gw_s3_body_start(struct gw_s3_req *r, gw_s3_data_cb on_data, gw_s3_end_cb on_end);
/* Resumes a paused body. */
void gw_s3_body_resume(struct gw_s3_req *r);
/* Starts a body that does not come from the connection (the staged RDMA PUT,
 * gateway/s3_fanout.h): the request's own body must be empty (Content-Length 0, not
 * aws-chunked, x-amz-content-sha256 UNSIGNED-PAYLOAD or the digest of nothing) and is read to
 * its end here, so the connection stays reusable. The source hands payload, in order, with
 * gw_s3_body_feed, which returns what on_data took (fewer: the consumer is full; `resume`
 * runs with `data` once it calls gw_s3_body_resume), and ends it with gw_s3_body_feed_end; on_end then
 * runs as for a body from the connection. Returns false after failing the request (400 for
 * a body that is not empty). */
bool gw_s3_body_start_external(struct gw_s3_req *r, gw_s3_data_cb on_data, gw_s3_end_cb on_end,
                               void (*resume)(void *data), void *data);
/* Payload from the external source; returns the bytes taken (all of them once the body has
 * ended or the request ended, so the caller never waits for a dead consumer). */
size_t gw_s3_body_feed(struct gw_s3_req *r, const uint8_t *p, size_t n);
/* The external source ended: GW_S3_OK when it delivered everything, else the error (msg may
 * be NULL for the code's default message). */
void gw_s3_body_feed_end(struct gw_s3_req *r, enum gw_s3_error code, const char *msg);
/* Reads the whole decoded body into r->collected (at most `limit` bytes, else
 * MaxMessageLengthExceeded / the given error) and calls on_end. */
bool gw_s3_body_collect(struct gw_s3_req *r, uint64_t limit, gw_s3_end_cb on_end);
/* The aws-chunked trailer `name` once the body ended, or NULL. */
const char *gw_s3_body_trailer(struct gw_s3_req *r, const char *name);
/* The decoded length the body will have: x-amz-decoded-content-length for aws-chunked,
 * Content-Length otherwise; -1 when unknown (chunked transfer without it). */
int64_t gw_s3_body_length(const struct gw_s3_req *r);

/* "/bucket" or "/bucket/key" for Location headers and documents, into out (cap bytes). */
void gw_s3_resource(const struct gw_s3_req *r, char *out, size_t cap);
/* The owner element of this request's user. */
struct gw_owner gw_s3_owner(const struct gw_s3_req *r);

/* Forgets the worker's cached record of the request's bucket (deleted, or meta said it
 * does not exist), so that the next request on it asks meta. */
void gw_s3_bucket_forget(struct gw_s3_req *r);

/* ---- routing to the handlers (pure) ---- */

/* Which handler serves an operation, and what the pipeline checks before calling it. */
enum gw_s3_family {
    GW_S3_FAMILY_SERVICE,              /* ListBuckets, CreateBucket: no bucket check */
    GW_S3_FAMILY_BUCKET,               /* s3_bucket.c */
    GW_S3_FAMILY_OBJECT,               /* s3_object.c (and s3_put.c) */
    GW_S3_FAMILY_MULTIPART,            /* s3_multipart.c (and s3_put.c for parts) */
};

/* The family of a routed operation; GW_OP_NONE and unknown values are GW_S3_FAMILY_OBJECT,
 * whose dispatcher refuses what it does not know (NotImplemented). */
enum gw_s3_family gw_s3_op_family(enum gw_s3_op op);

/* Whether the pipeline checks the bucket (exists, the caller owns it) before the handler:
 * every operation but ListBuckets and CreateBucket. */
bool gw_s3_op_checks_bucket(enum gw_s3_op op);

/* Whether that check may be answered by the worker's bucket cache: object and multipart
 * operations and the object listings, which all ask meta about the bucket again anyway
 * (a bucket deleted meanwhile fails there). Bucket-level answers made from the check alone
 * (HeadBucket, GetBucketLocation, the ACL and sub-resource answers) always ask meta, so
 * that a deleted bucket is never reported as existing. */
bool gw_s3_op_bucket_cacheable(enum gw_s3_op op);

/* ---- x-lode-erasure (pure) ---- */

/* The request header that picks a bucket's erasure scheme at CreateBucket, and that
 * HeadBucket answers with when the bucket has its own scheme. */
#define GW_S3_ERASURE_HEADER "x-lode-erasure"

/* Parses "K+M" (decimal, no sign, no spaces, no leading zeros): 1 <= K <= GW_EC_MAX_K,
 * 0 <= M <= GW_EC_MAX_M. GW_S3_OK with *k and *m, else GW_S3_INVALID_ARGUMENT with a message
 * naming the limits and ArgumentName/ArgumentValue extras. */
enum gw_s3_error gw_s3_erasure_parse(struct gw_str v, uint32_t *k, uint32_t *m,
                                     struct gw_s3_err *err);

/* ---- operations (each ends the request, sooner or later) ---- */

void gw_s3_bucket_op(struct gw_s3_req *r);     /* s3_bucket.c: bucket-level operations */
void gw_s3_object_op(struct gw_s3_req *r);     /* s3_object.c: object operations */
void gw_s3_multipart_op(struct gw_s3_req *r);  /* s3_multipart.c: multipart operations */
/* The standard content headers stored with an object and returned on reads. */
#define GW_S3_STD_OBJECT_HEADERS 5
extern const char *const gw_s3_std_object_headers[GW_S3_STD_OBJECT_HEADERS];

/* Data-path writes (s3_put.c): PutObject, CopyObject, UploadPart and
 * UploadPartCopy. */
void gw_s3_put_object(struct gw_s3_req *r);
void gw_s3_copy_object(struct gw_s3_req *r);
void gw_s3_upload_part(struct gw_s3_req *r);
/* Whether the operation is one of s3_multipart.c's. */
bool gw_s3_is_multipart_op(enum gw_s3_op op);

#endif
