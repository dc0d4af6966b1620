/* Failover under load: a client commits objects in a loop while the leader is killed with
 * SIGKILL. A new leader must serve a commit within 3 s of the kill, and once the old leader
 * is back, every acknowledged commit must exist on every replica (invariant 1 of the
 * architecture: an acknowledged PUT survives a meta leader crash). Done twice.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/meta_client.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define BUCKET "failover"
#define ROUNDS 2
#define MAX_KEYS 200000
#define COMMIT_TIMEOUT_MS 5000
#define FAILOVER_LIMIT_MS 3000

enum key_state { KEY_UNTRIED = 0, KEY_ACKED, KEY_UNKNOWN, KEY_REFUSED };

static struct tl_cluster *cl;
static struct cmn_meta_client *mc;
static unsigned char *state;     /* enum key_state per key number */
static unsigned next_key;
static unsigned acked, unknown;

static void key_name(unsigned k, char *out, size_t size)
{
    snprintf(out, size, "k%07u", k);
}

/* One commit of a fresh key. Returns its status. */
static int commit_one(void)
{
    char key[32];
    struct tl_commit_result r;
    unsigned k = next_key++;
    key_name(k, key, sizeof(key));
    int rc = tl_object_put(mc, BUCKET, key, k, 0, false, COMMIT_TIMEOUT_MS, &r);
    if (rc == 0) {
        state[k] = KEY_ACKED;
        acked++;
    } else if (rc <= LODE_ERRNO_MAX && rc >= LODE_ERRNO_MIN && rc != LODE_ETIMEOUT &&
               rc != LODE_ECLOSED && rc != LODE_ENOLEADER && rc != LODE_ENOTLEADER &&
               rc != LODE_EUNAVAILABLE && rc != LODE_ESHUTDOWN) {
        /* A definite answer from the state machine: the put did not happen. */
        state[k] = KEY_REFUSED;
        diag("key %s refused: %s (%s)", key, lode_errname(rc), r.message);
    } else {
        state[k] = KEY_UNKNOWN;
        unknown++;
        diag("key %s: outcome unknown: %s (%s)", key, lode_errname(rc), r.message);
    }
    return rc;
}

/* Commits for `ms` milliseconds. */
static void commit_for(uint64_t ms)
{
    uint64_t end = cmn_mono_ms() + ms;
    while (cmn_mono_ms() < end && next_key < MAX_KEYS)
        commit_one();
}

static void failover_round(int round)
{
    unsigned leader = 0;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (tl_cluster_wait_leader(cl, 10000, &leader) != 0)
        tap_bail("round %d: no leader before the kill", round);

    unsigned before = acked;
    commit_for(1500);
    ok(acked > before, "round %d: %u commits acknowledged before the kill", round,
       acked - before);

    char old_leader[TL_ADDR_MAX];
    snprintf(old_leader, sizeof(old_leader), "%s", cl->r[leader].rpc_addr);
    uint64_t t_kill = cmn_mono_ms();
    is_int(tl_cluster_kill(cl, leader, SIGKILL), 0, "round %d: kill -9 the leader (replica %u)",
           round, cl->r[leader].id);

    /* Until a commit succeeds through someone else. */
    uint64_t failover_ms = 0;
    while (cmn_mono_ms() - t_kill < 15000 && next_key < MAX_KEYS) {
        int rc = commit_one();
        const char *now_leader = cmn_meta_client_leader(mc);
        if (rc == 0 && now_leader && strcmp(now_leader, old_leader) != 0) {
            failover_ms = cmn_mono_ms() - t_kill;
            break;
        }
    }
    diag("round %d: first commit by the new leader (%s) %" PRIu64 " ms after the kill", round,
         cmn_meta_client_leader(mc) ? cmn_meta_client_leader(mc) : "?", failover_ms);
    ok(failover_ms > 0 && failover_ms < FAILOVER_LIMIT_MS,
       "round %d: a new leader commits within %d ms of the kill (took %" PRIu64 " ms)", round,
       FAILOVER_LIMIT_MS, failover_ms);

    before = acked;
    commit_for(1000);
    ok(acked > before, "round %d: %u more commits acknowledged by the new leader", round,
       acked - before);

    int rc = tl_cluster_restart(cl, leader, &err);
    is_int(rc, 0, "round %d: the killed replica restarts%s", round, tl_why(err.msg));
    is_int(tl_cluster_wait_converged(cl, 20000), 0,
           "round %d: all three replicas reach the same digest", round);
}

/* Every acknowledged key on replica i (stale reads answer from its own state). */
static void check_replica(unsigned i)
{
    char key[32];
    unsigned missing = 0, wrong = 0;
    for (unsigned k = 0; k < next_key; k++) {
        if (state[k] != KEY_ACKED)
            continue;
        Lode__ObjectGetRequest g = LODE__OBJECT_GET_REQUEST__INIT;
        struct cmn_rpc_result res;
        key_name(k, key, sizeof(key));
        g.bucket = (char *)BUCKET;
        g.key = key;
        cmn_rpc_result_init(&res);
        int rc = cmn_meta_client_call_at(mc, cl->r[i].rpc_addr, CMN_RPC_OBJECT_GET,
                                         CMN_RPC_FLAG_STALE_OK, &g.base, 5000, &res);
        if (rc != 0) {
            if (missing++ < 5)
                diag("replica %u: acknowledged key %s: %s (%s)", cl->r[i].id, key,
                     lode_errname(rc), res.message);
        } else {
            Lode__ObjectRecord *o =
                lode__object_record__unpack(NULL, res.body.len, res.body.data);
            if (!o || o->size != k)
                wrong++;
            if (o)
                lode__object_record__free_unpacked(o, NULL);
        }
        cmn_rpc_result_free(&res);
    }
    is_int(missing, 0, "replica %u has every one of the %u acknowledged keys", cl->r[i].id,
           acked);
    is_int(wrong, 0, "replica %u: each key holds the record that was put", cl->r[i].id);

    /* The listing: all acknowledged keys, plus at most the unknown ones, nothing else. */
    unsigned listed = 0, strays = 0;
    char token[1024] = "";
    for (;;) {
        Lode__ObjectListRequest lr = LODE__OBJECT_LIST_REQUEST__INIT;
        struct cmn_rpc_result res;
        lr.bucket = (char *)BUCKET;
        lr.continuation_token = token;
        lr.max_keys = 1000;
        cmn_rpc_result_init(&res);
        int rc = cmn_meta_client_call_at(mc, cl->r[i].rpc_addr, CMN_RPC_OBJECT_LIST,
                                         CMN_RPC_FLAG_STALE_OK, &lr.base, 5000, &res);
        Lode__ObjectListResponse *l =
            rc == 0 ? lode__object_list_response__unpack(NULL, res.body.len, res.body.data)
                    : NULL;
        cmn_rpc_result_free(&res);
        if (!l) {
            diag("replica %u: OBJECT_LIST failed: %s", cl->r[i].id, lode_errname(rc));
            strays = (unsigned)-1;
            break;
        }
        for (size_t e = 0; e < l->n_entries; e++) {
            unsigned k = (unsigned)strtoul(l->entries[e]->key + 1, NULL, 10);
            listed++;
            if (k >= next_key || (state[k] != KEY_ACKED && state[k] != KEY_UNKNOWN))
                strays++;
        }
        int more = l->is_truncated && l->next_continuation_token[0];
        snprintf(token, sizeof(token), "%s", l->next_continuation_token);
        lode__object_list_response__free_unpacked(l, NULL);
        if (!more)
            break;
    }
    ok(listed >= acked && listed <= acked + unknown,
       "replica %u lists %u objects: the %u acknowledged (+ up to %u of unknown outcome)",
       cl->r[i].id, listed, acked, unknown);
    is_int(strays, 0, "replica %u lists no key that was refused or never sent", cl->r[i].id);
}

int main(void)
{
    struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
    struct cmn_err err;
    struct tl_commit_result r;
    unsigned leader;

    cmn_err_clear(&err);
    o.name = "test_meta_failover";
    state = calloc(MAX_KEYS, 1);
    if (!state)
        tap_bail("out of memory");
    if (tl_cluster_start(&o, &cl, &err) != 0)
        tap_bail("start cluster: %s", err.msg);
    mc = tl_cluster_client(cl);
    if (!mc || tl_cluster_wait_leader(cl, 15000, &leader) != 0)
        tap_bail("no leader elected");
    if (tl_bucket_create(mc, BUCKET, "", COMMIT_TIMEOUT_MS, &r) != 0)
        tap_bail("create bucket: %s", r.message);

    for (int round = 1; round <= ROUNDS; round++)
        failover_round(round);
    diag("%u keys tried: %u acknowledged, %u of unknown outcome", next_key, acked, unknown);

    for (unsigned i = 0; i < cl->n; i++)
        check_replica(i);
    is_int(tl_cluster_crash_count(cl), 0, "no replica logged a crash");

    int rc = tap_done();
    tl_cluster_destroy(cl, rc != 0);
    free(state);
    return rc;
}
