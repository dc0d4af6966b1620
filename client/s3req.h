/* Formatting and signing the S3 requests liblode sends: path-style URLs, SigV4 header
 * signatures (through the gateway's signer, gateway/sigv4.h, compiled into liblode), payload
 * UNSIGNED-PAYLOAD. Every header liblode sends except Content-Length is signed, the
 * x-amz-rdma-token included (the gateway refuses a token that is not). Pure apart from the
 * OpenSSL calls of the signer; the caller passes the time.
 */
#ifndef LODE_CLIENT_S3REQ_H
#define LODE_CLIENT_S3REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define LC_S3_BUCKET_MAX 63
#define LC_S3_KEY_MAX 1024

struct lc_s3_signer {
    const char *host;              /* the Host header value, "host:port" */
    const char *access_key;
    const char *secret_key;
    const char *region;
};

struct lc_s3_req {
    const char *method;            /* "GET", "PUT", "POST" */
    const char *bucket;            /* NULL: the service ("/") */
    const char *key;               /* NULL: the bucket itself */
    const char *query;             /* encoded query without '?' ("partNumber=2"), or NULL */
    const char *range;             /* a Range value ("bytes=0-99"), or NULL */
    const char *token;             /* x-amz-rdma-token, or NULL */
    const char *content_type;      /* or NULL */
    bool send_length;              /* send Content-Length (requests with a body, and POST) */
    uint64_t content_length;
};

/* Checks a bucket name (1..63 bytes of letters, digits, '.', '-', '_') and an object key (1..
 * 1024 bytes, no control characters). Returns 0 or -EINVAL with a message. */
int lc_s3_check_names(const char *bucket, const char *key, struct cmn_err *err);

/* Appends the request head (request line, headers, Authorization, blank line) to `out`,
 * signed for time now_s (Unix seconds). Returns 0, or -EINVAL (bad names or header values),
 * -ENOMEM, LODE_EINTERNAL with a message. */
int lc_s3_format(const struct lc_s3_signer *s, const struct lc_s3_req *q, int64_t now_s,
                 struct cmn_buf *out, struct cmn_err *err);

#endif
