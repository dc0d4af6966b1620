/* gateway/server.c + server_conn.c: the libuv HTTP server, driven from this thread with
 * real sockets on 127.0.0.1 while its workers run a test handler that echoes, streams,
 * stalls and refuses on demand (tests/unit/gateway/server_fixture.h).
 *
 * Hashes are 64-bit FNV-1a, computed on both sides over the bytes sent and received (they
 * check transport, not the hash); one known value, FNV-1a("hello") = a430d84680aabd0b, was
 * computed with python3 to make sure the two sides agree with the definition.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/buf.h"
#include "common/metrics.h"
#include "gateway/server.h"
#include "tests/tap.h"
#include "tests/unit/gateway/server_fixture.h"

static bool body_is(struct resp *r, const char *want)
{
    cmn_buf_terminate(&r->body);
    bool same = r->body.data && strcmp((char *)r->body.data, want) == 0;
    if (!same)
        diag("body '%s', want '%s'", r->body.data ? (char *)r->body.data : "", want);
    return same;
}

/* The body is n bytes of the download pattern (byte k is k % 251). */
static bool body_is_pattern(const struct resp *r, size_t n)
{
    bool same = r->body.len == n;
    for (size_t i = 0; same && i < n; i++)
        same = r->body.data[i] == i % 251;
    return same;
}

static bool is_id(const char *v)
{
    if (!v || strlen(v) != 16)
        return false;
    return strspn(v, "0123456789abcdef") == 16;
}

static bool wait_for(atomic_int *a, int want, int ms)
{
    for (int i = 0; i < ms / 5 && atomic_load(a) < want; i++)
        sf_sleep_ms(5);
    return atomic_load(a) >= want;
}

/* ---- tests ---- */

static void test_keepalive(int port, struct gw_server *s)
{
    struct gw_server_stats st0, st1;
    gw_server_stats(s, &st0);
    struct cli *c = sf_cli_open(port, 0);
    struct resp r;
    char ids[3][17] = {{0}};
    sf_send_str(c, "GET /echo?a HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 && body_is(&r, "q=a n=0 h=cbf29ce484222325"),
       "keep-alive 1: GET, empty body hash");
    snprintf(ids[0], 17, "%s", sf_hdr(&r, "x-amz-request-id") ? sf_hdr(&r, "x-amz-request-id") : "");
    cmn_buf_free(&r.body);
    sf_send_str(c, "PUT /echo?b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 && body_is(&r, "q=b n=5 h=a430d84680aabd0b"),
       "keep-alive 2: PUT with Content-Length on the same connection");
    snprintf(ids[1], 17, "%s", sf_hdr(&r, "x-amz-request-id") ? sf_hdr(&r, "x-amz-request-id") : "");
    cmn_buf_free(&r.body);
    sf_send_str(c, "POST /echo?c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 && !r.close &&
           body_is(&r, "q=c n=11 h=779a65e7023cd2e7"),
       "keep-alive 3: chunked upload decoded");
    snprintf(ids[2], 17, "%s", sf_hdr(&r, "x-amz-request-id") ? sf_hdr(&r, "x-amz-request-id") : "");
    cmn_buf_free(&r.body);
    ok(is_id(ids[0]) && is_id(ids[1]) && is_id(ids[2]) && strcmp(ids[0], ids[1]) &&
           strcmp(ids[1], ids[2]),
       "request ids: 16 hex digits, distinct (%s %s %s)", ids[0], ids[1], ids[2]);
    gw_server_stats(s, &st1);
    is_int(st1.conns_total - st0.conns_total, 1, "three requests, one connection");

    sf_send_str(c, "GET /chunked HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 && r.chunked &&
           body_is(&r, "hello chunked world"),
       "chunked response, each write one chunk");
    cmn_buf_free(&r.body);

    sf_send_str(c, "HEAD /download?n=1000 HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(sf_read_resp(c, &r, 1) == 0 && r.status == 200 && r.cl == 1000,
       "HEAD: the GET's Content-Length, no body");
    cmn_buf_free(&r.body);
    sf_send_str(c, "GET /echo?after-head HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && body_is(&r, "q=after-head n=0 h=cbf29ce484222325"),
       "the connection goes on after HEAD (no stray body bytes)");
    cmn_buf_free(&r.body);

    sf_send_str(c, "GET /download?n=100000 HTTP/1.1\r\nHost: h\r\n\r\n");
    int rc = sf_read_resp(c, &r, 0);
    bool same = rc == 0 && body_is_pattern(&r, 100000);
    ok(same, "GET streams 100000 bytes written without copies, in order");
    if (!same)
        diag("rc %d status %d len %zu", rc, r.status, r.body.len);
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    sf_send_str(c, "GET /echo?old HTTP/1.0\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 && r.close &&
           body_is(&r, "q=old n=0 h=cbf29ce484222325") && sf_sees_close(c, 2000),
       "HTTP/1.0 without keep-alive: Connection: close, then the server closes");
    cmn_buf_free(&r.body);
    sf_cli_close(c);
}

static void test_pipelining(int port)
{
    struct cli *c = sf_cli_open(port, 0);
    char all[2048] = "";
    for (int i = 1; i <= 5; i++) {
        char one[256];
        if (i % 2)
            snprintf(one, sizeof(one), "GET /echo?%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        else
            snprintf(one, sizeof(one),
                     "PUT /echo?%d HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", i);
        strcat(all, one);
    }
    sf_send_str(c, all);
    int good = 0;
    for (int i = 1; i <= 5; i++) {
        struct resp r;
        char want[64];
        snprintf(want, sizeof(want), i % 2 ? "q=%d n=0 h=cbf29ce484222325" :
                                             "q=%d n=5 h=a430d84680aabd0b", i);
        if (sf_read_resp(c, &r, 0) == 0 && r.status == 200 && body_is(&r, want))
            good++;
        cmn_buf_free(&r.body);
    }
    is_int(good, 5, "five pipelined requests in one packet answered in order");
    sf_cli_close(c);
}

static void test_bad_requests(int port)
{
    int bad0 = atomic_load(&sf.n_bad);
    struct cli *c = sf_cli_open(port, 0);
    struct resp r;
    sf_send_str(c, "GARBAGE\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 400 && r.close && body_is(&r, "BadRequest") &&
           is_id(sf_hdr(&r, "x-amz-request-id")),
       "malformed request: 400 BadRequest from on_bad_request, with a request id");
    cmn_buf_free(&r.body);
    ok(sf_sees_close(c, 3000), "then the connection closes");
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    char *big = malloc(80000);
    strcpy(big, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    size_t n = strlen(big);
    memset(big + n, 'a', 70000);
    strcpy(big + n + 70000, "\r\n\r\n");
    sf_send_str(c, big);
    free(big);
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 400 &&
           body_is(&r, "RequestHeaderSectionTooLarge"),
       "70 KB of headers: 400 RequestHeaderSectionTooLarge reaches the client");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    sf_send_str(c, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 400 && body_is(&r, "BadRequest"),
       "smuggling attempt (Content-Length with chunked): 400");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    sf_send_str(c, "PUT /echo?bad-chunk HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\nzz\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 400 && r.close &&
           strstr(r.body.data ? (char *)r.body.data : "", "BadRequest:") &&
           atomic_load(&sf.last_body_err) == GW_S3_BAD_REQUEST,
       "bad chunk size inside a body: on_body_end(BadRequest), answered, closed");
    cmn_buf_free(&r.body);
    sf_cli_close(c);
    ok(atomic_load(&sf.n_bad) - bad0 == 3 && atomic_load(&sf.n_bad_with_head) == 0,
       "on_bad_request called for each refused head, without a head");
}

static void test_continue(int port)
{
    struct cli *c = sf_cli_open(port, 0);
    struct resp r;
    sf_send_str(c, "PUT /auth?ok=1&ms=300 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                "Content-Length: 5\r\n\r\n");
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    ok(poll(&p, 1, 150) == 0, "no 100 Continue before the sf_handler asks for the body");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 100, "100 Continue once it does");
    cmn_buf_free(&r.body);
    sf_send_str(c, "hello");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 && !r.close &&
           body_is(&r, "q=ok=1&ms=300 n=5 h=a430d84680aabd0b"),
       "then the body is read and answered; the connection stays");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    sf_send_str(c, "PUT /auth?ok=0&ms=50 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                "Content-Length: 1000000\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 403 && r.close && body_is(&r, "denied"),
       "refused before the body: 403 without 100 Continue, Connection: close");
    cmn_buf_free(&r.body);
    ok(sf_sees_close(c, 5000), "and the server closes (the unsent body is never read)");
    sf_cli_close(c);

    /* No Expect: the client sends its body at once while the sf_handler refuses; the answer
     * must survive the unread bytes (lingering close, not a reset). */
    c = sf_cli_open(port, 0);
    size_t n = 512u << 10;
    char *body = calloc(1, n);
    sf_send_str(c, "PUT /auth?ok=0&ms=0 HTTP/1.1\r\nHost: h\r\nContent-Length: 524288\r\n\r\n");
    bool sent = sf_send_all(c, body, n);
    free(body);
    ok(sent && sf_read_resp(c, &r, 0) == 0 && r.status == 403 && body_is(&r, "denied"),
       "early refusal of a 512 KiB PUT: the client sends it all and still reads the 403");
    cmn_buf_free(&r.body);
    sf_cli_close(c);
}

static void test_upload_backpressure(void)
{
    struct gw_server_opts o = {.workers = 1, .socket_buffer = 128 << 10};
    struct gw_server *s = sf_start_server(&o);
    struct cli *c = sf_cli_open(gw_server_port(s), 128 << 10);
    const size_t total = 64u << 20, piece = 256u << 10;
    uint8_t *buf = malloc(piece);
    uint64_t h = FNV_INIT;
    atomic_store(&sf.slow_consumed, 0);
    char head[256];
    snprintf(head, sizeof(head), "PUT /slow HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n",
             total);
    sf_send_str(c, head);
    uint64_t max_lag = 0;
    bool sent = true;
    double t0 = sf_now_s();
    for (size_t off = 0; off < total && sent; off += piece) {
        for (size_t i = 0; i < piece; i++)
            buf[i] = (uint8_t)((off + i) * 2654435761u >> 13);
        h = sf_fnv_add(h, buf, piece);
        sent = sf_send_all(c, buf, piece);
        uint64_t lag = off + piece - atomic_load(&sf.slow_consumed);
        if (lag > max_lag)
            max_lag = lag;
    }
    free(buf);
    struct resp r;
    char want[128];
    snprintf(want, sizeof(want), "q= n=%zu h=%016llx", total, (unsigned long long)h);
    ok(sent && sf_read_resp(c, &r, 0) == 0 && r.status == 200 && body_is(&r, want),
       "64 MiB through a sf_handler taking 128 KiB per millisecond, in order (%.1f s)",
       sf_now_s() - t0);
    cmn_buf_free(&r.body);
    /* Without backpressure the server would absorb the upload and the client would run
     * up to 64 MiB ahead; with it, only socket buffers (128 KiB each side, doubled by the
     * kernel) and the 64 KiB input buffer lie between them. */
    ok(max_lag < (4u << 20), "the client never ran more than 4 MiB ahead of the sf_handler "
                             "(max %llu KiB)", (unsigned long long)(max_lag >> 10));
    struct gw_server_stats st;
    gw_server_stats(s, &st);
    ok(st.max_input_buffered <= (64u << 10), "server input buffered per connection <= 64 KiB "
                                             "(max %llu)", (unsigned long long)st.max_input_buffered);
    sf_cli_close(c);
    gw_server_destroy(s);
}

static void test_slow_download(const char *path)
{
    struct gw_server_opts o = {.workers = 1, .socket_buffer = 64 << 10};
    struct gw_server *s = sf_start_server(&o);
    struct cli *c = sf_cli_open(gw_server_port(s), 0);
    int rcv = 32 << 10;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    const size_t total = 12u << 20;
    char req[128];
    snprintf(req, sizeof(req), "GET %s?n=%zu HTTP/1.1\r\nHost: h\r\n\r\n", path, total);
    sf_send_str(c, req);
    struct resp r;
    bool okh = sf_read_resp(c, &r, 2) == 0 && r.status == 200 && r.cl == (long long)total;
    size_t got = c->len;
    bool same = true;
    for (size_t i = 0; i < c->len; i++)
        same &= (uint8_t)c->buf[i] == i % 251;
    char tmp[16384];
    double t0 = sf_now_s();
    while (got < total && same) {
        ssize_t k = recv(c->fd, tmp, sizeof(tmp), 0);
        if (k <= 0)
            break;
        for (ssize_t i = 0; i < k; i++)
            same &= (uint8_t)tmp[i] == (got + (size_t)i) % 251;
        got += (size_t)k;
        if ((got >> 14) % 8 == 0)
            sf_sleep_ms(1); /* a slow reader */
    }
    ok(okh && same && got == total, "%s: 12 MiB read by a slow client, every byte right (%.1f s)",
       path, sf_now_s() - t0);
    struct gw_server_stats st;
    gw_server_stats(s, &st);
    ok(st.max_write_queued <= 2 * PIECE + 1024,
       "queued response bytes stay within the sf_handler's two 256 KiB pieces (max %llu KiB)",
       (unsigned long long)(st.max_write_queued >> 10));
    cmn_buf_free(&r.body);
    sf_cli_close(c);
    gw_server_destroy(s);
}

/* Pipe writes (gw_req_write_pipe) among memory writes: order on the wire, what follows a
 * response on the same connection, the close after it, and a client leaving halfway. */
static void test_splice(int port)
{
    struct cli *c = sf_cli_open(port, 0);
    const size_t n = 3u << 20;
    char req[256];
    snprintf(req, sizeof(req),
             "GET /splice?n=%zu HTTP/1.1\r\nHost: h\r\n\r\n"
             "GET /echo?behind HTTP/1.1\r\nHost: h\r\n\r\n", n);
    sf_send_str(c, req);
    struct resp r;
    int rc = sf_read_resp(c, &r, 0);
    ok(rc == 0 && r.status == 200 && body_is_pattern(&r, n), "3 MiB, every other 256 KiB piece spliced from a pipe: every byte in order");
    cmn_buf_free(&r.body);
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 &&
           body_is(&r, "q=behind n=0 h=cbf29ce484222325"),
       "the pipelined request behind it is answered after it, on the same connection");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    snprintf(req, sizeof(req), "GET /splice?n=%zu HTTP/1.0\r\n\r\n", n);
    sf_send_str(c, req);
    rc = sf_read_resp(c, &r, 0);
    ok(rc == 0 && r.close && body_is_pattern(&r, n) && sf_sees_close(c, 2000),
       "HTTP/1.0: the whole spliced body goes out before the server closes");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    /* Finished while memory, pipe and memory writes are still queued: the close waits for
     * the last of them, a memory write behind the pipe one. */
    c = sf_cli_open(port, 0);
    const size_t m = 2 * PIECE + 1000;
    snprintf(req, sizeof(req), "GET /splice?n=%zu&end=1 HTTP/1.0\r\n\r\n", m);
    sf_send_str(c, req);
    rc = sf_read_resp(c, &r, 0);
    ok(rc == 0 && r.close && body_is_pattern(&r, m) && sf_sees_close(c, 2000),
       "finished with writes queued behind a pipe write: all of them, then the close");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    /* A handler that queues more than its pipe holds: the connection closes at once (a
     * short body), where waiting for the socket to take more would spin forever. */
    c = sf_cli_open(port, 0);
    snprintf(req, sizeof(req), "GET /splice?n=%zu&dry=1 HTTP/1.1\r\nHost: h\r\n\r\n", m);
    sf_send_str(c, req);
    double t0 = sf_now_s();
    rc = sf_read_resp(c, &r, 0);
    ok(rc != 0 && sf_sees_close(c, 2000) && sf_now_s() - t0 < 5,
       "a pipe write the pipe cannot fill closes the connection (%.1f s)", sf_now_s() - t0);
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    int cancels = atomic_load(&sf.n_cancel);
    c = sf_cli_open(port, 0);
    int rcv = 32 << 10;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    sf_send_str(c, "GET /splice?n=104857600 HTTP/1.1\r\nHost: h\r\n\r\n");
    char tmp[65536];
    ssize_t k = recv(c->fd, tmp, sizeof(tmp), 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    sf_cli_close(c); /* a reset with 100 MiB promised */
    ok(k > 0 && wait_for(&sf.n_cancel, cancels + 1, 5000),
       "a client resetting mid-response cancels the request (held pipe writes fail)");
    c = sf_cli_open(port, 0);
    sf_send_str(c, "GET /echo?after HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && body_is(&r, "q=after n=0 h=cbf29ce484222325"),
       "the server goes on serving");
    cmn_buf_free(&r.body);
    sf_cli_close(c);
}

static void test_timeouts(void)
{
    struct gw_server_opts o = {.workers = 1, .idle_timeout_ms = 200, .header_timeout_ms = 300,
                               .body_timeout_ms = 300, .linger_ms = 300};
    struct gw_server *s = sf_start_server(&o);
    int port = gw_server_port(s);
    struct resp r;

    struct cli *c = sf_cli_open(port, 0);
    sf_send_str(c, "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200, "a request before going idle");
    cmn_buf_free(&r.body);
    double t0 = sf_now_s();
    bool closed = sf_sees_close(c, 5000);
    double dt = sf_now_s() - t0;
    ok(closed && dt >= 0.15 && dt < 3, "idle keep-alive connection closed after ~200 ms (%.2f s)",
       dt);
    sf_cli_close(c);

    struct gw_server_stats st0, st1;
    gw_server_stats(s, &st0);
    c = sf_cli_open(port, 0);
    sf_send_str(c, "GET /echo HTTP/1.1\r\nHost: h\r\nX-Slow: ");
    t0 = sf_now_s();
    closed = false;
    for (int i = 0; i < 60 && !closed; i++) {
        /* A byte every 50 ms: progress, but the head never ends. */
        if (!sf_send_str(c, "a"))
            closed = true;
        else
            closed = sf_sees_close(c, 50);
    }
    dt = sf_now_s() - t0;
    gw_server_stats(s, &st1);
    ok(closed && dt >= 0.25 && dt < 2.5,
       "slowloris: a head still growing after 300 ms is cut off (%.2f s)", dt);
    ok(st1.timeouts > st0.timeouts, "counted as a timeout");
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    sf_send_str(c, "PUT /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789");
    t0 = sf_now_s();
    bool answered = sf_read_resp(c, &r, 0) == 0 && r.status == 400 && r.close &&
                    strstr(r.body.data ? (char *)r.body.data : "", "RequestTimeout:");
    dt = sf_now_s() - t0;
    ok(answered && dt >= 0.25 && dt < 3,
       "a body that stops: on_body_end(RequestTimeout) after ~300 ms, answered 400, closed "
       "(%.2f s)", dt);
    cmn_buf_free(&r.body);
    sf_cli_close(c);
    gw_server_destroy(s);
}

static void test_reset_mid_body(int port)
{
    int cancels = atomic_load(&sf.n_cancel);
    atomic_store(&sf.hold_got, 0);
    struct cli *c = sf_cli_open(port, 0);
    sf_send_str(c, "PUT /hold-body HTTP/1.1\r\nHost: h\r\nContent-Length: 10485760\r\n\r\n");
    char *part = calloc(1, 1u << 20);
    sf_send_all(c, part, 1u << 20);
    free(part);
    for (int i = 0; i < 1000 && atomic_load(&sf.hold_got) < (1u << 20); i++)
        sf_sleep_ms(5);
    ok(atomic_load(&sf.hold_got) == (1u << 20), "the sf_handler got the first MiB");
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    sf_cli_close(c); /* RST */
    ok(wait_for(&sf.n_cancel, cancels + 1, 5000), "reset mid-body: on_cancel");
    sf_sleep_ms(200);
    is_int(atomic_load(&sf.n_cancel) - cancels, 1, "called exactly once");
}

static void test_many(void)
{
    struct gw_server_opts o = {.workers = 2};
    struct gw_server *s = sf_start_server(&o);
    enum { N = 200 };
    struct cli **cs = calloc(N, sizeof(*cs));
    for (int i = 0; i < N; i++) {
        cs[i] = sf_cli_open(gw_server_port(s), 0);
        char req[64];
        snprintf(req, sizeof(req), "GET /echo?%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        sf_send_str(cs[i], req);
    }
    int good = 0;
    char (*ids)[17] = calloc(N, 17);
    for (int i = 0; i < N; i++) {
        struct resp r;
        char want[64];
        snprintf(want, sizeof(want), "q=%d n=0 h=cbf29ce484222325", i);
        if (sf_read_resp(cs[i], &r, 0) == 0 && r.status == 200 && body_is(&r, want)) {
            good++;
            snprintf(ids[i], 17, "%s", sf_hdr(&r, "x-amz-request-id"));
        }
        cmn_buf_free(&r.body);
    }
    is_int(good, N, "200 concurrent connections on 2 workers all answered");
    int dup = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            dup += strcmp(ids[i], ids[j]) == 0;
    is_int(dup, 0, "200 request ids from 2 workers, all distinct");
    struct gw_server_stats st;
    gw_server_stats(s, &st);
    ok(st.conns_open == N && st.conns_total == N, "stats: %llu open, %llu total",
       (unsigned long long)st.conns_open, (unsigned long long)st.conns_total);
    for (int i = 0; i < N; i++)
        sf_cli_close(cs[i]);
    free(cs);
    free(ids);
    gw_server_destroy(s);
}

static void test_max_conns(void)
{
    struct gw_server_opts o = {.workers = 1, .max_conns = 2};
    struct gw_server *s = sf_start_server(&o);
    int port = gw_server_port(s);
    struct cli *c[3];
    struct resp r;
    for (int i = 0; i < 2; i++) {
        c[i] = sf_cli_open(port, 0);
        sf_send_str(c[i], "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n");
        sf_read_resp(c[i], &r, 0);
        cmn_buf_free(&r.body);
    }
    c[2] = sf_cli_open(port, 0);
    ok(sf_read_resp(c[2], &r, 0) == 0 && r.status == 503 && body_is(&r, "SlowDown") &&
           sf_sees_close(c[2], 3000),
       "over max_conns: 503 SlowDown, then closed");
    cmn_buf_free(&r.body);
    struct gw_server_stats st;
    gw_server_stats(s, &st);
    is_int(st.conns_refused, 1, "one refused connection counted");
    sf_send_str(c[0], "GET /echo?still HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(sf_read_resp(c[0], &r, 0) == 0 && body_is(&r, "q=still n=0 h=cbf29ce484222325"),
       "the connections within the limit still work");
    cmn_buf_free(&r.body);
    for (int i = 0; i < 3; i++)
        sf_cli_close(c[i]);
    gw_server_destroy(s);
}

static void test_stop(void)
{
    int starts = atomic_load(&sf.n_worker_start), stops = atomic_load(&sf.n_worker_stop);
    struct gw_server_opts o = {.workers = 2, .linger_ms = 200};
    struct gw_server *s = sf_start_server(&o);
    int port = gw_server_port(s);
    is_int(atomic_load(&sf.n_worker_start) - starts, 2, "worker_start ran on both workers");
    struct resp r;
    struct cli *idle = sf_cli_open(port, 0);
    sf_send_str(idle, "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n");
    sf_read_resp(idle, &r, 0);
    cmn_buf_free(&r.body);
    int reqs = atomic_load(&sf.n_requests);
    struct cli *busy = sf_cli_open(port, 0);
    sf_send_str(busy, "GET /delay?ms=300 HTTP/1.1\r\nHost: h\r\n\r\n");
    wait_for(&sf.n_requests, reqs + 1, 5000);
    double t0 = sf_now_s();
    gw_server_stop(s, 5000);
    double dt = sf_now_s() - t0;
    ok(dt >= 0.2 && dt < 4, "graceful stop waited for the request in progress (%.2f s)", dt);
    ok(sf_read_resp(busy, &r, 0) == 0 && r.status == 200 && r.close && body_is(&r, "delayed"),
       "which was answered, with Connection: close");
    cmn_buf_free(&r.body);
    ok(sf_sees_close(busy, 2000) && sf_sees_close(idle, 2000), "both connections closed");
    is_int(atomic_load(&sf.n_worker_stop) - stops, 2, "worker_stop ran on both workers");
    sf_cli_close(busy);
    sf_cli_close(idle);
    gw_server_destroy(s);
}

static void test_stop_cancel(void)
{
    struct gw_server_opts o = {.workers = 1};
    struct gw_server *s = sf_start_server(&o);
    int reqs = atomic_load(&sf.n_requests), cancels = atomic_load(&sf.n_cancel);
    struct cli *c = sf_cli_open(gw_server_port(s), 0);
    sf_send_str(c, "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n");
    wait_for(&sf.n_requests, reqs + 1, 5000);
    double t0 = sf_now_s();
    gw_server_stop(s, 200);
    double dt = sf_now_s() - t0;
    ok(dt >= 0.15 && dt < 3, "stop gave the stuck request its 200 ms grace (%.2f s)", dt);
    is_int(atomic_load(&sf.n_cancel) - cancels, 1, "then cancelled it");
    ok(sf_sees_close(c, 2000), "and closed its connection");
    sf_cli_close(c);
    gw_server_destroy(s);
}

static void test_more(void)
{
    struct cmn_metrics *m;
    if (cmn_metrics_create(&m) != 0)
        tap_bail("metrics");
    struct gw_server_opts o = {.workers = 1, .write_timeout_ms = 300, .socket_buffer = 64 << 10,
                               .linger_ms = 300, .metrics = m};
    struct gw_server *s = sf_start_server(&o);
    int port = gw_server_port(s);
    struct resp r;

    struct cli *c = sf_cli_open(port, 0);
    sf_send_str(c, "GET /echo?ka10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 && !r.close &&
           strcmp(sf_hdr(&r, "connection") ? sf_hdr(&r, "connection") : "", "keep-alive") == 0 &&
           body_is(&r, "q=ka10 n=0 h=cbf29ce484222325"),
       "HTTP/1.0 keep-alive: answered with Connection: keep-alive");
    cmn_buf_free(&r.body);
    sf_send_str(c, "GET /echo?ka10b HTTP/1.0\r\n\r\n");
    ok(sf_read_resp(c, &r, 0) == 0 && r.close && body_is(&r, "q=ka10b n=0 h=cbf29ce484222325"),
       "and serves a second request on it");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    sf_send_str(c, "GET /echo?half HTTP/1.1\r\nHost: h\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 200 &&
           body_is(&r, "q=half n=0 h=cbf29ce484222325") && sf_sees_close(c, 2000),
       "client half-closes after its request: still answered, then closed");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    sf_send_str(c, "PUT /echo?cut HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n12345");
    shutdown(c->fd, SHUT_WR);
    ok(sf_read_resp(c, &r, 0) == 0 && r.status == 400 &&
           strstr(r.body.data ? (char *)r.body.data : "", "IncompleteBody:"),
       "body cut short by the client's EOF: on_body_end(IncompleteBody), answered");
    cmn_buf_free(&r.body);
    sf_cli_close(c);

    c = sf_cli_open(port, 0);
    sf_send_str(c, "GET /short HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(sf_read_resp(c, &r, 2) == 0 && r.cl == 100, "a response that promises 100 bytes");
    char tmp[200];
    size_t got = c->len;
    while (got < sizeof(tmp)) {
        ssize_t k = recv(c->fd, tmp, sizeof(tmp), 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    ok(got == 10 && atomic_load(&sf.short_rc) == 1000,
       "finished after 10: those arrive, then the connection closes (%zu bytes)", got);
    sf_cli_close(c);

    int cancels = atomic_load(&sf.n_cancel);
    c = sf_cli_open(port, 0);
    int rcv = 16 << 10;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    sf_send_str(c, "GET /download?n=67108864 HTTP/1.1\r\nHost: h\r\n\r\n");
    double t0 = sf_now_s();
    bool cancelled = wait_for(&sf.n_cancel, cancels + 1, 5000);
    double dt = sf_now_s() - t0;
    ok(cancelled && dt >= 0.25 && dt < 4,
       "a client that stops reading: write stall timeout, on_cancel (%.2f s)", dt);
    sf_cli_close(c);

    struct cmn_buf text;
    cmn_buf_init(&text);
    cmn_metrics_render(m, &text);
    cmn_buf_terminate(&text);
    ok(strstr((char *)text.data, "lode_gateway_http_requests_total 6") &&
           strstr((char *)text.data, "lode_gateway_http_connections_total 5") &&
           strstr((char *)text.data, "lode_gateway_http_timeouts_total 1"),
       "metrics: requests, connections and timeouts counted");
    if (!strstr((char *)text.data, "lode_gateway_http_requests_total 6"))
        diag("%s", text.data);
    cmn_buf_free(&text);
    gw_server_destroy(s);
    cmn_metrics_destroy(m);

    struct gw_server *bad;
    struct cmn_err err;
    struct gw_server_opts ob = {.addr = "no-port", .handler = &sf_handler};
    ok(gw_server_create(&ob, &bad, &err) != 0 && err.msg[0], "bad address refused: %s",
       err.msg);
    ob.addr = "127.0.0.1:0";
    ob.handler = NULL;
    ok(gw_server_create(&ob, &bad, &err) == -EINVAL, "no sf_handler refused");

    int stops = atomic_load(&sf.n_worker_stop);
    struct gw_server_opts of = {.addr = "127.0.0.1:0", .handler = &sf_handler, .workers = 2,
                                .handler_data = (void *)1};
    struct gw_server *f;
    if (gw_server_create(&of, &f, &err) != 0)
        tap_bail("create: %s", err.msg);
    int rc = gw_server_start(f, &err);
    ok(rc != 0 && strstr(err.msg, "worker 1"), "a worker_start failure fails start: %s",
       err.msg);
    is_int(atomic_load(&sf.n_worker_stop) - stops, 1, "the worker already started is stopped");
    gw_server_destroy(f);
}

int main(void)
{
    sf_init();
    struct gw_server_opts o = {.workers = 2};
    struct gw_server *s = sf_start_server(&o);
    int port = gw_server_port(s);
    ok(port > 0, "listening on 127.0.0.1:%d", port);
    test_keepalive(port, s);
    test_pipelining(port);
    test_bad_requests(port);
    test_continue(port);
    test_reset_mid_body(port);
    test_splice(port);
    gw_server_destroy(s);

    test_upload_backpressure();
    test_slow_download("/download");
    test_slow_download("/splice");
    test_timeouts();
    test_many();
    test_max_conns();
    test_stop();
    test_stop_cancel();
    test_more();
    return tap_done();
}
