#include "common/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"

/* ---- registry ---- */

enum metric_type { M_COUNTER, M_GAUGE, M_HISTOGRAM };

struct cmn_counter {
    atomic_uint_fast64_t v;
};

/* Doubles live in atomic 64-bit words (their bit pattern) so updates need no lock. */
struct cmn_gauge {
    atomic_uint_fast64_t bits;
};

struct cmn_histogram {
    double *bounds;               /* ascending; the +Inf bucket is implicit */
    unsigned n_bounds;
    atomic_uint_fast64_t *counts; /* n_bounds + 1, per bucket (not cumulative) */
    atomic_uint_fast64_t sum_bits;
};

struct series {
    char *labels; /* NULL or "k=\"v\",..." */
    union {
        struct cmn_counter counter;
        struct cmn_gauge gauge;
        struct cmn_histogram hist;
    } u;
};

/* A metric name with its HELP and TYPE, and one series per label set. */
struct family {
    char *name;
    char *help;
    enum metric_type type;
    struct series **series;
    size_t n_series;
};

struct cmn_metrics {
    struct family **fams; /* registration order, which is the render order */
    size_t n_fams;
};

static const double default_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                        1,      2.5,     5,      10};

static uint64_t dbl_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bits_dbl(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

int cmn_metrics_create(struct cmn_metrics **out)
{
    struct cmn_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    *out = m;
    return 0;
}

static void series_free(struct series *s, enum metric_type type)
{
    if (!s)
        return;
    if (type == M_HISTOGRAM) {
        free(s->u.hist.bounds);
        free(s->u.hist.counts);
    }
    free(s->labels);
    free(s);
}

static void family_free(struct family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_series; i++)
        series_free(f->series[i], f->type);
    free(f->series);
    free(f->name);
    free(f->help);
    free(f);
}

void cmn_metrics_destroy(struct cmn_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_fams; i++)
        family_free(m->fams[i]);
    free(m->fams);
    free(m);
}

static bool same_labels(const char *a, const char *b)
{
    if (!a || !*a)
        return !b || !*b;
    return b && strcmp(a, b) == 0;
}

/* Finds or creates the family `name`; NULL when it exists with another type (a programming
 * error: one name, one type) or on allocation failure. */
static struct family *family_get(struct cmn_metrics *m, const char *name, const char *help,
                                 enum metric_type type)
{
    for (size_t i = 0; i < m->n_fams; i++) {
        if (strcmp(m->fams[i]->name, name) == 0)
            return m->fams[i]->type == type ? m->fams[i] : NULL;
    }
    struct family **fams = realloc(m->fams, (m->n_fams + 1) * sizeof(*fams));
    if (!fams)
        return NULL;
    m->fams = fams;
    struct family *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (!f->name || !f->help) {
        family_free(f);
        return NULL;
    }
    m->fams[m->n_fams++] = f;
    return f;
}

static struct series *series_get(struct cmn_metrics *m, const char *name, const char *labels,
                                 const char *help, enum metric_type type, bool *created)
{
    *created = false;
    if (!m || !name)
        return NULL;
    struct family *f = family_get(m, name, help, type);
    if (!f)
        return NULL;
    for (size_t i = 0; i < f->n_series; i++)
        if (same_labels(f->series[i]->labels, labels))
            return f->series[i];
    struct series **arr = realloc(f->series, (f->n_series + 1) * sizeof(*arr));
    if (!arr)
        return NULL;
    f->series = arr;
    struct series *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (labels && *labels && !(s->labels = strdup(labels))) {
        free(s);
        return NULL;
    }
    f->series[f->n_series++] = s;
    *created = true;
    return s;
}

struct cmn_counter *cmn_metrics_counter(struct cmn_metrics *m, const char *name,
                                        const char *labels, const char *help)
{
    bool created;
    struct series *s = series_get(m, name, labels, help, M_COUNTER, &created);
    if (!s)
        return NULL;
    if (created)
        atomic_init(&s->u.counter.v, 0);
    return &s->u.counter;
}

struct cmn_gauge *cmn_metrics_gauge(struct cmn_metrics *m, const char *name, const char *labels,
                                    const char *help)
{
    bool created;
    struct series *s = series_get(m, name, labels, help, M_GAUGE, &created);
    if (!s)
        return NULL;
    if (created)
        atomic_init(&s->u.gauge.bits, dbl_bits(0.0));
    return &s->u.gauge;
}

struct cmn_histogram *cmn_metrics_histogram(struct cmn_metrics *m, const char *name,
                                            const char *labels, const char *help,
                                            const double *bounds, unsigned n_bounds)
{
    bool created;
    struct series *s = series_get(m, name, labels, help, M_HISTOGRAM, &created);
    if (!s)
        return NULL;
    if (!created)
        return &s->u.hist;
    struct cmn_histogram *h = &s->u.hist;
    if (!bounds || n_bounds == 0) {
        bounds = default_bounds;
        n_bounds = sizeof(default_bounds) / sizeof(default_bounds[0]);
    }
    h->bounds = malloc(n_bounds * sizeof(*h->bounds));
    h->counts = malloc((n_bounds + 1) * sizeof(*h->counts));
    if (!h->bounds || !h->counts) {
        /* Leave the series in place but unusable rather than half-registered. */
        free(h->bounds);
        free(h->counts);
        h->bounds = NULL;
        h->counts = NULL;
        return NULL;
    }
    memcpy(h->bounds, bounds, n_bounds * sizeof(*h->bounds));
    h->n_bounds = n_bounds;
    for (unsigned i = 0; i <= n_bounds; i++)
        atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum_bits, dbl_bits(0.0));
    return h;
}

void cmn_counter_add(struct cmn_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t cmn_counter_value(const struct cmn_counter *c)
{
    return c ? atomic_load_explicit(&((struct cmn_counter *)c)->v, memory_order_relaxed) : 0;
}

void cmn_gauge_set(struct cmn_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, dbl_bits(v), memory_order_relaxed);
}

static void atomic_add_double(atomic_uint_fast64_t *bits, double delta)
{
    uint_fast64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, dbl_bits(bits_dbl(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void cmn_gauge_add(struct cmn_gauge *g, double delta)
{
    if (g)
        atomic_add_double(&g->bits, delta);
}

double cmn_gauge_value(const struct cmn_gauge *g)
{
    if (!g)
        return 0;
    return bits_dbl(atomic_load_explicit(&((struct cmn_gauge *)g)->bits, memory_order_relaxed));
}

void cmn_histogram_observe(struct cmn_histogram *h, double v)
{
    if (!h || !h->counts)
        return;
    /* Bucket i counts values <= bounds[i] (and > bounds[i-1]); a NaN lands in +Inf. */
    unsigned i = 0;
    while (i < h->n_bounds && !(v <= h->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

/* ---- text format ---- */

/* Shortest text that reads back as the same double, formatted the way the Go client
 * (strconv 'g', -1) does, since that is what scrapers and people are used to: "0.25",
 * "10", "1e-05", "1e+06", "+Inf". */
static void format_double(double v, char *out, size_t size)
{
    if (isnan(v)) {
        snprintf(out, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char e[40];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    snprintf(e, sizeof(e), "%.*e", prec - 1, v);
    const char *ep = strchr(e, 'e');
    int exp = ep ? atoi(ep + 1) : 0;
    if (exp < -4 || exp >= 6) {
        snprintf(out, size, "%s", e);
        return;
    }
    int decimals = prec - 1 - exp;
    snprintf(out, size, "%.*f", decimals > 0 ? decimals : 0, v);
}

static int put_help(struct cmn_buf *out, const char *help)
{
    int rc = 0;
    for (const char *p = help; *p && rc == 0; p++) {
        if (*p == '\\')
            rc = cmn_buf_append(out, "\\\\", 2);
        else if (*p == '\n')
            rc = cmn_buf_append(out, "\\n", 2);
        else
            rc = cmn_buf_append(out, p, 1);
    }
    return rc;
}

/* "{labels}" or "{labels,extra}" or "{extra}" or "". */
static int put_labels(struct cmn_buf *out, const char *labels, const char *extra)
{
    bool has = labels && *labels;
    if (!has && !extra)
        return 0;
    return cmn_buf_printf(out, "{%s%s%s}", has ? labels : "", has && extra ? "," : "",
                          extra ? extra : "");
}

static int render_series(struct cmn_buf *out, const struct family *f, struct series *s)
{
    int rc = 0;
    char num[40];
    switch (f->type) {
    case M_COUNTER:
        rc = cmn_buf_printf(out, "%s", f->name);
        rc = rc ? rc : put_labels(out, s->labels, NULL);
        rc = rc ? rc : cmn_buf_printf(out, " %" PRIu64 "\n", cmn_counter_value(&s->u.counter));
        break;
    case M_GAUGE:
        format_double(cmn_gauge_value(&s->u.gauge), num, sizeof(num));
        rc = cmn_buf_printf(out, "%s", f->name);
        rc = rc ? rc : put_labels(out, s->labels, NULL);
        rc = rc ? rc : cmn_buf_printf(out, " %s\n", num);
        break;
    case M_HISTOGRAM: {
        struct cmn_histogram *h = &s->u.hist;
        if (!h->counts)
            break;
        /* _count is the sum of the buckets read here, so it always equals the +Inf bucket
         * even while other threads observe. */
        uint64_t cum = 0;
        char le[64];
        for (unsigned i = 0; i <= h->n_bounds && rc == 0; i++) {
            cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
            if (i < h->n_bounds)
                format_double(h->bounds[i], num, sizeof(num));
            else
                snprintf(num, sizeof(num), "+Inf");
            snprintf(le, sizeof(le), "le=\"%s\"", num);
            rc = cmn_buf_printf(out, "%s_bucket", f->name);
            rc = rc ? rc : put_labels(out, s->labels, le);
            rc = rc ? rc : cmn_buf_printf(out, " %" PRIu64 "\n", cum);
        }
        format_double(bits_dbl(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)), num,
                      sizeof(num));
        rc = rc ? rc : cmn_buf_printf(out, "%s_sum", f->name);
        rc = rc ? rc : put_labels(out, s->labels, NULL);
        rc = rc ? rc : cmn_buf_printf(out, " %s\n", num);
        rc = rc ? rc : cmn_buf_printf(out, "%s_count", f->name);
        rc = rc ? rc : put_labels(out, s->labels, NULL);
        rc = rc ? rc : cmn_buf_printf(out, " %" PRIu64 "\n", cum);
        break;
    }
    }
    return rc;
}

int cmn_metrics_render(struct cmn_metrics *m, struct cmn_buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    int rc = 0;
    for (size_t i = 0; i < m->n_fams && rc == 0; i++) {
        const struct family *f = m->fams[i];
        rc = cmn_buf_printf(out, "# HELP %s ", f->name);
        rc = rc ? rc : put_help(out, f->help);
        rc = rc ? rc : cmn_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (size_t j = 0; j < f->n_series && rc == 0; j++)
            rc = render_series(out, f, f->series[j]);
    }
    return rc;
}

/* ---- HTTP ---- */

#define HTTP_REQ_MAX 8192
#define HTTP_TIMEOUT_MS 10000
/* Scrapers open one connection at a time; more than this at once is a flood. */
#define HTTP_MAX_CONNS 64

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    struct cmn_metrics_http *srv;
    struct http_conn *prev, *next;
    struct cmn_buf resp;
    size_t len;
    int open_handles;   /* tcp + timer until both close callbacks ran */
    bool responded;     /* response queued; further input is discarded */
    bool written;       /* response fully handed to the kernel */
    bool peer_eof;      /* the client half-closed before our response went out */
    bool closing;
    char buf[HTTP_REQ_MAX];
};

struct cmn_metrics_http {
    uv_tcp_t listener;
    struct cmn_metrics *m;
    struct http_conn *conns;
    size_t n_conns;
    bool listener_open;
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
    int port;
};

static void http_maybe_finish(struct cmn_metrics_http *h)
{
    if (!h->closing || h->listener_open || h->conns)
        return;
    void (*cb)(void *) = h->close_cb;
    void *data = h->close_data;
    free(h);
    if (cb)
        cb(data);
}

static void conn_handle_closed(uv_handle_t *handle)
{
    struct http_conn *c = handle->data;
    if (--c->open_handles > 0)
        return;
    struct cmn_metrics_http *h = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->n_conns--;
    cmn_buf_free(&c->resp);
    free(c);
    http_maybe_finish(h);
}

static void conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_conn_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    /* The FIN is out (or failed); keep reading until the peer closes or the timer fires,
     * so unread input cannot turn our close into a reset that loses the response. */
    struct http_conn *c = req->data;
    if (status < 0 || c->peer_eof)
        conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    struct http_conn *c = req->data;
    c->written = true;
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static void respond(struct http_conn *c, int status, const char *reason, const char *extra_hdr,
                    const char *body, size_t body_len, bool head_only)
{
    c->responded = true;
    c->len = 0;
    int rc = cmn_buf_printf(&c->resp,
                            "HTTP/1.1 %d %s\r\n"
                            "Content-Type: %s\r\n"
                            "Content-Length: %zu\r\n"
                            "%s"
                            "Connection: close\r\n\r\n",
                            status, reason,
                            status == 200 ? "text/plain; version=0.0.4; charset=utf-8"
                                          : "text/plain; charset=utf-8",
                            body_len, extra_hdr ? extra_hdr : "");
    if (rc == 0 && !head_only)
        rc = cmn_buf_append(&c->resp, body, body_len);
    if (rc) {
        conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->resp.data, (unsigned)c->resp.len);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        conn_close(c);
}

static void respond_error(struct http_conn *c, int status, const char *reason, const char *hdr)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, reason);
    respond(c, status, reason, hdr, body, (size_t)n, false);
}

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Validates "METHOD SP TARGET SP HTTP/1.x" (without the line end). On success, *method and
 * *target point into line with their lengths. */
static bool parse_request_line(const char *line, size_t len, const char **method,
                               size_t *mlen, const char **target, size_t *tlen)
{
    size_t i = 0;
    while (i < len && is_tchar(line[i]))
        i++;
    if (i == 0 || i >= len || line[i] != ' ')
        return false;
    *method = line;
    *mlen = i;
    size_t t0 = ++i;
    while (i < len && line[i] > ' ' && line[i] < 0x7f)
        i++;
    if (i == t0 || i >= len || line[i] != ' ' || line[t0] != '/')
        return false;
    *target = line + t0;
    *tlen = i - t0;
    i++;
    return len - i == 8 && (memcmp(line + i, "HTTP/1.1", 8) == 0 ||
                            memcmp(line + i, "HTTP/1.0", 8) == 0);
}

/* Each header line must be "name: value" with a token name and no control bytes. */
static bool headers_valid(const char *p, const char *end)
{
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            return false;
        size_t len = (size_t)(eol - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        size_t i = 0;
        while (i < len && is_tchar(p[i]))
            i++;
        if (i == 0 || i >= len || p[i] != ':')
            return false;
        for (; i < len; i++)
            if ((unsigned char)p[i] < 0x20 && p[i] != '\t')
                return false;
        p = eol + 1;
    }
    return true;
}

static void handle_request(struct http_conn *c, size_t head_len)
{
    const char *line_end = memchr(c->buf, '\n', head_len);
    size_t llen = (size_t)(line_end - c->buf);
    if (llen > 0 && c->buf[llen - 1] == '\r')
        llen--;
    const char *method, *target;
    size_t mlen, tlen;
    if (!parse_request_line(c->buf, llen, &method, &mlen, &target, &tlen)) {
        respond_error(c, 400, "Bad Request", NULL);
        return;
    }
    /* The header block ends with an empty line; validate everything before it. */
    const char *hdr_end = c->buf + head_len;
    hdr_end -= (hdr_end - 2 >= c->buf && hdr_end[-2] == '\r') ? 2 : 1;
    if (!headers_valid(line_end + 1, hdr_end)) {
        respond_error(c, 400, "Bad Request", NULL);
        return;
    }
    size_t path_len = strcspn(target, "? ");
    if (path_len > tlen)
        path_len = tlen;
    if (path_len != 8 || memcmp(target, "/metrics", 8) != 0) {
        respond_error(c, 404, "Not Found", NULL);
        return;
    }
    bool head = mlen == 4 && memcmp(method, "HEAD", 4) == 0;
    if (!head && !(mlen == 3 && memcmp(method, "GET", 3) == 0)) {
        respond_error(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
        return;
    }
    struct cmn_buf body = {0};
    if (cmn_metrics_render(c->srv->m, &body)) {
        cmn_buf_free(&body);
        respond_error(c, 500, "Internal Server Error", NULL);
        return;
    }
    respond(c, 200, "OK", NULL, (const char *)body.data, body.len, head);
    cmn_buf_free(&body);
}

/* Returns the length of the head through its terminating empty line, or 0 if incomplete. */
static size_t head_length(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = handle->data;
    if (c->responded)
        c->len = 0; /* input after the request is read and dropped */
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = stream->data;
    if (nread < 0) {
        /* A client may send its request and half-close at once; its response is still
         * owed, so only an EOF after the write (or before any request) closes now. */
        if (nread == UV_EOF && c->responded && !c->written) {
            c->peer_eof = true;
            uv_read_stop(stream);
            return;
        }
        conn_close(c);
        return;
    }
    if (c->responded || c->closing || nread == 0)
        return;
    size_t old = c->len;
    c->len += (size_t)nread;
    /* Bytes that cannot start a method (a TLS hello, binary noise) get their 400 at once
     * instead of waiting for a line end that may never come. */
    bool bad_method = false;
    for (size_t i = 0; i < c->len && c->buf[i] != ' ' && !bad_method; i++)
        bad_method = i >= 32 || !is_tchar(c->buf[i]);
    if (bad_method) {
        respond_error(c, 400, "Bad Request", NULL);
        return;
    }
    /* A complete first line that is not HTTP gets its 400 now, without waiting. */
    const char *nl = memchr(c->buf + old, '\n', c->len - old);
    if (nl && !memchr(c->buf, '\n', old)) {
        size_t llen = (size_t)(nl - c->buf);
        if (llen > 0 && c->buf[llen - 1] == '\r')
            llen--;
        const char *mth, *tgt;
        size_t ml, tl;
        if (!parse_request_line(c->buf, llen, &mth, &ml, &tgt, &tl)) {
            respond_error(c, 400, "Bad Request", NULL);
            return;
        }
    }
    size_t head = head_length(c->buf, c->len);
    if (head) {
        handle_request(c, head);
    } else if (c->len == sizeof(c->buf)) {
        respond_error(c, 431, "Request Header Fields Too Large", NULL);
    } else if (memchr(c->buf + old, '\0', (size_t)nread)) {
        respond_error(c, 400, "Bad Request", NULL);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct cmn_metrics_http *h = server->data;
    if (status < 0 || h->closing)
        return;
    struct http_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return; /* out of memory: the connection waits in the backlog */
    c->srv = h;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || h->n_conns > HTTP_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_conn_timeout, HTTP_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void listener_closed(uv_handle_t *handle)
{
    struct cmn_metrics_http *h = handle->data;
    h->listener_open = false;
    http_maybe_finish(h);
}

int cmn_metrics_http_start(struct cmn_metrics *m, uv_loop_t *loop, const char *addr,
                           struct cmn_metrics_http **out, struct cmn_err *err)
{
    char host[256];
    uint16_t port;
    if (cmn_addr_split(addr, host, sizeof(host), &port))
        return cmn_err_set(err, -EINVAL, "metrics address '%s': expected host:port",
                           addr ? addr : "");
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port_s[8];
    snprintf(port_s, sizeof(port_s), "%u", port);
    int gai = getaddrinfo(host, port_s, &hints, &res);
    if (gai != 0 || !res)
        return cmn_err_set(err, -EADDRNOTAVAIL, "metrics address '%s': %s", addr,
                           gai_strerror(gai));

    /* Bind and listen on a plain socket first: the common failures (address in use, no
     * such address) then leave nothing on the loop that would need a close callback. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -errno : 0;
    int one = 1;
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        rc = -errno;
    if (rc == 0 && bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        rc = -errno;
    if (rc == 0 && listen(fd, 128) < 0)
        rc = -errno;
    freeaddrinfo(res);
    if (rc) {
        if (fd >= 0)
            close(fd);
        return cmn_err_set(err, rc, "metrics: listen on %s: %s", addr, lode_strerror(rc));
    }

    struct cmn_metrics_http *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        return cmn_err_set(err, -ENOMEM, "metrics: out of memory");
    }
    h->m = m;
    rc = uv_tcp_init(loop, &h->listener);
    if (rc < 0) {
        close(fd);
        free(h);
        return cmn_err_set(err, rc, "metrics: %s", uv_strerror(rc));
    }
    h->listener.data = h;
    h->listener_open = true;
    rc = uv_tcp_open(&h->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->listener, 128, on_connection);
    else
        close(fd);
    if (rc < 0) {
        cmn_err_set(err, rc, "metrics: listen on %s: %s", addr, uv_strerror(rc));
        /* Freed by the close callback when the loop next runs; nobody else sees h. */
        h->closing = true;
        uv_close((uv_handle_t *)&h->listener, listener_closed);
        return rc;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len) == 0 &&
        ss.ss_family == AF_INET)
        h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = h;
    return 0;
}

int cmn_metrics_http_port(const struct cmn_metrics_http *h)
{
    return h ? h->port : -1;
}

void cmn_metrics_http_close(struct cmn_metrics_http *h, void (*cb)(void *data), void *data)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    h->close_cb = cb;
    h->close_data = data;
    uv_close((uv_handle_t *)&h->listener, listener_closed);
    for (struct http_conn *c = h->conns; c; c = c->next)
        conn_close(c);
}
