/* liblode: client handles, registered buffers, the connection pool, errors and names. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client_int.h"
#include "client/parse.h"
#include "common/clock.h"

/* The message of the last failed call, per thread (lode_last_error). */
static __thread char tls_last_error[LODE_MSG_MAX];

void lc_set_last_error(const char *msg)
{
    snprintf(tls_last_error, sizeof(tls_last_error), "%s", msg ? msg : "");
}

const char *lode_last_error(void)
{
    return tls_last_error;
}

__attribute__((format(printf, 2, 3))) static int fail_plain(int code, const char *fmt, ...)
{
    char m[LODE_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    lc_set_last_error(m);
    return code;
}

void lode_client_config_init(struct lode_client_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->transport = LODE_TRANSPORT_AUTO;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

int lode_client_create(const struct lode_client_config *cfg, lode_client **out)
{
    if (!out)
        return fail_plain(-EINVAL, "%s", "lode_client_create: out is NULL");
    *out = NULL;
    if (!cfg || !cfg->endpoint || !cfg->endpoint[0])
        return fail_plain(-EINVAL, "%s", "lode_client_create: no endpoint");
    if (!cfg->access_key || !cfg->access_key[0] || !cfg->secret_key || !cfg->secret_key[0])
        return fail_plain(-EINVAL, "%s",
                          "lode_client_create: access key and secret key are required");
    if (strlen(cfg->access_key) > LC_ACCESS_KEY_MAX || strlen(cfg->secret_key) > 1024)
        return fail_plain(-EINVAL, "%s", "lode_client_create: access key or secret key too long");
    for (const char *p = cfg->access_key; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ',' || *p == '/')
            return fail_plain(-EINVAL, "%s", "lode_client_create: the access key has a "
                                             "character outside printable ASCII, or ',' or '/'");
    if (cfg->transport > LODE_TRANSPORT_HTTP)
        return fail_plain(-EINVAL, "%s", "lode_client_create: unknown transport");
    if (cfg->rdma_local && strlen(cfg->rdma_local) > LC_HOST_MAX)
        return fail_plain(-EINVAL, "%s", "lode_client_create: rdma_local is too long");
    if (cfg->async_threads > LC_MAX_ASYNC_THREADS)
        return fail_plain(-EINVAL, "%s", "lode_client_create: more than 64 async threads");
    const char *region = cfg->region && cfg->region[0] ? cfg->region : "us-east-1";
    for (const char *p = region; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.') || p - region > 63)
            return fail_plain(-EINVAL, "%s", "lode_client_create: malformed region");
    char host[LC_HOST_MAX + 1];
    uint16_t port;
    if (lc_split_hostport(cfg->endpoint, strlen(cfg->endpoint), host, sizeof(host), &port) != 0)
        return fail_plain(-EINVAL, "lode_client_create: endpoint '%.200s' is not host:port",
                          cfg->endpoint);

    lode_client *c = calloc(1, sizeof(*c));
    if (!c)
        return fail_plain(-ENOMEM, "%s", "lode_client_create: out of memory");
    c->host = strdup(host);
    c->port = port;
    c->hostport = strdup(cfg->endpoint);
    c->region = strdup(region);
    c->access_key = dup_or_null(cfg->access_key);
    c->secret_key = dup_or_null(cfg->secret_key);
    c->rdma_local = dup_or_null(cfg->rdma_local && cfg->rdma_local[0] ? cfg->rdma_local : NULL);
    c->transport = cfg->transport;
    c->flags = cfg->flags;
    c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : LC_DEFAULT_TIMEOUT_MS;
    c->async_threads = cfg->async_threads ? cfg->async_threads : LC_DEFAULT_ASYNC_THREADS;
    pthread_mutex_init(&c->lock, NULL);
    if (!c->host || !c->hostport || !c->region || !c->access_key || !c->secret_key ||
        (cfg->rdma_local && cfg->rdma_local[0] && !c->rdma_local) ||
        lc_fanout_create(&c->fanout) != 0) {
        lode_client_destroy(c);
        return fail_plain(-ENOMEM, "%s", "lode_client_create: out of memory");
    }
    *out = c;
    return 0;
}

void lode_client_destroy(lode_client *c)
{
    if (!c)
        return;
    lc_async_destroy(c->async);
    lc_fanout_destroy(c->fanout);
    for (size_t i = 0; i < c->n_idle; i++)
        lc_http_close(c->idle[i]);
    while (c->bufs) {
        struct lode_buf *b = c->bufs;
        c->bufs = b->next;
        free(b);
    }
    if (c->cuda_tried && c->cuda_rc == 0)
        lc_cuda_unload(&c->cuda);
    pthread_mutex_destroy(&c->lock);
    free(c->host);
    free(c->hostport);
    free(c->region);
    free(c->rdma_local);
    wipe_free(c->access_key);
    wipe_free(c->secret_key);
    free(c);
}

/* ---- buffers ---- */

int lc_client_cuda(lode_client *c, const struct lc_cuda **cu, struct cmn_err *err)
{
    pthread_mutex_lock(&c->lock);
    if (!c->cuda_tried) {
        cmn_err_clear(&c->cuda_err);
        c->cuda_rc = lc_cuda_load(&c->cuda, &c->cuda_err);
        c->cuda_tried = true;
    }
    int rc = c->cuda_rc;
    if (rc && err)
        *err = c->cuda_err;
    pthread_mutex_unlock(&c->lock);
    *cu = rc ? NULL : &c->cuda;
    return rc;
}

int lode_buf_register(lode_client *c, void *ptr, size_t size, enum lode_buf_kind kind,
                      lode_buf **out)
{
    struct cmn_err err;
    cmn_err_clear(&err);
    if (out)
        *out = NULL;
    if (!c || !out || !ptr || size == 0)
        return fail_plain(-EINVAL, "%s",
                          "lode_buf_register: NULL client, pointer or out, or size 0");
    if ((uintptr_t)ptr > UINT64_MAX - size)
        return fail_plain(-EINVAL, "%s", "lode_buf_register: the region wraps the address space");
    if (kind != LODE_BUF_HOST && kind != LODE_BUF_CUDA)
        return fail_plain(-EINVAL, "%s", "lode_buf_register: unknown buffer kind");
    lc_cucontext ctx = NULL;
    if (kind == LODE_BUF_CUDA) {
        const struct lc_cuda *cu;
        int rc = lc_client_cuda(c, &cu, &err);
        if (!rc)
            rc = lc_cuda_check_ptr(cu, (lc_cudeviceptr)(uintptr_t)ptr, size, &ctx, &err);
        if (rc) {
            cmn_err_wrap(&err, "lode_buf_register");
            lc_set_last_error(err.msg);
            return rc;
        }
    }
    struct lode_buf *b = calloc(1, sizeof(*b));
    if (!b)
        return fail_plain(-ENOMEM, "%s", "lode_buf_register: out of memory");
    b->c = c;
    b->ptr = ptr;
    b->size = size;
    b->kind = kind;
    b->ctx = ctx;
    pthread_mutex_lock(&c->lock);
    b->next = c->bufs;
    if (c->bufs)
        c->bufs->prev = b;
    c->bufs = b;
    pthread_mutex_unlock(&c->lock);
    *out = b;
    return 0;
}

int lode_buf_deregister(lode_buf *b)
{
    if (!b)
        return fail_plain(-EINVAL, "%s", "lode_buf_deregister: NULL buffer");
    lode_client *c = b->c;
    pthread_mutex_lock(&c->lock);
    if (b->users) {
        pthread_mutex_unlock(&c->lock);
        return fail_plain(-EBUSY, "%s", "lode_buf_deregister: a request is using the buffer");
    }
    if (b->prev)
        b->prev->next = b->next;
    else
        c->bufs = b->next;
    if (b->next)
        b->next->prev = b->prev;
    pthread_mutex_unlock(&c->lock);
    free(b);
    return 0;
}

void *lode_buf_ptr(const lode_buf *b)
{
    return b ? b->ptr : NULL;
}

size_t lode_buf_size(const lode_buf *b)
{
    return b ? b->size : 0;
}

enum lode_buf_kind lode_buf_kind_of(const lode_buf *b)
{
    return b ? b->kind : LODE_BUF_HOST;
}

int lc_buf_hold(struct lode_buf *b, uint64_t off, uint64_t len, struct cmn_err *err)
{
    if (!b)
        return cmn_err_set(err, -EINVAL, "no buffer");
    if (off > b->size || len > b->size - off)
        return cmn_err_set(err, -EINVAL,
                           "offset %llu + length %llu is outside the buffer of %zu bytes",
                           (unsigned long long)off, (unsigned long long)len, b->size);
    pthread_mutex_lock(&b->c->lock);
    b->users++;
    pthread_mutex_unlock(&b->c->lock);
    return 0;
}

void lc_buf_release(struct lode_buf *b)
{
    pthread_mutex_lock(&b->c->lock);
    b->users--;
    pthread_mutex_unlock(&b->c->lock);
}

/* ---- connections ---- */

static struct lc_http_conn *take_idle(lode_client *c)
{
    struct lc_http_conn *conn = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->n_idle)
        conn = c->idle[--c->n_idle];
    pthread_mutex_unlock(&c->lock);
    return conn;
}

void lc_call_end(lode_client *c, struct lc_call *call)
{
    if (call->conn) {
        bool kept = false;
        if (lc_http_reusable(call->conn)) {
            pthread_mutex_lock(&c->lock);
            if (c->n_idle < LC_IDLE_MAX) {
                c->idle[c->n_idle++] = call->conn;
                kept = true;
            }
            pthread_mutex_unlock(&c->lock);
        }
        if (!kept)
            lc_http_close(call->conn);
    }
    free(call->resp);
    call->conn = NULL;
    call->resp = NULL;
}

int lc_call_start(lode_client *c, const struct lc_s3_req *q, const void *body,
                  uint64_t body_len, const struct lc_http_source *src, struct lc_call *call,
                  struct cmn_err *err)
{
    call->conn = NULL;
    call->resp = malloc(sizeof(*call->resp));
    if (!call->resp)
        return cmn_err_set(err, -ENOMEM, "out of memory");
    struct cmn_buf head;
    cmn_buf_init(&head);
    struct lc_s3_signer s = {c->hostport, c->access_key, c->secret_key, c->region};
    int rc = lc_s3_format(&s, q, cmn_now_ms() / 1000, &head, err);
    /* A kept-alive connection may have been closed by the server meanwhile: that shows as a
     * failed send or a close before any response byte, and the request goes again, once, on
     * a fresh connection. Never after a response byte: the server may have acted. */
    for (int attempt = 0; rc == 0; attempt++) {
        struct lc_http_conn *conn = attempt == 0 ? take_idle(c) : NULL;
        bool reused = conn != NULL;
        if (!conn) {
            rc = lc_http_connect(c->host, c->port, c->timeout_ms, &conn, err);
            if (rc)
                break;
        }
        bool nothing = false, sent = false;
        rc = lc_http_send(conn, head.data, head.len, body, body_len, src, c->timeout_ms, err);
        if (rc == 0) {
            sent = true;
            rc = lc_http_read_head(conn, strcmp(q->method, "HEAD") == 0, call->resp, &nothing,
                                   c->timeout_ms, err);
        } else if (rc == LODE_ECLOSED && !reused) {
            /* The server stopped reading the body: it usually said why first (NoSuchBucket,
             * AccessDenied, EntityTooLarge, ...). That answer beats "connection closed". */
            struct cmn_err e2;
            cmn_err_clear(&e2);
            if (lc_http_read_head(conn, strcmp(q->method, "HEAD") == 0, call->resp, NULL,
                                  c->timeout_ms, &e2) == 0) {
                cmn_err_clear(err);
                rc = 0;
            }
        }
        if (rc == 0) {
            call->conn = conn;
            break;
        }
        lc_http_close(conn);
        bool closed = rc == LODE_ECLOSED || rc == -ECONNRESET || rc == -EPIPE;
        bool stale = reused && closed && (!sent || nothing);
        if (!stale)
            break;
        cmn_err_clear(err);
        rc = 0;
    }
    cmn_buf_free(&head);
    if (rc) {
        free(call->resp);
        call->resp = NULL;
    }
    return rc;
}

int lc_call_read_small(lode_client *c, struct lc_call *call, struct cmn_buf *out, size_t limit,
                       struct cmn_err *err)
{
    int rc = cmn_buf_reserve(out, limit + 1);
    if (rc)
        return cmn_err_set(err, rc, "out of memory");
    struct lc_http_mem m = {out->data + out->len, limit};
    struct lc_http_sink sink;
    lc_http_sink_mem(&sink, &m);
    uint64_t got = 0;
    rc = lc_http_read_body(call->conn, call->resp, &sink, limit, &got, c->timeout_ms, err);
    if (rc == 0)
        out->len += (size_t)got;
    return rc;
}

int lc_status_error(int status, const char *s3code)
{
    const char *k = s3code ? s3code : "";
    if (strcmp(k, "NoSuchKey") == 0)
        return LODE_ENOKEY;
    if (strcmp(k, "NoSuchBucket") == 0)
        return LODE_ENOBUCKET;
    if (strcmp(k, "InvalidRange") == 0 || status == 416)
        return LODE_ERR_RANGE;
    if (status == 401 || status == 403)
        return LODE_EAUTH;
    if (status == 404)
        return LODE_ENOKEY;
    if (status == 412)
        return LODE_EPRECONDITION;
    if (status == 503)
        return LODE_EUNAVAILABLE;
    if (status >= 500)
        return LODE_ERR_SERVER;
    return LODE_ERR_HTTP;
}

int lc_call_fail(lode_client *c, struct lc_call *call, const char *what, char *s3code,
                 size_t s3code_cap, struct cmn_err *err)
{
    char code[64] = "", msg[160] = "";
    struct cmn_buf body;
    cmn_buf_init(&body);
    struct cmn_err ignore;
    cmn_err_clear(&ignore);
    if (lc_call_read_small(c, call, &body, LC_ERROR_BODY_MAX, &ignore) == 0)
        lc_s3_error_parse((const char *)body.data, body.len, code, sizeof(code), msg,
                          sizeof(msg));
    cmn_buf_free(&body);
    int status = call->resp->status;
    if (s3code && s3code_cap)
        snprintf(s3code, s3code_cap, "%s", code);
    int rc = lc_status_error(status, code);
    return cmn_err_set(err, rc, "%s: HTTP %d%s%s%s%s", what, status, code[0] ? " " : "", code,
                       msg[0] ? ": " : "", msg);
}

void lc_copy_header(const struct lc_http_resp *r, const char *name, char *dst, size_t cap)
{
    size_t n = 0;
    const char *v = lc_http_header(r, name, &n);
    if (!v)
        n = 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, v, n);
    dst[n] = '\0';
}

/* ---- names and texts ---- */

const char *lode_client_strerror(int code)
{
    switch (code) {
    case LODE_ERR_NO_CUDA: return "CUDA driver or device not available";
    case LODE_ERR_CUDA: return "CUDA driver call failed";
    case LODE_ERR_HTTP: return "unexpected HTTP status";
    case LODE_ERR_PROTOCOL: return "malformed or inconsistent response";
    case LODE_ERR_DECLINED: return "the server declined the data path";
    case LODE_ERR_NO_TRANSPORT: return "transport not available";
    case LODE_ERR_TOO_SMALL: return "the object does not fit the buffer";
    case LODE_ERR_RANGE: return "range not satisfiable";
    case LODE_ERR_SERVER: return "server error";
    case LODE_ERR_CANCELED: return "canceled";
    case LODE_ERR_DATA_PATH: return "the data path failed";
    default: return lode_strerror(code);
    }
}

const char *lode_transport_name(enum lode_transport t)
{
    switch (t) {
    case LODE_TRANSPORT_AUTO: return "auto";
    case LODE_TRANSPORT_TCP: return "tcp";
    case LODE_TRANSPORT_RC: return "rc";
    case LODE_TRANSPORT_HTTP: return "http";
    }
    return "?";
}

int lode_transport_parse(const char *s, enum lode_transport *out)
{
    static const enum lode_transport all[] = {LODE_TRANSPORT_AUTO, LODE_TRANSPORT_TCP,
                                              LODE_TRANSPORT_RC, LODE_TRANSPORT_HTTP};
    for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(s, lode_transport_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -EINVAL;
}

const char *lode_fallback_name(enum lode_fallback f)
{
    switch (f) {
    case LODE_FALLBACK_NONE: return "none";
    case LODE_FALLBACK_UNAVAILABLE: return "unavailable";
    case LODE_FALLBACK_SESSION: return "session";
    case LODE_FALLBACK_DECLINED: return "declined";
    case LODE_FALLBACK_NO_REPLY: return "no-reply";
    case LODE_FALLBACK_REFUSED: return "refused";
    case LODE_FALLBACK_DATA_PATH: return "data-path";
    }
    return "?";
}
