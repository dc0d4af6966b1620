/* Crash recovery and corruption, simulated on the files of a closed store (no process is
 * killed): the tail of the unsealed volume torn, zeroed or flipped, holes before valid
 * records, and damage to data, checksums and headers of sealed volumes. */
#include "tests/unit/node/store_fixture.h"

static struct fx F;

#define KiB 1024u
#define MiB (1024u * 1024u)
#define K 6
#define LEN (20 * KiB)

static struct node_store *open_dir(const char *dir, uint64_t vsize, uint64_t max_chunk)
{
    const char *dirs[] = {dir};
    struct node_store_options o = fx_opts(dirs, 1);
    o.volume_size = vsize;
    o.max_chunk_size = max_chunk;
    struct node_store *st = NULL;
    struct cmn_err err;
    if (node_store_open(&F.loop, &o, &st, &err) != 0) {
        diag("open %s: %s", dir, err.msg);
        return NULL;
    }
    return st;
}

/* A clean stop seals the active volume; a crash leaves it without that SEAL (everything
 * else on disk is the same, since every acknowledged record was synced). */
static void unseal(const char *dir, uint32_t id)
{
    uint32_t bs = fx_block_size(dir);
    static struct fx_rec r[256];
    int n = fx_records(dir, id, bs, r, 256, NULL);
    if (n > 0 && r[n - 1].rh.type == NODE_REC_SEAL) {
        uint8_t *z = calloc(1, bs);
        fx_poke(dir, id, r[n - 1].off, z, bs);
        free(z);
    }
}

/* K acknowledged chunks in volume 1 of a fresh directory, then a crash. */
static void write_tail(const char *dir, uint64_t base)
{
    struct node_store *st = open_dir(dir, 4 * MiB, MiB);
    if (!st)
        tap_bail("open %s", dir);
    int acked = 0;
    for (int i = 0; i < K; i++) {
        struct cmn_id id = fx_id(base + (uint64_t)i);
        acked += fx_put(&F, st, &id, LEN, base + (uint64_t)i) == 0;
    }
    is_int(acked, K, "%d chunks acknowledged", K);
    fx_close(&F, st);
    unseal(dir, 1);
}

static int count_intact(struct node_store *st, uint64_t base, int from, int to)
{
    int n = 0;
    for (int i = from; i < to; i++) {
        struct cmn_id id = fx_id(base + (uint64_t)i);
        n += fx_check(&F, st, &id, 0, 0, LEN, base + (uint64_t)i) == 0;
    }
    return n;
}

static int status_of(struct node_store *st, uint64_t n)
{
    struct cmn_id id = fx_id(n);
    return fx_check(&F, st, &id, 0, 0, LEN, n);
}

static size_t take_all(struct node_store *st, struct cmn_id *out, size_t max)
{
    return node_store_corrupt_take(st, out, max);
}

static bool has_id(const struct cmn_id *ids, size_t n, uint64_t which)
{
    struct cmn_id id = fx_id(which);
    for (size_t i = 0; i < n; i++)
        if (!cmn_id_cmp(&ids[i], &id))
            return true;
    return false;
}

enum damage { TORN, ZERO_HEADER, FLIP_DATA };

/* The last record was being written when the node died: it must vanish, the rest stay. */
static void test_tail(enum damage how, const char *name, bool drop_ready)
{
    const char *dir = fx_path(&F, name);
    uint64_t base = 1000 * (uint64_t)(how + 1) + (drop_ready ? 500 : 0);
    write_tail(dir, base);
    uint32_t bs = fx_block_size(dir);
    static struct fx_rec r[64];
    int n = fx_records(dir, 1, bs, r, 64, NULL);
    is_int(n, K, "%s: volume 1 holds the %d records", name, K);
    struct fx_rec last = r[K - 1];
    uint64_t doff = node_record_data_offset(node_record_n_sums(last.rh.length));
    if (how == TORN) {
        /* A torn write: the second half never reached the disk (still zeros). */
        size_t half = (size_t)(last.size / 2) & ~(size_t)(bs - 1);
        uint8_t *z = calloc(1, last.size - half);
        fx_poke(dir, 1, last.off + half, z, last.size - half);
        free(z);
    } else if (how == ZERO_HEADER) {
        uint8_t *z = calloc(1, bs);
        fx_poke(dir, 1, last.off, z, bs);
        free(z);
    } else {
        fx_flip(dir, 1, last.off + doff + 1234);
    }
    uint32_t ids[8];
    size_t nv = fx_volumes(dir, ids, 8);
    if (drop_ready) {
        /* As if the node died before preparing the next volume: volume 1 is the last one. */
        for (size_t i = 0; i < nv; i++)
            if (ids[i] != 1)
                unlink(fx_vol_path(dir, ids[i]));
        nv = 1;
    }
    struct node_store *st = open_dir(dir, 4 * MiB, MiB);
    ok(st != NULL, "%s: reopens", name);
    if (!st)
        return;
    is_int(count_intact(st, base, 0, K - 1), K - 1, "%s: earlier records intact", name);
    is_int(status_of(st, base + K - 1), LODE_ENOCHUNK, "%s: the damaged record is absent",
           name);
    struct cmn_id cids[8];
    is_int(take_all(st, cids, 8), 0, "%s: not reported as corrupt (it was never acked)", name);
    int added = 0;
    for (int i = 0; i < 3; i++) {
        struct cmn_id id = fx_id(base + 100 + (uint64_t)i);
        added += fx_put(&F, st, &id, LEN, base + 100 + (uint64_t)i) == 0;
    }
    is_int(added, 3, "%s: new puts after recovery", name);
    fx_close(&F, st);

    n = fx_records(dir, 1, bs, r, 64, NULL);
    is_int(n, K - 1 + 3 + 1, "%s: appends resumed right after the last valid record (then "
           "sealed by the clean stop)", name);
    ok(n == K + 3 && r[K - 1].off == last.off && r[n - 1].rh.type == NODE_REC_SEAL,
       "%s: the first new record where the damaged one was", name);
    uint32_t ids2[8];
    is_int(fx_volumes(dir, ids2, 8), drop_ready ? 2 : nv,
           "%s: no volume left behind by the restart", name);
    st = open_dir(dir, 4 * MiB, MiB);
    ok(st != NULL, "%s: reopens again", name);
    if (!st)
        return;
    is_int(count_intact(st, base, 0, K - 1), K - 1, "%s: old records still intact", name);
    is_int(count_intact(st, base + 100, 0, 3), 3, "%s: new records intact", name);
    is_int(status_of(st, base + K - 1), LODE_ENOCHUNK, "%s: damaged record still absent", name);
    fx_close(&F, st);
}

/* A record in the middle never made it (zeros, or torn) while a later one did. Such a hole
 * needs writes in flight together: the records after it were issued before the sync that
 * would have covered it, so they carry its watermark (rewritten here, since the puts of
 * write_tail ran one at a time). */
static void test_hole(bool torn)
{
    const char *name = torn ? "hole-torn" : "hole-zero";
    const char *dir = fx_path(&F, name);
    uint64_t base = torn ? 7000 : 8000;
    write_tail(dir, base);
    uint32_t bs = fx_block_size(dir);
    static struct fx_rec r[64];
    uint64_t salt = 0;
    int n = fx_records(dir, 1, bs, r, 64, &salt);
    is_int(n, K, "%s: %d records", name, K);
    struct fx_rec mid = r[K - 3];
    for (int i = K - 2; i < K && n == K; i++) {
        uint8_t img[NODE_REC_HEAD];
        r[i].rh.synced_upto = mid.rh.synced_upto;
        node_rh_encode(&r[i].rh, salt, img);
        fx_poke(dir, 1, r[i].off, img, sizeof(img));
    }
    if (torn) {
        uint8_t *z = calloc(1, mid.size - bs);
        fx_poke(dir, 1, mid.off + bs, z, mid.size - bs);
        free(z);
    } else {
        uint8_t *z = calloc(1, bs);
        fx_poke(dir, 1, mid.off, z, bs);
        free(z);
    }
    struct node_store *st = open_dir(dir, 4 * MiB, MiB);
    ok(st != NULL, "%s: reopens", name);
    if (!st)
        return;
    is_int(count_intact(st, base, 0, K - 3), K - 3, "%s: records before the hole", name);
    is_int(status_of(st, base + K - 3), LODE_ENOCHUNK, "%s: the missing record is absent",
           name);
    is_int(count_intact(st, base, K - 2, K), 2, "%s: valid records after the hole found", name);
    /* The volume with a hole is retired and compacted away by the timer. */
    size_t left = 1;
    for (int t = 0; t < 100 && left; t++) {
        fx_run_ms(&F, 100);
        left = access(fx_vol_path(dir, 1), F_OK) == 0;
    }
    ok(!left, "%s: the volume with the hole was compacted away", name);
    is_int(count_intact(st, base, 0, K - 3) + count_intact(st, base, K - 2, K), K - 1,
           "%s: every valid record survived the move", name);
    fx_close(&F, st);
    st = open_dir(dir, 4 * MiB, MiB);
    ok(st != NULL, "%s: reopens again", name);
    if (!st)
        return;
    is_int(count_intact(st, base, 0, K - 3) + count_intact(st, base, K - 2, K), K - 1,
           "%s: still all there", name);
    is_int(status_of(st, base + K - 3), LODE_ENOCHUNK, "%s: and the missing one absent", name);
    fx_close(&F, st);
}

/* Bit rot in the unsealed volume after a crash: a record below the durable watermark was
 * acknowledged, so failing verification it is corrupt (kept, ECORRUPT, reported), not
 * dropped as a torn write. */
static void test_watermark(void)
{
    const char *dir = fx_path(&F, "watermark");
    uint64_t base = 9000;
    write_tail(dir, base);
    uint32_t bs = fx_block_size(dir);
    static struct fx_rec r[64];
    int n = fx_records(dir, 1, bs, r, 64, NULL);
    is_int(n, K, "watermark: %d records in the unsealed volume", K);
    if (n != K)
        return;
    /* One put at a time: each record was issued after the previous one was synced. */
    int stamped = r[0].rh.synced_upto * (uint64_t)bs <= r[0].off;
    for (int i = 1; i < K; i++)
        stamped += (uint64_t)r[i].rh.synced_upto * bs == r[i - 1].off + r[i - 1].size;
    is_int(stamped, K, "each header carries the end of the previous (synced) record");
    uint64_t victim = 0;
    struct cmn_id vid;
    for (uint64_t c = base; c < base + K; c++) {
        vid = fx_id(c);
        if (!memcmp(r[1].rh.chunk_id, vid.b, 16))
            victim = c;
    }
    ok(victim != 0, "the second record is one of the chunks");
    fx_flip(dir, 1, r[1].off + node_record_data_offset(node_record_n_sums(r[1].rh.length)) + 77);
    /* One header copy of the third record (its mirror) and of the fourth (the header): the
     * other copy names the chunk and keeps its synced_upto in the watermark. */
    uint64_t hv[2] = {0, 0};
    for (uint64_t c = base; c < base + K; c++) {
        struct cmn_id id = fx_id(c);
        for (int k = 0; k < 2; k++)
            if (!memcmp(r[2 + k].rh.chunk_id, id.b, 16))
                hv[k] = c;
    }
    fx_flip(dir, 1, r[2].off + sizeof(struct node_record_header) + 33);
    fx_flip(dir, 1, r[3].off + 9);
    struct node_store *st = open_dir(dir, 4 * MiB, MiB);
    ok(st != NULL, "watermark: reopens");
    if (!st)
        return;
    is_int(status_of(st, victim), LODE_ECORRUPT, "flip below the watermark: ECORRUPT");
    is_int(status_of(st, hv[0]), LODE_ECORRUPT, "damaged mirror below the watermark: ECORRUPT");
    is_int(status_of(st, hv[1]), LODE_ECORRUPT, "damaged header below the watermark: ECORRUPT");
    struct cmn_id ids[8];
    size_t nc = take_all(st, ids, 8);
    ok(nc == 3 && has_id(ids, nc, victim) && has_id(ids, nc, hv[0]) && has_id(ids, nc, hv[1]),
       "all three reported as corrupt at open (%zu)", nc);
    struct cmn_id vidc = fx_id(victim);
    struct node_chunk_info info;
    is_int(node_store_stat(st, &vidc, &info), 0, "still listed (its header is valid)");
    int good = 0;
    for (uint64_t c = base; c < base + K; c++)
        if (c != victim && c != hv[0] && c != hv[1])
            good += status_of(st, c) == 0;
    is_int(good, K - 3, "the other records intact");
    struct cmn_id more = fx_id(base + 100);
    is_int(fx_put(&F, st, &more, LEN, base + 100), 0, "puts go on");
    fx_close(&F, st);
    st = open_dir(dir, 4 * MiB, MiB);
    ok(st != NULL, "watermark: reopens after a clean stop");
    if (!st)
        return;
    is_int(status_of(st, victim), LODE_ECORRUPT, "still ECORRUPT (now verified on read)");
    is_int(status_of(st, base + 100), 0, "the new chunk intact");
    fx_close(&F, st);
}

/* The node died after the next volume took over and before the full one was sealed (and
 * while its last write was in flight): the volume is sealed at start, after its last valid
 * record. */
static void test_unsealed_middle(void)
{
    const char *dir = fx_path(&F, "middle");
    struct node_store *st = open_dir(dir, 1 * MiB, 128 * KiB);
    if (!st)
        tap_bail("open middle");
    int acked = 0;
    for (int i = 0; i < 14; i++) {
        struct cmn_id id = fx_id(40000 + (uint64_t)i);
        acked += fx_put(&F, st, &id, 100 * KiB, 40000 + (uint64_t)i) == 0;
    }
    is_int(acked, 14, "14 chunks over two volumes");
    fx_close(&F, st);
    uint32_t bs = fx_block_size(dir);
    static struct fx_rec r[64];
    int n = fx_records(dir, 1, bs, r, 64, NULL);
    ok(n >= 3 && r[n - 1].rh.type == NODE_REC_SEAL, "volume 1 was sealed (%d records)", n);
    if (n < 3)
        return;
    uint8_t *z = calloc(1, r[n - 2].size);
    fx_poke(dir, 1, r[n - 1].off, z, bs);                        /* no SEAL */
    unseal(dir, 2);                                              /* and a crash */
    fx_poke(dir, 1, r[n - 2].off + bs, z, r[n - 2].size - bs);   /* last write torn */
    free(z);
    uint64_t torn = 0;
    for (uint64_t c = 40000; c < 40014; c++) {
        struct cmn_id id = fx_id(c);
        if (!memcmp(r[n - 2].rh.chunk_id, id.b, 16))
            torn = c;
    }
    st = open_dir(dir, 1 * MiB, 128 * KiB);
    ok(st != NULL, "reopens");
    if (!st)
        return;
    int good = 0;
    for (uint64_t c = 40000; c < 40014; c++) {
        struct cmn_id id = fx_id(c);
        if (c != torn)
            good += fx_check(&F, st, &id, 0, 0, 100 * KiB, c) == 0;
    }
    is_int(good, 13, "the other chunks intact");
    struct cmn_id tid = fx_id(torn);
    is_int(fx_check(&F, st, &tid, 0, 0, 100 * KiB, torn), LODE_ENOCHUNK, "torn one absent");
    fx_close(&F, st);
    int m = fx_records(dir, 1, bs, r, 64, NULL);
    is_int(m, n - 1, "volume 1 sealed again at start");
    ok(m == n - 1 && r[m - 1].rh.type == NODE_REC_SEAL, "with its SEAL after the last valid "
       "record");
}

/* Damage while the node was down after a clean stop: reported as corruption, even in the
 * volume that was active. */
static void test_clean_stop(void)
{
    const char *dir = fx_path(&F, "clean");
    struct node_store *st = open_dir(dir, 4 * MiB, MiB);
    if (!st)
        tap_bail("open clean");
    for (int i = 0; i < K; i++) {
        struct cmn_id id = fx_id(50000 + (uint64_t)i);
        fx_put(&F, st, &id, LEN, 50000 + (uint64_t)i);
    }
    fx_close(&F, st);
    uint32_t bs = fx_block_size(dir);
    static struct fx_rec r[64];
    int n = fx_records(dir, 1, bs, r, 64, NULL);
    ok(n == K + 1 && r[K].rh.type == NODE_REC_SEAL, "a clean stop seals the active volume");
    if (n != K + 1)
        return;
    fx_flip(dir, 1, r[K - 1].off + node_record_data_offset(node_record_n_sums(r[K - 1].rh.length)) + 99);
    fx_flip(dir, 1, r[2].off + 50);                     /* one header copy */
    fx_flip(dir, 1, r[3].off + 20);                     /* both copies */
    fx_flip(dir, 1, r[3].off + sizeof(struct node_record_header) + 20);
    st = open_dir(dir, 4 * MiB, MiB);
    ok(st != NULL, "reopens");
    if (!st)
        return;
    is_int(status_of(st, 50000 + K - 1), LODE_ECORRUPT, "flipped data byte: ECORRUPT");
    is_int(status_of(st, 50002), LODE_ECORRUPT, "flipped header byte: ECORRUPT (the mirror "
           "names it)");
    is_int(status_of(st, 50003), LODE_ENOCHUNK, "both header copies flipped: unidentifiable");
    struct cmn_id ids[8];
    size_t nc = take_all(st, ids, 8);
    ok(has_id(ids, nc, 50000 + K - 1) && has_id(ids, nc, 50002) && nc == 2,
       "the data flip and the damaged header reported (%zu)", nc);
    struct node_store_stats s;
    node_store_stats(st, &s);
    is_int(s.damaged_records, 1, "the unidentifiable record counted as damaged");
    is_int(count_intact(st, 50000, 0, 2) + count_intact(st, 50000, 4, K - 1), K - 3,
           "the others intact");
    struct cmn_id more = fx_id(50100);
    is_int(fx_put(&F, st, &more, LEN, 50100), 0, "puts go on in a new volume");
    fx_close(&F, st);
}

#define SN 40
#define SLEN (100 * KiB)

static int sget(struct node_store *st, uint64_t n, uint64_t off, uint64_t len)
{
    struct cmn_id id = fx_id(n);
    return fx_check(&F, st, &id, off, len, SLEN, n);
}

static struct fx_rec *find_rec(struct fx_rec *r, int n, uint64_t which)
{
    struct cmn_id id = fx_id(which);
    for (int i = 0; i < n; i++)
        if (r[i].rh.type == NODE_REC_CHUNK && !memcmp(r[i].rh.chunk_id, id.b, 16))
            return &r[i];
    return NULL;
}

/* Damage in sealed volumes: reads fail with LODE_ECORRUPT, the chunk is reported, the scan
 * resynchronises after a broken header and finds the records that follow. */
static void test_sealed(void)
{
    const char *dir = fx_path(&F, "sealed");
    struct node_store *st = open_dir(dir, 1 * MiB, 128 * KiB);
    if (!st)
        tap_bail("open sealed");
    int acked = 0;
    for (int i = 0; i < SN; i++) {
        struct cmn_id id = fx_id(20000 + (uint64_t)i);
        acked += fx_put(&F, st, &id, SLEN, 20000 + (uint64_t)i) == 0;
    }
    is_int(acked, SN, "%d chunks of 100 KiB", SN);
    fx_close(&F, st);
    uint32_t bs = fx_block_size(dir);
    static struct fx_rec r[64];
    int n = fx_records(dir, 2, bs, r, 64, NULL);
    ok(n >= 8 && r[n - 1].rh.type == NODE_REC_SEAL, "volume 2 is sealed with %d records", n);
    if (n < 8)
        return;
    /* which chunks are records 1, 3 and 5 of volume 2 */
    uint64_t which[8];
    for (int i = 0; i < 7; i++) {
        which[i] = 0;
        for (uint64_t c = 20000; c < 20000 + SN; c++) {
            struct cmn_id id = fx_id(c);
            if (!memcmp(r[i].rh.chunk_id, id.b, 16))
                which[i] = c;
        }
    }
    uint64_t x = which[1], y = which[3], z = which[5], after = which[6];
    uint64_t doff = node_record_data_offset(node_record_n_sums(r[1].rh.length));
    fx_flip(dir, 2, r[1].off + doff + 70000);     /* X: data byte in block 1 */
    uint64_t q = which[4];
    fx_flip(dir, 2, r[3].off + 50);               /* Y: header (created_ms) */
    fx_flip(dir, 2, r[5].off + 0);                /* Z: header magic */
    fx_flip(dir, 2, r[4].off + 20);               /* Q: both copies (length) */
    fx_flip(dir, 2, r[4].off + sizeof(struct node_record_header) + 20);
    n = fx_records(dir, 3, bs, r, 64, NULL);
    struct fx_rec *wr = n > 2 ? &r[2] : NULL;
    uint64_t w = 0;
    for (uint64_t c = 20000; wr && c < 20000 + SN; c++)
        if (find_rec(wr, 1, c))
            w = c;
    if (wr)
        fx_flip(dir, 3, wr->off + NODE_REC_SUMS_OFFSET); /* W: its first block checksum */
    /* V: its second block checksum; read whole first (as the scrubber does): the whole-data
     * hash still matches, the block checksums must be checked too. */
    struct fx_rec *vr = n > 3 && r[3].rh.type == NODE_REC_CHUNK ? &r[3] : NULL;
    uint64_t v = 0;
    for (uint64_t c = 20000; vr && c < 20000 + SN; c++)
        if (find_rec(vr, 1, c))
            v = c;
    if (vr)
        fx_flip(dir, 3, vr->off + NODE_REC_SUMS_OFFSET + 8 + 3);

    st = open_dir(dir, 1 * MiB, 128 * KiB);
    ok(st != NULL, "reopens with damaged sealed volumes");
    if (!st)
        return;
    struct cmn_id ids[16];
    size_t nc = take_all(st, ids, 16);
    /* One damaged header copy: the other names the chunk, reported at open. Both copies
     * damaged: nothing can be believed (the id may be the damaged bytes), only counted. */
    ok(nc == 2 && has_id(ids, nc, y) && has_id(ids, nc, z),
       "Y and Z reported at open, nothing else (%zu)", nc);
    struct node_store_stats s;
    node_store_stats(st, &s);
    is_int(s.damaged_records, 1, "Q counted as a damaged record");
    is_int(sget(st, y, 0, 0), LODE_ECORRUPT, "chunk with a damaged header: ECORRUPT");
    is_int(sget(st, y, 0, 10), LODE_ECORRUPT, "range read of it: ECORRUPT");
    is_int(sget(st, z, 0, 0), LODE_ECORRUPT, "chunk whose header lost its magic: ECORRUPT");
    is_int(sget(st, q, 0, 0), LODE_ENOCHUNK, "chunk with both header copies damaged: absent");
    is_int(sget(st, after, 0, 0), 0, "the scan resynchronised: the next record is intact");

    is_int(sget(st, x, 0, 1000), 0, "range in the intact block of X reads");
    is_int(sget(st, x, 65536, 10000), LODE_ECORRUPT, "range in the damaged block: ECORRUPT");
    is_int(sget(st, x, 0, 0), LODE_ECORRUPT, "whole X: ECORRUPT");
    is_int(sget(st, x, 0, 1000), LODE_ECORRUPT, "once found corrupt, every read of X fails");
    nc = take_all(st, ids, 16);
    ok(has_id(ids, nc, x), "X in the corrupt list");
    is_int(take_all(st, ids, 16), 0, "taken once");

    is_int(sget(st, w, 0, 100), LODE_ECORRUPT, "damaged block checksum: range read fails");
    nc = take_all(st, ids, 16);
    ok(has_id(ids, nc, w), "W reported");
    ok(v != 0, "a second record with a damaged block checksum (V)");
    is_int(sget(st, v, 0, 0), LODE_ECORRUPT, "damaged block checksum: a whole read fails too");
    nc = take_all(st, ids, 16);
    ok(has_id(ids, nc, v), "V reported by the whole read");
    node_store_stats(st, &s);
    ok(s.corrupt_found >= 5, "corrupt_found counts them (%llu)",
       (unsigned long long)s.corrupt_found);

    int good = 0;
    for (uint64_t c = 20000; c < 20000 + SN; c++)
        if (c != x && c != y && c != z && c != w && c != v && c != q)
            good += sget(st, c, 0, 0) == 0;
    is_int(good, SN - 6, "every other chunk intact");

    /* A chunk whose header copies are both damaged is unknown to the store. */
    struct cmn_id qid = fx_id(q);
    is_int(fx_delete(&F, st, &qid), LODE_ENOCHUNK, "delete of the unidentifiable chunk: "
           "ENOCHUNK");
    /* Compaction keeps X corrupt: never "repaired" into a valid-looking copy. */
    for (uint64_t c = 20000; c < 20000 + SN; c++) {
        struct cmn_id id = fx_id(c);
        if (c != x && c != y && c != z && c != after)
            fx_delete(&F, st, &id);
    }
    is_int(fx_compact(&F, st), 0, "compaction");
    is_int(sget(st, x, 0, 0), LODE_ECORRUPT, "X still corrupt after compaction");
    is_int(sget(st, y, 0, 0), LODE_ECORRUPT, "Y still refused after compaction (reported)");
    is_int(sget(st, after, 0, 0), 0, "the survivor moved intact");
    /* Fill the volume X was moved into so that it is sealed (the reopen below then finds
     * X's damage by reading, not by the scan's check of an unsealed volume). */
    int more = 0;
    for (uint64_t c = 21000; c < 21024; c++) {
        struct cmn_id id = fx_id(c);
        more += fx_put(&F, st, &id, SLEN, c) == 0;
    }
    is_int(more, 24, "more chunks: the destination volume is sealed");
    fx_close(&F, st);

    st = open_dir(dir, 1 * MiB, 128 * KiB);
    ok(st != NULL, "reopens after compaction");
    if (!st)
        return;
    is_int(sget(st, x, 0, 0), LODE_ECORRUPT, "X still corrupt after reopen");
    /* Compaction checked Y's data against the hash of its surviving header copy and wrote
     * both copies afresh: the record is whole again, and the data proven. */
    is_int(sget(st, y, 0, 0), 0, "Y: compaction rebuilt its header, its data reads back");
    is_int(sget(st, q, 0, 0), LODE_ENOCHUNK, "the unidentifiable chunk stays absent");
    is_int(sget(st, after, 0, 0), 0, "survivor intact after reopen");
    fx_close(&F, st);
}

static void test_volume_header(void)
{
    const char *dir = fx_path(&F, "vheader");
    struct node_store *st = open_dir(dir, 1 * MiB, 128 * KiB);
    if (!st)
        tap_bail("open vheader");
    for (int i = 0; i < 20; i++) {
        struct cmn_id id = fx_id(30000 + (uint64_t)i);
        fx_put(&F, st, &id, SLEN, 30000 + (uint64_t)i);
    }
    fx_close(&F, st);
    fx_flip(dir, 1, 33); /* the salt of volume 1 */
    st = open_dir(dir, 1 * MiB, 128 * KiB);
    ok(st != NULL, "a volume with a damaged header does not stop the node");
    if (!st)
        return;
    struct node_store_stats s;
    node_store_stats(st, &s);
    ok(s.corrupt_found >= 1, "counted as corruption");
    int good = 0, gone = 0;
    for (uint64_t c = 30000; c < 30020; c++) {
        int rc = sget(st, c, 0, 0);
        good += rc == 0;
        gone += rc == LODE_ENOCHUNK;
    }
    ok(good > 0 && gone > 0 && good + gone == 20, "its chunks unavailable (%d), others intact "
       "(%d)", gone, good);
    fx_close(&F, st);
    ok(access(fx_vol_path(dir, 1), F_OK) == 0, "the damaged volume is left for inspection");
}

/* A whole read with flags; returns the status and, on success, whether the data byte at
 * `at` equals `want`. */
static int flagged_get(struct node_store *st, uint64_t n, unsigned flags, uint64_t at,
                       uint8_t want, bool *same)
{
    struct cmn_id id = fx_id(n);
    struct fx_wait w;
    memset(&w, 0, sizeof(w));
    int rc = node_store_get_flags(st, &id, 0, 0, flags, fx_get_cb, &w);
    if (rc)
        return rc;
    fx_wait_for(&F, &w);
    if (w.status)
        return w.status;
    *same = w.rd->len == SLEN && w.rd->data[at] == want;
    node_read_release(w.rd);
    return 0;
}

/* Client reads check each 64 KiB block against its block checksum; the scrubber's reads
 * (NODE_GET_CHECK_HASH) check the whole-data hash as well. A record whose data and block
 * checksum were both rewritten consistently (a forgery, not bit rot) passes the first and
 * not the second: the flag really adds the second pass. */
static void test_forged_sums(void)
{
    const char *dir = fx_path(&F, "forged");
    struct node_store *st = open_dir(dir, 1 * MiB, 128 * KiB);
    if (!st)
        tap_bail("open forged");
    for (int i = 0; i < 12; i++) {
        struct cmn_id id = fx_id(70000 + (uint64_t)i);
        if (fx_put(&F, st, &id, SLEN, 70000 + (uint64_t)i) != 0)
            tap_bail("forged: put %d", i);
    }
    fx_close(&F, st);
    uint32_t bs = fx_block_size(dir);
    static struct fx_rec r[64];
    int n = fx_records(dir, 1, bs, r, 64, NULL);
    ok(n >= 3 && r[n - 1].rh.type == NODE_REC_SEAL, "forged: volume 1 sealed (%d records)", n);
    if (n < 3)
        return;
    uint64_t victim = 0;
    for (uint64_t c = 70000; c < 70012; c++)
        if (find_rec(&r[1], 1, c))
            victim = c;
    uint64_t doff = node_record_data_offset(node_record_n_sums(r[1].rh.length));
    int fd = open(fx_vol_path(dir, 1), O_RDWR);
    uint8_t *block = malloc(NODE_SUM_BLOCK);
    bool io = fd >= 0 && block &&
              pread(fd, block, NODE_SUM_BLOCK, (off_t)(r[1].off + doff)) == NODE_SUM_BLOCK;
    uint8_t forged = io ? (uint8_t)(block[1000] ^ 0x5a) : 0;
    if (io) {
        block[1000] = forged;
        uint64_t sum = htole64(node_data_hash(block, NODE_SUM_BLOCK));
        io = pwrite(fd, &block[1000], 1, (off_t)(r[1].off + doff + 1000)) == 1 &&
             pwrite(fd, &sum, 8, (off_t)(r[1].off + NODE_REC_SUMS_OFFSET)) == 8;
    }
    if (fd >= 0)
        close(fd);
    free(block);
    ok(victim != 0 && io, "forged: data byte and its block checksum rewritten");
    st = open_dir(dir, 1 * MiB, 128 * KiB);
    ok(st != NULL, "forged: reopens");
    if (!st)
        return;
    bool same = false;
    is_int(flagged_get(st, victim, 0, 1000, forged, &same), 0,
           "forged: a client read passes the block checksums");
    ok(same, "forged: ... and returns the bytes on disk");
    is_int(flagged_get(st, victim, NODE_GET_CHECK_HASH, 1000, forged, &same), LODE_ECORRUPT,
           "forged: the scrubber's read checks the whole-data hash: ECORRUPT");
    is_int(flagged_get(st, victim, 0, 1000, forged, &same), LODE_ECORRUPT,
           "forged: from then on every read fails");
    is_int(flagged_get(st, 70000 + (victim == 70000), NODE_GET_CHECK_HASH, 0, 0, &same), 0,
           "forged: an intact chunk passes both checks");
    struct cmn_id bad = fx_id(victim);
    is_int(node_store_get_flags(st, &bad, 0, 0, 8u, fx_get_cb, NULL), -EINVAL,
           "forged: unknown flags refused");
    struct cmn_id ids[4];
    size_t nc = take_all(st, ids, 4);
    ok(nc == 1 && has_id(ids, nc, victim), "forged: reported as corrupt (%zu)", nc);
    fx_close(&F, st);
}

int main(void)
{
    fx_init(&F, "test_store_recovery");
    test_tail(TORN, "torn", false);
    test_tail(ZERO_HEADER, "zero-header", false);
    test_tail(FLIP_DATA, "flip-data", false);
    test_tail(TORN, "torn-resume", true);
    test_tail(FLIP_DATA, "flip-resume", true);
    test_unsealed_middle();
    test_watermark();
    test_clean_stop();
    test_hole(false);
    test_hole(true);
    test_sealed();
    test_volume_header();
    test_forged_sums();
    fx_done(&F);
    return tap_done();
}
