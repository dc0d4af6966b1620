#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"

/* A line longer than this is cut: a log line is for a human, and one bounded write keeps
 * concurrent lines from interleaving. */
#define LOG_LINE_MAX 4096
#define LOG_PROG_MAX 64

static atomic_int log_level = CMN_LOG_INFO;
static char log_prog[LOG_PROG_MAX] = "lode";
/* Guards log_fd so cmn_log_set_file cannot close a descriptor a writer is using. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1; /* -1 = stderr */

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const level_tags[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

void cmn_log_init(const char *prog, enum cmn_log_level level)
{
    pthread_mutex_lock(&log_lock);
    if (prog && *prog) {
        const char *slash = strrchr(prog, '/');
        snprintf(log_prog, sizeof(log_prog), "%s", slash ? slash + 1 : prog);
    }
    pthread_mutex_unlock(&log_lock);
    enum cmn_log_level env_level;
    const char *env = getenv("LODE_LOG_LEVEL");
    if (env && cmn_log_parse_level(env, &env_level) == 0)
        level = env_level;
    cmn_log_set_level(level);
}

int cmn_log_set_file(const char *path)
{
    int fd = -1;
    if (path) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return -errno;
    }
    pthread_mutex_lock(&log_lock);
    int old = log_fd;
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
    if (old >= 0)
        close(old);
    return 0;
}

void cmn_log_set_level(enum cmn_log_level level)
{
    if ((int)level < CMN_LOG_DEBUG)
        level = CMN_LOG_DEBUG;
    if (level > CMN_LOG_OFF)
        level = CMN_LOG_OFF;
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum cmn_log_level cmn_log_get_level(void)
{
    return (enum cmn_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

bool cmn_log_enabled(enum cmn_log_level level)
{
    return level < CMN_LOG_OFF &&
           (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int cmn_log_parse_level(const char *s, enum cmn_log_level *out)
{
    if (!s)
        return -EINVAL;
    for (int i = CMN_LOG_DEBUG; i <= CMN_LOG_OFF; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum cmn_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = CMN_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

const char *cmn_log_level_name(enum cmn_log_level level)
{
    if ((int)level < CMN_LOG_DEBUG || level > CMN_LOG_OFF)
        return "?";
    return level_names[level];
}

/* Control characters in a message (a peer-supplied key, a bad header) could forge extra
 * lines or escape sequences on a terminal; they become '?'. */
static void sanitize(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            s[i] = '?';
    }
}

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a logging failure */
        }
        p += n;
        len -= (size_t)n;
    }
}

void cmn_log_write(enum cmn_log_level level, const char *ctx, const char *fmt, ...)
{
    if (!cmn_log_enabled(level))
        return;
    int saved_errno = errno; /* callers often log before returning -errno */
    char line[LOG_LINE_MAX];
    char ts[32];
    cmn_time_format_iso(cmn_now_ms(), ts, sizeof(ts));

    pthread_mutex_lock(&log_lock);
    int n = snprintf(line, sizeof(line), "%s %s[%d] %s ", ts, log_prog, (int)getpid(),
                     level_tags[level]);
    pthread_mutex_unlock(&log_lock);
    size_t off = n > 0 ? (size_t)n : 0;
    if (ctx && *ctx && off < sizeof(line)) {
        n = snprintf(line + off, sizeof(line) - off, "%s: ", ctx);
        if (n > 0)
            off += (size_t)n;
    }
    if (off < sizeof(line)) {
        size_t msg_start = off;
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
        va_end(ap);
        if (n > 0)
            off += (size_t)n;
        if (off > sizeof(line) - 2)
            off = sizeof(line) - 2; /* truncated: keep room for the newline */
        sanitize(line + msg_start, off - msg_start);
    } else {
        off = sizeof(line) - 2;
    }
    /* The context is caller-controlled too (a peer address is fine, but be safe). */
    sanitize(line, off);
    line[off++] = '\n';

    pthread_mutex_lock(&log_lock);
    write_all(log_fd >= 0 ? log_fd : STDERR_FILENO, line, off);
    pthread_mutex_unlock(&log_lock);
    errno = saved_errno;
}

bool cmn_log_ratelimit_ok(struct cmn_log_ratelimit *rl, uint32_t *suppressed)
{
    uint64_t now = cmn_mono_ms();
    if (now < rl->window_start_ms || now - rl->window_start_ms >= rl->window_ms) {
        rl->window_start_ms = now;
        rl->count = 0;
    }
    if (rl->count < rl->burst) {
        rl->count++;
        if (suppressed)
            *suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
    }
    if (rl->suppressed < UINT32_MAX)
        rl->suppressed++;
    if (suppressed)
        *suppressed = 0;
    return false;
}

int cmn_log_setup(const char *prog, enum cmn_log_level level, const char *file)
{
    cmn_log_init(prog, level);
    if (!file)
        return 0;
    int rc = cmn_log_set_file(file);
    if (rc)
        fprintf(stderr, "%s: log-file %s: %s\n", prog, file, strerror(-rc));
    return rc;
}
