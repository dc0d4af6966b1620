/* Blocking client of the lode-meta group: knows several replica addresses, sends each call
 * to the leader, follows "not the leader" redirects, and retries on connection loss and
 * while no leader is elected, until the call's deadline. Used by lodectl, tests, benches.
 *
 * Retries are safe: mutations carry (client_id, seq) so the state machine applies a
 * retried command at most once (docs/wire-protocol.md, "Idempotency").
 */
#ifndef LODE_COMMON_META_CLIENT_H
#define LODE_COMMON_META_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"
#include "common/rpc.h"

struct cmn_meta_client;

/* addrs: comma-separated "host:port" RPC addresses of meta replicas (copied). */
int cmn_meta_client_create(const char *addrs, const void *secret, size_t secret_len,
                           struct cmn_meta_client **out, struct cmn_err *err);
void cmn_meta_client_destroy(struct cmn_meta_client *mc);

/* Calls the leader. For mutating methods (request type Command) with an empty client_id,
 * the client stamps its own client id and next seq into the Command before the first try
 * and keeps them across retries, so a retried command applies at most once.
 * Returns res->status; transport failures after the deadline return the last error with
 * a message naming the replicas tried. */
int cmn_meta_client_call(struct cmn_meta_client *mc, unsigned method,
                         ProtobufCMessage *req, uint32_t timeout_ms,
                         struct cmn_rpc_result *res);

/* Calls one specific replica (no redirects), e.g. for status or stale reads. */
int cmn_meta_client_call_at(struct cmn_meta_client *mc, const char *addr, unsigned method,
                            unsigned flags, const ProtobufCMessage *req, uint32_t timeout_ms,
                            struct cmn_rpc_result *res);

/* Address of the replica that answered last as leader, or NULL. */
const char *cmn_meta_client_leader(const struct cmn_meta_client *mc);

#endif
