/* The fan-out planner (see fanout_plan.h). */
#include "gateway/fanout_plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A piece while the plan is built: its node beside it until the grouping sort. */
struct tmp_piece {
    uint32_t nid;
    struct gw_fo_piece p;
};

struct builder {
    const struct gw_fo_input *in;
    size_t limit;
    struct tmp_piece *tmp;
    size_t n_tmp, cap_tmp;
    struct gw_fo_local *locals;
    size_t n_locals, cap_locals;
    struct cmn_err *err;
};

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int over_limit(struct builder *b)
{
    if (b->n_tmp + b->n_locals < b->limit)
        return 0;
    return cmn_err_set(b->err, LODE_ETOOLARGE, "fan-out plan: more than %zu pieces and local "
                       "ranges for %" PRIu64 " bytes; read in smaller ranges", b->limit,
                       b->in->end - b->in->start);
}

static int add_local(struct builder *b, uint64_t stripe, uint64_t lo, uint64_t hi)
{
    int rc = over_limit(b);
    if (rc)
        return rc;
    if (grow((void **)&b->locals, &b->cap_locals, b->n_locals + 1, sizeof(*b->locals)))
        return cmn_err_set(b->err, -ENOMEM, "fan-out plan: out of memory");
    struct gw_fo_local *l = &b->locals[b->n_locals++];
    l->stripe = stripe;
    l->obj_off = lo;
    l->len = hi - lo;
    l->buf_off = b->in->buf_off + (lo - b->in->start);
    return 0;
}

/* Object bytes [lo, hi), all inside chunk `ci` (data index j, whose data starts at object
 * offset chunk_obj), from node ref->nid, cut at max_piece. */
static int add_pieces(struct builder *b, uint64_t stripe, unsigned ci,
                      const struct gw_fo_chunk *ref, uint64_t chunk_obj, uint64_t lo, uint64_t hi)
{
    const struct gw_fo_input *in = b->in;
    while (lo < hi) {
        uint64_t n = hi - lo;
        if (n > in->max_piece)
            n = in->max_piece;
        int rc = over_limit(b);
        if (rc)
            return rc;
        if (grow((void **)&b->tmp, &b->cap_tmp, b->n_tmp + 1, sizeof(*b->tmp)))
            return cmn_err_set(b->err, -ENOMEM, "fan-out plan: out of memory");
        struct tmp_piece *t = &b->tmp[b->n_tmp++];
        t->nid = ref->nid;
        memcpy(t->p.chunk_id, ref->id, sizeof(t->p.chunk_id));
        t->p.chunk_off = lo - chunk_obj;
        t->p.len = (uint32_t)n;
        t->p.buf_off = in->buf_off + (lo - in->start);
        t->p.stripe = stripe;
        t->p.chunk = ci;
        lo += n;
    }
    return 0;
}

static bool ref_readable(const struct gw_fo_input *in, const struct gw_fo_chunk *ref)
{
    return ref->nid != 0 && in->readable(in->readable_ctx, ref->nid);
}

/* Stripe s's share [lo, hi) of the range. */
static int plan_stripe(struct builder *b, uint64_t s, uint64_t lo, uint64_t hi)
{
    const struct gw_fo_input *in = b->in;
    const struct gw_geom *g = &in->geom;
    unsigned n = g->k + g->m;
    const struct gw_fo_chunk *refs = in->chunks + s * n;
    uint64_t so = gw_stripe_offset(g, s), cs = g->chunk_size;

    if (g->k == 1) {
        /* Every copy holds the stripe's bytes: the first readable one in the rotation. */
        unsigned first = (unsigned)((s + in->spread % n) % n);
        for (unsigned i = 0; i < n; i++) {
            unsigned c = (first + i) % n;
            if (ref_readable(in, &refs[c]))
                return add_pieces(b, s, c, &refs[c], so, lo, hi);
        }
        return add_local(b, s, lo, hi);
    }
    unsigned j0 = (unsigned)((lo - so) / cs), j1 = (unsigned)((hi - 1 - so) / cs);
    for (unsigned j = j0; j <= j1; j++)
        if (!ref_readable(in, &refs[j]))
            return add_local(b, s, lo, hi);
    for (unsigned j = j0; j <= j1; j++) {
        uint64_t c_lo = so + j * cs, c_hi = c_lo + cs;
        int rc = add_pieces(b, s, j, &refs[j], c_lo, lo > c_lo ? lo : c_lo,
                            hi < c_hi ? hi : c_hi);
        if (rc)
            return rc;
    }
    return 0;
}

static int cmp_tmp(const void *a, const void *b)
{
    const struct tmp_piece *x = a, *y = b;
    if (x->nid != y->nid)
        return x->nid < y->nid ? -1 : 1;
    return (x->p.buf_off > y->p.buf_off) - (x->p.buf_off < y->p.buf_off);
}

static int check_input(const struct gw_fo_input *in, struct cmn_err *err)
{
    int rc = gw_geom_check(&in->geom, err);
    if (rc)
        return cmn_err_wrap(err, "fan-out plan");
    uint64_t stripes = gw_geom_stripes(&in->geom);
    if (in->n_stripes != stripes)
        return cmn_err_set(err, -EINVAL, "fan-out plan: layout has %" PRIu64 " stripes, the "
                           "geometry %" PRIu64, in->n_stripes, stripes);
    if (in->start > in->end || in->end > in->geom.size)
        return cmn_err_set(err, -EINVAL, "fan-out plan: range [%" PRIu64 ", %" PRIu64 ") "
                           "outside the %" PRIu64 "-byte object", in->start, in->end,
                           in->geom.size);
    if (in->buf_off > UINT64_MAX - (in->end - in->start))
        return cmn_err_set(err, -EINVAL, "fan-out plan: window offset %" PRIu64 " + %" PRIu64
                           " bytes wraps", in->buf_off, in->end - in->start);
    if (in->max_piece == 0)
        return cmn_err_set(err, -EINVAL, "fan-out plan: maximum piece size is 0");
    if (in->start < in->end && (in->chunks == NULL || in->readable == NULL))
        return cmn_err_set(err, -EINVAL, "fan-out plan: no chunk list or readable callback");
    return 0;
}

int gw_fo_plan_build(const struct gw_fo_input *in, struct gw_fo_plan *out, struct cmn_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = check_input(in, err);
    if (rc || in->start == in->end)
        return rc;
    struct builder b = {.in = in, .err = err,
                        .limit = in->max_entries ? in->max_entries : GW_FO_MAX_ENTRIES_DEFAULT};
    uint64_t sb = gw_geom_stripe_bytes(&in->geom);
    for (uint64_t s = in->start / sb; s <= (in->end - 1) / sb && rc == 0; s++) {
        uint64_t so = s * sb, se = so + gw_stripe_len(&in->geom, s);
        rc = plan_stripe(&b, s, in->start > so ? in->start : so, in->end < se ? in->end : se);
    }
    if (rc)
        goto fail;

    /* Group by node (ascending nid), each group in window order. */
    if (b.n_tmp)
        qsort(b.tmp, b.n_tmp, sizeof(*b.tmp), cmp_tmp);
    size_t n_src = 0;
    for (size_t i = 0; i < b.n_tmp; i++)
        n_src += i == 0 || b.tmp[i].nid != b.tmp[i - 1].nid;
    if (b.n_tmp) {
        out->pieces = malloc(b.n_tmp * sizeof(*out->pieces));
        out->sources = calloc(n_src, sizeof(*out->sources));
        if (!out->pieces || !out->sources) {
            rc = cmn_err_set(err, -ENOMEM, "fan-out plan: out of memory");
            goto fail;
        }
    }
    struct gw_fo_source *src = NULL;
    for (size_t i = 0; i < b.n_tmp; i++) {
        if (i == 0 || b.tmp[i].nid != b.tmp[i - 1].nid) {
            src = &out->sources[out->n_sources++];
            src->nid = b.tmp[i].nid;
            src->first = i;
        }
        out->pieces[i] = b.tmp[i].p;
        src->count++;
        src->bytes += b.tmp[i].p.len;
        out->remote_bytes += b.tmp[i].p.len;
    }
    out->n_pieces = b.n_tmp;
    out->locals = b.locals;
    out->n_locals = b.n_locals;
    for (size_t i = 0; i < b.n_locals; i++)
        out->local_bytes += b.locals[i].len;
    free(b.tmp);
    return 0;

fail:
    free(b.tmp);
    free(b.locals);
    gw_fo_plan_free(out);
    return rc;
}

void gw_fo_plan_free(struct gw_fo_plan *p)
{
    free(p->sources);
    free(p->pieces);
    free(p->locals);
    memset(p, 0, sizeof(*p));
}

size_t gw_fo_batch(const struct gw_fo_plan *p, size_t src, size_t from, uint64_t max_bytes,
                   size_t max_count, uint64_t *bytes)
{
    *bytes = 0;
    if (src >= p->n_sources)
        return 0;
    const struct gw_fo_source *s = &p->sources[src];
    size_t n = 0;
    while (from + n < s->count && (max_count == 0 || n < max_count)) {
        uint64_t len = p->pieces[s->first + from + n].len;
        if (n > 0 && (*bytes > max_bytes || len > max_bytes - *bytes))
            break;
        *bytes += len;
        n++;
    }
    return n;
}

void gw_fo_sched_init(struct gw_fo_sched *s, uint64_t cap)
{
    s->cap = cap;
    s->inflight = 0;
}

bool gw_fo_sched_take(struct gw_fo_sched *s, uint64_t len)
{
    if (s->cap != 0 && s->inflight != 0 && (len > s->cap || s->inflight > s->cap - len))
        return false;
    if (len > UINT64_MAX - s->inflight)
        return false;
    s->inflight += len;
    return true;
}

bool gw_fo_sched_done(struct gw_fo_sched *s, uint64_t len)
{
    if (len > s->inflight) {
        s->inflight = 0;
        return false;
    }
    s->inflight -= len;
    return true;
}
