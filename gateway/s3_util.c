/* S3 protocol helpers, first half: UTF-8, percent-encoding, base64, hex, dates and query
 * strings. Pure functions; see s3_util.h for the contracts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/s3_util.h"

#include "gateway/http.h"

/* ---- UTF-8 ---- */

size_t gw_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte, 0xc0/0xc1 (always overlong) or 0xf5+ */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

bool gw_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = gw_utf8_decode(p + i, n - i, &cp);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

bool gw_xml_char_ok(uint32_t cp)
{
    if (cp < 0x20)
        return cp == 0x9 || cp == 0xa || cp == 0xd;
    if (cp <= 0xd7ff)
        return true;
    if (cp >= 0xe000 && cp <= 0xfffd)
        return true;
    return cp >= 0x10000 && cp <= 0x10ffff;
}

/* ---- percent-encoding ---- */

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

ssize_t gw_pct_decode(const char *in, size_t n, char *out, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int hi = hexval((unsigned char)in[i + 1]), lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    return (ssize_t)o;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

size_t gw_url_encode(const char *in, size_t n, char *out, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (unreserved(c) || (c == '/' && keep_slash)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

/* ---- base64 and hex ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t gw_base64_encode(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int gw_base64_decode(const char *in, size_t n, void *out, size_t cap, size_t *out_len)
{
    unsigned char *o = out;
    if (n % 4 != 0)
        return -EINVAL;
    size_t pad = 0;
    if (n >= 1 && in[n - 1] == '=')
        pad = (n >= 2 && in[n - 2] == '=') ? 2 : 1;
    size_t need = n / 4 * 3 - pad;
    if (need > cap)
        return -ENOSPC;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)in[i + j];
            if (c == '=' && last && j >= 4 - (int)pad) {
                v[j] = 0;
                continue;
            }
            if ((v[j] = b64val(c)) < 0)
                return -EINVAL;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        o[k++] = (unsigned char)(w >> 16);
        if (!(last && pad == 2))
            o[k++] = (unsigned char)(w >> 8);
        else if (w & 0xffff) /* unused bits must be zero: one encoding per byte string */
            return -EINVAL;
        if (!(last && pad >= 1))
            o[k++] = (unsigned char)w;
        else if (pad == 1 && (w & 0xff))
            return -EINVAL;
    }
    *out_len = k;
    return 0;
}

void gw_hex_encode(const void *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int gw_hex_decode(const char *in, size_t n, void *out, size_t cap, size_t *out_len)
{
    unsigned char *o = out;
    if (n % 2)
        return -EINVAL;
    if (n / 2 > cap)
        return -ENOSPC;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval((unsigned char)in[i]), lo = hexval((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        o[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *out_len = n / 2;
    return 0;
}

/* ---- dates ---- */

/* Proleptic Gregorian calendar <-> days since 1970-01-01, by 400-year eras (146097 days),
 * with March as the first month so the leap day ends the year. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* 10000-01-01T00:00:00Z: every formatted year has four digits. */
#define MS_LIMIT INT64_C(253402300800000)

static const char *const wday_short[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wday_long[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct tm_parts {
    int64_t year;
    unsigned mon, day, hour, min, sec, ms, wday;
};

static int split_ms(int64_t ms, struct tm_parts *t)
{
    if (ms < 0 || ms >= MS_LIMIT)
        return -EINVAL;
    int64_t days = ms / 86400000, rem = ms % 86400000;
    civil_from_days(days, &t->year, &t->mon, &t->day);
    t->hour = (unsigned)(rem / 3600000);
    t->min = (unsigned)(rem / 60000 % 60);
    t->sec = (unsigned)(rem / 1000 % 60);
    t->ms = (unsigned)(rem % 1000);
    t->wday = (unsigned)((days + 4) % 7); /* 1970-01-01 was a Thursday */
    return 0;
}

_Static_assert(GW_HTTP_DATE_LEN + 1 == GW_HTTP_DATE_SIZE, "one HTTP date size");

int gw_http_date_format(int64_t ms, char *out)
{
    struct tm_parts t;
    out[0] = '\0';
    if (split_ms(ms, &t))
        return -EINVAL;
    /* One formatter for every HTTP date: the response heads' Date uses it too. */
    gw_http_format_date(ms / 1000, out);
    return 0;
}

int gw_iso8601_format(int64_t ms, char *out)
{
    struct tm_parts t;
    out[0] = '\0';
    if (split_ms(ms, &t))
        return -EINVAL;
    snprintf(out, GW_ISO8601_LEN + 1, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)t.year,
             t.mon, t.day, t.hour, t.min, t.sec, t.ms);
    return 0;
}

/* A tiny cursor for the fixed date grammars. */
struct cur {
    const char *p;
    size_t n, i;
};

static bool lit(struct cur *c, const char *s)
{
    size_t l = strlen(s);
    if (c->n - c->i < l || strncasecmp(c->p + c->i, s, l) != 0)
        return false;
    c->i += l;
    return true;
}

/* Exactly `digits` decimal digits. */
static bool num(struct cur *c, unsigned digits, unsigned *v)
{
    if (c->n - c->i < digits)
        return false;
    unsigned x = 0;
    for (unsigned k = 0; k < digits; k++) {
        char ch = c->p[c->i + k];
        if (ch < '0' || ch > '9')
            return false;
        x = x * 10 + (unsigned)(ch - '0');
    }
    c->i += digits;
    *v = x;
    return true;
}

static bool month(struct cur *c, unsigned *m)
{
    for (unsigned k = 0; k < 12; k++)
        if (lit(c, month_names[k])) {
            *m = k + 1;
            return true;
        }
    return false;
}

static bool hms(struct cur *c, unsigned *h, unsigned *mi, unsigned *s)
{
    return num(c, 2, h) && lit(c, ":") && num(c, 2, mi) && lit(c, ":") && num(c, 2, s);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int to_ms(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s,
                 unsigned ms, int64_t *out)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59)
        return -EINVAL;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return -EINVAL;
    *out = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)s * 1000 + ms;
    return 0;
}

int gw_http_date_parse(const char *s, size_t n, int64_t *ms)
{
    struct cur c = {s, n, 0};
    unsigned d, mo, y, h, mi, sec;

    /* IMF-fixdate and RFC 850 both start with a day name and a comma. */
    for (int k = 0; k < 7; k++) {
        struct cur t = c;
        if (lit(&t, wday_long[k]) && lit(&t, ", ")) {
            if (num(&t, 2, &d) && lit(&t, "-") && month(&t, &mo) && lit(&t, "-") &&
                num(&t, 2, &y) && lit(&t, " ") && hms(&t, &h, &mi, &sec) && lit(&t, " GMT") &&
                t.i == n)
                return to_ms(y < 70 ? 2000 + y : 1900 + y, mo, d, h, mi, sec, 0, ms);
            return -EINVAL;
        }
        t = c;
        if (lit(&t, wday_short[k]) && lit(&t, ", ")) {
            if (num(&t, 2, &d) && lit(&t, " ") && month(&t, &mo) && lit(&t, " ") &&
                num(&t, 4, &y) && lit(&t, " ") && hms(&t, &h, &mi, &sec) && lit(&t, " GMT") &&
                t.i == n)
                return to_ms(y, mo, d, h, mi, sec, 0, ms);
            return -EINVAL;
        }
        t = c;
        if (lit(&t, wday_short[k]) && lit(&t, " ")) {
            /* asctime: "Sun Nov  6 08:49:37 1994", the day padded with a space */
            if (!month(&t, &mo) || !lit(&t, " "))
                return -EINVAL;
            if (lit(&t, " ")) {
                if (!num(&t, 1, &d))
                    return -EINVAL;
            } else if (!num(&t, 2, &d)) {
                return -EINVAL;
            }
            if (lit(&t, " ") && hms(&t, &h, &mi, &sec) && lit(&t, " ") && num(&t, 4, &y) &&
                t.i == n)
                return to_ms(y, mo, d, h, mi, sec, 0, ms);
            return -EINVAL;
        }
    }
    return -EINVAL;
}

int gw_iso8601_parse(const char *s, size_t n, int64_t *ms)
{
    struct cur c = {s, n, 0};
    unsigned y, mo, d, h, mi, sec, frac = 0;
    if (!(num(&c, 4, &y) && lit(&c, "-") && num(&c, 2, &mo) && lit(&c, "-") && num(&c, 2, &d) &&
          c.i < n && c.p[c.i] == 'T' && (c.i++, hms(&c, &h, &mi, &sec))))
        return -EINVAL;
    if (c.i < n && c.p[c.i] == '.') {
        c.i++;
        unsigned digits = 0;
        while (c.i < n && c.p[c.i] >= '0' && c.p[c.i] <= '9' && digits < 9) {
            if (digits < 3)
                frac = frac * 10 + (unsigned)(c.p[c.i] - '0');
            digits++;
            c.i++;
        }
        if (digits == 0)
            return -EINVAL;
        for (unsigned k = digits; k < 3; k++)
            frac *= 10;
    }
    if (c.i + 1 != n || c.p[c.i] != 'Z')
        return -EINVAL;
    return to_ms(y, mo, d, h, mi, sec, frac, ms);
}

/* ---- query strings ---- */

static bool name_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

enum gw_s3_error gw_query_parse(struct gw_str raw, struct gw_query *out, struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t members = 0;
    for (size_t i = 0; i < raw.n;) {
        size_t j = i;
        while (j < raw.n && raw.p[j] != '&')
            j++;
        members += j > i;
        i = j + 1;
    }
    if (members == 0)
        return GW_S3_OK;
    if (members > GW_QUERY_MAX_PARAMS)
        return gw_s3_err_set(err, GW_S3_INVALID_URI, "too many query parameters (at most %d)",
                             GW_QUERY_MAX_PARAMS);
    size_t arr = members * sizeof(struct gw_query_param);
    char *mem = malloc(arr + raw.n + 2 * members + 1);
    if (!mem)
        return gw_s3_err_set(err, GW_S3_INTERNAL_ERROR, NULL);
    struct gw_query_param *v = (struct gw_query_param *)(void *)mem;
    char *o = mem + arr;
    size_t n = 0;
    enum gw_s3_error rc = GW_S3_OK;
    for (size_t i = 0; i < raw.n && rc == GW_S3_OK;) {
        size_t j = i;
        while (j < raw.n && raw.p[j] != '&')
            j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && raw.p[eq] != '=')
                eq++;
            struct gw_query_param *q = &v[n];
            ssize_t nl = gw_pct_decode(raw.p + i, eq - i, o, false);
            if (nl < 0) {
                rc = gw_s3_err_set(err, GW_S3_INVALID_URI, "malformed percent-encoding in the "
                                                           "query string");
                break;
            }
            q->name = (struct gw_str){o, (size_t)nl};
            o[nl] = '\0';
            o += nl + 1;
            q->has_value = eq < j;
            ssize_t vl = q->has_value ? gw_pct_decode(raw.p + eq + 1, j - eq - 1, o, false) : 0;
            if (vl < 0) {
                rc = gw_s3_err_set(err, GW_S3_INVALID_URI,
                                   "malformed percent-encoding in query parameter '%.64s'",
                                   q->name.p);
                break;
            }
            q->value = (struct gw_str){o, (size_t)vl};
            o[vl] = '\0';
            o += vl + 1;
            if (q->name.n == 0) {
                rc = gw_s3_err_set(err, GW_S3_INVALID_URI, "empty query parameter name");
                break;
            }
            for (size_t k = 0; k < q->name.n; k++)
                if (!name_char_ok((unsigned char)q->name.p[k])) {
                    rc = gw_s3_err_set(err, GW_S3_INVALID_URI,
                                       "query parameter names must be printable ASCII");
                    break;
                }
            for (size_t k = 0; k < n && rc == GW_S3_OK; k++)
                if (v[k].name.n == q->name.n && memcmp(v[k].name.p, q->name.p, q->name.n) == 0) {
                    rc = gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                                       "query parameter '%.64s' is given more than once",
                                       q->name.p);
                    gw_s3_err_extra(err, "ArgumentName", "%.64s", q->name.p);
                }
            n++;
        }
        i = j + 1;
    }
    if (rc != GW_S3_OK) {
        free(mem);
        return rc;
    }
    out->v = v;
    out->n = n;
    out->mem = mem;
    return GW_S3_OK;
}

const struct gw_query_param *gw_query_find(const struct gw_query *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++)
        if (gw_str_eq(q->v[i].name, name))
            return &q->v[i];
    return NULL;
}

void gw_query_free(struct gw_query *q)
{
    free(q->mem);
    memset(q, 0, sizeof(*q));
}
