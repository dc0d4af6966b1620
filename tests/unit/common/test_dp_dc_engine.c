/* common/dp_dc_engine.c: the dc transport's engine without a NIC, against a fake one that
 * records every post and every modify-QP step and lets the test complete WRs with any status:
 * calls, limits, recovery of a broken DCI, fencing, the watchdog, shutdown and re-entry from
 * completion callbacks.
 *
 * Known answers:
 *   - completion statuses: enum ibv_wc_status (REM_ACCESS_ERR 10, RETRY_EXC_ERR 12, ...);
 *   - WR counts and remote addresses: Python -(-len // slot) and base + off + i * slot;
 *   - drain bound: Python math.ceil(4096 * 2**16 * 8 / 1e6) = 2148 ms.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dp_dc_int.h"
#include "tests/tap.h"
#include "tests/unit/common/dp_dc_test.h"

struct rec {
    int calls, status;
};

static void rec_cb(void *data, int status)
{
    struct rec *r = data;
    r->calls++;
    r->status = status;
}

static const struct dc_hw_ops fake_ops = {
    .post = fake_post,
    .modify = fake_modify,
    .ah_create = fake_ah_create,
    .ah_destroy = fake_ah_destroy,
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

/* A registered region (a node's read arena): calls from or into it go without staging copies,
 * reposts included; calls that are not wholly inside it are staged as before. */
static void test_engine_regions(void)
{
    struct fake f;
    memset(&f, 0, sizeof f);
    struct dc_engine e;
    struct cmn_dp_dc_config c = small_cfg();
    engine_up(&e, &f, &c);
    static uint8_t region[64 * 1024];
    is_int(dc_engine_add_region(&e, region, sizeof region), 0, "region 0 added");
    is_int(dc_engine_add_region(&e, region + 100, 10), -EINVAL, "an overlapping region refused");
    is_int(dc_engine_add_region(&e, region, 0), -EINVAL, "an empty region refused");
    for (size_t i = 0; i < sizeof region; i++)
        region[i] = (uint8_t)(i * 13 + 1);
    struct cmn_dc_target t;
    target(&t, 1, 7, 0x7f0000000000ull, 1u << 20);
    struct rec r = {0};
    /* 10000 bytes from region + 5000: 3 WRs that point into the region itself */
    is_int(dc_engine_submit(&e, &t, 0, region + 5000, 10000, false, rec_cb, &r, 0), 0,
           "write 10000 bytes from the region");
    bool good = f.nposts == 3;
    for (size_t i = 0; good && i < 3; i++)
        good = f.posts[i].region == 0 && f.posts[i].local == region + 5000 + i * SLOT &&
               f.posts[i].raddr == t.base + i * SLOT;
    ok(good, "  3 WRs whose local addresses are the region's bytes, tagged region 0");
    bool pool_clean = true;
    for (size_t i = 0; i < c.staging_bytes; i++)
        pool_clean &= g_pool[i] == 0;
    ok(pool_clean, "  nothing was copied into the staging pool");
    /* the middle WR is flushed by another target's error on its DCI: reposted, still direct */
    dc_engine_on_wc(&e, f.posts[0].wr_id, DC_WC_SUCCESS, 1);
    dc_engine_on_wc(&e, f.posts[1].wr_id, DC_WC_WR_FLUSH_ERR, 1);
    dc_engine_on_wc(&e, f.posts[2].wr_id, DC_WC_SUCCESS, 1);
    dc_engine_tick(&e, 2);
    size_t re = f.nposts - 1;
    ok(f.nposts > 3 && f.posts[re].region == 0 && f.posts[re].local == region + 5000 + SLOT,
       "  a reposted WR points at the region again");
    for (size_t i = 3; i < f.nposts; i++)
        dc_engine_on_wc(&e, f.posts[i].wr_id, DC_WC_SUCCESS, 3);
    dc_engine_run_done(&e);
    ok(r.calls == 1 && r.status == 0, "  the write completes");

    /* a read into the region: the NIC places the bytes there; nothing is copied afterwards */
    r = (struct rec){0};
    size_t b = f.nposts;
    is_int(dc_engine_submit(&e, &t, 4096, region + 40000, 6000, true, rec_cb, &r, 4), 0,
           "read 6000 bytes into the region");
    ok(f.nposts - b == 2 && f.posts[b].local == region + 40000 &&
       f.posts[b + 1].local == region + 40000 + SLOT && f.posts[b].region == 0,
       "  2 READs straight into the region");
    memset(region + 40000, 0x77, 6000);          /* what the NIC placed */
    memset(g_pool, 0x11, c.staging_bytes);       /* a stale pool must not be copied over it */
    dc_engine_on_wc(&e, f.posts[b].wr_id, DC_WC_SUCCESS, 5);
    dc_engine_on_wc(&e, f.posts[b + 1].wr_id, DC_WC_SUCCESS, 5);
    dc_engine_run_done(&e);
    bool placed = r.calls == 1 && r.status == 0;
    for (size_t i = 40000; i < 46000; i++)
        placed &= region[i] == 0x77;
    ok(placed, "  completes with the placed bytes left alone");

    /* a source that runs past the region's end is staged */
    static uint8_t big[2 * SLOT];
    memset(g_pool, 0, c.staging_bytes);
    r = (struct rec){0};
    b = f.nposts;
    is_int(dc_engine_submit(&e, &t, 0, region + sizeof region - 10, 10, false, rec_cb, &r, 6), 0,
           "the region's last 10 bytes");
    is_int(dc_engine_submit(&e, &t, 0, big, sizeof big, false, rec_cb, &r, 6), 0,
           "and memory outside it");
    ok(f.posts[b].region == 0 && f.posts[b + 1].region == -1 && f.posts[b + 2].region == -1 &&
       f.posts[b + 1].local != big, "  inside: direct; outside: staged through slots");
    for (size_t i = b; i < f.nposts; i++)
        dc_engine_on_wc(&e, f.posts[i].wr_id, DC_WC_SUCCESS, 7);
    dc_engine_run_done(&e);
    struct cmn_dp_dc_stats st;
    dc_engine_stats(&e, &st);
    is_int(st.bytes_direct, 10000 + 6000 + 10, "stats: bytes moved without a copy");
    ok(st.bytes_written == 10000 + 10 + sizeof big && st.slots_free == st.slots_total,
       "stats: every byte written, every slot free");
    engine_down(&e, &f);
}

int main(void)
{
    cmn_log_init("test_dp_dc_engine", CMN_LOG_ERROR);
    test_engine_basic();
    test_engine_limits();
    test_engine_recovery();
    test_engine_broken();
    test_engine_fence();
    test_engine_watchdog_shutdown();
    test_engine_reentry();
    test_engine_regions();
    free(g_pool);
    return tap_done();
}
