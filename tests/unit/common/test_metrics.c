#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <uv.h>

#include "common/buf.h"
#include "common/metrics.h"
#include "tests/tap.h"

static char *render(struct cmn_metrics *m)
{
    struct cmn_buf b = {0};
    if (cmn_metrics_render(m, &b) || cmn_buf_terminate(&b))
        tap_bail("render failed");
    return (char *)cmn_buf_steal(&b, NULL);
}

static void test_render(void)
{
    struct cmn_metrics *m;
    is_int(cmn_metrics_create(&m), 0, "create registry");
    struct cmn_counter *put =
        cmn_metrics_counter(m, "lode_test_requests_total", "method=\"put\"", "Requests served.");
    struct cmn_counter *get =
        cmn_metrics_counter(m, "lode_test_requests_total", "method=\"get\"", "ignored");
    struct cmn_gauge *temp = cmn_metrics_gauge(m, "lode_test_temp", NULL, "Odd \\ help\nline.");
    static const double bounds[] = {0.125, 0.5, 1};
    struct cmn_histogram *lat = cmn_metrics_histogram(m, "lode_test_latency_seconds", "op=\"x\"",
                                                      "Latency.", bounds, 3);
    struct cmn_counter *plain = cmn_metrics_counter(m, "lode_test_plain_total", NULL, "Plain.");
    ok(put && get && temp && lat && plain, "registration");
    ok(put != get, "different labels, different series");
    ok(cmn_metrics_counter(m, "lode_test_requests_total", "method=\"put\"", "x") == put,
       "same name and labels returns the same handle");
    ok(cmn_metrics_counter(m, "lode_test_plain_total", "", "x") == plain,
       "empty labels equal no labels");
    ok(cmn_metrics_gauge(m, "lode_test_requests_total", NULL, "x") == NULL,
       "one name cannot have two types");

    cmn_counter_add(put, 2);
    cmn_counter_add(put, 1);
    cmn_counter_add(plain, 18446744073709551615ull);
    is_int(cmn_counter_value(put), 3, "counter value");
    cmn_gauge_set(temp, 2);
    cmn_gauge_add(temp, -3.5);
    ok(cmn_gauge_value(temp) == -1.5, "gauge value");
    cmn_histogram_observe(lat, 0.0625);
    cmn_histogram_observe(lat, 0.125);
    cmn_histogram_observe(lat, 0.25);
    cmn_histogram_observe(lat, 2);

    char *text = render(m);
    is_str(text,
           "# HELP lode_test_requests_total Requests served.\n"
           "# TYPE lode_test_requests_total counter\n"
           "lode_test_requests_total{method=\"put\"} 3\n"
           "lode_test_requests_total{method=\"get\"} 0\n"
           "# HELP lode_test_temp Odd \\\\ help\\nline.\n"
           "# TYPE lode_test_temp gauge\n"
           "lode_test_temp -1.5\n"
           "# HELP lode_test_latency_seconds Latency.\n"
           "# TYPE lode_test_latency_seconds histogram\n"
           "lode_test_latency_seconds_bucket{op=\"x\",le=\"0.125\"} 2\n"
           "lode_test_latency_seconds_bucket{op=\"x\",le=\"0.5\"} 3\n"
           "lode_test_latency_seconds_bucket{op=\"x\",le=\"1\"} 3\n"
           "lode_test_latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
           "lode_test_latency_seconds_sum{op=\"x\"} 2.4375\n"
           "lode_test_latency_seconds_count{op=\"x\"} 4\n"
           "# HELP lode_test_plain_total Plain.\n"
           "# TYPE lode_test_plain_total counter\n"
           "lode_test_plain_total 18446744073709551615\n",
           "exact text format");
    free(text);

    /* Default buckets, no labels, special gauge values. */
    struct cmn_histogram *d = cmn_metrics_histogram(m, "lode_test_default_seconds", NULL, "D.",
                                                    NULL, 0);
    cmn_histogram_observe(d, 0.0001);
    cmn_histogram_observe(d, 11);
    cmn_gauge_set(temp, 1.0 / 0.0);
    struct cmn_gauge *small = cmn_metrics_gauge(m, "lode_test_small", NULL, "S.");
    cmn_gauge_set(small, 0.1);
    text = render(m);
    ok(strstr(text, "lode_test_default_seconds_bucket{le=\"0.0001\"} 1\n") != NULL,
       "default buckets start at 100us");
    ok(strstr(text, "lode_test_default_seconds_bucket{le=\"0.00025\"} 1\n") != NULL,
       "buckets are cumulative");
    ok(strstr(text, "lode_test_default_seconds_bucket{le=\"10\"} 1\n") != NULL,
       "default buckets end at 10s");
    ok(strstr(text, "lode_test_default_seconds_bucket{le=\"+Inf\"} 2\n") != NULL,
       "value above the last bound goes to +Inf");
    ok(strstr(text, "lode_test_default_seconds_sum 11.0001\n") != NULL, "sum without labels");
    ok(strstr(text, "lode_test_default_seconds_count 2\n") != NULL, "count without labels");
    ok(strstr(text, "lode_test_temp +Inf\n") != NULL, "infinite gauge");
    ok(strstr(text, "lode_test_small 0.1\n") != NULL, "shortest round-trip number");
    int buckets = 0;
    for (const char *p = text; (p = strstr(p, "lode_test_default_seconds_bucket")); p++)
        buckets++;
    is_int(buckets, 17, "16 default bounds + Inf");
    static const struct {
        double v;
        const char *text;
    } nums[] = {{0.3, "0.3"}, {1e-05, "1e-05"}, {123456.5, "123456.5"}, {1e6, "1e+06"},
                {16777216, "1.6777216e+07"}, {-0.0001, "-0.0001"}, {0, "0"}};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        struct cmn_metrics *one;
        cmn_metrics_create(&one);
        cmn_gauge_set(cmn_metrics_gauge(one, "n", NULL, "n"), nums[i].v);
        char *t = render(one);
        char want[64];
        snprintf(want, sizeof(want), "\nn %s\n", nums[i].text);
        ok(strstr(t, want) != NULL, "number %s formatted like the Go client", nums[i].text);
        free(t);
        cmn_metrics_destroy(one);
    }
    int helps = 0;
    for (const char *p = text; (p = strstr(p, "# HELP lode_test_requests_total ")); p++)
        helps++;
    is_int(helps, 1, "HELP once per metric name");
    free(text);
    cmn_metrics_destroy(m);
}

struct adder {
    struct cmn_counter *c;
    struct cmn_gauge *g;
    struct cmn_histogram *h;
};

static void *add_many(void *arg)
{
    struct adder *a = arg;
    for (int i = 0; i < 20000; i++) {
        cmn_counter_add(a->c, 1);
        cmn_gauge_add(a->g, 1.0);
        cmn_histogram_observe(a->h, 0.5);
    }
    return NULL;
}

static void test_threads(void)
{
    struct cmn_metrics *m;
    cmn_metrics_create(&m);
    struct adder a = {cmn_metrics_counter(m, "c_total", NULL, "c"), cmn_metrics_gauge(m, "g", NULL, "g"),
                      cmn_metrics_histogram(m, "h_seconds", NULL, "h", NULL, 0)};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, add_many, &a);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    is_int(cmn_counter_value(a.c), 80000, "concurrent counter adds are not lost");
    ok(cmn_gauge_value(a.g) == 80000.0, "concurrent gauge adds are not lost");
    char *text = render(m);
    ok(strstr(text, "h_seconds_count 80000\n") && strstr(text, "h_seconds_sum 40000\n"),
       "concurrent observations are not lost");
    free(text);
    cmn_metrics_destroy(m);
}

/* ---- HTTP ---- */

struct server {
    uv_loop_t loop;
    uv_async_t stop;
    struct cmn_metrics_http *http;
    pthread_t thread;
    int closed;
};

static void on_http_closed(void *data)
{
    ((struct server *)data)->closed++;
}

static void on_stop(uv_async_t *a)
{
    struct server *s = a->data;
    cmn_metrics_http_close(s->http, on_http_closed, s);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        tap_bail("connect: %s", strerror(errno));
    return fd;
}

static char *read_to_eof(int fd)
{
    struct cmn_buf b = {0};
    char chunk[4096];
    ssize_t n;
    while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0)
        cmn_buf_append(&b, chunk, (size_t)n);
    cmn_buf_terminate(&b);
    return (char *)cmn_buf_steal(&b, NULL);
}

static void send_all(int fd, const void *p, size_t len)
{
    if (send(fd, p, len, MSG_NOSIGNAL) != (ssize_t)len)
        diag("short send");
}

/* Sends a request and returns the whole response (the server closes after it). */
static char *fetch_raw(int port, const char *req, size_t len)
{
    int fd = connect_to(port);
    send_all(fd, req, len);
    char *resp = read_to_eof(fd);
    close(fd);
    return resp;
}

static char *fetch(int port, const char *req)
{
    return fetch_raw(port, req, strlen(req));
}

static int status_of(const char *resp)
{
    int st = 0;
    if (sscanf(resp, "HTTP/1.1 %d ", &st) != 1)
        return -1;
    return st;
}

static void test_http(void)
{
    struct cmn_metrics *m;
    cmn_metrics_create(&m);
    struct cmn_counter *c = cmn_metrics_counter(m, "lode_test_total", "k=\"v\"", "Test.");
    cmn_counter_add(c, 42);

    struct server s = {0};
    uv_loop_init(&s.loop);
    struct cmn_err err;
    is_int(cmn_metrics_http_start(m, &s.loop, "127.0.0.1:0", &s.http, &err), 0, "start on port 0");
    int port = cmn_metrics_http_port(s.http);
    ok(port > 0 && port < 65536, "bound port %d", port);

    struct cmn_metrics_http *dup = NULL;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    is_int(cmn_metrics_http_start(m, &s.loop, addr, &dup, &err), -EADDRINUSE,
           "second server on the same port fails");
    ok(dup == NULL && strstr(cmn_err_text(&err), addr) != NULL, "error names the address");
    is_int(cmn_metrics_http_start(m, &s.loop, "nonsense", &dup, &err), -EINVAL, "bad address");

    uv_async_init(&s.loop, &s.stop, on_stop);
    s.stop.data = &s;
    pthread_create(&s.thread, NULL, loop_main, &s);

    char *resp = fetch(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    is_int(status_of(resp), 200, "GET /metrics -> 200");
    ok(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL,
       "Prometheus content type");
    ok(strstr(resp, "\r\nConnection: close\r\n") != NULL, "Connection: close");
    char *body = strstr(resp, "\r\n\r\n");
    body = body ? body + 4 : "";
    char *want = render(m);
    is_str(body, want, "body is the rendered registry");
    size_t clen = 0;
    const char *cl = strstr(resp, "Content-Length: ");
    if (cl)
        clen = strtoul(cl + 16, NULL, 10);
    is_int(clen, strlen(want), "Content-Length matches the body");
    ok(strstr(body, "lode_test_total{k=\"v\"} 42\n") != NULL, "counter in the body");
    free(want);
    free(resp);

    resp = fetch(port, "GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
    is_int(status_of(resp), 200, "query string and HTTP/1.0 accepted");
    free(resp);

    resp = fetch(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    ok(status_of(resp) == 200 && strstr(resp, "\r\n\r\n")[4] == '\0', "HEAD has no body");
    free(resp);

    resp = fetch(port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    is_int(status_of(resp), 404, "other path -> 404");
    free(resp);
    resp = fetch(port, "GET /metricsx HTTP/1.1\r\n\r\n");
    is_int(status_of(resp), 404, "path prefix is not a match");
    free(resp);

    resp = fetch(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    is_int(status_of(resp), 405, "POST -> 405");
    ok(strstr(resp, "\r\nAllow: GET, HEAD\r\n") != NULL, "405 says what is allowed");
    free(resp);

    const char *garbage[] = {
        "HELLO\r\n\r\n",
        "GET /metrics HTTP/2.0\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nNoColonHere\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n: empty-name\r\n\r\n",
        "\x16\x03\x01\x02",
        "AVERYLONGMETHODNAMETHATGOESONANDONWITHOUTASPACE",
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        resp = fetch(port, garbage[i]);
        is_int(status_of(resp), 400, "garbage %zu -> 400", i);
        free(resp);
    }
    static const char nul_req[] = "GET /metrics HTTP/1.1\r\nX: a\0b\r\n";
    resp = fetch_raw(port, nul_req, sizeof(nul_req) - 1);
    is_int(status_of(resp), 400, "NUL byte -> 400");
    free(resp);

    /* Oversized head. */
    struct cmn_buf big = {0};
    cmn_buf_printf(&big, "GET /metrics HTTP/1.1\r\n");
    while (big.len < 9000)
        cmn_buf_printf(&big, "X-Filler: %s\r\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    cmn_buf_printf(&big, "\r\n");
    resp = fetch_raw(port, (const char *)big.data, big.len);
    is_int(status_of(resp), 431, "head over 8 KiB refused");
    free(resp);
    cmn_buf_free(&big);

    /* A request in pieces, then a half-close right after it. */
    int fd = connect_to(port);
    send_all(fd, "GET /met", 8);
    usleep(50000);
    send_all(fd, "rics HTTP/1.1\r\nHost:", 20);
    usleep(50000);
    send_all(fd, " x\r\n\r\n", 6);
    shutdown(fd, SHUT_WR);
    resp = read_to_eof(fd);
    close(fd);
    is_int(status_of(resp), 200, "request in pieces with a half-close -> 200");
    free(resp);

    /* Idle and half-sent connections are closed when the server closes. */
    int idle = connect_to(port);
    int half = connect_to(port);
    send_all(half, "GET /metrics HTTP/1.1\r\n", 23);
    usleep(50000);
    uv_async_send(&s.stop);
    pthread_join(s.thread, NULL);
    char one;
    ok(recv(idle, &one, 1, 0) == 0, "idle connection closed by server close");
    ok(recv(half, &one, 1, 0) <= 0, "half-sent connection closed by server close");
    close(idle);
    close(half);
    is_int(s.closed, 1, "close callback ran once");
    is_int(uv_loop_close(&s.loop), 0, "no handles left on the loop");
    cmn_metrics_destroy(m);
}

int main(void)
{
    test_render();
    test_threads();
    test_http();
    return tap_done();
}
