/* Internals shared by service.c (dispatch, reads, mutations) and service_admin.c (status,
 * voters, heartbeats, leadership duties). Not for use outside meta/service*.c.
 */
#ifndef LODE_META_SERVICE_INT_H
#define LODE_META_SERVICE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "common/id.h"
#include "meta/members.h"
#include "meta/service.h"

#define META_ACCESS_KEY_LEN 20     /* "LK" + 18 of [A-Z0-9] */
#define META_SECRET_KEY_LEN 40     /* [A-Za-z0-9+/] */

struct method_metrics {
    struct cmn_counter *requests;
    struct cmn_counter *errors;    /* replies with a non-zero status, redirects excepted */
    struct cmn_counter *redirects; /* LODE_ENOTLEADER / LODE_ENOLEADER replies */
};

struct meta_service {
    uv_loop_t *loop;
    const struct meta_config *cfg;
    struct meta_fsm *fsm;
    struct meta_consensus *cons;   /* NULL until attached */
    struct meta_members *members;
    struct cmn_metrics *metrics;
    struct method_metrics *mm;     /* one per method of the table, plus "unknown" last */
    struct cmn_gauge *g_role, *g_commit, *g_applied, *g_epoch;
    uv_timer_t gauge_timer;
    bool stopped;
    unsigned held;                 /* calls waiting on raft */

    /* leadership, as last reported by the consensus hook */
    enum meta_role role;
    uint64_t term;
    uint64_t followed;             /* leader id last logged as followed */
    uint64_t setup_term;           /* term whose leader setup is in progress or done */
};

/* One request held across an asynchronous step (barrier, proposal, voter change). */
struct held {
    struct meta_service *svc;
    struct cmn_rpc_call *call;
    unsigned method;
    struct method_metrics *mm;
    ProtobufCMessage *req;         /* decoded request; freed with the held call */

    /* per-method scratch */
    char upload_id[CMN_ID_HEX_SIZE];
    char access_key[META_ACCESS_KEY_LEN + 1];
    char secret_key[META_SECRET_KEY_LEN + 1];
    char *bucket, *key;            /* UPLOAD_COMPLETE: the object the upload completes */
    bool admin;                    /* NODE_SET_STATE: members_admin_begin() returned true */
    uint32_t admin_nid;
};

/* Replies and frees the held call. */
void svc_reply_msg(struct held *h, const ProtobufCMessage *msg);
void svc_reply_raw(struct held *h, const void *body, size_t len);
void svc_reply_error(struct held *h, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* LODE_ENOTLEADER with the leader's RPC address and id, or LODE_ENOLEADER. `why` (may be
 * NULL) replaces the default message. */
void svc_reply_redirect(struct held *h, const char *why);

/* RPC address of replica `id` into out: this replica's own, the SetMember table, then the
 * `peers` configuration. Returns false (out = "") when unknown. */
bool svc_member_rpc_address(struct meta_service *svc, uint64_t id, char *out, size_t size);

/* service_admin.c */
void svc_meta_status(struct held *h);
void svc_meta_digest(struct held *h);
void svc_add_voter(struct held *h);
void svc_remove_voter(struct held *h);
void svc_heartbeat(struct held *h);
void svc_update_gauges(struct meta_service *svc);

#endif
