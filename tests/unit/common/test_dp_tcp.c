/* The tcp data plane end to end on loopback: data servers (common/dp_server.c) on a loop
 * thread of their own, liblode's receiver (client/dp_recv.c) in this process, and raw sockets
 * where a test needs a client or source that misbehaves. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "client/dp_recv.h"
#include "common/dp_proto.h"
#include "common/dp_server.h"
#include "common/log.h"
#include "tests/tap.h"

static const char secret[] = "dataplane-test-secret";
#define SECRET_LEN (sizeof secret - 1)
#define KEY "AKIDTESTKEY"
#define MiB (1024u * 1024)
#define NOW0 1800000000000ull    /* the servers' fake wall clock starts here */

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

static void loop_start(void)
{
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    atomic_store(&g.now, NOW0);
    if (uv_loop_init(&g.loop) || uv_async_init(&g.loop, &g.async, on_async) ||
        pthread_create(&g.thread, NULL, loop_main, NULL))
        tap_bail("cannot start the server loop");
}

static void loop_stop(void)
{
    pthread_mutex_lock(&g.mu);
    g.stop = true;
    pthread_mutex_unlock(&g.mu);
    uv_async_send(&g.async);
    pthread_join(g.thread, NULL);
    is_int(uv_loop_close(&g.loop), 0, "server loop closed with no handle left");
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

static struct cmn_dp_server *server_new(uint64_t source_id, uint64_t max_queued,
                                        uint32_t max_sessions, uint32_t hello_timeout_ms,
                                        uint32_t max_handshakes, int *port)
{
    struct srv_args a = {.cfg = {.secret = secret, .secret_len = SECRET_LEN,
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

static bool server_close(struct cmn_dp_server *srv)
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

static struct cmn_dp_server_stats server_stats(struct cmn_dp_server *srv)
{
    struct stats_args a = {.srv = srv};
    on_loop(do_stats, &a);
    return a.st;
}

/* ---- pushes ----------------------------------------------------------------------------- */

struct piece {
    struct cmn_dp_server *srv;
    const uint8_t *sid;
    const char *key;
    uint64_t base, addr;
    const void *src;
    size_t len;
};

struct push_args {
    const struct piece *p;
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
        const struct piece *p = &a->p[i];
        pthread_mutex_lock(&g.mu);
        g.push_pending++;
        pthread_mutex_unlock(&g.mu);
        int rc = cmn_dp_push(p->srv, p->sid, p->key, p->base, p->addr, p->src, p->len,
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

/* Submits pieces on the server thread; returns the first submission error (0: all taken). */
static int push(const struct piece *p, size_t n)
{
    struct push_args a = {.p = p, .n = n};
    on_loop(do_push, &a);
    return a.first_error;
}

static bool pushes_drain(int seconds)
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

static void push_counts(uint64_t *okc, uint64_t *failed)
{
    pthread_mutex_lock(&g.mu);
    *okc = g.push_ok;
    *failed = g.push_failed;
    g.push_ok = g.push_failed = 0;
    pthread_mutex_unlock(&g.mu);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 56);
}

static struct cmn_dp_cred cred_make(uint8_t sid_tag, uint64_t expires, bool forge)
{
    struct cmn_dp_cred c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 16; i++)
        c.sid[i] = (uint8_t)(sid_tag * 16 + i);
    c.expires_ms = expires;
    cmn_dp_cred_set_key(&c, KEY, strlen(KEY));
    cmn_dp_cred_sign(secret, SECRET_LEN, &c);
    if (forge)
        c.mac[5] ^= 0x40;
    return c;
}

static struct lc_dp_recv *recv_new(const struct cmn_dp_cred *c)
{
    struct lc_dp_recv_config cfg = {.cred = *c, .connect_timeout_ms = 3000};
    struct lc_dp_recv *r;
    struct cmn_err e;
    if (lc_dp_recv_create(&cfg, &r, &e) != 0)
        tap_bail("receiver: %s", e.msg);
    return r;
}

static int add(struct lc_dp_recv *r, uint64_t id, int port)
{
    char hp[64];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    struct cmn_err e;
    return lc_dp_recv_add_source(r, id, hp, &e);
}

static bool all_equal(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != v)
            return false;
    }
    return true;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls the receiver's stats until pred holds or 5 s pass. */
static bool wait_stats(struct lc_dp_recv *r, bool (*pred)(const struct lc_dp_recv_stats *, uint64_t),
                       uint64_t arg)
{
    for (int i = 0; i < 500; i++) {
        struct lc_dp_recv_stats st;
        lc_dp_recv_stats(r, &st);
        if (pred(&st, arg))
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool dropped_at_least(const struct lc_dp_recv_stats *st, uint64_t n)
{
    return st->dropped_frames >= n;
}

/* ---- raw sockets ------------------------------------------------------------------------- */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        tap_bail("raw connect to %d failed", port);
    return fd;
}

/* Reads exactly n bytes (timeout 5 s). Returns n, or how many came before EOF/error. */
static size_t read_full(int fd, void *buf, size_t n)
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

static bool write_full(int fd, const void *buf, size_t n)
{
    return send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/* True when the peer closes within ms (EOF or reset), ignoring data. */
static bool peer_closes_within(int fd, int ms)
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

static bool peer_closes(int fd)
{
    return peer_closes_within(fd, 5000);
}

static int raw_listen(int *port)
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

/* ---- tests ------------------------------------------------------------------------------- */

#define WIN (32u * MiB)

/* Three sources fill one 32 MiB window with interleaved pieces of varied sizes. */
static void test_three_sources(void)
{
    int port[3];
    uint64_t ids[3] = {1, 2, 0x80000000u};
    struct cmn_dp_server *srv[3];
    for (int i = 0; i < 3; i++)
        srv[i] = server_new(ids[i], 0, 0, 0, 0, &port[i]);
    struct cmn_dp_cred c = cred_make(1, NOW0 + 3600000, false);
    struct lc_dp_recv *r = recv_new(&c);
    for (int i = 0; i < 3; i++)
        is_int(add(r, ids[i], port[i]), 0, "add source %llu", (unsigned long long)ids[i]);
    struct cmn_err e;
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "all three sources ready %s", e.msg);
    is_int(lc_dp_recv_source_state(r, 2, NULL), LC_DP_SOURCE_READY, "source 2 ready");
    is_int(lc_dp_recv_source_state(r, 77, NULL), LC_DP_SOURCE_UNKNOWN, "source 77 unknown");
    is_int(add(r, 2, port[1]), -EEXIST, "adding a ready source again refused");

    uint8_t *src = malloc(WIN), *dst = malloc(WIN);
    fill_random(src, WIN);
    memset(dst, 0, WIN);
    uint64_t base = 0x7f0000000000ull;
    struct lc_dp_window *w;
    is_int(lc_dp_recv_window_open(r, base, WIN, dst, NULL, &w), 0, "32 MiB window open");
    struct lc_dp_window *w2;
    is_int(lc_dp_recv_window_open(r, base + WIN - 1, 10, dst, NULL, &w2), -EBUSY,
           "overlapping window refused");

    static struct piece pieces[8192];
    size_t n = 0;
    uint64_t per[3] = {0, 0, 0};
    for (uint64_t off = 0; off < WIN;) {
        size_t len = 1 + (size_t)(rng() % (256 * 1024));
        if (off + len > WIN)
            len = (size_t)(WIN - off);
        int s = (int)(rng() % 3);
        pieces[n++] = (struct piece){srv[s], c.sid, KEY, base, base + off, src + off, len};
        per[s] += len;
        off += len;
    }
    /* Each source sends its pieces in a scrambled order. */
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng() % (i + 1));
        struct piece t = pieces[i];
        pieces[i] = pieces[j];
        pieces[j] = t;
    }
    is_int(push(pieces, n), 0, "%zu pieces submitted", n);
    struct lc_dp_expect exp[3];
    for (int i = 0; i < 3; i++)
        exp[i] = (struct lc_dp_expect){ids[i], per[i]};
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait(r, w, exp, 3, 15000, &e), 0, "wait: every source delivered %s",
           e.msg);
    ok(memcmp(src, dst, WIN) == 0, "window is byte-identical to the source data");
    for (int i = 0; i < 3; i++)
        is_int(lc_dp_recv_window_bytes(r, w, ids[i]), per[i], "bytes counted for source %d", i);
    ok(pushes_drain(10), "every push completed");
    uint64_t okc, failed;
    push_counts(&okc, &failed);
    is_int(okc, n, "all pushes succeeded");
    is_int(failed, 0, "no push failed");
    struct cmn_dp_server_stats st = server_stats(srv[0]);
    is_int(st.bytes, per[0], "server 0 counted its payload bytes");
    is_int(st.sessions, 1, "server 0 has one session");
    is_int(st.queued_bytes, 0, "nothing left queued");

    /* A wait for more than was sent times out and says what is missing. */
    exp[1].bytes = per[1] + 1;
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait(r, w, exp, 3, 200, &e), LODE_ETIMEOUT, "wait for too much times out");
    ok(strstr(e.msg, "source 2") != NULL, "timeout names the source: %s", e.msg);
    struct lc_dp_expect unknown = {55, 1};
    is_int(lc_dp_recv_wait(r, w, &unknown, 1, 100, &e), -ENOENT, "unknown source in wait");
    lc_dp_recv_window_close(r, w);
    lc_dp_recv_destroy(r);
    for (int i = 0; i < 3; i++)
        ok(server_close(srv[i]), "server %d closed", i);
    free(src);
    free(dst);
}

/* Two requests at once: frames of both, from the same sources, interleaved. */
static void test_two_windows(void)
{
    int port[2];
    struct cmn_dp_server *srv[2];
    for (int i = 0; i < 2; i++)
        srv[i] = server_new((uint64_t)i + 1, 0, 0, 0, 0, &port[i]);
    struct cmn_dp_cred c = cred_make(2, NOW0 + 3600000, false);
    struct lc_dp_recv *r = recv_new(&c);
    add(r, 1, port[0]);
    add(r, 2, port[1]);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "two sources ready");
    size_t size = 4 * MiB;
    uint8_t *src = malloc(2 * size), *dst = calloc(1, 2 * size);
    fill_random(src, 2 * size);
    uint64_t base[2] = {0x1000000, 0x9000000};
    struct lc_dp_window *w[2];
    for (int k = 0; k < 2; k++)
        is_int(lc_dp_recv_window_open(r, base[k], size, dst + k * size, NULL, &w[k]), 0,
               "window %d open", k);
    static struct piece pieces[256];
    size_t n = 0;
    uint64_t per[2][2] = {{0, 0}, {0, 0}};
    size_t chunk = 256 * 1024;
    for (size_t off = 0; off < size; off += chunk) {
        for (int k = 0; k < 2; k++) {
            int s = (int)((off / chunk + (size_t)k) % 2);
            pieces[n++] = (struct piece){srv[s], c.sid, KEY, base[k], base[k] + off,
                                         src + k * size + off, chunk};
            per[k][s] += chunk;
        }
    }
    is_int(push(pieces, n), 0, "pieces of both windows submitted");
    for (int k = 0; k < 2; k++) {
        struct lc_dp_expect exp[2] = {{1, per[k][0]}, {2, per[k][1]}};
        is_int(lc_dp_recv_wait(r, w[k], exp, 2, 10000, &e), 0, "window %d complete", k);
        ok(memcmp(dst + k * size, src + k * size, size) == 0, "window %d byte-identical", k);
        is_int(lc_dp_recv_window_bytes(r, w[k], 1), per[k][0], "window %d: source 1 count", k);
    }
    ok(pushes_drain(10), "pushes done");
    uint64_t okc, failed;
    push_counts(&okc, &failed);
    for (int k = 0; k < 2; k++)
        lc_dp_recv_window_close(r, w[k]);
    lc_dp_recv_destroy(r);
    for (int i = 0; i < 2; i++)
        server_close(srv[i]);
    free(src);
    free(dst);
}

/* The fence: nothing lands after window_close, and frames outside a window never land. */
static void test_fence(void)
{
    int port;
    struct cmn_dp_server *srv = server_new(5, 0, 0, 0, 0, &port);
    struct cmn_dp_cred c = cred_make(3, NOW0 + 3600000, false);
    struct lc_dp_recv *r = recv_new(&c);
    add(r, 5, port);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "source ready");

    /* Guards on both sides of the window show that out-of-window frames never land. */
    size_t size = 64 * 1024, guard = 4096;
    uint8_t *mem = malloc(size + 2 * guard);
    memset(mem, 0xa5, size + 2 * guard);
    uint64_t base = 0x5000000;
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, base, size, mem + guard, NULL, &w);
    uint8_t *src = malloc(16 * MiB);
    memset(src, 0x11, 16 * MiB);
    struct piece bad[] = {
        {srv, c.sid, KEY, base, base + size - 100, src, 200},   /* crosses the end */
        {srv, c.sid, KEY, base, base - 1, src, 2},              /* starts before */
        {srv, c.sid, KEY, base + 1, base + 1, src, 10},         /* no window has that base */
        {srv, c.sid, KEY, base, UINT64_MAX - 4, src, 10},       /* addr + len wraps */
    };
    is_int(push(bad, 4), 0, "four stray frames submitted");
    ok(wait_stats(r, dropped_at_least, 4), "receiver dropped all four");
    ok(all_equal(mem, size + 2 * guard, 0xa5), "window and guards untouched");
    is_int(lc_dp_recv_window_dropped(r, w), 200 + 2 + 10, "window counts its own strays");
    is_int(lc_dp_recv_window_bytes(r, w, 5), 0, "no bytes counted");
    is_int(lc_dp_recv_source_state(r, 5, NULL), LC_DP_SOURCE_READY, "connection survives strays");

    /* A frame after close. */
    lc_dp_recv_window_close(r, w);
    struct lc_dp_recv_stats st0;
    lc_dp_recv_stats(r, &st0);
    struct piece late = {srv, c.sid, KEY, base, base, src, size};
    push(&late, 1);
    ok(wait_stats(r, dropped_at_least, st0.dropped_frames + 1), "late frame dropped");
    ok(all_equal(mem, size + 2 * guard, 0xa5), "late frame never touched the memory");

    /* Close while 16 MiB frames stream in: once close returns, the memory is the receiver's
     * no more. Repaint it with the canary and check that it stays. */
    size_t big = 64 * MiB;
    uint8_t *bigmem = malloc(big);
    memset(bigmem, 0, big);
    uint64_t bbase = 0x40000000;
    lc_dp_recv_window_open(r, bbase, big, bigmem, NULL, &w);
    struct piece stream[4];
    for (int i = 0; i < 4; i++)
        stream[i] = (struct piece){srv, c.sid, KEY, bbase, bbase + (uint64_t)i * 16 * MiB, src,
                                   16 * MiB};
    push(stream, 4);
    /* Close as soon as the first bytes land, so reads into the window are under way. */
    for (int i = 0; i < 2000 && lc_dp_recv_window_bytes(r, w, 5) == 0; i++)
        sleep_ms(1);
    uint64_t landed = lc_dp_recv_window_bytes(r, w, 5);
    lc_dp_recv_window_close(r, w);
    ok(landed > 0 && landed < big, "closed mid-stream (%llu bytes had landed)",
       (unsigned long long)landed);
    memset(bigmem, 0xa5, big);
    ok(pushes_drain(10), "the rest of the stream was sent");
    /* The receiver has read (and dropped) everything once its frame count settles. */
    struct lc_dp_recv_stats st1;
    uint64_t prev = UINT64_MAX;
    for (int i = 0; i < 100; i++) {
        lc_dp_recv_stats(r, &st1);
        if (st1.dropped_bytes == prev)
            break;
        prev = st1.dropped_bytes;
        sleep_ms(50);
    }
    ok(all_equal(bigmem, big, 0xa5), "no byte written after window_close returned");
    uint64_t okc, failed;
    push_counts(&okc, &failed);
    lc_dp_recv_destroy(r);
    server_close(srv);
    free(mem);
    free(bigmem);
    free(src);
}

/* Refusals: forged MAC, expired, duplicate sid, wrong key on push, session cap, garbage. */
static void test_refusals(void)
{
    int port, port_cap;
    struct cmn_dp_server *srv = server_new(7, 0, 0, 300, 0, &port);
    struct cmn_dp_server *cap = server_new(8, 0, 1, 0, 2, &port_cap);
    struct cmn_err e;

    struct cmn_dp_cred good = cred_make(4, NOW0 + 3600000, false);
    struct lc_dp_recv *r = recv_new(&good);
    add(r, 7, port);
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "genuine session accepted");

    struct cmn_dp_cred forged = cred_make(5, NOW0 + 3600000, true);
    struct lc_dp_recv *rf = recv_new(&forged);
    add(rf, 7, port);
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(rf, 5000, &e), LODE_EAUTH, "forged mac refused");
    ok(strstr(e.msg, "source 7") && strstr(e.msg, "bad mac"), "error names source: %s", e.msg);
    lc_dp_recv_destroy(rf);

    struct cmn_dp_cred old = cred_make(6, NOW0 - 1, false);
    struct lc_dp_recv *ro = recv_new(&old);
    add(ro, 7, port);
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(ro, 5000, &e), LODE_ETIMEOUT, "expired credential refused");
    ok(strstr(e.msg, "expired") != NULL, "says expired: %s", e.msg);
    lc_dp_recv_destroy(ro);

    struct lc_dp_recv *rd = recv_new(&good);
    add(rd, 7, port);
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(rd, 5000, &e), -EBUSY, "second connection for a live sid");
    ok(strstr(e.msg, "in use") != NULL, "says in use: %s", e.msg);
    lc_dp_recv_destroy(rd);

    /* A receiver that expects another source id than the one answering. */
    struct cmn_dp_cred other = cred_make(9, NOW0 + 3600000, false);
    struct lc_dp_recv *rw = recv_new(&other);
    add(rw, 99, port);
    is_int(lc_dp_recv_wait_ready(rw, 5000, &e), LODE_EBADMSG, "wrong source id detected");
    lc_dp_recv_destroy(rw);

    /* Session cap of 1. */
    struct cmn_dp_cred c1 = cred_make(10, NOW0 + 3600000, false),
                      c2 = cred_make(11, NOW0 + 3600000, false);
    struct lc_dp_recv *r1 = recv_new(&c1), *r2 = recv_new(&c2);
    add(r1, 8, port_cap);
    is_int(lc_dp_recv_wait_ready(r1, 5000, &e), 0, "first session under the cap");
    add(r2, 8, port_cap);
    is_int(lc_dp_recv_wait_ready(r2, 5000, &e), LODE_EUNAVAILABLE, "second session: busy");
    lc_dp_recv_destroy(r2);
    lc_dp_recv_destroy(r1);
    /* At most two connections of that server may wait for their HELLO (5 s each): a third
     * is closed at once, the first two stay. */
    int silent[3];
    for (int i = 0; i < 3; i++) {
        silent[i] = raw_connect(port_cap);
        sleep_ms(20);
    }
    ok(peer_closes_within(silent[2], 2000), "third pending handshake closed at once");
    ok(!peer_closes_within(silent[0], 100), "the first one still waits for its HELLO");
    for (int i = 0; i < 3; i++)
        close(silent[i]);

    /* Pushes: only the owner's key, only live sessions, bounded sizes. */
    uint8_t buf[64] = {0};
    struct piece p = {srv, good.sid, "AKIDOTHERKEY", 0, 0, buf, sizeof buf};
    is_int(push(&p, 1), LODE_ENOSESSION, "push with another access key refused");
    p.key = KEY;
    uint8_t nosid[16] = {1};
    p.sid = nosid;
    is_int(push(&p, 1), LODE_ENOSESSION, "push to an unknown sid refused");
    p.sid = good.sid;
    p.len = 0;
    is_int(push(&p, 1), -EINVAL, "empty push refused");
    p.len = CMN_DP_MAX_FRAME_DEFAULT + 1;
    static uint8_t huge_src[1];
    p.src = huge_src;
    is_int(push(&p, 1), -EINVAL, "push above max frame refused");

    /* Garbage instead of a HELLO: an HTTP request. */
    int fd = raw_connect(port);
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nAccept: */*\r\n"
                        "Connection: keep-alive\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    ok(sizeof http - 1 >= CMN_DP_HELLO_SIZE, "garbage is at least a HELLO long");
    write_full(fd, http, CMN_DP_HELLO_SIZE);
    uint8_t rep[CMN_DP_REPLY_SIZE];
    struct cmn_dp_reply rr;
    is_int(read_full(fd, rep, sizeof rep), sizeof rep, "garbage gets a reply");
    ok(cmn_dp_reply_decode(rep, &rr, &e) == 0 && rr.kind == CMN_DP_REPLY_ERR &&
           rr.code == CMN_DP_CODE_MALFORMED && rr.source_id == 7,
       "HELLO_ERR malformed from source 7");
    ok(peer_closes(fd), "then the server closes");
    close(fd);
    /* Half a HELLO, then silence: the hello timeout (300 ms here) closes it. */
    fd = raw_connect(port);
    write_full(fd, "LDP1", 4);
    ok(peer_closes(fd), "silent client closed after the hello timeout");
    close(fd);
    /* A valid HELLO, then a byte: the connection is send-only. */
    struct cmn_dp_cred c3 = cred_make(12, NOW0 + 3600000, false);
    uint8_t hello[CMN_DP_HELLO_SIZE];
    cmn_dp_hello_encode(&c3, hello);
    fd = raw_connect(port);
    write_full(fd, hello, sizeof hello);
    is_int(read_full(fd, rep, sizeof rep), sizeof rep, "raw hello answered");
    ok(cmn_dp_reply_decode(rep, &rr, &e) == 0 && rr.kind == CMN_DP_REPLY_OK, "HELLO_OK");
    write_full(fd, "x", 1);
    ok(peer_closes(fd), "a byte from the client closes the session");
    close(fd);

    /* The genuine session survived all of that. */
    uint8_t dst[64] = {0}, data[64];
    memset(data, 0x3c, sizeof data);
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, 0x100000, sizeof dst, dst, NULL, &w);
    struct piece gp = {srv, good.sid, KEY, 0x100000, 0x100000, data, sizeof data};
    is_int(push(&gp, 1), 0, "push on the genuine session");
    struct lc_dp_expect exp = {7, sizeof data};
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), 0, "delivered after the abuse");
    ok(memcmp(dst, data, sizeof dst) == 0, "bytes right");
    struct cmn_dp_server_stats st = server_stats(srv);
    ok(st.hello_refused == 5, "server counted the five refusals (%llu)",
       (unsigned long long)st.hello_refused);
    is_int(st.sessions, 1, "one live session left");
    lc_dp_recv_window_close(r, w);
    ok(pushes_drain(5), "pushes done");
    uint64_t okc, failed;
    push_counts(&okc, &failed);
    lc_dp_recv_destroy(r);
    server_close(srv);
    server_close(cap);
}

/* A raw source that sends a DATA header with a bad CRC. */
static void test_corrupt_header(void)
{
    int port;
    int lfd = raw_listen(&port);
    struct cmn_dp_cred c = cred_make(13, NOW0 + 3600000, false);
    struct lc_dp_recv *r = recv_new(&c);
    add(r, 9, port);
    int fd = accept(lfd, NULL, NULL);
    uint8_t hello[CMN_DP_HELLO_SIZE];
    is_int(read_full(fd, hello, sizeof hello), sizeof hello, "receiver sent its HELLO");
    struct cmn_dp_cred got;
    struct cmn_err e;
    ok(cmn_dp_hello_decode(hello, &got, &e) == 0 &&
           cmn_dp_cred_verify(secret, SECRET_LEN, &got, NOW0, &e) == 0,
       "the HELLO carries the credential");
    uint8_t rep[CMN_DP_REPLY_SIZE];
    struct cmn_dp_reply okr = {.kind = CMN_DP_REPLY_OK, .source_id = 9};
    cmn_dp_reply_encode(&okr, rep);
    write_full(fd, rep, sizeof rep);
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "raw source ready");
    uint8_t mem[4096];
    memset(mem, 0xa5, sizeof mem);
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, 0x2000, sizeof mem, mem, NULL, &w);
    /* One good frame, then one whose CRC is off by a bit. */
    uint8_t frame[CMN_DP_DATA_HDR_SIZE + 100];
    struct cmn_dp_data_hdr h = {.len = 100, .addr = 0x2000, .window_base = 0x2000};
    cmn_dp_data_encode(&h, frame);
    memset(frame + CMN_DP_DATA_HDR_SIZE, 0x42, 100);
    write_full(fd, frame, sizeof frame);
    h.addr = 0x2000 + 100;
    cmn_dp_data_encode(&h, frame);
    frame[28] ^= 1;
    write_full(fd, frame, sizeof frame);
    struct lc_dp_expect exp = {9, 200};
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), LODE_EBADMSG, "corrupt header fails the wait");
    ok(strstr(e.msg, "source 9") && strstr(e.msg, "100 of 200"), "names source and bytes: %s",
       e.msg);
    ok(all_equal(mem, 100, 0x42) && all_equal(mem + 100, sizeof mem - 100, 0xa5),
       "only the good frame landed");
    struct lc_dp_recv_stats st;
    lc_dp_recv_stats(r, &st);
    is_int(st.bad_headers, 1, "bad header counted");
    ok(peer_closes(fd), "receiver closed the desynchronised connection");
    close(fd);
    is_int(lc_dp_recv_source_state(r, 9, &e), LC_DP_SOURCE_FAILED, "source 9 failed");
    lc_dp_recv_window_close(r, w);
    lc_dp_recv_destroy(r);
    close(lfd);
}

/* A source closed mid-stream: the wait fails naming it; pending pushes fail. */
static void test_source_dies(void)
{
    int port[2];
    struct cmn_dp_server *a = server_new(21, 0, 0, 0, 0, &port[0]);
    struct cmn_dp_server *b = server_new(22, 0, 0, 0, 0, &port[1]);
    struct cmn_dp_cred c = cred_make(14, NOW0 + 3600000, false);
    struct lc_dp_recv *r = recv_new(&c);
    add(r, 21, port[0]);
    add(r, 22, port[1]);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "two sources ready");
    size_t size = 8 * MiB;
    uint8_t *src = malloc(size), *dst = calloc(1, size);
    fill_random(src, size);
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, 0x10000000, size, dst, NULL, &w);
    /* a delivers its half; b delivers a quarter, then dies. */
    struct piece pa = {a, c.sid, KEY, 0x10000000, 0x10000000, src, size / 2};
    struct piece pb = {b, c.sid, KEY, 0x10000000, 0x10000000 + size / 2, src + size / 2,
                       size / 4};
    push(&pa, 1);
    push(&pb, 1);
    struct lc_dp_expect part[2] = {{21, size / 2}, {22, size / 4}};
    is_int(lc_dp_recv_wait(r, w, part, 2, 5000, &e), 0, "first parts delivered");
    ok(pushes_drain(5), "first pushes completed");
    uint64_t okc, failed;
    push_counts(&okc, &failed);
    ok(server_close(b), "source 22 killed");
    struct lc_dp_expect full[2] = {{21, size / 2}, {22, size / 2}};
    cmn_err_clear(&e);
    int rc = lc_dp_recv_wait(r, w, full, 2, 5000, &e);
    is_int(rc, LODE_ECLOSED, "wait fails when a source dies short of its count");
    ok(strstr(e.msg, "source 22") != NULL, "names the dead source: %s", e.msg);
    is_int(lc_dp_recv_wait(r, w, part, 2, 100, &e), 0, "what it delivered before still counts");
    ok(memcmp(dst, src, size / 2 + size / 4) == 0, "delivered bytes are right");

    /* Pending pushes fail with LODE_ECLOSED when the server closes under them: a slow raw
     * client (never reading) lets them pile up behind the cap. */
    int port_c;
    struct cmn_dp_server *s3 = server_new(23, 1 * MiB, 0, 0, 0, &port_c);
    struct cmn_dp_cred c4 = cred_make(15, NOW0 + 3600000, false);
    uint8_t hello[CMN_DP_HELLO_SIZE], rep[CMN_DP_REPLY_SIZE];
    cmn_dp_hello_encode(&c4, hello);
    int fd = raw_connect(port_c);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    write_full(fd, hello, sizeof hello);
    read_full(fd, rep, sizeof rep);
    struct piece many[16];
    for (int i = 0; i < 16; i++)
        many[i] = (struct piece){s3, c4.sid, KEY, 0, 0, src, 1 * MiB};
    is_int(push(many, 16), 0, "16 MiB pushed at a client that does not read");
    struct cmn_dp_server_stats st = server_stats(s3);
    ok(st.waiting_pushes > 0, "pushes wait behind the cap (%llu)",
       (unsigned long long)st.waiting_pushes);
    ok(server_close(s3), "server closed with pushes pending");
    ok(pushes_drain(5), "every pending push completed");
    push_counts(&okc, &failed);
    is_int(okc + failed, 16, "each push completed once");
    ok(failed > 0 && g.last_push_status == LODE_ECLOSED, "pending pushes failed LODE_ECLOSED");
    close(fd);

    lc_dp_recv_window_close(r, w);
    lc_dp_recv_destroy(r);
    server_close(a);
    free(src);
    free(dst);
}

/* Expiry: a session whose credential expires is closed by the sweep. */
static void test_expiry(void)
{
    int port;
    struct cmn_dp_server *srv = server_new(31, 0, 0, 0, 0, &port);
    struct cmn_dp_cred c = cred_make(16, NOW0 + 1000, false);
    struct lc_dp_recv *r = recv_new(&c);
    add(r, 31, port);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "short-lived session accepted");
    atomic_store(&g.now, NOW0 + 1000);
    bool failed = false;
    for (int i = 0; i < 300 && !failed; i++) {
        failed = lc_dp_recv_source_state(r, 31, &e) == LC_DP_SOURCE_FAILED;
        if (!failed)
            sleep_ms(10);
    }
    ok(failed, "expired session closed by the server: %s", e.msg);
    struct cmn_dp_server_stats st = server_stats(srv);
    is_int(st.sessions_expired, 1, "counted as expired");
    is_int(st.sessions, 0, "no live session");
    atomic_store(&g.now, NOW0);
    /* A failed source may be added again (here it is refused: the credential expired). */
    atomic_store(&g.now, NOW0 + 5000);
    is_int(add(r, 31, port), 0, "failed source re-added");
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), LODE_ETIMEOUT, "reconnect refused: expired");
    atomic_store(&g.now, NOW0);
    lc_dp_recv_destroy(r);
    server_close(srv);
}

/* A staged window: frames go through lent slots, committed in pieces. */
struct staging {
    uint8_t *dst;
    uint8_t slots[4][5000];
    bool busy[4];                /* I/O thread only */
    _Atomic int lent, committed, dropped;
};

static void *st_get(void *data, uint64_t off, size_t len, size_t *cap)
{
    (void)off;
    struct staging *s = data;
    for (int i = 0; i < 4; i++) {
        if (!s->busy[i]) {
            s->busy[i] = true;
            s->lent++;
            *cap = len < sizeof s->slots[i] ? len : sizeof s->slots[i];
            return s->slots[i];
        }
    }
    return NULL;
}

static int slot_index(struct staging *s, void *slot)
{
    for (int i = 0; i < 4; i++) {
        if (slot == s->slots[i])
            return i;
    }
    return -1;
}

static void st_commit(void *data, void *slot, uint64_t off, size_t len)
{
    struct staging *s = data;
    memcpy(s->dst + off, slot, len);
    s->busy[slot_index(s, slot)] = false;
    s->committed++;
}

static void st_drop(void *data, void *slot)
{
    struct staging *s = data;
    s->busy[slot_index(s, slot)] = false;
    s->dropped++;
}

/* Closing a staged window while a slot is half full gives the slot back before close
 * returns, and the rest of that frame is discarded without losing the stream. */
static void test_staged_fence(void)
{
    int port;
    int lfd = raw_listen(&port);
    struct cmn_dp_cred c = cred_make(19, NOW0 + 3600000, false);
    struct lc_dp_recv *r = recv_new(&c);
    add(r, 9, port);
    int fd = accept(lfd, NULL, NULL);
    uint8_t hello[CMN_DP_HELLO_SIZE], rep[CMN_DP_REPLY_SIZE];
    read_full(fd, hello, sizeof hello);
    struct cmn_dp_reply okr = {.kind = CMN_DP_REPLY_OK, .source_id = 9};
    cmn_dp_reply_encode(&okr, rep);
    write_full(fd, rep, sizeof rep);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "raw source ready");
    static struct staging stg;
    memset(&stg, 0, sizeof stg);
    stg.dst = calloc(1, 10000);
    struct lc_dp_sink sink = {st_get, st_commit, st_drop, &stg};
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, 0x4000, 10000, NULL, &sink, &w);
    uint8_t frame[CMN_DP_DATA_HDR_SIZE + 10000];
    struct cmn_dp_data_hdr h = {.len = 10000, .addr = 0x4000, .window_base = 0x4000};
    cmn_dp_data_encode(&h, frame);
    memset(frame + CMN_DP_DATA_HDR_SIZE, 0x77, 10000);
    write_full(fd, frame, CMN_DP_DATA_HDR_SIZE + 3000);
    for (int i = 0; i < 500 && atomic_load(&stg.lent) == 0; i++)
        sleep_ms(10);
    is_int(atomic_load(&stg.lent), 1, "a slot is lent for the first bytes");
    is_int(atomic_load(&stg.committed), 0, "not committed: the slot is not full");
    lc_dp_recv_window_close(r, w);
    is_int(atomic_load(&stg.dropped), 1, "close gave the half-full slot back");
    write_full(fd, frame + CMN_DP_DATA_HDR_SIZE + 3000, 7000);
    /* The stream is still in step: a frame for a new window lands. */
    uint8_t mem[64];
    memset(mem, 0, sizeof mem);
    lc_dp_recv_window_open(r, 0x90000, sizeof mem, mem, NULL, &w);
    struct cmn_dp_data_hdr h2 = {.len = 64, .addr = 0x90000, .window_base = 0x90000};
    cmn_dp_data_encode(&h2, frame);
    memset(frame + CMN_DP_DATA_HDR_SIZE, 0x55, 64);
    write_full(fd, frame, CMN_DP_DATA_HDR_SIZE + 64);
    struct lc_dp_expect exp = {9, 64};
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), 0, "next frame lands");
    ok(all_equal(mem, sizeof mem, 0x55), "with the right bytes");
    is_int(atomic_load(&stg.lent), 1, "the closed window's sink was not asked again");
    ok(all_equal(stg.dst, 10000, 0), "nothing committed into the closed window");
    lc_dp_recv_window_close(r, w);
    lc_dp_recv_destroy(r);
    close(fd);
    close(lfd);
    free(stg.dst);
}

static void test_staged(void)
{
    int port;
    struct cmn_dp_server *srv = server_new(41, 0, 0, 0, 0, &port);
    struct cmn_dp_cred c = cred_make(17, NOW0 + 3600000, false);
    struct lc_dp_recv *r = recv_new(&c);
    add(r, 41, port);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "source ready");
    size_t size = 1 * MiB;
    uint8_t *src = malloc(size);
    static struct staging stg;
    stg.dst = calloc(1, size);
    fill_random(src, size);
    struct lc_dp_sink sink = {st_get, st_commit, st_drop, &stg};
    struct lc_dp_window *w;
    int bad = lc_dp_recv_window_open(r, 0x300000, size, stg.dst, &sink, &w);
    is_int(bad, -EINVAL, "dest and sink together refused");
    is_int(lc_dp_recv_window_open(r, 0x300000, size, NULL, &sink, &w), 0, "staged window open");
    struct piece p[8];
    for (int i = 0; i < 8; i++)
        p[i] = (struct piece){srv, c.sid, KEY, 0x300000, 0x300000 + (uint64_t)i * size / 8,
                              src + i * size / 8, size / 8};
    push(p, 8);
    struct lc_dp_expect exp = {41, size};
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 10000, &e), 0, "staged window complete");
    ok(memcmp(stg.dst, src, size) == 0, "committed bytes are byte-identical");
    /* 8 frames of 131072 bytes in 5000-byte slots: ceil(131072/5000) = 27 slots each. */
    is_int(atomic_load(&stg.committed), 8 * 27, "slots committed");
    is_int(atomic_load(&stg.lent), atomic_load(&stg.committed), "every lent slot committed");
    lc_dp_recv_window_close(r, w);
    ok(pushes_drain(5), "pushes done");
    uint64_t okc, failed;
    push_counts(&okc, &failed);
    lc_dp_recv_destroy(r);
    server_close(srv);
    free(src);
    free(stg.dst);
}

/* Backpressure: 256 MiB pushed at a slow reader never queues more than the cap. */
static void test_backpressure(void)
{
    int port;
    uint64_t cap = 8 * MiB;
    struct cmn_dp_server *srv = server_new(51, cap, 0, 0, 0, &port);
    struct cmn_dp_cred c = cred_make(18, NOW0 + 3600000, false);
    uint8_t hello[CMN_DP_HELLO_SIZE], rep[CMN_DP_REPLY_SIZE];
    cmn_dp_hello_encode(&c, hello);
    int fd = raw_connect(port);
    write_full(fd, hello, sizeof hello);
    is_int(read_full(fd, rep, sizeof rep), sizeof rep, "raw session open");
    size_t frame = 4 * MiB;
    uint8_t *src = malloc(frame);
    fill_random(src, frame);
    enum { N = 64 };
    static struct piece p[N];
    for (int i = 0; i < N; i++)
        p[i] = (struct piece){srv, c.sid, KEY, 0, (uint64_t)i * frame, src, frame};
    is_int(push(p, N), 0, "256 MiB submitted in 64 pushes");
    struct cmn_dp_server_stats st = server_stats(srv);
    ok(st.queued_bytes <= cap, "queued %llu <= cap", (unsigned long long)st.queued_bytes);
    ok(st.waiting_pushes >= N - 3, "the rest waits in the FIFO (%llu)",
       (unsigned long long)st.waiting_pushes);
    /* Read slowly at first, then at full speed; check every header. */
    uint8_t *buf = malloc(frame);
    uint64_t max_queued = 0, total = 0;
    int frames_ok = 0;
    for (int i = 0; i < N; i++) {
        if (i < 4)
            sleep_ms(50);
        uint8_t hdr[CMN_DP_DATA_HDR_SIZE];
        struct cmn_dp_data_hdr h;
        if (read_full(fd, hdr, sizeof hdr) != sizeof hdr ||
            cmn_dp_data_decode(hdr, 0, &h, NULL) != 0 || h.len != frame ||
            h.addr != (uint64_t)i * frame || read_full(fd, buf, frame) != frame)
            break;
        if (memcmp(buf, src, frame) == 0)
            frames_ok++;
        total += h.len;
        if (i % 8 == 0) {
            st = server_stats(srv);
            if (st.queued_bytes > max_queued)
                max_queued = st.queued_bytes;
        }
    }
    is_int(frames_ok, N, "all 64 frames arrived in order, intact");
    is_int(total, 256ull * MiB, "256 MiB read");
    ok(pushes_drain(10), "every push completed");
    uint64_t okc, failed;
    push_counts(&okc, &failed);
    is_int(okc, N, "all succeeded");
    st = server_stats(srv);
    ok(st.queued_peak <= cap, "peak queued %llu never above the %llu cap",
       (unsigned long long)st.queued_peak, (unsigned long long)cap);
    ok(max_queued <= cap, "sampled queue under the cap");
    is_int(st.waiting_pushes + st.waiting_bytes + st.queued_bytes, 0, "queues empty at the end");
    close(fd);
    server_close(srv);
    free(src);
    free(buf);
}

int main(void)
{
    cmn_log_init("test_dp_tcp", CMN_LOG_ERROR);
    loop_start();
    test_three_sources();
    test_two_windows();
    test_fence();
    test_refusals();
    test_corrupt_header();
    test_source_dies();
    test_expiry();
    test_staged();
    test_staged_fence();
    test_backpressure();
    loop_stop();
    return tap_done();
}
