/* The chunk service (node/service.c, node/push.c) over real authenticated RPC on loopback,
 * above the in-memory store of fake_store.c: puts (received in place), whole and ranged
 * gets (sent from the read buffer), stat, paged list, delete, health, and every refusal the
 * service itself makes (bad ids, malformed bodies, payloads that disagree with `length`,
 * oversized chunks, bad ranges, unknown chunks, checksum mismatches, corrupt data, a full
 * store, unknown methods, shutdown), each with its code and a message that says why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <xxh_x86dispatch.h>
#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "node/service.h"
#include "tests/tap.h"
#include "tests/unit/node/fake_store.h"
#include "tests/unit/node/svc_fixture.h"

#define SECRET "service-test-secret-0123456789"
#define MAX_CHUNK (256u << 10)

static uv_loop_t loop;
static struct node_store *st;
static struct node_service *svc;
static struct cmn_rpc_server *srv;
static struct cmn_rpc_client *cli;
static struct cmn_metrics *metrics;

struct res {
    int fired;
    int status;
    char msg[512];
    uint8_t *body;
    size_t blen;
    uint8_t *payload;
    size_t plen;
};

static void on_res(void *data, const struct cmn_rpc_result *r)
{
    struct res *o = data;
    o->fired++;
    o->status = r->status;
    snprintf(o->msg, sizeof(o->msg), "%s", r->message);
    o->blen = r->body.len;
    o->body = malloc(o->blen ? o->blen : 1);
    if (o->blen)
        memcpy(o->body, r->body.data, o->blen);
    o->plen = r->payload.len;
    o->payload = malloc(o->plen ? o->plen : 1);
    if (o->plen)
        memcpy(o->payload, r->payload.data, o->plen);
}

static void res_free(struct res *o)
{
    free(o->body);
    free(o->payload);
    memset(o, 0, sizeof(*o));
}

static void wait_for(int *flag)
{
    uint64_t end = cmn_mono_ms() + 10000;
    while (!*flag && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    if (!*flag)
        tap_bail("no reply within 10 s");
}

static int call(unsigned method, const ProtobufCMessage *m, const void *payload, size_t plen,
                struct res *o)
{
    memset(o, 0, sizeof(*o));
    int rc = payload ? cmn_rpc_client_call_payload(cli, method, 0, m, payload, plen, 5000,
                                                   on_res, o)
                     : cmn_rpc_client_call(cli, method, 0, m, 5000, on_res, o);
    if (rc)
        tap_bail("call submit: %s", lode_strerror(rc));
    wait_for(&o->fired);
    return o->status;
}

static int put(const struct cmn_id *id, const void *data, size_t len, uint64_t hash,
               struct res *o)
{
    Lode__ChunkPutRequest q = LODE__CHUNK_PUT_REQUEST__INIT;
    q.chunk_id.data = (uint8_t *)id->b;
    q.chunk_id.len = CMN_ID_SIZE;
    q.length = len;
    q.xxh3 = hash;
    return call(CMN_RPC_CHUNK_PUT, &q.base, data, len, o);
}

static int get(const struct cmn_id *id, uint64_t off, uint64_t len, struct res *o)
{
    Lode__ChunkGetRequest q = LODE__CHUNK_GET_REQUEST__INIT;
    q.chunk_id.data = (uint8_t *)id->b;
    q.chunk_id.len = CMN_ID_SIZE;
    q.offset = off;
    q.length = len;
    return call(CMN_RPC_CHUNK_GET, &q.base, NULL, 0, o);
}

static int by_id(unsigned method, const struct cmn_id *id, struct res *o)
{
    Lode__ChunkIdRequest q = LODE__CHUNK_ID_REQUEST__INIT;
    q.chunk_id.data = (uint8_t *)id->b;
    q.chunk_id.len = CMN_ID_SIZE;
    return call(method, &q.base, NULL, 0, o);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + seed * 7 + (i >> 9));
}

static Lode__ChunkInfo *info_of(const struct res *o)
{
    return lode__chunk_info__unpack(NULL, o->blen, o->body);
}

static void setup(void)
{
    cmn_log_init("test_service", CMN_LOG_ERROR);
    struct svc_fixture fx;
    svc_fixture_start(&loop, SECRET, MAX_CHUNK, &fx);
    metrics = fx.metrics;
    st = fx.st;
    svc = fx.svc;
    srv = fx.srv;
    cli = fx.cli;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_put_get(void)
{
    struct res o;
    static uint8_t data[200000];
    fill(data, sizeof(data), 1);
    uint64_t h = XXH3_64bits_dispatch(data, sizeof(data));
    struct cmn_id id = cmn_id_random();
    is_int(put(&id, data, sizeof(data), h, &o), 0, "put of 200000 bytes (%s)", o.msg);
    Lode__ChunkInfo *ci = info_of(&o);
    ok(ci && ci->length == sizeof(data) && ci->xxh3 == h && ci->chunk_id.len == 16 &&
           memcmp(ci->chunk_id.data, id.b, 16) == 0 && ci->seq > 0,
       "the reply describes the stored chunk");
    if (ci)
        lode__chunk_info__free_unpacked(ci, NULL);
    res_free(&o);
    is_int(fake_store_bufs_out(st), 0, "the record buffer went to the store");

    is_int(get(&id, 0, 0, &o), 0, "whole get");
    ok(o.plen == sizeof(data) && memcmp(o.payload, data, sizeof(data)) == 0,
       "the payload is the chunk, byte for byte");
    ci = info_of(&o);
    ok(ci && ci->length == sizeof(data) && ci->xxh3 == h, "with the whole chunk's info");
    if (ci)
        lode__chunk_info__free_unpacked(ci, NULL);
    res_free(&o);

    is_int(get(&id, 65536 + 3, 1000, &o), 0, "ranged get");
    ok(o.plen == 1000 && memcmp(o.payload, data + 65539, 1000) == 0, "the range's bytes");
    ci = info_of(&o);
    ok(ci && ci->length == sizeof(data), "the info still gives the whole chunk's length");
    if (ci)
        lode__chunk_info__free_unpacked(ci, NULL);
    res_free(&o);
    is_int(get(&id, sizeof(data) - 1, 0, &o), 0, "the last byte, to the end");
    ok(o.plen == 1 && o.payload[0] == data[sizeof(data) - 1], "one byte");
    res_free(&o);

    is_int(get(&id, sizeof(data), 0, &o), -EINVAL, "offset at the end: -EINVAL");
    ok(strstr(o.msg, "outside chunk") != NULL, "message says why (%s)", o.msg);
    res_free(&o);
    is_int(get(&id, 100, sizeof(data), &o), -EINVAL, "range past the end: -EINVAL");
    res_free(&o);
    is_int(get(&id, UINT64_MAX - 5, 10, &o), -EINVAL, "an offset near 2^64: -EINVAL");
    res_free(&o);

    is_int(by_id(CMN_RPC_CHUNK_STAT, &id, &o), 0, "stat");
    ci = info_of(&o);
    ok(ci && ci->length == sizeof(data) && ci->xxh3 == h, "stat gives length and checksum");
    if (ci)
        lode__chunk_info__free_unpacked(ci, NULL);
    res_free(&o);

    /* A writer's retry after a lost reply: same id, same content. */
    is_int(put(&id, data, sizeof(data), h, &o), 0, "the same put again succeeds");
    res_free(&o);
    data[5] ^= 1;
    uint64_t h2 = XXH3_64bits_dispatch(data, sizeof(data));
    is_int(put(&id, data, sizeof(data), h2, &o), -EEXIST, "other content under the same id");
    ok(strstr(o.msg, "already exists") != NULL, "message says so (%s)", o.msg);
    res_free(&o);
    data[5] ^= 1;

    is_int(by_id(CMN_RPC_CHUNK_DELETE, &id, &o), 0, "delete");
    res_free(&o);
    is_int(get(&id, 0, 0, &o), LODE_ENOCHUNK, "get after delete: LODE_ENOCHUNK");
    ok(strstr(o.msg, "no chunk") != NULL, "message names it (%s)", o.msg);
    res_free(&o);
    is_int(by_id(CMN_RPC_CHUNK_STAT, &id, &o), LODE_ENOCHUNK, "stat after delete");
    res_free(&o);
    is_int(by_id(CMN_RPC_CHUNK_DELETE, &id, &o), LODE_ENOCHUNK, "delete twice");
    res_free(&o);
}

static void test_put_refused(void)
{
    struct res o;
    static uint8_t data[MAX_CHUNK + 1];
    fill(data, sizeof(data), 2);
    struct cmn_id id = cmn_id_random();

    is_int(put(&id, data, 4096, 12345, &o), LODE_ECORRUPT, "wrong xxh3: LODE_ECORRUPT");
    ok(strstr(o.msg, "does not match the xxh3") != NULL, "message says why (%s)", o.msg);
    res_free(&o);
    is_int(by_id(CMN_RPC_CHUNK_STAT, &id, &o), LODE_ENOCHUNK, "and nothing was stored");
    res_free(&o);

    uint64_t h = XXH3_64bits_dispatch(data, MAX_CHUNK + 1);
    is_int(put(&id, data, MAX_CHUNK + 1, h, &o), LODE_ETOOLARGE, "one byte over max: too large");
    ok(strstr(o.msg, "max-chunk-size") != NULL, "message names the limit (%s)", o.msg);
    res_free(&o);
    h = XXH3_64bits_dispatch(data, MAX_CHUNK);
    is_int(put(&id, data, MAX_CHUNK, h, &o), 0, "exactly max-chunk-size is fine");
    res_free(&o);

    /* `length` disagreeing with the payload, a missing payload, length 0. */
    struct cmn_id id2 = cmn_id_random();
    Lode__ChunkPutRequest q = LODE__CHUNK_PUT_REQUEST__INIT;
    q.chunk_id.data = id2.b;
    q.chunk_id.len = 16;
    q.length = 100;
    q.xxh3 = XXH3_64bits_dispatch(data, 100);
    is_int(call(CMN_RPC_CHUNK_PUT, &q.base, data, 50, &o), LODE_EBADMSG,
           "length 100 with 50 payload bytes: LODE_EBADMSG");
    ok(strstr(o.msg, "length says 100 bytes but the payload carries 50") != NULL,
       "message gives both (%s)", o.msg);
    res_free(&o);
    is_int(call(CMN_RPC_CHUNK_PUT, &q.base, NULL, 0, &o), LODE_EBADMSG,
           "no payload: LODE_EBADMSG");
    ok(strstr(o.msg, "without a payload") != NULL, "message says so (%s)", o.msg);
    res_free(&o);
    q.length = 0;
    is_int(call(CMN_RPC_CHUNK_PUT, &q.base, NULL, 0, &o), -EINVAL, "length 0: -EINVAL");
    ok(strstr(o.msg, "empty") != NULL, "message says so (%s)", o.msg);
    res_free(&o);
    is_int(by_id(CMN_RPC_CHUNK_STAT, &id2, &o), LODE_ENOCHUNK, "nothing stored by them");
    res_free(&o);

    /* A bad id, in each request that carries one. */
    q.length = 10;
    q.chunk_id.len = 15;
    q.xxh3 = XXH3_64bits_dispatch(data, 10);
    is_int(call(CMN_RPC_CHUNK_PUT, &q.base, data, 10, &o), LODE_EBADMSG,
           "a 15-byte id on put: LODE_EBADMSG");
    ok(strstr(o.msg, "chunk_id must be 16 bytes, not 15") != NULL, "message (%s)", o.msg);
    res_free(&o);
    Lode__ChunkGetRequest g = LODE__CHUNK_GET_REQUEST__INIT;
    uint8_t id17[17] = {0};
    g.chunk_id.data = id17;
    g.chunk_id.len = 17;
    is_int(call(CMN_RPC_CHUNK_GET, &g.base, NULL, 0, &o), LODE_EBADMSG, "17-byte id on get");
    res_free(&o);
    Lode__ChunkIdRequest d = LODE__CHUNK_ID_REQUEST__INIT;
    is_int(call(CMN_RPC_CHUNK_DELETE, &d.base, NULL, 0, &o), LODE_EBADMSG, "empty id on delete");
    ok(strstr(o.msg, "not 0") != NULL, "message (%s)", o.msg);
    res_free(&o);
    is_int(call(CMN_RPC_CHUNK_STAT, &d.base, NULL, 0, &o), LODE_EBADMSG, "empty id on stat");
    res_free(&o);

    /* A body that is not the request type (field 1 a varint where bytes are expected). */
    Lode__HeartbeatRequest hb = LODE__HEARTBEAT_REQUEST__INIT;
    hb.nid = 7;
    is_int(call(CMN_RPC_CHUNK_STAT, &hb.base, NULL, 0, &o), LODE_EBADMSG,
           "malformed body: LODE_EBADMSG");
    ok(strstr(o.msg, "malformed CHUNK_STAT request") != NULL, "message (%s)", o.msg);
    res_free(&o);
    is_int(call(CMN_RPC_CHUNK_PUT, &hb.base, data, 10, &o), LODE_EBADMSG,
           "malformed put body with a payload: LODE_EBADMSG");
    res_free(&o);

    is_int(call(CMN_RPC_BUCKET_HEAD, &d.base, NULL, 0, &o), LODE_ENOMETHOD,
           "a meta method: LODE_ENOMETHOD");
    ok(strstr(o.msg, "BUCKET_HEAD is not served by lode-node") != NULL, "message (%s)", o.msg);
    res_free(&o);
    is_int(call(999, &d.base, NULL, 0, &o), LODE_ENOMETHOD, "an unknown method");
    res_free(&o);
    is_int(fake_store_bufs_out(st), 0, "no record buffer left behind by refusals");
    is_int(by_id(CMN_RPC_CHUNK_DELETE, &id, &o), 0, "cleanup");
    res_free(&o);
}

static void test_corrupt_and_full(void)
{
    struct res o;
    uint8_t data[5000];
    fill(data, sizeof(data), 3);
    struct cmn_id id = cmn_id_random();
    is_int(put(&id, data, sizeof(data), XXH3_64bits_dispatch(data, sizeof(data)), &o), 0,
           "put");
    res_free(&o);
    fake_store_corrupt(st, &id);
    is_int(get(&id, 0, 0, &o), LODE_ECORRUPT, "a corrupt chunk: LODE_ECORRUPT");
    ok(o.plen == 0, "and no data");
    ok(strstr(o.msg, "failed verification") != NULL, "message (%s)", o.msg);
    res_free(&o);
    is_int(get(&id, 10, 10, &o), LODE_ECORRUPT, "a range of it too");
    res_free(&o);

    fake_store_set_capacity(st, 8000);
    struct cmn_id id2 = cmn_id_random();
    is_int(put(&id2, data, sizeof(data), XXH3_64bits_dispatch(data, sizeof(data)), &o),
           LODE_ENOSPACE, "a full store: LODE_ENOSPACE");
    ok(strstr(o.msg, "insufficient storage") != NULL, "message (%s)", o.msg);
    res_free(&o);
    is_int(get(&id2, 0, 0, &o), LODE_ENOCHUNK, "nothing was stored");
    res_free(&o);
    fake_store_set_capacity(st, 1ull << 40);
    is_int(by_id(CMN_RPC_CHUNK_DELETE, &id, &o), 0, "a corrupt chunk can be deleted");
    res_free(&o);
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_list_health(void)
{
    enum { N = 25 };
    struct cmn_id ids[N];
    struct res o;
    uint8_t data[100];
    for (int i = 0; i < N; i++) {
        fill(data, sizeof(data), (unsigned)i);
        ids[i] = cmn_id_random();
        put(&ids[i], data, sizeof(data), XXH3_64bits_dispatch(data, sizeof(data)), &o);
        res_free(&o);
    }
    qsort(ids, N, sizeof(ids[0]), cmp_id);

    Lode__ChunkListRequest q = LODE__CHUNK_LIST_REQUEST__INIT;
    q.max = 10;
    int pages = 0, seen = 0, in_order = 1, truncated_ok = 1;
    uint8_t after[16];
    for (;;) {
        if (call(CMN_RPC_CHUNK_LIST, &q.base, NULL, 0, &o) != 0)
            break;
        Lode__ChunkListResponse *r = lode__chunk_list_response__unpack(NULL, o.blen, o.body);
        res_free(&o);
        if (!r)
            break;
        pages++;
        for (size_t i = 0; i < r->n_chunks; i++, seen++)
            if (seen >= N || memcmp(r->chunks[i]->chunk_id.data, ids[seen].b, 16) != 0)
                in_order = 0;
        int more = r->truncated;
        if (more != (seen < N))
            truncated_ok = 0;
        if (r->n_chunks)
            memcpy(after, r->chunks[r->n_chunks - 1]->chunk_id.data, 16);
        lode__chunk_list_response__free_unpacked(r, NULL);
        if (!more)
            break;
        q.after.data = after;
        q.after.len = 16;
    }
    is_int(pages, 3, "25 chunks in pages of 10: 3 pages");
    is_int(seen, N, "every chunk listed once");
    ok(in_order, "in id byte order");
    ok(truncated_ok, "truncated set on every page but the last");

    q.after.len = 5;
    is_int(call(CMN_RPC_CHUNK_LIST, &q.base, NULL, 0, &o), LODE_EBADMSG, "a 5-byte after");
    res_free(&o);
    q.after.len = 0;
    q.max = 1000000;
    is_int(call(CMN_RPC_CHUNK_LIST, &q.base, NULL, 0, &o), 0, "a huge max is capped, not refused");
    Lode__ChunkListResponse *r = lode__chunk_list_response__unpack(NULL, o.blen, o.body);
    ok(r && r->n_chunks == N && !r->truncated, "all 25 in one page");
    if (r)
        lode__chunk_list_response__free_unpacked(r, NULL);
    res_free(&o);

    Lode__Empty e = LODE__EMPTY__INIT;
    is_int(call(CMN_RPC_NODE_HEALTH, &e.base, NULL, 0, &o), 0, "health");
    Lode__NodeHealthResponse *h = lode__node_health_response__unpack(NULL, o.blen, o.body);
    struct cmn_id uuid = node_store_uuid(st);
    ok(h && h->uuid.len == 16 && memcmp(h->uuid.data, uuid.b, 16) == 0, "uuid of the store");
    ok(h && strcmp(h->cluster, "unit") == 0 && strcmp(h->failure_domain, "rack9") == 0 &&
           strncmp(h->address, "127.0.0.1:", 10) == 0,
       "cluster, failure domain and address");
    ok(h && h->chunks == N && h->used_bytes == N * 100 && h->n_disks == 1 &&
           strcmp(h->disks[0]->io_backend, "threads") == 0,
       "chunks, used bytes and the disk");
    ok(h && strcmp(h->version, PACKAGE_VERSION) == 0 && h->uptime_ms >= 0 && h->nid == 0 &&
           strcmp(h->meta_state, "none") == 0,
       "version, uptime, no registrar attached");
    if (h)
        lode__node_health_response__free_unpacked(h, NULL);
    res_free(&o);

    for (int i = 0; i < N; i++) {
        by_id(CMN_RPC_CHUNK_DELETE, &ids[i], &o);
        res_free(&o);
    }
}

static void test_metrics(void)
{
    struct cmn_buf b;
    cmn_buf_init(&b);
    cmn_metrics_render(metrics, &b);
    cmn_buf_terminate(&b);
    const char *t = (const char *)b.data;
    ok(strstr(t, "lode_node_rpc_requests_total{method=\"CHUNK_PUT\"}") != NULL &&
           strstr(t, "lode_node_rpc_errors_total{method=\"CHUNK_GET\"}") != NULL &&
           strstr(t, "lode_node_rpc_latency_seconds_bucket{method=\"CHUNK_LIST\"") != NULL,
       "per-method requests, errors and latency");
    ok(strstr(t, "lode_node_bytes_in_total") && strstr(t, "lode_node_bytes_out_total") &&
           strstr(t, "lode_node_rpc_in_flight 0"),
       "bytes in and out, nothing in flight");
    cmn_buf_free(&b);
}

static void on_flag(void *data)
{
    (*(int *)data)++;
}

static void test_shutdown(void)
{
    struct res o, held;
    uint8_t data[1000];
    fill(data, sizeof(data), 9);
    struct cmn_id id = cmn_id_random();
    fake_store_set_delay(st, 200);
    /* A put still in the store when the service stops is answered by the store's callback. */
    Lode__ChunkPutRequest q = LODE__CHUNK_PUT_REQUEST__INIT;
    q.chunk_id.data = id.b;
    q.chunk_id.len = 16;
    q.length = sizeof(data);
    q.xxh3 = XXH3_64bits_dispatch(data, sizeof(data));
    memset(&held, 0, sizeof(held));
    cmn_rpc_client_call_payload(cli, CMN_RPC_CHUNK_PUT, 0, &q.base, data, sizeof(data), 5000,
                                on_res, &held);
    uint64_t end = cmn_mono_ms() + 5000;
    while (node_service_in_flight(svc) == 0 && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    is_int(node_service_in_flight(svc), 1, "a put is in the store");
    node_service_stop(svc);
    is_int(by_id(CMN_RPC_CHUNK_STAT, &id, &o), LODE_ESHUTDOWN, "after stop: LODE_ESHUTDOWN");
    res_free(&o);
    wait_for(&held.fired);
    is_int(held.status, 0, "the put held across the stop completes");
    res_free(&held);

    int closed = 0;
    cmn_rpc_client_close(cli, NULL, NULL);
    cmn_rpc_server_close(srv, NULL, NULL);
    node_store_close(st, on_flag, &closed);
    wait_for(&closed);
    is_int(node_service_in_flight(svc), 0, "nothing held at the end");
    node_service_destroy(svc);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "every handle closed");
    cmn_metrics_destroy(metrics);
}

int main(void)
{
    setup();
    test_put_get();
    test_put_refused();
    test_corrupt_and_full();
    test_list_health();
    test_metrics();
    test_shutdown();
    return tap_done();
}
