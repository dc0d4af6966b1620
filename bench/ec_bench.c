/* bench/ec_bench: erasure-coding throughput of gateway/ec.c against memcpy in the same run.
 *
 * For each code (4+2, 8+3, 1+2 and 16+4 by default) and one chunk size (1 MiB):
 *   encode   k data chunks -> m parity chunks; GB/s counts the data bytes consumed
 *   decode   the worst case a degraded read meets: min(m, k) data chunks lost, rebuilt from
 *            the survivors with a prepared plan; GB/s counts the data bytes of the stripe
 *   plan     microseconds to build a reconstruction plan (matrix inversion + tables)
 *   memcpy   copying the stripe's data bytes once: the floor any coding pass is measured by
 * Stripes rotate through a 256 MiB pool, so data comes from memory as it would from the
 * network. Prints a markdown table.
 *
 * Usage: ec_bench [--chunk BYTES] [--mib-per-run N]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/ec.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *alloc_chunk(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, len) != 0) {
        fprintf(stderr, "ec_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)p)[i] = (uint8_t)(i * 2654435761u >> 13);
    return p;
}

struct result {
    double enc_gbs, dec_gbs, plan_us, copy_gbs;
};

/* Stripes are cycled through a pool larger than a CPU cache, so the numbers are those of
 * data coming from memory, not of one stripe kept hot. */
#define POOL_BYTES ((size_t)256 << 20)

static void run(unsigned k, unsigned m, size_t chunk, size_t bytes, struct result *r)
{
    struct cmn_err err;
    const struct gw_ec *ec = gw_ec_get(k, m, &err);
    if (!ec) {
        fprintf(stderr, "ec_bench: %s\n", err.msg);
        exit(1);
    }
    size_t n_pool = POOL_BYTES / (chunk * (k + m)) + 1;
    uint8_t *(*pool)[GW_EC_MAX_N] = calloc(n_pool, sizeof(*pool));
    uint8_t *copy = alloc_chunk(chunk * k);
    if (!pool) {
        fprintf(stderr, "ec_bench: out of memory\n");
        exit(1);
    }
    for (size_t p = 0; p < n_pool; p++)
        for (unsigned i = 0; i < k + m; i++)
            pool[p][i] = alloc_chunk(chunk);
    size_t stripes = bytes / (chunk * k) + 1;

    double t0 = now_s();
    for (size_t s = 0; s < stripes; s++) {
        uint8_t **c = pool[s % n_pool];
        gw_ec_encode(ec, chunk, (const uint8_t *const *)c, c + k);
    }
    double t1 = now_s();
    r->enc_gbs = (double)stripes * k * chunk / (t1 - t0) / 1e9;

    unsigned lost = m < k ? m : k;
    uint32_t want = (1u << lost) - 1, present = ((1u << (k + m)) - 1) & ~want;
    struct gw_ec_plan plan;
    int reps = 2000;
    t0 = now_s();
    for (int i = 0; i < reps; i++)
        gw_ec_plan_init(&plan, ec, present, want, NULL);
    t1 = now_s();
    r->plan_us = (t1 - t0) / reps * 1e6;

    r->dec_gbs = 0;
    if (lost > 0) {
        t0 = now_s();
        for (size_t s = 0; s < stripes; s++)
            gw_ec_plan_run(&plan, chunk, pool[s % n_pool]);
        t1 = now_s();
        r->dec_gbs = (double)stripes * k * chunk / (t1 - t0) / 1e9;
    }

    t0 = now_s();
    for (size_t s = 0; s < stripes; s++)
        for (unsigned j = 0; j < k; j++)
            memcpy(copy + j * chunk, pool[s % n_pool][j], chunk);
    t1 = now_s();
    r->copy_gbs = (double)stripes * k * chunk / (t1 - t0) / 1e9;

    for (size_t p = 0; p < n_pool; p++)
        for (unsigned i = 0; i < k + m; i++)
            free(pool[p][i]);
    free(pool);
    free(copy);
}

int main(int argc, char **argv)
{
    size_t chunk = 1u << 20, mib = 2048;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc)
            chunk = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--mib-per-run") == 0 && i + 1 < argc)
            mib = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: ec_bench [--chunk BYTES] [--mib-per-run N]\n");
            return 2;
        }
    }
    if (chunk == 0 || chunk > GW_EC_MAX_LEN || mib == 0) {
        fprintf(stderr, "ec_bench: invalid --chunk or --mib-per-run\n");
        return 2;
    }
    static const unsigned codes[][2] = {{4, 2}, {8, 3}, {1, 2}, {16, 4}};
    printf("## Erasure coding (gateway/ec.c, ISA-L)\n\n");
    printf("Chunk %zu bytes, about %zu MiB of data per measurement from a 256 MiB pool, one "
           "thread.\n\n", chunk, mib);
    printf("| code | encode GB/s | decode GB/s (lost) | plan us | memcpy GB/s | encode/memcpy |\n");
    printf("|---|---|---|---|---|---|\n");
    for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++) {
        unsigned k = codes[c][0], m = codes[c][1];
        struct result r;
        run(k, m, chunk, mib << 20, &r);
        printf("| %u+%u | %.2f | %.2f (%u) | %.1f | %.2f | %.2f |\n", k, m, r.enc_gbs, r.dec_gbs,
               m < k ? m : k, r.plan_us, r.copy_gbs, r.enc_gbs / r.copy_gbs);
    }
    return 0;
}
