/* Internals of the rc data plane shared by dp_rc.c (sessions, transfers, teardown, public
 * API) and dp_rc_conn.c (connection manager, HELLO, devices, wire records). Not an API. */
#ifndef LODE_COMMON_DP_RC_INT_H
#define LODE_COMMON_DP_RC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "common/clock.h"
#include "common/dp_proto.h"
#include "common/dp_rc.h"
#include "common/hmac.h"
#include "common/id.h"

#define RC_CTX "rc"
#define RC_MAX_DEVS 8
#define RC_MAX_REGIONS CMN_DP_RC_MAX_REGIONS
#define RC_SWEEP_MS 250
#define RC_TEARDOWN_MS 2000   /* how long a dead session waits for its flushes */
#define RC_CTL_SIZE (CMN_DP_HELLO_SIZE + CMN_DP_REPLY_SIZE)

/* wr_id: a pointer (8-byte aligned) with the kind in its low bits. */
enum wr_kind { WR_SLOT = 0, WR_HELLO_RECV = 1, WR_REPLY_SEND = 2, WR_DIRECT = 3 };

struct rc_list {
    struct rc_list *prev, *next;
};

static inline void list_init(struct rc_list *l) { l->prev = l->next = l; }
static inline bool list_empty(const struct rc_list *l) { return l->next == l; }
static inline void list_add_tail(struct rc_list *l, struct rc_list *e)
{
    e->prev = l->prev;
    e->next = l;
    l->prev->next = e;
    l->prev = e;
}
static inline void list_del(struct rc_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = e;
}
#define list_item(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

enum sess_state { S_ACCEPTING, S_ACTIVE, S_REFUSING, S_DEAD };

/* A user completion waiting to be delivered by run_done(). First member of ops and fences. */
struct rc_done {
    struct rc_list link;
    cmn_dp_rc_cb cb;
    void *data;
    int status;
};

struct rc_dev;
struct rc_sess;

struct rc_op {
    struct rc_done done;
    struct rc_list link;         /* in its session's queue until fully posted */
    struct rc_list dlink;        /* direct: in its session's `direct` list until finished */
    struct rc_sess *s;
    bool is_read, queued, aborted;
    int region;                  /* the registered region `local` lies in, or -1: staged */
    uint64_t raddr;
    uint32_t rkey;
    uint8_t *local;
    size_t len, posted;
    uint32_t wrs;                /* posted, not completed */
};

struct rc_slot {
    struct rc_op *op;            /* NULL when free */
    uint8_t *buf;
    size_t off;                  /* within op */
    uint32_t len;
};

struct rc_dev {
    struct cmn_dp_rc *rc;
    struct ibv_context *verbs;
    struct ibv_pd *pd;
    struct ibv_comp_channel *cc;
    struct ibv_cq *cq;
    uv_poll_t poll;
    bool poll_inited;
    unsigned unacked;            /* CQ events not yet acknowledged */
    uint8_t *pool;
    struct ibv_mr *pool_mr;
    struct rc_slot *slots;
    uint32_t *free;              /* stack of free slot indexes */
    uint32_t nslots, nfree;
    struct ibv_mr *region_mr[RC_MAX_REGIONS]; /* NULL: that region could not be registered */
    uint32_t direct_max, direct_free; /* work requests posted straight from regions */
    struct rc_list waitq;        /* sessions with queued ops and send-queue room */
    uint32_t max_rd, max_init_rd;
};

struct rc_sess {
    struct rc_list all;          /* rc->sessions */
    struct rc_list wait;         /* dev->waitq while waiting */
    struct rc_sess *hnext;       /* hash chain */
    struct cmn_dp_rc *rc;
    struct rc_dev *dev;
    struct rdma_cm_id *id;
    struct ibv_qp *qp;
    struct ibv_mr *ctl_mr;
    enum sess_state state;
    bool hashed, waiting, counted_active;
    uint8_t sid[CMN_DP_SID_SIZE], nonce[8];
    char access_key[CMN_DP_ACCESS_KEY_MAX + 1];
    uint64_t expires_ms;
    uint64_t deadline;           /* mono ms: HELLO due (ACCEPTING, REFUSING); forced destroy */
    uint64_t progress;           /* mono ms of the last data completion, or of the first post */
    uint32_t sq_used, sq_max;
    uint32_t outstanding;        /* work requests of any kind not completed */
    struct rc_list queue;        /* FIFO of ops not fully posted */
    struct rc_list direct;       /* ops with direct work requests posted, until finished */
    struct rc_list fences;       /* struct rc_done, delivered when destroyed */
    int fail_code;
    uint8_t ctl[RC_CTL_SIZE];    /* HELLO receive buffer, then the reply */
};

struct cmn_dp_rc {
    uv_loop_t *loop;
    struct cmn_dp_rc_config cfg;
    uint8_t *secret;
    struct rdma_event_channel *ec;
    struct rdma_cm_id *listen_id;
    uv_poll_t ec_poll;
    uv_timer_t sweep;
    uv_idle_t reaper;
    bool ec_poll_inited, timers_inited;
    uint16_t port;
    struct rc_dev *devs[RC_MAX_DEVS];
    unsigned ndevs;
    struct { uint8_t *base; size_t len; } regions[RC_MAX_REGIONS];
    unsigned nregions;
    struct rc_list sessions;
    struct rc_sess **hash;
    uint32_t hash_mask;
    struct rc_list done;
    struct cmn_dp_rc_stats st;
    bool closing, finishing, reaping;
    unsigned handles_open;
    cmn_dp_rc_close_cb close_cb;
    void *close_data;
};


static inline uint64_t now_mono(void) { return cmn_mono_ms(); }

static inline void sid_prefix(const uint8_t sid[16], char out[9])
{
    cmn_hex_encode(sid, 4, out);    /* enough to correlate logs; the sid is half a secret */
}

static inline uint32_t sid_hash(const struct cmn_dp_rc *rc, const uint8_t sid[16])
{
    uint32_t h;
    memcpy(&h, sid, sizeof h);      /* sids are random */
    return h & rc->hash_mask;
}

static inline struct rc_sess *hash_find(const struct cmn_dp_rc *rc, const uint8_t sid[16])
{
    for (struct rc_sess *s = rc->hash[sid_hash(rc, sid)]; s; s = s->hnext)
        if (memcmp(s->sid, sid, 16) == 0)
            return s;
    return NULL;
}

static inline void hash_insert(struct cmn_dp_rc *rc, struct rc_sess *s)
{
    uint32_t b = sid_hash(rc, s->sid);
    s->hnext = rc->hash[b];
    rc->hash[b] = s;
    s->hashed = true;
}

static inline void hash_remove(struct cmn_dp_rc *rc, struct rc_sess *s)
{
    if (!s->hashed)
        return;
    for (struct rc_sess **pp = &rc->hash[sid_hash(rc, s->sid)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    }
    s->hashed = false;
}

static inline bool owner_ok(const struct rc_sess *s, const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n > 0 && n == strlen(s->access_key) && cmn_ct_equal(s->access_key, key, n);
}

/* dp_rc.c */
void cmn_dp_rc__session_fail(struct rc_sess *s, int code, const char *why);
void cmn_dp_rc__schedule_reap(struct cmn_dp_rc *rc);
void cmn_dp_rc__reap(struct cmn_dp_rc *rc);
void cmn_dp_rc__on_cq_event(uv_poll_t *h, int status, int events);
/* dp_rc_conn.c */
void cmn_dp_rc__on_hello(struct rc_sess *s, uint32_t byte_len);
void cmn_dp_rc__on_cm_event(uv_poll_t *h, int status, int events);
struct rc_dev *cmn_dp_rc__dev_get(struct cmn_dp_rc *rc, struct ibv_context *verbs,
                                  struct cmn_err *err);
void cmn_dp_rc__dev_free(struct rc_dev *dev);
void cmn_dp_rc__set_nonblock(int fd);
int cmn_dp_rc__reg_region(struct rc_dev *dev, unsigned i);

#endif
