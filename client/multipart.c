/* liblode: multipart uploads (lode_upload_*). An upload handle keeps the upload id and the
 * ETag of every part written through it, so that lode_upload_complete can name them in
 * order. Parts go through the same code as lode_put (lc_put): staged over rc where usable,
 * else in a body, with the same fallback rules.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "client/parse.h"
#include "gateway/sigv4.h"

#define UPLOAD_ID_MAX 1024
#define MAX_PARTS 10000
#define RESULT_DOC_MAX (64 * 1024)

struct part {
    uint32_t number;
    char etag[LODE_ETAG_MAX];
};

struct lode_upload {
    lode_client *c;
    char *bucket, *key;
    char id[UPLOAD_ID_MAX];
    char *id_query;                /* "uploadId=<encoded id>" */
    pthread_mutex_t mu;            /* parts, n_parts, busy */
    struct part *parts;            /* sorted by number, unique */
    size_t n_parts, cap_parts;
    unsigned busy;                 /* lode_upload_part calls running */
};

static void upload_free(lode_upload *u)
{
    if (!u)
        return;
    pthread_mutex_destroy(&u->mu);
    free(u->parts);
    free(u->id_query);
    free(u->bucket);
    free(u->key);
    free(u);
}

/* Reads a 200 response's small result document into out (NUL-terminated). */
static int read_result(lode_client *c, struct lc_call *call, struct cmn_buf *out,
                       struct cmn_err *err)
{
    int rc = lc_call_read_small(c, call, out, RESULT_DOC_MAX, err);
    if (rc == 0)
        rc = cmn_buf_append(out, "", 1);
    return rc;
}

/* A 200 whose body is an S3 error document (a server may report a failed
 * CompleteMultipartUpload that way, after the status line went out). */
static int error_in_body(const struct cmn_buf *doc, const char *what, struct cmn_err *err)
{
    char code[64], msg[LODE_MSG_MAX];
    if (lc_s3_error_parse((const char *)doc->data, doc->len - 1, code, sizeof(code), msg,
                          sizeof(msg)) != 0 ||
        code[0] == '\0')
        return 0;
    return cmn_err_set(err, lc_status_error(500, code), "%s: HTTP 200 with %s: %s", what, code,
                       msg);
}

int lode_upload_create(lode_client *c, const char *bucket, const char *key,
                       const struct lode_put_opts *opts, lode_upload **out,
                       struct lode_result *res)
{
    struct lode_result local;
    if (!res)
        res = &local;
    lc_result_init(res);
    struct cmn_err err;
    cmn_err_clear(&err);
    if (out)
        *out = NULL;
    if (!c || !out)
        return lc_result_finish(res, cmn_err_set(&err, -EINVAL, "lode_upload_create: no client"
                                                                " or no handle pointer"), &err);
    int rc = lc_s3_check_names(bucket, key, &err);
    if (rc)
        return lc_result_finish(res, rc, &err);
    lode_upload *u = calloc(1, sizeof(*u));
    if (u)
        pthread_mutex_init(&u->mu, NULL);
    if (!u || !(u->bucket = strdup(bucket)) || !(u->key = strdup(key))) {
        upload_free(u);
        return lc_result_finish(res, cmn_err_set(&err, -ENOMEM, "out of memory"), &err);
    }
    u->c = c;
    struct lc_s3_req q = {
        .method = "POST",
        .bucket = bucket,
        .key = key,
        .query = "uploads",
        .content_type = opts ? opts->content_type : NULL,
        .send_length = true,
    };
    struct lc_call call;
    rc = lc_call_start(c, &q, NULL, 0, NULL, &call, &err);
    if (rc == 0) {
        res->http_status = call.resp->status;
        if (call.resp->status != 200) {
            rc = lc_call_fail(c, &call, "CreateMultipartUpload", NULL, 0, &err);
        } else {
            struct cmn_buf doc;
            cmn_buf_init(&doc);
            rc = read_result(c, &call, &doc, &err);
            if (rc == 0 && lc_s3_result_field((const char *)doc.data, doc.len - 1,
                                              "InitiateMultipartUploadResult", "UploadId",
                                              u->id, sizeof(u->id)) != 0)
                rc = cmn_err_set(&err, LODE_ERR_PROTOCOL,
                                 "CreateMultipartUpload: no valid UploadId in the answer");
            cmn_buf_free(&doc);
        }
        lc_call_end(c, &call);
    }
    if (rc == 0) {
        struct cmn_buf qs;
        cmn_buf_init(&qs);
        rc = cmn_buf_append(&qs, "uploadId=", 9);
        if (rc == 0)
            rc = gw_sigv4_uri_encode(&qs, u->id, strlen(u->id), false);
        if (rc == 0)
            rc = cmn_buf_append(&qs, "", 1);
        if (rc == 0) {
            u->id_query = (char *)qs.data; /* taken over */
        } else {
            cmn_buf_free(&qs);
            cmn_err_set(&err, rc, "out of memory");
        }
    }
    if (rc) {
        upload_free(u);
        return lc_result_finish(res, rc, &err);
    }
    *out = u;
    return lc_result_finish(res, 0, &err);
}

const char *lode_upload_id(const lode_upload *u)
{
    return u ? u->id : "";
}

/* Records part n's ETag, replacing an earlier one of the same number. Under u->mu. */
static int record_part(lode_upload *u, uint32_t n, const char *etag)
{
    size_t lo = 0, hi = u->n_parts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u->parts[mid].number < n)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == u->n_parts || u->parts[lo].number != n) {
        if (u->n_parts == u->cap_parts) {
            size_t cap = u->cap_parts ? u->cap_parts * 2 : 16;
            struct part *p = realloc(u->parts, cap * sizeof(*p));
            if (!p)
                return -ENOMEM;
            u->parts = p;
            u->cap_parts = cap;
        }
        memmove(&u->parts[lo + 1], &u->parts[lo], (u->n_parts - lo) * sizeof(*u->parts));
        u->n_parts++;
        u->parts[lo].number = n;
    }
    snprintf(u->parts[lo].etag, sizeof(u->parts[lo].etag), "%s", etag);
    return 0;
}

int lode_upload_part(lode_upload *u, uint32_t part_number, lode_buf *buf, uint64_t buf_offset,
                     uint64_t length, struct lode_result *res)
{
    struct lode_result local;
    if (!res)
        res = &local;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (!u || part_number < 1 || part_number > MAX_PARTS) {
        lc_result_init(res);
        return lc_result_finish(res, cmn_err_set(&err, -EINVAL, "lode_upload_part: %s",
                                                 !u ? "no upload"
                                                    : "part numbers are 1..10000"),
                                &err);
    }
    char query[32 + UPLOAD_ID_MAX * 3];
    snprintf(query, sizeof(query), "partNumber=%" PRIu32 "&%s", part_number, u->id_query);
    struct lc_put_target t = {.bucket = u->bucket, .key = u->key, .query = query,
                              .what = "UploadPart"};
    pthread_mutex_lock(&u->mu);
    u->busy++;
    pthread_mutex_unlock(&u->mu);
    int rc = lc_put(u->c, &t, buf, buf_offset, length, NULL, res);
    pthread_mutex_lock(&u->mu);
    u->busy--;
    if (rc == 0 && res->etag[0] == '\0')
        rc = cmn_err_set(&err, LODE_ERR_PROTOCOL, "UploadPart %" PRIu32 ": no ETag in the "
                                                  "answer", part_number);
    else if (rc == 0 && record_part(u, part_number, res->etag) != 0)
        rc = cmn_err_set(&err, -ENOMEM, "out of memory");
    pthread_mutex_unlock(&u->mu);
    return rc && res->status == 0 ? lc_result_finish(res, rc, &err) : rc;
}

/* The body of CompleteMultipartUpload: every recorded part, in order. */
static int complete_doc(const lode_upload *u, struct cmn_buf *b)
{
    int rc = cmn_buf_printf(b, "<CompleteMultipartUpload>");
    for (size_t i = 0; rc == 0 && i < u->n_parts; i++) {
        rc = cmn_buf_printf(b, "<Part><PartNumber>%" PRIu32 "</PartNumber><ETag>",
                            u->parts[i].number);
        /* ETags carry quotes; escape what XML needs. */
        for (const char *p = u->parts[i].etag; rc == 0 && *p; p++) {
            if (*p == '"')
                rc = cmn_buf_printf(b, "&quot;");
            else if (*p == '&')
                rc = cmn_buf_printf(b, "&amp;");
            else if (*p == '<')
                rc = cmn_buf_printf(b, "&lt;");
            else if (*p == '>')
                rc = cmn_buf_printf(b, "&gt;");
            else
                rc = cmn_buf_append(b, p, 1);
        }
        if (rc == 0)
            rc = cmn_buf_printf(b, "</ETag></Part>");
    }
    return rc ? rc : cmn_buf_printf(b, "</CompleteMultipartUpload>");
}

int lode_upload_complete(lode_upload *u, struct lode_result *res)
{
    struct lode_result local;
    if (!res)
        res = &local;
    lc_result_init(res);
    struct cmn_err err;
    cmn_err_clear(&err);
    if (!u)
        return lc_result_finish(res, cmn_err_set(&err, -EINVAL, "lode_upload_complete: no "
                                                                "upload"), &err);
    pthread_mutex_lock(&u->mu);
    int rc = 0;
    if (u->busy)
        rc = cmn_err_set(&err, -EBUSY, "lode_upload_complete: %u part(s) still being written",
                         u->busy);
    else if (u->n_parts == 0)
        rc = cmn_err_set(&err, -EINVAL, "lode_upload_complete: no part was written");
    struct cmn_buf body;
    cmn_buf_init(&body);
    if (rc == 0 && complete_doc(u, &body) != 0)
        rc = cmn_err_set(&err, -ENOMEM, "out of memory");
    pthread_mutex_unlock(&u->mu);
    if (rc) {
        cmn_buf_free(&body);
        return lc_result_finish(res, rc, &err);
    }
    struct lc_s3_req q = {
        .method = "POST",
        .bucket = u->bucket,
        .key = u->key,
        .query = u->id_query,
        .send_length = true,
        .content_length = body.len,
    };
    struct lc_call call;
    rc = lc_call_start(u->c, &q, body.data, body.len, NULL, &call, &err);
    cmn_buf_free(&body);
    if (rc == 0) {
        res->http_status = call.resp->status;
        if (call.resp->status != 200) {
            rc = lc_call_fail(u->c, &call, "CompleteMultipartUpload", NULL, 0, &err);
        } else {
            struct cmn_buf doc;
            cmn_buf_init(&doc);
            rc = read_result(u->c, &call, &doc, &err);
            if (rc == 0)
                rc = error_in_body(&doc, "CompleteMultipartUpload", &err);
            if (rc == 0 && lc_s3_result_field((const char *)doc.data, doc.len - 1,
                                              "CompleteMultipartUploadResult", "ETag",
                                              res->etag, sizeof(res->etag)) != 0)
                rc = cmn_err_set(&err, LODE_ERR_PROTOCOL,
                                 "CompleteMultipartUpload: no valid ETag in the answer");
            cmn_buf_free(&doc);
        }
        lc_call_end(u->c, &call);
    }
    if (rc) {
        res->etag[0] = '\0';
        return lc_result_finish(res, rc, &err);
    }
    res->bytes = 0;
    upload_free(u);
    return lc_result_finish(res, 0, &err);
}

int lode_upload_abort(lode_upload *u, struct lode_result *res)
{
    struct lode_result local;
    if (!res)
        res = &local;
    lc_result_init(res);
    struct cmn_err err;
    cmn_err_clear(&err);
    if (!u)
        return lc_result_finish(res, cmn_err_set(&err, -EINVAL, "lode_upload_abort: no upload"),
                                &err);
    pthread_mutex_lock(&u->mu);
    unsigned busy = u->busy;
    pthread_mutex_unlock(&u->mu);
    if (busy)
        return lc_result_finish(res, cmn_err_set(&err, -EBUSY, "lode_upload_abort: %u part(s) "
                                                               "still being written", busy),
                                &err);
    struct lc_s3_req q = {
        .method = "DELETE",
        .bucket = u->bucket,
        .key = u->key,
        .query = u->id_query,
    };
    struct lc_call call;
    int rc = lc_call_start(u->c, &q, NULL, 0, NULL, &call, &err);
    if (rc == 0) {
        res->http_status = call.resp->status;
        if (call.resp->status == 204 || call.resp->status == 200) {
            struct cmn_buf ignore;
            cmn_buf_init(&ignore);
            rc = lc_call_read_small(u->c, &call, &ignore, LC_ERROR_BODY_MAX, &err);
            cmn_buf_free(&ignore);
        } else {
            rc = lc_call_fail(u->c, &call, "AbortMultipartUpload", NULL, 0, &err);
        }
        lc_call_end(u->c, &call);
    }
    upload_free(u);
    return lc_result_finish(res, rc, &err);
}
