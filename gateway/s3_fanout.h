/* x-amz-rdma-token on the S3 surface (docs/fanout.md, docs/rdma-token.md) and lode's data
 * session endpoint.
 *
 * - GetObject with a token the gateway serves (lode `tcp1`): the object range is written
 *   into the client's window by the data nodes and this worker (gateway/fanout.h); the reply
 *   is headers only: x-amz-rdma-reply 200/206, x-amz-rdma-bytes-transferred, x-amz-rdma-bytes,
 *   x-lode-sources, Content-Length 0 and the object's usual headers.
 * - A token it recognises but does not serve (rc1 without an RDMA device, dc without ConnectX,
 *   hipObject, ofi1): declined before any side effect. GET: the spec form, 200 with
 *   x-amz-rdma-reply 501 and the object in the body. PutObject/UploadPart: HTTP 501
 *   RDMANotSupported, nothing stored, no ETag.
 * - A malformed token: 400 InvalidRDMAToken; a token that is not among the SigV4 signed
 *   headers: 403 AccessDenied. No transfer in either case.
 * - Every other operation ignores the header; HEAD answers as a plain HEAD.
 * - A fan-out that cannot complete after acceptance (the client has no session with this
 *   worker, its session connection broke) falls back, once everything in flight has ended,
 *   to the spec decline form: the whole range in the body with x-amz-rdma-reply 501.
 * Tokens never appear in logs above debug level, and then redacted.
 *
 * POST /?x-lode-session (signed; no bucket): issues a data session credential for the
 * caller's access key and lists the data sources to connect to (docs/fanout.md).
 */
#ifndef LODE_GATEWAY_S3_FANOUT_H
#define LODE_GATEWAY_S3_FANOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/rdma_token.h"
#include "gateway/fanout.h"
#include "gateway/s3_request.h"

#define GW_RDMA_TOKEN_HEADER "x-amz-rdma-token"

enum gw_rdma_decision {
    GW_RDMA_NONE = 0,            /* no token: a plain request */
    GW_RDMA_SERVE,               /* serve over the token's transport */
    GW_RDMA_DECLINE,             /* answer as declined (reason set) */
};

struct gw_s3_rdma {
    enum gw_rdma_decision d;
    struct cmn_rdma_token tok;
    enum gw_rdma_reason reason;  /* why declined */
};

/* Looks at r's token for an operation that has an RDMA path (GetObject, PutObject,
 * UploadPart). Returns true with out filled, or false after failing the request (400
 * InvalidRDMAToken, 403 AccessDenied). */
bool gw_s3_rdma_prepare(struct gw_s3_req *r, bool is_get, struct gw_s3_rdma *out);

/* Answers a PutObject/UploadPart whose token was declined: 501 RDMANotSupported. */
void gw_s3_rdma_decline_put(struct gw_s3_req *r, const struct gw_s3_rdma *rd);

/* Serves a GetObject whose token was accepted. h/n: the object's response headers (without
 * the request-id headers; copied). status: 200 or 206. On success the response is sent and
 * the request ended; `*data`/`*data_free` receive state the caller frees with the request. */
void gw_s3_rdma_get(struct gw_s3_req *r, const struct gw_s3_rdma *rd,
                    const Lode__ObjectRecord *rec, uint64_t first, uint64_t len, int status,
                    const struct gw_header *h, size_t n, void **data,
                    void (**data_free)(void *));

/* POST /?x-lode-session. */
void gw_s3_lode_session(struct gw_s3_req *r);

/* The plain streaming GET (s3_object.c), also the fallback of a fan-out that cannot
 * complete. */
void gw_s3_get_stream(struct gw_s3_req *r, const Lode__ObjectRecord *rec, uint64_t first,
                      uint64_t len, int status, const struct gw_header *h, size_t n,
                      void **data, void (**data_free)(void *));

#endif
