/* HTTP/1.1 request parser over llhttp, and response-head formatting. See gateway/http.h.
 *
 * Every llhttp callback that produces an event returns HPE_PAUSED, so one llhttp_execute()
 * call yields at most one event and llhttp_get_error_pos() says exactly how many bytes it
 * consumed. That is what lets the caller stop after a body slice (backpressure) or after a
 * request (pipelining) and keep the rest of its buffer unparsed.
 *
 * While a head is being read, input is clamped to what is left of max_header_bytes, so the
 * head limit holds exactly whatever the split; the arena only ever holds bytes of the head,
 * so it cannot outgrow that limit either.
 */
#include "gateway/http.h"

#include <errno.h>
#include <llhttp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ARENA_MIN 1024u

/* Offsets rather than pointers while the head is read, because the arena may move when it
 * grows; pointers are made once, when the head is complete. */
struct hdr_off {
    size_t name_off, name_len;
    size_t val_off, val_len;
};

enum tok {
    TOK_NONE,
    TOK_FIELD,
    TOK_VALUE,
};

struct gw_http_parser {
    llhttp_t ll;
    struct gw_http_limits lim;
    enum gw_http_state state;
    char *arena;
    size_t alen, acap;
    struct hdr_off *offs;
    unsigned n_offs, cap_offs;
    struct gw_header *hdrs;        /* cap_offs entries, filled at HEAD */
    size_t method_off, method_len;
    size_t url_off, url_len;
    enum tok cur;
    size_t head_bytes;             /* consumed since the last request ended */
    unsigned n_trailers;
    size_t trailer_bytes;
    bool close_after;              /* upgrade or CONNECT: nothing may follow this request */
    bool have_req;                 /* req describes the current request */
    bool user_err;                 /* err was set by a callback (llhttp may report it as
                                      HPE_USER or as its own "callback error" code) */
    enum gw_http_event pending;    /* set by a callback before it pauses */
    const uint8_t *body_p;
    size_t body_n;
    struct gw_http_error err;
    char errmsg[192];
    struct gw_http_request req;
};

static const llhttp_settings_t *settings(void);

void gw_http_limits_default(struct gw_http_limits *lim)
{
    if (!lim->max_header_bytes)
        lim->max_header_bytes = GW_HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (!lim->max_request_line)
        lim->max_request_line = GW_HTTP_DEFAULT_MAX_REQUEST_LINE;
    if (!lim->max_headers)
        lim->max_headers = GW_HTTP_DEFAULT_MAX_HEADERS;
}

int gw_http_parser_create(const struct gw_http_limits *lim, struct gw_http_parser **out)
{
    struct gw_http_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    if (lim)
        p->lim = *lim;
    gw_http_limits_default(&p->lim);
    llhttp_init(&p->ll, HTTP_REQUEST, settings());
    p->ll.data = p;
    p->state = GW_HTTP_S_IDLE;
    *out = p;
    return 0;
}

void gw_http_parser_destroy(struct gw_http_parser *p)
{
    if (!p)
        return;
    free(p->arena);
    free(p->offs);
    free(p->hdrs);
    free(p);
}

enum gw_http_state gw_http_state(const struct gw_http_parser *p)
{
    return p->state;
}

const struct gw_http_request *gw_http_request(const struct gw_http_parser *p)
{
    return p->have_req ? &p->req : NULL;
}

const struct gw_http_error *gw_http_error(const struct gw_http_parser *p)
{
    return p->state == GW_HTTP_S_ERROR ? &p->err : NULL;
}

size_t gw_http_memory(const struct gw_http_parser *p)
{
    return p->acap + (size_t)p->cap_offs * (sizeof(struct hdr_off) + sizeof(struct gw_header));
}

__attribute__((format(printf, 3, 4))) static int fail(struct gw_http_parser *p,
                                                      enum gw_s3_error code, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
    va_end(ap);
    p->err.code = code;
    p->err.msg = p->errmsg;
    p->user_err = true;
    return HPE_USER;
}

static int arena_append(struct gw_http_parser *p, const char *at, size_t n)
{
    if (n > p->acap - p->alen) {
        size_t need = p->alen + n;
        if (need > p->lim.max_header_bytes)
            return fail(p, GW_S3_REQUEST_HEADER_TOO_LARGE,
                        "request header section larger than %zu bytes", p->lim.max_header_bytes);
        size_t cap = p->acap ? p->acap : ARENA_MIN;
        while (cap < need)
            cap *= 2;
        if (cap > p->lim.max_header_bytes)
            cap = p->lim.max_header_bytes;
        char *a = realloc(p->arena, cap);
        if (!a)
            return fail(p, GW_S3_INTERNAL_ERROR, "out of memory for the request head");
        p->arena = a;
        p->acap = cap;
    }
    memcpy(p->arena + p->alen, at, n);
    p->alen += n;
    return 0;
}

static struct gw_http_parser *from_ll(llhttp_t *ll)
{
    return ll->data;
}

static int on_message_begin(llhttp_t *ll)
{
    struct gw_http_parser *p = from_ll(ll);
    p->state = GW_HTTP_S_HEAD;
    return 0;
}

static int on_method(llhttp_t *ll, const char *at, size_t n)
{
    struct gw_http_parser *p = from_ll(ll);
    if (p->method_len == 0)
        p->method_off = p->alen;
    p->method_len += n;
    if (p->method_len + p->url_len > p->lim.max_request_line)
        return fail(p, GW_S3_REQUEST_HEADER_TOO_LARGE, "request line longer than %zu bytes",
                    p->lim.max_request_line);
    return arena_append(p, at, n);
}

static int on_url(llhttp_t *ll, const char *at, size_t n)
{
    struct gw_http_parser *p = from_ll(ll);
    if (p->url_len == 0)
        p->url_off = p->alen;
    p->url_len += n;
    if (p->method_len + p->url_len > p->lim.max_request_line)
        return fail(p, GW_S3_REQUEST_HEADER_TOO_LARGE, "request line longer than %zu bytes",
                    p->lim.max_request_line);
    return arena_append(p, at, n);
}

/* Trailers (after a chunked body) are only counted: the limits hold, nothing is kept. */
static int count_trailer(struct gw_http_parser *p, size_t n, bool new_field)
{
    if (new_field && ++p->n_trailers + p->n_offs > p->lim.max_headers)
        return fail(p, GW_S3_REQUEST_HEADER_TOO_LARGE, "more than %u header fields",
                    p->lim.max_headers);
    p->trailer_bytes += n;
    if (p->trailer_bytes > p->lim.max_header_bytes)
        return fail(p, GW_S3_REQUEST_HEADER_TOO_LARGE, "trailer section larger than %zu bytes",
                    p->lim.max_header_bytes);
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
    struct gw_http_parser *p = from_ll(ll);
    bool new_field = p->cur != TOK_FIELD;
    p->cur = TOK_FIELD;
    if (p->state != GW_HTTP_S_HEAD)
        return count_trailer(p, n, new_field);
    if (new_field) {
        if (p->n_offs >= p->lim.max_headers)
            return fail(p, GW_S3_REQUEST_HEADER_TOO_LARGE, "more than %u header fields",
                        p->lim.max_headers);
        if (p->n_offs == p->cap_offs) {
            unsigned cap = p->cap_offs ? p->cap_offs * 2 : 16;
            if (cap > p->lim.max_headers)
                cap = p->lim.max_headers;
            struct hdr_off *o = realloc(p->offs, cap * sizeof(*o));
            if (!o)
                return fail(p, GW_S3_INTERNAL_ERROR, "out of memory for the request head");
            p->offs = o;
            struct gw_header *h = realloc(p->hdrs, cap * sizeof(*h));
            if (!h)
                return fail(p, GW_S3_INTERNAL_ERROR, "out of memory for the request head");
            p->hdrs = h;
            p->cap_offs = cap;
        }
        p->offs[p->n_offs++] = (struct hdr_off){.name_off = p->alen};
    }
    p->offs[p->n_offs - 1].name_len += n;
    return arena_append(p, at, n);
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
    struct gw_http_parser *p = from_ll(ll);
    bool first = p->cur != TOK_VALUE;
    p->cur = TOK_VALUE;
    if (p->state != GW_HTTP_S_HEAD)
        return count_trailer(p, n, false);
    struct hdr_off *o = &p->offs[p->n_offs - 1];
    if (first)
        o->val_off = p->alen;
    o->val_len += n;
    return arena_append(p, at, n);
}

static int on_field_or_value_complete(llhttp_t *ll)
{
    from_ll(ll)->cur = TOK_NONE;
    return 0;
}

static struct gw_str trim(struct gw_str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

static bool starts_with_ci(struct gw_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n >= n && strncasecmp(s.p, lit, n) == 0;
}

/* RFC 9112 6.3: a request whose last transfer coding is not chunked has no determinable
 * length (400); one with other codings before chunked is merely unsupported (501). */
static bool ends_with_chunked(struct gw_str v)
{
    const char *comma = NULL;
    for (size_t i = 0; i < v.n; i++)
        if (v.p[i] == ',')
            comma = v.p + i;
    struct gw_str last = comma ? (struct gw_str){comma + 1, v.n - (size_t)(comma + 1 - v.p)} : v;
    return gw_str_ieq(trim(last), "chunked");
}

/* Origin-form ("/path?query") is what clients send; absolute-form ("http://host/path") is
 * what a proxy-style client sends and RFC 9112 says a server must accept: its path and query
 * are used. The asterisk form (OPTIONS *) and the authority form (CONNECT) pass through
 * with an empty query, for the router to refuse. */
static int split_target(struct gw_http_parser *p, struct gw_request_head *h)
{
    struct gw_str t = h->target, rest = t;
    if (t.n == 0)
        return fail(p, GW_S3_INVALID_URI, "empty request target");
    if (t.p[0] != '/') {
        size_t skip = starts_with_ci(t, "http://") ? 7 : starts_with_ci(t, "https://") ? 8 : 0;
        if (skip) {
            rest.p += skip;
            rest.n -= skip;
            size_t i = 0;
            while (i < rest.n && rest.p[i] != '/' && rest.p[i] != '?')
                i++;
            rest.p += i;
            rest.n -= i;
        } else {
            h->path = t;
            h->query = (struct gw_str){t.p + t.n, 0};
            return 0;
        }
    }
    const char *q = memchr(rest.p, '?', rest.n);
    size_t plen = q ? (size_t)(q - rest.p) : rest.n;
    h->path = plen ? (struct gw_str){rest.p, plen} : GW_STR("/");
    h->query = q ? (struct gw_str){q + 1, rest.n - plen - 1} : (struct gw_str){rest.p + rest.n, 0};
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    struct gw_http_parser *p = from_ll(ll);
    struct gw_http_request *r = &p->req;
    memset(r, 0, sizeof(*r));
    for (unsigned i = 0; i < p->n_offs; i++) {
        const struct hdr_off *o = &p->offs[i];
        p->hdrs[i].name = (struct gw_str){p->arena + o->name_off, o->name_len};
        p->hdrs[i].value = trim((struct gw_str){p->arena + o->val_off, o->val_len});
    }
    r->head.headers = p->hdrs;
    r->head.n_headers = p->n_offs;
    r->head.method = (struct gw_str){p->arena + p->method_off, p->method_len};
    r->head.target = (struct gw_str){p->arena + p->url_off, p->url_len};
    int rc = split_target(p, &r->head);
    if (rc)
        return rc;

    if (llhttp_get_http_major(ll) != 1)
        return fail(p, GW_S3_BAD_REQUEST, "HTTP version %u.%u is not supported",
                    llhttp_get_http_major(ll), llhttp_get_http_minor(ll));
    r->http_minor = llhttp_get_http_minor(ll) ? 1 : 0;

    unsigned n_host = 0, n_te = 0;
    const struct gw_header *te = NULL;
    for (size_t i = 0; i < r->head.n_headers; i++) {
        const struct gw_header *h = &r->head.headers[i];
        if (gw_str_ieq(h->name, "host"))
            n_host++;
        else if (gw_str_ieq(h->name, "transfer-encoding")) {
            n_te++;
            te = h;
        } else if (gw_str_ieq(h->name, "expect") && !r->expect_continue)
            r->expect_continue = r->http_minor >= 1 && gw_str_ieq(h->value, "100-continue");
    }
    if (n_host > 1)
        return fail(p, GW_S3_BAD_REQUEST, "more than one Host header");
    if (n_host == 0 && r->http_minor >= 1)
        return fail(p, GW_S3_BAD_REQUEST, "missing Host header");
    if (n_te && r->http_minor == 0)
        return fail(p, GW_S3_BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request");
    if (te && !ends_with_chunked(te->value))
        return fail(p, GW_S3_BAD_REQUEST, "request body length cannot be determined: "
                                          "Transfer-Encoding does not end with chunked");
    if (n_te > 1 || (te && !gw_str_ieq(te->value, "chunked")))
        return fail(p, GW_S3_NOT_IMPLEMENTED, "only Transfer-Encoding: chunked is supported");

    r->chunked = (ll->flags & F_CHUNKED) != 0;
    r->has_content_length = (ll->flags & F_CONTENT_LENGTH) != 0;
    r->content_length = r->has_content_length ? ll->content_length : 0;
    r->has_body = r->chunked || r->content_length > 0;
    p->close_after = llhttp_get_upgrade(ll) != 0;
    r->keep_alive = llhttp_should_keep_alive(ll) && !p->close_after;
    p->have_req = true;
    p->state = GW_HTTP_S_BODY;
    p->pending = GW_HTTP_EV_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    struct gw_http_parser *p = from_ll(ll);
    if (n == 0)
        return 0; /* llhttp closes an open span at the end of every execute, even empty */
    p->pending = GW_HTTP_EV_BODY;
    p->body_p = (const uint8_t *)at;
    p->body_n = n;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *ll)
{
    struct gw_http_parser *p = from_ll(ll);
    p->pending = GW_HTTP_EV_END;
    p->state = GW_HTTP_S_DONE;
    return HPE_PAUSED;
}

static llhttp_settings_t settings_;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void settings_init(void)
{
    llhttp_settings_init(&settings_);
    settings_.on_message_begin = on_message_begin;
    settings_.on_method = on_method;
    settings_.on_url = on_url;
    settings_.on_header_field = on_header_field;
    settings_.on_header_value = on_header_value;
    settings_.on_header_field_complete = on_field_or_value_complete;
    settings_.on_header_value_complete = on_field_or_value_complete;
    settings_.on_headers_complete = on_headers_complete;
    settings_.on_body = on_body;
    settings_.on_message_complete = on_message_complete;
}

static const llhttp_settings_t *settings(void)
{
    pthread_once(&settings_once, settings_init);
    return &settings_;
}

static void fail_from_llhttp(struct gw_http_parser *p, llhttp_errno_t e, bool in_body)
{
    if (p->user_err)
        return; /* our callback already said why */
    const char *why = llhttp_get_error_reason(&p->ll);
    if (!why)
        why = llhttp_errno_name(e);
    switch (e) {
    case HPE_PAUSED_H2_UPGRADE:
        fail(p, GW_S3_BAD_REQUEST, "HTTP/2 is not supported");
        break;
    case HPE_INVALID_URL:
        fail(p, GW_S3_INVALID_URI, "malformed request target: %s", why);
        break;
    default:
        fail(p, GW_S3_BAD_REQUEST, "malformed %s: %s", in_body ? "chunked body" : "request", why);
        break;
    }
}

size_t gw_http_feed(struct gw_http_parser *p, const void *data, size_t len, struct gw_http_ev *ev)
{
    ev->type = GW_HTTP_EV_NONE;
    ev->data = NULL;
    ev->len = 0;
    if (p->state == GW_HTTP_S_DONE || p->state == GW_HTTP_S_CLOSED ||
        p->state == GW_HTTP_S_ERROR)
        return 0;
    bool head_phase = p->state == GW_HTTP_S_IDLE || p->state == GW_HTTP_S_HEAD;
    if (len == 0 && head_phase)
        return 0;
    /* Even with no bytes, a request without a body ends now: llhttp reports it on the next
     * execute after the head. */
    const char *d = len ? data : "";
    size_t n = len;
    if (head_phase && n > p->lim.max_header_bytes - p->head_bytes)
        n = p->lim.max_header_bytes - p->head_bytes;

    p->pending = GW_HTTP_EV_NONE;
    llhttp_errno_t e = llhttp_execute(&p->ll, d, n);
    size_t used = n;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&p->ll) - d);
        if (e == HPE_PAUSED)
            llhttp_resume(&p->ll);
        else
            p->state = GW_HTTP_S_CLOSED;
    } else if (e != HPE_OK) {
        fail_from_llhttp(p, e, !head_phase);
        p->state = GW_HTTP_S_ERROR;
        ev->type = GW_HTTP_EV_ERROR;
        const char *pos = llhttp_get_error_pos(&p->ll);
        return pos && pos >= d && pos <= d + n ? (size_t)(pos - d) : n;
    }
    if (head_phase) {
        p->head_bytes += used;
        if (p->pending == GW_HTTP_EV_NONE && p->head_bytes >= p->lim.max_header_bytes) {
            fail(p, GW_S3_REQUEST_HEADER_TOO_LARGE,
                 "request header section larger than %zu bytes", p->lim.max_header_bytes);
            p->state = GW_HTTP_S_ERROR;
            ev->type = GW_HTTP_EV_ERROR;
            return used;
        }
    }
    ev->type = p->pending;
    if (p->pending == GW_HTTP_EV_BODY) {
        ev->data = p->body_p;
        ev->len = p->body_n;
    }
    return used;
}

void gw_http_eof(struct gw_http_parser *p, struct gw_http_ev *ev)
{
    ev->type = GW_HTTP_EV_NONE;
    ev->data = NULL;
    ev->len = 0;
    if (p->state == GW_HTTP_S_HEAD) {
        fail(p, GW_S3_BAD_REQUEST, "connection closed inside the request head");
    } else if (p->state == GW_HTTP_S_BODY) {
        fail(p, GW_S3_INCOMPLETE_BODY, "connection closed before the end of the body");
    } else {
        return;
    }
    p->state = GW_HTTP_S_ERROR;
    ev->type = GW_HTTP_EV_ERROR;
}

void gw_http_next(struct gw_http_parser *p)
{
    if (p->state != GW_HTTP_S_DONE)
        return;
    memset(&p->req, 0, sizeof(p->req));
    p->have_req = false;
    p->alen = 0;
    p->n_offs = 0;
    p->method_off = p->method_len = 0;
    p->url_off = p->url_len = 0;
    p->cur = TOK_NONE;
    p->head_bytes = 0;
    p->n_trailers = 0;
    p->trailer_bytes = 0;
    /* A large head should not pin its memory on an idle keep-alive connection. */
    if (p->acap > 4 * ARENA_MIN) {
        free(p->arena);
        p->arena = NULL;
        p->acap = 0;
    }
    p->state = p->close_after ? GW_HTTP_S_CLOSED : GW_HTTP_S_IDLE;
}

/* ---- Responses ---- */

const char *gw_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

void gw_http_format_date(int64_t unix_s, char out[GW_HTTP_DATE_SIZE])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const int64_t max = 253402300799; /* 9999-12-31T23:59:59Z: four-digit years only */
    if (unix_s < 0)
        unix_s = 0;
    if (unix_s > max)
        unix_s = max;
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    /* Fixed English names, not strftime: the Date header must not follow the locale. */
    snprintf(out, GW_HTTP_DATE_SIZE, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

size_t gw_http_chunk_header(uint64_t n, char out[GW_HTTP_CHUNK_HEADER_SIZE])
{
    return (size_t)snprintf(out, GW_HTTP_CHUNK_HEADER_SIZE, "%llx\r\n", (unsigned long long)n);
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool valid_header(const struct gw_header *h)
{
    if (h->name.n == 0 || !h->name.p || (h->value.n && !h->value.p))
        return false;
    for (size_t i = 0; i < h->name.n; i++)
        if (!is_tchar((unsigned char)h->name.p[i]))
            return false;
    for (size_t i = 0; i < h->value.n; i++) {
        unsigned char c = (unsigned char)h->value.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return !gw_str_ieq(h->name, "content-length") && !gw_str_ieq(h->name, "transfer-encoding") &&
           !gw_str_ieq(h->name, "connection") && !gw_str_ieq(h->name, "date");
}

int gw_http_format_head(const struct gw_http_response *r, struct cmn_buf *out,
                        enum gw_http_framing *framing)
{
    if (r->status < 100 || r->status > 599)
        return -EINVAL;
    if (r->content_length < GW_HTTP_LEN_NONE)
        return -EINVAL;
    for (size_t i = 0; i < r->n_headers; i++)
        if (!valid_header(&r->headers[i]))
            return -EINVAL;

    bool no_body_status = r->status < 200 || r->status == 204 || r->status == 304;
    bool close = r->close;
    bool te_chunked = false;
    enum gw_http_framing fr = GW_HTTP_FRAME_NONE;
    int64_t cl = r->content_length;
    if (no_body_status) {
        /* RFC 9110: never in 1xx or 204; in 304 only as the length the GET would have. */
        if (r->status != 304 || cl < 0)
            cl = GW_HTTP_LEN_NONE;
    } else if (cl == GW_HTTP_LEN_NONE) {
        cl = 0; /* a 2xx/4xx without a length would otherwise be read until close */
    } else if (cl == GW_HTTP_LEN_CHUNKED) {
        if (r->request_minor >= 1) {
            te_chunked = true;
            fr = GW_HTTP_FRAME_CHUNKED;
        } else if (!r->head_request) {
            /* HTTP/1.0 knows no chunked coding: the body ends with the connection. */
            fr = GW_HTTP_FRAME_CLOSE;
            close = true;
        }
    } else {
        fr = GW_HTTP_FRAME_LENGTH;
    }
    if (r->head_request)
        fr = GW_HTTP_FRAME_NONE;

    size_t mark = out->len;
    char date[GW_HTTP_DATE_SIZE];
    gw_http_format_date(r->date_s, date);
    int rc = cmn_buf_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", r->status,
                            gw_http_reason(r->status), date);
    for (size_t i = 0; rc == 0 && i < r->n_headers; i++) {
        const struct gw_header *h = &r->headers[i];
        if ((rc = cmn_buf_append(out, h->name.p, h->name.n)) == 0 &&
            (rc = cmn_buf_append(out, ": ", 2)) == 0 &&
            (rc = cmn_buf_append(out, h->value.p, h->value.n)) == 0)
            rc = cmn_buf_append(out, "\r\n", 2);
    }
    if (rc == 0 && cl >= 0)
        rc = cmn_buf_printf(out, "Content-Length: %lld\r\n", (long long)cl);
    else if (rc == 0 && te_chunked)
        rc = cmn_buf_printf(out, "Transfer-Encoding: chunked\r\n");
    if (rc == 0 && close)
        rc = cmn_buf_printf(out, "Connection: close\r\n");
    else if (rc == 0 && r->request_minor == 0)
        rc = cmn_buf_printf(out, "Connection: keep-alive\r\n");
    if (rc == 0)
        rc = cmn_buf_append(out, "\r\n", 2);
    if (rc) {
        out->len = mark;
        return rc;
    }
    if (framing)
        *framing = fr;
    return 0;
}
