/* Hostile RPC input against a running lode-meta: malformed or unauthenticated traffic is
 * refused with a clear error (an error frame with a readable message, then a closed
 * connection, or an error response on a connection that stays usable), and after every
 * case a fresh authenticated client can still PING and commit. The replica must survive
 * all of it without logging a crash.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/conf.h"
#include "common/meta_client.h"
#include "common/rpc_codec.h"
#include "common/rpc_sync.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 5000
#define READ_MS 3000
#define BUCKET "hostile"

static struct tl_cluster *cl;
static unsigned commits;

/* ---- raw frames ---- */

struct frame {
    struct cmn_rpc_header h;
    uint8_t body[4096];
    size_t body_len;
};

static int read_full(int fd, void *buf, size_t len, uint32_t timeout_ms)
{
    uint8_t *p = buf;
    size_t got = 0;
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    while (got < len) {
        uint64_t now = cmn_mono_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return -ETIMEDOUT;
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ECONNRESET ? 0 : -errno;
        if (n == 0)
            return 0; /* closed */
        got += (size_t)n;
    }
    return 1;
}

/* 1: a frame, 0: the connection closed, < 0: timeout or error. */
static int read_frame(int fd, struct frame *f, uint32_t timeout_ms)
{
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    struct cmn_err err;
    int rc = read_full(fd, hdr, sizeof(hdr), timeout_ms);
    if (rc != 1)
        return rc;
    if (cmn_rpc_header_unpack(hdr, CMN_RPC_DEFAULT_MAX_FRAME, &f->h, &err) != 0) {
        diag("the server sent a bad header: %s", err.msg);
        return -EPROTO;
    }
    size_t total = (size_t)f->h.body_len + f->h.payload_len;
    if (total > sizeof(f->body))
        return -EMSGSIZE;
    rc = read_full(fd, f->body, total, timeout_ms);
    if (rc != 1)
        return rc == 0 ? -EPIPE : rc;
    f->body_len = f->h.body_len;
    return 1;
}

static int write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A TCP connection that has read the server's HELLO; -1 on failure. */
static int raw_open(void)
{
    char host[64];
    uint16_t port;
    if (cmn_addr_split(cl->r[0].rpc_addr, host, sizeof(host), &port) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct frame f;
    if (read_frame(fd, &f, READ_MS) != 1 || f.h.kind != CMN_RPC_HELLO ||
        f.body_len != CMN_RPC_NONCE_SIZE) {
        diag("no HELLO from the server");
        close(fd);
        return -1;
    }
    return fd;
}

static void header(uint8_t out[CMN_RPC_HEADER_SIZE], uint8_t kind, uint16_t method,
                   uint32_t body_len)
{
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = kind, .method = method,
                               .request_id = 7, .body_len = body_len};
    cmn_rpc_header_pack(&h, out);
}

/* Reads what the server says after an offence: an error frame (PROTO_ERROR or AUTH_FAIL,
 * status < 0, an RpcError with a message), then the end of the connection. Returns the
 * status, or 1 when the connection closed without an error frame, or 2 when it stayed open. */
static int expect_refusal(int fd, const char *what, int want_frame)
{
    struct frame f;
    int rc = read_frame(fd, &f, READ_MS);
    int status = 1;
    if (rc == 1) {
        Lode__RpcError *e = lode__rpc_error__unpack(NULL, f.body_len, f.body);
        int good = (f.h.kind == CMN_RPC_PROTO_ERROR || f.h.kind == CMN_RPC_AUTH_FAIL) &&
                   f.h.status < 0 && e && e->message && strlen(e->message) > 10;
        ok(good, "%s: error frame (kind %u, %s): \"%s\"", what, f.h.kind,
           lode_errname(f.h.status), e && e->message ? e->message : "(no message)");
        status = f.h.status;
        if (e)
            lode__rpc_error__free_unpacked(e, NULL);
        rc = read_frame(fd, &f, READ_MS);
        ok(rc == 0, "%s: then the server closes the connection", what);
    } else if (rc == 0) {
        ok(!want_frame, "%s: the connection is closed%s", what,
           want_frame ? " without an error frame" : "");
    } else {
        ok(0, "%s: neither an error frame nor a close within %d ms (%s)", what, READ_MS,
           strerror(-rc));
        status = 2;
    }
    close(fd);
    return status;
}

/* After each case: a fresh client PINGs and commits. */
static void service_ok(const char *after)
{
    struct cmn_rpc_result res;
    Lode__PingRequest ping = LODE__PING_REQUEST__INIT;
    struct cmn_meta_client *mc = NULL;
    struct tl_commit_result r;
    char key[64];
    cmn_rpc_result_init(&res);
    int rc = tl_call_at(cl, 0, CMN_RPC_PING, 0, &ping.base, T_MS, &res);
    cmn_rpc_result_free(&res);
    int rc2 =
        cmn_meta_client_create(cl->r[0].rpc_addr, cl->secret_text, cl->secret_len, &mc, NULL);
    if (rc2 == 0) {
        snprintf(key, sizeof(key), "after-%u", commits++);
        rc2 = tl_object_put(mc, BUCKET, key, commits, 0, false, T_MS, &r);
        cmn_meta_client_destroy(mc);
    }
    ok(rc == 0 && rc2 == 0, "after %s: a fresh client can PING (%s) and commit (%s)", after,
       lode_errname(rc), lode_errname(rc2));
}

/* ---- unauthenticated offences ---- */

static uint64_t rng_state;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void random_bytes_case(uint64_t seed, bool authenticated)
{
    uint8_t buf[4096];
    char what[96];
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t len = 64 + rng() % (sizeof(buf) - 64);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rng();
    snprintf(what, sizeof(what), "%zu random bytes (seed %llu)%s", len,
             (unsigned long long)seed, authenticated ? " after authentication" : "");
    if (!authenticated) {
        int fd = raw_open();
        if (fd < 0) {
            ok(0, "%s: connect", what);
            return;
        }
        write_all(fd, buf, len);
        expect_refusal(fd, what, 1);
    } else {
        struct cmn_rpc_sync *c = NULL;
        if (cmn_rpc_sync_connect(cl->r[0].rpc_addr, cl->secret_text, cl->secret_len, T_MS, &c,
                                 NULL) != 0) {
            ok(0, "%s: connect", what);
            return;
        }
        cmn_rpc_sync_send_raw(c, buf, len);
        expect_refusal(dup(cmn_rpc_sync_fd(c)), what, 1);
        cmn_rpc_sync_close(c);
    }
    service_ok(what);
}

static void header_case(const char *what, void (*mutate)(uint8_t *h), uint8_t kind,
                        uint32_t body_len, size_t send_body, int want_status)
{
    uint8_t frame[CMN_RPC_HEADER_SIZE + 256] = {0};
    int fd = raw_open();
    if (fd < 0) {
        ok(0, "%s: connect", what);
        return;
    }
    header(frame, kind, kind == CMN_RPC_REQUEST ? CMN_RPC_PING : 0, body_len);
    if (mutate)
        mutate(frame);
    for (size_t i = 0; i < send_body && i < 256; i++)
        frame[CMN_RPC_HEADER_SIZE + i] = (uint8_t)(i * 31 + 7);
    write_all(fd, frame, CMN_RPC_HEADER_SIZE + (send_body < 256 ? send_body : 256));
    int st = expect_refusal(fd, what, 1);
    if (want_status)
        is_int(st, want_status, "%s: status %s", what, lode_errname(want_status));
    service_ok(what);
}

static void bad_magic(uint8_t *h)
{
    memcpy(h, "XODE", 4);
}

static void bad_version(uint8_t *h)
{
    h[4] = 2;
}

static void bad_kind(uint8_t *h)
{
    h[5] = 99;
}

static void bad_reserved(uint8_t *h)
{
    h[10] = 0xAB;
}

static void huge_body(uint8_t *h)
{
    cmn_put_u32be(h + 24, 0xFFFFFFF0u);
}

/* Sends part of a frame and hangs up: nothing to read, the server must just cope. */
static void truncated_case(const char *what, size_t header_bytes, uint32_t body_len,
                           size_t body_bytes)
{
    uint8_t frame[CMN_RPC_HEADER_SIZE + 128] = {0};
    int fd = raw_open();
    if (fd < 0) {
        ok(0, "%s: connect", what);
        return;
    }
    header(frame, CMN_RPC_AUTH, 0, body_len);
    ok(write_all(fd, frame, header_bytes + body_bytes) == 0, "%s: sent %zu bytes and hung up",
       what, header_bytes + body_bytes);
    close(fd);
    service_ok(what);
}

static void wrong_secret_case(void)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    const char wrong[] = "this-is-not-the-cluster-secret-at-all";
    int rc = cmn_rpc_sync_connect(cl->r[0].rpc_addr, wrong, sizeof(wrong) - 1, T_MS, &c, &err);
    is_int(rc, LODE_EAUTH, "a client with the wrong secret is refused: %s", err.msg);
    ok(strstr(err.msg, "authentication failed") != NULL,
       "... with a message that says authentication failed");
    if (c)
        cmn_rpc_sync_close(c);
    service_ok("a wrong secret");
}

/* ---- authenticated offences ---- */

static struct cmn_rpc_sync *auth_connect(void)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    if (cmn_rpc_sync_connect(cl->r[0].rpc_addr, cl->secret_text, cl->secret_len, T_MS, &c,
                             &err) != 0)
        diag("connect: %s", err.msg);
    return c;
}

/* A REQUEST built by hand; the answer must be an error RESPONSE and the connection must
 * stay usable (a PING on it works afterwards). */
static void bad_request_case(const char *what, uint16_t method, const void *body,
                             size_t body_len, int want1, int want2)
{
    struct cmn_rpc_sync *c = auth_connect();
    if (!c) {
        ok(0, "%s: connect", what);
        return;
    }
    struct cmn_buf b = {0};
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .method = method, .request_id = 1000001,
                               .body_len = (uint32_t)body_len};
    cmn_rpc_frame_append(&b, &h, body, NULL);
    int rc = cmn_rpc_sync_send_raw(c, b.data, b.len);
    cmn_buf_free(&b);
    struct frame f;
    rc = rc == 0 ? read_frame(cmn_rpc_sync_fd(c), &f, READ_MS) : rc;
    Lode__RpcError *e = rc == 1 && f.h.status != 0
                            ? lode__rpc_error__unpack(NULL, f.body_len, f.body)
                            : NULL;
    ok(rc == 1 && f.h.kind == CMN_RPC_RESPONSE && f.h.request_id == 1000001 &&
           (f.h.status == want1 || f.h.status == want2),
       "%s: error response %s (want %s or %s)", what, rc == 1 ? lode_errname(f.h.status) : "-",
       lode_errname(want1), lode_errname(want2));
    ok(e && e->message && strlen(e->message) > 5, "%s: the error says why: \"%s\"", what,
       e && e->message ? e->message : "");
    if (e)
        lode__rpc_error__free_unpacked(e, NULL);

    struct cmn_rpc_result res;
    Lode__PingRequest ping = LODE__PING_REQUEST__INIT;
    cmn_rpc_result_init(&res);
    rc = cmn_rpc_sync_call(c, CMN_RPC_PING, 0, &ping.base, T_MS, &res);
    is_int(rc, 0, "%s: the same connection still serves a PING", what);
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    service_ok(what);
}

static void packed_command_case(const char *what, uint16_t method, Lode__Command *cmd)
{
    size_t n = lode__command__get_packed_size(cmd);
    uint8_t *buf = malloc(n ? n : 1);
    lode__command__pack(cmd, buf);
    bad_request_case(what, method, buf, n, LODE_EBADMSG, -EINVAL);
    free(buf);
}

static void mismatch_cases(void)
{
    /* OBJECT_PUT carrying a create_bucket: must not create the bucket. */
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
    Lode__BucketRecord b = LODE__BUCKET_RECORD__INIT;
    uint8_t client_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    b.name = (char *)"smuggled";
    cb.bucket = &b;
    cmd.version = 1;
    cmd.client_id.data = client_id;
    cmd.client_id.len = sizeof(client_id);
    cmd.seq = 1;
    cmd.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    cmd.create_bucket = &cb;
    packed_command_case("OBJECT_PUT carrying a create_bucket command", CMN_RPC_OBJECT_PUT, &cmd);

    struct cmn_rpc_result res;
    Lode__NameRequest nr = LODE__NAME_REQUEST__INIT;
    nr.name = (char *)"smuggled";
    cmn_rpc_result_init(&res);
    int rc = tl_call_at(cl, 0, CMN_RPC_BUCKET_HEAD, 0, &nr.base, T_MS, &res);
    is_int(rc, LODE_ENOBUCKET, "... and the bucket was not created");
    cmn_rpc_result_free(&res);

    Lode__Command none = LODE__COMMAND__INIT;
    none.version = 1;
    none.client_id.data = client_id;
    none.client_id.len = sizeof(client_id);
    none.seq = 2;
    packed_command_case("BUCKET_CREATE with a command without an operation",
                        CMN_RPC_BUCKET_CREATE, &none);
}

int main(void)
{
    struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
    struct cmn_err err;
    struct tl_commit_result r;
    unsigned leader;

    cmn_err_clear(&err);
    o.name = "test_meta_hostile";
    o.replicas = 1;
    if (tl_cluster_start(&o, &cl, &err) != 0)
        tap_bail("start: %s", err.msg);
    if (tl_cluster_wait_leader(cl, 15000, &leader) != 0)
        tap_bail("the replica did not become leader");
    if (tl_bucket_create(tl_cluster_client(cl), BUCKET, "", T_MS, &r) != 0)
        tap_bail("create bucket: %s", r.message);

    /* Connections that hang around doing nothing useful while the rest goes on. */
    int silent = raw_open();
    int half = raw_open();
    uint8_t partial[CMN_RPC_HEADER_SIZE];
    header(partial, CMN_RPC_AUTH, 0, 64);
    if (half >= 0)
        write_all(half, partial, 12);
    ok(silent >= 0 && half >= 0, "idle and half-sent connections are open");

    for (uint64_t seed = 1; seed <= 4; seed++)
        random_bytes_case(seed, false);
    header_case("bad magic", bad_magic, CMN_RPC_AUTH, 64, 64, LODE_EBADMSG);
    header_case("protocol version 2", bad_version, CMN_RPC_AUTH, 64, 64, LODE_EVERSION);
    header_case("unknown frame kind", bad_kind, CMN_RPC_AUTH, 0, 0, LODE_EBADMSG);
    header_case("non-zero reserved field", bad_reserved, CMN_RPC_AUTH, 0, 0, LODE_EBADMSG);
    header_case("body_len 0xFFFFFFF0", huge_body, CMN_RPC_AUTH, 0, 0, LODE_EFRAMETOOBIG);
    header_case("REQUEST before authentication", NULL, CMN_RPC_REQUEST, 0, 0, LODE_EAUTH);
    header_case("AUTH with a 10-byte body", NULL, CMN_RPC_AUTH, 10, 10, LODE_EBADMSG);
    header_case("AUTH with a forged MAC", NULL, CMN_RPC_AUTH, 64, 64, LODE_EAUTH);
    header_case("RESPONSE during the handshake", NULL, CMN_RPC_RESPONSE, 0, 0, LODE_EBADMSG);
    truncated_case("truncated header", 10, 64, 0);
    truncated_case("truncated body", CMN_RPC_HEADER_SIZE, 64, 20);
    wrong_secret_case();

    for (uint64_t seed = 11; seed <= 13; seed++)
        random_bytes_case(seed, true);
    {
        struct cmn_rpc_sync *c = auth_connect();
        uint8_t h[CMN_RPC_HEADER_SIZE];
        header(h, CMN_RPC_REQUEST, CMN_RPC_OBJECT_GET, 0);
        huge_body(h);
        if (c) {
            cmn_rpc_sync_send_raw(c, h, sizeof(h));
            int st = expect_refusal(dup(cmn_rpc_sync_fd(c)), "oversized frame after authentication",
                                    1);
            is_int(st, LODE_EFRAMETOOBIG, "... status EFRAMETOOBIG");
            cmn_rpc_sync_close(c);
        } else {
            ok(0, "connect");
        }
        service_ok("an oversized frame after authentication");
    }
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0x0a, 0xff, 0x01, 0x02, 0x12, 0x80, 0x80, 0x80};
    bad_request_case("OBJECT_GET with a garbage body", CMN_RPC_OBJECT_GET, garbage,
                     sizeof(garbage), LODE_EBADMSG, -EINVAL);
    bad_request_case("OBJECT_PUT with a garbage body", CMN_RPC_OBJECT_PUT, garbage,
                     sizeof(garbage), LODE_EBADMSG, -EINVAL);
    bad_request_case("META_ADD_VOTER with a garbage body", CMN_RPC_META_ADD_VOTER, garbage,
                     sizeof(garbage), LODE_EBADMSG, -EINVAL);
    bad_request_case("unknown method 4321", 4321, NULL, 0, LODE_ENOMETHOD, LODE_ENOMETHOD);
    mismatch_cases();

    /* A burst of junk connections at once. */
    int burst_ok = 0;
    for (int i = 0; i < 50; i++) {
        int fd = raw_open();
        if (fd < 0)
            continue;
        uint8_t junk[64];
        memset(junk, 'A' + i % 26, sizeof(junk));
        burst_ok += write_all(fd, junk, sizeof(junk)) == 0;
        close(fd);
    }
    is_int(burst_ok, 50, "50 junk connections in a row were accepted and sent junk");
    service_ok("a burst of junk connections");

    /* The idle connections did not block anything; close them now. */
    if (silent >= 0)
        close(silent);
    if (half >= 0)
        close(half);

    ok(tl_cluster_alive(cl, 0), "the replica is still running");
    is_int(tl_cluster_crash_count(cl), 0, "the replica logged no crash");

    int rc = tap_done();
    tl_cluster_destroy(cl, rc != 0);
    return rc;
}
