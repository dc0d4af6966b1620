/* kill -9 at random moments: what lode-node acknowledged survives, byte for byte.
 *
 * Each round, a writer keeps PIPELINE chunk puts and deletes in flight on one connection
 * (random sizes: 4 KiB, 64 KiB + 1 (two checksum blocks), 1 MiB, anything up to 300 KiB),
 * while a second thread SIGKILLs the node after a random 50-400 ms. The node is restarted and
 * every chunk the writer ever sent is checked:
 *   - acknowledged puts (not deleted since): listed, and a whole read and a random range read
 *     return exactly the bytes sent;
 *   - acknowledged deletes: not listed, reads say LODE_ENOCHUNK;
 *   - puts or deletes in flight at the kill: either state, but a chunk that exists is
 *     intact, and one that is not listed reads as LODE_ENOCHUNK (never partial bytes);
 *   - CHUNK_LIST names nothing the writer did not send, with the lengths it sent.
 * Data is regenerated from a per-chunk seed, so the test keeps no copies. Volumes are 4 MiB,
 * so rounds also seal volumes and (with the deletes) give compaction work to be interrupted.
 *
 * Seed printed; LODE_TEST_SEED replays the choices (not the timing). LODE_NODE_CRASH_ROUNDS
 * changes the number of rounds (default 20).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/rpc_sync.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 10000
#define PIPELINE 8
#define DEFAULT_ROUNDS 20
#define MAX_LIVE 150               /* past this many acked chunks, the writer deletes more */
#define MAX_REPORTS 8              /* failure details printed per round and kind */

enum cstate {
    C_MAYBE = 0,                   /* put sent but never acknowledged, or acked but a delete
                                      of it was cut off: absent or intact */
    C_ACKED,                       /* put acknowledged, not deleted: must be intact */
    C_DELETED,                     /* delete acknowledged: must be gone */
};

struct chunk {
    uint8_t id[16];
    uint32_t len;
    uint64_t seed;
    uint8_t state;
    uint8_t busy;                  /* an operation on it is in flight */
};

struct op {
    uint64_t rid;                  /* request id on the connection */
    size_t idx;                    /* chunk index */
    int is_delete;
};

static struct chunk *chunks;
static size_t n_chunks, cap_chunks;
static uint64_t rng;
static struct tl_node *node;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static uint32_t pick_size(void)
{
    uint64_t r = rnd_below(100);
    if (r < 30)
        return 4096;
    if (r < 50)
        return 65537;
    if (r < 58)
        return 1u << 20;
    return 1 + (uint32_t)rnd_below(300 * 1024);
}

static size_t new_chunk(void)
{
    if (n_chunks == cap_chunks) {
        cap_chunks = cap_chunks ? 2 * cap_chunks : 1024;
        chunks = realloc(chunks, cap_chunks * sizeof(*chunks));
        if (!chunks)
            tap_bail("out of memory");
    }
    struct chunk *c = &chunks[n_chunks];
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 2; i++) {
        uint64_t v = rnd();
        memcpy(c->id + 8 * i, &v, 8);
    }
    c->len = pick_size();
    c->seed = rnd();
    c->state = C_MAYBE;
    return n_chunks++;
}

/* ---- the killer thread */

struct killer {
    pthread_t th;
    pid_t pid;
    unsigned delay_ms;
    int fired;                     /* set (atomically) just before the signal is sent */
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    struct timespec ts = {.tv_sec = k->delay_ms / 1000,
                          .tv_nsec = (long)(k->delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    /* Flag first: the writer must never see the connection end by our hand unflagged. */
    __atomic_store_n(&k->fired, 1, __ATOMIC_SEQ_CST);
    kill(k->pid, SIGKILL);
    return NULL;
}

/* ---- one writing phase, ended by the kill */

struct round_stats {
    unsigned puts_sent, puts_acked, dels_sent, dels_acked, unexpected;
};

/* An acked chunk with nothing in flight, or SIZE_MAX. */
static size_t pick_victim(void)
{
    for (int tries = 0; tries < 64 && n_chunks; tries++) {
        size_t i = (size_t)rnd_below(n_chunks);
        if (chunks[i].state == C_ACKED && !chunks[i].busy)
            return i;
    }
    return SIZE_MAX;
}

static int send_op(struct cmn_rpc_sync *c, struct op *op, size_t live, struct round_stats *st,
                   uint8_t *buf)
{
    bool del = live > 0 && rnd_below(100) < (live > MAX_LIVE ? 50u : 15u);
    size_t victim = del ? pick_victim() : SIZE_MAX;
    int rc;
    if (victim != SIZE_MAX) {
        Lode__ChunkIdRequest req = LODE__CHUNK_ID_REQUEST__INIT;
        req.chunk_id.data = chunks[victim].id;
        req.chunk_id.len = 16;
        op->idx = victim;
        op->is_delete = 1;
        chunks[victim].busy = 1;
        rc = tl_rpc_send(c, CMN_RPC_CHUNK_DELETE, &req.base, NULL, 0, &op->rid);
        st->dels_sent++;
    } else {
        size_t i = new_chunk();
        struct chunk *ch = &chunks[i];
        tl_fill(buf, ch->len, ch->seed);
        Lode__ChunkPutRequest req = LODE__CHUNK_PUT_REQUEST__INIT;
        req.chunk_id.data = ch->id;
        req.chunk_id.len = 16;
        req.length = ch->len;
        req.xxh3 = tl_xxh3(buf, ch->len);
        op->idx = i;
        op->is_delete = 0;
        ch->busy = 1;
        rc = tl_rpc_send(c, CMN_RPC_CHUNK_PUT, &req.base, buf, ch->len, &op->rid);
        st->puts_sent++;
    }
    return rc;
}

static void finish_op(struct op *op, const struct cmn_rpc_result *res, bool killed,
                      struct round_stats *st)
{
    struct chunk *ch = &chunks[op->idx];
    ch->busy = 0;
    if (res->status == 0) {
        if (op->is_delete) {
            ch->state = C_DELETED;
            st->dels_acked++;
        } else {
            Lode__ChunkInfo *ci = lode__chunk_info__unpack(NULL, res->body.len, res->body.data);
            if (!ci || ci->length != ch->len) {
                st->unexpected++;
                diag("PUT acknowledged with %s", ci ? "the wrong length" : "no ChunkInfo");
            }
            if (ci)
                lode__chunk_info__free_unpacked(ci, NULL);
            ch->state = C_ACKED;
            st->puts_acked++;
        }
        return;
    }
    /* Not acknowledged: the put may or may not have landed; an acked chunk whose delete was
     * cut off may or may not still be there. */
    ch->state = C_MAYBE;
    if (!killed && st->unexpected++ < MAX_REPORTS)
        diag("%s before the kill: %s (%s)", op->is_delete ? "DELETE" : "PUT",
             lode_errname(res->status), res->message);
}

static void write_until_killed(unsigned delay_ms, struct round_stats *st)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (tl_node_connect(node, T_MS, &c, &err) != 0)
        tap_bail("connect to the node: %s", cmn_err_text(&err));
    struct killer k = {.pid = node->pid, .delay_ms = delay_ms};
    node->sent_signal = SIGKILL; /* the end of this run is ours, not a crash */
    if (pthread_create(&k.th, NULL, killer_main, &k) != 0)
        tap_bail("pthread_create");

    struct op ops[PIPELINE];
    unsigned n_ops = 0;
    size_t live = 0;
    for (size_t i = 0; i < n_chunks; i++)
        live += chunks[i].state == C_ACKED;
    uint8_t *buf = malloc(1u << 20);
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    bool dead = false;
    while (!dead) {
        while (n_ops < PIPELINE) {
            if (send_op(c, &ops[n_ops], live, st, buf) != 0) {
                /* The op may have reached the node before the connection broke. */
                chunks[ops[n_ops].idx].busy = 0;
                chunks[ops[n_ops].idx].state = C_MAYBE;
                dead = true;
                break;
            }
            n_ops++;
        }
        if (dead)
            break;
        int rc = cmn_rpc_sync_recv(c, T_MS, &res);
        unsigned i = 0;
        while (i < n_ops && ops[i].rid != res.request_id)
            i++;
        if (i == n_ops) {
            if (rc == 0)
                tap_bail("a reply to request %" PRIu64 " that was never sent", res.request_id);
            dead = true; /* the connection ended: the node is gone */
            break;
        }
        bool was_delete = ops[i].is_delete;
        finish_op(&ops[i], &res, false, st);
        if (rc == 0)
            live += was_delete ? (size_t)-1 : 1;
        ops[i] = ops[--n_ops];
    }
    /* A connection that ended before the signal was sent means the node went away by
     * itself (a crash): the writer's own errors are not the only thing that can go wrong. */
    if (!__atomic_load_n(&k.fired, __ATOMIC_SEQ_CST)) {
        st->unexpected++;
        diag("the node closed the connection before the kill (%s%s)", lode_errname(res.status),
             tl_why(res.message));
    }
    pthread_join(k.th, NULL);
    /* Everything still in flight was cut off by the kill. */
    struct cmn_rpc_result lost;
    cmn_rpc_result_init(&lost);
    lost.status = LODE_ECLOSED;
    for (unsigned i = 0; i < n_ops; i++)
        finish_op(&ops[i], &lost, true, st);
    cmn_rpc_result_free(&lost);
    cmn_rpc_result_free(&res);
    free(buf);
    cmn_rpc_sync_close(c);
    /* Reap it (SIGKILL again is harmless to a process already dying). */
    tl_node_kill(node, SIGKILL);
}

/* ---- verification after a restart */

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

struct verify_stats {
    unsigned acked_ok, acked_bad, deleted_ok, deleted_bad, maybe_present, maybe_absent,
        maybe_bad, listed_unknown, listed_wrong_len;
    bool node_died;                /* the connection broke: the rest was not checked */
};

static bool transport_error(int rc)
{
    return rc == LODE_ECLOSED || rc == LODE_ETIMEOUT || rc == -ECONNREFUSED ||
           rc == -ECONNRESET || rc == -EPIPE;
}

/* Whole and range reads of a chunk that must be present and intact. */
static bool read_back(struct cmn_rpc_sync *c, const struct chunk *ch, uint8_t *want,
                      struct cmn_rpc_result *res, char *why, size_t why_size)
{
    tl_fill(want, ch->len, ch->seed);
    Lode__ChunkInfo *ci = NULL;
    int rc = tl_chunk_get(c, ch->id, 16, 0, 0, T_MS, res, &ci);
    if (rc != 0) {
        snprintf(why, why_size, "whole GET: %s (%s)", lode_errname(rc), res->message);
        return false;
    }
    bool good = ci->length == ch->len && res->payload.len == ch->len &&
                memcmp(res->payload.data, want, ch->len) == 0 &&
                ci->xxh3 == tl_xxh3(want, ch->len);
    lode__chunk_info__free_unpacked(ci, NULL);
    if (!good) {
        snprintf(why, why_size, "whole GET returned %zu bytes that differ from the %u sent",
                 res->payload.len, ch->len);
        return false;
    }
    uint64_t off = rnd_below(ch->len);
    uint64_t len = rnd_below(4) == 0 ? 0 : 1 + rnd_below(ch->len - off);
    uint64_t expect = len ? len : ch->len - off;
    rc = tl_chunk_get(c, ch->id, 16, off, len, T_MS, res, NULL);
    if (rc != 0 || res->payload.len != expect ||
        memcmp(res->payload.data, want + off, expect) != 0) {
        snprintf(why, why_size, "range GET [%" PRIu64 ", +%" PRIu64 "]: %s, %zu bytes%s", off,
                 len, lode_errname(rc), res->payload.len, rc == 0 ? " that differ" : "");
        return false;
    }
    return true;
}

static void verify(unsigned round, struct verify_stats *vs)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (tl_node_connect(node, T_MS, &c, &err) != 0)
        tap_bail("connect to the node: %s", cmn_err_text(&err));
    uint8_t (*listed)[16] = NULL;
    uint64_t *lens = NULL;
    size_t n_listed = 0;
    int rc = tl_chunk_list_all(c, 500, T_MS, &listed, &lens, &n_listed, &err);
    ok(rc == 0, "round %u: CHUNK_LIST after the restart%s", round, tl_why(err.msg));
    if (rc != 0)
        n_listed = 0;

    /* Record index sorted by id, to map listed ids back to what the writer sent. */
    size_t *order = malloc((n_chunks + 1) * sizeof(*order));
    uint8_t (*sorted)[16] = malloc((n_chunks + 1) * 16);
    for (size_t i = 0; i < n_chunks; i++)
        memcpy(sorted[i], chunks[i].id, 16);
    qsort(sorted, n_chunks, 16, cmp_id);
    for (size_t i = 0; i < n_chunks; i++) {
        uint8_t(*p)[16] = bsearch(chunks[i].id, sorted, n_chunks, 16, cmp_id);
        order[p - sorted] = i;
    }
    bool *is_listed = calloc(n_chunks + 1, sizeof(bool));
    for (size_t k = 0; k < n_listed; k++) {
        uint8_t(*p)[16] = bsearch(listed[k], sorted, n_chunks, 16, cmp_id);
        if (!p) {
            if (vs->listed_unknown++ < MAX_REPORTS) {
                char hex[33];
                cmn_hex_encode(listed[k], 16, hex);
                diag("round %u: CHUNK_LIST names %s, which the writer never sent", round, hex);
            }
            continue;
        }
        size_t i = order[p - sorted];
        is_listed[i] = true;
        if (lens[k] != chunks[i].len && vs->listed_wrong_len++ < MAX_REPORTS)
            diag("round %u: CHUNK_LIST gives length %" PRIu64 " for a chunk of %u bytes", round,
                 lens[k], chunks[i].len);
    }

    uint8_t *want = malloc(1u << 20);
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    char why[700];
    for (size_t i = 0; i < n_chunks; i++) {
        struct chunk *ch = &chunks[i];
        char hex[33];
        cmn_hex_encode(ch->id, 16, hex);
        bool must_exist = ch->state == C_ACKED;
        bool must_not = ch->state == C_DELETED;
        if (must_exist) {
            bool good = is_listed[i] && read_back(c, ch, want, &res, why, sizeof(why));
            if (!is_listed[i])
                snprintf(why, sizeof(why), "not in CHUNK_LIST");
            if (good) {
                vs->acked_ok++;
            } else if (vs->acked_bad++ < MAX_REPORTS) {
                diag("round %u: acked chunk %s (%u bytes): %s", round, hex, ch->len, why);
            }
        } else if (must_not) {
            rc = tl_chunk_get(c, ch->id, 16, 0, 0, T_MS, &res, NULL);
            if (rc == LODE_ENOCHUNK && !is_listed[i]) {
                vs->deleted_ok++;
            } else if (vs->deleted_bad++ < MAX_REPORTS) {
                diag("round %u: deleted chunk %s: GET %s, %s", round, hex, lode_errname(rc),
                     is_listed[i] ? "listed" : "not listed");
            }
        } else if (is_listed[i]) {
            /* Not acknowledged (or its delete was cut off) but present: must be intact. */
            if (read_back(c, ch, want, &res, why, sizeof(why))) {
                vs->maybe_present++;
            } else if (vs->maybe_bad++ < MAX_REPORTS) {
                diag("round %u: unacknowledged chunk %s is listed but %s", round, hex, why);
            }
        } else {
            rc = tl_chunk_get(c, ch->id, 16, 0, 0, T_MS, &res, NULL);
            if (rc == LODE_ENOCHUNK && res.payload.len == 0) {
                vs->maybe_absent++;
            } else if (vs->maybe_bad++ < MAX_REPORTS) {
                diag("round %u: unlisted unacknowledged chunk %s: GET %s with %zu bytes", round,
                     hex, lode_errname(rc), res.payload.len);
            }
        }
        if (transport_error(res.status)) {
            vs->node_died = true;
            diag("round %u: the connection broke during verification (%s): the node is %s",
                 round, res.message, tl_node_alive(node) ? "running" : "gone");
            break;
        }
    }
    cmn_rpc_result_free(&res);
    free(want);
    free(is_listed);
    free(sorted);
    free(order);
    free(listed);
    free(lens);
    cmn_rpc_sync_close(c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *env = getenv("LODE_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : 0;
    if (!seed)
        cmn_random_bytes(&seed, sizeof(seed));
    seed |= 1; /* xorshift must not start at 0 */
    rng = seed;
    diag("seed %" PRIu64 " (replay with LODE_TEST_SEED=%" PRIu64 ")", seed, seed);
    const char *renv = getenv("LODE_NODE_CRASH_ROUNDS");
    unsigned rounds = renv && atoi(renv) > 0 ? (unsigned)atoi(renv) : DEFAULT_ROUNDS;

    struct cmn_err err;
    cmn_err_clear(&err);
    struct tl_cluster *meta = NULL;
    struct tl_cluster_options mo = TL_CLUSTER_OPTIONS_DEFAULT;
    mo.replicas = 1;
    mo.name = "nodecrash-meta";
    if (tl_cluster_start(&mo, &meta, &err) != 0)
        tap_bail("start lode-meta: %s", cmn_err_text(&err));
    struct tl_node_options o = TL_NODE_OPTIONS_DEFAULT;
    o.name = "nodecrash";
    o.meta = meta;
    o.volume_size = "4MiB";
    if (tl_node_start(&o, &node, &err) != 0)
        tap_bail("start lode-node: %s", cmn_err_text(&err));

    uint64_t t0 = cmn_mono_ms();
    unsigned total_puts_acked = 0, total_dels_acked = 0;
    for (unsigned r = 1; r <= rounds; r++) {
        struct round_stats st = {0};
        if (!tl_node_alive(node)) {
            ok(0, "round %u: the node is running when the round starts", r);
            if (tl_node_run(node, &err) != 0) {
                diag("restart: %s", cmn_err_text(&err));
                break;
            }
        }
        unsigned delay = 50 + (unsigned)rnd_below(351);
        write_until_killed(delay, &st);
        total_puts_acked += st.puts_acked;
        total_dels_acked += st.dels_acked;
        ok(st.unexpected == 0, "round %u: no errors and no crash before the kill", r);

        uint64_t t = cmn_mono_ms();
        int rc = tl_node_run(node, &err);
        ok(rc == 0, "round %u: the node restarts after kill -9 (%" PRIu64 " ms)%s", r,
           cmn_mono_ms() - t, tl_why(rc ? err.msg : NULL));
        if (rc != 0)
            break;
        struct verify_stats vs = {0};
        verify(r, &vs);
        diag("round %u: killed after %u ms: puts %u sent / %u acked, deletes %u sent / %u "
             "acked; after restart: %u acked intact, %u deleted gone, unacknowledged %u present "
             "(intact) %u absent",
             r, delay, st.puts_sent, st.puts_acked, st.dels_sent, st.dels_acked, vs.acked_ok,
             vs.deleted_ok, vs.maybe_present, vs.maybe_absent);
        ok(!vs.node_died, "round %u: the node serves the whole verification", r);
        ok(vs.acked_bad == 0, "round %u: every acknowledged chunk byte-identical (%u chunks)", r,
           vs.acked_ok);
        ok(vs.deleted_bad == 0, "round %u: every acknowledged delete gone (%u chunks)", r,
           vs.deleted_ok);
        ok(vs.maybe_bad == 0 && vs.listed_unknown == 0 && vs.listed_wrong_len == 0,
           "round %u: unacknowledged chunks absent or intact, nothing unknown listed", r);
    }
    diag("%u rounds in %" PRIu64 " ms: %u puts and %u deletes acknowledged in all", rounds,
         cmn_mono_ms() - t0, total_puts_acked, total_dels_acked);
    ok(total_puts_acked >= rounds, "the writer got acknowledgements (%u puts)", total_puts_acked);
    ok(total_dels_acked > 0, "deletes were acknowledged too (%u)", total_dels_acked);
    is_int(tl_node_crash_count(node), 0, "the node never crashed by itself");

    free(chunks);
    int failed = tap_done();
    tl_node_destroy(node, failed != 0);
    tl_cluster_destroy(meta, failed != 0);
    return failed;
}
