/* The gateway's links to a real cluster: one lode-meta replica and two lode-nodes on
 * loopback, driven from a libuv loop in the test as a gateway worker would.
 *   - the cluster map refresher publishes both nodes;
 *   - the access-key cache looks up a user created with USER_CREATE (TTL, negative cache,
 *     malformed ids that never reach meta), answers unknown keys,
 *     and forgets a deleted user's key once invalidated;
 *   - the node pool puts, reads (whole and ranges) and deletes chunks on a real node; the
 *     node's own refusals (bad checksum, unknown chunk) come back as such;
 *   - the garbage collector: chunks put on the nodes directly and queued with GC_ENQUEUE are
 *     deleted from their nodes and the queue is emptied (several batches, plus ids no node
 *     has); with one node stopped its entries stay queued (tried and held while it is
 *     silent, not even tried once meta marks it DOWN) and are collected once it is back;
 *     entries of a REMOVED node are dropped; the periodic collector empties the queue by
 *     itself.
 * lode-meta runs with node-suspect-after = 1s and node-down-after = 2s.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>
#include <lode/errno.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/meta_async.h"
#include "common/meta_client.h"
#include "common/metrics.h"
#include "common/rpc_sync.h"
#include "gateway/cluster.h"
#include "gateway/gc.h"
#include "gateway/nodepool.h"
#include "tests/lib/gw_fixture.h"
#include "tests/lib/loop.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 5000
#define REGISTER_MS 15000
#define PER_NODE 20
#define GHOSTS 2
#define MAX_REFS 64

static uv_loop_t loop;
static struct tl_gw_fixture fx;

struct ref {
    uint32_t nid;
    uint8_t id[16];
};

static int gc_enqueue(const struct ref *refs, size_t n)
{
    Lode__ChunkRef cr[MAX_REFS], *crp[MAX_REFS];
    for (size_t i = 0; i < n; i++) {
        lode__chunk_ref__init(&cr[i]);
        cr[i].nid = refs[i].nid;
        cr[i].chunk_id.data = (uint8_t *)refs[i].id;
        cr[i].chunk_id.len = 16;
        crp[i] = &cr[i];
    }
    Lode__GcEnqueue g = LODE__GC_ENQUEUE__INIT;
    g.n_chunks = n;
    g.chunks = crp;
    g.reason = (char *)"test";
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.op_case = LODE__COMMAND__OP_GC_ENQUEUE;
    cmd.gc_enqueue = &g;
    struct tl_commit_result out;
    int rc = tl_commit(fx.mc, CMN_RPC_GC_ENQUEUE, &cmd, T_MS, &out);
    if (rc)
        diag("GC_ENQUEUE: %s", out.message);
    return rc;
}

/* The whole queue as meta lists it: entries, and how many name `nid` (when not 0). */
static int gc_queue(uint32_t nid, size_t *n_for_nid)
{
    Lode__GcListResponse *l = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (tl_meta_gc_list(fx.mc, 10000, T_MS, &l, &err) != 0) {
        diag("%s", cmn_err_text(&err));
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < l->n_entries; i++)
        k += l->entries[i]->chunk && l->entries[i]->chunk->nid == nid;
    if (n_for_nid)
        *n_for_nid = k;
    int n = (int)l->n_entries;
    lode__gc_list_response__free_unpacked(l, NULL);
    return n;
}

/* Puts `count` random chunks on node i directly (not through the pool), appending refs. */
static void put_direct(unsigned i, unsigned count, struct ref *refs, size_t *n)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    if (tl_node_connect(fx.nodes[i], T_MS, &c, &err) != 0)
        tap_bail("connect to node %u: %s", i, cmn_err_text(&err));
    uint8_t data[3000];
    for (unsigned k = 0; k < count; k++) {
        struct ref *r = &refs[(*n)++];
        r->nid = fx.nids[i];
        struct cmn_id id = cmn_id_random();
        memcpy(r->id, id.b, 16);
        tl_fill(data, sizeof(data), (uint64_t)k * 31 + i);
        struct cmn_rpc_result res;
        cmn_rpc_result_init(&res);
        if (tl_chunk_put(c, r->id, data, sizeof(data), T_MS, &res) != 0)
            tap_bail("direct put on node %u: %s", i, res.message);
        cmn_rpc_result_free(&res);
    }
    cmn_rpc_sync_close(c);
}

/* How many of refs (those on node i) still exist there. */
static size_t present(unsigned i, const struct ref *refs, size_t n)
{
    struct cmn_rpc_sync *c = NULL;
    if (tl_node_connect(fx.nodes[i], T_MS, &c, NULL) != 0)
        return (size_t)-1;
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        if (refs[j].nid != fx.nids[i])
            continue;
        struct cmn_rpc_result res;
        cmn_rpc_result_init(&res);
        int rc = tl_chunk_stat(c, refs[j].id, 16, T_MS, &res, NULL);
        if (rc != LODE_ENOCHUNK)
            k++;
        cmn_rpc_result_free(&res);
    }
    cmn_rpc_sync_close(c);
    return k;
}

/* ---- access keys ----------------------------------------------------------------------- */

struct lookup {
    struct gw_keys_req req;
    atomic_int fired;
};

static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void *data)
{
    (void)data;
    return fake_now;
}

static uint64_t fetches(struct gw_keys *k)
{
    struct gw_keys_stats st;
    gw_keys_stats(k, &st);
    return st.fetches;
}

static void on_key(struct gw_keys_req *req)
{
    atomic_fetch_add(&((struct lookup *)req->data)->fired, 1);
}

static int lookup(struct gw_keys *k, struct cmn_meta_async *ma, const char *key,
                  struct lookup *l)
{
    memset(l, 0, sizeof(*l));
    l->req.data = l;
    l->req.cb = on_key;
    int rc = gw_keys_lookup(k, ma, key, strlen(key), &l->req);
    if (rc == 0)
        tl_loop_run_until(&loop, &l->fired, T_MS);
    return rc;
}

static void test_keys(struct cmn_meta_async *ma)
{
    Lode__CreateUser cu = LODE__CREATE_USER__INIT;
    cu.name = (char *)"alice";
    cu.access_key = (char *)"";
    cu.secret_key = (char *)"";
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_CREATE_USER;
    cmd.create_user = &cu;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = cmn_meta_client_call(fx.mc, CMN_RPC_USER_CREATE, &cmd.base, T_MS, &res);
    Lode__UserCreateResponse *u =
        rc ? NULL : lode__user_create_response__unpack(NULL, res.body.len, res.body.data);
    cmn_rpc_result_free(&res);
    if (!u)
        tap_bail("USER_CREATE: %s", lode_strerror(rc));
    char ak[200], sk[200];
    snprintf(ak, sizeof(ak), "%s", u->access_key);
    snprintf(sk, sizeof(sk), "%s", u->secret_key);
    lode__user_create_response__free_unpacked(u, NULL);

    struct gw_keys_config kc = GW_KEYS_CONFIG_DEFAULT;
    kc.clock_ms = fake_clock;
    struct gw_keys *k;
    if (gw_keys_create(&kc, &k))
        tap_bail("gw_keys_create");
    struct lookup l;
    is_int(lookup(k, ma, ak, &l), 0, "the new user's key is fetched from meta");
    ok(l.fired == 1 && l.req.key.status == 0 && strcmp(l.req.key.user, "alice") == 0 &&
           l.req.key.secret_len == strlen(sk) && memcmp(l.req.key.secret, sk, strlen(sk)) == 0,
       "... with the secret USER_CREATE returned and the user name (%s)", l.req.key.message);
    gw_key_wipe(&l.req.key);
    is_int(lookup(k, ma, ak, &l), GW_KEYS_HIT, "asked again: a cache hit");
    fake_now += 60000 - 1;
    is_int(lookup(k, ma, ak, &l), GW_KEYS_HIT, "still a hit 1ms before the TTL (60s)");
    fake_now += 1;
    is_int(lookup(k, ma, ak, &l), 0, "expired at the TTL: meta is asked again");
    ok(l.req.key.status == 0 && memcmp(l.req.key.secret, sk, strlen(sk)) == 0 &&
           fetches(k) == 2,
       "... and answers with the secret again");

    const char *nobody = "LKNOSUCHKEY000000000";
    is_int(lookup(k, ma, nobody, &l), 0, "an unknown key is asked about");
    ok(l.req.key.status == LODE_ENOACCESSKEY && strstr(l.req.key.message, nobody) &&
           l.req.key.secret_len == 0,
       "... and meta says it does not exist (%s)", l.req.key.message);
    uint64_t f0 = fetches(k);
    is_int(lookup(k, ma, nobody, &l), GW_KEYS_HIT, "asked again: the negative cache answers");
    ok(l.req.key.status == LODE_ENOACCESSKEY && fetches(k) == f0,
       "... unknown, without asking meta");
    fake_now += 5000;
    is_int(lookup(k, ma, nobody, &l), 0, "after the negative TTL (5s) meta is asked again");

    const char *malformed[] = {"", "with space", "tab\tkey", "\x01" "ctl", "non-ascii\xc3\xa9"};
    f0 = fetches(k);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        int got = lookup(k, ma, malformed[i], &l);
        ok(got == GW_KEYS_HIT && l.req.key.status == LODE_ENOACCESSKEY &&
               strstr(l.req.key.message, "malformed"),
           "malformed id %zu answered unknown at once", i);
    }
    char long_id[130];
    memset(long_id, 'A', 129);
    long_id[129] = '\0';
    is_int(lookup(k, ma, long_id, &l), GW_KEYS_HIT, "a 129-character id is malformed");
    long_id[128] = '\0';
    is_int(lookup(k, ma, long_id, &l), 0, "a 128-character one is asked about");
    is_int(l.req.key.status, LODE_ENOACCESSKEY, "... (meta does not know it)");
    is_int(fetches(k), f0 + 1, "malformed ids never reach meta");

    Lode__DeleteUser du = LODE__DELETE_USER__INIT;
    du.name = (char *)"alice";
    Lode__Command dc = LODE__COMMAND__INIT;
    dc.op_case = LODE__COMMAND__OP_DELETE_USER;
    dc.delete_user = &du;
    is_int(tl_commit(fx.mc, CMN_RPC_USER_DELETE, &dc, T_MS, NULL), 0, "the user is deleted");
    is_int(lookup(k, ma, ak, &l), GW_KEYS_HIT, "the cached key still answers (key-cache-ttl)");
    gw_keys_invalidate(k, ak, strlen(ak));
    is_int(lookup(k, ma, ak, &l), 0, "invalidated: asked again");
    is_int(l.req.key.status, LODE_ENOACCESSKEY, "... and now unknown");
    gw_key_wipe(&l.req.key);
    gw_keys_destroy(k);
}

/* ---- the node pool --------------------------------------------------------------------- */

struct call {
    struct gw_chunk_req req;
    atomic_int fired;
    int status;
    uint8_t *got;
    size_t got_len;
};

static void on_chunk(struct gw_chunk_req *req)
{
    struct call *c = req->data;
    c->status = req->status;
    free(c->got);
    c->got = NULL;
    c->got_len = req->payload_len;
    if (req->payload) {
        c->got = malloc(req->payload_len);
        memcpy(c->got, req->payload, req->payload_len);
    }
    atomic_fetch_add(&c->fired, 1);
}

static struct gw_chunk_req *fresh(struct call *c)
{
    free(c->got);
    memset(c, 0, sizeof(*c));
    c->req.data = c;
    c->req.cb = on_chunk;
    return &c->req;
}

static int outcome(struct call *c, int submitted)
{
    if (submitted != 0)
        return submitted;
    tl_loop_run_until(&loop, &c->fired, T_MS);
    return c->status;
}

static void test_pool(struct gw_nodepool *p)
{
    size_t len = 256 * 1024;
    uint8_t *data = malloc(len);
    tl_fill(data, len, 77);
    uint64_t h = tl_xxh3(data, len);
    struct cmn_id id = cmn_id_random();
    struct call c = {0};
    is_int(outcome(&c, gw_nodepool_put(p, fresh(&c), fx.nids[0], id.b, data, len, h, T_MS)), 0,
           "a 256KiB chunk put through the pool");
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), fx.nids[0], id.b, 0, 0, T_MS)), 0,
           "read back whole");
    ok(c.got_len == len && memcmp(c.got, data, len) == 0, "... byte for byte");
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), fx.nids[0], id.b, 100000, 4096, T_MS)), 0,
           "a 4KiB range at 100000");
    ok(c.got_len == 4096 && memcmp(c.got, data + 100000, 4096) == 0, "... the right bytes");
    struct cmn_id id2 = cmn_id_random();
    is_int(outcome(&c, gw_nodepool_put(p, fresh(&c), fx.nids[0], id2.b, data, len, h ^ 1, T_MS)),
           LODE_ECORRUPT, "a put with the wrong checksum is refused by the node");
    is_int(outcome(&c, gw_nodepool_delete(p, fresh(&c), fx.nids[0], id.b, T_MS)), 0, "delete");
    struct ref r = {.nid = fx.nids[0]};
    memcpy(r.id, id.b, 16);
    is_int(present(0, &r, 1), 0, "the node no longer has it");
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), fx.nids[0], id.b, 0, 0, T_MS)), LODE_ENOCHUNK,
           "reading it: no such chunk");
    struct gw_nodepool_node_stats ns;
    gw_nodepool_node_stats(p, fx.nids[0], &ns);
    ok(ns.calls == 6 && ns.transport_failures == 0 && !ns.on_hold && ns.connects == 1,
       "six calls on one connection, no transport failure");
    fresh(&c);
    free(data);
}

/* ---- the collector --------------------------------------------------------------------- */

struct pass_wait {
    atomic_int done;
    struct gw_gc_pass pass;
};

static void on_pass(void *data, const struct gw_gc_pass *pass)
{
    struct pass_wait *w = data;
    w->pass = *pass;
    atomic_store(&w->done, 1);
}

static struct gw_gc_pass run_pass(struct gw_gc *gc)
{
    struct pass_wait w;
    memset(&w, 0, sizeof(w));
    int rc = gw_gc_run(gc, on_pass, &w);
    if (rc) {
        w.pass.status = rc;
        return w.pass;
    }
    if (!tl_loop_run_until(&loop, &w.done, 30000))
        w.pass.status = LODE_ETIMEOUT;
    return w.pass;
}

static void test_gc(struct cmn_meta_async *ma, struct gw_cluster *cl, struct gw_nodepool *p)
{
    struct cmn_metrics *metrics;
    cmn_metrics_create(&metrics);
    struct gw_gc_config gcfg = GW_GC_CONFIG_DEFAULT;
    gcfg.loop = &loop;
    gcfg.meta = ma;
    gcfg.pool = p;
    gcfg.cluster = cl;
    gcfg.batch = 16;
    gcfg.parallel = 4;
    gcfg.delete_timeout_ms = 2000;
    gcfg.meta_timeout_ms = T_MS;
    gcfg.interval_ms = 300;
    gcfg.metrics = metrics;
    struct gw_gc *gc;
    is_int(gw_gc_create(&gcfg, &gc), 0, "collector created");
    is_int(gc_queue(0, NULL), 0, "the queue starts empty");

    /* Chunks on both nodes, and ids no node has. */
    struct ref refs[MAX_REFS];
    size_t n = 0;
    put_direct(0, PER_NODE, refs, &n);
    put_direct(1, PER_NODE, refs, &n);
    for (int g = 0; g < GHOSTS; g++) {
        refs[n].nid = fx.nids[g];
        struct cmn_id id = cmn_id_random();
        memcpy(refs[n++].id, id.b, 16);
    }
    ok(present(0, refs, n) == PER_NODE && present(1, refs, n) == PER_NODE,
       "%d chunks on each node", PER_NODE);
    is_int(gc_enqueue(refs, n), 0, "%zu chunks queued for collection", n);
    is_int(gc_queue(0, NULL), (int)n, "meta lists them");
    struct gw_gc_pass pass = run_pass(gc);
    is_int(pass.status, 0, "a pass completes (%s)", pass.message);
    ok(pass.listed == n && pass.deleted == n && pass.acked == n && pass.skipped == 0 &&
           pass.failed == 0,
       "listed %llu, deleted %llu (ghosts included), acknowledged %llu, in batches of 16",
       (unsigned long long)pass.listed, (unsigned long long)pass.deleted,
       (unsigned long long)pass.acked);
    ok(present(0, refs, n) == 0 && present(1, refs, n) == 0, "the chunks are gone from both "
       "nodes");
    is_int(gc_queue(0, NULL), 0, "the queue is empty");
    pass = run_pass(gc);
    ok(pass.status == 0 && pass.listed == 0 && pass.deleted == 0, "a pass over an empty queue "
       "does nothing");
    struct cmn_buf text;
    cmn_buf_init(&text);
    cmn_metrics_render(metrics, &text);
    cmn_buf_terminate(&text);
    char want[64];
    snprintf(want, sizeof(want), "lode_gateway_gc_collected_total %zu", n);
    ok(strstr((char *)text.data, want) != NULL, "metrics: %s", want);
    cmn_buf_free(&text);

    /* Node 2 stopped: its entries stay queued until it is back. */
    n = 0;
    put_direct(0, 10, refs, &n);
    put_direct(1, 10, refs, &n);
    is_int(gc_enqueue(refs, n), 0, "20 more chunks queued, 10 per node");
    is_int(tl_node_kill(fx.nodes[1], SIGTERM), 0, "node 2 stopped");
    pass = run_pass(gc);
    size_t left = 0;
    ok(pass.status == 0 && pass.deleted == 10 && pass.skipped + pass.failed == 10,
       "a pass deletes node 1's 10 and leaves node 2's (%llu failed, %llu skipped)",
       (unsigned long long)pass.failed, (unsigned long long)pass.skipped);
    ok(gc_queue(fx.nids[1], &left) == 10 && left == 10, "exactly node 2's 10 entries are queued");
    is_int(present(0, refs, n), 0, "node 1's chunks are gone");
    struct gw_nodepool_node_stats ns;
    gw_nodepool_node_stats(p, fx.nids[1], &ns);
    ok(ns.transport_failures >= 1, "the stopped node counted a transport failure (%llu)",
       (unsigned long long)ns.transport_failures);
    pass = run_pass(gc);
    ok(pass.status == 0 && pass.skipped + pass.failed == 10 && pass.deleted == 0 &&
           gc_queue(0, NULL) == 10,
       "a pass while it is still stopped keeps them");
    ok(tl_gw_fixture_wait_state(&fx, fx.nids[1], LODE__NODE_STATE__NODE_DOWN, 10000),
       "meta marks node 2 DOWN and the refresher sees it");
    gw_nodepool_node_stats(p, fx.nids[1], &ns);
    uint64_t calls = ns.calls;
    pass = run_pass(gc);
    gw_nodepool_node_stats(p, fx.nids[1], &ns);
    ok(pass.status == 0 && pass.skipped == 10 && ns.calls == calls,
       "with node 2 DOWN its entries are skipped without calling it");

    struct cmn_err err;
    if (tl_node_run(fx.nodes[1], &err) != 0)
        tap_bail("restart node 2: %s", cmn_err_text(&err));
    ok(tl_gw_fixture_wait_state(&fx, fx.nids[1], LODE__NODE_STATE__NODE_UP, REGISTER_MS),
       "node 2 is back UP in the map");
    uint64_t deadline = cmn_mono_ms() + 10000;
    unsigned passes = 0;
    do {
        pass = run_pass(gc);
        passes++;
        if (gc_queue(0, NULL) == 0)
            break;
        tl_loop_run_for(&loop, 200);
    } while (cmn_mono_ms() < deadline);
    is_int(gc_queue(0, NULL), 0, "once it is back the queue empties (%u pass(es))", passes);
    is_int(present(1, refs, n), 0, "node 2's chunks are gone");

    /* Entries of a removed node are dropped without a delete. */
    n = 0;
    put_direct(1, 2, refs, &n);
    is_int(gc_enqueue(refs, n), 0, "2 chunks of node 2 queued");
    Lode__SetNodeState ss = LODE__SET_NODE_STATE__INIT;
    ss.nid = fx.nids[1];
    ss.state = LODE__NODE_STATE__NODE_REMOVED;
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.op_case = LODE__COMMAND__OP_SET_NODE_STATE;
    cmd.set_node_state = &ss;
    is_int(tl_commit(fx.mc, CMN_RPC_NODE_SET_STATE, &cmd, T_MS, NULL), 0, "node 2 removed");
    ok(tl_gw_fixture_wait_state(&fx, fx.nids[1], LODE__NODE_STATE__NODE_REMOVED, T_MS),
       "the refresher sees it REMOVED");
    pass = run_pass(gc);
    ok(pass.status == 0 && pass.gone == 2 && pass.acked == 2 && pass.deleted == 0,
       "its entries are dropped from the queue (%llu)", (unsigned long long)pass.gone);
    is_int(gc_queue(0, NULL), 0, "the queue is empty");

    /* The periodic collector, with nobody asking. */
    n = 0;
    put_direct(0, 3, refs, &n);
    is_int(gc_enqueue(refs, n), 0, "3 chunks of node 1 queued");
    is_int(gw_gc_start(gc), 0, "periodic passes started (every 300ms)");
    deadline = cmn_mono_ms() + 5000;
    while (gc_queue(0, NULL) != 0 && cmn_mono_ms() < deadline)
        tl_loop_run_for(&loop, 100);
    is_int(gc_queue(0, NULL), 0, "the periodic collector empties the queue");
    is_int(present(0, refs, n), 0, "... and deletes the chunks");
    atomic_int closed = 0;
    gw_gc_close(gc, tl_loop_done_flag, &closed);
    ok(tl_loop_run_until(&loop, &closed, T_MS), "the collector closes");
    cmn_metrics_destroy(metrics);
}

int main(void)
{
    cmn_log_init("test_gw_gc", CMN_LOG_ERROR);
    uv_loop_init(&loop);
    struct cmn_err err;
    cmn_err_clear(&err);
    struct tl_gw_fixture_options fo = TL_GW_FIXTURE_OPTIONS_DEFAULT;
    fo.name = "gwgc";
    fo.n_nodes = 2;
    fo.call_timeout_ms = T_MS;
    fo.register_timeout_ms = REGISTER_MS;
    fo.fail_hold_ms = 200;
    if (tl_gw_fixture_start(&fx, &loop, &fo, &err) != 0)
        tap_bail("%s", cmn_err_text(&err));
    ok(tl_gw_fixture_wait_state(&fx, fx.nids[0], LODE__NODE_STATE__NODE_UP, T_MS) &&
           tl_gw_fixture_wait_state(&fx, fx.nids[1], LODE__NODE_STATE__NODE_UP, T_MS),
       "the refresher publishes both nodes UP");
    struct gw_cluster_map *m = gw_cluster_map_get(fx.cl);
    const struct gw_map_node *mn = gw_cluster_map_find(m, fx.nids[0]);
    ok(mn && strcmp(mn->address, fx.nodes[0]->rpc_addr) == 0 &&
           strcmp(mn->failure_domain, "fd-1") == 0,
       "node 1's address and failure domain as registered");
    gw_cluster_map_put(m);

    test_keys(fx.ma);
    test_pool(fx.pool);
    test_gc(fx.ma, fx.cl, fx.pool);

    tl_gw_fixture_close(&fx);
    is_int(uv_loop_close(&loop), 0, "every handle closed");
    is_int(tl_gw_fixture_crash_count(&fx), 0, "no daemon crashed");
    int rc = tap_done();
    tl_gw_fixture_destroy(&fx, rc != 0);
    return rc;
}
