/* Fuzz target: the checksum and ETag readers (gateway/cksum.c, gateway/etag.c), which take
 * client-supplied text from headers, trailers and XML bodies. The first byte picks the
 * reader, the rest is the text. Besides "no crash, no leak", each reader must be canonical:
 * whatever it accepts renders back to exactly the accepted text, and every refusal carries a
 * message. The CRC combination is also held against a direct CRC on the fuzz bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "gateway/cksum.h"
#include "gateway/etag.h"
#include "tests/fuzz/fuzz.h"

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond))                                                                      \
            __builtin_trap();                                                             \
    } while (0)

static void refused_with_message(enum gw_s3_error e, const char *msg)
{
    if (e != GW_S3_OK)
        CHECK(msg && msg[0]);
}

static void fuzz_value(uint8_t sel, struct gw_str t)
{
    enum gw_cksum_alg alg = (enum gw_cksum_alg)(sel % (GW_CKSUM_ALG_COUNT + 1));
    bool parts = (sel >> 4) & 1;
    struct gw_cksum_value v;
    const char *msg = NULL;
    enum gw_s3_error e = gw_cksum_parse(alg, t, parts, &v, &msg);
    refused_with_message(e, msg);
    if (e == GW_S3_OK) {
        CHECK(strlen(v.text) == t.n && memcmp(v.text, t.p, t.n) == 0);
        CHECK(gw_cksum_check(&v, &v, &msg) == GW_S3_OK);
    }
}

static void fuzz_names(struct gw_str t)
{
    const char *msg = NULL;
    enum gw_cksum_alg alg;
    enum gw_s3_error e = gw_cksum_alg_parse(t, &alg, &msg);
    refused_with_message(e, msg);
    if (e == GW_S3_OK)
        CHECK(gw_str_ieq(t, gw_cksum_alg_name(alg)));
    enum gw_cksum_type type;
    msg = NULL;
    e = gw_cksum_type_parse(t, &type, &msg);
    refused_with_message(e, msg);
    if (e == GW_S3_OK)
        CHECK(gw_str_ieq(t, gw_cksum_type_name(type)));
    alg = gw_cksum_alg_from_header(t);
    if (alg != GW_CKSUM_NONE)
        CHECK(gw_str_ieq(t, gw_cksum_alg_header(alg)));
}

static void fuzz_etag(struct gw_str t)
{
    uint8_t md5[GW_MD5_SIZE];
    const char *msg = NULL;
    if (gw_etag_parse_md5(t, md5)) {
        char hex[GW_ETAG_MAX];
        gw_etag_from_md5(md5, hex);
        CHECK(gw_etag_equal(t, hex));
    }
    enum gw_s3_error e = gw_content_md5_parse(t, md5, &msg);
    refused_with_message(e, msg);
    if (e == GW_S3_OK) {
        struct gw_cksum_value back;
        CHECK(gw_cksum_value_set(&back, GW_CKSUM_MD5, md5, GW_MD5_SIZE, 0) == 0);
        CHECK(t.n == strlen(back.text) && memcmp(back.text, t.p, t.n) == 0);
    }
    /* The text as a list of part ETags, one per line. */
    struct gw_str parts[16];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= t.n && n < 16; i++)
        if (i == t.n || t.p[i] == '\n') {
            parts[n++] = (struct gw_str){t.p + start, i - start};
            start = i + 1;
        }
    char etag[GW_ETAG_MAX];
    msg = NULL;
    e = gw_etag_multipart(parts, n, etag, &msg);
    refused_with_message(e, msg);
    if (e == GW_S3_OK)
        CHECK(strlen(etag) > 33 && etag[32] == '-');
}

/* "name: value" lines, at most 16. */
static void fuzz_request(struct gw_str t)
{
    struct gw_header h[16];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= t.n && n < 16; i++) {
        if (i < t.n && t.p[i] != '\n')
            continue;
        struct gw_str line = {t.p + start, i - start};
        const char *colon = line.n ? memchr(line.p, ':', line.n) : NULL;
        if (colon) {
            size_t k = (size_t)(colon - line.p);
            size_t v = k + 1 < line.n && line.p[k + 1] == ' ' ? k + 2 : k + 1;
            h[n].name = (struct gw_str){line.p, k};
            h[n].value = (struct gw_str){line.p + v, line.n - v};
            n++;
        }
        start = i + 1;
    }
    struct gw_request_head head = {.headers = h, .n_headers = n};
    struct gw_cksum_request r;
    const char *msg = NULL;
    enum gw_s3_error e = gw_cksum_request_parse(&head, &r, &msg);
    refused_with_message(e, msg);
    if (e == GW_S3_OK && r.has_value)
        CHECK(r.alg == r.value.alg);
}

static void fuzz_combine(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    size_t cut = data[0] % size;
    static const enum gw_cksum_alg crcs[] = {GW_CKSUM_CRC32, GW_CKSUM_CRC32C,
                                             GW_CKSUM_CRC64NVME};
    for (size_t i = 0; i < 3; i++) {
        struct gw_cksum_value a, b, all;
        CHECK(gw_cksum_compute(crcs[i], data, cut, &a) == 0);
        CHECK(gw_cksum_compute(crcs[i], data + cut, size - cut, &b) == 0);
        CHECK(gw_cksum_compute(crcs[i], data, size, &all) == 0);
        CHECK(gw_crc_combine(crcs[i], gw_crc_from_value(&a), gw_crc_from_value(&b),
                             size - cut) == gw_crc_from_value(&all));
    }
    CHECK(gw_crc64nvme_portable(0, data, size) ==
          gw_crc64nvme_portable(gw_crc64nvme_portable(0, data, cut), data + cut, size - cut));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct gw_str t = {(const char *)data + 1, size - 1};
    switch (data[0] >> 5) {
    case 0:
    case 1:
    case 2:
        fuzz_value(data[0], t);
        break;
    case 3:
        fuzz_names(t);
        break;
    case 4:
    case 5:
        fuzz_etag(t);
        break;
    case 6:
        fuzz_request(t);
        break;
    default:
        fuzz_combine(data + 1, size - 1);
        break;
    }
    return 0;
}

#define SEED(s) {(const uint8_t *)(s), sizeof(s) - 1}
static const struct fuzz_seed seeds[] = {
    SEED("\x01y/Q5Jg=="),                              /* CRC32 */
    SEED("\x13rosUhgp5mIg=-12"),                       /* CRC64NVME, parts allowed */
    SEED("\x05" "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), /* SHA-256 */
    SEED("\x46JfnnlDI7RTiF9RgfG2JNCw=="),                 /* MD5 */
    SEED("\x60" "crc64nvme"),
    SEED("\x60x-amz-checksum-crc32c"),
    SEED("\x80\"594f803b380a41396ed63dca39503542\"\n08f8e0260c64418510cefb2b06eee5cd"),
    SEED("\xa0JfnnlDI7RTiF9RgfG2JNCw=="),
    SEED("\xc0x-amz-checksum-crc32: y/Q5Jg==\nx-amz-sdk-checksum-algorithm: CRC32\nhost: b"),
    SEED("\xe0\x07" "123456789 and some more bytes to split"),
};

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = sizeof(seeds) / sizeof(seeds[0]);
    return seeds;
}
