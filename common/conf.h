/* Configuration from one declarative table per daemon.
 *
 * Each daemon describes its settings once, as an array of struct cmn_conf_opt ending with
 * {0}; the same table drives the file parser, the defaults, `--check`, the commented sample
 * under etc/ and docs/config.md. Files are lines of `key = value`; `#` starts a comment;
 * blank lines are ignored; values may be "double-quoted". Keys are kebab-case. An unknown
 * key, a bad value, a repeated key, or a missing required key is an error that names the
 * file and line.
 */
#ifndef LODE_COMMON_CONF_H
#define LODE_COMMON_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

enum cmn_conf_type {
    CMN_CONF_STR = 1,       /* char * (malloc'd, freed by cmn_conf_free); NULL when unset */
    CMN_CONF_INT,           /* int64_t */
    CMN_CONF_BOOL,          /* bool: true/false/yes/no/on/off/1/0 */
    CMN_CONF_SIZE,          /* uint64_t bytes: "16MiB" */
    CMN_CONF_DURATION,      /* uint64_t milliseconds: "3s", "250ms" */
    CMN_CONF_ADDR,          /* char *, validated as host:port (IPv4 literal or name) */
    CMN_CONF_LOG_LEVEL,     /* int (enum cmn_log_level) */
};

enum cmn_conf_flags {
    CMN_CONF_REQUIRED = 1u << 0,   /* must be set in the file */
    CMN_CONF_SENSITIVE = 1u << 1,  /* value never printed (shown as "<hidden>") */
    CMN_CONF_RUNTIME = 1u << 2,    /* may change without a restart (documented as such) */
};

struct cmn_conf_opt {
    const char *name;       /* kebab-case key */
    enum cmn_conf_type type;
    size_t offset;          /* offsetof(struct your_config, field) */
    const char *def;        /* default as text (parsed like a file value); NULL = unset */
    const char *help;       /* one or two sentences for the sample and docs */
    unsigned flags;
    int64_t min, max;       /* for INT/SIZE/DURATION when max > min; else unchecked */
};

/* Applies every default. Returns 0 or LODE_ECONFIG (a default that does not parse is a
 * programming error, reported the same way). */
int cmn_conf_defaults(const struct cmn_conf_opt *table, void *cfg, struct cmn_err *err);

/* Parses `path` over cfg (call cmn_conf_defaults first). Returns 0, -errno if the file
 * cannot be read, or LODE_ECONFIG with "path:line: reason" in err. */
int cmn_conf_load_file(const struct cmn_conf_opt *table, void *cfg, const char *path,
                       struct cmn_err *err);

/* Sets one key from text (command-line overrides use this). */
int cmn_conf_set(const struct cmn_conf_opt *table, void *cfg, const char *key,
                 const char *value, struct cmn_err *err);

/* Checks REQUIRED keys were given (tracks keys set through load_file / set). */
int cmn_conf_check_required(const struct cmn_conf_opt *table, const void *cfg,
                            struct cmn_err *err);

/* Frees strings held in cfg. */
void cmn_conf_free(const struct cmn_conf_opt *table, void *cfg);

/* Writes a commented sample (every key, its help, its default) for `prog`. */
void cmn_conf_write_sample(const struct cmn_conf_opt *table, const char *prog, FILE *out);
/* Writes a markdown table of the keys for docs/config.md. */
void cmn_conf_write_markdown(const struct cmn_conf_opt *table, const char *prog, FILE *out);
/* Writes the effective configuration, sensitive values hidden. */
void cmn_conf_dump(const struct cmn_conf_opt *table, const void *cfg, FILE *out);

/* The common daemon command line:
 *   PROG -c FILE [--set key=value]... [--check] [--print-sample] [--print-markdown] [-h]
 * Loads defaults, the file, then overrides, then checks required keys. Sets *exit_code and
 * returns 1 when the program should exit now (help, sample, check or an error, with the
 * message already printed on stderr); returns 0 to go on. `cfg` must be zeroed. */
int cmn_conf_cli(const struct cmn_conf_opt *table, void *cfg, const char *prog, int argc,
                 char **argv, int *exit_code);

/* cmn_conf_cli for a daemon with checks of its own: `finish` (may be NULL) runs once the file
 * and overrides are in, also for --check, so that --check reports everything the daemon would
 * refuse at start. On a refusal it prints "PROG: message", calls release(cfg) and asks for exit
 * 1; --check that passes prints "PROG: configuration OK", calls release(cfg) and asks for
 * exit 0. Returns 1 (exit with *exit_code) or 0 (go on; cfg is complete). */
int cmn_conf_cli_finish(const struct cmn_conf_opt *table, void *cfg, const char *prog, int argc,
                        char **argv, int (*finish)(void *cfg, struct cmn_err *err),
                        void (*release)(void *cfg), int *exit_code);

/* Splits "host:port" into host (copied into host_out) and port. Returns 0 or -EINVAL. */
int cmn_addr_split(const char *addr, char *host_out, size_t host_size, uint16_t *port);

/* Splits a comma-separated list written by hand (entries trimmed of blanks) into a malloc'd
 * array of malloc'd strings (*out; free with cmn_conf_list_free). Empty entries, more than
 * `max` entries and duplicates (compared ignoring case when fold_case: host names) are
 * refused: LODE_ECONFIG naming `key` and the entry; -ENOMEM. On failure *out is NULL. */
int cmn_conf_split_list(const char *key, const char *s, size_t max, bool fold_case,
                        char ***out, size_t *n, struct cmn_err *err);
void cmn_conf_list_free(char **v, size_t n);

/* A list of 1..max distinct host:port addresses, each with a port and shorter than
 * CMN_CONF_ADDR_MAX (the `meta` key of every daemon). Returns 0 or LODE_ECONFIG naming `key`
 * and the entry. */
#define CMN_CONF_ADDR_MAX 256
int cmn_conf_check_addr_list(const char *key, const char *s, size_t max, struct cmn_err *err);

/* The cluster secret every daemon takes from its `cluster-secret` / `cluster-secret-file`
 * keys (pass the two values; NULL = unset). Exactly one must be set; the file is read whole
 * (at most 4096 bytes; one trailing "\n" or "\r\n" is dropped); the secret must have at
 * least min_len bytes. On success *out is a malloc'd copy (NUL-terminated, *len bytes without
 * the NUL) that the caller wipes (explicit_bzero) and frees; on failure *out is NULL and the
 * code is LODE_ECONFIG or -errno reading the file, with a message naming the key and never
 * the secret. */
int cmn_conf_load_secret(const char *inline_secret, const char *file, size_t min_len,
                         uint8_t **out, size_t *len, struct cmn_err *err);

/* Start-up warnings (logged under `ctx`) about how a daemon's secret is kept: a secret file
 * readable by group or others, or a secret written inline in the configuration. */
void cmn_conf_warn_secret(const char *ctx, const char *inline_secret, const char *file);

#endif
