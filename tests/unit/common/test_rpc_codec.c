/* The RPC wire format without I/O: header encoding and validation, the incremental frame
 * reader under every way a stream can be split, handshake MACs, and the method table. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/buf.h"
#include "common/rpc_codec.h"
#include "common/rpc_internal.h"
#include "common/rpc_methods.h"
#include "tests/tap.h"

static struct cmn_rpc_header make_header(uint8_t kind, uint16_t method, uint64_t id,
                                         uint32_t body_len, uint32_t payload_len)
{
    struct cmn_rpc_header h;
    memset(&h, 0, sizeof(h));
    h.version = CMN_RPC_VERSION;
    h.kind = kind;
    h.method = method;
    h.request_id = id;
    h.body_len = body_len;
    h.payload_len = payload_len;
    return h;
}

static void test_header_round_trip(void)
{
    struct cmn_rpc_header h = make_header(CMN_RPC_RESPONSE, 0xBEEF, 0x0123456789ABCDEFull, 77, 99);
    h.flags = 0xA55A;
    h.status = LODE_ENOTLEADER;
    uint8_t raw[CMN_RPC_HEADER_SIZE];
    cmn_rpc_header_pack(&h, raw);
    static const uint8_t expect_prefix[] = {'L', 'O', 'D', 'E', 1, CMN_RPC_RESPONSE, 0xA5, 0x5A,
                                            0xBE, 0xEF, 0, 0, 0x01, 0x23, 0x45, 0x67,
                                            0x89, 0xAB, 0xCD, 0xEF};
    ok(memcmp(raw, expect_prefix, sizeof(expect_prefix)) == 0,
       "header bytes are big-endian in the documented layout");
    ok(raw[24] == 0 && raw[27] == 77 && raw[31] == 99, "lengths at offsets 24 and 28");

    struct cmn_rpc_header got;
    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(cmn_rpc_header_unpack(raw, 1000, &got, &err), 0, "packed header unpacks");
    ok(got.version == h.version && got.kind == h.kind && got.flags == h.flags &&
           got.method == h.method && got.request_id == h.request_id &&
           got.status == h.status && got.body_len == h.body_len &&
           got.payload_len == h.payload_len,
       "every field survives the round trip (negative status included)");
}

static int unpack_mutated(size_t off, uint8_t value, uint32_t max_frame, struct cmn_err *err)
{
    struct cmn_rpc_header h = make_header(CMN_RPC_REQUEST, 1, 5, 10, 20), got;
    uint8_t raw[CMN_RPC_HEADER_SIZE];
    cmn_rpc_header_pack(&h, raw);
    raw[off] = value;
    cmn_err_clear(err);
    return cmn_rpc_header_unpack(raw, max_frame, &got, err);
}

static void test_header_rejections(void)
{
    struct cmn_err err;
    is_int(unpack_mutated(0, 'X', 1000, &err), LODE_EBADMSG, "bad magic: LODE_EBADMSG");
    ok(strstr(err.msg, "magic") != NULL, "bad magic message names the magic (%s)", err.msg);
    is_int(unpack_mutated(3, 'F', 1000, &err), LODE_EBADMSG, "magic with one wrong byte rejected");

    is_int(unpack_mutated(4, 2, 1000, &err), LODE_EVERSION, "version 2: LODE_EVERSION");
    ok(strstr(err.msg, "version 2") != NULL, "version message names the version (%s)", err.msg);
    is_int(unpack_mutated(4, 0, 1000, &err), LODE_EVERSION, "version 0: LODE_EVERSION");

    is_int(unpack_mutated(5, 0, 1000, &err), LODE_EBADMSG, "kind 0: LODE_EBADMSG");
    is_int(unpack_mutated(5, 8, 1000, &err), LODE_EBADMSG, "kind 8: LODE_EBADMSG");
    ok(strstr(err.msg, "kind 8") != NULL, "kind message names the kind (%s)", err.msg);
    for (uint8_t k = CMN_RPC_HELLO; k <= CMN_RPC_PROTO_ERROR; k++)
        is_int(unpack_mutated(5, k, 1000, &err), 0, "kind %u accepted", k);

    is_int(unpack_mutated(10, 1, 1000, &err), LODE_EBADMSG, "reserved high byte set: rejected");
    is_int(unpack_mutated(11, 1, 1000, &err), LODE_EBADMSG, "reserved low byte set: rejected");
    ok(strstr(err.msg, "reserved") != NULL, "reserved message says so (%s)", err.msg);

    is_int(unpack_mutated(0, 'L', 30, &err), 0, "body + payload == max_frame is accepted");
    is_int(unpack_mutated(0, 'L', 29, &err), LODE_EFRAMETOOBIG,
           "body + payload one over max_frame: LODE_EFRAMETOOBIG");
    ok(strstr(err.msg, "29") != NULL, "oversize message names the limit (%s)", err.msg);

    /* Lengths whose sum overflows 32 bits must not wrap around into "small". */
    struct cmn_rpc_header h = make_header(CMN_RPC_REQUEST, 1, 1, 0xFFFFFFFFu, 2), got;
    uint8_t raw[CMN_RPC_HEADER_SIZE];
    cmn_rpc_header_pack(&h, raw);
    cmn_err_clear(&err);
    is_int(cmn_rpc_header_unpack(raw, CMN_RPC_DEFAULT_MAX_FRAME, &got, &err), LODE_EFRAMETOOBIG,
           "lengths that overflow 32 bits are rejected, not wrapped");
}

/* ---- reader ---------------------------------------------------------------------------- */

struct seen {
    struct cmn_buf log;          /* every frame: header bytes, body, payload */
    unsigned frames;
    unsigned stop_after;         /* return 1 after this many frames (0 = never) */
};

static int record_frame(void *data, const struct cmn_rpc_header *h, const uint8_t *body,
                        const uint8_t *payload)
{
    struct seen *s = data;
    uint8_t raw[CMN_RPC_HEADER_SIZE];
    cmn_rpc_header_pack(h, raw);
    cmn_buf_append(&s->log, raw, sizeof(raw));
    cmn_buf_append(&s->log, body, h->body_len);
    cmn_buf_append(&s->log, payload, h->payload_len);
    s->frames++;
    return s->stop_after && s->frames >= s->stop_after ? 1 : 0;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

/* A stream of frames with assorted sizes, including empty ones and one bigger than any
 * single read, with recognisable contents. */
static void build_stream(struct cmn_buf *stream, unsigned *n_frames)
{
    static const uint32_t sizes[][2] = {{0, 0}, {1, 0}, {0, 1}, {31, 33}, {200, 0},
                                        {0, 4096}, {70000, 3}, {5, 100000}, {64, 64}};
    *n_frames = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t bl = sizes[i][0], pl = sizes[i][1];
        uint8_t *body = malloc(bl + 1), *payload = malloc(pl + 1);
        for (uint32_t j = 0; j < bl; j++)
            body[j] = (uint8_t)(i * 31 + j);
        for (uint32_t j = 0; j < pl; j++)
            payload[j] = (uint8_t)(i * 17 + j * 7);
        struct cmn_rpc_header h =
            make_header(i % 2 ? CMN_RPC_REQUEST : CMN_RPC_RESPONSE, (uint16_t)(100 + i), i + 1,
                        bl, pl);
        h.status = i % 3 == 0 ? LODE_ENOKEY : 0;
        cmn_rpc_frame_append(stream, &h, body, payload);
        free(body);
        free(payload);
        (*n_frames)++;
    }
}

static void test_reader_splits(void)
{
    struct cmn_buf stream;
    cmn_buf_init(&stream);
    unsigned n_frames;
    build_stream(&stream, &n_frames);

    /* Whole stream at once: what the reader emits must be the stream itself. */
    struct cmn_rpc_reader r;
    struct seen whole = {0};
    cmn_rpc_reader_init(&r, 1u << 20);
    is_int(cmn_rpc_reader_feed(&r, stream.data, stream.len, record_frame, &whole), 0,
           "whole stream feeds cleanly");
    is_int(whole.frames, n_frames, "every frame delivered");
    ok(whole.log.len == stream.len && memcmp(whole.log.data, stream.data, stream.len) == 0,
       "frames reproduce the stream byte for byte");
    cmn_rpc_reader_free(&r);

    /* Byte by byte. */
    struct seen bytes = {0};
    cmn_rpc_reader_init(&r, 1u << 20);
    int rc = 0;
    for (size_t i = 0; i < stream.len && rc == 0; i++)
        rc = cmn_rpc_reader_feed(&r, stream.data + i, 1, record_frame, &bytes);
    is_int(rc, 0, "byte-by-byte feeding succeeds");
    ok(bytes.frames == n_frames && bytes.log.len == whole.log.len &&
           memcmp(bytes.log.data, whole.log.data, whole.log.len) == 0,
       "byte-by-byte gives identical frames");
    cmn_rpc_reader_free(&r);

    /* Random splits, several seeds. */
    int all_same = 1;
    for (int round = 0; round < 20; round++) {
        struct seen s = {0};
        cmn_rpc_reader_init(&r, 1u << 20);
        size_t off = 0;
        rc = 0;
        while (off < stream.len && rc == 0) {
            size_t n = 1 + rnd() % (round < 10 ? 64 : 40000);
            if (n > stream.len - off)
                n = stream.len - off;
            rc = cmn_rpc_reader_feed(&r, stream.data + off, n, record_frame, &s);
            off += n;
        }
        if (rc || s.frames != n_frames || s.log.len != whole.log.len ||
            memcmp(s.log.data, whole.log.data, whole.log.len) != 0)
            all_same = 0;
        cmn_rpc_reader_free(&r);
        cmn_buf_free(&s.log);
    }
    ok(all_same, "20 random splittings give identical frames");

    /* A callback that returns non-zero stops the feed and its value comes back. */
    struct seen stop = {.stop_after = 2};
    cmn_rpc_reader_init(&r, 1u << 20);
    is_int(cmn_rpc_reader_feed(&r, stream.data, stream.len, record_frame, &stop), 1,
           "callback's non-zero return is returned");
    is_int(stop.frames, 2, "feeding stopped after the callback asked");
    cmn_rpc_reader_free(&r);

    cmn_buf_free(&stop.log);
    cmn_buf_free(&bytes.log);
    cmn_buf_free(&whole.log);
    cmn_buf_free(&stream);
}

static void test_reader_errors(void)
{
    struct cmn_rpc_reader r;
    struct seen s = {0};
    struct cmn_buf stream;
    cmn_buf_init(&stream);
    struct cmn_rpc_header good = make_header(CMN_RPC_REQUEST, 1, 1, 3, 0);
    cmn_rpc_frame_append(&stream, &good, "abc", NULL);
    size_t bad_at = stream.len;
    cmn_rpc_frame_append(&stream, &good, "def", NULL);
    stream.data[bad_at] = 'X';

    cmn_rpc_reader_init(&r, 1024);
    is_int(cmn_rpc_reader_feed(&r, stream.data, stream.len, record_frame, &s), LODE_EBADMSG,
           "bad magic in the second frame fails the feed");
    is_int(s.frames, 1, "the good frame before it was delivered");
    ok(r.dead && strstr(r.err.msg, "magic"), "reader is dead and says why (%s)", r.err.msg);
    is_int(cmn_rpc_reader_feed(&r, (const uint8_t *)"LODE", 4, record_frame, &s), LODE_EBADMSG,
           "a dead reader keeps failing");
    cmn_rpc_reader_free(&r);

    /* Oversized announcement fails as soon as the header is complete, before any body. */
    struct cmn_rpc_header big = make_header(CMN_RPC_REQUEST, 1, 1, 2000, 0);
    uint8_t raw[CMN_RPC_HEADER_SIZE];
    cmn_rpc_header_pack(&big, raw);
    cmn_rpc_reader_init(&r, 1024);
    is_int(cmn_rpc_reader_feed(&r, raw, sizeof(raw) - 1, record_frame, &s), 0,
           "incomplete header is just buffered");
    is_int(cmn_rpc_reader_feed(&r, raw + sizeof(raw) - 1, 1, record_frame, &s),
           LODE_EFRAMETOOBIG, "oversize detected on the header's last byte");
    ok(r.frame.cap == 0, "nothing was allocated for the oversized frame");
    cmn_rpc_reader_free(&r);

    /* Growth follows the bytes that arrive, not the announced length. */
    struct cmn_rpc_header large = make_header(CMN_RPC_REQUEST, 1, 1, 8u << 20, 0);
    cmn_rpc_header_pack(&large, raw);
    cmn_rpc_reader_init(&r, 16u << 20);
    cmn_rpc_reader_feed(&r, raw, sizeof(raw), record_frame, &s);
    cmn_rpc_reader_feed(&r, (const uint8_t *)"0123456789", 10, record_frame, &s);
    ok(r.frame.cap < (1u << 20), "an announced 8 MiB frame with 10 bytes sent holds %zu bytes",
       r.frame.cap);
    cmn_rpc_reader_free(&r);

    cmn_buf_free(&s.log);
    cmn_buf_free(&stream);
}

static int check_payload_frame(void *data, const struct cmn_rpc_header *h, const uint8_t *body,
                               const uint8_t *payload)
{
    int *okp = data;
    *okp = h->kind == CMN_RPC_REQUEST && h->body_len == 5 && h->payload_len == 7 &&
           memcmp(body, "hello", 5) == 0 && memcmp(payload, "payload", 7) == 0;
    return 0;
}

static void test_frame_with_payload(void)
{
    struct cmn_buf f;
    cmn_buf_init(&f);
    struct cmn_rpc_header h = make_header(CMN_RPC_REQUEST, 160, 9, 5, 7);
    is_int(cmn_rpc_frame_append(&f, &h, "hello", "payload"), 0, "frame with payload appended");
    is_int(f.len, CMN_RPC_HEADER_SIZE + 12, "frame size is header + body + payload");
    ok(memcmp(f.data + CMN_RPC_HEADER_SIZE, "hellopayload", 12) == 0,
       "body comes before payload");
    int good = 0;
    struct cmn_rpc_reader r;
    cmn_rpc_reader_init(&r, 0);
    cmn_rpc_reader_feed(&r, f.data, f.len, check_payload_frame, &good);
    ok(good, "reader splits body and payload");
    cmn_rpc_reader_free(&r);
    size_t before = f.len;
    is_int(cmn_rpc_frame_append(&f, &h, NULL, "payload"), -EINVAL,
           "missing body with body_len > 0 is refused");
    is_int(f.len, before, "refused append leaves the buffer alone");
    cmn_buf_free(&f);
}

static void test_auth_mac(void)
{
    uint8_t sn[CMN_RPC_NONCE_SIZE], cn[CMN_RPC_NONCE_SIZE];
    for (int i = 0; i < CMN_RPC_NONCE_SIZE; i++) {
        sn[i] = (uint8_t)i;
        cn[i] = (uint8_t)(255 - i);
    }
    const char *secret = "cluster-secret";
    uint8_t c1[CMN_HMAC_SIZE], c2[CMN_HMAC_SIZE], s1[CMN_HMAC_SIZE], x[CMN_HMAC_SIZE];
    is_int(cmn_rpc_auth_mac(secret, strlen(secret), 0, sn, cn, c1), 0, "client MAC computed");
    cmn_rpc_auth_mac(secret, strlen(secret), 0, sn, cn, c2);
    ok(memcmp(c1, c2, sizeof(c1)) == 0, "MAC is deterministic");
    cmn_rpc_auth_mac(secret, strlen(secret), 1, sn, cn, s1);
    ok(memcmp(c1, s1, sizeof(c1)) != 0, "client and server MACs differ");

    uint8_t sn2[CMN_RPC_NONCE_SIZE];
    memcpy(sn2, sn, sizeof(sn));
    sn2[31] ^= 1;
    cmn_rpc_auth_mac(secret, strlen(secret), 0, sn2, cn, x);
    ok(memcmp(c1, x, sizeof(x)) != 0, "MAC depends on the server nonce");
    uint8_t cn2[CMN_RPC_NONCE_SIZE];
    memcpy(cn2, cn, sizeof(cn));
    cn2[0] ^= 0x80;
    cmn_rpc_auth_mac(secret, strlen(secret), 0, sn, cn2, x);
    ok(memcmp(c1, x, sizeof(x)) != 0, "MAC depends on the client nonce");
    cmn_rpc_auth_mac(secret, strlen(secret), 0, cn, sn, x);
    ok(memcmp(c1, x, sizeof(x)) != 0, "swapping the nonces changes the MAC");
    cmn_rpc_auth_mac("cluster-secreT", strlen(secret), 0, sn, cn, x);
    ok(memcmp(c1, x, sizeof(x)) != 0, "MAC depends on the secret");
}

static void test_error_pack(void)
{
    struct cmn_buf b;
    cmn_buf_init(&b);
    is_int(cmn_rpc_error_pack(&b, "not the leader", "10.0.0.2:7100", 3), 0, "RpcError packed");
    Lode__RpcError *e = lode__rpc_error__unpack(NULL, b.len, b.data);
    ok(e && strcmp(e->message, "not the leader") == 0 &&
           strcmp(e->leader_address, "10.0.0.2:7100") == 0 && e->leader_id == 3,
       "RpcError round-trips");
    if (e)
        lode__rpc_error__free_unpacked(e, NULL);
    cmn_buf_free(&b);
}

static void test_methods(void)
{
    is_str(cmn_rpc_method_name(CMN_RPC_PING), "PING", "method 1 is PING");
    is_str(cmn_rpc_method_name(160), "OBJECT_PUT", "method 160 is OBJECT_PUT");
    ok(cmn_rpc_method_name(0) == NULL && cmn_rpc_method_name(2) == NULL &&
           cmn_rpc_method_name(65535) == NULL,
       "unknown numbers have no name");
    ok(cmn_rpc_method_request(CMN_RPC_OBJECT_PUT) == &lode__command__descriptor,
       "OBJECT_PUT takes a Command");
    ok(cmn_rpc_method_response(CMN_RPC_OBJECT_PUT) == &lode__command_result__descriptor,
       "OBJECT_PUT answers a CommandResult");
    ok(cmn_rpc_method_request(CMN_RPC_PING) == &lode__ping_request__descriptor &&
           cmn_rpc_method_response(CMN_RPC_PING) == &lode__ping_response__descriptor,
       "PING descriptors");
    ok(cmn_rpc_method_request(CMN_RPC_META_STATUS) == &lode__empty__descriptor,
       "META_STATUS takes Empty");
    ok(cmn_rpc_method_request(9999) == NULL && cmn_rpc_method_response(9999) == NULL,
       "unknown method has no descriptors");
    int every = 1;
#define CHECK_METHOD(name, num, req, resp)                                                  \
    if (!cmn_rpc_method_name(num) || strcmp(cmn_rpc_method_name(num), #name) != 0 ||       \
        cmn_rpc_method_request(num) != &lode__##req##__descriptor ||                        \
        cmn_rpc_method_response(num) != &lode__##resp##__descriptor)                        \
        every = 0;
    CMN_RPC_METHOD_MAP(CHECK_METHOD)
#undef CHECK_METHOD
    ok(every, "every method in the table resolves to its name and descriptors");
}

static void test_addr_split(void)
{
    char host[CMN_RPC_HOST_MAX], port[8];
    struct cmn_err err;
    is_int(cmn_rpc_addr_split("10.1.2.3:7100", host, port, NULL), 0, "ipv4:port");
    ok(strcmp(host, "10.1.2.3") == 0 && strcmp(port, "7100") == 0, "split into host and port");
    is_int(cmn_rpc_addr_split("[::1]:80", host, port, NULL), 0, "[ipv6]:port");
    ok(strcmp(host, "::1") == 0 && strcmp(port, "80") == 0, "brackets removed");
    is_int(cmn_rpc_addr_split("meta-1.example:7100", host, port, NULL), 0, "name:port");
    is_int(cmn_rpc_addr_split(":7100", host, port, NULL), 0, "empty host allowed");
    ok(host[0] == '\0', "empty host is empty");
    cmn_err_clear(&err);
    is_int(cmn_rpc_addr_split("nohost", host, port, &err), LODE_ECONFIG, "missing port refused");
    ok(strstr(err.msg, "no port") != NULL, "message (%s)", err.msg);
    is_int(cmn_rpc_addr_split("h:70000", host, port, NULL), LODE_ECONFIG, "port > 65535 refused");
    is_int(cmn_rpc_addr_split("h:12a", host, port, NULL), LODE_ECONFIG, "non-numeric port refused");
    is_int(cmn_rpc_addr_split("h:", host, port, NULL), LODE_ECONFIG, "empty port refused");
    is_int(cmn_rpc_addr_split("[::1]80", host, port, NULL), LODE_ECONFIG, "bad bracket form refused");
    is_int(cmn_rpc_addr_split(NULL, host, port, NULL), LODE_ECONFIG, "NULL refused");
}

int main(void)
{
    test_addr_split();
    test_header_round_trip();
    test_header_rejections();
    test_reader_splits();
    test_reader_errors();
    test_frame_with_payload();
    test_auth_mac();
    test_error_pack();
    test_methods();
    return tap_done();
}
