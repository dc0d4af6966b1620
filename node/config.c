#include "node/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "node/layout.h"

#define OFF(f) offsetof(struct node_config, f)
#define FAILURE_DOMAIN_MAX 127
#define META_REPLICAS_MAX 16
/* Records are aligned to the directory's block size, which is not known before the probe;
 * 64 KiB bounds every block size the store accepts, so this never under-estimates. */
#define BLOCK_BOUND (64u << 10)

const struct cmn_conf_opt node_conf_table[] = {
    {"cluster", CMN_CONF_STR, OFF(cluster), NULL,
     "Cluster name, written into the superblock of every data directory at format time: a "
     "directory of another cluster is refused at start. 1-63 characters of A-Z a-z 0-9 . _ -.",
     CMN_CONF_REQUIRED, 0, 0},
    {"data-dirs", CMN_CONF_STR, OFF(data_dirs), NULL,
     "Data directories, comma-separated, one per disk (created when missing; an empty one is "
     "formatted). Each holds a superblock naming this node, a LOCK file and volumes/.",
     CMN_CONF_REQUIRED, 0, 0},
    {"node-uuid", CMN_CONF_STR, OFF(node_uuid), NULL,
     "This node's identity, 32 hex digits (e.g. from `lodectl node list --json`, or any random "
     "value for a new node). When set, new data directories are formatted with it and a "
     "directory carrying another node's identity is refused at start: the only way a node "
     "with a single disk can tell a disk moved from another node. Unset: the identity is the "
     "one on the disks (created at the first format).",
     0, 0, 0},
    {"rpc-address", CMN_CONF_ADDR, OFF(rpc_address), NULL,
     "host:port the chunk service listens on (0.0.0.0 for every interface; then set "
     "advertise-address).",
     CMN_CONF_REQUIRED, 0, 0},
    {"advertise-address", CMN_CONF_ADDR, OFF(advertise_address), NULL,
     "host:port that meta, gateways and lodectl dial to reach this node, registered with "
     "meta; unset = rpc-address.",
     0, 0, 0},
    {"data-address", CMN_CONF_ADDR, OFF(data_address), NULL,
     "host:port of the fan-out data listener (docs/fanout.md): clients holding a data "
     "session connect here and the node writes the chunk ranges a gateway asks for straight "
     "into their buffers. Unset = no fan-out reads from this node (gateways then serve those "
     "ranges themselves).",
     0, 0, 0},
    {"data-advertise-address", CMN_CONF_ADDR, OFF(data_advertise_address), NULL,
     "host:port clients dial to reach the data listener, registered with meta; unset = "
     "data-address, with the advertised host when data-address listens on every interface.",
     0, 0, 0},
    {"rdma-address", CMN_CONF_ADDR, OFF(rdma_address), NULL,
     "host:port of the rc (RDMA) listener (docs/dataplane-rc.md): an address of an RDMA "
     "device's interface (0.0.0.0: every device; then the advertised host is registered). "
     "Clients connect queue pairs here and the node RDMA-WRITEs the chunk ranges a gateway "
     "asks for into their registered buffers. Unset = no rc transport on this node (gateways "
     "then serve its ranges of rc reads themselves). Needs a build with rdma-core.",
     0, 0, 0},
    {"rdma-staging-size", CMN_CONF_SIZE, OFF(rdma_staging_size), "64MiB",
     "Registered (pinned) memory per RDMA device through which the rc listener stages its "
     "writes; transfers beyond it wait their turn. Counts against RLIMIT_MEMLOCK.",
     0, 1 << 20, INT64_C(1) << 34},
    {"rdma-read-buffers", CMN_CONF_SIZE, OFF(rdma_read_buffers), "64MiB",
     "Registered (pinned) memory the node reads chunk ranges into when it serves rc or dc, "
     "so they are RDMA-written to clients from where the disk put them, without a copy "
     "through the staging memory; reads that find it full use ordinary buffers (and staging). "
     "0 = always stage. Counts against RLIMIT_MEMLOCK.",
     0, 0, INT64_C(1) << 34},
    {"failure-domain", CMN_CONF_STR, OFF(failure_domain), NULL,
     "Failure domain of this node (e.g. rack1 or host7): a stripe never places two of its "
     "chunks in one domain.",
     CMN_CONF_REQUIRED, 0, 0},
    {"meta", CMN_CONF_STR, OFF(meta), NULL,
     "RPC addresses of the lode-meta replicas (host:port, comma-separated); the node "
     "registers with their leader and heartbeats to it.",
     CMN_CONF_REQUIRED, 0, 0},
    {"cluster-secret", CMN_CONF_STR, OFF(cluster_secret), NULL,
     "Shared secret authenticating internal RPC (at least 16 bytes), the same on every "
     "daemon. Prefer cluster-secret-file; exactly one of the two must be set.",
     CMN_CONF_SENSITIVE, 0, 0},
    {"cluster-secret-file", CMN_CONF_STR, OFF(cluster_secret_file), NULL,
     "File holding the cluster secret (a trailing newline is ignored); readable only by the "
     "service user.",
     0, 0, 0},
    {"metrics-address", CMN_CONF_ADDR, OFF(metrics_address), NULL,
     "host:port serving Prometheus metrics at /metrics; unset = no metrics server.", 0, 0, 0},
    {"log-level", CMN_CONF_LOG_LEVEL, OFF(log_level), "info",
     "debug, info, warn or error (LODE_LOG_LEVEL in the environment overrides it).", 0, 0, 0},
    {"log-file", CMN_CONF_STR, OFF(log_file), NULL,
     "Append log lines to this file instead of stderr.", 0, 0, 0},
    {"io-backend", CMN_CONF_STR, OFF(io_backend), "auto",
     "Disk I/O: auto (io_uring with O_DIRECT where the kernel and file system allow it, else "
     "a thread pool; chosen per directory and logged at start), io_uring (fail when "
     "unavailable) or threads.",
     0, 0, 0},
    {"queue-depth", CMN_CONF_INT, OFF(queue_depth), "32",
     "Disk requests in flight per data directory; more wait in order inside the node.", 0, 1,
     4096},
    {"volume-size", CMN_CONF_SIZE, OFF(volume_size), "256MiB",
     "Size of each preallocated volume file; chunks are appended to volumes, so small chunks "
     "do not cost a file each. A multiple of 64KiB that holds at least one chunk of "
     "max-chunk-size.",
     0, 1 << 20, INT64_C(1) << 40},
    {"max-chunk-size", CMN_CONF_SIZE, OFF(max_chunk_size), "8MiB",
     "Largest chunk accepted by a put (larger ones are refused with \"value too large\").", 0,
     4096, 512 << 20},
    {"capacity-limit", CMN_CONF_SIZE, OFF(capacity_limit), "0",
     "Bytes each data directory may use; 0 = as much as its file system holds. When "
     "reached, puts fail with \"insufficient storage\" and reads go on.",
     0, 0, 0},
    {"heartbeat-interval", CMN_CONF_DURATION, OFF(heartbeat_interval_ms), "2s",
     "Heartbeat period to the meta leader (with used and capacity bytes). Keep it well below "
     "lode-meta's node-suspect-after.",
     0, 100, 60000},
    {"scrub-rate", CMN_CONF_SIZE, OFF(scrub_rate), "16MiB",
     "Bytes per second the background scrubber reads to verify checksums (a full pass, then "
     "again from the start); 0 disables scrubbing.",
     0, 0, 0},
    {"max-frame-size", CMN_CONF_SIZE, OFF(max_frame_size), "16448KiB",
     "Largest RPC frame accepted (header + body + payload); must be at least max-chunk-size "
     "+ 64KiB.",
     0, 4096, 1 << 30},
    CMN_DP_DC_CONF_KEYS(OFF),
    {0},
};

int node_config_parse_backend(const char *s, enum node_io_kind *out)
{
    if (!s || strcmp(s, "auto") == 0)
        *out = NODE_IO_AUTO;
    else if (strcmp(s, "io_uring") == 0)
        *out = NODE_IO_URING;
    else if (strcmp(s, "threads") == 0)
        *out = NODE_IO_THREADS;
    else
        return -EINVAL;
    return 0;
}

static int check_cluster(const char *s, struct cmn_err *err)
{
    size_t len = strlen(s);
    if (len == 0 || len >= NODE_CLUSTER_NAME_MAX)
        return cmn_err_set(err, LODE_ECONFIG, "cluster must be 1 to %d characters (it is %zu)",
                           NODE_CLUSTER_NAME_MAX - 1, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return cmn_err_set(err, LODE_ECONFIG,
                               "cluster '%s': character %zu is not one of A-Z a-z 0-9 . _ -", s,
                               i + 1);
    }
    return 0;
}

static int check_failure_domain(const char *s, struct cmn_err *err)
{
    size_t len = strlen(s);
    if (len == 0 || len > FAILURE_DOMAIN_MAX)
        return cmn_err_set(err, LODE_ECONFIG,
                           "failure-domain must be 1 to %d characters (it is %zu)",
                           FAILURE_DOMAIN_MAX, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isgraph(c))
            return cmn_err_set(err, LODE_ECONFIG,
                               "failure-domain: character %zu is blank or not printable", i + 1);
    }
    return 0;
}

static int derive_advertise(struct node_config *cfg, struct cmn_err *err)
{
    char host[NODE_ADDR_MAX];
    uint16_t port = 0;
    cfg->advertise[0] = '\0';
    if (cfg->advertise_address) {
        if (strlen(cfg->advertise_address) >= NODE_ADDR_MAX ||
            cmn_addr_split(cfg->advertise_address, host, sizeof(host), &port) || port == 0)
            return cmn_err_set(err, LODE_ECONFIG,
                               "advertise-address '%s' must name a host and a port (not 0)",
                               cfg->advertise_address);
        if (strcmp(host, "0.0.0.0") == 0)
            return cmn_err_set(err, LODE_ECONFIG,
                               "advertise-address '%s' is a wildcard; give an address others "
                               "can dial", cfg->advertise_address);
        snprintf(cfg->advertise, sizeof(cfg->advertise), "%s", cfg->advertise_address);
        return 0;
    }
    if (strlen(cfg->rpc_address) >= NODE_ADDR_MAX ||
        cmn_addr_split(cfg->rpc_address, host, sizeof(host), &port))
        return cmn_err_set(err, LODE_ECONFIG, "rpc-address '%s' is not host:port",
                           cfg->rpc_address);
    if (strcmp(host, "0.0.0.0") == 0)
        return cmn_err_set(err, LODE_ECONFIG,
                           "rpc-address %s listens on every interface, which nobody can dial: "
                           "set advertise-address to the address meta and gateways should use",
                           cfg->rpc_address);
    /* Port 0 (tests): main advertises the port actually bound. */
    if (port != 0)
        snprintf(cfg->advertise, sizeof(cfg->advertise), "%s", cfg->rpc_address);
    return 0;
}

static int derive_data_advertise(struct node_config *cfg, struct cmn_err *err)
{
    char host[NODE_ADDR_MAX], ahost[NODE_ADDR_MAX];
    uint16_t port = 0, aport = 0;
    cfg->data_advertise[0] = '\0';
    if (!cfg->data_address) {
        if (cfg->data_advertise_address)
            return cmn_err_set(err, LODE_ECONFIG,
                               "data-advertise-address is set but data-address is not: set "
                               "data-address to run the data listener");
        return 0;
    }
    if (strlen(cfg->data_address) >= NODE_ADDR_MAX ||
        cmn_addr_split(cfg->data_address, host, sizeof(host), &port))
        return cmn_err_set(err, LODE_ECONFIG, "data-address '%s' is not host:port",
                           cfg->data_address);
    if (cfg->data_advertise_address) {
        if (strlen(cfg->data_advertise_address) >= NODE_ADDR_MAX ||
            cmn_addr_split(cfg->data_advertise_address, ahost, sizeof(ahost), &aport) ||
            aport == 0 || strcmp(ahost, "0.0.0.0") == 0)
            return cmn_err_set(err, LODE_ECONFIG,
                               "data-advertise-address '%s' must name a host others can dial "
                               "and a port (not 0)", cfg->data_advertise_address);
        snprintf(cfg->data_advertise, sizeof(cfg->data_advertise), "%s",
                 cfg->data_advertise_address);
        return 0;
    }
    if (port == 0)
        return 0; /* tests: main advertises the port bound */
    if (strcmp(host, "0.0.0.0") == 0) {
        /* Every interface: the host others dial is the node's advertised one. */
        if (!cfg->advertise[0] ||
            cmn_addr_split(cfg->advertise, ahost, sizeof(ahost), &aport) != 0)
            return cmn_err_set(err, LODE_ECONFIG,
                               "data-address %s listens on every interface: set "
                               "data-advertise-address", cfg->data_address);
        snprintf(cfg->data_advertise, sizeof(cfg->data_advertise), "%s:%u", ahost,
                 (unsigned)port);
        return 0;
    }
    snprintf(cfg->data_advertise, sizeof(cfg->data_advertise), "%s", cfg->data_address);
    return 0;
}

static int derive_rdma_advertise(struct node_config *cfg, struct cmn_err *err)
{
    char host[NODE_ADDR_MAX], ahost[NODE_ADDR_MAX];
    uint16_t port = 0, aport = 0;
    cfg->rdma_advertise[0] = '\0';
    if (!cfg->rdma_address)
        return 0;
#ifndef HAVE_RDMA
    return cmn_err_set(err, LODE_ECONFIG,
                       "rdma-address is set but this lode-node was built without RDMA "
                       "(rdma-core was not found at build time): unset it, or rebuild with "
                       "rdma-core's development files installed");
#endif
    if (strlen(cfg->rdma_address) >= NODE_ADDR_MAX ||
        cmn_addr_split(cfg->rdma_address, host, sizeof(host), &port))
        return cmn_err_set(err, LODE_ECONFIG, "rdma-address '%s' is not host:port",
                           cfg->rdma_address);
    if (port == 0)
        return 0; /* tests: main advertises the port bound */
    if (strcmp(host, "0.0.0.0") == 0) {
        if (!cfg->advertise[0] ||
            cmn_addr_split(cfg->advertise, ahost, sizeof(ahost), &aport) != 0)
            return cmn_err_set(err, LODE_ECONFIG,
                               "rdma-address %s listens on every device: set "
                               "advertise-address, whose host is then registered for rc",
                               cfg->rdma_address);
        snprintf(cfg->rdma_advertise, sizeof(cfg->rdma_advertise), "%s:%u", ahost,
                 (unsigned)port);
        return 0;
    }
    snprintf(cfg->rdma_advertise, sizeof(cfg->rdma_advertise), "%s", cfg->rdma_address);
    return 0;
}

/* ---- dc (docs/dataplane-dc.md section 8) ---------------------------------------------- */

static int derive_dc(struct node_config *cfg, struct cmn_err *err)
{
    return cmn_dp_dc_config_from_keys(&cfg->dc_keys, &cfg->dc, &cfg->dc_enabled,
                                      &cfg->dc_key_public, err);
}

int node_config_dc_buildable(const struct node_config *cfg, struct cmn_err *err)
{
    return cmn_dp_dc_buildable(cfg->dc_enabled, "lode-node", err);
}

static int check_sizes(const struct node_config *cfg, struct cmn_err *err)
{
    if (cfg->max_frame_size < cfg->max_chunk_size + NODE_FRAME_SLACK)
        return cmn_err_set(err, LODE_ECONFIG,
                           "max-frame-size (%" PRIu64 " bytes) must be at least max-chunk-size "
                           "(%" PRIu64 ") + 64KiB, or chunks of the largest size could not "
                           "be sent",
                           cfg->max_frame_size, cfg->max_chunk_size);
    if (cfg->volume_size % BLOCK_BOUND)
        return cmn_err_set(err, LODE_ECONFIG,
                           "volume-size (%" PRIu64 " bytes) must be a multiple of 64KiB, so "
                           "that it is a whole number of blocks on any disk",
                           cfg->volume_size);
    /* The volume header block, the largest record and the tail kept for tombstones and the
     * seal (docs/disk-format.md). */
    uint64_t need = node_record_size(cfg->max_chunk_size, BLOCK_BOUND) + 2 * BLOCK_BOUND;
    if (cfg->volume_size < need)
        return cmn_err_set(err, LODE_ECONFIG,
                           "volume-size (%" PRIu64 " bytes) cannot hold a chunk of "
                           "max-chunk-size (%" PRIu64 ") with its headers: make it at least "
                           "%" PRIu64 " bytes, or lower max-chunk-size",
                           cfg->volume_size, cfg->max_chunk_size, need);
    if (cfg->capacity_limit && cfg->capacity_limit < cfg->volume_size)
        return cmn_err_set(err, LODE_ECONFIG,
                           "capacity-limit (%" PRIu64 " bytes) is below volume-size (%" PRIu64
                           "): not even one volume would fit; raise it or set 0",
                           cfg->capacity_limit, cfg->volume_size);
    return 0;
}

int node_config_finish(struct node_config *cfg, struct cmn_err *err)
{
    int rc;
    if (!cfg->cluster || !cfg->data_dirs || !cfg->rpc_address || !cfg->failure_domain ||
        !cfg->meta)
        return cmn_err_set(err, LODE_ECONFIG,
                           "cluster, data-dirs, rpc-address, failure-domain and meta are "
                           "required");
    if ((rc = check_cluster(cfg->cluster, err)) || (rc = check_failure_domain(cfg->failure_domain,
                                                                             err)) ||
        (rc = cmn_conf_check_addr_list("meta", cfg->meta, META_REPLICAS_MAX, err)) || (rc = derive_advertise(cfg, err)) ||
        (rc = derive_data_advertise(cfg, err)) || (rc = derive_rdma_advertise(cfg, err)) ||
        (rc = check_sizes(cfg, err)) || (rc = derive_dc(cfg, err)))
        return rc;
    if (node_config_parse_backend(cfg->io_backend, &cfg->io_kind) != 0)
        return cmn_err_set(err, LODE_ECONFIG,
                           "io-backend '%s' is not one of auto, io_uring, threads",
                           cfg->io_backend);

    cfg->have_uuid = cfg->node_uuid != NULL;
    if (cfg->have_uuid && (cmn_id_from_hex(cfg->node_uuid, &cfg->uuid) != 0 ||
                           cmn_id_is_zero(&cfg->uuid)))
        return cmn_err_set(err, LODE_ECONFIG,
                           "node-uuid '%s' is not 32 hex digits (or is all zeros)",
                           cfg->node_uuid);

    cmn_conf_list_free(cfg->dirs, cfg->n_dirs);
    cfg->dirs = NULL;
    cfg->n_dirs = 0;
    if ((rc = cmn_conf_split_list("data-dirs", cfg->data_dirs, NODE_DIRS_MAX, false, &cfg->dirs,
                                  &cfg->n_dirs, err)))
        return rc;

    if (cfg->secret) {
        explicit_bzero(cfg->secret, cfg->secret_len);
        free(cfg->secret);
        cfg->secret = NULL;
        cfg->secret_len = 0;
    }
    return cmn_conf_load_secret(cfg->cluster_secret, cfg->cluster_secret_file, NODE_SECRET_MIN,
                                &cfg->secret, &cfg->secret_len, err);
}

void node_config_free(struct node_config *cfg)
{
    if (cfg->cluster_secret)
        explicit_bzero(cfg->cluster_secret, strlen(cfg->cluster_secret));
    if (cfg->dc_keys.key) /* the configuration's own string (const only in the keys view) */
        explicit_bzero((char *)cfg->dc_keys.key, strlen(cfg->dc_keys.key));
    explicit_bzero(&cfg->dc, sizeof(cfg->dc));
    cmn_conf_free(node_conf_table, cfg);
    cmn_conf_list_free(cfg->dirs, cfg->n_dirs);
    cfg->dirs = NULL;
    cfg->n_dirs = 0;
    if (cfg->secret) {
        explicit_bzero(cfg->secret, cfg->secret_len);
        free(cfg->secret);
    }
    cfg->secret = NULL;
    cfg->secret_len = 0;
}
