/* Asynchronous client of the lode-meta group, for daemons (lode-node, gateways) on a libuv
 * loop: the non-blocking twin of common/meta_client.h, with the same retry semantics.
 *
 * It knows several replica addresses (one cmn_rpc_client each, created lazily), sends each
 * call to the replica that last answered as leader, follows LODE_ENOTLEADER redirects to the
 * leader named in the error (adding it to the list when new), and on LODE_ENOLEADER,
 * LODE_ESHUTDOWN, LODE_EUNAVAILABLE or a transport failure (connect errors, lost connection,
 * no reply in time) waits 50-200 ms and tries the next replica, until the call's deadline.
 * Any other answer, success included, is final. LODE_EAUTH is final too: a wrong secret does
 * not fix itself.
 *
 * Retries are safe: for a mutating method (request type Command) whose client_id is empty,
 * the call is stamped once with this client's id and the next seq, and every retry sends the
 * same (client_id, seq), so the state machine applies it at most once
 * (docs/wire-protocol.md, "Idempotency").
 *
 * Threading: a client belongs to the loop it was created on; create, call and close only
 * from that loop's thread. Callbacks run on it, never from inside cmn_meta_async_call.
 */
#ifndef LODE_COMMON_META_ASYNC_H
#define LODE_COMMON_META_ASYNC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"
#include "common/rpc.h"

struct cmn_meta_async;

struct cmn_meta_async_config {
    const char *addrs;           /* comma-separated "host:port" replica addresses (copied) */
    const void *secret;          /* cluster secret (copied) */
    size_t secret_len;
    uint32_t max_frame;          /* 0 = CMN_RPC_DEFAULT_MAX_FRAME */
    uint32_t connect_timeout_ms; /* per connection attempt; 0 = 1000 */
};

/* The outcome of a call: `res` is valid only during the callback. res->status is 0 or the
 * final error: the leader's answer, or after the deadline the last error seen, with a message
 * naming the replicas tried. LODE_ECLOSED when the client was closed first. */
typedef void (*cmn_meta_async_cb)(void *data, const struct cmn_rpc_result *res);

/* Returns 0, or LODE_ECONFIG (with the offending entry in err) for a bad or empty list,
 * -EINVAL for a missing secret, -ENOMEM. */
int cmn_meta_async_create(uv_loop_t *loop, const struct cmn_meta_async_config *cfg,
                          struct cmn_meta_async **out, struct cmn_err *err);

/* Calls the leader. `req` (may be NULL for an empty body) is borrowed only for the duration
 * of this function: it is packed (stamped first for a Command, then restored) into the
 * call's own copy. timeout_ms is the whole call's deadline across retries (0 = 10000);
 * `flags` are RPC header flags (CMN_RPC_FLAG_STALE_OK). Returns 0 (cb will run exactly once,
 * on a later loop iteration at the earliest) or an error (cb will not run): -EINVAL,
 * -ENOMEM, LODE_EFRAMETOOBIG, LODE_ECLOSED once closing. */
int cmn_meta_async_call(struct cmn_meta_async *ma, unsigned method, unsigned flags,
                        ProtobufCMessage *req, uint32_t timeout_ms, cmn_meta_async_cb cb,
                        void *data);

/* Whether `status` is one the client retries until the deadline (no leader, replica
 * starting or stopping, connection failures, no answer in time): a call that ends with it
 * means "meta unreachable", not an answer from meta. */
int cmn_meta_async_transient(int status);

/* Calls in progress (submitted, callback not yet run). */
unsigned cmn_meta_async_pending(const struct cmn_meta_async *ma);

/* Address of the replica that answered last as leader, or NULL. Valid until the next call
 * into this client or a return to the loop. */
const char *cmn_meta_async_leader(const struct cmn_meta_async *ma);

/* Completes every call in progress with LODE_ECLOSED (their callbacks run before this
 * returns), closes the connections and frees the client; `cb` (may be NULL) runs once all
 * memory is released, on a later loop iteration. Callbacks may call this. */
void cmn_meta_async_close(struct cmn_meta_async *ma, void (*cb)(void *data), void *data);

#endif
