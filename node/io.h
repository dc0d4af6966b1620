/* Disk I/O backends of lode-node: io_uring (O_DIRECT, batched submissions, bounded queue
 * depth) or a thread pool doing plain pread/pwrite/fdatasync, behind one interface.
 *
 * One struct node_io per data directory, bound to the node's libuv loop: requests are
 * submitted and completed on that loop's thread. Submission never blocks: past the queue
 * depth, requests wait in FIFO order inside the backend (that is the per-disk bound).
 */
#ifndef LODE_NODE_IO_H
#define LODE_NODE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/err.h"

enum node_io_kind {
    NODE_IO_AUTO = 0,           /* io_uring with O_DIRECT when both work, else threads */
    NODE_IO_URING,
    NODE_IO_THREADS,
};

enum node_io_op {
    NODE_IO_READ = 1,
    NODE_IO_WRITE,
    NODE_IO_FDATASYNC,
};

struct node_io_req;
typedef void (*node_io_cb)(struct node_io_req *req);

/* Caller-owned request; must stay valid until its callback. */
struct node_io_req {
    void *data;                 /* the caller's */
    node_io_cb cb;              /* on the loop thread, exactly once per accepted submit */
    enum node_io_op op;
    int fd;
    void *buf;                  /* READ/WRITE: aligned to the directory's block size */
    size_t len;
    uint64_t off;
    ssize_t result;             /* bytes transferred, or -errno. READ: less than len only
                                 * at end of file. Short transfers are resumed inside the
                                 * backend; an error after a partial transfer is the error. */
    struct node_io_req *next_;  /* backend-private */
};

struct node_io;

/* What a probe of a directory found: the backend to use and whether files there can be
 * opened O_DIRECT. `note` says why (e.g. "io_uring_setup: Operation not permitted (seccomp?)",
 * "O_DIRECT refused by tmpfs"), and is logged at start. */
struct node_io_probe {
    enum node_io_kind kind;
    int o_direct;               /* open data files with O_DIRECT */
    uint32_t block_size;        /* alignment for offsets, lengths and buffers (>= 512) */
    char note[160];
};

/* Probes `dir` (creates and removes a small temporary file there). `want` forces a backend
 * (NODE_IO_URING fails with a clear error when io_uring is unavailable). */
int node_io_probe_dir(const char *dir, enum node_io_kind want, struct node_io_probe *out,
                      struct cmn_err *err);

/* queue_depth: 1..4096 requests handed to the disk at once (more wait, FIFO). NODE_IO_AUTO
 * here means io_uring if a ring can be set up, else threads (the probe decides better). */
int node_io_create(uv_loop_t *loop, enum node_io_kind kind, unsigned queue_depth,
                   struct node_io **out, struct cmn_err *err);
const char *node_io_name(const struct node_io *io); /* "io_uring" or "threads" */

/* Queues a request. Returns 0 (the callback will run) or -EINVAL. */
int node_io_submit(struct node_io *io, struct node_io_req *req);

/* Requests handed to the disk and not yet completed: at most the queue depth (for metrics).
 * Those waiting beyond the queue depth are counted by node_io_waiting(). */
unsigned node_io_in_flight(const struct node_io *io);
unsigned node_io_waiting(const struct node_io *io);

/* Waits for in-flight and waiting requests (they run, their callbacks run; callbacks may
 * still submit), then frees; `cb` (may be NULL) runs after everything is released, always
 * from the loop, never inside this call. Submitting after that is invalid. */
void node_io_close(struct node_io *io, void (*cb)(void *data), void *data);

/* Aligned buffers for O_DIRECT (posix_memalign); size is rounded up to the alignment. */
void *node_io_alloc(size_t size, uint32_t align);
void node_io_free(void *buf);

/* Large read buffers, recycled. A chunk read wants about a megabyte; allocating it afresh
 * each time maps new pages that the kernel must zero and fault in (or pin, for O_DIRECT) and
 * then unmap, which cost a node more CPU than the read itself. node_io_buf_get returns a
 * buffer of at least `size` bytes aligned to `align` and its capacity in *cap (pass both back
 * to node_io_buf_put). Buffers under NODE_IO_BUF_MIN come from malloc as before. The cache is
 * process-wide (locked; threads may share it), bounded in count and bytes, and only holds
 * buffers while a user is registered: node_io_buf_users(+1) when a store opens, (-1) when it
 * has closed, which empties it at zero so nothing is left allocated at exit. */
#define NODE_IO_BUF_MIN (128u << 10)
void *node_io_buf_get(size_t size, uint32_t align, size_t *cap);
void node_io_buf_put(void *buf, size_t cap, uint32_t align);
void node_io_buf_users(int delta);
/* Buffers now cached and their bytes (tests, metrics). */
void node_io_buf_cached(size_t *count, size_t *bytes);

/* The read arena (common/arena.h): memory registered with the rc listener's RDMA devices, so
 * chunk ranges read into it are RDMA-written to clients from where the disk put them instead
 * of through staging copies. node_io_read_buf_get takes from it while it has room (else it is
 * node_io_buf_get); node_io_buf_put returns either kind. Set once at startup, before any read,
 * and cleared (node_io_set_read_arena(NULL)) only once no read buffer is out. */
struct cmn_arena;
void node_io_set_read_arena(struct cmn_arena *a);
void *node_io_read_buf_get(size_t size, uint32_t align, size_t *cap);

#endif
