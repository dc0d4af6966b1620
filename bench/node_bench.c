/* bench/node_bench: chunk PUT and GET throughput of lode-node against raw io_uring O_DIRECT
 * on the same directory, in the same run.
 *
 * For each chunk size (1 MiB and 4 KiB by default):
 *   raw     io_uring, O_DIRECT, queue depth 32, sequential aligned writes to one preallocated
 *           file, one fdatasync per 32 completed writes (the same group-commit shape the store
 *           uses), then aligned reads of the same blocks. The ceiling of this disk.
 *   store   the chunk store API in-process (node/store.h): puts of random chunks with 32 in
 *           flight (each acknowledged only when durable), then whole-chunk verified gets.
 *   rpc     a real lode-node process over loopback: CHUNK_PUT / CHUNK_GET pipelined 32 deep on
 *           one authenticated connection (what a gateway does).
 * Ratios are store/raw and rpc/raw. The data set per run is --bytes (default 512 MiB), larger
 * than what a page cache hit would flatter only when the machine has little RAM: the raw and
 * store paths use O_DIRECT where the file system allows it, the report says which.
 *
 * Usage: node_bench --dir DIR [--bytes N] [--sizes 1048576,4096] [--node PATH]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <xxh_x86dispatch.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/rpc_sync.h"
#include "node/io.h"
#include "node/store.h"

#define QD 32

static double secs(uint64_t t0) { return (double)(cmn_mono_ns() - t0) / 1e9; }

static void fill_random(uint8_t *p, size_t n)
{
    uint64_t x = cmn_mono_ns() | 1;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
}

/* ---- raw io_uring O_DIRECT ---- */
static int raw_uring(const char *dir, size_t bs, uint64_t total, double *wr, double *rd,
                     int *direct)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/raw-bench.dat", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_DIRECT, 0600);
    *direct = fd >= 0;
    if (fd < 0)
        fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0)
        return -errno;
    uint64_t n = total / bs;
    if (n < QD)
        n = QD;
    struct io_uring ring;
    if (io_uring_queue_init(QD * 2, &ring, 0) < 0) {
        close(fd);
        return -ENOSYS;
    }
    void *bufs[QD];
    for (int i = 0; i < QD; i++) {
        if (posix_memalign(&bufs[i], 4096, bs))
            return -ENOMEM;
        fill_random(bufs[i], bs);
    }
    for (int pass = 0; pass < 2; pass++) {
        uint64_t t0 = cmn_mono_ns(), sub = 0, done = 0, since_sync = 0;
        unsigned inflight = 0;
        while (done < n) {
            while (inflight < QD && sub < n) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                void *b = bufs[sub % QD];
                if (pass == 0)
                    io_uring_prep_write(sqe, fd, b, (unsigned)bs, sub * bs);
                else
                    io_uring_prep_read(sqe, fd, b, (unsigned)bs, sub * bs);
                sqe->user_data = 1;
                sub++;
                inflight++;
            }
            io_uring_submit(&ring);
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&ring, &cqe) < 0)
                return -EIO;
            if (cqe->res != (int)bs)
                return cqe->res < 0 ? cqe->res : -EIO;
            io_uring_cqe_seen(&ring, cqe);
            inflight--;
            done++;
            if (pass == 0 && ++since_sync == QD) {
                since_sync = 0;
                if (fdatasync(fd) != 0)
                    return -errno;
            }
        }
        if (pass == 0 && fdatasync(fd) != 0)
            return -errno;
        double t = secs(t0);
        *(pass == 0 ? wr : rd) = (double)(n * bs) / t / 1e6;
    }
    io_uring_queue_exit(&ring);
    for (int i = 0; i < QD; i++)
        free(bufs[i]);
    close(fd);
    unlink(path);
    return 0;
}

/* ---- the store API in-process ---- */
struct sb {
    uv_loop_t loop;
    struct node_store *st;
    size_t bs;
    uint64_t n, sub, done;
    unsigned inflight;
    int err;
    struct cmn_id *ids;
    int phase; /* 0 put, 1 get */
};

static void sb_pump(struct sb *b);

static void sb_put_done(void *data, int status)
{
    struct sb *b = data;
    if (status && !b->err)
        b->err = status;
    b->inflight--;
    b->done++;
    sb_pump(b);
}

static void sb_get_done(void *data, int status, struct node_read *rd)
{
    struct sb *b = data;
    if (status && !b->err)
        b->err = status;
    if (status == 0)
        node_read_release(rd);
    b->inflight--;
    b->done++;
    sb_pump(b);
}

static void sb_pump(struct sb *b)
{
    while (!b->err && b->inflight < QD && b->sub < b->n) {
        uint64_t i = b->sub++;
        b->inflight++;
        int rc;
        if (b->phase == 0) {
            struct node_put_buf pb;
            if ((rc = node_store_put_buf_alloc(b->st, b->bs, &pb)) == 0) {
                fill_random(pb.data, b->bs);
                uint64_t h = XXH3_64bits_dispatch(pb.data, b->bs);
                b->ids[i] = cmn_id_random();
                rc = node_store_put(b->st, &b->ids[i], &pb, h, sb_put_done, b);
                if (rc)
                    node_store_put_buf_free(&pb);
            }
        } else {
            rc = node_store_get(b->st, &b->ids[i], 0, 0, sb_get_done, b);
        }
        if (rc) {
            b->err = rc;
            b->inflight--;
        }
    }
}

static void closed(void *data) { (void)data; }

static int store_bench(const char *dir, size_t bs, uint64_t total, double *wr, double *rd,
                       const char **backend)
{
    struct sb b = {.bs = bs};
    b.n = total / bs;
    b.ids = calloc(b.n, sizeof(*b.ids));
    uv_loop_init(&b.loop);
    const char *dirs[1] = {dir};
    struct node_store_options o = {.dirs = dirs, .n_dirs = 1, .cluster = "bench",
                                   .volume_size = 256ull << 20, .queue_depth = QD};
    struct cmn_err err;
    if (node_store_open(&b.loop, &o, &b.st, &err) != 0) {
        fprintf(stderr, "node_bench: store: %s\n", cmn_err_text(&err));
        return -1;
    }
    struct node_store_stats s;
    node_store_stats(b.st, &s);
    *backend = s.n_disks ? s.disks[0].io_backend : "?";
    for (b.phase = 0; b.phase < 2; b.phase++) {
        b.sub = b.done = 0;
        uint64_t t0 = cmn_mono_ns();
        sb_pump(&b);
        while (!b.err && b.done < b.n)
            uv_run(&b.loop, UV_RUN_ONCE);
        *(b.phase == 0 ? wr : rd) = (double)(b.n * bs) / secs(t0) / 1e6;
    }
    int rc = b.err;
    node_store_close(b.st, closed, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    free(b.ids);
    if (rc)
        fprintf(stderr, "node_bench: store: %s\n", lode_strerror(rc));
    return rc;
}

/* ---- a real lode-node over RPC ---- */
static pid_t start_node(const char *bin, const char *dir, const char *addr, const char *secret)
{
    char conf[4096], data[4096], sec[4096], logf[4096];
    snprintf(data, sizeof(data), "%s/node-data", dir);
    snprintf(sec, sizeof(sec), "%s/secret", dir);
    snprintf(conf, sizeof(conf), "%s/node.conf", dir);
    snprintf(logf, sizeof(logf), "%s/node.log", dir);
    FILE *f = fopen(sec, "w");
    fputs(secret, f);
    fclose(f);
    chmod(sec, 0600);
    f = fopen(conf, "w");
    /* No lode-meta: the node keeps serving while it retries registration. */
    fprintf(f, "cluster = bench\ndata-dirs = %s\nrpc-address = %s\nfailure-domain = b\n"
               "meta = 127.0.0.1:1\ncluster-secret-file = %s\nlog-file = %s\nlog-level = warn\n"
               "scrub-rate = 0\nvolume-size = 256MiB\n", data, addr, sec, logf);
    fclose(f);
    mkdir(data, 0700);
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "-c", conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int rpc_bench(struct cmn_rpc_sync *c, size_t bs, uint64_t total, double *wr, double *rd)
{
    uint64_t n = total / bs;
    uint8_t *data = malloc(bs);
    struct cmn_id *ids = calloc(n, sizeof(*ids));
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = 0;
    for (int phase = 0; phase < 2 && rc == 0; phase++) {
        uint64_t sub = 0, done = 0;
        unsigned inflight = 0;
        uint64_t t0 = cmn_mono_ns();
        while (done < n && rc == 0) {
            while (inflight < QD && sub < n) {
                uint64_t id;
                if (phase == 0) {
                    fill_random(data, bs);
                    ids[sub] = cmn_id_random();
                    Lode__ChunkPutRequest r = LODE__CHUNK_PUT_REQUEST__INIT;
                    r.chunk_id.data = ids[sub].b;
                    r.chunk_id.len = 16;
                    r.length = bs;
                    r.xxh3 = XXH3_64bits_dispatch(data, bs);
                    /* Each put's payload is sent before the next is built (writev). */
                    rc = cmn_rpc_sync_send_payload(c, CMN_RPC_CHUNK_PUT, 0, &r.base, data, bs, &id);
                } else {
                    Lode__ChunkGetRequest r = LODE__CHUNK_GET_REQUEST__INIT;
                    r.chunk_id.data = ids[sub].b;
                    r.chunk_id.len = 16;
                    rc = cmn_rpc_sync_send(c, CMN_RPC_CHUNK_GET, 0, &r.base, &id);
                }
                if (rc)
                    break;
                sub++;
                inflight++;
            }
            if (rc)
                break;
            if ((rc = cmn_rpc_sync_recv(c, 30000, &res)) != 0) {
                fprintf(stderr, "node_bench: rpc: %s\n", res.message);
                break;
            }
            if (phase == 1 && res.payload.len != bs) {
                rc = -EIO;
                break;
            }
            inflight--;
            done++;
        }
        *(phase == 0 ? wr : rd) = (double)(n * bs) / secs(t0) / 1e6;
    }
    cmn_rpc_result_free(&res);
    free(ids);
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *node_bin = NULL;
    uint64_t total = 512ull << 20;
    size_t sizes[8] = {1 << 20, 4096};
    int nsizes = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
            cmn_parse_size(argv[++i], &total);
        else if (!strcmp(argv[i], "--node") && i + 1 < argc)
            node_bin = argv[++i];
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *t = strtok(argv[++i], ","); t && nsizes < 8; t = strtok(NULL, ","))
                sizes[nsizes++] = strtoul(t, NULL, 10);
        } else {
            fprintf(stderr, "usage: node_bench --dir DIR [--bytes N] [--sizes a,b] [--node PATH]\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "node_bench: --dir is required (a directory on the disk to measure)\n");
        return 2;
    }
    cmn_log_init("node_bench", CMN_LOG_WARN);
    struct utsname u;
    uname(&u);
    printf("### lode-node (%s, %s, %ld cores), %.0f MiB per measurement, queue depth %d\n\n",
           u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN), total / 1048576.0, QD);
    printf("| chunk size | path | PUT MB/s | GET MB/s | PUT vs raw | GET vs raw |\n");
    printf("|---|---|---|---|---|---|\n");

    pid_t node = 0;
    struct cmn_rpc_sync *conn = NULL;
    const char *secret = "node-bench-secret-0123456789";
    char addr[64] = "";
    if (node_bin) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
        char ndir[4096];
        snprintf(ndir, sizeof(ndir), "%s/rpc", dir);
        mkdir(ndir, 0700);
        node = start_node(node_bin, ndir, addr, secret);
        struct cmn_err err;
        for (int i = 0; i < 100; i++) {
            if (cmn_rpc_sync_connect(addr, secret, strlen(secret), 1000, &conn, &err) == 0)
                break;
            usleep(100000);
        }
        if (!conn)
            fprintf(stderr, "node_bench: lode-node did not come up at %s (see %s/node.log)\n",
                    addr, ndir);
    }
    int status = 0;
    for (int s = 0; s < nsizes; s++) {
        size_t bs = sizes[s];
        uint64_t t = bs < 65536 ? total / 8 : total; /* small chunks: fewer bytes, same time */
        double rw = 0, rr = 0, sw = 0, sr = 0, pw = 0, pr = 0;
        int direct = 0;
        const char *backend = "?";
        char sdir[4096];
        snprintf(sdir, sizeof(sdir), "%s/store-%zu", dir, bs);
        mkdir(sdir, 0700);
        if (raw_uring(dir, bs, t, &rw, &rr, &direct) != 0 ||
            store_bench(sdir, bs, t, &sw, &sr, &backend) != 0) {
            status = 1;
            continue;
        }
        printf("| %zu | raw io_uring%s | %.0f | %.0f | 1.00 | 1.00 |\n", bs,
               direct ? " O_DIRECT" : " (buffered: no O_DIRECT here)", rw, rr);
        printf("| %zu | store API (%s) | %.0f | %.0f | %.2f | %.2f |\n", bs, backend, sw, sr,
               sw / rw, sr / rr);
        if (conn && rpc_bench(conn, bs, t, &pw, &pr) == 0)
            printf("| %zu | lode-node over RPC | %.0f | %.0f | %.2f | %.2f |\n", bs, pw, pr,
                   pw / rw, pr / rr);
    }
    if (conn)
        cmn_rpc_sync_close(conn);
    if (node > 0) {
        kill(node, SIGTERM);
        waitpid(node, NULL, 0);
    }
    return status;
}
