/* liblode: lode_get and lode_put, the choice of transport and the fallback to plain HTTP. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "client/parse.h"

void lc_result_init(struct lode_result *res)
{
    memset(res, 0, sizeof(*res));
    res->transport = LODE_TRANSPORT_HTTP;
}

/* The call's final bookkeeping: status, message, thread's last error. */
int lc_result_finish(struct lode_result *res, int rc, const struct cmn_err *err)
{
    res->status = rc;
    if (rc) {
        snprintf(res->message, sizeof(res->message), "%s",
                 err->msg[0] ? err->msg : lode_client_strerror(rc));
        lc_set_last_error(res->message);
    }
    return rc;
}

/* The destination of a GET as an HTTP body sink. */
struct dest {
    struct lc_http_mem mem;
    struct lc_http_sink sink;
};

static void dest_init(struct dest *d, const struct lc_get_args *a)
{
    if (a->stage) {
        lc_cuda_stage_http_sink(a->stage, &d->sink);
    } else {
        d->mem.dst = (uint8_t *)a->buf->ptr + a->buf_off;
        d->mem.cap = a->space;
        lc_http_sink_mem(&d->sink, &d->mem);
    }
}

int lc_get_consume(lode_client *c, struct lc_call *call, const struct lc_get_args *a,
                   struct lode_result *res, struct cmn_err *err)
{
    const struct lc_http_resp *r = call->resp;
    int rc = 0;
    res->http_status = r->status;
    if (r->status != 200 && r->status != 206) {
        rc = r->status >= 200 && r->status < 300
                 ? cmn_err_set(err, LODE_ERR_PROTOCOL, "GET: unexpected HTTP %d", r->status)
                 : lc_call_fail(c, call, "GET", NULL, 0, err);
        lc_call_end(c, call);
        return rc;
    }
    lc_copy_header(r, "etag", res->etag, sizeof(res->etag));
    uint64_t cl = r->content_length;
    uint64_t first = 0, last = 0, total = 0, bytes;
    bool prefix = false;
    if (r->status == 206) {
        size_t n;
        const char *cr = lc_http_header(r, "content-range", &n);
        if (!a->ranged && !a->part) {
            rc = cmn_err_set(err, LODE_ERR_PROTOCOL, "GET: 206 to a request without a range");
        } else if (!cr || lc_parse_content_range(cr, n, &first, &last, &total) != 0 ||
                   first == UINT64_MAX) {
            rc = cmn_err_set(err, LODE_ERR_PROTOCOL, "GET: 206 without a valid Content-Range");
        } else if ((bytes = last - first + 1) != cl && cl != LC_HTTP_NO_LENGTH) {
            rc = cmn_err_set(err, LODE_ERR_PROTOCOL,
                             "GET: Content-Range and Content-Length disagree");
        } else if (a->ranged && (first != a->r_off || bytes > a->want)) {
            rc = cmn_err_set(err, LODE_ERR_PROTOCOL,
                             "GET: the server sent bytes %" PRIu64 "-%" PRIu64
                             " for a range starting at %" PRIu64 " of at most %" PRIu64 " bytes",
                             first, last, a->r_off, a->want);
        } else {
            lc_copy_header(r, "content-range", res->content_range, sizeof(res->content_range));
            res->offset = first;
            res->object_size = total == UINT64_MAX ? 0 : total;
            /* A part larger than the space: its first `space` bytes, as a range would. */
            prefix = bytes > a->space;
            res->bytes = prefix ? a->space : bytes;
        }
    } else {
        if (a->ranged) {
            rc = cmn_err_set(err, LODE_ERR_PROTOCOL, "GET: the server ignored the Range");
        } else if (cl != LC_HTTP_NO_LENGTH && cl > a->space) {
            rc = cmn_err_set(err, LODE_ERR_TOO_SMALL,
                             "GET: the object has %" PRIu64 " bytes, the buffer space %" PRIu64,
                             cl, a->space);
        } else {
            res->offset = 0;
            res->object_size = cl == LC_HTTP_NO_LENGTH ? 0 : cl;
            res->bytes = cl;
        }
    }
    if (rc == 0) {
        struct dest d;
        dest_init(&d, a);
        if (prefix) {
            rc = lc_http_read_body_prefix(call->conn, r, &d.sink, res->bytes, c->timeout_ms, err);
        } else {
            uint64_t got = 0;
            rc = lc_http_read_body(call->conn, r, &d.sink, a->space, &got, c->timeout_ms, err);
            if (rc == LODE_ETOOLARGE)
                rc = cmn_err_set(err, LODE_ERR_TOO_SMALL,
                                 "GET: the object does not fit the buffer space of %" PRIu64
                                 " bytes", a->space);
            if (rc == 0 && res->bytes == LC_HTTP_NO_LENGTH) {
                res->bytes = got;
                res->object_size = got;
            }
        }
        if (rc)
            cmn_err_wrap(err, "GET");
    }
    lc_call_end(c, call);
    if (rc) {
        res->bytes = 0;
        res->offset = 0;
    }
    return rc;
}

static int plain_get(lode_client *c, const struct lc_get_args *a, struct lode_result *res,
                     struct cmn_err *err)
{
    struct lc_s3_req q = {
        .method = "GET",
        .bucket = a->bucket,
        .key = a->key,
        .query = a->query[0] ? a->query : NULL,
        .range = a->ranged ? a->range : NULL,
    };
    struct lc_call call;
    int rc = lc_call_start(c, &q, NULL, 0, NULL, &call, err);
    if (rc)
        return rc;
    res->transport = LODE_TRANSPORT_HTTP;
    return lc_get_consume(c, &call, a, res, err);
}

/* Resolves the options into a->range / a->query / a->want. */
static int resolve(const struct lode_get_opts *o, struct lc_get_args *a, struct cmn_err *err)
{
    a->want = a->space;
    if (o && o->part_number) {
        if (o->range)
            return cmn_err_set(err, -EINVAL, "a range and a part number cannot be combined");
        if (o->part_number > 10000)
            return cmn_err_set(err, -EINVAL, "part numbers are 1..10000");
        a->part = o->part_number;
        snprintf(a->query, sizeof(a->query), "partNumber=%u", o->part_number);
    }
    if (o && o->range) {
        uint64_t off = o->range->offset, len = o->range->length;
        if (len == 0)
            return cmn_err_set(err, -EINVAL, "a range of 0 bytes");
        if (a->space == 0)
            return cmn_err_set(err, -EINVAL, "no buffer space for the range");
        a->ranged = true;
        a->r_off = off;
        a->want = len < a->space ? len : a->space;
        if (off > UINT64_MAX - a->want)
            return cmn_err_set(err, -EINVAL, "the range ends beyond 2^64");
        snprintf(a->range, sizeof(a->range), "bytes=%" PRIu64 "-%" PRIu64, off,
                 off + a->want - 1);
    }
    return 0;
}

/* Waits for a CUDA stage's copies and frees it (NULL: nothing to do). Returns rc, or the
 * stage's failure (its message in *err) when rc was 0: a request is only done once its bytes
 * are on the device. */
static int stage_end(struct lc_cuda_stage *stage, int rc, struct cmn_err *err)
{
    if (!stage)
        return rc;
    struct cmn_err serr;
    cmn_err_clear(&serr);
    int src = lc_cuda_stage_finish(stage, &serr);
    free(stage);
    if (rc == 0 && src) {
        *err = serr;
        return src;
    }
    return rc;
}

/* The checks lode_get and lode_put start with; on success the buffer is held (release it). */
static int hold_args(const char *fn, lode_client *c, const char *bucket, const char *key,
                     lode_buf *buf, uint64_t off, uint64_t len, struct cmn_err *err)
{
    if (!c || !buf || buf->c != c)
        return cmn_err_set(err, -EINVAL, "%s: no client, or a buffer of another client", fn);
    int rc = lc_s3_check_names(bucket, key, err);
    return rc ? rc : lc_buf_hold(buf, off, len, err);
}

int lode_get(lode_client *c, const char *bucket, const char *key,
             const struct lode_get_opts *opts, lode_buf *buf, uint64_t buf_offset,
             struct lode_result *res)
{
    struct lode_result local;
    if (!res)
        res = &local;
    lc_result_init(res);
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = hold_args("lode_get", c, bucket, key, buf, buf_offset, 0, &err);
    if (rc)
        return lc_result_finish(res, rc, &err);
    struct lc_get_args a = {
        .bucket = bucket,
        .key = key,
        .buf = buf,
        .buf_off = buf_offset,
        .space = buf->size - buf_offset,
    };
    struct lc_cuda_stage *stage = NULL;
    rc = resolve(opts, &a, &err);
    if (rc == 0 && buf->kind == LODE_BUF_CUDA) {
        const struct lc_cuda *cu;
        stage = malloc(sizeof(*stage));
        rc = !stage ? cmn_err_set(&err, -ENOMEM, "out of memory")
                    : lc_client_cuda(c, &cu, &err);
        if (rc == 0)
            rc = lc_cuda_stage_init(stage, cu, buf->ctx,
                                    (lc_cudeviceptr)(uintptr_t)buf->ptr + buf_offset, a.space,
                                    &err);
        if (rc) {
            free(stage);
            stage = NULL;
        }
        a.stage = stage;
    }

    bool plain = true;
    if (rc == 0 && c->transport != LODE_TRANSPORT_HTTP && a.space > 0) {
        enum lode_fallback why = LODE_FALLBACK_NONE;
        bool by_body = false;
        struct cmn_err ferr;
        cmn_err_clear(&ferr);
        rc = lc_fanout_get(c, &a, res, &why, &by_body, &ferr);
        if (rc == LC_FALLBACK) {
            rc = 0;
            res->fell_back = true;
            res->fallback = why;
            snprintf(res->message, sizeof(res->message), "%s", ferr.msg);
            if (c->flags & LODE_CLIENT_NO_FALLBACK)
                rc = cmn_err_set(&err, why == LODE_FALLBACK_DECLINED ? LODE_ERR_DECLINED
                                                                     : LODE_ERR_NO_TRANSPORT,
                                 "%s", ferr.msg);
            plain = !by_body && rc == 0;
        } else {
            plain = false;
            if (rc)
                err = ferr;
        }
    }
    if (rc == 0 && plain) {
        char note[LODE_MSG_MAX];
        memcpy(note, res->message, sizeof(note));
        rc = plain_get(c, &a, res, &err);
        if (rc == 0)
            memcpy(res->message, note, sizeof(note));
    }
    rc = stage_end(stage, rc, &err);
    lc_buf_release(buf);
    if (rc) {
        res->bytes = 0;
        res->offset = 0;
    }
    return lc_result_finish(res, rc, &err);
}

int lc_put(lode_client *c, const struct lc_put_target *t, lode_buf *buf, uint64_t buf_offset,
           uint64_t length, const struct lode_put_opts *opts, struct lode_result *res)
{
    lc_result_init(res);
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = hold_args(t->query ? "lode_upload_part" : "lode_put", c, t->bucket, t->key, buf,
                       buf_offset, length, &err);
    if (rc)
        return lc_result_finish(res, rc, &err);
    if (c->transport == LODE_TRANSPORT_RC || c->transport == LODE_TRANSPORT_AUTO) {
        /* A staged upload: the gateway reads the bytes out of the buffer over RDMA. */
        enum lode_fallback why = LODE_FALLBACK_NONE;
        struct cmn_err ferr;
        cmn_err_clear(&ferr);
        rc = lc_fanout_put(c, t, buf, buf_offset, length, opts, res, &why, &ferr);
        if (rc == 0 || rc != LC_FALLBACK) {
            if (rc)
                err = ferr;
            lc_buf_release(buf);
            return lc_result_finish(res, rc, &err);
        }
        rc = 0;
        /* AUTO only prefers rc: where it is not usable a plain PUT is simply the transport;
         * anything else is a fallback to report. */
        bool quiet = c->transport == LODE_TRANSPORT_AUTO &&
                     (why == LODE_FALLBACK_UNAVAILABLE || why == LODE_FALLBACK_SESSION);
        if (!quiet) {
            res->fell_back = true;
            res->fallback = why;
            snprintf(res->message, sizeof(res->message), "%s", ferr.msg);
            if (c->flags & LODE_CLIENT_NO_FALLBACK)
                rc = cmn_err_set(&err, why == LODE_FALLBACK_DECLINED ? LODE_ERR_DECLINED
                                                                     : LODE_ERR_NO_TRANSPORT,
                                 "%s", ferr.msg);
        }
    }
    struct lc_cuda_stage *stage = NULL;
    struct lc_http_source src, *srcp = NULL;
    const void *body = NULL;
    if (rc == 0 && buf->kind == LODE_BUF_CUDA && length > 0) {
        const struct lc_cuda *cu;
        stage = malloc(sizeof(*stage));
        rc = !stage ? cmn_err_set(&err, -ENOMEM, "out of memory")
                    : lc_client_cuda(c, &cu, &err);
        if (rc == 0)
            rc = lc_cuda_stage_init(stage, cu, buf->ctx,
                                    (lc_cudeviceptr)(uintptr_t)buf->ptr + buf_offset, length,
                                    &err);
        if (rc) {
            free(stage);
            stage = NULL;
        } else {
            lc_cuda_stage_http_source(stage, &src);
            srcp = &src;
        }
    } else if (rc == 0) {
        body = (const uint8_t *)buf->ptr + buf_offset;
    }
    if (rc == 0) {
        struct lc_s3_req q = {
            .method = "PUT",
            .bucket = t->bucket,
            .key = t->key,
            .query = t->query,
            .content_type = opts ? opts->content_type : NULL,
            .send_length = true,
            .content_length = length,
        };
        struct lc_call call;
        rc = lc_call_start(c, &q, body, length, srcp, &call, &err);
        if (rc == 0) {
            res->http_status = call.resp->status;
            if (call.resp->status == 200) {
                lc_copy_header(call.resp, "etag", res->etag, sizeof(res->etag));
                struct cmn_buf ignore;
                cmn_buf_init(&ignore);
                rc = lc_call_read_small(c, &call, &ignore, LC_ERROR_BODY_MAX, &err);
                cmn_buf_free(&ignore);
                if (rc == 0)
                    res->bytes = length;
            } else {
                rc = lc_call_fail(c, &call, t->what, NULL, 0, &err);
            }
            lc_call_end(c, &call);
        }
    }
    rc = stage_end(stage, rc, &err);
    lc_buf_release(buf);
    return lc_result_finish(res, rc, &err);
}

int lode_put(lode_client *c, const char *bucket, const char *key, lode_buf *buf,
             uint64_t buf_offset, uint64_t length, const struct lode_put_opts *opts,
             struct lode_result *res)
{
    struct lode_result local;
    struct lc_put_target t = {.bucket = bucket, .key = key, .what = "PUT"};
    return lc_put(c, &t, buf, buf_offset, length, opts, res ? res : &local);
}

int lode_head(lode_client *c, const char *bucket, const char *key, struct lode_result *res)
{
    struct lode_result local;
    if (!res)
        res = &local;
    lc_result_init(res);
    struct cmn_err err;
    cmn_err_clear(&err);
    if (!c)
        return lc_result_finish(res, cmn_err_set(&err, -EINVAL, "lode_head: no client"), &err);
    int rc = lc_s3_check_names(bucket, key, &err);
    if (rc)
        return lc_result_finish(res, rc, &err);
    struct lc_s3_req q = {.method = "HEAD", .bucket = bucket, .key = key};
    struct lc_call call;
    rc = lc_call_start(c, &q, NULL, 0, NULL, &call, &err);
    if (rc == 0) {
        const struct lc_http_resp *r = call.resp;
        res->http_status = r->status;
        size_t n;
        const char *v = lc_http_header(r, "content-length", &n);
        if (r->status != 200) {
            /* A HEAD error has no body: the status says it all. */
            rc = cmn_err_set(&err, lc_status_error(r->status, r->status == 404 ? "NoSuchKey" : ""),
                             "HEAD: HTTP %d", r->status);
        } else if (!v || lc_parse_u64(v, n, &res->object_size) != 0) {
            rc = cmn_err_set(&err, LODE_ERR_PROTOCOL, "HEAD: no valid Content-Length");
        } else {
            lc_copy_header(r, "etag", res->etag, sizeof(res->etag));
            uint64_t got;
            struct lc_http_mem m = {NULL, 0};
            struct lc_http_sink sink;
            lc_http_sink_mem(&sink, &m);
            rc = lc_http_read_body(call.conn, r, &sink, 0, &got, c->timeout_ms, &err);
        }
        lc_call_end(c, &call);
    }
    return lc_result_finish(res, rc, &err);
}
