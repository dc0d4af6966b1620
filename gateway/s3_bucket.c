/* Bucket-level S3 operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket,
 * GetBucketLocation, GetBucketVersioning, the ACL and sub-resource answers, and the object
 * listings (v1, v2, versions) over meta's OBJECT_LIST. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc_methods.h"
#include "gateway/ec.h"
#include "gateway/s3_fanout.h"
#include "gateway/s3_request.h"
#include "gateway/s3_xml.h"
#include "lode/errno.h"

/* Listing documents: 1000 entries of up to 1 KiB keys, URL-encoded (x3), with their
 * markup, stay below 8 MiB. */
#define LIST_DOC_MAX (8u << 20)
#define SMALL_DOC_MAX (64u << 10)

/* ---- ListBuckets ---- */

static void list_buckets_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    Lode__BucketListResponse *l =
        (Lode__BucketListResponse *)gw_s3_unpack(r, &lode__bucket_list_response__descriptor, res);
    if (!l)
        return;
    struct gw_bucket_entry *b = calloc(l->n_buckets ? l->n_buckets : 1, sizeof(*b));
    if (!b) {
        lode__bucket_list_response__free_unpacked(l, NULL);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < l->n_buckets; i++) {
        /* meta filters by owner; checked again so that a listing never shows a stranger's
         * bucket whatever meta answers. */
        if (strcmp(l->buckets[i]->owner, r->user) != 0)
            continue;
        b[n].name = l->buckets[i]->name;
        b[n].created_ms = l->buckets[i]->created_ms;
        n++;
    }
    struct gw_owner owner = gw_s3_owner(r);
    struct gw_xml_w xw;
    gw_xml_w_init(&xw, LIST_DOC_MAX);
    gw_xml_list_buckets(&xw, &owner, b, n);
    free(b);
    lode__bucket_list_response__free_unpacked(l, NULL);
    gw_s3_respond_xml(r, 200, &xw, NULL, 0);
}

static void list_buckets(struct gw_s3_req *r)
{
    Lode__BucketListRequest q = LODE__BUCKET_LIST_REQUEST__INIT;
    q.owner = r->user;
    gw_s3_meta_call(r, CMN_RPC_BUCKET_LIST, &q.base, list_buckets_done);
}

/* ---- CreateBucket ---- */

/* A decimal number of 1..2 digits without a leading zero; the end of it in *end. */
static bool small_number(const char *p, const char *end, const char **stop, uint32_t *out)
{
    const char *q = p;
    uint32_t v = 0;
    while (q < end && *q >= '0' && *q <= '9' && q - p < 3)
        v = v * 10 + (uint32_t)(*q++ - '0');
    if (q == p || q - p > 2 || (q - p > 1 && *p == '0'))
        return false;
    *stop = q;
    *out = v;
    return true;
}

enum gw_s3_error gw_s3_erasure_parse(struct gw_str v, uint32_t *k, uint32_t *m,
                                     struct gw_s3_err *err)
{
    const char *p = v.p ? v.p : "", *end = p + v.n, *q;
    uint32_t dk = 0, dm = 0;
    bool ok = small_number(p, end, &q, &dk) && q < end && *q == '+' &&
              small_number(q + 1, end, &q, &dm) && q == end;
    if (!ok || dk < 1 || dk > GW_EC_MAX_K || dm > GW_EC_MAX_M) {
        gw_s3_err_set(err, GW_S3_INVALID_ARGUMENT,
                      "%s must be K+M with 1 <= K <= %d data chunks and 0 <= M <= %d parity "
                      "chunks, such as 4+2.",
                      GW_S3_ERASURE_HEADER, GW_EC_MAX_K, GW_EC_MAX_M);
        gw_s3_err_extra(err, "ArgumentName", "%s", GW_S3_ERASURE_HEADER);
        gw_s3_err_extra(err, "ArgumentValue", "%.*s", (int)(v.n > 32 ? 32 : v.n), p);
        return GW_S3_INVALID_ARGUMENT;
    }
    *k = dk;
    *m = dm;
    return GW_S3_OK;
}

static void create_bucket_owner(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct gw_s3_err e;
    if (res->status == 0) {
        Lode__BucketRecord *b =
            (Lode__BucketRecord *)gw_s3_unpack(r, &lode__bucket_record__descriptor, res);
        if (!b)
            return;
        bool mine = strcmp(b->owner, r->user) == 0;
        lode__bucket_record__free_unpacked(b, NULL);
        gw_s3_err_set(&e, mine ? GW_S3_BUCKET_ALREADY_OWNED : GW_S3_BUCKET_ALREADY_EXISTS, NULL);
    } else {
        /* Deleted in between, or meta unreachable: the name was taken a moment ago. */
        gw_s3_err_set(&e, GW_S3_BUCKET_ALREADY_EXISTS, NULL);
    }
    gw_s3_err_extra(&e, "BucketName", "%s", r->route.bucket);
    gw_s3_fail(r, &e);
}

static void create_bucket_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    if (res->status == LODE_EBUCKETEXISTS) {
        Lode__NameRequest nr = LODE__NAME_REQUEST__INIT;
        nr.name = r->route.bucket;
        gw_s3_meta_call(r, CMN_RPC_BUCKET_HEAD, &nr.base, create_bucket_owner);
        return;
    }
    Lode__CommandResult *cr = gw_s3_command_result(r, res);
    if (!cr)
        return;
    lode__command_result__free_unpacked(cr, NULL);
    /* A record of an older bucket of that name, deleted through another gateway, may still
     * be cached here. */
    gw_s3_bucket_forget(r);
    char loc[GW_BUCKET_NAME_MAX + 2];
    snprintf(loc, sizeof(loc), "/%s", r->route.bucket);
    struct gw_header h = {GW_STR("Location"), {loc, strlen(loc)}};
    gw_s3_respond_empty(r, 200, &h, 1);
}

static void create_bucket_body(struct gw_s3_req *r, const struct gw_s3_err *err)
{
    struct gw_create_bucket_conf conf;
    struct gw_s3_err e;

    if (err->code != GW_S3_OK) {
        gw_s3_fail(r, err);
        return;
    }
    gw_s3_err_clear(&e);
    if (gw_xml_parse_create_bucket(r->collected.data, r->collected.len, &conf, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    const char *region = r->w->ctx->cfg->region;
    /* An empty LocationConstraint is the default region, as S3 reads it. */
    if (conf.has_location && conf.location[0] && strcmp(conf.location, region) != 0 &&
        !(strcmp(region, "us-east-1") == 0 && strcmp(conf.location, "US") == 0)) {
        gw_s3_err_set(&e, GW_S3_INVALID_ARGUMENT,
                      "The LocationConstraint '%s' is not this gateway's region '%s'.",
                      conf.location, region);
        gw_s3_err_extra(&e, "ArgumentName", "LocationConstraint");
        gw_s3_fail(r, &e);
        return;
    }
    Lode__BucketRecord rec = LODE__BUCKET_RECORD__INIT;
    Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
    Lode__Command cmd;
    /* The bucket's own erasure scheme; without the header its objects follow the gateway's
     * ec-data / ec-parity (0+0 in the record). */
    const struct gw_header *eh = gw_header_find(r->head, GW_S3_ERASURE_HEADER);
    if (eh && gw_s3_erasure_parse(eh->value, &rec.ec_k, &rec.ec_m, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    rec.name = r->route.bucket;
    rec.owner = r->user;
    rec.created_ms = r->now_ms;
    cb.bucket = &rec;
    gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_CREATE_BUCKET);
    cmd.create_bucket = &cb;
    gw_s3_meta_call(r, CMN_RPC_BUCKET_CREATE, &cmd.base, create_bucket_done);
}

/* ---- DeleteBucket ---- */

static void delete_bucket_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    if (res->status == LODE_EBUCKETNOTEMPTY) {
        struct gw_s3_err e;
        gw_s3_err_set(&e, GW_S3_BUCKET_NOT_EMPTY, NULL);
        gw_s3_err_extra(&e, "BucketName", "%s", r->route.bucket);
        gw_s3_fail(r, &e);
        return;
    }
    Lode__CommandResult *cr = gw_s3_command_result(r, res);
    if (!cr)
        return;
    lode__command_result__free_unpacked(cr, NULL);
    gw_s3_bucket_forget(r);
    gw_s3_respond_empty(r, 204, NULL, 0);
}

static void delete_bucket(struct gw_s3_req *r)
{
    Lode__DeleteBucket db = LODE__DELETE_BUCKET__INIT;
    Lode__Command cmd;
    db.name = r->route.bucket;
    gw_s3_command_init(r, &cmd, LODE__COMMAND__OP_DELETE_BUCKET);
    cmd.delete_bucket = &db;
    gw_s3_meta_call(r, CMN_RPC_BUCKET_DELETE, &cmd.base, delete_bucket_done);
}

/* ---- listings ---- */

struct list_state {
    struct gw_list_params p;
    char *marker_mem;          /* v1 / versions: start_after derived from a marker */
};

static void list_state_free(struct gw_s3_req *r)
{
    struct list_state *ls = r->op;
    if (ls)
        free(ls->marker_mem);
    free(ls);
    r->op = NULL;
}

static char *strndup_str(struct gw_str s)
{
    return strndup(s.p ? s.p : "", s.n);
}

/* The larger of two strings in byte order. */
static const char *max_str(const char *a, const char *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    return strcmp(a, b) >= 0 ? a : b;
}

static void list_done(struct gw_s3_req *r, const struct cmn_rpc_result *res)
{
    struct list_state *ls = r->op;
    Lode__ObjectListResponse *l =
        (Lode__ObjectListResponse *)gw_s3_unpack(r, &lode__object_list_response__descriptor, res);
    if (!l)
        return;
    size_t ne = l->n_entries, np = l->n_common_prefixes;
    struct gw_list_entry *ents = calloc(ne ? ne : 1, sizeof(*ents));
    struct gw_str *pfx = calloc(np ? np : 1, sizeof(*pfx));
    struct gw_owner *owners = calloc(ne ? ne : 1, sizeof(*owners));
    if (!ents || !pfx || !owners) {
        free(ents);
        free(pfx);
        free(owners);
        lode__object_list_response__free_unpacked(l, NULL);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    enum gw_list_kind kind = r->route.op == GW_OP_LIST_OBJECTS_V2      ? GW_LIST_V2
                             : r->route.op == GW_OP_LIST_OBJECT_VERSIONS ? GW_LIST_VERSIONS
                                                                         : GW_LIST_V1;
    const char *last = NULL;
    for (size_t i = 0; i < ne; i++) {
        const Lode__ObjectListEntry *oe = l->entries[i];
        ents[i].key = (struct gw_str){oe->key, strlen(oe->key)};
        ents[i].size = oe->size;
        ents[i].etag = (struct gw_str){oe->etag, strlen(oe->etag)};
        ents[i].mtime_ms = oe->mtime_ms;
        owners[i].id = oe->owner;
        owners[i].display_name = oe->owner;
        /* v1 and versions always name the owner; v2 only with fetch-owner. */
        if (kind != GW_LIST_V2 || ls->p.fetch_owner)
            ents[i].owner = &owners[i];
        last = max_str(last, oe->key);
    }
    for (size_t i = 0; i < np; i++) {
        pfx[i] = (struct gw_str){l->common_prefixes[i], strlen(l->common_prefixes[i])};
        last = max_str(last, l->common_prefixes[i]);
    }
    struct gw_list_result lr = {
        .kind = kind,
        .bucket = r->route.bucket,
        .truncated = l->is_truncated,
        .entries = ents,
        .n_entries = ne,
        .prefixes = pfx,
        .n_prefixes = np,
    };
    if (kind == GW_LIST_V2) {
        const char *t = l->next_continuation_token;
        lr.next_continuation_token = (struct gw_str){t, t ? strlen(t) : 0};
    } else if (l->is_truncated && last) {
        /* The last key or common prefix returned: the marker the client sends back (a
         * prefix marker makes the next page skip the whole prefix, see list_start). */
        lr.next_marker = (struct gw_str){last, strlen(last)};
    }
    struct gw_xml_w xw;
    gw_xml_w_init(&xw, LIST_DOC_MAX);
    gw_xml_list_objects(&xw, &ls->p, &lr);
    free(ents);
    free(pfx);
    free(owners);
    lode__object_list_response__free_unpacked(l, NULL);
    gw_s3_respond_xml(r, 200, &xw, NULL, 0);
}

static void list_objects(struct gw_s3_req *r)
{
    struct gw_s3_err e;
    struct list_state *ls = calloc(1, sizeof(*ls));
    if (!ls) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    r->op = ls;
    r->op_free = list_state_free;
    gw_s3_err_clear(&e);
    if (gw_list_params_parse(&r->route, &ls->p, &e) != GW_S3_OK) {
        gw_s3_fail(r, &e);
        return;
    }
    if (ls->p.max == 0) {
        /* max-keys=0: an empty, untruncated page, as S3 answers. */
        struct gw_list_result lr = {
            .kind = r->route.op == GW_OP_LIST_OBJECTS_V2 ? GW_LIST_V2 : GW_LIST_V1,
            .bucket = r->route.bucket};
        if (r->route.op == GW_OP_LIST_OBJECT_VERSIONS)
            lr.kind = GW_LIST_VERSIONS;
        struct gw_xml_w xw;
        gw_xml_w_init(&xw, SMALL_DOC_MAX);
        gw_xml_list_objects(&xw, &ls->p, &lr);
        gw_s3_respond_xml(r, 200, &xw, NULL, 0);
        return;
    }
    Lode__ObjectListRequest q = LODE__OBJECT_LIST_REQUEST__INIT;
    char *prefix = strndup_str(ls->p.prefix), *delim = strndup_str(ls->p.delimiter);
    char *token = NULL, *start = NULL;
    if (r->route.op == GW_OP_LIST_OBJECTS_V2) {
        token = strndup_str(ls->p.continuation_token);
        start = strndup_str(ls->p.start_after);
    } else {
        struct gw_str m = r->route.op == GW_OP_LIST_OBJECTS ? ls->p.marker : ls->p.key_marker;
        /* A marker that is a common prefix (it ends with the delimiter) must skip every key
         * under it: start after the prefix followed by 0xFF, which sorts after every UTF-8
         * continuation of it. */
        bool is_prefix = ls->p.has_delimiter && ls->p.delimiter.n && m.n >= ls->p.delimiter.n &&
                         memcmp(m.p + m.n - ls->p.delimiter.n, ls->p.delimiter.p,
                                ls->p.delimiter.n) == 0;
        start = malloc(m.n + 2);
        if (start) {
            memcpy(start, m.p ? m.p : "", m.n);
            start[m.n] = is_prefix ? '\xff' : '\0';
            start[m.n + 1] = '\0';
        }
    }
    if (!prefix || !delim || (r->route.op == GW_OP_LIST_OBJECTS_V2 && !token) || !start) {
        free(prefix);
        free(delim);
        free(token);
        free(start);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    q.bucket = r->route.bucket;
    q.prefix = prefix;
    q.delimiter = delim;
    q.start_after = start;
    q.continuation_token = token ? token : "";
    q.max_keys = ls->p.max;
    gw_s3_meta_call(r, CMN_RPC_OBJECT_LIST, &q.base, list_done);
    free(prefix);
    free(delim);
    free(token);
    free(start);
}

/* ---- dispatch ---- */

void gw_s3_bucket_op(struct gw_s3_req *r)
{
    struct gw_xml_w xw;
    struct gw_owner owner = gw_s3_owner(r);
    struct gw_s3_err e;

    switch (r->route.op) {
    case GW_OP_LIST_BUCKETS:
        list_buckets(r);
        return;
    case GW_OP_LODE_SESSION:
        gw_s3_lode_session(r);
        return;
    case GW_OP_CREATE_BUCKET:
        gw_s3_body_collect(r, GW_XML_CONFIG_MAX_BODY, create_bucket_body);
        return;
    case GW_OP_DELETE_BUCKET:
        delete_bucket(r);
        return;
    case GW_OP_HEAD_BUCKET: {
        const char *region = r->w->ctx->cfg->region;
        struct gw_header h[2] = {{GW_STR("x-amz-bucket-region"), {region, strlen(region)}}};
        size_t n = 1;
        char scheme[24];
        if (r->bucket && r->bucket->ec_k) {
            snprintf(scheme, sizeof(scheme), "%u+%u", r->bucket->ec_k, r->bucket->ec_m);
            h[n++] = (struct gw_header){GW_STR(GW_S3_ERASURE_HEADER), {scheme, strlen(scheme)}};
        }
        gw_s3_respond_empty(r, 200, h, n);
        return;
    }
    case GW_OP_GET_BUCKET_LOCATION:
        gw_xml_w_init(&xw, SMALL_DOC_MAX);
        gw_xml_location(&xw, r->w->ctx->cfg->region);
        gw_s3_respond_xml(r, 200, &xw, NULL, 0);
        return;
    case GW_OP_GET_BUCKET_VERSIONING:
        gw_xml_w_init(&xw, SMALL_DOC_MAX);
        gw_xml_versioning(&xw);
        gw_s3_respond_xml(r, 200, &xw, NULL, 0);
        return;
    case GW_OP_GET_BUCKET_ACL:
        gw_xml_w_init(&xw, SMALL_DOC_MAX);
        gw_xml_acl(&xw, &owner);
        gw_s3_respond_xml(r, 200, &xw, NULL, 0);
        return;
    case GW_OP_PUT_BUCKET_ACL:
        /* Canned ACLs are accepted with private semantics (the router checked the name). */
        gw_s3_respond_empty(r, 200, NULL, 0);
        return;
    case GW_OP_LIST_OBJECTS:
    case GW_OP_LIST_OBJECTS_V2:
    case GW_OP_LIST_OBJECT_VERSIONS:
        list_objects(r);
        return;
    case GW_OP_GET_BUCKET_SUBRESOURCE:
        gw_xml_w_init(&xw, SMALL_DOC_MAX);
        gw_s3_err_clear(&e);
        if (gw_xml_subresource(&xw, r->route.sub, &e) != GW_S3_OK) {
            gw_xml_w_free(&xw);
            if (e.code == GW_S3_OK)
                e.code = GW_S3_NOT_IMPLEMENTED;
            gw_s3_err_extra(&e, "BucketName", "%s", r->route.bucket);
            gw_s3_fail(r, &e);
            return;
        }
        gw_s3_respond_xml(r, 200, &xw, NULL, 0);
        return;
    case GW_OP_DELETE_BUCKET_SUBRESOURCE:
        gw_s3_respond_empty(r, 204, NULL, 0);
        return;
    default:
        gw_s3_failf(r, GW_S3_NOT_IMPLEMENTED, NULL);
        return;
    }
}
