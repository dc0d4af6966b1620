/* Hostile and malformed input against a running lode-node: unauthenticated bytes, a wrong
 * secret, oversized frames, lying lengths and checksums, bad ids and ranges, unknown ids and
 * methods. Each must get a clear error (a status with a message, or a refused connection),
 * store nothing, and leave the node serving: after every case a fresh client PINGs and a
 * chunk stored at the start still reads back byte-identical.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/rpc_codec.h"
#include "common/rpc_sync.h"
#include "tests/lib/node_proc.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 5000
#define MAX_CHUNK (1u << 20) /* the node's max-chunk-size in this test */
#define KNOWN_LEN (200u * 1024 + 7)

static struct tl_node *node;
static uint8_t known_id[16];
static uint8_t *known_data;
static unsigned stored_ok;         /* chunks this test stored on purpose (known + extras) */

static struct cmn_rpc_sync *conn_or_bail(void)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    if (tl_node_connect(node, T_MS, &c, &err) != 0)
        tap_bail("connect to the node: %s", cmn_err_text(&err));
    return c;
}

/* After each case: the node runs, a fresh client can PING and read the known chunk. */
static void check_alive(const char *after)
{
    bool alive = tl_node_alive(node);
    int ping = alive ? tl_node_ping(node, T_MS) : LODE_ECLOSED;
    int get = -1, same = 0;
    if (ping == 0) {
        struct cmn_rpc_sync *c = conn_or_bail();
        struct cmn_rpc_result res;
        cmn_rpc_result_init(&res);
        get = tl_chunk_get(c, known_id, 16, 0, 0, T_MS, &res, NULL);
        same = get == 0 && res.payload.len == KNOWN_LEN &&
               memcmp(res.payload.data, known_data, KNOWN_LEN) == 0;
        cmn_rpc_result_free(&res);
        cmn_rpc_sync_close(c);
    }
    ok(alive && ping == 0 && same, "after %s: node up, PING answers, known chunk identical", after);
    if (!(alive && ping == 0 && same))
        diag("alive %d, ping %s, get %s, identical %d", alive, lode_errname(ping),
             lode_errname(get), same);
}

/* True when status is one of the wanted codes (list ends with 0) and a message came with it. */
static bool status_in(const struct cmn_rpc_result *res, const int *want)
{
    for (; *want; want++)
        if (res->status == *want)
            return res->message[0] != '\0';
    return false;
}

static void show(const char *what, const struct cmn_rpc_result *res)
{
    diag("%s: %s (%s)", what, lode_errname(res->status), res->message);
}

/* STAT of id: must be LODE_ENOCHUNK (nothing was stored). */
static void expect_absent(struct cmn_rpc_sync *c, const uint8_t id[16], const char *what)
{
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = tl_chunk_stat(c, id, 16, T_MS, &res, NULL);
    is_int(rc, LODE_ENOCHUNK, "%s: nothing stored (STAT -> LODE_ENOCHUNK)", what);
    cmn_rpc_result_free(&res);
}

/* ---- raw sockets ---- */

static int raw_connect(void)
{
    char host[64];
    const char *colon = strrchr(node->rpc_addr, ':');
    snprintf(host, sizeof(host), "%.*s", (int)(colon - node->rpc_addr), node->rpc_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Reads until the peer closes (1), or the timeout passes (0). */
static int drain_until_closed(int fd, uint32_t timeout_ms)
{
    uint64_t deadline = cmn_mono_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        uint64_t now = cmn_mono_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 1;
        if (r < 0 && errno != EINTR && errno != EAGAIN)
            return 1;
    }
}

static void case_random_bytes_unauthenticated(void)
{
    uint8_t junk[8192];
    cmn_random_bytes(junk, sizeof(junk));
    int fd = raw_connect();
    ok(fd >= 0, "random bytes: TCP connect");
    if (fd >= 0) {
        ssize_t w = send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
        (void)w;
        ok(drain_until_closed(fd, T_MS), "random bytes before the handshake: node closes the "
                                          "connection");
        close(fd);
    }
    check_alive("random bytes");
}

static void case_random_bytes_authenticated(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    uint8_t junk[4096];
    cmn_random_bytes(junk, sizeof(junk));
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = cmn_rpc_sync_send_raw(c, junk, sizeof(junk));
    if (rc == 0)
        rc = cmn_rpc_sync_recv(c, T_MS, &res);
    ok(rc != 0 && rc != LODE_ETIMEOUT,
       "random bytes after the handshake: error frame or closed connection (%s%s)",
       lode_errname(rc), tl_why(res.message));
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("random bytes after auth");
}

static void case_wrong_secret(void)
{
    struct cmn_rpc_sync *c = NULL;
    struct cmn_err err;
    cmn_err_clear(&err);
    char wrong[65];
    snprintf(wrong, sizeof(wrong), "%s", node->secret_text);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    int rc = cmn_rpc_sync_connect(node->rpc_addr, wrong, strlen(wrong), T_MS, &c, &err);
    is_int(rc, LODE_EAUTH, "wrong secret: LODE_EAUTH%s", tl_why(err.msg));
    if (rc == 0)
        cmn_rpc_sync_close(c);
    check_alive("wrong secret");
}

static void case_oversized_frame(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .method = CMN_RPC_CHUNK_PUT, .request_id = 99,
                               .body_len = 64, .payload_len = 0xFFFFFF00u};
    cmn_rpc_header_pack(&h, hdr);
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = cmn_rpc_sync_send_raw(c, hdr, sizeof(hdr));
    if (rc == 0)
        rc = cmn_rpc_sync_recv(c, T_MS, &res);
    ok(rc == LODE_EFRAMETOOBIG || rc == LODE_ECLOSED || rc == LODE_EBADMSG,
       "frame header announcing 4 GiB: refused (%s%s)", lode_errname(rc), tl_why(res.message));
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("an oversized frame");
}

static void case_lying_lengths(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    uint8_t *data = malloc(MAX_CHUNK + 1);
    tl_fill(data, MAX_CHUNK + 1, 42);
    static const int bad_len[] = {-EINVAL, LODE_EBADMSG, LODE_ETOOLARGE, 0};
    uint8_t id[16];

    /* The length field claims a terabyte; 4 KiB follow. */
    cmn_random_bytes(id, 16);
    tl_chunk_put_ex(c, id, 16, 1ull << 40, tl_xxh3(data, 4096), data, 4096, T_MS, &res);
    ok(status_in(&res, bad_len), "PUT with length 1 TiB and a 4 KiB payload: refused");
    show("  status", &res);
    expect_absent(c, id, "length 1 TiB");

    /* length one more, then one less, than the payload */
    cmn_random_bytes(id, 16);
    tl_chunk_put_ex(c, id, 16, 4097, tl_xxh3(data, 4096), data, 4096, T_MS, &res);
    ok(status_in(&res, bad_len), "PUT with length > payload length: refused");
    show("  status", &res);
    expect_absent(c, id, "length > payload");
    cmn_random_bytes(id, 16);
    tl_chunk_put_ex(c, id, 16, 4095, tl_xxh3(data, 4095), data, 4096, T_MS, &res);
    ok(status_in(&res, bad_len), "PUT with length < payload length: refused");
    show("  status", &res);
    expect_absent(c, id, "length < payload");

    /* a valid chunk one byte over max-chunk-size */
    cmn_random_bytes(id, 16);
    tl_chunk_put(c, id, data, MAX_CHUNK + 1, T_MS, &res);
    static const int too_large[] = {LODE_ETOOLARGE, 0};
    ok(status_in(&res, too_large), "PUT of max-chunk-size + 1 bytes: LODE_ETOOLARGE");
    show("  status", &res);
    expect_absent(c, id, "max-chunk-size + 1");

    /* exactly max-chunk-size is fine */
    cmn_random_bytes(id, 16);
    int rc = tl_chunk_put(c, id, data, MAX_CHUNK, T_MS, &res);
    is_int(rc, 0, "PUT of exactly max-chunk-size bytes is stored%s", tl_why(res.message));
    stored_ok += rc == 0;

    /* an empty chunk */
    cmn_random_bytes(id, 16);
    tl_chunk_put_ex(c, id, 16, 0, tl_xxh3(data, 0), NULL, 0, T_MS, &res);
    static const int empty[] = {-EINVAL, LODE_EBADMSG, 0};
    ok(status_in(&res, empty), "PUT of 0 bytes: refused");
    show("  status", &res);
    expect_absent(c, id, "0 bytes");

    free(data);
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("lying lengths");
}

static void case_bad_checksum(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    uint8_t data[65537], id[16];
    tl_fill(data, sizeof(data), 7);
    cmn_random_bytes(id, 16);
    tl_chunk_put_ex(c, id, 16, sizeof(data), tl_xxh3(data, sizeof(data)) ^ 1, data, sizeof(data),
                    T_MS, &res);
    static const int corrupt[] = {LODE_ECORRUPT, 0};
    ok(status_in(&res, corrupt), "PUT whose xxh3 does not match the data: LODE_ECORRUPT");
    show("  status", &res);
    expect_absent(c, id, "bad xxh3");
    int rc = tl_chunk_get(c, id, 16, 0, 0, T_MS, &res, NULL);
    is_int(rc, LODE_ENOCHUNK, "bad xxh3: GET -> LODE_ENOCHUNK");
    /* The same id with the right checksum is then accepted: the failed put left no trace. */
    rc = tl_chunk_put(c, id, data, sizeof(data), T_MS, &res);
    is_int(rc, 0, "the same id with the right checksum is then stored%s", tl_why(res.message));
    stored_ok += rc == 0;
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("a bad checksum");
}

static void case_bad_ids(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    uint8_t data[4096], id[17];
    tl_fill(data, sizeof(data), 9);
    cmn_random_bytes(id, sizeof(id));
    static const int bad_id[] = {LODE_EBADMSG, -EINVAL, 0};
    static const size_t lens[] = {15, 17, 0};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        size_t n = lens[k];
        tl_chunk_put_ex(c, id, n, sizeof(data), tl_xxh3(data, sizeof(data)), data, sizeof(data),
                        T_MS, &res);
        ok(status_in(&res, bad_id), "PUT with a %zu-byte chunk id: refused", n);
        show("  status", &res);
        tl_chunk_get(c, id, n, 0, 0, T_MS, &res, NULL);
        ok(status_in(&res, bad_id), "GET with a %zu-byte chunk id: refused", n);
        tl_chunk_stat(c, id, n, T_MS, &res, NULL);
        ok(status_in(&res, bad_id), "STAT with a %zu-byte chunk id: refused", n);
        tl_chunk_delete(c, id, n, T_MS, &res);
        ok(status_in(&res, bad_id), "DELETE with a %zu-byte chunk id: refused", n);
    }
    /* The first 16 bytes of the 17-byte id were never stored either. */
    expect_absent(c, id, "bad id lengths");
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("bad chunk ids");
}

static void case_bad_ranges(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    static const int einval[] = {-EINVAL, 0};
    const uint64_t L = KNOWN_LEN;
    struct {
        uint64_t off, len;
        const char *what;
    } bad[] = {
        {L + 1, 0, "offset beyond the end"},
        {L + 1, 10, "offset beyond the end, with a length"},
        {L, 1, "one byte past the end"},
        {0, L + 1, "length one more than the chunk"},
        {L - 10, 11, "range ending one byte past the end"},
        {10, UINT64_MAX - 5, "offset + length overflowing 64 bits"},
        {UINT64_MAX, 1, "offset 2^64-1"},
        {UINT64_MAX, 0, "offset 2^64-1, to the end"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        tl_chunk_get(c, known_id, 16, bad[k].off, bad[k].len, T_MS, &res, NULL);
        ok(status_in(&res, einval) && res.payload.len == 0, "GET %s: -EINVAL, no data",
           bad[k].what);
        if (res.status != -EINVAL)
            show("  status", &res);
    }
    /* Valid edges return exactly the bytes asked for. */
    struct {
        uint64_t off, len;
    } good[] = {{L - 10, 10}, {L - 1, 0}, {0, 1}, {65536, 65536}, {65535, 2}};
    for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++) {
        int rc = tl_chunk_get(c, known_id, 16, good[k].off, good[k].len, T_MS, &res, NULL);
        uint64_t want = good[k].len ? good[k].len : L - good[k].off;
        ok(rc == 0 && res.payload.len == want &&
               memcmp(res.payload.data, known_data + good[k].off, want) == 0,
           "GET offset %llu length %llu: exactly those bytes%s", (unsigned long long)good[k].off,
           (unsigned long long)good[k].len, tl_why(res.message));
    }
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("bad ranges");
}

static void case_unknown_ids_and_double_delete(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    uint8_t id[16];
    cmn_random_bytes(id, 16);
    static const int nochunk[] = {LODE_ENOCHUNK, 0};
    tl_chunk_get(c, id, 16, 0, 0, T_MS, &res, NULL);
    ok(status_in(&res, nochunk), "GET of an unknown id: LODE_ENOCHUNK");
    tl_chunk_get(c, id, 16, 5, 5, T_MS, &res, NULL);
    ok(status_in(&res, nochunk), "range GET of an unknown id: LODE_ENOCHUNK");
    tl_chunk_stat(c, id, 16, T_MS, &res, NULL);
    ok(status_in(&res, nochunk), "STAT of an unknown id: LODE_ENOCHUNK");
    tl_chunk_delete(c, id, 16, T_MS, &res);
    ok(status_in(&res, nochunk), "DELETE of an unknown id: LODE_ENOCHUNK");

    uint8_t data[3000];
    tl_fill(data, sizeof(data), 11);
    int rc = tl_chunk_put(c, id, data, sizeof(data), T_MS, &res);
    is_int(rc, 0, "PUT of a chunk to delete%s", tl_why(res.message));
    rc = tl_chunk_delete(c, id, 16, T_MS, &res);
    is_int(rc, 0, "first DELETE succeeds%s", tl_why(res.message));
    tl_chunk_delete(c, id, 16, T_MS, &res);
    ok(status_in(&res, nochunk), "second DELETE: LODE_ENOCHUNK");
    tl_chunk_get(c, id, 16, 0, 0, T_MS, &res, NULL);
    ok(status_in(&res, nochunk) && res.payload.len == 0, "GET after DELETE: LODE_ENOCHUNK");

    /* A second put under the known id must not replace or damage the stored chunk. */
    tl_fill(data, sizeof(data), 12);
    rc = tl_chunk_put(c, known_id, data, sizeof(data), T_MS, &res);
    ok(rc != 0 && res.message[0], "PUT under an id already stored (other data): refused (%s%s)",
       lode_errname(rc), tl_why(res.message));
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("unknown ids, double delete, id reuse");
}

static void case_bad_bodies_and_methods(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    /* A REQUEST frame whose body is not a ChunkPutRequest, with a payload. */
    uint8_t body[32], payload[100];
    memset(body, 0xff, sizeof(body));
    memset(payload, 0x5a, sizeof(payload));
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .method = CMN_RPC_CHUNK_PUT, .request_id = 1u << 30,
                               .body_len = sizeof(body), .payload_len = sizeof(payload)};
    struct cmn_buf f;
    cmn_buf_init(&f);
    cmn_rpc_frame_append(&f, &h, body, payload);
    int rc = cmn_rpc_sync_send_raw(c, f.data, f.len);
    if (rc == 0)
        rc = cmn_rpc_sync_recv(c, T_MS, &res);
    static const int badmsg[] = {LODE_EBADMSG, 0};
    ok(status_in(&res, badmsg), "CHUNK_PUT with an undecodable body: LODE_EBADMSG");
    show("  status", &res);
    cmn_buf_free(&f);
    cmn_rpc_sync_close(c);

    c = conn_or_bail();
    Lode__Empty e = LODE__EMPTY__INIT;
    static const int nomethod[] = {LODE_ENOMETHOD, 0};
    cmn_rpc_sync_call(c, 399, 0, &e.base, T_MS, &res);
    ok(status_in(&res, nomethod), "unknown method 399: LODE_ENOMETHOD");
    show("  status", &res);
    cmn_rpc_sync_call(c, CMN_RPC_BUCKET_LIST, 0, &e.base, T_MS, &res);
    ok(status_in(&res, nomethod), "a lode-meta method sent to the node: LODE_ENOMETHOD");
    show("  status", &res);
    /* The connection stays usable after error responses. */
    rc = tl_chunk_stat(c, known_id, 16, T_MS, &res, NULL);
    is_int(rc, 0, "the same connection still serves after error replies");
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("bad bodies and methods");
}

/* Nothing the hostile cases sent was stored, nothing is reported corrupt. */
static void check_nothing_changed(void)
{
    struct cmn_rpc_sync *c = conn_or_bail();
    uint8_t (*ids)[16] = NULL;
    size_t n = 0;
    struct cmn_err err;
    cmn_err_clear(&err);
    int rc = tl_chunk_list_all(c, 2, T_MS, &ids, NULL, &n, &err);
    is_int(rc, 0, "CHUNK_LIST (pages of 2)%s", tl_why(err.msg));
    is_int(n, stored_ok, "the node holds exactly the chunks stored on purpose");
    free(ids);
    Lode__NodeHealthResponse *h = NULL;
    rc = tl_node_health(c, T_MS, &h, &err);
    is_int(rc, 0, "NODE_HEALTH%s", tl_why(err.msg));
    if (h) {
        is_int(h->chunks, stored_ok, "health: chunk count");
        is_int(h->corrupt_chunks, 0, "health: no corrupt chunks");
        lode__node_health_response__free_unpacked(h, NULL);
    }
    cmn_rpc_sync_close(c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct cmn_err err;
    cmn_err_clear(&err);
    struct tl_cluster *meta = NULL;
    struct tl_cluster_options mo = TL_CLUSTER_OPTIONS_DEFAULT;
    mo.replicas = 1;
    mo.name = "nodehostile-meta";
    if (tl_cluster_start(&mo, &meta, &err) != 0)
        tap_bail("start lode-meta: %s", cmn_err_text(&err));
    struct tl_node_options o = TL_NODE_OPTIONS_DEFAULT;
    o.name = "nodehostile";
    o.meta = meta;
    o.max_chunk_size = "1MiB";
    if (tl_node_start(&o, &node, &err) != 0)
        tap_bail("start lode-node: %s", cmn_err_text(&err));

    known_data = malloc(KNOWN_LEN);
    tl_fill(known_data, KNOWN_LEN, 1);
    cmn_random_bytes(known_id, 16);
    struct cmn_rpc_sync *c = conn_or_bail();
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    int rc = tl_chunk_put(c, known_id, known_data, KNOWN_LEN, T_MS, &res);
    if (rc != 0)
        tap_bail("PUT of the known chunk: %s (%s)", lode_errname(rc), res.message);
    stored_ok = 1;
    cmn_rpc_result_free(&res);
    cmn_rpc_sync_close(c);
    check_alive("the first put");

    case_random_bytes_unauthenticated();
    case_random_bytes_authenticated();
    case_wrong_secret();
    case_oversized_frame();
    case_lying_lengths();
    case_bad_checksum();
    case_bad_ids();
    case_bad_ranges();
    case_unknown_ids_and_double_delete();
    case_bad_bodies_and_methods();
    check_nothing_changed();

    is_int(tl_node_crash_count(node), 0, "the node never crashed");
    free(known_data);
    int failed = tap_done();
    tl_node_destroy(node, failed != 0);
    tl_cluster_destroy(meta, failed != 0);
    return failed;
}
