/* Running a lode daemon under test (see daemon.h). */
#include "tests/lib/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "common/clock.h"
#include "common/id.h"

void tl_note(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

char *tl_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, "tests/lib: out of memory\n");
        abort();
    }
    return s;
}

void tl_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *tl_tmpdir(void)
{
    const char *d = getenv("TEST_TMPDIR");
    return d && *d ? d : "/tmp";
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -errno;
}

int tl_rmtree(const char *path)
{
    int rc = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc < 0)
        return -errno;
    return rc;
}

int tl_write_file(const char *path, const char *text, mode_t mode)
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

char *tl_read_file(const char *path, size_t *len)
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

int tl_daemon_bin(const char *name, char **out, struct cmn_err *err)
{
    const char *bd = getenv("LODE_BUILDDIR");
    char *bin = bd && *bd ? tl_xasprintf("%s/%s", bd, name) : tl_xasprintf("./%s", name);
    if (access(bin, X_OK) != 0) {
        int rc = cmn_err_set(err, -errno, "%s: %s (set LODE_BUILDDIR to the build directory)",
                             bin, strerror(errno));
        free(bin);
        return rc;
    }
    *out = bin;
    return 0;
}

int tl_make_tmpdir(const char *prefix, char **out, struct cmn_err *err)
{
    char *tmpl = tl_xasprintf("%s/%s.XXXXXX", tl_tmpdir(), prefix);
    if (!mkdtemp(tmpl)) {
        int rc = cmn_err_set(err, -errno, "mkdtemp %s: %s", tmpl, strerror(errno));
        free(tmpl);
        return rc;
    }
    *out = tmpl;
    return 0;
}

int tl_secret_create(const char *dir, char text[65], size_t *len, char **path,
                     struct cmn_err *err)
{
    uint8_t raw[32];
    *path = tl_xasprintf("%s/cluster.secret", dir);
    int rc = cmn_random_bytes(raw, sizeof(raw));
    if (rc != 0)
        return cmn_err_set(err, rc, "random secret: %s", lode_strerror(rc));
    cmn_hex_encode(raw, sizeof(raw), text);
    explicit_bzero(raw, sizeof(raw));
    *len = strlen(text);
    rc = tl_write_file(*path, text, 0600);
    if (rc != 0)
        return cmn_err_set(err, rc, "write %s: %s", *path, lode_strerror(rc));
    return 0;
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

int tl_spawn(const char *const *argv, const char *log_path, const char *banner, pid_t *pid,
             struct cmn_err *err)
{
    pid_t parent = getpid();
    if (banner)
        append_log_line(log_path, banner);
    /* Whatever is buffered would otherwise be written twice, once by the child. */
    fflush(stdout);
    fflush(stderr);

    pid_t p = fork();
    if (p < 0)
        return cmn_err_set(err, -errno, "fork: %s", strerror(errno));
    if (p == 0) {
        /* Dies with the test, however the test ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0)
            _exit(127);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    *pid = p;
    return 0;
}

int tl_wait_exit(pid_t pid, uint32_t timeout_ms, unsigned poll_ms, int *status)
{
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    for (;;) {
        pid_t p = waitpid(pid, status, WNOHANG);
        if (p == pid)
            return 0;
        if (p < 0 && errno == ECHILD)
            return -ECHILD;
        if (cmn_mono_ms() >= deadline)
            return LODE_ETIMEOUT;
        tl_sleep_ms(poll_ms);
    }
}

/* ---- logs ---- */

/* Start of the last `lines` lines of text. */
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

void tl_log_print_tail(const char *path, unsigned lines)
{
    size_t len = 0;
    char *text = tl_read_file(path, &len);
    if (!text) {
        tl_note("(no log)");
        return;
    }
    const char *p = tail_start(text, len, lines);
    while (*p) {
        const char *e = strchr(p, '\n');
        int n = e ? (int)(e - p) : (int)strlen(p);
        tl_note("  %.*s", n > 400 ? 400 : n, p);
        p += n + (e ? 1 : 0);
    }
    free(text);
}

void tl_err_add_log_tail(struct cmn_err *err, const char *path, unsigned lines)
{
    if (!err)
        return;
    size_t len = 0;
    char *text = tl_read_file(path, &len);
    if (!text)
        return;
    const char *p = tail_start(text, len, lines);
    char flat[300], old[CMN_ERR_MSG_MAX];
    size_t n = 0;
    for (; *p && n + 1 < sizeof(flat); p++)
        flat[n++] = *p == '\n' ? '|' : *p;
    flat[n] = '\0';
    free(text);
    snprintf(old, sizeof(old), "%s", err->msg);
    cmn_err_set(err, err->code, "%s; log %s ends: %s", old, path, flat);
}

const char *tl_log_crash_marker(const char *path)
{
    static const char *const markers[] = {
        "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
        "Assertion `", "Segmentation fault", "stack smashing detected",
    };
    size_t len = 0;
    const char *found = NULL;
    char *text = tl_read_file(path, &len);
    for (size_t m = 0; text && !found && m < sizeof(markers) / sizeof(markers[0]); m++)
        if (strstr(text, markers[m]))
            found = markers[m];
    free(text);
    return found;
}

/* ---- stopping what the test left running ---- */

struct tracked {
    void *obj;
    void (*stop)(void *obj);
};

/* Daemons not yet destroyed, in the order they were created. */
static struct tracked live[32];
static bool atexit_installed;

static void at_exit_stop(void)
{
    /* Newest first: nodes started against a meta cluster stop before it does. */
    for (size_t k = sizeof(live) / sizeof(live[0]); k-- > 0;) {
        if (live[k].obj) {
            struct tracked t = live[k];
            live[k].obj = NULL;
            t.stop(t.obj);
        }
    }
}

void tl_exit_track(void *obj, void (*stop)(void *obj))
{
    if (!atexit_installed) {
        atexit(at_exit_stop);
        atexit_installed = true;
    }
    size_t last = sizeof(live) / sizeof(live[0]);
    /* After the newest entry, so that the newest-first order holds. */
    while (last > 0 && !live[last - 1].obj)
        last--;
    if (last < sizeof(live) / sizeof(live[0]))
        live[last] = (struct tracked){obj, stop};
}

void tl_exit_untrack(void *obj)
{
    for (size_t k = 0; k < sizeof(live) / sizeof(live[0]); k++) {
        if (live[k].obj == obj) {
            live[k].obj = NULL;
            return;
        }
    }
}
