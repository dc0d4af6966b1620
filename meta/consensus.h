/* The raft adapter: the only code in lode that calls raft_* / raft_uv_*.
 *
 * It runs one cowsql/raft 0.22 server (v0 API, libuv I/O and TCP transport) on the caller's
 * loop, drives the state machine of meta/fsm.h with the committed entries, and offers what
 * the service needs: proposing commands, linearizable-read barriers (batched), voter changes,
 * and a view of the raft state. Keeping raft behind this one file means an upgrade to raft's
 * coming v1 API, or another raft, touches nothing else.
 *
 * Threading: everything runs on the loop thread given at start; no function may be called
 * from another thread.
 *
 * Errors: functions return 0 or a negative lode code. Every callback fires exactly once if
 * and only if the submitting function returned 0; callbacks may fire from within
 * meta_consensus_close() with LODE_ESHUTDOWN.
 */
#ifndef LODE_META_CONSENSUS_H
#define LODE_META_CONSENSUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "meta/config.h"
#include "meta/fsm.h"
#include "meta.pb-c.h"

struct meta_consensus;

enum meta_role {
    META_ROLE_UNAVAILABLE = 0,     /* starting, stopping, or a failed disk */
    META_ROLE_FOLLOWER = 1,
    META_ROLE_CANDIDATE = 2,
    META_ROLE_LEADER = 3,
};

/* "leader", "follower", "candidate", "unavailable". */
const char *meta_role_name(enum meta_role role);

/* What the role-change hook sees. */
struct meta_consensus_view {
    enum meta_role role;
    uint64_t term;
    uint64_t leader_id;            /* 0 when unknown */
    const char *leader_raft_address; /* NULL when unknown; valid during the hook only */
};

/* Called on the loop thread after raft changed role, term or leader (at most once per loop
 * iteration, with the state as it is then). */
typedef void (*meta_consensus_change_cb)(void *data, const struct meta_consensus_view *view);

struct meta_consensus_options {
    uv_loop_t *loop;
    uint64_t id;
    const char *raft_address;      /* this replica's raft "host:port" */
    const char *dir;               /* raft log and snapshots; created if missing */
    struct meta_fsm *fsm;          /* borrowed; must outlive the consensus */
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    /* Voters of a brand-new group: raft_bootstrap() is attempted with them when non-empty
     * (a no-op once the directory holds raft state). Pass none for a joining replica. */
    const struct meta_peer *bootstrap;
    size_t n_bootstrap;
    meta_consensus_change_cb on_change; /* may be NULL */
    void *data;
};

/* Initialises raft over opts->dir, bootstraps if asked, loads the snapshot and log (the
 * state machine is restored and the log replayed before this returns) and starts raft.
 * Returns 0 or an error (LODE_EINTERNAL, -errno) with raft's message in err. */
int meta_consensus_start(const struct meta_consensus_options *opts,
                         struct meta_consensus **out, struct cmn_err *err);

/* Stops raft: pending proposals, barriers and voter changes complete with LODE_ESHUTDOWN,
 * then `cb` runs (on a later loop iteration) once raft has closed its handles and the
 * object is freed. The fsm is no longer touched after cb. */
void meta_consensus_close(struct meta_consensus *c, void (*cb)(void *data), void *data);

/* ---- Proposals ---- */

/* status: 0 when the entry was committed and applied (then *res is what applying produced,
 * valid during the callback; res->status may still carry a domain error); LODE_ENOTLEADER
 * when leadership was lost before commit (the outcome is unknown: the command may still
 * commit under the next leader, so retry with the same client_id/seq); LODE_ESHUTDOWN;
 * or another error. res is NULL whenever status != 0. */
typedef void (*meta_consensus_apply_cb)(void *data, int status,
                                        const struct meta_fsm_result *res);

/* Packs `cmd` (as given, into raft-owned memory; the caller keeps `cmd`) and proposes it.
 * Returns 0, LODE_ENOTLEADER (not the leader now), LODE_ESHUTDOWN, -ENOMEM or
 * LODE_EINTERNAL. */
int meta_consensus_propose(struct meta_consensus *c, const Lode__Command *cmd,
                           meta_consensus_apply_cb cb, void *data);

/* Like propose, for commands this replica originates itself (SetMember, SetNodeState):
 * stamps version, a per-process client id, the next sequence number and now_ms into `cmd`
 * first (the caller's message is modified). */
int meta_consensus_propose_own(struct meta_consensus *c, Lode__Command *cmd,
                               meta_consensus_apply_cb cb, void *data);

/* ---- Barriers (linearizable reads) ---- */

/* status 0: every entry committed before the call has been applied, and this replica was
 * still the leader after the call was made, so a read of the fsm now is linearizable.
 * Waiters that arrive while a barrier is in flight share the next one. */
typedef void (*meta_consensus_barrier_cb)(void *data, int status);

/* Returns 0, LODE_ENOTLEADER, LODE_ESHUTDOWN or -ENOMEM. */
int meta_consensus_barrier(struct meta_consensus *c, meta_consensus_barrier_cb cb, void *data);

/* ---- Voter changes (leader only; one at a time) ---- */

/* status 0 or an error with a sentence of context in `message` (valid during the call). */
typedef void (*meta_consensus_change_done_cb)(void *data, int status, const char *message);

/* Adds server `id` at raft_address: as a spare, then a standby that receives the log, and
 * once it has answered and nearly caught up (within 30 s), a voter. Resumes where a
 * previous attempt stopped (spare or standby at the same address); already a voter there:
 * completes with 0. A server that never catches up fails the call with LODE_EMEMBERSHIP
 * and stays a standby. Returns 0, LODE_ENOTLEADER, LODE_EMEMBERSHIP (another change in
 * flight, or the id or address is taken by another member), LODE_ESHUTDOWN, -ENOMEM. */
int meta_consensus_add_voter(struct meta_consensus *c, uint64_t id, const char *raft_address,
                             meta_consensus_change_done_cb cb, void *data);

/* Removes server `id` from the configuration. Returns 0, LODE_ENOTLEADER,
 * LODE_EMEMBERSHIP (not a member, or another change in flight), LODE_ESHUTDOWN. */
int meta_consensus_remove_voter(struct meta_consensus *c, uint64_t id,
                                meta_consensus_change_done_cb cb, void *data);

/* What the voter change in flight is doing ("adding replica 4 at HOST:PORT (waiting for
 * it to catch up)"), or NULL when none. Valid until the next call. */
const char *meta_consensus_change_pending(struct meta_consensus *c);

/* ---- Views ---- */

enum meta_role meta_consensus_role(struct meta_consensus *c);
/* Leader id (0 when unknown) and its raft address (NULL when unknown; valid until the next
 * loop iteration). */
uint64_t meta_consensus_leader(struct meta_consensus *c, const char **raft_address);
uint64_t meta_consensus_id(const struct meta_consensus *c);
uint64_t meta_consensus_term(struct meta_consensus *c);
uint64_t meta_consensus_commit_index(struct meta_consensus *c);
uint64_t meta_consensus_last_applied(struct meta_consensus *c);
uint64_t meta_consensus_last_index(struct meta_consensus *c);

enum meta_server_role { META_SERVER_VOTER, META_SERVER_STANDBY, META_SERVER_SPARE };

struct meta_server {
    uint64_t id;
    const char *raft_address;      /* valid until the next loop iteration */
    enum meta_server_role role;
};

/* Copies up to `max` servers of the current configuration into out; returns how many the
 * configuration has (which may exceed max). */
size_t meta_consensus_servers(struct meta_consensus *c, struct meta_server *out, size_t max);

#endif
