/* Test servers for the RPC tests: see rpc_fixture.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/log.h"
#include "common/rpc_sync.h"
#include "tests/tap.h"
#include "tests/unit/common/rpc_fixture.h"

/* ---- servers --------------------------------------------------------------------------- */

struct rf_delayed {
    uv_timer_t timer;
    struct cmn_rpc_call *call;
    struct rf_srv *sc;
    struct rf_delayed *prev, *next;
};

static void delayed_closed(uv_handle_t *h)
{
    free(h->data);
}

static void delayed_fire(uv_timer_t *t)
{
    struct rf_delayed *d = t->data;
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

static void handle_put(struct rf_srv *sc, struct cmn_rpc_call *call)
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

void rf_handler(void *data, struct cmn_rpc_call *call)
{
    struct rf_srv *sc = data;
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
        struct rf_delayed *d = calloc(1, sizeof(*d));
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
        struct rf_held *h = calloc(1, sizeof(*h));
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

unsigned rf_release_held(struct rf_srv *sc, int *all_closed_out)
{
    unsigned orphaned = 0;
    int all_closed = 1;
    while (sc->held) {
        struct rf_held *h = sc->held;
        sc->held = h->next;
        if (cmn_rpc_call_orphaned(h->call))
            orphaned++;
        if (cmn_rpc_reply_error(h->call, LODE_EINTERNAL, NULL, 0, "released") != LODE_ECLOSED)
            all_closed = 0;
        free(h);
    }
    sc->n_held = 0;
    if (all_closed_out)
        *all_closed_out = all_closed;
    return orphaned;
}

void rf_release_delayed(struct rf_srv *sc)
{
    while (sc->delayed) {
        struct rf_delayed *d = sc->delayed;
        sc->delayed = d->next;
        uv_timer_stop(&d->timer);
        cmn_rpc_reply_raw(d->call, NULL, 0, NULL, 0);
        uv_close((uv_handle_t *)&d->timer, delayed_closed);
    }
}

int rf_server_start(struct rf_srv *sc, uv_loop_t *loop, const char *addr,
                    uint32_t handshake_ms, uint32_t idle_ms, struct cmn_metrics *metrics)
{
    sc->loop = loop;
    struct cmn_rpc_server_config cfg = {
        .service = "test-svc",
        .secret = RF_SECRET,
        .secret_len = RF_SECRET_LEN,
        .max_frame = 1u << 20,
        .handshake_timeout_ms = handshake_ms,
        .idle_timeout_ms = idle_ms,
        .handler = rf_handler,
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

/* ---- the server thread ----------------------------------------------------------------- */

static void on_stop(uv_async_t *h)
{
    struct rf_thread *st = h->data;
    rf_release_held(&st->a, NULL);
    rf_release_delayed(&st->a);
    cmn_rpc_server_close(st->a.srv, NULL, NULL);
    cmn_rpc_server_close(st->r.srv, NULL, NULL);
    cmn_rpc_server_close(st->idle.srv, NULL, NULL);
    uv_close((uv_handle_t *)&st->stop, NULL);
}

static void *thread_main(void *arg)
{
    struct rf_thread *st = arg;
    uv_loop_init(&st->loop);
    uv_async_init(&st->loop, &st->stop, on_stop);
    st->stop.data = st;
    st->start_rc = rf_server_start(&st->a, &st->loop, "127.0.0.1:0", 300, 0, st->metrics);
    if (st->start_rc == 0) {
        st->r.redirect_to = st->a.addr;
        st->start_rc = rf_server_start(&st->r, &st->loop, "127.0.0.1:0", 300, 0, NULL);
    }
    if (st->start_rc == 0)
        st->start_rc = rf_server_start(&st->idle, &st->loop, "127.0.0.1:0", 300, 100, NULL);
    sem_post(&st->ready);
    uv_run(&st->loop, UV_RUN_DEFAULT);
    st->loop_close_rc = uv_loop_close(&st->loop);
    return NULL;
}

void rf_thread_start(struct rf_thread *st)
{
    memset(st, 0, sizeof(*st));
    sem_init(&st->ready, 0, 0);
    if (cmn_metrics_create(&st->metrics))
        tap_bail("metrics");
    int rc = pthread_create(&st->thread, NULL, thread_main, st);
    if (rc)
        tap_bail("server thread: %s", strerror(rc));
    sem_wait(&st->ready);
    if (st->start_rc)
        tap_bail("servers did not start: %s", lode_strerror(st->start_rc));
}

int rf_thread_stop(struct rf_thread *st)
{
    uv_async_send(&st->stop);
    pthread_join(st->thread, NULL);
    return st->loop_close_rc;
}

void rf_thread_destroy(struct rf_thread *st)
{
    cmn_metrics_destroy(st->metrics);
    st->metrics = NULL;
    sem_destroy(&st->ready);
}

/* ---- probes and the log ---------------------------------------------------------------- */

int rf_ping_ok(const char *addr, const char *what)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = cmn_rpc_sync_connect(addr, RF_SECRET, RF_SECRET_LEN, 2000, &c, &err);
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

void rf_log_start(struct rf_log *l, const char *prog)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(l->dir, sizeof(l->dir), "%s/%s.XXXXXX", base && *base ? base : "/tmp", prog);
    if (base && *base)
        mkdir(base, 0755);
    if (!mkdtemp(l->dir))
        tap_bail("mkdtemp %s: %s", l->dir, strerror(errno));
    snprintf(l->path, sizeof(l->path), "%s/log", l->dir);
    cmn_log_init(prog, CMN_LOG_INFO);
    if (cmn_log_set_file(l->path))
        tap_bail("cannot log to %s", l->path);
}

void rf_log_stop(struct rf_log *l)
{
    (void)l;
    cmn_log_set_file(NULL);
}

int rf_log_contains(const struct rf_log *l, const char *needle)
{
    FILE *f = fopen(l->path, "r");
    if (!f)
        return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

void rf_log_remove(struct rf_log *l)
{
    unlink(l->path);
    rmdir(l->dir);
}
