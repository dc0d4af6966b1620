/* Clocks.
 *
 * Wall time (milliseconds since the Unix epoch) is for records and logs; monotonic time is
 * for timeouts and durations. Tests can replace both with a fake clock.
 */
#ifndef LODE_COMMON_CLOCK_H
#define LODE_COMMON_CLOCK_H

#include <stdint.h>

int64_t cmn_now_ms(void);        /* CLOCK_REALTIME in ms */
uint64_t cmn_mono_ns(void);      /* CLOCK_MONOTONIC in ns */
uint64_t cmn_mono_ms(void);

/* Test hook: while set, cmn_now_ms and cmn_mono_* return the fake values. Not thread-safe;
 * for single-threaded unit tests only. */
void cmn_clock_fake_set(int64_t now_ms, uint64_t mono_ns);
void cmn_clock_fake_advance_ms(uint64_t ms);
void cmn_clock_fake_clear(void);

/* Formats wall time as ISO 8601 UTC with milliseconds ("2026-11-24T06:30:00.123Z") into out
 * (at least 25 bytes). */
void cmn_time_format_iso(int64_t ms, char *out, unsigned long size);

/* Parses durations like "250ms", "3s", "2m", "1h" (a bare number is milliseconds) into ms.
 * Returns 0 or -EINVAL. */
int cmn_parse_duration_ms(const char *s, uint64_t *out);
/* Parses sizes like "4096", "64KiB", "16MiB", "4GiB", "1G" (binary multiples) into bytes.
 * Returns 0 or -EINVAL (also on overflow). */
int cmn_parse_size(const char *s, uint64_t *out);

#endif
