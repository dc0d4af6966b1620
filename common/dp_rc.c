/* The rc data plane, server side. See dp_rc.h for the contract and docs/dataplane-rc.md for
 * the protocol.
 *
 * Structure: one rdma_cm event channel (listener and every accepted connection) and, per RDMA
 * device, one completion channel + CQ + staging pool, each fd watched by a uv_poll. A session
 * is one accepted connection: ACCEPTING until its HELLO arrives, ACTIVE once verified,
 * REFUSING while its HELLO_ERR is on the way, DEAD from its first failure until every work
 * request it had posted has completed (or flushed) and it is destroyed.
 *
 * Re-entrancy: user callbacks may call back into this module (even close). So callbacks are
 * only ever run from run_done(), at the end of a top-level handler, and nothing is freed
 * while a handler holds pointers: sessions are destroyed, and the handle freed, only by
 * cmn_dp_rc__reap(), which never runs nested.
 */
#include "common/dp_rc_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>

#include "common/log.h"

static void on_reaper(uv_idle_t *h);

void cmn_dp_rc__schedule_reap(struct cmn_dp_rc *rc)
{
    if (rc->timers_inited && !uv_is_closing((uv_handle_t *)&rc->reaper))
        uv_idle_start(&rc->reaper, on_reaper);
}

static void done_push(struct cmn_dp_rc *rc, struct rc_done *d, int status)
{
    d->status = status;
    list_add_tail(&rc->done, &d->link);
}

/* Delivers queued completions. Ops and fences are freed after their callback. */
static void run_done(struct cmn_dp_rc *rc)
{
    while (!list_empty(&rc->done)) {
        struct rc_done *d = list_item(rc->done.next, struct rc_done, link);
        list_del(&d->link);
        cmn_dp_rc_cb cb = d->cb;
        void *data = d->data;
        int status = d->status;
        free(d);    /* op and fence both start with their rc_done */
        if (cb)
            cb(data, status);
    }
}

static int map_wc_status(enum ibv_wc_status st, int fail_code)
{
    switch (st) {
    case IBV_WC_SUCCESS:
        return 0;
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
        return LODE_EWINDOW;
    case IBV_WC_WR_FLUSH_ERR:
        return fail_code ? fail_code : LODE_ECLOSED;
    default:
        return LODE_ECLOSED;
    }
}

/* ---------------------------------------------------------------- ops */

static void op_maybe_finish(struct cmn_dp_rc *rc, struct rc_op *op)
{
    if (op->wrs != 0 || op->queued || (op->posted < op->len && !op->aborted))
        return;
    if (op->region >= 0)
        list_del(&op->dlink);
    if (op->done.status == 0) {
        if (op->is_read)
            rc->st.bytes_read += op->len;
        else
            rc->st.bytes_written += op->len;
        if (op->region >= 0)
            rc->st.bytes_direct += op->len;
    } else {
        rc->st.ops_failed++;
    }
    done_push(rc, &op->done, op->done.status);
}

static void op_unqueue(struct cmn_dp_rc *rc, struct rc_op *op)
{
    if (!op->queued)
        return;
    list_del(&op->link);
    op->queued = false;
    rc->st.ops_queued--;
}

static void waitq_leave(struct rc_sess *s)
{
    if (s->waiting) {
        list_del(&s->wait);
        s->waiting = false;
    }
}

static void waitq_join(struct rc_sess *s)
{
    if (!s->waiting && s->state == S_ACTIVE && !list_empty(&s->queue) && s->sq_used < s->sq_max) {
        list_add_tail(&s->dev->waitq, &s->wait);
        s->waiting = true;
    }
}

/* Posts one slot-sized piece of op: from (into) its region where it lies in one, else through
 * a staging slot. Returns false when the post failed (the session is failed). */
static bool post_piece(struct rc_dev *dev, struct rc_sess *s, struct rc_op *op, size_t chunk)
{
    struct ibv_sge sge = {.length = (uint32_t)chunk};
    struct ibv_send_wr wr = {
        .sg_list = &sge,
        .num_sge = 1,
        .opcode = op->is_read ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE,
        .send_flags = IBV_SEND_SIGNALED,
    };
    wr.wr.rdma.remote_addr = op->raddr + op->posted;
    wr.wr.rdma.rkey = op->rkey;
    struct rc_slot *slot = NULL;
    uint32_t idx = 0;
    bool direct = op->region >= 0;
    if (direct) {
        sge.addr = (uintptr_t)(op->local + op->posted);
        sge.lkey = dev->region_mr[op->region]->lkey;
        wr.wr_id = (uintptr_t)op | WR_DIRECT;
        dev->direct_free--;
    } else {
        idx = dev->free[--dev->nfree];
        slot = &dev->slots[idx];
        slot->op = op;
        slot->off = op->posted;
        slot->len = (uint32_t)chunk;
        if (!op->is_read)
            memcpy(slot->buf, op->local + op->posted, chunk);
        sge.addr = (uintptr_t)slot->buf;
        sge.lkey = dev->pool_mr->lkey;
        wr.wr_id = (uintptr_t)slot | WR_SLOT;
    }
    struct ibv_send_wr *bad = NULL;
    int rv = ibv_post_send(s->qp, &wr, &bad);
    if (rv != 0) {
        if (slot) {
            slot->op = NULL;
            dev->free[dev->nfree++] = idx;
        } else {
            dev->direct_free++;
        }
        cmn_dp_rc__session_fail(s, LODE_ECLOSED, strerror(rv));
        return false;
    }
    if (direct && list_empty(&op->dlink))
        list_add_tail(&s->direct, &op->dlink); /* its first piece in flight */
    return true;
}

/* Posts slot-sized pieces of queued ops while slots (or direct credits) and send-queue room
 * last; sessions take turns one piece at a time, each session's ops go in FIFO order. A
 * session whose next op waits for a resource that has run out keeps its place at the head. */
static void pump(struct rc_dev *dev)
{
    size_t slot_bytes = dev->rc->cfg.slot_bytes;
    struct rc_list blocked;
    list_init(&blocked);
    while (!list_empty(&dev->waitq) && (dev->nfree > 0 || dev->direct_free > 0)) {
        struct rc_sess *s = list_item(dev->waitq.next, struct rc_sess, wait);
        waitq_leave(s);
        if (s->state != S_ACTIVE || list_empty(&s->queue) || s->sq_used >= s->sq_max)
            continue;
        struct rc_op *op = list_item(s->queue.next, struct rc_op, link);
        if (op->region >= 0 ? dev->direct_free == 0 : dev->nfree == 0) {
            list_add_tail(&blocked, &s->wait);
            s->waiting = true;
            continue;
        }
        size_t chunk = op->len - op->posted;
        if (chunk > slot_bytes)
            chunk = slot_bytes;
        if (!post_piece(dev, s, op, chunk))
            continue;
        if (s->sq_used == 0)
            s->progress = now_mono();
        op->posted += chunk;
        op->wrs++;
        s->sq_used++;
        s->outstanding++;
        if (op->posted == op->len)
            op_unqueue(dev->rc, op);
        waitq_join(s);    /* back at the tail: the next session goes first */
    }
    /* the blocked sessions go back in front, in their order */
    while (!list_empty(&blocked)) {
        struct rc_list *e = blocked.prev;
        list_del(e);
        e->next = dev->waitq.next;
        e->prev = &dev->waitq;
        dev->waitq.next->prev = e;
        dev->waitq.next = e;
    }
}

/* ---------------------------------------------------------------- sessions */

void cmn_dp_rc__session_fail(struct rc_sess *s, int code, const char *why)
{
    struct cmn_dp_rc *rc = s->rc;
    if (s->state == S_DEAD)
        return;
    char sp[9];
    sid_prefix(s->sid, sp);
    if (s->state == S_ACTIVE && (code == LODE_ECLOSED || code == LODE_ESHUTDOWN))
        LOG_INFO(RC_CTX, "session %s... closed: %s", sp, why);
    else if (s->state == S_ACTIVE)
        LOG_WARN(RC_CTX, "session %s... closed: %s (%s)", sp, why, lode_strerror(code));
    else
        LOG_DEBUG(RC_CTX, "connection for session %s... dropped: %s", sp, why);
    if (s->counted_active) {
        rc->st.sessions--;
        s->counted_active = false;
    } else {
        rc->st.pending--;
    }
    s->state = S_DEAD;
    /* the transfer the client's NIC refused carries LODE_EWINDOW itself; the others on the
     * session just lost their connection */
    s->fail_code = code == LODE_EWINDOW ? LODE_ECLOSED : code;
    code = s->fail_code;
    s->deadline = now_mono() + RC_TEARDOWN_MS;
    waitq_leave(s);
    while (!list_empty(&s->queue)) {
        struct rc_op *op = list_item(s->queue.next, struct rc_op, link);
        op_unqueue(rc, op);
        op->aborted = true;
        if (op->done.status == 0)
            op->done.status = code;
        op_maybe_finish(rc, op);
    }
    if (s->qp) {
        /* flushes every posted work request; nothing more is sent from this QP */
        struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};
        ibv_modify_qp(s->qp, &attr, IBV_QP_STATE);
    }
    if (s->id)
        rdma_disconnect(s->id);
    cmn_dp_rc__schedule_reap(rc);
}

static void session_destroy(struct cmn_dp_rc *rc, struct rc_sess *s)
{
    hash_remove(rc, s);
    waitq_leave(s);
    list_del(&s->all);
    if (s->qp)
        rdma_destroy_qp(s->id);
    if (s->ctl_mr)
        ibv_dereg_mr(s->ctl_mr);
    if (s->id)
        rdma_destroy_id(s->id);
    while (!list_empty(&s->fences)) {
        struct rc_done *d = list_item(s->fences.next, struct rc_done, link);
        list_del(&d->link);
        done_push(rc, d, rc->closing ? LODE_ESHUTDOWN : 0);
    }
    free(s);
}

static void handle_wc(struct rc_dev *dev, const struct ibv_wc *wc);

static void drain_cq(struct rc_dev *dev)
{
    struct ibv_wc wc[32];
    int n;
    while ((n = ibv_poll_cq(dev->cq, 32, wc)) > 0)
        for (int i = 0; i < n; i++)
            handle_wc(dev, &wc[i]);
}

/* A dead session whose flushes did not all come back in time (a wedged device): destroying
 * the QP guarantees the device no longer uses its requests, so the slots they hold can be
 * taken back. */
static void session_force_destroy(struct cmn_dp_rc *rc, struct rc_sess *s)
{
    struct rc_dev *dev = s->dev;
    LOG_WARN(RC_CTX, "a closed session's %u requests did not flush in %d ms; destroying its QP",
             s->outstanding, RC_TEARDOWN_MS);
    drain_cq(dev);
    if (s->qp) {
        rdma_destroy_qp(s->id);
        s->qp = NULL;
    }
    drain_cq(dev);
    for (uint32_t i = 0; i < dev->nslots; i++) {
        struct rc_slot *slot = &dev->slots[i];
        if (!slot->op || slot->op->s != s)
            continue;
        struct rc_op *op = slot->op;
        slot->op = NULL;
        dev->free[dev->nfree++] = i;
        op->wrs--;
        if (op->done.status == 0)
            op->done.status = s->fail_code ? s->fail_code : LODE_ECLOSED;
        op_maybe_finish(rc, op);
    }
    /* the destroyed QP no longer reads or writes the regions: their ops are finished */
    while (!list_empty(&s->direct)) {
        struct rc_op *op = list_item(s->direct.next, struct rc_op, dlink);
        dev->direct_free += op->wrs;
        op->wrs = 0;
        if (op->done.status == 0)
            op->done.status = s->fail_code ? s->fail_code : LODE_ECLOSED;
        list_del(&op->dlink);
        op_maybe_finish(rc, op);    /* the session's queue was failed: it finishes now */
    }
    s->outstanding = 0;
}

static void handle_wc(struct rc_dev *dev, const struct ibv_wc *wc)
{
    struct cmn_dp_rc *rc = dev->rc;
    enum wr_kind kind = (enum wr_kind)(wc->wr_id & 3);
    void *ptr = (void *)(uintptr_t)(wc->wr_id & ~(uint64_t)3);
    if (kind == WR_SLOT) {
        struct rc_slot *slot = ptr;
        struct rc_op *op = slot->op;
        if (!op)
            return;    /* reclaimed by a forced destroy */
        struct rc_sess *s = op->s;
        s->outstanding--;
        s->sq_used--;
        s->progress = now_mono();
        op->wrs--;
        if (wc->status == IBV_WC_SUCCESS) {
            if (op->is_read)
                memcpy(op->local + slot->off, slot->buf, slot->len);
        } else {
            int code = map_wc_status(wc->status, s->fail_code);
            if (op->done.status == 0)
                op->done.status = code;
            if (s->state != S_DEAD)
                cmn_dp_rc__session_fail(s, code, ibv_wc_status_str(wc->status));
        }
        slot->op = NULL;
        dev->free[dev->nfree++] = (uint32_t)(slot - dev->slots);
        op_maybe_finish(rc, op);
        waitq_join(s);
        if (s->state == S_DEAD && s->outstanding == 0)
            cmn_dp_rc__schedule_reap(rc);
        return;
    }
    if (kind == WR_DIRECT) {
        struct rc_op *op = ptr;
        struct rc_sess *s = op->s;
        s->outstanding--;
        s->sq_used--;
        s->progress = now_mono();
        op->wrs--;
        dev->direct_free++;
        if (wc->status != IBV_WC_SUCCESS) {
            int code = map_wc_status(wc->status, s->fail_code);
            if (op->done.status == 0)
                op->done.status = code;
            if (s->state != S_DEAD)
                cmn_dp_rc__session_fail(s, code, ibv_wc_status_str(wc->status));
        }
        op_maybe_finish(rc, op);
        waitq_join(s);
        if (s->state == S_DEAD && s->outstanding == 0)
            cmn_dp_rc__schedule_reap(rc);
        return;
    }
    struct rc_sess *s = ptr;
    s->outstanding--;
    if (kind == WR_REPLY_SEND)
        s->sq_used--;
    if (wc->status != IBV_WC_SUCCESS) {
        cmn_dp_rc__session_fail(s, s->state == S_REFUSING ? LODE_EAUTH : LODE_ECLOSED,
                     ibv_wc_status_str(wc->status));
    } else if (kind == WR_HELLO_RECV) {
        cmn_dp_rc__on_hello(s, wc->byte_len);
    } else if (s->state == S_REFUSING) {
        cmn_dp_rc__session_fail(s, LODE_EAUTH, "HELLO_ERR delivered");
    }
    if (s->state == S_DEAD && s->outstanding == 0)
        cmn_dp_rc__schedule_reap(rc);
}

void cmn_dp_rc__on_cq_event(uv_poll_t *h, int status, int events)
{
    (void)events;
    struct rc_dev *dev = h->data;
    struct cmn_dp_rc *rc = dev->rc;
    if (status < 0) {
        LOG_ERROR(RC_CTX, "completion channel poll: %s", uv_strerror(status));
        return;
    }
    struct ibv_cq *cq;
    void *ctx;
    while (ibv_get_cq_event(dev->cc, &cq, &ctx) == 0)
        dev->unacked++;
    if (dev->unacked >= 64) {    /* acking takes a mutex in the provider: do it in batches */
        ibv_ack_cq_events(dev->cq, dev->unacked);
        dev->unacked = 0;
    }
    /* re-arm before polling, so a completion that lands meanwhile raises a new event */
    ibv_req_notify_cq(dev->cq, 0);
    drain_cq(dev);
    pump(dev);
    cmn_dp_rc__reap(rc);
}

/* ---------------------------------------------------------------- timers and teardown */

static void on_sweep(uv_timer_t *t)
{
    struct cmn_dp_rc *rc = t->data;
    uint64_t mono = now_mono();
    int64_t wall = rc->cfg.now_ms();
    for (struct rc_list *e = rc->sessions.next; e != &rc->sessions; e = e->next) {
        struct rc_sess *s = list_item(e, struct rc_sess, all);
        if ((s->state == S_ACCEPTING || s->state == S_REFUSING) && mono >= s->deadline)
            cmn_dp_rc__session_fail(s, LODE_ETIMEOUT, "no HELLO in time");
        else if (s->state == S_ACTIVE && wall >= 0 && (uint64_t)wall >= s->expires_ms)
            cmn_dp_rc__session_fail(s, LODE_ECLOSED, "credential expired");
        else if (s->state == S_ACTIVE && s->sq_used > 0 &&
                 mono - s->progress >= rc->cfg.stall_timeout_ms)
            cmn_dp_rc__session_fail(s, LODE_ETIMEOUT, "transfers stalled");
    }
    cmn_dp_rc__reap(rc);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct cmn_dp_rc *rc = h->data;
    if (--rc->handles_open > 0)
        return;
    for (unsigned i = 0; i < rc->ndevs; i++)
        cmn_dp_rc__dev_free(rc->devs[i]);
    if (rc->listen_id)
        rdma_destroy_id(rc->listen_id);
    if (rc->ec)
        rdma_destroy_event_channel(rc->ec);
    cmn_dp_rc_close_cb cb = rc->close_cb;
    void *data = rc->close_data;
    free(rc->hash);
    free(rc->secret);
    free(rc);
    if (cb)
        cb(data);
}

/* a device's poll carries the device; the close accounting is the handle's */
static void on_dev_poll_closed(uv_handle_t *h)
{
    struct rc_dev *dev = h->data;
    h->data = dev->rc;
    on_handle_closed(h);
}

static void close_handles(struct cmn_dp_rc *rc)
{
    rc->finishing = true;
    for (unsigned i = 0; i < rc->ndevs; i++)
        if (rc->devs[i]->poll_inited)
            uv_close((uv_handle_t *)&rc->devs[i]->poll, on_dev_poll_closed);
    if (rc->ec_poll_inited)
        uv_close((uv_handle_t *)&rc->ec_poll, on_handle_closed);
    if (rc->timers_inited) {
        uv_close((uv_handle_t *)&rc->sweep, on_handle_closed);
        uv_close((uv_handle_t *)&rc->reaper, on_handle_closed);
    }
}

/* Delivers completions and destroys dead sessions that are done; finishes a close. Never
 * nested: callbacks it runs may call into this module, and a nested call only schedules. */
void cmn_dp_rc__reap(struct cmn_dp_rc *rc)
{
    if (rc->reaping || rc->finishing)
        return;
    rc->reaping = true;
    bool again;
    do {
        run_done(rc);
        again = false;
        uint64_t mono = now_mono();
        struct rc_list *e = rc->sessions.next;
        while (e != &rc->sessions) {
            struct rc_sess *s = list_item(e, struct rc_sess, all);
            e = e->next;
            if (s->state != S_DEAD)
                continue;
            if (s->outstanding > 0 && mono >= s->deadline)
                session_force_destroy(rc, s);
            if (s->outstanding == 0) {
                struct rc_dev *dev = s->dev;
                session_destroy(rc, s);
                pump(dev);
                again = true;    /* the iterator may point at a freed session: restart */
                break;
            }
        }
    } while (again || !list_empty(&rc->done));
    rc->reaping = false;
    if (rc->timers_inited)
        uv_idle_stop(&rc->reaper);
    if (rc->closing && list_empty(&rc->sessions))
        close_handles(rc);
}

static void on_reaper(uv_idle_t *h) { cmn_dp_rc__reap(h->data); }

/* ---------------------------------------------------------------- public API */

static int bind_addr(struct cmn_dp_rc *rc, const char *host, uint16_t port, struct cmn_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    int rv = getaddrinfo(host, ps, &hints, &ai);
    if (rv != 0)
        return cmn_err_set(err, -EINVAL, "rc listen address %s: %s", host, gai_strerror(rv));
    rv = rdma_bind_addr(rc->listen_id, ai->ai_addr);
    int e = errno;
    freeaddrinfo(ai);
    if (rv != 0)
        return cmn_err_set(err, -e, "rc listen on %s:%u: %s (is it an address of an RDMA "
                           "device's network interface?)", host, port, strerror(e));
    return 0;
}

int cmn_dp_rc_create(uv_loop_t *loop, const struct cmn_dp_rc_config *cfg, struct cmn_dp_rc **out,
                     struct cmn_err *err)
{
    if (!loop || !cfg || !cfg->host || !cfg->secret || cfg->secret_len == 0 || !out)
        return cmn_err_set(err, -EINVAL, "rc: host and secret are required");
    struct cmn_dp_rc_config c = *cfg;
    c.max_sessions = c.max_sessions ? c.max_sessions : 1024;
    c.max_pending = c.max_pending ? c.max_pending : 64;
    c.hello_timeout_ms = c.hello_timeout_ms ? c.hello_timeout_ms : 5000;
    c.slot_bytes = c.slot_bytes ? c.slot_bytes : (size_t)1 << 20;
    c.staging_bytes = c.staging_bytes ? c.staging_bytes : (size_t)64 << 20;
    c.sq_depth = c.sq_depth ? c.sq_depth : 64;
    c.rd_atomic = c.rd_atomic ? c.rd_atomic : 16;
    c.stall_timeout_ms = c.stall_timeout_ms ? c.stall_timeout_ms : 30000;
    c.now_ms = c.now_ms ? c.now_ms : cmn_now_ms;
    if ((c.slot_bytes & (c.slot_bytes - 1)) || c.slot_bytes < 4096 || c.slot_bytes > (16u << 20))
        return cmn_err_set(err, -EINVAL, "rc: slot size must be a power of two, 4 KiB..16 MiB");
    if (c.staging_bytes < c.slot_bytes || c.staging_bytes / c.slot_bytes > 65536 ||
        c.staging_bytes % c.slot_bytes)
        return cmn_err_set(err, -EINVAL, "rc: staging memory must be 1..65536 whole slots");
    if (c.max_sessions > (1u << 20) || c.max_pending > 65536 || c.sq_depth > 4096 ||
        c.ack_timeout > 31)
        return cmn_err_set(err, -EINVAL, "rc: a limit is out of range");

    struct cmn_dp_rc *rc = calloc(1, sizeof *rc);
    if (!rc)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    rc->loop = loop;
    rc->cfg = c;
    rc->cfg.host = NULL;    /* not kept */
    list_init(&rc->sessions);
    list_init(&rc->done);
    uint32_t buckets = 16;
    while (buckets < c.max_sessions)
        buckets <<= 1;
    rc->hash_mask = buckets - 1;
    rc->hash = calloc(buckets, sizeof *rc->hash);
    rc->secret = malloc(c.secret_len);
    if (!rc->hash || !rc->secret) {
        cmn_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(rc->secret, c.secret, c.secret_len);
    rc->cfg.secret = NULL;
    rc->ec = rdma_create_event_channel();
    if (!rc->ec) {
        int e = errno;
        cmn_err_set(err, LODE_EUNAVAILABLE, "rc: no RDMA connection manager (%s): is the "
                    "rdma_ucm module loaded and /dev/infiniband/rdma_cm accessible?", strerror(e));
        goto fail;
    }
    cmn_dp_rc__set_nonblock(rc->ec->fd);
    if (rdma_create_id(rc->ec, &rc->listen_id, NULL, RDMA_PS_TCP) != 0) {
        cmn_err_set(err, LODE_EUNAVAILABLE, "rc: rdma_create_id: %s", strerror(errno));
        goto fail;
    }
    if (bind_addr(rc, cfg->host, cfg->port, err) != 0)
        goto fail;
    if (rc->listen_id->verbs && !cmn_dp_rc__dev_get(rc, rc->listen_id->verbs, err))
        goto fail_async;
    if (rdma_listen(rc->listen_id, 128) != 0) {
        cmn_err_set(err, LODE_EUNAVAILABLE, "rc: rdma_listen on %s:%u: %s", cfg->host,
                    cfg->port, strerror(errno));
        goto fail_async;
    }
    rc->port = ntohs(rdma_get_src_port(rc->listen_id));
    uv_timer_init(loop, &rc->sweep);
    uv_idle_init(loop, &rc->reaper);
    rc->sweep.data = rc->reaper.data = rc;
    rc->timers_inited = true;
    rc->handles_open += 2;
    if (uv_poll_init(loop, &rc->ec_poll, rc->ec->fd) != 0) {
        cmn_err_set(err, LODE_EINTERNAL, "rc: cannot watch the connection manager");
        goto fail_async;
    }
    rc->ec_poll.data = rc;
    rc->ec_poll_inited = true;
    rc->handles_open++;
    uv_poll_start(&rc->ec_poll, UV_READABLE, cmn_dp_rc__on_cm_event);
    uv_timer_start(&rc->sweep, on_sweep, RC_SWEEP_MS, RC_SWEEP_MS);
    LOG_INFO(RC_CTX, "listening on %s:%u (source %llu)", cfg->host, rc->port,
             (unsigned long long)c.source_id);
    *out = rc;
    return 0;

fail_async:
    /* a uv handle exists: memory goes back once the loop has closed it */
    if (rc->handles_open > 0) {
        rc->closing = true;
        close_handles(rc);
        return err ? err->code : LODE_EUNAVAILABLE;
    }
fail:
    if (rc->listen_id)
        rdma_destroy_id(rc->listen_id);
    if (rc->ec)
        rdma_destroy_event_channel(rc->ec);
    for (unsigned i = 0; i < rc->ndevs; i++)
        cmn_dp_rc__dev_free(rc->devs[i]);
    free(rc->hash);
    free(rc->secret);
    free(rc);
    return err ? err->code : -EINVAL;
}

uint16_t cmn_dp_rc_port(const struct cmn_dp_rc *rc) { return rc->port; }

int cmn_dp_rc_add_region(struct cmn_dp_rc *rc, void *base, size_t len, struct cmn_err *err)
{
    uint8_t *b = base;
    if (!base || len == 0 || (uintptr_t)b > UINTPTR_MAX - len)
        return cmn_err_set(err, -EINVAL, "rc: an empty or wrapping region");
    for (unsigned i = 0; i < rc->nregions; i++)
        if (b < rc->regions[i].base + rc->regions[i].len && rc->regions[i].base < b + len)
            return cmn_err_set(err, -EINVAL, "rc: the region overlaps one already added");
    if (rc->nregions == RC_MAX_REGIONS)
        return cmn_err_set(err, -ENOSPC, "rc: %d regions already", RC_MAX_REGIONS);
    unsigned i = rc->nregions;
    rc->regions[i].base = b;
    rc->regions[i].len = len;
    for (unsigned d = 0; d < rc->ndevs; d++) {
        int rv = cmn_dp_rc__reg_region(rc->devs[d], i);
        if (rv != 0) {
            for (unsigned k = 0; k < d; k++) {
                ibv_dereg_mr(rc->devs[k]->region_mr[i]);
                rc->devs[k]->region_mr[i] = NULL;
            }
            return cmn_err_set(err, rv, "rc: registering %zu bytes with %s failed: %s", len,
                               ibv_get_device_name(rc->devs[d]->verbs->device), strerror(-rv));
        }
    }
    rc->nregions++;
    return 0;
}

void cmn_dp_rc_set_source_id(struct cmn_dp_rc *rc, uint64_t source_id)
{
    rc->cfg.source_id = source_id;
}

static int lookup(struct cmn_dp_rc *rc, const struct cmn_dp_rc_target *t, uint64_t addr,
                  size_t len, struct rc_sess **out)
{
    if (rc->closing)
        return LODE_ESHUTDOWN;
    if (len == 0)
        return -EINVAL;
    struct rc_sess *s = hash_find(rc, t->sid);
    if (!s || !owner_ok(s, t->access_key))
        return LODE_ENOSESSION;
    if (s->state != S_ACTIVE)
        return LODE_ECLOSED;
    if (t->window_size > UINT64_MAX - t->window_base ||
        !cmn_dp_range_inside(t->window_base, t->window_size, addr, len))
        return LODE_EWINDOW;
    *out = s;
    return 0;
}

static int submit(struct cmn_dp_rc *rc, const struct cmn_dp_rc_target *t, uint64_t addr,
                  void *local, size_t len, bool is_read, cmn_dp_rc_cb cb, void *data)
{
    struct rc_sess *s;
    int rv = lookup(rc, t, addr, len, &s);
    if (rv != 0)
        return rv;
    struct rc_op *op = calloc(1, sizeof *op);
    if (!op)
        return -ENOMEM;
    op->done.cb = cb;
    op->done.data = data;
    op->s = s;
    op->is_read = is_read;
    op->raddr = addr;
    op->rkey = t->rkey;
    op->local = local;
    op->len = len;
    op->region = -1;
    for (unsigned i = 0; i < rc->nregions; i++) {
        const uint8_t *b = rc->regions[i].base;
        if (s->dev->region_mr[i] && (uint8_t *)local >= b &&
            (size_t)((uint8_t *)local - b) <= rc->regions[i].len &&
            len <= rc->regions[i].len - (size_t)((uint8_t *)local - b))
            op->region = (int)i; /* registered with the session's device: no staging copy */
    }
    list_init(&op->dlink);
    op->queued = true;
    list_add_tail(&s->queue, &op->link);
    rc->st.ops_queued++;
    waitq_join(s);
    pump(s->dev);
    return 0;
}

int cmn_dp_rc_write(struct cmn_dp_rc *rc, const struct cmn_dp_rc_target *t, uint64_t addr,
                    const void *src, size_t len, cmn_dp_rc_cb cb, void *data)
{
    /* the op never writes through this pointer for a write */
    return submit(rc, t, addr, (void *)(uintptr_t)src, len, false, cb, data);
}

int cmn_dp_rc_read(struct cmn_dp_rc *rc, const struct cmn_dp_rc_target *t, uint64_t addr,
                   void *dst, size_t len, cmn_dp_rc_cb cb, void *data)
{
    return submit(rc, t, addr, dst, len, true, cb, data);
}

int cmn_dp_rc_fence(struct cmn_dp_rc *rc, const uint8_t sid[16], const char *access_key,
                    cmn_dp_rc_cb cb, void *data)
{
    struct rc_sess *s = hash_find(rc, sid);
    if (!s || !owner_ok(s, access_key))
        return LODE_ENOSESSION;
    struct rc_done *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->cb = cb;
    d->data = data;
    list_add_tail(&s->fences, &d->link);
    cmn_dp_rc__session_fail(s, LODE_ECLOSED, "fenced");
    cmn_dp_rc__schedule_reap(rc);
    return 0;
}

bool cmn_dp_rc_has_session(const struct cmn_dp_rc *rc, const uint8_t sid[16],
                           const char *access_key)
{
    const struct rc_sess *s = hash_find(rc, sid);
    return s && s->state == S_ACTIVE && owner_ok(s, access_key);
}

void cmn_dp_rc_get_stats(const struct cmn_dp_rc *rc, struct cmn_dp_rc_stats *out)
{
    *out = rc->st;
    out->slots_free = out->slots_total = 0;
    for (unsigned i = 0; i < rc->ndevs; i++) {
        out->slots_free += rc->devs[i]->nfree;
        out->slots_total += rc->devs[i]->nslots;
    }
}

void cmn_dp_rc_close(struct cmn_dp_rc *rc, cmn_dp_rc_close_cb close_cb, void *data)
{
    if (!rc || rc->closing)
        return;
    rc->closing = true;
    rc->close_cb = close_cb;
    rc->close_data = data;
    for (struct rc_list *e = rc->sessions.next; e != &rc->sessions; e = e->next)
        cmn_dp_rc__session_fail(list_item(e, struct rc_sess, all), LODE_ESHUTDOWN, "shutting down");
    cmn_dp_rc__schedule_reap(rc);
}
