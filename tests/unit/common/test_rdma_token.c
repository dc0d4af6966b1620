/* common/rdma_token.c: every accepted form against values decoded by hand (Python's int(x, 16)
 * at development time), each way a token can be malformed (truncated, oversized, non-hex,
 * moved separators, g = 2, zero size, wrapping windows, a legacy suffix outside its window),
 * the lode forms through the formatter and back, random DC tokens built here with snprintf,
 * the window check, redaction, and error messages that never quote the token. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/rdma_token.h"
#include "tests/tap.h"

/* The shape example of the wire contract (section 3.1). Fields decoded with Python:
 * int('0102030405060708', 16) = 72623859790382856, int('01020304', 16) = 16909060,
 * int('0102', 16) = 258, int('010203', 16) = 66051. */
static const char dc81[] =
    "0102030405060708:01020304:01020304:0102:010203:1:0102030405060708090a0b0c0d0e0f10";
/* The same with a suffix at descriptor offset 0x100, 0x1000 bytes:
 * '%016x' % (0x0102030405060708 + 0x100) = '0102030405060808'. */
static const char dc115[] =
    "0102030405060708:01020304:01020304:0102:010203:1:0102030405060708090a0b0c0d0e0f10"
    ":0102030405060808:0000000000001000";
/* 16 + 1 + 16 + 1 + 4 + 1 + 32 + 1 + 8 = 80 characters. */
static const char tcp80[] =
    "00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:0badcafe";
static const char rc79[] =
    "00007f0000001000:0000000000010000:rc1:00112233445566778899aabbccddeeff:deadbeef";
static const char ofi[] = "7f0000001000:1000:ofi1:verbs;ofi_rxm:0a0b0c0d:1234";

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int parse(const char *s, struct cmn_rdma_token *t, struct cmn_err *e)
{
    cmn_err_clear(e);
    return cmn_rdma_token_parse(s, strlen(s), t, e);
}

static int parse_bad(const char *s)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    int rc = parse(s, &t, &e);
    return rc == -EINVAL && e.msg[0] != '\0' && t.kind == CMN_RDMA_NONE;
}

static void test_dc(void)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    is_int(strlen(dc81), CMN_RDMA_TOKEN_DC_LEN, "the example is 81 characters");
    is_int(parse(dc81, &t, &e), 0, "DC canonical parses");
    is_int(t.kind, CMN_RDMA_DC, "kind dc");
    ok(t.base == 72623859790382856ull && t.size == 16909060, "window base and size");
    is_int(t.u.dc.rkey, 16909060, "rkey");
    is_int(t.u.dc.lid, 258, "LID");
    is_int(t.u.dc.dctn, 66051, "DCT number");
    is_int(t.u.dc.g, 1, "g");
    int gid_ok = 1;
    for (int i = 0; i < 16; i++)
        gid_ok &= t.u.dc.gid[i] == i + 1;
    ok(gid_ok, "GID bytes in wire order");
    ok(!t.u.dc.legacy && t.u.dc.desc_base == t.base && t.u.dc.desc_size == t.size,
       "not legacy; descriptor window = window");

    /* Upper case digits: the same values. */
    char up[sizeof(dc81)];
    for (size_t i = 0; i < sizeof(dc81); i++)
        up[i] = (dc81[i] >= 'a' && dc81[i] <= 'f') ? (char)(dc81[i] - 32) : dc81[i];
    struct cmn_rdma_token t2;
    is_int(parse(up, &t2, &e), 0, "upper-case hex accepted");
    ok(memcmp(&t, &t2, sizeof(t)) == 0, "upper case gives the same token");

    /* g = 0 (InfiniBand without GRH) is valid; 2 and f are not. */
    char g[sizeof(dc81)];
    memcpy(g, dc81, sizeof(dc81));
    g[47] = '0';
    is_int(parse(g, &t, &e), 0, "g = 0 accepted");
    is_int(t.u.dc.g, 0, "g = 0 read");
    g[47] = '2';
    ok(parse_bad(g), "g = 2 refused");
    parse(g, &t, &e);
    ok(strstr(e.msg, "(g)") != NULL, "message names field g: %s", e.msg);
    g[47] = 'f';
    ok(parse_bad(g), "g = f refused");

    /* Size 0. */
    ok(parse_bad("0102030405060708:00000000:01020304:0102:010203:1:"
                 "0102030405060708090a0b0c0d0e0f10"), "DC size 0 refused");
    /* Wrapping windows: base 2^64 - 16 with 16 bytes ends at 2^64: refused; one lower, the
     * end is 2^64 - 1: accepted. '%016x' % (2**64 - 16) = 'fffffffffffffff0'. */
    ok(parse_bad("fffffffffffffff0:00000010:01020304:0102:010203:1:"
                 "0102030405060708090a0b0c0d0e0f10"), "DC window wrapping past 2^64 refused");
    is_int(parse("ffffffffffffffef:00000010:01020304:0102:010203:1:"
                 "0102030405060708090a0b0c0d0e0f10", &t, &e), 0,
           "DC window ending at 2^64 - 1 accepted");
    ok(parse_bad("ffffffffffffffff:ffffffff:01020304:0102:010203:1:"
                 "0102030405060708090a0b0c0d0e0f10"), "largest base and size refused");
    /* Largest window: ffffffff = 4294967295 = 4 GiB - 1. */
    is_int(parse("0000000000000000:ffffffff:01020304:0102:010203:1:"
                 "0102030405060708090a0b0c0d0e0f10", &t, &e), 0, "4 GiB - 1 window");
    ok(t.size == 4294967295ull, "size 4294967295");
    /* All-ones fields are in range. 'ffffff' = 16777215, 'ffff' = 65535. */
    is_int(parse("ffffffff00000000:00000001:ffffffff:ffff:ffffff:1:"
                 "ffffffffffffffffffffffffffffffff", &t, &e), 0, "all-ones fields");
    ok(t.u.dc.rkey == 0xffffffffu && t.u.dc.lid == 65535 && t.u.dc.dctn == 16777215,
       "all-ones values");
}

static void test_dc_malformed(void)
{
    char buf[300];
    /* Every proper prefix is refused. */
    int all = 1;
    for (size_t n = 0; n < strlen(dc81); n++) {
        struct cmn_rdma_token t;
        struct cmn_err e;
        int rc = cmn_rdma_token_parse(dc81, n, &t, &e);
        all &= rc == -EINVAL && t.kind == CMN_RDMA_NONE;
    }
    ok(all, "every truncation of a DC token refused");
    all = 1;
    for (size_t n = 0; n < strlen(dc115); n++) {
        struct cmn_rdma_token t;
        int rc = cmn_rdma_token_parse(dc115, n, &t, NULL);
        all &= rc == -EINVAL || n == CMN_RDMA_TOKEN_DC_LEN;
    }
    ok(all, "every truncation of a legacy token refused, except at 81 (the descriptor)");

    /* One character more, at the end or inside a field. */
    snprintf(buf, sizeof(buf), "%s0", dc81);
    ok(parse_bad(buf), "82 characters refused");
    snprintf(buf, sizeof(buf), "0%s", dc81);
    ok(parse_bad(buf), "17-digit base refused");

    /* Non-hex at every digit position (a letter, a space, a NUL, a high byte). */
    static const char bad_chars[] = {'g', ' ', '\0', 'x', (char)0xc3, '-', '+'};
    all = 1;
    for (size_t i = 0; i < strlen(dc81); i++) {
        if (dc81[i] == ':')
            continue;
        for (size_t c = 0; c < sizeof(bad_chars); c++) {
            memcpy(buf, dc81, sizeof(dc81));
            buf[i] = bad_chars[c];
            struct cmn_rdma_token t;
            all &= cmn_rdma_token_parse(buf, strlen(dc81), &t, NULL) == -EINVAL;
        }
    }
    ok(all, "a non-hex character at any digit position refused");

    /* Each separator moved one place left or right: same length, wrong widths. */
    all = 1;
    for (size_t i = 1; i + 1 < strlen(dc81); i++) {
        if (dc81[i] != ':')
            continue;
        for (int d = -1; d <= 1; d += 2) {
            memcpy(buf, dc81, sizeof(dc81));
            char tmp = buf[i + d];
            buf[i + d] = ':';
            buf[i] = tmp;
            all &= parse_bad(buf);
        }
    }
    ok(all, "every separator moved by one refused");
    ok(parse_bad("0102030405060708:01020304:01020304:0102:010203:1:"
                 "0102030405060708090a0b0c0d0e0f1"), "31-digit GID refused");
    ok(parse_bad("0102030405060708;01020304;01020304;0102;010203;1;"
                 "0102030405060708090a0b0c0d0e0f10"), "other separators refused");
    snprintf(buf, sizeof(buf), " %s", dc81);
    ok(parse_bad(buf), "leading space refused");
    snprintf(buf, sizeof(buf), "%s ", dc81);
    ok(parse_bad(buf), "trailing space refused");
    ok(parse_bad("0x02030405060708:01020304:01020304:0102:010203:1:"
                 "0102030405060708090a0b0c0d0e0f10"), "0x prefix refused");

    /* Oversized values are refused by length alone. */
    memset(buf, '0', sizeof(buf));
    struct cmn_rdma_token t;
    struct cmn_err e;
    cmn_err_clear(&e);
    is_int(cmn_rdma_token_parse(buf, CMN_RDMA_TOKEN_MAX + 1, &t, &e), -EINVAL,
           "257 characters refused");
    ok(strstr(e.msg, "256") != NULL, "message names the limit: %s", e.msg);
    is_int(cmn_rdma_token_parse(buf, 88, &t, NULL), 0, "88 zero digits are a hipObject form");
    ok(parse_bad(""), "empty value refused");
    ok(parse_bad(":::::::"), "separators alone refused");
    ok(parse_bad("::::::::::::::::::::::::::::::::::::::::"), "many fields refused");
}

static void test_legacy(void)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    is_int(strlen(dc115), CMN_RDMA_TOKEN_DC_LEGACY_LEN, "the legacy example is 115 characters");
    is_int(parse(dc115, &t, &e), 0, "DC legacy parses");
    is_int(t.kind, CMN_RDMA_DC, "kind dc");
    ok(t.u.dc.legacy, "marked legacy");
    /* 0x0102030405060808 = 72623859790383112. */
    ok(t.base == 72623859790383112ull && t.size == 4096, "window = the suffix");
    ok(t.u.dc.desc_base == 72623859790382856ull && t.u.dc.desc_size == 16909060,
       "descriptor window kept");
    is_int(t.u.dc.dctn, 66051, "descriptor fields parsed");

    char buf[160];
    const char *d = "0102030405060708:01020304:01020304:0102:010203:1:"
                    "0102030405060708090a0b0c0d0e0f10";
    /* The suffix equal to the descriptor window. */
    snprintf(buf, sizeof(buf), "%s:0102030405060708:0000000001020304", d);
    is_int(parse(buf, &t, &e), 0, "suffix = whole descriptor window accepted");
    /* 16 bytes ending exactly at the descriptor's end:
     * '%016x' % (0x0102030405060708 + 0x01020304 - 0x10) = '01020304060809fc'. */
    snprintf(buf, sizeof(buf), "%s:01020304060809fc:0000000000000010", d);
    is_int(parse(buf, &t, &e), 0, "suffix ending at the descriptor's end accepted");
    snprintf(buf, sizeof(buf), "%s:01020304060809fc:0000000000000011", d);
    ok(parse_bad(buf), "suffix one byte past the descriptor's end refused");
    snprintf(buf, sizeof(buf), "%s:0102030405060707:0000000000000001", d);
    ok(parse_bad(buf), "suffix starting one byte before the descriptor refused");
    cmn_err_clear(&e);
    parse(buf, &t, &e);
    ok(strstr(e.msg, "outside") != NULL, "message says outside: %s", e.msg);
    snprintf(buf, sizeof(buf), "%s:0102030405060708:0000000000000000", d);
    ok(parse_bad(buf), "suffix size 0 refused");
    snprintf(buf, sizeof(buf), "%s:ffffffffffffffff:ffffffffffffffff", d);
    ok(parse_bad(buf), "suffix wrapping refused");
    snprintf(buf, sizeof(buf), "%s:0102030405060708:000000000000100", d);
    ok(parse_bad(buf), "15-digit suffix size refused");
    snprintf(buf, sizeof(buf), "%s:0102030405060708:00000000000010000", d);
    ok(parse_bad(buf), "17-digit suffix size refused");
    snprintf(buf, sizeof(buf), "%s:010203040506070g:0000000000001000", d);
    ok(parse_bad(buf), "non-hex suffix refused");
}

static void test_lode_forms(void)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    is_int(strlen(tcp80), CMN_RDMA_TOKEN_TCP_LEN, "tcp1 example is 80 characters");
    is_int(CMN_RDMA_TOKEN_TCP_LEN, 80, "tcp1 tokens are 80 characters");
    is_int(CMN_RDMA_TOKEN_FMT_SIZE, 81, "the format buffer holds the longest lode token");
    is_int(strlen(rc79), CMN_RDMA_TOKEN_RC_LEN, "rc1 example is 79 characters");
    is_int(parse(tcp80, &t, &e), 0, "tcp1 parses");
    is_int(t.kind, CMN_RDMA_TCP, "kind tcp");
    /* 0x00007f0000001000 = 139637976731648, 0x10000 = 65536. */
    ok(t.base == 139637976731648ull && t.size == 65536, "tcp1 window");
    ok(t.u.tcp.sid[0] == 0x00 && t.u.tcp.sid[1] == 0x11 && t.u.tcp.sid[15] == 0xff,
       "tcp1 session id");
    /* int('0badcafe', 16) = 195939070 */
    is_int(t.u.tcp.tag, 195939070, "tcp1 tag");
    is_int(parse(rc79, &t, &e), 0, "rc1 parses");
    is_int(t.kind, CMN_RDMA_RC, "kind rc");
    ok(t.base == 139637976731648ull && t.size == 65536, "rc1 window");
    ok(t.u.rc.rkey == 0xdeadbeefu && t.u.rc.sid[8] == 0x88, "rc1 rkey and session id");

    /* Round trips through the formatter, byte for byte. */
    char out[CMN_RDMA_TOKEN_FMT_SIZE];
    parse(tcp80, &t, &e);
    is_int(cmn_rdma_token_format(&t, out, sizeof(out), &e), 80, "tcp1 formats to 80");
    is_str(out, tcp80, "tcp1 round trip");
    is_int(parse("00007F0000001000:0000000000010000:tcp1:00112233445566778899AABBCCDDEEFF:0BADCAFE",
                 &t, &e), 0, "upper-case tcp1 parses");
    cmn_rdma_token_format(&t, out, sizeof(out), &e);
    is_str(out, tcp80, "tcp1 written back in lower case");
    parse(rc79, &t, &e);
    is_int(cmn_rdma_token_format(&t, out, sizeof(out), &e), 79, "rc1 formats to 79");
    is_str(out, rc79, "rc1 round trip");
    /* Upper case in, lower case out. */
    is_int(parse("00007F0000001000:0000000000010000:rc1:00112233445566778899AABBCCDDEEFF:DEADBEEF",
                 &t, &e), 0, "upper-case rc1 parses");
    cmn_rdma_token_format(&t, out, sizeof(out), &e);
    is_str(out, rc79, "formatter writes lower case");
    /* Built from values. */
    struct cmn_rdma_token b;
    memset(&b, 0, sizeof(b));
    b.kind = CMN_RDMA_TCP;
    b.base = 0x1000;
    b.size = 1;
    memset(b.u.tcp.sid, 0xab, 16);
    b.u.tcp.tag = 1;
    is_int(cmn_rdma_token_format(&b, out, sizeof(out), &e), 80, "built tcp1 formats");
    is_str(out, "0000000000001000:0000000000000001:tcp1:abababababababababababababababab:00000001",
           "built tcp1 text: the tag is zero-padded to 8 digits");
    b.u.tcp.tag = 0xffffffffu;
    cmn_rdma_token_format(&b, out, sizeof(out), &e);
    is_str(out, "0000000000001000:0000000000000001:tcp1:abababababababababababababababab:ffffffff",
           "largest tag");
    is_int(cmn_rdma_token_format(&b, out, 80, &e), -ENOSPC, "80-byte buffer too small");
    is_str(out, "", "buffer left empty on failure");
    b.u.tcp.tag = 0;
    cmn_err_clear(&e);
    is_int(cmn_rdma_token_format(&b, out, sizeof(out), &e), -EINVAL, "tag 0 not formatted");
    ok(strstr(e.msg, "tag") != NULL, "says tag: %s", e.msg);
    b.u.tcp.tag = 1;
    b.size = 0;
    is_int(cmn_rdma_token_format(&b, out, sizeof(out), &e), -EINVAL, "size 0 not formatted");
    b.size = 2;
    b.base = UINT64_MAX;
    is_int(cmn_rdma_token_format(&b, out, sizeof(out), &e), -EINVAL, "wrapping not formatted");
    b.kind = CMN_RDMA_DC;
    b.base = 0;
    is_int(cmn_rdma_token_format(&b, out, sizeof(out), &e), -EINVAL, "DC not formatted");

    /* Random lode tokens: format, parse, compare. */
    int all = 1;
    for (int i = 0; i < 2000; i++) {
        struct cmn_rdma_token a, c;
        memset(&a, 0, sizeof(a));
        a.kind = (i & 1) ? CMN_RDMA_RC : CMN_RDMA_TCP;
        a.size = 1 + rnd() % ((i & 2) ? 1000 : UINT64_MAX / 2);
        a.base = rnd() % (UINT64_MAX - a.size + 1);
        uint64_t x = rnd(), y = rnd();
        uint8_t *sid = a.kind == CMN_RDMA_RC ? a.u.rc.sid : a.u.tcp.sid;
        memcpy(sid, &x, 8);
        memcpy(sid + 8, &y, 8);
        if (a.kind == CMN_RDMA_RC)
            a.u.rc.rkey = (uint32_t)rnd();
        else
            a.u.tcp.tag = 1 + (uint32_t)(rnd() % UINT32_MAX);
        int n = cmn_rdma_token_format(&a, out, sizeof(out), NULL);
        all &= n == (int)strlen(out) && n != CMN_RDMA_TOKEN_DC_LEN &&
               n == (a.kind == CMN_RDMA_RC ? 79 : 80) &&
               cmn_rdma_token_parse(out, (size_t)n, &c, NULL) == 0 &&
               memcmp(&a, &c, sizeof(a)) == 0;
    }
    ok(all, "2000 random tcp1/rc1 tokens round-trip");

    /* Malformed lode tokens. */
    ok(parse_bad("00007f0000001000:0000000000000000:tcp1:00112233445566778899aabbccddeeff"
                 ":00000001"),
       "tcp1 size 0 refused");
    ok(parse_bad("fffffffffffffff0:0000000000000010:tcp1:00112233445566778899aabbccddeeff"
                 ":00000001"),
       "tcp1 window wrapping refused");
    ok(parse_bad("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeef:00000001"),
       "31-digit session id refused");
    struct cmn_err et;
    cmn_err_clear(&et);
    is_int(parse("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff",
                 &t, &et), -EINVAL, "tcp1 without a tag (the 71-character form) refused");
    ok(strstr(et.msg, "tcp1") && strstr(et.msg, "4 colon-separated fields"),
       "says the field count: %s", et.msg);
    cmn_err_clear(&et);
    is_int(parse("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:00000000",
                 &t, &et), -EINVAL, "tcp1 tag 0 refused");
    ok(strstr(et.msg, "(tag)") != NULL, "message names the tag: %s", et.msg);
    ok(parse_bad("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:0000001"),
       "7-digit tag refused");
    ok(parse_bad("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff"
                 ":000000001"),
       "9-digit tag refused (81 characters, and still not DC)");
    ok(parse_bad("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff"
                 ":0000000g"),
       "non-hex tag refused");
    ok(parse_bad("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:"),
       "empty tag refused");
    ok(parse_bad("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff"
                 ":00000001:deadbeef"), "tcp1 with a sixth field refused");
    /* Every proper prefix of a tcp1 token is refused, and so is every one-character shift of
     * a separator. */
    int allp = 1;
    for (size_t n = 0; n < strlen(tcp80); n++)
        allp &= cmn_rdma_token_parse(tcp80, n, &t, NULL) == -EINVAL;
    ok(allp, "every truncation of a tcp1 token refused");
    char mv[sizeof(tcp80)];
    allp = 1;
    for (size_t i = 1; i + 1 < strlen(tcp80); i++) {
        if (tcp80[i] != ':')
            continue;
        for (int d = -1; d <= 1; d += 2) {
            memcpy(mv, tcp80, sizeof(tcp80));
            char tmp = mv[i + d];
            mv[i + d] = ':';
            mv[i] = tmp;
            allp &= parse_bad(mv);
        }
    }
    ok(allp, "every tcp1 separator moved by one refused");
    ok(parse_bad("00007f0000001000:0000000000010000:rc1:00112233445566778899aabbccddeeff"),
       "rc1 without rkey refused");
    ok(parse_bad("00007f0000001000:0000000000010000:rc1:00112233445566778899aabbccddeeff:deadbee"),
       "7-digit rkey refused");
    ok(parse_bad("7f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:00000001"),
       "short tcp1 base refused");
    ok(parse_bad("00007f0000001000:0000000000010000:TCP1:00112233445566778899aabbccddeeff"
                 ":00000001"),
       "upper-case transport name refused");
    ok(parse_bad("00007f0000001000:0000000000010000:tcp2:00112233445566778899aabbccddeeff"
                 ":00000001"),
       "unknown transport name refused");
    /* A tcp1 token padded to 81 characters is still a (bad) tcp1 token, never a DC one. */
    struct cmn_err e2;
    cmn_err_clear(&e2);
    is_int(parse("00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:00000001"
                 "0", &t, &e2), -EINVAL, "81-character tcp1 refused");
    ok(strstr(e2.msg, "tcp1") != NULL, "reported as tcp1: %s", e2.msg);
}

static void test_declined(void)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    char hex[100];
    for (int i = 0; i < 88; i++)
        hex[i] = "0123456789abcdefABCDEF"[i % 22];
    hex[88] = '\0';
    is_int(parse(hex, &t, &e), 0, "88 hex digits parse");
    is_int(t.kind, CMN_RDMA_DECLINE_HIPOBJ, "recognised as hipObject RC");
    ok(!cmn_rdma_kind_served(t.kind), "hipObject is declined");
    hex[87] = '\0';
    ok(parse_bad(hex), "87 hex digits refused");
    hex[87] = '0';
    hex[88] = '0';
    hex[89] = '\0';
    ok(parse_bad(hex), "89 hex digits refused");
    hex[88] = '\0';
    hex[40] = 'g';
    ok(parse_bad(hex), "88 characters with a non-hex one refused");

    is_int(parse(ofi, &t, &e), 0, "ofi1 parses");
    is_int(t.kind, CMN_RDMA_DECLINE_OFI, "recognised as libfabric");
    ok(!cmn_rdma_kind_served(t.kind), "ofi1 is declined");
    ok(t.base == 0x7f0000001000ull && t.size == 4096, "ofi1 window read");
    is_int(parse("0:1:ofi1:tcp:00:0", &t, &e), 0, "short ofi1 fields accepted");
    ok(parse_bad("7f0000001000:1000:ofi1:verbs;ofi_rxm:0a0b0c0d"), "ofi1 with 5 fields refused");
    ok(parse_bad("7f0000001000:1000:ofi1::0a0b0c0d:1234"), "ofi1 empty provider refused");
    ok(parse_bad("7f0000001000:1000:ofi1:ver bs:0a0b0c0d:1234"),
       "ofi1 provider with a space refused");
    ok(parse_bad("7f0000001000:1000:ofi1:verbs:0a0b0c0z:1234"), "ofi1 non-hex endpoint refused");
    ok(parse_bad("7f0000001000:0:ofi1:verbs:0a:12"), "ofi1 size 0 refused");
    ok(parse_bad("00000000000000001:1:ofi1:verbs:0a:12"), "ofi1 17-digit base refused");

    uint64_t n;
    is_int(cmn_rdma_window_fit(&t, 10, true, &n, NULL), -EINVAL,
           "no window check on a declined kind");
    is_str(cmn_rdma_kind_name(CMN_RDMA_DECLINE_OFI), "ofi", "kind name ofi");
    is_str(cmn_rdma_kind_name(CMN_RDMA_DECLINE_HIPOBJ), "hipobj-rc", "kind name hipobj-rc");
    is_str(cmn_rdma_kind_name(CMN_RDMA_DC), "dc", "kind name dc");
    is_str(cmn_rdma_kind_name((enum cmn_rdma_kind)99), "none", "unknown kind name");
}

/* DC tokens built here from random values with the format the wire contract quotes from
 * NVIDIA's client ("%016llx:%08lx:%08x:%04x:%06x:%d:" + the GID as hex). */
static void test_dc_random(void)
{
    int all = 1;
    for (int i = 0; i < 2000; i++) {
        uint32_t size = 1 + (uint32_t)(rnd() % 0xffffffffu);
        uint64_t base = rnd() % (UINT64_MAX - size + 1);
        uint32_t rkey = (uint32_t)rnd(), dctn = (uint32_t)(rnd() & 0xffffff);
        uint16_t lid = (uint16_t)rnd();
        int g = (int)(rnd() & 1);
        uint8_t gid[16];
        char buf[200];
        int n = snprintf(buf, sizeof(buf), "%016" PRIx64 ":%08" PRIx32 ":%08" PRIx32 ":%04x:%06"
                         PRIx32 ":%d:", base, size, rkey, lid, dctn, g);
        for (int j = 0; j < 16; j++) {
            gid[j] = (uint8_t)rnd();
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, (i & 4) ? "%02X" : "%02x", gid[j]);
        }
        struct cmn_rdma_token t;
        all &= n == 81 && cmn_rdma_token_parse(buf, (size_t)n, &t, NULL) == 0 &&
               t.kind == CMN_RDMA_DC && t.base == base && t.size == size &&
               t.u.dc.rkey == rkey && t.u.dc.lid == lid && t.u.dc.dctn == dctn &&
               t.u.dc.g == g && memcmp(t.u.dc.gid, gid, 16) == 0;
    }
    ok(all, "2000 random DC tokens parse to their values");
}

static void test_window(void)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    uint64_t n = 7;
    parse(tcp80, &t, &e); /* window 65536 */
    is_int(cmn_rdma_window_fit(&t, 65536, false, &n, &e), 0,
           "whole object equal to the window fits");
    ok(n == 65536, "transfers 65536");
    is_int(cmn_rdma_window_fit(&t, 0, false, &n, &e), 0, "empty object fits");
    ok(n == 0, "transfers 0");
    cmn_err_clear(&e);
    is_int(cmn_rdma_window_fit(&t, 65537, false, &n, &e), LODE_EWINDOW,
           "object one byte larger than the window refused");
    ok(n == 0 && strstr(e.msg, "65537") && strstr(e.msg, "65536"),
       "message names both sizes: %s", e.msg);
    is_int(cmn_rdma_window_fit(&t, 100000, true, &n, &e), 0, "larger range accepted");
    ok(n == 65536, "range transfers min(window, range)");
    is_int(cmn_rdma_window_fit(&t, 100, true, &n, &e), 0, "smaller range accepted");
    ok(n == 100, "range transfers the range");
    is_int(cmn_rdma_window_fit(&t, UINT64_MAX, true, &n, &e), 0, "huge range accepted");
    ok(n == 65536, "huge range clipped to the window");
    parse(dc81, &t, &e);
    is_int(cmn_rdma_window_fit(&t, 16909061, false, &n, &e), LODE_EWINDOW, "DC window too small");
}

static void test_redact(void)
{
    char r[CMN_RDMA_REDACT_SIZE];
    cmn_rdma_token_redact(dc81, strlen(dc81), r);
    is_str(r, "01020304... (81 chars)", "DC token redacted");
    ok(strstr(r, "0102030405") == NULL, "no more than 8 characters shown");
    cmn_rdma_token_redact("abc", 3, r);
    is_str(r, "... (3 chars)", "short value not shown at all");
    cmn_rdma_token_redact("12345678", 8, r);
    is_str(r, "... (8 chars)", "8 characters not shown");
    cmn_rdma_token_redact("a\nb\x01" "cdefghij", 12, r);
    is_str(r, "a?b?cdef... (12 chars)", "control characters masked");
    cmn_rdma_token_redact(NULL, 0, r);
    is_str(r, "... (0 chars)", "NULL value");
    cmn_rdma_token_redact(dc81, SIZE_MAX, r);
    is_str(r, "01020304... (18446744073709551615 chars)", "largest length fits the buffer");
}

/* Error messages are logged above debug level: they must never carry the token. */
static void test_messages_secret(void)
{
    const char *bad[] = {
        "0102030405060708:01020304:01020304:0102:010203:2:0102030405060708090a0b0c0d0e0f10",
        "0102030405060708:01020304:0102030g:0102:010203:1:0102030405060708090a0b0c0d0e0f10",
        "00007f0000001000:0000000000010000:rc1:00112233445566778899aabbccddeeff:deadbee",
        "00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:deadbee",
        ("0102030405060708:01020304:01020304:0102:010203:1:0102030405060708090a0b0c0d0e0f10"
         ":0102030405060707:0000000000000001"),
    };
    int clean = 1;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cmn_rdma_token t;
        struct cmn_err e;
        cmn_err_clear(&e);
        int rc = parse(bad[i], &t, &e);
        clean &= rc == -EINVAL && strstr(e.msg, "0102030405") == NULL &&
                 strstr(e.msg, "00112233") == NULL && strstr(e.msg, "deadbee") == NULL &&
                 strstr(e.msg, "0102030g") == NULL;
    }
    ok(clean, "no error message quotes token contents");
}

int main(void)
{
    test_dc();
    test_dc_malformed();
    test_legacy();
    test_lode_forms();
    test_declined();
    test_dc_random();
    test_window();
    test_redact();
    test_messages_secret();
    return tap_done();
}
