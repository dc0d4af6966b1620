/* In-memory chunk store for unit tests (see fake_store.h). Chunks live in an array sorted by
 * id; every asynchronous operation completes from a uv timer. */
#include "tests/unit/node/fake_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxh_x86dispatch.h>

#include <lode/errno.h>

#include "common/clock.h"

/* Put buffers start with this header (where the data would sit behind the real store's
 * record header), so node_store_put_buf_free can find the store it counts against. */
#define BUF_HDR 16

struct ent {
    struct cmn_id id;
    void *mem;                    /* what to free */
    uint8_t *data;
    size_t len;
    uint64_t hash;
    int64_t created_ms;
    uint64_t seq;
    int corrupt;
};

struct node_store {
    uv_loop_t *loop;
    struct cmn_id uuid;
    uint64_t max_chunk;
    uint64_t capacity;
    uint64_t delay_ms;
    struct ent *ents;
    size_t n, cap;
    uint64_t seq;
    uint64_t used;
    uint64_t corrupt_found;
    struct cmn_id *pending;       /* corrupt, not yet taken */
    size_t n_pending;
    uint64_t reads, read_bytes;
    unsigned bufs_out;
    unsigned ops;                 /* operations not yet completed */
    int closing;
    void (*close_cb)(void *data);
    void *close_data;
    struct node_disk_stats disk;
};

enum op_kind { OP_PUT, OP_GET, OP_DELETE, OP_COMPACT, OP_CLOSE };

struct op {
    uv_timer_t timer;
    struct node_store *st;
    enum op_kind kind;
    struct cmn_id id;
    struct node_put_buf buf;
    uint64_t hash, off, len;
    node_store_cb cb;
    node_store_get_cb get_cb;
    void *data;
};

static size_t find_pos(const struct node_store *st, const struct cmn_id *id, int *found)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmn_id_cmp(&st->ents[mid].id, id);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static struct ent *find(struct node_store *st, const struct cmn_id *id)
{
    int found;
    size_t i = find_pos(st, id, &found);
    return found ? &st->ents[i] : NULL;
}

static int insert(struct node_store *st, const struct cmn_id *id, void *mem, uint8_t *data,
                  size_t len, uint64_t hash)
{
    int found;
    size_t i = find_pos(st, id, &found);
    if (found)
        return -EEXIST;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        struct ent *e = realloc(st->ents, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        st->ents = e;
        st->cap = cap;
    }
    memmove(&st->ents[i + 1], &st->ents[i], (st->n - i) * sizeof(*st->ents));
    st->ents[i] = (struct ent){.id = *id, .mem = mem, .data = data, .len = len, .hash = hash,
                               .created_ms = cmn_now_ms(), .seq = ++st->seq};
    st->n++;
    st->used += len;
    return 0;
}

static void maybe_closed(struct node_store *st);

static void op_closed(uv_handle_t *h)
{
    struct op *op = h->data;
    struct node_store *st = op->st;
    free(op);
    st->ops--;
    maybe_closed(st);
}

static void run_op(uv_timer_t *t)
{
    struct op *op = t->data;
    struct node_store *st = op->st;
    int status = 0;
    switch (op->kind) {
    case OP_PUT:
        if (XXH3_64bits_dispatch(op->buf.data, op->buf.len) != op->hash)
            status = LODE_ECORRUPT;
        else if (st->closing)
            status = LODE_ESHUTDOWN;
        else if (st->capacity && st->used + op->buf.len > st->capacity)
            status = LODE_ENOSPACE;
        else
            status = insert(st, &op->id, op->buf.record, op->buf.data, op->buf.len, op->hash);
        if (status == 0)
            op->buf.record = NULL;     /* kept by the entry */
        else
            free(op->buf.record);
        st->bufs_out--;
        op->cb(op->data, status);
        break;
    case OP_GET: {
        struct ent *e = find(st, &op->id);
        st->reads++;
        if (!e) {
            op->get_cb(op->data, LODE_ENOCHUNK, NULL);
            break;
        }
        if (e->corrupt) {
            st->corrupt_found++;
            struct cmn_id *p = realloc(st->pending, (st->n_pending + 1) * sizeof(*p));
            if (p) {
                st->pending = p;
                st->pending[st->n_pending++] = e->id;
            }
            op->get_cb(op->data, LODE_ECORRUPT, NULL);
            break;
        }
        uint64_t len = op->len ? op->len : e->len - op->off;
        if (op->off >= e->len || len > e->len - op->off) {
            op->get_cb(op->data, -EINVAL, NULL);
            break;
        }
        struct node_read *rd = calloc(1, sizeof(*rd));
        uint8_t *copy = malloc(len);
        if (!rd || !copy) {
            free(rd);
            free(copy);
            op->get_cb(op->data, -ENOMEM, NULL);
            break;
        }
        memcpy(copy, e->data + op->off, len);
        rd->data = copy;
        rd->len = len;
        rd->chunk_length = e->len;
        rd->chunk_hash = e->hash;
        rd->buf_ = copy;
        rd->st_ = st;
        st->read_bytes += len;
        op->get_cb(op->data, 0, rd);
        break;
    }
    case OP_DELETE: {
        int found;
        size_t i = find_pos(st, &op->id, &found);
        if (found) {
            st->used -= st->ents[i].len;
            free(st->ents[i].mem);
            memmove(&st->ents[i], &st->ents[i + 1], (st->n - i - 1) * sizeof(*st->ents));
            st->n--;
        }
        op->cb(op->data, found ? 0 : LODE_ENOCHUNK);
        break;
    }
    case OP_COMPACT:
        op->cb(op->data, 0);
        break;
    case OP_CLOSE:
        break;
    }
    uv_close((uv_handle_t *)&op->timer, op_closed);
}

static struct op *new_op(struct node_store *st, enum op_kind kind)
{
    struct op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->st = st;
    op->kind = kind;
    uv_timer_init(st->loop, &op->timer);
    op->timer.data = op;
    st->ops++;
    return op;
}

static void start_op(struct op *op)
{
    uv_timer_start(&op->timer, run_op, op->st->delay_ms, 0);
}

int node_store_open(uv_loop_t *loop, const struct node_store_options *opts,
                    struct node_store **out, struct cmn_err *err)
{
    struct node_store *st = calloc(1, sizeof(*st));
    if (!st)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    st->loop = loop;
    st->uuid = cmn_id_random();
    st->max_chunk = opts && opts->max_chunk_size ? opts->max_chunk_size : 8u << 20;
    st->capacity = 1ull << 40;
    st->disk.path = "fake";
    st->disk.io_backend = "threads";
    st->disk.io_note = "in-memory test store";
    *out = st;
    return 0;
}

static void maybe_closed(struct node_store *st)
{
    if (!st->closing || st->ops)
        return;
    void (*cb)(void *) = st->close_cb;
    void *data = st->close_data;
    for (size_t i = 0; i < st->n; i++)
        free(st->ents[i].mem);
    free(st->ents);
    free(st->pending);
    free(st);
    if (cb)
        cb(data);
}

void node_store_close(struct node_store *st, void (*cb)(void *data), void *data)
{
    st->closing = 1;
    st->close_cb = cb;
    st->close_data = data;
    /* Completes on the loop, after the operations in flight. */
    struct op *op = new_op(st, OP_CLOSE);
    if (op)
        start_op(op);
    else
        maybe_closed(st);
}

struct cmn_id node_store_uuid(const struct node_store *st)
{
    return st->uuid;
}

int node_store_put_buf_alloc(struct node_store *st, size_t len, struct node_put_buf *out)
{
    if (len == 0)
        return -EINVAL;
    if (len > st->max_chunk)
        return LODE_ETOOLARGE;
    uint8_t *p = malloc(BUF_HDR + len);
    if (!p)
        return -ENOMEM;
    memcpy(p, &st, sizeof(st));
    out->record = p;
    out->record_size = BUF_HDR + len;
    out->data = p + BUF_HDR;
    out->len = len;
    st->bufs_out++;
    return 0;
}

void node_store_put_buf_free(struct node_put_buf *b)
{
    if (!b->record)
        return;
    struct node_store *st;
    memcpy(&st, b->record, sizeof(st));
    st->bufs_out--;
    free(b->record);
    b->record = NULL;
    b->data = NULL;
}

int node_store_put(struct node_store *st, const struct cmn_id *id, struct node_put_buf *b,
                   uint64_t hash, node_store_cb cb, void *data)
{
    if (st->closing)
        return LODE_ESHUTDOWN;
    struct op *op = new_op(st, OP_PUT);
    if (!op)
        return -ENOMEM;
    op->id = *id;
    op->buf = *b;
    op->hash = hash;
    op->cb = cb;
    op->data = data;
    start_op(op);
    return 0;
}

void node_read_release(struct node_read *rd)
{
    if (!rd)
        return;
    free(rd->buf_);
    free(rd);
}

/* The fake verifies nothing, so the flags only have to be valid. */
int node_store_get_flags(struct node_store *st, const struct cmn_id *id, uint64_t offset,
                         uint64_t length, unsigned flags, node_store_get_cb cb, void *data)
{
    if (flags & ~(unsigned)NODE_GET_CHECK_HASH)
        return -EINVAL;
    return node_store_get(st, id, offset, length, cb, data);
}

int node_store_get(struct node_store *st, const struct cmn_id *id, uint64_t offset,
                   uint64_t length, node_store_get_cb cb, void *data)
{
    if (st->closing)
        return LODE_ESHUTDOWN;
    struct op *op = new_op(st, OP_GET);
    if (!op)
        return -ENOMEM;
    op->id = *id;
    op->off = offset;
    op->len = length;
    op->get_cb = cb;
    op->data = data;
    start_op(op);
    return 0;
}

int node_store_delete(struct node_store *st, const struct cmn_id *id, node_store_cb cb,
                      void *data)
{
    if (st->closing)
        return LODE_ESHUTDOWN;
    struct op *op = new_op(st, OP_DELETE);
    if (!op)
        return -ENOMEM;
    op->id = *id;
    op->cb = cb;
    op->data = data;
    start_op(op);
    return 0;
}

int node_store_stat(struct node_store *st, const struct cmn_id *id, struct node_chunk_info *out)
{
    struct ent *e = find(st, id);
    if (!e)
        return LODE_ENOCHUNK;
    *out = (struct node_chunk_info){.id = e->id, .length = e->len, .hash = e->hash,
                                    .created_ms = e->created_ms, .seq = e->seq, .disk = 0};
    return 0;
}

int node_store_list(struct node_store *st, const struct cmn_id *after, size_t max,
                    struct node_chunk_info *out, size_t *n, bool *more)
{
    size_t i = 0;
    if (after) {
        int found;
        i = find_pos(st, after, &found);
        if (found)
            i++;
    }
    size_t k = 0;
    for (; i < st->n && k < max; i++, k++)
        node_store_stat(st, &st->ents[i].id, &out[k]);
    *n = k;
    *more = i < st->n;
    return 0;
}

void node_store_stats(struct node_store *st, struct node_store_stats *out)
{
    st->disk.capacity_bytes = st->capacity;
    st->disk.used_bytes = st->used;
    st->disk.chunks = st->n;
    st->disk.volumes = 1;
    *out = (struct node_store_stats){.capacity_bytes = st->capacity, .used_bytes = st->used,
                                     .chunks = st->n, .corrupt_found = st->corrupt_found,
                                     .n_disks = 1, .disks = &st->disk};
}

size_t node_store_corrupt_take(struct node_store *st, struct cmn_id *out, size_t max)
{
    size_t n = st->n_pending < max ? st->n_pending : max;
    if (n == 0)
        return 0;
    memcpy(out, st->pending, n * sizeof(*out));
    memmove(st->pending, st->pending + n, (st->n_pending - n) * sizeof(*out));
    st->n_pending -= n;
    return n;
}

int node_store_compact(struct node_store *st, node_store_cb cb, void *data)
{
    struct op *op = new_op(st, OP_COMPACT);
    if (!op)
        return -ENOMEM;
    op->cb = cb;
    op->data = data;
    start_op(op);
    return 0;
}

/* ---- knobs ---------------------------------------------------------------------------- */

int fake_store_corrupt(struct node_store *st, const struct cmn_id *id)
{
    struct ent *e = find(st, id);
    if (!e)
        return LODE_ENOCHUNK;
    e->corrupt = 1;
    return 0;
}

void fake_store_set_capacity(struct node_store *st, uint64_t bytes)
{
    st->capacity = bytes;
}

void fake_store_set_delay(struct node_store *st, uint64_t ms)
{
    st->delay_ms = ms;
}

uint64_t fake_store_reads(const struct node_store *st)
{
    return st->reads;
}

uint64_t fake_store_read_bytes(const struct node_store *st)
{
    return st->read_bytes;
}

unsigned fake_store_bufs_out(const struct node_store *st)
{
    return st->bufs_out;
}

int fake_store_add(struct node_store *st, const struct cmn_id *id, const void *data,
                   size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, data, len);
    int rc = insert(st, id, copy, copy, len, XXH3_64bits_dispatch(data, len));
    if (rc)
        free(copy);
    return rc;
}
