/* Real lode-meta processes on loopback, for integration tests and benchmarks.
 *
 *   struct tl_cluster *c;
 *   struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
 *   if (tl_cluster_start(&o, &c, &err) != 0) tap_bail("%s", err.msg);
 *   ... tl_cluster_client(c), tl_cluster_kill(c, i, SIGKILL), tl_cluster_restart(c, i) ...
 *   int rc = tap_done();
 *   tl_cluster_destroy(c, rc != 0);
 *
 * Everything lives in a fresh directory under $TEST_TMPDIR (or /tmp): the cluster secret,
 * one config, data directory and log file (the daemon's stdout and stderr) per replica.
 * The binary is $LODE_BUILDDIR/lode-meta, or ./lode-meta when that is unset.
 *
 * No test may leave processes behind: every child gets PR_SET_PDEATHSIG(SIGKILL), so it dies
 * with the test whatever kills the test (a signal, a sanitizer abort), and an atexit handler
 * stops the replicas of every cluster not yet destroyed (tap_bail, an early return). On
 * failure the directory is kept and named, and the tail of each replica's log is printed as
 * TAP diagnostics.
 *
 * Single-threaded: call from the thread that created the cluster (the death signal is tied
 * to it).
 */
#ifndef LODE_TESTS_LIB_PROC_H
#define LODE_TESTS_LIB_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/rpc.h"
#include "meta.pb-c.h"
#include "tests/lib/daemon.h"

struct cmn_meta_client;

#define TL_MAX_REPLICAS 9
#define TL_ADDR_MAX 64

struct tl_replica {
    unsigned id;                   /* raft server id (1-based) */
    char raft_addr[TL_ADDR_MAX];
    char rpc_addr[TL_ADDR_MAX];
    char *conf_path;               /* malloc'd */
    char *data_dir;
    char *log_path;                /* stdout + stderr of every run, appended */
    pid_t pid;                     /* 0 when not running */
    int last_status;               /* waitpid status of the last run that ended */
    bool join;                     /* started with join = true (added by add-voter) */
    int sent_signal;               /* the signal the test sent to end the last run, or 0 */
};

struct tl_cluster_options {
    unsigned replicas;             /* initial voters, 1..TL_MAX_REPLICAS (default 3) */
    const char *name;              /* temp directory prefix (default "meta") */
    const char *election_timeout;  /* default "600ms" (the daemon default) */
    const char *heartbeat_timeout; /* default "100ms" */
    const char *log_level;         /* default "info" */
    const char *extra_conf;        /* lines appended to every config, or NULL */
    uint32_t ready_timeout_ms;     /* wait for PING after each start (default 10000) */
};

#define TL_CLUSTER_OPTIONS_DEFAULT {.replicas = 3}

struct tl_cluster {
    char *dir;                     /* the unique temp directory */
    char *secret_path;
    char secret_text[65];          /* 64 random hex characters; the file holds exactly these */
    size_t secret_len;             /* 64 */
    char *meta_bin;
    char *peers;                   /* the `peers =` value of the initial voters */
    struct tl_cluster_options opts;
    unsigned n;                    /* replicas configured so far (initial + added) */
    struct tl_replica r[TL_MAX_REPLICAS];
    struct cmn_meta_client *mc;    /* over the initial voters; created lazily */
};

/* Creates the directory, writes the secret and configs, starts opts->replicas replicas and
 * waits until each answers PING. Does NOT wait for a leader (tl_cluster_wait_leader).
 * On failure everything started is stopped, the directory is kept, and err says why (with
 * the tail of the log of the replica that failed). *out is set only on success. */
int tl_cluster_start(const struct tl_cluster_options *opts, struct tl_cluster **out,
                     struct cmn_err *err);

/* Stops every replica (SIGTERM, SIGKILL after 5 s), frees the cluster. With failed, prints
 * each replica's log tail via diag and keeps the directory (its path is printed); otherwise
 * removes it. */
void tl_cluster_destroy(struct tl_cluster *c, bool failed);

/* A meta client over the RPC addresses of the initial voters, owned by the cluster. NULL
 * only if it could not be created (out of memory). */
struct cmn_meta_client *tl_cluster_client(struct tl_cluster *c);

/* Sends `sig` to replica i and reaps it (waits up to 5 s, then SIGKILL). Returns 0, or
 * -ESRCH when it was not running. The exit status is kept in r[i].last_status. */
int tl_cluster_kill(struct tl_cluster *c, unsigned i, int sig);

/* Starts replica i again with the same config and waits for PING. */
int tl_cluster_restart(struct tl_cluster *c, unsigned i, struct cmn_err *err);

/* Configures and starts one more replica with join = true (not yet a voter: the caller adds
 * it with META_ADD_VOTER). *index receives its slot in c->r. */
int tl_cluster_add(struct tl_cluster *c, unsigned *index, struct cmn_err *err);

/* True when replica i is running (reaps it if it exited on its own). */
bool tl_cluster_alive(struct tl_cluster *c, unsigned i);

/* Comma-separated RPC addresses of the initial voters (static buffer in c; valid until the
 * next call). */
const char *tl_cluster_rpc_addrs(struct tl_cluster *c);

/* META_STATUS of replica i (caller frees with lode__meta_status_response__free_unpacked). */
int tl_cluster_status(struct tl_cluster *c, unsigned i, uint32_t timeout_ms,
                      Lode__MetaStatusResponse **out, struct cmn_err *err);

/* Waits until exactly one running replica says it is the leader and every other running
 * replica that answers agrees on its id. *index gets the leader's slot. Returns 0 or
 * LODE_ETIMEOUT. */
int tl_cluster_wait_leader(struct tl_cluster *c, uint32_t timeout_ms, unsigned *index);

/* META_DIGEST of replica i: SHA-256 of its state and its last applied index. */
int tl_cluster_digest(struct tl_cluster *c, unsigned i, uint8_t digest[32], uint64_t *applied,
                      struct cmn_err *err);

/* Waits until every running replica reports the same digest. Returns 0 or LODE_ETIMEOUT
 * (the differing digests are printed via diag). */
int tl_cluster_wait_converged(struct tl_cluster *c, uint32_t timeout_ms);

/* One call to replica i on a fresh authenticated connection (no redirects). `res` must be
 * initialised; returns res->status (or the connect error, also stored in res). */
int tl_call_at(struct tl_cluster *c, unsigned i, unsigned method, unsigned flags,
               const ProtobufCMessage *req, uint32_t timeout_ms, struct cmn_rpc_result *res);

/* Number of replicas whose log shows a crash (sanitizer report, abort, segfault, assertion)
 * or that died by a signal nobody sent; each one is named via diag. */
int tl_cluster_crash_count(struct tl_cluster *c);

/* Prints the last `lines` lines of replica i's log via diag. */
void tl_cluster_log_tail(struct tl_cluster *c, unsigned i, unsigned lines);

/* ---- Mutations through a meta client, for tests and benches. Each builds a fresh Command
 * (so the client stamps a new (client_id, seq)), calls the leader and decodes the
 * CommandResult. They return the status (0, a domain error, or a transport error); `out`
 * (may be NULL) receives the details. */
struct tl_commit_result {
    int status;
    char message[512];
    uint64_t version;              /* PutObject / CompleteUpload */
    char upload_id[128];           /* CreateUpload */
};

/* `cmd` must be fresh (client_id empty) and have its op set. */
int tl_commit(struct cmn_meta_client *mc, unsigned method, Lode__Command *cmd,
              uint32_t timeout_ms, struct tl_commit_result *out);
int tl_bucket_create(struct cmn_meta_client *mc, const char *bucket, const char *owner,
                     uint32_t timeout_ms, struct tl_commit_result *out);
/* An object of `size` bytes (etag derived from key and size; no layout). if_version and
 * if_absent are PutObject's conditions (0 / false = unconditional). */
int tl_object_put(struct cmn_meta_client *mc, const char *bucket, const char *key,
                  uint64_t size, uint64_t if_version, bool if_absent, uint32_t timeout_ms,
                  struct tl_commit_result *out);
int tl_object_delete(struct cmn_meta_client *mc, const char *bucket, const char *key,
                     uint32_t timeout_ms, struct tl_commit_result *out);

/* Helpers shared by tests. */
/* "" for an empty message, else " (message)": for test names that show a reason only when
 * there is one. Four static buffers, reused in turn. */
const char *tl_why(const char *message);
/* A free TCP port on 127.0.0.1 (bound, read, closed): "127.0.0.1:PORT" into out. */
int tl_free_addr(char *out, size_t size);
/* tl_tmpdir() and tl_rmtree() are in tests/lib/daemon.h. */

#endif
