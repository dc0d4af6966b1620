#include "meta/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(struct meta_config, f)

const struct cmn_conf_opt meta_conf_table[] = {
    {"id", CMN_CONF_INT, OFF(id), NULL,
     "Raft server id of this replica: unique in the group, never reused after removal.",
     CMN_CONF_REQUIRED, 1, INT64_MAX},
    {"raft-address", CMN_CONF_ADDR, OFF(raft_address), NULL,
     "host:port for raft traffic between replicas (IPv4 literal; the raft transport is "
     "IPv4-only).",
     CMN_CONF_REQUIRED, 0, 0},
    {"rpc-address", CMN_CONF_ADDR, OFF(rpc_address), NULL,
     "host:port where gateways, nodes and lodectl reach this replica.", CMN_CONF_REQUIRED, 0,
     0},
    {"metrics-address", CMN_CONF_ADDR, OFF(metrics_address), NULL,
     "host:port serving Prometheus metrics at /metrics; unset = no metrics server.", 0, 0, 0},
    {"data-dir", CMN_CONF_STR, OFF(data_dir), NULL,
     "Directory for the raft log and snapshots (raft/) and the rebuildable LMDB state "
     "(state/). Keep it on ext4 or xfs: on tmpfs raft cannot use direct I/O.",
     CMN_CONF_REQUIRED, 0, 0},
    {"peers", CMN_CONF_STR, OFF(peers), NULL,
     "Bootstrap voters as ID=RAFTHOST:PORT/RPCHOST:PORT, comma-separated, including this "
     "replica. Used only on the very first start of a new group, and to find the RPC "
     "addresses of replicas. Required unless join = true.",
     0, 0, 0},
    {"join", CMN_CONF_BOOL, OFF(join), "false",
     "Start without a configuration and wait to be added with `lodectl meta add-voter`.", 0,
     0, 0},
    {"cluster-secret", CMN_CONF_STR, OFF(cluster_secret), NULL,
     "Shared secret authenticating internal RPC (at least 16 bytes). Prefer "
     "cluster-secret-file; exactly one of the two must be set.",
     CMN_CONF_SENSITIVE, 0, 0},
    {"cluster-secret-file", CMN_CONF_STR, OFF(cluster_secret_file), NULL,
     "File holding the cluster secret (a trailing newline is ignored); readable only by the "
     "service user.",
     0, 0, 0},
    {"log-level", CMN_CONF_LOG_LEVEL, OFF(log_level), "info",
     "debug, info, warn or error (LODE_LOG_LEVEL in the environment overrides it).", 0, 0, 0},
    {"log-file", CMN_CONF_STR, OFF(log_file), NULL,
     "Append log lines to this file instead of stderr.", 0, 0, 0},
    {"election-timeout", CMN_CONF_DURATION, OFF(election_timeout_ms), "600ms",
     "Raft election timeout (randomised between 1x and 2x); a follower that hears nothing "
     "from the leader for this long starts an election, so a failover takes 1-2x this. "
     "Keep it well above heartbeat-timeout and the worst network round trip.",
     0, 50, 60000},
    {"heartbeat-timeout", CMN_CONF_DURATION, OFF(heartbeat_timeout_ms), "100ms",
     "Raft heartbeat interval of the leader; must be below election-timeout.", 0, 10, 10000},
    {"snapshot-threshold", CMN_CONF_INT, OFF(snapshot_threshold), "1024",
     "Take a snapshot after this many new log entries.", 0, 1, 1 << 30},
    {"snapshot-trailing", CMN_CONF_INT, OFF(snapshot_trailing), "256",
     "Log entries kept behind a snapshot, so a briefly lagging replica catches up from the "
     "log instead of a whole snapshot.",
     0, 0, 1 << 30},
    {"node-suspect-after", CMN_CONF_DURATION, OFF(node_suspect_after_ms), "10s",
     "A data node without heartbeats for this long is marked suspect (no new writes).", 0,
     1000, 3600000},
    {"node-down-after", CMN_CONF_DURATION, OFF(node_down_after_ms), "30s",
     "A data node without heartbeats for this long is marked down (repair may start).", 0,
     1000, 86400000},
    {"max-frame-size", CMN_CONF_SIZE, OFF(max_frame_size), "16MiB",
     "Largest RPC frame accepted (header + body + payload).", 0, 4096, 1 << 30},
    {"lmdb-map-size", CMN_CONF_SIZE, OFF(lmdb_map_size), "8GiB",
     "Initial LMDB map size (virtual; grows when full).", 0, 16 << 20, INT64_MAX},
    {0},
};

static int parse_one_peer(const char *entry, size_t len, struct meta_peer *p,
                          struct cmn_err *err)
{
    char buf[2 * META_ADDR_MAX + 32];
    if (len == 0)
        return cmn_err_set(err, LODE_ECONFIG, "empty entry");
    if (len >= sizeof(buf))
        return cmn_err_set(err, LODE_ECONFIG, "entry too long");
    memcpy(buf, entry, len);
    buf[len] = '\0';

    char *eq = strchr(buf, '=');
    char *slash = eq ? strchr(eq + 1, '/') : NULL;
    if (!eq || !slash)
        return cmn_err_set(err, LODE_ECONFIG,
                           "'%s' is not ID=RAFTHOST:PORT/RPCHOST:PORT", buf);
    *eq = '\0';
    *slash = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long id = strtoull(buf, &end, 10);
    if (buf[0] < '0' || buf[0] > '9' || *end != '\0' || errno || id == 0)
        return cmn_err_set(err, LODE_ECONFIG, "'%s' is not a replica id (1 or more)", buf);

    const char *raft = eq + 1, *rpc = slash + 1;
    char host[META_ADDR_MAX];
    uint16_t port;
    if (strlen(raft) >= META_ADDR_MAX || cmn_addr_split(raft, host, sizeof(host), &port) ||
        port == 0)
        return cmn_err_set(err, LODE_ECONFIG, "replica %llu: bad raft address '%s'", id,
                           raft);
    if (strlen(rpc) >= META_ADDR_MAX || cmn_addr_split(rpc, host, sizeof(host), &port) ||
        port == 0)
        return cmn_err_set(err, LODE_ECONFIG, "replica %llu: bad rpc address '%s'", id, rpc);
    p->id = id;
    snprintf(p->raft_address, sizeof(p->raft_address), "%s", raft);
    snprintf(p->rpc_address, sizeof(p->rpc_address), "%s", rpc);
    return 0;
}

int meta_peers_parse(const char *s, struct meta_peer **out, size_t *n, struct cmn_err *err)
{
    *out = NULL;
    *n = 0;
    if (!s || !*s)
        return 0;

    size_t count = 1;
    for (const char *p = s; *p; p++)
        count += *p == ',';
    struct meta_peer *v = calloc(count, sizeof(*v));
    if (!v)
        return cmn_err_set(err, -ENOMEM, "out of memory");

    size_t k = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        /* Tolerate spaces around entries: configs are written by hand. */
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (parse_one_peer(p, len, &v[k], err)) {
            free(v);
            return cmn_err_wrap(err, "peers: entry %zu", k + 1);
        }
        for (size_t j = 0; j < k; j++) {
            const char *what = NULL;
            if (v[j].id == v[k].id)
                what = "id";
            else if (strcmp(v[j].raft_address, v[k].raft_address) == 0)
                what = "raft address";
            else if (strcmp(v[j].rpc_address, v[k].rpc_address) == 0)
                what = "rpc address";
            if (what) {
                free(v);
                return cmn_err_set(err, LODE_ECONFIG,
                                   "peers: entries %zu and %zu have the same %s", j + 1, k + 1,
                                   what);
            }
        }
        k++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = v;
    *n = k;
    return 0;
}

int meta_config_finish(struct meta_config *cfg, struct cmn_err *err)
{
    int rc;

    if (cfg->heartbeat_timeout_ms >= cfg->election_timeout_ms)
        return cmn_err_set(err, LODE_ECONFIG,
                           "heartbeat-timeout (%" PRIu64 "ms) must be below election-timeout "
                           "(%" PRIu64 "ms)",
                           cfg->heartbeat_timeout_ms, cfg->election_timeout_ms);
    if (cfg->node_suspect_after_ms >= cfg->node_down_after_ms)
        return cmn_err_set(err, LODE_ECONFIG,
                           "node-suspect-after must be below node-down-after");
    if (cfg->data_dir && !*cfg->data_dir)
        return cmn_err_set(err, LODE_ECONFIG, "data-dir is empty");
    if (strcmp(cfg->raft_address, cfg->rpc_address) == 0)
        return cmn_err_set(err, LODE_ECONFIG,
                           "raft-address and rpc-address must differ (%s)", cfg->raft_address);

    free(cfg->peer_list);
    cfg->peer_list = NULL;
    cfg->n_peers = 0;
    rc = meta_peers_parse(cfg->peers, &cfg->peer_list, &cfg->n_peers, err);
    if (rc)
        return rc;
    const struct meta_peer *self = meta_config_peer(cfg, (uint64_t)cfg->id);
    if (!cfg->join) {
        if (cfg->n_peers == 0)
            return cmn_err_set(err, LODE_ECONFIG,
                               "peers is required unless join = true (for a single-replica "
                               "group, list just this one: peers = %" PRId64 "=%s/%s)",
                               cfg->id, cfg->raft_address, cfg->rpc_address);
        if (!self)
            return cmn_err_set(err, LODE_ECONFIG,
                               "peers does not list this replica (id %" PRId64
                               "); add %" PRId64 "=%s/%s, or set join = true to be added "
                               "later",
                               cfg->id, cfg->id, cfg->raft_address, cfg->rpc_address);
    }
    if (self && (strcmp(self->raft_address, cfg->raft_address) != 0 ||
                 strcmp(self->rpc_address, cfg->rpc_address) != 0))
        return cmn_err_set(err, LODE_ECONFIG,
                           "peers lists replica %" PRId64 " as %s/%s but raft-address and "
                           "rpc-address say %s/%s",
                           cfg->id, self->raft_address, self->rpc_address, cfg->raft_address,
                           cfg->rpc_address);

    if (cfg->secret) {
        explicit_bzero(cfg->secret, cfg->secret_len);
        free(cfg->secret);
        cfg->secret = NULL;
        cfg->secret_len = 0;
    }
    /* The same rules as every other daemon (common/conf.c). */
    rc = cmn_conf_load_secret(cfg->cluster_secret, cfg->cluster_secret_file, META_SECRET_MIN,
                              &cfg->secret, &cfg->secret_len, err);
    if (rc)
        return rc;
    return 0;
}

const struct meta_peer *meta_config_peer(const struct meta_config *cfg, uint64_t id)
{
    for (size_t i = 0; i < cfg->n_peers; i++)
        if (cfg->peer_list[i].id == id)
            return &cfg->peer_list[i];
    return NULL;
}

void meta_config_free(struct meta_config *cfg)
{
    if (cfg->cluster_secret)
        explicit_bzero(cfg->cluster_secret, strlen(cfg->cluster_secret));
    cmn_conf_free(meta_conf_table, cfg);
    free(cfg->peer_list);
    cfg->peer_list = NULL;
    cfg->n_peers = 0;
    if (cfg->secret) {
        explicit_bzero(cfg->secret, cfg->secret_len);
        free(cfg->secret);
    }
    cfg->secret = NULL;
    cfg->secret_len = 0;
}
