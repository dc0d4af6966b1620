/* The metadata state machine: every command's effects and failure codes, dedupe, GC,
 * snapshots, malformed entries and map growth. Multipart uploads are in
 * test_fsm_multipart.c. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "meta/fsm.h"
#include "tests/tap.h"
#include "tests/unit/meta/fsm_helpers.h"

/* ---- nodes */

static int register_node(const uint8_t *uuid, size_t uuid_len, const char *addr, const char *fd,
                         uint64_t cap, struct meta_fsm_result *r)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__RegisterNode rn = LODE__REGISTER_NODE__INIT;
    Lode__NodeInfo n = LODE__NODE_INFO__INIT;
    n.uuid.data = (uint8_t *)uuid;
    n.uuid.len = uuid_len;
    n.address = (char *)addr;
    n.failure_domain = (char *)fd;
    n.capacity_bytes = cap;
    rn.node = &n;
    c.op_case = LODE__COMMAND__OP_REGISTER_NODE;
    c.register_node = &rn;
    apply(&c, r);
    return r->status;
}

static int set_state(uint32_t nid, Lode__NodeState st, uint64_t cap, struct meta_fsm_result *r)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__SetNodeState s = LODE__SET_NODE_STATE__INIT;
    s.nid = nid;
    s.state = st;
    s.capacity_bytes = cap;
    c.op_case = LODE__COMMAND__OP_SET_NODE_STATE;
    c.set_node_state = &s;
    apply(&c, r);
    return r->status;
}

static Lode__NodeInfo *get_node(uint32_t nid)
{
    struct cmn_buf b = {0};
    Lode__NodeInfo *n = NULL;
    if (meta_fsm_node_get(fsm, nid, &b) == 0)
        n = lode__node_info__unpack(NULL, b.len, b.data);
    cmn_buf_free(&b);
    return n;
}

/* The fan-out transports a node advertises travel with its record and move the epoch. */
static void test_node_transports(void)
{
    uint8_t u[16] = {7};
    struct meta_fsm_result r;
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__RegisterNode rn = LODE__REGISTER_NODE__INIT;
    Lode__NodeInfo n = LODE__NODE_INFO__INIT;
    n.uuid.data = u;
    n.uuid.len = 16;
    n.address = (char *)"h7:7000";
    n.failure_domain = (char *)"rack7";
    n.data_address = (char *)"h7:7600";
    n.rdma_address = (char *)"10.0.0.7:7700";
    n.dc = true;
    rn.node = &n;
    c.op_case = LODE__COMMAND__OP_REGISTER_NODE;
    c.register_node = &rn;
    apply(&c, &r);
    is_int(r.status, 0, "transports: register a node with tcp, rc and dc");
    uint32_t nid = r.nid;
    uint64_t epoch = r.epoch;
    Lode__NodeInfo *got = get_node(nid);
    ok(got && strcmp(got->data_address, "h7:7600") == 0 &&
           strcmp(got->rdma_address, "10.0.0.7:7700") == 0 && got->dc,
       "transports: data and rdma addresses and the dc flag are stored");
    lode__node_info__free_unpacked(got, NULL);
    n.dc = false;
    apply(&c, &r);
    got = get_node(nid);
    ok(r.status == 0 && got && !got->dc && r.epoch == epoch + 1,
       "transports: dc dropped at re-registration: stored, the epoch moves");
    lode__node_info__free_unpacked(got, NULL);
    apply(&c, &r);
    is_int(r.epoch, epoch + 1, "transports: unchanged re-registration keeps the epoch");
}

static void test_nodes(void)
{
    uint8_t u1[16] = {1}, u2[16] = {2};
    struct meta_fsm_result r;

    is_int(meta_fsm_epoch(fsm), 0, "empty map: epoch 0");
    is_int(register_node(u1, 15, "h1:7000", "rack1", 100, &r), LODE_EBADMSG,
           "register: 15-byte uuid rejected");
    is_int(register_node(u1, 16, "", "rack1", 100, &r), -EINVAL, "register: address required");
    is_int(register_node(u1, 16, "h1:7000", "", 100, &r), -EINVAL,
           "register: failure domain required");
    ok(strstr(r.message, "failure domain") != NULL, "message names the missing field: %s",
       r.message);
    is_int(meta_fsm_epoch(fsm), 0, "failed registrations leave the epoch");

    is_int(register_node(u1, 16, "h1:7000", "rack1", 100, &r), 0, "register node 1");
    is_int(r.nid, 1, "first nid is 1");
    is_int(r.epoch, 1, "epoch 1 after first registration");
    is_int(register_node(u2, 16, "h2:7000", "rack2", 200, &r), 0, "register node 2");
    is_int(r.nid, 2, "second nid is 2");
    is_int(r.epoch, 2, "epoch 2");
    now_ms += 1000;
    is_int(register_node(u1, 16, "h1:7000", "rack1", 150, &r), 0, "re-register unchanged");
    is_int(r.nid, 1, "same uuid keeps its nid");
    is_int(r.epoch, 2, "no map change, no epoch change");
    Lode__NodeInfo *n = get_node(1);
    ok(n && n->capacity_bytes == 150 && n->last_heartbeat_ms == now_ms &&
           n->registered_ms == now_ms - 1000,
       "re-registration updates capacity and heartbeat, keeps registered_ms");
    lode__node_info__free_unpacked(n, NULL);
    is_int(register_node(u1, 16, "h1b:7000", "rack1", 150, &r), 0, "re-register, new address");
    is_int(r.epoch, 3, "address change bumps the epoch");

    is_int(set_state(9, LODE__NODE_STATE__NODE_DOWN, 0, &r), LODE_ENONODE,
           "set state: unknown nid");
    is_int(set_state(1, 42, 0, &r), -EINVAL, "set state: invalid state");
    is_int(set_state(1, LODE__NODE_STATE__NODE_DRAINING, 999, &r), 0, "drain node 1");
    is_int(r.epoch, 4, "state change bumps the epoch");
    is_int(set_state(1, LODE__NODE_STATE__NODE_DRAINING, 0, &r), 0, "drain again");
    is_int(r.epoch, 4, "same state: epoch unchanged");
    is_int(register_node(u1, 16, "h1b:7000", "rack1", 150, &r), 0, "draining node registers");
    n = get_node(1);
    ok(n && n->state == LODE__NODE_STATE__NODE_DRAINING, "registration keeps DRAINING");
    lode__node_info__free_unpacked(n, NULL);
    is_int(r.epoch, 4, "and does not change the epoch");
    is_int(set_state(2, LODE__NODE_STATE__NODE_REMOVED, 0, &r), 0, "remove node 2");
    is_int(r.epoch, 5, "epoch 5");
    is_int(set_state(2, LODE__NODE_STATE__NODE_UP, 0, &r), LODE_ESTATE, "removed is terminal");
    is_int(register_node(u2, 16, "h2:7000", "rack2", 200, &r), LODE_ESTATE,
           "removed node cannot re-register");
    is_int(meta_fsm_epoch(fsm), 5, "epoch read back");

    struct cmn_buf b = {0};
    is_int(meta_fsm_cluster_map(fsm, &b), 0, "cluster map");
    Lode__ClusterMap *m = lode__cluster_map__unpack(NULL, b.len, b.data);
    ok(m && m->epoch == 5 && m->n_nodes == 2 && m->nodes[0]->nid == 1 && m->nodes[1]->nid == 2 &&
           m->nodes[0]->capacity_bytes == 150 && strcmp(m->nodes[0]->address, "h1b:7000") == 0 &&
           m->nodes[1]->state == LODE__NODE_STATE__NODE_REMOVED,
       "cluster map holds both nodes in nid order with their state");
    lode__cluster_map__free_unpacked(m, NULL);
    is_int(meta_fsm_node_get(fsm, 77, &b), LODE_ENONODE, "node_get unknown nid");
    cmn_buf_free(&b);
}

/* ---- buckets */

static void test_buckets(void)
{
    static const char *bad[] = {"ab", "Abc", "a_b", "-abc", "abc-", "a..b", "192.168.5.4",
                                "xn--abc", "abc-s3alias", "abc--ol-s3", "sthree-x", "ab c",
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        is_int(create_bucket(bad[i], "alice"), LODE_EINVALNAME, "bucket name '%s' rejected",
               bad[i]);
    static const char *good[] = {"abc", "my.bucket-1", "192.168.5", "1bucket2",
                                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        is_int(create_bucket(good[i], i % 2 ? "bob" : "alice"), 0, "bucket name '%s' accepted",
               good[i]);
    is_int(create_bucket("abc", "bob"), LODE_EBUCKETEXISTS, "existing bucket");

    struct cmn_buf b = {0};
    struct cmn_err err;
    is_int(meta_fsm_bucket_get(fsm, "abc", &b, &err), 0, "bucket_get");
    Lode__BucketRecord *br = lode__bucket_record__unpack(NULL, b.len, b.data);
    ok(br && strcmp(br->owner, "alice") == 0 && br->created_ms == now_ms,
       "bucket record keeps owner and the command's time");
    lode__bucket_record__free_unpacked(br, NULL);
    is_int(meta_fsm_bucket_get(fsm, "nope", &b, &err), LODE_ENOBUCKET, "bucket_get missing");
    is_int(meta_fsm_bucket_list(fsm, "bob", &b), 0, "bucket_list by owner");
    Lode__BucketListResponse *bl = lode__bucket_list_response__unpack(NULL, b.len, b.data);
    ok(bl && bl->n_buckets == 2 && strcmp(bl->buckets[0]->name, "1bucket2") == 0 &&
           strcmp(bl->buckets[1]->name, "my.bucket-1") == 0,
       "bob owns two buckets, listed in name order");
    lode__bucket_list_response__free_unpacked(bl, NULL);
    is_int(meta_fsm_bucket_list(fsm, NULL, &b), 0, "bucket_list all");
    bl = lode__bucket_list_response__unpack(NULL, b.len, b.data);
    ok(bl && bl->n_buckets == 5, "five buckets in all");
    lode__bucket_list_response__free_unpacked(bl, NULL);
    cmn_buf_free(&b);

    is_int(delete_bucket("nope"), LODE_ENOBUCKET, "delete missing bucket");
    is_int(put_object("abc", "k", 1, NULL, 0, false, NULL), 0, "object in abc");
    is_int(delete_bucket("abc"), LODE_EBUCKETNOTEMPTY, "delete non-empty bucket");
    is_int(delete_object("abc", "k", 0), 0, "delete the object");
    is_int(delete_bucket("abc"), 0, "delete the now empty bucket");
    is_int(meta_fsm_bucket_get(fsm, "abc", &b, &err), LODE_ENOBUCKET, "bucket gone");
    /* A bucket whose name is a prefix of another's must not see the other's objects. */
    is_int(create_bucket("abc", "alice"), 0, "recreate abc");
    is_int(create_bucket("abcd", "alice"), 0, "create abcd");
    is_int(put_object("abcd", "k", 1, NULL, 0, false, NULL), 0, "object in abcd");
    is_int(delete_bucket("abc"), 0, "abc is empty although abcd is not");
    cmn_buf_free(&b);
}

/* ---- objects */

static void test_objects(void)
{
    struct lay l1, l2, l3;
    uint64_t v1, v2, v3;
    int code;
    char key1024[1025], key1025[1026];

    is_int(create_bucket("objs", "alice"), 0, "bucket objs");
    is_int(put_object("nobucket", "k", 1, NULL, 0, false, NULL), LODE_ENOBUCKET,
           "put into missing bucket");
    is_int(put_object("objs", "", 1, NULL, 0, false, NULL), LODE_EINVALNAME, "empty key");
    memset(key1024, 'x', 1024);
    key1024[1024] = 0;
    memset(key1025, 'x', 1025);
    key1025[1025] = 0;
    is_int(put_object("objs", key1025, 1, NULL, 0, false, NULL), LODE_EINVALNAME,
           "1025-byte key rejected");
    is_int(put_object("objs", key1024, 7, NULL, 0, false, &v1), 0, "1024-byte key accepted");
    Lode__ObjectRecord *o = get_object(fsm, "objs", key1024, &code);
    ok(o && o->size == 7 && o->version == v1, "1024-byte key reads back");
    lode__object_record__free_unpacked(o, NULL);
    is_int(delete_object("objs", key1024, 0), 0, "1024-byte key deleted");
    o = get_object(fsm, "objs", key1024, &code);
    ok(!o && code == LODE_ENOKEY, "and gone");

    is_int(put_object("objs", "a", 10, lay_init(&l1, 101, 6), 0, false, &v1), 0, "put a");
    o = get_object(fsm, "objs", "a", &code);
    ok(o && o->version == v1 && o->mtime_ms == now_ms && o->size == 10 &&
           o->layout && o->layout->n_stripes == 1 && o->layout->stripes[0]->n_chunks == 6,
       "record stored with version, mtime from the command, layout");
    lode__object_record__free_unpacked(o, NULL);
    is_int(put_object("objs", "a", 10, NULL, 0, true, NULL), LODE_EPRECONDITION,
           "if_absent on an existing object");
    is_int(put_object("objs", "b", 10, NULL, 5, false, NULL), LODE_EPRECONDITION,
           "if_version on a missing object");
    is_int(put_object("objs", "a", 10, NULL, v1 + 100, false, NULL), LODE_EPRECONDITION,
           "if_version mismatch");

    uint64_t gc0 = gc_last_seq();
    /* Two writers read version v1 and both try to replace it: exactly one wins. */
    int w1 = put_object("objs", "a", 20, lay_init(&l2, 102, 6), v1, false, &v2);
    int w2 = put_object("objs", "a", 30, lay_init(&l3, 103, 6), v1, false, &v3);
    is_int(w1, 0, "first conditional writer wins");
    is_int(w2, LODE_EPRECONDITION, "second conditional writer loses");
    ok(v2 > v1, "versions grow (%llu > %llu)", (unsigned long long)v2, (unsigned long long)v1);
    o = get_object(fsm, "objs", "a", &code);
    ok(o && o->size == 20 && o->version == v2, "the winner's record is current");
    lode__object_record__free_unpacked(o, NULL);
    is_int(gc_count(gc0, 101, "overwrite"), 6, "overwrite sends the old layout's 6 chunks to GC");
    is_int(gc_count(gc0, 103, "overwrite"), 0, "the loser's chunks are not in GC");
    is_int(gc_total(gc0), 6, "nothing else enqueued");

    is_int(put_object("objs", "a", 40, NULL, 0, false, &v3), 0, "unconditional overwrite");
    is_int(gc_count(gc0, 102, "overwrite"), 6, "second overwrite GCs the winner's chunks");
    is_int(delete_object("objs", "zzz", 0), LODE_ENOKEY, "delete missing key");
    is_int(delete_object("nobucket", "a", 0), LODE_ENOBUCKET, "delete in missing bucket");
    is_int(delete_object("objs", "a", v2), LODE_EPRECONDITION, "delete with stale version");
    /* A short last stripe leaves data chunks that were never stored: nid 0, no id. */
    Lode__Layout *l4 = lay_init(&l1, 104, 3);
    l1.c[1].nid = 0;
    l1.c[1].chunk_id.len = 0;
    is_int(put_object("objs", "a", 40, l4, v3, false, &v3), 0, "conditional overwrite");
    uint64_t gc1 = gc_last_seq();
    is_int(delete_object("objs", "a", v3), 0, "delete with current version");
    is_int(gc_count(gc1, 104, "delete"), 2, "delete sends its stored chunks to GC");
    is_int(gc_total(gc1), 2, "and not the one that was never stored (nid 0)");
    o = get_object(fsm, "objs", "a", &code);
    ok(!o && code == LODE_ENOKEY, "deleted object is gone");
    o = get_object(fsm, "nobucket", "a", &code);
    ok(!o && code == LODE_ENOBUCKET, "object_get in a missing bucket");
}

/* ---- users */

static int create_user(const char *name, const char *ak, const char *sk)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CreateUser u = LODE__CREATE_USER__INIT;
    struct meta_fsm_result r;
    u.name = (char *)name;
    u.access_key = (char *)ak;
    u.secret_key = (char *)sk;
    c.op_case = LODE__COMMAND__OP_CREATE_USER;
    c.create_user = &u;
    apply(&c, &r);
    return r.status;
}

static int delete_user(const char *name)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__DeleteUser u = LODE__DELETE_USER__INIT;
    struct meta_fsm_result r;
    u.name = (char *)name;
    c.op_case = LODE__COMMAND__OP_DELETE_USER;
    c.delete_user = &u;
    apply(&c, &r);
    return r.status;
}

static void test_users(void)
{
    struct cmn_buf b = {0};
    is_int(create_user("", "AK1", "s1"), LODE_EINVALNAME, "empty user name");
    is_int(create_user("bad name", "AK1", "s1"), LODE_EINVALNAME, "user name with a space");
    is_int(create_user("a/b", "AK1", "s1"), LODE_EINVALNAME, "user name with a slash");
    is_int(create_user("alice", "", "s1"), -EINVAL, "missing access key");
    is_int(create_user("alice", "AK1", ""), -EINVAL, "missing secret key");
    is_int(create_user("alice.smith@example+1=x_y-z", "AK1", "s1"), 0, "create user");
    is_int(create_user("alice.smith@example+1=x_y-z", "AK2", "s2"), LODE_EUSEREXISTS,
           "existing user");
    is_int(create_user("bob", "AK1", "s2"), -EEXIST, "access key already in use");
    is_int(create_user("bob", "AK2", "s2"), 0, "create bob");

    is_int(meta_fsm_access_key_get(fsm, "AK1", &b, NULL), 0, "access key lookup");
    Lode__AccessKeyRecord *k = lode__access_key_record__unpack(NULL, b.len, b.data);
    ok(k && strcmp(k->secret_key, "s1") == 0 &&
           strcmp(k->user, "alice.smith@example+1=x_y-z") == 0 && k->created_ms == now_ms,
       "access key record holds secret, user and time");
    lode__access_key_record__free_unpacked(k, NULL);
    is_int(meta_fsm_access_key_get(fsm, "nope", &b, NULL), LODE_ENOACCESSKEY,
           "unknown access key");
    is_int(meta_fsm_user_list(fsm, &b), 0, "user list");
    Lode__UserListResponse *ul = lode__user_list_response__unpack(NULL, b.len, b.data);
    ok(ul && ul->n_users == 2 && strcmp(ul->users[1]->name, "bob") == 0 &&
           ul->users[1]->n_access_keys == 1 && strcmp(ul->users[1]->access_keys[0], "AK2") == 0,
       "users listed with their access keys");
    ok(ul && memmem(b.data, b.len, "s2", 2) == NULL, "user list carries no secret");
    lode__user_list_response__free_unpacked(ul, NULL);

    is_int(delete_user("carol"), LODE_ENOUSER, "delete missing user");
    is_int(delete_user("bob"), 0, "delete bob");
    is_int(meta_fsm_access_key_get(fsm, "AK2", &b, NULL), LODE_ENOACCESSKEY,
           "deleting a user removes its keys");
    is_int(create_user("bob", "AK2", "s3"), 0, "name and key can be reused after delete");
    cmn_buf_free(&b);
}

/* ---- GC and members */

static void test_gc_members(void)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__GcEnqueue g = LODE__GC_ENQUEUE__INIT;
    struct meta_fsm_result r;
    struct lay l;
    lay_init(&l, 301, 3);
    uint64_t gc0 = gc_last_seq();
    g.n_chunks = 3;
    g.chunks = l.cp;
    g.reason = "failed-put";
    c.op_case = LODE__COMMAND__OP_GC_ENQUEUE;
    c.gc_enqueue = &g;
    apply(&c, &r);
    is_int(r.status, 0, "gc enqueue");
    Lode__GcListResponse *gl = gc_list(gc0);
    ok(gl->n_entries == 3 && gl->entries[0]->seq == gc0 + 1 && gl->entries[2]->seq == gc0 + 3 &&
           strcmp(gl->entries[1]->reason, "failed-put") == 0 &&
           gl->entries[1]->enqueued_ms == now_ms && gl->entries[1]->chunk->nid == 2,
       "entries appended with consecutive seqs");
    lode__gc_list_response__free_unpacked(gl, NULL);

    l.c[1].chunk_id.len = 5;
    apply(&c, &r);
    is_int(r.status, LODE_EBADMSG, "chunk id of 5 bytes rejected");
    is_int(gc_total(gc0), 3, "and nothing enqueued");

    uint64_t seqs[] = {gc0 + 1, gc0 + 3, 999999};
    Lode__Command a = LODE__COMMAND__INIT;
    Lode__GcAck ack = LODE__GC_ACK__INIT;
    ack.n_seqs = 3;
    ack.seqs = seqs;
    a.op_case = LODE__COMMAND__OP_GC_ACK;
    a.gc_ack = &ack;
    apply(&a, &r);
    is_int(r.status, 0, "gc ack (one unknown seq ignored)");
    gl = gc_list(gc0);
    ok(gl->n_entries == 1 && gl->entries[0]->seq == gc0 + 2, "only the unacked entry remains");
    lode__gc_list_response__free_unpacked(gl, NULL);
    struct cmn_buf b = {0};
    is_int(meta_fsm_gc_list(fsm, 0, 1, &b), 0, "gc list with max 1");
    gl = lode__gc_list_response__unpack(NULL, b.len, b.data);
    ok(gl && gl->n_entries == 1, "max is honoured");
    lode__gc_list_response__free_unpacked(gl, NULL);

    Lode__Command s = LODE__COMMAND__INIT;
    Lode__SetMember sm = LODE__SET_MEMBER__INIT;
    Lode__MetaMember m = LODE__META_MEMBER__INIT;
    m.id = 0;
    m.raft_address = "10.0.0.1:7001";
    m.rpc_address = "10.0.0.1:7002";
    sm.member = &m;
    s.op_case = LODE__COMMAND__OP_SET_MEMBER;
    s.set_member = &sm;
    apply(&s, &r);
    is_int(r.status, -EINVAL, "member id 0 rejected");
    for (uint64_t id = 3; id >= 1; id--) {
        m.id = id;
        apply(&s, &r);
        is_int(r.status, 0, "set member %llu", (unsigned long long)id);
    }
    m.id = 2;
    m.rpc_address = "10.0.0.9:7002";
    apply(&s, &r);
    is_int(meta_fsm_member_get(fsm, 2, &b), 0, "member get");
    Lode__MetaMember *mm = lode__meta_member__unpack(NULL, b.len, b.data);
    ok(mm && strcmp(mm->rpc_address, "10.0.0.9:7002") == 0, "member updated in place");
    lode__meta_member__free_unpacked(mm, NULL);
    sm.remove = true;
    m.id = 3;
    apply(&s, &r);
    is_int(r.status, 0, "remove member 3");
    is_int(meta_fsm_member_list(fsm, &b), 0, "member list");
    Lode__MetaStatusResponse *ms = lode__meta_status_response__unpack(NULL, b.len, b.data);
    ok(ms && ms->n_voters == 2 && ms->voters[0]->id == 1 && ms->voters[1]->id == 2,
       "members 1 and 2 remain, in id order");
    lode__meta_status_response__free_unpacked(ms, NULL);
    is_int(meta_fsm_member_get(fsm, 3, &b), -ENOENT, "removed member is gone");
    cmn_buf_free(&b);
}

/* ---- dedupe */

static int dedupe_put(const uint8_t *cid, size_t cid_len, uint64_t seq, const char *key,
                      struct meta_fsm_result *r)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__PutObject p = LODE__PUT_OBJECT__INIT;
    Lode__ObjectRecord o = LODE__OBJECT_RECORD__INIT;
    o.size = seq;
    p.bucket = "ddb";
    p.key = (char *)key;
    p.record = &o;
    p.if_absent = true;
    c.client_id.data = (uint8_t *)cid;
    c.client_id.len = cid_len;
    c.seq = seq;
    c.op_case = LODE__COMMAND__OP_PUT_OBJECT;
    c.put_object = &p;
    apply(&c, r);
    return r->status;
}

static void test_dedupe(void)
{
    uint8_t cid[16] = {0xc1, 0x1e, 0x47}, cid2[16] = {0xc2};
    uint8_t d1[32], d2[32];
    struct meta_fsm_result r, r2;
    int code;

    is_int(create_bucket("ddb", "alice"), 0, "bucket ddb");
    is_int(dedupe_put(cid, 16, 5, "k", &r), 0, "client seq 5 applies");
    uint64_t v5 = r.version;
    digest(fsm, d1);
    now_ms += 10;
    is_int(dedupe_put(cid, 16, 5, "k", &r2), 0,
           "the same (client, seq) again returns the first result, not a precondition failure");
    is_int(r2.version, v5, "with the first version");
    digest(fsm, d2);
    ok(memcmp(d1, d2, 32) == 0, "and changes nothing");
    Lode__ObjectRecord *o = get_object(fsm, "ddb", "k", &code);
    ok(o && o->version == v5 && o->size == 5, "object is the first application's");
    lode__object_record__free_unpacked(o, NULL);

    is_int(dedupe_put(cid, 16, 4, "other", &r), LODE_EPRECONDITION, "older seq is refused");
    ok(strstr(r.message, "stale retry") != NULL, "as a stale retry: %s", r.message);
    o = get_object(fsm, "ddb", "other", &code);
    ok(!o, "and not applied");

    is_int(dedupe_put(cid, 16, 6, "k", &r), LODE_EPRECONDITION, "seq 6 applies and fails");
    char first_msg[256];
    snprintf(first_msg, sizeof(first_msg), "%s", r.message);
    is_int(dedupe_put(cid, 16, 6, "k", &r2), LODE_EPRECONDITION, "its retry returns the failure");
    is_str(r2.message, first_msg, "with the same message");
    is_int(dedupe_put(cid, 16, 5, "k", &r), LODE_EPRECONDITION,
           "only the latest result is kept: seq 5 is now stale");
    ok(strstr(r.message, "stale retry") != NULL, "stale: %s", r.message);

    is_int(dedupe_put(cid2, 16, 1, "k2", &r), 0, "another client has its own sequence");
    is_int(dedupe_put(cid, 5, 7, "k3", &r), LODE_EBADMSG, "5-byte client id rejected");
    is_int(dedupe_put(NULL, 0, 0, "k4", &r), 0, "no client id: no dedupe");
    is_int(dedupe_put(NULL, 0, 0, "k4", &r), LODE_EPRECONDITION,
           "and a repeat is applied again (if_absent fails)");
}

/* ---- malformed entries and versions */

static void test_malformed(void)
{
    struct meta_fsm_result r;
    uint8_t d1[32], d2[32];
    uint8_t garbage[] = {1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x22};
    uint8_t wrongfmt[] = {9, 0x08, 0x01};

    digest(fsm, d1);
    is_int(meta_fsm_apply_entry(fsm, garbage, 0, &r), 0, "empty entry: not an error");
    is_int(r.status, LODE_EBADMSG, "but an EBADMSG result");
    is_int(meta_fsm_apply_entry(fsm, wrongfmt, sizeof(wrongfmt), &r), 0, "unknown format byte");
    is_int(r.status, LODE_EBADMSG, "EBADMSG result");
    is_int(meta_fsm_apply_entry(fsm, garbage, sizeof(garbage), &r), 0, "garbage command");
    is_int(r.status, LODE_EBADMSG, "EBADMSG result");
    for (size_t n = 1; n < sizeof(garbage); n++) {
        meta_fsm_apply_entry(fsm, garbage, n, &r);
        if (r.status == 0)
            break;
    }
    ok(r.status != 0, "no prefix of the garbage applies");

    Lode__Command c = LODE__COMMAND__INIT;
    apply(&c, &r);
    is_int(r.status, LODE_EBADMSG, "command without an operation");
    Lode__DeleteBucket d = LODE__DELETE_BUCKET__INIT;
    d.name = "objs";
    c.op_case = LODE__COMMAND__OP_DELETE_BUCKET;
    c.delete_bucket = &d;
    c.version = 2;
    apply(&c, &r);
    is_int(r.status, LODE_EVERSION, "newer command schema refused");
    digest(fsm, d2);
    ok(memcmp(d1, d2, 32) == 0, "malformed entries change nothing");

    /* A domain failure in the middle of a command leaves no partial write. */
    struct lay l;
    is_int(put_object("objs", "keep", 1, lay_init(&l, 401, 2), 0, false, NULL), 0,
           "object for the no-op check");
    digest(fsm, d1);
    is_int(put_object("objs", "keep", 1, NULL, 12345, false, NULL), LODE_EPRECONDITION,
           "failed conditional put");
    digest(fsm, d2);
    ok(memcmp(d1, d2, 32) == 0, "a failed command changes nothing (no version consumed)");
}

/* ---- snapshots */

static void test_snapshot(void)
{
    struct cmn_buf snap = {0}, b = {0};
    struct cmn_err err;
    uint8_t d1[32], d2[32], d3[32];
    char key700[701];
    int code;

    /* Long keys share a bundle; make sure those travel too. */
    memset(key700, 'q', 700);
    key700[700] = 0;
    is_int(put_object("objs", key700, 1, NULL, 0, false, NULL), 0, "700-byte key");
    key700[650] = 'r';
    is_int(put_object("objs", key700, 2, NULL, 0, false, NULL), 0, "another in the same bundle");

    is_int(meta_fsm_snapshot(fsm, &snap), 0, "snapshot");
    digest(fsm, d1);
    struct meta_fsm *f2 = open_at("restored", 0);
    is_int(meta_fsm_restore(f2, snap.data, snap.len, &err), 0, "restore into a fresh fsm");
    digest(f2, d2);
    ok(memcmp(d1, d2, 32) == 0, "restored state has the same digest");
    Lode__ObjectRecord *o = get_object(f2, "objs", key700, &code);
    ok(o && o->size == 2, "long key readable after restore");
    lode__object_record__free_unpacked(o, NULL);
    is_int(meta_fsm_epoch(f2), meta_fsm_epoch(fsm), "epoch restored");

    /* Counters travel: the next command gets the same result on both replicas. */
    struct meta_fsm_result r1, r2;
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__PutObject p = LODE__PUT_OBJECT__INIT;
    Lode__ObjectRecord rec = LODE__OBJECT_RECORD__INIT;
    p.bucket = "objs";
    p.key = "after-restore";
    p.record = &rec;
    c.op_case = LODE__COMMAND__OP_PUT_OBJECT;
    c.put_object = &p;
    apply_on(fsm, &c, &r1);
    apply_on(f2, &c, &r2);
    ok(r1.status == 0 && r2.status == 0 && r1.version == r2.version,
       "both replicas assign version %llu", (unsigned long long)r1.version);
    digest(fsm, d1);
    digest(f2, d2);
    ok(memcmp(d1, d2, 32) == 0, "and stay equal");
    is_int(meta_fsm_snapshot(f2, &b), 0, "snapshot of the restored fsm");
    is_int(meta_fsm_snapshot(fsm, &snap), 0, "snapshot of the original");
    ok(b.len == snap.len && memcmp(b.data, snap.data, b.len) == 0,
       "snapshots of equal states are byte-identical");

    /* Corrupt and truncated snapshots are rejected without touching the state. */
    digest(f2, d2);
    snap.data[snap.len / 2] ^= 0x40;
    is_int(meta_fsm_restore(f2, snap.data, snap.len, &err), LODE_ECORRUPT,
           "flipped byte: checksum mismatch");
    snap.data[snap.len / 2] ^= 0x40;
    is_int(meta_fsm_restore(f2, snap.data, snap.len - 1, &err) != 0, 1, "truncated snapshot");
    is_int(meta_fsm_restore(f2, snap.data, 10, &err), LODE_EBADMSG, "tiny snapshot");
    snap.data[0] = 'X';
    is_int(meta_fsm_restore(f2, snap.data, snap.len, &err), LODE_EBADMSG, "bad magic");
    snap.data[0] = 'L';
    digest(f2, d3);
    ok(memcmp(d2, d3, 32) == 0, "state intact after rejected restores");
    o = get_object(f2, "objs", "after-restore", &code);
    ok(o != NULL, "objects still readable");
    lode__object_record__free_unpacked(o, NULL);

    /* A well-formed snapshot of an empty state clears everything. */
    struct meta_fsm *empty = open_at("empty", 0);
    is_int(meta_fsm_snapshot(empty, &b), 0, "snapshot of an empty fsm");
    is_int(meta_fsm_restore(f2, b.data, b.len, &err), 0, "restore it over a full one");
    digest(empty, d1);
    digest(f2, d2);
    ok(memcmp(d1, d2, 32) == 0, "now empty");
    o = get_object(f2, "objs", "after-restore", &code);
    ok(!o && code == LODE_ENOBUCKET, "buckets are gone too");
    meta_fsm_close(empty);
    meta_fsm_close(f2);
    cmn_buf_free(&snap);
    cmn_buf_free(&b);
}

/* ---- map growth (with a concurrent reader) and reopen */

static atomic_int reader_stop;
static int reader_errors;
static long reader_rounds;

/* Lists and reads on its own thread while the apply thread grows the map. */
static void *reader_main(void *arg)
{
    struct meta_fsm *f = arg;
    struct cmn_buf b = {0};
    while (!atomic_load(&reader_stop)) {
        Lode__ObjectListRequest q = LODE__OBJECT_LIST_REQUEST__INIT;
        q.bucket = "grow";
        q.prefix = "obj-0";
        q.max_keys = 100;
        if (meta_fsm_object_list(f, &q, &b, NULL) != 0 || meta_fsm_cluster_map(f, &b) != 0)
            reader_errors++;
        reader_rounds++;
    }
    cmn_buf_free(&b);
    return NULL;
}

static void test_growth_and_wipe(void)
{
    struct meta_fsm *keep = fsm;
    pthread_t th;
    fsm = open_at("small", 256 * 1024);
    uint64_t before = meta_fsm_map_size(fsm);
    is_int(create_bucket("grow", "alice"), 0, "bucket in a small map");
    atomic_store(&reader_stop, 0);
    if (pthread_create(&th, NULL, reader_main, fsm) != 0)
        tap_bail("pthread_create");
    char key[32];
    struct lay l;
    int fails = 0;
    Lode__Layout *lay = lay_init(&l, 501, 6);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "obj-%05d", i);
        fails += put_object("grow", key, (uint64_t)i, lay, 0, false, NULL) != 0;
    }
    atomic_store(&reader_stop, 1);
    pthread_join(th, NULL);
    is_int(fails, 0, "3000 puts into a 256 KiB map succeed");
    ok(meta_fsm_map_size(fsm) > before, "map grew from %llu to %llu bytes",
       (unsigned long long)before, (unsigned long long)meta_fsm_map_size(fsm));
    is_int(reader_errors, 0, "a concurrent reader saw no errors (%ld rounds)", reader_rounds);
    int code;
    Lode__ObjectRecord *o = get_object(fsm, "grow", "obj-02999", &code);
    ok(o && o->size == 2999, "last object readable");
    lode__object_record__free_unpacked(o, NULL);
    meta_fsm_close(fsm);

    fsm = open_at("small", 0);
    o = get_object(fsm, "grow", "obj-00001", &code);
    ok(!o && code == LODE_ENOBUCKET, "reopening wipes the LMDB cache");
    meta_fsm_close(fsm);
    fsm = keep;
}

int main(void)
{
    make_root("test_fsm");
    cmn_log_set_level(CMN_LOG_WARN);
    fsm = open_at("main", 0);
    test_nodes();
    test_buckets();
    test_objects();
    test_users();
    test_gc_members();
    test_dedupe();
    test_malformed();
    test_snapshot();
    test_growth_and_wipe();
    test_node_transports();
    meta_fsm_close(fsm);
    remove_root();
    return tap_done();
}
