/* A data directory on a small file system that fills up: lode-node must refuse further puts
 * with LODE_ENOSPACE ("insufficient storage") and a clear message, keep every chunk stored
 * before intact, go on answering PING, GET and NODE_HEALTH (which says the disk is full), and
 * still accept deletes (the tail of each volume is reserved for tombstones).
 *
 * The file system is a loop-mounted 64 MiB ext4 image, or else a 48 MiB tmpfs, under
 * $TEST_TMPDIR; without the right to mount either, the test is skipped. It is unmounted on
 * every exit path the test controls (atexit, and SIGTERM / SIGINT / SIGHUP).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/id.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 10000
#define CHUNK (1u << 20)
#define MAX_CHUNKS 200             /* 200 MiB: far more than either file system holds */

static char *work_dir;             /* unique directory under $TEST_TMPDIR */
static char *mnt;                  /* the mount point, while mounted */
static const char *fs_kind;

struct stored {
    uint8_t id[16];
    uint64_t seed;
    uint32_t len;
    bool deleted;
};

static struct stored chunks[MAX_CHUNKS + 64];
static unsigned n_chunks;

/* Runs a command quietly; returns its exit status (or -1). */
static int run_cmd(const char *cmd)
{
    char *full = NULL;
    if (asprintf(&full, "%s >/dev/null 2>&1", cmd) < 0)
        return -1;
    int st = system(full);
    free(full);
    return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

static void unmount(void)
{
    if (!mnt)
        return;
    char *cmd = NULL;
    if (asprintf(&cmd, "umount '%s'", mnt) >= 0) {
        if (run_cmd(cmd) != 0) {
            /* Something still holds it (a node that did not stop): detach it lazily. */
            free(cmd);
            cmd = NULL;
            if (asprintf(&cmd, "umount -l '%s'", mnt) >= 0 && run_cmd(cmd) != 0)
                printf("# could not unmount %s\n", mnt);
        }
    }
    free(cmd);
    free(mnt);
    mnt = NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    exit(2); /* runs the atexit handlers: the node is stopped, then the fs unmounted */
}

/* Mounts a small file system at work_dir/mnt. Returns NULL and a reason when impossible. */
static const char *mount_small(char *why, size_t why_size)
{
    char *m = NULL, *img = NULL, *cmd = NULL;
    if (asprintf(&m, "%s/mnt", work_dir) < 0 || asprintf(&img, "%s/fs.img", work_dir) < 0)
        tap_bail("out of memory");
    if (mkdir(m, 0755) != 0)
        tap_bail("mkdir %s: %s", m, strerror(errno));
    const char *kind = NULL;
    if (geteuid() != 0) {
        snprintf(why, why_size, "not root: cannot mount a small file system");
    } else {
        if (asprintf(&cmd, "truncate -s 64M '%s' && mkfs.ext4 -q -F '%s' && mount -o loop '%s' '%s'",
                     img, img, img, m) >= 0 &&
            run_cmd(cmd) == 0) {
            kind = "64 MiB ext4 on a loop device";
        } else {
            free(cmd);
            cmd = NULL;
            if (asprintf(&cmd, "mount -t tmpfs -o size=48m tmpfs '%s'", m) >= 0 && run_cmd(cmd) == 0)
                kind = "48 MiB tmpfs";
            else
                snprintf(why, why_size, "cannot mount a loop ext4 image nor a tmpfs here");
        }
        unlink(img);       /* a mounted loop image stays alive until the unmount */
    }
    free(cmd);
    free(img);
    if (kind) {
        mnt = m;
        atexit(unmount);
    } else {
        free(m);
    }
    return kind;
}

static int put_one(struct cmn_rpc_sync *c, struct stored *s, uint8_t *buf,
                   struct cmn_rpc_result *res)
{
    cmn_random_bytes(s->id, 16);
    cmn_random_bytes(&s->seed, sizeof(s->seed));
    tl_fill(buf, s->len, s->seed);
    return tl_chunk_put(c, s->id, buf, s->len, T_MS, res);
}

static bool read_intact(struct cmn_rpc_sync *c, const struct stored *s, uint8_t *want,
                        struct cmn_rpc_result *res)
{
    tl_fill(want, s->len, s->seed);
    int rc = tl_chunk_get(c, s->id, 16, 0, 0, T_MS, res, NULL);
    return rc == 0 && res->payload.len == s->len && memcmp(res->payload.data, want, s->len) == 0;
}

static unsigned count_intact(struct cmn_rpc_sync *c, uint8_t *buf, unsigned *expected)
{
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    unsigned good = 0, bad_reported = 0;
    *expected = 0;
    for (unsigned i = 0; i < n_chunks; i++) {
        if (chunks[i].deleted)
            continue;
        (*expected)++;
        if (read_intact(c, &chunks[i], buf, &res))
            good++;
        else if (bad_reported++ < 5)
            diag("chunk %u: %s (%s), %zu bytes", i, lode_errname(res.status), res.message,
                 res.payload.len);
    }
    cmn_rpc_result_free(&res);
    return good;
}

static void health(struct cmn_rpc_sync *c, bool want_full, const char *when)
{
    Lode__NodeHealthResponse *h = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = tl_node_health(c, T_MS, &h, &err);
    is_int(rc, 0, "%s: NODE_HEALTH answers%s", when, tl_why(err.msg));
    if (rc != 0)
        return;
    bool full = h->n_disks == 1 && h->disks[0]->full;
    if (want_full)
        ok(full, "%s: NODE_HEALTH says the disk is full", when);
    else
        ok(h->n_disks == 1 && !full, "%s: NODE_HEALTH says the disk is not full", when);
    ok(h->capacity_bytes > 0 && h->used_bytes <= h->capacity_bytes,
       "%s: capacity %" PRIu64 ", used %" PRIu64, when, h->capacity_bytes, h->used_bytes);
    lode__node_health_response__free_unpacked(h, NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char *tmpl = NULL;
    if (asprintf(&tmpl, "%s/nodefull.XXXXXX", tl_tmpdir()) < 0 || !mkdtemp(tmpl))
        tap_bail("mkdtemp under %s: %s", tl_tmpdir(), strerror(errno));
    work_dir = tmpl;

    char why[200];
    fs_kind = mount_small(why, sizeof(why));
    if (!fs_kind) {
        tl_rmtree(work_dir);
        free(work_dir);
        tap_skip_all(why);
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    struct statvfs sv;
    statvfs(mnt, &sv);
    uint64_t fs_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    diag("data directory on a %s (%" PRIu64 " bytes, %" PRIu64 " free)", fs_kind, fs_bytes,
         (uint64_t)sv.f_bavail * sv.f_frsize);

    struct cmn_err err;
    cmn_err_clear(&err);
    struct tl_cluster *meta = NULL;
    struct tl_cluster_options mo = TL_CLUSTER_OPTIONS_DEFAULT;
    mo.replicas = 1;
    mo.name = "nodefull-meta";
    if (tl_cluster_start(&mo, &meta, &err) != 0)
        tap_bail("start lode-meta: %s", cmn_err_text(&err));

    char *data_dir = NULL;
    if (asprintf(&data_dir, "%s/data", mnt) < 0 || mkdir(data_dir, 0755) != 0)
        tap_bail("mkdir %s/data: %s", mnt, strerror(errno));
    struct tl_node *node = NULL;
    struct tl_node_options o = TL_NODE_OPTIONS_DEFAULT;
    o.name = "nodefull";
    o.meta = meta;
    o.data_dirs = data_dir;
    o.volume_size = "4MiB";
    /* The node is started after the mount's atexit handler is registered, so at exit it is
     * stopped first and the file system is unmounted after. */
    if (tl_node_start(&o, &node, &err) != 0)
        tap_bail("start lode-node: %s", cmn_err_text(&err));

    struct cmn_rpc_sync *c = NULL;
    if (tl_node_connect(node, T_MS, &c, &err) != 0)
        tap_bail("connect: %s", cmn_err_text(&err));
    health(c, false, "empty");

    /* ---- fill it */
    uint8_t *buf = malloc(CHUNK);
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int fail_rc = 0;
    char fail_msg[512] = "";
    while (n_chunks < MAX_CHUNKS) {
        struct stored *s = &chunks[n_chunks];
        s->len = CHUNK - (uint32_t)(n_chunks % 3) * 4096; /* not all the same size */
        int rc = put_one(c, s, buf, &res);
        if (rc != 0) {
            fail_rc = rc;
            snprintf(fail_msg, sizeof(fail_msg), "%s", res.message);
            break;
        }
        n_chunks++;
    }
    diag("%u chunks stored before the first refusal: %s (%s)", n_chunks, lode_errname(fail_rc),
         fail_msg);
    ok(n_chunks >= 8, "several chunks fit before the disk is full (%u)", n_chunks);
    is_int(fail_rc, LODE_ENOSPACE, "the put that does not fit: LODE_ENOSPACE");
    ok(strcasestr(fail_msg, "space") || strcasestr(fail_msg, "storage") ||
           strcasestr(fail_msg, "full"),
       "its message says why: '%s'", fail_msg);
    uint8_t failed_id[16];
    memcpy(failed_id, chunks[n_chunks].id, 16);

    /* A smaller put may still fit in the volume's remaining space; keep going with small
     * chunks until those are refused too, so the disk is really full. */
    unsigned small_ok = 0;
    int small_rc = 0;
    while (n_chunks < MAX_CHUNKS + 63) {
        struct stored *s = &chunks[n_chunks];
        s->len = 4096;
        small_rc = put_one(c, s, buf, &res);
        if (small_rc != 0)
            break;
        n_chunks++;
        small_ok++;
    }
    is_int(small_rc, LODE_ENOSPACE, "small puts are refused too once full (%u fitted)",
           small_ok);

    /* ---- the node still serves */
    Lode__ChunkInfo *ci = NULL;
    int rc = tl_chunk_stat(c, failed_id, 16, T_MS, &res, &ci);
    is_int(rc, LODE_ENOCHUNK, "the refused chunk was not stored");
    if (ci)
        lode__chunk_info__free_unpacked(ci, NULL);
    is_int(tl_node_ping(node, T_MS), 0, "PING answers on a full disk");
    unsigned expected = 0, good = count_intact(c, buf, &expected);
    is_int(good, expected, "every chunk stored before reads back intact (%u)", expected);
    health(c, true, "full");
    rc = tl_chunk_put(c, failed_id, buf, 4096, T_MS, &res);
    is_int(rc, LODE_ENOSPACE, "a put is still refused a moment later");

    /* ---- deletes work on a full disk */
    unsigned deleted = 0, del_fail = 0;
    for (unsigned i = 0; i < n_chunks; i += 2) {
        rc = tl_chunk_delete(c, chunks[i].id, 16, T_MS, &res);
        if (rc == 0) {
            chunks[i].deleted = true;
            deleted++;
        } else if (del_fail++ < 3) {
            diag("DELETE %u: %s (%s)", i, lode_errname(rc), res.message);
        }
    }
    is_int(del_fail, 0, "deleting half the chunks works on a full disk (%u)", deleted);
    unsigned gone = 0;
    for (unsigned i = 0; i < n_chunks; i++)
        if (chunks[i].deleted &&
            tl_chunk_get(c, chunks[i].id, 16, 0, 0, T_MS, &res, NULL) == LODE_ENOCHUNK)
            gone++;
    is_int(gone, deleted, "deleted chunks are gone");
    good = count_intact(c, buf, &expected);
    is_int(good, expected, "the others still read back intact (%u)", expected);

    /* After a restart the same holds (nothing was damaged by running out of space). */
    cmn_rpc_sync_close(c);
    c = NULL;
    is_int(tl_node_kill(node, SIGTERM), 0, "stop the node");
    rc = tl_node_run(node, &err);
    is_int(rc, 0, "the node restarts on the full file system%s", tl_why(rc ? err.msg : NULL));
    if (rc == 0 && tl_node_connect(node, T_MS, &c, &err) == 0) {
        good = count_intact(c, buf, &expected);
        is_int(good, expected, "after the restart every remaining chunk is intact (%u)",
               expected);
        gone = 0;
        for (unsigned i = 0; i < n_chunks; i++)
            if (chunks[i].deleted &&
                tl_chunk_get(c, chunks[i].id, 16, 0, 0, T_MS, &res, NULL) == LODE_ENOCHUNK)
                gone++;
        is_int(gone, deleted, "and the deleted ones stay deleted");
        cmn_rpc_sync_close(c);
    }
    cmn_rpc_result_free(&res);
    free(buf);

    is_int(tl_node_crash_count(node), 0, "the node never crashed");
    int failed = tap_done();
    tl_node_destroy(node, failed != 0);
    tl_cluster_destroy(meta, failed != 0);
    unmount();
    if (!failed)
        tl_rmtree(work_dir);
    else
        printf("# kept %s\n", work_dir);
    free(data_dir);
    free(work_dir);
    return failed;
}
