/* S3 request routing: addressing, names, operations, copy source and listing parameters.
 * See s3_route.h for the rules and why lode refuses what it refuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/s3_route.h"

static const char *const op_names[GW_OP_COUNT] = {
#define GW_S3_OP_NAME(e, name) [GW_OP_##e] = name,
    GW_S3_OP_MAP(GW_S3_OP_NAME)
#undef GW_S3_OP_NAME
};

static const char *const sub_names[GW_SUB_COUNT] = {
#define GW_SUB_NAME(e, q) [GW_SUB_##e] = q,
    GW_SUBRESOURCE_MAP(GW_SUB_NAME)
#undef GW_SUB_NAME
};

const char *gw_s3_op_name(enum gw_s3_op op)
{
    return (unsigned)op < GW_OP_COUNT ? op_names[op] : "Unknown";
}

const char *gw_subresource_name(enum gw_subresource sub)
{
    return (unsigned)sub < GW_SUB_COUNT ? sub_names[sub] : "";
}

/* Shortens what a client sent for an error message: at most 200 bytes. */
#define CLIP(n) ((int)((n) > 200 ? 200 : (n)))

/* ---- names ---- */

static bool lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool looks_like_ipv4(const char *s, size_t n)
{
    unsigned parts = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (digits == 0)
                return false;
            parts++;
            digits = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            if (++digits > 3)
                return false;
        } else {
            return false;
        }
    }
    return digits > 0 && parts == 3;
}

static bool has_prefix(const char *s, size_t n, const char *pre)
{
    size_t l = strlen(pre);
    return n >= l && memcmp(s, pre, l) == 0;
}

static bool has_suffix(const char *s, size_t n, const char *suf)
{
    size_t l = strlen(suf);
    return n >= l && memcmp(s + n - l, suf, l) == 0;
}

static const char *bucket_problem(const char *s, size_t n)
{
    static const char *const prefixes[] = {"xn--", "sthree-", "amzn-s3-demo-"};
    static const char *const suffixes[] = {"-s3alias", "--ol-s3", ".mrap", "--x-s3",
                                           "--table-s3"};
    if (n < 3 || n > GW_BUCKET_NAME_MAX)
        return "Bucket names must be between 3 and 63 characters long";
    for (size_t i = 0; i < n; i++)
        if (!lower_alnum(s[i]) && s[i] != '.' && s[i] != '-')
            return "Bucket names can consist only of lowercase letters, numbers, periods and "
                   "hyphens";
    if (!lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
        return "Bucket names must begin and end with a letter or number";
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '.' && s[i + 1] == '.')
            return "Bucket names must not contain two adjacent periods";
    if (looks_like_ipv4(s, n))
        return "Bucket names must not be formatted as an IP address";
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (has_prefix(s, n, prefixes[i]))
            return "Bucket names must not start with a reserved prefix";
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
        if (has_suffix(s, n, suffixes[i]))
            return "Bucket names must not end with a reserved suffix";
    return NULL;
}

enum gw_s3_error gw_bucket_name_check(const char *name, size_t n, struct gw_s3_err *err)
{
    const char *why = bucket_problem(name, n);
    if (!why)
        return GW_S3_OK;
    gw_s3_err_set(err, GW_S3_INVALID_BUCKET_NAME, "%s", why);
    gw_s3_err_extra(err, "BucketName", "%.*s", CLIP(n), name);
    return GW_S3_INVALID_BUCKET_NAME;
}

enum gw_s3_error gw_key_check(const char *key, size_t n, struct gw_s3_err *err)
{
    if (n == 0)
        return gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT, "The object key must not be empty");
    if (n > GW_KEY_MAX) {
        gw_s3_err_set(err, GW_S3_KEY_TOO_LONG, NULL);
        gw_s3_err_extra(err, "MaxSizeAllowed", "%d", GW_KEY_MAX);
        gw_s3_err_extra(err, "Size", "%zu", n);
        return GW_S3_KEY_TOO_LONG;
    }
    const unsigned char *p = (const unsigned char *)key;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = gw_utf8_decode(p + i, n - i, &cp);
        if (l == 0)
            return gw_s3_err_set(err, GW_S3_INVALID_URI, "The object key is not valid UTF-8");
        if (cp < 0x20 || cp == 0x7f)
            return gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                                 "Object keys must not contain control characters (U+%04X)",
                                 (unsigned)cp);
        if (cp == 0xfffe || cp == 0xffff)
            return gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                                 "Object keys must not contain U+%04X", (unsigned)cp);
        i += l;
    }
    for (size_t s = 0; s <= n;) {
        const char *slash = memchr(key + s, '/', n - s);
        size_t e = slash ? (size_t)(slash - key) : n;
        if ((e - s == 1 && key[s] == '.') || (e - s == 2 && key[s] == '.' && key[s + 1] == '.'))
            return gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                                 "Object keys must not contain a '.' or '..' path segment");
        s = e + 1;
    }
    return GW_S3_OK;
}

/* ---- copy source ---- */

static enum gw_s3_error copy_source_fail(struct gw_s3_err *err, struct gw_str v, const char *msg)
{
    gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT, "%s", msg);
    gw_s3_err_extra(err, "ArgumentName", "x-amz-copy-source");
    gw_s3_err_extra(err, "ArgumentValue", "%.*s", CLIP(v.n), v.p);
    return GW_S3_INVALID_ARGUMENT;
}

enum gw_s3_error gw_copy_source_parse(struct gw_str value, struct gw_copy_source *out,
                                      struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    if (value.n >= 4 && strncasecmp(value.p, "arn:", 4) == 0)
        return copy_source_fail(err, value, "Access point ARNs are not supported as copy sources");
    const char *q = memchr(value.p, '?', value.n);
    size_t path_n = q ? (size_t)(q - value.p) : value.n;
    char *mem = malloc(value.n + 2);
    if (!mem)
        return gw_s3_err_set(err, GW_S3_INTERNAL_ERROR, NULL);
    const char *raw = value.p;
    if (path_n && raw[0] == '/')
        raw++, path_n--;
    ssize_t dl = gw_pct_decode(raw, path_n, mem, false);
    if (dl < 0) {
        free(mem);
        return copy_source_fail(err, value, "The copy source is not correctly URL-encoded");
    }
    mem[dl] = '\0';
    char *slash = memchr(mem, '/', (size_t)dl);
    if (!slash || slash == mem || slash + 1 == mem + dl) {
        free(mem);
        return copy_source_fail(err, value, "Copy Source must mention the source bucket and key: "
                                            "sourcebucket/sourcekey");
    }
    size_t bn = (size_t)(slash - mem);
    if (bucket_problem(mem, bn)) {
        free(mem);
        return copy_source_fail(err, value, "The copy source bucket name is not valid");
    }
    memcpy(out->bucket, mem, bn);
    out->bucket[bn] = '\0';
    out->key = slash + 1;
    out->key_len = (size_t)dl - bn - 1;
    enum gw_s3_error rc = gw_key_check(out->key, out->key_len, err);
    if (rc != GW_S3_OK) {
        free(mem);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    if (q) {
        struct gw_str qs = {q + 1, (size_t)(value.p + value.n - (q + 1))};
        static const char vid[] = "versionId=";
        char *v = mem + dl + 1;
        ssize_t vl;
        if (qs.n < sizeof(vid) - 1 || memcmp(qs.p, vid, sizeof(vid) - 1) != 0 ||
            (vl = gw_pct_decode(qs.p + sizeof(vid) - 1, qs.n - (sizeof(vid) - 1), v, true)) <= 0 ||
            memchr(v, '\0', (size_t)vl) || memchr(v, '&', (size_t)vl) || !gw_utf8_valid(v, (size_t)vl)) {
            free(mem);
            memset(out, 0, sizeof(*out));
            return copy_source_fail(err, value,
                                    "The copy source may carry only a versionId parameter");
        }
        v[vl] = '\0';
        out->version_id = v;
    }
    out->mem = mem;
    return GW_S3_OK;
}

void gw_copy_source_free(struct gw_copy_source *cs)
{
    free(cs->mem);
    memset(cs, 0, sizeof(*cs));
}

/* ---- routing ---- */

static bool has(const struct gw_route *r, const char *name)
{
    return gw_query_find(&r->query, name) != NULL;
}

static enum gw_subresource find_sub(const struct gw_route *r)
{
    for (int s = GW_SUB_NONE + 1; s < GW_SUB_COUNT; s++)
        if (has(r, sub_names[s]))
            return (enum gw_subresource)s;
    return GW_SUB_NONE;
}

static const char *first_of(const struct gw_route *r, const char *const *names)
{
    for (; *names; names++)
        if (has(r, *names))
            return *names;
    return NULL;
}

static enum gw_s3_error not_implemented(struct gw_s3_err *err, const char *what)
{
    return gw_s3_err_set(err, GW_S3_NOT_IMPLEMENTED, "lode does not implement %s", what);
}

/* Bucket name from a virtual-hosted Host header, or false for path style. */
static bool host_bucket(const struct gw_route_config *cfg, const struct gw_request_head *h,
                        char *bucket, size_t *bn, bool *too_long)
{
    const struct gw_header *hh = gw_header_find(h, "host");
    *too_long = false;
    if (!hh || !cfg || hh->value.n == 0 || hh->value.p[0] == '[')
        return false; /* no Host, or an IPv6 literal */
    struct gw_str host = hh->value;
    const char *colon = memchr(host.p, ':', host.n);
    if (colon)
        host.n = (size_t)(colon - host.p);
    if (host.n && host.p[host.n - 1] == '.')
        host.n--; /* a fully qualified name */
    for (size_t d = 0; d < cfg->n_base_domains; d++) {
        const char *dom = cfg->base_domains[d];
        size_t dl = strlen(dom);
        if (dl == 0 || host.n <= dl + 1)
            continue;
        if (strncasecmp(host.p + host.n - dl, dom, dl) != 0 || host.p[host.n - dl - 1] != '.')
            continue;
        size_t n = host.n - dl - 1;
        if (n > GW_BUCKET_NAME_MAX) {
            *too_long = true;
            n = GW_BUCKET_NAME_MAX;
        }
        for (size_t i = 0; i < n; i++) {
            char c = host.p[i];
            bucket[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        bucket[n] = '\0';
        *bn = n;
        return true;
    }
    return false;
}

static const char *const canned_acls[] = {"private",
                                          "public-read",
                                          "public-read-write",
                                          "authenticated-read",
                                          "aws-exec-read",
                                          "bucket-owner-read",
                                          "bucket-owner-full-control",
                                          "log-delivery-write",
                                          NULL};

/* Headers that create or change an ACL or a storage class: accepted when lode can honour
 * them truthfully, refused otherwise. */
static enum gw_s3_error check_write_headers(const struct gw_request_head *h, enum gw_s3_op op,
                                            struct gw_s3_err *err)
{
    bool acl_op = op == GW_OP_PUT_OBJECT || op == GW_OP_COPY_OBJECT ||
                  op == GW_OP_CREATE_MULTIPART_UPLOAD || op == GW_OP_CREATE_BUCKET ||
                  op == GW_OP_PUT_BUCKET_ACL || op == GW_OP_PUT_OBJECT_ACL;
    if (acl_op) {
        const struct gw_header *a = gw_header_find(h, "x-amz-acl");
        if (a) {
            bool known = false;
            for (const char *const *c = canned_acls; *c && !known; c++)
                known = gw_str_eq(a->value, *c);
            if (!known) {
                gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT, "Unknown canned ACL");
                gw_s3_err_extra(err, "ArgumentName", "x-amz-acl");
                gw_s3_err_extra(err, "ArgumentValue", "%.*s", CLIP(a->value.n), a->value.p);
                return GW_S3_INVALID_ARGUMENT;
            }
        }
        for (size_t i = 0; i < h->n_headers; i++)
            if (h->headers[i].name.n > 12 && strncasecmp(h->headers[i].name.p, "x-amz-grant-", 12) == 0)
                return not_implemented(err, "ACL grants (only canned ACLs, with private "
                                            "semantics)");
    }
    if (op == GW_OP_PUT_OBJECT || op == GW_OP_COPY_OBJECT || op == GW_OP_CREATE_MULTIPART_UPLOAD) {
        const struct gw_header *sc = gw_header_find(h, "x-amz-storage-class");
        if (sc && !gw_str_eq(sc->value, "STANDARD") && !gw_str_eq(sc->value, "REDUCED_REDUNDANCY")) {
            gw_s3_err_set(err, GW_S3_INVALID_STORAGE_CLASS,
                          "lode stores every object in the STANDARD storage class");
            gw_s3_err_extra(err, "StorageClassRequested", "%.*s", CLIP(sc->value.n), sc->value.p);
            return GW_S3_INVALID_STORAGE_CLASS;
        }
    }
    return GW_S3_OK;
}

static enum gw_s3_error parse_part_number(struct gw_route *r, struct gw_s3_err *err)
{
    const struct gw_query_param *p = gw_query_find(&r->query, "partNumber");
    if (!p)
        return GW_S3_OK;
    uint32_t v = 0;
    bool ok = p->value.n > 0 && p->value.n <= 5;
    for (size_t i = 0; ok && i < p->value.n; i++) {
        ok = p->value.p[i] >= '0' && p->value.p[i] <= '9';
        v = v * 10 + (uint32_t)(p->value.p[i] - '0');
    }
    if (!ok || v < 1 || v > GW_PART_NUMBER_MAX) {
        gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                      "Part number must be an integer between 1 and 10000, inclusive");
        gw_s3_err_extra(err, "ArgumentName", "partNumber");
        gw_s3_err_extra(err, "ArgumentValue", "%.*s", CLIP(p->value.n), p->value.p);
        return GW_S3_INVALID_ARGUMENT;
    }
    r->part_number = v;
    return GW_S3_OK;
}

static enum gw_s3_error parse_upload_id(struct gw_route *r, struct gw_s3_err *err)
{
    const struct gw_query_param *p = gw_query_find(&r->query, "uploadId");
    if (!p)
        return GW_S3_OK;
    bool ok = p->value.n > 0 && p->value.n <= 256;
    for (size_t i = 0; ok && i < p->value.n; i++)
        ok = p->value.p[i] > 0x20 && p->value.p[i] < 0x7f;
    if (!ok) {
        gw_s3_err_set(err, GW_S3_NO_SUCH_UPLOAD, NULL);
        gw_s3_err_extra(err, "UploadId", "%.*s", CLIP(p->value.n), p->value.p);
        return GW_S3_NO_SUCH_UPLOAD;
    }
    r->upload_id = p->value;
    return GW_S3_OK;
}

static enum gw_s3_error route_bucket(struct gw_route *r, const struct gw_request_head *h,
                                     struct gw_s3_err *err)
{
    static const char *const names_ni[] = {"torrent", "select", "restore", "uploadId", NULL};
    enum gw_subresource sub = find_sub(r);
    struct gw_str m = h->method;
    if (gw_str_eq(m, "HEAD")) {
        r->op = GW_OP_HEAD_BUCKET;
    } else if (gw_str_eq(m, "GET")) {
        const struct gw_query_param *lt = gw_query_find(&r->query, "list-type");
        if (has(r, "location"))
            r->op = GW_OP_GET_BUCKET_LOCATION;
        else if (has(r, "versioning"))
            r->op = GW_OP_GET_BUCKET_VERSIONING;
        else if (has(r, "acl"))
            r->op = GW_OP_GET_BUCKET_ACL;
        else if (has(r, "uploads"))
            r->op = GW_OP_LIST_MULTIPART_UPLOADS;
        else if (has(r, "versions"))
            r->op = GW_OP_LIST_OBJECT_VERSIONS;
        else if (sub != GW_SUB_NONE)
            r->op = GW_OP_GET_BUCKET_SUBRESOURCE, r->sub = sub;
        else if (first_of(r, names_ni))
            return not_implemented(err, "this bucket sub-resource");
        else if (lt && !gw_str_eq(lt->value, "2")) {
            gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT, "Invalid list type");
            gw_s3_err_extra(err, "ArgumentName", "list-type");
            gw_s3_err_extra(err, "ArgumentValue", "%.*s", CLIP(lt->value.n), lt->value.p);
            return GW_S3_INVALID_ARGUMENT;
        } else
            r->op = lt ? GW_OP_LIST_OBJECTS_V2 : GW_OP_LIST_OBJECTS;
    } else if (gw_str_eq(m, "PUT")) {
        if (has(r, "acl"))
            r->op = GW_OP_PUT_BUCKET_ACL;
        else if (has(r, "versioning"))
            return not_implemented(err, "bucket versioning");
        else if (sub != GW_SUB_NONE)
            return gw_s3_err_set(err, GW_S3_NOT_IMPLEMENTED,
                                 "lode does not implement bucket %s configurations",
                                 sub_names[sub]);
        else if (first_of(r, names_ni) || has(r, "location") || has(r, "uploads") ||
                 has(r, "versions"))
            return gw_s3_err_set(err, GW_S3_METHOD_NOT_ALLOWED, NULL);
        else
            r->op = GW_OP_CREATE_BUCKET;
    } else if (gw_str_eq(m, "DELETE")) {
        if (sub != GW_SUB_NONE)
            r->op = GW_OP_DELETE_BUCKET_SUBRESOURCE, r->sub = sub;
        else if (has(r, "acl") || has(r, "location") || has(r, "versioning") ||
                 has(r, "uploads") || has(r, "versions") || first_of(r, names_ni))
            return gw_s3_err_set(err, GW_S3_METHOD_NOT_ALLOWED, NULL);
        else
            r->op = GW_OP_DELETE_BUCKET;
    } else { /* POST */
        if (has(r, "delete"))
            r->op = GW_OP_DELETE_OBJECTS;
        else
            return not_implemented(err, "POST uploads from browser forms");
    }
    return GW_S3_OK;
}

static enum gw_s3_error route_object(struct gw_route *r, const struct gw_request_head *h,
                                     struct gw_s3_err *err)
{
    static const char *const get_ni[] = {"torrent", "attributes", "retention", "legal-hold",
                                         NULL};
    static const char *const put_ni[] = {"tagging", "retention", "legal-hold", NULL};
    struct gw_str m = h->method;
    enum gw_s3_error rc;
    if ((rc = parse_upload_id(r, err)) || (rc = parse_part_number(r, err)))
        return rc;
    const struct gw_header *cs = gw_header_find(h, "x-amz-copy-source");
    if (gw_str_eq(m, "GET") || gw_str_eq(m, "HEAD")) {
        bool get = gw_str_eq(m, "GET");
        if (get && has(r, "uploadId"))
            r->op = GW_OP_LIST_PARTS;
        else if (get && has(r, "acl"))
            r->op = GW_OP_GET_OBJECT_ACL;
        else if (get && has(r, "tagging"))
            r->op = GW_OP_GET_OBJECT_TAGGING;
        else if (get && first_of(r, get_ni))
            return not_implemented(err, "this object sub-resource");
        else
            r->op = get ? GW_OP_GET_OBJECT : GW_OP_HEAD_OBJECT;
        if ((r->op == GW_OP_GET_OBJECT || r->op == GW_OP_HEAD_OBJECT) && r->part_number &&
            gw_header_find(h, "range"))
            return gw_s3_err_set(err, GW_S3_INVALID_REQUEST,
                                 "Cannot specify both Range header and partNumber query "
                                 "parameter");
    } else if (gw_str_eq(m, "PUT")) {
        if (has(r, "acl")) {
            r->op = GW_OP_PUT_OBJECT_ACL;
        } else if (first_of(r, put_ni)) {
            return not_implemented(err, "this object sub-resource");
        } else if (has(r, "uploadId") || has(r, "partNumber")) {
            if (!has(r, "uploadId") || !has(r, "partNumber"))
                return gw_s3_err_set(err, GW_S3_INVALID_REQUEST,
                                     "UploadPart needs both partNumber and uploadId");
            r->op = cs ? GW_OP_UPLOAD_PART_COPY : GW_OP_UPLOAD_PART;
        } else {
            r->op = cs ? GW_OP_COPY_OBJECT : GW_OP_PUT_OBJECT;
        }
    } else if (gw_str_eq(m, "DELETE")) {
        if (has(r, "uploadId"))
            r->op = GW_OP_ABORT_MULTIPART_UPLOAD;
        else if (has(r, "tagging"))
            r->op = GW_OP_DELETE_OBJECT_TAGGING;
        else
            r->op = GW_OP_DELETE_OBJECT;
    } else { /* POST */
        if (has(r, "uploads"))
            r->op = GW_OP_CREATE_MULTIPART_UPLOAD;
        else if (has(r, "uploadId"))
            r->op = GW_OP_COMPLETE_MULTIPART_UPLOAD;
        else if (has(r, "restore") || has(r, "select"))
            return not_implemented(err, "object restore and select");
        else
            return gw_s3_err_set(err, GW_S3_METHOD_NOT_ALLOWED, NULL);
    }

    if (r->op == GW_OP_COPY_OBJECT || r->op == GW_OP_UPLOAD_PART_COPY) {
        if ((rc = gw_copy_source_parse(cs->value, &r->copy_source, err)))
            return rc;
        r->has_copy_source = true;
    }
    if (r->op == GW_OP_COPY_OBJECT) {
        const struct gw_header *md = gw_header_find(h, "x-amz-metadata-directive");
        if (md && !gw_str_eq(md->value, "COPY") && !gw_str_eq(md->value, "REPLACE")) {
            gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT, "Unknown metadata directive.");
            gw_s3_err_extra(err, "ArgumentName", "x-amz-metadata-directive");
            gw_s3_err_extra(err, "ArgumentValue", "%.*s", CLIP(md->value.n), md->value.p);
            return GW_S3_INVALID_ARGUMENT;
        }
        r->replace_metadata = md && gw_str_eq(md->value, "REPLACE");
        const struct gw_copy_source *c = &r->copy_source;
        if (!r->replace_metadata && !c->version_id && strcmp(c->bucket, r->bucket) == 0 &&
            c->key_len == r->key_len && memcmp(c->key, r->key, r->key_len) == 0 &&
            !gw_header_find(h, "x-amz-storage-class") &&
            !gw_header_find(h, "x-amz-website-redirect-location") &&
            !gw_header_find(h, "x-amz-server-side-encryption"))
            return gw_s3_err_set(err, GW_S3_INVALID_REQUEST,
                                 "This copy request is illegal because it is trying to copy an "
                                 "object to itself without changing the object's metadata, "
                                 "storage class, website redirect location or encryption "
                                 "attributes.");
    }
    return GW_S3_OK;
}

enum gw_s3_error gw_route_request(const struct gw_route_config *cfg,
                                  const struct gw_request_head *h, struct gw_route *out,
                                  struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    struct gw_str m = h->method;
    if (gw_str_eq(m, "OPTIONS"))
        return not_implemented(err, "CORS");
    if (!gw_str_eq(m, "GET") && !gw_str_eq(m, "HEAD") && !gw_str_eq(m, "PUT") &&
        !gw_str_eq(m, "POST") && !gw_str_eq(m, "DELETE"))
        return gw_s3_err_set(err, GW_S3_METHOD_NOT_ALLOWED, NULL);
    if (h->path.n + h->query.n > GW_TARGET_MAX)
        return gw_s3_err_set(err, GW_S3_INVALID_URI, "The request target is longer than %d bytes",
                             GW_TARGET_MAX);
    if (h->path.n == 0 || h->path.p[0] != '/')
        return gw_s3_err_set(err, GW_S3_INVALID_URI, "The request path must start with '/'");
    enum gw_s3_error rc = gw_query_parse(h->query, &out->query, err);
    if (rc)
        return rc;

    /* Split the path into bucket and raw key. */
    struct gw_str rest = {h->path.p + 1, h->path.n - 1};
    size_t bn = 0;
    bool too_long;
    bool has_key;
    out->virtual_host = host_bucket(cfg, h, out->bucket, &bn, &too_long);
    if (out->virtual_host) {
        if (too_long) {
            out->bucket[0] = '\0';
            return gw_s3_err_set(err, GW_S3_INVALID_BUCKET_NAME,
                                 "Bucket names must be between 3 and 63 characters long");
        }
        has_key = rest.n > 0;
    } else {
        const char *slash = memchr(rest.p, '/', rest.n);
        struct gw_str braw = {rest.p, slash ? (size_t)(slash - rest.p) : rest.n};
        char tmp[3 * GW_BUCKET_NAME_MAX + 3];
        ssize_t dl = braw.n < sizeof(tmp) ? gw_pct_decode(braw.p, braw.n, tmp, false) : -2;
        if (dl == -1)
            return gw_s3_err_set(err, GW_S3_INVALID_URI, "Malformed percent-encoding in the "
                                                         "request path");
        if (dl == -2 || dl > GW_BUCKET_NAME_MAX) {
            gw_s3_err_set(err, GW_S3_INVALID_BUCKET_NAME,
                          "Bucket names must be between 3 and 63 characters long");
            gw_s3_err_extra(err, "BucketName", "%.*s", CLIP(braw.n), braw.p);
            return GW_S3_INVALID_BUCKET_NAME;
        }
        memcpy(out->bucket, tmp, (size_t)dl);
        out->bucket[dl] = '\0';
        bn = (size_t)dl;
        rest = slash ? (struct gw_str){slash + 1, rest.n - braw.n - 1} : (struct gw_str){"", 0};
        has_key = rest.n > 0;
        if (bn == 0 && !slash) { /* "/": the service */
            if (gw_str_eq(m, "POST") && gw_query_find(&out->query, "x-lode-session")) {
                out->op = GW_OP_LODE_SESSION;
                return GW_S3_OK;
            }
            if (!gw_str_eq(m, "GET"))
                return gw_s3_err_set(err, GW_S3_METHOD_NOT_ALLOWED, NULL);
            out->op = GW_OP_LIST_BUCKETS;
            return GW_S3_OK;
        }
    }
    if ((rc = gw_bucket_name_check(out->bucket, bn, err))) {
        out->bucket[0] = '\0'; /* not a bucket: the error document must not name it as one */
        return rc;
    }

    if (has_key) {
        out->mem = malloc(rest.n + 1);
        if (!out->mem)
            return gw_s3_err_set(err, GW_S3_INTERNAL_ERROR, NULL);
        ssize_t kl = gw_pct_decode(rest.p, rest.n, out->mem, false);
        if (kl < 0)
            return gw_s3_err_set(err, GW_S3_INVALID_URI, "Malformed percent-encoding in the "
                                                         "object key");
        out->mem[kl] = '\0';
        if ((rc = gw_key_check(out->mem, (size_t)kl, err))) {
            gw_s3_err_extra(err, "BucketName", "%s", out->bucket);
            return rc;
        }
        out->key = out->mem;
        out->key_len = (size_t)kl;
        rc = route_object(out, h, err);
    } else {
        rc = route_bucket(out, h, err);
    }
    if (rc == GW_S3_OK)
        rc = check_write_headers(h, out->op, err);
    return rc;
}

void gw_route_free(struct gw_route *r)
{
    gw_query_free(&r->query);
    gw_copy_source_free(&r->copy_source);
    free(r->mem);
    memset(r, 0, sizeof(*r));
}

/* ---- listing parameters ---- */

static enum gw_s3_error arg_fail(struct gw_s3_err *err, const char *name, struct gw_str v,
                                 const char *msg)
{
    gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT, "%s", msg);
    gw_s3_err_extra(err, "ArgumentName", "%s", name);
    gw_s3_err_extra(err, "ArgumentValue", "%.*s", CLIP(v.n), v.p);
    return GW_S3_INVALID_ARGUMENT;
}

static enum gw_s3_error text_param(const struct gw_route *r, const char *name, struct gw_str *out,
                                   struct gw_s3_err *err)
{
    const struct gw_query_param *p = gw_query_find(&r->query, name);
    *out = (struct gw_str){"", 0};
    if (!p)
        return GW_S3_OK;
    if (memchr(p->value.p, '\0', p->value.n) || !gw_utf8_valid(p->value.p, p->value.n))
        return arg_fail(err, name, p->value, "The value must be valid UTF-8 without NUL");
    *out = p->value;
    return GW_S3_OK;
}

static enum gw_s3_error uint_param(const struct gw_route *r, const char *name, uint32_t dflt,
                                   uint32_t cap, uint32_t *out, struct gw_s3_err *err)
{
    const struct gw_query_param *p = gw_query_find(&r->query, name);
    *out = dflt;
    if (!p)
        return GW_S3_OK;
    uint64_t v = 0;
    if (p->value.n == 0)
        return arg_fail(err, name, p->value, "Provided value is not a valid integer");
    for (size_t i = 0; i < p->value.n; i++) {
        char c = p->value.p[i];
        if (c == '-' && i == 0)
            return arg_fail(err, name, p->value, "Argument must not be negative");
        if (c < '0' || c > '9')
            return arg_fail(err, name, p->value, "Provided value is not a valid integer");
        if (v < UINT32_MAX)
            v = v * 10 + (uint64_t)(c - '0');
    }
    *out = v > cap ? cap : (uint32_t)v;
    return GW_S3_OK;
}

enum gw_s3_error gw_list_params_parse(const struct gw_route *r, struct gw_list_params *out,
                                      struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    enum gw_s3_error rc;
    const char *max_name;
    switch (r->op) {
    case GW_OP_LIST_OBJECTS:
    case GW_OP_LIST_OBJECTS_V2:
    case GW_OP_LIST_OBJECT_VERSIONS:
        max_name = "max-keys";
        break;
    case GW_OP_LIST_MULTIPART_UPLOADS:
        max_name = "max-uploads";
        break;
    case GW_OP_LIST_PARTS:
        max_name = "max-parts";
        break;
    default:
        return gw_s3_err_set(err, GW_S3_INTERNAL_ERROR, "not a listing operation");
    }
    if ((rc = uint_param(r, max_name, 1000, 1000, &out->max, err)))
        return rc;
    if (r->op == GW_OP_LIST_PARTS)
        return uint_param(r, "part-number-marker", 0, UINT32_MAX, &out->part_number_marker, err);

    if ((rc = text_param(r, "prefix", &out->prefix, err)) ||
        (rc = text_param(r, "delimiter", &out->delimiter, err)))
        return rc;
    out->has_delimiter = out->delimiter.n > 0;
    switch (r->op) {
    case GW_OP_LIST_OBJECTS:
        rc = text_param(r, "marker", &out->marker, err);
        break;
    case GW_OP_LIST_OBJECTS_V2:
        if ((rc = text_param(r, "continuation-token", &out->continuation_token, err)) ||
            (rc = text_param(r, "start-after", &out->start_after, err)))
            return rc;
        {
            const struct gw_query_param *fo = gw_query_find(&r->query, "fetch-owner");
            if (fo && !gw_str_ieq(fo->value, "true") && !gw_str_ieq(fo->value, "false"))
                return arg_fail(err, "fetch-owner", fo->value, "Invalid fetch-owner value");
            out->fetch_owner = fo && gw_str_ieq(fo->value, "true");
        }
        break;
    case GW_OP_LIST_OBJECT_VERSIONS:
        if ((rc = text_param(r, "key-marker", &out->key_marker, err)))
            return rc;
        rc = text_param(r, "version-id-marker", &out->version_id_marker, err);
        break;
    default: /* uploads */
        if ((rc = text_param(r, "key-marker", &out->key_marker, err)))
            return rc;
        rc = text_param(r, "upload-id-marker", &out->upload_id_marker, err);
        break;
    }
    if (rc)
        return rc;
    const struct gw_query_param *et = gw_query_find(&r->query, "encoding-type");
    if (et && !gw_str_eq(et->value, "url"))
        return arg_fail(err, "encoding-type", et->value,
                        "Invalid Encoding Method specified in Request");
    out->url_encode = et != NULL;
    return GW_S3_OK;
}
