/* The S3 request layer (gateway/s3_request.h) where no cluster is needed:
 *   - routing to the handlers: the family (service, bucket, object, multipart) of every
 *     operation, which operations the pipeline checks the bucket for, and which may take
 *     that check from the bucket cache; expected from the S3 API reference's grouping of
 *     the operations, written out here per operation;
 *   - the x-lode-erasure value: accepted schemes and every kind of refusal;
 *   - the layer behind a real gw_server, with lode-meta unreachable: every refusal that
 *     comes before meta (routing, anonymous requests, malformed or stale signatures) is an
 *     S3 error document with the status S3 gives that code, x-amz-request-id and x-amz-id-2
 *     equal to the document's RequestId, no body for HEAD, the connection kept alive; and a
 *     request that needs meta gets 503 ServiceUnavailable once the key fetch gives up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lode/errno.h>

#include "common/conf.h"
#include "common/log.h"
#include "gateway/cluster.h"
#include "gateway/config.h"
#include "gateway/s3_request.h"
#include "gateway/server.h"
#include "tests/tap.h"
#include "tests/unit/gateway/server_fixture.h"

static void test_families(void)
{
    static const struct {
        enum gw_s3_op op;
        enum gw_s3_family fam;
    } want[] = {
        {GW_OP_LIST_BUCKETS, GW_S3_FAMILY_SERVICE},
        {GW_OP_CREATE_BUCKET, GW_S3_FAMILY_SERVICE},
        {GW_OP_LODE_SESSION, GW_S3_FAMILY_SERVICE}, /* a data session: the caller's, no bucket */
        {GW_OP_DELETE_BUCKET, GW_S3_FAMILY_BUCKET},
        {GW_OP_HEAD_BUCKET, GW_S3_FAMILY_BUCKET},
        {GW_OP_GET_BUCKET_LOCATION, GW_S3_FAMILY_BUCKET},
        {GW_OP_GET_BUCKET_VERSIONING, GW_S3_FAMILY_BUCKET},
        {GW_OP_GET_BUCKET_ACL, GW_S3_FAMILY_BUCKET},
        {GW_OP_PUT_BUCKET_ACL, GW_S3_FAMILY_BUCKET},
        {GW_OP_LIST_OBJECTS, GW_S3_FAMILY_BUCKET},
        {GW_OP_LIST_OBJECTS_V2, GW_S3_FAMILY_BUCKET},
        {GW_OP_LIST_OBJECT_VERSIONS, GW_S3_FAMILY_BUCKET},
        {GW_OP_GET_BUCKET_SUBRESOURCE, GW_S3_FAMILY_BUCKET},
        {GW_OP_DELETE_BUCKET_SUBRESOURCE, GW_S3_FAMILY_BUCKET},
        {GW_OP_LIST_MULTIPART_UPLOADS, GW_S3_FAMILY_MULTIPART},
        {GW_OP_CREATE_MULTIPART_UPLOAD, GW_S3_FAMILY_MULTIPART},
        {GW_OP_UPLOAD_PART, GW_S3_FAMILY_MULTIPART},
        {GW_OP_UPLOAD_PART_COPY, GW_S3_FAMILY_MULTIPART},
        {GW_OP_COMPLETE_MULTIPART_UPLOAD, GW_S3_FAMILY_MULTIPART},
        {GW_OP_ABORT_MULTIPART_UPLOAD, GW_S3_FAMILY_MULTIPART},
        {GW_OP_LIST_PARTS, GW_S3_FAMILY_MULTIPART},
        {GW_OP_DELETE_OBJECTS, GW_S3_FAMILY_OBJECT},
        {GW_OP_PUT_OBJECT, GW_S3_FAMILY_OBJECT},
        {GW_OP_COPY_OBJECT, GW_S3_FAMILY_OBJECT},
        {GW_OP_GET_OBJECT, GW_S3_FAMILY_OBJECT},
        {GW_OP_HEAD_OBJECT, GW_S3_FAMILY_OBJECT},
        {GW_OP_DELETE_OBJECT, GW_S3_FAMILY_OBJECT},
        {GW_OP_GET_OBJECT_ACL, GW_S3_FAMILY_OBJECT},
        {GW_OP_PUT_OBJECT_ACL, GW_S3_FAMILY_OBJECT},
        {GW_OP_GET_OBJECT_TAGGING, GW_S3_FAMILY_OBJECT},
        {GW_OP_DELETE_OBJECT_TAGGING, GW_S3_FAMILY_OBJECT},
    };
    static const char *const fam_name[] = {"service", "bucket", "object", "multipart"};
    bool seen[GW_OP_COUNT] = {false};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        enum gw_s3_family got = gw_s3_op_family(want[i].op);
        is_int(got, want[i].fam, "%s goes to the %s handler", gw_s3_op_name(want[i].op),
               fam_name[want[i].fam]);
        ok(gw_s3_op_checks_bucket(want[i].op) == (want[i].fam != GW_S3_FAMILY_SERVICE),
           "... %s the bucket check", want[i].fam == GW_S3_FAMILY_SERVICE ? "without" : "after");
        /* The cache may vouch for a bucket only where meta is asked about it again. */
        bool listing = want[i].op == GW_OP_LIST_OBJECTS || want[i].op == GW_OP_LIST_OBJECTS_V2 ||
                       want[i].op == GW_OP_LIST_OBJECT_VERSIONS;
        bool cacheable = want[i].fam == GW_S3_FAMILY_OBJECT ||
                         want[i].fam == GW_S3_FAMILY_MULTIPART || listing;
        ok(gw_s3_op_bucket_cacheable(want[i].op) == cacheable, "... %s the bucket cache",
           cacheable ? "with" : "never with");
        seen[want[i].op] = true;
    }
    /* A new operation must be placed here deliberately. */
    size_t missing = 0;
    for (int op = 1; op < GW_OP_COUNT; op++)
        if (!seen[op]) {
            missing++;
            diag("%s has no expected family in this test", gw_s3_op_name((enum gw_s3_op)op));
        }
    is_int(missing, 0, "every routed operation has its expected family here");
    is_int(gw_s3_op_family(GW_OP_NONE), GW_S3_FAMILY_OBJECT,
           "an unrouted operation reaches the object dispatcher (which refuses it)");
}

static void test_erasure(void)
{
    static const struct {
        const char *v;
        uint32_t k, m;
    } good[] = {{"4+2", 4, 2}, {"2+1", 2, 1}, {"1+0", 1, 0}, {"16+8", 16, 8}, {"10+4", 10, 4},
                {"1+8", 1, 8}, {"16+0", 16, 0}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct gw_s3_err e;
        uint32_t k = 99, m = 99;
        gw_s3_err_clear(&e);
        enum gw_s3_error rc =
            gw_s3_erasure_parse((struct gw_str){good[i].v, strlen(good[i].v)}, &k, &m, &e);
        ok(rc == GW_S3_OK && k == good[i].k && m == good[i].m, "'%s' is %u+%u", good[i].v,
           good[i].k, good[i].m);
    }
    static const char *const bad[] = {
        "",     "4",     "4+",    "+2",   "0+2",  "17+0", "4+9",  "4+2 ", " 4+2", "4 +2",
        "04+2", "4+02",  "4-2",   "4+2+1", "a+b", "-1+2", "4++2", "100+1", "1+100",
        "4+2\n", "4x2",  "999999999999+1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gw_s3_err e;
        uint32_t k = 99, m = 99;
        gw_s3_err_clear(&e);
        enum gw_s3_error rc =
            gw_s3_erasure_parse((struct gw_str){bad[i], strlen(bad[i])}, &k, &m, &e);
        char shown[64];
        size_t o = 0;
        for (const char *p = bad[i]; *p && o + 3 < sizeof(shown); p++)
            o += (size_t)snprintf(shown + o, sizeof(shown) - o, *p == '\n' ? "\\n" : "%c", *p);
        shown[o] = '\0';
        ok(rc == GW_S3_INVALID_ARGUMENT && e.code == GW_S3_INVALID_ARGUMENT &&
               strstr(e.msg, "1 <= K <= 16") && strstr(e.msg, "0 <= M <= 8") && k == 99 &&
               m == 99,
           "'%s' is refused as InvalidArgument naming the limits", shown);
    }
    /* A value that is not NUL-terminated where it ends (a header slice). */
    struct gw_s3_err e;
    uint32_t k = 0, m = 0;
    gw_s3_err_clear(&e);
    ok(gw_s3_erasure_parse((struct gw_str){"2+1xyz", 3}, &k, &m, &e) == GW_S3_OK && k == 2 &&
           m == 1,
       "only the value's own bytes are read");
}

/* ---- the layer behind a server ---- */

struct env {
    struct gw_config cfg;
    struct gw_cluster *cluster;
    struct gw_keys *keys;
    struct gw_s3_ctx ctx;
    struct gw_server *server;
    int port;
};

static void env_start(struct env *v)
{
    struct cmn_err err;
    memset(v, 0, sizeof(*v));
    cmn_err_clear(&err);
    /* Port 1 on loopback: nothing listens, connections are refused at once. */
    static const char *const kv[] = {
        "meta", "127.0.0.1:1", "cluster-secret", "0123456789abcdef0123", "listen",
        "127.0.0.1:0", "workers", "1", "meta-timeout", "300ms", "gc", "false",
    };
    if (cmn_conf_defaults(gw_conf_table, &v->cfg, &err))
        tap_bail("defaults: %s", cmn_err_text(&err));
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i += 2)
        if (cmn_conf_set(gw_conf_table, &v->cfg, kv[i], kv[i + 1], &err))
            tap_bail("set %s: %s", kv[i], cmn_err_text(&err));
    if (gw_config_finish(&v->cfg, &err))
        tap_bail("finish: %s", cmn_err_text(&err));
    struct gw_cluster_config cc = {.call_timeout_ms = 300};
    if (gw_cluster_create(&cc, &v->cluster))
        tap_bail("cluster");
    struct gw_keys_config kc = GW_KEYS_CONFIG_DEFAULT;
    kc.fetch_timeout_ms = 300;
    if (gw_keys_create(&kc, &v->keys))
        tap_bail("keys");
    gw_s3_ctx_init(&v->ctx, &v->cfg, v->cluster, v->keys);
    v->ctx.run_refresher = false;
    struct gw_server_opts so = {
        .addr = "127.0.0.1:0",
        .workers = 1,
        .handler = &gw_s3_handler,
        .handler_data = &v->ctx,
    };
    if (gw_server_create(&so, &v->server, &err) || gw_server_start(v->server, &err))
        tap_bail("server: %s", cmn_err_text(&err));
    v->port = gw_server_port(v->server);
}

static void env_stop(struct env *v)
{
    gw_server_stop(v->server, 1000);
    gw_server_destroy(v->server);
    gw_keys_destroy(v->keys);
    gw_cluster_destroy(v->cluster);
    gw_config_free(&v->cfg);
}

/* The text of <tag> in the body, or "". */
static const char *xml_text(struct resp *r, const char *tag, char *out, size_t cap)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    cmn_buf_terminate(&r->body);
    const char *body = r->body.data ? (const char *)r->body.data : "";
    const char *a = strstr(body, open), *b = a ? strstr(a, close) : NULL;
    out[0] = '\0';
    if (a && b)
        snprintf(out, cap, "%.*s", (int)(b - a - (long)strlen(open)), a + strlen(open));
    return out;
}

/* Sends `req`, reads the answer and checks it is error `code` with `status`, an error
 * document (unless HEAD) whose RequestId is the x-amz-request-id and x-amz-id-2 headers. */
static void expect_error(struct cli *c, const char *req, bool head, int status, const char *code,
                         const char *what)
{
    struct resp r;
    char got_code[64], rid[64];
    memset(&r, 0, sizeof(r));
    cmn_buf_init(&r.body);
    if (!sf_send_str(c, req) || sf_read_resp(c, &r, head ? 1 : 0) != 0) {
        ok(0, "%s: answered", what);
        cmn_buf_free(&r.body);
        return;
    }
    const char *id = sf_hdr(&r, "x-amz-request-id");
    char idc[64];
    snprintf(idc, sizeof(idc), "%s", id ? id : "");
    const char *id2 = sf_hdr(&r, "x-amz-id-2");
    bool ids = idc[0] && id2 && strcmp(idc, id2) == 0;
    if (head) {
        ok(r.status == status && ids && r.body.len == 0,
           "%s: %d, request ids, no body (status %d)", what, status, r.status);
    } else {
        const char *ct = sf_hdr(&r, "Content-Type");
        bool xml = ct && strcmp(ct, "application/xml") == 0;
        xml_text(&r, "Code", got_code, sizeof(got_code));
        xml_text(&r, "RequestId", rid, sizeof(rid));
        ok(r.status == status && strcmp(got_code, code) == 0 && xml && ids &&
               strcmp(rid, idc) == 0 && !r.close,
           "%s: %d %s, application/xml, RequestId = x-amz-request-id = x-amz-id-2, kept "
           "alive (got %d %s)",
           what, status, code, r.status, got_code);
    }
    cmn_buf_free(&r.body);
}

/* A header-signed request's head with a date `age` seconds in the past, for `region`. The
 * signature is well formed and wrong: nothing checks it before the key is known. */
static void signed_head(char *out, size_t cap, const char *method, const char *target,
                        long age, const char *region)
{
    time_t t = time(NULL) - age;
    struct tm tm;
    char date[32], day[16];
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
    strftime(day, sizeof(day), "%Y%m%d", &tm);
    snprintf(out, cap,
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nx-amz-date: %s\r\n"
             "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"
             "Authorization: AWS4-HMAC-SHA256 Credential=LODETESTKEY000000001/%s/%s/s3/"
             "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
             "Signature=%064d\r\n\r\n",
             method, target, date, day, region, 0);
}

static void test_layer(void)
{
    struct env v;
    char req[2048];
    env_start(&v);
    struct cli *c = sf_cli_open(v.port, 0);

    expect_error(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, 403, "AccessDenied",
                 "an anonymous ListBuckets");
    expect_error(c, "GET /photos/a.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, 403,
                 "AccessDenied", "an anonymous GetObject");
    expect_error(c, "HEAD /photos HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", true, 403, NULL,
                 "an anonymous HeadBucket");
    expect_error(c, "PUT /Bad_Bucket HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                 false, 400, "InvalidBucketName", "an invalid bucket name, before auth");
    expect_error(c, "GET /photos/a/../b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, 400,
                 "InvalidArgument", "a key with a '..' segment");
    expect_error(c, "OPTIONS /photos/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, 501,
                 "NotImplemented", "a CORS preflight");
    expect_error(c, "PATCH /photos/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, 405,
                 "MethodNotAllowed", "an unknown method");
    signed_head(req, sizeof(req), "GET", "/photos/a.jpg", 3600, "us-east-1");
    expect_error(c, req, false, 403, "RequestTimeTooSkewed",
                 "a request signed an hour ago (clock-skew 15m)");
    signed_head(req, sizeof(req), "GET", "/photos/a.jpg", 0, "eu-west-1");
    expect_error(c, req, false, 400, "AuthorizationHeaderMalformed",
                 "a credential scope of another region");
    expect_error(c,
                 "GET /photos/a.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Authorization: AWS4-HMAC-SHA256 Credential=garbage\r\n\r\n",
                 false, 400, "AuthorizationHeaderMalformed", "a malformed Authorization header");
    /* Well formed and current: the key must come from meta, which does not answer. */
    signed_head(req, sizeof(req), "GET", "/photos/a.jpg", 0, "us-east-1");
    expect_error(c, req, false, 503, "ServiceUnavailable",
                 "a signed request while lode-meta is unreachable");
    signed_head(req, sizeof(req), "HEAD", "/photos/a.jpg", 0, "us-east-1");
    expect_error(c, req, true, 503, NULL, "a signed HEAD while lode-meta is unreachable");
    expect_error(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, 403, "AccessDenied",
                 "the connection still serves requests afterwards");
    sf_cli_close(c);
    env_stop(&v);
    ok(1, "the server with the S3 layer stops cleanly");
}

int main(void)
{
    cmn_log_set_level(CMN_LOG_ERROR);
    sf_init();
    test_families();
    test_erasure();
    test_layer();
    return tap_done();
}
