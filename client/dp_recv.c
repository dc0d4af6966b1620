#include "client/dp_recv.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "common/dp_server.h"

/* Concurrency: the I/O thread owns the loop, every connection and each connection's receive
 * state. `mu` guards what application threads see or change: source states and errors, the
 * list of open windows, byte counts, stats and the command queue. Application threads reach
 * the I/O thread only through commands (uv_async). The fence rests on one libuv property:
 * between an alloc callback and its read callback no other callback runs, so when the I/O
 * thread handles a window's close command no read into that window is under way. */

#define DISCARD_SIZE (256u * 1024)
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_MAX_SOURCES 1024

enum cmd_kind { CMD_ADD, CMD_CLOSE };

struct cmd {
    struct cmd *next;
    enum cmd_kind kind;
};

struct lc_dp_window {
    struct cmd cmd;              /* first: a CMD_CLOSE points back here */
    struct lc_dp_window *next, *prev; /* open windows */
    uint64_t base, size;
    uint32_t tag;
    uint8_t *dest;
    struct lc_dp_sink sink;
    bool staged, open, fenced, sink_failed;
    uint64_t dropped;
    uint64_t *counts;            /* by source index */
};

struct conn;

struct source {
    struct cmd cmd;              /* first: a CMD_ADD points back here */
    uint64_t id;
    uint32_t idx;
    char hostport[256];
    struct sockaddr_storage addr;
    enum lc_dp_source_state state; /* mu */
    struct cmn_err err;          /* mu */
    struct conn *conn;           /* I/O thread: the live attempt, if any */
};

enum rx_state { RX_REPLY, RX_HDR, RX_PAYLOAD };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;            /* connect + reply deadline */
    uv_connect_t creq;
    uv_write_t wreq;
    struct lc_dp_recv *r;
    struct source *src;
    int handles;
    bool dead;
    enum rx_state rx;
    uint8_t hello[CMN_DP_HELLO_SIZE];
    uint8_t reply[CMN_DP_REPLY_SIZE];
    size_t reply_got;
    uint8_t hdr[CMN_DP_DATA_HDR_SIZE];
    size_t hdr_got;
    struct cmn_dp_data_hdr cur;  /* the frame whose payload is being read */
    uint32_t got;                /* payload bytes of it read so far */
    uint64_t off;                /* window offset of its first byte */
    struct lc_dp_window *target; /* NULL: the payload goes to the discard buffer */
    void *slot;                  /* staged windows: the slot being filled */
    size_t slot_cap, slot_got;
    uint64_t slot_off;
};

struct lc_dp_recv {
    struct lc_dp_recv_config cfg;
    uv_loop_t loop;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned waiters;            /* mu: threads blocked on cv */
    struct cmd *cmd_head, *cmd_tail; /* mu */
    bool stop;                   /* mu */
    struct source **sources;     /* mu; never shrinks */
    uint32_t n_sources;
    struct lc_dp_window *windows; /* mu: open windows */
    struct lc_dp_recv_stats st;  /* mu */
    uint8_t *discard;            /* I/O thread: payloads nobody may receive */
};

static void lock(struct lc_dp_recv *r)
{
    pthread_mutex_lock(&r->mu);
}

static void unlock(struct lc_dp_recv *r)
{
    pthread_mutex_unlock(&r->mu);
}

static struct source *source_find(struct lc_dp_recv *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_sources; i++) {
        if (r->sources[i]->id == id)
            return r->sources[i];
    }
    return NULL;
}

static void deadline_after(struct timespec *ts, uint32_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- I/O thread: connections ------------------------------------------------------------ */

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles == 0)
        free(c);
}

/* Gives a half-filled slot back and forgets the frame's destination; what is left of the
 * payload counts as dropped. */
static void abandon_target(struct conn *c)
{
    struct lc_dp_window *w = c->target;
    if (!w)
        return;
    if (c->slot) {
        w->sink.drop_slot(w->sink.data, c->slot);
        c->slot = NULL;
    }
    c->target = NULL;
    struct lc_dp_recv *r = c->r;
    lock(r);
    r->st.dropped_frames++;
    r->st.dropped_bytes += c->cur.len - c->got;
    unlock(r);
}

__attribute__((format(printf, 3, 4))) static void conn_fail(struct conn *c, int code,
                                                            const char *fmt, ...)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->rx == RX_PAYLOAD)
        abandon_target(c);
    struct lc_dp_recv *r = c->r;
    struct source *s = c->src;
    if (s->conn == c)
        s->conn = NULL;
    char msg[CMN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lock(r);
    s->state = LC_DP_SOURCE_FAILED;
    cmn_err_set(&s->err, code, "source %" PRIu64 " (%s): %s", s->id, s->hostport, msg);
    pthread_cond_broadcast(&r->cv);
    unlock(r);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static int reply_code_to_err(unsigned code)
{
    switch (code) {
    case CMN_DP_CODE_BAD_MAC:
        return LODE_EAUTH;
    case CMN_DP_CODE_EXPIRED:
        return LODE_ETIMEOUT;
    case CMN_DP_CODE_IN_USE:
        return -EBUSY;
    case CMN_DP_CODE_BUSY:
        return LODE_EUNAVAILABLE;
    default:
        return LODE_EBADMSG;
    }
}

static void reply_complete(struct conn *c)
{
    struct cmn_dp_reply rep;
    struct cmn_err e;
    cmn_err_clear(&e);
    if (cmn_dp_reply_decode(c->reply, &rep, &e) < 0) {
        conn_fail(c, LODE_EBADMSG, "%s", cmn_err_text(&e));
        return;
    }
    if (rep.kind == CMN_DP_REPLY_ERR) {
        conn_fail(c, reply_code_to_err(rep.code), "HELLO refused: %s",
                  cmn_dp_code_text(rep.code));
        return;
    }
    if (rep.source_id != c->src->id) {
        conn_fail(c, LODE_EBADMSG, "answered as source %" PRIu64, rep.source_id);
        return;
    }
    uv_timer_stop(&c->timer);
    c->rx = RX_HDR;
    c->hdr_got = 0;
    struct lc_dp_recv *r = c->r;
    lock(r);
    c->src->state = LC_DP_SOURCE_READY;
    cmn_err_clear(&c->src->err);
    pthread_cond_broadcast(&r->cv);
    unlock(r);
}

/* mu held. Open windows never overlap, so at most one has this base. */
static struct lc_dp_window *window_for(struct lc_dp_recv *r, uint64_t base)
{
    for (struct lc_dp_window *w = r->windows; w; w = w->next) {
        if (w->base == base)
            return w;
    }
    return NULL;
}

static void header_complete(struct conn *c)
{
    struct lc_dp_recv *r = c->r;
    struct cmn_err e;
    cmn_err_clear(&e);
    if (cmn_dp_data_decode(c->hdr, r->cfg.max_frame, &c->cur, &e) < 0) {
        lock(r);
        r->st.bad_headers++;
        unlock(r);
        conn_fail(c, LODE_EBADMSG, "stream desynchronised: %s", cmn_err_text(&e));
        return;
    }
    c->rx = RX_PAYLOAD;
    c->got = 0;
    c->slot = NULL;
    lock(r);
    struct lc_dp_window *w = window_for(r, c->cur.window_base);
    if (w && w->tag != c->cur.tag) {
        /* Another request's frame for memory this window now owns: never let it land. */
        r->st.stale_frames++;
        w = NULL;
    }
    if (w && cmn_dp_range_inside(w->base, w->size, c->cur.addr, c->cur.len)) {
        c->target = w;
        c->off = c->cur.addr - w->base;
    } else {
        c->target = NULL;
        r->st.dropped_frames++;
        r->st.dropped_bytes += c->cur.len;
        if (w)
            w->dropped += c->cur.len;
    }
    unlock(r);
}

/* The sink could not lend a slot: the window can no longer complete. */
static void sink_failed(struct conn *c)
{
    struct lc_dp_recv *r = c->r;
    struct lc_dp_window *w = c->target;
    lock(r);
    w->sink_failed = true;
    pthread_cond_broadcast(&r->cv);
    unlock(r);
    abandon_target(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    struct lc_dp_recv *r = c->r;
    /* Each buffer ends where the current piece (reply, header, payload) ends, so a read
     * never crosses into the next frame: payload bytes land only where their header said. */
    switch (c->rx) {
    case RX_REPLY:
        *buf = uv_buf_init((char *)c->reply + c->reply_got,
                           (unsigned)(CMN_DP_REPLY_SIZE - c->reply_got));
        return;
    case RX_HDR:
        *buf = uv_buf_init((char *)c->hdr + c->hdr_got,
                           (unsigned)(CMN_DP_DATA_HDR_SIZE - c->hdr_got));
        return;
    case RX_PAYLOAD:
        break;
    }
    size_t left = c->cur.len - c->got;
    struct lc_dp_window *w = c->target;
    if (w && w->staged && !c->slot) {
        size_t cap = 0;
        void *slot = w->sink.get_slot(w->sink.data, c->off + c->got, left, &cap);
        if (slot && (cap == 0 || cap > left)) {
            w->sink.drop_slot(w->sink.data, slot);
            slot = NULL;
        }
        if (slot) {
            c->slot = slot;
            c->slot_cap = cap;
            c->slot_got = 0;
            c->slot_off = c->off + c->got;
        } else {
            sink_failed(c);
            w = NULL;
        }
    }
    if (!w)
        *buf = uv_buf_init((char *)r->discard, (unsigned)(left < DISCARD_SIZE ? left : DISCARD_SIZE));
    else if (!w->staged)
        *buf = uv_buf_init((char *)w->dest + c->off + c->got, (unsigned)left);
    else
        *buf = uv_buf_init((char *)c->slot + c->slot_got, (unsigned)(c->slot_cap - c->slot_got));
}

static void payload_read(struct conn *c, size_t n)
{
    struct lc_dp_recv *r = c->r;
    struct lc_dp_window *w = c->target;
    uint64_t landed = 0;
    c->got += (uint32_t)n;
    if (w && !w->staged) {
        landed = n;
    } else if (w) {
        c->slot_got += n;
        if (c->slot_got == c->slot_cap) {
            void *slot = c->slot;
            c->slot = NULL;
            w->sink.commit_slot(w->sink.data, slot, c->slot_off, c->slot_got);
            landed = c->slot_got;
        }
    }
    bool done = c->got == c->cur.len;
    if (landed || done) {
        lock(r);
        if (landed) {
            w->counts[c->src->idx] += landed;
            r->st.bytes += landed;
        }
        if (done && w)
            r->st.frames++;
        if (r->waiters)
            pthread_cond_broadcast(&r->cv);
        unlock(r);
    }
    if (done) {
        c->rx = RX_HDR;
        c->hdr_got = 0;
        c->target = NULL;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = s->data;
    if (c->dead || nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            conn_fail(c, LODE_ECLOSED, "connection closed by the source%s",
                      c->rx == RX_REPLY ? " before its HELLO reply" : "");
        else
            conn_fail(c, (int)nread, "read: %s", uv_strerror((int)nread));
        return;
    }
    switch (c->rx) {
    case RX_REPLY:
        c->reply_got += (size_t)nread;
        if (c->reply_got == CMN_DP_REPLY_SIZE)
            reply_complete(c);
        break;
    case RX_HDR:
        c->hdr_got += (size_t)nread;
        if (c->hdr_got == CMN_DP_DATA_HDR_SIZE)
            header_complete(c);
        break;
    case RX_PAYLOAD:
        payload_read(c, (size_t)nread);
        break;
    }
}

static void on_hello_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 && !c->dead)
        conn_fail(c, status, "sending HELLO: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->dead)
        return;
    if (status < 0) {
        conn_fail(c, status, "connect: %s", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_buf_t b = uv_buf_init((char *)c->hello, CMN_DP_HELLO_SIZE);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_hello_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0)
        conn_fail(c, rc, "sending HELLO: %s", uv_strerror(rc));
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    conn_fail(c, -ETIMEDOUT, "no HELLO reply within %u ms", c->r->cfg.connect_timeout_ms);
}

static void start_source(struct lc_dp_recv *r, struct source *s)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        lock(r);
        s->state = LC_DP_SOURCE_FAILED;
        cmn_err_set(&s->err, -ENOMEM, "source %" PRIu64 " (%s): out of memory", s->id,
                    s->hostport);
        pthread_cond_broadcast(&r->cv);
        unlock(r);
        return;
    }
    c->r = r;
    c->src = s;
    c->rx = RX_REPLY;
    cmn_dp_hello_encode(&r->cfg.cred, c->hello);
    uv_tcp_init(&r->loop, &c->tcp);
    uv_timer_init(&r->loop, &c->timer);
    c->tcp.data = c->timer.data = c->creq.data = c;
    c->handles = 2;
    s->conn = c;
    uv_timer_start(&c->timer, on_connect_timeout, r->cfg.connect_timeout_ms, 0);
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&s->addr, on_connect);
    if (rc < 0)
        conn_fail(c, rc, "connect: %s", uv_strerror(rc));
}

/* ---- I/O thread: commands --------------------------------------------------------------- */

/* Sources are only ever appended, so entries below this count stay put without the lock. */
static uint32_t source_count(struct lc_dp_recv *r)
{
    lock(r);
    uint32_t n = r->n_sources;
    unlock(r);
    return n;
}

/* The fence: after this, nothing of the receiver refers to w. */
static void fence_window(struct lc_dp_recv *r, struct lc_dp_window *w)
{
    for (uint32_t i = 0, n = source_count(r); i < n; i++) {
        struct conn *c = r->sources[i]->conn;
        if (c && !c->dead && c->rx == RX_PAYLOAD && c->target == w)
            abandon_target(c);
    }
    lock(r);
    w->fenced = true;
    pthread_cond_broadcast(&r->cv);
    unlock(r);
}

static void on_async(uv_async_t *a)
{
    struct lc_dp_recv *r = a->data;
    lock(r);
    struct cmd *list = r->cmd_head;
    r->cmd_head = r->cmd_tail = NULL;
    bool stop = r->stop;
    unlock(r);
    while (list) {
        struct cmd *cmd = list;
        list = cmd->next;
        if (cmd->kind == CMD_ADD)
            start_source(r, (struct source *)cmd);
        else
            fence_window(r, (struct lc_dp_window *)cmd);
    }
    if (stop) {
        for (uint32_t i = 0, n = source_count(r); i < n; i++) {
            struct conn *c = r->sources[i]->conn;
            if (c)
                conn_fail(c, LODE_ECLOSED, "receiver destroyed");
        }
        uv_close((uv_handle_t *)&r->async, NULL);
    }
}

static void *io_main(void *arg)
{
    struct lc_dp_recv *r = arg;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* mu held. */
static void enqueue(struct lc_dp_recv *r, struct cmd *cmd)
{
    cmd->next = NULL;
    if (r->cmd_tail)
        r->cmd_tail->next = cmd;
    else
        r->cmd_head = cmd;
    r->cmd_tail = cmd;
}

/* ---- public API ------------------------------------------------------------------------- */

int lc_dp_recv_create(const struct lc_dp_recv_config *cfg, struct lc_dp_recv **out,
                      struct cmn_err *err)
{
    *out = NULL;
    if (cfg->cred.access_key_len == 0 || cfg->cred.access_key_len > CMN_DP_ACCESS_KEY_MAX)
        return cmn_err_set(err, -EINVAL, "data receiver: access key length %u outside 1..%u",
                           cfg->cred.access_key_len, CMN_DP_ACCESS_KEY_MAX);
    struct lc_dp_recv *r = calloc(1, sizeof *r);
    if (!r)
        return cmn_err_set(err, -ENOMEM, "data receiver: out of memory");
    r->cfg = *cfg;
    if (!r->cfg.connect_timeout_ms)
        r->cfg.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!r->cfg.max_frame)
        r->cfg.max_frame = CMN_DP_MAX_FRAME_DEFAULT;
    if (!r->cfg.max_sources)
        r->cfg.max_sources = DEFAULT_MAX_SOURCES;
    r->sources = calloc(r->cfg.max_sources, sizeof *r->sources);
    r->discard = malloc(DISCARD_SIZE);
    if (!r->sources || !r->discard) {
        free(r->sources);
        free(r->discard);
        free(r);
        return cmn_err_set(err, -ENOMEM, "data receiver: out of memory");
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&r->mu, NULL);
    int rc = uv_loop_init(&r->loop);
    if (rc == 0) {
        rc = uv_async_init(&r->loop, &r->async, on_async);
        if (rc < 0)
            uv_loop_close(&r->loop);
    }
    if (rc == 0) {
        r->async.data = r;
        rc = -pthread_create(&r->thread, NULL, io_main, r);
        if (rc < 0) {
            uv_close((uv_handle_t *)&r->async, NULL);
            uv_run(&r->loop, UV_RUN_DEFAULT);
            uv_loop_close(&r->loop);
        }
    }
    if (rc < 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r->sources);
        free(r->discard);
        free(r);
        return cmn_err_set(err, rc, "data receiver: cannot start its I/O thread: %s",
                           uv_strerror(rc));
    }
    *out = r;
    return 0;
}

void lc_dp_recv_destroy(struct lc_dp_recv *r)
{
    if (!r)
        return;
    lock(r);
    r->stop = true;
    unlock(r);
    uv_async_send(&r->async);
    pthread_join(r->thread, NULL);
    uv_loop_close(&r->loop);
    /* The I/O thread is gone: nothing writes into the windows left open any more. */
    while (r->windows) {
        struct lc_dp_window *w = r->windows;
        r->windows = w->next;
        free(w->counts);
        free(w);
    }
    for (uint32_t i = 0; i < r->n_sources; i++)
        free(r->sources[i]);
    free(r->sources);
    free(r->discard);
    explicit_bzero(&r->cfg.cred, sizeof r->cfg.cred);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int lc_dp_recv_add_source(struct lc_dp_recv *r, uint64_t source_id, const char *hostport,
                          struct cmn_err *err)
{
    struct sockaddr_storage ss;
    if (!hostport || strlen(hostport) >= sizeof r->sources[0]->hostport)
        return cmn_err_set(err, -EINVAL, "source %" PRIu64 ": bad address", source_id);
    int rc = cmn_dp_resolve(hostport, false, &ss, err);
    if (rc < 0)
        return cmn_err_wrap(err, "source %" PRIu64, source_id);
    lock(r);
    struct source *s = source_find(r, source_id);
    if (s && s->state != LC_DP_SOURCE_FAILED) {
        unlock(r);
        return cmn_err_set(err, -EEXIST, "source %" PRIu64 ": already added", source_id);
    }
    if (!s) {
        if (r->n_sources >= r->cfg.max_sources) {
            unlock(r);
            return cmn_err_set(err, -ENOSPC, "source %" PRIu64 ": more than %u sources",
                               source_id, r->cfg.max_sources);
        }
        s = calloc(1, sizeof *s);
        if (!s) {
            unlock(r);
            return cmn_err_set(err, -ENOMEM, "source %" PRIu64 ": out of memory", source_id);
        }
        s->id = source_id;
        s->idx = r->n_sources;
        s->cmd.kind = CMD_ADD;
        r->sources[r->n_sources++] = s;
    }
    snprintf(s->hostport, sizeof s->hostport, "%s", hostport);
    s->addr = ss;
    s->state = LC_DP_SOURCE_CONNECTING;
    cmn_err_clear(&s->err);
    enqueue(r, &s->cmd);
    unlock(r);
    uv_async_send(&r->async);
    return 0;
}

enum lc_dp_source_state lc_dp_recv_source_state(struct lc_dp_recv *r, uint64_t source_id,
                                                struct cmn_err *err)
{
    lock(r);
    struct source *s = source_find(r, source_id);
    enum lc_dp_source_state st = s ? s->state : LC_DP_SOURCE_UNKNOWN;
    if (err) {
        if (s && st == LC_DP_SOURCE_FAILED)
            *err = s->err;
        else
            cmn_err_clear(err);
    }
    unlock(r);
    return st;
}

/* mu held. Waits on cv until the deadline; false once it has passed. */
static bool wait_until(struct lc_dp_recv *r, const struct timespec *deadline)
{
    r->waiters++;
    int rc = pthread_cond_timedwait(&r->cv, &r->mu, deadline);
    r->waiters--;
    return rc != ETIMEDOUT;
}

int lc_dp_recv_wait_ready(struct lc_dp_recv *r, uint32_t timeout_ms, struct cmn_err *err)
{
    struct timespec deadline;
    deadline_after(&deadline, timeout_ms);
    lock(r);
    for (;;) {
        uint32_t connecting = 0;
        struct source *failed = NULL;
        for (uint32_t i = 0; i < r->n_sources; i++) {
            struct source *s = r->sources[i];
            if (s->state == LC_DP_SOURCE_CONNECTING)
                connecting++;
            else if (s->state == LC_DP_SOURCE_FAILED && !failed)
                failed = s;
        }
        if (!connecting) {
            int rc = 0;
            if (failed) {
                rc = failed->err.code;
                if (err)
                    *err = failed->err;
            }
            unlock(r);
            return rc;
        }
        if (!wait_until(r, &deadline)) {
            unlock(r);
            return cmn_err_set(err, LODE_ETIMEOUT,
                               "%u data source(s) still connecting after %u ms", connecting,
                               timeout_ms);
        }
    }
}

int lc_dp_recv_window_open(struct lc_dp_recv *r, uint64_t base, uint64_t size, uint32_t tag,
                           void *dest, const struct lc_dp_sink *sink, struct lc_dp_window **out)
{
    *out = NULL;
    if (size == 0 || base + size < base || tag == 0 || !dest == !sink)
        return -EINVAL;
    if (sink && (!sink->get_slot || !sink->commit_slot || !sink->drop_slot))
        return -EINVAL;
    struct lc_dp_window *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->counts = calloc(r->cfg.max_sources, sizeof *w->counts);
    if (!w->counts) {
        free(w);
        return -ENOMEM;
    }
    w->cmd.kind = CMD_CLOSE;
    w->base = base;
    w->size = size;
    w->tag = tag;
    w->dest = dest;
    if (sink) {
        w->sink = *sink;
        w->staged = true;
    }
    lock(r);
    for (struct lc_dp_window *o = r->windows; o; o = o->next) {
        if (base < o->base + o->size && o->base < base + size) {
            unlock(r);
            free(w->counts);
            free(w);
            return -EBUSY;
        }
    }
    w->next = r->windows;
    if (r->windows)
        r->windows->prev = w;
    r->windows = w;
    w->open = true;
    unlock(r);
    *out = w;
    return 0;
}

uint64_t lc_dp_recv_window_bytes(struct lc_dp_recv *r, struct lc_dp_window *w,
                                 uint64_t source_id)
{
    lock(r);
    struct source *s = source_find(r, source_id);
    uint64_t n = s ? w->counts[s->idx] : 0;
    unlock(r);
    return n;
}

uint64_t lc_dp_recv_window_dropped(struct lc_dp_recv *r, struct lc_dp_window *w)
{
    lock(r);
    uint64_t n = w->dropped;
    unlock(r);
    return n;
}

/* mu held. 1: all counts reached; 0: keep waiting; < 0: failed (err set). */
static int check_expect(struct lc_dp_recv *r, struct lc_dp_window *w,
                        const struct lc_dp_expect *exp, size_t n, struct cmn_err *err)
{
    int done = 1;
    for (size_t i = 0; i < n; i++) {
        struct source *s = source_find(r, exp[i].source_id);
        if (!s)
            return cmn_err_set(err, -ENOENT, "source %" PRIu64 " was never added",
                               exp[i].source_id);
        uint64_t got = w->counts[s->idx];
        if (got >= exp[i].bytes)
            continue;
        if (s->state == LC_DP_SOURCE_FAILED)
            return cmn_err_set(err, s->err.code ? s->err.code : LODE_ECLOSED,
                               "%s (received %" PRIu64 " of %" PRIu64 " bytes)",
                               cmn_err_text(&s->err), got, exp[i].bytes);
        done = 0;
    }
    if (w->sink_failed)
        return cmn_err_set(err, LODE_EINTERNAL, "the window's staging sink failed");
    return done;
}

int lc_dp_recv_wait(struct lc_dp_recv *r, struct lc_dp_window *w, const struct lc_dp_expect *exp,
                    size_t n, uint32_t timeout_ms, struct cmn_err *err)
{
    struct timespec deadline;
    deadline_after(&deadline, timeout_ms);
    lock(r);
    for (;;) {
        int rc = check_expect(r, w, exp, n, err);
        if (rc != 0) {
            unlock(r);
            return rc < 0 ? rc : 0;
        }
        if (!wait_until(r, &deadline))
            break;
    }
    /* Timed out: say what is missing. */
    char msg[CMN_ERR_MSG_MAX];
    size_t used = 0;
    msg[0] = '\0';
    for (size_t i = 0; i < n && used < sizeof msg; i++) {
        struct source *s = source_find(r, exp[i].source_id);
        uint64_t got = s ? w->counts[s->idx] : 0;
        if (got >= exp[i].bytes)
            continue;
        int k = snprintf(msg + used, sizeof msg - used, "%ssource %" PRIu64 ": %" PRIu64
                         " of %" PRIu64, used ? ", " : "", exp[i].source_id, got, exp[i].bytes);
        if (k < 0)
            break;
        used += (size_t)k;
    }
    int rc = check_expect(r, w, exp, n, err);
    unlock(r);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    return cmn_err_set(err, LODE_ETIMEOUT, "data not complete after %u ms (%s)", timeout_ms,
                       msg);
}

void lc_dp_recv_window_close(struct lc_dp_recv *r, struct lc_dp_window *w)
{
    if (!w)
        return;
    lock(r);
    if (w->open) {
        if (w->prev)
            w->prev->next = w->next;
        else
            r->windows = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->open = false;
    }
    enqueue(r, &w->cmd);
    unlock(r);
    uv_async_send(&r->async);
    lock(r);
    while (!w->fenced) {
        r->waiters++;
        pthread_cond_wait(&r->cv, &r->mu);
        r->waiters--;
    }
    unlock(r);
    free(w->counts);
    free(w);
}

void lc_dp_recv_stats(struct lc_dp_recv *r, struct lc_dp_recv_stats *out)
{
    lock(r);
    *out = r->st;
    unlock(r);
}
