/* x-amz-rdma-token values: the one strict parser every lode process uses, lode's own token
 * formatter, the window check of a GET, and a redaction helper for logs.
 *
 * Accepted forms (docs/rdma-token.md has the full rules; the wire contract is section 3 of
 * the S3-over-RDMA design):
 *   DC canonical  81 chars  base16:size8:rkey8:lid4:dctn6:g1:gid32    -> CMN_RDMA_DC
 *   DC legacy    115 chars  <DC canonical>:addr16:size16               -> CMN_RDMA_DC
 *   lode tcp      80 chars  base16:size16:tcp1:sid32:tag8              -> CMN_RDMA_TCP
 *   lode rc       79 chars  base16:size16:rc1:sid32:rkey8              -> CMN_RDMA_RC
 *   hipObject RC  88 hex digits (a 44-byte record)                     -> ..._DECLINE_HIPOBJ
 *   libfabric     base:size:ofi1:provider:epname-hex:mkey-hex          -> ..._DECLINE_OFI
 * Anything else is invalid (the gateway answers 400 InvalidRDMAToken). Hex digits may be of
 * either case; the formatter writes lower case. lode's forms can never be 81 or 115 chars
 * long, and their third field is not hex, so no value is ambiguous.
 *
 * Tokens grant write (and read) access to client memory: treat a token like a credential.
 * Log one only at debug level, and then only through cmn_rdma_token_redact(). Error
 * messages from this module never quote the token.
 *
 * Everything here is pure: no allocation, no I/O, no global state; thread-safe.
 */
#ifndef LODE_COMMON_RDMA_TOKEN_H
#define LODE_COMMON_RDMA_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Longest value the parser looks at; longer ones are refused before any scanning, whatever
 * they contain (the longest valid ofi1 tokens seen are far shorter). */
#define CMN_RDMA_TOKEN_MAX 256

#define CMN_RDMA_TOKEN_DC_LEN 81
#define CMN_RDMA_TOKEN_DC_LEGACY_LEN 115
#define CMN_RDMA_TOKEN_TCP_LEN 80
#define CMN_RDMA_TOKEN_RC_LEN 79
#define CMN_RDMA_TOKEN_HIPOBJ_LEN 88
/* Buffer size for cmn_rdma_token_format(): the longest lode token (tcp1) plus the NUL. */
#define CMN_RDMA_TOKEN_FMT_SIZE (CMN_RDMA_TOKEN_TCP_LEN + 1)
/* Largest window a DC token can name: its size field is 8 hex digits. */
#define CMN_RDMA_DC_WINDOW_MAX UINT32_MAX

enum cmn_rdma_kind {
    CMN_RDMA_NONE = 0,            /* only in a zeroed struct, never returned by a parse */
    CMN_RDMA_DC,                  /* serve through the dc transport */
    CMN_RDMA_TCP,                 /* serve through lode's tcp transport */
    CMN_RDMA_RC,                  /* serve through lode's rc transport */
    CMN_RDMA_DECLINE_HIPOBJ,      /* recognised, not served: decline 501 */
    CMN_RDMA_DECLINE_OFI,         /* recognised, not served: decline 501 */
};

struct cmn_rdma_dc {
    uint32_t rkey;
    uint16_t lid;                 /* used for the address handle when g == 0 */
    uint32_t dctn;                /* 24 bits */
    uint8_t g;                    /* 0 or 1: the GID is valid and a GRH is needed */
    uint8_t gid[16];              /* network order, as on the wire */
    bool legacy;                  /* came in the 115-char form */
    /* The descriptor's own window. For the canonical form it equals the token's window; for
     * the legacy form the token's window is the suffix, which lies inside this one. */
    uint64_t desc_base, desc_size;
};

struct cmn_rdma_token {
    enum cmn_rdma_kind kind;
    /* The window [base, base + size) in the client's address space: size >= 1 and the end
     * base + size representable in 64 bits (no wrap) for the kinds served (DC, TCP, RC) and
     * for ofi1; both 0 for
     * hipObject, whose record lode does not decode. */
    uint64_t base, size;
    union {
        struct cmn_rdma_dc dc;
        struct {
            uint8_t sid[16];
            uint32_t rkey;
        } rc;
        struct {
            uint8_t sid[16];
            /* The request's tag: non-zero, fresh and random per request. The data sources
             * stamp it on every frame, and the client lands a frame only in the window opened
             * with it, so a late frame of an earlier request that used the same buffer never
             * lands in this one. */
            uint32_t tag;
        } tcp;
    } u;
};

/* Parses `len` bytes at `s` (no NUL needed; a NUL inside is simply an invalid character).
 * The caller strips HTTP optional whitespace first; none is accepted here.
 * Returns 0 and fills *out (every byte of it, unused union members zeroed), or -EINVAL with
 * a message naming the form and the field at fault (never the token's contents); *out is
 * zeroed then. A value longer than CMN_RDMA_TOKEN_MAX is refused without being scanned. */
int cmn_rdma_token_parse(const char *s, size_t len, struct cmn_rdma_token *out,
                         struct cmn_err *err);

/* Writes a lode token (kind CMN_RDMA_TCP or CMN_RDMA_RC; base, size and the kind's fields)
 * in lower case with its NUL into out, which has room for `cap` bytes. Returns the length
 * (CMN_RDMA_TOKEN_TCP_LEN or CMN_RDMA_TOKEN_RC_LEN), or -EINVAL with a message for another
 * kind, size 0, a window whose end wraps or a tcp1 tag of 0 (what the parser would refuse),
 * or -ENOSPC when cap is too small (cap >= CMN_RDMA_TOKEN_FMT_SIZE always suffices). On
 * failure out holds "" when cap >= 1. */
int cmn_rdma_token_format(const struct cmn_rdma_token *t, char *out, size_t cap,
                          struct cmn_err *err);

/* The window check of a GET, decided before any transfer. `requested` is the byte count the
 * request asks for: the object (or part) length without Range, the range length with it.
 *   - ranged: *transfer = min(window size, requested): the gateway writes that many bytes
 *     from the start of the range and answers 206 with a Content-Range covering exactly them;
 *   - not ranged: *transfer = requested when it fits the window; otherwise LODE_EWINDOW with
 *     a message naming both sizes (the gateway answers 400 InvalidRequest, never a 2xx a
 *     status-only client could take for the whole object).
 * Returns 0, LODE_EWINDOW, or -EINVAL for a token of a kind that is not served (declined
 * kinds have no usable window). *transfer is 0 on failure. */
int cmn_rdma_window_fit(const struct cmn_rdma_token *t, uint64_t requested, bool ranged,
                        uint64_t *transfer, struct cmn_err *err);

/* Size of the buffer cmn_rdma_token_redact() writes: 8 chars, "...", " (N chars)" with N
 * up to 20 digits, NUL. */
#define CMN_RDMA_REDACT_SIZE 48

/* A form of a token safe for logs: at most its first 8 characters (non-printable ones as
 * '?'), then "..." and the value's length, e.g. "00007f3a... (81 chars)"; values of 8
 * characters or fewer are shown as "... (N chars)" alone, so nothing short is ever printed
 * whole. Any input is fine, including NULL with len 0. Always NUL-terminates out. */
void cmn_rdma_token_redact(const char *s, size_t len, char out[CMN_RDMA_REDACT_SIZE]);

/* Short stable name of a kind for metrics labels and messages: "dc", "tcp", "rc",
 * "hipobj-rc", "ofi", or "none". Static. */
const char *cmn_rdma_kind_name(enum cmn_rdma_kind kind);

/* True for the kinds lode serves (DC, TCP, RC); false for the declined ones. */
bool cmn_rdma_kind_served(enum cmn_rdma_kind kind);

#endif
