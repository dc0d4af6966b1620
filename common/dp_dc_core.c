/* The dc data plane's NIC-free helpers (see dp_dc_int.h) and its configuration (dp_dc.h):
 * call bookkeeping, completion statuses, staging slots, slicing, the address-handle cache, the
 * DCI's QP plan and life cycle. Pure apart from the allocations of the slot and AH tables.
 */
#include "common/dp_dc_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* ================================================================== configuration */

void cmn_dp_dc_config_defaults(struct cmn_dp_dc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 1;
    cfg->gid_index = -1;
    cfg->dc_key = CMN_DP_DC_KEY_DEFAULT;
    cfg->timeout = 16;
    cfg->retry_cnt = 7;
    cfg->hop_limit = 64;
    cfg->traffic_class = 96;
    cfg->max_rd_atomic = 16;
    cfg->num_dcis = 16;
    cfg->sq_depth = 64;
    cfg->staging_bytes = (size_t)64 << 20;
    cfg->slot_bytes = (size_t)1 << 20;
    cfg->ah_cache_max = 1024;
    cfg->max_queued = 65536;
}

int cmn_dp_dc_config_check(const struct cmn_dp_dc_config *in, struct cmn_dp_dc_config *out,
                           struct cmn_err *err)
{
    struct cmn_dp_dc_config c = *in;
    bool have_dev = c.device && c.device[0], have_ip = c.ip && c.ip[0];
    if (!have_dev && !have_ip)
        return cmn_err_set(err, LODE_ECONFIG, "dc: set dc-device (e.g. mlx5_0) or the address "
                           "of the RDMA port");
    if (c.port == 0)
        c.port = 1;
    if (c.gid_index < -1 || c.gid_index > 255)
        return cmn_err_set(err, LODE_ECONFIG, "dc: dc-gid-index %d outside -1..255 (-1: chosen "
                           "per client)", c.gid_index);
    if (c.timeout < 1 || c.timeout > 31)
        return cmn_err_set(err, LODE_ECONFIG, "dc: dc-timeout %u outside 1..31 (0 waits forever, "
                           "so late writes could never be fenced)", c.timeout);
    if (c.retry_cnt > 7)
        return cmn_err_set(err, LODE_ECONFIG, "dc: dc-retry %u outside 0..7", c.retry_cnt);
    if (c.hop_limit == 0)
        return cmn_err_set(err, LODE_ECONFIG, "dc: hop limit 0 would drop every packet");
    if (c.sl > 15)
        return cmn_err_set(err, LODE_ECONFIG, "dc: service level %u outside 0..15", c.sl);
    if (c.max_rd_atomic < 1 || c.max_rd_atomic > 16)
        return cmn_err_set(err, LODE_ECONFIG, "dc: max RDMA reads in flight %u outside 1..16",
                           c.max_rd_atomic);
    if (c.num_dcis < 1 || c.num_dcis > 1024)
        return cmn_err_set(err, LODE_ECONFIG, "dc: %" PRIu32 " DCIs outside 1..1024",
                           c.num_dcis);
    if (c.sq_depth < 1 || c.sq_depth > 4096)
        return cmn_err_set(err, LODE_ECONFIG, "dc: send queue depth %" PRIu32 " outside 1..4096",
                           c.sq_depth);
    if ((c.slot_bytes & (c.slot_bytes - 1)) || c.slot_bytes < 4096 ||
        c.slot_bytes > ((size_t)16 << 20))
        return cmn_err_set(err, LODE_ECONFIG, "dc: slot size %zu is not a power of two in "
                           "4 KiB..16 MiB", c.slot_bytes);
    if (c.staging_bytes < c.slot_bytes || c.staging_bytes % c.slot_bytes ||
        c.staging_bytes / c.slot_bytes > 65536)
        return cmn_err_set(err, LODE_ECONFIG, "dc: staging memory %zu is not 1..65536 whole "
                           "slots of %zu bytes", c.staging_bytes, c.slot_bytes);
    if (c.max_queued < 1 || c.max_queued > (1u << 20))
        return cmn_err_set(err, LODE_ECONFIG, "dc: queued calls limit %" PRIu32 " outside "
                           "1..1048576", c.max_queued);
    /* Pinned handles are bounded by calls with WRs in flight (<= slots) plus one partially
     * posted call per DCI, so this size always leaves one to evict. */
    uint64_t need = c.staging_bytes / c.slot_bytes + c.num_dcis + 1;
    if (c.ah_cache_max < need)
        c.ah_cache_max = (uint32_t)need;
    *out = c;
    return 0;
}

/* ================================================================== the daemons' dc-* keys */

/* The DC key: 0x and 1..16 hex digits, or decimal. The value is never quoted back. */
static int parse_dc_key(const char *s, uint64_t *out, struct cmn_err *err)
{
    uint64_t v = 0;
    size_t n = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (const char *p = s + 2; *p; p++, n++) {
            int d = isdigit((unsigned char)*p) ? *p - '0'
                    : isxdigit((unsigned char)*p) ? (tolower((unsigned char)*p) - 'a' + 10) : -1;
            if (d < 0 || n == 16)
                return cmn_err_set(err, LODE_ECONFIG,
                                   "dc-key must be 0x followed by 1 to 16 hex digits, or a "
                                   "decimal number (the value is not shown)");
            v = v << 4 | (uint64_t)d;
        }
    } else {
        for (const char *p = s; *p; p++, n++) {
            if (!isdigit((unsigned char)*p) || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                return cmn_err_set(err, LODE_ECONFIG,
                                   "dc-key must be 0x followed by 1 to 16 hex digits, or a "
                                   "decimal number below 2^64 (the value is not shown)");
            v = v * 10 + (uint64_t)(*p - '0');
        }
    }
    if (n == 0)
        return cmn_err_set(err, LODE_ECONFIG, "dc-key is empty");
    *out = v;
    return 0;
}

int cmn_dp_dc_config_from_keys(const struct cmn_dp_dc_keys *k, struct cmn_dp_dc_config *d,
                               bool *enabled, bool *key_public, struct cmn_err *err)
{
    explicit_bzero(d, sizeof(*d));
    *enabled = (k->device && k->device[0]) || (k->address && k->address[0]);
    cmn_dp_dc_config_defaults(d);
    if (k->address) {
        unsigned char a[16];
        if (inet_pton(AF_INET, k->address, a) != 1 && inet_pton(AF_INET6, k->address, a) != 1)
            return cmn_err_set(err, LODE_ECONFIG,
                               "dc-address '%.64s' is not an IPv4 or IPv6 address (give the "
                               "RDMA port's IP, without a port)", k->address);
    }
    int rc = 0;
    *key_public = k->key == NULL;
    if (k->key && (rc = parse_dc_key(k->key, &d->dc_key, err)))
        return rc;
    if (d->dc_key == CMN_DP_DC_KEY_DEFAULT)
        *key_public = true;
    d->device = k->device && k->device[0] ? k->device : NULL;
    d->ip = k->address && k->address[0] ? k->address : NULL;
    d->port = (uint8_t)k->port;
    d->gid_index = (int)k->gid_index;
    d->timeout = (uint8_t)k->timeout;
    d->retry_cnt = (uint8_t)k->retry;
    d->hop_limit = (uint8_t)k->hop_limit;
    d->traffic_class = (uint8_t)k->traffic_class;
    d->sl = (uint8_t)k->sl;
    d->num_dcis = (uint32_t)k->dcis;
    d->sq_depth = (uint32_t)k->sq_depth;
    d->staging_bytes = (size_t)k->staging;
    d->slot_bytes = (size_t)k->slot;
    d->rtr_av = k->rtr_av;
    if (!*enabled)
        return 0;
    return cmn_dp_dc_config_check(d, d, err);
}

int cmn_dp_dc_buildable(bool enabled, const char *daemon, struct cmn_err *err)
{
#ifdef HAVE_MLX5DV
    (void)enabled;
    (void)daemon;
    (void)err;
    return 0;
#else
    if (!enabled)
        return 0;
    return cmn_err_set(err, LODE_ECONFIG,
                       "dc-device/dc-address is set but this %s was built without "
                       "mlx5 direct verbs (rdma-core's libmlx5 and infiniband/mlx5dv.h were not "
                       "found at build time): unset them, or rebuild with libibverbs-dev "
                       "installed", daemon);
#endif
}

/* ================================================================== requests */

void dc_req_init(struct dc_req *r, uint64_t len, uint32_t slot_bytes)
{
    memset(r, 0, sizeof *r);
    r->len = len;
    r->slot_bytes = slot_bytes;
    r->wr_total = dc_slice_count(len, slot_bytes);
}

bool dc_req_can_post(const struct dc_req *r)
{
    return !r->aborted && r->wr_next < r->wr_total;
}

uint32_t dc_req_post(struct dc_req *r)
{
    r->wr_inflight++;
    return r->wr_next++;
}

static bool req_check_finished(struct dc_req *r)
{
    if (r->finished || r->wr_inflight > 0 || (r->wr_next < r->wr_total && !r->aborted))
        return false;
    r->finished = true;
    return true;
}

bool dc_req_complete(struct dc_req *r, int status)
{
    if (r->wr_inflight == 0)
        return false;    /* not ours to count: a caller bug, but never a double finish */
    r->wr_inflight--;
    if (status != 0) {
        if (r->status == 0)
            r->status = status;
        r->aborted = true;
    }
    return req_check_finished(r);
}

bool dc_req_abort(struct dc_req *r, int code)
{
    if (r->status == 0)
        r->status = code;
    r->aborted = true;
    return req_check_finished(r);
}

/* ================================================================== completions */

enum dc_wc_kind dc_wc_classify(int wc_status, int *code)
{
    switch (wc_status) {
    case DC_WC_SUCCESS:
        *code = 0;
        return DC_WC_OK;
    case DC_WC_WR_FLUSH_ERR:
        *code = LODE_ECLOSED;
        return DC_WC_FLUSHED;
    case DC_WC_REM_ACCESS_ERR:
    case DC_WC_REM_INV_REQ_ERR:
    case DC_WC_REM_INV_RD_REQ_ERR:
        *code = LODE_EWINDOW;
        return DC_WC_FAILED;
    case DC_WC_RETRY_EXC_ERR:
    case DC_WC_RNR_RETRY_EXC_ERR:
    case DC_WC_RESP_TIMEOUT_ERR:
        *code = LODE_ETIMEOUT;
        return DC_WC_FAILED;
    case DC_WC_REM_OP_ERR:
    case DC_WC_REM_ABORT_ERR:
        *code = LODE_ECLOSED;
        return DC_WC_FAILED;
    case DC_WC_LOC_LEN_ERR:
    case DC_WC_LOC_QP_OP_ERR:
    case DC_WC_LOC_PROT_ERR:
    case DC_WC_LOC_ACCESS_ERR:
        *code = LODE_EINTERNAL;
        return DC_WC_FAILED;
    default:
        *code = -EIO;
        return DC_WC_FAILED;
    }
}

/* ================================================================== slots */

int dc_slots_init(struct dc_slots *s, uint32_t n)
{
    memset(s, 0, sizeof *s);
    if (n == 0 || n > 65536)
        return -EINVAL;
    s->stack = calloc(n, sizeof *s->stack);
    s->used = calloc(n, 1);
    if (!s->stack || !s->used) {
        dc_slots_fini(s);
        return -ENOMEM;
    }
    s->n = s->nfree = n;
    for (uint32_t i = 0; i < n; i++)
        s->stack[i] = n - 1 - i;
    return 0;
}

void dc_slots_fini(struct dc_slots *s)
{
    free(s->stack);
    free(s->used);
    memset(s, 0, sizeof *s);
}

int dc_slots_get(struct dc_slots *s)
{
    if (s->nfree == 0)
        return -ENOSPC;
    uint32_t idx = s->stack[--s->nfree];
    s->used[idx] = 1;
    return (int)idx;
}

int dc_slots_put(struct dc_slots *s, uint32_t idx)
{
    if (idx >= s->n || !s->used[idx])
        return -EINVAL;
    s->used[idx] = 0;
    s->stack[s->nfree++] = idx;
    return 0;
}

/* ================================================================== slicing and targets */

uint32_t dc_slice_count(uint64_t len, uint32_t slot_bytes)
{
    return (uint32_t)((len + slot_bytes - 1) / slot_bytes);
}

int dc_slice(const struct cmn_dc_target *t, uint64_t off, uint64_t len, uint32_t slot_bytes,
             uint32_t i, struct dc_wr_desc *out, struct cmn_err *err)
{
    memset(out, 0, sizeof *out);
    if (i >= dc_slice_count(len, slot_bytes))
        return cmn_err_set(err, -EINVAL, "dc: WR %" PRIu32 " of a %" PRIu64 "-byte call",
                           i, len);
    uint64_t call_off = (uint64_t)i * slot_bytes;
    uint64_t piece = len - call_off < slot_bytes ? len - call_off : slot_bytes;
    if (off > UINT64_MAX - call_off)
        return cmn_err_set(err, LODE_EWINDOW, "dc: window offset overflows");
    uint64_t raddr;
    int rv = cmn_dc_remote_addr(t, off + call_off, piece, &raddr, err);
    if (rv != 0)
        return rv;
    out->call_off = call_off;
    out->len = (uint32_t)piece;
    out->raddr = raddr;
    return 0;
}

bool dc_target_same(const struct cmn_dc_target *a, const struct cmn_dc_target *b)
{
    if (a->dctn != b->dctn || a->rkey != b->rkey || a->base != b->base || a->size != b->size ||
        a->ah.is_global != b->ah.is_global)
        return false;
    return a->ah.is_global ? memcmp(a->ah.dgid, b->ah.dgid, 16) == 0 : a->ah.dlid == b->ah.dlid;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* FNV's low bits barely depend on the last bytes hashed (where GIDs of one subnet differ):
 * mix the whole word into them before a remainder or a mask (MurmurHash3's finaliser). */
static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint32_t dc_pick_dci(const struct cmn_dc_target *t, uint32_t n)
{
    struct dc_ah_key k;
    dc_ah_key_of(t, &k);
    uint64_t h = fnv1a(0xcbf29ce484222325ull, &k, sizeof k);
    h = fnv1a(h, &t->dctn, sizeof t->dctn);
    return n ? (uint32_t)(mix64(h) % n) : 0;
}

int dc_local_for(const struct cmn_dp_dc_config *cfg, const struct cmn_gid_entry *table, size_t n,
                 const struct cmn_rdma_token *t, struct cmn_dc_local *out, struct cmn_err *err)
{
    memset(out, 0, sizeof *out);
    out->hop_limit = cfg->hop_limit;
    out->traffic_class = cfg->traffic_class;
    out->sl = cfg->sl;
    out->dc_key = cfg->dc_key;
    out->timeout = cfg->timeout;
    out->retry_cnt = cfg->retry_cnt;
    if (cfg->gid_index >= 0) {
        out->sgid_index = (uint8_t)cfg->gid_index;
        return 0;
    }
    if (t->kind != CMN_RDMA_DC || !t->u.dc.g)
        return 0;    /* no GRH: the source GID is not used */
    return cmn_dc_pick_sgid(table, n, t->u.dc.gid, &out->sgid_index, err);
}

/* ================================================================== address handles */

void dc_ah_key_of(const struct cmn_dc_target *t, struct dc_ah_key *k)
{
    memset(k, 0, sizeof *k);
    k->g = t->ah.is_global ? 1 : 0;
    k->sgid_index = t->ah.sgid_index;
    if (k->g)
        memcpy(k->gid, t->ah.dgid, 16);
    else
        k->lid = t->ah.dlid;
}

int dc_ah_cache_init(struct dc_ah_cache *c, uint32_t cap, const struct dc_ah_ops *ops,
                     uint64_t seed)
{
    memset(c, 0, sizeof *c);
    if (cap == 0)
        return -EINVAL;
    uint32_t nb = 16;
    while (nb < cap && nb < (1u << 24))
        nb <<= 1;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (!c->buckets)
        return -ENOMEM;
    c->ops = *ops;
    c->cap = cap;
    c->mask = nb - 1;
    c->seed = seed;
    dc_list_init(&c->lru);
    return 0;
}

static uint32_t ah_bucket(const struct dc_ah_cache *c, const struct dc_ah_key *k)
{
    return (uint32_t)(mix64(fnv1a(0xcbf29ce484222325ull ^ c->seed, k, sizeof *k)) & c->mask);
}

static void ah_unlink(struct dc_ah_cache *c, struct dc_ah_entry *e)
{
    for (struct dc_ah_entry **pp = &c->buckets[ah_bucket(c, &e->key)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            break;
        }
    }
    dc_list_del(&e->lru);
    c->count--;
}

void dc_ah_cache_fini(struct dc_ah_cache *c)
{
    if (!c->buckets)
        return;
    for (uint32_t b = 0; b <= c->mask; b++) {
        struct dc_ah_entry *e = c->buckets[b];
        while (e) {
            struct dc_ah_entry *next = e->hnext;
            if (c->ops.destroy)
                c->ops.destroy(c->ops.ctx, e->ah);
            free(e);
            e = next;
        }
    }
    free(c->buckets);
    memset(c, 0, sizeof *c);
}

int dc_ah_get(struct dc_ah_cache *c, const struct cmn_dc_target *t, struct dc_ah_entry **out,
              struct cmn_err *err)
{
    *out = NULL;
    struct dc_ah_key k;
    dc_ah_key_of(t, &k);
    uint32_t b = ah_bucket(c, &k);
    for (struct dc_ah_entry *e = c->buckets[b]; e; e = e->hnext) {
        if (memcmp(&e->key, &k, sizeof k) == 0) {
            if (e->refs++ == 0)
                dc_list_del(&e->lru);
            c->hits++;
            *out = e;
            return 0;
        }
    }
    c->misses++;
    if (c->count >= c->cap) {
        if (dc_list_empty(&c->lru))
            return cmn_err_set(err, -EBUSY, "dc: all %" PRIu32 " address handles are in use",
                               c->cap);
        struct dc_ah_entry *victim = dc_list_item(c->lru.next, struct dc_ah_entry, lru);
        ah_unlink(c, victim);
        c->ops.destroy(c->ops.ctx, victim->ah);
        free(victim);
        c->evictions++;
    }
    struct dc_ah_entry *e = calloc(1, sizeof *e);
    if (!e)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    cmn_err_clear(err);
    e->ah = c->ops.create(c->ops.ctx, &t->ah, err);
    if (!e->ah) {
        free(e);
        c->failures++;
        return err && err->code ? err->code : LODE_EUNAVAILABLE;
    }
    e->key = k;
    e->refs = 1;
    dc_list_init(&e->lru);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    c->count++;
    *out = e;
    return 0;
}

void dc_ah_put(struct dc_ah_cache *c, struct dc_ah_entry *e)
{
    if (e->refs > 0 && --e->refs == 0)
        dc_list_add_tail(&c->lru, &e->lru);
}

/* ================================================================== QP plan and DCI states */

int dc_qp_plan(enum dc_qps from, const struct dc_qp_params *p,
               struct dc_qp_step out[DC_QP_PLAN_MAX], size_t *n, struct cmn_err *err)
{
    *n = 0;
    if (p->port < 1)
        return cmn_err_set(err, -EINVAL, "dc: port number 0");
    if (p->path_mtu < 1 || p->path_mtu > 5)
        return cmn_err_set(err, -EINVAL, "dc: path MTU code %u outside 1..5", p->path_mtu);
    if (p->timeout < 1 || p->timeout > 31)
        return cmn_err_set(err, -EINVAL, "dc: timeout %u outside 1..31", p->timeout);
    if (p->retry_cnt > 7 || p->rnr_retry > 6)
        return cmn_err_set(err, -EINVAL, "dc: retry count %u or RNR retry %u out of range "
                           "(RNR retry 7 would retry forever)", p->retry_cnt, p->rnr_retry);
    if (p->max_rd_atomic < 1 || p->max_rd_atomic > 16)
        return cmn_err_set(err, -EINVAL, "dc: max RDMA reads %u outside 1..16",
                           p->max_rd_atomic);
    size_t k = 0;
    switch (from) {
    case DC_QPS_RTS:
        return 0;
    case DC_QPS_ERR:
    case DC_QPS_SQD:
    case DC_QPS_SQE:
        memset(&out[k], 0, sizeof out[k]);
        out[k].state = DC_QPS_RESET;
        out[k].mask = DC_QP_STATE;
        k++;
        /* fall through */
    case DC_QPS_RESET:
        memset(&out[k], 0, sizeof out[k]);
        out[k].state = DC_QPS_INIT;
        out[k].mask = DC_QP_STATE | DC_QP_PKEY_INDEX | DC_QP_PORT;
        out[k].port_num = p->port;
        out[k].pkey_index = p->pkey_index;
        k++;
        /* fall through */
    case DC_QPS_INIT:
        memset(&out[k], 0, sizeof out[k]);
        out[k].state = DC_QPS_RTR;
        out[k].mask = DC_QP_STATE | DC_QP_PATH_MTU;
        out[k].path_mtu = p->path_mtu;
        if (p->rtr_av) {
            out[k].mask |= DC_QP_AV;
            out[k].av_port = p->port;
            out[k].av_is_global = p->is_global;
            out[k].av_sgid_index = p->sgid_index;
            out[k].av_hop_limit = p->hop_limit;
        }
        k++;
        /* fall through */
    case DC_QPS_RTR:
        memset(&out[k], 0, sizeof out[k]);
        out[k].state = DC_QPS_RTS;
        out[k].mask = DC_QP_STATE | DC_QP_TIMEOUT | DC_QP_RETRY_CNT | DC_QP_RNR_RETRY |
                      DC_QP_SQ_PSN | DC_QP_MAX_QP_RD_ATOMIC;
        out[k].timeout = p->timeout;
        out[k].retry_cnt = p->retry_cnt;
        out[k].rnr_retry = p->rnr_retry;
        out[k].max_rd_atomic = p->max_rd_atomic;
        out[k].sq_psn = 0;
        k++;
        break;
    default:
        return cmn_err_set(err, -EINVAL, "dc: unknown QP state %d", (int)from);
    }
    *n = k;
    return 0;
}

void dc_qp_step_error(struct dc_qp_step *out)
{
    memset(out, 0, sizeof *out);
    out->state = DC_QPS_ERR;
    out->mask = DC_QP_STATE;
}

int dc_dci_next(enum dc_dci_state s, enum dc_dci_event ev)
{
    /* rows: states; columns: WR_ERROR, FORCE, RECOVERED, RECOVERY_FAILED, CLOSE */
    static const signed char table[4][5] = {
        [DCI_READY] = {DCI_DRAINING, DCI_DRAINING, -1, -1, DCI_DEAD},
        [DCI_DRAINING] = {DCI_DRAINING, DCI_DRAINING, DCI_READY, DCI_BROKEN, DCI_DEAD},
        [DCI_BROKEN] = {-1, DCI_BROKEN, DCI_READY, DCI_BROKEN, DCI_DEAD},
        [DCI_DEAD] = {DCI_DEAD, DCI_DEAD, -1, -1, DCI_DEAD},
    };
    if ((unsigned)s > DCI_DEAD || (unsigned)ev > DCI_EV_CLOSE)
        return -1;
    return table[s][ev];
}

const char *dc_dci_state_name(enum dc_dci_state s)
{
    switch (s) {
    case DCI_READY:
        return "ready";
    case DCI_DRAINING:
        return "draining";
    case DCI_BROKEN:
        return "broken";
    case DCI_DEAD:
        return "dead";
    }
    return "?";
}
