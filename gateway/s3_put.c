/* Writes: PutObject and UploadPart (the request body through checksums into an objput,
 * then the record to meta), CopyObject and UploadPartCopy (the source through objget into
 * an objput). Nothing becomes visible before meta has the record; every failure before that
 * closes the objput, which queues its chunks for collection. A staged upload (an rc1 token,
 * gateway/s3_fanout.h) runs the same pipeline with RDMA READs of the client's window in
 * place of the request body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc_methods.h"
#include "gateway/cksum.h"
#include "gateway/etag.h"
#include "gateway/objget.h"
#include "gateway/objput.h"
#include "gateway/s3_fanout.h"
#include "gateway/s3_request.h"
#include "gateway/s3_xml.h"
#include "lode/errno.h"

#define SMALL_DOC_MAX (64u << 10)

/* Where a put's data goes and what commits it: a whole object (OBJECT_PUT) or a part of a
 * multipart upload (PART_PUT). */
struct put_state {
    bool part;
    uint64_t size;
    struct gw_objput *put;
    Lode__Layout *layout;            /* delivered by objput, until meta answered */
    struct gw_cksum_set cks;
    bool cks_on;
    struct gw_cksum_request creq;
    bool has_md5;
    uint8_t md5[GW_MD5_SIZE];
    struct gw_user_meta um;
    bool if_absent;
    uint64_t if_version;
    char etag[GW_ETAG_MAX];
    struct gw_cksum_value cval;      /* the x-amz-checksum stored with the object or part */
    bool has_cval;
    Lode__UploadRecord *upload;      /* UploadPart */
    /* A staged upload: the token, and the reader of the client's window once started. */
    bool rdma;
    struct gw_s3_rdma rd;
    struct gw_rc_put *rcput;
    /* CopyObject / UploadPartCopy: the source, read through objget into the put. */
    bool copy;
    Lode__ObjectRecord *src;
    bool meta_from_src;              /* metadata directive COPY */
    uint64_t src_first;
    struct gw_objget *get;
    struct { const uint8_t *p; size_t len, off; } q[GW_OBJGET_WINDOW_MAX + 1];
    unsigned q_head, q_n;
    bool get_done;
};

static void put_state_free(struct gw_s3_req *r)
{
    struct put_state *ps = r->op;
    if (!ps)
        return;
    /* After a delivered layout this only frees; otherwise the chunks go to the collector. */
    gw_s3_rdma_put_detach(ps->rcput);
    gw_objget_close(ps->get);
    gw_objput_close(ps->put);
    gw_layout_free(ps->layout);
    if (ps->src)
        lode__object_record__free_unpacked(ps->src, NULL);
    if (ps->cks_on)
        gw_cksum_set_close(&ps->cks);
    gw_user_meta_free(&ps->um);
    if (ps->upload)
        lode__upload_record__free_unpacked(ps->upload, NULL);
    free(ps);
    r->op = NULL;
}

static void put_cancel(struct gw_s3_req *r)
{
    /* A meta call in flight ends the request when it returns. */
    if (!r->busy)
        gw_s3_end(r, true);
}

static size_t put_data(struct gw_s3_req *r, const uint8_t *p, size_t n)
{
    struct put_state *ps = r->op;
    ssize_t t = gw_objput_write(ps->put, p, n);
    if (t < 0) {
        gw_s3_fail_lode(r, (int)t, "object write failed");
        return n;
    }
    if (t > 0)
        gw_cksum_set_update(&ps->cks, p, (size_t)t);
    return (size_t)t;
}

static void copy_pump(struct gw_s3_req *r);

static void put_ready(void *data)
{
    struct gw_s3_req *r = data;
    struct put_state *ps = r->op;
    if (r->ended)
        return;
    if (ps->copy)
        copy_pump(r);
    else
        gw_s3_body_resume(r); /* the connection, or the staged upload's reader */
}

static void put_committed(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct put_state *ps = r->op;
    int st = res->status;
    Lode__CommandResult *cr = NULL;
    if (st == 0) {
        cr = (Lode__CommandResult *)protobuf_c_message_unpack(&lode__command_result__descriptor,
                                                              NULL, res->body.len,
                                                              res->body.data);
        st = cr ? cr->status : LODE_EBADMSG;
    }
    if (st != 0) {
        /* Meta refused the record: the chunks belong to nothing. */
        gw_objput_discard(r->w->meta, ps->layout, "failed-put");
        if (cr)
            lode__command_result__free_unpacked(cr, NULL);
        if (st == LODE_EPRECONDITION) {
            struct gw_s3_err e;
            gw_s3_err_set(&e, GW_S3_PRECONDITION_FAILED, NULL);
            gw_s3_err_extra(&e, "Condition", "%s", ps->if_absent ? "If-None-Match" : "If-Match");
            gw_s3_fail(r, &e);
        } else if (st == LODE_ENOUPLOAD) {
            gw_s3_failf(r, GW_S3_NO_SUCH_UPLOAD, NULL);
        } else {
            gw_s3_fail_lode(r, st, res->message);
        }
        return;
    }
    lode__command_result__free_unpacked(cr, NULL);
    if (ps->copy) {
        struct gw_checksums ck;
        struct gw_xml_w xw;
        memset(&ck, 0, sizeof(ck));
        gw_xml_w_init(&xw, SMALL_DOC_MAX);
        gw_xml_copy_result(&xw, ps->part, (struct gw_str){ps->etag, strlen(ps->etag)},
                           r->now_ms, &ck);
        gw_s3_respond_xml(r, 200, &xw, NULL, 0);
        return;
    }
    char etag[GW_ETAG_MAX + 4];
    snprintf(etag, sizeof(etag), "\"%s\"", ps->etag);
    struct gw_header h[4];
    size_t n = 0;
    h[n++] = (struct gw_header){GW_STR("ETag"), {etag, strlen(etag)}};
    if (ps->rdma)
        h[n++] = (struct gw_header){GW_STR("x-amz-rdma-reply"), GW_STR("200")};
    if (ps->has_cval) {
        const char *hn = gw_cksum_alg_header(ps->cval.alg);
        h[n++] = (struct gw_header){{hn, strlen(hn)}, {ps->cval.text, strlen(ps->cval.text)}};
    }
    gw_s3_respond_empty(r, 200, h, n);
}

static void put_commit(struct gw_s3_req *r)
{
    struct put_state *ps = r->op;
    Lode__Checksum ck = LODE__CHECKSUM__INIT, *ckp = &ck;
    Lode__Command cmd;
    if (ps->has_cval) {
        ck.algorithm = (char *)gw_cksum_alg_name(ps->cval.alg);
        ck.value = ps->cval.text;
    }
    if (ps->part) {
        Lode__PartInfo pi = LODE__PART_INFO__INIT;
        Lode__PutPart pp = LODE__PUT_PART__INIT;
        char *id = strndup(r->route.upload_id.p, r->route.upload_id.n);
        if (!id) {
            gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
            return;
        }
        pi.number = r->route.part_number;
        pi.size = ps->size;
        pi.etag = ps->etag;
        pi.layout = ps->layout;
        pi.mtime_ms = r->now_ms;
        if (ps->has_cval) {
            pi.n_checksums = 1;
            pi.checksums = &ckp;
        }
        pp.upload_id = id;
        pp.part = &pi;
        gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_PUT_PART);
        cmd.put_part = &pp;
        gw_s3_meta_call(r, CMN_RPC_PART_PUT, &cmd.base, put_committed);
        free(id);
        return;
    }
    Lode__ObjectRecord rec = LODE__OBJECT_RECORD__INIT;
    Lode__PutObject po = LODE__PUT_OBJECT__INIT;
    Lode__KeyValue kv[64], *kvp[64];
    Lode__KeyValue hv[5], *hvp[5];
    char hbuf[5][1024], ctype[1024] = "";
    size_t nkv = 0, nh = 0;
    for (size_t i = 0; i < ps->um.n && nkv < 64; i++, nkv++) {
        lode__key_value__init(&kv[nkv]);
        kv[nkv].key = ps->um.v[i].name;
        kv[nkv].value = ps->um.v[i].value;
        kvp[nkv] = &kv[nkv];
    }
    for (size_t i = 0; i < 5; i++) {
        const struct gw_header *h = gw_header_find(r->head, gw_s3_std_object_headers[i]);
        if (!h || h->value.n >= sizeof(hbuf[0]))
            continue;
        memcpy(hbuf[nh], h->value.p, h->value.n);
        hbuf[nh][h->value.n] = '\0';
        lode__key_value__init(&hv[nh]);
        hv[nh].key = (char *)gw_s3_std_object_headers[i];
        hv[nh].value = hbuf[nh];
        hvp[nh] = &hv[nh];
        nh++;
    }
    const struct gw_header *ct = gw_header_find(r->head, "Content-Type");
    if (ct && ct->value.n < sizeof(ctype)) {
        memcpy(ctype, ct->value.p, ct->value.n);
        ctype[ct->value.n] = '\0';
    }
    rec.size = ps->size;
    rec.etag = ps->etag;
    rec.content_type = ctype;
    if (ps->meta_from_src) {
        rec.content_type = ps->src->content_type;
        rec.n_user_meta = ps->src->n_user_meta;
        rec.user_meta = ps->src->user_meta;
        rec.n_headers = ps->src->n_headers;
        rec.headers = ps->src->headers;
    }
    rec.mtime_ms = r->now_ms;
    if (!ps->meta_from_src) {
        rec.n_user_meta = nkv;
        rec.user_meta = kvp;
        rec.n_headers = nh;
        rec.headers = hvp;
    }
    if (ps->has_cval) {
        ck.full_object = true;
        rec.n_checksums = 1;
        rec.checksums = &ckp;
    }
    rec.layout = ps->layout;
    rec.owner = r->user;
    po.bucket = r->route.bucket;
    po.key = r->route.key;
    po.record = &rec;
    po.if_absent = ps->if_absent;
    po.if_version = ps->if_version;
    gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_PUT_OBJECT);
    cmd.put_object = &po;
    gw_s3_meta_call(r, CMN_RPC_OBJECT_PUT, &cmd.base, put_committed);
}

static void put_done(void *data, int status, const char *message, Lode__Layout *layout)
{
    struct gw_s3_req *r = data;
    struct put_state *ps = r->op;
    if (r->ended)
        return;
    if (status != 0) {
        gw_s3_fail_lode(r, status, message);
        return;
    }
    ps->layout = layout;
    put_commit(r);
}

/* The body ended: every check before anything is committed. */
static void put_end(struct gw_s3_req *r, const struct gw_s3_err *err)
{
    struct put_state *ps = r->op;
    struct gw_cksum_set_result res;
    const char *msg = NULL;

    if (err->code != GW_S3_OK) {
        gw_s3_fail(r, err);
        return;
    }
    if (gw_cksum_set_final(&ps->cks, &res) != 0) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    gw_etag_from_md5(res.v[GW_CKSUM_MD5].raw, ps->etag);
    if (ps->has_md5 && gw_content_md5_check(ps->md5, res.v[GW_CKSUM_MD5].raw, &msg) != GW_S3_OK) {
        gw_s3_failf(r, GW_S3_BAD_DIGEST, "%s", msg);
        return;
    }
    enum gw_cksum_alg alg = ps->creq.alg;
    if (alg != GW_CKSUM_NONE) {
        struct gw_cksum_value claimed;
        bool have = ps->creq.has_value;
        if (have) {
            claimed = ps->creq.value;
        } else {
            const char *tv = gw_s3_body_trailer(r, gw_cksum_alg_header(alg));
            if (tv) {
                if (gw_cksum_parse(alg, (struct gw_str){tv, strlen(tv)}, false, &claimed,
                                   &msg) != GW_S3_OK) {
                    gw_s3_failf(r, GW_S3_INVALID_REQUEST, "%s", msg);
                    return;
                }
                have = true;
            }
        }
        if (have && gw_cksum_check(&res.v[alg], &claimed, &msg) != GW_S3_OK) {
            gw_s3_failf(r, GW_S3_BAD_DIGEST, "%s", msg);
            return;
        }
        ps->cval = res.v[alg];
        ps->has_cval = true;
    }
    int rc = gw_objput_finish(ps->put);
    if (rc != 0)
        gw_s3_fail_lode(r, rc, "object write failed");
}

static void copy_begin(struct gw_s3_req *r);

static void put_begin(struct gw_s3_req *r)
{
    struct put_state *ps = r->op;
    const struct gw_config *cfg = r->w->ctx->cfg;
    struct cmn_err err;

    struct gw_cluster_map *map = gw_cluster_map_get(r->w->ctx->cluster);
    if (!map) {
        gw_s3_failf(r, GW_S3_SERVICE_UNAVAILABLE, "The cluster map is not known yet.");
        return;
    }
    struct gw_objput_config pc = {
        .loop = r->w->loop,
        .pool = r->w->pool,
        .meta = r->w->meta,
        .map = map,
        .policy = {.k = (unsigned)cfg->ec_data, .m = (unsigned)cfg->ec_parity,
                   .max_chunk_size = (uint32_t)cfg->chunk_size,
                   .small_threshold = cfg->small_object_threshold},
        .allow_degraded = true,
        .size = ps->size,
        .seed = (uint64_t)r->now_ms * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)r,
        .window = cfg->inflight_stripes > 0 ? (unsigned)cfg->inflight_stripes : 0,
        .timeout_ms = (uint32_t)cfg->node_timeout_ms,
        .done = put_done,
        .ready = put_ready,
        .data = r,
    };
    if (r->bucket && r->bucket->ec_k) {
        pc.policy.k = r->bucket->ec_k;
        pc.policy.m = r->bucket->ec_m;
    }
    cmn_err_clear(&err);
    int rc = gw_objput_create(&pc, &ps->put, &err);
    gw_cluster_map_put(map);
    if (rc) {
        gw_s3_fail_lode(r, rc, cmn_err_text(&err));
        return;
    }
    unsigned mask = GW_CKSUM_BIT(GW_CKSUM_MD5);
    if (ps->creq.alg != GW_CKSUM_NONE)
        mask |= GW_CKSUM_BIT(ps->creq.alg);
    if (gw_cksum_set_init(&ps->cks, mask) != 0) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    ps->cks_on = true;
    if (ps->copy)
        copy_begin(r);
    else if (ps->rdma)
        gw_s3_rdma_put_start(r, &ps->rd, put_data, put_end, &ps->rcput);
    else
        gw_s3_body_start(r, put_data, put_end);
}

static void put_current(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct put_state *ps = r->op;
    struct gw_conditions c;
    struct gw_s3_err e;
    Lode__ObjectRecord *rec = NULL;
    if (res->status != LODE_ENOKEY &&
        !(rec = (Lode__ObjectRecord *)gw_s3_unpack(r, &lode__object_record__descriptor, res)))
        return;
    gw_conditions_from_headers(r->head, false, &c);
    gw_s3_err_clear(&e);
    enum gw_s3_error ce = gw_conditions_eval(
        &c, GW_COND_WRITE, rec != NULL,
        rec ? (struct gw_str){rec->etag, strlen(rec->etag)} : (struct gw_str){"", 0},
        rec ? rec->mtime_ms : 0, &e);
    if (rec) {
        ps->if_version = rec->version;
        lode__object_record__free_unpacked(rec, NULL);
    }
    if (ce != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    put_begin(r);
}

static void upload_checked(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct put_state *ps = r->op;
    if (res->status == LODE_ENOUPLOAD) {
        gw_s3_failf(r, GW_S3_NO_SUCH_UPLOAD, NULL);
        return;
    }
    ps->upload = (Lode__UploadRecord *)gw_s3_unpack(r, &lode__upload_record__descriptor, res);
    if (!ps->upload)
        return;
    if (strcmp(ps->upload->bucket, r->route.bucket) != 0 ||
        strcmp(ps->upload->key, r->route.key) != 0) {
        gw_s3_failf(r, GW_S3_NO_SUCH_UPLOAD, NULL);
        return;
    }
    const Lode__ObjectRecord *t = ps->upload->template_;
    if (t && t->n_checksums && ps->creq.alg == GW_CKSUM_NONE) {
        /* The upload named an algorithm: every part carries that checksum. */
        const char *msg;
        enum gw_cksum_alg alg;
        if (gw_cksum_alg_parse((struct gw_str){t->checksums[0]->algorithm,
                                               strlen(t->checksums[0]->algorithm)},
                               &alg, &msg) == GW_S3_OK)
            ps->creq.alg = alg;
    }
    put_begin(r);
}

/* PutObject and UploadPart: what the headers say, before any body byte. rd: a staged
 * upload's served rc1 token, or NULL. */
static void put_start(struct gw_s3_req *r, bool part, const struct gw_s3_rdma *rd)
{
    const struct gw_config *cfg = r->w->ctx->cfg;
    const char *msg = NULL;
    struct gw_s3_err e;
    struct put_state *ps = calloc(1, sizeof(*ps));

    if (!ps) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = ps;
    r->op_free = put_state_free;
    r->op_cancel = put_cancel;
    ps->part = part;
    int64_t len = gw_s3_body_length(r);
    if (rd) {
        /* The object is the token's window (rdma-s3-wire.md 2.4); the body is empty. */
        ps->rdma = true;
        ps->rd = *rd;
        if (gw_sigv4_payload_is_streaming(r->auth.payload) || len != 0) {
            gw_s3_failf(r, GW_S3_INVALID_REQUEST,
                        "An upload with an rc1 x-amz-rdma-token carries its bytes in the "
                        "client's window: the request body must be empty (Content-Length: 0).");
            return;
        }
        if (!gw_s3_rdma_put_ready(r, &ps->rd))
            return;
        len = (int64_t)(rd->tok.size > INT64_MAX ? INT64_MAX : rd->tok.size);
    }
    if (len < 0) {
        gw_s3_failf(r, GW_S3_MISSING_CONTENT_LENGTH, NULL);
        return;
    }
    ps->size = (uint64_t)len;
    if (ps->size > cfg->max_put_size || ps->size > GW_OBJECT_MAX) {
        gw_s3_err_set(&e, GW_S3_ENTITY_TOO_LARGE, NULL);
        gw_s3_err_extra(&e, "ProposedSize", "%llu", (unsigned long long)ps->size);
        gw_s3_err_extra(&e, "MaxSizeAllowed", "%llu", (unsigned long long)cfg->max_put_size);
        gw_s3_fail(r, &e);
        return;
    }
    gw_s3_err_clear(&e);
    if (!part && gw_user_meta_collect(r->head, &ps->um, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    if (gw_cksum_request_parse(r->head, &ps->creq, &msg) != GW_S3_OK) {
        gw_s3_failf(r, GW_S3_INVALID_REQUEST, "%s", msg);
        return;
    }
    if (ps->creq.alg == GW_CKSUM_NONE) {
        /* A checksum announced only as a trailer (x-amz-trailer) names the algorithm too. */
        const struct gw_header *t = gw_header_find(r->head, "x-amz-trailer");
        for (size_t i = 0, j; t && i < t->value.n; i = j + 1) {
            for (j = i; j < t->value.n && t->value.p[j] != ','; j++)
                ;
            struct gw_str name = {t->value.p + i, j - i};
            while (name.n && (name.p[0] == ' ' || name.p[0] == '\t')) {
                name.p++;
                name.n--;
            }
            while (name.n && (name.p[name.n - 1] == ' ' || name.p[name.n - 1] == '\t'))
                name.n--;
            enum gw_cksum_alg alg = gw_cksum_alg_from_header(name);
            if (alg != GW_CKSUM_NONE) {
                ps->creq.alg = alg;
                break;
            }
        }
    }
    const struct gw_header *md5 = gw_header_find(r->head, "Content-MD5");
    if (md5) {
        if (gw_content_md5_parse(md5->value, ps->md5, &msg) != GW_S3_OK) {
            gw_s3_failf(r, GW_S3_INVALID_DIGEST, "%s", msg);
            return;
        }
        ps->has_md5 = true;
    }
    if (part) {
        char *id = strndup(r->route.upload_id.p, r->route.upload_id.n);
        if (!id) {
            gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
            return;
        }
        Lode__UploadGetRequest q = LODE__UPLOAD_GET_REQUEST__INIT;
        q.upload_id = id;
        gw_s3_meta_call(r, CMN_RPC_UPLOAD_GET, &q.base, upload_checked);
        free(id);
        return;
    }
    struct gw_conditions c;
    gw_conditions_from_headers(r->head, false, &c);
    if (c.has_match) {
        Lode__ObjectGetRequest q = LODE__OBJECT_GET_REQUEST__INIT;
        q.bucket = r->route.bucket;
        q.key = r->route.key;
        gw_s3_meta_call(r, CMN_RPC_OBJECT_GET, &q.base, put_current);
        return;
    }
    if (c.has_none_match) {
        if (!(c.if_none_match.n == 1 && c.if_none_match.p[0] == '*')) {
            gw_s3_failf(r, GW_S3_NOT_IMPLEMENTED, "If-None-Match accepts only '*' on writes.");
            return;
        }
        ps->if_absent = true;
    }
    put_begin(r);
}

void gw_s3_put_object(struct gw_s3_req *r)
{
    put_start(r, false, NULL);
}

void gw_s3_put_object_rdma(struct gw_s3_req *r, const struct gw_s3_rdma *rd)
{
    put_start(r, false, rd);
}

void gw_s3_upload_part_rdma(struct gw_s3_req *r, const struct gw_s3_rdma *rd)
{
    put_start(r, true, rd);
}

/* ---- CopyObject and UploadPartCopy: the source through objget into an objput ---- */

#define COPY_Q (GW_OBJGET_WINDOW_MAX + 1)

static void copy_finish(struct gw_s3_req *r)
{
    struct put_state *ps = r->op;
    struct gw_cksum_set_result res;
    if (gw_cksum_set_final(&ps->cks, &res) != 0) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    gw_etag_from_md5(res.v[GW_CKSUM_MD5].raw, ps->etag);
    if (ps->creq.alg != GW_CKSUM_NONE) {
        ps->cval = res.v[ps->creq.alg];
        ps->has_cval = true;
    }
    int rc = gw_objput_finish(ps->put);
    if (rc != 0)
        gw_s3_fail_lode(r, rc, "copy write failed");
}

static void copy_pump(struct gw_s3_req *r)
{
    struct put_state *ps = r->op;
    while (ps->q_n) {
        unsigned i = ps->q_head;
        const uint8_t *p = ps->q[i].p + ps->q[i].off;
        size_t n = ps->q[i].len - ps->q[i].off;
        ssize_t t = gw_objput_write(ps->put, p, n);
        if (t < 0) {
            gw_s3_fail_lode(r, (int)t, "copy write failed");
            return;
        }
        if (t)
            gw_cksum_set_update(&ps->cks, p, (size_t)t);
        ps->q[i].off += (size_t)t;
        if ((size_t)t < n)
            return; /* objput's ready callback pumps again */
        gw_objget_consumed(ps->get, ps->q[i].len);
        ps->q_head = (ps->q_head + 1) % COPY_Q;
        ps->q_n--;
    }
    if (ps->get_done)
        copy_finish(r);
}

static void copy_data(void *data, const uint8_t *p, size_t len)
{
    struct gw_s3_req *r = data;
    struct put_state *ps = r->op;
    if (r->ended)
        return;
    if (ps->q_n == COPY_Q) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    unsigned i = (ps->q_head + ps->q_n) % COPY_Q;
    ps->q[i].p = p;
    ps->q[i].len = len;
    ps->q[i].off = 0;
    ps->q_n++;
    if (ps->q_n == 1)
        copy_pump(r);
}

static void copy_got_all(void *data, int status, const char *message)
{
    struct gw_s3_req *r = data;
    struct put_state *ps = r->op;
    if (r->ended)
        return;
    if (status != 0) {
        gw_s3_fail_lode(r, status, message);
        return;
    }
    ps->get_done = true;
    if (ps->q_n == 0)
        copy_finish(r);
}

static void copy_begin(struct gw_s3_req *r)
{
    struct put_state *ps = r->op;
    struct cmn_err err;
    struct gw_cluster_map *map = gw_cluster_map_get(r->w->ctx->cluster);
    if (!map) {
        gw_s3_failf(r, GW_S3_SERVICE_UNAVAILABLE, "The cluster map is not known yet.");
        return;
    }
    struct gw_objget_config gc = {
        .loop = r->w->loop,
        .pool = r->w->pool,
        .meta = r->w->meta,
        .map = map,
        .record = ps->src,
        .offset = ps->src_first,
        .length = ps->size,
        .window = (unsigned)r->w->ctx->cfg->inflight_stripes,
        .timeout_ms = (uint32_t)r->w->ctx->cfg->node_timeout_ms,
        .on_data = copy_data,
        .on_done = copy_got_all,
        .data = r,
    };
    cmn_err_clear(&err);
    int rc = gw_objget_create(&gc, &ps->get, &err);
    gw_cluster_map_put(map);
    if (rc)
        gw_s3_fail_lode(r, rc, cmn_err_text(&err));
}

static void copy_source_got(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct put_state *ps = r->op;
    const struct gw_config *cfg = r->w->ctx->cfg;
    struct gw_conditions c;
    struct gw_s3_err e;
    const char *msg;

    if (res->status == LODE_ENOKEY) {
        gw_s3_err_set(&e, GW_S3_NO_SUCH_KEY, "The specified copy source does not exist.");
        gw_s3_err_extra(&e, "Key", "%s", r->route.copy_source.key);
        gw_s3_fail(r, &e);
        return;
    }
    ps->src = (Lode__ObjectRecord *)gw_s3_unpack(r, &lode__object_record__descriptor, res);
    if (!ps->src)
        return;
    gw_conditions_from_headers(r->head, true, &c);
    gw_s3_err_clear(&e);
    if (gw_conditions_eval(&c, GW_COND_COPY_SOURCE, true,
                           (struct gw_str){ps->src->etag, strlen(ps->src->etag)},
                           ps->src->mtime_ms, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    ps->src_first = 0;
    ps->size = ps->src->size;
    const struct gw_header *rh = gw_header_find(r->head, "x-amz-copy-source-range");
    if (ps->part && rh) {
        struct gw_range rg;
        if (gw_copy_range_parse(rh->value, ps->src->size, &rg, &e) != GW_S3_OK) {
            gw_s3_fail(r, &e);
            return;
        }
        ps->src_first = rg.first;
        ps->size = rg.last - rg.first + 1;
    }
    if (ps->size > cfg->max_put_size) {
        gw_s3_failf(r, GW_S3_ENTITY_TOO_LARGE, NULL);
        return;
    }
    if (!ps->part) {
        ps->meta_from_src = !r->route.replace_metadata;
        if (!ps->meta_from_src && gw_user_meta_collect(r->head, &ps->um, &e) != GW_S3_OK) {
            gw_s3_fail(r, &e);
            return;
        }
        /* A whole-object checksum of the source is kept for the copy, recomputed. */
        if (ps->src->n_checksums && ps->src->n_parts == 0)
            gw_cksum_alg_parse((struct gw_str){ps->src->checksums[0]->algorithm,
                                               strlen(ps->src->checksums[0]->algorithm)},
                               &ps->creq.alg, &msg);
        put_begin(r);
        return;
    }
    char *id = strndup(r->route.upload_id.p, r->route.upload_id.n);
    if (!id) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    Lode__UploadGetRequest q = LODE__UPLOAD_GET_REQUEST__INIT;
    q.upload_id = id;
    gw_s3_meta_call(r, CMN_RPC_UPLOAD_GET, &q.base, upload_checked);
    free(id);
}

static void copy_get_source(struct gw_s3_req *r)
{
    Lode__ObjectGetRequest q = LODE__OBJECT_GET_REQUEST__INIT;
    q.bucket = r->route.copy_source.bucket;
    q.key = r->route.copy_source.key;
    gw_s3_meta_call(r, CMN_RPC_OBJECT_GET, &q.base, copy_source_got);
}

static void copy_source_bucket(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    if (res->status == LODE_ENOBUCKET) {
        gw_s3_failf(r, GW_S3_NO_SUCH_BUCKET, "The copy source bucket does not exist.");
        return;
    }
    Lode__BucketRecord *b =
        (Lode__BucketRecord *)gw_s3_unpack(r, &lode__bucket_record__descriptor, res);
    if (!b)
        return;
    bool mine = strcmp(b->owner, r->user) == 0;
    lode__bucket_record__free_unpacked(b, NULL);
    if (!mine) {
        gw_s3_failf(r, GW_S3_ACCESS_DENIED, NULL);
        return;
    }
    copy_get_source(r);
}

static void copy_start(struct gw_s3_req *r, bool part)
{
    struct put_state *ps = calloc(1, sizeof(*ps));
    if (!ps) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = ps;
    r->op_free = put_state_free;
    r->op_cancel = put_cancel;
    ps->part = part;
    ps->copy = true;
    if (strcmp(r->route.copy_source.bucket, r->route.bucket)) {
        /* The source bucket must be the caller's too. */
        Lode__NameRequest nr = LODE__NAME_REQUEST__INIT;
        nr.name = r->route.copy_source.bucket;
        gw_s3_meta_call(r, CMN_RPC_BUCKET_HEAD, &nr.base, copy_source_bucket);
        return;
    }
    copy_get_source(r);
}

void gw_s3_upload_part(struct gw_s3_req *r)
{
    if (r->route.op == GW_OP_UPLOAD_PART_COPY)
        copy_start(r, true);
    else
        put_start(r, true, NULL);
}

void gw_s3_copy_object(struct gw_s3_req *r)
{
    copy_start(r, false);
}

