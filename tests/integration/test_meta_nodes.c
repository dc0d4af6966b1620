/* The cluster map and data-node liveness through real RPC on a 3-replica lode-meta group:
 * registration (nids, epochs, re-registration), heartbeats, up -> suspect -> down when a
 * node goes silent (counted from its last beat, or from its registration when a down node
 * registers again) and back up when it beats, operator states (draining sticks, removed is
 * final), and a leader failover that must not mark any beating node suspect or down.
 *
 * The daemons run with node-suspect-after = 1s and node-down-after = 3s (the minimum is
 * 1s; the leader checks once a second, and two ticks between the thresholds make sure a
 * silent node is seen SUSPECT before DOWN), and the test plays the data nodes itself:
 * every wait below keeps the live nodes beating every BEAT_EVERY_MS.
 */
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/meta_client.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 5000
#define SUSPECT_MS 1000
#define DOWN_MS 3000
#define TICK_MS 1000                /* the leader's liveness timer (fixed) */
#define BEAT_EVERY_MS 200
/* A transition is seen at most two ticks after its deadline (one when the leader starts
 * counting at a tick, one for the tick's own granularity), plus a commit and a poll; the
 * rest is room for a loaded machine. */
#define LATE_MS (2 * TICK_MS + 2500)
#define N_NODES 4

struct node {
    uint8_t uuid[CMN_ID_SIZE];
    char address[32];
    char domain[16];
    uint64_t capacity, used;
    uint32_t nid;
    bool beating;
    Lode__NodeState expect;        /* while beating, the state it must keep */
    uint64_t last_try_ms;          /* monotonic, before the last beat was sent */
    uint64_t last_ok_ms;           /* monotonic, before the last beat that succeeded was sent */
};

static struct tl_cluster *cl;
static struct cmn_meta_client *mc;
static struct node nodes[N_NODES];
static bool tolerate_beat_errors;  /* during a failover beats may fail */
static unsigned beat_errors;       /* beats that failed when they should not have */

static const char *state_name(Lode__NodeState s)
{
    switch (s) {
    case LODE__NODE_STATE__NODE_UP:
        return "UP";
    case LODE__NODE_STATE__NODE_SUSPECT:
        return "SUSPECT";
    case LODE__NODE_STATE__NODE_DOWN:
        return "DOWN";
    case LODE__NODE_STATE__NODE_DRAINING:
        return "DRAINING";
    case LODE__NODE_STATE__NODE_REMOVED:
        return "REMOVED";
    default:
        return "UNKNOWN";
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- RPC helpers */

struct cres {
    int status;
    uint64_t epoch;
    uint32_t nid;
    char message[512];
};

/* One mutation through the leader; decodes the CommandResult. Returns the status. */
static int commit(unsigned method, Lode__Command *cmd, struct cres *out)
{
    struct cmn_rpc_result res;
    memset(out, 0, sizeof(*out));
    cmd->version = 1;
    cmn_rpc_result_init(&res);
    int rc = cmn_meta_client_call(mc, method, &cmd->base, T_MS, &res);
    if (rc == 0) {
        Lode__CommandResult *cr = lode__command_result__unpack(NULL, res.body.len, res.body.data);
        if (!cr) {
            rc = LODE_EBADMSG;
            snprintf(out->message, sizeof(out->message), "undecodable CommandResult");
        } else {
            rc = cr->status;
            out->epoch = cr->epoch;
            out->nid = cr->nid;
            snprintf(out->message, sizeof(out->message), "%s", cr->message ? cr->message : "");
            lode__command_result__free_unpacked(cr, NULL);
        }
    } else {
        snprintf(out->message, sizeof(out->message), "%s", res.message);
    }
    out->status = rc;
    cmn_rpc_result_free(&res);
    return rc;
}

/* Registers node n (nid as given: 0 lets meta look the uuid up). */
static int register_node(struct node *n, uint32_t nid, struct cres *out)
{
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__RegisterNode rn = LODE__REGISTER_NODE__INIT;
    Lode__NodeInfo ni = LODE__NODE_INFO__INIT;
    ni.nid = nid;
    ni.uuid.data = n->uuid;
    ni.uuid.len = sizeof(n->uuid);
    ni.address = n->address;
    ni.failure_domain = n->domain;
    ni.capacity_bytes = n->capacity;
    ni.used_bytes = n->used;
    rn.node = &ni;
    cmd.op_case = LODE__COMMAND__OP_REGISTER_NODE;
    cmd.register_node = &rn;
    int rc = commit(CMN_RPC_NODE_REGISTER, &cmd, out);
    if (rc == 0 && nid == 0)
        n->nid = out->nid;
    return rc;
}

static int set_state(uint32_t nid, Lode__NodeState state, struct cres *out)
{
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__SetNodeState s = LODE__SET_NODE_STATE__INIT;
    s.nid = nid;
    s.state = state;
    cmd.op_case = LODE__COMMAND__OP_SET_NODE_STATE;
    cmd.set_node_state = &s;
    return commit(CMN_RPC_NODE_SET_STATE, &cmd, out);
}

/* One NODE_HEARTBEAT. epoch / state / message may be NULL. */
static int heartbeat(uint32_t nid, const uint8_t *uuid, size_t uuid_len, uint64_t used,
                     uint64_t capacity, uint32_t timeout_ms, uint64_t *epoch,
                     Lode__NodeState *state, char *message, size_t msize)
{
    Lode__HeartbeatRequest hb = LODE__HEARTBEAT_REQUEST__INIT;
    struct cmn_rpc_result res;
    hb.nid = nid;
    hb.uuid.data = (uint8_t *)uuid;
    hb.uuid.len = uuid_len;
    hb.used_bytes = used;
    hb.capacity_bytes = capacity;
    cmn_rpc_result_init(&res);
    int rc = cmn_meta_client_call(mc, CMN_RPC_NODE_HEARTBEAT, &hb.base, timeout_ms, &res);
    if (rc == 0) {
        Lode__HeartbeatResponse *r =
            lode__heartbeat_response__unpack(NULL, res.body.len, res.body.data);
        if (!r) {
            rc = LODE_EBADMSG;
        } else {
            if (epoch)
                *epoch = r->epoch;
            if (state)
                *state = r->state;
            lode__heartbeat_response__free_unpacked(r, NULL);
        }
    }
    if (message)
        snprintf(message, msize, "%s", rc == 0 ? "" : res.message);
    cmn_rpc_result_free(&res);
    return rc;
}

static int beat(struct node *n, uint32_t timeout_ms, uint64_t *epoch, Lode__NodeState *state,
                char *message, size_t msize)
{
    n->last_try_ms = cmn_mono_ms();
    int rc = heartbeat(n->nid, n->uuid, sizeof(n->uuid), n->used, n->capacity, timeout_ms, epoch,
                       state, message, msize);
    if (rc == 0)
        n->last_ok_ms = n->last_try_ms;
    return rc;
}

/* Sends the beats that are due. */
static void pump(void)
{
    for (unsigned i = 0; i < N_NODES; i++) {
        struct node *n = &nodes[i];
        if (!n->beating || cmn_mono_ms() - n->last_try_ms < BEAT_EVERY_MS)
            continue;
        char msg[512];
        int rc = beat(n, tolerate_beat_errors ? 500 : T_MS, NULL, NULL, msg, sizeof(msg));
        if (rc != 0 && !tolerate_beat_errors && beat_errors++ < 5)
            diag("heartbeat of node %" PRIu32 ": %s (%s)", n->nid, lode_errname(rc), msg);
    }
}

/* Sleeps ms while the live nodes keep beating. */
static void sleep_pump(unsigned ms)
{
    uint64_t end = cmn_mono_ms() + ms;
    for (;;) {
        pump();
        uint64_t now = cmn_mono_ms();
        if (now >= end)
            return;
        sleep_ms(end - now < 20 ? (unsigned)(end - now) : 20);
    }
}

/* CLUSTER_MAP_GET through the leader (a linearizable read), or at one replica with flags. */
static Lode__ClusterMap *map_get_at(int replica, unsigned flags)
{
    Lode__Empty e = LODE__EMPTY__INIT;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = replica < 0 ? cmn_meta_client_call(mc, CMN_RPC_CLUSTER_MAP_GET, &e.base, T_MS, &res)
                         : tl_call_at(cl, (unsigned)replica, CMN_RPC_CLUSTER_MAP_GET, flags,
                                      &e.base, T_MS, &res);
    Lode__ClusterMap *m =
        rc == 0 ? lode__cluster_map__unpack(NULL, res.body.len, res.body.data) : NULL;
    if (!m)
        diag("CLUSTER_MAP_GET: %s (%s)", lode_errname(rc), res.message);
    cmn_rpc_result_free(&res);
    return m;
}

static Lode__ClusterMap *map_get(void)
{
    return map_get_at(-1, 0);
}

static const Lode__NodeInfo *in_map(const Lode__ClusterMap *m, uint32_t nid)
{
    for (size_t i = 0; m && i < m->n_nodes; i++)
        if (m->nodes[i]->nid == nid)
            return m->nodes[i];
    return NULL;
}

static Lode__NodeState state_in(const Lode__ClusterMap *m, uint32_t nid)
{
    const Lode__NodeInfo *n = in_map(m, nid);
    return n ? n->state : LODE__NODE_STATE__NODE_STATE_UNKNOWN;
}

static uint64_t current_epoch(void)
{
    Lode__ClusterMap *m = map_get();
    uint64_t e = m ? m->epoch : 0;
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);
    return e;
}

static void node_init(struct node *n, unsigned i)
{
    struct cmn_id id = cmn_id_random();
    memcpy(n->uuid, id.b, sizeof(n->uuid));
    snprintf(n->address, sizeof(n->address), "127.0.0.1:%u", 19100 + i);
    snprintf(n->domain, sizeof(n->domain), "rack-%c", 'a' + (char)i);
    n->capacity = ((uint64_t)1 << 40) + i;
    n->used = 0;
}

/* ---- Registration */

static uint64_t check_register(void)
{
    struct cres r;
    uint64_t epochs[3] = {0};
    int fails = 0;
    for (unsigned i = 0; i < 3; i++) {
        node_init(&nodes[i], i);
        if (register_node(&nodes[i], 0, &r) != 0) {
            diag("register node %u: %s (%s)", i, lode_errname(r.status), r.message);
            fails++;
        }
        epochs[i] = r.epoch;
        nodes[i].beating = true; /* a registered node beats from now on */
        nodes[i].expect = LODE__NODE_STATE__NODE_UP;
        pump();
    }
    is_int(fails, 0, "NODE_REGISTER of three new nodes");
    ok(nodes[0].nid == 1 && nodes[1].nid == 2 && nodes[2].nid == 3,
       "they get nids 1, 2, 3 (got %" PRIu32 ", %" PRIu32 ", %" PRIu32 ")", nodes[0].nid,
       nodes[1].nid, nodes[2].nid);
    ok(epochs[0] >= 1 && epochs[1] > epochs[0] && epochs[2] > epochs[1],
       "each registration increases the epoch (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
       epochs[0], epochs[1], epochs[2]);
    if (nodes[2].nid != 3)
        tap_bail("registration failed: nothing else can be tested");

    Lode__ClusterMap *m = map_get();
    ok(m && m->epoch == epochs[2], "CLUSTER_MAP_GET has the epoch of the last registration "
       "(%" PRIu64 ")", m ? m->epoch : 0);
    int good = 0;
    for (unsigned i = 0; m && i < 3; i++) {
        const Lode__NodeInfo *n = in_map(m, nodes[i].nid);
        good += n && n->state == LODE__NODE_STATE__NODE_UP && n->uuid.len == CMN_ID_SIZE &&
                memcmp(n->uuid.data, nodes[i].uuid, CMN_ID_SIZE) == 0 &&
                strcmp(n->address, nodes[i].address) == 0 &&
                strcmp(n->failure_domain, nodes[i].domain) == 0 &&
                n->capacity_bytes == nodes[i].capacity && n->registered_ms > 0;
    }
    ok(m && m->n_nodes == 3 && good == 3,
       "the map lists the three nodes UP with their uuid, address, failure domain, capacity");
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);
    uint64_t epoch = epochs[2];

    /* Same uuid, only the capacity differs: same nid, same epoch. */
    nodes[0].capacity += (uint64_t)1 << 30;
    register_node(&nodes[0], 0, &r);
    ok(r.status == 0 && r.nid == nodes[0].nid && r.epoch == epoch,
       "re-registering a known uuid with a new capacity keeps nid %" PRIu32 " and epoch %" PRIu64
       " (got nid %" PRIu32 ", epoch %" PRIu64 ")%s", nodes[0].nid, epoch, r.nid, r.epoch,
       tl_why(r.message));
    m = map_get();
    const Lode__NodeInfo *n = in_map(m, nodes[0].nid);
    ok(m && m->epoch == epoch && m->n_nodes == 3 && n && n->capacity_bytes == nodes[0].capacity,
       "the map shows the new capacity at the same epoch, still three nodes");
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);

    /* A new address is a change of the map. */
    snprintf(nodes[0].address, sizeof(nodes[0].address), "127.0.0.2:%u", 19200);
    register_node(&nodes[0], nodes[0].nid, &r);
    ok(r.status == 0 && r.nid == nodes[0].nid && r.epoch == epoch + 1,
       "re-registering with a new address (and its nid) keeps the nid and bumps the epoch to "
       "%" PRIu64 " (got %" PRIu64 ")%s", epoch + 1, r.epoch, tl_why(r.message));
    epoch++;
    m = map_get();
    n = in_map(m, nodes[0].nid);
    ok(m && m->epoch == epoch && n && strcmp(n->address, nodes[0].address) == 0 &&
           n->state == LODE__NODE_STATE__NODE_UP,
       "the map shows the new address");
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);

    /* Refusals change nothing. */
    is_int(register_node(&nodes[0], nodes[1].nid, &r), -EINVAL,
           "registering a known uuid under another nid: EINVAL%s", tl_why(r.message));
    struct node bad = nodes[1];
    struct cmn_id other = cmn_id_random();
    memcpy(bad.uuid, other.b, sizeof(bad.uuid));
    bad.domain[0] = '\0';
    is_int(register_node(&bad, 0, &r), -EINVAL, "registering without a failure domain: EINVAL");
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__RegisterNode rn = LODE__REGISTER_NODE__INIT;
    Lode__NodeInfo ni = LODE__NODE_INFO__INIT;
    ni.uuid.data = other.b;
    ni.uuid.len = 8;
    ni.address = (char *)"127.0.0.1:1";
    ni.failure_domain = (char *)"rack-z";
    rn.node = &ni;
    cmd.op_case = LODE__COMMAND__OP_REGISTER_NODE;
    cmd.register_node = &rn;
    is_int(commit(CMN_RPC_NODE_REGISTER, &cmd, &r), LODE_EBADMSG,
           "registering an 8-byte uuid: EBADMSG");
    is_int(current_epoch(), epoch, "refused registrations leave the epoch alone");
    return epoch;
}

/* ---- Heartbeats */

static void check_heartbeats(uint64_t epoch)
{
    uint64_t e = 0;
    Lode__NodeState st = LODE__NODE_STATE__NODE_STATE_UNKNOWN;
    char msg[512];
    int rc = beat(&nodes[1], T_MS, &e, &st, msg, sizeof(msg));
    ok(rc == 0 && e == epoch && st == LODE__NODE_STATE__NODE_UP,
       "NODE_HEARTBEAT answers with the epoch (%" PRIu64 ") and the node's state (%s)%s", e,
       state_name(st), tl_why(msg));

    rc = heartbeat(99, nodes[1].uuid, CMN_ID_SIZE, 0, 0, T_MS, NULL, NULL, msg, sizeof(msg));
    is_int(rc, LODE_ENONODE, "a heartbeat from an unknown nid: ENONODE (%s)", msg);
    rc = heartbeat(nodes[1].nid, nodes[2].uuid, CMN_ID_SIZE, 0, 0, T_MS, NULL, NULL, msg,
                   sizeof(msg));
    is_int(rc, LODE_ENONODE, "a heartbeat with another node's uuid: ENONODE (%s)", msg);
    rc = heartbeat(nodes[1].nid, nodes[1].uuid, 4, 0, 0, T_MS, NULL, NULL, msg, sizeof(msg));
    is_int(rc, LODE_ENONODE, "a heartbeat with a truncated uuid: ENONODE");

    /* Beats are for the leader only: a follower sends the node there. */
    unsigned leader = 0;
    if (tl_cluster_wait_leader(cl, T_MS, &leader) == 0) {
        Lode__HeartbeatRequest hb = LODE__HEARTBEAT_REQUEST__INIT;
        struct cmn_rpc_result res;
        hb.nid = nodes[1].nid;
        hb.uuid.data = nodes[1].uuid;
        hb.uuid.len = CMN_ID_SIZE;
        cmn_rpc_result_init(&res);
        rc = tl_call_at(cl, (leader + 1) % cl->n, CMN_RPC_NODE_HEARTBEAT, 0, &hb.base, T_MS, &res);
        ok(rc == LODE_ENOTLEADER && strcmp(res.leader_address, cl->r[leader].rpc_addr) == 0,
           "a heartbeat sent to a follower: ENOTLEADER naming the leader (%s)",
           lode_errname(rc));
        cmn_rpc_result_free(&res);
    }

    /* Reported usage reaches the map (the first report at once), without an epoch change. */
    for (unsigned i = 0; i < 3; i++)
        nodes[i].used = 1000000u * (i + 1);
    uint64_t deadline = cmn_mono_ms() + 3 * TICK_MS + 2000;
    int seen = 0;
    Lode__ClusterMap *m = NULL;
    while (cmn_mono_ms() < deadline) {
        sleep_pump(100);
        if (m)
            lode__cluster_map__free_unpacked(m, NULL);
        m = map_get();
        seen = 0;
        for (unsigned i = 0; m && i < 3; i++) {
            const Lode__NodeInfo *n = in_map(m, nodes[i].nid);
            seen += n && n->used_bytes == nodes[i].used;
        }
        if (seen == 3)
            break;
    }
    is_int(seen, 3, "the used bytes the nodes report reach the cluster map");
    ok(m && m->epoch == epoch, "usage updates do not change the epoch (%" PRIu64 ")",
       m ? m->epoch : 0);
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);
}

/* ---- Silence: up -> suspect -> down, then back up */

/* Polls the map while node q is silent (the others beat) until it is DOWN. Checks that it
 * goes UP -> SUSPECT -> DOWN, each transition no earlier than its threshold after t_ref
 * (when the node was last heard from) and not much later, with one epoch bump each, and
 * that the beating nodes keep their state. Returns the epoch after. */
static uint64_t watch_silence(struct node *q, uint64_t t_ref, uint64_t epoch, const char *what)
{
    uint64_t t_suspect = 0, t_down = 0, e_suspect = 0, e_down = 0;
    unsigned others_left_up = 0, odd = 0, polls = 0;
    bool down_first = false;
    uint64_t deadline = t_ref + DOWN_MS + LATE_MS + 1000;
    while (cmn_mono_ms() < deadline && !t_down) {
        sleep_pump(100);
        Lode__ClusterMap *m = map_get();
        uint64_t now = cmn_mono_ms();
        if (!m)
            continue;
        polls++;
        Lode__NodeState s = state_in(m, q->nid);
        if (s == LODE__NODE_STATE__NODE_SUSPECT && !t_suspect) {
            t_suspect = now;
            e_suspect = m->epoch;
        } else if (s == LODE__NODE_STATE__NODE_DOWN) {
            down_first = !t_suspect;
            t_down = now;
            e_down = m->epoch;
        } else if (s != LODE__NODE_STATE__NODE_UP && s != LODE__NODE_STATE__NODE_SUSPECT) {
            if (odd++ == 0)
                diag("silent node %" PRIu32 " is %s", q->nid, state_name(s));
        }
        for (unsigned i = 0; i < N_NODES; i++)
            if (nodes[i].beating && state_in(m, nodes[i].nid) != nodes[i].expect &&
                others_left_up++ == 0)
                diag("beating node %" PRIu32 " is %s", nodes[i].nid,
                     state_name(state_in(m, nodes[i].nid)));
        lode__cluster_map__free_unpacked(m, NULL);
    }
    diag("%s: SUSPECT seen after %" PRIu64 " ms, DOWN after %" PRIu64 " ms (%u polls)", what,
         t_suspect ? t_suspect - t_ref : 0, t_down ? t_down - t_ref : 0, polls);

    ok(t_suspect && t_suspect - t_ref >= SUSPECT_MS && t_suspect - t_ref <= SUSPECT_MS + LATE_MS,
       "%s: SUSPECT after node-suspect-after (%d ms, allowed up to %d ms)", what, SUSPECT_MS,
       SUSPECT_MS + LATE_MS);
    is_int(e_suspect, epoch + 1, "... and the epoch bumps");
    ok(t_down && !down_first && t_down - t_ref >= DOWN_MS && t_down - t_ref <= DOWN_MS + LATE_MS,
       "%s: then DOWN after node-down-after (%d ms, allowed up to %d ms)", what, DOWN_MS,
       DOWN_MS + LATE_MS);
    is_int(e_down, epoch + 2, "... and the epoch bumps again");
    is_int(odd, 0, "%s: no other state on the way", what);
    is_int(others_left_up, 0,
           "%s: the nodes that kept beating kept their state all along (UP, one DRAINING)", what);
    return epoch + 2;
}

static uint64_t t_draining;

/* Node 2 goes DRAINING now and keeps beating through the silence of node 3: the leader
 * must not turn it back UP (checked all along by watch_silence, and in check_admin). */
static uint64_t set_draining(uint64_t epoch)
{
    struct node *d = &nodes[1];
    struct cres r;
    set_state(d->nid, LODE__NODE_STATE__NODE_DRAINING, &r);
    ok(r.status == 0 && r.epoch == epoch + 1,
       "NODE_SET_STATE DRAINING bumps the epoch to %" PRIu64 " (got %" PRIu64 ")%s", epoch + 1,
       r.epoch, tl_why(r.message));
    t_draining = cmn_mono_ms();
    d->expect = LODE__NODE_STATE__NODE_DRAINING;
    Lode__ClusterMap *m = map_get();
    ok(m && m->epoch == epoch + 1 && state_in(m, d->nid) == LODE__NODE_STATE__NODE_DRAINING,
       "the map shows it DRAINING");
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);
    return epoch + 1;
}

static uint64_t check_silence(uint64_t epoch)
{
    struct node *q = &nodes[2];
    struct cres r;
    sleep_pump(BEAT_EVERY_MS);
    char msg[512];
    int rc = beat(q, T_MS, NULL, NULL, msg, sizeof(msg));
    if (rc != 0)
        diag("last heartbeat of node %" PRIu32 ": %s (%s)", q->nid, lode_errname(rc), msg);
    q->beating = false;
    epoch = watch_silence(q, q->last_ok_ms, epoch, "a node that stops beating");

    /* A DOWN node that registers again (a restart) is UP, and the leader counts its
     * silence from that registration, not from its last beat. */
    uint64_t t_reg = cmn_mono_ms();
    register_node(q, 0, &r);
    ok(r.status == 0 && r.nid == q->nid && r.epoch == epoch + 1,
       "the DOWN node registers again: same nid, UP, epoch %" PRIu64 " (got %" PRIu64 ")%s",
       epoch + 1, r.epoch, tl_why(r.message));
    epoch = watch_silence(q, t_reg, epoch + 1, "a node silent since it registered again");

    /* Back: the first beat still hears DOWN, then the leader marks it UP. */
    uint64_t e = 0;
    Lode__NodeState st = LODE__NODE_STATE__NODE_STATE_UNKNOWN;
    rc = beat(q, T_MS, &e, &st, msg, sizeof(msg));
    ok(rc == 0 && st == LODE__NODE_STATE__NODE_DOWN && e == epoch,
       "a heartbeat from the DOWN node is accepted and tells it it is DOWN (%s, epoch %" PRIu64
       ")%s", state_name(st), e, tl_why(msg));
    q->beating = true;
    uint64_t t_back = cmn_mono_ms(), t_up = 0, e_up = 0;
    while (cmn_mono_ms() < t_back + LATE_MS + 1000 && !t_up) {
        sleep_pump(100);
        Lode__ClusterMap *m = map_get();
        if (m && state_in(m, q->nid) == LODE__NODE_STATE__NODE_UP) {
            t_up = cmn_mono_ms();
            e_up = m->epoch;
        }
        if (m)
            lode__cluster_map__free_unpacked(m, NULL);
    }
    ok(t_up, "once it beats again it is UP (after %" PRIu64 " ms)", t_up ? t_up - t_back : 0);
    is_int(e_up, epoch + 1, "... and the epoch bumps");
    epoch++;
    rc = beat(q, T_MS, &e, &st, msg, sizeof(msg));
    ok(rc == 0 && st == LODE__NODE_STATE__NODE_UP && e == epoch,
       "its heartbeats now say UP at epoch %" PRIu64, epoch);
    return epoch;
}

/* ---- Operator states */

static uint64_t check_admin(uint64_t epoch)
{
    struct node *d = &nodes[1];
    struct cres r;
    /* It beat all through check_silence, far longer than the suspect time plus a tick. */
    Lode__ClusterMap *m = map_get();
    ok(m && state_in(m, d->nid) == LODE__NODE_STATE__NODE_DRAINING &&
           cmn_mono_ms() - t_draining > SUSPECT_MS + 2 * TICK_MS,
       "a DRAINING node that kept beating for %" PRIu64 " ms is still DRAINING (not turned "
       "back UP)", cmn_mono_ms() - t_draining);
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);
    uint64_t e = 0;
    Lode__NodeState st = LODE__NODE_STATE__NODE_STATE_UNKNOWN;
    char msg[512];
    int rc = beat(d, T_MS, &e, &st, msg, sizeof(msg));
    ok(rc == 0 && st == LODE__NODE_STATE__NODE_DRAINING && e == epoch,
       "its heartbeats say DRAINING (%s)%s", state_name(st), tl_why(msg));
    register_node(d, 0, &r);
    m = map_get();
    ok(r.status == 0 && r.nid == d->nid && r.epoch == epoch && m &&
           state_in(m, d->nid) == LODE__NODE_STATE__NODE_DRAINING,
       "re-registering a DRAINING node leaves it DRAINING%s", tl_why(r.message));
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);

    set_state(d->nid, LODE__NODE_STATE__NODE_REMOVED, &r);
    ok(r.status == 0 && r.epoch == epoch + 1, "NODE_SET_STATE REMOVED bumps the epoch%s",
       tl_why(r.message));
    epoch++;
    d->beating = false;
    is_int(set_state(d->nid, LODE__NODE_STATE__NODE_UP, &r), LODE_ESTATE,
           "a removed node cannot be set UP: ESTATE (%s)", r.message);
    is_int(set_state(d->nid, LODE__NODE_STATE__NODE_DRAINING, &r), LODE_ESTATE,
           "... nor DRAINING: ESTATE");
    rc = beat(d, T_MS, NULL, NULL, msg, sizeof(msg));
    is_int(rc, LODE_ENONODE, "a heartbeat from the removed node: ENONODE (%s)", msg);
    is_int(register_node(d, 0, &r), LODE_ESTATE,
           "its uuid cannot register again: ESTATE (%s)", r.message);
    is_int(set_state(77, LODE__NODE_STATE__NODE_DRAINING, &r), LODE_ENONODE,
           "NODE_SET_STATE of an unknown nid: ENONODE");
    is_int(set_state(nodes[0].nid, (Lode__NodeState)42, &r), -EINVAL,
           "NODE_SET_STATE to an invalid state: EINVAL");

    node_init(&nodes[3], 3);
    register_node(&nodes[3], 0, &r);
    nodes[3].beating = r.status == 0;
    ok(r.status == 0 && nodes[3].nid == 4 && r.epoch == epoch + 1,
       "a fourth node gets nid 4: nids are never reused (got %" PRIu32 ")%s", nodes[3].nid,
       tl_why(r.message));
    epoch++;

    m = map_get();
    ok(m && m->epoch == epoch && m->n_nodes == 4 &&
           state_in(m, d->nid) == LODE__NODE_STATE__NODE_REMOVED,
       "the map keeps the removed node, REMOVED, next to three others");
    if (m)
        lode__cluster_map__free_unpacked(m, NULL);
    return epoch;
}

/* ---- Failover */

/* Waits (beating) until every running replica has the same digest. */
static int converge_pump(uint32_t timeout_ms)
{
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    while (cmn_mono_ms() < deadline) {
        uint8_t d0[32], d[32];
        uint64_t applied;
        int first = -1, same = 1;
        for (unsigned i = 0; i < cl->n && same; i++) {
            if (!tl_cluster_alive(cl, i))
                continue;
            if (tl_cluster_digest(cl, i, first < 0 ? d0 : d, &applied, NULL) != 0)
                same = 0;
            else if (first < 0)
                first = (int)i;
            else if (memcmp(d0, d, 32) != 0)
                same = 0;
        }
        if (same && first >= 0)
            return 0;
        sleep_pump(100);
    }
    return LODE_ETIMEOUT;
}

static void check_failover(uint64_t epoch)
{
    unsigned leader = 0;
    if (tl_cluster_wait_leader(cl, 5000, &leader) != 0) {
        ok(0, "a leader before the failover");
        return;
    }
    sleep_pump(BEAT_EVERY_MS);
    Lode__ClusterMap *before = map_get();
    ok(before && before->epoch == epoch &&
           state_in(before, nodes[0].nid) == LODE__NODE_STATE__NODE_UP &&
           state_in(before, nodes[2].nid) == LODE__NODE_STATE__NODE_UP &&
           state_in(before, nodes[3].nid) == LODE__NODE_STATE__NODE_UP,
       "before the failover: nodes 1, 3, 4 UP at epoch %" PRIu64, epoch);

    char old[TL_ADDR_MAX];
    snprintf(old, sizeof(old), "%s", cl->r[leader].rpc_addr);
    tolerate_beat_errors = true;
    /* Node 4 beats late: it stays quiet until the new leader has surely begun watching
     * (its timer's first tick comes a second after it took over), so that silence since its
     * last beat to the old leader is longer than node-suspect-after, but silence since the
     * new leader started is not. */
    struct node *late = &nodes[3];
    uint64_t late_last = late->last_ok_ms;
    late->beating = false;
    uint64_t t_kill = cmn_mono_ms();
    is_int(tl_cluster_kill(cl, leader, SIGKILL), 0, "kill -9 the meta leader (replica %u)",
           cl->r[leader].id);

    /* Beats fail until a new leader answers them. */
    uint64_t t_new = 0;
    while (cmn_mono_ms() < t_kill + 15000 && !t_new) {
        sleep_pump(20);
        const char *now_leader = cmn_meta_client_leader(mc);
        if (nodes[0].last_ok_ms > t_kill && now_leader && strcmp(now_leader, old) != 0)
            t_new = cmn_mono_ms();
    }
    ok(t_new, "beats reach a new leader (%s) %" PRIu64 " ms after the kill",
       cmn_meta_client_leader(mc) ? cmn_meta_client_leader(mc) : "?",
       t_new ? t_new - t_kill : 0);
    tolerate_beat_errors = false;
    sleep_pump(TICK_MS + 100);
    late->beating = true;
    pump();
    ok(late->last_ok_ms > t_kill && late->last_ok_ms - late_last > SUSPECT_MS,
       "node %" PRIu32 " beats again after %" PRIu64 " ms of silence (longer than "
       "node-suspect-after)", late->nid, late->last_ok_ms - late_last);

    /* Longer than the suspect time plus two ticks: a new leader that counted the failover
     * as silence would have marked nodes by now. */
    uint64_t end = t_new + SUSPECT_MS + 2 * TICK_MS + 500;
    if (end < cmn_mono_ms() + SUSPECT_MS + TICK_MS)
        end = cmn_mono_ms() + SUSPECT_MS + TICK_MS;
    unsigned marked = 0, polls = 0;
    while (cmn_mono_ms() < end) {
        sleep_pump(200);
        Lode__ClusterMap *m = map_get();
        if (!m)
            continue;
        polls++;
        for (unsigned i = 0; i < N_NODES; i++) {
            Lode__NodeState s = state_in(m, nodes[i].nid);
            if (nodes[i].beating && s != LODE__NODE_STATE__NODE_UP && marked++ < 3)
                diag("after the failover node %" PRIu32 " is %s (epoch %" PRIu64 ")",
                     nodes[i].nid, state_name(s), m->epoch);
        }
        if (m->epoch != epoch && marked++ < 3)
            diag("after the failover the epoch is %" PRIu64 ", was %" PRIu64, m->epoch, epoch);
        lode__cluster_map__free_unpacked(m, NULL);
    }
    ok(polls > 0 && marked == 0,
       "the new leader marks no beating node SUSPECT or DOWN, epoch unchanged (%u polls)",
       polls);

    Lode__ClusterMap *after = map_get();
    int same = after && before && after->n_nodes == before->n_nodes;
    for (size_t i = 0; same && i < before->n_nodes; i++) {
        const Lode__NodeInfo *a = in_map(after, before->nodes[i]->nid), *b = before->nodes[i];
        same = a && a->state == b->state && strcmp(a->address, b->address) == 0 &&
               a->uuid.len == b->uuid.len && memcmp(a->uuid.data, b->uuid.data, b->uuid.len) == 0 &&
               a->capacity_bytes == b->capacity_bytes && a->used_bytes == b->used_bytes;
    }
    ok(same && after->epoch == epoch,
       "the map survived the failover: same nodes, states, addresses, usage and epoch");
    ok(after && state_in(after, nodes[1].nid) == LODE__NODE_STATE__NODE_REMOVED,
       "the silent removed node is still REMOVED (never marked DOWN)");

    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = tl_cluster_restart(cl, leader, &err);
    is_int(rc, 0, "the killed replica restarts%s", tl_why(err.msg));
    is_int(converge_pump(15000), 0, "all three replicas converge");
    Lode__ClusterMap *stale = map_get_at((int)leader, CMN_RPC_FLAG_STALE_OK);
    same = stale && after && stale->epoch == after->epoch && stale->n_nodes == after->n_nodes;
    for (size_t i = 0; same && i < after->n_nodes; i++)
        same = state_in(stale, after->nodes[i]->nid) == after->nodes[i]->state;
    ok(same, "the restarted replica serves the same map from its own state (STALE_OK)");
    if (stale)
        lode__cluster_map__free_unpacked(stale, NULL);
    if (after)
        lode__cluster_map__free_unpacked(after, NULL);
    if (before)
        lode__cluster_map__free_unpacked(before, NULL);
}

int main(void)
{
    struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
    struct cmn_err err;
    unsigned leader;
    cmn_err_clear(&err);
    o.name = "test_meta_nodes";
    o.extra_conf = "node-suspect-after = 1s\nnode-down-after = 3s\n";
    if (tl_cluster_start(&o, &cl, &err) != 0)
        tap_bail("start cluster: %s", err.msg);
    mc = tl_cluster_client(cl);
    if (!mc || tl_cluster_wait_leader(cl, 15000, &leader) != 0)
        tap_bail("no leader elected");

    uint64_t t0 = cmn_mono_ms();
    uint64_t epoch = check_register();
    check_heartbeats(epoch);
    epoch = set_draining(epoch);
    epoch = check_silence(epoch);
    epoch = check_admin(epoch);
    check_failover(epoch);
    is_int(beat_errors, 0, "no heartbeat failed outside the failover");
    diag("node checks took %" PRIu64 " ms", cmn_mono_ms() - t0);

    for (unsigned i = 0; i < cl->n; i++)
        ok(tl_cluster_alive(cl, i), "replica %u is still running", cl->r[i].id);
    is_int(tl_cluster_crash_count(cl), 0, "no replica logged a crash");

    int rc = tap_done();
    tl_cluster_destroy(cl, rc != 0);
    return rc;
}
