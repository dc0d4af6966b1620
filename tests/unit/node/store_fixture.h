/* Helpers for the chunk store tests: a private loop, a temporary directory under
 * $TEST_TMPDIR (removed at the end), synchronous wrappers around the asynchronous store
 * calls, and a reader of volume files that uses only the format (node/store_layout.h).
 *
 * LODE_TEST_NODE_IO=threads|uring forces a backend (default: what the probe picks, which is
 * threads where io_uring or O_DIRECT is refused). Header-only: one test program per file. */
#ifndef LODE_TESTS_NODE_STORE_FIXTURE_H
#define LODE_TESTS_NODE_STORE_FIXTURE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <xxh_x86dispatch.h>

#include "common/log.h"
#include "node/store.h"
#include "node/store_layout.h"
#include "tests/tap.h"

struct fx {
    uv_loop_t loop;
    char root[PATH_MAX];
};

static int fx_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

__attribute__((unused)) static void fx_init(struct fx *f, const char *name)
{
    const char *tmp = getenv("TEST_TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    mkdir(tmp, 0755);
    snprintf(f->root, sizeof(f->root), "%s/%s.XXXXXX", tmp, name);
    if (!mkdtemp(f->root))
        tap_bail("mkdtemp %s: %s", f->root, strerror(errno));
    if (uv_loop_init(&f->loop) != 0)
        tap_bail("uv_loop_init");
    cmn_log_init(name, CMN_LOG_WARN);
}

__attribute__((unused)) static void fx_done(struct fx *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&f->loop) != 0)
        diag("loop still has handles at the end");
    nftw(f->root, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A path under the test's root (static buffer rotation: up to 8 live at once). */
__attribute__((unused)) static const char *fx_path(struct fx *f, const char *name)
{
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", f->root, name);
    return b;
}

__attribute__((unused)) static enum node_io_kind fx_io_kind(void)
{
    const char *e = getenv("LODE_TEST_NODE_IO");
    if (e && !strcmp(e, "threads"))
        return NODE_IO_THREADS;
    if (e && !strcmp(e, "uring"))
        return NODE_IO_URING;
    return NODE_IO_AUTO;
}

__attribute__((unused)) static struct node_store_options fx_opts(const char *const *dirs,
                                                                 size_t n)
{
    struct node_store_options o;
    memset(&o, 0, sizeof(o));
    o.dirs = dirs;
    o.n_dirs = n;
    o.cluster = "test-cluster";
    o.volume_size = 4u << 20;
    o.max_chunk_size = 1u << 20;
    o.io_kind = fx_io_kind();
    o.queue_depth = 16;
    return o;
}

static void fx_closed(void *data)
{
    *(int *)data = 1;
}

__attribute__((unused)) static void fx_close(struct fx *f, struct node_store *st)
{
    int done = 0;
    node_store_close(st, fx_closed, &done);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

struct fx_wait {
    int done;
    int status;
    struct node_read *rd;
};

static void fx_status_cb(void *data, int status)
{
    struct fx_wait *w = data;
    w->done = 1;
    w->status = status;
}

static void fx_get_cb(void *data, int status, struct node_read *rd)
{
    struct fx_wait *w = data;
    w->done = 1;
    w->status = status;
    w->rd = rd;
}

static void fx_wait_for(struct fx *f, struct fx_wait *w)
{
    while (!w->done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Deterministic bytes for chunk `seed` (xorshift). */
__attribute__((unused)) static void fx_fill(uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

__attribute__((unused)) static struct cmn_id fx_id(uint64_t n)
{
    struct cmn_id id;
    fx_fill(id.b, sizeof(id.b), n ^ 0x5555);
    return id;
}

/* Starts a put of `len` bytes of fx_fill(seed); returns the synchronous status. */
__attribute__((unused)) static int fx_put_start(struct node_store *st, const struct cmn_id *id,
                                                size_t len, uint64_t seed, struct fx_wait *w)
{
    struct node_put_buf b;
    int rc = node_store_put_buf_alloc(st, len, &b);
    if (rc)
        return rc;
    fx_fill(b.data, len, seed);
    uint64_t hash = XXH3_64bits_dispatch(b.data, len);
    memset(w, 0, sizeof(*w));
    rc = node_store_put(st, id, &b, hash, fx_status_cb, w);
    if (rc)
        node_store_put_buf_free(&b);
    return rc;
}

__attribute__((unused)) static int fx_put(struct fx *f, struct node_store *st,
                                          const struct cmn_id *id, size_t len, uint64_t seed)
{
    struct fx_wait w;
    int rc = fx_put_start(st, id, len, seed, &w);
    if (rc)
        return rc;
    fx_wait_for(f, &w);
    return w.status;
}

/* Reads [off, off + len) and compares it with fx_fill(seed) of a chunk of chunk_len bytes.
 * Returns the store's status, or 1 when the bytes differ. */
__attribute__((unused)) static int fx_check(struct fx *f, struct node_store *st,
                                            const struct cmn_id *id, uint64_t off, uint64_t len,
                                            size_t chunk_len, uint64_t seed)
{
    struct fx_wait w;
    memset(&w, 0, sizeof(w));
    int rc = node_store_get(st, id, off, len, fx_get_cb, &w);
    if (rc)
        return rc;
    fx_wait_for(f, &w);
    if (w.status)
        return w.status;
    uint8_t *want = malloc(chunk_len);
    fx_fill(want, chunk_len, seed);
    uint64_t n = len ? len : chunk_len - off;
    int diff = w.rd->len != n || w.rd->chunk_length != chunk_len ||
               w.rd->chunk_hash != XXH3_64bits_dispatch(want, chunk_len) ||
               memcmp(w.rd->data, want + off, n) != 0;
    free(want);
    node_read_release(w.rd);
    return diff;
}

__attribute__((unused)) static int fx_delete(struct fx *f, struct node_store *st,
                                             const struct cmn_id *id)
{
    struct fx_wait w;
    memset(&w, 0, sizeof(w));
    int rc = node_store_delete(st, id, fx_status_cb, &w);
    if (rc)
        return rc;
    fx_wait_for(f, &w);
    return w.status;
}

__attribute__((unused)) static int fx_compact(struct fx *f, struct node_store *st)
{
    struct fx_wait w;
    memset(&w, 0, sizeof(w));
    int rc = node_store_compact(st, fx_status_cb, &w);
    if (rc)
        return rc;
    fx_wait_for(f, &w);
    return w.status;
}

/* Runs the loop for about `ms` milliseconds. */
__attribute__((unused)) static void fx_run_ms(struct fx *f, uint64_t ms)
{
    uint64_t end = uv_now(&f->loop) + ms;
    while (uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(2000);
        uv_update_time(&f->loop);
    }
}

/* ---- reading the format directly ---- */

__attribute__((unused)) static uint32_t fx_block_size(const char *dir)
{
    char p[PATH_MAX];
    uint8_t img[NODE_SB_SIZE];
    struct node_superblock sb;
    snprintf(p, sizeof(p), "%s/superblock", dir);
    int fd = open(p, O_RDONLY);
    ssize_t n = fd >= 0 ? pread(fd, img, sizeof(img), 0) : -1;
    if (fd >= 0)
        close(fd);
    if (n != NODE_SB_SIZE || node_sb_decode(img, sizeof(img), &sb, NULL) != 0)
        return 0;
    return sb.block_size;
}

/* Sorted ids of DIR/volumes/NNNNNNNN.vol; returns the count. */
__attribute__((unused)) static size_t fx_volumes(const char *dir, uint32_t *ids, size_t max)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/volumes", dir);
    DIR *d = opendir(p);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strlen(de->d_name) == 12 && !strcmp(de->d_name + 8, ".vol") && n < max)
            ids[n++] = (uint32_t)strtoul(de->d_name, NULL, 10);
    }
    if (d)
        closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint32_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    return n;
}

__attribute__((unused)) static const char *fx_vol_path(const char *dir, uint32_t id)
{
    static char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/volumes/%08u.vol", dir, id);
    return p;
}

struct fx_rec {
    uint64_t off, size;
    struct node_record_header rh;
};

/* Walks the chain of valid records of a volume file (stops at the first invalid header or
 * after a SEAL, which is included). Returns the count, or -1. */
__attribute__((unused)) static int fx_records(const char *dir, uint32_t id, uint32_t bs,
                                              struct fx_rec *out, int max, uint64_t *salt_out)
{
    int fd = open(fx_vol_path(dir, id), O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat sb;
    fstat(fd, &sb);
    uint8_t *img = malloc((size_t)sb.st_size);
    ssize_t got = pread(fd, img, (size_t)sb.st_size, 0);
    close(fd);
    struct node_volume_header vh;
    if (got != sb.st_size || node_vh_decode(img, &vh, NULL) != 0) {
        free(img);
        return -1;
    }
    if (salt_out)
        *salt_out = vh.salt;
    int n = 0;
    uint64_t off = bs;
    while (off + bs <= (uint64_t)sb.st_size && n < max) {
        struct fx_rec r = {.off = off};
        bool degraded;
        if (node_rh_decode_head(img + off, vh.salt, &r.rh, &degraded) != NODE_RH_OK)
            break;
        r.size = r.rh.type == NODE_REC_CHUNK ? node_record_size(r.rh.length, bs) : bs;
        out[n++] = r;
        if (r.rh.type == NODE_REC_SEAL)
            break;
        off += r.size;
    }
    free(img);
    return n;
}

/* Overwrites `len` bytes at `off` of a volume file (the store must be closed). */
__attribute__((unused)) static int fx_poke(const char *dir, uint32_t id, uint64_t off,
                                           const void *buf, size_t len)
{
    int fd = open(fx_vol_path(dir, id), O_RDWR);
    if (fd < 0)
        return -errno;
    ssize_t n = pwrite(fd, buf, len, (off_t)off);
    fsync(fd);
    close(fd);
    return n == (ssize_t)len ? 0 : -EIO;
}

__attribute__((unused)) static int fx_flip(const char *dir, uint32_t id, uint64_t off)
{
    int fd = open(fx_vol_path(dir, id), O_RDWR);
    if (fd < 0)
        return -errno;
    uint8_t b;
    int rc = pread(fd, &b, 1, (off_t)off) == 1 ? 0 : -EIO;
    b ^= 0x20;
    if (!rc)
        rc = pwrite(fd, &b, 1, (off_t)off) == 1 ? 0 : -EIO;
    fsync(fd);
    close(fd);
    return rc;
}

#endif
