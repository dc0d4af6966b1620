#include "tests/unit/client/fake_gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/dp_proto.h"
#include "common/rdma_token.h"
#include "gateway/sigv4.h"

/* Setup failures end the test program as tests/tap.h's tap_bail would. */
#define tap_bail(...)                                                                     \
    do {                                                                                  \
        printf("Bail out! ");                                                             \
        printf(__VA_ARGS__);                                                              \
        printf("\n");                                                                     \
        fflush(stdout);                                                                   \
        exit(99);                                                                         \
    } while (0)

static const char cluster_secret[] = "cluster secret of the fake";

struct gw G;

uint8_t pattern(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

/* ---- fake data sources ---- */

static void *source_main(void *arg)
{
    struct source *s = arg;
    while (!G.stop) {
        struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        uint8_t hello[CMN_DP_HELLO_SIZE];
        size_t got = 0;
        while (got < sizeof(hello)) {
            ssize_t g = recv(fd, hello + got, sizeof(hello) - got, 0);
            if (g <= 0)
                break;
            got += (size_t)g;
        }
        struct cmn_dp_cred cred;
        struct cmn_dp_reply rep = {.kind = CMN_DP_REPLY_OK, .source_id = s->id};
        if (got != sizeof(hello) || cmn_dp_hello_decode(hello, &cred, NULL) != 0 ||
            cmn_dp_cred_verify(cluster_secret, sizeof(cluster_secret) - 1, &cred,
                               (uint64_t)time(NULL) * 1000, NULL) != 0) {
            rep.kind = CMN_DP_REPLY_ERR;
            rep.code = CMN_DP_CODE_BAD_MAC;
        }
        uint8_t out[CMN_DP_REPLY_SIZE];
        cmn_dp_reply_encode(&rep, out);
        pthread_mutex_lock(&G.mu);
        if (rep.kind == CMN_DP_REPLY_OK) {
            if (s->fd >= 0)
                close(s->fd);
            s->fd = fd; /* set before the reply: the client may GET as soon as it has it */
        }
        fs_write(fd, out, sizeof(out));
        pthread_mutex_unlock(&G.mu);
        if (rep.kind != CMN_DP_REPLY_OK)
            close(fd);
    }
    return NULL;
}

/* Sends window bytes [off, off+len) with their object bytes from `data` as DATA frames of at
 * most 16 KiB. Caller holds G.mu. */
void send_frames(struct source *s, uint64_t base, uint32_t tag, uint64_t off,
                 const uint8_t *data, uint64_t len)
{
    while (len && s->fd >= 0) {
        uint32_t n = len > 16384 ? 16384 : (uint32_t)len;
        struct cmn_dp_data_hdr h = {.len = n, .addr = base + off, .window_base = base, .tag = tag};
        uint8_t hdr[CMN_DP_DATA_HDR_SIZE];
        cmn_dp_data_encode(&h, hdr);
        if (fs_write(s->fd, hdr, sizeof(hdr)) != 0 || fs_write(s->fd, data, n) != 0)
            return;
        off += n;
        data += n;
        len -= n;
    }
}

/* ---- fake gateway ---- */

static struct obj *find(const char *path)
{
    for (int i = 0; i < G.n_objs; i++)
        if (strcmp(G.objs[i].key, path) == 0)
            return &G.objs[i];
    return NULL;
}

bool fgw_error_doc(int fd, int status, const char *code, const char *extra)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
                                         "<Code>%s</Code><Message>fake %s</Message></Error>",
                     code, code);
    fs_printf(fd, "HTTP/1.1 %d X\r\n%sContent-Type: application/xml\r\n"
                  "Content-Length: %d\r\n\r\n%s",
              status, extra ? extra : "", n, body);
    return true;
}

bool fgw_sig_ok(const struct fs_request *r, bool *token_signed)
{
    struct gw_header h[FS_MAX_HEADERS];
    for (size_t i = 0; i < r->n_headers; i++)
        h[i] = (struct gw_header){{r->names[i], strlen(r->names[i])},
                                  {r->values[i], strlen(r->values[i])}};
    struct gw_request_head head = {
        .method = {r->method, strlen(r->method)},
        .target = {r->target, strlen(r->target)},
        .path = {r->path, strlen(r->path)},
        .query = {r->query, strlen(r->query)},
        .headers = h,
        .n_headers = r->n_headers,
    };
    struct gw_sigv4_policy pol = {.region = "us-east-1", .now = time(NULL)};
    struct gw_sigv4_auth a;
    if (gw_sigv4_parse(&head, &pol, &a, NULL) != GW_S3_OK || a.kind != GW_SIGV4_HEADER ||
        strcmp(a.access_key, AK) != 0)
        return false;
    uint8_t key[GW_SIGV4_KEY_SIZE];
    if (gw_sigv4_signing_key(SK, strlen(SK), a.date, a.region, a.service, key) != 0)
        return false;
    *token_signed = gw_sigv4_is_signed(&a, "x-amz-rdma-token");
    return gw_sigv4_verify(&head, &a, key, NULL) == GW_S3_OK;
}

static bool session_doc(int fd)
{
    struct cmn_dp_cred cred = {.expires_ms = (uint64_t)time(NULL) * 1000 + 3600 * 1000};
    for (int i = 0; i < 16; i++)
        cred.sid[i] = (uint8_t)(rand() & 0xff);
    cmn_dp_cred_set_key(&cred, AK, strlen(AK));
    cmn_dp_cred_sign(cluster_secret, sizeof(cluster_secret) - 1, &cred);
    char sid[33], mac[65], doc[4096];
    for (int i = 0; i < 16; i++)
        sprintf(sid + 2 * i, "%02x", cred.sid[i]);
    for (int i = 0; i < 32; i++)
        sprintf(mac + 2 * i, "%02X", cred.mac[i]); /* upper case: the client accepts both */
    int n = snprintf(doc, sizeof(doc),
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LodeSession><Sid>%s</Sid>"
                     "<Expires>%" PRIu64 "</Expires><Mac>%s</Mac><AccessKey>%s</AccessKey>",
                     sid, cred.expires_ms, mac, AK);
    for (int i = 0; i < N_SRC; i++)
        n += snprintf(doc + n, sizeof(doc) - (size_t)n,
                      "<Source><Id>%u</Id><Tcp>127.0.0.1:%u</Tcp></Source>", G.src[i].id,
                      G.src[i].port);
    n += snprintf(doc + n, sizeof(doc) - (size_t)n, "</LodeSession>");
    G.sessions++;
    fs_printf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                  "Content-Length: %d\r\n\r\n%s",
              n, doc);
    return true;
}

/* The bytes a GET asks for: [*first, *first + *len); the status a plain GET answers. */
static int select_bytes(const struct fs_request *r, const struct obj *o, uint64_t *first,
                        uint64_t *len, bool *ranged)
{
    const char *range = fs_header(r, "range");
    unsigned part;
    *ranged = false;
    *first = 0;
    *len = o->len;
    if (sscanf(r->query, "partNumber=%u", &part) == 1) {
        *ranged = true;
        *first = (uint64_t)(part - 1) * PART_SIZE;
        if (part == 0 || *first >= o->len)
            return 400;
        *len = o->len - *first < PART_SIZE ? o->len - *first : PART_SIZE;
        return 206;
    }
    if (range) {
        unsigned long long a, b;
        *ranged = true;
        if (sscanf(range, "bytes=%llu-%llu", &a, &b) != 2 || a > b)
            return 400;
        if (a >= o->len)
            return 416;
        if (b >= o->len)
            b = o->len - 1;
        *first = a;
        *len = b - a + 1;
        return 206;
    }
    return 200;
}

static bool plain_body(int fd, int status, const struct obj *o, uint64_t first, uint64_t len,
                       const char *extra)
{
    char cr[128] = "";
    if (status == 206)
        snprintf(cr, sizeof(cr), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%zu\r\n", first,
                 first + len - 1, o->len);
    fs_printf(fd, "HTTP/1.1 %d X\r\nETag: \"etag-%zu\"\r\n%s%sContent-Length: %" PRIu64 "\r\n\r\n",
              status, o->len, cr, extra ? extra : "", len);
    fs_write(fd, o->data + first, len);
    return true;
}

static bool fanout(int fd, const struct fs_request *r, const struct obj *o, const char *tok)
{
    struct cmn_rdma_token t;
    if (cmn_rdma_token_parse(tok, strlen(tok), &t, NULL) != 0 || t.kind != CMN_RDMA_TCP)
        return fgw_error_doc(fd, 400, "InvalidRDMAToken", NULL);
    uint64_t first, len;
    bool ranged;
    int st = select_bytes(r, o, &first, &len, &ranged);
    if (st == 416)
        return fgw_error_doc(fd, 416, "InvalidRange", NULL);
    if (st == 400)
        return fgw_error_doc(fd, 400, "InvalidArgument", NULL);
    if (!ranged && len > t.size)
        return fgw_error_doc(fd, 400, "InvalidRequest", NULL);
    if (len > t.size)
        len = t.size;
    uint32_t prev_tag = G.last_tag;
    uint64_t prev_base = G.last_base;
    G.last_base = t.base;
    G.last_window = t.size;
    G.last_tag = t.u.tcp.tag;
    if (G.mode == MODE_DECLINE_BODY)
        return plain_body(fd, st, o, first, len, "x-amz-rdma-reply: 501\r\n");
    if (G.mode == MODE_DECLINE_501)
        return fgw_error_doc(fd, 501, "RDMANotSupported", "x-amz-rdma-reply: 501\r\n");
    if (G.mode == MODE_REFUSE_400)
        return fgw_error_doc(fd, 400, "InvalidRDMAToken", NULL);
    /* Stripes of 64 KiB round-robin over the sources. */
    uint64_t per[N_SRC] = {0};
    pthread_mutex_lock(&G.mu);
    for (uint64_t off = 0, k = 0; off < len; off += STRIPE, k++) {
        uint64_t n = len - off < STRIPE ? len - off : STRIPE;
        int s = (int)(k % N_SRC);
        per[s] += n;
        if (G.mode == MODE_LIE_BYTES && s == 1)
            continue;
        send_frames(&G.src[s], t.base, t.u.tcp.tag, off, o->data + first + off, n);
    }
    /* A late frame of the previous request into the same memory, after this request's
     * bytes: it carries the previous tag and must not land. */
    if (prev_base == t.base && prev_tag && prev_tag != t.u.tcp.tag) {
        uint8_t junk[64];
        memset(junk, 0xa5, sizeof(junk));
        send_frames(&G.src[0], t.base, prev_tag, 0, junk, len < 64 ? len : 64);
        G.stale_sent++;
    }
    pthread_mutex_unlock(&G.mu);
    if (G.mode == MODE_SHORT_SOURCES)
        per[0] = 0;
    char srcs[256];
    int n = 0;
    for (int i = 0; i < N_SRC; i++)
        n += snprintf(srcs + n, sizeof(srcs) - (size_t)n, "%s%u=%" PRIu64, i ? "," : "",
                      G.src[i].id, per[i]);
    char cr[128] = "";
    if (st == 206)
        snprintf(cr, sizeof(cr), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%zu\r\n", first,
                 first + len - 1, o->len);
    fs_printf(fd, "HTTP/1.1 %d X\r\nETag: \"etag-%zu\"\r\n%sx-amz-rdma-reply: %d\r\n"
                  "x-amz-rdma-bytes-transferred: %" PRIu64 "\r\nx-amz-rdma-bytes: %" PRIu64 "\r\n"
                  "x-lode-sources: %s\r\nContent-Length: 0\r\n\r\n",
              st, o->len, cr, st, len, len, srcs);
    return true;
}

static bool handler(int fd, const struct fs_request *r, void *data)
{
    bool token_signed = false;
    if (!fgw_sig_ok(r, &token_signed)) {
        G.bad_sigs++;
        return fgw_error_doc(fd, 403, "SignatureDoesNotMatch", NULL);
    }
    if (G.mode == MODE_SLOW)
        usleep(300 * 1000);
    if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/") == 0 &&
        strcmp(r->query, "x-lode-session") == 0) {
        if (G.mode == MODE_NO_SESSION) {
            G.sessions++;
            return fgw_error_doc(fd, 501, "NotImplemented", NULL);
        }
        return session_doc(fd);
    }
    pthread_mutex_lock(&G.mu);
    struct obj *o = find(r->path);
    if (strcmp(r->method, "PUT") == 0) {
        if (!o && G.n_objs < 16)
            o = &G.objs[G.n_objs++];
        if (o) {
            free(o->data);
            snprintf(o->key, sizeof(o->key), "%s", r->path);
            o->data = malloc(r->body_len + 1);
            memcpy(o->data, r->body, r->body_len);
            o->len = r->body_len;
        }
    }
    pthread_mutex_unlock(&G.mu);
    if (strcmp(r->method, "PUT") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\nETag: \"etag-%zu\"\r\nContent-Length: 0\r\n\r\n",
                  r->body_len);
        return true;
    }
    if (!o)
        return fgw_error_doc(fd, 404, "NoSuchKey", NULL);
    if (strcmp(r->method, "HEAD") == 0) {
        fs_printf(fd, "HTTP/1.1 200 OK\r\nETag: \"etag-%zu\"\r\nContent-Length: %zu\r\n\r\n",
                  o->len, o->len);
        return true;
    }
    const char *tok = fs_header(r, "x-amz-rdma-token");
    if (tok && G.mode != MODE_IGNORE) {
        G.token_gets++;
        if (!token_signed) {
            G.unsigned_tokens++;
            return fgw_error_doc(fd, 403, "AccessDenied", NULL);
        }
        return fanout(fd, r, o, tok);
    }
    G.plain_gets++;
    uint64_t first, len;
    bool ranged;
    int st = select_bytes(r, o, &first, &len, &ranged);
    if (st == 416)
        return fgw_error_doc(fd, 416, "InvalidRange", NULL);
    if (st == 400)
        return fgw_error_doc(fd, 400, "InvalidArgument", NULL);
    return plain_body(fd, st, o, first, len, NULL);
}

/* ---- helpers ---- */

lode_client *client(enum lode_transport t, uint32_t flags, uint32_t timeout_ms,
                    const char *secret)
{
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%u", G.http.port);
    struct lode_client_config cfg;
    lode_client_config_init(&cfg);
    cfg.endpoint = ep;
    cfg.access_key = AK;
    cfg.secret_key = secret ? secret : SK;
    cfg.transport = t;
    cfg.flags = flags;
    cfg.timeout_ms = timeout_ms;
    lode_client *c = NULL;
    if (lode_client_create(&cfg, &c) != 0)
        tap_bail("client: %s", lode_last_error());
    return c;
}

/* Whether buf[0..n) holds object bytes first..first+n-1 of an object made by pattern(). */
bool same(const uint8_t *buf, uint64_t first, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (buf[i] != pattern(first + i))
            return false;
    return true;
}

uint8_t *mem(size_t n)
{
    uint8_t *p = malloc(n);
    memset(p, 0xee, n);
    return p;
}

int put_object(lode_client *c, const char *key, size_t len)
{
    uint8_t *p = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(i);
    lode_buf *b;
    if (lode_buf_register(c, p, len + 1, LODE_BUF_HOST, &b) != 0)
        tap_bail("register");
    struct lode_result res;
    int rc = lode_put(c, "bkt", key, b, 0, len, NULL, &res);
    lode_buf_deregister(b);
    free(p);
    return rc;
}

void fgw_start(void)
{
    srand((unsigned)time(NULL));
    pthread_mutex_init(&G.mu, NULL);
    for (int i = 0; i < N_SRC; i++) {
        G.src[i].id = i == N_SRC - 1 ? 0x80000000u : (uint32_t)i + 1;
        G.src[i].fd = -1;
        G.src[i].listen_fd = fs_listen(&G.src[i].port);
        if (G.src[i].listen_fd < 0 ||
            pthread_create(&G.src[i].thread, NULL, source_main, &G.src[i]) != 0)
            tap_bail("fake data source");
    }
    if (fs_start(&G.http, handler, NULL) != 0)
        tap_bail("fake gateway");
}

void fgw_stop(void)
{
    G.stop = true;
    fs_stop(&G.http);
    for (int i = 0; i < N_SRC; i++) {
        pthread_join(G.src[i].thread, NULL);
        close(G.src[i].listen_fd);
        if (G.src[i].fd >= 0)
            close(G.src[i].fd);
    }
    for (int i = 0; i < G.n_objs; i++)
        free(G.objs[i].data);
}
