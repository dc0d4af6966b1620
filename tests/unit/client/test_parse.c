/* liblode's response parsers (client/parse.h): numbers, Content-Range, x-amz-rdma-reply,
 * x-lode-sources, host:port, the session document and S3 error documents. Expected values
 * are written out by hand from the inputs (each input is small enough to read off), and
 * the hex byte strings were produced with Python's bytes.fromhex on the same text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/parse.h"
#include "tests/tap.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_u64(void)
{
    uint64_t v = 7;
    is_int(lc_parse_u64(S("0"), &v), 0, "u64: 0");
    is_int(v, 0, "u64: value 0");
    is_int(lc_parse_u64(S("18446744073709551615"), &v), 0, "u64: 2^64-1");
    ok(v == UINT64_MAX, "u64: value 2^64-1");
    is_int(lc_parse_u64(S("18446744073709551616"), &v), -EINVAL, "u64: 2^64 overflows");
    is_int(lc_parse_u64(S("99999999999999999999"), &v), -EINVAL, "u64: 20 nines overflow");
    is_int(lc_parse_u64(S("000000000000000000001"), &v), -EINVAL, "u64: 21 digits refused");
    is_int(lc_parse_u64(S(""), &v), -EINVAL, "u64: empty");
    is_int(lc_parse_u64(S("+1"), &v), -EINVAL, "u64: sign");
    is_int(lc_parse_u64(S(" 1"), &v), -EINVAL, "u64: space");
    is_int(lc_parse_u64(S("1a"), &v), -EINVAL, "u64: trailing letter");
}

static void test_content_range(void)
{
    uint64_t a, b, t;
    is_int(lc_parse_content_range(S("bytes 0-99/1000"), &a, &b, &t), 0, "cr: plain");
    ok(a == 0 && b == 99 && t == 1000, "cr: 0-99/1000");
    is_int(lc_parse_content_range(S("bytes 5-5/*"), &a, &b, &t), 0, "cr: unknown total");
    ok(a == 5 && b == 5 && t == UINT64_MAX, "cr: 5-5/*");
    is_int(lc_parse_content_range(S("bytes */1234"), &a, &b, &t), 0, "cr: 416 form");
    ok(a == UINT64_MAX && b == UINT64_MAX && t == 1234, "cr: */1234");
    is_int(lc_parse_content_range(S("bytes 10-9/100"), &a, &b, &t), -EINVAL, "cr: last < first");
    is_int(lc_parse_content_range(S("bytes 0-100/100"), &a, &b, &t), -EINVAL, "cr: last >= total");
    is_int(lc_parse_content_range(S("bytes */*"), &a, &b, &t), -EINVAL, "cr: */*");
    is_int(lc_parse_content_range(S("bits 0-1/2"), &a, &b, &t), -EINVAL, "cr: unit");
    is_int(lc_parse_content_range(S("bytes 0-1"), &a, &b, &t), -EINVAL, "cr: no total");
    is_int(lc_parse_content_range(S("bytes -1/2"), &a, &b, &t), -EINVAL, "cr: no first");
    is_int(lc_parse_content_range(S("bytes 0-/2"), &a, &b, &t), -EINVAL, "cr: no last");
    is_int(lc_parse_content_range(S("bytes  0-1/2"), &a, &b, &t), -EINVAL, "cr: two spaces");
}

static void test_reply(void)
{
    is_int(lc_parse_rdma_reply(S("200")), 200, "reply 200");
    is_int(lc_parse_rdma_reply(S("206")), 206, "reply 206");
    is_int(lc_parse_rdma_reply(S("501")), 501, "reply 501");
    is_int(lc_parse_rdma_reply(S("ok")), -EINVAL, "reply: legacy ok refused");
    is_int(lc_parse_rdma_reply(S("2000")), -EINVAL, "reply: 4 digits");
    is_int(lc_parse_rdma_reply(S("099")), -EINVAL, "reply: below 100");
    is_int(lc_parse_rdma_reply(S("200:abcd")), -EINVAL, "reply: hipObject form refused");
}

static void test_sources(void)
{
    struct lc_src_bytes s[4];
    size_t n = 99;
    is_int(lc_parse_sources(S(""), s, 4, &n), 0, "sources: empty");
    is_int(n, 0, "sources: empty list");
    is_int(lc_parse_sources(S("1=100,2147483649=0, 7=18446744073709551615"), s, 4, &n), 0,
           "sources: three");
    is_int(n, 3, "sources: count");
    ok(s[0].id == 1 && s[0].bytes == 100, "sources: first");
    ok(s[1].id == 2147483649u && s[1].bytes == 0, "sources: gateway worker id 0x80000001");
    ok(s[2].id == 7 && s[2].bytes == UINT64_MAX, "sources: third, with a space");
    is_int(lc_parse_sources(S("1=1,1=2"), s, 4, &n), -EINVAL, "sources: duplicate id");
    is_int(lc_parse_sources(S("1=1,2=2,3=3,4=4,5=5"), s, 4, &n), -EINVAL, "sources: over cap");
    is_int(lc_parse_sources(S("4294967296=1"), s, 4, &n), -EINVAL, "sources: id over 32 bits");
    is_int(lc_parse_sources(S("1=1,"), s, 4, &n), -EINVAL, "sources: trailing comma");
    is_int(lc_parse_sources(S("1=,2=2"), s, 4, &n), -EINVAL, "sources: missing bytes");
    is_int(lc_parse_sources(S("=5"), s, 4, &n), -EINVAL, "sources: missing id");
    is_int(lc_parse_sources(S("1:5"), s, 4, &n), -EINVAL, "sources: wrong separator");
}

static void test_hostport(void)
{
    char h[32];
    uint16_t p;
    is_int(lc_split_hostport(S("127.0.0.1:9000"), h, sizeof(h), &p), 0, "hp: v4");
    ok(strcmp(h, "127.0.0.1") == 0 && p == 9000, "hp: v4 parts");
    is_int(lc_split_hostport(S("[::1]:80"), h, sizeof(h), &p), 0, "hp: v6");
    ok(strcmp(h, "::1") == 0 && p == 80, "hp: v6 parts");
    is_int(lc_split_hostport(S("node-3.example:65535"), h, sizeof(h), &p), 0, "hp: name");
    is_int(p, 65535, "hp: port 65535");
    is_int(lc_split_hostport(S("::1:80"), h, sizeof(h), &p), -EINVAL, "hp: bare v6");
    is_int(lc_split_hostport(S("h:0"), h, sizeof(h), &p), -EINVAL, "hp: port 0");
    is_int(lc_split_hostport(S("h:65536"), h, sizeof(h), &p), -EINVAL, "hp: port 65536");
    is_int(lc_split_hostport(S("h"), h, sizeof(h), &p), -EINVAL, "hp: no port");
    is_int(lc_split_hostport(S(":80"), h, sizeof(h), &p), -EINVAL, "hp: no host");
    is_int(lc_split_hostport(S("a b:80"), h, sizeof(h), &p), -EINVAL, "hp: space in host");
    is_int(lc_split_hostport(S("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1"), h, sizeof(h), &p),
           -EINVAL, "hp: host longer than the buffer");
}

static const char doc_ok[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<LodeSession xmlns=\"http://lode.invalid/\">\n"
    "  <Sid>00112233445566778899AABBCCDDEEFF</Sid>\n"
    "  <Expires>1700000000123</Expires>\n"
    "  <!-- a comment -->\n"
    "  <Mac>" "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" "</Mac>\n"
    "  <AccessKey>AK&amp;1</AccessKey>\n"
    "  <Future><Nested>skipped</Nested></Future>\n"
    "  <Source><Id>3</Id><Tcp>10.0.0.3:7400</Tcp></Source>\n"
    "  <Source><Id>2147483648</Id><Tcp>[::1]:7401</Tcp><Rc>10.0.0.9:7500</Rc></Source>\n"
    "  <Source><Id>9</Id><Rc>rdma-host:7501</Rc></Source>\n"
    "</LodeSession>\n";

static int parse(const char *doc, struct lc_session *s, struct cmn_err *e)
{
    cmn_err_clear(e);
    return lc_session_parse(doc, strlen(doc), s, e);
}

static void test_session(void)
{
    struct lc_session s;
    struct cmn_err e;
    is_int(parse(doc_ok, &s, &e), 0, "session: valid document");
    /* bytes.fromhex("00112233445566778899AABBCCDDEEFF") */
    static const uint8_t sid[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    ok(memcmp(s.sid, sid, 16) == 0, "session: sid (upper-case hex accepted)");
    ok(s.expires_ms == 1700000000123ull, "session: expires");
    bool mac_ok = true;
    for (int i = 0; i < 32; i++)
        mac_ok = mac_ok && s.mac[i] == i;
    ok(mac_ok, "session: mac bytes 00..1f");
    is_str(s.access_key, "AK&1", "session: access key, entity decoded");
    is_int(s.n_src, 3, "session: three sources");
    if (s.n_src == 3) {
        ok(s.src[0].id == 3 && s.src[0].has_tcp && !s.src[0].has_rc &&
               strcmp(s.src[0].tcp_host, "10.0.0.3") == 0 && s.src[0].tcp_port == 7400,
           "session: source 3");
        ok(s.src[1].id == 0x80000000u && s.src[1].has_tcp && s.src[1].has_rc &&
               strcmp(s.src[1].tcp_host, "::1") == 0 && s.src[1].tcp_port == 7401 &&
               strcmp(s.src[1].rc_host, "10.0.0.9") == 0 && s.src[1].rc_port == 7500,
           "session: gateway source with tcp and rc");
        ok(s.src[2].id == 9 && !s.src[2].has_tcp && s.src[2].has_rc, "session: rc-only source");
    }
    lc_session_free(&s);

    static const struct {
        const char *doc, *why;
    } bad[] = {
        {"", "empty"},
        {"<LodeSession>", "truncated"},
        {"<Other/>", "wrong root"},
        {"<!DOCTYPE x [<!ENTITY a \"b\">]><LodeSession/>", "DOCTYPE"},
        {"<?pi x?><LodeSession/>", "processing instruction"},
        {"<LodeSession><Sid>0011</Sid></LodeSession>", "short sid"},
        {"<LodeSession><Sid>00112233445566778899aabbccddeeff</Sid><Expires>1</Expires>"
         "<Mac>000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f</Mac>"
         "<AccessKey>a</AccessKey></LodeSession>",
         "no source"},
        {"<LodeSession><Sid>00112233445566778899aabbccddeeff</Sid><Expires>1</Expires>"
         "<Mac>000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f</Mac>"
         "<AccessKey>a</AccessKey><Source><Id>1</Id><Tcp>h:1</Tcp></Source>"
         "<Source><Id>1</Id><Tcp>h:2</Tcp></Source></LodeSession>",
         "duplicate source id"},
        {"<LodeSession><Sid>00112233445566778899aabbccddeeff</Sid><Expires>1</Expires>"
         "<Mac>000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f</Mac>"
         "<AccessKey>a</AccessKey><Source><Id>1</Id></Source></LodeSession>",
         "source without an endpoint"},
        {"<LodeSession><Sid>00112233445566778899aabbccddeeff</Sid><Expires>1</Expires>"
         "<Mac>000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f</Mac>"
         "<AccessKey>a</AccessKey><Source><Id>1</Id><Tcp>h:1</Tcp></Source></LodeSession>x",
         "text after the root"},
        {"<LodeSession><Sid>00112233445566778899aabbccddeeff</Sid><Sid>00112233445566778899aabbc"
         "cddeeff</Sid></LodeSession>",
         "sid twice"},
        {"<LodeSession><Expires>12a</Expires></LodeSession>", "bad number"},
        {"<LodeSession><AccessKey>a&bogus;</AccessKey></LodeSession>", "unknown entity"},
        {"<LodeSession><AccessKey>a&#0;</AccessKey></LodeSession>", "NUL reference"},
        {"<LodeSession><a><b><c><d><e><f><g><h><i/></h></g></f></e></d></c></b></a></LodeSession>",
         "nested too deep"},
        {"<LodeSession><Sid>x</Bid></LodeSession>", "mismatched end tag"},
        {"<LodeSession><Source><Id>1</Id><Tcp>h</Tcp></Source></LodeSession>", "tcp without port"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i].doc, &s, &e);
        ok(rc == LODE_EBADMSG && e.msg[0] && s.src == NULL && s.n_src == 0,
           "session refused: %s (%s)", bad[i].why, e.msg);
    }

    /* The source limit: LC_SESSION_MAX_SOURCES + 1 sources are refused, that many accepted. */
    for (int extra = 0; extra < 2; extra++) {
        size_t n_src = LC_SESSION_MAX_SOURCES + (size_t)extra;
        size_t cap = 512 + n_src * 64;
        char *big = malloc(cap);
        size_t o = (size_t)snprintf(big, cap,
                                    "<LodeSession><Sid>00112233445566778899aabbccddeeff</Sid>"
                                    "<Expires>1</Expires><Mac>000102030405060708090a0b0c0d0e0f1011"
                                    "12131415161718191a1b1c1d1e1f</Mac><AccessKey>a</AccessKey>");
        for (size_t i = 0; i < n_src; i++)
            o += (size_t)snprintf(big + o, cap - o, "<Source><Id>%zu</Id><Tcp>h:1</Tcp></Source>",
                                  i + 1);
        snprintf(big + o, cap - o, "</LodeSession>");
        int rc = parse(big, &s, &e);
        if (extra == 0) {
            ok(rc == 0 && s.n_src == LC_SESSION_MAX_SOURCES, "session: %d sources accepted",
               LC_SESSION_MAX_SOURCES);
        } else {
            ok(rc == LODE_EBADMSG, "session: %d sources refused", LC_SESSION_MAX_SOURCES + 1);
        }
        lc_session_free(&s);
        free(big);
    }
}

static void test_error_doc(void)
{
    char code[32], msg[64];
    static const char doc[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey"
                              "</Code><Message>The specified key does not exist.</Message>"
                              "<Key>a&lt;b</Key><RequestId>1</RequestId></Error>";
    is_int(lc_s3_error_parse(S(doc), code, sizeof(code), msg, sizeof(msg)), 0, "errdoc: parsed");
    is_str(code, "NoSuchKey", "errdoc: code");
    is_str(msg, "The specified key does not exist.", "errdoc: message");
    static const char longmsg[] = "<Error><Code>X</Code><Message>0123456789012345678901234567890"
                                  "123456789012345678901234567890123456789</Message></Error>";
    is_int(lc_s3_error_parse(S(longmsg), code, sizeof(code), msg, 8), 0, "errdoc: long message");
    is_str(msg, "0123456", "errdoc: message truncated to the buffer");
    static const char ctl[] = "<Error><Message>a&#1;b</Message></Error>";
    is_int(lc_s3_error_parse(S(ctl), code, sizeof(code), msg, sizeof(msg)), 0, "errdoc: control");
    is_str(msg, "a?b", "errdoc: control characters replaced");
    is_str(code, "", "errdoc: missing code is empty");
    is_int(lc_s3_error_parse(S("not xml"), code, sizeof(code), msg, sizeof(msg)), LODE_EBADMSG,
           "errdoc: not a document");
    is_int(lc_s3_error_parse(S("<Other/>"), code, sizeof(code), msg, sizeof(msg)), LODE_EBADMSG,
           "errdoc: other root");
}

static void test_result_field(void)
{
    static const char R[] = "InitiateMultipartUploadResult";
    char id[16];
    static const char doc[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                              "<InitiateMultipartUploadResult xmlns=\"http://s3\"><Bucket>b"
                              "</Bucket><Key>k</Key><UploadId>ab&amp;c+/=</UploadId>"
                              "</InitiateMultipartUploadResult>\n";
    is_int(lc_s3_result_field(S(doc), R, "UploadId", id, sizeof(id)), 0, "result: parsed");
    is_str(id, "ab&c+/=", "result: the field's text, entities decoded");
    static const char etag[] = "<CompleteMultipartUploadResult><ETag>&quot;x-2&quot;</ETag>"
                               "</CompleteMultipartUploadResult>";
    is_int(lc_s3_result_field(S(etag), "CompleteMultipartUploadResult", "ETag", id, sizeof(id)),
           0, "result: an ETag");
    is_str(id, "\"x-2\"", "result: quotes kept");
    static const struct {
        const char *doc, *why;
    } bad[] = {
        {"<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>",
         "field missing"},
        {"<InitiateMultipartUploadResult><UploadId>a</UploadId><UploadId>b</UploadId>"
         "</InitiateMultipartUploadResult>", "field twice"},
        {"<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>",
         "field empty"},
        {"<InitiateMultipartUploadResult><UploadId>0123456789abcdef</UploadId>"
         "</InitiateMultipartUploadResult>", "field longer than the buffer (never truncated)"},
        {"<InitiateMultipartUploadResult><UploadId>a&#10;b</UploadId>"
         "</InitiateMultipartUploadResult>", "a control character"},
        {"<InitiateMultipartUploadResult><UploadId><X/></UploadId>"
         "</InitiateMultipartUploadResult>", "field with children"},
        {"<Error><UploadId>a</UploadId></Error>", "another root"},
        {"<InitiateMultipartUploadResult><UploadId>a</UploadId>", "truncated"},
        {"<InitiateMultipartUploadResult><UploadId>a</UploadId></InitiateMultipartUploadResult>"
         "<X/>", "content after the root"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(id, "junk");
        int rc = lc_s3_result_field(bad[i].doc, strlen(bad[i].doc), R, "UploadId", id,
                                    sizeof(id));
        ok(rc == LODE_EBADMSG && id[0] == '\0', "result refused: %s", bad[i].why);
    }
}

int main(void)
{
    test_u64();
    test_content_range();
    test_reply();
    test_sources();
    test_hostport();
    test_session();
    test_error_doc();
    test_result_field();
    return tap_done();
}
