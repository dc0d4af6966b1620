/* The S3 error codes lode answers with: X(ENUM, "Code", HTTP status, "default message").
 * Every module that refuses a request names one of these; gateway/s3_error.c renders the XML
 * error document (Code, Message, Resource, RequestId) and maps lode error codes
 * (<lode/errno.h>) to them. Codes and statuses are those of Amazon S3, so clients react as
 * they do against it (retry on 500/503, re-sign on RequestTimeTooSkewed, ...). The one code
 * S3 lacks, XLodeStorageFull, follows the x-vendor convention with status 507. */
#ifndef LODE_GATEWAY_S3_ERROR_H
#define LODE_GATEWAY_S3_ERROR_H

#define GW_S3_ERROR_MAP(X)                                                                  \
    X(OK, "", 200, "")                                                                     \
    X(ACCESS_DENIED, "AccessDenied", 403, "Access Denied.")                                \
    X(AUTH_HEADER_MALFORMED, "AuthorizationHeaderMalformed", 400,                          \
      "The authorization header is malformed.")                                            \
    X(AUTH_QUERY_ERROR, "AuthorizationQueryParametersError", 400,                          \
      "Error parsing the X-Amz-Credential parameter.")                                     \
    X(BAD_DIGEST, "BadDigest", 400,                                                        \
      "The Content-MD5 or checksum you specified did not match what we received.")         \
    X(BUCKET_ALREADY_EXISTS, "BucketAlreadyExists", 409,                                   \
      "The requested bucket name is not available.")                                       \
    X(BUCKET_ALREADY_OWNED, "BucketAlreadyOwnedByYou", 409,                                \
      "Your previous request to create the named bucket succeeded and you already own it.") \
    X(BUCKET_NOT_EMPTY, "BucketNotEmpty", 409, "The bucket you tried to delete is not empty.") \
    X(CONDITIONAL_CONFLICT, "ConditionalRequestConflict", 409,                             \
      "A conflicting operation occurred. Retry the request.")                              \
    X(ENTITY_TOO_LARGE, "EntityTooLarge", 400,                                             \
      "Your proposed upload exceeds the maximum allowed size.")                            \
    X(ENTITY_TOO_SMALL, "EntityTooSmall", 400,                                             \
      "Your proposed upload is smaller than the minimum allowed object size.")             \
    X(EXPIRED_TOKEN, "ExpiredToken", 400, "The provided token has expired.")               \
    X(INCOMPLETE_BODY, "IncompleteBody", 400,                                              \
      "You did not provide the number of bytes specified by the Content-Length HTTP header.") \
    X(INTERNAL_ERROR, "InternalError", 500,                                                \
      "We encountered an internal error. Please try again.")                               \
    X(INVALID_ACCESS_KEY_ID, "InvalidAccessKeyId", 403,                                    \
      "The AWS access key ID you provided does not exist in our records.")                 \
    X(INVALID_ARGUMENT, "InvalidArgument", 400, "Invalid argument.")                       \
    X(INVALID_BUCKET_NAME, "InvalidBucketName", 400, "The specified bucket is not valid.") \
    X(INVALID_CHUNK_SIZE, "InvalidChunkSizeError", 403,                                    \
      "Only the last chunk is allowed to have a size less than 8192 bytes.")               \
    X(INVALID_DIGEST, "InvalidDigest", 400,                                                \
      "The Content-MD5 or checksum you specified is not valid.")                           \
    X(INVALID_PART, "InvalidPart", 400,                                                    \
      "One or more of the specified parts could not be found.")                            \
    X(INVALID_PART_ORDER, "InvalidPartOrder", 400,                                         \
      "The list of parts was not in ascending order.")                                     \
    X(INVALID_RANGE, "InvalidRange", 416, "The requested range is not satisfiable.")       \
    X(INVALID_RDMA_TOKEN, "InvalidRDMAToken", 400,                                         \
      "The x-amz-rdma-token header is not a valid RDMA token.")                            \
    X(INVALID_REQUEST, "InvalidRequest", 400, "Invalid request.")                          \
    X(INVALID_STORAGE_CLASS, "InvalidStorageClass", 400,                                   \
      "The storage class you specified is not valid.")                                     \
    X(INVALID_URI, "InvalidURI", 400, "Couldn't parse the specified URI.")                 \
    X(KEY_TOO_LONG, "KeyTooLongError", 400, "Your key is too long.")                       \
    X(MALFORMED_XML, "MalformedXML", 400,                                                  \
      "The XML you provided was not well-formed or did not validate against our published schema.") \
    X(MAX_MESSAGE_LENGTH, "MaxMessageLengthExceeded", 400, "Your request was too big.")    \
    X(METADATA_TOO_LARGE, "MetadataTooLarge", 400,                                         \
      "Your metadata headers exceed the maximum allowed metadata size.")                   \
    X(METHOD_NOT_ALLOWED, "MethodNotAllowed", 405,                                         \
      "The specified method is not allowed against this resource.")                        \
    X(MISSING_CONTENT_LENGTH, "MissingContentLength", 411,                                 \
      "You must provide the Content-Length HTTP header.")                                  \
    X(MISSING_SECURITY_HEADER, "MissingSecurityHeader", 400,                               \
      "Your request is missing a required header.")                                        \
    X(NO_SUCH_BUCKET, "NoSuchBucket", 404, "The specified bucket does not exist.")         \
    X(NO_SUCH_KEY, "NoSuchKey", 404, "The specified key does not exist.")                  \
    X(NO_SUCH_UPLOAD, "NoSuchUpload", 404, "The specified multipart upload does not exist.") \
    X(NO_SUCH_LIFECYCLE, "NoSuchLifecycleConfiguration", 404,                              \
      "The lifecycle configuration does not exist.")                                       \
    X(NO_SUCH_POLICY, "NoSuchBucketPolicy", 404, "The bucket policy does not exist.")      \
    X(NO_SUCH_TAG_SET, "NoSuchTagSet", 404, "The TagSet does not exist.")                  \
    X(NO_SUCH_CORS, "NoSuchCORSConfiguration", 404, "The CORS configuration does not exist.") \
    X(NO_SUCH_ENCRYPTION, "ServerSideEncryptionConfigurationNotFoundError", 404,           \
      "The server side encryption configuration was not found.")                           \
    X(NOT_IMPLEMENTED, "NotImplemented", 501,                                              \
      "A header or query you provided implies functionality that is not implemented.")     \
    X(NOT_MODIFIED, "NotModified", 304, "Not Modified")                                    \
    X(PRECONDITION_FAILED, "PreconditionFailed", 412,                                      \
      "At least one of the preconditions you specified did not hold.")                     \
    X(RDMA_NOT_SUPPORTED, "RDMANotSupported", 501,                                         \
      "This request cannot be served over RDMA here; send it without x-amz-rdma-token.")   \
    X(RDMA_TRANSFER_FAILED, "RDMATransferFailed", 500,                                     \
      "The data could not be moved to or from the client's memory over RDMA.")             \
    X(REQUEST_HEADER_TOO_LARGE, "RequestHeaderSectionTooLarge", 400,                       \
      "Your request header section exceeds the maximum allowed size.")                     \
    X(REQUEST_TIMEOUT, "RequestTimeout", 400,                                              \
      "Your socket connection to the server was not read from or written to within the timeout period.") \
    X(REQUEST_TIME_TOO_SKEWED, "RequestTimeTooSkewed", 403,                                \
      "The difference between the request time and the server's time is too large.")       \
    X(SERVICE_UNAVAILABLE, "ServiceUnavailable", 503,                                      \
      "Service is unable to handle request.")                                              \
    X(SIGNATURE_DOES_NOT_MATCH, "SignatureDoesNotMatch", 403,                              \
      "The request signature we calculated does not match the signature you provided. "    \
      "Check your key and signing method.")                                                \
    X(SLOW_DOWN, "SlowDown", 503, "Please reduce your request rate.")                      \
    X(STORAGE_FULL, "XLodeStorageFull", 507,                                               \
      "The cluster does not have enough free space or data nodes to store the object.")    \
    X(TOO_MANY_BUCKETS, "TooManyBuckets", 400,                                             \
      "You have attempted to create more buckets than allowed.")                           \
    X(CONTENT_SHA256_MISMATCH, "XAmzContentSHA256Mismatch", 400,                           \
      "The provided 'x-amz-content-sha256' header does not match what was computed.")      \
    X(BAD_REQUEST, "BadRequest", 400, "The request could not be understood.")

enum gw_s3_error {
#define GW_S3_ERROR_ENUM(e, code, status, msg) GW_S3_##e,
    GW_S3_ERROR_MAP(GW_S3_ERROR_ENUM)
#undef GW_S3_ERROR_ENUM
    GW_S3_ERROR_COUNT
};

#endif
