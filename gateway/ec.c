/* Erasure coding over ISA-L (see ec.h for the code and its limits). */
#include "gateway/ec.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

struct gw_ec {
    unsigned k, m;
    /* (k + m) x k generator: identity on top, the Cauchy rows below. */
    uint8_t matrix[GW_EC_MAX_N * GW_EC_MAX_K];
    uint8_t enc_tables[32 * GW_EC_MAX_K * GW_EC_MAX_M];
};

static bool valid_km(unsigned k, unsigned m)
{
    return k >= 1 && k <= GW_EC_MAX_K && m <= GW_EC_MAX_M;
}

static int bad_km(unsigned k, unsigned m, struct cmn_err *err)
{
    return cmn_err_set(err, -EINVAL,
                       "erasure code %u+%u is outside the supported range "
                       "(1..%d data chunks, 0..%d parity chunks)",
                       k, m, GW_EC_MAX_K, GW_EC_MAX_M);
}

int gw_ec_new(unsigned k, unsigned m, struct gw_ec **out, struct cmn_err *err)
{
    *out = NULL;
    if (!valid_km(k, m))
        return bad_km(k, m, err);
    struct gw_ec *ec = calloc(1, sizeof(*ec));
    if (!ec)
        return cmn_err_set(err, -ENOMEM, "erasure code %u+%u: out of memory", k, m);
    ec->k = k;
    ec->m = m;
    gf_gen_cauchy1_matrix(ec->matrix, (int)(k + m), (int)k);
    if (k == 1) {
        /* Replication: make the parity rows plain copies, so stored copies are identical
         * and any of them serves a read; the Cauchy row for parity p >= 1 is 1/(p+1). */
        for (unsigned p = 0; p < m; p++)
            ec->matrix[1 + p] = 1;
    } else if (m > 0) {
        ec_init_tables((int)k, (int)m, ec->matrix + k * k, ec->enc_tables);
    }
    *out = ec;
    return 0;
}

void gw_ec_free(struct gw_ec *ec)
{
    free(ec);
}

/* One slot per (k, m), filled once: a lazily built constant table. A context is immutable
 * after construction, so publishing the pointer with release/acquire is all the
 * synchronisation readers need. */
static _Atomic(struct gw_ec *) shared[GW_EC_MAX_K + 1][GW_EC_MAX_M + 1];

const struct gw_ec *gw_ec_get(unsigned k, unsigned m, struct cmn_err *err)
{
    if (!valid_km(k, m)) {
        bad_km(k, m, err);
        return NULL;
    }
    struct gw_ec *cur = atomic_load_explicit(&shared[k][m], memory_order_acquire);
    if (cur)
        return cur;
    struct gw_ec *mine;
    if (gw_ec_new(k, m, &mine, err) != 0)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(&shared[k][m], &cur, mine,
                                                memory_order_acq_rel, memory_order_acquire))
        return mine;
    /* Another thread published first: use its context, identical to ours. */
    gw_ec_free(mine);
    return cur;
}

unsigned gw_ec_k(const struct gw_ec *ec)
{
    return ec->k;
}

unsigned gw_ec_m(const struct gw_ec *ec)
{
    return ec->m;
}

uint8_t gw_ec_coef(const struct gw_ec *ec, unsigned p, unsigned j)
{
    if (p >= ec->m || j >= ec->k)
        return 0;
    return ec->matrix[(ec->k + p) * ec->k + j];
}

int gw_ec_encode(const struct gw_ec *ec, size_t len, const uint8_t *const *data,
                 uint8_t *const *parity)
{
    if (len > GW_EC_MAX_LEN || (ec->m > 0 && (!data || !parity)))
        return -EINVAL;
    for (unsigned p = 0; p < ec->m; p++)
        if (!parity[p])
            return -EINVAL;
    for (unsigned j = 0; j < ec->k && ec->m > 0; j++)
        if (!data[j])
            return -EINVAL;
    if (ec->m == 0 || len == 0)
        return 0;
    if (ec->k == 1) {
        for (unsigned p = 0; p < ec->m; p++)
            memcpy(parity[p], data[0], len);
        return 0;
    }
    /* ISA-L never writes its inputs; its prototype just lacks the const. */
    ec_encode_data((int)len, (int)ec->k, (int)ec->m, (unsigned char *)ec->enc_tables,
                   (unsigned char **)data, (unsigned char **)parity);
    return 0;
}

long gw_ec_encode_stripe(const struct gw_ec *ec, uint8_t *stripe, size_t chunk_size,
                         size_t stripe_len, uint8_t *const *parity)
{
    if (!stripe || chunk_size == 0 || chunk_size > GW_EC_MAX_LEN || stripe_len == 0 ||
        stripe_len > ec->k * chunk_size)
        return -EINVAL;
    size_t l0 = stripe_len < chunk_size ? stripe_len : chunk_size;
    size_t coded_end = (ec->k - 1) * chunk_size + l0;
    if (coded_end > stripe_len)
        memset(stripe + stripe_len, 0, coded_end - stripe_len);
    const uint8_t *data[GW_EC_MAX_K];
    for (unsigned j = 0; j < ec->k; j++)
        data[j] = stripe + j * chunk_size;
    int rc = gw_ec_encode(ec, l0, data, parity);
    return rc < 0 ? rc : (long)l0;
}

static unsigned popcount32(uint32_t v)
{
    return (unsigned)__builtin_popcount(v);
}

int gw_ec_plan_init(struct gw_ec_plan *plan, const struct gw_ec *ec, uint32_t present,
                    uint32_t want, struct cmn_err *err)
{
    unsigned k = ec->k, n = ec->k + ec->m;
    uint32_t all = n >= 32 ? UINT32_MAX : ((uint32_t)1 << n) - 1;
    if ((present & ~all) || (want & ~all))
        return cmn_err_set(err, -EINVAL, "chunk set names a chunk beyond the %u of a %u+%u "
                           "stripe", n, k, ec->m);
    if (want == 0)
        return cmn_err_set(err, -EINVAL, "nothing to reconstruct");
    if (present & want)
        return cmn_err_set(err, -EINVAL, "asked to reconstruct a chunk that is present");
    unsigned have = popcount32(present);
    if (have < k)
        return cmn_err_set(err, LODE_EUNAVAILABLE,
                           "stripe cannot be recovered: need %u of %u chunks, %u present", k,
                           n, have);

    plan->k = (uint8_t)k;
    plan->m = (uint8_t)ec->m;
    plan->present = present;
    plan->want = want;
    plan->n_src = 0;
    plan->n_out = 0;
    plan->copy = k == 1;
    for (unsigned i = 0; i < n && plan->n_src < k; i++)
        if (present & (1u << i))
            plan->src[plan->n_src++] = (uint8_t)i;
    for (unsigned i = 0; i < n; i++)
        if (want & (1u << i))
            plan->out[plan->n_out++] = (uint8_t)i;
    if (plan->copy)
        return 0;

    /* The k survivors are S = G_src * D for the data D, so D = inv(G_src) * S and any
     * chunk i is G_i * inv(G_src) * S: one row of coefficients per wanted chunk. */
    uint8_t sub[GW_EC_MAX_K * GW_EC_MAX_K], inv[GW_EC_MAX_K * GW_EC_MAX_K];
    for (unsigned r = 0; r < k; r++)
        memcpy(sub + r * k, ec->matrix + plan->src[r] * k, k);
    if (gf_invert_matrix(sub, inv, (int)k) != 0)
        return cmn_err_set(err, LODE_EINTERNAL, "erasure code %u+%u: singular decode matrix",
                           k, ec->m);
    uint8_t rows[GW_EC_MAX_M * GW_EC_MAX_K];
    for (unsigned o = 0; o < plan->n_out; o++) {
        const uint8_t *g = ec->matrix + plan->out[o] * k;
        for (unsigned j = 0; j < k; j++) {
            uint8_t acc = 0;
            for (unsigned t = 0; t < k; t++)
                acc ^= gf_mul(g[t], inv[t * k + j]);
            rows[o * k + j] = acc;
        }
    }
    ec_init_tables((int)k, (int)plan->n_out, rows, plan->tables);
    return 0;
}

uint32_t gw_ec_plan_sources(const struct gw_ec_plan *plan)
{
    uint32_t mask = 0;
    for (unsigned i = 0; i < plan->n_src; i++)
        mask |= 1u << plan->src[i];
    return mask;
}

int gw_ec_plan_run(const struct gw_ec_plan *plan, size_t len, uint8_t *const *chunks)
{
    if (len > GW_EC_MAX_LEN || !chunks)
        return -EINVAL;
    uint8_t *src[GW_EC_MAX_K], *out[GW_EC_MAX_M];
    for (unsigned i = 0; i < plan->n_src; i++)
        if (!(src[i] = chunks[plan->src[i]]))
            return -EINVAL;
    for (unsigned o = 0; o < plan->n_out; o++)
        if (!(out[o] = chunks[plan->out[o]]))
            return -EINVAL;
    if (len == 0)
        return 0;
    if (plan->copy) {
        for (unsigned o = 0; o < plan->n_out; o++)
            memcpy(out[o], src[0], len);
        return 0;
    }
    ec_encode_data((int)len, plan->k, plan->n_out, (unsigned char *)plan->tables, src, out);
    return 0;
}

int gw_ec_reconstruct(const struct gw_ec *ec, size_t len, uint32_t present, uint32_t want,
                      uint8_t *const *chunks, struct cmn_err *err)
{
    struct gw_ec_plan plan;
    int rc = gw_ec_plan_init(&plan, ec, present, want, err);
    if (rc != 0)
        return rc;
    rc = gw_ec_plan_run(&plan, len, chunks);
    if (rc != 0)
        return cmn_err_set(err, rc, "reconstruct: invalid chunk buffers or length");
    return 0;
}
