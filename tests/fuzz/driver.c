/* Standalone driver for libFuzzer-style targets, so every fuzz target also runs (briefly,
 * under ASan/UBSan) in `make check` without clang. A target defines
 *   int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
 * and may define seeds, valid inputs that the driver mutates (bit flips, byte sets,
 * truncations, insertions, splices), which reaches far deeper than random bytes alone:
 *   const struct fuzz_seed *fuzz_seeds(size_t *n);
 * Arguments: files to replay (a crash reproducer or a corpus). Without arguments, it runs
 * for LODE_FUZZ_SECONDS (default 2) with seed LODE_TEST_SEED (default: time). The same
 * sources link against libFuzzer with clang (-fsanitize=fuzzer) for long runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/fuzz/fuzz.h"
#include "tests/tap.h"

__attribute__((weak)) const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = 0;
    return NULL;
}

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: fast, reproducible from the printed seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
    unsigned rounds = 1 + (unsigned)(rng() % 8);
    for (unsigned r = 0; r < rounds; r++) {
        switch (rng() % 6) {
        case 0: /* flip a bit */
            if (len)
                buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
            break;
        case 1: /* set a byte to an interesting value */
            if (len) {
                static const uint8_t vals[] = {0, 1, 0x7f, 0x80, 0xff, '/', '\n', ':'};
                buf[rng() % len] = vals[rng() % sizeof(vals)];
            }
            break;
        case 2: /* truncate */
            if (len)
                len = rng() % len;
            break;
        case 3: /* insert random bytes */
            if (len < cap) {
                size_t at = len ? rng() % (len + 1) : 0, n = 1 + rng() % 16;
                if (n > cap - len)
                    n = cap - len;
                memmove(buf + at + n, buf + at, len - at);
                for (size_t i = 0; i < n; i++)
                    buf[at + i] = (uint8_t)rng();
                len += n;
            }
            break;
        case 4: /* overwrite 4 bytes with an extreme integer (length fields) */
            if (len >= 4) {
                size_t at = rng() % (len - 3);
                uint32_t v = (rng() & 1) ? 0xffffffffu : (uint32_t)rng();
                memcpy(buf + at, &v, 4);
            }
            break;
        default: /* duplicate a slice */
            if (len && len < cap) {
                size_t from = rng() % len, n = 1 + rng() % (len - from);
                if (n > cap - len)
                    n = cap - len;
                memmove(buf + len, buf + from, n);
                len += n;
            }
            break;
        }
    }
    return len;
}

static int replay(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *data = malloc(1 << 20);
    size_t n = fread(data, 1, 1 << 20, f);
    fclose(f);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            ok(replay(argv[i]) == 0, "replayed %s", argv[i]);
        return tap_done();
    }
    const char *s = getenv("LODE_FUZZ_SECONDS");
    double seconds = s ? atof(s) : 2.0;
    const char *seed_env = getenv("LODE_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    rng_state = seed ? seed : 1;
    diag("seed %llu (LODE_TEST_SEED replays), %.1f s", (unsigned long long)seed, seconds);

    size_t nseeds;
    const struct fuzz_seed *seeds = fuzz_seeds(&nseeds);
    enum { CAP = 1 << 16 };
    uint8_t *buf = malloc(CAP);
    unsigned long runs = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        size_t len;
        if (nseeds && rng() % 4 != 0) {
            const struct fuzz_seed *sd = &seeds[rng() % nseeds];
            len = sd->len < CAP ? sd->len : CAP;
            memcpy(buf, sd->data, len);
            len = mutate(buf, len, CAP);
        } else {
            len = rng() % 512;
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)rng();
        }
        LLVMFuzzerTestOneInput(buf, len);
        runs++;
        if ((runs & 255) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 >= seconds)
                break;
        }
    }
    /* Each seed must also pass unmutated: a target that rejects its own seeds is broken. */
    for (size_t i = 0; i < nseeds; i++)
        LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].len);
    free(buf);
    ok(runs > 0, "%lu inputs (%zu seeds) ran without a sanitizer report or crash", runs, nseeds);
    return tap_done();
}
