/* The S3 request layer: per-worker set-up, the per-request pipeline (route, authenticate,
 * check the bucket, dispatch), the body pipe and the response helpers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc_methods.h"
#include "gateway/gc.h"
#include "gateway/s3_fanout.h"
#include "gateway/s3_request.h"
#include "gateway/s3_xml.h"
#include "lode/errno.h"

#define COMMAND_VERSION 1
#define LOG_CTX "s3"

/* ---- context and workers ---------------------------------------------------------------- */

void gw_s3_ctx_init(struct gw_s3_ctx *ctx, const struct gw_config *cfg,
                    struct gw_cluster *cluster, struct gw_keys *keys)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = cfg;
    ctx->cluster = cluster;
    ctx->keys = keys;
    ctx->route.base_domains = (const char *const *)cfg->domains;
    ctx->route.n_base_domains = cfg->n_domains;
    ctx->run_gc = cfg->gc;
    ctx->run_refresher = true;
    ctx->bucket_cache_ttl_ms = cfg->bucket_cache_ttl_ms;
    pthread_mutex_init(&ctx->data_lock, NULL);
    ctx->n_data_addrs = cfg->data_address ? cfg->n_workers : 0;
    for (unsigned i = 0; i < ctx->n_data_addrs && cfg->data_adv_port; i++)
        snprintf(ctx->data_addrs[i], sizeof(ctx->data_addrs[i]), "%s:%u", cfg->data_adv_host,
                 (unsigned)cfg->data_adv_port + i);
    ctx->n_rc_addrs = cfg->rdma_address ? cfg->n_workers : 0;
    for (unsigned i = 0; i < ctx->n_rc_addrs && cfg->rdma_port; i++)
        snprintf(ctx->rc_addrs[i], sizeof(ctx->rc_addrs[i]), "%s:%u", cfg->rdma_host,
                 (unsigned)cfg->rdma_port + i);
}

int gw_s3_metrics_register(struct cmn_metrics *m, struct gw_s3_metrics *out)
{
    static const char help[] = "Bucket checks (exists, owner, erasure scheme) answered by "
                               "the worker's bucket cache (hit) or by lode-meta (miss)";
    out->bucket_hit = cmn_metrics_counter(m, "lode_gateway_bucket_cache_total",
                                          "result=\"hit\"", help);
    out->bucket_miss = cmn_metrics_counter(m, "lode_gateway_bucket_cache_total",
                                           "result=\"miss\"", help);
    static const char help_get[] = "GetObject body bytes sent to clients, spliced from the "
                                   "nodes' sockets through pipes or from the gateway's memory";
    out->get_spliced = cmn_metrics_counter(m, "lode_gateway_get_body_bytes_total",
                                           "path=\"spliced\"", help_get);
    out->get_buffered = cmn_metrics_counter(m, "lode_gateway_get_body_bytes_total",
                                            "path=\"buffered\"", help_get);
    if (!out->bucket_hit || !out->bucket_miss || !out->get_spliced || !out->get_buffered)
        return -ENOMEM;
    int rc = gw_fanout_metrics_register(m, &out->fanout);
    if (rc)
        return rc;
    return gw_gc_metrics_register(m, &out->gc);
}

static int worker_start(void *data, unsigned index, uv_loop_t *loop, void **out)
{
    struct gw_s3_ctx *ctx = data;
    const struct gw_config *cfg = ctx->cfg;
    struct gw_s3_worker *w = calloc(1, sizeof(*w));
    struct cmn_err err;
    int rc;

    if (!w)
        return -ENOMEM;
    w->ctx = ctx;
    w->index = index;
    w->loop = loop;
    struct cmn_meta_async_config mc = {.addrs = cfg->meta, .secret = cfg->secret,
                                       .secret_len = cfg->secret_len};
    cmn_err_clear(&err);
    if ((rc = cmn_meta_async_create(loop, &mc, &w->meta, &err))) {
        LOG_ERROR(LOG_CTX, "worker %u: meta client: %s", index, cmn_err_text(&err));
        free(w);
        return rc;
    }
    struct gw_nodepool_config pc = GW_NODEPOOL_CONFIG_DEFAULT;
    pc.loop = loop;
    pc.cluster = ctx->cluster;
    pc.secret = cfg->secret;
    pc.secret_len = cfg->secret_len;
    pc.metrics = ctx->pool_metrics;
    if ((rc = gw_nodepool_create(&pc, &w->pool)))
        goto fail;
    if (ctx->bucket_cache_ttl_ms) {
        struct gw_bcache_config bc = GW_BCACHE_CONFIG_DEFAULT;
        bc.ttl_ms = ctx->bucket_cache_ttl_ms;
        if ((rc = gw_bcache_create(&bc, &w->buckets)))
            goto fail;
    }
    if (cfg->data_address && (rc = gw_s3_worker_start_data(w)))
        goto fail;
    if (cfg->rdma_address && (rc = gw_s3_worker_start_rc(w)))
        goto fail;
    if (cfg->dc_enabled && (rc = gw_s3_worker_start_dc(w)))
        goto fail;
    if (index == 0 && ctx->run_refresher) {
        if ((rc = gw_cluster_start(ctx->cluster, loop, w->meta)))
            goto fail;
        w->refresher = true;
    }
    if (index == 0 && ctx->run_gc) {
        struct gw_gc_config gc = GW_GC_CONFIG_DEFAULT;
        gc.loop = loop;
        gc.meta = w->meta;
        gc.pool = w->pool;
        gc.cluster = ctx->cluster;
        gc.interval_ms = cfg->gc_interval_ms ? cfg->gc_interval_ms : gc.interval_ms;
        gc.batch = cfg->gc_batch > 0 ? (uint32_t)cfg->gc_batch : gc.batch;
        gc.delete_timeout_ms = (uint32_t)cfg->node_timeout_ms;
        gc.meta_timeout_ms = (uint32_t)cfg->meta_timeout_ms;
        gc.handles = ctx->metrics ? &ctx->metrics->gc : NULL;
        if ((rc = gw_gc_create(&gc, &w->gc)) || (rc = gw_gc_start(w->gc)))
            goto fail;
    }
    *out = w;
    return 0;
fail:
    LOG_ERROR(LOG_CTX, "worker %u: start failed: %s", index, lode_strerror(rc));
    /* Nothing ran on the loop yet: closing defers to it, and the server runs the loop of a
     * worker that failed to start only to close; free what holds no handle. */
    if (w->gc)
        gw_gc_close(w->gc, NULL, NULL);
    if (w->refresher)
        gw_cluster_stop(ctx->cluster, NULL, NULL);
    if (w->pool)
        gw_nodepool_close(w->pool, NULL, NULL);
    if (w->dp)
        cmn_dp_server_close(w->dp, NULL, NULL);
#ifdef HAVE_RDMA
    if (w->rc)
        cmn_dp_rc_close(w->rc, NULL, NULL);
#endif
#ifdef HAVE_MLX5DV
    if (w->dc)
        cmn_dp_dc_close(w->dc, NULL, NULL);
#endif
    gw_fo_clients_free(w->fo_clients);
    cmn_meta_async_close(w->meta, NULL, NULL);
    gw_bcache_destroy(w->buckets);
    /* no transfer ever ran; a registration still pending its close keeps its pages pinned
     * until then, which unmapping does not disturb */
    gw_s3_worker_free_upload_arena(w);
    free(w);
    return rc;
}

static void worker_closed(void *data)
{
    struct gw_s3_worker *w = data;
    /* Seven closes were started; the last one frees. */
    if (--w->index == 0) {
        gw_bcache_destroy(w->buckets);
        gw_fo_clients_free(w->fo_clients);
        gw_s3_worker_free_upload_arena(w); /* rc and dc closed: no registration is left */
        free(w);
    }
}

static void worker_stop(void *data, unsigned index, void *worker_data)
{
    struct gw_s3_worker *w = worker_data;
    (void)data;
    (void)index;
    /* index is reused as the count of closes still to complete. */
    w->index = 7;
    if (w->dp)
        cmn_dp_server_close(w->dp, worker_closed, w);
    else
        w->index--;
#ifdef HAVE_RDMA
    if (w->rc)
        cmn_dp_rc_close(w->rc, worker_closed, w);
    else
        w->index--;
#else
    w->index--;
#endif
#ifdef HAVE_MLX5DV
    if (w->dc)
        cmn_dp_dc_close(w->dc, worker_closed, w);
    else
        w->index--;
#else
    w->index--;
#endif
    if (w->gc)
        gw_gc_close(w->gc, worker_closed, w);
    else
        w->index--;
    if (w->refresher)
        gw_cluster_stop(w->ctx->cluster, worker_closed, w);
    else
        w->index--;
    gw_nodepool_close(w->pool, worker_closed, w);
    cmn_meta_async_close(w->meta, worker_closed, w);
}

/* ---- request lifecycle ------------------------------------------------------------------ */

static void req_free(struct gw_s3_req *r)
{
    if (r->op_free)
        r->op_free(r);
    if (r->chunked_on)
        gw_chunked_free(&r->chunked);
    if (r->sha_on)
        gw_sigv4_body_free(&r->sha);
    cmn_buf_free(&r->collected);
    if (r->bucket)
        lode__bucket_record__free_unpacked(r->bucket, NULL);
    gw_route_free(&r->route);
    gw_key_wipe(&r->key_req.key);
    memset(r->signing_key, 0, sizeof(r->signing_key));
    free(r);
}

/* Callbacks into this layer hold the request so that ending it inside does not free it
 * under the caller's feet. */
static void hold(struct gw_s3_req *r)
{
    r->depth++;
}

static void release(struct gw_s3_req *r)
{
    if (--r->depth == 0 && r->ended && r->busy == 0)
        req_free(r);
}

void gw_s3_unbusy(struct gw_s3_req *r)
{
    r->busy--;
    if (r->depth == 0 && r->ended && r->busy == 0)
        req_free(r);
}

void gw_s3_end(struct gw_s3_req *r, bool abort)
{
    if (r->ended)
        return;
    r->ended = true;
    if (abort)
        gw_req_abort(r->req);
    else if (gw_req_finish(r->req) != 0)
        gw_req_abort(r->req);
    if (r->depth == 0 && r->busy == 0)
        req_free(r);
}

size_t gw_s3_std_headers(struct gw_s3_req *r, struct gw_header *h, size_t n)
{
    const char *id = gw_req_id(r->req);
    h[n].name = GW_STR("x-amz-request-id");
    h[n].value = (struct gw_str){id, strlen(id)};
    h[n + 1].name = GW_STR("x-amz-id-2");
    h[n + 1].value = (struct gw_str){id, strlen(id)};
    return n + 2;
}

void gw_s3_resource(const struct gw_s3_req *r, char *out, size_t cap)
{
    if (!r->route.bucket[0])
        snprintf(out, cap, "/");
    else if (r->route.key)
        snprintf(out, cap, "/%s/%s", r->route.bucket, r->route.key);
    else
        snprintf(out, cap, "/%s", r->route.bucket);
}

struct gw_owner gw_s3_owner(const struct gw_s3_req *r)
{
    return (struct gw_owner){.id = r->user, .display_name = r->user};
}

static void respond(struct gw_s3_req *r, int status, const struct gw_header *extra,
                    size_t n_extra, const char *ctype, const void *body, size_t len)
{
    struct gw_header h[40];
    size_t n = 0;
    if (n_extra > 36)
        n_extra = 36;
    for (size_t i = 0; i < n_extra; i++)
        h[n++] = extra[i];
    if (ctype) {
        h[n].name = GW_STR("Content-Type");
        h[n].value = (struct gw_str){ctype, strlen(ctype)};
        n++;
    }
    n = gw_s3_std_headers(r, h, n);
    int rc;
    if (r->head_request || status == 204 || status == 304) {
        rc = gw_req_respond_head(r->req, status, h, n,
                                 status == 204 || status == 304 ? GW_HTTP_LEN_NONE
                                                                : (int64_t)len);
    } else {
        rc = gw_req_respond(r->req, status, h, n, body, len);
        if (rc == 0) {
            /* gw_req_respond finished the request itself. */
            r->ended = true;
            if (r->depth == 0 && r->busy == 0)
                req_free(r);
            return;
        }
    }
    gw_s3_end(r, rc != 0);
}

void gw_s3_fail(struct gw_s3_req *r, const struct gw_s3_err *err)
{
    gw_s3_fail_headers(r, err, NULL, 0);
}

void gw_s3_fail_headers(struct gw_s3_req *r, const struct gw_s3_err *err,
                        const struct gw_header *extra, size_t n_extra)
{
    char res[GW_BUCKET_NAME_MAX + GW_KEY_MAX + 4];
    char *body = NULL;
    size_t len = 0;
    int status = gw_s3_error_status(err->code);

    if (r->ended)
        return;
    gw_s3_resource(r, res, sizeof(res));
    LOG_DEBUG(LOG_CTX, "%s %s %s: %s %s", gw_req_id(r->req), gw_s3_op_name(r->route.op), res,
              gw_s3_error_code(err->code), err->msg);
    if (gw_s3_error_has_body(err->code, r->head_request)) {
        const char *id = gw_req_id(r->req);
        if (gw_s3_error_render(err, (struct gw_str){res, strlen(res)},
                               (struct gw_str){id, strlen(id)}, &body, &len) != 0) {
            body = NULL;
            len = 0;
        }
    }
    respond(r, status, extra, n_extra, body ? "application/xml" : NULL, body, len);
    free(body);
}

void gw_s3_failf(struct gw_s3_req *r, enum gw_s3_error code, const char *fmt, ...)
{
    struct gw_s3_err e;
    gw_s3_err_clear(&e);
    e.code = code;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
        va_end(ap);
    }
    gw_s3_fail(r, &e);
}

void gw_s3_fail_lode(struct gw_s3_req *r, int status, const char *msg)
{
    enum gw_s3_error code = gw_s3_error_from_lode(status);
    if (status == LODE_ENOBUCKET)
        gw_s3_bucket_forget(r);
    if (code == GW_S3_OK)
        code = GW_S3_INTERNAL_ERROR;
    /* Internal details stay in the log; the client gets the code's own text. */
    if (code == GW_S3_INTERNAL_ERROR || code == GW_S3_SERVICE_UNAVAILABLE)
        LOG_WARN(LOG_CTX, "%s %s: %s (%s)", gw_req_id(r->req), gw_s3_op_name(r->route.op),
                 lode_strerror(status), msg ? msg : "");
    gw_s3_failf(r, code, NULL);
}

void gw_s3_respond_xml(struct gw_s3_req *r, int status, struct gw_xml_w *xw,
                       const struct gw_header *extra, size_t n_extra)
{
    char *doc = NULL;
    size_t len = 0;
    if (gw_xml_w_finish(xw, &doc, &len) != 0) {
        gw_xml_w_free(xw);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    gw_xml_w_free(xw);
    respond(r, status, extra, n_extra, "application/xml", doc, len);
    free(doc);
}

void gw_s3_respond_empty(struct gw_s3_req *r, int status, const struct gw_header *extra,
                         size_t n_extra)
{
    respond(r, status, extra, n_extra, NULL, NULL, 0);
}

/* ---- meta calls ------------------------------------------------------------------------- */

struct meta_call {
    struct gw_s3_req *r;
    gw_s3_meta_cb cb;
};

static void meta_done(void *data, const struct cmn_rpc_result *res)
{
    struct meta_call *mc = data;
    struct gw_s3_req *r = mc->r;
    gw_s3_meta_cb cb = mc->cb;
    free(mc);
    r->busy--;
    hold(r);
    /* Whatever the operation makes of it, the bucket is gone: the cache must not vouch for
     * it any longer. */
    if (res->status == LODE_ENOBUCKET && r->w)
        gw_s3_bucket_forget(r);
    if (r->cancelled || r->ended)
        gw_s3_end(r, true);
    else
        cb(r, res);
    release(r);
}

bool gw_s3_meta_call(struct gw_s3_req *r, unsigned method, ProtobufCMessage *msg,
                     gw_s3_meta_cb cb)
{
    struct meta_call *mc = malloc(sizeof(*mc));
    if (!mc) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return false;
    }
    mc->r = r;
    mc->cb = cb;
    int rc = cmn_meta_async_call(r->w->meta, method, 0, msg,
                                 (uint32_t)r->w->ctx->cfg->meta_timeout_ms, meta_done, mc);
    if (rc) {
        free(mc);
        gw_s3_fail_lode(r, rc, "meta call not submitted");
        return false;
    }
    r->busy++;
    return true;
}

ProtobufCMessage *gw_s3_unpack(struct gw_s3_req *r, const ProtobufCMessageDescriptor *desc,
                               const struct cmn_rpc_result *res)
{
    if (res->status != 0) {
        gw_s3_fail_lode(r, res->status, res->message);
        return NULL;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, res->body.len, res->body.data);
    if (!m)
        gw_s3_fail_lode(r, LODE_EBADMSG, "meta answer does not unpack");
    return m;
}

Lode__CommandResult *gw_s3_command_result(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    Lode__CommandResult *cr =
        (Lode__CommandResult *)gw_s3_unpack(r, &lode__command_result__descriptor, res);
    if (cr && cr->status != 0) {
        gw_s3_fail_lode(r, cr->status, cr->message);
        lode__command_result__free_unpacked(cr, NULL);
        return NULL;
    }
    return cr;
}

void gw_s3_command_init(struct gw_s3_req *r, Lode__Command *cmd, Lode__Command__OpCase op_case)
{
    lode__command__init(cmd);
    cmd->version = COMMAND_VERSION;
    cmd->now_ms = r->now_ms;
    cmd->op_case = op_case;
}

/* ---- the body pipe ---------------------------------------------------------------------- */

int64_t gw_s3_body_length(const struct gw_s3_req *r)
{
    if (gw_sigv4_payload_is_streaming(r->auth.payload)) {
        const struct gw_header *h = gw_header_find(r->head, "x-amz-decoded-content-length");
        if (!h || h->value.n == 0 || h->value.n > 19)
            return -1;
        int64_t v = 0;
        for (size_t i = 0; i < h->value.n; i++) {
            if (h->value.p[i] < '0' || h->value.p[i] > '9')
                return -1;
            v = v * 10 + (h->value.p[i] - '0');
        }
        return v;
    }
    if (r->http->has_content_length)
        return (int64_t)r->http->content_length;
    return r->http->has_body ? -1 : 0;
}

const char *gw_s3_body_trailer(struct gw_s3_req *r, const char *name)
{
    return r->chunked_on ? gw_chunked_trailer(&r->chunked, name) : NULL;
}

static void sigv4_to_s3(struct gw_s3_err *e, const struct gw_sigv4_err *se)
{
    gw_s3_err_clear(e);
    e->code = se->code;
    snprintf(e->msg, sizeof(e->msg), "%s", se->msg);
}

static void body_finish(struct gw_s3_req *r, enum gw_s3_error code, const char *msg)
{
    struct gw_sigv4_err se = {0};
    gw_s3_end_cb cb = r->on_end;

    if (r->body_ended)
        return;
    r->body_ended = true;
    if (r->body_err.code == GW_S3_OK) {
        if (code != GW_S3_OK) {
            gw_s3_err_set(&r->body_err, code, "%s", msg ? msg : gw_s3_error_message(code));
        } else if (r->chunked_on && gw_chunked_finish(&r->chunked, &se) != GW_S3_OK) {
            sigv4_to_s3(&r->body_err, &se);
        } else if (r->sha_on && gw_sigv4_body_finish(&r->sha, &se) != GW_S3_OK) {
            sigv4_to_s3(&r->body_err, &se);
        }
    }
    r->on_data = NULL;
    r->on_end = NULL;
    if (cb)
        cb(r, &r->body_err);
}

bool gw_s3_body_start(struct gw_s3_req *r, gw_s3_data_cb on_data, gw_s3_end_cb on_end)
{
    struct gw_sigv4_err se = {0};
    struct gw_s3_err e;

    r->on_data = on_data;
    r->on_end = on_end;
    gw_s3_err_clear(&r->body_err);
    if (gw_sigv4_payload_is_streaming(r->auth.payload)) {
        struct gw_sigv4_chain chain;
        struct gw_chunked_cfg cc;
        gw_sigv4_chain_init(&chain, &r->auth, r->signing_key);
        if (gw_chunked_cfg_from_request(r->head, &r->auth, &chain, &cc, &se) != GW_S3_OK ||
            gw_chunked_init(&r->chunked, &cc, &se) != GW_S3_OK) {
            memset(&chain, 0, sizeof(chain));
            sigv4_to_s3(&e, &se);
            gw_s3_fail(r, &e);
            return false;
        }
        memset(&chain, 0, sizeof(chain));
        r->chunked_on = true;
    } else if (r->auth.payload == GW_SIGV4_PAYLOAD_SHA256) {
        if (gw_sigv4_body_init(&r->sha, &r->auth, &se) != GW_S3_OK) {
            gw_sigv4_body_free(&r->sha);
            sigv4_to_s3(&e, &se);
            gw_s3_fail(r, &e);
            return false;
        }
        r->sha_on = true;
    }
    r->body_started = true;
    if (gw_req_body_resume(r->req) != 0) {
        gw_s3_end(r, true);
        return false;
    }
    return true;
}

void gw_s3_body_resume(struct gw_s3_req *r)
{
    if (r->body_ext_resume) {
        if (!r->body_ended && !r->ended)
            r->body_ext_resume(r->body_ext_data);
        return;
    }
    if (!r->body_ended && gw_req_body_resume(r->req) != 0 && !r->cancelled)
        gw_s3_end(r, true);
}

static size_t give(struct gw_s3_req *r, const uint8_t *p, size_t n);

bool gw_s3_body_start_external(struct gw_s3_req *r, gw_s3_data_cb on_data, gw_s3_end_cb on_end,
                               void (*resume)(void *data), void *data)
{
    /* The digest a signed payload must carry when the body is empty: SHA-256 of nothing
     * (hashlib.sha256(b"").hexdigest() = e3b0c442...7852b855). */
    static const uint8_t empty_sha256[32] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8,
        0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
        0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
    };
    if (gw_sigv4_payload_is_streaming(r->auth.payload) || !r->http->has_content_length ||
        r->http->content_length != 0) {
        gw_s3_failf(r, GW_S3_INVALID_REQUEST,
                    "An upload whose bytes come over RDMA has no request body: send "
                    "Content-Length: 0 and no aws-chunked encoding.");
        return false;
    }
    if (r->auth.payload == GW_SIGV4_PAYLOAD_SHA256 &&
        memcmp(r->auth.payload_sha256, empty_sha256, sizeof(empty_sha256)) != 0) {
        gw_s3_failf(r, GW_S3_CONTENT_SHA256_MISMATCH,
                    "x-amz-content-sha256 covers the (empty) request body of an RDMA upload: "
                    "send UNSIGNED-PAYLOAD or the digest of nothing.");
        return false;
    }
    r->on_data = on_data;
    r->on_end = on_end;
    gw_s3_err_clear(&r->body_err);
    r->body_ext_resume = resume;
    r->body_ext_data = data;
    r->body_started = true;
    /* Consumes the empty body (its end is ignored, on_body_end), so the connection is
     * reusable after the answer. */
    if (gw_req_body_resume(r->req) != 0) {
        gw_s3_end(r, true);
        return false;
    }
    return true;
}

size_t gw_s3_body_feed(struct gw_s3_req *r, const uint8_t *p, size_t n)
{
    if (r->ended || r->body_ended)
        return n;
    hold(r);
    size_t t = give(r, p, n);
    release(r);
    return t;
}

void gw_s3_body_feed_end(struct gw_s3_req *r, enum gw_s3_error code, const char *msg)
{
    if (r->ended || r->body_ended)
        return;
    hold(r);
    body_finish(r, code, msg);
    release(r);
}

/* Hands payload to the consumer; returns what it took. A consumer that ended the request
 * makes the rest moot. */
static size_t give(struct gw_s3_req *r, const uint8_t *p, size_t n)
{
    if (!r->on_data || n == 0)
        return n;
    size_t t = r->on_data(r, p, n);
    if (r->ended)
        return n;
    if (r->sha_on && t)
        gw_sigv4_body_update(&r->sha, p, t);
    return t;
}

static size_t on_body(struct gw_req *req, const uint8_t *data, size_t len)
{
    struct gw_s3_req *r = gw_req_data(req);
    size_t off = 0;

    if (!r || r->ended || r->body_ended || r->body_ext_resume)
        return len;
    hold(r);
    if (!r->chunked_on) {
        off = give(r, data, len);
        goto out;
    }
    /* Payload the consumer left last time comes first, outside the decoder (which already
     * accounted for it). */
    if (r->pending_payload) {
        size_t n = r->pending_payload < len ? r->pending_payload : len;
        size_t t = give(r, data, n);
        if (r->ended) {
            off = len;
            goto out;
        }
        r->pending_payload -= t;
        off = t;
        if (r->pending_payload)
            goto out;
    }
    while (off < len && !r->ended && !r->body_ended) {
        struct gw_sigv4_err se = {0};
        struct gw_str slice = {0};
        size_t used = 0;
        if (gw_chunked_decode(&r->chunked, data + off, len - off, &used, &slice, &se) !=
            GW_S3_OK) {
            sigv4_to_s3(&r->body_err, &se);
            off = len;
            body_finish(r, GW_S3_OK, NULL);
            break;
        }
        if (slice.n && (const uint8_t *)slice.p + slice.n != data + off + used) {
            gw_s3_err_set(&r->body_err, GW_S3_INTERNAL_ERROR, "payload slice not at the end");
            off = len;
            body_finish(r, GW_S3_OK, NULL);
            break;
        }
        size_t t = give(r, (const uint8_t *)slice.p, slice.n);
        if (r->ended) {
            off = len;
            break;
        }
        off += used;
        if (t < slice.n) {
            r->pending_payload = slice.n - t;
            off -= r->pending_payload;
            break;
        }
    }
out:
    release(r);
    return off;
}

static void on_body_end(struct gw_req *req, enum gw_s3_error code, const char *msg)
{
    struct gw_s3_req *r = gw_req_data(req);
    if (!r || r->ended || r->body_ext_resume)
        return; /* an external body ends on its own */
    hold(r);
    body_finish(r, code, msg);
    release(r);
}

static size_t collect_data(struct gw_s3_req *r, const uint8_t *p, size_t n)
{
    if (r->collected.len + n > r->body_limit) {
        gw_s3_err_set(&r->body_err, GW_S3_MAX_MESSAGE_LENGTH,
                      "The request body exceeds %llu bytes.",
                      (unsigned long long)r->body_limit);
        body_finish(r, GW_S3_OK, NULL);
        return n;
    }
    if (cmn_buf_append(&r->collected, p, n) != 0) {
        gw_s3_err_set(&r->body_err, GW_S3_INTERNAL_ERROR, NULL);
        body_finish(r, GW_S3_OK, NULL);
    }
    return n;
}

bool gw_s3_body_collect(struct gw_s3_req *r, uint64_t limit, gw_s3_end_cb on_end)
{
    int64_t len = gw_s3_body_length(r);
    if (len > 0 && (uint64_t)len > limit) {
        gw_s3_failf(r, GW_S3_MAX_MESSAGE_LENGTH, "The request body exceeds %llu bytes.",
                    (unsigned long long)limit);
        return false;
    }
    r->body_limit = limit;
    return gw_s3_body_start(r, collect_data, on_end);
}

/* ---- pipeline --------------------------------------------------------------------------- */

enum gw_s3_family gw_s3_op_family(enum gw_s3_op op)
{
    switch (op) {
    case GW_OP_LIST_BUCKETS:
    case GW_OP_CREATE_BUCKET:
    case GW_OP_LODE_SESSION:
        return GW_S3_FAMILY_SERVICE;
    case GW_OP_DELETE_BUCKET:
    case GW_OP_HEAD_BUCKET:
    case GW_OP_GET_BUCKET_LOCATION:
    case GW_OP_GET_BUCKET_VERSIONING:
    case GW_OP_GET_BUCKET_ACL:
    case GW_OP_PUT_BUCKET_ACL:
    case GW_OP_LIST_OBJECTS:
    case GW_OP_LIST_OBJECTS_V2:
    case GW_OP_LIST_OBJECT_VERSIONS:
    case GW_OP_GET_BUCKET_SUBRESOURCE:
    case GW_OP_DELETE_BUCKET_SUBRESOURCE:
        return GW_S3_FAMILY_BUCKET;
    default:
        return gw_s3_is_multipart_op(op) ? GW_S3_FAMILY_MULTIPART : GW_S3_FAMILY_OBJECT;
    }
}

bool gw_s3_op_checks_bucket(enum gw_s3_op op)
{
    return gw_s3_op_family(op) != GW_S3_FAMILY_SERVICE;
}

bool gw_s3_op_bucket_cacheable(enum gw_s3_op op)
{
    switch (gw_s3_op_family(op)) {
    case GW_S3_FAMILY_OBJECT:
    case GW_S3_FAMILY_MULTIPART:
        return op != GW_OP_NONE;
    case GW_S3_FAMILY_BUCKET:
        return op == GW_OP_LIST_OBJECTS || op == GW_OP_LIST_OBJECTS_V2 ||
               op == GW_OP_LIST_OBJECT_VERSIONS;
    default:
        return false;
    }
}

static void dispatch(struct gw_s3_req *r)
{
    switch (gw_s3_op_family(r->route.op)) {
    case GW_S3_FAMILY_SERVICE:
    case GW_S3_FAMILY_BUCKET:
        gw_s3_bucket_op(r);
        return;
    case GW_S3_FAMILY_MULTIPART:
        gw_s3_multipart_op(r);
        return;
    case GW_S3_FAMILY_OBJECT:
        gw_s3_object_op(r);
        return;
    }
}

void gw_s3_bucket_forget(struct gw_s3_req *r)
{
    if (r->w && r->w->buckets && r->route.bucket[0])
        gw_bcache_drop(r->w->buckets, r->route.bucket);
}

static void count(const struct gw_s3_req *r, bool hit)
{
    const struct gw_s3_metrics *m = r->w->ctx->metrics;
    if (m)
        cmn_counter_add(hit ? m->bucket_hit : m->bucket_miss, 1);
}

/* The bucket record is known (r->bucket): the caller must own it. */
static void bucket_known(struct gw_s3_req *r)
{
    if (strcmp(r->bucket->owner ? r->bucket->owner : "", r->user) != 0) {
        gw_s3_failf(r, GW_S3_ACCESS_DENIED, NULL);
        return;
    }
    dispatch(r);
}

static void bucket_checked(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    if (res->status == LODE_ENOBUCKET) {
        struct gw_s3_err e;
        gw_s3_err_set(&e, GW_S3_NO_SUCH_BUCKET, NULL);
        gw_s3_err_extra(&e, "BucketName", "%s", r->route.bucket);
        gw_s3_fail(r, &e);
        return;
    }
    r->bucket = (Lode__BucketRecord *)gw_s3_unpack(r, &lode__bucket_record__descriptor, res);
    if (!r->bucket)
        return;
    /* Cached as meta sent it, whoever owns it: the owner is checked on every use. A record
     * that cannot be kept (too large, no memory) only costs the next request a call. */
    if (r->w->buckets)
        (void)gw_bcache_put(r->w->buckets, r->route.bucket, res->body.data, res->body.len,
                            cmn_mono_ms());
    bucket_known(r);
}

static void authenticated(struct gw_s3_req *r)
{
    if (!gw_s3_op_checks_bucket(r->route.op)) {
        dispatch(r);
        return;
    }
    const uint8_t *rec;
    size_t len;
    bool cacheable = r->w->buckets && gw_s3_op_bucket_cacheable(r->route.op);
    if (cacheable && gw_bcache_get(r->w->buckets, r->route.bucket, cmn_mono_ms(), &rec, &len)) {
        r->bucket = lode__bucket_record__unpack(NULL, len, rec);
        if (r->bucket) {
            count(r, true);
            bucket_known(r);
            return;
        }
        gw_bcache_drop(r->w->buckets, r->route.bucket);
    }
    if (cacheable)
        count(r, false);
    Lode__NameRequest nr = LODE__NAME_REQUEST__INIT;
    nr.name = r->route.bucket;
    gw_s3_meta_call(r, CMN_RPC_BUCKET_HEAD, &nr.base, bucket_checked);
}

static void key_ready(struct gw_s3_req *r)
{
    struct gw_key *k = &r->key_req.key;
    struct gw_sigv4_err se = {0};
    struct gw_s3_err e;

    if (k->status == LODE_ENOACCESSKEY) {
        gw_key_wipe(k);
        gw_s3_failf(r, GW_S3_INVALID_ACCESS_KEY_ID, NULL);
        return;
    }
    if (k->status != 0) {
        int st = k->status;
        char msg[sizeof(k->message)];
        snprintf(msg, sizeof(msg), "%s", k->message);
        gw_key_wipe(k);
        gw_s3_fail_lode(r, st, msg);
        return;
    }
    int rc = gw_sigv4_signing_key(k->secret, k->secret_len, r->auth.date, r->auth.region,
                                  r->auth.service, r->signing_key);
    snprintf(r->user, sizeof(r->user), "%s", k->user);
    gw_key_wipe(k);
    if (rc != 0) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    if (gw_sigv4_verify(r->head, &r->auth, r->signing_key, &se) != GW_S3_OK) {
        /* A secret changed in meta shows up as a mismatch against the cached one: forget
         * it, so that the client's retry is checked against a fresh copy. */
        if (se.code == GW_S3_SIGNATURE_DOES_NOT_MATCH)
            gw_keys_invalidate(r->w->ctx->keys, r->auth.access_key,
                               strlen(r->auth.access_key));
        sigv4_to_s3(&e, &se);
        gw_s3_fail(r, &e);
        return;
    }
    authenticated(r);
}

static void key_looked_up(struct gw_keys_req *kr)
{
    struct gw_s3_req *r = kr->data;
    r->busy--;
    r->key_pending = false;
    hold(r);
    if (r->cancelled)
        gw_s3_end(r, true);
    else
        key_ready(r);
    release(r);
}

static void on_request(struct gw_req *req)
{
    struct gw_s3_worker *w = gw_req_worker_data(req);
    const struct gw_config *cfg = w->ctx->cfg;
    struct gw_s3_req *r = calloc(1, sizeof(*r));
    struct gw_s3_err e;
    struct gw_sigv4_err se = {0};

    if (!r) {
        gw_req_abort(req);
        return;
    }
    r->req = req;
    r->w = w;
    r->http = gw_req_head(req);
    r->head = &r->http->head;
    r->now_ms = cmn_now_ms();
    r->head_request = gw_str_eq(r->head->method, "HEAD");
    cmn_buf_init(&r->collected);
    gw_req_set_data(req, r);
    hold(r);

    gw_s3_err_clear(&e);
    if (gw_route_request(&w->ctx->route, r->head, &r->route, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        goto out;
    }
    struct gw_sigv4_policy pol = {.region = cfg->region, .now = r->now_ms / 1000,
                                  .max_skew = (int64_t)(cfg->clock_skew_ms / 1000)};
    if (gw_sigv4_parse(r->head, &pol, &r->auth, &se) != GW_S3_OK) {
        sigv4_to_s3(&e, &se);
        gw_s3_fail(r, &e);
        goto out;
    }
    if (r->auth.kind == GW_SIGV4_ANONYMOUS) {
        gw_s3_failf(r, GW_S3_ACCESS_DENIED, "Anonymous requests are not accepted.");
        goto out;
    }
    r->key_req.data = r;
    r->key_req.cb = key_looked_up;
    int rc = gw_keys_lookup(w->ctx->keys, w->meta, r->auth.access_key,
                            strlen(r->auth.access_key), &r->key_req);
    if (rc == GW_KEYS_HIT)
        key_ready(r);
    else if (rc == 0) {
        r->busy++;
        r->key_pending = true;
    }
    else if (rc == -EAGAIN)
        gw_s3_failf(r, GW_S3_SLOW_DOWN, NULL);
    else
        gw_s3_fail_lode(r, rc, "key lookup not submitted");
out:
    release(r);
}

static void on_cancel(struct gw_req *req, int reason)
{
    struct gw_s3_req *r = gw_req_data(req);
    (void)reason;
    if (!r || r->ended)
        return;
    r->cancelled = true;
    hold(r);
    if (r->op_cancel) {
        r->op_cancel(r);
    } else if (r->busy) {
        /* A key lookup can be withdrawn; a meta call ends the request when it returns. */
        if (r->key_pending) {
            gw_keys_cancel(&r->key_req);
            r->key_pending = false;
            r->busy--;
            gw_s3_end(r, true);
        }
    } else {
        gw_s3_end(r, true);
    }
    release(r);
}

static void on_bad_request(struct gw_req *req, enum gw_s3_error code, const char *msg)
{
    struct gw_s3_req *r = calloc(1, sizeof(*r));
    if (!r) {
        gw_req_abort(req);
        return;
    }
    r->req = req;
    cmn_buf_init(&r->collected);
    gw_req_set_data(req, r);
    gw_s3_failf(r, code, "%s", msg ? msg : gw_s3_error_message(code));
}

const struct gw_handler gw_s3_handler = {
    .worker_start = worker_start,
    .worker_stop = worker_stop,
    .on_request = on_request,
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_cancel = on_cancel,
    .on_bad_request = on_bad_request,
};
