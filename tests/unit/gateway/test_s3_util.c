/* S3 protocol helpers (gateway/s3_util.c, gateway/s3_cond.c): UTF-8, percent-encoding,
 * base64/hex, HTTP and ISO 8601 dates, query strings, Range, conditional requests, ETag lists,
 * user metadata and response overrides. Expected values come from RFCs, S3's documented
 * rules, or Python's standard library as noted beside each table. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "gateway/s3_util.h"
#include "tests/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct gw_str S(const char *s)
{
    return (struct gw_str){s, strlen(s)};
}

static void test_utf8(void)
{
    static const struct {
        const char *s;
        size_t n;
        bool valid;
        const char *why;
    } v[] = {
        {"", 0, true, "empty"},
        {"plain ascii", 11, true, "ASCII"},
        {"\xc3\xa9", 2, true, "U+00E9"},
        {"\xe6\x97\xa5", 3, true, "U+65E5"},
        {"\xf0\x9f\x98\x80", 4, true, "U+1F600"},
        {"\xf4\x8f\xbf\xbf", 4, true, "U+10FFFF, the last code point"},
        {"\xc0\xaf", 2, false, "overlong '/' (C0 AF)"},
        {"\xe0\x80\xaf", 3, false, "overlong '/' (E0 80 AF)"},
        {"\xed\xa0\x80", 3, false, "surrogate U+D800"},
        {"\xf4\x90\x80\x80", 4, false, "U+110000, past the last code point"},
        {"\xc3", 1, false, "truncated sequence"},
        {"\x80", 1, false, "lone continuation byte"},
        {"\xff", 1, false, "0xFF"},
        {"a\xc3(", 3, false, "bad continuation"},
    };
    for (size_t i = 0; i < N(v); i++)
        ok(gw_utf8_valid(v[i].s, v[i].n) == v[i].valid, "utf8: %s is %s", v[i].why,
           v[i].valid ? "valid" : "invalid");
    ok(gw_xml_char_ok(0x9) && gw_xml_char_ok(0xa) && gw_xml_char_ok(0xd) && !gw_xml_char_ok(0),
       "XML chars: tab LF CR yes, NUL no");
    ok(!gw_xml_char_ok(0x1f) && gw_xml_char_ok(0x20) && !gw_xml_char_ok(0xfffe) &&
           !gw_xml_char_ok(0xffff) && gw_xml_char_ok(0xfffd) && gw_xml_char_ok(0x10000),
       "XML chars: the XML 1.0 Char production");
}

static void test_pct(void)
{
    char out[64];
    ssize_t n = gw_pct_decode("a%20b%2Fc+d%2b", 14, out, false);
    ok(n == 8 && memcmp(out, "a b/c+d+", 8) == 0,
       "path decoding: %%20 is a space, '+' stays a plus, %%2F a slash");
    n = gw_pct_decode("a+b%2B", 6, out, true);
    ok(n == 4 && memcmp(out, "a b+", 4) == 0, "query decoding: '+' is a space, %%2B a plus");
    n = gw_pct_decode("%00x", 4, out, false);
    ok(n == 2 && out[0] == '\0' && out[1] == 'x', "%%00 decodes to NUL (the caller refuses it)");
    ok(gw_pct_decode("abc%", 4, out, false) == -1, "a trailing '%%' is malformed");
    ok(gw_pct_decode("%4", 2, out, false) == -1, "'%%' with one digit is malformed");
    ok(gw_pct_decode("%G0", 3, out, false) == -1, "'%%' with a non-hex digit is malformed");
    ok(gw_pct_decode("%c3%A9", 6, out, false) == 2 && memcmp(out, "\xc3\xa9", 2) == 0,
       "hex digits in either case");

    /* Expected: Python's urllib.parse.quote(s, safe='/') and quote(s, safe=''). */
    static const struct {
        const char *in, *slash, *noslash;
    } q[] = {
        {"a b/c+d", "a%20b/c%2Bd", "a%20b%2Fc%2Bd"},
        {"photos/2024/\xc3\xa9.jpg", "photos/2024/%C3%A9.jpg", "photos%2F2024%2F%C3%A9.jpg"},
        {"~_-.!*()'", "~_-.%21%2A%28%29%27", "~_-.%21%2A%28%29%27"},
        {"x\x01y&z=%", "x%01y%26z%3D%25", "x%01y%26z%3D%25"},
        {"\xe6\x97\xa5\xe6\x9c\xac/\xe8\xaa\x9e", "%E6%97%A5%E6%9C%AC/%E8%AA%9E",
         "%E6%97%A5%E6%9C%AC%2F%E8%AA%9E"},
    };
    char enc[128];
    for (size_t i = 0; i < N(q); i++) {
        size_t l = gw_url_encode(q[i].in, strlen(q[i].in), enc, true);
        enc[l] = '\0';
        is_str(enc, q[i].slash, "url encode keeping '/' #%zu", i);
        l = gw_url_encode(q[i].in, strlen(q[i].in), enc, false);
        enc[l] = '\0';
        is_str(enc, q[i].noslash, "url encode everything #%zu", i);
        char dec[64];
        ssize_t dl = gw_pct_decode(enc, l, dec, false);
        ok(dl == (ssize_t)strlen(q[i].in) && memcmp(dec, q[i].in, (size_t)dl) == 0,
           "decode(encode(x)) == x #%zu", i);
    }
}

static void test_base64_hex(void)
{
    /* RFC 4648 section 10 test vectors. */
    static const struct {
        const char *plain, *b64;
    } v[] = {{"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},       {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    char enc[32];
    unsigned char dec[32];
    size_t dl;
    for (size_t i = 0; i < N(v); i++) {
        size_t l = gw_base64_encode(v[i].plain, strlen(v[i].plain), enc);
        ok(l == strlen(v[i].b64) && strcmp(enc, v[i].b64) == 0, "base64(\"%s\") = \"%s\"",
           v[i].plain, enc);
        int rc = gw_base64_decode(v[i].b64, strlen(v[i].b64), dec, sizeof(dec), &dl);
        ok(rc == 0 && dl == strlen(v[i].plain) && memcmp(dec, v[i].plain, dl) == 0,
           "decode \"%s\"", v[i].b64);
    }
    static const char *const bad[] = {
        "Zg=",      /* not a multiple of 4 */
        "Zg",       /* unpadded */
        "Zh==",     /* non-zero unused bits: RFC 4648 3.5 canonical encoding */
        "Zm9=",     /* idem with one '=' */
        "Z===",     /* three '=' */
        "=Zg=",     /* '=' before data */
        "Zg==Zg==", /* padding in the middle */
        "Zm9v\n",   /* whitespace */
        "Zm-v",     /* URL-safe alphabet */
    };
    for (size_t i = 0; i < N(bad); i++)
        ok(gw_base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec), &dl) == -EINVAL,
           "strict base64 refuses #%zu", i);
    ok(gw_base64_decode("Zm9vYmFy", 8, dec, 5, &dl) == -ENOSPC, "base64: too small a buffer");
    /* The 4-byte CRC32 of "hello world" in base64 (Python: base64.b64encode(
     * zlib.crc32(b'hello world').to_bytes(4, 'big')) == b'DUoRhQ=='). */
    ok(gw_base64_decode("DUoRhQ==", 8, dec, sizeof(dec), &dl) == 0 && dl == 4 &&
           dec[0] == 0x0d && dec[1] == 0x4a && dec[2] == 0x11 && dec[3] == 0x85,
       "base64 of a CRC32");

    char hex[16];
    gw_hex_encode("\x01\xab\xff", 3, hex);
    is_str(hex, "01abff", "hex encode, lower case");
    ok(gw_hex_decode("01ABff", 6, dec, sizeof(dec), &dl) == 0 && dl == 3 && dec[1] == 0xab,
       "hex decode, either case");
    ok(gw_hex_decode("abc", 3, dec, sizeof(dec), &dl) == -EINVAL, "hex: odd length");
    ok(gw_hex_decode("zz", 2, dec, sizeof(dec), &dl) == -EINVAL, "hex: not a digit");
    ok(gw_hex_decode("abcd", 4, dec, 1, &dl) == -ENOSPC, "hex: too small a buffer");
}

static void test_dates(void)
{
    /* Expected: Python's email.utils.formatdate(ms // 1000, usegmt=True) and
     * datetime.fromtimestamp(ms // 1000, timezone.utc).strftime('%Y-%m-%dT%H:%M:%S') plus
     * '.%03dZ' % (ms % 1000). */
    static const struct {
        int64_t ms;
        const char *http, *iso;
    } v[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00.000Z"},
        {1255369800000, "Mon, 12 Oct 2009 17:50:00 GMT", "2009-10-12T17:50:00.000Z"},
        {1255369830123, "Mon, 12 Oct 2009 17:50:30 GMT", "2009-10-12T17:50:30.123Z"},
        {951782400000, "Tue, 29 Feb 2000 00:00:00 GMT", "2000-02-29T00:00:00.000Z"},
        {951868799999, "Tue, 29 Feb 2000 23:59:59 GMT", "2000-02-29T23:59:59.999Z"},
        {4102444800000, "Fri, 01 Jan 2100 00:00:00 GMT", "2100-01-01T00:00:00.000Z"},
        {253402300799999, "Fri, 31 Dec 9999 23:59:59 GMT", "9999-12-31T23:59:59.999Z"},
        {1709164800000, "Thu, 29 Feb 2024 00:00:00 GMT", "2024-02-29T00:00:00.000Z"},
        {784111777000, "Sun, 06 Nov 1994 08:49:37 GMT", "1994-11-06T08:49:37.000Z"},
        {68169600000, "Tue, 29 Feb 1972 00:00:00 GMT", "1972-02-29T00:00:00.000Z"},
    };
    char b[64];
    int64_t ms;
    for (size_t i = 0; i < N(v); i++) {
        ok(gw_http_date_format(v[i].ms, b) == 0 && strcmp(b, v[i].http) == 0,
           "http date of %" PRId64 ": %s", v[i].ms, b);
        ok(gw_iso8601_format(v[i].ms, b) == 0 && strcmp(b, v[i].iso) == 0,
           "iso 8601 of %" PRId64 ": %s", v[i].ms, b);
        ok(gw_http_date_parse(v[i].http, strlen(v[i].http), &ms) == 0 &&
               ms == v[i].ms / 1000 * 1000,
           "http date parses back to the second");
        ok(gw_iso8601_parse(v[i].iso, strlen(v[i].iso), &ms) == 0 && ms == v[i].ms,
           "iso 8601 parses back to the millisecond");
    }
    ok(gw_http_date_format(-1, b) == -EINVAL && b[0] == '\0', "before 1970: refused");
    ok(gw_http_date_format(253402300800000, b) == -EINVAL, "year 10000: refused");
    ok(gw_iso8601_format(-1, b) == -EINVAL, "iso: before 1970 refused");

    /* The three forms of RFC 7231 7.1.1.1 (its own example, 784111777 s), checked with
     * Python's email.utils.parsedate_to_datetime. The S3 documentation's "Wed, 12 Oct 2009"
     * has the wrong day name (it was a Monday): day names are not checked. */
    static const struct {
        const char *s;
        int64_t ms;
    } p[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777000},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777000},
        {"Sun Nov  6 08:49:37 1994", 784111777000},
        {"Thu, 29 Feb 2024 23:59:59 GMT", 1709251199000},
        {"Fri, 31 Dec 9999 23:59:59 GMT", 253402300799000},
        {"Wed, 12 Oct 2009 17:50:00 GMT", 1255369800000},
        {"sun, 06 nov 1994 08:49:37 gmt", 784111777000},
        {"Tuesday, 01-Jan-30 00:00:00 GMT", 1893456000000}, /* two-digit 30: 2030 */
        {"Thu Feb 29 12:00:00 2024", 1709208000000},
    };
    for (size_t i = 0; i < N(p); i++)
        ok(gw_http_date_parse(p[i].s, strlen(p[i].s), &ms) == 0 && ms == p[i].ms,
           "parse \"%s\"", p[i].s);
    static const char *const badd[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37",      /* no zone */
        "Sun, 06 Nov 1994 08:49:37 UTC",  /* not GMT */
        "Sun, 6 Nov 1994 08:49:37 GMT",   /* one-digit day in IMF-fixdate */
        "Sun, 30 Feb 1994 08:49:37 GMT",  /* no such day */
        "Sun, 29 Feb 1900 08:49:37 GMT",  /* 1900 is not a leap year (and before 1970) */
        "Sun, 29 Feb 2023 00:00:00 GMT",  /* 2023 is not a leap year */
        "Sun, 06 Nov 1994 24:00:00 GMT",  /* hour 24 */
        "Sun, 06 Nov 1994 08:60:00 GMT",  /* minute 60 */
        "Sun, 06 Nov 1994 08:49:60 GMT",  /* leap second */
        "Sun, 06 Foo 1994 08:49:37 GMT",  /* month */
        "Xyz, 06 Nov 1994 08:49:37 GMT",  /* day name */
        "Sun, 06 Nov 1994 08:49:37 GMT ", /* trailing byte */
        "Sun Nov 6 08:49:37 1994",        /* asctime day not padded */
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "1994-11-06T08:49:37Z",
    };
    for (size_t i = 0; i < N(badd); i++)
        ok(gw_http_date_parse(badd[i], strlen(badd[i]), &ms) == -EINVAL, "refuse \"%s\"",
           badd[i]);
    ok(gw_iso8601_parse("2024-02-29T12:00:00Z", 20, &ms) == 0 && ms == 1709208000000,
       "iso without fraction");
    ok(gw_iso8601_parse("2024-02-29T12:00:00.5Z", 22, &ms) == 0 && ms == 1709208000500,
       "iso with one fraction digit");
    ok(gw_iso8601_parse("2024-02-29T12:00:00.123456789Z", 30, &ms) == 0 && ms == 1709208000123,
       "iso with nanoseconds, kept to the millisecond");
    ok(gw_iso8601_parse("2024-02-29T12:00:00.Z", 21, &ms) == -EINVAL, "iso: empty fraction");
    ok(gw_iso8601_parse("2024-02-29 12:00:00Z", 20, &ms) == -EINVAL, "iso: space for T");
    ok(gw_iso8601_parse("2024-02-29T12:00:00", 19, &ms) == -EINVAL, "iso: no Z");
}

static void test_query(void)
{
    struct gw_query q;
    struct gw_s3_err e;
    ok(gw_query_parse(S("list-type=2&prefix=a%2Fb+c&delimiter=%2F&uploads&empty=&&"), &q, &e) ==
           GW_S3_OK,
       "a typical query parses");
    ok(q.n == 5, "five parameters (empty members skipped)");
    const struct gw_query_param *p = gw_query_find(&q, "prefix");
    /* '+' stays a plus, as gateway/sigv4.c canonicalises it: what a signature covers is what
     * the request means (the SDKs send a space as %20). */
    ok(p && p->has_value && gw_str_eq(p->value, "a/b+c"), "prefix decoded, '+' is a plus");
    p = gw_query_find(&q, "uploads");
    ok(p && !p->has_value && p->value.n == 0, "a parameter without '='");
    p = gw_query_find(&q, "empty");
    ok(p && p->has_value && p->value.n == 0, "a parameter with an empty value");
    ok(gw_query_find(&q, "Prefix") == NULL, "names are case-sensitive");
    ok(gw_query_find(&q, "list-type") && gw_query_find(&q, "delimiter"), "the others");
    gw_query_free(&q);

    ok(gw_query_parse(S(""), &q, &e) == GW_S3_OK && q.n == 0, "empty query");
    gw_query_free(&q);
    ok(gw_query_parse(S("a=%zz"), &q, &e) == GW_S3_INVALID_URI && q.n == 0,
       "bad escape: InvalidURI");
    ok(gw_query_parse(S("=x"), &q, &e) == GW_S3_INVALID_URI, "empty name: InvalidURI");
    ok(gw_query_parse(S("a%01=x"), &q, &e) == GW_S3_INVALID_URI, "control char in a name");
    ok(gw_query_parse(S("prefix=a&prefix=b"), &q, &e) == GW_S3_INVALID_ARGUMENT &&
           strstr(e.msg, "prefix") != NULL,
       "a repeated parameter is refused, naming it");
    char many[GW_QUERY_MAX_PARAMS * 8];
    size_t l = 0;
    for (int i = 0; i <= GW_QUERY_MAX_PARAMS; i++)
        l += (size_t)snprintf(many + l, sizeof(many) - l, "p%d&", i);
    ok(gw_query_parse((struct gw_str){many, l}, &q, &e) == GW_S3_INVALID_URI,
       "more than %d parameters", GW_QUERY_MAX_PARAMS);
    p = NULL;
    ok(gw_query_parse(S("v=%00x"), &q, &e) == GW_S3_OK && (p = gw_query_find(&q, "v")) &&
           p->value.n == 2 && p->value.p[0] == '\0',
       "a NUL in a value is kept with its length (callers validate)");
    gw_query_free(&q);
}

static void test_range(void)
{
    /* RFC 7233 2.1 examples on a 10000-byte representation, then edge cases. S3 serves a
     * single range; it ignores an invalid header (and several ranges) and answers 416
     * InvalidRange when nothing of the object is selected. */
    static const struct {
        const char *h;
        uint64_t size;
        int want; /* 0 ignored, 1 active, 2 InvalidRange */
        uint64_t first, last;
    } v[] = {
        {"bytes=0-499", 10000, 1, 0, 499},
        {"bytes=500-999", 10000, 1, 500, 999},
        {"bytes=-500", 10000, 1, 9500, 9999},
        {"bytes=9500-", 10000, 1, 9500, 9999},
        {"bytes=0-0", 10000, 1, 0, 0},
        {"bytes=-1", 10000, 1, 9999, 9999},
        {"bytes=0-", 10000, 1, 0, 9999},
        {"bytes=9999-", 10000, 1, 9999, 9999},
        {"bytes=0-99999", 10000, 1, 0, 9999},                 /* last clamped */
        {"bytes=-20000", 10000, 1, 0, 9999},                  /* suffix longer than object */
        {"bytes=0-18446744073709551615", 10, 1, 0, 9},        /* UINT64_MAX last */
        {"bytes=0-99999999999999999999999", 10, 1, 0, 9},     /* saturates */
        {"Bytes = 1 - 2", 10, 1, 1, 2},                        /* case and whitespace */
        {"bytes=10000-", 10000, 2, 0, 0},                     /* starts past the end */
        {"bytes=10000-10005", 10000, 2, 0, 0},
        {"bytes=99999999999999999999999-", 10, 2, 0, 0},
        {"bytes=-0", 10000, 2, 0, 0},                         /* empty suffix */
        {"bytes=0-0", 0, 2, 0, 0},                            /* empty object */
        {"bytes=-5", 0, 2, 0, 0},
        {"bytes=500-600,601-999", 10000, 0, 0, 0},            /* several ranges */
        {"bytes=0-1,-1", 10000, 0, 0, 0},
        {"bytes=5-3", 10000, 0, 0, 0},                        /* last < first: invalid */
        {"bytes=abc", 10000, 0, 0, 0},
        {"bytes=", 10000, 0, 0, 0},
        {"bytes=-", 10000, 0, 0, 0},
        {"bytes 0-1", 10000, 0, 0, 0},
        {"items=0-1", 10000, 0, 0, 0},
        {"bytes=0-1x", 10000, 0, 0, 0},
        {"bytes=+1-2", 10000, 0, 0, 0},
        {"", 10000, 0, 0, 0},
        {"bytes=,0-1,", 10000, 1, 0, 1},                      /* empty list elements */
    };
    struct gw_range r;
    struct gw_s3_err e;
    for (size_t i = 0; i < N(v); i++) {
        gw_s3_err_clear(&e);
        enum gw_s3_error rc = gw_range_parse(S(v[i].h), v[i].size, &r, &e);
        bool pass;
        if (v[i].want == 2)
            pass = rc == GW_S3_INVALID_RANGE && !r.active && e.n_extra == 2;
        else if (v[i].want == 1)
            pass = rc == GW_S3_OK && r.active && r.first == v[i].first && r.last == v[i].last;
        else
            pass = rc == GW_S3_OK && !r.active;
        ok(pass, "Range \"%s\" on %" PRIu64 " bytes: %s", v[i].h, v[i].size,
           v[i].want == 2 ? "416" : v[i].want ? "206" : "ignored");
    }
    gw_range_parse(S("bytes=20-"), 10, &r, &e);
    ok(strcmp(e.extra[0].name, "RangeRequested") == 0 && strcmp(e.extra[0].value, "bytes=20-") == 0 &&
           strcmp(e.extra[1].name, "ActualObjectSize") == 0 && strcmp(e.extra[1].value, "10") == 0,
       "InvalidRange carries RangeRequested and ActualObjectSize");

    char cr[64];
    struct gw_range a = {true, 0, 499};
    ok(gw_content_range_format(&a, 10000, cr, sizeof(cr)) > 0 &&
           strcmp(cr, "bytes 0-499/10000") == 0,
       "Content-Range of a range");
    ok(gw_content_range_format(NULL, 10000, cr, sizeof(cr)) > 0 && strcmp(cr, "bytes */10000") == 0,
       "Content-Range of a 416");
    ok(gw_content_range_format(&a, 10000, cr, 8) == -1, "Content-Range: too small a buffer");

    static const struct {
        const char *h;
        uint64_t size;
        enum gw_s3_error want;
        uint64_t first, last;
    } c[] = {
        {"bytes=0-9", 10, GW_S3_OK, 0, 9},
        {"bytes=3-3", 10, GW_S3_OK, 3, 3},
        {"bytes=0-10", 10, GW_S3_INVALID_ARGUMENT, 0, 0}, /* past the end */
        {"bytes=5-4", 10, GW_S3_INVALID_ARGUMENT, 0, 0},
        {"bytes=-5", 10, GW_S3_INVALID_ARGUMENT, 0, 0},   /* no suffix form */
        {"bytes=5-", 10, GW_S3_INVALID_ARGUMENT, 0, 0},
        {"bytes=0-1,2-3", 10, GW_S3_INVALID_ARGUMENT, 0, 0},
        {"bytes = 0-1", 10, GW_S3_INVALID_ARGUMENT, 0, 0},
        {"0-1", 10, GW_S3_INVALID_ARGUMENT, 0, 0},
    };
    for (size_t i = 0; i < N(c); i++) {
        enum gw_s3_error rc = gw_copy_range_parse(S(c[i].h), c[i].size, &r, &e);
        ok(rc == c[i].want &&
               (rc != GW_S3_OK || (r.active && r.first == c[i].first && r.last == c[i].last)),
           "x-amz-copy-source-range \"%s\"", c[i].h);
    }
}

static void test_etag_match(void)
{
    static const struct {
        const char *list, *etag;
        bool strong, want;
    } v[] = {
        {"\"abc\"", "abc", true, true},
        {"\"abc\"", "\"abc\"", true, true}, /* the ETag may come quoted */
        {"abc", "abc", true, true},         /* bare, as some clients send */
        {"\"abd\"", "abc", true, false},
        {"*", "abc", true, true},
        {" * ", "abc", false, true},
        {"\"x\", \"abc\"", "abc", true, true},
        {"\"x\",\"y\"", "abc", true, false},
        {"W/\"abc\"", "abc", true, false}, /* weak never matches strongly (If-Match) */
        {"W/\"abc\"", "abc", false, true}, /* but does weakly (If-None-Match) */
        {"\"abc", "abc", true, false},     /* unterminated */
        {"\"a,b\"", "a,b", true, true},    /* commas inside quotes */
        {",,\"abc\",", "abc", true, true},
        {"", "abc", true, false},
        {"\"\"", "", true, true},
        {"\"abc\" x", "abc", true, false}, /* garbage after a quoted tag */
        {"\"d41d8cd98f00b204e9800998ecf8427e-2\"", "d41d8cd98f00b204e9800998ecf8427e-2", true,
         true},
    };
    for (size_t i = 0; i < N(v); i++)
        ok(gw_etag_list_match(S(v[i].list), S(v[i].etag), v[i].strong) == v[i].want,
           "ETag list [%s] vs %s (%s): %s", v[i].list, v[i].etag, v[i].strong ? "strong" : "weak",
           v[i].want ? "match" : "no match");
}

/* Conditions on an object with ETag "abc", modified at 1255369830123 ms
 * (Mon, 12 Oct 2009 17:50:30.123 GMT). */
#define MTIME 1255369830123
#define AT "Mon, 12 Oct 2009 17:50:30 GMT"     /* Last-Modified as sent: equal */
#define BEFORE "Mon, 12 Oct 2009 17:50:29 GMT" /* one second earlier */
#define AFTER "Mon, 12 Oct 2009 17:50:31 GMT"

static void test_conditions(void)
{
    static const struct {
        const char *im, *inm, *ims, *ius; /* NULL: absent */
        enum gw_cond_mode mode;
        bool exists;
        enum gw_s3_error want;
        const char *cond; /* Condition extra for 412 */
    } v[] = {
        /* READ: RFC 7232 section 6 and the S3 GetObject documentation */
        {NULL, NULL, NULL, NULL, GW_COND_READ, true, GW_S3_OK, NULL},
        {"\"abc\"", NULL, NULL, NULL, GW_COND_READ, true, GW_S3_OK, NULL},
        {"\"xyz\"", NULL, NULL, NULL, GW_COND_READ, true, GW_S3_PRECONDITION_FAILED, "If-Match"},
        {"*", NULL, NULL, NULL, GW_COND_READ, true, GW_S3_OK, NULL},
        {NULL, "\"abc\"", NULL, NULL, GW_COND_READ, true, GW_S3_NOT_MODIFIED, NULL},
        {NULL, "\"xyz\"", NULL, NULL, GW_COND_READ, true, GW_S3_OK, NULL},
        {NULL, "*", NULL, NULL, GW_COND_READ, true, GW_S3_NOT_MODIFIED, NULL},
        {NULL, "W/\"abc\"", NULL, NULL, GW_COND_READ, true, GW_S3_NOT_MODIFIED, NULL},
        {NULL, NULL, AT, NULL, GW_COND_READ, true, GW_S3_NOT_MODIFIED, NULL},
        {NULL, NULL, AFTER, NULL, GW_COND_READ, true, GW_S3_NOT_MODIFIED, NULL},
        {NULL, NULL, BEFORE, NULL, GW_COND_READ, true, GW_S3_OK, NULL},
        {NULL, NULL, "yesterday", NULL, GW_COND_READ, true, GW_S3_OK, NULL}, /* ignored */
        {NULL, NULL, NULL, AT, GW_COND_READ, true, GW_S3_OK, NULL},
        {NULL, NULL, NULL, BEFORE, GW_COND_READ, true, GW_S3_PRECONDITION_FAILED,
         "If-Unmodified-Since"},
        {NULL, NULL, NULL, "garbage", GW_COND_READ, true, GW_S3_OK, NULL},
        /* If-Match true + If-Unmodified-Since false: 200 (S3 documented) */
        {"\"abc\"", NULL, NULL, BEFORE, GW_COND_READ, true, GW_S3_OK, NULL},
        /* If-None-Match false + If-Modified-Since true: 304 (S3 documented) */
        {NULL, "\"abc\"", BEFORE, NULL, GW_COND_READ, true, GW_S3_NOT_MODIFIED, NULL},
        /* If-None-Match true wins over If-Modified-Since false */
        {NULL, "\"xyz\"", AFTER, NULL, GW_COND_READ, true, GW_S3_OK, NULL},
        /* If-Match is evaluated before If-None-Match: 412 first */
        {"\"xyz\"", "\"abc\"", NULL, NULL, GW_COND_READ, true, GW_S3_PRECONDITION_FAILED,
         "If-Match"},
        {NULL, NULL, NULL, NULL, GW_COND_READ, false, GW_S3_NO_SUCH_KEY, NULL},
        /* COPY_SOURCE: the same order, every failure 412 */
        {"\"abc\"", NULL, NULL, BEFORE, GW_COND_COPY_SOURCE, true, GW_S3_OK, NULL},
        {NULL, "\"abc\"", BEFORE, NULL, GW_COND_COPY_SOURCE, true, GW_S3_PRECONDITION_FAILED,
         "x-amz-copy-source-If-None-Match"},
        {NULL, NULL, AT, NULL, GW_COND_COPY_SOURCE, true, GW_S3_PRECONDITION_FAILED,
         "x-amz-copy-source-If-Modified-Since"},
        {"\"xyz\"", NULL, NULL, NULL, GW_COND_COPY_SOURCE, true, GW_S3_PRECONDITION_FAILED,
         "x-amz-copy-source-If-Match"},
        /* WRITE: S3 conditional writes */
        {NULL, "*", NULL, NULL, GW_COND_WRITE, false, GW_S3_OK, NULL},
        {NULL, "*", NULL, NULL, GW_COND_WRITE, true, GW_S3_PRECONDITION_FAILED, "If-None-Match"},
        {NULL, "\"abc\"", NULL, NULL, GW_COND_WRITE, false, GW_S3_NOT_IMPLEMENTED, NULL},
        {"\"abc\"", NULL, NULL, NULL, GW_COND_WRITE, true, GW_S3_OK, NULL},
        {"\"xyz\"", NULL, NULL, NULL, GW_COND_WRITE, true, GW_S3_PRECONDITION_FAILED, "If-Match"},
        {"\"abc\"", NULL, NULL, NULL, GW_COND_WRITE, false, GW_S3_NO_SUCH_KEY, NULL},
        {NULL, NULL, BEFORE, BEFORE, GW_COND_WRITE, true, GW_S3_OK, NULL}, /* dates ignored */
    };
    for (size_t i = 0; i < N(v); i++) {
        struct gw_conditions c = {0};
        if (v[i].im)
            c.if_match = S(v[i].im), c.has_match = true;
        if (v[i].inm)
            c.if_none_match = S(v[i].inm), c.has_none_match = true;
        if (v[i].ims)
            c.if_modified_since = S(v[i].ims), c.has_modified_since = true;
        if (v[i].ius)
            c.if_unmodified_since = S(v[i].ius), c.has_unmodified_since = true;
        struct gw_s3_err e;
        gw_s3_err_clear(&e);
        enum gw_s3_error rc = gw_conditions_eval(&c, v[i].mode, v[i].exists, S("abc"), MTIME, &e);
        bool cond_ok = !v[i].cond || (e.n_extra == 1 && strcmp(e.extra[0].name, "Condition") == 0 &&
                                      strcmp(e.extra[0].value, v[i].cond) == 0);
        ok(rc == v[i].want && cond_ok, "conditions #%zu -> %d (want %d)", i, rc, v[i].want);
    }

    struct gw_header hs[] = {
        {GW_STR("If-Match"), GW_STR("\"a\"")},
        {GW_STR("x-amz-copy-source-if-none-match"), GW_STR("\"b\"")},
        {GW_STR("X-Amz-Copy-Source-If-Modified-Since"), GW_STR(AT)},
    };
    struct gw_request_head h = {.method = GW_STR("PUT"), .headers = hs, .n_headers = N(hs)};
    struct gw_conditions c;
    gw_conditions_from_headers(&h, false, &c);
    ok(c.has_match && gw_str_eq(c.if_match, "\"a\"") && !c.has_none_match &&
           !c.has_modified_since && !c.has_unmodified_since,
       "request conditions read from headers");
    gw_conditions_from_headers(&h, true, &c);
    ok(!c.has_match && c.has_none_match && gw_str_eq(c.if_none_match, "\"b\"") &&
           c.has_modified_since && !c.has_unmodified_since,
       "copy-source conditions read from their headers");
}

static void test_user_meta(void)
{
    struct gw_header hs[] = {
        {GW_STR("Content-Type"), GW_STR("text/plain")},
        {GW_STR("X-Amz-Meta-Zeta"), GW_STR("last")},
        {GW_STR("x-amz-meta-alpha"), GW_STR("1")},
        {GW_STR("X-AMZ-META-ALPHA"), GW_STR("2")},
        {GW_STR("x-amz-meta-mid"), GW_STR("with\ttab and \xc3\xa9")},
        {GW_STR("x-amz-metadata-directive"), GW_STR("REPLACE")}, /* not metadata */
    };
    struct gw_request_head h = {.method = GW_STR("PUT"), .headers = hs, .n_headers = N(hs)};
    struct gw_user_meta m;
    struct gw_s3_err e;
    ok(gw_user_meta_collect(&h, &m, &e) == GW_S3_OK, "metadata collected");
    ok(m.n == 3, "three names (a repeated one joined)");
    ok(m.n == 3 && strcmp(m.v[0].name, "alpha") == 0 && strcmp(m.v[0].value, "1,2") == 0,
       "names lower-cased, repeats joined with ',' in arrival order");
    ok(m.n == 3 && strcmp(m.v[1].name, "mid") == 0 && strcmp(m.v[1].value, "with\ttab and \xc3\xa9") == 0,
       "tab and non-ASCII bytes kept");
    ok(m.n == 3 && strcmp(m.v[2].name, "zeta") == 0, "sorted by name");
    ok(m.total == 5 + 1 + 5 + 1 + 3 + 15 + 4 + 4, "size counts names without prefix and values");
    gw_user_meta_free(&m);

    struct gw_header none[] = {{GW_STR("Host"), GW_STR("x")}};
    h.headers = none;
    h.n_headers = 1;
    ok(gw_user_meta_collect(&h, &m, &e) == GW_S3_OK && m.n == 0 && m.v == NULL, "no metadata");
    gw_user_meta_free(&m);

    struct gw_header empty[] = {{GW_STR("x-amz-meta-"), GW_STR("v")}};
    h.headers = empty;
    ok(gw_user_meta_collect(&h, &m, &e) == GW_S3_INVALID_ARGUMENT, "x-amz-meta- without a name");
    struct gw_header ctl[] = {{GW_STR("x-amz-meta-a"), GW_STR("bad\r\nX-Injected: 1")}};
    h.headers = ctl;
    ok(gw_user_meta_collect(&h, &m, &e) == GW_S3_INVALID_ARGUMENT && m.n == 0,
       "CR/LF in a value refused");

    /* 2 KiB exactly passes, one byte more is MetadataTooLarge. */
    static char big[GW_USER_META_MAX];
    memset(big, 'v', sizeof(big));
    struct gw_header sz[] = {{GW_STR("x-amz-meta-k"), {big, GW_USER_META_MAX - 1}}};
    h.headers = sz;
    ok(gw_user_meta_collect(&h, &m, &e) == GW_S3_OK && m.total == GW_USER_META_MAX,
       "exactly 2048 bytes of metadata");
    gw_user_meta_free(&m);
    sz[0].value.n = GW_USER_META_MAX;
    ok(gw_user_meta_collect(&h, &m, &e) == GW_S3_METADATA_TOO_LARGE, "2049 bytes: MetadataTooLarge");
}

static void test_overrides(void)
{
    struct gw_query q;
    struct gw_overrides o;
    struct gw_s3_err e;
    gw_query_parse(S("response-content-type=text%2Fhtml&response-cache-control=no-cache&"
                     "response-content-disposition=attachment%3B%20filename%3D%22a.txt%22&x=1"),
                   &q, &e);
    ok(gw_response_overrides(&q, true, &o, &e) == GW_S3_OK && o.n == 3, "three overrides");
    ok(o.n == 3 && strcmp(o.v[0].header, "Content-Type") == 0 &&
           gw_str_eq(o.v[0].value, "text/html"),
       "Content-Type override decoded");
    ok(o.n == 3 && strcmp(o.v[1].header, "Cache-Control") == 0 &&
           strcmp(o.v[2].header, "Content-Disposition") == 0 &&
           gw_str_eq(o.v[2].value, "attachment; filename=\"a.txt\""),
       "in a fixed order, values decoded");
    ok(gw_response_overrides(&q, false, &o, &e) == GW_S3_INVALID_REQUEST && o.n == 0,
       "anonymous requests cannot override");
    gw_query_free(&q);
    gw_query_parse(S("response-content-type=text%2Fhtml%0D%0ASet-Cookie%3A%20x"), &q, &e);
    ok(gw_response_overrides(&q, true, &o, &e) == GW_S3_INVALID_ARGUMENT,
       "header injection through an override is refused");
    gw_query_free(&q);
    gw_query_parse(S("prefix=x"), &q, &e);
    ok(gw_response_overrides(&q, false, &o, &e) == GW_S3_OK && o.n == 0,
       "no overrides: fine even anonymously");
    gw_query_free(&q);
}

int main(void)
{
    test_utf8();
    test_pct();
    test_base64_hex();
    test_dates();
    test_query();
    test_range();
    test_etag_match();
    test_conditions();
    test_user_meta();
    test_overrides();
    return tap_done();
}
