/* S3 errors with their details, and the XML error document.
 *
 * gateway/s3_error.h lists the codes; this header adds what a refusal carries on its way to
 * the client: a detail message that overrides the code's default text, and the extra elements
 * some errors have in S3 (BucketName, Key, ArgumentName/ArgumentValue, Condition,
 * RequestTime/ServerTime, ActualObjectSize...). Every I/O-free parser of the gateway fills a
 * struct gw_s3_err, so the handler renders one document without knowing who refused.
 */
#ifndef LODE_GATEWAY_S3_ERRDOC_H
#define LODE_GATEWAY_S3_ERRDOC_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/gw_types.h"
#include "gateway/s3_error.h"

#define GW_S3_ERR_MSG_MAX 256
#define GW_S3_ERR_EXTRA_MAX 4
#define GW_S3_ERR_EXTRA_NAME_MAX 32
#define GW_S3_ERR_EXTRA_VALUE_MAX 256

struct gw_s3_err_extra {
    char name[GW_S3_ERR_EXTRA_NAME_MAX];   /* element name, e.g. "ArgumentName" */
    char value[GW_S3_ERR_EXTRA_VALUE_MAX]; /* text; escaped (and made valid XML) when rendered */
};

/* A refusal: the code, an optional message (empty: the code's default) and up to
 * GW_S3_ERR_EXTRA_MAX extra elements. Plain value, no allocation; copy it freely. */
struct gw_s3_err {
    enum gw_s3_error code;
    char msg[GW_S3_ERR_MSG_MAX];
    unsigned n_extra;
    struct gw_s3_err_extra extra[GW_S3_ERR_EXTRA_MAX];
};

/* Resets to GW_S3_OK, no message, no extras. */
void gw_s3_err_clear(struct gw_s3_err *e);

/* Sets the code and the message (printf-style; NULL fmt: the default message) and drops any
 * extras set before. Returns `code`, so `return gw_s3_err_set(err, ...)` works. With e == NULL
 * it only returns code. A message longer than GW_S3_ERR_MSG_MAX - 1 bytes is truncated. */
enum gw_s3_error gw_s3_err_set(struct gw_s3_err *e, enum gw_s3_error code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends an extra element (name must be an XML name, e.g. a literal such as "BucketName").
 * Beyond GW_S3_ERR_EXTRA_MAX extras, or with e == NULL, it does nothing; a long value is
 * truncated. */
void gw_s3_err_extra(struct gw_s3_err *e, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* HTTP status of a code (200 for GW_S3_OK); 500 for a value outside the enum. */
int gw_s3_error_status(enum gw_s3_error code);

/* The S3 <Code> text ("NoSuchKey"; "" for GW_S3_OK; "InternalError" outside the enum).
 * Static strings, valid forever. */
const char *gw_s3_error_code(enum gw_s3_error code);

/* The default <Message> text of a code. Static string. */
const char *gw_s3_error_message(enum gw_s3_error code);

/* Maps a lode error code (0, a negative errno or a LODE_E* code from <lode/errno.h>) to the S3
 * error the client sees. Unknown and internal codes give GW_S3_INTERNAL_ERROR; transient ones
 * (no leader, timeouts, shutting down, connection failures) GW_S3_SERVICE_UNAVAILABLE so
 * clients retry; -EAGAIN gives GW_S3_SLOW_DOWN. LODE_EBUCKETEXISTS gives
 * GW_S3_BUCKET_ALREADY_EXISTS: the handler, which knows the owner, turns it into
 * GW_S3_BUCKET_ALREADY_OWNED when the caller owns the bucket. */
enum gw_s3_error gw_s3_error_from_lode(int code);

/* Whether an error response carries a document: never for HEAD requests (HTTP forbids a
 * body there), nor for GW_S3_OK and GW_S3_NOT_MODIFIED (304 has no body). */
bool gw_s3_error_has_body(enum gw_s3_error code, bool head_request);

/* Renders the error document:
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <Error><Code>..</Code><Message>..</Message>[extras]<Resource>..</Resource>
 *   <RequestId>..</RequestId></Error>
 * resource and request_id may be empty (their elements are then left out). Text is escaped
 * and made valid XML whatever the bytes (invalid UTF-8 becomes U+FFFD). On success *body is
 * a malloc'd NUL-terminated buffer the caller frees, *len its length without the NUL.
 * Returns 0, -EINVAL for GW_S3_OK or a code outside the enum, or -ENOMEM (*body untouched). */
int gw_s3_error_render(const struct gw_s3_err *e, struct gw_str resource,
                       struct gw_str request_id, char **body, size_t *len);

#endif
