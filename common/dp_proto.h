/* The tcp data plane's wire codec: HELLO, HELLO_OK/HELLO_ERR, the DATA frame header, and the
 * session credential's MAC.
 *
 * One tcp connection per (client session, data source). The client sends a 96-byte HELLO
 * carrying its session credential; the source answers with a 16-byte reply (HELLO_OK, or
 * HELLO_ERR and a close). After HELLO_OK only the source sends: DATA frames, a 32-byte
 * header then `len` payload bytes that the client reads straight into its window at `addr`.
 * All integers are little-endian, except expires_ms inside the MAC input, which is
 * big-endian (the credential's MAC is defined once for every transport). docs/dataplane.md
 * has the byte layouts and the rules around them (the fence, limits, codes).
 *
 * Everything here is pure: no allocation, no I/O, no global mutable state; thread-safe.
 * Decoders accept any byte string of the stated size and never read beyond it.
 */
#ifndef LODE_COMMON_DP_PROTO_H
#define LODE_COMMON_DP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define CMN_DP_HELLO_SIZE 96
#define CMN_DP_REPLY_SIZE 16
#define CMN_DP_DATA_HDR_SIZE 32
#define CMN_DP_SID_SIZE 16
#define CMN_DP_MAC_SIZE 32
/* Longest access key a HELLO can carry; longer keys cannot open a data session. */
#define CMN_DP_ACCESS_KEY_MAX 28
#define CMN_DP_VERSION 1
#define CMN_DP_MAGIC_HELLO "LDP1"   /* HELLO and the replies */
#define CMN_DP_MAGIC_DATA "LDPD"
/* Default largest DATA payload a source sends and a receiver accepts. */
#define CMN_DP_MAX_FRAME_DEFAULT (16u * 1024 * 1024)
/* The domain separator in front of the MAC input. */
#define CMN_DP_MAC_CONTEXT "lode-session-v1"

/* Reply kinds (u16 after the magic). */
enum cmn_dp_reply_kind {
    CMN_DP_REPLY_OK = 1,
    CMN_DP_REPLY_ERR = 2,
};

/* HELLO_ERR codes (wire values: never renumber). */
enum cmn_dp_code {
    CMN_DP_CODE_OK = 0,
    CMN_DP_CODE_BAD_MAC = 1,
    CMN_DP_CODE_EXPIRED = 2,
    CMN_DP_CODE_MALFORMED = 3,
    CMN_DP_CODE_IN_USE = 4,      /* this source already has a live connection for the sid */
    CMN_DP_CODE_BUSY = 5,        /* this source's session table is full */
};

/* A session credential as the gateway issues it and the HELLO carries it. access_key is
 * NUL-terminated for convenience; access_key_len is authoritative (1..28). */
struct cmn_dp_cred {
    uint8_t sid[CMN_DP_SID_SIZE];
    uint64_t expires_ms;         /* wall clock, ms since the Unix epoch */
    uint8_t mac[CMN_DP_MAC_SIZE];
    uint16_t access_key_len;
    char access_key[CMN_DP_ACCESS_KEY_MAX + 1];
};

/* HELLO_OK / HELLO_ERR. */
struct cmn_dp_reply {
    uint16_t kind;               /* enum cmn_dp_reply_kind */
    uint16_t code;               /* enum cmn_dp_code; 0 for OK */
    uint64_t source_id;          /* the answering source: a node's nid, 0x80000000|w for a
                                    gateway worker */
};

/* A DATA frame header (magic and hdr_crc are implicit: written by encode, checked by
 * decode). A frame belongs to the request named by (window_base, tag): the base alone does
 * not tell two requests apart that reuse one buffer, the tag does. */
struct cmn_dp_data_hdr {
    uint32_t len;                /* payload bytes that follow the header */
    uint64_t addr;               /* absolute client address of the first payload byte */
    uint64_t window_base;        /* the token base: names the client's window */
    uint32_t tag;                /* the token's request tag (any value on the wire; the
                                    receiver opens windows with non-zero tags only) */
};

/* Fills cred->access_key/access_key_len from a string of `len` bytes (no NUL needed).
 * Returns 0, or -EINVAL when len is 0 or above CMN_DP_ACCESS_KEY_MAX (cred untouched). */
int cmn_dp_cred_set_key(struct cmn_dp_cred *cred, const char *key, size_t len);

/* The credential's MAC: HMAC-SHA256(secret, "lode-session-v1" || sid || u64be(expires_ms) ||
 * access_key). Returns 0, -EINVAL (empty secret, key length outside 1..28), or
 * LODE_EINTERNAL. */
int cmn_dp_cred_mac(const void *secret, size_t secret_len, const struct cmn_dp_cred *cred,
                    uint8_t out[CMN_DP_MAC_SIZE]);

/* Computes cred->mac from the other fields (the gateway, when it issues a session). Returns
 * as cmn_dp_cred_mac. */
int cmn_dp_cred_sign(const void *secret, size_t secret_len, struct cmn_dp_cred *cred);

/* Checks a credential: the MAC first (constant-time compare), then the expiry against the
 * caller's wall clock now_ms (expired when expires_ms <= now_ms). Returns 0, LODE_EAUTH (bad
 * MAC or malformed key), LODE_ETIMEOUT (genuine but expired), or LODE_EINTERNAL. With `err`
 * the message says which (never quoting the MAC). */
int cmn_dp_cred_verify(const void *secret, size_t secret_len, const struct cmn_dp_cred *cred,
                       uint64_t now_ms, struct cmn_err *err);

/* The HELLO_ERR code for a cmn_dp_cred_verify or cmn_dp_hello_decode result. */
enum cmn_dp_code cmn_dp_code_from_err(int code);
/* Short text for a HELLO_ERR code ("bad mac", "expired", ...; "unknown code" otherwise).
 * Static. */
const char *cmn_dp_code_text(unsigned code);

/* Writes the 96-byte HELLO. Returns 0, or -EINVAL when the credential's key length is
 * outside 1..28 (out untouched). */
int cmn_dp_hello_encode(const struct cmn_dp_cred *cred, uint8_t out[CMN_DP_HELLO_SIZE]);

/* Parses a HELLO. Returns 0, LODE_EBADMSG (wrong magic, non-zero flags or pad, key length
 * outside 1..28, non-zero bytes after the key), or LODE_EVERSION (version != 1). On error
 * *out is zeroed. Does not check the MAC: that is cmn_dp_cred_verify. */
int cmn_dp_hello_decode(const uint8_t in[CMN_DP_HELLO_SIZE], struct cmn_dp_cred *out,
                        struct cmn_err *err);

void cmn_dp_reply_encode(const struct cmn_dp_reply *r, uint8_t out[CMN_DP_REPLY_SIZE]);
/* Returns 0 or LODE_EBADMSG (wrong magic, unknown kind, OK with a code, ERR without one). */
int cmn_dp_reply_decode(const uint8_t in[CMN_DP_REPLY_SIZE], struct cmn_dp_reply *out,
                        struct cmn_err *err);

/* Writes the 32-byte DATA header, with magic and hdr_crc. */
void cmn_dp_data_encode(const struct cmn_dp_data_hdr *h, uint8_t out[CMN_DP_DATA_HDR_SIZE]);

/* Parses a DATA header. Returns 0, LODE_EBADMSG (wrong magic, CRC mismatch, len 0: the
 * stream is desynchronised or corrupt and the connection must be closed), or
 * LODE_EFRAMETOOBIG (len above max_frame; 0 = CMN_DP_MAX_FRAME_DEFAULT). Any tag is
 * accepted: whether it names an open window is the receiver's business. */
int cmn_dp_data_decode(const uint8_t in[CMN_DP_DATA_HDR_SIZE], uint32_t max_frame,
                       struct cmn_dp_data_hdr *out, struct cmn_err *err);

/* CRC32C (Castagnoli, reflected, as iSCSI): cmn_dp_crc32c(0, "123456789", 9) == 0xe3069283.
 * Chain calls by passing the previous result. */
uint32_t cmn_dp_crc32c(uint32_t crc, const void *data, size_t len);

/* True when [addr, addr+len) lies inside [base, base+size), without overflow anywhere.
 * len 0 is inside when base <= addr <= base+size. */
bool cmn_dp_range_inside(uint64_t base, uint64_t size, uint64_t addr, uint64_t len);

#endif
