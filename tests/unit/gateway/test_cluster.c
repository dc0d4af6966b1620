/* The gateway's shared links to the cluster, in-process:
 *   - cluster-map snapshots: building from meta's answer (sorting, refusals), lookups, and
 *     reference counting under concurrent reader threads while a publisher swaps maps;
 *   - the refresher against a fake lode-meta (a real cmn_rpc_server on loopback, on the
 *     test's loop): first fetch, gw_cluster_wait_ready from another thread, periodic
 *     refresh, kicks (and their coalescing), bad maps and errors keeping the old map, stop;
 *   - the access-key cache against the same fake: hit, miss, errors not cached,
 *     coalescing of concurrent misses per loop, cancel, LRU eviction, the bounds on
 *     unknown keys and on fetches in flight, closing with a fetch in flight (TTLs,
 *     the negative cache and malformed ids are tested against a real lode-meta in
 *     tests/integration/test_gw_gc.c);
 *   - the node pool against a fake lode-node: put/get/delete, replies that do not match the
 *     request, unknown nodes, refused connections and the hold, a node moving to another
 *     address, idle connections closed, closing with calls in flight.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <uv.h>
#include <lode/errno.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/meta_async.h"
#include "common/rpc.h"
#include "gateway/cluster.h"
#include "gateway/nodepool.h"
#include "tests/lib/loop.h"
#include "tests/tap.h"

#define SECRET "cluster-test-secret-0123456789"
#define MAX_HELD 16

static uv_loop_t loop;

/* An address where nobody listens: bind a free port, then let it go. */
static void dead_address(char *out, size_t size)
{
    uv_tcp_t t;
    struct sockaddr_in sa, got;
    int len = sizeof(got);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&loop, &t);
    uv_tcp_bind(&t, (const struct sockaddr *)&sa, 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
    snprintf(out, size, "127.0.0.1:%d", ntohs(got.sin_port));
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- a fake lode-meta and a fake lode-node ---------------------------------------------- */

struct fake_chunk {
    uint8_t id[16];
    uint8_t *data;
    size_t len;
    uint64_t xxh3;
};

struct fake {
    struct cmn_rpc_server *srv;
    char addr[64];
    int requests;
    /* meta: CLUSTER_MAP_GET */
    uint64_t epoch;
    unsigned n_nodes;
    const char *node_addr[4];
    bool bad_map;                  /* answer a map listing one nid twice */
    int map_error;                 /* answer this error instead */
    int map_requests;
    /* meta: ACCESS_KEY_GET */
    int key_requests;
    char last_key[160];
    /* node: chunk calls */
    struct fake_chunk chunks[8];
    bool lie_put;                  /* acknowledge another checksum */
    bool lie_get;                  /* answer one byte short */
    /* both */
    bool mute;                     /* hold every call */
    struct cmn_rpc_call *held[MAX_HELD];
    unsigned n_held;
};

static void reply_map(struct fake *f, struct cmn_rpc_call *call)
{
    f->map_requests++;
    if (f->map_error) {
        cmn_rpc_reply_error(call, f->map_error, NULL, 0, "fake meta refuses");
        return;
    }
    Lode__NodeInfo ni[4], *np[4];
    for (unsigned i = 0; i < f->n_nodes; i++) {
        lode__node_info__init(&ni[i]);
        ni[i].nid = f->bad_map ? 7 : 10 - i; /* out of order on purpose */
        ni[i].address = (char *)f->node_addr[i];
        ni[i].failure_domain = (char *)"fd";
        ni[i].state = LODE__NODE_STATE__NODE_UP;
        ni[i].used_bytes = f->epoch * 1000 + i;
        np[i] = &ni[i];
    }
    Lode__ClusterMap m = LODE__CLUSTER_MAP__INIT;
    m.epoch = f->epoch;
    m.n_nodes = f->n_nodes;
    m.nodes = np;
    cmn_rpc_reply(call, &m.base);
}

static void reply_key(struct fake *f, struct cmn_rpc_call *call)
{
    size_t len;
    const uint8_t *body = cmn_rpc_call_body(call, &len);
    Lode__AccessKeyRequest *q = lode__access_key_request__unpack(NULL, len, body);
    f->key_requests++;
    snprintf(f->last_key, sizeof(f->last_key), "%s", q && q->access_key ? q->access_key : "");
    if (q)
        lode__access_key_request__free_unpacked(q, NULL);
    if (strcmp(f->last_key, "AKIDERR") == 0) {
        cmn_rpc_reply_error(call, LODE_EINTERNAL, NULL, 0, "fake meta is broken");
        return;
    }
    if (strncmp(f->last_key, "AKID", 4) != 0) {
        cmn_rpc_reply_error(call, LODE_ENOACCESSKEY, NULL, 0, "no such access key");
        return;
    }
    /* Every known key's secret is "secret-for-" + the key, its user "user-" + the key. */
    char secret[200], user[200];
    snprintf(secret, sizeof(secret), "secret-for-%s", f->last_key);
    snprintf(user, sizeof(user), "user-%s", f->last_key);
    Lode__AccessKeyRecord r = LODE__ACCESS_KEY_RECORD__INIT;
    r.access_key = f->last_key;
    r.secret_key = secret;
    r.user = user;
    cmn_rpc_reply(call, &r.base);
}

static struct fake_chunk *chunk_find(struct fake *f, const uint8_t *id)
{
    for (int i = 0; i < 8; i++)
        if (f->chunks[i].data && memcmp(f->chunks[i].id, id, 16) == 0)
            return &f->chunks[i];
    return NULL;
}

static void reply_info(struct cmn_rpc_call *call, const uint8_t *id, uint64_t len, uint64_t xxh3,
                       const void *payload, size_t payload_len)
{
    Lode__ChunkInfo ci = LODE__CHUNK_INFO__INIT;
    ci.chunk_id.data = (uint8_t *)id;
    ci.chunk_id.len = 16;
    ci.length = len;
    ci.xxh3 = xxh3;
    uint8_t body[128];
    size_t n = lode__chunk_info__pack(&ci, body);
    cmn_rpc_reply_raw(call, body, n, payload, payload_len);
}

static void reply_chunk(struct fake *f, struct cmn_rpc_call *call, unsigned method)
{
    size_t len, plen;
    const uint8_t *body = cmn_rpc_call_body(call, &len);
    const uint8_t *payload = cmn_rpc_call_payload(call, &plen);
    if (method == CMN_RPC_CHUNK_PUT) {
        Lode__ChunkPutRequest *q = lode__chunk_put_request__unpack(NULL, len, body);
        struct fake_chunk *c = NULL;
        for (int i = 0; i < 8 && !c; i++)
            if (!f->chunks[i].data)
                c = &f->chunks[i];
        if (!q || !c || q->chunk_id.len != 16) {
            cmn_rpc_reply_error(call, LODE_ENOSPACE, NULL, 0, "fake node full");
            if (q)
                lode__chunk_put_request__free_unpacked(q, NULL);
            return;
        }
        memcpy(c->id, q->chunk_id.data, 16);
        c->data = malloc(plen);
        memcpy(c->data, payload, plen);
        c->len = plen;
        c->xxh3 = q->xxh3;
        reply_info(call, c->id, plen, f->lie_put ? q->xxh3 + 1 : q->xxh3, NULL, 0);
        lode__chunk_put_request__free_unpacked(q, NULL);
    } else if (method == CMN_RPC_CHUNK_GET) {
        Lode__ChunkGetRequest *q = lode__chunk_get_request__unpack(NULL, len, body);
        struct fake_chunk *c = chunk_find(f, q->chunk_id.data);
        if (!c) {
            cmn_rpc_reply_error(call, LODE_ENOCHUNK, NULL, 0, "no such chunk");
        } else {
            uint64_t n = q->length ? q->length : c->len - q->offset;
            reply_info(call, c->id, c->len, c->xxh3, c->data + q->offset,
                       f->lie_get ? n - 1 : n);
        }
        lode__chunk_get_request__free_unpacked(q, NULL);
    } else {
        Lode__ChunkIdRequest *q = lode__chunk_id_request__unpack(NULL, len, body);
        struct fake_chunk *c = chunk_find(f, q->chunk_id.data);
        if (!c) {
            cmn_rpc_reply_error(call, LODE_ENOCHUNK, NULL, 0, "no such chunk");
        } else {
            reply_info(call, c->id, c->len, c->xxh3, NULL, 0);
            free(c->data);
            c->data = NULL;
        }
        lode__chunk_id_request__free_unpacked(q, NULL);
    }
}

static void fake_handler(void *data, struct cmn_rpc_call *call)
{
    struct fake *f = data;
    f->requests++;
    unsigned method = cmn_rpc_call_method(call);
    if (f->mute && f->n_held < MAX_HELD) {
        f->held[f->n_held++] = call;
        return;
    }
    switch (method) {
    case CMN_RPC_CLUSTER_MAP_GET:
        reply_map(f, call);
        break;
    case CMN_RPC_ACCESS_KEY_GET:
        reply_key(f, call);
        break;
    case CMN_RPC_CHUNK_PUT:
    case CMN_RPC_CHUNK_GET:
    case CMN_RPC_CHUNK_DELETE:
        reply_chunk(f, call, method);
        break;
    default:
        cmn_rpc_reply_error(call, LODE_ENOMETHOD, NULL, 0, "fake: unknown method");
    }
}

/* Answers the held calls as if they had just arrived. */
static void fake_release(struct fake *f)
{
    f->mute = false;
    unsigned n = f->n_held;
    f->n_held = 0;
    for (unsigned i = 0; i < n; i++) {
        f->requests--;
        fake_handler(f, f->held[i]);
    }
}

static void fake_start(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    struct cmn_rpc_server_config sc = {
        .service = "fake",
        .secret = SECRET,
        .secret_len = strlen(SECRET),
        .handler = fake_handler,
        .data = f,
    };
    struct cmn_err err;
    cmn_err_clear(&err);
    if (cmn_rpc_server_create(&loop, &sc, &f->srv) ||
        cmn_rpc_server_listen(f->srv, "127.0.0.1:0", &err))
        tap_bail("fake server: %s", cmn_err_text(&err));
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", cmn_rpc_server_port(f->srv));
}

static void fake_stop(struct fake *f)
{
    for (unsigned i = 0; i < f->n_held; i++)
        cmn_rpc_reply_error(f->held[i], LODE_ESHUTDOWN, NULL, 0, "fake stopping");
    f->n_held = 0;
    atomic_int closed = 0;
    cmn_rpc_server_close(f->srv, tl_loop_done_flag, &closed);
    tl_loop_run_until(&loop, &closed, 5000);
    for (int i = 0; i < 8; i++)
        free(f->chunks[i].data);
}

static struct cmn_meta_async *meta_client(const char *addr)
{
    struct cmn_meta_async_config mc = {
        .addrs = addr, .secret = SECRET, .secret_len = strlen(SECRET),
        .connect_timeout_ms = 500};
    struct cmn_meta_async *ma;
    struct cmn_err err;
    if (cmn_meta_async_create(&loop, &mc, &ma, &err))
        tap_bail("meta client: %s", cmn_err_text(&err));
    return ma;
}

static void meta_close(struct cmn_meta_async *ma)
{
    atomic_int closed = 0;
    cmn_meta_async_close(ma, tl_loop_done_flag, &closed);
    tl_loop_run_until(&loop, &closed, 5000);
}

/* ---- snapshots ------------------------------------------------------------------------- */

static Lode__NodeInfo *node_info(Lode__NodeInfo *ni, uint32_t nid, const char *addr,
                                 Lode__NodeState st)
{
    lode__node_info__init(ni);
    ni->nid = nid;
    ni->address = (char *)addr;
    ni->failure_domain = (char *)"rack1";
    ni->state = st;
    return ni;
}

static void test_snapshot(void)
{
    Lode__NodeInfo ni[4], *np[4];
    char addr[3][32] = {"10.0.0.3:7201", "10.0.0.1:7201", "10.0.0.2:7201"};
    np[0] = node_info(&ni[0], 30, addr[0], LODE__NODE_STATE__NODE_UP);
    np[1] = node_info(&ni[1], 10, addr[1], LODE__NODE_STATE__NODE_SUSPECT);
    np[2] = node_info(&ni[2], 20, addr[2], LODE__NODE_STATE__NODE_DOWN);
    Lode__ClusterMap pb = LODE__CLUSTER_MAP__INIT;
    pb.epoch = 42;
    pb.n_nodes = 3;
    pb.nodes = np;
    struct gw_cluster_map *m;
    struct cmn_err err;
    is_int(gw_cluster_map_from_proto(&pb, 1234, &m, &err), 0, "a map of three nodes builds");
    ok(m->n_nodes == 3 && m->nodes[0].nid == 10 && m->nodes[1].nid == 20 &&
           m->nodes[2].nid == 30,
       "nodes sorted by nid");
    strcpy(addr[1], "overwritten:1");
    const struct gw_map_node *n = gw_cluster_map_find(m, 10);
    ok(n && strcmp(n->address, "10.0.0.1:7201") == 0 && strcmp(n->failure_domain, "rack1") == 0
           && strcmp(n->data_address, "") == 0,
       "strings are the snapshot's own copies");
    ok(!gw_cluster_map_find(m, 15) && !gw_cluster_map_find(m, 0) && !gw_cluster_map_find(m, 31),
       "unknown nids are not found");
    ok(gw_map_node_writable(gw_cluster_map_find(m, 30)) &&
           !gw_map_node_writable(gw_cluster_map_find(m, 10)) &&
           !gw_map_node_writable(gw_cluster_map_find(m, 20)),
       "only UP nodes take new chunks");
    ok(gw_map_node_readable(gw_cluster_map_find(m, 30)) &&
           gw_map_node_readable(gw_cluster_map_find(m, 10)) &&
           !gw_map_node_readable(gw_cluster_map_find(m, 20)),
       "UP and SUSPECT nodes are read from, DOWN ones are not");
    ok(m->epoch == 42 && m->fetched_ms == 1234 && gw_cluster_map_refs(m) == 1,
       "epoch, fetch time and one reference");
    gw_cluster_map_hold(m);
    is_int(gw_cluster_map_refs(m), 2, "hold adds a reference");
    gw_cluster_map_put(m);
    gw_cluster_map_put(m);
    gw_cluster_map_put(NULL);
    ok(1, "the last put frees it (ASan checks), put(NULL) is harmless");

    struct {
        uint32_t nid1, nid2;
        const char *addr2;
        const char *needle;
        const char *what;
    } bad[] = {
        {1, 0, "10.0.0.2:7201", "no node id", "a node with nid 0"},
        {1, 1, "10.0.0.2:7201", "twice", "a repeated nid"},
        {1, 2, "", "no usable address", "an empty address"},
        {1, 2, "10.0.0.2", "no usable address", "an address without a port"},
        {1, 2, "10.0.0.2:0", "no usable address", "port 0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        node_info(&ni[0], bad[i].nid1, "10.0.0.1:7201", LODE__NODE_STATE__NODE_UP);
        node_info(&ni[1], bad[i].nid2, bad[i].addr2, LODE__NODE_STATE__NODE_UP);
        pb.n_nodes = 2;
        m = (struct gw_cluster_map *)&pb;
        int rc = gw_cluster_map_from_proto(&pb, 0, &m, &err);
        ok(rc == LODE_EBADMSG && m == NULL && strstr(err.msg, bad[i].needle),
           "%s is refused (%s)", bad[i].what, err.msg);
    }
    pb.n_nodes = 0;
    is_int(gw_cluster_map_from_proto(&pb, 0, &m, &err), 0, "an empty map is valid");
    ok(m->n_nodes == 0 && !gw_cluster_map_find(m, 1), "... with no nodes");
    gw_cluster_map_put(m);
}

/* Publisher and readers: every snapshot a reader sees must be whole (each node's used_bytes
 * encodes the map's epoch), epochs never go back for one reader, and old snapshots held by
 * readers stay intact while newer ones are published. */
#define PUBLISHES 3000
#define READERS 4
#define HOLD 8

struct race {
    struct gw_cluster *c;
    atomic_int stop;
    atomic_int bad;
    atomic_long reads;
};

static struct gw_cluster_map *make_map(uint64_t epoch)
{
    Lode__NodeInfo ni[3], *np[3];
    char addr[3][32];
    for (int i = 0; i < 3; i++) {
        snprintf(addr[i], sizeof(addr[i]), "10.%u.0.%d:7201", (unsigned)(epoch % 250), i + 1);
        np[i] = node_info(&ni[i], (uint32_t)i + 1, addr[i], LODE__NODE_STATE__NODE_UP);
        ni[i].used_bytes = epoch * 1000 + (uint64_t)i;
    }
    Lode__ClusterMap pb = LODE__CLUSTER_MAP__INIT;
    pb.epoch = epoch;
    pb.n_nodes = 3;
    pb.nodes = np;
    struct gw_cluster_map *m;
    if (gw_cluster_map_from_proto(&pb, 0, &m, NULL))
        abort();
    return m;
}

static bool map_whole(const struct gw_cluster_map *m)
{
    if (m->n_nodes != 3)
        return false;
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof(want), "10.%u.0.%d:7201", (unsigned)(m->epoch % 250), i + 1);
        if (m->nodes[i].used_bytes != m->epoch * 1000 + (uint64_t)i ||
            strcmp(m->nodes[i].address, want) != 0)
            return false;
    }
    return true;
}

static void *reader(void *arg)
{
    struct race *r = arg;
    struct gw_cluster_map *held[HOLD] = {0};
    unsigned k = 0;
    uint64_t last = 0;
    while (!atomic_load(&r->stop)) {
        struct gw_cluster_map *m = gw_cluster_map_get(r->c);
        if (!m)
            continue;
        if (!map_whole(m) || m->epoch < last)
            atomic_fetch_add(&r->bad, 1);
        last = m->epoch;
        atomic_fetch_add(&r->reads, 1);
        /* Keep a few snapshots across later swaps, then check them again on release. */
        if (held[k % HOLD]) {
            if (!map_whole(held[k % HOLD]))
                atomic_fetch_add(&r->bad, 1);
            gw_cluster_map_put(held[k % HOLD]);
        }
        held[k++ % HOLD] = m;
    }
    for (unsigned i = 0; i < HOLD; i++) {
        if (held[i] && !map_whole(held[i]))
            atomic_fetch_add(&r->bad, 1);
        gw_cluster_map_put(held[i]);
    }
    return NULL;
}

static void test_snapshot_race(void)
{
    struct race r = {0};
    if (gw_cluster_create(NULL, &r.c))
        tap_bail("gw_cluster_create");
    ok(!gw_cluster_ready(r.c) && gw_cluster_map_get(r.c) == NULL,
       "no map before the first publish");
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, reader, &r);
    uint64_t gen0 = gw_cluster_generation(r.c);
    struct gw_cluster_map *first = make_map(1);
    gw_cluster_map_hold(first);
    gw_cluster_publish(r.c, first);
    for (uint64_t e = 2; e <= PUBLISHES; e++)
        gw_cluster_publish(r.c, make_map(e));
    atomic_store(&r.stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    is_int(atomic_load(&r.bad), 0, "%ld reads of %d swapped maps by %d threads: every "
           "snapshot whole, epochs never go back", atomic_load(&r.reads), PUBLISHES, READERS);
    ok(atomic_load(&r.reads) > 0, "the readers did read");
    is_int(gw_cluster_generation(r.c) - gen0, PUBLISHES, "one generation per publish");
    ok(map_whole(first) && first->epoch == 1 && gw_cluster_map_refs(first) == 1,
       "the first map, held throughout, is intact and now only ours");
    gw_cluster_map_put(first);
    struct gw_cluster_map *cur = gw_cluster_map_get(r.c);
    ok(cur && cur->epoch == PUBLISHES && gw_cluster_map_refs(cur) == 2,
       "the current map: the last published, held by the holder and us");
    gw_cluster_map_put(cur);
    struct gw_cluster_stats st;
    gw_cluster_stats(r.c, &st);
    is_int(st.epoch, PUBLISHES, "stats report the current epoch");
    gw_cluster_destroy(r.c);
    ok(1, "destroy drops the holder's reference (ASan: no leak)");
}

/* ---- the refresher --------------------------------------------------------------------- */

struct waiter {
    struct gw_cluster *c;
    uint32_t timeout_ms;
    int rc;
    char msg[CMN_ERR_MSG_MAX];
    atomic_int done;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    struct cmn_err err;
    cmn_err_clear(&err);
    w->rc = gw_cluster_wait_ready(w->c, w->timeout_ms, &err);
    snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
    atomic_store(&w->done, 1);
    return NULL;
}

/* The epoch of the current map, 0 when there is none. */
static uint64_t epoch_of(struct gw_cluster *c)
{
    struct gw_cluster_map *m = gw_cluster_map_get(c);
    uint64_t e = m ? m->epoch : 0;
    gw_cluster_map_put(m);
    return e;
}

static void *kick_thread(void *arg)
{
    for (int i = 0; i < 100; i++)
        gw_cluster_kick(arg);
    return NULL;
}

static void test_refresher(void)
{
    struct fake meta;
    fake_start(&meta);
    meta.epoch = 5;
    meta.n_nodes = 2;
    meta.node_addr[0] = "127.0.0.1:7201";
    meta.node_addr[1] = "127.0.0.1:7202";
    struct cmn_meta_async *ma = meta_client(meta.addr);
    struct gw_cluster_config cc = {.refresh_ms = 100, .kick_gap_ms = 50, .call_timeout_ms = 500};
    struct gw_cluster *c;
    is_int(gw_cluster_create(&cc, &c), 0, "cluster created");

    struct waiter w = {.c = c, .timeout_ms = 5000};
    pthread_t th;
    pthread_create(&th, NULL, wait_thread, &w);
    is_int(gw_cluster_start(c, &loop, ma), 0, "refresher started");
    is_int(gw_cluster_start(c, &loop, ma), -EALREADY, "a second start is refused");
    ok(tl_loop_run_until(&loop, &w.done, 5000), "gw_cluster_wait_ready returns in another thread");
    pthread_join(th, NULL);
    is_int(w.rc, 0, "... with success (%s)", w.msg);
    struct gw_cluster_map *m = gw_cluster_map_get(c);
    ok(m && m->epoch == 5 && m->n_nodes == 2 && m->nodes[0].nid == 9 && m->nodes[1].nid == 10 &&
           strcmp(gw_cluster_map_find(m, 10)->address, "127.0.0.1:7201") == 0,
       "the published map is meta's (epoch 5, nodes 9 and 10)");
    gw_cluster_map_put(m);

    meta.epoch = 6;
    int before = meta.map_requests;
    tl_loop_run_for(&loop, 450);
    int periodic = meta.map_requests - before;
    ok(periodic >= 2 && periodic <= 6, "refreshed every 100ms (%d fetches in 450ms)", periodic);
    is_int(epoch_of(c), 6, "the new epoch is published");

    meta.bad_map = true;
    struct gw_cluster_stats st0, st1;
    gw_cluster_stats(c, &st0);
    tl_loop_run_for(&loop, 250);
    gw_cluster_stats(c, &st1);
    ok(st1.failures > st0.failures && epoch_of(c) == 6,
       "a map listing one nid twice is refused and the last good one kept");
    meta.bad_map = false;
    meta.map_error = LODE_EINTERNAL;
    meta.epoch = 7;
    gw_cluster_stats(c, &st0);
    tl_loop_run_for(&loop, 250);
    gw_cluster_stats(c, &st1);
    ok(st1.failures > st0.failures && epoch_of(c) == 6,
       "meta answering an error: failures counted, the last map kept");
    meta.map_error = 0;
    tl_loop_run_for(&loop, 250);
    is_int(epoch_of(c), 7, "fetching works again: epoch 7");

    /* Stop with a fetch held by meta: the stop completes only when the call does. */
    meta.mute = true;
    tl_loop_run_for(&loop, 200);
    atomic_int stopped = 0;
    gw_cluster_stop(c, tl_loop_done_flag, &stopped);
    tl_loop_run_for(&loop, 100);
    ok(!atomic_load(&stopped), "stop waits for the fetch in flight");
    gw_cluster_kick(c);
    ok(1, "a kick after stop is ignored");
    meta_close(ma);
    ok(tl_loop_run_until(&loop, &stopped, 2000),
       "closing the meta client completes it; stop's callback runs");
    is_int(epoch_of(c), 7, "published maps stay readable after stop");
    gw_cluster_destroy(c);
    fake_stop(&meta);

    /* Kicks: with a 10s interval only kicks fetch; a burst costs one or two fetches. */
    fake_start(&meta);
    meta.epoch = 1;
    meta.n_nodes = 1;
    meta.node_addr[0] = "127.0.0.1:7201";
    ma = meta_client(meta.addr);
    struct gw_cluster_config kc = {.refresh_ms = 10000, .kick_gap_ms = 100};
    gw_cluster_create(&kc, &c);
    gw_cluster_start(c, &loop, ma);
    atomic_int never = 0;
    for (int i = 0; i < 200 && !gw_cluster_ready(c); i++)
        tl_loop_run_until(&loop, &never, 10);
    ok(gw_cluster_ready(c), "first map fetched at start");
    tl_loop_run_for(&loop, 150);
    before = meta.map_requests;
    meta.epoch = 2;
    uint64_t t_kick = cmn_mono_ms();
    gw_cluster_kick(c);
    while (epoch_of(c) != 2 && cmn_mono_ms() - t_kick < 5000)
        tl_loop_run_for(&loop, 5);
    is_int(epoch_of(c), 2, "a kick long after the last fetch: epoch 2 fetched and published");
    ok(cmn_mono_ms() - t_kick < 5000 && meta.map_requests - before == 1,
       "... by one fetch after %llu ms, not the 10s interval",
       (unsigned long long)(cmn_mono_ms() - t_kick));
    before = meta.map_requests;
    pthread_t kt[2];
    pthread_create(&kt[0], NULL, kick_thread, c);
    pthread_create(&kt[1], NULL, kick_thread, c);
    pthread_join(kt[0], NULL);
    pthread_join(kt[1], NULL);
    tl_loop_run_for(&loop, 350);
    int kicked = meta.map_requests - before;
    ok(kicked >= 1 && kicked <= 3, "200 kicks from two threads: %d fetches, spaced by the gap",
       kicked);
    gw_cluster_stats(c, &st1);
    ok(st1.kicks >= 2 && st1.kicks <= 201, "kicks that reached the loop are counted (%llu)",
       (unsigned long long)st1.kicks);
    stopped = 0;
    gw_cluster_stop(c, tl_loop_done_flag, &stopped);
    ok(tl_loop_run_until(&loop, &stopped, 2000), "stopped without a fetch in flight");
    gw_cluster_destroy(c);
    meta_close(ma);
    fake_stop(&meta);

    /* No meta at all: wait_ready times out and says why. */
    char dead[64];
    dead_address(dead, sizeof(dead));
    ma = meta_client(dead);
    struct gw_cluster_config dc = {.refresh_ms = 100, .call_timeout_ms = 200};
    gw_cluster_create(&dc, &c);
    gw_cluster_start(c, &loop, ma);
    tl_loop_run_for(&loop, 300);
    struct cmn_err err;
    is_int(gw_cluster_wait_ready(c, 50, &err), LODE_ETIMEOUT, "no meta: wait_ready times out");
    ok(strstr(err.msg, "no cluster map") && strstr(err.msg, "CLUSTER_MAP_GET"),
       "... naming the last fetch error (%s)", err.msg);
    stopped = 0;
    gw_cluster_stop(c, tl_loop_done_flag, &stopped);
    meta_close(ma);
    tl_loop_run_until(&loop, &stopped, 2000);
    gw_cluster_destroy(c);

    gw_cluster_create(NULL, &c);
    stopped = 0;
    gw_cluster_stop(c, tl_loop_done_flag, &stopped);
    ok(atomic_load(&stopped) == 1, "stopping a refresher never started calls back at once");
    gw_cluster_destroy(c);
}

/* ---- the key cache --------------------------------------------------------------------- */

struct lookup {
    struct gw_keys_req req;
    atomic_int fired;
};

static void on_key(struct gw_keys_req *req)
{
    struct lookup *l = req->data;
    atomic_fetch_add(&l->fired, 1);
}

/* Starts a lookup; returns gw_keys_lookup's code. */
static int begin(struct gw_keys *k, struct cmn_meta_async *ma, const char *key,
                 struct lookup *l)
{
    memset(l, 0, sizeof(*l));
    l->req.data = l;
    l->req.cb = on_key;
    return gw_keys_lookup(k, ma, key, strlen(key), &l->req);
}

/* A lookup: the return code, and for a pending one the loop run until its answer. */
static int lookup(struct gw_keys *k, struct cmn_meta_async *ma, const char *key,
                  struct lookup *l)
{
    int rc = begin(k, ma, key, l);
    if (rc == 0)
        tl_loop_run_until(&loop, &l->fired, 3000);
    return rc;
}

static bool is_secret_of(const struct gw_key *key, const char *id)
{
    char want[200], user[200];
    snprintf(want, sizeof(want), "secret-for-%s", id);
    snprintf(user, sizeof(user), "user-%s", id);
    return key->status == 0 && key->secret_len == strlen(want) &&
           memcmp(key->secret, want, key->secret_len) == 0 && strcmp(key->user, user) == 0;
}

static void test_keys(void)
{
    struct fake meta;
    fake_start(&meta);
    struct cmn_meta_async *ma = meta_client(meta.addr);
    struct gw_keys_config kc = GW_KEYS_CONFIG_DEFAULT;
    kc.max_entries = 3;
    kc.max_negative = 2;
    kc.fetch_timeout_ms = 1000;
    struct gw_keys *k;
    is_int(gw_keys_create(&kc, &k), 0, "key cache created");
    struct lookup l;

    is_int(lookup(k, ma, "AKIDONE", &l), 0, "a first lookup goes to meta");
    ok(atomic_load(&l.fired) == 1 && is_secret_of(&l.req.key, "AKIDONE"),
       "... and calls back with the secret and user (%s)", l.req.key.message);
    is_int(meta.key_requests, 1, "one ACCESS_KEY_GET");
    gw_key_wipe(&l.req.key);
    is_int(lookup(k, ma, "AKIDONE", &l), GW_KEYS_HIT, "the second is a hit");
    ok(is_secret_of(&l.req.key, "AKIDONE") && atomic_load(&l.fired) == 0,
       "... answered at once, without a callback");
    is_int(meta.key_requests, 1, "... and without asking meta");
    gw_key_wipe(&l.req.key);
    bool zero = true;
    for (size_t i = 0; i < sizeof(l.req.key); i++)
        zero &= ((const unsigned char *)&l.req.key)[i] == 0;
    ok(zero, "gw_key_wipe zeroes the answer, secret included");

    is_int(lookup(k, ma, "AKIDERR", &l), 0, "meta failing: the lookup is answered");
    ok(l.req.key.status == LODE_EINTERNAL && strstr(l.req.key.message, "lode-meta"),
       "... with meta's error (%s)", l.req.key.message);
    int reqs = meta.key_requests;
    is_int(lookup(k, ma, "AKIDERR", &l), 0, "errors are not cached: asked again");
    is_int(meta.key_requests, reqs + 1, "... one more ACCESS_KEY_GET");

    /* Coalescing: three misses of one key on one loop cost one fetch; a cancelled waiter
     * is not called back; another loop (another meta client) fetches for itself. */
    struct cmn_meta_async *ma2 = meta_client(meta.addr);
    meta.mute = true;
    reqs = meta.key_requests;
    struct lookup w[4];
    for (int i = 0; i < 4; i++)
        is_int(begin(k, i < 3 ? ma : ma2, "AKIDSLOW", &w[i]), 0, "slow lookup %d pending", i);
    gw_keys_cancel(&w[1].req);
    gw_keys_cancel(&w[1].req);
    tl_loop_run_for(&loop, 100);
    is_int(meta.n_held, 2, "two fetches reach meta: one per loop");
    struct gw_keys_stats ks;
    gw_keys_stats(k, &ks);
    ok(ks.coalesced >= 2 && ks.pending == 2, "two lookups joined a fetch; two fetches pending");
    fake_release(&meta);
    tl_loop_run_until(&loop, &w[3].fired, 2000);
    tl_loop_run_until(&loop, &w[2].fired, 2000);
    ok(atomic_load(&w[0].fired) == 1 && atomic_load(&w[2].fired) == 1 &&
           atomic_load(&w[3].fired) == 1 && atomic_load(&w[1].fired) == 0,
       "every waiter called back once, the cancelled one never");
    ok(is_secret_of(&w[0].req.key, "AKIDSLOW") && is_secret_of(&w[2].req.key, "AKIDSLOW") &&
           is_secret_of(&w[3].req.key, "AKIDSLOW"),
       "... all with the secret");
    is_int(meta.key_requests - reqs, 2, "two ACCESS_KEY_GETs for four lookups");

    /* LRU: room for three known keys, cached in the order AKIDONE, AKIDSLOW, AKIDTWO; a
     * use of the oldest makes AKIDSLOW the least recently used. */
    lookup(k, ma, "AKIDTWO", &l);
    gw_keys_stats(k, &ks);
    is_int(ks.entries, 3, "three known keys cached (the bound)");
    is_int(lookup(k, ma, "AKIDONE", &l), GW_KEYS_HIT, "the oldest key is used");
    uint64_t ev = ks.evictions;
    is_int(lookup(k, ma, "AKIDNEW", &l), 0, "a fourth key is fetched");
    gw_keys_stats(k, &ks);
    is_int(ks.evictions - ev, 1, "... evicting one entry");
    is_int(lookup(k, ma, "AKIDONE", &l), GW_KEYS_HIT, "the recently used key stayed");
    is_int(lookup(k, ma, "AKIDTWO", &l), GW_KEYS_HIT, "so did the newest");
    is_int(lookup(k, ma, "AKIDSLOW", &l), 0, "the least recently used one was evicted");
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ghost%d", i);
        lookup(k, ma, id, &l);
    }
    gw_keys_stats(k, &ks);
    ok(ks.negative_entries == 2 && ks.entries == 3,
       "unknown keys are bounded apart (2) and evict no known key");

    gw_keys_invalidate(k, "AKIDSLOW", 8);
    is_int(lookup(k, ma, "AKIDSLOW", &l), 0, "an invalidated key is fetched again");

    /* Closing the meta client answers waiting lookups. */
    meta.mute = true;
    is_int(begin(k, ma2, "AKIDCLOSE", &w[0]), 0, "a lookup is pending");
    tl_loop_run_for(&loop, 50);
    meta_close(ma2);
    ok(atomic_load(&w[0].fired) == 1 && w[0].req.key.status == LODE_ECLOSED,
       "closing the meta client answers it with LODE_ECLOSED");
    fake_release(&meta);
    tl_loop_run_for(&loop, 50);
    meta_close(ma);
    gw_keys_stats(k, &ks);
    is_int(ks.pending, 0, "no fetch left in flight");
    gw_keys_destroy(k);

    /* The bound on fetches in flight. */
    kc.max_pending = 1;
    gw_keys_create(&kc, &k);
    ma = meta_client(meta.addr);
    meta.mute = true;
    is_int(begin(k, ma, "AKIDA", &w[0]), 0, "one fetch in flight");
    is_int(begin(k, ma, "AKIDB", &w[1]), -EAGAIN, "a second key with max-pending 1: -EAGAIN");
    is_int(begin(k, ma, "AKIDA", &w[2]), 0, "the same key still joins");
    tl_loop_run_for(&loop, 50);
    fake_release(&meta);
    tl_loop_run_until(&loop, &w[2].fired, 2000);
    ok(atomic_load(&w[0].fired) == 1 && atomic_load(&w[2].fired) == 1,
       "both answered when meta answers");
    meta_close(ma);
    gw_keys_destroy(k);

    struct gw_keys_config badc = GW_KEYS_CONFIG_DEFAULT;
    badc.ttl_ms = 0;
    is_int(gw_keys_create(&badc, &k), -EINVAL, "a zero TTL is refused");
    fake_stop(&meta);
}

/* ---- the node pool --------------------------------------------------------------------- */

struct call {
    struct gw_chunk_req req;
    atomic_int fired;
    int status;
    uint8_t got[256];
    size_t got_len;
    const uint8_t *payload;            /* where the payload was when the callback ran */
    char message[200];
};

static void on_chunk(struct gw_chunk_req *req)
{
    struct call *c = req->data;
    c->status = req->status;
    snprintf(c->message, sizeof(c->message), "%s", req->message);
    c->got_len = req->payload_len < sizeof(c->got) ? req->payload_len : sizeof(c->got);
    c->payload = req->payload;
    if (req->payload)
        memcpy(c->got, req->payload, c->got_len);
    atomic_fetch_add(&c->fired, 1);
}

/* A fresh request for one call (pass it to the submission). */
static struct gw_chunk_req *fresh(struct call *c)
{
    memset(c, 0, sizeof(*c));
    c->req.data = c;
    c->req.cb = on_chunk;
    return &c->req;
}

/* The outcome of a submission: its code when refused, else the completion status once the
 * loop has run until the callback. */
static int outcome(struct call *c, int submitted)
{
    if (submitted != 0) {
        snprintf(c->message, sizeof(c->message), "%s", c->req.message);
        return submitted;
    }
    tl_loop_run_until(&loop, &c->fired, 3000);
    return c->status;
}

static struct gw_cluster_map *pool_map(uint64_t epoch, const char *a1, const char *a2)
{
    Lode__NodeInfo ni[2], *np[2];
    np[0] = node_info(&ni[0], 1, a1, LODE__NODE_STATE__NODE_UP);
    np[1] = node_info(&ni[1], 2, a2, LODE__NODE_STATE__NODE_UP);
    Lode__ClusterMap pb = LODE__CLUSTER_MAP__INIT;
    pb.epoch = epoch;
    pb.n_nodes = 2;
    pb.nodes = np;
    struct gw_cluster_map *m;
    if (gw_cluster_map_from_proto(&pb, 0, &m, NULL))
        tap_bail("pool map");
    return m;
}

static void test_nodepool(void)
{
    ok(gw_nodepool_transport_failure(-ECONNREFUSED) &&
           gw_nodepool_transport_failure(LODE_ETIMEOUT) &&
           gw_nodepool_transport_failure(LODE_ECLOSED) &&
           !gw_nodepool_transport_failure(LODE_ENOCHUNK) &&
           !gw_nodepool_transport_failure(LODE_ECORRUPT) && !gw_nodepool_transport_failure(0),
       "transport failures are told from the node's answers");
    struct fake a, b;
    fake_start(&a);
    fake_start(&b);
    char dead[64];
    dead_address(dead, sizeof(dead));
    struct gw_cluster *cl;
    gw_cluster_create(NULL, &cl);
    struct gw_nodepool_config pc = GW_NODEPOOL_CONFIG_DEFAULT;
    pc.loop = &loop;
    pc.cluster = cl;
    pc.secret = SECRET;
    pc.secret_len = strlen(SECRET);
    pc.fail_hold_ms = 150;
    pc.idle_close_ms = 200;
    struct gw_nodepool *p;
    is_int(gw_nodepool_create(&pc, &p), 0, "pool created");
    uint8_t id[16], data[100];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 100; i++)
        data[i] = (uint8_t)(i * 7);
    struct call c;
    is_int(outcome(&c, gw_nodepool_put(p, fresh(&c), 1, id, data, 100, 0x1234, 1000)),
           LODE_EUNAVAILABLE, "no map yet: refused at once");
    ok(strstr(c.message, "not yet known") != NULL, "... saying so (%s)", c.message);

    gw_cluster_publish(cl, pool_map(1, a.addr, dead));
    is_int(outcome(&c, gw_nodepool_put(p, fresh(&c), 1, id, data, 100, 0x1234, 1000)), 0,
           "put to node 1 (%s)", c.message);
    ok(a.chunks[0].data && a.chunks[0].len == 100 && memcmp(a.chunks[0].data, data, 100) == 0,
       "the node received the bytes");
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 1, id, 0, 0, 1000)), 0, "get the whole chunk");
    ok(c.got_len == 100 && memcmp(c.got, data, 100) == 0, "... the same bytes");
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 1, id, 10, 20, 1000)), 0, "get a range");
    ok(c.got_len == 20 && memcmp(c.got, data + 10, 20) == 0, "... bytes 10 to 29");
    uint8_t into[40];
    memset(into, 0, sizeof(into));
    is_int(outcome(&c, gw_nodepool_get_into(p, fresh(&c), 1, id, 30, 40, into, 1000)), 0,
           "get a range into memory (%s)", c.message);
    ok(c.payload == into && memcmp(into, data + 30, 40) == 0,
       "... the bytes were placed straight into the destination");
    is_int(gw_nodepool_get_into(p, fresh(&c), 1, id, 0, 0, into, 1000), -EINVAL,
           "get into memory without a length refused");
    is_int(outcome(&c, gw_nodepool_delete(p, fresh(&c), 1, id, 1000)), 0, "delete");
    is_int(outcome(&c, gw_nodepool_delete(p, fresh(&c), 1, id, 1000)), LODE_ENOCHUNK,
           "delete again: no such chunk");
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 1, id, 0, 0, 1000)), LODE_ENOCHUNK,
           "get of a deleted chunk: no such chunk");
    struct gw_nodepool_node_stats ns;
    gw_nodepool_node_stats(p, 1, &ns);
    ok(ns.calls == 7 && ns.errors == 2 && ns.transport_failures == 0 && !ns.on_hold &&
           ns.connects == 1 && ns.connected,
       "node 1: 7 calls on one connection, 2 answers of 'no chunk', no hold");

    a.lie_put = true;
    is_int(outcome(&c, gw_nodepool_put(p, fresh(&c), 1, id, data, 100, 0x1234, 1000)), LODE_EBADMSG,
           "an acknowledgement with another checksum is not a success");
    a.lie_put = false;
    a.lie_get = true;
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 1, id, 0, 0, 1000)), LODE_EBADMSG,
           "a get answered one byte short is not a success (%s)", c.message);
    a.lie_get = false;
    is_int(outcome(&c, gw_nodepool_put(p, fresh(&c), 9, id, data, 100, 1, 1000)), LODE_ENONODE,
           "a nid not in the map: LODE_ENONODE at once");
    is_int(outcome(&c, gw_nodepool_put(p, fresh(&c), 1, id, data, 0, 1, 1000)), -EINVAL,
           "an empty put is refused");

    /* Node 2 refuses connections: a transport failure, then a hold. */
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 2, id, 0, 0, 1000)), -ECONNREFUSED,
           "node 2 refuses the connection");
    uint64_t t0 = cmn_mono_ms();
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 2, id, 0, 0, 1000)), LODE_EUNAVAILABLE,
           "the next call is refused at once: node on hold");
    ok(strstr(c.message, "on hold") && strstr(c.message, "node 2"), "... saying so (%s)",
       c.message);
    gw_nodepool_node_stats(p, 2, &ns);
    ok(ns.transport_failures == 1 && ns.held == 1 && ns.on_hold, "node 2: 1 failure, 1 held");
    tl_loop_run_for(&loop, 160 - (cmn_mono_ms() - t0 < 160 ? cmn_mono_ms() - t0 : 160));
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 2, id, 0, 0, 1000)), -ECONNREFUSED,
           "after the hold the node is tried again");
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 2, id, 0, 0, 1000)), LODE_EUNAVAILABLE,
           "held again after the second failure");
    const char *at = strstr(c.message, "on hold for ");
    unsigned long long hold = at ? strtoull(at + 12, NULL, 10) : 0;
    ok(hold > 150 && hold <= 300, "... for up to twice as long (%llu ms left of 300)", hold);

    /* Node 1 moves to b's address. */
    gw_cluster_publish(cl, pool_map(2, b.addr, dead));
    int before_a = a.requests;
    is_int(outcome(&c, gw_nodepool_put(p, fresh(&c), 1, id, data, 50, 0x99, 1000)), 0,
           "put after node 1 moved");
    ok(a.requests == before_a && b.chunks[0].len == 50, "... went to its new address");
    gw_nodepool_node_stats(p, 1, &ns);
    is_int(ns.connects, 2, "a new connection for the new address");

    tl_loop_run_for(&loop, 450);
    gw_nodepool_node_stats(p, 1, &ns);
    ok(!ns.connected, "an idle connection is closed after idle-close");
    is_int(outcome(&c, gw_nodepool_get(p, fresh(&c), 1, id, 0, 0, 1000)), 0,
           "and reopened by the next call");

    /* Close with calls in flight. */
    b.mute = true;
    struct call c1, c2;
    is_int(gw_nodepool_get(p, fresh(&c1), 1, id, 0, 0, 5000), 0, "a get in flight");
    is_int(gw_nodepool_delete(p, fresh(&c2), 1, id, 5000), 0, "a delete in flight");
    tl_loop_run_for(&loop, 50);
    is_int(gw_nodepool_inflight(p), 2, "two calls in flight");
    atomic_int closed = 0;
    gw_nodepool_close(p, tl_loop_done_flag, &closed);
    tl_loop_run_until(&loop, &closed, 2000);
    ok(atomic_load(&c1.fired) == 1 && atomic_load(&c2.fired) == 1 &&
           c1.status == LODE_ECLOSED && c2.status == LODE_ECLOSED,
       "closing answers them with LODE_ECLOSED");
    ok(atomic_load(&closed) == 1, "the close callback runs");
    fake_stop(&a);
    fake_stop(&b);
    gw_cluster_destroy(cl);
}

int main(void)
{
    cmn_log_init("test_cluster", CMN_LOG_ERROR);
    uv_loop_init(&loop);
    test_snapshot();
    test_snapshot_race();
    test_refresher();
    test_keys();
    test_nodepool();
    uv_run(&loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&loop);
    is_int(rc, 0, "every handle closed");
    return tap_done();
}
