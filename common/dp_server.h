/* The tcp data plane's source side: a libuv listener that accepts client data connections,
 * verifies their session credential (HELLO), keeps one connection per session id, and pushes
 * DATA frames into them on request. lode-node runs one; each gateway worker loop runs its own.
 *
 * Threading: a server belongs to the loop it was created on; every function must be called on
 * that loop's thread, and every callback runs there.
 *
 * Connection life: accept -> read exactly the 96-byte HELLO (hello_timeout_ms, default 5 s)
 * -> verify (MAC, expiry, one live connection per sid, session cap) -> HELLO_OK, or HELLO_ERR
 * and close. From HELLO_OK on the connection is send-only: any byte the client sends, and its
 * EOF, closes it. A session whose credential expires is closed by a periodic check. Closing a
 * session's connection fails its pending pushes with LODE_ECLOSED. Bad clients never disturb
 * the others; each refusal is logged (rate-limited) with the peer address.
 *
 * Memory: a push sends the caller's bytes without copying them. Per connection, at most
 * max_queued_bytes are handed to libuv at a time; further pushes wait in a FIFO, in order, so
 * a slow client never makes the server buffer more than that. The caller bounds its own
 * memory by bounding its pushes in flight (each push's cb says when its bytes are in the
 * kernel and the source memory is free again).
 */
#ifndef LODE_COMMON_DP_SERVER_H
#define LODE_COMMON_DP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/dp_proto.h"
#include "common/err.h"

struct cmn_dp_server;

#define CMN_DP_DEFAULT_MAX_SESSIONS 4096
#define CMN_DP_DEFAULT_MAX_QUEUED (64ull * 1024 * 1024)
#define CMN_DP_DEFAULT_HELLO_TIMEOUT_MS 5000
#define CMN_DP_DEFAULT_EXPIRY_CHECK_MS 1000
#define CMN_DP_DEFAULT_MAX_HANDSHAKES 1024

struct cmn_dp_server_config {
    const void *secret;          /* cluster secret (copied); must be non-empty */
    size_t secret_len;
    uint64_t source_id;          /* sent in HELLO_OK/ERR: nid, or 0x80000000|w for gateway
                                    worker w; cmn_dp_server_set_source_id changes it */
    uint32_t max_sessions;       /* live sessions; beyond it HELLO_ERR busy (5). 0 = default */
    uint64_t max_queued_bytes;   /* per connection, bytes in libuv writes. 0 = default */
    uint32_t max_frame;          /* largest push; 0 = CMN_DP_MAX_FRAME_DEFAULT */
    uint32_t hello_timeout_ms;   /* 0 = default */
    uint32_t max_handshakes;     /* connections still owing their HELLO; beyond it new ones
                                    are closed at once. 0 = CMN_DP_DEFAULT_MAX_HANDSHAKES */
    uint32_t expiry_check_ms;    /* period of the expiry sweep; 0 = default */
    /* Wall clock in ms since the epoch, for credential expiry; NULL = cmn_now_ms(). */
    uint64_t (*now_ms)(void *clock_data);
    void *clock_data;
};

/* Counters since creation, and gauges (now). */
struct cmn_dp_server_stats {
    uint64_t sessions;           /* gauge: live sessions (connections past HELLO_OK) */
    uint64_t connections;        /* gauge: open connections, HELLO pending included */
    uint64_t sessions_opened;    /* HELLO_OK sent */
    uint64_t hello_refused;      /* HELLO_ERR sent, or closed before a valid HELLO */
    uint64_t sessions_expired;   /* closed by the expiry sweep */
    uint64_t frames;             /* DATA frames whose bytes reached the kernel */
    uint64_t bytes;              /* payload bytes of those frames */
    uint64_t push_failed;        /* pushes completed with an error */
    uint64_t queued_bytes;       /* gauge: bytes in libuv writes, all connections */
    uint64_t queued_peak;        /* highest bytes in libuv writes seen on one connection */
    uint64_t waiting_pushes;     /* gauge: pushes in the FIFOs behind the cap */
    uint64_t waiting_bytes;      /* gauge: their payload bytes */
};

/* Creates a server on `loop` (nothing listens yet). Returns 0, -EINVAL (no secret), or
 * -ENOMEM. Free it with cmn_dp_server_close, also when listen failed. */
int cmn_dp_server_create(uv_loop_t *loop, const struct cmn_dp_server_config *cfg,
                         struct cmn_dp_server **out);

/* Binds and listens on "host:port" (IPv4 or [IPv6]; port 0 = a free port). Returns 0 or a
 * negative error with a message naming the address. */
int cmn_dp_server_listen(struct cmn_dp_server *srv, const char *addr, struct cmn_err *err);

/* Changes the source id this server answers with (a lode-node learns its nid only once it
 * has registered with meta). Every HELLO_OK and HELLO_ERR sent after the call carries `id`;
 * sessions already open are not told (their clients checked the id they were given when
 * they connected). */
void cmn_dp_server_set_source_id(struct cmn_dp_server *srv, uint64_t id);

/* The bound port, or -1 when not listening. */
int cmn_dp_server_port(const struct cmn_dp_server *srv);

/* Called once per push: 0 when the frame's bytes were handed to the kernel, LODE_ECLOSED when
 * the session's connection failed or closed first, or the server closed (the client may have
 * received some, all or none of it). `src` may be reused from then on. */
typedef void (*cmn_dp_push_cb)(void *data, int status);

/* Sends one DATA frame {addr, window_base, tag, len} followed by `len` bytes from `src` on
 * the connection of session `sid`, which must be owned by `access_key` (the verified
 * requester's key, NUL-terminated). window_base and tag are the request token's base and tag:
 * the client lands the frame only while a window with both is open. `src` is not copied: it
 * must stay valid and unchanged until cb runs. Frames of one session are sent in push order.
 * Returns 0 (cb runs exactly once, never from inside this call) or an error (cb never runs):
 * LODE_ENOSESSION (no live session with that sid on this server, or it belongs to another
 * key), -EINVAL (tag 0, len 0, len > max_frame, NULL src or cb). */
int cmn_dp_push(struct cmn_dp_server *srv, const uint8_t sid[CMN_DP_SID_SIZE],
                const char *access_key, uint64_t window_base, uint32_t tag, uint64_t addr,
                const void *src, size_t len, cmn_dp_push_cb cb, void *data);

/* 0 when a live session `sid` owned by `access_key` is connected here, else LODE_ENOSESSION.
 * For checks before work starts (FANOUT_PUSH); a push can still find the session gone. */
int cmn_dp_session_check(const struct cmn_dp_server *srv, const uint8_t sid[CMN_DP_SID_SIZE],
                         const char *access_key);

void cmn_dp_server_stats(const struct cmn_dp_server *srv, struct cmn_dp_server_stats *out);

/* Resolves "host:port", "[v6]:port" or "name:port" (getaddrinfo: may block) into *out.
 * passive: an empty host means 0.0.0.0 (listening); otherwise a host is required. Returns 0
 * or -EINVAL / -EHOSTUNREACH with a message naming the address. Thread-safe. */
int cmn_dp_resolve(const char *hostport, bool passive, struct sockaddr_storage *out,
                   struct cmn_err *err);

/* "ip:port" or "[ip]:port" into out (size bytes; 64 always suffice). Thread-safe. */
void cmn_dp_format_sockaddr(const struct sockaddr *sa, char *out, size_t size);

/* Stops listening, closes every connection, completes pending pushes with LODE_ECLOSED
 * (before cb). `cb` (may be NULL) runs once all memory is released, on a later loop
 * iteration. The server must not be used after this call. */
void cmn_dp_server_close(struct cmn_dp_server *srv, void (*cb)(void *data), void *data);

#endif
