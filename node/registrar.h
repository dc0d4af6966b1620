/* The node's membership in the cluster map: registers with the meta group at start
 * (NODE_REGISTER: uuid, advertised address, failure domain, capacity, used -> nid), then
 * heartbeats to the leader every heartbeat-interval with used/capacity, and reports chunks
 * the store found corrupt (CORRUPT_REPORT) so meta can repair them.
 *
 * Meta being unreachable never stops the node: chunks keep being served, registration and
 * heartbeats are retried with backoff, and the state changes (not every failure) are logged.
 * LODE_ENONODE on a heartbeat (meta forgot or replaced the record) means register again.
 * Corrupt chunks stay queued until meta has accepted them, also while meta does not
 * implement CORRUPT_REPORT yet.
 *
 * Threading: the node's loop thread. Owns a cmn_meta_async client.
 */
#ifndef LODE_NODE_REGISTRAR_H
#define LODE_NODE_REGISTRAR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "node/store.h"

struct cmn_metrics;
struct node_registrar;

struct node_registrar_options {
    uv_loop_t *loop;
    struct node_store *store;          /* uuid, capacity, used, corrupt chunks */
    struct cmn_metrics *metrics;       /* optional */
    const char *meta;                  /* comma-separated meta RPC addresses (copied) */
    const void *secret;                /* cluster secret (copied) */
    size_t secret_len;
    const char *address;               /* advertised chunk-service address (copied) */
    const char *data_address;          /* advertised fan-out data address, or NULL/"" */
    const char *rdma_address;          /* advertised rc (rdma_cm) address, or NULL/"" */
    bool dc;                           /* runs DC initiators (FANOUT_PUSH transport 3) */
    /* Optional: runs on the loop whenever meta assigns (or confirms another) nid, so that
     * what announces the node's identity (its data listener) can follow. */
    void (*on_nid)(void *data, uint32_t nid);
    void *on_nid_data;
    const char *failure_domain;        /* copied */
    uint64_t heartbeat_interval_ms;    /* 0 = 2000 */
    uint64_t report_retry_ms;          /* 0 = 30000: while meta refuses CORRUPT_REPORT */
    uint32_t max_frame;                /* 0 = the RPC default */
};

enum node_meta_state {
    NODE_META_REGISTERING = 0,         /* not registered yet: first attempt under way */
    NODE_META_REGISTERED,              /* registered, heartbeats answered */
    NODE_META_UNREACHABLE,             /* no meta leader answers; retrying */
    NODE_META_REJECTED,                /* meta refused the registration; retrying slowly */
};

/* Starts registering at once (on the next loop iteration). Returns 0, or LODE_ECONFIG /
 * -ENOMEM with the reason in err. */
int node_registrar_start(const struct node_registrar_options *o, struct node_registrar **out,
                         struct cmn_err *err);

/* 0 until registered; then the nid meta assigned (kept across re-registrations). */
uint32_t node_registrar_nid(const struct node_registrar *r);
enum node_meta_state node_registrar_state(const struct node_registrar *r);
/* "registering", "registered", "unreachable", "rejected" (static strings). */
const char *node_meta_state_name(enum node_meta_state s);
/* Corrupt chunks waiting to be accepted by meta. */
size_t node_registrar_corrupt_queued(const struct node_registrar *r);
/* Corrupt chunks meta has accepted since start. */
uint64_t node_registrar_corrupt_reported(const struct node_registrar *r);

/* Stops the timers, abandons calls to meta (no callback reaches the store after this) and
 * frees; `cb` (may be NULL) runs once everything is released, on a later iteration. */
void node_registrar_close(struct node_registrar *r, void (*cb)(void *data), void *data);

#endif
