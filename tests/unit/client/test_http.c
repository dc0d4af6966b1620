/* liblode's HTTP/1.1 client (client/http.h) against a fake server answering with canned
 * bytes: Content-Length, chunked and close-delimited bodies, keep-alive, 1xx interim
 * responses, HEAD, limits (head size, body limit), truncation, malformed heads, timeouts. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/http.h"
#include "tests/tap.h"
#include "tests/unit/client/fake_server.h"

static bool handler(int fd, const struct fs_request *r, void *data)
{
    const char *p = r->path;
    if (strcmp(p, "/cl") == 0) {
        char body[32];
        int n = snprintf(body, sizeof(body), "request %d", r->conn_requests);
        fs_printf(fd, "HTTP/1.1 200 OK\r\nX-Pad:   spaced value \t\r\nx-pad: second\r\n"
                      "Content-Length: %d\r\n\r\n%s", n, body);
        return true;
    }
    if (strcmp(p, "/chunked") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        return true;
    }
    if (strcmp(p, "/close") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
        return false;
    }
    if (strcmp(p, "/big") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        char z[100];
        memset(z, 'z', sizeof(z));
        fs_write(fd, z, sizeof(z));
        return true;
    }
    if (strcmp(p, "/truncated") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
        return false;
    }
    if (strcmp(p, "/malformed") == 0) {
        fs_printf(fd, "HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n");
        return false;
    }
    if (strcmp(p, "/hugehead") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\n");
        char line[1024];
        memset(line, 'a', sizeof(line));
        memcpy(line, "X-Fill: ", 8);
        line[1022] = '\r';
        line[1023] = '\n';
        for (int i = 0; i < 70; i++)
            if (fs_write(fd, line, sizeof(line)) != 0)
                break;
        fs_printf(fd, "\r\n");
        return false;
    }
    if (strcmp(p, "/continue") == 0) {
        fs_printf(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
                      "\r\nok");
        return true;
    }
    if (strcmp(p, "/head") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        return true;
    }
    if (strcmp(p, "/silent") == 0) {
        usleep(500 * 1000);
        return false;
    }
    if (strcmp(p, "/prefix") == 0) {
        char b[1000];
        for (int i = 0; i < 1000; i++)
            b[i] = (char)('a' + i % 26);
        fs_printf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        fs_write(fd, b, sizeof(b));
        return true;
    }
    if (strcmp(p, "/echo") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", r->body_len);
        fs_write(fd, r->body, r->body_len);
        return true;
    }
    fs_printf(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    return true;
}

static struct fake_server srv;

/* A server that refuses a large upload the way real ones do: it reads the request head, answers
 * 404 at once and closes with most of the body unread (so the kernel resets the connection). */
static void *early_refuser(void *arg)
{
    int lfd = *(int *)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char h[4096];
    size_t n = 0;
    while (n < sizeof(h) - 1) {
        ssize_t k = read(fd, h + n, sizeof(h) - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        h[n] = 0;
        if (strstr(h, "\r\n\r\n"))
            break;
    }
    static const char xml[] = "<Error><Code>NoSuchBucket</Code></Error>";
    fs_printf(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
              sizeof(xml) - 1, xml);
    close(fd);
    return NULL;
}

/* Sends "METHOD PATH" and reads the head. */
static int exchange(struct lc_http_conn *c, const char *method, const char *path,
                    struct lc_http_resp *r, uint32_t timeout_ms, struct cmn_err *e)
{
    char head[256];
    int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path);
    cmn_err_clear(e);
    int rc = lc_http_send(c, head, (size_t)n, NULL, 0, NULL, timeout_ms, e);
    if (rc == 0)
        rc = lc_http_read_head(c, strcmp(method, "HEAD") == 0, r, NULL, timeout_ms, e);
    return rc;
}

static int body(struct lc_http_conn *c, struct lc_http_resp *r, char *dst, size_t cap,
                uint64_t *got, struct cmn_err *e)
{
    struct lc_http_mem m = {(uint8_t *)dst, cap};
    struct lc_http_sink s;
    lc_http_sink_mem(&s, &m);
    return lc_http_read_body(c, r, &s, cap, got, 2000, e);
}

static struct lc_http_conn *conn(void)
{
    struct lc_http_conn *c = NULL;
    if (lc_http_connect("127.0.0.1", srv.port, 2000, &c, NULL) != 0)
        tap_bail("cannot connect to the fake server");
    return c;
}

int main(void)
{
    if (fs_start(&srv, handler, NULL) != 0)
        tap_bail("fake server");
    struct lc_http_resp *r = malloc(sizeof(*r));
    struct cmn_err e;
    char buf[256];
    uint64_t got;

    /* Content-Length, header lookup, keep-alive. */
    struct lc_http_conn *c = conn();
    is_int(exchange(c, "GET", "/cl", r, 2000, &e), 0, "cl: head read");
    is_int(r->status, 200, "cl: status");
    ok(r->content_length == 9 && !r->chunked && !r->close, "cl: framing");
    is_str(lc_http_header(r, "x-pad", NULL), "spaced value",
           "cl: value trimmed, name case-insensitive");
    is_int(body(c, r, buf, sizeof(buf), &got, &e), 0, "cl: body read");
    ok(got == 9 && memcmp(buf, "request 0", 9) == 0, "cl: body bytes");
    ok(lc_http_reusable(c), "cl: reusable");
    is_int(exchange(c, "GET", "/cl", r, 2000, &e), 0, "keep-alive: second request");
    is_int(body(c, r, buf, sizeof(buf), &got, &e), 0, "keep-alive: body");
    ok(got == 9 && memcmp(buf, "request 1", 9) == 0, "keep-alive: same connection (request 1)");

    /* Chunked. */
    is_int(exchange(c, "GET", "/chunked", r, 2000, &e), 0, "chunked: head");
    ok(r->chunked, "chunked: framing");
    is_int(body(c, r, buf, sizeof(buf), &got, &e), 0, "chunked: body");
    ok(got == 11 && memcmp(buf, "hello world", 11) == 0, "chunked: bytes joined");
    ok(lc_http_reusable(c), "chunked: reusable");

    /* A chunked body over the limit. */
    is_int(exchange(c, "GET", "/chunked", r, 2000, &e), 0, "chunked limit: head");
    is_int(body(c, r, buf, 8, &got, &e), LODE_ETOOLARGE, "chunked limit: over 8 bytes refused");
    ok(!lc_http_reusable(c), "chunked limit: not reusable");
    lc_http_close(c);

    /* 1xx, HEAD. */
    c = conn();
    is_int(exchange(c, "GET", "/continue", r, 2000, &e), 0, "100-continue: head");
    is_int(r->status, 201, "100-continue: the final status");
    is_int(body(c, r, buf, sizeof(buf), &got, &e), 0, "100-continue: body");
    ok(got == 2 && memcmp(buf, "ok", 2) == 0, "100-continue: bytes");
    is_int(exchange(c, "HEAD", "/head", r, 2000, &e), 0, "HEAD: head");
    ok(r->no_body && r->content_length == 0, "HEAD: no body whatever Content-Length says");
    is_str(lc_http_header(r, "content-length", NULL), "1000", "HEAD: Content-Length kept");
    is_int(body(c, r, buf, sizeof(buf), &got, &e), 0, "HEAD: empty body");
    ok(lc_http_reusable(c), "HEAD: reusable");

    /* Request body. */
    char head[128];
    int hn = snprintf(head, sizeof(head),
                      "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    cmn_err_clear(&e);
    int rc = lc_http_send(c, head, (size_t)hn, "abcde", 5, NULL, 2000, &e);
    if (rc == 0)
        rc = lc_http_read_head(c, false, r, NULL, 2000, &e);
    is_int(rc, 0, "PUT: sent");
    is_int(body(c, r, buf, sizeof(buf), &got, &e), 0, "PUT: echo");
    ok(got == 5 && memcmp(buf, "abcde", 5) == 0, "PUT: the server got the body");

    /* Body over the limit with Content-Length: refused before anything is written. */
    memset(buf, '.', sizeof(buf));
    is_int(exchange(c, "GET", "/big", r, 2000, &e), 0, "limit: head");
    is_int(body(c, r, buf, 50, &got, &e), LODE_ETOOLARGE, "limit: 100 bytes over 50 refused");
    ok(buf[0] == '.', "limit: nothing written");
    ok(!lc_http_reusable(c), "limit: not reusable");
    lc_http_close(c);

    /* A prefix of a body. */
    c = conn();
    is_int(exchange(c, "GET", "/prefix", r, 2000, &e), 0, "prefix: head");
    struct lc_http_mem m = {(uint8_t *)buf, 10};
    struct lc_http_sink s;
    lc_http_sink_mem(&s, &m);
    is_int(lc_http_read_body_prefix(c, r, &s, 10, 2000, &e), 0, "prefix: 10 of 1000 bytes");
    ok(memcmp(buf, "abcdefghij", 10) == 0, "prefix: bytes");
    ok(!lc_http_reusable(c), "prefix: not reusable");
    lc_http_close(c);

    /* Close-delimited. */
    c = conn();
    is_int(exchange(c, "GET", "/close", r, 2000, &e), 0, "close: head");
    ok(r->close && r->content_length == LC_HTTP_NO_LENGTH, "close: framing");
    is_int(body(c, r, buf, sizeof(buf), &got, &e), 0, "close: body to EOF");
    ok(got == 13 && memcmp(buf, "until the end", 13) == 0, "close: bytes");
    ok(!lc_http_reusable(c), "close: not reusable");
    lc_http_close(c);

    /* Truncated body. */
    c = conn();
    is_int(exchange(c, "GET", "/truncated", r, 2000, &e), 0, "truncated: head");
    is_int(body(c, r, buf, sizeof(buf), &got, &e), LODE_ECLOSED, "truncated: ECLOSED");
    diag("%s", e.msg);
    lc_http_close(c);

    /* Malformed and oversized heads. */
    c = conn();
    is_int(exchange(c, "GET", "/malformed", r, 2000, &e), LODE_EBADMSG, "malformed status");
    lc_http_close(c);
    c = conn();
    is_int(exchange(c, "GET", "/hugehead", r, 2000, &e), LODE_EBADMSG, "head over 64 KiB");
    lc_http_close(c);

    /* Timeout. */
    c = conn();
    is_int(exchange(c, "GET", "/silent", r, 100, &e), LODE_ETIMEOUT, "no answer: ETIMEOUT");
    lc_http_close(c);

    /* A stale connection: the server closed before answering. */
    c = conn();
    bool nothing = false;
    hn = snprintf(head, sizeof(head), "GET /silent HTTP/1.1\r\nHost: x\r\n\r\n");
    rc = lc_http_send(c, head, (size_t)hn, NULL, 0, NULL, 2000, &e);
    if (rc == 0)
        rc = lc_http_read_head(c, false, r, &nothing, 2000, &e);
    ok(rc == LODE_ECLOSED && nothing, "closed without a byte: ECLOSED, nothing received");
    lc_http_close(c);

    /* The server answers before taking the body, then resets: the send fails, the answer is
     * still there to read, and the connection is never reused. */
    {
        uint16_t eport;
        int efd = fs_listen(&eport);
        pthread_t th;
        if (efd < 0 || pthread_create(&th, NULL, early_refuser, &efd) != 0)
            tap_bail("early refuser");
        struct lc_http_conn *ec = NULL;
        if (lc_http_connect("127.0.0.1", eport, 2000, &ec, NULL) != 0)
            tap_bail("cannot connect to the early refuser");
        size_t big = 64u << 20;
        char *payload = calloc(1, big);
        hn = snprintf(head, sizeof(head), "PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                      big);
        cmn_err_clear(&e);
        rc = lc_http_send(ec, head, (size_t)hn, payload, big, NULL, 5000, &e);
        is_int(rc, LODE_ECLOSED, "early answer: sending the 64 MiB body fails (%s)", e.msg);
        cmn_err_clear(&e);
        rc = lc_http_read_head(ec, false, r, NULL, 2000, &e);
        ok(rc == 0 && r->status == 404, "early answer: the 404 is read after the failed send (%d %s)",
           rc, e.msg);
        is_int(body(ec, r, buf, sizeof(buf), &got, &e), 0, "early answer: its body");
        ok(got > 0 && strstr(buf, "NoSuchBucket") != NULL, "early answer: the S3 error code");
        ok(!lc_http_reusable(ec), "early answer: the connection is not reused");
        lc_http_close(ec);
        pthread_join(th, NULL);
        close(efd);
        free(payload);
    }

    /* Connection refused. */
    uint16_t port;
    int lfd = fs_listen(&port);
    close(lfd);
    struct lc_http_conn *none = NULL;
    is_int(lc_http_connect("127.0.0.1", port, 1000, &none, &e), -ECONNREFUSED, "refused");
    ok(none == NULL && strstr(e.msg, "127.0.0.1") != NULL, "refused: message names the address");

    free(r);
    fs_stop(&srv);
    return tap_done();
}
