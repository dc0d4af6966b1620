/* liblode's tcp receive engine: one data connection per data source, frames read straight
 * into the application's window.
 *
 * A receiver owns one I/O thread running its own libuv loop. Every public function below is
 * thread-safe and may be called from any thread except from inside a sink callback (those run
 * on the I/O thread). The receiver holds one session credential (sid, expiry, MAC, access
 * key) and presents it to every source it is told about.
 *
 * Sources: lc_dp_recv_add_source() connects to a source (a data node, or a gateway worker)
 * and sends the HELLO in the background; lc_dp_recv_wait_ready() waits until every source
 * is connected or has failed. A source that failed (refused, unreachable, closed) stays
 * failed, with its error text, until it is added again.
 *
 * Windows: lc_dp_recv_window_open() registers [base, base+size) and the request's tag (the
 * numbers in the request's token) and where its bytes go: host memory, or a staged sink (e.g.
 * pinned bounce slots that are copied to a GPU). A DATA frame lands only when its window_base
 * and tag equal the base and tag of an open window and [addr, addr+len) lies inside it; any
 * other frame is read into a discard buffer and counted as dropped (the tcp fence). The tag
 * keeps a late frame of a finished request out of the next window opened at the same base.
 * A header that fails its checks (magic, CRC, size) means the stream is desynchronised: that
 * connection is closed and its source fails. Per window and per source the receiver counts
 * the payload bytes that landed.
 *
 * Fence: once lc_dp_recv_window_close() returns, no byte is ever written into that window's
 * memory again and its sink is never called again; a read into the window that was under way
 * has finished before it returns.
 */
#ifndef LODE_CLIENT_DP_RECV_H
#define LODE_CLIENT_DP_RECV_H

#include <stddef.h>
#include <stdint.h>

#include "common/dp_proto.h"
#include "common/err.h"

struct lc_dp_recv;
struct lc_dp_window;

struct lc_dp_recv_config {
    struct cmn_dp_cred cred;     /* copied */
    uint32_t connect_timeout_ms; /* tcp connect + HELLO reply; 0 = 5000 */
    uint32_t max_frame;          /* largest payload accepted; 0 = CMN_DP_MAX_FRAME_DEFAULT */
    uint32_t max_sources;        /* 0 = 1024 */
};

/* Creates a receiver and starts its I/O thread. Returns 0, -EINVAL (key length outside
 * 1..28), -ENOMEM, or a thread/loop error; with `err` a message. Free with
 * lc_dp_recv_destroy. */
int lc_dp_recv_create(const struct lc_dp_recv_config *cfg, struct lc_dp_recv **out,
                      struct cmn_err *err);

/* Closes every connection, stops and joins the I/O thread, frees everything. Windows still
 * open are closed first (their handles become invalid). Must not be called from a sink
 * callback. NULL is a no-op. */
void lc_dp_recv_destroy(struct lc_dp_recv *r);

/* Starts connecting to source `source_id` at "host:port" (IPv4, [IPv6] or a name resolved
 * now, on the calling thread). Returns 0 (the outcome shows in lc_dp_recv_source_state and
 * lc_dp_recv_wait_ready), -EEXIST (that source is connecting or ready), -EINVAL (bad address),
 * -ENOSPC (max_sources), or a resolver error; with `err` a message. Adding a source that
 * failed reconnects it (its byte counts in open windows are kept). The source must answer
 * HELLO_OK with the same source id, else it fails. */
int lc_dp_recv_add_source(struct lc_dp_recv *r, uint64_t source_id, const char *hostport,
                          struct cmn_err *err);

enum lc_dp_source_state {
    LC_DP_SOURCE_UNKNOWN = 0,    /* never added */
    LC_DP_SOURCE_CONNECTING,     /* connect or HELLO under way */
    LC_DP_SOURCE_READY,          /* HELLO_OK received; frames flow */
    LC_DP_SOURCE_FAILED,         /* see the error */
};

/* The source's state; for FAILED, `err` (may be NULL) gets the reason, naming the source
 * ("source 3 (10.0.0.7:7400): HELLO refused: expired"). */
enum lc_dp_source_state lc_dp_recv_source_state(struct lc_dp_recv *r, uint64_t source_id,
                                                struct cmn_err *err);

/* Blocks until no source is CONNECTING, or timeout_ms passes. Returns 0 when every added
 * source is READY, the first FAILED source's error (message naming the source) when one
 * failed, or LODE_ETIMEOUT. A source's failure codes: HELLO_ERR bad mac -> LODE_EAUTH,
 * expired -> LODE_ETIMEOUT (get a new session), malformed -> LODE_EBADMSG, in use -> -EBUSY,
 * busy -> LODE_EUNAVAILABLE; a reply from another source id or a corrupt frame header ->
 * LODE_EBADMSG; connect + reply slower than connect_timeout_ms -> -ETIMEDOUT; the connection
 * closed -> LODE_ECLOSED; connect errors as negative errno (-ECONNREFUSED, ...). */
int lc_dp_recv_wait_ready(struct lc_dp_recv *r, uint32_t timeout_ms, struct cmn_err *err);

/* A staged destination: frames are read into slots the sink lends, then committed. All three
 * run on the I/O thread and must not call lc_dp_recv_* functions. get_slot may block until a
 * slot is free (every connection of the receiver waits meanwhile, so it must not wait for
 * anything the I/O thread does). */
struct lc_dp_sink {
    /* Memory for up to `len` payload bytes destined to window offset `off`; *cap gets its
     * size (1..len; a smaller slot gets the rest of the frame in further slots). NULL is a
     * failure: the rest of that frame is discarded and the window fails (wait returns
     * LODE_EINTERNAL). */
    void *(*get_slot)(void *data, uint64_t off, size_t len, size_t *cap);
    /* The slot now holds `len` payload bytes for window offset `off`; the sink owns it again
     * (it copies the bytes to their destination, and must have them there before the
     * application reuses the window after lc_dp_recv_wait). */
    void (*commit_slot)(void *data, void *slot, uint64_t off, size_t len);
    /* The slot is returned unused (its connection died, or the window closed, mid-read). */
    void (*drop_slot)(void *data, void *slot);
    void *data;
};

/* Registers window [base, base+size) for the request tagged `tag` (the token's tag: a fresh
 * random non-zero value per request, so that frames of an earlier request at the same base
 * never land here). Exactly one of `dest` (host memory of `size` bytes: window offset o is
 * written at dest + o) and `sink` (copied) is non-NULL. `dest` must stay valid until
 * lc_dp_recv_window_close returns. Returns 0 and a handle in *out, -EINVAL (size 0, base +
 * size overflows, tag 0, both or neither destination), -EBUSY (overlaps an open window,
 * whatever its tag: close the old window before reusing its memory), or -ENOMEM. */
int lc_dp_recv_window_open(struct lc_dp_recv *r, uint64_t base, uint64_t size, uint32_t tag,
                           void *dest, const struct lc_dp_sink *sink, struct lc_dp_window **out);

/* Bytes that landed in the window from `source_id` (0 for a source that sent none). Frames of
 * a source land in order, so this many bytes of that source's frames are complete. */
uint64_t lc_dp_recv_window_bytes(struct lc_dp_recv *r, struct lc_dp_window *w,
                                 uint64_t source_id);

/* Payload bytes dropped because their frame named this window's base and tag but lay outside
 * it. */
uint64_t lc_dp_recv_window_dropped(struct lc_dp_recv *r, struct lc_dp_window *w);

struct lc_dp_expect {
    uint64_t source_id;
    uint64_t bytes;              /* at least this many bytes from this source */
};

/* Blocks until, for each of the n entries, the window received at least `bytes` from that
 * source. Returns 0, or: an error naming the first source whose connection failed before
 * delivering its count (its failure code, e.g. LODE_ECLOSED, LODE_EBADMSG; the message gives
 * received and expected bytes), -ENOENT (a source that was never added), LODE_EINTERNAL (the
 * window's sink failed), LODE_ETIMEOUT (timeout_ms passed; the message lists what is
 * missing). n == 0 returns 0 at once. The window stays open either way. */
int lc_dp_recv_wait(struct lc_dp_recv *r, struct lc_dp_window *w, const struct lc_dp_expect *exp,
                    size_t n, uint32_t timeout_ms, struct cmn_err *err);

/* Closes the window: see the fence above. A frame for it that is under way or arrives later
 * is read into the discard buffer and dropped. Slots lent by its sink and not committed are
 * given back with drop_slot before this returns. Frees the handle. NULL is a no-op. */
void lc_dp_recv_window_close(struct lc_dp_recv *r, struct lc_dp_window *w);

struct lc_dp_recv_stats {
    uint64_t frames;             /* landed in a window */
    uint64_t bytes;
    uint64_t dropped_frames;     /* no open window with that base and tag, or outside it */
    uint64_t dropped_bytes;
    uint64_t stale_frames;       /* of those: the base named an open window, the tag did not
                                    (a late frame of an earlier request) */
    uint64_t bad_headers;        /* desynchronised streams (connection closed) */
};

void lc_dp_recv_stats(struct lc_dp_recv *r, struct lc_dp_recv_stats *out);

#endif
