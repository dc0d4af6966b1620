/* Request bodies under Signature Version 4: an incremental decoder for
 * `Content-Encoding: aws-chunked` bodies (the three STREAMING-* payload modes), its encoder
 * (the client side, for tests and benchmarks), and a checker for plain bodies whose
 * x-amz-content-sha256 is a digest.
 *
 * aws-chunked framing, after any HTTP transfer coding has been removed:
 *   hex-size [";chunk-signature=" 64hex] CRLF  data  CRLF      (repeated)
 *   "0" [";chunk-signature=" 64hex] CRLF
 *   ("name:value" CRLF)*  ["x-amz-trailer-signature:" 64hex CRLF]   (trailer modes)
 *   CRLF
 *
 * The decoder never buffers chunk data: payload bytes are handed out as slices of the input
 * while each chunk's SHA-256 is updated on the way (the only hash of the body it computes).
 * Memory is fixed (struct gw_chunked, about 4 KiB) whatever the body. Consequence: a
 * chunk's bytes are handed out before its signature can be checked (at the chunk's end); a
 * bad chunk fails the decode, so the caller must not make anything visible before
 * gw_chunked_finish() returns GW_S3_OK.
 */
#ifndef LODE_GATEWAY_SIGV4_STREAM_H
#define LODE_GATEWAY_SIGV4_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "gateway/gw_types.h"
#include "gateway/s3_error.h"
#include "gateway/sigv4.h"

/* S3 refuses (InvalidChunkSizeError) any chunk but the last non-empty one below 8 KiB, for
 * signed streams and for STREAMING-UNSIGNED-PAYLOAD-TRAILER alike. */
#define GW_CHUNKED_MIN_CHUNK 8192
#define GW_CHUNKED_LINE_MAX 512          /* a chunk-size line or a trailer line, CRLF included */
#define GW_CHUNKED_SIZE_DIGITS_MAX 16    /* hex digits of a chunk size */
#define GW_CHUNKED_TRAILERS_MAX 8
#define GW_CHUNKED_TRAILER_NAME_MAX 64
#define GW_CHUNKED_TRAILER_VALUE_MAX 256
/* "ffffffffffffffff;chunk-signature=<64 hex>\r\n" and NUL */
#define GW_CHUNKED_ENC_LINE_MAX 104

struct gw_chunked_trailer {
    char name[GW_CHUNKED_TRAILER_NAME_MAX + 1];   /* lower-cased */
    char value[GW_CHUNKED_TRAILER_VALUE_MAX + 1]; /* surrounding blanks removed */
};

struct gw_chunked_cfg {
    enum gw_sigv4_payload mode;          /* one of the three STREAMING-* modes */
    /* Signed modes: the chain of the verified request (gw_sigv4_chain_init); copied. */
    const struct gw_sigv4_chain *chain;
    uint64_t decoded_length;             /* x-amz-decoded-content-length */
    /* The x-amz-trailer value: comma-separated names; only these may appear as trailers and
     * each must. Empty when the request has none. Copied. */
    struct gw_str trailer_names;
    size_t min_chunk;                    /* 0 means GW_CHUNKED_MIN_CHUNK */
};

/* Decoder state. Embed it anywhere; the fields are private. */
struct gw_chunked {
    int state;
    enum gw_sigv4_payload mode;
    bool sign;                           /* chunks carry signatures */
    struct gw_sigv4_chain chain;
    uint8_t prev[GW_SIGV4_SIG_SIZE];     /* the last verified signature */
    uint8_t want[GW_SIGV4_SIG_SIZE];     /* the signature the current chunk announced */
    void *md;                            /* SHA-256 of the current chunk or of the trailers */
    uint64_t total, seen, chunk_left, last_size, n_chunks;
    size_t min_chunk;
    char line[GW_CHUNKED_LINE_MAX];
    size_t line_len;
    char announced[GW_CHUNKED_TRAILERS_MAX][GW_CHUNKED_TRAILER_NAME_MAX + 1];
    size_t n_announced;
    struct gw_chunked_trailer trailers[GW_CHUNKED_TRAILERS_MAX];
    size_t n_trailers;
    bool have_trailer_sig;
    uint8_t trailer_sig[GW_SIGV4_SIG_SIZE];
    struct gw_sigv4_err err;             /* sticky: once failed, always failed */
};

/* The signature of one chunk given the previous signature and the SHA-256 of the chunk's
 * data: HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\n" ts "\n" scope "\n" hex(prev) "\n"
 * hex(sha256("")) "\n" hex(data_sha256)). Returns 0 or LODE_EINTERNAL. */
int gw_sigv4_chunk_signature(const struct gw_sigv4_chain *chain,
                             const uint8_t prev[GW_SIGV4_SIG_SIZE], const uint8_t data_sha256[32],
                             uint8_t out[GW_SIGV4_SIG_SIZE]);

/* The signature of the trailer section, over the SHA-256 of the canonical trailers
 * ("name:value\n" each, lower-case names): HMAC(key, "AWS4-HMAC-SHA256-TRAILER\n" ts "\n"
 * scope "\n" hex(prev) "\n" hex(trailers_sha256)). Returns 0 or LODE_EINTERNAL. */
int gw_sigv4_trailer_signature(const struct gw_sigv4_chain *chain,
                               const uint8_t prev[GW_SIGV4_SIG_SIZE],
                               const uint8_t trailers_sha256[32], uint8_t out[GW_SIGV4_SIG_SIZE]);

/* Reads the configuration from a request head that gw_sigv4_parse accepted with a STREAMING
 * payload: x-amz-decoded-content-length (required: MissingContentLength when absent,
 * InvalidArgument when not a decimal number) and x-amz-trailer (optional; refused in
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD mode, which has no trailers). `chain` is required for
 * the signed modes and may be NULL otherwise; cfg borrows from `req` and `chain`, so use it
 * (gw_chunked_init copies what it needs) while they live. */
enum gw_s3_error gw_chunked_cfg_from_request(const struct gw_request_head *req,
                                             const struct gw_sigv4_auth *auth,
                                             const struct gw_sigv4_chain *chain,
                                             struct gw_chunked_cfg *cfg, struct gw_sigv4_err *err);

/* Prepares `d`. Returns GW_S3_OK; GW_S3_INVALID_REQUEST for a mode that is not streaming, a
 * signed mode without chain, or an x-amz-trailer list that is malformed or names more than
 * GW_CHUNKED_TRAILERS_MAX trailers; GW_S3_INTERNAL_ERROR when OpenSSL cannot allocate. After
 * GW_S3_OK, gw_chunked_free() must be called; after a failure it may be (it is a no-op). */
enum gw_s3_error gw_chunked_init(struct gw_chunked *d, const struct gw_chunked_cfg *cfg,
                                 struct gw_sigv4_err *err);

/* Releases what init allocated. Safe on a zeroed or already freed decoder. */
void gw_chunked_free(struct gw_chunked *d);

/* Consumes input from in[0..n) and stops after at most one slice of payload: *used says how
 * many input bytes were consumed, *out the payload (a slice of `in`, out->n == 0 when none).
 * Call again with the rest while *used < n; stopping early is how a caller applies
 * backpressure. Any split of the body works, one byte at a time included. Returns GW_S3_OK
 * or an error (sticky; every later call returns it):
 *   GW_S3_SIGNATURE_DOES_NOT_MATCH   a chunk or trailer signature is wrong
 *   GW_S3_INVALID_CHUNK_SIZE         a chunk other than the last is below min_chunk
 *   GW_S3_INCOMPLETE_BODY            the final chunk came before decoded_length bytes
 *   GW_S3_INVALID_REQUEST            malformed framing, a size line over the limits, more
 *                                    data than decoded_length, data after the end, a
 *                                    trailer unannounced, repeated, missing or malformed
 *   GW_S3_INTERNAL_ERROR             OpenSSL failed */
enum gw_s3_error gw_chunked_decode(struct gw_chunked *d, const void *in, size_t n, size_t *used,
                                   struct gw_str *out, struct gw_sigv4_err *err);

/* Receives payload slices from gw_chunked_feed; the bytes are valid only during the call. */
typedef void (*gw_chunked_data_cb)(void *ud, const uint8_t *data, size_t n);

/* Decodes all of in[0..n), passing each payload slice to cb. Errors as gw_chunked_decode. */
enum gw_s3_error gw_chunked_feed(struct gw_chunked *d, const void *in, size_t n,
                                 gw_chunked_data_cb cb, void *ud, struct gw_sigv4_err *err);

/* To call when the body has ended (the HTTP layer says so): GW_S3_OK when the final chunk,
 * trailers and their signature were complete and valid, GW_S3_INCOMPLETE_BODY when the body
 * stopped short, or the sticky error. */
enum gw_s3_error gw_chunked_finish(struct gw_chunked *d, struct gw_sigv4_err *err);

/* True once the whole body was decoded and verified. */
bool gw_chunked_done(const struct gw_chunked *d);

/* Payload bytes handed out so far. */
uint64_t gw_chunked_decoded(const struct gw_chunked *d);

/* The value of trailer `name` (case-insensitive), or NULL; x-amz-trailer-signature is not a
 * trailer here. Valid until gw_chunked_free or a new init. */
const char *gw_chunked_trailer(const struct gw_chunked *d, const char *name);

/* The trailers received, in order: count, then each (i < count). */
size_t gw_chunked_trailer_count(const struct gw_chunked *d);
const struct gw_chunked_trailer *gw_chunked_trailer_at(const struct gw_chunked *d, size_t i);

/* ---- encoder (client side) ---- */

struct gw_chunked_enc {
    enum gw_sigv4_payload mode;
    struct gw_sigv4_chain chain;
    uint8_t prev[GW_SIGV4_SIG_SIZE];
};

/* Prepares an encoder for `mode` (a STREAMING-* mode; `chain` from gw_sigv4_sign's seed for
 * the signed ones, NULL otherwise). Returns 0 or -EINVAL. */
int gw_chunked_enc_init(struct gw_chunked_enc *e, enum gw_sigv4_payload mode,
                        const struct gw_sigv4_chain *chain);

/* The size line of a chunk of n > 0 bytes (signed when the mode says so, which needs the
 * data): NUL-terminated into `line`, length in *len. The caller sends the line, the data,
 * then "\r\n". Returns 0, -EINVAL (n == 0) or LODE_EINTERNAL. */
int gw_chunked_enc_chunk(struct gw_chunked_enc *e, const void *data, size_t n,
                         char line[GW_CHUNKED_ENC_LINE_MAX], size_t *len);

/* Appends the end of the body to `out`: the final chunk, the trailers (name:value, in the
 * given order; none allowed in STREAMING-AWS4-HMAC-SHA256-PAYLOAD mode), the trailer
 * signature in the signed trailer mode, and the closing CRLF. Returns 0, -EINVAL, -ENOMEM
 * or LODE_EINTERNAL. */
int gw_chunked_enc_finish(struct gw_chunked_enc *e, const struct gw_header *trailers, size_t n,
                          struct cmn_buf *out);

/* The Content-Length of a body of `decoded` bytes encoded in chunks of `chunk_size` (the
 * last one shorter) with the given trailers, as the encoder above writes it. */
uint64_t gw_chunked_encoded_length(enum gw_sigv4_payload mode, uint64_t decoded,
                                   size_t chunk_size, const struct gw_header *trailers, size_t n);

/* ---- plain bodies with x-amz-content-sha256: <hex digest> ---- */

/* Checks a body's SHA-256, computed here or elsewhere (the checksum layer may already hash
 * the body for x-amz-checksum-sha256: pass its digest to gw_sigv4_payload_check instead of
 * hashing twice). When auth->payload is not PAYLOAD_SHA256 there is nothing to check. */
struct gw_sigv4_body {
    void *md;
    bool check;
    uint8_t want[32];
};

/* Returns GW_S3_OK or GW_S3_INTERNAL_ERROR. gw_sigv4_body_free() afterwards either way. */
enum gw_s3_error gw_sigv4_body_init(struct gw_sigv4_body *b, const struct gw_sigv4_auth *auth,
                                    struct gw_sigv4_err *err);
/* Returns 0 or LODE_EINTERNAL. */
int gw_sigv4_body_update(struct gw_sigv4_body *b, const void *data, size_t n);
/* GW_S3_OK, GW_S3_CONTENT_SHA256_MISMATCH, or GW_S3_INTERNAL_ERROR. */
enum gw_s3_error gw_sigv4_body_finish(struct gw_sigv4_body *b, struct gw_sigv4_err *err);
void gw_sigv4_body_free(struct gw_sigv4_body *b);

/* Compares a digest of the body computed elsewhere with x-amz-content-sha256 (constant
 * time). GW_S3_OK when it matches or auth->payload is not PAYLOAD_SHA256, else
 * GW_S3_CONTENT_SHA256_MISMATCH. */
enum gw_s3_error gw_sigv4_payload_check(const struct gw_sigv4_auth *auth,
                                        const uint8_t digest[32], struct gw_sigv4_err *err);

#endif
