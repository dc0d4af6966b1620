/* S3 XML documents: typed decoders for the request bodies S3 takes, and builders for the
 * response documents, over gateway/xml.h.
 *
 * Decoders parse a whole body (the caller reads it, bounded by the GW_XML_*_MAX_BODY below,
 * which the decoders enforce again) into plain structs whose strings point into the parsed
 * document they keep; the caller frees the struct. Unknown elements inside known ones are
 * ignored, so newer clients that add optional fields keep working, except where ignoring
 * would change what the request does (conditional deletes, below).
 *
 * Builders take plain C structs that the handlers fill from meta's answers and write the
 * whole document (XML declaration included) into a struct gw_xml_w the caller initialised
 * with a size cap. They report nothing: writer errors are sticky, and gw_xml_w_finish returns
 * the first one.
 */
#ifndef LODE_GATEWAY_S3_XML_H
#define LODE_GATEWAY_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gw_types.h"
#include "gateway/s3_errdoc.h"
#include "gateway/s3_route.h"
#include "gateway/xml.h"

/* Body limits. CompleteMultipartUpload: 10000 parts, each with an ETag and up to five
 * checksums, stay under 4 MiB; twice that leaves room for whitespace. DeleteObjects: 1000 keys
 * of up to 1024 bytes with their markup exceed S3's documented 1 MiB, so lode allows 2 MiB
 * rather than refuse a legal request. Configuration bodies are small. */
#define GW_XML_COMPLETE_MAX_BODY (8u << 20)
#define GW_XML_DELETE_MAX_BODY (2u << 20)
#define GW_XML_CONFIG_MAX_BODY (64u << 10)
#define GW_XML_DELETE_MAX_OBJECTS 1000
#define GW_XML_MAX_PARTS 10000

/* Base64 checksums as S3 carries them; p == NULL when absent. */
struct gw_checksums {
    struct gw_str crc32, crc32c, crc64nvme, sha1, sha256;
};

/* ---- CompleteMultipartUpload ---- */

struct gw_complete_part {
    uint32_t number;               /* 1..10000 */
    struct gw_str etag;            /* without quotes or surrounding whitespace; non-empty */
    struct gw_checksums checksums; /* each, when present, valid base64 of the right size */
};

struct gw_complete_upload {
    struct gw_complete_part *parts; /* strictly ascending part numbers */
    size_t n;                       /* 1..10000 */
    struct gw_xml_doc doc;          /* owns the strings */
};

/* Decodes <CompleteMultipartUpload><Part><PartNumber/><ETag/>[<ChecksumCRC32/>...]</Part>...
 * Refuses with GW_S3_MALFORMED_XML: a body that is not well-formed or over
 * GW_XML_COMPLETE_MAX_BODY, another root, no Part, more than 10000, a Part without PartNumber
 * or ETag or with one of them twice, a PartNumber that is not a decimal number; with
 * GW_S3_INVALID_ARGUMENT a PartNumber outside 1..10000 or a checksum that is not base64 of its
 * algorithm's size; with GW_S3_INVALID_PART_ORDER part numbers that do not strictly ascend
 * (S3 refuses repeats the same way). On success free with gw_complete_upload_free; on failure
 * *out is empty. */
enum gw_s3_error gw_xml_parse_complete_upload(const void *body, size_t n,
                                              struct gw_complete_upload *out,
                                              struct gw_s3_err *err);

void gw_complete_upload_free(struct gw_complete_upload *c);

/* ---- DeleteObjects ---- */

struct gw_delete_object {
    struct gw_str key;        /* exactly as sent (no trimming), 1..1024 bytes, NUL-terminated */
    struct gw_str version_id; /* p == NULL when absent */
    /* GW_S3_OK, or why lode could never have stored this key (gw_key_check: a control
     * character, a "."/".." segment...). Such a key names no object, so the handler may
     * answer it as Deleted (S3 reports deleting a missing key as success) without asking
     * meta. */
    enum gw_s3_error key_error;
};

struct gw_delete_request {
    struct gw_delete_object *objects; /* in request order */
    size_t n;                         /* 1..1000 */
    bool quiet;
    struct gw_xml_doc doc;
};

/* Decodes <Delete>[<Quiet>true|false</Quiet>]<Object><Key/>[<VersionId/>]</Object>...</Delete>.
 * Refuses with GW_S3_MALFORMED_XML: not well-formed or over GW_XML_DELETE_MAX_BODY, another
 * root, no Object or more than 1000, an Object without a Key, an empty Key, a repeated Key or
 * VersionId, a Quiet other than true/false; with GW_S3_KEY_TOO_LONG a key over 1024 bytes;
 * with GW_S3_NOT_IMPLEMENTED an Object carrying ETag, LastModifiedTime or Size (conditional
 * deletes: ignoring the condition would delete what the client meant to keep). On success
 * free with gw_delete_request_free; on failure *out is empty. */
enum gw_s3_error gw_xml_parse_delete(const void *body, size_t n, struct gw_delete_request *out,
                                     struct gw_s3_err *err);

void gw_delete_request_free(struct gw_delete_request *d);

/* ---- CreateBucketConfiguration ---- */

struct gw_create_bucket_conf {
    bool has_location;
    char location[64]; /* LocationConstraint, trimmed; "" when absent or empty */
};

/* Decodes an optional <CreateBucketConfiguration><LocationConstraint>region</...>. An empty
 * or whitespace-only body means no configuration. GW_S3_MALFORMED_XML for a body that is not
 * well-formed, over GW_XML_CONFIG_MAX_BODY, or with another root; GW_S3_INVALID_ARGUMENT for a
 * location longer than 63 characters or with others than a-z 0-9 '-' (an empty one is the
 * default region, as S3 reads it). The caller compares the location with
 * its region. No allocation survives the call. */
enum gw_s3_error gw_xml_parse_create_bucket(const void *body, size_t n,
                                            struct gw_create_bucket_conf *out,
                                            struct gw_s3_err *err);

/* ---- builders ---- */

struct gw_owner {
    const char *id;           /* canonical user id */
    const char *display_name; /* NULL: the id */
};

struct gw_bucket_entry {
    const char *name;
    int64_t created_ms;
};

/* ListAllMyBucketsResult: Owner, then Buckets/Bucket (Name, CreationDate). */
void gw_xml_list_buckets(struct gw_xml_w *w, const struct gw_owner *owner,
                         const struct gw_bucket_entry *b, size_t n);

struct gw_list_entry {
    struct gw_str key;
    uint64_t size;
    struct gw_str etag;        /* with or without quotes */
    int64_t mtime_ms;
    const char *storage_class; /* NULL: STANDARD */
    const struct gw_owner *owner; /* NULL: no Owner element */
};

enum gw_list_kind {
    GW_LIST_V1,       /* ListBucketResult, marker based */
    GW_LIST_V2,       /* ListBucketResult, continuation tokens, KeyCount */
    GW_LIST_VERSIONS, /* ListVersionsResult: every object as its only, latest, "null" version */
};

struct gw_list_result {
    enum gw_list_kind kind;
    const char *bucket;
    bool truncated;
    struct gw_str next_marker;             /* V1 (NextMarker), VERSIONS (NextKeyMarker) */
    struct gw_str next_continuation_token; /* V2 */
    const struct gw_list_entry *entries;
    size_t n_entries;
    const struct gw_str *prefixes; /* CommonPrefixes */
    size_t n_prefixes;
};

/* The listing document for the request's parameters `p` (gw_list_params_parse). With
 * p->url_encode, Key, Prefix, Delimiter, Marker, NextMarker, StartAfter, KeyMarker and
 * NextKeyMarker are URL-encoded and EncodingType is "url". V2 writes Owner only with
 * p->fetch_owner. NextMarker / NextContinuationToken / NextKeyMarker are written only when
 * truncated and non-empty. */
void gw_xml_list_objects(struct gw_xml_w *w, const struct gw_list_params *p,
                         const struct gw_list_result *r);

struct gw_upload_entry {
    struct gw_str key, upload_id;
    int64_t initiated_ms;
    const struct gw_owner *owner; /* Initiator and Owner; NULL: neither */
    const char *storage_class;    /* NULL: STANDARD */
};

struct gw_uploads_result {
    const char *bucket;
    bool truncated;
    struct gw_str next_key_marker, next_upload_id_marker;
    const struct gw_upload_entry *entries;
    size_t n_entries;
    const struct gw_str *prefixes;
    size_t n_prefixes;
};

/* ListMultipartUploadsResult. */
void gw_xml_list_uploads(struct gw_xml_w *w, const struct gw_list_params *p,
                         const struct gw_uploads_result *r);

struct gw_part_entry {
    uint32_t number;
    int64_t mtime_ms;
    struct gw_str etag;
    uint64_t size;
    struct gw_checksums checksums;
};

struct gw_parts_result {
    const char *bucket;
    struct gw_str key, upload_id;
    const struct gw_owner *owner; /* Initiator and Owner */
    const char *storage_class;    /* NULL: STANDARD */
    const char *checksum_algorithm; /* NULL: none written */
    bool truncated;
    uint32_t next_part_number_marker;
    const struct gw_part_entry *entries;
    size_t n_entries;
};

/* ListPartsResult. */
void gw_xml_list_parts(struct gw_xml_w *w, const struct gw_list_params *p,
                       const struct gw_parts_result *r);

/* InitiateMultipartUploadResult: Bucket, Key, UploadId. */
void gw_xml_initiate_upload(struct gw_xml_w *w, const char *bucket, struct gw_str key,
                            struct gw_str upload_id);

/* CompleteMultipartUploadResult: Location, Bucket, Key, ETag, checksums (those present),
 * ChecksumType when non-NULL ("COMPOSITE" or "FULL_OBJECT"). */
void gw_xml_complete_upload_result(struct gw_xml_w *w, const char *location, const char *bucket,
                                   struct gw_str key, struct gw_str etag,
                                   const struct gw_checksums *cs, const char *checksum_type);

/* CopyObjectResult (part == false) or CopyPartResult: ETag, LastModified, checksums. */
void gw_xml_copy_result(struct gw_xml_w *w, bool part, struct gw_str etag, int64_t mtime_ms,
                        const struct gw_checksums *cs);

struct gw_delete_outcome {
    struct gw_str key;
    struct gw_str version_id; /* p == NULL: not written */
    enum gw_s3_error error;   /* GW_S3_OK: Deleted; else an Error entry */
    const char *message;      /* NULL: the code's default message */
};

/* DeleteResult: a Deleted entry per success (left out when quiet, as S3 does) and an Error
 * entry (Key, VersionId, Code, Message) per failure, in the order given. */
void gw_xml_delete_result(struct gw_xml_w *w, const struct gw_delete_outcome *o, size_t n,
                          bool quiet);

/* LocationConstraint: the region, or an empty element for "us-east-1" (S3's convention for
 * the default region) or NULL. */
void gw_xml_location(struct gw_xml_w *w, const char *region);

/* AccessControlPolicy: the owner with FULL_CONTROL, the only grant lode has. */
void gw_xml_acl(struct gw_xml_w *w, const struct gw_owner *owner);

/* VersioningConfiguration without Status: versioning was never enabled. */
void gw_xml_versioning(struct gw_xml_w *w);

/* Tagging with an empty TagSet (GetObjectTagging; lode stores no tags). */
void gw_xml_empty_tagging(struct gw_xml_w *w);

/* The answer to GET on a bucket sub-resource, once the bucket is known to exist:
 *  - a document (returns GW_S3_OK, written to w): logging (BucketLoggingStatus, disabled),
 *    notification (empty), requestPayment (BucketOwner), accelerate (never enabled),
 *    ownershipControls (BucketOwnerEnforced: ACLs play no part), publicAccessBlock (all four
 *    blocks on: lode never serves anonymous requests);
 *  - the S3 "not configured" error (returns it, set in err): policy and policyStatus
 *    (NoSuchBucketPolicy), lifecycle, cors, encryption, tagging (NoSuchTagSet);
 *  - GW_S3_NOT_IMPLEMENTED for the rest (object-lock, website, replication, analytics,
 *    metrics, inventory, intelligent-tiering), whose S3 "not found" codes are not in
 *    s3_error.h. */
enum gw_s3_error gw_xml_subresource(struct gw_xml_w *w, enum gw_subresource sub,
                                   struct gw_s3_err *err);

#endif
