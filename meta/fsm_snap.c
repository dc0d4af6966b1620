/* Snapshots, restore and the state digest. Format in docs/meta-format.md ("Snapshots"). */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/hmac.h"
#include "common/log.h"
#include "meta/fsm_int.h"

#define HEADER_LEN (META_SNAPSHOT_MAGIC_LEN + 12)
#define TRAILER_LEN (1 + 8 + 32)  /* end byte, record count, SHA-256 */
#define RESTORE_GROW_TRIES 8

/* Receives the serialized records piece by piece (snapshot buffer or digest). */
typedef int (*sink_fn)(void *ctx, const void *data, size_t len);

/* Feeds every record of every database, in database-id then key order, to the sink as
 * { u8 dbi id, u32 BE key len, u32 BE value len, key, value }. */
static int walk(struct meta_fsm *fsm, MDB_txn *txn, sink_fn sink, void *ctx, uint64_t *count)
{
    *count = 0;
    for (int id = 0; id < META_DBI_COUNT; id++) {
        MDB_cursor *cur;
        MDB_val k, v;
        int rc = meta_store_errno(mdb_cursor_open(txn, meta_dbi(fsm, id), &cur));
        if (rc)
            return rc;
        int mrc;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            uint8_t hdr[9];
            hdr[0] = (uint8_t)id;
            cmn_put_u32be(hdr + 1, (uint32_t)k.mv_size);
            cmn_put_u32be(hdr + 5, (uint32_t)v.mv_size);
            if ((rc = sink(ctx, hdr, sizeof(hdr))) || (rc = sink(ctx, k.mv_data, k.mv_size)) ||
                (rc = sink(ctx, v.mv_data, v.mv_size)))
                break;
            (*count)++;
        }
        mdb_cursor_close(cur);
        if (rc)
            return rc;
        if (mrc != MDB_NOTFOUND)
            return meta_store_errno(mrc);
    }
    return 0;
}

static int sink_buf(void *ctx, const void *data, size_t len)
{
    return cmn_buf_append(ctx, data, len);
}

static int sink_sha(void *ctx, const void *data, size_t len)
{
    return EVP_DigestUpdate(ctx, data, len) == 1 ? 0 : LODE_EINTERNAL;
}

int meta_fsm_snapshot(struct meta_fsm *fsm, struct cmn_buf *out)
{
    MDB_txn *txn;
    uint64_t count;
    uint8_t sum[32];
    int rc;

    cmn_buf_reset(out);
    if (cmn_buf_append(out, META_SNAPSHOT_MAGIC, META_SNAPSHOT_MAGIC_LEN) ||
        cmn_buf_append_u32be(out, META_SNAPSHOT_FORMAT) ||
        cmn_buf_append_u32be(out, META_STORE_FORMAT) || cmn_buf_append_u32be(out, META_DBI_COUNT))
        return -ENOMEM;
    if ((rc = meta_store_read_begin(&fsm->st, &txn)))
        return rc;
    rc = walk(fsm, txn, sink_buf, out, &count);
    meta_store_read_end(&fsm->st, txn);
    if (rc)
        return rc;
    if (cmn_buf_append_u8(out, META_SNAPSHOT_END) || cmn_buf_append_u64be(out, count))
        return -ENOMEM;
    if ((rc = cmn_sha256(out->data, out->len, sum)))
        return rc;
    return cmn_buf_append(out, sum, sizeof(sum));
}

int meta_fsm_digest(struct meta_fsm *fsm, uint8_t out[32])
{
    MDB_txn *txn;
    uint64_t count;
    int rc = LODE_EINTERNAL;
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!md || !ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1)
        goto out;
    if ((rc = meta_store_read_begin(&fsm->st, &txn)))
        goto out;
    rc = walk(fsm, txn, sink_sha, ctx, &count);
    meta_store_read_end(&fsm->st, txn);
    if (rc == 0 && EVP_DigestFinal_ex(ctx, out, NULL) != 1)
        rc = LODE_EINTERNAL;
out:
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return rc;
}

/* One record of a snapshot being parsed. */
struct snap_rec {
    uint8_t dbi;
    MDB_val key, val;
};

/* Reads the next record; returns 1 at the end marker, 0 for a record, <0 when malformed. */
static int snap_next(struct cmn_rd *rd, struct snap_rec *r)
{
    r->dbi = cmn_rd_u8(rd);
    if (rd->err)
        return -1;
    if (r->dbi == META_SNAPSHOT_END)
        return 1;
    uint32_t klen = cmn_rd_u32be(rd), vlen = cmn_rd_u32be(rd);
    const uint8_t *k = cmn_rd_bytes(rd, klen);
    const uint8_t *v = k ? cmn_rd_bytes(rd, vlen) : NULL;
    if (rd->err || !k || !v)
        return -1;
    r->key = (MDB_val){klen, (void *)k};
    r->val = (MDB_val){vlen, (void *)v};
    return 0;
}

static int key_cmp(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    if (c)
        return c;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size ? 1 : 0;
}

/* Checks everything that can be checked without touching the state. Returns the record
 * area (reader positioned after the header) through *body. */
static int snap_validate(const uint8_t *p, size_t len, struct cmn_rd *body, struct cmn_err *err)
{
    uint8_t sum[32];
    struct cmn_rd rd;
    if (len < HEADER_LEN + TRAILER_LEN)
        return cmn_err_set(err, LODE_EBADMSG, "snapshot truncated (%zu bytes)", len);
    if (memcmp(p, META_SNAPSHOT_MAGIC, META_SNAPSHOT_MAGIC_LEN) != 0)
        return cmn_err_set(err, LODE_EBADMSG, "not a lode-meta snapshot (bad magic)");
    if (cmn_sha256(p, len - 32, sum))
        return cmn_err_set(err, LODE_EINTERNAL, "snapshot checksum: SHA-256 failed");
    if (memcmp(sum, p + len - 32, 32) != 0)
        return cmn_err_set(err, LODE_ECORRUPT, "snapshot checksum mismatch");
    cmn_rd_init(&rd, p + META_SNAPSHOT_MAGIC_LEN, len - 32 - META_SNAPSHOT_MAGIC_LEN);
    uint32_t fmt = cmn_rd_u32be(&rd), store = cmn_rd_u32be(&rd), ndbi = cmn_rd_u32be(&rd);
    if (fmt != META_SNAPSHOT_FORMAT || store != META_STORE_FORMAT || ndbi != META_DBI_COUNT)
        return cmn_err_set(err, LODE_EVERSION,
                           "snapshot format %u, layout %u, %u databases; expected %d, %d, %d",
                           fmt, store, ndbi, META_SNAPSHOT_FORMAT, META_STORE_FORMAT,
                           META_DBI_COUNT);
    *body = rd;

    struct snap_rec r, prev = {0};
    uint64_t count = 0;
    int rc;
    while ((rc = snap_next(&rd, &r)) == 0) {
        if (r.dbi >= META_DBI_COUNT || (count && r.dbi < prev.dbi))
            return cmn_err_set(err, LODE_EBADMSG, "snapshot record %llu: bad database id %u",
                               (unsigned long long)count, r.dbi);
        if (r.key.mv_size == 0 || r.key.mv_size > META_KEY_INLINE_MAX)
            return cmn_err_set(err, LODE_EBADMSG, "snapshot record %llu: bad key length %zu",
                               (unsigned long long)count, r.key.mv_size);
        if (r.key.mv_size == META_KEY_INLINE_MAX &&
            !meta_bundle_valid(r.val.mv_data, r.val.mv_size))
            return cmn_err_set(err, LODE_EBADMSG, "snapshot record %llu: malformed bundle",
                               (unsigned long long)count);
        if (count && r.dbi == prev.dbi && key_cmp(&prev.key, &r.key) >= 0)
            return cmn_err_set(err, LODE_EBADMSG, "snapshot record %llu: keys out of order",
                               (unsigned long long)count);
        prev = r;
        count++;
    }
    if (rc < 0)
        return cmn_err_set(err, LODE_EBADMSG, "snapshot truncated after %llu records",
                           (unsigned long long)count);
    uint64_t want = cmn_rd_u64be(&rd);
    if (rd.err || rd.left != 0 || want != count)
        return cmn_err_set(err, LODE_EBADMSG, "snapshot trailer: %llu records announced, %llu read",
                           (unsigned long long)want, (unsigned long long)count);
    return 0;
}

/* Replaces every database with the snapshot's records in one write transaction. */
static int restore_once(struct meta_fsm *fsm, struct cmn_rd rd, bool *map_full)
{
    MDB_txn *txn;
    struct snap_rec r;
    int mrc = mdb_txn_begin(fsm->st.env, NULL, 0, &txn);
    if (mrc)
        return meta_store_errno(mrc);
    for (int id = 0; id < META_DBI_COUNT && mrc == 0; id++)
        mrc = mdb_drop(txn, meta_dbi(fsm, id), 0);
    /* Records are sorted (validated), so they can be appended without searching. */
    while (mrc == 0 && snap_next(&rd, &r) == 0)
        mrc = mdb_put(txn, meta_dbi(fsm, r.dbi), &r.key, &r.val, MDB_APPEND);
    if (mrc == 0)
        mrc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    *map_full = mrc == MDB_MAP_FULL;
    return meta_store_errno(mrc);
}

int meta_fsm_restore(struct meta_fsm *fsm, const void *buf, size_t len, struct cmn_err *err)
{
    struct cmn_rd body;
    int rc = snap_validate(buf, len, &body, err);
    if (rc)
        return rc;
    for (int tries = 0;; tries++) {
        bool map_full = false;
        rc = restore_once(fsm, body, &map_full);
        if (!map_full || tries == RESTORE_GROW_TRIES)
            break;
        if ((rc = meta_store_grow(&fsm->st)))
            break;
    }
    if (rc)
        return cmn_err_set(err, rc, "restore snapshot: %s", lode_strerror(rc));
    LOG_INFO("meta-fsm", "restored snapshot of %zu bytes", len);
    return 0;
}
