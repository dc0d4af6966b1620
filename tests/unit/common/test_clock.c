#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/tap.h"

static void check_duration(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    int rc = cmn_parse_duration_ms(s, &v);
    ok(rc == 0 && v == want, "duration '%s' = %llu ms (got rc %d, %llu)", s,
       (unsigned long long)want, rc, (unsigned long long)v);
}

static void check_size(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    int rc = cmn_parse_size(s, &v);
    ok(rc == 0 && v == want, "size '%s' = %llu (got rc %d, %llu)", s, (unsigned long long)want,
       rc, (unsigned long long)v);
}

int main(void)
{
    check_duration("250ms", 250);
    check_duration("3s", 3000);
    check_duration("2m", 120000);
    check_duration("1h", 3600000);
    check_duration("1d", 86400000);
    check_duration("1500", 1500);
    check_duration("0", 0);
    check_duration("10S", 10000);
    const char *bad_durations[] = {"", "ms", "-1s", "1.5s", "3 s", " 3s", "3sec", "3x",
                                   "99999999999999999999", "18446744073709551615h", "s3"};
    for (size_t i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++) {
        uint64_t v = 7;
        int rc = cmn_parse_duration_ms(bad_durations[i], &v);
        ok(rc == -EINVAL && v == 7, "bad duration '%s' rejected", bad_durations[i]);
    }
    uint64_t v = 7;
    is_int(cmn_parse_duration_ms(NULL, &v), -EINVAL, "NULL duration");

    check_size("4096", 4096);
    check_size("64KiB", 65536);
    check_size("16MiB", 16ull << 20);
    check_size("4GiB", 4ull << 30);
    check_size("1G", 1ull << 30);
    check_size("2k", 2048);
    check_size("1TiB", 1ull << 40);
    check_size("0", 0);
    check_size("18446744073709551615", 18446744073709551615ull);
    check_size("16777215TiB", 16777215ull << 40);
    const char *bad_sizes[] = {"", "KiB", "-4", "1.5G", "4 GiB", "4GB2", "4XiB",
                               "18446744073709551616", "16777216TiB", "99999999999G", "0x10"};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        v = 7;
        int rc = cmn_parse_size(bad_sizes[i], &v);
        ok(rc == -EINVAL && v == 7, "bad size '%s' rejected", bad_sizes[i]);
    }

    char iso[32];
    cmn_time_format_iso(1795501800123LL, iso, sizeof(iso));
    is_str(iso, "2026-11-24T06:30:00.123Z", "ISO format");
    cmn_time_format_iso(0, iso, sizeof(iso));
    is_str(iso, "1970-01-01T00:00:00.000Z", "epoch");
    cmn_time_format_iso(-1, iso, sizeof(iso));
    is_str(iso, "1969-12-31T23:59:59.999Z", "before the epoch");
    cmn_time_format_iso(951782400005LL, iso, sizeof(iso));
    is_str(iso, "2000-02-29T00:00:00.005Z", "leap day");
    cmn_time_format_iso(1795501800123LL, iso, 11);
    is_str(iso, "2026-11-24", "truncated to the buffer");

    int64_t w1 = cmn_now_ms();
    ok(w1 > 1700000000000LL, "wall clock is plausible");
    uint64_t m1 = cmn_mono_ns();
    usleep(20000);
    uint64_t m2 = cmn_mono_ns();
    ok(m2 - m1 >= 19000000ull, "monotonic clock advances (%llu ns)",
       (unsigned long long)(m2 - m1));
    ok(cmn_mono_ms() >= m2 / 1000000u, "mono_ms consistent with mono_ns");

    cmn_clock_fake_set(1000, 5000000ull);
    is_int(cmn_now_ms(), 1000, "fake wall clock");
    is_int(cmn_mono_ns(), 5000000, "fake monotonic ns");
    is_int(cmn_mono_ms(), 5, "fake monotonic ms");
    usleep(2000);
    is_int(cmn_now_ms(), 1000, "fake clock does not move by itself");
    cmn_clock_fake_advance_ms(250);
    is_int(cmn_now_ms(), 1250, "fake wall advanced");
    is_int(cmn_mono_ms(), 255, "fake monotonic advanced");
    cmn_clock_fake_clear();
    ok(cmn_now_ms() >= w1, "real clock back after clear");
    ok(cmn_mono_ns() >= m2, "real monotonic back after clear");
    return tap_done();
}
