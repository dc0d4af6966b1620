/* Fuzz target: Signature Version 4 parsing, canonicalisation and verification
 * (gateway/sigv4.c) with a fixed secret and clock, and the signer (gateway/sigv4_sign.c).
 *
 * Input: "METHOD\nTARGET\nName: value\n..." (at most 32 headers). Every input must give
 * GW_S3_OK or an error with a message, never a crash. Beyond that, a property: whatever
 * request the signer accepts, the verifier accepts once the signer's headers are added
 * (checked only where the input itself carries no authentication of its own). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/sigv4.h"
#include "tests/fuzz/fuzz.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define NOW 1369353600 /* 20130524T000000Z: the seeds verify */
#define MAX_HEADERS 32

static const char seed_get[] =
    "GET\n/test.txt\nHost: examplebucket.s3.amazonaws.com\nRange: bytes=0-9\n"
    "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
    "x-amz-date: 20130524T000000Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
    "20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\n";
static const char seed_list[] =
    "GET\n/?max-keys=2&prefix=J\nHost: examplebucket.s3.amazonaws.com\n"
    "x-amz-date: 20130524T000000Z\n"
    "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
    "aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
    "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7\n";
static const char seed_presigned[] =
    "GET\n/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F"
    "20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
    "X-Amz-SignedHeaders=host&X-Amz-Signature="
    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404\n"
    "Host: examplebucket.s3.amazonaws.com\n";
static const char seed_put[] =
    "PUT\n/test%24file.text\nHost: examplebucket.s3.amazonaws.com\n"
    "Date: Fri, 24 May 2013 00:00:00 GMT\nx-amz-date: 20130524T000000Z\n"
    "x-amz-storage-class: REDUCED_REDUNDANCY\n"
    "x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
    "aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
    "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd\n";
static const char seed_unsigned[] =
    "POST\n/b%20k/o~b*j?uploads&z=%E2%82%AC&a=&a=b+c\nhost: 127.0.0.1:7480\n"
    "X-Amz-Meta-A:   spaced   out  \nx-amz-meta-a: second\n";

static const struct fuzz_seed seeds[] = {
    {(const uint8_t *)seed_get, sizeof(seed_get) - 1},
    {(const uint8_t *)seed_list, sizeof(seed_list) - 1},
    {(const uint8_t *)seed_presigned, sizeof(seed_presigned) - 1},
    {(const uint8_t *)seed_put, sizeof(seed_put) - 1},
    {(const uint8_t *)seed_unsigned, sizeof(seed_unsigned) - 1},
};

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = sizeof(seeds) / sizeof(seeds[0]);
    return seeds;
}

static struct gw_str next_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    struct gw_str s = {*p, nl ? (size_t)(nl - *p) : (size_t)(end - *p)};
    *p = nl ? nl + 1 : end;
    return s;
}

static void check_err(enum gw_s3_error rc, const struct gw_sigv4_err *e)
{
    /* A refusal must say why, with the code it returned. */
    if (rc != GW_S3_OK && (e->code != rc || e->msg[0] == '\0'))
        __builtin_trap();
}

static bool mentions(struct gw_str s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.n; i++)
        if (strncasecmp(s.p + i, needle, n) == 0)
            return true;
    return false;
}

/* The signer/verifier property on a request without authentication of its own. */
static void roundtrip(const struct gw_request_head *head)
{
    static const char *const own[] = {"authorization", "x-amz-date", "date",
                                      "x-amz-content-sha256"};
    if (mentions(head->query, "X-Amz-") || mentions(head->query, "AWSAccessKeyId") ||
        head->n_headers + 3 > MAX_HEADERS)
        return;
    for (size_t i = 0; i < head->n_headers; i++)
        for (size_t k = 0; k < 4; k++)
            if (gw_str_ieq(head->headers[i].name, own[k]))
                return;
    struct gw_sigv4_signer s = {.access_key = "LKFUZZ", .secret = SECRET, .region = "lode",
                                .time = NOW};
    struct cmn_buf authz;
    cmn_buf_init(&authz);
    char ts[GW_SIGV4_TIMESTAMP_LEN + 1];
    uint8_t seed[32];
    if (gw_sigv4_sign(&s, head, "UNSIGNED-PAYLOAD", &authz, ts, seed) != 0 ||
        cmn_buf_terminate(&authz) != 0) {
        cmn_buf_free(&authz);
        return;
    }
    struct gw_header hs[MAX_HEADERS];
    memcpy(hs, head->headers, head->n_headers * sizeof(hs[0]));
    struct gw_request_head h = *head;
    h.headers = hs;
    hs[h.n_headers++] = (struct gw_header){GW_STR("x-amz-date"), {ts, GW_SIGV4_TIMESTAMP_LEN}};
    hs[h.n_headers++] = (struct gw_header){GW_STR("x-amz-content-sha256"), GW_STR("UNSIGNED-PAYLOAD")};
    hs[h.n_headers++] = (struct gw_header){GW_STR("authorization"), {(char *)authz.data, authz.len}};
    struct gw_sigv4_auth a;
    struct gw_sigv4_err e;
    struct gw_sigv4_policy pol = {.region = "lode", .now = NOW};
    uint8_t key[32];
    if (gw_sigv4_parse(&h, &pol, &a, &e) != GW_S3_OK ||
        gw_sigv4_signing_key(SECRET, strlen(SECRET), a.date, a.region, a.service, key) != 0 ||
        gw_sigv4_verify(&h, &a, key, &e) != GW_S3_OK || memcmp(a.signature, seed, 32) != 0)
        __builtin_trap();
    cmn_buf_free(&authz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    struct gw_request_head head;
    struct gw_header hs[MAX_HEADERS];
    memset(&head, 0, sizeof(head));
    head.method = next_line(&p, end);
    head.target = next_line(&p, end);
    const char *q = memchr(head.target.p, '?', head.target.n);
    head.path = (struct gw_str){head.target.p, q ? (size_t)(q - head.target.p) : head.target.n};
    head.query = q ? (struct gw_str){q + 1, head.target.n - head.path.n - 1}
                   : (struct gw_str){head.target.p + head.target.n, 0};
    head.headers = hs;
    while (p < end && head.n_headers < MAX_HEADERS) {
        struct gw_str line = next_line(&p, end);
        const char *colon = memchr(line.p, ':', line.n);
        if (!colon)
            continue;
        struct gw_str value = {colon + 1, line.n - (size_t)(colon - line.p) - 1};
        while (value.n && value.p[0] == ' ') {
            value.p++;
            value.n--;
        }
        hs[head.n_headers++] = (struct gw_header){{line.p, (size_t)(colon - line.p)}, value};
    }

    struct gw_sigv4_auth a;
    struct gw_sigv4_err e;
    struct gw_sigv4_policy pol = {.region = size % 2 ? "us-east-1" : "", .now = NOW};
    enum gw_s3_error rc = gw_sigv4_parse(&head, &pol, &a, &e);
    check_err(rc, &e);
    if (rc == GW_S3_OK && a.kind != GW_SIGV4_ANONYMOUS) {
        uint8_t key[32];
        if (gw_sigv4_signing_key(SECRET, strlen(SECRET), a.date, a.region, a.service, key) != 0)
            __builtin_trap();
        rc = gw_sigv4_verify(&head, &a, key, &e);
        check_err(rc, &e);
        if (rc == GW_S3_OK) {
            struct gw_sigv4_chain chain;
            gw_sigv4_chain_init(&chain, &a, key);
        }
    }
    /* Canonicalise whatever came, even what parse refused. */
    struct gw_sigv4_auth any = {.kind = GW_SIGV4_PRESIGNED, .signed_headers = "host;range;x-amz-date",
                                .payload_hash = "UNSIGNED-PAYLOAD", .timestamp = "20130524T000000Z",
                                .date = "20130524", .region = "r", .service = "s3"};
    struct cmn_buf canon;
    cmn_buf_init(&canon);
    rc = gw_sigv4_canonical_request(&head, &any, &canon, &e);
    check_err(rc, &e);
    cmn_buf_free(&canon);
    roundtrip(&head);
    return 0;
}
