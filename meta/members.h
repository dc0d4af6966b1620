/* Liveness of data nodes, kept by the meta leader.
 *
 * Nodes send NODE_HEARTBEAT to the leader every few seconds. A beat is not a raft entry:
 * the leader only records, in memory, when it last heard from each node and what it
 * reported. A 1 s timer on the leader turns silence into replicated state changes
 * (SetNodeState): up -> suspect after `suspect_after_ms`, -> down after `down_after_ms`, and
 * back to up once beats resume. Draining and removed nodes are never touched (an operator
 * set those). A node that someone else brings back UP (it registered again after a restart,
 * or an operator set it) counts as heard from at the next tick, so it is not marked down
 * again at once for its old silence. Reported used/capacity bytes reach the cluster map at
 * most once per `usage_refresh_ms` per node.
 *
 * After a failover the new leader has heard from nobody yet, so it treats every node as just
 * seen (a grace period of suspect_after_ms) and never marks nodes down for the failover
 * itself; nodes that were suspect or down stay so until they beat again.
 *
 * Threading: loop thread only.
 */
#ifndef LODE_META_MEMBERS_H
#define LODE_META_MEMBERS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "meta/consensus.h"
#include "meta/fsm.h"
#include "meta.pb-c.h"

struct meta_members;

struct meta_members_options {
    uv_loop_t *loop;
    struct meta_fsm *fsm;          /* borrowed */
    uint64_t suspect_after_ms;
    uint64_t down_after_ms;
    uint64_t usage_refresh_ms;     /* 0 = 30 s */
    uint64_t tick_ms;              /* 0 = 1 s */
};

/* Returns 0 or -ENOMEM. The consensus is attached later (it is started after). */
int meta_members_create(const struct meta_members_options *opts, struct meta_members **out);
void meta_members_attach(struct meta_members *m, struct meta_consensus *consensus);

/* Leadership changes. Gaining leadership starts the grace period; the timer only proposes
 * once meta_members_arm() says the state machine has caught up with every entry of earlier
 * terms (after the new leader's first barrier), so it never acts on a stale map. */
void meta_members_set_leader(struct meta_members *m, bool leader);
void meta_members_arm(struct meta_members *m);

/* A heartbeat received by the leader. Returns 0 and the current epoch and node state, or
 * LODE_ENONODE (unknown nid, uuid mismatch, or a removed node: the node must register
 * again) with the reason in err. */
int meta_members_heartbeat(struct meta_members *m, const Lode__HeartbeatRequest *req,
                           uint64_t *epoch, Lode__NodeState *state, struct cmn_err *err);

/* An operator's state change for `nid` is being proposed (begin) or has finished (end):
 * the timer leaves that node alone meanwhile, so it cannot overwrite the operator's state
 * with one computed from the map as it was before. begin returns false when the node is
 * not in the map (nothing to protect); call end only after a true begin. */
bool meta_members_admin_begin(struct meta_members *m, uint32_t nid);
void meta_members_admin_end(struct meta_members *m, uint32_t nid);

/* Stops the timer (closing its handle). Proposals in flight still complete through the
 * consensus; free with meta_members_destroy() once the consensus is closed and the loop has
 * run the close callbacks. */
void meta_members_stop(struct meta_members *m);
void meta_members_destroy(struct meta_members *m);

#endif
