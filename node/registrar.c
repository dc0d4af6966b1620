/* Registration, heartbeats and corrupt-chunk reports (see registrar.h).
 *
 * One timer drives the membership channel, with at most one call to meta in flight on it:
 *
 *   tick -> [nid unknown or forgotten] NODE_REGISTER -> ok: REGISTERED, next tick after the
 *                                                       interval
 *                                                    -> error: UNREACHABLE (no leader, no
 *                                                       connection) or REJECTED (meta's own
 *                                                       answer), retry with backoff
 *        -> [registered] NODE_HEARTBEAT -> ok: next tick one interval after the beat left
 *                                       -> LODE_ENONODE: register again at once
 *                                       -> error: UNREACHABLE, next beat at the interval
 *
 * Corrupt reports use a second, independent slot (one CORRUPT_REPORT in flight): each tick
 * moves what node_store_corrupt_take() hands over into a queue, and a report of up to
 * REPORT_BATCH entries goes out once registered; entries leave the queue only when meta has
 * accepted them. Meta without CORRUPT_REPORT support (LODE_ENOMETHOD, or -EINVAL for an op it
 * does not know) keeps them queued and is asked again every report_retry_ms (30 s).
 *
 * Only state changes are logged, so an unreachable meta costs one line, not one per beat.
 */
#include "node/registrar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/meta_async.h"
#include "common/metrics.h"

#define LOG_CTX "registrar"
#define DEFAULT_INTERVAL_MS 2000
#define REGISTER_TIMEOUT_MS 5000
#define REPORT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define REJECTED_RETRY_MS 30000
#define REPORT_RETRY_MS 30000
#define REPORT_BATCH 1024             /* meta's limit per command (META_CORRUPT_REPORT_MAX) */
#define TAKE_BATCH 256
#define QUEUE_MAX 100000              /* beyond this, new corrupt ids are counted and dropped */
#define REASON "checksum mismatch"

struct corrupt_entry {
    struct cmn_id id;
    int64_t detected_ms;
};

struct node_registrar {
    uv_loop_t *loop;
    struct node_store *st;
    struct cmn_meta_async *meta;
    char *address;
    char *data_address;
    char *rdma_address;
    bool dc;
    void (*on_nid)(void *data, uint32_t nid);
    void *on_nid_data;
    char *failure_domain;
    uint64_t interval_ms;
    uint64_t report_retry_ms;
    uint32_t nid;
    int need_register;
    enum node_meta_state state;
    int last_node_state;              /* Lode__NodeState from the last beat */
    uv_timer_t timer;
    int busy;                         /* register or heartbeat in flight */
    unsigned failures;                /* consecutive, for the backoff */
    uint64_t beat_sent_ms;

    struct corrupt_entry *q;
    size_t qn, qcap;
    int report_busy;
    size_t report_n;                  /* the first report_n entries are in flight */
    uint64_t report_not_before;       /* monotonic ms */
    int report_failing;               /* a failure was logged; log the recovery */
    uint64_t reported;
    uint64_t dropped;

    struct cmn_counter *c_beats_ok, *c_beats_err, *c_registrations, *c_reported;
    struct cmn_gauge *g_registered, *g_queued;

    int closing;
    int open_handles;                 /* timer + meta client */
    void (*close_cb)(void *data);
    void *close_data;
};

static void tick(struct node_registrar *r);

const char *node_meta_state_name(enum node_meta_state s)
{
    switch (s) {
    case NODE_META_REGISTERING: return "registering";
    case NODE_META_REGISTERED: return "registered";
    case NODE_META_UNREACHABLE: return "unreachable";
    case NODE_META_REJECTED: return "rejected";
    }
    return "unknown";
}

static void set_state(struct node_registrar *r, enum node_meta_state s, const char *why)
{
    enum node_meta_state old = r->state;
    r->state = s;
    cmn_gauge_set(r->g_registered, s == NODE_META_REGISTERED ? 1 : 0);
    if (old == s)
        return;
    switch (s) {
    case NODE_META_REGISTERED:
        if (old == NODE_META_REGISTERING)
            LOG_INFO(LOG_CTX, "registered with meta as node %" PRIu32 " (%s, failure domain %s)",
                     r->nid, r->address, r->failure_domain);
        else
            LOG_INFO(LOG_CTX, "meta reachable again; node %" PRIu32 " registered", r->nid);
        break;
    case NODE_META_UNREACHABLE:
        LOG_WARN(LOG_CTX, "meta unreachable (%s); serving chunks and retrying", why);
        break;
    case NODE_META_REJECTED:
        LOG_ERROR(LOG_CTX, "meta refused to register this node: %s; retrying every %d s (check "
                  "`lodectl node list` and this node's uuid)", why, REJECTED_RETRY_MS / 1000);
        break;
    case NODE_META_REGISTERING:
        break;
    }
}

static void on_timer(uv_timer_t *t)
{
    tick(t->data);
}

static void schedule(struct node_registrar *r, uint64_t delay_ms)
{
    if (!r->closing)
        uv_timer_start(&r->timer, on_timer, delay_ms, 0);
}

static uint64_t backoff_ms(unsigned failures)
{
    uint64_t ms = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    uint16_t rnd = 0;
    cmn_random_bytes(&rnd, sizeof(rnd));
    return ms / 2 + rnd % (ms / 2 + 1);   /* jitter: many nodes restart together */
}

/* ---- corrupt reports ------------------------------------------------------------------ */

static void pull_corrupt(struct node_registrar *r)
{
    struct cmn_id ids[TAKE_BATCH];
    for (;;) {
        size_t n = node_store_corrupt_take(r->st, ids, TAKE_BATCH);
        int64_t now = cmn_now_ms();
        for (size_t i = 0; i < n; i++) {
            if (r->qn >= QUEUE_MAX) {
                r->dropped++;
                continue;
            }
            if (r->qn == r->qcap) {
                size_t cap = r->qcap ? r->qcap * 2 : 64;
                struct corrupt_entry *q = realloc(r->q, cap * sizeof(*q));
                if (!q) {
                    r->dropped++;
                    continue;
                }
                r->q = q;
                r->qcap = cap;
            }
            char hex[CMN_ID_HEX_SIZE];
            cmn_id_to_hex(&ids[i], hex);
            LOG_DEBUG(LOG_CTX, "chunk %s failed verification; queued for a report to meta",
                      hex);
            r->q[r->qn].id = ids[i];
            r->q[r->qn].detected_ms = now;
            r->qn++;
        }
        if (n < TAKE_BATCH)
            break;
    }
    if (r->dropped)
        LOG_ERROR(LOG_CTX, "%" PRIu64 " corrupt chunk id(s) could not be queued for meta (queue "
                  "full or out of memory); the scrubber will find them again", r->dropped);
    r->dropped = 0;
    cmn_gauge_set(r->g_queued, (double)r->qn);
}

static void report_corrupt(struct node_registrar *r);

static void on_report(void *data, const struct cmn_rpc_result *res)
{
    struct node_registrar *r = data;
    r->report_busy = 0;
    if (r->closing)
        return;
    size_t n = r->report_n;
    r->report_n = 0;
    if (res->status == 0) {
        memmove(r->q, r->q + n, (r->qn - n) * sizeof(*r->q));
        r->qn -= n;
        r->reported += n;
        cmn_counter_add(r->c_reported, n);
        cmn_gauge_set(r->g_queued, (double)r->qn);
        LOG_INFO(LOG_CTX, "reported %zu corrupt chunk(s) to meta for repair%s", n,
                 r->report_failing ? " (meta accepts reports again)" : "");
        r->report_failing = 0;
        report_corrupt(r);
        return;
    }
    int unsupported = res->status == LODE_ENOMETHOD || res->status == -EINVAL;
    uint64_t retry = unsupported ? r->report_retry_ms : r->interval_ms;
    r->report_not_before = cmn_mono_ms() + retry;
    if (!r->report_failing)
        LOG_WARN(LOG_CTX, "%s (%s); %zu corrupt chunk(s) stay queued, retrying every %" PRIu64
                 " ms",
                 unsupported ? "meta does not accept CORRUPT_REPORT yet" : "reporting corrupt "
                                                                           "chunks failed",
                 res->message, r->qn, retry);
    r->report_failing = 1;
}

static void report_corrupt(struct node_registrar *r)
{
    if (r->closing || r->report_busy || r->qn == 0 || r->nid == 0 ||
        cmn_mono_ms() < r->report_not_before)
        return;
    size_t n = r->qn < REPORT_BATCH ? r->qn : REPORT_BATCH;
    Lode__CorruptChunk *cc = calloc(n, sizeof(*cc));
    Lode__CorruptChunk **ptrs = calloc(n, sizeof(*ptrs));
    if (!cc || !ptrs) {
        free(cc);
        free(ptrs);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        lode__corrupt_chunk__init(&cc[i]);
        cc[i].nid = r->nid;
        cc[i].chunk_id.data = r->q[i].id.b;
        cc[i].chunk_id.len = CMN_ID_SIZE;
        cc[i].detected_ms = r->q[i].detected_ms;
        cc[i].reason = (char *)REASON;
        ptrs[i] = &cc[i];
    }
    Lode__ReportCorrupt rep = LODE__REPORT_CORRUPT__INIT;
    rep.n_chunks = n;
    rep.chunks = ptrs;
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_REPORT_CORRUPT;
    cmd.report_corrupt = &rep;
    int rc = cmn_meta_async_call(r->meta, CMN_RPC_CORRUPT_REPORT, 0, &cmd.base,
                                 REPORT_TIMEOUT_MS, on_report, r);
    free(cc);
    free(ptrs);
    if (rc == 0) {
        r->report_busy = 1;
        r->report_n = n;
    } else {
        r->report_not_before = cmn_mono_ms() + r->interval_ms;
    }
}

/* ---- registration and heartbeats ------------------------------------------------------ */

static void on_register(void *data, const struct cmn_rpc_result *res)
{
    struct node_registrar *r = data;
    r->busy = 0;
    if (r->closing)
        return;
    if (res->status != 0) {
        r->failures++;
        if (cmn_meta_async_transient(res->status)) {
            set_state(r, NODE_META_UNREACHABLE, res->message);
            schedule(r, backoff_ms(r->failures));
        } else {
            set_state(r, NODE_META_REJECTED, res->message);
            schedule(r, REJECTED_RETRY_MS);
        }
        return;
    }
    Lode__CommandResult *cr = lode__command_result__unpack(NULL, res->body.len, res->body.data);
    uint32_t nid = cr ? cr->nid : 0;
    if (cr)
        lode__command_result__free_unpacked(cr, NULL);
    if (nid == 0) {
        r->failures++;
        set_state(r, NODE_META_REJECTED, "NODE_REGISTER answered without a node id");
        schedule(r, REJECTED_RETRY_MS);
        return;
    }
    if (r->nid && r->nid != nid)
        LOG_WARN(LOG_CTX, "meta registered this node as %" PRIu32 " (it was %" PRIu32 ")", nid,
                 r->nid);
    bool changed = r->nid != nid;
    r->nid = nid;
    if (changed && r->on_nid)
        r->on_nid(r->on_nid_data, nid);
    r->need_register = 0;
    r->failures = 0;
    cmn_counter_add(r->c_registrations, 1);
    set_state(r, NODE_META_REGISTERED, NULL);
    report_corrupt(r);
    schedule(r, r->interval_ms);
}

static void send_register(struct node_registrar *r)
{
    struct node_store_stats stats;
    node_store_stats(r->st, &stats);
    struct cmn_id uuid = node_store_uuid(r->st);
    Lode__NodeInfo ni = LODE__NODE_INFO__INIT;
    ni.nid = r->nid;
    ni.uuid.data = uuid.b;
    ni.uuid.len = CMN_ID_SIZE;
    ni.address = r->address;
    ni.data_address = r->data_address;
    ni.rdma_address = r->rdma_address;
    ni.dc = r->dc;
    ni.failure_domain = r->failure_domain;
    ni.capacity_bytes = stats.capacity_bytes;
    ni.used_bytes = stats.used_bytes;
    Lode__RegisterNode reg = LODE__REGISTER_NODE__INIT;
    reg.node = &ni;
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_REGISTER_NODE;
    cmd.register_node = &reg;
    uint32_t timeout = r->interval_ms > REGISTER_TIMEOUT_MS ? (uint32_t)r->interval_ms
                                                            : REGISTER_TIMEOUT_MS;
    int rc = cmn_meta_async_call(r->meta, CMN_RPC_NODE_REGISTER, 0, &cmd.base, timeout,
                                 on_register, r);
    if (rc == 0) {
        r->busy = 1;
        return;
    }
    r->failures++;
    schedule(r, backoff_ms(r->failures));
}

static void on_heartbeat(void *data, const struct cmn_rpc_result *res)
{
    struct node_registrar *r = data;
    r->busy = 0;
    if (r->closing)
        return;
    uint64_t elapsed = cmn_mono_ms() - r->beat_sent_ms;
    uint64_t next = elapsed < r->interval_ms ? r->interval_ms - elapsed : 0;
    if (res->status == LODE_ENONODE) {
        cmn_counter_add(r->c_beats_err, 1);
        LOG_WARN(LOG_CTX, "meta does not know node %" PRIu32 " (%s); registering again", r->nid,
                 res->message);
        r->need_register = 1;
        r->state = NODE_META_REGISTERING;
        schedule(r, 0);
        return;
    }
    if (res->status != 0) {
        cmn_counter_add(r->c_beats_err, 1);
        set_state(r, cmn_meta_async_transient(res->status) ? NODE_META_UNREACHABLE
                                                           : NODE_META_REJECTED,
                  res->message);
        schedule(r, next);
        return;
    }
    cmn_counter_add(r->c_beats_ok, 1);
    Lode__HeartbeatResponse *hr = lode__heartbeat_response__unpack(NULL, res->body.len,
                                                                   res->body.data);
    if (hr) {
        if ((int)hr->state != r->last_node_state && hr->state != LODE__NODE_STATE__NODE_UP &&
            hr->state != LODE__NODE_STATE__NODE_STATE_UNKNOWN) {
            const ProtobufCEnumValue *v =
                protobuf_c_enum_descriptor_get_value(&lode__node_state__descriptor, hr->state);
            LOG_INFO(LOG_CTX, "meta lists node %" PRIu32 " as %s", r->nid, v ? v->name : "?");
        }
        r->last_node_state = (int)hr->state;
        lode__heartbeat_response__free_unpacked(hr, NULL);
    }
    set_state(r, NODE_META_REGISTERED, NULL);
    schedule(r, next);
}

static void send_heartbeat(struct node_registrar *r)
{
    struct node_store_stats stats;
    node_store_stats(r->st, &stats);
    struct cmn_id uuid = node_store_uuid(r->st);
    Lode__HeartbeatRequest hb = LODE__HEARTBEAT_REQUEST__INIT;
    hb.nid = r->nid;
    hb.uuid.data = uuid.b;
    hb.uuid.len = CMN_ID_SIZE;
    hb.used_bytes = stats.used_bytes;
    hb.capacity_bytes = stats.capacity_bytes;
    r->beat_sent_ms = cmn_mono_ms();
    /* A beat that takes longer than an interval is late anyway: the next one replaces it. */
    uint32_t timeout = r->interval_ms > 1000 ? (uint32_t)r->interval_ms : 1000;
    int rc = cmn_meta_async_call(r->meta, CMN_RPC_NODE_HEARTBEAT, 0, &hb.base, timeout,
                                 on_heartbeat, r);
    if (rc == 0) {
        r->busy = 1;
        return;
    }
    schedule(r, r->interval_ms);
}

static void tick(struct node_registrar *r)
{
    if (r->closing || r->busy)
        return;
    pull_corrupt(r);
    report_corrupt(r);
    if (r->nid == 0 || r->need_register)
        send_register(r);
    else
        send_heartbeat(r);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void destroy(struct node_registrar *r)
{
    free(r->q);
    free(r->address);
    free(r->data_address);
    free(r->rdma_address);
    free(r->failure_domain);
    free(r);
}

int node_registrar_start(const struct node_registrar_options *o, struct node_registrar **out,
                         struct cmn_err *err)
{
    struct node_registrar *r = calloc(1, sizeof(*r));
    if (!r)
        return cmn_err_set(err, -ENOMEM, "registrar: out of memory");
    r->loop = o->loop;
    r->st = o->store;
    r->interval_ms = o->heartbeat_interval_ms ? o->heartbeat_interval_ms : DEFAULT_INTERVAL_MS;
    r->report_retry_ms = o->report_retry_ms ? o->report_retry_ms : REPORT_RETRY_MS;
    r->address = strdup(o->address ? o->address : "");
    r->data_address = strdup(o->data_address ? o->data_address : "");
    r->rdma_address = strdup(o->rdma_address ? o->rdma_address : "");
    r->dc = o->dc;
    r->on_nid = o->on_nid;
    r->on_nid_data = o->on_nid_data;
    r->failure_domain = strdup(o->failure_domain ? o->failure_domain : "");
    if (!r->address || !r->data_address || !r->rdma_address || !r->failure_domain) {
        destroy(r);
        return cmn_err_set(err, -ENOMEM, "registrar: out of memory");
    }
    struct cmn_meta_async_config mc = {
        .addrs = o->meta,
        .secret = o->secret,
        .secret_len = o->secret_len,
        .max_frame = o->max_frame,
    };
    int rc = cmn_meta_async_create(o->loop, &mc, &r->meta, err);
    if (rc) {
        destroy(r);
        return rc;
    }
    struct cmn_metrics *m = o->metrics;
    if (m) {
        r->c_beats_ok = cmn_metrics_counter(m, "lode_node_heartbeats_total", "result=\"ok\"",
                                            "Heartbeats to meta, by outcome.");
        r->c_beats_err = cmn_metrics_counter(m, "lode_node_heartbeats_total", "result=\"error\"",
                                             "Heartbeats to meta, by outcome.");
        r->c_registrations = cmn_metrics_counter(m, "lode_node_registrations_total", NULL,
                                                 "Successful registrations with meta.");
        r->c_reported = cmn_metrics_counter(m, "lode_node_corrupt_reported_total", NULL,
                                            "Corrupt chunks meta accepted for repair.");
        r->g_registered = cmn_metrics_gauge(m, "lode_node_meta_registered", NULL,
                                            "1 while registered and heartbeats are answered.");
        r->g_queued = cmn_metrics_gauge(m, "lode_node_corrupt_queued", NULL,
                                        "Corrupt chunks waiting to be reported to meta.");
    }
    r->last_node_state = LODE__NODE_STATE__NODE_UP;
    uv_timer_init(o->loop, &r->timer);
    r->timer.data = r;
    r->open_handles = 2;
    schedule(r, 0);
    *out = r;
    return 0;
}

uint32_t node_registrar_nid(const struct node_registrar *r)
{
    return r->nid;
}

enum node_meta_state node_registrar_state(const struct node_registrar *r)
{
    return r->state;
}

size_t node_registrar_corrupt_queued(const struct node_registrar *r)
{
    return r->qn;
}

uint64_t node_registrar_corrupt_reported(const struct node_registrar *r)
{
    return r->reported;
}

static void one_closed(struct node_registrar *r)
{
    if (--r->open_handles > 0)
        return;
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;
    if (r->qn)
        LOG_WARN(LOG_CTX, "%zu corrupt chunk(s) were not reported to meta before shutdown; the "
                 "scrubber will find them again", r->qn);
    destroy(r);
    if (cb)
        cb(data);
}

static void on_timer_closed(uv_handle_t *h)
{
    one_closed(h->data);
}

static void on_meta_closed(void *data)
{
    one_closed(data);
}

void node_registrar_close(struct node_registrar *r, void (*cb)(void *data), void *data)
{
    if (!r || r->closing)
        return;
    r->closing = 1;
    r->close_cb = cb;
    r->close_data = data;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    /* Completes the calls in flight with LODE_ECLOSED; their callbacks see `closing`. */
    cmn_meta_async_close(r->meta, on_meta_closed, r);
}
