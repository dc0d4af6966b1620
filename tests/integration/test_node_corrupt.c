/* Bit rot on a crashed node (kill -9, so the active volume stays unsealed): flipped bytes in
 * chunk data, in block checksums and in record headers must never be served. After a
 * restart with a fast scrubber:
 *   - the node reports, by itself (start-up scan and scrubber) and before anything reads
 *     them, every chunk whose data, block checksums or one of its two record header copies
 *     were damaged (CORRUPT_LIST on lode-meta, NODE_HEALTH), and nothing else;
 *   - every read of a chunk with damaged data fails with LODE_ECORRUPT;
 *   - a chunk with a damaged block checksum (in a sealed volume) never returns wrong bytes,
 *     and a range read of that block fails with LODE_ECORRUPT (the whole-chunk XXH3 still
 *     proves the data, so a whole read may return it);
 *   - every read of a chunk with one damaged record header copy (header or mirror) fails with
 *     LODE_ECORRUPT: the surviving copy names it;
 *   - a chunk whose two header copies were both destroyed is not found (nothing of a copy
 *     failing its check is trusted, the id included): reads say LODE_ENOCHUNK, never data,
 *     the node never reports it by id (a guess read from a damaged copy may name a chunk that
 *     never existed; finding the real one is repair's job) but counts it in NODE_HEALTH
 *     damaged_records;
 *   - data damaged in the volume that was still open at the crash, in a record below the
 *     volume's durable watermark (the largest synced_upto of its headers: that record was
 *     fdatasynced, so acknowledged): every read fails with LODE_ECORRUPT and the chunk is
 *     reported, like damage in a sealed volume (records at or above the watermark could be
 *     torn writes and are dropped by the scan; none is damaged here);
 *   - every other chunk reads back intact.
 * Volumes are parsed with the structures of node/layout.h to find where to flip.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxh_x86dispatch.h>

#include "common/clock.h"
#include "common/id.h"
#include "node/layout.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 10000
#define N_CHUNKS 48
#define SCRUB_WAIT_MS 15000

enum damage { D_NONE, D_DATA, D_DATA_OPEN, D_SUMS, D_HEADER, D_HEADER_OPEN, D_HEADERS_BOTH };

struct chunk {
    uint8_t id[16];
    uint32_t len;
    uint64_t seed;
    /* where the node put it (from the volume files) */
    int found;
    char vol[512];
    uint64_t rec_off;
    uint32_t n_sums;
    bool sealed;
    bool below_w;                  /* starts below its volume's durable watermark */
    /* what the test did to it */
    enum damage dmg;
    uint64_t flip_at;              /* data offset (D_DATA*), block index (D_SUMS) */
};

static struct chunk chunks[N_CHUNKS];
static uint64_t rng;
static uint32_t block_size;     /* of the data directory, from its superblock */

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *dmg_name(enum damage d)
{
    switch (d) {
    case D_DATA: return "data";
    case D_DATA_OPEN: return "data in the open volume";
    case D_SUMS: return "block checksum";
    case D_HEADER: return "one record header copy";
    case D_HEADER_OPEN: return "one record header copy in the open volume";
    case D_HEADERS_BOTH: return "both record header copies";
    default: return "none";
    }
}

static struct chunk *by_id(const uint8_t *id, size_t len)
{
    for (int i = 0; i < N_CHUNKS; i++)
        if (len == 16 && memcmp(chunks[i].id, id, 16) == 0)
            return &chunks[i];
    return NULL;
}

/* ---- volume parsing */

static int read_all(const char *path, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    uint8_t *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (b && got < (size_t)st.st_size) {
        ssize_t n = pread(fd, b + got, (size_t)st.st_size - got, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!b || got != (size_t)st.st_size) {
        free(b);
        return -EIO;
    }
    *out = b;
    *len = got;
    return 0;
}

/* Walks one volume's records: valid headers (magic, format, salted check) in block steps. */
static int parse_volume(const char *path, uint32_t bs, unsigned *n_records)
{
    uint8_t *v = NULL;
    size_t len = 0;
    int rc = read_all(path, &v, &len);
    if (rc != 0)
        return rc;
    struct node_volume_header vh;
    if (len < bs || bs < sizeof(vh)) {
        free(v);
        return -EINVAL;
    }
    memcpy(&vh, v, sizeof(vh));
    if (memcmp(vh.magic, NODE_VOL_MAGIC, 8) != 0) {
        free(v);
        return -EINVAL;
    }
    bool sealed = false;
    uint64_t wmark = 0;            /* max synced_upto of the volume's headers, in bytes */
    struct chunk *in_vol[N_CHUNKS];
    unsigned n_in = 0;
    for (uint64_t off = bs; off + sizeof(struct node_record_header) <= len;) {
        struct node_record_header h;
        memcpy(&h, v + off, sizeof(h));
        uint32_t check = (uint32_t)XXH3_64bits_withSeed(v + off, 60, vh.salt);
        if (h.magic != NODE_REC_MAGIC || h.format != NODE_DISK_FORMAT || h.header_check != check) {
            off += bs;
            continue;
        }
        (*n_records)++;
        if ((uint64_t)h.synced_upto * bs > wmark)
            wmark = (uint64_t)h.synced_upto * bs;
        if (h.type == NODE_REC_CHUNK) {
            struct chunk *c = by_id(h.chunk_id, 16);
            if (c && h.length == c->len) {
                c->found++;
                snprintf(c->vol, sizeof(c->vol), "%s", path);
                c->rec_off = off;
                c->n_sums = node_record_n_sums(h.length);
                in_vol[n_in++] = c;
            }
            off += node_record_size(h.length, bs);
        } else {
            if (h.type == NODE_REC_SEAL)
                sealed = true;
            off += bs;
        }
    }
    for (unsigned i = 0; i < n_in; i++) {
        in_vol[i]->sealed = sealed;
        in_vol[i]->below_w = in_vol[i]->rec_off < wmark;
    }
    free(v);
    return 0;
}

static int parse_dir(const char *dir, unsigned *n_volumes, unsigned *n_sealed)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/superblock", dir);
    uint8_t *sb = NULL;
    size_t len = 0;
    int rc = read_all(path, &sb, &len);
    if (rc != 0 || len != NODE_SB_SIZE || memcmp(sb, NODE_SB_MAGIC, 8) != 0) {
        diag("%s: %s", path, rc ? strerror(-rc) : "not a superblock");
        free(sb);
        return -EINVAL;
    }
    struct node_superblock s;
    memcpy(&s, sb, sizeof(s));
    free(sb);
    uint32_t bs = s.block_size;
    block_size = bs;
    diag("superblock: block size %u, volume size %" PRIu64, bs, s.volume_size);
    snprintf(path, sizeof(path), "%s/volumes", dir);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".vol") != 0)
            continue;
        char vp[900];
        snprintf(vp, sizeof(vp), "%s/%s", path, e->d_name);
        unsigned recs = 0;
        rc = parse_volume(vp, bs, &recs);
        if (rc != 0) {
            diag("%s: cannot parse (%s)", vp, strerror(-rc));
            closedir(d);
            return rc;
        }
        (*n_volumes)++;
        for (int i = 0; i < N_CHUNKS; i++)
            if (!strcmp(chunks[i].vol, vp) && chunks[i].sealed) {
                (*n_sealed)++;
                break;
            }
    }
    closedir(d);
    return 0;
}

static int flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t b;
    int rc = 0;
    if (pread(fd, &b, 1, (off_t)off) != 1) {
        rc = -EIO;
    } else {
        b ^= (uint8_t)(1 + rnd() % 255);
        if (pwrite(fd, &b, 1, (off_t)off) != 1 || fsync(fd) != 0)
            rc = -EIO;
    }
    close(fd);
    return rc;
}

/* Whether a record right before or after c's has both header copies destroyed. Two such
 * records in a row are one gap to the scan: the second starts where no record can be
 * expected (the first's length is lost), and a header-like pattern there could be client
 * data, so it is not counted: NODE_HEALTH damaged_records is a lower bound on what went
 * missing. This test damages them apart, so it can count them exactly. */
static bool next_to_unreadable(const struct chunk *c)
{
    for (int i = 0; i < N_CHUNKS; i++) {
        const struct chunk *o = &chunks[i];
        if (o == c || o->dmg != D_HEADERS_BOTH || strcmp(o->vol, c->vol) != 0)
            continue;
        if (o->rec_off + node_record_size(o->len, block_size) == c->rec_off ||
            c->rec_off + node_record_size(c->len, block_size) == o->rec_off)
            return true;
    }
    return false;
}

/* Picks up to `want` undamaged chunks matching the filter and damages them. */
static unsigned damage(enum damage d, unsigned want)
{
    unsigned done = 0;
    for (unsigned tries = 0; tries < 10 * N_CHUNKS && done < want; tries++) {
        struct chunk *c = &chunks[rnd() % N_CHUNKS];
        if (c->dmg != D_NONE || c->found != 1)
            continue;
        uint64_t off;
        if (d == D_DATA && !c->sealed)
            continue;
        if (d == D_DATA_OPEN && (c->sealed || !c->below_w))
            continue;
        /* Checksums are damaged in sealed volumes only: in the open volume the scan
         * verifies every record at start, and D_DATA_OPEN covers that case. */
        if (d == D_SUMS && (c->n_sums < 2 || !c->sealed))
            continue;
        /* One header copy: the other keeps the record's synced_upto in the durable
         * watermark, so the open volume's records stay below it. Both copies are damaged in
         * sealed volumes only: in the open volume that takes a synced_upto out of the
         * watermark, which could move records this test counted as below it to at-or-above
         * it (tests/unit/node/test_store_recovery covers that case). */
        if (d == D_HEADER && !c->sealed)
            continue;
        if (d == D_HEADER_OPEN && (c->sealed || !c->below_w))
            continue;
        if (d == D_HEADERS_BOTH && (!c->sealed || next_to_unreadable(c)))
            continue;
        if (d == D_DATA || d == D_DATA_OPEN) {
            c->flip_at = rnd() % c->len;
            off = c->rec_off + node_record_data_offset(c->n_sums) + c->flip_at;
        } else if (d == D_SUMS) {
            c->flip_at = rnd() % c->n_sums;
            off = c->rec_off + NODE_REC_SUMS_OFFSET + 8 * c->flip_at + rnd() % 8;
        } else if (d == D_HEADERS_BOTH) {
            off = c->rec_off + rnd() % sizeof(struct node_record_header);
            if (flip_byte(c->vol, off + sizeof(struct node_record_header)) != 0)
                tap_bail("flip a byte in %s: %s", c->vol, strerror(errno));
        } else {
            off = c->rec_off + rnd() % NODE_REC_HEAD; /* either copy */
        }
        if (flip_byte(c->vol, off) != 0)
            tap_bail("flip a byte in %s: %s", c->vol, strerror(errno));
        c->dmg = d;
        done++;
    }
    return done;
}

/* ---- checks */

static bool must_report(const struct chunk *c)
{
    return c->dmg != D_NONE && c->dmg != D_HEADERS_BOTH;
}

/* CORRUPT_LIST for nid: how many must-report chunks it names, and how many undamaged ones. */
static int corrupt_listed(struct cmn_meta_client *mc, uint32_t nid, unsigned *reported,
                          unsigned *wrong, bool print)
{
    Lode__CorruptListResponse *cl = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    *reported = *wrong = 0;
    int rc = tl_meta_corrupt_list(mc, nid, T_MS, &cl, &err);
    if (rc != 0) {
        if (print)
            diag("%s", cmn_err_text(&err));
        return rc;
    }
    bool seen[N_CHUNKS] = {false};
    for (size_t i = 0; i < cl->n_chunks; i++) {
        const Lode__CorruptChunk *cc = cl->chunks[i];
        struct chunk *c = by_id(cc->chunk_id.data, cc->chunk_id.len);
        if (!c || c->dmg == D_NONE || c->dmg == D_HEADERS_BOTH || cc->nid != nid) {
            (*wrong)++;
            if (print) {
                char hex[33] = "?";
                if (cc->chunk_id.len == 16)
                    cmn_hex_encode(cc->chunk_id.data, 16, hex);
                diag("reported but not damaged (or both its header copies were): nid %u chunk "
                     "%s (%s)",
                     cc->nid, hex, cc->reason ? cc->reason : "");
            }
            continue;
        }
        if (must_report(c) && !seen[c - chunks]) {
            seen[c - chunks] = true;
            (*reported)++;
        }
    }
    if (print) {
        for (int i = 0; i < N_CHUNKS; i++) {
            if (must_report(&chunks[i]) && !seen[i]) {
                char hex[33];
                cmn_hex_encode(chunks[i].id, 16, hex);
                diag("not reported: %s (damaged %s, %s volume)", hex, dmg_name(chunks[i].dmg),
                     chunks[i].sealed ? "sealed" : "open");
            }
        }
    }
    lode__corrupt_list_response__free_unpacked(cl, NULL);
    return 0;
}

static void check_reads(struct cmn_rpc_sync *conn, struct chunk *c, uint8_t *want)
{
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    char hex[33];
    cmn_hex_encode(c->id, 16, hex);
    tl_fill(want, c->len, c->seed);
    int rc;
    switch (c->dmg) {
    case D_NONE: {
        rc = tl_chunk_get(conn, c->id, 16, 0, 0, T_MS, &res, NULL);
        bool good = rc == 0 && res.payload.len == c->len && !memcmp(res.payload.data, want, c->len);
        uint64_t off = rnd() % c->len, len = 1 + rnd() % (c->len - off);
        rc = tl_chunk_get(conn, c->id, 16, off, len, T_MS, &res, NULL);
        good = good && rc == 0 && res.payload.len == len &&
               !memcmp(res.payload.data, want + off, len);
        ok(good, "undamaged chunk %.8s (%u bytes): whole and range reads intact%s", hex, c->len,
           tl_why(res.message));
        break;
    }
    case D_DATA:
    case D_DATA_OPEN:
    case D_HEADER:
    case D_HEADER_OPEN: {
        bool open_vol = c->dmg == D_DATA_OPEN || c->dmg == D_HEADER_OPEN;
        if (c->dmg == D_HEADER || c->dmg == D_HEADER_OPEN)
            c->flip_at = rnd() % c->len; /* any range: the whole record is refused */
        /* every read: twice whole, then ranges around the flipped byte */
        uint64_t blk = c->flip_at / NODE_SUM_BLOCK * NODE_SUM_BLOCK;
        uint64_t blk_len = c->len - blk < NODE_SUM_BLOCK ? c->len - blk : NODE_SUM_BLOCK;
        struct {
            uint64_t off, len;
        } reads[] = {{0, 0}, {0, 0}, {c->flip_at, 1}, {blk, blk_len}, {c->flip_at, 0}};
        for (size_t k = 0; k < sizeof(reads) / sizeof(reads[0]); k++) {
            rc = tl_chunk_get(conn, c->id, 16, reads[k].off, reads[k].len, T_MS, &res, NULL);
            bool good = rc == LODE_ECORRUPT && res.payload.len == 0;
            ok(good, "damaged %s%s, chunk %.8s: GET [%" PRIu64 ", +%" PRIu64 "] -> "
               "LODE_ECORRUPT%s, no data",
               dmg_name(c->dmg), open_vol ? " (below its watermark)" : "", hex, reads[k].off,
               reads[k].len, good ? "" : tl_why(lode_errname(rc)));
        }
        break;
    }
    case D_SUMS: {
        uint64_t boff = c->flip_at * NODE_SUM_BLOCK;
        uint64_t rlen = c->len - boff < 100 ? c->len - boff : 100;
        rc = tl_chunk_get(conn, c->id, 16, boff, rlen, T_MS, &res, NULL);
        ok(rc == LODE_ECORRUPT && res.payload.len == 0,
           "damaged block checksum %" PRIu64 ", chunk %.8s: a range read of that block -> "
           "LODE_ECORRUPT%s",
           c->flip_at, hex, rc == LODE_ECORRUPT ? "" : tl_why(lode_errname(rc)));
        rc = tl_chunk_get(conn, c->id, 16, 0, 0, T_MS, &res, NULL);
        bool good = rc == LODE_ECORRUPT ||
                    (rc == 0 && res.payload.len == c->len && !memcmp(res.payload.data, want, c->len));
        ok(good && (rc != 0 || res.payload.len == c->len),
           "damaged block checksum, chunk %.8s: whole read LODE_ECORRUPT or the exact bytes (%s)",
           hex, lode_errname(rc));
        break;
    }
    case D_HEADERS_BOTH:
        for (int k = 0; k < 2; k++) {
            rc = tl_chunk_get(conn, c->id, 16, k ? 1 : 0, 0, T_MS, &res, NULL);
            ok(rc == LODE_ENOCHUNK && res.payload.len == 0,
               "both record header copies destroyed, chunk %.8s: %s read -> LODE_ENOCHUNK, "
               "no data (%s)", hex, k ? "range" : "whole", lode_errname(rc));
        }
        break;
    }
    cmn_rpc_result_free(&res);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *env = getenv("LODE_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : 0;
    if (!seed)
        cmn_random_bytes(&seed, sizeof(seed));
    seed |= 1;
    rng = seed;
    diag("seed %" PRIu64 " (replay with LODE_TEST_SEED=%" PRIu64 ")", seed, seed);

    struct cmn_err err;
    cmn_err_clear(&err);
    struct tl_cluster *meta = NULL;
    struct tl_cluster_options mo = TL_CLUSTER_OPTIONS_DEFAULT;
    mo.replicas = 1;
    mo.name = "nodecorrupt-meta";
    if (tl_cluster_start(&mo, &meta, &err) != 0)
        tap_bail("start lode-meta: %s", cmn_err_text(&err));
    struct cmn_meta_client *mc = tl_cluster_client(meta);
    if (!mc)
        tap_bail("meta client");
    struct tl_node *node = NULL;
    struct tl_node_options o = TL_NODE_OPTIONS_DEFAULT;
    o.name = "nodecorrupt";
    o.meta = meta;
    o.volume_size = "4MiB";
    o.scrub_rate = "0";
    if (tl_node_start(&o, &node, &err) != 0)
        tap_bail("start lode-node: %s", cmn_err_text(&err));

    /* ---- store chunks over several volumes */
    static const uint32_t sizes[] = {4096, 65537, 300000, 1u << 20, 200001, 131072, 777};
    struct cmn_rpc_sync *conn = NULL;
    if (tl_node_connect(node, T_MS, &conn, &err) != 0)
        tap_bail("connect: %s", cmn_err_text(&err));
    uint8_t *buf = malloc(1u << 20);
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    unsigned stored = 0;
    for (int i = 0; i < N_CHUNKS; i++) {
        struct chunk *c = &chunks[i];
        uint64_t a = rnd(), b = rnd();
        memcpy(c->id, &a, 8);
        memcpy(c->id + 8, &b, 8);
        c->len = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
        c->seed = rnd();
        tl_fill(buf, c->len, c->seed);
        if (tl_chunk_put(conn, c->id, buf, c->len, T_MS, &res) == 0)
            stored++;
        else
            diag("PUT %d: %s (%s)", i, lode_errname(res.status), res.message);
    }
    is_int(stored, N_CHUNKS, "%d chunks stored", N_CHUNKS);
    cmn_rpc_result_free(&res);

    /* the node's nid, for CORRUPT_LIST */
    uint32_t nid = 0;
    uint64_t deadline = cmn_mono_ms() + 15000;
    while (nid == 0 && cmn_mono_ms() < deadline) {
        Lode__NodeHealthResponse *h = NULL;
        if (tl_node_health(conn, T_MS, &h, NULL) == 0) {
            nid = h->nid;
            lode__node_health_response__free_unpacked(h, NULL);
        }
        if (nid == 0)
            sleep_ms(100);
    }
    ok(nid != 0, "the node registered with meta (nid %u)", nid);
    cmn_rpc_sync_close(conn);
    is_int(tl_node_kill(node, SIGKILL), 0, "crash the node (SIGKILL)");

    /* ---- find the records and damage some */
    unsigned n_vol = 0, n_sealed = 0;
    if (parse_dir(node->dir_list[0], &n_vol, &n_sealed) != 0)
        tap_bail("cannot parse the data directory %s", node->dir_list[0]);
    unsigned found = 0;
    for (int i = 0; i < N_CHUNKS; i++)
        found += chunks[i].found == 1;
    diag("%u volumes (%u with chunks and sealed); %u of %d chunks found once", n_vol, n_sealed,
         found, N_CHUNKS);
    is_int(found, N_CHUNKS, "every chunk found exactly once in the volume files");
    ok(n_sealed > 0, "at least one sealed volume holds chunks");
    unsigned n_data = damage(D_DATA, 6);
    /* The open volume may hold few records below its watermark: one of each kind first,
     * a second data flip if there is room (tests/unit/node/test_store_recovery damages
     * header copies in an unsealed volume deterministically). */
    unsigned n_open = damage(D_DATA_OPEN, 1);
    unsigned n_hdr_open = damage(D_HEADER_OPEN, 1);
    n_open += damage(D_DATA_OPEN, 1);
    unsigned n_sums = damage(D_SUMS, 3);
    unsigned n_hdr = damage(D_HEADER, 3);
    unsigned n_both = damage(D_HEADERS_BOTH, 2);
    diag("damaged: %u data (sealed volumes), %u data (open volume), %u block checksums, %u "
         "header copies (sealed), %u (open volume), %u both header copies",
         n_data, n_open, n_sums, n_hdr, n_hdr_open, n_both);
    ok(n_data >= 3 && n_open >= 1 && n_sums >= 2 && n_hdr == 3 && n_both == 2,
       "enough chunks to damage of each kind");
    unsigned want_reported = 0;
    for (int i = 0; i < N_CHUNKS; i++)
        want_reported += must_report(&chunks[i]);

    /* ---- restart with a fast scrubber; wait for its reports before reading anything */
    node->opts.scrub_rate = "64MiB";
    if (tl_node_write_config(node, &err) != 0 || tl_node_run(node, &err) != 0)
        tap_bail("restart: %s", cmn_err_text(&err));
    uint64_t t0 = cmn_mono_ms();
    unsigned reported = 0, wrong = 0;
    while (cmn_mono_ms() - t0 < SCRUB_WAIT_MS) {
        if (corrupt_listed(mc, nid, &reported, &wrong, false) == 0 && reported == want_reported)
            break;
        sleep_ms(200);
    }
    uint64_t took = cmn_mono_ms() - t0;
    if (reported != want_reported) {
        /* Is the scrubber still moving? Two samples of its byte counter a second apart. */
        uint64_t sample[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            struct cmn_rpc_sync *hc = NULL;
            Lode__NodeHealthResponse *hh = NULL;
            if (tl_node_connect(node, T_MS, &hc, NULL) == 0 &&
                tl_node_health(hc, T_MS, &hh, NULL) == 0) {
                sample[k] = hh->scrubbed_bytes;
                lode__node_health_response__free_unpacked(hh, NULL);
            }
            cmn_rpc_sync_close(hc);
            if (k == 0)
                sleep_ms(1000);
        }
        diag("scrubbed_bytes %" PRIu64 ", one second later %" PRIu64 " (scrub-rate 64MiB)",
             sample[0], sample[1]);
    }
    corrupt_listed(mc, nid, &reported, &wrong, true);
    is_int(reported, want_reported,
           "every chunk with damaged data, checksums or one header copy reported to meta (%"
           PRIu64 " ms)",
           took);
    is_int(wrong, 0, "meta lists no undamaged chunk (nor one whose header copies were both "
           "damaged) as corrupt");

    if (tl_node_connect(node, T_MS, &conn, &err) != 0)
        tap_bail("connect: %s", cmn_err_text(&err));
    Lode__NodeHealthResponse *h = NULL;
    if (tl_node_health(conn, T_MS, &h, &err) == 0) {
        ok(h->corrupt_chunks >= want_reported,
           "NODE_HEALTH corrupt_chunks %" PRIu64 " >= %u found by the scrubber",
           h->corrupt_chunks, want_reported);
        ok(h->scrubbed_bytes > 0, "NODE_HEALTH scrubbed_bytes %" PRIu64 " > 0",
           h->scrubbed_bytes);
        is_int(h->damaged_records, n_both,
               "NODE_HEALTH damaged_records counts the records without a readable header");
        lode__node_health_response__free_unpacked(h, NULL);
    } else {
        ok(0, "NODE_HEALTH%s", tl_why(err.msg));
    }

    /* ---- reads */
    for (int i = 0; i < N_CHUNKS; i++)
        check_reads(conn, &chunks[i], buf);
    cmn_rpc_sync_close(conn);
    ok(tl_node_alive(node), "the node is still running");
    corrupt_listed(mc, nid, &reported, &wrong, wrong != 0);
    is_int(wrong, 0, "after the reads meta still lists only damaged chunks");

    is_int(tl_node_crash_count(node), 0, "the node never crashed");
    free(buf);
    int failed = tap_done();
    tl_node_destroy(node, failed != 0);
    tl_cluster_destroy(meta, failed != 0);
    return failed;
}
