/* Per-loop connections to data nodes (see nodepool.h).
 *
 * Each node id has a `struct pnode` (kept for the pool's life: nids are few and never
 * reused) holding its current client, a `struct gw_pool_client` wrapping one
 * cmn_rpc_client and counting the calls in flight on it. A client is closed only when no
 * call is in flight on it: when it went idle (timer), when the node's address changed
 * (retired: closed by its last completion), or when the pool closes (then the RPC layer
 * completes its calls with LODE_ECLOSED).
 */
#include "gateway/nodepool.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc_methods.h"
#include "gateway/config.h"

#define LOG_CTX "nodepool"
#define HOLD_MAX_SHIFT 3                  /* holds grow to 8x fail_hold_ms */
#define SWEEP_MIN_MS 50

enum { M_PUT, M_GET, M_DELETE, M_FANOUT, N_M };

struct pnode;

struct gw_pool_client {
    struct gw_nodepool *pool;
    struct pnode *node;
    struct cmn_rpc_client *cli;
    struct gw_pool_client *next;          /* the pool's list of open clients */
    unsigned inflight;
    bool retired;                         /* no longer the node's client: close when idle */
    bool closing;
    uint64_t last_used_ms;
    char address[GW_ADDR_MAX];
};

struct pnode {
    uint32_t nid;
    struct gw_pool_client *cur;
    uint64_t hold_until_ms;
    unsigned fail_streak;
    char last_error[160];
    struct gw_nodepool_node_stats st;
};

struct gw_nodepool {
    uv_loop_t *loop;
    struct gw_cluster *cluster;
    uint8_t *secret;
    size_t secret_len;
    uint32_t connect_timeout_ms;
    uint64_t idle_close_ms;
    uint64_t fail_hold_ms;
    uint32_t max_frame;
    const struct gw_nodepool_metrics *metrics;

    struct gw_cluster_map *map;           /* our reference; refreshed when the generation moves */
    uint64_t map_gen;

    struct pnode **nodes;                 /* open addressing by nid; never deleted */
    size_t n_nodes, cap_nodes;            /* cap: power of two */

    struct gw_pool_client *clients;       /* every client not yet closed */
    unsigned open_clients;                /* clients whose close callback has not run */
    unsigned inflight;
    uv_timer_t sweep;
    bool sweep_open;
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
};

static const char *const method_names[] = {"put", "get", "delete", "fanout"};

int gw_nodepool_metrics_register(struct cmn_metrics *m, struct gw_nodepool_metrics *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < N_M; i++) {
        char label[32];
        snprintf(label, sizeof(label), "method=\"%s\"", method_names[i]);
        out->calls[i] = cmn_metrics_counter(m, "lode_gateway_node_calls_total", label,
                                            "Chunk calls to data nodes, by method");
        out->errors[i] = cmn_metrics_counter(m, "lode_gateway_node_errors_total", label,
                                             "Chunk calls that ended in an error, by method");
        out->transport[i] = cmn_metrics_counter(
            m, "lode_gateway_node_transport_failures_total", label,
            "Chunk calls whose node could not be reached or did not answer, by method");
        if (!out->calls[i] || !out->errors[i] || !out->transport[i])
            return -ENOMEM;
    }
    out->held = cmn_metrics_counter(m, "lode_gateway_node_held_total", NULL,
                                    "Chunk calls refused at once: the node is on hold after "
                                    "transport failures");
    out->bytes_out = cmn_metrics_counter(m, "lode_gateway_node_bytes_out_total", NULL,
                                         "Chunk bytes written to data nodes");
    out->bytes_in = cmn_metrics_counter(m, "lode_gateway_node_bytes_in_total", NULL,
                                        "Chunk bytes read from data nodes");
    return out->held && out->bytes_out && out->bytes_in ? 0 : -ENOMEM;
}

bool gw_nodepool_transport_failure(int status)
{
    switch (status) {
    case LODE_ECLOSED:
    case LODE_ETIMEOUT:
    case LODE_ESHUTDOWN:
    case LODE_EAUTH:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EHOSTUNREACH:
    case -EHOSTDOWN:
    case -ENETUNREACH:
    case -ENETDOWN:
    case -ETIMEDOUT:
    case -EPIPE:
    case -ENOTCONN:
        return true;
    default:
        return false;
    }
}

static void count(const struct cmn_counter *c, uint64_t n)
{
    if (c)
        cmn_counter_add((struct cmn_counter *)c, n);
}

/* ---- node table ------------------------------------------------------------------------ */

static size_t nid_slot(const struct gw_nodepool *p, uint32_t nid)
{
    size_t mask = p->cap_nodes - 1, i = (size_t)(nid * 2654435761u) & mask;
    while (p->nodes[i] && p->nodes[i]->nid != nid)
        i = (i + 1) & mask;
    return i;
}

static struct pnode *node_find(const struct gw_nodepool *p, uint32_t nid)
{
    return p->cap_nodes ? p->nodes[nid_slot(p, nid)] : NULL;
}

static struct pnode *node_add(struct gw_nodepool *p, uint32_t nid)
{
    if ((p->n_nodes + 1) * 2 > p->cap_nodes) {
        size_t cap = p->cap_nodes ? p->cap_nodes * 2 : 16;
        struct pnode **old = p->nodes;
        size_t old_cap = p->cap_nodes;
        struct pnode **nodes = calloc(cap, sizeof(*nodes));
        if (!nodes)
            return NULL;
        p->nodes = nodes;
        p->cap_nodes = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i])
                p->nodes[nid_slot(p, old[i]->nid)] = old[i];
        free(old);
    }
    struct pnode *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->nid = nid;
    p->nodes[nid_slot(p, nid)] = n;
    p->n_nodes++;
    return n;
}

/* ---- clients --------------------------------------------------------------------------- */

static void maybe_closed(struct gw_nodepool *p)
{
    if (!p->closing || p->open_clients || p->sweep_open)
        return;
    void (*cb)(void *) = p->close_cb;
    void *data = p->close_data;
    for (size_t i = 0; i < p->cap_nodes; i++)
        free(p->nodes[i]);
    free(p->nodes);
    gw_cluster_map_put(p->map);
    explicit_bzero(p->secret, p->secret_len);
    free(p->secret);
    free(p);
    if (cb)
        cb(data);
}

static void on_client_closed(void *data)
{
    struct gw_pool_client *pc = data;
    struct gw_nodepool *p = pc->pool;
    p->open_clients--;
    free(pc);
    maybe_closed(p);
}

static void client_close(struct gw_pool_client *pc)
{
    if (pc->closing)
        return;
    pc->closing = true;
    struct gw_nodepool *p = pc->pool;
    for (struct gw_pool_client **q = &p->clients; *q; q = &(*q)->next) {
        if (*q == pc) {
            *q = pc->next;
            break;
        }
    }
    if (pc->node && pc->node->cur == pc)
        pc->node->cur = NULL;
    cmn_rpc_client_close(pc->cli, on_client_closed, pc);
}

static struct gw_pool_client *client_open(struct gw_nodepool *p, struct pnode *n,
                                          const char *address)
{
    struct gw_pool_client *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return NULL;
    struct cmn_rpc_client_config cc = {
        .address = address,
        .secret = p->secret,
        .secret_len = p->secret_len,
        .max_frame = p->max_frame,
        .connect_timeout_ms = p->connect_timeout_ms,
    };
    if (cmn_rpc_client_create(p->loop, &cc, &pc->cli) != 0) {
        free(pc);
        return NULL;
    }
    pc->pool = p;
    pc->node = n;
    snprintf(pc->address, sizeof(pc->address), "%s", address);
    pc->next = p->clients;
    p->clients = pc;
    p->open_clients++;
    n->cur = pc;
    n->st.connects++;
    return pc;
}

static void on_sweep(uv_timer_t *t)
{
    struct gw_nodepool *p = t->data;
    uint64_t now = uv_now(p->loop);
    struct gw_pool_client *pc = p->clients, *next;
    for (; pc; pc = next) {
        next = pc->next;
        if (pc->inflight == 0 && now - pc->last_used_ms >= p->idle_close_ms)
            client_close(pc);
    }
}

int gw_nodepool_create(const struct gw_nodepool_config *cfg, struct gw_nodepool **out)
{
    *out = NULL;
    if (!cfg || !cfg->loop || !cfg->cluster || !cfg->secret || !cfg->secret_len ||
        !cfg->connect_timeout_ms || !cfg->idle_close_ms)
        return -EINVAL;
    struct gw_nodepool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->secret = malloc(cfg->secret_len);
    if (!p->secret) {
        free(p);
        return -ENOMEM;
    }
    memcpy(p->secret, cfg->secret, cfg->secret_len);
    p->secret_len = cfg->secret_len;
    p->loop = cfg->loop;
    p->cluster = cfg->cluster;
    p->connect_timeout_ms = cfg->connect_timeout_ms;
    p->idle_close_ms = cfg->idle_close_ms;
    p->fail_hold_ms = cfg->fail_hold_ms;
    p->max_frame = cfg->max_frame ? cfg->max_frame : GW_CHUNK_SIZE_MAX + GW_FRAME_SLACK;
    p->metrics = cfg->metrics;
    uv_timer_init(p->loop, &p->sweep);
    p->sweep.data = p;
    p->sweep_open = true;
    uint64_t every = p->idle_close_ms / 2 > SWEEP_MIN_MS ? p->idle_close_ms / 2 : SWEEP_MIN_MS;
    uv_timer_start(&p->sweep, on_sweep, every, every);
    /* Housekeeping alone must not keep a loop alive. */
    uv_unref((uv_handle_t *)&p->sweep);
    *out = p;
    return 0;
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct gw_nodepool *p = h->data;
    p->sweep_open = false;
    maybe_closed(p);
}

void gw_nodepool_close(struct gw_nodepool *p, void (*cb)(void *data), void *data)
{
    if (p->closing)
        return;
    p->closing = true;
    p->close_cb = cb;
    p->close_data = data;
    uv_close((uv_handle_t *)&p->sweep, on_sweep_closed);
    while (p->clients)
        client_close(p->clients);
}

unsigned gw_nodepool_inflight(const struct gw_nodepool *p)
{
    return p->inflight;
}

void gw_nodepool_node_stats(struct gw_nodepool *p, uint32_t nid,
                            struct gw_nodepool_node_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct pnode *n = node_find(p, nid);
    if (!n)
        return;
    *out = n->st;
    out->connected = n->cur != NULL;
    out->inflight = n->cur ? n->cur->inflight : 0;
    out->on_hold = n->hold_until_ms > uv_now(p->loop);
}

/* ---- calls ----------------------------------------------------------------------------- */

static int refuse(struct gw_chunk_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct gw_chunk_req *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->message, sizeof(req->message), fmt, ap);
    va_end(ap);
    req->status = status;
    return status;
}

/* The client to call nid through, opened or replaced per the current map. */
static int client_for(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                      struct gw_pool_client **out)
{
    if (p->closing)
        return refuse(req, LODE_ECLOSED, "node pool is closing");
    uint64_t gen = gw_cluster_generation(p->cluster);
    if (!p->map || gen != p->map_gen) {
        struct gw_cluster_map *m = gw_cluster_map_get(p->cluster);
        if (m) {
            gw_cluster_map_put(p->map);
            p->map = m;
            p->map_gen = gen;
        }
    }
    if (!p->map)
        return refuse(req, LODE_EUNAVAILABLE, "cluster map not yet known");
    const struct gw_map_node *mn = gw_cluster_map_find(p->map, nid);
    if (!mn)
        return refuse(req, LODE_ENONODE, "node %" PRIu32 " is not in the cluster map (epoch %"
                      PRIu64 ")", nid, p->map->epoch);
    struct pnode *n = node_find(p, nid);
    if (!n && !(n = node_add(p, nid)))
        return refuse(req, -ENOMEM, "out of memory");
    uint64_t now = uv_now(p->loop);
    if (n->hold_until_ms > now) {
        n->st.held++;
        count(p->metrics ? p->metrics->held : NULL, 1);
        return refuse(req, LODE_EUNAVAILABLE,
                      "node %" PRIu32 " (%s) is on hold for %" PRIu64 " ms after: %s", nid,
                      mn->address, n->hold_until_ms - now, n->last_error);
    }
    if (n->cur && strcmp(n->cur->address, mn->address) != 0) {
        LOG_INFO(LOG_CTX, "node %" PRIu32 " moved from %s to %s", nid, n->cur->address,
                 mn->address);
        struct gw_pool_client *old = n->cur;
        n->cur = NULL;
        old->node = NULL;
        old->retired = true;
        if (old->inflight == 0)
            client_close(old);
        n->hold_until_ms = 0;
        n->fail_streak = 0;
    }
    if (!n->cur && !client_open(p, n, mn->address))
        return refuse(req, -ENOMEM, "cannot create a client for node %" PRIu32 " (%s)", nid,
                      mn->address);
    *out = n->cur;
    return 0;
}

static void note_failure(struct gw_nodepool *p, struct pnode *n, const char *address,
                         int status, const char *message)
{
    n->st.transport_failures++;
    snprintf(n->last_error, sizeof(n->last_error), "%s", message[0] ? message
                                                                      : lode_strerror(status));
    if (n->fail_streak == 0)
        LOG_WARN(LOG_CTX, "node %" PRIu32 " (%s): %s", n->nid, address, n->last_error);
    unsigned shift = n->fail_streak < HOLD_MAX_SHIFT ? n->fail_streak : HOLD_MAX_SHIFT;
    n->fail_streak++;
    if (p->fail_hold_ms)
        n->hold_until_ms = uv_now(p->loop) + (p->fail_hold_ms << shift);
    gw_cluster_kick(p->cluster);
}

/* Checks a successful reply against what was asked; 0 or LODE_EBADMSG (message set). */
static int check_reply(struct gw_chunk_req *req, const Lode__ChunkInfo *ci, size_t payload_len)
{
    if (!ci || ci->chunk_id.len != 16 || memcmp(ci->chunk_id.data, req->id_, 16) != 0)
        return refuse(req, LODE_EBADMSG, "node %" PRIu32 " answered %s about another chunk",
                      req->nid_, method_names[req->method_]);
    if (req->method_ == M_PUT && (ci->length != req->len_ || ci->xxh3 != req->xxh3_))
        return refuse(req, LODE_EBADMSG,
                      "node %" PRIu32 " acknowledged %" PRIu64 " bytes (xxh3 %016" PRIx64
                      ") for a put of %" PRIu64 " (xxh3 %016" PRIx64 ")",
                      req->nid_, ci->length, ci->xxh3, req->len_, req->xxh3_);
    if (req->method_ == M_GET) {
        uint64_t want = req->len_ ? req->len_
                                  : (ci->length > req->off_ ? ci->length - req->off_ : 0);
        if (payload_len != want || req->off_ + payload_len > ci->length)
            return refuse(req, LODE_EBADMSG,
                          "node %" PRIu32 " sent %zu bytes at offset %" PRIu64 " of a %" PRIu64
                          "-byte chunk; %" PRIu64 " were asked for",
                          req->nid_, payload_len, req->off_, ci->length, want);
    }
    return 0;
}

static void on_reply(void *data, const struct cmn_rpc_result *res)
{
    struct gw_chunk_req *req = data;
    struct gw_nodepool *p = req->pool_;
    struct gw_pool_client *pc = req->pc_;
    const struct gw_nodepool_metrics *mx = p->metrics;
    pc->inflight--;
    p->inflight--;
    struct pnode *n = pc->node;            /* NULL once the client was retired */

    Lode__ChunkInfo *ci = NULL;
    Lode__FanoutPushResponse *fr = NULL;
    req->status = res->status;
    req->message[0] = '\0';
    req->info = NULL;
    req->fanout = NULL;
    req->payload = NULL;
    req->payload_len = 0;
    req->spliced = 0;
    if (res->status == 0 && req->method_ == M_FANOUT) {
        fr = lode__fanout_push_response__unpack(NULL, res->body.len, res->body.data);
        if (!fr || fr->n_pieces != req->len_)
            refuse(req, LODE_EBADMSG, "node %" PRIu32 " answered FANOUT_PUSH with %zu piece "
                   "results for %" PRIu64 " pieces", req->nid_, fr ? fr->n_pieces : 0,
                   req->len_);
        else
            req->fanout = fr;
    } else if (res->status == 0) {
        ci = lode__chunk_info__unpack(NULL, res->body.len, res->body.data);
        if (check_reply(req, ci, res->payload.len) == 0) {
            req->info = ci;
            if (req->method_ == M_GET) {
                req->payload = res->payload.data;
                req->payload_len = res->payload.len;
                req->spliced = res->spliced;
                count(mx ? mx->bytes_in : NULL, res->payload.len);
            } else if (req->method_ == M_PUT) {
                count(mx ? mx->bytes_out : NULL, req->len_);
            }
        }
    } else {
        snprintf(req->message, sizeof(req->message), "node %" PRIu32 " (%s): %s", req->nid_,
                 pc->address, res->message[0] ? res->message : lode_strerror(res->status));
    }
    if (req->status != 0) {
        count(mx ? mx->errors[req->method_] : NULL, 1);
        if (n)
            n->st.errors++;
        if (gw_nodepool_transport_failure(req->status) && !p->closing) {
            count(mx ? mx->transport[req->method_] : NULL, 1);
            if (n)
                note_failure(p, n, pc->address, req->status, res->message);
        }
    } else if (n) {
        n->fail_streak = 0;
        n->hold_until_ms = 0;
    }
    req->pool_ = NULL;
    req->pc_ = NULL;
    if (pc->retired && pc->inflight == 0)
        client_close(pc);
    req->cb(req);
    if (ci)
        lode__chunk_info__free_unpacked(ci, NULL);
    if (fr)
        lode__fanout_push_response__free_unpacked(fr, NULL);
}

static int submit(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid, unsigned method,
                  const ProtobufCMessage *msg, const void *payload, size_t payload_len,
                  void *dest, int pipe_wr, uint32_t timeout_ms)
{
    req->status = 0;
    req->message[0] = '\0';
    req->info = NULL;
    req->fanout = NULL;
    req->payload = NULL;
    req->payload_len = 0;
    req->spliced = 0;
    if (!req->cb)
        return refuse(req, -EINVAL, "no callback");
    struct gw_pool_client *pc = NULL;
    int rc = client_for(p, req, nid, &pc);
    if (rc)
        return rc;
    static const unsigned rpc_method[] = {CMN_RPC_CHUNK_PUT, CMN_RPC_CHUNK_GET,
                                          CMN_RPC_CHUNK_DELETE, CMN_RPC_FANOUT_PUSH};
    req->pool_ = p;
    req->pc_ = pc;
    req->nid_ = nid;
    req->method_ = method;
    if (payload)
        rc = cmn_rpc_client_call_payload(pc->cli, rpc_method[method], 0, msg, payload,
                                         payload_len, timeout_ms, on_reply, req);
    else if (dest && pipe_wr >= 0)
        rc = cmn_rpc_client_call_splice(pc->cli, rpc_method[method], 0, msg, pipe_wr, dest,
                                        req->len_, timeout_ms, on_reply, req);
    else if (dest)
        rc = cmn_rpc_client_call_into(pc->cli, rpc_method[method], 0, msg, dest, req->len_,
                                      timeout_ms, on_reply, req);
    else
        rc = cmn_rpc_client_call(pc->cli, rpc_method[method], 0, msg, timeout_ms, on_reply,
                                 req);
    if (rc != 0) {
        req->pool_ = NULL;
        req->pc_ = NULL;
        return refuse(req, rc, "node %" PRIu32 " (%s): %s not sent: %s", nid, pc->address,
                      method_names[method], lode_strerror(rc));
    }
    pc->inflight++;
    pc->last_used_ms = uv_now(p->loop);
    p->inflight++;
    pc->node->st.calls++;
    count(p->metrics ? p->metrics->calls[method] : NULL, 1);
    return 0;
}

int gw_nodepool_put(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                    const uint8_t id[16], const void *data, size_t len, uint64_t xxh3,
                    uint32_t timeout_ms)
{
    if (len == 0 || len > GW_CHUNK_SIZE_MAX || !data || !id)
        return refuse(req, -EINVAL, "chunk put of %zu bytes: 1 to %u bytes are allowed", len,
                      GW_CHUNK_SIZE_MAX);
    memcpy(req->id_, id, 16);
    req->len_ = len;
    req->off_ = 0;
    req->xxh3_ = xxh3;
    Lode__ChunkPutRequest q = LODE__CHUNK_PUT_REQUEST__INIT;
    q.chunk_id.data = req->id_;
    q.chunk_id.len = 16;
    q.length = len;
    q.xxh3 = xxh3;
    return submit(p, req, nid, M_PUT, &q.base, data, len, NULL, -1, timeout_ms);
}

static int get(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
               const uint8_t id[16], uint64_t offset, uint64_t length, void *dest, int pipe_wr,
               uint32_t timeout_ms)
{
    if (!id || length > GW_CHUNK_SIZE_MAX)
        return refuse(req, -EINVAL, "chunk get of %" PRIu64 " bytes: at most %u are allowed",
                      length, GW_CHUNK_SIZE_MAX);
    memcpy(req->id_, id, 16);
    req->len_ = length;
    req->off_ = offset;
    req->xxh3_ = 0;
    Lode__ChunkGetRequest q = LODE__CHUNK_GET_REQUEST__INIT;
    q.chunk_id.data = req->id_;
    q.chunk_id.len = 16;
    q.offset = offset;
    q.length = length;
    return submit(p, req, nid, M_GET, &q.base, NULL, 0, dest, pipe_wr, timeout_ms);
}

int gw_nodepool_get(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                    const uint8_t id[16], uint64_t offset, uint64_t length, uint32_t timeout_ms)
{
    return get(p, req, nid, id, offset, length, NULL, -1, timeout_ms);
}

int gw_nodepool_get_into(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                         const uint8_t id[16], uint64_t offset, uint64_t length, void *dest,
                         uint32_t timeout_ms)
{
    if (!dest || length == 0)
        return refuse(req, -EINVAL, "chunk get into memory needs a destination and a length");
    return get(p, req, nid, id, offset, length, dest, -1, timeout_ms);
}

int gw_nodepool_get_splice(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                           const uint8_t id[16], uint64_t offset, uint64_t length, int pipe_wr,
                           void *dest, uint32_t timeout_ms)
{
    if (!dest || length == 0 || pipe_wr < 0)
        return refuse(req, -EINVAL, "chunk get into a pipe needs a pipe, a destination and a "
                      "length");
    return get(p, req, nid, id, offset, length, dest, pipe_wr, timeout_ms);
}

int gw_nodepool_delete(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                       const uint8_t id[16], uint32_t timeout_ms)
{
    if (!id)
        return refuse(req, -EINVAL, "no chunk id");
    memcpy(req->id_, id, 16);
    req->len_ = 0;
    req->off_ = 0;
    req->xxh3_ = 0;
    Lode__ChunkIdRequest q = LODE__CHUNK_ID_REQUEST__INIT;
    q.chunk_id.data = req->id_;
    q.chunk_id.len = 16;
    return submit(p, req, nid, M_DELETE, &q.base, NULL, 0, NULL, -1, timeout_ms);
}

int gw_nodepool_fanout(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                       const Lode__FanoutPushRequest *q, uint32_t timeout_ms)
{
    if (!q || q->n_pieces == 0)
        return refuse(req, -EINVAL, "FANOUT_PUSH without pieces");
    memset(req->id_, 0, 16);
    req->len_ = q->n_pieces;
    req->off_ = 0;
    req->xxh3_ = 0;
    return submit(p, req, nid, M_FANOUT, &q->base, NULL, 0, NULL, -1, timeout_ms);
}
