/* S3 protocol helpers, second half: Range, conditional requests, ETag lists, user metadata and
 * the response header overrides. Pure functions; see s3_util.h for the contracts. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/s3_util.h"

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

static void skip_ows(struct gw_str s, size_t *i)
{
    while (*i < s.n && ows(s.p[*i]))
        (*i)++;
}

/* Decimal digits at s[*i], saturating at UINT64_MAX (a position past any object). Returns
 * false when there is no digit. */
static bool digits_u64(struct gw_str s, size_t *i, uint64_t *v)
{
    size_t start = *i;
    uint64_t x = 0;
    while (*i < s.n && s.p[*i] >= '0' && s.p[*i] <= '9') {
        unsigned d = (unsigned)(s.p[*i] - '0');
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
        (*i)++;
    }
    *v = x;
    return *i > start;
}

/* ---- Range ---- */

/* One range-spec between s[*i] and the next ',' or the end. */
struct spec {
    bool suffix;
    bool has_last;
    uint64_t first, last;
};

static bool parse_spec(struct gw_str s, size_t *i, struct spec *sp)
{
    memset(sp, 0, sizeof(*sp));
    if (*i < s.n && s.p[*i] == '-') {
        (*i)++;
        skip_ows(s, i);
        sp->suffix = true;
        return digits_u64(s, i, &sp->last);
    }
    if (!digits_u64(s, i, &sp->first))
        return false;
    skip_ows(s, i);
    if (*i >= s.n || s.p[*i] != '-')
        return false;
    (*i)++;
    skip_ows(s, i);
    sp->has_last = digits_u64(s, i, &sp->last);
    return !sp->has_last || sp->last >= sp->first;
}

enum gw_s3_error gw_range_parse(struct gw_str value, uint64_t size, struct gw_range *out,
                                struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    skip_ows(value, &i);
    if (value.n - i < 5 || strncasecmp(value.p + i, "bytes", 5) != 0)
        return GW_S3_OK;
    i += 5;
    skip_ows(value, &i);
    if (i >= value.n || value.p[i] != '=')
        return GW_S3_OK;
    i++;
    struct spec sp = {0};
    unsigned count = 0;
    for (;;) {
        skip_ows(value, &i);
        if (i < value.n && value.p[i] == ',') { /* empty list elements are allowed */
            i++;
            continue;
        }
        if (i >= value.n)
            break;
        if (!parse_spec(value, &i, &sp))
            return GW_S3_OK;
        count++;
        skip_ows(value, &i);
        if (i < value.n && value.p[i] != ',')
            return GW_S3_OK;
    }
    if (count != 1)
        return GW_S3_OK; /* none, or several: S3 serves single ranges only */

    bool satisfiable;
    if (sp.suffix)
        satisfiable = sp.last > 0 && size > 0;
    else
        satisfiable = sp.first < size;
    if (!satisfiable) {
        gw_s3_err_set(err, GW_S3_INVALID_RANGE, NULL);
        gw_s3_err_extra(err, "RangeRequested", "%.*s", (int)(value.n > 200 ? 200 : value.n),
                        value.p);
        gw_s3_err_extra(err, "ActualObjectSize", "%" PRIu64, size);
        return GW_S3_INVALID_RANGE;
    }
    out->active = true;
    if (sp.suffix) {
        out->first = sp.last >= size ? 0 : size - sp.last;
        out->last = size - 1;
    } else {
        out->first = sp.first;
        out->last = sp.has_last && sp.last < size ? sp.last : size - 1;
    }
    return GW_S3_OK;
}

enum gw_s3_error gw_copy_range_parse(struct gw_str value, uint64_t size, struct gw_range *out,
                                     struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t i = 6;
    uint64_t first, last;
    if (value.n < 6 || memcmp(value.p, "bytes=", 6) != 0 || !digits_u64(value, &i, &first) ||
        i >= value.n || value.p[i] != '-' || (i++, !digits_u64(value, &i, &last)) ||
        i != value.n || first > last) {
        gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                      "The x-amz-copy-source-range value must be of the form bytes=first-last "
                      "where first and last are the zero-based offsets of the first and last "
                      "bytes to copy");
        gw_s3_err_extra(err, "ArgumentName", "x-amz-copy-source-range");
        gw_s3_err_extra(err, "ArgumentValue", "%.*s", (int)(value.n > 200 ? 200 : value.n),
                        value.p);
        return GW_S3_INVALID_ARGUMENT;
    }
    if (last >= size) {
        gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                      "Range specified is not valid for source object of size: %" PRIu64, size);
        gw_s3_err_extra(err, "ArgumentName", "x-amz-copy-source-range");
        gw_s3_err_extra(err, "ArgumentValue", "%.*s", (int)value.n, value.p);
        return GW_S3_INVALID_ARGUMENT;
    }
    out->active = true;
    out->first = first;
    out->last = last;
    return GW_S3_OK;
}

int gw_content_range_format(const struct gw_range *r, uint64_t size, char *out, size_t cap)
{
    int n = r ? snprintf(out, cap, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, r->first, r->last,
                         size)
              : snprintf(out, cap, "bytes */%" PRIu64, size);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* ---- ETags ---- */

static struct gw_str unquote(struct gw_str e)
{
    if (e.n >= 2 && e.p[0] == '"' && e.p[e.n - 1] == '"')
        return (struct gw_str){e.p + 1, e.n - 2};
    return e;
}

bool gw_etag_list_match(struct gw_str list, struct gw_str etag, bool strong)
{
    struct gw_str want = unquote(etag);
    size_t i = 0;
    while (i < list.n) {
        skip_ows(list, &i);
        if (i < list.n && list.p[i] == ',') {
            i++;
            continue;
        }
        if (i >= list.n)
            break;
        if (list.p[i] == '*') {
            size_t j = i + 1;
            skip_ows(list, &j);
            if (j >= list.n || list.p[j] == ',')
                return true;
        }
        bool weak = false;
        if (list.n - i >= 2 && list.p[i] == 'W' && list.p[i + 1] == '/') {
            weak = true;
            i += 2;
        }
        struct gw_str tag;
        bool valid = true;
        if (i < list.n && list.p[i] == '"') {
            size_t start = ++i;
            while (i < list.n && list.p[i] != '"')
                i++;
            if (i >= list.n)
                return false; /* unterminated: nothing after it can be trusted */
            tag = (struct gw_str){list.p + start, i - start};
            i++;
            skip_ows(list, &i);
            valid = i >= list.n || list.p[i] == ',';
        } else {
            size_t start = i;
            while (i < list.n && list.p[i] != ',')
                i++;
            size_t end = i;
            while (end > start && ows(list.p[end - 1]))
                end--;
            tag = (struct gw_str){list.p + start, end - start};
        }
        while (i < list.n && list.p[i] != ',')
            i++;
        if (valid && !(strong && weak) && tag.n == want.n && memcmp(tag.p, want.p, tag.n) == 0)
            return true;
    }
    return false;
}

/* ---- conditions ---- */

static struct gw_str header_value(const struct gw_request_head *h, const char *name, bool *has)
{
    const struct gw_header *x = gw_header_find(h, name);
    *has = x != NULL;
    return x ? x->value : (struct gw_str){"", 0};
}

void gw_conditions_from_headers(const struct gw_request_head *h, bool copy_source,
                                struct gw_conditions *out)
{
    memset(out, 0, sizeof(*out));
    const char *pre = copy_source ? "x-amz-copy-source-" : "";
    char name[64];
    snprintf(name, sizeof(name), "%sif-match", pre);
    out->if_match = header_value(h, name, &out->has_match);
    snprintf(name, sizeof(name), "%sif-none-match", pre);
    out->if_none_match = header_value(h, name, &out->has_none_match);
    snprintf(name, sizeof(name), "%sif-modified-since", pre);
    out->if_modified_since = header_value(h, name, &out->has_modified_since);
    snprintf(name, sizeof(name), "%sif-unmodified-since", pre);
    out->if_unmodified_since = header_value(h, name, &out->has_unmodified_since);
}

static enum gw_s3_error cond_fail(struct gw_s3_err *err, enum gw_s3_error code, bool copy,
                                  const char *cond)
{
    gw_s3_err_set(err, code, NULL);
    if (code == GW_S3_PRECONDITION_FAILED)
        gw_s3_err_extra(err, "Condition", "%s%s", copy ? "x-amz-copy-source-" : "", cond);
    return code;
}

static bool date_of(struct gw_str v, int64_t *ms)
{
    return gw_http_date_parse(v.p, v.n, ms) == 0;
}

enum gw_s3_error gw_conditions_eval(const struct gw_conditions *c, enum gw_cond_mode mode,
                                    bool exists, struct gw_str etag, int64_t mtime_ms,
                                    struct gw_s3_err *err)
{
    if (mode == GW_COND_WRITE) {
        if (c->has_none_match) {
            size_t i = 0, end = c->if_none_match.n;
            skip_ows(c->if_none_match, &i);
            while (end > i && ows(c->if_none_match.p[end - 1]))
                end--;
            if (end - i != 1 || c->if_none_match.p[i] != '*')
                return gw_s3_err_set(err, GW_S3_NOT_IMPLEMENTED,
                                     "If-None-Match on a write accepts only '*'");
            if (exists)
                return cond_fail(err, GW_S3_PRECONDITION_FAILED, false, "If-None-Match");
        }
        if (c->has_match) {
            if (!exists)
                return gw_s3_err_set(err, GW_S3_NO_SUCH_KEY, NULL);
            if (!gw_etag_list_match(c->if_match, etag, true))
                return cond_fail(err, GW_S3_PRECONDITION_FAILED, false, "If-Match");
        }
        return GW_S3_OK;
    }

    bool copy = mode == GW_COND_COPY_SOURCE;
    if (!exists)
        return gw_s3_err_set(err, GW_S3_NO_SUCH_KEY, NULL);
    /* Last-Modified is sent truncated to the second: compare at that resolution. */
    int64_t mtime = mtime_ms < 0 ? 0 : mtime_ms / 1000 * 1000, when;
    if (c->has_match) {
        if (!gw_etag_list_match(c->if_match, etag, true))
            return cond_fail(err, GW_S3_PRECONDITION_FAILED, copy, "If-Match");
    } else if (c->has_unmodified_since && date_of(c->if_unmodified_since, &when) &&
               mtime > when) {
        return cond_fail(err, GW_S3_PRECONDITION_FAILED, copy, "If-Unmodified-Since");
    }
    enum gw_s3_error not_modified = copy ? GW_S3_PRECONDITION_FAILED : GW_S3_NOT_MODIFIED;
    if (c->has_none_match) {
        if (gw_etag_list_match(c->if_none_match, etag, false))
            return cond_fail(err, not_modified, copy, "If-None-Match");
    } else if (c->has_modified_since && date_of(c->if_modified_since, &when) && mtime <= when) {
        return cond_fail(err, not_modified, copy, "If-Modified-Since");
    }
    return GW_S3_OK;
}

/* ---- user metadata ---- */

#define META_PREFIX "x-amz-meta-"
#define META_PREFIX_LEN (sizeof(META_PREFIX) - 1)

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool field_byte_ok(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int name_cmp(struct gw_str a, struct gw_str b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int r = strncasecmp(a.p, b.p, n);
    return r ? r : (a.n > b.n) - (a.n < b.n);
}

enum gw_s3_error gw_user_meta_collect(const struct gw_request_head *h, struct gw_user_meta *out,
                                      struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t k = 0, bytes = 0, total = 0;
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct gw_header *x = &h->headers[i];
        if (x->name.n < META_PREFIX_LEN ||
            strncasecmp(x->name.p, META_PREFIX, META_PREFIX_LEN) != 0)
            continue;
        size_t nl = x->name.n - META_PREFIX_LEN;
        if (nl == 0)
            return gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                                 "a metadata header needs a name after x-amz-meta-");
        for (size_t j = 0; j < x->name.n; j++)
            if (!tchar((unsigned char)x->name.p[j]))
                return gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                                     "invalid character in a metadata header name");
        for (size_t j = 0; j < x->value.n; j++)
            if (!field_byte_ok((unsigned char)x->value.p[j])) {
                gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                              "metadata header values must not contain control characters");
                gw_s3_err_extra(err, "ArgumentName", "%.*s", (int)(x->name.n > 200 ? 200 : x->name.n),
                                x->name.p);
                return GW_S3_INVALID_ARGUMENT;
            }
        total += nl + x->value.n;
        bytes += nl + 1 + x->value.n + 1;
        k++;
    }
    if (total > GW_USER_META_MAX) {
        gw_s3_err_set(err, GW_S3_METADATA_TOO_LARGE, NULL);
        gw_s3_err_extra(err, "Size", "%zu", total);
        gw_s3_err_extra(err, "MaxSizeAllowed", "%d", GW_USER_META_MAX);
        return GW_S3_METADATA_TOO_LARGE;
    }
    if (k == 0)
        return GW_S3_OK;

    /* Headers in name order, stable for repeats (their values join in arrival order). The
     * count is small (bounded by the header section), so an insertion sort does. */
    size_t *order = malloc(k * sizeof(*order));
    char *mem = malloc(k * sizeof(struct gw_user_meta_entry) + bytes);
    if (!order || !mem) {
        free(order);
        free(mem);
        return gw_s3_err_set(err, GW_S3_INTERNAL_ERROR, NULL);
    }
    size_t m = 0;
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct gw_header *x = &h->headers[i];
        if (x->name.n < META_PREFIX_LEN ||
            strncasecmp(x->name.p, META_PREFIX, META_PREFIX_LEN) != 0)
            continue;
        size_t j = m++;
        struct gw_str nx = {x->name.p + META_PREFIX_LEN, x->name.n - META_PREFIX_LEN};
        while (j > 0) {
            const struct gw_header *y = &h->headers[order[j - 1]];
            struct gw_str ny = {y->name.p + META_PREFIX_LEN, y->name.n - META_PREFIX_LEN};
            if (name_cmp(ny, nx) <= 0)
                break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }

    struct gw_user_meta_entry *v = (struct gw_user_meta_entry *)(void *)mem;
    char *o = mem + k * sizeof(*v);
    size_t n = 0;
    for (size_t a = 0; a < k;) {
        const struct gw_header *x = &h->headers[order[a]];
        struct gw_str nx = {x->name.p + META_PREFIX_LEN, x->name.n - META_PREFIX_LEN};
        v[n].name = o;
        for (size_t j = 0; j < nx.n; j++)
            *o++ = (char)((nx.p[j] >= 'A' && nx.p[j] <= 'Z') ? nx.p[j] + 32 : nx.p[j]);
        *o++ = '\0';
        v[n].value = o;
        size_t b = a;
        for (; b < k; b++) {
            const struct gw_header *y = &h->headers[order[b]];
            struct gw_str ny = {y->name.p + META_PREFIX_LEN, y->name.n - META_PREFIX_LEN};
            if (name_cmp(nx, ny) != 0)
                break;
            if (b > a)
                *o++ = ',';
            memcpy(o, y->value.p, y->value.n);
            o += y->value.n;
        }
        *o++ = '\0';
        n++;
        a = b;
    }
    free(order);
    out->v = v;
    out->n = n;
    out->total = total;
    out->mem = mem;
    return GW_S3_OK;
}

void gw_user_meta_free(struct gw_user_meta *m)
{
    free(m->mem);
    memset(m, 0, sizeof(*m));
}

/* ---- response header overrides ---- */

static const struct {
    const char *param, *header;
} overrides[] = {
    {"response-content-type", "Content-Type"},
    {"response-content-language", "Content-Language"},
    {"response-expires", "Expires"},
    {"response-cache-control", "Cache-Control"},
    {"response-content-disposition", "Content-Disposition"},
    {"response-content-encoding", "Content-Encoding"},
};

enum gw_s3_error gw_response_overrides(const struct gw_query *q, bool authenticated,
                                       struct gw_overrides *out, struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++) {
        const struct gw_query_param *p = gw_query_find(q, overrides[i].param);
        if (!p)
            continue;
        if (!authenticated) {
            out->n = 0;
            return gw_s3_err_set(err, GW_S3_INVALID_REQUEST,
                                 "Request specific response headers cannot be used for "
                                 "anonymous GET requests.");
        }
        for (size_t j = 0; j < p->value.n; j++)
            if (!field_byte_ok((unsigned char)p->value.p[j])) {
                out->n = 0;
                gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                              "%s must not contain control characters", overrides[i].param);
                gw_s3_err_extra(err, "ArgumentName", "%s", overrides[i].param);
                return GW_S3_INVALID_ARGUMENT;
            }
        out->v[out->n].header = overrides[i].header;
        out->v[out->n].value = p->value;
        out->n++;
    }
    return GW_S3_OK;
}
