#include "gateway/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "common/log.h"

#define OFF(f) offsetof(struct gw_config, f)
#define LOG_CTX "config"

const struct cmn_conf_opt gw_conf_table[] = {
    {"listen", CMN_CONF_ADDR, OFF(listen), "127.0.0.1:9000",
     "host:port of the S3 endpoint (plain HTTP; 0.0.0.0 for every interface). S3 clients "
     "default to https on port 443, so give them the endpoint explicitly, e.g. "
     "--endpoint-url http://HOST:9000.",
     0, 0, 0},
    {"workers", CMN_CONF_INT, OFF(workers), "0",
     "Worker threads, each with its own event loop serving its share of the connections; 0 "
     "= one per CPU (at most 64).",
     0, 0, GW_WORKERS_MAX},
    {"max-connections", CMN_CONF_INT, OFF(max_connections), "4096",
     "Client connections open at once (all workers together); more are accepted and closed "
     "at once. Keep it below the open-file limit.",
     0, 1, 1000000},
    {"meta", CMN_CONF_STR, OFF(meta), NULL,
     "RPC addresses of the lode-meta replicas (host:port, comma-separated).",
     CMN_CONF_REQUIRED, 0, 0},
    {"cluster-secret", CMN_CONF_STR, OFF(cluster_secret), NULL,
     "Shared secret authenticating internal RPC (at least 16 bytes), the same on every "
     "daemon. Prefer cluster-secret-file; exactly one of the two must be set.",
     CMN_CONF_SENSITIVE, 0, 0},
    {"cluster-secret-file", CMN_CONF_STR, OFF(cluster_secret_file), NULL,
     "File holding the cluster secret (a trailing newline is ignored); readable only by the "
     "service user.",
     0, 0, 0},
    {"region", CMN_CONF_STR, OFF(region), "us-east-1",
     "Region name this endpoint answers for: the one clients sign requests with and "
     "GetBucketLocation reports. 1-63 of a-z 0-9 -.",
     0, 0, 0},
    {"base-domains", CMN_CONF_STR, OFF(base_domains), NULL,
     "Domains for virtual-hosted-style addressing, comma-separated (e.g. s3.example.com: then "
     "Host: BUCKET.s3.example.com names the bucket). Unset: path-style addressing only.",
     0, 0, 0},
    {"ec-data", CMN_CONF_INT, OFF(ec_data), "4",
     "Data chunks per stripe for new objects (k), unless the bucket says otherwise.", 0, 1,
     GW_EC_DATA_MAX},
    {"ec-parity", CMN_CONF_INT, OFF(ec_parity), "2",
     "Parity chunks per stripe (m): an object survives the loss of any m nodes. Each stripe "
     "needs k + m nodes in distinct failure domains. 0 keeps no redundancy (trials only).",
     0, 0, GW_EC_PARITY_MAX},
    {"degraded-writes", CMN_CONF_BOOL, OFF(degraded_writes), "true",
     "When fewer than ec-data + ec-parity failure domains have an UP node with room (nodes "
     "down), write stripes with fewer data chunks and the same parity (a 4+2 cluster with two "
     "nodes down writes 2+2), so new objects still survive the loss of any ec-parity nodes. "
     "false: such writes fail with 503 ServiceUnavailable.",
     0, 0, 0},
    {"chunk-size", CMN_CONF_SIZE, OFF(chunk_size), "1MiB",
     "Bytes per chunk of new objects, a multiple of 4KiB up to 8MiB (lode-node's default "
     "max-chunk-size); a stripe holds ec-data x chunk-size bytes of the object.",
     0, 4096, GW_CHUNK_SIZE_MAX},
    {"small-object-threshold", CMN_CONF_SIZE, OFF(small_object_threshold), "256KiB",
     "Objects and parts smaller than this are not striped: they are stored whole as 1 + "
     "ec-parity replicas on distinct failure domains, so they survive the same losses without "
     "a chunk on k + m nodes. At most chunk-size; 0 stripes everything.",
     0, 0, GW_CHUNK_SIZE_MAX},
    {"max-object-size", CMN_CONF_SIZE, OFF(max_object_size), "5TiB",
     "Largest object (a completed multipart upload included).", 0, 1 << 20,
     INT64_C(1) << 50},
    {"max-put-size", CMN_CONF_SIZE, OFF(max_put_size), "5GiB",
     "Largest body of one PutObject, UploadPart or CopyObject; larger uploads must use "
     "multipart. At most max-object-size.",
     0, 1 << 20, INT64_C(1) << 50},
    {"max-header-bytes", CMN_CONF_SIZE, OFF(max_header_bytes), "64KiB",
     "Largest request head (request line, headers and the blank line); a larger one is "
     "refused with RequestHeaderSectionTooLarge and the connection closed.",
     0, 4096, 1 << 20},
    {"max-headers", CMN_CONF_INT, OFF(max_headers), "200",
     "Most header fields (and trailer fields) one request may carry.", 0, 16, 10000},
    {"idle-timeout", CMN_CONF_DURATION, OFF(idle_timeout_ms), "60s",
     "A keep-alive connection with no request in progress is closed after this long.", 0,
     1000, 3600000},
    {"header-timeout", CMN_CONF_DURATION, OFF(header_timeout_ms), "30s",
     "A request head must arrive whole within this long of its first byte (slow-client "
     "limit).",
     0, 1000, 3600000},
    {"body-timeout", CMN_CONF_DURATION, OFF(body_timeout_ms), "60s",
     "A request body (or a reader of a response) that makes no progress for this long ends "
     "the request (slow-client limit).",
     0, 1000, 3600000},
    {"clock-skew", CMN_CONF_DURATION, OFF(clock_skew_ms), "15m",
     "Largest difference between a signed request's date and the gateway's clock; beyond it "
     "requests are refused with RequestTimeTooSkewed.",
     0, 1000, 86400000},
    {"inflight-stripes", CMN_CONF_INT, OFF(inflight_stripes), "4",
     "Stripes one request keeps in flight toward the nodes (reads ahead or writes behind): "
     "bounds its memory to inflight-stripes x (ec-data + ec-parity) x chunk-size, which may "
     "not exceed 1GiB.",
     0, 1, 64},
    {"node-timeout", CMN_CONF_DURATION, OFF(node_timeout_ms), "10s",
     "Deadline of one chunk call to a data node (put, get or delete of one chunk).", 0, 100,
     600000},
    {"meta-timeout", CMN_CONF_DURATION, OFF(meta_timeout_ms), "10s",
     "Deadline of one call to lode-meta on behalf of a request, retries included.", 0, 100,
     600000},
    {"key-cache-ttl", CMN_CONF_DURATION, OFF(key_cache_ttl_ms), "60s",
     "How long an access key and its secret, once fetched from lode-meta, are trusted "
     "without asking again (a deleted user's key keeps working on this gateway for up to "
     "this long).",
     0, 1000, 86400000},
    {"key-cache-negative-ttl", CMN_CONF_DURATION, OFF(key_cache_negative_ttl_ms), "5s",
     "How long an unknown access key is remembered as unknown, so a flood of requests with a "
     "bad key does not reach lode-meta; 0 = not remembered.",
     0, 0, 600000},
    {"key-cache-size", CMN_CONF_INT, OFF(key_cache_size), "10000",
     "Access keys kept in the cache (least recently used evicted first); unknown keys are "
     "kept apart, up to a quarter of this.",
     0, 16, 10000000},
    {"bucket-cache-ttl", CMN_CONF_DURATION, OFF(bucket_cache_ttl_ms), "2s",
     "How long each worker trusts a bucket's record (that it exists, its owner, its erasure "
     "scheme) without asking lode-meta again; 0 = ask on every request. A bucket deleted "
     "through another gateway may still pass this gateway's bucket check for up to this long "
     "(its operations then fail at lode-meta with NoSuchBucket).",
     0, 0, 300000},
    {"map-refresh", CMN_CONF_DURATION, OFF(map_refresh_ms), "2s",
     "Interval between fetches of the cluster map (data nodes, their addresses, failure "
     "domains and states) from lode-meta; a node error also triggers a fetch.",
     0, 100, 600000},
    {"gc", CMN_CONF_BOOL, OFF(gc), "true",
     "Run the garbage collector: delete the chunks lode-meta has queued (overwritten and "
     "deleted objects, aborted uploads, failed puts) from their nodes. Safe on several "
     "gateways at once (deletes are idempotent) but wasteful; one or two suffice.",
     0, 0, 0},
    {"gc-interval", CMN_CONF_DURATION, OFF(gc_interval_ms), "10s",
     "Pause between two collector passes; a pass works through the whole queue.", 0, 1000,
     86400000},
    {"gc-batch", CMN_CONF_INT, OFF(gc_batch), "1000",
     "Queue entries the collector lists, deletes and acknowledges at a time.", 0, 1, 10000},
    {"data-address", CMN_CONF_ADDR, OFF(data_address), NULL,
     "host:port of the first fan-out data listener (docs/fanout.md): worker w listens on "
     "port + w, and clients' data sessions connect there so this gateway can write the "
     "stripes it decodes (or that a node failed to write) into their buffers. Unset = no "
     "fan-out GETs through this gateway (tokens are declined; plain S3 is unaffected).",
     0, 0, 0},
    {"data-advertise-address", CMN_CONF_ADDR, OFF(data_advertise_address), NULL,
     "host:port clients dial for the first data listener (worker w: port + w); unset = "
     "data-address (a wildcard host needs this).",
     0, 0, 0},
    {"rdma-address", CMN_CONF_ADDR, OFF(rdma_address), NULL,
     "host:port of the first rc (RDMA) listener (docs/dataplane-rc.md), on an RDMA device's "
     "address: worker w listens on port + w. Clients connect queue pairs there so this "
     "gateway can RDMA-WRITE the stripes it decodes into their buffers and RDMA-READ staged "
     "uploads (PutObject/UploadPart with an rc1 token) out of them; nodes with an "
     "rdma-address are listed to clients as rc sources. Unset = rc tokens are declined. "
     "Needs a build with rdma-core.",
     0, 0, 0},
    {"rdma-staging-size", CMN_CONF_SIZE, OFF(rdma_staging_size), "64MiB",
     "Registered (pinned) memory each worker's rc listener stages its transfers through; "
     "transfers beyond it wait their turn. Counts against RLIMIT_MEMLOCK.",
     0, 1 << 20, INT64_C(1) << 34},
    {"rdma-upload-buffers", CMN_CONF_SIZE, OFF(rdma_upload_buffers), "64MiB",
     "Registered (pinned) memory per worker that staged uploads (rc, dc) are RDMA-read into "
     "directly, without a copy out of the staging memory: 8 MiB per upload in flight; uploads "
     "beyond it use ordinary buffers (and staging). 0 = always stage. Counts against "
     "RLIMIT_MEMLOCK.",
     0, 0, INT64_C(1) << 34},
    {"session-ttl", CMN_CONF_DURATION, OFF(session_ttl_ms), "12h",
     "Lifetime of a data session credential issued by POST /?x-lode-session.", 0, 60000,
     604800000},
    {"fanout-lease", CMN_CONF_DURATION, OFF(fanout_lease_ms), "5s",
     "A data node starts no write for a fan-out GET later than this after the gateway's "
     "order arrived; a node that does not answer is fenced for this long (plus a drain "
     "margin) before the gateway writes its ranges itself.", 0, 100, 60000},
    {"fanout-client-cap", CMN_CONF_SIZE, OFF(fanout_client_cap), "64MiB",
     "Bytes in flight toward one client (its data session) across its fan-out GETs on one "
     "worker: bounds the incast into the client's NIC. 0 = no cap.", 0, 0, 0},
    CMN_DP_DC_CONF_KEYS(OFF),
    {"metrics-address", CMN_CONF_ADDR, OFF(metrics_address), NULL,
     "host:port serving Prometheus metrics at /metrics; unset = no metrics server.", 0, 0, 0},
    {"log-level", CMN_CONF_LOG_LEVEL, OFF(log_level), "info",
     "debug, info, warn or error (LODE_LOG_LEVEL in the environment overrides it).", 0, 0, 0},
    {"log-file", CMN_CONF_STR, OFF(log_file), NULL,
     "Append log lines to this file instead of stderr.", 0, 0, 0},
    {0},
};

static int check_region(const char *s, struct cmn_err *err)
{
    size_t len = strlen(s);
    if (len == 0 || len > GW_REGION_MAX)
        return cmn_err_set(err, LODE_ECONFIG, "region must be 1 to %d characters (it is %zu)",
                           GW_REGION_MAX, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '-'))
            return cmn_err_set(err, LODE_ECONFIG,
                               "region '%s': character %zu is not one of a-z 0-9 -", s, i + 1);
    }
    return 0;
}

/* A DNS name as a Host header carries it: labels of 1..63 letters, digits and hyphens, not
 * starting or ending with a hyphen. Lower-cases it in place (hosts compare without case). */
static int check_domain(char *d, struct cmn_err *err)
{
    size_t len = strlen(d);
    if (len > GW_DOMAIN_MAX)
        return cmn_err_set(err, LODE_ECONFIG, "base-domains: '%.40s...' is longer than %d "
                           "characters", d, GW_DOMAIN_MAX);
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.' || c == '\0') {
            if (label == 0)
                return cmn_err_set(err, LODE_ECONFIG,
                                   "base-domains: '%s' has an empty label (a leading, trailing "
                                   "or doubled dot)", d);
            if (d[i - 1] == '-')
                return cmn_err_set(err, LODE_ECONFIG,
                                   "base-domains: '%s': a label ends with a hyphen", d);
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-')
            return cmn_err_set(err, LODE_ECONFIG,
                               "base-domains: '%s': character %zu is not a letter, digit, "
                               "hyphen or dot (give names without a scheme or port)", d, i + 1);
        if (c == '-' && label == 0)
            return cmn_err_set(err, LODE_ECONFIG,
                               "base-domains: '%s': a label starts with a hyphen", d);
        if (++label > 63)
            return cmn_err_set(err, LODE_ECONFIG,
                               "base-domains: '%s': a label is longer than 63 characters", d);
        d[i] = (char)tolower(c);
    }
    return 0;
}

static int derive_domains(struct gw_config *cfg, struct cmn_err *err)
{
    cmn_conf_list_free(cfg->domains, cfg->n_domains);
    cfg->domains = NULL;
    cfg->n_domains = 0;
    if (!cfg->base_domains)
        return 0;
    char **v;
    size_t n;
    int rc = cmn_conf_split_list("base-domains", cfg->base_domains, GW_DOMAINS_MAX, true, &v,
                                 &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = check_domain(v[i], err);
    if (rc) {
        cmn_conf_list_free(v, n);
        return rc;
    }
    cfg->domains = v;
    cfg->n_domains = n;
    return 0;
}

static int derive_addresses(struct gw_config *cfg, struct cmn_err *err)
{
    uint16_t port = 0;
    if (strlen(cfg->listen) >= GW_ADDR_MAX ||
        cmn_addr_split(cfg->listen, cfg->listen_host, sizeof(cfg->listen_host), &port))
        return cmn_err_set(err, LODE_ECONFIG, "listen '%s' is not host:port", cfg->listen);
    cfg->listen_port = port;
    if (cfg->metrics_address && port != 0) {
        char host[GW_ADDR_MAX];
        uint16_t mport = 0;
        if (cmn_addr_split(cfg->metrics_address, host, sizeof(host), &mport) == 0 &&
            mport == port &&
            (strcmp(host, cfg->listen_host) == 0 || strcmp(host, "0.0.0.0") == 0 ||
             strcmp(cfg->listen_host, "0.0.0.0") == 0))
            return cmn_err_set(err, LODE_ECONFIG,
                               "metrics-address %s and listen %s would share port %u: give "
                               "metrics a port of its own",
                               cfg->metrics_address, cfg->listen, (unsigned)port);
    }
    return 0;
}

/* The data listeners: worker w on data_port + w, so the ports of every worker must fit. */
static int derive_data(struct gw_config *cfg, struct cmn_err *err)
{
    cfg->data_host[0] = cfg->data_adv_host[0] = '\0';
    cfg->data_port = cfg->data_adv_port = 0;
    if (!cfg->data_address) {
        if (cfg->data_advertise_address)
            return cmn_err_set(err, LODE_ECONFIG, "data-advertise-address is set but "
                               "data-address is not: set data-address to run data listeners");
        return 0;
    }
    if (strlen(cfg->data_address) >= GW_ADDR_MAX ||
        cmn_addr_split(cfg->data_address, cfg->data_host, sizeof(cfg->data_host),
                       &cfg->data_port))
        return cmn_err_set(err, LODE_ECONFIG, "data-address '%s' is not host:port",
                           cfg->data_address);
    if (cfg->data_port && (unsigned)cfg->data_port + cfg->n_workers - 1 > 65535)
        return cmn_err_set(err, LODE_ECONFIG, "data-address %s: %u workers need ports %u..%u",
                           cfg->data_address, cfg->n_workers, (unsigned)cfg->data_port,
                           (unsigned)cfg->data_port + cfg->n_workers - 1);
    const char *adv = cfg->data_advertise_address ? cfg->data_advertise_address
                                                  : cfg->data_address;
    if (strlen(adv) >= GW_ADDR_MAX ||
        cmn_addr_split(adv, cfg->data_adv_host, sizeof(cfg->data_adv_host),
                       &cfg->data_adv_port))
        return cmn_err_set(err, LODE_ECONFIG, "data-advertise-address '%s' is not host:port",
                           adv);
    if (strcmp(cfg->data_adv_host, "0.0.0.0") == 0)
        return cmn_err_set(err, LODE_ECONFIG, "data-address %s listens on every interface, "
                           "which clients cannot dial: set data-advertise-address", adv);
    if (cfg->data_advertise_address && cfg->data_adv_port == 0)
        return cmn_err_set(err, LODE_ECONFIG, "data-advertise-address %s needs a port",
                           cfg->data_advertise_address);
    return 0;
}

/* The rc listeners: worker w on rdma_port + w, on the address clients dial. */
static int derive_rdma(struct gw_config *cfg, struct cmn_err *err)
{
    cfg->rdma_host[0] = '\0';
    cfg->rdma_port = 0;
    if (!cfg->rdma_address)
        return 0;
#ifndef HAVE_RDMA
    return cmn_err_set(err, LODE_ECONFIG,
                       "rdma-address is set but this lode-gateway was built without RDMA "
                       "(rdma-core was not found at build time): unset it, or rebuild with "
                       "rdma-core's development files installed");
#endif
    if (strlen(cfg->rdma_address) >= GW_ADDR_MAX ||
        cmn_addr_split(cfg->rdma_address, cfg->rdma_host, sizeof(cfg->rdma_host),
                       &cfg->rdma_port))
        return cmn_err_set(err, LODE_ECONFIG, "rdma-address '%s' is not host:port",
                           cfg->rdma_address);
    if (strcmp(cfg->rdma_host, "0.0.0.0") == 0)
        return cmn_err_set(err, LODE_ECONFIG, "rdma-address %s: name the address of an RDMA "
                           "device, which clients dial (0.0.0.0 cannot be advertised)",
                           cfg->rdma_address);
    if (cfg->rdma_port && (unsigned)cfg->rdma_port + cfg->n_workers - 1 > 65535)
        return cmn_err_set(err, LODE_ECONFIG, "rdma-address %s: %u workers need ports %u..%u",
                           cfg->rdma_address, cfg->n_workers, (unsigned)cfg->rdma_port,
                           (unsigned)cfg->rdma_port + cfg->n_workers - 1);
    return 0;
}

/* ---- dc (docs/dataplane-dc.md section 8) ---------------------------------------------- */

static int derive_dc(struct gw_config *cfg, struct cmn_err *err)
{
    return cmn_dp_dc_config_from_keys(&cfg->dc_keys, &cfg->dc, &cfg->dc_enabled,
                                      &cfg->dc_key_public, err);
}

int gw_config_dc_buildable(const struct gw_config *cfg, struct cmn_err *err)
{
    return cmn_dp_dc_buildable(cfg->dc_enabled, "lode-gateway", err);
}

static unsigned resolve_workers(int64_t workers)
{
    if (workers > 0)
        return (unsigned)workers;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    return cpus > GW_WORKERS_MAX ? GW_WORKERS_MAX : (unsigned)cpus;
}

static int check_sizes(struct gw_config *cfg, struct cmn_err *err)
{
    if (cfg->chunk_size % GW_CHUNK_ALIGN)
        return cmn_err_set(err, LODE_ECONFIG,
                           "chunk-size (%" PRIu64 " bytes) must be a multiple of 4KiB, so that "
                           "chunk buffers stay page-aligned through erasure coding and disk "
                           "I/O",
                           cfg->chunk_size);
    if (cfg->small_object_threshold > cfg->chunk_size)
        return cmn_err_set(err, LODE_ECONFIG,
                           "small-object-threshold (%" PRIu64 " bytes) exceeds chunk-size (%"
                           PRIu64 "): a small object is kept whole in one chunk per replica; "
                           "lower the threshold or raise chunk-size",
                           cfg->small_object_threshold, cfg->chunk_size);
    if (cfg->max_put_size > cfg->max_object_size)
        return cmn_err_set(err, LODE_ECONFIG,
                           "max-put-size (%" PRIu64 " bytes) exceeds max-object-size (%" PRIu64
                           ")",
                           cfg->max_put_size, cfg->max_object_size);
    uint64_t width = (uint64_t)(cfg->ec_data + cfg->ec_parity);
    cfg->request_buffer_bytes = (uint64_t)cfg->inflight_stripes * width * cfg->chunk_size;
    if (cfg->request_buffer_bytes > GW_REQUEST_BUFFER_MAX)
        return cmn_err_set(err, LODE_ECONFIG,
                           "inflight-stripes (%" PRId64 ") x (ec-data + ec-parity = %" PRIu64
                           ") x chunk-size (%" PRIu64 ") = %" PRIu64 " bytes one request "
                           "could hold; at most 1GiB is allowed: lower one of them",
                           cfg->inflight_stripes, width, cfg->chunk_size,
                           cfg->request_buffer_bytes);
    return 0;
}

int gw_config_finish(struct gw_config *cfg, struct cmn_err *err)
{
    int rc;
    if (!cfg->meta || !cfg->listen || !cfg->region)
        return cmn_err_set(err, LODE_ECONFIG, "meta, listen and region are required");
    if ((rc = cmn_conf_check_addr_list("meta", cfg->meta, GW_META_REPLICAS_MAX, err)) || (rc = derive_addresses(cfg, err)) ||
        (rc = check_region(cfg->region, err)) || (rc = derive_domains(cfg, err)) ||
        (rc = check_sizes(cfg, err)))
        return rc;
    cfg->n_workers = resolve_workers(cfg->workers);
    if ((rc = derive_data(cfg, err)) || (rc = derive_rdma(cfg, err)) || (rc = derive_dc(cfg, err)))
        return rc;

    if (cfg->secret) {
        explicit_bzero(cfg->secret, cfg->secret_len);
        free(cfg->secret);
        cfg->secret = NULL;
        cfg->secret_len = 0;
    }
    return cmn_conf_load_secret(cfg->cluster_secret, cfg->cluster_secret_file, GW_SECRET_MIN,
                                &cfg->secret, &cfg->secret_len, err);
}

void gw_config_free(struct gw_config *cfg)
{
    if (cfg->cluster_secret)
        explicit_bzero(cfg->cluster_secret, strlen(cfg->cluster_secret));
    if (cfg->dc_keys.key) /* the configuration's own string (const only in the keys view) */
        explicit_bzero((char *)cfg->dc_keys.key, strlen(cfg->dc_keys.key));
    explicit_bzero(&cfg->dc, sizeof(cfg->dc));
    cmn_conf_free(gw_conf_table, cfg);
    cmn_conf_list_free(cfg->domains, cfg->n_domains);
    cfg->domains = NULL;
    cfg->n_domains = 0;
    if (cfg->secret) {
        explicit_bzero(cfg->secret, cfg->secret_len);
        free(cfg->secret);
    }
    cfg->secret = NULL;
    cfg->secret_len = 0;
}

static int cli_finish(void *cfg, struct cmn_err *err)
{
    return gw_config_finish(cfg, err);
}

static void cli_release(void *cfg)
{
    gw_config_free(cfg);
}

int gw_config_cli(struct gw_config *cfg, int argc, char **argv, int *exit_code)
{
    return cmn_conf_cli_finish(gw_conf_table, cfg, GW_PROG, argc, argv, cli_finish,
                               cli_release, exit_code);
}

void gw_config_log_warnings(const struct gw_config *cfg)
{
    cmn_conf_warn_secret(LOG_CTX, cfg->cluster_secret, cfg->cluster_secret_file);
    if (cfg->ec_parity == 0)
        LOG_WARN(LOG_CTX, "ec-parity is 0: new objects are stored without redundancy and the "
                 "loss of one node loses them");
    if (cfg->dc_enabled && cfg->dc_key_public)
        LOG_WARN(LOG_CTX, "dc-key is cuObject's published default: anyone who knows it can "
                 "address this cluster's DC traffic; set a key of your own here and in every "
                 "client's configuration");
}
