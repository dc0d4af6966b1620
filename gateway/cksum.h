/* Checksums the gateway computes while a body streams through it: CRC32, CRC32C, CRC64NVME,
 * SHA-1 and SHA-256 (the x-amz-checksum-* family) and MD5 (ETags, Content-MD5), their S3 text
 * forms, and the two multipart forms. No I/O, no clocks, no global mutable state (the CRC
 * tables and the fetched OpenSSL digests are built once, under pthread_once, and are
 * read-only afterwards).
 *
 * S3 shows every checksum as the base64 of its raw big-endian bytes: CRC32 and CRC32C 4 bytes,
 * CRC64NVME 8, SHA-1 20, SHA-256 32 (MD5 16, in Content-MD5). A multipart object has either
 *   - a COMPOSITE checksum: the algorithm applied to the concatenation of the parts' raw
 *     checksums, shown as "<base64>-<number of parts>"; or
 *   - a FULL_OBJECT checksum (CRCs only): the CRC of the whole object, which
 *     CompleteMultipartUpload derives from the parts' CRCs and lengths without reading any
 *     data (CRC combination in GF(2)).
 *
 * Usage on a PUT:
 *     struct gw_cksum_set set;
 *     gw_cksum_set_init(&set, GW_CKSUM_BIT(GW_CKSUM_MD5) | GW_CKSUM_BIT(client_alg));
 *     for each received slice: gw_cksum_set_update(&set, p, n);
 *     gw_cksum_set_final(&set, &res);     // res.v[GW_CKSUM_MD5] -> ETag, res.v[client_alg]
 *     gw_cksum_check(&res.v[client_alg], &claimed, &msg);   // BadDigest on mismatch
 *     gw_cksum_set_close(&set);
 *
 * Cost: MD5 runs at well under 1 GB/s per core and dominates every PUT; the CRCs (ISA-L)
 * are more than ten times faster. A PUT path that must go faster than one core's MD5 should
 * hash on a thread of its own, beside the erasure coding, rather than in the receiving loop.
 *
 * Errors towards clients are an enum gw_s3_error plus a static message (never freed, valid
 * forever). Errors that only a programming mistake or an allocation failure can cause are a
 * negative code from <lode/errno.h>.
 */
#ifndef LODE_GATEWAY_CKSUM_H
#define LODE_GATEWAY_CKSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gw_types.h"
#include "gateway/s3_error.h"

enum gw_cksum_alg {
    GW_CKSUM_NONE = 0,
    GW_CKSUM_CRC32,     /* ISO-HDLC CRC-32, as zlib and gzip compute it */
    GW_CKSUM_CRC32C,    /* Castagnoli, as iSCSI computes it */
    GW_CKSUM_CRC64NVME, /* NVMe CRC-64 (polynomial 0xAD93D23594C93659, reflected) */
    GW_CKSUM_SHA1,
    GW_CKSUM_SHA256,
    GW_CKSUM_MD5,       /* not an x-amz-checksum algorithm: ETags and Content-MD5 only */
    GW_CKSUM_ALG_COUNT
};

#define GW_CKSUM_BIT(alg) (1u << (unsigned)(alg))
/* The algorithms a client may name in x-amz-checksum-* / x-amz-*checksum-algorithm. */
#define GW_CKSUM_S3_MASK                                                                   \
    (GW_CKSUM_BIT(GW_CKSUM_CRC32) | GW_CKSUM_BIT(GW_CKSUM_CRC32C) |                        \
     GW_CKSUM_BIT(GW_CKSUM_CRC64NVME) | GW_CKSUM_BIT(GW_CKSUM_SHA1) |                      \
     GW_CKSUM_BIT(GW_CKSUM_SHA256))

enum gw_cksum_type {
    GW_CKSUM_TYPE_NONE = 0,
    GW_CKSUM_TYPE_COMPOSITE,
    GW_CKSUM_TYPE_FULL_OBJECT,
};

#define GW_CKSUM_MAX_RAW 32     /* SHA-256 */
#define GW_MULTIPART_MAX_PARTS 10000u
/* base64 of 32 bytes (44) + "-10000" + NUL */
#define GW_CKSUM_TEXT_MAX 52

/* A computed or client-supplied checksum. */
struct gw_cksum_value {
    enum gw_cksum_alg alg;
    size_t len;                     /* raw bytes: gw_cksum_alg_size(alg) */
    uint8_t raw[GW_CKSUM_MAX_RAW];  /* big-endian for the CRCs */
    unsigned parts;                 /* 0: of the bytes themselves; N: COMPOSITE of N parts */
    char text[GW_CKSUM_TEXT_MAX];   /* as S3 shows it: base64, plus "-N" when parts > 0 */
};

/* ---- algorithms and their names ---- */

/* "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "MD5"; "" for NONE or out of range.
 * Static strings. The upper-case form is what S3 returns in ChecksumAlgorithm elements. */
const char *gw_cksum_alg_name(enum gw_cksum_alg alg);

/* "x-amz-checksum-crc32" ... "x-amz-checksum-sha256" (lower case, as S3 sends them);
 * NULL for MD5, NONE or out of range. Static strings. */
const char *gw_cksum_alg_header(enum gw_cksum_alg alg);

/* Raw size in bytes (4, 4, 8, 20, 32, 16); 0 for NONE or out of range. */
size_t gw_cksum_alg_size(enum gw_cksum_alg alg);

/* True for CRC32, CRC32C and CRC64NVME. */
bool gw_cksum_alg_is_crc(enum gw_cksum_alg alg);

/* The algorithm named by an x-amz-checksum-algorithm or x-amz-sdk-checksum-algorithm value,
 * case-insensitive ("crc32c", "CRC64NVME", ...). MD5 is not accepted: S3 does not list it.
 * Returns GW_S3_OK, or GW_S3_INVALID_REQUEST (unknown, empty) with *msg set. */
enum gw_s3_error gw_cksum_alg_parse(struct gw_str value, enum gw_cksum_alg *out,
                                    const char **msg);

/* The algorithm whose value a header carries: "x-amz-checksum-crc32" -> CRC32, any case.
 * GW_CKSUM_NONE for every other name, including x-amz-checksum-algorithm, -type and -mode.
 * Also serves trailer names (x-amz-trailer). */
enum gw_cksum_alg gw_cksum_alg_from_header(struct gw_str name);

/* An x-amz-checksum-type value: "COMPOSITE" or "FULL_OBJECT", case-insensitive. Returns
 * GW_S3_OK or GW_S3_INVALID_REQUEST with *msg set. */
enum gw_s3_error gw_cksum_type_parse(struct gw_str value, enum gw_cksum_type *out,
                                     const char **msg);

/* "COMPOSITE", "FULL_OBJECT", or "" for NONE. Static strings. */
const char *gw_cksum_type_name(enum gw_cksum_type type);

/* Whether S3 allows this pairing on a multipart upload: CRC32 and CRC32C both types,
 * CRC64NVME FULL_OBJECT only, SHA-1 and SHA-256 COMPOSITE only. Returns GW_S3_OK or
 * GW_S3_INVALID_REQUEST with *msg set. (gw_cksum_mp_init itself computes COMPOSITE for every
 * algorithm, which is what a stored value of another origin may need.) */
enum gw_s3_error gw_cksum_type_check(enum gw_cksum_alg alg, enum gw_cksum_type type,
                                     const char **msg);

/* The type S3 gives a multipart upload that names an algorithm but no type: FULL_OBJECT for
 * CRC64NVME, COMPOSITE for the others. */
enum gw_cksum_type gw_cksum_default_type(enum gw_cksum_alg alg);

/* ---- a request's checksum headers ---- */

/* What a PutObject / UploadPart request says about its checksum. */
struct gw_cksum_request {
    enum gw_cksum_alg alg;        /* NONE when the request names no checksum */
    bool has_value;               /* an x-amz-checksum-<alg> header carried the value */
    struct gw_cksum_value value;  /* valid when has_value */
};

/* Reads x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256} and x-amz-sdk-checksum-algorithm
 * from a request head. A value header gives the algorithm and the claimed value; the SDK
 * header alone gives the algorithm, whose value must then arrive in a trailer (the caller
 * matches x-amz-trailer with gw_cksum_alg_from_header). Refused with GW_S3_INVALID_REQUEST and
 * *msg: more than one value header (also the same one twice), a value that is not the base64
 * of the algorithm's size, an unknown SDK algorithm, an SDK algorithm that differs from the
 * value header's. Nothing is allocated; `out` is always fully written. */
enum gw_s3_error gw_cksum_request_parse(const struct gw_request_head *head,
                                        struct gw_cksum_request *out, const char **msg);

/* ---- streaming, one algorithm ---- */

struct evp_md_ctx_st;

struct gw_cksum {
    enum gw_cksum_alg alg;
    int err;                    /* sticky: 0, or why the digest library failed */
    uint64_t len;               /* bytes fed so far */
    uint64_t crc;               /* CRC algorithms: the running value */
    struct evp_md_ctx_st *md;   /* digest algorithms: owned */
};

/* Starts a checksum of `alg` (any but NONE). Returns 0, -EINVAL (bad alg), LODE_EINTERNAL
 * (the digest is unavailable in the linked OpenSSL) or -ENOMEM. After a failure nothing is
 * held; gw_cksum_close is still allowed. */
int gw_cksum_init(struct gw_cksum *c, enum gw_cksum_alg alg);

/* Feeds len bytes (any length, including 0; data may be NULL when len is 0). A failure inside
 * the digest library is kept and reported by gw_cksum_final. */
void gw_cksum_update(struct gw_cksum *c, const void *data, size_t len);

/* Finishes, once: writes the raw value and its text (parts = 0). Returns 0 or the first
 * error seen since init. The context accepts no more updates afterwards; close it. */
int gw_cksum_final(struct gw_cksum *c, struct gw_cksum_value *out);

/* Releases the context. Idempotent; allowed after a failed init and on a zeroed struct. */
void gw_cksum_close(struct gw_cksum *c);

/* One-shot convenience: init, update, final, close. */
int gw_cksum_compute(enum gw_cksum_alg alg, const void *data, size_t len,
                     struct gw_cksum_value *out);

/* ---- streaming, several algorithms in one pass ---- */

/* Contexts for several algorithms fed together. gw_cksum_set_update walks the data in slices
 * small enough to stay in the L1/L2 cache and updates every context on a slice before moving
 * on, so the body crosses the memory bus once however many checksums are asked for. */
struct gw_cksum_set {
    unsigned mask;                              /* GW_CKSUM_BIT() of each algorithm */
    struct gw_cksum ctx[GW_CKSUM_ALG_COUNT];    /* indexed by algorithm; unused ones NONE */
};

struct gw_cksum_set_result {
    unsigned mask;                                /* as in the set */
    struct gw_cksum_value v[GW_CKSUM_ALG_COUNT];  /* indexed by algorithm */
};

/* Starts one context per bit of mask (GW_CKSUM_BIT(GW_CKSUM_MD5) for the ETag, plus any the
 * client asked for; 0 is allowed and computes nothing). Returns 0, -EINVAL (a bit that names
 * no algorithm), LODE_EINTERNAL or -ENOMEM; after a failure nothing is held. */
int gw_cksum_set_init(struct gw_cksum_set *s, unsigned mask);

/* Feeds len bytes to every context of the set (see gw_cksum_update). */
void gw_cksum_set_update(struct gw_cksum_set *s, const void *data, size_t len);

/* Finishes every context into r->v[alg]. Returns 0 or the first error. Close afterwards. */
int gw_cksum_set_final(struct gw_cksum_set *s, struct gw_cksum_set_result *r);

/* Idempotent; allowed after a failed init. */
void gw_cksum_set_close(struct gw_cksum_set *s);

/* ---- client-supplied values ---- */

/* Decodes a checksum value as a client sends it (header, trailer, XML element): strict
 * base64 of exactly gw_cksum_alg_size(alg) bytes: standard alphabet, '=' padding, unused
 * bits zero (so each value has exactly one accepted text, the one gw_cksum_final renders),
 * no whitespace. With allow_parts, a COMPOSITE suffix "-N" (1 <= N <= 10000, no leading
 * zero) is accepted too. Any algorithm but NONE (MD5 serves Content-MD5). Returns
 * GW_S3_OK, or GW_S3_INVALID_REQUEST with *msg set (S3 answers a malformed checksum header
 * with InvalidRequest; Content-MD5 has its own helper, which answers InvalidDigest). */
enum gw_s3_error gw_cksum_parse(enum gw_cksum_alg alg, struct gw_str text, bool allow_parts,
                                struct gw_cksum_value *out, const char **msg);

/* Fills a value from raw bytes (len must be gw_cksum_alg_size(alg)) and renders its text.
 * Returns 0 or -EINVAL. */
int gw_cksum_value_set(struct gw_cksum_value *v, enum gw_cksum_alg alg, const void *raw,
                       size_t len, unsigned parts);

/* Compares what was computed with what the client claimed, in constant time over the raw
 * bytes. Returns GW_S3_OK, or GW_S3_BAD_DIGEST with *msg ("The CRC32 you specified did not
 * match the calculated checksum.") when the algorithm, the part count or the bytes differ. */
enum gw_s3_error gw_cksum_check(const struct gw_cksum_value *computed,
                                const struct gw_cksum_value *claimed, const char **msg);

/* ---- multipart checksums ---- */

/* Builds the checksum of a multipart object from its parts' checksums, in part order. */
struct gw_cksum_mp {
    enum gw_cksum_alg alg;
    enum gw_cksum_type type;
    unsigned parts;
    uint64_t len;           /* FULL_OBJECT: bytes so far */
    uint64_t crc;           /* FULL_OBJECT: CRC of the parts so far */
    struct gw_cksum inner;  /* COMPOSITE: over the concatenated raw part checksums */
};

/* COMPOSITE works for every algorithm but MD5 and NONE, FULL_OBJECT for the CRCs only.
 * Returns 0, -EINVAL (any other pairing), LODE_EINTERNAL or -ENOMEM. Close even after
 * failure is allowed. */
int gw_cksum_mp_init(struct gw_cksum_mp *m, enum gw_cksum_alg alg, enum gw_cksum_type type);

/* Adds the next part: its checksum (of the part's bytes, parts == 0) and its length in bytes
 * (used by FULL_OBJECT only). Returns 0, -EINVAL (another algorithm, a composite value) or
 * LODE_ETOOLARGE (more than GW_MULTIPART_MAX_PARTS parts, or 2^64 bytes in all). */
int gw_cksum_mp_add(struct gw_cksum_mp *m, const struct gw_cksum_value *part,
                    uint64_t part_len);

/* The object's checksum: COMPOSITE with parts = N and the "-N" text, FULL_OBJECT with
 * parts = 0. Returns 0, -EINVAL (no part added) or a digest error. Close afterwards. */
int gw_cksum_mp_final(struct gw_cksum_mp *m, struct gw_cksum_value *out);

void gw_cksum_mp_close(struct gw_cksum_mp *m);

/* ---- CRC building blocks ---- */

/* CRC of A||B from crc(A), crc(B) and the length of B, for CRC32, CRC32C and CRC64NVME
 * (values as gw_cksum_value shows them, as numbers). Any len_b, 0 included (B empty, whose
 * CRC is 0). For another alg, returns 0. Cost: at most about 64 carry-less products. */
uint64_t gw_crc_combine(enum gw_cksum_alg alg, uint64_t crc_a, uint64_t crc_b, uint64_t len_b);

/* The CRC as a number, from a value of a CRC algorithm (big-endian raw bytes). */
uint64_t gw_crc_from_value(const struct gw_cksum_value *v);

/* Table-driven CRC64NVME, used when ISA-L lacks crc64_rocksoft_refl; always built so that
 * tests can hold it against ISA-L. Continues from crc (0 to start; a previous result to
 * chain) and returns the finished CRC. */
uint64_t gw_crc64nvme_portable(uint64_t crc, const void *data, size_t len);

/* "isa-l" or "portable": which CRC64NVME implementation gw_cksum uses. */
const char *gw_cksum_crc64_backend(void);

#endif
