/* Fuzz target: the RPC frame header parser and the incremental frame reader
 * (common/rpc_codec.c), the code every unauthenticated peer reaches first.
 *
 * Besides "no crash, no leak, no undefined behaviour", it checks two properties:
 *   - the reader delivers the same frames, and fails with the same code, however the
 *     stream is split (whole, byte by byte, and in chunks chosen by the input);
 *   - every delivered frame respects max_frame and re-encodes to the bytes it came from.
 * A violation aborts, which both the standalone driver and libFuzzer report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/rpc_codec.h"
#include "rpc.pb-c.h"
#include "tests/fuzz/fuzz.h"

#define MAX_FRAME 4096u

struct trace {
    struct cmn_buf bytes;        /* every delivered frame, re-encoded */
    unsigned frames;
    unsigned stop_at;            /* callback returns 1 at this frame (0 = never) */
};

static int on_frame(void *data, const struct cmn_rpc_header *h, const uint8_t *body,
                    const uint8_t *payload)
{
    struct trace *t = data;
    if ((uint64_t)h->body_len + h->payload_len > MAX_FRAME || !body || !payload)
        abort();
    if (cmn_rpc_frame_append(&t->bytes, h, body, payload) != 0)
        abort();
    /* Bodies of error frames are parsed by every peer: make the decoder see them too. */
    if (h->kind == CMN_RPC_PROTO_ERROR || h->kind == CMN_RPC_AUTH_FAIL ||
        (h->kind == CMN_RPC_RESPONSE && h->status != 0)) {
        Lode__RpcError *e = lode__rpc_error__unpack(NULL, h->body_len, body);
        if (e)
            lode__rpc_error__free_unpacked(e, NULL);
    }
    t->frames++;
    return t->stop_at && t->frames == t->stop_at ? 1 : 0;
}

/* Feeds data in chunks whose sizes come from `sizes` (cycled; 0 means the rest). */
static int feed(const uint8_t *data, size_t size, const uint8_t *sizes, size_t n_sizes,
                struct trace *t)
{
    struct cmn_rpc_reader r;
    cmn_rpc_reader_init(&r, MAX_FRAME);
    int rc = 0;
    size_t off = 0, k = 0;
    while (off < size && rc == 0) {
        size_t n = n_sizes ? sizes[k++ % n_sizes] : 0;
        if (n == 0 || n > size - off)
            n = size - off;
        rc = cmn_rpc_reader_feed(&r, data + off, n, on_frame, t);
        off += n;
    }
    if (rc < 0 && (!r.dead || r.err.code != rc || r.err.msg[0] == '\0'))
        abort();                 /* a failure must leave the reader dead, with a reason */
    cmn_rpc_reader_free(&r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= CMN_RPC_HEADER_SIZE) {
        struct cmn_rpc_header h;
        struct cmn_err err;
        cmn_err_clear(&err);
        int rc = cmn_rpc_header_unpack(data, MAX_FRAME, &h, &err);
        if (rc == 0) {
            uint8_t again[CMN_RPC_HEADER_SIZE];
            cmn_rpc_header_pack(&h, again);
            if (memcmp(again, data, CMN_RPC_HEADER_SIZE) != 0)
                abort();         /* an accepted header has exactly one encoding */
        } else if (err.code != rc || err.msg[0] == '\0') {
            abort();
        }
    }

    /* The first few bytes pick the chunk sizes; the whole input is the stream. */
    size_t n_sizes = size < 8 ? size : 8;
    struct trace whole = {.stop_at = 0}, bytes = {.stop_at = 0}, chunks = {.stop_at = 0};
    int rc_whole = feed(data, size, NULL, 0, &whole);
    static const uint8_t one[] = {1};
    int rc_bytes = feed(data, size, one, 1, &bytes);
    int rc_chunks = feed(data, size, data, n_sizes, &chunks);
    if (rc_whole != rc_bytes || rc_whole != rc_chunks || whole.frames != bytes.frames ||
        whole.frames != chunks.frames || whole.bytes.len != bytes.bytes.len ||
        whole.bytes.len != chunks.bytes.len ||
        (whole.bytes.len && (memcmp(whole.bytes.data, bytes.bytes.data, whole.bytes.len) ||
                             memcmp(whole.bytes.data, chunks.bytes.data, whole.bytes.len))))
        abort();
    /* Delivered frames are a prefix of the input, byte for byte. */
    if (whole.bytes.len > size || (whole.bytes.len && memcmp(whole.bytes.data, data,
                                                             whole.bytes.len)))
        abort();

    /* A callback that stops early: the reader returns its value. */
    if (whole.frames > 0) {
        struct trace stop = {.stop_at = 1};
        if (feed(data, size, NULL, 0, &stop) != 1 || stop.frames != 1)
            abort();
        cmn_buf_free(&stop.bytes);
    }
    cmn_buf_free(&whole.bytes);
    cmn_buf_free(&bytes.bytes);
    cmn_buf_free(&chunks.bytes);
    return 0;
}

/* Seeds: a handshake and a few requests and responses, as a real connection sends them. */
static uint8_t seed_stream[1024];
static struct fuzz_seed seeds[2];

static size_t build_seed(void)
{
    struct cmn_buf b;
    cmn_buf_init(&b);
    uint8_t nonce[CMN_RPC_NONCE_SIZE + CMN_HMAC_SIZE];
    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)(i * 7);
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_HELLO,
                               .body_len = CMN_RPC_NONCE_SIZE};
    cmn_rpc_frame_append(&b, &h, nonce, NULL);
    h.kind = CMN_RPC_AUTH;
    h.body_len = sizeof(nonce);
    cmn_rpc_frame_append(&b, &h, nonce, NULL);
    h = (struct cmn_rpc_header){.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                                .method = 1, .request_id = 1, .body_len = 3, .payload_len = 5};
    cmn_rpc_frame_append(&b, &h, "\x0a\x01x", "bytes");
    struct cmn_buf err;
    cmn_buf_init(&err);
    cmn_rpc_error_pack(&err, "not the leader", "127.0.0.1:7100", 2);
    h = (struct cmn_rpc_header){.version = CMN_RPC_VERSION, .kind = CMN_RPC_RESPONSE,
                                .method = 160, .request_id = 1, .status = -1001,
                                .body_len = (uint32_t)err.len};
    cmn_rpc_frame_append(&b, &h, err.data, NULL);
    h.kind = CMN_RPC_PROTO_ERROR;
    cmn_rpc_frame_append(&b, &h, err.data, NULL);
    size_t n = b.len < sizeof(seed_stream) ? b.len : sizeof(seed_stream);
    memcpy(seed_stream, b.data, n);
    cmn_buf_free(&err);
    cmn_buf_free(&b);
    return n;
}

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    size_t len = build_seed();
    seeds[0] = (struct fuzz_seed){seed_stream, len};
    seeds[1] = (struct fuzz_seed){seed_stream, CMN_RPC_HEADER_SIZE + CMN_RPC_NONCE_SIZE};
    *n = 2;
    return seeds;
}
