/* lode-node: configuration, startup checks, the loop, signals and orderly shutdown.
 *
 * Start order: checks (each failure names its remedy), the chunk store (which scans every
 * directory: nothing is served before the index is complete), the chunk service and its RPC
 * server, then the registrar (register with meta, heartbeats, corrupt reports) and the
 * scrubber. Meta being unreachable does not stop the node from serving.
 *
 * Shutdown (SIGINT / SIGTERM, exit 0): the RPC server stops taking requests, the service
 * refuses new ones, the scrubber and the registrar close, and the store closes, finishing
 * the I/O in flight so that every held request is answered (or dropped with its connection).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <uv.h>

#include "common/arena.h"
#include "common/conf.h"
#include "common/dp_dc.h"
#include "common/dp_rc.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "node/config.h"
#include "node/io.h"
#include "node/registrar.h"
#include "node/scrub.h"
#include "node/fanout.h"
#include "node/service.h"
#include "node/store.h"

#define PROG "lode-node"
#define LOG_CTX "main"
#define TMPFS_MAGIC_NUMBER 0x01021994
#define MEMLOCK_WANT (64ull << 20)  /* io_uring rings of a few disks fit comfortably */

struct app {
    uv_loop_t loop;
    bool loop_ready;
    struct node_config cfg;
    struct cmn_metrics *metrics;
    struct cmn_metrics_http *metrics_http;
    struct node_store *store;
    struct node_service *svc;
    struct cmn_rpc_server *rpc;
    struct node_registrar *reg;
    struct node_scrub *scrub;
    struct cmn_dp_server *dp;        /* fan-out data listener, when data-address is set */
    struct cmn_dp_rc *rc;            /* rc listener, when rdma-address is set */
    struct cmn_arena *read_arena;    /* registered with rc: chunk reads land there */
    struct cmn_dp_dc *dc;            /* dc initiators, when dc-device/dc-address is set */
    struct node_fanout *fanout;
    uv_signal_t sig[2];
    bool signals_ready;
    bool shutting_down;
};

/* ---------------------------------------------------------------------------------------
 * Startup checks: each failure or warning names the remedy
 * ------------------------------------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Kernels before 5.12 charge io_uring rings to RLIMIT_MEMLOCK; later ones to the cgroup. */
static bool kernel_charges_memlock(void)
{
    struct utsname u;
    int major = 0, minor = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
        return true;
    return major < 5 || (major == 5 && minor < 12);
}

static void check_memlock(const struct node_config *cfg)
{
    struct rlimit rl;
    if (cfg->io_kind == NODE_IO_THREADS || getrlimit(RLIMIT_MEMLOCK, &rl) != 0 ||
        rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= MEMLOCK_WANT)
        return;
    if (kernel_charges_memlock())
        LOG_WARN(LOG_CTX, "RLIMIT_MEMLOCK is %llu KiB and this kernel charges io_uring rings to "
                 "it: io_uring setup may fail (then the thread pool is used); raise it with "
                 "`ulimit -l unlimited` or LimitMEMLOCK=infinity in the service unit",
                 (unsigned long long)rl.rlim_cur / 1024);
    else
        LOG_INFO(LOG_CTX, "note: RLIMIT_MEMLOCK is %llu KiB; this kernel accounts io_uring "
                 "memory to the cgroup, so it does not limit the rings",
                 (unsigned long long)rl.rlim_cur / 1024);
}

static const char *kind_name(enum node_io_kind k)
{
    switch (k) {
    case NODE_IO_URING: return "io_uring";
    case NODE_IO_THREADS: return "threads";
    case NODE_IO_AUTO: return "auto";
    }
    return "?";
}

static int check_dir(const struct node_config *cfg, const char *dir)
{
    int rc = mkdir_p(dir, 0750);
    if (rc) {
        LOG_ERROR(LOG_CTX, "cannot create data dir %s: %s (create it for the service user, or "
                  "fix data-dirs)", dir, strerror(-rc));
        return rc;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        LOG_ERROR(LOG_CTX, "data dir %s is not a directory (fix data-dirs)", dir);
        return -ENOTDIR;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        rc = -errno;
        LOG_ERROR(LOG_CTX, "data dir %s is not writable by uid %u: %s (fix its owner or mode)",
                  dir, (unsigned)getuid(), strerror(-rc));
        return rc;
    }
    struct statfs sfs;
    if (statfs(dir, &sfs) == 0 && (unsigned long)sfs.f_type == TMPFS_MAGIC_NUMBER)
        LOG_WARN(LOG_CTX, "data dir %s is on tmpfs: chunks are lost on reboot; use a real disk "
                 "outside tests", dir);

    struct node_io_probe probe;
    struct cmn_err err;
    cmn_err_clear(&err);
    rc = node_io_probe_dir(dir, cfg->io_kind, &probe, &err);
    if (rc) {
        LOG_ERROR(LOG_CTX, "data dir %s: %s%s", dir, cmn_err_text(&err),
                  cfg->io_kind == NODE_IO_URING
                      ? " (io-backend = io_uring was asked for; set io-backend = auto to fall "
                        "back to the thread pool)"
                      : "");
        return rc;
    }
    /* The probe's note already names the backend and says why it was chosen. */
    if (probe.note[0])
        LOG_INFO(LOG_CTX, "data dir %s: %s", dir, probe.note);
    else
        LOG_INFO(LOG_CTX, "data dir %s: %s backend, %s, %u-byte blocks", dir,
                 kind_name(probe.kind), probe.o_direct ? "O_DIRECT" : "buffered I/O",
                 probe.block_size);
    return 0;
}

static int check_dirs(const struct node_config *cfg)
{
    dev_t *devs = calloc(cfg->n_dirs, sizeof(*devs));
    if (!devs)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < cfg->n_dirs && rc == 0; i++) {
        rc = check_dir(cfg, cfg->dirs[i]);
        struct stat st;
        if (rc || stat(cfg->dirs[i], &st) != 0)
            continue;
        devs[i] = st.st_dev;
        for (size_t j = 0; j < i; j++)
            if (devs[j] == st.st_dev)
                LOG_WARN(LOG_CTX, "data dirs %s and %s are on the same file system: they share "
                         "one disk's space and fate, so capacity is counted twice; give each "
                         "data dir its own disk", cfg->dirs[j], cfg->dirs[i]);
    }
    free(devs);
    return rc;
}

static void check_secret(const struct node_config *cfg)
{
    cmn_conf_warn_secret(LOG_CTX, cfg->cluster_secret, cfg->cluster_secret_file);
    if (cfg->dc_enabled && cfg->dc_key_public)
        LOG_WARN(LOG_CTX, "dc-key is cuObject's published default: anyone who knows it can "
                 "address this cluster's DC traffic; set a key of your own here and in every "
                 "client's configuration");
}

/* ---------------------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------------------- */

static void store_closed(void *data)
{
    struct app *app = data;
    app->store = NULL;
    LOG_DEBUG(LOG_CTX, "store closed");
}

static void begin_shutdown(struct app *app)
{
    if (app->shutting_down)
        return;
    app->shutting_down = true;
    if (app->rpc) {
        cmn_rpc_server_close(app->rpc, NULL, NULL);
        app->rpc = NULL;
    }
    if (app->metrics_http) {
        cmn_metrics_http_close(app->metrics_http, NULL, NULL);
        app->metrics_http = NULL;
    }
    if (app->svc)
        node_service_stop(app->svc);
    /* Pushes still queued complete with LODE_ECLOSED; their fan-out requests answer. */
    if (app->dp) {
        cmn_dp_server_close(app->dp, NULL, NULL);
        app->dp = NULL;
    }
#ifdef HAVE_RDMA
    if (app->rc) {
        cmn_dp_rc_close(app->rc, NULL, NULL);
        app->rc = NULL;
    }
#endif
#ifdef HAVE_MLX5DV
    /* Writes in flight fail with LODE_ESHUTDOWN; their requests answer before close_cb. */
    if (app->dc) {
        if (app->fanout)
            node_fanout_detach_dc(app->fanout);
        cmn_dp_dc_close(app->dc, NULL, NULL);
        app->dc = NULL;
    }
#endif
    /* Neither touches the store once closing: a scrub read in flight completes through the
     * store's close, and the registrar's calls to meta are abandoned. */
    if (app->scrub) {
        node_scrub_close(app->scrub, NULL, NULL);
        app->scrub = NULL;
    }
    if (app->reg) {
        node_registrar_close(app->reg, NULL, NULL);
        app->reg = NULL;
    }
    if (app->store)
        node_store_close(app->store, store_closed, app);
    if (app->signals_ready) {
        for (int i = 0; i < 2; i++)
            uv_close((uv_handle_t *)&app->sig[i], NULL);
        app->signals_ready = false;
    }
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    if (app->shutting_down) {
        LOG_WARN(LOG_CTX, "%s again: exiting without a clean shutdown", strsignal(signum));
        _exit(1);
    }
    LOG_INFO(LOG_CTX, "%s: shutting down", strsignal(signum));
    begin_shutdown(app);
}

/* Runs the loop until every handle is closed, then releases what is left. */
static void finish(struct app *app)
{
    if (app->loop_ready) {
        uv_run(&app->loop, UV_RUN_DEFAULT);
        node_service_destroy(app->svc);
        app->svc = NULL;
        node_fanout_destroy(app->fanout);
        app->fanout = NULL;
        int rc = uv_loop_close(&app->loop);
        /* The store and the RDMA sources are closed: no registration is left, and no read
         * buffer should be out (one that is keeps the arena, and node_io_buf_put its way). */
        if (app->read_arena && cmn_arena_destroy(app->read_arena) == 0)
            node_io_set_read_arena(NULL);
        else if (app->read_arena)
            LOG_WARN(LOG_CTX, "read buffers still out at exit: the read arena is left mapped");
        app->read_arena = NULL;
        if (rc != 0)
            LOG_WARN(LOG_CTX, "loop closed with handles still open: %s", uv_strerror(rc));
    }
    if (app->metrics)
        cmn_metrics_destroy(app->metrics);
    node_config_free(&app->cfg);
}

/* ---------------------------------------------------------------------------------------
 * Start
 * ------------------------------------------------------------------------------------- */

static void store_open_failed(const struct node_config *cfg, int rc, const struct cmn_err *err)
{
    const char *remedy = "";
    switch (rc) {
    case LODE_EWRONGDISK:
        remedy = " (check data-dirs and cluster; lode-node never reformats a directory that "
                 "holds data)";
        break;
    case -EBUSY:
        remedy = " (stop the other lode-node first)";
        break;
    case LODE_ECORRUPT:
        remedy = " (a superblock fails its checksum: inspect it with `lodectl inspect "
                 "node-dir PATH`)";
        break;
    case -EACCES:
    case -EPERM:
    case -EROFS:
        remedy = " (fix the owner, mode or mount of the data dirs)";
        break;
    default:
        break;
    }
    LOG_ERROR(LOG_CTX, "cannot open the chunk store (cluster %s, %zu data dir(s)): %s%s",
              cfg->cluster, cfg->n_dirs, cmn_err_text(err), remedy);
}


/* Data sessions name their sources by nid: the listener answers with it once known. */
static void nid_assigned(void *data, uint32_t nid)
{
    struct app *app = data;
    if (app->dp)
        cmn_dp_server_set_source_id(app->dp, nid);
#ifdef HAVE_RDMA
    if (app->rc)
        cmn_dp_rc_set_source_id(app->rc, nid);
#endif
}

/* The fan-out data listener (data-address): clients' data sessions connect here, and
 * FANOUT_PUSH writes into them. `rpc_host` is the host of rpc-address, for messages. */
static int start_data_listener(struct app *app, const char *rpc_host)
{
    struct node_config *cfg = &app->cfg;
    struct cmn_err err;
    cmn_err_clear(&err);
    struct cmn_dp_server_config dc = {
        .secret = cfg->secret,
        .secret_len = cfg->secret_len,
        .max_frame = (uint32_t)cfg->max_chunk_size,
    };
    int rc = cmn_dp_server_create(&app->loop, &dc, &app->dp);
    if (rc) {
        LOG_ERROR(LOG_CTX, "data listener: %s", lode_strerror(rc));
        return rc;
    }
    if ((rc = cmn_dp_server_listen(app->dp, cfg->data_address, &err))) {
        LOG_ERROR(LOG_CTX, "data listener on %s: %s (another process may hold the port: choose "
                  "another data-address)", cfg->data_address, cmn_err_text(&err));
        return rc;
    }
    if (!cfg->data_advertise[0]) {
        char host[NODE_ADDR_MAX];
        uint16_t port = 0;
        cmn_addr_split(cfg->data_address, host, sizeof(host), &port);
        snprintf(cfg->data_advertise, sizeof(cfg->data_advertise), "%s:%d",
                 strcmp(host, "0.0.0.0") == 0 ? rpc_host : host, cmn_dp_server_port(app->dp));
    }
    LOG_INFO(LOG_CTX, "fan-out data listener on %s (advertised as %s)", cfg->data_address,
             cfg->data_advertise);
    return 0;
}

/* Chunk reads land in memory registered with the rc listener and the dc initiators, which
 * then write them to clients without a staging copy. Not fatal: without it every write is
 * staged (as it is by a transport whose registration failed). */
static void start_read_arena(struct app *app)
{
#ifdef HAVE_RDMA
    struct cmn_err err;
    cmn_err_clear(&err);
    size_t size = (size_t)app->cfg.rdma_read_buffers;
    if (cmn_arena_create(size, &app->read_arena) != 0) {
        LOG_WARN(LOG_CTX, "rdma-read-buffers: cannot reserve %zu bytes; RDMA writes are staged",
                 size);
        return;
    }
    void *base = cmn_arena_base(app->read_arena);
    size = cmn_arena_size(app->read_arena);
    int used = 0;
    if (app->rc && cmn_dp_rc_add_region(app->rc, base, size, &err) == 0)
        used++;
    else if (app->rc)
        LOG_WARN(LOG_CTX, "rdma-read-buffers: %s; rc writes are staged", cmn_err_text(&err));
#ifdef HAVE_MLX5DV
    cmn_err_clear(&err);
    if (app->dc && cmn_dp_dc_add_region(app->dc, base, size, &err) == 0)
        used++;
    else if (app->dc)
        LOG_WARN(LOG_CTX, "rdma-read-buffers: %s; dc writes are staged", cmn_err_text(&err));
#endif
    if (used == 0) {
        cmn_arena_destroy(app->read_arena);
        app->read_arena = NULL;
        return;
    }
    node_io_set_read_arena(app->read_arena);
    LOG_INFO(LOG_CTX, "chunk reads go to %zu bytes of registered memory (rdma-read-buffers)",
             size);
#else
    (void)app;
#endif
}

/* The rc listener (rdma-address): clients' queue pairs connect here, and FANOUT_PUSH with
 * transport rc RDMA-WRITEs into their windows. */
static int start_rc_listener(struct app *app, const char *rpc_host)
{
#ifdef HAVE_RDMA
    struct node_config *cfg = &app->cfg;
    struct cmn_err err;
    cmn_err_clear(&err);
    char host[NODE_ADDR_MAX];
    uint16_t port = 0;
    cmn_addr_split(cfg->rdma_address, host, sizeof(host), &port);
    struct cmn_dp_rc_config rcfg = {
        .host = host,
        .port = port,
        .secret = cfg->secret,
        .secret_len = cfg->secret_len,
        .staging_bytes = (size_t)cfg->rdma_staging_size,
    };
    int rc = cmn_dp_rc_create(&app->loop, &rcfg, &app->rc, &err);
    if (rc) {
        app->rc = NULL;
        LOG_ERROR(LOG_CTX, "rc listener on %s: %s", cfg->rdma_address, cmn_err_text(&err));
        return rc;
    }
    if (!cfg->rdma_advertise[0])
        snprintf(cfg->rdma_advertise, sizeof(cfg->rdma_advertise), "%s:%u",
                 strcmp(host, "0.0.0.0") == 0 ? rpc_host : host,
                 (unsigned)cmn_dp_rc_port(app->rc));
    LOG_INFO(LOG_CTX, "rc listener on %s (advertised as %s)", cfg->rdma_address,
             cfg->rdma_advertise);
    return 0;
#else
    (void)app;
    (void)rpc_host;
    return LODE_ECONFIG; /* node_config_finish refuses rdma-address in such a build */
#endif
}

/* The dc initiators (dc-device / dc-address): FANOUT_PUSH with transport dc RDMA-WRITEs
 * into cuObject-family clients' windows through them. A failure is fatal: dc was asked for. */
static int start_dc(struct app *app)
{
#ifdef HAVE_MLX5DV
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = cmn_dp_dc_create(&app->loop, &app->cfg.dc, &app->dc, &err);
    if (rc) {
        app->dc = NULL;
        LOG_ERROR(LOG_CTX, "dc: %s", cmn_err_text(&err));
        return rc;
    }
    LOG_INFO(LOG_CTX, "dc initiators on %s (drain bound %" PRIu64 " ms)",
             app->cfg.dc.device ? app->cfg.dc.device : app->cfg.dc.ip,
             cmn_dp_dc_drain_ms(app->dc));
    return 0;
#else
    (void)app;
    return LODE_ECONFIG; /* node_config_dc_buildable refuses dc in such a build */
#endif
}

/* FANOUT_PUSH over whichever listeners run. */
static int start_fanout(struct app *app)
{
    struct node_fanout_options fo = {
        .loop = &app->loop,
        .store = app->store,
        .dp = app->dp,
        .rc = app->rc,
        .dc_config = &app->cfg.dc,
        .metrics = app->metrics,
        .max_piece = (uint32_t)app->cfg.max_chunk_size,
    };
#ifdef HAVE_MLX5DV
    fo.dc = app->dc;
    fo.dc_ops = &node_fanout_dc_verbs;
#endif
    int rc = node_fanout_create(&fo, &app->fanout);
    if (rc) {
        LOG_ERROR(LOG_CTX, "fan-out: %s", lode_strerror(rc));
        return rc;
    }
    node_service_attach_fanout(app->svc, app->fanout);
    return 0;
}

static int start(struct app *app)
{
    struct node_config *cfg = &app->cfg;
    struct cmn_err err;
    int rc;
    cmn_err_clear(&err);

    check_secret(cfg);
    if ((rc = node_config_dc_buildable(cfg, &err))) {
        LOG_ERROR(LOG_CTX, "%s", cmn_err_text(&err));
        return rc;
    }
    check_memlock(cfg);
    if ((rc = check_dirs(cfg)))
        return rc;

    if ((rc = uv_loop_init(&app->loop))) {
        LOG_ERROR(LOG_CTX, "event loop: %s", uv_strerror(rc));
        return rc;
    }
    app->loop_ready = true;

    if ((rc = cmn_metrics_create(&app->metrics))) {
        LOG_ERROR(LOG_CTX, "metrics: %s", lode_strerror(rc));
        return rc;
    }
    if (cfg->metrics_address &&
        (rc = cmn_metrics_http_start(app->metrics, &app->loop, cfg->metrics_address,
                                     &app->metrics_http, &err))) {
        LOG_ERROR(LOG_CTX, "metrics server on %s: %s", cfg->metrics_address,
                  cmn_err_text(&err));
        return rc;
    }

    struct node_store_options so = {
        .dirs = (const char *const *)cfg->dirs,
        .n_dirs = cfg->n_dirs,
        .cluster = cfg->cluster,
        .volume_size = cfg->volume_size,
        .max_chunk_size = cfg->max_chunk_size,
        .capacity_limit = cfg->capacity_limit,
        .io_kind = cfg->io_kind,
        .queue_depth = (unsigned)cfg->queue_depth,
        .metrics = app->metrics,
        .node_uuid = cfg->have_uuid ? &cfg->uuid : NULL,
    };
    if ((rc = node_store_open(&app->loop, &so, &app->store, &err))) {
        app->store = NULL;
        store_open_failed(cfg, rc, &err);
        return rc;
    }

    struct node_service_options sv = {
        .loop = &app->loop,
        .store = app->store,
        .metrics = app->metrics,
        .cluster = cfg->cluster,
        .failure_domain = cfg->failure_domain,
        .max_chunk_size = cfg->max_chunk_size,
    };
    if ((rc = node_service_create(&sv, &app->svc, &err))) {
        LOG_ERROR(LOG_CTX, "chunk service: %s", cmn_err_text(&err));
        return rc;
    }
    struct cmn_rpc_server_config rc_cfg = {
        .service = PROG,
        .secret = cfg->secret,
        .secret_len = cfg->secret_len,
        .max_frame = (uint32_t)cfg->max_frame_size,
        .handler = node_service_handle,
        .data = app->svc,
        .metrics = app->metrics,
        .payload_alloc = node_service_payload_alloc,
        .payload_free = node_service_payload_free,
    };
    if ((rc = cmn_rpc_server_create(&app->loop, &rc_cfg, &app->rpc))) {
        LOG_ERROR(LOG_CTX, "rpc server: %s", lode_strerror(rc));
        return rc;
    }
    if ((rc = cmn_rpc_server_listen(app->rpc, cfg->rpc_address, &err))) {
        LOG_ERROR(LOG_CTX, "rpc server on %s: %s (another process may hold the port: choose "
                  "another rpc-address)", cfg->rpc_address, cmn_err_text(&err));
        return rc;
    }
    char host[NODE_ADDR_MAX];
    uint16_t port = 0;
    cmn_addr_split(cfg->rpc_address, host, sizeof(host), &port);
    char bound[NODE_ADDR_MAX + 8];
    snprintf(bound, sizeof(bound), "%s:%d", host, cmn_rpc_server_port(app->rpc));
    if (!cfg->advertise[0])
        snprintf(cfg->advertise, sizeof(cfg->advertise), "%s", bound);
    node_service_set_address(app->svc, cfg->advertise);
    if (cfg->data_address && (rc = start_data_listener(app, host)) != 0)
        return rc;
    if (cfg->rdma_address && (rc = start_rc_listener(app, host)) != 0)
        return rc;
    if (cfg->dc_enabled && (rc = start_dc(app)) != 0)
        return rc;
    if ((app->rc || app->dc) && cfg->rdma_read_buffers > 0)
        start_read_arena(app);
    if ((app->dp || app->rc || app->dc) && (rc = start_fanout(app)) != 0)
        return rc;

    struct node_registrar_options ro = {
        .loop = &app->loop,
        .store = app->store,
        .metrics = app->metrics,
        .meta = cfg->meta,
        .secret = cfg->secret,
        .secret_len = cfg->secret_len,
        .address = cfg->advertise,
        .data_address = cfg->data_advertise,
        .rdma_address = cfg->rdma_advertise,
        .dc = app->dc != NULL,
        .on_nid = app->dp || app->rc ? nid_assigned : NULL,
        .on_nid_data = app,
        .failure_domain = cfg->failure_domain,
        .heartbeat_interval_ms = cfg->heartbeat_interval_ms,
        .max_frame = (uint32_t)cfg->max_frame_size,
    };
    if ((rc = node_registrar_start(&ro, &app->reg, &err))) {
        LOG_ERROR(LOG_CTX, "registrar: %s", cmn_err_text(&err));
        return rc;
    }
    struct node_scrub_options sco = {
        .loop = &app->loop,
        .store = app->store,
        .rate = cfg->scrub_rate,
        .metrics = app->metrics,
        .max_chunk_size = cfg->max_chunk_size,
    };
    if ((rc = node_scrub_start(&sco, &app->scrub))) {
        LOG_ERROR(LOG_CTX, "scrubber: %s", lode_strerror(rc));
        return rc;
    }
    node_service_attach(app->svc, app->reg, app->scrub);

    static const int signums[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&app->loop, &app->sig[i]);
        app->sig[i].data = app;
        uv_signal_start(&app->sig[i], signal_cb, signums[i]);
    }
    app->signals_ready = true;

    struct node_store_stats stats;
    node_store_stats(app->store, &stats);
    struct cmn_id uuid = node_store_uuid(app->store);
    char hex[CMN_ID_HEX_SIZE];
    cmn_id_to_hex(&uuid, hex);
    char adv[NODE_ADDR_MAX + 32] = "";
    if (strcmp(cfg->advertise, bound) != 0)
        snprintf(adv, sizeof(adv), " (advertised as %s)", cfg->advertise);
    if (cfg->scrub_rate == 0)
        LOG_INFO(LOG_CTX, "scrubbing is disabled (scrub-rate = 0)");
    LOG_INFO(LOG_CTX, PROG " %s ready: rpc %s%s, %" PRIu64 " chunks, %" PRIu64 " of %" PRIu64
             " bytes used", hex, bound, adv, stats.chunks, stats.used_bytes,
             stats.capacity_bytes);
    return 0;
}

/* The daemon's own configuration checks, for cmn_conf_cli_finish. */
static int config_finish(void *cfg, struct cmn_err *err)
{
    return node_config_finish(cfg, err);
}

static void config_release(void *cfg)
{
    node_config_free(cfg);
}

int main(int argc, char **argv)
{
    struct app app;
    memset(&app, 0, sizeof(app));
    signal(SIGPIPE, SIG_IGN);

    int exit_code = 0;
    if (cmn_conf_cli_finish(node_conf_table, &app.cfg, PROG, argc, argv, config_finish,
                            config_release, &exit_code))
        return exit_code;
    if (cmn_log_setup(PROG, (enum cmn_log_level)app.cfg.log_level, app.cfg.log_file) != 0) {
        node_config_free(&app.cfg);
        return 1;
    }

    if (start(&app) != 0) {
        begin_shutdown(&app);
        finish(&app);
        return 1;
    }
    uv_run(&app.loop, UV_RUN_DEFAULT);
    begin_shutdown(&app);
    finish(&app);
    LOG_INFO(LOG_CTX, "stopped");
    return 0;
}
