/* The RPC layer end to end over loopback TCP.
 *
 * A background thread runs a libuv loop with two servers: A (a test handler: echo, errors,
 * delayed and held replies) and R (answers everything with "not the leader, go to A"). The
 * main thread talks to them with the blocking client, the meta client, raw sockets for
 * hostile input, and the asynchronous client on a loop of its own (where server B, which
 * the test closes with calls in flight, also lives).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/meta_client.h"
#include "common/rpc.h"
#include "common/rpc_sync.h"
#include "tests/tap.h"

static const char secret[] = "test-cluster-secret-0123456789";
#define SECRET_LEN (sizeof(secret) - 1)
#define ECHO_METHOD CMN_RPC_BUCKET_HEAD
#define ERROR_METHOD CMN_RPC_OBJECT_GET
#define DELAY_METHOD CMN_RPC_BUCKET_LIST
#define HOLD_METHOD CMN_RPC_CLUSTER_MAP_GET
#define FLAGS_METHOD CMN_RPC_META_STATUS
#define PUT_METHOD CMN_RPC_OBJECT_PUT

/* ---- test servers ---------------------------------------------------------------------- */

struct held {
    struct cmn_rpc_call *call;
    struct held *next;
};

struct delayed {
    uv_timer_t timer;
    struct cmn_rpc_call *call;
    struct srv_ctx *sc;
    struct delayed *prev, *next;
};

struct srv_ctx {
    uv_loop_t *loop;
    struct cmn_rpc_server *srv;
    char addr[64];
    const char *redirect_to;     /* answer everything with ENOTLEADER naming this */
    struct held *held;
    unsigned n_held;
    struct delayed *delayed;
    int put_fail_first;          /* fail this many OBJECT_PUT attempts with ENOLEADER */
    int put_seen;
    uint8_t put_cid[16];
    uint64_t put_seq;
};

static void delayed_closed(uv_handle_t *h)
{
    free(h->data);
}

static void delayed_fire(uv_timer_t *t)
{
    struct delayed *d = t->data;
    size_t len;
    const uint8_t *body = cmn_rpc_call_body(d->call, &len);
    cmn_rpc_reply_raw(d->call, body, len, NULL, 0);
    if (d->prev)
        d->prev->next = d->next;
    else
        d->sc->delayed = d->next;
    if (d->next)
        d->next->prev = d->prev;
    uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static void handle_put(struct srv_ctx *sc, struct cmn_rpc_call *call)
{
    size_t len;
    const uint8_t *body = cmn_rpc_call_body(call, &len);
    Lode__Command *cmd = lode__command__unpack(NULL, len, body);
    if (!cmd || cmd->client_id.len != 16) {
        cmn_rpc_reply_error(call, LODE_EBADMSG, NULL, 0, "command without a 16-byte client id");
        if (cmd)
            lode__command__free_unpacked(cmd, NULL);
        return;
    }
    int same = !sc->put_seen ||
               (memcmp(sc->put_cid, cmd->client_id.data, 16) == 0 && sc->put_seq == cmd->seq);
    if (!sc->put_seen) {
        memcpy(sc->put_cid, cmd->client_id.data, 16);
        sc->put_seq = cmd->seq;
        sc->put_seen = 1;
    }
    if (sc->put_fail_first > 0) {
        sc->put_fail_first--;
        cmn_rpc_reply_error(call, LODE_ENOLEADER, NULL, 0, "no leader elected yet");
    } else {
        Lode__CommandResult r = LODE__COMMAND_RESULT__INIT;
        r.message = (char *)(same ? "same" : "different");
        r.version = cmd->seq;
        cmn_rpc_reply(call, &r.base);
        sc->put_seen = 0;
    }
    lode__command__free_unpacked(cmd, NULL);
}

static void test_handler(void *data, struct cmn_rpc_call *call)
{
    struct srv_ctx *sc = data;
    unsigned m = cmn_rpc_call_method(call);
    if (sc->redirect_to) {
        cmn_rpc_reply_error(call, LODE_ENOTLEADER, sc->redirect_to, 1,
                            "not the leader; the leader is %s", sc->redirect_to);
        return;
    }
    switch (m) {
    case ECHO_METHOD: {
        size_t bl, pl;
        const uint8_t *body = cmn_rpc_call_body(call, &bl);
        const uint8_t *payload = cmn_rpc_call_payload(call, &pl);
        cmn_rpc_reply_raw(call, body, bl, payload, pl);
        break;
    }
    case ERROR_METHOD:
        cmn_rpc_reply_error(call, LODE_ENOTLEADER, "127.0.0.1:4242", 7,
                            "not the leader (asked by %s)", cmn_rpc_call_peer(call));
        break;
    case DELAY_METHOD: {
        size_t len;
        const uint8_t *body = cmn_rpc_call_body(call, &len);
        Lode__BucketListRequest *req = lode__bucket_list_request__unpack(NULL, len, body);
        unsigned ms = req ? (unsigned)atoi(req->owner) : 0;
        if (req)
            lode__bucket_list_request__free_unpacked(req, NULL);
        struct delayed *d = calloc(1, sizeof(*d));
        d->call = call;
        d->sc = sc;
        d->next = sc->delayed;
        if (sc->delayed)
            sc->delayed->prev = d;
        sc->delayed = d;
        uv_timer_init(sc->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, delayed_fire, ms, 0);
        break;
    }
    case HOLD_METHOD: {
        struct held *h = calloc(1, sizeof(*h));
        h->call = call;
        h->next = sc->held;
        sc->held = h;
        sc->n_held++;
        break;
    }
    case FLAGS_METHOD: {
        Lode__MetaStatusResponse r = LODE__META_STATUS_RESPONSE__INIT;
        r.role = (char *)((cmn_rpc_call_flags(call) & CMN_RPC_FLAG_STALE_OK) ? "stale" : "leader");
        cmn_rpc_reply(call, &r.base);
        break;
    }
    case PUT_METHOD:
        handle_put(sc, call);
        break;
    default:
        cmn_rpc_reply_error(call, LODE_EINTERNAL, NULL, 0, "test server: method %u not handled", m);
    }
}

/* Replies to held calls (which frees them) and returns how many were orphaned. */
static unsigned release_held(struct srv_ctx *sc, int *reply_rc_all_closed)
{
    unsigned orphaned = 0;
    int all_closed = 1;
    while (sc->held) {
        struct held *h = sc->held;
        sc->held = h->next;
        if (cmn_rpc_call_orphaned(h->call))
            orphaned++;
        if (cmn_rpc_reply_error(h->call, LODE_EINTERNAL, NULL, 0, "released") != LODE_ECLOSED)
            all_closed = 0;
        free(h);
    }
    sc->n_held = 0;
    if (reply_rc_all_closed)
        *reply_rc_all_closed = all_closed;
    return orphaned;
}

static void release_delayed(struct srv_ctx *sc)
{
    while (sc->delayed) {
        struct delayed *d = sc->delayed;
        sc->delayed = d->next;
        uv_timer_stop(&d->timer);
        cmn_rpc_reply_raw(d->call, NULL, 0, NULL, 0);
        uv_close((uv_handle_t *)&d->timer, delayed_closed);
    }
}

static int start_server_cfg(struct srv_ctx *sc, uv_loop_t *loop, const char *addr,
                            const char *sec, uint32_t handshake_ms, uint32_t idle_ms,
                            struct cmn_metrics *metrics)
{
    sc->loop = loop;
    struct cmn_rpc_server_config cfg = {
        .service = "test-svc",
        .secret = sec,
        .secret_len = strlen(sec),
        .max_frame = 1u << 20,
        .handshake_timeout_ms = handshake_ms,
        .idle_timeout_ms = idle_ms,
        .handler = test_handler,
        .data = sc,
        .metrics = metrics,
    };
    int rc = cmn_rpc_server_create(loop, &cfg, &sc->srv);
    if (rc)
        return rc;
    struct cmn_err err;
    cmn_err_clear(&err);
    rc = cmn_rpc_server_listen(sc->srv, addr, &err);
    if (rc) {
        diag("listen: %s", cmn_err_text(&err));
        return rc;
    }
    snprintf(sc->addr, sizeof(sc->addr), "127.0.0.1:%d", cmn_rpc_server_port(sc->srv));
    return 0;
}

static int start_server(struct srv_ctx *sc, uv_loop_t *loop, const char *addr, const char *sec,
                        uint32_t handshake_ms)
{
    return start_server_cfg(sc, loop, addr, sec, handshake_ms, 0, NULL);
}

struct srv_thread {
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t stop;
    sem_t ready;
    int start_rc;
    int loop_close_rc;
    struct cmn_metrics *metrics;
    struct srv_ctx a, r, idle;   /* idle: closes connections idle for 100 ms */
};

static void on_stop(uv_async_t *h)
{
    struct srv_thread *st = h->data;
    release_held(&st->a, NULL);
    release_delayed(&st->a);
    cmn_rpc_server_close(st->a.srv, NULL, NULL);
    cmn_rpc_server_close(st->r.srv, NULL, NULL);
    cmn_rpc_server_close(st->idle.srv, NULL, NULL);
    uv_close((uv_handle_t *)&st->stop, NULL);
}

static void *srv_thread_main(void *arg)
{
    struct srv_thread *st = arg;
    uv_loop_init(&st->loop);
    uv_async_init(&st->loop, &st->stop, on_stop);
    st->stop.data = st;
    st->start_rc = start_server_cfg(&st->a, &st->loop, "127.0.0.1:0", secret, 300, 0,
                                    st->metrics);
    if (st->start_rc == 0) {
        st->r.redirect_to = st->a.addr;
        st->start_rc = start_server(&st->r, &st->loop, "127.0.0.1:0", secret, 300);
    }
    if (st->start_rc == 0)
        st->start_rc = start_server_cfg(&st->idle, &st->loop, "127.0.0.1:0", secret, 300, 100,
                                        NULL);
    sem_post(&st->ready);
    uv_run(&st->loop, UV_RUN_DEFAULT);
    st->loop_close_rc = uv_loop_close(&st->loop);
    return NULL;
}

/* ---- raw sockets (hostile peers) ------------------------------------------------------- */

static int raw_connect(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        tap_bail("raw connect to %s: %s", addr, strerror(errno));
    return fd;
}

static int read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return LODE_ETIMEOUT;
        ssize_t r = recv(fd, p, n, 0);
        if (r == 0)
            return LODE_ECLOSED;
        if (r < 0)
            return errno == ECONNRESET ? LODE_ECLOSED : -errno;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads one frame; the RpcError message (if any) goes to msg. */
static int raw_read_frame(int fd, struct cmn_rpc_header *h, char *msg, size_t msg_size)
{
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    int rc = read_full(fd, hdr, sizeof(hdr), 3000);
    if (rc)
        return rc;
    rc = cmn_rpc_header_unpack(hdr, 1u << 20, h, NULL);
    if (rc)
        return rc;
    size_t n = (size_t)h->body_len + h->payload_len;
    uint8_t *body = malloc(n + 1);
    rc = read_full(fd, body, n, 3000);
    if (msg)
        msg[0] = '\0';
    if (rc == 0 && msg && (h->kind == CMN_RPC_PROTO_ERROR || h->kind == CMN_RPC_AUTH_FAIL)) {
        Lode__RpcError *e = lode__rpc_error__unpack(NULL, h->body_len, body);
        if (e) {
            snprintf(msg, msg_size, "%s", e->message);
            lode__rpc_error__free_unpacked(e, NULL);
        }
    }
    free(body);
    return rc;
}

static int raw_send(int fd, const void *data, size_t len)
{
    return send(fd, data, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* After the error frame the server must close: the next read sees end of stream. */
static int raw_expect_eof(int fd)
{
    uint8_t b[256];
    for (;;) {
        int rc = read_full(fd, b, 1, 4000);
        if (rc)
            return rc;
    }
}

static const char *peer_addr;    /* server A */

static int ping_ok(const char *addr, const char *what)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = cmn_rpc_sync_connect(addr, secret, SECRET_LEN, 2000, &c, &err);
    if (rc) {
        diag("%s: connect: %s", what, cmn_err_text(&err));
        return 0;
    }
    Lode__PingRequest req = LODE__PING_REQUEST__INIT;
    req.payload.data = (uint8_t *)"x";
    req.payload.len = 1;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    rc = cmn_rpc_sync_call(c, CMN_RPC_PING, 0, &req.base, 2000, &res);
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    return rc == 0;
}

/* ---- blocking client ------------------------------------------------------------------- */

static void test_sync_basic(const char *addr)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(cmn_rpc_sync_connect(addr, secret, SECRET_LEN, 2000, &c, &err), 0,
           "sync client connects and authenticates");
    if (!c)
        tap_bail("cannot connect: %s", cmn_err_text(&err));
    is_str(cmn_rpc_sync_address(c), addr, "address is kept");
    ok(cmn_rpc_sync_fd(c) >= 0, "fd exposed");

    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);

    Lode__PingRequest ping = LODE__PING_REQUEST__INIT;
    ping.payload.data = (uint8_t *)"ping-payload";
    ping.payload.len = 12;
    is_int(cmn_rpc_sync_call(c, CMN_RPC_PING, 0, &ping.base, 2000, &res), 0, "PING answered");
    Lode__PingResponse *pr = lode__ping_response__unpack(NULL, res.body.len, res.body.data);
    ok(pr && pr->payload.len == 12 && memcmp(pr->payload.data, "ping-payload", 12) == 0,
       "PING echoes the payload");
    ok(pr && strcmp(pr->service, "test-svc") == 0 && strcmp(pr->version, PACKAGE_VERSION) == 0,
       "PING names service and version");
    if (pr)
        lode__ping_response__free_unpacked(pr, NULL);

    Lode__NameRequest name = LODE__NAME_REQUEST__INIT;
    name.name = (char *)"hello-echo";
    is_int(cmn_rpc_sync_call(c, ECHO_METHOD, 0, &name.base, 2000, &res), 0, "echo call succeeds");
    Lode__NameRequest *back = lode__name_request__unpack(NULL, res.body.len, res.body.data);
    ok(back && strcmp(back->name, "hello-echo") == 0, "echo returns the request body");
    if (back)
        lode__name_request__free_unpacked(back, NULL);

    Lode__ObjectGetRequest og = LODE__OBJECT_GET_REQUEST__INIT;
    is_int(cmn_rpc_sync_call(c, ERROR_METHOD, 0, &og.base, 2000, &res), LODE_ENOTLEADER,
           "error reply carries its status");
    is_str(res.leader_address, "127.0.0.1:4242", "leader address decoded");
    is_int(res.leader_id, 7, "leader id decoded");
    ok(strstr(res.message, "not the leader (asked by 127.0.0.1:") != NULL,
       "message decoded and the server saw our address (%s)", res.message);
    is_int(res.body.len, 0, "no body on error");

    Lode__Empty empty = LODE__EMPTY__INIT;
    is_int(cmn_rpc_sync_call(c, 999, 0, &empty.base, 2000, &res), LODE_ENOMETHOD,
           "unknown method: LODE_ENOMETHOD");
    ok(strstr(res.message, "999") != NULL, "message names the method (%s)", res.message);
    is_int(cmn_rpc_sync_call(c, CMN_RPC_PING, 0, &ping.base, 2000, &res), 0,
           "connection still usable after an unknown method");

    is_int(cmn_rpc_sync_call(c, FLAGS_METHOD, CMN_RPC_FLAG_STALE_OK, &empty.base, 2000, &res), 0,
           "flags call");
    Lode__MetaStatusResponse *ms = lode__meta_status_response__unpack(NULL, res.body.len,
                                                                      res.body.data);
    ok(ms && strcmp(ms->role, "stale") == 0, "flags reach the handler");
    if (ms)
        lode__meta_status_response__free_unpacked(ms, NULL);

    /* A frame with a raw payload, built by hand: body and payload both come back. */
    struct cmn_buf f;
    cmn_buf_init(&f);
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .method = ECHO_METHOD, .request_id = 777, .body_len = 4,
                               .payload_len = 70000};
    uint8_t *payload = malloc(70000);
    for (int i = 0; i < 70000; i++)
        payload[i] = (uint8_t)(i * 13);
    cmn_rpc_frame_append(&f, &h, "\x0a\x02hi", payload);
    is_int(cmn_rpc_sync_send_raw(c, f.data, f.len), 0, "raw frame with payload sent");
    is_int(cmn_rpc_sync_recv(c, 2000, &res), 0, "reply received");
    ok(res.request_id == 777 && res.body.len == 4 && res.payload.len == 70000 &&
           memcmp(res.payload.data, payload, 70000) == 0,
       "payload echoed intact next to the body");
    free(payload);
    cmn_buf_free(&f);

    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
}

static void test_sync_pipelining(const char *addr)
{
    struct cmn_rpc_sync *c = NULL;
    if (cmn_rpc_sync_connect(addr, secret, SECRET_LEN, 2000, &c, NULL))
        tap_bail("connect failed");
    enum { N = 100 };
    uint64_t ids[N];
    int sent_ok = 1;
    for (int i = 0; i < N; i++) {
        Lode__BucketListRequest req = LODE__BUCKET_LIST_REQUEST__INIT;
        char owner[16];
        snprintf(owner, sizeof(owner), "%d", (N - i) / 2);  /* early requests wait longest */
        req.owner = owner;
        if (cmn_rpc_sync_send(c, DELAY_METHOD, 0, &req.base, &ids[i]))
            sent_ok = 0;
    }
    ok(sent_ok, "100 delayed requests sent without waiting");
    int seen[N] = {0};
    int got = 0, out_of_order = 0, bodies_ok = 1;
    uint64_t prev = 0;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    for (int k = 0; k < N; k++) {
        if (cmn_rpc_sync_recv(c, 3000, &res) != 0)
            break;
        int i = -1;
        for (int j = 0; j < N; j++)
            if (ids[j] == res.request_id)
                i = j;
        if (i < 0 || seen[i]++)
            break;
        got++;
        if (res.request_id < prev)
            out_of_order = 1;
        prev = res.request_id;
        Lode__BucketListRequest *b = lode__bucket_list_request__unpack(NULL, res.body.len,
                                                                       res.body.data);
        char want[16];
        snprintf(want, sizeof(want), "%d", (N - i) / 2);
        if (!b || strcmp(b->owner, want) != 0)
            bodies_ok = 0;
        if (b)
            lode__bucket_list_request__free_unpacked(b, NULL);
    }
    is_int(got, N, "each of the 100 replies arrived exactly once");
    ok(out_of_order, "replies came out of order (pipelined, not serialised)");
    ok(bodies_ok, "each reply matches its own request");

    /* Per-call timeout on the blocking client. */
    Lode__Empty empty = LODE__EMPTY__INIT;
    uint64_t t0 = cmn_mono_ms();
    is_int(cmn_rpc_sync_call(c, HOLD_METHOD, 0, &empty.base, 200, &res), LODE_ETIMEOUT,
           "held call times out");
    uint64_t took = cmn_mono_ms() - t0;
    ok(took >= 190 && took < 2000, "timeout took %llu ms", (unsigned long long)took);
    ok(strstr(res.message, "no reply within 200 ms") != NULL, "timeout message (%s)", res.message);
    is_int(cmn_rpc_sync_call(c, CMN_RPC_PING, 0, &empty.base, 200, &res), LODE_ECLOSED,
           "connection is unusable after a transport timeout");
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
}

static void test_sync_wrong_secret(const char *addr)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    static const char bad[] = "not-the-secret";
    is_int(cmn_rpc_sync_connect(addr, bad, sizeof(bad) - 1, 2000, &c, &err), LODE_EAUTH,
           "wrong secret: LODE_EAUTH");
    ok(c == NULL, "no connection returned");
    ok(strstr(err.msg, "wrong cluster secret") != NULL, "message says why (%s)", err.msg);
    ok(ping_ok(addr, "after wrong secret"), "server keeps serving after a wrong secret");

    /* Mutual: a server with another secret fails the client's check of AUTH_OK... but it
     * already rejects the client's MAC first; the client-side check is exercised by a peer
     * that answers AUTH with a made-up AUTH_OK (below, in the fake server test). */
}

/* A fake server that answers AUTH with an AUTH_OK carrying a wrong MAC: the client must
 * refuse it (mutual authentication). */
struct fake_srv {
    int lfd;
    int port;
};

static void *fake_srv_main(void *arg)
{
    struct fake_srv *fs = arg;
    int fd = accept(fs->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct cmn_buf f;
    cmn_buf_init(&f);
    uint8_t nonce[CMN_RPC_NONCE_SIZE] = {1, 2, 3};
    struct cmn_rpc_header h = {.version = 1, .kind = CMN_RPC_HELLO, .body_len = sizeof(nonce)};
    cmn_rpc_frame_append(&f, &h, nonce, NULL);
    raw_send(fd, f.data, f.len);
    struct cmn_rpc_header in;
    raw_read_frame(fd, &in, NULL, 0);
    uint8_t mac[CMN_HMAC_SIZE];
    memset(mac, 0x42, sizeof(mac));
    cmn_buf_reset(&f);
    h.kind = CMN_RPC_AUTH_OK;
    h.body_len = sizeof(mac);
    cmn_rpc_frame_append(&f, &h, mac, NULL);
    raw_send(fd, f.data, f.len);
    uint8_t b[64];
    while (recv(fd, b, sizeof(b), 0) > 0) {
    }
    close(fd);
    cmn_buf_free(&f);
    return NULL;
}

static void test_sync_impostor_server(void)
{
    struct fake_srv fs;
    fs.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    socklen_t sl = sizeof(sin);
    if (bind(fs.lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fs.lfd, 4) ||
        getsockname(fs.lfd, (struct sockaddr *)&sin, &sl))
        tap_bail("fake server: %s", strerror(errno));
    fs.port = ntohs(sin.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, fake_srv_main, &fs);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", fs.port);
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(cmn_rpc_sync_connect(addr, secret, SECRET_LEN, 2000, &c, &err), LODE_EAUTH,
           "server that cannot prove the secret: LODE_EAUTH on the client");
    ok(strstr(err.msg, "did not prove") != NULL, "message says the server failed (%s)", err.msg);
    pthread_join(t, NULL);
    close(fs.lfd);
}

/* ---- hostile input --------------------------------------------------------------------- */

static void expect_proto_error(int fd, int status, const char *needle, const char *what)
{
    struct cmn_rpc_header h;
    char msg[512];
    int rc = raw_read_frame(fd, &h, msg, sizeof(msg));
    ok(rc == 0 && h.kind == CMN_RPC_PROTO_ERROR && h.status == status,
       "%s: PROTO_ERROR with %s", what, lode_errname(status));
    if (rc == 0 && h.kind == CMN_RPC_PROTO_ERROR)
        ok(strstr(msg, needle) != NULL, "%s: message is clear (%s)", what, msg);
    else
        ok(0, "%s: got rc %d kind %u", what, rc, rc == 0 ? h.kind : 0);
    is_int(raw_expect_eof(fd), LODE_ECLOSED, "%s: then the server closes", what);
}

static int raw_connect_hello(const char *addr)
{
    int fd = raw_connect(addr);
    struct cmn_rpc_header h;
    if (raw_read_frame(fd, &h, NULL, 0) || h.kind != CMN_RPC_HELLO || h.body_len != 32)
        tap_bail("no HELLO from %s", addr);
    return fd;
}

static void test_hostile_preauth(const char *addr)
{
    uint8_t junk[256];
    cmn_random_bytes(junk, sizeof(junk));
    junk[0] = 0;                 /* never accidentally "LODE" */

    int fd = raw_connect_hello(addr);
    raw_send(fd, junk, sizeof(junk));
    expect_proto_error(fd, LODE_EBADMSG, "magic", "random bytes before auth");
    close(fd);
    ok(ping_ok(addr, "after random bytes"), "server serves a fresh connection after random bytes");

    fd = raw_connect_hello(addr);
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    struct cmn_rpc_header h = {.version = 1, .kind = CMN_RPC_REQUEST, .method = CMN_RPC_PING,
                               .request_id = 1};
    cmn_rpc_header_pack(&h, hdr);
    raw_send(fd, hdr, sizeof(hdr));
    expect_proto_error(fd, LODE_EAUTH, "before authentication", "REQUEST before AUTH");
    close(fd);
    ok(ping_ok(addr, "after request before auth"), "server serves after a REQUEST before AUTH");

    fd = raw_connect_hello(addr);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_AUTH, .body_len = 5u << 20};
    cmn_rpc_header_pack(&h, hdr);
    raw_send(fd, hdr, sizeof(hdr));
    expect_proto_error(fd, LODE_EFRAMETOOBIG, "exceeds the limit", "oversized length");
    close(fd);
    ok(ping_ok(addr, "after oversized length"), "server serves after an oversized length");

    fd = raw_connect_hello(addr);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_AUTH, .body_len = 10};
    cmn_rpc_header_pack(&h, hdr);
    raw_send(fd, hdr, sizeof(hdr));
    raw_send(fd, "0123456789", 10);
    expect_proto_error(fd, LODE_EBADMSG, "malformed AUTH", "short AUTH body");
    close(fd);

    fd = raw_connect_hello(addr);
    h = (struct cmn_rpc_header){.version = 9, .kind = CMN_RPC_AUTH};
    cmn_rpc_header_pack(&h, hdr);
    raw_send(fd, hdr, sizeof(hdr));
    expect_proto_error(fd, LODE_EVERSION, "version 9", "future protocol version");
    close(fd);

    fd = raw_connect_hello(addr);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_RESPONSE};
    cmn_rpc_header_pack(&h, hdr);
    raw_send(fd, hdr, sizeof(hdr));
    expect_proto_error(fd, LODE_EBADMSG, "unexpected RESPONSE", "RESPONSE during handshake");
    close(fd);

    /* Truncated frame: a header announcing 100 bytes, 10 of them, then end of stream. */
    fd = raw_connect_hello(addr);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_AUTH, .body_len = 100};
    cmn_rpc_header_pack(&h, hdr);
    raw_send(fd, hdr, sizeof(hdr));
    raw_send(fd, "0123456789", 10);
    shutdown(fd, SHUT_WR);
    is_int(raw_expect_eof(fd), LODE_ECLOSED, "truncated frame: the server closes");
    close(fd);
    ok(ping_ok(addr, "after truncated frame"), "server serves after a truncated frame");

    /* Silent peer: the handshake timeout (300 ms here) closes it. */
    fd = raw_connect_hello(addr);
    uint64_t t0 = cmn_mono_ms();
    expect_proto_error(fd, LODE_ETIMEOUT, "handshake not completed", "silent peer");
    uint64_t took = cmn_mono_ms() - t0;
    ok(took >= 250 && took < 3000, "handshake timeout after %llu ms", (unsigned long long)took);
    close(fd);
    ok(ping_ok(addr, "after silent peer"), "server serves after a silent peer");
}

static void test_hostile_postauth(const char *addr)
{
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    struct cmn_rpc_sync *c = NULL;

    cmn_rpc_sync_connect(addr, secret, SECRET_LEN, 2000, &c, NULL);
    uint8_t junk[64];
    memset(junk, 0xEE, sizeof(junk));
    cmn_rpc_sync_send_raw(c, junk, sizeof(junk));
    is_int(cmn_rpc_sync_recv(c, 2000, &res), LODE_EBADMSG,
           "garbage after auth: PROTO_ERROR LODE_EBADMSG");
    ok(strstr(res.message, "magic") != NULL, "client sees the reason (%s)", res.message);
    cmn_rpc_sync_close(c);
    ok(ping_ok(addr, "after garbage"), "server serves after garbage on an authenticated link");

    cmn_rpc_sync_connect(addr, secret, SECRET_LEN, 2000, &c, NULL);
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    struct cmn_rpc_header h = {.version = 1, .kind = CMN_RPC_REQUEST, .method = ECHO_METHOD,
                               .request_id = 5, .body_len = 0xFFFFFFFFu};
    cmn_rpc_header_pack(&h, hdr);
    cmn_rpc_sync_send_raw(c, hdr, sizeof(hdr));
    is_int(cmn_rpc_sync_recv(c, 2000, &res), LODE_EFRAMETOOBIG, "4 GiB length: LODE_EFRAMETOOBIG");
    cmn_rpc_sync_close(c);

    cmn_rpc_sync_connect(addr, secret, SECRET_LEN, 2000, &c, NULL);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_AUTH, .body_len = 0};
    cmn_rpc_header_pack(&h, hdr);
    cmn_rpc_sync_send_raw(c, hdr, sizeof(hdr));
    is_int(cmn_rpc_sync_recv(c, 2000, &res), LODE_EBADMSG, "AUTH after auth: LODE_EBADMSG");
    ok(strstr(res.message, "unexpected AUTH") != NULL, "message (%s)", res.message);
    cmn_rpc_sync_close(c);

    /* Truncated request after auth, then the client goes away. */
    cmn_rpc_sync_connect(addr, secret, SECRET_LEN, 2000, &c, NULL);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_REQUEST, .method = ECHO_METHOD,
                                .request_id = 6, .body_len = 50};
    cmn_rpc_header_pack(&h, hdr);
    cmn_rpc_sync_send_raw(c, hdr, sizeof(hdr));
    cmn_rpc_sync_send_raw(c, "abc", 3);
    cmn_rpc_sync_close(c);
    ok(ping_ok(addr, "after truncated request"), "server serves after a truncated request");

    cmn_rpc_result_free(&res);
}

/* ---- asynchronous client --------------------------------------------------------------- */

struct acall {
    int fired;
    int status;
    uint64_t id;
    int order;
    char message[512];
    char leader[256];
    uint64_t leader_id;
    struct cmn_buf body;
};

static int g_order;

static void on_result(void *data, const struct cmn_rpc_result *res)
{
    struct acall *a = data;
    a->fired++;
    a->status = res->status;
    a->id = res->request_id;
    a->order = g_order++;
    snprintf(a->message, sizeof(a->message), "%s", res->message);
    snprintf(a->leader, sizeof(a->leader), "%s", res->leader_address);
    a->leader_id = res->leader_id;
    cmn_buf_reset(&a->body);
    cmn_buf_append(&a->body, res->body.data, res->body.len);
}

static int all_fired(struct acall *calls, int n)
{
    for (int i = 0; i < n; i++)
        if (!calls[i].fired)
            return 0;
    return 1;
}

static void run_until(uv_loop_t *loop, struct acall *calls, int n, int *flag)
{
    uint64_t limit = cmn_mono_ms() + 8000;
    while ((flag ? !*flag : !all_fired(calls, n)) && cmn_mono_ms() < limit)
        uv_run(loop, UV_RUN_ONCE);
}

static void free_acalls(struct acall *calls, int n)
{
    for (int i = 0; i < n; i++)
        cmn_buf_free(&calls[i].body);
}

static void on_closed_flag(void *data)
{
    (*(int *)data)++;
}

static struct cmn_rpc_client *make_client(uv_loop_t *loop, const char *addr, const char *sec)
{
    struct cmn_rpc_client_config cfg = {.address = addr, .secret = sec, .secret_len = strlen(sec),
                                        .connect_timeout_ms = 2000};
    struct cmn_rpc_client *cli = NULL;
    if (cmn_rpc_client_create(loop, &cfg, &cli))
        tap_bail("client create failed");
    return cli;
}

static void close_client(uv_loop_t *loop, struct cmn_rpc_client *cli)
{
    int closed = 0;
    cmn_rpc_client_close(cli, on_closed_flag, &closed);
    run_until(loop, NULL, 0, &closed);
    is_int(closed, 1, "client close callback ran once");
}

static void test_async_basic(uv_loop_t *loop, const char *addr)
{
    struct cmn_rpc_client *cli = make_client(loop, addr, secret);
    struct acall a[4] = {0};
    Lode__PingRequest ping = LODE__PING_REQUEST__INIT;
    ping.payload.data = (uint8_t *)"async";
    ping.payload.len = 5;
    Lode__NameRequest name = LODE__NAME_REQUEST__INIT;
    name.name = (char *)"async-echo";
    Lode__Empty empty = LODE__EMPTY__INIT;
    /* Submitted before any connection exists: queued until authenticated. */
    is_int(cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &ping.base, 2000, on_result, &a[0]), 0,
           "async PING submitted");
    is_int(cmn_rpc_client_call(cli, ECHO_METHOD, 0, &name.base, 2000, on_result, &a[1]), 0,
           "async echo submitted");
    is_int(cmn_rpc_client_call(cli, ERROR_METHOD, 0, &empty.base, 2000, on_result, &a[2]), 0,
           "async error call submitted");
    is_int(cmn_rpc_client_call(cli, 999, 0, &empty.base, 2000, on_result, &a[3]), 0,
           "async unknown method submitted");
    run_until(loop, a, 4, NULL);

    is_int(a[0].status, 0, "async PING ok");
    Lode__PingResponse *pr = lode__ping_response__unpack(NULL, a[0].body.len, a[0].body.data);
    ok(pr && pr->payload.len == 5 && memcmp(pr->payload.data, "async", 5) == 0,
       "async PING payload echoed");
    if (pr)
        lode__ping_response__free_unpacked(pr, NULL);
    is_int(a[1].status, 0, "async echo ok");
    Lode__NameRequest *back = lode__name_request__unpack(NULL, a[1].body.len, a[1].body.data);
    ok(back && strcmp(back->name, "async-echo") == 0, "async echo body");
    if (back)
        lode__name_request__free_unpacked(back, NULL);
    is_int(a[2].status, LODE_ENOTLEADER, "async error status");
    ok(strcmp(a[2].leader, "127.0.0.1:4242") == 0 && a[2].leader_id == 7 &&
           strstr(a[2].message, "not the leader"),
       "async RpcError decoded (%s, %s)", a[2].leader, a[2].message);
    is_int(a[3].status, LODE_ENOMETHOD, "async unknown method: LODE_ENOMETHOD");
    ok(a[0].fired == 1 && a[1].fired == 1 && a[2].fired == 1 && a[3].fired == 1,
       "each callback fired exactly once");
    ok(a[0].id && a[0].id != a[1].id, "request ids are distinct");

    /* 100 in flight, replies in reverse-ish order. */
    enum { N = 100 };
    struct acall p[N];
    memset(p, 0, sizeof(p));
    char owners[N][16];
    int submitted = 1;
    for (int i = 0; i < N; i++) {
        Lode__BucketListRequest req = LODE__BUCKET_LIST_REQUEST__INIT;
        snprintf(owners[i], sizeof(owners[i]), "%d", (N - i) / 2);
        req.owner = owners[i];
        if (cmn_rpc_client_call(cli, DELAY_METHOD, 0, &req.base, 5000, on_result, &p[i]))
            submitted = 0;
    }
    ok(submitted, "100 async calls submitted");
    run_until(loop, p, N, NULL);
    int once = 1, ok_status = 1, bodies = 1, reordered = 0;
    for (int i = 0; i < N; i++) {
        if (p[i].fired != 1)
            once = 0;
        if (p[i].status != 0)
            ok_status = 0;
        Lode__BucketListRequest *b = lode__bucket_list_request__unpack(NULL, p[i].body.len,
                                                                       p[i].body.data);
        if (!b || strcmp(b->owner, owners[i]) != 0)
            bodies = 0;
        if (b)
            lode__bucket_list_request__free_unpacked(b, NULL);
        if (i > 0 && p[i].order < p[i - 1].order)
            reordered = 1;
    }
    ok(once, "every one of 100 callbacks fired exactly once");
    ok(ok_status, "all 100 succeeded");
    ok(bodies, "each reply matched its call");
    ok(reordered, "completions came out of submission order");

    /* Per-call timeout; the connection stays usable. */
    struct acall t[2] = {0};
    uint64_t t0 = cmn_mono_ms();
    cmn_rpc_client_call(cli, HOLD_METHOD, 0, &empty.base, 150, on_result, &t[0]);
    run_until(loop, t, 1, NULL);
    uint64_t took = cmn_mono_ms() - t0;
    is_int(t[0].status, LODE_ETIMEOUT, "async per-call timeout: LODE_ETIMEOUT");
    ok(took >= 140 && took < 2000, "timed out after %llu ms", (unsigned long long)took);
    ok(strstr(t[0].message, "no reply within 150 ms") != NULL, "timeout message (%s)",
       t[0].message);
    cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &ping.base, 2000, on_result, &t[1]);
    run_until(loop, t + 1, 1, NULL);
    is_int(t[1].status, 0, "connection still works after a call timed out");

    close_client(loop, cli);
    free_acalls(a, 4);
    free_acalls(p, N);
    free_acalls(t, 2);
}

static void test_async_failures(uv_loop_t *loop, const char *addr)
{
    Lode__Empty empty = LODE__EMPTY__INIT;

    /* Wrong secret: every queued call fails with LODE_EAUTH, once. */
    struct cmn_rpc_client *cli = make_client(loop, addr, "wrong-secret");
    struct acall w[3] = {0};
    for (int i = 0; i < 3; i++)
        cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &empty.base, 3000, on_result, &w[i]);
    run_until(loop, w, 3, NULL);
    ok(w[0].status == LODE_EAUTH && w[1].status == LODE_EAUTH && w[2].status == LODE_EAUTH,
       "wrong secret: all queued calls fail with LODE_EAUTH");
    ok(strstr(w[0].message, "wrong cluster secret") != NULL, "message says why (%s)",
       w[0].message);
    ok(w[0].fired == 1 && w[1].fired == 1 && w[2].fired == 1, "exactly once each");
    close_client(loop, cli);
    ok(ping_ok(addr, "after async wrong secret"), "server still serves");
    free_acalls(w, 3);

    /* Connection refused. */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    socklen_t sl = sizeof(sin);
    bind(s, (struct sockaddr *)&sin, sizeof(sin));
    getsockname(s, (struct sockaddr *)&sin, &sl);
    close(s);
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", ntohs(sin.sin_port));
    cli = make_client(loop, dead, secret);
    struct acall r[2] = {0};
    cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &empty.base, 3000, on_result, &r[0]);
    run_until(loop, r, 1, NULL);
    is_int(r[0].status, -ECONNREFUSED, "refused connection: -ECONNREFUSED");
    ok(strstr(r[0].message, dead) != NULL, "message names the address (%s)", r[0].message);
    /* The next call tries again (and fails again, as nothing listens). */
    cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &empty.base, 3000, on_result, &r[1]);
    run_until(loop, r + 1, 1, NULL);
    is_int(r[1].status, -ECONNREFUSED, "next call reconnects (and is refused again)");
    close_client(loop, cli);
    free_acalls(r, 2);
}

static void test_async_server_close(uv_loop_t *loop)
{
    struct srv_ctx b = {0};
    if (start_server(&b, loop, "127.0.0.1:0", secret, 1000))
        tap_bail("server B");
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", b.addr);
    struct cmn_rpc_client *cli = make_client(loop, addr, secret);
    Lode__Empty empty = LODE__EMPTY__INIT;
    enum { N = 5 };
    struct acall h[N];
    memset(h, 0, sizeof(h));
    for (int i = 0; i < N; i++)
        cmn_rpc_client_call(cli, HOLD_METHOD, 0, &empty.base, 5000, on_result, &h[i]);
    uint64_t limit = cmn_mono_ms() + 5000;
    while (b.n_held < N && cmn_mono_ms() < limit)
        uv_run(loop, UV_RUN_ONCE);
    is_int(b.n_held, N, "server holds 5 calls");
    int orphaned_before = 0;
    for (struct held *x = b.held; x; x = x->next)
        orphaned_before += cmn_rpc_call_orphaned(x->call);
    is_int(orphaned_before, 0, "held calls are not orphaned while connected");

    int srv_closed = 0;
    cmn_rpc_server_close(b.srv, on_closed_flag, &srv_closed);
    run_until(loop, h, N, NULL);
    int all_closed = 1;
    for (int i = 0; i < N; i++)
        if (h[i].status != LODE_ECLOSED || h[i].fired != 1)
            all_closed = 0;
    ok(all_closed, "server close with calls in flight: clients get LODE_ECLOSED once each");
    ok(strstr(h[0].message, "closed") != NULL, "message (%s)", h[0].message);
    run_until(loop, NULL, 0, &srv_closed);
    is_int(srv_closed, 1, "server close callback ran");
    int replies_closed = 0;
    is_int(release_held(&b, &replies_closed), N, "held calls outlive the server as orphans");
    ok(replies_closed, "replying to an orphaned call returns LODE_ECLOSED and frees it");

    /* A new server on the same port: the same client reconnects on its next call. */
    struct srv_ctx b2 = {0};
    if (start_server(&b2, loop, addr, secret, 1000))
        tap_bail("server B2 on %s", addr);
    struct acall again = {0};
    cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &empty.base, 3000, on_result, &again);
    run_until(loop, &again, 1, NULL);
    is_int(again.status, 0, "client reconnects after the server came back");

    /* Closing the client with calls pending fails them with LODE_ECLOSED. */
    struct acall pend[3] = {0};
    for (int i = 0; i < 3; i++)
        cmn_rpc_client_call(cli, HOLD_METHOD, 0, &empty.base, 5000, on_result, &pend[i]);
    int closed = 0;
    cmn_rpc_client_close(cli, on_closed_flag, &closed);
    ok(pend[0].status == LODE_ECLOSED && pend[1].status == LODE_ECLOSED &&
           pend[2].status == LODE_ECLOSED && pend[0].fired == 1,
       "client close fails pending calls with LODE_ECLOSED");
    run_until(loop, NULL, 0, &closed);
    is_int(closed, 1, "client memory released");
    srv_closed = 0;
    release_held(&b2, NULL);
    cmn_rpc_server_close(b2.srv, on_closed_flag, &srv_closed);
    run_until(loop, NULL, 0, &srv_closed);
    release_held(&b2, NULL);
    free_acalls(h, N);
    free_acalls(&again, 1);
    free_acalls(pend, 3);
}

/* IPv6 loopback, where the host has it: "[::1]:port" through both clients. */
static void test_ipv6(uv_loop_t *loop)
{
    struct srv_ctx b = {0};
    struct cmn_rpc_server_config cfg = {.service = "test-svc", .secret = secret,
                                        .secret_len = SECRET_LEN, .handler = test_handler,
                                        .data = &b};
    b.loop = loop;
    if (cmn_rpc_server_create(loop, &cfg, &b.srv))
        tap_bail("server create");
    if (cmn_rpc_server_listen(b.srv, "[::1]:0", NULL) != 0) {
        diag("no IPv6 loopback here: IPv6 checks skipped");
    } else {
        char addr[64];
        snprintf(addr, sizeof(addr), "[::1]:%d", cmn_rpc_server_port(b.srv));
        struct cmn_rpc_client *cli = make_client(loop, addr, secret);
        struct acall a = {0};
        Lode__Empty empty = LODE__EMPTY__INIT;
        cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &empty.base, 3000, on_result, &a);
        run_until(loop, &a, 1, NULL);
        is_int(a.status, 0, "async client over IPv6 (%s)", addr);
        close_client(loop, cli);
        free_acalls(&a, 1);
    }
    int closed = 0;
    cmn_rpc_server_close(b.srv, on_closed_flag, &closed);
    run_until(loop, NULL, 0, &closed);
}

static void on_wake(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop for about `ms` (calls may have long timeouts, so a timer wakes it). */
static void run_for(uv_loop_t *loop, unsigned ms)
{
    int done = 0;
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &done;
    uv_timer_start(&t, on_wake, ms, 0);
    while (!done)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_backpressure(uv_loop_t *loop)
{
    struct srv_ctx b = {0};
    if (start_server(&b, loop, "127.0.0.1:0", secret, 1000))
        tap_bail("server for backpressure");
    struct cmn_rpc_client *cli = make_client(loop, b.addr, secret);
    /* Far more than one read's worth: the server reads 64 KiB (2048 of these 32-byte
     * requests) at a time and stops reading once 1024 are unanswered, so it must hold
     * between 1024 and 1024 + 2047 of them, whatever the timing. */
    enum { N = 8000 };
    struct acall *c = calloc(N, sizeof(*c));
    Lode__Empty empty = LODE__EMPTY__INIT;
    for (int i = 0; i < N; i++)
        cmn_rpc_client_call(cli, HOLD_METHOD, 0, &empty.base, 20000, on_result, &c[i]);
    /* Wait until the server has taken what it will take, however slow the machine. */
    uint64_t limit = cmn_mono_ms() + 5000;
    while (b.n_held < 1024 && cmn_mono_ms() < limit)
        run_for(loop, 20);
    run_for(loop, 200);
    unsigned first = b.n_held;
    ok(first >= 1024 && first < 1024 + 2048,
       "server stopped reading at %u unanswered calls (of %d sent)", first, N);
    release_held(&b, NULL);
    unsigned total = first;
    for (int round = 0; round < 100 && total < N; round++) {
        run_for(loop, 50);
        total += b.n_held;
        release_held(&b, NULL);
    }
    is_int(total, N, "reading resumed as calls were answered; every call arrived");
    run_until(loop, c, N, NULL);
    int once = 1;
    for (int i = 0; i < N; i++)
        if (c[i].fired != 1 || c[i].status != LODE_EINTERNAL)
            once = 0;
    ok(once, "every held call got its (error) reply exactly once");
    close_client(loop, cli);
    free_acalls(c, N);
    free(c);
    int closed = 0;
    cmn_rpc_server_close(b.srv, on_closed_flag, &closed);
    run_until(loop, NULL, 0, &closed);
}

static void test_idle_timeout(uv_loop_t *loop)
{
    struct cmn_metrics *m = NULL;
    cmn_metrics_create(&m);
    struct srv_ctx b = {0};
    if (start_server_cfg(&b, loop, "127.0.0.1:0", secret, 1000, 400, m))
        tap_bail("server for idle timeout");
    struct cmn_gauge *open = cmn_metrics_gauge(m, "lode_rpc_open_connections",
                                               "service=\"test-svc\"", "");
    struct cmn_rpc_client *cli = make_client(loop, b.addr, secret);
    Lode__Empty empty = LODE__EMPTY__INIT;
    struct acall a[2] = {0};
    cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &empty.base, 2000, on_result, &a[0]);
    run_until(loop, a, 1, NULL);
    ok(a[0].status == 0 && cmn_gauge_value(open) == 1, "one connection open after a call");
    run_for(loop, 100);
    ok(cmn_gauge_value(open) == 1, "still open before the idle timeout");
    run_for(loop, 1000);
    ok(cmn_gauge_value(open) == 0, "idle connection closed by the server");
    cmn_rpc_client_call(cli, CMN_RPC_PING, 0, &empty.base, 2000, on_result, &a[1]);
    run_until(loop, a + 1, 1, NULL);
    is_int(a[1].status, 0, "client reconnects transparently after an idle close");
    close_client(loop, cli);
    int closed = 0;
    cmn_rpc_server_close(b.srv, on_closed_flag, &closed);
    run_until(loop, NULL, 0, &closed);
    cmn_metrics_destroy(m);
    free_acalls(a, 2);
}

/* ---- meta client ----------------------------------------------------------------------- */

static void test_meta_client(struct srv_thread *st)
{
    struct cmn_meta_client *mc = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    char list[256];
    /* R first: it redirects to A, which is not even in the list. */
    snprintf(list, sizeof(list), "%s", st->r.addr);
    is_int(cmn_meta_client_create(list, secret, SECRET_LEN, &mc, &err), 0, "meta client created");
    ok(cmn_meta_client_leader(mc) == NULL, "no leader known at first");

    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    Lode__NameRequest name = LODE__NAME_REQUEST__INIT;
    name.name = (char *)"via-redirect";
    is_int(cmn_meta_client_call(mc, ECHO_METHOD, &name.base, 3000, &res), 0,
           "call follows the ENOTLEADER redirect");
    is_str(cmn_meta_client_leader(mc), st->a.addr, "leader is now the server that answered");
    Lode__NameRequest *back = lode__name_request__unpack(NULL, res.body.len, res.body.data);
    ok(back && strcmp(back->name, "via-redirect") == 0, "answer came from the leader");
    if (back)
        lode__name_request__free_unpacked(back, NULL);

    /* Mutations: (client_id, seq) stamped once and kept across retries. The first attempt
     * at A fails with ENOLEADER; the client backs off, tries R, is redirected to A again. */
    st->a.put_fail_first = 1;  /* set before any PUT reaches the server thread */
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__DeleteBucket del = LODE__DELETE_BUCKET__INIT;
    del.name = (char *)"b";
    cmd.op_case = LODE__COMMAND__OP_DELETE_BUCKET;
    cmd.delete_bucket = &del;
    uint64_t t0 = cmn_mono_ms();
    is_int(cmn_meta_client_call(mc, PUT_METHOD, &cmd.base, 5000, &res), 0,
           "mutation succeeds after ENOLEADER and a redirect");
    ok(cmn_mono_ms() - t0 >= 50, "the retry waited for a backoff");
    Lode__CommandResult *cr = lode__command_result__unpack(NULL, res.body.len, res.body.data);
    ok(cr && strcmp(cr->message, "same") == 0, "retry carried the same client_id and seq");
    is_int(cr ? cr->version : 0, 1, "first mutation has seq 1");
    if (cr)
        lode__command_result__free_unpacked(cr, NULL);
    ok(cmd.client_id.len == 0 && cmd.seq == 0, "caller's command is handed back unstamped");
    is_int(cmn_meta_client_call(mc, PUT_METHOD, &cmd.base, 5000, &res), 0, "second mutation");
    cr = lode__command_result__unpack(NULL, res.body.len, res.body.data);
    is_int(cr ? cr->version : 0, 2, "second mutation has seq 2");
    if (cr)
        lode__command_result__free_unpacked(cr, NULL);

    /* call_at: one replica, flags passed, no redirect. */
    Lode__Empty empty = LODE__EMPTY__INIT;
    is_int(cmn_meta_client_call_at(mc, st->a.addr, FLAGS_METHOD, CMN_RPC_FLAG_STALE_OK,
                                   &empty.base, 2000, &res), 0, "call_at succeeds");
    Lode__MetaStatusResponse *ms = lode__meta_status_response__unpack(NULL, res.body.len,
                                                                      res.body.data);
    ok(ms && strcmp(ms->role, "stale") == 0, "call_at passes STALE_OK");
    if (ms)
        lode__meta_status_response__free_unpacked(ms, NULL);
    is_int(cmn_meta_client_call_at(mc, st->r.addr, ECHO_METHOD, 0, &name.base, 2000, &res),
           LODE_ENOTLEADER, "call_at does not follow redirects");
    is_str(res.leader_address, st->a.addr, "but reports the leader");
    cmn_meta_client_destroy(mc);

    /* A cached connection the server closed meanwhile (idle timeout) is replaced on the
     * spot: the call stays with that replica instead of moving on to the next one (R, which
     * would redirect to A). */
    snprintf(list, sizeof(list), "%s,%s", st->idle.addr, st->r.addr);
    is_int(cmn_meta_client_create(list, secret, SECRET_LEN, &mc, &err), 0,
           "meta client with an idle-closing replica first");
    is_int(cmn_meta_client_call(mc, ECHO_METHOD, &name.base, 3000, &res), 0, "first call");
    is_str(cmn_meta_client_leader(mc), st->idle.addr, "answered by the first replica");
    usleep(400 * 1000);
    is_int(cmn_meta_client_call(mc, ECHO_METHOD, &name.base, 3000, &res), 0,
           "call after the server closed the idle connection");
    is_str(cmn_meta_client_leader(mc), st->idle.addr,
           "same replica, over a fresh connection (no failover for a stale connection)");
    cmn_meta_client_destroy(mc);

    /* Nothing listening anywhere: fails by the deadline, naming what it tried. */
    cmn_err_clear(&err);
    is_int(cmn_meta_client_create("127.0.0.1:1,127.0.0.1:2", secret, SECRET_LEN, &mc, &err), 0,
           "meta client for dead replicas");
    t0 = cmn_mono_ms();
    int rc = cmn_meta_client_call(mc, ECHO_METHOD, &name.base, 600, &res);
    uint64_t took = cmn_mono_ms() - t0;
    is_int(rc, -ECONNREFUSED, "all replicas down: last error returned");
    ok(took >= 500 && took < 2500, "kept trying until the deadline (%llu ms)",
       (unsigned long long)took);
    ok(strstr(res.message, "127.0.0.1:1") && strstr(res.message, "127.0.0.1:2") &&
           strstr(res.message, "refused"),
       "message lists the replicas and the last error (%s)", res.message);
    cmn_meta_client_destroy(mc);

    is_int(cmn_meta_client_create("", secret, SECRET_LEN, &mc, &err), LODE_ECONFIG,
           "empty replica list refused");
    is_int(cmn_meta_client_create("host-without-port", secret, SECRET_LEN, &mc, &err),
           LODE_ECONFIG, "address without port refused (%s)", err.msg);
    cmn_rpc_result_free(&res);
}

/* ---- main ------------------------------------------------------------------------------ */

static char tmpdir[512];

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

int main(void)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_rpc.XXXXXX", base && *base ? base : "/tmp");
    if (base && *base)
        mkdir(base, 0755);
    if (!mkdtemp(tmpdir))
        tap_bail("mkdtemp %s: %s", tmpdir, strerror(errno));
    char logpath[600];
    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    cmn_log_init("test_rpc", CMN_LOG_INFO);
    cmn_log_set_file(logpath);

    struct srv_thread st;
    memset(&st, 0, sizeof(st));
    sem_init(&st.ready, 0, 0);
    if (cmn_metrics_create(&st.metrics))
        tap_bail("metrics");
    pthread_create(&st.thread, NULL, srv_thread_main, &st);
    sem_wait(&st.ready);
    if (st.start_rc)
        tap_bail("servers did not start: %s", lode_strerror(st.start_rc));
    peer_addr = st.a.addr;

    test_sync_basic(st.a.addr);
    test_sync_pipelining(st.a.addr);
    test_sync_wrong_secret(st.a.addr);
    test_sync_impostor_server();
    test_hostile_preauth(st.a.addr);
    test_hostile_postauth(st.a.addr);

    uv_loop_t loop;
    uv_loop_init(&loop);
    test_async_basic(&loop, st.a.addr);
    test_async_failures(&loop, st.a.addr);
    test_async_server_close(&loop);
    test_backpressure(&loop);
    test_idle_timeout(&loop);
    test_ipv6(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "client loop closes with no handle left behind");

    test_meta_client(&st);

    uv_async_send(&st.stop);
    pthread_join(st.thread, NULL);
    is_int(st.loop_close_rc, 0, "server loop closes with no handle left behind");
    const char *lbl = "service=\"test-svc\"";
    ok(cmn_counter_value(cmn_metrics_counter(st.metrics, "lode_rpc_auth_failures_total", lbl, "")) >= 2,
       "auth failures counted");
    ok(cmn_counter_value(cmn_metrics_counter(st.metrics, "lode_rpc_protocol_errors_total", lbl, "")) >= 8,
       "protocol errors counted");
    ok(cmn_counter_value(cmn_metrics_counter(st.metrics, "lode_rpc_requests_total", lbl, "")) > 200,
       "requests counted");
    cmn_metrics_destroy(st.metrics);
    sem_destroy(&st.ready);

    cmn_log_set_file(NULL);
    ok(file_contains(logpath, "wrong cluster secret") &&
           file_contains(logpath, "peer 127.0.0.1:"),
       "bad peers are logged with their address");
    ok(file_contains(logpath, "middle of a frame"), "truncated frames are logged");
    ok(!file_contains(logpath, secret), "the secret never appears in the log");
    unlink(logpath);
    rmdir(tmpdir);
    return tap_done();
}
