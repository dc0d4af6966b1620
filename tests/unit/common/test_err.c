#include <errno.h>
#include <string.h>

#include <lode/errno.h>

#include "common/err.h"
#include "tests/tap.h"

/* The table is generated from the X-macro, so walk it the same way to check every row. */
struct row {
    int code;
    int num;
    const char *name;
    const char *text;
};
static const struct row rows[] = {
#define ROW(name, num, text) {LODE_##name, num, "LODE_" #name, text},
    LODE_ERRNO_MAP(ROW)
#undef ROW
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

int main(void)
{
    int in_range = 1, texts = 1, names = 1, unique = 1;
    for (size_t i = 0; i < NROWS; i++) {
        in_range &= rows[i].code == -rows[i].num && rows[i].code <= LODE_ERRNO_MAX &&
                    rows[i].code >= LODE_ERRNO_MIN;
        texts &= strcmp(lode_strerror(rows[i].code), rows[i].text) == 0;
        names &= strcmp(lode_errname(rows[i].code), rows[i].name) == 0;
        for (size_t j = 0; j < i; j++)
            unique &= rows[i].code != rows[j].code;
    }
    ok(NROWS > 30, "table has %zu rows", NROWS);
    ok(in_range, "every code is negative and inside [-1999, -1000]");
    ok(unique, "codes are unique");
    ok(texts, "lode_strerror matches the table for every code");
    ok(names, "lode_errname matches the table for every code");
    is_int(LODE_EINTERNAL, -1000, "EINTERNAL is -1000 (wire value)");
    is_int(LODE_ENOKEY, -1014, "ENOKEY is -1014 (wire value)");
    is_int(LODE_ETOOLARGE, -1031, "ETOOLARGE is -1031 (wire value)");
    ok(EHWPOISON < -LODE_ERRNO_MAX, "the largest errno value stays below the lode range");

    is_str(lode_strerror(0), "success", "0 is success");
    is_str(lode_errname(0), "OK", "0 is OK");
    is_str(lode_strerror(LODE_ENOKEY), "no such key", "ENOKEY text");
    is_str(lode_errname(LODE_ENOTLEADER), "LODE_ENOTLEADER", "ENOTLEADER name");
    is_str(lode_strerror(-ENOENT), "No such file or directory", "errno text");
    is_str(lode_errname(-ENOENT), "ENOENT", "errno name");
    is_str(lode_errname(-EAGAIN), "EAGAIN", "EAGAIN name");
    is_str(lode_strerror(-1999), "unknown lode error", "unassigned lode code");
    is_str(lode_errname(-1999), "E?", "unassigned lode code name");
    is_str(lode_strerror(-3000), "unknown system error", "unassigned errno-range code");
    is_str(lode_strerror(5), "unknown error", "positive code");
    is_str(lode_errname(5), "E?", "positive code name");
    is_str(lode_strerror(-100000), "unknown error", "far out of range");

    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(err.code, 0, "clear -> code 0");
    is_str(err.msg, "", "clear -> empty message");
    is_str(cmn_err_text(&err), "success", "text of no error");

    is_int(cmn_err_set(&err, LODE_ECONFIG, "unknown key '%s'", "foo"), LODE_ECONFIG,
           "set returns the code");
    is_str(cmn_err_text(&err), "unknown key 'foo'", "set message");
    is_int(cmn_err_wrap(&err, "%s:%d", "/etc/x.conf", 3), LODE_ECONFIG, "wrap returns the code");
    is_int(cmn_err_wrap(&err, "load config"), LODE_ECONFIG, "second wrap");
    is_str(cmn_err_text(&err), "load config: /etc/x.conf:3: unknown key 'foo'", "wrap chain");
    is_int(err.code, LODE_ECONFIG, "wrap keeps the code");

    err.code = -EACCES;
    err.msg[0] = '\0';
    is_str(cmn_err_text(&err), lode_strerror(-EACCES), "no message -> strerror");
    cmn_err_wrap(&err, "open %s", "/x");
    is_str(cmn_err_text(&err), "open /x: Permission denied", "wrap without message uses strerror");

    char big[2 * CMN_ERR_MSG_MAX];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cmn_err_set(&err, LODE_EINTERNAL, "%s", big);
    is_int(strlen(err.msg), CMN_ERR_MSG_MAX - 1, "long message truncated to the buffer");
    cmn_err_wrap(&err, "ctx");
    ok(strncmp(err.msg, "ctx: zzz", 8) == 0 && strlen(err.msg) == CMN_ERR_MSG_MAX - 1,
       "wrap of a full message keeps the prefix and stays bounded");

    is_int(cmn_err_set(NULL, LODE_EAUTH, "x"), LODE_EAUTH, "set with NULL returns the code");
    is_int(cmn_err_wrap(NULL, "x"), 0, "wrap with NULL is harmless");
    cmn_err_clear(NULL);
    is_str(cmn_err_text(NULL), "", "text of NULL");
    return tap_done();
}
