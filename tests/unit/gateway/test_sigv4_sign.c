/* The signer (gateway/sigv4_sign.c): it must give the signatures and the presigned URL
 * published in the Amazon S3 API reference for the same requests (see sigv4_fixture.h),
 * and whatever it signs the verifier must accept, and nothing else. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/id.h"
#include "gateway/sigv4.h"
#include "tests/tap.h"
#include "tests/unit/gateway/sigv4_fixture.h"

/* The signer gives the published signatures for the same requests. */
static void test_signer_published(void)
{
    struct gw_sigv4_signer s = {.access_key = AWS_AK, .secret = AWS_SK, .region = "us-east-1",
                                .time = AWS_TIME};
    struct {
        const char *what, *authz;
        int which;
    } cases[] = {
        {"GET Object", GET_OBJECT_AUTHZ, 0},
        {"PUT Object", PUT_OBJECT_AUTHZ, 1},
        {"chunked upload seed", CHUNKED_AUTHZ, 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct req r;
        if (cases[i].which == 0)
            aws_get_object(&r, NULL);
        else if (cases[i].which == 1)
            aws_put_object(&r, NULL);
        else
            aws_chunked_head(&r, NULL);
        struct cmn_buf out;
        cmn_buf_init(&out);
        char ts[17];
        uint8_t seed[32];
        char seed_hex[65];
        const struct gw_header *ph = gw_header_find(&r.head, "x-amz-content-sha256");
        if (!ph)
            tap_bail("example without x-amz-content-sha256");
        char payload[80];
        snprintf(payload, sizeof(payload), "%.*s", (int)ph->value.n, ph->value.p);
        int rc = gw_sigv4_sign(&s, &r.head, payload, &out, ts, seed);
        cmn_buf_terminate(&out);
        cmn_hex_encode(seed, 32, seed_hex);
        ok(rc == 0 && strcmp(sig_of((char *)out.data), sig_of(cases[i].authz)) == 0 &&
               strcmp(seed_hex, sig_of(cases[i].authz)) == 0 && strcmp(ts, "20130524T000000Z") == 0,
           "signer reproduces the %s example (%s)", cases[i].what, out.data ? (char *)out.data : "");
        cmn_buf_free(&out);
    }
    struct req r;
    aws_get_object(&r, NULL);
    struct cmn_buf out;
    cmn_buf_init(&out);
    char ts[17];
    gw_sigv4_sign(&s, &r.head, EMPTY_SHA, &out, ts, NULL);
    cmn_buf_terminate(&out);
    is_str((char *)out.data,
           "AWS4-HMAC-SHA256 Credential=" AWS_SCOPE ", SignedHeaders=host;range;"
           "x-amz-content-sha256;x-amz-date, "
           "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
           "the whole Authorization value");
    cmn_buf_free(&out);

    aws_presigned(&r, "");
    req_init(&r, "GET", "/test.txt");
    req_add(&r, "Host", "examplebucket.s3.amazonaws.com");
    cmn_buf_init(&out);
    is_int(gw_sigv4_presign(&s, &r.head, 86400, &out), 0, "presign the example request");
    cmn_buf_terminate(&out);
    is_str((char *)out.data, PRESIGNED_QUERY, "the published presigned query, byte for byte");
    cmn_buf_free(&out);
}

static void test_signer_roundtrip(void)
{
    struct gw_sigv4_signer s = {.access_key = "LK/with/slashes", .secret = "x",
                                .region = "lode-1", .time = BOTO_TIME};
    struct req r;
    req_init(&r, "POST", "/b%20k/o~b*j?uploads&z=%E2%82%AC&a=&a=b+c");
    req_add(&r, "host", "127.0.0.1:7480");
    req_add(&r, "X-Amz-Meta-A", "  spaced   out  ");
    req_add(&r, "x-amz-meta-a", "second");
    req_add(&r, "Content-Type", "text/plain");
    struct cmn_buf authz;
    cmn_buf_init(&authz);
    char ts[17];
    uint8_t seed[32];
    is_int(gw_sigv4_sign(&s, &r.head, "UNSIGNED-PAYLOAD", &authz, ts, seed), 0,
           "sign a request with repeated headers and parameters");
    cmn_buf_terminate(&authz);
    is_str(ts, "20240229T123456Z", "timestamp");
    ok(strstr((char *)authz.data, "SignedHeaders=content-type;host;x-amz-content-sha256;"
                                  "x-amz-date;x-amz-meta-a,") != NULL,
       "added x-amz-date and x-amz-content-sha256 are signed (%s)", authz.data);
    req_add(&r, "x-amz-date", ts);
    req_add(&r, "x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    req_add(&r, "Authorization", (char *)authz.data);
    is_int(check(&r, "x", "lode-1", BOTO_TIME), GW_S3_OK,
           "the verifier accepts it (access key with '/')");
    struct gw_sigv4_auth a;
    struct gw_sigv4_policy pol = {.region = "lode-1", .now = BOTO_TIME};
    gw_sigv4_parse(&r.head, &pol, &a, NULL);
    ok(strcmp(a.access_key, "LK/with/slashes") == 0 && memcmp(a.signature, seed, 32) == 0,
       "access key and seed signature come back");
    uint8_t key[32];
    gw_sigv4_signing_key("x", 1, a.date, a.region, a.service, key);
    struct gw_sigv4_chain chain;
    gw_sigv4_chain_init(&chain, &a, key);
    ok(strcmp(chain.scope, "20240229/lode-1/s3/aws4_request") == 0 &&
           strcmp(chain.timestamp, "20240229T123456Z") == 0 && memcmp(chain.seed, seed, 32) == 0,
       "streaming chain: scope, timestamp, seed");
    cmn_buf_free(&authz);

    /* Date-header variants: signed with Date, the verifier must read the same instant. */
    static const char *const dates[] = {"Thu, 29 Feb 2024 12:34:56 GMT", "Thu, 29 Feb 2024 12:34:56 UTC",
                                        "Thu, 29 Feb 2024 12:34:56 +0000"};
    for (size_t i = 0; i < 3; i++) {
        req_init(&r, "HEAD", "/bkt/k");
        req_add(&r, "Host", "h");
        req_add(&r, "Date", dates[i]);
        cmn_buf_init(&authz);
        gw_sigv4_sign(&s, &r.head, EMPTY_SHA, &authz, ts, NULL);
        cmn_buf_terminate(&authz);
        req_add(&r, "x-amz-content-sha256", EMPTY_SHA);
        req_add(&r, "Authorization", (char *)authz.data);
        is_int(check(&r, "x", "lode-1", BOTO_TIME), GW_S3_OK, "Date: %s", dates[i]);
        cmn_buf_free(&authz);
    }
    struct req bad;
    req_init(&bad, "HEAD", "/bkt/k");
    req_add(&bad, "Host", "h");
    req_add(&bad, "Date", "Thu, 29 Feb 2024 12:34:56 CET");
    req_add(&bad, "x-amz-content-sha256", EMPTY_SHA);
    req_add(&bad, "Authorization", "AWS4-HMAC-SHA256 Credential=LK/20240229/lode-1/s3/aws4_request,"
                                   "SignedHeaders=host," SIG_OK);
    is_int(check(&bad, "x", "lode-1", BOTO_TIME), GW_S3_ACCESS_DENIED, "Date in CET is refused");

    /* Presigning a request that already has a query and another signed header. */
    req_init(&r, "GET", "/bkt/k?response-content-type=a%20b&versionId=3");
    req_add(&r, "Host", "h:1");
    req_add(&r, "x-amz-meta-x", "y");
    struct cmn_buf q;
    cmn_buf_init(&q);
    is_int(gw_sigv4_presign(&s, &r.head, 60, &q), 0, "presign with a query and two headers");
    cmn_buf_terminate(&q);
    static const char kept[] = "response-content-type=a%20b&versionId=3&X-Amz-Algorithm=";
    ok(strncmp((char *)q.data, kept, strlen(kept)) == 0 &&
           strstr((char *)q.data, "X-Amz-SignedHeaders=host%3Bx-amz-meta-x&") != NULL,
       "the query keeps its parameters (%s)", q.data);
    char target[1024];
    snprintf(target, sizeof(target), "/bkt/k?%s", (char *)q.data);
    req_init(&bad, "GET", target);
    req_add(&bad, "Host", "h:1");
    req_add(&bad, "x-amz-meta-x", "y");
    is_int(check(&bad, "x", "lode-1", BOTO_TIME + 60), GW_S3_OK, "the verifier accepts it");
    is_int(check(&bad, "x", "lode-1", BOTO_TIME + 61), GW_S3_ACCESS_DENIED, "for 60 s");
    bad.h[1].value = GW_STR("z");
    is_int(check(&bad, "x", "lode-1", BOTO_TIME), GW_S3_SIGNATURE_DOES_NOT_MATCH,
           "the signed header matters");
    cmn_buf_free(&q);

    /* Refusals. */
    cmn_buf_init(&q);
    req_init(&r, "GET", "/");
    req_add(&r, "x-amz-date", "20240229T123456Z");
    is_int(gw_sigv4_sign(&s, &r.head, EMPTY_SHA, &q, ts, NULL), -EINVAL, "signing without host");
    is_int(gw_sigv4_presign(&s, &r.head, 60, &q), -EINVAL, "presigning without host");
    req_add(&r, "Host", "h");
    is_int(gw_sigv4_presign(&s, &r.head, 0, &q), -EINVAL, "presigning for 0 s");
    is_int(gw_sigv4_presign(&s, &r.head, 604801, &q), -EINVAL, "presigning for more than a week");
    struct gw_sigv4_signer bad_region = s;
    bad_region.region = "a/b";
    is_int(gw_sigv4_sign(&bad_region, &r.head, EMPTY_SHA, &q, ts, NULL), -EINVAL,
           "a region with '/'");
    ok(q.len == 0, "nothing written on failure");
    cmn_buf_free(&q);
}

static void test_uri_encode(void)
{
    /* urllib.parse.quote('a b/\u00fc~*', safe='/~') and with safe='~'. */
    struct cmn_buf b;
    cmn_buf_init(&b);
    gw_sigv4_uri_encode(&b, "a b/\xc3\xbc~*", 8, true);
    cmn_buf_terminate(&b);
    is_str((char *)b.data, "a%20b/%C3%BC~%2A", "URI-encode a key");
    b.len = 0;
    gw_sigv4_uri_encode(&b, "a b/\xc3\xbc~*", 8, false);
    cmn_buf_terminate(&b);
    is_str((char *)b.data, "a%20b%2F%C3%BC~%2A", "URI-encode a value");
    cmn_buf_free(&b);
}

int main(void)
{
    test_signer_published();
    test_signer_roundtrip();
    test_uri_encode();
    return tap_done();
}
