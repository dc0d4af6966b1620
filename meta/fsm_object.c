/* Object and multipart-upload commands of the state machine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/fsm_int.h"

#define S(s) ((s) ? (s) : "")

static bool key_valid(const char *key)
{
    size_t n = strlen(key);
    return n >= 1 && n <= META_NAME_MAX;
}

static bool upload_id_valid(const char *id)
{
    size_t len = strlen(id);
    if (len < 1 || len > META_UPLOAD_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (id[i] <= 0x20 || id[i] >= 0x7f)
            return false;
    return true;
}

/* bucket NUL key into out (META_KEY_BUF bytes); names were length-checked before. */
static size_t object_key(uint8_t *out, const char *bucket, const char *key)
{
    return meta_key_pair(out, bucket, strlen(bucket), key, strlen(key));
}

static size_t part_key(uint8_t *out, const char *upload_id, uint32_t number)
{
    size_t n = strlen(upload_id);
    memcpy(out, upload_id, n);
    out[n] = 0;
    meta_key_u32(out + n + 1, number);
    return n + 5;
}

/* bucket NUL key NUL upload_id */
static size_t upload_index_key(uint8_t *out, const Lode__UploadRecord *up)
{
    size_t n = object_key(out, S(up->bucket), S(up->key));
    out[n] = 0;
    size_t idlen = strlen(S(up->upload_id));
    memcpy(out + n + 1, S(up->upload_id), idlen);
    return n + 1 + idlen;
}

/* 0 when the bucket exists; otherwise records LODE_ENOBUCKET and returns 1; <0 on error. */
static int need_bucket(struct meta_op *op, const char *bucket)
{
    MDB_val v;
    size_t n = strlen(bucket);
    if (n == 0 || n > META_BUCKET_NAME_MAX) {
        meta_op_fail(op, LODE_ENOBUCKET, "bucket '%.80s' does not exist", bucket);
        return 1;
    }
    int rc = meta_omap_get(op->txn, meta_dbi(op->fsm, META_DBI_BUCKETS), bucket, n, &v);
    if (rc == -ENOENT) {
        meta_op_fail(op, LODE_ENOBUCKET, "bucket '%s' does not exist", bucket);
        return 1;
    }
    return rc;
}

static int object_get(struct meta_op *op, const uint8_t *key, size_t klen,
                      Lode__ObjectRecord **out)
{
    int rc = meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_OBJECTS), key, klen,
                          &lode__object_record__descriptor, (void **)out);
    if (rc == -ENOENT) {
        *out = NULL;
        return 0;
    }
    return rc;
}

/* Checks PutObject / CompleteUpload conditions against the current object (NULL when
 * absent). Returns true when the write may proceed, else records LODE_EPRECONDITION. */
static bool conditions_hold(struct meta_op *op, const Lode__ObjectRecord *cur, bool if_absent,
                            uint64_t if_version, const char *key)
{
    if (if_absent && cur) {
        meta_op_fail(op, LODE_EPRECONDITION, "object '%.100s' already exists (version %llu)", key,
                     (unsigned long long)cur->version);
        return false;
    }
    if (if_version && !cur) {
        meta_op_fail(op, LODE_EPRECONDITION,
                     "object '%.100s' does not exist (expected version %llu)", key,
                     (unsigned long long)if_version);
        return false;
    }
    if (if_version && cur->version != if_version) {
        meta_op_fail(op, LODE_EPRECONDITION,
                     "object '%.100s' is at version %llu, not %llu", key,
                     (unsigned long long)cur->version, (unsigned long long)if_version);
        return false;
    }
    return true;
}

int meta_op_put_object(struct meta_op *op)
{
    const Lode__PutObject *p = op->cmd->put_object;
    const char *bucket = S(p->bucket), *key = S(p->key);
    Lode__ObjectRecord *cur = NULL;
    uint8_t k[META_KEY_BUF];
    uint64_t version;
    int rc;

    if (!p->record)
        return meta_op_fail(op, LODE_EBADMSG, "put_object without a record");
    if ((rc = need_bucket(op, bucket)))
        return rc < 0 ? rc : 0;
    if (!key_valid(key))
        return meta_op_fail(op, LODE_EINVALNAME, "object key must be 1 to %d bytes",
                            META_NAME_MAX);
    size_t klen = object_key(k, bucket, key);
    if ((rc = object_get(op, k, klen, &cur)))
        return rc;
    if (!conditions_hold(op, cur, p->if_absent, p->if_version, key))
        goto out;
    if ((rc = meta_op_counter_next(op, META_SYS_NEXT_VERSION, 1, &version)))
        goto out;
    Lode__ObjectRecord rec = *p->record;
    rec.version = version;
    if (rec.mtime_ms == 0)
        rec.mtime_ms = op->now;
    if ((rc = meta_op_put_msg(op, META_DBI_OBJECTS, k, klen, &rec.base)))
        goto out;
    if (cur && (rc = meta_op_gc_object(op, cur, "overwrite")))
        goto out;
    op->res->version = version;
out:
    if (cur)
        lode__object_record__free_unpacked(cur, NULL);
    return rc;
}

int meta_op_delete_object(struct meta_op *op)
{
    const Lode__DeleteObject *d = op->cmd->delete_object;
    const char *bucket = S(d->bucket), *key = S(d->key);
    Lode__ObjectRecord *cur = NULL;
    uint8_t k[META_KEY_BUF];
    int rc;

    if ((rc = need_bucket(op, bucket)))
        return rc < 0 ? rc : 0;
    if (!key_valid(key))
        return meta_op_fail(op, LODE_ENOKEY, "no object '%.100s' in bucket '%s'", key, bucket);
    size_t klen = object_key(k, bucket, key);
    if ((rc = object_get(op, k, klen, &cur)))
        return rc;
    if (!cur)
        return meta_op_fail(op, LODE_ENOKEY, "no object '%.100s' in bucket '%s'", key, bucket);
    if (d->if_version && cur->version != d->if_version) {
        rc = meta_op_fail(op, LODE_EPRECONDITION, "object '%.100s' is at version %llu, not %llu",
                          key, (unsigned long long)cur->version,
                          (unsigned long long)d->if_version);
        goto out;
    }
    if ((rc = meta_op_del(op, META_DBI_OBJECTS, k, klen)))
        goto out;
    rc = meta_op_gc_object(op, cur, "delete");
out:
    lode__object_record__free_unpacked(cur, NULL);
    return rc;
}

static int upload_get(struct meta_op *op, const char *id, Lode__UploadRecord **out)
{
    size_t n = strlen(id);
    *out = NULL;
    if (n == 0 || n > META_UPLOAD_ID_MAX)
        return -ENOENT;
    return meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_UPLOADS), id, n,
                        &lode__upload_record__descriptor, (void **)out);
}

int meta_op_create_upload(struct meta_op *op)
{
    const Lode__UploadRecord *u = op->cmd->create_upload->upload;
    uint8_t ik[META_KEY_BUF];
    MDB_val v;
    int rc;

    if (!u)
        return meta_op_fail(op, LODE_EBADMSG, "create_upload without an upload");
    const char *bucket = S(u->bucket), *key = S(u->key), *id = S(u->upload_id);
    if ((rc = need_bucket(op, bucket)))
        return rc < 0 ? rc : 0;
    if (!key_valid(key))
        return meta_op_fail(op, LODE_EINVALNAME, "object key must be 1 to %d bytes",
                            META_NAME_MAX);
    if (!upload_id_valid(id))
        return meta_op_fail(op, -EINVAL, "upload id must be 1 to %d printable characters",
                            META_UPLOAD_ID_MAX);
    rc = meta_omap_get(op->txn, meta_dbi(op->fsm, META_DBI_UPLOADS), id, strlen(id), &v);
    if (rc == 0)
        return meta_op_fail(op, -EEXIST, "upload id '%s' is already in use", id);
    if (rc != -ENOENT)
        return rc;
    Lode__UploadRecord rec = *u;
    rec.bucket = (char *)bucket;
    rec.key = (char *)key;
    rec.upload_id = (char *)id;
    rec.owner = (char *)S(u->owner);
    rec.initiated_ms = op->now;
    if ((rc = meta_op_put_msg(op, META_DBI_UPLOADS, id, strlen(id), &rec.base)))
        return rc;
    size_t iklen = upload_index_key(ik, &rec);
    rc = meta_omap_put(op->txn, meta_dbi(op->fsm, META_DBI_UPLOAD_IDX), ik, iklen, "", 0,
                       &op->fsm->scratch);
    if (rc == 0)
        snprintf(op->res->upload_id, sizeof(op->res->upload_id), "%s", id);
    return rc;
}

int meta_op_put_part(struct meta_op *op)
{
    const Lode__PutPart *pp = op->cmd->put_part;
    const char *id = S(pp->upload_id);
    Lode__UploadRecord *up = NULL;
    Lode__PartInfo *old = NULL;
    uint8_t k[META_UPLOAD_ID_MAX + 5];
    int rc = upload_get(op, id, &up);

    if (rc == -ENOENT)
        return meta_op_fail(op, LODE_ENOUPLOAD, "upload '%.80s' does not exist", id);
    if (rc)
        return rc;
    if (!pp->part) {
        rc = meta_op_fail(op, LODE_EBADMSG, "put_part without a part");
        goto out;
    }
    if (pp->part->number < 1 || pp->part->number > META_PART_NUMBER_MAX) {
        rc = meta_op_fail(op, LODE_EBADPART, "part number %u is not in 1..%d", pp->part->number,
                          META_PART_NUMBER_MAX);
        goto out;
    }
    size_t klen = part_key(k, id, pp->part->number);
    rc = meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_PARTS), k, klen,
                      &lode__part_info__descriptor, (void **)&old);
    if (rc && rc != -ENOENT)
        goto out;
    Lode__PartInfo part = *pp->part;
    if (part.mtime_ms == 0)
        part.mtime_ms = op->now;
    if ((rc = meta_op_put_msg(op, META_DBI_PARTS, k, klen, &part.base)))
        goto out;
    if (old)
        rc = meta_op_gc_layout(op, old->layout, "overwrite");
out:
    if (old)
        lode__part_info__free_unpacked(old, NULL);
    lode__upload_record__free_unpacked(up, NULL);
    return rc;
}

static bool listed(const Lode__CompleteUpload *c, uint32_t number)
{
    size_t lo = 0, hi = c ? c->n_parts : 0;
    while (lo < hi) { /* parts are strictly ascending (checked before) */
        size_t mid = (lo + hi) / 2;
        if (c->parts[mid]->number == number)
            return true;
        if (c->parts[mid]->number < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Removes an upload, its index entry and its parts; parts not in `keep` (NULL: none) go to
 * GC with `reason`. */
static int upload_remove(struct meta_op *op, const Lode__UploadRecord *up,
                         const Lode__CompleteUpload *keep, const char *reason)
{
    const char *id = S(up->upload_id);
    uint8_t k[META_KEY_BUF];
    struct meta_omap_iter it;
    uint32_t *numbers = NULL;
    size_t n = 0, cap = 0;
    int rc;

    size_t plen = strlen(id) + 1; /* upload_id NUL */
    memcpy(k, id, plen);
    if ((rc = meta_omap_iter_open(&it, op->txn, meta_dbi(op->fsm, META_DBI_PARTS))))
        return rc;
    for (rc = meta_omap_seek(&it, k, plen); rc == 0 && it.valid; rc = meta_omap_next(&it)) {
        if (it.klen != plen + 4 || memcmp(it.key, k, plen) != 0)
            break;
        uint32_t number = cmn_get_u32be(it.key + plen);
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *grown = realloc(numbers, cap * sizeof(*numbers));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            numbers = grown;
        }
        numbers[n++] = number;
    }
    meta_omap_iter_close(&it);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t klen = part_key(k, id, numbers[i]);
        if (!listed(keep, numbers[i])) {
            Lode__PartInfo *p;
            rc = meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_PARTS), k, klen,
                              &lode__part_info__descriptor, (void **)&p);
            if (rc)
                break;
            rc = meta_op_gc_layout(op, p->layout, reason);
            lode__part_info__free_unpacked(p, NULL);
            if (rc)
                break;
        }
        rc = meta_op_del(op, META_DBI_PARTS, k, klen);
    }
    free(numbers);
    if (rc)
        return rc;
    size_t iklen = upload_index_key(k, up);
    if ((rc = meta_op_del(op, META_DBI_UPLOAD_IDX, k, iklen)))
        return rc;
    return meta_op_del(op, META_DBI_UPLOADS, id, strlen(id));
}

int meta_op_upload_drop(struct meta_op *op, const Lode__UploadRecord *up, const char *reason)
{
    return upload_remove(op, up, NULL, reason);
}

int meta_op_abort_upload(struct meta_op *op)
{
    const char *id = S(op->cmd->abort_upload->upload_id);
    Lode__UploadRecord *up;
    int rc = upload_get(op, id, &up);
    if (rc == -ENOENT)
        return meta_op_fail(op, LODE_ENOUPLOAD, "upload '%.80s' does not exist", id);
    if (rc)
        return rc;
    rc = upload_remove(op, up, NULL, "abort");
    lode__upload_record__free_unpacked(up, NULL);
    return rc;
}

/* Compares ETags ignoring surrounding quotes (clients echo them either way). */
static bool etag_equal(const char *a, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    if (al && a[0] == '"')
        a++, al--;
    if (al && a[al - 1] == '"')
        al--;
    if (bl && b[0] == '"')
        b++, bl--;
    if (bl && b[bl - 1] == '"')
        bl--;
    return al == bl && memcmp(a, b, al) == 0;
}

int meta_op_complete_upload(struct meta_op *op)
{
    const Lode__CompleteUpload *c = op->cmd->complete_upload;
    const char *id = S(c->upload_id);
    Lode__UploadRecord *up = NULL;
    Lode__ObjectRecord *cur = NULL;
    Lode__PartInfo **parts = NULL;
    uint8_t k[META_KEY_BUF];
    size_t got = 0;
    uint64_t size = 0, version;
    int rc = upload_get(op, id, &up);

    if (rc == -ENOENT)
        return meta_op_fail(op, LODE_ENOUPLOAD, "upload '%.80s' does not exist", id);
    if (rc)
        return rc;
    if (c->n_parts == 0) {
        rc = meta_op_fail(op, LODE_EBADPART, "an upload completes with at least one part");
        goto out;
    }
    for (size_t i = 0; i < c->n_parts; i++) {
        if (!c->parts[i]) {
            rc = meta_op_fail(op, LODE_EBADMSG, "complete_upload: part %zu is empty", i);
            goto out;
        }
        if (i && c->parts[i]->number <= c->parts[i - 1]->number) {
            rc = meta_op_fail(op, LODE_EPARTORDER,
                              "part numbers must be strictly ascending: %u after %u",
                              c->parts[i]->number, c->parts[i - 1]->number);
            goto out;
        }
    }
    if ((rc = need_bucket(op, S(up->bucket)))) {
        rc = rc < 0 ? rc : 0;
        goto out;
    }
    parts = calloc(c->n_parts, sizeof(*parts));
    if (!parts) {
        rc = -ENOMEM;
        goto out;
    }
    for (; got < c->n_parts; got++) {
        const Lode__CompletePart *want = c->parts[got];
        size_t klen = part_key(k, id, want->number);
        rc = meta_get_msg(op->txn, meta_dbi(op->fsm, META_DBI_PARTS), k, klen,
                          &lode__part_info__descriptor, (void **)&parts[got]);
        if (rc == -ENOENT) {
            rc = meta_op_fail(op, LODE_EBADPART, "part %u was not uploaded", want->number);
            goto out;
        }
        if (rc)
            goto out;
        if (!etag_equal(S(want->etag), parts[got]->etag)) {
            rc = meta_op_fail(op, LODE_EBADPART, "part %u: ETag '%.40s' does not match '%.40s'",
                              want->number, S(want->etag), parts[got]->etag);
            got++;
            goto out;
        }
        size += parts[got]->size;
    }

    size_t klen = object_key(k, S(up->bucket), S(up->key));
    if ((rc = object_get(op, k, klen, &cur)))
        goto out;
    if (!conditions_hold(op, cur, c->if_absent, c->if_version, S(up->key)))
        goto out;
    if ((rc = meta_op_counter_next(op, META_SYS_NEXT_VERSION, 1, &version)))
        goto out;
    Lode__ObjectRecord rec = LODE__OBJECT_RECORD__INIT;
    if (up->template_)
        rec = *up->template_;
    rec.version = version;
    rec.size = size;
    rec.etag = (char *)S(c->etag);
    rec.mtime_ms = op->now;
    rec.n_checksums = c->n_checksums;
    rec.checksums = c->checksums;
    rec.layout = NULL;
    rec.n_parts = c->n_parts;
    rec.parts = parts;
    if (!*S(rec.owner))
        rec.owner = (char *)S(up->owner);
    if ((rc = meta_op_put_msg(op, META_DBI_OBJECTS, k, klen, &rec.base)))
        goto out;
    if (cur && (rc = meta_op_gc_object(op, cur, "overwrite")))
        goto out;
    if ((rc = upload_remove(op, up, c, "unlisted-part")))
        goto out;
    op->res->version = version;
out:
    for (size_t i = 0; i < got; i++)
        if (parts[i])
            lode__part_info__free_unpacked(parts[i], NULL);
    free(parts);
    if (cur)
        lode__object_record__free_unpacked(cur, NULL);
    lode__upload_record__free_unpacked(up, NULL);
    return rc;
}
