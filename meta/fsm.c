/* The metadata state machine: apply driver (dedupe, map growth, one write transaction per
 * command) and the node, bucket, user, GC and membership commands. Object and multipart
 * commands are in fsm_object.c, reads in fsm_read.c, snapshots in fsm_snap.c. */
#include "meta/fsm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"
#include "common/log.h"
#include "meta/fsm_int.h"

#define S(s) ((s) ? (s) : "")

int meta_fsm_open(const struct meta_fsm_options *opts, struct meta_fsm **out,
                  struct cmn_err *err)
{
    *out = NULL;
    struct meta_fsm *fsm = calloc(1, sizeof(*fsm));
    if (!fsm)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    int rc = meta_store_open(&fsm->st, opts->dir, opts->map_size, err);
    if (rc) {
        free(fsm);
        return rc;
    }
    cmn_buf_init(&fsm->pack);
    cmn_buf_init(&fsm->scratch);
    atomic_init(&fsm->list_steps, 0);
    *out = fsm;
    return 0;
}

void meta_fsm_close(struct meta_fsm *fsm)
{
    if (!fsm)
        return;
    meta_store_close(&fsm->st);
    cmn_buf_free(&fsm->pack);
    cmn_buf_free(&fsm->scratch);
    free(fsm);
}

uint64_t meta_fsm_list_steps(struct meta_fsm *fsm)
{
    return atomic_load(&fsm->list_steps);
}

uint64_t meta_fsm_map_size(struct meta_fsm *fsm)
{
    return fsm->st.map_size;
}

/* ---- Helpers shared by the handlers */

int meta_op_fail(struct meta_op *op, int code, const char *fmt, ...)
{
    va_list ap;
    op->res->status = code;
    va_start(ap, fmt);
    vsnprintf(op->res->message, sizeof(op->res->message), fmt, ap);
    va_end(ap);
    return 0;
}

int meta_pack_to_buf(const ProtobufCMessage *m, struct cmn_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    cmn_buf_reset(out);
    if (cmn_buf_reserve(out, n ? n : 1))
        return -ENOMEM;
    out->len = protobuf_c_message_pack(m, out->data);
    return 0;
}

int meta_get_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                 const ProtobufCMessageDescriptor *desc, void **out)
{
    MDB_val v;
    *out = NULL;
    int rc = meta_omap_get(txn, dbi, key, klen, &v);
    if (rc)
        return rc;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, v.mv_size, v.mv_data);
    if (!m)
        return -EIO;
    *out = m;
    return 0;
}

int meta_op_put_msg(struct meta_op *op, enum meta_dbi_id dbi, const void *key, size_t klen,
                    const ProtobufCMessage *m)
{
    struct meta_fsm *fsm = op->fsm;
    int rc = meta_pack_to_buf(m, &fsm->pack);
    if (rc)
        return rc;
    return meta_omap_put(op->txn, meta_dbi(fsm, dbi), key, klen, fsm->pack.data, fsm->pack.len,
                         &fsm->scratch);
}

int meta_op_del(struct meta_op *op, enum meta_dbi_id dbi, const void *key, size_t klen)
{
    int rc = meta_omap_del(op->txn, meta_dbi(op->fsm, dbi), key, klen, &op->fsm->scratch);
    return rc == -ENOENT ? 0 : rc;
}

int meta_op_counter_next(struct meta_op *op, const char *name, uint64_t dflt, uint64_t *v)
{
    int rc = meta_counter_get(&op->fsm->st, op->txn, name, dflt, v);
    if (rc)
        return rc;
    return meta_counter_set(&op->fsm->st, op->txn, name, *v + 1);
}

int meta_op_gc_chunk(struct meta_op *op, const Lode__ChunkRef *chunk, const char *reason)
{
    uint64_t seq;
    uint8_t key[8];
    int rc = meta_op_counter_next(op, META_SYS_GC_NEXT_SEQ, 1, &seq);
    if (rc)
        return rc;
    Lode__GcEntry e = LODE__GC_ENTRY__INIT;
    e.seq = seq;
    e.chunk = (Lode__ChunkRef *)chunk;
    e.enqueued_ms = op->now;
    e.reason = (char *)reason;
    meta_key_u64(key, seq);
    return meta_op_put_msg(op, META_DBI_GC, key, sizeof(key), &e.base);
}

int meta_op_gc_layout(struct meta_op *op, const Lode__Layout *layout, const char *reason)
{
    if (!layout)
        return 0;
    for (size_t s = 0; s < layout->n_stripes; s++) {
        const Lode__Stripe *st = layout->stripes[s];
        for (size_t c = 0; st && c < st->n_chunks; c++) {
            /* nid 0 marks a chunk that was never stored (the empty data chunks of a short
             * last stripe, gateway/stripe.h): nothing to collect. */
            if (!st->chunks[c] || st->chunks[c]->nid == 0)
                continue;
            int rc = meta_op_gc_chunk(op, st->chunks[c], reason);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int meta_op_gc_object(struct meta_op *op, const Lode__ObjectRecord *rec, const char *reason)
{
    int rc = meta_op_gc_layout(op, rec->layout, reason);
    for (size_t i = 0; rc == 0 && i < rec->n_parts; i++)
        if (rec->parts[i])
            rc = meta_op_gc_layout(op, rec->parts[i]->layout, reason);
    return rc;
}

static int epoch_bump(struct meta_op *op)
{
    uint64_t e;
    int rc = meta_op_counter_next(op, META_SYS_EPOCH, 0, &e);
    op->res->epoch = e + 1;
    return rc;
}

static int epoch_read(struct meta_op *op)
{
    uint64_t e;
    int rc = meta_counter_get(&op->fsm->st, op->txn, META_SYS_EPOCH, 0, &e);
    op->res->epoch = e;
    return rc;
}

/* ---- Nodes */

static int node_get(struct meta_op *op, uint32_t nid, Lode__NodeInfo **out)
{
    uint8_t key[4];
    meta_key_u32(key, nid);
    return meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_NODES), key, 4,
                        &lode__node_info__descriptor, (void **)out);
}

static int node_put(struct meta_op *op, const Lode__NodeInfo *n)
{
    uint8_t key[4];
    meta_key_u32(key, n->nid);
    return meta_op_put_msg(op, META_DBI_NODES, key, 4, &n->base);
}

static int op_register_node(struct meta_op *op)
{
    const Lode__NodeInfo *in = op->cmd->register_node->node;
    Lode__NodeInfo *old = NULL;
    MDB_val v;
    int rc;

    if (!in)
        return meta_op_fail(op, LODE_EBADMSG, "register_node without a node");
    if (in->uuid.len != META_NODE_UUID_SIZE)
        return meta_op_fail(op, LODE_EBADMSG, "node uuid must be %d bytes, not %zu",
                            META_NODE_UUID_SIZE, in->uuid.len);
    if (!*S(in->address))
        return meta_op_fail(op, -EINVAL, "node address is required");
    if (!*S(in->failure_domain))
        return meta_op_fail(op, -EINVAL, "node failure domain is required");

    rc = meta_omap_get(op->txn, meta_dbi(op->fsm, META_DBI_NODE_UUIDS), in->uuid.data,
                       in->uuid.len, &v);
    if (rc == -ENOENT) {
        uint64_t nid;
        uint8_t nk[4];
        if ((rc = meta_op_counter_next(op, META_SYS_NEXT_NID, 1, &nid)))
            return rc;
        if (nid > UINT32_MAX)
            return meta_op_fail(op, LODE_EMETAFULL, "node ids exhausted");
        Lode__NodeInfo n = LODE__NODE_INFO__INIT;
        n.nid = (uint32_t)nid;
        n.uuid = in->uuid;
        n.address = (char *)S(in->address);
        n.failure_domain = (char *)S(in->failure_domain);
        n.data_address = (char *)S(in->data_address);
        n.rdma_address = (char *)S(in->rdma_address);
        n.dc = in->dc;
        n.capacity_bytes = in->capacity_bytes;
        n.used_bytes = in->used_bytes;
        n.state = LODE__NODE_STATE__NODE_UP;
        n.registered_ms = op->now;
        n.state_changed_ms = op->now;
        n.last_heartbeat_ms = op->now;
        meta_key_u32(nk, n.nid);
        if ((rc = node_put(op, &n)) ||
            (rc = meta_omap_put(op->txn, meta_dbi(op->fsm, META_DBI_NODE_UUIDS), in->uuid.data,
                                in->uuid.len, nk, 4, &op->fsm->scratch)))
            return rc;
        op->res->nid = n.nid;
        return epoch_bump(op);
    }
    if (rc)
        return rc;
    if (v.mv_size != 4)
        return -EIO;
    uint32_t nid = cmn_get_u32be(v.mv_data);
    if ((rc = node_get(op, nid, &old)))
        return rc == -ENOENT ? -EIO : rc;
    if (old->state == LODE__NODE_STATE__NODE_REMOVED) {
        rc = meta_op_fail(op, LODE_ESTATE, "node %u was removed; its uuid cannot register again",
                          nid);
        goto out;
    }
    if (in->nid && in->nid != nid) {
        rc = meta_op_fail(op, -EINVAL, "node uuid is registered as nid %u, not %u", nid, in->nid);
        goto out;
    }
    Lode__NodeState state = old->state == LODE__NODE_STATE__NODE_DRAINING
                                ? LODE__NODE_STATE__NODE_DRAINING
                                : LODE__NODE_STATE__NODE_UP;
    bool changed = strcmp(old->address, S(in->address)) != 0 ||
                   strcmp(old->failure_domain, S(in->failure_domain)) != 0 ||
                   strcmp(old->data_address, S(in->data_address)) != 0 ||
                   strcmp(S(old->rdma_address), S(in->rdma_address)) != 0 || old->dc != in->dc ||
                   old->state != state;
    Lode__NodeInfo n = *old;
    n.address = (char *)S(in->address);
    n.failure_domain = (char *)S(in->failure_domain);
    n.data_address = (char *)S(in->data_address);
    n.rdma_address = (char *)S(in->rdma_address);
    n.dc = in->dc;
    n.capacity_bytes = in->capacity_bytes;
    n.used_bytes = in->used_bytes;
    n.last_heartbeat_ms = op->now;
    if (state != old->state)
        n.state_changed_ms = op->now;
    n.state = state;
    if ((rc = node_put(op, &n)))
        goto out;
    op->res->nid = nid;
    rc = changed ? epoch_bump(op) : epoch_read(op);
out:
    lode__node_info__free_unpacked(old, NULL);
    return rc;
}

static int op_set_node_state(struct meta_op *op)
{
    const Lode__SetNodeState *s = op->cmd->set_node_state;
    Lode__NodeInfo *n = NULL;
    int rc = node_get(op, s->nid, &n);
    if (rc == -ENOENT)
        return meta_op_fail(op, LODE_ENONODE, "node %u is not registered", s->nid);
    if (rc)
        return rc;
    if (s->state < LODE__NODE_STATE__NODE_UP || s->state > LODE__NODE_STATE__NODE_REMOVED) {
        rc = meta_op_fail(op, -EINVAL, "invalid node state %d", (int)s->state);
        goto out;
    }
    if (n->state == LODE__NODE_STATE__NODE_REMOVED && s->state != n->state) {
        rc = meta_op_fail(op, LODE_ESTATE, "node %u was removed; removal is final", s->nid);
        goto out;
    }
    bool changed = n->state != s->state;
    n->state = s->state;
    if (s->capacity_bytes)
        n->capacity_bytes = s->capacity_bytes;
    if (s->used_bytes)
        n->used_bytes = s->used_bytes;
    if (changed)
        n->state_changed_ms = op->now;
    if ((rc = node_put(op, n)))
        goto out;
    rc = changed ? epoch_bump(op) : epoch_read(op);
out:
    lode__node_info__free_unpacked(n, NULL);
    return rc;
}

/* ---- Buckets */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool looks_like_ipv4(const char *n)
{
    int groups = 0, digits = 0;
    for (const char *p = n;; p++) {
        if (*p >= '0' && *p <= '9') {
            if (++digits > 3)
                return false;
        } else if (*p == '.' || *p == 0) {
            if (digits == 0)
                return false;
            groups++;
            digits = 0;
            if (*p == 0)
                break;
        } else {
            return false;
        }
    }
    return groups == 4;
}

static bool has_suffix(const char *s, size_t len, const char *suf)
{
    size_t n = strlen(suf);
    return len >= n && memcmp(s + len - n, suf, n) == 0;
}

/* NULL when the name follows S3's bucket naming rules, else the rule it breaks. */
static const char *bucket_name_problem(const char *n)
{
    size_t len = strlen(n);
    if (len < 3 || len > META_BUCKET_NAME_MAX)
        return "must be 3 to 63 characters long";
    for (size_t i = 0; i < len; i++)
        if (!is_lower_alnum(n[i]) && n[i] != '.' && n[i] != '-')
            return "may contain only lower-case letters, digits, '.' and '-'";
    if (!is_lower_alnum(n[0]) || !is_lower_alnum(n[len - 1]))
        return "must begin and end with a letter or digit";
    if (strstr(n, ".."))
        return "must not contain two adjacent periods";
    if (looks_like_ipv4(n))
        return "must not be formatted as an IP address";
    if (strncmp(n, "xn--", 4) == 0 || strncmp(n, "sthree-", 7) == 0)
        return "must not start with a reserved prefix";
    if (has_suffix(n, len, "-s3alias") || has_suffix(n, len, "--ol-s3"))
        return "must not end with a reserved suffix";
    return NULL;
}

/* A bucket's own erasure scheme: what the gateways' coder supports (gateway/ec.h). 0+0 is
 * "the gateway's default"; meta refuses anything else a gateway could not write, so a bucket
 * never asks for a layout no gateway can produce. */
#define BUCKET_EC_MAX_K 16
#define BUCKET_EC_MAX_M 8

static int op_create_bucket(struct meta_op *op)
{
    const Lode__BucketRecord *b = op->cmd->create_bucket->bucket;
    MDB_val v;
    if (!b)
        return meta_op_fail(op, LODE_EBADMSG, "create_bucket without a bucket");
    const char *name = S(b->name), *why = bucket_name_problem(name);
    if (why)
        return meta_op_fail(op, LODE_EINVALNAME, "invalid bucket name '%.80s': %s", name, why);
    if ((b->ec_k || b->ec_m) &&
        (b->ec_k < 1 || b->ec_k > BUCKET_EC_MAX_K || b->ec_m > BUCKET_EC_MAX_M))
        return meta_op_fail(op, -EINVAL,
                            "invalid erasure scheme %u+%u for bucket '%s': data chunks must be "
                            "1 to %d and parity chunks 0 to %d (or 0+0 for the gateway's "
                            "default)",
                            b->ec_k, b->ec_m, name, BUCKET_EC_MAX_K, BUCKET_EC_MAX_M);
    int rc = meta_omap_get(op->txn, meta_dbi(op->fsm, META_DBI_BUCKETS), name, strlen(name), &v);
    if (rc == 0)
        return meta_op_fail(op, LODE_EBUCKETEXISTS, "bucket '%s' already exists", name);
    if (rc != -ENOENT)
        return rc;
    Lode__BucketRecord r = *b;
    r.name = (char *)name;
    r.owner = (char *)S(b->owner);
    r.created_ms = op->now;
    return meta_op_put_msg(op, META_DBI_BUCKETS, name, strlen(name), &r.base);
}

/* Upload ids of every pending upload in the bucket (index order), malloc'd. */
static int bucket_upload_ids(struct meta_op *op, const char *name, size_t nlen, char ***ids,
                             size_t *n)
{
    struct meta_omap_iter it;
    size_t cap = 0;
    int rc = meta_omap_iter_open(&it, op->txn, meta_dbi(op->fsm, META_DBI_UPLOAD_IDX));
    *ids = NULL;
    *n = 0;
    if (rc)
        return rc;
    uint8_t start[META_BUCKET_NAME_MAX + 1];
    size_t slen = meta_key_pair(start, name, nlen, "", 0);
    for (rc = meta_omap_seek(&it, start, slen); rc == 0 && it.valid; rc = meta_omap_next(&it)) {
        if (it.klen <= slen || memcmp(it.key, start, slen) != 0)
            break;
        /* bucket NUL key NUL upload_id: the id follows the last NUL. */
        const uint8_t *nul = memrchr(it.key + slen, 0, it.klen - slen);
        if (!nul)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            char **grown = realloc(*ids, cap * sizeof(**ids));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            *ids = grown;
        }
        size_t idlen = it.klen - (size_t)(nul + 1 - it.key);
        char *id = strndup((const char *)nul + 1, idlen);
        if (!id) {
            rc = -ENOMEM;
            break;
        }
        (*ids)[(*n)++] = id;
    }
    meta_omap_iter_close(&it);
    return rc;
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static int op_delete_bucket(struct meta_op *op)
{
    const char *name = S(op->cmd->delete_bucket->name);
    size_t nlen = strlen(name);
    struct meta_omap_iter it;
    MDB_val v;
    char **ids;
    size_t n;

    if (nlen == 0 || nlen > META_BUCKET_NAME_MAX)
        return meta_op_fail(op, LODE_ENOBUCKET, "bucket '%.80s' does not exist", name);
    int rc = meta_omap_get(op->txn, meta_dbi(op->fsm, META_DBI_BUCKETS), name, nlen, &v);
    if (rc == -ENOENT)
        return meta_op_fail(op, LODE_ENOBUCKET, "bucket '%s' does not exist", name);
    if (rc)
        return rc;

    uint8_t start[META_BUCKET_NAME_MAX + 1];
    size_t slen = meta_key_pair(start, name, nlen, "", 0);
    if ((rc = meta_omap_iter_open(&it, op->txn, meta_dbi(op->fsm, META_DBI_OBJECTS))))
        return rc;
    rc = meta_omap_seek(&it, start, slen);
    bool nonempty = rc == 0 && it.valid && it.klen > slen && memcmp(it.key, start, slen) == 0;
    meta_omap_iter_close(&it);
    if (rc)
        return rc;
    if (nonempty)
        return meta_op_fail(op, LODE_EBUCKETNOTEMPTY, "bucket '%s' is not empty", name);

    if ((rc = bucket_upload_ids(op, name, nlen, &ids, &n)))
        goto out;
    for (size_t i = 0; i < n && rc == 0; i++) {
        Lode__UploadRecord *up;
        rc = meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_UPLOADS), ids[i], strlen(ids[i]),
                          &lode__upload_record__descriptor, (void **)&up);
        if (rc == -ENOENT) {
            rc = -EIO; /* the index names an upload that does not exist */
            break;
        }
        if (rc)
            break;
        rc = meta_op_upload_drop(op, up, "abort");
        lode__upload_record__free_unpacked(up, NULL);
    }
    if (rc == 0)
        rc = meta_op_del(op, META_DBI_BUCKETS, name, nlen);
out:
    free_ids(ids, n);
    return rc;
}

/* ---- Users and access keys */

static bool user_name_valid(const char *n)
{
    size_t len = strlen(n);
    if (len < 1 || len > META_USER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("_.@+=-", c)))
            return false;
    }
    return true;
}

static bool token_valid(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len < 1 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return false;
    return true;
}

static int op_create_user(struct meta_op *op)
{
    const Lode__CreateUser *c = op->cmd->create_user;
    const char *name = S(c->name), *ak = S(c->access_key), *sk = S(c->secret_key);
    MDB_val v;
    if (!user_name_valid(name))
        return meta_op_fail(op, LODE_EINVALNAME,
                            "invalid user name '%.80s': use 1 to 64 of A-Z a-z 0-9 _.@+=-", name);
    if (!token_valid(ak, META_ACCESS_KEY_MAX))
        return meta_op_fail(op, -EINVAL, "access key must be 1 to %d printable characters",
                            META_ACCESS_KEY_MAX);
    if (!token_valid(sk, META_SECRET_KEY_MAX))
        return meta_op_fail(op, -EINVAL, "secret key must be 1 to %d printable characters",
                            META_SECRET_KEY_MAX);
    int rc = meta_omap_get(op->txn, meta_dbi(op->fsm, META_DBI_USERS), name, strlen(name), &v);
    if (rc == 0)
        return meta_op_fail(op, LODE_EUSEREXISTS, "user '%s' already exists", name);
    if (rc != -ENOENT)
        return rc;
    rc = meta_omap_get(op->txn, meta_dbi(op->fsm, META_DBI_KEYS), ak, strlen(ak), &v);
    if (rc == 0)
        return meta_op_fail(op, -EEXIST, "access key already in use");
    if (rc != -ENOENT)
        return rc;

    char *keys[1] = {(char *)ak};
    Lode__UserRecord u = LODE__USER_RECORD__INIT;
    u.name = (char *)name;
    u.created_ms = op->now;
    u.n_access_keys = 1;
    u.access_keys = keys;
    Lode__AccessKeyRecord k = LODE__ACCESS_KEY_RECORD__INIT;
    k.access_key = (char *)ak;
    k.secret_key = (char *)sk;
    k.user = (char *)name;
    k.created_ms = op->now;
    if ((rc = meta_op_put_msg(op, META_DBI_USERS, name, strlen(name), &u.base)))
        return rc;
    return meta_op_put_msg(op, META_DBI_KEYS, ak, strlen(ak), &k.base);
}

static int op_delete_user(struct meta_op *op)
{
    const char *name = S(op->cmd->delete_user->name);
    Lode__UserRecord *u;
    if (!*name)
        return meta_op_fail(op, LODE_ENOUSER, "user '' does not exist");
    int rc = meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_USERS), name, strlen(name),
                          &lode__user_record__descriptor, (void **)&u);
    if (rc == -ENOENT)
        return meta_op_fail(op, LODE_ENOUSER, "user '%.80s' does not exist", name);
    if (rc)
        return rc;
    for (size_t i = 0; i < u->n_access_keys && rc == 0; i++)
        if (*u->access_keys[i])
            rc = meta_op_del(op, META_DBI_KEYS, u->access_keys[i], strlen(u->access_keys[i]));
    if (rc == 0)
        rc = meta_op_del(op, META_DBI_USERS, name, strlen(name));
    lode__user_record__free_unpacked(u, NULL);
    return rc;
}

/* ---- GC queue and membership */

static int op_gc_enqueue(struct meta_op *op)
{
    const Lode__GcEnqueue *g = op->cmd->gc_enqueue;
    for (size_t i = 0; i < g->n_chunks; i++)
        if (!g->chunks[i] || g->chunks[i]->chunk_id.len != CMN_ID_SIZE)
            return meta_op_fail(op, LODE_EBADMSG, "chunk %zu: chunk id must be %d bytes", i,
                                CMN_ID_SIZE);
    const char *reason = *S(g->reason) ? g->reason : "requested";
    for (size_t i = 0; i < g->n_chunks; i++) {
        int rc = meta_op_gc_chunk(op, g->chunks[i], reason);
        if (rc)
            return rc;
    }
    return 0;
}

static int op_gc_ack(struct meta_op *op)
{
    const Lode__GcAck *g = op->cmd->gc_ack;
    for (size_t i = 0; i < g->n_seqs; i++) {
        uint8_t key[8];
        meta_key_u64(key, g->seqs[i]);
        int rc = meta_op_del(op, META_DBI_GC, key, sizeof(key));
        if (rc)
            return rc;
    }
    return 0;
}

/* Chunks a node found corrupt, kept per (nid, chunk) until a repair rewrites them: the
 * record a repair reasons about. A repeated report keeps the first detection time. */
static int op_report_corrupt(struct meta_op *op)
{
    const Lode__ReportCorrupt *r = op->cmd->report_corrupt;
    if (r->n_chunks > META_CORRUPT_REPORT_MAX)
        return meta_op_fail(op, LODE_ETOOLARGE, "%zu chunks in one report (at most %d)",
                            r->n_chunks, META_CORRUPT_REPORT_MAX);
    for (size_t i = 0; i < r->n_chunks; i++) {
        const Lode__CorruptChunk *c = r->chunks[i];
        if (!c || c->chunk_id.len != CMN_ID_SIZE)
            return meta_op_fail(op, LODE_EBADMSG, "chunk %zu: chunk id must be %d bytes", i,
                                CMN_ID_SIZE);
        Lode__NodeInfo *n = NULL;
        int rc = node_get(op, c->nid, &n);
        if (rc == -ENOENT)
            return meta_op_fail(op, LODE_ENONODE, "node %u is not registered", c->nid);
        if (rc)
            return rc;
        lode__node_info__free_unpacked(n, NULL);
    }
    for (size_t i = 0; i < r->n_chunks; i++) {
        const Lode__CorruptChunk *c = r->chunks[i];
        uint8_t key[4 + CMN_ID_SIZE];
        cmn_put_u32be(key, c->nid);
        memcpy(key + 4, c->chunk_id.data, CMN_ID_SIZE);
        Lode__CorruptChunk *old = NULL;
        int rc = meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_CORRUPT), key, sizeof(key),
                              &lode__corrupt_chunk__descriptor, (void **)&old);
        if (rc == 0) {
            protobuf_c_message_free_unpacked(&old->base, NULL);
            continue;
        }
        if (rc != -ENOENT)
            return rc;
        Lode__CorruptChunk rec = *c;
        if (rec.detected_ms == 0)
            rec.detected_ms = op->now;
        if ((rc = meta_op_put_msg(op, META_DBI_CORRUPT, key, sizeof(key), &rec.base)))
            return rc;
    }
    return 0;
}

static int op_set_member(struct meta_op *op)
{
    const Lode__SetMember *s = op->cmd->set_member;
    uint8_t key[8];
    if (!s->member)
        return meta_op_fail(op, LODE_EBADMSG, "set_member without a member");
    if (s->member->id == 0)
        return meta_op_fail(op, -EINVAL, "member id 0 is reserved");
    meta_key_u64(key, s->member->id);
    if (s->remove)
        return meta_op_del(op, META_DBI_MEMBERS, key, sizeof(key));
    Lode__MetaMember m = *s->member;
    m.raft_address = (char *)S(m.raft_address);
    m.rpc_address = (char *)S(m.rpc_address);
    return meta_op_put_msg(op, META_DBI_MEMBERS, key, sizeof(key), &m.base);
}

/* ---- Apply driver */

static int dispatch(struct meta_op *op)
{
    const Lode__Command *c = op->cmd;
    if (c->version > 1)
        return meta_op_fail(op, LODE_EVERSION, "command schema version %u is newer than 1",
                            c->version);
#define NEED(field)                                                                       \
    do {                                                                                  \
        if (!c->field)                                                                    \
            return meta_op_fail(op, LODE_EBADMSG, "command " #field " without a body");   \
    } while (0)
    switch (c->op_case) {
    case LODE__COMMAND__OP_REGISTER_NODE: NEED(register_node); return op_register_node(op);
    case LODE__COMMAND__OP_SET_NODE_STATE: NEED(set_node_state); return op_set_node_state(op);
    case LODE__COMMAND__OP_CREATE_BUCKET: NEED(create_bucket); return op_create_bucket(op);
    case LODE__COMMAND__OP_DELETE_BUCKET: NEED(delete_bucket); return op_delete_bucket(op);
    case LODE__COMMAND__OP_PUT_OBJECT: NEED(put_object); return meta_op_put_object(op);
    case LODE__COMMAND__OP_DELETE_OBJECT: NEED(delete_object); return meta_op_delete_object(op);
    case LODE__COMMAND__OP_CREATE_UPLOAD: NEED(create_upload); return meta_op_create_upload(op);
    case LODE__COMMAND__OP_PUT_PART: NEED(put_part); return meta_op_put_part(op);
    case LODE__COMMAND__OP_COMPLETE_UPLOAD:
        NEED(complete_upload);
        return meta_op_complete_upload(op);
    case LODE__COMMAND__OP_ABORT_UPLOAD: NEED(abort_upload); return meta_op_abort_upload(op);
    case LODE__COMMAND__OP_CREATE_USER: NEED(create_user); return op_create_user(op);
    case LODE__COMMAND__OP_DELETE_USER: NEED(delete_user); return op_delete_user(op);
    case LODE__COMMAND__OP_GC_ENQUEUE: NEED(gc_enqueue); return op_gc_enqueue(op);
    case LODE__COMMAND__OP_GC_ACK: NEED(gc_ack); return op_gc_ack(op);
    case LODE__COMMAND__OP_SET_MEMBER: NEED(set_member); return op_set_member(op);
    case LODE__COMMAND__OP_REPORT_CORRUPT: NEED(report_corrupt); return op_report_corrupt(op);
    default:
        return meta_op_fail(op, LODE_EBADMSG, "command without a known operation (%d)",
                            (int)c->op_case);
    }
#undef NEED
}

/* The dedupe record: u64 BE seq, then the packed CommandResult of that seq. */
static int dedupe_store(struct meta_op *op)
{
    const struct meta_fsm_result *res = op->res;
    Lode__CommandResult r = LODE__COMMAND_RESULT__INIT;
    r.status = res->status;
    r.message = (char *)res->message;
    r.version = res->version;
    r.epoch = res->epoch;
    r.nid = res->nid;
    r.upload_id = (char *)res->upload_id;
    struct cmn_buf *b = &op->fsm->pack;
    size_t n = lode__command_result__get_packed_size(&r);
    cmn_buf_reset(b);
    if (cmn_buf_reserve(b, 8 + n))
        return -ENOMEM;
    cmn_buf_append_u64be(b, op->cmd->seq);
    b->len += lode__command_result__pack(&r, b->data + b->len);
    return meta_omap_put(op->txn, meta_dbi(op->fsm, META_DBI_DEDUPE), op->cmd->client_id.data,
                         op->cmd->client_id.len, b->data, b->len, &op->fsm->scratch);
}

/* Returns 1 when the command was seen before (res filled), 0 when it must be applied. */
static int dedupe_check(struct meta_op *op)
{
    MDB_val v;
    int rc = meta_omap_get(op->txn, meta_dbi(op->fsm, META_DBI_DEDUPE), op->cmd->client_id.data,
                           op->cmd->client_id.len, &v);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size < 8)
        return -EIO;
    uint64_t last = cmn_get_u64be(v.mv_data);
    if (op->cmd->seq > last)
        return 0;
    if (op->cmd->seq < last) {
        meta_op_fail(op, LODE_EPRECONDITION,
                     "stale retry: seq %llu is older than this client's last applied seq %llu",
                     (unsigned long long)op->cmd->seq, (unsigned long long)last);
        return 1;
    }
    Lode__CommandResult *r =
        lode__command_result__unpack(NULL, v.mv_size - 8, (const uint8_t *)v.mv_data + 8);
    if (!r)
        return -EIO;
    struct meta_fsm_result *res = op->res;
    res->status = r->status;
    snprintf(res->message, sizeof(res->message), "%s", S(r->message));
    res->version = r->version;
    res->epoch = r->epoch;
    res->nid = r->nid;
    snprintf(res->upload_id, sizeof(res->upload_id), "%s", S(r->upload_id));
    lode__command_result__free_unpacked(r, NULL);
    return 1;
}

static int apply_once(struct meta_fsm *fsm, const Lode__Command *cmd,
                      struct meta_fsm_result *res, bool dedupe)
{
    struct meta_op op = {.fsm = fsm, .cmd = cmd, .res = res, .now = cmd->now_ms};
    int rc;

    memset(res, 0, sizeof(*res));
    if ((rc = meta_store_write_begin(&fsm->st, &op.txn)))
        return rc;
    if (dedupe) {
        rc = dedupe_check(&op);
        if (rc) {
            mdb_txn_abort(op.txn);
            return rc < 0 ? rc : 0;
        }
    }
    if ((rc = dispatch(&op)))
        goto abort;
    if (res->status != 0) {
        /* A domain failure leaves no trace but its dedupe record: drop whatever the
         * handler wrote before it found the problem. */
        mdb_txn_abort(op.txn);
        op.txn = NULL;
        if (!dedupe)
            return 0;
        if ((rc = meta_store_write_begin(&fsm->st, &op.txn)))
            return rc;
    }
    if (dedupe && (rc = dedupe_store(&op)))
        goto abort;
    return meta_store_errno(mdb_txn_commit(op.txn));
abort:
    mdb_txn_abort(op.txn);
    return rc;
}

int meta_fsm_apply(struct meta_fsm *fsm, const Lode__Command *cmd, struct meta_fsm_result *res)
{
    memset(res, 0, sizeof(*res));
    bool dedupe = cmd->client_id.len != 0;
    if (dedupe && cmd->client_id.len != META_CLIENT_ID_SIZE) {
        res->status = LODE_EBADMSG;
        snprintf(res->message, sizeof(res->message), "client id must be %d bytes, not %zu",
                 META_CLIENT_ID_SIZE, cmd->client_id.len);
        return 0;
    }
    int rc = apply_once(fsm, cmd, res, dedupe);
    if (rc == LODE_EMETAFULL) {
        /* The transaction was aborted; grow with nothing open and run it again. */
        rc = meta_store_grow(&fsm->st);
        if (rc == 0)
            rc = apply_once(fsm, cmd, res, dedupe);
    }
    if (rc) {
        memset(res, 0, sizeof(*res));
        res->status = rc;
        snprintf(res->message, sizeof(res->message), "metadata store: %s", lode_strerror(rc));
        LOG_ERROR("meta-fsm", "apply failed: %s", lode_strerror(rc));
    }
    return rc;
}

size_t meta_cmd_entry_size(const Lode__Command *cmd)
{
    return 1 + lode__command__get_packed_size(cmd);
}

void meta_cmd_entry_pack(const Lode__Command *cmd, uint8_t *out)
{
    out[0] = META_COMMAND_FORMAT;
    lode__command__pack(cmd, out + 1);
}

int meta_fsm_apply_entry(struct meta_fsm *fsm, const void *buf, size_t len,
                         struct meta_fsm_result *res)
{
    const uint8_t *p = buf;
    memset(res, 0, sizeof(*res));
    if (len < 1) {
        res->status = LODE_EBADMSG;
        snprintf(res->message, sizeof(res->message), "empty raft entry");
        return 0;
    }
    if (p[0] != META_COMMAND_FORMAT) {
        res->status = LODE_EBADMSG;
        snprintf(res->message, sizeof(res->message), "unknown command format %u (expected %d)",
                 p[0], META_COMMAND_FORMAT);
        return 0;
    }
    Lode__Command *cmd = lode__command__unpack(NULL, len - 1, p + 1);
    if (!cmd) {
        res->status = LODE_EBADMSG;
        snprintf(res->message, sizeof(res->message), "undecodable command (%zu bytes)", len - 1);
        return 0;
    }
    int rc = meta_fsm_apply(fsm, cmd, res);
    lode__command__free_unpacked(cmd, NULL);
    return rc;
}
