/* A 3-replica lode-meta cluster on loopback: election, status, follower redirects, the
 * metadata operations through the meta client (users, buckets, objects, conditional puts,
 * multipart), and adding then removing a 4th voter.
 */
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/meta_client.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 5000

static struct tl_cluster *cl;
static struct cmn_meta_client *mc;

/* One leader call; `res` is re-initialised. */
static int call(unsigned method, ProtobufCMessage *req, struct cmn_rpc_result *res)
{
    cmn_rpc_result_free(res);
    cmn_rpc_result_init(res);
    return cmn_meta_client_call(mc, method, req, T_MS, res);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void check_election(void)
{
    unsigned leader = 0;
    int rc = tl_cluster_wait_leader(cl, 15000, &leader);
    is_int(rc, 0, "a leader is elected and every replica agrees");
    if (rc != 0)
        tap_bail("no leader: nothing else can be tested");

    unsigned leaders = 0, agree = 0, three = 0;
    for (unsigned i = 0; i < cl->n; i++) {
        Lode__MetaStatusResponse *st = NULL;
        struct cmn_err err;
        if (tl_cluster_status(cl, i, T_MS, &st, &err) != 0) {
            diag("%s", err.msg);
            continue;
        }
        leaders += strcmp(st->role, "leader") == 0;
        agree += st->leader_id == cl->r[leader].id &&
                 strcmp(st->leader_address, cl->r[leader].rpc_addr) == 0;
        three += st->n_voters == 3;
        if (st->id != cl->r[i].id)
            diag("replica slot %u reports id %" PRIu64 ", configured %u", i, st->id,
                 cl->r[i].id);
        lode__meta_status_response__free_unpacked(st, NULL);
    }
    is_int(leaders, 1, "exactly one replica says it is the leader");
    is_int(agree, 3, "all three name the same leader id and RPC address");
    is_int(three, 3, "META_STATUS on each replica lists 3 voters");

    /* A follower refuses leader-only work and names the leader. */
    unsigned f = (leader + 1) % 3;
    struct cmn_rpc_result res;
    Lode__BucketListRequest bl = LODE__BUCKET_LIST_REQUEST__INIT;
    cmn_rpc_result_init(&res);
    rc = cmn_meta_client_call_at(tl_cluster_client(cl), cl->r[f].rpc_addr, CMN_RPC_BUCKET_LIST, 0,
                                 &bl.base, T_MS, &res);
    is_int(rc, LODE_ENOTLEADER, "a follower answers a linearizable read with ENOTLEADER");
    is_str(res.leader_address, cl->r[leader].rpc_addr, "... and names the leader's RPC address");
    cmn_rpc_result_free(&res);

    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
    Lode__BucketRecord b = LODE__BUCKET_RECORD__INIT;
    b.name = (char *)"redirected";
    cb.bucket = &b;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    cmd.create_bucket = &cb;
    cmn_rpc_result_init(&res);
    rc = cmn_meta_client_call_at(tl_cluster_client(cl), cl->r[f].rpc_addr, CMN_RPC_BUCKET_CREATE,
                                 0, &cmd.base, T_MS, &res);
    is_int(rc, LODE_ENOTLEADER, "a follower refuses a mutation with ENOTLEADER");
    is_str(res.leader_address, cl->r[leader].rpc_addr, "... naming the leader");
    cmn_rpc_result_free(&res);

    /* The same read with STALE_OK is served locally. */
    cmn_rpc_result_init(&res);
    rc = cmn_meta_client_call_at(tl_cluster_client(cl), cl->r[f].rpc_addr, CMN_RPC_BUCKET_LIST,
                                 CMN_RPC_FLAG_STALE_OK, &bl.base, T_MS, &res);
    is_int(rc, 0, "a follower serves a STALE_OK read");
    cmn_rpc_result_free(&res);
}

static void check_users(void)
{
    struct cmn_rpc_result res;
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__CreateUser cu = LODE__CREATE_USER__INIT;
    cu.name = (char *)"alice";
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_CREATE_USER;
    cmd.create_user = &cu;
    cmn_rpc_result_init(&res);
    int rc = call(CMN_RPC_USER_CREATE, &cmd.base, &res);
    is_int(rc, 0, "create user alice%s", tl_why(res.message));
    Lode__UserCreateResponse *u =
        rc == 0 ? lode__user_create_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(u && u->access_key[0] && u->secret_key[0], "the leader generated an access key and secret");
    char ak[256] = "", sk[256] = "";
    if (u) {
        snprintf(ak, sizeof(ak), "%s", u->access_key);
        snprintf(sk, sizeof(sk), "%s", u->secret_key);
        lode__user_create_response__free_unpacked(u, NULL);
    }

    Lode__Command again = LODE__COMMAND__INIT;
    again.version = 1;
    again.op_case = LODE__COMMAND__OP_CREATE_USER;
    again.create_user = &cu;
    rc = call(CMN_RPC_USER_CREATE, &again.base, &res);
    is_int(rc, LODE_EUSEREXISTS, "creating alice again: EUSEREXISTS%s", tl_why(res.message));

    Lode__AccessKeyRequest akr = LODE__ACCESS_KEY_REQUEST__INIT;
    akr.access_key = ak;
    rc = call(CMN_RPC_ACCESS_KEY_GET, &akr.base, &res);
    Lode__AccessKeyRecord *k =
        rc == 0 ? lode__access_key_record__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(k && strcmp(k->user, "alice") == 0 && strcmp(k->secret_key, sk) == 0,
       "ACCESS_KEY_GET returns alice's key with the same secret");
    if (k)
        lode__access_key_record__free_unpacked(k, NULL);

    Lode__Empty e = LODE__EMPTY__INIT;
    rc = call(CMN_RPC_USER_LIST, &e.base, &res);
    Lode__UserListResponse *l =
        rc == 0 ? lode__user_list_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(l && l->n_users == 1 && strcmp(l->users[0]->name, "alice") == 0 &&
           l->users[0]->n_access_keys == 1 && strcmp(l->users[0]->access_keys[0], ak) == 0,
       "USER_LIST shows alice with her access key");
    if (l)
        lode__user_list_response__free_unpacked(l, NULL);
    cmn_rpc_result_free(&res);
}

static Lode__ObjectRecord *object_get(const char *bucket, const char *key, int *rc)
{
    struct cmn_rpc_result res;
    Lode__ObjectGetRequest g = LODE__OBJECT_GET_REQUEST__INIT;
    g.bucket = (char *)bucket;
    g.key = (char *)key;
    cmn_rpc_result_init(&res);
    *rc = call(CMN_RPC_OBJECT_GET, &g.base, &res);
    Lode__ObjectRecord *o =
        *rc == 0 ? lode__object_record__unpack(NULL, res.body.len, res.body.data) : NULL;
    cmn_rpc_result_free(&res);
    return o;
}

static Lode__ObjectListResponse *object_list(const char *bucket, const char *prefix,
                                             const char *delim)
{
    struct cmn_rpc_result res;
    Lode__ObjectListRequest r = LODE__OBJECT_LIST_REQUEST__INIT;
    r.bucket = (char *)bucket;
    r.prefix = (char *)prefix;
    r.delimiter = (char *)delim;
    cmn_rpc_result_init(&res);
    int rc = call(CMN_RPC_OBJECT_LIST, &r.base, &res);
    Lode__ObjectListResponse *l =
        rc == 0 ? lode__object_list_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    if (rc != 0)
        diag("OBJECT_LIST %s: %s", bucket, res.message);
    cmn_rpc_result_free(&res);
    return l;
}

static void check_buckets_objects(void)
{
    struct tl_commit_result r;
    struct cmn_rpc_result res;
    int rc;

    is_int(tl_bucket_create(mc, "photos", "alice", T_MS, &r), 0, "create bucket photos%s",
           tl_why(r.message));
    rc = tl_bucket_create(mc, "photos", "alice", T_MS, &r);
    is_int(rc, LODE_EBUCKETEXISTS, "creating photos again: EBUCKETEXISTS");
    ok(r.message[0] != '\0', "... with a message: %s", r.message);

    Lode__NameRequest nr = LODE__NAME_REQUEST__INIT;
    nr.name = (char *)"photos";
    cmn_rpc_result_init(&res);
    rc = call(CMN_RPC_BUCKET_HEAD, &nr.base, &res);
    Lode__BucketRecord *b =
        rc == 0 ? lode__bucket_record__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(b && strcmp(b->name, "photos") == 0 && strcmp(b->owner, "alice") == 0 && b->created_ms > 0,
       "BUCKET_HEAD returns photos, owned by alice, with a creation time");
    if (b)
        lode__bucket_record__free_unpacked(b, NULL);
    nr.name = (char *)"nope";
    rc = call(CMN_RPC_BUCKET_HEAD, &nr.base, &res);
    is_int(rc, LODE_ENOBUCKET, "BUCKET_HEAD of a missing bucket: ENOBUCKET");

    is_int(tl_bucket_create(mc, "videos", "alice", T_MS, &r), 0, "create bucket videos");
    Lode__BucketListRequest bl = LODE__BUCKET_LIST_REQUEST__INIT;
    rc = call(CMN_RPC_BUCKET_LIST, &bl.base, &res);
    Lode__BucketListResponse *bls =
        rc == 0 ? lode__bucket_list_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(bls && bls->n_buckets == 2 && strcmp(bls->buckets[0]->name, "photos") == 0 &&
           strcmp(bls->buckets[1]->name, "videos") == 0,
       "BUCKET_LIST: photos, videos in order");
    if (bls)
        lode__bucket_list_response__free_unpacked(bls, NULL);

    /* Objects */
    static const char *const keys[] = {"a/1.jpg", "a/2.jpg", "b/3.jpg", "top.txt"};
    uint64_t v[4] = {0};
    int fails = 0;
    for (int i = 0; i < 4; i++) {
        if (tl_object_put(mc, "photos", keys[i], 100 + (uint64_t)i, 0, false, T_MS, &r) != 0) {
            diag("put %s: %s", keys[i], r.message);
            fails++;
        }
        v[i] = r.version;
    }
    is_int(fails, 0, "put 4 objects");
    ok(v[0] > 0 && v[1] > 0, "puts return object versions (%" PRIu64 ", %" PRIu64 ")", v[0],
       v[1]);
    Lode__ObjectRecord *o = object_get("photos", "a/2.jpg", &rc);
    ok(o && o->size == 101 && o->version == v[1] && o->etag[0],
       "OBJECT_GET a/2.jpg: size, version and etag as put");
    if (o)
        lode__object_record__free_unpacked(o, NULL);
    o = object_get("photos", "missing", &rc);
    is_int(rc, LODE_ENOKEY, "OBJECT_GET of a missing key: ENOKEY");
    o = object_get("nope", "x", &rc);
    is_int(rc, LODE_ENOBUCKET, "OBJECT_GET in a missing bucket: ENOBUCKET");
    is_int(tl_object_put(mc, "nope", "x", 1, 0, false, T_MS, &r), LODE_ENOBUCKET,
           "OBJECT_PUT into a missing bucket: ENOBUCKET");

    Lode__ObjectListResponse *l = object_list("photos", "", "");
    ok(l && l->n_entries == 4 && strcmp(l->entries[0]->key, "a/1.jpg") == 0 &&
           strcmp(l->entries[3]->key, "top.txt") == 0 && !l->is_truncated,
       "OBJECT_LIST: 4 keys in order");
    if (l)
        lode__object_list_response__free_unpacked(l, NULL);
    l = object_list("photos", "", "/");
    ok(l && l->n_entries == 1 && l->n_common_prefixes == 2 &&
           strcmp(l->common_prefixes[0], "a/") == 0 && strcmp(l->common_prefixes[1], "b/") == 0,
       "OBJECT_LIST with delimiter '/': top.txt plus prefixes a/ and b/");
    if (l)
        lode__object_list_response__free_unpacked(l, NULL);

    is_int(tl_object_delete(mc, "photos", "a/2.jpg", T_MS, &r), 0, "delete a/2.jpg");
    o = object_get("photos", "a/2.jpg", &rc);
    is_int(rc, LODE_ENOKEY, "a deleted object is gone");
    l = object_list("photos", "a/", "");
    ok(l && l->n_entries == 1, "OBJECT_LIST prefix a/ after the delete: 1 key");
    if (l)
        lode__object_list_response__free_unpacked(l, NULL);

    /* Conditional puts */
    is_int(tl_object_put(mc, "photos", "cond", 1, 0, true, T_MS, &r), 0,
           "if_absent put of a new key succeeds");
    uint64_t v1 = r.version;
    rc = tl_object_put(mc, "photos", "cond", 2, 0, true, T_MS, &r);
    is_int(rc, LODE_EPRECONDITION, "a second if_absent put: EPRECONDITION (%s)", r.message);
    rc = tl_object_put(mc, "photos", "cond", 3, v1, false, T_MS, &r);
    is_int(rc, 0, "if_version = current version succeeds");
    ok(r.version != v1, "... and makes a new version");
    rc = tl_object_put(mc, "photos", "cond", 4, v1, false, T_MS, &r);
    is_int(rc, LODE_EPRECONDITION, "if_version = a stale version: EPRECONDITION");
    o = object_get("photos", "cond", &rc);
    ok(o && o->size == 3, "the failed conditional puts changed nothing");
    if (o)
        lode__object_record__free_unpacked(o, NULL);

    /* A bucket with objects cannot go. */
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__DeleteBucket db = LODE__DELETE_BUCKET__INIT;
    db.name = (char *)"photos";
    cmd.op_case = LODE__COMMAND__OP_DELETE_BUCKET;
    cmd.delete_bucket = &db;
    rc = tl_commit(mc, CMN_RPC_BUCKET_DELETE, &cmd, T_MS, &r);
    is_int(rc, LODE_EBUCKETNOTEMPTY, "deleting a non-empty bucket: EBUCKETNOTEMPTY (%s)",
           r.message);
    Lode__Command cmd2 = LODE__COMMAND__INIT;
    db.name = (char *)"videos";
    cmd2.op_case = LODE__COMMAND__OP_DELETE_BUCKET;
    cmd2.delete_bucket = &db;
    is_int(tl_commit(mc, CMN_RPC_BUCKET_DELETE, &cmd2, T_MS, &r), 0,
           "an empty bucket can be deleted");
    cmn_rpc_result_free(&res);
}

static void check_multipart(void)
{
    struct tl_commit_result r;
    int rc;
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__CreateUpload cu = LODE__CREATE_UPLOAD__INIT;
    Lode__UploadRecord up = LODE__UPLOAD_RECORD__INIT;
    up.bucket = (char *)"photos";
    up.key = (char *)"big.bin";
    up.owner = (char *)"alice";
    cu.upload = &up;
    cmd.op_case = LODE__COMMAND__OP_CREATE_UPLOAD;
    cmd.create_upload = &cu;
    rc = tl_commit(mc, CMN_RPC_UPLOAD_CREATE, &cmd, T_MS, &r);
    is_int(rc, 0, "create a multipart upload%s", tl_why(r.message));
    ok(r.upload_id[0] != '\0', "the leader assigned an upload id (%s)", r.upload_id);
    char upload_id[128];
    snprintf(upload_id, sizeof(upload_id), "%s", r.upload_id);

    static const char *const etags[] = {"0123456789abcdef0123456789abcdef",
                                        "fedcba9876543210fedcba9876543210"};
    const uint64_t sizes[] = {5u << 20, 1234};
    int fails = 0;
    for (unsigned p = 0; p < 2; p++) {
        Lode__Command pc = LODE__COMMAND__INIT;
        Lode__PutPart pp = LODE__PUT_PART__INIT;
        Lode__PartInfo pi = LODE__PART_INFO__INIT;
        pi.number = p + 1;
        pi.size = sizes[p];
        pi.etag = (char *)etags[p];
        pp.upload_id = upload_id;
        pp.part = &pi;
        pc.op_case = LODE__COMMAND__OP_PUT_PART;
        pc.put_part = &pp;
        if (tl_commit(mc, CMN_RPC_PART_PUT, &pc, T_MS, &r) != 0) {
            diag("part %u: %s", p + 1, r.message);
            fails++;
        }
    }
    is_int(fails, 0, "put parts 1 and 2");

    struct cmn_rpc_result res;
    Lode__PartListRequest pl = LODE__PART_LIST_REQUEST__INIT;
    pl.upload_id = upload_id;
    cmn_rpc_result_init(&res);
    rc = call(CMN_RPC_PART_LIST, &pl.base, &res);
    Lode__PartListResponse *pls =
        rc == 0 ? lode__part_list_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(pls && pls->n_parts == 2 && pls->parts[0]->number == 1 && pls->parts[1]->size == 1234,
       "PART_LIST shows both parts");
    if (pls)
        lode__part_list_response__free_unpacked(pls, NULL);

    Lode__Command cc = LODE__COMMAND__INIT;
    Lode__CompleteUpload co = LODE__COMPLETE_UPLOAD__INIT;
    Lode__CompletePart cp[2] = {LODE__COMPLETE_PART__INIT, LODE__COMPLETE_PART__INIT};
    Lode__CompletePart *cpp[2] = {&cp[0], &cp[1]};
    for (unsigned p = 0; p < 2; p++) {
        cp[p].number = p + 1;
        cp[p].etag = (char *)etags[p];
    }
    co.upload_id = upload_id;
    co.n_parts = 2;
    co.parts = cpp;
    co.etag = (char *)"00112233445566778899aabbccddeeff-2";
    cc.op_case = LODE__COMMAND__OP_COMPLETE_UPLOAD;
    cc.complete_upload = &co;
    rc = tl_commit(mc, CMN_RPC_UPLOAD_COMPLETE, &cc, T_MS, &r);
    is_int(rc, 0, "complete the upload%s", tl_why(r.message));

    Lode__ObjectRecord *o = object_get("photos", "big.bin", &rc);
    ok(o && o->size == (5u << 20) + 1234 && o->n_parts == 2 &&
           strcmp(o->etag, "00112233445566778899aabbccddeeff-2") == 0,
       "the completed object has both parts, their total size and the multipart etag");
    if (o)
        lode__object_record__free_unpacked(o, NULL);

    Lode__UploadGetRequest ug = LODE__UPLOAD_GET_REQUEST__INIT;
    ug.upload_id = upload_id;
    rc = call(CMN_RPC_UPLOAD_GET, &ug.base, &res);
    is_int(rc, LODE_ENOUPLOAD, "the completed upload is gone");
    cmn_rpc_result_free(&res);
}

/* Polls META_STATUS of the given replicas until each lists `want` voters. */
static int wait_voters(const unsigned *slots, unsigned n, size_t want, uint32_t timeout_ms)
{
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    for (;;) {
        unsigned good = 0;
        for (unsigned k = 0; k < n; k++) {
            Lode__MetaStatusResponse *st = NULL;
            if (tl_cluster_status(cl, slots[k], 1000, &st, NULL) == 0) {
                good += st->n_voters == want;
                lode__meta_status_response__free_unpacked(st, NULL);
            }
        }
        if (good == n)
            return 0;
        if (cmn_mono_ms() > deadline)
            return LODE_ETIMEOUT;
        sleep_ms(100);
    }
}

static void check_membership(void)
{
    unsigned slot = 0;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = tl_cluster_add(cl, &slot, &err);
    is_int(rc, 0, "a 4th replica (join = true) starts%s", tl_why(err.msg));
    if (rc != 0)
        return;

    struct cmn_rpc_result res;
    Lode__AddVoterRequest av = LODE__ADD_VOTER_REQUEST__INIT;
    av.id = cl->r[slot].id;
    av.raft_address = cl->r[slot].raft_addr;
    av.rpc_address = cl->r[slot].rpc_addr;
    cmn_rpc_result_init(&res);
    rc = call(CMN_RPC_META_ADD_VOTER, &av.base, &res);
    is_int(rc, 0, "META_ADD_VOTER of replica %" PRIu64 "%s", av.id,
           tl_why(res.message));
    Lode__MetaStatusResponse *st =
        rc == 0 ? lode__meta_status_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(st && st->n_voters == 4, "the reply lists 4 voters");
    if (st)
        lode__meta_status_response__free_unpacked(st, NULL);

    const unsigned all[4] = {0, 1, 2, slot};
    is_int(wait_voters(all, 4, 4, 10000), 0, "every replica, the new one included, sees 4 voters");
    is_int(tl_cluster_wait_converged(cl, 15000), 0, "the new replica's digest converges");

    /* It takes part: a write committed now reaches it too. */
    struct tl_commit_result r;
    is_int(tl_object_put(mc, "photos", "after-join", 7, 0, false, T_MS, &r), 0,
           "a commit with 4 voters");
    is_int(tl_cluster_wait_converged(cl, 10000), 0, "... reaches all 4 replicas");

    Lode__RemoveVoterRequest rv = LODE__REMOVE_VOTER_REQUEST__INIT;
    rv.id = cl->r[slot].id;
    rc = call(CMN_RPC_META_REMOVE_VOTER, &rv.base, &res);
    is_int(rc, 0, "META_REMOVE_VOTER of replica %" PRIu64 "%s", rv.id,
           tl_why(res.message));
    st = rc == 0 ? lode__meta_status_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(st && st->n_voters == 3, "the reply lists 3 voters");
    if (st)
        lode__meta_status_response__free_unpacked(st, NULL);
    is_int(wait_voters(all, 3, 3, 10000), 0, "the original replicas see 3 voters again");
    cmn_rpc_result_free(&res);

    tl_cluster_kill(cl, slot, SIGTERM);
    is_int(tl_object_put(mc, "photos", "after-remove", 8, 0, false, T_MS, &r), 0,
           "commits go on without the removed replica");
}

int main(void)
{
    struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
    struct cmn_err err;
    cmn_err_clear(&err);
    o.name = "test_meta_cluster";
    if (tl_cluster_start(&o, &cl, &err) != 0)
        tap_bail("start cluster: %s", err.msg);
    mc = tl_cluster_client(cl);
    if (!mc)
        tap_bail("meta client");

    check_election();
    check_users();
    check_buckets_objects();
    check_multipart();
    check_membership();

    for (unsigned i = 0; i < 3; i++)
        ok(tl_cluster_alive(cl, i), "replica %u is still running", cl->r[i].id);
    is_int(tl_cluster_crash_count(cl), 0, "no replica logged a crash");

    int rc = tap_done();
    tl_cluster_destroy(cl, rc != 0);
    return rc;
}
