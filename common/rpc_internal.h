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

#endif
