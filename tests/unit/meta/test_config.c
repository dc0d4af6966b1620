/* lode-meta's configuration checks beyond the key table: the `peers` list
 * (meta_peers_parse) and meta_config_finish (the cluster secret, this replica in `peers`,
 * join, timeouts against each other). Configurations are built as the daemon builds them:
 * the table's defaults, keys set one by one through cmn_conf_set, the required keys
 * checked, then meta_config_finish. */
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
#include "meta/config.h"
#include "tests/tap.h"

#define SECRET20 "0123456789abcdefghij"      /* 20 bytes */
#define RAFT1 "127.0.0.1:7001"
#define RPC1 "127.0.0.1:8001"
#define PEERS3 "1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002/127.0.0.1:8002," \
               "3=127.0.0.1:7003/127.0.0.1:8003"

static char dir[PATH_MAX];

static int contains(const char *s, const char *needle)
{
    return s && strstr(s, needle) != NULL;
}

/* ---- meta_peers_parse ------------------------------------------------------------------ */

/* Parses s; on success the list stays in *out for the caller to inspect and free. */
static int parse(const char *s, struct meta_peer **out, size_t *n, struct cmn_err *err)
{
    cmn_err_clear(err);
    *out = (struct meta_peer *)1;  /* must be reset whatever happens */
    *n = 99;
    return meta_peers_parse(s, out, n, err);
}

/* Expects s to be refused with LODE_ECONFIG and a message containing each needle. */
static void refused(const char *s, const char *needle, const char *needle2, const char *what)
{
    struct meta_peer *v;
    size_t n;
    struct cmn_err err;
    int rc = parse(s, &v, &n, &err);
    is_int(rc, LODE_ECONFIG, "%s: refused", what);
    ok(contains(err.msg, needle) && (!needle2 || contains(err.msg, needle2)),
       "%s: message says why (%s)", what, err.msg);
    ok(v == NULL && n == 0, "%s: nothing returned", what);
    if (rc == 0)
        free(v);
}

static void test_peers_valid(void)
{
    struct meta_peer *v;
    size_t n;
    struct cmn_err err;

    is_int(parse(PEERS3, &v, &n, &err), 0, "three peers parse");
    is_int(n, 3, "three entries");
    ok(n == 3 && v[0].id == 1 && v[1].id == 2 && v[2].id == 3, "ids in order");
    ok(n == 3 && strcmp(v[1].raft_address, "127.0.0.1:7002") == 0 &&
           strcmp(v[1].rpc_address, "127.0.0.1:8002") == 0,
       "raft and rpc addresses split at '/'");
    free(v);

    is_int(parse("7=meta-a.example:7001/meta-a.example:8001", &v, &n, &err), 0,
           "one peer with host names");
    ok(n == 1 && v[0].id == 7 && strcmp(v[0].raft_address, "meta-a.example:7001") == 0 &&
           strcmp(v[0].rpc_address, "meta-a.example:8001") == 0,
       "host names kept as written");
    free(v);

    is_int(parse(" 1=10.0.0.1:7001/10.0.0.1:8001 ,\t2=10.0.0.2:7001/10.0.0.2:8001\t, "
                 "3=10.0.0.3:7001/10.0.0.3:8001 ",
                 &v, &n, &err),
           0, "spaces and tabs around entries are tolerated");
    ok(n == 3 && v[0].id == 1 && strcmp(v[0].raft_address, "10.0.0.1:7001") == 0 &&
           strcmp(v[1].raft_address, "10.0.0.2:7001") == 0 &&
           strcmp(v[2].rpc_address, "10.0.0.3:8001") == 0,
       "and trimmed from the addresses");
    free(v);

    is_int(parse("100=127.0.0.1:1/127.0.0.1:65535", &v, &n, &err), 0, "ports 1 and 65535");
    ok(n == 1 && v[0].id == 100, "id 100");
    free(v);

    is_int(parse("", &v, &n, &err), 0, "empty string: no peers, no error");
    ok(v == NULL && n == 0, "empty string: NULL list, count 0");
    is_int(parse(NULL, &v, &n, &err), 0, "NULL: no peers, no error");
    ok(v == NULL && n == 0, "NULL: NULL list, count 0");
}

static void test_peers_invalid(void)
{
    refused("1=127.0.0.1:7001/127.0.0.1:8001,1=127.0.0.1:7002/127.0.0.1:8002",
            "entries 1 and 2 have the same id", NULL, "duplicate id");
    refused("1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7001/127.0.0.1:8002",
            "entries 1 and 2 have the same raft address", NULL, "duplicate raft address");
    refused("1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002/127.0.0.1:8001",
            "entries 1 and 2 have the same rpc address", NULL, "duplicate rpc address");
    refused("1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002/127.0.0.1:8002,"
            "3=127.0.0.1:7003/127.0.0.1:8001",
            "entries 1 and 3 have the same rpc address", NULL, "duplicate of a non-adjacent entry");

    refused("1=127.0.0.1:7001", "peers: entry 1", "is not ID=RAFTHOST:PORT/RPCHOST:PORT",
            "missing '/'");
    refused("127.0.0.1:7001/127.0.0.1:8001", "peers: entry 1", "is not ID=RAFTHOST:PORT",
            "missing '='");
    refused("1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002", "peers: entry 2",
            "'2=127.0.0.1:7002' is not ID=", "missing '/' in the second entry (named)");

    refused("0=127.0.0.1:7001/127.0.0.1:8001", "'0' is not a replica id (1 or more)", NULL,
            "id 0");
    refused("x=127.0.0.1:7001/127.0.0.1:8001", "'x' is not a replica id", NULL, "id not a number");
    refused("-1=127.0.0.1:7001/127.0.0.1:8001", "'-1' is not a replica id", NULL, "negative id");
    refused("1a=127.0.0.1:7001/127.0.0.1:8001", "'1a' is not a replica id", NULL,
            "id with trailing junk");
    refused("=127.0.0.1:7001/127.0.0.1:8001", "'' is not a replica id", NULL, "empty id");
    refused("18446744073709551616=127.0.0.1:7001/127.0.0.1:8001", "is not a replica id", NULL,
            "id beyond 64 bits");

    refused("1=127.0.0.1:0/127.0.0.1:8001", "replica 1: bad raft address '127.0.0.1:0'", NULL,
            "raft port 0");
    refused("1=127.0.0.1:7001/127.0.0.1:70000", "replica 1: bad rpc address '127.0.0.1:70000'",
            NULL, "rpc port above 65535");
    refused("1=127.0.0.1:abc/127.0.0.1:8001", "bad raft address", NULL, "port not a number");
    refused("1=127.0.0.1/127.0.0.1:8001", "bad raft address '127.0.0.1'", NULL, "no port");
    refused("1=127.0.0.1:7001/127.0.0.1:", "bad rpc address", NULL, "empty port");
    refused("1=:7001/127.0.0.1:8001", "bad raft address", NULL, "no host");
    refused("1=300.1.1.1:7001/127.0.0.1:8001", "bad raft address '300.1.1.1:7001'", NULL,
            "not an IPv4 address");

    refused("1=127.0.0.1:7001/127.0.0.1:8001,,2=127.0.0.1:7002/127.0.0.1:8002",
            "peers: entry 2: empty entry", NULL, "empty entry between commas");
    refused("1=127.0.0.1:7001/127.0.0.1:8001,", "peers: entry 2: empty entry", NULL,
            "trailing comma");
    refused(" , ", "peers: entry 1: empty entry", NULL, "only blanks and a comma");

    char longer[1200];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    memcpy(longer, "1=", 2);
    refused(longer, "peers: entry 1: entry too long", NULL, "entry too long");
}

/* ---- meta_config_finish ---------------------------------------------------------------- */

/* Builds cfg as the daemon does, from the base keys of replica 1 (id, addresses, data-dir)
 * plus NULL-terminated key/value pairs (which may override the base), then runs
 * meta_config_finish. Returns the first failing step's code, with err set. cfg is left for
 * the caller to inspect and meta_config_free. */
static int build(struct meta_config *cfg, struct cmn_err *err, ...)
{
    memset(cfg, 0, sizeof(*cfg));
    cmn_err_clear(err);
    int rc = cmn_conf_defaults(meta_conf_table, cfg, err);
    static const char *const base[] = {"id", "1", "raft-address", RAFT1, "rpc-address", RPC1,
                                       "data-dir", "/var/lib/lode-meta", NULL};
    for (size_t i = 0; rc == 0 && base[i]; i += 2)
        rc = cmn_conf_set(meta_conf_table, cfg, base[i], base[i + 1], err);
    va_list ap;
    va_start(ap, err);
    const char *key;
    while (rc == 0 && (key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        rc = cmn_conf_set(meta_conf_table, cfg, key, value, err);
    }
    va_end(ap);
    if (rc == 0)
        rc = cmn_conf_check_required(meta_conf_table, cfg, err);
    if (rc == 0)
        rc = meta_config_finish(cfg, err);
    return rc;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        tap_bail("write %s: %s", path, strerror(errno));
    close(fd);
}

static void test_table(void)
{
    struct meta_config cfg;
    struct cmn_err err;
    memset(&cfg, 0, sizeof(cfg));
    cmn_err_clear(&err);
    is_int(cmn_conf_defaults(meta_conf_table, &cfg, &err), 0, "table defaults apply");
    ok(cfg.election_timeout_ms == 600 && cfg.heartbeat_timeout_ms == 100 && !cfg.join &&
           cfg.max_frame_size == 16u << 20 && !cfg.peers && !cfg.cluster_secret,
       "defaults: 600ms election, 100ms heartbeat, no join, 16MiB frames, no peers or secret");
    is_int(cmn_conf_check_required(meta_conf_table, &cfg, &err), LODE_ECONFIG,
           "required keys are checked");
    ok(contains(err.msg, "missing required key 'id'"), "the first missing key is named (%s)",
       err.msg);
    is_int(cmn_conf_set(meta_conf_table, &cfg, "id", "0", &err), LODE_ECONFIG,
           "id 0 refused by the table");
    is_int(cmn_conf_set(meta_conf_table, &cfg, "join", "yes", &err), 0, "join = yes");
    ok(cfg.join, "join set");
    meta_config_free(&cfg);
}

static void test_finish_valid(void)
{
    struct meta_config cfg;
    struct cmn_err err;

    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret", SECRET20, NULL), 0,
           "three peers and an inline secret");
    ok(cfg.secret_len == 20 && memcmp(cfg.secret, SECRET20, 20) == 0,
       "secret taken from cluster-secret");
    is_int(cfg.n_peers, 3, "peers parsed into the config");
    const struct meta_peer *self = meta_config_peer(&cfg, 1);
    ok(self && strcmp(self->raft_address, RAFT1) == 0 && strcmp(self->rpc_address, RPC1) == 0,
       "meta_config_peer finds this replica");
    ok(meta_config_peer(&cfg, 3) != NULL && meta_config_peer(&cfg, 4) == NULL,
       "meta_config_peer: listed ids found, others not");
    is_int(meta_config_finish(&cfg, &err), 0, "finishing twice is harmless");
    ok(cfg.n_peers == 3 && cfg.secret_len == 20, "and gives the same result");

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cmn_conf_dump(meta_conf_table, &cfg, f);
    fclose(f);
    ok(contains(text, "cluster-secret") && !contains(text, SECRET20),
       "the configuration dump hides the secret");
    free(text);
    meta_config_free(&cfg);
    ok(cfg.secret == NULL && cfg.secret_len == 0 && cfg.peer_list == NULL &&
           cfg.cluster_secret == NULL,
       "meta_config_free releases the secret, the peers and the table strings");

    is_int(build(&cfg, &err, "peers", "1=" RAFT1 "/" RPC1, "cluster-secret",
                 "0123456789abcdef", NULL),
           0, "a single-replica group; a secret of exactly 16 bytes");
    ok(cfg.n_peers == 1 && cfg.secret_len == 16, "one peer, 16-byte secret");
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "join", "true", "cluster-secret", SECRET20, NULL), 0,
           "join = true without peers");
    ok(cfg.n_peers == 0 && cfg.peer_list == NULL, "no peers");
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "join", "true", "peers",
                 "2=127.0.0.1:7002/127.0.0.1:8002,3=127.0.0.1:7003/127.0.0.1:8003",
                 "cluster-secret", SECRET20, NULL),
           0, "join = true with peers that do not list this replica");
    ok(cfg.n_peers == 2 && meta_config_peer(&cfg, 1) == NULL, "peers kept for their addresses");
    meta_config_free(&cfg);
}

static void test_secret_file(void)
{
    struct meta_config cfg;
    struct cmn_err err;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/secret", dir);

    write_file(path, SECRET20, 20);
    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret-file", path, NULL), 0,
           "secret file without a trailing newline");
    ok(cfg.secret_len == 20 && memcmp(cfg.secret, SECRET20, 20) == 0, "file read whole");
    meta_config_free(&cfg);

    write_file(path, SECRET20 "\n", 21);
    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret-file", path, NULL), 0,
           "secret file with a trailing newline");
    ok(cfg.secret_len == 20 && memcmp(cfg.secret, SECRET20, 20) == 0,
       "the trailing newline is not part of the secret");
    meta_config_free(&cfg);

    write_file(path, SECRET20 "\r\n", 22);
    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret-file", path, NULL), 0,
           "secret file with CRLF");
    ok(cfg.secret_len == 20 && memcmp(cfg.secret, SECRET20, 20) == 0, "CRLF dropped too");
    meta_config_free(&cfg);

    write_file(path, "0123456789\nabcdef\n", 18);
    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret-file", path, NULL), 0,
           "secret file with an inner newline");
    ok(cfg.secret_len == 17 && memcmp(cfg.secret, "0123456789\nabcdef", 17) == 0,
       "only the last newline is dropped");
    meta_config_free(&cfg);

    write_file(path, "0123456789abcde\n", 16);
    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret-file", path, NULL), LODE_ECONFIG,
           "15-byte secret plus newline in a file: too short");
    ok(contains(err.msg, "the cluster secret is 15 bytes; it must be at least 16"),
       "message gives the length and the minimum (%s)", err.msg);
    meta_config_free(&cfg);

    write_file(path, "", 0);
    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret-file", path, NULL), LODE_ECONFIG,
           "empty secret file");
    ok(contains(err.msg, "is 0 bytes"), "message (%s)", err.msg);
    meta_config_free(&cfg);

    char *big = malloc(5000);
    memset(big, 'k', 5000);
    write_file(path, big, 5000);
    free(big);
    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret-file", path, NULL), LODE_ECONFIG,
           "oversized secret file");
    ok(contains(err.msg, "cluster-secret-file") && contains(err.msg, "larger than 4096 bytes"),
       "message (%s)", err.msg);
    meta_config_free(&cfg);
    unlink(path);

    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof(missing), "%s/no-such-secret", dir);
    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret-file", missing, NULL), -ENOENT,
           "missing secret file: -ENOENT");
    ok(contains(err.msg, "cluster-secret-file") && contains(err.msg, missing),
       "message names the key and the path (%s)", err.msg);
    meta_config_free(&cfg);
}

static void test_finish_invalid(void)
{
    struct meta_config cfg;
    struct cmn_err err;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/secret", dir);
    write_file(path, SECRET20, 20);

    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret", SECRET20, "cluster-secret-file",
                 path, NULL),
           LODE_ECONFIG, "both cluster-secret and cluster-secret-file");
    ok(contains(err.msg, "set only one of cluster-secret and cluster-secret-file"),
       "message (%s)", err.msg);
    ok(cfg.secret == NULL, "no secret loaded");
    meta_config_free(&cfg);
    unlink(path);

    is_int(build(&cfg, &err, "peers", PEERS3, NULL), LODE_ECONFIG, "no secret at all");
    ok(contains(err.msg, "set cluster-secret-file (or cluster-secret)"), "message (%s)", err.msg);
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret", "short-secret-15", NULL),
           LODE_ECONFIG, "15-byte inline secret");
    ok(contains(err.msg, "the cluster secret is 15 bytes; it must be at least 16"),
       "message (%s)", err.msg);
    ok(!contains(err.msg, "short-secret-15"), "the message does not show the secret");
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "peers",
                 "2=127.0.0.1:7002/127.0.0.1:8002,3=127.0.0.1:7003/127.0.0.1:8003",
                 "cluster-secret", SECRET20, NULL),
           LODE_ECONFIG, "peers without this replica");
    ok(contains(err.msg, "peers does not list this replica (id 1)") &&
           contains(err.msg, "add 1=" RAFT1 "/" RPC1) && contains(err.msg, "join = true"),
       "message names the missing entry and join (%s)", err.msg);
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "cluster-secret", SECRET20, NULL), LODE_ECONFIG,
           "no peers and join = false");
    ok(contains(err.msg, "peers is required unless join = true") &&
           contains(err.msg, "peers = 1=" RAFT1 "/" RPC1),
       "message shows a single-replica peers line (%s)", err.msg);
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "peers", "1=127.0.0.1:7101/127.0.0.1:8101", "cluster-secret",
                 SECRET20, NULL),
           LODE_ECONFIG, "peers lists this replica with other addresses");
    ok(contains(err.msg, "peers lists replica 1 as 127.0.0.1:7101/127.0.0.1:8101") &&
           contains(err.msg, "say " RAFT1 "/" RPC1),
       "message shows both (%s)", err.msg);
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "join", "true", "peers", "1=127.0.0.1:7101/127.0.0.1:8101",
                 "cluster-secret", SECRET20, NULL),
           LODE_ECONFIG, "the same with join = true");
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "peers", "1=" RAFT1 "/" RPC1 ",1=127.0.0.1:7002/127.0.0.1:8002",
                 "cluster-secret", SECRET20, NULL),
           LODE_ECONFIG, "a bad peers list fails finish");
    ok(contains(err.msg, "peers: entries 1 and 2 have the same id"), "message (%s)", err.msg);
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret", SECRET20, "heartbeat-timeout",
                 "600ms", NULL),
           LODE_ECONFIG, "heartbeat-timeout equal to election-timeout");
    ok(contains(err.msg, "heartbeat-timeout (600ms) must be below election-timeout (600ms)"),
       "message (%s)", err.msg);
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "peers", PEERS3, "cluster-secret", SECRET20, "node-suspect-after",
                 "30s", NULL),
           LODE_ECONFIG, "node-suspect-after not below node-down-after");
    ok(contains(err.msg, "node-suspect-after must be below node-down-after"), "message (%s)",
       err.msg);
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "rpc-address", RAFT1, "peers", "1=" RAFT1 "/" RAFT1,
                 "cluster-secret", SECRET20, NULL),
           LODE_ECONFIG, "raft-address equal to rpc-address");
    ok(contains(err.msg, "raft-address and rpc-address must differ (" RAFT1 ")"),
       "message (%s)", err.msg);
    meta_config_free(&cfg);

    is_int(build(&cfg, &err, "data-dir", "", "peers", PEERS3, "cluster-secret", SECRET20, NULL),
           LODE_ECONFIG, "empty data-dir");
    ok(contains(err.msg, "data-dir is empty"), "message (%s)", err.msg);
    meta_config_free(&cfg);
}

int main(void)
{
    const char *base = getenv("TEST_TMPDIR");
    if (base && *base)
        mkdir(base, 0755);
    snprintf(dir, sizeof(dir), "%s/test_config.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp %s: %s", dir, strerror(errno));

    test_peers_valid();
    test_peers_invalid();
    test_table();
    test_finish_valid();
    test_secret_file();
    test_finish_invalid();

    rmdir(dir);
    return tap_done();
}
