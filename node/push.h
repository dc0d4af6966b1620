/* The send side of a chunk GET: verified bytes from the store go to the reader through a
 * data transport (common/xfer.h), so the fan-out transports (tcp, rc, dc) plug in later
 * without touching the chunk service or the store.
 *
 * The first transport, "rpc", answers the GET's RPC call itself: the bytes travel as the
 * response payload, written from the store's read buffer with no copy.
 *
 * Threading: everything on the node's loop thread.
 */
#ifndef LODE_NODE_PUSH_H
#define LODE_NODE_PUSH_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "common/rpc.h"
#include "common/xfer.h"
#include "node/store.h"

/* Target of the "rpc" transport: the call to answer and the response body to send with the
 * bytes. A write consumes the call (it is replied to exactly once, whatever happens); `reply`
 * is packed before the write returns, so it may live on the caller's stack. Only
 * remote_off == 0 is accepted: the payload is the whole response. */
struct node_push_rpc_target {
    struct cmn_rpc_call *call;
    const ProtobufCMessage *reply;
};

/* Creates the "rpc" transport. Its write completes (cb status 0) once the bytes have been
 * handed to the connection or the connection is gone: RPC has no delivery acknowledgement,
 * and a reader that lost its connection retries on its own. Destroy with node_push_destroy.
 * Returns 0 or -ENOMEM. */
int node_push_rpc_create(struct cmn_xfer **out);
void node_push_destroy(struct cmn_xfer *x);

/* One push of a store read: the caller embeds it in its request and keeps it until cb. */
struct node_push {
    void *data;                  /* the caller's */
    cmn_xfer_cb cb;
    struct node_read *rd;        /* private */
};

/* Sends the bytes of a completed store read (rd->data, rd->len) to `target` at remote_off
 * through `x`. On 0, `rd` belongs to the push: node_read_release(rd) runs once the transport
 * no longer needs the bytes, then p->cb(p->data, status) runs exactly once (possibly before
 * this returns, when the transport finishes at once). On an error no callback runs and `rd`
 * is still the caller's. The "rpc" transport consumes the call in its target whatever the
 * outcome (an error return means it was answered with that error). */
int node_push_read(struct node_push *p, struct cmn_xfer *x, void *target, uint64_t remote_off,
                   struct node_read *rd);

#endif
