#include "client/s3req.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/sigv4.h"

int lc_s3_check_names(const char *bucket, const char *key, struct cmn_err *err)
{
    if (bucket) {
        size_t n = strlen(bucket);
        if (n == 0 || n > LC_S3_BUCKET_MAX)
            return cmn_err_set(err, -EINVAL, "bucket name must be 1..%d bytes", LC_S3_BUCKET_MAX);
        for (size_t i = 0; i < n; i++) {
            char c = bucket[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_'))
                return cmn_err_set(err, -EINVAL, "bucket name has a character outside "
                                                 "letters, digits, '.', '-', '_'");
        }
    }
    if (key) {
        size_t n = strlen(key);
        if (n == 0 || n > LC_S3_KEY_MAX)
            return cmn_err_set(err, -EINVAL, "object key must be 1..%d bytes", LC_S3_KEY_MAX);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
                return cmn_err_set(err, -EINVAL, "object key has a control character");
    }
    return 0;
}

static bool value_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f)
            return false;
    return true;
}

#define MAX_HDRS 8

int lc_s3_format(const struct lc_s3_signer *s, const struct lc_s3_req *q, int64_t now_s,
                 struct cmn_buf *out, struct cmn_err *err)
{
    int rc = lc_s3_check_names(q->bucket, q->key, err);
    if (rc)
        return rc;
    if (q->key && !q->bucket)
        return cmn_err_set(err, -EINVAL, "an object key needs a bucket");
    const char *vals[] = {s->host, q->range, q->token, q->content_type, q->query};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        if (vals[i] && !value_ok(vals[i]))
            return cmn_err_set(err, -EINVAL, "a request field has a control character");

    struct cmn_buf path;
    cmn_buf_init(&path);
    rc = cmn_buf_append(&path, "/", 1);
    if (!rc && q->bucket)
        rc = gw_sigv4_uri_encode(&path, q->bucket, strlen(q->bucket), false);
    if (!rc && q->key) {
        rc = cmn_buf_append(&path, "/", 1);
        if (!rc)
            rc = gw_sigv4_uri_encode(&path, q->key, strlen(q->key), true);
    }

    char ts[GW_SIGV4_TIMESTAMP_LEN + 1];
    gw_sigv4_format_time(now_s, ts);
    static const char payload[] = "UNSIGNED-PAYLOAD";
    struct gw_header h[MAX_HDRS];
    size_t nh = 0;
    h[nh++] = (struct gw_header){GW_STR("host"), {s->host, strlen(s->host)}};
    h[nh++] = (struct gw_header){GW_STR("x-amz-date"), {ts, strlen(ts)}};
    h[nh++] = (struct gw_header){GW_STR("x-amz-content-sha256"), {payload, sizeof(payload) - 1}};
    if (q->range)
        h[nh++] = (struct gw_header){GW_STR("range"), {q->range, strlen(q->range)}};
    if (q->token)
        h[nh++] = (struct gw_header){GW_STR("x-amz-rdma-token"), {q->token, strlen(q->token)}};
    if (q->content_type)
        h[nh++] = (struct gw_header){GW_STR("content-type"),
                                     {q->content_type, strlen(q->content_type)}};
    struct gw_request_head head = {
        .method = {q->method, strlen(q->method)},
        .path = {(const char *)path.data, path.len},
        .query = {q->query ? q->query : "", q->query ? strlen(q->query) : 0},
        .headers = h,
        .n_headers = nh,
    };
    struct gw_sigv4_signer signer = {
        .access_key = s->access_key,
        .secret = s->secret_key,
        .region = s->region,
        .service = "s3",
        .time = now_s,
    };
    struct cmn_buf authz;
    cmn_buf_init(&authz);
    char ts_out[GW_SIGV4_TIMESTAMP_LEN + 1];
    bool said = false;
    if (!rc) {
        rc = gw_sigv4_sign(&signer, &head, payload, &authz, ts_out, NULL);
        if (rc) {
            cmn_err_set(err, rc, "signing the request: %s",
                        rc == -EINVAL ? "invalid credentials or request" : lode_strerror(rc));
            said = true;
        }
    }
    size_t mark = out->len;
    if (!rc)
        rc = cmn_buf_printf(out, "%s %.*s%s%s HTTP/1.1\r\n", q->method, (int)path.len,
                            (const char *)path.data, q->query ? "?" : "", q->query ? q->query : "");
    for (size_t i = 0; !rc && i < nh; i++)
        rc = cmn_buf_printf(out, "%.*s: %.*s\r\n", (int)h[i].name.n, h[i].name.p,
                            (int)h[i].value.n, h[i].value.p);
    if (!rc)
        rc = cmn_buf_printf(out, "authorization: %.*s\r\n", (int)authz.len,
                            (const char *)authz.data);
    if (!rc && q->send_length)
        rc = cmn_buf_printf(out, "content-length: %llu\r\n",
                            (unsigned long long)q->content_length);
    if (!rc)
        rc = cmn_buf_printf(out, "user-agent: liblode/" PACKAGE_VERSION "\r\n\r\n");
    if (rc) {
        out->len = mark;
        if (!said)
            cmn_err_set(err, rc, "formatting the request: %s", lode_strerror(rc));
    }
    explicit_bzero(authz.data, authz.len);
    cmn_buf_free(&authz);
    cmn_buf_free(&path);
    return rc;
}
