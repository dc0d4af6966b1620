/* common/dc_params.c: address-handle and DCI parameters from a DC token, the settings checks,
 * piece addresses at the window's edges, the drain bound (values from Python:
 * math.ceil(4096 * 2**t * (r + 1) / 1e6)), GID families and the source-GID choice on GID
 * tables shaped like mlx5's (RoCEv1 and RoCEv2 rows with identical bytes). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/dc_params.h"
#include "tests/tap.h"

/* GIDs (Python: ipaddress.IPv6Address('::ffff:192.168.0.1').packed.hex() =
 * '00000000000000000000ffffc0a80001'). */
static const uint8_t gid_v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 1};
static const uint8_t gid_v4_local[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 9};
static const uint8_t gid_link[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 2, 0x11, 0x22, 0xff, 0xfe,
                                     0x33, 0x44, 0x55};
static const uint8_t gid_v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

static const struct cmn_dc_local local_ok = {
    .sgid_index = 3, .hop_limit = 4, .traffic_class = 96, .sl = 0, .dc_key = 0xffeeddcc,
    .timeout = 16, .retry_cnt = 7,
};

static void dc_token(struct cmn_rdma_token *t, struct cmn_err *e)
{
    /* base 0x0102030405060708, size 0x01020304 = 16909060, rkey 0xa1b2c3d4, LID 0,
     * DCTN 0x00abcd, g = 1, GID ::ffff:192.168.0.1. */
    static const char s[] =
        "0102030405060708:01020304:a1b2c3d4:0000:00abcd:1:00000000000000000000ffffc0a80001";
    if (cmn_rdma_token_parse(s, strlen(s), t, e) != 0)
        tap_bail("sample DC token does not parse: %s", e->msg);
}

static void test_derive(void)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    struct cmn_dc_target d;
    dc_token(&t, &e);
    is_int(cmn_dc_derive(&t, &local_ok, &d, &e), 0, "derive from a RoCE token");
    ok(d.ah.is_global, "is_global from g = 1");
    ok(memcmp(d.ah.dgid, gid_v4, 16) == 0, "dgid = the token's GID");
    is_int(d.ah.dlid, 0, "dlid = LID 0");
    is_int(d.ah.sgid_index, 3, "sgid_index from the settings");
    is_int(d.ah.hop_limit, 4, "hop_limit");
    is_int(d.ah.traffic_class, 96, "traffic_class");
    is_int(d.ah.sl, 0, "sl");
    is_int(d.dctn, 0xabcd, "DCT number");
    ok(d.dc_key == 0xffeeddccu, "DC key from the settings");
    ok(d.rkey == 0xa1b2c3d4u, "rkey");
    ok(d.base == 0x0102030405060708ull && d.size == 16909060, "window");
    ok(d.timeout == 16 && d.retry_cnt == 7, "DCI timeout and retry count");

    /* InfiniBand without GRH: g = 0 and a unicast LID. */
    static const char ib[] =
        "0000000000001000:00001000:00000001:0017:000001:0:00000000000000000000000000000000";
    is_int(cmn_rdma_token_parse(ib, strlen(ib), &t, &e), 0, "IB token parses");
    is_int(cmn_dc_derive(&t, &local_ok, &d, &e), 0, "derive from an IB token");
    ok(!d.ah.is_global && d.ah.dlid == 0x17, "no GRH, dlid 0x17");
    t.u.dc.lid = 0;
    is_int(cmn_dc_derive(&t, &local_ok, &d, &e), -EINVAL, "LID 0 without GID refused");
    t.u.dc.lid = 0xc000;
    is_int(cmn_dc_derive(&t, &local_ok, &d, &e), -EINVAL, "multicast LID refused");
    t.u.dc.lid = 0xbfff;
    is_int(cmn_dc_derive(&t, &local_ok, &d, &e), 0, "highest unicast LID accepted");
    t.u.dc.g = 1;
    is_int(cmn_dc_derive(&t, &local_ok, &d, &e), -EINVAL, "g = 1 with an all-zero GID refused");

    /* Settings checks. */
    dc_token(&t, &e);
    struct cmn_dc_local l = local_ok;
    l.hop_limit = 0;
    is_int(cmn_dc_derive(&t, &l, &d, &e), -EINVAL, "hop limit 0 refused");
    l = local_ok;
    l.sl = 16;
    is_int(cmn_dc_derive(&t, &l, &d, &e), -EINVAL, "SL 16 refused");
    l = local_ok;
    l.timeout = 0;
    cmn_err_clear(&e);
    is_int(cmn_dc_derive(&t, &l, &d, &e), -EINVAL, "timeout 0 (infinite) refused");
    ok(strstr(e.msg, "fenced") != NULL, "says why: %s", e.msg);
    l.timeout = 32;
    is_int(cmn_dc_derive(&t, &l, &d, &e), -EINVAL, "timeout 32 refused");
    l = local_ok;
    l.retry_cnt = 8;
    is_int(cmn_dc_derive(&t, &l, &d, &e), -EINVAL, "retry count 8 refused");
    ok(d.rkey == 0 && d.base == 0, "target zeroed on failure");

    static const char tcp[] =
        "00007f0000001000:0000000000010000:tcp1:00112233445566778899aabbccddeeff:00000001";
    is_int(cmn_rdma_token_parse(tcp, strlen(tcp), &t, &e), 0, "a tcp1 token parses");
    is_int(cmn_dc_derive(&t, &local_ok, &d, &e), -EINVAL, "a tcp1 token is not a DC target");
}

static void test_remote_addr(void)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    struct cmn_dc_target d;
    dc_token(&t, &e);
    cmn_dc_derive(&t, &local_ok, &d, &e);
    uint64_t a = 1;
    is_int(cmn_dc_remote_addr(&d, 0, 1, &a, &e), 0, "first byte");
    ok(a == 0x0102030405060708ull, "at base");
    is_int(cmn_dc_remote_addr(&d, 4096, 100, &a, &e), 0, "inside");
    ok(a == 0x0102030405061708ull, "base + 4096");
    is_int(cmn_dc_remote_addr(&d, 16909059, 1, &a, &e), 0, "last byte");
    is_int(cmn_dc_remote_addr(&d, 0, 16909060, &a, &e), 0, "whole window");
    is_int(cmn_dc_remote_addr(&d, 16909059, 2, &a, &e), LODE_EWINDOW, "one byte past the end");
    ok(a == 0, "no address on failure");
    is_int(cmn_dc_remote_addr(&d, 16909060, 1, &a, &e), LODE_EWINDOW, "offset = size");
    is_int(cmn_dc_remote_addr(&d, UINT64_MAX, 1, &a, &e), LODE_EWINDOW, "offset 2^64 - 1");
    is_int(cmn_dc_remote_addr(&d, 1, UINT64_MAX, &a, &e), -EINVAL, "length 2^64 - 1");
    is_int(cmn_dc_remote_addr(&d, 0, 0, &a, &e), -EINVAL, "length 0");
    /* A hand-built window at the top of the address space. */
    d.base = UINT64_MAX - 10;
    d.size = (uint64_t)1 << 32;
    is_int(cmn_dc_remote_addr(&d, 5, 6, &a, &e), LODE_EWINDOW, "wrapping address refused");
    is_int(cmn_dc_remote_addr(&d, 5, 5, &a, &e), 0, "address ending at 2^64 - 1");
    ok(a == UINT64_MAX - 5, "base + 5");
    d.base = 0;
    d.size = (uint64_t)1 << 40;
    is_int(cmn_dc_remote_addr(&d, 0, CMN_DC_PIECE_MAX, &a, &e), 0, "2 GiB piece");
    is_int(cmn_dc_remote_addr(&d, 0, CMN_DC_PIECE_MAX + 1, &a, &e), -EINVAL, "2 GiB + 1 refused");
}

static void test_drain(void)
{
    ok(cmn_dc_drain_ms(16, 7) == 2148, "timeout 16, 7 retries: 2148 ms");
    ok(cmn_dc_drain_ms(14, 7) == 537, "timeout 14, 7 retries: 537 ms");
    ok(cmn_dc_drain_ms(1, 0) == 1, "timeout 1, no retry: 1 ms");
    ok(cmn_dc_drain_ms(31, 7) == 70368745ull, "timeout 31, 7 retries: 70368745 ms");
    ok(cmn_dc_drain_ms(0, 7) == UINT64_MAX, "timeout 0 is unbounded");
}

static void test_family(void)
{
    is_int(cmn_gid_family(gid_v4), CMN_GID_IPV4, "::ffff:192.168.0.1 is IPv4");
    is_int(cmn_gid_family(gid_link), CMN_GID_IPV6, "fe80:: is IPv6");
    is_int(cmn_gid_family(gid_v6), CMN_GID_IPV6, "2001:db8::1 is IPv6");
    uint8_t g[16];
    memcpy(g, gid_v4, 16);
    g[9] = 0xff;
    is_int(cmn_gid_family(g), CMN_GID_IPV6, "ffff one byte early is IPv6");
    memcpy(g, gid_v4, 16);
    g[0] = 1;
    is_int(cmn_gid_family(g), CMN_GID_IPV6, "non-zero prefix is IPv6");
    is_str(cmn_gid_family_name(CMN_GID_IPV4), "IPv4", "family name");
}

static void row(struct cmn_gid_entry *r, const uint8_t *gid, enum cmn_gid_type type,
                uint32_t index)
{
    memset(r->gid, 0, 16);
    if (gid)
        memcpy(r->gid, gid, 16);
    r->type = type;
    r->index = index;
}

static void test_pick(void)
{
    struct cmn_err e;
    uint8_t idx = 99;
    /* mlx5 with one IPv4 address: link-local v1/v2 at 0/1, the address v1/v2 at 2/3, an
     * unused zero row at 4, an IPv6 global v1/v2 at 5/6. */
    struct cmn_gid_entry tab[7];
    memset(tab, 0, sizeof(tab));
    row(&tab[0], gid_link, CMN_GID_TYPE_ROCE_V1, 0);
    row(&tab[1], gid_link, CMN_GID_TYPE_ROCE_V2, 1);
    row(&tab[2], gid_v4_local, CMN_GID_TYPE_ROCE_V1, 2);
    row(&tab[3], gid_v4_local, CMN_GID_TYPE_ROCE_V2, 3);
    row(&tab[4], NULL, CMN_GID_TYPE_ROCE_V2, 4);
    row(&tab[5], gid_v6, CMN_GID_TYPE_ROCE_V1, 5);
    row(&tab[6], gid_v6, CMN_GID_TYPE_ROCE_V2, 6);
    is_int(cmn_dc_pick_sgid(tab, 7, gid_v4, &idx, &e), 0, "IPv4 client finds a source");
    is_int(idx, 3, "the RoCEv2 IPv4 row, not its RoCEv1 twin");
    is_int(cmn_dc_pick_sgid(tab, 7, gid_v6, &idx, &e), 0, "IPv6 client finds a source");
    is_int(idx, 1, "the first RoCEv2 IPv6 row");
    is_int(cmn_dc_pick_sgid(tab + 2, 1, gid_v4, &idx, &e), -ENOENT, "RoCEv1 only: none");
    /* Only IPv6 RoCEv2 rows for an IPv4 client. */
    cmn_err_clear(&e);
    struct cmn_gid_entry v6only[2] = {tab[1], tab[6]};
    is_int(cmn_dc_pick_sgid(v6only, 2, gid_v4, &idx, &e), -ENOENT, "IPv4 client, IPv6 port");
    ok(strstr(e.msg, "IPv4") != NULL && strstr(e.msg, "2 RoCEv2") != NULL,
       "message names the family and the table: %s", e.msg);
    is_int(idx, 0, "index 0 on failure");
    /* Zero rows only. */
    is_int(cmn_dc_pick_sgid(tab + 4, 1, gid_v4, &idx, &e), -ENOENT, "unused rows are skipped");
    is_int(cmn_dc_pick_sgid(NULL, 0, gid_v4, &idx, &e), -ENOENT, "empty table");
    /* InfiniBand port: the first non-zero IB row, whatever the client's family. */
    struct cmn_gid_entry ibtab[3];
    memset(ibtab, 0, sizeof(ibtab));
    row(&ibtab[0], NULL, CMN_GID_TYPE_IB, 0);
    row(&ibtab[1], gid_link, CMN_GID_TYPE_IB, 1);
    row(&ibtab[2], gid_v6, CMN_GID_TYPE_IB, 2);
    is_int(cmn_dc_pick_sgid(ibtab, 3, gid_v6, &idx, &e), 0, "IB port");
    is_int(idx, 1, "first non-zero IB row");
    /* An IB row on a RoCE port is not used. */
    struct cmn_gid_entry mixed[2] = {ibtab[1], tab[2]};
    is_int(cmn_dc_pick_sgid(mixed, 2, gid_v6, &idx, &e), -ENOENT, "IB row ignored on a RoCE port");
    /* Indexes above 255 do not fit sgid_index. */
    struct cmn_gid_entry big = tab[3];
    big.index = 256;
    is_int(cmn_dc_pick_sgid(&big, 1, gid_v4, &idx, &e), -EINVAL, "index 256 refused");
}

int main(void)
{
    test_derive();
    test_remote_addr();
    test_drain();
    test_family();
    test_pick();
    return tap_done();
}
