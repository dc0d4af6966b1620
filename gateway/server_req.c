/* The gateway's HTTP requests as the handler sees them (the gw_req_* API of
 * gateway/server.h) and the write path under them. Connections are in
 * gateway/server_conn.c.
 *
 * Writes go to uv_write without copying the handler's bytes; each carries its own small
 * header (the chunk-size line when the response is chunked), and the connection counts the
 * bytes queued, which drives the write-stall timer and the start of pipelined requests.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lode/errno.h>

#include "common/buf.h"
#include "gateway/server_int.h"

/* ---- writes ---- */

struct wreq {
    uv_write_t req;
    struct conn *c;
    size_t len;
    gw_req_write_cb cb;
    void *arg;
    char chunk[GW_HTTP_CHUNK_HEADER_SIZE];
    unsigned nbufs;
    uv_buf_t bufs[];               /* then, for internal writes, the bytes themselves */
};

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
    if (!c->req.active && c->write_queued <= PIPELINE_MARK)
        srv_conn_kick(c);
    srv_conn_arm_timer(c);
}

static int submit(struct conn *c, struct wreq *w, size_t len)
{
    w->c = c;
    w->len = len;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->nbufs, on_write);
    if (rc) {
        free(w);
        return rc;
    }
    if (c->write_queued == 0)
        c->t_write = srv_now_ms(c);
    c->write_queued += len;
    c->writes_pending++;
    srv_stat_max(&c->w->st.max_write, c->write_queued);
    srv_conn_arm_timer(c);
    return 0;
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
