/* The dc data plane, verbs side (see dp_dc.h): the device, its port and GID table, the PD, CQ
 * and completion channel, registered staging memory, the DCIs created with mlx5dv, and the
 * libuv glue. Everything that decides anything (queues, slots, retries, recovery, fences,
 * callbacks) is the NIC-free engine of dp_dc_engine.c, which calls back here through
 * struct dc_hw_ops to post a WR, modify a DCI or make an address handle.
 *
 * Re-entrancy: user callbacks may call back into this module (even close). They only run from
 * reap(), at the end of a top-level libuv handler, never nested, and nothing is freed while a
 * handler holds pointers: the handle is freed only once its uv handles are closed.
 *
 * Not yet run on ConnectX hardware: tests/hw/README.md.
 */
#include "common/dp_dc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"

/* The engine mirrors rdma-core's numbers; keep them honest. */
#define MIRROR(a, b) _Static_assert((long)(a) == (long)(b), #b " mirrors " #a)
MIRROR(IBV_WC_SUCCESS, DC_WC_SUCCESS);
MIRROR(IBV_WC_LOC_LEN_ERR, DC_WC_LOC_LEN_ERR);
MIRROR(IBV_WC_LOC_QP_OP_ERR, DC_WC_LOC_QP_OP_ERR);
MIRROR(IBV_WC_LOC_PROT_ERR, DC_WC_LOC_PROT_ERR);
MIRROR(IBV_WC_WR_FLUSH_ERR, DC_WC_WR_FLUSH_ERR);
MIRROR(IBV_WC_BAD_RESP_ERR, DC_WC_BAD_RESP_ERR);
MIRROR(IBV_WC_LOC_ACCESS_ERR, DC_WC_LOC_ACCESS_ERR);
MIRROR(IBV_WC_REM_INV_REQ_ERR, DC_WC_REM_INV_REQ_ERR);
MIRROR(IBV_WC_REM_ACCESS_ERR, DC_WC_REM_ACCESS_ERR);
MIRROR(IBV_WC_REM_OP_ERR, DC_WC_REM_OP_ERR);
MIRROR(IBV_WC_RETRY_EXC_ERR, DC_WC_RETRY_EXC_ERR);
MIRROR(IBV_WC_RNR_RETRY_EXC_ERR, DC_WC_RNR_RETRY_EXC_ERR);
MIRROR(IBV_WC_REM_INV_RD_REQ_ERR, DC_WC_REM_INV_RD_REQ_ERR);
MIRROR(IBV_WC_REM_ABORT_ERR, DC_WC_REM_ABORT_ERR);
MIRROR(IBV_WC_FATAL_ERR, DC_WC_FATAL_ERR);
MIRROR(IBV_WC_RESP_TIMEOUT_ERR, DC_WC_RESP_TIMEOUT_ERR);
MIRROR(IBV_WC_GENERAL_ERR, DC_WC_GENERAL_ERR);
MIRROR(IBV_QPS_RESET, DC_QPS_RESET);
MIRROR(IBV_QPS_INIT, DC_QPS_INIT);
MIRROR(IBV_QPS_RTR, DC_QPS_RTR);
MIRROR(IBV_QPS_RTS, DC_QPS_RTS);
MIRROR(IBV_QPS_SQD, DC_QPS_SQD);
MIRROR(IBV_QPS_SQE, DC_QPS_SQE);
MIRROR(IBV_QPS_ERR, DC_QPS_ERR);
MIRROR(IBV_QP_STATE, DC_QP_STATE);
MIRROR(IBV_QP_PKEY_INDEX, DC_QP_PKEY_INDEX);
MIRROR(IBV_QP_PORT, DC_QP_PORT);
MIRROR(IBV_QP_AV, DC_QP_AV);
MIRROR(IBV_QP_PATH_MTU, DC_QP_PATH_MTU);
MIRROR(IBV_QP_TIMEOUT, DC_QP_TIMEOUT);
MIRROR(IBV_QP_RETRY_CNT, DC_QP_RETRY_CNT);
MIRROR(IBV_QP_RNR_RETRY, DC_QP_RNR_RETRY);
MIRROR(IBV_QP_MAX_QP_RD_ATOMIC, DC_QP_MAX_QP_RD_ATOMIC);
MIRROR(IBV_QP_SQ_PSN, DC_QP_SQ_PSN);
_Static_assert(IBV_GID_TYPE_IB == 0 && IBV_GID_TYPE_ROCE_V1 == 1 && IBV_GID_TYPE_ROCE_V2 == 2,
               "GID types as gid_type_of() maps them");
#undef MIRROR

#define DC_SWEEP_MS 100
#define DC_TEARDOWN_MS 5000     /* how long close waits for flushes before destroying DCIs */
#define DC_MAX_GIDS 1024

struct dc_hwqp {
    struct ibv_qp *qp;
    struct ibv_qp_ex *qpx;
    struct mlx5dv_qp_ex *mqpx;
};

struct cmn_dp_dc {
    uv_loop_t *loop;
    struct cmn_dp_dc_config cfg;         /* strings not kept */
    struct dc_engine eng;
    bool eng_inited;
    char devname[IBV_SYSFS_NAME_MAX];
    struct ibv_context *ctx;
    struct ibv_pd *pd;
    struct ibv_comp_channel *cc;
    struct ibv_cq *cq;
    uint8_t *pool;
    struct ibv_mr *mr;
    struct ibv_mr *region_mr[CMN_DP_DC_MAX_REGIONS]; /* by the engine's region index */
    struct dc_hwqp *qps;
    uint32_t nqps;
    uint8_t port;
    bool roce;
    enum ibv_mtu mtu;
    struct cmn_gid_entry *gids;          /* this port's non-empty GID rows */
    size_t ngids;
    uv_poll_t poll;
    uv_timer_t sweep;
    uv_idle_t reaper;
    bool handles_inited;
    unsigned handles_open, unacked;
    bool closing, finishing, reaping;
    uint64_t close_deadline;
    cmn_dp_dc_close_cb close_cb;
    void *close_data;
    struct cmn_log_ratelimit rl_submit;
};

/* ---------------------------------------------------------------- the NIC for the engine */

static int hw_post(void *hw, uint32_t dci, const struct dc_post *p)
{
    struct cmn_dp_dc *dc = hw;
    struct dc_hwqp *q = &dc->qps[dci];
    ibv_wr_start(q->qpx);
    q->qpx->wr_id = p->wr_id;
    q->qpx->wr_flags = IBV_SEND_SIGNALED;
    if (p->is_read)
        ibv_wr_rdma_read(q->qpx, p->rkey, p->raddr);
    else
        ibv_wr_rdma_write(q->qpx, p->rkey, p->raddr);
    mlx5dv_wr_set_dc_addr(q->mqpx, p->ah, p->dctn, p->dc_key);
    uint32_t lkey = p->region >= 0 ? dc->region_mr[p->region]->lkey : dc->mr->lkey;
    ibv_wr_set_sge(q->qpx, lkey, (uint64_t)(uintptr_t)p->local, p->len);
    int rv = ibv_wr_complete(q->qpx);
    return rv ? -rv : 0;
}

static int hw_modify(void *hw, uint32_t dci, const struct dc_qp_step *s)
{
    struct cmn_dp_dc *dc = hw;
    struct ibv_qp_attr a;
    memset(&a, 0, sizeof a);
    a.qp_state = (enum ibv_qp_state)s->state;
    a.port_num = s->port_num;
    a.pkey_index = s->pkey_index;
    a.path_mtu = (enum ibv_mtu)s->path_mtu;
    a.timeout = s->timeout;
    a.retry_cnt = s->retry_cnt;
    a.rnr_retry = s->rnr_retry;
    a.max_rd_atomic = s->max_rd_atomic;
    a.sq_psn = s->sq_psn;
    if (s->mask & DC_QP_AV) {
        a.ah_attr.port_num = s->av_port;
        a.ah_attr.is_global = s->av_is_global;
        a.ah_attr.grh.sgid_index = s->av_sgid_index;
        a.ah_attr.grh.hop_limit = s->av_hop_limit;
    }
    int rv = ibv_modify_qp(dc->qps[dci].qp, &a, (int)s->mask);
    return rv ? -rv : 0;
}

static void *hw_ah_create(void *hw, const struct cmn_dc_ah *attr, struct cmn_err *err)
{
    struct cmn_dp_dc *dc = hw;
    struct ibv_ah_attr a;
    memset(&a, 0, sizeof a);
    a.is_global = attr->is_global;
    a.dlid = attr->dlid;
    a.sl = attr->sl;
    a.port_num = dc->port;
    if (attr->is_global) {
        memcpy(a.grh.dgid.raw, attr->dgid, 16);
        a.grh.sgid_index = attr->sgid_index;
        a.grh.hop_limit = attr->hop_limit;
        a.grh.traffic_class = attr->traffic_class;
    }
    struct ibv_ah *ah = ibv_create_ah(dc->pd, &a);
    if (!ah)
        cmn_err_set(err, LODE_EUNAVAILABLE, "ibv_create_ah on %s port %u (source GID index %u): "
                    "%s (is the client's %s GID reachable from this port?)", dc->devname,
                    dc->port, attr->sgid_index, strerror(errno),
                    cmn_gid_family_name(cmn_gid_family(attr->dgid)));
    return ah;
}

static void hw_ah_destroy(void *hw, void *ah)
{
    (void)hw;
    ibv_destroy_ah(ah);
}

static const struct dc_hw_ops hw_ops = {
    .post = hw_post,
    .modify = hw_modify,
    .ah_create = hw_ah_create,
    .ah_destroy = hw_ah_destroy,
};

/* ---------------------------------------------------------------- loop glue */

static void schedule_reap(struct cmn_dp_dc *dc);

static void drain_cq(struct cmn_dp_dc *dc)
{
    struct ibv_wc wc[32];
    int n;
    uint64_t now = cmn_mono_ms();
    while ((n = ibv_poll_cq(dc->cq, 32, wc)) > 0)
        for (int i = 0; i < n; i++)
            dc_engine_on_wc(&dc->eng, wc[i].wr_id, (int)wc[i].status, now);
}

static void on_handle_closed(uv_handle_t *h);

static void free_verbs(struct cmn_dp_dc *dc)
{
    for (uint32_t i = 0; i < dc->nqps; i++)
        if (dc->qps[i].qp)
            ibv_destroy_qp(dc->qps[i].qp);
    dc->nqps = 0;
    if (dc->eng_inited)
        dc_engine_fini(&dc->eng);    /* destroys the address handles: before the PD goes */
    dc->eng_inited = false;
    if (dc->mr)
        ibv_dereg_mr(dc->mr);
    for (int i = 0; i < CMN_DP_DC_MAX_REGIONS; i++) {
        if (dc->region_mr[i])
            ibv_dereg_mr(dc->region_mr[i]);
        dc->region_mr[i] = NULL;
    }
    if (dc->cq) {
        if (dc->unacked)
            ibv_ack_cq_events(dc->cq, dc->unacked);
        ibv_destroy_cq(dc->cq);
    }
    if (dc->cc)
        ibv_destroy_comp_channel(dc->cc);
    if (dc->pd)
        ibv_dealloc_pd(dc->pd);
    if (dc->ctx)
        ibv_close_device(dc->ctx);
    free(dc->pool);
    free(dc->qps);
    free(dc->gids);
    dc->mr = NULL;
    dc->cq = NULL;
    dc->cc = NULL;
    dc->pd = NULL;
    dc->ctx = NULL;
    dc->pool = NULL;
    dc->qps = NULL;
    dc->gids = NULL;
}

/* Finishes a close once no WR is in the hardware, or when the flushes are overdue (a wedged
 * device): destroying the DCIs guarantees the device no longer touches the staging memory. */
static void maybe_finish(struct cmn_dp_dc *dc)
{
    if (dc->finishing)
        return;
    if (!dc_engine_quiet(&dc->eng) && cmn_mono_ms() < dc->close_deadline)
        return;
    if (!dc_engine_quiet(&dc->eng)) {
        LOG_WARN(DC_CTX, "%u WRs did not flush in %d ms; destroying the DCIs",
                 dc->eng.inflight, DC_TEARDOWN_MS);
        drain_cq(dc);
        for (uint32_t i = 0; i < dc->nqps; i++) {
            ibv_destroy_qp(dc->qps[i].qp);
            dc->qps[i].qp = NULL;
        }
        drain_cq(dc);
        dc_engine_abandon(&dc->eng);
    }
    while (dc_engine_run_done(&dc->eng)) {
    }
    dc->finishing = true;
    free_verbs(dc);
    uv_close((uv_handle_t *)&dc->poll, on_handle_closed);
    uv_close((uv_handle_t *)&dc->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&dc->reaper, on_handle_closed);
}

/* Delivers callbacks; never nested (a callback's own calls only schedule). */
static void reap(struct cmn_dp_dc *dc)
{
    if (dc->reaping || dc->finishing)
        return;
    dc->reaping = true;
    while (dc_engine_run_done(&dc->eng)) {
    }
    dc->reaping = false;
    uv_idle_stop(&dc->reaper);
    if (dc->closing)
        maybe_finish(dc);
}

static void on_reaper(uv_idle_t *h) { reap(h->data); }

static void schedule_reap(struct cmn_dp_dc *dc)
{
    if (!dc->finishing)
        uv_idle_start(&dc->reaper, on_reaper);
}

static void on_cq_event(uv_poll_t *h, int status, int events)
{
    (void)events;
    struct cmn_dp_dc *dc = h->data;
    if (dc->finishing)
        return;
    if (status < 0) {
        LOG_ERROR(DC_CTX, "completion channel poll: %s", uv_strerror(status));
        return;
    }
    struct ibv_cq *cq;
    void *ctx;
    while (ibv_get_cq_event(dc->cc, &cq, &ctx) == 0)
        dc->unacked++;
    if (dc->unacked >= 64) {    /* acking takes a lock in the provider: do it in batches */
        ibv_ack_cq_events(dc->cq, dc->unacked);
        dc->unacked = 0;
    }
    /* re-arm before polling, so a completion that lands meanwhile raises a new event */
    ibv_req_notify_cq(dc->cq, 0);
    drain_cq(dc);
    reap(dc);
}

static void on_sweep(uv_timer_t *t)
{
    struct cmn_dp_dc *dc = t->data;
    if (dc->finishing)
        return;
    if (!dc->closing)
        dc_engine_tick(&dc->eng, cmn_mono_ms());
    else
        drain_cq(dc);    /* a missed event must not hold a close up until its deadline */
    reap(dc);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct cmn_dp_dc *dc = h->data;
    if (--dc->handles_open > 0)
        return;
    cmn_dp_dc_close_cb cb = dc->close_cb;
    void *data = dc->close_data;
    free(dc);
    if (cb)
        cb(data);
}

/* ---------------------------------------------------------------- setup */

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The device and port that own a local address: bind an rdma_cm id to it and look. */
static int find_by_ip(const char *ip, char *name, size_t cap, uint8_t *port, struct cmn_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    int rv = getaddrinfo(ip, NULL, &hints, &ai);
    if (rv != 0)
        return cmn_err_set(err, LODE_ECONFIG, "dc: address %s: %s", ip, gai_strerror(rv));
    struct rdma_event_channel *ec = rdma_create_event_channel();
    struct rdma_cm_id *id = NULL;
    if (!ec || rdma_create_id(ec, &id, NULL, RDMA_PS_UDP) != 0) {
        rv = cmn_err_set(err, LODE_EUNAVAILABLE, "dc: no RDMA connection manager (%s): is the "
                    "rdma_ucm module loaded?", strerror(errno));
        goto out;
    }
    if (rdma_bind_addr(id, ai->ai_addr) != 0 || !id->verbs) {
        rv = cmn_err_set(err, LODE_EUNAVAILABLE, "dc: address %s belongs to no RDMA device (%s); "
                    "the address must be on the RDMA device's own interface, not only on a "
                    "bond or VLAN above it", ip, id->verbs ? strerror(errno) : "no device");
        goto out;
    }
    snprintf(name, cap, "%s", ibv_get_device_name(id->verbs->device));
    *port = id->port_num;
    rv = 0;
out:
    if (id)
        rdma_destroy_id(id);
    if (ec)
        rdma_destroy_event_channel(ec);
    freeaddrinfo(ai);
    return rv;
}

static int open_device(struct cmn_dp_dc *dc, const struct cmn_dp_dc_config *c,
                       struct cmn_err *err)
{
    dc->port = c->port;
    if (c->device && c->device[0]) {
        snprintf(dc->devname, sizeof dc->devname, "%s", c->device);
    } else {
        int rv = find_by_ip(c->ip, dc->devname, sizeof dc->devname, &dc->port, err);
        if (rv != 0)
            return rv;
    }
    int n = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (!list || n == 0) {
        if (list)
            ibv_free_device_list(list);
        return cmn_err_set(err, LODE_EUNAVAILABLE, "dc: no RDMA devices on this host (is the "
                           "mlx5_ib module loaded?); dc needs a ConnectX NIC");
    }
    struct ibv_device *dev = NULL;
    char names[256] = "";
    for (int i = 0; i < n; i++) {
        const char *nm = ibv_get_device_name(list[i]);
        if (strcmp(nm, dc->devname) == 0)
            dev = list[i];
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", nm);
    }
    int rv = 0;
    if (!dev)
        rv = cmn_err_set(err, LODE_ECONFIG, "dc: no RDMA device %s (this host has: %s)",
                         dc->devname, names);
    else if (!mlx5dv_is_supported(dev))
        rv = cmn_err_set(err, LODE_EUNAVAILABLE, "dc: %s is not an mlx5 device; DC needs a "
                         "ConnectX NIC (use the rc or tcp transport instead)", dc->devname);
    else if (!(dc->ctx = ibv_open_device(dev)))
        rv = cmn_err_set(err, LODE_EUNAVAILABLE, "dc: cannot open %s: %s", dc->devname,
                         strerror(errno));
    ibv_free_device_list(list);
    return rv;
}

static enum cmn_gid_type gid_type_of(uint32_t t)
{
    return t == IBV_GID_TYPE_ROCE_V2 ? CMN_GID_TYPE_ROCE_V2
           : t == IBV_GID_TYPE_ROCE_V1 ? CMN_GID_TYPE_ROCE_V1 : CMN_GID_TYPE_IB;
}

static int query_gids(struct cmn_dp_dc *dc, const struct ibv_port_attr *pa, struct cmn_err *err)
{
    size_t max = DC_MAX_GIDS;
    struct ibv_gid_entry *all = calloc(max, sizeof *all);
    dc->gids = calloc(max, sizeof *dc->gids);
    if (!all || !dc->gids) {
        free(all);
        return cmn_err_set(err, -ENOMEM, "out of memory");
    }
    ssize_t n = ibv_query_gid_table(dc->ctx, all, max, 0);
    if (n < 0) {
        free(all);
        return cmn_err_set(err, LODE_EUNAVAILABLE, "dc: %s: cannot read the GID table: %s",
                           dc->devname, strerror((int)-n));
    }
    for (ssize_t i = 0; i < n; i++) {
        if (all[i].port_num != dc->port || all[i].gid_index > 255)
            continue;
        struct cmn_gid_entry *g = &dc->gids[dc->ngids++];
        memcpy(g->gid, all[i].gid.raw, 16);
        g->type = gid_type_of(all[i].gid_type);
        g->index = all[i].gid_index;
    }
    free(all);
    (void)pa;
    return 0;
}

/* Startup report of the source GID choice (design §8: log it), and the index used for the
 * DCI's own address vector when rtr_av is set. */
static uint8_t report_gids(struct cmn_dp_dc *dc)
{
    if (dc->cfg.gid_index >= 0) {
        bool found = false;
        for (size_t i = 0; i < dc->ngids; i++) {
            if (dc->gids[i].index != (uint32_t)dc->cfg.gid_index)
                continue;
            found = true;
            if (dc->roce && dc->gids[i].type != CMN_GID_TYPE_ROCE_V2)
                LOG_WARN(DC_CTX, "dc-gid-index %d is not a RoCEv2 entry; cuObject clients "
                         "use RoCEv2", dc->cfg.gid_index);
        }
        if (!found)
            LOG_WARN(DC_CTX, "dc-gid-index %d is empty on %s port %u", dc->cfg.gid_index,
                     dc->devname, dc->port);
        LOG_INFO(DC_CTX, "source GID index %d (configured)", dc->cfg.gid_index);
        return (uint8_t)dc->cfg.gid_index;
    }
    static const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t i4 = 0, i6 = 0;
    bool ok4 = cmn_dc_pick_sgid(dc->gids, dc->ngids, v4, &i4, NULL) == 0;
    bool ok6 = cmn_dc_pick_sgid(dc->gids, dc->ngids, v6, &i6, NULL) == 0;
    char s4[8] = "none", s6[8] = "none";
    if (ok4)
        snprintf(s4, sizeof s4, "%u", i4);
    if (ok6)
        snprintf(s6, sizeof s6, "%u", i6);
    LOG_INFO(DC_CTX, "source GID per client family: IPv4 clients index %s, IPv6/IB clients "
             "index %s", s4, s6);
    if (!ok4 && !ok6)
        LOG_WARN(DC_CTX, "%s port %u has no usable source GID: no client can be reached",
                 dc->devname, dc->port);
    return ok4 ? i4 : ok6 ? i6 : 0;
}

static int create_dcis(struct cmn_dp_dc *dc, struct cmn_err *err)
{
    dc->qps = calloc(dc->cfg.num_dcis, sizeof *dc->qps);
    if (!dc->qps)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    for (uint32_t i = 0; i < dc->cfg.num_dcis; i++) {
        struct ibv_qp_init_attr_ex qa;
        memset(&qa, 0, sizeof qa);
        qa.qp_type = IBV_QPT_DRIVER;
        qa.send_cq = dc->cq;
        qa.recv_cq = dc->cq;
        qa.pd = dc->pd;
        qa.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
        qa.send_ops_flags = IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_READ;
        qa.cap.max_send_wr = dc->cfg.sq_depth;
        qa.cap.max_send_sge = 1;
        struct mlx5dv_qp_init_attr dv;
        memset(&dv, 0, sizeof dv);
        dv.comp_mask = MLX5DV_QP_INIT_ATTR_MASK_DC | MLX5DV_QP_INIT_ATTR_MASK_QP_CREATE_FLAGS;
        dv.dc_init_attr.dc_type = MLX5DV_DCTYPE_DCI;
        /* the provider does not support scatter-to-CQE on DCIs */
        dv.create_flags = MLX5DV_QP_CREATE_DISABLE_SCATTER_TO_CQE;
        struct dc_hwqp *q = &dc->qps[i];
        q->qp = mlx5dv_create_qp(dc->ctx, &qa, &dv);
        if (!q->qp)
            return cmn_err_set(err, LODE_EUNAVAILABLE, "dc: %s: creating DCI %u failed: %s "
                               "(does this ConnectX support DC, and is the send queue depth %u "
                               "within its limits?)", dc->devname, i, strerror(errno),
                               dc->cfg.sq_depth);
        dc->nqps = i + 1;
        q->qpx = ibv_qp_to_qp_ex(q->qp);
        q->mqpx = q->qpx ? mlx5dv_qp_ex_from_ibv_qp_ex(q->qpx) : NULL;
        if (!q->mqpx)
            return cmn_err_set(err, LODE_EUNAVAILABLE, "dc: %s: DCI %u has no extended send "
                               "interface (rdma-core too old?)", dc->devname, i);
    }
    return 0;
}

static int setup(struct cmn_dp_dc *dc, struct cmn_err *err)
{
    int rv = open_device(dc, &dc->cfg, err);
    if (rv != 0)
        return rv;
    struct ibv_device_attr da;
    struct ibv_port_attr pa;
    if (ibv_query_device(dc->ctx, &da) != 0 || ibv_query_port(dc->ctx, dc->port, &pa) != 0)
        return cmn_err_set(err, LODE_EUNAVAILABLE, "dc: %s port %u: cannot query it (%s)",
                           dc->devname, dc->port, strerror(errno));
    if (pa.state != IBV_PORT_ACTIVE)
        return cmn_err_set(err, LODE_EUNAVAILABLE, "dc: %s port %u is %s, not ACTIVE (link "
                           "down?)", dc->devname, dc->port, ibv_port_state_str(pa.state));
    dc->roce = pa.link_layer == IBV_LINK_LAYER_ETHERNET;
    dc->mtu = pa.active_mtu;
    if ((rv = query_gids(dc, &pa, err)) != 0)
        return rv;
    uint8_t av_sgid = report_gids(dc);

    uint32_t nslots = (uint32_t)(dc->cfg.staging_bytes / dc->cfg.slot_bytes);
    int cqe = (int)(nslots + 16);
    if (cqe > da.max_cqe)
        cqe = da.max_cqe;
    dc->pd = ibv_alloc_pd(dc->ctx);
    dc->cc = dc->pd ? ibv_create_comp_channel(dc->ctx) : NULL;
    dc->cq = dc->cc ? ibv_create_cq(dc->ctx, cqe, dc, dc->cc, 0) : NULL;
    if (!dc->cq)
        return cmn_err_set(err, LODE_EUNAVAILABLE, "dc: %s: cannot create PD/CQ: %s",
                           dc->devname, strerror(errno));
    set_nonblock(dc->cc->fd);
    ibv_req_notify_cq(dc->cq, 0);
    dc->pool = aligned_alloc(4096, dc->cfg.staging_bytes);
    if (!dc->pool)
        return cmn_err_set(err, -ENOMEM, "dc: cannot allocate %zu bytes of staging memory",
                           dc->cfg.staging_bytes);
    dc->mr = ibv_reg_mr(dc->pd, dc->pool, dc->cfg.staging_bytes, IBV_ACCESS_LOCAL_WRITE);
    if (!dc->mr) {
        int e = errno;
        return cmn_err_set(err, -e, "dc: registering %zu bytes of staging memory on %s failed: "
                           "%s%s", dc->cfg.staging_bytes, dc->devname, strerror(e),
                           e == ENOMEM || e == EPERM
                               ? " (RLIMIT_MEMLOCK too low? raise it: ulimit -l unlimited, or "
                                 "LimitMEMLOCK=infinity in the systemd unit)"
                               : "");
    }
    if (da.max_qp_init_rd_atom > 0 && dc->cfg.max_rd_atomic > da.max_qp_init_rd_atom)
        dc->cfg.max_rd_atomic = (uint8_t)da.max_qp_init_rd_atom;
    if ((rv = create_dcis(dc, err)) != 0)
        return rv;
    struct dc_qp_params qp = {
        .port = dc->port,
        .pkey_index = 0,
        .path_mtu = (uint8_t)dc->mtu,
        .timeout = dc->cfg.timeout,
        .retry_cnt = dc->cfg.retry_cnt,
        .rnr_retry = 0,
        .max_rd_atomic = dc->cfg.max_rd_atomic,
        .rtr_av = dc->cfg.rtr_av,
        .is_global = dc->roce,
        .sgid_index = av_sgid,
        .hop_limit = dc->cfg.hop_limit,
    };
    uint64_t seed = 0;
    cmn_random_bytes(&seed, sizeof seed);
    if ((rv = dc_engine_init(&dc->eng, &dc->cfg, &hw_ops, dc, dc->pool, &qp, seed, err)) != 0)
        return cmn_err_wrap(err, "%s port %u", dc->devname, dc->port);
    dc->eng_inited = true;
    LOG_INFO(DC_CTX, "using %s port %u (%s, MTU %d): %u DCIs of %u WRs, %u staging slots of "
             "%zu bytes, drain bound %llu ms", dc->devname, dc->port,
             dc->roce ? "RoCE" : "InfiniBand", 128 << dc->mtu, dc->cfg.num_dcis,
             dc->cfg.sq_depth, nslots, dc->cfg.slot_bytes,
             (unsigned long long)dc->eng.drain_ms);
    if (dc->cfg.dc_key == CMN_DP_DC_KEY_DEFAULT)
        LOG_WARN(DC_CTX, "dc-key is cuObject's public default: set a key of this cluster's own "
                 "here and in the clients' cuobj.json");
    return 0;
}

/* ---------------------------------------------------------------- public API */

int cmn_dp_dc_create(uv_loop_t *loop, const struct cmn_dp_dc_config *cfg, struct cmn_dp_dc **out,
                     struct cmn_err *err)
{
    if (!loop || !cfg || !out)
        return cmn_err_set(err, -EINVAL, "dc: loop, config and out are required");
    struct cmn_dp_dc *dc = calloc(1, sizeof *dc);
    if (!dc)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    int rv = cmn_dp_dc_config_check(cfg, &dc->cfg, err);
    if (rv == 0)
        rv = setup(dc, err);
    dc->cfg.device = dc->cfg.ip = NULL;    /* not kept */
    if (rv == 0 && uv_poll_init(loop, &dc->poll, dc->cc->fd) != 0)
        rv = cmn_err_set(err, LODE_EINTERNAL, "dc: cannot watch the completion channel");
    if (rv != 0) {
        free_verbs(dc);
        free(dc);
        return rv;
    }
    dc->loop = loop;
    dc->rl_submit = (struct cmn_log_ratelimit)CMN_LOG_RATELIMIT_INIT(10000, 10);
    uv_timer_init(loop, &dc->sweep);
    uv_idle_init(loop, &dc->reaper);
    dc->poll.data = dc->sweep.data = dc->reaper.data = dc;
    dc->handles_open = 3;
    uv_poll_start(&dc->poll, UV_READABLE, on_cq_event);
    uv_timer_start(&dc->sweep, on_sweep, DC_SWEEP_MS, DC_SWEEP_MS);
    *out = dc;
    return 0;
}

/* A token's target under this instance's settings. Refusals are logged (rate-limited): the
 * push API returns only a code, and the operator needs the reason (e.g. no GID of the
 * client's family). */
static int target_of(struct cmn_dp_dc *dc, const struct cmn_rdma_token *t, bool any_sgid,
                     struct cmn_dc_target *tg)
{
    if (!t || t->kind != CMN_RDMA_DC)
        return -EINVAL;
    struct cmn_dc_local local;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rv = dc_local_for(&dc->cfg, dc->gids, dc->ngids, t, &local, &err);
    if (rv != 0 && any_sgid) {
        local.sgid_index = 0;    /* fences match targets without the source GID */
        rv = 0;
    }
    if (rv == 0)
        rv = cmn_dc_derive(t, &local, tg, &err);
    uint32_t n;
    if (rv != 0 && cmn_log_ratelimit_ok(&dc->rl_submit, &n))
        LOG_WARN(DC_CTX, "transfer refused: %s", cmn_err_text(&err));
    return rv;
}

static int submit(struct cmn_dp_dc *dc, const struct cmn_rdma_token *t, uint64_t off,
                  uint8_t *local, size_t len, bool is_read, cmn_dp_dc_cb cb, void *data)
{
    if (dc->closing)
        return LODE_ESHUTDOWN;
    struct cmn_dc_target tg;
    int rv = target_of(dc, t, false, &tg);
    if (rv != 0)
        return rv;
    rv = dc_engine_submit(&dc->eng, &tg, off, local, len, is_read, cb, data, cmn_mono_ms());
    if (rv == 0)
        schedule_reap(dc);    /* the call may have failed at once (no address handle) */
    return rv;
}

int cmn_dp_dc_write(struct cmn_dp_dc *dc, const struct cmn_rdma_token *t, uint64_t off,
                    const void *src, size_t len, cmn_dp_dc_cb cb, void *data)
{
    /* the engine only reads through this pointer for a write */
    return submit(dc, t, off, (uint8_t *)(uintptr_t)src, len, false, cb, data);
}

int cmn_dp_dc_read(struct cmn_dp_dc *dc, const struct cmn_rdma_token *t, uint64_t off, void *dst,
                   size_t len, cmn_dp_dc_cb cb, void *data)
{
    return submit(dc, t, off, dst, len, true, cb, data);
}

int cmn_dp_dc_fence(struct cmn_dp_dc *dc, const struct cmn_rdma_token *t, cmn_dp_dc_cb cb,
                    void *data)
{
    if (dc->closing)
        return LODE_ESHUTDOWN;
    struct cmn_dc_target tg;
    int rv = target_of(dc, t, true, &tg);
    if (rv != 0)
        return rv;
    rv = dc_engine_fence(&dc->eng, &tg, cb, data, cmn_mono_ms());
    if (rv == 0)
        schedule_reap(dc);
    return rv;
}

uint64_t cmn_dp_dc_drain_ms(const struct cmn_dp_dc *dc) { return dc->eng.drain_ms; }

int cmn_dp_dc_add_region(struct cmn_dp_dc *dc, void *base, size_t len, struct cmn_err *err)
{
    if (dc->closing)
        return cmn_err_set(err, LODE_ESHUTDOWN, "dc: closing");
    if (!base || len == 0 || (uintptr_t)base > UINTPTR_MAX - len)
        return cmn_err_set(err, -EINVAL, "dc: an empty or wrapping region");
    if (dc->eng.nregions == CMN_DP_DC_MAX_REGIONS)
        return cmn_err_set(err, -ENOSPC, "dc: %d regions already", CMN_DP_DC_MAX_REGIONS);
    /* local access only: the NIC reads writes' sources here and places reads' data; no rkey
     * for it is ever handed out */
    struct ibv_mr *mr = ibv_reg_mr(dc->pd, base, len, IBV_ACCESS_LOCAL_WRITE);
    if (!mr) {
        int e = errno ? errno : ENOMEM;
        return cmn_err_set(err, -e, "dc: registering %zu bytes with %s failed: %s%s", len,
                           dc->devname, strerror(e),
                           e == ENOMEM || e == EPERM ? " (RLIMIT_MEMLOCK too low?)" : "");
    }
    int idx = dc_engine_add_region(&dc->eng, base, len);
    if (idx < 0) {
        ibv_dereg_mr(mr);
        return cmn_err_set(err, idx, "dc: the region overlaps one already added");
    }
    dc->region_mr[idx] = mr;
    return 0;
}

void cmn_dp_dc_get_stats(const struct cmn_dp_dc *dc, struct cmn_dp_dc_stats *out)
{
    dc_engine_stats(&dc->eng, out);
}

void cmn_dp_dc_close(struct cmn_dp_dc *dc, cmn_dp_dc_close_cb close_cb, void *data)
{
    if (!dc || dc->closing)
        return;
    dc->closing = true;
    dc->close_cb = close_cb;
    dc->close_data = data;
    dc->close_deadline = cmn_mono_ms() + DC_TEARDOWN_MS;
    dc_engine_shutdown(&dc->eng, cmn_mono_ms());
    schedule_reap(dc);
}
