/* x-amz-rdma-token on the S3 surface, the data session endpoint, staged uploads and the
 * workers' data listeners (see s3_fanout.h). */
#include "gateway/s3_fanout.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/dp_proto.h"
#include "common/id.h"
#include "common/log.h"
#include "gateway/s3_xml.h"

#define LOG_CTX "s3"
#define SOURCES_HDR_MAX 8192
#define FO_HEADERS_MAX 64
/* Staged uploads: READs in flight per upload, each at most one slot (the rc listener's
 * staging slot size), so reading runs ahead of the erasure-coded write by a few MiB. */
#define RCPUT_SLOTS 8
#define RCPUT_SLOT (1u << 20)

const struct gw_fanout_tmetrics *gw_s3_fo_metrics(const struct gw_s3_req *r,
                                                  enum cmn_rdma_kind kind)
{
    const struct gw_fanout_metrics *m = r->w->ctx->fo_metrics;
    if (!m)
        return NULL;
    switch (kind) {
    case CMN_RDMA_TCP: return &m->t[GW_FO_TCP];
    case CMN_RDMA_RC: return &m->t[GW_FO_RC];
    case CMN_RDMA_DC: return &m->t[GW_FO_DC];
    default: return &m->t[GW_FO_OTHER];
    }
}

static void count_decline(struct gw_s3_req *r, enum cmn_rdma_kind kind, enum gw_rdma_reason why)
{
    const struct gw_fanout_tmetrics *m = gw_s3_fo_metrics(r, kind);
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
        count_decline(r, CMN_RDMA_NONE, GW_RDMA_REASON_UNSIGNED);
        gw_s3_failf(r, GW_S3_ACCESS_DENIED,
                    "x-amz-rdma-token must be one of the signed headers (SignedHeaders).");
        return false;
    }
    struct cmn_err err;
    cmn_err_clear(&err);
    if (cmn_rdma_token_parse(h->value.p, h->value.n, &out->tok, &err) != 0) {
        count_decline(r, CMN_RDMA_NONE, GW_RDMA_REASON_MALFORMED);
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
        /* GETs and staged uploads alike need this worker's rc listener (an upload's
         * session check comes next, gw_s3_rdma_put_ready). */
        if (!r->w->rc)
            decline(out, GW_RDMA_REASON_RC);
        else
            out->d = GW_RDMA_SERVE;
        break;
    case CMN_RDMA_DC:
        /* GETs and staged uploads alike go through this worker's DC initiators. */
        if (!r->w->dc)
            decline(out, GW_RDMA_REASON_DC);
        else
            out->d = GW_RDMA_SERVE;
        break;
    default:
        decline(out, GW_RDMA_REASON_FOREIGN);
        break;
    }
    if (out->d == GW_RDMA_DECLINE)
        count_decline(r, out->tok.kind, out->reason);
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
    bool rc;                           /* the rc transport */
    bool dc;                           /* the dc transport (neither: tcp) */
    const struct gw_fanout_tmetrics *m;
    const Lode__ObjectRecord *rec;
    uint64_t first, len;
    int status;
    size_t n;
    struct gw_header h[FO_HEADERS_MAX];
    struct cmn_buf mem;                /* the copied header names and values */
    void *fallback;                    /* the plain stream, after a fallback */
    void (*fallback_free)(void *);
};

/* Refreshes the worker's dc instance series; called as each dc request ends, the only time
 * its statistics move. */
static void feed_dc(struct gw_s3_worker *w)
{
#ifdef HAVE_MLX5DV
    if (!w->dc || !w->ctx->dc_metrics)
        return;
    struct cmn_dp_dc_stats s;
    cmn_dp_dc_get_stats(w->dc, &s);
    cmn_dp_dc_metrics_feed(&w->ctx->dc_metrics[w->index], &s);
#else
    (void)w;
#endif
}

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
    if (g->m)
        cmn_counter_add(g->m->fallbacks, 1);
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
    if (g->dc)
        feed_dc(r->w);
    /* rc: the client's NIC refusing the window (it is not registered as the token says) or
     * a stalled session closed it; the body still reaches the client. */
    bool rc_session_gone = g->rc && (status == LODE_EWINDOW || status == LODE_ETIMEOUT);
    /* dc: the client's NIC refused the window, its target did not answer, there is no route
     * to its GID, or the worker's queue was full. Every write of ours has completed and the
     * nodes answered or were waited out for lease + drain, so the body is safe. */
    bool dc_failed = g->dc && (status == LODE_EWINDOW || status == LODE_ETIMEOUT ||
                               status == LODE_EUNAVAILABLE || status == -EAGAIN ||
                               status == LODE_ESHUTDOWN);
    if (status == LODE_ENOSESSION || status == LODE_ECLOSED || status == -ENOMEM ||
        rc_session_gone || dc_failed) {
        /* Nothing is in flight any more (the fan-out waited for every node's answer, or
         * for its lease and drain): the body is safe to send and the client, seeing 501,
         * fences its window and reads the body instead. */
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
    g->rc = rd->tok.kind == CMN_RDMA_RC;
    g->dc = rd->tok.kind == CMN_RDMA_DC;
    g->m = gw_s3_fo_metrics(r, rd->tok.kind);
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
    const uint8_t *sid = g->rc ? rd->tok.u.rc.sid : rd->tok.u.tcp.sid;
    uint8_t dc_client[16];
    if (g->dc) {
        /* DC has no session: the client is its GID (its LID and DCT number with g = 0),
         * which keys both the in-flight cap and the nodes' retransmission check. */
        memcpy(dc_client, rd->tok.u.dc.gid, 16);
        if (!rd->tok.u.dc.g) {
            memset(dc_client, 0, 16);
            memcpy(dc_client, &rd->tok.u.dc.lid, sizeof(rd->tok.u.dc.lid));
            memcpy(dc_client + 4, &rd->tok.u.dc.dctn, sizeof(rd->tok.u.dc.dctn));
        }
        sid = dc_client;
    }
    struct gw_fanout_config fc = {
        .loop = w->loop,
        .pool = w->pool,
        .meta = w->meta,
        .map = map,
        .transport = g->dc ? GW_FANOUT_DC : g->rc ? GW_FANOUT_RC : GW_FANOUT_TCP,
        .dp = w->dp,
        .rc = w->rc,
        .dc = w->dc,
        .dc_token = g->dc ? &rd->tok : NULL,
        .rkey = g->rc ? rd->tok.u.rc.rkey : 0,
        .source_id = w->source_id,
        .record = rec,
        .first = first,
        .length = len,
        .sid = sid,
        .access_key = r->auth.access_key,
        .window_base = rd->tok.base,
        .window_size = rd->tok.size,
        .tag = g->rc || g->dc ? 0 : rd->tok.u.tcp.tag,
        .lease_ms = (uint32_t)ctx->cfg->fanout_lease_ms,
        .sched = client_sched(w->fo_clients, sid, uv_now(w->loop)),
        .spread = ++w->fo_spread,
        .metrics = g->m,
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
    if (!ctx->n_data_addrs && !ctx->n_rc_addrs) {
        gw_s3_failf(r, GW_S3_NOT_IMPLEMENTED,
                    "Fan-out reads are not enabled on this gateway (neither data-address nor "
                    "rdma-address is set).");
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
        bool tcp = nd->data_address && nd->data_address[0];
        bool rc = nd->rdma_address && nd->rdma_address[0];
        if (!(tcp || rc) || !gw_map_node_readable(nd))
            continue;
        gw_xml_w_open(&xw, "Source");
        gw_xml_w_elem_u64(&xw, "Id", nd->nid);
        if (tcp)
            gw_xml_w_elem_cstr(&xw, "Tcp", nd->data_address);
        if (rc)
            gw_xml_w_elem_cstr(&xw, "Rc", nd->rdma_address);
        gw_xml_w_close(&xw);
    }
    gw_cluster_map_put(map);
    unsigned workers = ctx->n_data_addrs > ctx->n_rc_addrs ? ctx->n_data_addrs : ctx->n_rc_addrs;
    for (unsigned i = 0; i < workers; i++) {
        char tcp[GW_ADDR_MAX] = "", rc[GW_ADDR_MAX] = "";
        pthread_mutex_lock(&ctx->data_lock);
        if (i < ctx->n_data_addrs)
            snprintf(tcp, sizeof(tcp), "%s", ctx->data_addrs[i]);
        if (i < ctx->n_rc_addrs)
            snprintf(rc, sizeof(rc), "%s", ctx->rc_addrs[i]);
        pthread_mutex_unlock(&ctx->data_lock);
        if (!tcp[0] && !rc[0])
            continue; /* that worker has not started its listeners */
        gw_xml_w_open(&xw, "Source");
        gw_xml_w_elem_u64(&xw, "Id", GW_SOURCE_GATEWAY | i);
        if (tcp[0])
            gw_xml_w_elem_cstr(&xw, "Tcp", tcp);
        if (rc[0])
            gw_xml_w_elem_cstr(&xw, "Rc", rc);
        gw_xml_w_close(&xw);
    }
    gw_xml_w_close(&xw);
    explicit_bzero(&cred, sizeof(cred));
    explicit_bzero(mac, sizeof(mac));
    gw_s3_respond_xml(r, 200, &xw, NULL, 0);
}

/* ---- staged uploads: RDMA READs feeding the upload's body pipe ------------------------- */

struct rcput_slot {
    struct gw_rc_put *p;
    uint8_t *buf;                      /* RCPUT_SLOT bytes (or the object, when smaller) */
    bool in_arena;                     /* buf is the worker's upload arena's (else malloc's) */
    uint64_t off;                      /* object offset of its bytes */
    size_t len, fed;
    enum { SLOT_FREE, SLOT_READING, SLOT_READY } state;
};

struct gw_rc_put {
    struct gw_s3_req *r;               /* NULL once detached */
    struct cmn_dp_rc *rc;              /* rc, or */
    struct cmn_dp_dc *dc;              /* dc (with dctok) */
    struct cmn_rdma_token dctok;
    struct cmn_dp_rc_target t;
    char key[CMN_DP_ACCESS_KEY_MAX + 1];
    const struct gw_fanout_tmetrics *m;
    uint64_t size;                     /* the object: the token's window */
    uint64_t next_read, next_feed;     /* object offsets */
    uint64_t direct;                   /* bytes read into arena slots */
    struct rcput_slot slots[RCPUT_SLOTS];
    struct cmn_arena *arena;           /* the worker's upload arena, or NULL */
    unsigned reads;                    /* READs in flight */
    unsigned depth;                    /* inside one of our functions */
    bool failed, ended;
};

static void rcput_maybe_free(struct gw_rc_put *p)
{
    if (p->r || p->reads || p->depth)
        return;
    for (unsigned i = 0; i < RCPUT_SLOTS; i++) {
        if (p->slots[i].in_arena)
            cmn_arena_free(p->arena, p->slots[i].buf);
        else
            free(p->slots[i].buf);
    }
    explicit_bzero(p, sizeof(*p));
    free(p);
}

/* Ends the body with the failure (once): the upload fails and commits nothing. -EAGAIN (the
 * worker's dc queue stayed full with none of this upload's READs in flight) is 503 SlowDown,
 * which clients retry; anything else 500 RDMATransferFailed. */
static void rcput_fail(struct gw_rc_put *p, int status)
{
    if (p->failed)
        return;
    p->failed = true;
    if (!p->r || p->ended)
        return;
    p->ended = true;
    if (p->dc)
        feed_dc(p->r->w);
    if (p->m)
        cmn_counter_add(p->m->put_failures, 1);
    char msg[200];
    snprintf(msg, sizeof(msg), "Reading the upload out of the client's memory over RDMA "
             "failed after %" PRIu64 " of %" PRIu64 " bytes: %s; nothing was stored.",
             p->next_feed, p->size, lode_strerror(status));
    LOG_INFO(LOG_CTX, "%s %s /%s/%s: %s", gw_req_id(p->r->req),
             gw_s3_op_name(p->r->route.op), p->r->route.bucket, p->r->route.key, msg);
    gw_s3_body_feed_end(p->r, status == -EAGAIN ? GW_S3_SLOW_DOWN : GW_S3_RDMA_TRANSFER_FAILED,
                        msg);
}

static void rcput_pump(struct gw_rc_put *p);

__attribute__((unused)) static void rcput_on_read(void *data, int status)
{
    struct rcput_slot *sl = data;
    struct gw_rc_put *p = sl->p;
    p->reads--;
    if (status == 0 && p->r && !p->failed) {
        sl->state = SLOT_READY;
        if (sl->in_arena)
            p->direct += sl->len;
    } else {
        sl->state = SLOT_FREE;
        if (status != 0 && p->r) {
            p->depth++;
            rcput_fail(p, status);
            p->depth--;
        }
    }
    rcput_pump(p);
}

/* One READ into a slot, over the upload's transport. */
static int rcput_read(struct gw_rc_put *p, struct rcput_slot *sl)
{
    if (p->dc) {
#ifdef HAVE_MLX5DV
        /* dc addresses by window offset; -EAGAIN: the worker's queue is full (rcput_pump). */
        return cmn_dp_dc_read(p->dc, &p->dctok, sl->off, sl->buf, sl->len, rcput_on_read, sl);
#else
        return -EPROTONOSUPPORT;
#endif
    }
#ifdef HAVE_RDMA
    return cmn_dp_rc_read(p->rc, &p->t, p->t.window_base + sl->off, sl->buf, sl->len,
                          rcput_on_read, sl);
#else
    return -EPROTONOSUPPORT; /* unreachable: rc1 tokens are declined without an rc listener */
#endif
}

/* Delivers the bytes that are next in order, then starts READs into the free slots. */
static void rcput_pump(struct gw_rc_put *p)
{
    /* A request that already answered (the pipeline failed it) needs no more bytes. */
    if (!p->r || p->failed || p->ended || p->r->ended) {
        rcput_maybe_free(p);
        return;
    }
    p->depth++;
    for (;;) {
        struct rcput_slot *sl = NULL;
        for (unsigned i = 0; i < RCPUT_SLOTS && !sl; i++)
            if (p->slots[i].state == SLOT_READY && p->slots[i].off == p->next_feed)
                sl = &p->slots[i];
        if (!sl)
            break;
        size_t t = gw_s3_body_feed(p->r, sl->buf + sl->fed, sl->len - sl->fed);
        if (!p->r || p->ended || p->failed || p->r->ended)
            goto out; /* the request failed or went away meanwhile */
        sl->fed += t;
        if (sl->fed < sl->len)
            goto out; /* the consumer is full: gw_s3_body_resume brings us back */
        p->next_feed += sl->len;
        sl->state = SLOT_FREE;
    }
    if (p->next_feed == p->size) {
        p->ended = true;
        if (p->dc)
            feed_dc(p->r->w);
        if (p->m) {
            cmn_counter_add(p->m->put_bytes, p->size);
            cmn_counter_add(p->m->put_direct, p->direct);
        }
        gw_s3_body_feed_end(p->r, GW_S3_OK, NULL);
        goto out;
    }
    for (unsigned i = 0; i < RCPUT_SLOTS && p->next_read < p->size; i++) {
        struct rcput_slot *sl = &p->slots[i];
        if (sl->state != SLOT_FREE)
            continue;
        uint64_t left = p->size - p->next_read;
        size_t cap = p->size < RCPUT_SLOT ? (size_t)p->size : RCPUT_SLOT;
        if (!sl->buf && p->arena) {
            size_t got; /* READs land where they lie: no copy out of the staging memory */
            sl->buf = cmn_arena_alloc(p->arena, cap, 64, &got);
            sl->in_arena = sl->buf != NULL;
        }
        if (!sl->buf && !(sl->buf = malloc(cap))) {
            if (p->reads == 0)
                rcput_fail(p, -ENOMEM); /* else one completes and we come back */
            break;
        }
        sl->off = p->next_read;
        sl->len = left < cap ? (size_t)left : cap;
        sl->fed = 0;
        sl->state = SLOT_READING;
        int rc = rcput_read(p, sl);
        if (rc == -EAGAIN && p->reads > 0) {
            /* The dc queue is full: a READ of ours completes and pumps again. */
            sl->state = SLOT_FREE;
            break;
        }
        if (rc != 0) {
            sl->state = SLOT_FREE;
            rcput_fail(p, rc);
            break;
        }
        p->reads++;
        p->next_read += sl->len;
    }
out:
    p->depth--;
    rcput_maybe_free(p);
}

static void rcput_resume(void *data)
{
    rcput_pump(data);
}

bool gw_s3_rdma_put_ready(struct gw_s3_req *r, struct gw_s3_rdma *rd)
{
    if (rd->tok.kind == CMN_RDMA_DC && r->w->dc)
        return true; /* no session: the token and the DC key address the window */
#ifdef HAVE_RDMA
    if (r->w->rc && cmn_dp_rc_has_session(r->w->rc, rd->tok.u.rc.sid, r->auth.access_key))
        return true;
#endif
    /* The PUT went to a worker the client has no rc connection with (or its session
     * dropped): decline before anything moves, so the client sends the bytes in a body. */
    rd->d = GW_RDMA_DECLINE;
    rd->reason = GW_RDMA_REASON_SESSION;
    count_decline(r, rd->tok.kind, rd->reason);
    gw_s3_rdma_decline_put(r, rd);
    return false;
}

bool gw_s3_rdma_put_start(struct gw_s3_req *r, const struct gw_s3_rdma *rd,
                          gw_s3_data_cb on_data, gw_s3_end_cb on_end, struct gw_rc_put **out)
{
    *out = NULL;
    struct gw_rc_put *p = calloc(1, sizeof(*p));
    if (!p) {
        gw_s3_failf(r, GW_S3_INTERNAL_ERROR, NULL);
        return false;
    }
    p->r = r;
    p->rc = r->w->rc;
    p->arena = r->w->upload_arena;
    if (rd->tok.kind == CMN_RDMA_DC) {
        p->dc = r->w->dc;
        p->dctok = rd->tok;
    }
    p->m = gw_s3_fo_metrics(r, rd->tok.kind);
    p->size = rd->tok.size;
    snprintf(p->key, sizeof(p->key), "%s", r->auth.access_key);
    memcpy(p->t.sid, rd->tok.u.rc.sid, sizeof(p->t.sid));
    p->t.access_key = p->key;
    p->t.window_base = rd->tok.base;
    p->t.window_size = rd->tok.size;
    p->t.rkey = rd->tok.u.rc.rkey;
    for (unsigned i = 0; i < RCPUT_SLOTS; i++)
        p->slots[i].p = p;
    if (!gw_s3_body_start_external(r, on_data, on_end, rcput_resume, p)) {
        p->r = NULL;
        rcput_maybe_free(p);
        return false;
    }
    *out = p;
    if (p->m)
        cmn_counter_add(p->m->puts, 1);
    rcput_pump(p);
    return true;
}

void gw_s3_rdma_put_detach(struct gw_rc_put *p)
{
    if (!p)
        return;
    p->r = NULL;
    rcput_maybe_free(p);
}

/* ---- the worker's data listeners ------------------------------------------------------- */

/* Clients' tcp data sessions with this worker connect here, and the fan-out writes what
 * it serves itself through it (gateway/fanout.h). */
int gw_s3_worker_start_data(struct gw_s3_worker *w)
{
    struct gw_s3_ctx *ctx = w->ctx;
    const struct gw_config *cfg = ctx->cfg;
    struct cmn_err err;
    cmn_err_clear(&err);
    w->source_id = GW_SOURCE_GATEWAY | w->index;
    struct cmn_dp_server_config dc = {
        .secret = cfg->secret,
        .secret_len = cfg->secret_len,
        .source_id = w->source_id,
    };
    int rc = cmn_dp_server_create(w->loop, &dc, &w->dp);
    if (rc)
        return rc;
    char addr[GW_ADDR_MAX + 8];
    snprintf(addr, sizeof(addr), "%s:%u", cfg->data_host,
             cfg->data_port ? (unsigned)cfg->data_port + w->index : 0u);
    if ((rc = cmn_dp_server_listen(w->dp, addr, &err))) {
        LOG_ERROR(LOG_CTX, "worker %u: data listener on %s: %s (choose another data-address)",
                  w->index, addr, cmn_err_text(&err));
        return rc;
    }
    if (!cfg->data_adv_port) {
        pthread_mutex_lock(&ctx->data_lock);
        snprintf(ctx->data_addrs[w->index], sizeof(ctx->data_addrs[w->index]), "%s:%d",
                 cfg->data_adv_host, cmn_dp_server_port(w->dp));
        pthread_mutex_unlock(&ctx->data_lock);
    }
    if (!w->fo_clients && !(w->fo_clients = gw_fo_clients_new(cfg->fanout_client_cap)))
        return -ENOMEM;
    LOG_DEBUG(LOG_CTX, "worker %u: data listener on %s", w->index, addr);
    return 0;
}

/* The worker's upload arena: created with its first RDMA transport and registered with each,
 * so staged uploads are RDMA-read straight into it. Not fatal: without it uploads are staged. */
#ifdef HAVE_RDMA
static void worker_upload_arena(struct gw_s3_worker *w, bool rc)
{
    size_t size = (size_t)w->ctx->cfg->rdma_upload_buffers;
    if (size == 0)
        return;
    if (!w->upload_arena && cmn_arena_create(size, &w->upload_arena) != 0) {
        LOG_WARN(LOG_CTX, "worker %u: rdma-upload-buffers: cannot reserve %zu bytes; staged "
                 "uploads are copied out of the staging memory", w->index, size);
        return;
    }
    struct cmn_err err;
    cmn_err_clear(&err);
    void *base = cmn_arena_base(w->upload_arena);
    size = cmn_arena_size(w->upload_arena);
    int rv = rc ? cmn_dp_rc_add_region(w->rc, base, size, &err) : -ENOTSUP;
#ifdef HAVE_MLX5DV
    if (!rc)
        rv = cmn_dp_dc_add_region(w->dc, base, size, &err);
#endif
    if (rv != 0)
        LOG_WARN(LOG_CTX, "worker %u: rdma-upload-buffers: %s; %s uploads are staged", w->index,
                 cmn_err_text(&err), rc ? "rc" : "dc");
}
#endif

void gw_s3_worker_free_upload_arena(struct gw_s3_worker *w)
{
    if (cmn_arena_destroy(w->upload_arena) != 0) /* an upload still holds buffers in it */
        LOG_WARN(LOG_CTX, "worker %u: upload buffers still out at close: the upload arena is "
                 "left mapped", w->index);
    w->upload_arena = NULL;
}

/* Clients' queue pairs with this worker connect here; the fan-out RDMA-WRITEs what it
 * serves itself through it, and staged uploads RDMA-READ. */
int gw_s3_worker_start_rc(struct gw_s3_worker *w)
{
#ifdef HAVE_RDMA
    struct gw_s3_ctx *ctx = w->ctx;
    const struct gw_config *cfg = ctx->cfg;
    struct cmn_err err;
    cmn_err_clear(&err);
    w->source_id = GW_SOURCE_GATEWAY | w->index;
    struct cmn_dp_rc_config rcfg = {
        .host = cfg->rdma_host,
        .port = cfg->rdma_port ? (uint16_t)(cfg->rdma_port + w->index) : 0,
        .source_id = w->source_id,
        .secret = cfg->secret,
        .secret_len = cfg->secret_len,
        .staging_bytes = (size_t)cfg->rdma_staging_size,
    };
    int rc = cmn_dp_rc_create(w->loop, &rcfg, &w->rc, &err);
    if (rc) {
        w->rc = NULL;
        LOG_ERROR(LOG_CTX, "worker %u: rc listener on %s:%u: %s", w->index, rcfg.host,
                  (unsigned)rcfg.port, cmn_err_text(&err));
        return rc;
    }
    if (!cfg->rdma_port) {
        pthread_mutex_lock(&ctx->data_lock);
        snprintf(ctx->rc_addrs[w->index], sizeof(ctx->rc_addrs[w->index]), "%s:%u",
                 cfg->rdma_host, (unsigned)cmn_dp_rc_port(w->rc));
        pthread_mutex_unlock(&ctx->data_lock);
    }
    if (!w->fo_clients && !(w->fo_clients = gw_fo_clients_new(cfg->fanout_client_cap)))
        return -ENOMEM;
    worker_upload_arena(w, true);
    LOG_DEBUG(LOG_CTX, "worker %u: rc listener on %s:%u", w->index, rcfg.host,
              (unsigned)cmn_dp_rc_port(w->rc));
    return 0;
#else
    (void)w;
    return LODE_ECONFIG; /* gw_config_finish refuses rdma-address in such a build */
#endif
}


/* The worker's DC initiators: what this worker writes of a dc GET (degraded stripes, pieces
 * a node failed) and every staged dc upload go through them. */
int gw_s3_worker_start_dc(struct gw_s3_worker *w)
{
#ifdef HAVE_MLX5DV
    const struct gw_config *cfg = w->ctx->cfg;
    struct cmn_err err;
    cmn_err_clear(&err);
    w->source_id = GW_SOURCE_GATEWAY | w->index;
    int rc = cmn_dp_dc_create(w->loop, &cfg->dc, &w->dc, &err);
    if (rc) {
        w->dc = NULL;
        LOG_ERROR(LOG_CTX, "worker %u: dc: %s", w->index, cmn_err_text(&err));
        return rc;
    }
    if (!w->fo_clients && !(w->fo_clients = gw_fo_clients_new(cfg->fanout_client_cap)))
        return -ENOMEM;
    worker_upload_arena(w, false);
    LOG_DEBUG(LOG_CTX, "worker %u: dc initiators ready (drain bound %" PRIu64 " ms)", w->index,
              cmn_dp_dc_drain_ms(w->dc));
    return 0;
#else
    (void)w;
    return LODE_ECONFIG; /* main refuses dc-device/dc-address in such a build */
#endif
}
