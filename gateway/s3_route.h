/* S3 request routing, I/O-free: from the request line and headers to the operation, the
 * bucket, the key and the parameters, or a clear S3 error.
 *
 * Addressing: virtual-hosted style when the Host header (port dropped, case ignored) is
 * "<bucket>.<base domain>" for one of the configured base domains; path style otherwise
 * ("/<bucket>/<key>"), including for IP-literal hosts, unknown hosts and a Host equal to a base
 * domain. The key is everything after the bucket's '/', percent-decoded once; '+' is a plus
 * (S3 paths are not form-encoded).
 *
 * Names: bucket names follow S3's rules (3-63 characters of a-z 0-9 . -, starting and ending
 * with a letter or digit, no "..", not an IPv4 address, no reserved prefix xn-- sthree-
 * amzn-s3-demo- or suffix -s3alias --ol-s3 .mrap --x-s3 --table-s3). Keys are 1-1024 bytes
 * of valid UTF-8; lode refuses, where S3 would not:
 *   - C0 control characters (U+0000-U+001F) and DEL, because they cannot travel in XML
 *     listings without encoding-type=url, and NUL cannot be stored (keys are C strings);
 *   - U+FFFE and U+FFFF, which XML 1.0 cannot carry either;
 *   - a path segment (between '/' or the ends) equal to "." or "..", because tools that map
 *     keys to file names (sync clients, FUSE mounts, tar-like exports) would resolve them
 *     outside the intended directory; empty segments ("a//b", a leading or trailing '/') are
 *     allowed, as in S3.
 * The same rules apply to the copy source.
 */
#ifndef LODE_GATEWAY_S3_ROUTE_H
#define LODE_GATEWAY_S3_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gw_types.h"
#include "gateway/s3_errdoc.h"
#include "gateway/s3_util.h"

#define GW_BUCKET_NAME_MAX 63
#define GW_KEY_MAX 1024
#define GW_PART_NUMBER_MAX 10000
/* Longest request target the router accepts (path and query, raw). Presigned URLs with a
 * session token and response overrides stay far below. */
#define GW_TARGET_MAX 16384

#define GW_S3_OP_MAP(X)                                                                    \
    X(NONE, "None")                                                                        \
    X(LIST_BUCKETS, "ListBuckets")                                                         \
    X(CREATE_BUCKET, "CreateBucket")                                                       \
    X(DELETE_BUCKET, "DeleteBucket")                                                       \
    X(HEAD_BUCKET, "HeadBucket")                                                           \
    X(GET_BUCKET_LOCATION, "GetBucketLocation")                                            \
    X(GET_BUCKET_VERSIONING, "GetBucketVersioning")                                        \
    X(GET_BUCKET_ACL, "GetBucketAcl")                                                      \
    X(PUT_BUCKET_ACL, "PutBucketAcl")                                                      \
    X(LIST_OBJECTS, "ListObjects")                                                         \
    X(LIST_OBJECTS_V2, "ListObjectsV2")                                                    \
    X(LIST_OBJECT_VERSIONS, "ListObjectVersions")                                          \
    X(LIST_MULTIPART_UPLOADS, "ListMultipartUploads")                                      \
    X(DELETE_OBJECTS, "DeleteObjects")                                                     \
    X(GET_BUCKET_SUBRESOURCE, "GetBucketSubresource")                                      \
    X(DELETE_BUCKET_SUBRESOURCE, "DeleteBucketSubresource")                                \
    X(PUT_OBJECT, "PutObject")                                                             \
    X(COPY_OBJECT, "CopyObject")                                                           \
    X(GET_OBJECT, "GetObject")                                                             \
    X(HEAD_OBJECT, "HeadObject")                                                           \
    X(DELETE_OBJECT, "DeleteObject")                                                       \
    X(GET_OBJECT_ACL, "GetObjectAcl")                                                      \
    X(PUT_OBJECT_ACL, "PutObjectAcl")                                                      \
    X(GET_OBJECT_TAGGING, "GetObjectTagging")                                              \
    X(DELETE_OBJECT_TAGGING, "DeleteObjectTagging")                                        \
    X(CREATE_MULTIPART_UPLOAD, "CreateMultipartUpload")                                    \
    X(UPLOAD_PART, "UploadPart")                                                           \
    X(UPLOAD_PART_COPY, "UploadPartCopy")                                                  \
    X(COMPLETE_MULTIPART_UPLOAD, "CompleteMultipartUpload")                                \
    X(ABORT_MULTIPART_UPLOAD, "AbortMultipartUpload")                                      \
    X(LIST_PARTS, "ListParts")                                                             \
    X(LODE_SESSION, "LodeSession") /* POST /?x-lode-session: a fan-out data session */

enum gw_s3_op {
#define GW_S3_OP_ENUM(e, name) GW_OP_##e,
    GW_S3_OP_MAP(GW_S3_OP_ENUM)
#undef GW_S3_OP_ENUM
    GW_OP_COUNT
};

/* The operation's S3 name ("GetObject"), for logs and metrics labels. Static. */
const char *gw_s3_op_name(enum gw_s3_op op);

/* Bucket sub-resources that clients probe. lode stores none of these configurations; how each
 * is answered (on GET, once the bucket is known to exist) is gw_subresource_answer's table in
 * s3_xml.h. PUT on any of them is GW_S3_NOT_IMPLEMENTED; DELETE is a no-op 204 (there is
 * never anything to delete). */
#define GW_SUBRESOURCE_MAP(X)                                                              \
    X(NONE, "")                                                                            \
    X(POLICY, "policy")                                                                    \
    X(POLICY_STATUS, "policyStatus")                                                       \
    X(LIFECYCLE, "lifecycle")                                                              \
    X(CORS, "cors")                                                                        \
    X(ENCRYPTION, "encryption")                                                            \
    X(TAGGING, "tagging")                                                                  \
    X(OBJECT_LOCK, "object-lock")                                                          \
    X(WEBSITE, "website")                                                                  \
    X(LOGGING, "logging")                                                                  \
    X(NOTIFICATION, "notification")                                                        \
    X(REPLICATION, "replication")                                                          \
    X(REQUEST_PAYMENT, "requestPayment")                                                   \
    X(OWNERSHIP_CONTROLS, "ownershipControls")                                             \
    X(PUBLIC_ACCESS_BLOCK, "publicAccessBlock")                                            \
    X(ACCELERATE, "accelerate")                                                            \
    X(ANALYTICS, "analytics")                                                              \
    X(METRICS, "metrics")                                                                  \
    X(INVENTORY, "inventory")                                                              \
    X(INTELLIGENT_TIERING, "intelligent-tiering")

enum gw_subresource {
#define GW_SUBRESOURCE_ENUM(e, q) GW_SUB_##e,
    GW_SUBRESOURCE_MAP(GW_SUBRESOURCE_ENUM)
#undef GW_SUBRESOURCE_ENUM
    GW_SUB_COUNT
};

/* The query parameter name of a sub-resource ("cors"); "" for GW_SUB_NONE. Static. */
const char *gw_subresource_name(enum gw_subresource sub);

/* x-amz-copy-source, parsed. */
struct gw_copy_source {
    char bucket[GW_BUCKET_NAME_MAX + 1];
    char *key;        /* decoded, NUL-terminated, validated like a request key */
    size_t key_len;
    char *version_id; /* decoded, NUL-terminated; NULL when absent */
    char *mem;        /* owned */
};

/* Parses "[/]bucket/key[?versionId=id]" with the key percent-encoded ('+' stays a plus).
 * GW_S3_INVALID_ARGUMENT (ArgumentName x-amz-copy-source) for a missing bucket or key,
 * malformed encoding, another parameter than versionId, an access point ARN (not supported)
 * or an invalid bucket name; key errors as for request keys (GW_S3_KEY_TOO_LONG,
 * GW_S3_INVALID_ARGUMENT). On success free with gw_copy_source_free; on failure *out is empty. */
enum gw_s3_error gw_copy_source_parse(struct gw_str value, struct gw_copy_source *out,
                                      struct gw_s3_err *err);

void gw_copy_source_free(struct gw_copy_source *cs);

/* Whether a bucket name follows the rules above. GW_S3_INVALID_BUCKET_NAME with the rule
 * broken as message and a BucketName extra. */
enum gw_s3_error gw_bucket_name_check(const char *name, size_t n, struct gw_s3_err *err);

/* Whether a decoded key is acceptable to lode (rules above): GW_S3_OK, GW_S3_KEY_TOO_LONG
 * (over GW_KEY_MAX bytes; S3's KeyTooLongError), GW_S3_INVALID_ARGUMENT for an empty key, a
 * control character, U+FFFE/U+FFFF or a "."/".." segment, GW_S3_INVALID_URI for invalid
 * UTF-8. */
enum gw_s3_error gw_key_check(const char *key, size_t n, struct gw_s3_err *err);

/* The gateway's addressing configuration (a NULL config means path style only). */
struct gw_route_config {
    const char *const *base_domains; /* e.g. {"s3.example.com"}; lower-case, no port */
    size_t n_base_domains;
};

struct gw_route {
    enum gw_s3_op op;
    enum gw_subresource sub; /* for GW_OP_GET/DELETE_BUCKET_SUBRESOURCE */
    bool virtual_host;       /* the bucket came from the Host header */
    char bucket[GW_BUCKET_NAME_MAX + 1]; /* "" for ListBuckets */
    char *key;               /* decoded, NUL-terminated; NULL for bucket-level operations */
    size_t key_len;
    struct gw_query query;   /* decoded query parameters */
    uint32_t part_number;    /* partNumber (1..10000) when given, else 0 */
    struct gw_str upload_id; /* uploadId when given (borrowed from query), else empty */
    bool has_copy_source;
    struct gw_copy_source copy_source; /* CopyObject and UploadPartCopy */
    bool replace_metadata;   /* CopyObject: x-amz-metadata-directive: REPLACE */
    char *mem;               /* owned: the key */
};

/* Routes one request. Validates what the router can know without meta:
 *  - method: GET HEAD PUT POST DELETE; others GW_S3_METHOD_NOT_ALLOWED (OPTIONS, i.e. CORS
 *    preflight, GW_S3_NOT_IMPLEMENTED);
 *  - target: starts with '/', at most GW_TARGET_MAX bytes, valid percent-encoding
 *    (GW_S3_INVALID_URI); query as gw_query_parse;
 *  - bucket name and key as above;
 *  - the combination of method, bucket/key and sub-resource parameters; combinations S3 does
 *    not have are GW_S3_METHOD_NOT_ALLOWED (e.g. POST on an object without ?uploads or
 *    ?uploadId) and known S3 features lode lacks are GW_S3_NOT_IMPLEMENTED (e.g. ?torrent,
 *    ?select, ?restore, PUT ?policy, x-amz-grant-* headers);
 *  - partNumber (1..10000, GW_S3_INVALID_ARGUMENT), uploadId (printable ASCII, at most 256
 *    bytes, else GW_S3_NO_SUCH_UPLOAD), partNumber with a Range header
 *    (GW_S3_INVALID_REQUEST), list-type other than 2 (GW_S3_INVALID_ARGUMENT);
 *  - x-amz-copy-source (see gw_copy_source_parse), x-amz-metadata-directive (COPY or
 *    REPLACE), a copy onto itself without REPLACE (GW_S3_INVALID_REQUEST, as S3);
 *  - x-amz-acl: a canned ACL name (accepted, with private semantics), else
 *    GW_S3_INVALID_ARGUMENT; x-amz-storage-class: STANDARD or REDUCED_REDUNDANCY (both stored
 *    with lode's one durability), else GW_S3_INVALID_STORAGE_CLASS.
 * Returns GW_S3_OK with *out filled, or an error with `err` set. Either way *out must be
 * released with gw_route_free; after a failure it still holds what was parsed before (the
 * bucket, for the error document). Pointers in *out borrow nothing from h except where said. */
enum gw_s3_error gw_route_request(const struct gw_route_config *cfg, const struct gw_request_head *h,
                                  struct gw_route *out, struct gw_s3_err *err);

void gw_route_free(struct gw_route *r);

/* Listing parameters, decoded and checked, for ListObjects (v1, v2), ListObjectVersions,
 * ListMultipartUploads and ListParts. Strings borrow from the route's query. */
struct gw_list_params {
    struct gw_str prefix, delimiter;
    struct gw_str marker;             /* v1 */
    struct gw_str continuation_token; /* v2 (opaque to the router) */
    struct gw_str start_after;        /* v2 */
    struct gw_str key_marker;         /* versions, uploads */
    struct gw_str version_id_marker;  /* versions */
    struct gw_str upload_id_marker;   /* uploads */
    uint32_t max;                     /* max-keys / max-uploads / max-parts: 0..1000 */
    uint32_t part_number_marker;      /* ListParts */
    bool url_encode;                  /* encoding-type=url */
    bool fetch_owner;                 /* v2 */
    bool has_delimiter;
};

/* Reads the parameters of r->op (one of the listing operations above). max defaults to 1000
 * and larger values are capped at 1000 (as S3 does); a negative or non-numeric max, an
 * encoding-type other than "url", a fetch-owner other than true/false, a part-number-marker
 * that is not a number, or a prefix/delimiter/marker that is not valid UTF-8 or holds a NUL
 * give GW_S3_INVALID_ARGUMENT (with ArgumentName/ArgumentValue). */
enum gw_s3_error gw_list_params_parse(const struct gw_route *r, struct gw_list_params *out,
                                      struct gw_s3_err *err);

#endif
