/* See tests/unit/gateway/server_fixture.h. */
#include "tests/unit/gateway/server_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lode/errno.h>

#include "tests/tap.h"

/* ---- shared with the sf_handler (worker threads) ---- */

struct sf_counters sf;

const char *const sf_code_name[GW_S3_ERROR_COUNT] = {
#define NAME(e, code, status, msg) code,
    GW_S3_ERROR_MAP(NAME)
#undef NAME
};
const int sf_code_status[GW_S3_ERROR_COUNT] = {
#define STATUS(e, code, status, msg) status,
    GW_S3_ERROR_MAP(STATUS)
#undef STATUS
};

uint64_t sf_fnv_add(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

uint8_t sf_pattern[PIECE + 251];

enum kind { K_ECHO, K_SLOW, K_DOWNLOAD, K_CHUNKED, K_HOLD, K_HOLD_BODY, K_DELAY, K_AUTH };

struct hreq {
    struct gw_req *req;
    enum kind kind;
    char q[64];
    uint64_t got, fnv;
    uint64_t total, sent;
    unsigned inflight;
    unsigned quota;
    bool ended, timer_init, auth_ok;
    bool splice;                   /* /splice: every other piece goes through a pipe */
    bool eager;                    /* /splice?end=1: all queued at once, finished at once */
    bool dry;                      /* /splice?dry=1: pipes get half of what is queued */
    int pipes[2][2];
    int short_finish_rc;
    uv_timer_t timer;
};

static void hreq_free(struct hreq *h)
{
    for (int i = 0; h->splice && i < 2; i++) {
        close(h->pipes[i][0]);
        close(h->pipes[i][1]);
    }
    free(h);
}

static void hreq_free_cb(uv_handle_t *h)
{
    hreq_free(h->data);
}

static void hreq_maybe_free(struct hreq *h)
{
    if (!h->ended || h->inflight)
        return;
    if (h->timer_init) {
        if (!uv_is_closing((uv_handle_t *)&h->timer))
            uv_close((uv_handle_t *)&h->timer, hreq_free_cb);
    } else {
        hreq_free(h);
    }
}

static void reply(struct hreq *h, struct gw_req *req, int status, const char *body)
{
    const char *id = gw_req_id(req);
    struct gw_header hs[] = {{GW_STR("x-amz-request-id"), {id, strlen(id)}}};
    if (gw_req_respond(req, status, hs, 1, body, strlen(body)) != 0 &&
        gw_req_finish(req) != 0)
        gw_req_abort(req);
    if (h) {
        h->ended = true;
        hreq_maybe_free(h);
    }
}

static void reply_echo(struct hreq *h)
{
    char body[160];
    snprintf(body, sizeof(body), "q=%s n=%llu h=%016llx", h->q, (unsigned long long)h->got,
             (unsigned long long)h->fnv);
    reply(h, h->req, 200, body);
}

static void start_timer(struct hreq *h, uint64_t ms, uint64_t repeat, uv_timer_cb cb)
{
    if (!h->timer_init) {
        uv_timer_init(gw_req_loop(h->req), &h->timer);
        h->timer.data = h;
        h->timer_init = true;
    }
    uv_timer_start(&h->timer, cb, ms, repeat);
}

static unsigned long qnum(const char *q, const char *key, unsigned long dflt)
{
    const char *p = strstr(q, key);
    return p ? strtoul(p + strlen(key), NULL, 10) : dflt;
}

static void dl_pump(struct hreq *h);

static void dl_done(void *arg, int status)
{
    struct hreq *h = arg;
    h->inflight--;
    if (status == 0 && !h->ended)
        dl_pump(h);
    hreq_maybe_free(h);
}

/* At most two pieces in flight: the sf_handler, not the server, bounds a GET's memory, and
 * the server's write callbacks are what let it. */
static void dl_pump(struct hreq *h)
{
    while (!h->ended && (h->eager || h->inflight < 2) && h->sent < h->total) {
        uint64_t n = h->total - h->sent < PIECE ? h->total - h->sent : PIECE;
        const uint8_t *src = sf_pattern + h->sent % 251;
        uint64_t piece = h->sent / PIECE;
        if (h->splice && piece % 2) {
            int *pp = h->pipes[(piece / 2) % 2];
            uint64_t put = h->dry ? n / 2 : n;
            if (write(pp[1], src, put) != (ssize_t)put ||
                gw_req_write_pipe(h->req, pp[0], n, dl_done, h) != 0)
                return;
        } else {
            uv_buf_t b = uv_buf_init((char *)src, (unsigned)n);
            if (gw_req_write(h->req, &b, 1, dl_done, h) != 0)
                return;
        }
        h->inflight++;
        h->sent += n;
    }
    if (!h->ended && h->sent == h->total && (h->inflight == 0 || h->eager)) {
        gw_req_finish(h->req);
        h->ended = true;
    }
}

static void on_slow_tick(uv_timer_t *t)
{
    struct hreq *h = t->data;
    h->quota = 128u << 10;
    gw_req_body_resume(h->req);
}

static void on_delay(uv_timer_t *t)
{
    struct hreq *h = t->data;
    if (!h->ended)
        reply(h, h->req, 200, "delayed");
}

static void on_auth(uv_timer_t *t)
{
    struct hreq *h = t->data;
    if (h->ended)
        return;
    if (h->auth_ok)
        gw_req_body_resume(h->req);
    else
        reply(h, h->req, 403, "denied");
}

static int h_worker_start(void *data, unsigned worker, uv_loop_t *loop, void **wd)
{
    (void)loop;
    if (data == (void *)1 && worker == 1)
        return LODE_EUNAVAILABLE; /* test: the second worker fails to start */
    *wd = (void *)(uintptr_t)(1000 + worker);
    atomic_fetch_add(&sf.n_worker_start, 1);
    return 0;
}

static void h_worker_stop(void *data, unsigned worker, void *wd)
{
    (void)data;
    if ((uintptr_t)wd == 1000 + worker)
        atomic_fetch_add(&sf.n_worker_stop, 1);
}

static void h_on_request(struct gw_req *req)
{
    atomic_fetch_add(&sf.n_requests, 1);
    const struct gw_http_request *r = gw_req_head(req);
    struct hreq *h = calloc(1, sizeof(*h));
    h->req = req;
    h->fnv = FNV_INIT;
    snprintf(h->q, sizeof(h->q), "%.*s", (int)r->head.query.n, r->head.query.p);
    gw_req_set_data(req, h);
    struct gw_str p = r->head.path;
    if (gw_str_eq(p, "/slow")) {
        h->kind = K_SLOW;
        h->quota = 128u << 10;
        start_timer(h, 1, 1, on_slow_tick);
        gw_req_body_resume(req);
    } else if (gw_str_eq(p, "/download") || gw_str_eq(p, "/splice")) {
        h->kind = K_DOWNLOAD;
        if (gw_str_eq(p, "/splice")) {
            h->splice = true;
            h->eager = qnum(h->q, "end=", 0) == 1 && qnum(h->q, "n=", 0) <= 4 * PIECE;
            h->dry = qnum(h->q, "dry=", 0) == 1;
            for (int i = 0; i < 2; i++) {
                if (pipe2(h->pipes[i], O_NONBLOCK | O_CLOEXEC) != 0)
                    tap_bail("pipe2");
                fcntl(h->pipes[i][1], F_SETPIPE_SZ, 1 << 20);
            }
        }
        h->total = qnum(h->q, "n=", 0);
        const char *id = gw_req_id(req);
        struct gw_header hs[] = {{GW_STR("x-amz-request-id"), {id, strlen(id)}}};
        gw_req_respond_head(req, 200, hs, 1, (int64_t)h->total);
        if (gw_str_eq(r->head.method, "HEAD")) {
            gw_req_finish(req);
            h->ended = true;
            hreq_maybe_free(h);
            return;
        }
        dl_pump(h);
    } else if (gw_str_eq(p, "/chunked")) {
        gw_req_respond_head(req, 200, NULL, 0, GW_HTTP_LEN_CHUNKED);
        static const char *parts[] = {"hello ", "chunked ", "world"};
        for (int i = 0; i < 3; i++) {
            uv_buf_t b = uv_buf_init((char *)parts[i], (unsigned)strlen(parts[i]));
            gw_req_write(req, &b, 1, NULL, NULL);
        }
        gw_req_finish(req);
        h->ended = true;
        hreq_maybe_free(h);
    } else if (gw_str_eq(p, "/short")) {
        /* Promises 100 bytes, delivers 10: the server must not let the connection go on. */
        gw_req_respond_head(req, 200, NULL, 0, 100);
        uv_buf_t b = uv_buf_init((char *)"0123456789", 10);
        gw_req_write(req, &b, 1, NULL, NULL);
        h->short_finish_rc = gw_req_finish(req);
        atomic_store(&sf.short_rc, h->short_finish_rc + 1000);
        h->ended = true;
        hreq_maybe_free(h);
    } else if (gw_str_eq(p, "/hold")) {
        h->kind = K_HOLD;
    } else if (gw_str_eq(p, "/hold-body")) {
        h->kind = K_HOLD_BODY;
        gw_req_body_resume(req);
    } else if (gw_str_eq(p, "/delay")) {
        h->kind = K_DELAY;
        start_timer(h, qnum(h->q, "ms=", 100), 0, on_delay);
    } else if (gw_str_eq(p, "/auth")) {
        h->kind = K_AUTH;
        h->auth_ok = qnum(h->q, "ok=", 0) == 1;
        start_timer(h, qnum(h->q, "ms=", 0), 0, on_auth);
    } else {
        h->kind = K_ECHO;
        gw_req_body_resume(req);
    }
}

static size_t h_on_body(struct gw_req *req, const uint8_t *data, size_t len)
{
    struct hreq *h = gw_req_data(req);
    if (h->kind == K_SLOW) {
        size_t take = len < h->quota ? len : h->quota;
        h->quota -= (unsigned)take;
        h->fnv = sf_fnv_add(h->fnv, data, take);
        h->got += take;
        atomic_fetch_add(&sf.slow_consumed, take);
        return take;
    }
    if (h->kind == K_HOLD_BODY)
        atomic_fetch_add(&sf.hold_got, len);
    h->fnv = sf_fnv_add(h->fnv, data, len);
    h->got += len;
    return len;
}

static void h_on_body_end(struct gw_req *req, enum gw_s3_error code, const char *msg)
{
    struct hreq *h = gw_req_data(req);
    if (h->kind == K_SLOW)
        uv_timer_stop(&h->timer);
    if (code != GW_S3_OK) {
        atomic_fetch_add(&sf.n_body_err, 1);
        atomic_store(&sf.last_body_err, (int)code);
        char body[256];
        snprintf(body, sizeof(body), "%s: %s", sf_code_name[code], msg);
        reply(h, req, sf_code_status[code], body);
        return;
    }
    if (h->kind == K_HOLD_BODY)
        return;
    reply_echo(h);
}

static void h_on_cancel(struct gw_req *req, int reason)
{
    (void)reason;
    struct hreq *h = gw_req_data(req);
    atomic_fetch_add(&sf.n_cancel, 1);
    if (h->timer_init)
        uv_timer_stop(&h->timer);
    if (!h->ended) {
        gw_req_finish(req); /* only releases it now */
        h->ended = true;
    }
    hreq_maybe_free(h);
}

static void h_on_bad_request(struct gw_req *req, enum gw_s3_error code, const char *msg)
{
    (void)msg;
    atomic_fetch_add(&sf.n_bad, 1);
    if (gw_req_head(req) != NULL)
        atomic_fetch_add(&sf.n_bad_with_head, 1);
    reply(NULL, req, sf_code_status[code], sf_code_name[code]);
}

const struct gw_handler sf_handler = {
    .worker_start = h_worker_start,
    .worker_stop = h_worker_stop,
    .on_request = h_on_request,
    .on_body = h_on_body,
    .on_body_end = h_on_body_end,
    .on_cancel = h_on_cancel,
    .on_bad_request = h_on_bad_request,
};

/* ---- the client side ---- */

struct gw_server *sf_start_server(struct gw_server_opts *o)
{
    o->addr = "127.0.0.1:0";
    o->handler = &sf_handler;
    struct gw_server *s;
    struct cmn_err err;
    if (gw_server_create(o, &s, &err) != 0)
        tap_bail("gw_server_create: %s", err.msg);
    if (gw_server_start(s, &err) != 0)
        tap_bail("gw_server_start: %s", err.msg);
    return s;
}

double sf_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sf_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}



struct cli *sf_cli_open(int port, int sndbuf)
{
    struct cli *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (sndbuf)
        setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        tap_bail("connect: %s", strerror(errno));
    return c;
}

void sf_cli_close(struct cli *c)
{
    close(c->fd);
    free(c);
}

bool sf_send_all(struct cli *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        s += k;
        n -= (size_t)k;
    }
    return true;
}

bool sf_send_str(struct cli *c, const char *s)
{
    return sf_send_all(c, s, strlen(s));
}

/* Makes at least n bytes available in c->buf; false on EOF, error or timeout. */
static bool need(struct cli *c, size_t n)
{
    while (c->len < n) {
        if (c->len == CLI_BUF)
            return false;
        ssize_t k = recv(c->fd, c->buf + c->len, CLI_BUF - c->len, 0);
        if (k <= 0)
            return false;
        c->len += (size_t)k;
    }
    return true;
}

static void consume(struct cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* True when the server closed the connection (EOF or reset) within `ms`. */
bool sf_sees_close(struct cli *c, int ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    double end = sf_now_s() + ms / 1000.0;
    while (sf_now_s() < end) {
        if (poll(&p, 1, 50) == 1) {
            char tmp[4096];
            ssize_t k = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN))
                return true;
        }
    }
    return false;
}


const char *sf_hdr(const struct resp *r, const char *name)
{
    static char v[256];
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s:", name);
    const char *p = strcasestr(r->head, key);
    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r");
    snprintf(v, sizeof(v), "%.*s", (int)n, p);
    return v;
}

/* Reads one response. body_mode: 0 read the body, 1 none (HEAD), 2 leave it in the socket.
 * Returns 0, -1 on EOF before any byte, -2 on a broken response. */
int sf_read_resp(struct cli *c, struct resp *r, int body_mode)
{
    memset(r, 0, sizeof(*r));
    cmn_buf_init(&r->body);
    char *end;
    for (;;) {
        end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        size_t had = c->len;
        if (!need(c, c->len + 1))
            return had == 0 && c->len == 0 ? -1 : -2;
    }
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof(r->head))
        return -2;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = 0;
    consume(c, hl);
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -2;
    const char *v;
    r->chunked = (v = sf_hdr(r, "transfer-encoding")) && strcasecmp(v, "chunked") == 0;
    r->close = (v = sf_hdr(r, "connection")) && strcasecmp(v, "close") == 0;
    r->cl = (v = sf_hdr(r, "content-length")) ? atoll(v) : -1;
    if (r->status < 200 || r->status == 204 || r->status == 304 || body_mode)
        return 0;
    if (r->chunked) {
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(c->buf, c->len, "\r\n", 2)))
                if (!need(c, c->len + 1))
                    return -2;
            size_t n = strtoul(c->buf, NULL, 16);
            consume(c, (size_t)(crlf - c->buf) + 2);
            if (!need(c, n + 2))
                return -2;
            cmn_buf_append(&r->body, c->buf, n);
            consume(c, n + 2);
            if (n == 0)
                return 0;
        }
    }
    if (r->cl >= 0) {
        size_t left = (size_t)r->cl;
        while (left) {
            if (!c->len && !need(c, 1))
                return -2;
            size_t n = c->len < left ? c->len : left;
            cmn_buf_append(&r->body, c->buf, n);
            consume(c, n);
            left -= n;
        }
        return 0;
    }
    while (need(c, c->len + 1) || c->len) {
        cmn_buf_append(&r->body, c->buf, c->len);
        consume(c, c->len);
    }
    return 0;
}

void sf_init(void)
{
    for (size_t i = 0; i < sizeof(sf_pattern); i++)
        sf_pattern[i] = (uint8_t)(i % 251);
}
