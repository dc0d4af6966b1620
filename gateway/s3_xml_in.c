/* Typed decoders for S3 request bodies: CompleteMultipartUpload, Delete,
 * CreateBucketConfiguration. See s3_xml.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/s3_util.h"
#include "gateway/s3_xml.h"

static enum gw_s3_error malformed(struct gw_s3_err *err, const char *what)
{
    return gw_s3_err_set(err, GW_S3_MALFORMED_XML,
                         "The XML you provided was not well-formed or did not validate against "
                         "our published schema: %s",
                         what);
}

static bool xml_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct gw_str trimmed(const struct gw_xml_node *n)
{
    struct gw_str s = {n->text, n->text_len};
    while (s.n && xml_ws(s.p[0]))
        s.p++, s.n--;
    while (s.n && xml_ws(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* A field that may appear once: stores it, or refuses a repeat. */
static bool once(const struct gw_xml_node **slot, const struct gw_xml_node *n)
{
    if (*slot)
        return false;
    *slot = n;
    return true;
}

/* ---- CompleteMultipartUpload ---- */

static const struct gw_xml_limits complete_limits = {
    .max_bytes = GW_XML_COMPLETE_MAX_BODY,
    .max_depth = 4,
    .max_elements = GW_XML_MAX_PARTS * 8 + 16,
    .max_name = 64,
    .max_text = 1024,
    .max_attrs = 8,
};

static const struct {
    const char *name;
    size_t offset;
    size_t bytes; /* decoded digest size */
} checksum_fields[] = {
    {"ChecksumCRC32", offsetof(struct gw_checksums, crc32), 4},
    {"ChecksumCRC32C", offsetof(struct gw_checksums, crc32c), 4},
    {"ChecksumCRC64NVME", offsetof(struct gw_checksums, crc64nvme), 8},
    {"ChecksumSHA1", offsetof(struct gw_checksums, sha1), 20},
    {"ChecksumSHA256", offsetof(struct gw_checksums, sha256), 32},
};
#define N_CHECKSUMS (sizeof(checksum_fields) / sizeof(checksum_fields[0]))

static enum gw_s3_error decode_part(const struct gw_xml_doc *doc, const struct gw_xml_node *part,
                                    struct gw_complete_part *out, struct gw_s3_err *err)
{
    const struct gw_xml_node *num = NULL, *etag = NULL, *sums[N_CHECKSUMS] = {0};
    memset(out, 0, sizeof(*out));
    for (const struct gw_xml_node *c = gw_xml_child(doc, part, NULL); c; c = gw_xml_next(doc, c, NULL)) {
        bool ok = true;
        if (gw_xml_is(c, "PartNumber"))
            ok = once(&num, c);
        else if (gw_xml_is(c, "ETag"))
            ok = once(&etag, c);
        for (size_t k = 0; k < N_CHECKSUMS; k++)
            if (gw_xml_is(c, checksum_fields[k].name))
                ok = once(&sums[k], c);
        if (!ok)
            return malformed(err, "a Part field is given twice");
    }
    if (!num || !etag)
        return malformed(err, "each Part needs a PartNumber and an ETag");
    struct gw_str v = trimmed(num);
    uint32_t x = 0;
    if (v.n == 0 || v.n > 9)
        return malformed(err, "PartNumber is not a number");
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return malformed(err, "PartNumber is not a number");
        x = x * 10 + (uint32_t)(v.p[i] - '0');
    }
    if (x < 1 || x > GW_XML_MAX_PARTS) {
        gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                      "Part number must be an integer between 1 and 10000, inclusive");
        gw_s3_err_extra(err, "ArgumentName", "PartNumber");
        gw_s3_err_extra(err, "ArgumentValue", "%u", (unsigned)x);
        return GW_S3_INVALID_ARGUMENT;
    }
    out->number = x;
    struct gw_str e = trimmed(etag);
    if (e.n >= 2 && e.p[0] == '"' && e.p[e.n - 1] == '"')
        e.p++, e.n -= 2;
    if (e.n == 0)
        return malformed(err, "empty ETag");
    out->etag = e;
    for (size_t k = 0; k < N_CHECKSUMS; k++) {
        if (!sums[k])
            continue;
        struct gw_str s = trimmed(sums[k]);
        unsigned char buf[32];
        size_t got;
        if (gw_base64_decode(s.p, s.n, buf, sizeof(buf), &got) != 0 ||
            got != checksum_fields[k].bytes) {
            gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT, "%s is not a valid base64 checksum",
                          checksum_fields[k].name);
            gw_s3_err_extra(err, "ArgumentName", "%s", checksum_fields[k].name);
            return GW_S3_INVALID_ARGUMENT;
        }
        *(struct gw_str *)(void *)((char *)&out->checksums + checksum_fields[k].offset) = s;
    }
    return GW_S3_OK;
}

enum gw_s3_error gw_xml_parse_complete_upload(const void *body, size_t n,
                                              struct gw_complete_upload *out,
                                              struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    enum gw_s3_error rc = gw_xml_parse(body, n, &complete_limits, &out->doc, err);
    if (rc)
        return rc;
    const struct gw_xml_doc *doc = &out->doc;
    const struct gw_xml_node *root = gw_xml_root(doc);
    size_t count = 0;
    if (!gw_xml_is(root, "CompleteMultipartUpload")) {
        rc = malformed(err, "the root element must be CompleteMultipartUpload");
        goto fail;
    }
    for (const struct gw_xml_node *p = gw_xml_child(doc, root, "Part"); p;
         p = gw_xml_next(doc, p, "Part"))
        count++;
    if (count == 0 || count > GW_XML_MAX_PARTS) {
        rc = malformed(err, count ? "more than 10000 parts" : "no Part");
        goto fail;
    }
    out->parts = calloc(count, sizeof(*out->parts));
    if (!out->parts) {
        rc = gw_s3_err_set(err, GW_S3_INTERNAL_ERROR, NULL);
        goto fail;
    }
    for (const struct gw_xml_node *p = gw_xml_child(doc, root, "Part"); p;
         p = gw_xml_next(doc, p, "Part")) {
        struct gw_complete_part *cp = &out->parts[out->n];
        if ((rc = decode_part(doc, p, cp, err)))
            goto fail;
        if (out->n > 0 && cp->number <= out->parts[out->n - 1].number) {
            rc = gw_s3_err_set(err, GW_S3_INVALID_PART_ORDER,
                               "The list of parts was not in ascending order. The parts list "
                               "must be specified in order by part number.");
            goto fail;
        }
        out->n++;
    }
    return GW_S3_OK;
fail:
    gw_complete_upload_free(out);
    return rc;
}

void gw_complete_upload_free(struct gw_complete_upload *c)
{
    free(c->parts);
    gw_xml_doc_free(&c->doc);
    memset(c, 0, sizeof(*c));
}

/* ---- Delete ---- */

static const struct gw_xml_limits delete_limits = {
    .max_bytes = GW_XML_DELETE_MAX_BODY,
    .max_depth = 4,
    .max_elements = GW_XML_DELETE_MAX_OBJECTS * 6 + 16,
    .max_name = 64,
    .max_text = 8192,
    .max_attrs = 8,
};

static enum gw_s3_error decode_object(const struct gw_xml_doc *doc, const struct gw_xml_node *obj,
                                      struct gw_delete_object *out, struct gw_s3_err *err)
{
    const struct gw_xml_node *key = NULL, *vid = NULL;
    memset(out, 0, sizeof(*out));
    for (const struct gw_xml_node *c = gw_xml_child(doc, obj, NULL); c; c = gw_xml_next(doc, c, NULL)) {
        if (gw_xml_is(c, "Key")) {
            if (!once(&key, c))
                return malformed(err, "an Object has two Keys");
        } else if (gw_xml_is(c, "VersionId")) {
            if (!once(&vid, c))
                return malformed(err, "an Object has two VersionIds");
        } else if (gw_xml_is(c, "ETag") || gw_xml_is(c, "LastModifiedTime") ||
                   gw_xml_is(c, "Size")) {
            return gw_s3_err_set(err, GW_S3_NOT_IMPLEMENTED,
                                 "lode does not implement conditional deletes (%s)", c->name);
        }
    }
    if (!key || key->text_len == 0)
        return malformed(err, "each Object needs a non-empty Key");
    out->key = (struct gw_str){key->text, key->text_len};
    if (out->key.n > GW_KEY_MAX) {
        gw_s3_err_set(err, GW_S3_KEY_TOO_LONG, NULL);
        gw_s3_err_extra(err, "MaxSizeAllowed", "%d", GW_KEY_MAX);
        gw_s3_err_extra(err, "Size", "%zu", out->key.n);
        return GW_S3_KEY_TOO_LONG;
    }
    out->key_error = gw_key_check(out->key.p, out->key.n, NULL);
    if (vid)
        out->version_id = trimmed(vid);
    return GW_S3_OK;
}

enum gw_s3_error gw_xml_parse_delete(const void *body, size_t n, struct gw_delete_request *out,
                                     struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    enum gw_s3_error rc = gw_xml_parse(body, n, &delete_limits, &out->doc, err);
    if (rc)
        return rc;
    const struct gw_xml_doc *doc = &out->doc;
    const struct gw_xml_node *root = gw_xml_root(doc), *quiet = NULL;
    size_t count = 0;
    if (!gw_xml_is(root, "Delete")) {
        rc = malformed(err, "the root element must be Delete");
        goto fail;
    }
    for (const struct gw_xml_node *c = gw_xml_child(doc, root, NULL); c; c = gw_xml_next(doc, c, NULL)) {
        if (gw_xml_is(c, "Object")) {
            count++;
        } else if (gw_xml_is(c, "Quiet") && !once(&quiet, c)) {
            rc = malformed(err, "Quiet is given twice");
            goto fail;
        }
    }
    if (count == 0 || count > GW_XML_DELETE_MAX_OBJECTS) {
        rc = malformed(err, count ? "more than 1000 objects" : "no Object");
        goto fail;
    }
    if (quiet) {
        struct gw_str q = trimmed(quiet);
        if (q.n == 4 && strncasecmp(q.p, "true", 4) == 0)
            out->quiet = true;
        else if (!(q.n == 5 && strncasecmp(q.p, "false", 5) == 0)) {
            rc = malformed(err, "Quiet must be true or false");
            goto fail;
        }
    }
    out->objects = calloc(count, sizeof(*out->objects));
    if (!out->objects) {
        rc = gw_s3_err_set(err, GW_S3_INTERNAL_ERROR, NULL);
        goto fail;
    }
    for (const struct gw_xml_node *o = gw_xml_child(doc, root, "Object"); o;
         o = gw_xml_next(doc, o, "Object")) {
        if ((rc = decode_object(doc, o, &out->objects[out->n], err)))
            goto fail;
        out->n++;
    }
    return GW_S3_OK;
fail:
    gw_delete_request_free(out);
    return rc;
}

void gw_delete_request_free(struct gw_delete_request *d)
{
    free(d->objects);
    gw_xml_doc_free(&d->doc);
    memset(d, 0, sizeof(*d));
}

/* ---- CreateBucketConfiguration ---- */

static const struct gw_xml_limits config_limits = {
    .max_bytes = GW_XML_CONFIG_MAX_BODY,
    .max_depth = 8,
    .max_elements = 256,
    .max_name = 128,
    .max_text = 1024,
    .max_attrs = 8,
};

enum gw_s3_error gw_xml_parse_create_bucket(const void *body, size_t n,
                                            struct gw_create_bucket_conf *out,
                                            struct gw_s3_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *s = body;
    size_t i = 0;
    while (i < n && xml_ws(s[i]))
        i++;
    if (i == n)
        return GW_S3_OK;
    struct gw_xml_doc doc;
    enum gw_s3_error rc = gw_xml_parse(body, n, &config_limits, &doc, err);
    if (rc)
        return rc;
    const struct gw_xml_node *root = gw_xml_root(&doc), *loc = NULL;
    if (!gw_xml_is(root, "CreateBucketConfiguration")) {
        rc = malformed(err, "the root element must be CreateBucketConfiguration");
        goto out;
    }
    for (const struct gw_xml_node *c = gw_xml_child(&doc, root, "LocationConstraint"); c;
         c = gw_xml_next(&doc, c, "LocationConstraint"))
        if (!once(&loc, c)) {
            rc = malformed(err, "LocationConstraint is given twice");
            goto out;
        }
    if (loc) {
        struct gw_str v = trimmed(loc);
        bool ok = v.n < sizeof(out->location) && loc->n_children == 0;
        for (size_t k = 0; ok && k < v.n; k++)
            ok = (v.p[k] >= 'a' && v.p[k] <= 'z') || (v.p[k] >= '0' && v.p[k] <= '9') ||
                 v.p[k] == '-';
        if (!ok) {
            rc = gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                               "The specified location-constraint is not valid");
            gw_s3_err_extra(err, "LocationConstraint", "%.*s", (int)(v.n > 64 ? 64 : v.n), v.p);
            goto out;
        }
        out->has_location = true;
        memcpy(out->location, v.p, v.n);
        out->location[v.n] = '\0';
    }
out:
    gw_xml_doc_free(&doc);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}
