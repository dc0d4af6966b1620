/* The chunk store of lode-node: data directories, append-only volumes, the in-memory index,
 * verified reads, durable acknowledged writes, deletes and compaction
 * (docs/disk-format.md; structures in node/layout.h).
 *
 * Threading: everything runs on the node's libuv loop thread; callbacks fire there. Opening
 * (format or verify superblocks, scan volumes) is synchronous: the node serves nothing before
 * its index is complete.
 */
#ifndef LODE_NODE_STORE_H
#define LODE_NODE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/id.h"
#include "node/io.h"

struct cmn_metrics;
struct node_store;

struct node_store_options {
    const char *const *dirs;    /* data directories (one per disk), at least one */
    size_t n_dirs;
    const char *cluster;        /* cluster name written to / checked against superblocks */
    uint64_t volume_size;       /* 0 = 256 MiB */
    uint64_t max_chunk_size;    /* 0 = 8 MiB */
    uint64_t capacity_limit;    /* per directory, 0 = the file system's size */
    enum node_io_kind io_kind;  /* NODE_IO_AUTO picks per directory and logs why */
    unsigned queue_depth;       /* per directory, 0 = 32 */
    uint64_t sync_delay_us;     /* group commit: wait this long for more writes, 0 = none */
    struct cmn_metrics *metrics;/* optional */
    /* The node's identity, when the operator configured it: new directories are formatted
     * with it and every existing one must carry it. Without it the identity lives only on the
     * disks, so a node with a single disk cannot tell a disk moved from another node. */
    const struct cmn_id *node_uuid;
};

/* Opens (formatting empty directories) and scans every directory. Refuses (LODE_EWRONGDISK)
 * a directory whose superblock names another cluster or node; -EBUSY when another process
 * holds it. */
int node_store_open(uv_loop_t *loop, const struct node_store_options *opts,
                    struct node_store **out, struct cmn_err *err);
/* Finishes in-flight I/O (callbacks run with their results; ops not yet started get
 * LODE_ESHUTDOWN), seals the active volumes (a clean stop), then frees; cb runs last. */
void node_store_close(struct node_store *st, void (*cb)(void *data), void *data);

/* The node's uuid (from the first directory's superblock; created at first format). */
struct cmn_id node_store_uuid(const struct node_store *st);

/* ---- put: the caller gets a record buffer, receives the data straight into it, then
 * submits it, so the bytes are never copied between the socket and the disk. */
struct node_put_buf {
    void *record;               /* aligned; owned by the store's allocator */
    size_t record_size;
    size_t record_cap_;         /* private: the allocation's capacity and alignment */
    uint32_t record_align_;
    uint8_t *data;              /* where the `len` data bytes go */
    size_t len;
};

/* -EINVAL for len 0, LODE_ETOOLARGE above max_chunk_size, -ENOMEM. */
int node_store_put_buf_alloc(struct node_store *st, size_t len, struct node_put_buf *out);
void node_store_put_buf_free(struct node_put_buf *b);

typedef void (*node_store_cb)(void *data, int status);

/* Verifies `hash` (XXH3-64 of the data; mismatch -> LODE_ECORRUPT and nothing written),
 * writes, and calls cb once the chunk and what is needed to find it are durable. On a 0
 * return the buffer belongs to the store. Errors: -EEXIST (id already stored),
 * LODE_ENOSPACE, -EIO, LODE_ESHUTDOWN.
 * Like every call here: a non-zero return means cb will not run (and the buffer stays the
 * caller's); after a 0 return cb runs exactly once, never inside the call. Returned at once:
 * -EINVAL, LODE_ETOOLARGE, -EEXIST, LODE_ECORRUPT, LODE_ENOSPACE (no directory has room),
 * LODE_ESHUTDOWN, -ENOMEM. Through cb: LODE_ENOSPACE, -EIO, LODE_ESHUTDOWN. */
int node_store_put(struct node_store *st, const struct cmn_id *id, struct node_put_buf *b,
                   uint64_t hash, node_store_cb cb, void *data);

/* ---- get: verified bytes in an aligned buffer the caller releases. */
struct node_read {
    const uint8_t *data;        /* the requested bytes */
    size_t len;
    uint64_t chunk_length;      /* of the whole chunk */
    uint64_t chunk_hash;
    void *buf_;                 /* private */
    struct node_store *st_;
};
void node_read_release(struct node_read *rd);

/* status 0: `rd` is the caller's until node_read_release(rd) (also valid after cb returns,
 * and after node_store_close).
 * Errors: LODE_ENOCHUNK, -EINVAL (range outside the chunk), LODE_ECORRUPT (verification
 * failed: the chunk is recorded as corrupt; no data is returned), -EIO.
 * node_store_get returns at once (no cb): -EINVAL, LODE_ENOCHUNK, LODE_ECORRUPT (a chunk
 * already found corrupt: every later read fails), LODE_ESHUTDOWN, -ENOMEM; through cb:
 * LODE_ECORRUPT, -EIO. */
typedef void (*node_store_get_cb)(void *data, int status, struct node_read *rd);
int node_store_get(struct node_store *st, const struct cmn_id *id, uint64_t offset,
                   uint64_t length /* 0 = to the end */, node_store_get_cb cb, void *data);
/* node_store_get with flags. A read checks the header copies and every 64 KiB block it
 * covers against its block checksum; NODE_GET_CHECK_HASH also checks a whole-chunk read
 * against the whole-data hash (a second pass over the data: the scrubber's choice). */
#define NODE_GET_CHECK_HASH 1u
int node_store_get_flags(struct node_store *st, const struct cmn_id *id, uint64_t offset,
                         uint64_t length, unsigned flags, node_store_get_cb cb, void *data);

/* Durable delete (tombstone synced before cb). LODE_ENOCHUNK when absent (returned at once).
 * Through cb: LODE_ENOSPACE (no room even for a tombstone), -EIO, LODE_ESHUTDOWN. */
int node_store_delete(struct node_store *st, const struct cmn_id *id, node_store_cb cb,
                      void *data);

struct node_chunk_info {
    struct cmn_id id;
    uint64_t length;
    uint64_t hash;
    int64_t created_ms;
    uint64_t seq;
    uint32_t disk;
};

/* Synchronous index lookups. */
int node_store_stat(struct node_store *st, const struct cmn_id *id, struct node_chunk_info *out);
/* Up to `max` chunks with ids > *after (NULL = from the first), in id byte order; *n gets the
 * count, *more whether others follow. */
int node_store_list(struct node_store *st, const struct cmn_id *after, size_t max,
                    struct node_chunk_info *out, size_t *n, bool *more);

struct node_disk_stats {
    const char *path;
    const char *io_backend;
    const char *io_note;
    uint64_t capacity_bytes;
    uint64_t used_bytes;
    uint32_t volumes;
    uint64_t chunks;
    bool full;
};

struct node_store_stats {
    uint64_t capacity_bytes;
    uint64_t used_bytes;
    uint64_t chunks;
    uint64_t corrupt_found;     /* since open (damaged records included) */
    size_t n_disks;
    const struct node_disk_stats *disks; /* valid until the next call */
    /* Record headers found failing their salted check (at open, in any volume): such a
     * record is skipped whole (its id may be the damaged bytes, so it is neither indexed nor
     * reported; reads of its chunk answer LODE_ENOCHUNK). */
    uint64_t damaged_records;
};
void node_store_stats(struct node_store *st, struct node_store_stats *out);

/* Chunks found corrupt since the last call (by reads or scrubbing): copies up to `max` ids
 * and forgets them. The service reports them to meta. */
size_t node_store_corrupt_take(struct node_store *st, struct cmn_id *out, size_t max);

/* Reclaims dead space now (also runs by itself when a sealed volume is mostly dead).
 * cb(status) when the pass is over. */
int node_store_compact(struct node_store *st, node_store_cb cb, void *data);

#endif
