/* What running a lode daemon under test takes, whichever daemon it is: finding its binary,
 * a fresh directory, a cluster secret, a child process whose output goes to a log file, and
 * reading that log back. tests/lib/proc.c (lode-meta replicas) and tests/lib/node_proc.c
 * (lode-node) are built on these.
 *
 * No tap.h here (it is one per program): diagnostics are TAP comment lines on stdout.
 * Single-threaded, like its users.
 */
#ifndef LODE_TESTS_LIB_DAEMON_H
#define LODE_TESTS_LIB_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Prints fmt as a TAP comment line ("# ...") on stdout and flushes it. */
void tl_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* asprintf that aborts the test when out of memory: the result is never NULL; caller frees. */
char *tl_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sleeps ms milliseconds, resuming after signals. */
void tl_sleep_ms(unsigned ms);

/* $TEST_TMPDIR or /tmp. */
const char *tl_tmpdir(void);

/* rm -rf of a directory tree (no symlink following). Returns 0 or -errno. */
int tl_rmtree(const char *path);

/* Creates (or truncates) path with mode and writes the NUL-terminated text. Returns 0 or
 * -errno. */
int tl_write_file(const char *path, const char *text, mode_t mode);

/* The whole file, NUL-terminated (malloc'd; caller frees), its length in *len; NULL when it
 * cannot be opened. A read error or running out of memory gives what was read so far. */
char *tl_read_file(const char *path, size_t *len);

/* "$LODE_BUILDDIR/<name>", or "./<name>" when LODE_BUILDDIR is unset, into *out (malloc'd;
 * caller frees). Fails, with *out untouched, when it is not an executable file. */
int tl_daemon_bin(const char *name, char **out, struct cmn_err *err);

/* A fresh directory "<tl_tmpdir()>/<prefix>.XXXXXX" into *out (malloc'd; caller frees and
 * removes it). *out is set only on success. */
int tl_make_tmpdir(const char *prefix, char **out, struct cmn_err *err);

/* A random cluster secret: 64 hex characters into text (NUL-terminated), their count into
 * *len, written (exactly those bytes, mode 0600) to "<dir>/cluster.secret", whose path goes
 * to *path (malloc'd; caller frees; set even when the write fails, so that one free path
 * serves both outcomes). The caller wipes text when done. */
int tl_secret_create(const char *dir, char text[65], size_t *len, char **path,
                     struct cmn_err *err);

/* Appends banner (unless NULL) to the log, then forks and runs argv[0] with argv (NULL-terminated):
 * stdin from /dev/null, stdout and stderr appended to log_path. The child gets
 * PR_SET_PDEATHSIG(SIGKILL), so it dies with the test however the test ends. *pid gets the
 * child's pid on success; 127 is its exit status when the log cannot be opened or the exec
 * fails (the reason is then in the log). Fails only when fork does. */
int tl_spawn(const char *const *argv, const char *log_path, const char *banner, pid_t *pid,
             struct cmn_err *err);

/* Polls (every poll_ms) until the child pid exits or timeout_ms pass. Returns 0 when it
 * exited (*status gets its waitpid status), -ECHILD when it is no child of ours (already
 * reaped), LODE_ETIMEOUT when it is still running. */
int tl_wait_exit(pid_t pid, uint32_t timeout_ms, unsigned poll_ms, int *status);

/* Prints the last `lines` lines of the file at path as TAP comments ("#   <line>", each cut
 * at 400 characters), or "# (no log)" when it cannot be read. */
void tl_log_print_tail(const char *path, unsigned lines);

/* Appends "; log <path> ends: <last lines, newlines shown as |>" to err's message (the code
 * stays). Nothing happens when err is NULL or the log cannot be read. */
void tl_err_add_log_tail(struct cmn_err *err, const char *path, unsigned lines);

/* The first sign of a crash in the log at path (a sanitizer report, an assertion, a
 * segfault, stack smashing), as a static string naming it; NULL when there is none or no
 * log. The markers are specific enough not to match ordinary log lines ("upload
 * aborted"). */
const char *tl_log_crash_marker(const char *path);

/* Registers obj so that, if the program exits before tl_exit_untrack(obj), stop(obj) runs
 * from an atexit handler (after tap_bail or an early return): newest first. At most 32
 * objects are tracked; more are silently not. */
void tl_exit_track(void *obj, void (*stop)(void *obj));
/* Forgets obj (no-op when it is not tracked). */
void tl_exit_untrack(void *obj);

#endif
