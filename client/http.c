#include "client/http.h"

#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"

/* The receive buffer holds a head (and whatever body bytes came with it); chunked bodies
 * and discarded bytes also pass through it. */
#define RBUF_SIZE (LC_HTTP_HEAD_MAX + 16 * 1024)

struct lc_http_conn {
    int fd;
    bool reusable;
    bool cut;                      /* a request went out incomplete: never reuse */
    size_t rpos, rlen;             /* unconsumed bytes are rbuf[rpos, rlen) */
    llhttp_t parser;
    llhttp_settings_t settings;
    /* State of the llhttp callbacks. */
    struct lc_http_resp *resp;     /* head parsing */
    const struct lc_http_sink *sink; /* chunked body */
    uint64_t body_got, body_limit;
    int body_rc;
    bool message_done;
    const char *span_end;          /* end of the last header span, to join split spans */
    bool in_value;
    uint8_t rbuf[RBUF_SIZE];
};

/* ---- socket steps with a timeout ---- */

static int wait_fd(int fd, short events, uint32_t timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, (int)timeout_ms);
        if (n > 0)
            return 0;
        if (n == 0)
            return LODE_ETIMEOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Receives up to n bytes. Returns the count (> 0), 0 at EOF, or a negative code. */
static ssize_t recv_some(struct lc_http_conn *c, void *p, size_t n, uint32_t timeout_ms)
{
    for (;;) {
        ssize_t got = recv(c->fd, p, n, 0);
        if (got >= 0)
            return got;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(c->fd, POLLIN, timeout_ms);
        if (rc)
            return rc;
    }
}

static int send_all(struct lc_http_conn *c, const void *p, size_t n, bool more,
                    uint32_t timeout_ms)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == EPIPE || errno == ECONNRESET ? LODE_ECLOSED : -errno;
        int rc = wait_fd(c->fd, POLLOUT, timeout_ms);
        if (rc)
            return rc;
    }
    return 0;
}

int lc_http_connect(const char *host, uint16_t port, uint32_t timeout_ms,
                    struct lc_http_conn **out, struct cmn_err *err)
{
    *out = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0)
        return cmn_err_set(err, -EINVAL, "cannot resolve '%s': %s", host, gai_strerror(g));
    int rc = -ECONNREFUSED, fd = -1;
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            rc = 0;
            break;
        }
        rc = -errno;
        if (errno == EINPROGRESS) {
            uint64_t now = cmn_mono_ms();
            rc = wait_fd(fd, POLLOUT, now < deadline ? (uint32_t)(deadline - now) : 0);
            if (rc == 0) {
                int e = 0;
                socklen_t l = sizeof(e);
                rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0 ? -errno : -e;
            }
            if (rc == 0)
                break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (rc)
        return cmn_err_set(err, rc, "connect to %s:%u: %s", host, port, lode_strerror(rc));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct lc_http_conn *c = malloc(sizeof(*c));
    if (!c) {
        close(fd);
        return cmn_err_set(err, -ENOMEM, "out of memory");
    }
    memset(c, 0, offsetof(struct lc_http_conn, rbuf));
    c->fd = fd;
    c->reusable = true;
    *out = c;
    return 0;
}

void lc_http_close(struct lc_http_conn *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}

bool lc_http_reusable(const struct lc_http_conn *c)
{
    return c->reusable && !c->cut;
}

int lc_http_send(struct lc_http_conn *c, const void *head, size_t head_len, const void *body,
                 uint64_t body_len, const struct lc_http_source *src, uint32_t timeout_ms,
                 struct cmn_err *err)
{
    c->reusable = false; /* until a response has been read completely */
    /* A previous response must have been consumed entirely; left-over bytes would be taken
     * for the start of the next one. */
    if (c->rpos != c->rlen)
        return cmn_err_set(err, LODE_EBADMSG, "unexpected bytes from the server");
    c->rpos = c->rlen = 0;
    int rc = send_all(c, head, head_len, body_len > 0, timeout_ms);
    for (uint64_t off = 0; rc == 0 && off < body_len;) {
        size_t n = body_len - off > (1u << 30) ? (1u << 30) : (size_t)(body_len - off);
        const void *p;
        if (body) {
            p = (const uint8_t *)body + off;
        } else {
            p = src->get(src->data, off, &n, &rc);
            if (!p || n == 0) {
                if (!rc)
                    rc = LODE_EINTERNAL;
                return cmn_err_set(err, rc, "request body: %s", lode_strerror(rc));
            }
        }
        rc = send_all(c, p, n, off + n < body_len, timeout_ms);
        off += n;
    }
    if (rc) {
        c->cut = true;
        return cmn_err_set(err, rc, "sending the request: %s", lode_strerror(rc));
    }
    return 0;
}

/* ---- response head ---- */

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    struct lc_http_conn *c = p->data;
    struct lc_http_resp *r = c->resp;
    if (!c->in_value && at == c->span_end && r->n_headers > 0) {
        r->headers[r->n_headers - 1].name_len += len; /* a span split by llhttp */
    } else {
        if (r->n_headers == LC_HTTP_HEADERS_MAX)
            return -1;
        r->n_headers++;
        r->headers[r->n_headers - 1].name = at;
        r->headers[r->n_headers - 1].name_len = len;
        r->headers[r->n_headers - 1].value = at + len; /* empty until a value span */
        r->headers[r->n_headers - 1].value_len = 0;
    }
    c->in_value = false;
    c->span_end = at + len;
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    struct lc_http_conn *c = p->data;
    struct lc_http_resp *r = c->resp;
    if (r->n_headers == 0)
        return -1;
    if (c->in_value && at == c->span_end) {
        r->headers[r->n_headers - 1].value_len += len;
    } else {
        r->headers[r->n_headers - 1].value = at;
        r->headers[r->n_headers - 1].value_len = len;
    }
    c->in_value = true;
    c->span_end = at + len;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    /* Stop here: the body is read by lc_http_read_body, from the connection buffer. */
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct lc_http_conn *c = p->data;
    if (c->body_got + len > c->body_limit) {
        c->body_rc = LODE_ETOOLARGE;
        return -1;
    }
    while (len) {
        size_t n = len;
        int rc = 0;
        void *dst = c->sink->space(c->sink->data, c->body_got, &n, &rc);
        if (!dst || n == 0) {
            c->body_rc = rc ? rc : LODE_EINTERNAL;
            return -1;
        }
        memcpy(dst, at, n);
        if ((rc = c->sink->commit(c->sink->data, c->body_got, n)) != 0) {
            c->body_rc = rc;
            return -1;
        }
        c->body_got += n;
        at += n;
        len -= n;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct lc_http_conn *c = p->data;
    c->message_done = true;
    return HPE_PAUSED;
}

static void trim(const char **v, size_t *n)
{
    while (*n && ((*v)[0] == ' ' || (*v)[0] == '\t')) {
        (*v)++;
        (*n)--;
    }
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

/* The end of the head in rbuf[rpos, rlen): the index after "\r\n\r\n", or 0. */
static size_t head_end(const struct lc_http_conn *c)
{
    for (size_t i = c->rpos; i + 4 <= c->rlen; i++)
        if (memcmp(c->rbuf + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

static int parse_head(struct lc_http_conn *c, size_t end, bool head_request,
                      struct lc_http_resp *r, struct cmn_err *err)
{
    size_t hl = end - c->rpos;
    memcpy(r->head, c->rbuf + c->rpos, hl);
    r->head[hl] = '\0';
    c->rpos = end;
    r->n_headers = 0;
    llhttp_settings_init(&c->settings);
    c->settings.on_header_field = on_field;
    c->settings.on_header_value = on_value;
    c->settings.on_headers_complete = on_headers_complete;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
    llhttp_init(&c->parser, HTTP_RESPONSE, &c->settings);
    c->parser.data = c;
    c->resp = r;
    c->span_end = NULL;
    c->in_value = false;
    c->message_done = false;
    llhttp_errno_t e = llhttp_execute(&c->parser, r->head, hl);
    if (e != HPE_PAUSED)
        return cmn_err_set(err, LODE_EBADMSG, "malformed response head: %s",
                           e == HPE_OK ? "incomplete" : llhttp_get_error_reason(&c->parser));
    if (llhttp_get_error_pos(&c->parser) != r->head + hl)
        return cmn_err_set(err, LODE_EBADMSG, "malformed response head");
    llhttp_resume(&c->parser);
    /* NUL-terminate names (over ':') and values (over CR or whitespace); safe now that
     * llhttp is done with these bytes. */
    for (size_t i = 0; i < r->n_headers; i++) {
        trim(&r->headers[i].value, &r->headers[i].value_len);
        ((char *)r->headers[i].name)[r->headers[i].name_len] = '\0';
        ((char *)r->headers[i].value)[r->headers[i].value_len] = '\0';
    }
    r->status = c->parser.status_code;
    r->minor = c->parser.http_minor;
    r->chunked = (c->parser.flags & F_CHUNKED) != 0;
    r->no_body = head_request || r->status < 200 || r->status == 204 || r->status == 304;
    r->content_length = LC_HTTP_NO_LENGTH;
    if (r->no_body)
        r->content_length = 0;
    else if (!r->chunked && (c->parser.flags & F_CONTENT_LENGTH))
        r->content_length = c->parser.content_length;
    r->close = !llhttp_should_keep_alive(&c->parser) ||
               (!r->no_body && !r->chunked && r->content_length == LC_HTTP_NO_LENGTH);
    return 0;
}

int lc_http_read_head(struct lc_http_conn *c, bool head_request, struct lc_http_resp *r,
                      bool *nothing, uint32_t timeout_ms, struct cmn_err *err)
{
    bool any = false;
    if (nothing)
        *nothing = false;
    for (;;) {
        size_t end = head_end(c);
        if (end == 0) {
            if (c->rlen - c->rpos >= LC_HTTP_HEAD_MAX)
                return cmn_err_set(err, LODE_EBADMSG, "response head over %d bytes",
                                   LC_HTTP_HEAD_MAX);
            if (c->rpos) {
                memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
                c->rlen -= c->rpos;
                c->rpos = 0;
            }
            ssize_t got = recv_some(c, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, timeout_ms);
            if (got == 0) {
                if (nothing)
                    *nothing = !any;
                return cmn_err_set(err, LODE_ECLOSED, "the server closed the connection%s",
                                   any ? " in a response head" : "");
            }
            if (got < 0) {
                if (nothing)
                    *nothing = !any;
                return cmn_err_set(err, (int)got, "waiting for the response: %s",
                                   lode_strerror((int)got));
            }
            any = true;
            c->rlen += (size_t)got;
            continue;
        }
        if (end - c->rpos > LC_HTTP_HEAD_MAX)
            return cmn_err_set(err, LODE_EBADMSG, "response head over %d bytes",
                               LC_HTTP_HEAD_MAX);
        int rc = parse_head(c, end, head_request, r, err);
        if (rc)
            return rc;
        if (r->status == 101)
            return cmn_err_set(err, LODE_EBADMSG, "unexpected protocol switch");
        if (r->status >= 200)
            return 0;
        any = true; /* 1xx interim: the real response follows */
    }
}

const char *lc_http_header(const struct lc_http_resp *r, const char *name, size_t *len)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) {
            if (len)
                *len = r->headers[i].value_len;
            return r->headers[i].value;
        }
    return NULL;
}

/* ---- bodies ---- */

/* Moves buffered bytes, then received ones, into the sink until `want` bytes (or EOF when
 * until_eof) have been delivered. */
static int body_raw(struct lc_http_conn *c, const struct lc_http_sink *sink, uint64_t want,
                    bool until_eof, uint64_t limit, uint64_t *got, uint32_t timeout_ms,
                    struct cmn_err *err)
{
    uint64_t off = 0;
    *got = 0;
    while (until_eof || off < want) {
        size_t n = until_eof ? SIZE_MAX : (want - off > SIZE_MAX ? SIZE_MAX : (size_t)(want - off));
        if (until_eof && off == limit) {
            /* Anything more is over the limit; one byte tells. */
            uint8_t probe;
            ssize_t g = c->rpos < c->rlen ? 1 : recv_some(c, &probe, 1, timeout_ms);
            if (g == 0)
                break;
            if (g < 0)
                return cmn_err_set(err, (int)g, "reading the body: %s", lode_strerror((int)g));
            return cmn_err_set(err, LODE_ETOOLARGE, "response body over %llu bytes",
                               (unsigned long long)limit);
        }
        if (until_eof && n > limit - off)
            n = (size_t)(limit - off);
        int rc = 0;
        uint8_t *dst = sink->space(sink->data, off, &n, &rc);
        if (!dst || n == 0)
            return cmn_err_set(err, rc ? rc : LODE_EINTERNAL, "response body: %s",
                               lode_strerror(rc ? rc : LODE_EINTERNAL));
        ssize_t g;
        if (c->rpos < c->rlen) {
            g = (ssize_t)(c->rlen - c->rpos < n ? c->rlen - c->rpos : n);
            memcpy(dst, c->rbuf + c->rpos, (size_t)g);
            c->rpos += (size_t)g;
        } else {
            g = recv_some(c, dst, n, timeout_ms);
        }
        if (g == 0) {
            if (until_eof)
                break;
            return cmn_err_set(err, LODE_ECLOSED,
                               "the server closed the connection after %llu of %llu body bytes",
                               (unsigned long long)off, (unsigned long long)want);
        }
        if (g < 0)
            return cmn_err_set(err, (int)g, "reading the body: %s", lode_strerror((int)g));
        if ((rc = sink->commit(sink->data, off, (size_t)g)) != 0)
            return cmn_err_set(err, rc, "response body: %s", lode_strerror(rc));
        off += (uint64_t)g;
        *got = off;
    }
    return 0;
}

static int body_chunked(struct lc_http_conn *c, const struct lc_http_sink *sink, uint64_t limit,
                        uint64_t *got, uint32_t timeout_ms, struct cmn_err *err)
{
    c->sink = sink;
    c->body_got = 0;
    c->body_limit = limit;
    c->body_rc = 0;
    while (!c->message_done) {
        if (c->rpos == c->rlen) {
            c->rpos = c->rlen = 0;
            ssize_t g = recv_some(c, c->rbuf, sizeof(c->rbuf), timeout_ms);
            if (g == 0)
                return cmn_err_set(err, LODE_ECLOSED, "the server closed a chunked body early");
            if (g < 0)
                return cmn_err_set(err, (int)g, "reading the body: %s", lode_strerror((int)g));
            c->rlen = (size_t)g;
        }
        const char *b = (const char *)c->rbuf + c->rpos, *e = (const char *)c->rbuf + c->rlen;
        llhttp_errno_t x = llhttp_execute(&c->parser, b, (size_t)(e - b));
        *got = c->body_got;
        if (x == HPE_PAUSED) {
            c->rpos = (size_t)((const uint8_t *)llhttp_get_error_pos(&c->parser) - c->rbuf);
            llhttp_resume(&c->parser);
        } else if (x == HPE_OK) {
            c->rpos = c->rlen;
        } else {
            int rc = c->body_rc ? c->body_rc : LODE_EBADMSG;
            if (rc == LODE_ETOOLARGE)
                return cmn_err_set(err, rc, "response body over %llu bytes",
                                   (unsigned long long)limit);
            return cmn_err_set(err, rc, "malformed chunked body: %s",
                               c->body_rc ? lode_strerror(rc)
                                          : llhttp_get_error_reason(&c->parser));
        }
    }
    return 0;
}

int lc_http_read_body(struct lc_http_conn *c, const struct lc_http_resp *r,
                      const struct lc_http_sink *sink, uint64_t limit, uint64_t *got,
                      uint32_t timeout_ms, struct cmn_err *err)
{
    int rc;
    *got = 0;
    c->reusable = false;
    if (r->no_body) {
        rc = 0;
    } else if (r->chunked) {
        rc = body_chunked(c, sink, limit, got, timeout_ms, err);
    } else if (r->content_length == LC_HTTP_NO_LENGTH) {
        rc = body_raw(c, sink, 0, true, limit, got, timeout_ms, err);
        return rc; /* the connection ended with the body */
    } else {
        if (r->content_length > limit)
            return cmn_err_set(err, LODE_ETOOLARGE, "response body of %llu bytes, over %llu",
                               (unsigned long long)r->content_length,
                               (unsigned long long)limit);
        rc = body_raw(c, sink, r->content_length, false, limit, got, timeout_ms, err);
    }
    /* Reusable only when nothing is left over: lode never pipelines. */
    c->reusable = rc == 0 && !r->close && c->rpos == c->rlen && !c->cut;
    return rc;
}

int lc_http_read_body_prefix(struct lc_http_conn *c, const struct lc_http_resp *r,
                             const struct lc_http_sink *sink, uint64_t want,
                             uint32_t timeout_ms, struct cmn_err *err)
{
    c->reusable = false;
    if (r->chunked || r->content_length == LC_HTTP_NO_LENGTH || want > r->content_length)
        return cmn_err_set(err, -EINVAL, "a body prefix needs a Content-Length body");
    uint64_t got;
    return body_raw(c, sink, want, false, want, &got, timeout_ms, err);
}

static void *mem_space(void *data, uint64_t off, size_t *n, int *rc)
{
    struct lc_http_mem *m = data;
    if (off >= m->cap) {
        *rc = LODE_ETOOLARGE;
        return NULL;
    }
    if (*n > m->cap - off)
        *n = (size_t)(m->cap - off);
    return m->dst + off;
}

static int mem_commit(void *data, uint64_t off, size_t n)
{
    return 0;
}

void lc_http_sink_mem(struct lc_http_sink *s, struct lc_http_mem *m)
{
    s->space = mem_space;
    s->commit = mem_commit;
    s->data = m;
}
