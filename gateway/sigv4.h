/* AWS Signature Version 4 for S3, I/O-free: parsing a request's authentication, verifying it
 * with a secret, and signing requests (the client side, for tests, lodectl and benchmarks).
 *
 * Verification is two steps so that the gateway can refuse malformed, skewed, expired or
 * wrong-region requests before it asks lode-meta for a secret:
 *
 *   struct gw_sigv4_auth a;
 *   struct gw_sigv4_err e;
 *   struct gw_sigv4_policy pol = {.region = "us-east-1", .now = now_s};
 *   if (gw_sigv4_parse(head, &pol, &a, &e) != GW_S3_OK) -> answer e.code / e.msg
 *   if (a.kind == GW_SIGV4_ANONYMOUS) -> anonymous rules
 *   secret = lookup(a.access_key)                      (InvalidAccessKeyId when unknown)
 *   gw_sigv4_signing_key(secret, n, a.date, a.region, a.service, key)   (cacheable)
 *   if (gw_sigv4_verify(head, &a, key, &e) != GW_S3_OK) -> answer e.code / e.msg
 *
 * S3 specifics: the canonical URI is the path exactly as sent (S3 neither normalises nor
 * double-encodes it); the canonical query string decodes what the client sent and re-encodes
 * it the AWS way, so clients that encode differently ('*' vs "%2A") all verify.
 *
 * Nothing here reads a clock: the caller passes the time. Nothing keeps global mutable state
 * (OpenSSL algorithms are fetched once, see common/hmac.c). All functions are thread-safe on
 * distinct objects.
 */
#ifndef LODE_GATEWAY_SIGV4_H
#define LODE_GATEWAY_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "gateway/gw_types.h"
#include "gateway/s3_error.h"

#define GW_SIGV4_KEY_SIZE 32            /* signing key, HMAC-SHA256 output */
#define GW_SIGV4_SIG_SIZE 32            /* a signature, binary */
#define GW_SIGV4_TIMESTAMP_LEN 16       /* "YYYYMMDDTHHMMSSZ" */
#define GW_SIGV4_ACCESS_KEY_MAX 128
#define GW_SIGV4_REGION_MAX 63
#define GW_SIGV4_SERVICE_MAX 31
/* date/region/service/aws4_request */
#define GW_SIGV4_SCOPE_MAX (8 + 1 + GW_SIGV4_REGION_MAX + 1 + GW_SIGV4_SERVICE_MAX + 13)
#define GW_SIGV4_SIGNED_HEADERS_MAX 4095 /* characters of the ';'-separated list */
#define GW_SIGV4_SIGNED_HEADERS_COUNT 128
#define GW_SIGV4_QUERY_MAX 65536         /* raw query bytes the canonicaliser accepts */
#define GW_SIGV4_QUERY_PARAMS_MAX 512
#define GW_SIGV4_DEFAULT_SKEW_S 900      /* 15 minutes, as S3 */
#define GW_SIGV4_PRESIGN_EXPIRES_MAX 604800 /* one week, as S3 */
#define GW_SIGV4_PAYLOAD_HASH_MAX 64     /* longest x-amz-content-sha256 value accepted */

/* Why a request was refused: an S3 error code (gateway/s3_error.h) and a one-line message
 * meant for the client's <Message>, never containing a secret. */
struct gw_sigv4_err {
    enum gw_s3_error code;
    char msg[320];
};

enum gw_sigv4_kind {
    GW_SIGV4_ANONYMOUS,   /* no Authorization header, no X-Amz-Algorithm query parameter */
    GW_SIGV4_HEADER,      /* Authorization: AWS4-HMAC-SHA256 ... */
    GW_SIGV4_PRESIGNED,   /* X-Amz-Algorithm=AWS4-HMAC-SHA256&... in the query */
};

/* What x-amz-content-sha256 says about the body. */
enum gw_sigv4_payload {
    GW_SIGV4_PAYLOAD_SHA256,                    /* hex SHA-256 of the whole body */
    GW_SIGV4_PAYLOAD_UNSIGNED,                  /* UNSIGNED-PAYLOAD (or absent: anonymous, presigned) */
    GW_SIGV4_PAYLOAD_STREAMING,                 /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
    GW_SIGV4_PAYLOAD_STREAMING_TRAILER,         /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
    GW_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
};

/* The authentication of one request, parsed without the secret. Self-contained: it copies
 * what it keeps (decoded where the query encoded it), so it outlives the request head. All
 * strings are NUL-terminated; for ANONYMOUS only kind and the payload fields are set. */
struct gw_sigv4_auth {
    enum gw_sigv4_kind kind;
    enum gw_sigv4_payload payload;
    uint8_t payload_sha256[32];     /* PAYLOAD_SHA256: the digest the body must have */
    /* The last line of the canonical request: x-amz-content-sha256 as sent, or
     * "UNSIGNED-PAYLOAD" for a presigned request without that header. */
    char payload_hash[GW_SIGV4_PAYLOAD_HASH_MAX + 1];
    char access_key[GW_SIGV4_ACCESS_KEY_MAX + 1];
    char date[9];                   /* credential scope date, YYYYMMDD */
    char region[GW_SIGV4_REGION_MAX + 1];
    char service[GW_SIGV4_SERVICE_MAX + 1];
    /* The request time in the form the string to sign uses ("YYYYMMDDTHHMMSSZ"), whether
     * it came from x-amz-date, Date (converted) or X-Amz-Date; and as Unix seconds. */
    char timestamp[GW_SIGV4_TIMESTAMP_LEN + 1];
    int64_t time;
    int64_t expires;                /* PRESIGNED: X-Amz-Expires in seconds; else 0 */
    char signed_headers[GW_SIGV4_SIGNED_HEADERS_MAX + 1]; /* as sent: "host;range;x-amz-date" */
    uint8_t signature[GW_SIGV4_SIG_SIZE];
};

/* What the gateway enforces while parsing. */
struct gw_sigv4_policy {
    /* The gateway's region. A request signed for another one is refused with a message
     * naming this one. NULL or "" accepts any region. */
    const char *region;
    int64_t now;                    /* the current time, Unix seconds */
    /* Largest |request time - now| accepted, seconds; <= 0 means GW_SIGV4_DEFAULT_SKEW_S.
     * Presigned URLs use it for "not valid yet" (their past is bounded by X-Amz-Expires). */
    int64_t max_skew;
};

/* Parses the authentication of `req` into `out` (overwritten entirely). Checks everything
 * that needs no secret: the syntax of Authorization or the X-Amz-* query parameters, the
 * credential scope (service "s3", terminator "aws4_request", the region against
 * pol->region, the date against the request date), that host is signed, the request time
 * against pol->now (RequestTimeTooSkewed; presigned: AccessDenied "Request has expired" /
 * "Request is not valid yet", X-Amz-Expires in 1..604800), and x-amz-content-sha256 (required
 * for header-signed requests). Signature Version 2 and other schemes are refused with a
 * message saying so. Returns GW_S3_OK, or the error code (also in err->code, with err->msg;
 * err may be NULL). Never allocates. */
enum gw_s3_error gw_sigv4_parse(const struct gw_request_head *req,
                                const struct gw_sigv4_policy *pol, struct gw_sigv4_auth *out,
                                struct gw_sigv4_err *err);

/* True when header `name` (case-insensitive) is among auth's signed headers. S3 does not
 * require every x-amz-* header to be signed and neither does gw_sigv4_verify (only host);
 * a caller that wants a given header signed (x-amz-copy-source, say) asks here. */
bool gw_sigv4_is_signed(const struct gw_sigv4_auth *auth, const char *name);

/* The signing key HMAC("AWS4" + secret, date) -> region -> service -> "aws4_request".
 * It depends only on (secret, date, region, service), so the gateway may cache it per
 * access key for the day. `date`, `region`, `service` are NUL-terminated. Returns 0, or
 * -EINVAL for a secret longer than 1 KiB, LODE_EINTERNAL when OpenSSL fails. */
int gw_sigv4_signing_key(const void *secret, size_t secret_len, const char *date,
                         const char *region, const char *service,
                         uint8_t out[GW_SIGV4_KEY_SIZE]);

/* Verifies the signature of a request parsed by gw_sigv4_parse (kind HEADER or PRESIGNED)
 * with the signing key of its scope. Comparison is constant-time. Returns GW_S3_OK,
 * GW_S3_SIGNATURE_DOES_NOT_MATCH, GW_S3_INVALID_URI (malformed %-encoding in the query),
 * GW_S3_AUTH_* (more than GW_SIGV4_QUERY_PARAMS_MAX parameters or GW_SIGV4_QUERY_MAX bytes),
 * GW_S3_INTERNAL_ERROR (allocation, OpenSSL). `req` must be the head that was parsed. */
enum gw_s3_error gw_sigv4_verify(const struct gw_request_head *req,
                                 const struct gw_sigv4_auth *auth,
                                 const uint8_t key[GW_SIGV4_KEY_SIZE], struct gw_sigv4_err *err);

/* The signature `req` should carry according to `auth` (its signed headers, payload hash,
 * timestamp and scope) under `key`. gw_sigv4_verify compares it with auth->signature; the
 * signer uses it with an auth it fills itself. Errors as gw_sigv4_verify. */
enum gw_s3_error gw_sigv4_compute(const struct gw_request_head *req,
                                  const struct gw_sigv4_auth *auth,
                                  const uint8_t key[GW_SIGV4_KEY_SIZE],
                                  uint8_t sig[GW_SIGV4_SIG_SIZE], struct gw_sigv4_err *err);

/* The canonical request of `req` as `auth` describes it, appended to `out` (which the
 * caller owns and frees), without a trailing NUL. For debugging SignatureDoesNotMatch and
 * for tests; gw_sigv4_verify builds the same bytes. Errors as gw_sigv4_verify. */
enum gw_s3_error gw_sigv4_canonical_request(const struct gw_request_head *req,
                                            const struct gw_sigv4_auth *auth,
                                            struct cmn_buf *out, struct gw_sigv4_err *err);

/* The string to sign for a canonical request:
 * "AWS4-HMAC-SHA256\n<timestamp>\n<date>/<region>/<service>/aws4_request\n<hex sha256>".
 * Appended to `out`. Returns 0 or a negative error (LODE_EINTERNAL, -ENOMEM). */
int gw_sigv4_string_to_sign(const struct gw_sigv4_auth *auth, const void *canonical,
                            size_t canonical_len, struct cmn_buf *out);

/* ---- streaming (aws-chunked): what the body decoder needs from a verified request ---- */

/* The signing chain of a streaming upload: each chunk's signature covers the previous one,
 * starting from the request's own (the seed). Plain data; copy freely. */
struct gw_sigv4_chain {
    uint8_t key[GW_SIGV4_KEY_SIZE];
    uint8_t seed[GW_SIGV4_SIG_SIZE];
    char timestamp[GW_SIGV4_TIMESTAMP_LEN + 1];
    char scope[GW_SIGV4_SCOPE_MAX + 1];    /* "date/region/service/aws4_request" */
};

/* Fills `chain` from a request that gw_sigv4_verify accepted and the key it used. */
void gw_sigv4_chain_init(struct gw_sigv4_chain *chain, const struct gw_sigv4_auth *auth,
                         const uint8_t key[GW_SIGV4_KEY_SIZE]);

/* ---- signing (the client side) ---- */

struct gw_sigv4_signer {
    const char *access_key;
    const char *secret;
    const char *region;
    const char *service;            /* NULL means "s3" */
    int64_t time;                   /* Unix seconds */
};

/* Signs a request with an Authorization header. Every header in `headers` is signed (names
 * lower-cased, sorted, repeated names joined); it must contain host. When `headers` lacks
 * x-amz-date (and Date), the signature covers "x-amz-date: <timestamp>" and when it lacks
 * x-amz-content-sha256 it covers "x-amz-content-sha256: <payload_hash>": the caller must
 * then send those headers too. `payload_hash` is the hex SHA-256 of the body or one of the
 * UNSIGNED-PAYLOAD / STREAMING-* strings. `path` and `query` are sent as they are given
 * (already encoded). On success appends the Authorization value to `authz`, writes the
 * timestamp (the x-amz-date value, NUL-terminated) and, when `seed` is not NULL, the
 * signature (the seed of a streaming upload). Returns 0, -EINVAL (no host, invalid
 * input, query over the limits), -ENOMEM, LODE_EINTERNAL. */
int gw_sigv4_sign(const struct gw_sigv4_signer *s, const struct gw_request_head *req,
                  const char *payload_hash, struct cmn_buf *authz,
                  char timestamp[GW_SIGV4_TIMESTAMP_LEN + 1], uint8_t seed[GW_SIGV4_SIG_SIZE]);

/* Presigns a request: appends to `query_out` the query to send, i.e. req->query (if any)
 * followed by the X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders and
 * -Signature parameters. Signs every header in `req` (host at least) with payload
 * UNSIGNED-PAYLOAD. `expires` in 1..604800. Returns as gw_sigv4_sign. */
int gw_sigv4_presign(const struct gw_sigv4_signer *s, const struct gw_request_head *req,
                     int64_t expires, struct cmn_buf *query_out);

/* ---- helpers ---- */

/* "YYYYMMDDTHHMMSSZ" for Unix seconds in years 1970..9999. */
void gw_sigv4_format_time(int64_t t, char out[GW_SIGV4_TIMESTAMP_LEN + 1]);

/* The x-amz-content-sha256 spelling of a payload mode ("" for PAYLOAD_SHA256). */
const char *gw_sigv4_payload_name(enum gw_sigv4_payload p);

/* True for the three STREAMING-* modes (the body is aws-chunked). */
bool gw_sigv4_payload_is_streaming(enum gw_sigv4_payload p);

/* Appends `s` URI-encoded the AWS way (A-Za-z0-9-_.~ kept, everything else %XX upper-case;
 * with keep_slash, '/' kept too, as for object keys in paths). Returns 0 or -ENOMEM. */
int gw_sigv4_uri_encode(struct cmn_buf *out, const void *s, size_t n, bool keep_slash);

#endif
