/* The asynchronous meta-group client (common/meta_async.h) against fake meta replicas.
 *
 * Each fake is a real cmn_rpc_server on loopback, on the same loop as the client, answering
 * like a lode-meta replica in one role: leader (answers), follower (LODE_ENOTLEADER naming the
 * leader), no leader (LODE_ENOLEADER), mute (holds every call), plus "no one listening" ports.
 * Covers redirects (to known and new addresses), rotation with backoff, the per-call deadline
 * and its message, final errors, (client_id, seq) stamping kept across retries, exactly-once
 * callbacks that never run inside the call, and close with calls in flight and in backoff.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/meta_async.h"
#include "common/rpc.h"
#include "tests/tap.h"

#define SECRET "meta-async-test-secret-0123456789"
#define MAX_HELD 16
#define MAX_SEEN 16

enum role { LEADER, FOLLOWER, NO_LEADER, MUTE };

struct fake {
    struct cmn_rpc_server *srv;
    char addr[64];
    enum role role;
    const char *leader;          /* FOLLOWER: the address named in ENOTLEADER */
    uint32_t tag;                /* LEADER: put into every answer */
    int fail_first;              /* LEADER: answer this many requests with ENOLEADER first */
    int answer_status;           /* LEADER: answer with this error instead of a result */
    int requests;
    unsigned n_seen;             /* Commands seen: their (client_id, seq) */
    uint8_t cid[MAX_SEEN][16];
    size_t cid_len[MAX_SEEN];
    uint64_t seq[MAX_SEEN];
    struct cmn_rpc_call *held[MAX_HELD];
    unsigned n_held;
    int closed;
};

struct result {
    int fired;
    int status;
    uint32_t tag;                /* from the body: CommandResult.nid or ClusterMap.epoch */
    char message[512];
    uint64_t at_ms;
};

static uv_loop_t loop;

/* ---- fake replicas ----------------------------------------------------------------------- */

static void fake_handler(void *data, struct cmn_rpc_call *call)
{
    struct fake *f = data;
    f->requests++;
    unsigned method = cmn_rpc_call_method(call);
    size_t len;
    const uint8_t *body = cmn_rpc_call_body(call, &len);
    if (cmn_rpc_method_request(method) == &lode__command__descriptor) {
        Lode__Command *cmd = lode__command__unpack(NULL, len, body);
        if (cmd && f->n_seen < MAX_SEEN) {
            size_t n = cmd->client_id.len < 16 ? cmd->client_id.len : 16;
            memcpy(f->cid[f->n_seen], cmd->client_id.data, n);
            f->cid_len[f->n_seen] = cmd->client_id.len;
            f->seq[f->n_seen] = cmd->seq;
            f->n_seen++;
        }
        if (cmd)
            lode__command__free_unpacked(cmd, NULL);
    }
    switch (f->role) {
    case FOLLOWER:
        cmn_rpc_reply_error(call, LODE_ENOTLEADER, f->leader, 1, "not the leader");
        return;
    case NO_LEADER:
        cmn_rpc_reply_error(call, LODE_ENOLEADER, NULL, 0, "no leader elected yet");
        return;
    case MUTE:
        if (f->n_held < MAX_HELD)
            f->held[f->n_held++] = call;
        else
            cmn_rpc_reply_error(call, LODE_EINTERNAL, NULL, 0, "too many held");
        return;
    case LEADER:
        break;
    }
    if (f->fail_first > 0) {
        f->fail_first--;
        cmn_rpc_reply_error(call, LODE_ENOLEADER, NULL, 0, "leadership changing");
        return;
    }
    if (f->answer_status) {
        cmn_rpc_reply_error(call, f->answer_status, NULL, 0, "the leader's own answer");
        return;
    }
    if (method == CMN_RPC_CLUSTER_MAP_GET) {
        Lode__ClusterMap m = LODE__CLUSTER_MAP__INIT;
        m.epoch = f->tag;
        cmn_rpc_reply(call, &m.base);
    } else {
        Lode__CommandResult r = LODE__COMMAND_RESULT__INIT;
        r.nid = f->tag;
        cmn_rpc_reply(call, &r.base);
    }
}

static void fake_start(struct fake *f, enum role role, uint32_t tag, const char *secret)
{
    memset(f, 0, sizeof(*f));
    f->role = role;
    f->tag = tag;
    struct cmn_rpc_server_config sc = {
        .service = "fake-meta",
        .secret = secret,
        .secret_len = strlen(secret),
        .handler = fake_handler,
        .data = f,
    };
    struct cmn_err err;
    cmn_err_clear(&err);
    if (cmn_rpc_server_create(&loop, &sc, &f->srv) ||
        cmn_rpc_server_listen(f->srv, "127.0.0.1:0", &err))
        tap_bail("fake replica: %s", cmn_err_text(&err));
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", cmn_rpc_server_port(f->srv));
}

static void on_flag(void *data)
{
    (*(int *)data)++;
}

static void run_until_flag(int *flag, uint64_t limit_ms)
{
    uint64_t end = cmn_mono_ms() + limit_ms;
    while (!*flag && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
}

static void on_timer_flag(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

/* Runs the loop for ms milliseconds. */
static void run_for(uint64_t ms)
{
    uv_timer_t t;
    int done = 0;
    uv_timer_init(&loop, &t);
    t.data = &done;
    uv_timer_start(&t, on_timer_flag, ms, 0);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void fake_stop(struct fake *f)
{
    for (unsigned i = 0; i < f->n_held; i++)
        cmn_rpc_reply_error(f->held[i], LODE_EINTERNAL, NULL, 0, "released");
    f->n_held = 0;
    int closed = 0;
    cmn_rpc_server_close(f->srv, on_flag, &closed);
    run_until_flag(&closed, 5000);
    f->srv = NULL;
}

/* An address where nobody listens: bind a free port, then let it go. */
static void dead_address(char *out, size_t size)
{
    uv_tcp_t t;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&loop, &t);
    uv_tcp_bind(&t, (const struct sockaddr *)&sa, 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
    snprintf(out, size, "127.0.0.1:%d", ntohs(got.sin_port));
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- client helpers ---------------------------------------------------------------------- */

static void on_result(void *data, const struct cmn_rpc_result *res)
{
    struct result *r = data;
    r->fired++;
    r->status = res->status;
    r->at_ms = cmn_mono_ms();
    snprintf(r->message, sizeof(r->message), "%s", res->message);
    r->tag = 0;
    if (res->status == 0 && res->body.len) {
        Lode__CommandResult *cr = lode__command_result__unpack(NULL, res->body.len,
                                                               res->body.data);
        if (cr) {
            r->tag = cr->nid;
            lode__command_result__free_unpacked(cr, NULL);
        }
    }
}

static void on_map(void *data, const struct cmn_rpc_result *res)
{
    struct result *r = data;
    on_result(data, res);
    if (res->status == 0) {
        Lode__ClusterMap *m = lode__cluster_map__unpack(NULL, res->body.len, res->body.data);
        r->tag = m ? (uint32_t)m->epoch : 0;
        if (m)
            lode__cluster_map__free_unpacked(m, NULL);
    }
}

static struct cmn_meta_async *client(const char *addrs)
{
    struct cmn_meta_async_config cfg = {.addrs = addrs, .secret = SECRET,
                                        .secret_len = strlen(SECRET), .connect_timeout_ms = 500};
    struct cmn_meta_async *ma = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (cmn_meta_async_create(&loop, &cfg, &ma, &err))
        tap_bail("meta async client: %s", cmn_err_text(&err));
    return ma;
}

static void client_close(struct cmn_meta_async *ma)
{
    int closed = 0;
    cmn_meta_async_close(ma, on_flag, &closed);
    ok(closed == 0, "close callback deferred to the loop");
    run_until_flag(&closed, 5000);
    is_int(closed, 1, "close callback ran once");
}

static int map_call(struct cmn_meta_async *ma, uint32_t timeout_ms, struct result *r)
{
    Lode__Empty e = LODE__EMPTY__INIT;
    return cmn_meta_async_call(ma, CMN_RPC_CLUSTER_MAP_GET, 0, &e.base, timeout_ms, on_map, r);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_config(void)
{
    struct cmn_meta_async *ma = NULL;
    struct cmn_err err;
    struct cmn_meta_async_config cfg = {.addrs = "", .secret = SECRET,
                                        .secret_len = strlen(SECRET)};
    cmn_err_clear(&err);
    is_int(cmn_meta_async_create(&loop, &cfg, &ma, &err), LODE_ECONFIG, "empty list refused");
    ok(strstr(err.msg, "names no replica") != NULL, "message says so (%s)", err.msg);
    cfg.addrs = "127.0.0.1:7001,nonsense";
    cmn_err_clear(&err);
    is_int(cmn_meta_async_create(&loop, &cfg, &ma, &err), LODE_ECONFIG, "bad entry refused");
    ok(strstr(err.msg, "nonsense") != NULL, "message names the list (%s)", err.msg);
    cfg.addrs = "127.0.0.1:7001";
    cfg.secret_len = 0;
    is_int(cmn_meta_async_create(&loop, &cfg, &ma, NULL), -EINVAL, "missing secret refused");
    ok(ma == NULL, "nothing created");
}

static void test_redirect(void)
{
    struct fake lead, fol;
    fake_start(&lead, LEADER, 11, SECRET);
    fake_start(&fol, FOLLOWER, 22, SECRET);
    fol.leader = lead.addr;
    char list[160];
    snprintf(list, sizeof(list), "%s,%s", fol.addr, lead.addr);
    struct cmn_meta_async *ma = client(list);

    struct result r = {0};
    is_int(map_call(ma, 5000, &r), 0, "call submitted");
    ok(r.fired == 0, "callback does not run inside the call");
    is_int(cmn_meta_async_pending(ma), 1, "one call pending");
    run_until_flag(&r.fired, 6000);
    is_int(r.status, 0, "answered through a follower's redirect");
    is_int(r.tag, 11, "by the leader");
    is_int(fol.requests, 1, "the follower was asked once");
    is_str(cmn_meta_async_leader(ma), lead.addr, "the leader is remembered");
    is_int(cmn_meta_async_pending(ma), 0, "nothing pending");

    struct result r2 = {0};
    map_call(ma, 5000, &r2);
    run_until_flag(&r2.fired, 6000);
    ok(r2.status == 0 && fol.requests == 1 && lead.requests == 2,
       "the next call goes straight to the leader");
    run_for(100);
    ok(r.fired == 1 && r2.fired == 1, "each callback fired exactly once");
    client_close(ma);

    /* Redirect to a replica the client was not told about. */
    ma = client(fol.addr);
    struct result r3 = {0};
    map_call(ma, 5000, &r3);
    run_until_flag(&r3.fired, 6000);
    ok(r3.status == 0 && r3.tag == 11, "redirect to an address not in the list works");
    is_str(cmn_meta_async_leader(ma), lead.addr, "and the new address becomes the leader");
    client_close(ma);

    fake_stop(&lead);
    fake_stop(&fol);
}

static void test_rotation(void)
{
    struct fake nol, lead;
    fake_start(&nol, NO_LEADER, 0, SECRET);
    fake_start(&lead, LEADER, 33, SECRET);
    char dead[64], list[256];
    dead_address(dead, sizeof(dead));
    snprintf(list, sizeof(list), "%s,%s,%s", nol.addr, dead, lead.addr);
    struct cmn_meta_async *ma = client(list);

    struct result r = {0};
    uint64_t t0 = cmn_mono_ms();
    map_call(ma, 8000, &r);
    run_until_flag(&r.fired, 9000);
    uint64_t took = r.at_ms - t0;
    is_int(r.status, 0, "ENOLEADER and a refused connection are skipped");
    is_int(r.tag, 33, "the answer came from the leader");
    is_int(nol.requests, 1, "the replica without a leader was asked once");
    ok(took >= 100, "with a backoff after each failure (%llu ms)", (unsigned long long)took);
    is_str(cmn_meta_async_leader(ma), lead.addr, "leader remembered after rotation");
    client_close(ma);
    fake_stop(&nol);
    fake_stop(&lead);
}

static void test_stamping(void)
{
    struct fake lead;
    fake_start(&lead, LEADER, 44, SECRET);
    lead.fail_first = 2;
    struct cmn_meta_async *ma = client(lead.addr);

    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__RegisterNode reg = LODE__REGISTER_NODE__INIT;
    Lode__NodeInfo ni = LODE__NODE_INFO__INIT;
    ni.address = (char *)"127.0.0.1:9000";
    reg.node = &ni;
    cmd.op_case = LODE__COMMAND__OP_REGISTER_NODE;
    cmd.register_node = &reg;
    struct result r = {0};
    is_int(cmn_meta_async_call(ma, CMN_RPC_NODE_REGISTER, 0, &cmd.base, 5000, on_result, &r), 0,
           "mutation submitted");
    ok(cmd.client_id.len == 0 && cmd.client_id.data == NULL && cmd.seq == 0,
       "the caller's command is left as it was");
    run_until_flag(&r.fired, 6000);
    is_int(r.status, 0, "succeeds after two ENOLEADER answers");
    is_int(r.tag, 44, "result from the leader");
    is_int(lead.n_seen, 3, "three attempts reached the replica");
    int same = lead.n_seen == 3;
    for (unsigned i = 0; same && i < 3; i++)
        same = lead.cid_len[i] == 16 && memcmp(lead.cid[i], lead.cid[0], 16) == 0 &&
               lead.seq[i] == lead.seq[0];
    ok(same && lead.seq[0] != 0, "every retry carried the same client_id and seq (%llu)",
       (unsigned long long)lead.seq[0]);

    struct result r2 = {0};
    cmn_meta_async_call(ma, CMN_RPC_NODE_REGISTER, 0, &cmd.base, 5000, on_result, &r2);
    run_until_flag(&r2.fired, 6000);
    ok(r2.status == 0 && lead.n_seen == 4 && memcmp(lead.cid[3], lead.cid[0], 16) == 0 &&
           lead.seq[3] == lead.seq[0] + 1,
       "the next command has the same client id and the next seq");

    /* A caller that stamps its own (client_id, seq) keeps them. */
    struct cmn_id mine = cmn_id_random();
    cmd.client_id.data = mine.b;
    cmd.client_id.len = 16;
    cmd.seq = 777;
    struct result r3 = {0};
    cmn_meta_async_call(ma, CMN_RPC_NODE_REGISTER, 0, &cmd.base, 5000, on_result, &r3);
    run_until_flag(&r3.fired, 6000);
    ok(r3.status == 0 && lead.n_seen == 5 && memcmp(lead.cid[4], mine.b, 16) == 0 &&
           lead.seq[4] == 777,
       "a caller's own client_id and seq are sent unchanged");
    ok(cmd.client_id.data == mine.b && cmd.seq == 777, "and left in place");

    /* Reads (non-Command requests) are not stamped. */
    struct result r4 = {0};
    map_call(ma, 5000, &r4);
    run_until_flag(&r4.fired, 6000);
    is_int(lead.n_seen, 5, "a read carries no Command");
    client_close(ma);
    fake_stop(&lead);
}

static void test_final_errors(void)
{
    struct fake lead;
    fake_start(&lead, LEADER, 55, SECRET);
    lead.answer_status = LODE_ENONODE;
    struct cmn_meta_async *ma = client(lead.addr);
    struct result r = {0};
    map_call(ma, 5000, &r);
    run_until_flag(&r.fired, 6000);
    is_int(r.status, LODE_ENONODE, "the leader's error is the answer");
    ok(strstr(r.message, "the leader's own answer") != NULL, "with its message (%s)", r.message);
    is_int(lead.requests, 1, "and is not retried");
    client_close(ma);
    fake_stop(&lead);

    /* A replica with another secret: authentication failures are final, not retried until
     * the deadline. */
    struct fake other;
    fake_start(&other, LEADER, 66, "a-completely-different-secret-42");
    ma = client(other.addr);
    struct result r2 = {0};
    uint64_t t0 = cmn_mono_ms();
    map_call(ma, 8000, &r2);
    run_until_flag(&r2.fired, 9000);
    is_int(r2.status, LODE_EAUTH, "wrong secret: LODE_EAUTH");
    ok(r2.at_ms - t0 < 4000, "reported at once, not at the deadline (%llu ms)",
       (unsigned long long)(r2.at_ms - t0));
    is_int(other.requests, 0, "nothing reached the handler");
    client_close(ma);
    fake_stop(&other);
}

static void test_deadline(void)
{
    struct fake a, b;
    fake_start(&a, NO_LEADER, 0, SECRET);
    fake_start(&b, NO_LEADER, 0, SECRET);
    char list[160];
    snprintf(list, sizeof(list), "%s,%s", a.addr, b.addr);
    struct cmn_meta_async *ma = client(list);
    struct result r = {0};
    uint64_t t0 = cmn_mono_ms();
    map_call(ma, 600, &r);
    run_until_flag(&r.fired, 5000);
    uint64_t took = r.at_ms - t0;
    is_int(r.status, LODE_ENOLEADER, "no leader until the deadline: the last error");
    ok(took >= 590 && took < 2500, "reported at the deadline (%llu ms)", (unsigned long long)took);
    ok(strstr(r.message, "no meta leader answered within 600 ms") != NULL,
       "message says so (%s)", r.message);
    ok(strstr(r.message, a.addr) && strstr(r.message, b.addr), "and names both replicas");
    ok(strstr(r.message, "no leader elected yet") != NULL, "and the last error");
    ok(a.requests >= 2 && b.requests >= 1, "rotated between replicas (%d, %d requests)",
       a.requests, b.requests);
    ok(cmn_meta_async_leader(ma) == NULL, "no leader known");
    run_for(300);
    is_int(r.fired, 1, "the callback fired exactly once");
    client_close(ma);

    /* A replica that never answers: the attempt's own timeout ends at the deadline. */
    struct fake mute;
    fake_start(&mute, MUTE, 0, SECRET);
    ma = client(mute.addr);
    struct result r2 = {0};
    t0 = cmn_mono_ms();
    map_call(ma, 500, &r2);
    run_until_flag(&r2.fired, 5000);
    took = r2.at_ms - t0;
    is_int(r2.status, LODE_ETIMEOUT, "a mute replica: LODE_ETIMEOUT");
    ok(took >= 490 && took < 2500, "at the deadline (%llu ms)", (unsigned long long)took);
    client_close(ma);
    fake_stop(&mute);
    fake_stop(&a);
    fake_stop(&b);
}

struct reentry {
    struct cmn_meta_async *ma;
    struct result r;
    int submit_rc;
};

static void on_result_resubmit(void *data, const struct cmn_rpc_result *res)
{
    struct reentry *re = data;
    on_result(&re->r, res);
    Lode__Empty e = LODE__EMPTY__INIT;
    re->submit_rc = cmn_meta_async_call(re->ma, CMN_RPC_CLUSTER_MAP_GET, 0, &e.base, 1000,
                                        on_map, &re->r);
}

static void test_close_in_flight(void)
{
    struct fake mute, nol;
    fake_start(&mute, MUTE, 0, SECRET);
    fake_start(&nol, NO_LEADER, 0, SECRET);
    struct cmn_meta_async *ma = client(mute.addr);
    struct cmn_meta_async *mb = client(nol.addr);

    struct result held[3] = {{0}};
    for (int i = 0; i < 3; i++)
        map_call(ma, 10000, &held[i]);
    /* Wait until the mute replica holds all three: they are in flight. */
    uint64_t end = cmn_mono_ms() + 5000;
    while (mute.n_held < 3 && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    is_int(mute.n_held, 3, "three calls in flight");
    /* A fourth call, not yet attempted, whose callback submits again (during close). */
    struct reentry re = {.ma = ma};
    Lode__Empty e = LODE__EMPTY__INIT;
    cmn_meta_async_call(ma, CMN_RPC_CLUSTER_MAP_GET, 0, &e.base, 10000, on_result_resubmit, &re);

    int closed = 0;
    cmn_meta_async_close(ma, on_flag, &closed);
    int all = 1;
    for (int i = 0; i < 3; i++)
        all &= held[i].fired == 1 && held[i].status == LODE_ECLOSED;
    ok(all, "calls in flight complete with LODE_ECLOSED during close");
    is_int(re.submit_rc, LODE_ECLOSED, "a call submitted from a callback during close is refused");
    ok(re.r.fired == 1 && re.r.status == LODE_ECLOSED, "a call not yet attempted completes too");
    run_until_flag(&closed, 5000);
    is_int(closed, 1, "close callback ran once");
    all = 1;
    for (int i = 0; i < 3; i++)
        all &= held[i].fired == 1;
    ok(all, "no callback fired twice");

    /* Close while a call waits in backoff between attempts. */
    struct result rb = {0};
    map_call(mb, 10000, &rb);
    end = cmn_mono_ms() + 5000;
    while (nol.requests < 1 && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    ok(nol.requests >= 1 && rb.fired == 0, "a call is waiting to retry");
    closed = 0;
    cmn_meta_async_close(mb, on_flag, &closed);
    ok(rb.fired == 1 && rb.status == LODE_ECLOSED, "it completes with LODE_ECLOSED on close");
    ok(strstr(rb.message, "closed") != NULL, "saying why (%s)", rb.message);
    run_until_flag(&closed, 5000);
    is_int(closed, 1, "close callback ran");
    run_for(300);
    is_int(rb.fired, 1, "and nothing fires after");

    fake_stop(&mute);
    fake_stop(&nol);
}

int main(void)
{
    cmn_log_init("test_meta_async", CMN_LOG_WARN);
    if (uv_loop_init(&loop))
        tap_bail("uv_loop_init");
    test_config();
    test_redirect();
    test_rotation();
    test_stamping();
    test_final_errors();
    test_deadline();
    test_close_in_flight();
    uv_run(&loop, UV_RUN_NOWAIT);
    is_int(uv_loop_close(&loop), 0, "every handle was closed");
    return tap_done();
}
