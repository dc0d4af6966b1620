/* x-amz-rdma-token parsing and formatting (see rdma_token.h and docs/rdma-token.md). */
#include "common/rdma_token.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/id.h"

/* More colon-separated fields than any form has: splitting stops counting here. */
#define MAX_FIELDS 10

struct field {
    const char *p;
    size_t n;
};

/* Splits s into at most MAX_FIELDS fields; returns the field count, MAX_FIELDS + 1 when
 * there are more. */
static size_t split(const char *s, size_t len, struct field *f)
{
    size_t nf = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ':')
            continue;
        if (nf == MAX_FIELDS)
            return MAX_FIELDS + 1;
        f[nf].p = s + start;
        f[nf].n = i - start;
        nf++;
        start = i + 1;
    }
    return nf;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool all_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hexval(p[i]) < 0)
            return false;
    return true;
}

/* A field of exactly `width` hex digits (1..16) into *v. */
static bool hex_exact(const struct field *f, size_t width, uint64_t *v)
{
    if (f->n != width || !all_hex(f->p, f->n))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < f->n; i++)
        x = x << 4 | (uint64_t)hexval(f->p[i]);
    *v = x;
    return true;
}

/* A field of 1..16 hex digits into *v. */
static bool hex_var(const struct field *f, uint64_t *v)
{
    return f->n >= 1 && f->n <= 16 && hex_exact(f, f->n, v);
}

/* Exactly 2 * n hex digits into n bytes. */
static bool hex_bytes(const struct field *f, uint8_t *out, size_t n)
{
    if (f->n != 2 * n || !all_hex(f->p, f->n))
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(hexval(f->p[2 * i]) << 4 | hexval(f->p[2 * i + 1]));
    return true;
}

static bool field_is(const struct field *f, const char *lit)
{
    size_t n = strlen(lit);
    return f->n == n && memcmp(f->p, lit, n) == 0;
}

/* The window rules every form shares: size >= 1 and no wrap past 2^64. */
static int window_ok(const char *form, uint64_t base, uint64_t size, struct cmn_err *err)
{
    if (size == 0)
        return cmn_err_set(err, -EINVAL, "rdma token (%s): window size is 0", form);
    if (base > UINT64_MAX - size)
        return cmn_err_set(err, -EINVAL,
                           "rdma token (%s): window of %" PRIu64 " bytes wraps past the end of "
                           "the address space", form, size);
    return 0;
}

static int bad_field(struct cmn_err *err, const char *form, unsigned idx, const char *name,
                     const char *want)
{
    return cmn_err_set(err, -EINVAL, "rdma token (%s): field %u (%s) must be %s", form, idx,
                       name, want);
}

/* DC canonical descriptor: base16:size8:rkey8:lid4:dctn6:g1:gid32 in f[0..6]. */
static int parse_dc(const struct field *f, const char *form, struct cmn_rdma_token *t,
                    struct cmn_err *err)
{
    uint64_t base, size, rkey, lid, dctn, g;
    if (!hex_exact(&f[0], 16, &base))
        return bad_field(err, form, 1, "base address", "16 hex digits");
    if (!hex_exact(&f[1], 8, &size))
        return bad_field(err, form, 2, "size", "8 hex digits");
    if (!hex_exact(&f[2], 8, &rkey))
        return bad_field(err, form, 3, "rkey", "8 hex digits");
    if (!hex_exact(&f[3], 4, &lid))
        return bad_field(err, form, 4, "LID", "4 hex digits");
    if (!hex_exact(&f[4], 6, &dctn))
        return bad_field(err, form, 5, "DCT number", "6 hex digits");
    if (!hex_exact(&f[5], 1, &g) || g > 1)
        return bad_field(err, form, 6, "g", "0 or 1");
    if (!hex_bytes(&f[6], t->u.dc.gid, 16))
        return bad_field(err, form, 7, "GID", "32 hex digits");
    int rc = window_ok(form, base, size, err);
    if (rc)
        return rc;
    t->kind = CMN_RDMA_DC;
    t->base = t->u.dc.desc_base = base;
    t->size = t->u.dc.desc_size = size;
    t->u.dc.rkey = (uint32_t)rkey;
    t->u.dc.lid = (uint16_t)lid;
    t->u.dc.dctn = (uint32_t)dctn;
    t->u.dc.g = (uint8_t)g;
    return 0;
}

/* The legacy suffix addr16:size16 in f[7..8], after the descriptor: it becomes the window
 * and must lie inside the descriptor's. */
static int parse_dc_legacy(const struct field *f, struct cmn_rdma_token *t,
                           struct cmn_err *err)
{
    static const char form[] = "DC legacy";
    int rc = parse_dc(f, form, t, err);
    if (rc)
        return rc;
    uint64_t addr, size;
    if (!hex_exact(&f[7], 16, &addr))
        return bad_field(err, form, 8, "address", "16 hex digits");
    if (!hex_exact(&f[8], 16, &size))
        return bad_field(err, form, 9, "size", "16 hex digits");
    if (size == 0)
        return cmn_err_set(err, -EINVAL, "rdma token (%s): suffix size is 0", form);
    uint64_t db = t->u.dc.desc_base, ds = t->u.dc.desc_size;
    /* Written without addr + size, which may wrap. */
    if (addr < db || addr - db > ds || size > ds - (addr - db))
        return cmn_err_set(err, -EINVAL,
                           "rdma token (%s): suffix window of %" PRIu64 " bytes at offset "
                           "%s%" PRIu64 " lies outside the descriptor's %" PRIu64 "-byte window",
                           form, size, addr < db ? "-" : "", addr < db ? db - addr : addr - db,
                           ds);
    t->base = addr;
    t->size = size;
    t->u.dc.legacy = true;
    return 0;
}

/* lode: base16:size16:tcp1:sid32:tag8 or base16:size16:rc1:sid32:rkey8. */
static int parse_lode(const struct field *f, size_t nf, bool rc1, struct cmn_rdma_token *t,
                      struct cmn_err *err)
{
    const char *form = rc1 ? "lode rc1" : "lode tcp1";
    if (nf != 5)
        return cmn_err_set(err, -EINVAL, "rdma token (%s): %zu colon-separated fields, "
                           "expected 5", form, nf);
    uint64_t base, size, rkey = 0, tag = 0;
    uint8_t sid[16];
    if (!hex_exact(&f[0], 16, &base))
        return bad_field(err, form, 1, "base address", "16 hex digits");
    if (!hex_exact(&f[1], 16, &size))
        return bad_field(err, form, 2, "size", "16 hex digits");
    if (!hex_bytes(&f[3], sid, 16))
        return bad_field(err, form, 4, "session id", "32 hex digits");
    if (rc1 && !hex_exact(&f[4], 8, &rkey))
        return bad_field(err, form, 5, "rkey", "8 hex digits");
    /* A zero tag is what a client that never picked one would send: it could not tell its
     * requests apart, so it is refused rather than served without the fence. */
    if (!rc1 && (!hex_exact(&f[4], 8, &tag) || tag == 0))
        return bad_field(err, form, 5, "tag", "8 hex digits, not all zero");
    int rc = window_ok(form, base, size, err);
    if (rc)
        return rc;
    t->base = base;
    t->size = size;
    if (rc1) {
        t->kind = CMN_RDMA_RC;
        memcpy(t->u.rc.sid, sid, 16);
        t->u.rc.rkey = (uint32_t)rkey;
    } else {
        t->kind = CMN_RDMA_TCP;
        memcpy(t->u.tcp.sid, sid, 16);
        t->u.tcp.tag = (uint32_t)tag;
    }
    return 0;
}

static bool provider_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == ';';
}

/* libfabric: base:size:ofi1:provider:epname-hex:mkey-hex. Recognised only, so that the
 * client gets a decline it can fall back from instead of a 400. */
static int parse_ofi(const struct field *f, size_t nf, struct cmn_rdma_token *t,
                     struct cmn_err *err)
{
    static const char form[] = "libfabric ofi1";
    if (nf != 6)
        return cmn_err_set(err, -EINVAL, "rdma token (%s): %zu colon-separated fields, "
                           "expected 6", form, nf);
    uint64_t base, size;
    if (!hex_var(&f[0], &base))
        return bad_field(err, form, 1, "base address", "1 to 16 hex digits");
    if (!hex_var(&f[1], &size))
        return bad_field(err, form, 2, "size", "1 to 16 hex digits");
    bool prov_ok = f[3].n >= 1;
    for (size_t i = 0; i < f[3].n; i++)
        prov_ok = prov_ok && provider_char(f[3].p[i]);
    if (!prov_ok)
        return bad_field(err, form, 4, "provider", "letters, digits and _-.;");
    if (f[4].n < 1 || !all_hex(f[4].p, f[4].n))
        return bad_field(err, form, 5, "endpoint name", "hex digits");
    if (f[5].n < 1 || !all_hex(f[5].p, f[5].n))
        return bad_field(err, form, 6, "memory key", "hex digits");
    int rc = window_ok(form, base, size, err);
    if (rc)
        return rc;
    t->kind = CMN_RDMA_DECLINE_OFI;
    t->base = base;
    t->size = size;
    return 0;
}

int cmn_rdma_token_parse(const char *s, size_t len, struct cmn_rdma_token *out,
                         struct cmn_err *err)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || s == NULL)
        return cmn_err_set(err, -EINVAL, "rdma token: empty value");
    if (len > CMN_RDMA_TOKEN_MAX)
        return cmn_err_set(err, -EINVAL, "rdma token: %zu characters, the limit is %d", len,
                           CMN_RDMA_TOKEN_MAX);
    struct field f[MAX_FIELDS];
    size_t nf = split(s, len, f);
    int rc;
    /* The transport name in field 3 decides first: it is never hex, so it cannot be a DC
     * rkey, and it keeps a mis-sized lode token from being reported as a bad DC token. */
    if (nf >= 3 && nf <= MAX_FIELDS && field_is(&f[2], "tcp1"))
        rc = parse_lode(f, nf, false, out, err);
    else if (nf >= 3 && nf <= MAX_FIELDS && field_is(&f[2], "rc1"))
        rc = parse_lode(f, nf, true, out, err);
    else if (nf >= 3 && nf <= MAX_FIELDS && field_is(&f[2], "ofi1"))
        rc = parse_ofi(f, nf, out, err);
    else if (nf == 7)
        rc = parse_dc(f, "DC", out, err);
    else if (nf == 9)
        rc = parse_dc_legacy(f, out, err);
    else if (nf == 1 && all_hex(s, len)) {
        if (len != CMN_RDMA_TOKEN_HIPOBJ_LEN)
            rc = cmn_err_set(err, -EINVAL, "rdma token: %zu hex digits without separators; a "
                             "hipObject RC token has %d", len, CMN_RDMA_TOKEN_HIPOBJ_LEN);
        else {
            out->kind = CMN_RDMA_DECLINE_HIPOBJ;
            rc = 0;
        }
    } else
        rc = cmn_err_set(err, -EINVAL, "rdma token: unrecognised form (%zu characters, %s%zu "
                         "colon-separated fields)", len, nf > MAX_FIELDS ? "more than " : "",
                         nf > MAX_FIELDS ? (size_t)MAX_FIELDS : nf);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

int cmn_rdma_token_format(const struct cmn_rdma_token *t, char *out, size_t cap,
                          struct cmn_err *err)
{
    if (cap >= 1)
        out[0] = '\0';
    if (t->kind != CMN_RDMA_TCP && t->kind != CMN_RDMA_RC)
        return cmn_err_set(err, -EINVAL, "rdma token: only lode tcp1 and rc1 tokens are "
                           "formatted, not %s", cmn_rdma_kind_name(t->kind));
    bool rc1 = t->kind == CMN_RDMA_RC;
    int rc = window_ok(rc1 ? "lode rc1" : "lode tcp1", t->base, t->size, err);
    if (rc)
        return rc;
    if (!rc1 && t->u.tcp.tag == 0)
        return cmn_err_set(err, -EINVAL, "rdma token (lode tcp1): tag is 0");
    size_t want = rc1 ? CMN_RDMA_TOKEN_RC_LEN : CMN_RDMA_TOKEN_TCP_LEN;
    if (cap < want + 1)
        return cmn_err_set(err, -ENOSPC, "rdma token: %zu-byte buffer, %zu needed", cap,
                           want + 1);
    char sid[33];
    cmn_hex_encode(rc1 ? t->u.rc.sid : t->u.tcp.sid, 16, sid);
    int n;
    if (rc1)
        n = snprintf(out, cap, "%016" PRIx64 ":%016" PRIx64 ":rc1:%s:%08" PRIx32, t->base,
                     t->size, sid, t->u.rc.rkey);
    else
        n = snprintf(out, cap, "%016" PRIx64 ":%016" PRIx64 ":tcp1:%s:%08" PRIx32, t->base,
                     t->size, sid, t->u.tcp.tag);
    return n;
}

int cmn_rdma_window_fit(const struct cmn_rdma_token *t, uint64_t requested, bool ranged,
                        uint64_t *transfer, struct cmn_err *err)
{
    *transfer = 0;
    if (!cmn_rdma_kind_served(t->kind))
        return cmn_err_set(err, -EINVAL, "rdma token: a %s token has no window lode writes to",
                           cmn_rdma_kind_name(t->kind));
    if (ranged) {
        *transfer = requested < t->size ? requested : t->size;
        return 0;
    }
    if (requested > t->size)
        return cmn_err_set(err, LODE_EWINDOW,
                           "rdma token: the object is %" PRIu64 " bytes, the token's window "
                           "only %" PRIu64 "; read it in ranges", requested, t->size);
    *transfer = requested;
    return 0;
}

void cmn_rdma_token_redact(const char *s, size_t len, char out[CMN_RDMA_REDACT_SIZE])
{
    char head[9];
    size_t n = len > 8 ? 8 : 0;
    for (size_t i = 0; i < n; i++)
        head[i] = (s[i] > ' ' && s[i] < 0x7f) ? s[i] : '?';
    head[n] = '\0';
    snprintf(out, CMN_RDMA_REDACT_SIZE, "%s... (%zu chars)", head, len);
}

const char *cmn_rdma_kind_name(enum cmn_rdma_kind kind)
{
    switch (kind) {
    case CMN_RDMA_DC:
        return "dc";
    case CMN_RDMA_TCP:
        return "tcp";
    case CMN_RDMA_RC:
        return "rc";
    case CMN_RDMA_DECLINE_HIPOBJ:
        return "hipobj-rc";
    case CMN_RDMA_DECLINE_OFI:
        return "ofi";
    case CMN_RDMA_NONE:
        break;
    }
    return "none";
}

bool cmn_rdma_kind_served(enum cmn_rdma_kind kind)
{
    return kind == CMN_RDMA_DC || kind == CMN_RDMA_TCP || kind == CMN_RDMA_RC;
}
