/* The raft adapter (see consensus.h). Notes on raft 0.22.1 (v0 "legacy" API) that shape
 * this file:
 *
 * - The apply callback of raft_apply() is not called right after fsm->apply: raft queues
 *   completed requests and fires them later, possibly after applying several entries. So
 *   fsm_apply() cannot hand results through one shared slot. Instead each proposal carries
 *   its own result, and fsm_apply() finds the proposal by log index (raft assigns
 *   req->index on submission, and applies entry last_applied + 1). Entries this replica did
 *   not propose (every entry on a follower) are applied into a scratch slot that nobody
 *   reads, so nothing is allocated per entry and nothing can leak.
 * - fsm->restore() takes ownership of the snapshot buffer only on success.
 * - With snapshot_finalize (fsm version 2) the snapshot buffers stay ours: we free them
 *   there.
 * - There is no ReadIndex: linearizable reads wait for a barrier entry, batched.
 */
#include "meta/consensus.h"
#include "meta/consensus_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <raft.h>
#include <raft/uv.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"

#define LOG_CTX "raft"
#define CHANGE_RETRY_MS 50
#define CHANGE_RETRY_MAX 100       /* 5 s of "a configuration change is still committing" */
#define CATCH_UP_POLL_MS 100
#define CATCH_UP_DEADLINE_MS 30000
#define CATCH_UP_SLACK 64          /* entries a standby may lag when promoted */
#define PROMOTE_DEADLINE_MS 60000
#define CHANGE_WAITERS_MAX 4
#define COMMAND_SCHEMA_VERSION 1

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct proposal {
    struct raft_apply req;         /* first: raft hands it back in apply_done */
    struct meta_consensus *c;
    meta_consensus_apply_cb cb;
    void *data;
    struct meta_fsm_result res;    /* filled by fsm_apply when this entry is applied */
    struct proposal *prev, *next;
};

struct waiter {
    meta_consensus_barrier_cb cb;
    void *data;
    struct waiter *next;
};

struct barrier_round {
    struct raft_barrier req;
    struct meta_consensus *c;
    struct waiter *waiters;
};

enum change_step {
    STEP_ADD,                      /* raft_add: in the configuration as a spare */
    STEP_STANDBY,                  /* raft_assign standby: it starts receiving the log */
    STEP_WAIT,                     /* polling until it has answered and nearly caught up */
    STEP_VOTER,                    /* raft_assign voter: raft's last catch-up round */
    STEP_REMOVE,
    STEP_DONE,                     /* nothing to do: complete from the timer */
};

struct change {
    struct raft_change req;
    struct meta_consensus *c;
    enum change_step step;
    uint64_t id;
    char address[META_ADDR_MAX];
    unsigned retries;
    bool submitted;                /* the step's raft request is in flight */
    uint64_t step_start_ms;        /* loop time the step began */
    meta_consensus_change_done_cb cb; /* NULL once answered early (see change_timer_cb) */
    void *data;
    struct {                       /* retries of the same add-voter, answered together */
        meta_consensus_change_done_cb cb;
        void *data;
    } also[CHANGE_WAITERS_MAX];
    unsigned n_also;
};

struct meta_consensus {
    uv_loop_t *loop;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm_ops;
    struct meta_fsm *fsm;
    uint64_t id;

    struct meta_fsm_result scratch;    /* results nobody waits for */
    struct proposal *pending_head, *pending_tail;

    struct barrier_round *round;       /* barrier in flight, or NULL */
    struct waiter *next_head, *next_tail; /* waiting for the round after it */

    struct change *change;             /* voter change in flight, or NULL */
    uv_timer_t change_timer;           /* retries, polls and deadlines of `change` */
    char change_text[META_ADDR_MAX + 96];

    uv_check_t check;                  /* notices role / term / leader changes */
    bool view_valid;
    enum meta_role last_role;
    uint64_t last_term, last_leader;
    meta_consensus_change_cb on_change;
    void *data;

    uint8_t client_id[CMN_ID_SIZE];    /* for the commands this replica originates */
    uint64_t seq;

    bool started;
    bool closing;
    int handles_open;                  /* check + change_timer + raft */
    void (*close_cb)(void *data);
    void *close_data;
};

/* Raft's codes to ours. Everything a client may simply retry elsewhere maps to
 * LODE_ENOTLEADER. */
static int map_raft_error(const struct meta_consensus *c, int rv)
{
    if (rv == 0)
        return 0;
    if (c->closing || rv == RAFT_SHUTDOWN || rv == RAFT_CANCELED)
        return LODE_ESHUTDOWN;
    switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return LODE_ENOTLEADER;
    case RAFT_NOMEM:
        return -ENOMEM;
    case RAFT_NOSPACE:
        return -ENOSPC;
    case RAFT_TOOBIG:
        return LODE_ETOOLARGE;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_CANTCHANGE:
    case RAFT_NOCONNECTION:
    case RAFT_NOTFOUND:
        return LODE_EMEMBERSHIP;
    default:
        return LODE_EINTERNAL;
    }
}

/* ---------------------------------------------------------------------------------------
 * State machine callbacks (raft_fsm version 2)
 * ------------------------------------------------------------------------------------- */

static int fsm_apply(struct raft_fsm *f, const struct raft_buffer *buf, void **result)
{
    struct meta_consensus *c = f->data;
    raft_index index = raft_last_applied(&c->raft) + 1;
    struct meta_fsm_result *res = &c->scratch;

    /* Only a leader has proposals of its own in the log it applies; after stepping down its
     * proposals are failed by raft, and their indexes may be reused by the next leader. */
    if (raft_state(&c->raft) == RAFT_LEADER) {
        for (struct proposal *p = c->pending_head; p; p = p->next) {
            if (p->req.index == index) {
                res = &p->res;
                break;
            }
        }
    }
    memset(res, 0, sizeof(*res));
    int rc = meta_fsm_apply_entry(c->fsm, buf->base,
                                  meta_entry_unpadded_len(buf->base, buf->len), res);
    if (rc != 0) {
        /* LMDB failed under us (disk, map): this replica's state no longer matches the log.
         * Stopping is the only safe move; on restart the state is rebuilt from raft. */
        LOG_ERROR(LOG_CTX,
                  "applying log entry %llu failed (%s): the local state can no longer be "
                  "trusted; aborting (it is rebuilt from the raft log on restart)",
                  (unsigned long long)index, lode_strerror(rc));
        abort();
    }
    *result = res;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct meta_consensus *c = f->data;
    struct cmn_buf b;
    cmn_buf_init(&b);
    int rc = meta_fsm_snapshot(c->fsm, &b);
    if (rc != 0) {
        cmn_buf_free(&b);
        LOG_ERROR(LOG_CTX, "taking a snapshot failed: %s", lode_strerror(rc));
        return RAFT_IOERR;
    }
    struct raft_buffer *v = raft_malloc(sizeof(*v));
    if (!v) {
        cmn_buf_free(&b);
        return RAFT_NOMEM;
    }
    /* snapshot_finalize is set, so raft never frees these: the data may stay malloc'd
     * (cmn_buf) rather than be copied into raft_malloc memory. */
    v->base = cmn_buf_steal(&b, &v->len);
    *bufs = v;
    *n_bufs = 1;
    LOG_DEBUG(LOG_CTX, "snapshot taken at %llu (%zu bytes)",
              (unsigned long long)raft_last_applied(&c->raft), v->len);
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *f, struct raft_buffer *bufs[],
                                 unsigned *n_bufs)
{
    (void)f;
    if (*bufs) {
        for (unsigned i = 0; i < *n_bufs; i++)
            free((*bufs)[i].base);
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *f, struct raft_buffer *buf)
{
    struct meta_consensus *c = f->data;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = meta_fsm_restore(c->fsm, buf->base, buf->len, &err);
    if (rc != 0) {
        LOG_ERROR(LOG_CTX, "restoring a snapshot (%zu bytes) failed: %s", buf->len,
                  cmn_err_text(&err));
        if (c->started) {
            /* An installed snapshot that cannot be restored leaves the state undefined, and
             * raft 0.22 asserts on the error anyway: stop with the reason logged. */
            abort();
        }
        return RAFT_CORRUPT;     /* raft frees the buffer on failure */
    }
    raft_free(buf->base);        /* ownership passed to us on success */
    buf->base = NULL;
    LOG_DEBUG(LOG_CTX, "state restored from a snapshot (%zu bytes)", buf->len);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Proposals
 * ------------------------------------------------------------------------------------- */

static void pending_unlink(struct meta_consensus *c, struct proposal *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        c->pending_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        c->pending_tail = p->prev;
    p->prev = p->next = NULL;
}

static void apply_done(struct raft_apply *req, int status, void *result)
{
    struct proposal *p = container_of(req, struct proposal, req);
    struct meta_consensus *c = p->c;
    pending_unlink(c, p);
    if (status == 0 && result != &p->res) {
        /* Would mean raft applied our entry at an index other than the one it gave us. */
        LOG_ERROR(LOG_CTX, "entry %llu: applied result not found", (unsigned long long)req->index);
        status = RAFT_IOERR;
    }
    int rc = map_raft_error(c, status);
    p->cb(p->data, rc, rc == 0 ? &p->res : NULL);
    free(p);
}

int meta_consensus_propose(struct meta_consensus *c, const Lode__Command *cmd,
                           meta_consensus_apply_cb cb, void *data)
{
    if (c->closing)
        return LODE_ESHUTDOWN;
    if (raft_state(&c->raft) != RAFT_LEADER)
        return LODE_ENOTLEADER;

    size_t n = meta_cmd_entry_size(cmd);
    size_t size = meta_entry_padded_size(n);
    uint8_t *entry = raft_malloc(size);
    struct proposal *p = calloc(1, sizeof(*p));
    if (!entry || !p) {
        raft_free(entry);
        free(p);
        return -ENOMEM;
    }
    meta_cmd_entry_pack(cmd, entry);
    meta_entry_pad(entry, n, size);
    p->c = c;
    p->cb = cb;
    p->data = data;
    p->req.data = p;

    /* Linked before raft_apply(), which sets req.index: fsm_apply must be able to find the
     * proposal whenever raft applies the entry. */
    p->prev = c->pending_tail;
    if (c->pending_tail)
        c->pending_tail->next = p;
    else
        c->pending_head = p;
    c->pending_tail = p;

    struct raft_buffer b = {.base = entry, .len = size};
    int rv = raft_apply(&c->raft, &p->req, &b, 1, apply_done);
    if (rv != 0) {
        pending_unlink(c, p);
        free(p);
        /* raft 0.22 frees the entry once it has copied it into its in-memory log, which
         * happens before the disk append is submitted; only a refusal at submission
         * (not the leader, malformed) leaves it ours. Any other failure leaks it rather than
         * risk a double free. */
        if (rv == RAFT_NOTLEADER || rv == RAFT_MALFORMED)
            raft_free(entry);
        else
            LOG_ERROR(LOG_CTX, "proposing a command failed: %s", raft_errmsg(&c->raft));
        return map_raft_error(c, rv);
    }
    return 0;
}

int meta_consensus_propose_own(struct meta_consensus *c, Lode__Command *cmd,
                               meta_consensus_apply_cb cb, void *data)
{
    cmd->version = COMMAND_SCHEMA_VERSION;
    cmd->client_id.data = c->client_id;
    cmd->client_id.len = sizeof(c->client_id);
    cmd->seq = ++c->seq;
    cmd->now_ms = cmn_now_ms();
    return meta_consensus_propose(c, cmd, cb, data);
}

/* ---------------------------------------------------------------------------------------
 * Barriers
 * ------------------------------------------------------------------------------------- */

static void fail_waiters(struct waiter *w, int status)
{
    while (w) {
        struct waiter *next = w->next;
        w->cb(w->data, status);
        free(w);
        w = next;
    }
}

static void barrier_done(struct raft_barrier *req, int status);

/* Starts a round for `waiters` (non-empty). On failure the waiters are left to the caller. */
static int round_start(struct meta_consensus *c, struct waiter *waiters)
{
    struct barrier_round *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->c = c;
    r->waiters = waiters;
    r->req.data = r;
    int rv = raft_barrier(&c->raft, &r->req, barrier_done);
    if (rv != 0) {
        free(r);
        return map_raft_error(c, rv);
    }
    c->round = r;
    return 0;
}

static void barrier_done(struct raft_barrier *req, int status)
{
    struct barrier_round *r = req->data;
    struct meta_consensus *c = r->c;
    struct waiter *done = r->waiters;
    int rc = map_raft_error(c, status);
    free(r);
    c->round = NULL;

    /* Waiters that came while this round was in flight need a barrier proposed after they
     * arrived: start it before answering the finished round. */
    struct waiter *next = c->next_head;
    c->next_head = c->next_tail = NULL;
    if (next) {
        int rc2 = c->closing ? LODE_ESHUTDOWN
                 : raft_state(&c->raft) != RAFT_LEADER ? LODE_ENOTLEADER
                                                        : round_start(c, next);
        if (rc2 != 0)
            fail_waiters(next, rc2);
    }
    fail_waiters(done, rc);
}

int meta_consensus_barrier(struct meta_consensus *c, meta_consensus_barrier_cb cb, void *data)
{
    if (c->closing)
        return LODE_ESHUTDOWN;
    if (raft_state(&c->raft) != RAFT_LEADER)
        return LODE_ENOTLEADER;
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->cb = cb;
    w->data = data;
    if (c->round) {
        if (c->next_tail)
            c->next_tail->next = w;
        else
            c->next_head = w;
        c->next_tail = w;
        return 0;
    }
    int rc = round_start(c, w);
    if (rc != 0)
        free(w);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Voter changes
 * ------------------------------------------------------------------------------------- */

static void change_answer(struct change *ch, int status, const char *message)
{
    if (ch->cb)
        ch->cb(ch->data, status, message);
    for (unsigned i = 0; i < ch->n_also; i++)
        ch->also[i].cb(ch->also[i].data, status, message);
    ch->cb = NULL;
    ch->n_also = 0;
}

static void change_finish(struct meta_consensus *c, int status, const char *message)
{
    struct change *ch = c->change;
    c->change = NULL;
    uv_timer_stop(&c->change_timer);
    change_answer(ch, status, message);
    free(ch);
}

static void change_timer_cb(uv_timer_t *t);
static void change_done(struct raft_change *req, int status);

static void change_schedule(struct meta_consensus *c, uint64_t ms)
{
    uv_timer_start(&c->change_timer, change_timer_cb, ms, 0);
}

static int change_submit(struct meta_consensus *c)
{
    struct change *ch = c->change;
    ch->req.data = ch;
    switch (ch->step) {
    case STEP_ADD:
        return raft_add(&c->raft, &ch->req, ch->id, ch->address, change_done);
    case STEP_STANDBY:
        return raft_assign(&c->raft, &ch->req, ch->id, RAFT_STANDBY, change_done);
    case STEP_VOTER:
        return raft_assign(&c->raft, &ch->req, ch->id, RAFT_VOTER, change_done);
    case STEP_REMOVE:
        return raft_remove(&c->raft, &ch->req, ch->id, change_done);
    default:
        return 0;
    }
}

static void change_fail_raft(struct meta_consensus *c, int rv)
{
    struct change *ch = c->change;
    char msg[512];
    const char *what = ch->step == STEP_REMOVE ? "removing" : "adding";
    if (rv == RAFT_NOCONNECTION)
        snprintf(msg, sizeof(msg),
                 "replica %" PRIu64 " at %s did not catch up with the log; it stays a "
                 "non-voting member until add-voter succeeds or it is removed",
                 ch->id, ch->address);
    else if (rv == RAFT_LEADERSHIPLOST || rv == RAFT_NOTLEADER)
        snprintf(msg, sizeof(msg),
                 "leadership changed while %s replica %" PRIu64 "; check the status and "
                 "retry on the new leader",
                 what, ch->id);
    else
        snprintf(msg, sizeof(msg), "%s replica %" PRIu64 ": %s", what, ch->id,
                 c->closing ? "shutting down" : raft_strerror(rv));
    change_finish(c, map_raft_error(c, rv), msg);
}

/* Submits the current step; a configuration entry still committing is retried. */
static void change_run(struct meta_consensus *c)
{
    struct change *ch = c->change;
    int rv = change_submit(c);
    if (rv == RAFT_CANTCHANGE && ch->retries++ < CHANGE_RETRY_MAX) {
        change_schedule(c, CHANGE_RETRY_MS);
        return;
    }
    if (rv != 0) {
        change_fail_raft(c, rv);
        return;
    }
    ch->submitted = true;
    if (ch->step == STEP_VOTER)
        change_schedule(c, PROMOTE_DEADLINE_MS);
}

static void change_next(struct meta_consensus *c, enum change_step step)
{
    struct change *ch = c->change;
    ch->step = step;
    ch->retries = 0;
    ch->submitted = false;
    ch->step_start_ms = uv_now(c->loop);
    /* Never from within raft's callback: the previous configuration entry may still be
     * settling there. */
    change_schedule(c, 0);
}

/* STEP_WAIT: raft's own catch-up (raft_assign to voter) never gives up on a server that
 * does not answer at all, and no other change is possible meanwhile. So the new server
 * first receives the log as a standby, and is promoted only once it has answered and
 * nearly caught up. */
static void change_wait(struct meta_consensus *c)
{
    struct change *ch = c->change;
    if (raft_state(&c->raft) != RAFT_LEADER) {
        change_fail_raft(c, RAFT_LEADERSHIPLOST);
        return;
    }
    raft_index match = 0;
    if (raft_match_index(&c->raft, ch->id, &match) == 0 && match > 0 &&
        match + CATCH_UP_SLACK >= raft_last_index(&c->raft)) {
        change_next(c, STEP_VOTER);
        return;
    }
    if (uv_now(c->loop) - ch->step_start_ms >= CATCH_UP_DEADLINE_MS) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "replica %" PRIu64 " at %s has not caught up with the log within %d s: is it "
                 "running (with join = true) and reachable there? It stays a non-voting "
                 "standby; run add-voter again once it is up, or remove-voter it",
                 ch->id, ch->address, CATCH_UP_DEADLINE_MS / 1000);
        change_finish(c, LODE_EMEMBERSHIP, msg);
        return;
    }
    change_schedule(c, CATCH_UP_POLL_MS);
}

static void change_timer_cb(uv_timer_t *t)
{
    struct meta_consensus *c = t->data;
    struct change *ch = c->change;
    if (!ch || c->closing)
        return;
    if (ch->step == STEP_DONE) {
        change_finish(c, 0, "");
    } else if (ch->step == STEP_WAIT) {
        change_wait(c);
    } else if (!ch->submitted) {
        change_run(c);
    } else if (ch->step == STEP_VOTER && ch->cb) {
        /* Raft is still promoting and cannot be interrupted: answer the caller now and keep
         * the change (without its caller) until raft lets go of it. */
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "replica %" PRIu64 " is still catching up after %d s; raft keeps promoting it "
                 "in the background (see `lodectl meta status`)",
                 ch->id, PROMOTE_DEADLINE_MS / 1000);
        change_answer(ch, LODE_EMEMBERSHIP, msg);
    }
}

static void change_done(struct raft_change *req, int status)
{
    struct change *ch = req->data;
    struct meta_consensus *c = ch->c;
    if (status != 0) {
        change_fail_raft(c, status);
        return;
    }
    if (c->closing) {
        change_finish(c, LODE_ESHUTDOWN, "shutting down");
        return;
    }
    switch (ch->step) {
    case STEP_ADD:
        LOG_INFO(LOG_CTX, "replica %" PRIu64 " at %s added as spare", ch->id, ch->address);
        change_next(c, STEP_STANDBY);
        return;
    case STEP_STANDBY:
        LOG_INFO(LOG_CTX, "replica %" PRIu64 " is a standby; waiting for it to catch up",
                 ch->id);
        change_next(c, STEP_WAIT);
        return;
    case STEP_VOTER:
        LOG_INFO(LOG_CTX, "replica %" PRIu64 " at %s is now a voter", ch->id, ch->address);
        break;
    case STEP_REMOVE:
        LOG_INFO(LOG_CTX, "replica %" PRIu64 " removed from the configuration", ch->id);
        break;
    default:
        break;
    }
    change_finish(c, 0, "");
}

static int change_begin(struct meta_consensus *c, enum change_step step, uint64_t id,
                        const char *address, meta_consensus_change_done_cb cb, void *data)
{
    struct change *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    ch->c = c;
    ch->id = id;
    snprintf(ch->address, sizeof(ch->address), "%s", address ? address : "");
    ch->cb = cb;
    ch->data = data;
    c->change = ch;
    change_next(c, step);
    return 0;
}

const char *meta_consensus_change_pending(struct meta_consensus *c)
{
    const struct change *ch = c->change;
    if (!ch)
        return NULL;
    const char *what = ch->step == STEP_REMOVE ? "removing" : "adding";
    const char *state = ch->step == STEP_WAIT    ? " (waiting for it to catch up)"
                        : ch->step == STEP_VOTER ? " (promoting it to voter)"
                                                 : "";
    snprintf(c->change_text, sizeof(c->change_text), "%s replica %" PRIu64 " at %s%s", what,
             ch->id, ch->address, state);
    return c->change_text;
}

static const struct raft_server *config_find(const struct raft_configuration *conf,
                                             uint64_t id)
{
    for (unsigned i = 0; i < conf->n; i++)
        if (conf->servers[i].id == id)
            return &conf->servers[i];
    return NULL;
}

int meta_consensus_add_voter(struct meta_consensus *c, uint64_t id, const char *raft_address,
                             meta_consensus_change_done_cb cb, void *data)
{
    if (c->closing)
        return LODE_ESHUTDOWN;
    if (raft_state(&c->raft) != RAFT_LEADER)
        return LODE_ENOTLEADER;
    struct change *ch = c->change;
    if (ch && ch->step != STEP_REMOVE && ch->id == id && strcmp(ch->address, raft_address) == 0 &&
        ch->cb && ch->n_also < CHANGE_WAITERS_MAX) {
        /* A client retrying the add it is already waiting for: answer both at the end. */
        ch->also[ch->n_also].cb = cb;
        ch->also[ch->n_also].data = data;
        ch->n_also++;
        return 0;
    }
    if (ch)
        return LODE_EMEMBERSHIP;
    const struct raft_configuration *conf = &c->raft.configuration;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].id != id && strcmp(conf->servers[i].address, raft_address) == 0)
            return LODE_EMEMBERSHIP;
    }
    const struct raft_server *s = config_find(conf, id);
    if (s && strcmp(s->address, raft_address) != 0)
        return LODE_EMEMBERSHIP;
    enum change_step step = !s                          ? STEP_ADD
                            : s->role == RAFT_VOTER     ? STEP_DONE
                            : s->role == RAFT_STANDBY   ? STEP_WAIT
                                                        : STEP_STANDBY;
    return change_begin(c, step, id, raft_address, cb, data);
}

int meta_consensus_remove_voter(struct meta_consensus *c, uint64_t id,
                                meta_consensus_change_done_cb cb, void *data)
{
    if (c->closing)
        return LODE_ESHUTDOWN;
    if (raft_state(&c->raft) != RAFT_LEADER)
        return LODE_ENOTLEADER;
    if (c->change)
        return LODE_EMEMBERSHIP;
    const struct raft_server *s = config_find(&c->raft.configuration, id);
    if (!s)
        return LODE_EMEMBERSHIP;
    return change_begin(c, STEP_REMOVE, id, s->address, cb, data);
}

/* ---------------------------------------------------------------------------------------
 * Views
 * ------------------------------------------------------------------------------------- */

enum meta_role meta_consensus_role(struct meta_consensus *c)
{
    switch (raft_state(&c->raft)) {
    case RAFT_LEADER:
        return META_ROLE_LEADER;
    case RAFT_FOLLOWER:
        return META_ROLE_FOLLOWER;
    case RAFT_CANDIDATE:
        return META_ROLE_CANDIDATE;
    default:
        return META_ROLE_UNAVAILABLE;
    }
}

uint64_t meta_consensus_leader(struct meta_consensus *c, const char **raft_address)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&c->raft, &id, &addr);
    if (raft_address)
        *raft_address = id ? addr : NULL;
    return id;
}

uint64_t meta_consensus_id(const struct meta_consensus *c)
{
    return c->id;
}

uint64_t meta_consensus_term(struct meta_consensus *c)
{
    return raft_current_term(&c->raft);
}

uint64_t meta_consensus_commit_index(struct meta_consensus *c)
{
    return raft_commit_index(&c->raft);
}

uint64_t meta_consensus_last_applied(struct meta_consensus *c)
{
    return raft_last_applied(&c->raft);
}

uint64_t meta_consensus_last_index(struct meta_consensus *c)
{
    return raft_last_index(&c->raft);
}

size_t meta_consensus_servers(struct meta_consensus *c, struct meta_server *out, size_t max)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    for (unsigned i = 0; i < conf->n && i < max; i++) {
        out[i].id = conf->servers[i].id;
        out[i].raft_address = conf->servers[i].address;
        out[i].role = conf->servers[i].role == RAFT_VOTER     ? META_SERVER_VOTER
                      : conf->servers[i].role == RAFT_STANDBY ? META_SERVER_STANDBY
                                                              : META_SERVER_SPARE;
    }
    return conf->n;
}

static void check_cb(uv_check_t *h)
{
    struct meta_consensus *c = h->data;
    if (c->closing || !c->on_change)
        return;
    struct meta_consensus_view v;
    v.role = meta_consensus_role(c);
    v.term = meta_consensus_term(c);
    v.leader_id = meta_consensus_leader(c, &v.leader_raft_address);
    if (c->view_valid && v.role == c->last_role && v.term == c->last_term &&
        v.leader_id == c->last_leader)
        return;
    c->view_valid = true;
    c->last_role = v.role;
    c->last_term = v.term;
    c->last_leader = v.leader_id;
    c->on_change(c->data, &v);
}

/* ---------------------------------------------------------------------------------------
 * Start and close
 * ------------------------------------------------------------------------------------- */

static void fail_leftovers(struct meta_consensus *c)
{
    /* Raft fails its requests when it closes; anything still here was not handed back. */
    while (c->pending_head) {
        struct proposal *p = c->pending_head;
        pending_unlink(c, p);
        p->cb(p->data, LODE_ESHUTDOWN, NULL);
        free(p);
    }
    if (c->round) {
        struct barrier_round *r = c->round;
        c->round = NULL;
        fail_waiters(r->waiters, LODE_ESHUTDOWN);
        free(r);
    }
    struct waiter *next = c->next_head;
    c->next_head = c->next_tail = NULL;
    fail_waiters(next, LODE_ESHUTDOWN);
    if (c->change)
        change_finish(c, LODE_ESHUTDOWN, "shutting down");
}

static void handle_closed(struct meta_consensus *c)
{
    if (--c->handles_open > 0)
        return;
    fail_leftovers(c);
    void (*cb)(void *) = c->close_cb;
    void *data = c->close_data;
    free(c);
    if (cb)
        cb(data);
}

static void uv_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void raft_closed(struct raft *r)
{
    struct meta_consensus *c = container_of(r, struct meta_consensus, raft);
    raft_uv_close(&c->io);
    raft_uv_tcp_close(&c->transport);
    handle_closed(c);
}

void meta_consensus_close(struct meta_consensus *c, void (*cb)(void *data), void *data)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_cb = cb;
    c->close_data = data;
    uv_close((uv_handle_t *)&c->check, uv_handle_closed);
    uv_close((uv_handle_t *)&c->change_timer, uv_handle_closed);
    raft_close(&c->raft, raft_closed);
}

static int make_dir(const char *dir, struct cmn_err *err)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    return cmn_err_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));
}

static int bootstrap(struct meta_consensus *c, const struct meta_consensus_options *o,
                     struct cmn_err *err)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rv = 0;
    for (size_t i = 0; i < o->n_bootstrap && rv == 0; i++)
        rv = raft_configuration_add(&conf, o->bootstrap[i].id, o->bootstrap[i].raft_address,
                                    RAFT_VOTER);
    if (rv == 0)
        rv = raft_bootstrap(&c->raft, &conf);
    raft_configuration_close(&conf);
    if (rv == RAFT_CANTBOOTSTRAP)
        return 0;                /* the directory already holds raft state: not a first start */
    if (rv != 0)
        return cmn_err_set(err, LODE_EINTERNAL, "raft bootstrap: %s (%s)", raft_strerror(rv),
                           raft_errmsg(&c->raft));
    LOG_INFO(LOG_CTX, "bootstrapped a new group with %zu voter(s)", o->n_bootstrap);
    return 0;
}

int meta_consensus_start(const struct meta_consensus_options *o, struct meta_consensus **out,
                         struct cmn_err *err)
{
    int rv;
    *out = NULL;
    rv = make_dir(o->dir, err);
    if (rv)
        return rv;

    struct meta_consensus *c = calloc(1, sizeof(*c));
    if (!c)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    c->loop = o->loop;
    c->fsm = o->fsm;
    c->id = o->id;
    c->on_change = o->on_change;
    c->data = o->data;
    struct cmn_id cid = cmn_id_random();
    memcpy(c->client_id, cid.b, sizeof(c->client_id));

    c->transport.version = 1;    /* raft >= 0.17 rejects an unversioned transport */
    c->transport.data = c;
    rv = raft_uv_tcp_init(&c->transport, o->loop);
    if (rv != 0) {
        cmn_err_set(err, LODE_EINTERNAL, "raft transport: %s", c->transport.errmsg);
        free(c);
        return LODE_EINTERNAL;
    }
    rv = raft_uv_init(&c->io, o->loop, o->dir, &c->transport);
    if (rv != 0) {
        cmn_err_set(err, LODE_EINTERNAL, "raft storage in %s: %s", o->dir, c->io.errmsg);
        raft_uv_tcp_close(&c->transport);
        free(c);
        return LODE_EINTERNAL;
    }

    c->fsm_ops.version = 2;
    c->fsm_ops.data = c;
    c->fsm_ops.apply = fsm_apply;
    c->fsm_ops.snapshot = fsm_snapshot;
    c->fsm_ops.snapshot_finalize = fsm_snapshot_finalize;
    c->fsm_ops.restore = fsm_restore;
    c->fsm_ops.snapshot_async = NULL;
    rv = raft_init(&c->raft, &c->io, &c->fsm_ops, o->id, o->raft_address);
    if (rv != 0) {
        cmn_err_set(err, LODE_EINTERNAL, "raft init: %s", raft_errmsg(&c->raft));
        raft_uv_close(&c->io);
        raft_uv_tcp_close(&c->transport);
        free(c);
        return LODE_EINTERNAL;
    }
    raft_set_election_timeout(&c->raft, o->election_timeout_ms);
    raft_set_heartbeat_timeout(&c->raft, o->heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&c->raft, o->snapshot_threshold);
    raft_set_snapshot_trailing(&c->raft, o->snapshot_trailing);
    /* Pre-vote keeps a replica that was cut off from forcing an election when it comes
     * back. It also makes failover faster with raft 0.22: without it the first candidate's
     * vote is refused by the other follower (which heard from the old leader recently) and a
     * second term is needed; measured on loopback, 2.6-3.2 s without against 1.4-2.0 s with. */
    raft_set_pre_vote(&c->raft, true);

    uv_check_init(o->loop, &c->check);
    c->check.data = c;
    uv_timer_init(o->loop, &c->change_timer);
    c->change_timer.data = c;
    c->handles_open = 3;

    rv = 0;
    if (o->n_bootstrap > 0)
        rv = bootstrap(c, o, err);
    if (rv == 0) {
        int r = raft_start(&c->raft);
        if (r != 0) {
            const char *why = raft_errmsg(&c->raft)[0] ? raft_errmsg(&c->raft) : c->io.errmsg;
            char hint[META_ADDR_MAX + 256] = "";
            if (r == RAFT_IOERR)
                snprintf(hint, sizeof(hint),
                         "; is raft-address %s used by another process, or %s unreadable?",
                         o->raft_address, o->dir);
            rv = cmn_err_set(err, LODE_EINTERNAL, "raft start: %s%s%s%s%s", raft_strerror(r),
                             why[0] ? " (" : "", why, why[0] ? ")" : "", hint);
        }
    }
    if (rv != 0) {
        /* Closing is asynchronous: the caller runs the loop to let it finish. */
        meta_consensus_close(c, NULL, NULL);
        return rv;
    }
    c->started = true;
    uv_check_start(&c->check, check_cb);
    LOG_INFO(LOG_CTX, "started: id %" PRIu64 " at %s, last index %llu, applied %llu", o->id,
             o->raft_address, (unsigned long long)raft_last_index(&c->raft),
             (unsigned long long)raft_last_applied(&c->raft));
    *out = c;
    return 0;
}
