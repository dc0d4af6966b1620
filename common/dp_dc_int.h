/* Internals of the dc data plane: the NIC-free core (dp_dc_core.c) that dp_dc.c drives with
 * verbs, exposed here so tests/unit/common/test_dp_dc.c can run all of it against a fake NIC.
 * Not an API. Nothing here includes rdma-core headers: values that verbs define (completion
 * statuses, QP states, attribute-mask bits) are mirrored by number, and dp_dc.c checks every
 * mirror against rdma-core with static assertions.
 *
 * Pieces, from the bottom up:
 *   dc_req        one call's WR bookkeeping: posted vs completed, first error, finished once
 *   dc_wc_*       a completion status -> what it means for the call and for the DCI
 *   dc_slots      the staging pool's free list
 *   dc_slice      a call cut into slot-sized WRs, each remote address checked against the window
 *   dc_ah_cache   address handles keyed by client GID (LID when g = 0), LRU over unpinned ones
 *   dc_qp_plan    the DCI's modify-QP sequence to RTS, as a table of steps with attributes
 *   dc_dci_next   the DCI's life: READY, DRAINING (in ERROR, WRs flushing), BROKEN, DEAD
 *   dc_engine     queues, slots, DCIs, fences and completions, driven through struct dc_hw_ops;
 *                 the caller passes the time and delivers callbacks with dc_engine_run_done
 */
#ifndef LODE_COMMON_DP_DC_INT_H
#define LODE_COMMON_DP_DC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dc_params.h"
#include "common/dp_dc.h"
#include "common/err.h"
#include "common/log.h"

#define DC_CTX "dc"
/* A WR flushed because another target's WR failed on the same DCI is posted again at most this
 * many times; WRITE and READ are idempotent (same bytes, same address), so a repost is safe. */
#define DC_REPOST_MAX 3
/* Added to the drain bound before a fence cuts WRs off: completion events take a loop turn. */
#define DC_FENCE_MARGIN_MS 100
/* A broken DCI (a recovery step failed) is tried again this often. */
#define DC_RETRY_BROKEN_MS 1000

/* ------------------------------------------------------------------ lists */

struct dc_list {
    struct dc_list *prev, *next;
};

static inline void dc_list_init(struct dc_list *l) { l->prev = l->next = l; }
static inline bool dc_list_empty(const struct dc_list *l) { return l->next == l; }
static inline void dc_list_add_tail(struct dc_list *l, struct dc_list *e)
{
    e->prev = l->prev;
    e->next = l;
    l->prev->next = e;
    l->prev = e;
}
static inline void dc_list_del(struct dc_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = e;
}
#define dc_list_item(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ------------------------------------------------------------------ one call's WRs */

struct dc_req {
    uint64_t len;                /* bytes of the call */
    uint32_t slot_bytes;
    uint32_t wr_total;           /* WRs the call needs: ceil(len / slot_bytes) */
    uint32_t wr_next;            /* index of the next WR to post */
    uint32_t wr_inflight;        /* posted, not finally completed (a repost stays counted) */
    int status;                  /* first error, or 0 */
    bool aborted;                /* no further WR may be posted */
    bool finished;               /* reported finished once; never again */
};

/* len 1..CMN_DP_DC_CALL_MAX, slot_bytes a power of two (checked by the config). */
void dc_req_init(struct dc_req *r, uint64_t len, uint32_t slot_bytes);
/* True when another WR may be posted: not aborted and WRs left. */
bool dc_req_can_post(const struct dc_req *r);
/* Marks WR number r->wr_next posted and returns its index. Only when dc_req_can_post. */
uint32_t dc_req_post(struct dc_req *r);
/* A posted WR completed finally with `status` (0 or a negative code). The first error is kept
 * and stops further posting. Returns true exactly once: when the call is finished, i.e. no WR
 * is in flight and either every WR was posted or the call was stopped. */
bool dc_req_complete(struct dc_req *r, int status);
/* Stops further posting with `code` (kept unless an error is already recorded). Returns true
 * when that finishes the call (nothing in flight), exactly once like dc_req_complete. */
bool dc_req_abort(struct dc_req *r, int code);

/* ------------------------------------------------------------------ completions */

/* enum ibv_wc_status, by number. */
enum dc_wc_status {
    DC_WC_SUCCESS = 0,
    DC_WC_LOC_LEN_ERR = 1,
    DC_WC_LOC_QP_OP_ERR = 2,
    DC_WC_LOC_PROT_ERR = 4,
    DC_WC_WR_FLUSH_ERR = 5,
    DC_WC_BAD_RESP_ERR = 7,
    DC_WC_LOC_ACCESS_ERR = 8,
    DC_WC_REM_INV_REQ_ERR = 9,
    DC_WC_REM_ACCESS_ERR = 10,
    DC_WC_REM_OP_ERR = 11,
    DC_WC_RETRY_EXC_ERR = 12,
    DC_WC_RNR_RETRY_EXC_ERR = 13,
    DC_WC_REM_INV_RD_REQ_ERR = 15,
    DC_WC_REM_ABORT_ERR = 16,
    DC_WC_FATAL_ERR = 19,
    DC_WC_RESP_TIMEOUT_ERR = 20,
    DC_WC_GENERAL_ERR = 21,
};

enum dc_wc_kind {
    DC_WC_OK,                    /* the WR completed */
    DC_WC_FLUSHED,               /* never executed (or cut off): the DCI is in ERROR */
    DC_WC_FAILED,                /* this WR's own error; the DCI is now in ERROR */
};

/* Classifies a completion status and gives the code a failed call reports: 0 for success;
 * LODE_ECLOSED for a flush; LODE_EWINDOW when the client's NIC refused the access (rkey,
 * address, permissions); LODE_ETIMEOUT when it never answered (retries or RNR retries
 * exhausted, response timeout); LODE_ECLOSED for a remote operation error or abort;
 * LODE_EINTERNAL for local length/protection/access/QP errors (a bug on this side); -EIO for
 * anything else (fatal or unknown). */
enum dc_wc_kind dc_wc_classify(int wc_status, int *code);

/* ------------------------------------------------------------------ staging slots */

struct dc_slots {
    uint32_t n, nfree;
    uint32_t *stack;             /* free indexes; the lowest index is handed out first */
    uint8_t *used;
};

/* n 1..65536. Returns 0 or -ENOMEM (s zeroed then). */
int dc_slots_init(struct dc_slots *s, uint32_t n);
void dc_slots_fini(struct dc_slots *s);
/* Returns a free index, or -ENOSPC. */
int dc_slots_get(struct dc_slots *s);
/* Returns 0, or -EINVAL for an index out of range or not in use (nothing changes). */
int dc_slots_put(struct dc_slots *s, uint32_t idx);

/* ------------------------------------------------------------------ slicing */

struct dc_wr_desc {
    uint64_t call_off;           /* offset of the WR's first byte within the call */
    uint32_t len;
    uint64_t raddr;              /* remote address: base + window offset + call_off */
};

/* Number of WRs for len bytes: ceil(len / slot_bytes); 0 for len 0. */
uint32_t dc_slice_count(uint64_t len, uint32_t slot_bytes);
/* WR number i of a call of len bytes at window offset `off`: its length is slot_bytes except
 * for the last one, and its remote address is checked by cmn_dc_remote_addr (inside the
 * window, no wrap) before anything is posted. Returns 0, -EINVAL (i out of range) or
 * LODE_EWINDOW with a message. */
int dc_slice(const struct cmn_dc_target *t, uint64_t off, uint64_t len, uint32_t slot_bytes,
             uint32_t i, struct dc_wr_desc *out, struct cmn_err *err);

/* ------------------------------------------------------------------ targets */

/* Two targets are the same window of the same client when DCT number, addressing (GID with
 * g = 1, LID with g = 0), rkey, base and size all match. Fences match calls this way. */
bool dc_target_same(const struct cmn_dc_target *a, const struct cmn_dc_target *b);

/* The DCI a target's calls use, 0..n-1: a hash of its address and DCT number, so one client's
 * calls stay on one DCI (no DCI reconnects between them) and clients spread over the pool. */
uint32_t dc_pick_dci(const struct cmn_dc_target *t, uint32_t n);

/* The local settings for a token: the configured GID index, or with gid_index -1 (and g = 1)
 * the index cmn_dc_pick_sgid chooses from the port's table for the client's GID family.
 * Returns 0, or -ENOENT with cmn_dc_pick_sgid's message. */
int dc_local_for(const struct cmn_dp_dc_config *cfg, const struct cmn_gid_entry *table, size_t n,
                 const struct cmn_rdma_token *t, struct cmn_dc_local *out, struct cmn_err *err);

/* ------------------------------------------------------------------ address handles */

struct dc_ah_key {
    uint8_t g;
    uint8_t sgid_index;
    uint16_t lid;                /* with g = 0 */
    uint8_t gid[16];             /* with g = 1; zero otherwise */
};

/* Fills the key of a target's address handle: the GID when is_global, else the LID, plus the
 * local GID index (the other AH attributes are the same for every target of one instance). */
void dc_ah_key_of(const struct cmn_dc_target *t, struct dc_ah_key *k);

struct dc_ah_entry {
    struct dc_ah_key key;
    void *ah;                    /* what create returned */
    uint32_t refs;               /* calls using it; never evicted while > 0 */
    struct dc_ah_entry *hnext;
    struct dc_list lru;          /* in the cache's LRU while refs == 0 */
};

struct dc_ah_ops {
    /* Creates an address handle; NULL with err set on failure. */
    void *(*create)(void *ctx, const struct cmn_dc_ah *attr, struct cmn_err *err);
    void (*destroy)(void *ctx, void *ah);
    void *ctx;
};

struct dc_ah_cache {
    struct dc_ah_ops ops;
    uint32_t cap, count, mask;
    uint64_t seed;
    struct dc_ah_entry **buckets;
    struct dc_list lru;          /* unpinned entries, least recently used first */
    uint64_t hits, misses, evictions, failures;
};

/* cap >= 1 entries; `seed` varies the hash (clients choose their GIDs). 0 or -ENOMEM. */
int dc_ah_cache_init(struct dc_ah_cache *c, uint32_t cap, const struct dc_ah_ops *ops,
                     uint64_t seed);
/* Destroys every entry (pinned ones too: call it only when nothing uses them). */
void dc_ah_cache_fini(struct dc_ah_cache *c);
/* The entry for the target, pinned: found, or created (evicting the least recently used
 * unpinned entry when the cache is full). Returns 0 and *out, -EBUSY when the cache is full
 * of pinned entries, or create's error (LODE_EUNAVAILABLE, message from create); failures are
 * not cached. */
int dc_ah_get(struct dc_ah_cache *c, const struct cmn_dc_target *t, struct dc_ah_entry **out,
              struct cmn_err *err);
/* Unpins an entry from dc_ah_get. */
void dc_ah_put(struct dc_ah_cache *c, struct dc_ah_entry *e);

/* ------------------------------------------------------------------ the DCI's QP states */

/* enum ibv_qp_state, by number. */
enum dc_qps {
    DC_QPS_RESET = 0,
    DC_QPS_INIT = 1,
    DC_QPS_RTR = 2,
    DC_QPS_RTS = 3,
    DC_QPS_SQD = 4,
    DC_QPS_SQE = 5,
    DC_QPS_ERR = 6,
};

/* enum ibv_qp_attr_mask bits, by number. */
#define DC_QP_STATE (1u << 0)
#define DC_QP_PKEY_INDEX (1u << 4)
#define DC_QP_PORT (1u << 5)
#define DC_QP_AV (1u << 7)
#define DC_QP_PATH_MTU (1u << 8)
#define DC_QP_TIMEOUT (1u << 9)
#define DC_QP_RETRY_CNT (1u << 10)
#define DC_QP_RNR_RETRY (1u << 11)
#define DC_QP_MAX_QP_RD_ATOMIC (1u << 13)
#define DC_QP_SQ_PSN (1u << 16)

struct dc_qp_params {
    uint8_t port;                /* >= 1 */
    uint16_t pkey_index;
    uint8_t path_mtu;            /* enum ibv_mtu: 1 (256) .. 5 (4096) */
    uint8_t timeout;             /* 1..31 */
    uint8_t retry_cnt;           /* 0..7 */
    uint8_t rnr_retry;           /* 0..6: WRITE and READ never meet an RNR NAK; 7 would be
                                    "forever" and break the drain bound */
    uint8_t max_rd_atomic;       /* 1..16 */
    bool rtr_av;                 /* add the port's address vector at INIT -> RTR */
    bool is_global;              /* for that vector: RoCE (GRH) */
    uint8_t sgid_index, hop_limit;
};

struct dc_qp_step {
    enum dc_qps state;           /* the state this step moves to */
    uint32_t mask;               /* DC_QP_* bits */
    uint8_t port_num;
    uint16_t pkey_index;
    uint8_t path_mtu;
    uint8_t timeout, retry_cnt, rnr_retry, max_rd_atomic;
    uint32_t sq_psn;
    uint8_t av_port;             /* with DC_QP_AV */
    bool av_is_global;
    uint8_t av_sgid_index, av_hop_limit;
};

#define DC_QP_PLAN_MAX 4

/* The steps from `from` to RTS for a DCI: RESET -> INIT (port, pkey index), INIT -> RTR (path
 * MTU, plus the address vector with rtr_av), RTR -> RTS (timeout, retry count, RNR retry, SQ
 * PSN 0, max RDMA READs in flight); from ERR, SQD or SQE first to RESET. Nothing to do from
 * RTS. Returns 0 and n steps in out, or -EINVAL with a message for a parameter out of range. */
int dc_qp_plan(enum dc_qps from, const struct dc_qp_params *p,
               struct dc_qp_step out[DC_QP_PLAN_MAX], size_t *n, struct cmn_err *err);

/* The single step that moves a DCI to ERR, flushing whatever it has posted. */
void dc_qp_step_error(struct dc_qp_step *out);

/* ------------------------------------------------------------------ the DCI's life */

enum dc_dci_state {
    DCI_READY,                   /* RTS: WRs may be posted */
    DCI_DRAINING,                /* in ERROR: posted WRs flush; recovered once none is left */
    DCI_BROKEN,                  /* a recovery step failed: retried every DC_RETRY_BROKEN_MS */
    DCI_DEAD,                    /* closing */
};

enum dc_dci_event {
    DCI_EV_WR_ERROR,             /* a completion with an error (or an unexpected flush) */
    DCI_EV_FORCE,                /* moved to ERROR on purpose: a fence or the stall watchdog */
    DCI_EV_RECOVERED,            /* ERROR -> ... -> RTS succeeded */
    DCI_EV_RECOVERY_FAILED,      /* a step of it failed */
    DCI_EV_CLOSE,
};

/* The transition table. Returns the next state, or -1 when the event cannot happen in that
 * state (the engine then leaves the state alone). */
int dc_dci_next(enum dc_dci_state s, enum dc_dci_event ev);
const char *dc_dci_state_name(enum dc_dci_state s);

/* ------------------------------------------------------------------ the engine */

/* One WR for the hardware. */
struct dc_post {
    uint64_t wr_id;
    bool is_read;
    uint32_t slot;               /* the slot tracking the WR */
    int region;                  /* -1: `local` is the slot's staging memory; else it lies in
                                    that registered region (dc_engine_add_region) */
    uint8_t *local;
    uint32_t len;
    uint64_t raddr;
    uint32_t rkey;
    void *ah;
    uint32_t dctn;
    uint64_t dc_key;             /* SENSITIVE */
};

/* The NIC, as the engine sees it. All return 0 or a negative errno. */
struct dc_hw_ops {
    int (*post)(void *hw, uint32_t dci, const struct dc_post *p);
    int (*modify)(void *hw, uint32_t dci, const struct dc_qp_step *s);
    void *(*ah_create)(void *hw, const struct cmn_dc_ah *attr, struct cmn_err *err);
    void (*ah_destroy)(void *hw, void *ah);
};

/* A callback waiting for delivery; first member of calls and fences. */
struct dc_done {
    struct dc_list link;         /* engine->ops or ->fences while pending; then ->done */
    cmn_dp_dc_cb cb;
    void *data;
    int status;
};

struct dc_op {
    struct dc_done done;
    struct dc_list qlink;        /* in its DCI's queue while it has WRs to post */
    struct dc_req req;
    struct cmn_dc_target t;
    uint64_t off;                /* window offset of the call's first byte */
    uint8_t *local;              /* caller memory: source of a write, destination of a read */
    int region;                  /* the registered region `local` lies in, or -1: staged */
    bool is_read, queued;
    bool fenced;                 /* a fence waits for it: its flushed WRs are not reposted */
    uint32_t dci;
    struct dc_ah_entry *ah;      /* pinned from the first post until finished */
};

struct dc_slot {
    struct dc_op *op;            /* NULL when free */
    struct dc_list rlink;        /* in its DCI's repost list after a collateral flush */
    uint64_t call_off;
    uint64_t raddr;
    uint32_t len;
    uint32_t gen;                /* bumped at every allocation: stale wr_ids are ignored */
    uint8_t tries;               /* reposts so far */
    bool posted;                 /* in the hardware (not waiting for a repost) */
};

struct dc_dci {
    uint32_t idx;
    enum dc_dci_state state;
    uint32_t inflight;           /* WRs in the hardware */
    uint64_t progress_ms;        /* last completion, or first post after being idle */
    uint64_t retry_at;           /* BROKEN: next recovery attempt */
    bool stall_logged;
    bool force_pending;          /* scratch flag of dc_engine_tick */
    struct dc_list queue;        /* struct dc_op, FIFO */
    struct dc_list repost;       /* struct dc_slot, FIFO; posted before the queue */
    struct dc_list wait;         /* engine->waitq while it has work and room */
    bool waiting;
};

struct dc_fence {
    struct dc_done done;
    struct cmn_dc_target t;
    uint32_t ops_left;           /* matching calls with WRs in flight */
    uint64_t deadline_ms;
    bool forced;
};

struct dc_engine {
    struct cmn_dp_dc_config cfg;         /* normalised; strings not kept */
    const struct dc_hw_ops *hw_ops;
    void *hw;
    struct dc_qp_params qp;
    uint8_t *pool;                       /* nslots * slot_bytes of registered memory */
    struct { uint8_t *base; uint64_t len; } regions[CMN_DP_DC_MAX_REGIONS];
    uint32_t nregions;
    uint32_t slot_bytes, nslots;
    struct dc_slots slots;
    struct dc_slot *slot;
    struct dc_dci *dcis;
    uint32_t ndcis;
    struct dc_ah_cache ahc;
    struct dc_list waitq;                /* DCIs with work and room, served in turn */
    struct dc_list ops;                  /* calls not finished */
    struct dc_list fences;               /* fences pending */
    struct dc_list done;                 /* callbacks to deliver */
    uint32_t queued, inflight;
    uint64_t drain_ms, stall_ms;
    bool closing, delivering;
    struct cmn_dp_dc_stats st;
    struct cmn_log_ratelimit rl_wr, rl_ah;   /* peers can trigger these messages at will */
};

/* Sets the engine up over hw (cfg already checked; pool holds staging_bytes / slot_bytes slots
 * of slot_bytes, owned by the caller) and takes every DCI from RESET to RTS through
 * hw_ops->modify. Returns 0, or a negative code with a message (the engine is then finalised;
 * do not call dc_engine_fini). */
int dc_engine_init(struct dc_engine *e, const struct cmn_dp_dc_config *cfg,
                   const struct dc_hw_ops *ops, void *hw, uint8_t *pool,
                   const struct dc_qp_params *qp, uint64_t ah_seed, struct cmn_err *err);
/* Frees the engine's memory; destroys its address handles. Nothing may be in flight (after
 * dc_engine_shutdown and the flushes, or dc_engine_abandon). Undelivered callbacks are lost. */
void dc_engine_fini(struct dc_engine *e);

/* Makes [base, base + len) a region that calls may use in place, without staging copies
 * (the caller registered it with the NIC; hw_ops->post sees its index in dc_post.region).
 * Returns the index, -EINVAL (empty, wrapping, overlapping one already added) or -ENOSPC. */
int dc_engine_add_region(struct dc_engine *e, uint8_t *base, uint64_t len);
/* A write (is_read false: local is the source) or read into `local`, as cmn_dp_dc_write /
 * cmn_dp_dc_read describe, return codes included (minus the ones about tokens). */
int dc_engine_submit(struct dc_engine *e, const struct cmn_dc_target *t, uint64_t off,
                     uint8_t *local, uint64_t len, bool is_read, cmn_dp_dc_cb cb, void *data,
                     uint64_t now_ms);
/* As cmn_dp_dc_fence. */
int dc_engine_fence(struct dc_engine *e, const struct cmn_dc_target *t, cmn_dp_dc_cb cb,
                    void *data, uint64_t now_ms);
/* One completion from the CQ. Unknown or stale wr_ids are ignored. */
void dc_engine_on_wc(struct dc_engine *e, uint64_t wr_id, int wc_status, uint64_t now_ms);
/* Timers: fence deadlines, the stall watchdog (a DCI with WRs in flight and no completion for
 * stall_ms is forced to ERROR), retries of broken DCIs. */
void dc_engine_tick(struct dc_engine *e, uint64_t now_ms);
/* Delivers pending callbacks (never nested: a call from inside a callback returns false at
 * once). Returns true when it delivered any. Callbacks may submit, fence, or shut down. */
bool dc_engine_run_done(struct dc_engine *e);
bool dc_engine_has_done(const struct dc_engine *e);
/* Starts closing: queued calls and pending fences fail with LODE_ESHUTDOWN, every DCI goes to
 * ERROR; calls in flight fail with LODE_ESHUTDOWN as their flushes come back. */
void dc_engine_shutdown(struct dc_engine *e, uint64_t now_ms);
/* Nothing in the hardware. */
bool dc_engine_quiet(const struct dc_engine *e);
/* After the DCIs were destroyed with WRs still in flight: completes those as failed
 * (LODE_ESHUTDOWN) and frees their slots. */
void dc_engine_abandon(struct dc_engine *e);
void dc_engine_stats(const struct dc_engine *e, struct cmn_dp_dc_stats *out);

#endif
