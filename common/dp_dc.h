/* The dc data plane, source side: RDMA WRITE (GET) and READ (staged PUT) into the memory of
 * cuObject-family clients through mlx5 DC initiators (DCIs), on a libuv loop.
 *
 * A client's x-amz-rdma-token names a DC target (DCT) and a registered window; any process that
 * holds the token and the cluster's DC key can reach that window, with no connection set up
 * first. So every lode-node (GET pieces) and every gateway worker (degraded stripes, staged PUT
 * reads) opens one of these per event loop. docs/dataplane-dc.md has the design, the limits and
 * the integration contract; the token rules are in docs/rdma-token.md.
 *
 * Objects kept per instance: one RDMA device and port, a PD, one CQ with a completion channel
 * (watched by a uv_poll), a pool of DCIs, an address-handle cache keyed by client GID (LID when
 * the token has g = 0), and a pool of registered host staging memory: bytes are copied into a
 * staging slot for a WRITE and out of it after a READ, so callers hand in ordinary memory and
 * nothing is registered per transfer (as in the rc transport).
 *
 * A call moves one contiguous range of the window; it is cut into slot-sized work requests (WRs)
 * posted on one DCI (chosen by the target, so one client's traffic stays on one DCI), and its
 * callback runs once every WR posted for it has completed. A posted DC WRITE cannot be taken
 * back: it completes, or fails, within the transport's retry budget (cmn_dp_dc_drain_ms). The
 * fence builds on that bound.
 *
 * The DC key is sensitive: it is never logged. Tokens are never logged either.
 *
 * Build: cmn_dp_dc_config_defaults() and cmn_dp_dc_config_check() are always built (dp_dc_core.c)
 * so that daemons can parse and check their settings anywhere; everything else exists only when
 * configure found rdma-core's mlx5 direct verbs (HAVE_MLX5DV, dp_dc.c). Nothing here has run on
 * ConnectX hardware yet: tests/hw/README.md says how to run it there.
 *
 * Concurrency: an instance belongs to the loop it was created on. Every function taking a
 * struct cmn_dp_dc must be called on that loop's thread; callbacks run there.
 */
#ifndef LODE_COMMON_DP_DC_H
#define LODE_COMMON_DP_DC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/err.h"
#include "common/rdma_token.h"

/* Largest single write or read call: NVIDIA's server library moves at most 1 GiB per call and
 * clients are tested against that; larger ranges are split by the caller. */
#define CMN_DP_DC_CALL_MAX ((uint64_t)1 << 30)

/* The DC key cuObject ships in cuobj.json. It is public: a cluster should set its own, in
 * lode's dc-key and in every client's configuration. */
#define CMN_DP_DC_KEY_DEFAULT 0xffeeddccull

struct cmn_dp_dc;

struct cmn_dp_dc_config {
    const char *device;          /* RDMA device name (e.g. "mlx5_0"); NULL or "": use `ip` */
    const char *ip;              /* a local address of the RDMA port; used when device is
                                    unset, to find the device and port that own it */
    uint8_t port;                /* port number with `device`; 0: 1 */
    int gid_index;               /* local GID index 0..255; -1: chosen per client GID family
                                    (first RoCEv2 entry of the family, cmn_dc_pick_sgid) */
    uint64_t dc_key;             /* must equal the clients' DC key; SENSITIVE, never logged */
    uint8_t timeout;             /* local ACK timeout exponent 1..31 (4.096 us * 2^n) */
    uint8_t retry_cnt;           /* transport retries 0..7 */
    uint8_t hop_limit;           /* GRH hop limit, >= 1 */
    uint8_t traffic_class;       /* GRH traffic class (DSCP << 2 | ECN) */
    uint8_t sl;                  /* service level 0..15 */
    uint8_t max_rd_atomic;       /* RDMA READs in flight per DCI, 1..16 (the device may cap it) */
    bool rtr_av;                 /* INIT->RTR also carries the port's address vector
                                    (IBV_QP_AV); off by default, see docs/dataplane-dc.md */
    uint32_t num_dcis;           /* DC initiators, 1..1024 */
    uint32_t sq_depth;           /* WRs in flight per DCI, 1..4096 */
    size_t staging_bytes;        /* registered staging memory: 1..65536 whole slots */
    size_t slot_bytes;           /* largest single WR: a power of two, 4 KiB..16 MiB */
    uint32_t ah_cache_max;       /* address handles kept; raised to slots + DCIs + 1 at least */
    uint32_t max_queued;         /* calls waiting for a slot or a DCI, 1..2^20; beyond: -EAGAIN */
};

/* Fills the defaults: device NULL, ip NULL, port 1, gid_index -1, dc_key
 * CMN_DP_DC_KEY_DEFAULT, timeout 16, retry_cnt 7, hop_limit 64, traffic_class 96, sl 0,
 * max_rd_atomic 16, rtr_av false, 16 DCIs of 64 WRs, 64 MiB staging in 1 MiB slots, 1024 address
 * handles, 65536 queued calls. The timeout/retry pair is cuObject's (drain bound 2148 ms). */
void cmn_dp_dc_config_defaults(struct cmn_dp_dc_config *cfg);

/* Checks every field against the ranges above (device or ip must be set) and writes the
 * normalised form to *out (ah_cache_max raised as documented; strings are borrowed from `in`).
 * Returns 0, or LODE_ECONFIG with a message naming the field. Pure; in and out may alias. */
int cmn_dp_dc_config_check(const struct cmn_dp_dc_config *in, struct cmn_dp_dc_config *out,
                           struct cmn_err *err);

/* The dc-* keys of lode-node and lode-gateway (docs/dataplane-dc.md section 8) as read from
 * their configuration files, before checking. Strings are borrowed; `key` is SENSITIVE. */
struct cmn_dp_dc_keys {
    const char *device, *address, *key;
    int64_t port, gid_index, timeout, retry, hop_limit, traffic_class, sl, dcis, sq_depth;
    uint64_t staging, slot;
    bool rtr_av;
};

/* The dc-* entries of a daemon's configuration table (lode-node and lode-gateway share them;
 * docs/config.md lists them per daemon). Expand inside a struct cmn_conf_key table, with the
 * file's OFF(field) offset macro in scope and common/conf.h included; the config struct holds
 * the values in a `struct cmn_dp_dc_keys dc_keys` member (the key strings are the
 * configuration's: freed with it, dc-key CMN_CONF_SENSITIVE). */
#define CMN_DP_DC_CONF_KEYS(OFF)                                                                 \
    {"dc-device", CMN_CONF_STR, OFF(dc_keys.device), NULL,                                       \
     "RDMA device of the dc transport (docs/dataplane-dc.md), e.g. mlx5_0: DC initiators on a "  \
     "ConnectX NIC write into (and read from) the memory of cuObject-family clients that send "  \
     "81-character DC tokens. With neither this nor dc-address, dc is off and DC tokens are "    \
     "declined. Needs a build with rdma-core's mlx5 direct verbs.",                              \
     0, 0, 0},                                                                                   \
    {"dc-address", CMN_CONF_STR, OFF(dc_keys.address), NULL,                                     \
     "A local IP address (no port) of the RDMA port dc uses; picks device and port when "        \
     "dc-device is unset.",                                                                      \
     0, 0, 0},                                                                                   \
    {"dc-port", CMN_CONF_INT, OFF(dc_keys.port), "1", "Port number of dc-device.", 0, 1, 255},   \
    {"dc-key", CMN_CONF_STR, OFF(dc_keys.key), NULL,                                             \
     "The DC access key, 0x and up to 16 hex digits, or decimal; it must equal the clients' "    \
     "key (cuobj.json). Unset = 0xffeeddcc, cuObject's published "                               \
     "default, which anyone can use: a warning is logged.",                                      \
     CMN_CONF_SENSITIVE, 0, 0},                                                                  \
    {"dc-gid-index", CMN_CONF_INT, OFF(dc_keys.gid_index), "-1",                                 \
     "Local GID table index for dc; -1 = the first RoCEv2 entry of each client GID's family "    \
     "(IPv4-mapped or IPv6).",                                                                   \
     0, -1, 255},                                                                                \
    {"dc-timeout", CMN_CONF_INT, OFF(dc_keys.timeout), "16",                                     \
     "Local ACK timeout exponent of the DC initiators (4.096us x 2^n); with dc-retry it sets "   \
     "the drain bound the fence waits (2148 ms at 16 and 7).",                                   \
     0, 1, 31},                                                                                  \
    {"dc-retry", CMN_CONF_INT, OFF(dc_keys.retry), "7",                                        \
     "Transport retries of the DC initiators.", 0, 0, 7},                                        \
    {"dc-hop-limit", CMN_CONF_INT, OFF(dc_keys.hop_limit), "64",                                \
     "GRH hop limit of dc packets.", 0, 1, 255},                                                 \
    {"dc-traffic-class", CMN_CONF_INT, OFF(dc_keys.traffic_class), "96",                         \
     "GRH traffic class of dc packets (DSCP << 2 | ECN); 96 is NVIDIA's (DSCP 24).", 0, 0,       \
     255},                                                                                       \
    {"dc-sl", CMN_CONF_INT, OFF(dc_keys.sl), "0", "Service level of dc packets.", 0, 0, 15},     \
    {"dc-dcis", CMN_CONF_INT, OFF(dc_keys.dcis), "16",                                           \
     "DC initiators per event loop; raise it with many concurrent clients.", 0, 1, 1024},        \
    {"dc-sq-depth", CMN_CONF_INT, OFF(dc_keys.sq_depth), "64", "Work requests in flight per DC " \
     "initiator.", 0, 1, 4096},                                                                  \
    {"dc-staging", CMN_CONF_SIZE, OFF(dc_keys.staging), "64MiB",                                 \
     "Registered (pinned) staging memory of dc per event loop, a whole number of dc-slot "       \
     "slots (at most 65536). Counts against RLIMIT_MEMLOCK.",                                    \
     0, 4096, INT64_C(1) << 40},                                                                 \
    {"dc-slot", CMN_CONF_SIZE, OFF(dc_keys.slot), "1MiB",                                        \
     "Largest single dc work request: a power of two from 4KiB to 16MiB.", 0, 4096, 16 << 20},   \
    {"dc-rtr-av", CMN_CONF_BOOL, OFF(dc_keys.rtr_av), "false",                                   \
     "Bring DC initiators to RTR with the port's address vector (as Mellanox's "                 \
     "gpu_direct_rdma_access does) instead of without (as UCX does).",                           \
     0, 0, 0}

/* Turns the keys into *out (defaults first; out->device and out->ip borrow the key strings):
 * *enabled when device or address is set (then the result is checked with
 * cmn_dp_dc_config_check); *key_public when no key is given or it is CMN_DP_DC_KEY_DEFAULT.
 * The key is 0x and 1..16 hex digits, or decimal below 2^64; no message ever quotes it.
 * Returns 0, or LODE_ECONFIG with a message naming the key at fault. Pure. */
int cmn_dp_dc_config_from_keys(const struct cmn_dp_dc_keys *k, struct cmn_dp_dc_config *out,
                               bool *enabled, bool *key_public, struct cmn_err *err);

/* 0, or LODE_ECONFIG with a message naming `daemon` when dc is enabled in a build without
 * rdma-core's mlx5 direct verbs (the daemon then refuses to start; --check still passes). */
int cmn_dp_dc_buildable(bool enabled, const char *daemon, struct cmn_err *err);

struct cmn_dp_dc_stats {
    uint64_t writes, reads;          /* calls that completed successfully */
    uint64_t bytes_written, bytes_read;
    uint64_t bytes_direct;           /* WR bytes moved from/to a registered region, no copy */
    uint64_t calls_failed;           /* calls whose callback got an error */
    uint64_t wrs_posted;             /* including reposts */
    uint64_t wr_errors;              /* completions with an error of their own (not flushes) */
    uint64_t wrs_reposted;           /* WRs flushed by another target's error, posted again */
    uint64_t dci_recoveries;         /* ERROR -> RESET -> INIT -> RTR -> RTS done */
    uint64_t dci_recovery_failures;  /* a recovery step failed; the DCI waits and retries */
    uint64_t dci_forced;             /* DCIs moved to ERROR by a fence or the stall watchdog */
    uint64_t fences, fences_forced;  /* fences; those whose drain bound ran out */
    uint64_t ah_hits, ah_misses, ah_evictions, ah_failures;
    uint32_t calls_queued;           /* calls with WRs not yet posted */
    uint32_t wrs_in_flight;
    uint32_t slots_free, slots_total;
    uint32_t dcis_ready, dcis_total;
};

/* Prometheus series of one dc instance (docs/fanout.md, Metrics): `<prefix>_dc_..._total`
 * counters fed from the instance's cumulative statistics, and gauges. */
#define CMN_DP_DC_N_COUNTERS 18
#define CMN_DP_DC_N_GAUGES 6
struct cmn_metrics;
struct cmn_counter;
struct cmn_gauge;
struct cmn_dp_dc_metrics {
    struct cmn_counter *c[CMN_DP_DC_N_COUNTERS];
    struct cmn_gauge *g[CMN_DP_DC_N_GAUGES];
    struct cmn_dp_dc_stats last;   /* what was fed last */
};

/* Registers the series as `<prefix>_dc_<stat>` (prefix e.g. "lode_node") with `labels` (NULL
 * or a label list such as worker="0"). Returns 0 or -ENOMEM. */
int cmn_dp_dc_metrics_init(struct cmn_dp_dc_metrics *dm, struct cmn_metrics *m,
                           const char *prefix, const char *labels);

/* Feeds a fresh cmn_dp_dc_get_stats() result: counters grow by what the statistics grew since
 * the last feed (a statistic that went down, a new instance, counts from zero), gauges take
 * the values. Pure apart from the metric updates. */
void cmn_dp_dc_metrics_feed(struct cmn_dp_dc_metrics *dm, const struct cmn_dp_dc_stats *s);

/* Completion of a write, read or fence: 0 or a negative code. */
typedef void (*cmn_dp_dc_cb)(void *data, int status);
typedef void (*cmn_dp_dc_close_cb)(void *data);

/* Opens the device (by name, or the one owning cfg->ip), its port, PD, CQ and completion
 * channel, registers the staging memory, creates the DCIs and takes them to RTS. Fails here,
 * with a message naming the cause and the remedy, when the device is missing or not mlx5
 * ("dc needs a ConnectX NIC"), the port is not active, RLIMIT_MEMLOCK is too low, or a DCI
 * cannot be created or brought up. The config is checked with cmn_dp_dc_config_check and
 * copied (strings are not kept). Returns 0 and *out, or a negative code with err set (*out
 * untouched). Destroy with cmn_dp_dc_close. */
int cmn_dp_dc_create(uv_loop_t *loop, const struct cmn_dp_dc_config *cfg, struct cmn_dp_dc **out,
                     struct cmn_err *err);

/* RDMA-WRITEs len bytes from src to offset `off` of the token's window. `t` is a parsed DC
 * token (kind CMN_RDMA_DC; its fields are copied, t need not outlive the call); src is
 * borrowed until cb runs (copied into staging memory when its turn comes, unless it lies in a
 * region of cmn_dp_dc_add_region: then the NIC reads it where it lies).
 * Returns 0, and then cb runs exactly once, later, on the loop: 0 once every WR has completed
 * successfully (the client's NIC acknowledged every byte), or an error; or returns without
 * calling cb:
 *   -EINVAL          not a DC token, len 0 or above CMN_DP_DC_CALL_MAX, or the token's
 *                    addressing is unusable (cmn_dc_derive: zero GID, non-unicast LID);
 *   LODE_EWINDOW     [off, off + len) is not inside the window;
 *   -ENOENT          no local GID fits the client's GID family (logged, rate-limited, with
 *                    what the port has; so are the -EINVAL addressing refusals);
 *   LODE_ECLOSED     a fence on this target is in progress;
 *   -EAGAIN          max_queued calls are waiting: retry after a completion;
 *   LODE_EUNAVAILABLE every DCI is broken;  LODE_ESHUTDOWN: closing;  -ENOMEM.
 * cb errors: LODE_EWINDOW (the client's NIC refused the rkey or address: the window is not
 * registered as the token claims), LODE_ETIMEOUT (no answer within the retry budget: client
 * gone, DCT destroyed, wrong DC key, unreachable GID), LODE_ECLOSED (fenced, or flushed too
 * often by other clients' errors on a shared DCI), LODE_EUNAVAILABLE (no address handle for
 * the client's GID: no route), LODE_EINTERNAL (a local protection or length error: a bug),
 * -EIO (device error), LODE_ESHUTDOWN (cmn_dp_dc_close). After an error some bytes may have
 * been placed. */
int cmn_dp_dc_write(struct cmn_dp_dc *dc, const struct cmn_rdma_token *t, uint64_t off,
                    const void *src, size_t len, cmn_dp_dc_cb cb, void *data);

/* RDMA-READs len bytes at offset `off` of the window into dst (borrowed until cb). Same rules
 * as cmn_dp_dc_write; on an error the contents of dst are unspecified. */
int cmn_dp_dc_read(struct cmn_dp_dc *dc, const struct cmn_rdma_token *t, uint64_t off, void *dst,
                   size_t len, cmn_dp_dc_cb cb, void *data);

/* Fences a target (the token's DCT, address, rkey and window): parts of calls to it not yet
 * posted fail with LODE_ECLOSED at once, new calls to it are refused with LODE_ECLOSED while
 * the fence is pending, and cb(0) runs once no WR to it is in flight, i.e. when this source
 * can no longer place a byte in that window. WRs still in flight when the drain bound
 * (cmn_dp_dc_drain_ms plus a margin) has passed are cut off by moving their DCI to ERROR (the
 * other targets' WRs on it are posted again after recovery); cb still gets 0 then, and
 * fences_forced counts it. Returns 0 (cb will run), or -EINVAL (not a DC token) /
 * LODE_ESHUTDOWN / -ENOMEM (cb will not run). */
int cmn_dp_dc_fence(struct cmn_dp_dc *dc, const struct cmn_rdma_token *t, cmn_dp_dc_cb cb,
                    void *data);

/* Registers [base, base + len) with the instance's device for local access only (no peer can
 * reach it), so that a write from it, or a read into it, goes without a staging copy. The
 * memory must stay mapped, and keep its use, until close_cb of cmn_dp_dc_close. Returns 0, or
 * -EINVAL (empty, wrapping, overlapping), -ENOSPC (CMN_DP_DC_MAX_REGIONS already) or the
 * registration's error, with err set (nothing is kept then: such transfers are staged). */
#define CMN_DP_DC_MAX_REGIONS 4
int cmn_dp_dc_add_region(struct cmn_dp_dc *dc, void *base, size_t len, struct cmn_err *err);

/* The drain bound of this instance's DCIs (cmn_dc_drain_ms of its timeout and retry count):
 * how long after its last post a source can still place bytes. The gateway waits lease + this
 * before rewriting a window a node may still be writing. */
uint64_t cmn_dp_dc_drain_ms(const struct cmn_dp_dc *dc);

void cmn_dp_dc_get_stats(const struct cmn_dp_dc *dc, struct cmn_dp_dc_stats *out);

/* Fails queued calls and fences with LODE_ESHUTDOWN, moves every DCI to ERROR so that WRs in
 * flight flush (their calls fail with LODE_ESHUTDOWN), waits for the flushes (at most a few
 * seconds; then the DCIs are destroyed anyway), releases everything, and calls close_cb (may be
 * NULL) once all memory is freed and the loop holds no handle of ours. Every callback runs
 * before close_cb. The handle must not be used after this call. */
void cmn_dp_dc_close(struct cmn_dp_dc *dc, cmn_dp_dc_close_cb close_cb, void *data);

#endif
