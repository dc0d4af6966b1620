#include "common/clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static bool fake_on;
static int64_t fake_now_ms;
static uint64_t fake_mono_ns;

int64_t cmn_now_ms(void)
{
    if (fake_on)
        return fake_now_ms;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t cmn_mono_ns(void)
{
    if (fake_on)
        return fake_mono_ns;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cmn_mono_ms(void)
{
    return cmn_mono_ns() / 1000000u;
}

void cmn_clock_fake_set(int64_t now_ms, uint64_t mono_ns)
{
    fake_on = true;
    fake_now_ms = now_ms;
    fake_mono_ns = mono_ns;
}

void cmn_clock_fake_advance_ms(uint64_t ms)
{
    fake_now_ms += (int64_t)ms;
    fake_mono_ns += ms * 1000000u;
}

void cmn_clock_fake_clear(void)
{
    fake_on = false;
}

void cmn_time_format_iso(int64_t ms, char *out, unsigned long size)
{
    if (!out || size == 0)
        return;
    /* Floor division so times before the epoch still print a valid 000..999 fraction. */
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, size, "?");
        return;
    }
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/* Leading decimal digits of s into *v; *end points past them. Rejects empty digit runs,
 * signs and overflow (strtoull would accept "-1" and leading spaces). */
static int parse_digits(const char *s, uint64_t *v, const char **end)
{
    uint64_t acc = 0;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return -EINVAL;
        acc = acc * 10 + d;
    }
    *v = acc;
    *end = p;
    return 0;
}

struct unit {
    const char *name;
    uint64_t mult;
};

static int parse_with_units(const char *s, const struct unit *units, uint64_t *out)
{
    if (!s)
        return -EINVAL;
    uint64_t v;
    const char *rest;
    int rc = parse_digits(s, &v, &rest);
    if (rc)
        return rc;
    for (const struct unit *u = units; u->name; u++) {
        if (strcasecmp(rest, u->name) == 0) {
            if (u->mult && v > UINT64_MAX / u->mult)
                return -EINVAL;
            *out = v * u->mult;
            return 0;
        }
    }
    return -EINVAL;
}

int cmn_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        {"", 1},          {"ms", 1},          {"s", 1000}, {"m", 60 * 1000},
        {"h", 3600 * 1000}, {"d", 86400 * 1000}, {NULL, 0},
    };
    return parse_with_units(s, units, out);
}

int cmn_parse_size(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ull << 10},
        {"kib", 1ull << 10},
        {"m", 1ull << 20},
        {"mib", 1ull << 20},
        {"g", 1ull << 30},
        {"gib", 1ull << 30},
        {"t", 1ull << 40},
        {"tib", 1ull << 40},
        {NULL, 0},
    };
    return parse_with_units(s, units, out);
}
