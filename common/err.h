/* Error values with context.
 *
 * Codes are the ones from <lode/errno.h>. A struct cmn_err carries a code plus a message
 * that grows one clause per layer it crosses ("load config: /etc/x.conf:3: unknown key
 * 'foo'"), so the operator sees where and why. Functions that take a `struct cmn_err *`
 * accept NULL when the caller only wants the code.
 */
#ifndef LODE_COMMON_ERR_H
#define LODE_COMMON_ERR_H

#include <stddef.h>
#include <lode/errno.h>

#define CMN_ERR_MSG_MAX 512

struct cmn_err {
    int code;                    /* 0 or negative error code */
    char msg[CMN_ERR_MSG_MAX];   /* NUL-terminated; empty when code is 0 */
};

/* Resets to "no error". */
void cmn_err_clear(struct cmn_err *err);

/* Sets code and message (printf-style). Returns code, so `return cmn_err_set(...)` works.
 * With err == NULL it only returns code. */
int cmn_err_set(struct cmn_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes context to the existing message: "<context>: <old message>". Keeps the code.
 * Returns the code. */
int cmn_err_wrap(struct cmn_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Message, or lode_strerror(code) when no message was set. */
const char *cmn_err_text(const struct cmn_err *err);

#endif
