/* Fuzz target: the x-amz-rdma-token parser (common/rdma_token.c), the window check and
 * redaction. Any input must give a token that keeps the parser's promises or a clean error
 * with a message, never a crash. Checked on every accepted input:
 *   - the kind is one of the five, and a window is non-empty and does not wrap;
 *   - the length is one of the forms' (81, 115, 80, 79, 88) unless it is ofi1;
 *   - a tcp1 token's tag is not 0;
 *   - lode tokens format back to the input, ignoring case;
 *   - the window check transfers min(window, range) for a range, and refuses exactly the
 *     objects larger than the window without one.
 * The input's last 8 bytes (when it is longer than 8) also serve as a requested length. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/rdma_token.h"
#include "tests/fuzz/fuzz.h"

#define S(x) {(const uint8_t *)(x), sizeof(x) - 1}
static const struct fuzz_seed seeds[] = {
    S("0102030405060708:01020304:01020304:0102:010203:1:0102030405060708090a0b0c0d0e0f10"),
    S("0102030405060708:01020304:01020304:0102:010203:1:0102030405060708090a0b0c0d0e0f10"
      ":0102030405060808:0000000000001000"),
    S("00007F0000001000:0000000000010000:tcp1:00112233445566778899AABBCCDDEEFF:0BADCAFE"),
    S("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:00000001"),
    S("00007f0000001000:0000000000010000:rc1:00112233445566778899aabbccddeeff:deadbeef"),
    S("010000001100000000000000000000000000ffffc0a8"
      "00013412000000100000007f00000010000001000000"),
    S("7f0000001000:1000:ofi1:verbs;ofi_rxm:0a0b0c0d:1234"),
    S("ffffffffffffffef:00000010:01020304:0102:010203:0:00000000000000000000000000000000"),
};

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = sizeof(seeds) / sizeof(seeds[0]);
    return seeds;
}

static void check(bool cond)
{
    if (!cond)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct cmn_rdma_token t;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = cmn_rdma_token_parse(s, size, &t, &err);

    char red[CMN_RDMA_REDACT_SIZE];
    cmn_rdma_token_redact(s, size, red);
    check(strlen(red) < sizeof(red));

    if (rc != 0) {
        /* A refusal says why and leaves nothing behind. */
        check(rc == -EINVAL && err.msg[0] != '\0' && t.kind == CMN_RDMA_NONE);
        return 0;
    }
    check(size <= CMN_RDMA_TOKEN_MAX);
    switch (t.kind) {
    case CMN_RDMA_DC:
        check(size == (t.u.dc.legacy ? CMN_RDMA_TOKEN_DC_LEGACY_LEN : CMN_RDMA_TOKEN_DC_LEN));
        check(t.u.dc.g <= 1 && t.u.dc.dctn <= 0xffffff && t.u.dc.desc_size <= UINT32_MAX);
        check(t.base >= t.u.dc.desc_base &&
              t.base - t.u.dc.desc_base + t.size <= t.u.dc.desc_size);
        break;
    case CMN_RDMA_TCP:
    case CMN_RDMA_RC: {
        check(size == (t.kind == CMN_RDMA_RC ? CMN_RDMA_TOKEN_RC_LEN : CMN_RDMA_TOKEN_TCP_LEN));
        check(t.kind == CMN_RDMA_RC || t.u.tcp.tag != 0);
        char out[CMN_RDMA_TOKEN_FMT_SIZE];
        int n = cmn_rdma_token_format(&t, out, sizeof(out), NULL);
        check(n == (int)size && strncasecmp(out, s, size) == 0);
        break;
    }
    case CMN_RDMA_DECLINE_HIPOBJ:
        check(size == CMN_RDMA_TOKEN_HIPOBJ_LEN && t.size == 0);
        break;
    case CMN_RDMA_DECLINE_OFI:
        break;
    default:
        check(false);
    }
    if (t.kind != CMN_RDMA_DECLINE_HIPOBJ)
        check(t.size >= 1 && t.base <= UINT64_MAX - t.size);

    uint64_t req = size, n = 0;
    if (size > 8)
        memcpy(&req, data + size - 8, 8);
    if (cmn_rdma_kind_served(t.kind)) {
        check(cmn_rdma_window_fit(&t, req, true, &n, NULL) == 0 &&
              n == (req < t.size ? req : t.size));
        int w = cmn_rdma_window_fit(&t, req, false, &n, NULL);
        check(req <= t.size ? (w == 0 && n == req) : (w == LODE_EWINDOW && n == 0));
    } else {
        check(cmn_rdma_window_fit(&t, req, true, &n, NULL) == -EINVAL);
    }
    return 0;
}
