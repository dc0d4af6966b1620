/* Chunk placement over a cluster-map snapshot (see placement.h). */
#include "gateway/placement.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

struct pnode {
    uint32_t nid;
    uint32_t domain;            /* index into domains */
    enum gw_node_state state;
    uint64_t free;
};

struct pdomain {
    const char *name;           /* into gw_place_map.names */
    uint32_t first, count;      /* its nodes: nodes[first .. first + count) */
};

struct gw_place_map {
    size_t n_nodes, n_domains;
    struct pnode *nodes;        /* grouped by domain, domains by name, nid ascending inside */
    struct pdomain *domains;
    uint32_t *by_nid;           /* node indexes sorted by nid, for lookups */
    char *names;
};

uint64_t gw_rand_splitmix(void *ctx)
{
    uint64_t *s = ctx;
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform below bound (> 0). The modulo bias is below bound / 2^128: irrelevant here. */
static u128 rand_below(struct gw_rand rnd, u128 bound)
{
    u128 r = (u128)rnd.next(rnd.ctx) << 64;
    r |= rnd.next(rnd.ctx);
    return r % bound;
}

/* ---- snapshot ---- */

static int cmp_input(const void *a, const void *b)
{
    const struct gw_node_info *x = *(const struct gw_node_info *const *)a;
    const struct gw_node_info *y = *(const struct gw_node_info *const *)b;
    int c = strcmp(x->domain, y->domain);
    if (c != 0)
        return c;
    return x->nid < y->nid ? -1 : x->nid > y->nid;
}

/* Node indexes by nid: qsort_r (glibc) passes the snapshot as context. */
static int cmp_nid(const void *a, const void *b, void *ctx)
{
    const struct gw_place_map *m = ctx;
    uint32_t x = m->nodes[*(const uint32_t *)a].nid, y = m->nodes[*(const uint32_t *)b].nid;
    return x < y ? -1 : x > y;
}

void gw_place_map_free(struct gw_place_map *map)
{
    if (!map)
        return;
    free(map->nodes);
    free(map->domains);
    free(map->by_nid);
    free(map->names);
    free(map);
}

static int validate(const struct gw_node_info *nodes, size_t n, size_t *names_len,
                    struct cmn_err *err)
{
    *names_len = 0;
    if (n > GW_PLACE_MAX_NODES)
        return cmn_err_set(err, -EINVAL, "cluster map has %zu nodes, more than the %u "
                           "placement handles", n, GW_PLACE_MAX_NODES);
    for (size_t i = 0; i < n; i++) {
        const struct gw_node_info *x = &nodes[i];
        if (x->nid == 0)
            return cmn_err_set(err, -EINVAL, "cluster map: node #%zu has nid 0", i);
        if (!x->domain)
            return cmn_err_set(err, -EINVAL, "cluster map: node %" PRIu32 " has no failure "
                               "domain", x->nid);
        size_t len = strnlen(x->domain, GW_PLACE_MAX_DOMAIN_LEN + 1);
        if (len > GW_PLACE_MAX_DOMAIN_LEN)
            return cmn_err_set(err, -EINVAL, "cluster map: node %" PRIu32 " has a failure "
                               "domain longer than %u bytes", x->nid, GW_PLACE_MAX_DOMAIN_LEN);
        if ((unsigned)x->state > GW_NODE_REMOVED)
            return cmn_err_set(err, -EINVAL, "cluster map: node %" PRIu32 " has unknown state "
                               "%d", x->nid, (int)x->state);
        *names_len += len + 1;
    }
    return 0;
}

int gw_place_map_new(const struct gw_node_info *nodes, size_t n, struct gw_place_map **out,
                     struct cmn_err *err)
{
    *out = NULL;
    size_t names_len = 0;
    int rc = validate(nodes, n, &names_len, err);
    if (rc != 0)
        return rc;
    struct gw_place_map *m = calloc(1, sizeof(*m));
    const struct gw_node_info **order = calloc(n + 1, sizeof(*order));
    if (m) {
        m->nodes = calloc(n + 1, sizeof(*m->nodes));
        m->domains = calloc(n + 1, sizeof(*m->domains));
        m->by_nid = calloc(n + 1, sizeof(*m->by_nid));
        m->names = malloc(names_len + 1);
    }
    if (!m || !order || !m->nodes || !m->domains || !m->by_nid || !m->names) {
        free(order);
        gw_place_map_free(m);
        return cmn_err_set(err, -ENOMEM, "cluster map of %zu nodes: out of memory", n);
    }
    /* Sorting by (domain, nid) makes the snapshot, and so every placement drawn from it,
     * independent of the order the map listed its nodes in. */
    for (size_t i = 0; i < n; i++)
        order[i] = &nodes[i];
    qsort(order, n, sizeof(*order), cmp_input);
    char *names = m->names;
    for (size_t i = 0; i < n; i++) {
        const struct gw_node_info *x = order[i];
        /* An empty domain is the node's own: it never groups with another node. */
        bool same = i > 0 && x->domain[0] != '\0' && strcmp(x->domain, order[i - 1]->domain) == 0;
        if (!same) {
            size_t len = strlen(x->domain);
            memcpy(names, x->domain, len + 1);
            m->domains[m->n_domains].name = names;
            m->domains[m->n_domains].first = (uint32_t)i;
            names += len + 1;
            m->n_domains++;
        }
        struct pdomain *d = &m->domains[m->n_domains - 1];
        d->count++;
        m->nodes[i] = (struct pnode){x->nid, (uint32_t)(m->n_domains - 1), x->state,
                                     x->capacity > x->used ? x->capacity - x->used : 0};
        m->by_nid[i] = (uint32_t)i;
    }
    m->n_nodes = n;
    free(order);
    qsort_r(m->by_nid, n, sizeof(*m->by_nid), cmp_nid, m);
    for (size_t i = 1; i < n; i++)
        if (m->nodes[m->by_nid[i]].nid == m->nodes[m->by_nid[i - 1]].nid) {
            uint32_t dup = m->nodes[m->by_nid[i]].nid;
            gw_place_map_free(m);
            return cmn_err_set(err, -EINVAL, "cluster map lists node %" PRIu32 " twice", dup);
        }
    *out = m;
    return 0;
}

size_t gw_place_map_nodes(const struct gw_place_map *map)
{
    return map->n_nodes;
}

size_t gw_place_map_domains(const struct gw_place_map *map)
{
    return map->n_domains;
}

/* Index of node nid, or -1. */
static long find_node(const struct gw_place_map *m, uint32_t nid)
{
    size_t lo = 0, hi = m->n_nodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t x = m->nodes[m->by_nid[mid]].nid;
        if (x == nid)
            return m->by_nid[mid];
        if (x < nid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const char *gw_place_node_domain(const struct gw_place_map *map, uint32_t nid)
{
    long i = find_node(map, nid);
    return i < 0 ? NULL : map->domains[map->nodes[i].domain].name;
}

/* ---- choosing ---- */

/* Per-call working memory, in proportion to the snapshot. */
struct scratch {
    u128 *weight;               /* per domain: free bytes of its eligible nodes */
    uint32_t *cand;             /* domains still in the draw */
    uint8_t *skip_node, *skip_domain;
};

static int scratch_init(struct scratch *s, const struct gw_place_map *m, struct cmn_err *err)
{
    s->weight = calloc(m->n_domains + 1, sizeof(*s->weight));
    s->cand = calloc(m->n_domains + 1, sizeof(*s->cand));
    s->skip_node = calloc(m->n_nodes + 1, 1);
    s->skip_domain = calloc(m->n_domains + 1, 1);
    if (s->weight && s->cand && s->skip_node && s->skip_domain)
        return 0;
    free(s->weight);
    free(s->cand);
    free(s->skip_node);
    free(s->skip_domain);
    return cmn_err_set(err, -ENOMEM, "placement: out of memory");
}

static void scratch_free(struct scratch *s)
{
    free(s->weight);
    free(s->cand);
    free(s->skip_node);
    free(s->skip_domain);
}

static void skip_nids(struct scratch *s, const struct gw_place_map *m, const uint32_t *nids,
                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        long x = find_node(m, nids[i]);
        if (x >= 0)
            s->skip_node[x] = 1;
    }
}

static bool eligible(const struct pnode *x, uint64_t need)
{
    return x->state == GW_NODE_UP && x->free >= need && x->free > 0;
}

/* Fills s->weight and s->cand; returns the number of candidate domains. */
static size_t weigh(struct scratch *s, const struct gw_place_map *m, uint64_t need)
{
    size_t n = 0;
    for (size_t d = 0; d < m->n_domains; d++) {
        const struct pdomain *dom = &m->domains[d];
        u128 w = 0;
        if (!s->skip_domain[d])
            for (uint32_t i = dom->first; i < dom->first + dom->count; i++)
                if (!s->skip_node[i] && eligible(&m->nodes[i], need))
                    w += m->nodes[i].free;
        s->weight[d] = w;
        if (w > 0)
            s->cand[n++] = (uint32_t)d;
    }
    return n;
}

/* A node of domain d in proportion to free bytes. */
static uint32_t pick_node(const struct scratch *s, const struct gw_place_map *m, uint32_t d,
                          uint64_t need, struct gw_rand rnd)
{
    u128 r = rand_below(rnd, s->weight[d]);
    const struct pdomain *dom = &m->domains[d];
    uint32_t last = dom->first;
    for (uint32_t i = dom->first; i < dom->first + dom->count; i++) {
        if (s->skip_node[i] || !eligible(&m->nodes[i], need))
            continue;
        last = i;
        if (r < m->nodes[i].free)
            return i;
        r -= m->nodes[i].free;
    }
    return last; /* unreachable: r < the domain's weight */
}

/* Chooses `count` nodes in distinct candidate domains (n_cand >= count): out[] gets node
 * indexes in random order. */
static void draw(struct scratch *s, const struct gw_place_map *m, size_t n_cand, unsigned count,
                 uint64_t need, struct gw_rand rnd, uint32_t *out)
{
    uint32_t chosen[GW_EC_MAX_N];
    unsigned n_chosen = 0;
    u128 total = 0;
    for (size_t i = 0; i < n_cand; i++)
        total += s->weight[s->cand[i]];

    /* A domain holding at least 1/left of the remaining weight would need an inclusion
     * probability >= 1: take it for certain, then share the rest among the others. */
    for (bool again = true; again && n_chosen < count;) {
        again = false;
        unsigned left = count - n_chosen;
        u128 rest = total;
        for (size_t i = 0; i < n_cand;) {
            u128 w = s->weight[s->cand[i]];
            if ((u128)left * w >= rest) {
                chosen[n_chosen++] = s->cand[i];
                total -= w;
                s->cand[i] = s->cand[--n_cand];
                again = true;
            } else {
                i++;
            }
        }
    }

    unsigned left = count - n_chosen;
    if (left > 0) {
        /* Systematic sampling over a random order: candidate i owns [left * C_i,
         * left * C_(i+1)) where C is the running weight; that interval is shorter than
         * `total`, and the points U + t * total (0 <= t < left, U uniform below total) fall
         * in distinct intervals, one per chosen domain. So each domain is included with
         * probability exactly left * w_i / total, and exactly `left` are drawn. */
        for (size_t i = n_cand; i > 1; i--) {
            size_t j = (size_t)rand_below(rnd, i);
            uint32_t t = s->cand[i - 1];
            s->cand[i - 1] = s->cand[j];
            s->cand[j] = t;
        }
        u128 point = rand_below(rnd, total), cum = 0;
        unsigned drawn = 0;
        for (size_t i = 0; i < n_cand && drawn < left; i++) {
            cum += s->weight[s->cand[i]];
            if (point < (u128)left * cum) {
                chosen[n_chosen++] = s->cand[i];
                point += total;
                drawn++;
            }
        }
    }

    /* Random chunk roles: which chosen node gets which chunk index. */
    for (unsigned i = n_chosen; i > 1; i--) {
        unsigned j = (unsigned)rand_below(rnd, i);
        uint32_t t = chosen[i - 1];
        chosen[i - 1] = chosen[j];
        chosen[j] = t;
    }
    for (unsigned i = 0; i < n_chosen; i++)
        out[i] = pick_node(s, m, chosen[i], need, rnd);
}

static int no_space(struct cmn_err *err, unsigned need_domains, uint64_t bytes, size_t have,
                    const struct gw_place_map *m)
{
    return cmn_err_set(err, LODE_ENOSPACE,
                       "need %u failure domains with an UP node that has %" PRIu64
                       " bytes free, %zu available (of %zu domains in the cluster map)",
                       need_domains, bytes, have, m->n_domains);
}

int gw_place_stripe(const struct gw_place_map *map, const struct gw_place_req *req,
                    struct gw_rand rnd, uint32_t out[GW_EC_MAX_N], struct cmn_err *err)
{
    uint32_t all = ((uint32_t)1 << GW_EC_MAX_N) - 1;
    if (req->chunks == 0 || (req->chunks & ~all))
        return cmn_err_set(err, -EINVAL, "placement: chunk set 0x%" PRIx32 " is empty or "
                           "names a chunk beyond %d", req->chunks, GW_EC_MAX_N);
    unsigned count = (unsigned)__builtin_popcount(req->chunks);
    struct scratch s;
    int rc = scratch_init(&s, map, err);
    if (rc != 0)
        return rc;
    skip_nids(&s, map, req->avoid_nids, req->n_avoid_nids);
    size_t n_cand = weigh(&s, map, req->chunk_bytes);
    if (n_cand < count) {
        scratch_free(&s);
        return no_space(err, count, req->chunk_bytes, n_cand, map);
    }
    uint32_t idx[GW_EC_MAX_N];
    draw(&s, map, n_cand, count, req->chunk_bytes, rnd, idx);
    scratch_free(&s);
    unsigned k = 0;
    for (unsigned i = 0; i < GW_EC_MAX_N; i++)
        out[i] = (req->chunks & (1u << i)) ? map->nodes[idx[k++]].nid : 0;
    return 0;
}

int gw_place_replace(const struct gw_place_map *map, const uint32_t *stripe_nids, unsigned n,
                     unsigned index, uint64_t chunk_bytes, const uint32_t *avoid_nids,
                     size_t n_avoid_nids, struct gw_rand rnd, uint32_t *out,
                     struct cmn_err *err)
{
    if (n == 0 || n > GW_EC_MAX_N || index >= n)
        return cmn_err_set(err, -EINVAL, "placement: chunk %u of a %u-chunk stripe", index, n);
    struct scratch s;
    int rc = scratch_init(&s, map, err);
    if (rc != 0)
        return rc;
    skip_nids(&s, map, avoid_nids, n_avoid_nids);
    skip_nids(&s, map, &stripe_nids[index], 1);
    unsigned held = 0;
    for (unsigned j = 0; j < n; j++) {
        if (j == index || stripe_nids[j] == 0)
            continue;
        long x = find_node(map, stripe_nids[j]);
        if (x < 0) {
            scratch_free(&s);
            return cmn_err_set(err, LODE_ENONODE, "placement: chunk %u of the stripe is on node "
                               "%" PRIu32 ", which the cluster map does not list", j,
                               stripe_nids[j]);
        }
        s.skip_domain[map->nodes[x].domain] = 1;
        held++;
    }
    size_t n_cand = weigh(&s, map, chunk_bytes);
    if (n_cand == 0) {
        scratch_free(&s);
        return cmn_err_set(err, LODE_ENOSPACE,
                           "no failure domain besides the %u holding the stripe's other chunks "
                           "has an UP node with %" PRIu64 " bytes free", held, chunk_bytes);
    }
    uint32_t idx;
    draw(&s, map, n_cand, 1, chunk_bytes, rnd, &idx);
    scratch_free(&s);
    *out = map->nodes[idx].nid;
    return 0;
}

unsigned gw_place_usable_domains(const struct gw_place_map *map, uint64_t chunk_bytes)
{
    unsigned n = 0;
    for (size_t d = 0; d < map->n_domains; d++) {
        const struct pdomain *dom = &map->domains[d];
        for (uint32_t i = dom->first; i < dom->first + dom->count; i++)
            if (eligible(&map->nodes[i], chunk_bytes)) {
                n++;
                break;
            }
    }
    return n;
}
