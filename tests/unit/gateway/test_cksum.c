/* gateway/cksum.c and gateway/etag.c against independently known answers:
 * - CRC check values for "123456789" from the CRC catalogue (CRC-32/ISO-HDLC 0xCBF43926,
 *   CRC-32/ISCSI 0xE3069283, CRC-64/NVME 0xAE8B14860A799888), and a bit-at-a-time CRC
 *   written here from the polynomials alone, held against the implementation on random data;
 * - RFC 1321 (MD5), RFC 3174 (SHA-1) and FIPS 180-2 (SHA-256) test vectors;
 * - S3 text forms, ETags and multipart values computed with Python's zlib, hashlib and
 *   base64 (the command is given beside each).
 * Ends with throughput diagnostics (not assertions). LODE_TEST_SEED replays a run. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/cksum.h"
#include "gateway/etag.h"
#include "tests/tap.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 56);
}

static struct gw_str str(const char *s)
{
    return (struct gw_str){s, strlen(s)};
}

/* ---- reference CRC: one bit at a time, from the textbook definition ---- */

static uint64_t reflect(uint64_t v, unsigned width)
{
    uint64_t r = 0;
    for (unsigned i = 0; i < width; i++, v >>= 1)
        r = r << 1 | (v & 1);
    return r;
}

/* Reflected input and output, initial value and final xor all ones: the parameters of all
 * three S3 CRCs. The polynomial is given in its normal (catalogue) form and reflected here,
 * so the test also checks the claim that CRC64NVME uses 0xAD93D23594C93659 reflected. */
static uint64_t ref_crc(unsigned width, uint64_t poly_normal, const uint8_t *p, size_t n)
{
    uint64_t mask = width == 64 ? ~0ull : (1ull << width) - 1;
    uint64_t poly = reflect(poly_normal, width);
    uint64_t c = mask;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    }
    return c ^ mask;
}

static const struct {
    enum gw_cksum_alg alg;
    unsigned width;
    uint64_t poly;
    uint64_t check; /* CRC of "123456789" */
} crcs[] = {
    {GW_CKSUM_CRC32, 32, 0x04C11DB7u, 0xCBF43926u},
    {GW_CKSUM_CRC32C, 32, 0x1EDC6F41u, 0xE3069283u},
    {GW_CKSUM_CRC64NVME, 64, 0xAD93D23594C93659ull, 0xAE8B14860A799888ull},
};
#define N_CRCS (sizeof(crcs) / sizeof(crcs[0]))

static uint64_t crc_of(enum gw_cksum_alg alg, const void *p, size_t n)
{
    struct gw_cksum_value v;
    if (gw_cksum_compute(alg, p, n, &v) != 0)
        return ~0ull;
    return gw_crc_from_value(&v);
}

static void test_crc_check_values(void)
{
    const uint8_t *s = (const uint8_t *)"123456789";
    for (size_t i = 0; i < N_CRCS; i++) {
        const char *name = gw_cksum_alg_name(crcs[i].alg);
        uint64_t ref = ref_crc(crcs[i].width, crcs[i].poly, s, 9);
        ok(ref == crcs[i].check, "%s: bitwise reference gives the check value (%llx)", name,
           (unsigned long long)ref);
        uint64_t got = crc_of(crcs[i].alg, s, 9);
        ok(got == crcs[i].check, "%s: check value (%llx)", name, (unsigned long long)got);
    }
    ok(gw_crc64nvme_portable(0, s, 9) == 0xAE8B14860A799888ull, "portable CRC64NVME: check value");
    diag("CRC64NVME backend: %s", gw_cksum_crc64_backend());
}

static void test_crc_random(void)
{
    enum { MAX = 3000 };
    uint8_t *buf = malloc(MAX + 8);
    int bad[N_CRCS] = {0}, bad_portable = 0, bad_chain = 0;
    for (int iter = 0; iter < 200; iter++) {
        /* Odd lengths and offsets reach the SIMD paths' heads and tails. */
        size_t off = rng() % 8, n = iter < 40 ? (size_t)iter : rng() % MAX;
        fill_random(buf + off, n);
        for (size_t i = 0; i < N_CRCS; i++)
            if (crc_of(crcs[i].alg, buf + off, n) !=
                ref_crc(crcs[i].width, crcs[i].poly, buf + off, n))
                bad[i]++;
        uint64_t ref64 = ref_crc(64, crcs[2].poly, buf + off, n);
        if (gw_crc64nvme_portable(0, buf + off, n) != ref64)
            bad_portable++;
        size_t cut = n ? rng() % n : 0;
        if (gw_crc64nvme_portable(gw_crc64nvme_portable(0, buf + off, cut), buf + off + cut,
                                  n - cut) != ref64)
            bad_chain++;
    }
    for (size_t i = 0; i < N_CRCS; i++)
        ok(bad[i] == 0, "%s equals the bitwise reference on 200 random buffers (%d differ)",
           gw_cksum_alg_name(crcs[i].alg), bad[i]);
    ok(bad_portable == 0, "portable CRC64NVME equals the reference (%d differ)", bad_portable);
    ok(bad_chain == 0, "portable CRC64NVME chains across calls (%d differ)", bad_chain);
    free(buf);
}

/* ---- digests: RFC vectors ---- */

static const struct {
    enum gw_cksum_alg alg;
    const char *msg;
    unsigned repeat;
    const char *hex;
} digest_vectors[] = {
    /* RFC 1321, appendix A.5 */
    {GW_CKSUM_MD5, "", 1, "d41d8cd98f00b204e9800998ecf8427e"},
    {GW_CKSUM_MD5, "a", 1, "0cc175b9c0f1b6a831c399e269772661"},
    {GW_CKSUM_MD5, "abc", 1, "900150983cd24fb0d6963f7d28e17f72"},
    {GW_CKSUM_MD5, "message digest", 1, "f96b697d7cb7938d525a2f31aaf161d0"},
    {GW_CKSUM_MD5, "abcdefghijklmnopqrstuvwxyz", 1, "c3fcd3d76192e4007dfb496cca67e13b"},
    {GW_CKSUM_MD5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 1,
     "d174ab98d277d9f5a5611c2c9f419d9f"},
    {GW_CKSUM_MD5, "1234567890", 8, "57edf4a22be3c955ac49da2e2107b67a"},
    /* RFC 3174, section 7.3 */
    {GW_CKSUM_SHA1, "abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d"},
    {GW_CKSUM_SHA1, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
     "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    {GW_CKSUM_SHA1, "a", 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
    {GW_CKSUM_SHA1, "0123456701234567012345670123456701234567012345670123456701234567", 10,
     "dea356a2cddd90c7a7ecedc5ebb563934f460452"},
    /* FIPS 180-2, appendix B */
    {GW_CKSUM_SHA256, "abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {GW_CKSUM_SHA256, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {GW_CKSUM_SHA256, "a", 1000000,
     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
};

static void hex_of(const struct gw_cksum_value *v, char *out)
{
    for (size_t i = 0; i < v->len; i++)
        sprintf(out + 2 * i, "%02x", v->raw[i]);
    out[2 * v->len] = '\0';
}

static void test_digest_vectors(void)
{
    for (size_t i = 0; i < sizeof(digest_vectors) / sizeof(digest_vectors[0]); i++) {
        size_t len = strlen(digest_vectors[i].msg);
        struct gw_cksum c;
        struct gw_cksum_value v;
        int rc = gw_cksum_init(&c, digest_vectors[i].alg);
        /* The message is fed one repetition at a time: repeated messages are streamed. */
        for (unsigned r = 0; rc == 0 && r < digest_vectors[i].repeat; r++)
            gw_cksum_update(&c, digest_vectors[i].msg, len);
        if (rc == 0)
            rc = gw_cksum_final(&c, &v);
        gw_cksum_close(&c);
        char hex[2 * GW_CKSUM_MAX_RAW + 1] = "";
        if (rc == 0)
            hex_of(&v, hex);
        ok(rc == 0 && strcmp(hex, digest_vectors[i].hex) == 0, "%s(\"%.20s\" x %u) = %s",
           gw_cksum_alg_name(digest_vectors[i].alg), digest_vectors[i].msg,
           digest_vectors[i].repeat, hex);
    }
}

/* ---- S3 text forms ---- */

static void test_s3_text(void)
{
    /* python3 -c 'import zlib,hashlib,base64,struct; s=b"123456789";
     *   print(base64.b64encode(struct.pack(">I", zlib.crc32(s))).decode(),
     *         base64.b64encode(struct.pack(">I", 0xE3069283)).decode(),
     *         base64.b64encode(struct.pack(">Q", 0xAE8B14860A799888)).decode(),
     *         base64.b64encode(hashlib.sha1(s).digest()).decode(),
     *         base64.b64encode(hashlib.sha256(s).digest()).decode(),
     *         base64.b64encode(hashlib.md5(s).digest()).decode())'
     * (CRC32C and CRC64NVME from the catalogue check values, which Python lacks) */
    static const struct {
        enum gw_cksum_alg alg;
        const char *text;
        const char *empty; /* the same for b"" */
    } forms[] = {
        {GW_CKSUM_CRC32, "y/Q5Jg==", "AAAAAA=="},
        {GW_CKSUM_CRC32C, "4waSgw==", "AAAAAA=="},
        {GW_CKSUM_CRC64NVME, "rosUhgp5mIg=", "AAAAAAAAAAA="},
        {GW_CKSUM_SHA1, "98O8HYCOBHMq32eZZczDTKeuNEE=", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="},
        {GW_CKSUM_SHA256, "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=",
         "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
        {GW_CKSUM_MD5, "JfnnlDI7RTiF9RgfG2JNCw==", "1B2M2Y8AsgTpgAmY7PhCfg=="},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct gw_cksum_value v;
        int rc = gw_cksum_compute(forms[i].alg, "123456789", 9, &v);
        ok(rc == 0 && strcmp(v.text, forms[i].text) == 0 && v.parts == 0 &&
               v.len == gw_cksum_alg_size(forms[i].alg),
           "%s of \"123456789\" as S3 shows it: %s", gw_cksum_alg_name(forms[i].alg), v.text);
        rc = gw_cksum_compute(forms[i].alg, NULL, 0, &v);
        ok(rc == 0 && strcmp(v.text, forms[i].empty) == 0, "%s of nothing: %s",
           gw_cksum_alg_name(forms[i].alg), v.text);
        /* What we print, we accept back, byte for byte. */
        if (forms[i].alg != GW_CKSUM_MD5) {
            struct gw_cksum_value back;
            const char *msg = NULL;
            ok(gw_cksum_parse(forms[i].alg, str(forms[i].text), false, &back, &msg) == GW_S3_OK &&
                   gw_cksum_compute(forms[i].alg, "123456789", 9, &v) == 0 &&
                   gw_cksum_check(&v, &back, &msg) == GW_S3_OK,
               "%s: parsing the text gives a value that checks", gw_cksum_alg_name(forms[i].alg));
        }
    }
    /* python3 -c 'import zlib; print(hex(zlib.crc32(b"hello world")))' -> 0xd4a1185 */
    ok(crc_of(GW_CKSUM_CRC32, "hello world", 11) == 0x0d4a1185u, "CRC32 of \"hello world\"");
    /* Random raw values of every size render to text that parses back to the same bytes. */
    int bad = 0;
    for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT; a++) {
        for (int i = 0; i < 50; i++) {
            uint8_t raw[GW_CKSUM_MAX_RAW];
            struct gw_cksum_value v, back;
            const char *msg;
            size_t n = gw_cksum_alg_size((enum gw_cksum_alg)a);
            unsigned parts = i % 2 ? 1 + (unsigned)(rng() % GW_MULTIPART_MAX_PARTS) : 0;
            fill_random(raw, n);
            if (gw_cksum_value_set(&v, (enum gw_cksum_alg)a, raw, n, parts) != 0 ||
                gw_cksum_parse((enum gw_cksum_alg)a, str(v.text), true, &back, &msg) != GW_S3_OK ||
                back.parts != parts || back.len != n || memcmp(back.raw, raw, n) != 0 ||
                strcmp(back.text, v.text) != 0)
                bad++;
        }
    }
    ok(bad == 0, "random values of every algorithm survive text and back (%d wrong)", bad);
}

/* ---- streaming ---- */

static void test_streaming(void)
{
    enum { LEN = 300000 };
    uint8_t *buf = malloc(LEN);
    fill_random(buf, LEN);
    for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT; a++) {
        struct gw_cksum_value one, streamed;
        int rc = gw_cksum_compute((enum gw_cksum_alg)a, buf, LEN, &one);
        int same = rc == 0;
        for (int round = 0; round < 4 && same; round++) {
            struct gw_cksum c;
            rc = gw_cksum_init(&c, (enum gw_cksum_alg)a);
            size_t at = 0;
            while (rc == 0 && at < LEN) {
                /* Slices from empty to bigger than the set's internal slice. */
                size_t n = rng() % (round < 2 ? 64 : 70000);
                if (n > LEN - at)
                    n = LEN - at;
                gw_cksum_update(&c, buf + at, n);
                at += n;
            }
            if (rc == 0)
                rc = gw_cksum_final(&c, &streamed);
            gw_cksum_close(&c);
            same = rc == 0 && c.len == LEN && streamed.len == one.len &&
                   memcmp(streamed.raw, one.raw, one.len) == 0 &&
                   strcmp(streamed.text, one.text) == 0;
        }
        ok(same, "%s: random slices equal one shot", gw_cksum_alg_name((enum gw_cksum_alg)a));
    }

    /* The set equals each algorithm alone. */
    struct gw_cksum_set set;
    struct gw_cksum_set_result r;
    unsigned all = GW_CKSUM_S3_MASK | GW_CKSUM_BIT(GW_CKSUM_MD5);
    int rc = gw_cksum_set_init(&set, all);
    gw_cksum_set_update(&set, buf, 0);
    gw_cksum_set_update(&set, buf, 1);
    for (size_t at = 1; rc == 0 && at < LEN;) {
        /* Tiny slices (0 to 2 bytes) among large ones. */
        size_t n = rng() % 4 == 0 ? rng() % 3 : 1 + rng() % 40000;
        n = n > LEN - at ? LEN - at : n;
        gw_cksum_set_update(&set, buf + at, n);
        at += n;
    }
    if (rc == 0)
        rc = gw_cksum_set_final(&set, &r);
    gw_cksum_set_close(&set);
    gw_cksum_set_close(&set); /* idempotent */
    int diff = 0;
    for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT; a++) {
        struct gw_cksum_value v;
        if (gw_cksum_compute((enum gw_cksum_alg)a, buf, LEN, &v) != 0 || (int)r.v[a].alg != a ||
            strcmp(r.v[a].text, v.text) != 0)
            diff++;
    }
    ok(rc == 0 && r.mask == all && diff == 0, "a set of all six equals each alone (%d differ)",
       diff);

    rc = gw_cksum_set_init(&set, GW_CKSUM_BIT(GW_CKSUM_MD5));
    gw_cksum_set_update(&set, "123456789", 9);
    rc = rc ? rc : gw_cksum_set_final(&set, &r);
    gw_cksum_set_close(&set);
    ok(rc == 0 && r.mask == GW_CKSUM_BIT(GW_CKSUM_MD5) &&
           r.v[GW_CKSUM_CRC32].alg == GW_CKSUM_NONE &&
           strcmp(r.v[GW_CKSUM_MD5].text, "JfnnlDI7RTiF9RgfG2JNCw==") == 0,
       "a set of MD5 alone computes only MD5");
    ok(gw_cksum_set_init(&set, GW_CKSUM_BIT(GW_CKSUM_NONE)) == -EINVAL &&
           gw_cksum_set_init(&set, 1u << 20) == -EINVAL,
       "a set refuses bits that name no algorithm");
    gw_cksum_set_close(&set);
    struct gw_cksum c;
    ok(gw_cksum_init(&c, GW_CKSUM_NONE) == -EINVAL &&
           gw_cksum_init(&c, (enum gw_cksum_alg)99) == -EINVAL,
       "init refuses NONE and unknown algorithms");
    gw_cksum_close(&c);

    /* A finished digest refuses to go on rather than silently restart. */
    struct gw_cksum_value v;
    rc = gw_cksum_init(&c, GW_CKSUM_SHA256);
    gw_cksum_update(&c, "abc", 3);
    rc = rc ? rc : gw_cksum_final(&c, &v);
    gw_cksum_update(&c, "abc", 3);
    ok(rc == 0 && gw_cksum_final(&c, &v) != 0, "a finished digest cannot be fed again");
    gw_cksum_close(&c);
    free(buf);
}

/* ---- client values ---- */

static void test_parse(void)
{
    struct gw_cksum_value v;
    const char *msg = NULL;
    static const struct {
        enum gw_cksum_alg alg;
        const char *text;
        const char *why;
        size_t len; /* 0: strlen(text) */
    } bad[] = {
        {GW_CKSUM_CRC32, "", "empty", 0},
        {GW_CKSUM_CRC32, "y/Q5Jg=", "short", 0},
        {GW_CKSUM_CRC32, "y/Q5Jg===", "long", 0},
        {GW_CKSUM_CRC32, "y/Q5Jgy/", "6 bytes, not 4", 0},
        {GW_CKSUM_CRC32, "rosUhgp5mIg=", "a CRC64 value", 0},
        {GW_CKSUM_CRC32, "y/Q5Jh==", "non-zero unused bits", 0},
        {GW_CKSUM_CRC32, "y/Q5J===", "padding in the wrong place", 0},
        {GW_CKSUM_CRC32, "y_Q5Jg==", "URL-safe alphabet", 0},
        {GW_CKSUM_CRC32, " y/Q5Jg=", "whitespace", 0},
        {GW_CKSUM_CRC32, "y/Q5\0g==", "NUL", 8},
        {GW_CKSUM_CRC32, "y/Q5Jg==-3", "composite suffix where none is allowed", 0},
        {GW_CKSUM_CRC64NVME, "rosUhgp5mI==", "CRC64 padded as 7 bytes", 0},
        {GW_CKSUM_CRC64NVME, "rosUhgp5mIh=", "non-zero unused bits after one '='", 0},
        {GW_CKSUM_SHA1, "98O8HYCOBHMq32eZZczDTKeuNEE", "missing padding", 0},
        {GW_CKSUM_SHA256, "98O8HYCOBHMq32eZZczDTKeuNEE=", "a SHA-1 value", 0},
        {GW_CKSUM_NONE, "y/Q5Jg==", "no algorithm", 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg = NULL;
        struct gw_str t = {bad[i].text, bad[i].len ? bad[i].len : strlen(bad[i].text)};
        enum gw_s3_error e = gw_cksum_parse(bad[i].alg, t, false, &v, &msg);
        ok(e == GW_S3_INVALID_REQUEST && msg && *msg, "refused: %s (%s)", bad[i].why,
           msg ? msg : "no message");
    }
    ok(gw_cksum_parse(GW_CKSUM_CRC32, str("y/Q5Jg=="), false, &v, &msg) == GW_S3_OK &&
           gw_crc_from_value(&v) == 0xCBF43926u,
       "a CRC32 value decodes to its number");

    static const char *const bad_parts[] = {"y/Q5Jg==-",      "y/Q5Jg==-0",  "y/Q5Jg==-01",
                                            "y/Q5Jg==-10001", "y/Q5Jg==-+3", "y/Q5Jg==-3-",
                                            "y/Q5Jg==--3",    "-3"};
    int refused = 0;
    for (size_t i = 0; i < sizeof(bad_parts) / sizeof(bad_parts[0]); i++)
        refused += gw_cksum_parse(GW_CKSUM_CRC32, str(bad_parts[i]), true, &v, &msg) ==
                   GW_S3_INVALID_REQUEST;
    ok(refused == (int)(sizeof(bad_parts) / sizeof(bad_parts[0])),
       "malformed part counts refused (%d)", refused);
    ok(gw_cksum_parse(GW_CKSUM_CRC32, str("RgXS2g==-10000"), true, &v, &msg) == GW_S3_OK &&
           v.parts == 10000 && strcmp(v.text, "RgXS2g==-10000") == 0,
       "a composite value with 10000 parts parses");

    struct gw_cksum_value computed, claimed;
    gw_cksum_compute(GW_CKSUM_CRC32C, "123456789", 9, &computed);
    gw_cksum_parse(GW_CKSUM_CRC32C, str("4waSgw=="), false, &claimed, &msg);
    ok(gw_cksum_check(&computed, &claimed, &msg) == GW_S3_OK, "matching CRC32C accepted");
    gw_cksum_parse(GW_CKSUM_CRC32C, str("4waSgA=="), false, &claimed, &msg);
    msg = NULL;
    enum gw_s3_error e = gw_cksum_check(&computed, &claimed, &msg);
    ok(e == GW_S3_BAD_DIGEST && msg && strstr(msg, "CRC32C"),
       "a different CRC32C is BadDigest (%s)", msg ? msg : "");
    gw_cksum_parse(GW_CKSUM_CRC32, str("4waSgw=="), false, &claimed, &msg);
    ok(gw_cksum_check(&computed, &claimed, &msg) == GW_S3_BAD_DIGEST,
       "the same bytes under another algorithm are BadDigest");
    gw_cksum_parse(GW_CKSUM_CRC32C, str("4waSgw==-1"), true, &claimed, &msg);
    ok(gw_cksum_check(&computed, &claimed, &msg) == GW_S3_BAD_DIGEST,
       "a composite claim does not match a whole-object value");

    /* Content-MD5: python3 -c 'import hashlib,base64;
     *   print(base64.b64encode(hashlib.md5(b"123456789").digest()).decode())' */
    uint8_t md5[GW_MD5_SIZE];
    struct gw_cksum_value m;
    gw_cksum_compute(GW_CKSUM_MD5, "123456789", 9, &m);
    ok(gw_content_md5_parse(str("JfnnlDI7RTiF9RgfG2JNCw=="), md5, &msg) == GW_S3_OK &&
           gw_content_md5_check(md5, m.raw, &msg) == GW_S3_OK,
       "Content-MD5 of \"123456789\" accepted");
    md5[15] ^= 1;
    ok(gw_content_md5_check(md5, m.raw, &msg) == GW_S3_BAD_DIGEST,
       "Content-MD5 mismatch is BadDigest");
    static const char *const bad_md5[] = {"",
                                          "JfnnlDI7RTiF9RgfG2JNCw=",
                                          "JfnnlDI7RTiF9RgfG2JNCw",
                                          "JfnnlDI7RTiF9RgfG2JNC===",
                                          "y/Q5Jg==",
                                          "25f9e794323b453885f5181f1b624d0b"};
    refused = 0;
    for (size_t i = 0; i < sizeof(bad_md5) / sizeof(bad_md5[0]); i++)
        refused += gw_content_md5_parse(str(bad_md5[i]), md5, &msg) == GW_S3_INVALID_DIGEST;
    ok(refused == (int)(sizeof(bad_md5) / sizeof(bad_md5[0])),
       "malformed Content-MD5 is InvalidDigest (%d of %zu)", refused,
       sizeof(bad_md5) / sizeof(bad_md5[0]));
}

/* ---- names and headers ---- */

static void test_names(void)
{
    enum gw_cksum_alg a;
    const char *msg = NULL;
    static const struct {
        const char *s;
        enum gw_cksum_alg want;
    } names[] = {
        {"CRC32", GW_CKSUM_CRC32}, {"crc32c", GW_CKSUM_CRC32C}, {"Crc64Nvme", GW_CKSUM_CRC64NVME},
        {"sha1", GW_CKSUM_SHA1},   {"SHA256", GW_CKSUM_SHA256}, {"MD5", GW_CKSUM_NONE},
        {"", GW_CKSUM_NONE},       {"CRC32 ", GW_CKSUM_NONE},   {"SHA-256", GW_CKSUM_NONE},
        {"CRC64", GW_CKSUM_NONE},
    };
    int wrong = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum gw_s3_error e = gw_cksum_alg_parse(str(names[i].s), &a, &msg);
        if (a != names[i].want || (e == GW_S3_OK) != (names[i].want != GW_CKSUM_NONE))
            wrong++;
    }
    ok(wrong == 0, "algorithm names, case-insensitive; MD5 and near misses refused (%d wrong)",
       wrong);
    ok(gw_cksum_alg_from_header(str("X-Amz-Checksum-CRC64NVME")) == GW_CKSUM_CRC64NVME &&
           gw_cksum_alg_from_header(str("x-amz-checksum-sha256")) == GW_CKSUM_SHA256 &&
           gw_cksum_alg_from_header(str("x-amz-checksum-algorithm")) == GW_CKSUM_NONE &&
           gw_cksum_alg_from_header(str("x-amz-checksum-type")) == GW_CKSUM_NONE &&
           gw_cksum_alg_from_header(str("x-amz-checksum-mode")) == GW_CKSUM_NONE &&
           gw_cksum_alg_from_header(str("x-amz-checksum-md5")) == GW_CKSUM_NONE &&
           gw_cksum_alg_from_header(str("x-amz-checksum-crc32x")) == GW_CKSUM_NONE,
       "value headers recognised, other x-amz-checksum-* names not");
    int sizes_ok =
        gw_cksum_alg_size(GW_CKSUM_CRC32) == 4 && gw_cksum_alg_size(GW_CKSUM_CRC32C) == 4 &&
        gw_cksum_alg_size(GW_CKSUM_CRC64NVME) == 8 && gw_cksum_alg_size(GW_CKSUM_SHA1) == 20 &&
        gw_cksum_alg_size(GW_CKSUM_SHA256) == 32 && gw_cksum_alg_size(GW_CKSUM_MD5) == 16 &&
        gw_cksum_alg_size(GW_CKSUM_NONE) == 0 && gw_cksum_alg_size((enum gw_cksum_alg)42) == 0;
    ok(sizes_ok, "raw sizes");
    is_str(gw_cksum_alg_header(GW_CKSUM_CRC32C), "x-amz-checksum-crc32c", "header name of CRC32C");
    ok(gw_cksum_alg_header(GW_CKSUM_MD5) == NULL, "MD5 has no x-amz-checksum header");

    enum gw_cksum_type t;
    ok(gw_cksum_type_parse(str("full_object"), &t, &msg) == GW_S3_OK &&
           t == GW_CKSUM_TYPE_FULL_OBJECT &&
           gw_cksum_type_parse(str("COMPOSITE"), &t, &msg) == GW_S3_OK &&
           t == GW_CKSUM_TYPE_COMPOSITE &&
           gw_cksum_type_parse(str("FULL"), &t, &msg) == GW_S3_INVALID_REQUEST,
       "checksum types");
    ok(gw_cksum_type_check(GW_CKSUM_CRC32, GW_CKSUM_TYPE_FULL_OBJECT, &msg) == GW_S3_OK &&
           gw_cksum_type_check(GW_CKSUM_CRC32C, GW_CKSUM_TYPE_COMPOSITE, &msg) == GW_S3_OK &&
           gw_cksum_type_check(GW_CKSUM_CRC64NVME, GW_CKSUM_TYPE_FULL_OBJECT, &msg) == GW_S3_OK &&
           gw_cksum_type_check(GW_CKSUM_SHA1, GW_CKSUM_TYPE_COMPOSITE, &msg) == GW_S3_OK &&
           gw_cksum_type_check(GW_CKSUM_CRC64NVME, GW_CKSUM_TYPE_COMPOSITE, &msg) ==
               GW_S3_INVALID_REQUEST &&
           gw_cksum_type_check(GW_CKSUM_SHA256, GW_CKSUM_TYPE_FULL_OBJECT, &msg) ==
               GW_S3_INVALID_REQUEST &&
           gw_cksum_type_check(GW_CKSUM_MD5, GW_CKSUM_TYPE_COMPOSITE, &msg) ==
               GW_S3_INVALID_REQUEST,
       "type and algorithm pairings as S3 allows them");
    ok(gw_cksum_default_type(GW_CKSUM_CRC64NVME) == GW_CKSUM_TYPE_FULL_OBJECT &&
           gw_cksum_default_type(GW_CKSUM_CRC32) == GW_CKSUM_TYPE_COMPOSITE &&
           gw_cksum_default_type(GW_CKSUM_NONE) == GW_CKSUM_TYPE_NONE,
       "default types");
}

static enum gw_s3_error parse_headers(const struct gw_header *h, size_t n,
                                      struct gw_cksum_request *out, const char **msg)
{
    struct gw_request_head head = {.method = GW_STR("PUT"), .headers = h, .n_headers = n};
    *msg = NULL;
    return gw_cksum_request_parse(&head, out, msg);
}

#define HDR(n, v) {GW_STR(n), GW_STR(v)}

static void test_request(void)
{
    struct gw_cksum_request r;
    const char *msg;
    const struct gw_header none[] = {HDR("Host", "b.example"), HDR("Content-Length", "9")};
    ok(parse_headers(none, 2, &r, &msg) == GW_S3_OK && r.alg == GW_CKSUM_NONE && !r.has_value,
       "no checksum headers: nothing asked");

    const struct gw_header value[] = {HDR("X-Amz-Checksum-Crc32", "y/Q5Jg=="),
                                      HDR("x-amz-sdk-checksum-algorithm", "crc32")};
    ok(parse_headers(value, 2, &r, &msg) == GW_S3_OK && r.alg == GW_CKSUM_CRC32 && r.has_value &&
           gw_crc_from_value(&r.value) == 0xCBF43926u,
       "value header with a matching SDK algorithm");

    const struct gw_header trailer[] = {HDR("x-amz-sdk-checksum-algorithm", "CRC64NVME"),
                                        HDR("x-amz-trailer", "x-amz-checksum-crc64nvme")};
    ok(parse_headers(trailer, 2, &r, &msg) == GW_S3_OK && r.alg == GW_CKSUM_CRC64NVME &&
           !r.has_value,
       "SDK algorithm alone: the value comes later (trailer)");

    static const struct {
        struct gw_header h[2];
        size_t n;
        const char *why;
    } bad[] = {
        {{HDR("x-amz-checksum-crc32", "y/Q5Jg=="),
          HDR("x-amz-checksum-sha1", "98O8HYCOBHMq32eZZczDTKeuNEE=")},
         2,
         "two value headers"},
        {{HDR("x-amz-checksum-crc32", "y/Q5Jg=="), HDR("X-AMZ-CHECKSUM-CRC32", "y/Q5Jg==")},
         2,
         "the same value header twice"},
        {{HDR("x-amz-checksum-crc32c", "4waSgw=="), HDR("x-amz-sdk-checksum-algorithm", "CRC32")},
         2,
         "SDK algorithm differs from the value header"},
        {{HDR("x-amz-sdk-checksum-algorithm", "CRC16"), HDR("Host", "x")},
         1,
         "unknown SDK algorithm"},
        {{HDR("x-amz-sdk-checksum-algorithm", "CRC32"),
          HDR("x-amz-sdk-checksum-algorithm", "CRC32")},
         2,
         "SDK algorithm twice"},
        {{HDR("x-amz-checksum-sha256", "not base64"), HDR("Host", "x")}, 1, "malformed value"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum gw_s3_error e = parse_headers(bad[i].h, bad[i].n, &r, &msg);
        ok(e == GW_S3_INVALID_REQUEST && msg && *msg && !r.has_value, "refused: %s (%s)",
           bad[i].why, msg ? msg : "no message");
    }
}

/* ---- ETags ---- */

static void test_etag(void)
{
    char etag[GW_ETAG_MAX];
    struct gw_cksum_value v;
    gw_cksum_compute(GW_CKSUM_MD5, "123456789", 9, &v);
    gw_etag_from_md5(v.raw, etag);
    /* python3 -c 'import hashlib; print(hashlib.md5(b"123456789").hexdigest())' */
    is_str(etag, "25f9e794323b453885f5181f1b624d0b", "single-part ETag");

    /* python3 -c 'import hashlib; p=[b"a"*5, b"b"*3, b"lode"];
     *   print([hashlib.md5(x).hexdigest() for x in p],
     *         hashlib.md5(b"".join(hashlib.md5(x).digest() for x in p)).hexdigest() + "-3")' */
    const struct gw_str parts[] = {
        GW_STR("594f803b380a41396ed63dca39503542"),
        GW_STR("\"08F8E0260C64418510CEFB2B06EEE5CD\""), /* quoted, upper case: as sent */
        GW_STR("f204805aa069c3b959e2a884b9bc0bd8"),
    };
    const char *msg = NULL;
    ok(gw_etag_multipart(parts, 3, etag, &msg) == GW_S3_OK &&
           strcmp(etag, "01a20f455b85f3998fabf8a02c1fc964-3") == 0,
       "multipart ETag of three parts: %s", etag);
    /* Computed from the data, the parts' ETags give the same result. */
    const char *data[] = {"aaaaa", "bbb", "lode"};
    char hexes[3][GW_ETAG_MAX];
    struct gw_str from_data[3];
    for (int i = 0; i < 3; i++) {
        gw_cksum_compute(GW_CKSUM_MD5, data[i], strlen(data[i]), &v);
        gw_etag_from_md5(v.raw, hexes[i]);
        from_data[i] = str(hexes[i]);
    }
    ok(gw_etag_multipart(from_data, 3, etag, &msg) == GW_S3_OK &&
           strcmp(etag, "01a20f455b85f3998fabf8a02c1fc964-3") == 0,
       "multipart ETag from the parts' own MD5s");
    /* python3 -c 'import hashlib; m=bytes.fromhex("594f803b380a41396ed63dca39503542");
     *   print(hashlib.md5(m).hexdigest() + "-1")' */
    ok(gw_etag_multipart(parts, 1, etag, &msg) == GW_S3_OK &&
           strcmp(etag, "3f39a134e77e08c106b9726a8ae7cc0c-1") == 0,
       "multipart ETag of one part: %s", etag);

    static const char *const bad[] = {"",
                                      "\"\"",
                                      "594f803b380a41396ed63dca3950354",
                                      "594f803b380a41396ed63dca395035422",
                                      "594f803b380a41396ed63dca3950354g",
                                      "01a20f455b85f3998fabf8a02c1fc964-3",
                                      "\"594f803b380a41396ed63dca39503542",
                                      "\"594f803b380a41396ed63dca39503542x",
                                      "W/\"594f803b380a41396ed63dca39503542\""};
    int refused = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gw_str one[2] = {parts[0], str(bad[i])};
        refused += gw_etag_multipart(one, 2, etag, &msg) == GW_S3_INVALID_PART && etag[0] == 0;
    }
    ok(refused == (int)(sizeof(bad) / sizeof(bad[0])), "malformed part ETags are InvalidPart (%d)",
       refused);
    ok(gw_etag_multipart(parts, 0, etag, &msg) == GW_S3_INVALID_PART, "zero parts refused");

    struct gw_etag_mp b;
    int rc = gw_etag_mp_init(&b);
    enum gw_s3_error e = GW_S3_OK;
    for (unsigned i = 0; rc == 0 && e == GW_S3_OK && i < GW_MULTIPART_MAX_PARTS; i++)
        e = gw_etag_mp_add(&b, parts[i % 3], &msg);
    ok(rc == 0 && e == GW_S3_OK && gw_etag_mp_add(&b, parts[0], &msg) == GW_S3_INVALID_PART,
       "part 10001 refused");
    ok(gw_etag_mp_final(&b, etag) == 0 && strlen(etag) == 38 && strcmp(etag + 32, "-10000") == 0,
       "10000-part ETag: %s", etag);
    gw_etag_mp_close(&b);
    gw_etag_mp_close(&b);

    ok(gw_etag_equal(GW_STR("\"25F9E794323B453885F5181F1B624D0B\""),
                     "25f9e794323b453885f5181f1b624d0b") &&
           gw_etag_equal(GW_STR("01a20f455b85f3998fabf8a02c1fc964-3"),
                         "01a20f455b85f3998fabf8a02c1fc964-3") &&
           !gw_etag_equal(GW_STR("01a20f455b85f3998fabf8a02c1fc964-2"),
                          "01a20f455b85f3998fabf8a02c1fc964-3") &&
           !gw_etag_equal(GW_STR("\"\""), "") &&
           !gw_etag_equal(GW_STR("25f9e794323b453885f5181f1b624d0b"), "25f9e794323b4538"),
       "ETag comparison ignores quotes and hex case, nothing else");
}

/* ---- multipart checksums ---- */

static void test_composite_known(void)
{
    /* python3 -c 'import zlib,hashlib,base64,struct; p=[b"a"*5, b"b"*3, b"lode"];
     *   c=b"".join(struct.pack(">I", zlib.crc32(x)) for x in p);
     *   print(base64.b64encode(struct.pack(">I", zlib.crc32(c))).decode() + "-3");
     *   s=b"".join(hashlib.sha256(x).digest() for x in p);
     *   print(base64.b64encode(hashlib.sha256(s).digest()).decode() + "-3");
     *   print(base64.b64encode(struct.pack(">I", zlib.crc32(b"".join(p)))).decode())' */
    static const struct {
        enum gw_cksum_alg alg;
        enum gw_cksum_type type;
        const char *want;
    } known[] = {
        {GW_CKSUM_CRC32, GW_CKSUM_TYPE_COMPOSITE, "RgXS2g==-3"},
        {GW_CKSUM_SHA256, GW_CKSUM_TYPE_COMPOSITE,
         "suBNxBL2ITdDSNbvrAhO6M1CVugFlxxWvqOGcU+cPZ8=-3"},
        {GW_CKSUM_CRC32, GW_CKSUM_TYPE_FULL_OBJECT, "hNHdHg=="},
    };
    const char *data[] = {"aaaaa", "bbb", "lode"};
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
        struct gw_cksum_mp m;
        struct gw_cksum_value part, out;
        int rc = gw_cksum_mp_init(&m, known[k].alg, known[k].type);
        for (int i = 0; rc == 0 && i < 3; i++) {
            rc = gw_cksum_compute(known[k].alg, data[i], strlen(data[i]), &part);
            rc = rc ? rc : gw_cksum_mp_add(&m, &part, strlen(data[i]));
        }
        rc = rc ? rc : gw_cksum_mp_final(&m, &out);
        gw_cksum_mp_close(&m);
        ok(rc == 0 && strcmp(out.text, known[k].want) == 0, "%s %s of three parts: %s",
           gw_cksum_type_name(known[k].type), gw_cksum_alg_name(known[k].alg), out.text);
    }
}

/* Splits a random buffer into random parts (some empty) and checks both multipart forms
 * against a direct computation. */
static void test_multipart_random(void)
{
    enum { LEN = 200000, MAXP = 40 };
    uint8_t *buf = malloc(LEN);
    fill_random(buf, LEN);
    int bad_comp[GW_CKSUM_ALG_COUNT] = {0}, bad_full[GW_CKSUM_ALG_COUNT] = {0};
    for (int round = 0; round < 20; round++) {
        size_t cuts[MAXP + 1];
        unsigned np = 1 + (unsigned)(rng() % MAXP);
        cuts[0] = 0;
        cuts[np] = round == 0 ? 0 : LEN; /* round 0: every part empty */
        for (unsigned i = 1; i < np; i++)
            cuts[i] = cuts[np] ? rng() % cuts[np] : 0;
        for (unsigned i = 1; i < np; i++) /* insertion sort: the cut points in order */
            for (unsigned j = i; j > 1 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        for (int a = GW_CKSUM_CRC32; a <= GW_CKSUM_SHA256; a++) {
            enum gw_cksum_alg alg = (enum gw_cksum_alg)a;
            size_t sz = gw_cksum_alg_size(alg);
            uint8_t concat[MAXP * GW_CKSUM_MAX_RAW];
            struct gw_cksum_mp comp, full;
            int rc = gw_cksum_mp_init(&comp, alg, GW_CKSUM_TYPE_COMPOSITE);
            int rcf = gw_cksum_alg_is_crc(alg)
                          ? gw_cksum_mp_init(&full, alg, GW_CKSUM_TYPE_FULL_OBJECT)
                          : -1;
            for (unsigned i = 0; i < np; i++) {
                struct gw_cksum_value part;
                size_t plen = cuts[i + 1] - cuts[i];
                rc = rc ? rc : gw_cksum_compute(alg, buf + cuts[i], plen, &part);
                memcpy(concat + i * sz, part.raw, sz);
                rc = rc ? rc : gw_cksum_mp_add(&comp, &part, plen);
                if (rcf == 0)
                    rcf = gw_cksum_mp_add(&full, &part, plen);
            }
            struct gw_cksum_value got, want;
            rc = rc ? rc : gw_cksum_mp_final(&comp, &got);
            rc = rc ? rc : gw_cksum_compute(alg, concat, np * sz, &want);
            if (rc != 0 || got.parts != np || memcmp(got.raw, want.raw, sz) != 0 ||
                strncmp(got.text, want.text, strlen(want.text)) != 0)
                bad_comp[a]++;
            gw_cksum_mp_close(&comp);
            if (gw_cksum_alg_is_crc(alg)) {
                rcf = rcf ? rcf : gw_cksum_mp_final(&full, &got);
                rcf = rcf ? rcf : gw_cksum_compute(alg, buf, cuts[np], &want);
                if (rcf != 0 || got.parts != 0 || strcmp(got.text, want.text) != 0)
                    bad_full[a]++;
                gw_cksum_mp_close(&full);
            }
        }
    }
    for (int a = GW_CKSUM_CRC32; a <= GW_CKSUM_SHA256; a++) {
        ok(bad_comp[a] == 0,
           "COMPOSITE %s over 20 random splits equals the checksum of the "
           "parts' checksums (%d differ)",
           gw_cksum_alg_name((enum gw_cksum_alg)a), bad_comp[a]);
        if (gw_cksum_alg_is_crc((enum gw_cksum_alg)a))
            ok(bad_full[a] == 0,
               "FULL_OBJECT %s over 20 random splits equals the CRC of the "
               "whole (%d differ)",
               gw_cksum_alg_name((enum gw_cksum_alg)a), bad_full[a]);
    }
    free(buf);
}

static void test_combine(void)
{
    /* Long zero runs: combining with the CRC of 3 MiB of zeros equals the direct CRC. */
    enum { Z = 3 << 20 };
    uint8_t *buf = calloc(1, Z + 100);
    fill_random(buf, 100);
    int bad = 0;
    for (size_t i = 0; i < N_CRCS; i++) {
        enum gw_cksum_alg alg = crcs[i].alg;
        uint64_t a = crc_of(alg, buf, 100), b = crc_of(alg, buf + 100, Z);
        if (gw_crc_combine(alg, a, b, Z) != crc_of(alg, buf, Z + 100))
            bad++;
        /* Shifting by n1 then n2 is shifting by n1 + n2, also far beyond what can be hashed:
         * this exercises the high powers of the table. */
        uint64_t n1 = (rng() >> 4) | (1ull << 58), n2 = rng() >> 4;
        uint64_t twice = gw_crc_combine(alg, gw_crc_combine(alg, a, 0, n1), 0, n2);
        if (twice != gw_crc_combine(alg, a, 0, n1 + n2))
            bad++;
        if (gw_crc_combine(alg, a, b, 0) != (a ^ b))
            bad++;
    }
    ok(bad == 0, "CRC combination over long and huge lengths (%d wrong)", bad);
    ok(gw_crc_combine(GW_CKSUM_SHA1, 1, 2, 3) == 0, "no combination for digests");
    free(buf);

    struct gw_cksum_mp m;
    ok(gw_cksum_mp_init(&m, GW_CKSUM_SHA1, GW_CKSUM_TYPE_FULL_OBJECT) == -EINVAL &&
           gw_cksum_mp_init(&m, GW_CKSUM_MD5, GW_CKSUM_TYPE_COMPOSITE) == -EINVAL &&
           gw_cksum_mp_init(&m, GW_CKSUM_CRC32, GW_CKSUM_TYPE_NONE) == -EINVAL,
       "multipart builder refuses impossible pairings");
    gw_cksum_mp_close(&m);
    struct gw_cksum_value v, out;
    gw_cksum_compute(GW_CKSUM_CRC32C, "x", 1, &v);
    int rc = gw_cksum_mp_init(&m, GW_CKSUM_CRC32, GW_CKSUM_TYPE_FULL_OBJECT);
    ok(rc == 0 && gw_cksum_mp_final(&m, &out) == -EINVAL && gw_cksum_mp_add(&m, &v, 1) == -EINVAL,
       "multipart builder: no parts, or a part of another algorithm, refused");
    gw_cksum_mp_close(&m);
}

/* ---- throughput (diagnostics only) ---- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void bench(void)
{
    enum { MIB = 1 << 20 };
    uint8_t *buf = malloc(MIB);
    fill_random(buf, MIB);
    const double budget = 0.15;
    for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT + 2; a++) {
        unsigned mask;
        const char *name;
        if (a < GW_CKSUM_ALG_COUNT) {
            mask = GW_CKSUM_BIT(a);
            name = gw_cksum_alg_name((enum gw_cksum_alg)a);
        } else if (a == GW_CKSUM_ALG_COUNT) {
            mask = GW_CKSUM_BIT(GW_CKSUM_MD5) | GW_CKSUM_BIT(GW_CKSUM_CRC64NVME);
            name = "set MD5+CRC64NVME";
        } else {
            mask = GW_CKSUM_BIT(GW_CKSUM_MD5) | GW_CKSUM_BIT(GW_CKSUM_SHA256) |
                   GW_CKSUM_BIT(GW_CKSUM_CRC32C);
            name = "set MD5+SHA256+CRC32C";
        }
        struct gw_cksum_set s;
        struct gw_cksum_set_result r;
        if (gw_cksum_set_init(&s, mask) != 0)
            continue;
        double t0 = now_s(), t;
        unsigned long n = 0;
        do {
            gw_cksum_set_update(&s, buf, MIB);
            n++;
            t = now_s() - t0;
        } while (t < budget);
        gw_cksum_set_final(&s, &r);
        gw_cksum_set_close(&s);
        diag("throughput %-22s %7.2f GB/s (1 MiB buffers, %lu MiB)", name,
             (double)n * MIB / t / 1e9, n);
    }
    double t0 = now_s(), t;
    unsigned long n = 0;
    uint64_t c = 0;
    do {
        c = gw_crc64nvme_portable(c, buf, MIB);
        n++;
        t = now_s() - t0;
    } while (t < budget);
    diag("throughput %-22s %7.2f GB/s (1 MiB buffers, %lu MiB)", "CRC64NVME portable",
         (double)n * MIB / t / 1e9, n);
    free(buf);
}

int main(void)
{
    const char *seed_env = getenv("LODE_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    rng_state = seed ? seed : 1;
    diag("seed %llu (LODE_TEST_SEED replays)", (unsigned long long)seed);

    test_crc_check_values();
    test_crc_random();
    test_digest_vectors();
    test_s3_text();
    test_streaming();
    test_parse();
    test_names();
    test_request();
    test_etag();
    test_composite_known();
    test_multipart_random();
    test_combine();
    bench();
    return tap_done();
}
