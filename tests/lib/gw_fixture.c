/* A gateway's view of a real cluster, for integration tests (see gw_fixture.h). */
#include "tests/lib/gw_fixture.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/meta_async.h"
#include "common/rpc_sync.h"
#include "gateway/cluster.h"
#include "gateway/nodepool.h"
#include "tests/lib/loop.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"

/* The nid meta gave node n, once the node has registered (NODE_HEALTH reports it); 0 when
 * it has none after timeout_ms. The loop runs while waiting. */
static uint32_t wait_registered(struct tl_gw_fixture *f, struct tl_node *n)
{
    uint64_t deadline = cmn_mono_ms() + f->opts.register_timeout_ms;
    while (cmn_mono_ms() < deadline) {
        struct cmn_rpc_sync *c = NULL;
        Lode__NodeHealthResponse *h = NULL;
        uint32_t nid = 0;
        if (tl_node_connect(n, f->opts.call_timeout_ms, &c, NULL) == 0) {
            if (tl_node_health(c, f->opts.call_timeout_ms, &h, NULL) == 0) {
                nid = h->nid;
                lode__node_health_response__free_unpacked(h, NULL);
            }
            cmn_rpc_sync_close(c);
        }
        if (nid)
            return nid;
        tl_loop_run_for(f->loop, 100);
    }
    return 0;
}

/* Puts "<what>: " before err's message (the code stays). */
static int add_context(struct cmn_err *err, const char *what)
{
    char old[CMN_ERR_MSG_MAX];
    snprintf(old, sizeof(old), "%s", cmn_err_text(err));
    return cmn_err_set(err, err->code, "%s: %s", what, old);
}

static int start_daemons(struct tl_gw_fixture *f, struct cmn_err *err)
{
    struct tl_cluster_options mo = TL_CLUSTER_OPTIONS_DEFAULT;
    unsigned leader;

    snprintf(f->meta_name, sizeof(f->meta_name), "%s-meta", f->opts.name);
    mo.replicas = 1;
    mo.name = f->meta_name;
    mo.extra_conf = "node-suspect-after = 1s\nnode-down-after = 2s\n";
    if (tl_cluster_start(&mo, &f->meta, err) != 0)
        return add_context(err, "start lode-meta");
    if (tl_cluster_wait_leader(f->meta, 10000, &leader) != 0)
        return cmn_err_set(err, LODE_ETIMEOUT, "no meta leader");
    f->mc = tl_cluster_client(f->meta);
    for (unsigned i = 0; i < f->opts.n_nodes; i++) {
        struct tl_node_options o = TL_NODE_OPTIONS_DEFAULT;
        snprintf(f->node_name[i], sizeof(f->node_name[i]), "%s-n%u", f->opts.name, i + 1);
        snprintf(f->node_fd[i], sizeof(f->node_fd[i]), "fd-%u", i + 1);
        o.name = f->node_name[i];
        o.meta = f->meta;
        o.failure_domain = f->node_fd[i];
        o.volume_size = f->opts.volume_size;
        o.log_level = f->opts.node_log_level;
        if (tl_node_start(&o, &f->nodes[i], err) != 0) {
            char what[32];
            snprintf(what, sizeof(what), "start lode-node %u", i + 1);
            return add_context(err, what);
        }
    }
    for (unsigned i = 0; i < f->opts.n_nodes; i++)
        if (!(f->nids[i] = wait_registered(f, f->nodes[i])))
            return cmn_err_set(err, LODE_ETIMEOUT, "node %u did not register", i + 1);
    return 0;
}

int tl_gw_fixture_start(struct tl_gw_fixture *f, uv_loop_t *loop,
                        const struct tl_gw_fixture_options *opts, struct cmn_err *err)
{
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->opts = *opts;
    if (!f->opts.name)
        f->opts.name = "gw";
    if (!f->opts.call_timeout_ms)
        f->opts.call_timeout_ms = 5000;
    if (!f->opts.register_timeout_ms)
        f->opts.register_timeout_ms = 15000;
    if (f->opts.n_nodes < 1 || f->opts.n_nodes > TL_GW_MAX_NODES)
        return cmn_err_set(err, -EINVAL, "1 to %d nodes", TL_GW_MAX_NODES);
    int rc = start_daemons(f, err);
    if (rc != 0)
        return rc;

    struct cmn_meta_async_config mac = {.addrs = tl_cluster_rpc_addrs(f->meta),
                                        .secret = f->meta->secret_text,
                                        .secret_len = f->meta->secret_len};
    if (cmn_meta_async_create(loop, &mac, &f->ma, err) != 0)
        return add_context(err, "meta client");
    struct gw_cluster_config cc = {.refresh_ms = 200, .kick_gap_ms = 100};
    if (gw_cluster_create(&cc, &f->cl) || gw_cluster_start(f->cl, loop, f->ma))
        return cmn_err_set(err, LODE_EINTERNAL, "cluster refresher");
    struct gw_nodepool_config pc = GW_NODEPOOL_CONFIG_DEFAULT;
    pc.loop = loop;
    pc.cluster = f->cl;
    pc.secret = f->meta->secret_text;
    pc.secret_len = f->meta->secret_len;
    pc.fail_hold_ms = f->opts.fail_hold_ms;
    if (gw_nodepool_create(&pc, &f->pool))
        return cmn_err_set(err, LODE_EINTERNAL, "node pool");
    return 0;
}

int tl_gw_fixture_map_state(struct tl_gw_fixture *f, uint32_t nid)
{
    struct gw_cluster_map *m = gw_cluster_map_get(f->cl);
    const struct gw_map_node *n = m ? gw_cluster_map_find(m, nid) : NULL;
    int st = n ? (int)n->state : -1;
    gw_cluster_map_put(m);
    return st;
}

bool tl_gw_fixture_wait_state(struct tl_gw_fixture *f, uint32_t nid, Lode__NodeState want,
                              uint32_t timeout_ms)
{
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    while (tl_gw_fixture_map_state(f, nid) != (int)want && cmn_mono_ms() < deadline)
        tl_loop_run_for(f->loop, 50);
    return tl_gw_fixture_map_state(f, nid) == (int)want;
}

void tl_gw_fixture_close(struct tl_gw_fixture *f)
{
    atomic_int closed = 0;
    if (f->pool) {
        gw_nodepool_close(f->pool, tl_loop_done_flag, &closed);
        tl_loop_run_until(f->loop, &closed, f->opts.call_timeout_ms);
        f->pool = NULL;
    }
    closed = 0;
    if (f->cl) {
        gw_cluster_stop(f->cl, tl_loop_done_flag, &closed);
        if (f->ma)
            cmn_meta_async_close(f->ma, NULL, NULL);
        tl_loop_run_until(f->loop, &closed, f->opts.call_timeout_ms);
        gw_cluster_destroy(f->cl);
    } else if (f->ma) {
        cmn_meta_async_close(f->ma, NULL, NULL);
    }
    f->cl = NULL;
    f->ma = NULL;
    uv_run(f->loop, UV_RUN_NOWAIT);
}

int tl_gw_fixture_crash_count(struct tl_gw_fixture *f)
{
    int crashed = f->meta ? tl_cluster_crash_count(f->meta) : 0;
    for (unsigned i = 0; i < f->opts.n_nodes; i++)
        if (f->nodes[i])
            crashed += tl_node_crash_count(f->nodes[i]);
    return crashed;
}

void tl_gw_fixture_destroy(struct tl_gw_fixture *f, bool failed)
{
    for (unsigned i = 0; i < f->opts.n_nodes; i++) {
        tl_node_destroy(f->nodes[i], failed);
        f->nodes[i] = NULL;
    }
    tl_cluster_destroy(f->meta, failed);
    f->meta = NULL;
    f->mc = NULL;
}
