/* bench/meta_bench: lode-meta throughput and listing latency.
 *
 * 1. Commits per second through a real 3-replica cluster on loopback (raft + LMDB + RPC):
 *    one at a time (each waits for its answer), and pipelined with W commands in flight on one
 *    connection. Baseline, same run, same filesystem: synchronous 4 KiB writes + fdatasync per
 *    second, the floor cost of one durable raft append on this disk.
 * 2. Time to list one page of 1000 keys out of 1,000,000, from the state machine's LMDB index
 *    (the server-side cost of an OBJECT_LIST), at random positions, with and without a
 *    delimiter. Baseline, same run: a raw LMDB cursor walking the same 1000 entries.
 *    Plus: the same page through the RPC path of the running cluster (linearizable read via the
 *    leader) over the keys the commit phase wrote.
 *
 * Usage: meta_bench [--seconds S] [--keys N] [--window W]   (defaults 5, 1000000, 64)
 * Prints a markdown section for docs/benchmarks.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/meta_client.h"
#include "common/rpc_sync.h"
#include "meta/fsm.h"
#include "tests/lib/proc.h"

static double secs_since(uint64_t t0) { return (double)(cmn_mono_ns() - t0) / 1e9; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_double);
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

/* An object record shaped like a real one: 4+2 layout, one stripe, six 16-byte chunk ids. */
struct obj_fixture {
    Lode__ObjectRecord rec;
    Lode__Layout layout;
    Lode__Stripe stripe;
    Lode__Stripe *stripes[1];
    Lode__ChunkRef refs[6];
    Lode__ChunkRef *refp[6];
    uint8_t ids[6][16];
};

static void obj_fixture_init(struct obj_fixture *f)
{
    lode__object_record__init(&f->rec);
    lode__layout__init(&f->layout);
    lode__stripe__init(&f->stripe);
    for (int i = 0; i < 6; i++) {
        lode__chunk_ref__init(&f->refs[i]);
        cmn_random_bytes(f->ids[i], 16);
        f->refs[i].nid = (uint32_t)i + 1;
        f->refs[i].chunk_id.data = f->ids[i];
        f->refs[i].chunk_id.len = 16;
        f->refp[i] = &f->refs[i];
    }
    f->stripe.length = 4 << 20;
    f->stripe.n_chunks = 6;
    f->stripe.chunks = f->refp;
    f->stripes[0] = &f->stripe;
    f->layout.k = 4;
    f->layout.m = 2;
    f->layout.chunk_size = 1 << 20;
    f->layout.format = 1;
    f->layout.n_stripes = 1;
    f->layout.stripes = f->stripes;
    f->rec.size = 4 << 20;
    f->rec.etag = "9e107d9d372bb6826bd81d3542a419d6";
    f->rec.content_type = "application/octet-stream";
    f->rec.layout = &f->layout;
}

static void put_cmd(Lode__Command *cmd, Lode__PutObject *put, struct obj_fixture *f,
                    const char *bucket, const char *key)
{
    lode__command__init(cmd);
    lode__put_object__init(put);
    put->bucket = (char *)bucket;
    put->key = (char *)key;
    put->record = &f->rec;
    cmd->version = 1;
    cmd->op_case = LODE__COMMAND__OP_PUT_OBJECT;
    cmd->put_object = put;
}

/* ---- baseline: durable 4 KiB appends per second in `dir` ---- */
static double fdatasync_rate(const char *dir, double seconds)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/fsync-probe", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0)
        return 0;
    char block[4096];
    memset(block, 0x5a, sizeof(block));
    uint64_t t0 = cmn_mono_ns();
    unsigned n = 0;
    while (secs_since(t0) < seconds) {
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fdatasync(fd) != 0)
            break;
        n++;
    }
    double rate = n / secs_since(t0);
    close(fd);
    unlink(path);
    return rate;
}

/* ---- part 1: commits through the cluster ---- */
static int bench_commits(double seconds, unsigned window, double *single, double *piped,
                         double *p50_ms, double *p99_ms, double *fsync_rate, double *rpc_list_ms,
                         unsigned *rpc_keys)
{
    struct cmn_err err;
    cmn_err_clear(&err);
    struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
    o.name = "bench-meta";
    o.log_level = "warn";
    struct tl_cluster *c;
    if (tl_cluster_start(&o, &c, &err) != 0) {
        fprintf(stderr, "meta_bench: cluster: %s\n", err.msg);
        return -1;
    }
    unsigned leader;
    if (tl_cluster_wait_leader(c, 10000, &leader) != 0) {
        fprintf(stderr, "meta_bench: no leader\n");
        tl_cluster_destroy(c, true);
        return -1;
    }
    *fsync_rate = fdatasync_rate(c->r[leader].data_dir, 2.0);
    struct cmn_meta_client *mc = tl_cluster_client(c);
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);

    Lode__Command cmd;
    Lode__CreateBucket cb;
    Lode__BucketRecord br;
    lode__command__init(&cmd);
    lode__create_bucket__init(&cb);
    lode__bucket_record__init(&br);
    br.name = "bench";
    br.owner = "bench";
    cb.bucket = &br;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    cmd.create_bucket = &cb;
    if (cmn_meta_client_call(mc, CMN_RPC_BUCKET_CREATE, &cmd.base, 10000, &res) != 0) {
        fprintf(stderr, "meta_bench: create bucket: %s\n", res.message);
        goto fail;
    }

    struct obj_fixture f;
    obj_fixture_init(&f);
    size_t cap = 1 << 20, n = 0;
    double *lat = malloc(cap * sizeof(*lat));
    char key[64];
    uint64_t t0 = cmn_mono_ns();
    while (secs_since(t0) < seconds && n < cap) {
        Lode__PutObject put;
        snprintf(key, sizeof(key), "single/%08zu", n);
        put_cmd(&cmd, &put, &f, "bench", key);
        uint64_t t1 = cmn_mono_ns();
        if (cmn_meta_client_call(mc, CMN_RPC_OBJECT_PUT, &cmd.base, 10000, &res) != 0) {
            fprintf(stderr, "meta_bench: put: %s\n", res.message);
            free(lat);
            goto fail;
        }
        lat[n++] = secs_since(t1) * 1000.0;
    }
    *single = n / secs_since(t0);
    *p50_ms = pct(lat, n, 0.50);
    *p99_ms = pct(lat, n, 0.99);
    free(lat);

    /* Pipelined: one connection to the leader, `window` commands in flight. */
    const char *laddr = cmn_meta_client_leader(mc);
    struct cmn_rpc_sync *conn;
    if (!laddr || cmn_rpc_sync_connect(laddr, c->secret_text, c->secret_len, 5000, &conn, &err)) {
        fprintf(stderr, "meta_bench: connect leader: %s\n", err.msg);
        goto fail;
    }
    struct cmn_id client = cmn_id_random();
    uint64_t seq = 0, inflight = 0, done = 0;
    t0 = cmn_mono_ns();
    int ok_run = 1;
    while (ok_run) {
        while (inflight < window && secs_since(t0) < seconds) {
            Lode__PutObject put;
            snprintf(key, sizeof(key), "piped/%08" PRIu64, seq);
            put_cmd(&cmd, &put, &f, "bench", key);
            cmd.client_id.data = client.b;
            cmd.client_id.len = sizeof(client.b);
            cmd.seq = ++seq;
            uint64_t id;
            if (cmn_rpc_sync_send(conn, CMN_RPC_OBJECT_PUT, 0, &cmd.base, &id) != 0) {
                ok_run = 0;
                break;
            }
            inflight++;
        }
        if (inflight == 0)
            break;
        if (cmn_rpc_sync_recv(conn, 10000, &res) != 0) {
            fprintf(stderr, "meta_bench: pipelined put: %s\n", res.message);
            ok_run = 0;
            break;
        }
        inflight--;
        done++;
    }
    *piped = done / secs_since(t0);

    /* A page of 1000 through the RPC path: linearizable list on the leader. */
    unsigned total = (unsigned)(done + n);
    double *pl = malloc(50 * sizeof(*pl));
    unsigned np = 0;
    for (unsigned i = 0; i < 50 && ok_run; i++) {
        Lode__ObjectListRequest lr;
        lode__object_list_request__init(&lr);
        lr.bucket = "bench";
        char sa[64];
        snprintf(sa, sizeof(sa), "piped/%08u", (unsigned)(rand() % (done > 1000 ? done - 1000 : 1)));
        lr.start_after = sa;
        lr.max_keys = 1000;
        uint64_t t1 = cmn_mono_ns();
        if (cmn_rpc_sync_call(conn, CMN_RPC_OBJECT_LIST, 0, &lr.base, 10000, &res) != 0) {
            fprintf(stderr, "meta_bench: list: %s\n", res.message);
            break;
        }
        pl[np++] = secs_since(t1) * 1000.0;
    }
    *rpc_list_ms = np ? pct(pl, np, 0.5) : 0;
    *rpc_keys = total;
    free(pl);
    cmn_rpc_sync_close(conn);
    cmn_rpc_result_free(&res);
    tl_cluster_destroy(c, !ok_run);
    return ok_run ? 0 : -1;
fail:
    cmn_rpc_result_free(&res);
    tl_cluster_destroy(c, true);
    return -1;
}

/* ---- part 2: listing out of 1,000,000 ---- */
static int bench_list(unsigned nkeys, double *load_s, double *list_ms, double *list_p99_ms,
                      double *delim_ms, double *raw_ms)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/bench-list-%d", tl_tmpdir(), (int)getpid());
    struct meta_fsm_options opts = {.dir = dir};
    struct meta_fsm *fsm;
    struct cmn_err err;
    if (meta_fsm_open(&opts, &fsm, &err) != 0) {
        fprintf(stderr, "meta_bench: fsm: %s\n", err.msg);
        return -1;
    }
    Lode__Command cmd;
    Lode__CreateBucket cb;
    Lode__BucketRecord br;
    lode__command__init(&cmd);
    lode__create_bucket__init(&cb);
    lode__bucket_record__init(&br);
    br.name = "bench";
    cb.bucket = &br;
    cmd.version = 1;
    cmd.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    cmd.create_bucket = &cb;
    struct meta_fsm_result r;
    meta_fsm_apply(fsm, &cmd, &r);

    struct obj_fixture f;
    obj_fixture_init(&f);
    char key[64];
    uint64_t t0 = cmn_mono_ns();
    for (unsigned i = 0; i < nkeys; i++) {
        Lode__PutObject put;
        /* 1000 "directories" of 1000 keys: realistic shard naming, delimiters matter. */
        snprintf(key, sizeof(key), "train/shard-%04u/part-%06u.tar", i % 1000, i);
        put_cmd(&cmd, &put, &f, "bench", key);
        cmd.now_ms = 1700000000000;
        if (meta_fsm_apply(fsm, &cmd, &r) != 0 || r.status != 0) {
            fprintf(stderr, "meta_bench: load %u: %s\n", i, r.message);
            meta_fsm_close(fsm);
            return -1;
        }
    }
    *load_s = secs_since(t0);

    enum { ROUNDS = 200 };
    double lat[ROUNDS], dl[ROUNDS], raw[ROUNDS];
    struct cmn_buf out;
    cmn_buf_init(&out);
    srand(42);
    for (int i = 0; i < ROUNDS; i++) {
        char sa[64];
        snprintf(sa, sizeof(sa), "train/shard-%04d/", rand() % 999);
        Lode__ObjectListRequest lr;
        lode__object_list_request__init(&lr);
        lr.bucket = "bench";
        lr.start_after = sa;
        lr.max_keys = 1000;
        uint64_t t1 = cmn_mono_ns();
        if (meta_fsm_object_list(fsm, &lr, &out, &err) != 0) {
            fprintf(stderr, "meta_bench: list: %s\n", err.msg);
            return -1;
        }
        lat[i] = secs_since(t1) * 1000.0;
        Lode__ObjectListResponse *resp = lode__object_list_response__unpack(NULL, out.len, out.data);
        /* Full pages, except near the end of a small --keys run. */
        if (!resp || resp->n_entries == 0 || (nkeys >= 1000000 && resp->n_entries != 1000)) {
            fprintf(stderr, "meta_bench: list returned %zu entries\n", resp ? resp->n_entries : 0);
            return -1;
        }
        lode__object_list_response__free_unpacked(resp, NULL);

        /* Delimiter: 1000 common prefixes, each skipped by a seek. */
        lr.start_after = NULL;
        lr.prefix = "train/";
        lr.delimiter = "/";
        t1 = cmn_mono_ns();
        if (meta_fsm_object_list(fsm, &lr, &out, &err) != 0)
            return -1;
        dl[i] = secs_since(t1) * 1000.0;
    }
    cmn_buf_free(&out);
    meta_fsm_close(fsm);

    /* Raw LMDB: the same number of entries walked by a bare cursor (reopen read-only). */
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 64);
    mdb_env_set_mapsize(env, 8ull << 30);
    rc = rc ? rc : mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK, 0600);
    if (rc) {
        fprintf(stderr, "meta_bench: raw lmdb: %s\n", mdb_strerror(rc));
        return -1;
    }
    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if ((rc = mdb_dbi_open(txn, "objects", 0, &dbi)) != 0) {
        fprintf(stderr, "meta_bench: no 'objects' dbi: %s\n", mdb_strerror(rc));
        return -1;
    }
    mdb_txn_commit(txn); /* an aborted txn would close the dbi handle */
    for (int i = 0; i < ROUNDS; i++) {
        char sk[96];
        int len = snprintf(sk, sizeof(sk), "bench%ctrain/shard-%04d/", 0, rand() % 999);
        uint64_t t1 = cmn_mono_ns();
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
        mdb_cursor_open(txn, dbi, &cur);
        MDB_val k = {.mv_size = (size_t)len, .mv_data = sk}, v;
        size_t sum = 0;
        int op = MDB_SET_RANGE;
        for (int j = 0; j < 1000 && mdb_cursor_get(cur, &k, &v, op) == 0; j++) {
            sum += k.mv_size + v.mv_size;
            op = MDB_NEXT;
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        raw[i] = secs_since(t1) * 1000.0;
        if (sum == 0)
            return -1;
    }
    mdb_env_close(env);
    tl_rmtree(dir);
    *list_ms = pct(lat, ROUNDS, 0.5);
    *list_p99_ms = pct(lat, ROUNDS, 0.99);
    *delim_ms = pct(dl, ROUNDS, 0.5);
    *raw_ms = pct(raw, ROUNDS, 0.5);
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 5;
    unsigned nkeys = 1000000, window = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--keys") && i + 1 < argc)
            nkeys = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            window = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: meta_bench [--seconds S] [--keys N] [--window W]\n");
            return 2;
        }
    }
    cmn_log_init("meta_bench", CMN_LOG_WARN);
    double single = 0, piped = 0, p50 = 0, p99 = 0, fs = 0, rpc_list = 0;
    unsigned rpc_keys = 0;
    if (bench_commits(seconds, window, &single, &piped, &p50, &p99, &fs, &rpc_list, &rpc_keys))
        return 1;
    double load = 0, lm = 0, l99 = 0, dm = 0, rm = 0;
    if (bench_list(nkeys, &load, &lm, &l99, &dm, &rm))
        return 1;

    struct utsname u;
    uname(&u);
    printf("### lode-meta (%s, %s, %ld cores)\n\n", u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN));
    printf("| measurement | result | baseline (same run) | ratio |\n|---|---|---|---|\n");
    printf("| commits/s, one at a time (3 replicas, loopback) | %.0f (p50 %.2f ms, p99 %.2f ms) | %.0f fdatasync/s on the same fs | %.2f |\n",
           single, p50, p99, fs, fs > 0 ? single / fs : 0);
    printf("| commits/s, pipelined (%u in flight, one connection) | %.0f | %.0f fdatasync/s | %.2f |\n",
           window, piped, fs, fs > 0 ? piped / fs : 0);
    printf("| list one page of 1000 out of %u keys (state machine) | %.3f ms p50, %.3f ms p99 | raw LMDB cursor over 1000 entries: %.3f ms | %.2f |\n",
           nkeys, lm, l99, rm, rm > 0 ? lm / rm : 0);
    printf("| list with delimiter: 1000 common prefixes out of %u keys | %.3f ms p50 | - | - |\n", nkeys, dm);
    printf("| list one page of 1000 through RPC (linearizable, leader) out of %u keys | %.3f ms p50 | - | - |\n",
           rpc_keys, rpc_list);
    printf("\nLoading %u objects into the state machine took %.1f s (%.0f applies/s, one LMDB txn each).\n",
           nkeys, load, nkeys / load);
    return 0;
}
