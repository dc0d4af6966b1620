/* Signature Version 4 parsing and verification (gateway/sigv4.[ch]) against
 * independently known answers:
 *  - the examples published in the Amazon S3 API reference ("Signature Calculations for the
 *    Authorization Header", "Authenticating Requests: Using Query Parameters", "Transferring
 *    Payload in Multiple Chunks") and the general reference's signing-key derivation example;
 *  - requests signed by botocore 1.43.11 at development time, through the real client
 *    pipeline (serialisation + signing) with a stubbed transport and a fixed clock:
 *
 *      import datetime, botocore.auth as ba, botocore.session
 *      from botocore.config import Config
 *      ba.get_current_datetime = lambda: datetime.datetime(2024, 2, 29, 12, 34, 56)
 *      c = botocore.session.get_session().create_client('s3', region_name='eu-west-1',
 *          endpoint_url='http://gw.example:9000', aws_access_key_id='LKTESTKEY0000000001',
 *          aws_secret_access_key='s3cr3t/Key+With=Odd~Chars',
 *          config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}))
 *      c.meta.events.register('before-send.s3.*', capture)   # records method/url/headers
 *      c.put_object(Bucket='bkt', Key='dir/a b+c=d~e/\u00fc*!.txt', Body=b'hello world',
 *                   Metadata={'note': 'x  y'})
 *      c.list_objects_v2(Bucket='bkt', Prefix='a b/\u00fc+', Delimiter='/',
 *                        StartAfter='x=y~z*', MaxKeys=7)
 *      c.get_object(Bucket='bkt', Key='k', Range='bytes=0-9',
 *                   ResponseContentDisposition='attachment; filename="a b.txt"')
 *      c.generate_presigned_url('get_object', Params={'Bucket': 'bkt',
 *          'Key': 'p/\u00e9 t~x.bin', 'ResponseContentType': 'text/plain; charset=utf-8'},
 *          ExpiresIn=3600)
 *      c.generate_presigned_url('put_object', Params={'Bucket': 'bkt', 'Key': 'up load'},
 *          ExpiresIn=604800)
 *      # the same client on https://gw.example, Body=io.BytesIO(b'0123456789' * 3):
 *      # botocore chooses STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer
 *      # and, with botocore.auth.S3SigV4Auth on an AWSRequest built by hand:
 *      req = AWSRequest(method='GET', url='http://gw.example:9000/bkt/obj?versions&b=2&a=2'
 *                       '&a=1&empty=&z=~%2A', data=b'')
 *      req.headers['X-Amz-Meta-Dup'] = 'one'; req.headers['X-Amz-Meta-Dup'] = 'two  three'
 *      req.headers['X-Amz-Meta-Tabs'] = '\ta \t b\t'
 *      req = AWSRequest(method='DELETE', ...); req.headers['Date'] = '...'  # Date, no x-amz-date
 *    Without signature_version='s3v4' botocore presigns with Signature Version 2: that URL
 *    is kept as the refused V2 example.
 *  - times from Python's calendar.timegm.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/hmac.h"
#include "common/id.h"
#include "gateway/sigv4.h"
#include "gateway/sigv4_stream.h"
#include "tests/tap.h"
#include "tests/unit/gateway/sigv4_fixture.h"

static void test_published(void)
{
    struct req r;
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_OK, "AWS example: GET Object with Range");

    /* The canonical request and string to sign the document prints for it. */
    struct gw_sigv4_auth a;
    struct gw_sigv4_policy pol = {.region = "us-east-1", .now = AWS_TIME};
    struct cmn_buf canon, sts;
    cmn_buf_init(&canon);
    cmn_buf_init(&sts);
    gw_sigv4_parse(&r.head, &pol, &a, NULL);
    ok(gw_sigv4_canonical_request(&r.head, &a, &canon, NULL) == GW_S3_OK &&
           gw_sigv4_string_to_sign(&a, canon.data, canon.len, &sts) == 0 &&
           cmn_buf_terminate(&canon) == 0 && cmn_buf_terminate(&sts) == 0,
       "canonical request and string to sign built");
    is_str((char *)canon.data,
           "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
           "x-amz-content-sha256:" EMPTY_SHA "\nx-amz-date:20130524T000000Z\n\n"
           "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA,
           "the published canonical request");
    is_str((char *)sts.data,
           "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
           "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
           "the published string to sign");
    cmn_buf_free(&canon);
    cmn_buf_free(&sts);

    aws_put_object(&r, PUT_OBJECT_AUTHZ);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_OK,
           "AWS example: PUT Object (Date and x-amz-date both signed, '$' sent as %%24)");
    gw_sigv4_parse(&r.head, &pol, &a, NULL);
    ok(a.payload == GW_SIGV4_PAYLOAD_SHA256, "its payload is a SHA-256");
    struct gw_sigv4_body b;
    struct gw_sigv4_err e;
    gw_sigv4_body_init(&b, &a, NULL);
    gw_sigv4_body_update(&b, "Welcome to ", 11);
    gw_sigv4_body_update(&b, "Amazon S3.", 10);
    is_int(gw_sigv4_body_finish(&b, NULL), GW_S3_OK, "the body 'Welcome to Amazon S3.' matches it");
    gw_sigv4_body_free(&b);
    gw_sigv4_body_init(&b, &a, NULL);
    gw_sigv4_body_update(&b, "Welcome to Amazon S3!", 21);
    is_int(gw_sigv4_body_finish(&b, &e), GW_S3_CONTENT_SHA256_MISMATCH,
           "one changed byte of the body: XAmzContentSHA256Mismatch");
    gw_sigv4_body_free(&b);

    aws_get_bucket(&r, "/?lifecycle",
                   BUCKET_AUTHZ("fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_OK,
           "AWS example: GET Bucket Lifecycle (a parameter without '=')");
    aws_get_bucket(&r, "/?max-keys=2&prefix=J",
                   BUCKET_AUTHZ("34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_OK, "AWS example: GET Bucket (list)");

    aws_presigned(&r, PRESIGNED_QUERY);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_OK, "AWS example: presigned URL");

    aws_chunked_head(&r, CHUNKED_AUTHZ);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_OK,
           "AWS example: the seed signature of the chunked upload");
    gw_sigv4_parse(&r.head, &pol, &a, NULL);
    ok(a.payload == GW_SIGV4_PAYLOAD_STREAMING && gw_sigv4_payload_is_streaming(a.payload),
       "its payload mode is STREAMING-AWS4-HMAC-SHA256-PAYLOAD");

    /* The general reference's key derivation example (service iam). */
    uint8_t key[32];
    char hex[65];
    gw_sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 40, "20120215", "us-east-1",
                         "iam", key);
    cmn_hex_encode(key, 32, hex);
    is_str(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d",
           "signing key of the AWS derivation example");
}

static void boto_put(struct req *r)
{
    req_init(r, "PUT", "/bkt/dir/a%20b%2Bc%3Dd~e/%C3%BC%2A%21.txt");
    req_add(r, "Host", "gw.example:9000");
    req_add(r, "x-amz-meta-note", "x  y");
    req_add(r, "User-Agent", "Botocore/1.43.11 ua/2.1 os/linux");
    req_add(r, "Expect", "100-continue");
    req_add(r, "x-amz-checksum-crc32", "DUoRhQ==");
    req_add(r, "x-amz-sdk-checksum-algorithm", "CRC32");
    req_add(r, "X-Amz-Date", "20240229T123456Z");
    req_add(r, "X-Amz-Content-SHA256",
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    req_add(r, "Authorization",
            "AWS4-HMAC-SHA256 " BOTO_CRED "SignedHeaders=host;x-amz-checksum-crc32;"
            "x-amz-content-sha256;x-amz-date;x-amz-meta-note;x-amz-sdk-checksum-algorithm, "
            "Signature=994f20c9c51fd2519b86a6d5907f7c53cb8d22065a3d31071378291989c6b792");
    req_add(r, "Content-Length", "11");
}

static void boto_get(struct req *r, const char *target, const char *signed_headers,
                     const char *sig)
{
    char authz[512];
    req_init(r, "GET", target);
    req_add(r, "Host", "gw.example:9000");
    req_add(r, "User-Agent", "Botocore/1.43.11");
    req_add(r, "X-Amz-Date", "20240229T123456Z");
    req_add(r, "X-Amz-Content-SHA256", EMPTY_SHA);
    snprintf(authz, sizeof(authz), "AWS4-HMAC-SHA256 " BOTO_CRED "SignedHeaders=%s, Signature=%s",
             signed_headers, sig);
    req_add(r, "Authorization", authz);
}

#define BOTO_LIST "/bkt?list-type=2&prefix=a%20b%2F%C3%BC%2B&delimiter=%2F&start-after="
#define BOTO_LIST_SIG "94d8a6c00513949e7e493aa323057cb00e90f9645450d19d55ea08ed54b88bd0"
#define BOTO_PRESIGN_GET                                                                   \
    "/bkt/p/%C3%A9%20t~x.bin?response-content-type=text%2Fplain%3B%20charset%3Dutf-8&"       \
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=LKTESTKEY0000000001%2F20240229%2F"   \
    "eu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20240229T123456Z&X-Amz-Expires=3600&"         \
    "X-Amz-SignedHeaders=host&X-Amz-Signature="                                             \
    "6b669a6f2c1b024f42492b1f3ba7c24ff7ac790b7e65b532967e26767e17e0af"

static void test_botocore(void)
{
    struct req r;
    boto_put(&r);
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_OK,
           "botocore PutObject: key with space + = ~ * ! and UTF-8, blanks in a meta value");
    is_int(check(&r, BOTO_SK, "", BOTO_TIME), GW_S3_OK, "empty gateway region accepts any");
    is_int(check(&r, BOTO_SK, NULL, BOTO_TIME), GW_S3_OK, "no gateway region accepts any");
    is_int(check(&r, BOTO_SK, "us-east-1", BOTO_TIME), GW_S3_AUTH_HEADER_MALFORMED,
           "signed for eu-west-1 at a us-east-1 gateway: AuthorizationHeaderMalformed");
    ok(strstr(last.msg, "the region 'eu-west-1' is wrong; expecting 'us-east-1'") != NULL,
       "the message names the expected region (%s)", last.msg);
    is_int(check(&r, "s3cr3t/Key+With=Odd~Charz", "eu-west-1", BOTO_TIME),
           GW_S3_SIGNATURE_DOES_NOT_MATCH, "another secret: SignatureDoesNotMatch");
    struct gw_sigv4_auth a;
    struct gw_sigv4_policy pol = {.region = "eu-west-1", .now = BOTO_TIME};
    gw_sigv4_parse(&r.head, &pol, &a, NULL);
    ok(gw_sigv4_is_signed(&a, "X-Amz-Meta-Note") && gw_sigv4_is_signed(&a, "host") &&
           gw_sigv4_is_signed(&a, "x-amz-sdk-checksum-algorithm") &&
           !gw_sigv4_is_signed(&a, "user-agent") && !gw_sigv4_is_signed(&a, "x-amz") &&
           !gw_sigv4_is_signed(&a, ""),
       "which headers are signed");
    ok(strcmp(a.access_key, BOTO_AK) == 0 && strcmp(a.date, "20240229") == 0 &&
           strcmp(a.region, "eu-west-1") == 0 && strcmp(a.service, "s3") == 0 &&
           a.time == BOTO_TIME && a.kind == GW_SIGV4_HEADER,
       "parsed access key, scope and time");
    uint8_t digest[32];
    cmn_sha256("hello world", 11, digest);
    is_int(gw_sigv4_payload_check(&a, digest, NULL), GW_S3_OK,
           "x-amz-content-sha256 against a digest computed elsewhere");
    digest[0] ^= 1;
    is_int(gw_sigv4_payload_check(&a, digest, NULL), GW_S3_CONTENT_SHA256_MISMATCH,
           "a different digest: XAmzContentSHA256Mismatch");

    boto_get(&r, BOTO_LIST "x%3Dy~z%2A&max-keys=7&encoding-type=url", "host;x-amz-content-sha256;x-amz-date",
             BOTO_LIST_SIG);
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_OK,
           "botocore ListObjectsV2: encoded prefix, delimiter, start-after");
    /* The same parameters encoded differently by another client: the canonical query
     * decodes and re-encodes, so the signature still holds. */
    boto_get(&r, "/bkt?list-type=2&prefix=a+b%2f%c3%bc%2B&delimiter=/&start-after=x=y%7ez*&max-keys=7&encoding-type=url",
             "host;x-amz-content-sha256;x-amz-date", BOTO_LIST_SIG);
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_SIGNATURE_DOES_NOT_MATCH,
           "'+' is a literal plus, not a space: a different prefix");
    boto_get(&r, "/bkt?list-type=2&prefix=a%20b%2f%c3%bc%2B&delimiter=/&start-after=x=y%7ez*&max-keys=7&encoding-type=url",
             "host;x-amz-content-sha256;x-amz-date", BOTO_LIST_SIG);
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_OK,
           "lower-case escapes, raw '/', '=', '*' and %%7E verify as the canonical form");

    boto_get(&r, "/bkt/k?response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22",
             "host;range;x-amz-checksum-mode;x-amz-content-sha256;x-amz-date",
             "4f6265966580db991784c65a450430037cf55a889c131fe9a860159f885aaade");
    req_add(&r, "Range", "bytes=0-9");
    req_add(&r, "x-amz-checksum-mode", "ENABLED");
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_OK,
           "botocore GetObject: Range, checksum mode, response-content-disposition");

    boto_get(&r, "/bkt/obj?versions&b=2&a=2&a=1&empty=&z=~%2A",
             "host;x-amz-content-sha256;x-amz-date;x-amz-meta-dup;x-amz-meta-tabs",
             "d4cb55db8f2d60e36698e2fd353ba81519df423b11a611d2755f471c658ad103");
    req_add(&r, "X-Amz-Meta-Dup", "one");
    req_add(&r, "X-Amz-Meta-Tabs", "\ta \t b\t");
    req_add(&r, "X-Amz-Meta-Dup", "two  three");
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_OK,
           "botocore: repeated and empty parameters, a repeated header, tabs in a value");
    pol.now = BOTO_TIME;
    gw_sigv4_parse(&r.head, &pol, &a, NULL);
    struct cmn_buf canon;
    cmn_buf_init(&canon);
    gw_sigv4_canonical_request(&r.head, &a, &canon, NULL);
    cmn_buf_terminate(&canon);
    ok(strstr((char *)canon.data, "\na=1&a=2&b=2&empty=&versions=&z=~%2A\n") &&
           strstr((char *)canon.data, "\nx-amz-meta-dup:one,two three\nx-amz-meta-tabs:a b\n"),
       "canonical query and headers as botocore prints them");
    cmn_buf_free(&canon);

    req_init(&r, "DELETE", "/bkt/obj");
    req_add(&r, "Host", "gw.example:9000");
    req_add(&r, "Date", "Thu, 29 Feb 2024 12:34:56 -0000");
    req_add(&r, "X-Amz-Content-SHA256", EMPTY_SHA);
    req_add(&r, "Authorization",
            "AWS4-HMAC-SHA256 " BOTO_CRED "SignedHeaders=date;host;x-amz-content-sha256, "
            "Signature=49fd40c20cd0ab3758ba950b13d70dcd42afe1867c05c3fd4a1d9636aaa76a07");
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_OK,
           "botocore with a Date header and no x-amz-date");

    req_init(&r, "GET", BOTO_PRESIGN_GET);
    req_add(&r, "Host", "gw.example:9000");
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME + 3600), GW_S3_OK,
           "botocore presigned GET with response-content-type, at its last valid second");
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME + 3601), GW_S3_ACCESS_DENIED,
           "one second later: AccessDenied");
    is_str(last.msg, "Request has expired", "with 'Request has expired'");
    is_int(check(&r, BOTO_SK, "us-east-1", BOTO_TIME), GW_S3_AUTH_QUERY_ERROR,
           "presigned for another region: AuthorizationQueryParametersError");
    ok(strstr(last.msg, "expecting 'us-east-1'") != NULL, "naming the expected region (%s)",
       last.msg);

    req_init(&r, "PUT",
             "/bkt/up%20load?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=LKTESTKEY0000000001"
             "%2F20240229%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20240229T123456Z&"
             "X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature="
             "7161280aaaf36c2bba8d66601d6ac307c5f9d9e0062ac61bc0fffefd60b0e3e1");
    req_add(&r, "Host", "gw.example:9000");
    req_add(&r, "Content-Length", "5");
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME + 604800), GW_S3_OK,
           "botocore presigned PUT valid for a week, at its last second");
    gw_sigv4_parse(&r.head, &pol, &a, NULL);
    ok(a.kind == GW_SIGV4_PRESIGNED && a.payload == GW_SIGV4_PAYLOAD_UNSIGNED &&
           a.expires == 604800 && strcmp(a.payload_hash, "UNSIGNED-PAYLOAD") == 0,
       "presigned: UNSIGNED-PAYLOAD, expires parsed");

    req_init(&r, "PUT", "/bkt/big");
    req_add(&r, "Host", "gw.example");
    req_add(&r, "Expect", "100-continue");
    req_add(&r, "Transfer-Encoding", "chunked");
    req_add(&r, "Content-Encoding", "aws-chunked");
    req_add(&r, "X-Amz-Trailer", "x-amz-checksum-crc32");
    req_add(&r, "X-Amz-Decoded-Content-Length", "30");
    req_add(&r, "x-amz-sdk-checksum-algorithm", "CRC32");
    req_add(&r, "X-Amz-Date", "20240229T123456Z");
    req_add(&r, "X-Amz-Content-SHA256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    req_add(&r, "Authorization",
            "AWS4-HMAC-SHA256 " BOTO_CRED "SignedHeaders=content-encoding;host;"
            "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
            "x-amz-sdk-checksum-algorithm;x-amz-trailer, "
            "Signature=a4d5fed68cb50ee88693ce6fc685519bb14879c8c3ce745485de04b20256137c");
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_OK,
           "botocore streaming upload with a CRC32 trailer: request signature");
    gw_sigv4_parse(&r.head, &pol, &a, NULL);
    ok(a.payload == GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
       "payload mode STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    struct gw_chunked_cfg cfg;
    ok(gw_chunked_cfg_from_request(&r.head, &a, NULL, &cfg, NULL) == GW_S3_OK &&
           cfg.decoded_length == 30 && gw_str_eq(cfg.trailer_names, "x-amz-checksum-crc32"),
       "decoder configuration from its headers");

    /* Without signature_version='s3v4', botocore presigns with Signature Version 2. */
    req_init(&r, "GET",
             "/bkt/p/%C3%A9%20t~x.bin?response-content-type=text%2Fplain%3B%20charset%3Dutf-8&"
             "AWSAccessKeyId=LKTESTKEY0000000001&Signature=SxndPk2frNP5c7dEUJ7Y2A%2F25vw%3D&"
             "Expires=1795514726");
    req_add(&r, "Host", "gw.example:9000");
    is_int(check(&r, BOTO_SK, "eu-west-1", BOTO_TIME), GW_S3_INVALID_REQUEST,
           "a Signature Version 2 presigned URL is refused");
    ok(strstr(last.msg, "Please use AWS4-HMAC-SHA256") != NULL, "saying what to use (%s)",
       last.msg);
}

/* Flips one bit of every byte of a region of the request in turn; each change must make
 * the request fail, whatever the error. Returns how many changes were accepted. */
static int mutate_all(struct req *r, char *p, size_t n, const char *secret, const char *region,
                      int64_t now)
{
    int accepted = 0;
    for (size_t i = 0; i < n; i++) {
        /* The '?' between path and query is in neither: the HTTP layer splits there. */
        if (p + i == r->head.path.p + r->head.path.n)
            continue;
        p[i] ^= 1;
        struct gw_sigv4_err e;
        if (check_at(r, secret, region, now, &e) == GW_S3_OK) {
            diag("accepted: %.*s", (int)n, p);
            accepted++;
        }
        p[i] ^= 1;
    }
    return accepted;
}

static void test_mutations(void)
{
    struct req r;
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    is_int(mutate_all(&r, (char *)r.head.method.p, r.head.method.n, AWS_SK, "us-east-1", AWS_TIME),
           0, "every one-bit change of the method fails");
    is_int(mutate_all(&r, (char *)r.head.target.p, r.head.target.n, AWS_SK, "us-east-1", AWS_TIME),
           0, "every one-bit change of the path fails");
    int accepted = 0;
    size_t bytes = 0;
    for (size_t h = 0; h < r.head.n_headers; h++) {
        accepted += mutate_all(&r, (char *)r.h[h].name.p, r.h[h].name.n, AWS_SK, "us-east-1",
                               AWS_TIME);
        accepted += mutate_all(&r, (char *)r.h[h].value.p, r.h[h].value.n, AWS_SK, "us-east-1",
                               AWS_TIME);
        bytes += r.h[h].name.n + r.h[h].value.n;
    }
    is_int(accepted, 0, "every one-bit change of %zu bytes of header names and values fails", bytes);

    aws_get_bucket(&r, "/?max-keys=2&prefix=J",
                   BUCKET_AUTHZ("34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
    is_int(mutate_all(&r, (char *)r.head.target.p, r.head.target.n, AWS_SK, "us-east-1", AWS_TIME),
           0, "every one-bit change of a path with a query fails");
    aws_presigned(&r, PRESIGNED_QUERY);
    is_int(mutate_all(&r, (char *)r.head.target.p, r.head.target.n, AWS_SK, "us-east-1", AWS_TIME),
           0, "every one-bit change of a presigned URL fails");
    is_int(mutate_all(&r, (char *)r.h[0].value.p, r.h[0].value.n, AWS_SK, "us-east-1", AWS_TIME), 0,
           "every one-bit change of its host fails");

    /* Header names compare without case; values do not. */
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    for (size_t h = 0; h < r.head.n_headers; h++)
        for (size_t i = 0; i < r.h[h].name.n; i++)
            if ((r.h[h].name.p[i] | 0x20) >= 'a' && (r.h[h].name.p[i] | 0x20) <= 'z')
                ((char *)r.h[h].name.p)[i] ^= 0x20;
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_OK, "header names in another case verify");
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    ((char *)req_find(&r, "range")->value.p)[0] = 'B';
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_SIGNATURE_DOES_NOT_MATCH,
           "a value in another case does not");
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    req_add(&r, "X-Amz-Meta-Unsigned", "added by a proxy");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_OK,
           "an unsigned extra header does not matter (not enforced, as S3)");
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    req_add(&r, "Range", "bytes=10-19");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_SIGNATURE_DOES_NOT_MATCH,
           "a second value of a signed header breaks the signature");
}

struct parse_case {
    const char *what;
    const char *authz; /* replaces Authorization; NULL removes it */
    const char *hname, *hvalue; /* replaces (or adds, or with NULL value removes) a header */
    enum gw_s3_error want;
    const char *msg;   /* substring of the message, or NULL */
};

#define CRED_OK "Credential=" AWS_SCOPE
#define SH_OK "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"
#define HDR(cred, sh, sig) "AWS4-HMAC-SHA256 " cred "," sh "," sig

static const struct parse_case parse_cases[] = {
    {"the published request", HDR(CRED_OK, SH_OK, SIG_OK), NULL, NULL, GW_S3_OK, NULL},
    {"spaces around components", "AWS4-HMAC-SHA256   " CRED_OK " ,  " SH_OK " , " SIG_OK, NULL,
     NULL, GW_S3_OK, NULL},
    {"components in another order", "AWS4-HMAC-SHA256 " SIG_OK "," CRED_OK "," SH_OK, NULL, NULL,
     GW_S3_OK, NULL},
    {"Signature Version 2", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=", NULL, NULL,
     GW_S3_INVALID_REQUEST, "not supported"},
    {"SigV4a", "AWS4-ECDSA-P256-SHA256 " CRED_OK "," SH_OK "," SIG_OK, NULL, NULL,
     GW_S3_INVALID_REQUEST, "AWS4-HMAC-SHA256"},
    {"another scheme", "Bearer abc", NULL, NULL, GW_S3_INVALID_ARGUMENT, "Unsupported"},
    {"an empty Authorization", "", NULL, NULL, GW_S3_INVALID_ARGUMENT, NULL},
    {"the algorithm alone", "AWS4-HMAC-SHA256 ", NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED,
     "three components"},
    {"no Signature", "AWS4-HMAC-SHA256 " CRED_OK "," SH_OK, NULL, NULL,
     GW_S3_AUTH_HEADER_MALFORMED, "three components"},
    {"a trailing comma", HDR(CRED_OK, SH_OK, SIG_OK) ",", NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED,
     NULL},
    {"Credential twice", HDR(CRED_OK, CRED_OK, SIG_OK), NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED,
     "more than once"},
    {"an unknown component", HDR(CRED_OK, SH_OK, SIG_OK) ",Foo=bar", NULL, NULL,
     GW_S3_AUTH_HEADER_MALFORMED, "Foo=bar"},
    {"a scope of four parts", HDR("Credential=" AWS_AK "/20130524/us-east-1/s3", SH_OK, SIG_OK),
     NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED, "mal-formed"},
    {"no access key", HDR("Credential=/20130524/us-east-1/s3/aws4_request", SH_OK, SIG_OK), NULL,
     NULL, GW_S3_AUTH_HEADER_MALFORMED, "mal-formed"},
    {"a short scope date", HDR("Credential=" AWS_AK "/2013052/us-east-1/s3/aws4_request", SH_OK, SIG_OK),
     NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED, "mal-formed"},
    {"a scope date that is not the request's",
     HDR("Credential=" AWS_AK "/20130525/us-east-1/s3/aws4_request", SH_OK, SIG_OK), NULL, NULL,
     GW_S3_AUTH_HEADER_MALFORMED, "Invalid credential date"},
    {"service ec2", HDR("Credential=" AWS_AK "/20130524/us-east-1/ec2/aws4_request", SH_OK, SIG_OK),
     NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED, "incorrect service \"ec2\""},
    {"terminal aws5_request",
     HDR("Credential=" AWS_AK "/20130524/us-east-1/s3/aws5_request", SH_OK, SIG_OK), NULL, NULL,
     GW_S3_AUTH_HEADER_MALFORMED, "incorrect terminal"},
    {"another region", HDR("Credential=" AWS_AK "/20130524/us-west-2/s3/aws4_request", SH_OK, SIG_OK),
     NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED,
     "the region 'us-west-2' is wrong; expecting 'us-east-1'"},
    {"a region with a space", HDR("Credential=" AWS_AK "/20130524/us east/s3/aws4_request", SH_OK, SIG_OK),
     NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED, "mal-formed"},
    {"host not signed", HDR(CRED_OK, "SignedHeaders=range;x-amz-content-sha256;x-amz-date", SIG_OK),
     NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED, "host"},
    {"an empty signed header name", HDR(CRED_OK, "SignedHeaders=host;;range", SIG_OK), NULL, NULL,
     GW_S3_AUTH_HEADER_MALFORMED, "empty name"},
    {"an empty SignedHeaders", HDR(CRED_OK, "SignedHeaders=", SIG_OK), NULL, NULL,
     GW_S3_AUTH_HEADER_MALFORMED, NULL},
    {"a signature of 63 digits",
     HDR(CRED_OK, SH_OK, "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb4"),
     NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED, "64 hexadecimal"},
    {"a signature with a non-hex digit",
     HDR(CRED_OK, SH_OK, "Signature=g0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
     NULL, NULL, GW_S3_AUTH_HEADER_MALFORMED, "64 hexadecimal"},
    {"the signature in upper case",
     HDR(CRED_OK, SH_OK, "Signature=F0E8BDB87C964420E857BD35B5D6ED310BD44F0170ABA48DD91039C6036BDB41"),
     NULL, NULL, GW_S3_OK, NULL},
    {"no x-amz-date and no Date", HDR(CRED_OK, SH_OK, SIG_OK), "x-amz-date", NULL,
     GW_S3_ACCESS_DENIED, "Date or x-amz-date"},
    {"an x-amz-date without Z", HDR(CRED_OK, SH_OK, SIG_OK), "x-amz-date", "20130524T000000",
     GW_S3_ACCESS_DENIED, "x-amz-date"},
    {"an x-amz-date on February 30th", HDR(CRED_OK, SH_OK, SIG_OK), "x-amz-date",
     "20130230T000000Z", GW_S3_ACCESS_DENIED, NULL},
    {"an x-amz-date at 24:00", HDR(CRED_OK, SH_OK, SIG_OK), "x-amz-date", "20130524T240000Z",
     GW_S3_ACCESS_DENIED, NULL},
    {"no x-amz-content-sha256", HDR(CRED_OK, SH_OK, SIG_OK), "x-amz-content-sha256", NULL,
     GW_S3_INVALID_REQUEST, "x-amz-content-sha256"},
    {"x-amz-content-sha256 'abc'", HDR(CRED_OK, SH_OK, SIG_OK), "x-amz-content-sha256", "abc",
     GW_S3_INVALID_ARGUMENT, "must be UNSIGNED-PAYLOAD"},
    {"x-amz-content-sha256 of event streams", HDR(CRED_OK, SH_OK, SIG_OK), "x-amz-content-sha256",
     "STREAMING-AWS4-HMAC-SHA256-EVENTS", GW_S3_NOT_IMPLEMENTED, "not supported"},
    {"x-amz-content-sha256 in upper-case hex", HDR(CRED_OK, SH_OK, SIG_OK),
     "x-amz-content-sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
     GW_S3_SIGNATURE_DOES_NOT_MATCH, NULL},
};

static void apply_case(struct req *r, const struct parse_case *c)
{
    aws_get_object(r, NULL);
    if (c->hname) {
        struct gw_header *h = req_find(r, c->hname);
        if (h && c->hvalue)
            h->value = (struct gw_str){pool_dup(r, c->hvalue), strlen(c->hvalue)};
        else if (h)
            *h = r->h[--r->head.n_headers];
        else
            req_add(r, c->hname, c->hvalue);
    }
    if (c->authz)
        req_add(r, "Authorization", c->authz);
}

static void test_parse_errors(void)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        struct req r;
        apply_case(&r, c);
        enum gw_s3_error rc = check(&r, AWS_SK, "us-east-1", AWS_TIME);
        bool msg_ok = !c->msg || (rc != GW_S3_OK && strstr(last.msg, c->msg));
        ok(rc == c->want && msg_ok && (rc == GW_S3_OK || last.code == rc), "%s: %d (%s)", c->what,
           rc, rc == GW_S3_OK ? "ok" : last.msg);
    }

    struct req r;
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    req_add(&r, "Authorization", GET_OBJECT_AUTHZ);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_INVALID_ARGUMENT,
           "two Authorization headers");
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    req_add(&r, "x-amz-date", "20130524T000000Z");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_ACCESS_DENIED, "two x-amz-date headers");
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    req_add(&r, "x-amz-content-sha256", EMPTY_SHA);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_INVALID_ARGUMENT,
           "two x-amz-content-sha256 headers");
    req_init(&r, "GET", "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256");
    req_add(&r, "Host", "examplebucket.s3.amazonaws.com");
    req_add(&r, "Authorization", GET_OBJECT_AUTHZ);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_INVALID_ARGUMENT,
           "Authorization and X-Amz-Algorithm together");
    ok(strstr(last.msg, "Only one auth mechanism") != NULL, "%s", last.msg);

    /* Skew: 15 minutes either way is accepted, one second more is not. */
    aws_get_object(&r, GET_OBJECT_AUTHZ);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME + 900), GW_S3_OK, "server 900 s ahead");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME - 900), GW_S3_OK, "server 900 s behind");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME + 901), GW_S3_REQUEST_TIME_TOO_SKEWED,
           "server 901 s ahead: RequestTimeTooSkewed");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME - 901), GW_S3_REQUEST_TIME_TOO_SKEWED,
           "server 901 s behind: RequestTimeTooSkewed");
    ok(strstr(last.msg, "20130524T000000Z") != NULL, "the message shows the times (%s)", last.msg);
    struct gw_sigv4_auth a;
    struct gw_sigv4_policy pol = {.region = "us-east-1", .now = AWS_TIME + 61, .max_skew = 60};
    is_int(gw_sigv4_parse(&r.head, &pol, &a, NULL), GW_S3_REQUEST_TIME_TOO_SKEWED,
           "a policy of 60 s refuses 61 s");
    pol.now = AWS_TIME + 60;
    is_int(gw_sigv4_parse(&r.head, &pol, &a, NULL), GW_S3_OK, "and accepts 60 s");
    pol.now = INT64_MAX;
    is_int(gw_sigv4_parse(&r.head, &pol, &a, NULL), GW_S3_REQUEST_TIME_TOO_SKEWED,
           "an absurd clock is just skew");

    /* Anonymous requests. */
    req_init(&r, "GET", "/bkt/obj");
    req_add(&r, "Host", "gw");
    pol = (struct gw_sigv4_policy){.region = "us-east-1", .now = AWS_TIME};
    ok(gw_sigv4_parse(&r.head, &pol, &a, NULL) == GW_S3_OK && a.kind == GW_SIGV4_ANONYMOUS &&
           a.payload == GW_SIGV4_PAYLOAD_UNSIGNED,
       "no authentication: anonymous, unsigned payload");
    req_add(&r, "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    is_int(gw_sigv4_parse(&r.head, &pol, &a, NULL), GW_S3_INVALID_REQUEST,
           "anonymous with signed chunks is refused");
    r.h[1].value = GW_STR("STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    ok(gw_sigv4_parse(&r.head, &pol, &a, NULL) == GW_S3_OK &&
           a.payload == GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
       "anonymous with an unsigned trailer stream is parsed");
    req_init(&r, "GET", "/bkt/obj?X-Amz-Credential=x&X-Amz-Signature=y");
    req_add(&r, "Host", "gw");
    is_int(gw_sigv4_parse(&r.head, &pol, &a, NULL), GW_S3_AUTH_QUERY_ERROR,
           "presign parameters without X-Amz-Algorithm are not anonymous");
    is_int(gw_sigv4_verify(&r.head, &a, (uint8_t[32]){0}, NULL), GW_S3_ACCESS_DENIED,
           "verify refuses what is not signed");
}

/* The presigned example with parameter `name` replaced by `value` (NULL: removed) or, when
 * `name` is not in it, added. */
static void presigned_with(struct req *r, const char *name, const char *value)
{
    char q[1024] = "";
    const char *p = PRESIGNED_QUERY;
    bool found = false;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        size_t nl = strlen(name);
        bool match = n > nl && p[nl] == '=' && strncmp(p, name, nl) == 0;
        found |= match;
        if (!match)
            snprintf(q + strlen(q), sizeof(q) - strlen(q), "%s%.*s", *q ? "&" : "", (int)n, p);
        else if (value)
            snprintf(q + strlen(q), sizeof(q) - strlen(q), "%s%s=%s", *q ? "&" : "", name, value);
        p += n + (amp != NULL);
    }
    if (!found)
        snprintf(q + strlen(q), sizeof(q) - strlen(q), "&%s=%s", name, value);
    aws_presigned(r, q);
}

static void test_presigned(void)
{
    static const struct {
        const char *name, *value, *msg;
        enum gw_s3_error want;
    } cases[] = {
        {"X-Amz-Algorithm", NULL, "requires the X-Amz-Algorithm", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Credential", NULL, "requires the", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Date", NULL, "requires the", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Expires", NULL, "requires the", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-SignedHeaders", NULL, "requires the", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Signature", NULL, "requires the", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Algorithm", "AWS4-HMAC-SHA1", "only supports", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Expires", "0", "at least 1", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Expires", "-1", "number", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Expires", "abc", "number", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Expires", "604801", "less than a week", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Expires", "99999999999999999999", "number", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Expires", "604800", NULL, GW_S3_SIGNATURE_DOES_NOT_MATCH},
        {"X-Amz-Date", "2013-05-24T00:00:00Z", "ISO8601", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Date", "20130525T000000Z", "Invalid credential date", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-west-2%2Fs3%2Faws4_request",
         "expecting 'us-east-1'", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3",
         "X-Amz-Credential parameter", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request%",
         NULL, GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request", NULL,
         GW_S3_OK},
        {"X-Amz-SignedHeaders", "range", "host", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Signature", "aeeed9bb", "64 hexadecimal", GW_S3_AUTH_QUERY_ERROR},
        {"X-Amz-Signature", "beeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
         NULL, GW_S3_SIGNATURE_DOES_NOT_MATCH},
        {"X-Amz-Security-Token", "", NULL, GW_S3_SIGNATURE_DOES_NOT_MATCH},
        {"other", "%zz", "malformed", GW_S3_INVALID_URI},
    };
    struct req r;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        presigned_with(&r, cases[i].name, cases[i].value);
        enum gw_s3_error rc = check(&r, AWS_SK, "us-east-1", AWS_TIME);
        bool msg_ok = !cases[i].msg || strstr(last.msg, cases[i].msg);
        ok(rc == cases[i].want && msg_ok, "presigned, %s=%s: %d (%s)", cases[i].name,
           cases[i].value ? cases[i].value : "(none)", rc, rc ? last.msg : "ok");
    }
    presigned_with(&r, "X-Amz-Date", "20130524T000000Z&X-Amz-Date=20130524T000000Z");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_AUTH_QUERY_ERROR,
           "presigned, X-Amz-Date twice");
    aws_presigned(&r, PRESIGNED_QUERY);
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME + 86400), GW_S3_OK, "at its last valid second");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME + 86401), GW_S3_ACCESS_DENIED, "expired");
    is_str(last.msg, "Request has expired", "message 'Request has expired'");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME - 900), GW_S3_OK, "dated 900 s in the future");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME - 901), GW_S3_ACCESS_DENIED,
           "dated 901 s in the future");
    is_str(last.msg, "Request is not valid yet", "message 'Request is not valid yet'");
    req_add(&r, "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    is_int(check(&r, AWS_SK, "us-east-1", AWS_TIME), GW_S3_INVALID_REQUEST,
           "presigned with signed chunks is refused");
}

static void test_helpers(void)
{
    static const struct {
        int64_t t;
        const char *s;
    } times[] = {
        {0, "19700101T000000Z"},          {951782400, "20000229T000000Z"},
        {1709210096, "20240229T123456Z"}, {1369353600, "20130524T000000Z"},
        {4107542400, "21000301T000000Z"}, {253402300799, "99991231T235959Z"},
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char out[17];
        gw_sigv4_format_time(times[i].t, out);
        is_str(out, times[i].s, "format %lld", (long long)times[i].t);
    }
    is_str(gw_sigv4_payload_name(GW_SIGV4_PAYLOAD_STREAMING_TRAILER),
           "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "payload names");

    /* The canonicaliser's limits. */
    static char target[GW_SIGV4_QUERY_MAX + 64];
    struct gw_header host = {GW_STR("host"), GW_STR("h")};
    struct gw_request_head h = {.method = GW_STR("GET"), .path = GW_STR("/"), .headers = &host,
                                .n_headers = 1};
    struct gw_sigv4_auth a = {.kind = GW_SIGV4_HEADER, .signed_headers = "host",
                              .payload_hash = EMPTY_SHA, .timestamp = "20240229T123456Z",
                              .date = "20240229", .region = "r", .service = "s3"};
    uint8_t key[32] = {0}, sig[32];
    size_t n = 0;
    for (int i = 0; i <= GW_SIGV4_QUERY_PARAMS_MAX; i++)
        n += (size_t)sprintf(target + n, "%sp%d", i ? "&" : "", i);
    h.query = (struct gw_str){target, n};
    is_int(gw_sigv4_compute(&h, &a, key, sig, NULL), GW_S3_INVALID_URI,
           "%d parameters are too many", GW_SIGV4_QUERY_PARAMS_MAX + 1);
    h.query.n = (size_t)(strrchr(target, '&') - target);
    is_int(gw_sigv4_compute(&h, &a, key, sig, NULL), GW_S3_OK, "%d are not",
           GW_SIGV4_QUERY_PARAMS_MAX);
    memset(target, 'a', GW_SIGV4_QUERY_MAX + 1);
    h.query = (struct gw_str){target, GW_SIGV4_QUERY_MAX + 1};
    is_int(gw_sigv4_compute(&h, &a, key, sig, NULL), GW_S3_INVALID_URI, "a query over 64 KiB");
    h.query = GW_STR("a=%4");
    is_int(gw_sigv4_compute(&h, &a, key, sig, NULL), GW_S3_INVALID_URI, "a truncated %%-escape");
}

int main(void)
{
    test_published();
    test_botocore();
    test_mutations();
    test_parse_errors();
    test_presigned();
    test_helpers();
    return tap_done();
}
