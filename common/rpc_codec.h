/* The RPC wire format, without any I/O (docs/wire-protocol.md).
 *
 * Every frame is a fixed 32-byte big-endian header followed by `body_len` bytes of protobuf
 * and `payload_len` raw bytes (bulk data travels there, never inside protobuf):
 *
 *   0  u32 magic "LODE" (0x4C4F4445)    12 u64 request_id
 *   4  u8  version (1)                  20 i32 status (0 or a negative lode error code)
 *   5  u8  kind (enum cmn_rpc_kind)     24 u32 body_len
 *   6  u16 flags                        28 u32 payload_len
 *   8  u16 method
 *  10  u16 reserved (0)
 *
 * A connection starts with a mutual challenge-response over the cluster secret (HELLO,
 * AUTH, AUTH_OK) before any REQUEST is accepted.
 */
#ifndef LODE_COMMON_RPC_CODEC_H
#define LODE_COMMON_RPC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/hmac.h"

#define CMN_RPC_MAGIC 0x4C4F4445u
#define CMN_RPC_VERSION 1
#define CMN_RPC_HEADER_SIZE 32
#define CMN_RPC_NONCE_SIZE 32
#define CMN_RPC_DEFAULT_MAX_FRAME (16u << 20)

enum cmn_rpc_kind {
    CMN_RPC_HELLO = 1,        /* server -> client: body = server nonce (32 bytes) */
    CMN_RPC_AUTH = 2,         /* client -> server: body = client nonce (32) + client MAC (32) */
    CMN_RPC_AUTH_OK = 3,      /* server -> client: body = server MAC (32) */
    CMN_RPC_AUTH_FAIL = 4,    /* server -> client: body = RpcError; then the server closes */
    CMN_RPC_REQUEST = 5,
    CMN_RPC_RESPONSE = 6,
    CMN_RPC_PROTO_ERROR = 7,  /* either way: body = RpcError; the sender closes after it */
};

enum cmn_rpc_flags {
    CMN_RPC_FLAG_STALE_OK = 1u << 0,  /* meta: a follower may answer a read from local state */
};

struct cmn_rpc_header {
    uint8_t version;
    uint8_t kind;
    uint16_t flags;
    uint16_t method;
    uint64_t request_id;
    int32_t status;
    uint32_t body_len;
    uint32_t payload_len;
};

void cmn_rpc_header_pack(const struct cmn_rpc_header *h, uint8_t out[CMN_RPC_HEADER_SIZE]);

/* Parses and validates a header: magic, version, known kind, reserved zero, and
 * body_len + payload_len <= max_frame. Returns 0, LODE_EBADMSG, LODE_EVERSION or
 * LODE_EFRAMETOOBIG, with the reason in err. */
int cmn_rpc_header_unpack(const uint8_t in[CMN_RPC_HEADER_SIZE], uint32_t max_frame,
                          struct cmn_rpc_header *h, struct cmn_err *err);

/* Appends a whole frame (header + body + payload) to out. */
int cmn_rpc_frame_append(struct cmn_buf *out, const struct cmn_rpc_header *h, const void *body,
                         const void *payload);

/* Handshake MACs: HMAC-SHA256(secret, label || server_nonce || client_nonce) with the labels
 * "lode-rpc-v1 client" and "lode-rpc-v1 server", so neither MAC can be replayed as the
 * other. */
int cmn_rpc_auth_mac(const void *secret, size_t secret_len, int server_side,
                     const uint8_t server_nonce[CMN_RPC_NONCE_SIZE],
                     const uint8_t client_nonce[CMN_RPC_NONCE_SIZE], uint8_t out[CMN_HMAC_SIZE]);

/* Incremental frame reader for a byte stream: feed it whatever arrived; it calls `cb` once
 * per complete frame (body and payload point into its internal buffer, valid during the
 * callback). A callback returning non-zero stops feeding and is returned. A malformed
 * header returns the unpack error; the reader is then dead (the connection must close). */
typedef int (*cmn_rpc_frame_cb)(void *data, const struct cmn_rpc_header *h, const uint8_t *body,
                                const uint8_t *payload);

struct cmn_rpc_reader {
    uint32_t max_frame;
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    size_t hdr_have;
    struct cmn_rpc_header cur;
    struct cmn_buf frame;        /* body + payload of the frame being assembled */
    int dead;
    struct cmn_err err;          /* why the reader died */
};

void cmn_rpc_reader_init(struct cmn_rpc_reader *r, uint32_t max_frame);
void cmn_rpc_reader_free(struct cmn_rpc_reader *r);
int cmn_rpc_reader_feed(struct cmn_rpc_reader *r, const uint8_t *data, size_t len,
                        cmn_rpc_frame_cb cb, void *cb_data);

/* Packs an RpcError body {message, leader_address, leader_id} into out. */
int cmn_rpc_error_pack(struct cmn_buf *out, const char *message, const char *leader_address,
                       uint64_t leader_id);

#endif
