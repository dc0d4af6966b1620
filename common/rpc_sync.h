/* Blocking RPC client (one connection, poll(2)-based timeouts), for lodectl, tests and
 * benchmarks. Speaks exactly the protocol of rpc.h. Not thread-safe per connection.
 */
#ifndef LODE_COMMON_RPC_SYNC_H
#define LODE_COMMON_RPC_SYNC_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"
#include "common/rpc.h"

struct cmn_rpc_sync;

/* Connects to "host:port" and authenticates with the secret. Returns 0, -errno from
 * connect, LODE_ETIMEOUT, LODE_EAUTH (wrong secret, either side) or LODE_EBADMSG. */
int cmn_rpc_sync_connect(const char *addr, const void *secret, size_t secret_len,
                         uint32_t timeout_ms, struct cmn_rpc_sync **out, struct cmn_err *err);
void cmn_rpc_sync_close(struct cmn_rpc_sync *c);
const char *cmn_rpc_sync_address(const struct cmn_rpc_sync *c);

/* One request, one response. `res` must be initialised (cmn_rpc_result_init); its fields
 * are replaced. Returns res->status. After a transport error (timeout, closed, malformed
 * reply) the connection is unusable and must be closed. */
int cmn_rpc_sync_call(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                      const ProtobufCMessage *req, uint32_t timeout_ms,
                      struct cmn_rpc_result *res);

/* One request with a raw payload (e.g. chunk bytes), sent without copying it. */
int cmn_rpc_sync_call_payload(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                              const ProtobufCMessage *req, const void *payload,
                              size_t payload_len, uint32_t timeout_ms, struct cmn_rpc_result *res);

/* Pipelining: send without waiting (returns the request id in *id), then receive
 * responses in whatever order they come. */
int cmn_rpc_sync_send(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                      const ProtobufCMessage *req, uint64_t *id);
int cmn_rpc_sync_recv(struct cmn_rpc_sync *c, uint32_t timeout_ms, struct cmn_rpc_result *res);
/* Pipelined send with a raw payload (written with the header, without copying it). */
int cmn_rpc_sync_send_payload(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                              const ProtobufCMessage *req, const void *payload,
                              size_t payload_len, uint64_t *id);

/* Sends raw bytes (tests of malformed input) and reads whatever frame comes back. */
int cmn_rpc_sync_send_raw(struct cmn_rpc_sync *c, const void *data, size_t len);
int cmn_rpc_sync_fd(const struct cmn_rpc_sync *c);

#endif
