/* RPC dispatch, linearizable reads and mutations of lode-meta (see service.h). */
#include "meta/service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/rpc_codec.h"
#include "meta/service_int.h"

#define LOG_CTX "meta"
#define COMMAND_SCHEMA_VERSION 1
#define GAUGE_INTERVAL_MS 1000

#define METHOD_ROW(name, num, req, resp) {num, #name, "method=\"" #name "\""},
static const struct {
    unsigned num;
    const char *name;
    const char *labels;
} methods[] = {CMN_RPC_METHOD_MAP(METHOD_ROW)};
#undef METHOD_ROW
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

static size_t method_index(unsigned method)
{
    for (size_t i = 0; i < N_METHODS; i++)
        if (methods[i].num == method)
            return i;
    return N_METHODS;              /* the "unknown" slot */
}

/* ---------------------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------------------- */

static void held_free(struct held *h)
{
    if (h->req)
        protobuf_c_message_free_unpacked(h->req, NULL);
    explicit_bzero(h->secret_key, sizeof(h->secret_key));
    free(h->bucket);
    free(h->key);
    h->svc->held--;
    free(h);
}

void svc_reply_msg(struct held *h, const ProtobufCMessage *msg)
{
    cmn_rpc_reply(h->call, msg);
    held_free(h);
}

void svc_reply_raw(struct held *h, const void *body, size_t len)
{
    cmn_rpc_reply_raw(h->call, body, len, NULL, 0);
    held_free(h);
}

static void reply_error_v(struct held *h, int status, const char *leader, uint64_t leader_id,
                          const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void reply_error_v(struct held *h, int status, const char *leader, uint64_t leader_id,
                          const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (status >= 0)
        status = LODE_EINTERNAL;
    if (status == LODE_ENOTLEADER || status == LODE_ENOLEADER)
        cmn_counter_add(h->mm->redirects, 1);
    else
        cmn_counter_add(h->mm->errors, 1);
    cmn_rpc_reply_error(h->call, status, leader, leader_id, "%s", msg);
    held_free(h);
}

void svc_reply_error(struct held *h, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(h, status, NULL, 0, fmt, ap);
    va_end(ap);
}

static void reply_error_leader(struct held *h, int status, const char *leader,
                               uint64_t leader_id, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void reply_error_leader(struct held *h, int status, const char *leader,
                               uint64_t leader_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(h, status, leader, leader_id, fmt, ap);
    va_end(ap);
}

bool svc_member_rpc_address(struct meta_service *svc, uint64_t id, char *out, size_t size)
{
    out[0] = '\0';
    if (id == (uint64_t)svc->cfg->id) {
        snprintf(out, size, "%s", svc->cfg->rpc_address);
        return true;
    }
    struct cmn_buf b;
    cmn_buf_init(&b);
    if (meta_fsm_member_get(svc->fsm, id, &b) == 0) {
        Lode__MetaMember *m = lode__meta_member__unpack(NULL, b.len, b.data);
        if (m && m->rpc_address && m->rpc_address[0])
            snprintf(out, size, "%s", m->rpc_address);
        if (m)
            lode__meta_member__free_unpacked(m, NULL);
    }
    cmn_buf_free(&b);
    if (!out[0]) {
        const struct meta_peer *p = meta_config_peer(svc->cfg, id);
        if (p)
            snprintf(out, size, "%s", p->rpc_address);
    }
    return out[0] != '\0';
}

void svc_reply_redirect(struct held *h, const char *why)
{
    struct meta_service *svc = h->svc;
    uint64_t leader = svc->cons ? meta_consensus_leader(svc->cons, NULL) : 0;
    char addr[META_ADDR_MAX];
    if (leader == 0 || leader == (uint64_t)svc->cfg->id) {
        /* No leader, or raft still names us while stepping down: nobody to point to. */
        svc_reply_error(h, LODE_ENOLEADER, "%s",
                        why ? why : "no leader elected yet; retry");
        return;
    }
    if (svc_member_rpc_address(svc, leader, addr, sizeof(addr)))
        reply_error_leader(h, LODE_ENOTLEADER, addr, leader, "%s%sthe leader is %" PRIu64
                           " at %s", why ? why : "not the leader", "; ", leader, addr);
    else
        reply_error_leader(h, LODE_ENOTLEADER, NULL, leader,
                           "%s; the leader is replica %" PRIu64
                           " (its RPC address is not known here)",
                           why ? why : "not the leader", leader);
}

/* ---------------------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------------------- */

static const char *or_null(const char *s)
{
    return s && *s ? s : NULL;
}

static void read_now(struct held *h)
{
    struct meta_fsm *fsm = h->svc->fsm;
    struct cmn_buf out;
    struct cmn_err err;
    cmn_buf_init(&out);
    cmn_err_clear(&err);
    int rc;

    switch (h->method) {
    case CMN_RPC_CLUSTER_MAP_GET:
        rc = meta_fsm_cluster_map(fsm, &out);
        break;
    case CMN_RPC_BUCKET_HEAD: {
        const Lode__NameRequest *r = (const Lode__NameRequest *)h->req;
        rc = meta_fsm_bucket_get(fsm, r->name, &out, &err);
        break;
    }
    case CMN_RPC_BUCKET_LIST: {
        const Lode__BucketListRequest *r = (const Lode__BucketListRequest *)h->req;
        rc = meta_fsm_bucket_list(fsm, or_null(r->owner), &out);
        break;
    }
    case CMN_RPC_OBJECT_GET: {
        const Lode__ObjectGetRequest *r = (const Lode__ObjectGetRequest *)h->req;
        rc = meta_fsm_object_get(fsm, r->bucket, r->key, &out, &err);
        break;
    }
    case CMN_RPC_OBJECT_LIST:
        rc = meta_fsm_object_list(fsm, (const Lode__ObjectListRequest *)h->req, &out, &err);
        break;
    case CMN_RPC_UPLOAD_GET: {
        const Lode__UploadGetRequest *r = (const Lode__UploadGetRequest *)h->req;
        rc = meta_fsm_upload_get(fsm, r->upload_id, &out, &err);
        break;
    }
    case CMN_RPC_PART_LIST:
        rc = meta_fsm_part_list(fsm, (const Lode__PartListRequest *)h->req, &out, &err);
        break;
    case CMN_RPC_UPLOAD_LIST:
        rc = meta_fsm_upload_list(fsm, (const Lode__UploadListRequest *)h->req, &out, &err);
        break;
    case CMN_RPC_USER_LIST:
        rc = meta_fsm_user_list(fsm, &out);
        break;
    case CMN_RPC_ACCESS_KEY_GET: {
        const Lode__AccessKeyRequest *r = (const Lode__AccessKeyRequest *)h->req;
        rc = meta_fsm_access_key_get(fsm, r->access_key, &out, &err);
        break;
    }
    case CMN_RPC_GC_LIST: {
        const Lode__GcListRequest *r = (const Lode__GcListRequest *)h->req;
        rc = meta_fsm_gc_list(fsm, r->after_seq, r->max, &out);
        break;
    }
    case CMN_RPC_CORRUPT_LIST: {
        const Lode__CorruptListRequest *r = (const Lode__CorruptListRequest *)h->req;
        rc = meta_fsm_corrupt_list(fsm, r->nid, r->max, &out);
        break;
    }
    default:
        rc = cmn_err_set(&err, LODE_ENOMETHOD, "not a read method");
        break;
    }
    if (rc == 0)
        svc_reply_raw(h, out.data, out.len);
    else
        svc_reply_error(h, rc, "%s", err.code ? cmn_err_text(&err) : lode_strerror(rc));
    cmn_buf_free(&out);
}

static void read_barrier_done(void *data, int status)
{
    struct held *h = data;
    if (status == 0)
        read_now(h);
    else if (status == LODE_ENOTLEADER)
        svc_reply_redirect(h, "leadership changed during the read");
    else
        svc_reply_error(h, status, "read barrier failed: %s", lode_strerror(status));
}

static void do_read(struct held *h)
{
    struct meta_service *svc = h->svc;
    if (cmn_rpc_call_flags(h->call) & CMN_RPC_FLAG_STALE_OK) {
        read_now(h);
        return;
    }
    if (meta_consensus_role(svc->cons) != META_ROLE_LEADER) {
        svc_reply_redirect(h, NULL);
        return;
    }
    int rc = meta_consensus_barrier(svc->cons, read_barrier_done, h);
    if (rc == LODE_ENOTLEADER)
        svc_reply_redirect(h, NULL);
    else if (rc != 0)
        svc_reply_error(h, rc, "read barrier: %s", lode_strerror(rc));
}

/* ---------------------------------------------------------------------------------------
 * Mutations
 * ------------------------------------------------------------------------------------- */

static Lode__Command__OpCase op_for_method(unsigned method)
{
    switch (method) {
    case CMN_RPC_NODE_REGISTER:
        return LODE__COMMAND__OP_REGISTER_NODE;
    case CMN_RPC_NODE_SET_STATE:
        return LODE__COMMAND__OP_SET_NODE_STATE;
    case CMN_RPC_BUCKET_CREATE:
        return LODE__COMMAND__OP_CREATE_BUCKET;
    case CMN_RPC_BUCKET_DELETE:
        return LODE__COMMAND__OP_DELETE_BUCKET;
    case CMN_RPC_OBJECT_PUT:
        return LODE__COMMAND__OP_PUT_OBJECT;
    case CMN_RPC_OBJECT_DELETE:
        return LODE__COMMAND__OP_DELETE_OBJECT;
    case CMN_RPC_UPLOAD_CREATE:
        return LODE__COMMAND__OP_CREATE_UPLOAD;
    case CMN_RPC_PART_PUT:
        return LODE__COMMAND__OP_PUT_PART;
    case CMN_RPC_UPLOAD_COMPLETE:
        return LODE__COMMAND__OP_COMPLETE_UPLOAD;
    case CMN_RPC_UPLOAD_ABORT:
        return LODE__COMMAND__OP_ABORT_UPLOAD;
    case CMN_RPC_USER_CREATE:
        return LODE__COMMAND__OP_CREATE_USER;
    case CMN_RPC_USER_DELETE:
        return LODE__COMMAND__OP_DELETE_USER;
    case CMN_RPC_GC_ENQUEUE:
        return LODE__COMMAND__OP_GC_ENQUEUE;
    case CMN_RPC_GC_ACK:
        return LODE__COMMAND__OP_GC_ACK;
    case CMN_RPC_CORRUPT_REPORT:
        return LODE__COMMAND__OP_REPORT_CORRUPT;
    default:
        return LODE__COMMAND__OP__NOT_SET;
    }
}

/* n characters drawn uniformly from `alphabet` (rejection sampling: no modulo bias). */
static int random_chars(char *out, size_t n, const char *alphabet)
{
    size_t alen = strlen(alphabet);
    unsigned limit = 256 - 256 % (unsigned)alen;
    uint8_t pool[64];
    size_t have = 0, pos = 0;
    for (size_t i = 0; i < n;) {
        if (pos == have) {
            int rc = cmn_random_bytes(pool, sizeof(pool));
            if (rc)
                return rc;
            have = sizeof(pool);
            pos = 0;
        }
        uint8_t v = pool[pos++];
        if (v < limit)
            out[i++] = alphabet[v % alen];
    }
    out[n] = '\0';
    explicit_bzero(pool, sizeof(pool));
    return 0;
}

static int make_access_key(char out[META_ACCESS_KEY_LEN + 1])
{
    out[0] = 'L';
    out[1] = 'K';
    return random_chars(out + 2, META_ACCESS_KEY_LEN - 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
}

static int make_secret_key(char out[META_SECRET_KEY_LEN + 1])
{
    return random_chars(out, META_SECRET_KEY_LEN,
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
}

/* The stored key record of a user just created. The generated key is looked up first; if
 * it is absent the command was a retry that the state machine answered from its dedupe
 * table (the first attempt's keys were stored), so the user's first key is returned. */
static Lode__AccessKeyRecord *created_key(struct meta_service *svc, const char *user,
                                          const char *access_key)
{
    struct cmn_buf b;
    cmn_buf_init(&b);
    Lode__AccessKeyRecord *rec = NULL;
    if (meta_fsm_access_key_get(svc->fsm, access_key, &b, NULL) == 0)
        rec = lode__access_key_record__unpack(NULL, b.len, b.data);
    if (rec && strcmp(rec->user, user) != 0) {
        lode__access_key_record__free_unpacked(rec, NULL);
        rec = NULL;
    }
    if (!rec && meta_fsm_user_list(svc->fsm, &b) == 0) {
        Lode__UserListResponse *ul = lode__user_list_response__unpack(NULL, b.len, b.data);
        for (size_t i = 0; ul && !rec && i < ul->n_users; i++) {
            if (strcmp(ul->users[i]->name, user) != 0 || ul->users[i]->n_access_keys == 0)
                continue;
            struct cmn_buf kb;
            cmn_buf_init(&kb);
            if (meta_fsm_access_key_get(svc->fsm, ul->users[i]->access_keys[0], &kb, NULL) == 0)
                rec = lode__access_key_record__unpack(NULL, kb.len, kb.data);
            cmn_buf_free(&kb);
        }
        if (ul)
            lode__user_list_response__free_unpacked(ul, NULL);
    }
    if (b.data)
        explicit_bzero(b.data, b.cap);
    cmn_buf_free(&b);
    return rec;
}

static void reply_user_created(struct held *h)
{
    const Lode__Command *cmd = (const Lode__Command *)h->req;
    const char *name = cmd->create_user->name;
    Lode__AccessKeyRecord *rec = created_key(h->svc, name, h->access_key);
    if (!rec) {
        svc_reply_error(h, LODE_EINTERNAL, "user '%s' was created but its key is not found",
                        name);
        return;
    }
    Lode__UserCreateResponse r = LODE__USER_CREATE_RESPONSE__INIT;
    r.name = (char *)name;
    r.access_key = rec->access_key;
    r.secret_key = rec->secret_key;
    svc_reply_msg(h, &r.base);
    if (rec->secret_key)
        explicit_bzero(rec->secret_key, strlen(rec->secret_key));
    lode__access_key_record__free_unpacked(rec, NULL);
}

static void mutation_done(void *data, int status, const struct meta_fsm_result *res)
{
    struct held *h = data;
    struct meta_service *svc = h->svc;
    if (h->admin) {
        meta_members_admin_end(svc->members, h->admin_nid);
        h->admin = false;
    }
    if (status == LODE_ENOTLEADER) {
        svc_reply_redirect(h, "leadership was lost before the command committed, so its "
                              "outcome is unknown; retry with the same client_id and seq");
        return;
    }
    if (status != 0) {
        svc_reply_error(h, status, "command not applied: %s", lode_strerror(status));
        return;
    }
    if (res->status != 0) {
        svc_reply_error(h, res->status, "%s",
                        res->message[0] ? res->message : lode_strerror(res->status));
        return;
    }
    if (h->method == CMN_RPC_USER_CREATE) {
        reply_user_created(h);
        return;
    }

    Lode__CommandResult r = LODE__COMMAND_RESULT__INIT;
    r.status = 0;
    r.message = (char *)res->message;
    r.version = res->version;
    r.epoch = res->epoch;
    r.nid = res->nid;
    r.upload_id = (char *)(res->upload_id[0] ? res->upload_id : h->upload_id);
    Lode__ObjectRecord *obj = NULL;
    if (h->method == CMN_RPC_UPLOAD_COMPLETE && h->bucket) {
        struct cmn_buf b;
        cmn_buf_init(&b);
        if (meta_fsm_object_get(svc->fsm, h->bucket, h->key, &b, NULL) == 0)
            obj = lode__object_record__unpack(NULL, b.len, b.data);
        cmn_buf_free(&b);
        /* Another write may already have replaced it: only the record this completion made. */
        if (obj && obj->version == res->version)
            r.object = obj;
    }
    svc_reply_msg(h, &r.base);
    if (obj)
        lode__object_record__free_unpacked(obj, NULL);
}

/* UPLOAD_COMPLETE's command names only the upload; remember which object it completes so
 * the reply can carry the assembled record. */
static void note_upload_target(struct held *h, const char *upload_id)
{
    struct cmn_buf b;
    cmn_buf_init(&b);
    if (meta_fsm_upload_get(h->svc->fsm, upload_id, &b, NULL) == 0) {
        Lode__UploadRecord *u = lode__upload_record__unpack(NULL, b.len, b.data);
        if (u) {
            h->bucket = strdup(u->bucket);
            h->key = strdup(u->key);
            lode__upload_record__free_unpacked(u, NULL);
        }
    }
    cmn_buf_free(&b);
}

static void do_mutation(struct held *h)
{
    struct meta_service *svc = h->svc;
    Lode__Command *cmd = (Lode__Command *)h->req;
    if (cmd->op_case != op_for_method(h->method)) {
        svc_reply_error(h, -EINVAL, "command op does not match method");
        return;
    }
    if (meta_consensus_role(svc->cons) != META_ROLE_LEADER) {
        svc_reply_redirect(h, NULL);
        return;
    }

    /* Stamped on shallow copies: the unpacked request owns its strings. */
    Lode__Command c = *cmd;
    Lode__CreateUpload cu;
    Lode__UploadRecord ur;
    Lode__CreateUser cus;
    c.now_ms = cmn_now_ms();
    if (c.version == 0)
        c.version = COMMAND_SCHEMA_VERSION;
    int rc = 0;

    switch (cmd->op_case) {
    case LODE__COMMAND__OP_CREATE_UPLOAD:
        if (cmd->create_upload && cmd->create_upload->upload &&
            !(cmd->create_upload->upload->upload_id && cmd->create_upload->upload->upload_id[0])) {
            struct cmn_id id = cmn_id_random();
            cmn_id_to_hex(&id, h->upload_id);
            ur = *cmd->create_upload->upload;
            ur.upload_id = h->upload_id;
            cu = *cmd->create_upload;
            cu.upload = &ur;
            c.create_upload = &cu;
        }
        break;
    case LODE__COMMAND__OP_CREATE_USER:
        if (!cmd->create_user)
            break;
        cus = *cmd->create_user;
        if (!cus.access_key || !cus.access_key[0])
            rc = make_access_key(h->access_key);
        else
            snprintf(h->access_key, sizeof(h->access_key), "%s", cus.access_key);
        if (rc == 0 && (!cus.secret_key || !cus.secret_key[0])) {
            rc = make_secret_key(h->secret_key);
            cus.secret_key = h->secret_key;
        }
        cus.access_key = h->access_key;
        c.create_user = &cus;
        break;
    case LODE__COMMAND__OP_COMPLETE_UPLOAD:
        if (cmd->complete_upload && cmd->complete_upload->upload_id)
            note_upload_target(h, cmd->complete_upload->upload_id);
        break;
    case LODE__COMMAND__OP_SET_NODE_STATE:
        if (cmd->set_node_state) {
            h->admin_nid = cmd->set_node_state->nid;
            h->admin = meta_members_admin_begin(svc->members, h->admin_nid);
        }
        break;
    default:
        break;
    }
    if (rc == 0)
        rc = meta_consensus_propose(svc->cons, &c, mutation_done, h);
    if (rc != 0) {
        if (h->admin) {
            meta_members_admin_end(svc->members, h->admin_nid);
            h->admin = false;
        }
        if (rc == LODE_ENOTLEADER)
            svc_reply_redirect(h, NULL);
        else
            svc_reply_error(h, rc, "cannot propose the command: %s", lode_strerror(rc));
    }
}

/* ---------------------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------------------- */

static bool is_read(unsigned method)
{
    switch (method) {
    case CMN_RPC_CLUSTER_MAP_GET:
    case CMN_RPC_BUCKET_HEAD:
    case CMN_RPC_BUCKET_LIST:
    case CMN_RPC_OBJECT_GET:
    case CMN_RPC_OBJECT_LIST:
    case CMN_RPC_UPLOAD_GET:
    case CMN_RPC_PART_LIST:
    case CMN_RPC_UPLOAD_LIST:
    case CMN_RPC_USER_LIST:
    case CMN_RPC_ACCESS_KEY_GET:
    case CMN_RPC_GC_LIST:
    case CMN_RPC_CORRUPT_LIST:
        return true;
    default:
        return false;
    }
}

static void ping(struct held *h)
{
    const Lode__PingRequest *r = (const Lode__PingRequest *)h->req;
    Lode__PingResponse p = LODE__PING_RESPONSE__INIT;
    p.payload = r->payload;
    p.service = (char *)"lode-meta";
    p.version = (char *)PACKAGE_VERSION;
    svc_reply_msg(h, &p.base);
}

void meta_service_handle(void *data, struct cmn_rpc_call *call)
{
    struct meta_service *svc = data;
    unsigned method = cmn_rpc_call_method(call);
    size_t idx = method_index(method);
    struct method_metrics *mm = &svc->mm[idx];
    cmn_counter_add(mm->requests, 1);

    struct held *h = calloc(1, sizeof(*h));
    if (!h) {
        cmn_counter_add(mm->errors, 1);
        cmn_rpc_reply_error(call, -ENOMEM, NULL, 0, "out of memory");
        return;
    }
    h->svc = svc;
    h->call = call;
    h->method = method;
    h->mm = mm;
    svc->held++;

    const ProtobufCMessageDescriptor *desc = cmn_rpc_method_request(method);
    if (idx == N_METHODS || !desc) {
        svc_reply_error(h, LODE_ENOMETHOD, "unknown method %u", method);
        return;
    }
    if (svc->stopped) {
        svc_reply_error(h, LODE_ESHUTDOWN, "lode-meta is shutting down");
        return;
    }
    if (!svc->cons) {
        svc_reply_error(h, LODE_EUNAVAILABLE, "lode-meta is starting; retry");
        return;
    }
    size_t len;
    const uint8_t *body = cmn_rpc_call_body(call, &len);
    h->req = protobuf_c_message_unpack(desc, NULL, len, body);
    if (!h->req) {
        svc_reply_error(h, LODE_EBADMSG, "malformed %s request (%s)", methods[idx].name,
                        desc->name);
        return;
    }

    switch (method) {
    case CMN_RPC_PING:
        ping(h);
        return;
    case CMN_RPC_META_STATUS:
        svc_meta_status(h);
        return;
    case CMN_RPC_META_DIGEST:
        svc_meta_digest(h);
        return;
    case CMN_RPC_META_ADD_VOTER:
        svc_add_voter(h);
        return;
    case CMN_RPC_META_REMOVE_VOTER:
        svc_remove_voter(h);
        return;
    case CMN_RPC_NODE_HEARTBEAT:
        svc_heartbeat(h);
        return;
    default:
        break;
    }
    if (is_read(method))
        do_read(h);
    else if (desc == &lode__command__descriptor)
        do_mutation(h);
    else
        svc_reply_error(h, LODE_ENOMETHOD, "method %s is not served by lode-meta",
                        methods[idx].name);
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------- */

static void gauge_cb(uv_timer_t *t)
{
    svc_update_gauges(t->data);
}

int meta_service_create(const struct meta_service_options *o, struct meta_service **out,
                        struct cmn_err *err)
{
    struct meta_service *svc = calloc(1, sizeof(*svc));
    if (!svc)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    svc->loop = o->loop;
    svc->cfg = o->cfg;
    svc->fsm = o->fsm;
    svc->metrics = o->metrics;
    svc->mm = calloc(N_METHODS + 1, sizeof(*svc->mm));
    if (!svc->mm) {
        free(svc);
        return cmn_err_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i <= N_METHODS; i++) {
        const char *labels = i < N_METHODS ? methods[i].labels : "method=\"unknown\"";
        svc->mm[i].requests = cmn_metrics_counter(o->metrics, "lode_meta_requests_total", labels,
                                                  "RPC requests received, by method.");
        svc->mm[i].errors =
            cmn_metrics_counter(o->metrics, "lode_meta_request_errors_total", labels,
                                "RPC replies with an error status (redirects excepted).");
        svc->mm[i].redirects =
            cmn_metrics_counter(o->metrics, "lode_meta_redirects_total", labels,
                                "RPC replies sending the caller to the leader.");
    }
    svc->g_role = cmn_metrics_gauge(o->metrics, "lode_meta_raft_role", NULL,
                                    "Raft role: 0 unavailable, 1 follower, 2 candidate, 3 leader.");
    svc->g_commit = cmn_metrics_gauge(o->metrics, "lode_meta_commit_index", NULL,
                                      "Highest raft log index known to be committed.");
    svc->g_applied = cmn_metrics_gauge(o->metrics, "lode_meta_last_applied", NULL,
                                       "Highest raft log index applied to the state machine.");
    svc->g_epoch = cmn_metrics_gauge(o->metrics, "lode_meta_epoch", NULL,
                                     "Cluster-map epoch.");

    struct meta_members_options mo = {
        .loop = o->loop,
        .fsm = o->fsm,
        .suspect_after_ms = o->cfg->node_suspect_after_ms,
        .down_after_ms = o->cfg->node_down_after_ms,
    };
    int rc = meta_members_create(&mo, &svc->members);
    if (rc) {
        free(svc->mm);
        free(svc);
        return cmn_err_set(err, rc, "out of memory");
    }
    uv_timer_init(o->loop, &svc->gauge_timer);
    svc->gauge_timer.data = svc;
    *out = svc;
    return 0;
}

void meta_service_attach(struct meta_service *svc, struct meta_consensus *consensus)
{
    svc->cons = consensus;
    meta_members_attach(svc->members, consensus);
    svc_update_gauges(svc);
    uv_timer_start(&svc->gauge_timer, gauge_cb, GAUGE_INTERVAL_MS, GAUGE_INTERVAL_MS);
}

void meta_service_stop(struct meta_service *svc)
{
    if (svc->stopped)
        return;
    svc->stopped = true;
    uv_timer_stop(&svc->gauge_timer);
    uv_close((uv_handle_t *)&svc->gauge_timer, NULL);
    meta_members_stop(svc->members);
}

void meta_service_destroy(struct meta_service *svc)
{
    if (!svc)
        return;
    if (svc->held)
        LOG_WARN(LOG_CTX, "%u call(s) still held at exit", svc->held);
    meta_members_destroy(svc->members);
    free(svc->mm);
    free(svc);
}
