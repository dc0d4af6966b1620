/* I/O-free helpers of the S3 protocol: UTF-8, percent-encoding (request paths and queries,
 * encoding-type=url in listings), base64 and hex, HTTP and ISO 8601 dates, the Range header,
 * conditional requests (If-Match and friends, for reads, copy sources and writes), ETag
 * lists, user metadata headers and the response header overrides of GetObject.
 *
 * Nothing here reads a clock, a file or a socket: times come from the caller. Functions that
 * can refuse input return an enum gw_s3_error (GW_S3_OK is 0) and describe the refusal in an
 * optional struct gw_s3_err (NULL allowed). Implemented in s3_util.c (encodings, dates, query)
 * and s3_cond.c (ranges, conditions, metadata, overrides).
 */
#ifndef LODE_GATEWAY_S3_UTIL_H
#define LODE_GATEWAY_S3_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gateway/gw_types.h"
#include "gateway/s3_errdoc.h"

/* ---- UTF-8 ---- */

/* Decodes one code point from s[0..n). Strict: no overlong forms, no surrogates, nothing above
 * U+10FFFF. Returns the sequence length (1-4) and sets *cp, or 0 when the bytes are not valid
 * UTF-8 (or n == 0). */
size_t gw_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Whether s[0..n) is entirely valid UTF-8 (the empty string is). */
bool gw_utf8_valid(const char *s, size_t n);

/* Whether the code point may appear in an XML 1.0 document (#x9 #xA #xD, #x20-#xD7FF,
 * #xE000-#xFFFD, #x10000-#x10FFFF). */
bool gw_xml_char_ok(uint32_t cp);

/* ---- percent-encoding ---- */

/* Decodes %XX escapes from in[0..n) into out, which must have room for n bytes (decoding never
 * grows). With plus_is_space a '+' becomes ' ' (query strings, form encoding); without it
 * '+' stays '+' (S3 request paths: a '+' in a key is a plus). Returns the decoded length, or
 * -1 for a '%' not followed by two hex digits. The output may contain any byte, NUL included:
 * the caller validates. */
ssize_t gw_pct_decode(const char *in, size_t n, char *out, bool plus_is_space);

/* URL-encodes in[0..n) for encoding-type=url and canonical forms: A-Z a-z 0-9 - _ . ~ stay,
 * '/' stays when keep_slash, every other byte becomes %XX (upper-case hex; a space is %20,
 * never '+', so decoders with and without form semantics agree). out needs room for 3 * n
 * bytes; no NUL is written. Returns the encoded length. */
size_t gw_url_encode(const char *in, size_t n, char *out, bool keep_slash);

/* ---- base64 and hex ---- */

/* Encoded length of n bytes in base64 with padding (without a NUL). */
#define GW_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Standard base64 (RFC 4648, '+' '/', '=' padding). out needs GW_BASE64_LEN(n) + 1 bytes;
 * NUL-terminated. Returns the length without the NUL. */
size_t gw_base64_encode(const void *in, size_t n, char *out);

/* Strict base64 decoding: the standard alphabet, padded to a multiple of 4, '=' only at the
 * end, unused bits of the last symbol zero (so each byte string has exactly one accepted
 * encoding), no whitespace. Writes at most cap bytes. Returns 0 and sets *out_len, -EINVAL for
 * malformed input, -ENOSPC when the result would exceed cap. */
int gw_base64_decode(const char *in, size_t n, void *out, size_t cap, size_t *out_len);

/* Lower-case hex of n bytes into out (2 * n + 1 bytes, NUL-terminated). */
void gw_hex_encode(const void *in, size_t n, char *out);

/* Decodes an even number of hex digits (either case) into out (cap bytes). Returns 0 and sets
 * *out_len, -EINVAL for odd length or a non-hex character, -ENOSPC when it would exceed cap. */
int gw_hex_decode(const char *in, size_t n, void *out, size_t cap, size_t *out_len);

/* ---- dates ---- */

/* "Wed, 12 Oct 2009 17:50:00 GMT": 29 characters (+ NUL). */
#define GW_HTTP_DATE_LEN 29
/* "2009-10-12T17:50:30.000Z": 24 characters (+ NUL). */
#define GW_ISO8601_LEN 24

/* Formats ms since the Unix epoch as an RFC 1123 HTTP-date (the milliseconds are dropped, i.e.
 * truncated toward the earlier second). out: GW_HTTP_DATE_LEN + 1 bytes. Returns 0, or -EINVAL
 * for a time before 1970 or after 9999-12-31 (out then holds ""). */
int gw_http_date_format(int64_t ms, char *out);

/* Parses the three HTTP-date forms of RFC 7231 7.1.1.1: IMF-fixdate ("Sun, 06 Nov 1994
 * 08:49:37 GMT"), obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year is
 * 1970-2069) and asctime ("Sun Nov  6 08:49:37 1994"). The day name must be a day name but is
 * not checked against the date (RFC 7231 lets recipients ignore it). Field ranges are checked
 * (Feb 30 is refused; a leap second 60 is refused). Returns 0 and sets *ms, or -EINVAL. */
int gw_http_date_parse(const char *s, size_t n, int64_t *ms);

/* Formats ms as ISO 8601 UTC with milliseconds, as S3 writes times in XML. out:
 * GW_ISO8601_LEN + 1 bytes. Returns 0 or -EINVAL (same range as gw_http_date_format). */
int gw_iso8601_format(int64_t ms, char *out);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (1 to 9 fraction digits, kept to the millisecond).
 * Returns 0 and sets *ms, or -EINVAL. */
int gw_iso8601_parse(const char *s, size_t n, int64_t *ms);

/* ---- query strings ---- */

#define GW_QUERY_MAX_PARAMS 64

/* One decoded parameter. name and value point into the owning struct gw_query's storage and
 * are NUL-terminated (value may also contain NULs of its own: use value.n). */
struct gw_query_param {
    struct gw_str name;
    struct gw_str value; /* "" when absent */
    bool has_value;      /* "?uploads" has none, "?prefix=" has an empty one */
};

struct gw_query {
    struct gw_query_param *v;
    size_t n;
    char *mem; /* owned: holds v and the decoded strings */
};

/* Splits a raw query (after '?', still percent-encoded) on '&' and decodes each name and value
 * ('+' is a plus, as the signature's canonical query reads it in gateway/sigv4.c; clients
 * send a space as %20). Empty members ("a&&b", a trailing '&') are skipped.
 * Refuses (GW_S3_INVALID_URI) malformed escapes, parameter names that are empty or not
 * printable ASCII, and more than GW_QUERY_MAX_PARAMS parameters; refuses a repeated name with
 * GW_S3_INVALID_ARGUMENT (S3 parameters are single-valued: a duplicate can only be a mistake
 * or an attempt to make two layers read different values). On success the caller frees with
 * gw_query_free; on failure *out is empty (freeing it is harmless). GW_S3_INTERNAL_ERROR when
 * out of memory. */
enum gw_s3_error gw_query_parse(struct gw_str raw, struct gw_query *out, struct gw_s3_err *err);

/* The parameter with exactly this name (names are case-sensitive in S3), or NULL. */
const struct gw_query_param *gw_query_find(const struct gw_query *q, const char *name);

/* Frees the storage; *q becomes empty. Safe on an empty or zeroed query. */
void gw_query_free(struct gw_query *q);

/* ---- Range ---- */

/* A resolved byte range: bytes first..last inclusive (len = last - first + 1). */
struct gw_range {
    bool active; /* false: serve the whole object with 200 */
    uint64_t first, last;
};

/* Evaluates a Range header value against an object of `size` bytes, as S3 does:
 *  - "bytes=a-b", "bytes=a-", "bytes=-n": active, last clamped to size - 1;
 *  - unsatisfiable (a >= size, "-0", any range of an empty object): GW_S3_INVALID_RANGE
 *    (416) with RangeRequested and ActualObjectSize extras;
 *  - syntactically invalid (unknown unit, b < a, garbage) or several ranges ("bytes=0-1,5-6";
 *    S3 serves single ranges only): GW_S3_OK with active == false, i.e. the header is
 *    ignored and the whole object is served, as RFC 7233 allows and S3 does.
 * Whitespace is allowed around '=' , '-' and ','. */
enum gw_s3_error gw_range_parse(struct gw_str value, uint64_t size, struct gw_range *out,
                                struct gw_s3_err *err);

/* x-amz-copy-source-range of UploadPartCopy: exactly "bytes=first-last" with first <= last
 * and last < size (the source object's size). Anything else is GW_S3_INVALID_ARGUMENT, the
 * answer S3 gives to both a malformed and an out-of-bounds copy range. */
enum gw_s3_error gw_copy_range_parse(struct gw_str value, uint64_t size, struct gw_range *out,
                                     struct gw_s3_err *err);

/* Content-Range value: "bytes first-last/size" for an active range; for r == NULL the 416
 * form, "bytes " then an asterisk, a slash and the size. Returns the length written (NUL-terminated), or -1
 * if cap is too small. 64 bytes always suffice. */
int gw_content_range_format(const struct gw_range *r, uint64_t size, char *out, size_t cap);

/* ---- ETags and conditions ---- */

/* Whether an If-Match / If-None-Match value matches an existing object's ETag. The value is
 * "*" or a comma-separated list of entity tags, each quoted ("abc"), weak (W/"abc") or bare
 * (abc: S3 clients are known to send unquoted ETags, and S3 accepts them). The ETag is given
 * with or without its quotes. strong: If-Match semantics (a weak tag never matches);
 * otherwise weak comparison (If-None-Match: W/"x" matches "x"). "*" matches any ETag.
 * Empty members are skipped; unterminated quotes make a member that matches nothing. */
bool gw_etag_list_match(struct gw_str list, struct gw_str etag, bool strong);

/* The four conditional headers of a request, empty when absent. */
struct gw_conditions {
    struct gw_str if_match, if_none_match, if_modified_since, if_unmodified_since;
    bool has_match, has_none_match, has_modified_since, has_unmodified_since;
};

/* Reads If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since, or with
 * copy_source the x-amz-copy-source-if-* headers. Borrowed from h. */
void gw_conditions_from_headers(const struct gw_request_head *h, bool copy_source,
                                struct gw_conditions *out);

enum gw_cond_mode {
    GW_COND_READ,        /* GetObject/HeadObject: RFC 7232 section 6, 304 for GET/HEAD */
    GW_COND_COPY_SOURCE, /* x-amz-copy-source-if-*: every failure is 412 */
    GW_COND_WRITE,       /* PutObject/CompleteMultipartUpload: If-None-Match: * and If-Match */
};

/* Evaluates conditions against the current object (exists, its ETag with or without quotes,
 * its mtime in ms). Returns GW_S3_OK (proceed), GW_S3_NOT_MODIFIED (304) or
 * GW_S3_PRECONDITION_FAILED (412, with a Condition extra naming the header); in READ and
 * COPY_SOURCE modes a missing object gives GW_S3_NO_SUCH_KEY (the caller normally answers
 * 404 before asking). Order and precedence (RFC 7232 section 6, S3 documentation):
 *  READ: If-Match (412) else If-Unmodified-Since (412); then If-None-Match (304) else
 *        If-Modified-Since (304). So If-Match true + If-Unmodified-Since false proceeds, and
 *        If-None-Match false + If-Modified-Since true is 304.
 *  COPY_SOURCE: the same precedence; every failure is 412.
 *  WRITE: If-None-Match must be "*" (anything else is GW_S3_NOT_IMPLEMENTED, as S3 answers)
 *        and fails with 412 when the object exists; If-Match fails with 412 on a different
 *        ETag and with GW_S3_NO_SUCH_KEY when there is no object; the date headers are
 *        ignored.
 * Dates compare at one-second resolution (HTTP dates have no fraction, Last-Modified is
 * truncated to the second, so a client that echoes it back gets 304). A date header that does
 * not parse is ignored, as RFC 7232 requires. */
enum gw_s3_error gw_conditions_eval(const struct gw_conditions *c, enum gw_cond_mode mode,
                                    bool exists, struct gw_str etag, int64_t mtime_ms,
                                    struct gw_s3_err *err);

/* ---- user metadata ---- */

/* S3's limit on user metadata: the bytes of every name (without "x-amz-meta-") and value. */
#define GW_USER_META_MAX 2048

struct gw_user_meta_entry {
    char *name;  /* lower-case, without the x-amz-meta- prefix, NUL-terminated */
    char *value; /* NUL-terminated; repeated headers joined with "," as HTTP allows */
};

struct gw_user_meta {
    struct gw_user_meta_entry *v; /* sorted by name, names unique */
    size_t n;
    size_t total; /* the size counted against GW_USER_META_MAX */
    char *mem;    /* owned */
};

/* Collects the x-amz-meta-* headers of a request. Names are lower-cased (HTTP names are
 * case-insensitive and S3 returns them in lower case). Refuses: an empty name
 * ("x-amz-meta-"), values with control characters other than tab (GW_S3_INVALID_ARGUMENT),
 * and more than GW_USER_META_MAX bytes in total (GW_S3_METADATA_TOO_LARGE). On success the
 * caller frees with gw_user_meta_free; on failure *out is empty. */
enum gw_s3_error gw_user_meta_collect(const struct gw_request_head *h, struct gw_user_meta *out,
                                      struct gw_s3_err *err);

void gw_user_meta_free(struct gw_user_meta *m);

/* ---- response header overrides (GetObject) ---- */

struct gw_override {
    const char *header;  /* "Content-Type", "Content-Language", "Expires", "Cache-Control",
                            "Content-Disposition" or "Content-Encoding" */
    struct gw_str value; /* borrowed from the query */
};

struct gw_overrides {
    struct gw_override v[6];
    size_t n;
};

/* The response-* parameters of a GetObject/HeadObject query, in a fixed order. S3 honours them
 * only on authenticated requests: with authenticated == false and any present,
 * GW_S3_INVALID_REQUEST. A value with a control character (CR, LF, NUL...) or a byte that
 * cannot appear in a header field is refused (GW_S3_INVALID_ARGUMENT): it would let a URL
 * inject response headers. */
enum gw_s3_error gw_response_overrides(const struct gw_query *q, bool authenticated,
                                       struct gw_overrides *out, struct gw_s3_err *err);

#endif
