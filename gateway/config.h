/* lode-gateway configuration: the declarative key table plus the checks a table cannot
 * express (the meta replica list, base domains, the region, sizes and erasure settings that
 * depend on each other, the memory one request may pin, the cluster secret).
 *
 * Lifecycle: zero a struct gw_config, fill it with gw_config_cli() (the daemon) or with
 * cmn_conf_defaults / cmn_conf_set over gw_conf_table followed by gw_config_finish() (tests,
 * tools); release everything with gw_config_free() (also after a failed finish). The secret
 * is held only in `secret` (wiped on free) and is never printed: cmn_conf_dump() hides
 * `cluster-secret`.
 */
#ifndef LODE_GATEWAY_CONFIG_H
#define LODE_GATEWAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/dp_dc.h"
#include "common/err.h"

#define GW_PROG "lode-gateway"
#define GW_ADDR_MAX 256                  /* "host:port", NUL included */
#define GW_SECRET_MIN 16                 /* bytes, as for lode-meta and lode-node */
#define GW_WORKERS_MAX 64
#define GW_META_REPLICAS_MAX 16
#define GW_DOMAINS_MAX 16
#define GW_DOMAIN_MAX 253                /* a DNS name without the trailing dot */
#define GW_REGION_MAX 63
/* What the erasure coder supports (gateway/ec.h). */
#define GW_EC_DATA_MAX 16
#define GW_EC_PARITY_MAX 8
/* Chunks are at most lode-node's default max-chunk-size, so any node with default settings
 * accepts every chunk a gateway writes. */
#define GW_CHUNK_SIZE_MAX (8u << 20)
#define GW_CHUNK_ALIGN 4096u
/* Frame bytes beyond a chunk (header and protobuf body); the RPC clients toward nodes accept
 * frames of GW_CHUNK_SIZE_MAX + GW_FRAME_SLACK. */
#define GW_FRAME_SLACK (64u << 10)
/* What inflight-stripes x (ec-data + ec-parity) x chunk-size may reach: the chunk buffers
 * one request may hold at once. */
#define GW_REQUEST_BUFFER_MAX (1ull << 30)

struct gw_config {
    /* ---- filled from gw_conf_table ---- */
    char *listen;                        /* S3 endpoint host:port */
    int64_t workers;                     /* 0 = one per CPU */
    int64_t max_connections;
    char *meta;
    char *cluster_secret;                /* sensitive */
    char *cluster_secret_file;
    char *region;
    char *base_domains;                  /* NULL: path-style addressing only */
    int64_t ec_data;
    int64_t ec_parity;
    bool degraded_writes;
    uint64_t chunk_size;
    uint64_t small_object_threshold;
    uint64_t max_object_size;
    uint64_t max_put_size;
    uint64_t max_header_bytes;
    int64_t max_headers;
    uint64_t idle_timeout_ms;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t clock_skew_ms;
    int64_t inflight_stripes;
    uint64_t node_timeout_ms;
    uint64_t meta_timeout_ms;
    uint64_t key_cache_ttl_ms;
    uint64_t key_cache_negative_ttl_ms;
    int64_t key_cache_size;
    uint64_t bucket_cache_ttl_ms;        /* 0 = no bucket cache */
    uint64_t map_refresh_ms;
    bool gc;
    uint64_t gc_interval_ms;
    int64_t gc_batch;
    char *data_address;                  /* NULL = no fan-out data listeners */
    char *data_advertise_address;        /* NULL = data_address */
    char *rdma_address;                  /* NULL = no rc (RDMA) listeners */
    uint64_t rdma_staging_size;          /* registered staging memory per worker's listener */
    uint64_t rdma_upload_buffers;        /* per worker: registered memory staged uploads land in */
    uint64_t session_ttl_ms;
    uint64_t fanout_lease_ms;
    uint64_t fanout_client_cap;
    /* dc transport (docs/dataplane-dc.md section 8); on when dc-device or dc-address is set */
    struct cmn_dp_dc_keys dc_keys;       /* dc-* as read; dc_keys.key sensitive */
    char *metrics_address;               /* NULL = no metrics server */
    int log_level;                       /* enum cmn_log_level */
    char *log_file;

    /* ---- derived by gw_config_finish ---- */
    char listen_host[GW_ADDR_MAX];
    uint16_t listen_port;                /* 0: any free port (tests) */
    unsigned n_workers;                  /* workers, or the CPU count capped at GW_WORKERS_MAX */
    char **domains;                      /* base-domains split, lower-cased (malloc'd) */
    size_t n_domains;
    uint64_t request_buffer_bytes;       /* inflight-stripes x (k + m) x chunk-size */
    uint8_t *secret;                     /* the cluster secret bytes (malloc'd) */
    size_t secret_len;
    /* Fan-out data listeners (data-address set): worker w listens on data_host:data_port + w
     * (port 0: any free port, tests) and is advertised as data_adv_host:data_adv_port + w
     * (data_adv_port 0: main fills in what was bound). */
    char data_host[GW_ADDR_MAX];
    uint16_t data_port;
    char data_adv_host[GW_ADDR_MAX];
    uint16_t data_adv_port;
    /* rc listeners (rdma-address set): worker w listens on rdma_host:rdma_port + w (port 0:
     * any free port, tests), advertised as the same address. */
    char rdma_host[GW_ADDR_MAX];
    uint16_t rdma_port;
    /* dc: whether it is configured, and the checked settings each worker's cmn_dp_dc_create
     * gets (strings borrowed from dc_keys; its key SENSITIVE, wiped on free).
     * dc_key_public: the key is cuObject's published default. */
    bool dc_enabled;
    bool dc_key_public;
    struct cmn_dp_dc_config dc;
};

/* The key table ({0}-terminated); also drives the sample and docs/config.md. */
extern const struct cmn_conf_opt gw_conf_table[];

/* Checks what the table cannot and fills the derived fields:
 *   - meta: 1..GW_META_REPLICAS_MAX distinct host:port entries with a port;
 *   - listen and metrics-address: host:port; not the same address unless the port is 0;
 *   - region: 1..63 of a-z 0-9 -;
 *   - base-domains: up to GW_DOMAINS_MAX distinct DNS names (letters, digits, hyphens and
 *     dots; labels of 1..63 characters), kept lower-cased;
 *   - chunk-size a multiple of 4KiB; small-object-threshold at most chunk-size (a small
 *     object is stored whole in one chunk per replica); max-put-size at most
 *     max-object-size;
 *   - inflight-stripes x (ec-data + ec-parity) x chunk-size at most 1GiB;
 *   - data-address and rdma-address: host:port with room for a port per worker; rdma-address
 *     names one device's address (clients dial it) and needs a build with RDMA;
 *   - dc-*: dc-address an IP literal; dc-key 0x and 1..16 hex digits, or decimal, never
 *     quoted in a message; with dc-device or dc-address set, the settings pass
 *     cmn_dp_dc_config_check (so --check validates them in any build);
 *   - the cluster secret (cmn_conf_load_secret; >= GW_SECRET_MIN bytes).
 * Returns 0, or LODE_ECONFIG (or -errno reading the secret file) with a message naming the
 * key. Safe to call again after changing keys (derived fields are rebuilt). */
int gw_config_finish(struct gw_config *cfg, struct cmn_err *err);

/* Whether this build can run the configured dc transport: LODE_ECONFIG ("built without mlx5
 * direct verbs") when dc is configured and configure did not find mlx5dv, else 0. main
 * calls it at start; --check does not, so a configuration can be checked on any host. */
int gw_config_dc_buildable(const struct gw_config *cfg, struct cmn_err *err);

/* Frees the table's strings and the derived fields; wipes the secret. The struct is left
 * zeroed of pointers, so calling it twice is harmless. */
void gw_config_free(struct gw_config *cfg);

/* The daemon's command line (common/conf.h, cmn_conf_cli_finish with gw_config_finish):
 *   lode-gateway -c FILE [--set key=value]... [--check] [--print-sample] [--print-markdown]
 * Returns 1 when the program should exit now with *exit_code (help, sample, --check, or a
 * refusal already printed on stderr as "lode-gateway: reason"; cfg is then released), 0 to
 * go on with a complete cfg. `cfg` must be zeroed. */
int gw_config_cli(struct gw_config *cfg, int argc, char **argv, int *exit_code);

/* Logs start-up warnings about a finished configuration: an inline secret or a secret file
 * readable by others, ec-parity 0 (objects would not survive the loss of one node), and dc
 * with cuObject's public DC key. */
void gw_config_log_warnings(const struct gw_config *cfg);

#endif
