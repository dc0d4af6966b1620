/* lode-node and lode-meta together: the node registers (the cluster map lists it UP with its
 * uuid, address, failure domain and capacity), keeps its identity across restarts (uuid from
 * the superblock, same nid), is marked SUSPECT then DOWN when it is killed and its beats stop,
 * and UP again when it comes back. Data directories that belong to another cluster or
 * another node are refused at start, with a message naming the directory.
 *
 * lode-meta runs with node-suspect-after = 1s and node-down-after = 4s (its liveness timer
 * ticks once a second; a tick delayed past node-down-after on a loaded machine goes straight
 * to DOWN, so SUSPECT gets a window of several ticks); the node beats every 200 ms.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/meta_client.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 5000
#define DOMAIN "rack-7"
#define REGISTER_MS 15000           /* start-up under ASan, registration, a commit */
#define SUSPECT_WAIT_MS 8000        /* 1 s suspect-after + 1 s tick + a loaded machine */
#define DOWN_WAIT_MS 10000

static struct tl_cluster *meta;
static struct cmn_meta_client *mc;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static Lode__NodeHealthResponse *health_of(struct tl_node *n)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    Lode__NodeHealthResponse *h = NULL;
    if (tl_node_connect(n, T_MS, &c, &err) == 0) {
        if (tl_node_health(c, T_MS, &h, &err) != 0)
            diag("NODE_HEALTH: %s", cmn_err_text(&err));
        cmn_rpc_sync_close(c);
    } else {
        diag("connect: %s", cmn_err_text(&err));
    }
    return h;
}

/* Waits until the node says it is registered (nid != 0); returns its health or NULL. */
static Lode__NodeHealthResponse *wait_registered(struct tl_node *n, uint32_t timeout_ms)
{
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    for (;;) {
        Lode__NodeHealthResponse *h = health_of(n);
        if (h && h->nid != 0)
            return h;
        if (cmn_mono_ms() >= deadline) {
            if (h)
                diag("after %u ms: nid %u, meta_state '%s'", timeout_ms, h->nid, h->meta_state);
            return h;
        }
        if (h)
            lode__node_health_response__free_unpacked(h, NULL);
        sleep_ms(100);
    }
}

/* Waits until the map shows the node (uuid) in `state`. Returns the time it took in ms, or
 * -1 (the last state seen is printed). */
static long wait_state(const uint8_t *uuid, Lode__NodeState state, uint32_t timeout_ms)
{
    uint64_t start = cmn_mono_ms(), deadline = start + timeout_ms;
    Lode__NodeState last = LODE__NODE_STATE__NODE_STATE_UNKNOWN;
    for (;;) {
        Lode__ClusterMap *map = NULL;
        if (tl_meta_cluster_map(mc, T_MS, &map, NULL) == 0) {
            Lode__NodeInfo *ni = tl_meta_find_node(map, uuid, 16);
            last = ni ? ni->state : LODE__NODE_STATE__NODE_STATE_UNKNOWN;
            lode__cluster_map__free_unpacked(map, NULL);
            if (last == state)
                return (long)(cmn_mono_ms() - start);
        }
        if (cmn_mono_ms() >= deadline) {
            diag("waited %u ms for %s; last seen %s", timeout_ms, tl_node_state_name(state),
                 tl_node_state_name(last));
            return -1;
        }
        sleep_ms(100);
    }
}

/* True when a line of the last run's output (after the fixture's banner) names `dir` and is
 * not an INFO or DEBUG line: a start-up banner echoing data-dirs does not count. */
static bool error_names(const char *log, const char *dir)
{
    const char *p = log, *b;
    while ((b = strstr(p, "=== tests/lib/node_proc: run ")))
        p = b + 1;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *line = strndup(p, len);
        bool hit = line && strstr(line, dir) && !strstr(line, " INFO ") &&
                   !strstr(line, " DEBUG ") && !strstr(line, "=== tests/lib/node_proc");
        free(line);
        if (hit)
            return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

/* Runs a node that must refuse its data directories: non-zero exit, and the log names `dir`
 * and says why. */
static void expect_refused(struct tl_node *n, const char *dir, const char *what)
{
    int status = 0;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = tl_node_run_to_exit(n, NULL, 20000, &status, &err);
    ok(rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0,
       "%s: the node refuses to start (exit status %d)%s", what,
       rc == 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1, tl_why(err.msg));
    char *log = tl_node_log_read(n);
    bool named = log && error_names(log, dir);
    ok(named, "%s: an error message of that run names the directory %s", what, dir);
    if (!named)
        tl_node_log_tail(n, 10);
    free(log);
}

int main(void)
{
    struct cmn_err err;
    cmn_err_clear(&err);
    struct tl_cluster_options mo = TL_CLUSTER_OPTIONS_DEFAULT;
    mo.replicas = 1;
    mo.name = "nodemeta-meta";
    mo.extra_conf = "node-suspect-after = 1s\nnode-down-after = 4s\n";
    if (tl_cluster_start(&mo, &meta, &err) != 0)
        tap_bail("start lode-meta: %s", cmn_err_text(&err));
    unsigned leader;
    if (tl_cluster_wait_leader(meta, 10000, &leader) != 0)
        tap_bail("no meta leader");
    mc = tl_cluster_client(meta);
    if (!mc)
        tap_bail("meta client");

    struct tl_node *node = NULL;
    struct tl_node_options o = TL_NODE_OPTIONS_DEFAULT;
    o.name = "nodemeta";
    o.meta = meta;
    o.failure_domain = DOMAIN;
    o.n_dirs = 2;
    if (tl_node_start(&o, &node, &err) != 0)
        tap_bail("start lode-node: %s", cmn_err_text(&err));

    /* ---- registration */
    Lode__NodeHealthResponse *h = wait_registered(node, REGISTER_MS);
    ok(h && h->nid != 0, "the node registers with meta (nid %u)", h ? h->nid : 0);
    if (!h || h->nid == 0 || h->uuid.len != 16)
        tap_bail("the node did not register; nothing else can be checked");
    uint8_t uuid[16];
    memcpy(uuid, h->uuid.data, 16);
    uint32_t nid = h->nid;
    is_str(h->cluster, "lode-test", "health: cluster name");
    is_str(h->failure_domain, DOMAIN, "health: failure domain");
    ok(h->capacity_bytes > 0, "health: capacity %llu > 0", (unsigned long long)h->capacity_bytes);
    is_int(h->n_disks, 2, "health: two data directories");
    is_str(h->meta_state, "registered", "health: meta_state");
    lode__node_health_response__free_unpacked(h, NULL);

    long ms = wait_state(uuid, LODE__NODE_STATE__NODE_UP, T_MS);
    ok(ms >= 0, "the cluster map lists the node UP");
    Lode__ClusterMap *map = NULL;
    if (tl_meta_cluster_map(mc, T_MS, &map, &err) != 0)
        tap_bail("CLUSTER_MAP_GET: %s", cmn_err_text(&err));
    Lode__NodeInfo *ni = tl_meta_find_node(map, uuid, 16);
    ok(ni != NULL, "the map has an entry with the node's uuid");
    if (ni) {
        is_int(ni->nid, nid, "map: the nid the node reports");
        is_str(ni->address, node->rpc_addr, "map: the node's RPC address");
        is_str(ni->failure_domain, DOMAIN, "map: the failure domain");
        ok(ni->capacity_bytes > 0, "map: capacity %llu > 0",
           (unsigned long long)ni->capacity_bytes);
    }
    is_int(map->n_nodes, 1, "map: exactly one node");
    lode__cluster_map__free_unpacked(map, NULL);

    /* ---- a clean restart keeps the identity */
    is_int(tl_node_kill(node, SIGTERM), 0, "SIGTERM stops the node");
    ok(WIFEXITED(node->last_status) && WEXITSTATUS(node->last_status) == 0,
       "the node exits 0 on SIGTERM");
    if (tl_node_run(node, &err) != 0)
        tap_bail("restart: %s", cmn_err_text(&err));
    h = wait_registered(node, REGISTER_MS);
    ok(h && h->uuid.len == 16 && memcmp(h->uuid.data, uuid, 16) == 0,
       "after a restart: the same uuid (from the superblock)");
    is_int(h ? h->nid : 0, nid, "after a restart: the same nid");
    if (h)
        lode__node_health_response__free_unpacked(h, NULL);
    if (tl_meta_cluster_map(mc, T_MS, &map, &err) == 0) {
        is_int(map->n_nodes, 1, "after a restart: still one node in the map");
        lode__cluster_map__free_unpacked(map, NULL);
    } else {
        ok(0, "CLUSTER_MAP_GET after a restart%s", tl_why(err.msg));
    }

    /* ---- kill -9: beats stop, meta marks it suspect, then down; back up after a restart */
    is_int(wait_state(uuid, LODE__NODE_STATE__NODE_UP, T_MS) >= 0, 1, "UP before the kill");
    is_int(tl_node_kill(node, SIGKILL), 0, "SIGKILL the node");
    ms = wait_state(uuid, LODE__NODE_STATE__NODE_SUSPECT, SUSPECT_WAIT_MS);
    ok(ms >= 0, "meta marks the silent node SUSPECT (after %ld ms)", ms);
    ms = wait_state(uuid, LODE__NODE_STATE__NODE_DOWN, DOWN_WAIT_MS);
    ok(ms >= 0, "then DOWN (%ld ms later)", ms);
    if (tl_node_run(node, &err) != 0)
        tap_bail("restart after kill: %s", cmn_err_text(&err));
    ms = wait_state(uuid, LODE__NODE_STATE__NODE_UP, REGISTER_MS);
    ok(ms >= 0, "restarted: UP again (after %ld ms)", ms);
    h = wait_registered(node, REGISTER_MS);
    is_int(h ? h->nid : 0, nid, "restarted after kill: the same nid");
    if (h)
        lode__node_health_response__free_unpacked(h, NULL);
    /* Stays up: beats keep coming for longer than node-down-after. */
    sleep_ms(4500);
    ms = wait_state(uuid, LODE__NODE_STATE__NODE_UP, 100);
    ok(ms >= 0, "still UP 4.5 s later (the node keeps beating)");

    /* ---- data directories of another cluster, or of another node */
    is_int(tl_node_kill(node, SIGTERM), 0, "stop the node");
    struct tl_node *other = NULL;
    struct tl_node_options oo = o;
    oo.name = "nodemeta-other-cluster";
    oo.cluster = "another-cluster";
    oo.data_dirs = node->data_dirs;
    if (tl_node_create(&oo, &other, &err) != 0)
        tap_bail("configure the other-cluster node: %s", cmn_err_text(&err));
    expect_refused(other, node->dir_list[0], "data directories formatted for another cluster");
    tl_node_destroy(other, false);

    /* A fresh node gets its own uuid; then the first node is given its directory too. */
    struct tl_node *second = NULL;
    struct tl_node_options so = o;
    so.name = "nodemeta-second";
    so.n_dirs = 1;
    so.failure_domain = "rack-8";
    if (tl_node_start(&so, &second, &err) != 0)
        tap_bail("start a second node: %s", cmn_err_text(&err));
    h = wait_registered(second, REGISTER_MS);
    ok(h && h->nid != 0 && h->nid != nid && h->uuid.len == 16 && memcmp(h->uuid.data, uuid, 16),
       "a second node registers with its own uuid and nid");
    if (h)
        lode__node_health_response__free_unpacked(h, NULL);
    is_int(tl_node_kill(second, SIGTERM), 0, "stop the second node");

    struct tl_node *mixed = NULL;
    struct tl_node_options xo = o;
    char *dirs = NULL;
    if (asprintf(&dirs, "%s,%s", node->dir_list[0], second->dir_list[0]) < 0)
        tap_bail("out of memory");
    xo.name = "nodemeta-mixed";
    xo.data_dirs = dirs;
    if (tl_node_create(&xo, &mixed, &err) != 0)
        tap_bail("configure the mixed node: %s", cmn_err_text(&err));
    expect_refused(mixed, second->dir_list[0], "a data directory of another node");
    tl_node_destroy(mixed, false);

    /* The refusals changed nothing: the first node starts again on its own directories. */
    if (tl_node_run(node, &err) != 0)
        tap_bail("restart after the refusals: %s", cmn_err_text(&err));
    h = wait_registered(node, REGISTER_MS);
    ok(h && h->nid == nid && h->uuid.len == 16 && !memcmp(h->uuid.data, uuid, 16),
       "the first node starts again with the same identity");
    if (h)
        lode__node_health_response__free_unpacked(h, NULL);

    is_int(tl_node_crash_count(node), 0, "the node never crashed");
    is_int(tl_node_crash_count(second), 0, "the second node never crashed");
    is_int(tl_cluster_crash_count(meta), 0, "lode-meta never crashed");
    int failed = tap_done();
    tl_node_destroy(second, failed != 0);
    tl_node_destroy(node, failed != 0);
    free(dirs);
    tl_cluster_destroy(meta, failed != 0);
    return failed;
}
