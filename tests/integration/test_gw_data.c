/* The gateway's data path against a real cluster: one lode-meta replica and six lode-nodes
 * in six failure domains on loopback, driven from a libuv loop in the test as a gateway
 * worker would. Every check compares bytes with the data written (tl_fill, a seeded
 * generator), so a wrong byte anywhere fails it.
 *   - objects of 0, 1, 4096, 300 KiB, 5 MiB + 123 and 20 MiB (4+2, 256 KiB chunks; the
 *     small ones replicated 1+2) written with objput and read back whole and with random
 *     ranges with objget, with prompt and with slow consumers; a multipart record;
 *   - a node killed while the map still says UP: small puts retry on replacement nodes;
 *   - two nodes killed: every object still reads (degraded, decoded); new writes follow the
 *     documented policy (2+2 when degraded writes are allowed, LODE_ENOSPACE otherwise);
 *     after the nodes return nothing is lost;
 *   - a byte flipped in a chunk on disk: the object reads right and the reader reports it;
 *   - an aborted put leaves its chunks in the GC queue, as does a discarded layout;
 *   - the buffered-bytes gauges never exceed their limits.
 * lode-meta runs with node-suspect-after = 1s and node-down-after = 2s.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <lode/errno.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/meta_async.h"
#include "common/meta_client.h"
#include "common/rpc_sync.h"
#include "gateway/cluster.h"
#include "gateway/nodepool.h"
#include "gateway/objget.h"
#include "gateway/objput.h"
#include "gateway/placement.h"
#include "tests/lib/gw_fixture.h"
#include "tests/lib/loop.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 10000
#define N_NODES 6
#define KIB 1024u
#define MIB (1024u * 1024u)

static uv_loop_t loop;
static struct tl_gw_fixture fx;
static uint64_t rnd_state = 0x5eed;

static uint64_t rnd(void)
{
    return gw_rand_splitmix(&rnd_state);
}

static unsigned node_index(uint32_t nid)
{
    for (unsigned i = 0; i < N_NODES; i++)
        if (fx.nids[i] == nid)
            return i;
    return N_NODES;
}

/* ---- puts ------------------------------------------------------------------------------ */

static const struct gw_layout_policy POLICY = {
    .k = 4, .m = 2, .max_chunk_size = 256 * KIB, .small_threshold = GW_SMALL_THRESHOLD_DEFAULT};

struct put {
    atomic_int done;
    atomic_int ready;
    int status;
    char message[512];
    Lode__Layout *layout;
};

static void on_put_done(void *data, int status, const char *message, Lode__Layout *layout)
{
    struct put *p = data;
    p->status = status;
    snprintf(p->message, sizeof(p->message), "%s", message);
    p->layout = layout;
    atomic_store(&p->done, 1);
}

static void on_put_ready(void *data)
{
    atomic_store(&((struct put *)data)->ready, 1);
}

static bool gauge_ok = true;

static struct gw_objput *put_create(struct put *p, uint64_t size, bool degraded, unsigned window,
                                    struct cmn_err *err, int *rc)
{
    memset(p, 0, sizeof(*p));
    struct gw_cluster_map *m = gw_cluster_map_get(fx.cl);
    struct gw_objput_config c = {.loop = &loop, .pool = fx.pool, .meta = fx.ma, .map = m,
                                 .policy = POLICY, .allow_degraded = degraded, .size = size,
                                 .seed = rnd(), .window = window, .timeout_ms = 3000,
                                 .done = on_put_done, .ready = on_put_ready, .data = p};
    struct gw_objput *op = NULL;
    *rc = gw_objput_create(&c, &op, err);
    gw_cluster_map_put(m);
    return op;
}

/* Writes `size` bytes of tl_fill(seed) in random slices, honouring backpressure. Returns
 * the layout (or NULL with p->status set). */
static Lode__Layout *put_object(uint64_t size, uint64_t seed, bool degraded, unsigned window,
                                struct gw_objput_stats *st)
{
    struct put p;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc;
    struct gw_objput *op = put_create(&p, size, degraded, window, &err, &rc);
    if (!op) {
        diag("objput create: %s", cmn_err_text(&err));
        return NULL;
    }
    uint8_t *data = malloc(size ? size : 1);
    tl_fill(data, size, seed);
    uint64_t off = 0;
    while (off < size) {
        size_t n = 1 + rnd() % (200 * KIB);
        if (n > size - off)
            n = size - off;
        atomic_store(&p.ready, 0);
        ssize_t got = gw_objput_write(op, data + off, n);
        if (got < 0)
            break;
        off += (uint64_t)got;
        if ((size_t)got < n && !tl_loop_run_until(&loop, &p.ready, T_MS)) {
            diag("no ready callback");
            break;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    free(data);
    if (off == size)
        gw_objput_finish(op);
    tl_loop_run_until(&loop, &p.done, 3 * T_MS);
    gw_objput_stats(op, st);
    if (st->buffered_max > st->buffer_limit) {
        gauge_ok = false;
        diag("objput buffered %zu > limit %zu", st->buffered_max, st->buffer_limit);
    }
    gw_objput_close(op);
    if (p.status)
        diag("put of %llu bytes: %s", (unsigned long long)size, p.message);
    return p.layout;
}

/* ---- gets ------------------------------------------------------------------------------ */

struct get {
    atomic_int done;
    int status;
    char message[512];
    struct gw_objget *g;
    uint8_t *buf;
    size_t got;
    size_t unconsumed;
    bool slow;
    int seg_errors;
    uv_timer_t slow_timer;
};

/* Every other read takes its bytes as segments (cfg.on_segs: chunk bytes spliced into
 * pipes); the totals show both ways ran. */
static unsigned n_reads;
static uint64_t spliced_total, segs_reads;

static void on_get_data(void *data, const uint8_t *p, size_t len)
{
    struct get *gt = data;
    memcpy(gt->buf + gt->got, p, len);
    gt->got += len;
    if (gt->slow)
        gt->unconsumed += len;
    else
        gw_objget_consumed(gt->g, len);
}

/* on_segs: pipe segments are read out (exactly their length), memory ones copied. */
static void on_get_segs(void *data, const struct gw_objget_seg *segs, unsigned n, size_t total)
{
    struct get *gt = data;
    size_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        sum += segs[i].len;
        if (segs[i].fd < 0) {
            memcpy(gt->buf + gt->got, segs[i].p, segs[i].len);
            gt->got += segs[i].len;
            continue;
        }
        size_t left = segs[i].len;
        while (left > 0) {
            ssize_t k = read(segs[i].fd, gt->buf + gt->got, left);
            if (k <= 0) {
                diag("pipe segment: %zu of %zu bytes missing", left, segs[i].len);
                gt->seg_errors++;
                break;
            }
            gt->got += (size_t)k;
            left -= (size_t)k;
        }
    }
    if (sum != total)
        gt->seg_errors++;
    if (gt->slow)
        gt->unconsumed += total;
    else
        gw_objget_consumed(gt->g, total);
}

static void on_get_done(void *data, int status, const char *message)
{
    struct get *gt = data;
    gt->status = status;
    snprintf(gt->message, sizeof(gt->message), "%s", message);
    atomic_store(&gt->done, 1);
}

/* A slow client: returns what it holds only now and then. */
static void on_slow(uv_timer_t *t)
{
    struct get *gt = t->data;
    if (gt->unconsumed) {
        size_t n = gt->unconsumed;
        gt->unconsumed = 0;
        gw_objget_consumed(gt->g, n);
    }
}

static size_t get_limit_max; /* largest gauge/limit ratio trouble seen */

/* Reads [off, off + len) of rec; returns the status and fills *st. `out` gets the bytes. */
static int get_range(const Lode__ObjectRecord *rec, uint64_t off, uint64_t len, bool slow,
                     uint8_t *out, struct gw_objget_stats *st)
{
    struct get gt;
    memset(&gt, 0, sizeof(gt));
    gt.buf = out;
    gt.slow = slow;
    struct gw_cluster_map *m = gw_cluster_map_get(fx.cl);
    struct gw_objget_config c = {.loop = &loop, .pool = fx.pool, .meta = fx.ma, .map = m,
                                 .record = rec, .offset = off, .length = len,
                                 .window = slow ? 2 : 0, .timeout_ms = 3000,
                                 .on_data = on_get_data, .on_done = on_get_done, .data = &gt};
    bool segs = n_reads++ % 2;
    if (segs) {
        c.on_data = NULL;
        c.on_segs = on_get_segs;
    }
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = gw_objget_create(&c, &gt.g, &err);
    gw_cluster_map_put(m);
    if (rc) {
        diag("objget create: %s", cmn_err_text(&err));
        return rc;
    }
    if (slow) {
        uv_timer_init(&loop, &gt.slow_timer);
        gt.slow_timer.data = &gt;
        uv_timer_start(&gt.slow_timer, on_slow, 3, 3);
    }
    if (!tl_loop_run_until(&loop, &gt.done, 6 * T_MS))
        gt.status = LODE_ETIMEOUT;
    if (slow)
        uv_close((uv_handle_t *)&gt.slow_timer, NULL);
    gw_objget_stats(gt.g, st);
    if (segs) {
        segs_reads++;
        spliced_total += st->spliced;
    }
    if (gt.seg_errors) {
        diag("%d segment errors", gt.seg_errors);
        gt.status = gt.status ? gt.status : LODE_EINTERNAL;
    }
    if (st->buffered_max > st->buffer_limit) {
        gauge_ok = false;
        diag("objget buffered %zu > limit %zu", st->buffered_max, st->buffer_limit);
    }
    gw_objget_close(gt.g);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (gt.status == 0 && gt.got != len) {
        diag("got %zu of %llu bytes", gt.got, (unsigned long long)len);
        return LODE_EINTERNAL;
    }
    if (gt.status)
        diag("read %llu+%llu: %s", (unsigned long long)off, (unsigned long long)len,
             gt.message);
    (void)get_limit_max;
    return gt.status;
}

/* ---- the objects ----------------------------------------------------------------------- */

struct obj {
    uint64_t size;
    uint64_t seed;
    Lode__Layout *layout;
    Lode__ObjectRecord rec;
    uint8_t *data;
};

static void obj_init(struct obj *o, uint64_t size, uint64_t seed, Lode__Layout *l)
{
    o->size = size;
    o->seed = seed;
    o->layout = l;
    lode__object_record__init(&o->rec);
    o->rec.size = size;
    o->rec.layout = l;
    o->data = malloc(size ? size : 1);
    tl_fill(o->data, size, seed);
}

/* Whole object plus `ranges` random ranges; returns how many reads were wrong. */
static unsigned check_obj(const struct obj *o, unsigned ranges, bool slow,
                          struct gw_objget_stats *sum)
{
    unsigned bad = 0;
    uint8_t *buf = malloc(o->size ? o->size : 1);
    struct gw_objget_stats st;
    for (unsigned r = 0; r <= ranges; r++) {
        uint64_t off = 0, len = o->size;
        if (r > 0 && o->size > 0) {
            off = rnd() % o->size;
            len = 1 + rnd() % (o->size - off);
            if (r % 3 == 0 && len > 70000)
                len = 1 + rnd() % 70000;
        }
        int rc = get_range(&o->rec, off, len, slow && r == 0, buf, &st);
        if (rc != 0 || memcmp(buf, o->data + off, len) != 0) {
            bad++;
            diag("object of %llu bytes: range %llu+%llu wrong (%d)",
                 (unsigned long long)o->size, (unsigned long long)off,
                 (unsigned long long)len, rc);
        }
        if (sum) {
            sum->degraded_stripes += st.degraded_stripes;
            sum->corrupt_reported += st.corrupt_reported;
            sum->stripes += st.stripes;
        }
    }
    free(buf);
    return bad;
}

static const uint64_t SIZES[] = {0, 1, 4096, 300 * KIB, 5 * MIB + 123, 20 * MIB};
#define N_OBJ (sizeof(SIZES) / sizeof(SIZES[0]))
static struct obj objs[N_OBJ];

static void test_basic(void)
{
    for (size_t i = 0; i < N_OBJ; i++) {
        struct gw_objput_stats st;
        Lode__Layout *l = put_object(SIZES[i], 100 + i, false, 0, &st);
        ok(l != NULL, "put of %llu bytes", (unsigned long long)SIZES[i]);
        if (!l)
            tap_bail("cannot go on without the object");
        obj_init(&objs[i], SIZES[i], 100 + i, l);
        diag("  %u+%u, chunk %u, %zu stripes, %llu chunk puts, buffered max %zu of %zu",
             l->k, l->m, l->chunk_size, l->n_stripes, (unsigned long long)st.chunk_puts,
             st.buffered_max, st.buffer_limit);
    }
    ok(objs[0].layout->n_stripes == 0, "the empty object has no stripes");
    ok(objs[1].layout->k == 1 && objs[1].layout->m == 2 && objs[1].layout->n_stripes == 1 &&
           objs[2].layout->k == 1,
       "1 B and 4 KiB are replicated (1+2)");
    ok(objs[3].layout->k == 4 && objs[3].layout->n_stripes == 1,
       "300 KiB is one 4+2 stripe");
    ok(objs[4].layout->k == 4 && objs[4].layout->chunk_size == 256 * KIB &&
           objs[4].layout->n_stripes == 6,
       "5 MiB + 123 is six 4+2 stripes of 256 KiB chunks (the last short)");
    const Lode__Stripe *last = objs[4].layout->stripes[5];
    ok(last->length == 123 && last->chunks[0]->nid != 0 && last->chunks[1]->nid == 0 &&
           last->chunks[4]->nid != 0 && last->chunks[5]->nid != 0,
       "the 123-byte tail stripe stores data chunk 0 and parity only");
    /* Distinct failure domains: one node per domain, so distinct nids. */
    bool distinct = true;
    for (size_t s = 0; s < objs[5].layout->n_stripes; s++) {
        const Lode__Stripe *st = objs[5].layout->stripes[s];
        for (unsigned a = 0; a < 6; a++)
            for (unsigned b = a + 1; b < 6; b++)
                distinct &= st->chunks[a]->nid != st->chunks[b]->nid;
    }
    ok(distinct, "every stripe of the 20 MiB object uses six distinct nodes");

    for (size_t i = 0; i < N_OBJ; i++) {
        unsigned ranges = SIZES[i] > 1000 ? 25 : 3;
        is_int(check_obj(&objs[i], ranges, false, NULL), 0,
               "object of %llu bytes reads back whole and in %u random ranges",
               (unsigned long long)SIZES[i], ranges);
    }
    is_int(check_obj(&objs[5], 0, true, NULL), 0,
           "the 20 MiB object read by a slow consumer (window 2)");
    ok(gauge_ok, "buffered bytes stayed within the limits");

    /* A multipart record: parts of 5 MiB + 123, 300 KiB and 1 B. */
    Lode__ObjectRecord rec = LODE__OBJECT_RECORD__INIT;
    Lode__PartInfo pi[3], *pp[3];
    size_t src[3] = {4, 3, 1};
    uint64_t total = 0;
    for (unsigned i = 0; i < 3; i++) {
        lode__part_info__init(&pi[i]);
        pi[i].number = i + 1;
        pi[i].size = objs[src[i]].size;
        pi[i].layout = objs[src[i]].layout;
        pp[i] = &pi[i];
        total += pi[i].size;
    }
    rec.size = total;
    rec.n_parts = 3;
    rec.parts = pp;
    uint8_t *want = malloc(total), *buf = malloc(total);
    uint64_t o = 0;
    for (unsigned i = 0; i < 3; i++) {
        memcpy(want + o, objs[src[i]].data, objs[src[i]].size);
        o += objs[src[i]].size;
    }
    struct gw_objget_stats st;
    unsigned bad = 0;
    for (unsigned r = 0; r < 20; r++) {
        uint64_t off = r ? rnd() % total : 0, len = r ? 1 + rnd() % (total - off) : total;
        if (r == 1) { /* across the boundary of parts 1 and 2 */
            off = objs[4].size - 1000;
            len = 2000;
        }
        if (get_range(&rec, off, len, false, buf, &st) != 0 || memcmp(buf, want + off, len))
            bad++;
    }
    is_int(bad, 0, "a three-part record reads whole, across part boundaries and in ranges");
    uint8_t dummy;
    struct gw_objget *g = NULL;
    struct gw_objget_config c = {.loop = &loop, .pool = fx.pool, .map = NULL, .record = &rec};
    struct cmn_err err;
    (void)dummy;
    pi[1].size += 1; /* the parts no longer add up to the object */
    struct gw_cluster_map *m = gw_cluster_map_get(fx.cl);
    c.map = m;
    c.on_data = on_get_data;
    c.on_done = on_get_done;
    c.length = 10;
    is_int(gw_objget_create(&c, &g, &err), LODE_ECORRUPT,
           "a record whose parts disagree with its size is refused (%s)", err.msg);
    pi[1].size -= 1;
    c.offset = total - 5;
    is_int(gw_objget_create(&c, &g, &err), -ERANGE, "a range past the end is refused");
    gw_cluster_map_put(m);
    free(want);
    free(buf);
}

/* ---- failures -------------------------------------------------------------------------- */

static void test_retry(void)
{
    /* Node 6 dies; the map still calls it UP for a while, so small puts land on it and must
     * move to replacement nodes. */
    tl_node_kill(fx.nodes[5], SIGKILL);
    uint64_t retries = 0;
    unsigned good = 0;
    for (unsigned i = 0; i < 12; i++) {
        struct gw_objput_stats st;
        Lode__Layout *l = put_object(3000 + i, 900 + i, false, 0, &st);
        retries += st.retries;
        if (l) {
            struct obj o;
            obj_init(&o, 3000 + i, 900 + i, l);
            bool on_dead = false;
            for (unsigned c = 0; c < 3; c++)
                on_dead |= l->stripes[0]->chunks[c]->nid == fx.nids[5];
            good += !on_dead && check_obj(&o, 0, false, NULL) == 0;
            free(o.data);
            gw_layout_free(l);
        }
    }
    is_int(good, 12, "12 replicated puts succeed with a node dead, none placed on it");
    ok(retries > 0, "... some chunk puts moved to a replacement node (%llu)",
       (unsigned long long)retries);
}

static void test_degraded(void)
{
    /* Node 6 is dead already; node 5 follows. */
    tl_node_kill(fx.nodes[4], SIGKILL);
    struct gw_objget_stats sum = {0};
    unsigned bad = 0;
    for (size_t i = 0; i < N_OBJ; i++)
        bad += check_obj(&objs[i], SIZES[i] > 1000 ? 6 : 1, false, &sum);
    is_int(bad, 0, "two nodes down (map not yet aware): every object reads back right");
    ok(sum.degraded_stripes > 0, "... through degraded, decoded stripes (%llu)",
       (unsigned long long)sum.degraded_stripes);
    ok(tl_gw_fixture_wait_state(&fx, fx.nids[4], LODE__NODE_STATE__NODE_DOWN, 8000) &&
           tl_gw_fixture_wait_state(&fx, fx.nids[5], LODE__NODE_STATE__NODE_DOWN, 8000),
       "the map marks both nodes DOWN");
    memset(&sum, 0, sizeof(sum));
    bad = 0;
    for (size_t i = 0; i < N_OBJ; i++)
        bad += check_obj(&objs[i], SIZES[i] > 1000 ? 4 : 1, i == 5, &sum);
    is_int(bad, 0, "with the map aware: every object reads (the down nodes are skipped)");
    ok(gauge_ok, "buffered bytes stayed within the limits in degraded reads");

    /* Writes with 4 of 6 domains: the documented policy. */
    struct put p;
    struct cmn_err err;
    int rc;
    struct gw_objput *op = put_create(&p, 5 * MIB, false, 0, &err, &rc);
    ok(op == NULL && rc == LODE_ENOSPACE,
       "4+2 without degraded writes: refused, LODE_ENOSPACE (%s)", err.msg);
    struct gw_objput_stats st;
    Lode__Layout *l = put_object(5 * MIB + 7, 777, true, 0, &st);
    ok(l && l->k == 2 && l->m == 2, "with degraded writes allowed: written as 2+2");
    if (l) {
        gw_layout_free(objs[0].layout); /* the empty object's slot is reused */
        free(objs[0].data);
        obj_init(&objs[0], 5 * MIB + 7, 777, l);
        is_int(check_obj(&objs[0], 5, false, NULL), 0, "... and reads back");
    }
    l = put_object(1000, 778, false, 0, &st);
    ok(l && l->k == 1 && l->m == 2, "a small object is still written as 3 replicas");
    gw_layout_free(l);

    /* The nodes come back. */
    struct cmn_err e2;
    ok(tl_node_run(fx.nodes[4], &e2) == 0 && tl_node_run(fx.nodes[5], &e2) == 0,
       "the two nodes restart");
    ok(tl_gw_fixture_wait_state(&fx, fx.nids[4], LODE__NODE_STATE__NODE_UP, 10000) &&
           tl_gw_fixture_wait_state(&fx, fx.nids[5], LODE__NODE_STATE__NODE_UP, 10000),
       "... and are UP again");
    tl_loop_run_for(&loop, 1500); /* past the pool's hold on them */
    bad = 0;
    for (size_t i = 0; i < N_OBJ; i++)
        bad += check_obj(&objs[i], 2, false, NULL);
    is_int(bad, 0, "after they return, everything reads back");
}

/* Flips one byte of the first occurrence of `pat` in the files under dir. */
static bool flip_in_dir(const char *dir, const uint8_t *pat, size_t plen)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    bool done = false;
    while (!done && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            done = flip_in_dir(path, pat, plen);
            continue;
        }
        int fd = open(path, O_RDWR);
        if (fd < 0)
            continue;
        uint8_t *buf = malloc((size_t)sb.st_size + 1);
        if (pread(fd, buf, (size_t)sb.st_size, 0) == sb.st_size) {
            uint8_t *hit = memmem(buf, (size_t)sb.st_size, pat, plen);
            if (hit) {
                uint8_t b = hit[plen / 2] ^ 0x40;
                done = pwrite(fd, &b, 1, (hit - buf) + (off_t)(plen / 2)) == 1;
                fdatasync(fd);
            }
        }
        free(buf);
        close(fd);
    }
    closedir(d);
    return done;
}

static void test_corrupt(void)
{
    /* The 300 KiB object: one 4+2 stripe; damage data chunk 1 on its node. */
    struct obj *o = &objs[3];
    const Lode__ChunkRef *ref = o->layout->stripes[0]->chunks[1];
    unsigned ni = node_index(ref->nid);
    uint32_t cs = o->layout->chunk_size;
    tl_node_kill(fx.nodes[ni], SIGKILL);
    bool flipped = flip_in_dir(fx.nodes[ni]->dir_list[0], o->data + cs + 1000, 64);
    ok(flipped, "a byte of data chunk 1 flipped in node %u's volume", ni + 1);
    struct cmn_err err;
    ok(tl_node_run(fx.nodes[ni], &err) == 0, "the node restarts");
    tl_loop_run_for(&loop, 1500);
    struct gw_objget_stats sum = {0};
    is_int(check_obj(o, 0, false, &sum), 0, "the object still reads back right");
    ok(sum.degraded_stripes == 1 && sum.corrupt_reported == 1,
       "... rebuilt around the damaged chunk, which was reported (%llu, %llu)",
       (unsigned long long)sum.degraded_stripes, (unsigned long long)sum.corrupt_reported);
    bool listed = false;
    uint64_t deadline = cmn_mono_ms() + 5000;
    while (!listed && cmn_mono_ms() < deadline) {
        Lode__CorruptListResponse *cl_ = NULL;
        if (tl_meta_corrupt_list(fx.mc, ref->nid, T_MS, &cl_, NULL) == 0) {
            for (size_t i = 0; i < cl_->n_chunks; i++)
                listed |= cl_->chunks[i]->chunk_id.len == 16 &&
                          memcmp(cl_->chunks[i]->chunk_id.data, ref->chunk_id.data, 16) == 0;
            lode__corrupt_list_response__free_unpacked(cl_, NULL);
        }
        if (!listed)
            tl_loop_run_for(&loop, 100);
    }
    ok(listed, "meta lists the chunk as corrupt");
}

/* GC_LIST: entries with `reason`. */
static int gc_count(const char *reason)
{
    Lode__GcListResponse *l = NULL;
    if (tl_meta_gc_list(fx.mc, 100000, T_MS, &l, NULL) != 0)
        return -1;
    int n = 0;
    for (size_t i = 0; i < l->n_entries; i++)
        n += strcmp(l->entries[i]->reason, reason) == 0;
    lode__gc_list_response__free_unpacked(l, NULL);
    return n;
}

static bool wait_gc(const char *reason, int want)
{
    uint64_t deadline = cmn_mono_ms() + 5000;
    while (gc_count(reason) < want && cmn_mono_ms() < deadline)
        tl_loop_run_for(&loop, 50);
    return gc_count(reason) == want;
}

static void test_abort(void)
{
    int before = gc_count("aborted put");
    struct put p;
    struct cmn_err err;
    int rc;
    struct gw_objput *op = put_create(&p, 5 * MIB, false, 0, &err, &rc);
    uint8_t *data = malloc(2 * MIB + 5);
    tl_fill(data, 2 * MIB + 5, 4242);
    ssize_t took = gw_objput_write(op, data, 2 * MIB + 5);
    ok(took == (ssize_t)(2 * MIB + 5), "2 MiB + 5 of a 5 MiB put taken (window 4)");
    gw_objput_close(op); /* the client went away, two stripes in flight */
    ok(wait_gc("aborted put", before + 12), "the aborted put's 12 chunks are queued for GC");

    /* A body that ends early. */
    op = put_create(&p, 3 * MIB, false, 0, &err, &rc);
    took = gw_objput_write(op, data, 1 * MIB);
    is_int(gw_objput_finish(op), -EINVAL, "finish after 1 of 3 MiB: -EINVAL");
    ok(tl_loop_run_until(&loop, &p.done, T_MS) && p.status == -EINVAL,
       "... done reports it (%s)", p.message);
    is_int(gw_objput_write(op, data, 10), -EINVAL, "... later writes fail");
    gw_objput_close(op);
    ok(wait_gc("aborted put", before + 18), "... and its 6 chunks are queued too");
    op = put_create(&p, 100, false, 0, &err, &rc);
    is_int(gw_objput_write(op, data, 101), -EINVAL, "writing past the size: -EINVAL");
    gw_objput_close(op);
    free(data);

    int d0 = gc_count("meta refused");
    struct gw_objput_stats st;
    Lode__Layout *l = put_object(1 * MIB, 55, false, 0, &st);
    is_int(gw_objput_discard(fx.ma, l, "meta refused"), 0, "a delivered layout is discarded");
    ok(wait_gc("meta refused", d0 + 6), "... its 6 chunks are queued");
    gw_layout_free(l);
}

int main(void)
{
    cmn_log_init("test_gw_data", CMN_LOG_ERROR);
    uv_loop_init(&loop);
    struct cmn_err err;
    cmn_err_clear(&err);
    struct tl_gw_fixture_options fo = TL_GW_FIXTURE_OPTIONS_DEFAULT;
    fo.name = "gwdata";
    fo.n_nodes = N_NODES;
    fo.volume_size = "64MiB";
    fo.node_log_level = "warn";
    fo.call_timeout_ms = T_MS;
    fo.register_timeout_ms = 20000;
    fo.fail_hold_ms = 500;
    if (tl_gw_fixture_start(&fx, &loop, &fo, &err) != 0)
        tap_bail("%s", cmn_err_text(&err));
    bool up = true;
    for (unsigned i = 0; i < N_NODES; i++)
        up &= tl_gw_fixture_wait_state(&fx, fx.nids[i], LODE__NODE_STATE__NODE_UP, T_MS);
    ok(up, "six nodes UP in the map");

    test_basic();
    test_abort();
    test_retry();
    test_degraded();
    test_corrupt();
    ok(segs_reads > 0 && spliced_total > 0,
       "reads with on_segs got chunk bytes through pipes (%llu reads, %llu bytes spliced)",
       (unsigned long long)segs_reads, (unsigned long long)spliced_total);

    for (size_t i = 0; i < N_OBJ; i++) {
        gw_layout_free(objs[i].layout);
        free(objs[i].data);
    }
    tl_gw_fixture_close(&fx);
    is_int(uv_loop_close(&loop), 0, "every handle closed");
    is_int(tl_gw_fixture_crash_count(&fx), 0, "no daemon crashed");
    int rc = tap_done();
    tl_gw_fixture_destroy(&fx, rc != 0);
    return rc;
}
