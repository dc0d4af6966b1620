#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "tests/tap.h"

struct tcfg {
    char *name;
    int64_t workers;
    bool verbose;
    uint64_t buffer_size;
    uint64_t timeout_ms;
    char *listen;
    int log_level;
    char *cluster_secret;
    char *data_dir;
    int64_t offset;
    int64_t key_id;
};

#define OFF(f) offsetof(struct tcfg, f)
static const struct cmn_conf_opt table[] = {
    {"name", CMN_CONF_STR, OFF(name), "lode", "Name of this node, shown in logs.", 0, 0, 0},
    {"workers", CMN_CONF_INT, OFF(workers), "4", "Worker threads.", CMN_CONF_RUNTIME, 1, 64},
    {"verbose", CMN_CONF_BOOL, OFF(verbose), "false", "Chatty output.", 0, 0, 0},
    {"buffer-size", CMN_CONF_SIZE, OFF(buffer_size), "16MiB", "Per-connection buffer.", 0, 4096,
     1LL << 30},
    {"timeout", CMN_CONF_DURATION, OFF(timeout_ms), "3s",
     "How long to wait for a peer before giving up on the request and reporting a timeout to "
     "the caller; long enough for a leader election to finish.",
     0, 100, 60000},
    {"listen", CMN_CONF_ADDR, OFF(listen), "127.0.0.1:7000", "Address to listen on.", 0, 0, 0},
    {"log-level", CMN_CONF_LOG_LEVEL, OFF(log_level), "info", "Minimum log level.",
     CMN_CONF_RUNTIME, 0, 0},
    {"cluster-secret", CMN_CONF_STR, OFF(cluster_secret), NULL, "Shared secret of the cluster.",
     CMN_CONF_REQUIRED | CMN_CONF_SENSITIVE, 0, 0},
    {"data-dir", CMN_CONF_STR, OFF(data_dir), NULL, "Where state is kept.", CMN_CONF_REQUIRED, 0,
     0},
    {"offset", CMN_CONF_INT, OFF(offset), "-5", "Unbounded integer.", 0, 0, 0},
    {"key-id", CMN_CONF_INT, OFF(key_id), "7", "A sensitive number.", CMN_CONF_SENSITIVE, 0, 0},
    {0},
};
#define NKEYS (sizeof(table) / sizeof(table[0]) - 1)

static char tmpdir[512];
static char path[600];

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        tap_bail("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *p)
{
    FILE *f = fopen(p, "r");
    if (!f)
        return strdup("");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    return buf;
}

/* Loads `text` over fresh defaults; returns the load result, err holds the message. */
static int load_text(struct tcfg *c, const char *text, struct cmn_err *err)
{
    memset(c, 0, sizeof(*c));
    if (cmn_conf_defaults(table, c, err))
        return -9999;
    write_file(text);
    int rc = cmn_conf_load_file(table, c, path, err);
    return rc;
}

static void expect_error(const char *text, const char *want_suffix, const char *what)
{
    struct tcfg c;
    struct cmn_err err;
    int rc = load_text(&c, text, &err);
    char want[1024];
    snprintf(want, sizeof(want), "%s:%s", path, want_suffix);
    ok(rc == LODE_ECONFIG && strcmp(cmn_err_text(&err), want) == 0, "%s", what);
    if (strcmp(cmn_err_text(&err), want) != 0)
        diag("got '%s' (rc %d), want '%s'", cmn_err_text(&err), rc, want);
    cmn_conf_free(table, &c);
}

static void test_defaults(void)
{
    struct tcfg c;
    memset(&c, 0, sizeof(c));
    struct cmn_err err;
    is_int(cmn_conf_defaults(table, &c, &err), 0, "defaults apply");
    is_str(c.name, "lode", "string default");
    is_int(c.workers, 4, "int default");
    ok(!c.verbose, "bool default");
    is_int(c.buffer_size, 16 << 20, "size default");
    is_int(c.timeout_ms, 3000, "duration default");
    is_str(c.listen, "127.0.0.1:7000", "addr default");
    is_int(c.log_level, CMN_LOG_INFO, "log level default");
    ok(c.cluster_secret == NULL && c.data_dir == NULL, "no default leaves NULL");
    is_int(c.offset, -5, "negative int default");
    is_int(cmn_conf_check_required(table, &c, &err), LODE_ECONFIG, "required keys missing");
    is_str(cmn_err_text(&err), "missing required key 'cluster-secret'", "first missing key named");
    cmn_conf_free(table, &c);
    ok(c.name == NULL && c.listen == NULL, "free clears strings");

    static const struct cmn_conf_opt bad[] = {
        {"w", CMN_CONF_INT, 0, "100", "x", 0, 1, 10},
        {0},
    };
    int64_t w = 0;
    is_int(cmn_conf_defaults(bad, &w, &err), LODE_ECONFIG, "out-of-range default is an error");
    ok(strstr(cmn_err_text(&err), "default of 'w'") != NULL, "default error names the key");
    cmn_conf_free(bad, &w);
}

static void test_file(void)
{
    struct tcfg c;
    struct cmn_err err;
    int rc = load_text(&c,
                       "# a comment\n"
                       "\n"
                       "   name   =   node-1   # trailing comment\n"
                       "workers=8\n"
                       "verbose = yes\n"
                       "buffer-size = 64KiB\r\n"
                       "timeout = 250ms\n"
                       "listen = example.com:9000\n"
                       "log-level = warning\n"
                       "cluster-secret = \"s3cr#t \\\"q\\\" \\\\ \"  # quoted keeps '#'\n"
                       "data-dir = \"/var/lib/lode\"\n"
                       "offset = -123456789012\n"
                       "\t# indented comment\n",
                       &err);
    is_int(rc, 0, "valid file loads");
    if (rc)
        diag("%s", cmn_err_text(&err));
    is_str(c.name, "node-1", "unquoted value trimmed, comment dropped");
    is_int(c.workers, 8, "int without spaces around '='");
    ok(c.verbose, "bool yes");
    is_int(c.buffer_size, 65536, "size with CRLF line end");
    is_int(c.timeout_ms, 250, "duration");
    is_str(c.listen, "example.com:9000", "addr with a host name");
    is_int(c.log_level, CMN_LOG_WARN, "log level");
    is_str(c.cluster_secret, "s3cr#t \"q\" \\ ", "quoted value with '#', escapes, spaces");
    is_str(c.data_dir, "/var/lib/lode", "quoted path");
    ok(c.offset == -123456789012LL, "large negative int");
    is_int(cmn_conf_check_required(table, &c, &err), 0, "required keys present");

    /* Overrides after the file; a repeated key is fine across sources. */
    is_int(cmn_conf_set(table, &c, "workers", "64", &err), 0, "set override");
    is_int(c.workers, 64, "override applied");
    is_int(cmn_conf_set(table, &c, "workers", "65", &err), LODE_ECONFIG, "set out of range");
    is_str(cmn_err_text(&err), "'workers' must be between 1 and 64", "range message");
    is_int(c.workers, 64, "failed set keeps the old value");
    is_int(cmn_conf_set(table, &c, "nope", "1", &err), LODE_ECONFIG, "set unknown key");
    is_str(cmn_err_text(&err), "unknown key 'nope'", "unknown key message");
    is_int(cmn_conf_set(table, &c, "verbose", "maybe", &err), LODE_ECONFIG, "bad bool");
    is_int(cmn_conf_set(table, &c, "verbose", "OFF", &err), 0, "bool OFF");
    ok(!c.verbose, "bool off applied");
    is_int(cmn_conf_set(table, &c, "name", "", &err), 0, "empty string value");
    is_str(c.name, "", "empty string stored");
    cmn_conf_free(table, &c);

    memset(&c, 0, sizeof(c));
    cmn_conf_defaults(table, &c, &err);
    is_int(cmn_conf_load_file(table, &c, "/nonexistent/lode.conf", &err), -ENOENT,
           "missing file -> -ENOENT");
    ok(strstr(cmn_err_text(&err), "/nonexistent/lode.conf") != NULL, "missing file named");
    cmn_conf_free(table, &c);

    /* Only the required keys given explicitly satisfy the check. */
    rc = load_text(&c, "data-dir = /d\n", &err);
    is_int(rc, 0, "file without the secret loads");
    is_int(cmn_conf_check_required(table, &c, &err), LODE_ECONFIG, "missing required detected");
    is_str(cmn_err_text(&err), "missing required key 'cluster-secret'", "missing required named");
    is_int(cmn_conf_set(table, &c, "cluster-secret", "x", &err), 0, "secret via set");
    is_int(cmn_conf_check_required(table, &c, &err), 0, "set counts as given");
    cmn_conf_free(table, &c);
}

static void test_errors(void)
{
    expect_error("name = a\nworkers = 2\nbogus = 1\n", "3: unknown key 'bogus'", "unknown key");
    expect_error("name = a\nworkers = abc\n",
                 "2: invalid value \"abc\" for 'workers': expected an integer", "bad int");
    expect_error("workers = 99999999999999999999\n",
                 "1: invalid value \"99999999999999999999\" for 'workers': expected an integer",
                 "int overflow");
    expect_error("workers = 2\n\nname = x\nworkers = 3\n", "4: 'workers' repeated (first set on line 1)",
                 "repeated key");
    expect_error("workers = 0\n", "1: 'workers' must be between 1 and 64", "int below range");
    expect_error("timeout = 2m\n", "1: 'timeout' must be between 100ms and 1m", "duration above range");
    expect_error("buffer-size = 1KiB\n", "1: 'buffer-size' must be between 4KiB and 1GiB",
                 "size below range");
    expect_error("buffer-size = lots\n",
                 "1: invalid value \"lots\" for 'buffer-size': expected a size such as 4096, 64KiB, "
                 "16MiB or 4GiB",
                 "bad size");
    expect_error("timeout = 3 s\n",
                 "1: invalid value \"3 s\" for 'timeout': expected a duration such as 250ms, 3s, "
                 "2m or 1h",
                 "bad duration");
    expect_error("listen = 300.1.1.1:80\n",
                 "1: invalid value \"300.1.1.1:80\" for 'listen': expected host:port with an IPv4 "
                 "address or a host name",
                 "bad address");
    expect_error("log-level = loud\n",
                 "1: invalid value \"loud\" for 'log-level': expected debug, info, warn, error or off",
                 "bad log level");
    expect_error("key-id = hunter2\n", "1: invalid value for 'key-id': expected an integer",
                 "a bad sensitive value is not echoed");
    expect_error("name = \"open\n", "1: unterminated quoted value", "unterminated quote");
    expect_error("name = \"a\" b\n", "1: unexpected text after the closing quote", "text after quote");
    expect_error("name = \"a\\n\"\n", "1: bad escape in quoted value (only \\\" and \\\\)", "bad escape");
    expect_error("\n\njust words\n", "3: expected 'key = value'", "line without '='");
    expect_error("= 3\n", "1: expected 'key = value'", "line without key");
    expect_error("verbose = \n", "1: invalid value \"\" for 'verbose': expected true/false, yes/no, "
                                 "on/off or 1/0",
                 "empty bool");
}

static void test_addr(void)
{
    char host[64];
    uint16_t port = 1;
    is_int(cmn_addr_split("127.0.0.1:80", host, sizeof(host), &port), 0, "IPv4 address");
    ok(strcmp(host, "127.0.0.1") == 0 && port == 80, "IPv4 split");
    is_int(cmn_addr_split("meta-1.example.com:65535", host, sizeof(host), &port), 0, "host name");
    ok(strcmp(host, "meta-1.example.com") == 0 && port == 65535, "host name split");
    is_int(cmn_addr_split("localhost:0", host, sizeof(host), &port), 0, "port 0 means any");
    is_int(port, 0, "port 0");
    const char *bad[] = {"host", ":80", "host:", "host:65536", "host:8x", "host:-1",
                         "300.1.1.1:80", "10.1:80", "-bad.com:80", "a..b:80", "[::1]:80",
                         "ho st:80", "host:000000080", "a_b:80", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(cmn_addr_split(bad[i], host, sizeof(host), &port), -EINVAL, "'%s' rejected", bad[i]);
    char small[4];
    is_int(cmn_addr_split("abcd:1", small, sizeof(small), &port), -EINVAL, "host too long for buffer");
    is_int(cmn_addr_split("abc:1", small, sizeof(small), &port), 0, "host exactly fits");
}

static void test_writers(void)
{
    char out_path[700];
    snprintf(out_path, sizeof(out_path), "%s/sample.conf", tmpdir);
    FILE *f = fopen(out_path, "w");
    cmn_conf_write_sample(table, "lode-test", f);
    fclose(f);
    char *sample = read_all(out_path);
    int all_keys = 1;
    for (size_t i = 0; i < NKEYS; i++) {
        char line[128];
        if (table[i].def)
            snprintf(line, sizeof(line), "\n#%s = %s\n", table[i].name, table[i].def);
        else
            snprintf(line, sizeof(line), "\n#%s =\n", table[i].name);
        if (!strstr(sample, line)) {
            all_keys = 0;
            diag("sample lacks '%s'", line + 1);
        }
    }
    ok(all_keys, "sample lists every key with its default");
    ok(strstr(sample, "# Name of this node, shown in logs.\n") != NULL, "sample has help text");
    ok(strstr(sample, "# Type: integer, range 1..64. Can change without a restart.\n") != NULL,
       "sample has type, range and flags");
    ok(strstr(sample, "Required.") != NULL, "sample marks required keys");
    ok(strstr(sample, "# How long to wait for a peer before giving up on the request and "
                      "reporting a\n# timeout to the caller;") != NULL,
       "long help wrapped at 78 columns");
    int width_ok = 1;
    for (char *p = sample, *nl; (nl = strchr(p, '\n')); p = nl + 1)
        width_ok &= nl - p <= 80;
    ok(width_ok, "sample lines fit in 80 columns");

    /* Uncommenting every defaulted key of the sample gives a valid file equal to defaults. */
    char *un = NULL;
    size_t un_len = 0;
    FILE *m = open_memstream(&un, &un_len);
    for (char *p = sample, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        size_t idx_len = (size_t)(nl - p);
        if (idx_len > 1 && p[0] == '#' && p[1] != ' ' && memchr(p, '=', idx_len) &&
            p[idx_len - 1] != '=')
            fprintf(m, "%.*s\n", (int)idx_len - 1, p + 1);
    }
    fclose(m);
    struct tcfg c, d;
    struct cmn_err err;
    int rc = load_text(&c, un, &err);
    is_int(rc, 0, "uncommented sample parses");
    memset(&d, 0, sizeof(d));
    cmn_conf_defaults(table, &d, &err);
    ok(strcmp(c.name, d.name) == 0 && c.workers == d.workers && c.buffer_size == d.buffer_size &&
           c.timeout_ms == d.timeout_ms && strcmp(c.listen, d.listen) == 0,
       "uncommented sample equals defaults");
    cmn_conf_free(table, &c);
    cmn_conf_free(table, &d);
    free(un);
    free(sample);

    snprintf(out_path, sizeof(out_path), "%s/config.md", tmpdir);
    f = fopen(out_path, "w");
    cmn_conf_write_markdown(table, "lode-test", f);
    fclose(f);
    char *md = read_all(out_path);
    int md_keys = 1;
    for (size_t i = 0; i < NKEYS; i++) {
        char cell[128];
        snprintf(cell, sizeof(cell), "| `%s` |", table[i].name);
        md_keys &= strstr(md, cell) != NULL;
    }
    ok(md_keys, "markdown has a row per key");
    ok(strstr(md, "| `buffer-size` | size (4KiB..1GiB) | `16MiB` | Per-connection buffer. |\n") !=
           NULL,
       "markdown row format");
    ok(strstr(md, "| Key | Type | Default | Description |") != NULL, "markdown header");
    free(md);

    /* Dump hides sensitive values. */
    rc = load_text(&c, "cluster-secret = topsecretvalue\ndata-dir = /d\nkey-id = 4242\n"
                       "timeout = 45s\nname = \"a # b\"\n",
                   &err);
    is_int(rc, 0, "load for dump");
    snprintf(out_path, sizeof(out_path), "%s/dump.txt", tmpdir);
    f = fopen(out_path, "w");
    cmn_conf_dump(table, &c, f);
    fclose(f);
    char *dump = read_all(out_path);
    ok(strstr(dump, "topsecretvalue") == NULL, "secret string not in dump");
    ok(strstr(dump, "4242") == NULL, "sensitive number not in dump");
    ok(strstr(dump, "cluster-secret = <hidden>\n") != NULL, "secret shown as <hidden>");
    ok(strstr(dump, "key-id = <hidden>\n") != NULL, "sensitive int shown as <hidden>");
    ok(strstr(dump, "timeout = 45s\n") != NULL, "duration printed in its unit");
    ok(strstr(dump, "buffer-size = 16MiB\n") != NULL, "size printed in its unit");
    ok(strstr(dump, "log-level = info\n") != NULL, "log level printed by name");
    ok(strstr(dump, "name = \"a # b\"\n") != NULL, "string needing quotes is quoted");
    ok(strstr(dump, "offset = -5\n") != NULL, "int printed");
    free(dump);
    cmn_conf_free(table, &c);
}

/* Runs cmn_conf_cli with stdout/stderr captured into files. */
static int run_cli(struct tcfg *c, char **argv, int *exit_code, char **out, char **errout)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    char op[700], ep[700];
    snprintf(op, sizeof(op), "%s/cli.out", tmpdir);
    snprintf(ep, sizeof(ep), "%s/cli.err", tmpdir);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    memset(c, 0, sizeof(*c));
    int rc = cmn_conf_cli(table, c, "lode-test", argc, argv, exit_code);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    *out = read_all(op);
    *errout = read_all(ep);
    return rc;
}

static void test_cli(void)
{
    struct tcfg c;
    int code = -1;
    char *out, *errout;
    write_file("cluster-secret = abc\ndata-dir = /d\nworkers = 3\n");

    char *a1[] = {"lode-test", "-c", path, "--check", NULL};
    int rc = run_cli(&c, a1, &code, &out, &errout);
    ok(rc == 1 && code == 0, "--check with a valid file: exit now, status 0");
    is_str(out, "lode-test: configuration OK\n", "--check prints OK");
    is_str(errout, "", "nothing on stderr");
    ok(c.name == NULL, "cfg freed when the program exits");
    free(out);
    free(errout);

    char *a2[] = {"lode-test", "--config", path, "--set", "workers=9", "--set=name=x=y", NULL};
    rc = run_cli(&c, a2, &code, &out, &errout);
    ok(rc == 0 && code == 0, "normal start goes on");
    is_int(c.workers, 9, "--set overrides the file");
    is_str(c.name, "x=y", "--set=key=value form, value may contain '='");
    is_str(c.cluster_secret, "abc", "file value kept");
    cmn_conf_free(table, &c);
    free(out);
    free(errout);

    char *a3[] = {"lode-test", "-c", path, "--set", "workers=100", "--check", NULL};
    rc = run_cli(&c, a3, &code, &out, &errout);
    ok(rc == 1 && code == 1, "--check with a bad override fails with 1");
    is_str(errout, "lode-test: --set: 'workers' must be between 1 and 64\n", "override error");
    is_str(out, "", "no OK on failure");
    free(out);
    free(errout);

    write_file("cluster-secret = abc\ndata-dir = /d\nworkerz = 3\n");
    char *a4[] = {"lode-test", "-c", path, "--check", NULL};
    rc = run_cli(&c, a4, &code, &out, &errout);
    ok(rc == 1 && code == 1, "--check with an unknown key fails");
    char want[1024];
    snprintf(want, sizeof(want), "lode-test: %s:3: unknown key 'workerz'\n", path);
    is_str(errout, want, "error names file and line");
    free(out);
    free(errout);

    write_file("data-dir = /d\n");
    rc = run_cli(&c, a4, &code, &out, &errout);
    ok(rc == 1 && code == 1, "missing required key fails");
    snprintf(want, sizeof(want), "lode-test: %s: missing required key 'cluster-secret'\n", path);
    is_str(errout, want, "missing required message names the file");
    free(out);
    free(errout);

    char *a5[] = {"lode-test", "--print-sample", NULL};
    rc = run_cli(&c, a5, &code, &out, &errout);
    ok(rc == 1 && code == 0, "--print-sample exits 0");
    ok(strstr(out, "#cluster-secret =\n") && strstr(out, "#timeout = 3s\n"), "sample on stdout");
    free(out);
    free(errout);

    char *a6[] = {"lode-test", "--print-markdown", NULL};
    rc = run_cli(&c, a6, &code, &out, &errout);
    ok(rc == 1 && code == 0 && strstr(out, "| `listen` |"), "--print-markdown");
    free(out);
    free(errout);

    char *a7[] = {"lode-test", "-h", NULL};
    rc = run_cli(&c, a7, &code, &out, &errout);
    ok(rc == 1 && code == 0 && strstr(out, "Usage: lode-test -c FILE"), "-h prints usage");
    free(out);
    free(errout);

    char *a8[] = {"lode-test", "--bogus", NULL};
    rc = run_cli(&c, a8, &code, &out, &errout);
    ok(rc == 1 && code == 2, "unknown argument is a usage error (2)");
    ok(strstr(errout, "unknown argument '--bogus'") && strstr(errout, "Usage:"),
       "usage error explained");
    free(out);
    free(errout);

    char *a9[] = {"lode-test", "-c", NULL};
    rc = run_cli(&c, a9, &code, &out, &errout);
    ok(rc == 1 && code == 2, "-c without a file is a usage error");
    free(out);
    free(errout);

    char *a10[] = {"lode-test", "--set", "workers", NULL};
    rc = run_cli(&c, a10, &code, &out, &errout);
    ok(rc == 1 && code == 2, "--set without '=' is a usage error");
    free(out);
    free(errout);

    char *a11[] = {"lode-test", "-c", "/nonexistent/x.conf", NULL};
    rc = run_cli(&c, a11, &code, &out, &errout);
    ok(rc == 1 && code == 1 && strstr(errout, "/nonexistent/x.conf"), "unreadable file fails");
    free(out);
    free(errout);
}

/* Hand-written lists: trimmed entries, refusals naming the key, case folding on request. */
static void test_lists(void)
{
    char **v = NULL;
    size_t n = 0;
    struct cmn_err err;
    is_int(cmn_conf_split_list("k", " a , B,c ", 4, false, &v, &n, &err), 0, "a list splits");
    ok(n == 3 && !strcmp(v[0], "a") && !strcmp(v[1], "B") && !strcmp(v[2], "c"),
       "entries trimmed of blanks, in order");
    cmn_conf_list_free(v, n);
    is_int(cmn_conf_split_list("k", "a,A", 4, false, &v, &n, &err), 0,
           "case kept apart without folding (paths)");
    cmn_conf_list_free(v, n);
    is_int(cmn_conf_split_list("k", "a,A", 4, true, &v, &n, &err), LODE_ECONFIG,
           "a duplicate up to case refused with folding (host names)");
    ok(v == NULL && strstr(err.msg, "twice"), "says so: %s", err.msg);
    is_int(cmn_conf_split_list("k", "a,b,c", 2, false, &v, &n, &err), LODE_ECONFIG,
           "more than max refused");
    is_int(cmn_conf_split_list("k", "a,,b", 4, false, &v, &n, &err), LODE_ECONFIG,
           "an empty entry refused");
    ok(strstr(err.msg, "entry 2 is empty") != NULL, "names the entry: %s", err.msg);
    is_int(cmn_conf_split_list("k", "", 4, false, &v, &n, &err), LODE_ECONFIG, "empty list");
    is_int(cmn_conf_check_addr_list("meta", "h1:1, 10.0.0.1:7001", 16, &err), 0,
           "host:port list accepted");
    is_int(cmn_conf_check_addr_list("meta", "h1:1,h2", 16, &err), LODE_ECONFIG,
           "an entry without a port refused");
    ok(strstr(err.msg, "meta: 'h2'") != NULL, "names key and entry: %s", err.msg);
    is_int(cmn_conf_check_addr_list("meta", "H1:1,h1:1", 16, &err), LODE_ECONFIG,
           "the same host in another case refused");
}

int main(void)
{
    const char *base = getenv("TEST_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_conf.XXXXXX", base);
    if (!mkdtemp(tmpdir))
        tap_bail("mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/lode.conf", tmpdir);

    test_defaults();
    test_file();
    test_errors();
    test_addr();
    test_writers();
    test_cli();
    test_lists();

    const char *files[] = {"lode.conf", "sample.conf", "config.md", "dump.txt", "cli.out",
                           "cli.err"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char p[700];
        snprintf(p, sizeof(p), "%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return tap_done();
}
