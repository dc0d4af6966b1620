/* S3 error codes: statuses, texts, the mapping from lode's error space, and the XML error
 * document. The table itself is gateway/s3_error.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lode/errno.h>

#include "gateway/s3_errdoc.h"
#include "gateway/xml.h"

static const struct {
    const char *code;
    int status;
    const char *msg;
} table[GW_S3_ERROR_COUNT] = {
#define GW_S3_ERROR_ROW(e, code, status, msg) [GW_S3_##e] = {code, status, msg},
    GW_S3_ERROR_MAP(GW_S3_ERROR_ROW)
#undef GW_S3_ERROR_ROW
};

static bool in_range(enum gw_s3_error code)
{
    return (unsigned)code < GW_S3_ERROR_COUNT;
}

void gw_s3_err_clear(struct gw_s3_err *e)
{
    e->code = GW_S3_OK;
    e->msg[0] = '\0';
    e->n_extra = 0;
}

enum gw_s3_error gw_s3_err_set(struct gw_s3_err *e, enum gw_s3_error code, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    e->msg[0] = '\0';
    e->n_extra = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void gw_s3_err_extra(struct gw_s3_err *e, const char *name, const char *fmt, ...)
{
    if (!e || e->n_extra >= GW_S3_ERR_EXTRA_MAX)
        return;
    struct gw_s3_err_extra *x = &e->extra[e->n_extra++];
    snprintf(x->name, sizeof(x->name), "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->value, sizeof(x->value), fmt, ap);
    va_end(ap);
}

int gw_s3_error_status(enum gw_s3_error code)
{
    return in_range(code) ? table[code].status : 500;
}

const char *gw_s3_error_code(enum gw_s3_error code)
{
    return in_range(code) ? table[code].code : table[GW_S3_INTERNAL_ERROR].code;
}

const char *gw_s3_error_message(enum gw_s3_error code)
{
    return in_range(code) ? table[code].msg : table[GW_S3_INTERNAL_ERROR].msg;
}

enum gw_s3_error gw_s3_error_from_lode(int code)
{
    switch (code) {
    case 0:
        return GW_S3_OK;
    case LODE_ENOBUCKET:
        return GW_S3_NO_SUCH_BUCKET;
    case LODE_EBUCKETEXISTS:
        return GW_S3_BUCKET_ALREADY_EXISTS;
    case LODE_EBUCKETNOTEMPTY:
        return GW_S3_BUCKET_NOT_EMPTY;
    case LODE_ENOKEY:
        return GW_S3_NO_SUCH_KEY;
    case LODE_EPRECONDITION:
        return GW_S3_PRECONDITION_FAILED;
    case LODE_ENOUPLOAD:
        return GW_S3_NO_SUCH_UPLOAD;
    case LODE_EBADPART:
        return GW_S3_INVALID_PART;
    case LODE_EPARTORDER:
        return GW_S3_INVALID_PART_ORDER;
    case LODE_ENOUSER:
    case LODE_ENOACCESSKEY:
        return GW_S3_INVALID_ACCESS_KEY_ID;
    case LODE_EINVALNAME:
        /* The gateway validates names before meta sees them; meta refusing one anyway is
         * still the client's input. */
        return GW_S3_INVALID_ARGUMENT;
    case LODE_ETOOLARGE:
        return GW_S3_ENTITY_TOO_LARGE;
    case LODE_ENOSPACE:
    case LODE_EMETAFULL:
    case -ENOSPC:
        return GW_S3_STORAGE_FULL;
    case LODE_ENOTLEADER:
    case LODE_ENOLEADER:
    case LODE_ETIMEOUT:
    case LODE_ECLOSED:
    case LODE_ESHUTDOWN:
    case LODE_EUNAVAILABLE:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EPIPE:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
        return GW_S3_SERVICE_UNAVAILABLE;
    case -EAGAIN:
        return GW_S3_SLOW_DOWN;
    default:
        /* LODE_EINTERNAL, protocol and configuration errors, data that cannot be read back
         * (LODE_ECORRUPT, LODE_ENOCHUNK once repair was impossible), -ENOMEM...: a 500 that
         * clients may retry; the detail goes to the log, not to the client. */
        return GW_S3_INTERNAL_ERROR;
    }
}

bool gw_s3_error_has_body(enum gw_s3_error code, bool head_request)
{
    return !head_request && code != GW_S3_OK && code != GW_S3_NOT_MODIFIED;
}

/* An error document is small: the message, four extras, the resource and the request id,
 * each bounded, even when every byte is escaped (at most 6 bytes out per byte in). */
#define ERROR_DOC_LIMIT (32 * 1024)

int gw_s3_error_render(const struct gw_s3_err *e, struct gw_str resource,
                       struct gw_str request_id, char **body, size_t *len)
{
    if (e->code == GW_S3_OK || !in_range(e->code))
        return -EINVAL;
    struct gw_xml_w w;
    gw_xml_w_init(&w, ERROR_DOC_LIMIT);
    gw_xml_w_decl(&w);
    gw_xml_w_open(&w, "Error");
    gw_xml_w_elem_cstr(&w, "Code", table[e->code].code);
    gw_xml_w_elem_cstr(&w, "Message", e->msg[0] ? e->msg : table[e->code].msg);
    for (unsigned i = 0; i < e->n_extra && i < GW_S3_ERR_EXTRA_MAX; i++)
        if (gw_xml_name_ok(e->extra[i].name)) /* a bad name must not spoil the document */
            gw_xml_w_elem_cstr(&w, e->extra[i].name, e->extra[i].value);
    /* Both come from the request: bounded here so the document always fits. */
    if (resource.n)
        gw_xml_w_elem(&w, "Resource", resource.p, resource.n > 2048 ? 2048 : resource.n);
    if (request_id.n)
        gw_xml_w_elem(&w, "RequestId", request_id.p, request_id.n > 128 ? 128 : request_id.n);
    gw_xml_w_close(&w);
    int rc = gw_xml_w_finish(&w, body, len);
    if (rc != 0) {
        gw_xml_w_free(&w);
        /* Only allocation can fail: every input was bounded above. */
        return -ENOMEM;
    }
    return 0;
}
