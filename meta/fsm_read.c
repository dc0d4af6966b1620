/* Reads of the state machine: each runs in its own LMDB read transaction and answers with
 * a packed protobuf message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"
#include "meta/fsm_int.h"

#define S(s) ((s) ? (s) : "")
#define GC_LIST_DEFAULT 1000
#define GC_LIST_MAX 10000

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static uint32_t clamp_max(uint32_t want, uint32_t dflt, uint32_t cap)
{
    return want == 0 ? dflt : want > cap ? cap : want;
}

/* Copies one stored record (already a packed message) into out. */
static int read_raw(struct meta_fsm *fsm, enum meta_dbi_id dbi, const void *key, size_t klen,
                    struct cmn_buf *out)
{
    MDB_txn *txn;
    MDB_val v;
    int rc = meta_store_read_begin(&fsm->st, &txn);
    if (rc)
        return rc;
    rc = meta_omap_get(txn, meta_dbi(fsm, dbi), key, klen, &v);
    if (rc == 0) {
        cmn_buf_reset(out);
        rc = cmn_buf_append(out, v.mv_data, v.mv_size);
    }
    meta_store_read_end(&fsm->st, txn);
    return rc;
}

/* Unpacked records of a key range, for responses that repeat a record type. */
struct msg_list {
    ProtobufCMessage **v;
    size_t n, cap;
};

static int msg_list_add(struct msg_list *l, const ProtobufCMessageDescriptor *d, const MDB_val *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        ProtobufCMessage **grown = realloc(l->v, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        l->v = grown;
        l->cap = cap;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, v->mv_size, v->mv_data);
    if (!m)
        return -EIO;
    l->v[l->n++] = m;
    return 0;
}

static void msg_list_free(struct msg_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        protobuf_c_message_free_unpacked(l->v[i], NULL);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Collects every record of a database (at most `max`, 0 = all) from key `from` on. */
static int collect(struct meta_fsm *fsm, MDB_txn *txn, enum meta_dbi_id dbi, const void *from,
                   size_t flen, size_t max, const ProtobufCMessageDescriptor *d,
                   struct msg_list *l)
{
    struct meta_omap_iter it;
    int rc = meta_omap_iter_open(&it, txn, meta_dbi(fsm, dbi));
    if (rc)
        return rc;
    for (rc = meta_omap_seek(&it, from, flen); rc == 0 && it.valid; rc = meta_omap_next(&it)) {
        if (max && l->n == max)
            break;
        if ((rc = msg_list_add(l, d, &it.val)))
            break;
    }
    meta_omap_iter_close(&it);
    return rc;
}

int meta_fsm_cluster_map(struct meta_fsm *fsm, struct cmn_buf *out)
{
    MDB_txn *txn;
    struct msg_list l = {0};
    Lode__ClusterMap map = LODE__CLUSTER_MAP__INIT;
    int rc = meta_store_read_begin(&fsm->st, &txn);
    if (rc)
        return rc;
    if ((rc = meta_counter_get(&fsm->st, txn, META_SYS_EPOCH, 0, &map.epoch)) == 0 &&
        (rc = collect(fsm, txn, META_DBI_NODES, NULL, 0, 0, &lode__node_info__descriptor,
                      &l)) == 0) {
        map.n_nodes = l.n;
        map.nodes = (Lode__NodeInfo **)l.v;
        rc = meta_pack_to_buf(&map.base, out);
    }
    meta_store_read_end(&fsm->st, txn);
    msg_list_free(&l);
    return rc;
}

int meta_fsm_node_get(struct meta_fsm *fsm, uint32_t nid, struct cmn_buf *out)
{
    uint8_t key[4];
    meta_key_u32(key, nid);
    int rc = read_raw(fsm, META_DBI_NODES, key, 4, out);
    return rc == -ENOENT ? LODE_ENONODE : rc;
}

uint64_t meta_fsm_epoch(struct meta_fsm *fsm)
{
    MDB_txn *txn;
    uint64_t e = 0;
    if (meta_store_read_begin(&fsm->st, &txn))
        return 0;
    if (meta_counter_get(&fsm->st, txn, META_SYS_EPOCH, 0, &e))
        e = 0;
    meta_store_read_end(&fsm->st, txn);
    return e;
}

int meta_fsm_bucket_get(struct meta_fsm *fsm, const char *name, struct cmn_buf *out,
                        struct cmn_err *err)
{
    size_t n = strlen(S(name));
    if (n == 0 || n > META_BUCKET_NAME_MAX)
        return cmn_err_set(err, LODE_ENOBUCKET, "bucket '%.80s' does not exist", S(name));
    int rc = read_raw(fsm, META_DBI_BUCKETS, name, n, out);
    if (rc == -ENOENT)
        return cmn_err_set(err, LODE_ENOBUCKET, "bucket '%s' does not exist", name);
    return rc ? cmn_err_set(err, rc, "read bucket '%s': %s", name, lode_strerror(rc)) : 0;
}

int meta_fsm_bucket_list(struct meta_fsm *fsm, const char *owner, struct cmn_buf *out)
{
    MDB_txn *txn;
    struct msg_list l = {0};
    Lode__BucketListResponse r = LODE__BUCKET_LIST_RESPONSE__INIT;
    int rc = meta_store_read_begin(&fsm->st, &txn);
    if (rc)
        return rc;
    rc = collect(fsm, txn, META_DBI_BUCKETS, NULL, 0, 0, &lode__bucket_record__descriptor, &l);
    meta_store_read_end(&fsm->st, txn);
    if (rc == 0) {
        size_t keep = 0;
        for (size_t i = 0; i < l.n; i++) {
            Lode__BucketRecord *b = (Lode__BucketRecord *)l.v[i];
            if (owner && *owner && strcmp(b->owner, owner) != 0)
                protobuf_c_message_free_unpacked(l.v[i], NULL);
            else
                l.v[keep++] = l.v[i];
        }
        l.n = keep;
        r.n_buckets = l.n;
        r.buckets = (Lode__BucketRecord **)l.v;
        rc = meta_pack_to_buf(&r.base, out);
    }
    msg_list_free(&l);
    return rc;
}

int meta_fsm_object_get(struct meta_fsm *fsm, const char *bucket, const char *key,
                        struct cmn_buf *out, struct cmn_err *err)
{
    uint8_t k[META_KEY_BUF];
    MDB_txn *txn;
    MDB_val v;
    size_t blen = strlen(S(bucket)), klen = strlen(S(key));
    if (blen == 0 || blen > META_BUCKET_NAME_MAX)
        return cmn_err_set(err, LODE_ENOBUCKET, "bucket '%.80s' does not exist", S(bucket));
    int rc = meta_store_read_begin(&fsm->st, &txn);
    if (rc)
        return cmn_err_set(err, rc, "read transaction: %s", lode_strerror(rc));
    rc = meta_omap_get(txn, meta_dbi(fsm, META_DBI_BUCKETS), bucket, blen, &v);
    if (rc == -ENOENT) {
        rc = cmn_err_set(err, LODE_ENOBUCKET, "bucket '%s' does not exist", bucket);
    } else if (rc == 0 && (klen == 0 || klen > META_NAME_MAX)) {
        rc = cmn_err_set(err, LODE_ENOKEY, "no object '%.100s' in bucket '%s'", S(key), bucket);
    } else if (rc == 0) {
        rc = meta_omap_get(txn, meta_dbi(fsm, META_DBI_OBJECTS), k,
                           meta_key_pair(k, bucket, blen, key, klen), &v);
        if (rc == -ENOENT)
            rc = cmn_err_set(err, LODE_ENOKEY, "no object '%.100s' in bucket '%s'", key, bucket);
        else if (rc == 0) {
            cmn_buf_reset(out);
            rc = cmn_buf_append(out, v.mv_data, v.mv_size);
        }
    }
    if (rc && (!err || err->code != rc))
        cmn_err_set(err, rc, "read object: %s", lode_strerror(rc));
    meta_store_read_end(&fsm->st, txn);
    return rc;
}

/* ---- ListObjects */

static uint64_t rd_varint(struct cmn_rd *rd)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b = cmn_rd_u8(rd);
        if (rd->err)
            return 0;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    rd->err = LODE_EBADMSG;
    return 0;
}

/* The list-relevant fields of a packed ObjectRecord, read without unpacking its layout and
 * parts (which can be large). Strings are malloc'd into e. */
static int scan_object(const uint8_t *p, size_t len, Lode__ObjectListEntry *e)
{
    struct cmn_rd rd;
    cmn_rd_init(&rd, p, len);
    while (rd.left && !rd.err) {
        uint64_t tag = rd_varint(&rd);
        unsigned field = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
        if (wt == 0) {
            uint64_t v = rd_varint(&rd);
            if (field == 1)
                e->version = v;
            else if (field == 2)
                e->size = v;
            else if (field == 5)
                e->mtime_ms = (int64_t)v;
        } else if (wt == 2) {
            uint64_t n = rd_varint(&rd);
            const uint8_t *s = n <= rd.left ? cmn_rd_bytes(&rd, (size_t)n) : NULL;
            if (!s)
                return -EIO;
            char **dst = field == 3 ? &e->etag : field == 11 ? &e->owner : NULL;
            if (dst) {
                char *copy = strndup((const char *)s, (size_t)n);
                if (!copy)
                    return -ENOMEM;
                if (*dst != protobuf_c_empty_string)
                    free(*dst);
                *dst = copy;
            }
        } else if (wt == 1 || wt == 5) {
            cmn_rd_bytes(&rd, wt == 1 ? 8 : 4);
        } else {
            return -EIO;
        }
    }
    return rd.err ? -EIO : 0;
}

static const char hexdig[] = "0123456789abcdef";

/* Continuation token: hex of { type byte, position }. Returns a malloc'd string. */
static char *token_encode(uint8_t type, const uint8_t *pos, size_t n)
{
    char *t = malloc(2 * (n + 1) + 1);
    if (!t)
        return NULL;
    t[0] = hexdig[type >> 4];
    t[1] = hexdig[type & 15];
    cmn_hex_encode(pos, n, t + 2);
    return t;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Accepts exactly what token_encode produces for a key; anything else is -EINVAL. */
static int token_decode(const char *tok, uint8_t *type, struct cmn_buf *pos)
{
    size_t n = strlen(tok);
    if (n < 4 || n % 2 || n / 2 - 1 > META_NAME_MAX)
        return -EINVAL;
    cmn_buf_reset(pos);
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(tok[i]), lo = hexval(tok[i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        uint8_t b = (uint8_t)(hi << 4 | lo);
        if (i == 0) {
            *type = b;
            continue;
        }
        if (b == 0) /* keys never hold NUL */
            return -EINVAL;
        if (cmn_buf_append_u8(pos, b))
            return -ENOMEM;
    }
    if (*type != META_TOKEN_AFTER_KEY && *type != META_TOKEN_AFTER_PREFIX)
        return -EINVAL;
    return 0;
}

/* Turns b into the smallest string above every string that starts with b. Returns false
 * when there is none (b is all 0xFF). */
static bool successor(struct cmn_buf *b)
{
    while (b->len && b->data[b->len - 1] == 0xFF)
        b->len--;
    if (!b->len)
        return false;
    b->data[b->len - 1]++;
    return true;
}

struct list_out {
    Lode__ObjectListEntry **ents;
    size_t n_ents;
    char **cps;
    size_t n_cps;
};

static void list_out_free(struct list_out *o)
{
    for (size_t i = 0; i < o->n_ents; i++) {
        Lode__ObjectListEntry *e = o->ents[i];
        free(e->key);
        if (e->etag != protobuf_c_empty_string)
            free(e->etag);
        if (e->owner != protobuf_c_empty_string)
            free(e->owner);
        free(e);
    }
    for (size_t i = 0; i < o->n_cps; i++)
        free(o->cps[i]);
    free(o->ents);
    free(o->cps);
}

static int list_add_entry(struct list_out *o, const uint8_t *key, size_t klen, const MDB_val *v)
{
    Lode__ObjectListEntry *e = malloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    lode__object_list_entry__init(e);
    e->key = strndup((const char *)key, klen);
    o->ents[o->n_ents++] = e;
    if (!e->key)
        return -ENOMEM;
    return scan_object(v->mv_data, v->mv_size, e);
}

int meta_fsm_object_list(struct meta_fsm *fsm, const Lode__ObjectListRequest *req,
                         struct cmn_buf *out, struct cmn_err *err)
{
    const char *bucket = S(req->bucket), *prefix = S(req->prefix), *delim = S(req->delimiter);
    const char *start_after = S(req->start_after), *tok = S(req->continuation_token);
    size_t blen = strlen(bucket), plen = strlen(prefix), dlen = strlen(delim);
    uint32_t max = clamp_max(req->max_keys, META_LIST_MAX_KEYS, META_LIST_MAX_KEYS);
    struct cmn_buf low, seek, last;
    struct list_out o = {0};
    struct meta_omap_iter it = {0};
    uint8_t ttype = 0, last_type = 0;
    bool excl = false, truncated = false, done = false;
    char *next_token = NULL;
    uint32_t count = 0;
    MDB_txn *txn = NULL;
    MDB_val v;
    int rc;

    cmn_buf_init(&low);
    cmn_buf_init(&seek);
    cmn_buf_init(&last);
    if (blen == 0 || blen > META_BUCKET_NAME_MAX)
        return cmn_err_set(err, LODE_ENOBUCKET, "bucket '%.80s' does not exist", bucket);
    if (*tok && (rc = token_decode(tok, &ttype, &low))) {
        cmn_buf_free(&low);
        return cmn_err_set(err, rc, rc == -EINVAL ? "invalid continuation token" : "out of memory");
    }
    /* The lower bound, as a key inside the bucket: the token wins over start_after, and
     * nothing below the prefix can match. */
    if (ttype == META_TOKEN_AFTER_KEY) {
        excl = true;
    } else if (ttype == META_TOKEN_AFTER_PREFIX) {
        done = !successor(&low);
    } else if (*start_after) {
        rc = cmn_buf_append(&low, start_after, strlen(start_after));
        excl = true;
    }
    if (!done && bytes_cmp(low.data, low.len, prefix, plen) < 0) {
        cmn_buf_reset(&low);
        rc = cmn_buf_append(&low, prefix, plen);
        excl = false;
    }
    o.ents = calloc(max, sizeof(*o.ents));
    o.cps = calloc(max, sizeof(*o.cps));
    if (rc || !o.ents || !o.cps) {
        rc = cmn_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }

    if ((rc = meta_store_read_begin(&fsm->st, &txn))) {
        cmn_err_set(err, rc, "read transaction: %s", lode_strerror(rc));
        goto out;
    }
    rc = meta_omap_get(txn, meta_dbi(fsm, META_DBI_BUCKETS), bucket, blen, &v);
    if (rc) {
        if (rc == -ENOENT)
            rc = cmn_err_set(err, LODE_ENOBUCKET, "bucket '%s' does not exist", bucket);
        goto out;
    }
    if ((rc = meta_omap_iter_open(&it, txn, meta_dbi(fsm, META_DBI_OBJECTS))))
        goto out;

    size_t base = blen + 1; /* "bucket NUL" leads every key of the bucket */
    if (done)
        goto pack;
    if (cmn_buf_append(&seek, bucket, blen) || cmn_buf_append_u8(&seek, 0) ||
        cmn_buf_append(&seek, low.data, low.len)) {
        rc = -ENOMEM;
        goto out;
    }
    rc = meta_omap_seek(&it, seek.data, seek.len);
    if (rc == 0 && excl && it.valid && it.klen == seek.len &&
        memcmp(it.key, seek.data, seek.len) == 0)
        rc = meta_omap_next(&it);
    while (rc == 0 && it.valid) {
        if (it.klen < base + plen || memcmp(it.key, seek.data, base) != 0 ||
            memcmp(it.key + base, prefix, plen) != 0)
            break;
        const uint8_t *k = it.key + base;
        size_t kl = it.klen - base;
        const uint8_t *d = dlen ? memmem(k + plen, kl - plen, delim, dlen) : NULL;
        if (count == max) {
            truncated = true;
            break;
        }
        count++;
        cmn_buf_reset(&last);
        if (d) {
            size_t cpl = (size_t)(d - k) + dlen;
            if (!(o.cps[o.n_cps++] = strndup((const char *)k, cpl)) ||
                cmn_buf_append(&last, k, cpl)) {
                rc = -ENOMEM;
                break;
            }
            last_type = META_TOKEN_AFTER_PREFIX;
            /* Skip the whole common prefix with one seek: its keys are never visited. */
            seek.len = base;
            if (cmn_buf_append(&seek, k, cpl)) {
                rc = -ENOMEM;
                break;
            }
            if (!successor(&seek))
                break;
            rc = meta_omap_seek(&it, seek.data, seek.len);
            continue;
        }
        if ((rc = list_add_entry(&o, k, kl, &it.val)) || (rc = cmn_buf_append(&last, k, kl)))
            break;
        last_type = META_TOKEN_AFTER_KEY;
        rc = meta_omap_next(&it);
    }
    if (rc) {
        cmn_err_set(err, rc, "list bucket '%s': %s", bucket, lode_strerror(rc));
        goto out;
    }
    if (truncated && !(next_token = token_encode(last_type, last.data, last.len))) {
        rc = cmn_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
pack:;
    Lode__ObjectListResponse r = LODE__OBJECT_LIST_RESPONSE__INIT;
    r.n_entries = o.n_ents;
    r.entries = o.ents;
    r.n_common_prefixes = o.n_cps;
    r.common_prefixes = o.cps;
    r.is_truncated = truncated;
    if (next_token)
        r.next_continuation_token = next_token;
    if ((rc = meta_pack_to_buf(&r.base, out)))
        cmn_err_set(err, rc, "out of memory");
out:
    atomic_fetch_add(&fsm->list_steps, it.steps);
    meta_omap_iter_close(&it);
    meta_store_read_end(&fsm->st, txn);
    list_out_free(&o);
    free(next_token);
    cmn_buf_free(&low);
    cmn_buf_free(&seek);
    cmn_buf_free(&last);
    return rc;
}

/* ---- Multipart uploads */

int meta_fsm_upload_get(struct meta_fsm *fsm, const char *upload_id, struct cmn_buf *out,
                        struct cmn_err *err)
{
    size_t n = strlen(S(upload_id));
    int rc = n == 0 || n > META_UPLOAD_ID_MAX ? -ENOENT
                                               : read_raw(fsm, META_DBI_UPLOADS, upload_id, n, out);
    if (rc == -ENOENT)
        return cmn_err_set(err, LODE_ENOUPLOAD, "upload '%.80s' does not exist", S(upload_id));
    return rc ? cmn_err_set(err, rc, "read upload: %s", lode_strerror(rc)) : 0;
}

int meta_fsm_part_list(struct meta_fsm *fsm, const Lode__PartListRequest *req,
                       struct cmn_buf *out, struct cmn_err *err)
{
    const char *id = S(req->upload_id);
    size_t idlen = strlen(id);
    uint32_t max = clamp_max(req->max_parts, META_LIST_MAX_KEYS, META_LIST_MAX_KEYS);
    Lode__PartListResponse r = LODE__PART_LIST_RESPONSE__INIT;
    Lode__UploadRecord *up = NULL;
    struct msg_list l = {0};
    struct meta_omap_iter it = {0};
    uint8_t k[META_UPLOAD_ID_MAX + 5];
    MDB_txn *txn = NULL;
    int rc;

    if (idlen == 0 || idlen > META_UPLOAD_ID_MAX)
        return cmn_err_set(err, LODE_ENOUPLOAD, "upload '%.80s' does not exist", id);
    if ((rc = meta_store_read_begin(&fsm->st, &txn)))
        return cmn_err_set(err, rc, "read transaction: %s", lode_strerror(rc));
    rc = meta_get_msg(txn, meta_dbi(fsm, META_DBI_UPLOADS), id, idlen,
                      &lode__upload_record__descriptor, (void **)&up);
    if (rc == -ENOENT) {
        rc = cmn_err_set(err, LODE_ENOUPLOAD, "upload '%s' does not exist", id);
        goto out;
    }
    if (rc || (rc = meta_omap_iter_open(&it, txn, meta_dbi(fsm, META_DBI_PARTS))))
        goto fail;
    memcpy(k, id, idlen);
    k[idlen] = 0;
    if (req->part_number_marker < UINT32_MAX) {
        meta_key_u32(k + idlen + 1, req->part_number_marker + 1);
        for (rc = meta_omap_seek(&it, k, idlen + 5); rc == 0 && it.valid;
             rc = meta_omap_next(&it)) {
            if (it.klen != idlen + 5 || memcmp(it.key, k, idlen + 1) != 0)
                break;
            if (l.n == max) {
                r.is_truncated = true;
                break;
            }
            if ((rc = msg_list_add(&l, &lode__part_info__descriptor, &it.val)))
                break;
        }
        if (rc)
            goto fail;
    }
    r.upload = up;
    r.n_parts = l.n;
    r.parts = (Lode__PartInfo **)l.v;
    if (l.n)
        r.next_part_number_marker = r.parts[l.n - 1]->number;
    if ((rc = meta_pack_to_buf(&r.base, out)))
        goto fail;
    goto out;
fail:
    cmn_err_set(err, rc, "list parts of upload '%s': %s", id, lode_strerror(rc));
out:
    meta_omap_iter_close(&it);
    meta_store_read_end(&fsm->st, txn);
    if (up)
        lode__upload_record__free_unpacked(up, NULL);
    msg_list_free(&l);
    return rc;
}

int meta_fsm_upload_list(struct meta_fsm *fsm, const Lode__UploadListRequest *req,
                         struct cmn_buf *out, struct cmn_err *err)
{
    const char *bucket = S(req->bucket), *prefix = S(req->prefix);
    const char *km = S(req->key_marker), *uim = S(req->upload_id_marker);
    size_t blen = strlen(bucket), plen = strlen(prefix), base = blen + 1;
    uint32_t max = clamp_max(req->max_uploads, META_LIST_MAX_KEYS, META_LIST_MAX_KEYS);
    Lode__UploadListResponse r = LODE__UPLOAD_LIST_RESPONSE__INIT;
    struct msg_list l = {0};
    struct meta_omap_iter it = {0};
    struct cmn_buf seek;
    bool excl = false;
    MDB_txn *txn = NULL;
    MDB_val v;
    int rc;

    cmn_buf_init(&seek);
    if (blen == 0 || blen > META_BUCKET_NAME_MAX)
        return cmn_err_set(err, LODE_ENOBUCKET, "bucket '%.80s' does not exist", bucket);
    /* Index keys are bucket NUL key NUL upload_id. After (key_marker, upload_id_marker)
     * means strictly after that entry; after key_marker alone means past every upload of
     * that key, i.e. from "key_marker \x01" on (keys hold no NUL). */
    rc = cmn_buf_append(&seek, bucket, blen) || cmn_buf_append_u8(&seek, 0) ? -ENOMEM : 0;
    if (rc == 0 && *km) {
        rc = cmn_buf_append(&seek, km, strlen(km)) ||
                     cmn_buf_append_u8(&seek, *uim ? 0 : 1) ||
                     cmn_buf_append(&seek, uim, strlen(uim))
                 ? -ENOMEM
                 : 0;
        excl = *uim != 0;
    }
    if (rc == 0 && bytes_cmp(seek.data + base, seek.len - base, prefix, plen) < 0) {
        seek.len = base;
        rc = cmn_buf_append(&seek, prefix, plen);
        excl = false;
    }
    if (rc)
        goto fail;
    if ((rc = meta_store_read_begin(&fsm->st, &txn)))
        goto fail;
    rc = meta_omap_get(txn, meta_dbi(fsm, META_DBI_BUCKETS), bucket, blen, &v);
    if (rc == -ENOENT) {
        rc = cmn_err_set(err, LODE_ENOBUCKET, "bucket '%s' does not exist", bucket);
        goto out;
    }
    if (rc || (rc = meta_omap_iter_open(&it, txn, meta_dbi(fsm, META_DBI_UPLOAD_IDX))))
        goto fail;
    rc = meta_omap_seek(&it, seek.data, seek.len);
    if (rc == 0 && excl && it.valid && it.klen == seek.len &&
        memcmp(it.key, seek.data, seek.len) == 0)
        rc = meta_omap_next(&it);
    for (; rc == 0 && it.valid; rc = meta_omap_next(&it)) {
        if (it.klen < base + plen || memcmp(it.key, seek.data, base) != 0 ||
            memcmp(it.key + base, prefix, plen) != 0)
            break;
        const uint8_t *nul = memrchr(it.key + base, 0, it.klen - base);
        if (!nul) {
            rc = -EIO;
            break;
        }
        if (l.n == max) {
            r.is_truncated = true;
            break;
        }
        MDB_val uv;
        const uint8_t *id = nul + 1;
        size_t idlen = it.klen - (size_t)(id - it.key);
        rc = meta_omap_get(txn, meta_dbi(fsm, META_DBI_UPLOADS), id, idlen, &uv);
        if (rc || (rc = msg_list_add(&l, &lode__upload_record__descriptor, &uv))) {
            rc = rc == -ENOENT ? -EIO : rc;
            break;
        }
    }
    if (rc)
        goto fail;
    r.n_uploads = l.n;
    r.uploads = (Lode__UploadRecord **)l.v;
    if (r.is_truncated && l.n) {
        r.next_key_marker = r.uploads[l.n - 1]->key;
        r.next_upload_id_marker = r.uploads[l.n - 1]->upload_id;
    }
    if ((rc = meta_pack_to_buf(&r.base, out)))
        goto fail;
    goto out;
fail:
    cmn_err_set(err, rc, "list uploads of bucket '%s': %s", bucket, lode_strerror(rc));
out:
    meta_omap_iter_close(&it);
    meta_store_read_end(&fsm->st, txn);
    msg_list_free(&l);
    cmn_buf_free(&seek);
    return rc;
}

/* ---- Users, keys, GC, members */

int meta_fsm_user_list(struct meta_fsm *fsm, struct cmn_buf *out)
{
    MDB_txn *txn;
    struct msg_list l = {0};
    Lode__UserListResponse r = LODE__USER_LIST_RESPONSE__INIT;
    int rc = meta_store_read_begin(&fsm->st, &txn);
    if (rc)
        return rc;
    rc = collect(fsm, txn, META_DBI_USERS, NULL, 0, 0, &lode__user_record__descriptor, &l);
    meta_store_read_end(&fsm->st, txn);
    if (rc == 0) {
        r.n_users = l.n;
        r.users = (Lode__UserRecord **)l.v;
        rc = meta_pack_to_buf(&r.base, out);
    }
    msg_list_free(&l);
    return rc;
}

int meta_fsm_access_key_get(struct meta_fsm *fsm, const char *access_key, struct cmn_buf *out,
                            struct cmn_err *err)
{
    size_t n = strlen(S(access_key));
    int rc = n == 0 || n > META_ACCESS_KEY_MAX ? -ENOENT
                                                : read_raw(fsm, META_DBI_KEYS, access_key, n, out);
    if (rc == -ENOENT)
        return cmn_err_set(err, LODE_ENOACCESSKEY, "no such access key");
    return rc ? cmn_err_set(err, rc, "read access key: %s", lode_strerror(rc)) : 0;
}

int meta_fsm_gc_list(struct meta_fsm *fsm, uint64_t after_seq, uint32_t max, struct cmn_buf *out)
{
    MDB_txn *txn;
    struct msg_list l = {0};
    Lode__GcListResponse r = LODE__GC_LIST_RESPONSE__INIT;
    uint8_t key[8];
    int rc = 0;
    if (after_seq < UINT64_MAX) {
        if ((rc = meta_store_read_begin(&fsm->st, &txn)))
            return rc;
        meta_key_u64(key, after_seq + 1);
        rc = collect(fsm, txn, META_DBI_GC, key, sizeof(key),
                     clamp_max(max, GC_LIST_DEFAULT, GC_LIST_MAX), &lode__gc_entry__descriptor, &l);
        meta_store_read_end(&fsm->st, txn);
    }
    if (rc == 0) {
        r.n_entries = l.n;
        r.entries = (Lode__GcEntry **)l.v;
        rc = meta_pack_to_buf(&r.base, out);
    }
    msg_list_free(&l);
    return rc;
}

int meta_fsm_corrupt_list(struct meta_fsm *fsm, uint32_t nid, uint32_t max, struct cmn_buf *out)
{
    MDB_txn *txn;
    struct msg_list l = {0};
    Lode__CorruptListResponse r = LODE__CORRUPT_LIST_RESPONSE__INIT;
    uint8_t key[4];
    cmn_put_u32be(key, nid);
    int rc = meta_store_read_begin(&fsm->st, &txn);
    if (rc)
        return rc;
    rc = collect(fsm, txn, META_DBI_CORRUPT, nid ? key : NULL, nid ? sizeof(key) : 0,
                 clamp_max(max, GC_LIST_DEFAULT, GC_LIST_MAX), &lode__corrupt_chunk__descriptor,
                 &l);
    meta_store_read_end(&fsm->st, txn);
    /* Keys are nid first: entries of later nodes end the answer for one node. */
    size_t n = l.n;
    if (nid)
        for (n = 0; n < l.n && ((Lode__CorruptChunk *)l.v[n])->nid == nid; n++)
            ;
    if (rc == 0) {
        r.n_chunks = n;
        r.chunks = (Lode__CorruptChunk **)l.v;
        rc = meta_pack_to_buf(&r.base, out);
    }
    msg_list_free(&l);
    return rc;
}

int meta_fsm_member_get(struct meta_fsm *fsm, uint64_t id, struct cmn_buf *out)
{
    uint8_t key[8];
    meta_key_u64(key, id);
    return read_raw(fsm, META_DBI_MEMBERS, key, sizeof(key), out);
}

int meta_fsm_member_list(struct meta_fsm *fsm, struct cmn_buf *out)
{
    MDB_txn *txn;
    struct msg_list l = {0};
    Lode__MetaStatusResponse r = LODE__META_STATUS_RESPONSE__INIT;
    int rc = meta_store_read_begin(&fsm->st, &txn);
    if (rc)
        return rc;
    rc = collect(fsm, txn, META_DBI_MEMBERS, NULL, 0, 0, &lode__meta_member__descriptor, &l);
    meta_store_read_end(&fsm->st, txn);
    if (rc == 0) {
        r.n_voters = l.n;
        r.voters = (Lode__MetaMember **)l.v;
        rc = meta_pack_to_buf(&r.base, out);
    }
    msg_list_free(&l);
    return rc;
}
