/* Object operations: HeadObject, GetObject, DeleteObject, DeleteObjects, GetObjectAcl and
 * the tagging answers, and the dispatch of every object operation (the writes are in
 * s3_put.c). */
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc_methods.h"
#include "gateway/cksum.h"
#include "gateway/etag.h"
#include "gateway/objget.h"
#include "common/log.h"
#include "gateway/s3_fanout.h"
#include "gateway/s3_request.h"
#include "gateway/s3_xml.h"
#include "lode/errno.h"

#define SMALL_DOC_MAX (64u << 10)
#define DELETE_DOC_MAX (4u << 20)

/* ---- response headers of an object ---- */

#define GW_OBJ_HEADERS_MAX 48

/* The headers of an object response, names and values in one buffer. */
struct gw_obj_headers {
    size_t n;
    size_t name_off[GW_OBJ_HEADERS_MAX], name_len[GW_OBJ_HEADERS_MAX];
    size_t val_off[GW_OBJ_HEADERS_MAX], val_len[GW_OBJ_HEADERS_MAX];
    struct cmn_buf mem;
};

static void gw_obj_headers_free(struct gw_obj_headers *oh)
{
    cmn_buf_free(&oh->mem);
}

static void hdr_printf(struct gw_obj_headers *oh, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hdr_printf(struct gw_obj_headers *oh, const char *name, const char *fmt, ...)
{
    char tmp[2304];
    va_list ap;
    if (oh->n >= GW_OBJ_HEADERS_MAX || !name)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return;
    size_t noff = oh->mem.len, nlen = strlen(name);
    if (cmn_buf_append(&oh->mem, name, nlen) || cmn_buf_append(&oh->mem, tmp, (size_t)n)) {
        oh->mem.len = noff;
        return;
    }
    oh->name_off[oh->n] = noff;
    oh->name_len[oh->n] = nlen;
    oh->val_off[oh->n] = noff + nlen;
    oh->val_len[oh->n] = (size_t)n;
    oh->n++;
}

const char *const gw_s3_std_object_headers[GW_S3_STD_OBJECT_HEADERS] = {
    "Content-Encoding", "Content-Disposition", "Content-Language", "Cache-Control", "Expires",
};

static int gw_obj_headers_build(struct gw_obj_headers *oh, const Lode__ObjectRecord *rec,
                         const struct gw_overrides *ov, bool checksum_mode,
                         const Lode__PartInfo *part, size_t parts_count)
{
    char date[GW_HTTP_DATE_LEN + 1];
    memset(oh, 0, sizeof(*oh));
    cmn_buf_init(&oh->mem);
    if (cmn_buf_reserve(&oh->mem, 8192) != 0)
        return -ENOMEM;

    hdr_printf(oh, "ETag", "\"%s\"", part ? part->etag : rec->etag);
    if (gw_http_date_format(part ? part->mtime_ms : rec->mtime_ms, date) == 0)
        hdr_printf(oh, "Last-Modified", "%s", date);
    hdr_printf(oh, "Accept-Ranges", "bytes");
    const char *ctype = rec->content_type && rec->content_type[0] ? rec->content_type
                                                                   : "binary/octet-stream";
    bool ctype_overridden = false;
    for (size_t i = 0; ov && i < ov->n; i++)
        if (strcmp(ov->v[i].header, "Content-Type") == 0)
            ctype_overridden = true;
    if (!ctype_overridden)
        hdr_printf(oh, "Content-Type", "%s", ctype);
    for (size_t i = 0; i < rec->n_headers; i++) {
        const char *name = NULL;
        for (size_t j = 0; j < GW_S3_STD_OBJECT_HEADERS; j++)
            if (strcasecmp(rec->headers[i]->key, gw_s3_std_object_headers[j]) == 0)
                name = gw_s3_std_object_headers[j];
        if (!name)
            continue;
        bool overridden = false;
        for (size_t j = 0; ov && j < ov->n; j++)
            if (strcasecmp(ov->v[j].header, name) == 0)
                overridden = true;
        if (!overridden)
            hdr_printf(oh, name, "%s", rec->headers[i]->value);
    }
    for (size_t i = 0; ov && i < ov->n; i++)
        hdr_printf(oh, ov->v[i].header, "%.*s", (int)ov->v[i].value.n, ov->v[i].value.p);
    for (size_t i = 0; i < rec->n_user_meta; i++) {
        char name[300];
        snprintf(name, sizeof(name), "x-amz-meta-%s", rec->user_meta[i]->key);
        hdr_printf(oh, name, "%s", rec->user_meta[i]->value);
    }
    if (parts_count)
        hdr_printf(oh, "x-amz-mp-parts-count", "%zu", parts_count);
    if (checksum_mode) {
        Lode__Checksum **cs = part ? part->checksums : rec->checksums;
        size_t ncs = part ? part->n_checksums : rec->n_checksums;
        for (size_t i = 0; i < ncs; i++) {
            enum gw_cksum_alg alg = GW_CKSUM_NONE;
            const char *msg;
            if (gw_cksum_alg_parse((struct gw_str){cs[i]->algorithm, strlen(cs[i]->algorithm)},
                                   &alg, &msg) != GW_S3_OK)
                continue;
            hdr_printf(oh, gw_cksum_alg_header(alg), "%s", cs[i]->value);
            if (!part)
                hdr_printf(oh, "x-amz-checksum-type", "%s",
                           cs[i]->full_object ? "FULL_OBJECT" : "COMPOSITE");
        }
    }
    return 0;
}

static size_t gw_obj_headers_view(const struct gw_obj_headers *oh, struct gw_header *out,
                                  size_t cap)
{
    const char *base = (const char *)oh->mem.data;
    size_t n = 0;
    for (; n < oh->n && n < cap; n++) {
        out[n].name = (struct gw_str){base + oh->name_off[n], oh->name_len[n]};
        out[n].value = (struct gw_str){base + oh->val_off[n], oh->val_len[n]};
    }
    return n;
}

/* ---- the data path ---- */

/* ---- GetObject: objget -> socket, each slice returned once the kernel has it ---- */

struct get_stream {
    struct gw_s3_req *r;
    struct gw_objget *g;
    bool done;
    int status;
};

static void get_stream_free(void *data)
{
    struct get_stream *gs = data;
    gw_objget_close(gs->g);
    free(gs);
}

struct get_write {
    struct get_stream *gs;
    size_t len;
};

static void get_maybe_end(struct get_stream *gs)
{
    struct gw_s3_req *r = gs->r;
    /* Writes still queued hold r (busy), so the slices stay valid until they are out. */
    if (gs->done && !r->ended)
        gw_s3_end(r, gs->status != 0);
}

static void get_written(void *arg, int status)
{
    struct get_write *gw = arg;
    struct get_stream *gs = gw->gs;
    struct gw_s3_req *r = gs->r;
    size_t len = gw->len;
    free(gw);
    if (status == 0 && !r->ended)
        gw_objget_consumed(gs->g, len);
    else if (!r->ended)
        gw_s3_end(r, true);
    gw_s3_unbusy(r);
}

static void get_data(void *data, const uint8_t *p, size_t len)
{
    struct get_stream *gs = data;
    struct gw_s3_req *r = gs->r;
    if (r->ended)
        return;
    struct get_write *gw = malloc(sizeof(*gw));
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    if (!gw) {
        gw_s3_end(r, true);
        return;
    }
    gw->gs = gs;
    gw->len = len;
    if (gw_req_write(r->req, &b, 1, get_written, gw) != 0) {
        free(gw);
        gw_s3_end(r, true);
        return;
    }
    r->busy++;
}

/* Pipe segments go to the socket with splice (gw_req_write_pipe): the nodes' pages, never
 * copied through the gateway's memory. */
static void get_segs(void *data, const struct gw_objget_seg *segs, unsigned n, size_t total)
{
    struct get_stream *gs = data;
    struct gw_s3_req *r = gs->r;
    const struct gw_s3_metrics *m = r->w->ctx->metrics;
    (void)total;
    for (unsigned i = 0; i < n && !r->ended; i++) {
        if (m)
            cmn_counter_add(segs[i].fd < 0 ? m->get_buffered : m->get_spliced, segs[i].len);
        if (segs[i].fd < 0) {
            get_data(gs, segs[i].p, segs[i].len);
            continue;
        }
        struct get_write *gw = malloc(sizeof(*gw));
        if (!gw) {
            gw_s3_end(r, true);
            return;
        }
        gw->gs = gs;
        gw->len = segs[i].len;
        if (gw_req_write_pipe(r->req, segs[i].fd, segs[i].len, get_written, gw) != 0) {
            free(gw);
            gw_s3_end(r, true);
            return;
        }
        r->busy++;
    }
}

static void get_done(void *data, int status, const char *message)
{
    struct get_stream *gs = data;
    gs->done = true;
    gs->status = status;
    if (status != 0)
        cmn_log_write(CMN_LOG_WARN, "s3", "%s GetObject /%s/%s: read failed after the head: %s",
                      gw_req_id(gs->r->req), gs->r->route.bucket, gs->r->route.key, message);
    get_maybe_end(gs);
}

void gw_s3_get_stream(struct gw_s3_req *r, const Lode__ObjectRecord *rec, uint64_t first,
                      uint64_t len, int status, const struct gw_header *h, size_t n,
                      void **data, void (**data_free)(void *))
{
    struct cmn_err err;
    struct get_stream *gs = calloc(1, sizeof(*gs));
    if (!gs) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    gs->r = r;
    struct gw_cluster_map *map = gw_cluster_map_get(r->w->ctx->cluster);
    if (!map) {
        free(gs);
        gw_s3_failf(r, GW_S3_SERVICE_UNAVAILABLE, "The cluster map is not known yet.");
        return;
    }
    struct gw_objget_config gc = {
        .loop = r->w->loop,
        .pool = r->w->pool,
        .meta = r->w->meta,
        .map = map,
        .record = rec,
        .offset = first,
        .length = len,
        .window = (unsigned)r->w->ctx->cfg->inflight_stripes, /* read-ahead, as configured */
        .timeout_ms = (uint32_t)r->w->ctx->cfg->node_timeout_ms,
        .on_segs = get_segs,
        .on_done = get_done,
        .data = gs,
    };
    cmn_err_clear(&err);
    int rc = gw_objget_create(&gc, &gs->g, &err);
    gw_cluster_map_put(map);
    if (rc) {
        free(gs);
        gw_s3_fail_lode(r, rc, cmn_err_text(&err));
        return;
    }
    *data = gs;
    *data_free = get_stream_free;
    if (gw_req_respond_head(r->req, status, h, n, (int64_t)len) != 0)
        gw_s3_end(r, true);
}

/* ---- HeadObject / GetObject: the record and the request's conditions ---- */

struct read_state {
    Lode__ObjectRecord *rec;
    struct gw_range range;
    const Lode__PartInfo *part;     /* partNumber */
    uint64_t first, len;            /* bytes to send, in the object */
    struct gw_obj_headers oh;
    void *data;                     /* the data path's state (GetObject) */
    void (*data_free)(void *data);
    struct gw_s3_rdma rdma;         /* GetObject's x-amz-rdma-token, if any */
};

static void read_state_free(struct gw_s3_req *r)
{
    struct read_state *rs = r->op;
    if (!rs)
        return;
    if (rs->data_free)
        rs->data_free(rs->data);
    gw_obj_headers_free(&rs->oh);
    if (rs->rec)
        lode__object_record__free_unpacked(rs->rec, NULL);
    free(rs);
    r->op = NULL;
}

static void fail_no_such_key(struct gw_s3_req *r)
{
    struct gw_s3_err e;
    gw_s3_err_set(&e, GW_S3_NO_SUCH_KEY, NULL);
    gw_s3_err_extra(&e, "Key", "%s", r->route.key);
    gw_s3_fail(r, &e);
}

/* A served token's window against what the request asks for (docs/fanout.md): without a
 * Range or partNumber the whole object must fit (400 otherwise, before any transfer); with
 * one, the transfer is cut to the window and Content-Range names exactly those bytes. A
 * partNumber's cut is applied by the caller. Returns false after failing the request. */
static bool rdma_fit(struct gw_s3_req *r, struct read_state *rs, uint64_t base, uint64_t size)
{
    (void)base;
    if (rs->rdma.d != GW_RDMA_SERVE)
        return true;
    /* partNumber of a single-part object answers the whole object (200). */
    bool ranged = rs->range.active || (r->route.part_number && rs->rec->n_parts);
    uint64_t want = rs->range.active ? rs->range.last - rs->range.first + 1 : size;
    uint64_t transfer = 0;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (cmn_rdma_window_fit(&rs->rdma.tok, want, ranged, &transfer, &err) != 0) {
        const struct gw_fanout_tmetrics *m = gw_s3_fo_metrics(r, rs->rdma.tok.kind);
        if (m)
            cmn_counter_add(m->declines[GW_RDMA_REASON_WINDOW], 1);
        gw_s3_failf(r, GW_S3_INVALID_REQUEST,
                    "The object (%" PRIu64 " bytes) does not fit the RDMA window of %" PRIu64
                    " bytes; read it in ranges.", want, rs->rdma.tok.size);
        return false;
    }
    if (rs->range.active && transfer < want)
        rs->range.last = rs->range.first + transfer - 1;
    return true;
}

/* Everything GetObject and HeadObject decide before any data: conditions, partNumber,
 * Range, overrides, headers. Returns false after failing the request. */
static bool read_prepare(struct gw_s3_req *r, struct read_state *rs, int *status)
{
    struct gw_s3_err e;
    struct gw_conditions c;
    struct gw_overrides ov;
    const Lode__ObjectRecord *rec = rs->rec;

    gw_s3_err_clear(&e);
    gw_conditions_from_headers(r->head, false, &c);
    enum gw_s3_error ce = gw_conditions_eval(&c, GW_COND_READ, true,
                                             (struct gw_str){rec->etag, strlen(rec->etag)},
                                             rec->mtime_ms, &e);
    if (ce == GW_S3_NOT_MODIFIED) {
        char date[GW_HTTP_DATE_LEN + 1] = "";
        char etag[GW_ETAG_MAX + 4];
        snprintf(etag, sizeof(etag), "\"%s\"", rec->etag);
        gw_http_date_format(rec->mtime_ms, date);
        struct gw_header h[2] = {{GW_STR("ETag"), {etag, strlen(etag)}},
                                 {GW_STR("Last-Modified"), {date, strlen(date)}}};
        gw_s3_respond_empty(r, 304, h, 2);
        return false;
    }
    if (ce != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return false;
    }
    if (gw_response_overrides(&r->route.query, true, &ov, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return false;
    }
    uint64_t base = 0, size = rec->size;
    if (r->route.part_number) {
        if (rec->n_parts == 0) {
            /* A single-part object is its own part 1 (S3 answers so). */
            if (r->route.part_number != 1) {
                gw_s3_failf(r, GW_S3_INVALID_RANGE, "The requested part does not exist.");
                return false;
            }
        } else {
            if (r->route.part_number > rec->n_parts) {
                gw_s3_failf(r, GW_S3_INVALID_RANGE, "The requested part does not exist.");
                return false;
            }
            for (size_t i = 0; i + 1 < r->route.part_number; i++)
                base += rec->parts[i]->size;
            rs->part = rec->parts[r->route.part_number - 1];
            size = rs->part->size;
        }
    }
    const struct gw_header *rh = gw_header_find(r->head, "Range");
    rs->range.active = false;
    if (rh && gw_range_parse(rh->value, rec->size, &rs->range, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return false;
    }
    const struct gw_header *cm = gw_header_find(r->head, "x-amz-checksum-mode");
    bool cmode = cm && gw_str_ieq(cm->value, "ENABLED") && !rs->range.active;
    if (gw_obj_headers_build(&rs->oh, rec, &ov, cmode, rs->part,
                             r->route.part_number ? (rec->n_parts ? rec->n_parts : 1) : 0)) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return false;
    }
    if (!rdma_fit(r, rs, base, size))
        return false;
    if (rs->range.active) {
        char cr[64];
        gw_content_range_format(&rs->range, rec->size, cr, sizeof(cr));
        hdr_printf(&rs->oh, "Content-Range", "%s", cr);
        rs->first = rs->range.first;
        rs->len = rs->range.last - rs->range.first + 1;
        *status = 206;
    } else if (r->route.part_number && rec->n_parts) {
        char cr[64];
        if (rs->rdma.d == GW_RDMA_SERVE && size > rs->rdma.tok.size)
            size = rs->rdma.tok.size; /* only what fits the window, named exactly */
        struct gw_range pr = {.active = true, .first = base, .last = base + size - 1};
        if (size) {
            gw_content_range_format(&pr, rec->size, cr, sizeof(cr));
            hdr_printf(&rs->oh, "Content-Range", "%s", cr);
        }
        rs->first = base;
        rs->len = size;
        *status = 206;
    } else {
        rs->first = 0;
        rs->len = rec->size;
        *status = 200;
    }
    return true;
}

static void head_object_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct read_state *rs = r->op;
    int status = 200;
    if (res->status == LODE_ENOKEY) {
        fail_no_such_key(r);
        return;
    }
    rs->rec = (Lode__ObjectRecord *)gw_s3_unpack(r, &lode__object_record__descriptor, res);
    if (!rs->rec || !read_prepare(r, rs, &status))
        return;
    struct gw_header h[GW_OBJ_HEADERS_MAX + 4];
    size_t n = gw_obj_headers_view(&rs->oh, h, GW_OBJ_HEADERS_MAX);
    n = gw_s3_std_headers(r, h, n);
    if (gw_req_respond_head(r->req, status, h, n, (int64_t)rs->len) != 0) {
        gw_s3_end(r, true);
        return;
    }
    gw_s3_end(r, false);
}

static void get_object_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct read_state *rs = r->op;
    int status = 200;
    if (res->status == LODE_ENOKEY) {
        fail_no_such_key(r);
        return;
    }
    rs->rec = (Lode__ObjectRecord *)gw_s3_unpack(r, &lode__object_record__descriptor, res);
    if (!rs->rec || !read_prepare(r, rs, &status))
        return;
    struct gw_header h[GW_OBJ_HEADERS_MAX + 4];
    size_t n = gw_obj_headers_view(&rs->oh, h, GW_OBJ_HEADERS_MAX);
    if (rs->rdma.d == GW_RDMA_SERVE) {
        gw_s3_rdma_get(r, &rs->rdma, rs->rec, rs->first, rs->len, status, h, n, &rs->data,
                       &rs->data_free);
        return;
    }
    if (rs->rdma.d == GW_RDMA_DECLINE) {
        /* The spec's decline: the object in the body, so any client gets its bytes. */
        h[n].name = GW_STR("x-amz-rdma-reply");
        h[n++].value = GW_STR("501");
    }
    n = gw_s3_std_headers(r, h, n);
    gw_s3_get_stream(r, rs->rec, rs->first, rs->len, status, h, n, &rs->data, &rs->data_free);
}

static void read_object(struct gw_s3_req *r, gw_s3_meta_cb done)
{
    struct read_state *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = rs;
    r->op_free = read_state_free;
    /* A token is judged before anything is read (HEAD never gets RDMA framing). */
    if (done == get_object_done && !gw_s3_rdma_prepare(r, true, &rs->rdma))
        return;
    Lode__ObjectGetRequest q = LODE__OBJECT_GET_REQUEST__INIT;
    q.bucket = r->route.bucket;
    q.key = r->route.key;
    gw_s3_meta_call(r, CMN_RPC_OBJECT_GET, &q.base, done);
}

/* ---- DeleteObject ---- */

static void delete_object_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    /* Deleting a missing key succeeds in S3. */
    if (res->status != LODE_ENOKEY) {
        Lode__CommandResult *cr = gw_s3_command_result(r, res);
        if (!cr)
            return;
        lode__command_result__free_unpacked(cr, NULL);
    }
    gw_s3_respond_empty(r, 204, NULL, 0);
}

static void delete_object(struct gw_s3_req *r)
{
    Lode__DeleteObject d = LODE__DELETE_OBJECT__INIT;
    Lode__Command cmd;
    d.bucket = r->route.bucket;
    d.key = r->route.key;
    gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_DELETE_OBJECT);
    cmd.delete_object = &d;
    gw_s3_meta_call(r, CMN_RPC_OBJECT_DELETE, &cmd.base, delete_object_done);
}

/* ---- DeleteObjects: one OBJECT_DELETE after the other ---- */

struct multi_delete {
    struct gw_delete_request dr;
    struct gw_delete_outcome *out;
    size_t next;
};

static void multi_delete_free(struct gw_s3_req *r)
{
    struct multi_delete *md = r->op;
    if (!md)
        return;
    gw_delete_request_free(&md->dr);
    free(md->out);
    free(md);
    r->op = NULL;
}

static void multi_delete_step(struct gw_s3_req *r);

static void multi_delete_one(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct multi_delete *md = r->op;
    struct gw_delete_outcome *o = &md->out[md->next];
    int st = res->status;
    if (st == 0) {
        Lode__CommandResult *cr = (Lode__CommandResult *)protobuf_c_message_unpack(
            &lode__command_result__descriptor, NULL, res->body.len, res->body.data);
        st = cr ? cr->status : LODE_EBADMSG;
        if (cr)
            lode__command_result__free_unpacked(cr, NULL);
    }
    if (st == 0 || st == LODE_ENOKEY) {
        o->error = GW_S3_OK;
    } else {
        o->error = gw_s3_error_from_lode(st);
        if (o->error == GW_S3_OK)
            o->error = GW_S3_INTERNAL_ERROR;
    }
    md->next++;
    multi_delete_step(r);
}

static void multi_delete_step(struct gw_s3_req *r)
{
    struct multi_delete *md = r->op;
    while (md->next < md->dr.n) {
        const struct gw_delete_object *d = &md->dr.objects[md->next];
        struct gw_delete_outcome *o = &md->out[md->next];
        o->key = d->key;
        o->version_id = d->version_id;
        if (d->key_error != GW_S3_OK ||
            (d->version_id.p && !(d->version_id.n == 4 && !memcmp(d->version_id.p, "null", 4)))) {
            /* A key lode could never store, or a version other than "null" (versioning is
             * never enabled): nothing by that name exists, which S3 reports as deleted. */
            o->error = GW_S3_OK;
            md->next++;
            continue;
        }
        Lode__DeleteObject del = LODE__DELETE_OBJECT__INIT;
        Lode__Command cmd;
        del.bucket = r->route.bucket;
        del.key = (char *)d->key.p;
        gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_DELETE_OBJECT);
        cmd.delete_object = &del;
        gw_s3_meta_call(r, CMN_RPC_OBJECT_DELETE, &cmd.base, multi_delete_one);
        return;
    }
    struct gw_xml_w xw;
    gw_xml_w_init(&xw, DELETE_DOC_MAX);
    gw_xml_delete_result(&xw, md->out, md->dr.n, md->dr.quiet);
    gw_s3_respond_xml(r, 200, &xw, NULL, 0);
}

static void multi_delete_body(struct gw_s3_req *r, const struct gw_s3_err *err)
{
    struct gw_s3_err e;
    if (err->code != GW_S3_OK) {
        gw_s3_fail(r, err);
        return;
    }
    struct multi_delete *md = calloc(1, sizeof(*md));
    if (!md) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = md;
    r->op_free = multi_delete_free;
    gw_s3_err_clear(&e);
    if (gw_xml_parse_delete(r->collected.data, r->collected.len, &md->dr, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    /* S3 requires Content-MD5 or a checksum on DeleteObjects; lode's body is already
     * covered by the signature or a digest, so it does not insist. */
    md->out = calloc(md->dr.n, sizeof(*md->out));
    if (!md->out) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    multi_delete_step(r);
}

/* ---- dispatch ---- */

void gw_s3_object_op(struct gw_s3_req *r)
{
    struct gw_xml_w xw;
    struct gw_owner owner = gw_s3_owner(r);

    switch (r->route.op) {
    case GW_OP_HEAD_OBJECT:
        read_object(r, head_object_done);
        return;
    case GW_OP_GET_OBJECT:
        read_object(r, get_object_done);
        return;
    case GW_OP_PUT_OBJECT: {
        struct gw_s3_rdma rd;
        if (!gw_s3_rdma_prepare(r, false, &rd))
            return;
        if (rd.d == GW_RDMA_SERVE) {
            gw_s3_put_object_rdma(r, &rd); /* a staged upload */
            return;
        }
        if (rd.d != GW_RDMA_NONE) {
            gw_s3_rdma_decline_put(r, &rd); /* before anything is read or stored */
            return;
        }
        gw_s3_put_object(r);
        return;
    }
    case GW_OP_COPY_OBJECT:
        gw_s3_copy_object(r);
        return;
    case GW_OP_DELETE_OBJECT:
        delete_object(r);
        return;
    case GW_OP_DELETE_OBJECTS:
        gw_s3_body_collect(r, GW_XML_DELETE_MAX_BODY, multi_delete_body);
        return;
    case GW_OP_GET_OBJECT_ACL:
        gw_xml_w_init(&xw, SMALL_DOC_MAX);
        gw_xml_acl(&xw, &owner);
        gw_s3_respond_xml(r, 200, &xw, NULL, 0);
        return;
    case GW_OP_PUT_OBJECT_ACL:
        gw_s3_respond_empty(r, 200, NULL, 0);
        return;
    case GW_OP_GET_OBJECT_TAGGING:
        gw_xml_w_init(&xw, SMALL_DOC_MAX);
        gw_xml_empty_tagging(&xw);
        gw_s3_respond_xml(r, 200, &xw, NULL, 0);
        return;
    case GW_OP_DELETE_OBJECT_TAGGING:
        gw_s3_respond_empty(r, 204, NULL, 0);
        return;
    default:
        gw_s3_failf(r, GW_S3_NOT_IMPLEMENTED, NULL);
        return;
    }
}
