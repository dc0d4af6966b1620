/* Fuzz target: the aws-chunked decoder (gateway/sigv4_stream.c), fed in random splits.
 *
 * Input: [mode][decoded length, 2 bytes little-endian][split seed] body...
 * mode % 4: 0 STREAMING-AWS4-HMAC-SHA256-PAYLOAD, 1 ...-TRAILER, 2 STREAMING-UNSIGNED-
 * PAYLOAD-TRAILER, 3 encode the body with the encoder (unsigned-trailer or signed by bit 2)
 * and decode it back, which must give the same bytes. The chain is fixed, so seeds written
 * with it verify and mutations reach deep states. Properties checked on every input: never
 * more payload than declared; a successful finish means exactly the declared length; the
 * result does not depend on how the body was split; errors carry a message. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/sigv4.h"
#include "gateway/sigv4_stream.h"
#include "tests/fuzz/fuzz.h"

static struct gw_sigv4_chain chain;
/* Announced trailers: one, or with bit 3 of the mode byte two. */
static const struct gw_str trailers_one = GW_STR("x-amz-checksum-crc32");
static const struct gw_str trailers_two = GW_STR("x-amz-checksum-crc32, x-amz-checksum-crc64nvme");

static void init_chain(void)
{
    if (chain.timestamp[0])
        return;
    static const char secret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    gw_sigv4_signing_key(secret, sizeof(secret) - 1, "20130524", "us-east-1", "s3", chain.key);
    memset(chain.seed, 0x4f, sizeof(chain.seed));
    strcpy(chain.timestamp, "20130524T000000Z");
    strcpy(chain.scope, "20130524/us-east-1/s3/aws4_request");
}

static const enum gw_sigv4_payload modes[3] = {
    GW_SIGV4_PAYLOAD_STREAMING,
    GW_SIGV4_PAYLOAD_STREAMING_TRAILER,
    GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
};

/* Encodes `data` in chunks of `chunk` bytes with a CRC32 trailer where the mode has them. */
static void encode(enum gw_sigv4_payload mode, const uint8_t *data, size_t n, size_t chunk,
                   struct cmn_buf *out)
{
    struct gw_chunked_enc e;
    if (gw_chunked_enc_init(&e, mode, &chain) != 0)
        __builtin_trap();
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        char line[GW_CHUNKED_ENC_LINE_MAX];
        size_t len;
        if (gw_chunked_enc_chunk(&e, data + off, k, line, &len) != 0 ||
            cmn_buf_append(out, line, len) || cmn_buf_append(out, data + off, k) ||
            cmn_buf_append(out, "\r\n", 2))
            __builtin_trap();
    }
    struct gw_header tr = {GW_STR("x-amz-checksum-crc32"), GW_STR("AAAAAA==")};
    bool has = mode != GW_SIGV4_PAYLOAD_STREAMING;
    if (gw_chunked_enc_finish(&e, &tr, has, out) != 0)
        __builtin_trap();
}

struct seed_buf {
    struct cmn_buf b;
};

static struct seed_buf seed_bufs[4];
static struct fuzz_seed seed_list[4];

static void make_seed(int i, uint8_t mode, size_t n, size_t chunk)
{
    uint8_t *data = malloc(n ? n : 1);
    for (size_t k = 0; k < n; k++)
        data[k] = (uint8_t)('a' + k % 26);
    struct cmn_buf *b = &seed_bufs[i].b;
    uint8_t hdr[4] = {mode, (uint8_t)(n & 0xff), (uint8_t)(n >> 8), 7};
    cmn_buf_append(b, hdr, 4);
    encode(modes[mode % 3], data, n, chunk, b);
    free(data);
    seed_list[i] = (struct fuzz_seed){b->data, b->len};
}

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    init_chain();
    if (!seed_list[0].data) {
        make_seed(0, 0, 8192 + 10, 8192);
        make_seed(1, 1, 20, 8192);
        make_seed(2, 2, 8192 * 2 + 5, 8192);
        make_seed(3, 3, 100, 8192);
    }
    *n = 4;
    return seed_list;
}

struct count {
    uint64_t n;
    uint8_t *copy;    /* where the payload goes when checked, or NULL */
    size_t cap;
};

static void sink(void *ud, const uint8_t *p, size_t n)
{
    struct count *c = ud;
    if (c->copy && c->n + n <= c->cap)
        memcpy(c->copy + c->n, p, n);
    c->n += n;
}

static size_t announced(const struct gw_chunked_cfg *cfg)
{
    if (cfg->trailer_names.n == 0)
        return 0;
    return 1 + (memchr(cfg->trailer_names.p, ',', cfg->trailer_names.n) != NULL);
}

/* Decodes body in pieces chosen by `seed` (0: whole). Returns the final status. */
static enum gw_s3_error decode(const struct gw_chunked_cfg *cfg, const uint8_t *body, size_t n,
                               unsigned seed, struct count *c)
{
    struct gw_chunked d;
    struct gw_sigv4_err e;
    enum gw_s3_error rc = gw_chunked_init(&d, cfg, &e);
    if (rc != GW_S3_OK)
        __builtin_trap();
    unsigned x = seed | 1;
    for (size_t i = 0; rc == GW_S3_OK && i < n;) {
        x = x * 1103515245u + 12345u;
        size_t k = seed ? 1 + (x >> 16) % 97 : n - i;
        if (k > n - i)
            k = n - i;
        rc = gw_chunked_feed(&d, body + i, k, sink, c, &e);
        i += k;
    }
    if (rc == GW_S3_OK)
        rc = gw_chunked_finish(&d, &e);
    if (rc != GW_S3_OK && (e.code != rc || !e.msg[0]))
        __builtin_trap();
    if (c->n > cfg->decoded_length || (rc == GW_S3_OK && c->n != cfg->decoded_length))
        __builtin_trap();
    if (rc == GW_S3_OK && gw_chunked_trailer_count(&d) != announced(cfg))
        __builtin_trap(); /* every announced trailer, and only those */
    gw_chunked_free(&d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_chain();
    if (size < 4)
        return 0;
    uint8_t mode = data[0];
    size_t len = (size_t)data[1] | (size_t)data[2] << 8;
    unsigned split = data[3];
    const uint8_t *body = data + 4;
    size_t n = size - 4;
    struct gw_chunked_cfg cfg = {.decoded_length = len,
                                 .trailer_names = (mode & 8) ? trailers_two : trailers_one};
    if (mode % 4 == 3) {
        /* Encode the body, then decode it: must round-trip exactly. */
        struct cmn_buf enc;
        cmn_buf_init(&enc);
        cfg.mode = (mode & 4) ? GW_SIGV4_PAYLOAD_STREAMING_TRAILER
                              : GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
        cfg.chain = &chain;
        cfg.decoded_length = n;
        cfg.trailer_names = trailers_one;
        size_t chunk = 8192 + (size_t)split * 13;
        encode(cfg.mode, body, n, chunk, &enc);
        struct count c = {0, malloc(n ? n : 1), n};
        if (decode(&cfg, enc.data, enc.len, split, &c) != GW_S3_OK || c.n != n ||
            memcmp(c.copy, body, n) != 0)
            __builtin_trap();
        free(c.copy);
        cmn_buf_free(&enc);
        return 0;
    }
    cfg.mode = modes[mode % 4];
    cfg.chain = &chain;
    if (cfg.mode == GW_SIGV4_PAYLOAD_STREAMING)
        cfg.trailer_names = (struct gw_str){NULL, 0};
    struct count whole = {0}, pieces = {0};
    enum gw_s3_error a = decode(&cfg, body, n, 0, &whole);
    enum gw_s3_error b = decode(&cfg, body, n, split, &pieces);
    /* How the body is split changes nothing (but how much of a bad chunk went out). */
    if (a != b || (a == GW_S3_OK && whole.n != pieces.n))
        __builtin_trap();
    return 0;
}
