/* lode-meta service: status, digest, voter changes, node heartbeats and the leader's duties
 * (see service.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "meta/service_int.h"

#define LOG_CTX "meta"

/* ---------------------------------------------------------------------------------------
 * Status and digest (answered locally by any replica)
 * ------------------------------------------------------------------------------------- */

void svc_meta_status(struct held *h)
{
    struct meta_service *svc = h->svc;
    struct meta_consensus *cons = svc->cons;
    size_t n = meta_consensus_servers(cons, NULL, 0);
    size_t cap = n ? n : 1;
    struct meta_server *sv = calloc(cap, sizeof(*sv));
    Lode__MetaMember *mem = calloc(cap, sizeof(*mem));
    Lode__MetaMember **voters = calloc(cap, sizeof(*voters));
    Lode__MetaMember **others = calloc(cap, sizeof(*others));
    char(*rpc)[META_ADDR_MAX] = calloc(cap, META_ADDR_MAX);
    if (!sv || !mem || !voters || !others || !rpc) {
        svc_reply_error(h, -ENOMEM, "out of memory");
        goto out;
    }
    n = meta_consensus_servers(cons, sv, n);

    Lode__MetaStatusResponse st = LODE__META_STATUS_RESPONSE__INIT;
    for (size_t i = 0; i < n; i++) {
        lode__meta_member__init(&mem[i]);
        mem[i].id = sv[i].id;
        mem[i].raft_address = (char *)sv[i].raft_address;
        svc_member_rpc_address(svc, sv[i].id, rpc[i], META_ADDR_MAX);
        mem[i].rpc_address = rpc[i];
        if (sv[i].role == META_SERVER_VOTER)
            voters[st.n_voters++] = &mem[i];
        else
            others[st.n_others++] = &mem[i];
    }
    st.voters = voters;
    st.others = others;

    char leader_addr[META_ADDR_MAX] = "";
    st.id = (uint64_t)svc->cfg->id;
    st.raft_address = svc->cfg->raft_address;
    st.rpc_address = svc->cfg->rpc_address;
    st.role = (char *)meta_role_name(meta_consensus_role(cons));
    st.leader_id = meta_consensus_leader(cons, NULL);
    if (st.leader_id)
        svc_member_rpc_address(svc, st.leader_id, leader_addr, sizeof(leader_addr));
    st.leader_address = leader_addr;
    st.term = meta_consensus_term(cons);
    st.commit_index = meta_consensus_commit_index(cons);
    st.last_applied = meta_consensus_last_applied(cons);
    st.last_index = meta_consensus_last_index(cons);
    st.epoch = meta_fsm_epoch(svc->fsm);
    svc_reply_msg(h, &st.base);
out:
    free(sv);
    free(mem);
    free(voters);
    free(others);
    free(rpc);
}

void svc_meta_digest(struct held *h)
{
    struct meta_service *svc = h->svc;
    uint8_t digest[32];
    char version[24];
    /* Both read on the loop thread, between two applies: the digest is of exactly this
     * index. */
    snprintf(version, sizeof(version), "%" PRIu64, meta_consensus_last_applied(svc->cons));
    int rc = meta_fsm_digest(svc->fsm, digest);
    if (rc != 0) {
        svc_reply_error(h, rc, "digest: %s", lode_strerror(rc));
        return;
    }
    Lode__PingResponse p = LODE__PING_RESPONSE__INIT;
    p.payload.data = digest;
    p.payload.len = sizeof(digest);
    p.service = (char *)"lode-meta";
    p.version = version;
    svc_reply_msg(h, &p.base);
}

/* ---------------------------------------------------------------------------------------
 * Voter changes (leader only)
 * ------------------------------------------------------------------------------------- */

static bool valid_addr(const char *a)
{
    char host[META_ADDR_MAX];
    uint16_t port;
    return a && strlen(a) < META_ADDR_MAX && cmn_addr_split(a, host, sizeof(host), &port) == 0 &&
           port != 0;
}

static int propose_member(struct meta_service *svc, uint64_t id, const char *raft,
                          const char *rpc, bool remove, meta_consensus_apply_cb cb, void *data)
{
    Lode__MetaMember m = LODE__META_MEMBER__INIT;
    m.id = id;
    m.raft_address = (char *)(raft ? raft : "");
    m.rpc_address = (char *)(rpc ? rpc : "");
    Lode__SetMember sm = LODE__SET_MEMBER__INIT;
    sm.member = &m;
    sm.remove = remove;
    Lode__Command cmd = LODE__COMMAND__INIT;
    cmd.op_case = LODE__COMMAND__OP_SET_MEMBER;
    cmd.set_member = &sm;
    return meta_consensus_propose_own(svc->cons, &cmd, cb, data);
}

static const char *change_busy(struct meta_service *svc)
{
    static char text[512];
    const char *p = meta_consensus_change_pending(svc->cons);
    snprintf(text, sizeof(text), "another membership change is in progress (%s); retry when "
             "it ends", p ? p : "?");
    return text;
}

static void voter_change_done(void *data, int status, const char *message)
{
    struct held *h = data;
    if (status == 0)
        svc_meta_status(h);
    else if (status == LODE_ENOTLEADER)
        svc_reply_redirect(h, message);
    else
        svc_reply_error(h, status, "%s", message && *message ? message : lode_strerror(status));
}

static void add_member_done(void *data, int status, const struct meta_fsm_result *res)
{
    struct held *h = data;
    const Lode__AddVoterRequest *r = (const Lode__AddVoterRequest *)h->req;
    if (status == LODE_ENOTLEADER) {
        svc_reply_redirect(h, "leadership changed while recording the new replica");
        return;
    }
    if (status != 0 || res->status != 0) {
        int s = status ? status : res->status;
        svc_reply_error(h, s, "recording replica %" PRIu64 ": %s", r->id,
                        status == 0 && res->message[0] ? res->message : lode_strerror(s));
        return;
    }
    int rc = meta_consensus_add_voter(h->svc->cons, r->id, r->raft_address, voter_change_done, h);
    if (rc == LODE_ENOTLEADER)
        svc_reply_redirect(h, NULL);
    else if (rc == LODE_EMEMBERSHIP)
        svc_reply_error(h, rc, "cannot add replica %" PRIu64 " now: %s", r->id,
                        change_busy(h->svc));
    else if (rc != 0)
        svc_reply_error(h, rc, "adding replica %" PRIu64 ": %s", r->id, lode_strerror(rc));
}

void svc_add_voter(struct held *h)
{
    struct meta_service *svc = h->svc;
    const Lode__AddVoterRequest *r = (const Lode__AddVoterRequest *)h->req;
    if (r->id == 0 || !valid_addr(r->raft_address) || !valid_addr(r->rpc_address)) {
        svc_reply_error(h, -EINVAL, "add-voter needs id >= 1, raft_address and rpc_address "
                        "as host:port");
        return;
    }
    if (meta_consensus_role(svc->cons) != META_ROLE_LEADER) {
        svc_reply_redirect(h, NULL);
        return;
    }
    /* Refuse conflicts before anything is recorded. */
    size_t n = meta_consensus_servers(svc->cons, NULL, 0);
    struct meta_server *sv = calloc(n ? n : 1, sizeof(*sv));
    if (!sv) {
        svc_reply_error(h, -ENOMEM, "out of memory");
        return;
    }
    n = meta_consensus_servers(svc->cons, sv, n);
    for (size_t i = 0; i < n; i++) {
        bool same_id = sv[i].id == r->id;
        bool same_addr = strcmp(sv[i].raft_address, r->raft_address) == 0;
        if (same_id != same_addr) {
            svc_reply_error(h, LODE_EMEMBERSHIP,
                            same_id ? "replica %" PRIu64 " is already a member at %s"
                                    : "replica %" PRIu64 " already uses raft address %s",
                            sv[i].id, sv[i].raft_address);
            free(sv);
            return;
        }
    }
    free(sv);
    int rc = propose_member(svc, r->id, r->raft_address, r->rpc_address, false,
                            add_member_done, h);
    if (rc == LODE_ENOTLEADER)
        svc_reply_redirect(h, NULL);
    else if (rc != 0)
        svc_reply_error(h, rc, "cannot propose the new member: %s", lode_strerror(rc));
}

static void remove_member_done(void *data, int status, const struct meta_fsm_result *res)
{
    struct held *h = data;
    const Lode__RemoveVoterRequest *r = (const Lode__RemoveVoterRequest *)h->req;
    /* The voter is gone either way; a stale address entry only serves lookups. */
    if (status != 0 || res->status != 0)
        LOG_WARN(LOG_CTX, "replica %" PRIu64 " removed, but dropping its address entry failed: %s",
                 r->id, lode_strerror(status ? status : res->status));
    svc_meta_status(h);
}

static void remove_voter_done(void *data, int status, const char *message)
{
    struct held *h = data;
    const Lode__RemoveVoterRequest *r = (const Lode__RemoveVoterRequest *)h->req;
    if (status != 0) {
        voter_change_done(h, status, message);
        return;
    }
    if (propose_member(h->svc, r->id, NULL, NULL, true, remove_member_done, h) != 0)
        svc_meta_status(h);    /* e.g. this leader removed itself and stepped down */
}

void svc_remove_voter(struct held *h)
{
    struct meta_service *svc = h->svc;
    const Lode__RemoveVoterRequest *r = (const Lode__RemoveVoterRequest *)h->req;
    if (r->id == 0) {
        svc_reply_error(h, -EINVAL, "remove-voter needs id >= 1");
        return;
    }
    if (meta_consensus_role(svc->cons) != META_ROLE_LEADER) {
        svc_reply_redirect(h, NULL);
        return;
    }
    int rc = meta_consensus_remove_voter(svc->cons, r->id, remove_voter_done, h);
    if (rc == LODE_ENOTLEADER)
        svc_reply_redirect(h, NULL);
    else if (rc == LODE_EMEMBERSHIP)
        svc_reply_error(h, rc, "cannot remove replica %" PRIu64 ": %s", r->id,
                        meta_consensus_change_pending(svc->cons) ? change_busy(svc)
                                                                 : "it is not a member");
    else if (rc != 0)
        svc_reply_error(h, rc, "removing replica %" PRIu64 ": %s", r->id, lode_strerror(rc));
}

/* ---------------------------------------------------------------------------------------
 * Node heartbeats (leader only)
 * ------------------------------------------------------------------------------------- */

void svc_heartbeat(struct held *h)
{
    struct meta_service *svc = h->svc;
    if (meta_consensus_role(svc->cons) != META_ROLE_LEADER) {
        svc_reply_redirect(h, NULL);
        return;
    }
    Lode__HeartbeatResponse r = LODE__HEARTBEAT_RESPONSE__INIT;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = meta_members_heartbeat(svc->members, (const Lode__HeartbeatRequest *)h->req,
                                    &r.epoch, &r.state, &err);
    if (rc != 0) {
        svc_reply_error(h, rc, "%s", cmn_err_text(&err));
        return;
    }
    svc_reply_msg(h, &r.base);
}

/* ---------------------------------------------------------------------------------------
 * Leadership duties and gauges
 * ------------------------------------------------------------------------------------- */

void svc_update_gauges(struct meta_service *svc)
{
    if (!svc->cons)
        return;
    cmn_gauge_set(svc->g_role, (double)meta_consensus_role(svc->cons));
    cmn_gauge_set(svc->g_commit, (double)meta_consensus_commit_index(svc->cons));
    cmn_gauge_set(svc->g_applied, (double)meta_consensus_last_applied(svc->cons));
    cmn_gauge_set(svc->g_epoch, (double)meta_fsm_epoch(svc->fsm));
}

static void member_recorded(void *data, int status, const struct meta_fsm_result *res)
{
    uint64_t id = (uint64_t)(uintptr_t)data;
    if (status == 0 && res->status == 0)
        LOG_INFO(LOG_CTX, "recorded the addresses of replica %" PRIu64 " from peers", id);
    else if (status != LODE_ESHUTDOWN && status != LODE_ENOTLEADER)
        LOG_WARN(LOG_CTX, "recording replica %" PRIu64 " from peers failed: %s", id,
                 lode_strerror(status ? status : res->status));
}

/* Configured peers that are raft members but missing from the SetMember table (a new group,
 * or one bootstrapped before the table existed) get an entry, so every replica can map a
 * leader id to its RPC address. */
static void record_missing_members(struct meta_service *svc)
{
    size_t n = meta_consensus_servers(svc->cons, NULL, 0);
    struct meta_server *sv = calloc(n ? n : 1, sizeof(*sv));
    if (!sv)
        return;
    n = meta_consensus_servers(svc->cons, sv, n);
    for (size_t i = 0; i < svc->cfg->n_peers; i++) {
        const struct meta_peer *p = &svc->cfg->peer_list[i];
        bool member = false;
        for (size_t j = 0; j < n; j++)
            member |= sv[j].id == p->id && strcmp(sv[j].raft_address, p->raft_address) == 0;
        if (!member)
            continue;
        struct cmn_buf b;
        cmn_buf_init(&b);
        int rc = meta_fsm_member_get(svc->fsm, p->id, &b);
        cmn_buf_free(&b);
        if (rc == 0)
            continue;
        rc = propose_member(svc, p->id, p->raft_address, p->rpc_address, false, member_recorded,
                            (void *)(uintptr_t)p->id);
        if (rc != 0)
            break;
    }
    free(sv);
}

static void leader_setup(struct meta_service *svc);

static void leader_ready(void *data, int status)
{
    struct meta_service *svc = data;
    if (svc->stopped || meta_consensus_role(svc->cons) != META_ROLE_LEADER ||
        meta_consensus_term(svc->cons) != svc->setup_term)
        return;
    if (status != 0) {
        leader_setup(svc);
        return;
    }
    /* Everything committed under earlier leaders is applied now: the map is current. */
    meta_members_arm(svc->members);
    record_missing_members(svc);
}

static void leader_setup(struct meta_service *svc)
{
    svc->setup_term = meta_consensus_term(svc->cons);
    int rc = meta_consensus_barrier(svc->cons, leader_ready, svc);
    if (rc != 0 && rc != LODE_ENOTLEADER && rc != LODE_ESHUTDOWN)
        LOG_WARN(LOG_CTX, "leader setup: %s", lode_strerror(rc));
}

void meta_service_on_change(void *data, const struct meta_consensus_view *v)
{
    struct meta_service *svc = data;
    enum meta_role prev = svc->role;
    svc->role = v->role;
    svc->term = v->term;
    if (svc->stopped || !svc->cons)
        return;
    cmn_gauge_set(svc->g_role, (double)v->role);

    if (v->role == META_ROLE_LEADER && prev != META_ROLE_LEADER) {
        LOG_INFO(LOG_CTX, "became leader (term %" PRIu64 ")", v->term);
        meta_members_set_leader(svc->members, true);
        leader_setup(svc);
    } else if (v->role != META_ROLE_LEADER && prev == META_ROLE_LEADER) {
        LOG_INFO(LOG_CTX, "no longer leader (term %" PRIu64 ", now %s)", v->term,
                 meta_role_name(v->role));
        meta_members_set_leader(svc->members, false);
    } else if (v->role == META_ROLE_CANDIDATE && prev != META_ROLE_CANDIDATE) {
        LOG_DEBUG(LOG_CTX, "no leader heard from; standing for election (term %" PRIu64 ")",
                  v->term);
    }

    if (v->role == META_ROLE_FOLLOWER && v->leader_id && v->leader_id != svc->followed) {
        char addr[META_ADDR_MAX];
        if (!svc_member_rpc_address(svc, v->leader_id, addr, sizeof(addr)))
            snprintf(addr, sizeof(addr), "raft %s",
                     v->leader_raft_address ? v->leader_raft_address : "?");
        LOG_INFO(LOG_CTX, "following leader %" PRIu64 " at %s (term %" PRIu64 ")", v->leader_id,
                 addr, v->term);
    }
    svc->followed = v->role == META_ROLE_FOLLOWER ? v->leader_id : 0;
}
