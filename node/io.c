/* Disk I/O: the directory probe, aligned buffers, and the part common to both backends
 * (queue-depth bound with a FIFO wait list, close). See node/io.h and node/io_int.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <liburing.h>

#include "common/arena.h"
#include "node/io_int.h"

/* ---- generic request flow ---------------------------------------------------------- */

void node_io_init_(struct node_io *io, uv_loop_t *loop, const struct node_io_backend *be,
                   unsigned queue_depth)
{
    memset(io, 0, sizeof(*io));
    io->loop = loop;
    io->be = be;
    io->queue_depth = queue_depth;
}

static void start_one(struct node_io *io, struct node_io_req *req)
{
    io->in_flight++;
    req->result = 0; /* the backends count transferred bytes here while in flight */
    io->be->start(io, req);
}

/* Fills free slots from the wait list, oldest first. */
static void pump(struct node_io *io)
{
    while (io->wait_head != NULL && io->in_flight < io->queue_depth) {
        struct node_io_req *req = io->wait_head;
        io->wait_head = req->next_;
        if (io->wait_head == NULL)
            io->wait_tail = NULL;
        req->next_ = NULL;
        io->waiting--;
        start_one(io, req);
    }
}

static void maybe_destroy(struct node_io *io)
{
    if (!io->closing || io->destroying || io->in_flight > 0 || io->waiting > 0)
        return;
    io->destroying = 1;
    io->be->destroy(io); /* asynchronous: `io` stays valid until the loop runs again */
}

int node_io_submit(struct node_io *io, struct node_io_req *req)
{
    if (io == NULL || req == NULL || req->cb == NULL || io->destroying)
        return -EINVAL;
    switch (req->op) {
    case NODE_IO_READ:
    case NODE_IO_WRITE:
        if ((req->buf == NULL && req->len > 0) || req->len > (size_t)SSIZE_MAX ||
            req->off > (uint64_t)INT64_MAX - req->len)
            return -EINVAL;
        break;
    case NODE_IO_FDATASYNC:
        break;
    default:
        return -EINVAL;
    }
    req->next_ = NULL;
    req->result = 0;
    /* A request may only overtake the wait list when it is empty: FIFO order is what lets
     * callers reason about the per-disk bound (nothing starves). */
    if (io->wait_head == NULL && io->in_flight < io->queue_depth) {
        start_one(io, req);
    } else {
        if (io->wait_tail != NULL)
            io->wait_tail->next_ = req;
        else
            io->wait_head = req;
        io->wait_tail = req;
        io->waiting++;
    }
    return 0;
}

void node_io_done_(struct node_io *io, struct node_io_req *req)
{
    io->in_flight--;
    /* Refill before the callback: a request the callback submits queues behind the ones
     * that were already waiting. */
    pump(io);
    req->cb(req); /* may free req, submit more, or call node_io_close() */
    maybe_destroy(io);
}

unsigned node_io_in_flight(const struct node_io *io)
{
    return io->in_flight;
}

unsigned node_io_waiting(const struct node_io *io)
{
    return io->waiting;
}

const char *node_io_name(const struct node_io *io)
{
    return io->be->name;
}

int node_io_create(uv_loop_t *loop, enum node_io_kind kind, unsigned queue_depth,
                   struct node_io **out, struct cmn_err *err)
{
    *out = NULL;
    if (loop == NULL || queue_depth == 0 || queue_depth > NODE_IO_MAX_QUEUE_DEPTH)
        return cmn_err_set(err, -EINVAL, "disk I/O: queue depth %u outside 1..%u",
                           queue_depth, NODE_IO_MAX_QUEUE_DEPTH);
    switch (kind) {
    case NODE_IO_URING:
        return node_io_uring_create_(loop, queue_depth, out, err);
    case NODE_IO_THREADS:
        return node_io_threads_create_(loop, queue_depth, out, err);
    case NODE_IO_AUTO:
        if (node_io_uring_create_(loop, queue_depth, out, NULL) == 0)
            return 0;
        return node_io_threads_create_(loop, queue_depth, out, err);
    }
    return cmn_err_set(err, -EINVAL, "disk I/O: unknown backend %d", (int)kind);
}

void node_io_close(struct node_io *io, void (*cb)(void *data), void *data)
{
    if (io == NULL || io->closing)
        return;
    io->closing = 1;
    io->close_cb = cb;
    io->close_data = data;
    maybe_destroy(io);
}

/* ---- aligned buffers ---------------------------------------------------------------- */

void *node_io_alloc(size_t size, uint32_t align)
{
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if ((align & (align - 1)) != 0)
        return NULL;
    if (size == 0)
        size = align;
    if (size > SIZE_MAX - (align - 1))
        return NULL;
    size = (size + align - 1) & ~((size_t)align - 1);
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    return p;
}

void node_io_free(void *buf)
{
    free(buf);
}

/* Bounds: enough for a queue depth of chunk reads in flight on a few disks; above that the
 * buffers go back to malloc. Larger buffers are rare (ranges never exceed a chunk) and are
 * not kept. */
#define BUF_CACHE_SLOTS 64
#define BUF_CACHE_BYTES (96u << 20)
#define BUF_CACHE_MAX (8u << 20)
#define BUF_ROUND (64u << 10)

static struct {
    pthread_mutex_t lock;
    int users;
    size_t n, bytes;
    struct { void *buf; size_t cap; uint32_t align; } slot[BUF_CACHE_SLOTS];
} buf_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

void *node_io_buf_get(size_t size, uint32_t align, size_t *cap)
{
    if (size < NODE_IO_BUF_MIN || size > BUF_CACHE_MAX) {
        *cap = size;
        return node_io_alloc(size, align);
    }
    if (align < sizeof(void *))
        align = sizeof(void *); /* as node_io_alloc and node_io_buf_put do */
    if ((align & (align - 1)) != 0)
        return NULL;            /* node_io_alloc refuses it too; never served from the cache */
    size_t want = (size + BUF_ROUND - 1) & ~((size_t)BUF_ROUND - 1);
    void *p = NULL;
    pthread_mutex_lock(&buf_cache.lock);
    /* Most recently returned first (its pages are the likeliest to be warm); a buffer more
     * than twice the size is left for a larger read. */
    for (size_t i = buf_cache.n; i-- > 0;) {
        if (buf_cache.slot[i].cap >= want && buf_cache.slot[i].cap <= 2 * want &&
            buf_cache.slot[i].align >= align) { /* powers of two: a larger one divides */
            p = buf_cache.slot[i].buf;
            *cap = buf_cache.slot[i].cap;
            buf_cache.bytes -= *cap;
            buf_cache.slot[i] = buf_cache.slot[--buf_cache.n];
            break;
        }
    }
    pthread_mutex_unlock(&buf_cache.lock);
    if (p)
        return p;
    *cap = want;
    return node_io_alloc(want, align);
}

static struct cmn_arena *read_arena;

void node_io_set_read_arena(struct cmn_arena *a)
{
    __atomic_store_n(&read_arena, a, __ATOMIC_RELEASE);
}

void *node_io_read_buf_get(size_t size, uint32_t align, size_t *cap)
{
    struct cmn_arena *a = __atomic_load_n(&read_arena, __ATOMIC_ACQUIRE);
    void *p = a && align <= CMN_ARENA_UNIT ? cmn_arena_alloc(a, size, align, cap) : NULL;
    return p ? p : node_io_buf_get(size, align, cap);
}

void node_io_buf_put(void *buf, size_t cap, uint32_t align)
{
    if (!buf)
        return;
    struct cmn_arena *a = __atomic_load_n(&read_arena, __ATOMIC_ACQUIRE);
    if (cmn_arena_contains(a, buf, 1)) {
        cmn_arena_free(a, buf);
        return;
    }
    if (cap >= NODE_IO_BUF_MIN && cap <= BUF_CACHE_MAX) {
        pthread_mutex_lock(&buf_cache.lock);
        bool kept = false;
        if (buf_cache.users > 0 && buf_cache.n < BUF_CACHE_SLOTS &&
            buf_cache.bytes + cap <= BUF_CACHE_BYTES) {
            buf_cache.slot[buf_cache.n].buf = buf;
            buf_cache.slot[buf_cache.n].cap = cap;
            buf_cache.slot[buf_cache.n].align = align < sizeof(void *) ? sizeof(void *) : align;
            buf_cache.n++;
            buf_cache.bytes += cap;
            kept = true;
        }
        pthread_mutex_unlock(&buf_cache.lock);
        if (kept)
            return;
    }
    node_io_free(buf);
}

void node_io_buf_users(int delta)
{
    void *drop[BUF_CACHE_SLOTS];
    size_t n = 0;
    pthread_mutex_lock(&buf_cache.lock);
    buf_cache.users += delta;
    if (buf_cache.users <= 0) {
        buf_cache.users = 0;
        for (size_t i = 0; i < buf_cache.n; i++)
            drop[n++] = buf_cache.slot[i].buf;
        buf_cache.n = 0;
        buf_cache.bytes = 0;
    }
    pthread_mutex_unlock(&buf_cache.lock);
    for (size_t i = 0; i < n; i++)
        node_io_free(drop[i]);
}

void node_io_buf_cached(size_t *count, size_t *bytes)
{
    pthread_mutex_lock(&buf_cache.lock);
    if (count)
        *count = buf_cache.n;
    if (bytes)
        *bytes = buf_cache.bytes;
    pthread_mutex_unlock(&buf_cache.lock);
}

/* ---- probe -------------------------------------------------------------------------- */

#define PROBE_MIN_BLOCK 512u
#define PROBE_DEFAULT_BLOCK 4096u
#define PROBE_MAX_BLOCK (1u << 20)

static const char *fs_name(long type)
{
    switch ((unsigned long)type) {
    case 0x01021994: return "tmpfs";
    case 0xef53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683e: return "btrfs";
    case 0x794c7630: return "overlayfs";
    case 0x2fc12fc1: return "zfs";
    case 0x6969: return "nfs";
    case 0xf2f52010: return "f2fs";
    case 0x65735546: return "fuse";
    case 0x858458f6: return "ramfs";
    case 0x01161970: return "gfs2";
    case 0xff534d42: return "cifs";
    case 0x5346544e: return "ntfs";
    case 0x4d44: return "vfat";
    default: return NULL;
    }
}

static const char *uring_hint(int rc)
{
    switch (rc) {
    case -EPERM:
    case -EACCES: return " (seccomp or kernel.io_uring_disabled?)";
    case -ENOSYS: return " (kernel without io_uring)";
    case -ENOMEM: return " (RLIMIT_MEMLOCK too low?)";
    default: return "";
    }
}

/* Can this process use io_uring for READ, WRITE and FSYNC? Sets `why` when not. A NOP round
 * trip catches filters that allow io_uring_setup but not io_uring_enter. */
static int probe_uring(char *why, size_t why_len)
{
    static const struct {
        int op;
        const char *name;
    } ops[] = {{IORING_OP_READ, "READ"}, {IORING_OP_WRITE, "WRITE"}, {IORING_OP_FSYNC, "FSYNC"}};
    struct io_uring ring;
    int rc = io_uring_queue_init(4, &ring, 0);
    if (rc < 0) {
        snprintf(why, why_len, "io_uring_queue_init: %s%s", strerror(-rc), uring_hint(rc));
        return rc;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    if (probe == NULL) {
        snprintf(why, why_len, "io_uring: opcode probe refused (kernel too old?)");
        rc = -EOPNOTSUPP;
        goto out;
    }
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (!io_uring_opcode_supported(probe, ops[i].op)) {
            snprintf(why, why_len, "io_uring: opcode %s not supported by the kernel", ops[i].name);
            rc = -EOPNOTSUPP;
            break;
        }
    }
    io_uring_free_probe(probe);
    if (rc < 0)
        goto out;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    struct io_uring_cqe *cqe = NULL;
    if (sqe == NULL) { /* a fresh ring of 4 has room: cannot happen */
        snprintf(why, why_len, "io_uring: no submission entry");
        rc = -EBUSY;
        goto out;
    }
    io_uring_prep_nop(sqe);
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc >= 0)
        rc = io_uring_peek_cqe(&ring, &cqe);
    if (rc < 0) {
        snprintf(why, why_len, "io_uring_enter: %s%s", strerror(-rc), uring_hint(rc));
        goto out;
    }
    rc = cqe->res < 0 ? cqe->res : 0;
    io_uring_cqe_seen(&ring, cqe);
    if (rc < 0)
        snprintf(why, why_len, "io_uring: NOP failed: %s", strerror(-rc));
out:
    io_uring_queue_exit(&ring);
    return rc;
}

/* Opens `path` O_DIRECT and writes one aligned block. Returns 0 and the block size, or a
 * negative errno (with the step that failed in `why`). */
static int probe_o_direct(const char *path, uint32_t dio_align, uint32_t *block, char *why,
                          size_t why_len)
{
    uint32_t bs = dio_align != 0 ? dio_align : PROBE_DEFAULT_BLOCK;
    if (bs < PROBE_MIN_BLOCK)
        bs = PROBE_MIN_BLOCK;
    int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(why, why_len, "open: %s", strerror(e));
        return -e;
    }
    void *buf = node_io_alloc(bs, bs);
    int rc = 0;
    if (buf == NULL) {
        snprintf(why, why_len, "out of memory");
        rc = -ENOMEM;
    } else {
        memset(buf, 0, bs);
        ssize_t n;
        do {
            n = pwrite(fd, buf, bs, 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            rc = -errno;
            snprintf(why, why_len, "aligned write of %u bytes: %s", bs, strerror(errno));
        } else if ((size_t)n != bs) {
            rc = -EIO;
            snprintf(why, why_len, "aligned write of %u bytes was short (%zd)", bs, n);
        }
    }
    node_io_free(buf);
    close(fd);
    if (rc == 0)
        *block = bs;
    return rc;
}

int node_io_probe_dir(const char *dir, enum node_io_kind want, struct node_io_probe *out,
                      struct cmn_err *err)
{
    memset(out, 0, sizeof(*out));
    if (want != NODE_IO_AUTO && want != NODE_IO_URING && want != NODE_IO_THREADS)
        return cmn_err_set(err, -EINVAL, "probe %s: unknown backend %d", dir, (int)want);

    struct statfs sfs;
    if (statfs(dir, &sfs) != 0)
        return cmn_err_set(err, -errno, "probe %s: %s", dir, strerror(errno));
    char fs_buf[32];
    const char *fs = fs_name((long)sfs.f_type);
    if (fs == NULL) {
        snprintf(fs_buf, sizeof(fs_buf), "fs 0x%lx", (unsigned long)sfs.f_type);
        fs = fs_buf;
    }

    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/.io-probe-XXXXXX", dir) >= (int)sizeof(path))
        return cmn_err_set(err, -ENAMETOOLONG, "probe %s: path too long", dir);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return cmn_err_set(err, -errno, "probe %s: cannot create a file there: %s", dir,
                           strerror(errno));

    /* The alignment O_DIRECT needs, for memory and for offsets/lengths: we use the larger
     * for both, so one number serves buffers and the on-disk layout. Kernels before 6.1,
     * and file systems that do not say, leave it 0. */
    uint32_t dio_align = 0;
#ifdef STATX_DIOALIGN
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
        (stx.stx_mask & STATX_DIOALIGN) != 0) {
        dio_align = stx.stx_dio_offset_align > stx.stx_dio_mem_align ? stx.stx_dio_offset_align
                                                                     : stx.stx_dio_mem_align;
        if (dio_align > PROBE_MAX_BLOCK || (dio_align & (dio_align - 1)) != 0)
            dio_align = 0; /* nonsense: fall back to trying the default */
    }
#endif

    char dio_why[96] = "";
    uint32_t block = 0;
    int dio_rc = probe_o_direct(path, dio_align, &block, dio_why, sizeof(dio_why));
    unlink(path);
    close(fd);

    char uring_why[128] = "";
    int uring_rc = want == NODE_IO_THREADS ? 0 : probe_uring(uring_why, sizeof(uring_why));

    out->o_direct = dio_rc == 0;
    /* Without O_DIRECT the page cache needs no alignment, but the layout still wants a
     * block: a page keeps buffered I/O efficient. */
    out->block_size = dio_rc == 0 ? block : PROBE_DEFAULT_BLOCK;

    char dio_desc[128];
    if (dio_rc == 0)
        snprintf(dio_desc, sizeof(dio_desc), "O_DIRECT on %s (block %u%s)", fs, block,
                 dio_align == 0 ? ", alignment assumed" : "");
    else
        snprintf(dio_desc, sizeof(dio_desc), "O_DIRECT refused by %s (%s)", fs, dio_why);

    switch (want) {
    case NODE_IO_URING:
        if (uring_rc < 0)
            return cmn_err_set(err, uring_rc, "probe %s: io_uring requested but unusable: %s",
                               dir, uring_why);
        out->kind = NODE_IO_URING;
        snprintf(out->note, sizeof(out->note), "io_uring (requested), %s", dio_desc);
        break;
    case NODE_IO_THREADS:
        out->kind = NODE_IO_THREADS;
        snprintf(out->note, sizeof(out->note), "threads (requested), %s", dio_desc);
        break;
    case NODE_IO_AUTO:
        if (uring_rc == 0 && dio_rc == 0) {
            out->kind = NODE_IO_URING;
            snprintf(out->note, sizeof(out->note), "io_uring, %s", dio_desc);
        } else if (uring_rc < 0) {
            out->kind = NODE_IO_THREADS;
            snprintf(out->note, sizeof(out->note), "threads: %s; %s", uring_why, dio_desc);
        } else {
            /* io_uring on buffered files mostly punts to its own worker threads: the thread
             * pool is as good and simpler there. */
            out->kind = NODE_IO_THREADS;
            snprintf(out->note, sizeof(out->note), "threads: %s", dio_desc);
        }
        break;
    }
    return 0;
}
