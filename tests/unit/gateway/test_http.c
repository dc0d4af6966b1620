/* gateway/http.c: the request parser over llhttp (every split of the input gives the same
 * requests, limits hold exactly, smuggling inputs are refused) and the response-head
 * formatter (exact bytes). Expected transcripts are written out by hand from the requests;
 * dates were computed with Python's standard library, e.g.
 *   python3 -c "import email.utils; print(email.utils.formatdate(784111777, usegmt=True))"
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "gateway/http.h"
#include "tests/tap.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

enum split {
    SPLIT_NONE,                    /* all at once */
    SPLIT_BYTES,                   /* one byte per read */
    SPLIT_RANDOM,                  /* 1..17 bytes per read */
};

static void put_str(struct cmn_buf *b, struct gw_str s)
{
    cmn_buf_append(b, s.p, s.n);
}

/* Parses `in` as one connection's input arriving in pieces and writes what the parser
 * reported as text: one "H ..." line plus indented headers per head, "B[...]" for the body
 * and "E" per request, "X <code> <status>" for an error, "EOF-X <code>" when EOF was bad. */
static char *transcript(const struct gw_http_limits *lim, const char *in, size_t len,
                        enum split mode, bool eof)
{
    struct gw_http_parser *p;
    if (gw_http_parser_create(lim, &p) != 0)
        tap_bail("parser_create");
    struct cmn_buf out, body;
    cmn_buf_init(&out);
    cmn_buf_init(&body);
    size_t pos = 0, avail = 0;
    for (;;) {
        struct gw_http_ev ev;
        size_t used = gw_http_feed(p, in + pos, avail - pos, &ev);
        pos += used;
        if (ev.type == GW_HTTP_EV_ERROR) {
            const struct gw_http_error *e = gw_http_error(p);
            cmn_buf_printf(&out, "X %d\n", (int)e->code);
            break;
        }
        if (ev.type == GW_HTTP_EV_HEAD) {
            const struct gw_http_request *r = gw_http_request(p);
            cmn_buf_printf(&out, "H ");
            put_str(&out, r->head.method);
            cmn_buf_printf(&out, " ");
            put_str(&out, r->head.target);
            cmn_buf_printf(&out, " p=");
            put_str(&out, r->head.path);
            cmn_buf_printf(&out, " q=");
            put_str(&out, r->head.query);
            cmn_buf_printf(&out, " v=%u ka=%d ex=%d ch=%d", r->http_minor, r->keep_alive,
                           r->expect_continue, r->chunked);
            if (r->has_content_length)
                cmn_buf_printf(&out, " cl=%llu", (unsigned long long)r->content_length);
            cmn_buf_printf(&out, "\n");
            for (size_t i = 0; i < r->head.n_headers; i++) {
                cmn_buf_printf(&out, "  ");
                put_str(&out, r->head.headers[i].name);
                cmn_buf_printf(&out, "=");
                put_str(&out, r->head.headers[i].value);
                cmn_buf_printf(&out, "|\n");
            }
            continue;
        }
        if (ev.type == GW_HTTP_EV_BODY) {
            cmn_buf_append(&body, ev.data, ev.len);
            continue;
        }
        if (ev.type == GW_HTTP_EV_END) {
            if (body.len) {
                cmn_buf_printf(&out, "B[");
                cmn_buf_append(&out, body.data, body.len);
                cmn_buf_printf(&out, "]\n");
            }
            cmn_buf_reset(&body);
            cmn_buf_printf(&out, "E\n");
            gw_http_next(p);
            continue;
        }
        /* NONE: everything offered was consumed, or the parser waits for good */
        if (gw_http_state(p) == GW_HTTP_S_CLOSED) {
            cmn_buf_printf(&out, "CLOSED\n");
            break;
        }
        if (avail == len) {
            if (eof) {
                gw_http_eof(p, &ev);
                if (ev.type == GW_HTTP_EV_ERROR)
                    cmn_buf_printf(&out, "EOF-X %d\n", (int)gw_http_error(p)->code);
            }
            break;
        }
        size_t step = mode == SPLIT_NONE ? len : mode == SPLIT_BYTES ? 1 : 1 + rng() % 17;
        avail = avail + step > len ? len : avail + step;
    }
    gw_http_parser_destroy(p);
    cmn_buf_free(&body);
    cmn_buf_terminate(&out);
    return (char *)cmn_buf_steal(&out, NULL);
}

/* The transcript must be `want` however the input is split. */
static void check_all_splits(const struct gw_http_limits *lim, const char *in, size_t len,
                             const char *want, const char *what)
{
    int bad = 0;
    char *got = NULL;
    for (int mode = 0; mode < 3 && !bad; mode++) {
        for (int rep = 0; rep < (mode == SPLIT_RANDOM ? 20 : 1) && !bad; rep++) {
            free(got);
            got = transcript(lim, in, len, (enum split)mode, false);
            if (strcmp(got, want) != 0)
                bad = mode + 1;
        }
    }
    ok(!bad, "%s (all at once, byte by byte, 20 random splits)", what);
    if (bad)
        diag("split mode %d gave:\n%s\nwant:\n%s", bad - 1, got, want);
    free(got);
}

#define CHECK(in, want, what) check_all_splits(NULL, in, sizeof(in) - 1, want, what)

static char code_line[32];
static const char *x(enum gw_s3_error code)
{
    snprintf(code_line, sizeof(code_line), "X %d\n", (int)code);
    return code_line;
}

static void test_basic(void)
{
    CHECK("GET /bucket/key%20a?list-type=2&prefix=a HTTP/1.1\r\n"
          "Host: s3.local\r\n"
          "X-Amz-Meta-Colour:   blue  green \t\r\n"
          "Empty:\r\n"
          "x-amz-meta-colour: red\r\n"
          "\r\n",
          "H GET /bucket/key%20a?list-type=2&prefix=a p=/bucket/key%20a q=list-type=2&prefix=a"
          " v=1 ka=1 ex=0 ch=0\n"
          "  Host=s3.local|\n"
          "  X-Amz-Meta-Colour=blue  green|\n"
          "  Empty=|\n"
          "  x-amz-meta-colour=red|\n"
          "E\n",
          "GET: path, query, names as sent, values trimmed, repeated names kept");

    CHECK("PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
          "H PUT /b/k p=/b/k q= v=1 ka=1 ex=0 ch=0 cl=11\n"
          "  Host=h|\n  Content-Length=11|\n"
          "B[hello world]\nE\n",
          "PUT with a Content-Length body");

    CHECK("PUT /b/k?uploadId=x&partNumber=1 HTTP/1.1\r\nHost: h\r\n"
          "Transfer-Encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n"
          "1;ext=\"v\";b\r\n \r\n"
          "A\r\n0123456789\r\n"
          "0\r\nX-Trailer: dropped\r\n\r\n",
          "H PUT /b/k?uploadId=x&partNumber=1 p=/b/k q=uploadId=x&partNumber=1 v=1 ka=1 ex=0"
          " ch=1\n"
          "  Host=h|\n  Transfer-Encoding=chunked|\n"
          "B[hello 0123456789]\nE\n",
          "chunked body: extensions ignored, upper-case hex, trailers dropped");

    CHECK("GET http://s3.local:9000/bucket/obj?acl HTTP/1.1\r\nHost: s3.local:9000\r\n\r\n"
          "GET http://s3.local HTTP/1.1\r\nHost: s3.local\r\n\r\n"
          "GET /? HTTP/1.1\r\nHost: h\r\n\r\n"
          "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
          "H GET http://s3.local:9000/bucket/obj?acl p=/bucket/obj q=acl v=1 ka=1 ex=0 ch=0\n"
          "  Host=s3.local:9000|\nE\n"
          "H GET http://s3.local p=/ q= v=1 ka=1 ex=0 ch=0\n  Host=s3.local|\nE\n"
          "H GET /? p=/ q= v=1 ka=1 ex=0 ch=0\n  Host=h|\nE\n"
          "H OPTIONS * p=* q= v=1 ka=1 ex=0 ch=0\n  Host=h|\nE\n",
          "absolute-form target reduced to path and query; empty query; asterisk form");
}

static void test_pipelining(void)
{
    CHECK("PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
          "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
          "\r\n" /* a stray CRLF between requests is allowed (RFC 9112 2.2) */
          "POST /c?delete HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
          "2\r\nxy\r\n0\r\n\r\n"
          "HEAD /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
          "H PUT /a p=/a q= v=1 ka=1 ex=0 ch=0 cl=3\n  Host=h|\n  Content-Length=3|\n"
          "B[abc]\nE\n"
          "H GET /b p=/b q= v=1 ka=1 ex=0 ch=0\n  Host=h|\nE\n"
          "H POST /c?delete p=/c q=delete v=1 ka=1 ex=0 ch=1\n  Host=h|\n"
          "  Transfer-Encoding=chunked|\nB[xy]\nE\n"
          "H HEAD /d p=/d q= v=1 ka=0 ex=0 ch=0\n  Host=h|\n  Connection=close|\nE\n",
          "four pipelined requests, each after the previous one's END");

    /* The parser must stop after END until gw_http_next(), keeping the next request. */
    static const char two[] = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    struct gw_http_parser *p;
    gw_http_parser_create(NULL, &p);
    struct gw_http_ev ev;
    size_t used = gw_http_feed(p, two, sizeof(two) - 1, &ev);
    is_int(ev.type, GW_HTTP_EV_HEAD, "first feed reports the head");
    is_int(used, 28, "and consumes exactly the first head (28 bytes)");
    size_t used2 = gw_http_feed(p, two + used, sizeof(two) - 1 - used, &ev);
    ok(ev.type == GW_HTTP_EV_END && used2 == 0, "a bodiless request ends without consuming");
    size_t used3 = gw_http_feed(p, two + used, sizeof(two) - 1 - used, &ev);
    ok(ev.type == GW_HTTP_EV_NONE && used3 == 0 && gw_http_state(p) == GW_HTTP_S_DONE,
       "after END the parser waits: nothing of the next request is consumed");
    gw_http_next(p);
    ok(gw_http_request(p) == NULL && gw_http_state(p) == GW_HTTP_S_IDLE, "next: idle again");
    used = gw_http_feed(p, two + 28, sizeof(two) - 1 - 28, &ev);
    ok(ev.type == GW_HTTP_EV_HEAD && gw_str_eq(gw_http_request(p)->head.path, "/2"),
       "then the second request is parsed");
    gw_http_parser_destroy(p);
}

static void test_head_copied(void)
{
    static const char req[] = "PUT /obj HTTP/1.1\r\nHost: example\r\nX-Amz-Meta-A: one\r\n"
                              "Content-Length: 4\r\n\r\nbody";
    char *buf = malloc(sizeof(req));
    memcpy(buf, req, sizeof(req));
    struct gw_http_parser *p;
    gw_http_parser_create(NULL, &p);
    struct gw_http_ev ev;
    size_t used = gw_http_feed(p, buf, sizeof(req) - 1, &ev);
    /* The socket buffer is reused for the body: the head must not live in it. */
    memset(buf, 'Z', used);
    const struct gw_http_request *r = gw_http_request(p);
    const struct gw_header *h = gw_header_find(&r->head, "x-amz-meta-a");
    ok(h && gw_str_eq(h->value, "one") && gw_str_eq(r->head.method, "PUT") &&
           gw_str_eq(r->head.path, "/obj"),
       "head strings live in the parser's arena, not in the input buffer");
    used = gw_http_feed(p, buf + used, sizeof(req) - 1 - used, &ev);
    ok(ev.type == GW_HTTP_EV_BODY && ev.len == 4 && memcmp(ev.data, "body", 4) == 0,
       "body slice points into the input");
    ok(gw_str_eq(gw_header_find(&r->head, "host")->value, "example"),
       "head still valid while the body streams");
    gw_http_parser_destroy(p);
    free(buf);
}

static void test_limits(void)
{
    struct gw_http_limits lim = {.max_header_bytes = 256, .max_request_line = 64,
                                 .max_headers = 4};
    char req[1024];
    /* Exactly 256 bytes of head: accepted; 257: refused, however it is split. */
    const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    size_t fixed = strlen(pre) + 4; /* CRLF after the value, CRLF at the end */
    memset(req, 0, sizeof(req));
    strcpy(req, pre);
    memset(req + strlen(pre), 'a', 256 - fixed);
    strcat(req, "\r\n\r\n");
    is_int(strlen(req), 256, "the head is 256 bytes");
    char want[512];
    snprintf(want, sizeof(want), "H GET / p=/ q= v=1 ka=1 ex=0 ch=0\n  Host=h|\n  X-Pad=%.*s|\nE\n",
             (int)(256 - fixed), req + strlen(pre));
    check_all_splits(&lim, req, 256, want, "a head of exactly max_header_bytes is accepted");

    memmove(req + strlen(pre) + 1, req + strlen(pre), 256 - strlen(pre) + 1);
    req[strlen(pre)] = 'a';
    is_int(strlen(req), 257, "one byte more");
    check_all_splits(&lim, req, 257, x(GW_S3_REQUEST_HEADER_TOO_LARGE),
                     "a head one byte over max_header_bytes is refused");

    /* Leading empty lines count too, so an endless stream of them is cut off. */
    memset(req, 0, sizeof(req));
    for (int i = 0; i < 200; i++)
        strcat(req, "\r\n");
    check_all_splits(&lim, req, 400, x(GW_S3_REQUEST_HEADER_TOO_LARGE),
                     "endless empty lines before a request hit the head limit");

    CHECK("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
          "H GET / p=/ q= v=1 ka=1 ex=0 ch=0\n  Host=h|\n  A=1|\n  B=2|\n  C=3|\nE\n",
          "default limits: four headers fine");
    static const char five[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    check_all_splits(&lim, five, sizeof(five) - 1, x(GW_S3_REQUEST_HEADER_TOO_LARGE),
                     "five headers with max_headers 4 refused");
    static const char four[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    check_all_splits(&lim, four, sizeof(four) - 1,
                     "H GET / p=/ q= v=1 ka=1 ex=0 ch=0\n  Host=h|\n  A=1|\n  B=2|\n  C=3|\nE\n",
                     "four headers with max_headers 4 accepted");
    static const char trailers[] = "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "0\r\nT1: a\r\nT2: b\r\nT3: c\r\n\r\n";
    char want_t[256];
    snprintf(want_t, sizeof(want_t),
             "H PUT / p=/ q= v=1 ka=1 ex=0 ch=1\n  Host=h|\n  Transfer-Encoding=chunked|\nX %d\n",
             (int)GW_S3_REQUEST_HEADER_TOO_LARGE);
    check_all_splits(&lim, trailers, sizeof(trailers) - 1, want_t,
                     "trailers count against max_headers");

    /* Request line: method + target at most 64 bytes. */
    memset(req, 0, sizeof(req));
    strcpy(req, "GET /");
    memset(req + 5, 'k', 59); /* 3 + 60 = 63 */
    strcat(req, " HTTP/1.1\r\nHost: h\r\n\r\n");
    char want2[256];
    snprintf(want2, sizeof(want2), "H GET /%.*s p=/%.*s q= v=1 ka=1 ex=0 ch=0\n  Host=h|\nE\n", 59,
             req + 5, 59, req + 5);
    check_all_splits(&lim, req, strlen(req), want2, "request line of 63 bytes accepted");
}

static void test_limits_line(void)
{
    struct gw_http_limits lim = {.max_header_bytes = 256, .max_request_line = 64,
                                 .max_headers = 4};
    char req[256] = "GET /";
    memset(req + 5, 'k', 61); /* 3 + 62 + ... = 65 > 64 */
    strcat(req, " HTTP/1.1\r\nHost: h\r\n\r\n");
    check_all_splits(&lim, req, strlen(req), x(GW_S3_REQUEST_HEADER_TOO_LARGE),
                     "request line over max_request_line refused");
}

static void test_bad_chunks(void)
{
    const char *pre = "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *head_line = "H PUT / p=/ q= v=1 ka=1 ex=0 ch=1\n  Host=h|\n"
                            "  Transfer-Encoding=chunked|\n";
    static const struct {
        const char *body;
        const char *what;
    } bad[] = {
        {"zz\r\nab\r\n0\r\n\r\n", "non-hex chunk size"},
        {"-1\r\nab\r\n0\r\n\r\n", "negative chunk size"},
        {"ffffffffffffffffff\r\n", "chunk size overflowing 64 bits"},
        {"2\r\nabc\r\n0\r\n\r\n", "chunk longer than its size"},
        {"2\nab\n0\n\n", "bare LF in chunk framing"},
        {"2 \r\nab\r\n0\r\n\r\n", "space after chunk size"},
        {"\r\n", "empty chunk size"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char in[256], want[256];
        snprintf(in, sizeof(in), "%s%s", pre, bad[i].body);
        snprintf(want, sizeof(want), "%sX %d\n", head_line, (int)GW_S3_BAD_REQUEST);
        char what[128];
        snprintf(what, sizeof(what), "refused: %s", bad[i].what);
        check_all_splits(NULL, in, strlen(in), want, what);
    }
}

static void test_smuggling(void)
{
    static const struct {
        const char *req;
        enum gw_s3_error code;
        const char *what;
    } bad[] = {
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n",
         GW_S3_BAD_REQUEST, "Content-Length with Transfer-Encoding"},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
         "0\r\n\r\n",
         GW_S3_BAD_REQUEST, "Transfer-Encoding with Content-Length"},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
         GW_S3_BAD_REQUEST, "two Content-Length values"},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
         GW_S3_BAD_REQUEST, "repeated equal Content-Length"},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc", GW_S3_BAD_REQUEST,
         "list-valued Content-Length"},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", GW_S3_BAD_REQUEST,
         "signed Content-Length"},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", GW_S3_BAD_REQUEST,
         "obs-fold continuation line"},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A : a\r\n\r\n", GW_S3_BAD_REQUEST,
         "space before the colon"},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A\t: a\r\n\r\n", GW_S3_BAD_REQUEST,
         "tab before the colon"},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-\x01: a\r\n\r\n", GW_S3_BAD_REQUEST,
         "control character in a name"},
        {"GET / HTTP/1.1\r\nHost: h\r\nX[A]: a\r\n\r\n", GW_S3_BAD_REQUEST,
         "separator in a name"},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n", GW_S3_BAD_REQUEST, "DEL in a value"},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", GW_S3_BAD_REQUEST, "bare CR in a value"},
        {"GET / HTTP/1.1\r\nHost: h\nX-A: a\r\n\r\n", GW_S3_BAD_REQUEST, "bare LF line end"},
        {"GET / HTTP/1.1\r\n: a\r\nHost: h\r\n\r\n", GW_S3_BAD_REQUEST, "empty header name"},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
         GW_S3_BAD_REQUEST, "chunked not the final coding"},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         GW_S3_NOT_IMPLEMENTED, "a coding besides chunked"},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         GW_S3_BAD_REQUEST, "Transfer-Encoding twice (chunked applied twice)"},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc", GW_S3_BAD_REQUEST,
         "a request coding that does not end with chunked (RFC 9112 6.3)"},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
         GW_S3_BAD_REQUEST, "look-alike of chunked"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", GW_S3_BAD_REQUEST,
         "Transfer-Encoding in HTTP/1.0"},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", GW_S3_BAD_REQUEST, "two Host headers"},
        {"GET / HTTP/1.1\r\nX-A: a\r\n\r\n", GW_S3_BAD_REQUEST, "HTTP/1.1 without Host"},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", GW_S3_BAD_REQUEST, "HTTP/2.0 request line"},
        {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", GW_S3_BAD_REQUEST, "HTTP/2 preface"},
        {"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n", GW_S3_BAD_REQUEST, "junk after the version"},
        {"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", GW_S3_BAD_REQUEST, "space inside the target"},
        {"GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", GW_S3_INVALID_URI, "control char in target"},
        {"GET /a\x00 HTTP/1.1\r\nHost: h\r\n\r\n", GW_S3_INVALID_URI, "NUL in target"},
        {"FROB / HTTP/1.1\r\nHost: h\r\n\r\n", GW_S3_BAD_REQUEST, "unknown method"},
        {"get / HTTP/1.1\r\nHost: h\r\n\r\n", GW_S3_BAD_REQUEST, "lower-case method"},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", GW_S3_BAD_REQUEST, "TLS hello"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* NUL inside the literal: measure the fixed ones by hand. */
        size_t len = strlen(bad[i].req);
        if (strstr(bad[i].what, "NUL in target"))
            len = sizeof("GET /a\x00 HTTP/1.1\r\nHost: h\r\n\r\n") - 1;
        if (strstr(bad[i].what, "TLS hello"))
            len = 11;
        char *got = transcript(NULL, bad[i].req, len, SPLIT_BYTES, false);
        /* Some are refused after the head (when the body shows it), most before: only the
         * error line matters, and that no request reached END. */
        const char *xl = strrchr(got, 'X');
        char want[16];
        snprintf(want, sizeof(want), "X %d\n", (int)bad[i].code);
        ok(xl && strcmp(xl, want) == 0 && !strstr(got, "E\n"), "refused: %s", bad[i].what);
        if (!(xl && strcmp(xl, want) == 0))
            diag("got: %s", got);
        free(got);
    }
}

static void test_expect_keepalive(void)
{
    CHECK("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nz",
          "H PUT / p=/ q= v=1 ka=1 ex=1 ch=0 cl=1\n  Host=h|\n  Expect=100-Continue|\n"
          "  Content-Length=1|\nB[z]\nE\n",
          "Expect: 100-continue seen (case-insensitively)");
    CHECK("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
          "H PUT / p=/ q= v=0 ka=0 ex=0 ch=0 cl=1\n  Expect=100-continue|\n"
          "  Content-Length=1|\nB[z]\nE\n",
          "Expect ignored in HTTP/1.0 (RFC 9110 10.1.1); 1.0 closes by default");
    CHECK("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
          "H PUT / p=/ q= v=1 ka=1 ex=0 ch=0\n  Host=h|\n  Expect=200-ok|\nE\n",
          "another expectation is not 100-continue");
    CHECK("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
          "H GET / p=/ q= v=0 ka=1 ex=0 ch=0\n  Connection=keep-alive|\nE\n"
          "H GET / p=/ q= v=0 ka=0 ex=0 ch=0\nE\n",
          "HTTP/1.0 keeps the connection only when asked");
    CHECK("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n",
          "H GET / p=/ q= v=1 ka=0 ex=0 ch=0\n  Host=h|\n  Connection=Close|\nE\n",
          "Connection: close ends keep-alive");
    CHECK("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
          "GET /never HTTP/1.1\r\nHost: h\r\n\r\n",
          "H GET / p=/ q= v=1 ka=0 ex=0 ch=0\n  Host=h|\n  Connection=Upgrade|\n"
          "  Upgrade=websocket|\nE\nCLOSED\n",
          "upgrade request: answered as plain HTTP, nothing parsed after it");
    CHECK("CONNECT s3.local:443 HTTP/1.1\r\nHost: s3.local:443\r\n\r\nbytes",
          "H CONNECT s3.local:443 p=s3.local:443 q= v=1 ka=0 ex=0 ch=0\n"
          "  Host=s3.local:443|\nE\nCLOSED\n",
          "CONNECT: passed to the router, tunnel bytes never parsed");
}

static void test_eof_cases(void)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: h\r\n";
    char want[64];
    char *got = transcript(NULL, head, sizeof(head) - 1, SPLIT_RANDOM, true);
    snprintf(want, sizeof(want), "EOF-X %d\n", (int)GW_S3_BAD_REQUEST);
    is_str(got, want, "EOF inside a head: BadRequest");
    free(got);

    static const char body[] = "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345";
    got = transcript(NULL, body, sizeof(body) - 1, SPLIT_RANDOM, true);
    snprintf(want, sizeof(want), "EOF-X %d\n", (int)GW_S3_INCOMPLETE_BODY);
    ok(strstr(got, want) && !strstr(got, "E\n"), "EOF inside a body: IncompleteBody");
    free(got);

    static const char chunked[] = "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                  "\r\n5\r\nabcde\r\n";
    got = transcript(NULL, chunked, sizeof(chunked) - 1, SPLIT_BYTES, true);
    ok(strstr(got, want) && !strstr(got, "E\n"), "EOF before the last chunk: IncompleteBody");
    free(got);

    static const char full[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\n";
    got = transcript(NULL, full, sizeof(full) - 1, SPLIT_BYTES, true);
    is_str(got, "H GET / p=/ q= v=1 ka=1 ex=0 ch=0\n  Host=h|\nE\n",
           "EOF between requests is not an error");
    free(got);
}

static void test_memory(void)
{
    struct gw_http_parser *p;
    gw_http_parser_create(NULL, &p);
    char *req = malloc(70000);
    strcpy(req, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    size_t n = strlen(req);
    memset(req + n, 'v', 60000);
    memcpy(req + n + 60000, "\r\n\r\n", 4);
    struct gw_http_ev ev;
    gw_http_feed(p, req, n + 60004, &ev);
    ok(ev.type == GW_HTTP_EV_HEAD, "a 60 KB head fits the default 64 KiB limit");
    size_t mem = gw_http_memory(p);
    ok(mem >= 60000 && mem <= 2 * GW_HTTP_DEFAULT_MAX_HEADER_BYTES,
       "its memory is bounded by the limit (%zu bytes)", mem);
    gw_http_feed(p, "", 0, &ev);
    is_int(ev.type, GW_HTTP_EV_END, "ends");
    gw_http_next(p);
    ok(gw_http_memory(p) < 16384, "after the request a large arena is released (%zu bytes)",
       gw_http_memory(p));
    free(req);
    gw_http_parser_destroy(p);
}

static void test_format(void)
{
    struct cmn_buf b;
    cmn_buf_init(&b);
    char date[GW_HTTP_DATE_SIZE];
    gw_http_format_date(784111777, date);
    is_str(date, "Sun, 06 Nov 1994 08:49:37 GMT", "RFC 9110 example date");
    gw_http_format_date(951825600, date);
    is_str(date, "Tue, 29 Feb 2000 12:00:00 GMT", "leap day");
    gw_http_format_date(2147483648, date);
    is_str(date, "Tue, 19 Jan 2038 03:14:08 GMT", "past 2^31 seconds");
    gw_http_format_date(-5, date);
    is_str(date, "Thu, 01 Jan 1970 00:00:00 GMT", "negative clamps to the epoch");
    gw_http_format_date(INT64_MAX, date);
    is_str(date, "Fri, 31 Dec 9999 23:59:59 GMT", "far future clamps to year 9999");

    char ch[GW_HTTP_CHUNK_HEADER_SIZE];
    is_int(gw_http_chunk_header(8000, ch), 6, "chunk header length");
    is_str(ch, "1f40\r\n", "chunk header for 8000 bytes");
    gw_http_chunk_header(UINT64_MAX, ch);
    is_str(ch, "ffffffffffffffff\r\n", "chunk header for 2^64-1");

    struct gw_header hs[] = {
        {GW_STR("ETag"), GW_STR("\"d41d8cd98f00b204e9800998ecf8427e\"")},
        {GW_STR("x-amz-request-id"), GW_STR("0123456789abcdef")},
    };
    struct gw_http_response r = {.status = 200, .headers = hs, .n_headers = 2,
                                 .content_length = 5, .request_minor = 1,
                                 .date_s = 784111777};
    enum gw_http_framing fr;
    cmn_buf_reset(&b);
    is_int(gw_http_format_head(&r, &b, &fr), 0, "200 formats");
    cmn_buf_terminate(&b);
    is_str((char *)b.data,
           "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
           "ETag: \"d41d8cd98f00b204e9800998ecf8427e\"\r\n"
           "x-amz-request-id: 0123456789abcdef\r\nContent-Length: 5\r\n\r\n",
           "200 with Content-Length: exact bytes");
    is_int(fr, GW_HTTP_FRAME_LENGTH, "framing: length");

    r.content_length = GW_HTTP_LEN_CHUNKED;
    r.n_headers = 0;
    r.close = true;
    cmn_buf_reset(&b);
    gw_http_format_head(&r, &b, &fr);
    cmn_buf_terminate(&b);
    is_str((char *)b.data,
           "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
           "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
           "chunked response that closes: exact bytes");
    is_int(fr, GW_HTTP_FRAME_CHUNKED, "framing: chunked");

    r.close = false;
    r.request_minor = 0;
    cmn_buf_reset(&b);
    gw_http_format_head(&r, &b, &fr);
    cmn_buf_terminate(&b);
    is_str((char *)b.data,
           "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
           "unknown length for an HTTP/1.0 client: close-delimited");
    is_int(fr, GW_HTTP_FRAME_CLOSE, "framing: close");

    r.content_length = 0;
    cmn_buf_reset(&b);
    gw_http_format_head(&r, &b, &fr);
    cmn_buf_terminate(&b);
    is_str((char *)b.data,
           "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n"
           "Connection: keep-alive\r\n\r\n",
           "HTTP/1.0 client kept alive: says so");

    r.request_minor = 1;
    r.status = 204;
    r.content_length = 10;
    cmn_buf_reset(&b);
    gw_http_format_head(&r, &b, &fr);
    cmn_buf_terminate(&b);
    is_str((char *)b.data,
           "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
           "204 never carries Content-Length");
    is_int(fr, GW_HTTP_FRAME_NONE, "framing: none");

    r.status = 304;
    r.content_length = 10;
    cmn_buf_reset(&b);
    gw_http_format_head(&r, &b, &fr);
    cmn_buf_terminate(&b);
    is_str((char *)b.data,
           "HTTP/1.1 304 Not Modified\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
           "Content-Length: 10\r\n\r\n",
           "304 may carry the length the GET would have");
    is_int(fr, GW_HTTP_FRAME_NONE, "but no body follows");

    r.status = 200;
    r.head_request = true;
    r.content_length = 1048576;
    cmn_buf_reset(&b);
    gw_http_format_head(&r, &b, &fr);
    cmn_buf_terminate(&b);
    is_str((char *)b.data,
           "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
           "Content-Length: 1048576\r\n\r\n",
           "HEAD: the GET's Content-Length");
    is_int(fr, GW_HTTP_FRAME_NONE, "HEAD: no body follows");

    r.head_request = false;
    r.status = 404;
    r.content_length = GW_HTTP_LEN_NONE;
    cmn_buf_reset(&b);
    gw_http_format_head(&r, &b, &fr);
    cmn_buf_terminate(&b);
    is_str((char *)b.data,
           "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
           "Content-Length: 0\r\n\r\n",
           "bodiless 404 still says Content-Length: 0");

    /* Response splitting and framing headers are refused; out is left as it was. */
    static const struct gw_header evil[][1] = {
        {{GW_STR("X-A"), GW_STR("a\r\nSet-Cookie: x")}},
        {{GW_STR("X-A"), GW_STR("a\nb")}},
        {{GW_STR("X-A"), {"a\0b", 3}}},
        {{GW_STR("X A"), GW_STR("v")}},
        {{GW_STR("X-A:"), GW_STR("v")}},
        {{GW_STR(""), GW_STR("v")}},
        {{GW_STR("Content-Length"), GW_STR("5")}},
        {{GW_STR("transfer-encoding"), GW_STR("chunked")}},
        {{GW_STR("Connection"), GW_STR("keep-alive")}},
        {{GW_STR("date"), GW_STR("x")}},
    };
    int refused = 0;
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
        struct gw_http_response e = {.status = 200, .headers = evil[i], .n_headers = 1,
                                     .content_length = 0, .request_minor = 1};
        cmn_buf_reset(&b);
        cmn_buf_append(&b, "keep", 4);
        if (gw_http_format_head(&e, &b, NULL) == -EINVAL && b.len == 4)
            refused++;
    }
    is_int(refused, (int)(sizeof(evil) / sizeof(evil[0])),
           "CR/LF/NUL in values, bad names and framing headers refused, buffer untouched");
    struct gw_header tab = {GW_STR("X-Tab"), GW_STR("a\tb \x80\xff")};
    struct gw_http_response t = {.status = 200, .headers = &tab, .n_headers = 1,
                                 .request_minor = 1};
    cmn_buf_reset(&b);
    is_int(gw_http_format_head(&t, &b, NULL), 0, "HTAB and obs-text bytes are allowed");
    t.status = 99;
    is_int(gw_http_format_head(&t, &b, NULL), -EINVAL, "status 99 refused");
    t.status = 600;
    is_int(gw_http_format_head(&t, &b, NULL), -EINVAL, "status 600 refused");
    t.status = 200;
    t.content_length = -3;
    is_int(gw_http_format_head(&t, &b, NULL), -EINVAL, "negative length refused");

    is_str(gw_http_reason(503), "Service Unavailable", "reason 503");
    is_str(gw_http_reason(416), "Range Not Satisfiable", "reason 416");
    is_str(gw_http_reason(299), "Unknown", "unlisted status");
    cmn_buf_free(&b);
}

int main(void)
{
    test_basic();
    test_pipelining();
    test_head_copied();
    test_limits();
    test_limits_line();
    test_bad_chunks();
    test_smuggling();
    test_expect_keepalive();
    test_eof_cases();
    test_memory();
    test_format();
    return tap_done();
}
