/* Verified reads (docs/disk-format.md, "Reads and verification"): one aligned read of the
 * record for a whole chunk; for a range, the header with the block checksums and the 64 KiB
 * blocks the range touches. The volume is referenced for the duration, so compaction never
 * unlinks a file under a read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "node/store_int.h"

struct store_read {
    struct node_read rd;        /* first: node_read_release frees the whole struct */
    struct node_store *st;
    struct store_vol *vol;
    struct node_io_req req[2];
    unsigned pending;
    ssize_t bad;                /* a failed request's result */
    struct cmn_id id;
    uint64_t rec_off, length, hash, offset, want;
    uint32_t n_sums, first, last;
    bool whole, check_hash;
    size_t buf_cap;             /* node_io_buf_get's capacity, for the put */
    uint32_t buf_align;
    uint64_t len_a;             /* bytes read from the record start */
    uint64_t b_off;             /* second read: record-relative offset (0: none) */
    node_store_get_cb cb;
    void *cb_data;
    uint64_t start_ns;
};

void node_read_release(struct node_read *rd)
{
    if (!rd)
        return;
    struct store_read *r = (struct store_read *)rd; /* the struct around it */
    node_io_buf_put(rd->buf_, r->buf_cap, r->buf_align);
    free(r);
}

static int read_verify(struct store_read *r)
{
    const uint8_t *buf = r->rd.buf_;
    struct node_record_header rh;
    bool degraded;
    /* Both header copies must be intact: a damaged copy is damage in the chunk's record,
     * reported like damaged data (repair rewrites the chunk). */
    enum node_rh_status s = node_rh_decode_head(buf, r->vol->salt, &rh, &degraded);
    if (s != NODE_RH_OK || degraded || rh.type != NODE_REC_CHUNK || memcmp(rh.chunk_id, r->id.b, 16) ||
        rh.length != r->length || rh.hash != r->hash)
        return LODE_ECORRUPT;
    uint64_t doff = node_record_data_offset(r->n_sums);
    if (r->whole) {
        /* Every block checksum: together they cover every byte, and were computed at write
         * time from data verified against `hash`, so a client read needs no second pass.
         * The scrubber asks for the whole-data hash as well (NODE_GET_CHECK_HASH): it costs
         * a pass over the data, and background reads can afford to check everything. */
        if (!node_sums_check(buf + NODE_REC_SUMS_OFFSET, r->length, 0, r->n_sums - 1, buf + doff) ||
            (r->check_hash && node_data_hash(buf + doff, r->length) != r->hash))
            return LODE_ECORRUPT;
        r->rd.data = buf + doff;
        return 0;
    }
    uint64_t bstart = (uint64_t)r->first * NODE_SUM_BLOCK;
    const uint8_t *blocks = r->b_off ? buf + r->len_a + (doff + bstart - r->b_off)
                                     : buf + doff + bstart;
    if (!node_sums_check(buf + NODE_REC_SUMS_OFFSET, r->length, r->first, r->last, blocks))
        return LODE_ECORRUPT;
    r->rd.data = blocks + (r->offset - bstart);
    return 0;
}

static void read_done(struct node_io_req *req)
{
    struct store_read *r = req->data;
    struct node_store *st = r->st;
    store_disk_io_note(r->vol->disk);
    if (req->result != (ssize_t)req->len)
        r->bad = req->result < 0 ? req->result : -EIO;
    if (--r->pending)
        return;
    int status = 0;
    if (r->bad) {
        LOG_ERROR("store", "%s: volume %u: read at %llu: %s", r->vol->disk->path, r->vol->id,
                  (unsigned long long)r->rec_off, strerror((int)-r->bad));
        status = -EIO;
    } else {
        status = read_verify(r);
    }
    if (status == LODE_ECORRUPT) {
        struct store_entry *e = store_lookup(st, &r->id);
        if (e && e->vol == r->vol && e->off == r->rec_off)
            e->flags |= ENT_CORRUPT;
        char why[96];
        snprintf(why, sizeof(why), "read: record fails verification in volume %u at %llu", r->vol->id,
                 (unsigned long long)r->rec_off);
        store_corrupt_add(st, &r->id, why);
    }
    store_count_op(st, STORE_OP_GET, status, r->want, r->start_ns);
    store_vol_unref(r->vol);
    st->inflight--;
    node_store_get_cb cb = r->cb;
    void *data = r->cb_data;
    if (status) {
        node_read_release(&r->rd);
        cb(data, status, NULL);
    } else {
        r->rd.len = r->want;
        r->rd.chunk_length = r->length;
        r->rd.chunk_hash = r->hash;
        r->rd.st_ = NULL; /* the read outlives nothing of the store */
        cb(data, 0, &r->rd);
    }
    store_maybe_closed(st);
}

static uint64_t align_up(uint64_t x, uint32_t a)
{
    return (x + a - 1) & ~(uint64_t)(a - 1);
}

int node_store_get(struct node_store *st, const struct cmn_id *id, uint64_t offset,
                   uint64_t length, node_store_get_cb cb, void *data)
{
    return node_store_get_flags(st, id, offset, length, 0, cb, data);
}

int node_store_get_flags(struct node_store *st, const struct cmn_id *id, uint64_t offset,
                         uint64_t length, unsigned flags, node_store_get_cb cb, void *data)
{
    if (!st || !id || !cb || (flags & ~(unsigned)NODE_GET_CHECK_HASH))
        return -EINVAL;
    int rc = 0;
    struct store_entry *e = store_lookup(st, id);
    if (st->closing)
        rc = LODE_ESHUTDOWN;
    else if (!e || !store_visible(e))
        rc = LODE_ENOCHUNK;
    else if (offset >= e->length || length > e->length - offset)
        rc = -EINVAL;
    else if (e->flags & ENT_CORRUPT)
        rc = LODE_ECORRUPT;
    struct store_read *r = NULL;
    if (!rc && !(r = calloc(1, sizeof(*r))))
        rc = -ENOMEM;
    if (rc) {
        store_count_op(st, STORE_OP_GET, rc, 0, 0);
        return rc;
    }
    struct store_disk *d = e->vol->disk;
    uint32_t bs = d->bs;
    r->st = st;
    r->vol = e->vol;
    r->id = *id;
    r->rec_off = e->off;
    r->length = e->length;
    r->hash = e->hash;
    r->offset = offset;
    r->want = length ? length : e->length - offset;
    r->n_sums = node_record_n_sums(e->length);
    r->whole = offset == 0 && r->want == e->length;
    r->check_hash = (flags & NODE_GET_CHECK_HASH) != 0;
    r->cb = cb;
    r->cb_data = data;
    r->start_ns = cmn_mono_ns();
    uint64_t doff = node_record_data_offset(r->n_sums);
    uint64_t len_b = 0;
    if (r->whole) {
        r->len_a = align_up(doff + e->length, bs);
    } else {
        /* The header and block checksums, and the 64 KiB blocks the range touches: one read
         * when they are close, two otherwise. */
        r->first = (uint32_t)(offset / NODE_SUM_BLOCK);
        r->last = (uint32_t)((offset + r->want - 1) / NODE_SUM_BLOCK);
        uint64_t bstart = (uint64_t)r->first * NODE_SUM_BLOCK;
        uint64_t bend = (uint64_t)(r->last + 1) * NODE_SUM_BLOCK;
        if (bend > e->length)
            bend = e->length;
        uint64_t a_end = align_up(doff, bs);
        uint64_t b_start = (doff + bstart) & ~(uint64_t)(bs - 1);
        uint64_t b_end = align_up(doff + bend, bs);
        if (b_start <= a_end) {
            r->len_a = b_end;
        } else {
            r->len_a = a_end;
            r->b_off = b_start;
            len_b = b_end - b_start;
        }
    }
    r->buf_align = st->max_bs;
    r->rd.buf_ = node_io_read_buf_get(r->len_a + len_b, st->max_bs, &r->buf_cap);
    if (!r->rd.buf_) {
        free(r);
        store_count_op(st, STORE_OP_GET, -ENOMEM, 0, 0);
        return -ENOMEM;
    }
    store_vol_ref(r->vol);
    st->inflight++;
    r->pending = len_b ? 2 : 1;
    for (unsigned i = 0; i < r->pending; i++) {
        struct node_io_req *q = &r->req[i];
        q->data = r;
        q->cb = read_done;
        q->op = NODE_IO_READ;
        q->fd = r->vol->fd;
        q->buf = (uint8_t *)r->rd.buf_ + (i ? r->len_a : 0);
        q->len = i ? len_b : r->len_a;
        q->off = r->rec_off + (i ? r->b_off : 0);
    }
    /* Submission fails only on misuse. Without an accepted request the call fails (no
     * callback); a second one that is refused fails the read when the first completes. */
    unsigned n = r->pending;
    for (unsigned i = 0; i < n; i++) {
        if (node_io_submit(d->io, &r->req[i]) == 0)
            continue;
        if (i == 0) {
            store_vol_unref(r->vol);
            st->inflight--;
            node_read_release(&r->rd);
            store_count_op(st, STORE_OP_GET, -EIO, 0, 0);
            return -EIO;
        }
        r->bad = -EIO;
        r->pending--;
    }
    store_disk_io_note(d);
    return 0;
}

