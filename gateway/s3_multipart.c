/* Multipart uploads: CreateMultipartUpload, CompleteMultipartUpload, AbortMultipartUpload,
 * ListParts, ListMultipartUploads over meta's UPLOAD_* and PART_* calls (the listing's
 * pages are built by s3_uplist.c). UploadPart and UploadPartCopy store data through the
 * object write path (s3_put.c), with the bucket's erasure scheme as PutObject. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc_methods.h"
#include "gateway/cksum.h"
#include "gateway/etag.h"
#include "gateway/s3_fanout.h"
#include "gateway/s3_request.h"
#include "gateway/s3_uplist.h"
#include "gateway/s3_xml.h"
#include "lode/errno.h"

#define DOC_MAX (8u << 20)
/* S3's smallest part, the last one excepted. */
#define PART_MIN_SIZE (5u << 20)

bool gw_s3_is_multipart_op(enum gw_s3_op op)
{
    switch (op) {
    case GW_OP_CREATE_MULTIPART_UPLOAD:
    case GW_OP_UPLOAD_PART:
    case GW_OP_UPLOAD_PART_COPY:
    case GW_OP_COMPLETE_MULTIPART_UPLOAD:
    case GW_OP_ABORT_MULTIPART_UPLOAD:
    case GW_OP_LIST_PARTS:
    case GW_OP_LIST_MULTIPART_UPLOADS:
        return true;
    default:
        return false;
    }
}

static char *upload_id_dup(const struct gw_s3_req *r)
{
    return strndup(r->route.upload_id.p ? r->route.upload_id.p : "", r->route.upload_id.n);
}

static void fail_no_such_upload(struct gw_s3_req *r)
{
    struct gw_s3_err e;
    gw_s3_err_set(&e, GW_S3_NO_SUCH_UPLOAD, NULL);
    gw_s3_err_extra(&e, "UploadId", "%.*s", (int)r->route.upload_id.n, r->route.upload_id.p);
    gw_s3_fail(r, &e);
}

/* Whether an upload record is the one the request names (its bucket and key). */
static bool upload_matches(const struct gw_s3_req *r, const Lode__UploadRecord *u)
{
    return u && strcmp(u->bucket, r->route.bucket) == 0 && r->route.key &&
           strcmp(u->key, r->route.key) == 0;
}

/* ---- CreateMultipartUpload ---- */

struct create_state {
    struct gw_user_meta um;
    enum gw_cksum_alg alg;
    enum gw_cksum_type type;
};

static void create_state_free(struct gw_s3_req *r)
{
    struct create_state *cs = r->op;
    if (cs)
        gw_user_meta_free(&cs->um);
    free(cs);
    r->op = NULL;
}

static void create_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct create_state *cs = r->op;
    Lode__CommandResult *cr = gw_s3_command_result(r, res);
    if (!cr)
        return;
    struct gw_xml_w xw;
    gw_xml_w_init(&xw, DOC_MAX);
    gw_xml_initiate_upload(&xw, r->route.bucket, (struct gw_str){r->route.key, r->route.key_len},
                           (struct gw_str){cr->upload_id, strlen(cr->upload_id)});
    lode__command_result__free_unpacked(cr, NULL);
    struct gw_header h[2];
    size_t n = 0;
    if (cs->alg != GW_CKSUM_NONE) {
        const char *a = gw_cksum_alg_name(cs->alg), *t = gw_cksum_type_name(cs->type);
        h[n++] = (struct gw_header){GW_STR("x-amz-checksum-algorithm"), {a, strlen(a)}};
        h[n++] = (struct gw_header){GW_STR("x-amz-checksum-type"), {t, strlen(t)}};
    }
    gw_s3_respond_xml(r, 200, &xw, h, n);
}

static void create_upload(struct gw_s3_req *r)
{
    struct gw_s3_err e;
    const char *msg = NULL;
    struct create_state *cs = calloc(1, sizeof(*cs));
    if (!cs) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = cs;
    r->op_free = create_state_free;
    gw_s3_err_clear(&e);
    if (gw_user_meta_collect(r->head, &cs->um, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    const struct gw_header *ah = gw_header_find(r->head, "x-amz-checksum-algorithm");
    const struct gw_header *th = gw_header_find(r->head, "x-amz-checksum-type");
    if (ah && gw_cksum_alg_parse(ah->value, &cs->alg, &msg) != GW_S3_OK) {
        gw_s3_failf(r, GW_S3_INVALID_REQUEST, "%s", msg);
        return;
    }
    if (cs->alg != GW_CKSUM_NONE) {
        cs->type = gw_cksum_default_type(cs->alg);
        if (th && (gw_cksum_type_parse(th->value, &cs->type, &msg) != GW_S3_OK ||
                   gw_cksum_type_check(cs->alg, cs->type, &msg) != GW_S3_OK)) {
            gw_s3_failf(r, GW_S3_INVALID_REQUEST, "%s", msg);
            return;
        }
    } else if (th) {
        gw_s3_failf(r, GW_S3_INVALID_REQUEST,
                    "x-amz-checksum-type requires x-amz-checksum-algorithm.");
        return;
    }

    Lode__ObjectRecord tmpl = LODE__OBJECT_RECORD__INIT;
    Lode__UploadRecord up = LODE__UPLOAD_RECORD__INIT;
    Lode__CreateUpload cu = LODE__CREATE_UPLOAD__INIT;
    Lode__Command cmd;
    Lode__KeyValue kv[64], *kvp[64];
    Lode__KeyValue hv[5], *hvp[5];
    Lode__Checksum ck = LODE__CHECKSUM__INIT, *ckp = &ck;
    static const char *const std[] = {"Content-Encoding", "Content-Disposition",
                                      "Content-Language", "Cache-Control", "Expires"};
    size_t nkv = 0;
    for (size_t i = 0; i < cs->um.n && nkv < 64; i++, nkv++) {
        lode__key_value__init(&kv[nkv]);
        kv[nkv].key = cs->um.v[i].name;
        kv[nkv].value = cs->um.v[i].value;
        kvp[nkv] = &kv[nkv];
    }
    char hbuf[5][1024];
    size_t nh = 0;
    for (size_t i = 0; i < 5; i++) {
        const struct gw_header *h = gw_header_find(r->head, std[i]);
        if (!h || h->value.n >= sizeof(hbuf[0]))
            continue;
        memcpy(hbuf[nh], h->value.p, h->value.n);
        hbuf[nh][h->value.n] = '\0';
        lode__key_value__init(&hv[nh]);
        hv[nh].key = (char *)std[i];
        hv[nh].value = hbuf[nh];
        hvp[nh] = &hv[nh];
        nh++;
    }
    char ctype[1024] = "";
    const struct gw_header *ct = gw_header_find(r->head, "Content-Type");
    if (ct && ct->value.n < sizeof(ctype)) {
        memcpy(ctype, ct->value.p, ct->value.n);
        ctype[ct->value.n] = '\0';
    }
    tmpl.content_type = ctype;
    tmpl.n_user_meta = nkv;
    tmpl.user_meta = kvp;
    tmpl.n_headers = nh;
    tmpl.headers = hvp;
    if (cs->alg != GW_CKSUM_NONE) {
        /* The algorithm the parts must carry, remembered in the template (no value yet). */
        ck.algorithm = (char *)gw_cksum_alg_name(cs->alg);
        ck.value = "";
        ck.full_object = cs->type == GW_CKSUM_TYPE_FULL_OBJECT;
        tmpl.n_checksums = 1;
        tmpl.checksums = &ckp;
    }
    tmpl.owner = r->user;
    up.bucket = r->route.bucket;
    up.key = r->route.key;
    up.initiated_ms = r->now_ms;
    up.template_ = &tmpl;
    up.owner = r->user;
    cu.upload = &up;
    gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_CREATE_UPLOAD);
    cmd.create_upload = &cu;
    gw_s3_meta_call(r, CMN_RPC_UPLOAD_CREATE, &cmd.base, create_done);
}

/* ---- AbortMultipartUpload ---- */

static void abort_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    if (res->status == LODE_ENOUPLOAD) {
        fail_no_such_upload(r);
        return;
    }
    Lode__CommandResult *cr = gw_s3_command_result(r, res);
    if (!cr)
        return;
    lode__command_result__free_unpacked(cr, NULL);
    gw_s3_respond_empty(r, 204, NULL, 0);
}

static void abort_checked(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    if (res->status == LODE_ENOUPLOAD) {
        fail_no_such_upload(r);
        return;
    }
    Lode__UploadRecord *u =
        (Lode__UploadRecord *)gw_s3_unpack(r, &lode__upload_record__descriptor, res);
    if (!u)
        return;
    bool ok = upload_matches(r, u);
    lode__upload_record__free_unpacked(u, NULL);
    if (!ok) {
        fail_no_such_upload(r);
        return;
    }
    char *id = upload_id_dup(r);
    if (!id) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    Lode__AbortUpload au = LODE__ABORT_UPLOAD__INIT;
    Lode__Command cmd;
    au.upload_id = id;
    gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_ABORT_UPLOAD);
    cmd.abort_upload = &au;
    gw_s3_meta_call(r, CMN_RPC_UPLOAD_ABORT, &cmd.base, abort_done);
    free(id);
}

/* Asks meta for the upload record, then continues with `cb`. */
static void upload_get(struct gw_s3_req *r, gw_s3_meta_cb cb)
{
    char *id = upload_id_dup(r);
    if (!id) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    Lode__UploadGetRequest q = LODE__UPLOAD_GET_REQUEST__INIT;
    q.upload_id = id;
    gw_s3_meta_call(r, CMN_RPC_UPLOAD_GET, &q.base, cb);
    free(id);
}

/* ---- ListParts ---- */

struct parts_state {
    struct gw_list_params p;
};

static void parts_state_free(struct gw_s3_req *r)
{
    free(r->op);
    r->op = NULL;
}

static void checksums_of(Lode__Checksum **cs, size_t n, struct gw_checksums *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        struct gw_str v = {cs[i]->value, strlen(cs[i]->value)};
        if (!v.n)
            continue;
        if (!strcmp(cs[i]->algorithm, "CRC32"))
            out->crc32 = v;
        else if (!strcmp(cs[i]->algorithm, "CRC32C"))
            out->crc32c = v;
        else if (!strcmp(cs[i]->algorithm, "CRC64NVME"))
            out->crc64nvme = v;
        else if (!strcmp(cs[i]->algorithm, "SHA1"))
            out->sha1 = v;
        else if (!strcmp(cs[i]->algorithm, "SHA256"))
            out->sha256 = v;
    }
}

static void list_parts_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct parts_state *ps = r->op;
    if (res->status == LODE_ENOUPLOAD) {
        fail_no_such_upload(r);
        return;
    }
    Lode__PartListResponse *l =
        (Lode__PartListResponse *)gw_s3_unpack(r, &lode__part_list_response__descriptor, res);
    if (!l)
        return;
    if (!upload_matches(r, l->upload)) {
        lode__part_list_response__free_unpacked(l, NULL);
        fail_no_such_upload(r);
        return;
    }
    struct gw_part_entry *pe = calloc(l->n_parts ? l->n_parts : 1, sizeof(*pe));
    if (!pe) {
        lode__part_list_response__free_unpacked(l, NULL);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    for (size_t i = 0; i < l->n_parts; i++) {
        pe[i].number = l->parts[i]->number;
        pe[i].mtime_ms = l->parts[i]->mtime_ms;
        pe[i].etag = (struct gw_str){l->parts[i]->etag, strlen(l->parts[i]->etag)};
        pe[i].size = l->parts[i]->size;
        checksums_of(l->parts[i]->checksums, l->parts[i]->n_checksums, &pe[i].checksums);
    }
    struct gw_owner owner = gw_s3_owner(r);
    const char *alg = NULL;
    if (l->upload->template_ && l->upload->template_->n_checksums)
        alg = l->upload->template_->checksums[0]->algorithm;
    struct gw_parts_result pr = {
        .bucket = r->route.bucket,
        .key = {r->route.key, r->route.key_len},
        .upload_id = r->route.upload_id,
        .owner = &owner,
        .checksum_algorithm = alg,
        .truncated = l->is_truncated,
        .next_part_number_marker = l->next_part_number_marker,
        .entries = pe,
        .n_entries = l->n_parts,
    };
    struct gw_xml_w xw;
    gw_xml_w_init(&xw, DOC_MAX);
    gw_xml_list_parts(&xw, &ps->p, &pr);
    free(pe);
    lode__part_list_response__free_unpacked(l, NULL);
    gw_s3_respond_xml(r, 200, &xw, NULL, 0);
}

static void list_parts(struct gw_s3_req *r)
{
    struct gw_s3_err e;
    struct parts_state *ps = calloc(1, sizeof(*ps));
    if (!ps) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = ps;
    r->op_free = parts_state_free;
    gw_s3_err_clear(&e);
    if (gw_list_params_parse(&r->route, &ps->p, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    char *id = upload_id_dup(r);
    if (!id) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    Lode__PartListRequest q = LODE__PART_LIST_REQUEST__INIT;
    q.upload_id = id;
    q.part_number_marker = ps->p.part_number_marker;
    q.max_parts = ps->p.max ? ps->p.max : 1;
    gw_s3_meta_call(r, CMN_RPC_PART_LIST, &q.base, list_parts_done);
    free(id);
}

/* ---- ListMultipartUploads ---- */

struct uploads_state {
    struct gw_list_params p;
    struct gw_uplist ul;
};

static void uploads_state_free(struct gw_s3_req *r)
{
    struct uploads_state *us = r->op;
    if (us)
        gw_uplist_free(&us->ul);
    free(us);
    r->op = NULL;
}

static void list_uploads_respond(struct gw_s3_req *r)
{
    struct uploads_state *us = r->op;
    const struct gw_uplist *ul = &us->ul;
    size_t n_up = 0, n_pfx = 0;
    struct gw_upload_entry *ue = calloc(ul->n ? ul->n : 1, sizeof(*ue));
    struct gw_str *pfx = calloc(ul->n ? ul->n : 1, sizeof(*pfx));
    if (!ue || !pfx) {
        free(ue);
        free(pfx);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    struct gw_owner owner = gw_s3_owner(r);
    for (size_t i = 0; i < ul->n; i++) {
        const struct gw_uplist_entry *e = &ul->v[i];
        if (!e->upload_id) {
            pfx[n_pfx++] = (struct gw_str){e->key, strlen(e->key)};
            continue;
        }
        ue[n_up].key = (struct gw_str){e->key, strlen(e->key)};
        ue[n_up].upload_id = (struct gw_str){e->upload_id, strlen(e->upload_id)};
        ue[n_up].initiated_ms = e->initiated_ms;
        ue[n_up].owner = &owner;
        n_up++;
    }
    const char *nk, *nid;
    gw_uplist_next_markers(ul, &nk, &nid);
    struct gw_uploads_result ur = {
        .bucket = r->route.bucket,
        .truncated = ul->truncated,
        .next_key_marker = {nk, strlen(nk)},
        .next_upload_id_marker = {nid, strlen(nid)},
        .entries = ue,
        .n_entries = n_up,
        .prefixes = pfx,
        .n_prefixes = n_pfx,
    };
    struct gw_xml_w xw;
    gw_xml_w_init(&xw, DOC_MAX);
    gw_xml_list_uploads(&xw, &us->p, &ur);
    free(ue);
    free(pfx);
    gw_s3_respond_xml(r, 200, &xw, NULL, 0);
}

static void list_uploads_page(struct gw_s3_req *r, const struct cmn_rpc_result *res);

/* Asks meta for the next page the listing needs, or answers once it is complete. */
static void list_uploads_next(struct gw_s3_req *r)
{
    struct uploads_state *us = r->op;
    if (us->ul.done) {
        list_uploads_respond(r);
        return;
    }
    Lode__UploadListRequest q = LODE__UPLOAD_LIST_REQUEST__INIT;
    const char *prefix, *km, *um;
    uint32_t max;
    gw_uplist_query(&us->ul, &prefix, &km, &um, &max);
    q.bucket = r->route.bucket;
    q.prefix = (char *)prefix;
    q.key_marker = (char *)km;
    q.upload_id_marker = (char *)um;
    q.max_uploads = max;
    gw_s3_meta_call(r, CMN_RPC_UPLOAD_LIST, &q.base, list_uploads_page);
}

static void list_uploads_page(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct uploads_state *us = r->op;
    Lode__UploadListResponse *l =
        (Lode__UploadListResponse *)gw_s3_unpack(r, &lode__upload_list_response__descriptor, res);
    if (!l)
        return;
    struct gw_uplist_item *it = calloc(l->n_uploads ? l->n_uploads : 1, sizeof(*it));
    int rc = -ENOMEM;
    if (it) {
        for (size_t i = 0; i < l->n_uploads; i++) {
            it[i].key = l->uploads[i]->key;
            it[i].upload_id = l->uploads[i]->upload_id;
            it[i].initiated_ms = l->uploads[i]->initiated_ms;
        }
        rc = gw_uplist_feed(&us->ul, it, l->n_uploads, l->is_truncated);
    }
    free(it);
    lode__upload_list_response__free_unpacked(l, NULL);
    if (rc < 0) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    list_uploads_next(r);
}

static void list_uploads(struct gw_s3_req *r)
{
    struct gw_s3_err e;
    struct uploads_state *us = calloc(1, sizeof(*us));
    if (!us) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = us;
    r->op_free = uploads_state_free;
    gw_s3_err_clear(&e);
    if (gw_list_params_parse(&r->route, &us->p, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    struct gw_uplist_params up = {
        .prefix = us->p.prefix,
        .delimiter = us->p.has_delimiter ? us->p.delimiter : (struct gw_str){"", 0},
        .key_marker = us->p.key_marker,
        .upload_id_marker = us->p.upload_id_marker,
        .max = us->p.max,
    };
    if (gw_uplist_init(&us->ul, &up) != 0) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    /* max-uploads=0 is complete at once: an empty, untruncated page, as S3 answers. */
    list_uploads_next(r);
}

/* ---- CompleteMultipartUpload ---- */

struct complete_state {
    struct gw_complete_upload cu;
    Lode__UploadRecord *upload;
    Lode__PartInfo **parts;       /* stored parts, from PART_LIST pages, by number */
    Lode__PartListResponse **pages;
    size_t n_pages;
    uint32_t marker;
    bool if_absent;
    uint64_t if_version;
    char etag[GW_ETAG_MAX];
    struct gw_cksum_value cksum;
    bool has_cksum;
    bool full_object;
};

static void complete_state_free(struct gw_s3_req *r)
{
    struct complete_state *cs = r->op;
    if (!cs)
        return;
    gw_complete_upload_free(&cs->cu);
    for (size_t i = 0; i < cs->n_pages; i++)
        lode__part_list_response__free_unpacked(cs->pages[i], NULL);
    free(cs->pages);
    free(cs->parts);
    free(cs);
    r->op = NULL;
}

static void complete_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct complete_state *cs = r->op;
    if (res->status == LODE_ENOUPLOAD) {
        fail_no_such_upload(r);
        return;
    }
    Lode__CommandResult *cr = gw_s3_command_result(r, res);
    if (!cr)
        return;
    lode__command_result__free_unpacked(cr, NULL);
    char loc[GW_BUCKET_NAME_MAX + GW_KEY_MAX + 4];
    gw_s3_resource(r, loc, sizeof(loc));
    struct gw_checksums ck;
    memset(&ck, 0, sizeof(ck));
    if (cs->has_cksum) {
        struct gw_str v = {cs->cksum.text, strlen(cs->cksum.text)};
        switch (cs->cksum.alg) {
        case GW_CKSUM_CRC32: ck.crc32 = v; break;
        case GW_CKSUM_CRC32C: ck.crc32c = v; break;
        case GW_CKSUM_CRC64NVME: ck.crc64nvme = v; break;
        case GW_CKSUM_SHA1: ck.sha1 = v; break;
        case GW_CKSUM_SHA256: ck.sha256 = v; break;
        default: break;
        }
    }
    struct gw_xml_w xw;
    gw_xml_w_init(&xw, DOC_MAX);
    gw_xml_complete_upload_result(&xw, loc, r->route.bucket,
                                  (struct gw_str){r->route.key, r->route.key_len},
                                  (struct gw_str){cs->etag, strlen(cs->etag)}, &ck,
                                  cs->has_cksum ? (cs->full_object ? "FULL_OBJECT" : "COMPOSITE")
                                                : NULL);
    gw_s3_respond_xml(r, 200, &xw, NULL, 0);
}

static void complete_commit(struct gw_s3_req *r)
{
    struct complete_state *cs = r->op;
    const char *msg = NULL;
    size_t n = cs->cu.n;
    struct gw_str *etags = calloc(n, sizeof(*etags));
    Lode__CompletePart *cp = calloc(n, sizeof(*cp));
    Lode__CompletePart **cpp = calloc(n, sizeof(*cpp));
    char *id = upload_id_dup(r);
    if (!etags || !cp || !cpp || !id) {
        free(etags);
        free(cp);
        free(cpp);
        free(id);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    /* The parts named must exist with the ETags given; all but the last must be at least
     * 5 MiB; the checksum of the object comes from the stored parts' checksums. */
    enum gw_cksum_alg alg = GW_CKSUM_NONE;
    const Lode__ObjectRecord *t = cs->upload->template_;
    if (t && t->n_checksums) {
        const char *m2;
        gw_cksum_alg_parse((struct gw_str){t->checksums[0]->algorithm,
                                           strlen(t->checksums[0]->algorithm)},
                           &alg, &m2);
        cs->full_object = t->checksums[0]->full_object;
    }
    struct gw_cksum_mp mp;
    bool mp_on = alg != GW_CKSUM_NONE &&
                 gw_cksum_mp_init(&mp, alg, cs->full_object ? GW_CKSUM_TYPE_FULL_OBJECT
                                                            : GW_CKSUM_TYPE_COMPOSITE) == 0;
    enum gw_s3_error bad = GW_S3_OK;
    for (size_t i = 0; i < n && bad == GW_S3_OK; i++) {
        const struct gw_complete_part *want = &cs->cu.parts[i];
        const Lode__PartInfo *have = want->number <= GW_XML_MAX_PARTS ? cs->parts[want->number]
                                                                      : NULL;
        if (!have || !gw_etag_equal(want->etag, have->etag)) {
            bad = GW_S3_INVALID_PART;
            break;
        }
        if (i + 1 < n && have->size < PART_MIN_SIZE) {
            bad = GW_S3_ENTITY_TOO_SMALL;
            break;
        }
        etags[i] = (struct gw_str){have->etag, strlen(have->etag)};
        lode__complete_part__init(&cp[i]);
        cp[i].number = want->number;
        cp[i].etag = have->etag;
        cpp[i] = &cp[i];
        if (mp_on) {
            struct gw_cksum_value pv;
            const Lode__Checksum *pc = NULL;
            for (size_t j = 0; j < have->n_checksums; j++)
                if (!strcmp(have->checksums[j]->algorithm, gw_cksum_alg_name(alg)))
                    pc = have->checksums[j];
            if (!pc || gw_cksum_parse(alg, (struct gw_str){pc->value, strlen(pc->value)}, false,
                                      &pv, &msg) != GW_S3_OK ||
                gw_cksum_mp_add(&mp, &pv, have->size) != 0)
                bad = GW_S3_INVALID_PART;
        }
    }
    if (bad == GW_S3_OK && gw_etag_multipart(etags, n, cs->etag, &msg) != GW_S3_OK)
        bad = GW_S3_INVALID_PART;
    if (bad == GW_S3_OK && mp_on && gw_cksum_mp_final(&mp, &cs->cksum) == 0)
        cs->has_cksum = true;
    if (mp_on)
        gw_cksum_mp_close(&mp);
    free(etags);
    if (bad != GW_S3_OK) {
        free(cp);
        free(cpp);
        free(id);
        gw_s3_failf(r, bad, NULL);
        return;
    }
    Lode__CompleteUpload cu = LODE__COMPLETE_UPLOAD__INIT;
    Lode__Checksum ck = LODE__CHECKSUM__INIT, *ckp = &ck;
    Lode__Command cmd;
    cu.upload_id = id;
    cu.n_parts = n;
    cu.parts = cpp;
    cu.etag = cs->etag;
    cu.if_absent = cs->if_absent;
    cu.if_version = cs->if_version;
    if (cs->has_cksum) {
        ck.algorithm = (char *)gw_cksum_alg_name(alg);
        ck.value = cs->cksum.text;
        ck.full_object = cs->full_object;
        cu.n_checksums = 1;
        cu.checksums = &ckp;
    }
    gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_COMPLETE_UPLOAD);
    cmd.complete_upload = &cu;
    gw_s3_meta_call(r, CMN_RPC_UPLOAD_COMPLETE, &cmd.base, complete_done);
    free(cp);
    free(cpp);
    free(id);
}

static void complete_parts_page(struct gw_s3_req *r, const struct cmn_rpc_result *res);

static void complete_next_page(struct gw_s3_req *r)
{
    struct complete_state *cs = r->op;
    char *id = upload_id_dup(r);
    if (!id) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    Lode__PartListRequest q = LODE__PART_LIST_REQUEST__INIT;
    q.upload_id = id;
    q.part_number_marker = cs->marker;
    q.max_parts = 1000;
    gw_s3_meta_call(r, CMN_RPC_PART_LIST, &q.base, complete_parts_page);
    free(id);
}

static void complete_parts_page(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct complete_state *cs = r->op;
    if (res->status == LODE_ENOUPLOAD) {
        fail_no_such_upload(r);
        return;
    }
    Lode__PartListResponse *l =
        (Lode__PartListResponse *)gw_s3_unpack(r, &lode__part_list_response__descriptor, res);
    if (!l)
        return;
    Lode__PartListResponse **pages = realloc(cs->pages, (cs->n_pages + 1) * sizeof(*pages));
    if (!pages) {
        lode__part_list_response__free_unpacked(l, NULL);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    cs->pages = pages;
    cs->pages[cs->n_pages++] = l;
    if (!upload_matches(r, l->upload)) {
        fail_no_such_upload(r);
        return;
    }
    cs->upload = l->upload;
    for (size_t i = 0; i < l->n_parts; i++)
        if (l->parts[i]->number >= 1 && l->parts[i]->number <= GW_XML_MAX_PARTS)
            cs->parts[l->parts[i]->number] = l->parts[i];
    if (l->is_truncated && l->next_part_number_marker > cs->marker &&
        cs->n_pages < GW_XML_MAX_PARTS) {
        cs->marker = l->next_part_number_marker;
        complete_next_page(r);
        return;
    }
    complete_commit(r);
}

static void complete_current(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct complete_state *cs = r->op;
    struct gw_conditions c;
    struct gw_s3_err e;
    Lode__ObjectRecord *rec = NULL;
    if (res->status != LODE_ENOKEY) {
        rec = (Lode__ObjectRecord *)gw_s3_unpack(r, &lode__object_record__descriptor, res);
        if (!rec)
            return;
    }
    gw_conditions_from_headers(r->head, false, &c);
    gw_s3_err_clear(&e);
    enum gw_s3_error ce = gw_conditions_eval(
        &c, GW_COND_WRITE, rec != NULL,
        rec ? (struct gw_str){rec->etag, strlen(rec->etag)} : (struct gw_str){"", 0},
        rec ? rec->mtime_ms : 0, &e);
    if (rec)
        cs->if_version = rec->version;
    if (rec)
        lode__object_record__free_unpacked(rec, NULL);
    if (ce != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    complete_next_page(r);
}

static void complete_body(struct gw_s3_req *r, const struct gw_s3_err *err)
{
    struct gw_s3_err e;
    struct gw_conditions c;
    if (err->code != GW_S3_OK) {
        gw_s3_fail(r, err);
        return;
    }
    struct complete_state *cs = calloc(1, sizeof(*cs));
    if (!cs || !(cs->parts = calloc(GW_XML_MAX_PARTS + 1, sizeof(*cs->parts)))) {
        free(cs);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = cs;
    r->op_free = complete_state_free;
    gw_s3_err_clear(&e);
    if (gw_xml_parse_complete_upload(r->collected.data, r->collected.len, &cs->cu, &e) !=
        GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    gw_conditions_from_headers(r->head, false, &c);
    if (c.has_none_match || c.has_match) {
        /* If-None-Match: * needs no lookup (meta refuses when the key exists); If-Match
         * compares with the current object and then pins its version. */
        if (c.has_none_match && !c.has_match) {
            if (!(c.if_none_match.n == 1 && c.if_none_match.p[0] == '*')) {
                gw_s3_failf(r, GW_S3_NOT_IMPLEMENTED, "If-None-Match accepts only '*'.");
                return;
            }
            cs->if_absent = true;
        } else {
            Lode__ObjectGetRequest q = LODE__OBJECT_GET_REQUEST__INIT;
            q.bucket = r->route.bucket;
            q.key = r->route.key;
            gw_s3_meta_call(r, CMN_RPC_OBJECT_GET, &q.base, complete_current);
            return;
        }
    }
    complete_next_page(r);
}

/* ---- dispatch ---- */

void gw_s3_multipart_op(struct gw_s3_req *r)
{
    switch (r->route.op) {
    case GW_OP_CREATE_MULTIPART_UPLOAD:
        create_upload(r);
        return;
    case GW_OP_ABORT_MULTIPART_UPLOAD:
        upload_get(r, abort_checked);
        return;
    case GW_OP_LIST_PARTS:
        list_parts(r);
        return;
    case GW_OP_LIST_MULTIPART_UPLOADS:
        list_uploads(r);
        return;
    case GW_OP_COMPLETE_MULTIPART_UPLOAD:
        gw_s3_body_collect(r, GW_XML_COMPLETE_MAX_BODY, complete_body);
        return;
    case GW_OP_UPLOAD_PART: {
        struct gw_s3_rdma rd;
        if (!gw_s3_rdma_prepare(r, false, &rd))
            return;
        if (rd.d == GW_RDMA_SERVE) {
            gw_s3_upload_part_rdma(r, &rd); /* a staged upload */
            return;
        }
        if (rd.d != GW_RDMA_NONE) {
            gw_s3_rdma_decline_put(r, &rd); /* before anything is read or stored */
            return;
        }
        gw_s3_upload_part(r);
        return;
    }
    case GW_OP_UPLOAD_PART_COPY:
        gw_s3_upload_part(r);
        return;
    default:
        gw_s3_failf(r, GW_S3_NOT_IMPLEMENTED, NULL);
        return;
    }
}
