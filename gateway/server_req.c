/* The gateway's HTTP requests as the handler sees them (the gw_req_* API of
 * gateway/server.h) and the write path under them. Connections are in
 * gateway/server_conn.c.
 *
 * Writes go to uv_write without copying the handler's bytes; each carries its own small
 * header (the chunk-size line when the response is chunked), and the connection counts the
 * bytes queued, which drives the write-stall timer and the start of pipelined requests.
 *
 * Pipe writes (gw_req_write_pipe) move bytes from a pipe into the socket with splice(2):
 * page references, no copy through user space. libuv knows nothing of them, so the
 * connection keeps its own queue (sq) from the first pipe write on: every later write waits
 * there, a pipe write starts once libuv's writes before it are complete, and memory writes
 * behind it go to uv_write once it is out. Waiting for the socket to take more uses a
 * uv_poll on a dup() of the socket (libuv allows one watcher per descriptor number).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/buf.h"
#include "gateway/server_int.h"

/* ---- writes ---- */

struct wreq {
    uv_write_t req;
    struct conn *c;
    struct wreq *qnext;            /* in c's held queue */
    int pipe_fd;                   /* a pipe write: its read end; else -1 */
    size_t left;                   /* a pipe write: bytes still to move */
    size_t len;
    gw_req_write_cb cb;
    void *arg;
    char chunk[GW_HTTP_CHUNK_HEADER_SIZE];
    unsigned nbufs;
    uv_buf_t bufs[];               /* then, for internal writes, the bytes themselves */
};

static void sq_run(struct conn *c);

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    c->write_queued -= w->len;
    c->writes_pending--;
    if (status == 0) {
        srv_stat_add(&c->w->st.bytes_out, w->len);
        srv_count(c->w->s->m_out, w->len);
        c->t_write = srv_now_ms(c);
    }
    gw_req_write_cb cb = w->cb;
    void *arg = w->arg;
    free(w);
    if (cb)
        cb(arg, status == 0 ? 0 : c->closing ? LODE_ECLOSED : status);
    /* c stays valid here: its close callback runs only after every write callback. */
    if (c->closing)
        return;
    if (status < 0) {
        srv_conn_close(c, LODE_ECLOSED);
        return;
    }
    if (c->writes_pending == 0 && c->sq_head) {
        sq_run(c);
        return;
    }
    if (!c->req.active && c->write_queued <= PIPELINE_MARK)
        srv_conn_kick(c);
    srv_conn_arm_timer(c);
}

static void account(struct conn *c, size_t len)
{
    if (c->write_queued == 0)
        c->t_write = srv_now_ms(c);
    c->write_queued += len;
    srv_stat_max(&c->w->st.max_write, c->write_queued);
    srv_conn_arm_timer(c);
}

static void sq_append(struct conn *c, struct wreq *w)
{
    w->qnext = NULL;
    if (c->sq_tail)
        c->sq_tail->qnext = w;
    else
        c->sq_head = w;
    c->sq_tail = w;
}

static struct wreq *sq_pop(struct conn *c)
{
    struct wreq *w = c->sq_head;
    c->sq_head = w->qnext;
    if (!c->sq_head)
        c->sq_tail = NULL;
    w->qnext = NULL;
    return w;
}

static int submit(struct conn *c, struct wreq *w, size_t len)
{
    w->c = c;
    w->len = len;
    w->pipe_fd = -1;
    if (c->sq_head) {
        sq_append(c, w); /* behind a pipe write */
        account(c, len);
        return 0;
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->nbufs, on_write);
    if (rc) {
        free(w);
        return rc;
    }
    c->writes_pending++;
    account(c, len);
    return 0;
}

/* ---- pipe writes ---- */

static void on_wpoll(uv_poll_t *h, int status, int events)
{
    struct conn *c = h->data;
    (void)events;
    if (c->closing)
        return;
    if (status < 0) {
        srv_conn_close(c, LODE_ECLOSED);
        return;
    }
    sq_run(c);
}

static void on_wpoll_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    close(c->wpoll_fd);
    free(h);
    c->wpoll = NULL;
    if (--c->open_handles == 0)
        srv_conn_maybe_free(c);
}

/* Starts waiting for the socket to take bytes; the poll fires at once when it can. */
static int wpoll_start(struct conn *c)
{
    if (!c->wpoll) {
        int fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
            return -EBADF;
        int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dfd < 0)
            return -errno;
        uv_poll_t *p = malloc(sizeof(*p));
        int rc = p ? uv_poll_init(&c->w->loop, p, dfd) : -ENOMEM;
        if (rc) {
            free(p);
            close(dfd);
            return rc;
        }
        p->data = c;
        c->wpoll = p;
        c->wpoll_fd = dfd;
        c->open_handles++;
    }
    return uv_poll_start(c->wpoll, UV_WRITABLE, on_wpoll);
}

static void wpoll_stop(struct conn *c)
{
    if (c->wpoll)
        uv_poll_stop(c->wpoll);
}

void srv_sq_close(struct conn *c)
{
    if (c->wpoll && !uv_is_closing((uv_handle_t *)c->wpoll))
        uv_close((uv_handle_t *)c->wpoll, on_wpoll_closed);
}

void srv_sq_fail(struct conn *c)
{
    while (c->sq_head) {
        struct wreq *w = sq_pop(c);
        c->write_queued -= w->pipe_fd >= 0 ? w->left : w->len;
        if (w->cb)
            w->cb(w->arg, LODE_ECLOSED);
        free(w);
    }
}

/* Moves the held queue along: memory writes to uv_write, pipe writes into the socket. Runs
 * from libuv callbacks only (on_write, the poll), so handler callbacks may run here. */
static void sq_run(struct conn *c)
{
    while (c->sq_head && !c->closing) {
        struct wreq *w = c->sq_head;
        if (w->pipe_fd < 0) {
            sq_pop(c);
            if (uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->nbufs, on_write) != 0) {
                c->write_queued -= w->len;
                if (w->cb)
                    w->cb(w->arg, LODE_ECLOSED);
                free(w);
                srv_conn_close(c, LODE_ECLOSED);
                return;
            }
            c->writes_pending++;
            continue;
        }
        if (c->writes_pending) {
            wpoll_stop(c); /* on_write resumes once libuv's writes before it are out */
            return;
        }
        int fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) {
            srv_conn_close(c, LODE_ECLOSED);
            return;
        }
        while (w->left > 0) {
            unsigned fl = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (w->qnext ? SPLICE_F_MORE : 0);
            ssize_t n = splice(w->pipe_fd, NULL, fd, NULL, w->left, fl);
            if (n > 0) {
                w->left -= (size_t)n;
                c->write_queued -= (size_t)n;
                srv_stat_add(&c->w->st.bytes_out, (uint64_t)n);
                srv_count(c->w->s->m_out, (uint64_t)n);
                c->t_write = srv_now_ms(c);
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            int avail = 0;
            if (n < 0 && errno == EAGAIN && ioctl(w->pipe_fd, FIONREAD, &avail) == 0 &&
                avail == 0) {
                /* The pipe is empty, not the socket full: waiting for POLLOUT would spin.
                 * The handler promised bytes it does not have; the response is broken. */
                srv_conn_close(c, LODE_ECLOSED);
                return;
            }
            if (n < 0 && errno == EAGAIN) {
                if (wpoll_start(c) != 0)
                    srv_conn_close(c, LODE_ECLOSED);
                else
                    srv_conn_arm_timer(c);
                return;
            }
            /* The client is gone (EPIPE, ECONNRESET), or the pipe ran dry (n == 0): the
             * handler promised bytes it does not have. Either way the response is broken. */
            srv_conn_close(c, LODE_ECLOSED);
            return;
        }
        sq_pop(c);
        if (w->cb)
            w->cb(w->arg, 0);
        free(w);
    }
    if (c->closing)
        return;
    wpoll_stop(c);
    if (c->shutdown_wanted) {
        /* Nothing is held any more; uv_shutdown itself waits for libuv's queued writes. */
        srv_conn_shutdown(c);
        if (c->closing)
            return;
    }
    if (!c->req.active && c->write_queued <= PIPELINE_MARK)
        srv_conn_kick(c);
    srv_conn_arm_timer(c);
}

/* Writes a copy of data. A failure here breaks the connection's framing: it is closed on
 * the next turn (not now: we may be inside a gw_req_* call). */
int srv_write_copy(struct conn *c, const void *data, size_t len)
{
    struct wreq *w = malloc(sizeof(*w) + sizeof(uv_buf_t) + len);
    int rc = -ENOMEM;
    if (w) {
        memset(w, 0, sizeof(*w));
        uint8_t *p = (uint8_t *)(w->bufs + 1);
        memcpy(p, data, len);
        w->bufs[0] = uv_buf_init((char *)p, (unsigned)len);
        w->nbufs = 1;
        rc = submit(c, w, len);
    }
    if (rc) {
        c->fatal = true;
        srv_conn_kick(c);
    }
    return rc;
}

/* ---- the request API ---- */

const struct gw_http_request *gw_req_head(const struct gw_req *req)
{
    return req->head;
}

const char *gw_req_id(const struct gw_req *req)
{
    return req->id;
}

const char *gw_req_peer(const struct gw_req *req)
{
    return req->c->peer;
}

uv_loop_t *gw_req_loop(const struct gw_req *req)
{
    return &req->c->w->loop;
}

unsigned gw_req_worker(const struct gw_req *req)
{
    return req->c->w->idx;
}

void *gw_req_worker_data(const struct gw_req *req)
{
    return req->c->w->wdata;
}

void gw_req_set_data(struct gw_req *req, void *data)
{
    req->data = data;
}

void *gw_req_data(const struct gw_req *req)
{
    return req->data;
}

size_t gw_req_write_queued(const struct gw_req *req)
{
    return req->c->write_queued;
}

static bool gone(const struct gw_req *r)
{
    return r->cancelled || r->c->closing;
}

int gw_req_body_resume(struct gw_req *r)
{
    struct conn *c = r->c;
    if (gone(r))
        return LODE_ECLOSED;
    if (!r->active || r->bad || r->body_ended)
        return -EINVAL;
    if (!r->continue_sent && r->head->expect_continue && !r->head_sent && !r->parse_done) {
        r->continue_sent = true;
        int rc = srv_write_copy(c, GW_HTTP_CONTINUE, sizeof(GW_HTTP_CONTINUE) - 1);
        if (rc)
            return rc;
    }
    if (!r->body_wanted || r->body_paused)
        c->t_body = srv_now_ms(c); /* the client is not late for what we did not ask */
    r->body_wanted = true;
    r->body_paused = false;
    srv_conn_kick(c);
    return 0;
}

int gw_req_respond_head(struct gw_req *r, int status, const struct gw_header *headers,
                        size_t n_headers, int64_t content_length)
{
    struct conn *c = r->c;
    if (gone(r))
        return LODE_ECLOSED;
    if (!r->active || r->head_sent || status < 200)
        return -EINVAL;
    bool close = r->close_after || c->stopping || r->bad || !r->head || !r->head->keep_alive ||
                 !r->parse_done;
    struct gw_http_response resp = {
        .status = status,
        .headers = headers,
        .n_headers = n_headers,
        .content_length = content_length,
        .head_request = r->head_method,
        .close = close,
        .request_minor = r->head ? r->head->http_minor : 1,
        .date_s = (int64_t)time(NULL),
    };
    struct cmn_buf b;
    cmn_buf_init(&b);
    enum gw_http_framing fr;
    int rc = gw_http_format_head(&resp, &b, &fr);
    if (rc == 0)
        rc = srv_write_copy(c, b.data, b.len);
    cmn_buf_free(&b);
    if (rc)
        return rc;
    r->head_sent = true;
    r->framing = fr;
    r->declared = fr == GW_HTTP_FRAME_LENGTH ? (uint64_t)content_length : 0;
    r->close_after = close || fr == GW_HTTP_FRAME_CLOSE;
    return 0;
}

int gw_req_write(struct gw_req *r, const uv_buf_t *bufs, unsigned nbufs, gw_req_write_cb cb,
                 void *arg)
{
    struct conn *c = r->c;
    if (gone(r))
        return LODE_ECLOSED;
    if (!r->active || !r->head_sent || nbufs == 0)
        return -EINVAL;
    uint64_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total == 0 || r->framing == GW_HTTP_FRAME_NONE)
        return -EINVAL;
    if (r->framing == GW_HTTP_FRAME_LENGTH && total > r->declared - r->written)
        return -EINVAL;
    bool chunked = r->framing == GW_HTTP_FRAME_CHUNKED;
    unsigned n = nbufs + (chunked ? 2 : 0);
    struct wreq *w = calloc(1, sizeof(*w) + n * sizeof(uv_buf_t));
    if (!w)
        return -ENOMEM;
    w->cb = cb;
    w->arg = arg;
    w->nbufs = n;
    size_t wire = (size_t)total;
    unsigned k = 0;
    if (chunked) {
        size_t hl = gw_http_chunk_header(total, w->chunk);
        w->bufs[k++] = uv_buf_init(w->chunk, (unsigned)hl);
        wire += hl + 2;
    }
    for (unsigned i = 0; i < nbufs; i++)
        w->bufs[k++] = bufs[i];
    if (chunked)
        w->bufs[k++] = uv_buf_init((char *)"\r\n", 2);
    int rc = submit(c, w, wire);
    if (rc)
        return rc;
    r->written += total;
    return 0;
}

int gw_req_write_pipe(struct gw_req *r, int fd, size_t len, gw_req_write_cb cb, void *arg)
{
    struct conn *c = r->c;
    if (gone(r))
        return LODE_ECLOSED;
    if (!r->active || !r->head_sent || fd < 0 || len == 0)
        return -EINVAL;
    if (r->framing != GW_HTTP_FRAME_LENGTH || len > r->declared - r->written)
        return -EINVAL;
    struct wreq *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->c = c;
    w->cb = cb;
    w->arg = arg;
    w->pipe_fd = fd;
    w->left = len;
    w->len = len;
    int rc = wpoll_start(c); /* sq_run from the poll, on a later loop turn */
    if (rc) {
        free(w);
        return rc;
    }
    sq_append(c, w);
    account(c, len);
    r->written += len;
    return 0;
}

int gw_req_finish(struct gw_req *r)
{
    struct conn *c = r->c;
    if (!r->active)
        return -EINVAL;
    if (gone(r)) {
        r->active = false;
        srv_conn_maybe_free(c);
        return 0;
    }
    if (!r->head_sent)
        return -EINVAL;
    if (r->framing == GW_HTTP_FRAME_CHUNKED &&
        srv_write_copy(c, GW_HTTP_LAST_CHUNK, sizeof(GW_HTTP_LAST_CHUNK) - 1) != 0)
        r->close_after = true;
    bool truncated = r->framing == GW_HTTP_FRAME_LENGTH && r->written < r->declared;
    r->active = false;
    if (truncated || r->close_after || !r->parse_done || c->stopping) {
        /* Truncated: what was written still goes out, then the close tells the client. */
        srv_conn_linger(c);
        return 0;
    }
    gw_http_next(c->parser);
    c->t_idle = srv_now_ms(c);
    srv_conn_kick(c);
    return 0;
}

void gw_req_abort(struct gw_req *r)
{
    struct conn *c = r->c;
    if (!r->active)
        return;
    r->active = false;
    if (!c->closing)
        srv_conn_close(c, 0);
    else
        srv_conn_maybe_free(c);
}

int gw_req_respond(struct gw_req *r, int status, const struct gw_header *headers,
                   size_t n_headers, const void *body, size_t len)
{
    int rc = gw_req_respond_head(r, status, headers, n_headers, (int64_t)len);
    if (rc)
        return rc;
    if (len && !r->head_method) {
        rc = srv_write_copy(r->c, body, len);
        if (rc == 0)
            r->written = len;
    }
    return gw_req_finish(r);
}
