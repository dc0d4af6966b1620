#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_entry {
    int code;
    const char *name;
    const char *text;
};

static const struct err_entry lode_table[] = {
#define ERR_ROW(name, num, text) {-(num), "LODE_" #name, text},
    LODE_ERRNO_MAP(ERR_ROW)
#undef ERR_ROW
};

static const struct err_entry *err_lookup(int code)
{
    for (size_t i = 0; i < sizeof(lode_table) / sizeof(lode_table[0]); i++)
        if (lode_table[i].code == code)
            return &lode_table[i];
    return NULL;
}

const char *lode_strerror(int code)
{
    if (code == 0)
        return "success";
    if (code >= LODE_ERRNO_MIN && code <= LODE_ERRNO_MAX) {
        const struct err_entry *e = err_lookup(code);
        return e ? e->text : "unknown lode error";
    }
    if (code < 0 && code > -4096) {
        /* strerrordesc_np is static and thread-safe, unlike strerror(). */
        const char *s = strerrordesc_np(-code);
        return s ? s : "unknown system error";
    }
    return "unknown error";
}

const char *lode_errname(int code)
{
    if (code == 0)
        return "OK";
    if (code >= LODE_ERRNO_MIN && code <= LODE_ERRNO_MAX) {
        const struct err_entry *e = err_lookup(code);
        return e ? e->name : "E?";
    }
    if (code < 0 && code > -4096) {
        const char *s = strerrorname_np(-code);
        return s ? s : "E?";
    }
    return "E?";
}

void cmn_err_clear(struct cmn_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

int cmn_err_set(struct cmn_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int cmn_err_wrap(struct cmn_err *err, const char *fmt, ...)
{
    if (!err)
        return 0;
    char prefix[CMN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char old[CMN_ERR_MSG_MAX];
    snprintf(old, sizeof(old), "%s", err->msg[0] ? err->msg : lode_strerror(err->code));
    snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    return err->code;
}

const char *cmn_err_text(const struct cmn_err *err)
{
    if (!err)
        return "";
    return err->msg[0] ? err->msg : lode_strerror(err->code);
}
