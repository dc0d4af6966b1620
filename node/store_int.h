/* Internals of the chunk store (node/store.h), shared by its source files:
 *   store.c          public API: put, delete, stat, list, stats, open and close, metrics
 *   store_read.c     verified reads (get)
 *   store_super.c    data directories: lock, probe, superblock format and checks
 *   store_index.c    the ordered index (AVL tree) of chunks and of tombstones; corrupt list
 *   store_volume.c   volumes: creation, appends, group commit, sealing, unlinking
 *   store_scan.c     the start-up scan and crash recovery
 *   store_compact.c  reclaiming dead space
 *
 * Everything runs on the store's loop thread. Nothing here is locked.
 *
 * Volume states:  READY (created, preallocated, synced, empty) -> ACTIVE (takes appends) ->
 * SEALING (the next one took over; in-flight writes finish, then the SEAL record) -> SEALED.
 * A volume whose write or sync failed, or which a crash left with holes, is RETIRED: never
 * appended to again, never sealed (its records are verified by every scan). SEALED and
 * RETIRED volumes are compacted into the active one and then become DYING: unlinked once no
 * read holds a reference.
 *
 * Accounting (docs/disk-format.md): `written` counts the bytes between the volume header and
 * the append offset (records and holes, not the seal); `live` counts live chunk records and
 * tombstones still needed. dead = written - live is what compaction reclaims.
 */
#ifndef LODE_NODE_STORE_INT_H
#define LODE_NODE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/log.h"
#include "node/store.h"
#include "node/store_layout.h"

#define STORE_TAIL (64u * 1024)              /* per volume, for tombstones and the seal */
#define STORE_ZERO_CHUNK (1u << 20)          /* zero-fill write size (no fallocate) */
#define STORE_DEFAULT_VOLUME_SIZE (256ull << 20)
#define STORE_DEFAULT_MAX_CHUNK (8ull << 20)
#define STORE_DEFAULT_QD 32u
#define STORE_CORRUPT_MAX 65536              /* ids kept for node_store_corrupt_take */

#define store_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ---- intrusive circular list with a sentinel head ---- */
struct store_list {
    struct store_list *prev, *next;
};
static inline void store_list_init(struct store_list *h) { h->prev = h->next = h; }
static inline bool store_list_empty(const struct store_list *h) { return h->next == h; }
static inline void store_list_add_tail(struct store_list *h, struct store_list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void store_list_del(struct store_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
/* Moves every element of `from` to the end of `to`. */
static inline void store_list_splice(struct store_list *to, struct store_list *from)
{
    if (store_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    store_list_init(from);
}

/* ---- AVL tree keyed by chunk id ---- */
struct store_key {
    struct store_key *left, *right, *parent;
    int height;
    struct cmn_id id;
};
struct store_tree {
    struct store_key *root;
    size_t count;
};
struct store_key *store_tree_find(const struct store_tree *t, const struct cmn_id *id);
/* First key > id (id NULL: the first key). */
struct store_key *store_tree_upper(const struct store_tree *t, const struct cmn_id *id);
struct store_key *store_tree_next(struct store_key *k);
/* Returns 0, or -EEXIST (then nothing changed). */
int store_tree_insert(struct store_tree *t, struct store_key *k);
void store_tree_remove(struct store_tree *t, struct store_key *k);
/* Calls fn (which may free it) on every key; the tree is empty afterwards. */
void store_tree_destroy(struct store_tree *t, void (*fn)(struct store_key *k));

/* ---- index entries ---- */
enum {
    ENT_PENDING = 1u << 0,   /* put in flight: invisible, but its id is taken */
    ENT_DELETING = 1u << 1,  /* tombstone in flight: invisible */
    ENT_COPYING = 1u << 2,   /* compaction is copying it */
    ENT_CORRUPT = 1u << 3,   /* verification failed: every read fails */
};

struct store_vol;
struct store_disk;

struct store_entry {
    struct store_key k;
    struct store_vol *vol;       /* NULL while PENDING */
    struct store_list vlink;     /* in vol->entries once live */
    uint64_t off;                /* record offset in vol */
    uint64_t length;
    uint64_t hash;
    uint64_t seq;
    int64_t created_ms;
    uint32_t lo_vol;             /* lowest volume id that may still hold a copy */
    uint16_t disk;
    uint16_t flags;
};

/* A tombstone that must stay on disk: volumes lo..hi of its disk may still hold records of
 * the chunk older than `seq`. */
struct store_tomb {
    struct store_key k;
    struct store_vol *vol;       /* holding the TOMBSTONE record */
    struct store_list vlink;     /* in vol->tombs */
    uint64_t off;
    uint64_t seq;
    int64_t created_ms;
    uint32_t lo, hi;
    bool copying;
};

/* ---- volumes ---- */
enum store_vol_state {
    VOL_READY = 1,
    VOL_ACTIVE,
    VOL_SEALING,
    VOL_SEALED,
    VOL_RETIRED,
    VOL_DYING,
};

struct store_vol {
    struct store_disk *disk;
    uint32_t id;
    enum store_vol_state state;
    int fd;
    uint64_t size;
    uint64_t salt;
    uint64_t append;             /* next record offset */
    uint64_t written;            /* record bytes (and holes) appended after the header */
    uint64_t live;               /* live chunk records + needed tombstones */
    /* Durable watermark (node/layout.h, synced_upto): every write below `synced` completed
     * and was covered by a completed fdatasync. `sync_mark` is what the sync in flight will
     * make durable: the lowest offset still being written when it started (or the append
     * offset). Stamped into every record header issued. */
    uint64_t synced;
    uint64_t sync_mark;
    struct store_list writing;   /* struct store_op.wlink: writes in flight, by offset */
    unsigned refs;               /* in-flight users (ops, reads, syncs) */
    unsigned writes;             /* reserved, not yet completed writes */
    bool broken;                 /* a write or sync failed: never appended to or sealed */
    bool seal_started;
    bool compacting;
    bool sync_busy;
    bool sync_queued;            /* in disk->sync_delayed */
    struct store_list entries;   /* struct store_entry.vlink */
    struct store_list tombs;     /* struct store_tomb.vlink */
    struct store_list sync_wait; /* ops written, waiting for a sync that starts later */
    struct store_list sync_batch;/* ops covered by the sync in flight */
    struct store_list sync_link; /* in disk->sync_delayed */
    struct node_io_req sync_req;
};

static inline uint64_t store_vol_dead(const struct store_vol *v)
{
    return v->written > v->live ? v->written - v->live : 0;
}

/* ---- operations that append a record ---- */
enum store_op_kind {
    OP_PUT = 1,
    OP_TOMB,
    OP_SEAL,
    OP_COPY,          /* compaction: a chunk record moved to the active volume */
    OP_COPY_TOMB,     /* compaction: a tombstone carried forward */
};

struct store_op;
typedef void (*store_op_done)(struct store_op *op, int status);

struct store_op {
    struct node_io_req req;
    struct store_list link;      /* disk->waiters, vol->sync_wait / sync_batch */
    struct store_list wlink;     /* vol->writing while its write is in flight */
    struct node_store *st;
    struct store_disk *disk;
    struct store_vol *vol;       /* where it was appended (a reference), or NULL */
    enum store_op_kind kind;
    uint8_t *buf;                /* record image, aligned (node_io_alloc) */
    size_t buf_cap;              /* nonzero: from node_io_buf_get (a put's or a compaction
                                    copy's record) */
    uint64_t size;               /* bytes written */
    uint64_t off;
    struct node_record_header rh;/* host order; seq assigned when appended unless keep_seq */
    bool keep_seq;
    /* Checked when the op is about to be appended (seq assigned): false skips it, and done
     * runs with -ECANCELED. Compaction uses it so that a copy never gets a seq above a
     * tombstone of the same chunk. */
    bool (*still_wanted)(struct store_op *op);
    store_op_done done;          /* frees the op (and buf) */
    struct store_entry *entry;   /* PUT, TOMB */
    node_store_cb cb;
    void *cb_data;
    uint64_t start_ns;
    /* compaction */
    struct store_compact *cp;
    struct store_vol *src;       /* volume copied from */
    uint64_t src_off;
    uint64_t src_seq;
};

/* ---- data directories ---- */
struct store_prep;
struct store_compact;

struct store_disk {
    struct node_store *st;
    uint16_t index;
    char *path;
    int dir_fd;
    int vol_dir_fd;
    int lock_fd;
    struct node_io *io;
    struct node_io_probe probe;
    int o_direct;
    uint32_t bs;                 /* record alignment (superblock) */
    uint8_t disk_uuid[16];
    uint64_t volume_size;        /* of new volumes */
    bool formatted;              /* a superblock was read (vs. formatted now) */
    struct node_superblock sb;

    struct store_vol **vols;     /* sorted by id: every volume file (READY..DYING) */
    size_t n_vols, cap_vols;
    uint64_t vol_bytes;          /* sum of their sizes (+ one being prepared) */
    uint32_t *unlinking;         /* ids unlinked, directory sync not yet done */
    size_t n_unlinking, cap_unlinking;
    uint32_t next_vol_id;
    struct store_vol *active;
    struct store_vol *ready;     /* prepared ahead */
    struct store_prep *prep;     /* creation in flight */
    struct store_list waiters;   /* ops waiting for room */
    bool full;                   /* the last attempt to add a volume for puts failed */
    uint64_t full_checked_ms;

    uint64_t fs_bytes;           /* size of the file system holding the directory */
    dev_t fs_dev;                /* its st_dev: directories sharing one split its size */
    uint64_t capacity;
    uint64_t used;
    uint64_t chunks;

    uv_timer_t sync_timer;
    bool sync_timer_armed;
    struct store_list sync_delayed;

    bool started;                /* sync_timer initialised */
    struct store_compact *cp;    /* compaction running on this disk */
    uint32_t compact_upto;       /* explicit pass: volumes with ids <= this (0 = none) */
    uint64_t compact_retry_ms;   /* after a failed pass, automatic ones wait until then */
    struct cmn_gauge *m_queue;
};

/* ---- metrics ---- */
enum { STORE_OP_PUT, STORE_OP_GET, STORE_OP_DELETE, STORE_N_OPS };
#define STORE_N_ERR 10
struct store_metrics {
    struct cmn_counter *ops[STORE_N_OPS];
    struct cmn_counter *bytes[STORE_N_OPS];
    struct cmn_histogram *latency[STORE_N_OPS];
    struct cmn_counter *errors[STORE_N_OPS][STORE_N_ERR];
    struct cmn_gauge *capacity, *used, *chunks, *volumes, *damaged;
    struct cmn_counter *corrupt, *compacted;
};

struct store_compact_req;

struct node_store {
    uv_loop_t *loop;
    char *cluster;
    uint64_t volume_size;
    uint64_t max_chunk;
    uint64_t capacity_limit;
    enum node_io_kind io_kind;
    unsigned queue_depth;
    uint64_t sync_delay_us;
    struct cmn_id uuid;
    bool uuid_configured;        /* uuid came from the configuration (node-uuid) */

    struct store_disk *disks;
    size_t n_disks;
    uint32_t max_bs;
    void *zero_buf;              /* STORE_ZERO_CHUNK zero bytes, aligned */

    struct store_tree index;     /* struct store_entry */
    struct store_tree tombs;     /* struct store_tomb */
    uint64_t next_seq;
    uint64_t chunks;             /* entries not PENDING */

    struct cmn_id *corrupt;      /* not yet taken */
    size_t n_corrupt, cap_corrupt;
    uint64_t corrupt_found;
    uint64_t damaged_records;    /* headers failing their check (no id to report) */

    struct node_disk_stats *dstats;

    uv_timer_t compact_timer;
    struct store_list compact_reqs;
    int compact_status;          /* of the explicit pass in progress */
    uv_idle_t defer_idle;        /* runs deferred completions on the next loop turn */
    struct store_list deferred;  /* struct store_op.link */

    bool closing;
    bool close_requested;
    bool sealed_at_close;
    bool final_started;
    unsigned inflight;           /* ops, reads, preparations, compactions, unlinks */
    unsigned closing_handles;
    void (*close_cb)(void *data);
    void *close_data;

    bool metrics_on;
    struct store_metrics m;
};

/* ---- store.c ---- */
struct store_entry *store_lookup(struct node_store *st, const struct cmn_id *id);
bool store_visible(const struct store_entry *e);   /* not PENDING nor DELETING */
void store_count_op(struct node_store *st, int op, int status, uint64_t bytes,
                    uint64_t start_ns);
uint64_t store_rec_size(const struct store_disk *d, uint64_t length);
void store_corrupt_add(struct node_store *st, const struct cmn_id *id, const char *why);
void store_maybe_closed(struct node_store *st);
void store_metrics_gauges(struct node_store *st);
/* A put waiting for room on a disk that turned out full: another disk, or LODE_ENOSPACE. */
void store_put_redispatch(struct store_op *op);

/* ---- store_super.c ---- */
int store_dirs_open(struct node_store *st, const char *const *dirs, size_t n, struct cmn_err *err);
void store_disk_close_fds(struct store_disk *d);

/* ---- store_volume.c ---- */
struct store_vol *store_vol_new(struct store_disk *d, uint32_t id, int fd, uint64_t size,
                                uint64_t salt);
void store_vol_free(struct store_vol *v);
void store_vol_ref(struct store_vol *v);
void store_vol_unref(struct store_vol *v);
int store_disk_add_vol(struct store_disk *d, struct store_vol *v);
struct store_vol *store_disk_find_vol(const struct store_disk *d, uint32_t id);
/* Whether a volume file with an id in [lo, hi] other than `except` exists. */
bool store_disk_has_vol(const struct store_disk *d, uint32_t lo, uint32_t hi,
                        const struct store_vol *except);
/* Queues `op` (kind, buf, size, rh, done set) for an append on disk d. */
void store_append(struct store_disk *d, struct store_op *op);
/* Finishes an op: done(op, status), then drops its volume reference. */
void store_op_finish(struct store_op *op, int status);
/* The same on the next loop turn: for failures found while the caller of a public function
 * is still on the stack (callbacks never run inside node_store_put and friends). */
void store_op_fail_later(struct store_op *op, int status);
/* Runs op->req.cb(&op->req) on the next loop turn (op->req.result as set by the caller). */
void store_op_defer(struct store_op *op);
void store_disk_io_note(struct store_disk *d);
void store_disk_start(struct store_disk *d);        /* timers; after the scan */
void store_disk_shutdown(struct store_disk *d);     /* fails waiters, flushes delayed syncs */
bool store_disk_space_for(struct store_disk *d, unsigned extra_volumes);
void store_vol_make_dying(struct store_vol *v);
void store_disk_roll(struct store_disk *d);
void store_vol_kick_sync(struct store_vol *v);
/* Seals an active volume that holds records (at close); the seal is an op in flight. */
void store_vol_seal_now(struct store_vol *v);

/* ---- store_scan.c ---- */
int store_scan_disk(struct node_store *st, struct store_disk *d, struct cmn_err *err);
/* After every disk was scanned: applies tombstones, builds lists and accounting. */
void store_scan_finish(struct node_store *st);

/* ---- store_compact.c ---- */
void store_compact_start(struct node_store *st);     /* the periodic timer */
void store_compact_kick(struct store_disk *d);        /* re-evaluate (after a delete, ...) */
void store_compact_shutdown(struct node_store *st);
/* A volume file was unlinked: drop tombstones nobody needs any more. */
void store_compact_vol_gone(struct store_disk *d);

#endif
