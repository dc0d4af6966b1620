/* The RPC face of lode-meta: one handler for every method of common/rpc_methods.h (the RPC
 * server itself answers PING).
 *
 * - Mutations carry a whole Command whose op must match the method. The leader stamps
 *   now_ms (and generated ids and keys where the caller left them empty), proposes it to
 *   raft and replies with the CommandResult once applied; followers redirect.
 * - Reads are linearizable: the leader waits for a (batched) raft barrier, then reads its
 *   state machine. A follower answers from its own state only when the call carries
 *   CMN_RPC_FLAG_STALE_OK, and otherwise redirects (LODE_ENOTLEADER with the leader's RPC
 *   address and id, or LODE_ENOLEADER while none is known).
 * - META_STATUS and META_DIGEST are answered locally by any replica; voter changes and node
 *   heartbeats go to the leader.
 *
 * Threading: loop thread only.
 */
#ifndef LODE_META_SERVICE_H
#define LODE_META_SERVICE_H

#include <uv.h>

#include "common/err.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "meta/config.h"
#include "meta/consensus.h"
#include "meta/fsm.h"

struct meta_service;

struct meta_service_options {
    uv_loop_t *loop;
    const struct meta_config *cfg; /* borrowed; must outlive the service */
    struct meta_fsm *fsm;          /* borrowed */
    struct cmn_metrics *metrics;   /* borrowed; the lode_meta_* metrics are registered here */
};

/* Creates the service (and its node-liveness tracker). Returns 0 or -ENOMEM. */
int meta_service_create(const struct meta_service_options *opts, struct meta_service **out,
                        struct cmn_err *err);

/* Gives the service its consensus, once started. Calls arriving before are refused with
 * LODE_EUNAVAILABLE. */
void meta_service_attach(struct meta_service *svc, struct meta_consensus *consensus);

/* The consensus role-change hook (meta_consensus_options.on_change, data = svc): logs role
 * changes, starts and stops the leader's duties. */
void meta_service_on_change(void *svc, const struct meta_consensus_view *view);

/* The RPC handler (cmn_rpc_server_config.handler, data = svc). */
void meta_service_handle(void *svc, struct cmn_rpc_call *call);

/* Refuses new calls and closes the service's timers. Calls still held complete through
 * their consensus callbacks (with LODE_ESHUTDOWN once the consensus closes). */
void meta_service_stop(struct meta_service *svc);

/* Frees the service: only after meta_service_stop(), the consensus close callback, and a
 * loop run that let the timers close. */
void meta_service_destroy(struct meta_service *svc);

#endif
