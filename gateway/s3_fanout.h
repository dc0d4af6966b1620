/* x-amz-rdma-token on the S3 surface (docs/fanout.md, docs/rdma-token.md), lode's data
 * session endpoint, and the workers' data listeners.
 *
 * - GetObject with a token the gateway serves (lode `tcp1`, or `rc1` where this worker runs
 *   an rc listener): the object range is written into the client's window by the data nodes
 *   and this worker (gateway/fanout.h); the reply is headers only: x-amz-rdma-reply 200/206,
 *   x-amz-rdma-bytes-transferred, x-amz-rdma-bytes, x-lode-sources, Content-Length 0 and the
 *   object's usual headers. With rc every write completed only once the client's NIC placed
 *   it, so the reply itself tells the client its bytes are there.
 * - dc (an 81- or 115-character DC token of a cuObject-family client) where this worker has
 *   DC initiators: GETs as for rc, the nodes getting the token's DC fields (transport 3);
 *   staged uploads as for rc, read with cmn_dp_dc_read. No session is involved: the token
 *   and the cluster's DC key address the window. Without DC initiators: declined.
 * - PutObject/UploadPart with an `rc1` token (a staged upload): the token's size is the
 *   object's length and the request has no body (Content-Length 0). This worker RDMA-READs
 *   the window slot by slot, a few reads ahead, into the same pipeline as an HTTP body
 *   (checksums, Content-MD5 and x-amz-checksum-* checks, the erasure-coded write), and
 *   answers 200 with x-amz-rdma-reply 200, the ETag and Content-Length 0. A read that fails
 *   fails the upload: 500 RDMATransferFailed, nothing committed.
 * - A token it recognises but does not serve (rc1 without an rc listener, or a staged upload
 *   from a client without an rc session with this worker; dc without ConnectX; hipObject,
 *   ofi1; tcp1 on an upload): declined before any side effect. GET: the spec form, 200 with
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

/* The metrics of a token kind's transport (GW_FO_OTHER for kinds not served), or NULL
 * when the daemon registered none. */
const struct gw_fanout_tmetrics *gw_s3_fo_metrics(const struct gw_s3_req *r,
                                                  enum cmn_rdma_kind kind);

/* ---- staged uploads (rc1 on PutObject/UploadPart) ---- */

struct gw_rc_put;

/* Whether a served rc1 upload can go ahead: the client's rc session is connected to this
 * worker and owned by the requester. false after declining it (501, counted as no-session):
 * nothing has been read or stored. */
bool gw_s3_rdma_put_ready(struct gw_s3_req *r, struct gw_s3_rdma *rd);

/* Starts the upload's body: RDMA READs of the token's window fed through
 * gw_s3_body_start_external to on_data/on_end (see s3_request.h). *out is the reader, which
 * the caller hands back with gw_s3_rdma_put_detach when its state goes. Returns false
 * after failing the request (then *out is NULL). A failed or refused READ ends the body with
 * 500 RDMATransferFailed (503 SlowDown when the dc queue stays full with no READ of the
 * upload in flight). */
bool gw_s3_rdma_put_start(struct gw_s3_req *r, const struct gw_s3_rdma *rd,
                          gw_s3_data_cb on_data, gw_s3_end_cb on_end, struct gw_rc_put **out);

/* The request no longer needs the reader: it stops reading, and frees itself once the READs
 * in flight have completed (their buffers are the NIC's until then). NULL is a no-op. */
void gw_s3_rdma_put_detach(struct gw_rc_put *p);

/* PutObject / UploadPart (s3_put.c) as staged uploads of a served rc1 token: the same
 * checks and pipeline as gw_s3_put_object / gw_s3_upload_part, the bytes read out of the
 * token's window. */
void gw_s3_put_object_rdma(struct gw_s3_req *r, const struct gw_s3_rdma *rd);
void gw_s3_upload_part_rdma(struct gw_s3_req *r, const struct gw_s3_rdma *rd);

/* ---- the worker's data listeners (called by the worker start in s3_request.c) ---- */

/* The tcp data listener of data-address (port + worker index). Returns 0 or an error,
 * logged. */
int gw_s3_worker_start_data(struct gw_s3_worker *w);
/* The rc listener of rdma-address (port + worker index). Returns 0 or an error, logged. */
int gw_s3_worker_start_rc(struct gw_s3_worker *w);
/* Releases the worker's upload arena once its rc and dc sources are closed (kept, and
 * logged, while an upload still holds buffers in it). */
void gw_s3_worker_free_upload_arena(struct gw_s3_worker *w);
/* The worker's DC initiators (dc-device / dc-address, cmn_dp_dc_create). Returns 0 or an
 * error, logged; in a build without mlx5dv LODE_ECONFIG (main refuses such a configuration
 * before workers start). */
int gw_s3_worker_start_dc(struct gw_s3_worker *w);

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
