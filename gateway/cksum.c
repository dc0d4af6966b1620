#include "gateway/cksum.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <isa-l/crc.h>
#include <isa-l/crc64.h>
#include <openssl/evp.h>

#include <lode/errno.h>

#include "common/hmac.h"
#include "gateway/s3_util.h"

/* Everything the rest of the file needs to know about an algorithm, in one row. The messages
 * are S3's own wording, so that clients and people searching for them find what they expect. */
struct alg_info {
    const char *name;
    const char *header;
    const char *invalid;  /* malformed value */
    const char *mismatch; /* BadDigest */
    size_t size;
};

static const struct alg_info algs[GW_CKSUM_ALG_COUNT] = {
    [GW_CKSUM_NONE] = {"", NULL, "No checksum algorithm.", "No checksum algorithm.", 0},
    [GW_CKSUM_CRC32] = {"CRC32", "x-amz-checksum-crc32",
                        "Value for x-amz-checksum-crc32 header is invalid.",
                        "The CRC32 you specified did not match the calculated checksum.", 4},
    [GW_CKSUM_CRC32C] = {"CRC32C", "x-amz-checksum-crc32c",
                         "Value for x-amz-checksum-crc32c header is invalid.",
                         "The CRC32C you specified did not match the calculated checksum.", 4},
    [GW_CKSUM_CRC64NVME] = {"CRC64NVME", "x-amz-checksum-crc64nvme",
                            "Value for x-amz-checksum-crc64nvme header is invalid.",
                            "The CRC64NVME you specified did not match the calculated checksum.",
                            8},
    [GW_CKSUM_SHA1] = {"SHA1", "x-amz-checksum-sha1",
                       "Value for x-amz-checksum-sha1 header is invalid.",
                       "The SHA1 you specified did not match the calculated checksum.", 20},
    [GW_CKSUM_SHA256] = {"SHA256", "x-amz-checksum-sha256",
                         "Value for x-amz-checksum-sha256 header is invalid.",
                         "The SHA256 you specified did not match the calculated checksum.", 32},
    [GW_CKSUM_MD5] = {"MD5", NULL, "The Content-MD5 you specified is not valid.",
                      "The Content-MD5 you specified did not match what we received.", 16},
};

static bool alg_valid(enum gw_cksum_alg alg)
{
    return alg > GW_CKSUM_NONE && alg < GW_CKSUM_ALG_COUNT;
}

/* One of the five a client may name. */
static bool alg_is_s3(enum gw_cksum_alg alg)
{
    return alg_valid(alg) && (GW_CKSUM_S3_MASK & GW_CKSUM_BIT(alg));
}

const char *gw_cksum_alg_name(enum gw_cksum_alg alg)
{
    return alg_valid(alg) ? algs[alg].name : "";
}

const char *gw_cksum_alg_header(enum gw_cksum_alg alg)
{
    return alg_valid(alg) ? algs[alg].header : NULL;
}

size_t gw_cksum_alg_size(enum gw_cksum_alg alg)
{
    return alg_valid(alg) ? algs[alg].size : 0;
}

bool gw_cksum_alg_is_crc(enum gw_cksum_alg alg)
{
    return alg == GW_CKSUM_CRC32 || alg == GW_CKSUM_CRC32C || alg == GW_CKSUM_CRC64NVME;
}

static const char unsupported_alg_msg[] =
    "Checksum algorithm provided is unsupported. Please try again with any of the valid "
    "types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]";

enum gw_s3_error gw_cksum_alg_parse(struct gw_str value, enum gw_cksum_alg *out,
                                    const char **msg)
{
    *out = GW_CKSUM_NONE;
    for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT; a++) {
        if (alg_is_s3((enum gw_cksum_alg)a) && gw_str_ieq(value, algs[a].name)) {
            *out = (enum gw_cksum_alg)a;
            return GW_S3_OK;
        }
    }
    *msg = unsupported_alg_msg;
    return GW_S3_INVALID_REQUEST;
}

enum gw_cksum_alg gw_cksum_alg_from_header(struct gw_str name)
{
    for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT; a++)
        if (algs[a].header && gw_str_ieq(name, algs[a].header))
            return (enum gw_cksum_alg)a;
    return GW_CKSUM_NONE;
}

enum gw_s3_error gw_cksum_type_parse(struct gw_str value, enum gw_cksum_type *out,
                                     const char **msg)
{
    if (gw_str_ieq(value, "COMPOSITE")) {
        *out = GW_CKSUM_TYPE_COMPOSITE;
        return GW_S3_OK;
    }
    if (gw_str_ieq(value, "FULL_OBJECT")) {
        *out = GW_CKSUM_TYPE_FULL_OBJECT;
        return GW_S3_OK;
    }
    *out = GW_CKSUM_TYPE_NONE;
    *msg = "Value for x-amz-checksum-type header is invalid.";
    return GW_S3_INVALID_REQUEST;
}

const char *gw_cksum_type_name(enum gw_cksum_type type)
{
    switch (type) {
    case GW_CKSUM_TYPE_COMPOSITE:
        return "COMPOSITE";
    case GW_CKSUM_TYPE_FULL_OBJECT:
        return "FULL_OBJECT";
    default:
        return "";
    }
}

enum gw_s3_error gw_cksum_type_check(enum gw_cksum_alg alg, enum gw_cksum_type type,
                                     const char **msg)
{
    if (!alg_is_s3(alg)) {
        *msg = unsupported_alg_msg;
        return GW_S3_INVALID_REQUEST;
    }
    switch (type) {
    case GW_CKSUM_TYPE_COMPOSITE:
        if (alg == GW_CKSUM_CRC64NVME) {
            *msg = "The COMPOSITE checksum type cannot be used with the crc64nvme checksum "
                   "algorithm.";
            return GW_S3_INVALID_REQUEST;
        }
        return GW_S3_OK;
    case GW_CKSUM_TYPE_FULL_OBJECT:
        if (!gw_cksum_alg_is_crc(alg)) {
            *msg = alg == GW_CKSUM_SHA1 ? "The FULL_OBJECT checksum type cannot be used with "
                                          "the sha1 checksum algorithm."
                                        : "The FULL_OBJECT checksum type cannot be used with "
                                          "the sha256 checksum algorithm.";
            return GW_S3_INVALID_REQUEST;
        }
        return GW_S3_OK;
    default:
        *msg = "Value for x-amz-checksum-type header is invalid.";
        return GW_S3_INVALID_REQUEST;
    }
}

enum gw_cksum_type gw_cksum_default_type(enum gw_cksum_alg alg)
{
    if (alg == GW_CKSUM_CRC64NVME)
        return GW_CKSUM_TYPE_FULL_OBJECT;
    return alg_is_s3(alg) ? GW_CKSUM_TYPE_COMPOSITE : GW_CKSUM_TYPE_NONE;
}

/* ---- request headers ---- */

enum gw_s3_error gw_cksum_request_parse(const struct gw_request_head *head,
                                        struct gw_cksum_request *out, const char **msg)
{
    static const char sdk_invalid[] = "Value for x-amz-sdk-checksum-algorithm header is invalid.";
    memset(out, 0, sizeof(*out));
    const struct gw_header *value_hdr = NULL, *sdk_hdr = NULL;
    enum gw_cksum_alg value_alg = GW_CKSUM_NONE, sdk_alg = GW_CKSUM_NONE;
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct gw_header *h = &head->headers[i];
        enum gw_cksum_alg a = gw_cksum_alg_from_header(h->name);
        if (a != GW_CKSUM_NONE) {
            if (value_hdr) {
                *msg = "Expecting a single x-amz-checksum- header. Multiple checksum Types "
                       "are not allowed.";
                return GW_S3_INVALID_REQUEST;
            }
            value_hdr = h;
            value_alg = a;
        } else if (gw_str_ieq(h->name, "x-amz-sdk-checksum-algorithm")) {
            if (sdk_hdr) {
                *msg = sdk_invalid;
                return GW_S3_INVALID_REQUEST;
            }
            sdk_hdr = h;
        }
    }
    if (sdk_hdr) {
        const char *ignored;
        if (gw_cksum_alg_parse(sdk_hdr->value, &sdk_alg, &ignored) != GW_S3_OK ||
            (value_hdr && sdk_alg != value_alg)) {
            *msg = sdk_invalid;
            return GW_S3_INVALID_REQUEST;
        }
    }
    if (value_hdr) {
        enum gw_s3_error e =
            gw_cksum_parse(value_alg, value_hdr->value, false, &out->value, msg);
        if (e != GW_S3_OK) {
            memset(&out->value, 0, sizeof(out->value));
            return e;
        }
        out->has_value = true;
    }
    out->alg = value_hdr ? value_alg : sdk_alg;
    return GW_S3_OK;
}

/* ---- CRC machinery ---- */

/* A reflected CRC's polynomial arithmetic. In the reflected form the most significant bit of
 * the width holds the coefficient of x^0, so multiplying by x is a right shift. */
struct crc_poly {
    unsigned width;
    uint64_t poly;      /* reflected, without the x^width term */
    uint64_t x2n[67];   /* x^(2^k) mod poly: enough for x^(8 * any 64-bit length) */
};

static struct crc_poly poly_crc32 = {32, 0xEDB88320u, {0}};
static struct crc_poly poly_crc32c = {32, 0x82F63B78u, {0}};
static struct crc_poly poly_crc64 = {64, 0x9A6C9329AC4BC9B5ull, {0}};

/* The slicing-by-8 tables of the portable CRC64NVME. */
static uint64_t crc64_table[8][256];

static uint64_t gf2_mul(const struct crc_poly *p, uint64_t a, uint64_t b)
{
    uint64_t r = 0;
    for (uint64_t m = 1ull << (p->width - 1); m; m >>= 1) {
        if (a & m)
            r ^= b;
        b = (b & 1) ? (b >> 1) ^ p->poly : b >> 1;
    }
    return r;
}

static void poly_build(struct crc_poly *p)
{
    p->x2n[0] = 1ull << (p->width - 2); /* x^1 */
    for (size_t k = 1; k < sizeof(p->x2n) / sizeof(p->x2n[0]); k++)
        p->x2n[k] = gf2_mul(p, p->x2n[k - 1], p->x2n[k - 1]);
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_build(void)
{
    poly_build(&poly_crc32);
    poly_build(&poly_crc32c);
    poly_build(&poly_crc64);
    for (unsigned i = 0; i < 256; i++) {
        uint64_t c = i;
        for (int b = 0; b < 8; b++)
            c = (c & 1) ? (c >> 1) ^ poly_crc64.poly : c >> 1;
        crc64_table[0][i] = c;
    }
    for (unsigned i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) {
            uint64_t prev = crc64_table[t - 1][i];
            crc64_table[t][i] = (prev >> 8) ^ crc64_table[0][prev & 0xff];
        }
}

uint64_t gw_crc_combine(enum gw_cksum_alg alg, uint64_t crc_a, uint64_t crc_b, uint64_t len_b)
{
    const struct crc_poly *p;
    switch (alg) {
    case GW_CKSUM_CRC32:
        p = &poly_crc32;
        break;
    case GW_CKSUM_CRC32C:
        p = &poly_crc32c;
        break;
    case GW_CKSUM_CRC64NVME:
        p = &poly_crc64;
        break;
    default:
        return 0;
    }
    pthread_once(&tables_once, tables_build);
    /* All three CRCs start from all ones and end with an all-ones xor, so those terms cancel
     * and crc(A||B) = crc(A) * x^(8 len(B)) + crc(B) (mod P): feeding len(B) zero bytes
     * through a register is multiplying it by x^(8 len(B)). */
    uint64_t v = crc_a;
    for (unsigned k = 3; len_b; k++, len_b >>= 1)
        if (len_b & 1)
            v = gf2_mul(p, v, p->x2n[k]);
    return v ^ crc_b;
}

uint64_t gw_crc64nvme_portable(uint64_t crc, const void *data, size_t len)
{
    pthread_once(&tables_once, tables_build);
    const uint8_t *s = data;
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        c ^= le64toh(w);
        c = crc64_table[7][c & 0xff] ^ crc64_table[6][(c >> 8) & 0xff] ^
            crc64_table[5][(c >> 16) & 0xff] ^ crc64_table[4][(c >> 24) & 0xff] ^
            crc64_table[3][(c >> 32) & 0xff] ^ crc64_table[2][(c >> 40) & 0xff] ^
            crc64_table[1][(c >> 48) & 0xff] ^ crc64_table[0][c >> 56];
        s += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc64_table[0][(c ^ *s++) & 0xff];
    return ~c;
}

const char *gw_cksum_crc64_backend(void)
{
#ifdef HAVE_ISAL_CRC64_ROCKSOFT
    return "isa-l";
#else
    return "portable";
#endif
}

/* Every running CRC is kept finished (as it would be shown), so that chaining, combining and
 * the final value all use one convention. */
static uint64_t crc_update(enum gw_cksum_alg alg, uint64_t crc, const uint8_t *p, size_t len)
{
    switch (alg) {
    case GW_CKSUM_CRC32:
        return crc32_gzip_refl((uint32_t)crc, p, len);
    case GW_CKSUM_CRC32C: {
        /* crc32_iscsi takes an int length and works on the un-inverted register. */
        uint32_t reg = ~(uint32_t)crc;
        while (len) {
            size_t n = len < (1u << 30) ? len : (1u << 30);
            reg = crc32_iscsi((unsigned char *)p, (int)n, reg);
            p += n;
            len -= n;
        }
        return ~reg;
    }
    case GW_CKSUM_CRC64NVME:
#ifdef HAVE_ISAL_CRC64_ROCKSOFT
        return crc64_rocksoft_refl(crc, p, len);
#else
        return gw_crc64nvme_portable(crc, p, len);
#endif
    default:
        return crc;
    }
}

uint64_t gw_crc_from_value(const struct gw_cksum_value *v)
{
    uint64_t n = 0;
    for (size_t i = 0; i < v->len && i < 8; i++)
        n = (n << 8) | v->raw[i];
    return n;
}

static void crc_to_value(enum gw_cksum_alg alg, uint64_t crc, struct gw_cksum_value *out)
{
    uint8_t raw[8];
    size_t n = algs[alg].size;
    for (size_t i = 0; i < n; i++)
        raw[i] = (uint8_t)(crc >> (8 * (n - 1 - i)));
    gw_cksum_value_set(out, alg, raw, n, 0);
}

/* ---- digests ---- */

/* Fetching walks OpenSSL's provider tables under a lock: do it once, keep the immutable
 * results for the life of the process. */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_algs[GW_CKSUM_ALG_COUNT];

static void md_fetch(void)
{
    md_algs[GW_CKSUM_SHA1] = EVP_MD_fetch(NULL, "SHA1", NULL);
    md_algs[GW_CKSUM_SHA256] = EVP_MD_fetch(NULL, "SHA256", NULL);
    md_algs[GW_CKSUM_MD5] = EVP_MD_fetch(NULL, "MD5", NULL);
}

/* ---- one algorithm ---- */

int gw_cksum_init(struct gw_cksum *c, enum gw_cksum_alg alg)
{
    memset(c, 0, sizeof(*c));
    if (!alg_valid(alg))
        return -EINVAL;
    if (gw_cksum_alg_is_crc(alg)) {
        c->alg = alg;
        return 0;
    }
    pthread_once(&md_once, md_fetch);
    if (!md_algs[alg])
        return LODE_EINTERNAL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return -ENOMEM;
    if (EVP_DigestInit_ex2(md, md_algs[alg], NULL) != 1) {
        EVP_MD_CTX_free(md);
        return LODE_EINTERNAL;
    }
    c->alg = alg;
    c->md = md;
    return 0;
}

void gw_cksum_update(struct gw_cksum *c, const void *data, size_t len)
{
    if (len == 0 || c->err)
        return;
    c->len += len;
    if (gw_cksum_alg_is_crc(c->alg))
        c->crc = crc_update(c->alg, c->crc, data, len);
    else if (!c->md || EVP_DigestUpdate(c->md, data, len) != 1)
        c->err = LODE_EINTERNAL;
}

int gw_cksum_final(struct gw_cksum *c, struct gw_cksum_value *out)
{
    memset(out, 0, sizeof(*out));
    if (c->err)
        return c->err;
    if (gw_cksum_alg_is_crc(c->alg)) {
        crc_to_value(c->alg, c->crc, out);
        return 0;
    }
    uint8_t raw[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!c->md || EVP_DigestFinal_ex(c->md, raw, &n) != 1 || n != algs[c->alg].size) {
        c->err = LODE_EINTERNAL;
        return c->err;
    }
    /* A finished EVP context would restart silently on the next update; refuse instead. */
    c->err = -EINVAL;
    return gw_cksum_value_set(out, c->alg, raw, n, 0);
}

void gw_cksum_close(struct gw_cksum *c)
{
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

int gw_cksum_compute(enum gw_cksum_alg alg, const void *data, size_t len,
                     struct gw_cksum_value *out)
{
    struct gw_cksum c;
    int rc = gw_cksum_init(&c, alg);
    if (rc == 0) {
        gw_cksum_update(&c, data, len);
        rc = gw_cksum_final(&c, out);
    }
    gw_cksum_close(&c);
    return rc;
}

/* ---- several algorithms ---- */

/* Small enough that a slice hashed by MD5 is still in L1/L2 when the CRC and SHA contexts
 * read it, large enough that per-call overhead (EVP dispatch, CRC folding set-up) is noise. */
#define SET_SLICE (32u * 1024u)

int gw_cksum_set_init(struct gw_cksum_set *s, unsigned mask)
{
    memset(s, 0, sizeof(*s));
    if (mask & ~((GW_CKSUM_BIT(GW_CKSUM_ALG_COUNT) - 1u) & ~GW_CKSUM_BIT(GW_CKSUM_NONE)))
        return -EINVAL;
    for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT; a++) {
        if (!(mask & GW_CKSUM_BIT(a)))
            continue;
        int rc = gw_cksum_init(&s->ctx[a], (enum gw_cksum_alg)a);
        if (rc != 0) {
            gw_cksum_set_close(s);
            s->mask = 0;
            return rc;
        }
        s->mask |= GW_CKSUM_BIT(a);
    }
    return 0;
}

void gw_cksum_set_update(struct gw_cksum_set *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        size_t n = len < SET_SLICE ? len : SET_SLICE;
        for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT; a++)
            if (s->mask & GW_CKSUM_BIT(a))
                gw_cksum_update(&s->ctx[a], p, n);
        p += n;
        len -= n;
    }
}

int gw_cksum_set_final(struct gw_cksum_set *s, struct gw_cksum_set_result *r)
{
    memset(r, 0, sizeof(*r));
    r->mask = s->mask;
    int first = 0;
    for (int a = GW_CKSUM_CRC32; a < GW_CKSUM_ALG_COUNT; a++) {
        if (!(s->mask & GW_CKSUM_BIT(a)))
            continue;
        int rc = gw_cksum_final(&s->ctx[a], &r->v[a]);
        if (rc != 0 && first == 0)
            first = rc;
    }
    return first;
}

void gw_cksum_set_close(struct gw_cksum_set *s)
{
    for (int a = 0; a < GW_CKSUM_ALG_COUNT; a++)
        gw_cksum_close(&s->ctx[a]);
}

/* ---- values ---- */

int gw_cksum_value_set(struct gw_cksum_value *v, enum gw_cksum_alg alg, const void *raw,
                       size_t len, unsigned parts)
{
    memset(v, 0, sizeof(*v));
    if (!alg_valid(alg) || len != algs[alg].size || parts > GW_MULTIPART_MAX_PARTS)
        return -EINVAL;
    v->alg = alg;
    v->len = len;
    v->parts = parts;
    memcpy(v->raw, raw, len);
    size_t n = gw_base64_encode(raw, len, v->text);
    if (parts)
        snprintf(v->text + n, sizeof(v->text) - n, "-%u", parts);
    return 0;
}

/* "-N" with 1 <= N <= 10000, no sign, no leading zero. */
static bool parse_parts(struct gw_str s, unsigned *parts)
{
    if (s.n < 2 || s.n > 6 || s.p[0] != '-' || s.p[1] == '0')
        return false;
    unsigned v = 0;
    for (size_t i = 1; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s.p[i] - '0');
    }
    if (v > GW_MULTIPART_MAX_PARTS)
        return false;
    *parts = v;
    return true;
}

enum gw_s3_error gw_cksum_parse(enum gw_cksum_alg alg, struct gw_str text, bool allow_parts,
                                struct gw_cksum_value *out, const char **msg)
{
    memset(out, 0, sizeof(*out));
    if (!alg_valid(alg)) {
        *msg = unsupported_alg_msg;
        return GW_S3_INVALID_REQUEST;
    }
    struct gw_str b64 = text;
    unsigned parts = 0;
    /* '-' is not in the base64 alphabet, so the first one starts the part count. */
    const char *dash = text.n ? memchr(text.p, '-', text.n) : NULL;
    if (dash) {
        b64.n = (size_t)(dash - text.p);
        struct gw_str suffix = {dash, text.n - b64.n};
        if (!allow_parts || !parse_parts(suffix, &parts))
            goto invalid;
    }
    uint8_t raw[GW_CKSUM_MAX_RAW];
    size_t n;
    if (b64.n != GW_BASE64_LEN(algs[alg].size) ||
        gw_base64_decode(b64.p, b64.n, raw, sizeof(raw), &n) != 0 ||
        n != algs[alg].size)
        goto invalid;
    gw_cksum_value_set(out, alg, raw, n, parts);
    return GW_S3_OK;
invalid:
    *msg = algs[alg].invalid;
    return GW_S3_INVALID_REQUEST;
}

enum gw_s3_error gw_cksum_check(const struct gw_cksum_value *computed,
                                const struct gw_cksum_value *claimed, const char **msg)
{
    if (computed->alg == claimed->alg && computed->parts == claimed->parts &&
        computed->len == claimed->len && computed->len <= GW_CKSUM_MAX_RAW &&
        cmn_ct_equal(computed->raw, claimed->raw, computed->len))
        return GW_S3_OK;
    *msg = algs[alg_valid(computed->alg) ? computed->alg : GW_CKSUM_NONE].mismatch;
    return GW_S3_BAD_DIGEST;
}

/* ---- multipart ---- */

int gw_cksum_mp_init(struct gw_cksum_mp *m, enum gw_cksum_alg alg, enum gw_cksum_type type)
{
    memset(m, 0, sizeof(*m));
    if (!alg_valid(alg) || alg == GW_CKSUM_MD5)
        return -EINVAL;
    if (type == GW_CKSUM_TYPE_FULL_OBJECT) {
        if (!gw_cksum_alg_is_crc(alg))
            return -EINVAL;
    } else if (type == GW_CKSUM_TYPE_COMPOSITE) {
        int rc = gw_cksum_init(&m->inner, alg);
        if (rc != 0)
            return rc;
    } else {
        return -EINVAL;
    }
    m->alg = alg;
    m->type = type;
    return 0;
}

int gw_cksum_mp_add(struct gw_cksum_mp *m, const struct gw_cksum_value *part, uint64_t part_len)
{
    if (m->alg == GW_CKSUM_NONE || part->alg != m->alg || part->parts != 0 ||
        part->len != algs[m->alg].size)
        return -EINVAL;
    if (m->parts >= GW_MULTIPART_MAX_PARTS || part_len > UINT64_MAX - m->len)
        return LODE_ETOOLARGE;
    if (m->type == GW_CKSUM_TYPE_FULL_OBJECT)
        m->crc = gw_crc_combine(m->alg, m->crc, gw_crc_from_value(part), part_len);
    else
        gw_cksum_update(&m->inner, part->raw, part->len);
    m->len += part_len;
    m->parts++;
    return 0;
}

int gw_cksum_mp_final(struct gw_cksum_mp *m, struct gw_cksum_value *out)
{
    memset(out, 0, sizeof(*out));
    if (m->alg == GW_CKSUM_NONE || m->parts == 0)
        return -EINVAL;
    if (m->type == GW_CKSUM_TYPE_FULL_OBJECT) {
        crc_to_value(m->alg, m->crc, out);
        return 0;
    }
    struct gw_cksum_value v;
    int rc = gw_cksum_final(&m->inner, &v);
    if (rc != 0)
        return rc;
    return gw_cksum_value_set(out, v.alg, v.raw, v.len, m->parts);
}

void gw_cksum_mp_close(struct gw_cksum_mp *m)
{
    gw_cksum_close(&m->inner);
}
