/* One fan-out GET (docs/fanout.md): the data nodes write the object range straight into the
 * client's window over the client's data sessions, and this gateway worker writes what they
 * could not (stripes with a chunk down or corrupt, pieces a node failed) itself, over the
 * client's session with this worker's listener of the same transport: tcp (DATA frames on
 * common/dp_server.h) or rc (RDMA WRITEs with the token's rkey on common/dp_rc.h); or, for
 * dc, through this worker's DC initiators (common/dp_dc.h) to the client's DC target, with
 * no session: the nodes get the token's DC fields in FANOUT_PUSH (transport 3).
 *
 * Order of events, which is what makes it safe:
 *   1. plan (gateway/fanout_plan.h), part by part, per data node;
 *   2. FANOUT_PUSH batches to the nodes, one batch in flight per node and part, all nodes in
 *      parallel, within the client's in-flight cap (struct gw_fo_sched);
 *   3. wait for EVERY node's answer. A node that does not answer (down, timeout) may still
 *      write until its lease ends: the fallback for its pieces waits until lease + drain
 *      after the batch was sent (the fence). dc: the drain is cmn_dp_dc_drain_ms of this
 *      worker's instance (every node has the same dc-timeout and dc-retry), and a node that
 *      answers has fenced its own writes before answering;
 *   4. the gateway reads the remaining ranges (degraded reads decode from parity) and writes
 *      them itself;
 *   5. on_done with the bytes each source wrote, which the client waits for before it uses
 *      its buffer.
 * Nothing is written outside [window_base, window_base + window_size): every piece is
 * planned inside and nodes re-check.
 *
 * Threading: the worker's loop.
 */
#ifndef LODE_GATEWAY_FANOUT_H
#define LODE_GATEWAY_FANOUT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/dp_dc.h"
#include "common/dp_rc.h"
#include "common/dp_server.h"
#include "common/err.h"
#include "common/meta_async.h"
#include "common/metrics.h"
#include "gateway/cluster.h"
#include "gateway/fanout_plan.h"
#include "gateway/nodepool.h"
#include "meta.pb-c.h"

/* The most sources one result names: every data node plus this gateway worker. */
#define GW_FANOUT_SOURCES_MAX 1024
#define GW_FANOUT_LEASE_DEFAULT_MS 5000
/* Time after a lease ends within which a write already posted may still land. */
#define GW_FANOUT_DRAIN_MS 500

/* Why a token was not served (metrics label reason="..."). */
#define GW_RDMA_REASONS(X)                                                                 \
    X(MALFORMED, "malformed")         /* 400 InvalidRDMAToken */                          \
    X(UNSIGNED, "unsigned")           /* 403: not in SignedHeaders */                      \
    X(WINDOW, "window")               /* 400: the object does not fit the window */        \
    X(DC, "dc-unavailable")           /* no ConnectX DC initiators here */                 \
    X(RC, "rc-unavailable")           /* no RDMA device on this gateway/cluster */         \
    X(TCP, "tcp-unavailable")         /* no data listener on this gateway */               \
    X(FOREIGN, "foreign-token")       /* hipObject RC, libfabric ofi1 */                   \
    X(PUT, "put-unsupported")         /* a PUT token over a transport without staged PUT */ \
    X(SESSION, "no-session")          /* staged PUT: no rc session with this gateway worker */

enum gw_rdma_reason {
#define GW_RDMA_REASON_ENUM(e, s) GW_RDMA_REASON_##e,
    GW_RDMA_REASONS(GW_RDMA_REASON_ENUM)
#undef GW_RDMA_REASON_ENUM
    GW_RDMA_REASON_COUNT
};

const char *gw_rdma_reason_name(enum gw_rdma_reason r);

/* Metrics are kept per transport (label transport="..."): the token kinds served, and
 * "other" for declines of every other kind (hipObject, ofi1, malformed, unsigned). */
enum gw_fo_transport { GW_FO_TCP, GW_FO_RC, GW_FO_DC, GW_FO_OTHER, GW_FO_TRANSPORTS };

/* The label value of a transport: "tcp", "rc", "dc", "other". */
const char *gw_fo_transport_name(enum gw_fo_transport t);

struct gw_fanout_tmetrics {
    struct cmn_counter *requests;      /* fan-out GETs started */
    struct cmn_counter *bytes_nodes;   /* bytes written by data nodes */
    struct cmn_counter *bytes_gateway; /* bytes written by the gateway (degraded, fallback) */
    struct cmn_counter *node_failures; /* FANOUT_PUSH batches with an error or failed pieces */
    struct cmn_histogram *node_latency; /* FANOUT_PUSH send to answer */
    struct cmn_counter *declines[GW_RDMA_REASON_COUNT]; /* tokens not served, by reason */
    struct cmn_counter *fallbacks;     /* accepted fan-outs answered with the body instead */
    struct cmn_counter *puts;          /* staged (RDMA-READ) uploads started */
    struct cmn_counter *put_bytes;     /* bytes they read out of client windows */
    struct cmn_counter *put_failures;  /* staged uploads failed by a READ (nothing stored) */
    struct cmn_counter *put_direct;    /* of put_bytes, read into the upload arena directly */
};

/* Only declines are registered for GW_FO_OTHER; its other pointers stay NULL (the counter
 * functions ignore NULL). */
struct gw_fanout_metrics {
    struct gw_fanout_tmetrics t[GW_FO_TRANSPORTS];
};

struct gw_fanout_source {
    uint32_t id;                       /* nid, or the gateway worker's source id */
    uint64_t bytes;
};

struct gw_fanout_result {
    uint64_t bytes;                    /* every byte of the range, once */
    uint64_t gateway_bytes;            /* of which written by this worker */
    size_t n_sources;
    struct gw_fanout_source sources[GW_FANOUT_SOURCES_MAX];
};

/* status 0: every byte was written; res says by whom. Otherwise (res NULL) the request
 * failed after everything in flight ended: LODE_ENOSESSION (the client has no session
 * with this worker, so what the nodes could not write cannot be delivered), the error of a
 * degraded read (LODE_EUNAVAILABLE: more chunks lost than parity covers), LODE_ECLOSED (the
 * client's session connection went away), rc: LODE_EWINDOW (the client's NIC refused the
 * window: not registered as the token claims), LODE_ETIMEOUT (the session stalled), dc:
 * LODE_EWINDOW, LODE_ETIMEOUT (no answer within the retry budget), LODE_EUNAVAILABLE (no
 * route to the client's GID), -EAGAIN (the worker's dc queue is full), -ENOMEM. Every write
 * of the gateway's own has completed (callback run) before on_done runs. */
typedef void (*gw_fanout_done_cb)(void *data, int status, const char *message,
                                  const struct gw_fanout_result *res);

struct gw_fanout_config {
    uv_loop_t *loop;
    struct gw_nodepool *pool;          /* borrowed */
    struct cmn_meta_async *meta;       /* corrupt reports of degraded reads; may be NULL */
    struct gw_cluster_map *map;        /* a reference of its own is taken */
    uint32_t transport;                /* GW_FANOUT_TCP (also 0), GW_FANOUT_RC or
                                          GW_FANOUT_DC */
    struct cmn_dp_server *dp;          /* tcp: this worker's data listener (borrowed) */
    struct cmn_dp_rc *rc;              /* rc: this worker's rc listener (borrowed) */
    uint32_t rkey;                     /* rc: the token's rkey */
    struct cmn_dp_dc *dc;              /* dc: this worker's DC initiators (borrowed) */
    const struct cmn_rdma_token *dc_token; /* dc: the client's token (copied) */
    uint32_t source_id;                /* this worker's source id */
    const Lode__ObjectRecord *record;  /* borrowed until on_done (or abort) */
    uint64_t first, length;            /* the object range; lands at window offset 0 */
    const uint8_t *sid;                /* 16 bytes (copied); dc: names the client (its GID)
                                          for the nodes' retransmission check */
    const char *access_key;            /* the verified requester (copied) */
    uint64_t window_base, window_size; /* from the token; length <= window_size */
    uint32_t tag;                      /* tcp: the token's request tag (frames carry it) */
    uint32_t lease_ms;                 /* 0 = GW_FANOUT_LEASE_DEFAULT_MS */
    uint32_t timeout_ms;               /* per FANOUT_PUSH; 0 = lease + drain + 2 s */
    uint32_t max_piece;                /* 0 = 1 MiB */
    uint64_t max_batch;                /* bytes per FANOUT_PUSH; 0 = 16 MiB */
    struct gw_fo_sched *sched;         /* the client's in-flight cap; NULL = none */
    uint64_t spread;                   /* replica rotation (a request counter) */
    const struct gw_fanout_tmetrics *metrics; /* the transport's; optional */
    gw_fanout_done_cb on_done;
    void *data;
};

struct gw_fanout;

/* Starts; on_done runs exactly once, never from inside this call, unless aborted first.
 * Returns 0, or an error with err set and nothing started (-EINVAL, -ERANGE, LODE_ECORRUPT
 * for a record whose layout does not match its size, LODE_ETOOLARGE, -ENOMEM). */
int gw_fanout_start(const struct gw_fanout_config *cfg, struct gw_fanout **out,
                    struct cmn_err *err);

/* The request is gone: no callback runs after this; what is in flight finishes in the
 * background (the pool must stay open until then, as for gw_objget). */
void gw_fanout_abort(struct gw_fanout *f);

/* FANOUT_PUSH transport numbers (node.proto). */
#define GW_FANOUT_TCP 1
#define GW_FANOUT_RC 2
#define GW_FANOUT_DC 3

/* Registers lode_gateway_fanout_*, lode_gateway_rdma_puts_total, ..._put_bytes_total and
 * lode_gateway_rdma_declines_total in m, one series per transport (and reason). Returns 0
 * or -ENOMEM. */
int gw_fanout_metrics_register(struct cmn_metrics *m, struct gw_fanout_metrics *out);

#endif
