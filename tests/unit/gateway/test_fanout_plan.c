/* gateway/fanout_plan.c: every plan of small geometries checked byte by byte against a model
 * written here from the definition (stripe = x / (k * cs), data chunk = remainder / cs), for
 * every range of each object size, with nodes down, absent chunks, replicated (k = 1)
 * layouts, short last stripes and several piece sizes; a plan worked out by hand; the
 * limits; batching and the in-flight cap. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/fanout_plan.h"
#include "tests/tap.h"

#define NODES 8

/* readable(nid) = bit nid of the mask; counts calls so a test sees nid 0 is never asked. */
struct up {
    uint32_t mask;
    unsigned asked_zero;
};

static bool readable(void *ctx, uint32_t nid)
{
    struct up *u = ctx;
    if (nid == 0)
        u->asked_zero++;
    return nid < 32 && (u->mask >> nid & 1);
}

/* A layout: chunk c of stripe s on node 1 + (s + c) % NODES (distinct within a stripe, as
 * placement does), id bytes naming (s, c); a data chunk of length 0 has nid 0, as stored;
 * `lost` (a ref index or -1) has nid 0 although stored. */
static struct gw_fo_chunk *make_layout(const struct gw_geom *g, long lost)
{
    uint64_t ns = gw_geom_stripes(g);
    unsigned n = g->k + g->m;
    struct gw_fo_chunk *refs = calloc(ns * n + 1, sizeof(*refs));
    for (uint64_t s = 0; s < ns; s++)
        for (unsigned c = 0; c < n; c++) {
            struct gw_fo_chunk *r = &refs[s * n + c];
            memset(r->id, 0, 16);
            r->id[0] = (uint8_t)s;
            r->id[1] = (uint8_t)c;
            r->id[15] = 0xa5;
            r->nid = gw_chunk_len(g, s, c) ? 1 + (uint32_t)((s + c) % NODES) : 0;
            if ((long)(s * n + c) == lost)
                r->nid = 0;
        }
    return refs;
}

/* The model's answer for one stripe: -1 when the gateway must serve it, else the ref index
 * (k = 1: the copy; k > 1: unused, 0) serving it. Needed chunks are computed from the bytes
 * of [a, b) in the stripe, one by one. */
static int model_stripe(const struct gw_geom *g, const struct gw_fo_chunk *refs, uint32_t mask,
                        uint64_t spread, uint64_t s, uint64_t a, uint64_t b)
{
    uint64_t sb = (uint64_t)g->k * g->chunk_size;
    unsigned n = g->k + g->m;
    const struct gw_fo_chunk *r = refs + s * n;
    if (g->k == 1) {
        for (unsigned i = 0; i < n; i++) {
            unsigned c = (unsigned)((s + spread) % n + i) % n;
            if (r[c].nid && (mask >> r[c].nid & 1))
                return (int)c;
        }
        return -1;
    }
    for (uint64_t x = a > s * sb ? a : s * sb; x < b && x < (s + 1) * sb; x++) {
        unsigned j = (unsigned)((x - s * sb) / g->chunk_size);
        if (!r[j].nid || !(mask >> r[j].nid & 1))
            return -1;
    }
    return 0;
}

struct case_in {
    struct gw_geom g;
    uint64_t a, b, buf_off, spread;
    uint32_t mask, max_piece;
    long lost;
};

/* Builds the plan of one case and checks every byte; returns 1 when all holds. */
static int check_case(const struct case_in *c)
{
    const struct gw_geom *g = &c->g;
    struct gw_fo_chunk *refs = make_layout(g, c->lost);
    struct up u = {c->mask, 0};
    struct gw_fo_input in = {
        .geom = *g, .chunks = refs, .n_stripes = gw_geom_stripes(g), .start = c->a,
        .end = c->b, .buf_off = c->buf_off, .readable = readable, .readable_ctx = &u,
        .max_piece = c->max_piece, .spread = c->spread,
    };
    struct gw_fo_plan p;
    struct cmn_err e;
    int good = gw_fo_plan_build(&in, &p, &e) == 0 && u.asked_zero == 0;
    uint64_t len = c->b - c->a, sb = (uint64_t)g->k * g->chunk_size;
    unsigned n = g->k + g->m;
    unsigned char *cover = calloc(len + 1, 1);
    uint64_t remote = 0, local = 0, ns = gw_geom_stripes(g);
    int *model = calloc(ns + 1, sizeof(int));
    for (uint64_t s = 0; s < ns; s++)
        model[s] = model_stripe(g, refs, c->mask, c->spread, s, c->a, c->b);

    for (size_t si = 0; good && si < p.n_sources; si++) {
        const struct gw_fo_source *src = &p.sources[si];
        good &= src->count >= 1 && src->nid != 0 && (c->mask >> src->nid & 1);
        good &= si == 0 || p.sources[si - 1].nid < src->nid;
        good &= si == 0 || src->first == p.sources[si - 1].first + p.sources[si - 1].count;
        uint64_t bytes = 0;
        for (size_t i = 0; good && i < src->count; i++) {
            const struct gw_fo_piece *pc = &p.pieces[src->first + i];
            good &= pc->len >= 1 && pc->len <= c->max_piece;
            good &= i == 0 || p.pieces[src->first + i - 1].buf_off < pc->buf_off;
            good &= pc->buf_off >= c->buf_off && pc->buf_off - c->buf_off + pc->len <= len;
            if (!good)
                break;
            uint64_t obj = c->a + (pc->buf_off - c->buf_off);
            for (uint64_t x = obj; good && x < obj + pc->len; x++) {
                uint64_t s = x / sb, rem = x % sb;
                unsigned j = (unsigned)(rem / g->chunk_size);
                int pick = model[s];
                unsigned want_c = g->k == 1 ? (unsigned)pick : j;
                uint64_t want_off = g->k == 1 ? rem : rem % g->chunk_size;
                const struct gw_fo_chunk *r = &refs[s * n + want_c];
                good &= pick >= 0 && pc->stripe == s && pc->chunk == want_c &&
                        src->nid == r->nid && memcmp(pc->chunk_id, r->id, 16) == 0 &&
                        pc->chunk_off + (x - obj) == want_off &&
                        want_off < gw_chunk_len(g, s, want_c);
                cover[x - c->a]++;
            }
            bytes += pc->len;
        }
        good &= bytes == src->bytes;
        remote += bytes;
    }
    for (size_t i = 0; good && i < p.n_locals; i++) {
        const struct gw_fo_local *l = &p.locals[i];
        uint64_t s = l->stripe, lo = c->a > s * sb ? c->a : s * sb;
        uint64_t hi = c->b < s * sb + gw_stripe_len(g, s) ? c->b : s * sb + gw_stripe_len(g, s);
        good &= l->obj_off == lo && l->len == hi - lo && l->buf_off == c->buf_off + (lo - c->a);
        good &= i == 0 || p.locals[i - 1].obj_off < l->obj_off;
        good &= s < ns && model[s] < 0;
        for (uint64_t x = l->obj_off; good && x < l->obj_off + l->len; x++)
            cover[x - c->a]++;
        local += l->len;
    }
    for (uint64_t x = 0; good && x < len; x++)
        good &= cover[x] == 1;
    good &= remote == p.remote_bytes && local == p.local_bytes && remote + local == len;
    free(cover);
    free(model);
    gw_fo_plan_free(&p);
    free(refs);
    return good;
}

/* Every range of every object size up to two stripes and a byte, on each small geometry,
 * under 5 node masks and 3 piece sizes. */
static void test_exhaustive(void)
{
    static const unsigned ks[] = {1, 2, 3};
    static const unsigned ms[] = {0, 1, 2};
    static const uint32_t css[] = {1, 3, 4};
    /* Node masks over nids 1..NODES: all up, one down, two down, all down, alternate. */
    static const uint32_t masks[] = {0x1fe, 0x1fe & ~0x4u, 0x1fe & ~0x18u, 0, 0x0aa};
    static const uint32_t pieces[] = {1, 2, 1000};
    unsigned long n_cases = 0, n_bad = 0;
    for (size_t ki = 0; ki < 3; ki++)
        for (size_t mi = 0; mi < 3; mi++)
            for (size_t ci = 0; ci < 3; ci++) {
                unsigned k = ks[ki], m = ms[mi];
                uint32_t cs = css[ci];
                uint64_t sb = (uint64_t)k * cs;
                for (uint64_t size = 0; size <= 2 * sb + 1; size++) {
                    struct gw_geom g = {k, m, cs, size};
                    uint64_t ns = gw_geom_stripes(&g);
                    for (uint64_t a = 0; a <= size; a++)
                        for (uint64_t b = a; b <= size; b++)
                            for (size_t v = 0; v < 15; v++) {
                                struct case_in c = {
                                    .g = g, .a = a, .b = b, .buf_off = v * 7,
                                    .spread = v, .mask = masks[v % 5],
                                    .max_piece = pieces[v / 5],
                                    /* mask 4: one chunk of the layout has nid 0 */
                                    .lost = (v % 5 == 4 && ns)
                                                ? (long)((a * 5 + b) % (ns * (k + m)))
                                                : -1,
                                };
                                n_cases++;
                                if (!check_case(&c)) {
                                    if (n_bad++ < 5)
                                        diag("bad: k=%u m=%u cs=%u size=%llu [%llu,%llu) v=%zu",
                                             k, m, cs, (unsigned long long)size,
                                             (unsigned long long)a, (unsigned long long)b, v);
                                }
                            }
                }
            }
    ok(n_bad == 0, "%lu plans: every byte covered once, by the right chunk or the gateway",
       n_cases);
}

/* Random larger cases: bigger chunks, more stripes, random masks and range positions. */
static void test_random(void)
{
    uint64_t st = 0x6a09e667f3bcc909ull;
    unsigned long bad = 0;
    for (int i = 0; i < 1500; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = st >> 11;
        struct case_in c = {0};
        c.g.k = 1 + (unsigned)(r % 6);
        c.g.m = (unsigned)(r / 6 % 4);
        c.g.chunk_size = 1 + (uint32_t)(r / 24 % 64);
        c.g.size = r / 1536 % (4 * c.g.k * c.g.chunk_size + 3);
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t q = st >> 11;
        c.a = c.g.size ? q % (c.g.size + 1) : 0;
        c.b = c.a + (c.g.size - c.a ? (q >> 20) % (c.g.size - c.a + 1) : 0);
        c.mask = (uint32_t)(q >> 30) & 0x1fe;
        c.max_piece = 1 + (uint32_t)((q >> 40) % 80);
        c.buf_off = (q >> 13) % 1000;
        c.spread = q >> 50;
        c.lost = -1;
        if (!check_case(&c))
            bad++;
    }
    ok(bad == 0, "1500 random plans checked byte by byte (%lu bad)", bad);
}

static bool all_up(void *ctx, uint32_t nid)
{
    (void)ctx;
    (void)nid;
    return true;
}

/* k = 2, m = 1, chunk 4, 10 bytes: stripe 0 = [0, 8) in chunks 0 [0, 4) and 1 [4, 8); stripe 1
 * = [8, 10) in chunk 0, its chunk 1 empty (nid 0). Nodes: s0 c0 -> 1, s0 c1 -> 2, s0 c2 -> 3,
 * s1 c0 -> 2, s1 c2 -> 3. Range [3, 9) to window offset 100, pieces of at most 3 bytes:
 *   node 1: chunk s0c0 offset 3, 1 byte -> 100
 *   node 2: chunk s0c1 offset 0, 3 bytes -> 101; offset 3, 1 byte -> 104;
 *           chunk s1c0 offset 0, 1 byte -> 105. */
static void test_by_hand(void)
{
    struct gw_fo_chunk refs[6];
    memset(refs, 0, sizeof(refs));
    uint32_t nids[6] = {1, 2, 3, 2, 0, 3};
    for (int i = 0; i < 6; i++) {
        refs[i].nid = nids[i];
        refs[i].id[0] = (uint8_t)(0x10 + i);
    }
    struct gw_fo_input in = {
        .geom = {2, 1, 4, 10}, .chunks = refs, .n_stripes = 2, .start = 3, .end = 9,
        .buf_off = 100, .readable = all_up, .max_piece = 3,
    };
    struct gw_fo_plan p;
    struct cmn_err e;
    is_int(gw_fo_plan_build(&in, &p, &e), 0, "plan builds");
    is_int(p.n_sources, 2, "two nodes");
    is_int(p.n_pieces, 4, "four pieces");
    is_int(p.n_locals, 0, "nothing for the gateway");
    ok(p.remote_bytes == 6 && p.local_bytes == 0, "6 bytes remote");
    if (p.n_sources != 2 || p.n_pieces != 4)
        tap_bail("wrong shape, pieces not checked");
    ok(p.sources[0].nid == 1 && p.sources[0].count == 1 && p.sources[0].bytes == 1, "node 1");
    ok(p.sources[1].nid == 2 && p.sources[1].count == 3 && p.sources[1].bytes == 5, "node 2");
    const struct gw_fo_piece *q = p.pieces;
    ok(q[0].chunk_id[0] == 0x10 && q[0].chunk_off == 3 && q[0].len == 1 && q[0].buf_off == 100,
       "node 1 piece");
    ok(q[1].chunk_id[0] == 0x11 && q[1].chunk_off == 0 && q[1].len == 3 && q[1].buf_off == 101,
       "node 2 piece 1");
    ok(q[2].chunk_id[0] == 0x11 && q[2].chunk_off == 3 && q[2].len == 1 && q[2].buf_off == 104,
       "node 2 piece 2");
    ok(q[3].chunk_id[0] == 0x13 && q[3].chunk_off == 0 && q[3].len == 1 && q[3].buf_off == 105 &&
       q[3].stripe == 1 && q[3].chunk == 0, "node 2 piece 3");

    /* Node 2 down: both stripes go to the gateway; node 1's byte with them. */
    struct up u = {0x1fe & ~0x4u, 0};
    in.readable = readable;
    in.readable_ctx = &u;
    gw_fo_plan_free(&p);
    is_int(gw_fo_plan_build(&in, &p, &e), 0, "plan with node 2 down");
    ok(p.n_pieces == 0 && p.n_locals == 2, "two local ranges");
    ok(p.n_locals == 2 && p.locals[0].obj_off == 3 && p.locals[0].len == 5 &&
       p.locals[0].buf_off == 100 && p.locals[1].obj_off == 8 && p.locals[1].len == 1 &&
       p.locals[1].buf_off == 105, "ranges [3, 8) -> 100 and [8, 9) -> 105");

    /* Batches of node 2's pieces (3, 1, 1 bytes) within 4 bytes; the cap. */
    in.readable = all_up;
    gw_fo_plan_free(&p);
    gw_fo_plan_build(&in, &p, &e);
    uint64_t bytes;
    is_int(gw_fo_batch(&p, 1, 0, 4, 0, &bytes), 2, "first batch: 2 pieces");
    ok(bytes == 4, "4 bytes");
    is_int(gw_fo_batch(&p, 1, 2, 4, 0, &bytes), 1, "second batch: the last piece");
    is_int(gw_fo_batch(&p, 1, 3, 4, 0, &bytes), 0, "then nothing");
    is_int(gw_fo_batch(&p, 1, 0, 1, 0, &bytes), 1, "a piece above max_bytes goes alone");
    ok(bytes == 3, "its 3 bytes");
    is_int(gw_fo_batch(&p, 1, 0, 100, 2, &bytes), 2, "max_count 2");
    is_int(gw_fo_batch(&p, 7, 0, 100, 0, &bytes), 0, "no such source");
    gw_fo_plan_free(&p);
}

static void test_replicas(void)
{
    /* k = 1, m = 2, chunk 4, 12 bytes: 3 stripes, each on nodes s+1, s+2, s+3. With all up,
     * spread 0 picks copy s % 3 of stripe s: nodes 1, 3, 5. */
    struct gw_geom g = {1, 2, 4, 12};
    struct gw_fo_chunk *refs = make_layout(&g, -1);
    struct up u = {0x1fe, 0};
    struct gw_fo_input in = {
        .geom = g, .chunks = refs, .n_stripes = 3, .start = 0, .end = 12,
        .readable = readable, .readable_ctx = &u, .max_piece = 100,
    };
    struct gw_fo_plan p;
    struct cmn_err e;
    is_int(gw_fo_plan_build(&in, &p, &e), 0, "replicated plan");
    ok(p.n_sources == 3 && p.sources[0].nid == 1 && p.sources[1].nid == 3 &&
       p.sources[2].nid == 5, "stripes spread over copies 0, 1, 2: nodes 1, 3, 5");
    gw_fo_plan_free(&p);
    in.spread = 1;
    gw_fo_plan_build(&in, &p, &e);
    /* Spread 1 starts at copy (s + 1) % 3: stripe 0 copy 1 (node 2), stripe 1 copy 2
     * (node 4), stripe 2 copy 0 (node 3). */
    ok(p.n_sources == 3 && p.sources[0].nid == 2 && p.sources[1].nid == 3 &&
       p.sources[2].nid == 4, "spread 1 shifts the rotation: nodes 2, 4, 3");
    gw_fo_plan_free(&p);
    /* Nodes 2 and 4 down, spread 1: stripe 0 (nodes 1, 2, 3) from copy 1: node 2 down ->
     * node 3; stripe 1 (nodes 2, 3, 4) from copy 2: node 4, node 2 down -> node 3; stripe 2
     * (nodes 3, 4, 5) from copy 0: node 3. */
    u.mask = 0x1fe & ~0x14u;
    gw_fo_plan_build(&in, &p, &e);
    ok(p.n_sources == 1 && p.sources[0].nid == 3 && p.sources[0].count == 3 &&
       p.pieces[0].chunk == 2 && p.pieces[1].chunk == 1 && p.pieces[2].chunk == 0,
       "copies skipped when their nodes are down");
    gw_fo_plan_free(&p);
    u.mask = 0;
    gw_fo_plan_build(&in, &p, &e);
    ok(p.n_sources == 0 && p.n_locals == 3 && p.local_bytes == 12, "all down: gateway serves");
    gw_fo_plan_free(&p);
    free(refs);
}

static void test_limits(void)
{
    struct gw_geom g = {2, 1, 4, 10};
    struct gw_fo_chunk *refs = make_layout(&g, -1);
    struct gw_fo_input in = {
        .geom = g, .chunks = refs, .n_stripes = 2, .start = 0, .end = 10,
        .readable = all_up, .max_piece = 1, .max_entries = 9,
    };
    struct gw_fo_plan p;
    struct cmn_err e;
    cmn_err_clear(&e);
    is_int(gw_fo_plan_build(&in, &p, &e), LODE_ETOOLARGE, "10 pieces over a limit of 9");
    ok(p.n_pieces == 0 && p.pieces == NULL && p.sources == NULL && e.msg[0], "empty on failure: %s",
       e.msg);
    in.max_entries = 10;
    is_int(gw_fo_plan_build(&in, &p, &e), 0, "10 pieces within a limit of 10");
    gw_fo_plan_free(&p);
    in.max_entries = 0;

    in.end = 11;
    is_int(gw_fo_plan_build(&in, &p, &e), -EINVAL, "range past the object");
    in.end = 10;
    in.start = 11;
    is_int(gw_fo_plan_build(&in, &p, &e), -EINVAL, "start after end");
    in.start = 0;
    in.n_stripes = 3;
    is_int(gw_fo_plan_build(&in, &p, &e), -EINVAL, "stripe count not matching the geometry");
    in.n_stripes = 2;
    in.max_piece = 0;
    is_int(gw_fo_plan_build(&in, &p, &e), -EINVAL, "max_piece 0");
    in.max_piece = 4;
    in.buf_off = UINT64_MAX - 5;
    is_int(gw_fo_plan_build(&in, &p, &e), -EINVAL, "window offset wrapping");
    in.buf_off = 0;
    in.geom.k = 0;
    is_int(gw_fo_plan_build(&in, &p, &e), -EINVAL, "invalid geometry");
    in.geom.k = 2;
    in.readable = NULL;
    is_int(gw_fo_plan_build(&in, &p, &e), -EINVAL, "no readable callback");
    in.start = in.end = 5;
    is_int(gw_fo_plan_build(&in, &p, &e), 0, "empty range needs no callback");
    ok(p.n_pieces == 0 && p.n_locals == 0 && p.n_sources == 0, "empty plan");
    gw_fo_plan_free(&p);
    gw_fo_plan_free(&p);
    ok(1, "freeing an empty plan twice is fine");
    free(refs);
}

static void test_sched(void)
{
    struct gw_fo_sched s;
    gw_fo_sched_init(&s, 10);
    ok(gw_fo_sched_take(&s, 6), "6 of 10");
    ok(gw_fo_sched_take(&s, 4), "4 more: exactly the cap");
    ok(!gw_fo_sched_take(&s, 1), "1 more refused");
    ok(s.inflight == 10, "10 in flight");
    ok(gw_fo_sched_done(&s, 6), "6 done");
    ok(!gw_fo_sched_take(&s, 7), "7 refused with 4 in flight");
    ok(gw_fo_sched_take(&s, 6), "6 admitted");
    ok(gw_fo_sched_done(&s, 10), "all done");
    ok(gw_fo_sched_take(&s, 25), "25 over the cap admitted alone when idle");
    ok(!gw_fo_sched_take(&s, 1), "nothing beside it");
    ok(!gw_fo_sched_done(&s, 26), "returning more than in flight is reported");
    ok(s.inflight == 0, "and stops at 0");
    ok(gw_fo_sched_take(&s, 10) && !gw_fo_sched_take(&s, UINT64_MAX), "huge take refused");
    gw_fo_sched_init(&s, 0);
    ok(gw_fo_sched_take(&s, 1000) && gw_fo_sched_take(&s, 1000), "cap 0: no limit");
    ok(!gw_fo_sched_take(&s, UINT64_MAX), "but no wrap");
}

int main(void)
{
    test_by_hand();
    test_replicas();
    test_limits();
    test_sched();
    test_exhaustive();
    test_random();
    return tap_done();
}
