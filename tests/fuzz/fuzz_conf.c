/* Fuzz target: the configuration file parser (common/conf.c) over a table with every type.
 * Any input must give 0 or a clean error with a message, never a crash or a leak. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/conf.h"
#include "tests/fuzz/fuzz.h"

struct fz_cfg {
    char *name;
    int64_t count;
    bool flag;
    uint64_t size;
    uint64_t timeout;
    char *addr;
    int level;
    char *secret;
};

static const struct cmn_conf_opt table[] = {
    {"name", CMN_CONF_STR, offsetof(struct fz_cfg, name), "x", "a string", 0, 0, 0},
    {"count", CMN_CONF_INT, offsetof(struct fz_cfg, count), "3", "an int", 0, 1, 100},
    {"flag", CMN_CONF_BOOL, offsetof(struct fz_cfg, flag), "false", "a bool", 0, 0, 0},
    {"size", CMN_CONF_SIZE, offsetof(struct fz_cfg, size), "1MiB", "a size", 0, 0, 0},
    {"timeout", CMN_CONF_DURATION, offsetof(struct fz_cfg, timeout), "1s", "a duration", 0, 0, 0},
    {"addr", CMN_CONF_ADDR, offsetof(struct fz_cfg, addr), NULL, "an address", 0, 0, 0},
    {"log-level", CMN_CONF_LOG_LEVEL, offsetof(struct fz_cfg, level), "info", "a level", 0, 0, 0},
    {"secret", CMN_CONF_STR, offsetof(struct fz_cfg, secret), NULL, "a secret", CMN_CONF_SENSITIVE, 0, 0},
    {0},
};

static const char seed1[] = "# sample\nname = \"hello world\"\ncount = 42\nflag = yes\n"
                            "size = 16MiB\ntimeout = 250ms\naddr = 127.0.0.1:7001\n"
                            "log-level = debug\nsecret = s3cr3t\n";
static const char seed2[] = "count=100\n\n   flag=off # trailing comment\naddr = localhost:1\n";
static const struct fuzz_seed seeds[] = {
    {(const uint8_t *)seed1, sizeof(seed1) - 1},
    {(const uint8_t *)seed2, sizeof(seed2) - 1},
};

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = sizeof(seeds) / sizeof(seeds[0]);
    return seeds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0)
        fd = memfd_create("fuzz-conf", 0);
    if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct fz_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    struct cmn_err err;
    cmn_err_clear(&err);
    if (cmn_conf_defaults(table, &cfg, &err) == 0) {
        int rc = cmn_conf_load_file(table, &cfg, path, &err);
        /* A refusal must say why. */
        if (rc != 0 && err.msg[0] == '\0')
            __builtin_trap();
    }
    cmn_conf_free(table, &cfg);
    return 0;
}
