/* The chunk service: decodes requests, checks them, runs them against the store and
 * answers (see service.h).
 *
 * Each request is a struct req from acceptance to its reply: it owns the RPC call until it
 * is answered (by reply_*, or for a GET by the push, which consumes the call) and is freed by
 * finish(), which also does the per-method metrics. Store callbacks always come back on the
 * loop, so a request never sees two completions.
 */
#include "node/service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "node/fanout.h"
#include "node/push.h"

#define LOG_CTX "service"
#define LIST_DEFAULT 1000
#define LIST_MAX 10000

#define METHOD_ROW(name) {CMN_RPC_##name, #name, "method=\"" #name "\""}
static const struct {
    unsigned num;
    const char *name;
    const char *labels;
} methods[] = {
    METHOD_ROW(CHUNK_PUT),  METHOD_ROW(CHUNK_GET),  METHOD_ROW(CHUNK_DELETE),
    METHOD_ROW(CHUNK_STAT), METHOD_ROW(CHUNK_LIST), METHOD_ROW(NODE_HEALTH),
    METHOD_ROW(FANOUT_PUSH),
};
#undef METHOD_ROW
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

struct method_metrics {
    struct cmn_counter *requests;
    struct cmn_counter *errors;
    struct cmn_histogram *latency;
};

struct node_service {
    uv_loop_t *loop;
    struct node_store *st;
    struct cmn_metrics *metrics;
    char *cluster;
    char *failure_domain;
    char *address;
    uint64_t max_chunk;
    struct node_registrar *reg;
    struct node_scrub *scrub;
    struct cmn_xfer *xfer;           /* the GET send side ("rpc") */
    struct node_fanout *fanout;      /* FANOUT_PUSH, when a data listener runs */
    struct method_metrics mm[N_METHODS + 1]; /* + "unknown" */
    struct cmn_counter *bytes_in;
    struct cmn_counter *bytes_out;
    struct cmn_gauge *g_in_flight;
    int stopped;
    unsigned in_flight;
    uint64_t start_ms;
};

/* A CHUNK_PUT payload received straight into a store record buffer. */
struct put_payload {
    struct node_put_buf buf;
};

struct req {
    struct node_service *svc;
    struct cmn_rpc_call *call;       /* NULL once answered */
    size_t mi;                       /* index into svc->mm */
    uint64_t start_ns;
    struct cmn_id id;
    char hex[CMN_ID_HEX_SIZE];
    struct node_chunk_info info;     /* GET / DELETE: the chunk as found before the op */
    uint64_t length;                 /* PUT: data bytes */
    uint64_t hash;                   /* PUT: expected XXH3 */
    uint64_t offset, range;          /* GET: requested range */
    struct node_push push;           /* GET: the send */
};

static size_t method_index(unsigned method)
{
    for (size_t i = 0; i < N_METHODS; i++)
        if (methods[i].num == method)
            return i;
    return N_METHODS;
}

/* ---- answering ------------------------------------------------------------------------ */

static void finish(struct req *r, int status)
{
    struct node_service *svc = r->svc;
    struct method_metrics *mm = &svc->mm[r->mi];
    if (status < 0)
        cmn_counter_add(mm->errors, 1);
    cmn_histogram_observe(mm->latency, (double)(cmn_mono_ns() - r->start_ns) / 1e9);
    svc->in_flight--;
    cmn_gauge_add(svc->g_in_flight, -1);
    free(r);
}

static void reply_error(struct req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct req *r, int status, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cmn_rpc_reply_error(r->call, status, NULL, 0, "%s", msg);
    r->call = NULL;
    finish(r, status);
}

static void reply_msg(struct req *r, const ProtobufCMessage *msg)
{
    cmn_rpc_reply(r->call, msg);
    r->call = NULL;
    finish(r, 0);
}

static void info_to_pb(const struct node_chunk_info *in, Lode__ChunkInfo *out)
{
    lode__chunk_info__init(out);
    out->chunk_id.data = (uint8_t *)in->id.b;
    out->chunk_id.len = CMN_ID_SIZE;
    out->length = in->length;
    out->xxh3 = in->hash;
    out->created_ms = in->created_ms;
    out->seq = in->seq;
    out->disk = in->disk;
}

/* The text of a store error, for the operation `op` on chunk `hex`. */
static void reply_store_error(struct req *r, const char *op, int status)
{
    switch (status) {
    case LODE_ENOCHUNK:
        reply_error(r, status, "no chunk %s on this node", r->hex);
        return;
    case LODE_ECORRUPT:
        if (strcmp(op, "put") == 0)
            reply_error(r, status, "chunk %s: the data does not match the xxh3 given "
                        "(%016" PRIx64 "); nothing was written", r->hex, r->hash);
        else
            reply_error(r, status, "chunk %s failed verification (checksum mismatch); no data "
                        "is returned and the chunk is reported for repair", r->hex);
        return;
    case LODE_ENOSPACE:
        if (strcmp(op, "put") == 0)
            reply_error(r, status, "insufficient storage: no data directory has room for "
                        "chunk %s (%" PRIu64 " bytes)", r->hex, r->length);
        else
            reply_error(r, status, "insufficient storage: no room for the %s record of chunk "
                        "%s", op, r->hex);
        return;
    case -EEXIST:
        reply_error(r, status, "chunk %s already exists with other content (chunk ids are "
                    "never reused)", r->hex);
        return;
    case LODE_ETOOLARGE:
        reply_error(r, status, "chunk %s: %" PRIu64 " bytes exceeds max-chunk-size (%" PRIu64
                    ")", r->hex, r->length, r->svc->max_chunk);
        return;
    case LODE_ESHUTDOWN:
        reply_error(r, status, "lode-node is shutting down");
        return;
    case -ENOMEM:
        reply_error(r, status, "%s of chunk %s: out of memory", op, r->hex);
        return;
    default:
        reply_error(r, status, "%s of chunk %s failed: %s", op, r->hex, lode_strerror(status));
        return;
    }
}

/* Chunk ids travel as 16 raw bytes. Returns 0, or answers the request and returns -1. */
static int take_id(struct req *r, const ProtobufCBinaryData *b, const char *field)
{
    if (cmn_id_from_bytes(b->data, b->len, &r->id) != 0) {
        reply_error(r, LODE_EBADMSG, "%s must be 16 bytes, not %zu", field, b->len);
        return -1;
    }
    cmn_id_to_hex(&r->id, r->hex);
    return 0;
}

/* ---- CHUNK_PUT ------------------------------------------------------------------------ */

void *node_service_payload_alloc(void *data, unsigned method, const uint8_t *body,
                                 size_t body_len, uint32_t payload_len, void **cookie)
{
    struct node_service *svc = data;
    if (method != CMN_RPC_CHUNK_PUT || svc->stopped)
        return NULL;
    Lode__ChunkPutRequest *q = lode__chunk_put_request__unpack(NULL, body_len, body);
    if (!q)
        return NULL;
    /* Only a request the handler will accept gets a record buffer; anything else is buffered
     * by the server (bounded by max-frame-size) and refused with a precise message. */
    int good = q->chunk_id.len == CMN_ID_SIZE && q->length == payload_len && payload_len > 0 &&
               payload_len <= svc->max_chunk;
    lode__chunk_put_request__free_unpacked(q, NULL);
    if (!good)
        return NULL;
    struct put_payload *pp = malloc(sizeof(*pp));
    if (!pp)
        return NULL;
    if (node_store_put_buf_alloc(svc->st, payload_len, &pp->buf) != 0) {
        free(pp);
        return NULL;
    }
    *cookie = pp;
    return pp->buf.data;
}

void node_service_payload_free(void *data, void *cookie)
{
    (void)data;
    struct put_payload *pp = cookie;
    node_store_put_buf_free(&pp->buf);
    free(pp);
}

/* A writer that lost the reply to a put retries it: the same id with the same length and
 * checksum is that chunk, already stored, so the retry succeeds. Returns 1 when answered. */
static int put_retried(struct req *r)
{
    struct node_chunk_info info;
    if (r->svc->stopped || node_store_stat(r->svc->st, &r->id, &info) != 0 ||
        info.length != r->length || info.hash != r->hash)
        return 0;
    Lode__ChunkInfo ci;
    info_to_pb(&info, &ci);
    reply_msg(r, &ci.base);
    return 1;
}

static void put_done(void *data, int status)
{
    struct req *r = data;
    if (status == -EEXIST && put_retried(r))
        return;
    if (status != 0) {
        reply_store_error(r, "put", status);
        return;
    }
    struct node_chunk_info info = {.id = r->id, .length = r->length, .hash = r->hash};
    /* While the store closes (callbacks of in-flight puts run then), leave it alone. */
    if (!r->svc->stopped)
        node_store_stat(r->svc->st, &r->id, &info);
    Lode__ChunkInfo ci;
    info_to_pb(&info, &ci);
    reply_msg(r, &ci.base);
}

static void do_put(struct req *r, const Lode__ChunkPutRequest *q)
{
    struct node_service *svc = r->svc;
    if (take_id(r, &q->chunk_id, "chunk_id"))
        return;
    r->length = q->length;
    r->hash = q->xxh3;
    if (q->length == 0) {
        reply_error(r, -EINVAL, "chunk %s: empty chunks are not stored (length 0)", r->hex);
        return;
    }
    if (q->length > svc->max_chunk) {
        reply_store_error(r, "put", LODE_ETOOLARGE);
        return;
    }
    struct node_put_buf buf;
    struct put_payload *pp = cmn_rpc_call_take_payload(r->call);
    if (pp) {
        buf = pp->buf;
        free(pp);
    } else {
        /* The payload was buffered by the server (no record buffer could be had when it
         * arrived): check it and copy it into one now. */
        size_t plen = 0;
        const uint8_t *payload = cmn_rpc_call_payload(r->call, &plen);
        if (plen == 0) {
            reply_error(r, LODE_EBADMSG, "CHUNK_PUT of chunk %s without a payload (length "
                        "says %" PRIu64 " bytes)", r->hex, q->length);
            return;
        }
        if (plen != q->length) {
            reply_error(r, LODE_EBADMSG, "CHUNK_PUT of chunk %s: length says %" PRIu64
                        " bytes but the payload carries %zu", r->hex, q->length, plen);
            return;
        }
        int rc = node_store_put_buf_alloc(svc->st, plen, &buf);
        if (rc) {
            reply_store_error(r, "put", rc);
            return;
        }
        memcpy(buf.data, payload, plen);
    }
    if (buf.len != q->length) {
        node_store_put_buf_free(&buf);
        reply_error(r, LODE_EBADMSG, "CHUNK_PUT of chunk %s: length says %" PRIu64
                    " bytes but the payload carries %zu", r->hex, q->length, buf.len);
        return;
    }
    cmn_counter_add(svc->bytes_in, q->length);
    int rc = node_store_put(svc->st, &r->id, &buf, q->xxh3, put_done, r);
    if (rc) {
        node_store_put_buf_free(&buf);
        if (rc != -EEXIST || !put_retried(r))
            reply_store_error(r, "put", rc);
    }
}

/* ---- CHUNK_GET ------------------------------------------------------------------------ */

static void get_pushed(void *data, int status)
{
    struct req *r = data;
    if (status == 0)
        cmn_counter_add(r->svc->bytes_out, r->range);
    /* The transport answered the call (the payload, or an error it could not send). */
    finish(r, status);
}

static void get_done(void *data, int status, struct node_read *rd)
{
    struct req *r = data;
    struct node_service *svc = r->svc;
    if (status != 0) {
        reply_store_error(r, "get", status);
        return;
    }
    struct node_chunk_info info = r->info;
    info.length = rd->chunk_length;
    info.hash = rd->chunk_hash;
    Lode__ChunkInfo ci;
    info_to_pb(&info, &ci);
    r->range = rd->len;
    struct node_push_rpc_target target = {.call = r->call, .reply = &ci.base};
    r->call = NULL;              /* the push answers it, whatever happens */
    r->push.data = r;
    r->push.cb = get_pushed;
    int rc = node_push_read(&r->push, svc->xfer, &target, 0, rd);
    if (rc != 0) {
        node_read_release(rd);
        finish(r, rc);
    }
}

static void do_get(struct req *r, const Lode__ChunkGetRequest *q)
{
    struct node_service *svc = r->svc;
    if (take_id(r, &q->chunk_id, "chunk_id"))
        return;
    int rc = node_store_stat(svc->st, &r->id, &r->info);
    if (rc) {
        reply_store_error(r, "get", rc);
        return;
    }
    /* Ranges are checked here, against the index, so that the message can say why. */
    uint64_t len = r->info.length;
    if (q->offset >= len || (q->length && q->length > len - q->offset)) {
        reply_error(r, -EINVAL, "range offset %" PRIu64 " length %" PRIu64 " is outside chunk "
                    "%s (%" PRIu64 " bytes)", q->offset, q->length, r->hex, len);
        return;
    }
    r->offset = q->offset;
    if (cmn_rpc_call_orphaned(r->call)) {
        /* The reader is gone: reading would be wasted work. */
        reply_error(r, LODE_ECLOSED, "connection closed");
        return;
    }
    rc = node_store_get(svc->st, &r->id, q->offset, q->length, get_done, r);
    if (rc)
        reply_store_error(r, "get", rc);
}

/* ---- CHUNK_DELETE, CHUNK_STAT, CHUNK_LIST --------------------------------------------- */

static void delete_done(void *data, int status)
{
    struct req *r = data;
    if (status != 0) {
        reply_store_error(r, "delete", status);
        return;
    }
    Lode__ChunkInfo ci;
    info_to_pb(&r->info, &ci);
    reply_msg(r, &ci.base);
}

static void do_delete(struct req *r, const Lode__ChunkIdRequest *q)
{
    if (take_id(r, &q->chunk_id, "chunk_id"))
        return;
    int rc = node_store_stat(r->svc->st, &r->id, &r->info);
    if (rc == 0)
        rc = node_store_delete(r->svc->st, &r->id, delete_done, r);
    if (rc)
        reply_store_error(r, "delete", rc);
}

static void do_stat(struct req *r, const Lode__ChunkIdRequest *q)
{
    if (take_id(r, &q->chunk_id, "chunk_id"))
        return;
    struct node_chunk_info info;
    int rc = node_store_stat(r->svc->st, &r->id, &info);
    if (rc) {
        reply_store_error(r, "stat", rc);
        return;
    }
    Lode__ChunkInfo ci;
    info_to_pb(&info, &ci);
    reply_msg(r, &ci.base);
}

static void do_list(struct req *r, const Lode__ChunkListRequest *q)
{
    struct cmn_id after;
    const struct cmn_id *ap = NULL;
    if (q->after.len) {
        if (cmn_id_from_bytes(q->after.data, q->after.len, &after) != 0) {
            reply_error(r, LODE_EBADMSG, "after must be empty or 16 bytes, not %zu",
                        q->after.len);
            return;
        }
        ap = &after;
    }
    size_t max = q->max ? q->max : LIST_DEFAULT;
    if (max > LIST_MAX)
        max = LIST_MAX;
    struct node_chunk_info *infos = calloc(max, sizeof(*infos));
    Lode__ChunkInfo *cis = calloc(max, sizeof(*cis));
    Lode__ChunkInfo **ptrs = calloc(max, sizeof(*ptrs));
    size_t n = 0;
    bool more = false;
    int rc = infos && cis && ptrs ? node_store_list(r->svc->st, ap, max, infos, &n, &more)
                                  : -ENOMEM;
    if (rc) {
        reply_error(r, rc, "list: %s", lode_strerror(rc));
    } else {
        for (size_t i = 0; i < n; i++) {
            info_to_pb(&infos[i], &cis[i]);
            ptrs[i] = &cis[i];
        }
        Lode__ChunkListResponse resp = LODE__CHUNK_LIST_RESPONSE__INIT;
        resp.n_chunks = n;
        resp.chunks = ptrs;
        resp.truncated = more;
        reply_msg(r, &resp.base);
    }
    free(infos);
    free(cis);
    free(ptrs);
}

/* ---- NODE_HEALTH ---------------------------------------------------------------------- */

static void do_health(struct req *r)
{
    struct node_service *svc = r->svc;
    struct node_store_stats stats;
    node_store_stats(svc->st, &stats);
    struct cmn_id uuid = node_store_uuid(svc->st);
    Lode__NodeHealthResponse h = LODE__NODE_HEALTH_RESPONSE__INIT;
    h.uuid.data = uuid.b;
    h.uuid.len = CMN_ID_SIZE;
    h.nid = svc->reg ? node_registrar_nid(svc->reg) : 0;
    h.cluster = svc->cluster;
    h.address = svc->address ? svc->address : (char *)"";
    h.failure_domain = svc->failure_domain;
    h.capacity_bytes = stats.capacity_bytes;
    h.used_bytes = stats.used_bytes;
    h.chunks = stats.chunks;
    h.corrupt_chunks = stats.corrupt_found;
    h.damaged_records = stats.damaged_records;
    if (svc->scrub) {
        struct node_scrub_stats ss;
        node_scrub_stats(svc->scrub, &ss);
        h.scrubbed_bytes = ss.bytes;
    }
    h.version = (char *)PACKAGE_VERSION;
    h.uptime_ms = (int64_t)(cmn_mono_ms() - svc->start_ms);
    h.meta_state = (char *)(svc->reg ? node_meta_state_name(node_registrar_state(svc->reg))
                                     : "none");
    Lode__DiskHealth *disks = calloc(stats.n_disks ? stats.n_disks : 1, sizeof(*disks));
    Lode__DiskHealth **dp = calloc(stats.n_disks ? stats.n_disks : 1, sizeof(*dp));
    if (!disks || !dp) {
        free(disks);
        free(dp);
        reply_error(r, -ENOMEM, "health: out of memory");
        return;
    }
    for (size_t i = 0; i < stats.n_disks; i++) {
        const struct node_disk_stats *d = &stats.disks[i];
        lode__disk_health__init(&disks[i]);
        disks[i].path = (char *)(d->path ? d->path : "");
        disks[i].io_backend = (char *)(d->io_backend ? d->io_backend : "");
        disks[i].note = (char *)(d->io_note ? d->io_note : "");
        disks[i].capacity_bytes = d->capacity_bytes;
        disks[i].used_bytes = d->used_bytes;
        disks[i].volumes = d->volumes;
        disks[i].chunks = d->chunks;
        disks[i].full = d->full;
        dp[i] = &disks[i];
    }
    h.n_disks = stats.n_disks;
    h.disks = dp;
    reply_msg(r, &h.base);
    free(disks);
    free(dp);
}

/* ---- FANOUT_PUSH ---------------------------------------------------------------------- */

static void fanout_done(void *data, int status)
{
    finish(data, status);
}

static void do_fanout(struct req *r, const Lode__FanoutPushRequest *q)
{
    if (!r->svc->fanout) {
        reply_error(r, LODE_ENOMETHOD, "fan-out reads are not enabled on this node: set "
                    "data-address to run its data listener");
        return;
    }
    struct cmn_rpc_call *call = r->call;
    r->call = NULL; /* the fan-out module answers it */
    node_fanout_push(r->svc->fanout, call, q, fanout_done, r);
}

void node_service_attach_fanout(struct node_service *svc, struct node_fanout *fanout)
{
    svc->fanout = fanout;
}

/* ---- dispatch ------------------------------------------------------------------------- */

void node_service_handle(void *data, struct cmn_rpc_call *call)
{
    struct node_service *svc = data;
    unsigned method = cmn_rpc_call_method(call);
    size_t mi = method_index(method);
    cmn_counter_add(svc->mm[mi].requests, 1);
    struct req *r = calloc(1, sizeof(*r));
    if (!r) {
        cmn_counter_add(svc->mm[mi].errors, 1);
        cmn_rpc_reply_error(call, -ENOMEM, NULL, 0, "out of memory");
        return;
    }
    r->svc = svc;
    r->call = call;
    r->mi = mi;
    r->start_ns = cmn_mono_ns();
    svc->in_flight++;
    cmn_gauge_add(svc->g_in_flight, 1);

    const ProtobufCMessageDescriptor *desc = cmn_rpc_method_request(method);
    if (mi == N_METHODS || !desc) {
        const char *name = cmn_rpc_method_name(method);
        if (name)
            reply_error(r, LODE_ENOMETHOD, "method %s is not served by lode-node", name);
        else
            reply_error(r, LODE_ENOMETHOD, "unknown method %u", method);
        return;
    }
    if (svc->stopped) {
        reply_error(r, LODE_ESHUTDOWN, "lode-node is shutting down");
        return;
    }
    size_t len;
    const uint8_t *body = cmn_rpc_call_body(call, &len);
    ProtobufCMessage *req = protobuf_c_message_unpack(desc, NULL, len, body);
    if (!req) {
        reply_error(r, LODE_EBADMSG, "malformed %s request (not a %s)", methods[mi].name,
                    desc->name);
        return;
    }
    switch (method) {
    case CMN_RPC_CHUNK_PUT:
        do_put(r, (const Lode__ChunkPutRequest *)req);
        break;
    case CMN_RPC_CHUNK_GET:
        do_get(r, (const Lode__ChunkGetRequest *)req);
        break;
    case CMN_RPC_CHUNK_DELETE:
        do_delete(r, (const Lode__ChunkIdRequest *)req);
        break;
    case CMN_RPC_CHUNK_STAT:
        do_stat(r, (const Lode__ChunkIdRequest *)req);
        break;
    case CMN_RPC_CHUNK_LIST:
        do_list(r, (const Lode__ChunkListRequest *)req);
        break;
    case CMN_RPC_NODE_HEALTH:
        do_health(r);
        break;
    case CMN_RPC_FANOUT_PUSH:
        do_fanout(r, (const Lode__FanoutPushRequest *)req);
        break;
    default:
        reply_error(r, LODE_ENOMETHOD, "unknown method %u", method);
        break;
    }
    /* Every handler copied what it needs from the request before returning. */
    protobuf_c_message_free_unpacked(req, NULL);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

int node_service_create(const struct node_service_options *o, struct node_service **out,
                        struct cmn_err *err)
{
    struct node_service *svc = calloc(1, sizeof(*svc));
    if (!svc)
        return cmn_err_set(err, -ENOMEM, "chunk service: out of memory");
    svc->loop = o->loop;
    svc->st = o->store;
    svc->metrics = o->metrics;
    svc->max_chunk = o->max_chunk_size;
    svc->cluster = strdup(o->cluster ? o->cluster : "");
    svc->failure_domain = strdup(o->failure_domain ? o->failure_domain : "");
    svc->start_ms = cmn_mono_ms();
    if (!svc->cluster || !svc->failure_domain || node_push_rpc_create(&svc->xfer) != 0) {
        free(svc->cluster);
        free(svc->failure_domain);
        free(svc);
        return cmn_err_set(err, -ENOMEM, "chunk service: out of memory");
    }
    struct cmn_metrics *m = o->metrics;
    if (m) {
        for (size_t i = 0; i <= N_METHODS; i++) {
            const char *labels = i < N_METHODS ? methods[i].labels : "method=\"unknown\"";
            svc->mm[i].requests = cmn_metrics_counter(m, "lode_node_rpc_requests_total", labels,
                                                      "Chunk-service requests, by method.");
            svc->mm[i].errors = cmn_metrics_counter(m, "lode_node_rpc_errors_total", labels,
                                                    "Chunk-service replies with an error.");
            svc->mm[i].latency = cmn_metrics_histogram(
                m, "lode_node_rpc_latency_seconds", labels,
                "Chunk-service request latency, from arrival to the reply being sent.", NULL, 0);
        }
        svc->bytes_in = cmn_metrics_counter(m, "lode_node_bytes_in_total", NULL,
                                            "Chunk data bytes received by puts.");
        svc->bytes_out = cmn_metrics_counter(m, "lode_node_bytes_out_total", NULL,
                                             "Chunk data bytes sent by gets.");
        svc->g_in_flight = cmn_metrics_gauge(m, "lode_node_rpc_in_flight", NULL,
                                             "Chunk-service requests accepted, not yet answered.");
    }
    *out = svc;
    return 0;
}

void node_service_set_address(struct node_service *svc, const char *address)
{
    char *a = strdup(address ? address : "");
    if (!a)
        return;
    free(svc->address);
    svc->address = a;
}

void node_service_attach(struct node_service *svc, struct node_registrar *reg,
                         struct node_scrub *scrub)
{
    svc->reg = reg;
    svc->scrub = scrub;
}

unsigned node_service_in_flight(const struct node_service *svc)
{
    return svc->in_flight;
}

void node_service_stop(struct node_service *svc)
{
    if (svc->stopped)
        return;
    svc->stopped = 1;
    /* The registrar and scrubber close before the service is destroyed. */
    svc->reg = NULL;
    svc->scrub = NULL;
}

void node_service_destroy(struct node_service *svc)
{
    if (!svc)
        return;
    if (svc->in_flight)
        LOG_WARN(LOG_CTX, "%u request(s) still held at exit", svc->in_flight);
    node_push_destroy(svc->xfer);
    free(svc->cluster);
    free(svc->failure_domain);
    free(svc->address);
    free(svc);
}
