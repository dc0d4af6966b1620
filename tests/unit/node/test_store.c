/* The chunk store on real files: puts and verified gets (whole and ranges), deletes, lists,
 * sealing, compaction under concurrent reads, exact accounting, reopening, and the refusals
 * (wrong cluster, wrong node, directory in use, bad options). */
#include <sys/statvfs.h>

#include "common/metrics.h"
#include "tests/unit/node/store_fixture.h"

static struct fx F;

#define KiB 1024u
#define MiB (1024u * 1024u)

/* used == volume headers + the record size of every live chunk. */
static void check_accounting(struct node_store *st, const char *dir, const char *what)
{
    struct node_store_stats s;
    node_store_stats(st, &s);
    uint32_t bs = fx_block_size(dir);
    uint32_t ids[512];
    size_t nv = fx_volumes(dir, ids, 512);
    uint64_t want = (uint64_t)nv * bs;
    struct cmn_id after;
    bool first = true, more = true;
    uint64_t chunks = 0;
    while (more) {
        struct node_chunk_info info[64];
        size_t n;
        node_store_list(st, first ? NULL : &after, 64, info, &n, &more);
        for (size_t i = 0; i < n; i++)
            want += node_record_size(info[i].length, bs);
        chunks += n;
        if (n)
            after = info[n - 1].id;
        first = false;
    }
    is_int(s.used_bytes, want, "%s: used = %zu volume headers + live records", what, nv);
    is_int(s.chunks, chunks, "%s: chunk count matches the listing", what);
    is_int(s.disks[0].volumes, nv, "%s: volume count matches the files", what);
}

static void test_basics(void)
{
    const char *dir = fx_path(&F, "basic");
    const char *dirs[] = {dir};
    struct node_store_options o = fx_opts(dirs, 1);
    struct node_store *st = NULL;
    struct cmn_err err;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "open formats an empty directory");
    if (!st)
        tap_bail("open: %s", err.msg);
    struct cmn_id uuid = node_store_uuid(st);
    ok(!cmn_id_is_zero(&uuid), "node uuid created");
    ok(fx_block_size(dir) >= 512, "superblock written (block size %u)", fx_block_size(dir));
    struct node_store_stats s;
    node_store_stats(st, &s);
    is_int(s.n_disks, 1, "one disk");
    is_int(s.chunks, 0, "no chunks");
    ok(s.capacity_bytes > 0, "capacity known");
    ok(s.disks[0].io_backend && s.disks[0].io_backend[0], "backend: %s (%s)",
       s.disks[0].io_backend, s.disks[0].io_note);
    struct cmn_id none[4];
    is_int(node_store_corrupt_take(st, none, 4), 0, "nothing corrupt");

    /* 4 KiB chunk */
    struct cmn_id a = fx_id(1);
    is_int(fx_put(&F, st, &a, 4 * KiB, 1), 0, "put 4 KiB");
    is_int(fx_check(&F, st, &a, 0, 0, 4 * KiB, 1), 0, "whole 4 KiB chunk reads back");
    is_int(fx_check(&F, st, &a, 0, 1, 4 * KiB, 1), 0, "first byte");
    is_int(fx_check(&F, st, &a, 4 * KiB - 1, 1, 4 * KiB, 1), 0, "last byte");
    is_int(fx_check(&F, st, &a, 100, 1000, 4 * KiB, 1), 0, "middle range");
    struct node_chunk_info info;
    is_int(node_store_stat(st, &a, &info), 0, "stat");
    is_int(info.length, 4 * KiB, "stat length");
    ok(info.seq > 0 && info.created_ms > 0 && info.disk == 0, "stat seq, created, disk");
    uint8_t *tmp = malloc(MiB);
    fx_fill(tmp, 4 * KiB, 1);
    ok(info.hash == XXH3_64bits_dispatch(tmp, 4 * KiB), "stat hash is XXH3 of the data");

    /* 1 MiB chunk, ranges across the 64 KiB checksum blocks */
    struct cmn_id b = fx_id(2);
    is_int(fx_put(&F, st, &b, MiB, 2), 0, "put 1 MiB");
    is_int(fx_check(&F, st, &b, 0, 0, MiB, 2), 0, "whole 1 MiB");
    is_int(fx_check(&F, st, &b, 0, 1, MiB, 2), 0, "first byte of 1 MiB");
    is_int(fx_check(&F, st, &b, MiB - 1, 1, MiB, 2), 0, "last byte of 1 MiB");
    is_int(fx_check(&F, st, &b, 64 * KiB - 1, 2, MiB, 2), 0, "two bytes across a block edge");
    is_int(fx_check(&F, st, &b, 64 * KiB, 64 * KiB, MiB, 2), 0, "exactly block 1");
    is_int(fx_check(&F, st, &b, 100000, 300000, MiB, 2), 0, "range over several blocks");
    is_int(fx_check(&F, st, &b, 500000, 0, MiB, 2), 0, "from an offset to the end");
    is_int(fx_check(&F, st, &b, 900 * KiB, 3, MiB, 2), 0, "small range far from the header");
    struct fx_wait w;
    memset(&w, 0, sizeof(w));
    is_int(node_store_get(st, &b, MiB, 0, fx_get_cb, &w), -EINVAL, "offset at the end: EINVAL");
    is_int(node_store_get(st, &b, MiB + 5, 1, fx_get_cb, &w), -EINVAL, "offset past the end");
    is_int(node_store_get(st, &b, MiB - 10, 11, fx_get_cb, &w), -EINVAL, "range past the end");
    is_int(node_store_get(st, &b, 1, UINT64_MAX, fx_get_cb, &w), -EINVAL, "huge length");
    struct cmn_id nx = fx_id(999);
    is_int(node_store_get(st, &nx, 0, 0, fx_get_cb, &w), LODE_ENOCHUNK, "unknown id: ENOCHUNK");
    is_int(node_store_stat(st, &nx, &info), LODE_ENOCHUNK, "stat unknown id");
    ok(!w.done, "no callback for refused gets");

    /* refusals */
    is_int(fx_put(&F, st, &a, 4 * KiB, 1), -EEXIST, "same id again: EEXIST");
    struct fx_wait w1, w2;
    struct cmn_id c = fx_id(3);
    is_int(fx_put_start(st, &c, 10 * KiB, 3, &w1), 0, "put in flight");
    is_int(fx_put_start(st, &c, 10 * KiB, 3, &w2), -EEXIST, "same id while in flight: EEXIST");
    fx_wait_for(&F, &w1);
    is_int(w1.status, 0, "first put acknowledged");
    node_store_stats(st, &s);
    uint64_t used = s.used_bytes;
    struct node_put_buf pb;
    struct cmn_id d = fx_id(4);
    is_int(node_store_put_buf_alloc(st, 5000, &pb), 0, "buffer");
    fx_fill(pb.data, 5000, 4);
    memset(&w, 0, sizeof(w));
    is_int(node_store_put(st, &d, &pb, XXH3_64bits_dispatch(pb.data, 5000) ^ 1, fx_status_cb, &w),
           LODE_ECORRUPT, "wrong checksum: ECORRUPT");
    node_store_put_buf_free(&pb);
    is_int(node_store_stat(st, &d, &info), LODE_ENOCHUNK, "nothing stored");
    node_store_stats(st, &s);
    is_int(s.used_bytes, used, "used unchanged by a refused put");
    is_int(node_store_put_buf_alloc(st, MiB + 1, &pb), LODE_ETOOLARGE, "above max: ETOOLARGE");
    is_int(node_store_put_buf_alloc(st, 0, &pb), -EINVAL, "empty chunk: EINVAL");

    /* delete */
    node_store_stats(st, &s);
    used = s.used_bytes;
    uint32_t bs = fx_block_size(dir);
    is_int(fx_delete(&F, st, &b), 0, "delete");
    node_store_stats(st, &s);
    is_int(used - s.used_bytes, node_record_size(MiB, bs), "used drops by the record size");
    is_int(node_store_get(st, &b, 0, 0, fx_get_cb, &w), LODE_ENOCHUNK, "deleted: ENOCHUNK");
    is_int(node_store_stat(st, &b, &info), LODE_ENOCHUNK, "deleted: stat ENOCHUNK");
    is_int(fx_delete(&F, st, &b), LODE_ENOCHUNK, "delete again: ENOCHUNK");
    is_int(fx_check(&F, st, &a, 0, 0, 4 * KiB, 1), 0, "others unaffected");
    check_accounting(st, dir, "after puts and a delete");
    free(tmp);

    fx_close(&F, st);
    st = NULL;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "reopen");
    if (!st)
        tap_bail("reopen: %s", err.msg);
    struct cmn_id u2 = node_store_uuid(st);
    is_int(cmn_id_cmp(&uuid, &u2), 0, "same node uuid after reopen");
    is_int(fx_check(&F, st, &a, 0, 0, 4 * KiB, 1), 0, "4 KiB chunk after reopen");
    is_int(fx_check(&F, st, &c, 0, 0, 10 * KiB, 3), 0, "10 KiB chunk after reopen");
    is_int(node_store_stat(st, &b, &info), LODE_ENOCHUNK, "deleted chunk stays deleted");
    check_accounting(st, dir, "after reopen");

    /* the same directory cannot be opened twice */
    struct node_store *st2 = NULL;
    is_int(node_store_open(&F.loop, &o, &st2, &err), -EBUSY, "second open: EBUSY");
    ok(strstr(err.msg, "in use") && strstr(err.msg, dir), "message says who: %s", err.msg);
    fx_close(&F, st);

    /* another cluster's disk */
    o.cluster = "other-cluster";
    is_int(node_store_open(&F.loop, &o, &st2, &err), LODE_EWRONGDISK, "wrong cluster refused");
    ok(strstr(err.msg, dir) && strstr(err.msg, "test-cluster"), "names dir and cluster: %s",
       err.msg);
}

static void test_refusals(void)
{
    const char *a = fx_path(&F, "node-a"), *b = fx_path(&F, "node-b");
    const char *da[] = {a}, *db[] = {b};
    struct node_store_options o = fx_opts(da, 1);
    struct node_store *st = NULL;
    struct cmn_err err;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "node A formats its disk");
    fx_close(&F, st);
    o = fx_opts(db, 1);
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "node B formats its disk");
    fx_close(&F, st);
    const char *both[] = {a, b};
    o = fx_opts(both, 2);
    is_int(node_store_open(&F.loop, &o, &st, &err), LODE_EWRONGDISK,
           "a disk of another node refused");
    ok(strstr(err.msg, b) && strstr(err.msg, "another node"), "names the directory: %s",
       err.msg);

    /* A single-disk node knows who it is only through node-uuid: with it, node B's disk
     * moved into node A is refused, a new disk is formatted with A's identity. */
    o = fx_opts(da, 1);
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "node A reopens its disk");
    struct cmn_id ua = node_store_uuid(st);
    fx_close(&F, st);
    o = fx_opts(db, 1);
    o.node_uuid = &ua;
    is_int(node_store_open(&F.loop, &o, &st, &err), LODE_EWRONGDISK,
           "with node-uuid, a single disk of another node is refused");
    ok(strstr(err.msg, b) && strstr(err.msg, "node-uuid"), "names the directory and why: %s",
       err.msg);
    o = fx_opts(da, 1);
    o.node_uuid = &ua;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "its own disk is accepted");
    fx_close(&F, st);
    const char *fresh = fx_path(&F, "node-a-new-disk");
    const char *df[] = {fresh};
    o = fx_opts(df, 1);
    o.node_uuid = &ua;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "a new disk is formatted");
    if (st) {
        struct cmn_id un = node_store_uuid(st);
        is_int(cmn_id_cmp(&un, &ua), 0, "... with the configured identity");
        fx_close(&F, st);
    }

    const char *junk = fx_path(&F, "junk");
    mkdir(junk, 0755);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/precious.txt", junk);
    FILE *fp = fopen(p, "w");
    if (fp)
        fclose(fp);
    const char *dj[] = {junk};
    o = fx_opts(dj, 1);
    is_int(node_store_open(&F.loop, &o, &st, &err), LODE_EWRONGDISK,
           "non-empty directory without superblock refused");
    ok(access(p, F_OK) == 0, "and left alone");

    const char *small = fx_path(&F, "small");
    const char *ds[] = {small};
    o = fx_opts(ds, 1);
    o.volume_size = 1 * MiB;
    o.max_chunk_size = 1 * MiB;
    is_int(node_store_open(&F.loop, &o, &st, &err), LODE_ECONFIG,
           "volume too small for the max chunk: ECONFIG");
    o = fx_opts(ds, 1);
    o.cluster = "";
    is_int(node_store_open(&F.loop, &o, &st, &err), LODE_ECONFIG, "no cluster name: ECONFIG");

    /* two fresh disks get the same node uuid; order does not matter later */
    const char *x = fx_path(&F, "two-x"), *y = fx_path(&F, "two-y");
    const char *xy[] = {x, y}, *yx[] = {y, x};
    o = fx_opts(xy, 2);
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "two fresh disks");
    struct cmn_id u = node_store_uuid(st);
    for (int i = 0; i < 16; i++) {
        struct cmn_id id = fx_id(100 + (uint64_t)i);
        is_int(fx_put(&F, st, &id, 64 * KiB, 100 + (uint64_t)i), 0, "put %d on two disks", i);
    }
    struct node_store_stats s;
    node_store_stats(st, &s);
    ok(s.disks[0].chunks > 0 && s.disks[1].chunks > 0, "both disks used (%llu + %llu)",
       (unsigned long long)s.disks[0].chunks, (unsigned long long)s.disks[1].chunks);
    fx_close(&F, st);
    o = fx_opts(yx, 2);
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "reopen in the other order");
    struct cmn_id u2 = node_store_uuid(st);
    is_int(cmn_id_cmp(&u, &u2), 0, "same node uuid");
    int good = 0;
    for (int i = 0; i < 16; i++) {
        struct cmn_id id = fx_id(100 + (uint64_t)i);
        good += fx_check(&F, st, &id, 0, 0, 64 * KiB, 100 + (uint64_t)i) == 0;
    }
    is_int(good, 16, "every chunk found on either disk");
    fx_close(&F, st);
}

#define MANY 120

static void test_many(void)
{
    const char *dir = fx_path(&F, "many");
    const char *dirs[] = {dir};
    struct node_store_options o = fx_opts(dirs, 1);
    o.volume_size = 2 * MiB;
    o.max_chunk_size = 256 * KiB;
    struct node_store *st = NULL;
    struct cmn_err err;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "open with 2 MiB volumes");
    static struct fx_wait w[MANY];
    static size_t len[MANY];
    int started = 0;
    for (int i = 0; i < MANY; i++) {
        len[i] = 1 + (size_t)((i * 7919u) % (200 * KiB));
        struct cmn_id id = fx_id(1000 + (uint64_t)i);
        started += fx_put_start(st, &id, len[i], 1000 + (uint64_t)i, &w[i]) == 0;
    }
    is_int(started, MANY, "%d puts in flight", MANY);
    int acked = 0;
    for (int i = 0; i < MANY; i++) {
        fx_wait_for(&F, &w[i]);
        acked += w[i].status == 0;
    }
    is_int(acked, MANY, "all acknowledged");
    uint32_t ids[64];
    size_t nv = fx_volumes(dir, ids, 64);
    ok(nv >= 5, "spread over %zu volumes", nv);
    uint32_t bs = fx_block_size(dir);
    int sealed = 0;
    for (size_t i = 0; i + 2 < nv; i++) {
        static struct fx_rec r[4096];
        int n = fx_records(dir, ids[i], bs, r, 4096, NULL);
        sealed += n > 0 && r[n - 1].rh.type == NODE_REC_SEAL;
    }
    is_int(sealed, (int)nv - 2, "every full volume ends with a SEAL record");

    /* concurrent verified reads */
    static struct fx_wait g[MANY];
    for (int i = 0; i < MANY; i++) {
        struct cmn_id id = fx_id(1000 + (uint64_t)i);
        memset(&g[i], 0, sizeof(g[i]));
        node_store_get(st, &id, 0, 0, fx_get_cb, &g[i]);
    }
    int same = 0;
    uint8_t *want = malloc(200 * KiB);
    for (int i = 0; i < MANY; i++) {
        fx_wait_for(&F, &g[i]);
        fx_fill(want, len[i], 1000 + (uint64_t)i);
        same += g[i].status == 0 && g[i].rd->len == len[i] &&
                !memcmp(g[i].rd->data, want, len[i]);
        node_read_release(g[i].rd);
    }
    free(want);
    is_int(same, MANY, "%d concurrent reads return the exact bytes", MANY);

    /* paged listing in id order */
    struct node_chunk_info page[7];
    struct cmn_id after, prev;
    bool first = true, more = true, ordered = true;
    int total = 0, pages = 0;
    while (more && pages < 100) {
        size_t n;
        is_int(node_store_list(st, first ? NULL : &after, 7, page, &n, &more), 0, "list page");
        for (size_t i = 0; i < n; i++) {
            if (total > 0 && cmn_id_cmp(&prev, &page[i].id) >= 0)
                ordered = false;
            prev = page[i].id;
            total++;
        }
        if (n)
            after = page[n - 1].id;
        first = false;
        pages++;
    }
    is_int(total, MANY, "listing returns every chunk once");
    ok(ordered, "in strictly increasing id order");
    is_int(pages, (MANY + 6) / 7, "7 per page");
    size_t n0;
    bool m0;
    is_int(node_store_list(st, &prev, 7, page, &n0, &m0), 0, "list after the last id");
    ok(n0 == 0 && !m0, "nothing after the last id");
    check_accounting(st, dir, "many puts");
    fx_close(&F, st);
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "reopen");
    int back = 0;
    for (int i = 0; i < MANY; i++) {
        struct cmn_id id = fx_id(1000 + (uint64_t)i);
        back += fx_check(&F, st, &id, 0, 0, len[i], 1000 + (uint64_t)i) == 0;
    }
    is_int(back, MANY, "everything back after reopen");
    check_accounting(st, dir, "many puts reopened");
    fx_close(&F, st);
}

#define CN 48
#define CLEN (90 * KiB)

struct reader {
    struct node_store *st;
    int next, issued, good, bad;
    bool stop;
    struct fx_wait w;
    bool busy;
};

static void reader_go(struct reader *r);

static void reader_cb(void *data, int status, struct node_read *rd)
{
    struct reader *r = data;
    r->busy = false;
    int i = r->next;
    uint8_t *want = malloc(CLEN);
    fx_fill(want, CLEN, 5000 + (uint64_t)i);
    if (status == 0 && rd->len == CLEN && !memcmp(rd->data, want, CLEN)) {
        r->good++;
    } else {
        r->bad++;
        diag("read of chunk %d during compaction: %s", i, lode_strerror(status));
    }
    free(want);
    node_read_release(rd);
    r->next = r->next + 5 < CN ? r->next + 5 : 0; /* survivors are the multiples of 5 */
    if (!r->stop)
        reader_go(r);
}

static void reader_go(struct reader *r)
{
    struct cmn_id id = fx_id(5000 + (uint64_t)r->next);
    r->busy = true;
    r->issued++;
    int rc = node_store_get(r->st, &id, 0, 0, reader_cb, r);
    if (rc) {
        r->busy = false;
        r->bad++;
        diag("get of chunk %d refused: %s", r->next, lode_strerror(rc));
    }
}

static void test_compaction(void)
{
    const char *dir = fx_path(&F, "compact");
    const char *dirs[] = {dir};
    struct node_store_options o = fx_opts(dirs, 1);
    o.volume_size = 1 * MiB;
    o.max_chunk_size = 128 * KiB;
    struct cmn_metrics *m = NULL;
    cmn_metrics_create(&m);
    o.metrics = m;
    struct node_store *st = NULL;
    struct cmn_err err;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "open with 1 MiB volumes");
    int acked = 0;
    for (int i = 0; i < CN; i++) {
        struct cmn_id id = fx_id(5000 + (uint64_t)i);
        acked += fx_put(&F, st, &id, CLEN, 5000 + (uint64_t)i) == 0;
    }
    is_int(acked, CN, "%d chunks of 90 KiB", CN);
    uint32_t ids[128];
    size_t before = fx_volumes(dir, ids, 128);
    ok(before >= 5, "%zu volumes", before);
    int deleted = 0;
    for (int i = 0; i < CN; i++) {
        if (i % 5 == 0)
            continue;
        struct cmn_id id = fx_id(5000 + (uint64_t)i);
        deleted += fx_delete(&F, st, &id) == 0;
    }
    is_int(deleted, CN - (CN + 4) / 5, "deleted 4 of 5");
    check_accounting(st, dir, "after deletes");

    struct reader r = {.st = st};
    reader_go(&r);
    struct fx_wait cw;
    memset(&cw, 0, sizeof(cw));
    is_int(node_store_compact(st, fx_status_cb, &cw), 0, "compaction started");
    fx_wait_for(&F, &cw);
    r.stop = true;
    while (r.busy)
        uv_run(&F.loop, UV_RUN_ONCE);
    is_int(cw.status, 0, "compaction done");
    ok(r.good > 0 && r.bad == 0, "%d reads during compaction, all exact (%d bad)", r.good,
       r.bad);
    size_t after = fx_volumes(dir, ids, 128);
    ok(after < before, "volumes reclaimed: %zu -> %zu", before, after);
    check_accounting(st, dir, "after compaction");
    int good = 0, gone = 0;
    for (int i = 0; i < CN; i++) {
        struct cmn_id id = fx_id(5000 + (uint64_t)i);
        if (i % 5 == 0)
            good += fx_check(&F, st, &id, 0, 0, CLEN, 5000 + (uint64_t)i) == 0;
        else
            gone += fx_check(&F, st, &id, 0, 0, CLEN, 0) == LODE_ENOCHUNK;
    }
    is_int(good, (CN + 4) / 5, "survivors identical");
    is_int(gone, CN - (CN + 4) / 5, "deleted ones absent");
    struct cmn_buf out = {0};
    cmn_metrics_render(m, &out);
    cmn_buf_terminate(&out);
    ok(out.data && strstr((char *)out.data, "lode_node_store_ops_total{op=\"put\"} 48"),
       "put counter in the metrics");
    ok(out.data && strstr((char *)out.data, "lode_node_store_compacted_bytes_total"),
       "compaction counter in the metrics");
    ok(out.data && strstr((char *)out.data, "lode_node_disk_queue_depth{disk="),
       "queue depth gauge per disk");
    cmn_buf_free(&out);
    fx_close(&F, st);

    o.metrics = NULL;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "reopen after compaction");
    good = gone = 0;
    for (int i = 0; i < CN; i++) {
        struct cmn_id id = fx_id(5000 + (uint64_t)i);
        if (i % 5 == 0)
            good += fx_check(&F, st, &id, 0, 0, CLEN, 5000 + (uint64_t)i) == 0;
        else
            gone += fx_check(&F, st, &id, 0, 0, CLEN, 0) == LODE_ENOCHUNK;
    }
    is_int(good, (CN + 4) / 5, "survivors identical after reopen");
    is_int(gone, CN - (CN + 4) / 5, "deleted ones stay deleted after reopen");
    check_accounting(st, dir, "reopened after compaction");

    /* the timer compacts by itself once a sealed volume is mostly dead */
    before = fx_volumes(dir, ids, 128);
    for (int i = 0; i < 30; i++) {
        struct cmn_id id = fx_id(7000 + (uint64_t)i);
        fx_put(&F, st, &id, CLEN, 7000 + (uint64_t)i);
    }
    size_t full = fx_volumes(dir, ids, 128);
    for (int i = 0; i < 30; i++) {
        struct cmn_id id = fx_id(7000 + (uint64_t)i);
        fx_delete(&F, st, &id);
    }
    size_t now = full;
    for (int t = 0; t < 100 && now >= full; t++) {
        fx_run_ms(&F, 100);
        now = fx_volumes(dir, ids, 128);
    }
    ok(now < full, "automatic compaction: %zu -> %zu volumes", full, now);
    check_accounting(st, dir, "after automatic compaction");
    fx_close(&F, st);
    cmn_metrics_destroy(m);
}

static void test_close_in_flight(void)
{
    const char *dir = fx_path(&F, "closing");
    const char *dirs[] = {dir};
    struct node_store_options o = fx_opts(dirs, 1);
    struct node_store *st = NULL;
    struct cmn_err err;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "open");
    struct fx_wait w[8];
    for (int i = 0; i < 8; i++) {
        struct cmn_id id = fx_id(9000 + (uint64_t)i);
        fx_put_start(st, &id, 100 * KiB, 9000 + (uint64_t)i, &w[i]);
    }
    struct fx_wait cw;
    memset(&cw, 0, sizeof(cw));
    is_int(node_store_compact(st, fx_status_cb, &cw), 0, "compaction requested");
    int done = 0;
    node_store_close(st, fx_closed, &done);
    ok(!done && !cw.done, "no callback inside node_store_close");
    while (!done)
        uv_run(&F.loop, UV_RUN_ONCE);
    ok(cw.done && (cw.status == 0 || cw.status == LODE_ESHUTDOWN),
       "compaction callback ran before the close callback");
    int called = 0, okay = 0;
    for (int i = 0; i < 8; i++) {
        called += w[i].done;
        okay += w[i].done && (w[i].status == 0 || w[i].status == LODE_ESHUTDOWN);
    }
    is_int(called, 8, "every callback ran before the close callback");
    is_int(okay, 8, "with 0 or ESHUTDOWN");
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "reopen");
    int found = 0;
    for (int i = 0; i < 8; i++) {
        struct cmn_id id = fx_id(9000 + (uint64_t)i);
        int rc = fx_check(&F, st, &id, 0, 0, 100 * KiB, 9000 + (uint64_t)i);
        found += w[i].status == 0 ? rc == 0 : (rc == 0 || rc == LODE_ENOCHUNK);
    }
    is_int(found, 8, "acknowledged chunks are there, intact");
    fx_close(&F, st);
}

/* A configured capacity limit stands in for a small file system: writers get
 * LODE_ENOSPACE, reads and deletes go on, and space comes back after compaction. */
static void test_full(void)
{
    const char *dir = fx_path(&F, "full");
    const char *dirs[] = {dir};
    struct node_store_options o = fx_opts(dirs, 1);
    o.volume_size = 1 * MiB;
    o.max_chunk_size = 128 * KiB;
    o.capacity_limit = 4 * MiB;
    o.sync_delay_us = 500; /* group commit with a short wait */
    struct node_store *st = NULL;
    struct cmn_err err;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "open with a 4 MiB limit");
    int stored = 0, rc = 0;
    while (stored < 100) {
        struct cmn_id id = fx_id(11000 + (uint64_t)stored);
        rc = fx_put(&F, st, &id, 100 * KiB, 11000 + (uint64_t)stored);
        if (rc)
            break;
        stored++;
    }
    is_int(rc, LODE_ENOSPACE, "writer told: insufficient storage (after %d chunks)", stored);
    ok(stored >= 20, "the space before the reserve was used (%d x 100 KiB)", stored);
    struct node_store_stats s;
    node_store_stats(st, &s);
    ok(s.disks[0].full, "disk reported full");
    ok(s.used_bytes <= s.capacity_bytes, "used %llu within capacity %llu",
       (unsigned long long)s.used_bytes, (unsigned long long)s.capacity_bytes);
    struct cmn_id id = fx_id(99999);
    is_int(fx_put(&F, st, &id, 100 * KiB, 1), LODE_ENOSPACE, "and again");
    int good = 0;
    for (int i = 0; i < stored; i++) {
        struct cmn_id c = fx_id(11000 + (uint64_t)i);
        good += fx_check(&F, st, &c, 0, 0, 100 * KiB, 11000 + (uint64_t)i) == 0;
    }
    is_int(good, stored, "every stored chunk still reads");
    int deleted = 0;
    for (int i = 0; i < stored; i += 2) {
        struct cmn_id c = fx_id(11000 + (uint64_t)i);
        deleted += fx_delete(&F, st, &c) == 0;
    }
    is_int(deleted, (stored + 1) / 2, "deletes work on a full disk");
    is_int(fx_compact(&F, st), 0, "compaction on a full disk");
    int more = 0;
    for (int i = 0; i < 5; i++) {
        struct cmn_id c = fx_id(12000 + (uint64_t)i);
        more += fx_put(&F, st, &c, 100 * KiB, 12000 + (uint64_t)i) == 0;
    }
    is_int(more, 5, "room again after compaction");
    check_accounting(st, dir, "full disk");
    fx_close(&F, st);
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "reopen");
    good = 0;
    for (int i = 1; i < stored; i += 2) {
        struct cmn_id c = fx_id(11000 + (uint64_t)i);
        good += fx_check(&F, st, &c, 0, 0, 100 * KiB, 11000 + (uint64_t)i) == 0;
    }
    is_int(good, stored / 2, "survivors intact after reopen");
    fx_close(&F, st);
}

static void test_max_chunk(void)
{
    const char *dir = fx_path(&F, "max");
    const char *dirs[] = {dir};
    struct node_store_options o = fx_opts(dirs, 1);
    o.max_chunk_size = 3 * MiB;
    struct node_store *st = NULL;
    struct cmn_err err;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "open with a 3 MiB max chunk");
    struct cmn_id id = fx_id(42);
    is_int(fx_put(&F, st, &id, 3 * MiB, 42), 0, "max-size chunk stored");
    is_int(fx_check(&F, st, &id, 0, 0, 3 * MiB, 42), 0, "and read back");
    is_int(fx_check(&F, st, &id, 3 * MiB - 70000, 70000, 3 * MiB, 42), 0, "its tail");
    struct node_put_buf b;
    is_int(node_store_put_buf_alloc(st, 3 * MiB + 1, &b), LODE_ETOOLARGE, "one byte more");
    fx_close(&F, st);
}

/* Two data directories on one file system (both under $TEST_TMPDIR): its size is counted
 * once, split between them, so the node never reports space that does not exist. */
static void test_shared_fs(void)
{
    const char *a = fx_path(&F, "shared-a");
    const char *b = fx_path(&F, "shared-b");
    const char *dirs[] = {a, b};
    struct node_store_options o = fx_opts(dirs, 2);
    struct node_store *st = NULL;
    struct cmn_err err;
    is_int(node_store_open(&F.loop, &o, &st, &err), 0, "open two directories on one fs");
    if (!st)
        tap_bail("open: %s", err.msg);
    struct statvfs sv;
    struct stat sa, sb;
    if (statvfs(a, &sv) != 0 || stat(a, &sa) != 0 || stat(b, &sb) != 0)
        tap_bail("statvfs %s: %s", a, strerror(errno));
    ok(sa.st_dev == sb.st_dev, "both directories are on one file system");
    uint64_t fs = (uint64_t)sv.f_blocks * sv.f_frsize;
    uint64_t n = fs / 2 / o.volume_size;
    uint64_t each = n > 1 ? (n - 1) * (o.volume_size - 64 * KiB) : 0;
    struct node_store_stats s;
    node_store_stats(st, &s);
    is_int(s.n_disks, 2, "two disks");
    ok(s.capacity_bytes <= fs, "capacity %llu <= the file system's %llu bytes",
       (unsigned long long)s.capacity_bytes, (unsigned long long)fs);
    is_int(s.disks[0].capacity_bytes, each, "first directory: half the file system");
    is_int(s.disks[1].capacity_bytes, each, "second directory: the other half");
    is_int(s.capacity_bytes, 2 * each, "total counts the file system once");
    fx_close(&F, st);
}

int main(void)
{
    fx_init(&F, "test_store");
    test_basics();
    test_refusals();
    test_many();
    test_compaction();
    test_close_in_flight();
    test_full();
    test_max_chunk();
    test_shared_fs();
    fx_done(&F);
    return tap_done();
}
