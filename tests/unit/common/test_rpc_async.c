/* The asynchronous RPC client end to end over loopback TCP.
 *
 * Server A of the fixture (rpc_fixture.h) runs on a background thread; the client runs on
 * a loop of the main thread, where the servers a test starts, closes and restarts (with
 * calls in flight, on a fixed port, with an idle timeout, as the target of backpressure)
 * also live. Covers lazy connection and queued calls, pipelining, per-call timeouts,
 * authentication and connection failures, reconnection, close with calls pending, IPv6,
 * the server's read backpressure and its idle timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>
#include <lode/errno.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "tests/tap.h"
#include "tests/unit/common/rpc_fixture.h"

/* ---- calls and the loop ---------------------------------------------------------------- */

/* What a call's callback saw. */
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
    struct cmn_rpc_client *cli = make_client(loop, addr, RF_SECRET);
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
    ok(rf_ping_ok(addr, "after async wrong secret"), "server still serves");
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
    cli = make_client(loop, dead, RF_SECRET);
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
    struct rf_srv b = {0};
    if (rf_server_start(&b, loop, "127.0.0.1:0", 1000, 0, NULL))
        tap_bail("server B");
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", b.addr);
    struct cmn_rpc_client *cli = make_client(loop, addr, RF_SECRET);
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
    for (struct rf_held *x = b.held; x; x = x->next)
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
    is_int(rf_release_held(&b, &replies_closed), N, "held calls outlive the server as orphans");
    ok(replies_closed, "replying to an orphaned call returns LODE_ECLOSED and frees it");

    /* A new server on the same port: the same client reconnects on its next call. */
    struct rf_srv b2 = {0};
    if (rf_server_start(&b2, loop, addr, 1000, 0, NULL))
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
    rf_release_held(&b2, NULL);
    cmn_rpc_server_close(b2.srv, on_closed_flag, &srv_closed);
    run_until(loop, NULL, 0, &srv_closed);
    rf_release_held(&b2, NULL);
    free_acalls(h, N);
    free_acalls(&again, 1);
    free_acalls(pend, 3);
}

/* IPv6 loopback, where the host has it: "[::1]:port" through the asynchronous client. */
static void test_ipv6(uv_loop_t *loop)
{
    struct rf_srv b = {0};
    struct cmn_rpc_server_config cfg = {.service = "test-svc", .secret = RF_SECRET,
                                        .secret_len = RF_SECRET_LEN, .handler = rf_handler,
                                        .data = &b};
    b.loop = loop;
    if (cmn_rpc_server_create(loop, &cfg, &b.srv))
        tap_bail("server create");
    if (cmn_rpc_server_listen(b.srv, "[::1]:0", NULL) != 0) {
        diag("no IPv6 loopback here: IPv6 checks skipped");
    } else {
        char addr[64];
        snprintf(addr, sizeof(addr), "[::1]:%d", cmn_rpc_server_port(b.srv));
        struct cmn_rpc_client *cli = make_client(loop, addr, RF_SECRET);
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
    struct rf_srv b = {0};
    if (rf_server_start(&b, loop, "127.0.0.1:0", 1000, 0, NULL))
        tap_bail("server for backpressure");
    struct cmn_rpc_client *cli = make_client(loop, b.addr, RF_SECRET);
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
    rf_release_held(&b, NULL);
    unsigned total = first;
    for (int round = 0; round < 100 && total < N; round++) {
        run_for(loop, 50);
        total += b.n_held;
        rf_release_held(&b, NULL);
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
    struct rf_srv b = {0};
    if (rf_server_start(&b, loop, "127.0.0.1:0", 1000, 400, m))
        tap_bail("server for idle timeout");
    struct cmn_gauge *open = cmn_metrics_gauge(m, "lode_rpc_open_connections",
                                               "service=\"test-svc\"", "");
    struct cmn_rpc_client *cli = make_client(loop, b.addr, RF_SECRET);
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

/* ---- main ------------------------------------------------------------------------------ */

int main(void)
{
    struct rf_log log;
    rf_log_start(&log, "test_rpc_async");
    struct rf_thread st;
    rf_thread_start(&st);

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

    is_int(rf_thread_stop(&st), 0, "server loop closes with no handle left behind");
    const char *lbl = "service=\"test-svc\"";
    uint64_t auth = cmn_counter_value(cmn_metrics_counter(st.metrics,
                                                          "lode_rpc_auth_failures_total", lbl, ""));
    uint64_t reqs = cmn_counter_value(cmn_metrics_counter(st.metrics, "lode_rpc_requests_total",
                                                          lbl, ""));
    ok(auth >= 1, "the asynchronous client's wrong secret is counted as an auth failure (%llu)",
       (unsigned long long)auth);
    /* 4 + 100 + 2 calls in test_async_basic alone reach server A */
    ok(reqs >= 106, "requests counted (%llu)", (unsigned long long)reqs);
    rf_thread_destroy(&st);

    rf_log_stop(&log);
    ok(rf_log_contains(&log, "wrong cluster secret"), "the wrong secret is logged");
    ok(!rf_log_contains(&log, RF_SECRET), "the secret never appears in the log");
    rf_log_remove(&log);
    return tap_done();
}
