/* common/dp_dc_core.c: the dc transport's pure pieces without a NIC (configuration checks,
 * call bookkeeping, completion statuses, staging slots, slicing into WRs, target matching,
 * the address-handle cache, the DCI's QP plan and life cycle). The engine against a fake NIC
 * is test_dp_dc_engine.c.
 *
 * Known answers:
 *   - attribute masks: enum ibv_qp_attr_mask in rdma-core's verbs.h (STATE 1<<0, PKEY_INDEX
 *     1<<4, PORT 1<<5, AV 1<<7, PATH_MTU 1<<8, TIMEOUT 1<<9, RETRY_CNT 1<<10, RNR_RETRY 1<<11,
 *     MAX_QP_RD_ATOMIC 1<<13, SQ_PSN 1<<16), summed by hand: INIT 0x31, RTR 0x101 (0x181 with
 *     the AV), RTS 0x12e01; where rdma-core is installed the test also compares them with the
 *     header's constants;
 *   - completion statuses: enum ibv_wc_status (REM_ACCESS_ERR 10, RETRY_EXC_ERR 12, ...);
 *   - drain bound: Python math.ceil(4096 * 2**16 * 8 / 1e6) = 2148 ms;
 *   - WR counts and remote addresses: Python -(-len // slot) and base + off + i * slot.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dp_dc_int.h"
#include "common/metrics.h"
#include "tests/tap.h"
#include "tests/unit/common/dp_dc_test.h"

#ifdef HAVE_MLX5DV
#include <infiniband/verbs.h>
#endif

/* ------------------------------------------------------------------ pure pieces */

/* Bad configuration number i applied to x, or NULL past the last one. */
static const char *bad_config(int i, struct cmn_dp_dc_config *x)
{
    switch (i) {
    case 0: x->timeout = 0; return "timeout 0";
    case 1: x->timeout = 32; return "timeout 32";
    case 2: x->retry_cnt = 8; return "retry 8";
    case 3: x->gid_index = 256; return "gid index 256";
    case 4: x->gid_index = -2; return "gid index -2";
    case 5: x->hop_limit = 0; return "hop limit 0";
    case 6: x->sl = 16; return "sl 16";
    case 7: x->max_rd_atomic = 0; return "max_rd_atomic 0";
    case 8: x->max_rd_atomic = 17; return "max_rd_atomic 17";
    case 9: x->num_dcis = 0; return "0 DCIs";
    case 10: x->num_dcis = 1025; return "1025 DCIs";
    case 11: x->sq_depth = 0; return "send queue depth 0";
    case 12: x->sq_depth = 4097; return "send queue depth 4097";
    case 13: x->slot_bytes = 3000; return "slot 3000";
    case 14: x->slot_bytes = 2048; return "slot 2 KiB";
    case 15: x->slot_bytes = (size_t)32 << 20; return "slot 32 MiB";
    case 16: x->staging_bytes = ((size_t)64 << 20) + 1; return "staging not whole slots";
    case 17: x->staging_bytes = 4096; return "staging below a slot";
    case 18: x->slot_bytes = 4096; x->staging_bytes = (size_t)65537 * 4096; return "65537 slots";
    case 19: x->max_queued = 0; return "max_queued 0";
    case 20: x->max_queued = (1u << 20) + 1; return "max_queued 2^20 + 1";
    default: return NULL;
    }
}

static void test_config(void)
{
    struct cmn_dp_dc_config c, o;
    struct cmn_err e;
    cmn_dp_dc_config_defaults(&c);
    ok(c.port == 1 && c.gid_index == -1 && c.dc_key == 0xffeeddccull && c.timeout == 16 &&
       c.retry_cnt == 7 && c.hop_limit == 64 && c.traffic_class == 96 && c.sl == 0 &&
       c.max_rd_atomic == 16 && !c.rtr_av && c.num_dcis == 16 && c.sq_depth == 64 &&
       c.staging_bytes == (64u << 20) && c.slot_bytes == (1u << 20) && c.ah_cache_max == 1024 &&
       c.max_queued == 65536, "defaults");
    is_int(cmn_dp_dc_config_check(&c, &o, &e), LODE_ECONFIG, "no device and no address refused");
    c.ip = "192.0.2.7";
    is_int(cmn_dp_dc_config_check(&c, &o, &e), 0, "an address alone is enough");
    c.ip = NULL;
    c.device = "mlx5_0";
    c.port = 0;
    is_int(cmn_dp_dc_config_check(&c, &o, &e), 0, "defaults with a device pass");
    is_int(o.port, 1, "port 0 means port 1");
    is_int(o.ah_cache_max, 1024, "a large enough AH cache is kept");
    c.ah_cache_max = 4;
    cmn_dp_dc_config_check(&c, &o, &e);
    is_int(o.ah_cache_max, 64 + 16 + 1, "AH cache raised to slots + DCIs + 1");

    for (int i = 0;; i++) {
        struct cmn_dp_dc_config b = c;
        const char *what = bad_config(i, &b);
        if (!what)
            break;
        e.msg[0] = 0;
        is_int(cmn_dp_dc_config_check(&b, &o, &e), LODE_ECONFIG, "%s refused", what);
        ok(strstr(e.msg, "dc: ") == e.msg, "  with a message: %s", e.msg);
    }
}

static void test_slicing(void)
{
    is_int(dc_slice_count(0, SLOT), 0, "0 bytes: no WR");
    is_int(dc_slice_count(1, SLOT), 1, "1 byte: 1 WR");
    is_int(dc_slice_count(4096, SLOT), 1, "one slot: 1 WR");
    is_int(dc_slice_count(4097, SLOT), 2, "one slot + 1: 2 WRs");
    is_int(dc_slice_count(1ull << 30, SLOT), 262144, "1 GiB in 4 KiB slots");
    is_int(dc_slice_count(1ull << 30, 1u << 20), 1024, "1 GiB in 1 MiB slots");

    struct cmn_dc_target t;
    struct dc_wr_desc w;
    struct cmn_err e;
    target(&t, 1, 7, 0x10000, 10000);
    is_int(dc_slice(&t, 100, 9000, SLOT, 0, &w, &e), 0, "WR 0");
    ok(w.call_off == 0 && w.len == 4096 && w.raddr == 0x10000 + 100, "  0x10064, 4096 bytes");
    is_int(dc_slice(&t, 100, 9000, SLOT, 1, &w, &e), 0, "WR 1");
    ok(w.call_off == 4096 && w.len == 4096 && w.raddr == 0x10000 + 100 + 4096,
       "  base + 100 + 4096");
    is_int(dc_slice(&t, 100, 9000, SLOT, 2, &w, &e), 0, "WR 2");
    ok(w.call_off == 8192 && w.len == 808 && w.raddr == 0x10000 + 100 + 8192,
       "  the last WR is short: 808 bytes");
    is_int(dc_slice(&t, 100, 9000, SLOT, 3, &w, &e), -EINVAL, "WR 3 does not exist");
    is_int(dc_slice(&t, 1000, 9001, SLOT, 0, &w, &e), 0, "a call past the end: WR 0 fits");
    is_int(dc_slice(&t, 1000, 9001, SLOT, 2, &w, &e), LODE_EWINDOW,
           "  but its last WR (ends at 10001) is refused");
    is_int(dc_slice(&t, 0, 10000, SLOT, 2, &w, &e), 0, "a call ending exactly at the window end");

    /* A window at the very top of the address space, and a hand-built one that wraps. */
    target(&t, 1, 7, 0xffffffffffffd000ull, 8192);
    is_int(dc_slice(&t, 0, 8192, SLOT, 1, &w, &e), 0, "window ending 4 KiB below 2^64");
    ok(w.raddr == 0xffffffffffffe000ull, "  WR 1 at 2^64 - 8192");
    t.base = 0xfffffffffffff000ull;
    is_int(dc_slice(&t, 0, 8192, SLOT, 1, &w, &e), LODE_EWINDOW, "a wrapping window is refused");
}

static void test_req(void)
{
    struct dc_req r;
    dc_req_init(&r, 10000, SLOT);
    is_int(r.wr_total, 3, "10000 bytes: 3 WRs");
    is_int(dc_req_post(&r), 0, "post WR 0");
    is_int(dc_req_post(&r), 1, "post WR 1");
    ok(dc_req_can_post(&r), "WR 2 still to post");
    is_int(dc_req_post(&r), 2, "post WR 2");
    ok(!dc_req_can_post(&r), "nothing left to post");
    ok(!dc_req_complete(&r, 0), "1st completion: not finished");
    ok(!dc_req_complete(&r, 0), "2nd completion: not finished");
    ok(dc_req_complete(&r, 0), "3rd completion: finished");
    ok(!dc_req_complete(&r, 0), "an extra completion never finishes it twice");
    is_int(r.status, 0, "status 0");

    dc_req_init(&r, 10000, SLOT);
    dc_req_post(&r);
    dc_req_post(&r);
    ok(!dc_req_complete(&r, LODE_ETIMEOUT), "a failed WR: not finished while one is in flight");
    ok(!dc_req_can_post(&r), "  and nothing more is posted");
    ok(dc_req_complete(&r, LODE_EWINDOW), "the last one in flight finishes it");
    is_int(r.status, LODE_ETIMEOUT, "the first error is kept");

    dc_req_init(&r, 1, SLOT);
    ok(dc_req_abort(&r, LODE_ECLOSED), "abort with nothing in flight finishes at once");
    ok(!dc_req_abort(&r, LODE_ESHUTDOWN), "a second abort does not");
    is_int(r.status, LODE_ECLOSED, "status of the first abort");

    dc_req_init(&r, 3 * SLOT, SLOT);
    dc_req_post(&r);
    ok(!dc_req_abort(&r, LODE_ECLOSED), "abort with a WR in flight waits");
    ok(dc_req_complete(&r, 0), "its completion finishes the call");
    is_int(r.status, LODE_ECLOSED, "the call reports the abort even though the WR succeeded");
}

static void test_wc(void)
{
    static const struct {
        int st, kind, code;
        const char *name;
    } cases[] = {
        {0, DC_WC_OK, 0, "SUCCESS"},
        {5, DC_WC_FLUSHED, LODE_ECLOSED, "WR_FLUSH_ERR"},
        {10, DC_WC_FAILED, LODE_EWINDOW, "REM_ACCESS_ERR"},
        {9, DC_WC_FAILED, LODE_EWINDOW, "REM_INV_REQ_ERR"},
        {15, DC_WC_FAILED, LODE_EWINDOW, "REM_INV_RD_REQ_ERR"},
        {12, DC_WC_FAILED, LODE_ETIMEOUT, "RETRY_EXC_ERR"},
        {13, DC_WC_FAILED, LODE_ETIMEOUT, "RNR_RETRY_EXC_ERR"},
        {20, DC_WC_FAILED, LODE_ETIMEOUT, "RESP_TIMEOUT_ERR"},
        {11, DC_WC_FAILED, LODE_ECLOSED, "REM_OP_ERR"},
        {16, DC_WC_FAILED, LODE_ECLOSED, "REM_ABORT_ERR"},
        {1, DC_WC_FAILED, LODE_EINTERNAL, "LOC_LEN_ERR"},
        {4, DC_WC_FAILED, LODE_EINTERNAL, "LOC_PROT_ERR"},
        {8, DC_WC_FAILED, LODE_EINTERNAL, "LOC_ACCESS_ERR"},
        {19, DC_WC_FAILED, -EIO, "FATAL_ERR"},
        {21, DC_WC_FAILED, -EIO, "GENERAL_ERR"},
        {99, DC_WC_FAILED, -EIO, "an unknown status"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int code = 12345;
        int kind = (int)dc_wc_classify(cases[i].st, &code);
        ok(kind == cases[i].kind && code == cases[i].code, "%s (%d) -> %s", cases[i].name,
           cases[i].st, lode_strerror(cases[i].code));
    }
#ifdef HAVE_MLX5DV
    ok(IBV_WC_REM_ACCESS_ERR == 10 && IBV_WC_RETRY_EXC_ERR == 12 && IBV_WC_WR_FLUSH_ERR == 5,
       "the numbers match rdma-core's verbs.h");
#endif
}

static void test_slots(void)
{
    struct dc_slots s;
    is_int(dc_slots_init(&s, 0), -EINVAL, "0 slots refused");
    is_int(dc_slots_init(&s, 4), 0, "4 slots");
    int a = dc_slots_get(&s), b = dc_slots_get(&s), c = dc_slots_get(&s), d = dc_slots_get(&s);
    ok(a == 0 && b == 1 && c == 2 && d == 3, "handed out lowest first");
    is_int(dc_slots_get(&s), -ENOSPC, "exhausted");
    is_int(dc_slots_put(&s, 2), 0, "put back 2");
    is_int(dc_slots_put(&s, 2), -EINVAL, "putting 2 back twice is refused");
    is_int(dc_slots_put(&s, 9), -EINVAL, "an index out of range is refused");
    is_int(s.nfree, 1, "one free");
    is_int(dc_slots_get(&s), 2, "2 again");
    dc_slots_fini(&s);
}

static void test_targets(void)
{
    struct cmn_dc_target a, b;
    target(&a, 1, 7, 0x1000, 4096);
    b = a;
    ok(dc_target_same(&a, &b), "a target equals itself");
    b.ah.sgid_index = 9;
    ok(dc_target_same(&a, &b), "the local GID index does not matter");
    b = a;
    b.dctn = 8;
    ok(!dc_target_same(&a, &b), "another DCT");
    b = a;
    b.rkey ^= 1;
    ok(!dc_target_same(&a, &b), "another rkey");
    b = a;
    b.base += 1;
    ok(!dc_target_same(&a, &b), "another base");
    b = a;
    b.size += 1;
    ok(!dc_target_same(&a, &b), "another size");
    target(&b, 2, 7, 0x1000, 4096);
    ok(!dc_target_same(&a, &b), "another client GID");
    a.ah.is_global = b.ah.is_global = false;
    a.ah.dlid = b.ah.dlid = 0x17;
    ok(dc_target_same(&a, &b), "without GRH the LID decides, the GID bytes do not");
    b.ah.dlid = 0x18;
    ok(!dc_target_same(&a, &b), "another LID");

    uint32_t hits[16] = {0}, used = 0;
    bool stable = true;
    for (int h = 1; h <= 64; h++) {
        target(&a, (uint8_t)h, 0x100 + (uint32_t)h, 0x1000, 4096);
        uint32_t d = dc_pick_dci(&a, 16);
        if (d >= 16)
            tap_bail("DCI out of range");
        stable &= dc_pick_dci(&a, 16) == d;
        if (hits[d]++ == 0)
            used++;
    }
    ok(stable, "a target always maps to the same DCI");
    ok(used >= 10, "64 clients spread over %u of 16 DCIs", used);

    /* Source GID choice: the configured index, or the first RoCEv2 row of the family. */
    struct cmn_gid_entry table[] = {
        {.gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 9},
         .type = CMN_GID_TYPE_ROCE_V1, .index = 0},
        {.gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 9},
         .type = CMN_GID_TYPE_ROCE_V2, .index = 1},
        {.gid = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9},
         .type = CMN_GID_TYPE_ROCE_V2, .index = 2},
    };
    struct cmn_dp_dc_config c = small_cfg();
    struct cmn_rdma_token tok;
    struct cmn_dc_local l;
    struct cmn_err e;
    const char *v4 = "0000000000001000:00001000:00000001:0000:000007:1:"
                     "00000000000000000000ffffc0a80001";
    const char *v6 = "0000000000001000:00001000:00000001:0000:000007:1:"
                     "20010db8000000000000000000000001";
    const char *ib = "0000000000001000:00001000:00000001:0017:000007:0:"
                     "00000000000000000000000000000000";
    cmn_rdma_token_parse(v4, strlen(v4), &tok, &e);
    is_int(dc_local_for(&c, table, 3, &tok, &l, &e), 0, "IPv4 client");
    is_int(l.sgid_index, 1, "  RoCEv2 IPv4 row 1, not the RoCEv1 row 0");
    ok(l.dc_key == c.dc_key && l.timeout == 16 && l.retry_cnt == 7 && l.hop_limit == 64,
       "  the other settings from the config");
    cmn_rdma_token_parse(v6, strlen(v6), &tok, &e);
    is_int(dc_local_for(&c, table, 3, &tok, &l, &e), 0, "IPv6 client");
    is_int(l.sgid_index, 2, "  row 2");
    is_int(dc_local_for(&c, table, 2, &tok, &l, &e), -ENOENT, "no IPv6 row: refused");
    ok(strstr(e.msg, "IPv6") != NULL, "  the message names the family: %s", e.msg);
    c.gid_index = 5;
    is_int(dc_local_for(&c, table, 2, &tok, &l, &e), 0, "a configured index is used as is");
    is_int(l.sgid_index, 5, "  index 5");
    c.gid_index = -1;
    cmn_rdma_token_parse(ib, strlen(ib), &tok, &e);
    is_int(dc_local_for(&c, NULL, 0, &tok, &l, &e), 0, "no GRH: no source GID needed");
}

static void test_ah_cache(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_ah_ops ops = {.create = fake_ah_create, .destroy = fake_ah_destroy, .ctx = &f};
    struct dc_ah_cache c;
    struct cmn_err e;
    struct dc_ah_entry *ea, *ea2, *eb, *ec, *ed;
    struct cmn_dc_target a, b, cc, d;
    target(&a, 1, 1, 0x1000, 4096);
    target(&b, 2, 1, 0x1000, 4096);
    target(&cc, 3, 1, 0x1000, 4096);
    target(&d, 4, 1, 0x1000, 4096);
    is_int(dc_ah_cache_init(&c, 2, &ops, 7), 0, "cache of 2");
    is_int(dc_ah_get(&c, &a, &ea, &e), 0, "client 1: created");
    ok(memcmp(&f.last_ah, &a.ah, sizeof a.ah) == 0, "  create got the target's AH attributes");
    struct cmn_dc_target a2 = a;
    a2.dctn = 99;
    a2.rkey = 5;
    a2.base = 0x9000;
    is_int(dc_ah_get(&c, &a2, &ea2, &e), 0, "same GID, another DCT and window");
    ok(ea2 == ea && f.ah_created == 1 && c.hits == 1, "  shares the handle (keyed by GID)");
    a2.ah.sgid_index = 4;
    struct dc_ah_entry *ea3;
    is_int(dc_ah_get(&c, &a2, &ea3, &e), 0, "same GID, another source GID index");
    ok(ea3 != ea && f.ah_created == 2, "  gets its own handle");
    dc_ah_put(&c, ea);
    dc_ah_put(&c, ea2);
    dc_ah_put(&c, ea3);
    is_int(dc_ah_get(&c, &b, &eb, &e), 0, "client 2 in a full cache");
    is_int(c.evictions, 1, "  evicted the least recently used handle");
    is_int(f.ah_live, 2, "  and destroyed it");
    is_int(dc_ah_get(&c, &a, &ea, &e), 0, "client 1 again");
    is_int(c.misses, 4, "  a miss: it was the one evicted");
    /* Both entries pinned now: a third client cannot get in. */
    is_int(dc_ah_get(&c, &cc, &ec, &e), -EBUSY, "full of pinned handles: -EBUSY");
    dc_ah_put(&c, eb);
    is_int(dc_ah_get(&c, &cc, &ec, &e), 0, "client 3 once client 2 is unpinned");
    ok(c.count == 2 && f.ah_live == 2, "  still 2 handles");
    dc_ah_put(&c, ea);
    dc_ah_put(&c, ec);
    f.ah_fail = true;
    is_int(dc_ah_get(&c, &d, &ed, &e), LODE_EUNAVAILABLE, "create fails: LODE_EUNAVAILABLE");
    ok(ed == NULL && c.failures == 1, "  nothing returned, the failure counted");
    f.ah_fail = false;
    is_int(dc_ah_get(&c, &d, &ed, &e), 0, "the next try creates it");
    dc_ah_put(&c, ed);

    /* Without GRH the LID is the key: GID bytes are ignored. */
    struct cmn_dc_target l1 = a, l2 = b;
    l1.ah.is_global = l2.ah.is_global = false;
    l1.ah.dlid = l2.ah.dlid = 0x21;
    struct dc_ah_entry *x, *y;
    dc_ah_get(&c, &l1, &x, &e);
    dc_ah_get(&c, &l2, &y, &e);
    ok(x == y, "g = 0: keyed by LID");
    dc_ah_put(&c, x);
    dc_ah_put(&c, y);
    dc_ah_cache_fini(&c);
    is_int(f.ah_live, 0, "fini destroys every handle");
}

static void test_qp_plan(void)
{
    struct dc_qp_step s[DC_QP_PLAN_MAX];
    size_t n;
    struct cmn_err e;
    is_int(dc_qp_plan(DC_QPS_RESET, &qp_ok, s, &n, &e), 0, "plan from RESET");
    is_int(n, 3, "  3 steps");
    ok(s[0].state == DC_QPS_INIT && s[0].mask == 0x31 && s[0].port_num == 1 &&
       s[0].pkey_index == 0, "  INIT: state|pkey_index|port (0x31), port 1");
    ok(s[1].state == DC_QPS_RTR && s[1].mask == 0x101 && s[1].path_mtu == 5,
       "  RTR: state|path_mtu (0x101), MTU 4096");
    ok(s[2].state == DC_QPS_RTS && s[2].mask == 0x12e01 && s[2].timeout == 16 &&
       s[2].retry_cnt == 7 && s[2].rnr_retry == 0 && s[2].max_rd_atomic == 16 &&
       s[2].sq_psn == 0, "  RTS: timeout|retry|rnr_retry|max_rd_atomic|sq_psn (0x12e01)");
#ifdef HAVE_MLX5DV
    ok(s[0].mask == (IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT) &&
       s[1].mask == (IBV_QP_STATE | IBV_QP_PATH_MTU) &&
       s[2].mask == (IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                     IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC),
       "  the masks match rdma-core's verbs.h");
#endif
    struct dc_qp_params p = qp_ok;
    p.rtr_av = true;
    dc_qp_plan(DC_QPS_RESET, &p, s, &n, &e);
    ok(s[1].mask == 0x181 && s[1].av_port == 1 && s[1].av_is_global && s[1].av_sgid_index == 3 &&
       s[1].av_hop_limit == 64, "rtr_av: RTR also carries the port's address vector (0x181)");
    is_int(dc_qp_plan(DC_QPS_ERR, &qp_ok, s, &n, &e), 0, "plan from ERR");
    ok(n == 4 && s[0].state == DC_QPS_RESET && s[0].mask == 0x1 && s[1].state == DC_QPS_INIT &&
       s[3].state == DC_QPS_RTS, "  RESET, INIT, RTR, RTS");
    dc_qp_plan(DC_QPS_SQE, &qp_ok, s, &n, &e);
    ok(n == 4 && s[0].state == DC_QPS_RESET, "from SQE: through RESET too");
    dc_qp_plan(DC_QPS_INIT, &qp_ok, s, &n, &e);
    ok(n == 2 && s[0].state == DC_QPS_RTR, "from INIT: RTR, RTS");
    dc_qp_plan(DC_QPS_RTR, &qp_ok, s, &n, &e);
    ok(n == 1 && s[0].state == DC_QPS_RTS, "from RTR: RTS");
    dc_qp_plan(DC_QPS_RTS, &qp_ok, s, &n, &e);
    is_int(n, 0, "from RTS: nothing");
    dc_qp_step_error(&s[0]);
    ok(s[0].state == DC_QPS_ERR && s[0].mask == 0x1, "the error step: state only");

    static const struct {
        const char *what;
        struct dc_qp_params p;
    } bad[] = {
        {"port 0", {.port = 0, .path_mtu = 5, .timeout = 16, .max_rd_atomic = 1}},
        {"MTU code 6", {.port = 1, .path_mtu = 6, .timeout = 16, .max_rd_atomic = 1}},
        {"MTU code 0", {.port = 1, .path_mtu = 0, .timeout = 16, .max_rd_atomic = 1}},
        {"timeout 0", {.port = 1, .path_mtu = 5, .timeout = 0, .max_rd_atomic = 1}},
        {"RNR retry 7", {.port = 1, .path_mtu = 5, .timeout = 16, .rnr_retry = 7,
                         .max_rd_atomic = 1}},
        {"retry 8", {.port = 1, .path_mtu = 5, .timeout = 16, .retry_cnt = 8,
                     .max_rd_atomic = 1}},
        {"max_rd_atomic 0", {.port = 1, .path_mtu = 5, .timeout = 16, .max_rd_atomic = 0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(dc_qp_plan(DC_QPS_RESET, &bad[i].p, s, &n, &e), -EINVAL, "%s refused",
               bad[i].what);
}

static void test_dci_table(void)
{
    is_int(dc_dci_next(DCI_READY, DCI_EV_WR_ERROR), DCI_DRAINING, "READY + WR error: DRAINING");
    is_int(dc_dci_next(DCI_READY, DCI_EV_FORCE), DCI_DRAINING, "READY + force: DRAINING");
    is_int(dc_dci_next(DCI_READY, DCI_EV_RECOVERED), -1, "READY + recovered: impossible");
    is_int(dc_dci_next(DCI_DRAINING, DCI_EV_WR_ERROR), DCI_DRAINING, "DRAINING stays on errors");
    is_int(dc_dci_next(DCI_DRAINING, DCI_EV_RECOVERED), DCI_READY, "DRAINING + recovered: READY");
    is_int(dc_dci_next(DCI_DRAINING, DCI_EV_RECOVERY_FAILED), DCI_BROKEN,
           "DRAINING + recovery failed: BROKEN");
    is_int(dc_dci_next(DCI_BROKEN, DCI_EV_RECOVERED), DCI_READY, "BROKEN + recovered: READY");
    is_int(dc_dci_next(DCI_BROKEN, DCI_EV_RECOVERY_FAILED), DCI_BROKEN, "BROKEN stays BROKEN");
    is_int(dc_dci_next(DCI_BROKEN, DCI_EV_WR_ERROR), -1, "BROKEN + WR error: impossible");
    is_int(dc_dci_next(DCI_DEAD, DCI_EV_RECOVERED), -1, "DEAD never recovers");
    is_int(dc_dci_next(DCI_DEAD, DCI_EV_WR_ERROR), DCI_DEAD, "DEAD stays DEAD");
    for (int s = DCI_READY; s <= DCI_DEAD; s++)
        is_int(dc_dci_next((enum dc_dci_state)s, DCI_EV_CLOSE), DCI_DEAD, "%s + close: DEAD",
               dc_dci_state_name((enum dc_dci_state)s));
    is_int(dc_dci_next((enum dc_dci_state)7, DCI_EV_CLOSE), -1, "unknown state: -1");
}

/* The instance's statistics as metrics: counters grow by the statistics' growth, a restarted
 * instance (statistics that went down) counts from zero, gauges take the values. */
static void test_metrics(void)
{
    struct cmn_metrics *m;
    if (cmn_metrics_create(&m) != 0)
        tap_bail("metrics");
    struct cmn_dp_dc_metrics dm;
    is_int(cmn_dp_dc_metrics_init(&dm, m, "lode_test", "worker=\"0\""), 0, "metrics: registered");
    struct cmn_dp_dc_stats s = {.writes = 5, .bytes_written = 5000, .wr_errors = 1,
                                .dcis_ready = 15, .dcis_total = 16, .slots_free = 60};
    cmn_dp_dc_metrics_feed(&dm, &s);
    s.writes = 7;
    s.bytes_written = 9000;
    s.dcis_ready = 16;
    cmn_dp_dc_metrics_feed(&dm, &s);
    ok(cmn_counter_value(dm.c[0]) == 7 && cmn_counter_value(dm.c[2]) == 9000 &&
           cmn_counter_value(dm.c[6]) == 1,
       "metrics: counters follow the statistics (writes 7, bytes 9000, WR errors 1)");
    ok(cmn_gauge_value(dm.g[4]) == 16 && cmn_gauge_value(dm.g[5]) == 16 &&
           cmn_gauge_value(dm.g[2]) == 60, "metrics: gauges take the last values");
    s.writes = 2; /* a new instance */
    cmn_dp_dc_metrics_feed(&dm, &s);
    is_int((int)cmn_counter_value(dm.c[0]), 9, "metrics: a restarted instance counts from zero");
    struct cmn_buf out;
    cmn_buf_init(&out);
    is_int(cmn_metrics_render(m, &out), 0, "metrics: rendered");
    cmn_buf_append(&out, "", 1);
    ok(strstr((const char *)out.data, "lode_test_dc_writes_total{worker=\"0\"} 9\n") != NULL,
       "metrics: the series' names and labels");
    ok(strstr((const char *)out.data, "lode_test_dc_dcis_ready{worker=\"0\"} 16\n") != NULL,
       "metrics: a gauge's name");
    cmn_buf_free(&out);
    cmn_metrics_destroy(m);
}

int main(void)
{
    cmn_log_init("test_dp_dc", CMN_LOG_ERROR);
    test_config();
    test_slicing();
    test_req();
    test_wc();
    test_slots();
    test_targets();
    test_ah_cache();
    test_qp_plan();
    test_dci_table();
    test_metrics();
    return tap_done();
}
