/* The offline inspector (cli/inspect.c) on data directories built here with the store's own
 * encoders (node/store_layout.h): a clean directory is consistent and its records are
 * classified right; each kind of damage is found and located (volume and offset); what a
 * crash explains in the unsealed volume is a warning, not an error; nothing is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/inspect.h"
#include "common/id.h"
#include "node/layout.h"
#include "node/store_layout.h"
#include "tests/tap.h"

#define BS 4096u
#define VOL_SIZE (1u << 20)

/* Offsets of the records of the fixture:
 *   volume 1 (sealed):   A (100000 bytes, seq 1), B (5000, seq 2), tombstone B (seq 3), seal
 *   volume 2 (unsealed): C (3000, seq 4), a copy of A (seq 5, as compaction leaves it) */
struct fx {
    char dir[512];
    struct cmn_id ida, idb, idc;
    uint8_t disk_uuid[16];
    uint64_t a1, b, tomb, seal, c, a2;
};

static uint8_t data_a[100000], data_b[5000], data_c[3000];

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
        tap_bail("pwrite: %s", strerror(errno));
}

static void put_record(int fd, uint64_t off, uint16_t type, const struct cmn_id *id,
                       const uint8_t *data, size_t len, uint64_t seq, uint64_t salt)
{
    struct node_record_header rh = {0};
    rh.type = type;
    if (id)
        memcpy(rh.chunk_id, id->b, sizeof(rh.chunk_id));
    rh.length = len;
    rh.seq = seq;
    rh.created_ms = 1700000000000ull + seq;
    size_t sums_len = 8u * node_record_n_sums(len);
    uint8_t *img = calloc(1, NODE_REC_HEAD + sums_len + len);
    if (!img)
        tap_bail("calloc");
    if (len) {
        rh.hash = node_data_sums(data, len, img + NODE_REC_SUMS_OFFSET);
        memcpy(img + NODE_REC_SUMS_OFFSET + sums_len, data, len);
    }
    node_rh_encode(&rh, salt, img);
    pwrite_all(fd, img, NODE_REC_HEAD + sums_len + len, off);
    free(img);
}

static int open_volume(struct fx *f, uint32_t id, uint64_t salt)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/volumes/%08" PRIu32 ".vol", f->dir, id);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, VOL_SIZE) != 0)
        tap_bail("%s: %s", path, strerror(errno));
    struct node_volume_header vh = {0};
    vh.volume_id = id;
    memcpy(vh.disk_uuid, f->disk_uuid, sizeof(vh.disk_uuid));
    vh.salt = salt;
    vh.created_ms = 1700000000000ull;
    vh.size = VOL_SIZE;
    uint8_t img[64];
    node_vh_encode(&vh, img);
    pwrite_all(fd, img, sizeof(img), 0);
    return fd;
}

static void rmtree(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        tap_bail("%s failed", cmd);
}

/* (Re)builds the fixture directory. */
static void build(struct fx *f)
{
    char path[600];
    rmtree(f->dir);
    if (mkdir(f->dir, 0755) != 0)
        tap_bail("mkdir %s: %s", f->dir, strerror(errno));
    snprintf(path, sizeof(path), "%s/volumes", f->dir);
    if (mkdir(path, 0755) != 0)
        tap_bail("mkdir %s: %s", path, strerror(errno));

    struct node_superblock sb = {0};
    sb.block_size = BS;
    memcpy(sb.node_uuid, "node-uuid-012345", 16);
    memcpy(sb.disk_uuid, f->disk_uuid, 16);
    snprintf(sb.cluster, sizeof(sb.cluster), "test");
    sb.created_ms = 1700000000000ull;
    sb.volume_size = VOL_SIZE;
    static uint8_t img[NODE_SB_SIZE];
    node_sb_encode(&sb, img);
    snprintf(path, sizeof(path), "%s/superblock", f->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        tap_bail("%s: %s", path, strerror(errno));
    pwrite_all(fd, img, sizeof(img), 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/LOCK", f->dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    close(fd);

    uint64_t salt1 = 0x1111222233334444ull, salt2 = 0x5555666677778888ull;
    fd = open_volume(f, 1, salt1);
    f->a1 = BS;
    put_record(fd, f->a1, NODE_REC_CHUNK, &f->ida, data_a, sizeof(data_a), 1, salt1);
    f->b = f->a1 + node_record_size(sizeof(data_a), BS);
    put_record(fd, f->b, NODE_REC_CHUNK, &f->idb, data_b, sizeof(data_b), 2, salt1);
    f->tomb = f->b + node_record_size(sizeof(data_b), BS);
    put_record(fd, f->tomb, NODE_REC_TOMBSTONE, &f->idb, NULL, 0, 3, salt1);
    f->seal = f->tomb + BS;
    put_record(fd, f->seal, NODE_REC_SEAL, NULL, NULL, 0, 4, salt1);
    close(fd);

    fd = open_volume(f, 2, salt2);
    f->c = BS;
    put_record(fd, f->c, NODE_REC_CHUNK, &f->idc, data_c, sizeof(data_c), 5, salt2);
    f->a2 = f->c + node_record_size(sizeof(data_c), BS);
    put_record(fd, f->a2, NODE_REC_CHUNK, &f->ida, data_a, sizeof(data_a), 6, salt2);
    close(fd);
}

static void vol_path(const struct fx *f, uint32_t id, char *out, size_t size)
{
    snprintf(out, size, "%s/volumes/%08" PRIu32 ".vol", f->dir, id);
}

static void flip(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    if (fd < 0 || pread(fd, &b, 1, (off_t)off) != 1)
        tap_bail("%s: %s", path, strerror(errno));
    b ^= 0x20;
    pwrite_all(fd, &b, 1, off);
    close(fd);
}

static void zero(const char *path, uint64_t off, size_t len)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        tap_bail("%s: %s", path, strerror(errno));
    uint8_t *z = calloc(1, len);
    pwrite_all(fd, z, len, off);
    free(z);
    close(fd);
}

static void junk(const char *path, uint64_t off, size_t len)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        tap_bail("%s: %s", path, strerror(errno));
    uint8_t *j = malloc(len);
    fill(j, len, 99);
    pwrite_all(fd, j, len, off);
    free(j);
    close(fd);
}

/* Whether the report has a problem of that severity at (volume, offset) whose text
 * contains `needle` (NULL: any). volume/offset -2 = any. */
static bool has(const struct inspect_report *r, bool error, int64_t volume, int64_t offset,
                const char *needle)
{
    for (size_t i = 0; i < r->n_problems; i++) {
        const struct inspect_problem *p = &r->problems[i];
        if (p->error == error && (volume == -2 || p->volume == volume) &&
            (offset == -2 || p->offset == offset) && (!needle || strstr(p->msg, needle)))
            return true;
    }
    return false;
}

static void dump(const struct inspect_report *r)
{
    for (size_t i = 0; i < r->n_problems; i++)
        diag("%s: volume %" PRId64 " offset %" PRId64 ": %s",
             r->problems[i].error ? "error" : "warning", r->problems[i].volume,
             r->problems[i].offset, r->problems[i].msg);
}

static const struct inspect_record *find(const struct inspect_report *r, uint32_t volume,
                                         uint64_t offset)
{
    for (size_t i = 0; i < r->n_records; i++)
        if (r->records[i].volume == volume && r->records[i].offset == offset)
            return &r->records[i];
    return NULL;
}

static void test_clean(struct fx *f)
{
    struct inspect_report r;
    build(f);
    int rc = inspect_node_dir(f->dir, true, &r);
    is_int(rc, 0, "a clean directory reads");
    is_int(r.errors, 0, "... without errors");
    is_int(r.warnings, 0, "... or warnings");
    if (r.errors || r.warnings)
        dump(&r);
    ok(r.sb_ok && r.block_size == BS, "the superblock is valid, block size %u", r.block_size);
    is_int(r.n_volumes, 2, "two volumes");
    ok(r.n_volumes == 2 && r.volumes[0].sealed && !r.volumes[1].sealed,
       "volume 1 is sealed, volume 2 is not");
    is_int(r.n_records, 6, "six records");
    is_int(r.verified_chunks, 4, "--verify read all four chunk records");
    is_int(r.live_chunks, 2, "two live chunks (C and the newer copy of A)");
    const struct inspect_record *a1 = find(&r, 1, f->a1), *b = find(&r, 1, f->b),
                                 *a2 = find(&r, 2, f->a2), *c = find(&r, 2, f->c),
                                 *t = find(&r, 1, f->tomb);
    ok(a1 && a1->state == INSPECT_DEAD, "the older copy of A is dead");
    ok(a2 && a2->state == INSPECT_LIVE, "the newer copy of A is live");
    ok(b && b->state == INSPECT_DELETED, "B, tombstoned, is deleted");
    ok(c && c->state == INSPECT_LIVE && c->length == sizeof(data_c), "C is live, 3000 bytes");
    ok(t && t->state == INSPECT_TOMBSTONE && cmn_id_cmp(&t->id, &f->idb) == 0,
       "the tombstone names B");
    ok(r.n_volumes == 2 && r.volumes[0].live == 0 && r.volumes[0].dead == 2 &&
           r.volumes[1].live == 2 && r.volumes[1].dead == 0,
       "per-volume live/dead counts");
    ok(r.n_volumes == 2 && r.volumes[0].first_bad == -1 && r.volumes[1].first_bad == -1,
       "no first bad offset");
    inspect_report_free(&r);
}

static void test_data_flip(struct fx *f, uint32_t vol, uint64_t rec, size_t n_sums,
                           uint64_t at, const char *what)
{
    struct inspect_report r;
    char path[600];
    build(f);
    vol_path(f, vol, path, sizeof(path));
    flip(path, rec + node_record_data_offset((uint32_t)n_sums) + at);
    inspect_node_dir(f->dir, false, &r);
    is_int(r.errors, 0, "%s: not found without --verify (headers are intact)", what);
    inspect_report_free(&r);
    inspect_node_dir(f->dir, true, &r);
    ok(r.errors >= 1 && has(&r, true, vol, (int64_t)rec, "fail their checksum"),
       "%s: --verify reports it at volume %u offset %" PRIu64, what, vol, rec);
    if (!has(&r, true, vol, (int64_t)rec, NULL))
        dump(&r);
    const struct inspect_record *x = find(&r, vol, rec);
    ok(x && x->corrupt, "%s: the record is marked corrupt", what);
    ok(r.volumes[vol - 1].first_bad == (int64_t)rec, "%s: first bad offset of the volume",
       what);
    is_int(r.corrupt_chunks, 1, "%s: one corrupt chunk", what);
    inspect_report_free(&r);
}

static void test_damage(struct fx *f)
{
    struct inspect_report r;
    char v1[600], v2[600], sb[600];
    vol_path(f, 1, v1, sizeof(v1));
    vol_path(f, 2, v2, sizeof(v2));
    snprintf(sb, sizeof(sb), "%s/superblock", f->dir);

    /* A header byte in the sealed volume: the mirror still names the record, which is
     * reported as a corrupt chunk (the node refuses to serve it). */
    build(f);
    flip(v1, f->b + 30);
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 1, (int64_t)f->b, "one of the two record header copies is damaged"),
       "a flipped header byte in a sealed volume is an error at its offset");
    const struct inspect_record *rb = find(&r, 1, f->b);
    ok(rb && rb->corrupt && find(&r, 1, f->tomb),
       "... the record is identified by its mirror and counted corrupt; the scan goes on");
    inspect_report_free(&r);
    /* The mirror alone damaged: the same. */
    build(f);
    flip(v1, f->b + 64 + 17);
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 1, (int64_t)f->b, "one of the two record header copies is damaged") &&
           find(&r, 1, f->b) && find(&r, 1, f->b)->corrupt,
       "a flipped mirror byte is the same error");
    inspect_report_free(&r);
    /* Both copies damaged: unidentifiable, skipped. */
    build(f);
    flip(v1, f->b + 30);
    flip(v1, f->b + 64 + 30);
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 1, (int64_t)f->b, "damaged record header"),
       "both header copies flipped in a sealed volume: an error at its offset");
    ok(!find(&r, 1, f->b) && find(&r, 1, f->tomb), "... the record is skipped, the scan goes on");
    inspect_report_free(&r);

    /* The same in the unsealed volume: still an error (it may have been acknowledged). */
    build(f);
    flip(v2, f->c + 8);
    flip(v2, f->c + 64 + 8);
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 2, (int64_t)f->c, "damaged record header"),
       "flipped header bytes in the unsealed volume are an error too");
    ok(find(&r, 2, f->a2) != NULL, "... and the record after it is found by resynchronising");
    inspect_report_free(&r);

    /* A record missing (zeros) inside the sealed volume. */
    build(f);
    zero(v1, f->b, (size_t)node_record_size(sizeof(data_b), BS));
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 1, (int64_t)f->b, "a record is missing"),
       "a zeroed record in a sealed volume is a gap error");
    inspect_report_free(&r);

    /* Its header alone zeroed: the rest of its blocks are data, so it is damage. */
    build(f);
    zero(v1, f->b, BS);
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 1, (int64_t)f->b, "damaged record header or data"),
       "a zeroed header before its data in a sealed volume is an error");
    inspect_report_free(&r);

    /* A block checksum damaged, the data intact. */
    build(f);
    flip(v1, f->a1 + NODE_REC_SUMS_OFFSET + 9);
    inspect_node_dir(f->dir, true, &r);
    ok(has(&r, true, 1, (int64_t)f->a1, "block sums are damaged"),
       "a flipped block checksum is an error naming the sums");
    inspect_report_free(&r);

    /* The same in the unsealed volume: what a crash leaves; a warning. */
    build(f);
    zero(v2, f->c, BS);
    inspect_node_dir(f->dir, false, &r);
    is_int(r.errors, 0, "a missing write in the unsealed volume is no error");
    ok(has(&r, false, 2, (int64_t)f->c, "zeros"), "... but a warning at its offset");
    inspect_report_free(&r);

    /* A torn last write after the last record of the unsealed volume. */
    build(f);
    uint64_t tail = f->a2 + node_record_size(sizeof(data_a), BS);
    junk(v2, tail + 100, 3 * BS);
    inspect_node_dir(f->dir, true, &r);
    is_int(r.errors, 0, "a torn tail in the unsealed volume is no error");
    ok(has(&r, false, 2, (int64_t)tail, "torn"), "... but a warning at its offset");
    inspect_report_free(&r);

    /* A volume created ahead of need (empty, unsealed) and one still being created. */
    build(f);
    {
        int fd = open_volume(f, 3, 42);
        close(fd);
        char tmpvol[600];
        snprintf(tmpvol, sizeof(tmpvol), "%s/volumes/00000004.tmp", f->dir);
        fd = open(tmpvol, O_WRONLY | O_CREAT, 0644);
        close(fd);
    }
    inspect_node_dir(f->dir, false, &r);
    is_int(r.errors, 0, "an empty spare volume and a volume being created are no error");
    ok(r.warnings == 1 && has(&r, false, 4, -1, "being created"),
       "... the one being created is a warning");
    is_int(r.n_volumes, 3, "... and the spare volume is listed");
    inspect_report_free(&r);

    /* Two volumes with records unsealed: a crash while sealing. */
    build(f);
    {
        int fd = open_volume(f, 3, 43);
        put_record(fd, BS, NODE_REC_TOMBSTONE, &f->idc, NULL, 0, 10, 43);
        close(fd);
    }
    inspect_node_dir(f->dir, false, &r);
    ok(r.errors == 0 && has(&r, false, 2, -1, "not sealed"),
       "an unsealed volume before a used one is a warning");
    inspect_report_free(&r);

    /* A valid record after the seal. */
    build(f);
    {
        int fd = open(v1, O_RDWR);
        put_record(fd, f->seal + BS, NODE_REC_TOMBSTONE, &f->ida, NULL, 0, 9,
                   0x1111222233334444ull);
        close(fd);
    }
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 1, (int64_t)(f->seal + BS), "follows the seal"),
       "a record after the seal is an error");
    inspect_report_free(&r);

    /* Superblock checksum. */
    build(f);
    flip(sb, 50);
    int rc = inspect_node_dir(f->dir, false, &r);
    is_int(rc, 0, "a damaged superblock still reads");
    ok(!r.sb_ok && !r.sb_checksum_ok && has(&r, true, -1, -1, "checksum"),
       "a flipped superblock byte is a checksum error");
    ok(r.n_volumes == 2, "... and the volumes are still examined");
    inspect_report_free(&r);

    /* A volume of another disk, and a volume header checksum. */
    build(f);
    {
        uint8_t other[16];
        memcpy(other, f->disk_uuid, 16);
        memcpy(f->disk_uuid, "another-disk-id!", 16);
        int fd = open_volume(f, 2, 77);
        close(fd);
        memcpy(f->disk_uuid, other, 16);
    }
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 2, 0, "another disk"), "a volume of another disk is an error");
    inspect_report_free(&r);
    build(f);
    flip(v1, 20);
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 1, 0, "checksum"), "a flipped volume header byte is an error");
    inspect_report_free(&r);

    /* A truncated volume. */
    build(f);
    if (truncate(v1, VOL_SIZE / 2) != 0)
        tap_bail("truncate: %s", strerror(errno));
    inspect_node_dir(f->dir, false, &r);
    ok(has(&r, true, 1, 0, "the file has"), "a truncated volume is an error");
    inspect_report_free(&r);

    /* No superblock; not there at all. */
    build(f);
    unlink(sb);
    rc = inspect_node_dir(f->dir, false, &r);
    ok(rc == 0 && has(&r, true, -1, -1, "no superblock"), "a missing superblock is an error");
    inspect_report_free(&r);
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/does-not-exist", f->dir);
    rc = inspect_node_dir(missing, false, &r);
    is_int(rc, -ENOENT, "a missing path is -ENOENT");
    ok(strstr(r.fatal, "does-not-exist") != NULL, "... and named");
    inspect_report_free(&r);
}

/* Nothing inspected is written: the files' bytes and times stay. */
static void test_read_only(struct fx *f)
{
    struct inspect_report r;
    char v1[600];
    struct stat before, after;
    build(f);
    vol_path(f, 1, v1, sizeof(v1));
    if (chmod(v1, 0444) != 0 || stat(v1, &before) != 0)
        tap_bail("chmod/stat: %s", strerror(errno));
    sleep(0); /* mtime granularity is ns; nothing may change it anyway */
    inspect_node_dir(f->dir, true, &r);
    is_int(r.errors, 0, "a read-only volume is inspected");
    inspect_report_free(&r);
    if (stat(v1, &after) != 0)
        tap_bail("stat: %s", strerror(errno));
    ok(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
           before.st_mtim.tv_nsec == after.st_mtim.tv_nsec && before.st_size == after.st_size,
       "the volume is not modified");
}

int main(void)
{
    struct fx f;
    const char *tmp = getenv("TEST_TMPDIR");
    char base[512];
    snprintf(base, sizeof(base), "%s/test_inspect.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base))
        tap_bail("mkdtemp %s: %s", base, strerror(errno));
    memset(&f, 0, sizeof(f));
    snprintf(f.dir, sizeof(f.dir), "%s/d", base);
    f.ida = cmn_id_random();
    f.idb = cmn_id_random();
    f.idc = cmn_id_random();
    memcpy(f.disk_uuid, "disk-uuid-abcdef", 16);
    fill(data_a, sizeof(data_a), 1);
    fill(data_b, sizeof(data_b), 2);
    fill(data_c, sizeof(data_c), 3);

    test_clean(&f);
    test_data_flip(&f, 2, f.c, node_record_n_sums(sizeof(data_c)), 1000, "a byte of C");
    test_data_flip(&f, 1, f.a1, node_record_n_sums(sizeof(data_a)), 70000,
                   "a byte in A's second block (dead copy)");
    test_data_flip(&f, 2, f.a2, node_record_n_sums(sizeof(data_a)), 5, "a byte of A's copy");
    test_damage(&f);
    test_read_only(&f);

    int rc = tap_done();
    if (rc == 0)
        rmtree(base);
    else
        diag("kept %s", base);
    return rc;
}
