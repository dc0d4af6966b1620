/* Restart of the whole group: after every replica is stopped (SIGKILL, then SIGTERM) and
 * started again, each comes back with exactly the state it had (same digest) and serves it.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/meta_client.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 5000
#define NBUCKETS 3
#define NOBJECTS 300

static struct tl_cluster *cl;
static struct cmn_meta_client *mc;
static char upload_id[128];
static char access_key[256];

static void bucket_name(unsigned b, char *out, size_t size)
{
    snprintf(out, size, "restart-%u", b);
}

static void key_name(unsigned k, char *out, size_t size)
{
    snprintf(out, size, "dir%u/obj-%05u", k % 7, k);
}

static int call(unsigned method, ProtobufCMessage *req, struct cmn_rpc_result *res)
{
    cmn_rpc_result_free(res);
    cmn_rpc_result_init(res);
    return cmn_meta_client_call(mc, method, req, T_MS, res);
}

static void populate(void)
{
    struct tl_commit_result r;
    char b[64], k[64];
    int fails = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        bucket_name(i, b, sizeof(b));
        fails += tl_bucket_create(mc, b, "carol", T_MS, &r) != 0;
    }
    is_int(fails, 0, "create %d buckets", NBUCKETS);
    fails = 0;
    for (unsigned i = 0; i < NOBJECTS; i++) {
        bucket_name(i % NBUCKETS, b, sizeof(b));
        key_name(i, k, sizeof(k));
        if (tl_object_put(mc, b, k, i * 10, 0, false, T_MS, &r) != 0 && fails++ < 3)
            diag("put %s/%s: %s", b, k, r.message);
    }
    is_int(fails, 0, "put %d objects", NOBJECTS);
    /* Some deletes and overwrites, so the log is not append-only. */
    fails = 0;
    for (unsigned i = 0; i < NOBJECTS; i += 10) {
        bucket_name(i % NBUCKETS, b, sizeof(b));
        key_name(i, k, sizeof(k));
        fails += tl_object_delete(mc, b, k, T_MS, &r) != 0;
    }
    for (unsigned i = 5; i < NOBJECTS; i += 10) {
        bucket_name(i % NBUCKETS, b, sizeof(b));
        key_name(i, k, sizeof(k));
        fails += tl_object_put(mc, b, k, i * 10 + 1, 0, false, T_MS, &r) != 0;
    }
    is_int(fails, 0, "delete every 10th object and overwrite others");

    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__CreateUser cu = LODE__CREATE_USER__INIT;
    struct cmn_rpc_result res;
    cu.name = (char *)"carol";
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_CREATE_USER;
    cmd.create_user = &cu;
    cmn_rpc_result_init(&res);
    int rc = call(CMN_RPC_USER_CREATE, &cmd.base, &res);
    Lode__UserCreateResponse *u =
        rc == 0 ? lode__user_create_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(u != NULL, "create user carol");
    if (u) {
        snprintf(access_key, sizeof(access_key), "%s", u->access_key);
        lode__user_create_response__free_unpacked(u, NULL);
    }
    cmn_rpc_result_free(&res);

    Lode__Command uc = LODE__COMMAND__INIT;
    Lode__CreateUpload cup = LODE__CREATE_UPLOAD__INIT;
    Lode__UploadRecord up = LODE__UPLOAD_RECORD__INIT;
    bucket_name(0, b, sizeof(b));
    up.bucket = b;
    up.key = (char *)"pending.bin";
    cup.upload = &up;
    uc.op_case = LODE__COMMAND__OP_CREATE_UPLOAD;
    uc.create_upload = &cup;
    rc = tl_commit(mc, CMN_RPC_UPLOAD_CREATE, &uc, T_MS, &r);
    is_int(rc, 0, "create an upload%s", tl_why(r.message));
    snprintf(upload_id, sizeof(upload_id), "%s", r.upload_id);

    Lode__Command pc = LODE__COMMAND__INIT;
    Lode__PutPart pp = LODE__PUT_PART__INIT;
    Lode__PartInfo pi = LODE__PART_INFO__INIT;
    pi.number = 3;
    pi.size = 777;
    pi.etag = (char *)"0123456789abcdef0123456789abcdef";
    pp.upload_id = upload_id;
    pp.part = &pi;
    pc.op_case = LODE__COMMAND__OP_PUT_PART;
    pc.put_part = &pp;
    is_int(tl_commit(mc, CMN_RPC_PART_PUT, &pc, T_MS, &r), 0, "put part 3 of the upload");
}

/* The expected size of object i, or -1 when it was deleted. */
static long long expected_size(unsigned i)
{
    if (i % 10 == 0)
        return -1;
    return i % 10 == 5 ? (long long)i * 10 + 1 : (long long)i * 10;
}

static void spot_check(const char *when)
{
    struct cmn_rpc_result res;
    char b[64], k[64];
    unsigned bad = 0;
    int rc;

    cmn_rpc_result_init(&res);
    /* A spread of objects, deleted ones included. */
    for (unsigned i = 0; i < NOBJECTS; i += 7) {
        Lode__ObjectGetRequest g = LODE__OBJECT_GET_REQUEST__INIT;
        bucket_name(i % NBUCKETS, b, sizeof(b));
        key_name(i, k, sizeof(k));
        g.bucket = b;
        g.key = k;
        rc = call(CMN_RPC_OBJECT_GET, &g.base, &res);
        long long want = expected_size(i);
        if (want < 0) {
            bad += rc != LODE_ENOKEY;
            continue;
        }
        Lode__ObjectRecord *o =
            rc == 0 ? lode__object_record__unpack(NULL, res.body.len, res.body.data) : NULL;
        if (!o || (long long)o->size != want) {
            if (bad < 3)
                diag("%s/%s: %s", b, k, rc ? lode_errname(rc) : "wrong size");
            bad++;
        }
        if (o)
            lode__object_record__free_unpacked(o, NULL);
    }
    is_int(bad, 0, "%s: objects read back as written (deleted ones absent)", when);

    /* Listing counts per bucket. */
    bad = 0;
    for (unsigned bi = 0; bi < NBUCKETS; bi++) {
        unsigned want = 0, got = 0;
        for (unsigned i = bi; i < NOBJECTS; i += NBUCKETS)
            want += expected_size(i) >= 0;
        char token[512] = "";
        bucket_name(bi, b, sizeof(b));
        for (;;) {
            Lode__ObjectListRequest lr = LODE__OBJECT_LIST_REQUEST__INIT;
            lr.bucket = b;
            lr.continuation_token = token;
            lr.max_keys = 37; /* several pages */
            rc = call(CMN_RPC_OBJECT_LIST, &lr.base, &res);
            Lode__ObjectListResponse *l =
                rc == 0 ? lode__object_list_response__unpack(NULL, res.body.len, res.body.data)
                        : NULL;
            if (!l)
                break;
            got += (unsigned)l->n_entries;
            int more = l->is_truncated;
            snprintf(token, sizeof(token), "%s", l->next_continuation_token);
            lode__object_list_response__free_unpacked(l, NULL);
            if (!more)
                break;
        }
        if (got != want) {
            diag("bucket %s lists %u objects, want %u", b, got, want);
            bad++;
        }
    }
    is_int(bad, 0, "%s: every bucket lists exactly its objects", when);

    Lode__Empty e = LODE__EMPTY__INIT;
    rc = call(CMN_RPC_USER_LIST, &e.base, &res);
    Lode__UserListResponse *ul =
        rc == 0 ? lode__user_list_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(ul && ul->n_users == 1 && strcmp(ul->users[0]->name, "carol") == 0 &&
           ul->users[0]->n_access_keys == 1 &&
           strcmp(ul->users[0]->access_keys[0], access_key) == 0,
       "%s: user carol and her access key are there", when);
    if (ul)
        lode__user_list_response__free_unpacked(ul, NULL);

    Lode__PartListRequest pl = LODE__PART_LIST_REQUEST__INIT;
    pl.upload_id = upload_id;
    rc = call(CMN_RPC_PART_LIST, &pl.base, &res);
    Lode__PartListResponse *pls =
        rc == 0 ? lode__part_list_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    ok(pls && pls->upload && strcmp(pls->upload->key, "pending.bin") == 0 && pls->n_parts == 1 &&
           pls->parts[0]->number == 3 && pls->parts[0]->size == 777,
       "%s: the pending upload and its part are there", when);
    if (pls)
        lode__part_list_response__free_unpacked(pls, NULL);
    cmn_rpc_result_free(&res);
}

static int digests(uint8_t out[][32])
{
    struct cmn_err err;
    for (unsigned i = 0; i < cl->n; i++) {
        if (tl_cluster_digest(cl, i, out[i], NULL, &err) != 0) {
            diag("%s", err.msg);
            return -1;
        }
    }
    return 0;
}

static void restart_all(int sig, const char *how)
{
    uint8_t before[TL_MAX_REPLICAS][32], after[TL_MAX_REPLICAS][32];
    struct cmn_err err;
    unsigned leader;

    is_int(tl_cluster_wait_converged(cl, 15000), 0, "%s: replicas converged before the stop",
           how);
    /* The state to compare with is the one at rest: a proposal still in flight (a new
     * leader's one-time duties, under a loaded machine) would be committed before the stop
     * and count as a change. Take digests until two rounds 300 ms apart agree. */
    uint8_t again[TL_MAX_REPLICAS][32];
    int drc = -1;
    for (int tries = 0; tries < 30; tries++) {
        drc = digests(before);
        usleep(300 * 1000);
        if (drc == 0 && tl_cluster_wait_converged(cl, 15000) == 0 && digests(again) == 0 &&
            memcmp(before, again, sizeof(before[0]) * cl->n) == 0)
            break;
        drc = -1;
    }
    is_int(drc, 0, "%s: digest of each replica recorded, at rest", how);

    int clean = 0;
    for (unsigned i = 0; i < cl->n; i++) {
        tl_cluster_kill(cl, i, sig);
        int st = cl->r[i].last_status;
        clean += sig == SIGKILL ? WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL
                                : WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (sig == SIGTERM && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            diag("replica %u: status 0x%x after SIGTERM", cl->r[i].id, (unsigned)st);
    }
    is_int(clean, (int)cl->n, "%s: every replica stopped (%s)", how,
           sig == SIGTERM ? "exit status 0" : "killed");

    int started = 0;
    for (unsigned i = 0; i < cl->n; i++) {
        cmn_err_clear(&err);
        if (tl_cluster_restart(cl, i, &err) == 0)
            started++;
        else
            diag("%s", err.msg);
    }
    is_int(started, (int)cl->n, "%s: all replicas start again", how);
    is_int(tl_cluster_wait_leader(cl, 15000, &leader), 0, "%s: a leader is elected", how);
    is_int(tl_cluster_wait_converged(cl, 15000), 0, "%s: replicas converge", how);
    int rc = digests(after);
    int same = 0;
    for (unsigned i = 0; rc == 0 && i < cl->n; i++)
        same += memcmp(before[i], after[i], 32) == 0;
    is_int(same, (int)cl->n, "%s: each replica's digest equals the one before the stop", how);
    spot_check(how);

    struct tl_commit_result r;
    char b[64];
    bucket_name(1, b, sizeof(b));
    char key[64];
    snprintf(key, sizeof(key), "after-%s", how);
    is_int(tl_object_put(mc, b, key, 1, 0, true, T_MS, &r), 0, "%s: new commits are accepted",
           how);
    /* Keep the expected listing of bucket 1 intact for the next round. */
    is_int(tl_object_delete(mc, b, key, T_MS, &r), 0, "%s: ... and deletes", how);
}

int main(void)
{
    struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
    struct cmn_err err;
    unsigned leader;

    cmn_err_clear(&err);
    o.name = "test_meta_restart";
    if (tl_cluster_start(&o, &cl, &err) != 0)
        tap_bail("start cluster: %s", err.msg);
    mc = tl_cluster_client(cl);
    if (!mc || tl_cluster_wait_leader(cl, 15000, &leader) != 0)
        tap_bail("no leader elected");

    populate();
    spot_check("before restarts");
    restart_all(SIGKILL, "SIGKILL");
    restart_all(SIGTERM, "SIGTERM");
    is_int(tl_cluster_crash_count(cl), 0, "no replica logged a crash");

    int rc = tap_done();
    tl_cluster_destroy(cl, rc != 0);
    return rc;
}
