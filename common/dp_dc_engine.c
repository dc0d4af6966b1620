/* The dc data plane's engine (see dp_dc_int.h): call queues, staging slots, DCIs, fences and
 * completions, driven through struct dc_hw_ops so that it runs against verbs (dp_dc.c) or a
 * fake NIC (tests/unit/common/test_dp_dc.c). No I/O and no clock of its own: the caller passes
 * the time.
 *
 * Invariants, relied on throughout:
 *   - a call's WRs all go to one DCI (op->dci), in order;
 *   - every WR in the hardware holds one staging slot; a slot waiting for a repost is held too;
 *   - a call is finished (callback queued) exactly once, when dc_req says so; only then is it
 *     unlinked from engine->ops, its AH unpinned and the fences waiting for it counted down;
 *   - callbacks are only run by dc_engine_run_done, never from inside another entry point, so
 *     callers may call back into the engine from a callback.
 */
#include "common/dp_dc_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static void done_push(struct dc_engine *e, struct dc_done *d, int status)
{
    d->status = status;
    dc_list_add_tail(&e->done, &d->link);
}

static void waitq_leave(struct dc_dci *d)
{
    if (d->waiting) {
        dc_list_del(&d->wait);
        d->waiting = false;
    }
}

static void waitq_join(struct dc_engine *e, struct dc_dci *d)
{
    if (d->waiting || d->state != DCI_READY || d->inflight >= e->cfg.sq_depth)
        return;
    if (dc_list_empty(&d->queue) && dc_list_empty(&d->repost))
        return;
    dc_list_add_tail(&e->waitq, &d->wait);
    d->waiting = true;
}

static void op_unqueue(struct dc_engine *e, struct dc_op *op)
{
    if (!op->queued)
        return;
    dc_list_del(&op->qlink);
    op->queued = false;
    e->queued--;
}

/* The call is finished: account for it, release what it holds, count down fences waiting for
 * it, queue its callback. Runs once per call (dc_req reports "finished" once). */
static void op_finish(struct dc_engine *e, struct dc_op *op)
{
    op_unqueue(e, op);
    if (op->ah) {
        dc_ah_put(&e->ahc, op->ah);
        op->ah = NULL;
    }
    int status = op->req.status;
    if (status == 0) {
        if (op->is_read) {
            e->st.reads++;
            e->st.bytes_read += op->req.len;
        } else {
            e->st.writes++;
            e->st.bytes_written += op->req.len;
        }
    } else {
        e->st.calls_failed++;
    }
    dc_list_del(&op->done.link);
    done_push(e, &op->done, status);    /* before the fences it completes */
    struct dc_list *l = e->fences.next;
    while (l != &e->fences) {
        struct dc_fence *f = dc_list_item(l, struct dc_fence, done.link);
        l = l->next;
        if (f->ops_left > 0 && dc_target_same(&f->t, &op->t) && --f->ops_left == 0) {
            dc_list_del(&f->done.link);
            done_push(e, &f->done, 0);
        }
    }
}

static void slot_release(struct dc_engine *e, uint32_t idx)
{
    struct dc_slot *s = &e->slot[idx];
    s->op = NULL;
    s->posted = false;
    s->tries = 0;
    dc_slots_put(&e->slots, idx);
}

/* A WR is done for good (completed, failed, or not to be posted again). */
static void wr_done(struct dc_engine *e, uint32_t idx, int status)
{
    struct dc_op *op = e->slot[idx].op;
    slot_release(e, idx);
    bool fin = dc_req_complete(&op->req, status);
    if (!dc_req_can_post(&op->req))
        op_unqueue(e, op);
    if (fin)
        op_finish(e, op);
}

/* Stops whatever of a call is not in the hardware: its unposted WRs and its WRs waiting for a
 * repost. WRs in the hardware run to completion. */
static void op_cut(struct dc_engine *e, struct dc_op *op, int code)
{
    bool cut = op->queued, fin = false;
    op_unqueue(e, op);
    struct dc_dci *d = &e->dcis[op->dci];
    struct dc_list *l = d->repost.next;
    while (l != &d->repost) {
        struct dc_slot *s = dc_list_item(l, struct dc_slot, rlink);
        l = l->next;
        if (s->op != op)
            continue;
        dc_list_del(&s->rlink);
        slot_release(e, (uint32_t)(s - e->slot));
        fin |= dc_req_complete(&op->req, code);
        cut = true;
    }
    if (cut)
        fin |= dc_req_abort(&op->req, code);
    if (fin)
        op_finish(e, op);
}

static void op_fail_now(struct dc_engine *e, struct dc_op *op, int code)
{
    op_unqueue(e, op);
    if (dc_req_abort(&op->req, code))
        op_finish(e, op);
}

static void dci_event(struct dc_engine *e, struct dc_dci *d, enum dc_dci_event ev)
{
    int next = dc_dci_next(d->state, ev);
    if (next < 0 || next == (int)d->state)
        return;
    if (next != DCI_DEAD)
        LOG_DEBUG(DC_CTX, "DCI %u: %s -> %s", d->idx, dc_dci_state_name(d->state),
                  dc_dci_state_name((enum dc_dci_state)next));
    d->state = (enum dc_dci_state)next;
    if (d->state != DCI_READY)
        waitq_leave(d);
}

static int dci_bring_up(struct dc_engine *e, struct dc_dci *d, enum dc_qps from,
                        struct cmn_err *err)
{
    struct dc_qp_step steps[DC_QP_PLAN_MAX];
    size_t n;
    int rv = dc_qp_plan(from, &e->qp, steps, &n, err);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        rv = e->hw_ops->modify(e->hw, d->idx, &steps[i]);
        if (rv != 0)
            cmn_err_set(err, LODE_EUNAVAILABLE, "dc: DCI %u: modify to state %d failed: %s",
                        d->idx, (int)steps[i].state, strerror(-rv));
    }
    return rv;
}

static struct dc_dci *dci_usable_from(struct dc_engine *e, uint32_t first, const struct dc_dci *not)
{
    for (uint32_t i = 0; i < e->ndcis; i++) {
        struct dc_dci *d = &e->dcis[(first + i) % e->ndcis];
        if (d != not && (d->state == DCI_READY || d->state == DCI_DRAINING))
            return d;
    }
    return NULL;
}

/* ERROR -> RESET -> INIT -> RTR -> RTS once nothing is in the hardware. On failure the DCI is
 * BROKEN: WRs waiting for a repost fail, queued calls move to another DCI. */
static void dci_recover(struct dc_engine *e, struct dc_dci *d, uint64_t now)
{
    if (e->closing) {
        dci_event(e, d, DCI_EV_CLOSE);
        return;
    }
    struct cmn_err err;
    cmn_err_clear(&err);
    if (dci_bring_up(e, d, DC_QPS_ERR, &err) == 0) {
        e->st.dci_recoveries++;
        LOG_INFO(DC_CTX, "DCI %u recovered (ERROR -> RTS)", d->idx);
        dci_event(e, d, DCI_EV_RECOVERED);
        d->stall_logged = false;
        waitq_join(e, d);
        return;
    }
    e->st.dci_recovery_failures++;
    LOG_WARN(DC_CTX, "%s; retrying in %d ms", cmn_err_text(&err), DC_RETRY_BROKEN_MS);
    dci_event(e, d, DCI_EV_RECOVERY_FAILED);
    d->retry_at = now + DC_RETRY_BROKEN_MS;
    while (!dc_list_empty(&d->repost)) {
        struct dc_slot *s = dc_list_item(d->repost.next, struct dc_slot, rlink);
        dc_list_del(&s->rlink);
        wr_done(e, (uint32_t)(s - e->slot), LODE_ECLOSED);
    }
    struct dc_dci *to = dci_usable_from(e, d->idx + 1, d);
    while (!dc_list_empty(&d->queue)) {
        struct dc_op *op = dc_list_item(d->queue.next, struct dc_op, qlink);
        if (!to) {
            op_fail_now(e, op, LODE_EUNAVAILABLE);
            continue;
        }
        dc_list_del(&op->qlink);
        op->dci = to->idx;
        dc_list_add_tail(&to->queue, &op->qlink);
    }
    if (to)
        waitq_join(e, to);
}

/* Moves a DCI to ERROR on purpose: its WRs flush, the other targets' ones are reposted after
 * the recovery. */
static void dci_force(struct dc_engine *e, struct dc_dci *d, uint64_t now)
{
    if (d->state != DCI_READY)
        return;
    struct dc_qp_step s;
    dc_qp_step_error(&s);
    int rv = e->hw_ops->modify(e->hw, d->idx, &s);
    if (rv != 0)
        LOG_ERROR(DC_CTX, "DCI %u: cannot move it to ERROR: %s", d->idx, strerror(-rv));
    e->st.dci_forced++;
    dci_event(e, d, DCI_EV_FORCE);
    if (d->inflight == 0)
        dci_recover(e, d, now);
}

static bool post_slot(struct dc_engine *e, struct dc_dci *d, uint32_t idx, uint64_t now)
{
    struct dc_slot *s = &e->slot[idx];
    struct dc_op *op = s->op;
    struct dc_post p = {
        .wr_id = ((uint64_t)s->gen << 32) | idx,
        .is_read = op->is_read,
        .slot = idx,
        .region = op->region,
        .local = op->region >= 0 ? op->local + s->call_off : e->pool + (size_t)idx * e->slot_bytes,
        .len = s->len,
        .raddr = s->raddr,
        .rkey = op->t.rkey,
        .ah = op->ah->ah,
        .dctn = op->t.dctn,
        .dc_key = op->t.dc_key,
    };
    int rv = e->hw_ops->post(e->hw, d->idx, &p);
    if (rv != 0) {
        LOG_WARN(DC_CTX, "DCI %u: posting a WR failed: %s", d->idx, strerror(-rv));
        return false;
    }
    s->posted = true;
    if (d->inflight == 0)
        d->progress_ms = now;
    d->inflight++;
    e->inflight++;
    e->st.wrs_posted++;
    return true;
}

/* Posts the next WR of the DCI's first queued call, taking a slot. */
static void post_next(struct dc_engine *e, struct dc_dci *d, uint64_t now)
{
    struct dc_op *op = dc_list_item(d->queue.next, struct dc_op, qlink);
    struct cmn_err err;
    cmn_err_clear(&err);
    if (!op->ah) {
        int rv = dc_ah_get(&e->ahc, &op->t, &op->ah, &err);
        if (rv != 0) {
            uint32_t n;
            if (cmn_log_ratelimit_ok(&e->rl_ah, &n))
                LOG_WARN(DC_CTX, "no address handle for DCT 0x%06x: %s", op->t.dctn,
                         cmn_err_text(&err));
            op_fail_now(e, op, rv == -ENOMEM ? -ENOMEM : LODE_EUNAVAILABLE);
            return;
        }
    }
    struct dc_wr_desc w;
    int rv = dc_slice(&op->t, op->off, op->req.len, e->slot_bytes, op->req.wr_next, &w, &err);
    if (rv != 0) {
        op_fail_now(e, op, rv);
        return;
    }
    uint32_t idx = (uint32_t)dc_slots_get(&e->slots);    /* the caller checked nfree */
    struct dc_slot *s = &e->slot[idx];
    s->op = op;
    s->call_off = w.call_off;
    s->raddr = w.raddr;
    s->len = w.len;
    s->gen++;
    s->tries = 0;
    if (!op->is_read && op->region < 0)
        memcpy(e->pool + (size_t)idx * e->slot_bytes, op->local + w.call_off, w.len);
    dc_req_post(&op->req);
    if (!dc_req_can_post(&op->req))
        op_unqueue(e, op);
    if (!post_slot(e, d, idx, now)) {
        wr_done(e, idx, -EIO);
        dci_force(e, d, now);
    }
}

/* Posts while there is room: DCIs take turns one WR at a time; reposts first (they hold a slot
 * already), new WRs while slots last. DCIs that only wait for a slot are set aside and put back
 * at the end, so reposts behind them are never starved. */
static void pump(struct dc_engine *e, uint64_t now)
{
    struct dc_list skipped;
    dc_list_init(&skipped);
    while (!dc_list_empty(&e->waitq)) {
        struct dc_dci *d = dc_list_item(e->waitq.next, struct dc_dci, wait);
        dc_list_del(&d->wait);
        d->waiting = false;
        if (d->state != DCI_READY || d->inflight >= e->cfg.sq_depth)
            continue;
        if (!dc_list_empty(&d->repost)) {
            struct dc_slot *s = dc_list_item(d->repost.next, struct dc_slot, rlink);
            dc_list_del(&s->rlink);
            uint32_t idx = (uint32_t)(s - e->slot);
            if (post_slot(e, d, idx, now)) {
                e->st.wrs_reposted++;
            } else {
                wr_done(e, idx, -EIO);
                dci_force(e, d, now);
            }
        } else if (dc_list_empty(&d->queue)) {
            continue;
        } else if (e->slots.nfree == 0) {
            dc_list_add_tail(&skipped, &d->wait);
            d->waiting = true;
            continue;
        } else {
            post_next(e, d, now);
        }
        waitq_join(e, d);
    }
    while (!dc_list_empty(&skipped)) {
        struct dc_list *l = skipped.next;
        dc_list_del(l);
        dc_list_add_tail(&e->waitq, l);
    }
}

int dc_engine_init(struct dc_engine *e, const struct cmn_dp_dc_config *cfg,
                   const struct dc_hw_ops *ops, void *hw, uint8_t *pool,
                   const struct dc_qp_params *qp, uint64_t ah_seed, struct cmn_err *err)
{
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    e->cfg.device = e->cfg.ip = NULL;
    e->hw_ops = ops;
    e->hw = hw;
    e->qp = *qp;
    e->pool = pool;
    e->slot_bytes = (uint32_t)cfg->slot_bytes;
    e->nslots = (uint32_t)(cfg->staging_bytes / cfg->slot_bytes);
    e->ndcis = cfg->num_dcis;
    dc_list_init(&e->waitq);
    dc_list_init(&e->ops);
    dc_list_init(&e->fences);
    dc_list_init(&e->done);
    e->drain_ms = cmn_dc_drain_ms(cfg->timeout, cfg->retry_cnt);
    e->stall_ms = 2 * e->drain_ms + 1000;
    e->rl_wr = (struct cmn_log_ratelimit)CMN_LOG_RATELIMIT_INIT(10000, 10);
    e->rl_ah = (struct cmn_log_ratelimit)CMN_LOG_RATELIMIT_INIT(10000, 10);
    struct dc_ah_ops ao = {.create = ops->ah_create, .destroy = ops->ah_destroy, .ctx = hw};
    e->slot = calloc(e->nslots ? e->nslots : 1, sizeof *e->slot);
    e->dcis = calloc(e->ndcis ? e->ndcis : 1, sizeof *e->dcis);
    if (!e->slot || !e->dcis || dc_slots_init(&e->slots, e->nslots) != 0 ||
        dc_ah_cache_init(&e->ahc, cfg->ah_cache_max, &ao, ah_seed) != 0) {
        dc_engine_fini(e);
        return cmn_err_set(err, -ENOMEM, "dc: out of memory");
    }
    for (uint32_t i = 0; i < e->nslots; i++)
        dc_list_init(&e->slot[i].rlink);
    for (uint32_t i = 0; i < e->ndcis; i++) {
        struct dc_dci *d = &e->dcis[i];
        d->idx = i;
        d->state = DCI_READY;
        dc_list_init(&d->queue);
        dc_list_init(&d->repost);
        dc_list_init(&d->wait);
    }
    for (uint32_t i = 0; i < e->ndcis; i++) {
        int rv = dci_bring_up(e, &e->dcis[i], DC_QPS_RESET, err);
        if (rv != 0) {
            dc_engine_fini(e);
            return err && err->code ? err->code : rv;
        }
    }
    return 0;
}

void dc_engine_fini(struct dc_engine *e)
{
    while (!dc_list_empty(&e->ops)) {
        struct dc_op *op = dc_list_item(e->ops.next, struct dc_op, done.link);
        if (op->ah)
            dc_ah_put(&e->ahc, op->ah);
        dc_list_del(&op->done.link);
        free(op);
    }
    struct dc_list *lists[2] = {&e->fences, &e->done};
    for (int i = 0; i < 2; i++) {
        while (lists[i]->next && !dc_list_empty(lists[i])) {
            struct dc_done *d = dc_list_item(lists[i]->next, struct dc_done, link);
            dc_list_del(&d->link);
            free(d);
        }
    }
    dc_ah_cache_fini(&e->ahc);
    dc_slots_fini(&e->slots);
    free(e->slot);
    free(e->dcis);
    e->slot = NULL;
    e->dcis = NULL;
}

static bool fenced(const struct dc_engine *e, const struct cmn_dc_target *t)
{
    for (const struct dc_list *l = e->fences.next; l != &e->fences; l = l->next)
        if (dc_target_same(&dc_list_item(l, struct dc_fence, done.link)->t, t))
            return true;
    return false;
}

int dc_engine_add_region(struct dc_engine *e, uint8_t *base, uint64_t len)
{
    if (!base || len == 0 || (uintptr_t)base > UINTPTR_MAX - len)
        return -EINVAL;
    for (uint32_t i = 0; i < e->nregions; i++)
        if (base < e->regions[i].base + e->regions[i].len && e->regions[i].base < base + len)
            return -EINVAL;
    if (e->nregions == CMN_DP_DC_MAX_REGIONS)
        return -ENOSPC;
    e->regions[e->nregions].base = base;
    e->regions[e->nregions].len = len;
    return (int)e->nregions++;
}

int dc_engine_submit(struct dc_engine *e, const struct cmn_dc_target *t, uint64_t off,
                     uint8_t *local, uint64_t len, bool is_read, cmn_dp_dc_cb cb, void *data,
                     uint64_t now_ms)
{
    if (e->closing)
        return LODE_ESHUTDOWN;
    if (len == 0 || len > CMN_DP_DC_CALL_MAX)
        return -EINVAL;
    uint64_t addr;
    if (cmn_dc_remote_addr(t, off, len, &addr, NULL) != 0)
        return LODE_EWINDOW;
    if (fenced(e, t))
        return LODE_ECLOSED;
    if (e->queued >= e->cfg.max_queued)
        return -EAGAIN;
    struct dc_dci *d = dci_usable_from(e, dc_pick_dci(t, e->ndcis), NULL);
    if (!d)
        return LODE_EUNAVAILABLE;
    struct dc_op *op = calloc(1, sizeof *op);
    if (!op)
        return -ENOMEM;
    op->done.cb = cb;
    op->done.data = data;
    op->t = *t;
    op->off = off;
    op->local = local;
    op->region = -1;
    for (uint32_t i = 0; i < e->nregions; i++) {
        const uint8_t *b = e->regions[i].base;
        uint64_t n = e->regions[i].len;
        if (local >= b && (uint64_t)(local - b) <= n && len <= n - (uint64_t)(local - b))
            op->region = (int)i;
    }
    op->is_read = is_read;
    op->dci = d->idx;
    dc_req_init(&op->req, len, e->slot_bytes);
    dc_list_add_tail(&e->ops, &op->done.link);
    dc_list_add_tail(&d->queue, &op->qlink);
    op->queued = true;
    e->queued++;
    waitq_join(e, d);
    pump(e, now_ms);
    return 0;
}

int dc_engine_fence(struct dc_engine *e, const struct cmn_dc_target *t, cmn_dp_dc_cb cb,
                    void *data, uint64_t now_ms)
{
    if (e->closing)
        return LODE_ESHUTDOWN;
    struct dc_fence *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->t = *t;
    f->done.cb = cb;
    f->done.data = data;
    e->st.fences++;
    struct dc_list *l = e->ops.next;
    while (l != &e->ops) {
        struct dc_op *op = dc_list_item(l, struct dc_op, done.link);
        l = l->next;
        if (dc_target_same(&op->t, t)) {
            op->fenced = true;
            op_cut(e, op, LODE_ECLOSED);
        }
    }
    /* what is left of the matching calls is in the hardware */
    for (l = e->ops.next; l != &e->ops; l = l->next)
        if (dc_target_same(&dc_list_item(l, struct dc_op, done.link)->t, t))
            f->ops_left++;
    if (f->ops_left == 0) {
        done_push(e, &f->done, 0);
    } else {
        f->deadline_ms = now_ms + e->drain_ms + DC_FENCE_MARGIN_MS;
        dc_list_add_tail(&e->fences, &f->done.link);
    }
    pump(e, now_ms);
    return 0;
}

void dc_engine_on_wc(struct dc_engine *e, uint64_t wr_id, int wc_status, uint64_t now_ms)
{
    uint32_t idx = (uint32_t)wr_id, gen = (uint32_t)(wr_id >> 32);
    if (idx >= e->nslots)
        return;
    struct dc_slot *s = &e->slot[idx];
    if (!s->op || !s->posted || s->gen != gen)
        return;
    struct dc_op *op = s->op;
    struct dc_dci *d = &e->dcis[op->dci];
    s->posted = false;
    d->inflight--;
    e->inflight--;
    d->progress_ms = now_ms;
    int code;
    switch (dc_wc_classify(wc_status, &code)) {
    case DC_WC_OK:
        if (op->is_read && op->region < 0)
            memcpy(op->local + s->call_off, e->pool + (size_t)idx * e->slot_bytes, s->len);
        if (op->region >= 0)
            e->st.bytes_direct += s->len;
        wr_done(e, idx, 0);
        break;
    case DC_WC_FLUSHED:
        /* a flush without an error first: the QP went to ERROR on its own (fatal event) */
        dci_event(e, d, DCI_EV_WR_ERROR);
        if (!e->closing && !op->fenced && !op->req.aborted && s->tries < DC_REPOST_MAX) {
            s->tries++;
            dc_list_add_tail(&d->repost, &s->rlink);
        } else {
            wr_done(e, idx, e->closing ? LODE_ESHUTDOWN
                                       : (op->req.status ? op->req.status : LODE_ECLOSED));
        }
        break;
    case DC_WC_FAILED: {
        e->st.wr_errors++;
        uint32_t n;
        if (cmn_log_ratelimit_ok(&e->rl_wr, &n))
            LOG_WARN(DC_CTX, "WR to DCT 0x%06x failed on DCI %u: completion status %d (%s)%s",
                     op->t.dctn, d->idx, wc_status, lode_strerror(code),
                     n ? " (more suppressed)" : "");
        dci_event(e, d, DCI_EV_WR_ERROR);
        wr_done(e, idx, code);
        break;
    }
    }
    if (d->state == DCI_DRAINING && d->inflight == 0)
        dci_recover(e, d, now_ms);
    waitq_join(e, d);
    pump(e, now_ms);
}

void dc_engine_tick(struct dc_engine *e, uint64_t now_ms)
{
    if (e->closing)
        return;
    /* Fences past their drain bound: their calls stop here, their DCIs are cut off. Flagged
     * first and forced after, since a forced DCI can finish calls (list surgery). */
    for (struct dc_list *l = e->fences.next; l != &e->fences; l = l->next) {
        struct dc_fence *f = dc_list_item(l, struct dc_fence, done.link);
        if (f->forced || now_ms < f->deadline_ms)
            continue;
        f->forced = true;
        e->st.fences_forced++;
        LOG_WARN(DC_CTX, "fence: %u calls still in flight after the %llu ms drain bound; "
                 "cutting off their DCIs", f->ops_left, (unsigned long long)e->drain_ms);
        for (struct dc_list *o = e->ops.next; o != &e->ops; o = o->next) {
            struct dc_op *op = dc_list_item(o, struct dc_op, done.link);
            if (dc_target_same(&op->t, &f->t) && op->req.wr_inflight > 0) {
                dc_req_abort(&op->req, LODE_ECLOSED);    /* in flight: never finishes here */
                e->dcis[op->dci].force_pending = true;
            }
        }
    }
    for (uint32_t i = 0; i < e->ndcis; i++) {
        struct dc_dci *d = &e->dcis[i];
        bool stalled = d->inflight > 0 && now_ms - d->progress_ms >= e->stall_ms;
        if (d->state == DCI_READY && stalled && !d->force_pending) {
            LOG_WARN(DC_CTX, "DCI %u: no completion for %llu ms with %u WRs in flight; "
                     "moving it to ERROR", i, (unsigned long long)(now_ms - d->progress_ms),
                     d->inflight);
            d->force_pending = true;
        } else if (d->state == DCI_DRAINING && stalled && !d->stall_logged) {
            LOG_ERROR(DC_CTX, "DCI %u: %u flushed WRs have not come back for %llu ms (device "
                      "wedged?)", i, d->inflight, (unsigned long long)(now_ms - d->progress_ms));
            d->stall_logged = true;
        }
    }
    for (uint32_t i = 0; i < e->ndcis; i++) {
        struct dc_dci *d = &e->dcis[i];
        if (d->force_pending) {
            d->force_pending = false;
            dci_force(e, d, now_ms);
        } else if (d->state == DCI_BROKEN && now_ms >= d->retry_at) {
            dci_recover(e, d, now_ms);
        }
    }
    pump(e, now_ms);
}

bool dc_engine_run_done(struct dc_engine *e)
{
    if (e->delivering)
        return false;
    e->delivering = true;
    bool any = false;
    while (!dc_list_empty(&e->done)) {
        struct dc_done *d = dc_list_item(e->done.next, struct dc_done, link);
        dc_list_del(&d->link);
        cmn_dp_dc_cb cb = d->cb;
        void *data = d->data;
        int status = d->status;
        free(d);    /* calls and fences both start with their dc_done */
        if (cb)
            cb(data, status);
        any = true;
    }
    e->delivering = false;
    return any;
}

bool dc_engine_has_done(const struct dc_engine *e) { return !dc_list_empty(&e->done); }

void dc_engine_shutdown(struct dc_engine *e, uint64_t now_ms)
{
    (void)now_ms;
    if (e->closing)
        return;
    e->closing = true;
    while (!dc_list_empty(&e->fences)) {
        struct dc_done *d = dc_list_item(e->fences.next, struct dc_done, link);
        dc_list_del(&d->link);
        done_push(e, d, LODE_ESHUTDOWN);
    }
    struct dc_list *l = e->ops.next;
    while (l != &e->ops) {
        struct dc_op *op = dc_list_item(l, struct dc_op, done.link);
        l = l->next;
        op_cut(e, op, LODE_ESHUTDOWN);
        if (!op->req.finished && dc_req_abort(&op->req, LODE_ESHUTDOWN))
            op_finish(e, op);
    }
    struct dc_qp_step s;
    dc_qp_step_error(&s);
    for (uint32_t i = 0; i < e->ndcis; i++) {
        struct dc_dci *d = &e->dcis[i];
        waitq_leave(d);
        if (d->state == DCI_READY && d->inflight > 0) {
            int rv = e->hw_ops->modify(e->hw, i, &s);
            if (rv != 0)
                LOG_WARN(DC_CTX, "DCI %u: cannot move it to ERROR: %s", i, strerror(-rv));
        }
        dci_event(e, d, DCI_EV_CLOSE);
    }
}

bool dc_engine_quiet(const struct dc_engine *e) { return e->inflight == 0; }

void dc_engine_abandon(struct dc_engine *e)
{
    for (uint32_t i = 0; i < e->nslots; i++) {
        struct dc_slot *s = &e->slot[i];
        if (!s->op)
            continue;
        if (s->posted) {
            e->dcis[s->op->dci].inflight--;
            e->inflight--;
        } else {
            dc_list_del(&s->rlink);
        }
        wr_done(e, i, LODE_ESHUTDOWN);
    }
}

void dc_engine_stats(const struct dc_engine *e, struct cmn_dp_dc_stats *out)
{
    *out = e->st;
    out->ah_hits = e->ahc.hits;
    out->ah_misses = e->ahc.misses;
    out->ah_evictions = e->ahc.evictions;
    out->ah_failures = e->ahc.failures;
    out->calls_queued = e->queued;
    out->wrs_in_flight = e->inflight;
    out->slots_free = e->slots.nfree;
    out->slots_total = e->nslots;
    out->dcis_total = e->ndcis;
    out->dcis_ready = 0;
    for (uint32_t i = 0; i < e->ndcis; i++)
        if (e->dcis[i].state == DCI_READY)
            out->dcis_ready++;
}
