/* lode-gateway: configuration, logging, the shared caches, the worker loops of the HTTP
 * server with the S3 layer, the metrics endpoint, signals and orderly shutdown.
 *
 * Threads: the main thread runs a small loop for signals and the metrics endpoint; each
 * worker of gw_server runs its own loop (worker 0 also runs the cluster-map refresher and,
 * when enabled, the garbage collector). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "common/log.h"
#include "common/metrics.h"
#include "gateway/cluster.h"
#include "gateway/config.h"
#include "gateway/s3_request.h"
#include "gateway/server.h"
#include "lode/errno.h"

#define LOG_CTX "main"
#define STOP_GRACE_MS 5000u
#define MAP_WAIT_MS 30000u

struct app {
    struct gw_config cfg;
    uv_loop_t loop;
    uv_signal_t sig[2];
    struct cmn_metrics *metrics;
    struct cmn_metrics_http *metrics_http;
    struct gw_cluster *cluster;
    struct gw_keys *keys;
    struct gw_server *server;
    struct gw_s3_ctx ctx;
    struct gw_nodepool_metrics pool_metrics;
    struct gw_s3_metrics s3_metrics;
    struct cmn_dp_dc_metrics *dc_metrics; /* one per worker, when dc is configured */
    bool stopping;
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    if (app->stopping)
        return;
    app->stopping = true;
    LOG_INFO(LOG_CTX, "%s: stopping (requests in progress get %u ms)", strsignal(signum),
             STOP_GRACE_MS);
    /* Blocks this loop until the workers are done: nothing else on it needs to run. */
    gw_server_stop(app->server, STOP_GRACE_MS);
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&app->sig[i], NULL);
    if (app->metrics_http) {
        cmn_metrics_http_close(app->metrics_http, NULL, NULL);
        app->metrics_http = NULL;
    }
}

static int start(struct app *app)
{
    const struct gw_config *cfg = &app->cfg;
    struct cmn_err err;
    int rc;

    cmn_err_clear(&err);
    if ((rc = cmn_metrics_create(&app->metrics)))
        return rc;
    /* Every metric the workers update is registered here, before they start: registration
     * is not thread-safe, and the endpoint renders from this thread. */
    if ((rc = gw_nodepool_metrics_register(app->metrics, &app->pool_metrics)) ||
        (rc = gw_s3_metrics_register(app->metrics, &app->s3_metrics)))
        return rc;
    if (cfg->dc_enabled) {
        if (!(app->dc_metrics = calloc(cfg->n_workers, sizeof(*app->dc_metrics))))
            return -ENOMEM;
        for (unsigned w = 0; w < cfg->n_workers; w++) {
            char label[32];
            snprintf(label, sizeof(label), "worker=\"%u\"", w);
            if ((rc = cmn_dp_dc_metrics_init(&app->dc_metrics[w], app->metrics, "lode_gateway",
                                             label)))
                return rc;
        }
    }
    struct gw_cluster_config cc = {.refresh_ms = cfg->map_refresh_ms,
                                   .call_timeout_ms = (uint32_t)cfg->meta_timeout_ms,
                                   .metrics = app->metrics};
    if ((rc = gw_cluster_create(&cc, &app->cluster)))
        return rc;
    struct gw_keys_config kc = GW_KEYS_CONFIG_DEFAULT;
    kc.ttl_ms = cfg->key_cache_ttl_ms ? cfg->key_cache_ttl_ms : kc.ttl_ms;
    kc.negative_ttl_ms = cfg->key_cache_negative_ttl_ms;
    if (cfg->key_cache_size > 0) {
        kc.max_entries = (size_t)cfg->key_cache_size;
        kc.max_negative = kc.max_entries / 4 + 1;
    }
    kc.fetch_timeout_ms = (uint32_t)cfg->meta_timeout_ms;
    kc.metrics = app->metrics;
    if ((rc = gw_keys_create(&kc, &app->keys)))
        return rc;

    gw_s3_ctx_init(&app->ctx, cfg, app->cluster, app->keys);
    app->ctx.pool_metrics = &app->pool_metrics;
    app->ctx.metrics = &app->s3_metrics;
    app->ctx.fo_metrics = &app->s3_metrics.fanout;
    app->ctx.dc_metrics = app->dc_metrics;
    char addr[GW_ADDR_MAX + 8];
    snprintf(addr, sizeof(addr), "%s", cfg->listen);
    struct gw_server_opts so = {
        .addr = addr,
        .workers = cfg->n_workers,
        .handler = &gw_s3_handler,
        .handler_data = &app->ctx,
        .limits = {.max_header_bytes = cfg->max_header_bytes,
                   .max_headers = (unsigned)cfg->max_headers},
        .max_conns = cfg->max_connections > 0 ? (unsigned)cfg->max_connections : 0,
        .idle_timeout_ms = (uint32_t)cfg->idle_timeout_ms,
        .header_timeout_ms = (uint32_t)cfg->header_timeout_ms,
        .body_timeout_ms = (uint32_t)cfg->body_timeout_ms,
        .metrics = app->metrics,
    };
    if ((rc = gw_server_create(&so, &app->server, &err))) {
        LOG_ERROR(LOG_CTX, "cannot listen on %s: %s", cfg->listen, cmn_err_text(&err));
        return rc;
    }
    if ((rc = gw_server_start(app->server, &err))) {
        LOG_ERROR(LOG_CTX, "cannot start the workers: %s", cmn_err_text(&err));
        return rc;
    }
    if (gw_cluster_wait_ready(app->cluster, MAP_WAIT_MS, &err) != 0)
        LOG_WARN(LOG_CTX, "no cluster map from lode-meta at %s yet (%s): requests that store "
                 "or read data fail with 503 until it arrives", cfg->meta, cmn_err_text(&err));
    if (cfg->metrics_address &&
        (rc = cmn_metrics_http_start(app->metrics, &app->loop, cfg->metrics_address,
                                     &app->metrics_http, &err))) {
        LOG_ERROR(LOG_CTX, "metrics endpoint %s: %s", cfg->metrics_address, cmn_err_text(&err));
        return rc;
    }
    LOG_INFO(LOG_CTX, "S3 endpoint on port %d (%u workers), region %s, meta %s",
             gw_server_port(app->server), cfg->n_workers, cfg->region, cfg->meta);
    if (cfg->data_address)
        LOG_INFO(LOG_CTX, "fan-out data listeners from %s, advertised from %s:%u",
                 cfg->data_address, cfg->data_adv_host, (unsigned)cfg->data_adv_port);
    return 0;
}

/* Every client connection, node connection and spliced GET's pipe is a descriptor, and the
 * default soft limit (often 1024) is below max-connections: use what the hard limit allows. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
    if (rl.rlim_cur > old && setrlimit(RLIMIT_NOFILE, &rl) == 0)
        LOG_DEBUG(LOG_CTX, "descriptor limit raised from %llu to %llu", (unsigned long long)old,
                  (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    struct app app;
    int code = 0;

    memset(&app, 0, sizeof(app));
    signal(SIGPIPE, SIG_IGN);
    if (gw_config_cli(&app.cfg, argc, argv, &code))
        return code;
    if (cmn_log_setup(GW_PROG, (enum cmn_log_level)app.cfg.log_level, app.cfg.log_file)) {
        fprintf(stderr, "%s: cannot open log-file %s\n", GW_PROG, app.cfg.log_file);
        gw_config_free(&app.cfg);
        return 1;
    }
    gw_config_log_warnings(&app.cfg);
    raise_nofile();
    struct cmn_err dc_err;
    cmn_err_clear(&dc_err);
    if (gw_config_dc_buildable(&app.cfg, &dc_err) != 0) {
        LOG_ERROR(LOG_CTX, "%s", cmn_err_text(&dc_err));
        gw_config_free(&app.cfg);
        return 1;
    }
    if (uv_loop_init(&app.loop) != 0) {
        gw_config_free(&app.cfg);
        return 1;
    }
    int rc = start(&app);
    if (rc == 0) {
        int sigs[2] = {SIGTERM, SIGINT};
        for (int i = 0; i < 2; i++) {
            uv_signal_init(&app.loop, &app.sig[i]);
            app.sig[i].data = &app;
            uv_signal_start(&app.sig[i], on_signal, sigs[i]);
        }
        uv_run(&app.loop, UV_RUN_DEFAULT);
    } else {
        LOG_ERROR(LOG_CTX, "start-up failed: %s", lode_strerror(rc));
        code = 1;
        if (app.metrics_http)
            cmn_metrics_http_close(app.metrics_http, NULL, NULL);
        uv_run(&app.loop, UV_RUN_DEFAULT);
    }
    if (app.server)
        gw_server_destroy(app.server);
    if (app.keys)
        gw_keys_destroy(app.keys);
    if (app.cluster)
        gw_cluster_destroy(app.cluster);
    uv_loop_close(&app.loop);
    if (app.metrics)
        cmn_metrics_destroy(app.metrics);
    free(app.dc_metrics);
    gw_config_free(&app.cfg);
    LOG_INFO(LOG_CTX, "stopped");
    return code;
}
