/* gateway/placement.c: distinct domains, eligibility, errors, replacement, determinism, and
 * the weighting: over many draws each node's chunk count is compared (chi-square) with its
 * expected share, computed here from the specification: a domain is included with
 * probability min(1, n * W_d / W) after setting aside, repeatedly, the domains that reach 1;
 * within a domain a node is drawn in proportion to its free bytes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/placement.h"
#include "tests/tap.h"

#define MAXN 256

struct cluster {
    struct gw_node_info node[MAXN];
    char name[MAXN][32];
    size_t n;
};

static void add(struct cluster *c, uint32_t nid, const char *domain, enum gw_node_state st,
                uint64_t capacity, uint64_t used)
{
    size_t i = c->n++;
    snprintf(c->name[i], sizeof(c->name[i]), "%s", domain);
    c->node[i] = (struct gw_node_info){nid, c->name[i], st, capacity, used};
}

static struct gw_place_map *build(const struct cluster *c)
{
    struct gw_place_map *m = NULL;
    struct cmn_err err;
    if (gw_place_map_new(c->node, c->n, &m, &err) != 0)
        tap_bail("map: %s", err.msg);
    return m;
}

static const struct gw_node_info *node_of(const struct cluster *c, uint32_t nid)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->node[i].nid == nid)
            return &c->node[i];
    return NULL;
}

static uint64_t free_of(const struct gw_node_info *x)
{
    return x->capacity > x->used ? x->capacity - x->used : 0;
}

static bool usable(const struct gw_node_info *x, uint64_t need)
{
    return x->state == GW_NODE_UP && free_of(x) >= need && free_of(x) > 0;
}

/* Reference expectation: exp[i] = probability that node i receives one of n chunks. */
static void expected_share(const struct cluster *c, unsigned n, uint64_t need, double *exp)
{
    char dom[MAXN][32];
    double w[MAXN], incl[MAXN];
    size_t nd = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t d = 0;
        while (d < nd && strcmp(dom[d], c->name[i]) != 0)
            d++;
        if (d == nd) {
            snprintf(dom[nd], sizeof(dom[nd]), "%s", c->name[i]);
            w[nd] = 0;
            incl[nd] = -1;
            nd++;
        }
        if (usable(&c->node[i], need))
            w[d] += (double)free_of(&c->node[i]);
    }
    unsigned left = n;
    for (bool again = true; again;) {
        again = false;
        double total = 0;
        for (size_t d = 0; d < nd; d++)
            if (incl[d] < 0)
                total += w[d];
        unsigned certain = 0;
        for (size_t d = 0; d < nd; d++)
            if (incl[d] < 0 && w[d] > 0 && left * w[d] >= total) {
                incl[d] = 1;
                certain++;
                again = true;
            }
        left -= certain;
        if (!again)
            for (size_t d = 0; d < nd; d++)
                if (incl[d] < 0)
                    incl[d] = total > 0 ? left * w[d] / total : 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        size_t d = 0;
        while (strcmp(dom[d], c->name[i]) != 0)
            d++;
        exp[i] = usable(&c->node[i], need) ? incl[d] * (double)free_of(&c->node[i]) / w[d] : 0;
    }
}

/* Draws `rounds` stripes of the chunks in `mask`; checks every invariant on each draw and
 * returns the chi-square of the per-node counts against expected_share(). *broken counts
 * draws that broke an invariant (repeated domain, ineligible node, wrong slots). */
static double run_draws(const struct cluster *c, uint32_t mask, uint64_t need, int rounds,
                        uint64_t seed, unsigned *broken, double *df)
{
    struct gw_place_map *m = build(c);
    unsigned count = (unsigned)__builtin_popcount(mask);
    double exp[MAXN], chi = 0;
    long got[MAXN] = {0};
    expected_share(c, count, need, exp);
    struct gw_rand rnd = {gw_rand_splitmix, &seed};
    struct gw_place_req req = {mask, need, NULL, 0};
    *broken = 0;
    for (int r = 0; r < rounds; r++) {
        uint32_t out[GW_EC_MAX_N];
        if (gw_place_stripe(m, &req, rnd, out, NULL) != 0) {
            (*broken)++;
            continue;
        }
        const char *seen[GW_EC_MAX_N];
        unsigned n_seen = 0;
        for (unsigned i = 0; i < GW_EC_MAX_N; i++) {
            if (!(mask & (1u << i))) {
                *broken += out[i] != 0;
                continue;
            }
            const struct gw_node_info *x = node_of(c, out[i]);
            if (!x || !usable(x, need)) {
                (*broken)++;
                continue;
            }
            for (unsigned s = 0; s < n_seen; s++)
                *broken += strcmp(seen[s], x->domain) == 0;
            seen[n_seen++] = x->domain;
            got[x - c->node]++;
        }
    }
    *df = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (exp[i] == 0) {
            *broken += got[i] != 0;
            continue;
        }
        double e = exp[i] * rounds, d = (double)got[i] - e;
        chi += d * d / e;
        *df += 1;
    }
    gw_place_map_free(m);
    return chi;
}

/* Generous for a fixed seed: the mean of this statistic is below df. */
static bool chi_ok(double chi, double df)
{
    return chi < df + 6 * sqrt(2 * df) + 10;
}

static void test_map(void)
{
    struct cluster c = {.n = 0};
    struct gw_place_map *m;
    struct cmn_err err;
    add(&c, 0, "r1", GW_NODE_UP, 100, 0);
    cmn_err_clear(&err);
    is_int(gw_place_map_new(c.node, c.n, &m, &err), -EINVAL, "nid 0 refused");
    ok(m == NULL && strstr(err.msg, "nid 0") != NULL, "message: %s", err.msg);
    c.n = 0;
    add(&c, 3, "r1", GW_NODE_UP, 100, 0);
    add(&c, 3, "r2", GW_NODE_UP, 100, 0);
    cmn_err_clear(&err);
    is_int(gw_place_map_new(c.node, c.n, &m, &err), -EINVAL, "a repeated nid is refused");
    ok(strstr(err.msg, "node 3 twice") != NULL, "message: %s", err.msg);
    c.node[1].nid = 4;
    c.node[1].domain = NULL;
    is_int(gw_place_map_new(c.node, c.n, &m, NULL), -EINVAL, "a NULL domain is refused");
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    c.node[1].domain = longname;
    is_int(gw_place_map_new(c.node, c.n, &m, NULL), -EINVAL, "a 299-byte domain is refused");
    c.node[1].domain = "r2";
    c.node[1].state = (enum gw_node_state)9;
    is_int(gw_place_map_new(c.node, c.n, &m, NULL), -EINVAL, "an unknown state is refused");
    struct gw_node_info *many = calloc(GW_PLACE_MAX_NODES + 1, sizeof(*many));
    for (uint32_t i = 0; i <= GW_PLACE_MAX_NODES; i++)
        many[i] = (struct gw_node_info){i + 1, "d", GW_NODE_UP, 10, 0};
    is_int(gw_place_map_new(many, GW_PLACE_MAX_NODES + 1, &m, NULL), -EINVAL,
           "more than %u nodes refused", GW_PLACE_MAX_NODES);
    is_int(gw_place_map_new(many, GW_PLACE_MAX_NODES, &m, NULL), 0, "%u nodes accepted",
           GW_PLACE_MAX_NODES);
    gw_place_map_free(m);
    free(many);

    c.n = 0;
    add(&c, 7, "rack-b", GW_NODE_UP, 100, 0);
    add(&c, 2, "rack-a", GW_NODE_DOWN, 100, 0);
    add(&c, 9, "rack-b", GW_NODE_UP, 100, 0);
    add(&c, 5, "", GW_NODE_UP, 100, 0);
    add(&c, 6, "", GW_NODE_UP, 100, 0);
    m = build(&c);
    ok(gw_place_map_nodes(m) == 5 && gw_place_map_domains(m) == 4,
       "5 nodes in 4 domains: two empty domains stay separate");
    is_str(gw_place_node_domain(m, 9), "rack-b", "domain of node 9");
    ok(gw_place_node_domain(m, 8) == NULL, "unknown node has no domain");
    is_int(gw_place_usable_domains(m, 1), 3, "3 domains have an UP node");
    is_int(gw_place_usable_domains(m, 101), 0, "none has 101 bytes free");
    gw_place_map_free(m);

    struct gw_place_map *empty;
    uint32_t out[GW_EC_MAX_N];
    uint64_t seed = 1;
    struct gw_place_req req = {1, 1, NULL, 0};
    ok(gw_place_map_new(NULL, 0, &empty, NULL) == 0 &&
           gw_place_stripe(empty, &req, (struct gw_rand){gw_rand_splitmix, &seed}, out, NULL) ==
               LODE_ENOSPACE,
       "an empty map is valid and places nothing");
    gw_place_map_free(empty);
}

/* 10 racks of 3 nodes; rack r node i has nid 10 r + i + 1 and free space that varies. */
static void rack_cluster(struct cluster *c)
{
    c->n = 0;
    for (unsigned r = 0; r < 10; r++) {
        char d[16];
        snprintf(d, sizeof(d), "rack%u", r);
        for (unsigned i = 0; i < 3; i++)
            add(c, 10 * r + i + 1, d, GW_NODE_UP, 1000000, 1000 * (37 * r + 101 * i) % 700000);
    }
}

static void test_eligibility(void)
{
    struct cluster c;
    rack_cluster(&c);
    /* Every ineligible kind, in racks that keep other nodes. */
    c.node[0].state = GW_NODE_DOWN;
    c.node[3].state = GW_NODE_SUSPECT;
    c.node[6].state = GW_NODE_DRAINING;
    c.node[9].state = GW_NODE_REMOVED;
    c.node[12].state = GW_NODE_UNKNOWN;
    c.node[15].used = c.node[15].capacity;         /* full */
    c.node[18].used = c.node[18].capacity + 5;     /* over full */
    c.node[21].used = c.node[21].capacity - 4095;  /* less than a 4096-byte chunk free */
    unsigned broken;
    double df;
    double chi = run_draws(&c, 0x3f, 4096, 20000, 42, &broken, &df);
    is_int(broken, 0, "20000 stripes of 4+2: distinct domains, only UP nodes with room");
    ok(chi_ok(chi, df), "chunk counts track free space: chi-square %.1f, %g nodes", chi, df);
    chi = run_draws(&c, 0x31, 4096, 5000, 43, &broken, &df);
    ok(broken == 0 && chi_ok(chi, df),
       "a tail stripe storing chunks 0, 4, 5: three nodes, the other slots 0 (chi %.1f)", chi);
    chi = run_draws(&c, 0xffffff, 1, 2000, 44, &broken, &df);
    is_int(broken, 2000, "24 chunks cannot go to 10 racks");
}

static void test_weighting(void)
{
    struct cluster c = {.n = 0};
    unsigned broken;
    double df, chi;
    /* As many domains as chunks: every domain every time; only the node choice varies. */
    static const uint64_t frees[6][3] = {{100, 200, 700}, {500, 500, 0}, {1, 10, 100},
                                         {900, 50, 50}, {300, 300, 300}, {2000, 1000, 500}};
    for (unsigned d = 0; d < 6; d++) {
        char name[8];
        snprintf(name, sizeof(name), "d%u", d);
        for (unsigned i = 0; i < 3; i++)
            add(&c, 3 * d + i + 1, name, GW_NODE_UP, 10000, 10000 - frees[d][i]);
    }
    chi = run_draws(&c, 0x3f, 1, 30000, 7, &broken, &df);
    ok(broken == 0 && chi_ok(chi, df),
       "6 domains for 4+2: nodes drawn in proportion to free bytes (chi-square %.1f, %g nodes)",
       chi, df);

    /* One node per domain, a domain with half the free space: it is taken for certain,
     * the others in proportion (inclusion 1, 1/2, 1/2, 1/4 x 3, 1/8 x 2 for 3 chunks). */
    c.n = 0;
    static const uint64_t single[8] = {4000, 1000, 1000, 500, 500, 500, 250, 250};
    for (unsigned d = 0; d < 8; d++) {
        char name[8];
        snprintf(name, sizeof(name), "s%u", d);
        add(&c, d + 1, name, GW_NODE_UP, 5000, 5000 - single[d]);
    }
    double exp[MAXN];
    expected_share(&c, 3, 1, exp);
    ok(exp[0] == 1 && exp[1] == 0.5 && exp[3] == 0.25 && exp[7] == 0.125,
       "reference inclusion probabilities are the hand-computed 1, 1/2, 1/4, 1/8");
    chi = run_draws(&c, 0x7, 1, 40000, 8, &broken, &df);
    ok(broken == 0 && chi_ok(chi, df),
       "8 single-node domains, 3 chunks: inclusion follows free space with capping "
       "(chi-square %.1f, %g nodes)", chi, df);

    /* Uneven racks, more domains than chunks. */
    c.n = 0;
    uint64_t seed = 99;
    uint32_t nid = 1;
    for (unsigned d = 0; d < 12; d++) {
        char name[8];
        snprintf(name, sizeof(name), "u%02u", d);
        unsigned nodes = 1 + (unsigned)(gw_rand_splitmix(&seed) % 4);
        for (unsigned i = 0; i < nodes; i++)
            add(&c, nid++, name, GW_NODE_UP, 1u << 30, gw_rand_splitmix(&seed) % (1u << 30));
    }
    chi = run_draws(&c, 0x3f, 1 << 20, 30000, 9, &broken, &df);
    ok(broken == 0 && chi_ok(chi, df),
       "12 uneven racks, 4+2 with 1 MiB chunks: per-node counts follow the expected share "
       "(chi-square %.1f, %g nodes)", chi, df);

    /* Heterogeneous capacities, all empty: shares follow capacity, so utilisation stays
     * equal. */
    c.n = 0;
    add(&c, 1, "a", GW_NODE_UP, (uint64_t)1 << 40, 0);
    add(&c, 2, "a", GW_NODE_UP, (uint64_t)4 << 40, 0);
    add(&c, 3, "b", GW_NODE_UP, (uint64_t)2 << 40, 0);
    add(&c, 4, "b", GW_NODE_UP, (uint64_t)2 << 40, 0);
    add(&c, 5, "c", GW_NODE_UP, (uint64_t)1 << 62, 0);
    add(&c, 6, "c", GW_NODE_UP, UINT64_MAX, 0);
    chi = run_draws(&c, 0x7, 1, 20000, 10, &broken, &df);
    ok(broken == 0 && chi_ok(chi, df), "terabyte and 2^64-byte capacities: no overflow, "
       "shares follow free bytes (chi-square %.1f)", chi);
}

/* Fills a cluster stripe by stripe, refreshing the snapshot as heartbeats would, and
 * checks that the spread of utilisation narrows. */
static void test_evening(void)
{
    struct cluster c = {.n = 0};
    uint64_t seed = 5;
    for (unsigned d = 0; d < 8; d++) {
        char name[8];
        snprintf(name, sizeof(name), "e%u", d);
        for (unsigned i = 0; i < 2; i++)
            add(&c, 2 * d + i + 1, name, GW_NODE_UP, 100000, gw_rand_splitmix(&seed) % 60000);
    }
    double lo = 1, hi = 0;
    for (size_t i = 0; i < c.n; i++) {
        double u = (double)c.node[i].used / (double)c.node[i].capacity;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    double spread0 = hi - lo;
    struct gw_rand rnd = {gw_rand_splitmix, &seed};
    struct gw_place_req req = {0x3f, 100, NULL, 0};
    unsigned failed = 0;
    for (int epoch = 0; epoch < 70; epoch++) {
        struct gw_place_map *m = build(&c);
        for (int s = 0; s < 20; s++) {
            uint32_t out[GW_EC_MAX_N];
            if (gw_place_stripe(m, &req, rnd, out, NULL) != 0) {
                failed++;
                continue;
            }
            for (unsigned i = 0; i < 6; i++)
                for (size_t j = 0; j < c.n; j++)
                    if (c.node[j].nid == out[i])
                        c.node[j].used += 100;
        }
        gw_place_map_free(m);
    }
    lo = 1;
    hi = 0;
    for (size_t i = 0; i < c.n; i++) {
        double u = (double)c.node[i].used / (double)c.node[i].capacity;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    ok(failed == 0 && hi - lo < spread0 / 2,
       "filling to %.0f%%..%.0f%% used narrows the utilisation spread from %.1f%% to %.1f%%",
       100 * lo, 100 * hi, 100 * spread0, 100 * (hi - lo));
}

static void test_errors(void)
{
    struct cluster c = {.n = 0};
    for (unsigned d = 0; d < 6; d++) {
        char name[8];
        snprintf(name, sizeof(name), "r%u", d);
        add(&c, 2 * d + 1, name, d < 2 ? GW_NODE_DOWN : GW_NODE_UP, 1000, 0);
        add(&c, 2 * d + 2, name, d == 0 ? GW_NODE_DOWN : d == 1 ? GW_NODE_DRAINING : GW_NODE_UP,
            1000, d == 5 ? 900 : 0);
    }
    struct gw_place_map *m = build(&c);
    uint64_t seed = 3;
    struct gw_rand rnd = {gw_rand_splitmix, &seed};
    struct gw_place_req req = {0x3f, 100, NULL, 0};
    uint32_t out[GW_EC_MAX_N] = {0};
    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(gw_place_stripe(m, &req, rnd, out, &err), LODE_ENOSPACE,
           "4+2 with two racks down fails");
    ok(strstr(err.msg, "need 6 failure domains") && strstr(err.msg, "4 available"),
       "message: %s", err.msg);
    is_int(gw_place_usable_domains(m, 100), 4, "4 usable domains");
    req.chunks = 0xf;
    ok(gw_place_stripe(m, &req, rnd, out, NULL) == 0 && out[0] && out[3] && !out[4],
       "2+2 fits the 4 racks left");
    /* rack 5 has a node with 1000 and one with 100 bytes free. */
    is_int(gw_place_usable_domains(m, 101), 4, "101 bytes: rack 5 still has its empty node");
    c.node[10].used = 950;
    gw_place_map_free(m);
    m = build(&c);
    is_int(gw_place_usable_domains(m, 101), 3, "with that node at 950 of 1000: 3 domains");
    cmn_err_clear(&err);
    ok(gw_place_stripe(m, &(struct gw_place_req){0xf, 101, NULL, 0}, rnd, out, &err) ==
           LODE_ENOSPACE && strstr(err.msg, "101 bytes free"),
       "chunks bigger than the free space are refused: %s", err.msg);
    is_int(gw_place_stripe(m, &(struct gw_place_req){0, 1, NULL, 0}, rnd, out, NULL), -EINVAL,
           "empty chunk set refused");
    is_int(gw_place_stripe(m, &(struct gw_place_req){1u << 24, 1, NULL, 0}, rnd, out, NULL),
           -EINVAL, "chunk index 24 refused");
    /* avoid: with nodes 5, 7 avoided, racks 2 and 3 keep nodes 6 and 8 only. */
    uint32_t avoid[] = {5, 7, 12345};
    unsigned bad = 0;
    for (int r = 0; r < 2000; r++) {
        if (gw_place_stripe(m, &(struct gw_place_req){0xf, 1, avoid, 3}, rnd, out, NULL) != 0)
            bad++;
        for (int i = 0; i < 4; i++)
            bad += out[i] == 5 || out[i] == 7;
    }
    is_int(bad, 0, "avoided nodes are never chosen (unknown avoided nids ignored)");
    gw_place_map_free(m);
}

static void test_replace(void)
{
    struct cluster c;
    rack_cluster(&c);
    struct gw_place_map *m = build(&c);
    uint64_t seed = 11;
    struct gw_rand rnd = {gw_rand_splitmix, &seed};
    uint32_t stripe[GW_EC_MAX_N];
    ok(gw_place_stripe(m, &(struct gw_place_req){0x3d, 1, NULL, 0}, rnd, stripe, NULL) == 0 &&
           stripe[1] == 0,
       "a 4+2 stripe with absent chunk 1");
    unsigned bad = 0, same_domain = 0;
    uint32_t avoid[1];
    for (int r = 0; r < 5000; r++) {
        unsigned index = (unsigned)(r % 6);
        if (index == 1)
            continue;
        /* The failed chunk's rack-mate that is not avoided remains allowed. */
        const char *failed = gw_place_node_domain(m, stripe[index]);
        avoid[0] = stripe[index] % 10 == 1 ? stripe[index] + 1 : stripe[index] - 1;
        uint32_t nid = 0;
        if (gw_place_replace(m, stripe, 6, index, 1, avoid, 1, rnd, &nid, NULL) != 0) {
            bad++;
            continue;
        }
        const char *dom = gw_place_node_domain(m, nid);
        bad += nid == stripe[index] || nid == avoid[0] || dom == NULL;
        for (unsigned j = 0; j < 6; j++)
            if (j != index && stripe[j])
                bad += strcmp(dom, gw_place_node_domain(m, stripe[j])) == 0;
        same_domain += strcmp(dom, failed) == 0;
    }
    is_int(bad, 0, "replacements avoid the stripe's other domains, the failed node and the "
           "avoided ones");
    ok(same_domain > 0, "the failed node's own domain stays available (%u of the draws)",
       same_domain);

    struct cmn_err err;
    uint32_t nid;
    uint32_t ghost[6] = {1, 11, 21, 31, 4242, 51};
    cmn_err_clear(&err);
    is_int(gw_place_replace(m, ghost, 6, 0, 1, NULL, 0, rnd, &nid, &err), LODE_ENONODE,
           "a stripe on an unknown node: no guess");
    ok(strstr(err.msg, "4242") != NULL, "message: %s", err.msg);
    ghost[4] = 0;
    ok(gw_place_replace(m, ghost, 6, 4, 1, NULL, 0, rnd, &nid, NULL) == 0,
       "an unknown node in the slot being replaced is fine");
    uint32_t wide[10];
    for (unsigned j = 0; j < 10; j++)
        wide[j] = 10 * j + 1;
    cmn_err_clear(&err);
    is_int(gw_place_replace(m, wide, 10, 3, 1, (uint32_t[]){32, 33}, 2, rnd, &nid, &err),
           LODE_ENOSPACE, "no domain left: the stripe covers every other rack, rack 3 avoided");
    ok(strstr(err.msg, "besides the 9") != NULL, "message: %s", err.msg);
    is_int(gw_place_replace(m, wide, 10, 10, 1, NULL, 0, rnd, &nid, NULL), -EINVAL,
           "index beyond the stripe refused");
    is_int(gw_place_replace(m, wide, 25, 1, 1, NULL, 0, rnd, &nid, NULL), -EINVAL,
           "25 chunks refused");
    gw_place_map_free(m);
}

static void test_determinism(void)
{
    struct cluster c, rev;
    rack_cluster(&c);
    rev.n = 0;
    for (size_t i = c.n; i-- > 0;)
        add(&rev, c.node[i].nid, c.node[i].domain, c.node[i].state, c.node[i].capacity,
            c.node[i].used);
    struct gw_place_map *a = build(&c), *b = build(&rev);
    uint64_t s1 = 77, s2 = 77, s3 = 78;
    unsigned differ = 0, differ_seed = 0;
    for (int r = 0; r < 200; r++) {
        uint32_t x[GW_EC_MAX_N], y[GW_EC_MAX_N], z[GW_EC_MAX_N];
        struct gw_place_req req = {0x3f, 1, NULL, 0};
        gw_place_stripe(a, &req, (struct gw_rand){gw_rand_splitmix, &s1}, x, NULL);
        gw_place_stripe(b, &req, (struct gw_rand){gw_rand_splitmix, &s2}, y, NULL);
        gw_place_stripe(a, &req, (struct gw_rand){gw_rand_splitmix, &s3}, z, NULL);
        differ += memcmp(x, y, sizeof(x)) != 0;
        differ_seed += memcmp(x, z, sizeof(x)) != 0;
    }
    is_int(differ, 0, "same seed, nodes listed in reverse order: the same 200 placements");
    ok(differ_seed > 150, "another seed gives other placements (%u of 200 differ)", differ_seed);
    gw_place_map_free(a);
    gw_place_map_free(b);
}

int main(void)
{
    test_map();
    test_eligibility();
    test_weighting();
    test_evening();
    test_errors();
    test_replace();
    test_determinism();
    return tap_done();
}
