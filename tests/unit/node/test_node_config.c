/* lode-node's configuration: the key table (defaults, ranges, the sensitive secret) and the
 * checks node_config_finish adds (lists of data dirs and meta replicas, the advertised
 * address, cluster name and failure domain, sizes against each other, the cluster secret).
 * Configurations are built as the daemon builds them: the table's defaults, keys set one by
 * one through cmn_conf_set, the required keys checked, then node_config_finish. */
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
#include "node/config.h"
#include "tests/tap.h"

#define SECRET20 "0123456789abcdefghij"      /* 20 bytes */

static char dir[PATH_MAX];

static int contains(const char *s, const char *needle)
{
    return s && strstr(s, needle) != NULL;
}

/* Defaults, then the given key/value pairs (NULL-terminated; a NULL value leaves the key
 * unset), then whichever of the base keys the pairs did not name, then the required-key
 * check and node_config_finish. */
static int build(struct node_config *cfg, struct cmn_err *err, ...)
{
    static const char *const base[] = {
        "cluster", "prod-1", "data-dirs", "/srv/lode/d1", "rpc-address", "127.0.0.1:7201",
        "failure-domain", "rack1", "meta", "127.0.0.1:7001,127.0.0.1:7002",
        "cluster-secret", SECRET20, NULL};
    const char *given[64];
    size_t n_given = 0;
    memset(cfg, 0, sizeof(*cfg));
    cmn_err_clear(err);
    int rc = cmn_conf_defaults(node_conf_table, cfg, err);
    va_list ap;
    va_start(ap, err);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (n_given < 64)
            given[n_given++] = key;
        if (rc == 0 && value)
            rc = cmn_conf_set(node_conf_table, cfg, key, value, err);
    }
    va_end(ap);
    for (size_t i = 0; rc == 0 && base[i]; i += 2) {
        bool named = false;
        for (size_t j = 0; j < n_given; j++)
            named |= strcmp(given[j], base[i]) == 0;
        /* Naming either secret key replaces the base secret. */
        if (strcmp(base[i], "cluster-secret") == 0)
            for (size_t j = 0; j < n_given; j++)
                named |= strcmp(given[j], "cluster-secret-file") == 0;
        if (!named)
            rc = cmn_conf_set(node_conf_table, cfg, base[i], base[i + 1], err);
    }
    if (rc == 0)
        rc = cmn_conf_check_required(node_conf_table, cfg, err);
    if (rc == 0)
        rc = node_config_finish(cfg, err);
    return rc;
}

/* Expects a refusal (LODE_ECONFIG) whose message contains needle. Pairs as for build. */
#define REFUSED(needle, what, ...)                                                       \
    do {                                                                                  \
        struct node_config c_;                                                            \
        struct cmn_err e_;                                                                \
        int rc_ = build(&c_, &e_, __VA_ARGS__, NULL);                                     \
        is_int(rc_, LODE_ECONFIG, "%s: refused", what);                                   \
        ok(contains(e_.msg, needle), "%s: message says why (%s)", what, e_.msg);          \
        node_config_free(&c_);                                                            \
    } while (0)

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        tap_bail("write %s: %s", path, strerror(errno));
    close(fd);
}

static void test_table(void)
{
    struct node_config cfg;
    struct cmn_err err;
    memset(&cfg, 0, sizeof(cfg));
    cmn_err_clear(&err);
    is_int(cmn_conf_defaults(node_conf_table, &cfg, &err), 0, "table defaults apply");
    ok(cfg.queue_depth == 32 && cfg.volume_size == 256u << 20 &&
           cfg.max_chunk_size == 8u << 20 && cfg.capacity_limit == 0 &&
           cfg.heartbeat_interval_ms == 2000 && cfg.scrub_rate == 16u << 20,
       "defaults: queue depth 32, 256MiB volumes, 8MiB chunks, no limit, 2s beats, 16MiB/s "
       "scrub");
    is_int(cfg.max_frame_size, (16u << 20) + (64u << 10), "max-frame-size is 16MiB + 64KiB");
    is_str(cfg.io_backend, "auto", "io-backend defaults to auto");
    ok(!cfg.cluster && !cfg.data_dirs && !cfg.advertise_address && !cfg.cluster_secret,
       "no default for the required keys, the advertised address or the secret");
    cmn_conf_free(node_conf_table, &cfg);

    bool sensitive = false, every = true;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cmn_conf_write_sample(node_conf_table, "lode-node", f);
    fclose(f);
    for (const struct cmn_conf_opt *o = node_conf_table; o->name; o++) {
        if (strcmp(o->name, "cluster-secret") == 0)
            sensitive = o->flags & CMN_CONF_SENSITIVE;
        char key[80];
        snprintf(key, sizeof(key), "#%s =", o->name);
        every &= contains(text, key);
    }
    free(text);
    ok(sensitive, "cluster-secret is marked sensitive");
    ok(every, "the sample lists every key");

    memset(&cfg, 0, sizeof(cfg));
    cmn_conf_defaults(node_conf_table, &cfg, &err);
    is_int(cmn_conf_set(node_conf_table, &cfg, "queue-depth", "0", &err), LODE_ECONFIG,
           "queue-depth 0 is out of range");
    is_int(cmn_conf_set(node_conf_table, &cfg, "heartbeat-interval", "10ms", &err),
           LODE_ECONFIG, "a 10ms heartbeat is out of range");
    is_int(cmn_conf_set(node_conf_table, &cfg, "max-chunk-size", "1GiB", &err), LODE_ECONFIG,
           "1GiB chunks are out of range");
    is_int(cmn_conf_set(node_conf_table, &cfg, "scrub-rate", "0", &err), 0,
           "scrub-rate 0 (disabled) is accepted");
    cmn_conf_free(node_conf_table, &cfg);
}

static void test_valid(void)
{
    struct node_config cfg;
    struct cmn_err err;
    is_int(build(&cfg, &err, "data-dirs", " /srv/a , /srv/b,/srv/c ", NULL), 0,
           "a complete configuration passes (%s)", err.msg);
    is_int(cfg.n_dirs, 3, "three data dirs");
    ok(cfg.n_dirs == 3 && strcmp(cfg.dirs[0], "/srv/a") == 0 &&
           strcmp(cfg.dirs[1], "/srv/b") == 0 && strcmp(cfg.dirs[2], "/srv/c") == 0,
       "entries trimmed, in order");
    is_str(cfg.advertise, "127.0.0.1:7201", "advertised address defaults to rpc-address");
    is_int(cfg.io_kind, NODE_IO_AUTO, "io-backend auto");
    ok(cfg.secret_len == 20 && memcmp(cfg.secret, SECRET20, 20) == 0, "secret loaded");
    char *dump = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&dump, &len);
    cmn_conf_dump(node_conf_table, &cfg, f);
    fclose(f);
    ok(contains(dump, "cluster-secret") && !contains(dump, SECRET20),
       "the configuration dump hides the secret");
    free(dump);
    node_config_free(&cfg);
    ok(cfg.secret == NULL && cfg.secret_len == 0 && cfg.dirs == NULL && cfg.n_dirs == 0 &&
           cfg.cluster == NULL,
       "node_config_free releases the secret, the dirs and the table strings");

    is_int(build(&cfg, &err, "rpc-address", "0.0.0.0:7201", "advertise-address",
                 "node7.example:7201", "io-backend", "threads", NULL),
           0, "wildcard rpc-address with an advertise-address");
    is_str(cfg.advertise, "node7.example:7201", "advertise-address is what meta is told");
    is_int(cfg.io_kind, NODE_IO_THREADS, "io-backend threads");
    node_config_free(&cfg);

    is_int(build(&cfg, &err, "rpc-address", "127.0.0.1:0", "io-backend", "io_uring", NULL), 0,
           "rpc-address with port 0");
    is_str(cfg.advertise, "", "advertised address left for main to fill in");
    is_int(cfg.io_kind, NODE_IO_URING, "io-backend io_uring");
    node_config_free(&cfg);

    is_int(build(&cfg, &err, "max-chunk-size", "16MiB", "max-frame-size", "16448KiB", NULL), 0,
           "max-frame-size exactly max-chunk-size + 64KiB");
    node_config_free(&cfg);
    is_int(build(&cfg, &err, "cluster", "a23456789012345678901234567890123456789012345678901234"
                                        "567890123", NULL),
           0, "a 63-character cluster name");
    node_config_free(&cfg);
    is_int(build(&cfg, &err, "capacity-limit", "256MiB", NULL), 0,
           "capacity-limit equal to volume-size");
    node_config_free(&cfg);
}

/* rdma-address: what meta is told for rc (the listener's own address, or the advertised host
 * with its port when it listens on every device). */
static void test_rdma(void)
{
    struct node_config cfg;
    struct cmn_err err;
    is_int(build(&cfg, &err, NULL), 0, "no rdma-address");
    is_str(cfg.rdma_advertise, "", "... nothing registered for rc");
    node_config_free(&cfg);
#ifdef HAVE_RDMA
    is_int(build(&cfg, &err, "rdma-address", "10.0.0.7:7401", NULL), 0,
           "an rc listener on a device's address (%s)", err.msg);
    is_str(cfg.rdma_advertise, "10.0.0.7:7401", "... registered as it is");
    ok(cfg.rdma_staging_size == 64u << 20, "staging 64MiB by default");
    node_config_free(&cfg);
    is_int(build(&cfg, &err, "rpc-address", "0.0.0.0:7201", "advertise-address",
                 "node7.example:7201", "rdma-address", "0.0.0.0:7401", NULL),
           0, "an rc listener on every device, with an advertise-address");
    is_str(cfg.rdma_advertise, "node7.example:7401", "... the advertised host with its port");
    node_config_free(&cfg);
    is_int(build(&cfg, &err, "rdma-address", "10.0.0.7:0", NULL), 0, "rc on port 0 (tests)");
    is_str(cfg.rdma_advertise, "", "... left for main to fill in with the port bound");
    node_config_free(&cfg);
    is_int(build(&cfg, &err, "rdma-address", "0.0.0.0:7401", NULL), 0,
           "an rc listener on every device, rpc-address giving the host");
    is_str(cfg.rdma_advertise, "127.0.0.1:7401", "... rpc-address's host with the rc port");
    node_config_free(&cfg);
    REFUSED("advertise-address", "rc on every device with no advertised host yet",
            "rpc-address", "127.0.0.1:0", "rdma-address", "0.0.0.0:7401");
    REFUSED("1MiB", "a staging pool under 1MiB", "rdma-staging-size", "512KiB");
#else
    REFUSED("built without RDMA", "rdma-address in a build without rdma-core", "rdma-address",
            "10.0.0.7:7401");
#endif
}

static void test_refused(void)
{
    REFUSED("twice", "a data dir listed twice", "data-dirs", "/srv/a,/srv/b,/srv/a");
    REFUSED("entry 2 is empty", "an empty data-dirs entry", "data-dirs", "/srv/a,,/srv/b");
    REFUSED("meta: 'nonsense'", "a meta entry without a port", "meta", "127.0.0.1:7001,nonsense");
    REFUSED("meta: '127.0.0.1:0'", "a meta entry with port 0", "meta", "127.0.0.1:0");
    REFUSED("advertise-address", "wildcard rpc-address alone", "rpc-address", "0.0.0.0:7201");
    REFUSED("wildcard", "wildcard advertise-address", "advertise-address", "0.0.0.0:7201");
    REFUSED("must name a host and a port", "advertise-address with port 0",
            "advertise-address", "10.0.0.1:0");
    REFUSED("character 5", "a cluster name with a space", "cluster", "prod 1");
    REFUSED("1 to 63 characters", "a 64-character cluster name", "cluster",
            "a234567890123456789012345678901234567890123456789012345678901234");
    REFUSED("blank or not printable", "a failure domain with a blank", "failure-domain",
            "rack 1");
    REFUSED("io-backend 'aio'", "an unknown io-backend", "io-backend", "aio");
    REFUSED("max-frame-size", "frames 1KiB short of the largest chunk + 64KiB",
            "max-chunk-size", "16MiB", "max-frame-size", "16447KiB");
    REFUSED("volume-size", "volumes too small for the largest chunk", "volume-size", "4MiB");
    REFUSED("multiple of 64KiB", "a volume size that is not whole blocks", "volume-size",
            "1100KiB");
    REFUSED("capacity-limit", "capacity below one volume", "capacity-limit", "100MiB");
    REFUSED("set cluster-secret-file (or cluster-secret)", "no secret", "cluster-secret",
            NULL);
    REFUSED("at least 16", "a 15-byte secret", "cluster-secret", "short-secret-15");
    REFUSED("node-uuid 'xyz'", "a node-uuid that is not hex", "node-uuid", "xyz");
    REFUSED("32 hex digits", "a 31-digit node-uuid", "node-uuid",
            "0123456789abcdef0123456789abcde");
    REFUSED("all zeros", "an all-zero node-uuid", "node-uuid",
            "00000000000000000000000000000000");

    struct node_config cfg;
    struct cmn_err err;
    is_int(build(&cfg, &err, "cluster-secret", "short-secret-15", NULL), LODE_ECONFIG,
           "short secret refused");
    ok(!contains(err.msg, "short-secret-15"), "the message does not show the secret");
    node_config_free(&cfg);
    is_int(build(&cfg, &err, "node-uuid", "0123456789ABCDEF0123456789abcdef", NULL), 0,
           "a node-uuid of 32 hex digits is accepted");
    ok(cfg.have_uuid && cfg.uuid.b[0] == 0x01 && cfg.uuid.b[15] == 0xef,
       "... and parsed into the node's identity");
    node_config_free(&cfg);
    is_int(build(&cfg, &err, "cluster", NULL, NULL), LODE_ECONFIG, "cluster is required");
    ok(contains(err.msg, "cluster"), "message names the key (%s)", err.msg);
    node_config_free(&cfg);
}

static void test_secret_file(void)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/secret", dir);
    struct node_config cfg;
    struct cmn_err err;

    write_file(path, SECRET20 "\n", 21);
    is_int(build(&cfg, &err, "cluster-secret-file", path, NULL), 0, "secret from a file");
    ok(cfg.secret_len == 20 && memcmp(cfg.secret, SECRET20, 20) == 0,
       "the trailing newline is not part of the secret");
    node_config_free(&cfg);

    is_int(build(&cfg, &err, "cluster-secret-file", path, "cluster-secret", SECRET20, NULL),
           LODE_ECONFIG, "both secret keys refused");
    ok(contains(err.msg, "set only one of cluster-secret and cluster-secret-file"),
       "message says so (%s)", err.msg);
    node_config_free(&cfg);

    char missing[PATH_MAX + 16];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    is_int(build(&cfg, &err, "cluster-secret-file", missing, NULL), -ENOENT,
           "a missing secret file: -ENOENT");
    ok(contains(err.msg, missing), "message names the file (%s)", err.msg);
    node_config_free(&cfg);

    char big[5000];
    memset(big, 'x', sizeof(big));
    write_file(path, big, sizeof(big));
    is_int(build(&cfg, &err, "cluster-secret-file", path, NULL), LODE_ECONFIG,
           "a 5000-byte secret file refused");
    ok(contains(err.msg, "larger than 4096"), "message gives the limit (%s)", err.msg);
    node_config_free(&cfg);
    unlink(path);
}

/* dc-* (docs/dataplane-dc.md section 8). Expected key values were computed with Python:
 * int('1234abcd', 16) == 305441741, int('ffeeddcc', 16) == 4293844428, 2**64 - 1 ==
 * 18446744073709551615. */
static void test_dc(void)
{
    struct node_config cfg;
    struct cmn_err err;
    is_int(build(&cfg, &err, NULL), 0, "dc unset");
    ok(!cfg.dc_enabled, "... dc is off");
    ok(cfg.dc.port == 1 && cfg.dc.gid_index == -1 && cfg.dc.timeout == 16 &&
           cfg.dc.retry_cnt == 7 && cfg.dc.hop_limit == 64 && cfg.dc.traffic_class == 96 &&
           cfg.dc.sl == 0 && cfg.dc.num_dcis == 16 && cfg.dc.sq_depth == 64 &&
           cfg.dc.staging_bytes == 64u << 20 && cfg.dc.slot_bytes == 1u << 20 &&
           !cfg.dc.rtr_av,
       "... defaults: port 1, gid -1, timeout 16, retry 7, hop 64, tc 96, sl 0, 16x64 DCIs, "
       "64MiB staging in 1MiB slots, no RTR AV");
    ok(cfg.dc.dc_key == 4293844428u && cfg.dc_key_public, "... the key is cuObject's public one");
    is_int(node_config_dc_buildable(&cfg, &err), 0, "... any build can run without dc");
    node_config_free(&cfg);

    is_int(build(&cfg, &err, "dc-device", "mlx5_0", "dc-key", "0x1234abcd", "dc-dcis", "128",
                 "dc-timeout", "14", "dc-retry", "3", "dc-gid-index", "3", "dc-rtr-av", "true",
                 "dc-staging", "16MiB", "dc-slot", "256KiB", NULL),
           0, "dc on mlx5_0 with a key of its own (%s)", err.msg);
    ok(cfg.dc_enabled && !cfg.dc_key_public, "... on, with a private key");
    is_str(cfg.dc.device, "mlx5_0", "... the device");
    ok(cfg.dc.dc_key == 305441741u, "... 0x1234abcd parsed");
    ok(cfg.dc.num_dcis == 128 && cfg.dc.timeout == 14 && cfg.dc.retry_cnt == 3 &&
           cfg.dc.gid_index == 3 && cfg.dc.rtr_av && cfg.dc.staging_bytes == 16u << 20 &&
           cfg.dc.slot_bytes == 256u << 10,
       "... every setting carried into the dc config");
#ifdef HAVE_MLX5DV
    is_int(node_config_dc_buildable(&cfg, &err), 0, "... this build has mlx5dv: it may start");
#else
    is_int(node_config_dc_buildable(&cfg, &err), LODE_ECONFIG,
           "... this build has no mlx5dv: start refuses it");
    ok(contains(err.msg, "built without mlx5 direct verbs"), "... saying so (%s)", err.msg);
#endif
    /* The sensitive key never shows in what --check and the sample print. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cmn_conf_dump(node_conf_table, &cfg, f);
    cmn_conf_write_sample(node_conf_table, "lode-node", f);
    fclose(f);
    ok(!contains(text, "1234abcd") && contains(text, "dc-key = <hidden>"),
       "dc-key is hidden in the dump and absent from the sample");
    free(text);
    node_config_free(&cfg);

    is_int(build(&cfg, &err, "dc-address", "fd00::7", "dc-key", "18446744073709551615", NULL),
           0, "dc by an IPv6 address, a decimal key (%s)", err.msg);
    ok(cfg.dc.ip && strcmp(cfg.dc.ip, "fd00::7") == 0 && cfg.dc.device == NULL,
       "... picks the device by address");
    ok(cfg.dc.dc_key == UINT64_MAX, "... 2^64 - 1 parsed");
    node_config_free(&cfg);
    is_int(build(&cfg, &err, "dc-device", "mlx5_1", "dc-key", "0xffeeddcc", NULL), 0,
           "the public key written out");
    ok(cfg.dc_key_public, "... is still known as public (a warning at start)");
    node_config_free(&cfg);

    REFUSED("dc-key", "a key with a non-hex digit", "dc-device", "mlx5_0", "dc-key",
            "0x12g4secret");
    {
        struct node_config c;
        build(&c, &err, "dc-device", "mlx5_0", "dc-key", "0x12g4secret", NULL);
        ok(!contains(err.msg, "12g4secret"), "... the message never quotes the key");
        node_config_free(&c);
    }
    REFUSED("dc-key", "a key of 17 hex digits", "dc-device", "mlx5_0", "dc-key",
            "0x123456789abcdef01");
    REFUSED("dc-key", "a decimal key of 2^64", "dc-device", "mlx5_0", "dc-key",
            "18446744073709551616");
    REFUSED("dc-key", "an empty hex key", "dc-device", "mlx5_0", "dc-key", "0x");
    REFUSED("dc-address", "dc-address with a port", "dc-address", "10.0.0.7:4791");
    REFUSED("slot", "a slot that is not a power of two (cmn_dp_dc_config_check)", "dc-device",
            "mlx5_0", "dc-slot", "12KiB");
    REFUSED("staging", "staging that is not whole slots", "dc-device", "mlx5_0", "dc-staging",
            "1536KiB");
    REFUSED("dc-timeout", "dc-timeout 0 (wait forever)", "dc-device", "mlx5_0", "dc-timeout",
            "0");
    REFUSED("dc-retry", "dc-retry 8", "dc-retry", "8");
    REFUSED("dc-sl", "dc-sl 16", "dc-sl", "16");
    REFUSED("dc-gid-index", "dc-gid-index -2", "dc-gid-index", "-2");
    REFUSED("dc-dcis", "2000 DCIs", "dc-dcis", "2000");
}

int main(void)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(dir, sizeof(dir), "%s/node-config.XXXXXX", base && *base ? base : "/tmp");
    mkdir(base && *base ? base : "/tmp", 0700);
    if (!mkdtemp(dir))
        tap_bail("mkdtemp %s: %s", dir, strerror(errno));
    test_table();
    test_valid();
    test_refused();
    test_rdma();
    test_dc();
    test_secret_file();
    rmdir(dir);
    return tap_done();
}
