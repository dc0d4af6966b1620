/* liblode's HTTP/1.1 client: blocking sockets with a per-step timeout, keep-alive, responses
 * parsed with llhttp, and bodies received straight into caller memory.
 *
 * One connection serves one request at a time: lc_http_send, lc_http_read_head, then
 * lc_http_read_body (or lc_http_skip_body). The head is read into the connection's own buffer
 * (bounded by LC_HTTP_HEAD_MAX); body bytes that arrived with it are handed to the sink first,
 * and the rest is received by recv() directly into the memory the sink lends, so a GET into a
 * registered buffer copies nothing in user space. Chunked bodies go through llhttp and are
 * copied from the connection buffer (the gateway never sends them for objects).
 *
 * After a response whose body was read to its end, on an HTTP/1.1 connection the server did
 * not mark "Connection: close", lc_http_reusable() is true and the next request may follow.
 * Any error leaves the connection unusable: close it.
 *
 * Not thread-safe per connection; distinct connections are independent.
 */
#ifndef LODE_CLIENT_HTTP_H
#define LODE_CLIENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define LC_HTTP_HEAD_MAX (64 * 1024)   /* status line + headers */
#define LC_HTTP_HEADERS_MAX 128
#define LC_HTTP_NO_LENGTH UINT64_MAX   /* body length unknown (chunked, or until close) */

struct lc_http_conn;

/* Connects to host:port (a name, an IPv4 or an IPv6 address) within timeout_ms. Returns 0 and
 * *out, or a negative errno (-ECONNREFUSED, -EHOSTUNREACH, ...), LODE_ETIMEOUT, -EINVAL
 * (name does not resolve); with `err` a message naming the address. */
int lc_http_connect(const char *host, uint16_t port, uint32_t timeout_ms,
                    struct lc_http_conn **out, struct cmn_err *err);

void lc_http_close(struct lc_http_conn *c);  /* NULL is a no-op */

/* Whether the last exchange left the connection fit for another request. */
bool lc_http_reusable(const struct lc_http_conn *c);

/* Where request body bytes come from when they are not in plain memory: `n` bytes of body
 * offset `off` are wanted; returns a pointer to up to *n bytes (*n may be lowered) or NULL
 * with an error code in *rc. */
struct lc_http_source {
    const void *(*get)(void *data, uint64_t off, size_t *n, int *rc);
    void *data;
};

/* Sends the request head (already formatted, ending with the blank line), then body_len body
 * bytes from `body` or, when `body` is NULL and body_len > 0, from `src`. Returns 0, or a
 * negative errno / LODE_ETIMEOUT / LODE_ECLOSED with a message. After a failure the server may
 * still have answered (a server refuses a large body early, then closes): the caller may try
 * lc_http_read_head; the connection is never reused either way. */
int lc_http_send(struct lc_http_conn *c, const void *head, size_t head_len, const void *body,
                 uint64_t body_len, const struct lc_http_source *src, uint32_t timeout_ms,
                 struct cmn_err *err);

/* A response head. Header values are trimmed; names and values point into the head copy. */
struct lc_http_resp {
    int status;
    int minor;                     /* HTTP/1.minor */
    uint64_t content_length;       /* LC_HTTP_NO_LENGTH when not framed by Content-Length */
    bool chunked;
    bool no_body;                  /* 1xx, 204, 304, or a response to HEAD */
    bool close;                    /* Connection: close (or HTTP/1.0 without keep-alive) */
    size_t n_headers;
    struct {
        const char *name, *value;  /* NUL-terminated */
        size_t name_len, value_len;
    } headers[LC_HTTP_HEADERS_MAX];
    char head[LC_HTTP_HEAD_MAX + 1]; /* storage of the names and values */
};

/* Reads the next response head (skipping 1xx interim responses) within timeout_ms per
 * receive. `head_request`: the request was HEAD (no body follows whatever the headers say).
 * Returns 0, LODE_EBADMSG (malformed, over the limits), LODE_ECLOSED (the server closed
 * before a full head), LODE_ETIMEOUT, or a negative errno. On a close or a reset, *nothing
 * (may be NULL) tells whether no byte at all had arrived: how a stale keep-alive connection
 * shows. */
int lc_http_read_head(struct lc_http_conn *c, bool head_request, struct lc_http_resp *r,
                      bool *nothing, uint32_t timeout_ms, struct cmn_err *err);

/* The value of header `name` (case-insensitive; the first one), or NULL. */
const char *lc_http_header(const struct lc_http_resp *r, const char *name, size_t *len);

/* Where body bytes go: `space` lends memory for the bytes of body offset `off`, at most *n
 * (it may lower *n, never to 0); `commit` says that `n` bytes have been written there. NULL
 * from space, or non-zero from commit, fails the read with that code in *rc / the return. */
struct lc_http_sink {
    void *(*space)(void *data, uint64_t off, size_t *n, int *rc);
    int (*commit)(void *data, uint64_t off, size_t n);
    void *data;
};

/* Reads the body into the sink, accepting at most `limit` bytes: a longer body fails with
 * LODE_ETOOLARGE before any byte beyond `limit` is written (the connection is then not
 * reusable). *got gets the bytes delivered. Returns 0 when the whole body was read, or
 * LODE_ECLOSED (the body ended early), LODE_EBADMSG, LODE_ETIMEOUT, a negative errno, or the
 * sink's code. */
int lc_http_read_body(struct lc_http_conn *c, const struct lc_http_resp *r,
                      const struct lc_http_sink *sink, uint64_t limit, uint64_t *got,
                      uint32_t timeout_ms, struct cmn_err *err);

/* Reads the first `want` bytes of a Content-Length body into the sink and then stops: the
 * rest is not read and the connection is no longer reusable. want must be <= the length. */
int lc_http_read_body_prefix(struct lc_http_conn *c, const struct lc_http_resp *r,
                             const struct lc_http_sink *sink, uint64_t want,
                             uint32_t timeout_ms, struct cmn_err *err);

/* A sink into plain memory: [dst, dst + cap). */
struct lc_http_mem {
    uint8_t *dst;
    uint64_t cap;
};
void lc_http_sink_mem(struct lc_http_sink *s, struct lc_http_mem *m);

#endif
