/* Data directories: creation, the LOCK, the I/O probe, and the superblock that says which
 * node and cluster a disk belongs to (docs/disk-format.md, "A data directory").
 *
 * The superblock is metadata written once, synchronously, while the store opens: it goes
 * through plain write/fsync/rename, not node/io.h, whose requests serve volume files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/clock.h"
#include "node/store_int.h"

#define SB_NAME "superblock"
#define SB_TMP_NAME "superblock.tmp"

static int errno_code(void)
{
    return errno ? -errno : -EIO;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Takes DIR/LOCK. Another holder -> -EBUSY naming the pid it wrote there. */
static int lock_dir(struct store_disk *d, struct cmn_err *err)
{
    d->lock_fd = openat(d->dir_fd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d->lock_fd < 0)
        return cmn_err_set(err, errno_code(), "%s/LOCK: %s", d->path, strerror(errno));
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(d->lock_fd, pid, sizeof(pid) - 1, 0);
        if (n > 0) {
            pid[n] = 0;
            pid[strcspn(pid, "\r\n")] = 0;
        }
        if (e == EWOULDBLOCK)
            return cmn_err_set(err, -EBUSY,
                               "%s is already in use (locked by pid %s?): one lode-node per "
                               "data directory",
                               d->path, pid[0] ? pid : "unknown");
        return cmn_err_set(err, -e, "%s/LOCK: flock: %s", d->path, strerror(e));
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(d->lock_fd, 0) == 0)
        (void)!pwrite(d->lock_fd, pid, (size_t)n, 0);
    return 0;
}

/* A directory without a superblock is formatted only when it holds nothing of value. */
static int check_empty(struct store_disk *d, struct cmn_err *err)
{
    int fd = openat(d->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cmn_err_set(err, errno_code(), "%s: %s", d->path, strerror(errno));
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return cmn_err_set(err, errno_code(), "%s: %s", d->path, strerror(errno));
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(dir)) != NULL) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "LOCK") ||
            !strcmp(n, "lost+found"))
            continue;
        if (!strcmp(n, SB_TMP_NAME) || !strncmp(n, ".io-probe-", 10)) {
            /* a format or an I/O probe (node_io_probe_dir) interrupted by a crash: we hold
             * the lock, so nobody else is using it */
            unlinkat(d->dir_fd, n, 0);
            continue;
        }
        rc = cmn_err_set(err, LODE_EWRONGDISK,
                         "%s has no superblock but is not empty (found '%s'): not a lode-node "
                         "data directory, refusing to format it",
                         d->path, n);
        break;
    }
    closedir(dir);
    return rc;
}

static int read_superblock(struct store_disk *d, struct cmn_err *err)
{
    int fd = openat(d->dir_fd, SB_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            d->formatted = false;
            return check_empty(d, err);
        }
        return cmn_err_set(err, errno_code(), "%s/%s: %s", d->path, SB_NAME, strerror(errno));
    }
    uint8_t buf[NODE_SB_SIZE + 1];
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    int e = errno;
    close(fd);
    if (n < 0)
        return cmn_err_set(err, -e, "%s/%s: %s", d->path, SB_NAME, strerror(e));
    int rc = node_sb_decode(buf, (size_t)n, &d->sb, err);
    if (rc)
        return cmn_err_wrap(err, "%s/%s", d->path, SB_NAME);
    d->formatted = true;
    return 0;
}

static int format_dir(struct node_store *st, struct store_disk *d, struct cmn_err *err)
{
    memset(&d->sb, 0, sizeof(d->sb));
    d->sb.block_size = d->probe.block_size;
    memcpy(d->sb.node_uuid, st->uuid.b, 16);
    struct cmn_id disk_uuid = cmn_id_random();
    memcpy(d->sb.disk_uuid, disk_uuid.b, 16);
    snprintf(d->sb.cluster, sizeof(d->sb.cluster), "%s", st->cluster);
    d->sb.created_ms = (uint64_t)cmn_now_ms();
    d->sb.volume_size = st->volume_size;
    uint8_t img[NODE_SB_SIZE];
    node_sb_encode(&d->sb, img);

    /* temp name, fsync, rename, fsync the directory: a crash leaves either no superblock
     * (and a temp file the next start removes) or a complete one. */
    int fd = openat(d->dir_fd, SB_TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return cmn_err_set(err, errno_code(), "%s/%s: %s", d->path, SB_TMP_NAME,
                           strerror(errno));
    int rc = write_all(fd, img, sizeof(img));
    if (!rc && fsync(fd) != 0)
        rc = errno_code();
    close(fd);
    if (!rc && renameat(d->dir_fd, SB_TMP_NAME, d->dir_fd, SB_NAME) != 0)
        rc = errno_code();
    if (!rc && fsync(d->dir_fd) != 0)
        rc = errno_code();
    if (rc) {
        unlinkat(d->dir_fd, SB_TMP_NAME, 0);
        return cmn_err_set(err, rc == -ENOSPC ? LODE_ENOSPACE : rc,
                           "%s: writing the superblock: %s", d->path, strerror(-rc));
    }
    char hex[CMN_ID_HEX_SIZE];
    cmn_id_to_hex(&disk_uuid, hex);
    LOG_INFO("store", "%s: formatted (disk %s, block size %u)", d->path, hex, d->sb.block_size);
    return 0;
}

static int verify_dir(struct node_store *st, struct store_disk *d, const char *ref,
                      struct cmn_err *err)
{
    char want[CMN_ID_HEX_SIZE], got[CMN_ID_HEX_SIZE];
    if (strcmp(d->sb.cluster, st->cluster) != 0)
        return cmn_err_set(err, LODE_EWRONGDISK,
                           "%s belongs to cluster '%s', not to '%s' (a disk from another "
                           "cluster?)",
                           d->path, d->sb.cluster, st->cluster);
    if (memcmp(d->sb.node_uuid, st->uuid.b, 16) != 0) {
        struct cmn_id a;
        memcpy(a.b, d->sb.node_uuid, 16);
        cmn_id_to_hex(&a, got);
        cmn_id_to_hex(&st->uuid, want);
        return cmn_err_set(err, LODE_EWRONGDISK,
                           "%s belongs to node %s, but %s is node %s (a disk from another "
                           "node?)",
                           d->path, got, ref, want);
    }
    return 0;
}

/* Opens (creating) DIR, takes the lock, probes the I/O backend, reads the superblock. */
static int open_dir(struct node_store *st, struct store_disk *d, const char *path,
                    struct cmn_err *err)
{
    d->path = strdup(path);
    if (!d->path)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        return cmn_err_set(err, errno_code(), "data directory %s: %s", path, strerror(errno));
    d->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->dir_fd < 0)
        return cmn_err_set(err, errno_code(), "data directory %s: %s", path, strerror(errno));
    int rc = lock_dir(d, err);
    if (rc)
        return rc;
    rc = node_io_probe_dir(path, st->io_kind, &d->probe, err);
    if (rc)
        return cmn_err_wrap(err, "data directory %s", path);
    return read_superblock(d, err);
}

static int statfs_dir(struct store_disk *d, struct cmn_err *err)
{
    struct statvfs sv;
    struct stat sb;
    if (fstatvfs(d->dir_fd, &sv) != 0)
        return cmn_err_set(err, errno_code(), "%s: statvfs: %s", d->path, strerror(errno));
    if (fstat(d->dir_fd, &sb) != 0)
        return cmn_err_set(err, errno_code(), "%s: stat: %s", d->path, strerror(errno));
    d->fs_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    d->fs_dev = sb.st_dev;
    return 0;
}

/* Capacity of every directory. Directories on one file system (same st_dev) share its size
 * evenly: counting it once per directory would report space that does not exist. */
static void compute_capacity(struct node_store *st)
{
    for (size_t i = 0; i < st->n_disks; i++) {
        struct store_disk *d = &st->disks[i];
        uint64_t sharing = 0;
        for (size_t j = 0; j < st->n_disks; j++)
            sharing += st->disks[j].fs_dev == d->fs_dev;
        uint64_t raw = d->fs_bytes / (sharing ? sharing : 1);
        if (st->capacity_limit && st->capacity_limit < raw)
            raw = st->capacity_limit;
        /* One volume is held back for deletes and compaction (store_disk_space_for), and the
         * tail of every volume for tombstones and its seal. */
        uint64_t n = raw / d->volume_size;
        d->capacity = n > 1 ? (n - 1) * (d->volume_size - STORE_TAIL) : 0;
        if (sharing > 1)
            LOG_INFO("store", "%s shares its file system with %llu other data "
                     "director%s: capacity counts 1/%llu of it", d->path,
                     (unsigned long long)(sharing - 1), sharing == 2 ? "y" : "ies",
                     (unsigned long long)sharing);
    }
}

/* After the superblock: block size, O_DIRECT, the volumes directory, the size checks. */
static int finish_dir(struct node_store *st, struct store_disk *d, struct cmn_err *err)
{
    memcpy(d->disk_uuid, d->sb.disk_uuid, 16);
    d->bs = d->sb.block_size;
    d->o_direct = d->probe.o_direct;
    if (d->probe.block_size > d->bs && d->o_direct) {
        /* The disk now wants a coarser O_DIRECT alignment than its records have (moved to
         * another device): buffered I/O has no alignment rule. */
        d->o_direct = 0;
        snprintf(d->probe.note, sizeof(d->probe.note),
                 "records are %u-byte aligned but O_DIRECT needs %u here: buffered I/O",
                 d->bs, d->probe.block_size);
    }
    d->volume_size = st->volume_size;
    if (d->volume_size % d->bs)
        return cmn_err_set(err, LODE_ECONFIG, "%s: volume size %llu is not a multiple of the "
                           "block size %u", d->path, (unsigned long long)d->volume_size, d->bs);
    uint64_t need = d->bs + node_record_size(st->max_chunk, d->bs) + STORE_TAIL;
    if (d->volume_size < need)
        return cmn_err_set(err, LODE_ECONFIG,
                           "%s: volume size %llu cannot hold a chunk of the maximum size "
                           "%llu (needs at least %llu)",
                           d->path, (unsigned long long)d->volume_size,
                           (unsigned long long)st->max_chunk, (unsigned long long)need);
    if (mkdirat(d->dir_fd, "volumes", 0750) == 0) {
        if (fsync(d->dir_fd) != 0)
            return cmn_err_set(err, errno_code(), "%s: fsync: %s", d->path, strerror(errno));
    } else if (errno != EEXIST) {
        return cmn_err_set(err, errno_code(), "%s/volumes: %s", d->path, strerror(errno));
    }
    d->vol_dir_fd = openat(d->dir_fd, "volumes", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->vol_dir_fd < 0)
        return cmn_err_set(err, errno_code(), "%s/volumes: %s", d->path, strerror(errno));
    if (d->bs > st->max_bs)
        st->max_bs = d->bs;
    return statfs_dir(d, err);
}

int store_dirs_open(struct node_store *st, const char *const *dirs, size_t n, struct cmn_err *err)
{
    int rc;
    for (size_t i = 0; i < n; i++) {
        struct store_disk *d = &st->disks[i];
        d->st = st;
        d->index = (uint16_t)i;
        d->dir_fd = d->vol_dir_fd = d->lock_fd = -1;
        store_list_init(&d->waiters);
        store_list_init(&d->sync_delayed);
        st->n_disks = i + 1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(dirs[j], dirs[i]))
                return cmn_err_set(err, LODE_ECONFIG, "data directory %s is listed twice",
                                   dirs[i]);
        rc = open_dir(st, d, dirs[i], err);
        if (rc)
            return rc;
    }
    /* The node's uuid: the first formatted directory's (in the configured order), else a new
     * one. Every other formatted directory must carry the same. */
    bool have = st->uuid_configured;
    const char *ref = have ? "the configured node-uuid" : NULL;
    for (size_t i = 0; i < n && !have; i++) {
        if (st->disks[i].formatted) {
            memcpy(st->uuid.b, st->disks[i].sb.node_uuid, 16);
            ref = st->disks[i].path;
            have = true;
        }
    }
    if (!have)
        st->uuid = cmn_id_random();
    for (size_t i = 0; i < n; i++) {
        struct store_disk *d = &st->disks[i];
        rc = d->formatted ? verify_dir(st, d, ref, err) : format_dir(st, d, err);
        if (!rc)
            rc = finish_dir(st, d, err);
        if (rc)
            return rc;
    }
    compute_capacity(st);
    return 0;
}

void store_disk_close_fds(struct store_disk *d)
{
    if (d->vol_dir_fd >= 0)
        close(d->vol_dir_fd);
    if (d->dir_fd >= 0)
        close(d->dir_fd);
    if (d->lock_fd >= 0)
        close(d->lock_fd); /* releases the flock */
    d->vol_dir_fd = d->dir_fd = d->lock_fd = -1;
}
