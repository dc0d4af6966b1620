/* The rc data plane, server side: RDMA RC queue pairs through librdmacm, on a libuv loop.
 *
 * A data source (a lode-node, or a gateway worker) listens on host:port with rdma_cm. A
 * liblode client connects once per session, proves the session credential (the dp_proto
 * HELLO), and then only the source acts on the connection: it RDMA-WRITEs GET data into the
 * client's registered window, or RDMA-READs a staged PUT out of it. The client's NIC places
 * the bytes; no client CPU is involved per transfer. docs/dataplane-rc.md has the protocol.
 *
 * Connection setup (why two steps): RC connect private data holds only 56 bytes and the HELLO
 * is 96, so the connect request carries a short CMN_DP_RC_CONNECT_SIZE record {magic, version,
 * sid, nonce}; the source accepts, and the client's first message on the QP is the full HELLO
 * (a SEND). The source answers HELLO_OK or HELLO_ERR (a SEND) and only after HELLO_OK does the
 * session exist. Until then the peer holds a QP that can reach no memory of the source (the
 * only buffer posted is a local-write-only receive buffer for the HELLO), unauthenticated
 * connections are capped, and they are dropped after a timeout.
 *
 * Memory: nothing is registered per transfer (registration pins pages and costs system calls
 * each time). A caller that owns long-lived memory registers it once with
 * cmn_dp_rc_add_region (a lode-node: the arena it reads chunk ranges into), and a transfer
 * out of or into it goes straight from or to where it lies. Other memory is staged through a
 * pool of registered memory per RDMA device (copied in for a write, copied out after a read).
 * Both are bounded per device (staging slots; as many direct work requests as slots); a
 * transfer waiting for either or for send-queue space waits in its session's FIFO, and
 * sessions take turns, one slot-sized piece at a time.
 *
 * Concurrency: a struct cmn_dp_rc belongs to the loop it was created on. Every function here
 * must be called on that loop's thread; callbacks run there.
 */
#ifndef LODE_COMMON_DP_RC_H
#define LODE_COMMON_DP_RC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/err.h"

/* The connect request's private data: magic "LRC1", u16 version (1), u16 flags (0), sid[16],
 * nonce[8]; little-endian. rdma_cm may pad it with zeros up to 56 bytes. */
#define CMN_DP_RC_CONNECT_SIZE 32
#define CMN_DP_RC_VERSION 1

/* A source refuses a connect request with a reject whose private data is
 * {magic "LRC1", u16 code}: the HELLO_ERR codes of dp_proto where they apply. */
#define CMN_DP_RC_REJECT_SIZE 6

struct cmn_dp_rc;

struct cmn_dp_rc_config {
    const char *host;              /* address to listen on (an RDMA device's IP, or 0.0.0.0) */
    uint16_t port;                 /* 0: any free port (see cmn_dp_rc_port) */
    uint64_t source_id;            /* reported in HELLO_OK: a nid, or 0x80000000 | worker */
    const void *secret;            /* cluster secret for the session MAC (copied) */
    size_t secret_len;
    uint32_t max_sessions;         /* live sessions; 0: 1024 */
    uint32_t max_pending;          /* connections not through HELLO yet; 0: 64 */
    uint32_t hello_timeout_ms;     /* from connect request to HELLO; 0: 5000 */
    size_t staging_bytes;          /* registered staging memory per device; 0: 64 MiB */
    size_t slot_bytes;             /* largest single RDMA operation; 0: 1 MiB; power of two */
    uint32_t sq_depth;             /* RDMA operations in flight per session; 0: 64 */
    uint8_t rd_atomic;             /* RDMA READs in flight per session; 0: 16 (device caps it) */
    uint8_t ack_timeout;           /* IB local ACK timeout exponent (4.096 us << n); 0: the
                                      connection manager's (from the path's packet lifetime) */
    uint32_t stall_timeout_ms;     /* a session with transfers in flight and no completion for
                                      this long is closed (LODE_ETIMEOUT); 0: 30000 */
    int64_t (*now_ms)(void);       /* wall clock for credential expiry; NULL: cmn_now_ms */
};

struct cmn_dp_rc_stats {
    uint32_t sessions;             /* live (authenticated) sessions */
    uint32_t pending;              /* connections waiting for or refused at HELLO */
    uint64_t sessions_accepted;    /* HELLO verified, since start */
    uint64_t sessions_refused;     /* connect requests or HELLOs refused, since start */
    uint64_t bytes_written;        /* RDMA WRITE bytes completed successfully */
    uint64_t bytes_read;           /* RDMA READ bytes completed successfully */
    uint64_t bytes_direct;         /* of those, bytes that went from or to a registered region
                                      (cmn_dp_rc_add_region) without a staging copy */
    uint64_t ops_failed;           /* writes/reads that completed with an error */
    uint32_t ops_queued;           /* transfers waiting for staging or send-queue space */
    uint32_t slots_free;           /* free staging slots, all devices */
    uint32_t slots_total;
};

/* Completion of a write, read or fence: 0, or a negative code. */
typedef void (*cmn_dp_rc_cb)(void *data, int status);
typedef void (*cmn_dp_rc_close_cb)(void *data);

/* Where a transfer goes, from a verified request: the token's session, window and rkey, and
 * the access key of the requester the gateway authenticated. */
struct cmn_dp_rc_target {
    uint8_t sid[16];
    const char *access_key;        /* NUL-terminated; must own the session */
    uint64_t window_base;          /* the token's base: a virtual address in the client */
    uint64_t window_size;
    uint32_t rkey;
};

/* Creates a source listening on cfg->host:cfg->port on `loop`. Opens the RDMA device that
 * owns the address now (when it is a specific address), so a missing rdma_ucm module, a low
 * RLIMIT_MEMLOCK or an address with no RDMA device fail here, with an error that names the
 * remedy. Returns 0 and *out, or a negative code with err set (*out untouched).
 * Destroy with cmn_dp_rc_close. */
int cmn_dp_rc_create(uv_loop_t *loop, const struct cmn_dp_rc_config *cfg, struct cmn_dp_rc **out,
                     struct cmn_err *err);

/* Registers [base, base + len) for local access (no remote peer can reach it) with every
 * RDMA device this source uses, now and later, so that a write whose source, or a read whose
 * destination, lies wholly inside it is posted from where it lies instead of being copied
 * through staging memory. The memory must stay mapped, and keep its use, until close_cb of
 * cmn_dp_rc_close. Returns 0; -EINVAL (len 0, or overlapping a region already added);
 * -ENOSPC (CMN_DP_RC_MAX_REGIONS already); or, with err set, the error of registering it with
 * a device already open (nothing is kept then: transfers from it are staged). A device opened
 * later that cannot register it logs why and stages them. */
#define CMN_DP_RC_MAX_REGIONS 4
int cmn_dp_rc_add_region(struct cmn_dp_rc *rc, void *base, size_t len, struct cmn_err *err);

/* The bound port (useful with port 0). */
uint16_t cmn_dp_rc_port(const struct cmn_dp_rc *rc);

/* Sets the source id that HELLO_OK carries from now on (a node learns its nid from meta
 * after its listener is up). Sessions already accepted are not told again. */
void cmn_dp_rc_set_source_id(struct cmn_dp_rc *rc, uint64_t source_id);

/* RDMA-WRITEs len bytes from src to the client address `addr`, which must lie in the target's
 * window: [addr, addr + len) inside [window_base, window_base + window_size).
 * `src` is borrowed until cb runs (it is copied into staging memory when its turn comes,
 * unless it lies in a region of cmn_dp_rc_add_region: then the NIC reads it until cb).
 * Returns 0, and then cb runs exactly once, later, on the loop: 0 once the client's NIC has
 * acknowledged every byte (RC: the data is placed in client memory), or an error; or returns
 * without calling cb:
 *   LODE_ENOSESSION  no live session with that sid here, or another access key owns it;
 *   LODE_ECLOSED     the session's connection failed or was fenced;
 *   LODE_EWINDOW     the range is not inside the window (or wraps);
 *   -EINVAL          len is 0;  LODE_ESHUTDOWN: the source is closing.
 * cb errors: LODE_ECLOSED (connection failed or fenced before every byte was acknowledged;
 * some bytes may have been placed), LODE_EWINDOW (the client's NIC refused the address or
 * rkey: the window is not registered as the token claims; the session is closed),
 * LODE_ETIMEOUT (the session made no progress for stall_timeout_ms; it is closed),
 * LODE_ESHUTDOWN (cmn_dp_rc_close). */
int cmn_dp_rc_write(struct cmn_dp_rc *rc, const struct cmn_dp_rc_target *t, uint64_t addr,
                    const void *src, size_t len, cmn_dp_rc_cb cb, void *data);

/* RDMA-READs len bytes at client address `addr` (inside the window, as for write) into dst
 * (borrowed until cb). Same return values and callback rules as cmn_dp_rc_write; on an error
 * the contents of dst are unspecified. */
int cmn_dp_rc_read(struct cmn_dp_rc *rc, const struct cmn_dp_rc_target *t, uint64_t addr,
                   void *dst, size_t len, cmn_dp_rc_cb cb, void *data);

/* Fences a session: its QP goes to the error state at once, so no operation posted from now
 * on reaches the client, transfers still queued fail with LODE_ECLOSED, and the connection is
 * closed (the client must reconnect to use this source again). cb runs once every operation
 * that had been posted has completed or been flushed, i.e. when this source can no longer
 * start a transfer into the client's memory. (Bytes already on the wire may still land after
 * that; the client's own fence, deregistering the window, is the one that stops everything.)
 * Returns 0 (cb will run), or LODE_ENOSESSION (no session with that sid owned by access_key;
 * cb will not run). Fencing a session that is already failing is allowed. */
int cmn_dp_rc_fence(struct cmn_dp_rc *rc, const uint8_t sid[16], const char *access_key,
                    cmn_dp_rc_cb cb, void *data);

/* True when a live session with that sid is owned by access_key. */
bool cmn_dp_rc_has_session(const struct cmn_dp_rc *rc, const uint8_t sid[16],
                           const char *access_key);

void cmn_dp_rc_get_stats(const struct cmn_dp_rc *rc, struct cmn_dp_rc_stats *out);

/* Stops listening, closes every connection, fails queued and in-flight transfers and fences
 * with LODE_ESHUTDOWN (callbacks run before close_cb), releases the devices, and calls
 * close_cb (may be NULL) once all memory is freed and the loop has no handle of ours left.
 * The handle must not be used after this call. */
void cmn_dp_rc_close(struct cmn_dp_rc *rc, cmn_dp_rc_close_cb close_cb, void *data);

/* Checks a parsed connect request record (the first CMN_DP_RC_CONNECT_SIZE bytes of the
 * private data; `len` is what arrived). Pure. Returns 0 and the sid/nonce, or LODE_EBADMSG
 * (short, wrong magic, non-zero flags) or LODE_EVERSION. Exposed for tests. */
int cmn_dp_rc_connect_decode(const void *buf, size_t len, uint8_t sid[16], uint8_t nonce[8]);
/* Encodes the connect record (CMN_DP_RC_CONNECT_SIZE bytes). Pure. */
void cmn_dp_rc_connect_encode(void *buf, const uint8_t sid[16], const uint8_t nonce[8]);
/* Reject record: encode (CMN_DP_RC_REJECT_SIZE bytes) and decode (returns the code, or -1
 * when the bytes are not a lode reject). Pure. */
void cmn_dp_rc_reject_encode(void *buf, uint16_t code);
int cmn_dp_rc_reject_decode(const void *buf, size_t len);

#endif
