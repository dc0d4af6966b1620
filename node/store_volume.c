/* Volumes: creation (preallocated, reading as zeros, before first use), appends at reserved block-aligned
 * offsets with many writes in flight, group-commit fdatasync, sealing, and unlinking.
 *
 * Durability rule (docs/disk-format.md): an op's `done` runs with 0 only after its write
 * completed AND an fdatasync that was submitted after that completion finished. Completed
 * writes wait in vol->sync_wait; a sync takes the whole list (sync_batch) when it starts, so
 * one fdatasync covers every write that completed before it, and writes completing during
 * it wait for the next one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "node/store_int.h"

#define PREP_QD 4

/* ---- volume objects ---- */

struct store_vol *store_vol_new(struct store_disk *d, uint32_t id, int fd, uint64_t size,
                                uint64_t salt)
{
    struct store_vol *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->disk = d;
    v->id = id;
    v->state = VOL_READY;
    v->fd = fd;
    v->size = size;
    v->salt = salt;
    v->append = d->bs;
    store_list_init(&v->entries);
    store_list_init(&v->tombs);
    store_list_init(&v->sync_wait);
    store_list_init(&v->sync_batch);
    store_list_init(&v->sync_link);
    store_list_init(&v->writing);
    return v;
}

void store_vol_free(struct store_vol *v)
{
    if (v->fd >= 0)
        close(v->fd);
    free(v);
}

void store_vol_ref(struct store_vol *v)
{
    v->refs++;
}

static void vol_destroy(struct store_vol *v);

void store_vol_unref(struct store_vol *v)
{
    if (--v->refs == 0 && v->state == VOL_DYING)
        vol_destroy(v);
}

static size_t vol_lower_bound(const struct store_disk *d, uint32_t id)
{
    size_t lo = 0, hi = d->n_vols;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->vols[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int store_disk_add_vol(struct store_disk *d, struct store_vol *v)
{
    if (d->n_vols == d->cap_vols) {
        size_t cap = d->cap_vols ? d->cap_vols * 2 : 16;
        struct store_vol **n = realloc(d->vols, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        d->vols = n;
        d->cap_vols = cap;
    }
    size_t i = vol_lower_bound(d, v->id);
    memmove(&d->vols[i + 1], &d->vols[i], (d->n_vols - i) * sizeof(*d->vols));
    d->vols[i] = v;
    d->n_vols++;
    return 0;
}

static void disk_remove_vol(struct store_disk *d, struct store_vol *v)
{
    size_t i = vol_lower_bound(d, v->id);
    if (i < d->n_vols && d->vols[i] == v) {
        memmove(&d->vols[i], &d->vols[i + 1], (d->n_vols - i - 1) * sizeof(*d->vols));
        d->n_vols--;
    }
}

struct store_vol *store_disk_find_vol(const struct store_disk *d, uint32_t id)
{
    size_t i = vol_lower_bound(d, id);
    return i < d->n_vols && d->vols[i]->id == id ? d->vols[i] : NULL;
}

bool store_disk_has_vol(const struct store_disk *d, uint32_t lo, uint32_t hi,
                        const struct store_vol *except)
{
    for (size_t i = vol_lower_bound(d, lo); i < d->n_vols && d->vols[i]->id <= hi; i++)
        if (d->vols[i] != except)
            return true;
    for (size_t i = 0; i < d->n_unlinking; i++)
        if (d->unlinking[i] >= lo && d->unlinking[i] <= hi)
            return true;
    return false;
}

void store_disk_io_note(struct store_disk *d)
{
    if (d->m_queue && d->io)
        cmn_gauge_set(d->m_queue, (double)node_io_in_flight(d->io));
}

/* Room for `extra` more volume files: the configured limit and the file system's free
 * space. Puts ask for two (the new one and the reserve kept for deletes and compaction);
 * tombstones and compaction copies may take the reserve. */
bool store_disk_space_for(struct store_disk *d, unsigned extra_volumes)
{
    struct node_store *st = d->st;
    uint64_t need = (uint64_t)extra_volumes * d->volume_size;
    if (st->capacity_limit && d->vol_bytes + need > st->capacity_limit)
        return false;
    struct statvfs sv;
    if (fstatvfs(d->dir_fd, &sv) != 0)
        return true; /* creating the file will tell */
    return (uint64_t)sv.f_bavail * sv.f_frsize >= need;
}

/* ---- unlinking ---- */

/* Volume ids unlinked but not yet known durable (the directory sync is in flight or failed):
 * the file may come back after a crash, so tombstones covering them must stay. */
static int unlinking_add(struct store_disk *d, uint32_t id)
{
    if (d->n_unlinking == d->cap_unlinking) {
        size_t cap = d->cap_unlinking ? d->cap_unlinking * 2 : 8;
        uint32_t *n = realloc(d->unlinking, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        d->unlinking = n;
        d->cap_unlinking = cap;
    }
    d->unlinking[d->n_unlinking++] = id;
    return 0;
}

static void unlinking_del(struct store_disk *d, uint32_t id)
{
    for (size_t i = 0; i < d->n_unlinking; i++) {
        if (d->unlinking[i] == id) {
            d->unlinking[i] = d->unlinking[--d->n_unlinking];
            return;
        }
    }
}

struct unlink_job {
    struct node_io_req req;
    struct store_disk *d;
    uint32_t id;
};

static void unlink_synced(struct node_io_req *req)
{
    struct unlink_job *job = req->data;
    struct store_disk *d = job->d;
    struct node_store *st = d->st;
    uint32_t id = job->id;
    bool durable = req->result >= 0;
    free(job);
    store_disk_io_note(d);
    if (durable) {
        unlinking_del(d, id);
        store_compact_vol_gone(d);
    } else {
        LOG_ERROR("store", "%s: volumes/: fsync after unlinking volume %u: %s", d->path, id,
                  strerror((int)-req->result));
    }
    st->inflight--;
    store_maybe_closed(st);
}

/* The last reference to an emptied volume is gone: unlink the file, forget the volume, and
 * once the directory is synced, drop the tombstones nobody needs any more. */
static void vol_destroy(struct store_vol *v)
{
    struct store_disk *d = v->disk;
    struct node_store *st = d->st;
    char name[32];
    uint32_t id = v->id;
    snprintf(name, sizeof(name), "%08u.vol", id);
    if (unlinkat(d->vol_dir_fd, name, 0) != 0 && errno != ENOENT)
        LOG_ERROR("store", "%s: unlink volumes/%s: %s", d->path, name, strerror(errno));
    disk_remove_vol(d, v);
    d->vol_bytes -= v->size;
    d->used -= d->bs;
    d->full = false;
    LOG_DEBUG("store", "%s: volume %u removed", d->path, id);
    store_vol_free(v);
    store_metrics_gauges(st);
    struct unlink_job *job = calloc(1, sizeof(*job));
    if (!job || unlinking_add(d, id) != 0) {
        free(job);
        return; /* not known durable: its tombstones stay until a later unlink */
    }
    st->inflight++;
    job->d = d;
    job->id = id;
    job->req.data = job;
    job->req.cb = unlink_synced;
    job->req.op = NODE_IO_FDATASYNC;
    job->req.fd = d->vol_dir_fd;
    if (node_io_submit(d->io, &job->req) != 0) {
        job->req.result = -EIO;
        unlink_synced(&job->req);
        return;
    }
    store_disk_io_note(d);
}

/* Compaction emptied v: it is unlinked as soon as no read or op holds it. */
void store_vol_make_dying(struct store_vol *v)
{
    v->state = VOL_DYING;
    v->compacting = false;
    if (v->refs == 0)
        vol_destroy(v);
}

/* ---- ops ---- */

void store_op_finish(struct store_op *op, int status)
{
    struct node_store *st = op->st;
    struct store_vol *v = op->vol;
    op->done(op, status);
    if (v)
        store_vol_unref(v);
    st->inflight--;
    store_maybe_closed(st);
}

static void deferred_run(uv_idle_t *h)
{
    struct node_store *st = h->data;
    struct store_list batch;
    store_list_init(&batch);
    store_list_splice(&batch, &st->deferred);
    uv_idle_stop(h);
    while (!store_list_empty(&batch)) {
        struct store_op *op = store_container_of(batch.next, struct store_op, link);
        store_list_del(&op->link);
        op->req.cb(&op->req);
    }
}

static void fail_cb(struct node_io_req *req)
{
    struct store_op *op = req->data;
    store_op_finish(op, (int)req->result);
}

void store_op_defer(struct store_op *op)
{
    struct node_store *st = op->st;
    op->req.data = op;
    store_list_add_tail(&st->deferred, &op->link);
    st->defer_idle.data = st;
    uv_idle_start(&st->defer_idle, deferred_run);
}

void store_op_fail_later(struct store_op *op, int status)
{
    op->req.cb = fail_cb;
    op->req.result = status;
    store_op_defer(op);
}

/* ---- group commit ---- */

static void vol_break(struct store_vol *v)
{
    if (!v->broken)
        LOG_ERROR("store", "%s: volume %u: I/O failed, no more appends to it", v->disk->path,
                  v->id);
    v->broken = true;
}

static void on_sync(struct node_io_req *req)
{
    struct store_vol *v = req->data; /* holds the reference taken by vol_start_sync */
    struct store_disk *d = v->disk;
    struct node_store *st = d->st;
    store_disk_io_note(d);
    v->sync_busy = false;
    int status = 0;
    if (req->result < 0) {
        LOG_ERROR("store", "%s: volume %u: fdatasync: %s", d->path, v->id,
                  strerror((int)-req->result));
        vol_break(v);
        status = -EIO;
    }
    /* A broken volume's watermark stays put: a failed write below the mark is not durable
     * data, and must never be taken for bit rot by a later scan. */
    if (!status && !v->broken && v->sync_mark > v->synced)
        v->synced = v->sync_mark;
    struct store_list batch;
    store_list_init(&batch);
    store_list_splice(&batch, &v->sync_batch);
    while (!store_list_empty(&batch)) {
        struct store_op *op = store_container_of(batch.next, struct store_op, link);
        store_list_del(&op->link);
        store_op_finish(op, status);
    }
    store_vol_kick_sync(v);
    st->inflight--;
    store_vol_unref(v);
    store_maybe_closed(st);
}

static void vol_start_sync(struct store_vol *v)
{
    struct store_disk *d = v->disk;
    if (v->sync_busy || store_list_empty(&v->sync_wait))
        return;
    store_list_splice(&v->sync_batch, &v->sync_wait);
    /* Writes complete out of order: only below the lowest one still in flight is every
     * write complete, and so covered by this sync. */
    v->sync_mark = store_list_empty(&v->writing)
                       ? v->append
                       : store_container_of(v->writing.next, struct store_op, wlink)->off;
    v->sync_busy = true;
    store_vol_ref(v);
    d->st->inflight++;
    memset(&v->sync_req, 0, sizeof(v->sync_req));
    v->sync_req.data = v;
    v->sync_req.cb = on_sync;
    v->sync_req.op = NODE_IO_FDATASYNC;
    v->sync_req.fd = v->fd;
    if (node_io_submit(d->io, &v->sync_req) != 0) {
        v->sync_req.result = -EIO;
        on_sync(&v->sync_req);
        return;
    }
    store_disk_io_note(d);
}

static void on_sync_timer(uv_timer_t *t)
{
    struct store_disk *d = t->data;
    d->sync_timer_armed = false;
    while (!store_list_empty(&d->sync_delayed)) {
        struct store_vol *v = store_container_of(d->sync_delayed.next, struct store_vol,
                                                 sync_link);
        store_list_del(&v->sync_link);
        v->sync_queued = false;
        vol_start_sync(v); /* a busy one re-queues itself when its sync ends */
        store_vol_unref(v);
    }
}

void store_vol_kick_sync(struct store_vol *v)
{
    struct store_disk *d = v->disk;
    struct node_store *st = d->st;
    if (v->sync_busy || store_list_empty(&v->sync_wait))
        return;
    if (st->sync_delay_us && !st->closing) {
        /* Wait a little for more writes to share the fdatasync. */
        if (!v->sync_queued) {
            v->sync_queued = true;
            store_vol_ref(v);
            store_list_add_tail(&d->sync_delayed, &v->sync_link);
        }
        if (!d->sync_timer_armed) {
            d->sync_timer_armed = true;
            uv_timer_start(&d->sync_timer, on_sync_timer, (st->sync_delay_us + 999) / 1000, 0);
        }
        return;
    }
    vol_start_sync(v);
}

/* ---- appends ---- */

static void write_seal(struct store_vol *v);

static void vol_maybe_seal(struct store_vol *v)
{
    if (v->state != VOL_SEALING || v->writes != 0 || v->seal_started)
        return;
    v->seal_started = true;
    if (v->broken) {
        v->state = VOL_RETIRED;
        store_compact_kick(v->disk);
        return;
    }
    write_seal(v);
}

static void on_write(struct node_io_req *req)
{
    struct store_op *op = req->data;
    struct store_vol *v = op->vol;
    store_disk_io_note(v->disk);
    v->writes--;
    store_list_del(&op->wlink);
    if (req->result != (ssize_t)op->size) {
        int status = (req->result == -ENOSPC || req->result == -EDQUOT) ? LODE_ENOSPACE : -EIO;
        LOG_ERROR("store", "%s: volume %u: write of %llu bytes at %llu: %s", v->disk->path,
                  v->id, (unsigned long long)op->size, (unsigned long long)op->off,
                  req->result < 0 ? strerror((int)-req->result) : "short write");
        vol_break(v);
        store_vol_ref(v);
        store_op_finish(op, status);
        vol_maybe_seal(v);
        store_vol_unref(v);
        return;
    }
    store_list_add_tail(&v->sync_wait, &op->link);
    store_vol_kick_sync(v);
    vol_maybe_seal(v);
}

/* Reserves the next range of v for op, stamps the header and submits the write. */
static void submit_write(struct store_vol *v, struct store_op *op)
{
    struct store_disk *d = v->disk;
    struct node_store *st = d->st;
    if (op->still_wanted && !op->still_wanted(op)) {
        store_op_fail_later(op, -ECANCELED);
        return;
    }
    op->vol = v;
    store_vol_ref(v);
    op->off = v->append;
    v->append += op->size;
    if (op->kind != OP_SEAL)
        v->written += op->size;
    v->writes++;
    store_list_add_tail(&v->writing, &op->wlink); /* offsets only grow: sorted */
    if (!op->keep_seq)
        op->rh.seq = st->next_seq++;
    op->rh.synced_upto = (uint32_t)(v->synced / d->bs);
    node_rh_encode(&op->rh, v->salt, op->buf);
    memset(&op->req, 0, sizeof(op->req));
    op->req.data = op;
    op->req.cb = on_write;
    op->req.op = NODE_IO_WRITE;
    op->req.fd = v->fd;
    op->req.buf = op->buf;
    op->req.len = op->size;
    op->req.off = op->off;
    if (node_io_submit(d->io, &op->req) != 0) {
        op->req.result = -EIO;
        store_op_defer(op);
        return;
    }
    store_disk_io_note(d);
}

static void seal_done(struct store_op *op, int status)
{
    struct store_vol *v = op->vol;
    if (status == 0 && !v->broken) {
        v->state = VOL_SEALED;
        LOG_DEBUG("store", "%s: volume %u sealed", v->disk->path, v->id);
    } else {
        v->state = VOL_RETIRED;
    }
    node_io_free(op->buf);
    free(op);
    store_compact_kick(v->disk);
}

static void write_seal(struct store_vol *v)
{
    struct store_disk *d = v->disk;
    struct node_store *st = d->st;
    struct store_op *op = calloc(1, sizeof(*op));
    uint8_t *buf = node_io_alloc(d->bs, st->max_bs);
    if (!op || !buf) {
        free(op);
        node_io_free(buf);
        v->state = VOL_RETIRED;
        return;
    }
    memset(buf, 0, d->bs);
    op->st = st;
    op->disk = d;
    op->kind = OP_SEAL;
    op->buf = buf;
    op->size = d->bs;
    op->rh.type = NODE_REC_SEAL;
    op->rh.created_ms = cmn_now_ms();
    op->done = seal_done;
    st->inflight++;
    /* Room is guaranteed: chunk records stop STORE_TAIL before the end and tombstones one
     * block before it. */
    submit_write(v, op);
}

void store_vol_seal_now(struct store_vol *v)
{
    if (v->state != VOL_ACTIVE || v->broken || v->written == 0)
        return;
    v->state = VOL_SEALING;
    vol_maybe_seal(v);
}

static bool is_small(enum store_op_kind k)
{
    return k == OP_TOMB || k == OP_COPY_TOMB;
}

static bool vol_fits(const struct store_vol *v, const struct store_op *op)
{
    if (!v || v->state != VOL_ACTIVE || v->broken)
        return false;
    uint64_t limit = is_small(op->kind) ? v->size - v->disk->bs : v->size - STORE_TAIL;
    return v->append <= limit && op->size <= limit - v->append;
}

void store_append(struct store_disk *d, struct store_op *op)
{
    if (d->st->closing) {
        store_op_fail_later(op, LODE_ESHUTDOWN);
        return;
    }
    /* Tombstones may pass puts that wait for a new volume: the tail is theirs. */
    if (vol_fits(d->active, op) && (store_list_empty(&d->waiters) || is_small(op->kind))) {
        submit_write(d->active, op);
        return;
    }
    store_list_add_tail(&d->waiters, &op->link);
    store_disk_roll(d);
}

/* ---- new volumes ---- */

struct store_prep {
    struct store_disk *d;
    uint32_t id;
    int fd;
    uint64_t size;
    uint64_t salt;
    uint8_t *hdr;
    uint64_t next_off;
    unsigned inflight;
    int status;
    bool zero_fill;              /* fallocate unsupported here: zeros are written instead */
    bool renamed;
    struct store_vol *vol;       /* once renamed */
    struct node_io_req w[PREP_QD];
    bool busy[PREP_QD];
    struct node_io_req sync;
    char tmp[32], name[32];
};

static void roll_failed(struct store_disk *d, int status);
static void prep_pump(struct store_prep *p);

static void prep_end(struct store_prep *p, int status)
{
    struct store_disk *d = p->d;
    struct node_store *st = d->st;
    struct store_vol *v = p->vol;
    d->prep = NULL;
    node_io_free(p->hdr);
    if (status == 0) {
        d->ready = v;
        LOG_DEBUG("store", "%s: volume %u ready", d->path, p->id);
        free(p);
        if (!store_list_empty(&d->waiters))
            store_disk_roll(d);
        st->inflight--;
        store_maybe_closed(st);
        return;
    }
    unlinkat(d->vol_dir_fd, p->renamed ? p->name : p->tmp, 0);
    if (v) {
        disk_remove_vol(d, v);
        d->used -= d->bs;
        store_vol_free(v); /* closes the fd */
        store_metrics_gauges(st);
    } else {
        close(p->fd);
    }
    d->vol_bytes -= p->size;
    if (status != LODE_ESHUTDOWN)
        LOG_WARN("store", "%s: creating volume %u failed: %s", d->path, p->id,
                 lode_strerror(status));
    free(p);
    if (!store_list_empty(&d->waiters))
        roll_failed(d, status);
    st->inflight--;
    store_maybe_closed(st);
}

static int io_status(ssize_t result, size_t want)
{
    if (result == -ENOSPC || result == -EDQUOT)
        return LODE_ENOSPACE;
    if (result < 0)
        return (int)result;
    return (size_t)result == want ? 0 : -EIO;
}

static void prep_dir_synced(struct node_io_req *req)
{
    struct store_prep *p = req->data;
    store_disk_io_note(p->d);
    prep_end(p, req->result < 0 ? (int)req->result : 0);
}

static void prep_file_synced(struct node_io_req *req)
{
    struct store_prep *p = req->data;
    struct store_disk *d = p->d;
    store_disk_io_note(d);
    if (req->result < 0) {
        prep_end(p, (int)req->result);
        return;
    }
    /* Only a complete (allocated or zero-filled), synced file gets the volume name. From then on it is a
     * volume file (counted in `used`), ready once the directory is synced. */
    struct store_vol *v = store_vol_new(d, p->id, p->fd, p->size, p->salt);
    if (!v || store_disk_add_vol(d, v) != 0) {
        free(v);
        prep_end(p, -ENOMEM);
        return;
    }
    if (renameat(d->vol_dir_fd, p->tmp, d->vol_dir_fd, p->name) != 0) {
        int e = -errno;
        disk_remove_vol(d, v);
        free(v);
        prep_end(p, e);
        return;
    }
    p->vol = v;
    p->renamed = true;
    d->used += d->bs;
    store_metrics_gauges(d->st);
    memset(&p->sync, 0, sizeof(p->sync));
    p->sync.data = p;
    p->sync.cb = prep_dir_synced;
    p->sync.op = NODE_IO_FDATASYNC;
    p->sync.fd = d->vol_dir_fd;
    if (node_io_submit(d->io, &p->sync) != 0)
        prep_end(p, -EIO);
}

static void prep_written(struct node_io_req *req)
{
    struct store_prep *p = req->data;
    size_t slot = (size_t)(req - p->w);
    store_disk_io_note(p->d);
    p->busy[slot] = false;
    p->inflight--;
    int rc = io_status(req->result, req->len);
    if (rc && !p->status)
        p->status = rc;
    prep_pump(p);
}

static void prep_pump(struct store_prep *p)
{
    struct store_disk *d = p->d;
    struct node_store *st = d->st;
    if (st->closing && !p->status)
        p->status = LODE_ESHUTDOWN;
    /* The header block, and the zeros after it only where fallocate was refused. */
    uint64_t end = p->zero_fill ? p->size : d->bs;
    while (!p->status && p->inflight < PREP_QD && p->next_off < end) {
        size_t slot = 0;
        while (p->busy[slot])
            slot++;
        uint64_t len = p->next_off == 0 ? d->bs : end - p->next_off;
        if (len > STORE_ZERO_CHUNK)
            len = STORE_ZERO_CHUNK;
        struct node_io_req *r = &p->w[slot];
        memset(r, 0, sizeof(*r));
        r->data = p;
        r->cb = prep_written;
        r->op = NODE_IO_WRITE;
        r->fd = p->fd;
        r->buf = p->next_off == 0 ? p->hdr : st->zero_buf;
        r->len = len;
        r->off = p->next_off;
        if (node_io_submit(d->io, r) != 0) {
            p->status = -EIO;
            break;
        }
        p->busy[slot] = true;
        p->inflight++;
        p->next_off += len;
    }
    store_disk_io_note(d);
    if (p->inflight > 0)
        return;
    if (p->status) {
        prep_end(p, p->status);
        return;
    }
    memset(&p->sync, 0, sizeof(p->sync));
    p->sync.data = p;
    p->sync.cb = prep_file_synced;
    p->sync.op = NODE_IO_FDATASYNC;
    p->sync.fd = p->fd;
    if (node_io_submit(d->io, &p->sync) != 0)
        prep_end(p, -EIO);
}

/* Creates the next volume in the background: a temp file, fallocated, written with its
 * header (and zeros to the end where fallocate is unsupported), fdatasynced, renamed, and
 * the directory synced. */
static void prep_start(struct store_disk *d)
{
    struct node_store *st = d->st;
    struct store_prep *p = calloc(1, sizeof(*p));
    if (!p) {
        if (!store_list_empty(&d->waiters))
            roll_failed(d, -ENOMEM);
        return;
    }
    p->d = d;
    p->id = d->next_vol_id++;
    p->size = d->volume_size;
    p->fd = -1;
    snprintf(p->tmp, sizeof(p->tmp), "%08u.tmp", p->id);
    snprintf(p->name, sizeof(p->name), "%08u.vol", p->id);
    int rc = cmn_random_bytes(&p->salt, sizeof(p->salt));
    int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | (d->o_direct ? O_DIRECT : 0);
    if (!rc) {
        p->fd = openat(d->vol_dir_fd, p->tmp, flags, 0644);
        if (p->fd < 0 && errno == EEXIST) {
            unlinkat(d->vol_dir_fd, p->tmp, 0);
            p->fd = openat(d->vol_dir_fd, p->tmp, flags, 0644);
        }
        if (p->fd < 0)
            rc = errno == ENOSPC || errno == EDQUOT ? LODE_ENOSPACE : -errno;
    }
    /* Allocating up front fails fast (ENOSPC) before any byte is written and keeps the file
     * contiguous. Unwritten extents read as zeros, which is all the scan needs, so no zeros
     * are written: that would double the disk writes of every put. The first fdatasync after
     * an append also commits the conversion of its extents; with group commit that journal
     * commit is shared by a whole batch of puts. Only where fallocate is unsupported are
     * zeros written (prep_pump). */
    if (!rc && fallocate(p->fd, 0, 0, (off_t)p->size) != 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS)
            p->zero_fill = true;
        else
            rc = errno == ENOSPC || errno == EDQUOT ? LODE_ENOSPACE : -errno;
    }
    if (!rc) {
        p->hdr = node_io_alloc(d->bs, st->max_bs);
        if (!p->hdr)
            rc = -ENOMEM;
    }
    if (rc) {
        if (p->fd >= 0) {
            close(p->fd);
            unlinkat(d->vol_dir_fd, p->tmp, 0);
        }
        LOG_WARN("store", "%s: cannot create volume %u: %s", d->path, p->id, lode_strerror(rc));
        free(p);
        if (!store_list_empty(&d->waiters))
            roll_failed(d, rc);
        return;
    }
    memset(p->hdr, 0, d->bs);
    struct node_volume_header vh;
    memset(&vh, 0, sizeof(vh));
    vh.volume_id = p->id;
    memcpy(vh.disk_uuid, d->disk_uuid, 16);
    vh.salt = p->salt;
    vh.created_ms = (uint64_t)cmn_now_ms();
    vh.size = p->size;
    node_vh_encode(&vh, p->hdr);
    d->prep = p;
    d->vol_bytes += p->size;
    st->inflight++;
    prep_pump(p);
}

/* ---- rolling to the next volume ---- */

static void prep_ahead(struct store_disk *d)
{
    if (!d->ready && !d->prep && !d->st->closing && store_disk_space_for(d, 2))
        prep_start(d);
}

static void activate(struct store_disk *d)
{
    struct store_vol *old = d->active, *v = d->ready;
    d->ready = NULL;
    v->state = VOL_ACTIVE;
    d->active = v;
    if (old) {
        old->state = VOL_SEALING;
        vol_maybe_seal(old);
    }
    while (!store_list_empty(&d->waiters)) {
        struct store_op *op = store_container_of(d->waiters.next, struct store_op, link);
        if (!vol_fits(d->active, op)) {
            store_disk_roll(d);
            return;
        }
        store_list_del(&op->link);
        submit_write(d->active, op);
    }
    prep_ahead(d);
}

static void roll_failed(struct store_disk *d, int status)
{
    struct store_list waiters;
    store_list_init(&waiters);
    store_list_splice(&waiters, &d->waiters);
    if (status == LODE_ENOSPACE) {
        if (!d->full)
            LOG_WARN("store", "%s: full: no room for another volume", d->path);
        d->full = true;
        d->full_checked_ms = cmn_mono_ms();
    }
    while (!store_list_empty(&waiters)) {
        struct store_op *op = store_container_of(waiters.next, struct store_op, link);
        store_list_del(&op->link);
        if (op->kind == OP_PUT && status == LODE_ENOSPACE)
            store_put_redispatch(op);
        else
            store_op_fail_later(op, status);
    }
}

void store_disk_roll(struct store_disk *d)
{
    if (d->st->closing || d->prep)
        return; /* the volume on its way calls back */
    if (d->ready) {
        activate(d);
        return;
    }
    bool reserve = false;
    for (struct store_list *l = d->waiters.next; l != &d->waiters; l = l->next)
        if (store_container_of(l, struct store_op, link)->kind != OP_PUT)
            reserve = true;
    if (!store_disk_space_for(d, reserve ? 1 : 2)) {
        roll_failed(d, LODE_ENOSPACE);
        return;
    }
    prep_start(d);
}

/* ---- start and shutdown ---- */

void store_disk_start(struct store_disk *d)
{
    uv_timer_init(d->st->loop, &d->sync_timer);
    d->sync_timer.data = d;
    prep_ahead(d); /* so that the first put does not wait for a volume */
}

void store_disk_shutdown(struct store_disk *d)
{
    struct store_list waiters;
    store_list_init(&waiters);
    store_list_splice(&waiters, &d->waiters);
    while (!store_list_empty(&waiters)) {
        struct store_op *op = store_container_of(waiters.next, struct store_op, link);
        store_list_del(&op->link);
        store_op_fail_later(op, LODE_ESHUTDOWN);
    }
    if (d->sync_timer_armed) {
        uv_timer_stop(&d->sync_timer);
        on_sync_timer(&d->sync_timer);
    }
}
