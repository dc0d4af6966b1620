/* A small TAP (Test Anything Protocol) emitter for Automake's TAP driver.
 *
 *   int main(void) {
 *       ok(1 + 1 == 2, "addition");
 *       is_int(f(), 0, "f succeeds");
 *       return tap_done();       // prints the plan, returns non-zero if anything failed
 *   }
 *
 * Tests without a prior plan print "1..N" at the end. tap_skip_all() skips a whole
 * program with a reason (e.g. no RDMA device). Header-only; one test program per file.
 */
#ifndef LODE_TESTS_TAP_H
#define LODE_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count_;
static int tap_failed_;

__attribute__((format(printf, 4, 5), unused)) static int tap_ok_(int pass, const char *file,
                                                                 int line, const char *fmt, ...)
{
    va_list ap;
    tap_count_++;
    printf("%sok %d - ", pass ? "" : "not ", tap_count_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!pass) {
        tap_failed_++;
        printf("#   Failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return pass;
}

#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                                           \
    do {                                                                                  \
        long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);                  \
        if (!tap_ok_(tap_g_ == tap_w_, __FILE__, __LINE__, __VA_ARGS__))                  \
            printf("#   got %lld, want %lld\n", tap_g_, tap_w_);                          \
    } while (0)

#define is_str(got, want, ...)                                                           \
    do {                                                                                  \
        const char *tap_g_ = (got), *tap_w_ = (want);                                     \
        int tap_p_ = tap_g_ && tap_w_ && strcmp(tap_g_, tap_w_) == 0;                     \
        if (!tap_ok_(tap_p_, __FILE__, __LINE__, __VA_ARGS__))                            \
            printf("#   got '%s', want '%s'\n", tap_g_ ? tap_g_ : "(null)",               \
                   tap_w_ ? tap_w_ : "(null)");                                           \
    } while (0)

__attribute__((format(printf, 1, 2), unused)) static void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Aborts the program with a failed test: for setup steps without which nothing else can run. */
#define tap_bail(...)                                                                    \
    do {                                                                                  \
        printf("Bail out! ");                                                             \
        printf(__VA_ARGS__);                                                              \
        printf("\n");                                                                     \
        fflush(stdout);                                                                   \
        exit(99);                                                                         \
    } while (0)

__attribute__((unused)) static void tap_skip_all(const char *reason)
{
    printf("1..0 # SKIP %s\n", reason);
    fflush(stdout);
    exit(0);
}

__attribute__((unused)) static int tap_done(void)
{
    printf("1..%d\n", tap_count_);
    if (tap_failed_)
        printf("# %d of %d tests failed\n", tap_failed_, tap_count_);
    fflush(stdout);
    return tap_failed_ ? 1 : 0;
}

#endif
