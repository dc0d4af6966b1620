/* The rc data plane's connection side: the connect and reject records, the connection
 * manager's events (connect requests, disconnects), the HELLO exchange, and the per-device
 * resources (PD, CQ, completion channel, staging pool). See dp_rc.h and dp_rc_int.h. */
#include "common/dp_rc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "common/log.h"

/* ---------------------------------------------------------------- wire records (pure) */

void cmn_dp_rc_connect_encode(void *buf, const uint8_t sid[16], const uint8_t nonce[8])
{
    uint8_t *p = buf;
    memcpy(p, "LRC1", 4);
    p[4] = CMN_DP_RC_VERSION;
    p[5] = 0;
    p[6] = p[7] = 0;
    memcpy(p + 8, sid, 16);
    memcpy(p + 24, nonce, 8);
}

int cmn_dp_rc_connect_decode(const void *buf, size_t len, uint8_t sid[16], uint8_t nonce[8])
{
    const uint8_t *p = buf;
    if (!buf || len < CMN_DP_RC_CONNECT_SIZE || memcmp(p, "LRC1", 4) != 0)
        return LODE_EBADMSG;
    if ((p[4] | p[5] << 8) != CMN_DP_RC_VERSION)
        return LODE_EVERSION;
    if (p[6] || p[7])
        return LODE_EBADMSG;
    memcpy(sid, p + 8, 16);
    memcpy(nonce, p + 24, 8);
    return 0;
}

void cmn_dp_rc_reject_encode(void *buf, uint16_t code)
{
    uint8_t *p = buf;
    memcpy(p, "LRC1", 4);
    p[4] = (uint8_t)code;
    p[5] = (uint8_t)(code >> 8);
}

int cmn_dp_rc_reject_decode(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (!buf || len < CMN_DP_RC_REJECT_SIZE || memcmp(p, "LRC1", 4) != 0)
        return -1;
    return p[4] | p[5] << 8;
}

static void refuse(struct rc_sess *s, enum cmn_dp_code code, const char *why)
{
    struct cmn_dp_rc *rc = s->rc;
    rc->st.sessions_refused++;
    LOG_INFO(RC_CTX, "HELLO refused (%s): %s", cmn_dp_code_text(code), why);
    struct cmn_dp_reply r = {.kind = CMN_DP_REPLY_ERR, .code = (uint16_t)code,
                             .source_id = rc->cfg.source_id};
    cmn_dp_reply_encode(&r, s->ctl + CMN_DP_HELLO_SIZE);
    struct ibv_sge sge = {.addr = (uintptr_t)(s->ctl + CMN_DP_HELLO_SIZE),
                          .length = CMN_DP_REPLY_SIZE, .lkey = s->ctl_mr->lkey};
    struct ibv_send_wr wr = {.wr_id = (uintptr_t)s | WR_REPLY_SEND, .sg_list = &sge,
                             .num_sge = 1, .opcode = IBV_WR_SEND,
                             .send_flags = IBV_SEND_SIGNALED};
    struct ibv_send_wr *bad = NULL;
    s->state = S_REFUSING;
    if (ibv_post_send(s->qp, &wr, &bad) != 0) {
        cmn_dp_rc__session_fail(s, LODE_EAUTH, why);
        return;
    }
    s->outstanding++;
    s->sq_used++;
}

void cmn_dp_rc__on_hello(struct rc_sess *s, uint32_t byte_len)
{
    struct cmn_dp_rc *rc = s->rc;
    struct cmn_dp_cred cred;
    struct cmn_err err;
    if (s->state != S_ACCEPTING)
        return;
    if (byte_len != CMN_DP_HELLO_SIZE) {
        refuse(s, CMN_DP_CODE_MALFORMED, "first message is not a HELLO");
        return;
    }
    int rv = cmn_dp_hello_decode(s->ctl, &cred, &err);
    if (rv != 0) {
        refuse(s, CMN_DP_CODE_MALFORMED, cmn_err_text(&err));
        return;
    }
    if (memcmp(cred.sid, s->sid, 16) != 0) {
        refuse(s, CMN_DP_CODE_MALFORMED, "HELLO names another session than the connect request");
        return;
    }
    int64_t now = rc->cfg.now_ms();
    rv = cmn_dp_cred_verify(rc->secret, rc->cfg.secret_len, &cred, now < 0 ? 0 : (uint64_t)now,
                            &err);
    if (rv != 0) {
        refuse(s, cmn_dp_code_from_err(rv), cmn_err_text(&err));
        return;
    }
    struct rc_sess *other = hash_find(rc, s->sid);
    if (other && other != s) {
        refuse(s, CMN_DP_CODE_IN_USE, "the session is already connected here");
        return;
    }
    if (rc->st.sessions >= rc->cfg.max_sessions) {
        refuse(s, CMN_DP_CODE_BUSY, "session table full");
        return;
    }
    memcpy(s->access_key, cred.access_key, sizeof s->access_key);
    s->expires_ms = cred.expires_ms;
    s->state = S_ACTIVE;
    rc->st.pending--;
    rc->st.sessions++;
    s->counted_active = true;
    rc->st.sessions_accepted++;
    hash_insert(rc, s);
    struct cmn_dp_reply r = {.kind = CMN_DP_REPLY_OK, .code = 0, .source_id = rc->cfg.source_id};
    cmn_dp_reply_encode(&r, s->ctl + CMN_DP_HELLO_SIZE);
    struct ibv_sge sge = {.addr = (uintptr_t)(s->ctl + CMN_DP_HELLO_SIZE),
                          .length = CMN_DP_REPLY_SIZE, .lkey = s->ctl_mr->lkey};
    struct ibv_send_wr wr = {.wr_id = (uintptr_t)s | WR_REPLY_SEND, .sg_list = &sge,
                             .num_sge = 1, .opcode = IBV_WR_SEND,
                             .send_flags = IBV_SEND_SIGNALED};
    struct ibv_send_wr *bad = NULL;
    if (ibv_post_send(s->qp, &wr, &bad) != 0) {
        cmn_dp_rc__session_fail(s, LODE_ECLOSED, "cannot send HELLO_OK");
        return;
    }
    s->outstanding++;
    s->sq_used++;
    char sp[9];
    sid_prefix(s->sid, sp);
    LOG_INFO(RC_CTX, "session %s... open (%u live)", sp, rc->st.sessions);
}

/* ---------------------------------------------------------------- devices */

void cmn_dp_rc__set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void cmn_dp_rc__dev_free(struct rc_dev *dev)
{
    if (dev->cq) {
        if (dev->unacked)
            ibv_ack_cq_events(dev->cq, dev->unacked);
        ibv_destroy_cq(dev->cq);
    }
    if (dev->cc)
        ibv_destroy_comp_channel(dev->cc);
    if (dev->pool_mr)
        ibv_dereg_mr(dev->pool_mr);
    for (unsigned i = 0; i < RC_MAX_REGIONS; i++)
        if (dev->region_mr[i])
            ibv_dereg_mr(dev->region_mr[i]);
    if (dev->pd)
        ibv_dealloc_pd(dev->pd);
    free(dev->pool);
    free(dev->slots);
    free(dev->free);
    free(dev);
}

static const char *memlock_hint(int e)
{
    return e == ENOMEM || e == EPERM ? " (RLIMIT_MEMLOCK too low? raise it: ulimit -l unlimited, "
                                       "or LimitMEMLOCK=infinity in the systemd unit)"
                                     : "";
}

/* Registers region i with dev for local access (the NIC reads writes' sources and places
 * reads' data there; no rkey is ever handed out). Returns 0 or -errno. */
int cmn_dp_rc__reg_region(struct rc_dev *dev, unsigned i)
{
    struct cmn_dp_rc *rc = dev->rc;
    dev->region_mr[i] =
        ibv_reg_mr(dev->pd, rc->regions[i].base, rc->regions[i].len, IBV_ACCESS_LOCAL_WRITE);
    if (dev->region_mr[i])
        return 0;
    int e = errno ? errno : ENOMEM;
    LOG_WARN(RC_CTX, "%s: registering a %zu-byte region failed: %s%s; transfers from it are "
             "staged", ibv_get_device_name(dev->verbs->device), rc->regions[i].len, strerror(e),
             memlock_hint(e));
    return -e;
}

struct rc_dev *cmn_dp_rc__dev_get(struct cmn_dp_rc *rc, struct ibv_context *verbs,
                              struct cmn_err *err)
{
    for (unsigned i = 0; i < rc->ndevs; i++)
        if (rc->devs[i]->verbs == verbs)
            return rc->devs[i];
    const char *name = ibv_get_device_name(verbs->device);
    if (rc->ndevs == RC_MAX_DEVS) {
        cmn_err_set(err, LODE_EUNAVAILABLE, "more than %d RDMA devices", RC_MAX_DEVS);
        return NULL;
    }
    struct rc_dev *dev = calloc(1, sizeof *dev);
    if (!dev) {
        cmn_err_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    dev->rc = rc;
    dev->verbs = verbs;
    list_init(&dev->waitq);
    struct ibv_device_attr attr;
    if (ibv_query_device(verbs, &attr) != 0) {
        cmn_err_set(err, LODE_EUNAVAILABLE, "%s: ibv_query_device failed", name);
        goto fail;
    }
    dev->max_rd = (uint32_t)attr.max_qp_rd_atom;
    dev->max_init_rd = (uint32_t)attr.max_qp_init_rd_atom;
    dev->nslots = (uint32_t)(rc->cfg.staging_bytes / rc->cfg.slot_bytes);
    dev->direct_max = dev->direct_free = dev->nslots;
    /* every data request holds a slot or a direct credit; every connection has at most two
     * control requests */
    uint64_t cqe = dev->nslots + dev->direct_max +
                   2ull * (rc->cfg.max_sessions + rc->cfg.max_pending) + 16;
    if (cqe > (uint64_t)attr.max_cqe)
        cqe = (uint64_t)attr.max_cqe;
    dev->pd = ibv_alloc_pd(verbs);
    dev->cc = dev->pd ? ibv_create_comp_channel(verbs) : NULL;
    dev->cq = dev->cc ? ibv_create_cq(verbs, (int)cqe, dev, dev->cc, 0) : NULL;
    if (!dev->cq) {
        cmn_err_set(err, LODE_EUNAVAILABLE, "%s: cannot create PD/CQ: %s", name, strerror(errno));
        goto fail;
    }
    cmn_dp_rc__set_nonblock(dev->cc->fd);
    ibv_req_notify_cq(dev->cq, 0);
    dev->pool = aligned_alloc(4096, rc->cfg.staging_bytes);
    dev->slots = calloc(dev->nslots, sizeof *dev->slots);
    dev->free = calloc(dev->nslots, sizeof *dev->free);
    if (!dev->pool || !dev->slots || !dev->free) {
        cmn_err_set(err, -ENOMEM, "%s: cannot allocate %zu bytes of staging memory", name,
                    rc->cfg.staging_bytes);
        goto fail;
    }
    dev->pool_mr = ibv_reg_mr(dev->pd, dev->pool, rc->cfg.staging_bytes, IBV_ACCESS_LOCAL_WRITE);
    if (!dev->pool_mr) {
        int e = errno;
        cmn_err_set(err, -e, "%s: registering %zu bytes of staging memory failed: %s%s", name,
                    rc->cfg.staging_bytes, strerror(e), memlock_hint(e));
        goto fail;
    }
    for (unsigned i = 0; i < rc->nregions; i++)
        cmn_dp_rc__reg_region(dev, i); /* a failure only costs the copy */
    for (uint32_t i = 0; i < dev->nslots; i++) {
        dev->slots[i].buf = dev->pool + (size_t)i * rc->cfg.slot_bytes;
        dev->free[i] = dev->nslots - 1 - i;
    }
    dev->nfree = dev->nslots;
    if (uv_poll_init(rc->loop, &dev->poll, dev->cc->fd) != 0) {
        cmn_err_set(err, LODE_EINTERNAL, "%s: cannot watch the completion channel", name);
        goto fail;
    }
    dev->poll_inited = true;
    dev->poll.data = dev;
    rc->handles_open++;
    uv_poll_start(&dev->poll, UV_READABLE, cmn_dp_rc__on_cq_event);
    rc->devs[rc->ndevs++] = dev;
    LOG_INFO(RC_CTX, "using RDMA device %s: %u staging slots of %zu bytes", name, dev->nslots,
             rc->cfg.slot_bytes);
    return dev;
fail:
    cmn_dp_rc__dev_free(dev);
    return NULL;
}

/* ---------------------------------------------------------------- connection manager */

static void reject(struct rdma_cm_id *id, enum cmn_dp_code code)
{
    uint8_t pd[CMN_DP_RC_REJECT_SIZE];
    cmn_dp_rc_reject_encode(pd, (uint16_t)code);
    rdma_reject(id, pd, sizeof pd);
    rdma_destroy_id(id);
}

static void on_connect_request(struct cmn_dp_rc *rc, struct rdma_cm_id *id,
                               const struct rdma_conn_param *req, const uint8_t *pdata,
                               size_t plen)
{
    uint8_t sid[16], nonce[8];
    struct cmn_err err;
    if (rc->closing) {
        reject(id, CMN_DP_CODE_BUSY);
        return;
    }
    if (cmn_dp_rc_connect_decode(pdata, plen, sid, nonce) != 0) {
        rc->st.sessions_refused++;
        LOG_INFO(RC_CTX, "connect request refused: not a lode rc connect record");
        reject(id, CMN_DP_CODE_MALFORMED);
        return;
    }
    struct rc_sess *live = hash_find(rc, sid);
    if (live) {
        rc->st.sessions_refused++;
        reject(id, CMN_DP_CODE_IN_USE);
        return;
    }
    if (rc->st.pending >= rc->cfg.max_pending ||
        rc->st.sessions + rc->st.pending >= rc->cfg.max_sessions) {
        rc->st.sessions_refused++;
        LOG_WARN(RC_CTX, "connect request refused: %u sessions, %u connecting", rc->st.sessions,
                 rc->st.pending);
        reject(id, CMN_DP_CODE_BUSY);
        return;
    }
    struct rc_dev *dev = cmn_dp_rc__dev_get(rc, id->verbs, &err);
    if (!dev) {
        LOG_ERROR(RC_CTX, "connect request refused: %s", cmn_err_text(&err));
        reject(id, CMN_DP_CODE_BUSY);
        return;
    }
    struct rc_sess *s = calloc(1, sizeof *s);
    if (!s) {
        reject(id, CMN_DP_CODE_BUSY);
        return;
    }
    s->rc = rc;
    s->dev = dev;
    s->id = id;
    memcpy(s->sid, sid, 16);
    memcpy(s->nonce, nonce, 8);
    s->sq_max = rc->cfg.sq_depth;
    list_init(&s->queue);
    list_init(&s->direct);
    list_init(&s->fences);
    list_init(&s->wait);
    struct ibv_qp_init_attr qa = {
        .send_cq = dev->cq,
        .recv_cq = dev->cq,
        .cap = {.max_send_wr = s->sq_max + 1, .max_recv_wr = 1, .max_send_sge = 1,
                .max_recv_sge = 1},
        .qp_type = IBV_QPT_RC,
    };
    if (rdma_create_qp(id, dev->pd, &qa) != 0) {
        LOG_ERROR(RC_CTX, "connect request refused: rdma_create_qp: %s", strerror(errno));
        free(s);
        reject(id, CMN_DP_CODE_BUSY);
        return;
    }
    s->qp = id->qp;
    id->context = s;
    s->ctl_mr = ibv_reg_mr(dev->pd, s->ctl, sizeof s->ctl, IBV_ACCESS_LOCAL_WRITE);
    struct ibv_sge sge = {.addr = (uintptr_t)s->ctl, .length = CMN_DP_HELLO_SIZE,
                          .lkey = s->ctl_mr ? s->ctl_mr->lkey : 0};
    struct ibv_recv_wr rwr = {.wr_id = (uintptr_t)s | WR_HELLO_RECV, .sg_list = &sge,
                              .num_sge = 1};
    struct ibv_recv_wr *bad = NULL;
    uint8_t timeout = rc->cfg.ack_timeout;
    if (timeout)
        rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof timeout);
    /* READs are issued by this side, so its initiator depth matters: at most what the
     * client's responder offers, this device allows and the configuration wants. The request
     * event states the peer's values from this side's point of view (the peer's responder
     * resources arrive as initiator_depth), so they are used as they are. */
    uint32_t init_depth = req->initiator_depth;
    if (init_depth > dev->max_init_rd)
        init_depth = dev->max_init_rd;
    if (init_depth > rc->cfg.rd_atomic)
        init_depth = rc->cfg.rd_atomic;
    uint32_t resp = req->responder_resources < dev->max_rd ? req->responder_resources : dev->max_rd;
    struct rdma_conn_param cp = {
        .responder_resources = (uint8_t)resp,
        .initiator_depth = (uint8_t)init_depth,
        .retry_count = 7,
        .rnr_retry_count = 7,
    };
    if (!s->ctl_mr || ibv_post_recv(s->qp, &rwr, &bad) != 0 || rdma_accept(id, &cp) != 0) {
        LOG_ERROR(RC_CTX, "connect request refused: cannot set up the connection: %s",
                  strerror(errno));
        if (s->ctl_mr)
            ibv_dereg_mr(s->ctl_mr);
        rdma_destroy_qp(id);
        free(s);
        reject(id, CMN_DP_CODE_BUSY);
        return;
    }
    s->outstanding = 1;    /* the HELLO receive */
    s->state = S_ACCEPTING;
    s->deadline = now_mono() + rc->cfg.hello_timeout_ms;
    rc->st.pending++;
    list_add_tail(&rc->sessions, &s->all);
}

void cmn_dp_rc__on_cm_event(uv_poll_t *h, int status, int events)
{
    (void)events;
    struct cmn_dp_rc *rc = h->data;
    if (status < 0) {
        LOG_ERROR(RC_CTX, "connection manager poll: %s", uv_strerror(status));
        return;
    }
    for (;;) {
        struct rdma_cm_event *ev;
        if (rdma_get_cm_event(rc->ec, &ev) != 0)
            break;    /* EAGAIN: drained */
        /* copy what we need, then ack at once: rdma_destroy_id waits for acks */
        enum rdma_cm_event_type type = ev->event;
        struct rdma_cm_id *id = ev->id;
        struct rdma_conn_param req = ev->param.conn;
        uint8_t pdata[64];
        size_t plen = 0;
        if (type == RDMA_CM_EVENT_CONNECT_REQUEST && req.private_data) {
            plen = req.private_data_len < sizeof pdata ? req.private_data_len : sizeof pdata;
            memcpy(pdata, req.private_data, plen);
        }
        req.private_data = NULL;
        rdma_ack_cm_event(ev);
        if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
            on_connect_request(rc, id, &req, pdata, plen);
            continue;
        }
        struct rc_sess *s = id->context;
        if (!s) {    /* the listener */
            if (type == RDMA_CM_EVENT_DEVICE_REMOVAL)
                LOG_ERROR(RC_CTX, "the listening device went away; no new rc sessions");
            continue;
        }
        switch (type) {
        case RDMA_CM_EVENT_ESTABLISHED:
            break;
        case RDMA_CM_EVENT_DISCONNECTED:
            cmn_dp_rc__session_fail(s, LODE_ECLOSED, "client disconnected");
            break;
        case RDMA_CM_EVENT_CONNECT_ERROR:
        case RDMA_CM_EVENT_UNREACHABLE:
        case RDMA_CM_EVENT_REJECTED:
        case RDMA_CM_EVENT_DEVICE_REMOVAL:
            cmn_dp_rc__session_fail(s, LODE_ECLOSED, rdma_event_str(type));
            break;
        default:
            break;
        }
    }
    cmn_dp_rc__reap(rc);
}

