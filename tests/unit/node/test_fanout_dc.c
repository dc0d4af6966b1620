/* A dc FANOUT_PUSH end to end on the node, without a NIC: real authenticated RPC on loopback
 * into the node's service and fan-out (node/fanout.c), chunks in the in-memory store of
 * fake_store.c, and a fake dc instance behind struct node_fanout_dc_ops that records every
 * write and completes, refuses or holds it as the test says. What it pins down is the node's
 * own dc logic: window offsets and bytes of each write, the answer (bytes, a status per
 * piece) only once every write has completed, pieces parked on -EAGAIN and posted again
 * when a write completes, the lease fence (no answer until the fence is done; later pieces
 * not read), a refused window ending the request, and a detached instance.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <lode/errno.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "node.pb-c.h"
#include "node/fanout.h"
#include "node/service.h"
#include "tests/tap.h"
#include "tests/unit/node/fake_store.h"
#include "tests/unit/node/svc_fixture.h"

#define SECRET "fanout-dc-test-secret-0123456789"
#define MAX_CHUNK (256u << 10)
#define NCHUNKS 6
#define CHUNK (100000u)
#define WIN (1u << 20)

static uv_loop_t loop;
static struct node_store *st;
static struct node_service *svc;
static struct node_fanout *fo;
static struct cmn_rpc_server *srv;
static struct cmn_rpc_client *cli;
static struct cmn_metrics *metrics;
static struct cmn_id ids[NCHUNKS];
static uint8_t chunks[NCHUNKS][CHUNK];

/* ---- the fake dc instance ------------------------------------------------------------- */

#define MAX_W 64
struct fwrite {
    uint64_t off;
    size_t len;
    cmn_dp_dc_cb cb;
    void *data;
    bool done;
};
static struct {
    struct fwrite w[MAX_W];
    size_t n;
    uint8_t window[WIN];         /* the client's memory: completed writes land here */
    bool hold;                   /* leave writes in flight until the test completes them */
    int eagain;                  /* this many writes are refused with -EAGAIN */
    int refuse;                  /* returned at once by every write while set */
    int fences;
    cmn_dp_dc_cb fence_cb;
    void *fence_data;
    struct cmn_dp_dc_stats stats;
    uint64_t bytes_src_mismatch; /* sources that were not the chunk's bytes at post time */
} fdc;

/* Bytes a write must carry: the test knows which chunk range each window offset maps to. */
static const uint8_t *expect_at(uint64_t off);

static int fdc_write(void *dc, const struct cmn_rdma_token *t, uint64_t off, const void *src,
                     size_t len, cmn_dp_dc_cb cb, void *data)
{
    (void)dc;
    if (t->kind != CMN_RDMA_DC || t->u.dc.rkey != 0x01020304 || t->u.dc.dctn != 0x010203)
        return -EINVAL;
    if (fdc.refuse)
        return fdc.refuse;
    if (fdc.eagain > 0) {
        fdc.eagain--;
        return -EAGAIN;
    }
    if (fdc.n == MAX_W)
        tap_bail("too many dc writes");
    const uint8_t *want = expect_at(off);
    if (!want || memcmp(src, want, len) != 0)
        fdc.bytes_src_mismatch++;
    memcpy(fdc.window + off, src, len); /* copied now: the node may free src after cb */
    fdc.w[fdc.n++] = (struct fwrite){.off = off, .len = len, .cb = cb, .data = data};
    fdc.stats.wrs_posted++;
    return 0;
}

static int fdc_fence(void *dc, const struct cmn_rdma_token *t, cmn_dp_dc_cb cb, void *data)
{
    (void)dc;
    (void)t;
    fdc.fences++;
    fdc.fence_cb = cb;
    fdc.fence_data = data;
    return 0;
}

static void fdc_stats(void *dc, struct cmn_dp_dc_stats *out)
{
    (void)dc;
    *out = fdc.stats;
}

static const struct node_fanout_dc_ops fdc_ops = {
    .write = fdc_write, .fence = fdc_fence, .get_stats = fdc_stats};

/* Completes writes [from, n) not yet done with `status` (from the loop's point of view: later
 * than the call that posted them). */
static void fdc_complete(size_t from, int status)
{
    for (size_t i = from; i < fdc.n; i++) {
        if (fdc.w[i].done)
            continue;
        fdc.w[i].done = true;
        if (status == 0) {
            fdc.stats.writes++;
            fdc.stats.bytes_written += fdc.w[i].len;
        }
        fdc.w[i].cb(fdc.w[i].data, status);
    }
}

/* Completes writes as they come unless holding: a timer, so completions are never nested in
 * the write call. */
static uv_timer_t auto_timer;
static void on_auto(uv_timer_t *t)
{
    (void)t;
    if (!fdc.hold)
        fdc_complete(0, 0);
}

static void fdc_reset(void)
{
    memset(fdc.w, 0, sizeof(fdc.w));
    fdc.n = 0;
    memset(fdc.window, 0, sizeof(fdc.window));
    fdc.hold = false;
    fdc.eagain = 0;
    fdc.refuse = 0;
    fdc.fences = 0;
    fdc.fence_cb = NULL;
    fdc.bytes_src_mismatch = 0;
}

/* ---- the request ------------------------------------------------------------------------ */

/* Piece i: chunk i's bytes [1000 * i, 1000 * i + 50000) at window offset 120000 * i + 7. */
static uint64_t piece_off(size_t i) { return 120000u * i + 7; }
static uint32_t piece_chunk_off(size_t i) { return 1000u * (uint32_t)i; }
#define PIECE_LEN 50000u

static const uint8_t *expect_at(uint64_t off)
{
    for (size_t i = 0; i < NCHUNKS; i++)
        if (off >= piece_off(i) && off < piece_off(i) + PIECE_LEN)
            return chunks[i] + piece_chunk_off(i) + (off - piece_off(i));
    return NULL;
}

struct res {
    int fired, status;
    char msg[512];
    uint64_t bytes;
    int32_t piece[NCHUNKS];
    size_t npieces;
};

static void on_res(void *data, const struct cmn_rpc_result *r)
{
    struct res *o = data;
    o->fired++;
    o->status = r->status;
    snprintf(o->msg, sizeof(o->msg), "%s", r->message);
    if (r->status != 0)
        return;
    Lode__FanoutPushResponse *resp =
        lode__fanout_push_response__unpack(NULL, r->body.len, r->body.data);
    if (!resp)
        return;
    o->bytes = resp->bytes;
    o->npieces = resp->n_pieces;
    for (size_t i = 0; i < resp->n_pieces && i < NCHUNKS; i++)
        o->piece[i] = resp->pieces[i]->status;
    lode__fanout_push_response__free_unpacked(resp, NULL);
}

static void run_until(int *flag, uint64_t ms)
{
    uint64_t end = cmn_mono_ms() + ms;
    while (!*flag && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
}

static void run_for(uint64_t ms)
{
    int never = 0;
    run_until(&never, ms);
}

static uint64_t next_request = 1;

/* Sends a dc FANOUT_PUSH of pieces [0, n) with `lease_ms`; does not wait. */
static void push(size_t n, uint32_t lease_ms, struct res *o)
{
    Lode__DcTarget d;
    lode__dc_target__init(&d);
    uint8_t gid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 1};
    d.rkey = 0x01020304;
    d.dctn = 0x010203;
    d.g = 1;
    d.gid.data = gid;
    d.gid.len = 16;
    d.desc_base = 0x7f0000000000ull;
    d.desc_size = WIN;
    Lode__FanoutPiece pc[NCHUNKS], *pp[NCHUNKS];
    for (size_t i = 0; i < n; i++) {
        lode__fanout_piece__init(&pc[i]);
        pc[i].chunk_id.data = ids[i].b;
        pc[i].chunk_id.len = CMN_ID_SIZE;
        pc[i].chunk_offset = piece_chunk_off(i);
        pc[i].length = PIECE_LEN;
        pc[i].buf_offset = piece_off(i);
        pp[i] = &pc[i];
    }
    uint8_t sid[16];
    memcpy(sid, gid, 16); /* dc: the sid names the client */
    Lode__FanoutPushRequest q;
    lode__fanout_push_request__init(&q);
    q.transport = NODE_FANOUT_DC;
    q.sid.data = sid;
    q.sid.len = 16;
    q.access_key = "AKIDDCTEST";
    q.window_base = d.desc_base;
    q.window_size = WIN;
    q.request_id = next_request++;
    q.lease_ms = lease_ms;
    q.n_pieces = n;
    q.pieces = pp;
    q.dc = &d;
    memset(o, 0, sizeof(*o));
    if (cmn_rpc_client_call(cli, CMN_RPC_FANOUT_PUSH, 0, &q.base, 10000, on_res, o) != 0)
        tap_bail("cannot send FANOUT_PUSH");
}

/* ---- setup --------------------------------------------------------------------------- */

static void setup(void)
{
    cmn_log_init("test_fanout_dc", CMN_LOG_ERROR);
    struct svc_fixture fx;
    svc_fixture_start(&loop, SECRET, MAX_CHUNK, &fx);
    metrics = fx.metrics;
    st = fx.st;
    svc = fx.svc;
    srv = fx.srv;
    cli = fx.cli;
    for (size_t i = 0; i < NCHUNKS; i++) {
        ids[i] = cmn_id_random();
        for (size_t k = 0; k < CHUNK; k++)
            chunks[i][k] = (uint8_t)(k * 31 + i * 7 + 1);
        fake_store_add(st, &ids[i], chunks[i], CHUNK);
    }
    struct node_fanout_options fopt = {.loop = &loop, .store = st, .dc = &fdc,
                                       .dc_ops = &fdc_ops, .metrics = metrics, .depth = 4,
                                       .max_piece = MAX_CHUNK};
    if (node_fanout_create(&fopt, &fo))
        tap_bail("fanout");
    node_service_attach_fanout(svc, fo);
    uv_timer_init(&loop, &auto_timer);
    uv_timer_start(&auto_timer, on_auto, 1, 1);
}

static bool window_holds(size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(fdc.window + piece_off(i), chunks[i] + piece_chunk_off(i), PIECE_LEN) != 0)
            return false;
    return true;
}

/* ---- cases ------------------------------------------------------------------------------ */

static void test_push(void)
{
    fdc_reset();
    struct res o;
    push(NCHUNKS, 5000, &o);
    run_until(&o.fired, 10000);
    is_int(o.status, 0, "a 6-piece dc push is answered (%s)", o.msg);
    ok(o.bytes == NCHUNKS * PIECE_LEN && o.npieces == NCHUNKS, "%llu bytes, %zu statuses",
       (unsigned long long)o.bytes, o.npieces);
    int bad = 0;
    for (size_t i = 0; i < o.npieces; i++)
        bad += o.piece[i] != 0;
    is_int(bad, 0, "every piece succeeded");
    ok(fdc.n >= NCHUNKS, "the instance got %zu writes", fdc.n);
    is_int(fdc.bytes_src_mismatch, 0, "each write carried the chunk's bytes for its offset");
    ok(window_holds(NCHUNKS), "the window holds every piece at its offset");
    struct cmn_buf b;
    cmn_buf_init(&b);
    cmn_metrics_render(metrics, &b);
    cmn_buf_append(&b, "", 1);
    ok(strstr((char *)b.data, "lode_node_fanout_bytes_total{transport=\"dc\"} 300000") != NULL,
       "lode_node_fanout_bytes_total{transport=\"dc\"} counts the bytes");
    cmn_buf_free(&b);
}

static void test_eagain(void)
{
    /* the first write goes in; the instance then says its queue is full three times */
    fdc_reset();
    fdc.hold = true;
    fdc.eagain = 3;
    struct res o;
    push(4, 5000, &o);
    uint64_t end = cmn_mono_ms() + 2000;
    while (fdc.n < 1 && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    run_for(100);
    is_int(fdc.n, 1, "with the queue full, one write is in and the others are parked");
    ok(!o.fired, "no answer while writes are parked");
    fdc_complete(0, 0); /* a completion: the parked pieces go in, in order */
    run_for(100);
    is_int(fdc.n, 4, "the completion posted the 3 parked pieces");
    ok(fdc.n == 4 && fdc.w[1].off < fdc.w[2].off && fdc.w[2].off < fdc.w[3].off,
       "in piece order");
    fdc_complete(0, 0);
    run_until(&o.fired, 5000);
    ok(o.status == 0 && o.bytes == 4 * PIECE_LEN, "answered with every byte (%s)", o.msg);
    ok(window_holds(4), "the window holds the 4 pieces");
}

static void test_lease_fence(void)
{
    fdc_reset();
    fdc.hold = true;
    uint64_t reads0 = fake_store_reads(st);
    struct res o;
    push(NCHUNKS, 300, &o);
    uint64_t end = cmn_mono_ms() + 2000;
    while (fdc.n < 4 && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    is_int(fdc.n, 4, "4 writes in the hardware, held");
    run_for(500); /* the 300 ms lease runs out */
    is_int(fdc.fences, 1, "the lease ran out with writes in flight: the target is fenced");
    ok(!o.fired, "no answer before the fence completes");
    /* the writes in flight complete (acknowledged), then the fence reports */
    fdc_complete(0, 0);
    run_for(100);
    ok(!o.fired, "still none: the fence has not reported");
    fdc.fence_cb(fdc.fence_data, 0);
    run_until(&o.fired, 5000);
    is_int(o.status, 0, "answered once the fence is done (%s)", o.msg);
    ok(o.npieces == NCHUNKS && o.piece[0] == 0 && o.piece[3] == 0 && o.bytes == 4 * PIECE_LEN,
       "the 4 acknowledged pieces count");
    /* (a dc LODE_ETIMEOUT gives the request up, as a target that stopped answering does) */
    ok(o.piece[4] == LODE_ETIMEOUT && o.piece[5] == LODE_ECLOSED,
       "the first piece not started by the deadline reports LODE_ETIMEOUT, the next "
       "LODE_ECLOSED (%d %d)", o.piece[4], o.piece[5]);
    is_int(fake_store_reads(st) - reads0, 4, "and the late pieces were never read");

    /* the same with the fence flushing what was in flight */
    fdc_reset();
    fdc.hold = true;
    push(2, 300, &o);
    end = cmn_mono_ms() + 2000;
    while (fdc.n < 2 && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    run_for(500);
    is_int(fdc.fences, 1, "fenced again");
    fdc_complete(0, LODE_ECLOSED);
    fdc.fence_cb(fdc.fence_data, 0);
    run_until(&o.fired, 5000);
    ok(o.status == 0 && o.piece[0] == LODE_ECLOSED && o.piece[1] == LODE_ECLOSED && o.bytes == 0,
       "flushed pieces report LODE_ECLOSED, no byte counted");
}

static void test_refusals(void)
{
    /* the client's NIC refuses the window: the rest of the request is not attempted */
    fdc_reset();
    fdc.hold = true;
    uint64_t reads0 = fake_store_reads(st);
    struct res o;
    push(NCHUNKS, 5000, &o);
    uint64_t end = cmn_mono_ms() + 2000;
    while (fdc.n < 4 && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    fdc_complete(0, LODE_EWINDOW);
    run_until(&o.fired, 5000);
    is_int(o.status, 0, "a push whose window the NIC refused is answered (%s)", o.msg);
    ok(o.piece[0] == LODE_EWINDOW && o.piece[4] == LODE_ECLOSED && o.piece[5] == LODE_ECLOSED,
       "the refused pieces report LODE_EWINDOW, the rest LODE_ECLOSED");
    is_int(fake_store_reads(st) - reads0, 4, "the rest were not even read");

    /* a write refused at once */
    fdc_reset();
    fdc.refuse = LODE_EUNAVAILABLE;
    push(2, 5000, &o);
    run_until(&o.fired, 5000);
    ok(o.status == 0 && o.piece[0] == LODE_EUNAVAILABLE &&
           (o.piece[1] == LODE_EUNAVAILABLE || o.piece[1] == LODE_ECLOSED) && o.bytes == 0,
       "every DCI broken: LODE_EUNAVAILABLE, the request given up, nothing written");

    /* detached (the instance is closing): transport 3 is refused before anything */
    fdc_reset();
    node_fanout_detach_dc(fo);
    reads0 = fake_store_reads(st);
    push(2, 5000, &o);
    run_until(&o.fired, 5000);
    is_int(o.status, -EPROTONOSUPPORT, "after detach, a dc push is refused: %s", o.msg);
    ok(fdc.n == 0 && fake_store_reads(st) == reads0, "nothing read, nothing written");
}

static void on_flag(void *data)
{
    *(int *)data = 1;
}

int main(void)
{
    setup();
    test_push();
    test_eagain();
    test_lease_fence();
    test_refusals();
    int closed = 0;
    uv_close((uv_handle_t *)&auto_timer, NULL);
    cmn_rpc_client_close(cli, NULL, NULL);
    cmn_rpc_server_close(srv, NULL, NULL);
    node_service_stop(svc);
    node_store_close(st, on_flag, &closed);
    run_until(&closed, 5000);
    is_int(node_fanout_in_flight(fo), 0, "no request left running");
    node_service_destroy(svc);
    node_fanout_destroy(fo);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "every handle closed");
    cmn_metrics_destroy(metrics);
    return tap_done();
}
