/* liblode's multipart uploads (lode_upload_*) against a fake S3 server that keeps an upload's
 * parts in memory, verifies every request's SigV4 signature with the gateway's verifier, and
 * checks what the client sends: the create (POST ?uploads), each UploadPart (PUT
 * ?partNumber=N&uploadId=ID with the part's bytes), the completion document (every part once,
 * in order, with the ETag of its last write) and the abort (DELETE ?uploadId=ID). The server's
 * answers can be switched to the failures a client must report: errors, an error document
 * behind a 200, a result without its field. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/client.h>

#include "tests/tap.h"
#include "tests/unit/client/fake_gateway.h"
#include "tests/unit/client/fake_server.h"

/* An id with characters that must be percent-encoded in the query. */
#define UPLOAD_ID "u+1/2=3~x"
#define UPLOAD_ID_ENC "u%2B1%2F2%3D3~x"
#define MAXP 64

enum mp_mode {
    MP_NORMAL,
    MP_CREATE_404,      /* NoSuchBucket */
    MP_CREATE_NO_ID,    /* a result document without UploadId */
    MP_COMPLETE_ERR200, /* 200 with an <Error> document */
    MP_COMPLETE_400,    /* EntityTooSmall */
};

static struct {
    struct fake_server http;
    pthread_mutex_t mu;
    enum mp_mode mode;
    int bad_sigs, bad_queries, creates, aborts, completes, part_puts;
    char content_type[64];
    uint8_t *part[MAXP + 1];
    size_t part_len[MAXP + 1];
    unsigned part_gen[MAXP + 1];   /* writes of that number so far */
    char complete_doc[16384];
} S;

/* The ETag the fake gives part n's w-th write: it changes with every write. */
static void part_etag(unsigned n, unsigned w, char *out, size_t cap)
{
    snprintf(out, cap, "\"%08x%08x\"", n, w);
}

static bool reply(int fd, int status, const char *body)
{
    fs_printf(fd, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n\r\n%s", status, strlen(body), body);
    return true;
}

static bool handler(int fd, const struct fs_request *r, void *data)
{
    (void)data;
    bool ts;
    pthread_mutex_lock(&S.mu);
    bool ret = true;
    if (!fgw_sig_ok(r, &ts)) {
        S.bad_sigs++;
        ret = fgw_error_doc(fd, 403, "SignatureDoesNotMatch", NULL);
        goto out;
    }
    if (strcmp(r->path, "/bkt/big/obj") != 0) {
        ret = fgw_error_doc(fd, 404, "NoSuchKey", NULL);
        goto out;
    }
    unsigned n;
    char tail[64];
    if (strcmp(r->method, "POST") == 0 && strcmp(r->query, "uploads") == 0) {
        S.creates++;
        const char *ct = fs_header(r, "content-type");
        snprintf(S.content_type, sizeof(S.content_type), "%s", ct ? ct : "");
        if (S.mode == MP_CREATE_404)
            ret = fgw_error_doc(fd, 404, "NoSuchBucket", NULL);
        else if (S.mode == MP_CREATE_NO_ID)
            ret = reply(fd, 200, "<InitiateMultipartUploadResult><Bucket>bkt</Bucket>"
                                 "</InitiateMultipartUploadResult>");
        else
            ret = reply(fd, 200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                 "<InitiateMultipartUploadResult><Bucket>bkt</Bucket>"
                                 "<Key>big/obj</Key><UploadId>" UPLOAD_ID "</UploadId>"
                                 "</InitiateMultipartUploadResult>");
    } else if (strcmp(r->method, "PUT") == 0 &&
               sscanf(r->query, "partNumber=%u&%63s", &n, tail) == 2) {
        if (strcmp(tail, "uploadId=" UPLOAD_ID_ENC) != 0 || n < 1 || n > MAXP) {
            S.bad_queries++;
            ret = fgw_error_doc(fd, 400, "InvalidArgument", NULL);
            goto out;
        }
        S.part_puts++;
        free(S.part[n]);
        S.part[n] = malloc(r->body_len + 1);
        memcpy(S.part[n], r->body, r->body_len);
        S.part_len[n] = r->body_len;
        char etag[32];
        part_etag(n, ++S.part_gen[n], etag, sizeof(etag));
        fs_printf(fd, "HTTP/1.1 200 OK\r\nETag: %s\r\nContent-Length: 0\r\n\r\n", etag);
    } else if (strcmp(r->method, "POST") == 0) {
        if (strcmp(r->query, "uploadId=" UPLOAD_ID_ENC) != 0) {
            S.bad_queries++;
            ret = fgw_error_doc(fd, 400, "InvalidArgument", NULL);
            goto out;
        }
        S.completes++;
        size_t l = r->body_len < sizeof(S.complete_doc) - 1 ? r->body_len
                                                            : sizeof(S.complete_doc) - 1;
        memcpy(S.complete_doc, r->body, l);
        S.complete_doc[l] = '\0';
        if (S.mode == MP_COMPLETE_ERR200)
            ret = reply(fd, 200, "<Error><Code>InternalError</Code><Message>fake failure after "
                                 "the status</Message></Error>");
        else if (S.mode == MP_COMPLETE_400)
            ret = fgw_error_doc(fd, 400, "EntityTooSmall", NULL);
        else
            ret = reply(fd, 200, "<CompleteMultipartUploadResult><Bucket>bkt</Bucket>"
                                 "<ETag>&quot;0123456789abcdef0123456789abcdef-3&quot;</ETag>"
                                 "</CompleteMultipartUploadResult>");
    } else if (strcmp(r->method, "DELETE") == 0) {
        if (strcmp(r->query, "uploadId=" UPLOAD_ID_ENC) != 0) {
            S.bad_queries++;
            ret = fgw_error_doc(fd, 400, "InvalidArgument", NULL);
            goto out;
        }
        S.aborts++;
        fs_printf(fd, "HTTP/1.1 204 No Content\r\n\r\n");
    } else {
        ret = fgw_error_doc(fd, 405, "MethodNotAllowed", NULL);
    }
out:
    pthread_mutex_unlock(&S.mu);
    return ret;
}

static void reset(enum mp_mode m)
{
    pthread_mutex_lock(&S.mu);
    S.mode = m;
    S.bad_sigs = S.bad_queries = S.creates = S.aborts = S.completes = S.part_puts = 0;
    for (int i = 0; i <= MAXP; i++) {
        free(S.part[i]);
        S.part[i] = NULL;
        S.part_len[i] = 0;
        S.part_gen[i] = 0;
    }
    S.complete_doc[0] = S.content_type[0] = '\0';
    pthread_mutex_unlock(&S.mu);
}

static lode_client *mk_client(void)
{
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%u", S.http.port);
    struct lode_client_config cfg;
    lode_client_config_init(&cfg);
    cfg.endpoint = ep;
    cfg.access_key = AK;
    cfg.secret_key = SK;
    cfg.transport = LODE_TRANSPORT_HTTP;
    cfg.timeout_ms = 5000;
    lode_client *c = NULL;
    if (lode_client_create(&cfg, &c) != 0)
        tap_bail("client: %s", lode_last_error());
    return c;
}

/* The completion document the server must get for parts 1..n whose last writes are gen[]. */
static void want_doc(unsigned n, const unsigned *gen, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "<CompleteMultipartUpload>");
    for (unsigned i = 1; i <= n; i++) {
        char e[32];
        part_etag(i, gen[i], e, sizeof(e));
        e[strlen(e) - 1] = '\0';
        o += (size_t)snprintf(out + o, cap - o,
                              "<Part><PartNumber>%u</PartNumber><ETag>&quot;%s&quot;</ETag>"
                              "</Part>", i, e + 1);
    }
    snprintf(out + o, cap - o, "</CompleteMultipartUpload>");
}

static void test_upload(lode_client *c, lode_buf *b, uint8_t *data)
{
    reset(MP_NORMAL);
    lode_upload *u = NULL;
    struct lode_result res;
    struct lode_put_opts po = {.content_type = "application/x-test"};
    is_int(lode_upload_create(c, "bkt", "big/obj", &po, &u, &res), 0, "create: 0");
    ok(u && strcmp(lode_upload_id(u), UPLOAD_ID) == 0, "create: the server's upload id");
    is_str(S.content_type, "application/x-test", "create: the content type goes with it");
    /* Parts out of order, part 2 twice with other bytes the second time. */
    is_int(lode_upload_part(u, 3, b, 2000, 500, &res), 0, "part 3 (the last, 500 bytes)");
    is_str(res.etag, "\"0000000300000001\"", "part 3: its ETag in the result");
    is_int(lode_upload_part(u, 1, b, 0, 1000, &res), 0, "part 1");
    is_int(lode_upload_part(u, 2, b, 5000, 1000, &res), 0, "part 2, first write");
    is_int(lode_upload_part(u, 2, b, 1000, 1000, &res), 0, "part 2 again, other bytes");
    pthread_mutex_lock(&S.mu);
    ok(S.part_len[1] == 1000 && memcmp(S.part[1], data, 1000) == 0 && S.part_len[2] == 1000 &&
           memcmp(S.part[2], data + 1000, 1000) == 0 && S.part_len[3] == 500 &&
           memcmp(S.part[3], data + 2000, 500) == 0,
       "the server holds each part's bytes from its buffer range (part 2: the second write)");
    pthread_mutex_unlock(&S.mu);
    is_int(lode_upload_part(u, 0, b, 0, 10, &res), -EINVAL, "part number 0: -EINVAL");
    is_int(lode_upload_part(u, 10001, b, 0, 10, &res), -EINVAL, "part number 10001: -EINVAL");
    is_int(lode_upload_part(u, 4, b, lode_buf_size(b) - 5, 10, &res), -EINVAL,
           "a part beyond the buffer: -EINVAL");
    is_int(S.part_puts, 4, "... none of them reached the server");
    is_int(lode_upload_complete(u, &res), 0, "complete: 0");
    is_str(res.etag, "\"0123456789abcdef0123456789abcdef-3\"", "complete: the object's ETag");
    char want[4096];
    unsigned gen[] = {0, 1, 2, 1};
    want_doc(3, gen, want, sizeof(want));
    is_str(S.complete_doc, want, "complete: parts 1..3 in order, part 2 with its last ETag");
    is_int(S.bad_sigs + S.bad_queries, 0, "every request signed, the id percent-encoded");
    is_int(S.aborts, 0, "nothing aborted");
}

static void test_failures(lode_client *c, lode_buf *b)
{
    struct lode_result res;
    lode_upload *u = (lode_upload *)1;
    reset(MP_CREATE_404);
    is_int(lode_upload_create(c, "bkt", "big/obj", NULL, &u, &res), LODE_ENOBUCKET,
           "create into a missing bucket: LODE_ENOBUCKET");
    ok(u == NULL && strstr(res.message, "NoSuchBucket") != NULL, "... no handle, the S3 code said");
    reset(MP_CREATE_NO_ID);
    is_int(lode_upload_create(c, "bkt", "big/obj", NULL, &u, &res), LODE_ERR_PROTOCOL,
           "a create answer without UploadId: LODE_ERR_PROTOCOL");
    is_int(lode_upload_create(c, "bkt", "", NULL, &u, &res), -EINVAL, "an empty key: -EINVAL");

    reset(MP_COMPLETE_ERR200);
    is_int(lode_upload_create(c, "bkt", "big/obj", NULL, &u, &res), 0, "create");
    is_int(lode_upload_complete(u, &res), -EINVAL, "complete with no part: -EINVAL");
    is_int(S.completes, 0, "... without asking the server");
    is_int(lode_upload_part(u, 1, b, 0, 100, &res), 0, "part 1");
    int rc = lode_upload_complete(u, &res);
    ok(rc != 0 && strstr(res.message, "InternalError") != NULL && res.etag[0] == '\0',
       "an error document behind a 200 fails the completion (%d: %s)", rc, res.message);
    /* The handle survives a failed completion: abort it. */
    is_int(lode_upload_abort(u, &res), 0, "abort after a failed completion");
    is_int(S.aborts, 1, "... the server got the DELETE with the upload id");

    reset(MP_COMPLETE_400);
    is_int(lode_upload_create(c, "bkt", "big/obj", NULL, &u, &res), 0, "create");
    is_int(lode_upload_part(u, 1, b, 0, 100, &res), 0, "part 1");
    is_int(lode_upload_part(u, 2, b, 0, 100, &res), 0, "part 2");
    rc = lode_upload_complete(u, &res);
    ok(rc == LODE_ERR_HTTP && strstr(res.message, "EntityTooSmall") != NULL,
       "EntityTooSmall: LODE_ERR_HTTP naming it (%d: %s)", rc, res.message);
    reset(MP_NORMAL);
    is_int(lode_upload_complete(u, &res), 0, "the same handle completes once the server agrees");
    is_int(S.completes, 1, "... one completion");
    is_int(lode_upload_part(NULL, 1, b, 0, 1, &res), -EINVAL, "part of no upload: -EINVAL");
    is_int(lode_upload_abort(NULL, &res), -EINVAL, "abort of no upload: -EINVAL");
    is_str(lode_upload_id(NULL), "", "the id of no upload is \"\"");
}

struct worker {
    lode_upload *u;
    lode_buf *b;
    unsigned first;
    int failures;
};

static void *write_parts(void *arg)
{
    struct worker *w = arg;
    for (unsigned n = w->first; n <= MAXP; n += 4) {
        struct lode_result r;
        if (lode_upload_part(w->u, n, w->b, (n - 1) * 100, 100, &r) != 0)
            w->failures++;
    }
    return NULL;
}

static void test_threads(lode_client *c, lode_buf *b, const uint8_t *data)
{
    reset(MP_NORMAL);
    lode_upload *u;
    struct lode_result res;
    is_int(lode_upload_create(c, "bkt", "big/obj", NULL, &u, &res), 0, "threads: create");
    struct worker w[4];
    pthread_t th[4];
    for (unsigned i = 0; i < 4; i++) {
        w[i] = (struct worker){.u = u, .b = b, .first = i + 1};
        pthread_create(&th[i], NULL, write_parts, &w[i]);
    }
    int failures = 0;
    for (unsigned i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    is_int(failures, 0, "threads: %d parts written from 4 threads at once", MAXP);
    bool same_bytes = true;
    for (unsigned n = 1; n <= MAXP; n++)
        same_bytes = same_bytes && S.part_len[n] == 100 &&
                     memcmp(S.part[n], data + (n - 1) * 100, 100) == 0;
    ok(same_bytes, "threads: every part holds its own range");
    is_int(lode_upload_complete(u, &res), 0, "threads: complete");
    char want[16384];
    unsigned gen[MAXP + 1];
    for (unsigned n = 0; n <= MAXP; n++)
        gen[n] = 1;
    want_doc(MAXP, gen, want, sizeof(want));
    is_str(S.complete_doc, want, "threads: all %d parts listed once, in order", MAXP);
}

int main(void)
{
    pthread_mutex_init(&S.mu, NULL);
    if (fs_start(&S.http, handler, NULL) != 0)
        tap_bail("fake server");
    lode_client *c = mk_client();
    size_t len = 64 * 1024;
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 8));
    lode_buf *b;
    if (lode_buf_register(c, data, len, LODE_BUF_HOST, &b) != 0)
        tap_bail("register: %s", lode_last_error());
    test_upload(c, b, data);
    test_failures(c, b);
    test_threads(c, b, data);
    is_int(lode_buf_deregister(b), 0, "the buffer is free again after every call");
    lode_client_destroy(c);
    fs_stop(&S.http);
    reset(MP_NORMAL);
    free(data);
    return tap_done();
}
