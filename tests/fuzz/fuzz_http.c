/* Fuzz target: the HTTP request parser (gateway/http.c) on one connection's input.
 *
 * Checked for every input, besides the sanitizers:
 *  - the same requests (heads, bodies, ends) come out whether the input arrives at once, in
 *    random pieces, or byte by byte; only the error code of a refused input may differ with
 *    the split (which limit or syntax rule trips first), never whether it is refused;
 *  - BODY slices lie inside the bytes just fed, and nothing is consumed past what was given;
 *  - the parser's memory stays within its limits;
 *  - an error carries a message;
 *  - every header the parser accepted can be echoed by the response formatter (both sides
 *    agree on what a valid header is), except the framing headers the formatter owns.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "gateway/http.h"
#include "tests/fuzz/fuzz.h"

#define CHECK(c)                                                                           \
    do {                                                                                   \
        if (!(c))                                                                          \
            __builtin_trap();                                                              \
    } while (0)

static const struct gw_http_limits limits = {
    .max_header_bytes = 1024, .max_request_line = 256, .max_headers = 16};

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void put(struct cmn_buf *b, struct gw_str s)
{
    cmn_buf_append(b, s.p, s.n);
    cmn_buf_append(b, "\x01", 1);
}

static bool framing_header(struct gw_str n)
{
    return gw_str_ieq(n, "content-length") || gw_str_ieq(n, "transfer-encoding") ||
           gw_str_ieq(n, "connection") || gw_str_ieq(n, "date");
}

static void echo_head(const struct gw_http_request *r)
{
    struct gw_header *hs = malloc((r->head.n_headers + 1) * sizeof(*hs));
    size_t n = 0;
    for (size_t i = 0; i < r->head.n_headers; i++)
        if (!framing_header(r->head.headers[i].name))
            hs[n++] = r->head.headers[i];
    struct gw_http_response resp = {.status = 200, .headers = hs, .n_headers = n,
                                    .content_length = GW_HTTP_LEN_CHUNKED,
                                    .request_minor = r->http_minor, .date_s = 1};
    struct cmn_buf b;
    cmn_buf_init(&b);
    CHECK(gw_http_format_head(&resp, &b, NULL) == 0);
    cmn_buf_free(&b);
    free(hs);
}

/* mode 0: at once; 1: random pieces; 2: byte by byte. */
static void run(const uint8_t *in, size_t len, int mode, uint64_t seed, struct cmn_buf *out)
{
    struct gw_http_parser *p;
    if (gw_http_parser_create(&limits, &p) != 0)
        return;
    size_t pos = 0, avail = 0;
    for (unsigned guard = 0; guard < 4 * len + 64; guard++) {
        struct gw_http_ev ev;
        size_t used = gw_http_feed(p, in + pos, avail - pos, &ev);
        CHECK(used <= avail - pos);
        if (ev.type == GW_HTTP_EV_BODY)
            CHECK(ev.len > 0 && ev.data >= in + pos && ev.data + ev.len <= in + pos + used);
        pos += used;
        CHECK(gw_http_memory(p) <= 2 * limits.max_header_bytes +
                                       limits.max_headers * 64);
        if (ev.type == GW_HTTP_EV_ERROR) {
            const struct gw_http_error *e = gw_http_error(p);
            CHECK(e && e->msg && e->msg[0] && e->code != GW_S3_OK);
            cmn_buf_append(out, "X", 1);
            break;
        }
        if (ev.type == GW_HTTP_EV_HEAD) {
            const struct gw_http_request *r = gw_http_request(p);
            CHECK(r);
            cmn_buf_printf(out, "H%u%d%d%d%llu", r->http_minor, r->keep_alive,
                           r->expect_continue, r->chunked,
                           (unsigned long long)r->content_length);
            put(out, r->head.method);
            put(out, r->head.target);
            put(out, r->head.path);
            put(out, r->head.query);
            for (size_t i = 0; i < r->head.n_headers; i++) {
                put(out, r->head.headers[i].name);
                put(out, r->head.headers[i].value);
            }
            echo_head(r);
            continue;
        }
        if (ev.type == GW_HTTP_EV_BODY) {
            /* Body bytes go out as they come: the concatenation must not depend on the
             * split, the slicing may. */
            cmn_buf_append(out, ev.data, ev.len);
            continue;
        }
        if (ev.type == GW_HTTP_EV_END) {
            cmn_buf_append(out, "\x02" "E", 2);
            gw_http_next(p);
            continue;
        }
        if (gw_http_state(p) == GW_HTTP_S_CLOSED)
            break;
        if (avail == len) {
            gw_http_eof(p, &ev);
            if (ev.type == GW_HTTP_EV_ERROR)
                cmn_buf_append(out, "X", 1);
            break;
        }
        size_t step = mode == 0 ? len : mode == 2 ? 1 : 1 + next_rand(&seed) % 64;
        avail = avail + step > len ? len : avail + step;
    }
    gw_http_parser_destroy(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ull;
    seed |= 1;
    struct cmn_buf a, b;
    cmn_buf_init(&a);
    cmn_buf_init(&b);
    run(data, size, 0, seed, &a);
    run(data, size, 1, seed, &b);
    CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    if (size <= 4096) {
        cmn_buf_reset(&b);
        run(data, size, 2, seed, &b);
        CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    }
    cmn_buf_free(&a);
    cmn_buf_free(&b);
    return 0;
}

#define SEED(s) {(const uint8_t *)(s), sizeof(s) - 1}
static const struct fuzz_seed seeds[] = {
    SEED("GET /bucket/key?list-type=2&prefix=a%2Fb&delimiter=%2F HTTP/1.1\r\n"
         "Host: bucket.s3.local:9000\r\nUser-Agent: test\r\nX-Amz-Date: 20130524T000000Z\r\n"
         "Authorization: AWS4-HMAC-SHA256 Credential=AKIA/20130524/us-east-1/s3/aws4_request,"
         " SignedHeaders=host;x-amz-date, Signature=abc\r\n\r\n"),
    SEED("PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nExpect: 100-continue\r\n"
         "X-Amz-Meta-A:  x y \r\n\r\nhello world"
         "GET /b/k HTTP/1.1\r\nHost: h\r\nRange: bytes=0-3\r\n\r\n"),
    SEED("PUT /b/k?partNumber=1&uploadId=u HTTP/1.1\r\nHost: h\r\n"
         "Transfer-Encoding: chunked\r\nContent-Encoding: aws-chunked\r\n\r\n"
         "a;chunk-signature=00\r\n0123456789\r\n3\r\nabc\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\n\r\n"
         "DELETE /b/k HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    SEED("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD /x HTTP/1.0\r\n\r\n"),
    SEED("POST /b?delete HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    SEED("GET http://h:1/a?b HTTP/1.1\r\nHost: h:1\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n"
         "GET / HTTP/1.1\r\n\r\n"),
};

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = sizeof(seeds) / sizeof(seeds[0]);
    return seeds;
}
