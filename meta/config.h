/* lode-meta configuration: the declarative key table plus the checks a table cannot express
 * (the `peers` list, the cluster secret).
 *
 * Lifecycle: zero a struct meta_config, fill it with cmn_conf_cli(meta_conf_table, ...), then
 * call meta_config_finish() to parse `peers` and load the secret; release everything with
 * meta_config_free(). The secret is held only in `secret` (wiped on free) and is never
 * printed: cmn_conf_dump() hides `cluster-secret` (SENSITIVE).
 */
#ifndef LODE_META_CONFIG_H
#define LODE_META_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/err.h"

#define META_ADDR_MAX 256          /* "host:port", NUL included */
#define META_SECRET_MIN 16         /* bytes */

/* One bootstrap voter from `peers`. */
struct meta_peer {
    uint64_t id;
    char raft_address[META_ADDR_MAX];
    char rpc_address[META_ADDR_MAX];
};

struct meta_config {
    /* ---- filled from meta_conf_table ---- */
    int64_t id;
    char *raft_address;
    char *rpc_address;
    char *metrics_address;         /* NULL = no metrics server */
    char *data_dir;
    char *peers;
    bool join;
    char *cluster_secret;          /* sensitive */
    char *cluster_secret_file;
    int log_level;                 /* enum cmn_log_level */
    char *log_file;
    uint64_t election_timeout_ms;
    uint64_t heartbeat_timeout_ms;
    int64_t snapshot_threshold;
    int64_t snapshot_trailing;
    uint64_t node_suspect_after_ms;
    uint64_t node_down_after_ms;
    uint64_t max_frame_size;
    uint64_t lmdb_map_size;

    /* ---- derived by meta_config_finish ---- */
    struct meta_peer *peer_list;   /* parsed `peers` (malloc'd), may be empty */
    size_t n_peers;
    uint8_t *secret;               /* the cluster secret bytes (malloc'd) */
    size_t secret_len;
};

/* The key table ({0}-terminated); also drives the sample and docs/config.md. */
extern const struct cmn_conf_opt meta_conf_table[];

/* Parses "ID=RAFTHOST:PORT/RPCHOST:PORT,..." into a malloc'd array (*out, caller frees;
 * NULL with *n = 0 for an empty string). Ids must be >= 1 and distinct, and so must the
 * addresses. Returns 0 or LODE_ECONFIG with the offending entry named in err. */
int meta_peers_parse(const char *s, struct meta_peer **out, size_t *n, struct cmn_err *err);

/* Checks what the table cannot and fills the derived fields: parses `peers` (required, and
 * must name this replica with its own addresses, unless join = true), loads the secret
 * (exactly one of cluster-secret / cluster-secret-file; at least META_SECRET_MIN bytes; a
 * trailing newline of the file is dropped) and checks timeouts against each other. Returns 0
 * or LODE_ECONFIG (or -errno reading the secret file) with a message naming the key. */
int meta_config_finish(struct meta_config *cfg, struct cmn_err *err);

/* Looks up a peer by raft id; NULL when absent. */
const struct meta_peer *meta_config_peer(const struct meta_config *cfg, uint64_t id);

/* Frees the table's strings and the derived fields; wipes the secret. */
void meta_config_free(struct meta_config *cfg);

#endif
