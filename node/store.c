/* The chunk store's public API (node/store.h): open and close, put, delete, stat, list,
 * statistics, the corrupt list and metrics. Reads are in store_read.c, appends and volumes
 * in store_volume.c, the start-up scan in store_scan.c, compaction in store_compact.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "node/store_int.h"

#define MAX_CHUNK_LIMIT (1ull << 30)
#define MAX_VOLUME_SIZE (1ull << 40)

uint64_t store_rec_size(const struct store_disk *d, uint64_t length)
{
    return node_record_size(length, d->bs);
}

bool store_visible(const struct store_entry *e)
{
    return !(e->flags & (ENT_PENDING | ENT_DELETING));
}

struct store_entry *store_lookup(struct node_store *st, const struct cmn_id *id)
{
    struct store_key *k = store_tree_find(&st->index, id);
    return k ? store_container_of(k, struct store_entry, k) : NULL;
}

/* ---- metrics ---- */

static const int err_codes[STORE_N_ERR - 1] = {
    LODE_ENOCHUNK, LODE_ECORRUPT, LODE_ENOSPACE, -EIO, -EEXIST,
    -EINVAL, LODE_ETOOLARGE, LODE_ESHUTDOWN, -ENOMEM,
};
static const char *const op_names[STORE_N_OPS] = {"put", "get", "delete"};

void store_count_op(struct node_store *st, int op, int status, uint64_t bytes,
                    uint64_t start_ns)
{
    if (!st->metrics_on)
        return;
    cmn_counter_add(st->m.ops[op], 1);
    if (status == 0) {
        if (st->m.bytes[op])
            cmn_counter_add(st->m.bytes[op], bytes);
        if (start_ns)
            cmn_histogram_observe(st->m.latency[op], (double)(cmn_mono_ns() - start_ns) / 1e9);
        return;
    }
    int i = 0;
    while (i < STORE_N_ERR - 1 && err_codes[i] != status)
        i++;
    cmn_counter_add(st->m.errors[op][i], 1);
}

void store_metrics_gauges(struct node_store *st)
{
    if (!st->metrics_on)
        return;
    uint64_t cap = 0, used = 0, vols = 0;
    for (size_t i = 0; i < st->n_disks; i++) {
        cap += st->disks[i].capacity;
        used += st->disks[i].used;
        vols += st->disks[i].n_vols;
    }
    cmn_gauge_set(st->m.capacity, (double)cap);
    cmn_gauge_set(st->m.used, (double)used);
    cmn_gauge_set(st->m.chunks, (double)st->chunks);
    cmn_gauge_set(st->m.volumes, (double)vols);
}

/* Label values are paths: escape what the exposition format requires. */
static void label_escape(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (; *in && o + 3 < size; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = 0;
}

static void metrics_register(struct node_store *st, struct cmn_metrics *m)
{
    char labels[600];
    for (int op = 0; op < STORE_N_OPS; op++) {
        snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[op]);
        st->m.ops[op] = cmn_metrics_counter(m, "lode_node_store_ops_total", labels,
                                            "Chunk store operations completed");
        if (op != STORE_OP_DELETE)
            st->m.bytes[op] = cmn_metrics_counter(m, "lode_node_store_bytes_total", labels,
                                                  "Chunk bytes stored or read");
        st->m.latency[op] = cmn_metrics_histogram(m, "lode_node_store_latency_seconds", labels,
                                                  "Chunk store operation latency", NULL, 0);
        for (int i = 0; i < STORE_N_ERR; i++) {
            snprintf(labels, sizeof(labels), "op=\"%s\",code=\"%s\"", op_names[op],
                     i < STORE_N_ERR - 1 ? lode_errname(err_codes[i]) : "other");
            st->m.errors[op][i] = cmn_metrics_counter(m, "lode_node_store_errors_total", labels,
                                                      "Chunk store operations failed");
        }
    }
    st->m.capacity = cmn_metrics_gauge(m, "lode_node_store_capacity_bytes", NULL,
                                       "Bytes the data directories can hold");
    st->m.used = cmn_metrics_gauge(m, "lode_node_store_used_bytes", NULL,
                                   "Bytes of live records and volume headers");
    st->m.chunks = cmn_metrics_gauge(m, "lode_node_store_chunks", NULL, "Chunks stored");
    st->m.volumes = cmn_metrics_gauge(m, "lode_node_store_volumes", NULL, "Volume files");
    st->m.corrupt = cmn_metrics_counter(m, "lode_node_store_corrupt_total", NULL,
                                        "Chunks found corrupt (reads, scans, compaction)");
    st->m.compacted = cmn_metrics_counter(m, "lode_node_store_compacted_bytes_total", NULL,
                                          "Volume bytes reclaimed by compaction");
    st->m.damaged = cmn_metrics_gauge(m, "lode_node_store_damaged_records", NULL,
                                      "Records found at start with both header copies "
                                      "destroyed (no chunk id to report)");
    for (size_t i = 0; i < st->n_disks; i++) {
        char path[512];
        label_escape(st->disks[i].path, path, sizeof(path));
        snprintf(labels, sizeof(labels), "disk=\"%s\"", path);
        st->disks[i].m_queue = cmn_metrics_gauge(m, "lode_node_disk_queue_depth", labels,
                                                 "Disk I/O requests in flight");
    }
    bool all = true;
    for (int op = 0; op < STORE_N_OPS; op++) {
        all = all && st->m.ops[op] && st->m.latency[op];
        for (int i = 0; i < STORE_N_ERR; i++)
            all = all && st->m.errors[op][i];
    }
    st->metrics_on = all && st->m.bytes[0] && st->m.bytes[1] && st->m.capacity && st->m.used &&
                     st->m.chunks && st->m.volumes && st->m.corrupt && st->m.compacted &&
                     st->m.damaged;
    if (st->metrics_on) {
        /* What the start-up scan found before the metrics existed. */
        cmn_gauge_set(st->m.damaged, (double)st->damaged_records);
        cmn_counter_add(st->m.corrupt, st->corrupt_found);
    }
    else
        LOG_WARN("store", "metrics registration failed (out of memory): store metrics off");
}

/* ---- corrupt list ---- */

void store_corrupt_add(struct node_store *st, const struct cmn_id *id, const char *why)
{
    for (size_t i = 0; i < st->n_corrupt; i++)
        if (!cmn_id_cmp(&st->corrupt[i], id))
            return;
    st->corrupt_found++;
    if (st->metrics_on)
        cmn_counter_add(st->m.corrupt, 1);
    if (why) {
        char hex[CMN_ID_HEX_SIZE];
        cmn_id_to_hex(id, hex);
        LOG_ERROR("store", "chunk %s is corrupt (%s)", hex, why);
    }
    if (st->n_corrupt == STORE_CORRUPT_MAX)
        return; /* counted; the reporter is far behind */
    if (st->n_corrupt == st->cap_corrupt) {
        size_t cap = st->cap_corrupt ? st->cap_corrupt * 2 : 16;
        struct cmn_id *n = realloc(st->corrupt, cap * sizeof(*n));
        if (!n)
            return;
        st->corrupt = n;
        st->cap_corrupt = cap;
    }
    st->corrupt[st->n_corrupt++] = *id;
}

size_t node_store_corrupt_take(struct node_store *st, struct cmn_id *out, size_t max)
{
    size_t n = st->n_corrupt < max ? st->n_corrupt : max;
    if (n == 0)
        return 0;
    memcpy(out, st->corrupt, n * sizeof(*out));
    memmove(st->corrupt, st->corrupt + n, (st->n_corrupt - n) * sizeof(*out));
    st->n_corrupt -= n;
    return n;
}

/* ---- put ---- */

int node_store_put_buf_alloc(struct node_store *st, size_t len, struct node_put_buf *out)
{
    if (!st || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return -EINVAL;
    if (len > st->max_chunk)
        return LODE_ETOOLARGE;
    size_t size = node_record_size(len, st->max_bs);
    size_t cap = 0;
    uint8_t *buf = node_io_buf_get(size, st->max_bs, &cap);
    if (!buf)
        return -ENOMEM;
    out->record = buf;
    out->record_size = size;
    out->record_cap_ = cap;
    out->record_align_ = st->max_bs;
    out->data = buf + node_record_data_offset(node_record_n_sums(len));
    out->len = len;
    return 0;
}

void node_store_put_buf_free(struct node_put_buf *b)
{
    if (!b)
        return;
    node_io_buf_put(b->record, b->record_cap_, b->record_align_);
    memset(b, 0, sizeof(*b));
}

static bool room_on(struct store_disk *d, uint64_t len)
{
    if (!d->full || d->ready)
        return true;
    uint64_t size = store_rec_size(d, len);
    struct store_vol *v = d->active;
    if (v && v->state == VOL_ACTIVE && !v->broken && v->append + size <= v->size - STORE_TAIL)
        return true;
    /* Space may have been freed by others on a shared file system: look again now and then. */
    uint64_t now = cmn_mono_ms();
    if (now - d->full_checked_ms < 1000)
        return false;
    d->full_checked_ms = now;
    if (!store_disk_space_for(d, 2))
        return false;
    d->full = false;
    return true;
}

/* The disk with the most free capacity that can take `len` bytes now. */
static struct store_disk *choose_disk(struct node_store *st, uint64_t len,
                                      const struct store_disk *except)
{
    struct store_disk *best = NULL;
    uint64_t best_free = 0;
    for (size_t i = 0; i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        if (d == except || !room_on(d, len))
            continue;
        uint64_t free_bytes = d->capacity > d->used ? d->capacity - d->used : 0;
        if (!best || free_bytes > best_free) {
            best = d;
            best_free = free_bytes;
        }
    }
    return best;
}

static void put_done(struct store_op *op, int status)
{
    struct node_store *st = op->st;
    struct store_disk *d = op->disk;
    struct store_entry *e = op->entry;
    if (status == 0) {
        struct store_vol *v = op->vol;
        e->flags &= (uint16_t)~ENT_PENDING;
        e->vol = v;
        e->off = op->off;
        e->seq = op->rh.seq;
        e->lo_vol = v->id;
        store_list_add_tail(&v->entries, &e->vlink);
        v->live += op->size;
        d->used += op->size;
        d->chunks++;
        st->chunks++;
        store_metrics_gauges(st);
        if (v->compacting)
            store_compact_kick(d);
    } else {
        store_tree_remove(&st->index, &e->k);
        free(e);
    }
    store_count_op(st, STORE_OP_PUT, status, op->rh.length, op->start_ns);
    node_store_cb cb = op->cb;
    void *data = op->cb_data;
    node_io_buf_put(op->buf, op->buf_cap, st->max_bs);
    free(op);
    cb(data, status);
}

void store_put_redispatch(struct store_op *op)
{
    struct store_disk *d = choose_disk(op->st, op->rh.length, op->disk);
    if (!d) {
        store_op_fail_later(op, LODE_ENOSPACE);
        return;
    }
    op->disk = d;
    op->size = store_rec_size(d, op->rh.length);
    op->entry->disk = d->index;
    store_append(d, op);
}

int node_store_put(struct node_store *st, const struct cmn_id *id, struct node_put_buf *b,
                   uint64_t hash, node_store_cb cb, void *data)
{
    if (!st || !id || !b || !b->record || !cb)
        return -EINVAL;
    uint64_t start = cmn_mono_ns();
    int rc = 0;
    uint32_t n_sums = node_record_n_sums(b->len);
    uint64_t doff = node_record_data_offset(n_sums);
    struct store_disk *d = NULL;
    if (st->closing)
        rc = LODE_ESHUTDOWN;
    else if (b->len == 0 || b->data != (uint8_t *)b->record + doff)
        rc = -EINVAL;
    else if (b->len > st->max_chunk)
        rc = LODE_ETOOLARGE;
    else if (store_lookup(st, id))
        rc = -EEXIST;
    else if (node_data_sums(b->data, b->len, (uint8_t *)b->record + NODE_REC_SUMS_OFFSET) != hash)
        rc = LODE_ECORRUPT; /* the bytes are not what the writer sent: store nothing */
    else if (!(d = choose_disk(st, b->len, NULL)))
        rc = LODE_ENOSPACE;
    struct store_entry *e = NULL;
    struct store_op *op = NULL;
    if (!rc) {
        e = calloc(1, sizeof(*e));
        op = calloc(1, sizeof(*op));
        if (!e || !op)
            rc = -ENOMEM;
    }
    if (rc) {
        free(e);
        free(op);
        store_count_op(st, STORE_OP_PUT, rc, 0, 0);
        return rc;
    }
    int64_t now = cmn_now_ms();
    e->k.id = *id;
    e->length = b->len;
    e->hash = hash;
    e->created_ms = now;
    e->disk = d->index;
    e->flags = ENT_PENDING;
    store_list_init(&e->vlink);
    store_tree_insert(&st->index, &e->k);

    /* The record's padding must be zeros (docs/disk-format.md). */
    size_t end = (size_t)(doff + b->len);
    memset((uint8_t *)b->record + end, 0, b->record_size - end);
    op->st = st;
    op->disk = d;
    op->kind = OP_PUT;
    op->buf = b->record;
    op->buf_cap = b->record_cap_;
    op->size = store_rec_size(d, b->len);
    op->rh.type = NODE_REC_CHUNK;
    memcpy(op->rh.chunk_id, id->b, 16);
    op->rh.length = b->len;
    op->rh.hash = hash;
    op->rh.created_ms = (uint64_t)now;
    op->entry = e;
    op->cb = cb;
    op->cb_data = data;
    op->start_ns = start;
    op->done = put_done;
    st->inflight++;
    memset(b, 0, sizeof(*b)); /* the buffer is the store's now */
    store_append(d, op);
    return 0;
}

/* ---- delete ---- */

static void tomb_done(struct store_op *op, int status)
{
    struct node_store *st = op->st;
    struct store_disk *d = op->disk;
    struct store_entry *e = op->entry;
    struct store_tomb *fresh = (struct store_tomb *)op->src; /* preallocated */
    struct store_vol *ev = e->vol;
    if (status == 0) {
        uint32_t lo = e->lo_vol;
        if (ev) {
            uint64_t size = store_rec_size(d, e->length);
            store_list_del(&e->vlink);
            ev->live -= size;
            d->used -= size;
        }
        d->chunks--;
        st->chunks--;
        store_tree_remove(&st->index, &e->k);
        free(e);
        struct store_key *k = store_tree_find(&st->tombs, &fresh->k.id);
        struct store_tomb *t = k ? store_container_of(k, struct store_tomb, k) : NULL;
        if (t) {
            /* An older tombstone of the same id (stored again after a delete): the new one
             * covers everything it did. */
            if (t->lo < lo)
                lo = t->lo;
            store_list_del(&t->vlink);
            t->vol->live -= d->bs;
            free(fresh);
        } else {
            t = fresh;
            store_list_init(&t->vlink);
            store_tree_insert(&st->tombs, &t->k);
        }
        t->vol = op->vol;
        t->off = op->off;
        t->seq = op->rh.seq;
        t->created_ms = (int64_t)op->rh.created_ms;
        t->lo = lo;
        t->hi = op->vol->id;
        t->copying = false;
        store_list_add_tail(&op->vol->tombs, &t->vlink);
        op->vol->live += d->bs;
        store_metrics_gauges(st);
    } else {
        e->flags &= (uint16_t)~ENT_DELETING;
        free(fresh);
    }
    /* A volume being compacted waits for deletes of its entries. */
    if (ev && ev->compacting)
        store_compact_kick(d);
    store_count_op(st, STORE_OP_DELETE, status, 0, op->start_ns);
    node_store_cb cb = op->cb;
    void *data = op->cb_data;
    node_io_free(op->buf);
    free(op);
    cb(data, status);
}

int node_store_delete(struct node_store *st, const struct cmn_id *id, node_store_cb cb,
                      void *data)
{
    if (!st || !id || !cb)
        return -EINVAL;
    int rc = 0;
    struct store_entry *e = store_lookup(st, id);
    if (st->closing)
        rc = LODE_ESHUTDOWN;
    else if (!e || !store_visible(e))
        rc = LODE_ENOCHUNK;
    struct store_disk *d = e ? &st->disks[e->disk] : NULL;
    struct store_op *op = NULL;
    struct store_tomb *t = NULL;
    uint8_t *buf = NULL;
    if (!rc) {
        op = calloc(1, sizeof(*op));
        t = calloc(1, sizeof(*t));
        buf = node_io_alloc(d->bs, st->max_bs);
        if (!op || !t || !buf)
            rc = -ENOMEM;
    }
    if (rc) {
        free(op);
        free(t);
        node_io_free(buf);
        store_count_op(st, STORE_OP_DELETE, rc, 0, 0);
        return rc;
    }
    memset(buf, 0, d->bs);
    t->k.id = *id;
    e->flags |= ENT_DELETING;
    op->st = st;
    op->disk = d;
    op->kind = OP_TOMB;
    op->buf = buf;
    op->size = d->bs;
    op->rh.type = NODE_REC_TOMBSTONE;
    memcpy(op->rh.chunk_id, id->b, 16);
    op->rh.created_ms = (uint64_t)cmn_now_ms();
    op->entry = e;
    op->src = (struct store_vol *)(void *)t; /* carried to tomb_done */
    op->cb = cb;
    op->cb_data = data;
    op->start_ns = cmn_mono_ns();
    op->done = tomb_done;
    st->inflight++;
    store_append(d, op);
    return 0;
}

/* ---- lookups ---- */

static void fill_info(const struct store_entry *e, struct node_chunk_info *out)
{
    out->id = e->k.id;
    out->length = e->length;
    out->hash = e->hash;
    out->created_ms = e->created_ms;
    out->seq = e->seq;
    out->disk = e->disk;
}

int node_store_stat(struct node_store *st, const struct cmn_id *id, struct node_chunk_info *out)
{
    if (!st || !id || !out)
        return -EINVAL;
    struct store_entry *e = store_lookup(st, id);
    if (!e || !store_visible(e))
        return LODE_ENOCHUNK;
    fill_info(e, out);
    return 0;
}

int node_store_list(struct node_store *st, const struct cmn_id *after, size_t max,
                    struct node_chunk_info *out, size_t *n, bool *more)
{
    if (!st || !n || !more || (max && !out))
        return -EINVAL;
    *n = 0;
    *more = false;
    for (struct store_key *k = store_tree_upper(&st->index, after); k; k = store_tree_next(k)) {
        struct store_entry *e = store_container_of(k, struct store_entry, k);
        if (!store_visible(e))
            continue;
        if (*n == max) {
            *more = true;
            break;
        }
        fill_info(e, &out[(*n)++]);
    }
    return 0;
}

void node_store_stats(struct node_store *st, struct node_store_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        struct node_disk_stats *s = &st->dstats[i];
        s->path = d->path;
        s->io_backend = d->io ? node_io_name(d->io) : "";
        s->io_note = d->probe.note;
        s->capacity_bytes = d->capacity;
        s->used_bytes = d->used;
        s->volumes = (uint32_t)d->n_vols;
        s->chunks = d->chunks;
        s->full = d->full;
        out->capacity_bytes += d->capacity;
        out->used_bytes += d->used;
    }
    out->chunks = st->chunks;
    out->corrupt_found = st->corrupt_found;
    out->damaged_records = st->damaged_records;
    out->n_disks = st->n_disks;
    out->disks = st->dstats;
}

struct cmn_id node_store_uuid(const struct node_store *st)
{
    return st->uuid;
}

/* ---- open and close ---- */

static void free_entry(struct store_key *k)
{
    free(store_container_of(k, struct store_entry, k));
}

static void free_tomb(struct store_key *k)
{
    free(store_container_of(k, struct store_tomb, k));
}

static void free_all(struct node_store *st)
{
    store_tree_destroy(&st->index, free_entry);
    store_tree_destroy(&st->tombs, free_tomb);
    for (size_t i = 0; st->disks && i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        for (size_t j = 0; j < d->n_vols; j++)
            store_vol_free(d->vols[j]);
        free(d->vols);
        free(d->unlinking);
        store_disk_close_fds(d);
        free(d->path);
    }
    free(st->disks);
    free(st->dstats);
    free(st->corrupt);
    free(st->cluster);
    node_io_free(st->zero_buf);
    free(st);
}

static void close_step(struct node_store *st)
{
    if (--st->closing_handles)
        return;
    void (*cb)(void *) = st->close_cb;
    void *data = st->close_data;
    free_all(st);
    node_io_buf_users(-1);
    if (cb)
        cb(data);
}

static void handle_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void io_closed(void *data)
{
    close_step(data);
}

/* The last stage of node_store_close, once nothing is in flight: the I/O backends and the
 * loop handles are closed; the last of them frees everything and calls the close callback. */
void store_maybe_closed(struct node_store *st)
{
    if (!st->close_requested || st->inflight || st->final_started)
        return;
    if (!st->sealed_at_close) {
        /* A clean stop seals the active volumes: after it every record is trusted and
         * verified on read, so damage that happens while the node is down is reported as
         * corruption instead of looking like a torn write of the unsealed tail. */
        st->sealed_at_close = true;
        for (size_t i = 0; i < st->n_disks; i++)
            if (st->disks[i].active)
                store_vol_seal_now(st->disks[i].active);
        if (st->inflight)
            return;
    }
    st->final_started = true;
    st->closing_handles = 1;
    for (size_t i = 0; i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        if (d->io) {
            st->closing_handles++;
            node_io_close(d->io, io_closed, st);
            d->io = NULL;
        }
        if (d->started) {
            st->closing_handles++;
            d->sync_timer.data = st;
            uv_close((uv_handle_t *)&d->sync_timer, handle_closed);
        }
    }
    st->compact_timer.data = st;
    st->defer_idle.data = st;
    st->closing_handles += 2;
    uv_close((uv_handle_t *)&st->compact_timer, handle_closed);
    uv_close((uv_handle_t *)&st->defer_idle, handle_closed);
    close_step(st);
}

void node_store_close(struct node_store *st, void (*cb)(void *data), void *data)
{
    if (!st) {
        if (cb)
            cb(data);
        return;
    }
    if (st->close_requested)
        return;
    st->closing = true;
    st->close_requested = true;
    st->close_cb = cb;
    st->close_data = data;
    store_compact_shutdown(st);
    for (size_t i = 0; i < st->n_disks; i++)
        store_disk_shutdown(&st->disks[i]);
    store_maybe_closed(st);
}

static int check_options(const struct node_store_options *o, struct cmn_err *err)
{
    if (!o->dirs || o->n_dirs == 0)
        return cmn_err_set(err, LODE_ECONFIG, "no data directory configured");
    if (o->n_dirs > 1024)
        return cmn_err_set(err, LODE_ECONFIG, "too many data directories (%zu)", o->n_dirs);
    for (size_t i = 0; i < o->n_dirs; i++)
        if (!o->dirs[i] || !o->dirs[i][0])
            return cmn_err_set(err, LODE_ECONFIG, "data directory %zu is empty", i + 1);
    if (!o->cluster || !o->cluster[0])
        return cmn_err_set(err, LODE_ECONFIG, "no cluster name");
    if (strlen(o->cluster) >= NODE_CLUSTER_NAME_MAX)
        return cmn_err_set(err, LODE_ECONFIG, "cluster name longer than %d bytes",
                           NODE_CLUSTER_NAME_MAX - 1);
    if (o->volume_size > MAX_VOLUME_SIZE)
        return cmn_err_set(err, LODE_ECONFIG, "volume size above %llu",
                           (unsigned long long)MAX_VOLUME_SIZE);
    if (o->max_chunk_size > MAX_CHUNK_LIMIT)
        return cmn_err_set(err, LODE_ECONFIG, "max chunk size above %llu",
                           (unsigned long long)MAX_CHUNK_LIMIT);
    return 0;
}

static void log_disk(const struct store_disk *d)
{
    unsigned sealed = 0, retired = 0;
    for (size_t i = 0; i < d->n_vols; i++) {
        sealed += d->vols[i]->state == VOL_SEALED;
        retired += d->vols[i]->state == VOL_RETIRED;
    }
    LOG_INFO("store",
             "%s: %zu volumes (%u sealed, %u retired%s), %llu chunks, %llu of %llu bytes "
             "used; I/O: %s%s%s, block %u",
             d->path, d->n_vols, sealed, retired, d->active ? ", 1 active" : "",
             (unsigned long long)d->chunks, (unsigned long long)d->used,
             (unsigned long long)d->capacity, node_io_name(d->io), d->probe.note[0] ? ": " : "",
             d->probe.note, d->bs);
}

int node_store_open(uv_loop_t *loop, const struct node_store_options *opts,
                    struct node_store **out, struct cmn_err *err)
{
    if (!loop || !opts || !out)
        return cmn_err_set(err, -EINVAL, "node_store_open: missing argument");
    *out = NULL;
    int rc = check_options(opts, err);
    if (rc)
        return rc;
    struct node_store *st = calloc(1, sizeof(*st));
    if (!st)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    st->loop = loop;
    st->cluster = strdup(opts->cluster);
    st->volume_size = opts->volume_size ? opts->volume_size : STORE_DEFAULT_VOLUME_SIZE;
    st->max_chunk = opts->max_chunk_size ? opts->max_chunk_size : STORE_DEFAULT_MAX_CHUNK;
    st->capacity_limit = opts->capacity_limit;
    st->io_kind = opts->io_kind;
    st->queue_depth = opts->queue_depth ? opts->queue_depth : STORE_DEFAULT_QD;
    st->sync_delay_us = opts->sync_delay_us;
    st->next_seq = 1;
    st->max_bs = 512;
    store_list_init(&st->compact_reqs);
    store_list_init(&st->deferred);
    st->disks = calloc(opts->n_dirs, sizeof(*st->disks));
    st->dstats = calloc(opts->n_dirs, sizeof(*st->dstats));
    if (!st->cluster || !st->disks || !st->dstats) {
        free_all(st);
        return cmn_err_set(err, -ENOMEM, "out of memory");
    }
    if (opts->node_uuid) {
        st->uuid = *opts->node_uuid;
        st->uuid_configured = true;
    }
    rc = store_dirs_open(st, opts->dirs, opts->n_dirs, err);
    if (!rc && !(st->zero_buf = node_io_alloc(STORE_ZERO_CHUNK, st->max_bs)))
        rc = cmn_err_set(err, -ENOMEM, "out of memory");
    if (!rc)
        memset(st->zero_buf, 0, STORE_ZERO_CHUNK);
    for (size_t i = 0; !rc && i < st->n_disks; i++)
        rc = store_scan_disk(st, &st->disks[i], err);
    if (!rc)
        store_scan_finish(st);
    for (size_t i = 0; !rc && i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        rc = node_io_create(loop, d->probe.kind, st->queue_depth, &d->io, err);
        if (rc)
            cmn_err_wrap(err, "%s", d->path);
    }
    if (rc) {
        for (size_t i = 0; i < st->n_disks; i++)
            if (st->disks[i].io)
                node_io_close(st->disks[i].io, NULL, NULL);
        free_all(st);
        return rc;
    }
    if (opts->metrics)
        metrics_register(st, opts->metrics);
    uv_idle_init(loop, &st->defer_idle);
    store_compact_start(st);
    for (size_t i = 0; i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        d->started = true;
        store_disk_start(d);
        log_disk(d);
    }
    store_metrics_gauges(st);
    node_io_buf_users(+1);
    *out = st;
    return 0;
}
