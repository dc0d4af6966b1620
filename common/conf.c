#include "common/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#define HOST_MAX 256
#define WRAP_COLS 78

/* Which keys were set explicitly (file or override), per configuration struct. Kept here,
 * keyed by the cfg pointer, so daemon config structs stay plain data. Entries are created by
 * cmn_conf_defaults / cmn_conf_set and dropped by cmn_conf_free. */
struct track {
    const void *cfg;
    size_t n;
    uint8_t *bits;
    struct track *next;
};

static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static struct track *tracks;

static size_t table_len(const struct cmn_conf_opt *table)
{
    size_t n = 0;
    while (table[n].name)
        n++;
    return n;
}

/* Returns the entry for cfg, creating (or resizing) it when `create`; NULL on failure or
 * when absent. Caller holds track_lock. */
static struct track *track_find(const struct cmn_conf_opt *table, const void *cfg, bool create)
{
    for (struct track *t = tracks; t; t = t->next)
        if (t->cfg == cfg)
            return t;
    if (!create)
        return NULL;
    struct track *t = calloc(1, sizeof(*t));
    size_t n = table_len(table);
    uint8_t *bits = calloc(n / 8 + 1, 1);
    if (!t || !bits) {
        free(t);
        free(bits);
        return NULL;
    }
    t->cfg = cfg;
    t->n = n;
    t->bits = bits;
    t->next = tracks;
    tracks = t;
    return t;
}

static void track_reset(const struct cmn_conf_opt *table, const void *cfg)
{
    pthread_mutex_lock(&track_lock);
    struct track *t = track_find(table, cfg, true);
    if (t)
        memset(t->bits, 0, t->n / 8 + 1);
    pthread_mutex_unlock(&track_lock);
}

static int track_mark(const struct cmn_conf_opt *table, const void *cfg, size_t idx)
{
    int rc = -ENOMEM;
    pthread_mutex_lock(&track_lock);
    struct track *t = track_find(table, cfg, true);
    if (t && idx < t->n) {
        t->bits[idx / 8] |= (uint8_t)(1u << (idx % 8));
        rc = 0;
    }
    pthread_mutex_unlock(&track_lock);
    return rc;
}

static bool track_is_set(const struct cmn_conf_opt *table, const void *cfg, size_t idx)
{
    bool set = false;
    pthread_mutex_lock(&track_lock);
    struct track *t = track_find(table, cfg, false);
    if (t && idx < t->n)
        set = t->bits[idx / 8] & (1u << (idx % 8));
    pthread_mutex_unlock(&track_lock);
    return set;
}

static void track_drop(const void *cfg)
{
    pthread_mutex_lock(&track_lock);
    for (struct track **pp = &tracks; *pp; pp = &(*pp)->next) {
        if ((*pp)->cfg == cfg) {
            struct track *t = *pp;
            *pp = t->next;
            free(t->bits);
            free(t);
            break;
        }
    }
    pthread_mutex_unlock(&track_lock);
}

/* ---- values ---- */

static void *field(void *cfg, const struct cmn_conf_opt *o)
{
    return (char *)cfg + o->offset;
}

static const void *cfield(const void *cfg, const struct cmn_conf_opt *o)
{
    return (const char *)cfg + o->offset;
}

static bool is_str_type(enum cmn_conf_type t)
{
    return t == CMN_CONF_STR || t == CMN_CONF_ADDR;
}

static const char *type_name(enum cmn_conf_type t)
{
    switch (t) {
    case CMN_CONF_STR: return "string";
    case CMN_CONF_INT: return "integer";
    case CMN_CONF_BOOL: return "boolean";
    case CMN_CONF_SIZE: return "size";
    case CMN_CONF_DURATION: return "duration";
    case CMN_CONF_ADDR: return "host:port";
    case CMN_CONF_LOG_LEVEL: return "log level";
    }
    return "?";
}

static const char *expect_text(enum cmn_conf_type t)
{
    switch (t) {
    case CMN_CONF_INT: return "an integer";
    case CMN_CONF_BOOL: return "true/false, yes/no, on/off or 1/0";
    case CMN_CONF_SIZE: return "a size such as 4096, 64KiB, 16MiB or 4GiB";
    case CMN_CONF_DURATION: return "a duration such as 250ms, 3s, 2m or 1h";
    case CMN_CONF_ADDR: return "host:port with an IPv4 address or a host name";
    case CMN_CONF_LOG_LEVEL: return "debug, info, warn, error or off";
    default: return "a string";
    }
}

static int parse_int(const char *s, int64_t *out)
{
    if (!*s || isspace((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static bool valid_hostname(const char *h)
{
    size_t len = strlen(h);
    if (len == 0 || len > 253)
        return false;
    const char *label = h;
    for (const char *p = h;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t l = (size_t)(p - label);
            if (l == 0 || l > 63 || label[0] == '-' || p[-1] == '-')
                return false;
            if (*p == '\0')
                break;
            label = p + 1;
        } else if (!isalnum((unsigned char)*p) && *p != '-') {
            return false;
        }
    }
    return true;
}

int cmn_addr_split(const char *addr, char *host_out, size_t host_size, uint16_t *port)
{
    if (!addr)
        return -EINVAL;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr)
        return -EINVAL;
    size_t hlen = (size_t)(colon - addr);
    char host[HOST_MAX];
    if (hlen >= sizeof(host) || hlen >= host_size)
        return -EINVAL;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    const char *ps = colon + 1;
    if (!*ps || strlen(ps) > 5)
        return -EINVAL;
    unsigned long p = 0;
    for (const char *c = ps; *c; c++) {
        if (!isdigit((unsigned char)*c))
            return -EINVAL;
        p = p * 10 + (unsigned long)(*c - '0');
    }
    if (p > 65535)
        return -EINVAL;
    /* A host made only of digits and dots must be a real IPv4 literal: "300.1.1.1" or
     * "10.1" are typos, not names. */
    bool numeric = strspn(host, "0123456789.") == hlen;
    if (numeric) {
        struct in_addr a;
        if (inet_pton(AF_INET, host, &a) != 1)
            return -EINVAL;
    } else if (!valid_hostname(host)) {
        return -EINVAL;
    }
    memcpy(host_out, host, hlen + 1);
    *port = (uint16_t)p;
    return 0;
}

/* Formats a SIZE or DURATION value with the largest unit that divides it exactly, so the
 * text parses back to the same number. */
static void format_scaled(enum cmn_conf_type t, uint64_t v, char *out, size_t size)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } sizes[] = {{"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}},
      durs[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    const char *last = t == CMN_CONF_SIZE ? "" : "ms";
    for (size_t i = 0; i < 4 && v; i++) {
        uint64_t m = t == CMN_CONF_SIZE ? sizes[i].mult : durs[i].mult;
        if (v % m == 0) {
            snprintf(out, size, "%" PRIu64 "%s", v / m,
                     t == CMN_CONF_SIZE ? sizes[i].unit : durs[i].unit);
            return;
        }
    }
    snprintf(out, size, "%" PRIu64 "%s", v, last);
}

static void format_bound(enum cmn_conf_type t, int64_t v, char *out, size_t size)
{
    if ((t == CMN_CONF_SIZE || t == CMN_CONF_DURATION) && v >= 0)
        format_scaled(t, (uint64_t)v, out, size);
    else
        snprintf(out, size, "%" PRId64, v);
}

static bool has_range(const struct cmn_conf_opt *o)
{
    return o->max > o->min &&
           (o->type == CMN_CONF_INT || o->type == CMN_CONF_SIZE || o->type == CMN_CONF_DURATION);
}

static int range_error(const struct cmn_conf_opt *o, struct cmn_err *err)
{
    char lo[32], hi[32];
    format_bound(o->type, o->min, lo, sizeof(lo));
    format_bound(o->type, o->max, hi, sizeof(hi));
    return cmn_err_set(err, LODE_ECONFIG, "'%s' must be between %s and %s", o->name, lo, hi);
}

/* Parses `value` for option o and stores it. Never echoes a sensitive value. */
static int store_value(const struct cmn_conf_opt *o, void *cfg, const char *value,
                       struct cmn_err *err)
{
    int rc = 0;
    union {
        int64_t i;
        uint64_t u;
        bool b;
        enum cmn_log_level l;
    } v;
    switch (o->type) {
    case CMN_CONF_STR:
    case CMN_CONF_ADDR: {
        if (o->type == CMN_CONF_ADDR) {
            char host[HOST_MAX];
            uint16_t port;
            rc = cmn_addr_split(value, host, sizeof(host), &port);
            if (rc)
                break;
        }
        char *copy = strdup(value);
        if (!copy)
            return cmn_err_set(err, -ENOMEM, "'%s': out of memory", o->name);
        char **slot = field(cfg, o);
        free(*slot);
        *slot = copy;
        return 0;
    }
    case CMN_CONF_INT:
        rc = parse_int(value, &v.i);
        if (rc == 0 && has_range(o) && (v.i < o->min || v.i > o->max))
            return range_error(o, err);
        if (rc == 0)
            *(int64_t *)field(cfg, o) = v.i;
        break;
    case CMN_CONF_BOOL:
        rc = parse_bool(value, &v.b);
        if (rc == 0)
            *(bool *)field(cfg, o) = v.b;
        break;
    case CMN_CONF_SIZE:
    case CMN_CONF_DURATION:
        rc = o->type == CMN_CONF_SIZE ? cmn_parse_size(value, &v.u)
                                      : cmn_parse_duration_ms(value, &v.u);
        if (rc == 0 && has_range(o) &&
            ((o->min > 0 && v.u < (uint64_t)o->min) || o->max < 0 || v.u > (uint64_t)o->max))
            return range_error(o, err);
        if (rc == 0)
            *(uint64_t *)field(cfg, o) = v.u;
        break;
    case CMN_CONF_LOG_LEVEL:
        rc = cmn_log_parse_level(value, &v.l);
        if (rc == 0)
            *(int *)field(cfg, o) = (int)v.l;
        break;
    default:
        return cmn_err_set(err, LODE_ECONFIG, "'%s': unsupported option type %d", o->name,
                           (int)o->type);
    }
    if (rc) {
        if (o->flags & CMN_CONF_SENSITIVE)
            return cmn_err_set(err, LODE_ECONFIG, "invalid value for '%s': expected %s",
                               o->name, expect_text(o->type));
        return cmn_err_set(err, LODE_ECONFIG, "invalid value \"%s\" for '%s': expected %s",
                           value, o->name, expect_text(o->type));
    }
    return 0;
}

static const struct cmn_conf_opt *find_opt(const struct cmn_conf_opt *table, const char *key,
                                           size_t *idx)
{
    for (size_t i = 0; table[i].name; i++) {
        if (strcmp(table[i].name, key) == 0) {
            *idx = i;
            return &table[i];
        }
    }
    return NULL;
}

int cmn_conf_defaults(const struct cmn_conf_opt *table, void *cfg, struct cmn_err *err)
{
    cmn_err_clear(err);
    track_reset(table, cfg);
    for (const struct cmn_conf_opt *o = table; o->name; o++) {
        if (!o->def) {
            if (is_str_type(o->type)) {
                char **slot = field(cfg, o);
                free(*slot);
                *slot = NULL;
            }
            continue;
        }
        int rc = store_value(o, cfg, o->def, err);
        if (rc) {
            cmn_err_wrap(err, "default of '%s'", o->name);
            return rc == -ENOMEM ? rc : LODE_ECONFIG;
        }
    }
    return 0;
}

int cmn_conf_set(const struct cmn_conf_opt *table, void *cfg, const char *key,
                 const char *value, struct cmn_err *err)
{
    size_t idx;
    const struct cmn_conf_opt *o = key ? find_opt(table, key, &idx) : NULL;
    if (!o)
        return cmn_err_set(err, LODE_ECONFIG, "unknown key '%s'", key ? key : "");
    if (!value)
        return cmn_err_set(err, LODE_ECONFIG, "no value for '%s'", key);
    int rc = store_value(o, cfg, value, err);
    if (rc)
        return rc;
    if (track_mark(table, cfg, idx))
        return cmn_err_set(err, -ENOMEM, "'%s': out of memory", key);
    return 0;
}

int cmn_conf_check_required(const struct cmn_conf_opt *table, const void *cfg,
                            struct cmn_err *err)
{
    for (size_t i = 0; table[i].name; i++) {
        if ((table[i].flags & CMN_CONF_REQUIRED) && !track_is_set(table, cfg, i))
            return cmn_err_set(err, LODE_ECONFIG, "missing required key '%s'", table[i].name);
    }
    return 0;
}

void cmn_conf_free(const struct cmn_conf_opt *table, void *cfg)
{
    for (const struct cmn_conf_opt *o = table; o->name; o++) {
        if (is_str_type(o->type)) {
            char **slot = field(cfg, o);
            free(*slot);
            *slot = NULL;
        }
    }
    track_drop(cfg);
}

/* ---- file parser ---- */

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           (c >= 'A' && c <= 'Z');
}

/* Splits one line into key and value in place. Returns 0 (key NULL for a blank or comment
 * line) or -EINVAL with *why set. */
static int parse_line(char *line, char **key, char **value, const char **why)
{
    char *p = line;
    *key = *value = NULL;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    char *k = p;
    while (is_key_char(*p))
        p++;
    if (p == k) {
        *why = "expected 'key = value'";
        return -EINVAL;
    }
    char *kend = p;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '=') {
        *why = "expected 'key = value'";
        return -EINVAL;
    }
    *kend = '\0';
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    char *v = p;
    if (*p == '"') {
        /* Quoted: \" and \\ are the only escapes; anything but a comment after the closing
         * quote is an error rather than silently dropped. */
        char *out = v;
        p++;
        for (;;) {
            if (*p == '\0') {
                *why = "unterminated quoted value";
                return -EINVAL;
            }
            if (*p == '"')
                break;
            if (*p == '\\') {
                if (p[1] != '"' && p[1] != '\\') {
                    *why = "bad escape in quoted value (only \\\" and \\\\)";
                    return -EINVAL;
                }
                p++;
            }
            *out++ = *p++;
        }
        *out = '\0';
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != '#') {
            *why = "unexpected text after the closing quote";
            return -EINVAL;
        }
    } else {
        char *hash = strchr(v, '#');
        if (hash)
            *hash = '\0';
        size_t len = strlen(v);
        while (len > 0 && isspace((unsigned char)v[len - 1]))
            v[--len] = '\0';
    }
    *key = k;
    *value = v;
    return 0;
}

int cmn_conf_load_file(const struct cmn_conf_opt *table, void *cfg, const char *path,
                       struct cmn_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int rc = -errno;
        return cmn_err_set(err, rc, "%s: %s", path, lode_strerror(rc));
    }
    size_t n = table_len(table);
    /* Line where each key was first seen in this file; a key given twice is almost always
     * a merge mistake, so it is refused rather than last-one-wins. */
    unsigned *seen = calloc(n + 1, sizeof(*seen));
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    if (!seen) {
        rc = cmn_err_set(err, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        errno = 0;
        ssize_t len = getline(&line, &cap, f);
        if (len < 0) {
            if (ferror(f)) {
                rc = errno ? -errno : -EIO;
                cmn_err_set(err, rc, "%s: read: %s", path, lode_strerror(rc));
            }
            break;
        }
        lineno++;
        if ((size_t)len != strlen(line)) {
            rc = cmn_err_set(err, LODE_ECONFIG, "%s:%u: NUL byte in line", path, lineno);
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *key, *value;
        const char *why = NULL;
        if (parse_line(line, &key, &value, &why)) {
            rc = cmn_err_set(err, LODE_ECONFIG, "%s:%u: %s", path, lineno, why);
            break;
        }
        if (!key)
            continue;
        size_t idx;
        if (!find_opt(table, key, &idx)) {
            rc = cmn_err_set(err, LODE_ECONFIG, "%s:%u: unknown key '%s'", path, lineno, key);
            break;
        }
        if (seen[idx]) {
            rc = cmn_err_set(err, LODE_ECONFIG, "%s:%u: '%s' repeated (first set on line %u)",
                             path, lineno, key, seen[idx]);
            break;
        }
        seen[idx] = lineno;
        rc = cmn_conf_set(table, cfg, key, value, err);
        if (rc) {
            cmn_err_wrap(err, "%s:%u", path, lineno);
            break;
        }
    }
out:
    free(seen);
    free(line);
    fclose(f);
    return rc;
}

/* ---- writers ---- */

static bool needs_quotes(const char *s)
{
    if (!*s || isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1]))
        return true;
    return strpbrk(s, "#\"\\") != NULL;
}

static void write_value(FILE *out, const char *s)
{
    if (!needs_quotes(s)) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Writes `text` as comment lines wrapped at WRAP_COLS. */
static void write_wrapped(FILE *out, const char *text)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t room = WRAP_COLS - 2, len = strlen(p);
        size_t take = len;
        if (len > room) {
            take = room;
            while (take > 0 && p[take] != ' ')
                take--;
            if (take == 0)
                take = strcspn(p, " ");
        }
        fprintf(out, "# %.*s\n", (int)take, p);
        p += take;
    }
}

static void range_text(const struct cmn_conf_opt *o, char *out, size_t size)
{
    char lo[32], hi[32];
    format_bound(o->type, o->min, lo, sizeof(lo));
    format_bound(o->type, o->max, hi, sizeof(hi));
    snprintf(out, size, "%s..%s", lo, hi);
}

void cmn_conf_write_sample(const struct cmn_conf_opt *table, const char *prog, FILE *out)
{
    fprintf(out, "# %s configuration.\n", prog);
    fprintf(out, "#\n# Every key is listed with its help and its default. Lines are `key = value`;\n"
                 "# `#` starts a comment; values may be \"double-quoted\". Check a file with\n"
                 "# `%s -c FILE --check`.\n",
            prog);
    for (const struct cmn_conf_opt *o = table; o->name; o++) {
        fputc('\n', out);
        if (o->help)
            write_wrapped(out, o->help);
        fprintf(out, "# Type: %s", type_name(o->type));
        if (has_range(o)) {
            char r[80];
            range_text(o, r, sizeof(r));
            fprintf(out, ", range %s", r);
        }
        fputs(".", out);
        if (o->flags & CMN_CONF_REQUIRED)
            fputs(" Required.", out);
        if (o->flags & CMN_CONF_RUNTIME)
            fputs(" Can change without a restart.", out);
        if (o->flags & CMN_CONF_SENSITIVE)
            fputs(" Secret: keep this file private.", out);
        fputc('\n', out);
        if (o->def) {
            fprintf(out, "#%s = ", o->name);
            write_value(out, o->def);
            fputc('\n', out);
        } else {
            fprintf(out, "#%s =\n", o->name);
        }
    }
}

/* Markdown table cells cannot contain '|' or newlines. */
static void write_md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

void cmn_conf_write_markdown(const struct cmn_conf_opt *table, const char *prog, FILE *out)
{
    fprintf(out, "## %s\n\n", prog);
    fputs("| Key | Type | Default | Description |\n|---|---|---|---|\n", out);
    for (const struct cmn_conf_opt *o = table; o->name; o++) {
        fprintf(out, "| `%s` | %s", o->name, type_name(o->type));
        if (has_range(o)) {
            char r[80];
            range_text(o, r, sizeof(r));
            fprintf(out, " (%s)", r);
        }
        fputs(" | ", out);
        if (o->def) {
            fputc('`', out);
            write_md_cell(out, o->def);
            fputc('`', out);
        } else {
            fputs("(none)", out);
        }
        fputs(" | ", out);
        if (o->help)
            write_md_cell(out, o->help);
        if (o->flags & CMN_CONF_REQUIRED)
            fputs(" **Required.**", out);
        if (o->flags & CMN_CONF_RUNTIME)
            fputs(" Can change without a restart.", out);
        if (o->flags & CMN_CONF_SENSITIVE)
            fputs(" Secret; never logged.", out);
        fputs(" |\n", out);
    }
}

void cmn_conf_dump(const struct cmn_conf_opt *table, const void *cfg, FILE *out)
{
    for (const struct cmn_conf_opt *o = table; o->name; o++) {
        const void *f = cfield(cfg, o);
        char buf[64];
        if (is_str_type(o->type)) {
            const char *s = *(char *const *)f;
            if (!s) {
                fprintf(out, "# %s is not set\n", o->name);
                continue;
            }
            fprintf(out, "%s = ", o->name);
            if (o->flags & CMN_CONF_SENSITIVE)
                fputs("<hidden>", out);
            else
                write_value(out, s);
            fputc('\n', out);
            continue;
        }
        if (o->flags & CMN_CONF_SENSITIVE) {
            fprintf(out, "%s = <hidden>\n", o->name);
            continue;
        }
        switch (o->type) {
        case CMN_CONF_INT:
            snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)f);
            break;
        case CMN_CONF_BOOL:
            snprintf(buf, sizeof(buf), "%s", *(const bool *)f ? "true" : "false");
            break;
        case CMN_CONF_SIZE:
        case CMN_CONF_DURATION:
            format_scaled(o->type, *(const uint64_t *)f, buf, sizeof(buf));
            break;
        case CMN_CONF_LOG_LEVEL:
            snprintf(buf, sizeof(buf), "%s",
                     cmn_log_level_name((enum cmn_log_level) * (const int *)f));
            break;
        default:
            snprintf(buf, sizeof(buf), "?");
        }
        fprintf(out, "%s = %s\n", o->name, buf);
    }
}

/* ---- command line ---- */

static void usage(const char *prog, FILE *out)
{
    fprintf(out,
            "Usage: %s -c FILE [--set key=value]... [--check]\n"
            "       %s --print-sample | --print-markdown | --help\n"
            "\n"
            "  -c, --config FILE   configuration file\n"
            "  --set key=value     override one key after the file (repeatable)\n"
            "  --check             validate the configuration and exit (0 = valid)\n"
            "  --print-sample      print a commented sample configuration\n"
            "  --print-markdown    print the configuration reference as markdown\n"
            "  -h, --help          show this help\n",
            prog, prog);
}

/* The value of an option given as "--opt VALUE" or "--opt=VALUE"; NULL when missing. */
static const char *opt_arg(int argc, char **argv, int *i, const char *arg, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) == 0 && arg[n] == '=')
        return arg + n + 1;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static bool opt_is(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int cmn_conf_cli(const struct cmn_conf_opt *table, void *cfg, const char *prog, int argc,
                 char **argv, int *exit_code)
{
    const char *file = NULL;
    bool check = false;
    struct cmn_err err;
    cmn_err_clear(&err);

    /* First pass: options that exit without touching the configuration, and syntax. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(prog, stdout);
            *exit_code = 0;
            return 1;
        } else if (strcmp(a, "--print-sample") == 0) {
            cmn_conf_write_sample(table, prog, stdout);
            *exit_code = 0;
            return 1;
        } else if (strcmp(a, "--print-markdown") == 0) {
            cmn_conf_write_markdown(table, prog, stdout);
            *exit_code = 0;
            return 1;
        } else if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strcmp(a, "-c") == 0 || opt_is(a, "--config")) {
            file = opt_arg(argc, argv, &i, a, "--config");
            if (!file) {
                fprintf(stderr, "%s: %s needs a file name\n", prog, a);
                goto usage_error;
            }
        } else if (opt_is(a, "--set")) {
            const char *kv = opt_arg(argc, argv, &i, a, "--set");
            if (!kv || !strchr(kv, '=')) {
                fprintf(stderr, "%s: --set needs key=value\n", prog);
                goto usage_error;
            }
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n", prog, a);
            goto usage_error;
        }
    }

    int rc = cmn_conf_defaults(table, cfg, &err);
    if (rc == 0 && file)
        rc = cmn_conf_load_file(table, cfg, file, &err);
    for (int i = 1; rc == 0 && i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            i++;
        } else if (opt_is(a, "--set")) {
            const char *kv = opt_arg(argc, argv, &i, a, "--set");
            const char *eq = strchr(kv, '=');
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
            rc = cmn_conf_set(table, cfg, key, eq + 1, &err);
            if (rc)
                cmn_err_wrap(&err, "--set");
        }
    }
    if (rc == 0) {
        rc = cmn_conf_check_required(table, cfg, &err);
        if (rc && file)
            cmn_err_wrap(&err, "%s", file);
    }
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, cmn_err_text(&err));
        cmn_conf_free(table, cfg);
        *exit_code = 1;
        return 1;
    }
    if (check) {
        printf("%s: configuration OK\n", prog);
        fflush(stdout);
        cmn_conf_free(table, cfg);
        *exit_code = 0;
        return 1;
    }
    *exit_code = 0;
    return 0;

usage_error:
    usage(prog, stderr);
    *exit_code = 2;
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * The cluster secret (shared by every daemon)
 * ------------------------------------------------------------------------------------- */

#define SECRET_FILE_MAX 4096

static int load_secret_file(const char *path, uint8_t **out, size_t *len, struct cmn_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cmn_err_set(err, -errno, "cluster-secret-file %s: %s", path, strerror(errno));
    /* One spare byte tells a file of exactly the limit from a longer one, and leaves room
     * for the terminating NUL. */
    uint8_t *buf = malloc(SECRET_FILE_MAX + 2);
    if (!buf) {
        close(fd);
        return cmn_err_set(err, -ENOMEM, "out of memory");
    }
    size_t have = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = read(fd, buf + have, SECRET_FILE_MAX + 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            rc = cmn_err_set(err, -e, "cluster-secret-file %s: %s", path, strerror(e));
            break;
        }
        if (r == 0)
            break;
        have += (size_t)r;
        if (have > SECRET_FILE_MAX) {
            rc = cmn_err_set(err, LODE_ECONFIG, "cluster-secret-file %s: larger than %d bytes",
                             path, SECRET_FILE_MAX);
            break;
        }
    }
    close(fd);
    if (rc) {
        explicit_bzero(buf, SECRET_FILE_MAX + 2);
        free(buf);
        return rc;
    }
    if (have && buf[have - 1] == '\n')
        have--;
    if (have && buf[have - 1] == '\r')
        have--;
    buf[have] = '\0';
    *out = buf;
    *len = have;
    return 0;
}

int cmn_conf_load_secret(const char *inline_secret, const char *file, size_t min_len,
                         uint8_t **out, size_t *len, struct cmn_err *err)
{
    *out = NULL;
    *len = 0;
    bool have_inline = inline_secret != NULL;
    bool have_file = file != NULL;
    if (have_inline == have_file)
        return cmn_err_set(err, LODE_ECONFIG,
                           have_inline ? "set only one of cluster-secret and cluster-secret-file"
                                       : "set cluster-secret-file (or cluster-secret)");
    uint8_t *s = NULL;
    size_t n = 0;
    if (have_inline) {
        n = strlen(inline_secret);
        s = malloc(n + 1);
        if (!s)
            return cmn_err_set(err, -ENOMEM, "out of memory");
        memcpy(s, inline_secret, n + 1);
    } else {
        int rc = load_secret_file(file, &s, &n, err);
        if (rc)
            return rc;
    }
    if (n < min_len) {
        explicit_bzero(s, n);
        free(s);
        return cmn_err_set(err, LODE_ECONFIG,
                           "the cluster secret is %zu bytes; it must be at least %zu (e.g. "
                           "`openssl rand -hex 32`)",
                           n, min_len);
    }
    *out = s;
    *len = n;
    return 0;
}

int cmn_conf_cli_finish(const struct cmn_conf_opt *table, void *cfg, const char *prog, int argc,
                        char **argv, int (*finish)(void *cfg, struct cmn_err *err),
                        void (*release)(void *cfg), int *exit_code)
{
    /* --check is taken out here so that it also covers the daemon's own checks. */
    bool check = false;
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    int nargs = 0;
    if (!args) {
        fprintf(stderr, "%s: out of memory\n", prog);
        *exit_code = 1;
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--check") == 0)
            check = true;
        else
            args[nargs++] = argv[i];
    }
    int done = cmn_conf_cli(table, cfg, prog, nargs, args, exit_code);
    free(args);
    if (done)
        return 1;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (finish && finish(cfg, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, cmn_err_text(&err));
        release(cfg);
        *exit_code = 1;
        return 1;
    }
    if (check) {
        printf("%s: configuration OK\n", prog);
        release(cfg);
        *exit_code = 0;
        return 1;
    }
    return 0;
}

void cmn_conf_warn_secret(const char *ctx, const char *inline_secret, const char *file)
{
    struct stat st;
    if (file && stat(file, &st) == 0 && (st.st_mode & 077))
        LOG_WARN(ctx, "cluster-secret-file %s is readable by group or others (mode %03o); "
                 "chmod 600 it", file, (unsigned)(st.st_mode & 0777));
    if (inline_secret)
        LOG_WARN(ctx, "cluster-secret is set inline in the configuration; prefer "
                 "cluster-secret-file so the secret stays out of config files and backups");
}

void cmn_conf_list_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int cmn_conf_split_list(const char *key, const char *s, size_t max, bool fold_case,
                        char ***out, size_t *n, struct cmn_err *err)
{
    *out = NULL;
    *n = 0;
    if (!s || !*s)
        return cmn_err_set(err, LODE_ECONFIG, "%s is empty", key);
    size_t count = 1;
    for (const char *p = s; *p; p++)
        count += *p == ',';
    if (count > max)
        return cmn_err_set(err, LODE_ECONFIG, "%s lists %zu entries; at most %zu are allowed",
                           key, count, max);
    char **v = calloc(count, sizeof(*v));
    if (!v)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    size_t k = 0;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        /* Configs are written by hand: tolerate blanks around entries. */
        while (len && isblank((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isblank((unsigned char)p[len - 1]))
            len--;
        if (len == 0) {
            cmn_conf_list_free(v, k);
            return cmn_err_set(err, LODE_ECONFIG, "%s: entry %zu is empty", key, k + 1);
        }
        v[k] = strndup(p, len);
        if (!v[k]) {
            cmn_conf_list_free(v, k);
            return cmn_err_set(err, -ENOMEM, "out of memory");
        }
        for (size_t j = 0; j < k; j++) {
            /* A duplicate is almost always a typo for another entry. */
            if ((fold_case ? strcasecmp(v[j], v[k]) : strcmp(v[j], v[k])) == 0) {
                int rc = cmn_err_set(err, LODE_ECONFIG, "%s lists '%s' twice (entries %zu and "
                                     "%zu)", key, v[k], j + 1, k + 1);
                cmn_conf_list_free(v, k + 1);
                return rc;
            }
        }
        k++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = v;
    *n = k;
    return 0;
}

int cmn_conf_check_addr_list(const char *key, const char *s, size_t max, struct cmn_err *err)
{
    char **v;
    size_t n;
    int rc = cmn_conf_split_list(key, s, max, true, &v, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char host[CMN_CONF_ADDR_MAX];
        uint16_t port = 0;
        if (strlen(v[i]) >= CMN_CONF_ADDR_MAX ||
            cmn_addr_split(v[i], host, sizeof(host), &port) || port == 0)
            rc = cmn_err_set(err, LODE_ECONFIG,
                             "%s: '%s' is not host:port (an IPv4 address or a host name, and "
                             "a port)", key, v[i]);
    }
    cmn_conf_list_free(v, n);
    return rc;
}
