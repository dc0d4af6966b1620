/* The registrar (node/registrar.c) against a fake meta replica (a real cmn_rpc_server on
 * loopback) above the in-memory store: registration with the node's uuid, address, failure
 * domain and sizes; heartbeats; re-registration on LODE_ENONODE; corrupt chunks reported,
 * kept queued while meta refuses CORRUPT_REPORT and sent once it accepts; meta going away
 * and coming back (logged once per change); a refused registration; close with a call held.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/rpc.h"
#include "node/registrar.h"
#include "tests/tap.h"
#include "tests/unit/node/fake_store.h"

#define SECRET "registrar-test-secret-0123456789"
#define NID 42
#define MAX_HELD 8
#define MAX_REPORTED 16

struct fmeta {
    struct cmn_rpc_server *srv;
    int port;
    char addr[64];
    int registers, beats, reports;
    int register_status;         /* answer NODE_REGISTER with this error (0 = ok) */
    int enonode_beats;           /* answer this many beats with LODE_ENONODE */
    int report_status;           /* answer CORRUPT_REPORT with this error (0 = accept) */
    int mute;                    /* hold every call */
    Lode__NodeInfo *last_node;   /* from the last NODE_REGISTER */
    uint32_t beat_nid;
    uint8_t beat_uuid[16];
    uint64_t beat_used;
    struct cmn_id reported[MAX_REPORTED];
    unsigned n_reported;
    uint32_t reported_nid;
    char reason[64];
    struct cmn_rpc_call *held[MAX_HELD];
    unsigned n_held;
};

static uv_loop_t loop;
static char dir[PATH_MAX];
static char log_path[PATH_MAX + 16];

static void fm_handler(void *data, struct cmn_rpc_call *call)
{
    struct fmeta *f = data;
    if (f->mute && f->n_held < MAX_HELD) {
        f->held[f->n_held++] = call;
        return;
    }
    size_t len;
    const uint8_t *body = cmn_rpc_call_body(call, &len);
    switch (cmn_rpc_call_method(call)) {
    case CMN_RPC_NODE_REGISTER: {
        f->registers++;
        Lode__Command *c = lode__command__unpack(NULL, len, body);
        if (c && c->register_node && c->register_node->node) {
            if (f->last_node)
                lode__node_info__free_unpacked(f->last_node, NULL);
            size_t n = lode__node_info__get_packed_size(c->register_node->node);
            uint8_t *b = malloc(n + 1);
            lode__node_info__pack(c->register_node->node, b);
            f->last_node = lode__node_info__unpack(NULL, n, b);
            free(b);
        }
        if (c)
            lode__command__free_unpacked(c, NULL);
        if (f->register_status) {
            cmn_rpc_reply_error(call, f->register_status, NULL, 0, "node was removed");
            return;
        }
        Lode__CommandResult r = LODE__COMMAND_RESULT__INIT;
        r.nid = NID;
        cmn_rpc_reply(call, &r.base);
        return;
    }
    case CMN_RPC_NODE_HEARTBEAT: {
        f->beats++;
        Lode__HeartbeatRequest *h = lode__heartbeat_request__unpack(NULL, len, body);
        if (h) {
            f->beat_nid = h->nid;
            if (h->uuid.len == 16)
                memcpy(f->beat_uuid, h->uuid.data, 16);
            f->beat_used = h->used_bytes;
            lode__heartbeat_request__free_unpacked(h, NULL);
        }
        if (f->enonode_beats > 0) {
            f->enonode_beats--;
            cmn_rpc_reply_error(call, LODE_ENONODE, NULL, 0, "node %d is not registered", NID);
            return;
        }
        Lode__HeartbeatResponse r = LODE__HEARTBEAT_RESPONSE__INIT;
        r.state = LODE__NODE_STATE__NODE_UP;
        cmn_rpc_reply(call, &r.base);
        return;
    }
    case CMN_RPC_CORRUPT_REPORT: {
        f->reports++;
        if (f->report_status) {
            cmn_rpc_reply_error(call, f->report_status, NULL, 0,
                                "command op does not match method");
            return;
        }
        Lode__Command *c = lode__command__unpack(NULL, len, body);
        if (c && c->report_corrupt) {
            for (size_t i = 0; i < c->report_corrupt->n_chunks; i++) {
                Lode__CorruptChunk *cc = c->report_corrupt->chunks[i];
                if (f->n_reported < MAX_REPORTED && cc->chunk_id.len == 16)
                    memcpy(f->reported[f->n_reported++].b, cc->chunk_id.data, 16);
                f->reported_nid = cc->nid;
                snprintf(f->reason, sizeof(f->reason), "%s", cc->reason);
            }
        }
        if (c)
            lode__command__free_unpacked(c, NULL);
        Lode__CommandResult r = LODE__COMMAND_RESULT__INIT;
        cmn_rpc_reply(call, &r.base);
        return;
    }
    default:
        cmn_rpc_reply_error(call, LODE_ENOMETHOD, NULL, 0, "not here");
    }
}

static void fm_listen(struct fmeta *f)
{
    struct cmn_rpc_server_config sc = {.service = "fake-meta", .secret = SECRET,
                                       .secret_len = strlen(SECRET), .handler = fm_handler,
                                       .data = f};
    struct cmn_err err;
    cmn_err_clear(&err);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", f->port);
    if (cmn_rpc_server_create(&loop, &sc, &f->srv) || cmn_rpc_server_listen(f->srv, want, &err))
        tap_bail("fake meta: %s", cmn_err_text(&err));
    f->port = cmn_rpc_server_port(f->srv);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
}

static void on_flag(void *data)
{
    (*(int *)data)++;
}

static void fm_stop(struct fmeta *f)
{
    for (unsigned i = 0; i < f->n_held; i++)
        cmn_rpc_reply_error(f->held[i], LODE_EINTERNAL, NULL, 0, "released");
    f->n_held = 0;
    int closed = 0;
    cmn_rpc_server_close(f->srv, on_flag, &closed);
    uint64_t end = cmn_mono_ms() + 5000;
    while (!closed && cmn_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    f->srv = NULL;
}

static void on_timer_flag(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

/* Runs the loop until cond() or ms milliseconds passed; returns cond(). */
#define RUN_UNTIL(cond, ms)                                                              \
    ({                                                                                    \
        uv_timer_t t_;                                                                    \
        int fired_ = 0;                                                                   \
        uv_timer_init(&loop, &t_);                                                        \
        t_.data = &fired_;                                                                \
        uv_timer_start(&t_, on_timer_flag, (ms), 0);                                      \
        while (!(cond) && !fired_)                                                        \
            uv_run(&loop, UV_RUN_ONCE);                                                   \
        uv_close((uv_handle_t *)&t_, NULL);                                               \
        uv_run(&loop, UV_RUN_NOWAIT);                                                     \
        !!(cond);                                                                         \
    })

static int log_count(const char *needle)
{
    FILE *f = fopen(log_path, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void on_read(void *data, int status, struct node_read *rd)
{
    *(int *)data = status ? status : 1;
    node_read_release(rd);
}

static struct node_registrar *start(struct node_store *st, const char *meta)
{
    struct node_registrar_options o = {
        .loop = &loop,
        .store = st,
        .meta = meta,
        .secret = SECRET,
        .secret_len = strlen(SECRET),
        .address = "127.0.0.1:7201",
        .failure_domain = "rack3",
        .heartbeat_interval_ms = 100,
        .report_retry_ms = 300,
    };
    struct node_registrar *r = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (node_registrar_start(&o, &r, &err))
        tap_bail("registrar: %s", cmn_err_text(&err));
    return r;
}

static void close_registrar(struct node_registrar *r, const char *what)
{
    int closed = 0;
    node_registrar_close(r, on_flag, &closed);
    ok(closed == 0, "%s: close completes later", what);
    ok(RUN_UNTIL(closed, 5000), "%s: close callback ran", what);
}

int main(void)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(dir, sizeof(dir), "%s/registrar.XXXXXX", base && *base ? base : "/tmp");
    mkdir(base && *base ? base : "/tmp", 0700);
    if (!mkdtemp(dir))
        tap_bail("mkdtemp %s", dir);
    snprintf(log_path, sizeof(log_path), "%s/log", dir);
    cmn_log_init("test_registrar", CMN_LOG_INFO);
    if (cmn_log_set_file(log_path))
        tap_bail("log file");
    if (uv_loop_init(&loop))
        tap_bail("loop");

    struct node_store *st;
    struct node_store_options so = {0};
    if (node_store_open(&loop, &so, &st, NULL))
        tap_bail("store");
    struct cmn_id c1 = cmn_id_random(), c2 = cmn_id_random();
    fake_store_add(st, &c1, "first chunk", 11);
    fake_store_add(st, &c2, "second chunk", 12);
    struct cmn_id uuid = node_store_uuid(st);

    struct fmeta fm;
    memset(&fm, 0, sizeof(fm));
    fm.report_status = -EINVAL;
    fm_listen(&fm);
    struct node_registrar *r = start(st, fm.addr);
    is_int(node_registrar_state(r), NODE_META_REGISTERING, "starts registering");
    is_int(node_registrar_nid(r), 0, "no nid yet");

    /* ---- registration and heartbeats ---- */
    ok(RUN_UNTIL(node_registrar_state(r) == NODE_META_REGISTERED, 5000), "registered");
    is_int(node_registrar_nid(r), NID, "with the nid meta assigned");
    Lode__NodeInfo *n = fm.last_node;
    ok(n && n->uuid.len == 16 && memcmp(n->uuid.data, uuid.b, 16) == 0,
       "registered with the store's uuid");
    ok(n && strcmp(n->address, "127.0.0.1:7201") == 0 && strcmp(n->failure_domain, "rack3") == 0,
       "and the advertised address and failure domain");
    ok(n && n->used_bytes == 23 && n->capacity_bytes == 1ull << 40, "and used / capacity");
    ok(RUN_UNTIL(fm.beats >= 3, 3000), "heartbeats follow (%d)", fm.beats);
    ok(fm.beat_nid == NID && memcmp(fm.beat_uuid, uuid.b, 16) == 0 && fm.beat_used == 23,
       "beats carry nid, uuid and used bytes");
    ok(log_count("registered with meta as node 42") == 1, "registration logged once");

    /* ---- meta forgets the node ---- */
    fm.enonode_beats = 1;
    ok(RUN_UNTIL(fm.registers == 2, 3000), "LODE_ENONODE on a beat: registers again");
    ok(RUN_UNTIL(node_registrar_state(r) == NODE_META_REGISTERED && fm.beats > 5, 3000),
       "and goes on beating");

    /* ---- corrupt chunks: meta refuses reports, then accepts ---- */
    fake_store_corrupt(st, &c1);
    int got = 0;
    node_store_get(st, &c1, 0, 0, on_read, &got);
    ok(RUN_UNTIL(got != 0, 2000) && got == LODE_ECORRUPT, "a read finds chunk 1 corrupt");
    ok(RUN_UNTIL(fm.reports >= 1, 3000), "reported to meta");
    ok(RUN_UNTIL(fm.reports >= 2, 3000), "refused, and asked again");
    is_int(node_registrar_corrupt_queued(r), 1, "still queued while meta refuses");
    is_int(node_registrar_corrupt_reported(r), 0, "none accepted");
    is_int(log_count("meta does not accept CORRUPT_REPORT yet"), 1, "the refusal logged once");
    fm.report_status = 0;
    ok(RUN_UNTIL(node_registrar_corrupt_queued(r) == 0, 3000), "accepted once meta supports it");
    is_int(node_registrar_corrupt_reported(r), 1, "one chunk reported");
    ok(fm.n_reported == 1 && cmn_id_cmp(&fm.reported[0], &c1) == 0 && fm.reported_nid == NID,
       "the corrupt chunk's id, from node 42");
    is_str(fm.reason, "checksum mismatch", "with a reason");
    is_int(fm.n_reported, 1, "reported exactly once");

    /* ---- meta goes away and comes back ---- */
    int beats = fm.beats;
    fm_stop(&fm);
    ok(RUN_UNTIL(node_registrar_state(r) == NODE_META_UNREACHABLE, 5000), "meta gone: unreachable");
    (void)RUN_UNTIL(0, 1500);
    is_int(log_count("meta unreachable"), 1, "logged once, not once per beat");
    fm_listen(&fm);
    ok(RUN_UNTIL(node_registrar_state(r) == NODE_META_REGISTERED && fm.beats > beats, 8000),
       "meta back: registered again");
    is_int(log_count("meta reachable again"), 1, "the recovery logged once");

    /* ---- close while a beat is held ---- */
    fm.mute = 1;
    ok(RUN_UNTIL(fm.n_held > 0, 3000), "a heartbeat is held by meta");
    close_registrar(r, "held beat");
    fm.mute = 0;

    /* ---- a registration meta refuses ---- */
    fm.register_status = LODE_ESTATE;
    r = start(st, fm.addr);
    ok(RUN_UNTIL(node_registrar_state(r) == NODE_META_REJECTED, 5000), "refused: rejected");
    is_int(node_registrar_nid(r), 0, "no nid");
    is_int(log_count("meta refused to register this node"), 1, "the refusal is logged");
    close_registrar(r, "rejected");

    fm_stop(&fm);
    if (fm.last_node)
        lode__node_info__free_unpacked(fm.last_node, NULL);
    int closed = 0;
    node_store_close(st, on_flag, &closed);
    (void)RUN_UNTIL(closed, 5000);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "every handle closed");
    cmn_log_set_file(NULL);
    unlink(log_path);
    rmdir(dir);
    return tap_done();
}
