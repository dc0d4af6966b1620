/* lode-node configuration: the declarative key table plus the checks a table cannot express
 * (lists of data directories and meta replicas, the advertised address, the cluster secret,
 * sizes that depend on each other).
 *
 * Lifecycle: zero a struct node_config, fill it with cmn_conf_cli(node_conf_table, ...), then
 * call node_config_finish() to derive the lists, the backend and the secret; release
 * everything with node_config_free() (also after a failed finish). The secret is held only in
 * `secret` (wiped on free) and is never printed: cmn_conf_dump() hides `cluster-secret`.
 */
#ifndef LODE_NODE_CONFIG_H
#define LODE_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/dp_dc.h"
#include "common/id.h"
#include "common/err.h"
#include "node/io.h"

#define NODE_SECRET_MIN 16            /* bytes, as for lode-meta */
#define NODE_ADDR_MAX 256             /* "host:port", NUL included */
#define NODE_DIRS_MAX 64              /* data directories per node */
#define NODE_FRAME_SLACK (64u << 10)  /* frame bytes beyond a chunk: header and body */

struct node_config {
    /* ---- filled from node_conf_table ---- */
    char *cluster;
    char *data_dirs;
    char *node_uuid;                  /* NULL: the identity lives on the disks only */
    char *rpc_address;
    char *advertise_address;          /* NULL: derived from rpc-address by finish/main */
    char *data_address;               /* NULL: no fan-out data listener */
    char *data_advertise_address;     /* NULL: derived from data-address / advertise host */
    char *rdma_address;               /* NULL: no rc (RDMA) listener */
    uint64_t rdma_staging_size;       /* registered staging memory of the rc listener */
    uint64_t rdma_read_buffers;       /* registered read arena (0: none) */
    char *failure_domain;
    char *meta;
    char *cluster_secret;             /* sensitive */
    char *cluster_secret_file;
    char *metrics_address;            /* NULL = no metrics server */
    int log_level;                    /* enum cmn_log_level */
    char *log_file;
    char *io_backend;
    int64_t queue_depth;
    uint64_t volume_size;
    uint64_t max_chunk_size;
    uint64_t capacity_limit;
    uint64_t heartbeat_interval_ms;
    uint64_t scrub_rate;              /* bytes per second, 0 = no scrubbing */
    uint64_t max_frame_size;
    /* dc transport (docs/dataplane-dc.md section 8); on when dc-device or dc-address is set */
    struct cmn_dp_dc_keys dc_keys;       /* dc-* as read; dc_keys.key sensitive */

    /* ---- derived by node_config_finish ---- */
    char **dirs;                      /* data-dirs split and trimmed (malloc'd) */
    size_t n_dirs;
    enum node_io_kind io_kind;
    /* What meta and gateways dial: advertise-address, else rpc-address. Empty when
     * rpc-address has port 0 and no advertise-address is set: main fills it in with the
     * port actually bound. */
    char advertise[NODE_ADDR_MAX];
    /* What clients dial for fan-out data sessions; empty when there is no data listener or
     * its port is 0 (main fills it in with the port bound). */
    char data_advertise[NODE_ADDR_MAX];
    /* What clients dial for rc connections (rdma-address, with the advertised host when it
     * listens on every interface); empty when there is no rc listener or its port is 0
     * (main fills it in with the port bound). */
    char rdma_advertise[NODE_ADDR_MAX];
    bool have_uuid;                   /* node-uuid was set: `uuid` holds it */
    struct cmn_id uuid;
    uint8_t *secret;                  /* the cluster secret bytes (malloc'd) */
    size_t secret_len;
    /* dc: whether it is configured, and the checked settings for cmn_dp_dc_create (strings
     * borrowed from dc_keys; its key SENSITIVE, wiped on free). dc_key_public:
     * the key is cuObject's published default. */
    bool dc_enabled;
    bool dc_key_public;
    struct cmn_dp_dc_config dc;
};

/* The key table ({0}-terminated); also drives the sample and docs/config.md. */
extern const struct cmn_conf_opt node_conf_table[];

/* Checks what the table cannot and fills the derived fields:
 *   - cluster: 1..63 characters of [A-Za-z0-9._-] (it is stored in every superblock);
 *   - data-dirs: 1..NODE_DIRS_MAX distinct non-empty paths;
 *   - failure-domain: 1..127 printable characters without blanks;
 *   - meta: 1 or more distinct host:port entries with a port;
 *   - advertise-address: required (and must name a port) when rpc-address binds the wildcard
 *     address 0.0.0.0, since nobody can dial that;
 *   - rdma-address: host:port, only in a build with RDMA (rdma-core found at build time);
 *   - io-backend: auto, io_uring or threads;
 *   - max-frame-size >= max-chunk-size + 64 KiB; volume-size is a multiple of 64 KiB and
 *     holds at least one chunk of max-chunk-size with its headers and the volume's reserved
 *     tail; capacity-limit is 0 or at least volume-size;
 *   - dc-*: dc-address an IP literal; dc-key 1..16 hex digits after 0x, or decimal, never
 *     quoted in a message; with dc-device or dc-address set, the settings pass
 *     cmn_dp_dc_config_check (so --check validates them in any build);
 *   - the cluster secret (common/conf.h, cmn_conf_load_secret; >= NODE_SECRET_MIN bytes).
 * Returns 0, or LODE_ECONFIG (or -errno reading the secret file) with a message naming the
 * key. */
int node_config_finish(struct node_config *cfg, struct cmn_err *err);

/* Whether this build can run the configured dc transport: LODE_ECONFIG ("built without mlx5
 * direct verbs") when dc is configured and configure did not find mlx5dv, else 0. main
 * calls it at start; --check does not, so a configuration can be checked on any host. */
int node_config_dc_buildable(const struct node_config *cfg, struct cmn_err *err);

/* Frees the table's strings and the derived fields; wipes the secret. */
void node_config_free(struct node_config *cfg);

/* "auto", "io_uring", "threads" -> kind. Returns 0 or -EINVAL. */
int node_config_parse_backend(const char *s, enum node_io_kind *out);

#endif
