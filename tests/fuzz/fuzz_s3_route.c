/* Fuzz target: S3 routing and the request-level helpers (gateway/s3_route.c, s3_util.c,
 * s3_cond.c, s3_error.c). The input is a request in lines:
 *   METHOD\n TARGET\n HOST\n then "name: value" header lines.
 * Whatever it is, routing gives an operation whose bucket and key obey the documented rules,
 * or an S3 error whose document is well-formed XML; the helpers run on the headers too. */
#include <stdlib.h>
#include <string.h>

#include "gateway/s3_route.h"
#include "gateway/s3_util.h"
#include "gateway/xml.h"
#include "tests/fuzz/fuzz.h"

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c))                                                                            \
            __builtin_trap();                                                                \
    } while (0)

#define MAX_HEADERS 32

static const char *const domains[] = {"s3.example.com", "localhost"};

static struct gw_str line(const char **p, const char *end)
{
    const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    return (struct gw_str){s, (size_t)(e - s)};
}

static void exercise_helpers(const struct gw_request_head *h, const struct gw_route *r)
{
    struct gw_s3_err err;
    struct gw_conditions c;
    gw_conditions_from_headers(h, false, &c);
    gw_conditions_eval(&c, GW_COND_READ, true, GW_STR("\"abc\""), 1255369830123, &err);
    gw_conditions_eval(&c, GW_COND_WRITE, false, GW_STR("abc"), 0, &err);
    gw_conditions_from_headers(h, true, &c);
    gw_conditions_eval(&c, GW_COND_COPY_SOURCE, true, GW_STR("abc"), 0, &err);
    const struct gw_header *rg = gw_header_find(h, "range");
    if (rg) {
        static const uint64_t sizes[] = {0, 1, 10, 1u << 20, UINT64_MAX};
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            struct gw_range range;
            if (gw_range_parse(rg->value, sizes[i], &range, &err) == GW_S3_OK && range.active)
                CHECK(range.first <= range.last && range.last < sizes[i]);
            if (gw_copy_range_parse(rg->value, sizes[i], &range, &err) == GW_S3_OK)
                CHECK(range.first <= range.last && range.last < sizes[i]);
        }
    }
    for (size_t i = 0; i < h->n_headers; i++) {
        int64_t ms;
        char back[GW_HTTP_DATE_LEN + 1];
        if (gw_http_date_parse(h->headers[i].value.p, h->headers[i].value.n, &ms) == 0)
            CHECK(gw_http_date_format(ms, back) == 0);
        unsigned char raw[512];
        size_t rl;
        if (gw_base64_decode(h->headers[i].value.p, h->headers[i].value.n, raw, sizeof(raw), &rl) == 0) {
            char enc[GW_BASE64_LEN(sizeof(raw)) + 1];
            gw_base64_encode(raw, rl, enc);
            CHECK(strlen(enc) == h->headers[i].value.n &&
                  memcmp(enc, h->headers[i].value.p, h->headers[i].value.n) == 0);
        }
    }
    struct gw_user_meta m;
    if (gw_user_meta_collect(h, &m, &err) == GW_S3_OK)
        CHECK(m.total <= GW_USER_META_MAX);
    gw_user_meta_free(&m);
    if (r) {
        struct gw_overrides o;
        gw_response_overrides(&r->query, true, &o, &err);
        struct gw_list_params lp;
        switch (r->op) {
        case GW_OP_LIST_OBJECTS:
        case GW_OP_LIST_OBJECTS_V2:
        case GW_OP_LIST_OBJECT_VERSIONS:
        case GW_OP_LIST_MULTIPART_UPLOADS:
        case GW_OP_LIST_PARTS:
            if (gw_list_params_parse(r, &lp, &err) == GW_S3_OK)
                CHECK(lp.max <= 1000 && gw_utf8_valid(lp.prefix.p, lp.prefix.n));
            break;
        default:
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    struct gw_request_head h = {0};
    struct gw_header hs[MAX_HEADERS];
    h.method = line(&p, end);
    h.target = line(&p, end);
    struct gw_str host = line(&p, end);
    const char *q = memchr(h.target.p, '?', h.target.n);
    h.path = (struct gw_str){h.target.p, q ? (size_t)(q - h.target.p) : h.target.n};
    h.query = q ? (struct gw_str){q + 1, h.target.n - h.path.n - 1} : (struct gw_str){"", 0};
    hs[h.n_headers++] = (struct gw_header){GW_STR("Host"), host};
    while (p < end && h.n_headers < MAX_HEADERS) {
        struct gw_str l = line(&p, end);
        const char *colon = memchr(l.p, ':', l.n);
        if (!colon)
            continue;
        struct gw_str v = {colon + 1, (size_t)(l.p + l.n - colon - 1)};
        while (v.n && v.p[0] == ' ')
            v.p++, v.n--;
        hs[h.n_headers++] = (struct gw_header){{l.p, (size_t)(colon - l.p)}, v};
    }
    h.headers = hs;

    struct gw_route_config cfg = {domains, 2};
    struct gw_route r;
    struct gw_s3_err err;
    gw_s3_err_clear(&err);
    enum gw_s3_error rc = gw_route_request(&cfg, &h, &r, &err);
    CHECK(rc == err.code && (unsigned)rc < GW_S3_ERROR_COUNT);
    if (rc == GW_S3_OK) {
        CHECK(r.op != GW_OP_NONE && r.op < GW_OP_COUNT);
        if (r.op == GW_OP_LIST_BUCKETS)
            CHECK(r.bucket[0] == '\0' && r.key == NULL);
        else
            CHECK(gw_bucket_name_check(r.bucket, strlen(r.bucket), NULL) == GW_S3_OK);
        if (r.key)
            CHECK(gw_key_check(r.key, r.key_len, NULL) == GW_S3_OK && r.key[r.key_len] == '\0');
        if (r.has_copy_source)
            CHECK(gw_key_check(r.copy_source.key, r.copy_source.key_len, NULL) == GW_S3_OK);
        CHECK(r.part_number <= GW_PART_NUMBER_MAX);
        exercise_helpers(&h, &r);
    } else {
        CHECK(gw_s3_error_status(rc) >= 300);
        exercise_helpers(&h, NULL);
        /* The error document for whatever was sent is well-formed. */
        char *body;
        size_t len;
        CHECK(gw_s3_error_render(&err, h.path, GW_STR("0123456789ABCDEF"), &body, &len) == 0);
        struct gw_xml_doc d;
        CHECK(gw_xml_parse(body, len, NULL, &d, NULL) == GW_S3_OK);
        gw_xml_doc_free(&d);
        free(body);
    }
    gw_route_free(&r);
    return 0;
}

#define SEED(s) {(const uint8_t *)(s), sizeof(s) - 1}
static const struct fuzz_seed seeds[] = {
    SEED("GET\n/bkt/photos/caf%C3%A9+1.jpg?partNumber=2&response-content-type=text%2Fplain\n"
         "s3.example.com\nRange: bytes=0-99\nIf-None-Match: W/\"abc\", \"def\"\n"
         "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\n"),
    SEED("PUT\n/dst/k?partNumber=1&uploadId=abc\nbkt.s3.example.com:9000\n"
         "x-amz-copy-source: /src/a%20b?versionId=v1\nx-amz-copy-source-range: bytes=0-9\n"
         "x-amz-copy-source-if-match: \"abc\"\nx-amz-meta-Foo: bar\nx-amz-acl: private\n"),
    SEED("GET\n/?list-type=2&prefix=a%2F&delimiter=%2F&max-keys=10&encoding-type=url"
         "&fetch-owner=true&start-after=x\nmybucket.localhost:9000\n"),
    SEED("POST\n/bkt?delete\n127.0.0.1:9000\nContent-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==\n"),
    SEED("DELETE\n/bkt/a/../b?uploadId=%00\n[::1]:9000\n"),
    SEED("GET\n/bkt?uploads&key-marker=k&upload-id-marker=u&max-uploads=5\ns3.example.com\n"),
    SEED("GET\n/bkt/k?uploadId=u&max-parts=7&part-number-marker=3\ns3.example.com\n"),
};

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = sizeof(seeds) / sizeof(seeds[0]);
    return seeds;
}
