/* Real lode-node processes on loopback, for integration tests (the data-node counterpart of
 * tests/lib/proc.h, which runs lode-meta).
 *
 *   struct tl_cluster *meta;            // tl_cluster_start(): secret and meta addresses
 *   struct tl_node *n;
 *   struct tl_node_options o = TL_NODE_OPTIONS_DEFAULT;
 *   o.meta = meta;
 *   if (tl_node_start(&o, &n, &err) != 0) tap_bail("%s", err.msg);
 *   struct cmn_rpc_sync *c;
 *   tl_node_connect(n, 5000, &c, &err);
 *   tl_chunk_put(c, id, data, len, 5000, &res);
 *   ... tl_node_kill(n, SIGKILL), tl_node_run(n, &err) ...
 *   int rc = tap_done();
 *   tl_node_destroy(n, rc != 0);
 *
 * Each node lives in a fresh directory under $TEST_TMPDIR (or /tmp): its config, its log
 * file (the daemon's stdout and stderr, appended over every run) and, unless the options name
 * others, its data directories. The binary is $LODE_BUILDDIR/lode-node, or ./lode-node.
 *
 * As with proc.h, no test may leave processes behind: every child gets
 * PR_SET_PDEATHSIG(SIGKILL), and an atexit handler stops every node not yet destroyed (and
 * keeps its directory, printing its log tail). Single-threaded: call from the thread that
 * created the node.
 */
#ifndef LODE_TESTS_LIB_NODE_PROC_H
#define LODE_TESTS_LIB_NODE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/rpc.h"
#include "common/rpc_sync.h"
#include "meta.pb-c.h"
#include "node.pb-c.h"
#include "tests/lib/proc.h"

struct cmn_meta_client;

#define TL_NODE_MAX_DIRS 8

/* Option strings are config values, written verbatim; NULL leaves a key to the daemon's
 * default unless a default is named below. The structure is copied, the strings are not:
 * they must outlive the node (string literals, or storage the test keeps). A test may change
 * n->opts between runs and call tl_node_write_config(). */
struct tl_node_options {
    const char *name;              /* temp directory prefix (default "node") */
    struct tl_cluster *meta;       /* secret and `meta =` addresses from this cluster; NULL:
                                      a secret of the node's own and an address nobody serves */
    const char *cluster;           /* cluster name (default "lode-test") */
    unsigned n_dirs;               /* data directories created in the node's directory
                                      (default 1, at most TL_NODE_MAX_DIRS) */
    const char *data_dirs;         /* instead of n_dirs: comma-separated existing paths */
    const char *volume_size;       /* default "4MiB" */
    const char *max_chunk_size;    /* default "1MiB" (tests use chunks up to 1 MiB) */
    const char *capacity_limit;
    const char *heartbeat_interval;/* default "200ms" */
    const char *scrub_rate;        /* default "0" (scrubber off) */
    const char *failure_domain;    /* default "fd-1" */
    const char *io_backend;
    const char *queue_depth;
    const char *max_frame_size;
    const char *log_level;         /* default "info" */
    const char *extra_conf;        /* lines appended to the config, or NULL */
    uint32_t ready_timeout_ms;     /* wait for PING after each start (default 20000) */
};

#define TL_NODE_OPTIONS_DEFAULT {.n_dirs = 1}

struct tl_node {
    char *dir;                     /* the unique temp directory */
    char *conf_path;
    char *log_path;
    char *data_dirs;               /* the `data-dirs =` value */
    char *dir_list[TL_NODE_MAX_DIRS]; /* the same, split */
    unsigned n_dirs;
    char rpc_addr[TL_ADDR_MAX];
    char metrics_addr[TL_ADDR_MAX];
    char *secret_path;
    char secret_text[65];          /* what the secret file holds */
    size_t secret_len;
    char *meta_addrs;              /* the `meta =` value */
    char *node_bin;
    struct tl_node_options opts;
    pid_t pid;                     /* 0 when not running */
    int last_status;               /* waitpid status of the last run that ended */
    int sent_signal;               /* the signal the test sent to end the last run, or 0; a
                                      test that signals the pid itself (from another thread)
                                      sets it first, so the end is not counted as a crash */
    unsigned runs;                 /* processes started so far */
    unsigned unexpected_exits;     /* runs that ended without the test asking (crash count) */
};

/* Creates the directory, data directories, secret (when opts->meta is NULL) and config;
 * starts nothing. *out is set only on success. */
int tl_node_create(const struct tl_node_options *opts, struct tl_node **out, struct cmn_err *err);

/* tl_node_create + tl_node_run. On failure everything is stopped, the directory kept (and
 * named in err, with the tail of the log). */
int tl_node_start(const struct tl_node_options *opts, struct tl_node **out, struct cmn_err *err);

/* Starts the node (which must not be running) with its config and waits until its RPC address
 * answers PING. On failure err says why, with the end of the log. */
int tl_node_run(struct tl_node *n, struct cmn_err *err);

/* Starts the node with extra arguments (NULL-terminated, after `-c CONF`; may be NULL) and
 * waits up to timeout_ms for it to exit by itself, for runs that must fail (a refused data
 * directory) or that end by themselves (--check). *status gets the waitpid status. Returns 0
 * when it exited, LODE_ETIMEOUT (it is then killed) or a spawn error. */
int tl_node_run_to_exit(struct tl_node *n, const char *const *args, uint32_t timeout_ms,
                        int *status, struct cmn_err *err);

/* (Re)writes the config from n->opts. */
int tl_node_write_config(struct tl_node *n, struct cmn_err *err);

/* Sends sig and reaps the node (SIGKILL after 10 s). Returns 0, or -ESRCH when not running. */
int tl_node_kill(struct tl_node *n, int sig);

/* True when running (reaps it, and counts an unexpected exit, if it ended on its own). */
bool tl_node_alive(struct tl_node *n);

/* Stops the node (SIGTERM), frees it. With failed, prints the log tail and keeps the
 * directory; otherwise removes the directory (but not data_dirs given in the options). */
void tl_node_destroy(struct tl_node *n, bool failed);

/* Prints the last `lines` lines of the log via TAP diagnostics. */
void tl_node_log_tail(struct tl_node *n, unsigned lines);

/* The whole log (malloc'd, NUL-terminated; caller frees), or NULL. */
char *tl_node_log_read(struct tl_node *n);

/* Runs that crashed: the log shows a sanitizer report, abort, segfault or assertion, or a
 * run ended by a signal nobody sent or exited on its own. Each is named via diag. */
int tl_node_crash_count(struct tl_node *n);

/* ---- RPC to a node ---- */

/* An authenticated connection to the node's RPC address (caller closes). */
int tl_node_connect(struct tl_node *n, uint32_t timeout_ms, struct cmn_rpc_sync **out,
                    struct cmn_err *err);
/* PING on a fresh connection: 0 when the node answers. */
int tl_node_ping(struct tl_node *n, uint32_t timeout_ms);

/* XXH3-64 of data: the checksum CHUNK_PUT carries. */
uint64_t tl_xxh3(const void *data, size_t len);

/* Deterministic pseudo-random bytes from a seed (so tests keep seeds, not data). */
void tl_fill(void *buf, size_t len, uint64_t seed);

/* One REQUEST frame with a protobuf body (msg may be NULL) and a raw payload, sent without
 * waiting (pipelining); *id (may be NULL) gets its request id, which the reply carries in
 * res->request_id (cmn_rpc_sync_recv). cmn_rpc_sync_send takes no payload, so pipelined puts
 * go through here; ids are far above those the client's own calls use. */
int tl_rpc_send(struct cmn_rpc_sync *c, unsigned method, const ProtobufCMessage *msg,
                const void *payload, size_t payload_len, uint64_t *id);

/* CHUNK_PUT of data with its real length and XXH3. `res` must be initialised; returns
 * res->status. */
int tl_chunk_put(struct cmn_rpc_sync *c, const uint8_t id[16], const void *data, size_t len,
                 uint32_t timeout_ms, struct cmn_rpc_result *res);
/* CHUNK_PUT with every field chosen by the caller (hostile tests). */
int tl_chunk_put_ex(struct cmn_rpc_sync *c, const uint8_t *id, size_t id_len, uint64_t length,
                    uint64_t xxh3, const void *payload, size_t payload_len, uint32_t timeout_ms,
                    struct cmn_rpc_result *res);
/* CHUNK_GET; the bytes are in res->payload. *info (may be NULL; caller frees with
 * lode__chunk_info__free_unpacked) gets the reply's ChunkInfo on success. A success without
 * a decodable ChunkInfo becomes LODE_EBADMSG. */
int tl_chunk_get(struct cmn_rpc_sync *c, const uint8_t *id, size_t id_len, uint64_t offset,
                 uint64_t length, uint32_t timeout_ms, struct cmn_rpc_result *res,
                 Lode__ChunkInfo **info);
int tl_chunk_stat(struct cmn_rpc_sync *c, const uint8_t *id, size_t id_len, uint32_t timeout_ms,
                  struct cmn_rpc_result *res, Lode__ChunkInfo **info);
int tl_chunk_delete(struct cmn_rpc_sync *c, const uint8_t *id, size_t id_len,
                    uint32_t timeout_ms, struct cmn_rpc_result *res);
/* One CHUNK_LIST page (after: NULL or 16 bytes). */
int tl_chunk_list(struct cmn_rpc_sync *c, const uint8_t *after, uint32_t max,
                  uint32_t timeout_ms, struct cmn_rpc_result *res, Lode__ChunkListResponse **out);
/* Every chunk, paging with `page` entries: *ids gets a malloc'd array of 16-byte ids and
 * *lengths (may be NULL) their lengths, *n the count. Fails with LODE_EBADMSG when the pages
 * are not in strictly increasing id order. */
int tl_chunk_list_all(struct cmn_rpc_sync *c, uint32_t page, uint32_t timeout_ms,
                      uint8_t (**ids)[16], uint64_t **lengths, size_t *n, struct cmn_err *err);
/* NODE_HEALTH (caller frees with lode__node_health_response__free_unpacked). */
int tl_node_health(struct cmn_rpc_sync *c, uint32_t timeout_ms, Lode__NodeHealthResponse **out,
                   struct cmn_err *err);

/* ---- what meta knows about nodes ---- */

/* CLUSTER_MAP_GET through the leader (free with lode__cluster_map__free_unpacked). */
int tl_meta_cluster_map(struct cmn_meta_client *mc, uint32_t timeout_ms, Lode__ClusterMap **out,
                        struct cmn_err *err);
/* The map's entry for a node uuid (16 bytes), or NULL. Points into map. */
Lode__NodeInfo *tl_meta_find_node(Lode__ClusterMap *map, const uint8_t *uuid, size_t uuid_len);
/* CORRUPT_LIST{nid} (free with lode__corrupt_list_response__free_unpacked). */
int tl_meta_corrupt_list(struct cmn_meta_client *mc, uint32_t nid, uint32_t timeout_ms,
                         Lode__CorruptListResponse **out, struct cmn_err *err);
/* One GC_LIST page: the first `max` entries of the GC queue (free with
 * lode__gc_list_response__free_unpacked). */
int tl_meta_gc_list(struct cmn_meta_client *mc, uint32_t max, uint32_t timeout_ms,
                    Lode__GcListResponse **out, struct cmn_err *err);
/* "UP", "SUSPECT", ... */
const char *tl_node_state_name(Lode__NodeState s);

#endif
