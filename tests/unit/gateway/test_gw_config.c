/* lode-gateway's configuration: the key table (defaults, ranges, the sensitive secret), the
 * checks gw_config_finish adds (meta list, addresses, region, base domains, sizes and
 * erasure settings against each other, the per-request memory bound, the secret), the
 * command line (--check, --print-sample, refusals), and the generated documents: the sample
 * in etc/ and the lode-gateway section of docs/config.md must be what the table prints.
 * Configurations are built as the daemon builds them: defaults, keys set one by one, the
 * required-key check, then gw_config_finish. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "gateway/config.h"
#include "tests/tap.h"

#define SECRET20 "0123456789abcdefghij"      /* 20 bytes */

static char dir[PATH_MAX];

static int contains(const char *s, const char *needle)
{
    return s && strstr(s, needle) != NULL;
}

/* Defaults, then the given key/value pairs (NULL-terminated; a NULL value leaves the key
 * unset), then whichever base keys the pairs did not name, then the required-key check and
 * gw_config_finish. */
static int build(struct gw_config *cfg, struct cmn_err *err, ...)
{
    static const char *const base[] = {"meta", "127.0.0.1:7001,127.0.0.1:7002",
                                       "cluster-secret", SECRET20, NULL};
    const char *given[64];
    size_t n_given = 0;
    memset(cfg, 0, sizeof(*cfg));
    cmn_err_clear(err);
    int rc = cmn_conf_defaults(gw_conf_table, cfg, err);
    va_list ap;
    va_start(ap, err);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (n_given < 64)
            given[n_given++] = key;
        if (rc == 0 && value)
            rc = cmn_conf_set(gw_conf_table, cfg, key, value, err);
    }
    va_end(ap);
    for (size_t i = 0; rc == 0 && base[i]; i += 2) {
        bool named = false;
        for (size_t j = 0; j < n_given; j++)
            named |= strcmp(given[j], base[i]) == 0 ||
                     (strcmp(base[i], "cluster-secret") == 0 &&
                      strcmp(given[j], "cluster-secret-file") == 0);
        if (!named)
            rc = cmn_conf_set(gw_conf_table, cfg, base[i], base[i + 1], err);
    }
    if (rc == 0)
        rc = cmn_conf_check_required(gw_conf_table, cfg, err);
    if (rc == 0)
        rc = gw_config_finish(cfg, err);
    return rc;
}

/* Expects a refusal (LODE_ECONFIG) whose message contains needle. */
#define REFUSED(needle, what, ...)                                                       \
    do {                                                                                  \
        struct gw_config c_;                                                              \
        struct cmn_err e_;                                                                \
        int rc_ = build(&c_, &e_, __VA_ARGS__, NULL);                                     \
        is_int(rc_, LODE_ECONFIG, "%s: refused", what);                                   \
        ok(contains(e_.msg, needle), "%s: message says why (%s)", what, e_.msg);          \
        gw_config_free(&c_);                                                              \
    } while (0)

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        tap_bail("write %s: %s", path, strerror(errno));
    close(fd);
}

/* The whole file (malloc'd, NUL-terminated), or NULL. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, m);
    fclose(m);
    fclose(f);
    return text;
}

static char *table_text(bool markdown)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (markdown)
        cmn_conf_write_markdown(gw_conf_table, GW_PROG, f);
    else
        cmn_conf_write_sample(gw_conf_table, GW_PROG, f);
    fclose(f);
    return text;
}

/* Runs gw_config_cli with stdout and stderr captured into *out and *errout (malloc'd). */
static int run_cli(int *exit_code, char **out, char **errout, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)GW_PROG;
    va_list ap;
    va_start(ap, errout);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 15)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    char po[PATH_MAX + 16], pe[PATH_MAX + 16];
    snprintf(po, sizeof(po), "%s/stdout", dir);
    snprintf(pe, sizeof(pe), "%s/stderr", dir);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (so < 0 || se < 0 || fo < 0 || fe < 0)
        tap_bail("capture: %s", strerror(errno));
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    struct gw_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    int rc = gw_config_cli(&cfg, argc, argv, exit_code);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    if (rc == 0)
        gw_config_free(&cfg);
    *out = read_file(po);
    *errout = read_file(pe);
    /* stderr's last newline would end the TAP line that quotes it. */
    size_t n = *errout ? strlen(*errout) : 0;
    if (n && (*errout)[n - 1] == '\n')
        (*errout)[n - 1] = '\0';
    return rc;
}

static void test_table(void)
{
    struct gw_config cfg;
    struct cmn_err err;
    memset(&cfg, 0, sizeof(cfg));
    cmn_err_clear(&err);
    is_int(cmn_conf_defaults(gw_conf_table, &cfg, &err), 0, "table defaults apply");
    is_str(cfg.listen, "127.0.0.1:9000", "listen defaults to loopback port 9000");
    is_int(cfg.workers, 0, "workers default to one per CPU (0)");
    is_str(cfg.region, "us-east-1", "region defaults to us-east-1");
    ok(cfg.ec_data == 4 && cfg.ec_parity == 2 && cfg.degraded_writes,
       "erasure coding defaults to 4 + 2, degraded writes allowed");
    /* 1 MiB = 1048576 and 256 KiB = 262144 bytes. */
    ok(cfg.chunk_size == 1048576 && cfg.small_object_threshold == 262144,
       "1MiB chunks, 256KiB small-object threshold");
    /* S3's limits: 5 TiB = 5 * 2^40 = 5497558138880, 5 GiB = 5 * 2^30 = 5368709120
     * (python3 -c 'print(5<<40, 5<<30)'). */
    ok(cfg.max_object_size == 5497558138880ull && cfg.max_put_size == 5368709120ull,
       "5TiB objects, 5GiB single puts");
    ok(cfg.max_header_bytes == 65536 && cfg.max_headers == 200,
       "64KiB request heads of at most 200 fields");
    /* 15 minutes = 900000 ms: the skew S3 allows. */
    is_int(cfg.clock_skew_ms, 900000, "clock skew 15 minutes");
    ok(cfg.idle_timeout_ms == 60000 && cfg.header_timeout_ms == 30000 &&
           cfg.body_timeout_ms == 60000,
       "timeouts: idle 60s, head 30s, body 60s");
    ok(cfg.key_cache_ttl_ms == 60000 && cfg.key_cache_negative_ttl_ms == 5000 &&
           cfg.key_cache_size == 10000,
       "key cache: 60s, unknown keys 5s, 10000 keys");
    is_int(cfg.map_refresh_ms, 2000, "map refreshed every 2s");
    ok(cfg.gc && cfg.gc_interval_ms == 10000 && cfg.gc_batch == 1000,
       "collector on, every 10s, 1000 entries a batch");
    ok(cfg.inflight_stripes == 4 && cfg.node_timeout_ms == 10000 &&
           cfg.meta_timeout_ms == 10000 && cfg.max_connections == 4096,
       "4 stripes in flight, 10s node and meta deadlines, 4096 connections");
    ok(!cfg.meta && !cfg.cluster_secret && !cfg.cluster_secret_file && !cfg.base_domains &&
           !cfg.metrics_address && !cfg.log_file,
       "no default for meta, the secret, base domains, metrics or the log file");
    cmn_conf_free(gw_conf_table, &cfg);

    bool sensitive = false, every = true, only_secret = true;
    char *text = table_text(false);
    for (const struct cmn_conf_opt *o = gw_conf_table; o->name; o++) {
        if (strcmp(o->name, "cluster-secret") == 0)
            sensitive = o->flags & CMN_CONF_SENSITIVE;
        else if (strcmp(o->name, "dc-key") == 0)
            sensitive &= (o->flags & CMN_CONF_SENSITIVE) != 0;
        else if (o->flags & CMN_CONF_SENSITIVE)
            only_secret = false;
        char key[80];
        snprintf(key, sizeof(key), "#%s =", o->name);
        every &= contains(text, key);
    }
    free(text);
    ok(sensitive && only_secret, "cluster-secret and dc-key, and only they, are marked sensitive");
    ok(every, "the sample lists every key");

    struct {
        const char *key, *value;
    } out_of_range[] = {
        {"workers", "65"},           {"ec-data", "0"},           {"ec-data", "17"},
        {"ec-parity", "9"},          {"chunk-size", "16MiB"},    {"chunk-size", "2KiB"},
        {"small-object-threshold", "9MiB"},                      {"gc-batch", "0"},
        {"gc-batch", "10001"},       {"key-cache-size", "15"},   {"map-refresh", "50ms"},
        {"max-header-bytes", "2MiB"}, {"max-headers", "15"},     {"inflight-stripes", "0"},
        {"clock-skew", "500ms"},     {"listen", "nonsense"},     {"metrics-address", ":80"},
        {"gc", "maybe"},
    };
    memset(&cfg, 0, sizeof(cfg));
    cmn_conf_defaults(gw_conf_table, &cfg, &err);
    for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++)
        is_int(cmn_conf_set(gw_conf_table, &cfg, out_of_range[i].key, out_of_range[i].value,
                            &err),
               LODE_ECONFIG, "%s = %s is refused by the table", out_of_range[i].key,
               out_of_range[i].value);
    is_int(cmn_conf_set(gw_conf_table, &cfg, "ec-parity", "0", &err), 0,
           "ec-parity 0 is accepted (trials)");
    is_int(cmn_conf_set(gw_conf_table, &cfg, "key-cache-negative-ttl", "0", &err), 0,
           "key-cache-negative-ttl 0 (no negative cache) is accepted");
    cmn_conf_free(gw_conf_table, &cfg);
}

static void test_valid(void)
{
    struct gw_config cfg;
    struct cmn_err err;
    is_int(build(&cfg, &err, "workers", "3", "base-domains", " S3.Example.COM , s3.local ",
                 "listen", "0.0.0.0:9100", "metrics-address", "127.0.0.1:9101", NULL),
           0, "a complete configuration passes (%s)", err.msg);
    is_str(cfg.listen_host, "0.0.0.0", "listen host");
    is_int(cfg.listen_port, 9100, "listen port");
    is_int(cfg.n_workers, 3, "three workers as asked");
    ok(cfg.n_domains == 2 && strcmp(cfg.domains[0], "s3.example.com") == 0 &&
           strcmp(cfg.domains[1], "s3.local") == 0,
       "base domains trimmed, lower-cased, in order");
    /* 4 stripes x (4 + 2) chunks x 1048576 bytes = 25165824. */
    is_int(cfg.request_buffer_bytes, 25165824, "per-request buffer bound 4 x 6 x 1MiB");
    ok(cfg.secret_len == 20 && memcmp(cfg.secret, SECRET20, 20) == 0, "secret loaded");
    char *dump = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&dump, &len);
    cmn_conf_dump(gw_conf_table, &cfg, f);
    fclose(f);
    ok(contains(dump, "cluster-secret") && !contains(dump, SECRET20),
       "the configuration dump hides the secret");
    free(dump);
    is_int(gw_config_finish(&cfg, &err), 0, "finishing again rebuilds the derived fields");
    ok(cfg.n_domains == 2 && cfg.secret_len == 20, "... to the same values");
    gw_config_free(&cfg);
    ok(!cfg.secret && !cfg.secret_len && !cfg.domains && !cfg.n_domains && !cfg.meta &&
           !cfg.listen,
       "gw_config_free releases the secret, the domains and the table strings");
    gw_config_free(&cfg);
    ok(1, "freeing twice is harmless");

    is_int(build(&cfg, &err, NULL), 0, "defaults with meta and a secret pass");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    is_int(cfg.n_workers, cpus < 1 ? 1 : cpus > 64 ? 64 : cpus,
           "workers 0 means one per online CPU (%ld), at most 64", cpus);
    ok(cfg.n_domains == 0 && cfg.domains == NULL, "no base domains: path-style only");
    is_int(cfg.listen_port, 9000, "port 9000");
    gw_config_free(&cfg);

    is_int(build(&cfg, &err, "listen", "127.0.0.1:0", "metrics-address", "127.0.0.1:0", NULL),
           0, "port 0 for both listen and metrics (tests)");
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "small-object-threshold", "1MiB", NULL), 0,
           "small-object-threshold equal to chunk-size");
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "small-object-threshold", "0", NULL), 0,
           "small-object-threshold 0 (stripe everything)");
    gw_config_free(&cfg);
    /* 16 x (8 + 8) x 4 MiB = 1 GiB exactly: the largest allowed. */
    is_int(build(&cfg, &err, "inflight-stripes", "16", "ec-data", "8", "ec-parity", "8",
                 "chunk-size", "4MiB", NULL),
           0, "a per-request bound of exactly 1GiB");
    is_int(cfg.request_buffer_bytes, 1u << 30, "... computed as 1GiB");
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "max-put-size", "5TiB", NULL), 0,
           "max-put-size equal to max-object-size");
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "region", "eu-west-3", "base-domains",
                 "a-1.b2.example-domain.org", NULL),
           0, "a hyphenated region and domain");
    gw_config_free(&cfg);
    char label63[64];
    memset(label63, 'a', 63);
    label63[63] = '\0';
    is_int(build(&cfg, &err, "base-domains", label63, NULL), 0, "a 63-character label");
    gw_config_free(&cfg);
}

/* rdma-address: worker w listens on port + w, on an address clients can dial. */
static void test_rdma(void)
{
    struct gw_config cfg;
    struct cmn_err err;
    is_int(build(&cfg, &err, NULL), 0, "no rdma-address");
    ok(cfg.rdma_host[0] == '\0' && cfg.rdma_port == 0, "... no rc listeners");
    gw_config_free(&cfg);
#ifdef HAVE_RDMA
    is_int(build(&cfg, &err, "workers", "4", "rdma-address", "10.0.0.5:7600", NULL), 0,
           "an rc listener per worker (%s)", err.msg);
    is_str(cfg.rdma_host, "10.0.0.5", "rc host");
    is_int(cfg.rdma_port, 7600, "the first worker's port");
    ok(cfg.rdma_staging_size == 64u << 20, "staging 64MiB by default");
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "workers", "2", "rdma-address", "10.0.0.5:65534", NULL), 0,
           "2 workers on ports 65534 and 65535");
    gw_config_free(&cfg);
    REFUSED("3 workers need ports 65534..65536", "3 workers from port 65534", "workers", "3",
            "rdma-address", "10.0.0.5:65534");
    REFUSED("cannot be advertised", "rc on the wildcard address", "rdma-address",
            "0.0.0.0:7600");
#else
    REFUSED("built without RDMA", "rdma-address in a build without rdma-core", "rdma-address",
            "10.0.0.5:7600");
#endif
}

static void test_refused(void)
{
    REFUSED("meta: 'nonsense'", "a meta entry without a port", "meta", "127.0.0.1:7001,nonsense");
    REFUSED("meta: '127.0.0.1:0'", "a meta entry with port 0", "meta", "127.0.0.1:0");
    REFUSED("twice", "a meta replica listed twice", "meta", "10.0.0.1:7001,10.0.0.1:7001");
    REFUSED("entry 2 is empty", "an empty meta entry", "meta", "10.0.0.1:7001,,10.0.0.2:7001");
    REFUSED("at most 16", "17 meta replicas", "meta",
            "h1:1,h2:1,h3:1,h4:1,h5:1,h6:1,h7:1,h8:1,h9:1,h10:1,h11:1,h12:1,h13:1,h14:1,h15:1,"
            "h16:1,h17:1");
    REFUSED("share port 9000", "metrics on the S3 port", "metrics-address", "127.0.0.1:9000");
    REFUSED("share port 9000", "metrics on the wildcard at the S3 port", "metrics-address",
            "0.0.0.0:9000");
    REFUSED("character 1 is not one of a-z 0-9 -", "an upper-case region", "region",
            "US-east-1");
    REFUSED("1 to 63", "an empty region", "region", "");
    REFUSED("empty label", "a domain with a doubled dot", "base-domains", "s3..example.com");
    REFUSED("empty label", "a domain with a trailing dot", "base-domains", "s3.example.com.");
    REFUSED("starts with a hyphen", "a label starting with a hyphen", "base-domains",
            "-s3.example.com");
    REFUSED("ends with a hyphen", "a label ending with a hyphen", "base-domains",
            "s3-.example.com");
    REFUSED("without a scheme or port", "a domain with a port", "base-domains",
            "s3.example.com:9000");
    REFUSED("without a scheme or port", "a domain with a scheme", "base-domains",
            "http://s3.example.com");
    REFUSED("twice", "a domain listed twice (in other case)", "base-domains",
            "s3.example.com,S3.EXAMPLE.COM");
    REFUSED("entry 1 is empty", "an empty domain list entry", "base-domains", ",s3.example.com");
    REFUSED("at most 16", "17 base domains", "base-domains",
            "a1.x,a2.x,a3.x,a4.x,a5.x,a6.x,a7.x,a8.x,a9.x,a10.x,a11.x,a12.x,a13.x,a14.x,a15.x,"
            "a16.x,a17.x");
    char label64[80];
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".example");
    REFUSED("longer than 63", "a 64-character label", "base-domains", label64);
    REFUSED("multiple of 4KiB", "a chunk size that is not whole pages", "chunk-size",
            "1001KiB");
    REFUSED("exceeds chunk-size", "a small-object threshold above the chunk size",
            "chunk-size", "128KiB", "small-object-threshold", "256KiB");
    REFUSED("exceeds max-object-size", "max-put-size above max-object-size", "max-object-size",
            "1GiB", "max-put-size", "5GiB");
    /* 17 x (8 + 8) x 4 MiB = 1088 MiB > 1 GiB. */
    REFUSED("at most 1GiB", "a per-request bound above 1GiB", "inflight-stripes", "17",
            "ec-data", "8", "ec-parity", "8", "chunk-size", "4MiB");
    REFUSED("set cluster-secret-file (or cluster-secret)", "no secret", "cluster-secret", NULL);
    REFUSED("at least 16", "a 15-byte secret", "cluster-secret", "short-secret-15");

    struct gw_config cfg;
    struct cmn_err err;
    is_int(build(&cfg, &err, "cluster-secret", "short-secret-15", NULL), LODE_ECONFIG,
           "short secret refused");
    ok(!contains(err.msg, "short-secret-15"), "the message does not show the secret");
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "meta", NULL, NULL), LODE_ECONFIG, "meta is required");
    ok(contains(err.msg, "meta"), "message names the key (%s)", err.msg);
    gw_config_free(&cfg);
}

static void test_secret_file(void)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/secret", dir);
    struct gw_config cfg;
    struct cmn_err err;

    write_file(path, SECRET20 "\n", 21);
    is_int(build(&cfg, &err, "cluster-secret-file", path, NULL), 0, "secret from a file");
    ok(cfg.secret_len == 20 && memcmp(cfg.secret, SECRET20, 20) == 0,
       "the trailing newline is not part of the secret");
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "cluster-secret-file", path, "cluster-secret", SECRET20, NULL),
           LODE_ECONFIG, "both secret keys refused");
    gw_config_free(&cfg);
    char missing[PATH_MAX + 16];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    is_int(build(&cfg, &err, "cluster-secret-file", missing, NULL), -ENOENT,
           "a missing secret file: -ENOENT");
    ok(contains(err.msg, missing), "message names the file (%s)", err.msg);
    gw_config_free(&cfg);
    unlink(path);
}

static void test_cli(void)
{
    char conf[PATH_MAX + 16];
    snprintf(conf, sizeof(conf), "%s/gw.conf", dir);
    const char *good = "meta = 127.0.0.1:7001\ncluster-secret = " SECRET20 "\n"
                       "base-domains = s3.example.com\n";
    write_file(conf, good, strlen(good));
    int code = -1;
    char *out, *errout;
    int rc = run_cli(&code, &out, &errout, "-c", conf, "--check", NULL);
    ok(rc == 1 && code == 0, "--check of a good file: exit 0");
    is_str(out, "lode-gateway: configuration OK\n", "--check prints that the file is OK");
    ok(errout && !*errout, "... and nothing on stderr");
    free(out);
    free(errout);

    const char *bad = "meta = 127.0.0.1:7001\ncluster-secret = " SECRET20 "\n"
                      "chunk-size = 128KiB\n";
    write_file(conf, bad, strlen(bad));
    rc = run_cli(&code, &out, &errout, "-c", conf, "--check", NULL);
    ok(rc == 1 && code == 1, "--check of a file the daemon would refuse: exit 1");
    ok(contains(errout, "lode-gateway: small-object-threshold"),
       "--check reports the daemon's own check (%s)", errout ? errout : "");
    ok(!contains(out, "configuration OK"), "... and does not say OK");
    free(out);
    free(errout);

    rc = run_cli(&code, &out, &errout, "-c", conf, "--set", "chunk-size=256KiB", NULL);
    ok(rc == 0 && code == 0, "--set fixes it: the daemon goes on");
    free(out);
    free(errout);

    const char *unknown = "meta = 127.0.0.1:7001\nchunksize = 1MiB\n";
    write_file(conf, unknown, strlen(unknown));
    rc = run_cli(&code, &out, &errout, "-c", conf, "--check", NULL);
    ok(rc == 1 && code == 1 && contains(errout, "gw.conf:2") && contains(errout, "chunksize"),
       "an unknown key is refused with file and line (%s)", errout ? errout : "");
    free(out);
    free(errout);

    rc = run_cli(&code, &out, &errout, "--print-sample", NULL);
    char *sample = table_text(false);
    ok(rc == 1 && code == 0 && out && sample && strcmp(out, sample) == 0,
       "--print-sample prints the table's sample");
    free(out);
    free(errout);
    free(sample);
    unlink(conf);
}

/* The documents generated from the table must be current. */
static void test_documents(void)
{
    char *sample = table_text(false), *md = table_text(true);
    char *file = read_file(LODE_SRCDIR "/etc/lode-gateway.conf.sample");
    ok(file && strcmp(file, sample) == 0, "etc/lode-gateway.conf.sample is what the table "
       "prints%s", file && strcmp(file, sample) == 0 ? ""
                   : " (regenerate: lode-gateway --print-sample > etc/lode-gateway.conf.sample)");
    char *doc = read_file(LODE_SRCDIR "/docs/config.md");
    const char *section = doc ? strstr(doc, "\n## lode-gateway\n") : NULL;
    ok(section && strncmp(section + 1, md, strlen(md)) == 0,
       "docs/config.md holds the lode-gateway table verbatim%s",
       section && strncmp(section + 1, md, strlen(md)) == 0
           ? "" : " (regenerate it with lode-gateway --print-markdown)");
    free(doc);

    /* The sample is documentation someone will copy: with its required keys filled in, it
     * must pass --check. */
    char conf[PATH_MAX + 16];
    snprintf(conf, sizeof(conf), "%s/from-sample.conf", dir);
    size_t n = file ? strlen(file) : 0;
    char *filled = malloc(n + 256);
    size_t k = 0;
    for (const char *line = file; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line + 1) : strlen(line);
        if (strncmp(line, "#meta =", 7) == 0)
            k += (size_t)sprintf(filled + k, "meta = 127.0.0.1:7001,127.0.0.1:7002\n");
        else if (strncmp(line, "#cluster-secret =", 17) == 0)
            k += (size_t)sprintf(filled + k, "cluster-secret = %s\n", SECRET20);
        else {
            memcpy(filled + k, line, len);
            k += len;
        }
        line += len;
    }
    write_file(conf, filled, k);
    int code = -1;
    char *out, *errout;
    int rc = run_cli(&code, &out, &errout, "-c", conf, "--check", NULL);
    ok(rc == 1 && code == 0 && contains(out, "configuration OK"),
       "the sample with meta and a secret filled in passes --check (%s)",
       errout ? errout : "");
    free(out);
    free(errout);
    free(filled);
    unlink(conf);
    free(file);
    free(sample);
    free(md);
}

/* dc-* (docs/dataplane-dc.md section 8): values, the sensitive key in --check, the sample and
 * the log. The key's value was computed with Python: int('5eC0DE5', 16) == 99356133. */
static void test_dc(void)
{
    struct gw_config cfg;
    struct cmn_err err;
    is_int(build(&cfg, &err, NULL), 0, "dc unset");
    ok(!cfg.dc_enabled && cfg.dc.dc_key == 0xffeeddccu, "... off, cuObject's default key");
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "dc-address", "192.168.7.2", "dc-key", "0x5eC0DE5", "dc-sl", "3",
                 "dc-traffic-class", "106", "dc-hop-limit", "8", NULL),
           0, "dc by address with a key of its own (%s)", err.msg);
    ok(cfg.dc_enabled && !cfg.dc_key_public && cfg.dc.dc_key == 99356133u,
       "... on; the key (either case of hex digits) parsed");
    ok(cfg.dc.sl == 3 && cfg.dc.traffic_class == 106 && cfg.dc.hop_limit == 8 &&
           cfg.dc.ip && strcmp(cfg.dc.ip, "192.168.7.2") == 0,
       "... sl, traffic class, hop limit and address carried");
#ifdef HAVE_MLX5DV
    is_int(gw_config_dc_buildable(&cfg, &err), 0, "... this build has mlx5dv: it may start");
#else
    is_int(gw_config_dc_buildable(&cfg, &err), LODE_ECONFIG,
           "... this build has no mlx5dv: start refuses it");
    ok(contains(err.msg, "built without mlx5 direct verbs"), "... saying so (%s)", err.msg);
#endif
    gw_config_free(&cfg);
    REFUSED("dc-key", "a key with a blank", "dc-device", "mlx5_0", "dc-key", "0x5e C0");
    REFUSED("dc-address", "a host name as dc-address", "dc-address", "rdma0.example");
    REFUSED("slot", "a 32MiB slot", "dc-device", "mlx5_0", "dc-slot", "32MiB");
    REFUSED("dc-port", "dc-port 0", "dc-port", "0");

    /* --check validates the dc settings in any build and never prints the key. */
    char conf[PATH_MAX + 16];
    snprintf(conf, sizeof(conf), "%s/gw-dc.conf", dir);
    const char *good = "meta = 127.0.0.1:7001\ncluster-secret = " SECRET20 "\n"
                       "dc-device = mlx5_0\ndc-key = 0x5ec0de5\n";
    write_file(conf, good, strlen(good));
    int code = -1;
    char *out, *errout;
    int rc = run_cli(&code, &out, &errout, "-c", conf, "--check", NULL);
    ok(rc == 1 && code == 0 && contains(out, "configuration OK"),
       "--check of a dc configuration: OK (%s)", errout ? errout : "");
    ok(!contains(out, "5ec0de5") && !contains(errout, "5ec0de5"),
       "... the key appears nowhere in its output");
    free(out);
    free(errout);
    const char *bad = "meta = 127.0.0.1:7001\ncluster-secret = " SECRET20 "\n"
                      "dc-device = mlx5_0\ndc-key = 0x5ec0de5zz\n";
    write_file(conf, bad, strlen(bad));
    rc = run_cli(&code, &out, &errout, "-c", conf, "--check", NULL);
    ok(rc == 1 && code == 1 && contains(errout, "dc-key"),
       "--check refuses a malformed key (%s)", errout ? errout : "");
    ok(!contains(out, "5ec0de5") && !contains(errout, "5ec0de5"), "... without quoting it");
    free(out);
    free(errout);
    rc = run_cli(&code, &out, &errout, "--print-sample", NULL);
    ok(contains(out, "#dc-key =") && !contains(out, "0xffeeddcc\n"),
       "--print-sample lists dc-key with no value");
    free(out);
    free(errout);
    unlink(conf);

    /* The start-up warning: the public key warns; a private one is never logged. */
    char logp[PATH_MAX + 16];
    snprintf(logp, sizeof(logp), "%s/gw.log", dir);
    unlink(logp);
    is_int(build(&cfg, &err, "dc-device", "mlx5_0", NULL), 0, "dc with the default key");
    cmn_log_setup(GW_PROG, CMN_LOG_DEBUG, logp);
    gw_config_log_warnings(&cfg);
    gw_config_free(&cfg);
    is_int(build(&cfg, &err, "dc-device", "mlx5_0", "dc-key", "0x5ec0de5", NULL), 0,
           "dc with a private key");
    gw_config_log_warnings(&cfg);
    gw_config_free(&cfg);
    cmn_log_setup(GW_PROG, CMN_LOG_WARN, NULL);
    char *log = read_file(logp);
    ok(contains(log, "dc-key is cuObject's published default"),
       "the public key is warned about at start");
    const char *first = log ? strstr(log, "published default") : NULL;
    ok(first && !strstr(first + 1, "published default"),
       "... once: a private key gives no warning");
    ok(log && !contains(log, "5ec0de5") && !contains(log, "5EC0DE5"),
       "a private key never reaches the log");
    free(log);
    unlink(logp);
}

int main(void)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(dir, sizeof(dir), "%s/gw-config.XXXXXX", base && *base ? base : "/tmp");
    mkdir(base && *base ? base : "/tmp", 0700);
    if (!mkdtemp(dir))
        tap_bail("mkdtemp %s: %s", dir, strerror(errno));
    test_table();
    test_valid();
    test_refused();
    test_rdma();
    test_dc();
    test_secret_file();
    test_cli();
    test_documents();
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/stdout", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/stderr", dir);
    unlink(p);
    rmdir(dir);
    return tap_done();
}
