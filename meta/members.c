#include "meta/members.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"

#define LOG_CTX "members"
#define DEFAULT_USAGE_REFRESH_MS 30000
#define DEFAULT_TICK_MS 1000

/* What the leader knows about one node beyond the replicated map. Indexed by nid. */
struct node_track {
    bool known;                    /* seen in the map or a beat under this leadership */
    bool beat;                     /* a real heartbeat arrived under this leadership */
    bool busy;                     /* a SetNodeState of ours is in flight */
    uint32_t admin;                /* operator changes in flight */
    uint64_t last_seen_ms;         /* monotonic: last beat, or the start of the grace */
    uint64_t last_beat_ms;         /* monotonic: last real beat */
    uint64_t used, capacity;       /* last reported */
    uint64_t usage_sent_ms;        /* monotonic: when usage was last proposed */
    Lode__NodeState map_state;     /* its state in the map at the last tick */
};

struct meta_members {
    uv_loop_t *loop;
    struct meta_fsm *fsm;
    struct meta_consensus *cons;
    uint64_t suspect_after_ms, down_after_ms, usage_refresh_ms, tick_ms;
    bool leader, armed, stopped;
    uv_timer_t timer;
    struct node_track *nodes;
    size_t n_nodes;                /* entries allocated */
    unsigned in_flight;            /* proposals whose callback has not run */
};

struct state_change {
    struct meta_members *m;
    uint32_t nid;
    Lode__NodeState from, to;
};

static const char *state_name(Lode__NodeState s)
{
    switch (s) {
    case LODE__NODE_STATE__NODE_UP:
        return "up";
    case LODE__NODE_STATE__NODE_SUSPECT:
        return "suspect";
    case LODE__NODE_STATE__NODE_DOWN:
        return "down";
    case LODE__NODE_STATE__NODE_DRAINING:
        return "draining";
    case LODE__NODE_STATE__NODE_REMOVED:
        return "removed";
    default:
        return "unknown";
    }
}

/* The entry for nid, growing the table; NULL only when out of memory. nids come from the
 * replicated map (never from a request alone), so the table stays as small as the cluster. */
static struct node_track *track(struct meta_members *m, uint32_t nid)
{
    if (nid >= m->n_nodes) {
        size_t n = m->n_nodes ? m->n_nodes : 64;
        while (n <= nid)
            n *= 2;
        struct node_track *v = realloc(m->nodes, n * sizeof(*v));
        if (!v)
            return NULL;
        memset(v + m->n_nodes, 0, (n - m->n_nodes) * sizeof(*v));
        m->nodes = v;
        m->n_nodes = n;
    }
    return &m->nodes[nid];
}

static void forget_all(struct meta_members *m)
{
    for (size_t i = 0; i < m->n_nodes; i++) {
        uint32_t admin = m->nodes[i].admin;
        bool busy = m->nodes[i].busy;
        memset(&m->nodes[i], 0, sizeof(m->nodes[i]));
        m->nodes[i].admin = admin;
        m->nodes[i].busy = busy;
    }
}

static void change_done(void *data, int status, const struct meta_fsm_result *res)
{
    struct state_change *sc = data;
    struct meta_members *m = sc->m;
    m->in_flight--;
    struct node_track *t = sc->nid < m->n_nodes ? &m->nodes[sc->nid] : NULL;
    if (t)
        t->busy = false;
    if (status == 0 && res->status == 0) {
        if (sc->from != sc->to)
            LOG_INFO(LOG_CTX, "node %" PRIu32 ": %s -> %s (epoch %" PRIu64 ")", sc->nid,
                     state_name(sc->from), state_name(sc->to), res->epoch);
    } else if (status != LODE_ESHUTDOWN && status != LODE_ENOTLEADER) {
        LOG_WARN(LOG_CTX, "node %" PRIu32 ": setting state %s failed: %s", sc->nid,
                 state_name(sc->to),
                 status ? lode_strerror(status)
                        : (res->message[0] ? res->message : lode_strerror(res->status)));
    }
    free(sc);
}

static void propose_state(struct meta_members *m, struct node_track *t, uint32_t nid,
                          Lode__NodeState from, Lode__NodeState to, uint64_t used,
                          uint64_t capacity)
{
    struct state_change *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return;
    sc->m = m;
    sc->nid = nid;
    sc->from = from;
    sc->to = to;
    Lode__SetNodeState sns = LODE__SET_NODE_STATE__INIT;
    sns.nid = nid;
    sns.state = to;
    sns.used_bytes = used;
    sns.capacity_bytes = capacity;
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.op_case = LODE__COMMAND__OP_SET_NODE_STATE;
    cmd.set_node_state = &sns;
    int rc = meta_consensus_propose_own(m->cons, &cmd, change_done, sc);
    if (rc != 0) {
        free(sc);
        if (rc != LODE_ENOTLEADER && rc != LODE_ESHUTDOWN)
            LOG_WARN(LOG_CTX, "node %" PRIu32 ": cannot propose state %s: %s", nid,
                     state_name(to), lode_strerror(rc));
        return;
    }
    m->in_flight++;
    t->busy = true;
}

/* Decides what one node's state should be now; returns its current state when no change. */
static Lode__NodeState next_state(const struct meta_members *m, const struct node_track *t,
                                  Lode__NodeState cur, uint64_t now)
{
    uint64_t silent = now - t->last_seen_ms;
    bool beating = t->beat && now - t->last_beat_ms < m->suspect_after_ms;
    switch (cur) {
    case LODE__NODE_STATE__NODE_UP:
        if (silent >= m->down_after_ms)
            return LODE__NODE_STATE__NODE_DOWN;
        if (silent >= m->suspect_after_ms)
            return LODE__NODE_STATE__NODE_SUSPECT;
        return cur;
    case LODE__NODE_STATE__NODE_SUSPECT:
    case LODE__NODE_STATE__NODE_STATE_UNKNOWN:
        if (beating)
            return LODE__NODE_STATE__NODE_UP;
        if (silent >= m->down_after_ms)
            return LODE__NODE_STATE__NODE_DOWN;
        if (cur == LODE__NODE_STATE__NODE_STATE_UNKNOWN && silent >= m->suspect_after_ms)
            return LODE__NODE_STATE__NODE_SUSPECT;
        return cur;
    case LODE__NODE_STATE__NODE_DOWN:
        return beating ? LODE__NODE_STATE__NODE_UP : cur;
    default:                       /* draining, removed: the operator's call */
        return cur;
    }
}

static void tick_cb(uv_timer_t *h)
{
    struct meta_members *m = h->data;
    if (!m->leader || !m->armed || m->stopped || !m->cons ||
        meta_consensus_role(m->cons) != META_ROLE_LEADER)
        return;

    struct cmn_buf b;
    cmn_buf_init(&b);
    int rc = meta_fsm_cluster_map(m->fsm, &b);
    Lode__ClusterMap *map = rc == 0 ? lode__cluster_map__unpack(NULL, b.len, b.data) : NULL;
    cmn_buf_free(&b);
    if (!map) {
        LOG_WARN(LOG_CTX, "cannot read the cluster map: %s",
                 rc ? lode_strerror(rc) : "malformed");
        return;
    }

    uint64_t now = cmn_mono_ms();
    for (size_t i = 0; i < map->n_nodes; i++) {
        const Lode__NodeInfo *n = map->nodes[i];
        struct node_track *t = track(m, n->nid);
        if (!t)
            break;
        if (!t->known) {
            /* First sight under this leadership: the grace period starts now. */
            t->known = true;
            t->last_seen_ms = now;
        }
        /* Brought UP by someone else since the last tick (the node registered again after a
         * restart, or an operator set it): that is hearing from it. Otherwise a node that
         * was down would be marked down again at once, its last beat being long past. */
        if (n->state == LODE__NODE_STATE__NODE_UP && t->map_state != LODE__NODE_STATE__NODE_UP)
            t->last_seen_ms = now;
        t->map_state = n->state;
        if (t->busy || t->admin || n->state == LODE__NODE_STATE__NODE_REMOVED)
            continue;
        Lode__NodeState to = next_state(m, t, n->state, now);
        uint64_t used = t->beat ? t->used : n->used_bytes;
        uint64_t capacity = t->beat ? t->capacity : n->capacity_bytes;
        /* Zero means "unchanged" to SetNodeState, so a reported zero cannot be recorded. */
        bool usage_differs = (used && used != n->used_bytes) ||
                             (capacity && capacity != n->capacity_bytes);
        bool usage_stale = t->beat && usage_differs &&
                           (t->usage_sent_ms == 0 || now - t->usage_sent_ms >= m->usage_refresh_ms);
        if (to == n->state && !usage_stale)
            continue;
        if (to != n->state && to != LODE__NODE_STATE__NODE_UP)
            LOG_INFO(LOG_CTX, "node %" PRIu32 " at %s: no heartbeat for %" PRIu64 " ms",
                     n->nid, n->address, now - t->last_seen_ms);
        if (t->beat)
            t->usage_sent_ms = now;
        propose_state(m, t, n->nid, n->state, to, used, capacity);
    }
    lode__cluster_map__free_unpacked(map, NULL);
}

int meta_members_create(const struct meta_members_options *o, struct meta_members **out)
{
    struct meta_members *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->loop = o->loop;
    m->fsm = o->fsm;
    m->suspect_after_ms = o->suspect_after_ms;
    m->down_after_ms = o->down_after_ms;
    m->usage_refresh_ms = o->usage_refresh_ms ? o->usage_refresh_ms : DEFAULT_USAGE_REFRESH_MS;
    m->tick_ms = o->tick_ms ? o->tick_ms : DEFAULT_TICK_MS;
    uv_timer_init(o->loop, &m->timer);
    m->timer.data = m;
    *out = m;
    return 0;
}

void meta_members_attach(struct meta_members *m, struct meta_consensus *consensus)
{
    m->cons = consensus;
}

void meta_members_set_leader(struct meta_members *m, bool leader)
{
    if (m->stopped || leader == m->leader)
        return;
    m->leader = leader;
    m->armed = false;
    forget_all(m);
    if (leader) {
        uv_timer_start(&m->timer, tick_cb, m->tick_ms, m->tick_ms);
    } else {
        uv_timer_stop(&m->timer);
    }
}

void meta_members_arm(struct meta_members *m)
{
    if (m->leader && !m->stopped)
        m->armed = true;
}

int meta_members_heartbeat(struct meta_members *m, const Lode__HeartbeatRequest *req,
                           uint64_t *epoch, Lode__NodeState *state, struct cmn_err *err)
{
    struct cmn_buf b;
    cmn_buf_init(&b);
    int rc = meta_fsm_node_get(m->fsm, req->nid, &b);
    Lode__NodeInfo *n = rc == 0 ? lode__node_info__unpack(NULL, b.len, b.data) : NULL;
    cmn_buf_free(&b);
    if (!n)
        return cmn_err_set(err, LODE_ENONODE,
                           "node %" PRIu32 " is not registered; register again", req->nid);
    if (n->uuid.len != req->uuid.len || n->uuid.len != CMN_ID_SIZE ||
        memcmp(n->uuid.data, req->uuid.data, CMN_ID_SIZE) != 0) {
        lode__node_info__free_unpacked(n, NULL);
        return cmn_err_set(err, LODE_ENONODE,
                           "node %" PRIu32 " is registered with another uuid; register again",
                           req->nid);
    }
    if (n->state == LODE__NODE_STATE__NODE_REMOVED) {
        lode__node_info__free_unpacked(n, NULL);
        return cmn_err_set(err, LODE_ENONODE,
                           "node %" PRIu32 " was removed; register again for a new id",
                           req->nid);
    }
    struct node_track *t = track(m, req->nid);
    if (t) {
        uint64_t now = cmn_mono_ms();
        t->known = true;
        t->beat = true;
        t->last_seen_ms = t->last_beat_ms = now;
        t->used = req->used_bytes;
        t->capacity = req->capacity_bytes;
    }
    *state = n->state;
    *epoch = meta_fsm_epoch(m->fsm);
    lode__node_info__free_unpacked(n, NULL);
    return 0;
}

bool meta_members_admin_begin(struct meta_members *m, uint32_t nid)
{
    /* Only nodes in the map get an entry: the nid comes from a request. */
    struct cmn_buf b;
    cmn_buf_init(&b);
    int rc = meta_fsm_node_get(m->fsm, nid, &b);
    cmn_buf_free(&b);
    if (rc != 0)
        return false;
    struct node_track *t = track(m, nid);
    if (!t)
        return false;
    t->admin++;
    return true;
}

void meta_members_admin_end(struct meta_members *m, uint32_t nid)
{
    if (nid < m->n_nodes && m->nodes[nid].admin)
        m->nodes[nid].admin--;
}

void meta_members_stop(struct meta_members *m)
{
    if (m->stopped)
        return;
    m->stopped = true;
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, NULL);
}

void meta_members_destroy(struct meta_members *m)
{
    if (!m)
        return;
    if (m->in_flight)
        LOG_WARN(LOG_CTX, "%u state change(s) still in flight at exit", m->in_flight);
    free(m->nodes);
    free(m);
}
