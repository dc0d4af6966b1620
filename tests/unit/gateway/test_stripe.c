/* gateway/stripe.c: geometry against a byte-by-byte reference layout written here from the
 * definition, piece lists for random ranges, boundaries, the layout policy with numbers
 * worked out by hand, and a full round trip through gateway/ec.c with chunks stored at
 * their real length and m of them lost. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/ec.h"
#include "gateway/stripe.h"
#include "tests/tap.h"

static uint64_t rng_state = 0x452821e638d01377ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

/* The reference layout: every object byte placed one at a time by the definition (stripe =
 * byte / (k * cs), chunk = remainder / cs, offset = remainder % cs); a chunk's length is
 * one past the last byte placed in it. Data chunks only; parity lengths follow chunk 0. */
struct ref {
    unsigned k;
    uint32_t cs;
    uint64_t stripes;
    uint8_t **chunk;       /* [stripe * k + j], cs bytes each */
    uint32_t *len;
};

static void ref_build(struct ref *r, const struct gw_geom *g, const uint8_t *obj)
{
    r->k = g->k;
    r->cs = g->chunk_size;
    uint64_t sb = (uint64_t)g->k * g->chunk_size;
    r->stripes = (g->size + sb - 1) / sb;
    r->chunk = calloc(r->stripes * g->k + 1, sizeof(*r->chunk));
    r->len = calloc(r->stripes * g->k + 1, sizeof(*r->len));
    for (uint64_t i = 0; i < r->stripes * g->k; i++)
        r->chunk[i] = calloc(1, g->chunk_size);
    for (uint64_t b = 0; b < g->size; b++) {
        uint64_t s = b / sb, rem = b - s * sb, j = rem / g->chunk_size, off = rem % g->chunk_size;
        r->chunk[s * g->k + j][off] = obj[b];
        r->len[s * g->k + j] = (uint32_t)(off + 1);
    }
}

static void ref_free(struct ref *r)
{
    for (uint64_t i = 0; i < r->stripes * r->k; i++)
        free(r->chunk[i]);
    free(r->chunk);
    free(r->len);
}

/* Reads [off, off+len) through the piece list from the reference chunks; checks the
 * iterator's promises on the way. Returns the number of broken promises. */
static unsigned read_range(const struct gw_geom *g, const struct ref *r, uint64_t off,
                           uint64_t len, uint8_t *out)
{
    struct gw_piece_iter it;
    struct gw_piece p;
    unsigned bad = gw_piece_iter_init(&it, g, off, len, NULL) != 0;
    uint64_t next_out = 0, last_stripe = 0, last_chunk = 0, n = 0;
    while (!bad && gw_piece_next(&it, &p)) {
        uint64_t idx = p.stripe * g->k + p.chunk;
        if (p.len == 0 || p.out_off != next_out || p.chunk >= g->k || p.stripe >= r->stripes ||
            (uint64_t)p.chunk_off + p.len > r->len[idx] ||
            (n > 0 && (p.stripe < last_stripe ||
                       (p.stripe == last_stripe && p.chunk <= last_chunk)))) {
            bad++;
            break;
        }
        memcpy(out + p.out_off, r->chunk[idx] + p.chunk_off, p.len);
        next_out += p.len;
        last_stripe = p.stripe;
        last_chunk = p.chunk;
        n++;
    }
    return bad + (next_out != len);
}

static void test_random_ranges(void)
{
    static const struct {
        unsigned k, m;
        uint32_t cs;
    } geos[] = {{4, 2, 64}, {1, 2, 100}, {8, 3, 7}, {3, 1, 4096}, {16, 8, 1}, {2, 1, 1000}};
    for (size_t c = 0; c < sizeof(geos) / sizeof(geos[0]); c++) {
        uint64_t sb = (uint64_t)geos[c].k * geos[c].cs;
        /* Sizes: tiny, exact multiples of the stripe and of the chunk, a short tail. */
        uint64_t sizes[] = {1, geos[c].cs, sb, 3 * sb, 3 * sb + 1, 2 * sb + geos[c].cs,
                            5 * sb - 1, 1 + rnd_below(7 * sb)};
        unsigned bad_len = 0, bad_range = 0, ranges = 0;
        for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
            struct gw_geom g = {geos[c].k, geos[c].m, geos[c].cs, sizes[z]};
            uint8_t *obj = malloc(g.size), *out = malloc(g.size);
            for (uint64_t b = 0; b < g.size; b++)
                obj[b] = (uint8_t)rnd();
            struct ref r;
            ref_build(&r, &g, obj);
            bad_len += gw_geom_stripes(&g) != r.stripes;
            for (uint64_t s = 0; s < r.stripes; s++) {
                uint32_t stored = 0;
                for (unsigned j = 0; j < g.k; j++) {
                    bad_len += gw_chunk_len(&g, s, j) != r.len[s * g.k + j];
                    stored |= r.len[s * g.k + j] ? 1u << j : 0;
                }
                for (unsigned p = 0; p < g.m; p++) {
                    bad_len += gw_chunk_len(&g, s, g.k + p) != r.len[s * g.k];
                    stored |= 1u << (g.k + p);
                }
                bad_len += gw_stripe_stored(&g, s) != stored;
                bad_len += gw_stripe_verify(&g, s, s * sb, gw_stripe_len(&g, s), g.k + g.m,
                                            NULL) != 0;
            }
            bad_len += gw_chunk_len(&g, r.stripes, 0) != 0 || gw_stripe_len(&g, r.stripes) != 0;
            for (int t = 0; t < 60; t++) {
                uint64_t off = rnd_below(g.size + 1), len = rnd_below(g.size - off + 1);
                if (t == 0) {
                    off = 0;
                    len = g.size;
                }
                memset(out, 0, g.size);
                if (read_range(&g, &r, off, len, out) != 0 || memcmp(out, obj + off, len) != 0)
                    bad_range++;
                ranges++;
            }
            ref_free(&r);
            free(obj);
            free(out);
        }
        ok(bad_len == 0, "%u+%u cs %u: stripe count, chunk lengths and stored sets match the "
           "reference layout", geos[c].k, geos[c].m, geos[c].cs);
        ok(bad_range == 0, "%u+%u cs %u: %u random ranges reassemble the exact bytes",
           geos[c].k, geos[c].m, geos[c].cs, ranges);
    }
}

static void test_boundaries(void)
{
    struct cmn_err err;
    struct gw_piece_iter it;
    struct gw_piece p;
    struct gw_geom empty = {4, 2, 1024, 0};
    is_int(gw_geom_stripes(&empty), 0, "an empty object has no stripes");
    ok(gw_piece_iter_init(&it, &empty, 0, 0, NULL) == 0 && !gw_piece_next(&it, &p),
       "the empty range of an empty object has no pieces");
    cmn_err_clear(&err);
    is_int(gw_piece_iter_init(&it, &empty, 0, 1, &err), -ERANGE,
           "one byte of an empty object is out of range");
    ok(strstr(err.msg, "outside the 0-byte object") != NULL, "message: %s", err.msg);

    struct gw_geom g = {4, 2, 1024, 4096 * 3};
    is_int(gw_piece_iter_init(&it, &g, 4096 * 3, 1, NULL), -ERANGE, "range past the end");
    is_int(gw_piece_iter_init(&it, &g, UINT64_MAX, 2, NULL), -ERANGE, "offset overflow");
    is_int(gw_piece_iter_init(&it, &g, 5, UINT64_MAX - 1, NULL), -ERANGE, "length overflow");
    ok(gw_piece_iter_init(&it, &g, 4096 * 3, 0, NULL) == 0 && !gw_piece_next(&it, &p),
       "an empty range at the very end is fine");

    /* One byte straddling nothing: the last byte of stripe 1 is chunk 3, offset 1023. */
    ok(gw_piece_iter_init(&it, &g, 2 * 4096 - 1, 2, NULL) == 0 && gw_piece_next(&it, &p) &&
           p.stripe == 1 && p.chunk == 3 && p.chunk_off == 1023 && p.len == 1 &&
           p.out_off == 0 && gw_piece_next(&it, &p) && p.stripe == 2 && p.chunk == 0 &&
           p.chunk_off == 0 && p.len == 1 && p.out_off == 1 && !gw_piece_next(&it, &p),
       "a 2-byte range across a stripe boundary is two pieces");

    /* 4+2, 1 MiB chunks, 4 MiB + 1 bytes: a second stripe of one byte. */
    struct gw_geom t = {4, 2, 1u << 20, (4u << 20) + 1};
    is_int(gw_geom_stripes(&t), 2, "4 MiB + 1 is two stripes");
    ok(gw_stripe_len(&t, 1) == 1 && gw_chunk_len(&t, 1, 0) == 1 && gw_chunk_len(&t, 1, 1) == 0 &&
           gw_chunk_len(&t, 1, 4) == 1 && gw_chunk_len(&t, 1, 5) == 1,
       "its tail stripe: data chunk 0 and both parity chunks are 1 byte, the rest absent");
    is_int(gw_stripe_stored(&t, 1), 0x31, "so it stores chunks 0, 4 and 5");
    is_int(gw_stripe_stored(&t, 0), 0x3f, "the full stripe stores all six");
    ok(gw_chunk_len(&t, 0, 6) == 0, "chunk index beyond k+m has no length");

    cmn_err_clear(&err);
    is_int(gw_stripe_verify(&t, 1, 4u << 20, 2, 6, &err), LODE_ECORRUPT,
           "a stripe record with the wrong length is corrupt");
    ok(strstr(err.msg, "stripe 1") != NULL, "message: %s", err.msg);
    is_int(gw_stripe_verify(&t, 1, 4u << 20, 1, 5, NULL), LODE_ECORRUPT,
           "a stripe record with 5 chunk refs for 4+2 is corrupt");
    is_int(gw_stripe_verify(&t, 2, 8u << 20, 0, 6, NULL), LODE_ECORRUPT,
           "a third stripe record is corrupt");
    is_int(gw_stripe_verify(&t, 1, 4u << 20, 1, 6, NULL), 0, "the right record passes");

    struct gw_geom bad[] = {{0, 2, 1024, 1}, {17, 0, 1024, 1}, {4, 9, 1024, 1},
                            {4, 2, 0, 1}, {4, 2, GW_GEOM_CHUNK_MAX + 1, 1},
                            {4, 2, 1024, GW_OBJECT_MAX + 1}};
    unsigned refused = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refused += gw_geom_check(&bad[i], NULL) == -EINVAL &&
                   gw_piece_iter_init(&it, &bad[i], 0, 0, NULL) == -EINVAL;
    is_int(refused, sizeof(bad) / sizeof(bad[0]), "invalid geometries are refused");

    /* The largest geometry: 5 TiB at 16 x 512 MiB chunks; arithmetic must not overflow. */
    struct gw_geom big = {16, 8, GW_GEOM_CHUNK_MAX, GW_OBJECT_MAX};
    ok(gw_geom_check(&big, NULL) == 0 && gw_geom_stripes(&big) == 640 &&
           gw_stripe_len(&big, 639) == (uint64_t)8 << 30,
       "5 TiB in 8 GiB stripes is 640 full stripes");
    ok(gw_piece_iter_init(&it, &big, GW_OBJECT_MAX - 3, 3, NULL) == 0 &&
           gw_piece_next(&it, &p) && p.stripe == 639 && p.chunk == 15 &&
           p.chunk_off == GW_GEOM_CHUNK_MAX - 3 && p.len == 3,
       "the last 3 bytes of it are at the end of chunk 15 of stripe 639");
}

struct want_choice {
    uint64_t size;
    unsigned k;
    uint32_t cs;
};

static void test_policy(void)
{
    /* 4+2, 1 MiB, default threshold 256 KiB = 262144. Expected values by hand:
     * 262145 / 4 = 65536.25 -> 65537 -> next multiple of 64 = 65600;
     * 4194303 / 4 = 1048575.75 -> 1048576. */
    struct gw_layout_policy pol = {4, 2, 0, GW_SMALL_THRESHOLD_DEFAULT};
    static const struct want_choice want[] = {
        {0, 1, 64},
        {1, 1, 64},
        {100, 1, 128},
        {262143, 1, 262144},
        {262144, 4, 65536},
        {262145, 4, 65600},
        {1000000, 4, 250048},   /* 250000 -> 250048 (= 3907 * 64) */
        {4194303, 4, 1048576},
        {4194304, 4, 1048576},
        {(uint64_t)10 << 30, 4, 1048576},
        {GW_SIZE_UNKNOWN, 4, 1048576},
    };
    unsigned bad = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct gw_layout_choice c = {0, 0, 0};
        int rc = gw_layout_choose(&pol, want[i].size, &c, NULL);
        if (rc != 0 || c.k != want[i].k || c.m != 2 || c.chunk_size != want[i].cs) {
            bad++;
            diag("size %llu: rc %d k %u m %u cs %u, want k %u cs %u",
                 (unsigned long long)want[i].size, rc, c.k, c.m, c.chunk_size, want[i].k,
                 want[i].cs);
        }
    }
    ok(bad == 0, "4+2 policy: replicas below 256 KiB, one shrunk stripe below 4 MiB, 1 MiB "
       "chunks above");

    struct gw_layout_choice c;
    struct gw_layout_policy p1 = {4, 2, 64 << 10, GW_SMALL_THRESHOLD_DEFAULT};
    ok(gw_layout_choose(&p1, 200000, &c, NULL) == 0 && c.k == 1 && c.chunk_size == 65536,
       "replicas never exceed the max chunk size (several 1+m stripes)");
    struct gw_layout_policy p2 = {4, 2, 0, 0};
    ok(gw_layout_choose(&p2, 1, &c, NULL) == 0 && c.k == 4 && c.chunk_size == 64,
       "threshold 0 turns replication off");
    struct gw_layout_policy p3 = {1, 3, 0, 0};
    ok(gw_layout_choose(&p3, 10u << 20, &c, NULL) == 0 && c.k == 1 && c.m == 3 &&
           c.chunk_size == 1u << 20,
       "a 1+3 policy replicates everything in max-size chunks");
    struct gw_layout_policy p4 = {8, 3, 4u << 20, 8 * 65536};
    ok(gw_layout_choose(&p4, 600000, &c, NULL) == 0 && c.k == 8 && c.chunk_size == 75008,
       "8+3 at 600000 bytes: 75000 -> 75008");

    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(gw_layout_choose(&pol, GW_OBJECT_MAX + 1, &c, &err), -ERANGE,
           "an object above 5 TiB is refused");
    struct gw_layout_policy invalid[] = {{0, 2, 0, 0}, {4, 9, 0, 0}, {4, 2, 1000, 0},
                                         {4, 2, (8u << 20) + 4096, 0}, {4, 2, 2048, 0}};
    unsigned refused = 0;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        refused += gw_layout_choose(&invalid[i], 1, &c, NULL) == -EINVAL;
    is_int(refused, sizeof(invalid) / sizeof(invalid[0]), "invalid policies are refused");

    /* Properties over random sizes and policies. */
    unsigned broken = 0;
    for (int t = 0; t < 20000; t++) {
        unsigned k = 1 + (unsigned)rnd_below(16);
        uint64_t thresholds[3] = {0, (uint64_t)k * 65536, rnd_below(2u << 20)};
        struct gw_layout_policy p = {k, (unsigned)rnd_below(9),
                                     (uint32_t)(4096 * (1 + rnd_below(2048))),
                                     thresholds[t % 3]};
        uint64_t size = rnd_below(4) == 0 ? rnd_below(1u << 20)
                                          : rnd_below((uint64_t)p.k * p.max_chunk_size * 3);
        if (gw_layout_choose(&p, size, &c, NULL) != 0) {
            broken++;
            continue;
        }
        struct gw_geom g = {c.k, c.m, c.chunk_size, size};
        uint64_t small = p.small_threshold;
        bool fine = gw_geom_check(&g, NULL) == 0 && c.m == p.m &&
                    c.chunk_size <= p.max_chunk_size && c.chunk_size % GW_STRIPE_ALIGN == 0;
        if (size > 0 && size < small)
            fine = fine && c.k == 1;
        if (size > 0 && size >= small && size < (uint64_t)p.k * p.max_chunk_size) {
            /* One stripe, and the padding is less than one alignment unit per chunk. */
            fine = fine && c.k == p.k && gw_geom_stripes(&g) == 1 &&
                   (uint64_t)c.k * c.chunk_size - size < (uint64_t)c.k * GW_STRIPE_ALIGN;
            /* With a threshold of k x 64 KiB no data chunk of such an object is empty. */
            if (small == (uint64_t)k * 65536)
                fine = fine &&
                       (gw_stripe_stored(&g, 0) & ((1u << c.k) - 1)) == (1u << c.k) - 1;
        }
        broken += !fine;
    }
    ok(broken == 0, "20000 random policies and sizes: valid, bounded padding, no empty chunk");
}

static void test_fit_domains(void)
{
    struct gw_layout_policy pol = {4, 2, 0, GW_SMALL_THRESHOLD_DEFAULT}, out;
    struct cmn_err err;
    ok(gw_layout_fit_domains(&pol, 6, &out, NULL) == 0 && out.k == 4 && out.m == 2,
       "6 domains fit 4+2 as it is");
    ok(gw_layout_fit_domains(&pol, 9, &out, NULL) == 0 && out.k == 4, "9 domains too");
    ok(gw_layout_fit_domains(&pol, 5, &out, NULL) == 0 && out.k == 3 && out.m == 2,
       "5 domains: 3+2");
    ok(gw_layout_fit_domains(&pol, 4, &out, NULL) == 0 && out.k == 2 && out.m == 2,
       "4 domains (two of six down): 2+2, still survives two losses");
    ok(gw_layout_fit_domains(&pol, 3, &out, NULL) == 0 && out.k == 1 && out.m == 2,
       "3 domains: 3 replicas");
    cmn_err_clear(&err);
    is_int(gw_layout_fit_domains(&pol, 2, &out, &err), LODE_ENOSPACE,
           "2 domains cannot survive 2 losses");
    ok(strstr(err.msg, "at least 3") != NULL, "message: %s", err.msg);
    struct gw_layout_choice c;
    ok(gw_layout_fit_domains(&pol, 4, &out, NULL) == 0 &&
           gw_layout_choose(&out, 300000, &c, NULL) == 0 && c.k == 2 && c.chunk_size == 150016,
       "the degraded policy stripes 300000 bytes as 2 x 150016 (150000 rounded up to 64)");
}

/* Writes an object the way the gateway will: stripe buffer, gw_ec_encode_stripe, chunks
 * kept at their real length only; then loses m stored chunks per stripe, rebuilds them
 * from zero-padded survivors, and reads ranges back. */
static void test_round_trip(void)
{
    static const struct {
        unsigned k, m;
        uint32_t cs;
        uint64_t size;
    } cases[] = {{4, 2, 256, 4 * 256 * 3 + 300}, {4, 2, 256, 4 * 256 * 2 + 1},
                 {8, 3, 128, 8 * 128 + 129}, {1, 2, 500, 1234}, {3, 3, 64, 3 * 64 * 5}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct gw_geom g = {cases[c].k, cases[c].m, cases[c].cs, cases[c].size};
        const struct gw_ec *ec = gw_ec_get(g.k, g.m, NULL);
        unsigned n = g.k + g.m, bad = 0;
        uint64_t stripes = gw_geom_stripes(&g), sb = gw_geom_stripe_bytes(&g);
        uint8_t *obj = malloc(g.size), *back = malloc(g.size);
        for (uint64_t b = 0; b < g.size; b++)
            obj[b] = (uint8_t)rnd();
        memset(back, 0, g.size);
        uint8_t *stripe = malloc(sb);
        for (uint64_t s = 0; s < stripes; s++) {
            uint64_t slen = gw_stripe_len(&g, s);
            memset(stripe, 0xab, sb); /* stale bytes of a reused buffer */
            memcpy(stripe, obj + gw_stripe_offset(&g, s), slen);
            uint8_t *stored[GW_EC_MAX_N] = {0};
            uint8_t *parity[GW_EC_MAX_M];
            for (unsigned p = 0; p < g.m; p++)
                parity[p] = stored[g.k + p] = malloc(g.chunk_size);
            long l0 = gw_ec_encode_stripe(ec, stripe, g.chunk_size, slen, parity);
            bad += l0 != (long)gw_chunk_len(&g, s, 0);
            for (unsigned j = 0; j < g.k; j++) {
                uint32_t len = gw_chunk_len(&g, s, j);
                if (len) {
                    stored[j] = malloc(len);
                    memcpy(stored[j], stripe + (size_t)j * g.chunk_size, len);
                }
            }
            /* Lose m stored chunks at random. */
            uint32_t have = gw_stripe_stored(&g, s), lost = 0;
            for (unsigned t = 0; t < g.m && __builtin_popcount(have & ~lost) > 0;) {
                unsigned i = (unsigned)rnd_below(n);
                if ((have & ~lost) & (1u << i)) {
                    lost |= 1u << i;
                    t++;
                }
            }
            /* Rebuild: every chunk as an l0-byte zero-padded buffer; absent ones are
             * present zeroes. */
            uint8_t *work[GW_EC_MAX_N];
            for (unsigned i = 0; i < n; i++) {
                work[i] = calloc(1, (size_t)l0);
                if (!(lost & (1u << i)) && stored[i])
                    memcpy(work[i], stored[i], gw_chunk_len(&g, s, i));
            }
            uint32_t all = (1u << n) - 1;
            if (lost && gw_ec_reconstruct(ec, (size_t)l0, all & ~lost, lost, work, NULL) != 0)
                bad++;
            for (unsigned i = 0; i < n; i++)
                if (stored[i] && memcmp(work[i], stored[i], gw_chunk_len(&g, s, i)) != 0)
                    bad++;
            /* Read the stripe back through the piece list from the rebuilt chunks. */
            struct gw_piece_iter it;
            struct gw_piece p;
            uint64_t off = gw_stripe_offset(&g, s);
            gw_piece_iter_init(&it, &g, off, slen, NULL);
            while (gw_piece_next(&it, &p))
                memcpy(back + off + p.out_off, work[p.chunk] + p.chunk_off, p.len);
            for (unsigned i = 0; i < n; i++) {
                free(work[i]);
                free(stored[i]);
            }
        }
        ok(bad == 0 && memcmp(obj, back, g.size) == 0,
           "%u+%u cs %u, %llu bytes: real-length chunks, %u lost per stripe, rebuilt and "
           "read back byte for byte", g.k, g.m, g.chunk_size, (unsigned long long)g.size, g.m);
        free(stripe);
        free(obj);
        free(back);
    }
}

int main(void)
{
    test_random_ranges();
    test_boundaries();
    test_policy();
    test_fit_domains();
    test_round_trip();
    return tap_done();
}
