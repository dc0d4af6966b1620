/* x-amz-rdma-token on the S3 surface and the data session endpoint (see s3_fanout.h). */
#include "gateway/s3_fanout.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/buf.h"
#include "common/dp_proto.h"
#include "common/id.h"
#include "common/log.h"
#include "gateway/s3_xml.h"

#define LOG_CTX "s3"
#define SOURCES_HDR_MAX 8192
#define FO_HEADERS_MAX 64

static void count_decline(struct gw_s3_req *r, enum gw_rdma_reason why)
{
    const struct gw_fanout_metrics *m = r->w->ctx->fo_metrics;
    if (m)
        cmn_counter_add(m->declines[why], 1);
}

/* Whether `name` is one of the ';'-separated SignedHeaders (already lower-case). */
static bool signed_header(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

static void decline(struct gw_s3_rdma *out, enum gw_rdma_reason why)
{
    out->d = GW_RDMA_DECLINE;
    out->reason = why;
}

bool gw_s3_rdma_prepare(struct gw_s3_req *r, bool is_get, struct gw_s3_rdma *out)
{
    memset(out, 0, sizeof(*out));
    const struct gw_header *h = gw_header_find(r->head, GW_RDMA_TOKEN_HEADER);
    if (!h)
        return true;
    char red[CMN_RDMA_REDACT_SIZE];
    cmn_rdma_token_redact(h->value.p, h->value.n, red);
    if (!signed_header(r->auth.signed_headers, GW_RDMA_TOKEN_HEADER)) {
        count_decline(r, GW_RDMA_REASON_UNSIGNED);
        gw_s3_failf(r, GW_S3_ACCESS_DENIED,
                    "x-amz-rdma-token must be one of the signed headers (SignedHeaders).");
        return false;
    }
    struct cmn_err err;
    cmn_err_clear(&err);
    if (cmn_rdma_token_parse(h->value.p, h->value.n, &out->tok, &err) != 0) {
        count_decline(r, GW_RDMA_REASON_MALFORMED);
        LOG_DEBUG(LOG_CTX, "%s: token %s refused: %s", gw_req_id(r->req), red,
                  cmn_err_text(&err));
        struct gw_s3_err e;
        gw_s3_err_set(&e, GW_S3_INVALID_RDMA_TOKEN, "%s", cmn_err_text(&err));
        gw_s3_fail(r, &e);
        return false;
    }
    switch (out->tok.kind) {
    case CMN_RDMA_TCP:
        if (!is_get)
            decline(out, GW_RDMA_REASON_PUT); /* tcp PUTs are plain PUTs with a body */
        else if (!r->w->dp)
            decline(out, GW_RDMA_REASON_TCP);
        else
            out->d = GW_RDMA_SERVE;
        break;
    case CMN_RDMA_RC:
        decline(out, GW_RDMA_REASON_RC);
        break;
    case CMN_RDMA_DC:
        decline(out, GW_RDMA_REASON_DC);
        break;
    default:
        decline(out, GW_RDMA_REASON_FOREIGN);
        break;
    }
    if (out->d == GW_RDMA_DECLINE)
        count_decline(r, out->reason);
    LOG_DEBUG(LOG_CTX, "%s: token %s (%s): %s", gw_req_id(r->req), red,
              cmn_rdma_kind_name(out->tok.kind),
              out->d == GW_RDMA_SERVE ? "served" : gw_rdma_reason_name(out->reason));
    return true;
}

void gw_s3_rdma_decline_put(struct gw_s3_req *r, const struct gw_s3_rdma *rd)
{
    struct gw_s3_err e;
    gw_s3_err_set(&e, GW_S3_RDMA_NOT_SUPPORTED,
                  "This gateway does not serve this upload over RDMA (%s); nothing was "
                  "stored. Send the bytes in the request body.", gw_rdma_reason_name(rd->reason));
    struct gw_header h = {GW_STR("x-amz-rdma-reply"), GW_STR("501")};
    gw_s3_fail_headers(r, &e, &h, 1);
}

/* ---- per-client in-flight cap --------------------------------------------------------- */

struct gw_fo_client {
    uint8_t sid[16];
    bool used;
    uint64_t last_ms;
    struct gw_fo_sched sched;
};

struct gw_fo_clients {
    uint64_t cap;
    struct gw_fo_client c[GW_FO_CLIENTS];
};

struct gw_fo_clients *gw_fo_clients_new(uint64_t cap)
{
    struct gw_fo_clients *t = calloc(1, sizeof(*t));
    if (t)
        t->cap = cap;
    return t;
}

void gw_fo_clients_free(struct gw_fo_clients *t)
{
    free(t);
}

/* The cap of client `sid`: its entry, or a free one (least recently used among those with
 * nothing in flight). NULL when every entry is busy: that request then runs uncapped. */
static struct gw_fo_sched *client_sched(struct gw_fo_clients *t, const uint8_t sid[16],
                                        uint64_t now_ms)
{
    if (!t || !t->cap)
        return NULL;
    struct gw_fo_client *free_one = NULL;
    for (size_t i = 0; i < GW_FO_CLIENTS; i++) {
        struct gw_fo_client *c = &t->c[i];
        if (c->used && memcmp(c->sid, sid, 16) == 0) {
            c->last_ms = now_ms;
            return &c->sched;
        }
        if ((!c->used || c->sched.inflight == 0) && (!free_one || !c->used ||
                                                    c->last_ms < free_one->last_ms))
            free_one = c;
    }
    if (!free_one)
        return NULL;
    memcpy(free_one->sid, sid, 16);
    free_one->used = true;
    free_one->last_ms = now_ms;
    gw_fo_sched_init(&free_one->sched, t->cap);
    return &free_one->sched;
}

/* ---- GetObject ------------------------------------------------------------------------ */

struct fo_get {
    struct gw_s3_req *r;
    struct gw_fanout *f;
    const Lode__ObjectRecord *rec;
    uint64_t first, len;
    int status;
    size_t n;
    struct gw_header h[FO_HEADERS_MAX];
    struct cmn_buf mem;                /* the copied header names and values */
    void *fallback;                    /* the plain stream, after a fallback */
    void (*fallback_free)(void *);
};

static void fo_get_free(void *data)
{
    struct fo_get *g = data;
    gw_fanout_abort(g->f);
    if (g->fallback_free)
        g->fallback_free(g->fallback);
    cmn_buf_free(&g->mem);
    free(g);
}

/* Copies the headers: the caller's array and strings do not outlive its call. */
static int copy_headers(struct fo_get *g, const struct gw_header *h, size_t n)
{
    size_t total = 0;
    if (n > FO_HEADERS_MAX - 8)
        n = FO_HEADERS_MAX - 8;
    for (size_t i = 0; i < n; i++)
        total += h[i].name.n + h[i].value.n;
    if (cmn_buf_reserve(&g->mem, total + 1))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char *np = (char *)g->mem.data + g->mem.len;
        memcpy(np, h[i].name.p, h[i].name.n);
        g->mem.len += h[i].name.n;
        char *vp = (char *)g->mem.data + g->mem.len;
        memcpy(vp, h[i].value.p, h[i].value.n);
        g->mem.len += h[i].value.n;
        g->h[i].name = (struct gw_str){np, h[i].name.n};
        g->h[i].value = (struct gw_str){vp, h[i].value.n};
    }
    g->n = n;
    return 0;
}

static void fo_fallback(struct fo_get *g)
{
    struct gw_s3_req *r = g->r;
    const struct gw_fanout_metrics *m = r->w->ctx->fo_metrics;
    if (m)
        cmn_counter_add(m->fallbacks, 1);
    struct gw_header h[FO_HEADERS_MAX + 4];
    size_t n = g->n;
    memcpy(h, g->h, n * sizeof(*h));
    h[n].name = GW_STR("x-amz-rdma-reply");
    h[n].value = GW_STR("501");
    n++;
    n = gw_s3_std_headers(r, h, n);
    gw_s3_get_stream(r, g->rec, g->first, g->len, g->status, h, n, &g->fallback,
                     &g->fallback_free);
}

static void fo_done(void *data, int status, const char *message,
                    const struct gw_fanout_result *res)
{
    struct fo_get *g = data;
    struct gw_s3_req *r = g->r;
    g->f = NULL; /* it frees itself once this returns */
    if (status == LODE_ENOSESSION || status == LODE_ECLOSED || status == -ENOMEM) {
        /* Nothing is in flight any more (the fan-out waited): the body is safe to send and
         * the client, seeing 501, reads it instead of its window. */
        LOG_INFO(LOG_CTX, "%s GetObject /%s/%s: fan-out not completed (%s); the object goes in "
                 "the body", gw_req_id(r->req), r->route.bucket, r->route.key, message);
        fo_fallback(g);
        return;
    }
    if (status != 0) {
        gw_s3_fail_lode(r, status, message);
        return;
    }
    char bytes[24], sources[SOURCES_HDR_MAX];
    snprintf(bytes, sizeof(bytes), "%" PRIu64, res->bytes);
    size_t pos = 0;
    sources[0] = '\0';
    for (size_t i = 0; i < res->n_sources && pos + 48 < sizeof(sources); i++)
        pos += (size_t)snprintf(sources + pos, sizeof(sources) - pos, "%s%" PRIu32 "=%" PRIu64,
                                i ? "," : "", res->sources[i].id, res->sources[i].bytes);
    struct gw_header h[FO_HEADERS_MAX + 8];
    size_t n = g->n;
    memcpy(h, g->h, n * sizeof(*h));
    h[n].name = GW_STR("x-amz-rdma-reply");
    h[n++].value = g->status == 206 ? GW_STR("206") : GW_STR("200");
    h[n].name = GW_STR("x-amz-rdma-bytes-transferred");
    h[n++].value = (struct gw_str){bytes, strlen(bytes)};
    h[n].name = GW_STR("x-amz-rdma-bytes");
    h[n++].value = (struct gw_str){bytes, strlen(bytes)};
    h[n].name = GW_STR("x-lode-sources");
    h[n++].value = (struct gw_str){sources, pos};
    n = gw_s3_std_headers(r, h, n);
    int rc = gw_req_respond_head(r->req, g->status, h, n, 0);
    gw_s3_end(r, rc != 0);
}

void gw_s3_rdma_get(struct gw_s3_req *r, const struct gw_s3_rdma *rd,
                    const Lode__ObjectRecord *rec, uint64_t first, uint64_t len, int status,
                    const struct gw_header *h, size_t n, void **data,
                    void (**data_free)(void *))
{
    struct gw_s3_worker *w = r->w;
    const struct gw_s3_ctx *ctx = w->ctx;
    struct fo_get *g = calloc(1, sizeof(*g));
    if (!g || copy_headers(g, h, n)) {
        free(g);
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    g->r = r;
    g->rec = rec;
    g->first = first;
    g->len = len;
    g->status = status;
    *data = g;
    *data_free = fo_get_free;
    struct gw_cluster_map *map = gw_cluster_map_get(ctx->cluster);
    if (!map) {
        gw_s3_failf(r, GW_S3_SERVICE_UNAVAILABLE, "The cluster map is not known yet.");
        return;
    }
    struct gw_fanout_config fc = {
        .loop = w->loop,
        .pool = w->pool,
        .meta = w->meta,
        .map = map,
        .dp = w->dp,
        .source_id = w->source_id,
        .record = rec,
        .first = first,
        .length = len,
        .sid = rd->tok.u.tcp.sid,
        .access_key = r->auth.access_key,
        .window_base = rd->tok.base,
        .window_size = rd->tok.size,
        .tag = rd->tok.u.tcp.tag,
        .lease_ms = (uint32_t)ctx->cfg->fanout_lease_ms,
        .sched = client_sched(w->fo_clients, rd->tok.u.tcp.sid, uv_now(w->loop)),
        .spread = ++w->fo_spread,
        .metrics = ctx->fo_metrics,
        .on_done = fo_done,
        .data = g,
    };
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = gw_fanout_start(&fc, &g->f, &err);
    gw_cluster_map_put(map);
    if (rc) {
        g->f = NULL;
        gw_s3_fail_lode(r, rc, cmn_err_text(&err));
    }
}

/* ---- POST /?x-lode-session ------------------------------------------------------------ */

void gw_s3_lode_session(struct gw_s3_req *r)
{
    struct gw_s3_ctx *ctx = r->w->ctx;
    const struct gw_config *cfg = ctx->cfg;
    if (!ctx->n_data_addrs) {
        gw_s3_failf(r, GW_S3_NOT_IMPLEMENTED,
                    "Fan-out reads are not enabled on this gateway (data-address is not set).");
        return;
    }
    struct cmn_dp_cred cred;
    memset(&cred, 0, sizeof(cred));
    if (cmn_dp_cred_set_key(&cred, r->auth.access_key, strlen(r->auth.access_key)) != 0) {
        gw_s3_failf(r, GW_S3_INVALID_REQUEST,
                    "Access keys longer than %d characters cannot open a data session.",
                    CMN_DP_ACCESS_KEY_MAX);
        return;
    }
    cred.expires_ms = (uint64_t)r->now_ms + cfg->session_ttl_ms;
    if (cmn_random_bytes(cred.sid, sizeof(cred.sid)) != 0 ||
        cmn_dp_cred_sign(cfg->secret, cfg->secret_len, &cred) != 0) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return;
    }
    char sid[33], mac[65];
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        sid[2 * i] = hx[cred.sid[i] >> 4];
        sid[2 * i + 1] = hx[cred.sid[i] & 15];
    }
    sid[32] = '\0';
    for (int i = 0; i < 32; i++) {
        mac[2 * i] = hx[cred.mac[i] >> 4];
        mac[2 * i + 1] = hx[cred.mac[i] & 15];
    }
    mac[64] = '\0';
    struct gw_xml_w xw;
    gw_xml_w_init(&xw, 1u << 20);
    gw_xml_w_decl(&xw);
    gw_xml_w_open(&xw, "LodeSession");
    gw_xml_w_elem_cstr(&xw, "Sid", sid);
    gw_xml_w_elem_u64(&xw, "Expires", cred.expires_ms);
    gw_xml_w_elem_cstr(&xw, "Mac", mac);
    gw_xml_w_elem_cstr(&xw, "AccessKey", cred.access_key);
    struct gw_cluster_map *map = gw_cluster_map_get(ctx->cluster);
    for (size_t i = 0; map && i < map->n_nodes; i++) {
        const struct gw_map_node *nd = &map->nodes[i];
        if (!nd->data_address || !nd->data_address[0] || !gw_map_node_readable(nd))
            continue;
        gw_xml_w_open(&xw, "Source");
        gw_xml_w_elem_u64(&xw, "Id", nd->nid);
        gw_xml_w_elem_cstr(&xw, "Tcp", nd->data_address);
        gw_xml_w_close(&xw);
    }
    gw_cluster_map_put(map);
    for (unsigned i = 0; i < ctx->n_data_addrs; i++) {
        char addr[GW_ADDR_MAX];
        pthread_mutex_lock(&ctx->data_lock);
        snprintf(addr, sizeof(addr), "%s", ctx->data_addrs[i]);
        pthread_mutex_unlock(&ctx->data_lock);
        if (!addr[0])
            continue; /* that worker has not started its listener */
        gw_xml_w_open(&xw, "Source");
        gw_xml_w_elem_u64(&xw, "Id", GW_SOURCE_GATEWAY | i);
        gw_xml_w_elem_cstr(&xw, "Tcp", addr);
        gw_xml_w_close(&xw);
    }
    gw_xml_w_close(&xw);
    explicit_bzero(&cred, sizeof(cred));
    explicit_bzero(mac, sizeof(mac));
    gw_s3_respond_xml(r, 200, &xw, NULL, 0);
}
