/* The tcp data plane tests' fixture (dp_fixture.h): a server loop thread, pushes, helpers and
 * raw sockets. */
#include "tests/unit/common/dp_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tests/tap.h"

/* ---- the server thread ------------------------------------------------------------------ */

struct job {
    struct job *next;
    void (*fn)(void *arg);
    void *arg;
    bool done;
};

static struct {
    uv_loop_t loop;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *jobs;
    bool stop;
    _Atomic uint64_t now;        /* the servers' wall clock */
    uint64_t push_pending;       /* mu */
    uint64_t push_ok, push_failed; /* mu */
    int last_push_status;
} g;

static uint64_t fake_now(void *data)
{
    (void)data;
    return atomic_load(&g.now);
}

static void on_async(uv_async_t *a)
{
    (void)a;
    pthread_mutex_lock(&g.mu);
    struct job *list = g.jobs;
    g.jobs = NULL;
    bool stop = g.stop;
    pthread_mutex_unlock(&g.mu);
    /* The list is newest first: run it oldest first. */
    struct job *rev = NULL;
    while (list) {
        struct job *j = list;
        list = j->next;
        j->next = rev;
        rev = j;
    }
    while (rev) {
        struct job *j = rev;
        rev = j->next;
        j->fn(j->arg);
        pthread_mutex_lock(&g.mu);
        j->done = true;
        pthread_cond_broadcast(&g.cv);
        pthread_mutex_unlock(&g.mu);
    }
    if (stop)
        uv_close((uv_handle_t *)&g.async, NULL);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&g.loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Runs fn(arg) on the server thread and waits for it. */
static void on_loop(void (*fn)(void *), void *arg)
{
    struct job j = {.fn = fn, .arg = arg};
    pthread_mutex_lock(&g.mu);
    j.next = g.jobs;
    g.jobs = &j;
    pthread_mutex_unlock(&g.mu);
    uv_async_send(&g.async);
    pthread_mutex_lock(&g.mu);
    while (!j.done)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

void df_loop_start(void)
{
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    atomic_store(&g.now, DF_NOW0);
    if (uv_loop_init(&g.loop) || uv_async_init(&g.loop, &g.async, on_async) ||
        pthread_create(&g.thread, NULL, loop_main, NULL))
        tap_bail("cannot start the server loop");
}

int df_loop_stop(void)
{
    pthread_mutex_lock(&g.mu);
    g.stop = true;
    pthread_mutex_unlock(&g.mu);
    uv_async_send(&g.async);
    pthread_join(g.thread, NULL);
    return uv_loop_close(&g.loop);
}

void df_set_now(uint64_t now_ms)
{
    atomic_store(&g.now, now_ms);
}

/* ---- servers ---------------------------------------------------------------------------- */

struct srv_args {
    struct cmn_dp_server_config cfg;
    struct cmn_dp_server *srv;
    int port;
    int rc;
};

static void do_create(void *arg)
{
    struct srv_args *a = arg;
    struct cmn_err e;
    a->rc = cmn_dp_server_create(&g.loop, &a->cfg, &a->srv);
    if (a->rc == 0)
        a->rc = cmn_dp_server_listen(a->srv, "127.0.0.1:0", &e);
    a->port = a->rc == 0 ? cmn_dp_server_port(a->srv) : -1;
}

struct cmn_dp_server *df_server_new(uint64_t source_id, uint64_t max_queued,
                                        uint32_t max_sessions, uint32_t hello_timeout_ms,
                                        uint32_t max_handshakes, int *port)
{
    struct srv_args a = {.cfg = {.secret = DF_SECRET, .secret_len = DF_SECRET_LEN,
                                 .source_id = source_id, .max_queued_bytes = max_queued,
                                 .max_sessions = max_sessions,
                                 .hello_timeout_ms = hello_timeout_ms, .expiry_check_ms = 50,
                                 .max_handshakes = max_handshakes,
                                 .now_ms = fake_now}};
    on_loop(do_create, &a);
    if (a.rc != 0)
        tap_bail("data server: %d", a.rc);
    *port = a.port;
    return a.srv;
}

struct close_args {
    struct cmn_dp_server *srv;
    bool closed;
};

static void on_server_closed(void *data)
{
    struct close_args *a = data;
    pthread_mutex_lock(&g.mu);
    a->closed = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

static void do_close(void *arg)
{
    struct close_args *a = arg;
    cmn_dp_server_close(a->srv, on_server_closed, a);
}

bool df_server_close(struct cmn_dp_server *srv)
{
    struct close_args a = {.srv = srv};
    on_loop(do_close, &a);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&g.mu);
    while (!a.closed && pthread_cond_timedwait(&g.cv, &g.mu, &dl) == 0)
        ;
    bool closed = a.closed;
    pthread_mutex_unlock(&g.mu);
    return closed;
}

struct stats_args {
    struct cmn_dp_server *srv;
    struct cmn_dp_server_stats st;
};

static void do_stats(void *arg)
{
    struct stats_args *a = arg;
    cmn_dp_server_stats(a->srv, &a->st);
}

struct cmn_dp_server_stats df_server_stats(struct cmn_dp_server *srv)
{
    struct stats_args a = {.srv = srv};
    on_loop(do_stats, &a);
    return a.st;
}

struct source_id_args {
    struct cmn_dp_server *srv;
    uint64_t id;
};

static void do_set_source_id(void *arg)
{
    struct source_id_args *a = arg;
    cmn_dp_server_set_source_id(a->srv, a->id);
}

void df_server_set_source_id(struct cmn_dp_server *srv, uint64_t id)
{
    struct source_id_args a = {.srv = srv, .id = id};
    on_loop(do_set_source_id, &a);
}

/* ---- pushes ----------------------------------------------------------------------------- */

struct push_args {
    const struct df_piece *p;
    size_t n;
    int first_error;
};

static void on_pushed(void *data, int status)
{
    (void)data;
    pthread_mutex_lock(&g.mu);
    g.push_pending--;
    if (status == 0)
        g.push_ok++;
    else
        g.push_failed++;
    g.last_push_status = status;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

static void do_push(void *arg)
{
    struct push_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        const struct df_piece *p = &a->p[i];
        pthread_mutex_lock(&g.mu);
        g.push_pending++;
        pthread_mutex_unlock(&g.mu);
        int rc = cmn_dp_push(p->srv, p->sid, p->key, p->base, p->tag, p->addr, p->src, p->len,
                             on_pushed, NULL);
        if (rc != 0) {
            pthread_mutex_lock(&g.mu);
            g.push_pending--;
            pthread_mutex_unlock(&g.mu);
            if (!a->first_error)
                a->first_error = rc;
        }
    }
}

int df_push(const struct df_piece *p, size_t n)
{
    struct push_args a = {.p = p, .n = n};
    on_loop(do_push, &a);
    return a.first_error;
}

bool df_pushes_drain(int seconds)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += seconds;
    pthread_mutex_lock(&g.mu);
    while (g.push_pending && pthread_cond_timedwait(&g.cv, &g.mu, &dl) == 0)
        ;
    bool ok_ = g.push_pending == 0;
    pthread_mutex_unlock(&g.mu);
    return ok_;
}

void df_push_counts(uint64_t *okc, uint64_t *failed)
{
    pthread_mutex_lock(&g.mu);
    *okc = g.push_ok;
    *failed = g.push_failed;
    g.push_ok = g.push_failed = 0;
    pthread_mutex_unlock(&g.mu);
}

int df_last_push_status(void)
{
    pthread_mutex_lock(&g.mu);
    int st = g.last_push_status;
    pthread_mutex_unlock(&g.mu);
    return st;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

uint64_t df_rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

void df_fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(df_rng() >> 56);
}

struct cmn_dp_cred df_cred_make(uint8_t sid_tag, uint64_t expires, bool forge)
{
    struct cmn_dp_cred c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 16; i++)
        c.sid[i] = (uint8_t)(sid_tag * 16 + i);
    c.expires_ms = expires;
    cmn_dp_cred_set_key(&c, DF_KEY, strlen(DF_KEY));
    cmn_dp_cred_sign(DF_SECRET, DF_SECRET_LEN, &c);
    if (forge)
        c.mac[5] ^= 0x40;
    return c;
}

struct lc_dp_recv *df_recv_new(const struct cmn_dp_cred *c)
{
    struct lc_dp_recv_config cfg = {.cred = *c, .connect_timeout_ms = 3000};
    struct lc_dp_recv *r;
    struct cmn_err e;
    if (lc_dp_recv_create(&cfg, &r, &e) != 0)
        tap_bail("receiver: %s", e.msg);
    return r;
}

int df_add(struct lc_dp_recv *r, uint64_t id, int port)
{
    char hp[64];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    struct cmn_err e;
    return lc_dp_recv_add_source(r, id, hp, &e);
}

bool df_all_equal(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != v)
            return false;
    }
    return true;
}

void df_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bool df_wait_stats(struct lc_dp_recv *r, bool (*pred)(const struct lc_dp_recv_stats *, uint64_t),
                       uint64_t arg)
{
    for (int i = 0; i < 500; i++) {
        struct lc_dp_recv_stats st;
        lc_dp_recv_stats(r, &st);
        if (pred(&st, arg))
            return true;
        df_sleep_ms(10);
    }
    return false;
}

bool df_dropped_at_least(const struct lc_dp_recv_stats *st, uint64_t n)
{
    return st->dropped_frames >= n;
}

/* ---- raw sockets ------------------------------------------------------------------------- */

int df_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        tap_bail("raw connect to %d failed", port);
    return fd;
}

size_t df_read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 5000) <= 0)
            break;
        ssize_t k = read(fd, (uint8_t *)buf + got, n - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

bool df_write_full(int fd, const void *buf, size_t n)
{
    return send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n;
}

bool df_peer_closes_within(int fd, int ms)
{
    uint8_t b[256];
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, ms) <= 0)
            return false;
        if (read(fd, b, sizeof b) <= 0)
            return true;
    }
}

bool df_peer_closes(int fd)
{
    return df_peer_closes_within(fd, 5000);
}

int df_raw_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        tap_bail("raw listen failed");
    *port = ntohs(sa.sin_port);
    return fd;
}

int df_raw_source_accept(int lfd, uint64_t source_id)
{
    int fd = accept(lfd, NULL, NULL);
    uint8_t hello[CMN_DP_HELLO_SIZE], rep[CMN_DP_REPLY_SIZE];
    if (fd < 0 || df_read_full(fd, hello, sizeof hello) != sizeof hello)
        tap_bail("raw source: no HELLO from the receiver");
    struct cmn_dp_reply okr = {.kind = CMN_DP_REPLY_OK, .source_id = source_id};
    cmn_dp_reply_encode(&okr, rep);
    if (!df_write_full(fd, rep, sizeof rep))
        tap_bail("raw source: cannot answer the HELLO");
    return fd;
}

bool df_raw_frame(int fd, uint64_t base, uint32_t tag, uint64_t addr, uint32_t len,
                  uint8_t fill)
{
    uint8_t *frame = malloc(CMN_DP_DATA_HDR_SIZE + (size_t)len);
    if (!frame)
        return false;
    struct cmn_dp_data_hdr h = {.len = len, .addr = addr, .window_base = base, .tag = tag};
    cmn_dp_data_encode(&h, frame);
    memset(frame + CMN_DP_DATA_HDR_SIZE, fill, len);
    bool sent = df_write_full(fd, frame, CMN_DP_DATA_HDR_SIZE + (size_t)len);
    free(frame);
    return sent;
}
