/* lode-meta: configuration, startup checks, the loop, signals and orderly shutdown.
 *
 * Start order: state machine (empty), service, raft (which restores the snapshot and
 * replays the log into the state machine), then the RPC server, so the first request
 * already sees the rebuilt state. Shutdown runs the other way round.
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
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <uv.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "meta/config.h"
#include "meta/consensus.h"
#include "meta/fsm.h"
#include "meta/service.h"

#define PROG "lode-meta"
#define LOG_CTX "main"
#define TMPFS_MAGIC_NUMBER 0x01021994
#define AIO_HEADROOM 1024          /* free AIO events below which raft may fail to start */

#if defined(__SANITIZE_ADDRESS__)
/* raft 0.22.1 leaks an InstallSnapshot message (data and configuration) that arrives while
 * a snapshot is being installed (recvInstallSnapshot returns early without freeing it).
 * Nothing here can free it, so sanitizer builds keep raft's own allocations out of the
 * leak report rather than fail every test that installs a snapshot. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libraft.so\n";
}
#endif

struct app {
    uv_loop_t loop;
    bool loop_ready;
    struct meta_config cfg;
    struct cmn_metrics *metrics;
    struct cmn_metrics_http *metrics_http;
    struct meta_fsm *fsm;
    struct meta_service *svc;
    struct meta_consensus *cons;
    struct cmn_rpc_server *rpc;
    uv_signal_t sig[2];
    bool signals_ready;
    bool shutting_down;
    int lock_fd;
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

static int join_path(char *out, size_t size, const char *dir, const char *name)
{
    if (snprintf(out, size, "%s/%s", dir, name) >= (int)size) {
        LOG_ERROR(LOG_CTX, "path too long: %s/%s", dir, name);
        return -ENAMETOOLONG;
    }
    return 0;
}

static int check_data_dir(struct app *app)
{
    const char *dir = app->cfg.data_dir;
    char path[PATH_MAX];
    int rc = mkdir_p(dir, 0700);
    if (rc) {
        LOG_ERROR(LOG_CTX, "cannot create data-dir %s: %s (create it for the service user, or "
                  "choose another data-dir)", dir, strerror(-rc));
        return rc;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        LOG_ERROR(LOG_CTX, "data-dir %s is not a directory", dir);
        return -ENOTDIR;
    }

    /* Writable: try it rather than guess from modes (ACLs, read-only mounts). */
    if ((rc = join_path(path, sizeof(path), dir, ".write-test")))
        return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        LOG_ERROR(LOG_CTX, "data-dir %s is not writable by uid %u: %s (fix its owner or mode, "
                  "or choose another data-dir)", dir, (unsigned)getuid(), strerror(-rc));
        return rc;
    }
    close(fd);
    unlink(path);

    /* One process per data-dir: two raft instances on one log would corrupt it. */
    if ((rc = join_path(path, sizeof(path), dir, "LOCK")))
        return rc;
    app->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (app->lock_fd < 0 || flock(app->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = -errno;
        LOG_ERROR(LOG_CTX, "data-dir %s is in use by another lode-meta (%s/LOCK is held): "
                  "stop it first, or give each replica its own data-dir", dir, dir);
        return rc ? rc : -EBUSY;
    }

    /* The raft log belongs to one server id forever. */
    if ((rc = join_path(path, sizeof(path), dir, "replica-id")))
        return rc;
    FILE *f = fopen(path, "r");
    if (f) {
        long long stored = 0;
        int n = fscanf(f, "%lld", &stored);
        fclose(f);
        if (n == 1 && stored != app->cfg.id) {
            LOG_ERROR(LOG_CTX, "data-dir %s holds replica %lld's raft state, but id = %" PRId64
                      ": a replica cannot change its id; fix id, or use a fresh data-dir and "
                      "add-voter", dir, stored, app->cfg.id);
            return LODE_ECONFIG;
        }
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            char buf[32];
            int len = snprintf(buf, sizeof(buf), "%" PRId64 "\n", app->cfg.id);
            if (write(fd, buf, (size_t)len) != len || fsync(fd) != 0)
                LOG_WARN(LOG_CTX, "writing %s: %s", path, strerror(errno));
            close(fd);
        }
    }

    struct statfs sfs;
    if (statfs(dir, &sfs) == 0 && (unsigned long)sfs.f_type == TMPFS_MAGIC_NUMBER)
        LOG_WARN(LOG_CTX, "data-dir %s is on tmpfs: raft cannot use direct I/O there and runs "
                 "buffered, and the log is lost on reboot; use ext4 or xfs outside tests", dir);
    return 0;
}

static int read_u64_file(const char *path, unsigned long long *v)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    int n = fscanf(f, "%llu", v);
    fclose(f);
    return n == 1 ? 0 : -EINVAL;
}

static void check_system(const struct app *app)
{
    unsigned long long max = 0, used = 0;
    if (read_u64_file("/proc/sys/fs/aio-max-nr", &max) == 0 &&
        read_u64_file("/proc/sys/fs/aio-nr", &used) == 0 && max < used + AIO_HEADROOM)
        LOG_WARN(LOG_CTX, "fs.aio-max-nr is %llu with %llu in use: raft's disk I/O (Linux AIO) "
                 "may fail to start; raise it, e.g. sysctl -w fs.aio-max-nr=1048576", max, used);

    cmn_conf_warn_secret(LOG_CTX, app->cfg.cluster_secret, app->cfg.cluster_secret_file);
}

/* ---------------------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------------------- */

static void consensus_closed(void *data)
{
    struct app *app = data;
    app->cons = NULL;
    LOG_DEBUG(LOG_CTX, "raft closed");
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
        meta_service_stop(app->svc);
    if (app->cons)
        meta_consensus_close(app->cons, consensus_closed, app);
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
        meta_service_destroy(app->svc);
        app->svc = NULL;
        if (app->fsm)
            meta_fsm_close(app->fsm);
        app->fsm = NULL;
        int rc = uv_loop_close(&app->loop);
        if (rc != 0)
            LOG_WARN(LOG_CTX, "loop closed with handles still open: %s", uv_strerror(rc));
    }
    if (app->metrics)
        cmn_metrics_destroy(app->metrics);
    if (app->lock_fd >= 0)
        close(app->lock_fd);
    meta_config_free(&app->cfg);
}

/* ---------------------------------------------------------------------------------------
 * Start
 * ------------------------------------------------------------------------------------- */

static int start(struct app *app)
{
    struct meta_config *cfg = &app->cfg;
    struct cmn_err err;
    char path[PATH_MAX];
    int rc;
    cmn_err_clear(&err);

    if ((rc = check_data_dir(app)))
        return rc;
    check_system(app);

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

    if ((rc = join_path(path, sizeof(path), cfg->data_dir, "state")))
        return rc;
    struct meta_fsm_options fo = {.dir = path, .map_size = cfg->lmdb_map_size};
    if ((rc = meta_fsm_open(&fo, &app->fsm, &err))) {
        LOG_ERROR(LOG_CTX, "state machine in %s: %s", path, cmn_err_text(&err));
        return rc;
    }

    struct meta_service_options so = {
        .loop = &app->loop, .cfg = cfg, .fsm = app->fsm, .metrics = app->metrics};
    if ((rc = meta_service_create(&so, &app->svc, &err))) {
        LOG_ERROR(LOG_CTX, "service: %s", cmn_err_text(&err));
        return rc;
    }

    if ((rc = join_path(path, sizeof(path), cfg->data_dir, "raft")))
        return rc;
    struct meta_consensus_options co = {
        .loop = &app->loop,
        .id = (uint64_t)cfg->id,
        .raft_address = cfg->raft_address,
        .dir = path,
        .fsm = app->fsm,
        .election_timeout_ms = (unsigned)cfg->election_timeout_ms,
        .heartbeat_timeout_ms = (unsigned)cfg->heartbeat_timeout_ms,
        .snapshot_threshold = (unsigned)cfg->snapshot_threshold,
        .snapshot_trailing = (unsigned)cfg->snapshot_trailing,
        .bootstrap = cfg->join ? NULL : cfg->peer_list,
        .n_bootstrap = cfg->join ? 0 : cfg->n_peers,
        .on_change = meta_service_on_change,
        .data = app->svc,
    };
    if ((rc = meta_consensus_start(&co, &app->cons, &err))) {
        LOG_ERROR(LOG_CTX, "raft in %s: %s", path, cmn_err_text(&err));
        return rc;
    }
    meta_service_attach(app->svc, app->cons);

    struct cmn_rpc_server_config rc_cfg = {
        .service = PROG,
        .secret = cfg->secret,
        .secret_len = cfg->secret_len,
        .max_frame = (uint32_t)cfg->max_frame_size,
        .handler = meta_service_handle,
        .data = app->svc,
        .metrics = app->metrics,
    };
    if ((rc = cmn_rpc_server_create(&app->loop, &rc_cfg, &app->rpc))) {
        LOG_ERROR(LOG_CTX, "rpc server: %s", lode_strerror(rc));
        return rc;
    }
    if ((rc = cmn_rpc_server_listen(app->rpc, cfg->rpc_address, &err))) {
        LOG_ERROR(LOG_CTX, "rpc server on %s: %s", cfg->rpc_address, cmn_err_text(&err));
        return rc;
    }

    static const int signums[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&app->loop, &app->sig[i]);
        app->sig[i].data = app;
        uv_signal_start(&app->sig[i], signal_cb, signums[i]);
    }
    app->signals_ready = true;

    char host[META_ADDR_MAX];
    uint16_t port = 0;
    cmn_addr_split(cfg->rpc_address, host, sizeof(host), &port);
    LOG_INFO(LOG_CTX, PROG " %" PRId64 " ready: rpc %s:%d raft %s", cfg->id, host,
             cmn_rpc_server_port(app->rpc), cfg->raft_address);
    return 0;
}

/* The daemon's own configuration checks, for cmn_conf_cli_finish. */
static int config_finish(void *cfg, struct cmn_err *err)
{
    return meta_config_finish(cfg, err);
}

static void config_release(void *cfg)
{
    meta_config_free(cfg);
}

int main(int argc, char **argv)
{
    struct app app;
    memset(&app, 0, sizeof(app));
    app.lock_fd = -1;
    signal(SIGPIPE, SIG_IGN);

    int exit_code = 0;
    if (cmn_conf_cli_finish(meta_conf_table, &app.cfg, PROG, argc, argv, config_finish,
                            config_release, &exit_code))
        return exit_code;
    if (cmn_log_setup(PROG, (enum cmn_log_level)app.cfg.log_level, app.cfg.log_file) != 0) {
        meta_config_free(&app.cfg);
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
