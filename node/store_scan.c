/* The start-up scan (docs/disk-format.md, "Start-up scan and crash recovery"): rebuilds the
 * index from the record headers of every volume, verifies the data of unsealed volumes,
 * and puts each volume in its state (SEALED, ACTIVE, RETIRED).
 *
 * Opening is synchronous (node/store.h), yet volume I/O goes through node/io.h: the scan
 * runs a private libuv loop with its own node_io and waits on it, request by request.
 *
 * Walking a volume: a record is expected at the first block after the header and right after
 * each valid record (a "chain position"). Anything else there breaks the chain; the walk
 * then tries every following block boundary for a valid header (resynchronisation). Record
 * headers are keyed by the volume's secret salt, so client data inside a chunk never passes
 * as a header. Damaged headers are only believed at chain positions.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "node/store_int.h"

#define SCAN_WINDOW (1u << 20)

/* ---- synchronous I/O on a private loop ---- */

struct sio {
    uv_loop_t loop;
    struct node_io *io;
    uint64_t n_reqs;             /* for the scan summary */
    uint64_t bytes;
};

static void sio_req_done(struct node_io_req *r)
{
    *(bool *)r->data = true;
}

static ssize_t sio_do(struct sio *s, enum node_io_op op, int fd, void *buf, size_t len,
                      uint64_t off)
{
    bool done = false;
    struct node_io_req r;
    memset(&r, 0, sizeof(r));
    r.data = &done;
    r.cb = sio_req_done;
    r.op = op;
    r.fd = fd;
    r.buf = buf;
    r.len = len;
    r.off = off;
    if (node_io_submit(s->io, &r) != 0)
        return -EINVAL;
    s->n_reqs++;
    s->bytes += len;
    while (!done)
        if (uv_run(&s->loop, UV_RUN_ONCE) == 0 && !done)
            return -EIO; /* nothing left that could complete it: a backend bug */
    return r.result;
}

static void sio_closed(void *data)
{
    *(bool *)data = true;
}

static int sio_open(struct sio *s, const struct store_disk *d, struct cmn_err *err)
{
    memset(s, 0, sizeof(*s));
    int rc = uv_loop_init(&s->loop);
    if (rc)
        return cmn_err_set(err, rc, "uv_loop_init: %s", uv_strerror(rc));
    rc = node_io_create(&s->loop, d->probe.kind, 8, &s->io, err);
    if (rc) {
        uv_loop_close(&s->loop);
        return cmn_err_wrap(err, "%s", d->path);
    }
    return 0;
}

static void sio_close(struct sio *s)
{
    bool done = false;
    node_io_close(s->io, sio_closed, &done);
    while (!done)
        if (uv_run(&s->loop, UV_RUN_ONCE) == 0 && !done)
            break;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s->loop) != 0)
        LOG_WARN("store", "scan loop still has handles after node_io_close");
}

/* ---- a read window over one volume ---- */

struct win {
    struct sio *sio;
    int fd;
    uint64_t vsize;
    uint32_t bs;
    uint32_t align;
    uint8_t *buf;
    size_t cap;
    uint64_t start, len;
};

/* [off, off + len) (inside the volume), reading `want` bytes ahead when it has to read. */
static const uint8_t *win_get(struct win *w, uint64_t off, uint64_t len, uint64_t want,
                              int *rc)
{
    if (w->len && off >= w->start && off + len <= w->start + w->len)
        return w->buf + (off - w->start);
    uint64_t n = len > want ? len : want;
    n = (n + w->bs - 1) & ~(uint64_t)(w->bs - 1);
    if (off + n > w->vsize)
        n = w->vsize - off;
    if (n > w->cap) {
        node_io_free(w->buf);
        w->buf = node_io_alloc(n, w->align);
        w->cap = w->buf ? n : 0;
        if (!w->buf) {
            w->len = 0;
            *rc = -ENOMEM;
            return NULL;
        }
    }
    ssize_t got = sio_do(w->sio, NODE_IO_READ, w->fd, w->buf, n, off);
    if (got != (ssize_t)n) {
        w->len = 0;
        *rc = got < 0 ? (int)got : -EIO;
        return NULL;
    }
    w->start = off;
    w->len = n;
    return w->buf;
}

/* ---- one volume ---- */

struct rec {
    uint64_t off;
    uint64_t size;
    struct node_record_header rh;
    bool ok;         /* trusted (and, unsealed, verified or known corrupt) */
    bool corrupt;    /* kept in the index but failing verification (reads: LODE_ECORRUPT) */
    bool damaged;    /* a header at a chain position whose copies both fail their check */
    bool head_bad;   /* identified by one header copy, the other damaged */
};

struct walk {
    struct rec *recs;
    size_t n, cap;
    bool sealed;
    uint64_t seal_off;
    uint64_t first_problem;  /* lowest offset of a break, damage or dropped record */
    uint64_t end;            /* end of the last good record */
    unsigned junk_breaks;    /* chain positions holding neither a header nor zeros */
    uint64_t wmark;          /* unsealed: durable watermark W in bytes (verify_records) */
};

static int walk_add(struct walk *w, const struct rec *r)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct rec *n = realloc(w->recs, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        w->recs = n;
        w->cap = cap;
    }
    w->recs[w->n++] = *r;
    return 0;
}

static void note_problem(struct walk *w, uint64_t off)
{
    if (off < w->first_problem)
        w->first_problem = off;
}

static uint64_t rec_size(const struct node_record_header *rh, uint32_t bs)
{
    return rh->type == NODE_REC_CHUNK ? node_record_size(rh->length, bs) : bs;
}

static void note_head_damage(const struct store_vol *v, const struct rec *r)
{
    char hex[CMN_ID_HEX_SIZE];
    struct cmn_id id;
    memcpy(id.b, r->rh.chunk_id, 16);
    cmn_id_to_hex(&id, hex);
    static const char *const what[] = {"?", "chunk", "tombstone", "seal"};
    LOG_ERROR("store", "%s: volume %u: one copy of the %s record header at %llu is damaged "
              "(chunk id %s, from the surviving copy)%s", v->disk->path, v->id,
              what[r->rh.type <= NODE_REC_SEAL ? r->rh.type : 0], (unsigned long long)r->off,
              hex, r->rh.type == NODE_REC_CHUNK ? ": the chunk is treated as corrupt" : "");
}

static int walk_volume(struct win *win, struct store_vol *v, struct walk *w)
{
    uint32_t bs = v->disk->bs;
    uint64_t off = bs, prev = 0;
    bool chain = true;
    int rc = 0;
    w->first_problem = UINT64_MAX;
    while (off + bs <= v->size) {
        /* After a large record read just the next header; small ones share a window. */
        const uint8_t *p = win_get(win, off, bs, prev >= NODE_SUM_BLOCK ? bs : SCAN_WINDOW, &rc);
        if (!p)
            return rc;
        struct rec r = {.off = off};
        enum node_rh_status s = node_rh_decode_head(p, v->salt, &r.rh, &r.head_bad);
        if (s == NODE_RH_OK) {
            r.size = rec_size(&r.rh, bs);
            /* A record is issued at or above the watermark it carries. */
            if (r.rh.length > v->size || off + r.size > v->size ||
                (uint64_t)r.rh.synced_upto * bs > off)
                s = NODE_RH_INVALID;
        }
        if (s == NODE_RH_OK) {
            r.ok = true;
            if (r.head_bad)
                note_head_damage(v, &r);
            /* A chunk with damaged metadata is kept as corrupt: reads fail and it is
             * reported (unsealed volumes decide by the watermark in verify_records). */
            r.corrupt = r.head_bad && r.rh.type == NODE_REC_CHUNK;
            if ((rc = walk_add(w, &r)) != 0)
                return rc;
            if (r.rh.type == NODE_REC_SEAL) {
                w->sealed = true;
                w->seal_off = off;
                return 0;
            }
            off += r.size;
            prev = r.size;
            chain = true;
            continue;
        }
        if (chain) {
            note_problem(w, off);
            if (s == NODE_RH_DAMAGED || s == NODE_RH_INVALID) {
                r.damaged = true;
                if ((rc = walk_add(w, &r)) != 0)
                    return rc;
            } else if (s == NODE_RH_JUNK) {
                w->junk_breaks++;
            }
            chain = false;
        }
        off += bs;
        prev = 0;
    }
    return 0;
}

/* Unsealed volume: each chunk record's data must match its checksums. One that fails is a
 * write that may never have completed (not acknowledged, dropped) when it starts at or above
 * the durable watermark W (the largest synced_upto of a valid header: everything below it
 * was written and fdatasynced before that header was issued). Below W it was durable, so
 * acknowledged: bit rot, kept in the index as corrupt and reported. */
static int verify_records(struct win *win, struct store_vol *v, struct walk *w)
{
    int rc = 0;
    uint64_t wmark = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->recs[i].ok && (uint64_t)w->recs[i].rh.synced_upto * v->disk->bs > wmark)
            wmark = (uint64_t)w->recs[i].rh.synced_upto * v->disk->bs;
    w->wmark = wmark;
    for (size_t i = 0; i < w->n; i++) {
        struct rec *r = &w->recs[i];
        if (!r->ok || r->rh.type != NODE_REC_CHUNK)
            continue;
        const uint8_t *p = win_get(win, r->off, r->size, SCAN_WINDOW, &rc);
        if (!p)
            return rc;
        uint32_t n_sums = node_record_n_sums(r->rh.length);
        const uint8_t *data = p + node_record_data_offset(n_sums);
        bool good = !r->head_bad && node_data_hash(data, r->rh.length) == r->rh.hash &&
                    node_sums_check(p + NODE_REC_SUMS_OFFSET, r->rh.length, 0, n_sums - 1,
                                    data);
        if (!good) {
            char hex[CMN_ID_HEX_SIZE];
            struct cmn_id id;
            memcpy(id.b, r->rh.chunk_id, 16);
            cmn_id_to_hex(&id, hex);
            if (r->off < wmark) {
                /* Reported once the index is complete (store_scan_finish): a later
                 * tombstone may still delete it. */
                LOG_ERROR("store", "%s: volume %u: chunk %s at %llu fails verification below "
                          "the durable watermark %llu of the unsealed volume: corrupt",
                          v->disk->path, v->id, hex, (unsigned long long)r->off,
                          (unsigned long long)wmark);
                r->corrupt = true;
                continue;
            }
            LOG_WARN("store",
                     "%s: volume %u: chunk %s at %llu fails verification in the unsealed "
                     "volume: a write that never completed (not acknowledged), dropped",
                     v->disk->path, v->id, hex, (unsigned long long)r->off);
            r->ok = false;
            r->corrupt = false;
            note_problem(w, r->off);
        }
    }
    return 0;
}

static void scan_add_chunk(struct node_store *st, struct store_vol *v, const struct rec *r)
{
    struct cmn_id id;
    memcpy(id.b, r->rh.chunk_id, 16);
    struct store_key *k = store_tree_find(&st->index, &id);
    struct store_entry *e = k ? store_container_of(k, struct store_entry, k) : NULL;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return;
        e->k.id = id;
        e->lo_vol = v->id;
        store_list_init(&e->vlink);
        store_tree_insert(&st->index, &e->k);
    } else if (e->disk == v->disk->index) {
        /* Two copies on one disk (an interrupted compaction): the higher seq wins, the other
         * is dead space that may still need a tombstone if the chunk is deleted later. */
        if (v->id < e->lo_vol)
            e->lo_vol = v->id;
        if (r->rh.seq < e->seq)
            return;
    } else if (r->rh.seq < e->seq) {
        return; /* the same id on two disks: keep the newer */
    } else {
        e->lo_vol = v->id;
    }
    e->vol = v;
    e->off = r->off;
    e->length = r->rh.length;
    e->hash = r->rh.hash;
    e->seq = r->rh.seq;
    e->created_ms = (int64_t)r->rh.created_ms;
    e->disk = v->disk->index;
    e->flags = r->corrupt ? ENT_CORRUPT : 0;
}

static void scan_add_tomb(struct node_store *st, struct store_vol *v, const struct rec *r)
{
    struct cmn_id id;
    memcpy(id.b, r->rh.chunk_id, 16);
    struct store_key *k = store_tree_find(&st->tombs, &id);
    struct store_tomb *t = k ? store_container_of(k, struct store_tomb, k) : NULL;
    if (!t) {
        t = calloc(1, sizeof(*t));
        if (!t)
            return;
        t->k.id = id;
        store_list_init(&t->vlink);
        store_tree_insert(&st->tombs, &t->k);
    } else if (r->rh.seq < t->seq || (r->rh.seq == t->seq && v->id < t->vol->id)) {
        return; /* an older tombstone, or the source of one carried forward */
    }
    t->vol = v;
    t->off = r->off;
    t->seq = r->rh.seq;
    t->created_ms = (int64_t)r->rh.created_ms;
}

/* A record at a chain position whose two header copies both fail their salted check:
 * nothing in them can be believed, not the length (the walk resynchronises block by block)
 * and not the chunk id (the damaged bytes may be the id: reporting it would name a chunk that
 * never existed and miss the real one). It is logged by place and counted (NODE_HEALTH
 * damaged_records); meta's layouts against the node's chunk list (repair) find the chunk
 * that went missing. One surviving copy is enough to name the chunk: see walk_volume. */
static void report_damage(struct node_store *st, struct store_vol *v, const struct rec *r,
                          bool sealed)
{
    LOG_ERROR("store", "%s: volume %u: damaged record header at offset %llu (%s volume): "
              "record skipped, its chunk is unavailable", v->disk->path, v->id,
              (unsigned long long)r->off, sealed ? "sealed" : "unsealed");
    st->damaged_records++;
    st->corrupt_found++;
}

/* Overwrites with zeros the first block of every record at or after `from` whose header is
 * valid: appends will resume there, and a stale header left between new records could be
 * believed by a later scan of the sealed volume. */
static int zero_stale(struct sio *sio, struct store_vol *v, struct walk *w, uint64_t from,
                      void *zero_block)
{
    for (size_t i = 0; i < w->n; i++) {
        const struct rec *r = &w->recs[i];
        if (r->damaged || r->off < from)
            continue;
        ssize_t n = sio_do(sio, NODE_IO_WRITE, v->fd, zero_block, v->disk->bs, r->off);
        if (n != (ssize_t)v->disk->bs)
            return n < 0 ? (int)n : -EIO;
    }
    return 0;
}

static int write_seal_sync(struct node_store *st, struct sio *sio, struct store_vol *v,
                           uint8_t *block)
{
    struct node_record_header rh;
    memset(&rh, 0, sizeof(rh));
    rh.type = NODE_REC_SEAL;
    rh.seq = st->next_seq++;
    rh.created_ms = (uint64_t)cmn_now_ms();
    memset(block, 0, v->disk->bs);
    node_rh_encode(&rh, v->salt, block);
    ssize_t n = sio_do(sio, NODE_IO_WRITE, v->fd, block, v->disk->bs, v->append);
    return n == (ssize_t)v->disk->bs ? 0 : (n < 0 ? (int)n : -EIO);
}

/* Puts an unsealed volume in its place: resumed (ACTIVE) when it is the last one, sealed
 * now when another follows it, RETIRED when it has holes (never appended to or sealed: a
 * sealed volume's headers are trusted, so it must not contain unverifiable gaps). */
static bool has_holes(const struct walk *w)
{
    return w->first_problem < w->end;
}

static int settle_unsealed(struct node_store *st, struct sio *sio, struct store_vol *v,
                           struct walk *w, bool last, uint8_t *block)
{
    struct store_disk *d = v->disk;
    if (has_holes(w)) {
        v->state = VOL_RETIRED;
        LOG_WARN("store", "%s: volume %u has holes after a crash: retired (its records stay "
                 "readable; compaction will move them)", d->path, v->id);
        return 0;
    }
    memset(block, 0, d->bs);
    int rc = zero_stale(sio, v, w, w->end, block);
    if (rc)
        return rc;
    if (last) {
        v->state = VOL_ACTIVE;
        d->active = v;
    } else if (v->append + d->bs <= v->size) {
        rc = write_seal_sync(st, sio, v, block);
        if (rc)
            return rc;
        v->state = VOL_SEALED;
    } else {
        v->state = VOL_RETIRED;
    }
    ssize_t n = sio_do(sio, NODE_IO_FDATASYNC, v->fd, NULL, 0, 0);
    if (n < 0)
        return (int)n;
    v->synced = v->append; /* everything kept was just synced */
    return 0;
}

/* An unsealed volume waiting for store_scan_disk to decide what it becomes. */
struct unsealed {
    struct store_vol *v;
    struct walk w;
};

static int scan_volume(struct node_store *st, struct store_disk *d, struct sio *sio,
                       struct win *win, uint32_t id, struct unsealed *pending,
                       size_t *n_pending, struct cmn_err *err)
{
    char name[32];
    snprintf(name, sizeof(name), "%08u.vol", id);
    int fd = openat(d->vol_dir_fd, name, O_RDWR | O_CLOEXEC | (d->o_direct ? O_DIRECT : 0));
    if (fd < 0)
        return cmn_err_set(err, -errno, "%s/volumes/%s: %s", d->path, name, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return cmn_err_set(err, -e, "%s/volumes/%s: %s", d->path, name, strerror(e));
    }
    win->fd = fd;
    win->vsize = (uint64_t)sb.st_size;
    win->len = 0;
    int rc = 0;
    struct node_volume_header vh;
    struct cmn_err verr;
    cmn_err_clear(&verr);
    const uint8_t *p = (uint64_t)sb.st_size >= 2ull * d->bs
                           ? win_get(win, 0, d->bs, SCAN_WINDOW, &rc)
                           : NULL;
    if (!p && rc) {
        close(fd);
        return cmn_err_set(err, rc, "%s/volumes/%s: read: %s", d->path, name,
                           lode_strerror(rc));
    }
    if (!p)
        cmn_err_set(&verr, LODE_ECORRUPT, "too small (%lld bytes)", (long long)sb.st_size);
    else if (node_vh_decode(p, &vh, &verr) == 0) {
        if (vh.volume_id != id)
            cmn_err_set(&verr, LODE_ECORRUPT, "header says volume %u", vh.volume_id);
        else if (memcmp(vh.disk_uuid, d->disk_uuid, 16) != 0)
            cmn_err_set(&verr, LODE_ECORRUPT, "belongs to another disk");
        else if (vh.size != (uint64_t)sb.st_size || vh.size % d->bs)
            cmn_err_set(&verr, LODE_ECORRUPT, "size %lld, header says %llu",
                        (long long)sb.st_size, (unsigned long long)vh.size);
    }
    if (verr.code) {
        /* Without a trustworthy salt no record of it can be checked: leave the file for the
         * operator (lodectl inspect) and go on with the others. */
        LOG_ERROR("store", "%s/volumes/%s: %s: skipped, its chunks are unavailable", d->path,
                  name, cmn_err_text(&verr));
        st->corrupt_found++;
        close(fd);
        return 0;
    }
    struct store_vol *v = store_vol_new(d, id, fd, vh.size, vh.salt);
    if (!v || store_disk_add_vol(d, v) != 0) {
        free(v);
        close(fd);
        return cmn_err_set(err, -ENOMEM, "out of memory");
    }
    d->vol_bytes += v->size;
    d->used += d->bs;

    struct walk w;
    memset(&w, 0, sizeof(w));
    rc = walk_volume(win, v, &w);
    if (!rc && !w.sealed)
        rc = verify_records(win, v, &w);
    if (rc) {
        free(w.recs);
        return cmn_err_set(err, rc, "%s/volumes/%s: read: %s", d->path, name,
                           lode_strerror(rc));
    }
    w.end = d->bs;
    for (size_t i = 0; i < w.n; i++) {
        const struct rec *r = &w.recs[i];
        if (r->ok && r->rh.seq >= st->next_seq)
            st->next_seq = r->rh.seq + 1;
        if (r->ok && r->rh.type != NODE_REC_SEAL && r->off + r->size > w.end)
            w.end = r->off + r->size;
    }
    for (size_t i = 0; i < w.n; i++) {
        const struct rec *r = &w.recs[i];
        if (r->damaged && (w.sealed || r->off < w.wmark))
            report_damage(st, v, r, w.sealed);
        else if (r->damaged)
            LOG_WARN("store", "%s: volume %u: invalid record header at %llu, at or above the "
                     "durable watermark of the unsealed volume: a torn write, skipped",
                     d->path, id, (unsigned long long)r->off);
        else if (r->ok && r->rh.type == NODE_REC_CHUNK)
            scan_add_chunk(st, v, r);
        else if (r->ok && r->rh.type == NODE_REC_TOMBSTONE)
            scan_add_tomb(st, v, r);
    }
    if (w.sealed) {
        v->state = VOL_SEALED;
        v->append = w.seal_off + d->bs;
        v->written = w.seal_off - d->bs;
        if (w.first_problem < w.seal_off)
            LOG_ERROR("store", "%s: volume %u: sealed volume has a gap at %llu: corruption",
                      d->path, id, (unsigned long long)w.first_problem);
        /* A record whose header is unrecognisable is lost without an id to report. */
        st->corrupt_found += w.junk_breaks;
        st->damaged_records += w.junk_breaks;
        if (w.junk_breaks)
            LOG_ERROR("store", "%s: volume %u: %u record header(s) unrecognisable in the "
                      "sealed volume (first problem at offset %llu): skipped", d->path, id,
                      w.junk_breaks, (unsigned long long)w.first_problem);
    } else {
        v->append = w.end;
        v->written = w.end - d->bs;
        pending[(*n_pending)++] = (struct unsealed){.v = v, .w = w};
        return 0;
    }
    free(w.recs);
    return 0;
}

/* What the unsealed volumes become. Normally the last volume is resumed and the others are
 * sealed (or retired when they have holes). When the last one is an empty volume prepared
 * ahead and the one before it was the active one, that one is resumed and the empty one
 * kept for later: otherwise every restart would leave a partly filled volume behind. */
static int settle_all(struct node_store *st, struct store_disk *d, struct sio *sio,
                      struct unsealed *u, size_t n, uint8_t *block, struct cmn_err *err)
{
    struct store_vol *last = d->n_vols ? d->vols[d->n_vols - 1] : NULL;
    struct store_vol *resume = n && u[n - 1].v == last ? last : NULL;
    if (n >= 2 && resume && u[n - 1].w.n == 0 && d->n_vols >= 2 &&
        u[n - 2].v == d->vols[d->n_vols - 2] && !has_holes(&u[n - 2].w) &&
        u[n - 2].v->append + STORE_TAIL < u[n - 2].v->size) {
        last->state = VOL_READY;
        d->ready = last;
        resume = u[n - 2].v;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = settle_unsealed(st, sio, u[i].v, &u[i].w, u[i].v == resume, block);
        if (rc)
            return cmn_err_set(err, rc, "%s: volume %u: %s", d->path, u[i].v->id,
                               lode_strerror(rc));
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids of DIR/volumes/NNNNNNNN.vol, sorted; removes leftover NNNNNNNN.tmp files (volumes
 * whose creation a crash interrupted). */
static int list_volumes(struct store_disk *d, uint32_t **out, size_t *n_out, struct cmn_err *err)
{
    int fd = openat(d->vol_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return cmn_err_set(err, -errno, "%s/volumes: %s", d->path, strerror(errno));
    }
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(dir)) != NULL) {
        const char *s = de->d_name;
        size_t len = strlen(s);
        if (len != 12 || strspn(s, "0123456789") != 8)
            continue;
        if (!strcmp(s + 8, ".tmp")) {
            unlinkat(d->vol_dir_fd, s, 0);
            continue;
        }
        if (strcmp(s + 8, ".vol") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint32_t *x = realloc(ids, cap * sizeof(*x));
            if (!x) {
                rc = cmn_err_set(err, -ENOMEM, "out of memory");
                break;
            }
            ids = x;
        }
        ids[n++] = (uint32_t)strtoul(s, NULL, 10);
    }
    closedir(dir);
    if (rc) {
        free(ids);
        return rc;
    }
    if (n)
        qsort(ids, n, sizeof(*ids), cmp_u32);
    *out = ids;
    *n_out = n;
    return 0;
}

int store_scan_disk(struct node_store *st, struct store_disk *d, struct cmn_err *err)
{
    uint32_t *ids = NULL;
    size_t n = 0;
    int rc = list_volumes(d, &ids, &n, err);
    if (rc)
        return rc;
    d->next_vol_id = n ? ids[n - 1] + 1 : 1;
    if (n == 0) {
        free(ids);
        return 0;
    }
    struct sio sio;
    uint64_t t0 = cmn_mono_ns();
    rc = sio_open(&sio, d, err);
    if (rc) {
        free(ids);
        return rc;
    }
    struct win win = {.sio = &sio, .bs = d->bs, .align = st->max_bs};
    uint8_t *block = node_io_alloc(d->bs, st->max_bs);
    struct unsealed *pending = calloc(n, sizeof(*pending));
    size_t n_pending = 0;
    if (!block || !pending)
        rc = cmn_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++)
        rc = scan_volume(st, d, &sio, &win, ids[i], pending, &n_pending, err);
    if (!rc)
        rc = settle_all(st, d, &sio, pending, n_pending, block, err);
    for (size_t i = 0; i < n_pending; i++)
        free(pending[i].w.recs);
    free(pending);
    node_io_free(block);
    node_io_free(win.buf);
    LOG_INFO("store", "%s: scanned %zu volumes: %llu requests, %llu MiB, %.0f ms", d->path, n,
             (unsigned long long)sio.n_reqs, (unsigned long long)(sio.bytes >> 20),
             (double)(cmn_mono_ns() - t0) / 1e6);
    sio_close(&sio);
    free(ids);
    return rc;
}

static bool entry_on(const struct store_entry *e, const struct store_disk *d)
{
    return e->disk == d->index;
}

void store_scan_finish(struct node_store *st)
{
    /* Tombstones delete older records of their disk; one that deletes nothing is dead. */
    struct store_key *k = store_tree_upper(&st->tombs, NULL);
    while (k) {
        struct store_key *next = store_tree_next(k);
        struct store_tomb *t = store_container_of(k, struct store_tomb, k);
        struct store_disk *d = t->vol->disk;
        struct store_key *ek = store_tree_find(&st->index, &t->k.id);
        struct store_entry *e = ek ? store_container_of(ek, struct store_entry, k) : NULL;
        bool keep = false;
        if (e && entry_on(e, d)) {
            t->lo = e->lo_vol;
            t->hi = t->vol->id;
            if (e->seq < t->seq) {
                store_tree_remove(&st->index, &e->k);
                free(e);
                keep = true;
            } else {
                /* Deleted, then stored again: older copies may still be around. */
                keep = e->lo_vol < t->vol->id;
            }
        }
        if (!keep) {
            store_tree_remove(&st->tombs, &t->k);
            free(t);
        }
        k = next;
    }
    for (k = store_tree_upper(&st->index, NULL); k; k = store_tree_next(k)) {
        struct store_entry *e = store_container_of(k, struct store_entry, k);
        struct store_disk *d = &st->disks[e->disk];
        d->chunks++;
        st->chunks++;
        if (e->flags & ENT_CORRUPT) {
            char why[128];
            snprintf(why, sizeof(why), "start-up scan: record fails verification in volume %u "
                     "at %llu", e->vol->id, (unsigned long long)e->off);
            store_corrupt_add(st, &e->k.id, why);
        }
        uint64_t size = store_rec_size(d, e->length);
        e->vol->live += size;
        d->used += size;
        store_list_add_tail(&e->vol->entries, &e->vlink);
    }
    for (k = store_tree_upper(&st->tombs, NULL); k; k = store_tree_next(k)) {
        struct store_tomb *t = store_container_of(k, struct store_tomb, k);
        t->vol->live += t->vol->disk->bs;
        store_list_add_tail(&t->vol->tombs, &t->vlink);
    }
}
