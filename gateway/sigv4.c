#include "gateway/sigv4.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hmac.h"
#include "common/id.h"
#include <lode/errno.h>

static const char ALGORITHM[] = "AWS4-HMAC-SHA256";
static const char TERMINATOR[] = "aws4_request";
static const char HDR_PREFIX[] = "The authorization header is malformed; ";
static const char QUERY_REQUIRED[] =
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";
static const char MECHANISM[] =
    "The authorization mechanism you have provided is not supported. Please use "
    "AWS4-HMAC-SHA256.";
static const char NEED_DATE[] = "AWS authentication requires a valid Date or x-amz-date header";

__attribute__((format(printf, 3, 4))) static enum gw_s3_error
fail(struct gw_sigv4_err *err, enum gw_s3_error code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

static enum gw_s3_error ok_(struct gw_sigv4_err *err)
{
    if (err) {
        err->code = GW_S3_OK;
        err->msg[0] = '\0';
    }
    return GW_S3_OK;
}

/* ---- characters, hex, time ---- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

static bool hex_decode32(const char *p, size_t n, uint8_t out[32])
{
    if (n != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)p[2 * i]), lo = hexval((unsigned char)p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned char d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return d[m - 1] + (m == 2 && is_leap(y));
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1). */
static int64_t civil_days(int64_t y, unsigned m, unsigned d)
{
    static const unsigned short before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t p = y - 1;
    int64_t days = 365 * p + p / 4 - p / 100 + p / 400 + before[m - 1] + (m > 2 && is_leap(y)) + d - 1;
    return days - 719162; /* the same count for 1970-01-01 */
}

static bool digits(const char *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

static bool make_time(unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s,
                      int64_t *t)
{
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 ||
        mi > 59 || s > 59)
        return false;
    *t = civil_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return true;
}

/* "YYYYMMDDTHHMMSSZ", exactly. */
static bool parse_amz_date(struct gw_str v, int64_t *t)
{
    unsigned y, mo, d, h, mi, s;
    const char *p = v.p;
    return v.n == 16 && p[8] == 'T' && p[15] == 'Z' && digits(p, 4, &y) &&
           digits(p + 4, 2, &mo) && digits(p + 6, 2, &d) && digits(p + 9, 2, &h) &&
           digits(p + 11, 2, &mi) && digits(p + 13, 2, &s) && make_time(y, mo, d, h, mi, s, t);
}

/* RFC 7231 IMF-fixdate, "Fri, 24 May 2013 00:00:00 GMT", also with a one-digit day and the
 * zones UTC, +0000 and -0000 that some signers write. */
static bool parse_http_date(struct gw_str v, int64_t *t)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const char wdays[] = "MonTueWedThuFriSatSun";
    char buf[40];
    if (v.n < 28 || v.n >= sizeof(buf))
        return false;
    memcpy(buf, v.p, v.n);
    buf[v.n] = '\0';
    const char *p = buf;
    bool wd_ok = false;
    for (int i = 0; i < 7; i++)
        wd_ok |= memcmp(p, wdays + 3 * i, 3) == 0;
    if (!wd_ok || p[3] != ',' || p[4] != ' ')
        return false;
    p += 5;
    unsigned d, y, h, mi, s, mo = 0;
    size_t dn = (p[1] == ' ') ? 1 : 2;
    if (!digits(p, dn, &d) || p[dn] != ' ')
        return false;
    p += dn + 1;
    for (unsigned i = 0; i < 12; i++)
        if (memcmp(p, months + 3 * i, 3) == 0)
            mo = i + 1;
    if (!mo || p[3] != ' ')
        return false;
    p += 4;
    if (strlen(p) < 17 || !digits(p, 4, &y) || p[4] != ' ' || !digits(p + 5, 2, &h) ||
        p[7] != ':' || !digits(p + 8, 2, &mi) || p[10] != ':' || !digits(p + 11, 2, &s) ||
        p[13] != ' ')
        return false;
    p += 14;
    if (strcmp(p, "GMT") != 0 && strcmp(p, "UTC") != 0 && strcmp(p, "+0000") != 0 &&
        strcmp(p, "-0000") != 0)
        return false;
    return make_time(y, mo, d, h, mi, s, t);
}

void gw_sigv4_format_time(int64_t t, char out[GW_SIGV4_TIMESTAMP_LEN + 1])
{
    if (t < 0)
        t = 0;
    if (t > 253402300799) /* 9999-12-31T23:59:59Z */
        t = 253402300799;
    int64_t days = t / 86400, rem = t % 86400;
    int64_t y = 1970 + days / 366;
    while (civil_days(y + 1, 1, 1) <= days)
        y++;
    unsigned m = 1;
    while (m < 12 && civil_days(y, m + 1, 1) <= days)
        m++;
    unsigned d = (unsigned)(days - civil_days(y, m, 1)) + 1;
    snprintf(out, GW_SIGV4_TIMESTAMP_LEN + 1, "%04u%02u%02uT%02u%02u%02uZ", (unsigned)y, m, d,
             (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
}

/* ---- small string helpers ---- */

static bool copy_str(char *dst, size_t cap, struct gw_str s)
{
    if (s.n >= cap || memchr(s.p, '\0', s.n))
        return false;
    memcpy(dst, s.p, s.n);
    dst[s.n] = '\0';
    return true;
}

static struct gw_str trim(struct gw_str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

/* Counts the headers named `name`; *first gets the first one. */
static size_t find_headers(const struct gw_request_head *req, const char *name,
                           const struct gw_header **first)
{
    size_t n = 0;
    *first = NULL;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (gw_str_ieq(req->headers[i].name, name)) {
            if (!n)
                *first = &req->headers[i];
            n++;
        }
    }
    return n;
}

/* Percent-decodes `s` into dst (NUL-terminated). False when malformed, too long or when it
 * decodes to a NUL. */
static bool pct_decode(char *dst, size_t cap, struct gw_str s)
{
    size_t o = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '%') {
            if (s.n - i < 3)
                return false;
            int hi = hexval((unsigned char)s.p[i + 1]), lo = hexval((unsigned char)s.p[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return false;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return true;
}

/* Decodes what the client sent and re-encodes it the AWS way, in one pass. */
static int requote(struct cmn_buf *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = cmn_buf_reserve(out, 3 * n);
    if (rc)
        return rc;
    uint8_t *o = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (n - i < 3)
                return -EINVAL;
            int hi = hexval((unsigned char)p[i + 1]), lo = hexval((unsigned char)p[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (unreserved(c)) {
            *o++ = c;
        } else {
            *o++ = '%';
            *o++ = (uint8_t)hex[c >> 4];
            *o++ = (uint8_t)hex[c & 15];
        }
    }
    out->len = (size_t)(o - out->data);
    return 0;
}

/* ---- canonical request ---- */

struct qpair {
    size_t off;      /* in the arena: the encoded name, then the encoded value */
    size_t name_len;
    size_t len;
};

static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int qpair_cmp(const void *a, const void *b, void *arena)
{
    const uint8_t *base = arena;
    const struct qpair *x = a, *y = b;
    int c = bytes_cmp(base + x->off, x->name_len, base + y->off, y->name_len);
    if (c)
        return c;
    return bytes_cmp(base + x->off + x->name_len, x->len - x->name_len,
                     base + y->off + y->name_len, y->len - y->name_len);
}

/* Parameters sorted by encoded name then value, each decoded and re-encoded, joined with
 * '&'; X-Amz-Signature left out when `presigned`. */
static enum gw_s3_error canonical_query(struct cmn_buf *out, struct gw_str q, bool presigned,
                                        struct gw_sigv4_err *err)
{
    if (q.n > GW_SIGV4_QUERY_MAX)
        return fail(err, GW_S3_INVALID_URI, "The query string is longer than %d bytes.",
                    GW_SIGV4_QUERY_MAX);
    size_t count = 0;
    for (size_t i = 0; i < q.n;) {
        const char *amp = memchr(q.p + i, '&', q.n - i);
        size_t end = amp ? (size_t)(amp - q.p) : q.n;
        count += end > i;
        i = end + 1;
    }
    if (count > GW_SIGV4_QUERY_PARAMS_MAX)
        return fail(err, GW_S3_INVALID_URI, "The query string has more than %d parameters.",
                    GW_SIGV4_QUERY_PARAMS_MAX);
    if (count == 0)
        return GW_S3_OK;
    struct qpair *pairs = calloc(count, sizeof(*pairs));
    struct cmn_buf arena;
    cmn_buf_init(&arena);
    enum gw_s3_error rc = GW_S3_OK;
    if (!pairs || cmn_buf_reserve(&arena, 3 * q.n) != 0) {
        rc = fail(err, GW_S3_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < q.n;) {
        const char *amp = memchr(q.p + i, '&', q.n - i);
        size_t end = amp ? (size_t)(amp - q.p) : q.n;
        if (end > i) {
            const char *seg = q.p + i;
            size_t seg_n = end - i;
            const char *eq = memchr(seg, '=', seg_n);
            size_t name_n = eq ? (size_t)(eq - seg) : seg_n;
            size_t off = arena.len;
            int r = requote(&arena, seg, name_n);
            size_t name_len = arena.len - off;
            if (r == 0 && eq)
                r = requote(&arena, eq + 1, seg_n - name_n - 1);
            if (r != 0) {
                rc = r == -EINVAL ? fail(err, GW_S3_INVALID_URI,
                                         "The query string has a malformed %%-escape.")
                                  : fail(err, GW_S3_INTERNAL_ERROR, "out of memory");
                goto out;
            }
            if (presigned && name_len == 15 && memcmp(arena.data + off, "X-Amz-Signature", 15) == 0)
                arena.len = off;
            else
                pairs[n++] = (struct qpair){off, name_len, arena.len - off};
        }
        i = end + 1;
    }
    qsort_r(pairs, n, sizeof(*pairs), qpair_cmp, arena.data);
    for (size_t i = 0; i < n && rc == GW_S3_OK; i++) {
        const uint8_t *p = arena.data + pairs[i].off;
        if ((i && cmn_buf_append(out, "&", 1)) || cmn_buf_append(out, p, pairs[i].name_len) ||
            cmn_buf_append(out, "=", 1) ||
            cmn_buf_append(out, p + pairs[i].name_len, pairs[i].len - pairs[i].name_len))
            rc = fail(err, GW_S3_INTERNAL_ERROR, "out of memory");
    }
out:
    free(pairs);
    cmn_buf_free(&arena);
    return rc;
}

/* A value trimmed, with runs of blanks collapsed to one space. */
static int append_trimall(struct cmn_buf *out, struct gw_str v)
{
    v = trim(v);
    int rc = cmn_buf_reserve(out, v.n);
    if (rc)
        return rc;
    uint8_t *o = out->data + out->len;
    bool blank = false;
    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (c == ' ' || c == '\t') {
            if (!blank)
                *o++ = ' ';
            blank = true;
        } else {
            *o++ = (uint8_t)c;
            blank = false;
        }
    }
    out->len = (size_t)(o - out->data);
    return 0;
}

/* "name:value\n" for each name of the ';' list, in the list's order; repeated headers are
 * joined with ','; a signed header the request lacks contributes "name:". */
static int canonical_headers(struct cmn_buf *out, const struct gw_request_head *req,
                             const char *signed_headers)
{
    const char *p = signed_headers;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        int rc = cmn_buf_reserve(out, n + 2);
        if (rc)
            return rc;
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            out->data[out->len++] = (uint8_t)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        out->data[out->len++] = ':';
        bool first = true;
        for (size_t i = 0; i < req->n_headers; i++) {
            const struct gw_header *h = &req->headers[i];
            if (h->name.n != n || strncasecmp(h->name.p, p, n) != 0)
                continue;
            if ((!first && (rc = cmn_buf_append(out, ",", 1))) ||
                (rc = append_trimall(out, h->value)))
                return rc;
            first = false;
        }
        if ((rc = cmn_buf_append(out, "\n", 1)))
            return rc;
        p += n + (semi != NULL);
    }
    return 0;
}

static enum gw_s3_error build_canonical(struct cmn_buf *out, const struct gw_request_head *req,
                                        const char *signed_headers, const char *payload_hash,
                                        bool presigned, struct gw_sigv4_err *err)
{
    struct gw_str path = req->path.n ? req->path : GW_STR("/");
    if (cmn_buf_append(out, req->method.p, req->method.n) || cmn_buf_append(out, "\n", 1) ||
        cmn_buf_append(out, path.p, path.n) || cmn_buf_append(out, "\n", 1))
        return fail(err, GW_S3_INTERNAL_ERROR, "out of memory");
    enum gw_s3_error rc = canonical_query(out, req->query, presigned, err);
    if (rc != GW_S3_OK)
        return rc;
    if (cmn_buf_append(out, "\n", 1) || canonical_headers(out, req, signed_headers) ||
        cmn_buf_printf(out, "\n%s\n%s", signed_headers, payload_hash))
        return fail(err, GW_S3_INTERNAL_ERROR, "out of memory");
    return GW_S3_OK;
}

enum gw_s3_error gw_sigv4_canonical_request(const struct gw_request_head *req,
                                            const struct gw_sigv4_auth *auth,
                                            struct cmn_buf *out, struct gw_sigv4_err *err)
{
    enum gw_s3_error rc = build_canonical(out, req, auth->signed_headers, auth->payload_hash,
                                          auth->kind == GW_SIGV4_PRESIGNED, err);
    return rc == GW_S3_OK ? ok_(err) : rc;
}

int gw_sigv4_string_to_sign(const struct gw_sigv4_auth *auth, const void *canonical,
                            size_t canonical_len, struct cmn_buf *out)
{
    uint8_t digest[32];
    char hex[65];
    if (cmn_sha256(canonical, canonical_len, digest) != 0)
        return LODE_EINTERNAL;
    cmn_hex_encode(digest, 32, hex);
    return cmn_buf_printf(out, "%s\n%s\n%s/%s/%s/%s\n%s", ALGORITHM, auth->timestamp, auth->date,
                          auth->region, auth->service, TERMINATOR, hex);
}

static int hmac(const uint8_t *key, size_t key_len, const void *msg, size_t len, uint8_t out[32])
{
    struct cmn_iov_c piece = {msg, len};
    return cmn_hmac_sha256(key, key_len, &piece, 1, out);
}

int gw_sigv4_signing_key(const void *secret, size_t secret_len, const char *date,
                         const char *region, const char *service,
                         uint8_t out[GW_SIGV4_KEY_SIZE])
{
    uint8_t k[1024 + 4], a[32], b[32];
    if (secret_len > 1024)
        return -EINVAL;
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, secret_len);
    int rc = hmac(k, 4 + secret_len, date, strlen(date), a);
    if (!rc)
        rc = hmac(a, 32, region, strlen(region), b);
    if (!rc)
        rc = hmac(b, 32, service, strlen(service), a);
    if (!rc)
        rc = hmac(a, 32, TERMINATOR, strlen(TERMINATOR), out);
    /* The intermediate keys are as good as the secret for this scope. */
    explicit_bzero(k, sizeof(k));
    explicit_bzero(a, sizeof(a));
    explicit_bzero(b, sizeof(b));
    return rc ? LODE_EINTERNAL : 0;
}

enum gw_s3_error gw_sigv4_compute(const struct gw_request_head *req,
                                  const struct gw_sigv4_auth *auth,
                                  const uint8_t key[GW_SIGV4_KEY_SIZE],
                                  uint8_t sig[GW_SIGV4_SIG_SIZE], struct gw_sigv4_err *err)
{
    struct cmn_buf canon, sts;
    cmn_buf_init(&canon);
    cmn_buf_init(&sts);
    enum gw_s3_error rc = build_canonical(&canon, req, auth->signed_headers, auth->payload_hash,
                                          auth->kind == GW_SIGV4_PRESIGNED, err);
    if (rc == GW_S3_OK && (gw_sigv4_string_to_sign(auth, canon.data, canon.len, &sts) != 0 ||
                           hmac(key, 32, sts.data, sts.len, sig) != 0))
        rc = fail(err, GW_S3_INTERNAL_ERROR, "signature computation failed");
    cmn_buf_free(&canon);
    cmn_buf_free(&sts);
    return rc == GW_S3_OK ? ok_(err) : rc;
}

enum gw_s3_error gw_sigv4_verify(const struct gw_request_head *req,
                                 const struct gw_sigv4_auth *auth,
                                 const uint8_t key[GW_SIGV4_KEY_SIZE], struct gw_sigv4_err *err)
{
    if (auth->kind != GW_SIGV4_HEADER && auth->kind != GW_SIGV4_PRESIGNED)
        return fail(err, GW_S3_ACCESS_DENIED, "The request is not signed.");
    uint8_t sig[32];
    enum gw_s3_error rc = gw_sigv4_compute(req, auth, key, sig, err);
    if (rc != GW_S3_OK)
        return rc;
    if (!cmn_ct_equal(sig, auth->signature, 32))
        return fail(err, GW_S3_SIGNATURE_DOES_NOT_MATCH,
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.");
    return ok_(err);
}

/* ---- streaming chain ---- */

void gw_sigv4_chain_init(struct gw_sigv4_chain *chain, const struct gw_sigv4_auth *auth,
                         const uint8_t key[GW_SIGV4_KEY_SIZE])
{
    memset(chain, 0, sizeof(*chain));
    memcpy(chain->key, key, GW_SIGV4_KEY_SIZE);
    memcpy(chain->seed, auth->signature, GW_SIGV4_SIG_SIZE);
    memcpy(chain->timestamp, auth->timestamp, sizeof(chain->timestamp));
    snprintf(chain->scope, sizeof(chain->scope), "%s/%s/%s/%s", auth->date, auth->region,
             auth->service, TERMINATOR);
}

/* ---- parsing ---- */

/* Client bytes echoed in a message: printable ASCII only, bounded. */
static const char *safe(struct gw_str s, char *buf, size_t cap)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (s.p[i] >= 0x20 && s.p[i] < 0x7f && s.p[i] != '"') ? s.p[i] : '?';
    buf[n] = '\0';
    return buf;
}

/* An AuthorizationHeaderMalformed, or for a presigned URL an
 * AuthorizationQueryParametersError about parameter `param`. */
__attribute__((format(printf, 4, 5))) static enum gw_s3_error
malformed(struct gw_sigv4_err *err, bool query, const char *param, const char *fmt, ...)
{
    char tail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof(tail), fmt, ap);
    va_end(ap);
    if (query)
        return fail(err, GW_S3_AUTH_QUERY_ERROR, "Error parsing the X-Amz-%s parameter; %s", param,
                    tail);
    return fail(err, GW_S3_AUTH_HEADER_MALFORMED, "%s%s", HDR_PREFIX, tail);
}

static bool region_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
}

/* "AKID/YYYYMMDD/REGION/SERVICE/aws4_request". The access key may itself contain '/'
 * (lode-meta allows any printable key), so the scope is taken from the right. */
static enum gw_s3_error parse_credential(struct gw_str v, bool query,
                                         const struct gw_sigv4_policy *pol,
                                         struct gw_sigv4_auth *out, struct gw_sigv4_err *err)
{
    static const char form[] =
        "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".";
    size_t cut[4];
    int k = 4;
    for (size_t i = v.n; i-- > 0 && k > 0;)
        if (v.p[i] == '/')
            cut[--k] = i;
    if (k > 0)
        return malformed(err, query, "Credential", "%s", form);
    struct gw_str ak = {v.p, cut[0]};
    struct gw_str date = {v.p + cut[0] + 1, cut[1] - cut[0] - 1};
    struct gw_str region = {v.p + cut[1] + 1, cut[2] - cut[1] - 1};
    struct gw_str service = {v.p + cut[2] + 1, cut[3] - cut[2] - 1};
    struct gw_str term = {v.p + cut[3] + 1, v.n - cut[3] - 1};
    unsigned dv;
    if (ak.n == 0 || ak.n > GW_SIGV4_ACCESS_KEY_MAX || date.n != 8 || !digits(date.p, 8, &dv) ||
        region.n == 0 || region.n > GW_SIGV4_REGION_MAX || service.n == 0)
        return malformed(err, query, "Credential", "%s", form);
    for (size_t i = 0; i < ak.n; i++)
        if (ak.p[i] <= 0x20 || ak.p[i] >= 0x7f)
            return malformed(err, query, "Credential", "%s", form);
    for (size_t i = 0; i < region.n; i++)
        if (!region_char(region.p[i]))
            return malformed(err, query, "Credential", "%s", form);
    char b1[40], b2[80];
    if (!gw_str_eq(service, "s3"))
        return malformed(err, query, "Credential",
                         "incorrect service \"%s\". This endpoint belongs to \"s3\".",
                         safe(service, b1, sizeof(b1)));
    if (!gw_str_eq(term, TERMINATOR))
        return malformed(err, query, "Credential",
                         "incorrect terminal \"%s\". This endpoint uses \"aws4_request\".",
                         safe(term, b1, sizeof(b1)));
    if (pol->region && pol->region[0] &&
        (strlen(pol->region) != region.n || memcmp(pol->region, region.p, region.n) != 0))
        return malformed(err, query, "Credential", "the region '%s' is wrong; expecting '%s'",
                         safe(region, b2, sizeof(b2)), pol->region);
    copy_str(out->access_key, sizeof(out->access_key), ak);
    copy_str(out->date, sizeof(out->date), date);
    copy_str(out->region, sizeof(out->region), region);
    copy_str(out->service, sizeof(out->service), service);
    return GW_S3_OK;
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static enum gw_s3_error parse_signed_headers(struct gw_str v, bool query,
                                             struct gw_sigv4_auth *out, struct gw_sigv4_err *err)
{
    if (v.n == 0 || v.n > GW_SIGV4_SIGNED_HEADERS_MAX)
        return malformed(err, query, "SignedHeaders",
                         "the SignedHeaders list is empty or longer than %d characters.",
                         GW_SIGV4_SIGNED_HEADERS_MAX);
    size_t count = 0, start = 0;
    bool host = false;
    for (size_t i = 0; i <= v.n; i++) {
        if (i < v.n && v.p[i] != ';') {
            if (!token_char(v.p[i]))
                return malformed(err, query, "SignedHeaders",
                                 "the SignedHeaders list has an invalid character.");
            continue;
        }
        if (i == start)
            return malformed(err, query, "SignedHeaders",
                             "the SignedHeaders list has an empty name.");
        host |= i - start == 4 && strncasecmp(v.p + start, "host", 4) == 0;
        count++;
        start = i + 1;
    }
    if (count > GW_SIGV4_SIGNED_HEADERS_COUNT)
        return malformed(err, query, "SignedHeaders", "more than %d signed headers.",
                         GW_SIGV4_SIGNED_HEADERS_COUNT);
    if (!host)
        return malformed(err, query, "SignedHeaders", "the host header must be signed.");
    copy_str(out->signed_headers, sizeof(out->signed_headers), v);
    return GW_S3_OK;
}

bool gw_sigv4_is_signed(const struct gw_sigv4_auth *auth, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = auth->signed_headers; n && *p;) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (len == n && strncasecmp(p, name, n) == 0)
            return true;
        p += len + (semi != NULL);
    }
    return false;
}

static enum gw_s3_error check_scope_date(const struct gw_sigv4_auth *out, bool query,
                                         struct gw_sigv4_err *err)
{
    if (memcmp(out->date, out->timestamp, 8) == 0)
        return GW_S3_OK;
    return malformed(err, query, "Credential",
                     "Invalid credential date \"%s\". This date is not the same as X-Amz-Date: "
                     "\"%.8s\".",
                     out->date, out->timestamp);
}

static enum gw_s3_error parse_payload(const struct gw_request_head *req, struct gw_sigv4_auth *out,
                                      struct gw_sigv4_err *err)
{
    static const struct {
        const char *name;
        enum gw_sigv4_payload mode;
    } modes[] = {
        {"UNSIGNED-PAYLOAD", GW_SIGV4_PAYLOAD_UNSIGNED},
        {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", GW_SIGV4_PAYLOAD_STREAMING},
        {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", GW_SIGV4_PAYLOAD_STREAMING_TRAILER},
        {"STREAMING-UNSIGNED-PAYLOAD-TRAILER", GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER},
    };
    const struct gw_header *h;
    size_t n = find_headers(req, "x-amz-content-sha256", &h);
    if (n > 1)
        return fail(err, GW_S3_INVALID_ARGUMENT, "x-amz-content-sha256 appears more than once.");
    if (n == 0) {
        if (out->kind == GW_SIGV4_HEADER)
            return fail(err, GW_S3_INVALID_REQUEST,
                        "Missing required header for this request: x-amz-content-sha256");
        out->payload = GW_SIGV4_PAYLOAD_UNSIGNED;
        strcpy(out->payload_hash, "UNSIGNED-PAYLOAD");
        return GW_S3_OK;
    }
    struct gw_str v = trim(h->value);
    bool known = false;
    if (hex_decode32(v.p, v.n, out->payload_sha256)) {
        out->payload = GW_SIGV4_PAYLOAD_SHA256;
        known = true;
    }
    for (size_t i = 0; !known && i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (gw_str_eq(v, modes[i].name)) {
            out->payload = modes[i].mode;
            known = true;
        }
    }
    char b[80];
    if (!known && v.n >= 10 && memcmp(v.p, "STREAMING-", 10) == 0)
        return fail(err, GW_S3_NOT_IMPLEMENTED, "x-amz-content-sha256 \"%s\" is not supported.",
                    safe(v, b, sizeof(b)));
    if (!known)
        return fail(err, GW_S3_INVALID_ARGUMENT,
                    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                    "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 value.");
    if ((out->payload == GW_SIGV4_PAYLOAD_STREAMING ||
         out->payload == GW_SIGV4_PAYLOAD_STREAMING_TRAILER) &&
        out->kind != GW_SIGV4_HEADER)
        return fail(err, GW_S3_INVALID_REQUEST,
                    "%s requires a request signed with the Authorization header.",
                    gw_sigv4_payload_name(out->payload));
    copy_str(out->payload_hash, sizeof(out->payload_hash), v);
    return GW_S3_OK;
}

static enum gw_s3_error parse_header_auth(const struct gw_request_head *req, struct gw_str value,
                                          const struct gw_sigv4_policy *pol, int64_t now,
                                          int64_t skew, struct gw_sigv4_auth *out,
                                          struct gw_sigv4_err *err)
{
    static const char three[] = "the authorization header requires three components: "
                                "Credential, SignedHeaders, and Signature.";
    struct gw_str parts[3] = {{0}};
    static const char *const names[3] = {"Credential", "SignedHeaders", "Signature"};
    bool seen[3] = {false, false, false};
    struct gw_str rest = {value.p + strlen(ALGORITHM), value.n - strlen(ALGORITHM)};
    char b[80];
    for (size_t i = 0; i <= rest.n;) {
        const char *comma = memchr(rest.p + i, ',', rest.n - i);
        size_t end = comma ? (size_t)(comma - rest.p) : rest.n;
        struct gw_str part = trim((struct gw_str){rest.p + i, end - i});
        const char *eq = memchr(part.p, '=', part.n);
        if (!eq)
            return malformed(err, false, NULL, "%s", three);
        struct gw_str key = trim((struct gw_str){part.p, (size_t)(eq - part.p)});
        struct gw_str val = trim((struct gw_str){eq + 1, part.n - (size_t)(eq - part.p) - 1});
        int which = -1;
        for (int j = 0; j < 3; j++)
            if (gw_str_eq(key, names[j]))
                which = j;
        if (which < 0)
            return malformed(err, false, NULL, "the authorization component \"%s\" is malformed.",
                             safe(part, b, sizeof(b)));
        if (seen[which])
            return malformed(err, false, NULL, "the %s component appears more than once.",
                             names[which]);
        seen[which] = true;
        parts[which] = val;
        i = end + 1;
    }
    if (!seen[0] || !seen[1] || !seen[2])
        return malformed(err, false, NULL, "%s", three);
    enum gw_s3_error rc = parse_credential(parts[0], false, pol, out, err);
    if (rc == GW_S3_OK)
        rc = parse_signed_headers(parts[1], false, out, err);
    if (rc != GW_S3_OK)
        return rc;
    if (!hex_decode32(parts[2].p, parts[2].n, out->signature))
        return malformed(err, false, NULL, "the Signature must be 64 hexadecimal digits.");

    const struct gw_header *h;
    size_t n = find_headers(req, "x-amz-date", &h);
    bool have_time;
    if (n)
        have_time = n == 1 && parse_amz_date(trim(h->value), &out->time);
    else
        have_time = find_headers(req, "date", &h) == 1 && parse_http_date(trim(h->value), &out->time);
    if (!have_time)
        return fail(err, GW_S3_ACCESS_DENIED, "%s", NEED_DATE);
    gw_sigv4_format_time(out->time, out->timestamp);
    if ((rc = check_scope_date(out, false, err)) != GW_S3_OK)
        return rc;
    if (out->time - now > skew || now - out->time > skew) {
        char server[GW_SIGV4_TIMESTAMP_LEN + 1];
        gw_sigv4_format_time(now, server);
        return fail(err, GW_S3_REQUEST_TIME_TOO_SKEWED,
                    "The difference between the request time and the server's time is too "
                    "large (request time %s, server time %s, at most %lld s apart).",
                    out->timestamp, server, (long long)skew);
    }
    return GW_S3_OK;
}

enum { Q_ALGO, Q_CRED, Q_DATE, Q_EXPIRES, Q_SIGNED, Q_SIG, Q_V4_COUNT, Q_V2_KEY = Q_V4_COUNT, Q_COUNT };

struct qscan {
    struct gw_str raw[Q_COUNT];
    unsigned count[Q_COUNT];
};

/* Finds the authentication parameters in the raw query (names compared once decoded). */
static void scan_query(struct gw_str q, struct qscan *s)
{
    static const char *const names[Q_COUNT] = {
        "X-Amz-Algorithm", "X-Amz-Credential",    "X-Amz-Date",     "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "AWSAccessKeyId",
    };
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < q.n;) {
        const char *amp = memchr(q.p + i, '&', q.n - i);
        size_t end = amp ? (size_t)(amp - q.p) : q.n;
        struct gw_str seg = {q.p + i, end - i};
        const char *eq = memchr(seg.p, '=', seg.n);
        struct gw_str name = {seg.p, eq ? (size_t)(eq - seg.p) : seg.n};
        char dec[32];
        if (pct_decode(dec, sizeof(dec), name)) {
            for (int k = 0; k < Q_COUNT; k++) {
                if (strcmp(dec, names[k]) == 0) {
                    if (!s->count[k]++)
                        s->raw[k] = eq ? (struct gw_str){eq + 1, seg.n - name.n - 1}
                                       : (struct gw_str){seg.p + seg.n, 0};
                }
            }
        }
        i = end + 1;
    }
}

static enum gw_s3_error parse_presigned(const struct qscan *qs, const struct gw_sigv4_policy *pol,
                                        int64_t now, int64_t skew, struct gw_sigv4_auth *out,
                                        struct gw_sigv4_err *err)
{
    static const char *const names[Q_V4_COUNT] = {"Algorithm", "Credential", "Date",
                                                  "Expires",   "SignedHeaders", "Signature"};
    for (int k = 0; k < Q_V4_COUNT; k++) {
        if (qs->count[k] == 0)
            return fail(err, GW_S3_AUTH_QUERY_ERROR, "%s", QUERY_REQUIRED);
        if (qs->count[k] > 1)
            return fail(err, GW_S3_AUTH_QUERY_ERROR, "X-Amz-%s appears more than once.",
                        names[k]);
    }
    char small[80], big[GW_SIGV4_SIGNED_HEADERS_MAX + 1];
    if (!pct_decode(small, sizeof(small), qs->raw[Q_ALGO]) || strcmp(small, ALGORITHM) != 0)
        return fail(err, GW_S3_AUTH_QUERY_ERROR,
                    "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
    char cred[GW_SIGV4_ACCESS_KEY_MAX + GW_SIGV4_SCOPE_MAX + 2];
    if (!pct_decode(cred, sizeof(cred), qs->raw[Q_CRED]))
        return malformed(err, true, "Credential", "the Credential is mal-formed.");
    enum gw_s3_error rc = parse_credential((struct gw_str){cred, strlen(cred)}, true, pol, out, err);
    if (rc != GW_S3_OK)
        return rc;
    if (!pct_decode(big, sizeof(big), qs->raw[Q_SIGNED]))
        return malformed(err, true, "SignedHeaders", "the list is mal-formed.");
    if ((rc = parse_signed_headers((struct gw_str){big, strlen(big)}, true, out, err)) != GW_S3_OK)
        return rc;
    if (!pct_decode(small, sizeof(small), qs->raw[Q_SIG]) ||
        !hex_decode32(small, strlen(small), out->signature))
        return fail(err, GW_S3_AUTH_QUERY_ERROR, "X-Amz-Signature must be 64 hexadecimal digits.");
    if (!pct_decode(small, sizeof(small), qs->raw[Q_DATE]) ||
        !parse_amz_date((struct gw_str){small, strlen(small)}, &out->time))
        return fail(err, GW_S3_AUTH_QUERY_ERROR,
                    "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
    gw_sigv4_format_time(out->time, out->timestamp);
    unsigned expires = 0;
    size_t en = 0;
    if (pct_decode(small, sizeof(small), qs->raw[Q_EXPIRES]))
        en = strlen(small);
    if (en == 0 || en > 9 || !digits(small, en, &expires))
        return fail(err, GW_S3_AUTH_QUERY_ERROR, "X-Amz-Expires should be a number");
    if (expires == 0)
        return fail(err, GW_S3_AUTH_QUERY_ERROR, "X-Amz-Expires must be at least 1 second");
    if (expires > GW_SIGV4_PRESIGN_EXPIRES_MAX)
        return fail(err, GW_S3_AUTH_QUERY_ERROR,
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800");
    out->expires = expires;
    if ((rc = check_scope_date(out, true, err)) != GW_S3_OK)
        return rc;
    if (out->time - now > skew)
        return fail(err, GW_S3_ACCESS_DENIED, "Request is not valid yet");
    if (now - out->time > out->expires)
        return fail(err, GW_S3_ACCESS_DENIED, "Request has expired");
    return GW_S3_OK;
}

static bool has_prefix(struct gw_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n >= n && memcmp(s.p, lit, n) == 0;
}

enum gw_s3_error gw_sigv4_parse(const struct gw_request_head *req,
                                const struct gw_sigv4_policy *pol, struct gw_sigv4_auth *out,
                                struct gw_sigv4_err *err)
{
    memset(out, 0, sizeof(*out));
    /* Keeps the time arithmetic below far from overflow whatever the caller passes. */
    int64_t now = pol->now < 0 ? 0 : pol->now > (INT64_C(1) << 40) ? (INT64_C(1) << 40) : pol->now;
    int64_t skew = pol->max_skew > 0 ? pol->max_skew : GW_SIGV4_DEFAULT_SKEW_S;
    if (skew > (INT64_C(1) << 40))
        skew = INT64_C(1) << 40;
    const struct gw_header *authz;
    size_t n_authz = find_headers(req, "authorization", &authz);
    struct qscan qs;
    scan_query(req->query, &qs);
    enum gw_s3_error rc = GW_S3_OK;
    if (n_authz > 1)
        return fail(err, GW_S3_INVALID_ARGUMENT, "The request has more than one Authorization header.");
    if (n_authz == 1) {
        struct gw_str v = trim(authz->value);
        if (qs.count[Q_ALGO])
            return fail(err, GW_S3_INVALID_ARGUMENT,
                        "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                        "parameter, Signature query string parameter or the Authorization "
                        "header should be specified");
        if (has_prefix(v, "AWS4-HMAC-SHA256 ") || gw_str_eq(v, ALGORITHM)) {
            out->kind = GW_SIGV4_HEADER;
            rc = parse_header_auth(req, v, pol, now, skew, out, err);
        } else if (has_prefix(v, "AWS ") || has_prefix(v, "AWS4-ECDSA-P256-SHA256")) {
            /* Signature Version 2 and SigV4a: known schemes that lode does not implement. */
            return fail(err, GW_S3_INVALID_REQUEST, "%s", MECHANISM);
        } else {
            return fail(err, GW_S3_INVALID_ARGUMENT, "Unsupported Authorization Type");
        }
    } else if (qs.count[Q_ALGO]) {
        out->kind = GW_SIGV4_PRESIGNED;
        rc = parse_presigned(&qs, pol, now, skew, out, err);
    } else if (qs.count[Q_V2_KEY]) {
        return fail(err, GW_S3_INVALID_REQUEST, "%s", MECHANISM);
    } else if (qs.count[Q_CRED] || qs.count[Q_SIG] || qs.count[Q_SIGNED]) {
        return fail(err, GW_S3_AUTH_QUERY_ERROR, "%s", QUERY_REQUIRED);
    } else {
        out->kind = GW_SIGV4_ANONYMOUS;
    }
    if (rc == GW_S3_OK)
        rc = parse_payload(req, out, err);
    return rc == GW_S3_OK ? ok_(err) : rc;
}

const char *gw_sigv4_payload_name(enum gw_sigv4_payload p)
{
    switch (p) {
    case GW_SIGV4_PAYLOAD_UNSIGNED:
        return "UNSIGNED-PAYLOAD";
    case GW_SIGV4_PAYLOAD_STREAMING:
        return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    case GW_SIGV4_PAYLOAD_STREAMING_TRAILER:
        return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
    case GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER:
        return "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
    case GW_SIGV4_PAYLOAD_SHA256:
        break;
    }
    return "";
}

bool gw_sigv4_payload_is_streaming(enum gw_sigv4_payload p)
{
    return p == GW_SIGV4_PAYLOAD_STREAMING || p == GW_SIGV4_PAYLOAD_STREAMING_TRAILER ||
           p == GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
}

