/* Logging with levels and context.
 *
 * One line per event on stderr (or a file): time, program, pid, level, context, message:
 *   2026-11-24T06:30:00.123Z lode-meta[812] WARN rpc 127.0.0.1:51514: bad frame magic
 * The context says which part of the program is speaking (a subsystem, a peer, a request)
 * so an operator can grep for it. Secrets must never be passed to these functions.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef LODE_COMMON_LOG_H
#define LODE_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum cmn_log_level {
    CMN_LOG_DEBUG = 0,
    CMN_LOG_INFO = 1,
    CMN_LOG_WARN = 2,
    CMN_LOG_ERROR = 3,
    CMN_LOG_OFF = 4,
};

/* Program name for the line prefix (copied), minimum level. Safe to call again. The
 * LODE_LOG_LEVEL environment variable, when set, overrides `level`. */
void cmn_log_init(const char *prog, enum cmn_log_level level);

/* Sends output to `path` (appending) instead of stderr; NULL goes back to stderr.
 * Returns 0 or -errno. */
int cmn_log_set_file(const char *path);

/* A daemon's logging from its configuration: cmn_log_init, then the log file if one is set.
 * Prints "PROG: log-file PATH: reason" on stderr and returns -errno when the file cannot be
 * opened; 0 otherwise. */
int cmn_log_setup(const char *prog, enum cmn_log_level level, const char *file);

void cmn_log_set_level(enum cmn_log_level level);
enum cmn_log_level cmn_log_get_level(void);
bool cmn_log_enabled(enum cmn_log_level level);

/* "debug", "info", "warn"/"warning", "error", "off" -> level. Returns 0 or -EINVAL. */
int cmn_log_parse_level(const char *s, enum cmn_log_level *out);
const char *cmn_log_level_name(enum cmn_log_level level);

void cmn_log_write(enum cmn_log_level level, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Rate limiting for messages a peer can trigger at will (bad frames, auth failures):
 * at most `burst` lines per `window_ms`; the first line after a suppressed stretch says how
 * many were dropped. Zero-initialise; one per call site, used from one thread. */
struct cmn_log_ratelimit {
    uint32_t window_ms;
    uint32_t burst;
    uint64_t window_start_ms;
    uint32_t count;
    uint32_t suppressed;
};
#define CMN_LOG_RATELIMIT_INIT(window_ms_, burst_) {.window_ms = (window_ms_), .burst = (burst_)}

/* Returns true when the caller may log now; *suppressed receives the number of lines
 * dropped since the last permitted one. */
bool cmn_log_ratelimit_ok(struct cmn_log_ratelimit *rl, uint32_t *suppressed);

#define LOG_DEBUG(ctx, ...) \
    do { if (cmn_log_enabled(CMN_LOG_DEBUG)) cmn_log_write(CMN_LOG_DEBUG, ctx, __VA_ARGS__); } while (0)
#define LOG_INFO(ctx, ...) cmn_log_write(CMN_LOG_INFO, ctx, __VA_ARGS__)
#define LOG_WARN(ctx, ...) cmn_log_write(CMN_LOG_WARN, ctx, __VA_ARGS__)
#define LOG_ERROR(ctx, ...) cmn_log_write(CMN_LOG_ERROR, ctx, __VA_ARGS__)

#endif
