/* The RPC layer end to end over loopback TCP: the blocking client, the meta client and
 * hostile input.
 *
 * A background thread runs the fixture's servers (rpc_fixture.h): A (the test handler), R
 * (answers everything with "not the leader, go to A") and one that closes idle
 * connections. The main thread talks to them with the blocking client, the meta client and
 * raw sockets for hostile input. The asynchronous client is in test_rpc_async.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/meta_client.h"
#include "common/rpc.h"
#include "common/rpc_sync.h"
#include "tests/tap.h"
#include "tests/unit/common/rpc_fixture.h"

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

/* ---- blocking client ------------------------------------------------------------------- */

static void test_sync_basic(const char *addr)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(cmn_rpc_sync_connect(addr, RF_SECRET, RF_SECRET_LEN, 2000, &c, &err), 0,
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
    if (cmn_rpc_sync_connect(addr, RF_SECRET, RF_SECRET_LEN, 2000, &c, NULL))
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
    ok(rf_ping_ok(addr, "after wrong secret"), "server keeps serving after a wrong secret");

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
    is_int(cmn_rpc_sync_connect(addr, RF_SECRET, RF_SECRET_LEN, 2000, &c, &err), LODE_EAUTH,
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
    ok(rf_ping_ok(addr, "after random bytes"), "server serves a fresh connection after random bytes");

    fd = raw_connect_hello(addr);
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    struct cmn_rpc_header h = {.version = 1, .kind = CMN_RPC_REQUEST, .method = CMN_RPC_PING,
                               .request_id = 1};
    cmn_rpc_header_pack(&h, hdr);
    raw_send(fd, hdr, sizeof(hdr));
    expect_proto_error(fd, LODE_EAUTH, "before authentication", "REQUEST before AUTH");
    close(fd);
    ok(rf_ping_ok(addr, "after request before auth"), "server serves after a REQUEST before AUTH");

    fd = raw_connect_hello(addr);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_AUTH, .body_len = 5u << 20};
    cmn_rpc_header_pack(&h, hdr);
    raw_send(fd, hdr, sizeof(hdr));
    expect_proto_error(fd, LODE_EFRAMETOOBIG, "exceeds the limit", "oversized length");
    close(fd);
    ok(rf_ping_ok(addr, "after oversized length"), "server serves after an oversized length");

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
    ok(rf_ping_ok(addr, "after truncated frame"), "server serves after a truncated frame");

    /* Silent peer: the handshake timeout (300 ms here) closes it. */
    fd = raw_connect_hello(addr);
    uint64_t t0 = cmn_mono_ms();
    expect_proto_error(fd, LODE_ETIMEOUT, "handshake not completed", "silent peer");
    uint64_t took = cmn_mono_ms() - t0;
    ok(took >= 250 && took < 3000, "handshake timeout after %llu ms", (unsigned long long)took);
    close(fd);
    ok(rf_ping_ok(addr, "after silent peer"), "server serves after a silent peer");
}

static void test_hostile_postauth(const char *addr)
{
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    struct cmn_rpc_sync *c = NULL;

    cmn_rpc_sync_connect(addr, RF_SECRET, RF_SECRET_LEN, 2000, &c, NULL);
    uint8_t junk[64];
    memset(junk, 0xEE, sizeof(junk));
    cmn_rpc_sync_send_raw(c, junk, sizeof(junk));
    is_int(cmn_rpc_sync_recv(c, 2000, &res), LODE_EBADMSG,
           "garbage after auth: PROTO_ERROR LODE_EBADMSG");
    ok(strstr(res.message, "magic") != NULL, "client sees the reason (%s)", res.message);
    cmn_rpc_sync_close(c);
    ok(rf_ping_ok(addr, "after garbage"), "server serves after garbage on an authenticated link");

    cmn_rpc_sync_connect(addr, RF_SECRET, RF_SECRET_LEN, 2000, &c, NULL);
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    struct cmn_rpc_header h = {.version = 1, .kind = CMN_RPC_REQUEST, .method = ECHO_METHOD,
                               .request_id = 5, .body_len = 0xFFFFFFFFu};
    cmn_rpc_header_pack(&h, hdr);
    cmn_rpc_sync_send_raw(c, hdr, sizeof(hdr));
    is_int(cmn_rpc_sync_recv(c, 2000, &res), LODE_EFRAMETOOBIG, "4 GiB length: LODE_EFRAMETOOBIG");
    cmn_rpc_sync_close(c);

    cmn_rpc_sync_connect(addr, RF_SECRET, RF_SECRET_LEN, 2000, &c, NULL);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_AUTH, .body_len = 0};
    cmn_rpc_header_pack(&h, hdr);
    cmn_rpc_sync_send_raw(c, hdr, sizeof(hdr));
    is_int(cmn_rpc_sync_recv(c, 2000, &res), LODE_EBADMSG, "AUTH after auth: LODE_EBADMSG");
    ok(strstr(res.message, "unexpected AUTH") != NULL, "message (%s)", res.message);
    cmn_rpc_sync_close(c);

    /* Truncated request after auth, then the client goes away. */
    cmn_rpc_sync_connect(addr, RF_SECRET, RF_SECRET_LEN, 2000, &c, NULL);
    h = (struct cmn_rpc_header){.version = 1, .kind = CMN_RPC_REQUEST, .method = ECHO_METHOD,
                                .request_id = 6, .body_len = 50};
    cmn_rpc_header_pack(&h, hdr);
    cmn_rpc_sync_send_raw(c, hdr, sizeof(hdr));
    cmn_rpc_sync_send_raw(c, "abc", 3);
    cmn_rpc_sync_close(c);
    ok(rf_ping_ok(addr, "after truncated request"), "server serves after a truncated request");

    cmn_rpc_result_free(&res);
}

/* ---- meta client ----------------------------------------------------------------------- */

static void test_meta_client(struct rf_thread *st)
{
    struct cmn_meta_client *mc = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    char list[256];
    /* R first: it redirects to A, which is not even in the list. */
    snprintf(list, sizeof(list), "%s", st->r.addr);
    is_int(cmn_meta_client_create(list, RF_SECRET, RF_SECRET_LEN, &mc, &err), 0, "meta client created");
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
    is_int(cmn_meta_client_create(list, RF_SECRET, RF_SECRET_LEN, &mc, &err), 0,
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
    is_int(cmn_meta_client_create("127.0.0.1:1,127.0.0.1:2", RF_SECRET, RF_SECRET_LEN, &mc, &err), 0,
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

    is_int(cmn_meta_client_create("", RF_SECRET, RF_SECRET_LEN, &mc, &err), LODE_ECONFIG,
           "empty replica list refused");
    is_int(cmn_meta_client_create("host-without-port", RF_SECRET, RF_SECRET_LEN, &mc, &err),
           LODE_ECONFIG, "address without port refused (%s)", err.msg);
    cmn_rpc_result_free(&res);
}


/* ---- main ------------------------------------------------------------------------------ */

int main(void)
{
    struct rf_log log;
    rf_log_start(&log, "test_rpc");
    struct rf_thread st;
    rf_thread_start(&st);

    test_sync_basic(st.a.addr);
    test_sync_pipelining(st.a.addr);
    test_sync_wrong_secret(st.a.addr);
    test_sync_impostor_server();
    test_hostile_preauth(st.a.addr);
    test_hostile_postauth(st.a.addr);
    test_meta_client(&st);

    is_int(rf_thread_stop(&st), 0, "server loop closes with no handle left behind");
    const char *lbl = "service=\"test-svc\"";
    uint64_t auth = cmn_counter_value(cmn_metrics_counter(st.metrics,
                                                          "lode_rpc_auth_failures_total", lbl, ""));
    uint64_t proto = cmn_counter_value(cmn_metrics_counter(st.metrics,
                                                           "lode_rpc_protocol_errors_total", lbl, ""));
    uint64_t reqs = cmn_counter_value(cmn_metrics_counter(st.metrics, "lode_rpc_requests_total",
                                                          lbl, ""));
    ok(auth >= 1, "auth failures counted (%llu)", (unsigned long long)auth);
    ok(proto >= 8, "protocol errors counted (%llu)", (unsigned long long)proto);
    /* 100 pipelined calls alone, plus the probes and the other tests' calls */
    ok(reqs > 100, "requests counted (%llu)", (unsigned long long)reqs);
    rf_thread_destroy(&st);

    rf_log_stop(&log);
    ok(rf_log_contains(&log, "wrong cluster secret") && rf_log_contains(&log, "peer 127.0.0.1:"),
       "bad peers are logged with their address");
    ok(rf_log_contains(&log, "middle of a frame"), "truncated frames are logged");
    ok(!rf_log_contains(&log, RF_SECRET), "the secret never appears in the log");
    rf_log_remove(&log);
    return tap_done();
}
