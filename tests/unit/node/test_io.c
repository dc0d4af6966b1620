/* node/io: both disk backends (io_uring skipped where this host forbids it) and the probe.
 * Round trips at many offsets with far more requests than the queue depth, the depth bound,
 * FIFO order, short reads at end of file, errors, close with requests outstanding. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <liburing.h>
#include <uv.h>

#include "node/io.h"
#include "tests/tap.h"

#define QD 4
#define N_REQS 160       /* far beyond QD: most requests wait in the FIFO */
#define SLOT_BLOCKS 3    /* each request owns SLOT_BLOCKS blocks of the file */

static char g_dir[PATH_MAX];
static uint32_t g_bs = 4096;
static int g_o_direct;

/* ---- a small harness around one struct node_io ------------------------------------- */

struct run {
    struct node_io *io;
    unsigned done;             /* callbacks seen */
    unsigned max_in_flight;    /* largest node_io_in_flight() seen from a callback */
    unsigned order[N_REQS];    /* completion order (request index) */
    int closed;                /* close callback count */
};

struct tracked {
    struct node_io_req req;
    struct run *run;
    unsigned idx;
    int calls;
};

static void on_tracked(struct node_io_req *req)
{
    struct tracked *t = (struct tracked *)req;
    struct run *r = t->run;
    t->calls++;
    unsigned f = node_io_in_flight(r->io);
    if (f > r->max_in_flight)
        r->max_in_flight = f;
    if (r->done < N_REQS)
        r->order[r->done] = t->idx;
    r->done++;
}

static void on_closed(void *data)
{
    ((struct run *)data)->closed++;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void prep(struct tracked *t, struct run *r, unsigned idx, enum node_io_op op, int fd,
                 void *buf, size_t len, uint64_t off)
{
    memset(t, 0, sizeof(*t));
    t->run = r;
    t->idx = idx;
    t->req.cb = on_tracked;
    t->req.op = op;
    t->req.fd = fd;
    t->req.buf = buf;
    t->req.len = len;
    t->req.off = off;
    t->req.result = 12345; /* the backend must overwrite it */
}

static int open_data(const char *name, int flags)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    return open(path, flags | O_CLOEXEC | (g_o_direct ? O_DIRECT : 0), 0600);
}

/* ---- per-backend tests ------------------------------------------------------------- */

static void test_round_trip(uv_loop_t *loop, enum node_io_kind kind, const char *name)
{
    struct run r = {0};
    struct cmn_err err;
    int rc = node_io_create(loop, kind, QD, &r.io, &err);
    is_int(rc, 0, "%s: create (%s)", name, rc ? err.msg : "ok");
    if (rc != 0)
        return;
    is_str(node_io_name(r.io), name, "%s: name", name);

    char fname[64];
    snprintf(fname, sizeof(fname), "rt-%s", name);
    int fd = open_data(fname, O_RDWR | O_CREAT | O_TRUNC);
    ok(fd >= 0, "%s: open data file%s", name, g_o_direct ? " O_DIRECT" : "");
    if (fd < 0)
        goto out;

    /* Request i writes (1 + i % 3) blocks into slot perm[i]: offsets all over the file, in
     * an order unrelated to the submission order. */
    static unsigned perm[N_REQS];
    for (unsigned i = 0; i < N_REQS; i++)
        perm[i] = i;
    srand(7);
    for (unsigned i = N_REQS - 1; i > 0; i--) {
        unsigned j = (unsigned)rand() % (i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    static struct tracked w[N_REQS], rd[N_REQS], sync_req;
    static uint8_t *wbuf[N_REQS], *rbuf[N_REQS];
    size_t slot = (size_t)SLOT_BLOCKS * g_bs;
    int alloc_ok = 1;
    for (unsigned i = 0; i < N_REQS; i++) {
        size_t len = (size_t)(1 + i % 3) * g_bs;
        wbuf[i] = node_io_alloc(len, g_bs);
        rbuf[i] = node_io_alloc(len, g_bs);
        alloc_ok &= wbuf[i] != NULL && rbuf[i] != NULL &&
                    ((uintptr_t)wbuf[i] % g_bs) == 0 && ((uintptr_t)rbuf[i] % g_bs) == 0;
        if (wbuf[i] != NULL)
            fill(wbuf[i], len, i + 1);
        if (rbuf[i] != NULL)
            memset(rbuf[i], 0xee, len);
    }
    ok(alloc_ok, "%s: aligned buffers", name);
    if (!alloc_ok)
        goto free_bufs;

    int sub_ok = 1;
    for (unsigned i = 0; i < N_REQS; i++) {
        prep(&w[i], &r, i, NODE_IO_WRITE, fd, wbuf[i], (size_t)(1 + i % 3) * g_bs,
             (uint64_t)perm[i] * slot);
        sub_ok &= node_io_submit(r.io, &w[i].req) == 0;
    }
    ok(sub_ok, "%s: %d writes accepted", name, N_REQS);
    is_int(node_io_in_flight(r.io), QD, "%s: in flight capped at the queue depth", name);
    is_int(node_io_waiting(r.io), N_REQS - QD, "%s: the rest wait", name);
    uv_run(loop, UV_RUN_DEFAULT);
    is_int(r.done, N_REQS, "%s: every write completed", name);
    ok(r.max_in_flight <= QD && r.max_in_flight > 0, "%s: in flight never above %d (max %u)",
       name, QD, r.max_in_flight);
    int all_len = 1, once = 1;
    for (unsigned i = 0; i < N_REQS; i++) {
        all_len &= w[i].req.result == (ssize_t)w[i].req.len;
        once &= w[i].calls == 1;
    }
    ok(all_len, "%s: each write transferred its whole length", name);
    ok(once, "%s: each write callback ran exactly once", name);
    is_int(node_io_in_flight(r.io) + node_io_waiting(r.io), 0, "%s: nothing left", name);

    r.done = 0;
    prep(&sync_req, &r, 0, NODE_IO_FDATASYNC, fd, NULL, 0, 0);
    is_int(node_io_submit(r.io, &sync_req.req), 0, "%s: fdatasync accepted", name);
    uv_run(loop, UV_RUN_DEFAULT);
    ok(sync_req.calls == 1 && sync_req.req.result == 0, "%s: fdatasync succeeded (%zd)",
       name, sync_req.req.result);

    /* Read everything back, again far beyond the depth, with syncs mixed in. */
    r.done = 0;
    r.max_in_flight = 0;
    static struct tracked syncs[8];
    sub_ok = 1;
    for (unsigned i = 0; i < N_REQS; i++) {
        prep(&rd[i], &r, i, NODE_IO_READ, fd, rbuf[i], (size_t)(1 + i % 3) * g_bs,
             (uint64_t)perm[i] * slot);
        sub_ok &= node_io_submit(r.io, &rd[i].req) == 0;
        if (i % 20 == 0) {
            prep(&syncs[i / 20], &r, N_REQS, NODE_IO_FDATASYNC, fd, NULL, 0, 0);
            sub_ok &= node_io_submit(r.io, &syncs[i / 20].req) == 0;
        }
    }
    ok(sub_ok, "%s: reads and syncs accepted", name);
    uv_run(loop, UV_RUN_DEFAULT);
    is_int(r.done, N_REQS + 8, "%s: every read and sync completed", name);
    ok(r.max_in_flight <= QD, "%s: reads stayed within the depth (max %u)", name,
       r.max_in_flight);
    int same = 1, lens = 1, syncs_ok = 1;
    for (unsigned i = 0; i < N_REQS; i++) {
        lens &= rd[i].req.result == (ssize_t)rd[i].req.len && rd[i].calls == 1;
        same &= memcmp(rbuf[i], wbuf[i], rd[i].req.len) == 0;
    }
    for (unsigned i = 0; i < 8; i++)
        syncs_ok &= syncs[i].calls == 1 && syncs[i].req.result == 0;
    ok(lens, "%s: each read returned its whole length", name);
    ok(same, "%s: every byte read back equals what was written", name);
    ok(syncs_ok, "%s: interleaved fdatasyncs succeeded", name);

    /* Queue depth 1 makes the FIFO visible: completions in submission order. */
    struct run r1 = {0};
    rc = node_io_create(loop, kind, 1, &r1.io, &err);
    is_int(rc, 0, "%s: create with depth 1", name);
    if (rc == 0) {
        for (unsigned i = 0; i < 24; i++) {
            prep(&rd[i], &r1, i, NODE_IO_READ, fd, rbuf[i], (size_t)(1 + i % 3) * g_bs,
                 (uint64_t)perm[i] * slot);
            node_io_submit(r1.io, &rd[i].req);
        }
        uv_run(loop, UV_RUN_DEFAULT);
        int fifo = r1.done == 24;
        for (unsigned i = 0; i < 24 && fifo; i++)
            fifo = r1.order[i] == i;
        ok(fifo, "%s: depth 1 completes in submission order", name);
        ok(r1.max_in_flight <= 1, "%s: depth 1 never has two in flight", name);
        node_io_close(r1.io, on_closed, &r1);
        uv_run(loop, UV_RUN_DEFAULT);
        is_int(r1.closed, 1, "%s: depth-1 backend closed", name);
    }

free_bufs:
    for (unsigned i = 0; i < N_REQS; i++) {
        node_io_free(wbuf[i]);
        node_io_free(rbuf[i]);
    }
    close(fd);
out:
    node_io_close(r.io, on_closed, &r);
    uv_run(loop, UV_RUN_DEFAULT);
    is_int(r.closed, 1, "%s: close callback ran once", name);
}

static void test_short_and_errors(uv_loop_t *loop, enum node_io_kind kind, const char *name)
{
    struct run r = {0};
    if (node_io_create(loop, kind, QD, &r.io, NULL) != 0) {
        ok(0, "%s: create", name);
        return;
    }
    /* A file of 3 blocks and 100 bytes, written without O_DIRECT. */
    char fname[64], path[PATH_MAX + 80];
    snprintf(fname, sizeof(fname), "short-%s", name);
    snprintf(path, sizeof(path), "%s/%s", g_dir, fname);
    size_t fsize = 3 * (size_t)g_bs + 100;
    uint8_t *content = malloc(fsize);
    fill(content, fsize, 99);
    int wfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ok(wfd >= 0 && pwrite(wfd, content, fsize, 0) == (ssize_t)fsize, "%s: short file made",
       name);
    if (wfd >= 0)
        close(wfd);
    int fd = open_data(fname, O_RDONLY);
    uint8_t *buf = node_io_alloc(8 * (size_t)g_bs, g_bs);

    static struct tracked t[8];
    prep(&t[0], &r, 0, NODE_IO_READ, fd, buf, 8 * (size_t)g_bs, 0);
    prep(&t[1], &r, 1, NODE_IO_READ, fd, buf + 4 * (size_t)g_bs, g_bs, 8 * (uint64_t)g_bs);
    node_io_submit(r.io, &t[0].req);
    node_io_submit(r.io, &t[1].req);
    uv_run(loop, UV_RUN_DEFAULT);
    is_int(t[0].req.result, (ssize_t)fsize, "%s: read across end of file returns what exists",
           name);
    ok(t[0].req.result == (ssize_t)fsize && memcmp(buf, content, fsize) == 0,
       "%s: and the bytes are right", name);
    is_int(t[1].req.result, 0, "%s: read past end of file returns 0", name);

    /* Errors come back through the callback as -errno. */
    int bad = open("/dev/null", O_RDONLY | O_CLOEXEC);
    close(bad); /* a descriptor number that is certainly closed now */
    prep(&t[2], &r, 2, NODE_IO_READ, bad, buf, g_bs, 0);
    prep(&t[3], &r, 3, NODE_IO_WRITE, bad, buf, g_bs, 0);
    prep(&t[4], &r, 4, NODE_IO_FDATASYNC, bad, NULL, 0, 0);
    prep(&t[5], &r, 5, NODE_IO_WRITE, fd, buf, g_bs, 0); /* fd is read-only */
    for (int i = 2; i <= 5; i++)
        is_int(node_io_submit(r.io, &t[i].req), 0, "%s: bad request %d accepted", name, i);
    uv_run(loop, UV_RUN_DEFAULT);
    is_int(t[2].req.result, -EBADF, "%s: read on a bad fd: -EBADF", name);
    is_int(t[3].req.result, -EBADF, "%s: write on a bad fd: -EBADF", name);
    is_int(t[4].req.result, -EBADF, "%s: fdatasync on a bad fd: -EBADF", name);
    is_int(t[5].req.result, -EBADF, "%s: write on a read-only fd: -EBADF", name);
    ok(t[2].calls == 1 && t[3].calls == 1 && t[4].calls == 1 && t[5].calls == 1,
       "%s: failed requests call back exactly once", name);

    /* Rejected at submission: no callback. */
    prep(&t[6], &r, 6, NODE_IO_READ, fd, buf, g_bs, 0);
    t[6].req.cb = NULL;
    is_int(node_io_submit(r.io, &t[6].req), -EINVAL, "%s: no callback: -EINVAL", name);
    prep(&t[7], &r, 7, (enum node_io_op)42, fd, buf, g_bs, 0);
    is_int(node_io_submit(r.io, &t[7].req), -EINVAL, "%s: unknown op: -EINVAL", name);
    prep(&t[7], &r, 7, NODE_IO_READ, fd, NULL, g_bs, 0);
    is_int(node_io_submit(r.io, &t[7].req), -EINVAL, "%s: no buffer: -EINVAL", name);
    uv_run(loop, UV_RUN_DEFAULT);
    ok(t[6].calls == 0 && t[7].calls == 0, "%s: rejected requests never call back", name);

    node_io_free(buf);
    free(content);
    if (fd >= 0)
        close(fd);
    node_io_close(r.io, on_closed, &r);
    uv_run(loop, UV_RUN_DEFAULT);
    is_int(r.closed, 1, "%s: closed", name);
}

/* Close while 50 requests are outstanding (most of them still waiting): every callback
 * runs, one of them submits a follow-up that also runs, and only then the close callback. */
static struct tracked g_followup;
static int g_followup_rc = -1;
static int g_closed_before_all = 0;

static void on_close_case(struct node_io_req *req)
{
    struct tracked *t = (struct tracked *)req;
    on_tracked(req);
    if (t->run->closed)
        g_closed_before_all = 1;
    if (t->idx == 0) {
        prep(&g_followup, t->run, 99, NODE_IO_FDATASYNC, req->fd, NULL, 0, 0);
        g_followup.req.cb = on_close_case;
        g_followup_rc = node_io_submit(t->run->io, &g_followup.req);
    }
}

static void test_close_in_flight(uv_loop_t *loop, enum node_io_kind kind, const char *name)
{
    struct run r = {0};
    if (node_io_create(loop, kind, QD, &r.io, NULL) != 0) {
        ok(0, "%s: create", name);
        return;
    }
    char fname[64];
    snprintf(fname, sizeof(fname), "close-%s", name);
    int fd = open_data(fname, O_RDWR | O_CREAT | O_TRUNC);
    uint8_t *buf = node_io_alloc(g_bs, g_bs);
    fill(buf, g_bs, 5);
    static struct tracked t[50];
    g_followup_rc = -1;
    g_closed_before_all = 0;
    for (unsigned i = 0; i < 50; i++) {
        prep(&t[i], &r, i, i % 2 ? NODE_IO_READ : NODE_IO_WRITE, fd, buf, g_bs,
             (uint64_t)(i / 2) * g_bs);
        t[i].req.cb = on_close_case;
        node_io_submit(r.io, &t[i].req);
    }
    node_io_close(r.io, on_closed, &r);
    is_int(r.closed, 0, "%s: close does not complete inside the call", name);
    uv_run(loop, UV_RUN_DEFAULT);
    int all = 1;
    for (unsigned i = 0; i < 50; i++)
        all &= t[i].calls == 1;
    ok(all, "%s: close with requests in flight runs every callback once", name);
    is_int(g_followup_rc, 0, "%s: a callback may still submit while closing", name);
    is_int(g_followup.calls, 1, "%s: and that request runs too", name);
    is_int(r.closed, 1, "%s: close callback ran once", name);
    ok(!g_closed_before_all, "%s: close callback ran after all request callbacks", name);
    node_io_free(buf);
    if (fd >= 0)
        close(fd);

    /* Close of an idle backend without a callback also releases everything (ASan checks). */
    struct node_io *idle = NULL;
    is_int(node_io_create(loop, kind, QD, &idle, NULL), 0, "%s: create idle", name);
    node_io_close(idle, NULL, NULL);
    is_int(uv_run(loop, UV_RUN_DEFAULT), 0, "%s: idle close lets the loop finish", name);
}

/* ---- probe ---------------------------------------------------------------------------- */

static int uring_usable(char *why, size_t n)
{
    struct io_uring ring;
    int rc = io_uring_queue_init(2, &ring, 0);
    if (rc < 0) {
        snprintf(why, n, "io_uring_queue_init: %s", strerror(-rc));
        return 0;
    }
    /* Some filters allow io_uring_setup but not io_uring_enter: try a round trip. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    struct io_uring_cqe *cqe = NULL;
    if (sqe != NULL)
        io_uring_prep_nop(sqe);
    rc = sqe != NULL ? io_uring_submit_and_wait(&ring, 1) : -EBUSY;
    if (rc >= 0)
        rc = io_uring_peek_cqe(&ring, &cqe);
    if (rc >= 0)
        io_uring_cqe_seen(&ring, cqe);
    io_uring_queue_exit(&ring);
    if (rc < 0) {
        snprintf(why, n, "io_uring_enter: %s", strerror(-rc));
        return 0;
    }
    return 1;
}

/* Can a file in `dir` be opened O_DIRECT? Checked independently of the code under test. */
static int o_direct_works(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/odirect-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
    int works = fd >= 0;
    if (works) {
        void *b = node_io_alloc(4096, 4096);
        memset(b, 0, 4096);
        works = pwrite(fd, b, 4096, 0) == 4096;
        node_io_free(b);
        close(fd);
    }
    unlink(path);
    return works;
}

static int probe_files_left(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, ".io-probe", 9) == 0;
    if (d != NULL)
        closedir(d);
    return n;
}

static void test_probe(int uring_ok, const char *uring_why)
{
    struct node_io_probe p;
    struct cmn_err err;
    int rc = node_io_probe_dir(g_dir, NODE_IO_AUTO, &p, &err);
    is_int(rc, 0, "probe %s", rc ? err.msg : "");
    diag("probe of the test directory: %s", p.note);
    ok(p.block_size >= 512 && (p.block_size & (p.block_size - 1)) == 0,
       "probe: block size %u is a power of two >= 512", p.block_size);
    ok(p.note[0] != '\0', "probe: note says why");
    int dio = o_direct_works(g_dir);
    is_int(p.o_direct, dio == 1, "probe: o_direct matches an independent O_DIRECT write");
    is_int(p.kind, uring_ok && dio == 1 ? NODE_IO_URING : NODE_IO_THREADS,
           "probe: io_uring exactly when io_uring and O_DIRECT both work");
    is_int(probe_files_left(g_dir), 0, "probe: temporary file removed");

    rc = node_io_probe_dir(g_dir, NODE_IO_THREADS, &p, &err);
    ok(rc == 0 && p.kind == NODE_IO_THREADS, "probe: threads on request");
    rc = node_io_probe_dir(g_dir, NODE_IO_URING, &p, &err);
    if (uring_ok) {
        ok(rc == 0 && p.kind == NODE_IO_URING, "probe: io_uring on request");
    } else {
        ok(rc < 0 && strstr(err.msg, "io_uring") != NULL,
           "probe: io_uring requested but unusable is an error (%s; host: %s)",
           rc < 0 ? err.msg : "succeeded", uring_why);
    }
    char missing[PATH_MAX + 16];
    snprintf(missing, sizeof(missing), "%s/missing", g_dir);
    rc = node_io_probe_dir(missing, NODE_IO_AUTO, &p, &err);
    ok(rc == -ENOENT && strstr(err.msg, missing) != NULL,
       "probe: a missing directory is an error naming it (%s)", err.msg);

    /* tmpfs: kernels before 6.6 refuse O_DIRECT there, and the node must fall back. */
    struct statfs sfs;
    if (statfs("/dev/shm", &sfs) != 0 || sfs.f_type != 0x01021994 ||
        access("/dev/shm", W_OK) != 0) {
        ok(1, "probe on tmpfs # SKIP /dev/shm is not a writable tmpfs");
        ok(1, "probe on tmpfs note # SKIP /dev/shm is not a writable tmpfs");
        return;
    }
    rc = node_io_probe_dir("/dev/shm", NODE_IO_AUTO, &p, &err);
    diag("probe of /dev/shm: %s", rc == 0 ? p.note : err.msg);
    dio = o_direct_works("/dev/shm");
    if (dio == 0) {
        ok(rc == 0 && p.kind == NODE_IO_THREADS && !p.o_direct,
           "probe on tmpfs refusing O_DIRECT: threads, no O_DIRECT");
        ok(strstr(p.note, "O_DIRECT refused by tmpfs") != NULL, "probe on tmpfs: note says so");
    } else {
        /* Linux >= 6.6 supports O_DIRECT on tmpfs: then the ordinary rule applies. */
        ok(rc == 0 && p.o_direct && p.kind == (uring_ok ? NODE_IO_URING : NODE_IO_THREADS),
           "probe on tmpfs accepting O_DIRECT (this kernel): usual choice");
        ok(strstr(p.note, "O_DIRECT on tmpfs") != NULL, "probe on tmpfs: note names tmpfs");
    }
}

static void test_alloc(void)
{
    void *p = node_io_alloc(1, 4096);
    ok(p != NULL && (uintptr_t)p % 4096 == 0, "alloc: aligned");
    if (p != NULL)
        memset(p, 1, 4096); /* rounded up to the alignment: ASan checks the size */
    node_io_free(p);
    ok(node_io_alloc(100, 3000) == NULL, "alloc: alignment must be a power of two");
    node_io_free(NULL);
}

static void test_buf_cache(void)
{
    size_t n = 9, bytes = 9, cap = 0, cap2 = 0;
    /* No user registered: nothing is kept. */
    void *a = node_io_buf_get(1 << 20, 4096, &cap);
    ok(a != NULL && (uintptr_t)a % 4096 == 0 && cap >= (1u << 20), "buf: aligned, capacity %zu",
       cap);
    node_io_buf_put(a, cap, 4096);
    node_io_buf_cached(&n, &bytes);
    ok(n == 0 && bytes == 0, "buf: not kept without a user");

    node_io_buf_users(+1);
    a = node_io_buf_get((1 << 20) + 4096, 4096, &cap);
    memset(a, 7, cap); /* the whole capacity is usable (ASan checks) */
    node_io_buf_put(a, cap, 4096);
    node_io_buf_cached(&n, &bytes);
    ok(n == 1 && bytes == cap, "buf: kept once returned (%zu, %zu bytes)", n, bytes);
    void *b = node_io_buf_get(1 << 20, 4096, &cap2);
    ok(b == a && cap2 == cap, "buf: the same buffer comes back for a similar size");
    node_io_buf_cached(&n, &bytes);
    ok(n == 0 && bytes == 0, "buf: taken out of the cache");
    node_io_buf_put(b, cap2, 4096);
    /* Too large a buffer for the request, or too weak an alignment: a fresh one. */
    void *c = node_io_buf_get(200 << 10, 4096, &cap);
    ok(c != NULL && c != b, "buf: a buffer over twice the size is not handed out");
    void *d = node_io_buf_get(1 << 20, 1 << 16, &cap2);
    ok(d != NULL && d != b && (uintptr_t)d % (1 << 16) == 0,
       "buf: a stronger alignment is not served by a weaker buffer");
    node_io_buf_put(c, cap, 4096);
    node_io_buf_put(d, cap2, 1 << 16);
    size_t dummy;
    ok(node_io_buf_get(1 << 20, 3000, &dummy) == NULL,
       "buf: an alignment that is not a power of two is refused, even with buffers cached");
    void *z = node_io_buf_get(1 << 20, 0, &dummy);
    ok(z != NULL && (uintptr_t)z % sizeof(void *) == 0, "buf: alignment 0 means pointer-aligned");
    node_io_buf_put(z, dummy, 0);
    /* Small sizes go to malloc and are never cached. */
    void *e = node_io_buf_get(4096, 4096, &cap);
    ok(e != NULL && cap == 4096, "buf: small request served directly");
    node_io_buf_put(e, cap, 4096);
    node_io_buf_cached(&n, &bytes);
    ok(n == 3, "buf: three large buffers cached, the small one freed (%zu)", n);
    /* Bounded: returning many buffers keeps at most the byte bound. */
    void *many[200];
    size_t caps[200];
    for (int i = 0; i < 200; i++)
        many[i] = node_io_buf_get(1 << 20, 4096, &caps[i]);
    for (int i = 0; i < 200; i++)
        node_io_buf_put(many[i], caps[i], 4096);
    node_io_buf_cached(&n, &bytes);
    ok(n <= 64 && bytes <= (96u << 20), "buf: bounded (%zu buffers, %zu bytes)", n, bytes);
    /* The last user leaving empties it (LSan would report what was left). */
    node_io_buf_users(-1);
    node_io_buf_cached(&n, &bytes);
    ok(n == 0 && bytes == 0, "buf: emptied when the last user leaves");
}

int main(void)
{
    alarm(120); /* a lost completion must fail the test, not hang make check */
    const char *base = getenv("TEST_TMPDIR");
    snprintf(g_dir, sizeof(g_dir), "%s/test_io-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(g_dir) == NULL)
        tap_bail("mkdtemp %s: %s", g_dir, strerror(errno));

    struct node_io_probe p;
    if (node_io_probe_dir(g_dir, NODE_IO_AUTO, &p, NULL) == 0) {
        g_bs = p.block_size;
        g_o_direct = p.o_direct;
    }
    char uring_why[128] = "";
    int uring_ok = uring_usable(uring_why, sizeof(uring_why));

    uv_loop_t loop;
    uv_loop_init(&loop);
    test_alloc();
    test_buf_cache();
    test_probe(uring_ok, uring_why);

    test_round_trip(&loop, NODE_IO_THREADS, "threads");
    test_short_and_errors(&loop, NODE_IO_THREADS, "threads");
    test_close_in_flight(&loop, NODE_IO_THREADS, "threads");
    if (uring_ok) {
        test_round_trip(&loop, NODE_IO_URING, "io_uring");
        test_short_and_errors(&loop, NODE_IO_URING, "io_uring");
        test_close_in_flight(&loop, NODE_IO_URING, "io_uring");
    } else {
        diag("io_uring unusable here: %s", uring_why);
        ok(1, "io_uring backend # SKIP io_uring unusable on this host: %s", uring_why);
        struct node_io *io = NULL;
        struct cmn_err err;
        ok(node_io_create(&loop, NODE_IO_URING, QD, &io, &err) < 0 &&
               strstr(err.msg, "io_uring") != NULL,
           "io_uring create fails with a reason (%s)", err.msg);
    }
    is_int(uv_loop_close(&loop), 0, "loop closes: no handle left behind");

    /* Remove what the tests made. */
    const char *names[] = {"rt-threads", "rt-io_uring", "short-threads", "short-io_uring",
                           "close-threads", "close-io_uring"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/%s", g_dir, names[i]);
        unlink(path);
    }
    ok(rmdir(g_dir) == 0, "test directory empty and removed");
    return tap_done();
}
