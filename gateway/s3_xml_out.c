/* Builders for S3 response documents. See s3_xml.h. */
#include <string.h>

#include "gateway/s3_xml.h"

static void open_root(struct gw_xml_w *w, const char *name)
{
    static const char *const ns[] = {"xmlns", GW_XML_NS_S3};
    gw_xml_w_decl(w);
    gw_xml_w_open_attrs(w, name, ns, 1);
}

static void elem_str(struct gw_xml_w *w, const char *name, struct gw_str s)
{
    gw_xml_w_elem(w, name, s.p ? s.p : "", s.p ? s.n : 0);
}

static void elem_url(struct gw_xml_w *w, const char *name, struct gw_str s, bool url)
{
    gw_xml_w_elem_url(w, name, s.p ? s.p : "", s.p ? s.n : 0, url);
}

static void owner_elem(struct gw_xml_w *w, const char *name, const struct gw_owner *o)
{
    gw_xml_w_open(w, name);
    gw_xml_w_elem_cstr(w, "ID", o->id);
    gw_xml_w_elem_cstr(w, "DisplayName", o->display_name ? o->display_name : o->id);
    gw_xml_w_close(w);
}

static void checksums(struct gw_xml_w *w, const struct gw_checksums *cs)
{
    if (!cs)
        return;
    if (cs->crc32.p)
        elem_str(w, "ChecksumCRC32", cs->crc32);
    if (cs->crc32c.p)
        elem_str(w, "ChecksumCRC32C", cs->crc32c);
    if (cs->crc64nvme.p)
        elem_str(w, "ChecksumCRC64NVME", cs->crc64nvme);
    if (cs->sha1.p)
        elem_str(w, "ChecksumSHA1", cs->sha1);
    if (cs->sha256.p)
        elem_str(w, "ChecksumSHA256", cs->sha256);
}

static void common_prefixes(struct gw_xml_w *w, const struct gw_str *p, size_t n, bool url)
{
    for (size_t i = 0; i < n; i++) {
        gw_xml_w_open(w, "CommonPrefixes");
        elem_url(w, "Prefix", p[i], url);
        gw_xml_w_close(w);
    }
}

void gw_xml_list_buckets(struct gw_xml_w *w, const struct gw_owner *owner,
                         const struct gw_bucket_entry *b, size_t n)
{
    open_root(w, "ListAllMyBucketsResult");
    owner_elem(w, "Owner", owner);
    gw_xml_w_open(w, "Buckets");
    for (size_t i = 0; i < n; i++) {
        gw_xml_w_open(w, "Bucket");
        gw_xml_w_elem_cstr(w, "Name", b[i].name);
        gw_xml_w_elem_time(w, "CreationDate", b[i].created_ms);
        gw_xml_w_close(w);
    }
    gw_xml_w_close(w);
    gw_xml_w_close(w);
}

void gw_xml_list_objects(struct gw_xml_w *w, const struct gw_list_params *p,
                         const struct gw_list_result *r)
{
    bool url = p->url_encode, v2 = r->kind == GW_LIST_V2, versions = r->kind == GW_LIST_VERSIONS;
    open_root(w, versions ? "ListVersionsResult" : "ListBucketResult");
    gw_xml_w_elem_cstr(w, "Name", r->bucket);
    elem_url(w, "Prefix", p->prefix, url);
    if (r->kind == GW_LIST_V1) {
        elem_url(w, "Marker", p->marker, url);
    } else if (v2) {
        if (p->continuation_token.n)
            elem_str(w, "ContinuationToken", p->continuation_token);
        if (r->truncated && r->next_continuation_token.n)
            elem_str(w, "NextContinuationToken", r->next_continuation_token);
        if (p->start_after.n)
            elem_url(w, "StartAfter", p->start_after, url);
        gw_xml_w_elem_u64(w, "KeyCount", r->n_entries + r->n_prefixes);
    } else {
        elem_url(w, "KeyMarker", p->key_marker, url);
        elem_str(w, "VersionIdMarker", p->version_id_marker);
        if (r->truncated && r->next_marker.n) {
            elem_url(w, "NextKeyMarker", r->next_marker, url);
            gw_xml_w_elem_cstr(w, "NextVersionIdMarker", "null");
        }
    }
    gw_xml_w_elem_u64(w, "MaxKeys", p->max);
    if (p->has_delimiter)
        elem_url(w, "Delimiter", p->delimiter, url);
    gw_xml_w_elem_bool(w, "IsTruncated", r->truncated);
    if (r->kind == GW_LIST_V1 && r->truncated && r->next_marker.n)
        elem_url(w, "NextMarker", r->next_marker, url);
    if (url)
        gw_xml_w_elem_cstr(w, "EncodingType", "url");
    for (size_t i = 0; i < r->n_entries; i++) {
        const struct gw_list_entry *e = &r->entries[i];
        gw_xml_w_open(w, versions ? "Version" : "Contents");
        elem_url(w, "Key", e->key, url);
        if (versions) {
            gw_xml_w_elem_cstr(w, "VersionId", "null");
            gw_xml_w_elem_bool(w, "IsLatest", true);
        }
        gw_xml_w_elem_time(w, "LastModified", e->mtime_ms);
        gw_xml_w_elem_etag(w, "ETag", e->etag.p ? e->etag.p : "", e->etag.p ? e->etag.n : 0);
        gw_xml_w_elem_u64(w, "Size", e->size);
        if (e->owner && (!v2 || p->fetch_owner))
            owner_elem(w, "Owner", e->owner);
        gw_xml_w_elem_cstr(w, "StorageClass", e->storage_class ? e->storage_class : "STANDARD");
        gw_xml_w_close(w);
    }
    common_prefixes(w, r->prefixes, r->n_prefixes, url);
    gw_xml_w_close(w);
}

void gw_xml_list_uploads(struct gw_xml_w *w, const struct gw_list_params *p,
                         const struct gw_uploads_result *r)
{
    bool url = p->url_encode;
    open_root(w, "ListMultipartUploadsResult");
    gw_xml_w_elem_cstr(w, "Bucket", r->bucket);
    elem_url(w, "KeyMarker", p->key_marker, url);
    elem_str(w, "UploadIdMarker", p->upload_id_marker);
    if (r->truncated) {
        elem_url(w, "NextKeyMarker", r->next_key_marker, url);
        elem_str(w, "NextUploadIdMarker", r->next_upload_id_marker);
    }
    if (p->prefix.n)
        elem_url(w, "Prefix", p->prefix, url);
    if (p->has_delimiter)
        elem_url(w, "Delimiter", p->delimiter, url);
    gw_xml_w_elem_u64(w, "MaxUploads", p->max);
    gw_xml_w_elem_bool(w, "IsTruncated", r->truncated);
    if (url)
        gw_xml_w_elem_cstr(w, "EncodingType", "url");
    for (size_t i = 0; i < r->n_entries; i++) {
        const struct gw_upload_entry *e = &r->entries[i];
        gw_xml_w_open(w, "Upload");
        elem_url(w, "Key", e->key, url);
        elem_str(w, "UploadId", e->upload_id);
        if (e->owner) {
            owner_elem(w, "Initiator", e->owner);
            owner_elem(w, "Owner", e->owner);
        }
        gw_xml_w_elem_cstr(w, "StorageClass", e->storage_class ? e->storage_class : "STANDARD");
        gw_xml_w_elem_time(w, "Initiated", e->initiated_ms);
        gw_xml_w_close(w);
    }
    common_prefixes(w, r->prefixes, r->n_prefixes, url);
    gw_xml_w_close(w);
}

void gw_xml_list_parts(struct gw_xml_w *w, const struct gw_list_params *p,
                       const struct gw_parts_result *r)
{
    open_root(w, "ListPartsResult");
    gw_xml_w_elem_cstr(w, "Bucket", r->bucket);
    elem_str(w, "Key", r->key);
    elem_str(w, "UploadId", r->upload_id);
    if (r->owner) {
        owner_elem(w, "Initiator", r->owner);
        owner_elem(w, "Owner", r->owner);
    }
    gw_xml_w_elem_cstr(w, "StorageClass", r->storage_class ? r->storage_class : "STANDARD");
    gw_xml_w_elem_u64(w, "PartNumberMarker", p->part_number_marker);
    if (r->truncated)
        gw_xml_w_elem_u64(w, "NextPartNumberMarker", r->next_part_number_marker);
    gw_xml_w_elem_u64(w, "MaxParts", p->max);
    gw_xml_w_elem_bool(w, "IsTruncated", r->truncated);
    if (r->checksum_algorithm)
        gw_xml_w_elem_cstr(w, "ChecksumAlgorithm", r->checksum_algorithm);
    for (size_t i = 0; i < r->n_entries; i++) {
        const struct gw_part_entry *e = &r->entries[i];
        gw_xml_w_open(w, "Part");
        gw_xml_w_elem_u64(w, "PartNumber", e->number);
        gw_xml_w_elem_time(w, "LastModified", e->mtime_ms);
        gw_xml_w_elem_etag(w, "ETag", e->etag.p ? e->etag.p : "", e->etag.p ? e->etag.n : 0);
        gw_xml_w_elem_u64(w, "Size", e->size);
        checksums(w, &e->checksums);
        gw_xml_w_close(w);
    }
    gw_xml_w_close(w);
}

void gw_xml_initiate_upload(struct gw_xml_w *w, const char *bucket, struct gw_str key,
                            struct gw_str upload_id)
{
    open_root(w, "InitiateMultipartUploadResult");
    gw_xml_w_elem_cstr(w, "Bucket", bucket);
    elem_str(w, "Key", key);
    elem_str(w, "UploadId", upload_id);
    gw_xml_w_close(w);
}

void gw_xml_complete_upload_result(struct gw_xml_w *w, const char *location, const char *bucket,
                                   struct gw_str key, struct gw_str etag,
                                   const struct gw_checksums *cs, const char *checksum_type)
{
    open_root(w, "CompleteMultipartUploadResult");
    gw_xml_w_elem_cstr(w, "Location", location);
    gw_xml_w_elem_cstr(w, "Bucket", bucket);
    elem_str(w, "Key", key);
    gw_xml_w_elem_etag(w, "ETag", etag.p ? etag.p : "", etag.p ? etag.n : 0);
    checksums(w, cs);
    if (checksum_type)
        gw_xml_w_elem_cstr(w, "ChecksumType", checksum_type);
    gw_xml_w_close(w);
}

void gw_xml_copy_result(struct gw_xml_w *w, bool part, struct gw_str etag, int64_t mtime_ms,
                        const struct gw_checksums *cs)
{
    open_root(w, part ? "CopyPartResult" : "CopyObjectResult");
    gw_xml_w_elem_etag(w, "ETag", etag.p ? etag.p : "", etag.p ? etag.n : 0);
    gw_xml_w_elem_time(w, "LastModified", mtime_ms);
    checksums(w, cs);
    gw_xml_w_close(w);
}

void gw_xml_delete_result(struct gw_xml_w *w, const struct gw_delete_outcome *o, size_t n,
                          bool quiet)
{
    open_root(w, "DeleteResult");
    for (size_t i = 0; i < n; i++) {
        if (o[i].error == GW_S3_OK && quiet)
            continue;
        gw_xml_w_open(w, o[i].error == GW_S3_OK ? "Deleted" : "Error");
        elem_str(w, "Key", o[i].key);
        if (o[i].version_id.p)
            elem_str(w, "VersionId", o[i].version_id);
        if (o[i].error != GW_S3_OK) {
            gw_xml_w_elem_cstr(w, "Code", gw_s3_error_code(o[i].error));
            gw_xml_w_elem_cstr(w, "Message",
                               o[i].message ? o[i].message : gw_s3_error_message(o[i].error));
        }
        gw_xml_w_close(w);
    }
    gw_xml_w_close(w);
}

void gw_xml_location(struct gw_xml_w *w, const char *region)
{
    open_root(w, "LocationConstraint");
    if (region && strcmp(region, "us-east-1") != 0)
        gw_xml_w_text(w, region, strlen(region));
    gw_xml_w_close(w);
}

void gw_xml_acl(struct gw_xml_w *w, const struct gw_owner *owner)
{
    static const char *const grantee[] = {"xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance",
                                          "xsi:type", "CanonicalUser"};
    open_root(w, "AccessControlPolicy");
    owner_elem(w, "Owner", owner);
    gw_xml_w_open(w, "AccessControlList");
    gw_xml_w_open(w, "Grant");
    gw_xml_w_open_attrs(w, "Grantee", grantee, 2);
    gw_xml_w_elem_cstr(w, "ID", owner->id);
    gw_xml_w_elem_cstr(w, "DisplayName", owner->display_name ? owner->display_name : owner->id);
    gw_xml_w_close(w);
    gw_xml_w_elem_cstr(w, "Permission", "FULL_CONTROL");
    gw_xml_w_close(w);
    gw_xml_w_close(w);
    gw_xml_w_close(w);
}

void gw_xml_versioning(struct gw_xml_w *w)
{
    open_root(w, "VersioningConfiguration");
    gw_xml_w_close(w);
}

void gw_xml_empty_tagging(struct gw_xml_w *w)
{
    open_root(w, "Tagging");
    gw_xml_w_open(w, "TagSet");
    gw_xml_w_close(w);
    gw_xml_w_close(w);
}

enum gw_s3_error gw_xml_subresource(struct gw_xml_w *w, enum gw_subresource sub,
                                   struct gw_s3_err *err)
{
    switch (sub) {
    case GW_SUB_POLICY:
    case GW_SUB_POLICY_STATUS:
        return gw_s3_err_set(err, GW_S3_NO_SUCH_POLICY, NULL);
    case GW_SUB_LIFECYCLE:
        return gw_s3_err_set(err, GW_S3_NO_SUCH_LIFECYCLE, NULL);
    case GW_SUB_CORS:
        return gw_s3_err_set(err, GW_S3_NO_SUCH_CORS, NULL);
    case GW_SUB_ENCRYPTION:
        return gw_s3_err_set(err, GW_S3_NO_SUCH_ENCRYPTION, NULL);
    case GW_SUB_TAGGING:
        return gw_s3_err_set(err, GW_S3_NO_SUCH_TAG_SET, NULL);
    case GW_SUB_LOGGING:
        open_root(w, "BucketLoggingStatus");
        gw_xml_w_close(w);
        return GW_S3_OK;
    case GW_SUB_NOTIFICATION:
        open_root(w, "NotificationConfiguration");
        gw_xml_w_close(w);
        return GW_S3_OK;
    case GW_SUB_REQUEST_PAYMENT:
        open_root(w, "RequestPaymentConfiguration");
        gw_xml_w_elem_cstr(w, "Payer", "BucketOwner");
        gw_xml_w_close(w);
        return GW_S3_OK;
    case GW_SUB_ACCELERATE:
        open_root(w, "AccelerateConfiguration");
        gw_xml_w_close(w);
        return GW_S3_OK;
    case GW_SUB_OWNERSHIP_CONTROLS:
        open_root(w, "OwnershipControls");
        gw_xml_w_open(w, "Rule");
        gw_xml_w_elem_cstr(w, "ObjectOwnership", "BucketOwnerEnforced");
        gw_xml_w_close(w);
        gw_xml_w_close(w);
        return GW_S3_OK;
    case GW_SUB_PUBLIC_ACCESS_BLOCK:
        open_root(w, "PublicAccessBlockConfiguration");
        gw_xml_w_elem_bool(w, "BlockPublicAcls", true);
        gw_xml_w_elem_bool(w, "IgnorePublicAcls", true);
        gw_xml_w_elem_bool(w, "BlockPublicPolicy", true);
        gw_xml_w_elem_bool(w, "RestrictPublicBuckets", true);
        gw_xml_w_close(w);
        return GW_S3_OK;
    default:
        return gw_s3_err_set(err, GW_S3_NOT_IMPLEMENTED,
                             "lode does not implement bucket %s configurations",
                             gw_subresource_name(sub));
    }
}
