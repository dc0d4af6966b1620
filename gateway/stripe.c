/* Stripe geometry and the layout policy (see stripe.h). */
#include "gateway/stripe.h"

#include <errno.h>
#include <inttypes.h>

int gw_geom_check(const struct gw_geom *g, struct cmn_err *err)
{
    if (g->k < 1 || g->k > GW_EC_MAX_K || g->m > GW_EC_MAX_M)
        return cmn_err_set(err, -EINVAL, "layout: erasure code %u+%u outside 1..%d + 0..%d",
                           g->k, g->m, GW_EC_MAX_K, GW_EC_MAX_M);
    if (g->chunk_size < 1 || g->chunk_size > GW_GEOM_CHUNK_MAX)
        return cmn_err_set(err, -EINVAL, "layout: chunk size %" PRIu32 " outside 1..%u",
                           g->chunk_size, GW_GEOM_CHUNK_MAX);
    if (g->size > GW_OBJECT_MAX)
        return cmn_err_set(err, -EINVAL, "layout: size %" PRIu64 " above the %" PRIu64
                           "-byte limit", g->size, GW_OBJECT_MAX);
    return 0;
}

uint64_t gw_geom_stripe_bytes(const struct gw_geom *g)
{
    return (uint64_t)g->k * g->chunk_size;
}

uint64_t gw_geom_stripes(const struct gw_geom *g)
{
    uint64_t sb = gw_geom_stripe_bytes(g);
    return g->size / sb + (g->size % sb != 0);
}

uint64_t gw_stripe_offset(const struct gw_geom *g, uint64_t s)
{
    return s * gw_geom_stripe_bytes(g);
}

uint64_t gw_stripe_len(const struct gw_geom *g, uint64_t s)
{
    if (s >= gw_geom_stripes(g))
        return 0;
    uint64_t sb = gw_geom_stripe_bytes(g), left = g->size - s * sb;
    return left < sb ? left : sb;
}

uint32_t gw_chunk_len(const struct gw_geom *g, uint64_t s, unsigned c)
{
    uint64_t len = gw_stripe_len(g, s);
    if (c >= g->k + g->m || len == 0)
        return 0;
    if (c >= g->k)
        return (uint32_t)(len < g->chunk_size ? len : g->chunk_size);
    uint64_t start = (uint64_t)c * g->chunk_size;
    if (len <= start)
        return 0;
    len -= start;
    return (uint32_t)(len < g->chunk_size ? len : g->chunk_size);
}

uint32_t gw_stripe_stored(const struct gw_geom *g, uint64_t s)
{
    uint32_t mask = 0;
    for (unsigned c = 0; c < g->k + g->m; c++)
        if (gw_chunk_len(g, s, c) > 0)
            mask |= 1u << c;
    return mask;
}

int gw_stripe_verify(const struct gw_geom *g, uint64_t s, uint64_t offset, uint64_t length,
                     unsigned n_chunks, struct cmn_err *err)
{
    uint64_t n = gw_geom_stripes(g);
    if (s >= n)
        return cmn_err_set(err, LODE_ECORRUPT, "layout: stripe %" PRIu64 " beyond the %" PRIu64
                           " of a %" PRIu64 "-byte object", s, n, g->size);
    if (offset != gw_stripe_offset(g, s) || length != gw_stripe_len(g, s))
        return cmn_err_set(err, LODE_ECORRUPT,
                           "layout: stripe %" PRIu64 " records offset %" PRIu64 " length %" PRIu64
                           ", geometry says %" PRIu64 " and %" PRIu64,
                           s, offset, length, gw_stripe_offset(g, s), gw_stripe_len(g, s));
    if (n_chunks != g->k + g->m)
        return cmn_err_set(err, LODE_ECORRUPT, "layout: stripe %" PRIu64 " has %u chunks, %u+%u"
                           " needs %u", s, n_chunks, g->k, g->m, g->k + g->m);
    return 0;
}

int gw_piece_iter_init(struct gw_piece_iter *it, const struct gw_geom *g, uint64_t off,
                       uint64_t len, struct cmn_err *err)
{
    int rc = gw_geom_check(g, err);
    if (rc != 0)
        return rc;
    if (off > g->size || len > g->size - off)
        return cmn_err_set(err, -ERANGE, "range of %" PRIu64 " bytes at %" PRIu64
                           " is outside the %" PRIu64 "-byte object", len, off, g->size);
    it->g = *g;
    it->pos = off;
    it->start = off;
    it->end = off + len;
    return 0;
}

bool gw_piece_next(struct gw_piece_iter *it, struct gw_piece *p)
{
    if (it->pos >= it->end)
        return false;
    uint64_t sb = gw_geom_stripe_bytes(&it->g), within = it->pos % sb;
    uint64_t cs = it->g.chunk_size, chunk_off = within % cs;
    uint64_t len = cs - chunk_off;
    if (len > it->end - it->pos)
        len = it->end - it->pos;
    p->stripe = it->pos / sb;
    p->chunk = (unsigned)(within / cs);
    p->chunk_off = (uint32_t)chunk_off;
    p->len = (uint32_t)len;
    p->out_off = it->pos - it->start;
    it->pos += len;
    return true;
}

static int check_policy(const struct gw_layout_policy *pol, struct cmn_err *err)
{
    if (pol->k < 1 || pol->k > GW_EC_MAX_K || pol->m > GW_EC_MAX_M)
        return cmn_err_set(err, -EINVAL, "layout policy: erasure code %u+%u outside 1..%d + "
                           "0..%d", pol->k, pol->m, GW_EC_MAX_K, GW_EC_MAX_M);
    uint32_t mc = pol->max_chunk_size;
    if (mc != 0 && (mc < GW_LAYOUT_CHUNK_MIN || mc > GW_LAYOUT_CHUNK_MAX || mc % 4096 != 0))
        return cmn_err_set(err, -EINVAL, "layout policy: max chunk size %" PRIu32 " must be "
                           "a multiple of 4096 in %u..%u", mc, GW_LAYOUT_CHUNK_MIN,
                           GW_LAYOUT_CHUNK_MAX);
    return 0;
}

static uint64_t align_up(uint64_t v)
{
    return (v + GW_STRIPE_ALIGN - 1) / GW_STRIPE_ALIGN * GW_STRIPE_ALIGN;
}

int gw_layout_choose(const struct gw_layout_policy *pol, uint64_t size,
                     struct gw_layout_choice *out, struct cmn_err *err)
{
    int rc = check_policy(pol, err);
    if (rc != 0)
        return rc;
    if (size != GW_SIZE_UNKNOWN && size > GW_OBJECT_MAX)
        return cmn_err_set(err, -ERANGE, "object of %" PRIu64 " bytes exceeds the %" PRIu64
                           "-byte limit", size, GW_OBJECT_MAX);
    uint64_t max_cs = pol->max_chunk_size ? pol->max_chunk_size : GW_LAYOUT_CHUNK_DEFAULT;
    uint64_t small = pol->small_threshold;
    out->m = pol->m;
    if (size == GW_SIZE_UNKNOWN) {
        out->k = pol->k;
        out->chunk_size = (uint32_t)max_cs;
    } else if (size == 0) {
        out->k = 1;
        out->chunk_size = GW_STRIPE_ALIGN;
    } else if (size < small || pol->k == 1) {
        /* A replica is a whole copy, so the chunk is the object when it fits in one. */
        uint64_t cs = align_up(size);
        out->k = 1;
        out->chunk_size = (uint32_t)(cs < max_cs ? cs : max_cs);
    } else if (size < pol->k * max_cs) {
        /* Less than one full stripe: spread it evenly over the k data chunks; the aligned
         * ceil(size / k) never exceeds max_cs, which is itself aligned. */
        out->k = pol->k;
        out->chunk_size = (uint32_t)align_up(size / pol->k + (size % pol->k != 0));
    } else {
        out->k = pol->k;
        out->chunk_size = (uint32_t)max_cs;
    }
    return 0;
}

int gw_layout_fit_domains(const struct gw_layout_policy *pol, unsigned domains,
                          struct gw_layout_policy *out, struct cmn_err *err)
{
    int rc = check_policy(pol, err);
    if (rc != 0)
        return rc;
    *out = *pol;
    if (domains >= pol->k + pol->m)
        return 0;
    if (domains < pol->m + 1)
        return cmn_err_set(err, LODE_ENOSPACE,
                           "%u failure domains can take chunks; surviving %u losses needs at "
                           "least %u", domains, pol->m, pol->m + 1);
    out->k = domains - pol->m;
    return 0;
}
