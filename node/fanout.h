/* FANOUT_PUSH: the node's side of a fan-out GET (docs/fanout.md).
 *
 * A gateway that has verified a client's signed GET sends each data node the chunk ranges it
 * holds, with their offsets in the client's window; the node reads them (verified, as for
 * CHUNK_GET) and writes them into the window over the client's data session, by the
 * request's transport: tcp (1), a DATA frame on the session's connection to this node's data
 * listener (common/dp_server.h); rc (2), an RDMA WRITE with the request's rkey on the
 * session's queue pair at this node's rc listener (common/dp_rc.h); dc (3), an RDMA WRITE
 * through this node's DC initiators to the client's DC target named in the request
 * (common/dp_dc.h; no session: the token's fields and the cluster's DC key address the
 * window). It answers once every write has completed (tcp: handed to the kernel; rc and dc:
 * acknowledged by the client's NIC, so the bytes are placed) or failed, with the bytes
 * written and a status per piece, so the gateway knows exactly which ranges it must serve
 * itself.
 *
 * Rules the gateway relies on:
 * - Nothing is written for a request that fails validation: the window check (every piece
 *   inside [0, window_size)), the session check (a live session with that sid, owned by the
 *   access key the gateway verified) and the field checks come before any read.
 * - dc: the request's DcTarget is rebuilt into a DC token and re-validated
 *   (node_fanout_dc_token) before any read; a bad one is refused with -EINVAL. A node
 *   without a dc instance refuses transport 3 with -EPROTONOSUPPORT.
 * - The lease: no write starts later than lease_ms after the request arrived; later pieces
 *   fail with LODE_ETIMEOUT. dc: when the lease ends with writes still in the hardware, the
 *   node fences the target (cmn_dp_dc_fence) and answers only after the fence completed. With the gateway waiting for the answer (or for the lease plus
 *   a drain when the node does not answer) before it writes a range itself, a slow node never
 *   writes into a window after the gateway has moved on.
 * - A request id seen recently for the same session is never pushed twice: a retransmission
 *   gets the first execution's answer (or -EALREADY while it still runs).
 * - Bounded memory: at most `depth` pieces per request are read or being written at a time.
 *
 * Threading: the node's loop thread.
 */
#ifndef LODE_NODE_FANOUT_H
#define LODE_NODE_FANOUT_H

#include <stdint.h>
#include <uv.h>

#include "common/dp_dc.h"
#include "common/dp_rc.h"
#include "common/dp_server.h"
#include "common/err.h"
#include "common/rdma_token.h"
#include "common/rpc.h"
#include "node/store.h"

struct cmn_metrics;
struct node_fanout;

/* The dc instance as the fan-out drives it: cmn_dp_dc_write, cmn_dp_dc_fence and
 * cmn_dp_dc_get_stats with their contracts (node_fanout_dc_verbs, in builds with mlx5dv), or
 * a test's fake NIC-free stand-in. */
struct node_fanout_dc_ops {
    int (*write)(void *dc, const struct cmn_rdma_token *t, uint64_t off, const void *src,
                 size_t len, cmn_dp_dc_cb cb, void *data);
    int (*fence)(void *dc, const struct cmn_rdma_token *t, cmn_dp_dc_cb cb, void *data);
    void (*get_stats)(void *dc, struct cmn_dp_dc_stats *out);
};
#ifdef HAVE_MLX5DV
extern const struct node_fanout_dc_ops node_fanout_dc_verbs; /* dc is a struct cmn_dp_dc */
#endif

struct node_fanout_options {
    uv_loop_t *loop;
    struct node_store *store;
    struct cmn_dp_server *dp;          /* the tcp data listener (borrowed), or NULL */
    struct cmn_dp_rc *rc;              /* the rc listener (borrowed), or NULL */
    void *dc;                          /* the dc instance (borrowed), or NULL */
    const struct node_fanout_dc_ops *dc_ops; /* how to drive it (with dc) */
    const struct cmn_dp_dc_config *dc_config; /* its settings (borrowed; with dc) */
    struct cmn_metrics *metrics;       /* optional: lode_node_fanout_*{transport=...} */
    unsigned depth;                    /* pieces in flight per request; 0 = 4 */
    uint32_t max_piece;                /* largest piece; 0 = CMN_DP_MAX_FRAME_DEFAULT */
};

int node_fanout_create(const struct node_fanout_options *o, struct node_fanout **out);

/* Answers `call` (a FANOUT_PUSH whose body unpacked to `q`; q is only read during the call)
 * exactly once, possibly later; then runs done(data, status) with the status it answered. */
void node_fanout_push(struct node_fanout *f, struct cmn_rpc_call *call,
                      const Lode__FanoutPushRequest *q, void (*done)(void *data, int status),
                      void *data);

/* The dc instance is closing: pieces not yet handed to it fail with LODE_ESHUTDOWN and new
 * transport-3 requests are refused. Call before cmn_dp_dc_close. */
void node_fanout_detach_dc(struct node_fanout *f);

/* FANOUT_PUSH transport numbers (node.proto). */
#define NODE_FANOUT_TCP 1
#define NODE_FANOUT_RC 2
#define NODE_FANOUT_DC 3

/* The node's re-validation of a transport-3 request, before any read (pure; no I/O): rebuilds
 * the client's DC token (kind CMN_RDMA_DC) from q->dc and q's window and checks that
 *   - q->dc is present, gid is 16 bytes, g is 0 or 1, lid fits 16 bits, dctn 24 bits;
 *   - the window is non-empty, does not wrap and is at most CMN_RDMA_DC_WINDOW_MAX bytes;
 *   - the descriptor window (desc_base, desc_size) is non-empty, does not wrap and contains
 *     the request window (equal for an 81-character token; `legacy` is set otherwise);
 *   - cmn_dc_derive accepts the addressing under `cfg`'s local settings (NULL: the
 *     defaults of cmn_dp_dc_config_defaults): a GID that is not all zero with g = 1, a
 *     unicast LID with g = 0.
 * Returns 0 and *out, or -EINVAL with a message that never names the rkey or the address
 * (*out zeroed). */
int node_fanout_dc_token(const Lode__FanoutPushRequest *q, const struct cmn_dp_dc_config *cfg,
                         struct cmn_rdma_token *out, struct cmn_err *err);

/* Requests still running. */
unsigned node_fanout_in_flight(const struct node_fanout *f);

/* Frees the module; only once node_fanout_in_flight() is 0 (after the store closed, every
 * read has come back). */
void node_fanout_destroy(struct node_fanout *f);

#endif
