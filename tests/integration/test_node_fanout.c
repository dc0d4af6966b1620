/* FANOUT_PUSH against a real lode-node: the node writes chunk ranges into a client window
 * over the client's tcp data session (node/fanout.h, docs/fanout.md).
 *
 * One lode-node with a data listener; chunks put over RPC; a receiver (liblode's tcp receive
 * engine) holding a session credential signed with the cluster secret, connected to the
 * node's data listener; FANOUT_PUSH sent over RPC as a gateway would. Checks: the bytes land
 * byte-identical at their window offsets and the answer counts them; a request that fails a
 * check (no session, another access key, a piece outside the window, bad fields) writes
 * nothing; a corrupt or missing chunk fails only its piece; a retransmitted request id is
 * answered without a second write; a lease already over writes nothing; the node survives all
 * of it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "client/dp_recv.h"
#include "common/clock.h"
#include "common/dp_proto.h"
#include "common/id.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 10000
#define KEY "AKFANOUTTEST"
#define WINDOW (4u << 20)
#define BASE 0x7f0000000000ull

struct chunk {
    uint8_t id[16];
    uint8_t *data;
    size_t len;
};

#define TAG 0x5eed1234u

static struct cmn_rpc_sync *C;
static uint32_t g_tag = TAG;   /* the request tag push() sends */

static int push(const uint8_t sid[16], const char *key, uint64_t base, uint64_t size,
                uint64_t request_id, uint32_t lease_ms, Lode__FanoutPiece **pieces, size_t n,
                Lode__FanoutPushResponse **out, char *msg, size_t msg_len)
{
    Lode__FanoutPushRequest q = LODE__FANOUT_PUSH_REQUEST__INIT;
    q.sid.data = (uint8_t *)sid;
    q.sid.len = 16;
    q.access_key = (char *)key;
    q.window_base = base;
    q.window_size = size;
    q.request_id = request_id;
    q.lease_ms = lease_ms;
    q.pieces = pieces;
    q.n_pieces = n;
    q.transport = 1;
    q.tag = g_tag;
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = cmn_rpc_sync_call(C, CMN_RPC_FANOUT_PUSH, 0, &q.base, T_MS, &res);
    if (msg)
        snprintf(msg, msg_len, "%s", res.message);
    if (rc == 0 && out) {
        *out = lode__fanout_push_response__unpack(NULL, res.body.len, res.body.data);
        if (!*out)
            rc = LODE_EBADMSG;
    }
    cmn_rpc_result_free(&res);
    return rc;
}

static Lode__FanoutPiece *piece(Lode__FanoutPiece *p, const uint8_t id[16], uint64_t off,
                                uint32_t len, uint64_t buf_off)
{
    lode__fanout_piece__init(p);
    p->chunk_id.data = (uint8_t *)id;
    p->chunk_id.len = 16;
    p->chunk_offset = off;
    p->length = len;
    p->buf_offset = buf_off;
    return p;
}

static bool all_byte(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

int main(void)
{
    alarm(240);
    struct cmn_err err;
    cmn_err_clear(&err);
    char data_addr[TL_ADDR_MAX], extra[128];
    if (tl_free_addr(data_addr, sizeof(data_addr)) != 0)
        tap_bail("no free port");
    snprintf(extra, sizeof(extra), "data-address = %s\n", data_addr);
    struct tl_node_options o = TL_NODE_OPTIONS_DEFAULT;
    o.name = "fanout";
    o.extra_conf = extra;
    struct tl_node *n = NULL;
    if (tl_node_start(&o, &n, &err) != 0)
        tap_bail("node: %s", err.msg);
    if (tl_node_connect(n, T_MS, &C, &err) != 0)
        tap_bail("connect: %s", err.msg);

    /* Three chunks: one full 1 MiB, one odd-sized, one small. */
    struct chunk ch[3] = {{.len = 1u << 20}, {.len = 300001}, {.len = 5000}};
    for (int i = 0; i < 3; i++) {
        cmn_random_bytes(ch[i].id, 16);
        ch[i].data = malloc(ch[i].len);
        tl_fill(ch[i].data, ch[i].len, 100 + (uint64_t)i);
        struct cmn_rpc_result res;
        cmn_rpc_result_init(&res);
        if (tl_chunk_put(C, ch[i].id, ch[i].data, ch[i].len, T_MS, &res) != 0)
            tap_bail("put: %s", res.message);
        cmn_rpc_result_free(&res);
    }

    /* A session credential as a gateway issues it. */
    struct cmn_dp_cred cred;
    memset(&cred, 0, sizeof(cred));
    cmn_random_bytes(cred.sid, 16);
    cmn_dp_cred_set_key(&cred, KEY, strlen(KEY));
    cred.expires_ms = (uint64_t)cmn_now_ms() + 600000;
    cmn_dp_cred_sign(n->secret_text, n->secret_len, &cred);
    struct lc_dp_recv_config rc_cfg = {.cred = cred};
    struct lc_dp_recv *rv = NULL;
    if (lc_dp_recv_create(&rc_cfg, &rv, &err) != 0)
        tap_bail("receiver: %s", err.msg);

    uint8_t *win = malloc(WINDOW);
    memset(win, 0xcc, WINDOW);
    struct lc_dp_window *w = NULL;
    is_int(lc_dp_recv_window_open(rv, BASE, WINDOW, TAG, win, NULL, &w), 0, "window open");

    Lode__FanoutPiece ps[8], *pp[8];
    Lode__FanoutPushResponse *resp = NULL;
    char msg[512];
    /* Before the client connected: no session. */
    pp[0] = piece(&ps[0], ch[0].id, 0, 4096, 0);
    is_int(push(cred.sid, KEY, BASE, WINDOW, 1, 0, pp, 1, &resp, msg, sizeof(msg)),
           LODE_ENOSESSION, "no data session connected: refused (%s)", msg);

    is_int(lc_dp_recv_add_source(rv, 0, data_addr, &err), 0, "connect to the data listener");
    is_int(lc_dp_recv_wait_ready(rv, T_MS, &err), 0, "session accepted%s", tl_why(err.msg));

    /* The pieces: chunk 0 whole at 0, chunk 1 from 1000 at 2 MiB, chunk 2 whole at the end
     * of the window, chunk 0's tail at 1 MiB + 7. */
    pp[0] = piece(&ps[0], ch[0].id, 0, (uint32_t)ch[0].len, 0);
    pp[1] = piece(&ps[1], ch[1].id, 1000, (uint32_t)(ch[1].len - 1000), 2u << 20);
    pp[2] = piece(&ps[2], ch[2].id, 0, (uint32_t)ch[2].len, WINDOW - ch[2].len);
    pp[3] = piece(&ps[3], ch[0].id, 900000, 100000, (1u << 20) + 7);
    uint64_t total = ch[0].len + (ch[1].len - 1000) + ch[2].len + 100000;
    int rc = push(cred.sid, KEY, BASE, WINDOW, 2, 0, pp, 4, &resp, msg, sizeof(msg));
    is_int(rc, 0, "FANOUT_PUSH of 4 pieces answered%s", tl_why(msg));
    ok(resp && resp->bytes == total && resp->n_pieces == 4 && resp->pieces[0]->status == 0 &&
           resp->pieces[1]->status == 0 && resp->pieces[2]->status == 0 &&
           resp->pieces[3]->status == 0,
       "every piece written, %" PRIu64 " bytes counted", total);
    lode__fanout_push_response__free_unpacked(resp, NULL);
    resp = NULL;
    struct lc_dp_expect ex = {.source_id = 0, .bytes = total};
    is_int(lc_dp_recv_wait(rv, w, &ex, 1, T_MS, &err), 0, "the receiver got them%s",
           tl_why(err.msg));
    ok(memcmp(win, ch[0].data, ch[0].len) == 0, "chunk 0 at window offset 0, byte-identical");
    ok(memcmp(win + (1u << 20) + 7, ch[0].data + 900000, 100000) == 0,
       "chunk 0 bytes 900000.. at offset 1 MiB + 7");
    ok(memcmp(win + (2u << 20), ch[1].data + 1000, ch[1].len - 1000) == 0,
       "chunk 1 from byte 1000 at offset 2 MiB");
    ok(memcmp(win + WINDOW - ch[2].len, ch[2].data, ch[2].len) == 0,
       "chunk 2 at the end of the window");
    ok(all_byte(win + (1u << 20) + 7 + 100000, (2u << 20) - ((1u << 20) + 7 + 100000), 0xcc),
       "nothing written between the pieces");

    /* A retransmission of request 2: the same answer, no second write. */
    uint64_t before = lc_dp_recv_window_bytes(rv, w, 0);
    rc = push(cred.sid, KEY, BASE, WINDOW, 2, 0, pp, 4, &resp, msg, sizeof(msg));
    ok(rc == 0 && resp && resp->bytes == total, "a retransmitted request id gets the same answer");
    lode__fanout_push_response__free_unpacked(resp, NULL);
    resp = NULL;
    usleep(200000);
    is_int((long long)lc_dp_recv_window_bytes(rv, w, 0), (long long)before,
           "and nothing is written twice");

    /* Refusals before any write. */
    memset(win, 0xcc, WINDOW);
    before = lc_dp_recv_window_bytes(rv, w, 0);
    pp[0] = piece(&ps[0], ch[2].id, 0, (uint32_t)ch[2].len, 0);
    pp[1] = piece(&ps[1], ch[2].id, 0, (uint32_t)ch[2].len, WINDOW - 10);
    is_int(push(cred.sid, KEY, BASE, WINDOW, 3, 0, pp, 2, NULL, msg, sizeof(msg)), LODE_EWINDOW,
           "a piece past the window's end refuses the whole request (%s)", msg);
    uint8_t other[16];
    memcpy(other, cred.sid, 16);
    other[0] ^= 1;
    is_int(push(other, KEY, BASE, WINDOW, 4, 0, pp, 1, NULL, msg, sizeof(msg)), LODE_ENOSESSION,
           "another session id: refused");
    is_int(push(cred.sid, "AKSOMEONEELSE", BASE, WINDOW, 5, 0, pp, 1, NULL, msg, sizeof(msg)),
           LODE_ENOSESSION, "the right session id with another access key: refused");
    is_int(push(cred.sid, KEY, UINT64_MAX - 100, WINDOW, 6, 0, pp, 1, NULL, msg, sizeof(msg)),
           LODE_EWINDOW, "a window that wraps: refused");
    pp[0] = piece(&ps[0], ch[2].id, 0, 0, 0);
    is_int(push(cred.sid, KEY, BASE, WINDOW, 7, 0, pp, 1, NULL, msg, sizeof(msg)), -EINVAL,
           "an empty piece: refused");
    ps[0].length = 10;
    ps[0].chunk_id.len = 15;
    is_int(push(cred.sid, KEY, BASE, WINDOW, 8, 0, pp, 1, NULL, msg, sizeof(msg)), LODE_EBADMSG,
           "a 15-byte chunk id: refused");
    is_int(push(cred.sid, KEY, BASE, WINDOW, 9, 0, pp, 0, NULL, msg, sizeof(msg)), -EINVAL,
           "no pieces: refused");
    usleep(200000);
    ok(lc_dp_recv_window_bytes(rv, w, 0) == before && all_byte(win, WINDOW, 0xcc),
       "none of the refused requests wrote a byte");

    /* Piece-level failures: a missing chunk and a range past a chunk's end fail alone. */
    uint8_t missing[16];
    cmn_random_bytes(missing, 16);
    pp[0] = piece(&ps[0], ch[2].id, 0, (uint32_t)ch[2].len, 0);
    pp[1] = piece(&ps[1], missing, 0, 100, 8192);
    pp[2] = piece(&ps[2], ch[2].id, 4000, 2000, 16384);
    pp[3] = piece(&ps[3], ch[1].id, 0, 4096, 32768);
    rc = push(cred.sid, KEY, BASE, WINDOW, 10, 0, pp, 4, &resp, msg, sizeof(msg));
    ok(rc == 0 && resp && resp->n_pieces == 4 && resp->pieces[0]->status == 0 &&
           resp->pieces[1]->status == LODE_ENOCHUNK && resp->pieces[2]->status != 0 &&
           resp->pieces[3]->status == 0 && resp->bytes == ch[2].len + 4096,
       "a missing chunk and a range past a chunk's end fail only their pieces");
    lode__fanout_push_response__free_unpacked(resp, NULL);
    resp = NULL;
    ex.bytes = before + ch[2].len + 4096;
    is_int(lc_dp_recv_wait(rv, w, &ex, 1, T_MS, &err), 0, "the good pieces arrived");
    ok(memcmp(win, ch[2].data, ch[2].len) == 0 && memcmp(win + 32768, ch[1].data, 4096) == 0 &&
           all_byte(win + 8192, 100, 0xcc) && all_byte(win + 16384, 2000, 0xcc),
       "the good pieces are in place, the failed ones left the window untouched");

    /* A push with another request's tag (a late write of an earlier request into a buffer
     * reused at the same address) is sent by the node and dropped by the receiver. */
    memset(win, 0xcc, WINDOW);
    before = lc_dp_recv_window_bytes(rv, w, 0);
    g_tag = TAG + 1;
    pp[0] = piece(&ps[0], ch[0].id, 0, (uint32_t)ch[0].len, 0);
    rc = push(cred.sid, KEY, BASE, WINDOW, 12, 0, pp, 1, &resp, msg, sizeof(msg));
    ok(rc == 0 && resp && resp->bytes == ch[0].len, "a push with another request's tag is sent");
    lode__fanout_push_response__free_unpacked(resp, NULL);
    resp = NULL;
    usleep(300000);
    ok(lc_dp_recv_window_bytes(rv, w, 0) == before && all_byte(win, WINDOW, 0xcc),
       "and dropped: a stale request's bytes never land in the current window");
    g_tag = TAG;

    /* After the window closed, a push still succeeds at the node but nothing lands. */
    lc_dp_recv_window_close(rv, w);
    w = NULL;
    memset(win, 0xcc, WINDOW);
    pp[0] = piece(&ps[0], ch[0].id, 0, (uint32_t)ch[0].len, 0);
    rc = push(cred.sid, KEY, BASE, WINDOW, 11, 0, pp, 1, &resp, msg, sizeof(msg));
    ok(rc == 0 && resp && resp->bytes == ch[0].len, "a push into a closed window is sent");
    lode__fanout_push_response__free_unpacked(resp, NULL);
    resp = NULL;
    usleep(300000);
    ok(all_byte(win, WINDOW, 0xcc), "and dropped by the receiver: the memory is untouched");

    ok(tl_node_alive(n) && tl_node_crash_count(n) == 0, "lode-node survived everything");
    lc_dp_recv_destroy(rv);
    free(win);
    for (int i = 0; i < 3; i++)
        free(ch[i].data);
    cmn_rpc_sync_close(C);
    int out = tap_done();
    tl_node_destroy(n, out != 0);
    return out;
}
