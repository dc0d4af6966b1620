/* S3 request routing (gateway/s3_route.c): tables of (method, target, Host, headers) ->
 * operation, bucket, key or error, following the S3 API reference (operations, sub-resources,
 * bucket naming rules, KeyTooLongError at 1024 bytes, copy-source syntax) and lode's own
 * documented key policy (no control characters, no "."/".." segments). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/s3_route.h"
#include "tests/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const domains[] = {"s3.example.com", "localhost"};
static const struct gw_route_config cfg = {domains, 2};

struct hdr {
    const char *name, *value;
};

struct rcase {
    const char *method, *target, *host;
    struct hdr h[3];
    enum gw_s3_error err;
    enum gw_s3_op op;
    const char *bucket;
    const char *key; /* NULL: no key */
};

/* Builds a request head from a case: splits the target at '?'. */
static void make_head(const struct rcase *c, struct gw_header *hs, struct gw_request_head *h)
{
    size_t n = 0;
    if (c->host)
        hs[n++] = (struct gw_header){{"Host", 4}, {c->host, strlen(c->host)}};
    for (int i = 0; i < 3 && c->h[i].name; i++)
        hs[n++] = (struct gw_header){{c->h[i].name, strlen(c->h[i].name)},
                                     {c->h[i].value, strlen(c->h[i].value)}};
    const char *q = strchr(c->target, '?');
    size_t tl = strlen(c->target);
    *h = (struct gw_request_head){
        .method = {c->method, strlen(c->method)},
        .target = {c->target, tl},
        .path = {c->target, q ? (size_t)(q - c->target) : tl},
        .query = q ? (struct gw_str){q + 1, tl - (size_t)(q - c->target) - 1} : (struct gw_str){"", 0},
        .headers = hs,
        .n_headers = n,
    };
}

#define H0 {{0}}
#define OK GW_S3_OK
#define P "s3.example.com"

static const struct rcase cases[] = {
    /* service */
    {"GET", "/", P, H0, OK, GW_OP_LIST_BUCKETS, "", NULL},
    {"GET", "/", "127.0.0.1:9000", H0, OK, GW_OP_LIST_BUCKETS, "", NULL},
    {"GET", "/", NULL, H0, OK, GW_OP_LIST_BUCKETS, "", NULL},
    {"PUT", "/", P, H0, GW_S3_METHOD_NOT_ALLOWED, GW_OP_NONE, "", NULL},
    {"HEAD", "/", P, H0, GW_S3_METHOD_NOT_ALLOWED, GW_OP_NONE, "", NULL},
    /* buckets, path style */
    {"PUT", "/mybucket", P, H0, OK, GW_OP_CREATE_BUCKET, "mybucket", NULL},
    {"PUT", "/mybucket/", P, H0, OK, GW_OP_CREATE_BUCKET, "mybucket", NULL},
    {"DELETE", "/mybucket", P, H0, OK, GW_OP_DELETE_BUCKET, "mybucket", NULL},
    {"HEAD", "/mybucket", P, H0, OK, GW_OP_HEAD_BUCKET, "mybucket", NULL},
    {"GET", "/mybucket", P, H0, OK, GW_OP_LIST_OBJECTS, "mybucket", NULL},
    {"GET", "/mybucket?prefix=a&delimiter=%2F", P, H0, OK, GW_OP_LIST_OBJECTS, "mybucket", NULL},
    {"GET", "/mybucket?list-type=2&prefix=a", P, H0, OK, GW_OP_LIST_OBJECTS_V2, "mybucket", NULL},
    {"GET", "/mybucket?list-type=3", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "mybucket", NULL},
    {"GET", "/mybucket?location", P, H0, OK, GW_OP_GET_BUCKET_LOCATION, "mybucket", NULL},
    {"GET", "/mybucket?versioning", P, H0, OK, GW_OP_GET_BUCKET_VERSIONING, "mybucket", NULL},
    {"GET", "/mybucket?acl", P, H0, OK, GW_OP_GET_BUCKET_ACL, "mybucket", NULL},
    {"PUT", "/mybucket?acl", P, H0, OK, GW_OP_PUT_BUCKET_ACL, "mybucket", NULL},
    {"GET", "/mybucket?uploads&prefix=x", P, H0, OK, GW_OP_LIST_MULTIPART_UPLOADS, "mybucket", NULL},
    {"GET", "/mybucket?versions", P, H0, OK, GW_OP_LIST_OBJECT_VERSIONS, "mybucket", NULL},
    {"GET", "/mybucket?policy", P, H0, OK, GW_OP_GET_BUCKET_SUBRESOURCE, "mybucket", NULL},
    {"GET", "/mybucket?object-lock", P, H0, OK, GW_OP_GET_BUCKET_SUBRESOURCE, "mybucket", NULL},
    {"DELETE", "/mybucket?cors", P, H0, OK, GW_OP_DELETE_BUCKET_SUBRESOURCE, "mybucket", NULL},
    {"PUT", "/mybucket?policy", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "mybucket", NULL},
    {"PUT", "/mybucket?versioning", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "mybucket", NULL},
    {"PUT", "/mybucket?uploads", P, H0, GW_S3_METHOD_NOT_ALLOWED, GW_OP_NONE, "mybucket", NULL},
    {"POST", "/mybucket?delete", P, H0, OK, GW_OP_DELETE_OBJECTS, "mybucket", NULL},
    {"POST", "/mybucket", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "mybucket", NULL},
    {"DELETE", "/mybucket?acl", P, H0, GW_S3_METHOD_NOT_ALLOWED, GW_OP_NONE, "mybucket", NULL},
    {"GET", "/mybucket?torrent", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "mybucket", NULL},
    {"GET", "/my%2Dbucket", P, H0, OK, GW_OP_LIST_OBJECTS, "my-bucket", NULL},
    /* bucket names refused */
    {"GET", "/MyBucket", P, H0, GW_S3_INVALID_BUCKET_NAME, GW_OP_NONE, "", NULL},
    {"GET", "/ab", P, H0, GW_S3_INVALID_BUCKET_NAME, GW_OP_NONE, "", NULL},
    {"GET", "//key", P, H0, GW_S3_INVALID_BUCKET_NAME, GW_OP_NONE, "", NULL},
    {"GET", "/my%2Fbucket/k", P, H0, GW_S3_INVALID_BUCKET_NAME, GW_OP_NONE, "", NULL},
    {"GET", "/a%zzbc", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "", NULL},
    {"GET", "/0123456789012345678901234567890123456789012345678901234567890123", P, H0,
     GW_S3_INVALID_BUCKET_NAME, GW_OP_NONE, "", NULL},
    /* virtual-hosted style */
    {"GET", "/", "mybucket.s3.example.com", H0, OK, GW_OP_LIST_OBJECTS, "mybucket", NULL},
    {"GET", "/photos/a.jpg", "my.bucket.s3.example.com:443", H0, OK, GW_OP_GET_OBJECT, "my.bucket",
     "photos/a.jpg"},
    {"GET", "/k", "MyBucket.S3.Example.COM", H0, OK, GW_OP_GET_OBJECT, "mybucket", "k"},
    {"PUT", "/", "mybucket.localhost:9000", H0, OK, GW_OP_CREATE_BUCKET, "mybucket", NULL},
    {"GET", "/k", "mybucket.s3.example.com.", H0, OK, GW_OP_GET_OBJECT, "mybucket", "k"},
    {"GET", "/mybucket/k", "mybucket.s3.example.com", H0, OK, GW_OP_GET_OBJECT, "mybucket",
     "mybucket/k"},
    {"GET", "/mybucket/k", "s3.example.com:9000", H0, OK, GW_OP_GET_OBJECT, "mybucket", "k"},
    {"GET", "/mybucket/k", "[::1]:9000", H0, OK, GW_OP_GET_OBJECT, "mybucket", "k"},
    {"GET", "/mybucket/k", "10.0.0.1", H0, OK, GW_OP_GET_OBJECT, "mybucket", "k"},
    {"GET", "/mybucket/k", "x.s3.example.com.evil.org", H0, OK, GW_OP_GET_OBJECT, "mybucket", "k"},
    {"GET", "/mybucket/k", "xs3.example.com", H0, OK, GW_OP_GET_OBJECT, "mybucket", "k"},
    {"GET", "/k", "bad_bucket.s3.example.com", H0, GW_S3_INVALID_BUCKET_NAME, GW_OP_NONE, "", NULL},
    {"GET", "/k", "0123456789012345678901234567890123456789012345678901234567890123.s3.example.com",
     H0, GW_S3_INVALID_BUCKET_NAME, GW_OP_NONE, "", NULL},
    /* objects and tricky keys */
    {"GET", "/bkt/key", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "key"},
    {"HEAD", "/bkt/key", P, H0, OK, GW_OP_HEAD_OBJECT, "bkt", "key"},
    {"PUT", "/bkt/key", P, H0, OK, GW_OP_PUT_OBJECT, "bkt", "key"},
    {"DELETE", "/bkt/key", P, H0, OK, GW_OP_DELETE_OBJECT, "bkt", "key"},
    {"GET", "/bkt/a%2Fb", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "a/b"},
    {"GET", "/bkt/a+b", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "a+b"},
    {"GET", "/bkt/a%2Bb%20c", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "a+b c"},
    {"GET", "/bkt/caf%C3%A9/%E6%97%A5", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "caf\xc3\xa9/\xe6\x97\xa5"},
    {"GET", "/bkt/raw-\xc3\xa9", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "raw-\xc3\xa9"},
    {"GET", "/bkt/dir/", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "dir/"},
    {"PUT", "/bkt//lead", P, H0, OK, GW_OP_PUT_OBJECT, "bkt", "/lead"},
    {"PUT", "/bkt/a//b", P, H0, OK, GW_OP_PUT_OBJECT, "bkt", "a//b"},
    {"PUT", "/bkt/a..b/...", P, H0, OK, GW_OP_PUT_OBJECT, "bkt", "a..b/..."},
    {"PUT", "/bkt/.hidden/x.", P, H0, OK, GW_OP_PUT_OBJECT, "bkt", ".hidden/x."},
    {"PUT", "/bkt/a%25b", P, H0, OK, GW_OP_PUT_OBJECT, "bkt", "a%b"},
    {"PUT", "/bkt/%7Etilde%21", P, H0, OK, GW_OP_PUT_OBJECT, "bkt", "~tilde!"},
    {"GET", "/bkt/a%", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%zz", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%00b", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%01b", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%0Ab", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%7Fb", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%FFb", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%C0%AF", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%ED%A0%80", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%EF%BF%BE", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a/../b", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a/%2E%2E/b", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/a%2F..%2Fb", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/..", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/.", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/./x", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/x/.", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/bkt/x/../", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    {"GET", "/..", "bkt.s3.example.com", H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", NULL},
    /* multipart and sub-resources on objects */
    {"GET", "/bkt/k?uploadId=abc", P, H0, OK, GW_OP_LIST_PARTS, "bkt", "k"},
    {"PUT", "/bkt/k?partNumber=1&uploadId=abc", P, H0, OK, GW_OP_UPLOAD_PART, "bkt", "k"},
    {"PUT", "/bkt/k?partNumber=10000&uploadId=abc", P, H0, OK, GW_OP_UPLOAD_PART, "bkt", "k"},
    {"PUT", "/bkt/k?partNumber=0&uploadId=abc", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", "k"},
    {"PUT", "/bkt/k?partNumber=10001&uploadId=abc", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt",
     "k"},
    {"PUT", "/bkt/k?partNumber=1x&uploadId=abc", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", "k"},
    {"PUT", "/bkt/k?partNumber=&uploadId=abc", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "bkt", "k"},
    {"PUT", "/bkt/k?partNumber=1", P, H0, GW_S3_INVALID_REQUEST, GW_OP_NONE, "bkt", "k"},
    {"PUT", "/bkt/k?uploadId=abc", P, H0, GW_S3_INVALID_REQUEST, GW_OP_NONE, "bkt", "k"},
    {"PUT", "/bkt/k?partNumber=2&uploadId=abc", P, {{"x-amz-copy-source", "/src/obj"}}, OK,
     GW_OP_UPLOAD_PART_COPY, "bkt", "k"},
    {"POST", "/bkt/k?uploads", P, H0, OK, GW_OP_CREATE_MULTIPART_UPLOAD, "bkt", "k"},
    {"POST", "/bkt/k?uploadId=abc", P, H0, OK, GW_OP_COMPLETE_MULTIPART_UPLOAD, "bkt", "k"},
    {"DELETE", "/bkt/k?uploadId=abc", P, H0, OK, GW_OP_ABORT_MULTIPART_UPLOAD, "bkt", "k"},
    {"DELETE", "/bkt/k?uploadId=", P, H0, GW_S3_NO_SUCH_UPLOAD, GW_OP_NONE, "bkt", "k"},
    {"DELETE", "/bkt/k?uploadId=a%0Ab", P, H0, GW_S3_NO_SUCH_UPLOAD, GW_OP_NONE, "bkt", "k"},
    {"POST", "/bkt/k", P, H0, GW_S3_METHOD_NOT_ALLOWED, GW_OP_NONE, "bkt", "k"},
    {"POST", "/bkt/k?select&select-type=2", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "bkt", "k"},
    {"POST", "/bkt/k?restore", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "bkt", "k"},
    {"GET", "/bkt/k?torrent", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "bkt", "k"},
    {"GET", "/bkt/k?acl", P, H0, OK, GW_OP_GET_OBJECT_ACL, "bkt", "k"},
    {"PUT", "/bkt/k?acl", P, {{"x-amz-acl", "private"}}, OK, GW_OP_PUT_OBJECT_ACL, "bkt", "k"},
    {"GET", "/bkt/k?tagging", P, H0, OK, GW_OP_GET_OBJECT_TAGGING, "bkt", "k"},
    {"DELETE", "/bkt/k?tagging", P, H0, OK, GW_OP_DELETE_OBJECT_TAGGING, "bkt", "k"},
    {"PUT", "/bkt/k?tagging", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "bkt", "k"},
    {"GET", "/bkt/k?partNumber=2", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "k"},
    {"HEAD", "/bkt/k?partNumber=2", P, H0, OK, GW_OP_HEAD_OBJECT, "bkt", "k"},
    {"GET", "/bkt/k?partNumber=2", P, {{"Range", "bytes=0-1"}}, GW_S3_INVALID_REQUEST, GW_OP_NONE,
     "bkt", "k"},
    {"GET", "/bkt/k?versionId=null&response-content-type=x", P, H0, OK, GW_OP_GET_OBJECT, "bkt", "k"},
    {"GET", "/bkt/k?prefix=a&prefix=b", P, H0, GW_S3_INVALID_ARGUMENT, GW_OP_NONE, "", NULL},
    /* methods and targets */
    {"OPTIONS", "/bkt/k", P, H0, GW_S3_NOT_IMPLEMENTED, GW_OP_NONE, "", NULL},
    {"PATCH", "/bkt/k", P, H0, GW_S3_METHOD_NOT_ALLOWED, GW_OP_NONE, "", NULL},
    {"get", "/bkt/k", P, H0, GW_S3_METHOD_NOT_ALLOWED, GW_OP_NONE, "", NULL},
    {"GET", "*", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "", NULL},
    {"GET", "http://bkt.s3.example.com/k", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "", NULL},
    {"GET", "/bkt/k?a=%G1", P, H0, GW_S3_INVALID_URI, GW_OP_NONE, "", NULL},
    /* write headers */
    {"PUT", "/bkt/k", P, {{"x-amz-acl", "bucket-owner-full-control"}}, OK, GW_OP_PUT_OBJECT, "bkt", "k"},
    {"PUT", "/bkt/k", P, {{"x-amz-acl", "everyone"}}, GW_S3_INVALID_ARGUMENT, GW_OP_PUT_OBJECT, "bkt",
     "k"},
    {"PUT", "/bkt", P, {{"x-amz-acl", "public-read"}}, OK, GW_OP_CREATE_BUCKET, "bkt", NULL},
    {"PUT", "/bkt/k", P, {{"x-amz-grant-read", "id=x"}}, GW_S3_NOT_IMPLEMENTED, GW_OP_PUT_OBJECT, "bkt",
     "k"},
    {"PUT", "/bkt/k", P, {{"x-amz-storage-class", "STANDARD"}}, OK, GW_OP_PUT_OBJECT, "bkt", "k"},
    {"POST", "/bkt/k?uploads", P, {{"x-amz-storage-class", "GLACIER"}}, GW_S3_INVALID_STORAGE_CLASS,
     GW_OP_CREATE_MULTIPART_UPLOAD, "bkt", "k"},
    {"GET", "/bkt/k", P, {{"x-amz-storage-class", "GLACIER"}}, OK, GW_OP_GET_OBJECT, "bkt", "k"},
    /* copy */
    {"PUT", "/bkt/k", P, {{"x-amz-copy-source", "src/obj"}}, OK, GW_OP_COPY_OBJECT, "bkt", "k"},
    {"PUT", "/bkt/k", P, {{"x-amz-copy-source", "/bkt/k"}}, GW_S3_INVALID_REQUEST, GW_OP_COPY_OBJECT,
     "bkt", "k"},
    {"PUT", "/bkt/k", P,
     {{"x-amz-copy-source", "/bkt/k"}, {"x-amz-metadata-directive", "REPLACE"}}, OK,
     GW_OP_COPY_OBJECT, "bkt", "k"},
    {"PUT", "/bkt/k", P, {{"x-amz-copy-source", "/bkt/k"}, {"x-amz-storage-class", "STANDARD"}}, OK,
     GW_OP_COPY_OBJECT, "bkt", "k"},
    {"PUT", "/bkt/k", P, {{"x-amz-copy-source", "/bkt/k?versionId=v1"}}, OK, GW_OP_COPY_OBJECT, "bkt",
     "k"},
    {"PUT", "/bkt/k", P,
     {{"x-amz-copy-source", "/src/k"}, {"x-amz-metadata-directive", "MERGE"}}, GW_S3_INVALID_ARGUMENT,
     GW_OP_COPY_OBJECT, "bkt", "k"},
    {"PUT", "/bkt/k", P, {{"x-amz-copy-source", "src"}}, GW_S3_INVALID_ARGUMENT, GW_OP_COPY_OBJECT,
     "bkt", "k"},
};

static void test_table(void)
{
    for (size_t i = 0; i < N(cases); i++) {
        const struct rcase *c = &cases[i];
        struct gw_header hs[4];
        struct gw_request_head h;
        make_head(c, hs, &h);
        struct gw_route r;
        struct gw_s3_err e;
        gw_s3_err_clear(&e);
        enum gw_s3_error rc = gw_route_request(&cfg, &h, &r, &e);
        bool pass = rc == c->err && e.code == c->err && strcmp(r.bucket, c->bucket) == 0;
        if (rc == GW_S3_OK) {
            pass = pass && r.op == c->op &&
                   (c->key ? r.key && r.key_len == strlen(c->key) && strcmp(r.key, c->key) == 0
                           : r.key == NULL);
        } else {
            pass = pass && (c->op == GW_OP_NONE || r.op == c->op); /* how far routing got */
        }
        ok(pass, "%s %s (Host %s) -> %s%s%s [%s]", c->method, c->target, c->host ? c->host : "-",
           rc == GW_S3_OK ? gw_s3_op_name(r.op) : gw_s3_error_code(rc),
           r.key ? " key=" : "", r.key ? r.key : "", e.msg);
        if (!pass)
            diag("want %s / %s bucket '%s' key '%s'; got bucket '%s'", gw_s3_error_code(c->err),
                 gw_s3_op_name(c->op), c->bucket, c->key ? c->key : "(none)", r.bucket);
        gw_route_free(&r);
    }
}

static struct gw_route route1(const char *method, const char *target, const char *host,
                              struct hdr h0, enum gw_s3_error *rc)
{
    struct rcase c = {method, target, host, {h0}, OK, GW_OP_NONE, "", NULL};
    struct gw_header hs[4];
    struct gw_request_head h;
    make_head(&c, hs, &h);
    struct gw_route r;
    *rc = gw_route_request(&cfg, &h, &r, NULL);
    return r;
}

static void test_details(void)
{
    enum gw_s3_error rc;
    struct gw_route r = route1("PUT", "/bkt/k?partNumber=7&uploadId=up%2Bid", P, (struct hdr){0}, &rc);
    ok(rc == OK && r.part_number == 7 && gw_str_eq(r.upload_id, "up+id"),
       "part number and decoded upload id");
    gw_route_free(&r);
    r = route1("GET", "/", "bkt.s3.example.com", (struct hdr){0}, &rc);
    ok(rc == OK && r.virtual_host, "virtual host flagged");
    gw_route_free(&r);
    r = route1("GET", "/bkt/", P, (struct hdr){0}, &rc);
    ok(rc == OK && !r.virtual_host && r.key == NULL, "path style; trailing slash is the bucket");
    gw_route_free(&r);
    r = route1("GET", "/bkt?cors", P, (struct hdr){0}, &rc);
    ok(rc == OK && r.sub == GW_SUB_CORS && strcmp(gw_subresource_name(r.sub), "cors") == 0,
       "sub-resource named");
    gw_route_free(&r);
    r = route1("PUT", "/bkt/k", P, (struct hdr){"x-amz-copy-source", "src/a%20b+c%2Fd?versionId=v%2B1"},
               &rc);
    ok(rc == OK && r.has_copy_source && strcmp(r.copy_source.bucket, "src") == 0 &&
           strcmp(r.copy_source.key, "a b+c/d") == 0 && r.copy_source.key_len == 7 &&
           strcmp(r.copy_source.version_id, "v+1") == 0,
       "copy source decoded: '+' in the key is a plus");
    gw_route_free(&r);
    r = route1("PUT", "/bkt/k",
               P, (struct hdr){"x-amz-metadata-directive", "REPLACE"}, &rc);
    ok(rc == OK && r.op == GW_OP_PUT_OBJECT && !r.replace_metadata,
       "a directive without a copy source means nothing");
    gw_route_free(&r);

    /* Keys of 1024 bytes pass, 1025 are KeyTooLongError; bytes count after decoding. */
    char target[8192];
    int l = snprintf(target, sizeof(target), "/bkt/");
    for (int i = 0; i < 512; i++)
        l += snprintf(target + l, sizeof(target) - (size_t)l, "%%C3%%A9");
    r = route1("PUT", target, P, (struct hdr){0}, &rc);
    ok(rc == OK && r.key_len == 1024, "a 1024-byte key (512 x U+00E9, %d bytes encoded)", l - 5);
    gw_route_free(&r);
    snprintf(target + l, sizeof(target) - (size_t)l, "x");
    struct gw_s3_err e;
    struct rcase c = {"PUT", target, P, {{0}}, OK, GW_OP_NONE, "", NULL};
    struct gw_header hs[4];
    struct gw_request_head h;
    make_head(&c, hs, &h);
    rc = gw_route_request(&cfg, &h, &r, &e);
    ok(rc == GW_S3_KEY_TOO_LONG && strcmp(gw_s3_error_code(rc), "KeyTooLongError") == 0 &&
           strcmp(r.bucket, "bkt") == 0,
       "1025 bytes: KeyTooLongError, bucket kept for the error document");
    gw_route_free(&r);

    /* The target limit. */
    char *huge = malloc(GW_TARGET_MAX + 16);
    memset(huge, 'a', GW_TARGET_MAX + 15);
    memcpy(huge, "/bkt/", 5);
    huge[GW_TARGET_MAX + 15] = '\0';
    r = route1("GET", huge, P, (struct hdr){0}, &rc);
    ok(rc == GW_S3_INVALID_URI, "a target over %d bytes", GW_TARGET_MAX);
    gw_route_free(&r);
    free(huge);

    ok(strcmp(gw_s3_op_name(GW_OP_GET_OBJECT), "GetObject") == 0 &&
           strcmp(gw_s3_op_name(GW_OP_LIST_OBJECTS_V2), "ListObjectsV2") == 0 &&
           strcmp(gw_s3_op_name((enum gw_s3_op)999), "Unknown") == 0,
       "operation names");
}

static void test_bucket_names(void)
{
    /* S3 general purpose bucket naming rules. */
    static const struct {
        const char *name;
        bool valid;
    } v[] = {
        {"abc", true},
        {"my-bucket.1", true},
        {"1bucket", true},
        {"a.b-c", true},
        {"1.2.3", true}, /* three parts: not an IPv4 address */
        {"a-b--c", true},
        {"012345678901234567890123456789012345678901234567890123456789012", true}, /* 63 */
        {"0123456789012345678901234567890123456789012345678901234567890123", false}, /* 64 */
        {"ab", false},
        {"", false},
        {"MyBucket", false},
        {"my_bucket", false},
        {"my bucket", false},
        {"-abc", false},
        {"abc-", false},
        {".abc", false},
        {"abc.", false},
        {"a..b", false},
        {"192.168.5.4", false},
        {"999.999.999.999", false},
        {"xn--abc", false},
        {"sthree-abc", false},
        {"amzn-s3-demo-abc", false},
        {"abc-s3alias", false},
        {"abc--ol-s3", false},
        {"abc.mrap", false},
        {"abc--x-s3", false},
        {"abc--table-s3", false},
        {"caf\xc3\xa9", false},
    };
    for (size_t i = 0; i < N(v); i++) {
        struct gw_s3_err e;
        gw_s3_err_clear(&e);
        enum gw_s3_error rc = gw_bucket_name_check(v[i].name, strlen(v[i].name), &e);
        ok(v[i].valid ? rc == OK
                      : rc == GW_S3_INVALID_BUCKET_NAME && e.msg[0] && e.n_extra == 1 &&
                            strcmp(e.extra[0].name, "BucketName") == 0,
           "bucket \"%s\" is %s (%s)", v[i].name, v[i].valid ? "valid" : "invalid", e.msg);
    }
    ok(gw_bucket_name_check("a\0c", 3, NULL) == GW_S3_INVALID_BUCKET_NAME, "embedded NUL");
}

static void test_copy_source(void)
{
    static const struct {
        const char *v;
        enum gw_s3_error want;
        const char *bucket, *key, *version;
    } v[] = {
        {"src/obj", OK, "src", "obj", NULL},
        {"/src/dir/obj", OK, "src", "dir/obj", NULL},
        {"src%2Fobj", OK, "src", "obj", NULL}, /* fully encoded */
        {"src/caf%C3%A9%3F", OK, "src", "caf\xc3\xa9?", NULL},
        {"src/a+b", OK, "src", "a+b", NULL},
        {"src/k?versionId=3HL4kqtJlcpXroDTDmJ%2Bjmz", OK, "src", "k", "3HL4kqtJlcpXroDTDmJ+jmz"},
        {"src/k/", OK, "src", "k/", NULL},
        {"", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"/", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"src", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"src/", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"/obj", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"Bad_Bucket/k", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap/object/k", GW_S3_INVALID_ARGUMENT,
         NULL, NULL, NULL},
        {"src/k?foo=bar", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"src/k?versionId=", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"src/k?versionId=a&x=y", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"src/k%zz", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"src/a/../b", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"src/a%00", GW_S3_INVALID_ARGUMENT, NULL, NULL, NULL},
        {"src/%FF", GW_S3_INVALID_URI, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < N(v); i++) {
        struct gw_copy_source cs;
        struct gw_s3_err e;
        enum gw_s3_error rc = gw_copy_source_parse((struct gw_str){v[i].v, strlen(v[i].v)}, &cs, &e);
        bool pass = rc == v[i].want;
        if (pass && rc == OK)
            pass = strcmp(cs.bucket, v[i].bucket) == 0 && strcmp(cs.key, v[i].key) == 0 &&
                   cs.key_len == strlen(v[i].key) &&
                   (v[i].version ? cs.version_id && strcmp(cs.version_id, v[i].version) == 0
                                 : cs.version_id == NULL);
        else if (pass)
            pass = cs.key == NULL && cs.mem == NULL;
        ok(pass, "x-amz-copy-source \"%s\" (%s)", v[i].v, rc ? e.msg : "ok");
        gw_copy_source_free(&cs);
    }
}

static void test_list_params(void)
{
    static const struct {
        const char *target;
        enum gw_s3_error want;
        uint32_t max;
        bool url, fetch, delim;
    } v[] = {
        {"/bkt?prefix=a%2F&delimiter=%2F&marker=m&max-keys=5&encoding-type=url", OK, 5, true, false, true},
        {"/bkt?list-type=2&fetch-owner=true&start-after=s&continuation-token=t", OK, 1000, false, true, false},
        {"/bkt?list-type=2&fetch-owner=FALSE", OK, 1000, false, false, false},
        {"/bkt?max-keys=5000", OK, 1000, false, false, false},
        {"/bkt?max-keys=0", OK, 0, false, false, false},
        {"/bkt?max-keys=99999999999999999999", OK, 1000, false, false, false},
        {"/bkt?delimiter=", OK, 1000, false, false, false},
        {"/bkt?max-keys=-1", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?max-keys=abc", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?max-keys=", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?max-keys=1.5", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?encoding-type=URL", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?list-type=2&fetch-owner=maybe", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?prefix=a%00", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?prefix=a%FF", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?marker=%C0%AF", GW_S3_INVALID_ARGUMENT, 0, false, false, false},
        {"/bkt?uploads&max-uploads=10&key-marker=k&upload-id-marker=u", OK, 10, false, false, false},
        {"/bkt?versions&max-keys=3&key-marker=k&version-id-marker=null", OK, 3, false, false, false},
    };
    for (size_t i = 0; i < N(v); i++) {
        enum gw_s3_error rc;
        struct gw_route r = route1("GET", v[i].target, P, (struct hdr){0}, &rc);
        struct gw_list_params p;
        struct gw_s3_err e;
        gw_s3_err_clear(&e);
        enum gw_s3_error prc = rc == OK ? gw_list_params_parse(&r, &p, &e) : rc;
        ok(prc == v[i].want &&
               (prc != OK || (p.max == v[i].max && p.url_encode == v[i].url &&
                              p.fetch_owner == v[i].fetch && p.has_delimiter == v[i].delim)),
           "list params %s (%s)", v[i].target, e.msg);
        gw_route_free(&r);
    }
    enum gw_s3_error rc;
    struct gw_route r = route1("GET", "/bkt?prefix=photos%2F2006%2F&delimiter=%2F&marker=x%20y+z", P,
                               (struct hdr){0}, &rc);
    struct gw_list_params p;
    ok(gw_list_params_parse(&r, &p, NULL) == OK && gw_str_eq(p.prefix, "photos/2006/") &&
           gw_str_eq(p.delimiter, "/") && gw_str_eq(p.marker, "x y+z"),
       "values decoded (%%20 a space, + a plus)");
    gw_route_free(&r);
    r = route1("GET", "/bkt/k?uploadId=u&max-parts=7&part-number-marker=3", P, (struct hdr){0}, &rc);
    ok(rc == OK && gw_list_params_parse(&r, &p, NULL) == OK && p.max == 7 && p.part_number_marker == 3,
       "ListParts parameters");
    gw_route_free(&r);
    r = route1("GET", "/bkt/k", P, (struct hdr){0}, &rc);
    ok(gw_list_params_parse(&r, &p, NULL) == GW_S3_INTERNAL_ERROR, "not a listing operation");
    gw_route_free(&r);
    r = route1("GET", "/bkt?list-type=2&start-after=%FF", P, (struct hdr){0}, &rc);
    ok(gw_list_params_parse(&r, &p, NULL) == GW_S3_INVALID_ARGUMENT, "start-after must be UTF-8");
    gw_route_free(&r);
}

int main(void)
{
    test_table();
    test_details();
    test_bucket_names();
    test_copy_source();
    test_list_params();
    return tap_done();
}
