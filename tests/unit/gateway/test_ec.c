/* gateway/ec.c: encode and reconstruct against a GF(2^8) reference written here from the
 * definitions (polynomial x^8 + x^4 + x^3 + x^2 + 1 = 0x11d; Cauchy coefficient of parity
 * p for data j = 1 / ((k + p) xor j), as ISA-L's gf_gen_cauchy1_matrix documents it), and
 * every erasure pattern of up to m losses for several codes. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/ec.h"
#include "tests/tap.h"

/* ---- reference GF(2^8), bit by bit ---- */

static uint8_t ref_mul(uint8_t a, uint8_t b)
{
    unsigned acc = 0, x = a;
    for (; b; b >>= 1) {
        if (b & 1)
            acc ^= x;
        x <<= 1;
        if (x & 0x100)
            x ^= 0x11d;
    }
    return (uint8_t)acc;
}

static uint8_t ref_inv(uint8_t a)
{
    for (unsigned b = 1; b < 256; b++)
        if (ref_mul(a, (uint8_t)b) == 1)
            return (uint8_t)b;
    return 0;
}

static uint8_t ref_coef(unsigned k, unsigned p, unsigned j)
{
    return k == 1 ? 1 : ref_inv((uint8_t)((k + p) ^ j));
}

/* parity p = XOR over j of coef(p, j) * data j, byte by byte */
static void ref_encode(unsigned k, unsigned m, size_t len, uint8_t *const *data,
                       uint8_t *const *parity)
{
    for (unsigned p = 0; p < m; p++)
        for (size_t b = 0; b < len; b++) {
            uint8_t acc = 0;
            for (unsigned j = 0; j < k; j++)
                acc ^= ref_mul(ref_coef(k, p, j), data[j][b]);
            parity[p][b] = acc;
        }
}

/* ---- deterministic randomness ---- */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

/* A stripe of n chunks of len bytes each, plus a pristine copy to compare against. */
struct stripe {
    unsigned k, m;
    size_t len;
    uint8_t *chunk[GW_EC_MAX_N];
    uint8_t *orig[GW_EC_MAX_N];
};

static void stripe_make(struct stripe *s, const struct gw_ec *ec, size_t len, size_t skew)
{
    s->k = gw_ec_k(ec);
    s->m = gw_ec_m(ec);
    s->len = len;
    for (unsigned i = 0; i < s->k + s->m; i++) {
        /* `skew` shifts the buffers off any alignment. */
        s->chunk[i] = (uint8_t *)malloc(len + skew + 1) + skew;
        s->orig[i] = malloc(len + 1);
    }
    for (unsigned j = 0; j < s->k; j++)
        fill(s->chunk[j], len);
    if (gw_ec_encode(ec, len, (const uint8_t *const *)s->chunk, s->chunk + s->k) != 0)
        tap_bail("encode failed");
    for (unsigned i = 0; i < s->k + s->m; i++)
        memcpy(s->orig[i], s->chunk[i], len);
}

static void stripe_free(struct stripe *s, size_t skew)
{
    for (unsigned i = 0; i < s->k + s->m; i++) {
        free(s->chunk[i] - skew);
        free(s->orig[i]);
    }
}

static bool stripe_intact(const struct stripe *s)
{
    for (unsigned i = 0; i < s->k + s->m; i++)
        if (memcmp(s->chunk[i], s->orig[i], s->len) != 0)
            return false;
    return true;
}

/* ---- tests ---- */

static void test_reference_field(void)
{
    /* Known facts of this field: x * x^7 = x^8 = x^4+x^3+x^2+1; 0x8e is the inverse of x
     * (0x8e * 2 = 0x11c, minus the polynomial 0x11d = 1); x generates all 255 units. */
    ok(ref_mul(2, 0x80) == 0x1d && ref_mul(2, 0x8e) == 1 && ref_inv(2) == 0x8e,
       "reference GF(2^8) multiply and inverse");
    unsigned order = 0;
    uint8_t x = 1;
    do {
        x = ref_mul(x, 2);
        order++;
    } while (x != 1 && order < 300);
    is_int(order, 255, "x generates the multiplicative group");
}

static void test_limits(void)
{
    struct gw_ec *ec;
    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(gw_ec_new(0, 2, &ec, &err), -EINVAL, "k = 0 refused");
    ok(ec == NULL && strstr(err.msg, "0+2") != NULL, "with a message naming the code: %s",
       err.msg);
    is_int(gw_ec_new(GW_EC_MAX_K + 1, 0, &ec, NULL), -EINVAL, "k = 17 refused");
    is_int(gw_ec_new(4, GW_EC_MAX_M + 1, &ec, NULL), -EINVAL, "m = 9 refused");
    ok(gw_ec_get(0, 0, NULL) == NULL, "shared context for 0+0 refused");
    is_int(gw_ec_new(GW_EC_MAX_K, GW_EC_MAX_M, &ec, NULL), 0, "16+8 accepted");
    gw_ec_free(ec);
    is_int(gw_ec_new(1, 0, &ec, NULL), 0, "1+0 accepted");
    uint8_t d[4] = {1, 2, 3, 4};
    const uint8_t *dp[1] = {d};
    is_int(gw_ec_encode(ec, 4, dp, NULL), 0, "m = 0 encodes nothing");
    gw_ec_free(ec);
}

static void test_coefficients(void)
{
    static const unsigned codes[][2] = {{1, 3}, {2, 1}, {4, 2}, {8, 3}, {10, 4}, {16, 8}};
    for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++) {
        unsigned k = codes[c][0], m = codes[c][1], bad = 0;
        const struct gw_ec *ec = gw_ec_get(k, m, NULL);
        for (unsigned p = 0; p < m; p++)
            for (unsigned j = 0; j < k; j++)
                bad += gw_ec_coef(ec, p, j) != ref_coef(k, p, j);
        ok(ec && bad == 0, "%u+%u generator is the Cauchy matrix 1/((k+p) xor j)%s", k, m,
           k == 1 ? " (all ones: copies)" : "");
    }
}

static void test_fixed_vector(void)
{
    /* 3+2 over 7 bytes: parity from the reference field, then the two parity bytes of
     * position 0 by hand from the coefficients 1/(3^0)=1/3, 1/(3^1)=1/2, 1/(3^2)=1/1 ...
     * checked through the same reference (independent of ISA-L). */
    uint8_t d0[7] = {0x00, 0x01, 0x02, 0x80, 0xff, 0x55, 0xaa};
    uint8_t d1[7] = {0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70};
    uint8_t d2[7] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45};
    uint8_t p0[7], p1[7], r0[7], r1[7];
    uint8_t *data[3] = {d0, d1, d2}, *par[2] = {p0, p1}, *ref[2] = {r0, r1};
    const struct gw_ec *ec = gw_ec_get(3, 2, NULL);
    is_int(gw_ec_encode(ec, 7, (const uint8_t *const *)data, par), 0, "3+2 encode of 7 bytes");
    ref_encode(3, 2, 7, data, ref);
    ok(memcmp(p0, r0, 7) == 0 && memcmp(p1, r1, 7) == 0,
       "3+2 parity equals the reference computation");
    /* Position 0 spelled out: p0 = inv(3)*d0 + inv(2)*d1 + inv(1)*d2. */
    uint8_t want = ref_mul(ref_inv(3), 0x00) ^ ref_mul(ref_inv(2), 0x10) ^ 0xde;
    is_int(p0[0], want, "first parity byte by the formula");
}

static void test_replication(void)
{
    for (unsigned m = 1; m <= GW_EC_MAX_M; m++) {
        const struct gw_ec *ec = gw_ec_get(1, m, NULL);
        struct stripe s;
        stripe_make(&s, ec, 1000, 0);
        bool same = true;
        for (unsigned p = 0; p < m; p++)
            same = same && memcmp(s.chunk[1 + p], s.chunk[0], s.len) == 0;
        ok(same, "1+%u: every parity chunk is a copy of the data", m);
        /* Lose the data chunk and all copies but the last: the last copy restores them. */
        uint32_t want = ((1u << (1 + m)) - 1) & ~(1u << m);
        for (unsigned i = 0; i < m; i++)
            memset(s.chunk[i], 0xee, s.len);
        int rc = gw_ec_reconstruct(ec, s.len, 1u << m, want, s.chunk, NULL);
        ok(rc == 0 && stripe_intact(&s), "1+%u: the last copy restores the others", m);
        stripe_free(&s, 0);
    }
}

/* Calls fn for every subset of {0..n-1} with at most `max` members. */
static void for_each_subset(unsigned n, unsigned max, uint32_t set, unsigned from,
                            unsigned size, void (*fn)(uint32_t, void *), void *arg)
{
    fn(set, arg);
    if (size == max)
        return;
    for (unsigned i = from; i < n; i++)
        for_each_subset(n, max, set | (1u << i), i + 1, size + 1, fn, arg);
}

struct pattern_run {
    const struct gw_ec *ec;
    struct stripe *s;
    unsigned patterns, failures;
    uint32_t first_bad;
};

static void try_pattern(uint32_t lost, void *arg)
{
    struct pattern_run *r = arg;
    struct stripe *s = r->s;
    unsigned n = s->k + s->m;
    if (lost == 0)
        return;
    for (unsigned i = 0; i < n; i++)
        if (lost & (1u << i))
            memset(s->chunk[i], (int)(0x5a ^ i), s->len);
    uint32_t present = ((1u << n) - 1) & ~lost;
    struct gw_ec_plan plan;
    int rc = gw_ec_plan_init(&plan, r->ec, present, lost, NULL);
    bool good = rc == 0 && gw_ec_plan_run(&plan, s->len, s->chunk) == 0 && stripe_intact(s);
    /* The plan must read exactly k chunks, all of them present, data first. */
    uint32_t src = good ? gw_ec_plan_sources(&plan) : 0;
    good = good && (src & ~present) == 0 && (unsigned)__builtin_popcount(src) == s->k;
    r->patterns++;
    if (!good && r->failures++ == 0)
        r->first_bad = lost;
    for (unsigned i = 0; i < n; i++)
        memcpy(s->chunk[i], s->orig[i], s->len);
}

static void test_all_patterns(void)
{
    static const unsigned codes[][2] = {{4, 2}, {8, 3}, {1, 2}, {2, 1}, {6, 4}, {12, 4},
                                        {3, 8}, {16, 2}};
    for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++) {
        unsigned k = codes[c][0], m = codes[c][1];
        const struct gw_ec *ec = gw_ec_get(k, m, NULL);
        struct stripe s;
        stripe_make(&s, ec, 333, 3);
        struct pattern_run r = {ec, &s, 0, 0, 0};
        for_each_subset(k + m, m, 0, 0, 0, try_pattern, &r);
        ok(r.patterns > 0 && r.failures == 0,
           "%u+%u: all %u erasure patterns of up to %u chunks reconstruct byte for byte", k,
           m, r.patterns, m);
        if (r.failures)
            diag("%u failures, first lost set 0x%x", r.failures, r.first_bad);
        stripe_free(&s, 3);
    }
}

static void test_against_reference(void)
{
    static const unsigned codes[][2] = {{2, 1}, {4, 2}, {5, 3}, {8, 3}, {16, 8}, {7, 7}};
    static const size_t lens[] = {1, 15, 31, 32, 33, 63, 64, 65, 100, 4097};
    for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++) {
        unsigned k = codes[c][0], m = codes[c][1], bad = 0;
        const struct gw_ec *ec = gw_ec_get(k, m, NULL);
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            struct stripe s;
            stripe_make(&s, ec, lens[l], l % 4);
            uint8_t *ref[GW_EC_MAX_M];
            for (unsigned p = 0; p < m; p++)
                ref[p] = malloc(lens[l]);
            ref_encode(k, m, lens[l], s.chunk, ref);
            for (unsigned p = 0; p < m; p++) {
                bad += memcmp(ref[p], s.chunk[k + p], lens[l]) != 0;
                free(ref[p]);
            }
            stripe_free(&s, l % 4);
        }
        ok(bad == 0, "%u+%u: vectorised parity equals the reference at lengths 1..4097", k, m);
    }
}

static void test_errors(void)
{
    const struct gw_ec *ec = gw_ec_get(4, 2, NULL);
    struct gw_ec_plan plan;
    struct cmn_err err;
    cmn_err_clear(&err);
    /* Three of six lost: 3 present < k = 4. */
    int rc = gw_ec_plan_init(&plan, ec, 0x07, 0x38, &err);
    is_int(rc, LODE_EUNAVAILABLE, "three losses in 4+2 cannot be recovered");
    ok(strstr(err.msg, "need 4 of 6 chunks, 3 present") != NULL, "message: %s", err.msg);
    is_int(gw_ec_plan_init(&plan, ec, 0x3f, 0, NULL), -EINVAL, "empty want set refused");
    is_int(gw_ec_plan_init(&plan, ec, 0x1f, 0x30, NULL), -EINVAL,
           "want overlapping present refused");
    is_int(gw_ec_plan_init(&plan, ec, 0x3e, 0x41, NULL), -EINVAL,
           "chunk index beyond the stripe refused");
    rc = gw_ec_plan_init(&plan, ec, 0x3c, 0x03, NULL);
    uint8_t buf[6][8] = {{0}};
    uint8_t *chunks[6] = {buf[0], buf[1], buf[2], NULL, buf[4], buf[5]};
    ok(rc == 0 && gw_ec_plan_run(&plan, 8, chunks) == -EINVAL,
       "a missing source buffer is refused, not dereferenced");
    chunks[3] = buf[3];
    is_int(gw_ec_plan_run(&plan, GW_EC_MAX_LEN + 1, chunks), -EINVAL, "oversized length refused");
    is_int(gw_ec_encode_stripe(ec, buf[0], 8, 33, chunks + 4), -EINVAL,
           "stripe longer than k chunks refused");
    is_int(gw_ec_encode_stripe(ec, buf[0], 8, 0, chunks + 4), -EINVAL, "empty stripe refused");
}

static void test_short_stripe(void)
{
    /* 4+2 with 100-byte chunks; stripe lengths that leave chunks short or absent. The parity
     * is that of the data chunks zero-padded to the length of chunk 0. */
    const struct gw_ec *ec = gw_ec_get(4, 2, NULL);
    const size_t cs = 100;
    static const size_t lens[] = {1, 99, 100, 101, 250, 301, 399, 400};
    unsigned bad = 0;
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        size_t slen = lens[l], l0 = slen < cs ? slen : cs;
        uint8_t stripe[400], padded[4][100], p0[100], p1[100], r0[100], r1[100];
        memset(stripe, 0xcc, sizeof(stripe)); /* garbage beyond the data must not leak in */
        fill(stripe, slen);
        memset(padded, 0, sizeof(padded));
        for (size_t b = 0; b < slen; b++)
            padded[b / cs][b % cs] = stripe[b];
        uint8_t *par[2] = {p0, p1}, *ref[2] = {r0, r1};
        uint8_t *pd[4] = {padded[0], padded[1], padded[2], padded[3]};
        long got = gw_ec_encode_stripe(ec, stripe, cs, slen, par);
        ref_encode(4, 2, l0, pd, ref);
        if (got != (long)l0 || memcmp(p0, r0, l0) != 0 || memcmp(p1, r1, l0) != 0)
            bad++;
        /* Lose data chunk 0 and the last data chunk; rebuild from the zero-padded rest. */
        uint8_t *chunks[6] = {padded[0], padded[1], padded[2], padded[3], p0, p1};
        uint8_t keep0[100], keep3[100];
        memcpy(keep0, padded[0], l0);
        memcpy(keep3, padded[3], l0);
        memset(padded[0], 0x77, l0);
        memset(padded[3], 0x77, l0);
        if (gw_ec_reconstruct(ec, l0, 0x36, 0x09, chunks, NULL) != 0 ||
            memcmp(keep0, padded[0], l0) != 0 || memcmp(keep3, padded[3], l0) != 0)
            bad++;
    }
    ok(bad == 0, "short stripes: zero-padded parity of length min(stripe, chunk) and rebuild");
}

static void *get_shared(void *arg)
{
    return (void *)gw_ec_get(5, 3, NULL);
}

static void test_shared(void)
{
    pthread_t t[8];
    void *got[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, get_shared, NULL);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], &got[i]);
    bool same = got[0] != NULL;
    for (int i = 1; i < 8; i++)
        same = same && got[i] == got[0];
    ok(same && gw_ec_get(5, 3, NULL) == got[0],
       "threads racing for the shared 5+3 context all get the same one");
    ok(gw_ec_get(5, 2, NULL) != got[0], "another code gets another context");
}

static void test_plan_reuse(void)
{
    /* One plan (data chunks 1 and 2 lost) over several stripes of 8+3 data. */
    const struct gw_ec *ec = gw_ec_get(8, 3, NULL);
    struct gw_ec_plan plan;
    int rc = gw_ec_plan_init(&plan, ec, 0x7f9, 0x006, NULL);
    unsigned bad = rc != 0;
    ok(rc == 0 && gw_ec_plan_sources(&plan) == 0x3f9,
       "plan reads the 6 surviving data chunks and the first 2 parity chunks");
    for (int round = 0; round < 5 && !bad; round++) {
        struct stripe s;
        stripe_make(&s, ec, 4096 + 64 * (size_t)round, 0);
        memset(s.chunk[1], 0, s.len);
        memset(s.chunk[2], 0, s.len);
        bad += gw_ec_plan_run(&plan, s.len, s.chunk) != 0 || !stripe_intact(&s);
        stripe_free(&s, 0);
    }
    ok(bad == 0, "one plan serves many stripes with the same losses");
}

int main(void)
{
    test_reference_field();
    test_limits();
    test_coefficients();
    test_fixed_vector();
    test_replication();
    test_all_patterns();
    test_against_reference();
    test_errors();
    test_short_stripe();
    test_shared();
    test_plan_reuse();
    return tap_done();
}
