/* Requests for the Signature Version 4 tests (test_sigv4, test_sigv4_sign): a request
 * whose strings live in its own pool so a test can change any byte, a verifier that looks
 * secrets up by access key as the gateway does, and the requests of the examples published
 * in the Amazon S3 API reference ("Signature Calculations for the Authorization Header",
 * "Authenticating Requests: Using Query Parameters", "Transferring Payload in Multiple
 * Chunks"), with their published signatures.
 *
 * Each test program is one translation unit including this once. */
#ifndef LODE_TESTS_UNIT_GATEWAY_SIGV4_FIXTURE_H
#define LODE_TESTS_UNIT_GATEWAY_SIGV4_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "gateway/sigv4.h"
#include "tests/tap.h"

#define AWS_AK "AKIAIOSFODNN7EXAMPLE"
#define AWS_SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define AWS_SCOPE AWS_AK "/20130524/us-east-1/s3/aws4_request"
#define AWS_TIME 1369353600 /* 20130524T000000Z, calendar.timegm */
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define BOTO_AK "LKTESTKEY0000000001"
#define BOTO_SK "s3cr3t/Key+With=Odd~Chars"
#define BOTO_TIME 1709210096 /* 20240229T123456Z */
/* The signature of the GET Object example. */
#define SIG_OK "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
#define BOTO_CRED "Credential=" BOTO_AK "/20240229/eu-west-1/s3/aws4_request, "

/* A request whose strings all live in its own pool, so tests can change any byte. */
struct req {
    char pool[16384];
    size_t used;
    struct gw_header h[24];
    struct gw_request_head head;
};

__attribute__((unused)) static char *pool_dup(struct req *r, const char *s)
{
    size_t n = strlen(s);
    if (r->used + n + 1 > sizeof(r->pool))
        tap_bail("request pool too small");
    char *p = r->pool + r->used;
    memcpy(p, s, n + 1);
    r->used += n + 1;
    return p;
}

__attribute__((unused)) static void req_init(struct req *r, const char *method, const char *target)
{
    memset(r, 0, sizeof(*r));
    char *m = pool_dup(r, method), *t = pool_dup(r, target);
    char *q = strchr(t, '?');
    r->head.method = (struct gw_str){m, strlen(m)};
    r->head.target = (struct gw_str){t, strlen(t)};
    r->head.path = (struct gw_str){t, q ? (size_t)(q - t) : strlen(t)};
    r->head.query = q ? (struct gw_str){q + 1, strlen(q + 1)} : (struct gw_str){t + strlen(t), 0};
    r->head.headers = r->h;
}

__attribute__((unused)) static void req_add(struct req *r, const char *name, const char *value)
{
    if (r->head.n_headers == sizeof(r->h) / sizeof(r->h[0]))
        tap_bail("too many headers");
    char *n = pool_dup(r, name), *v = pool_dup(r, value);
    r->h[r->head.n_headers++] = (struct gw_header){{n, strlen(n)}, {v, strlen(v)}};
}

/* The header named `name`, or NULL. */
__attribute__((unused)) static struct gw_header *req_find(struct req *r, const char *name)
{
    for (size_t i = 0; i < r->head.n_headers; i++)
        if (gw_str_ieq(r->h[i].name, name))
            return &r->h[i];
    return NULL;
}

__attribute__((unused)) static enum gw_s3_error check_at(const struct req *r, const char *secret, const char *region,
                                 int64_t now, struct gw_sigv4_err *e)
{
    struct gw_sigv4_auth a;
    struct gw_sigv4_policy pol = {.region = region, .now = now};
    enum gw_s3_error rc = gw_sigv4_parse(&r->head, &pol, &a, e);
    if (rc != GW_S3_OK)
        return rc;
    if (a.kind == GW_SIGV4_ANONYMOUS)
        return GW_S3_ACCESS_DENIED;
    /* As the gateway: the access key selects the secret, so an unknown one fails here. */
    static const char *const known[] = {AWS_AK, BOTO_AK, "LK/with/slashes", "LK"};
    bool found = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        found |= strcmp(a.access_key, known[i]) == 0;
    if (!found)
        return GW_S3_INVALID_ACCESS_KEY_ID;
    uint8_t key[32];
    if (gw_sigv4_signing_key(secret, strlen(secret), a.date, a.region, a.service, key) != 0)
        return GW_S3_INTERNAL_ERROR;
    return gw_sigv4_verify(&r->head, &a, key, e);
}

__attribute__((unused)) static struct gw_sigv4_err last;

__attribute__((unused)) static enum gw_s3_error check(const struct req *r, const char *secret, const char *region,
                              int64_t now)
{
    return check_at(r, secret, region, now, &last);
}

/* ---- the published examples ---- */

__attribute__((unused)) static void aws_get_object(struct req *r, const char *authz)
{
    req_init(r, "GET", "/test.txt");
    req_add(r, "Host", "examplebucket.s3.amazonaws.com");
    req_add(r, "Range", "bytes=0-9");
    req_add(r, "x-amz-content-sha256", EMPTY_SHA);
    req_add(r, "x-amz-date", "20130524T000000Z");
    if (authz)
        req_add(r, "Authorization", authz);
}

__attribute__((unused)) static const char GET_OBJECT_AUTHZ[] =
    "AWS4-HMAC-SHA256 Credential=" AWS_SCOPE ",SignedHeaders=host;range;x-amz-content-sha256;"
    "x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

__attribute__((unused)) static void aws_put_object(struct req *r, const char *authz)
{
    /* The document names the key "test$file.text" and its canonical URI
     * "/test%24file.text": the path as a client sends it. */
    req_init(r, "PUT", "/test%24file.text");
    req_add(r, "Host", "examplebucket.s3.amazonaws.com");
    req_add(r, "Date", "Fri, 24 May 2013 00:00:00 GMT");
    req_add(r, "x-amz-date", "20130524T000000Z");
    req_add(r, "x-amz-storage-class", "REDUCED_REDUNDANCY");
    req_add(r, "x-amz-content-sha256",
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    if (authz)
        req_add(r, "Authorization", authz);
}

__attribute__((unused)) static const char PUT_OBJECT_AUTHZ[] =
    "AWS4-HMAC-SHA256 Credential=" AWS_SCOPE ",SignedHeaders=date;host;x-amz-content-sha256;"
    "x-amz-date;x-amz-storage-class,"
    "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";

__attribute__((unused)) static void aws_get_bucket(struct req *r, const char *target, const char *authz)
{
    req_init(r, "GET", target);
    req_add(r, "Host", "examplebucket.s3.amazonaws.com");
    req_add(r, "x-amz-date", "20130524T000000Z");
    req_add(r, "x-amz-content-sha256", EMPTY_SHA);
    if (authz)
        req_add(r, "Authorization", authz);
}

#define BUCKET_AUTHZ(sig)                                                                  \
    "AWS4-HMAC-SHA256 Credential=" AWS_SCOPE ",SignedHeaders=host;x-amz-content-sha256;"   \
    "x-amz-date,Signature=" sig

__attribute__((unused)) static const char PRESIGNED_QUERY[] =
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
    "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
    "X-Amz-SignedHeaders=host&X-Amz-Signature="
    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

__attribute__((unused)) static void aws_presigned(struct req *r, const char *query)
{
    char target[1024];
    snprintf(target, sizeof(target), "/test.txt?%s", query);
    req_init(r, "GET", target);
    req_add(r, "Host", "examplebucket.s3.amazonaws.com");
}

__attribute__((unused)) static void aws_chunked_head(struct req *r, const char *authz)
{
    req_init(r, "PUT", "/examplebucket/chunkObject.txt");
    req_add(r, "Host", "s3.amazonaws.com");
    req_add(r, "x-amz-date", "20130524T000000Z");
    req_add(r, "x-amz-storage-class", "REDUCED_REDUNDANCY");
    req_add(r, "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    req_add(r, "Content-Encoding", "aws-chunked");
    req_add(r, "x-amz-decoded-content-length", "66560");
    req_add(r, "Content-Length", "66824");
    if (authz)
        req_add(r, "Authorization", authz);
}

__attribute__((unused)) static const char CHUNKED_AUTHZ[] =
    "AWS4-HMAC-SHA256 Credential=" AWS_SCOPE ",SignedHeaders=content-encoding;content-length;"
    "host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
    "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

/* The signature of an Authorization value (after "Signature="). */
__attribute__((unused)) static const char *sig_of(const char *authz)
{
    const char *s = strstr(authz, "Signature=");
    return s ? s + 10 : "";
}

#endif
