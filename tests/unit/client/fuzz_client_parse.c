/* Fuzz target: liblode's parsers of gateway output (client/parse.h): the session document,
 * S3 error and result documents, x-lode-sources, Content-Range, x-amz-rdma-reply and
 * host:port. Any input must give a result or a clean error, never a crash, a leak or
 * unbounded memory. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "client/parse.h"
#include "tests/fuzz/fuzz.h"

static const char seed1[] =
    "<?xml version=\"1.0\"?><LodeSession><Sid>00112233445566778899aabbccddeeff</Sid>"
    "<Expires>1700000000000</Expires><Mac>000102030405060708090a0b0c0d0e0f101112131415161718"
    "191a1b1c1d1e1f</Mac><AccessKey>AK</AccessKey><Source><Id>1</Id><Tcp>127.0.0.1:7400</Tcp>"
    "</Source><Source><Id>2147483648</Id><Tcp>[::1]:7401</Tcp><Rc>h:1</Rc></Source>"
    "</LodeSession>";
static const char seed2[] = "<Error><Code>NoSuchKey</Code><Message>a &amp; b &#x41;</Message>"
                            "</Error>";
static const char seed3[] = "1=100, 2=200,2147483649=0";
static const char seed4[] = "bytes 0-99/1000";
static const char seed5[] = "<InitiateMultipartUploadResult><Bucket>b</Bucket><UploadId>a&amp;b"
                            "</UploadId></InitiateMultipartUploadResult>";
static const struct fuzz_seed seeds[] = {
    {(const uint8_t *)seed1, sizeof(seed1) - 1},
    {(const uint8_t *)seed2, sizeof(seed2) - 1},
    {(const uint8_t *)seed3, sizeof(seed3) - 1},
    {(const uint8_t *)seed4, sizeof(seed4) - 1},
    {(const uint8_t *)seed5, sizeof(seed5) - 1},
};

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = sizeof(seeds) / sizeof(seeds[0]);
    return seeds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct lc_session sess;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (lc_session_parse(s, size, &sess, &err) == 0) {
        /* What the parser promises about an accepted document. */
        if (sess.n_src == 0 || sess.n_src > LC_SESSION_MAX_SOURCES || !sess.access_key[0])
            __builtin_trap();
        for (size_t i = 0; i < sess.n_src; i++)
            if (!sess.src[i].has_tcp && !sess.src[i].has_rc)
                __builtin_trap();
        lc_session_free(&sess);
    } else if (sess.src || sess.n_src || !err.msg[0]) {
        __builtin_trap();
    }
    char code[64], msg[128];
    lc_s3_error_parse(s, size, code, sizeof(code), msg, sizeof(msg));
    if (strlen(code) >= sizeof(code) || strlen(msg) >= sizeof(msg))
        __builtin_trap();
    char id[32];
    int rc = lc_s3_result_field(s, size, "InitiateMultipartUploadResult", "UploadId", id,
                                sizeof(id));
    if ((rc == 0 && (id[0] == '\0' || strlen(id) >= sizeof(id))) || (rc != 0 && id[0]))
        __builtin_trap();
    struct lc_src_bytes src[8];
    size_t n = 0;
    if (lc_parse_sources(s, size, src, 8, &n) == 0 && n > 8)
        __builtin_trap();
    uint64_t a, b, t;
    if (lc_parse_content_range(s, size, &a, &b, &t) == 0 && a != UINT64_MAX &&
        (a > b || (t != UINT64_MAX && b >= t)))
        __builtin_trap();
    int r = lc_parse_rdma_reply(s, size);
    if (r >= 0 && (r < 100 || r > 599))
        __builtin_trap();
    char host[64];
    uint16_t port;
    if (lc_split_hostport(s, size, host, sizeof(host), &port) == 0 && (port == 0 || !host[0]))
        __builtin_trap();
    return 0;
}
