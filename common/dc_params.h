/* The dc transport's pure arithmetic: from a parsed DC token and the local settings, the
 * address-handle and DC initiator parameters, the remote address of each piece, and the
 * choice of the local source GID. The verbs code (ibv_create_ah, mlx5dv_wr_set_dc_addr,
 * ibv_wr_rdma_write) copies these values field by field; nothing here includes rdma-core or
 * mlx5dv headers, so all of it is unit-tested on any host.
 *
 * Pure: no allocation, no I/O, no global state; thread-safe.
 */
#ifndef LODE_COMMON_DC_PARAMS_H
#define LODE_COMMON_DC_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/rdma_token.h"

/* Local settings (config), checked by cmn_dc_derive(). */
struct cmn_dc_local {
    uint8_t sgid_index;         /* local GID table index (cmn_dc_pick_sgid picks one) */
    uint8_t hop_limit;          /* GRH hop limit, >= 1 (0 would drop every packet) */
    uint8_t traffic_class;      /* GRH traffic class (DSCP << 2 | ECN) */
    uint8_t sl;                 /* service level, 0..15 */
    uint64_t dc_key;            /* must equal the clients' DC key (cuObject: 32 bits) */
    uint8_t timeout;            /* local ACK timeout exponent, 1..31: 4.096 us * 2^timeout */
    uint8_t retry_cnt;          /* transport retries, 0..7 */
};

/* Address-handle attributes, named as in struct ibv_ah_attr / ibv_global_route. */
struct cmn_dc_ah {
    bool is_global;             /* the token's g: a GRH is sent */
    uint16_t dlid;              /* the token's LID (meaningful when !is_global) */
    uint8_t dgid[16];           /* the token's GID (meaningful when is_global) */
    uint8_t sgid_index;
    uint8_t hop_limit;
    uint8_t traffic_class;
    uint8_t sl;
};

/* Everything one DC transfer to one client window needs. */
struct cmn_dc_target {
    struct cmn_dc_ah ah;
    uint32_t dctn;              /* remote DCT number (24 bits) */
    uint64_t dc_key;
    uint32_t rkey;
    uint64_t base, size;        /* the token's window */
    uint8_t timeout, retry_cnt; /* for the DCI's RTS transition */
};

/* Largest single RDMA WRITE or READ (an SGE length is 32 bits; 2^31 is the common device
 * limit, and a piece never needs more). */
#define CMN_DC_PIECE_MAX ((uint64_t)1 << 31)

/* Derives the target of a DC token (kind CMN_RDMA_DC) under the local settings. Checks the
 * settings (hop_limit >= 1, sl <= 15, timeout 1..31 since 0 means "wait forever" and would
 * make the drain fence unbounded, retry_cnt <= 7) and the token's addressing: with g = 1 the
 * GID must not be all zero; with g = 0 the LID must be a unicast LID (1..0xbfff).
 * Returns 0 and *out, or -EINVAL with a message (out zeroed). */
int cmn_dc_derive(const struct cmn_rdma_token *t, const struct cmn_dc_local *local,
                  struct cmn_dc_target *out, struct cmn_err *err);

/* Remote address of `len` bytes at offset `off` of the window: base + off, after checking
 * 1 <= len <= CMN_DC_PIECE_MAX and off + len <= size without overflow. Returns 0 and *addr,
 * or LODE_EWINDOW (outside the window) / -EINVAL (len) with a message. */
int cmn_dc_remote_addr(const struct cmn_dc_target *d, uint64_t off, uint64_t len,
                       uint64_t *addr, struct cmn_err *err);

/* Upper bound in milliseconds for a posted DC write to finish or fail: (retry_cnt + 1)
 * attempts of 4.096 us * 2^timeout each, rounded up. This is the "drain" a fence waits after
 * a lease ran out (about 2148 ms at timeout 16, retry_cnt 7). timeout 0 (infinite) returns
 * UINT64_MAX. */
uint64_t cmn_dc_drain_ms(uint8_t timeout, uint8_t retry_cnt);

/* ---- GIDs ---- */

enum cmn_gid_family {
    CMN_GID_IPV4,               /* IPv4-mapped: ::ffff:a.b.c.d */
    CMN_GID_IPV6,               /* anything else (IPv6 and InfiniBand GIDs) */
};

enum cmn_gid_type {
    CMN_GID_TYPE_IB,
    CMN_GID_TYPE_ROCE_V1,
    CMN_GID_TYPE_ROCE_V2,
};

/* The family of a GID: IPv4 when it is 10 zero bytes, 0xff 0xff, then the address. */
enum cmn_gid_family cmn_gid_family(const uint8_t gid[16]);

/* "IPv4" or "IPv6". Static. */
const char *cmn_gid_family_name(enum cmn_gid_family f);

/* One row of the local port's GID table (ibv_query_gid_ex / ibv_query_gid_table). */
struct cmn_gid_entry {
    uint8_t gid[16];
    enum cmn_gid_type type;
    uint32_t index;             /* the table index the verbs use (sgid_index) */
};

/* Picks the local source GID for a client GID: the first entry (in table order) that is
 * RoCEv2 and of the client GID's family, skipping all-zero (unused) rows. mlx5 lists RoCEv1
 * and RoCEv2 entries with identical bytes, and a v4-mapped source cannot reach an IPv6
 * destination, so type and family both matter. On an InfiniBand port (the table has IB rows
 * and no RoCE rows) the first non-zero IB row is taken, since IB GIDs have no family.
 * Returns 0 and *index (an entry's `index`, <= 255), or -ENOENT with a message naming the
 * family sought and what the table holds; -EINVAL for an index above 255. */
int cmn_dc_pick_sgid(const struct cmn_gid_entry *table, size_t n, const uint8_t client_gid[16],
                     uint8_t *index, struct cmn_err *err);

#endif
