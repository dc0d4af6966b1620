/* The aws-chunked decoder and encoder and the plain-body check (gateway/sigv4_stream.[ch])
 * against independently known answers:
 *  - the chunked upload example of the Amazon S3 API reference ("Transferring Payload in
 *    Multiple Chunks"): 65536 + 1024 bytes of 'a', seed and chunk signatures as published;
 *  - the same upload with a signed CRC32 trailer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER),
 *    computed at development time by a separate Python implementation of the spec
 *    (hashlib/hmac only) that first reproduced all four published signatures above:
 *      def chunk_sig(prev, data):
 *          sts = '\n'.join(['AWS4-HMAC-SHA256-PAYLOAD', ts, scope, prev, H(b''), H(data)])
 *          return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
 *      def trailer_sig(prev, trailers):
 *          canon = ''.join(f'{n}:{v}\n' for n, v in trailers)
 *          sts = '\n'.join(['AWS4-HMAC-SHA256-TRAILER', ts, scope, prev, H(canon.encode())])
 *          return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
 *      crc = base64.b64encode(zlib.crc32(data).to_bytes(4, 'big'))
 *    its request signed the headers content-encoding: aws-chunked, host: s3.amazonaws.com,
 *    x-amz-content-sha256, x-amz-date, x-amz-decoded-content-length: 66560 and
 *    x-amz-trailer: x-amz-checksum-crc32 (PUT /examplebucket/chunkObject.txt);
 *  - bodies written by botocore 1.43.11 (botocore.httpchecksum.AwsChunkedWrapper, the
 *    STREAMING-UNSIGNED-PAYLOAD-TRAILER encoder it uses for uploads over https):
 *      a put_object of b'0123456789' * 3, captured whole, and
 *      AwsChunkedWrapper(io.BytesIO(bytes((i * 31 + 7) & 0xff for i in range(20000))),
 *          checksum_cls=Crc32Checksum, checksum_name='x-amz-checksum-crc32',
 *          chunk_size=8192).read()   -> 20059 bytes, SHA-256 c4847eba...
 *  - a CRC64NVME value from a bitwise Python implementation (poly 0x9a6c9329ac4bc9b5,
 *    reflected, init and xor-out all ones; its check value for "123456789" is
 *    0xae8b14860a799888 as published).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hmac.h"
#include "common/id.h"
#include "gateway/sigv4.h"
#include "gateway/sigv4_stream.h"
#include "tests/tap.h"

#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define SIG1 "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
#define SIG2 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
#define SIG3 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
/* The signed-trailer variant (Python, see above). */
#define TSEED "25481098360f0f27e2950a350cb8b806cd50cf2a45d79f36b2b513501918aa51"
#define TSIG1 "6a93fa60bda47a3190481114ba2d8ac7a7dc7c6d1611364f70e5ee57272bb984"
#define TSIG2 "3f3338055c3c59c7e2b24358db085ff424f136eca18524cd43317adfa6308afc"
#define TSIG3 "699fa6206d82b16b7efcf607f6b5874ec5baf511eb7267b647190b2f8462f70f"
#define TSIG4 "f0c9a1d798b85aa44ad6f7e69abf3ec0bb6ba33966bbb996cd8d824a36473c92"
#define TCRC "sK4Y7A=="

static struct gw_sigv4_chain chain_of(const char *seed_hex)
{
    struct gw_sigv4_chain c;
    memset(&c, 0, sizeof(c));
    gw_sigv4_signing_key(SK, strlen(SK), "20130524", "us-east-1", "s3", c.key);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(seed_hex + 2 * i, "%2x", &v);
        c.seed[i] = (uint8_t)v;
    }
    strcpy(c.timestamp, "20130524T000000Z");
    strcpy(c.scope, "20130524/us-east-1/s3/aws4_request");
    return c;
}

/* A growable byte string for building bodies. */
struct body {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct body *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n);
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            tap_bail("out of memory");
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void puts_(struct body *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_fill(struct body *b, char c, size_t n)
{
    char *tmp = malloc(n);
    memset(tmp, c, n);
    put(b, tmp, n);
    free(tmp);
}

/* The published chunked body, built from the published signatures. */
static struct body published_body(void)
{
    struct body b = {0};
    puts_(&b, "10000;chunk-signature=" SIG1 "\r\n");
    put_fill(&b, 'a', 65536);
    puts_(&b, "\r\n400;chunk-signature=" SIG2 "\r\n");
    put_fill(&b, 'a', 1024);
    puts_(&b, "\r\n0;chunk-signature=" SIG3 "\r\n\r\n");
    return b;
}

static struct body trailer_body(const char *crc, const char *tsig)
{
    struct body b = {0};
    puts_(&b, "10000;chunk-signature=" TSIG1 "\r\n");
    put_fill(&b, 'a', 65536);
    puts_(&b, "\r\n400;chunk-signature=" TSIG2 "\r\n");
    put_fill(&b, 'a', 1024);
    puts_(&b, "\r\n0;chunk-signature=" TSIG3 "\r\nx-amz-checksum-crc32:");
    puts_(&b, crc);
    puts_(&b, "\r\nx-amz-trailer-signature:");
    puts_(&b, tsig);
    puts_(&b, "\r\n\r\n");
    return b;
}

/* What a decode produced. */
struct sink {
    struct body out;
    enum gw_s3_error rc;     /* of the first failing call, or of finish */
    struct gw_sigv4_err err;
};

static void collect(void *ud, const uint8_t *p, size_t n)
{
    put(&((struct sink *)ud)->out, p, n);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Decodes `b` fed in pieces: split 0 = whole, 1 = one byte at a time, 2 = random pieces. */
static struct sink run(const struct gw_chunked_cfg *cfg, const struct body *b, int split,
                       struct gw_chunked *keep)
{
    struct sink s;
    memset(&s, 0, sizeof(s));
    struct gw_chunked d;
    s.rc = gw_chunked_init(&d, cfg, &s.err);
    for (size_t i = 0; s.rc == GW_S3_OK && i < b->n;) {
        size_t n = split == 0 ? b->n - i : split == 1 ? 1 : 1 + rng() % 9000;
        if (n > b->n - i)
            n = b->n - i;
        s.rc = gw_chunked_feed(&d, b->p + i, n, collect, &s, &s.err);
        i += n;
    }
    if (s.rc == GW_S3_OK)
        s.rc = gw_chunked_finish(&d, &s.err);
    if (keep)
        *keep = d;
    else
        gw_chunked_free(&d);
    return s;
}

static bool all_a(const struct body *b, size_t n)
{
    if (b->n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (b->p[i] != 'a')
            return false;
    return true;
}

static void test_published(void)
{
    struct gw_sigv4_chain chain = chain_of(SEED);
    struct gw_chunked_cfg cfg = {.mode = GW_SIGV4_PAYLOAD_STREAMING, .chain = &chain,
                                 .decoded_length = 66560};
    struct body b = published_body();
    is_int(b.n, 66824, "the published body is 66824 bytes (its Content-Length)");
    static const char *const how[] = {"whole", "one byte at a time", "in random pieces"};
    for (int split = 0; split < 3; split++) {
        struct sink s = run(&cfg, &b, split, NULL);
        ok(s.rc == GW_S3_OK && all_a(&s.out, 66560), "published chunked body decoded %s: %s",
           how[split], s.rc ? s.err.msg : "66560 bytes of 'a'");
        free(s.out.p);
    }

    /* The encoder writes the published signatures. */
    struct gw_chunked_enc e;
    char line[GW_CHUNKED_ENC_LINE_MAX];
    size_t len;
    char *a = malloc(65536);
    memset(a, 'a', 65536);
    gw_chunked_enc_init(&e, GW_SIGV4_PAYLOAD_STREAMING, &chain);
    gw_chunked_enc_chunk(&e, a, 65536, line, &len);
    is_str(line, "10000;chunk-signature=" SIG1 "\r\n", "encoder: first chunk signature");
    gw_chunked_enc_chunk(&e, a, 1024, line, &len);
    is_str(line, "400;chunk-signature=" SIG2 "\r\n", "encoder: second chunk signature");
    struct cmn_buf tail;
    cmn_buf_init(&tail);
    gw_chunked_enc_finish(&e, NULL, 0, &tail);
    cmn_buf_terminate(&tail);
    is_str((char *)tail.data, "0;chunk-signature=" SIG3 "\r\n\r\n", "encoder: final chunk");
    cmn_buf_free(&tail);
    is_int(gw_chunked_encoded_length(GW_SIGV4_PAYLOAD_STREAMING, 66560, 65536, NULL, 0), 66824,
           "encoded length 66824");
    free(a);

    /* Backpressure: one call hands out at most one slice and says how far it got. */
    struct gw_chunked d;
    gw_chunked_init(&d, &cfg, NULL);
    size_t used;
    struct gw_str out;
    ok(gw_chunked_decode(&d, b.p, b.n, &used, &out, NULL) == GW_S3_OK && out.n == 65536 &&
           used == 88 + 65536 && out.p == (const char *)b.p + 88,
       "a call stops after one slice of payload, pointing into the input");
    ok(gw_chunked_decode(&d, b.p + used, b.n - used, &used, &out, NULL) == GW_S3_OK &&
           out.n == 1024 && gw_chunked_decoded(&d) == 66560,
       "the next call gives the next chunk");
    ok(!gw_chunked_done(&d) && gw_chunked_finish(&d, NULL) == GW_S3_INCOMPLETE_BODY,
       "not done before the final chunk");
    gw_chunked_free(&d);
    gw_chunked_free(&d);
    ok(sizeof(struct gw_chunked) < 8192, "decoder state is %zu bytes whatever the body",
       sizeof(struct gw_chunked));
    free(b.p);
}

static void test_signed_trailer(void)
{
    /* The request of the signed-trailer vector verifies with its seed. */
    struct gw_header hs[] = {
        {GW_STR("Host"), GW_STR("s3.amazonaws.com")},
        {GW_STR("x-amz-date"), GW_STR("20130524T000000Z")},
        {GW_STR("Content-Encoding"), GW_STR("aws-chunked")},
        {GW_STR("x-amz-content-sha256"), GW_STR("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")},
        {GW_STR("x-amz-decoded-content-length"), GW_STR("66560")},
        {GW_STR("x-amz-trailer"), GW_STR("x-amz-checksum-crc32")},
        {GW_STR("Authorization"),
         GW_STR("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                "aws4_request,SignedHeaders=content-encoding;host;x-amz-content-sha256;"
                "x-amz-date;x-amz-decoded-content-length;x-amz-trailer,Signature=" TSEED)},
    };
    struct gw_request_head h = {.method = GW_STR("PUT"),
                                .path = GW_STR("/examplebucket/chunkObject.txt"),
                                .headers = hs, .n_headers = 7};
    struct gw_sigv4_auth a;
    struct gw_sigv4_policy pol = {.region = "us-east-1", .now = 1369353600};
    uint8_t key[32];
    struct gw_sigv4_chain chain;
    struct gw_chunked_cfg cfg;
    ok(gw_sigv4_parse(&h, &pol, &a, NULL) == GW_S3_OK &&
           gw_sigv4_signing_key(SK, strlen(SK), a.date, a.region, a.service, key) == 0 &&
           gw_sigv4_verify(&h, &a, key, NULL) == GW_S3_OK,
       "signed-trailer request: seed signature verifies");
    gw_sigv4_chain_init(&chain, &a, key);
    ok(gw_chunked_cfg_from_request(&h, &a, &chain, &cfg, NULL) == GW_S3_OK &&
           cfg.mode == GW_SIGV4_PAYLOAD_STREAMING_TRAILER && cfg.decoded_length == 66560,
       "decoder configuration from the request");

    struct body b = trailer_body(TCRC, TSIG4);
    uint8_t digest[32];
    char hex[65];
    cmn_sha256(b.p, b.n, digest);
    cmn_hex_encode(digest, 32, hex);
    ok(b.n == 66945 && strcmp(hex, "e8e4488e663aa26ad892ab23aefd86508958d3f4f41b68ca89c6c74b0c523420") == 0,
       "the test body is the Python one");
    for (int split = 0; split < 3; split++) {
        struct gw_chunked d;
        struct sink s = run(&cfg, &b, split, &d);
        ok(s.rc == GW_S3_OK && all_a(&s.out, 66560) && gw_chunked_done(&d) &&
               gw_chunked_trailer_count(&d) == 1 &&
               strcmp(gw_chunked_trailer(&d, "X-Amz-Checksum-CRC32"), TCRC) == 0 &&
               strcmp(gw_chunked_trailer_at(&d, 0)->name, "x-amz-checksum-crc32") == 0 &&
               !gw_chunked_trailer(&d, "x-amz-trailer-signature"),
           "signed trailer body (split %d): data and trailer x-amz-checksum-crc32=%s", split,
           s.rc ? s.err.msg : gw_chunked_trailer(&d, "x-amz-checksum-crc32"));
        gw_chunked_free(&d);
        free(s.out.p);
    }

    /* The encoder writes the same bytes. */
    struct gw_chunked_enc e;
    struct body enc = {0};
    char line[GW_CHUNKED_ENC_LINE_MAX];
    size_t len;
    char *a65 = malloc(65536);
    memset(a65, 'a', 65536);
    gw_chunked_enc_init(&e, GW_SIGV4_PAYLOAD_STREAMING_TRAILER, &chain);
    gw_chunked_enc_chunk(&e, a65, 65536, line, &len);
    put(&enc, line, len);
    put(&enc, a65, 65536);
    puts_(&enc, "\r\n");
    gw_chunked_enc_chunk(&e, a65, 1024, line, &len);
    put(&enc, line, len);
    put(&enc, a65, 1024);
    puts_(&enc, "\r\n");
    struct gw_header tr = {GW_STR("x-amz-checksum-crc32"), GW_STR(TCRC)};
    struct cmn_buf tail;
    cmn_buf_init(&tail);
    gw_chunked_enc_finish(&e, &tr, 1, &tail);
    put(&enc, tail.data, tail.len);
    ok(enc.n == b.n && memcmp(enc.p, b.p, b.n) == 0, "the encoder writes the Python body");
    is_int(gw_chunked_encoded_length(GW_SIGV4_PAYLOAD_STREAMING_TRAILER, 66560, 65536, &tr, 1),
           66945, "and its length");
    cmn_buf_free(&tail);
    free(enc.p);
    free(a65);
    free(b.p);

    /* A changed checksum or trailer signature is caught. */
    b = trailer_body("sK4Y7B==", TSIG4);
    struct sink s = run(&cfg, &b, 0, NULL);
    is_int(s.rc, GW_S3_SIGNATURE_DOES_NOT_MATCH, "a trailer value changed after signing");
    free(s.out.p);
    free(b.p);
    b = trailer_body(TCRC, "f0c9a1d798b85aa44ad6f7e69abf3ec0bb6ba33966bbb996cd8d824a36473c93");
    s = run(&cfg, &b, 1, NULL);
    is_int(s.rc, GW_S3_SIGNATURE_DOES_NOT_MATCH, "a wrong trailer signature (%s)", s.err.msg);
    free(s.out.p);
    free(b.p);
}

static void test_unsigned_trailer(void)
{
    static const char boto[] = "1e\r\n012345678901234567890123456789\r\n0\r\n"
                               "x-amz-checksum-crc32:LVwHlA==\r\n\r\n";
    struct gw_chunked_cfg cfg = {.mode = GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
                                 .decoded_length = 30,
                                 .trailer_names = GW_STR("x-amz-checksum-crc32")};
    struct body b = {0};
    puts_(&b, boto);
    for (int split = 0; split < 3; split++) {
        struct gw_chunked d;
        struct sink s = run(&cfg, &b, split, &d);
        ok(s.rc == GW_S3_OK && s.out.n == 30 && memcmp(s.out.p, boto + 4, 30) == 0 &&
               strcmp(gw_chunked_trailer(&d, "x-amz-checksum-crc32"), "LVwHlA==") == 0,
           "botocore PutObject body with a CRC32 trailer (split %d) %s", split, s.err.msg);
        gw_chunked_free(&d);
        free(s.out.p);
    }
    free(b.p);

    /* Three chunks, as AwsChunkedWrapper(chunk_size=8192) writes them: the encoder gives the
     * same bytes and the decoder takes them. */
    enum { N = 20000 };
    uint8_t *data = malloc(N);
    for (size_t i = 0; i < N; i++)
        data[i] = (uint8_t)((i * 31 + 7) & 0xff);
    struct gw_chunked_enc e;
    struct body enc = {0};
    char line[GW_CHUNKED_ENC_LINE_MAX];
    size_t len;
    gw_chunked_enc_init(&e, GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER, NULL);
    for (size_t off = 0; off < N; off += 8192) {
        size_t n = N - off < 8192 ? N - off : 8192;
        gw_chunked_enc_chunk(&e, data + off, n, line, &len);
        put(&enc, line, len);
        put(&enc, data + off, n);
        puts_(&enc, "\r\n");
    }
    struct gw_header tr = {GW_STR("x-amz-checksum-crc32"), GW_STR("r4QSYw==")};
    struct cmn_buf tail;
    cmn_buf_init(&tail);
    gw_chunked_enc_finish(&e, &tr, 1, &tail);
    put(&enc, tail.data, tail.len);
    cmn_buf_free(&tail);
    uint8_t digest[32];
    char hex[65];
    cmn_sha256(enc.p, enc.n, digest);
    cmn_hex_encode(digest, 32, hex);
    ok(enc.n == 20059 && strcmp(hex, "c4847ebaf05471513b9669b7abc998702c2eaa2415501e5bd3ed96f40c0b63f7") == 0,
       "encoder output equals botocore's AwsChunkedWrapper (%zu bytes, %s)", enc.n, hex);
    is_int(gw_chunked_encoded_length(GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER, N, 8192, &tr, 1),
           20059, "encoded length");
    cfg.decoded_length = N;
    struct sink s = run(&cfg, &enc, 2, NULL);
    ok(s.rc == GW_S3_OK && s.out.n == N && memcmp(s.out.p, data, N) == 0,
       "and the decoder takes it back");
    free(s.out.p);
    free(enc.p);

    /* CRC64NVME, as the JavaScript SDK v3 sends it by default, and blanks around ':' (which
     * S3 accepts), with an extension on a size line (meaningless when unsigned). */
    b = (struct body){0};
    puts_(&b, "2710;ext=1\r\n");
    put(&b, data, 10000);
    puts_(&b, "\r\n0\r\nX-Amz-Checksum-Crc64nvme : qHSTB8mqfm4=\r\n\r\n");
    for (size_t i = 0; i < 10000; i++)
        data[i] = (uint8_t)((i * 7 + 3) & 0xff);
    memcpy(b.p + 12, data, 10000);
    cfg.decoded_length = 10000;
    cfg.trailer_names = GW_STR("x-amz-checksum-crc64nvme");
    struct gw_chunked d;
    s = run(&cfg, &b, 1, &d);
    ok(s.rc == GW_S3_OK && s.out.n == 10000 && memcmp(s.out.p, data, 10000) == 0 &&
           gw_chunked_trailer(&d, "x-amz-checksum-crc64nvme") &&
           strcmp(gw_chunked_trailer(&d, "x-amz-checksum-crc64nvme"), "qHSTB8mqfm4=") == 0,
       "CRC64NVME trailer with blanks around ':' (%s)", s.err.msg);
    gw_chunked_free(&d);
    free(s.out.p);
    free(b.p);
    free(data);
}

/* Runs a hand-written body through a decoder; returns the error (or OK) and its message. */
static enum gw_s3_error try_body(const struct gw_chunked_cfg *cfg, const char *text, size_t n,
                                 struct sink *out)
{
    struct body b = {0};
    put(&b, text, n);
    *out = run(cfg, &b, 0, NULL);
    free(out->out.p);
    out->out = (struct body){0};
    free(b.p);
    return out->rc;
}

static void test_negative(void)
{
    struct gw_sigv4_chain chain = chain_of(SEED);
    struct gw_chunked_cfg cfg = {.mode = GW_SIGV4_PAYLOAD_STREAMING, .chain = &chain,
                                 .decoded_length = 66560};
    struct body good = published_body();
    struct sink s;

    /* Bad chunk signatures. */
    struct body b = published_body();
    b.p[22] = 'b'; /* first digit of the first chunk signature, 'a' */
    s = run(&cfg, &b, 0, NULL);
    ok(s.rc == GW_S3_SIGNATURE_DOES_NOT_MATCH && s.out.n == 0,
       "a wrong first chunk signature: SignatureDoesNotMatch, no byte of it handed out");
    free(s.out.p);
    b.p[22] = 'a';
    b.p[88 + 40000] = 'b';
    s = run(&cfg, &b, 1, NULL);
    ok(s.rc == GW_S3_SIGNATURE_DOES_NOT_MATCH && s.out.n == 65535,
       "a changed data byte: caught at the chunk's end (%s)", s.err.msg);
    free(s.out.p);
    b.p[88 + 40000] = 'a';
    b.p[b.n - 10] ^= 1; /* in the final chunk's signature */
    s = run(&cfg, &b, 2, NULL);
    is_int(s.rc, GW_S3_SIGNATURE_DOES_NOT_MATCH, "a wrong final chunk signature");
    free(s.out.p);
    free(b.p);
    struct gw_sigv4_chain other = chain_of(SIG1);
    cfg.chain = &other;
    s = run(&cfg, &good, 0, NULL);
    is_int(s.rc, GW_S3_SIGNATURE_DOES_NOT_MATCH, "another seed");
    free(s.out.p);
    cfg.chain = &chain;

    /* Truncations, at every byte of the framing and at some in the data. */
    int bad = 0, tried = 0;
    for (size_t cut = 0; cut < good.n; cut++) {
        bool framing = cut < 100 || (cut > 65600 && cut < 65720) || cut > good.n - 200;
        if (!framing && cut % 4099 != 0)
            continue;
        struct body t = {good.p, cut, cut};
        s = run(&cfg, &t, 0, NULL);
        tried++;
        bad += s.rc != GW_S3_INCOMPLETE_BODY;
        free(s.out.p);
    }
    is_int(bad, 0, "each of %d truncations: IncompleteBody", tried);

    /* Data after the end. */
    b = published_body();
    puts_(&b, "x");
    s = run(&cfg, &b, 0, NULL);
    ok(s.rc == GW_S3_INVALID_REQUEST && strstr(s.err.msg, "after its end"), "a byte after the end: %s",
       s.err.msg);
    free(s.out.p);
    free(b.p);

    /* Declared length disagreeing with the chunks. */
    cfg.decoded_length = 66561;
    s = run(&cfg, &good, 1, NULL);
    ok(s.rc == GW_S3_INCOMPLETE_BODY && s.out.n == 66560, "one byte less than declared: %s",
       s.err.msg);
    free(s.out.p);
    cfg.decoded_length = 66559;
    s = run(&cfg, &good, 0, NULL);
    ok(s.rc == GW_S3_INVALID_REQUEST && s.out.n == 65536, "one byte more than declared: %s",
       s.err.msg);
    free(s.out.p);
    cfg.decoded_length = 66560;

    /* Size lines. */
    static const char sig[] = ";chunk-signature=" SIG1 "\r\n";
    char text[1024];
    snprintf(text, sizeof(text), "10000000000000000%s", sig);
    is_int(try_body(&cfg, text, strlen(text), &s), GW_S3_INVALID_REQUEST,
           "17 hex digits: %s", s.err.msg);
    snprintf(text, sizeof(text), "ffffffffffffffff%s", sig);
    is_int(try_body(&cfg, text, strlen(text), &s), GW_S3_INVALID_REQUEST,
           "2^64-1 bytes (more than declared): %s", s.err.msg);
    memset(text, '0', 600);
    is_int(try_body(&cfg, text, 600, &s), GW_S3_INVALID_REQUEST, "a 600-byte size line: %s",
           s.err.msg);
    snprintf(text, sizeof(text), "x%s", sig);
    is_int(try_body(&cfg, text, strlen(text), &s), GW_S3_INVALID_REQUEST, "no size");
    snprintf(text, sizeof(text), "10000;chunk-signature=%.63s\r\n", SIG1);
    is_int(try_body(&cfg, text, strlen(text), &s), GW_S3_INVALID_REQUEST, "a 63-digit signature");
    is_int(try_body(&cfg, "10000\r\n", 7, &s), GW_S3_INVALID_REQUEST,
           "no chunk-signature in a signed stream: %s", s.err.msg);
    snprintf(text, sizeof(text), "10000;chunk-signature=" SIG1 "\n");
    is_int(try_body(&cfg, text, strlen(text), &s), GW_S3_INVALID_REQUEST, "a bare LF: %s",
           s.err.msg);
    snprintf(text, sizeof(text), "10000;chunk-signature=" SIG1 "\r\r\n");
    is_int(try_body(&cfg, text, strlen(text), &s), GW_S3_INVALID_REQUEST, "a stray CR");
    b = published_body();
    b.p[88 + 65536] = 'X'; /* the CR after the first chunk's data */
    s = run(&cfg, &b, 0, NULL);
    ok(s.rc == GW_S3_INVALID_REQUEST && strstr(s.err.msg, "CRLF"), "data not followed by CRLF: %s",
       s.err.msg);
    free(s.out.p);
    free(b.p);
    b = published_body();
    b.n -= 2;
    puts_(&b, "x-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    s = run(&cfg, &b, 0, NULL);
    is_int(s.rc, GW_S3_INVALID_REQUEST, "a trailer without trailer mode: %s", s.err.msg);
    free(s.out.p);
    free(b.p);

    /* Chunk sizes: every chunk but the last at least 8 KiB, signed or not. */
    struct gw_chunked_enc e;
    struct gw_chunked_cfg ucfg = {.mode = GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER};
    static const struct {
        size_t sizes[3];
        enum gw_s3_error want;
    } sizes[] = {
        {{4096, 4096, 0}, GW_S3_INVALID_CHUNK_SIZE},
        {{8192, 8191, 8192}, GW_S3_INVALID_CHUNK_SIZE},
        {{8192, 8192, 1}, GW_S3_OK},
        {{1, 0, 0}, GW_S3_OK},
        {{8192, 0, 0}, GW_S3_OK},
    };
    char *data = calloc(1, 3 * 8192);
    for (int mode = 0; mode < 2; mode++) {
        struct gw_chunked_cfg *c = mode ? &ucfg : &cfg;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            struct body cb = {0};
            char ln[GW_CHUNKED_ENC_LINE_MAX];
            size_t len, total = 0;
            gw_chunked_enc_init(&e, c->mode, &chain);
            for (int k = 0; k < 3 && sizes[i].sizes[k]; k++) {
                gw_chunked_enc_chunk(&e, data, sizes[i].sizes[k], ln, &len);
                put(&cb, ln, len);
                put(&cb, data, sizes[i].sizes[k]);
                puts_(&cb, "\r\n");
                total += sizes[i].sizes[k];
            }
            struct cmn_buf tail;
            cmn_buf_init(&tail);
            gw_chunked_enc_finish(&e, NULL, 0, &tail);
            put(&cb, tail.data, tail.len);
            cmn_buf_free(&tail);
            c->decoded_length = total;
            s = run(c, &cb, 2, NULL);
            ok(s.rc == sizes[i].want, "%s chunks of %zu, %zu, %zu: %s",
               mode ? "unsigned" : "signed", sizes[i].sizes[0], sizes[i].sizes[1],
               sizes[i].sizes[2], s.rc ? s.err.msg : "ok");
            free(s.out.p);
            free(cb.p);
        }
    }
    free(data);
    free(good.p);
}

static void test_trailers(void)
{
    struct gw_chunked_cfg cfg = {.mode = GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
                                 .decoded_length = 3,
                                 .trailer_names = GW_STR("x-amz-checksum-crc32, X-Amz-Meta-T")};
    static const struct {
        const char *what, *tail;
        enum gw_s3_error want;
    } cases[] = {
        {"both announced trailers", "x-amz-checksum-crc32:AAAAAA==\r\nx-amz-meta-t:v\r\n\r\n", GW_S3_OK},
        {"one announced trailer missing", "x-amz-checksum-crc32:AAAAAA==\r\n\r\n", GW_S3_INVALID_REQUEST},
        {"an unannounced trailer",
         "x-amz-checksum-crc32:AAAAAA==\r\nx-amz-meta-t:v\r\nx-amz-checksum-sha1:x\r\n\r\n",
         GW_S3_INVALID_REQUEST},
        {"a repeated trailer",
         "x-amz-checksum-crc32:AAAAAA==\r\nx-amz-meta-t:v\r\nx-amz-meta-t:w\r\n\r\n",
         GW_S3_INVALID_REQUEST},
        {"a trailer without ':'", "x-amz-checksum-crc32 AAAAAA==\r\n\r\n", GW_S3_INVALID_REQUEST},
        {"a trailer with an empty name", ":v\r\n\r\n", GW_S3_INVALID_REQUEST},
        {"a signature in an unsigned stream",
         "x-amz-checksum-crc32:A\r\nx-amz-meta-t:v\r\nx-amz-trailer-signature:" SIG1 "\r\n\r\n",
         GW_S3_INVALID_REQUEST},
        {"a control character in a value", "x-amz-checksum-crc32:A\x01\r\nx-amz-meta-t:v\r\n\r\n",
         GW_S3_INVALID_REQUEST},
        {"no empty line at the end", "x-amz-checksum-crc32:AAAAAA==\r\nx-amz-meta-t:v\r\n",
         GW_S3_INCOMPLETE_BODY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "3\r\nabc\r\n0\r\n%s", cases[i].tail);
        struct sink s;
        enum gw_s3_error rc = try_body(&cfg, text, strlen(text), &s);
        ok(rc == cases[i].want, "%s: %s", cases[i].what, rc ? s.err.msg : "ok");
    }
    char longv[400];
    memset(longv, 'v', sizeof(longv));
    char text[700];
    snprintf(text, sizeof(text), "3\r\nabc\r\n0\r\nx-amz-meta-t:%.*s\r\n", 300, longv);
    struct sink s;
    enum gw_s3_error rc = try_body(&cfg, text, strlen(text), &s);
    ok(rc == GW_S3_INVALID_REQUEST && strstr(s.err.msg, "256"), "a 300-byte trailer value: %s",
       s.err.msg);

    /* The signed trailer stream needs its signature, last. */
    struct gw_sigv4_chain chain = chain_of(SEED);
    struct gw_chunked_enc e;
    gw_chunked_enc_init(&e, GW_SIGV4_PAYLOAD_STREAMING_TRAILER, &chain);
    char line[GW_CHUNKED_ENC_LINE_MAX];
    size_t len;
    gw_chunked_enc_chunk(&e, "abc", 3, line, &len);
    struct gw_chunked_enc e2 = e;
    struct gw_header tr = {GW_STR("x-amz-checksum-crc32"), GW_STR("AAAAAA==")};
    struct cmn_buf tail;
    cmn_buf_init(&tail);
    gw_chunked_enc_finish(&e2, &tr, 1, &tail);
    cmn_buf_terminate(&tail);
    struct gw_chunked_cfg scfg = {.mode = GW_SIGV4_PAYLOAD_STREAMING_TRAILER, .chain = &chain,
                                  .decoded_length = 3, .trailer_names = GW_STR("x-amz-checksum-crc32")};
    snprintf(text, sizeof(text), "%sabc\r\n%s", line, (char *)tail.data);
    is_int(try_body(&scfg, text, strlen(text), &s), GW_S3_OK, "encoded signed trailer stream");
    char *sigline = strstr(text, "x-amz-trailer-signature");
    memmove(sigline, sigline + 90, strlen(sigline + 90) + 1);
    is_int(try_body(&scfg, text, strlen(text), &s), GW_S3_INVALID_REQUEST,
           "without its trailer signature: %s", s.err.msg);
    snprintf(text, sizeof(text), "%sabc\r\n%s", line, (char *)tail.data);
    sigline = strstr(text, "x-amz-trailer-signature");
    char *crc_line = strstr(text, "x-amz-checksum-crc32");
    char swapped[700];
    snprintf(swapped, sizeof(swapped), "%.*s%.90s%.*s\r\n", (int)(crc_line - text), text, sigline,
             (int)(sigline - crc_line), crc_line);
    is_int(try_body(&scfg, swapped, strlen(swapped), &s), GW_S3_INVALID_REQUEST,
           "with the signature before the checksum: %s", s.err.msg);
    cmn_buf_free(&tail);
}

static void test_config(void)
{
    struct gw_header hs[] = {
        {GW_STR("Host"), GW_STR("h")},
        {GW_STR("x-amz-decoded-content-length"), GW_STR("12")},
        {GW_STR("x-amz-trailer"), GW_STR("x-amz-checksum-crc32c")},
    };
    struct gw_request_head h = {.method = GW_STR("PUT"), .path = GW_STR("/b/k"), .headers = hs,
                                .n_headers = 3};
    struct gw_sigv4_auth a = {.payload = GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER};
    struct gw_chunked_cfg cfg;
    struct gw_sigv4_err err;
    ok(gw_chunked_cfg_from_request(&h, &a, NULL, &cfg, &err) == GW_S3_OK &&
           cfg.decoded_length == 12 && gw_str_eq(cfg.trailer_names, "x-amz-checksum-crc32c"),
       "configuration from headers");
    a.payload = GW_SIGV4_PAYLOAD_STREAMING;
    is_int(gw_chunked_cfg_from_request(&h, &a, NULL, &cfg, &err), GW_S3_INVALID_REQUEST,
           "x-amz-trailer with STREAMING-AWS4-HMAC-SHA256-PAYLOAD: %s", err.msg);
    a.payload = GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
    hs[1].value = GW_STR("12a");
    is_int(gw_chunked_cfg_from_request(&h, &a, NULL, &cfg, &err), GW_S3_INVALID_ARGUMENT,
           "a decoded length that is not a number");
    hs[1].value = GW_STR("99999999999999999999");
    is_int(gw_chunked_cfg_from_request(&h, &a, NULL, &cfg, &err), GW_S3_INVALID_ARGUMENT,
           "a decoded length of 20 digits");
    h.n_headers = 1;
    is_int(gw_chunked_cfg_from_request(&h, &a, NULL, &cfg, &err), GW_S3_MISSING_CONTENT_LENGTH,
           "no x-amz-decoded-content-length: MissingContentLength");
    a.payload = GW_SIGV4_PAYLOAD_UNSIGNED;
    is_int(gw_chunked_cfg_from_request(&h, &a, NULL, &cfg, &err), GW_S3_INVALID_REQUEST,
           "not a streaming payload");

    struct gw_chunked d;
    cfg = (struct gw_chunked_cfg){.mode = GW_SIGV4_PAYLOAD_STREAMING};
    is_int(gw_chunked_init(&d, &cfg, &err), GW_S3_INVALID_REQUEST, "a signed stream without chain");
    gw_chunked_free(&d);
    cfg.mode = GW_SIGV4_PAYLOAD_SHA256;
    is_int(gw_chunked_init(&d, &cfg, &err), GW_S3_INVALID_REQUEST, "a mode that is not streaming");
    cfg = (struct gw_chunked_cfg){.mode = GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
                                  .trailer_names = GW_STR("a,b,c,d,e,f,g,h,i")};
    is_int(gw_chunked_init(&d, &cfg, &err), GW_S3_INVALID_REQUEST, "nine announced trailers");
    cfg.trailer_names = GW_STR("a,,b");
    is_int(gw_chunked_init(&d, &cfg, &err), GW_S3_INVALID_REQUEST, "an empty announced name");
    cfg.trailer_names = GW_STR("a,b,c,d,e,f,g,h");
    is_int(gw_chunked_init(&d, &cfg, &err), GW_S3_OK, "eight are fine");

    /* Errors are sticky. */
    size_t used;
    struct gw_str out;
    is_int(gw_chunked_decode(&d, "zz\r\n", 4, &used, &out, &err), GW_S3_INVALID_REQUEST,
           "a bad size line");
    is_int(gw_chunked_decode(&d, "0\r\n\r\n", 5, &used, &out, &err), GW_S3_INVALID_REQUEST,
           "and the next call fails the same way");
    ok(used == 0 && strstr(err.msg, "chunk-size") != NULL, "consuming nothing (%s)", err.msg);
    is_int(gw_chunked_finish(&d, &err), GW_S3_INVALID_REQUEST, "finish too");
    gw_chunked_free(&d);

    struct gw_chunked_enc e;
    is_int(gw_chunked_enc_init(&e, GW_SIGV4_PAYLOAD_STREAMING, NULL), -EINVAL,
           "encoder: signed without chain");
    gw_chunked_enc_init(&e, GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER, NULL);
    char line[GW_CHUNKED_ENC_LINE_MAX];
    size_t len;
    is_int(gw_chunked_enc_chunk(&e, "", 0, line, &len), -EINVAL, "encoder: empty chunk");
}

static void test_plain_body(void)
{
    struct gw_sigv4_auth a = {.payload = GW_SIGV4_PAYLOAD_UNSIGNED};
    struct gw_sigv4_body b;
    gw_sigv4_body_init(&b, &a, NULL);
    gw_sigv4_body_update(&b, "anything", 8);
    is_int(gw_sigv4_body_finish(&b, NULL), GW_S3_OK, "UNSIGNED-PAYLOAD: nothing to check");
    gw_sigv4_body_free(&b);
    /* SHA-256("abc"), FIPS 180-2 appendix B.1 */
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                    0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                    0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    a.payload = GW_SIGV4_PAYLOAD_SHA256;
    memcpy(a.payload_sha256, abc, 32);
    gw_sigv4_body_init(&b, &a, NULL);
    for (int i = 0; i < 3; i++)
        gw_sigv4_body_update(&b, "abc" + i, 1);
    is_int(gw_sigv4_body_finish(&b, NULL), GW_S3_OK, "'abc' fed byte by byte matches");
    gw_sigv4_body_free(&b);
    gw_sigv4_body_init(&b, &a, NULL);
    gw_sigv4_body_update(&b, "ab", 2);
    struct gw_sigv4_err err;
    is_int(gw_sigv4_body_finish(&b, &err), GW_S3_CONTENT_SHA256_MISMATCH, "a truncated body: %s",
           err.msg);
    gw_sigv4_body_free(&b);
    gw_sigv4_body_free(&b);
}

int main(void)
{
    test_published();
    test_signed_trailer();
    test_unsigned_trailer();
    test_negative();
    test_trailers();
    test_config();
    test_plain_body();
    return tap_done();
}
