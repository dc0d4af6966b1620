/* FANOUT_PUSH: the node's side of a fan-out GET (docs/fanout.md).
 *
 * A gateway that has verified a client's signed GET sends each data node the chunk ranges it
 * holds, with their offsets in the client's window; the node reads them (verified, as for
 * CHUNK_GET) and writes them into the window over the client's data session, by the
 * request's transport: tcp (1), a DATA frame on the session's connection to this node's data
 * listener (common/dp_server.h); rc (2), an RDMA WRITE with the request's rkey on the
 * session's queue pair at this node's rc listener (common/dp_rc.h). It answers once every
 * write has completed (tcp: handed to the kernel; rc: acknowledged by the client's NIC, so
 * the bytes are placed) or failed, with the bytes written and a status per piece, so the
 * gateway knows exactly which ranges it must serve itself.
 *
 * Rules the gateway relies on:
 * - Nothing is written for a request that fails validation: the window check (every piece
 *   inside [0, window_size)), the session check (a live session with that sid, owned by the
 *   access key the gateway verified) and the field checks come before any read.
 * - The lease: no write starts later than lease_ms after the request arrived; later pieces
 *   fail with LODE_ETIMEOUT. With the gateway waiting for the answer (or for the lease plus
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

#include "common/dp_rc.h"
#include "common/dp_server.h"
#include "common/rpc.h"
#include "node/store.h"

struct cmn_metrics;
struct node_fanout;

struct node_fanout_options {
    uv_loop_t *loop;
    struct node_store *store;
    struct cmn_dp_server *dp;          /* the tcp data listener (borrowed), or NULL */
    struct cmn_dp_rc *rc;              /* the rc listener (borrowed), or NULL */
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

/* Requests still running. */
unsigned node_fanout_in_flight(const struct node_fanout *f);

/* Frees the module; only once node_fanout_in_flight() is 0 (after the store closed, every
 * read has come back). */
void node_fanout_destroy(struct node_fanout *f);

#endif
