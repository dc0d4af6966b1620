/* common/dp_dc_core.c and dp_dc_engine.c: the dc transport without a NIC.
 *
 * The pure pieces (configuration checks, call bookkeeping, completion statuses, staging slots,
 * slicing into WRs, target matching, the address-handle cache, the DCI's QP plan and life
 * cycle) and then the whole engine against a fake NIC that records every post and every
 * modify-QP step and lets the test complete WRs with any status.
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
#include "tests/tap.h"

#ifdef HAVE_MLX5DV
#include <infiniband/verbs.h>
#endif

#define SLOT 4096u

/* ------------------------------------------------------------------ helpers */

static void target(struct cmn_dc_target *t, uint8_t host, uint32_t dctn, uint64_t base,
                   uint32_t size)
{
    /* A RoCEv2 client ::ffff:192.168.0.<host>, rkey 0xa1b2c3d4, through the real parser. */
    char s[128];
    snprintf(s, sizeof s, "%016llx:%08x:a1b2c3d4:0000:%06x:1:00000000000000000000ffffc0a800%02x",
             (unsigned long long)base, size, dctn, host);
    struct cmn_rdma_token tok;
    struct cmn_err e;
    struct cmn_dc_local l = {.sgid_index = 3, .hop_limit = 64, .traffic_class = 96,
                             .dc_key = 0x1122334455667788ull, .timeout = 16, .retry_cnt = 7};
    if (cmn_rdma_token_parse(s, strlen(s), &tok, &e) != 0 || cmn_dc_derive(&tok, &l, t, &e) != 0)
        tap_bail("test token: %s", e.msg);
}

/* A target of host `host` whose calls go to DCI `want` of n (tries DCT numbers). */
static void target_on(struct cmn_dc_target *t, uint8_t host, uint32_t want, uint32_t n,
                      uint32_t skip_dctn)
{
    for (uint32_t dctn = 1; dctn < 100000; dctn++) {
        if (dctn == skip_dctn)
            continue;
        target(t, host, dctn, 0x7f0000000000ull, 1u << 20);
        if (dc_pick_dci(t, n) == want)
            return;
    }
    tap_bail("no DCT number maps to DCI %u", want);
}

struct rec {
    int calls, status;
};

static void rec_cb(void *data, int status)
{
    struct rec *r = data;
    r->calls++;
    r->status = status;
}

/* ------------------------------------------------------------------ the fake NIC */

#define MAX_POSTS 256
#define MAX_STEPS 256

struct fake {
    struct dc_post posts[MAX_POSTS];
    uint32_t post_dci[MAX_POSTS];
    uint8_t *post_data[MAX_POSTS];   /* the slot's bytes when posted */
    size_t nposts;
    struct dc_qp_step steps[MAX_STEPS];
    uint32_t step_dci[MAX_STEPS];
    size_t nsteps;
    int fail_post;                   /* errno to return from the next post, once */
    int fail_modify_dci;             /* -1, or a DCI whose modifies fail */
    bool ah_fail;
    int ah_live, ah_created;
    struct cmn_dc_ah last_ah;
};

static int fake_post(void *hw, uint32_t dci, const struct dc_post *p)
{
    struct fake *f = hw;
    if (f->fail_post) {
        int e = f->fail_post;
        f->fail_post = 0;
        return -e;
    }
    if (f->nposts == MAX_POSTS)
        tap_bail("too many posts");
    f->posts[f->nposts] = *p;
    f->post_dci[f->nposts] = dci;
    f->post_data[f->nposts] = malloc(p->len);
    memcpy(f->post_data[f->nposts], p->local, p->len);
    f->nposts++;
    return 0;
}

static int fake_modify(void *hw, uint32_t dci, const struct dc_qp_step *s)
{
    struct fake *f = hw;
    if (f->nsteps == MAX_STEPS)
        tap_bail("too many steps");
    f->steps[f->nsteps] = *s;
    f->step_dci[f->nsteps] = dci;
    f->nsteps++;
    return (int)dci == f->fail_modify_dci ? -EINVAL : 0;
}

static void *fake_ah_create(void *hw, const struct cmn_dc_ah *attr, struct cmn_err *err)
{
    struct fake *f = hw;
    if (f->ah_fail) {
        cmn_err_set(err, LODE_EUNAVAILABLE, "fake: no route");
        return NULL;
    }
    f->last_ah = *attr;
    f->ah_live++;
    return (void *)(uintptr_t)++f->ah_created;
}

static void fake_ah_destroy(void *hw, void *ah)
{
    struct fake *f = hw;
    (void)ah;
    f->ah_live--;
}

static const struct dc_hw_ops fake_ops = {
    .post = fake_post,
    .modify = fake_modify,
    .ah_create = fake_ah_create,
    .ah_destroy = fake_ah_destroy,
};

static void fake_reset(struct fake *f)
{
    for (size_t i = 0; i < f->nposts; i++)
        free(f->post_data[i]);
    memset(f, 0, sizeof *f);
    f->fail_modify_dci = -1;
}

static struct cmn_dp_dc_config small_cfg(void)
{
    struct cmn_dp_dc_config c;
    cmn_dp_dc_config_defaults(&c);
    c.device = "fake0";
    c.num_dcis = 2;
    c.sq_depth = 4;
    c.slot_bytes = SLOT;
    c.staging_bytes = 8 * SLOT;
    c.max_queued = 16;
    struct cmn_err e;
    if (cmn_dp_dc_config_check(&c, &c, &e) != 0)
        tap_bail("small config: %s", e.msg);
    return c;
}

static const struct dc_qp_params qp_ok = {
    .port = 1, .path_mtu = 5, .timeout = 16, .retry_cnt = 7, .rnr_retry = 0,
    .max_rd_atomic = 16, .is_global = true, .sgid_index = 3, .hop_limit = 64,
};

static uint8_t *g_pool;

static void engine_up(struct dc_engine *e, struct fake *f, const struct cmn_dp_dc_config *c)
{
    fake_reset(f);
    free(g_pool);
    g_pool = calloc(1, c->staging_bytes);
    struct cmn_err err;
    if (dc_engine_init(e, c, &fake_ops, f, g_pool, &qp_ok, 42, &err) != 0)
        tap_bail("engine init: %s", err.msg);
    f->nsteps = 0;
}

static void engine_down(struct dc_engine *e, struct fake *f)
{
    dc_engine_shutdown(e, 0);
    /* flush whatever the fake still holds */
    for (size_t i = 0; i < f->nposts; i++)
        dc_engine_on_wc(e, f->posts[i].wr_id, DC_WC_WR_FLUSH_ERR, 0);
    dc_engine_run_done(e);
    dc_engine_fini(e);
    is_int(f->ah_live, 0, "every address handle destroyed");
    fake_reset(f);
}

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

/* ------------------------------------------------------------------ the engine */

static void test_engine_basic(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_engine e;
    struct cmn_dp_dc_config c = small_cfg();
    fake_reset(&f);
    g_pool = calloc(1, c.staging_bytes);
    struct cmn_err err;
    is_int(dc_engine_init(&e, &c, &fake_ops, &f, g_pool, &qp_ok, 42, &err), 0, "engine up");
    ok(f.nsteps == 6 && f.step_dci[0] == 0 && f.steps[0].state == DC_QPS_INIT &&
       f.steps[1].state == DC_QPS_RTR && f.steps[2].state == DC_QPS_RTS && f.step_dci[3] == 1 &&
       f.steps[5].state == DC_QPS_RTS, "each DCI taken RESET -> INIT -> RTR -> RTS");
    is_int(e.drain_ms, 2148, "drain bound 2148 ms at timeout 16, retry 7");
    is_int(e.stall_ms, 2 * 2148 + 1000, "stall watchdog at twice that plus a second");
    f.nsteps = 0;

    struct cmn_dc_target t;
    target(&t, 1, 7, 0x7f0000000000ull, 1u << 20);
    uint8_t src[10000];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    struct rec r = {0};
    is_int(dc_engine_submit(&e, &t, 100, src, sizeof src, false, rec_cb, &r, 0), 0,
           "write 10000 bytes at offset 100");
    is_int(f.nposts, 3, "  3 WRs posted");
    bool good = true;
    for (int i = 0; i < 3; i++) {
        const struct dc_post *p = &f.posts[i];
        uint32_t want = i < 2 ? 4096 : 10000 - 8192;
        good &= !p->is_read && p->len == want && p->raddr == t.base + 100 + (uint64_t)i * 4096 &&
                p->rkey == 0xa1b2c3d4u && p->dctn == 7 && p->dc_key == 0x1122334455667788ull &&
                p->ah != NULL && memcmp(f.post_data[i], src + i * 4096, want) == 0;
    }
    ok(good, "  lengths, remote addresses, rkey, DCT, DC key and staged bytes are right");
    ok(f.post_dci[0] == f.post_dci[1] && f.post_dci[1] == f.post_dci[2], "  all on one DCI");
    dc_engine_run_done(&e);
    is_int(r.calls, 0, "no callback before the completions");
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_SUCCESS, 1);
    dc_engine_on_wc(&e, f.posts[1].wr_id, DC_WC_SUCCESS, 1);
    dc_engine_run_done(&e);
    is_int(r.calls, 0, "no callback with a WR still in flight");
    dc_engine_on_wc(&e, f.posts[2].wr_id, DC_WC_SUCCESS, 1);
    is_int(r.calls, 0, "callbacks wait for run_done");
    ok(dc_engine_run_done(&e), "run_done delivers");
    ok(r.calls == 1 && r.status == 0, "the write's callback, once, status 0");
    dc_engine_on_wc(&e, f.posts[2].wr_id, DC_WC_SUCCESS, 1);
    dc_engine_run_done(&e);
    is_int(r.calls, 1, "a repeated completion is ignored");
    struct cmn_dp_dc_stats st;
    dc_engine_stats(&e, &st);
    ok(st.writes == 1 && st.bytes_written == 10000 && st.wrs_posted == 3 && st.slots_free == 8 &&
       st.wrs_in_flight == 0 && st.dcis_ready == 2 && st.ah_misses == 1, "stats after a write");

    /* A read: the NIC places bytes in the slot, the completion copies them out. */
    uint8_t dst[5000];
    memset(dst, 0, sizeof dst);
    r = (struct rec){0};
    size_t base_post = f.nposts;
    is_int(dc_engine_submit(&e, &t, 4096, dst, sizeof dst, true, rec_cb, &r, 2), 0,
           "read 5000 bytes");
    is_int(f.nposts - base_post, 2, "  2 WRs");
    ok(f.posts[base_post].is_read && f.posts[base_post + 1].len == 904 &&
       f.posts[base_post + 1].raddr == t.base + 8192, "  READs, the second 904 bytes at +8192");
    for (size_t i = base_post; i < f.nposts; i++)
        memset(f.posts[i].local, 0x40 + (int)(i - base_post), f.posts[i].len);
    dc_engine_on_wc(&e, f.posts[base_post + 1].wr_id, DC_WC_SUCCESS, 3);
    dc_engine_on_wc(&e, f.posts[base_post].wr_id, DC_WC_SUCCESS, 3);
    dc_engine_run_done(&e);
    ok(r.calls == 1 && r.status == 0, "the read completes (completions in any order)");
    ok(dst[0] == 0x40 && dst[4095] == 0x40 && dst[4096] == 0x41 && dst[4999] == 0x41,
       "  the bytes landed at their offsets");
    dc_engine_stats(&e, &st);
    ok(st.reads == 1 && st.bytes_read == 5000 && st.ah_hits == 1, "  counted; the AH reused");

    /* Refusals before anything is queued. */
    is_int(dc_engine_submit(&e, &t, 0, src, 0, false, rec_cb, &r, 3), -EINVAL, "0 bytes");
    is_int(dc_engine_submit(&e, &t, 0, src, (1ull << 30) + 1, false, rec_cb, &r, 3), -EINVAL,
           "more than 1 GiB in one call");
    is_int(dc_engine_submit(&e, &t, (1u << 20) - 10, src, 11, false, rec_cb, &r, 3),
           LODE_EWINDOW, "one byte past the window");
    is_int(dc_engine_submit(&e, &t, 1u << 20, src, 1, false, rec_cb, &r, 3), LODE_EWINDOW,
           "at the window's end");
    is_int(dc_engine_submit(&e, &t, (1u << 20) - 10, src, 10, false, rec_cb, &r, 3), 0,
           "the last 10 bytes of the window");
    dc_engine_on_wc(&e, f.posts[f.nposts - 1].wr_id, DC_WC_SUCCESS, 3);
    dc_engine_run_done(&e);
    engine_down(&e, &f);
}

static void test_engine_limits(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_engine e;
    struct cmn_dp_dc_config c = small_cfg();
    engine_up(&e, &f, &c);
    struct cmn_dc_target a, b;
    target_on(&a, 1, 0, 2, 0);
    target_on(&b, 2, 1, 2, 0);
    static uint8_t src[10 * SLOT];
    struct rec ra = {0}, rb = {0};
    is_int(dc_engine_submit(&e, &a, 0, src, 10 * SLOT, false, rec_cb, &ra, 0), 0,
           "10-WR write on DCI 0");
    is_int(f.nposts, 4, "  4 posted: the send queue depth");
    is_int(dc_engine_submit(&e, &b, 0, src, 5 * SLOT, false, rec_cb, &rb, 0), 0,
           "5-WR write on DCI 1");
    is_int(f.nposts, 8, "  4 more: all 8 staging slots in use");
    struct cmn_dp_dc_stats st;
    dc_engine_stats(&e, &st);
    ok(st.slots_free == 0 && st.calls_queued == 2 && st.wrs_in_flight == 8,
       "  no slot free, both calls still queued");
    dc_engine_on_wc(&e, f.posts[4].wr_id, DC_WC_SUCCESS, 1);
    ok(f.nposts == 9 && f.post_dci[8] == 1, "a slot freed on DCI 1 goes to DCI 1's next WR");
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_SUCCESS, 1);
    ok(f.nposts == 10 && f.post_dci[9] == 0 && f.posts[9].raddr == a.base + 4 * SLOT,
       "then DCI 0 continues where it stopped");
    /* Drain everything, posting as we go. */
    for (size_t i = 0; i < f.nposts; i++)
        if (i != 0 && i != 4)
            dc_engine_on_wc(&e, f.posts[i].wr_id, DC_WC_SUCCESS, 2);
    is_int(f.nposts, 15, "15 WRs in all");
    dc_engine_run_done(&e);
    ok(ra.calls == 1 && ra.status == 0 && rb.calls == 1 && rb.status == 0, "both complete");

    /* The queue limit: calls waiting with WRs to post. */
    struct rec rq[17];
    memset(rq, 0, sizeof rq);
    int last = 0;
    for (int i = 0; i < 17; i++)
        last = dc_engine_submit(&e, &a, 0, src, 10 * SLOT, false, rec_cb, &rq[i], 3);
    is_int(last, -EAGAIN, "the 17th waiting call: -EAGAIN");
    dc_engine_stats(&e, &st);
    is_int(st.calls_queued, 16, "16 queued");
    engine_down(&e, &f);
    int failed = 0;
    for (int i = 0; i < 16; i++)
        failed += rq[i].calls == 1 && rq[i].status == LODE_ESHUTDOWN;
    is_int(failed, 16, "shutdown fails every queued call with LODE_ESHUTDOWN, once");
}

static void test_engine_recovery(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_engine e;
    struct cmn_dp_dc_config c = small_cfg();
    engine_up(&e, &f, &c);
    struct cmn_dc_target x, y;
    target_on(&x, 1, 0, 2, 0);
    target_on(&y, 2, 0, 2, x.dctn);
    static uint8_t src[2 * SLOT];
    struct rec rx = {0}, ry = {0};
    dc_engine_submit(&e, &x, 0, src, SLOT, false, rec_cb, &rx, 0);
    dc_engine_submit(&e, &y, 0, src, 2 * SLOT, false, rec_cb, &ry, 0);
    ok(f.nposts == 3 && f.post_dci[2] == 0, "X (1 WR) and Y (2 WRs) share DCI 0");
    uint64_t y0 = f.posts[1].wr_id, y1 = f.posts[2].wr_id;
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_REM_ACCESS_ERR, 1);
    dc_engine_run_done(&e);
    ok(rx.calls == 1 && rx.status == LODE_EWINDOW, "X: remote access error -> LODE_EWINDOW");
    is_int(f.nsteps, 0, "no recovery while Y's WRs are still in the DCI");
    dc_engine_on_wc(&e, y0, DC_WC_WR_FLUSH_ERR, 2);
    dc_engine_on_wc(&e, y1, DC_WC_WR_FLUSH_ERR, 2);
    ok(f.nsteps == 4 && f.step_dci[0] == 0 && f.steps[0].state == DC_QPS_RESET &&
       f.steps[1].state == DC_QPS_INIT && f.steps[2].state == DC_QPS_RTR &&
       f.steps[3].state == DC_QPS_RTS, "flushed: DCI 0 recovered ERROR -> RESET -> INIT -> RTR "
       "-> RTS");
    ok(f.nposts == 5 && f.posts[3].raddr == y.base && f.posts[4].raddr == y.base + SLOT,
       "Y's flushed WRs posted again, in order");
    dc_engine_run_done(&e);
    is_int(ry.calls, 0, "Y not reported failed");
    dc_engine_on_wc(&e, y0, DC_WC_SUCCESS, 3);    /* the wr_id survives a repost */
    dc_engine_on_wc(&e, y1, DC_WC_SUCCESS, 3);
    dc_engine_run_done(&e);
    ok(ry.calls == 1 && ry.status == 0, "Y completes: another client's error cost it nothing");
    struct cmn_dp_dc_stats st;
    dc_engine_stats(&e, &st);
    ok(st.wr_errors == 1 && st.wrs_reposted == 2 && st.dci_recoveries == 1 &&
       st.calls_failed == 1, "stats: 1 error, 2 reposts, 1 recovery");

    /* Reposts are bounded: a WR flushed DC_REPOST_MAX + 1 times fails. */
    ry = (struct rec){0};
    dc_engine_submit(&e, &y, 0, src, SLOT, false, rec_cb, &ry, 4);
    uint64_t w = f.posts[f.nposts - 1].wr_id;
    for (int i = 0; i <= DC_REPOST_MAX; i++)
        dc_engine_on_wc(&e, w, DC_WC_WR_FLUSH_ERR, 5);
    dc_engine_run_done(&e);
    ok(ry.calls == 1 && ry.status == LODE_ECLOSED, "flushed %d times: LODE_ECLOSED",
       DC_REPOST_MAX + 1);

    /* A post the hardware refuses: the WR fails, the DCI is reset. */
    f.nsteps = 0;
    f.fail_post = ENOMEM;
    ry = (struct rec){0};
    is_int(dc_engine_submit(&e, &y, 0, src, SLOT, false, rec_cb, &ry, 6), 0, "submit");
    dc_engine_run_done(&e);
    ok(ry.calls == 1 && ry.status == -EIO, "a refused post fails the call with -EIO");
    ok(f.nsteps == 5 && f.steps[0].state == DC_QPS_ERR && f.steps[4].state == DC_QPS_RTS,
       "  and the DCI goes to ERROR and back to RTS");

    /* No address handle for the client. */
    struct cmn_dc_target z;
    target(&z, 77, 77, 0x1000, 4096);
    f.ah_fail = true;
    size_t posts = f.nposts;
    struct rec rz = {0};
    is_int(dc_engine_submit(&e, &z, 0, src, 100, false, rec_cb, &rz, 7), 0,
           "submit to an unreachable client");
    dc_engine_run_done(&e);
    ok(rz.calls == 1 && rz.status == LODE_EUNAVAILABLE && f.nposts == posts,
       "  LODE_EUNAVAILABLE, nothing posted");
    f.ah_fail = false;
    engine_down(&e, &f);
}

static void test_engine_broken(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_engine e;
    struct cmn_dp_dc_config c = small_cfg();
    engine_up(&e, &f, &c);
    struct cmn_dc_target x, y;
    target_on(&x, 1, 0, 2, 0);
    target_on(&y, 2, 0, 2, x.dctn);
    static uint8_t src[6 * SLOT];
    struct rec rx = {0}, ry = {0};
    dc_engine_submit(&e, &x, 0, src, 4 * SLOT, false, rec_cb, &rx, 0);
    dc_engine_submit(&e, &y, 0, src, 2 * SLOT, false, rec_cb, &ry, 0);
    ok(f.nposts == 4, "X fills DCI 0's send queue, Y waits behind it");
    f.fail_modify_dci = 0;
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_RETRY_EXC_ERR, 1);
    for (int i = 1; i < 4; i++)
        dc_engine_on_wc(&e, f.posts[i].wr_id, DC_WC_WR_FLUSH_ERR, 1);
    dc_engine_run_done(&e);
    ok(rx.calls == 1 && rx.status == LODE_ETIMEOUT, "X: retries exhausted -> LODE_ETIMEOUT");
    struct cmn_dp_dc_stats st;
    dc_engine_stats(&e, &st);
    ok(st.dci_recovery_failures == 1 && st.dcis_ready == 1, "DCI 0 could not recover: broken");
    ok(f.nposts == 6 && f.post_dci[4] == 1 && f.post_dci[5] == 1,
       "Y moved to DCI 1 and was posted there");
    dc_engine_on_wc(&e, f.posts[4].wr_id, DC_WC_SUCCESS, 2);
    dc_engine_on_wc(&e, f.posts[5].wr_id, DC_WC_SUCCESS, 2);
    dc_engine_run_done(&e);
    ok(ry.calls == 1 && ry.status == 0, "Y completes");
    f.fail_modify_dci = -1;
    dc_engine_tick(&e, 1 + DC_RETRY_BROKEN_MS - 1);
    dc_engine_stats(&e, &st);
    is_int(st.dcis_ready, 1, "not retried before its time");
    dc_engine_tick(&e, 1 + DC_RETRY_BROKEN_MS);
    dc_engine_stats(&e, &st);
    ok(st.dcis_ready == 2 && st.dci_recoveries == 1, "retried after %d ms: ready again",
       DC_RETRY_BROKEN_MS);
    engine_down(&e, &f);

    /* One DCI, and it breaks: queued calls and new ones get LODE_EUNAVAILABLE. */
    c.num_dcis = 1;
    cmn_dp_dc_config_check(&c, &c, NULL);
    engine_up(&e, &f, &c);
    rx = (struct rec){0};
    ry = (struct rec){0};
    dc_engine_submit(&e, &x, 0, src, 4 * SLOT, false, rec_cb, &rx, 0);
    dc_engine_submit(&e, &y, 0, src, SLOT, false, rec_cb, &ry, 0);
    f.fail_modify_dci = 0;
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_FATAL_ERR, 1);
    for (int i = 1; i < 4; i++)
        dc_engine_on_wc(&e, f.posts[i].wr_id, DC_WC_WR_FLUSH_ERR, 1);
    dc_engine_run_done(&e);
    ok(rx.status == -EIO && ry.calls == 1 && ry.status == LODE_EUNAVAILABLE,
       "fatal error -> -EIO; the call queued behind it: LODE_EUNAVAILABLE");
    is_int(dc_engine_submit(&e, &y, 0, src, SLOT, false, rec_cb, &ry, 2), LODE_EUNAVAILABLE,
           "no usable DCI: submit refused");
    engine_down(&e, &f);
}

static void test_engine_fence(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_engine e;
    struct cmn_dp_dc_config c = small_cfg();
    engine_up(&e, &f, &c);
    struct cmn_dc_target z, v;
    target_on(&z, 1, 0, 2, 0);
    target_on(&v, 2, 0, 2, z.dctn);
    static uint8_t src[10 * SLOT];
    struct rec rz = {0}, rf = {0}, r2 = {0};
    dc_engine_submit(&e, &z, 0, src, 10 * SLOT, false, rec_cb, &rz, 0);
    is_int(f.nposts, 4, "10-WR write: 4 posted, 6 waiting");
    is_int(dc_engine_fence(&e, &z, rec_cb, &rf, 10), 0, "fence the target");
    dc_engine_run_done(&e);
    ok(rz.calls == 0 && rf.calls == 0, "neither done while 4 WRs are in flight");
    is_int(dc_engine_submit(&e, &z, 0, src, 1, false, rec_cb, &r2, 10), LODE_ECLOSED,
           "a new call to a fenced target: LODE_ECLOSED");
    for (int i = 0; i < 4; i++)
        dc_engine_on_wc(&e, f.posts[i].wr_id, DC_WC_SUCCESS, 11);
    is_int(f.nposts, 4, "the unposted 6 WRs were never posted");
    dc_engine_run_done(&e);
    ok(rz.calls == 1 && rz.status == LODE_ECLOSED, "the call fails LODE_ECLOSED (cut short)");
    ok(rf.calls == 1 && rf.status == 0, "the fence completes once nothing is in flight");
    is_int(dc_engine_submit(&e, &z, 0, src, 1, false, rec_cb, &r2, 12), 0,
           "after the fence the target can be used again");
    dc_engine_on_wc(&e, f.posts[4].wr_id, DC_WC_SUCCESS, 12);
    rf = (struct rec){0};
    is_int(dc_engine_fence(&e, &z, rec_cb, &rf, 12), 0, "fence with nothing in flight");
    dc_engine_run_done(&e);
    ok(rf.calls == 1 && rf.status == 0 && r2.calls == 1 && r2.status == 0,
       "  completes at once; the finished call kept its success");

    /* A fully posted call under a fence runs to completion and keeps its status. */
    struct rec rs = {0};
    dc_engine_submit(&e, &z, 0, src, 2 * SLOT, false, rec_cb, &rs, 13);
    rf = (struct rec){0};
    dc_engine_fence(&e, &z, rec_cb, &rf, 13);
    dc_engine_on_wc(&e, f.posts[f.nposts - 2].wr_id, DC_WC_SUCCESS, 14);
    dc_engine_on_wc(&e, f.posts[f.nposts - 1].wr_id, DC_WC_SUCCESS, 14);
    dc_engine_run_done(&e);
    ok(rs.calls == 1 && rs.status == 0 && rf.calls == 1, "fully posted: status 0, fence done");

    /* The drain bound runs out: the DCI is cut off. */
    rz = (struct rec){0};
    struct rec rv = {0};
    f.nsteps = 0;
    size_t p0 = f.nposts;
    dc_engine_submit(&e, &z, 0, src, 2 * SLOT, false, rec_cb, &rz, 1000);
    dc_engine_submit(&e, &v, 0, src, SLOT, false, rec_cb, &rv, 1000);
    ok(f.nposts == p0 + 3, "Z (2 WRs) and V (1 WR) in flight on one DCI");
    rf = (struct rec){0};
    dc_engine_fence(&e, &z, rec_cb, &rf, 1000);
    uint64_t bound = 1000 + e.drain_ms + DC_FENCE_MARGIN_MS;
    dc_engine_tick(&e, bound - 1);
    is_int(f.nsteps, 0, "nothing forced before the drain bound");
    dc_engine_tick(&e, bound);
    ok(f.nsteps == 1 && f.steps[0].state == DC_QPS_ERR, "at the bound: the DCI moved to ERROR");
    for (size_t i = p0; i < p0 + 3; i++)
        dc_engine_on_wc(&e, f.posts[i].wr_id, DC_WC_WR_FLUSH_ERR, bound + 1);
    dc_engine_run_done(&e);
    ok(rz.calls == 1 && rz.status == LODE_ECLOSED, "Z's flushed WRs are not reposted: ECLOSED");
    ok(rf.calls == 1 && rf.status == 0, "the fence completes");
    ok(f.nposts == p0 + 4 && f.posts[p0 + 3].raddr == v.base && rv.calls == 0,
       "V's WR was posted again after the recovery");
    dc_engine_on_wc(&e, f.posts[p0 + 3].wr_id, DC_WC_SUCCESS, bound + 2);
    dc_engine_run_done(&e);
    ok(rv.calls == 1 && rv.status == 0, "V completes");
    struct cmn_dp_dc_stats st;
    dc_engine_stats(&e, &st);
    ok(st.fences == 4 && st.fences_forced == 1 && st.dci_forced == 1, "fence stats");
    engine_down(&e, &f);
}

static void test_engine_watchdog_shutdown(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_engine e;
    struct cmn_dp_dc_config c = small_cfg();
    engine_up(&e, &f, &c);
    struct cmn_dc_target s;
    target(&s, 1, 1, 0x1000, 1u << 20);
    static uint8_t src[10 * SLOT];
    struct rec r = {0};
    dc_engine_submit(&e, &s, 0, src, 100, false, rec_cb, &r, 50);
    dc_engine_tick(&e, 50 + e.stall_ms - 1);
    is_int(f.nsteps, 0, "watchdog quiet before stall_ms");
    dc_engine_tick(&e, 50 + e.stall_ms);
    ok(f.nsteps == 1 && f.steps[0].state == DC_QPS_ERR, "no completion for stall_ms: ERROR");
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_WR_FLUSH_ERR, 60 + e.stall_ms);
    ok(f.nsteps == 5 && f.nposts == 2, "recovered, the WR posted again");
    dc_engine_on_wc(&e, f.posts[1].wr_id, DC_WC_SUCCESS, 61 + e.stall_ms);
    dc_engine_run_done(&e);
    ok(r.calls == 1 && r.status == 0, "and it completes");

    /* Shutdown with a call half posted and a fence pending. */
    struct cmn_dc_target s2;    /* on the other DCI, so that its WR is in flight */
    target_on(&s2, 2, 1 - dc_pick_dci(&s, 2), 2, 0);
    struct rec ra = {0}, rb = {0}, rf = {0};
    size_t p0 = f.nposts;
    dc_engine_submit(&e, &s, 0, src, 10 * SLOT, false, rec_cb, &ra, 100);
    dc_engine_submit(&e, &s2, 0, src, 100, false, rec_cb, &rb, 100);
    dc_engine_fence(&e, &s2, rec_cb, &rf, 100);
    f.nsteps = 0;
    dc_engine_shutdown(&e, 101);
    dc_engine_run_done(&e);
    ok(rf.calls == 1 && rf.status == LODE_ESHUTDOWN, "the pending fence: LODE_ESHUTDOWN");
    ok(ra.calls == 0 && rb.calls == 0, "calls in flight wait for their flushes");
    ok(f.nsteps >= 1 && f.steps[0].state == DC_QPS_ERR, "DCIs with WRs moved to ERROR");
    ok(!dc_engine_quiet(&e), "not quiet yet");
    is_int(dc_engine_submit(&e, &s, 0, src, 1, false, rec_cb, &ra, 102), LODE_ESHUTDOWN,
           "no new calls while closing");
    is_int(dc_engine_fence(&e, &s, rec_cb, &ra, 102), LODE_ESHUTDOWN, "no new fences");
    for (size_t i = p0; i < f.nposts; i++)
        dc_engine_on_wc(&e, f.posts[i].wr_id, DC_WC_WR_FLUSH_ERR, 103);
    dc_engine_run_done(&e);
    ok(ra.calls == 1 && ra.status == LODE_ESHUTDOWN && rb.calls == 1 &&
       rb.status == LODE_ESHUTDOWN, "flushed calls fail LODE_ESHUTDOWN, once each");
    ok(dc_engine_quiet(&e), "quiet");
    dc_engine_fini(&e);
    is_int(f.ah_live, 0, "address handles destroyed");

    /* Abandon: the device never flushes. */
    engine_up(&e, &f, &c);
    ra = (struct rec){0};
    dc_engine_submit(&e, &s, 0, src, 2 * SLOT, false, rec_cb, &ra, 0);
    dc_engine_shutdown(&e, 1);
    dc_engine_abandon(&e);
    dc_engine_run_done(&e);
    ok(ra.calls == 1 && ra.status == LODE_ESHUTDOWN && dc_engine_quiet(&e),
       "abandon fails what was in flight");
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_SUCCESS, 2);
    is_int(ra.calls, 1, "a completion after that is ignored");
    dc_engine_fini(&e);
    fake_reset(&f);
}

/* Callbacks may call back into the engine. */
struct chain {
    struct dc_engine *e;
    struct cmn_dc_target *t;
    uint8_t *buf;
    struct rec second;
    int rv, nested;
};

static void chain_cb(void *data, int status)
{
    struct chain *c = data;
    (void)status;
    c->nested = dc_engine_run_done(c->e) ? 1 : 0;
    c->rv = dc_engine_submit(c->e, c->t, 0, c->buf, 10, false, rec_cb, &c->second, 5);
}

static void test_engine_reentry(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_engine e;
    struct cmn_dp_dc_config c = small_cfg();
    engine_up(&e, &f, &c);
    struct cmn_dc_target t;
    target(&t, 1, 1, 0x1000, 4096);
    uint8_t buf[16] = {0};
    struct chain ch = {.e = &e, .t = &t, .buf = buf, .rv = 1};
    dc_engine_submit(&e, &t, 0, buf, 10, false, chain_cb, &ch, 0);
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_SUCCESS, 1);
    dc_engine_run_done(&e);
    ok(ch.rv == 0 && ch.nested == 0, "a callback submits; a nested run_done does nothing");
    ok(f.nposts == 2, "the new call was posted");
    dc_engine_on_wc(&e, f.posts[1].wr_id, DC_WC_SUCCESS, 6);
    dc_engine_run_done(&e);
    ok(ch.second.calls == 1 && ch.second.status == 0, "and completes");
    engine_down(&e, &f);
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
    test_engine_basic();
    test_engine_limits();
    test_engine_recovery();
    test_engine_broken();
    test_engine_fence();
    test_engine_watchdog_shutdown();
    test_engine_reentry();
    free(g_pool);
    return tap_done();
}
