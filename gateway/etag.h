/* ETags and Content-MD5, computed as S3 computes them.
 *
 * - A single-part object's ETag is the lower-case hex MD5 of its bytes (32 characters).
 * - A multipart object's ETag is the hex MD5 of the concatenated binary MD5s of its parts,
 *   then "-" and the number of parts. It is built from the parts' stored hex ETags, so
 *   CompleteMultipartUpload needs no part data.
 * ETags here are bare: the HTTP layer adds the double quotes on output, and the parsers
 * below accept them quoted or not (clients send both in CompleteMultipartUpload bodies).
 *
 * Content-MD5 is the base64 of the 16-byte MD5 of the body: malformed is InvalidDigest,
 * a mismatch at the end of the body is BadDigest.
 */
#ifndef LODE_GATEWAY_ETAG_H
#define LODE_GATEWAY_ETAG_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/cksum.h"
#include "gateway/gw_types.h"
#include "gateway/s3_error.h"

#define GW_MD5_SIZE 16
/* 32 hex digits + "-10000" + NUL */
#define GW_ETAG_MAX 40

/* Single-part ETag: 32 lower-case hex digits and a NUL into out. */
void gw_etag_from_md5(const uint8_t md5[GW_MD5_SIZE], char out[GW_ETAG_MAX]);

/* Reads a single-part (or part) ETag: exactly 32 hex digits, either case, optionally inside
 * one pair of double quotes. Returns true and the 16 bytes, or false (anything else,
 * including a multipart "-N" ETag). */
bool gw_etag_parse_md5(struct gw_str etag, uint8_t md5[GW_MD5_SIZE]);

/* Whether a client-supplied ETag (quoted or not, hex in either case) names the stored one
 * (bare, as produced here). For the parts list of CompleteMultipartUpload and for
 * copy-source conditions; If-Match lists and "*" are the caller's to split. */
bool gw_etag_equal(struct gw_str client, const char *stored);

/* Multipart ETag builder. */
struct gw_etag_mp {
    unsigned parts;
    int err;            /* sticky: first failure */
    struct gw_cksum md5;
};

/* Returns 0, LODE_EINTERNAL or -ENOMEM. Close is allowed after a failure. */
int gw_etag_mp_init(struct gw_etag_mp *b);

/* Adds the next part, in part-number order, by its stored ETag. Returns GW_S3_OK, or
 * GW_S3_INVALID_PART with *msg when the ETag is not a single-part MD5 ETag or when there
 * would be more than GW_MULTIPART_MAX_PARTS parts. */
enum gw_s3_error gw_etag_mp_add(struct gw_etag_mp *b, struct gw_str part_etag,
                                const char **msg);

/* Writes "<32 hex>-<N>" and a NUL. Returns 0, -EINVAL (no part added) or a digest error.
 * Close afterwards. */
int gw_etag_mp_final(struct gw_etag_mp *b, char out[GW_ETAG_MAX]);

/* Idempotent. */
void gw_etag_mp_close(struct gw_etag_mp *b);

/* One-shot form of the builder over n part ETags. Returns GW_S3_OK, GW_S3_INVALID_PART (a
 * bad ETag, n == 0 or n > GW_MULTIPART_MAX_PARTS) or GW_S3_INTERNAL_ERROR, with *msg. */
enum gw_s3_error gw_etag_multipart(const struct gw_str *part_etags, size_t n,
                                   char out[GW_ETAG_MAX], const char **msg);

/* Decodes a Content-MD5 header: strict base64 of 16 bytes. Returns GW_S3_OK or
 * GW_S3_INVALID_DIGEST with *msg. */
enum gw_s3_error gw_content_md5_parse(struct gw_str value, uint8_t out[GW_MD5_SIZE],
                                      const char **msg);

/* Compares the claimed Content-MD5 with the body's MD5, in constant time. Returns GW_S3_OK
 * or GW_S3_BAD_DIGEST with *msg. */
enum gw_s3_error gw_content_md5_check(const uint8_t claimed[GW_MD5_SIZE],
                                      const uint8_t computed[GW_MD5_SIZE], const char **msg);

#endif
