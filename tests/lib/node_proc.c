/* Real lode-node processes for integration tests (see node_proc.h). */
#include "tests/lib/node_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxh_x86dispatch.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/meta_client.h"
#include "common/rpc_codec.h"
#include "common/rpc_sync.h"

#define STOP_GRACE_MS 10000
#define LOG_TAIL_LINES 30

/* Nodes not yet destroyed, so that exit() (tap_bail, an early return) still stops them. */
static struct tl_node *live[16];
static int atexit_installed;

/* TAP comment lines without tap.h (which is one-per-program). */
__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

__attribute__((format(printf, 1, 2))) static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, "node_proc: out of memory\n");
        abort();
    }
    return s;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            return e;
        }
        off += (size_t)n;
    }
    return close(fd) == 0 ? 0 : -errno;
}

static void append_log_line(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    ssize_t n = write(fd, line, strlen(line));
    (void)n;
    close(fd);
}

static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (cap - n < 4096) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, ncap + 1);
            if (!nb)
                break;
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static const char *tail_start(const char *text, size_t len, unsigned lines)
{
    const char *p = text + len;
    if (p > text && p[-1] == '\n')
        p--;
    while (p > text) {
        if (p[-1] == '\n' && --lines == 0)
            break;
        p--;
    }
    return p;
}

void tl_node_log_tail(struct tl_node *n, unsigned lines)
{
    size_t len = 0;
    char *text = read_whole(n->log_path, &len);
    note("---- node log (%s), last %u lines ----", n->log_path, lines);
    if (!text) {
        note("(no log)");
        return;
    }
    const char *p = tail_start(text, len, lines);
    while (*p) {
        const char *e = strchr(p, '\n');
        int k = e ? (int)(e - p) : (int)strlen(p);
        note("  %.*s", k > 400 ? 400 : k, p);
        p += k + (e ? 1 : 0);
    }
    free(text);
}

char *tl_node_log_read(struct tl_node *n)
{
    size_t len = 0;
    return read_whole(n->log_path, &len);
}

/* Appends the last lines of the log to err's message, flattened to one line. */
static void tail_into_err(struct tl_node *n, struct cmn_err *err)
{
    size_t len = 0;
    char *text = read_whole(n->log_path, &len);
    if (!text || !err)
        return;
    const char *p = tail_start(text, len, 4);
    char flat[300], old[CMN_ERR_MSG_MAX];
    size_t k = 0;
    for (; *p && k + 1 < sizeof(flat); p++)
        flat[k++] = *p == '\n' ? '|' : *p;
    flat[k] = '\0';
    free(text);
    snprintf(old, sizeof(old), "%s", err->msg);
    cmn_err_set(err, err->code, "%s; log %s ends: %s", old, n->log_path, flat);
}

/* ---- lifecycle ---- */

/* Whether a run that ended with `status` ended the way the signal the test sent would end
 * it: killed by that very signal, or (for a signal the daemon handles, like SIGTERM) a clean
 * exit 0. Anything else (a crash, an exit by itself, a failed shutdown) is unexpected. */
static bool expected_end(int sent, int status)
{
    if (sent == 0)
        return false;
    if (WIFSIGNALED(status))
        return WTERMSIG(status) == sent;
    return sent != SIGKILL && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void reap(struct tl_node *n, int status)
{
    n->last_status = status;
    n->pid = 0;
    if (!expected_end(n->sent_signal, status))
        n->unexpected_exits++;
}

bool tl_node_alive(struct tl_node *n)
{
    int status;
    if (n->pid <= 0)
        return false;
    pid_t p = waitpid(n->pid, &status, WNOHANG);
    if (p == n->pid) {
        reap(n, status);
        return false;
    }
    return true;
}

static int stop_one(struct tl_node *n, int sig, unsigned grace_ms)
{
    int status;
    if (n->pid <= 0)
        return -ESRCH;
    n->sent_signal = sig;
    kill(n->pid, sig);
    uint64_t deadline = cmn_mono_ms() + grace_ms;
    for (;;) {
        pid_t p = waitpid(n->pid, &status, WNOHANG);
        if (p == n->pid) {
            reap(n, status);
            return 0;
        }
        if (p < 0 && errno == ECHILD) {
            n->pid = 0;
            return 0;
        }
        if (cmn_mono_ms() >= deadline)
            break;
        sleep_ms(5);
    }
    note("node %s (pid %d) ignored signal %d for %u ms: SIGKILL", n->rpc_addr, (int)n->pid, sig,
         grace_ms);
    n->unexpected_exits++; /* a node that does not stop on SIGTERM is a bug too */
    n->sent_signal = SIGKILL;
    kill(n->pid, SIGKILL);
    if (waitpid(n->pid, &status, 0) == n->pid)
        n->last_status = status;
    n->pid = 0;
    return 0;
}

int tl_node_kill(struct tl_node *n, int sig)
{
    if (!tl_node_alive(n))
        return -ESRCH;
    return stop_one(n, sig, STOP_GRACE_MS);
}

static void release(struct tl_node *n, bool failed)
{
    if (n->pid > 0)
        stop_one(n, SIGTERM, STOP_GRACE_MS);
    if (failed) {
        tl_node_log_tail(n, LOG_TAIL_LINES);
        note("kept node directory %s", n->dir);
    } else if (n->dir) {
        tl_rmtree(n->dir);
    }
    for (unsigned i = 0; i < TL_NODE_MAX_DIRS; i++)
        free(n->dir_list[i]);
    explicit_bzero(n->secret_text, sizeof(n->secret_text));
    free(n->dir);
    free(n->conf_path);
    free(n->log_path);
    free(n->data_dirs);
    free(n->secret_path);
    free(n->meta_addrs);
    free(n->node_bin);
    free(n);
}

static void at_exit_stop(void)
{
    for (size_t k = 0; k < sizeof(live) / sizeof(live[0]); k++) {
        if (live[k]) {
            struct tl_node *n = live[k];
            live[k] = NULL;
            note("node %s was not destroyed before exit: stopping it", n->dir);
            release(n, true);
        }
    }
}

static void track(struct tl_node *n, bool add)
{
    if (!atexit_installed) {
        atexit(at_exit_stop);
        atexit_installed = 1;
    }
    for (size_t k = 0; k < sizeof(live) / sizeof(live[0]); k++) {
        if (add && !live[k]) {
            live[k] = n;
            return;
        }
        if (!add && live[k] == n) {
            live[k] = NULL;
            return;
        }
    }
}

void tl_node_destroy(struct tl_node *n, bool failed)
{
    if (!n)
        return;
    track(n, false);
    release(n, failed);
}

static const char *or_default(const char *v, const char *def)
{
    return v ? v : def;
}

int tl_node_write_config(struct tl_node *n, struct cmn_err *err)
{
    const struct tl_node_options *o = &n->opts;
    char *opt = xasprintf("%s", "");
#define OPT(key, val)                                                                   \
    do {                                                                                \
        if (val) {                                                                      \
            char *t_ = xasprintf("%s%s = %s\n", opt, key, val);                         \
            free(opt);                                                                  \
            opt = t_;                                                                   \
        }                                                                               \
    } while (0)
    /* Small volumes need a small max-chunk-size (a volume must hold the largest chunk). */
    OPT("max-chunk-size", or_default(o->max_chunk_size, "1MiB"));
    OPT("capacity-limit", o->capacity_limit);
    OPT("io-backend", o->io_backend);
    OPT("queue-depth", o->queue_depth);
    OPT("max-frame-size", o->max_frame_size);
#undef OPT
    const char *extra = o->extra_conf ? o->extra_conf : "";
    size_t elen = strlen(extra);
    char *text = xasprintf("# generated by tests/lib/node_proc.c\n"
                           "cluster = %s\n"
                           "data-dirs = %s\n"
                           "rpc-address = %s\n"
                           "metrics-address = %s\n"
                           "failure-domain = %s\n"
                           "meta = %s\n"
                           "cluster-secret-file = %s\n"
                           "log-level = %s\n"
                           "volume-size = %s\n"
                           "heartbeat-interval = %s\n"
                           "scrub-rate = %s\n"
                           "%s%s%s",
                           or_default(o->cluster, "lode-test"), n->data_dirs, n->rpc_addr,
                           n->metrics_addr, or_default(o->failure_domain, "fd-1"), n->meta_addrs,
                           n->secret_path, or_default(o->log_level, "info"),
                           or_default(o->volume_size, "4MiB"),
                           or_default(o->heartbeat_interval, "200ms"),
                           or_default(o->scrub_rate, "0"), opt, extra,
                           elen && extra[elen - 1] != '\n' ? "\n" : "");
    free(opt);
    int rc = write_file(n->conf_path, text, 0644);
    free(text);
    if (rc != 0)
        return cmn_err_set(err, rc, "write %s: %s", n->conf_path, lode_strerror(rc));
    return 0;
}

/* Splits n->data_dirs into dir_list. */
static int split_dirs(struct tl_node *n, struct cmn_err *err)
{
    char *copy = xasprintf("%s", n->data_dirs), *save = NULL;
    n->n_dirs = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (n->n_dirs == TL_NODE_MAX_DIRS) {
            free(copy);
            return cmn_err_set(err, -EINVAL, "at most %d data directories", TL_NODE_MAX_DIRS);
        }
        n->dir_list[n->n_dirs++] = xasprintf("%s", t);
    }
    free(copy);
    return n->n_dirs ? 0 : cmn_err_set(err, -EINVAL, "no data directory");
}

int tl_node_create(const struct tl_node_options *opts, struct tl_node **out, struct cmn_err *err)
{
    struct tl_node *n = calloc(1, sizeof(*n));
    int rc;
    if (!n)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    n->opts = *opts;
    if (!n->opts.name)
        n->opts.name = "node";
    if (n->opts.n_dirs == 0)
        n->opts.n_dirs = 1;
    if (!n->opts.ready_timeout_ms)
        n->opts.ready_timeout_ms = 20000;
    if (!opts->data_dirs && n->opts.n_dirs > TL_NODE_MAX_DIRS) {
        free(n);
        return cmn_err_set(err, -EINVAL, "at most %d data directories", TL_NODE_MAX_DIRS);
    }

    const char *bd = getenv("LODE_BUILDDIR");
    n->node_bin = bd && *bd ? xasprintf("%s/lode-node", bd) : xasprintf("./lode-node");
    if (access(n->node_bin, X_OK) != 0) {
        rc = cmn_err_set(err, -errno, "%s: %s (set LODE_BUILDDIR to the build directory)",
                         n->node_bin, strerror(errno));
        free(n->node_bin);
        free(n);
        return rc;
    }
    char *tmpl = xasprintf("%s/%s.XXXXXX", tl_tmpdir(), n->opts.name);
    if (!mkdtemp(tmpl)) {
        rc = cmn_err_set(err, -errno, "mkdtemp %s: %s", tmpl, strerror(errno));
        free(tmpl);
        free(n->node_bin);
        free(n);
        return rc;
    }
    n->dir = tmpl;
    track(n, true);
    n->conf_path = xasprintf("%s/node.conf", n->dir);
    n->log_path = xasprintf("%s/node.log", n->dir);

    if (opts->data_dirs) {
        n->data_dirs = xasprintf("%s", opts->data_dirs);
    } else {
        n->data_dirs = xasprintf("%s", "");
        for (unsigned i = 0; i < n->opts.n_dirs; i++) {
            char *d = xasprintf("%s/data%u", n->dir, i);
            if (mkdir(d, 0755) != 0) {
                rc = cmn_err_set(err, -errno, "mkdir %s: %s", d, strerror(errno));
                free(d);
                goto fail;
            }
            char *s = xasprintf("%s%s%s", n->data_dirs, i ? "," : "", d);
            free(d);
            free(n->data_dirs);
            n->data_dirs = s;
        }
    }
    if ((rc = split_dirs(n, err)) != 0)
        goto fail;

    char addrs[3][TL_ADDR_MAX];
    for (unsigned i = 0; i < 3; i++) {
        /* One at a time is enough: nothing listens on them before the node starts, and the
         * kernel hands out ephemeral ports in turn. */
        if ((rc = tl_free_addr(addrs[i], sizeof(addrs[i]))) != 0) {
            cmn_err_set(err, rc, "pick a free port: %s", lode_strerror(rc));
            goto fail;
        }
    }
    if (!strcmp(addrs[0], addrs[1]) || !strcmp(addrs[0], addrs[2]) ||
        !strcmp(addrs[1], addrs[2])) {
        rc = cmn_err_set(err, -EADDRINUSE, "free ports repeated (%s %s %s)", addrs[0],
                         addrs[1], addrs[2]);
        goto fail;
    }
    snprintf(n->rpc_addr, sizeof(n->rpc_addr), "%s", addrs[0]);
    snprintf(n->metrics_addr, sizeof(n->metrics_addr), "%s", addrs[1]);

    if (n->opts.meta) {
        struct tl_cluster *c = n->opts.meta;
        n->secret_path = xasprintf("%s", c->secret_path);
        snprintf(n->secret_text, sizeof(n->secret_text), "%s", c->secret_text);
        n->secret_len = c->secret_len;
        n->meta_addrs = xasprintf("%s", tl_cluster_rpc_addrs(c));
    } else {
        uint8_t raw[32];
        if ((rc = cmn_random_bytes(raw, sizeof(raw))) != 0) {
            cmn_err_set(err, rc, "random secret: %s", lode_strerror(rc));
            goto fail;
        }
        cmn_hex_encode(raw, sizeof(raw), n->secret_text);
        explicit_bzero(raw, sizeof(raw));
        n->secret_len = strlen(n->secret_text);
        n->secret_path = xasprintf("%s/cluster.secret", n->dir);
        if ((rc = write_file(n->secret_path, n->secret_text, 0600)) != 0) {
            cmn_err_set(err, rc, "write %s: %s", n->secret_path, lode_strerror(rc));
            goto fail;
        }
        n->meta_addrs = xasprintf("%s", addrs[2]); /* nobody listens there */
    }
    if ((rc = tl_node_write_config(n, err)) != 0)
        goto fail;
    *out = n;
    return 0;

fail:
    track(n, false);
    release(n, true);
    return rc;
}

static int spawn(struct tl_node *n, const char *const *args, struct cmn_err *err)
{
    const char *argv[16];
    unsigned argc = 0;
    argv[argc++] = n->node_bin;
    argv[argc++] = "-c";
    argv[argc++] = n->conf_path;
    for (; args && *args && argc < 15; args++)
        argv[argc++] = *args;
    argv[argc] = NULL;

    pid_t parent = getpid();
    char *banner = xasprintf("=== tests/lib/node_proc: run %u: %s -c %s\n", n->runs + 1,
                             n->node_bin, n->conf_path);
    append_log_line(n->log_path, banner);
    free(banner);
    fflush(stdout);
    fflush(stderr);

    pid_t pid = fork();
    if (pid < 0)
        return cmn_err_set(err, -errno, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Dies with the test, however the test ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(n->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0)
            _exit(127);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(n->node_bin, (char *const *)argv);
        dprintf(2, "exec %s: %s\n", n->node_bin, strerror(errno));
        _exit(127);
    }
    n->pid = pid;
    n->sent_signal = 0;
    n->runs++;
    return 0;
}

int tl_node_ping(struct tl_node *n, uint32_t timeout_ms)
{
    struct cmn_rpc_sync *c = NULL;
    int rc = tl_node_connect(n, timeout_ms, &c, NULL);
    if (rc != 0)
        return rc;
    Lode__PingRequest req = LODE__PING_REQUEST__INIT;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    rc = cmn_rpc_sync_call(c, CMN_RPC_PING, 0, &req.base, timeout_ms, &res);
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    return rc;
}

int tl_node_run(struct tl_node *n, struct cmn_err *err)
{
    if (tl_node_alive(n))
        return cmn_err_set(err, -EBUSY, "node %s is running", n->rpc_addr);
    int rc = spawn(n, NULL, err);
    if (rc != 0)
        return rc;
    uint64_t deadline = cmn_mono_ms() + n->opts.ready_timeout_ms;
    for (;;) {
        if (!tl_node_alive(n)) {
            cmn_err_set(err, LODE_EUNAVAILABLE, "node %s exited during startup (%s %d)",
                        n->rpc_addr, WIFSIGNALED(n->last_status) ? "signal" : "status",
                        WIFSIGNALED(n->last_status) ? WTERMSIG(n->last_status)
                                                    : WEXITSTATUS(n->last_status));
            tail_into_err(n, err);
            return err ? err->code : LODE_EUNAVAILABLE;
        }
        rc = tl_node_ping(n, 1000);
        if (rc == 0)
            return 0;
        if (cmn_mono_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    cmn_err_set(err, LODE_ETIMEOUT, "node %s did not answer PING within %u ms: %s", n->rpc_addr,
                n->opts.ready_timeout_ms, lode_strerror(rc));
    tail_into_err(n, err);
    return LODE_ETIMEOUT;
}

int tl_node_start(const struct tl_node_options *opts, struct tl_node **out, struct cmn_err *err)
{
    struct tl_node *n = NULL;
    int rc = tl_node_create(opts, &n, err);
    if (rc != 0)
        return rc;
    rc = tl_node_run(n, err);
    if (rc != 0) {
        tl_node_destroy(n, true);
        return rc;
    }
    *out = n;
    return 0;
}

int tl_node_run_to_exit(struct tl_node *n, const char *const *args, uint32_t timeout_ms,
                        int *status, struct cmn_err *err)
{
    if (tl_node_alive(n))
        return cmn_err_set(err, -EBUSY, "node %s is running", n->rpc_addr);
    int rc = spawn(n, args, err);
    if (rc != 0)
        return rc;
    /* This run is expected to end by itself: not a crash unless a signal ends it. */
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t p = waitpid(n->pid, &st, WNOHANG);
        if (p == n->pid) {
            n->pid = 0;
            n->last_status = st;
            if (WIFSIGNALED(st))
                n->unexpected_exits++;
            *status = st;
            return 0;
        }
        if (cmn_mono_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    stop_one(n, SIGKILL, STOP_GRACE_MS);
    return cmn_err_set(err, LODE_ETIMEOUT, "node did not exit within %u ms", timeout_ms);
}

int tl_node_crash_count(struct tl_node *n)
{
    static const char *const markers[] = {
        "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
        "Assertion `", "Segmentation fault", "stack smashing detected",
    };
    int count = 0;
    size_t len = 0;
    char *text = read_whole(n->log_path, &len);
    for (size_t m = 0; text && m < sizeof(markers) / sizeof(markers[0]); m++) {
        if (strstr(text, markers[m])) {
            note("node %s log contains \"%s\"", n->rpc_addr, markers[m]);
            count++;
            break;
        }
    }
    free(text);
    tl_node_alive(n); /* reaps a run that ended on its own */
    if (n->unexpected_exits) {
        note("node %s: %u run(s) ended without being asked to (last status %s %d)", n->rpc_addr,
             n->unexpected_exits, WIFSIGNALED(n->last_status) ? "signal" : "exit",
             WIFSIGNALED(n->last_status) ? WTERMSIG(n->last_status)
                                         : WEXITSTATUS(n->last_status));
        count += (int)n->unexpected_exits;
    }
    return count;
}

/* ---- RPC ---- */

int tl_node_connect(struct tl_node *n, uint32_t timeout_ms, struct cmn_rpc_sync **out,
                    struct cmn_err *err)
{
    return cmn_rpc_sync_connect(n->rpc_addr, n->secret_text, n->secret_len, timeout_ms, out,
                                err);
}

uint64_t tl_xxh3(const void *data, size_t len)
{
    return XXH3_64bits_dispatch(data, len);
}

void tl_fill(void *buf, size_t len, uint64_t seed)
{
    /* splitmix64: fast, and every seed gives a different stream. */
    uint8_t *p = buf;
    uint64_t x = seed ^ 0x9E3779B97F4A7C15ull;
    while (len > 0) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        size_t k = len < 8 ? len : 8;
        memcpy(p, &z, k);
        p += k;
        len -= k;
    }
}

int tl_rpc_send(struct cmn_rpc_sync *c, unsigned method, const ProtobufCMessage *msg,
                const void *payload, size_t payload_len, uint64_t *id)
{
    /* Far above the ids cmn_rpc_sync_call counts from 1, so both can share a connection. */
    static uint64_t next_id = 1ull << 48;
    size_t body_len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
    if (body_len > UINT32_MAX || payload_len > UINT32_MAX)
        return -EINVAL;
    uint8_t *body = malloc(body_len ? body_len : 1);
    if (!body)
        return -ENOMEM;
    if (msg)
        protobuf_c_message_pack(msg, body);
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .method = (uint16_t)method, .request_id = ++next_id,
                               .body_len = (uint32_t)body_len,
                               .payload_len = (uint32_t)payload_len};
    struct cmn_buf f;
    cmn_buf_init(&f);
    int rc = cmn_rpc_frame_append(&f, &h, body, payload);
    free(body);
    if (rc == 0)
        rc = cmn_rpc_sync_send_raw(c, f.data, f.len);
    cmn_buf_free(&f);
    if (rc == 0 && id)
        *id = h.request_id;
    return rc;
}

int tl_chunk_put_ex(struct cmn_rpc_sync *c, const uint8_t *id, size_t id_len, uint64_t length,
                    uint64_t xxh3, const void *payload, size_t payload_len, uint32_t timeout_ms,
                    struct cmn_rpc_result *res)
{
    Lode__ChunkPutRequest req = LODE__CHUNK_PUT_REQUEST__INIT;
    req.chunk_id.data = (uint8_t *)id;
    req.chunk_id.len = id_len;
    req.length = length;
    req.xxh3 = xxh3;
    return cmn_rpc_sync_call_payload(c, CMN_RPC_CHUNK_PUT, 0, &req.base, payload, payload_len,
                                     timeout_ms, res);
}

int tl_chunk_put(struct cmn_rpc_sync *c, const uint8_t id[16], const void *data, size_t len,
                 uint32_t timeout_ms, struct cmn_rpc_result *res)
{
    return tl_chunk_put_ex(c, id, 16, len, tl_xxh3(data, len), data, len, timeout_ms, res);
}

/* On success, decodes the body as ChunkInfo into *info (when asked for). */
static int take_info(struct cmn_rpc_result *res, Lode__ChunkInfo **info)
{
    if (info)
        *info = NULL;
    if (res->status != 0)
        return res->status;
    Lode__ChunkInfo *ci = lode__chunk_info__unpack(NULL, res->body.len, res->body.data);
    if (!ci) {
        res->status = LODE_EBADMSG;
        snprintf(res->message, sizeof(res->message), "undecodable ChunkInfo in the reply");
        return res->status;
    }
    if (info)
        *info = ci;
    else
        lode__chunk_info__free_unpacked(ci, NULL);
    return 0;
}

int tl_chunk_get(struct cmn_rpc_sync *c, const uint8_t *id, size_t id_len, uint64_t offset,
                 uint64_t length, uint32_t timeout_ms, struct cmn_rpc_result *res,
                 Lode__ChunkInfo **info)
{
    Lode__ChunkGetRequest req = LODE__CHUNK_GET_REQUEST__INIT;
    req.chunk_id.data = (uint8_t *)id;
    req.chunk_id.len = id_len;
    req.offset = offset;
    req.length = length;
    cmn_rpc_sync_call(c, CMN_RPC_CHUNK_GET, 0, &req.base, timeout_ms, res);
    return take_info(res, info);
}

int tl_chunk_stat(struct cmn_rpc_sync *c, const uint8_t *id, size_t id_len, uint32_t timeout_ms,
                  struct cmn_rpc_result *res, Lode__ChunkInfo **info)
{
    Lode__ChunkIdRequest req = LODE__CHUNK_ID_REQUEST__INIT;
    req.chunk_id.data = (uint8_t *)id;
    req.chunk_id.len = id_len;
    cmn_rpc_sync_call(c, CMN_RPC_CHUNK_STAT, 0, &req.base, timeout_ms, res);
    return take_info(res, info);
}

int tl_chunk_delete(struct cmn_rpc_sync *c, const uint8_t *id, size_t id_len,
                    uint32_t timeout_ms, struct cmn_rpc_result *res)
{
    Lode__ChunkIdRequest req = LODE__CHUNK_ID_REQUEST__INIT;
    req.chunk_id.data = (uint8_t *)id;
    req.chunk_id.len = id_len;
    return cmn_rpc_sync_call(c, CMN_RPC_CHUNK_DELETE, 0, &req.base, timeout_ms, res);
}

int tl_chunk_list(struct cmn_rpc_sync *c, const uint8_t *after, uint32_t max,
                  uint32_t timeout_ms, struct cmn_rpc_result *res, Lode__ChunkListResponse **out)
{
    Lode__ChunkListRequest req = LODE__CHUNK_LIST_REQUEST__INIT;
    *out = NULL;
    if (after) {
        req.after.data = (uint8_t *)after;
        req.after.len = 16;
    }
    req.max = max;
    int rc = cmn_rpc_sync_call(c, CMN_RPC_CHUNK_LIST, 0, &req.base, timeout_ms, res);
    if (rc != 0)
        return rc;
    *out = lode__chunk_list_response__unpack(NULL, res->body.len, res->body.data);
    if (!*out) {
        res->status = LODE_EBADMSG;
        snprintf(res->message, sizeof(res->message), "undecodable ChunkListResponse");
    }
    return res->status;
}

int tl_chunk_list_all(struct cmn_rpc_sync *c, uint32_t page, uint32_t timeout_ms,
                      uint8_t (**ids)[16], uint64_t **lengths, size_t *n, struct cmn_err *err)
{
    uint8_t (*out)[16] = NULL;
    uint64_t *lens = NULL;
    size_t count = 0, cap = 0;
    uint8_t after[16];
    bool have_after = false;
    int rc = 0;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    for (unsigned pages = 0;; pages++) {
        Lode__ChunkListResponse *r = NULL;
        rc = tl_chunk_list(c, have_after ? after : NULL, page, timeout_ms, &res, &r);
        if (rc != 0) {
            cmn_err_set(err, rc, "CHUNK_LIST page %u: %s", pages,
                        res.message[0] ? res.message : lode_strerror(rc));
            break;
        }
        for (size_t i = 0; i < r->n_chunks && rc == 0; i++) {
            const Lode__ChunkInfo *ci = r->chunks[i];
            if (ci->chunk_id.len != 16) {
                rc = cmn_err_set(err, LODE_EBADMSG, "CHUNK_LIST entry with a %zu-byte id",
                                 ci->chunk_id.len);
            } else if (have_after && memcmp(ci->chunk_id.data, after, 16) <= 0) {
                rc = cmn_err_set(err, LODE_EBADMSG,
                                 "CHUNK_LIST not in strictly increasing id order (page %u)",
                                 pages);
            } else {
                if (count == cap) {
                    cap = cap ? cap * 2 : 256;
                    out = realloc(out, cap * sizeof(*out));
                    lens = realloc(lens, cap * sizeof(*lens));
                    if (!out || !lens)
                        abort();
                }
                memcpy(out[count], ci->chunk_id.data, 16);
                lens[count++] = ci->length;
                memcpy(after, ci->chunk_id.data, 16);
                have_after = true;
            }
        }
        bool more = r->truncated && r->n_chunks > 0;
        if (r->truncated && r->n_chunks == 0 && rc == 0)
            rc = cmn_err_set(err, LODE_EBADMSG, "CHUNK_LIST: an empty page marked truncated");
        lode__chunk_list_response__free_unpacked(r, NULL);
        if (rc != 0 || !more)
            break;
    }
    cmn_rpc_result_free(&res);
    if (rc != 0) {
        free(out);
        free(lens);
        return rc;
    }
    *ids = out;
    *n = count;
    if (lengths)
        *lengths = lens;
    else
        free(lens);
    return 0;
}

int tl_node_health(struct cmn_rpc_sync *c, uint32_t timeout_ms, Lode__NodeHealthResponse **out,
                   struct cmn_err *err)
{
    Lode__Empty req = LODE__EMPTY__INIT;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    *out = NULL;
    int rc = cmn_rpc_sync_call(c, CMN_RPC_NODE_HEALTH, 0, &req.base, timeout_ms, &res);
    if (rc == 0) {
        *out = lode__node_health_response__unpack(NULL, res.body.len, res.body.data);
        if (!*out)
            rc = cmn_err_set(err, LODE_EBADMSG, "undecodable NodeHealthResponse");
    } else {
        cmn_err_set(err, rc, "NODE_HEALTH: %s", res.message[0] ? res.message : lode_strerror(rc));
    }
    cmn_rpc_result_free(&res);
    return rc;
}

/* ---- meta ---- */

int tl_meta_cluster_map(struct cmn_meta_client *mc, uint32_t timeout_ms, Lode__ClusterMap **out,
                        struct cmn_err *err)
{
    Lode__Empty req = LODE__EMPTY__INIT;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    *out = NULL;
    int rc = cmn_meta_client_call(mc, CMN_RPC_CLUSTER_MAP_GET, &req.base, timeout_ms, &res);
    if (rc == 0) {
        *out = lode__cluster_map__unpack(NULL, res.body.len, res.body.data);
        if (!*out)
            rc = cmn_err_set(err, LODE_EBADMSG, "undecodable ClusterMap");
    } else {
        cmn_err_set(err, rc, "CLUSTER_MAP_GET: %s",
                    res.message[0] ? res.message : lode_strerror(rc));
    }
    cmn_rpc_result_free(&res);
    return rc;
}

Lode__NodeInfo *tl_meta_find_node(Lode__ClusterMap *map, const uint8_t *uuid, size_t uuid_len)
{
    for (size_t i = 0; map && i < map->n_nodes; i++) {
        Lode__NodeInfo *ni = map->nodes[i];
        if (ni->uuid.len == uuid_len && memcmp(ni->uuid.data, uuid, uuid_len) == 0)
            return ni;
    }
    return NULL;
}

int tl_meta_corrupt_list(struct cmn_meta_client *mc, uint32_t nid, uint32_t timeout_ms,
                         Lode__CorruptListResponse **out, struct cmn_err *err)
{
    Lode__CorruptListRequest req = LODE__CORRUPT_LIST_REQUEST__INIT;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    req.nid = nid;
    *out = NULL;
    int rc = cmn_meta_client_call(mc, CMN_RPC_CORRUPT_LIST, &req.base, timeout_ms, &res);
    if (rc == 0) {
        *out = lode__corrupt_list_response__unpack(NULL, res.body.len, res.body.data);
        if (!*out)
            rc = cmn_err_set(err, LODE_EBADMSG, "undecodable CorruptListResponse");
    } else {
        cmn_err_set(err, rc, "CORRUPT_LIST: %s", res.message[0] ? res.message : lode_strerror(rc));
    }
    cmn_rpc_result_free(&res);
    return rc;
}

const char *tl_node_state_name(Lode__NodeState s)
{
    switch (s) {
    case LODE__NODE_STATE__NODE_UP:
        return "UP";
    case LODE__NODE_STATE__NODE_SUSPECT:
        return "SUSPECT";
    case LODE__NODE_STATE__NODE_DOWN:
        return "DOWN";
    case LODE__NODE_STATE__NODE_DRAINING:
        return "DRAINING";
    case LODE__NODE_STATE__NODE_REMOVED:
        return "REMOVED";
    default:
        return "UNKNOWN";
    }
}
