/* Helpers shared by the RPC server, the asynchronous and blocking clients and the meta
 * client. Not part of the RPC API: nothing outside common/rpc*.c and meta_client.c should
 * include this.
 */
#ifndef LODE_COMMON_RPC_INTERNAL_H
#define LODE_COMMON_RPC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/rpc.h"
#include "common/rpc_sync.h"

#define CMN_RPC_HOST_MAX 256
#define CMN_RPC_PEER_MAX 64     /* "[ipv6]:port" fits */

/* "HELLO", "REQUEST", ... or "unknown". Static. */
const char *cmn_rpc_kind_name(unsigned kind);

/* Splits "host:port" or "[v6]:port" into host (brackets removed; may be empty) and port.
 * Returns 0 or LODE_ECONFIG with the reason in err. */
int cmn_rpc_addr_split(const char *addr, char host[CMN_RPC_HOST_MAX], char port[8],
                       struct cmn_err *err);

/* Formats a socket address as "ip:port" or "[ip]:port" into out. */
void cmn_rpc_format_sockaddr(const struct sockaddr *sa, char out[CMN_RPC_PEER_MAX]);

/* Sets status, message, leader_address and leader_id of res from an RpcError body (any of
 * which may be missing or undecodable, in which case the message is lode_strerror(status)).
 * `context`, when not NULL, is put in front of the message ("127.0.0.1:7000: ..."). */
void cmn_rpc_result_set_error(struct cmn_rpc_result *res, int status, const uint8_t *body,
                              size_t len, const char *context);

/* Sets status and a formatted message on res (local errors). */
void cmn_rpc_result_set_local(struct cmn_rpc_result *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True once a transport error (timeout, EOF, malformed frame) made the connection
 * unusable; distinguishes a local LODE_ETIMEOUT from one the server sent. */
int cmn_rpc_sync_broken(const struct cmn_rpc_sync *c);

/* ---- frame receiver with payload diversion (the server's read path) ----------------------
 *
 * Like cmn_rpc_reader (same validation, same memory rule: buffers grow with what arrived,
 * never with what a header announces), plus two things zero-copy receive needs:
 * - when the body of a frame with a payload is complete, `divert` may return memory of the
 *   caller's choosing for the payload; the payload then never enters the reader's buffer and
 *   `diverted` runs once it is all there;
 * - cmn_rpc_rx_next_read() says where the next socket read should land: straight into that
 *   memory while a diverted payload is arriving, else into the caller's scratch buffer, cut
 *   (with `exact`) at the end of the header or body so that no payload byte that might be
 *   diverted is read into scratch first. Exact reads cost a read per header and body; only
 *   readers that divert use them.
 */
struct cmn_rpc_rx_ops {
    cmn_rpc_frame_cb frame;      /* a complete frame (payload buffered); non-zero stops */
    /* May be NULL (never divert). Returns where the h->payload_len payload bytes go, or
     * NULL to buffer them as usual. */
    uint8_t *(*divert)(void *data, const struct cmn_rpc_header *h, const uint8_t *body);
    /* The diverted payload is complete; non-zero stops feeding. */
    int (*diverted)(void *data, const struct cmn_rpc_header *h);
};

struct cmn_rpc_rx {
    uint32_t max_frame;
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    size_t hdr_have;
    struct cmn_rpc_header cur;
    int phase;                   /* header, frame (body or body + payload), direct payload */
    int ask;                     /* divert not yet asked: the frame ends, for now, at the body */
    struct cmn_buf frame;
    uint8_t *dest;               /* diverted payload */
    size_t have;                 /* bytes of it arrived */
    int dead;
    struct cmn_err err;          /* why the receiver died */
};

void cmn_rpc_rx_init(struct cmn_rpc_rx *rx, uint32_t max_frame);
void cmn_rpc_rx_free(struct cmn_rpc_rx *rx);
/* Feeds bytes read into scratch. Returns 0, a callback's non-zero value, or the header
 * unpack error / -ENOMEM (the receiver is then dead: close the connection). */
int cmn_rpc_rx_feed(struct cmn_rpc_rx *rx, const uint8_t *data, size_t len,
                    const struct cmn_rpc_rx_ops *ops, void *cb_data);
/* Sets *base and *len for the next read (see above). */
void cmn_rpc_rx_next_read(const struct cmn_rpc_rx *rx, int exact, uint8_t *scratch,
                          size_t scratch_len, char **base, size_t *len);
/* True when a read at `base` went straight into the diverted payload; then account for it
 * with cmn_rpc_rx_feed_direct (same return values as cmn_rpc_rx_feed). */
int cmn_rpc_rx_is_direct(const struct cmn_rpc_rx *rx, const char *base);
int cmn_rpc_rx_feed_direct(struct cmn_rpc_rx *rx, size_t n, const struct cmn_rpc_rx_ops *ops,
                           void *cb_data);
/* While a diverted payload is arriving: 1, with the bytes arrived in *have and those still
 * due in *left. Else 0. */
int cmn_rpc_rx_direct_state(const struct cmn_rpc_rx *rx, size_t *have, size_t *left);
/* True between the first byte of a frame and its last. */
int cmn_rpc_rx_mid_frame(const struct cmn_rpc_rx *rx);

#endif
