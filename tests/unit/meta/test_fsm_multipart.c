/* The metadata state machine's multipart uploads: create, parts (replaced parts to GC),
 * complete (part order, ETags, if_absent, unlisted parts and the replaced object to GC),
 * abort, and the uploads of a deleted bucket. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "meta/fsm.h"
#include "tests/tap.h"
#include "tests/unit/meta/fsm_helpers.h"

/* ---- builders */

static int create_upload(const char *bucket, const char *key, const char *id)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CreateUpload cu = LODE__CREATE_UPLOAD__INIT;
    Lode__UploadRecord u = LODE__UPLOAD_RECORD__INIT;
    Lode__ObjectRecord t = LODE__OBJECT_RECORD__INIT;
    struct meta_fsm_result r;
    t.content_type = "text/plain";
    u.bucket = (char *)bucket;
    u.key = (char *)key;
    u.upload_id = (char *)id;
    u.owner = "alice";
    u.template_ = &t;
    cu.upload = &u;
    c.op_case = LODE__COMMAND__OP_CREATE_UPLOAD;
    c.create_upload = &cu;
    apply(&c, &r);
    if (r.status == 0 && strcmp(r.upload_id, id) != 0)
        return -999;
    return r.status;
}

static int put_part(const char *id, uint32_t number, uint64_t size, const char *etag,
                    Lode__Layout *layout)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__PutPart pp = LODE__PUT_PART__INIT;
    Lode__PartInfo p = LODE__PART_INFO__INIT;
    struct meta_fsm_result r;
    p.number = number;
    p.size = size;
    p.etag = (char *)etag;
    p.layout = layout;
    pp.upload_id = (char *)id;
    pp.part = &p;
    c.op_case = LODE__COMMAND__OP_PUT_PART;
    c.put_part = &pp;
    apply(&c, &r);
    return r.status;
}

static int complete_upload(const char *id, const uint32_t *numbers, const char *const *etags,
                           size_t n, bool if_absent, uint64_t *version, char *msg)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CompleteUpload cu = LODE__COMPLETE_UPLOAD__INIT;
    Lode__CompletePart parts[8], *pp[8];
    struct meta_fsm_result r;
    for (size_t i = 0; i < n; i++) {
        lode__complete_part__init(&parts[i]);
        parts[i].number = numbers[i];
        parts[i].etag = (char *)etags[i];
        pp[i] = &parts[i];
    }
    cu.upload_id = (char *)id;
    cu.n_parts = n;
    cu.parts = pp;
    cu.if_absent = if_absent;
    cu.etag = "feedfacefeedfacefeedfacefeedface-2";
    c.op_case = LODE__COMMAND__OP_COMPLETE_UPLOAD;
    c.complete_upload = &cu;
    apply(&c, &r);
    if (version)
        *version = r.version;
    if (msg)
        snprintf(msg, 256, "%s", r.message);
    return r.status;
}

static int abort_upload(const char *id)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__AbortUpload a = LODE__ABORT_UPLOAD__INIT;
    struct meta_fsm_result r;
    a.upload_id = (char *)id;
    c.op_case = LODE__COMMAND__OP_ABORT_UPLOAD;
    c.abort_upload = &a;
    apply(&c, &r);
    return r.status;
}

/* ---- multipart */

static Lode__UploadRecord *get_upload(const char *id, int *code)
{
    struct cmn_buf b = {0};
    *code = meta_fsm_upload_get(fsm, id, &b, NULL);
    Lode__UploadRecord *u = *code ? NULL : lode__upload_record__unpack(NULL, b.len, b.data);
    cmn_buf_free(&b);
    return u;
}

static void test_multipart(void)
{
    struct lay p1, p2, p2b, p3, old;
    uint64_t v;
    int code;
    char msg[256];

    is_int(create_bucket("mpu", "alice"), 0, "bucket mpu");
    is_int(create_upload("nobucket", "k", "u0"), LODE_ENOBUCKET, "upload in missing bucket");
    is_int(create_upload("mpu", "", "u0"), LODE_EINVALNAME, "upload with empty key");
    is_int(create_upload("mpu", "k", ""), -EINVAL, "upload without id");
    is_int(create_upload("mpu", "big", "u1"), 0, "create upload u1");
    is_int(create_upload("mpu", "other", "u1"), -EEXIST, "upload ids are unique");
    Lode__UploadRecord *u = get_upload("u1", &code);
    ok(u && strcmp(u->key, "big") == 0 && u->initiated_ms == now_ms && u->template_ &&
           strcmp(u->template_->content_type, "text/plain") == 0,
       "upload record stored with template and time");
    lode__upload_record__free_unpacked(u, NULL);

    is_int(put_part("nope", 1, 5, "e1", NULL), LODE_ENOUPLOAD, "part of missing upload");
    is_int(put_part("u1", 0, 5, "e1", NULL), LODE_EBADPART, "part number 0");
    is_int(put_part("u1", 10001, 5, "e1", NULL), LODE_EBADPART, "part number 10001");
    is_int(put_part("u1", 1, 5, "e1", lay_init(&p1, 201, 6)), 0, "part 1");
    is_int(put_part("u1", 2, 6, "e2old", lay_init(&p2, 202, 6)), 0, "part 2");
    uint64_t gc0 = gc_last_seq();
    is_int(put_part("u1", 2, 7, "e2", lay_init(&p2b, 212, 6)), 0, "part 2 replaced");
    is_int(gc_count(gc0, 202, "overwrite"), 6, "replaced part's chunks go to GC");
    is_int(put_part("u1", 3, 8, "e3", lay_init(&p3, 203, 6)), 0, "part 3");
    is_int(put_part("u1", 10000, 1, "e4", NULL), 0, "part 10000 allowed");

    const uint32_t n12[] = {1, 2}, n21[] = {2, 1}, n11[] = {1, 1}, n15[] = {1, 5};
    const char *e12[] = {"e1", "e2"}, *e12q[] = {"\"e1\"", "\"e2\""}, *e1x[] = {"e1", "bad"};
    is_int(complete_upload("nope", n12, e12, 2, false, NULL, NULL), LODE_ENOUPLOAD,
           "complete missing upload");
    is_int(complete_upload("u1", n12, e12, 0, false, NULL, NULL), LODE_EBADPART,
           "complete with no parts");
    is_int(complete_upload("u1", n21, e12, 2, false, NULL, msg), LODE_EPARTORDER,
           "descending parts");
    ok(strstr(msg, "ascending") != NULL, "order message: %s", msg);
    is_int(complete_upload("u1", n11, e12, 2, false, NULL, NULL), LODE_EPARTORDER,
           "repeated part number");
    is_int(complete_upload("u1", n15, e12, 2, false, NULL, msg), LODE_EBADPART,
           "part never uploaded");
    is_int(complete_upload("u1", n12, e1x, 2, false, NULL, msg), LODE_EBADPART,
           "ETag mismatch");
    ok(strstr(msg, "part 2") != NULL, "mismatch message names the part: %s", msg);

    is_int(put_object("mpu", "big", 1, lay_init(&old, 299, 2), 0, false, NULL), 0,
           "an object the upload will replace");
    is_int(complete_upload("u1", n12, e12q, 2, true, NULL, NULL), LODE_EPRECONDITION,
           "if_absent complete onto an existing object");
    u = get_upload("u1", &code);
    ok(u != NULL, "a failed complete leaves the upload");
    lode__upload_record__free_unpacked(u, NULL);

    uint64_t gc1 = gc_last_seq();
    now_ms += 5000;
    is_int(complete_upload("u1", n12, e12q, 2, false, &v, NULL), 0,
           "complete with parts 1,2 (quoted ETags)");
    Lode__ObjectRecord *o = get_object(fsm, "mpu", "big", &code);
    ok(o && o->version == v && o->size == 12 && o->n_parts == 2 && o->parts[0]->number == 1 &&
           o->parts[1]->number == 2 && o->parts[1]->size == 7 &&
           strcmp(o->etag, "feedfacefeedfacefeedfacefeedface-2") == 0 &&
           strcmp(o->content_type, "text/plain") == 0 && strcmp(o->owner, "alice") == 0 &&
           o->mtime_ms == now_ms && !o->layout,
       "object assembled from the template and the listed parts");
    ok(o && o->parts[0]->layout && chunk_tag(o->parts[0]->layout->stripes[0]->chunks[0]) == 201,
       "parts keep their layouts");
    lode__object_record__free_unpacked(o, NULL);
    is_int(gc_count(gc1, 203, "unlisted-part"), 6, "unlisted part 3 goes to GC");
    is_int(gc_count(gc1, 299, "overwrite"), 2, "the replaced object goes to GC");
    is_int(gc_count(gc1, 201, "unlisted-part") + gc_count(gc1, 212, "unlisted-part"), 0,
           "listed parts stay");
    is_int(gc_total(gc1), 8, "nothing else enqueued");
    u = get_upload("u1", &code);
    ok(!u && code == LODE_ENOUPLOAD, "completed upload is gone");
    is_int(put_part("u1", 1, 5, "e1", NULL), LODE_ENOUPLOAD, "no parts after completion");

    is_int(abort_upload("u1"), LODE_ENOUPLOAD, "abort a completed upload");
    is_int(create_upload("mpu", "k2", "u2"), 0, "upload u2");
    is_int(put_part("u2", 1, 5, "e1", lay_init(&p1, 221, 6)), 0, "u2 part 1");
    is_int(put_part("u2", 2, 5, "e2", lay_init(&p2, 222, 4)), 0, "u2 part 2");
    uint64_t gc2 = gc_last_seq();
    is_int(abort_upload("u2"), 0, "abort u2");
    is_int(gc_count(gc2, 221, "abort") + gc_count(gc2, 222, "abort"), 10,
           "abort sends every part's chunks to GC");
    u = get_upload("u2", &code);
    ok(!u && code == LODE_ENOUPLOAD, "aborted upload is gone");

    /* Deleting a bucket aborts its pending uploads. */
    is_int(create_bucket("mpu2", "alice"), 0, "bucket mpu2");
    is_int(create_upload("mpu2", "x", "u3"), 0, "upload u3");
    is_int(create_upload("mpu2", "y", "u4"), 0, "upload u4");
    is_int(put_part("u3", 1, 5, "e", lay_init(&p1, 231, 6)), 0, "u3 part");
    is_int(put_part("u4", 7, 5, "e", lay_init(&p2, 241, 6)), 0, "u4 part");
    uint64_t gc3 = gc_last_seq();
    is_int(delete_bucket("mpu2"), 0, "delete bucket with pending uploads");
    is_int(gc_count(gc3, 231, "abort") + gc_count(gc3, 241, "abort"), 12,
           "their parts go to GC");
    u = get_upload("u3", &code);
    ok(!u && code == LODE_ENOUPLOAD, "uploads of the deleted bucket are gone");
    is_int(create_bucket("mpu2", "alice"), 0, "recreate mpu2");
    struct cmn_buf b = {0};
    Lode__UploadListRequest ur = LODE__UPLOAD_LIST_REQUEST__INIT;
    ur.bucket = "mpu2";
    is_int(meta_fsm_upload_list(fsm, &ur, &b, NULL), 0, "list uploads of recreated mpu2");
    Lode__UploadListResponse *ul = lode__upload_list_response__unpack(NULL, b.len, b.data);
    ok(ul && ul->n_uploads == 0, "no uploads survive");
    lode__upload_list_response__free_unpacked(ul, NULL);
    cmn_buf_free(&b);
}

int main(void)
{
    make_root("test_fsm_multipart");
    cmn_log_set_level(CMN_LOG_WARN);
    fsm = open_at("main", 0);
    test_multipart();
    meta_fsm_close(fsm);
    remove_root();
    return tap_done();
}
