/* liblode end to end against the fake gateway of tests/unit/client/fake_gateway.h and its
 * three fake tcp data sources (common/dp_proto.h): plain GET, PUT, HEAD,
 * ranges, parts, errors; the tcp fan-out (session, HELLO, DATA frames into the buffer, the
 * completion rule); every decline and fallback path; the async calls; the tcp fence.
 *
 * The fake gateway verifies each request's SigV4 signature with the gateway's verifier and
 * checks that x-amz-rdma-token is among the signed headers. Object bytes come from a fixed
 * generator (pattern()), so every check compares what landed in the buffer with bytes
 * computed independently of liblode. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lode/client.h>

#include "tests/tap.h"
#include "tests/unit/client/fake_gateway.h"

/* ---- tests ---- */

static void test_config(void)
{
    struct lode_client_config cfg;
    lode_client_config_init(&cfg);
    lode_client *c = (lode_client *)1;
    is_int(lode_client_create(&cfg, &c), -EINVAL, "config: no endpoint");
    ok(c == NULL && strstr(lode_last_error(), "endpoint") != NULL, "config: message and NULL");
    cfg.endpoint = "127.0.0.1";
    cfg.access_key = AK;
    cfg.secret_key = SK;
    is_int(lode_client_create(&cfg, &c), -EINVAL, "config: endpoint without a port");
    cfg.endpoint = "127.0.0.1:9";
    cfg.access_key = "";
    is_int(lode_client_create(&cfg, &c), -EINVAL, "config: empty access key");
    cfg.access_key = "bad,key";
    is_int(lode_client_create(&cfg, &c), -EINVAL, "config: ',' in the access key");
    cfg.access_key = AK;
    cfg.transport = (enum lode_transport)9;
    is_int(lode_client_create(&cfg, &c), -EINVAL, "config: unknown transport");
    cfg.transport = LODE_TRANSPORT_HTTP;
    cfg.region = "bad region";
    is_int(lode_client_create(&cfg, &c), -EINVAL, "config: malformed region");
    cfg.region = NULL;
    is_int(lode_client_create(&cfg, &c), 0, "config: valid");
    lode_client_destroy(c);

    enum lode_transport t;
    ok(lode_transport_parse("tcp", &t) == 0 && t == LODE_TRANSPORT_TCP, "transport names");
    ok(lode_transport_parse("TCP", &t) == -EINVAL, "transport names are case-sensitive");
    is_str(lode_fallback_name(LODE_FALLBACK_DECLINED), "declined", "fallback names");
    is_str(lode_client_strerror(LODE_ERR_NO_CUDA), "CUDA driver or device not available",
           "strerror: client code");
    is_str(lode_client_strerror(LODE_ENOKEY), "no such key", "strerror: lode code");
}

static void test_plain(void)
{
    lode_client *c = client(LODE_TRANSPORT_HTTP, 0, 5000, NULL);
    const size_t len = 100 * 1024;
    is_int(put_object(c, "obj", len), 0, "plain: PUT 100 KiB");
    is_int(put_object(c, "multi", 2500), 0, "plain: PUT a 2500-byte 'multipart' object");
    is_int(put_object(c, "empty", 0), 0, "plain: PUT an empty object");
    struct lode_result res;
    is_int(lode_head(c, "bkt", "obj", &res), 0, "HEAD");
    ok(res.object_size == len && strcmp(res.etag, "\"etag-102400\"") == 0, "HEAD: size and ETag");
    is_int(lode_head(c, "bkt", "nope", &res), LODE_ENOKEY, "HEAD: missing key");

    uint8_t *p = mem(len + 10);
    lode_buf *b;
    is_int(lode_buf_register(c, p, len + 10, LODE_BUF_HOST, &b), 0, "register a host buffer");
    is_int(lode_get(c, "bkt", "obj", NULL, b, 5, &res), 0, "GET whole object at offset 5");
    ok(res.bytes == len && res.offset == 0 && res.object_size == len && same(p + 5, 0, len),
       "GET: bytes at the buffer offset");
    ok(p[4] == 0xee && p[len + 5] == 0xee, "GET: nothing written outside");
    ok(res.transport == LODE_TRANSPORT_HTTP && !res.fell_back && res.http_status == 200,
       "GET: plain HTTP, no fallback");
    is_str(res.etag, "\"etag-102400\"", "GET: ETag");

    struct lode_range rg = {1000, 5000};
    struct lode_get_opts go = {.range = &rg};
    is_int(lode_get(c, "bkt", "obj", &go, b, 0, &res), 0, "GET range 1000+5000");
    ok(res.bytes == 5000 && res.offset == 1000 && same(p, 1000, 5000), "range: bytes");
    is_str(res.content_range, "bytes 1000-5999/102400", "range: Content-Range");
    ok(res.object_size == len && res.http_status == 206, "range: object size, 206");

    /* A range larger than the space reads what fits. */
    lode_buf *small;
    uint8_t *q = mem(700);
    lode_buf_register(c, q, 700, LODE_BUF_HOST, &small);
    struct lode_range to_end = {100000, LODE_RANGE_TO_END};
    go.range = &to_end;
    is_int(lode_get(c, "bkt", "obj", &go, small, 0, &res), 0,
           "GET range to the end, 700 bytes of space");
    ok(res.bytes == 700 && res.offset == 100000 && same(q, 100000, 700),
       "range: clamped to the space");
    struct lode_range tail = {102000, LODE_RANGE_TO_END};
    go.range = &tail;
    is_int(lode_get(c, "bkt", "obj", &go, small, 0, &res), 0, "GET the last 400 bytes");
    ok(res.bytes == 400 && same(q, 102000, 400), "range: the object's end");
    struct lode_range past = {len, 10};
    go.range = &past;
    is_int(lode_get(c, "bkt", "obj", &go, small, 0, &res), LODE_ERR_RANGE, "GET past the end: 416");

    is_int(lode_get(c, "bkt", "obj", NULL, small, 0, &res), LODE_ERR_TOO_SMALL,
           "GET whole object into a small buffer");
    ok(strstr(res.message, "102400") != NULL, "too small: message gives the size (%s)",
       res.message);

    /* Parts. */
    struct lode_get_opts po = {.part_number = 2};
    is_int(lode_get(c, "bkt", "multi", &po, b, 0, &res), 0, "GET part 2");
    ok(res.bytes == 1000 && res.offset == 1000 && same(p, 1000, 1000), "part 2: bytes 1000..1999");
    po.part_number = 3;
    is_int(lode_get(c, "bkt", "multi", &po, b, 0, &res), 0, "GET part 3");
    ok(res.bytes == 500 && res.offset == 2000 && same(p, 2000, 500), "part 3: the last 500 bytes");
    po.part_number = 2;
    is_int(lode_get(c, "bkt", "multi", &po, b, len + 10 - 600, &res), 0,
           "GET part 2 into 600 bytes");
    ok(res.bytes == 600 && res.offset == 1000 && same(p + len + 10 - 600, 1000, 600),
       "part: the first 600 bytes");
    struct lode_get_opts both = {.range = &rg, .part_number = 1};
    is_int(lode_get(c, "bkt", "multi", &both, b, 0, &res), -EINVAL, "range and part refused");

    is_int(lode_get(c, "bkt", "empty", NULL, b, 0, &res), 0, "GET an empty object");
    ok(res.bytes == 0 && res.object_size == 0, "empty: 0 bytes");

    /* Errors. */
    is_int(lode_get(c, "bkt", "missing", NULL, b, 0, &res), LODE_ENOKEY, "GET a missing key");
    ok(strstr(res.message, "404") && strstr(res.message, "NoSuchKey") &&
           strcmp(lode_last_error(), res.message) == 0,
       "missing: message (%s), also in lode_last_error", res.message);
    is_int(lode_get(c, "bkt", "obj", NULL, b, len + 11, &res), -EINVAL,
           "GET at an offset past the buffer");
    is_int(lode_get(c, "bad/bucket", "obj", NULL, b, 0, &res), -EINVAL, "GET: '/' in a bucket");
    is_int(lode_get(c, "bkt", "", NULL, b, 0, &res), -EINVAL, "GET: empty key");
    lode_client *wrong = client(LODE_TRANSPORT_HTTP, 0, 5000, "not the secret");
    lode_buf *wb;
    lode_buf_register(wrong, p, 10, LODE_BUF_HOST, &wb);
    is_int(lode_get(wrong, "bkt", "obj", NULL, wb, 0, &res), LODE_EAUTH, "GET with a wrong secret");
    is_int(lode_get(c, "bkt", "obj", NULL, wb, 0, &res), -EINVAL,
           "GET into another client's buffer");
    lode_buf_deregister(wb);
    lode_client_destroy(wrong);

    /* Keys that need encoding travel intact. */
    is_int(put_object(c, "dir/a b+c%d~e.txt", 3000), 0, "PUT a key with spaces and reserved chars");
    is_int(lode_get(c, "bkt", "dir/a b+c%d~e.txt", NULL, b, 0, &res), 0, "GET it back");
    ok(res.bytes == 3000 && same(p, 0, 3000), "encoded key: bytes");

    int conns = G.http.connections;
    for (int i = 0; i < 5; i++)
        lode_get(c, "bkt", "obj", &go, small, 0, &res);
    is_int(G.http.connections, conns, "keep-alive: five GETs on the pooled connection");

    lode_buf_deregister(small);
    lode_buf_deregister(b);
    lode_client_destroy(c);
    free(p);
    free(q);
}

struct done {
    pthread_mutex_t mu;
    int n, bad;
};

static void async_done(void *ud, int status, const struct lode_result *res)
{
    struct done *d = ud;
    pthread_mutex_lock(&d->mu);
    d->n++;
    if (status || res->transport != LODE_TRANSPORT_TCP || res->bytes != 300000)
        d->bad++;
    pthread_mutex_unlock(&d->mu);
}

static void test_fanout(void)
{
    lode_client *c = client(LODE_TRANSPORT_TCP, 0, 5000, NULL);
    const size_t big = 3 * 1024 * 1024 + 12345;
    is_int(put_object(c, "big", big), 0,
           "fan-out: PUT 3 MiB + 12345 = 3158073 bytes (plain, as tcp puts are)");
    uint8_t *p = mem(big + 1);
    lode_buf *b;
    lode_buf_register(c, p, big + 1, LODE_BUF_HOST, &b);
    struct lode_result res;
    int sessions = G.sessions;
    is_int(lode_get(c, "bkt", "big", NULL, b, 1, &res), 0, "fan-out GET whole");
    ok(res.transport == LODE_TRANSPORT_TCP && !res.fell_back, "fan-out: tcp, no fallback (%s)",
       res.message);
    ok(res.bytes == big && res.offset == 0 && same(p + 1, 0, big), "fan-out: every byte landed");
    ok(p[0] == 0xee, "fan-out: nothing before the window");
    is_int(res.sources, N_SRC, "fan-out: three sources sent bytes");
    is_str(res.etag, "\"etag-3158073\"", "fan-out: ETag");
    ok(G.last_base == (uint64_t)(uintptr_t)(p + 1) && G.last_window == big && G.last_tag,
       "fan-out: the token names the window (base, size) and a tag");
    uint32_t tag1 = G.last_tag;
    memset(p, 0xee, big + 1);
    is_int(lode_get(c, "bkt", "big", NULL, b, 1, &res), 0, "fan-out GET again into the same memory");
    ok(G.last_tag != tag1 && G.stale_sent > 0, "the second request has another tag; a frame "
                                               "with the first one was sent after its bytes");
    ok(res.transport == LODE_TRANSPORT_TCP && same(p + 1, 0, big),
       "reused buffer: the late frame of the first request did not land");

    memset(p, 0xee, big + 1);
    struct lode_range rg = {70000, 200000};
    struct lode_get_opts go = {.range = &rg};
    is_int(lode_get(c, "bkt", "big", &go, b, 0, &res), 0, "fan-out GET range");
    ok(res.transport == LODE_TRANSPORT_TCP && res.bytes == 200000 && res.offset == 70000 &&
           same(p, 70000, 200000) && p[200000] == 0xee,
       "fan-out range: bytes, nothing past them");
    ok(G.last_window == 200000, "fan-out range: the window is the range");
    is_str(res.content_range, "bytes 70000-269999/3158073", "fan-out range: Content-Range");

    struct lode_get_opts po = {.part_number = 3};
    is_int(lode_get(c, "bkt", "big", &po, b, 0, &res), 0, "fan-out GET part 3");
    ok(res.transport == LODE_TRANSPORT_TCP && res.bytes == PART_SIZE && res.offset == 2000 &&
           same(p, 2000, PART_SIZE),
       "fan-out part: bytes");
    is_int(G.sessions, sessions + 1, "one session for every request");
    is_int(G.unsigned_tokens, 0, "the token is always signed");

    /* A window smaller than the object: the gateway refuses; the plain GET says why. */
    lode_buf *small;
    uint8_t *q = mem(1000);
    lode_buf_register(c, q, 1000, LODE_BUF_HOST, &small);
    is_int(lode_get(c, "bkt", "big", NULL, small, 0, &res), LODE_ERR_TOO_SMALL,
           "fan-out: object larger than the window");

    /* The fence: a frame for a finished window is dropped. */
    memset(p, 0xee, big + 1);
    rg.offset = 0;
    rg.length = 1000;
    is_int(lode_get(c, "bkt", "big", &go, b, 0, &res), 0, "fan-out: 1000 bytes");
    pthread_mutex_lock(&G.mu);
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof(junk));
    send_frames(&G.src[0], G.last_base, G.last_tag, 0, junk, sizeof(junk));
    pthread_mutex_unlock(&G.mu);
    usleep(200 * 1000);
    ok(same(p, 0, 1000), "fence: a late frame for the closed window changed nothing");

    /* Two windows at once on distinct memory, through the async calls. */
    struct done d = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    struct lode_range ranges[8];
    memset(p, 0xee, big + 1);
    for (int i = 0; i < 8; i++) {
        ranges[i] = (struct lode_range){(uint64_t)i * 300000, 300000};
        struct lode_get_opts ao = {.range = &ranges[i]};
        is_int(lode_get_async(c, "bkt", "big", &ao, b, (uint64_t)i * 300000, async_done, &d), 0,
               "async GET %d submitted", i);
    }
    for (int w = 0; w < 500; w++) {
        pthread_mutex_lock(&d.mu);
        int n = d.n;
        pthread_mutex_unlock(&d.mu);
        if (n == 8)
            break;
        usleep(10 * 1000);
    }
    ok(d.n == 8 && d.bad == 0, "async: 8 callbacks, all tcp and successful");
    ok(same(p, 0, 2400000), "async: every range landed where it belongs");

    lode_buf_deregister(small);
    lode_buf_deregister(b);
    lode_client_destroy(c);
    free(p);
    free(q);
}

/* One GET of range [5000, 5000+90000) of "big" in mode m; checks bytes and the fallback. */
static void fallback_case(enum mode m, enum lode_fallback want, const char *name)
{
    G.mode = m;
    lode_client *c = client(LODE_TRANSPORT_AUTO, 0, 400, NULL);
    uint8_t *p = mem(90000);
    lode_buf *b;
    lode_buf_register(c, p, 90000, LODE_BUF_HOST, &b);
    struct lode_range rg = {5000, 90000};
    struct lode_get_opts go = {.range = &rg};
    struct lode_result res;
    int rc = lode_get(c, "bkt", "big", &go, b, 0, &res);
    is_int(rc, 0, "%s: GET succeeds", name);
    ok(res.fell_back && res.fallback == want && res.transport == LODE_TRANSPORT_HTTP,
       "%s: fell back (%s: %s)", name, lode_fallback_name(res.fallback), res.message);
    ok(res.bytes == 90000 && res.offset == 5000 && same(p, 5000, 90000), "%s: right bytes", name);
    lode_buf_deregister(b);
    lode_client_destroy(c);
    free(p);
    G.mode = MODE_NORMAL;
}

static void test_fallbacks(void)
{
    fallback_case(MODE_DECLINE_BODY, LODE_FALLBACK_DECLINED, "decline with the body");
    int plain = G.plain_gets;
    fallback_case(MODE_DECLINE_501, LODE_FALLBACK_DECLINED, "decline 501");
    is_int(G.plain_gets, plain + 1, "decline 501: one plain GET followed");
    fallback_case(MODE_IGNORE, LODE_FALLBACK_NO_REPLY, "token ignored");
    fallback_case(MODE_REFUSE_400, LODE_FALLBACK_REFUSED, "token refused");
    fallback_case(MODE_LIE_BYTES, LODE_FALLBACK_DATA_PATH, "bytes never arrive");
    int sessions = G.sessions;
    fallback_case(MODE_NO_SESSION, LODE_FALLBACK_SESSION, "no sessions");
    is_int(G.sessions, sessions + 1, "no sessions: asked once");

    /* The negative answer is remembered: a second GET does not ask again. */
    G.mode = MODE_NO_SESSION;
    lode_client *c = client(LODE_TRANSPORT_TCP, 0, 2000, NULL);
    uint8_t *p = mem(100);
    lode_buf *b;
    lode_buf_register(c, p, 100, LODE_BUF_HOST, &b);
    struct lode_range rg = {0, 100};
    struct lode_get_opts go = {.range = &rg};
    struct lode_result res;
    sessions = G.sessions;
    lode_get(c, "bkt", "big", &go, b, 0, &res);
    lode_get(c, "bkt", "big", &go, b, 0, &res);
    ok(G.sessions == sessions + 1 && res.fallback == LODE_FALLBACK_SESSION && same(p, 0, 100),
       "no sessions: one session request for two GETs");
    lode_buf_deregister(b);
    lode_client_destroy(c);

    /* No fallback wanted. */
    G.mode = MODE_DECLINE_501;
    c = client(LODE_TRANSPORT_TCP, LODE_CLIENT_NO_FALLBACK, 2000, NULL);
    lode_buf_register(c, p, 100, LODE_BUF_HOST, &b);
    is_int(lode_get(c, "bkt", "big", &go, b, 0, &res), LODE_ERR_DECLINED,
           "no fallback: a decline is an error");
    ok(strstr(res.message, "RDMANotSupported") != NULL, "no fallback: message (%s)", res.message);
    lode_buf_deregister(b);
    lode_client_destroy(c);

    /* An inconsistent reply is an error, never a success. */
    G.mode = MODE_SHORT_SOURCES;
    c = client(LODE_TRANSPORT_TCP, 0, 2000, NULL);
    uint8_t *big = mem(300000);
    lode_buf_register(c, big, 300000, LODE_BUF_HOST, &b);
    rg.length = 300000;
    is_int(lode_get(c, "bkt", "big", &go, b, 0, &res), LODE_ERR_PROTOCOL,
           "sources short of the bytes transferred: protocol error");
    ok(res.bytes == 0, "protocol error: no bytes reported");
    lode_buf_deregister(b);
    lode_client_destroy(c);
    free(big);

    /* rc asked for, and the session lists no rc source (or no RDMA device is here): with
     * fallback, plain. */
    G.mode = MODE_NORMAL;
    c = client(LODE_TRANSPORT_RC, 0, 2000, NULL);
    lode_buf_register(c, p, 100, LODE_BUF_HOST, &b);
    rg.length = 100;
    is_int(lode_get(c, "bkt", "big", &go, b, 0, &res), 0, "rc: falls back");
    ok(res.fell_back && res.fallback == LODE_FALLBACK_UNAVAILABLE && same(p, 0, 100),
       "rc: unavailable, plain bytes");
    lode_buf_deregister(b);
    lode_client_destroy(c);
    free(p);
}

static void count_cb(void *ud, int status, const struct lode_result *res)
{
    int *n = ud;
    __atomic_add_fetch(&n[0], 1, __ATOMIC_SEQ_CST);
    if (status == LODE_ERR_CANCELED)
        __atomic_add_fetch(&n[1], 1, __ATOMIC_SEQ_CST);
}

static void test_async_lifecycle(void)
{
    G.mode = MODE_SLOW;
    struct lode_client_config cfg;
    lode_client_config_init(&cfg);
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%u", G.http.port);
    cfg.endpoint = ep;
    cfg.access_key = AK;
    cfg.secret_key = SK;
    cfg.transport = LODE_TRANSPORT_HTTP;
    cfg.async_threads = 1;
    lode_client *c;
    lode_client_create(&cfg, &c);
    uint8_t *p = mem(100);
    lode_buf *b;
    lode_buf_register(c, p, 100, LODE_BUF_HOST, &b);
    struct lode_range rg = {0, 10};
    struct lode_get_opts go = {.range = &rg};
    int counts[2] = {0, 0};
    for (int i = 0; i < 4; i++)
        lode_get_async(c, "bkt", "big", &go, b, (uint64_t)i * 10, count_cb, counts);
    is_int(lode_buf_deregister(b), -EBUSY, "deregister while requests use the buffer: EBUSY");
    usleep(100 * 1000);
    lode_client_destroy(c); /* one running, three queued */
    ok(counts[0] == 4, "destroy: every callback ran (%d)", counts[0]);
    ok(counts[1] >= 1 && counts[1] <= 3, "destroy: queued requests canceled (%d)", counts[1]);
    free(p);
    G.mode = MODE_NORMAL;
}

static void test_cuda_absent(void)
{
    lode_client *c = client(LODE_TRANSPORT_HTTP, 0, 2000, NULL);
    uint8_t x[16];
    lode_buf *b;
    int rc = lode_buf_register(c, x, sizeof(x), LODE_BUF_CUDA, &b);
    if (rc == LODE_ERR_NO_CUDA)
        ok(strstr(lode_last_error(), "CUDA") != NULL, "CUDA absent: LODE_ERR_NO_CUDA (%s)",
           lode_last_error());
    else
        ok(rc == -EINVAL, "CUDA present: host memory is refused as a device buffer (%d)", rc);
    lode_client_destroy(c);
}

int main(void)
{
    fgw_start();
    test_config();
    test_plain();
    test_fanout();
    test_fallbacks();
    test_async_lifecycle();
    test_cuda_absent();
    is_int(G.bad_sigs, 1, "every request but the wrong-secret one was signed correctly");
    fgw_stop();
    return tap_done();
}
