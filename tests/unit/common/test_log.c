#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "tests/tap.h"

static char tmpdir[512];
static char logpath[600];

static void make_tmpdir(void)
{
    const char *base = getenv("TEST_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_log.XXXXXX", base);
    if (!mkdtemp(tmpdir))
        tap_bail("mkdtemp in %s: %s", base, strerror(errno));
    snprintf(logpath, sizeof(logpath), "%s/out.log", tmpdir);
}

/* Reads the whole log file (caller frees). */
static char *slurp(void)
{
    FILE *f = fopen(logpath, "r");
    if (!f)
        return strdup("");
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_levels(void)
{
    enum cmn_log_level l = CMN_LOG_OFF;
    is_int(cmn_log_parse_level("debug", &l), 0, "parse debug");
    is_int(l, CMN_LOG_DEBUG, "debug level");
    is_int(cmn_log_parse_level("INFO", &l), 0, "parse INFO (case-insensitive)");
    is_int(l, CMN_LOG_INFO, "info level");
    is_int(cmn_log_parse_level("warn", &l), 0, "parse warn");
    is_int(l, CMN_LOG_WARN, "warn level");
    l = CMN_LOG_DEBUG;
    is_int(cmn_log_parse_level("warning", &l), 0, "parse warning");
    is_int(l, CMN_LOG_WARN, "warning is warn");
    is_int(cmn_log_parse_level("error", &l), 0, "parse error");
    is_int(l, CMN_LOG_ERROR, "error level");
    is_int(cmn_log_parse_level("off", &l), 0, "parse off");
    is_int(l, CMN_LOG_OFF, "off level");
    l = CMN_LOG_INFO;
    is_int(cmn_log_parse_level("verbose", &l), -EINVAL, "unknown level rejected");
    is_int(cmn_log_parse_level("", &l), -EINVAL, "empty level rejected");
    is_int(cmn_log_parse_level(NULL, &l), -EINVAL, "NULL level rejected");
    is_int(l, CMN_LOG_INFO, "failed parse leaves output");
    for (int i = CMN_LOG_DEBUG; i <= CMN_LOG_OFF; i++) {
        enum cmn_log_level back;
        int rc = cmn_log_parse_level(cmn_log_level_name((enum cmn_log_level)i), &back);
        ok(rc == 0 && back == (enum cmn_log_level)i, "level name %s round-trips",
           cmn_log_level_name((enum cmn_log_level)i));
    }

    cmn_log_set_level(CMN_LOG_WARN);
    is_int(cmn_log_get_level(), CMN_LOG_WARN, "set/get level");
    ok(!cmn_log_enabled(CMN_LOG_INFO), "info disabled at warn");
    ok(cmn_log_enabled(CMN_LOG_WARN), "warn enabled at warn");
    ok(cmn_log_enabled(CMN_LOG_ERROR), "error enabled at warn");
    cmn_log_set_level(CMN_LOG_OFF);
    ok(!cmn_log_enabled(CMN_LOG_ERROR), "nothing enabled at off");

    setenv("LODE_LOG_LEVEL", "debug", 1);
    cmn_log_init("test", CMN_LOG_ERROR);
    is_int(cmn_log_get_level(), CMN_LOG_DEBUG, "LODE_LOG_LEVEL overrides init level");
    unsetenv("LODE_LOG_LEVEL");
    cmn_log_init("test", CMN_LOG_ERROR);
    is_int(cmn_log_get_level(), CMN_LOG_ERROR, "init level without environment");
}

static void test_output(void)
{
    cmn_log_init("/usr/sbin/lode-test", CMN_LOG_INFO);
    is_int(cmn_log_set_file(logpath), 0, "log to file");
    cmn_clock_fake_set(1795501800123LL, 5000000000ull); /* 2026-11-24T06:30:00.123Z */
    LOG_DEBUG("rpc", "hidden %d", 1);
    LOG_INFO("rpc 127.0.0.1:51514", "bad frame magic %#x", 0xabcu);
    LOG_WARN(NULL, "no context");
    LOG_ERROR("", "empty context");
    LOG_INFO("evil", "line1\nFAKE line2\r");
    cmn_log_set_level(CMN_LOG_ERROR);
    LOG_WARN("x", "filtered");
    cmn_log_set_level(CMN_LOG_INFO);
    errno = EPIPE;
    LOG_INFO("x", "errno kept");
    int saved = errno;
    cmn_clock_fake_clear();
    is_int(cmn_log_set_file(NULL), 0, "back to stderr");

    char *s = slurp();
    char expect[512];
    int pid = (int)getpid();
    snprintf(expect, sizeof(expect),
             "2026-11-24T06:30:00.123Z lode-test[%d] INFO rpc 127.0.0.1:51514: bad frame magic "
             "0xabc\n"
             "2026-11-24T06:30:00.123Z lode-test[%d] WARN no context\n"
             "2026-11-24T06:30:00.123Z lode-test[%d] ERROR empty context\n"
             "2026-11-24T06:30:00.123Z lode-test[%d] INFO evil: line1?FAKE line2?\n"
             "2026-11-24T06:30:00.123Z lode-test[%d] INFO x: errno kept\n",
             pid, pid, pid, pid, pid);
    is_str(s, expect, "exact line format, filtering, control characters replaced");
    is_int(saved, EPIPE, "logging preserves errno");
    free(s);

    /* Very long messages are cut to one line. */
    unlink(logpath);
    cmn_log_set_file(logpath);
    char *big = malloc(20000);
    memset(big, 'y', 19999);
    big[19999] = '\0';
    LOG_INFO("big", "%s", big);
    LOG_INFO("big", "after");
    cmn_log_set_file(NULL);
    free(big);
    s = slurp();
    is_int(count_lines(s), 2, "long message stays one line");
    ok(strlen(s) < 10000, "long message truncated");
    ok(strstr(s, "big: after\n") != NULL, "next line intact");
    free(s);

    is_int(cmn_log_set_file("/nonexistent-dir/x/y.log"), -ENOENT, "bad log path -> -ENOENT");
}

static void test_ratelimit(void)
{
    cmn_clock_fake_set(0, 1000ull * 1000000ull);
    struct cmn_log_ratelimit rl = CMN_LOG_RATELIMIT_INIT(1000, 3);
    uint32_t sup = 99;
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += cmn_log_ratelimit_ok(&rl, &sup);
    is_int(allowed, 3, "burst of 3 allowed in one window");
    is_int(rl.suppressed, 7, "7 suppressed counted");
    cmn_clock_fake_advance_ms(999);
    ok(!cmn_log_ratelimit_ok(&rl, &sup), "still suppressed inside the window");
    cmn_clock_fake_advance_ms(1);
    ok(cmn_log_ratelimit_ok(&rl, &sup), "allowed in the next window");
    is_int(sup, 8, "first line after a stretch reports 8 dropped");
    ok(cmn_log_ratelimit_ok(&rl, &sup), "second line allowed");
    is_int(sup, 0, "no drops reported on the second line");

    /* As it would be used at a call site, logging to a file. */
    unlink(logpath);
    cmn_log_init("rl", CMN_LOG_INFO);
    cmn_log_set_file(logpath);
    struct cmn_log_ratelimit site = CMN_LOG_RATELIMIT_INIT(1000, 2);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5; i++) {
            uint32_t dropped;
            if (cmn_log_ratelimit_ok(&site, &dropped))
                LOG_WARN("peer", "bad frame (%u suppressed)", dropped);
        }
        cmn_clock_fake_advance_ms(1500);
    }
    cmn_log_set_file(NULL);
    cmn_clock_fake_clear();
    char *s = slurp();
    is_int(count_lines(s), 4, "2 lines per window written");
    ok(strstr(s, "bad frame (3 suppressed)") != NULL, "suppressed count appears in the log");
    free(s);
}

int main(void)
{
    make_tmpdir();
    test_levels();
    test_output();
    test_ratelimit();
    unlink(logpath);
    rmdir(tmpdir);
    return tap_done();
}
