/* A gateway's view of a real cluster, for integration tests of the gateway's cluster links
 * and data path: one lode-meta replica and N lode-nodes on loopback (tests/lib/proc.h,
 * tests/lib/node_proc.h), and over them what a gateway worker holds: an async meta client,
 * the cluster-map refresher and the node pool, all on the test's libuv loop.
 *
 *   static uv_loop_t loop;
 *   static struct tl_gw_fixture fx;
 *   struct tl_gw_fixture_options o = TL_GW_FIXTURE_OPTIONS_DEFAULT;
 *   o.name = "gwdata";
 *   o.n_nodes = 6;
 *   uv_loop_init(&loop);
 *   if (tl_gw_fixture_start(&fx, &loop, &o, &err) != 0) tap_bail("%s", cmn_err_text(&err));
 *   ... fx.pool, fx.cl, fx.nodes[i], fx.nids[i] ...
 *   tl_gw_fixture_close(&fx);
 *   is_int(uv_loop_close(&loop), 0, "every handle closed");
 *   is_int(tl_gw_fixture_crash_count(&fx), 0, "no daemon crashed");
 *   int rc = tap_done();
 *   tl_gw_fixture_destroy(&fx, rc != 0);
 *
 * lode-meta runs with node-suspect-after = 1s and node-down-after = 2s, so that tests see
 * a stopped node go SUSPECT and DOWN within seconds; the refresher refreshes every 200 ms
 * (kicks at most every 100 ms). Node i (0-based) is in failure domain "fd-<i+1>".
 * The daemons are stopped at exit even when the test bails (see proc.h). Single-threaded:
 * call from the loop's thread. No TAP output of its own: the test reports.
 */
#ifndef LODE_TESTS_LIB_GW_FIXTURE_H
#define LODE_TESTS_LIB_GW_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "common/err.h"
#include "meta.pb-c.h"

struct cmn_meta_async;
struct cmn_meta_client;
struct gw_cluster;
struct gw_nodepool;
struct tl_cluster;
struct tl_node;

#define TL_GW_MAX_NODES 8

/* Strings must outlive the fixture (string literals, in practice). */
struct tl_gw_fixture_options {
    const char *name;              /* temp directory prefix: "<name>-meta", "<name>-n1", ... */
    unsigned n_nodes;              /* 1..TL_GW_MAX_NODES */
    const char *volume_size;       /* lode-node's volume-size; NULL: tests/lib/node_proc's */
    const char *node_log_level;    /* lode-node's log-level; NULL: tests/lib/node_proc's */
    uint32_t call_timeout_ms;      /* each call while waiting, and each close (default 5000) */
    uint32_t register_timeout_ms;  /* for each node to get a nid from meta (default 15000) */
    uint32_t fail_hold_ms;         /* the node pool's fail_hold_ms */
};

#define TL_GW_FIXTURE_OPTIONS_DEFAULT {.name = "gw", .n_nodes = 2}

struct tl_gw_fixture {
    uv_loop_t *loop;
    struct tl_gw_fixture_options opts;
    struct tl_cluster *meta;
    struct cmn_meta_client *mc;    /* synchronous, over meta (owned by meta) */
    struct tl_node *nodes[TL_GW_MAX_NODES];
    uint32_t nids[TL_GW_MAX_NODES]; /* as meta assigned them */
    struct cmn_meta_async *ma;
    struct gw_cluster *cl;
    struct gw_nodepool *pool;
    /* The option strings the daemons keep pointing to. */
    char meta_name[64];
    char node_name[TL_GW_MAX_NODES][64];
    char node_fd[TL_GW_MAX_NODES][16];
};

/* f must stay where it is until tl_gw_fixture_destroy (the daemons' options point into it).
 * Starts meta and waits for its leader, starts the nodes and waits until each reports the
 * nid meta gave it, then creates the meta client, the refresher (started) and the node pool
 * on loop. Does not wait for the refresher's first map (tl_gw_fixture_wait_state). On
 * failure err says which step failed ("start lode-meta: ...", "node 2 did not register")
 * and whatever started is left for tl_gw_fixture_destroy (or the exit handlers). */
int tl_gw_fixture_start(struct tl_gw_fixture *f, uv_loop_t *loop,
                        const struct tl_gw_fixture_options *opts, struct cmn_err *err);

/* The state the refresher last published for nid, or -1 when its map lacks nid (or there
 * is no map yet). */
int tl_gw_fixture_map_state(struct tl_gw_fixture *f, uint32_t nid);

/* Runs the loop until the refresher publishes nid in state want, or timeout_ms pass.
 * Returns whether it did. */
bool tl_gw_fixture_wait_state(struct tl_gw_fixture *f, uint32_t nid, Lode__NodeState want,
                              uint32_t timeout_ms);

/* Closes the node pool, stops and destroys the refresher, closes the meta client, running
 * the loop until they are done; afterwards nothing of the fixture is on the loop, so the test
 * can check uv_loop_close. The daemons keep running. */
void tl_gw_fixture_close(struct tl_gw_fixture *f);

/* Crashes of meta and the nodes (tl_cluster_crash_count + tl_node_crash_count), each named
 * via TAP diagnostics. */
int tl_gw_fixture_crash_count(struct tl_gw_fixture *f);

/* Stops the daemons and removes their directories; with failed, keeps them and prints the
 * logs' tails. Call after tl_gw_fixture_close. */
void tl_gw_fixture_destroy(struct tl_gw_fixture *f, bool failed);

#endif
