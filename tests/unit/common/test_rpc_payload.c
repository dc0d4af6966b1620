/* Zero-copy payloads through the RPC layer, over loopback TCP.
 *
 * A server thread runs a server whose payload_alloc hands out posix_memalign'ed buffers
 * (each with a cookie of its own) and whose handler, depending on the method, takes the
 * payload and sends it back with cmn_rpc_reply_payload, leaves it to the server, holds the
 * call, or answers with a large payload of its own; for one method payload_alloc declines.
 * The main thread drives it with the blocking client (cmn_rpc_sync_call_payload), the
 * asynchronous client (cmn_rpc_client_call_payload, and cmn_rpc_client_call_into for
 * replies read straight into the caller's memory) and raw frames for the hostile cases.
 * Every buffer payload_alloc or the handler hands out is counted, and the test checks each
 * one comes back exactly once (payload_free or the reply's release); ASan checks that none
 * comes back twice or is touched afterwards.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/hmac.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/rpc_internal.h"
#include "common/rpc_sync.h"
#include "tests/tap.h"

#define SECRET "payload-test-secret-0123456789"
#define SECRET_LEN (sizeof(SECRET) - 1)
#define MAX_FRAME (9u << 20)          /* 8 MiB payloads fit, 10 MiB ones do not */
#define BIG (8u << 20)

#define M_ECHO CMN_RPC_CHUNK_PUT      /* takes the payload, sends it back zero-copy */
#define M_NOTAKE CMN_RPC_CHUNK_STAT   /* reads the payload, leaves it to the server */
#define M_DECLINE CMN_RPC_CHUNK_LIST  /* payload_alloc declines: the server buffers */
#define M_HOLD CMN_RPC_CHUNK_GET      /* held (payload not taken) until the test says */
#define M_BIGREPLY CMN_RPC_CHUNK_DELETE /* answers with an 8 MiB payload of its own */

#define PB_MAGIC 0x70617962u

struct pbuf {                         /* a cookie: one buffer handed out */
    uint32_t magic;
    uint8_t *mem;
    size_t len;
};

struct srv {
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t stop, kick;
    sem_t ready;
    struct cmn_rpc_server *srv;
    int port;
    struct cmn_rpc_call *held_calls[64]; /* server thread only */
    int n_held_local;
    atomic_int allocs, declined, frees, releases, handed_out;
    atomic_int handled, mismatches, held, held_replies_closed, held_replies;
    atomic_int big_rc;
};

static struct srv S;

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + seed + (i >> 12));
}

static int check(const uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(i * 31 + seed + (i >> 12)))
            return 0;
    return 1;
}

static struct pbuf *pbuf_new(size_t len)
{
    struct pbuf *pb = malloc(sizeof(*pb));
    void *mem = NULL;
    if (!pb || posix_memalign(&mem, 4096, len ? len : 1) != 0) {
        free(pb);
        return NULL;
    }
    pb->magic = PB_MAGIC;
    pb->mem = mem;
    pb->len = len;
    atomic_fetch_add(&S.handed_out, 1);
    return pb;
}

static void pbuf_free(struct pbuf *pb)
{
    if (pb->magic != PB_MAGIC)
        atomic_fetch_add(&S.mismatches, 1);
    pb->magic = 0;
    free(pb->mem);
    free(pb);
}

/* ---- the server (its own thread) ------------------------------------------------------- */

static void *payload_alloc(void *data, unsigned method, const uint8_t *body, size_t body_len,
                           uint32_t payload_len, void **cookie)
{
    (void)data;
    (void)body;
    (void)body_len;
    atomic_fetch_add(&S.allocs, 1);
    if (method == M_DECLINE) {
        atomic_fetch_add(&S.declined, 1);
        return NULL;
    }
    struct pbuf *pb = pbuf_new(payload_len);
    if (!pb)
        return NULL;
    *cookie = pb;
    return pb->mem;
}

static void payload_free(void *data, void *cookie)
{
    (void)data;
    atomic_fetch_add(&S.frees, 1);
    pbuf_free(cookie);
}

static void release(void *arg)
{
    atomic_fetch_add(&S.releases, 1);
    pbuf_free(arg);
}

static void handler(void *data, struct cmn_rpc_call *call)
{
    (void)data;
    atomic_fetch_add(&S.handled, 1);
    size_t len, body_len;
    const uint8_t *p = cmn_rpc_call_payload(call, &len);
    const uint8_t *body = cmn_rpc_call_body(call, &body_len);
    switch (cmn_rpc_call_method(call)) {
    case M_ECHO: {
        struct pbuf *pb = cmn_rpc_call_take_payload(call);
        /* The handler must see exactly the memory payload_alloc returned. */
        if (!pb || pb->magic != PB_MAGIC || pb->mem != p || pb->len != len ||
            cmn_rpc_call_take_payload(call) != NULL) {
            atomic_fetch_add(&S.mismatches, 1);
            cmn_rpc_reply_error(call, LODE_EINTERNAL, NULL, 0, "payload not where alloc put it");
            return;
        }
        Lode__PingResponse resp = LODE__PING_RESPONSE__INIT;
        resp.payload.data = (uint8_t *)body; /* the body comes back too */
        resp.payload.len = body_len;
        resp.service = (char *)"echo";
        cmn_rpc_reply_payload(call, &resp.base, pb->mem, pb->len, release, pb);
        return;
    }
    case M_NOTAKE: {
        unsigned sum = 0;
        for (size_t i = 0; i < len; i++)
            sum += p[i];
        Lode__PingResponse resp = LODE__PING_RESPONSE__INIT;
        char s[32];
        snprintf(s, sizeof(s), "%u", sum);
        resp.service = s;
        cmn_rpc_reply(call, &resp.base);
        return;
    }
    case M_DECLINE:
        if (cmn_rpc_call_take_payload(call) != NULL)
            atomic_fetch_add(&S.mismatches, 1);
        cmn_rpc_reply_raw(call, NULL, 0, p, len);
        return;
    case M_HOLD:
        if (S.n_held_local < 64) {
            S.held_calls[S.n_held_local++] = call;
            atomic_fetch_add(&S.held, 1);
            return;
        }
        cmn_rpc_reply_error(call, LODE_EINTERNAL, NULL, 0, "too many held");
        return;
    case M_BIGREPLY: {
        struct pbuf *pb = pbuf_new(BIG);
        fill(pb->mem, BIG, 77);
        atomic_store(&S.big_rc, cmn_rpc_reply_payload(call, NULL, pb->mem, BIG, release, pb));
        return;
    }
    default:
        cmn_rpc_reply_error(call, LODE_EINTERNAL, NULL, 0, "unexpected method");
    }
}

/* Answers every held call with a payload of its own (the clients are gone by then). */
static void on_kick(uv_async_t *a)
{
    (void)a;
    for (int i = 0; i < S.n_held_local; i++) {
        struct pbuf *pb = pbuf_new(4096);
        int rc = cmn_rpc_reply_payload(S.held_calls[i], NULL, pb->mem, pb->len, release, pb);
        atomic_fetch_add(&S.held_replies, 1);
        if (rc == LODE_ECLOSED)
            atomic_fetch_add(&S.held_replies_closed, 1);
    }
    S.n_held_local = 0;
}

static void on_stop(uv_async_t *a)
{
    (void)a;
    on_kick(&S.kick);
    cmn_rpc_server_close(S.srv, NULL, NULL);
    uv_close((uv_handle_t *)&S.stop, NULL);
    uv_close((uv_handle_t *)&S.kick, NULL);
}

static void *server_main(void *arg)
{
    (void)arg;
    uv_loop_init(&S.loop);
    uv_async_init(&S.loop, &S.stop, on_stop);
    uv_async_init(&S.loop, &S.kick, on_kick);
    struct cmn_rpc_server_config cfg = {
        .service = "payload-test",
        .secret = SECRET,
        .secret_len = SECRET_LEN,
        .max_frame = MAX_FRAME,
        .handler = handler,
        .payload_alloc = payload_alloc,
        .payload_free = payload_free,
    };
    struct cmn_err err;
    if (cmn_rpc_server_create(&S.loop, &cfg, &S.srv) != 0 ||
        cmn_rpc_server_listen(S.srv, "127.0.0.1:0", &err) != 0)
        tap_bail("server start failed");
    S.port = cmn_rpc_server_port(S.srv);
    sem_post(&S.ready);
    uv_run(&S.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&S.loop) != 0)
        diag("server loop left handles behind");
    return NULL;
}

static char g_addr[64];

/* Waits (up to 10 s) until *v reaches want. */
static int wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 10000 && atomic_load(v) < want; i++)
        usleep(1000);
    return atomic_load(v) >= want;
}

/* ---- blocking client ------------------------------------------------------------------- */

static struct cmn_rpc_sync *connect_sync(void)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    if (cmn_rpc_sync_connect(g_addr, SECRET, SECRET_LEN, 3000, &c, &err) != 0)
        tap_bail("connect %s: %s", g_addr, err.msg);
    return c;
}

static void test_round_trips(void)
{
    static const size_t sizes[] = {1, 2, 100, 511, 4095, 4096, 4097, 65535, 65536, 65537,
                                   (1u << 20) + 3, BIG};
    struct cmn_rpc_sync *c = connect_sync();
    int all_ok = 1, bodies_ok = 1, ptr_before = atomic_load(&S.mismatches);
    int handed = atomic_load(&S.handed_out);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *buf = malloc(n);
        fill(buf, n, (unsigned)i);
        Lode__PingRequest req = LODE__PING_REQUEST__INIT;
        char tag[32];
        snprintf(tag, sizeof(tag), "body-%zu", n);
        req.payload.data = (uint8_t *)tag;
        req.payload.len = strlen(tag);
        struct cmn_rpc_result res;
        cmn_rpc_result_init(&res);
        int rc = cmn_rpc_sync_call_payload(c, M_ECHO, 0, &req.base, buf, n, 10000, &res);
        int good = rc == 0 && res.payload.len == n && check(res.payload.data, n, (unsigned)i);
        if (!good)
            diag("echo of %zu bytes: rc %d (%s), %zu bytes back", n, rc, res.message,
                 res.payload.len);
        all_ok &= good;
        Lode__PingResponse *resp =
            rc == 0 ? lode__ping_response__unpack(NULL, res.body.len, res.body.data) : NULL;
        /* The handler echoed the request body (a packed PingRequest) in the reply body. */
        Lode__PingRequest *back =
            resp ? lode__ping_request__unpack(NULL, resp->payload.len, resp->payload.data)
                 : NULL;
        bodies_ok &= back && back->payload.len == strlen(tag) &&
                     memcmp(back->payload.data, tag, strlen(tag)) == 0;
        if (back)
            lode__ping_request__free_unpacked(back, NULL);
        if (resp)
            lode__ping_response__free_unpacked(resp, NULL);
        cmn_rpc_result_free(&res);
        free(buf);
    }
    ok(all_ok, "payloads of 1 byte .. 8 MiB go through payload_alloc memory and come back intact");
    ok(bodies_ok, "the body travels next to the diverted payload, both ways");
    is_int(atomic_load(&S.mismatches), ptr_before,
           "the handler sees exactly the pointer payload_alloc returned, and takes its cookie");
    is_int(atomic_load(&S.handed_out) - handed, 12, "one buffer per payload");
    ok(wait_for(&S.releases, 12), "reply_payload released each echoed buffer");

    /* The handler does not take the payload: the server gives it back. */
    int frees = atomic_load(&S.frees);
    uint8_t small[3000];
    fill(small, sizeof(small), 9);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(small); i++)
        sum += small[i];
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = cmn_rpc_sync_call_payload(c, M_NOTAKE, 0, NULL, small, sizeof(small), 5000, &res);
    Lode__PingResponse *resp =
        rc == 0 ? lode__ping_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    char want[32];
    snprintf(want, sizeof(want), "%u", sum);
    ok(resp && strcmp(resp->service, want) == 0, "a handler reads a payload it does not take");
    if (resp)
        lode__ping_response__free_unpacked(resp, NULL);
    ok(wait_for(&S.frees, frees + 1) && atomic_load(&S.frees) == frees + 1,
       "payload_free runs once for a payload the handler did not take");

    /* payload_alloc declines: the payload is buffered and served as before. */
    int declined = atomic_load(&S.declined);
    rc = cmn_rpc_sync_call_payload(c, M_DECLINE, 0, NULL, small, sizeof(small), 5000, &res);
    ok(rc == 0 && res.payload.len == sizeof(small) &&
           memcmp(res.payload.data, small, sizeof(small)) == 0,
       "a declined payload is buffered and echoed intact");
    is_int(atomic_load(&S.declined), declined + 1, "payload_alloc was asked and declined");

    /* A request without a payload never asks payload_alloc. */
    int allocs = atomic_load(&S.allocs);
    rc = cmn_rpc_sync_call(c, M_NOTAKE, 0, NULL, 5000, &res);
    ok(rc == 0 && atomic_load(&S.allocs) == allocs, "no payload, no payload_alloc");

    /* Many frames back to back on one connection (the read path cuts reads at frame
     * boundaries; pipelining must still work). */
    int pipelined_ok = 1;
    for (int i = 0; i < 50 && pipelined_ok; i++) {
        uint8_t b[700];
        fill(b, sizeof(b), (unsigned)i + 100);
        rc = cmn_rpc_sync_call_payload(c, i % 2 ? M_ECHO : M_DECLINE, 0, NULL, b,
                                       (size_t)(i * 13 % 700) + 1, 5000, &res);
        pipelined_ok = rc == 0 && res.payload.len == (size_t)(i * 13 % 700) + 1 &&
                       memcmp(res.payload.data, b, res.payload.len) == 0;
    }
    ok(pipelined_ok, "50 alternating diverted and buffered payload calls");
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
}

/* Several blocking clients at once, each on its own connection. */
struct worker {
    pthread_t t;
    int id, ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct cmn_rpc_sync *c = connect_sync();
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    w->ok = 1;
    size_t n = 200000 + (size_t)w->id * 7919;
    uint8_t *buf = malloc(n);
    for (int i = 0; i < 15 && w->ok; i++) {
        size_t len = n - (size_t)i * 1000;
        fill(buf, len, (unsigned)(w->id * 100 + i));
        int rc = cmn_rpc_sync_call_payload(c, M_ECHO, 0, NULL, buf, len, 10000, &res);
        w->ok = rc == 0 && res.payload.len == len &&
                check(res.payload.data, len, (unsigned)(w->id * 100 + i));
    }
    free(buf);
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    return NULL;
}

static void test_concurrent_sync(void)
{
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i].id = i;
        pthread_create(&w[i].t, NULL, worker_main, &w[i]);
    }
    int all = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i].t, NULL);
        all &= w[i].ok;
    }
    ok(all, "4 connections x 15 payload calls of ~200 KiB at the same time");
}

/* ---- hostile or vanishing clients ------------------------------------------------------- */

static size_t frame(uint8_t *out, unsigned method, uint64_t id, size_t body_len,
                    uint32_t payload_len)
{
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .method = (uint16_t)method, .request_id = id,
                               .body_len = (uint32_t)body_len, .payload_len = payload_len};
    cmn_rpc_header_pack(&h, out);
    memset(out + CMN_RPC_HEADER_SIZE, 0, body_len);
    return CMN_RPC_HEADER_SIZE + body_len;
}

static void test_hostile(void)
{
    /* Oversized: rejected from the header alone, before any allocation. */
    int allocs = atomic_load(&S.allocs);
    struct cmn_rpc_sync *c = connect_sync();
    uint8_t f[CMN_RPC_HEADER_SIZE + 16];
    size_t n = frame(f, M_ECHO, 1, 16, 10u << 20);
    cmn_rpc_sync_send_raw(c, f, n);
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = cmn_rpc_sync_recv(c, 5000, &res);
    ok(rc == LODE_EFRAMETOOBIG, "a 10 MiB payload over a 9 MiB limit is refused (%s)",
       res.message);
    is_int(atomic_load(&S.allocs), allocs, "payload_alloc is never asked for it");
    cmn_rpc_sync_close(c);

    /* The client disconnects halfway through a diverted payload. */
    int frees = atomic_load(&S.frees), handled = atomic_load(&S.handled);
    c = connect_sync();
    n = frame(f, M_ECHO, 2, 16, 1u << 20);
    uint8_t *half = calloc(1, 512u << 10);
    cmn_rpc_sync_send_raw(c, f, n);
    cmn_rpc_sync_send_raw(c, half, 512u << 10);
    ok(wait_for(&S.allocs, allocs + 1), "payload_alloc asked once the body was in");
    cmn_rpc_sync_close(c);
    ok(wait_for(&S.frees, frees + 1), "client gone mid-payload: payload_free runs");
    usleep(50000);
    is_int(atomic_load(&S.frees), frees + 1, "exactly once");
    is_int(atomic_load(&S.handled), handled, "the handler never saw the partial request");
    free(half);

    /* Held calls whose client vanished: replying releases the payload once, and the
     * payload the handler never took goes back through payload_free. */
    frees = atomic_load(&S.frees);
    int releases = atomic_load(&S.releases), held = atomic_load(&S.held);
    c = connect_sync();
    uint8_t payload[5000];
    fill(payload, sizeof(payload), 3);
    for (int i = 0; i < 3; i++) {
        n = frame(f, M_HOLD, 10 + (uint64_t)i, 0, sizeof(payload));
        cmn_rpc_sync_send_raw(c, f, n);
        cmn_rpc_sync_send_raw(c, payload, sizeof(payload));
    }
    ok(wait_for(&S.held, held + 3), "three calls held");
    cmn_rpc_sync_close(c);
    usleep(100000); /* let the server see the close */
    uv_async_send(&S.kick);
    ok(wait_for(&S.held_replies, 3), "held calls answered");
    is_int(atomic_load(&S.held_replies_closed), 3, "each reply says the connection is gone");
    ok(wait_for(&S.releases, releases + 3) && wait_for(&S.frees, frees + 3),
       "each reply's release and each untaken payload's free ran");
    usleep(50000);
    ok(atomic_load(&S.releases) == releases + 3 && atomic_load(&S.frees) == frees + 3,
       "exactly once each");

    /* A client that asks for a large reply and disappears without reading it. */
    releases = atomic_load(&S.releases);
    handled = atomic_load(&S.handled);
    c = connect_sync();
    n = frame(f, M_BIGREPLY, 20, 0, 0);
    cmn_rpc_sync_send_raw(c, f, n);
    ok(wait_for(&S.handled, handled + 1), "large reply requested");
    cmn_rpc_sync_close(c);
    ok(wait_for(&S.releases, releases + 1), "its release ran although nobody read it (rc %d)",
       atomic_load(&S.big_rc));
    usleep(50000);
    is_int(atomic_load(&S.releases), releases + 1, "exactly once");

    /* And one that does read it. */
    c = connect_sync();
    rc = cmn_rpc_sync_call(c, M_BIGREPLY, 0, NULL, 10000, &res);
    ok(rc == 0 && res.payload.len == BIG && check(res.payload.data, BIG, 77),
       "an 8 MiB reply_payload arrives intact");
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
}

/* ---- asynchronous client ------------------------------------------------------------ */

#define N_ASYNC 64

struct acall {
    uint8_t *buf;
    size_t len;
    unsigned seed;
    int calls, good;
};

static void on_async(void *data, const struct cmn_rpc_result *res)
{
    struct acall *a = data;
    a->calls++;
    a->good = res->status == 0 && res->payload.len == a->len &&
              check(res->payload.data, a->len, a->seed);
    if (!a->good)
        diag("async call of %zu bytes: %d %s", a->len, res->status, res->message);
    free(a->buf); /* ours again: the client must be done with it */
    a->buf = NULL;
}

static void on_closed(void *data)
{
    (*(int *)data)++;
}

static void test_async(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cmn_rpc_client_config cfg = {.address = g_addr, .secret = SECRET,
                                        .secret_len = SECRET_LEN};
    struct cmn_rpc_client *cli = NULL;
    if (cmn_rpc_client_create(&loop, &cfg, &cli) != 0)
        tap_bail("client create");
    static struct acall a[N_ASYNC + 1];
    int submitted = 1;
    for (int i = 0; i <= N_ASYNC; i++) {
        a[i].len = i == N_ASYNC ? BIG : (size_t)(i * 16411) % (1u << 20) + 1;
        a[i].seed = (unsigned)i + 500;
        a[i].buf = malloc(a[i].len);
        fill(a[i].buf, a[i].len, a[i].seed);
        submitted &= cmn_rpc_client_call_payload(cli, M_ECHO, 0, NULL, a[i].buf, a[i].len,
                                                 20000, on_async, &a[i]) == 0;
    }
    ok(submitted, "%d payload calls submitted at once", N_ASYNC + 1);
    /* The connection stays open (and the loop alive) after the calls: run until done. */
    for (int done = 0; submitted && done <= N_ASYNC;) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i <= N_ASYNC; i++)
            done += a[i].calls;
    }
    int all = 1, once = 1;
    for (int i = 0; i <= N_ASYNC; i++) {
        all &= a[i].good;
        once &= a[i].calls == 1;
    }
    ok(all, "every concurrent payload (up to 8 MiB) came back intact");
    ok(once, "every callback ran exactly once");

    uint8_t big[16];
    is_int(cmn_rpc_client_call_payload(cli, M_ECHO, 0, NULL, big, (size_t)17 << 20, 1000,
                                       on_async, &a[0]),
           LODE_EFRAMETOOBIG, "a payload over the client's frame limit is refused at once");
    is_int(cmn_rpc_client_call_payload(cli, M_ECHO, 0, NULL, NULL, 10, 1000, on_async, &a[0]),
           -EINVAL, "a payload length without a payload is refused");
    int closed = 0;
    cmn_rpc_client_close(cli, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(closed, 1, "client closed");
    is_int(uv_loop_close(&loop), 0, "client loop clean");
}

/* A peer that completes the handshake and then stops reading: a call whose payload is
 * still being written when it times out completes only once the write is abandoned, and
 * nothing written after its callback (which scribbles over the payload) reaches the peer. */
struct stuck {
    pthread_t t;
    int lfd, port;
    sem_t go;                         /* posted once the client's callback ran */
    size_t got;                       /* payload bytes the peer received */
    int intact;                       /* all of them were the original bytes */
};

static int read_n(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = recv(fd, b, n, 0);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The server's side of the handshake, by hand, for peers that then misbehave. */
static int raw_handshake(int fd, uint8_t nonce_fill)
{
    uint8_t out[CMN_RPC_HEADER_SIZE + CMN_HMAC_SIZE], nonce[CMN_RPC_NONCE_SIZE];
    uint8_t in[CMN_RPC_HEADER_SIZE + 2 * CMN_RPC_NONCE_SIZE];
    memset(nonce, nonce_fill, sizeof(nonce));
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_HELLO,
                               .body_len = CMN_RPC_NONCE_SIZE};
    cmn_rpc_header_pack(&h, out);
    memcpy(out + CMN_RPC_HEADER_SIZE, nonce, sizeof(nonce));
    if (send(fd, out, CMN_RPC_HEADER_SIZE + CMN_RPC_NONCE_SIZE, MSG_NOSIGNAL) < 0 ||
        read_n(fd, in, sizeof(in)) < 0)
        return -1;
    h = (struct cmn_rpc_header){.version = CMN_RPC_VERSION, .kind = CMN_RPC_AUTH_OK,
                                .body_len = CMN_HMAC_SIZE};
    cmn_rpc_header_pack(&h, out);
    cmn_rpc_auth_mac(SECRET, SECRET_LEN, 1, nonce, in + CMN_RPC_HEADER_SIZE,
                     out + CMN_RPC_HEADER_SIZE);
    return send(fd, out, sizeof(out), MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static void *stuck_main(void *arg)
{
    struct stuck *s = arg;
    struct cmn_rpc_header h;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0 || raw_handshake(fd, 7) < 0)
        goto out;
    sem_wait(&s->go); /* not reading: the client's write stalls */
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    if (read_n(fd, hdr, sizeof(hdr)) < 0 || cmn_rpc_header_unpack(hdr, 1u << 30, &h, NULL) < 0)
        goto out;
    s->intact = 1;
    uint8_t buf[65536];
    size_t pos = 0;
    ssize_t r;
    while ((r = recv(fd, buf, sizeof(buf), 0)) > 0) {
        for (ssize_t i = 0; i < r; i++, pos++)
            if (buf[i] != (uint8_t)(pos * 31 + 1234 + (pos >> 12)))
                s->intact = 0;
    }
    s->got = pos;
out:
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void on_stuck(void *data, const struct cmn_rpc_result *res)
{
    struct acall *a = data;
    a->calls++;
    a->good = res->status == LODE_ETIMEOUT;
    memset(a->buf, 0xee, a->len); /* anything sent after this would show */
}

/* The third field of a /proc/sys/net/ipv4/tcp_[rw]mem file: the most a socket buffers. */
static size_t sock_buf_max(const char *path)
{
    FILE *f = fopen(path, "r");
    unsigned long a = 0, b = 0, c = 0;
    if (f) {
        if (fscanf(f, "%lu %lu %lu", &a, &b, &c) != 3)
            c = 0;
        fclose(f);
    }
    return c ? c : (size_t)(32u << 20);
}

static void test_timeout_mid_write(void)
{
    struct stuck s = {0};
    sem_init(&s.go, 0, 0);
    s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    socklen_t sl = sizeof(sin);
    if (bind(s.lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(s.lfd, 1) < 0 ||
        getsockname(s.lfd, (struct sockaddr *)&sin, &sl) < 0)
        tap_bail("stuck peer: %s", strerror(errno));
    pthread_create(&s.t, NULL, stuck_main, &s);

    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* Far more than the two socket buffers can hold, so the write is still going. */
    static struct acall a;
    a.len = sock_buf_max("/proc/sys/net/ipv4/tcp_wmem") +
            sock_buf_max("/proc/sys/net/ipv4/tcp_rmem") + (16u << 20);
    if (a.len > (256u << 20))
        a.len = 256u << 20;
    struct cmn_rpc_client_config cfg = {.address = addr, .secret = SECRET,
                                        .secret_len = SECRET_LEN,
                                        .max_frame = (uint32_t)a.len + (1u << 20)};
    struct cmn_rpc_client *cli = NULL;
    cmn_rpc_client_create(&loop, &cfg, &cli);
    a.buf = malloc(a.len);
    fill(a.buf, a.len, 1234);
    /* Long enough for the handshake on a loaded machine; the write stalls long before. */
    cmn_rpc_client_call_payload(cli, M_ECHO, 0, NULL, a.buf, a.len, 2000, on_stuck, &a);
    while (a.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    ok(a.calls == 1 && a.good, "a call timing out mid-write completes once, with ETIMEOUT");
    /* Closed before the peer reads on, so that it sees the end in every case. */
    int closed = 0;
    cmn_rpc_client_close(cli, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "loop clean");
    sem_post(&s.go);
    pthread_join(s.t, NULL);
    ok(s.got > 0 && s.got < a.len, "the peer got part of the payload (%zu of %zu bytes)", s.got,
       a.len);
    ok(s.intact, "and none of it was written after the callback reused the buffer");
    free(a.buf);
    close(s.lfd);
    sem_destroy(&s.go);
}

/* ---- replies read straight into the caller's memory (cmn_rpc_client_call_into) --------- */

#define N_INTO 6

struct icall {
    uint8_t *dest;
    size_t cap;
    int calls, status, placed, intact;
};

static void on_into(void *data, const struct cmn_rpc_result *res)
{
    struct icall *c = data;
    c->calls++;
    c->status = res->status;
    c->placed = res->payload.data == c->dest;
    c->intact = res->status == 0 && res->payload.len == BIG && check(res->payload.data, BIG, 77);
}

static void test_into(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cmn_rpc_client_config cfg = {.address = g_addr, .secret = SECRET,
                                        .secret_len = SECRET_LEN};
    struct cmn_rpc_client *cli = NULL;
    if (cmn_rpc_client_create(&loop, &cfg, &cli) != 0)
        tap_bail("client create");
    static struct icall ic[N_INTO + 1];
    static struct acall echo[N_INTO];
    int submitted = 1;
    for (int i = 0; i <= N_INTO; i++) {
        /* The last one's destination is a byte short: its reply must not go there. */
        ic[i].cap = i == N_INTO ? BIG - 1 : BIG;
        ic[i].dest = malloc(BIG);
        memset(ic[i].dest, 0x5a, BIG);
        submitted &= cmn_rpc_client_call_into(cli, M_BIGREPLY, 0, NULL, ic[i].dest, ic[i].cap,
                                              20000, on_into, &ic[i]) == 0;
        if (i < N_INTO) {
            /* Plain payload calls interleaved on the same connection. */
            echo[i].len = (size_t)(i + 1) * 70001;
            echo[i].seed = (unsigned)i + 900;
            echo[i].buf = malloc(echo[i].len);
            fill(echo[i].buf, echo[i].len, echo[i].seed);
            submitted &= cmn_rpc_client_call_payload(cli, M_ECHO, 0, NULL, echo[i].buf,
                                                     echo[i].len, 20000, on_async,
                                                     &echo[i]) == 0;
        }
    }
    ok(submitted, "calls with destinations and plain payload calls submitted together");
    for (int done = 0; submitted && done < 2 * N_INTO + 1;) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i <= N_INTO; i++)
            done += ic[i].calls + (i < N_INTO ? echo[i].calls : 0);
    }
    int placed = 1, echoes = 1;
    for (int i = 0; i < N_INTO; i++) {
        placed &= ic[i].calls == 1 && ic[i].status == 0 && ic[i].placed && ic[i].intact &&
                  check(ic[i].dest, BIG, 77);
        echoes &= echo[i].calls == 1 && echo[i].good;
    }
    ok(placed, "every 8 MiB reply payload was read straight into its destination, intact");
    ok(echoes, "the plain payload calls between them came back intact");
    int canary = 1;
    for (size_t i = 0; i < BIG; i++)
        canary &= ic[N_INTO].dest[i] == 0x5a;
    ok(ic[N_INTO].calls == 1 && ic[N_INTO].status == 0 && !ic[N_INTO].placed &&
           ic[N_INTO].intact && canary,
       "a reply larger than its destination is buffered instead, the destination untouched");
    is_int(cmn_rpc_client_call_into(cli, M_BIGREPLY, 0, NULL, ic[0].dest, 0, 1000, on_into,
                                    &ic[0]),
           -EINVAL, "a destination of 0 bytes is refused");
    int closed = 0;
    cmn_rpc_client_close(cli, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "client loop clean");
    for (int i = 0; i <= N_INTO; i++)
        free(ic[i].dest);
}

/* A peer that answers with half a payload and then stalls: the call times out, and once its
 * callback has run (and scribbled over the destination) nothing more lands there although
 * the peer sends the rest. */
struct half {
    pthread_t t;
    int lfd;
    sem_t go;
    size_t len;
};

static void *half_main(void *arg)
{
    struct half *s = arg;
    struct cmn_rpc_header h;
    int fd = accept(s->lfd, NULL, NULL);
    uint8_t req[CMN_RPC_HEADER_SIZE];
    if (fd < 0 || raw_handshake(fd, 9) < 0 || read_n(fd, req, sizeof(req)) < 0 ||
        cmn_rpc_header_unpack(req, 1u << 30, &h, NULL) < 0)
        goto out;
    uint8_t *reply = malloc(CMN_RPC_HEADER_SIZE + s->len);
    struct cmn_rpc_header rh = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_RESPONSE,
                                .request_id = h.request_id, .payload_len = (uint32_t)s->len};
    cmn_rpc_header_pack(&rh, reply);
    fill(reply + CMN_RPC_HEADER_SIZE, s->len, 77);
    size_t first = CMN_RPC_HEADER_SIZE + s->len / 2;
    if (send(fd, reply, first, MSG_NOSIGNAL) == (ssize_t)first) {
        sem_wait(&s->go);
        (void)!send(fd, reply + first, CMN_RPC_HEADER_SIZE + s->len - first, MSG_NOSIGNAL);
    }
    free(reply);
out:
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void on_half(void *data, const struct cmn_rpc_result *res)
{
    struct icall *c = data;
    c->calls++;
    c->status = res->status;
    memset(c->dest, 0xee, c->cap); /* anything read after this would show */
}

static void test_into_timeout(void)
{
    struct half s = {.len = 1u << 20};
    sem_init(&s.go, 0, 0);
    s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    socklen_t sl = sizeof(sin);
    if (bind(s.lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(s.lfd, 1) < 0 ||
        getsockname(s.lfd, (struct sockaddr *)&sin, &sl) < 0)
        tap_bail("half peer: %s", strerror(errno));
    pthread_create(&s.t, NULL, half_main, &s);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cmn_rpc_client_config cfg = {.address = addr, .secret = SECRET,
                                        .secret_len = SECRET_LEN};
    struct cmn_rpc_client *cli = NULL;
    cmn_rpc_client_create(&loop, &cfg, &cli);
    struct icall c = {.cap = s.len, .dest = malloc(s.len)};
    memset(c.dest, 0, s.len);
    cmn_rpc_client_call_into(cli, M_BIGREPLY, 0, NULL, c.dest, c.cap, 1500, on_half, &c);
    while (c.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    ok(c.calls == 1 && c.status == LODE_ETIMEOUT,
       "a call whose reply payload stalls half way times out (%d)", c.status);
    sem_post(&s.go); /* the peer sends the rest now */
    pthread_join(s.t, NULL);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    int intact = 1;
    for (size_t i = 0; i < s.len; i++)
        intact &= c.dest[i] == 0xee;
    ok(intact, "nothing was read into the destination after the callback");
    int closed = 0;
    cmn_rpc_client_close(cli, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "loop clean");
    free(c.dest);
    close(s.lfd);
    sem_destroy(&s.go);
}

/* ---- the receiver alone: random read boundaries, diverted or not ------------------------ */

#define RX_FRAMES 40

struct rx_case {
    uint8_t *stream;
    size_t len;
    uint32_t body[RX_FRAMES], payload[RX_FRAMES];
    size_t start[RX_FRAMES];          /* offset of each frame's body in the stream */
    int seen;                         /* frames delivered so far, in order */
    int bad;
    int diverts;                      /* divert calls */
    uint8_t *dest[RX_FRAMES];
};

static int rx_check(struct rx_case *rc, const uint8_t *body, const uint8_t *payload,
                    const struct cmn_rpc_header *h)
{
    int i = rc->seen++;
    if (i >= RX_FRAMES || h->request_id != (uint64_t)i || h->body_len != rc->body[i] ||
        h->payload_len != rc->payload[i] ||
        memcmp(body, rc->stream + rc->start[i], h->body_len) != 0 ||
        memcmp(payload, rc->stream + rc->start[i] + h->body_len, h->payload_len) != 0)
        rc->bad++;
    return 0;
}

static int rx_frame(void *data, const struct cmn_rpc_header *h, const uint8_t *body,
                    const uint8_t *payload)
{
    return rx_check(data, body, payload, h);
}

/* Diverts frames with an odd id. */
static uint8_t *rx_div(void *data, const struct cmn_rpc_header *h, const uint8_t *body)
{
    struct rx_case *rc = data;
    int i = (int)h->request_id;
    rc->diverts++;
    if (i % 2 == 0 || i >= RX_FRAMES ||
        memcmp(body, rc->stream + rc->start[i], h->body_len) != 0)
        return NULL;
    rc->dest[i] = malloc(h->payload_len);
    return rc->dest[i];
}

static int rx_done(void *data, const struct cmn_rpc_header *h)
{
    struct rx_case *rc = data;
    int i = (int)h->request_id;
    /* The body was checked by rx_div; check the payload where it landed. */
    int r = rx_check(rc, rc->stream + rc->start[i], rc->dest[i], h);
    free(rc->dest[i]);
    rc->dest[i] = NULL;
    return r;
}

static void rx_case_build(struct rx_case *rc, unsigned seed)
{
    memset(rc, 0, sizeof(*rc));
    srand(seed);
    size_t total = 0;
    for (int i = 0; i < RX_FRAMES; i++) {
        rc->body[i] = (uint32_t)(rand() % 4 == 0 ? 0 : rand() % 300);
        rc->payload[i] = (uint32_t)(rand() % 3 == 0 ? 0 : rand() % 100000);
        total += CMN_RPC_HEADER_SIZE + rc->body[i] + rc->payload[i];
    }
    rc->stream = malloc(total);
    rc->len = total;
    size_t off = 0;
    for (int i = 0; i < RX_FRAMES; i++) {
        struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                                   .method = M_ECHO, .request_id = (uint64_t)i,
                                   .body_len = rc->body[i], .payload_len = rc->payload[i]};
        cmn_rpc_header_pack(&h, rc->stream + off);
        off += CMN_RPC_HEADER_SIZE;
        rc->start[i] = off;
        fill(rc->stream + off, rc->body[i] + (size_t)rc->payload[i], (unsigned)i);
        off += rc->body[i] + (size_t)rc->payload[i];
    }
}

static void test_rx(void)
{
    static const struct cmn_rpc_rx_ops plain = {.frame = rx_frame};
    static const struct cmn_rpc_rx_ops div = {.frame = rx_frame, .divert = rx_div,
                                              .diverted = rx_done};
    int ok_plain = 1, ok_div = 1, ok_exact = 1, scratch_clean = 1;
    for (unsigned seed = 1; seed <= 6; seed++) {
        struct rx_case rc;
        struct cmn_rpc_rx rx;

        /* Whatever read sizes the kernel picks, without diversion. */
        rx_case_build(&rc, seed);
        cmn_rpc_rx_init(&rx, MAX_FRAME);
        for (size_t pos = 0; pos < rc.len;) {
            size_t n = (size_t)(rand() % 70000) + 1;
            n = n > rc.len - pos ? rc.len - pos : n;
            cmn_rpc_rx_feed(&rx, rc.stream + pos, n, &plain, &rc);
            pos += n;
        }
        ok_plain &= rc.seen == RX_FRAMES && rc.bad == 0 && !cmn_rpc_rx_mid_frame(&rx);
        cmn_rpc_rx_free(&rx);

        /* Diverting odd frames, with random reads that may carry payload bytes (copied). */
        rc.seen = rc.bad = 0;
        cmn_rpc_rx_init(&rx, MAX_FRAME);
        for (size_t pos = 0; pos < rc.len;) {
            size_t n = (size_t)(rand() % 70000) + 1;
            n = n > rc.len - pos ? rc.len - pos : n;
            cmn_rpc_rx_feed(&rx, rc.stream + pos, n, &div, &rc);
            pos += n;
        }
        ok_div &= rc.seen == RX_FRAMES && rc.bad == 0;
        cmn_rpc_rx_free(&rx);

        /* The server's way: reads where cmn_rpc_rx_next_read says, exact, of random size;
         * no payload byte of a diverted frame may land in scratch. */
        rc.seen = rc.bad = 0;
        cmn_rpc_rx_init(&rx, MAX_FRAME);
        static uint8_t scratch[65536];
        size_t direct = 0, diverted = 0;
        for (int i = 1; i < RX_FRAMES; i += 2)
            diverted += rc.payload[i];
        for (size_t pos = 0; pos < rc.len;) {
            char *base;
            size_t cap;
            cmn_rpc_rx_next_read(&rx, 1, scratch, sizeof(scratch), &base, &cap);
            size_t n = (size_t)(rand() % 70000) + 1;
            n = n > cap ? cap : n;
            n = n > rc.len - pos ? rc.len - pos : n;
            memcpy(base, rc.stream + pos, n); /* what recv() would do */
            if (cmn_rpc_rx_is_direct(&rx, base)) {
                direct += n;
                cmn_rpc_rx_feed_direct(&rx, n, &div, &rc);
            } else {
                cmn_rpc_rx_feed(&rx, scratch, n, &div, &rc);
            }
            pos += n;
        }
        ok_exact &= rc.seen == RX_FRAMES && rc.bad == 0;
        /* Every byte of every diverted payload went straight to its memory. */
        scratch_clean &= direct == diverted;
        cmn_rpc_rx_free(&rx);
        for (int i = 0; i < RX_FRAMES; i++)
            free(rc.dest[i]);
        free(rc.stream);
    }
    ok(ok_plain, "receiver: 40 frames in random read sizes, 6 seeds, delivered intact");
    ok(ok_div, "receiver: odd frames diverted, even ones buffered, all intact");
    ok(ok_exact, "receiver: reads placed by next_read (direct into diverted memory) work");
    ok(scratch_clean, "receiver: exact reads never put diverted payload bytes in scratch");

    /* An oversized frame fails from its header: divert is never asked. */
    struct rx_case rc = {0};
    struct cmn_rpc_rx rx;
    cmn_rpc_rx_init(&rx, 1000);
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .method = M_ECHO, .request_id = 1, .body_len = 10,
                               .payload_len = 991};
    cmn_rpc_header_pack(&h, hdr);
    int r = cmn_rpc_rx_feed(&rx, hdr, sizeof(hdr), &div, &rc);
    ok(r == LODE_EFRAMETOOBIG && rc.diverts == 0, "receiver: oversize refused before divert");
    is_int(cmn_rpc_rx_feed(&rx, hdr, 1, &div, &rc), LODE_EFRAMETOOBIG,
           "receiver: stays dead after an error");
    cmn_rpc_rx_free(&rx);
}

int main(void)
{
    alarm(120);
    cmn_log_init("test_rpc_payload", CMN_LOG_ERROR);
    sem_init(&S.ready, 0, 0);
    pthread_create(&S.thread, NULL, server_main, NULL);
    sem_wait(&S.ready);
    snprintf(g_addr, sizeof(g_addr), "127.0.0.1:%d", S.port);

    test_rx();
    test_round_trips();
    test_concurrent_sync();
    test_hostile();
    test_async();
    test_timeout_mid_write();
    test_into();
    test_into_timeout();

    uv_async_send(&S.stop);
    pthread_join(S.thread, NULL);
    int out = atomic_load(&S.handed_out);
    int back = atomic_load(&S.frees) + atomic_load(&S.releases);
    is_int(back, out, "every buffer handed out came back exactly once (%d)", out);
    is_int(atomic_load(&S.mismatches), 0, "no cookie mix-ups");
    sem_destroy(&S.ready);
    return tap_done();
}
