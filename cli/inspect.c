/* lodectl inspect node-dir: reads a lode-node data directory offline (docs/disk-format.md,
 * node/layout.h) and says whether it is consistent.
 *
 * Read-only by construction: every file is opened O_RDONLY, nothing is written, and the
 * LOCK file is never flock()ed (a running node holds it; taking it even for a moment could
 * make that node's restart fail). Whether a process holds it is read from /proc/locks, so
 * the report can say that the active volume may be changing underneath.
 *
 * This is a separate, small parser rather than the store's scan on purpose: it must accept
 * anything (a damaged directory is what it is for), report every problem instead of
 * recovering from it, and never need a loop, an io backend or a writable directory. It
 * checks the same rules the store relies on:
 *   - superblock: magic, format, checksum, a sane block size;
 *   - each volume: header magic, format, checksum, id = file name, disk uuid = superblock's,
 *     size = file size; records at block-aligned offsets with valid salted header checks,
 *     extents inside the volume; in a sealed volume nothing missing, nothing after the seal;
 *   - with --verify, every chunk's data against its XXH3-64 and its 64 KiB block sums.
 * Problems in the unsealed (active) volume that a crash explains (a torn or missing last
 * write) are warnings: the node drops such records at start. Everything else is an error.
 */
#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <xxh_x86dispatch.h>

#include "cli/cli.h"
#include "cli/inspect.h"
#include "cli/output.h"
#include "common/id.h"
#include "node/layout.h"
#include "node/store_layout.h"

#define WINDOW_SIZE (1u << 20)      /* bytes read at a time while walking record headers */
#define MAX_BLOCK_SIZE (1u << 20)   /* a larger "block size" is a damaged superblock */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("lodectl: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("lodectl: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Reads exactly n bytes unless the file ends first. Returns the bytes read or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* ---- the report ---- */

static void problem(struct inspect_report *r, bool error, int64_t volume, int64_t offset,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem(struct inspect_report *r, bool error, int64_t volume, int64_t offset,
                    const char *fmt, ...)
{
    if (r->n_problems == r->cap_problems) {
        r->cap_problems = r->cap_problems ? r->cap_problems * 2 : 16;
        r->problems = xrealloc(r->problems, r->cap_problems * sizeof(r->problems[0]));
    }
    struct inspect_problem *p = &r->problems[r->n_problems++];
    p->error = error;
    p->volume = volume;
    p->offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
    va_end(ap);
    if (error)
        r->errors++;
    else
        r->warnings++;
    if (volume >= 0 && offset >= 0 && error) {
        for (size_t i = 0; i < r->n_volumes; i++) {
            struct inspect_volume *v = &r->volumes[i];
            if (v->id == (uint32_t)volume && (v->first_bad < 0 || offset < v->first_bad))
                v->first_bad = offset;
        }
    }
}

static struct inspect_record *add_record(struct inspect_report *r)
{
    if (r->n_records == r->cap_records) {
        r->cap_records = r->cap_records ? r->cap_records * 2 : 256;
        r->records = xrealloc(r->records, r->cap_records * sizeof(r->records[0]));
    }
    struct inspect_record *rec = &r->records[r->n_records++];
    memset(rec, 0, sizeof(*rec));
    return rec;
}

/* ---- the superblock ---- */

static int read_superblock(struct inspect_report *r, int dirfd)
{
    int fd = openat(dirfd, "superblock", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            problem(r, true, -1, -1,
                    "no superblock: not a lode-node data directory (or never formatted)");
            return 0;
        }
        snprintf(r->fatal, sizeof(r->fatal), "%s/superblock: %s", r->path, strerror(errno));
        return -errno;
    }
    struct node_superblock *sb = &r->sb;
    ssize_t n = pread_full(fd, sb, sizeof(*sb), 0);
    struct stat st;
    bool have_st = fstat(fd, &st) == 0;
    close(fd);
    if (n < 0) {
        snprintf(r->fatal, sizeof(r->fatal), "%s/superblock: %s", r->path, strerror((int)-n));
        return (int)n;
    }
    r->sb_present = true;
    if ((size_t)n < sizeof(*sb)) {
        problem(r, true, -1, -1, "superblock: %zd bytes, expected %zu (torn or truncated)", n,
                sizeof(*sb));
        return 0;
    }
    if (have_st && (uint64_t)st.st_size != sizeof(*sb))
        problem(r, false, -1, -1, "superblock: the file is %jd bytes, expected %zu",
                (intmax_t)st.st_size, sizeof(*sb));

    /* The verdict is the store's own decoder's; the raw image is kept for display, and a
     * plausible block size is used even from a damaged superblock so that the volumes can
     * still be examined. */
    struct node_superblock dec;
    struct cmn_err err;
    cmn_err_clear(&err);
    r->sb_checksum_ok =
        XXH3_64bits(sb, offsetof(struct node_superblock, checksum)) == le64toh(sb->checksum);
    bool ok = node_sb_decode(sb, sizeof(*sb), &dec, &err) == 0;
    if (ok) {
        r->sb = dec;
        r->block_size = dec.block_size;
    } else {
        problem(r, true, -1, -1, "%s", cmn_err_text(&err)); /* it names the superblock */
        r->sb.format = le32toh(sb->format);
        r->sb.block_size = le32toh(sb->block_size);
        r->sb.created_ms = le64toh(sb->created_ms);
        r->sb.volume_size = le64toh(sb->volume_size);
        uint32_t bs = r->sb.block_size;
        if (bs >= 512 && bs <= MAX_BLOCK_SIZE && (bs & (bs - 1)) == 0)
            r->block_size = bs;
    }
    r->sb_ok = ok;
    return 0;
}

/* ---- volumes ---- */

/* A window over a volume file, so walking headers block by block costs few syscalls. */
struct window {
    int fd;
    uint8_t *buf;
    uint64_t start;
    size_t len;
    int err;                        /* -errno of the last failed read */
};

/* The n bytes at off, or NULL past the end of the file or on a read error (w->err). */
static const uint8_t *window_at(struct window *w, uint64_t off, size_t n)
{
    if (off >= w->start && off + n <= w->start + w->len)
        return w->buf + (off - w->start);
    ssize_t got = pread_full(w->fd, w->buf, WINDOW_SIZE, off);
    if (got < 0) {
        w->err = (int)got;
        w->len = 0;
        return NULL;
    }
    w->start = off;
    w->len = (size_t)got;
    return (size_t)got >= n ? w->buf : NULL;
}

static const char *vol_file(uint32_t id, char *buf, size_t size)
{
    snprintf(buf, size, "volumes/%08" PRIu32 ".vol", id);
    return buf;
}

/* Reads one chunk record's sums and data and checks them. */
static void verify_chunk(struct inspect_report *r, struct inspect_volume *v, int fd,
                         struct inspect_record *rec, uint8_t **buf, size_t *cap)
{
    uint64_t sums_len = 8ull * rec->n_sums;
    uint64_t n = sums_len + rec->length;
    char hex[CMN_ID_HEX_SIZE];
    cmn_id_to_hex(&rec->id, hex);
    if (n > SIZE_MAX / 2) {
        problem(r, true, v->id, (int64_t)rec->offset, "chunk %s: length %" PRIu64
                " cannot be read", hex, rec->length);
        rec->corrupt = true;
        return;
    }
    if (*cap < n) {
        free(*buf);
        *cap = (size_t)n;
        *buf = xmalloc(*cap);
    }
    ssize_t got = pread_full(fd, *buf, (size_t)n, rec->offset + NODE_REC_SUMS_OFFSET);
    if (got < 0 || (uint64_t)got < n) {
        problem(r, true, v->id, (int64_t)rec->offset, "chunk %s: reading its data: %s", hex,
                got < 0 ? strerror((int)-got) : "the file ends first");
        rec->corrupt = true;
        return;
    }
    r->verified_chunks++;
    r->verified_bytes += rec->length;
    const uint8_t *data = *buf + sums_len;
    uint64_t data_off = rec->offset + node_record_data_offset(rec->n_sums);
    uint32_t bad_blocks = 0, first_bad = 0;
    for (uint32_t i = 0; i < rec->n_sums; i++) {
        if (!node_sums_check(*buf, rec->length, i, i, data + (uint64_t)i * NODE_SUM_BLOCK)) {
            if (!bad_blocks)
                first_bad = i;
            bad_blocks++;
        }
    }
    bool whole_ok = node_data_hash(data, (size_t)rec->length) == rec->hash;
    if (whole_ok && !bad_blocks)
        return;
    rec->corrupt = true;
    const char *why = v->sealed ? "" : " (unsealed volume: possibly a write torn by a crash, "
                                       "never acknowledged; the node drops it at start)";
    if (bad_blocks)
        problem(r, true, v->id, (int64_t)rec->offset,
                "chunk %s: %" PRIu32 " of %" PRIu32 " data blocks fail their checksum, the "
                "first at volume offset %" PRIu64 "%s%s", hex, bad_blocks, rec->n_sums,
                data_off + (uint64_t)first_bad * NODE_SUM_BLOCK,
                whole_ok ? " (the data matches the chunk hash: the block sums are damaged)" : "",
                why);
    else
        problem(r, true, v->id, (int64_t)rec->offset,
                "chunk %s: the data does not match its hash %016" PRIx64 "%s", hex, rec->hash,
                why);
}

/* A run of block boundaries without a valid record header, [start, end). */
struct gap {
    uint64_t start, end;
    bool nonzero;
    bool reported;              /* it starts at a damaged header, already an error */
};

static void report_gap(struct inspect_report *r, struct inspect_volume *v, const struct gap *g,
                       bool at_tail)
{
    uint64_t len = g->end - g->start;
    if (g->reported)
        return;
    if (at_tail) {
        /* After the last record: free space (zeros) or a last write torn by a crash. */
        if (!g->nonzero)
            return;
        if (v->sealed)
            problem(r, false, v->id, (int64_t)g->start,
                    "%" PRIu64 " bytes after the seal are not zero", len);
        else
            problem(r, false, v->id, (int64_t)g->start,
                    "unreadable record at the end of the unsealed volume (a write torn by a "
                    "crash, never acknowledged; the node writes over it)");
        return;
    }
    if (v->sealed)
        problem(r, true, v->id, (int64_t)g->start,
                "no valid record header in %" PRIu64 " bytes before later records (%s)", len,
                g->nonzero ? "damaged record header or data" : "zeros: a record is missing");
    else
        problem(r, false, v->id, (int64_t)g->start,
                "%" PRIu64 " bytes without a valid record before later records (%s; after a "
                "crash this is a write that never completed, and the node skips it)", len,
                g->nonzero ? "torn" : "zeros");
}

static void scan_records(struct inspect_report *r, struct inspect_volume *v, int fd,
                         uint64_t salt, uint64_t limit, uint8_t **vbuf, size_t *vcap)
{
    uint32_t bs = r->block_size;
    struct window w = {.fd = fd, .buf = xmalloc(WINDOW_SIZE)};
    struct gap *gaps = NULL;
    size_t n_gaps = 0, cap_gaps = 0;
    bool in_gap = false, after_seal = false;
    size_t first_rec = r->n_records;
    uint64_t off = bs;

    while (off + NODE_REC_HEAD <= limit) {
        const uint8_t *p = window_at(&w, off, NODE_REC_HEAD);
        if (!p) {
            problem(r, true, v->id, (int64_t)off, "reading the volume: %s",
                    w.err ? strerror(-w.err) : "the file ends early");
            break;
        }
        struct node_record_header h;
        memset(&h, 0, sizeof(h)); /* decode fills it only for headers it recognises */
        bool degraded = false;
        enum node_rh_status c = node_rh_decode_head(p, salt, &h, &degraded);
        uint64_t size = bs;
        bool reported = false;
        char hex[CMN_ID_HEX_SIZE];
        struct cmn_id id;
        memcpy(id.b, h.chunk_id, sizeof(id.b));
        cmn_id_to_hex(&id, hex);
        if (c == NODE_RH_OK && h.type == NODE_REC_CHUNK) {
            size = node_record_size(h.length, bs);
            if (h.length > limit || off + size > limit) {
                problem(r, true, v->id, (int64_t)off, "chunk %s: a record of %" PRIu64
                        " bytes runs past the end of the volume", hex, h.length);
                c = NODE_RH_INVALID;
                size = bs;
                reported = true;
            }
        }
        if (!reported && (c == NODE_RH_DAMAGED || c == NODE_RH_INVALID)) {
            /* Not garbage: a header that was written whole (a sector is written atomically)
             * and changed since, or one no correct node writes. An error even in the
             * unsealed volume, since it may have been acknowledged; named with the chunk
             * it probably belonged to. */
            problem(r, true, v->id, (int64_t)off, "%s (type %u, chunk %s?)",
                    node_rh_status_name(c), h.type, hex);
            reported = true;
        }
        if (c != NODE_RH_OK) {
            if (!in_gap) {
                if (n_gaps == cap_gaps) {
                    cap_gaps = cap_gaps ? cap_gaps * 2 : 8;
                    gaps = xrealloc(gaps, cap_gaps * sizeof(*gaps));
                }
                gaps[n_gaps++] = (struct gap){.start = off, .reported = reported};
                in_gap = true;
            }
            gaps[n_gaps - 1].nonzero |= c != NODE_RH_ZERO;
            off += bs;
            gaps[n_gaps - 1].end = off;
            continue;
        }
        in_gap = false;
        if (after_seal)
            problem(r, true, v->id, (int64_t)off, "a record follows the seal");

        struct inspect_record *rec = add_record(r);
        rec->volume = v->id;
        rec->offset = off;
        rec->type = h.type;
        rec->id = id;
        rec->length = h.length;
        rec->hash = h.hash;
        rec->seq = h.seq;
        rec->created_ms = (int64_t)h.created_ms;
        rec->n_sums = node_record_n_sums(h.length);
        if (degraded) {
            /* Identified by its surviving copy. The node treats such a chunk as corrupt
             * (reads fail, it is reported for repair): so does the report. */
            problem(r, true, v->id, (int64_t)off, "%s %s: one of the two record header copies "
                    "is damaged", h.type == NODE_REC_CHUNK ? "chunk" : "record", hex);
            rec->corrupt = h.type == NODE_REC_CHUNK;
        }
        v->records++;
        if (h.type == NODE_REC_CHUNK)
            v->chunks++;
        else if (h.type == NODE_REC_TOMBSTONE)
            v->tombstones++;
        else
            after_seal = v->sealed = true;
        off += size;
        v->end = off;
    }
    free(w.buf);

    /* Gaps and data last: only now is it known whether the volume is sealed (the seal is
     * its last record), which decides what a gap or a mismatch means. */
    for (size_t i = 0; i < n_gaps; i++)
        report_gap(r, v, &gaps[i], i + 1 == n_gaps && in_gap);
    free(gaps);
    if (r->verify)
        for (size_t i = first_rec; i < r->n_records; i++)
            if (r->records[i].type == NODE_REC_CHUNK)
                verify_chunk(r, v, fd, &r->records[i], vbuf, vcap);
}

static void scan_volume(struct inspect_report *r, int voldir, struct inspect_volume *v,
                        uint8_t **vbuf, size_t *vcap)
{
    char name[64];
    int fd = openat(voldir, v->name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        problem(r, true, v->id, -1, "%s: %s", vol_file(v->id, name, sizeof(name)),
                strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        problem(r, true, v->id, -1, "%s: %s", vol_file(v->id, name, sizeof(name)),
                strerror(errno));
        close(fd);
        return;
    }
    v->file_size = (uint64_t)st.st_size;
    struct node_volume_header h;
    ssize_t n = pread_full(fd, &h, sizeof(h), 0);
    if (n < (ssize_t)sizeof(h)) {
        problem(r, true, v->id, 0, "volume header: %s",
                n < 0 ? strerror((int)-n) : "the file is shorter than a header");
        close(fd);
        return;
    }
    struct cmn_err err;
    cmn_err_clear(&err);
    bool ok = node_vh_decode(&h, &h, &err) == 0;
    if (!ok)
        problem(r, true, v->id, 0, "%s", all_zero(&h, sizeof(h))
                ? "volume header: zeros (a volume whose creation did not finish?)"
                : cmn_err_text(&err)); /* it names the volume header */
    if (ok) {
        v->header_ok = true;
        v->size = h.size;
        v->created_ms = (int64_t)h.created_ms;
        if (h.volume_id != v->id)
            problem(r, true, v->id, 0, "volume header: says volume %" PRIu32
                    ", the file name says %" PRIu32, h.volume_id, v->id);
        if (r->sb_ok && memcmp(h.disk_uuid, r->sb.disk_uuid, sizeof(h.disk_uuid)) != 0)
            problem(r, true, v->id, 0, "volume header: belongs to another disk (disk uuid "
                    "differs from the superblock's)");
        if (v->size != v->file_size)
            problem(r, true, v->id, 0, "volume header: size %" PRIu64 ", the file has %" PRIu64
                    " bytes", v->size, v->file_size);
        if (v->size % r->block_size != 0)
            problem(r, true, v->id, 0, "volume header: size %" PRIu64
                    " is not a multiple of the block size", v->size);
        uint64_t limit = v->size < v->file_size ? v->size : v->file_size;
        scan_records(r, v, fd, h.salt, limit, vbuf, vcap);
    }
    close(fd);
}

/* "%08u<suffix>" -> id. */
static bool volume_name(const char *s, const char *suffix, uint32_t *id)
{
    for (int i = 0; i < 8; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    if (strcmp(s + 8, suffix) != 0)
        return false;
    *id = (uint32_t)strtoul(s, NULL, 10);
    return true;
}

static int cmp_volume(const void *a, const void *b)
{
    const struct inspect_volume *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int scan_volumes(struct inspect_report *r, int dirfd)
{
    int voldir = openat(dirfd, "volumes", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (voldir < 0) {
        if (errno == ENOENT)
            return 0; /* formatted, nothing written yet */
        snprintf(r->fatal, sizeof(r->fatal), "%s/volumes: %s", r->path, strerror(errno));
        return -errno;
    }
    DIR *d = fdopendir(dup(voldir));
    if (!d) {
        snprintf(r->fatal, sizeof(r->fatal), "%s/volumes: %s", r->path, strerror(errno));
        close(voldir);
        return -errno;
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint32_t id;
        if (de->d_name[0] == '.')
            continue;
        if (!volume_name(de->d_name, ".vol", &id)) {
            if (volume_name(de->d_name, ".tmp", &id))
                problem(r, false, id, -1, "volumes/%s: a volume being created (or left "
                        "unfinished by a crash): not in use", de->d_name);
            else
                problem(r, false, -1, -1, "volumes/%s: not a volume file name",
                        de->d_name);
            continue;
        }
        if (r->n_volumes == cap) {
            cap = cap ? cap * 2 : 16;
            r->volumes = xrealloc(r->volumes, cap * sizeof(r->volumes[0]));
        }
        struct inspect_volume *v = &r->volumes[r->n_volumes++];
        memset(v, 0, sizeof(*v));
        v->id = id;
        v->first_bad = -1;
        snprintf(v->name, sizeof(v->name), "%s", de->d_name);
    }
    closedir(d);
    if (r->n_volumes > 1)
        qsort(r->volumes, r->n_volumes, sizeof(r->volumes[0]), cmp_volume);

    uint8_t *vbuf = NULL;
    size_t vcap = 0;
    for (size_t i = 0; i < r->n_volumes; i++)
        scan_volume(r, voldir, &r->volumes[i], &vbuf, &vcap);
    free(vbuf);
    close(voldir);

    /* Only the newest volume holding records may be unsealed: the node seals one before
     * appending to the next (empty ones created ahead of need are normal). */
    for (size_t i = 0; i < r->n_volumes; i++) {
        const struct inspect_volume *v = &r->volumes[i];
        bool newer_used = false;
        for (size_t k = i + 1; k < r->n_volumes; k++)
            newer_used |= r->volumes[k].records > 0;
        if (v->header_ok && !v->sealed && newer_used)
            problem(r, false, v->id, -1, "not sealed, yet a newer volume holds records (a "
                    "crash while sealing?)");
    }
    return 0;
}

/* ---- which chunk records the index would hold ---- */

static int cmp_rec_idx(const void *a, const void *b, void *arg)
{
    const struct inspect_record *recs = arg;
    const struct inspect_record *x = &recs[*(const size_t *)a], *y = &recs[*(const size_t *)b];
    int c = cmn_id_cmp(&x->id, &y->id);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static struct inspect_volume *volume_by_id(struct inspect_report *r, uint32_t id)
{
    for (size_t i = 0; i < r->n_volumes; i++)
        if (r->volumes[i].id == id)
            return &r->volumes[i];
    return NULL;
}

/* A chunk record is live when it has the highest seq among the chunk records of its id and
 * no tombstone of that id has a higher seq; other copies are dead (left by compaction), and
 * tombstoned ones deleted. Only this directory is seen: the node writes a chunk's tombstone
 * on the chunk's own disk. */
static void classify_records(struct inspect_report *r)
{
    size_t n = 0;
    size_t *idx = xmalloc(r->n_records * sizeof(size_t));
    for (size_t i = 0; i < r->n_records; i++) {
        struct inspect_record *rec = &r->records[i];
        if (rec->type == NODE_REC_CHUNK || rec->type == NODE_REC_TOMBSTONE)
            idx[n++] = i;
        rec->state = rec->type == NODE_REC_CHUNK ? INSPECT_LIVE
                     : rec->type == NODE_REC_TOMBSTONE ? INSPECT_TOMBSTONE : INSPECT_SEAL;
    }
    qsort_r(idx, n, sizeof(size_t), cmp_rec_idx, r->records);
    for (size_t g = 0; g < n;) {
        size_t e = g;
        uint64_t chunk_max = 0, tomb_max = 0;
        bool have_chunk = false, have_tomb = false;
        while (e < n && cmn_id_cmp(&r->records[idx[e]].id, &r->records[idx[g]].id) == 0) {
            const struct inspect_record *rec = &r->records[idx[e]];
            if (rec->type == NODE_REC_CHUNK) {
                chunk_max = rec->seq;
                have_chunk = true;
            } else {
                tomb_max = rec->seq;
                have_tomb = true;
            }
            e++;
        }
        bool seen_live = false;
        for (size_t k = e; k-- > g;) {
            struct inspect_record *rec = &r->records[idx[k]];
            if (rec->type != NODE_REC_CHUNK)
                continue;
            if (have_tomb && tomb_max > rec->seq)
                rec->state = INSPECT_DELETED;
            else if (rec->seq < chunk_max || seen_live)
                rec->state = INSPECT_DEAD;
            else
                seen_live = true;
        }
        (void)have_chunk;
        g = e;
    }
    free(idx);

    for (size_t i = 0; i < r->n_records; i++) {
        const struct inspect_record *rec = &r->records[i];
        struct inspect_volume *v = volume_by_id(r, rec->volume);
        if (rec->type != NODE_REC_CHUNK || !v)
            continue;
        uint64_t size = node_record_size(rec->length, r->block_size);
        if (rec->state == INSPECT_LIVE) {
            v->live++;
            v->live_bytes += size;
            r->live_chunks++;
            r->live_data_bytes += rec->length;
        } else {
            v->dead++;
            v->dead_bytes += size;
        }
        if (rec->corrupt)
            r->corrupt_chunks++;
    }
}

/* ---- the LOCK, as /proc/locks shows it ---- */

static void find_lock_holder(struct inspect_report *r, int dirfd)
{
    struct stat st;
    if (fstatat(dirfd, "LOCK", &st, 0) != 0)
        return;
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        /* "1: FLOCK  ADVISORY  WRITE 1234 08:02:5678 0 EOF"; waiters have "->" and are
         * not holders. */
        char kind[16], mode[16], rw[16];
        long pid;
        unsigned maj, min;
        unsigned long long ino;
        if (strstr(line, "->"))
            continue;
        const char *p = strchr(line, ':');
        if (!p || sscanf(p + 1, "%15s %15s %15s %ld %x:%x:%llu", kind, mode, rw, &pid, &maj,
                         &min, &ino) != 7)
            continue;
        if (strcmp(kind, "FLOCK") == 0 && ino == (unsigned long long)st.st_ino &&
            maj == major(st.st_dev) && min == minor(st.st_dev)) {
            r->lock_pid = pid;
            break;
        }
    }
    fclose(f);
}

/* ---- entry point ---- */

int inspect_node_dir(const char *path, bool verify, struct inspect_report *r)
{
    memset(r, 0, sizeof(*r));
    r->path = path;
    r->verify = verify;
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        snprintf(r->fatal, sizeof(r->fatal), "%s: %s", path, strerror(errno));
        return -errno;
    }
    int rc = read_superblock(r, dirfd);
    if (rc == 0) {
        find_lock_holder(r, dirfd);
        /* Without a usable block size no record can be found; every other superblock
         * problem is reported and the volumes read anyway (what is left may matter). */
        if (r->block_size)
            rc = scan_volumes(r, dirfd);
        else if (r->sb_present)
            problem(r, true, -1, -1, "volumes not read: the superblock gives no usable block "
                    "size");
    }
    close(dirfd);
    if (rc == 0)
        classify_records(r);
    return rc;
}

void inspect_report_free(struct inspect_report *r)
{
    free(r->volumes);
    free(r->records);
    free(r->problems);
    memset(r, 0, sizeof(*r));
}

const char *inspect_state_name(enum inspect_state s)
{
    switch (s) {
    case INSPECT_LIVE:
        return "live";
    case INSPECT_DEAD:
        return "dead";
    case INSPECT_DELETED:
        return "deleted";
    case INSPECT_TOMBSTONE:
        return "tombstone";
    case INSPECT_SEAL:
        return "seal";
    }
    return "?";
}
