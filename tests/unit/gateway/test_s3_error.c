/* S3 error codes and documents (gateway/s3_error.c): statuses and codes as S3 documents them
 * (Amazon S3 API Reference, "Error responses"), the lode-to-S3 mapping, and the rendered
 * document: exact bytes for a small case, escaping, and invalid input made valid. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "gateway/s3_errdoc.h"
#include "gateway/xml.h"
#include "tests/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_table(void)
{
    /* Codes and statuses from the S3 error code list. */
    static const struct {
        enum gw_s3_error e;
        const char *code;
        int status;
    } v[] = {
        {GW_S3_ACCESS_DENIED, "AccessDenied", 403},
        {GW_S3_NO_SUCH_BUCKET, "NoSuchBucket", 404},
        {GW_S3_NO_SUCH_KEY, "NoSuchKey", 404},
        {GW_S3_NO_SUCH_UPLOAD, "NoSuchUpload", 404},
        {GW_S3_BUCKET_NOT_EMPTY, "BucketNotEmpty", 409},
        {GW_S3_BUCKET_ALREADY_OWNED, "BucketAlreadyOwnedByYou", 409},
        {GW_S3_INVALID_RANGE, "InvalidRange", 416},
        {GW_S3_PRECONDITION_FAILED, "PreconditionFailed", 412},
        {GW_S3_NOT_MODIFIED, "NotModified", 304},
        {GW_S3_METHOD_NOT_ALLOWED, "MethodNotAllowed", 405},
        {GW_S3_MISSING_CONTENT_LENGTH, "MissingContentLength", 411},
        {GW_S3_NOT_IMPLEMENTED, "NotImplemented", 501},
        {GW_S3_SERVICE_UNAVAILABLE, "ServiceUnavailable", 503},
        {GW_S3_SLOW_DOWN, "SlowDown", 503},
        {GW_S3_INTERNAL_ERROR, "InternalError", 500},
        {GW_S3_KEY_TOO_LONG, "KeyTooLongError", 400},
        {GW_S3_MALFORMED_XML, "MalformedXML", 400},
        {GW_S3_REQUEST_TIME_TOO_SKEWED, "RequestTimeTooSkewed", 403},
        {GW_S3_SIGNATURE_DOES_NOT_MATCH, "SignatureDoesNotMatch", 403},
        {GW_S3_STORAGE_FULL, "XLodeStorageFull", 507},
    };
    for (size_t i = 0; i < N(v); i++)
        ok(strcmp(gw_s3_error_code(v[i].e), v[i].code) == 0 &&
               gw_s3_error_status(v[i].e) == v[i].status,
           "%s is %d", v[i].code, v[i].status);
    ok(gw_s3_error_status(GW_S3_OK) == 200 && strcmp(gw_s3_error_code(GW_S3_OK), "") == 0,
       "OK is 200 with no code");
    ok(gw_s3_error_status((enum gw_s3_error)9999) == 500 &&
           strcmp(gw_s3_error_code((enum gw_s3_error)9999), "InternalError") == 0 &&
           strcmp(gw_s3_error_message((enum gw_s3_error)-1), gw_s3_error_message(GW_S3_INTERNAL_ERROR)) == 0,
       "a value outside the enum reads as InternalError");
    ok(strcmp(gw_s3_error_message(GW_S3_NO_SUCH_KEY), "The specified key does not exist.") == 0,
       "default message");
    ok(!gw_s3_error_has_body(GW_S3_NO_SUCH_KEY, true), "HEAD: no body");
    ok(gw_s3_error_has_body(GW_S3_NO_SUCH_KEY, false), "GET: a body");
    ok(!gw_s3_error_has_body(GW_S3_NOT_MODIFIED, false), "304: no body");
    ok(!gw_s3_error_has_body(GW_S3_OK, false), "OK: no error body");
}

static void test_from_lode(void)
{
    static const struct {
        int code;
        enum gw_s3_error want;
    } v[] = {
        {0, GW_S3_OK},
        {LODE_ENOBUCKET, GW_S3_NO_SUCH_BUCKET},
        {LODE_EBUCKETEXISTS, GW_S3_BUCKET_ALREADY_EXISTS},
        {LODE_EBUCKETNOTEMPTY, GW_S3_BUCKET_NOT_EMPTY},
        {LODE_ENOKEY, GW_S3_NO_SUCH_KEY},
        {LODE_EPRECONDITION, GW_S3_PRECONDITION_FAILED},
        {LODE_ENOUPLOAD, GW_S3_NO_SUCH_UPLOAD},
        {LODE_EBADPART, GW_S3_INVALID_PART},
        {LODE_EPARTORDER, GW_S3_INVALID_PART_ORDER},
        {LODE_ENOACCESSKEY, GW_S3_INVALID_ACCESS_KEY_ID},
        {LODE_ENOUSER, GW_S3_INVALID_ACCESS_KEY_ID},
        {LODE_EINVALNAME, GW_S3_INVALID_ARGUMENT},
        {LODE_ETOOLARGE, GW_S3_ENTITY_TOO_LARGE},
        {LODE_ENOSPACE, GW_S3_STORAGE_FULL},
        {LODE_EMETAFULL, GW_S3_STORAGE_FULL},
        {-ENOSPC, GW_S3_STORAGE_FULL},
        {LODE_ENOTLEADER, GW_S3_SERVICE_UNAVAILABLE},
        {LODE_ENOLEADER, GW_S3_SERVICE_UNAVAILABLE},
        {LODE_ETIMEOUT, GW_S3_SERVICE_UNAVAILABLE},
        {LODE_EUNAVAILABLE, GW_S3_SERVICE_UNAVAILABLE},
        {LODE_ESHUTDOWN, GW_S3_SERVICE_UNAVAILABLE},
        {-ECONNREFUSED, GW_S3_SERVICE_UNAVAILABLE},
        {-EAGAIN, GW_S3_SLOW_DOWN},
        {LODE_EINTERNAL, GW_S3_INTERNAL_ERROR},
        {LODE_ECORRUPT, GW_S3_INTERNAL_ERROR},
        {LODE_EAUTH, GW_S3_INTERNAL_ERROR}, /* the gateway's own link to meta */
        {-ENOMEM, GW_S3_INTERNAL_ERROR},
        {-1999, GW_S3_INTERNAL_ERROR},
        {42, GW_S3_INTERNAL_ERROR},
    };
    for (size_t i = 0; i < N(v); i++)
        ok(gw_s3_error_from_lode(v[i].code) == v[i].want, "lode %d (%s) -> %s", v[i].code,
           lode_errname(v[i].code), gw_s3_error_code(v[i].want));
}

static void test_render(void)
{
    struct gw_s3_err e;
    char *body = NULL;
    size_t len = 0;

    gw_s3_err_set(&e, GW_S3_NO_SUCH_KEY, NULL);
    gw_s3_err_extra(&e, "Key", "a<b&c");
    ok(gw_s3_error_render(&e, GW_STR("/bkt/a<b&c"), GW_STR("4442587FB7D0A2F9"), &body, &len) == 0,
       "render NoSuchKey");
    static const char want[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>"
        "<Key>a&lt;b&amp;c</Key><Resource>/bkt/a&lt;b&amp;c</Resource>"
        "<RequestId>4442587FB7D0A2F9</RequestId></Error>";
    is_str(body, want, "exact error document");
    ok(len == strlen(want), "length without the NUL");

    /* The document parses back with the reader, text unescaped. */
    struct gw_xml_doc d;
    ok(gw_xml_parse(body, len, NULL, &d, NULL) == GW_S3_OK, "it is well-formed");
    const struct gw_xml_node *k = gw_xml_child(&d, gw_xml_root(&d), "Key");
    ok(k && strcmp(k->text, "a<b&c") == 0, "escaped text reads back");
    gw_xml_doc_free(&d);
    free(body);

    gw_s3_err_set(&e, GW_S3_REQUEST_TIME_TOO_SKEWED, "skew of %d minutes", 20);
    gw_s3_err_extra(&e, "RequestTime", "20240101T000000Z");
    gw_s3_err_extra(&e, "ServerTime", "2024-01-01T00:20:00Z");
    gw_s3_err_extra(&e, "MaxAllowedSkewMilliseconds", "900000");
    gw_s3_err_extra(&e, "bad name", "dropped");        /* not an XML name */
    gw_s3_err_extra(&e, "Fifth", "beyond the limit"); /* over GW_S3_ERR_EXTRA_MAX */
    ok(e.n_extra == GW_S3_ERR_EXTRA_MAX, "extras are capped");
    ok(gw_s3_error_render(&e, (struct gw_str){"", 0}, (struct gw_str){"", 0}, &body, &len) == 0,
       "render with a custom message");
    static const char want2[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Error><Code>RequestTimeTooSkewed</Code><Message>skew of 20 minutes</Message>"
        "<RequestTime>20240101T000000Z</RequestTime><ServerTime>2024-01-01T00:20:00Z</ServerTime>"
        "<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds></Error>";
    is_str(body, want2, "custom message, extras, no resource or id, bad extra name dropped");
    free(body);

    /* Hostile bytes in the resource: invalid UTF-8 and controls become U+FFFD. */
    gw_s3_err_set(&e, GW_S3_INVALID_URI, NULL);
    ok(gw_s3_error_render(&e, (struct gw_str){"/b/\xff\x01x", 6}, GW_STR("id"), &body, &len) == 0,
       "render with hostile bytes");
    ok(strstr(body, "<Resource>/b/\xef\xbf\xbd\xef\xbf\xbdx</Resource>") != NULL,
       "invalid bytes replaced by U+FFFD");
    ok(gw_xml_parse(body, len, NULL, &d, NULL) == GW_S3_OK, "still well-formed");
    gw_xml_doc_free(&d);
    free(body);

    /* A huge resource is cut so the document stays small and valid. */
    static char huge[100000];
    memset(huge, '&', sizeof(huge));
    ok(gw_s3_error_render(&e, (struct gw_str){huge, sizeof(huge)}, GW_STR("id"), &body, &len) == 0 &&
           len < 20000,
       "a 100 kB resource is truncated (%zu bytes)", len);
    free(body);

    gw_s3_err_clear(&e);
    body = NULL;
    ok(gw_s3_error_render(&e, GW_STR("/"), GW_STR("id"), &body, &len) == -EINVAL && body == NULL,
       "OK is not an error document");
    ok(gw_s3_err_set(NULL, GW_S3_NO_SUCH_KEY, "x") == GW_S3_NO_SUCH_KEY, "set on NULL returns the code");
    gw_s3_err_extra(NULL, "Key", "x"); /* must not crash */

    char longmsg[600];
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    gw_s3_err_set(&e, GW_S3_INVALID_ARGUMENT, "%s", longmsg);
    ok(strlen(e.msg) == GW_S3_ERR_MSG_MAX - 1, "a long message is truncated");
}

int main(void)
{
    test_table();
    test_from_lode();
    test_render();
    return tap_done();
}
