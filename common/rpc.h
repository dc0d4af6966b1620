/* Authenticated internal RPC over TCP on libuv (server and asynchronous client).
 *
 * Framing and handshake are in rpc_codec.h; the protocol is in docs/wire-protocol.md.
 * Threading: a server or client belongs to the loop it was created on and must only be
 * touched from that loop's thread.
 *
 * Server: every accepted connection first proves knowledge of the cluster secret; until it
 * has, nothing it sends reaches the handler. Malformed frames, oversized lengths, wrong
 * secrets and handshake timeouts get a PROTO_ERROR or AUTH_FAIL frame with a clear message,
 * the connection is closed, a rate-limited warning names the peer, and the server goes on
 * serving everyone else. Requests are dispatched to one handler; replies may come later
 * and out of order (pipelining). PING is answered by the server itself.
 */
#ifndef LODE_COMMON_RPC_H
#define LODE_COMMON_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"
#include "common/rpc_codec.h"
#include "common/rpc_methods.h"

struct cmn_metrics;
struct cmn_rpc_server;
struct cmn_rpc_call;             /* one request waiting for its reply */

/* Called on the loop thread for each authenticated REQUEST. The handler owns `call` until
 * it passes it to one of the cmn_rpc_reply* functions (exactly once, now or later). */
typedef void (*cmn_rpc_handler_cb)(void *data, struct cmn_rpc_call *call);

struct cmn_rpc_server_config {
    const char *service;         /* "lode-meta": in PING replies and logs */
    const void *secret;          /* cluster secret (copied); must be non-empty */
    size_t secret_len;
    uint32_t max_frame;          /* 0 = CMN_RPC_DEFAULT_MAX_FRAME */
    uint32_t handshake_timeout_ms; /* 0 = 5000 */
    uint32_t idle_timeout_ms;    /* 0 = none */
    cmn_rpc_handler_cb handler;
    void *data;
    struct cmn_metrics *metrics; /* optional: lode_rpc_* counters are registered there */
    /* Optional zero-copy receive. When the body of an authenticated REQUEST whose payload is
     * not empty has arrived, the server calls payload_alloc with the method and body; a
     * non-NULL return is where the payload_len payload bytes are read from the socket,
     * directly, with no intermediate copy, and *cookie identifies that memory. NULL lets the
     * server buffer the payload as usual. The memory then belongs to the call: the handler
     * takes it with cmn_rpc_call_take_payload(); if it does not (or the connection dies first),
     * the server calls payload_free(data, cookie). A cookie left NULL defaults to the returned
     * pointer. cmn_rpc_call_payload() points into that memory. Oversized frames are refused
     * from their header, before payload_alloc is asked. With payload_alloc set, the server
     * reads each frame's header and body with reads of their own so that no payload byte is
     * ever copied (a read more per frame). */
    void *(*payload_alloc)(void *data, unsigned method, const uint8_t *body, size_t body_len,
                           uint32_t payload_len, void **cookie);
    void (*payload_free)(void *data, void *cookie);
};

int cmn_rpc_server_create(uv_loop_t *loop, const struct cmn_rpc_server_config *cfg,
                          struct cmn_rpc_server **out);
/* Binds and listens on "host:port" (port 0 = a free port). */
int cmn_rpc_server_listen(struct cmn_rpc_server *srv, const char *addr, struct cmn_err *err);
int cmn_rpc_server_port(const struct cmn_rpc_server *srv);
/* Stops listening and closes every connection. Calls still held by the handler stay valid;
 * replying to them frees them without sending. `cb` (may be NULL) runs once the server's
 * memory is released, on a later loop iteration. */
void cmn_rpc_server_close(struct cmn_rpc_server *srv, void (*cb)(void *data), void *data);

/* Accessors; valid until the call is replied to. */
unsigned cmn_rpc_call_method(const struct cmn_rpc_call *call);
unsigned cmn_rpc_call_flags(const struct cmn_rpc_call *call);
uint64_t cmn_rpc_call_id(const struct cmn_rpc_call *call);
const uint8_t *cmn_rpc_call_body(const struct cmn_rpc_call *call, size_t *len);
const uint8_t *cmn_rpc_call_payload(const struct cmn_rpc_call *call, size_t *len);
const char *cmn_rpc_call_peer(const struct cmn_rpc_call *call); /* "ip:port" */
/* True once the connection the call came on has closed (the reply would go nowhere). */
int cmn_rpc_call_orphaned(const struct cmn_rpc_call *call);
/* For a payload received through payload_alloc: hands its cookie to the caller (who now owns
 * that memory) and returns it; NULL when the payload was buffered by the server (use
 * cmn_rpc_call_payload) or was already taken. */
void *cmn_rpc_call_take_payload(struct cmn_rpc_call *call);

/* Replies and releases the call. Each returns 0, or an error if the connection is gone
 * (the call is released all the same). */
int cmn_rpc_reply(struct cmn_rpc_call *call, const ProtobufCMessage *msg);
int cmn_rpc_reply_raw(struct cmn_rpc_call *call, const void *body, size_t len,
                      const void *payload, size_t payload_len);
/* Replies with msg as the body and `payload` sent straight from the caller's memory, with no
 * copy; release(arg) runs exactly once, after the bytes are written or the connection is gone
 * (also when this returns an error, then before it returns). `release` may be NULL. The
 * payload must not be memory the call still owns (take it first): the call is freed now. */
int cmn_rpc_reply_payload(struct cmn_rpc_call *call, const ProtobufCMessage *msg,
                          const void *payload, size_t payload_len, void (*release)(void *arg),
                          void *arg);
/* status < 0. leader_address may be NULL. */
int cmn_rpc_reply_error(struct cmn_rpc_call *call, int status, const char *leader_address,
                        uint64_t leader_id, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The outcome of a call, as the client sees it. */
struct cmn_rpc_result {
    int status;                  /* 0, the server's error status, or a local error
                                    (LODE_ETIMEOUT, LODE_ECLOSED, LODE_EAUTH, -ECONNREFUSED) */
    uint64_t request_id;
    struct cmn_buf body;         /* response body when status == 0 */
    struct cmn_buf payload;
    char message[512];           /* error text when status != 0 */
    char leader_address[256];    /* from RpcError, when the server named a leader */
    uint64_t leader_id;
    size_t spliced;              /* cmn_rpc_client_call_splice: payload bytes in the pipe */
};

void cmn_rpc_result_init(struct cmn_rpc_result *r);
void cmn_rpc_result_free(struct cmn_rpc_result *r);

/* Asynchronous client for one peer. Connects (and authenticates) lazily on the first call
 * and again after a disconnect; calls made while connecting are queued. */
struct cmn_rpc_client;

struct cmn_rpc_client_config {
    const char *address;         /* "host:port" (copied) */
    const void *secret;          /* copied */
    size_t secret_len;
    uint32_t max_frame;          /* 0 = CMN_RPC_DEFAULT_MAX_FRAME */
    uint32_t connect_timeout_ms; /* 0 = 3000 */
};

/* `res` is valid only during the callback. Called exactly once per successful submit. */
typedef void (*cmn_rpc_response_cb)(void *data, const struct cmn_rpc_result *res);

int cmn_rpc_client_create(uv_loop_t *loop, const struct cmn_rpc_client_config *cfg,
                          struct cmn_rpc_client **out);
/* Sends `req` (packed now; the caller keeps ownership). timeout_ms 0 = 10000. Returns 0
 * (cb will fire) or an error (cb will not fire). */
int cmn_rpc_client_call(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                        const ProtobufCMessage *req, uint32_t timeout_ms,
                        cmn_rpc_response_cb cb, void *data);
/* Like cmn_rpc_client_call, with `payload` sent as the frame's payload straight from the
 * caller's memory; it must stay valid and unchanged until cb runs. cb never runs while the
 * payload is still being written: a call that times out mid-write closes the connection
 * (the other calls on it fail too) and completes once the write is abandoned. */
int cmn_rpc_client_call_payload(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                                const ProtobufCMessage *req, const void *payload,
                                size_t payload_len, uint32_t timeout_ms, cmn_rpc_response_cb cb,
                                void *data);
/* Like cmn_rpc_client_call, with the payload of a successful reply read from the socket
 * straight into `dest` when it is at most dest_cap bytes: then res->payload.data == dest.
 * A larger payload is buffered as usual (res->payload.data points elsewhere), so callers
 * that need it in place check the pointer or the length. dest must stay valid until cb runs
 * and may have been written (partly) even when the call fails; cb never runs while reads
 * still land in it (a call that times out mid-payload closes the connection first, failing
 * the other calls on it). Returns as cmn_rpc_client_call; -EINVAL when dest_cap is 0. */
int cmn_rpc_client_call_into(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                             const ProtobufCMessage *req, void *dest, size_t dest_cap,
                             uint32_t timeout_ms, cmn_rpc_response_cb cb, void *data);
/* Like cmn_rpc_client_call_into, and the reply payload is first moved with splice(2) from
 * the socket into the pipe whose write end is `pipe_wr` (the kernel passes page references:
 * no byte is copied through user space), as far as the pipe takes it; the rest, if the pipe
 * fills or splicing is not possible, is read into dest at the same offset. On success
 * res->spliced says how many leading payload bytes are in the pipe and res->payload.data ==
 * dest holds bytes [spliced, len) at their offsets. pipe_wr must be non-blocking and stay
 * open until cb runs; after a failure the pipe may hold part of the payload (discard it). A
 * payload larger than dest_cap is buffered as for call_into (nothing spliced). */
int cmn_rpc_client_call_splice(struct cmn_rpc_client *cli, unsigned method, unsigned flags,
                               const ProtobufCMessage *req, int pipe_wr, void *dest,
                               size_t dest_cap, uint32_t timeout_ms, cmn_rpc_response_cb cb,
                               void *data);
/* Pending calls complete with LODE_ECLOSED; `cb` (may be NULL) runs when memory is freed. */
void cmn_rpc_client_close(struct cmn_rpc_client *cli, void (*cb)(void *data), void *data);

#endif
