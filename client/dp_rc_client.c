/* liblode's rc data plane: see dp_rc_client.h, and docs/dataplane-rc.md for the protocol.
 *
 * Connection steps per source: resolve address -> resolve route -> QP + connect request with
 * the short connect record -> ESTABLISHED -> SEND the HELLO -> RECV HELLO_OK/ERR. All sources
 * of one call advance together on one event channel and one completion channel; the call
 * polls both fds until every source has an outcome or the deadline passes.
 */
#include "client/dp_rc_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "common/clock.h"
#include "common/dp_rc.h"
#include "common/id.h"

/* Address and route resolution attempts are short and repeated until the caller's deadline:
 * the kernel re-checks a pending neighbour only on a neighbour event or at the attempt's
 * timeout, and where that event is missed a long attempt just waits. */
#define RESOLVE_MS 250
#define IN_USE_RETRY_MS 50

enum conn_state {
    C_ADDR,        /* resolving the address */
    C_ROUTE,       /* resolving the route */
    C_CONNECT,     /* connect request sent */
    C_HELLO,       /* HELLO sent, waiting for the reply */
    C_RETRY,       /* refused as in use; a new attempt at retry_at */
    C_UP,
    C_FAILED,      /* never got up: status + msg */
    C_CLOSED,      /* was up, then dropped */
};

struct rc_conn {
    struct lc_rc_client *c;
    uint64_t source_id;
    char addr[128];
    struct sockaddr_storage dst;
    enum conn_state state;
    struct rdma_cm_id *id;
    struct ibv_cq *cq;
    struct ibv_mr *ctl_mr;
    int status;
    char msg[200];
    uint64_t retry_at;
    uint64_t deadline;           /* of the connect call under way */
    bool in_use_seen;            /* this call already got an "in use" refusal */
    uint8_t ctl[CMN_DP_HELLO_SIZE + CMN_DP_REPLY_SIZE];
};

struct lc_rc_window {
    struct lc_rc_window *prev, *next;
    struct ibv_mr *mr;
    uint64_t base, size;
};

struct lc_rc_client {
    pthread_mutex_t mu;
    struct cmn_dp_cred cred;
    uint8_t hello[CMN_DP_HELLO_SIZE];
    uint32_t max_sources;
    struct rdma_event_channel *ec;
    struct rdma_cm_id *anchor;        /* bound to the local address: keeps the device open */
    struct ibv_context *verbs;
    struct ibv_pd *pd;
    struct ibv_comp_channel *cc;
    uint32_t rd_atom;
    struct rc_conn **conns;
    size_t nconns;
    struct lc_rc_window windows;      /* list head */
};

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int parse_hostport(const char *s, struct sockaddr_storage *out)
{
    char host[128];
    const char *port;
    if (!s)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host || colon == s)
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
        port = colon + 1;
    }
    if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return -EINVAL;
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

/* Opens the device the client will use for everything: a PD and a completion channel. */
static int open_device(struct lc_rc_client *c, struct ibv_context *verbs, struct cmn_err *err)
{
    struct ibv_device_attr attr;
    if (ibv_query_device(verbs, &attr) != 0)
        return cmn_err_set(err, LODE_EUNAVAILABLE, "rc: cannot query RDMA device %s",
                           ibv_get_device_name(verbs->device));
    c->pd = ibv_alloc_pd(verbs);
    c->cc = c->pd ? ibv_create_comp_channel(verbs) : NULL;
    if (!c->cc) {
        if (c->pd)
            ibv_dealloc_pd(c->pd);
        c->pd = NULL;
        return cmn_err_set(err, LODE_EUNAVAILABLE, "rc: cannot open RDMA device %s: %s",
                           ibv_get_device_name(verbs->device), strerror(errno));
    }
    set_nonblock(c->cc->fd);
    c->verbs = verbs;
    c->rd_atom = attr.max_qp_rd_atom < 16 ? (uint32_t)attr.max_qp_rd_atom : 16;
    return 0;
}

/* Binds an id to a local address, so the device stays open for the client's lifetime
 * (librdmacm may close a device once no id refers to it, which would orphan our PD). */
static int anchor_at(struct lc_rc_client *c, const struct sockaddr *sa, struct cmn_err *err)
{
    struct sockaddr_storage local;
    memcpy(&local, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in));
    if (local.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&local)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&local)->sin_port = 0;
    if (rdma_create_id(c->ec, &c->anchor, NULL, RDMA_PS_TCP) != 0)
        return cmn_err_set(err, LODE_EUNAVAILABLE, "rc: rdma_create_id: %s", strerror(errno));
    if (rdma_bind_addr(c->anchor, (struct sockaddr *)&local) != 0 || !c->anchor->verbs) {
        int e = errno;
        rdma_destroy_id(c->anchor);
        c->anchor = NULL;
        return cmn_err_set(err, LODE_EUNAVAILABLE, "rc: the local address has no RDMA device (%s)",
                           strerror(e));
    }
    return open_device(c, c->anchor->verbs, err);
}

int lc_rc_client_create(const struct lc_rc_client_config *cfg, struct lc_rc_client **out,
                        struct cmn_err *err)
{
    if (!cfg || !out)
        return cmn_err_set(err, -EINVAL, "rc: no configuration");
    struct lc_rc_client *c = calloc(1, sizeof *c);
    if (!c)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    c->cred = cfg->cred;
    c->max_sources = cfg->max_sources ? cfg->max_sources : 1024;
    c->windows.prev = c->windows.next = &c->windows;
    pthread_mutex_init(&c->mu, NULL);
    int rv = cmn_dp_hello_encode(&c->cred, c->hello);
    if (rv != 0) {
        cmn_err_set(err, rv, "rc: access key length must be 1..%d", CMN_DP_ACCESS_KEY_MAX);
        goto fail;
    }
    c->ec = rdma_create_event_channel();
    if (!c->ec) {
        rv = cmn_err_set(err, LODE_EUNAVAILABLE, "rc: no RDMA connection manager (%s): is "
                         "rdma_ucm loaded and /dev/infiniband/rdma_cm accessible?",
                         strerror(errno));
        goto fail;
    }
    set_nonblock(c->ec->fd);
    if (cfg->local_host) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC};
        struct addrinfo *ai = NULL;
        if (getaddrinfo(cfg->local_host, NULL, &hints, &ai) != 0 || !ai) {
            rv = cmn_err_set(err, -EINVAL, "rc: bad local address %s", cfg->local_host);
            goto fail;
        }
        rv = anchor_at(c, ai->ai_addr, err);
        freeaddrinfo(ai);
        if (rv != 0)
            goto fail;
    }
    *out = c;
    return 0;
fail:
    lc_rc_client_destroy(c);
    return rv;
}

static void conn_teardown(struct rc_conn *k)
{
    if (k->id && k->id->qp)
        rdma_destroy_qp(k->id);
    if (k->cq)
        ibv_destroy_cq(k->cq);
    k->cq = NULL;
    if (k->ctl_mr)
        ibv_dereg_mr(k->ctl_mr);
    k->ctl_mr = NULL;
    if (k->id)
        rdma_destroy_id(k->id);
    k->id = NULL;
}

static void conn_fail(struct rc_conn *k, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_fail(struct rc_conn *k, int code, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (k->id && k->state == C_UP)
        rdma_disconnect(k->id);
    conn_teardown(k);
    k->state = k->state == C_UP ? C_CLOSED : C_FAILED;
    k->status = code;
    snprintf(k->msg, sizeof k->msg, "rc source %llu (%s): %s", (unsigned long long)k->source_id,
             k->addr, why);
}

static int conn_start(struct rc_conn *k)
{
    struct lc_rc_client *c = k->c;
    k->status = 0;
    k->msg[0] = 0;
    if (rdma_create_id(c->ec, &k->id, k, RDMA_PS_TCP) != 0) {
        conn_fail(k, -errno, "rdma_create_id: %s", strerror(errno));
        return -1;
    }
    struct sockaddr *src = c->anchor ? rdma_get_local_addr(c->anchor) : NULL;
    struct sockaddr_storage local;
    if (src) {
        /* the anchor holds the port; connect from the same address with any port */
        memcpy(&local, src, src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                       : sizeof(struct sockaddr_in));
        if (local.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&local)->sin6_port = 0;
        else
            ((struct sockaddr_in *)&local)->sin_port = 0;
        src = (struct sockaddr *)&local;
    }
    k->state = C_ADDR;
    if (rdma_resolve_addr(k->id, src, (struct sockaddr *)&k->dst, RESOLVE_MS) != 0) {
        conn_fail(k, -errno, "cannot resolve the address: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void on_route(struct rc_conn *k)
{
    struct lc_rc_client *c = k->c;
    k->cq = ibv_create_cq(c->verbs, 4, k, c->cc, 0);
    if (!k->cq) {
        conn_fail(k, -errno, "ibv_create_cq: %s", strerror(errno));
        return;
    }
    ibv_req_notify_cq(k->cq, 0);
    struct ibv_qp_init_attr qa = {
        .send_cq = k->cq,
        .recv_cq = k->cq,
        .cap = {.max_send_wr = 2, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1},
        .qp_type = IBV_QPT_RC,
    };
    if (rdma_create_qp(k->id, c->pd, &qa) != 0) {
        conn_fail(k, -errno, "rdma_create_qp: %s", strerror(errno));
        return;
    }
    k->ctl_mr = ibv_reg_mr(c->pd, k->ctl, sizeof k->ctl, IBV_ACCESS_LOCAL_WRITE);
    if (!k->ctl_mr) {
        conn_fail(k, -errno, "ibv_reg_mr: %s", strerror(errno));
        return;
    }
    memcpy(k->ctl, c->hello, CMN_DP_HELLO_SIZE);
    struct ibv_sge sge = {.addr = (uintptr_t)(k->ctl + CMN_DP_HELLO_SIZE),
                          .length = CMN_DP_REPLY_SIZE, .lkey = k->ctl_mr->lkey};
    struct ibv_recv_wr rwr = {.wr_id = 1, .sg_list = &sge, .num_sge = 1};
    struct ibv_recv_wr *bad = NULL;
    if (ibv_post_recv(k->id->qp, &rwr, &bad) != 0) {
        conn_fail(k, LODE_EINTERNAL, "cannot post the reply buffer");
        return;
    }
    uint8_t rec[CMN_DP_RC_CONNECT_SIZE], nonce[8];
    cmn_random_bytes(nonce, sizeof nonce);
    cmn_dp_rc_connect_encode(rec, c->cred.sid, nonce);
    /* The source RDMA-READs staged PUTs: it needs responder resources here. This side
     * issues no READs. */
    struct rdma_conn_param cp = {
        .private_data = rec,
        .private_data_len = sizeof rec,
        .responder_resources = (uint8_t)c->rd_atom,
        .initiator_depth = 0,
        .retry_count = 7,
        .rnr_retry_count = 7,
    };
    if (rdma_connect(k->id, &cp) != 0) {
        conn_fail(k, -errno, "rdma_connect: %s", strerror(errno));
        return;
    }
    k->state = C_CONNECT;
}

static void on_established(struct rc_conn *k)
{
    struct ibv_sge sge = {.addr = (uintptr_t)k->ctl, .length = CMN_DP_HELLO_SIZE,
                          .lkey = k->ctl_mr->lkey};
    struct ibv_send_wr wr = {.wr_id = 2, .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND,
                             .send_flags = IBV_SEND_SIGNALED};
    struct ibv_send_wr *bad = NULL;
    if (ibv_post_send(k->id->qp, &wr, &bad) != 0) {
        conn_fail(k, LODE_ECLOSED, "cannot send the HELLO");
        return;
    }
    k->state = C_HELLO;
}

static int code_to_err(unsigned code)
{
    switch (code) {
    case CMN_DP_CODE_BAD_MAC:
        return LODE_EAUTH;
    case CMN_DP_CODE_EXPIRED:
        return LODE_ETIMEOUT;
    case CMN_DP_CODE_IN_USE:
        return -EBUSY;
    case CMN_DP_CODE_BUSY:
        return LODE_EUNAVAILABLE;
    default:
        return LODE_EBADMSG;
    }
}

static void on_reply(struct rc_conn *k, uint32_t byte_len)
{
    struct cmn_dp_reply r;
    struct cmn_err e;
    if (byte_len != CMN_DP_REPLY_SIZE ||
        cmn_dp_reply_decode(k->ctl + CMN_DP_HELLO_SIZE, &r, &e) != 0) {
        conn_fail(k, LODE_EBADMSG, "malformed HELLO reply");
        return;
    }
    if (r.kind == CMN_DP_REPLY_ERR) {
        conn_fail(k, code_to_err(r.code), "HELLO refused: %s", cmn_dp_code_text(r.code));
        return;
    }
    if (r.source_id != k->source_id) {
        conn_fail(k, LODE_EBADMSG, "answered as source %llu", (unsigned long long)r.source_id);
        return;
    }
    k->state = C_UP;
}

static void drain_cq_events(struct lc_rc_client *c)
{
    struct ibv_cq *cq;
    void *ctx;
    if (!c->cc)
        return;
    while (ibv_get_cq_event(c->cc, &cq, &ctx) == 0) {
        ibv_ack_cq_events(cq, 1);
        ibv_req_notify_cq(cq, 0);
    }
    /* poll every connection waiting for a reply: cheap, and immune to a lost event */
    for (size_t i = 0; i < c->nconns; i++) {
        struct rc_conn *k = c->conns[i];
        struct ibv_wc wc;
        while (k->cq && (k->state == C_HELLO || k->state == C_CONNECT) &&
               ibv_poll_cq(k->cq, 1, &wc) == 1) {
            if (wc.status != IBV_WC_SUCCESS)
                conn_fail(k, LODE_ECLOSED, "HELLO exchange failed: %s",
                          ibv_wc_status_str(wc.status));
            else if (wc.opcode == IBV_WC_RECV)
                on_reply(k, wc.byte_len);
        }
    }
}

static void on_cm_event(struct lc_rc_client *c, struct rc_conn *k, enum rdma_cm_event_type type,
                        int status, const uint8_t *pdata, size_t plen)
{
    struct cmn_err err;
    switch (type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED:
        if (!c->verbs) {
            if (anchor_at(c, rdma_get_local_addr(k->id), &err) != 0) {
                conn_fail(k, err.code, "%s", cmn_err_text(&err));
                return;
            }
        }
        if (k->id->verbs != c->verbs) {
            conn_fail(k, -EXDEV, "reachable only through RDMA device %s, not %s",
                      ibv_get_device_name(k->id->verbs->device),
                      ibv_get_device_name(c->verbs->device));
            return;
        }
        k->state = C_ROUTE;
        if (rdma_resolve_route(k->id, RESOLVE_MS) != 0)
            conn_fail(k, -errno, "rdma_resolve_route: %s", strerror(errno));
        return;
    case RDMA_CM_EVENT_ROUTE_RESOLVED:
        on_route(k);
        return;
    case RDMA_CM_EVENT_ESTABLISHED:
        on_established(k);
        return;
    case RDMA_CM_EVENT_REJECTED: {
        int code = cmn_dp_rc_reject_decode(pdata, plen);
        if (code == CMN_DP_CODE_IN_USE) {
            k->in_use_seen = true;
            conn_teardown(k);
            k->state = C_RETRY;
            k->retry_at = cmn_mono_ms() + IN_USE_RETRY_MS;
            k->status = -EBUSY;
            snprintf(k->msg, sizeof k->msg, "rc source %llu (%s): refused: %s",
                     (unsigned long long)k->source_id, k->addr, cmn_dp_code_text(code));
        } else if (code >= 0) {
            conn_fail(k, code_to_err((unsigned)code), "refused: %s",
                      cmn_dp_code_text((unsigned)code));
        } else {
            conn_fail(k, -ECONNREFUSED, "connection refused (no rc listener there?)");
        }
        return;
    }
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
        if (status == -ETIMEDOUT && cmn_mono_ms() + RESOLVE_MS < k->deadline) {
            conn_teardown(k);
            k->state = C_RETRY;
            k->retry_at = cmn_mono_ms();
            k->status = LODE_ETIMEOUT;
            snprintf(k->msg, sizeof k->msg, "rc source %llu (%s): address resolution timed out",
                     (unsigned long long)k->source_id, k->addr);
            return;
        }
        conn_fail(k, status < 0 ? status : -EHOSTUNREACH, "no route: %s",
                  strerror(status < 0 ? -status : EHOSTUNREACH));
        return;
    case RDMA_CM_EVENT_UNREACHABLE:
    case RDMA_CM_EVENT_CONNECT_ERROR:
        conn_fail(k, status < 0 ? status : -ETIMEDOUT, "%s", rdma_event_str(type));
        return;
    case RDMA_CM_EVENT_DISCONNECTED:
    case RDMA_CM_EVENT_DEVICE_REMOVAL:
        if (k->state == C_HELLO)
            drain_cq_events(c);    /* a HELLO_ERR may be waiting in the CQ */
        if (k->state == C_UP || k->state == C_HELLO || k->state == C_CONNECT)
            conn_fail(k, LODE_ECLOSED, "%s", type == RDMA_CM_EVENT_DISCONNECTED
                                                 ? "the source closed the connection"
                                                 : "the RDMA device went away");
        return;
    default:
        return;
    }
}

static void drain_cm_events(struct lc_rc_client *c)
{
    struct rdma_cm_event *ev;
    while (rdma_get_cm_event(c->ec, &ev) == 0) {
        enum rdma_cm_event_type type = ev->event;
        struct rc_conn *k = ev->id ? ev->id->context : NULL;
        int status = ev->status;
        uint8_t pdata[64];
        size_t plen = 0;
        if (type == RDMA_CM_EVENT_REJECTED && ev->param.conn.private_data) {
            plen = ev->param.conn.private_data_len;
            if (plen > sizeof pdata)
                plen = sizeof pdata;
            memcpy(pdata, ev->param.conn.private_data, plen);
        }
        rdma_ack_cm_event(ev);    /* before any rdma_destroy_id in the handler */
        if (k && k->id)
            on_cm_event(c, k, type, status, pdata, plen);
    }
}

static struct rc_conn *find_conn(struct lc_rc_client *c, uint64_t source_id)
{
    for (size_t i = 0; i < c->nconns; i++)
        if (c->conns[i]->source_id == source_id)
            return c->conns[i];
    return NULL;
}

static bool in_progress(const struct rc_conn *k)
{
    return k->state == C_ADDR || k->state == C_ROUTE || k->state == C_CONNECT ||
           k->state == C_HELLO || k->state == C_RETRY;
}

int lc_rc_client_connect(struct lc_rc_client *c, struct lc_rc_source *srcs, size_t n,
                         uint32_t timeout_ms, struct cmn_err *err)
{
    pthread_mutex_lock(&c->mu);
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    struct rc_conn **mine = calloc(n ? n : 1, sizeof *mine);
    int rv = 0;
    if (!mine) {
        rv = cmn_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    drain_cm_events(c);    /* learn about dropped connections first */
    for (size_t i = 0; i < n; i++) {
        struct rc_conn *k = find_conn(c, srcs[i].source_id);
        srcs[i].status = 0;
        if (k && (k->state == C_UP || in_progress(k)))
            continue;
        if (!k) {
            if (c->nconns >= c->max_sources) {
                srcs[i].status = -ENOSPC;
                continue;
            }
            struct rc_conn **grown = realloc(c->conns, (c->nconns + 1) * sizeof *grown);
            k = calloc(1, sizeof *k);
            if (grown)
                c->conns = grown;
            if (!grown || !k) {
                free(k);
                srcs[i].status = -ENOMEM;
                continue;
            }
            k->c = c;
            k->source_id = srcs[i].source_id;
            c->conns[c->nconns++] = k;
        }
        snprintf(k->addr, sizeof k->addr, "%s", srcs[i].addr ? srcs[i].addr : "");
        if (parse_hostport(srcs[i].addr, &k->dst) != 0) {
            k->state = C_FAILED;
            k->status = -EINVAL;
            snprintf(k->msg, sizeof k->msg, "rc source %llu: bad address '%s'",
                     (unsigned long long)k->source_id, k->addr);
            continue;
        }
        mine[i] = k;
        k->deadline = deadline;
        k->in_use_seen = false;
        conn_start(k);
    }
    for (;;) {
        bool busy = false;
        uint64_t now = cmn_mono_ms(), wake = deadline;
        for (size_t i = 0; i < n; i++) {
            struct rc_conn *k = mine[i];
            if (!k || !in_progress(k))
                continue;
            if (k->state == C_RETRY && now >= k->retry_at && now < deadline)
                conn_start(k);
            if (k->state == C_RETRY && k->retry_at < wake)
                wake = k->retry_at;
            busy |= in_progress(k);
        }
        if (!busy)
            break;
        if (now >= deadline) {
            for (size_t i = 0; i < n; i++) {
                struct rc_conn *k = mine[i];
                if (!k || !in_progress(k))
                    continue;
                if (k->in_use_seen)
                    conn_fail(k, -EBUSY, "refused: the session is in use there");
                else if (k->state == C_RETRY)
                    conn_fail(k, LODE_ETIMEOUT, "address resolution timed out");
                else
                    conn_fail(k, LODE_ETIMEOUT, "no answer in time");
            }
            break;
        }
        struct pollfd pf[2] = {{.fd = c->ec->fd, .events = POLLIN},
                               {.fd = c->cc ? c->cc->fd : -1, .events = POLLIN}};
        poll(pf, 2, (int)(wake > now ? wake - now : 0));
        drain_cm_events(c);
        drain_cq_events(c);
    }
    for (size_t i = 0; i < n; i++) {
        struct rc_conn *k = mine[i] ? mine[i] : find_conn(c, srcs[i].source_id);
        if (srcs[i].status == 0 && k && k->state != C_UP)
            srcs[i].status = k->status ? k->status : LODE_ECLOSED;
        if (srcs[i].status != 0 && rv == 0) {
            rv = srcs[i].status;
            if (k && k->msg[0])
                cmn_err_set(err, rv, "%s", k->msg);
            else
                cmn_err_set(err, rv, "rc source %llu: %s",
                            (unsigned long long)srcs[i].source_id, lode_strerror(rv));
        }
    }
out:
    free(mine);
    pthread_mutex_unlock(&c->mu);
    return rv;
}

int lc_rc_client_source_state(struct lc_rc_client *c, uint64_t source_id)
{
    pthread_mutex_lock(&c->mu);
    drain_cm_events(c);
    struct rc_conn *k = find_conn(c, source_id);
    int rv = !k ? -ENOENT : k->state == C_UP ? 0 : LODE_ECLOSED;
    pthread_mutex_unlock(&c->mu);
    return rv;
}

int lc_rc_client_disconnect(struct lc_rc_client *c, uint64_t source_id)
{
    pthread_mutex_lock(&c->mu);
    struct rc_conn *k = find_conn(c, source_id);
    if (k && k->id) {
        if (k->state == C_UP)
            rdma_disconnect(k->id);
        conn_teardown(k);
        k->state = C_CLOSED;
        k->status = LODE_ECLOSED;
    }
    pthread_mutex_unlock(&c->mu);
    return k ? 0 : -ENOENT;
}

static int window_add(struct lc_rc_client *c, struct ibv_mr *mr, uint64_t base, size_t len,
                      struct lc_rc_window **out, struct cmn_err *err)
{
    struct lc_rc_window *w = calloc(1, sizeof *w);
    if (!w) {
        ibv_dereg_mr(mr);
        return cmn_err_set(err, -ENOMEM, "out of memory");
    }
    w->mr = mr;
    w->base = base;
    w->size = len;
    w->next = &c->windows;
    w->prev = c->windows.prev;
    c->windows.prev->next = w;
    c->windows.prev = w;
    *out = w;
    return 0;
}

static int access_flags(unsigned access)
{
    int fl = IBV_ACCESS_LOCAL_WRITE;
    if (access & LC_RC_REMOTE_WRITE)
        fl |= IBV_ACCESS_REMOTE_WRITE;
    if (access & LC_RC_REMOTE_READ)
        fl |= IBV_ACCESS_REMOTE_READ;
    return fl;
}

static int reg_error(int e, size_t len, struct cmn_err *err)
{
    return cmn_err_set(err, -e, "rc: registering a %zu-byte window failed: %s%s", len, strerror(e),
                       e == ENOMEM || e == EPERM
                           ? " (RLIMIT_MEMLOCK too low? raise it: ulimit -l unlimited)"
                           : "");
}

int lc_rc_window_register(struct lc_rc_client *c, void *addr, size_t len, unsigned access,
                          struct lc_rc_window **out, struct cmn_err *err)
{
    if (!addr || len == 0 || !(access & (LC_RC_REMOTE_WRITE | LC_RC_REMOTE_READ)))
        return cmn_err_set(err, -EINVAL, "rc: a window needs memory and an access mode");
    pthread_mutex_lock(&c->mu);
    int rv;
    if (!c->pd) {
        rv = cmn_err_set(err, LODE_ESTATE, "rc: no RDMA device chosen yet (give a local "
                         "address, or connect a source first)");
    } else {
        struct ibv_mr *mr = ibv_reg_mr(c->pd, addr, len, access_flags(access));
        rv = mr ? window_add(c, mr, (uint64_t)(uintptr_t)addr, len, out, err)
                : reg_error(errno, len, err);
    }
    pthread_mutex_unlock(&c->mu);
    return rv;
}

int lc_rc_window_register_dmabuf(struct lc_rc_client *c, int fd, uint64_t offset, size_t len,
                                 uint64_t iova, unsigned access, struct lc_rc_window **out,
                                 struct cmn_err *err)
{
    if (fd < 0 || len == 0 || !(access & (LC_RC_REMOTE_WRITE | LC_RC_REMOTE_READ)))
        return cmn_err_set(err, -EINVAL, "rc: a dma-buf window needs an fd and an access mode");
    pthread_mutex_lock(&c->mu);
    int rv;
    if (!c->pd) {
        rv = cmn_err_set(err, LODE_ESTATE, "rc: no RDMA device chosen yet (give a local "
                         "address, or connect a source first)");
    } else {
        struct ibv_mr *mr = ibv_reg_dmabuf_mr(c->pd, offset, len, iova, fd, access_flags(access));
        if (mr)
            rv = window_add(c, mr, iova, len, out, err);
        else if (errno == EOPNOTSUPP || errno == ENOSYS)
            rv = cmn_err_set(err, -EOPNOTSUPP, "rc: this NIC or kernel cannot register dma-buf "
                             "memory");
        else
            rv = reg_error(errno, len, err);
    }
    pthread_mutex_unlock(&c->mu);
    return rv;
}

uint32_t lc_rc_window_rkey(const struct lc_rc_window *w) { return w->mr->rkey; }
uint64_t lc_rc_window_base(const struct lc_rc_window *w) { return w->base; }
uint64_t lc_rc_window_size(const struct lc_rc_window *w) { return w->size; }

void lc_rc_window_deregister(struct lc_rc_client *c, struct lc_rc_window *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&c->mu);
    w->prev->next = w->next;
    w->next->prev = w->prev;
    ibv_dereg_mr(w->mr);
    free(w);
    pthread_mutex_unlock(&c->mu);
}

void lc_rc_client_destroy(struct lc_rc_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nconns; i++) {
        struct rc_conn *k = c->conns[i];
        if (k->id && k->state == C_UP)
            rdma_disconnect(k->id);
        conn_teardown(k);
        free(k);
    }
    free(c->conns);
    while (c->windows.next != &c->windows)
        lc_rc_window_deregister(c, c->windows.next);
    if (c->cc)
        ibv_destroy_comp_channel(c->cc);
    if (c->pd)
        ibv_dealloc_pd(c->pd);
    if (c->anchor)
        rdma_destroy_id(c->anchor);
    if (c->ec)
        rdma_destroy_event_channel(c->ec);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
