/* Compaction: reclaims the dead space of sealed (and retired) volumes by copying their live
 * records into the active volume of the same disk, switching the index entries, and
 * unlinking the emptied file once no read holds it (docs/disk-format.md, "Deletes and
 * reclaiming space").
 *
 * One volume at a time per disk, a few copies in flight, so reads and puts keep most of the
 * disk. A copy is verified on the way (a corrupt chunk stays corrupt, never silently
 * "repaired" into a valid-looking record) and gets a new seq; it is never appended once a
 * delete of the chunk has started (still_wanted), so a copy can never outrank a tombstone.
 *
 * Tombstones: the one in volume T for chunk X must stay on disk while a volume that may hold
 * an older record of X exists (ids tomb->lo .. tomb->hi). Compacting T carries such
 * tombstones forward (same seq); the others are dropped. When a file is unlinked (durably),
 * tombstones whose range is now empty die (store_compact_vol_gone).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "node/store_int.h"

#define COMPACT_PERIOD_MS 1000
#define COMPACT_MAX_OPS 4
#define COMPACT_MAX_BYTES (16u << 20)
#define COMPACT_BACKOFF_MS 30000

struct store_compact {
    struct store_disk *d;
    struct store_vol *v;
    unsigned inflight;
    uint64_t bytes_inflight;
    uint64_t moved;
    int status;
    bool explicit_pass;
    bool stepping;
};

struct store_compact_req {
    struct store_list link;
    node_store_cb cb;
    void *data;
};

static void step(struct store_compact *cp);
static void on_timer(uv_timer_t *t);

static struct store_entry *find_entry(struct node_store *st, const uint8_t id[16])
{
    struct cmn_id k;
    memcpy(k.b, id, 16);
    struct store_key *n = store_tree_find(&st->index, &k);
    return n ? store_container_of(n, struct store_entry, k) : NULL;
}

static struct store_tomb *find_tomb(struct node_store *st, const uint8_t id[16])
{
    struct cmn_id k;
    memcpy(k.b, id, 16);
    struct store_key *n = store_tree_find(&st->tombs, &k);
    return n ? store_container_of(n, struct store_tomb, k) : NULL;
}

static bool entry_unmoved(const struct store_op *op, const struct store_entry *e)
{
    return e && e->vol == op->src && e->off == op->src_off && e->seq == op->src_seq;
}

/* ---- chunk copies ---- */

static bool copy_still_wanted(struct store_op *op)
{
    struct store_entry *e = find_entry(op->st, op->rh.chunk_id);
    return entry_unmoved(op, e) && !(e->flags & ENT_DELETING);
}

/* Ends a copy op that holds a reference on its source volume. */
static void copy_release(struct store_op *op, int status)
{
    struct store_compact *cp = op->cp;
    struct store_entry *e = find_entry(op->st, op->rh.chunk_id);
    if (e)
        e->flags &= (uint16_t)~ENT_COPYING;
    if (status && status != -ECANCELED && !cp->status)
        cp->status = status;
    cp->inflight--;
    cp->bytes_inflight -= op->size;
    store_vol_unref(op->src);
    node_io_buf_put(op->buf, op->buf_cap, op->st->max_bs);
    free(op);
}

static void copy_done(struct store_op *op, int status)
{
    struct store_compact *cp = op->cp;
    struct store_entry *e = find_entry(op->st, op->rh.chunk_id);
    if (status == 0 && entry_unmoved(op, e)) {
        struct store_vol *from = op->src, *to = op->vol;
        store_list_del(&e->vlink);
        from->live -= op->size;
        e->vol = to;
        e->off = op->off;
        e->seq = op->rh.seq;
        store_list_add_tail(&to->entries, &e->vlink);
        to->live += op->size;
        cp->moved += op->size;
    }
    copy_release(op, status);
    step(cp);
}

static void copy_read(struct node_io_req *req)
{
    struct store_op *op = req->data;
    struct store_compact *cp = op->cp;
    struct node_store *st = op->st;
    struct store_vol *v = op->src;
    store_disk_io_note(cp->d);
    struct store_entry *e = find_entry(st, op->rh.chunk_id);
    if (req->result != (ssize_t)op->size || !entry_unmoved(op, e) ||
        (e->flags & ENT_DELETING)) {
        int status = req->result != (ssize_t)op->size ? -EIO : -ECANCELED;
        if (status == -EIO)
            LOG_ERROR("store", "%s: compaction: reading volume %u at %llu failed",
                      cp->d->path, v->id, (unsigned long long)op->src_off);
        st->inflight--;
        copy_release(op, status);
        step(cp);
        store_maybe_closed(st);
        return;
    }
    struct node_record_header rh;
    bool degraded;
    enum node_rh_status hs = node_rh_decode_head(op->buf, v->salt, &rh, &degraded);
    bool hdr_ok = hs == NODE_RH_OK && !degraded && rh.type == NODE_REC_CHUNK &&
                  !memcmp(rh.chunk_id, op->rh.chunk_id, 16) && rh.length == e->length &&
                  rh.hash == e->hash;
    const uint8_t *data = op->buf + node_record_data_offset(node_record_n_sums(e->length));
    bool data_ok = node_data_hash(data, e->length) == e->hash;
    char hex[CMN_ID_HEX_SIZE];
    cmn_id_to_hex(&e->k.id, hex);
    if (!hdr_ok)
        LOG_WARN("store", "%s: volume %u: chunk %s: record header damaged (%s); copied with "
                 "the header rebuilt from the index", cp->d->path, v->id, hex,
                 degraded ? "one copy damaged" : node_rh_status_name(hs));
    if (!data_ok && !(e->flags & ENT_CORRUPT)) {
        /* Copied as it is: reads keep failing with LODE_ECORRUPT until it is repaired. */
        e->flags |= ENT_CORRUPT;
        store_corrupt_add(st, &e->k.id, "compaction");
    }
    /* The header is written fresh by the append (new seq, the new volume's salt); block
     * checksums and data are moved as they are. */
    op->done = copy_done;
    op->still_wanted = copy_still_wanted;
    store_append(cp->d, op);
}

static int start_copy(struct store_compact *cp, struct store_entry *e)
{
    struct store_disk *d = cp->d;
    struct node_store *st = d->st;
    uint64_t size = store_rec_size(d, e->length);
    struct store_op *op = calloc(1, sizeof(*op));
    size_t cap = 0;
    uint8_t *buf = node_io_buf_get(size, st->max_bs, &cap); /* a chunk record: recycled */
    if (!op || !buf) {
        free(op);
        node_io_buf_put(buf, cap, st->max_bs);
        return -ENOMEM;
    }
    op->st = st;
    op->disk = d;
    op->kind = OP_COPY;
    op->buf = buf;
    op->buf_cap = cap;
    op->size = size;
    op->cp = cp;
    op->src = cp->v;
    op->src_off = e->off;
    op->src_seq = e->seq;
    op->rh.type = NODE_REC_CHUNK;
    memcpy(op->rh.chunk_id, e->k.id.b, 16);
    op->rh.length = e->length;
    op->rh.hash = e->hash;
    op->rh.created_ms = (uint64_t)e->created_ms;
    e->flags |= ENT_COPYING;
    store_vol_ref(cp->v);
    st->inflight++;
    cp->inflight++;
    cp->bytes_inflight += size;
    op->req.data = op;
    op->req.cb = copy_read;
    op->req.op = NODE_IO_READ;
    op->req.fd = cp->v->fd;
    op->req.buf = buf;
    op->req.len = size;
    op->req.off = e->off;
    if (node_io_submit(d->io, &op->req) != 0) {
        op->req.result = -EIO;
        store_op_defer(op);
    }
    store_disk_io_note(d);
    return 0;
}

/* ---- tombstones carried forward ---- */

static bool tomb_still_wanted(struct store_op *op)
{
    struct store_tomb *t = find_tomb(op->st, op->rh.chunk_id);
    return t && t->vol == op->src && t->off == op->src_off && t->seq == op->src_seq;
}

static void tomb_copy_done(struct store_op *op, int status)
{
    struct store_compact *cp = op->cp;
    struct store_tomb *t = find_tomb(op->st, op->rh.chunk_id);
    bool same = t && t->vol == op->src && t->off == op->src_off && t->seq == op->src_seq;
    if (status == 0 && same) {
        uint32_t bs = cp->d->bs;
        store_list_del(&t->vlink);
        t->vol->live -= bs;
        t->vol = op->vol;
        t->off = op->off;
        store_list_add_tail(&op->vol->tombs, &t->vlink);
        op->vol->live += bs;
    }
    if (same)
        t->copying = false;
    if (status && status != -ECANCELED && !cp->status)
        cp->status = status;
    cp->inflight--;
    node_io_free(op->buf);
    free(op);
    step(cp);
}

static int start_tomb_copy(struct store_compact *cp, struct store_tomb *t)
{
    struct store_disk *d = cp->d;
    struct node_store *st = d->st;
    struct store_op *op = calloc(1, sizeof(*op));
    uint8_t *buf = node_io_alloc(d->bs, st->max_bs);
    if (!op || !buf) {
        free(op);
        node_io_free(buf);
        return -ENOMEM;
    }
    memset(buf, 0, d->bs);
    op->st = st;
    op->disk = d;
    op->kind = OP_COPY_TOMB;
    op->buf = buf;
    op->size = d->bs;
    op->cp = cp;
    op->src = cp->v;
    op->src_off = t->off;
    op->src_seq = t->seq;
    op->rh.type = NODE_REC_TOMBSTONE;
    memcpy(op->rh.chunk_id, t->k.id.b, 16);
    op->rh.seq = t->seq;
    op->rh.created_ms = (uint64_t)t->created_ms;
    op->keep_seq = true;
    op->still_wanted = tomb_still_wanted;
    op->done = tomb_copy_done;
    t->copying = true;
    st->inflight++;
    cp->inflight++;
    store_append(d, op);
    return 0;
}

static void drop_tomb(struct node_store *st, struct store_tomb *t)
{
    store_list_del(&t->vlink);
    t->vol->live -= t->vol->disk->bs;
    store_tree_remove(&st->tombs, &t->k);
    free(t);
}

/* ---- passes ---- */

static void check_reqs(struct node_store *st)
{
    for (size_t i = 0; i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        if (d->compact_upto || (d->cp && d->cp->explicit_pass))
            return;
    }
    while (!store_list_empty(&st->compact_reqs)) {
        struct store_compact_req *r =
            store_container_of(st->compact_reqs.next, struct store_compact_req, link);
        store_list_del(&r->link);
        r->cb(r->data, st->compact_status);
        free(r);
        st->inflight--;
    }
    st->compact_status = 0;
    store_maybe_closed(st);
}

static void task_end(struct store_compact *cp)
{
    struct store_disk *d = cp->d;
    struct node_store *st = d->st;
    d->cp = NULL;
    if (cp->v)
        cp->v->compacting = false;
    if (cp->status) {
        if (cp->status != LODE_ESHUTDOWN && cp->v)
            LOG_WARN("store", "%s: compaction of volume %u stopped: %s", d->path, cp->v->id,
                     lode_strerror(cp->status));
        if (cp->explicit_pass && !st->compact_status)
            st->compact_status = cp->status;
        d->compact_upto = 0;
        d->compact_retry_ms = cmn_mono_ms() + COMPACT_BACKOFF_MS;
    }
    int status = cp->status;
    free(cp);
    st->inflight--;
    if (st->closing) {
        /* Requests finish on the next loop turn, never inside node_store_close. */
        uv_timer_start(&st->compact_timer, on_timer, 0, 0);
        return;
    }
    if (!status)
        store_compact_kick(d);
    check_reqs(st);
}

static void step(struct store_compact *cp)
{
    struct store_disk *d = cp->d;
    struct node_store *st = d->st;
    struct store_vol *v = cp->v;
    if (cp->stepping)
        return;
    cp->stepping = true;
    if (st->closing && !cp->status)
        cp->status = LODE_ESHUTDOWN;
    for (struct store_list *l = v->entries.next; !cp->status && l != &v->entries;) {
        struct store_entry *e = store_container_of(l, struct store_entry, vlink);
        l = l->next;
        if (cp->inflight >= COMPACT_MAX_OPS || cp->bytes_inflight >= COMPACT_MAX_BYTES)
            break;
        if (e->flags & (ENT_COPYING | ENT_DELETING))
            continue;
        int rc = start_copy(cp, e);
        if (rc)
            cp->status = rc;
    }
    cp->stepping = false;
    if (cp->inflight)
        return;
    if (!cp->status) {
        /* Entries left are being deleted: their completion kicks us again. */
        if (!store_list_empty(&v->entries))
            return;
        for (struct store_list *l = v->tombs.next; l != &v->tombs;) {
            struct store_tomb *t = store_container_of(l, struct store_tomb, vlink);
            l = l->next;
            if (t->copying)
                continue;
            if (!store_disk_has_vol(d, t->lo, t->hi, v)) {
                drop_tomb(st, t);
                continue;
            }
            int rc = start_tomb_copy(cp, t);
            if (rc) {
                cp->status = rc;
                break;
            }
        }
        if (cp->inflight)
            return;
    }
    if (!cp->status) {
        /* Puts that were in flight when the volume was retired may still land in it. */
        if (!store_list_empty(&v->tombs) || !store_list_empty(&v->entries) || v->writes ||
            v->sync_busy || !store_list_empty(&v->sync_wait))
            return;
        LOG_INFO("store", "%s: volume %u compacted: %llu live bytes moved, %llu reclaimed",
                 d->path, v->id, (unsigned long long)cp->moved,
                 (unsigned long long)(v->size - cp->moved));
        if (st->metrics_on)
            cmn_counter_add(st->m.compacted, v->size);
        cp->v = NULL;
        store_vol_make_dying(v); /* may free it */
    }
    task_end(cp);
}

static bool candidate(const struct store_disk *d, const struct store_vol *v, bool explicit_pass)
{
    if (v->compacting || (v->state != VOL_SEALED && v->state != VOL_RETIRED))
        return false;
    if (v->state == VOL_RETIRED)
        return true; /* holes or a failed sync: re-verified by every scan until it is gone */
    if (v->live == 0)
        return true; /* nothing to move: only the file to remove */
    if (!explicit_pass && v->live * 4 < v->size)
        return true; /* sealed early (a clean stop) or mostly deleted: merge what is left */
    if (explicit_pass)
        return v->id <= d->compact_upto && store_vol_dead(v) > 0;
    return store_vol_dead(v) * 2 > v->written;
}

void store_compact_kick(struct store_disk *d)
{
    struct node_store *st = d->st;
    if (d->cp) {
        step(d->cp);
        return;
    }
    if (st->closing || !d->io)
        return;
    struct store_vol *best = NULL;
    bool explicit_pass = d->compact_upto != 0;
    if (!explicit_pass && cmn_mono_ms() < d->compact_retry_ms)
        return;
    for (size_t i = 0; i < d->n_vols; i++) {
        struct store_vol *v = d->vols[i];
        if (candidate(d, v, explicit_pass) &&
            (!best || store_vol_dead(v) > store_vol_dead(best)))
            best = v;
    }
    if (!best && explicit_pass) {
        d->compact_upto = 0;
        check_reqs(st);
        store_compact_kick(d);
        return;
    }
    if (!best)
        return;
    struct store_compact *cp = calloc(1, sizeof(*cp));
    if (!cp)
        return;
    cp->d = d;
    cp->v = best;
    cp->explicit_pass = explicit_pass;
    best->compacting = true;
    d->cp = cp;
    st->inflight++;
    LOG_DEBUG("store", "%s: compacting volume %u (%llu of %llu bytes dead)", d->path, best->id,
              (unsigned long long)store_vol_dead(best), (unsigned long long)best->written);
    step(cp);
}

void store_compact_vol_gone(struct store_disk *d)
{
    struct node_store *st = d->st;
    for (struct store_key *k = store_tree_upper(&st->tombs, NULL); k;) {
        struct store_tomb *t = store_container_of(k, struct store_tomb, k);
        k = store_tree_next(k);
        if (t->vol->disk == d && !t->copying && !store_disk_has_vol(d, t->lo, t->hi, NULL))
            drop_tomb(st, t);
    }
    store_compact_kick(d);
}

static void on_timer(uv_timer_t *t)
{
    struct node_store *st = t->data;
    for (size_t i = 0; i < st->n_disks; i++)
        store_compact_kick(&st->disks[i]);
    check_reqs(st);
}

void store_compact_start(struct node_store *st)
{
    uv_timer_init(st->loop, &st->compact_timer);
    st->compact_timer.data = st;
    uv_timer_start(&st->compact_timer, on_timer, COMPACT_PERIOD_MS, COMPACT_PERIOD_MS);
}

void store_compact_shutdown(struct node_store *st)
{
    for (size_t i = 0; i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        d->compact_upto = 0;
        if (d->cp)
            step(d->cp);
    }
    /* Requests finish on the next loop turn (not inside node_store_close); the timer only
     * completes them from now on, it starts no pass. */
    uv_timer_start(&st->compact_timer, on_timer, 0, 0);
}

int node_store_compact(struct node_store *st, node_store_cb cb, void *data)
{
    if (!st || !cb)
        return -EINVAL;
    if (st->closing)
        return LODE_ESHUTDOWN;
    struct store_compact_req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->cb = cb;
    r->data = data;
    store_list_add_tail(&st->compact_reqs, &r->link);
    st->inflight++;
    for (size_t i = 0; i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        if (d->n_vols && d->vols[d->n_vols - 1]->id > d->compact_upto)
            d->compact_upto = d->vols[d->n_vols - 1]->id;
        d->compact_retry_ms = 0;
    }
    /* The pass starts on the next loop turn: the callback never runs inside this call. */
    uv_timer_start(&st->compact_timer, on_timer, 0, COMPACT_PERIOD_MS);
    return 0;
}
