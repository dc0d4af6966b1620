/* dc transport parameters (see dc_params.h). */
#include "common/dc_params.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* Highest unicast LID; 0xc000..0xfffe are multicast, 0xffff permissive, 0 invalid. */
#define LID_UNICAST_MAX 0xbfffu

static bool gid_zero(const uint8_t gid[16])
{
    for (int i = 0; i < 16; i++)
        if (gid[i])
            return false;
    return true;
}

int cmn_dc_derive(const struct cmn_rdma_token *t, const struct cmn_dc_local *local,
                  struct cmn_dc_target *out, struct cmn_err *err)
{
    memset(out, 0, sizeof(*out));
    if (t->kind != CMN_RDMA_DC)
        return cmn_err_set(err, -EINVAL, "dc: a %s token is not a DC token",
                           cmn_rdma_kind_name(t->kind));
    if (local->hop_limit == 0)
        return cmn_err_set(err, -EINVAL, "dc: hop limit 0 would drop every packet");
    if (local->sl > 15)
        return cmn_err_set(err, -EINVAL, "dc: service level %u outside 0..15", local->sl);
    if (local->timeout < 1 || local->timeout > 31)
        return cmn_err_set(err, -EINVAL, "dc: ACK timeout exponent %u outside 1..31 (0 waits "
                           "forever, so late writes could never be fenced)", local->timeout);
    if (local->retry_cnt > 7)
        return cmn_err_set(err, -EINVAL, "dc: retry count %u outside 0..7", local->retry_cnt);
    const struct cmn_rdma_dc *dc = &t->u.dc;
    if (dc->g && gid_zero(dc->gid))
        return cmn_err_set(err, -EINVAL, "dc: the token's GID is all zero");
    if (!dc->g && (dc->lid == 0 || dc->lid > LID_UNICAST_MAX))
        return cmn_err_set(err, -EINVAL, "dc: without a GID the token needs a unicast LID, not "
                           "0x%04x", dc->lid);
    out->ah.is_global = dc->g != 0;
    out->ah.dlid = dc->lid;
    memcpy(out->ah.dgid, dc->gid, 16);
    out->ah.sgid_index = local->sgid_index;
    out->ah.hop_limit = local->hop_limit;
    out->ah.traffic_class = local->traffic_class;
    out->ah.sl = local->sl;
    out->dctn = dc->dctn;
    out->dc_key = local->dc_key;
    out->rkey = dc->rkey;
    out->base = t->base;
    out->size = t->size;
    out->timeout = local->timeout;
    out->retry_cnt = local->retry_cnt;
    return 0;
}

int cmn_dc_remote_addr(const struct cmn_dc_target *d, uint64_t off, uint64_t len,
                       uint64_t *addr, struct cmn_err *err)
{
    *addr = 0;
    if (len == 0 || len > CMN_DC_PIECE_MAX)
        return cmn_err_set(err, -EINVAL, "dc: piece of %" PRIu64 " bytes outside 1..%" PRIu64,
                           len, CMN_DC_PIECE_MAX);
    if (off > d->size || len > d->size - off)
        return cmn_err_set(err, LODE_EWINDOW, "dc: %" PRIu64 " bytes at offset %" PRIu64
                           " pass the end of the %" PRIu64 "-byte window", len, off, d->size);
    /* base + size does not wrap for a parsed token; checked again for hand-built ones. */
    if (d->base > UINT64_MAX - off - len)
        return cmn_err_set(err, LODE_EWINDOW, "dc: window wraps past the end of the address "
                           "space");
    *addr = d->base + off;
    return 0;
}

uint64_t cmn_dc_drain_ms(uint8_t timeout, uint8_t retry_cnt)
{
    if (timeout == 0 || timeout > 31)
        return UINT64_MAX;
    /* 4.096 us = 4096 ns; 4096 * 2^31 * 8 < 2^46: no overflow. */
    uint64_t ns = ((uint64_t)4096 << timeout) * ((uint64_t)retry_cnt + 1);
    return (ns + 999999) / 1000000;
}

enum cmn_gid_family cmn_gid_family(const uint8_t gid[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(gid, prefix, sizeof(prefix)) == 0 ? CMN_GID_IPV4 : CMN_GID_IPV6;
}

const char *cmn_gid_family_name(enum cmn_gid_family f)
{
    return f == CMN_GID_IPV4 ? "IPv4" : "IPv6";
}

int cmn_dc_pick_sgid(const struct cmn_gid_entry *table, size_t n, const uint8_t client_gid[16],
                     uint8_t *index, struct cmn_err *err)
{
    *index = 0;
    enum cmn_gid_family want = cmn_gid_family(client_gid);
    size_t n_v1 = 0, n_v2 = 0, n_v2_other = 0, n_ib = 0;
    const struct cmn_gid_entry *pick = NULL, *first_ib = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct cmn_gid_entry *e = &table[i];
        if (gid_zero(e->gid))
            continue;
        switch (e->type) {
        case CMN_GID_TYPE_ROCE_V2:
            n_v2++;
            if (cmn_gid_family(e->gid) != want)
                n_v2_other++;
            else if (!pick)
                pick = e;
            break;
        case CMN_GID_TYPE_ROCE_V1:
            n_v1++;
            break;
        case CMN_GID_TYPE_IB:
            n_ib++;
            if (!first_ib)
                first_ib = e;
            break;
        }
    }
    if (!pick && n_v1 == 0 && n_v2 == 0)
        pick = first_ib;
    if (!pick)
        return cmn_err_set(err, -ENOENT,
                           "dc: no local RoCEv2 source GID of the client's family (%s); the port "
                           "has %zu RoCEv2 entries of the other family, %zu RoCEv1, %zu IB",
                           cmn_gid_family_name(want), n_v2_other, n_v1, n_ib);
    if (pick->index > 255)
        return cmn_err_set(err, -EINVAL, "dc: GID index %" PRIu32 " above 255", pick->index);
    *index = (uint8_t)pick->index;
    return 0;
}
