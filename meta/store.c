#include "meta/store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define DEFAULT_MAP_SIZE (8ULL << 30)
#define MAX_READERS 256

static const char *const dbi_names[META_DBI_COUNT] = META_DBI_NAMES;

int meta_store_errno(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
    case MDB_DBS_FULL:
        return LODE_EMETAFULL;
    case MDB_READERS_FULL:
        return -EAGAIN;
    case MDB_BAD_VALSIZE:
        return -EINVAL;
    default:
        /* LMDB passes errno values through as positive numbers; its own codes are
         * negative and all mean a broken environment. */
        return rc > 0 ? -rc : -EIO;
    }
}

static int mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != 0)
            continue;
        char c = path[i];
        path[i] = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -errno;
        path[i] = c;
    }
    return 0;
}

static int unlink_in(const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    if (unlink(path) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int meta_store_open(struct meta_store *st, const char *dir, uint64_t map_size,
                    struct cmn_err *err)
{
    MDB_txn *txn = NULL;
    int rc;

    memset(st, 0, sizeof(*st));
    if (!dir || !*dir)
        return cmn_err_set(err, -EINVAL, "no state directory");
    rc = mkdir_p(dir);
    if (rc)
        return cmn_err_set(err, rc, "create %s: %s", dir, lode_strerror(rc));
    /* The LMDB files are a cache of raft's snapshot + log (MDB_NOSYNC): whatever a previous
     * run left may be torn, and raft replays everything anyway. */
    if ((rc = unlink_in(dir, "data.mdb")) || (rc = unlink_in(dir, "lock.mdb")))
        return cmn_err_set(err, rc, "wipe %s: %s", dir, lode_strerror(rc));

    st->map_size = map_size ? map_size : DEFAULT_MAP_SIZE;
    rc = mdb_env_create(&st->env);
    if (rc) {
        st->env = NULL;
        goto fail;
    }
    if ((rc = mdb_env_set_maxdbs(st->env, META_DBI_COUNT + 2)) ||
        (rc = mdb_env_set_maxreaders(st->env, MAX_READERS)) ||
        (rc = mdb_env_set_mapsize(st->env, st->map_size)))
        goto fail;
    if (mdb_env_get_maxkeysize(st->env) < META_KEY_INLINE_MAX) {
        mdb_env_close(st->env);
        st->env = NULL;
        return cmn_err_set(err, LODE_ECONFIG, "LMDB built with keys below %d bytes",
                           META_KEY_INLINE_MAX);
    }
    rc = mdb_env_open(st->env, dir, MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS, 0600);
    if (rc)
        goto fail;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc)
        goto fail;
    for (int i = 0; i < META_DBI_COUNT; i++) {
        rc = mdb_dbi_open(txn, dbi_names[i], MDB_CREATE, &st->dbi[i]);
        if (rc) {
            mdb_txn_abort(txn);
            goto fail;
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc)
        goto fail;
    MDB_envinfo info;
    if (mdb_env_info(st->env, &info) == 0)
        st->map_size = info.me_mapsize;
    /* Prefer the writer: a steady stream of reads must not starve a map resize, which
     * blocks the apply thread. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->grow_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return 0;

fail:;
    int code = meta_store_errno(rc);
    cmn_err_set(err, code, "open LMDB in %s: %s", dir, mdb_strerror(rc));
    if (st->env)
        mdb_env_close(st->env);
    st->env = NULL;
    return code;
}

void meta_store_close(struct meta_store *st)
{
    if (!st->env)
        return;
    mdb_env_close(st->env);
    st->env = NULL;
    pthread_rwlock_destroy(&st->grow_lock);
}

int meta_store_grow(struct meta_store *st)
{
    uint64_t want = st->map_size * 2;
    pthread_rwlock_wrlock(&st->grow_lock);
    int rc = mdb_env_set_mapsize(st->env, want);
    if (rc == 0) {
        MDB_envinfo info;
        st->map_size = mdb_env_info(st->env, &info) == 0 ? info.me_mapsize : want;
    }
    pthread_rwlock_unlock(&st->grow_lock);
    if (rc)
        return meta_store_errno(rc);
    LOG_INFO("meta-store", "LMDB map grown to %llu bytes", (unsigned long long)st->map_size);
    return 0;
}

int meta_store_grow_to(struct meta_store *st, uint64_t bytes)
{
    while (st->map_size < bytes) {
        if (st->map_size > UINT64_MAX / 2)
            return LODE_EMETAFULL;
        int rc = meta_store_grow(st);
        if (rc)
            return rc;
    }
    return 0;
}

int meta_store_write_begin(struct meta_store *st, MDB_txn **txn)
{
    return meta_store_errno(mdb_txn_begin(st->env, NULL, 0, txn));
}

int meta_store_read_begin(struct meta_store *st, MDB_txn **txn)
{
    pthread_rwlock_rdlock(&st->grow_lock);
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
    if (rc) {
        pthread_rwlock_unlock(&st->grow_lock);
        *txn = NULL;
    }
    return meta_store_errno(rc);
}

void meta_store_read_end(struct meta_store *st, MDB_txn *txn)
{
    if (!txn)
        return;
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->grow_lock);
}

int meta_counter_get(struct meta_store *st, MDB_txn *txn, const char *name, uint64_t dflt,
                     uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, st->dbi[META_DBI_SYS], &k, &v);
    if (rc == MDB_NOTFOUND) {
        *out = dflt;
        return 0;
    }
    if (rc)
        return meta_store_errno(rc);
    if (v.mv_size != 8)
        return -EIO;
    *out = cmn_get_u64be(v.mv_data);
    return 0;
}

int meta_counter_set(struct meta_store *st, MDB_txn *txn, const char *name, uint64_t val)
{
    uint8_t b[8];
    cmn_put_u64be(b, val);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    return meta_store_errno(mdb_put(txn, st->dbi[META_DBI_SYS], &k, &v, 0));
}

/* ---- Bundles */

struct bundle_ent {
    const uint8_t *tail;
    size_t tlen;
    const uint8_t *val;
    size_t vlen;
};

/* Parses the element at *p; advances. Returns 0 or -EIO on a malformed bundle. */
static int bundle_take(const uint8_t **p, size_t *left, struct bundle_ent *e)
{
    struct cmn_rd rd;
    cmn_rd_init(&rd, *p, *left);
    e->tlen = cmn_rd_u16be(&rd);
    e->tail = cmn_rd_bytes(&rd, e->tlen);
    e->vlen = cmn_rd_u32be(&rd);
    e->val = cmn_rd_bytes(&rd, e->vlen);
    if (rd.err || !e->tail || !e->val)
        return -EIO;
    *p = rd.p;
    *left = rd.left;
    return 0;
}

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int bundle_append(struct cmn_buf *b, const void *tail, size_t tlen, const void *val,
                         size_t vlen)
{
    if (tlen > UINT16_MAX || vlen > UINT32_MAX)
        return -EINVAL;
    int rc = cmn_buf_reserve(b, 6 + tlen + vlen);
    if (rc)
        return rc;
    cmn_buf_append_u16be(b, (uint16_t)tlen);
    cmn_buf_append(b, tail, tlen);
    cmn_buf_append_u32be(b, (uint32_t)vlen);
    cmn_buf_append(b, val, vlen);
    return 0;
}

bool meta_bundle_valid(const void *val, size_t vlen)
{
    const uint8_t *p = val;
    size_t left = vlen;
    struct bundle_ent e, prev = {0};
    bool first = true;
    if (vlen == 0)
        return false;
    while (left) {
        if (bundle_take(&p, &left, &e))
            return false;
        if (!first && bytes_cmp(prev.tail, prev.tlen, e.tail, e.tlen) >= 0)
            return false;
        prev = e;
        first = false;
    }
    return true;
}

/* Rebuilds the bundle `old` (may be empty) into scratch with `tail` replaced by val, or
 * removed when val is NULL. *found says whether tail was present. */
static int bundle_rebuild(const MDB_val *old, const uint8_t *tail, size_t tlen, const void *val,
                          size_t vlen, struct cmn_buf *scratch, bool *found)
{
    const uint8_t *p = old->mv_data;
    size_t left = old->mv_size;
    bool placed = false;
    struct bundle_ent e;
    int rc;

    *found = false;
    cmn_buf_reset(scratch);
    while (left) {
        if (bundle_take(&p, &left, &e))
            return -EIO;
        int c = bytes_cmp(e.tail, e.tlen, tail, tlen);
        if (c == 0) {
            *found = true;
            continue;
        }
        if (c > 0 && !placed && val) {
            if ((rc = bundle_append(scratch, tail, tlen, val, vlen)))
                return rc;
            placed = true;
        }
        if ((rc = bundle_append(scratch, e.tail, e.tlen, e.val, e.vlen)))
            return rc;
    }
    if (!placed && val && (rc = bundle_append(scratch, tail, tlen, val, vlen)))
        return rc;
    return 0;
}

/* ---- Ordered map */

int meta_omap_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, MDB_val *val)
{
    if (klen == 0)
        return -EINVAL;
    if (klen < META_KEY_INLINE_MAX) {
        MDB_val k = {klen, (void *)key};
        return meta_store_errno(mdb_get(txn, dbi, &k, val));
    }
    MDB_val k = {META_KEY_INLINE_MAX, (void *)key}, b;
    int rc = mdb_get(txn, dbi, &k, &b);
    if (rc)
        return meta_store_errno(rc);
    const uint8_t *p = b.mv_data, *tail = (const uint8_t *)key + META_KEY_INLINE_MAX;
    size_t left = b.mv_size, tlen = klen - META_KEY_INLINE_MAX;
    struct bundle_ent e;
    while (left) {
        if (bundle_take(&p, &left, &e))
            return -EIO;
        int c = bytes_cmp(e.tail, e.tlen, tail, tlen);
        if (c == 0) {
            val->mv_data = (void *)e.val;
            val->mv_size = e.vlen;
            return 0;
        }
        if (c > 0)
            break;
    }
    return -ENOENT;
}

int meta_omap_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const void *val,
                  size_t vlen, struct cmn_buf *scratch)
{
    if (klen == 0 || (klen >= META_KEY_INLINE_MAX && klen - META_KEY_INLINE_MAX > UINT16_MAX))
        return -EINVAL;
    if (klen < META_KEY_INLINE_MAX) {
        MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
        return meta_store_errno(mdb_put(txn, dbi, &k, &v, 0));
    }
    MDB_val k = {META_KEY_INLINE_MAX, (void *)key}, old = {0, NULL};
    int rc = mdb_get(txn, dbi, &k, &old);
    if (rc && rc != MDB_NOTFOUND)
        return meta_store_errno(rc);
    bool found;
    rc = bundle_rebuild(&old, (const uint8_t *)key + META_KEY_INLINE_MAX,
                        klen - META_KEY_INLINE_MAX, val, vlen, scratch, &found);
    if (rc)
        return rc;
    MDB_val v = {scratch->len, scratch->data};
    return meta_store_errno(mdb_put(txn, dbi, &k, &v, 0));
}

int meta_omap_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                  struct cmn_buf *scratch)
{
    if (klen == 0)
        return -EINVAL;
    if (klen < META_KEY_INLINE_MAX) {
        MDB_val k = {klen, (void *)key};
        return meta_store_errno(mdb_del(txn, dbi, &k, NULL));
    }
    MDB_val k = {META_KEY_INLINE_MAX, (void *)key}, old;
    int rc = mdb_get(txn, dbi, &k, &old);
    if (rc)
        return meta_store_errno(rc);
    bool found;
    rc = bundle_rebuild(&old, (const uint8_t *)key + META_KEY_INLINE_MAX,
                        klen - META_KEY_INLINE_MAX, NULL, 0, scratch, &found);
    if (rc)
        return rc;
    if (!found)
        return -ENOENT;
    if (scratch->len == 0)
        return meta_store_errno(mdb_del(txn, dbi, &k, NULL));
    MDB_val v = {scratch->len, scratch->data};
    return meta_store_errno(mdb_put(txn, dbi, &k, &v, 0));
}

int meta_omap_iter_open(struct meta_omap_iter *it, MDB_txn *txn, MDB_dbi dbi)
{
    memset(it, 0, sizeof(*it));
    cmn_buf_init(&it->kbuf);
    return meta_store_errno(mdb_cursor_open(txn, dbi, &it->cur));
}

void meta_omap_iter_close(struct meta_omap_iter *it)
{
    if (it->cur)
        mdb_cursor_close(it->cur);
    it->cur = NULL;
    cmn_buf_free(&it->kbuf);
}

/* Makes the next bundle element current. */
static int iter_bundle_step(struct meta_omap_iter *it)
{
    struct bundle_ent e;
    if (bundle_take(&it->bnext, &it->bleft, &e))
        return -EIO;
    cmn_buf_reset(&it->kbuf);
    if (cmn_buf_append(&it->kbuf, it->lkey.mv_data, it->lkey.mv_size) ||
        cmn_buf_append(&it->kbuf, e.tail, e.tlen))
        return -ENOMEM;
    it->key = it->kbuf.data;
    it->klen = it->kbuf.len;
    it->val.mv_data = (void *)e.val;
    it->val.mv_size = e.vlen;
    it->steps++;
    return 0;
}

/* Moves the cursor with `op` (k as the SET_RANGE key) and makes its first element current. */
static int iter_move(struct meta_omap_iter *it, MDB_cursor_op op, MDB_val *k)
{
    MDB_val key = k ? *k : (MDB_val){0, NULL}, val;
    int rc = mdb_cursor_get(it->cur, &key, &val, op);
    it->bnext = NULL;
    it->bleft = 0;
    if (rc == MDB_NOTFOUND) {
        it->valid = false;
        return 0;
    }
    if (rc) {
        it->valid = false;
        return meta_store_errno(rc);
    }
    it->lkey = key;
    it->lval = val;
    it->valid = true;
    if (key.mv_size < META_KEY_INLINE_MAX) {
        it->key = key.mv_data;
        it->klen = key.mv_size;
        it->val = val;
        it->steps++;
        return 0;
    }
    if (key.mv_size > META_KEY_INLINE_MAX || val.mv_size == 0) {
        it->valid = false;
        return -EIO;
    }
    it->bnext = val.mv_data;
    it->bleft = val.mv_size;
    rc = iter_bundle_step(it);
    if (rc)
        it->valid = false;
    return rc;
}

int meta_omap_next(struct meta_omap_iter *it)
{
    if (!it->valid)
        return 0;
    if (it->bnext && it->bleft) {
        int rc = iter_bundle_step(it);
        if (rc)
            it->valid = false;
        return rc;
    }
    return iter_move(it, MDB_NEXT, NULL);
}

int meta_omap_seek(struct meta_omap_iter *it, const void *key, size_t klen)
{
    if (klen == 0)
        return iter_move(it, MDB_FIRST, NULL);
    if (klen < META_KEY_INLINE_MAX) {
        MDB_val k = {klen, (void *)key};
        return iter_move(it, MDB_SET_RANGE, &k);
    }
    MDB_val k = {META_KEY_INLINE_MAX, (void *)key};
    int rc = iter_move(it, MDB_SET_RANGE, &k);
    if (rc || !it->valid || it->lkey.mv_size != META_KEY_INLINE_MAX ||
        memcmp(it->lkey.mv_data, key, META_KEY_INLINE_MAX) != 0)
        return rc;
    /* Same bundle: skip its elements below key (leaving the bundle lands on a larger
     * prefix, which is above key, so the loop ends there at the latest). */
    while (it->valid && bytes_cmp(it->key, it->klen, key, klen) < 0) {
        if ((rc = meta_omap_next(it)))
            return rc;
    }
    return 0;
}
