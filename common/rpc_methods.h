/* The RPC methods of every lode service: X(NAME, number, request type, response type).
 * Types are protobuf-c message names without the lode__ prefix and __descriptor suffix
 * (see common/proto/). Every mutating method takes a whole Command (meta.proto) whose `op`
 * must match the method; the caller's (client_id, seq) in it make retries apply at most once. Numbers are wire protocol: never renumber, only append.
 * docs/wire-protocol.md lists the same table with the semantics of each method.
 */
#ifndef LODE_COMMON_RPC_METHODS_H
#define LODE_COMMON_RPC_METHODS_H

#include "meta.pb-c.h"
#include "node.pb-c.h"
#include "rpc.pb-c.h"

#define CMN_RPC_METHOD_MAP(X)                                                        \
    X(PING, 1, ping_request, ping_response)                                         \
    /* lode-meta: the replicated group */                                           \
    X(META_STATUS, 100, empty, meta_status_response)                                \
    X(META_ADD_VOTER, 101, add_voter_request, meta_status_response)                 \
    X(META_REMOVE_VOTER, 102, remove_voter_request, meta_status_response)           \
    X(META_DIGEST, 103, empty, ping_response) /* payload = SHA-256 of the state */ \
    /* lode-meta: cluster map */                                                    \
    X(NODE_REGISTER, 120, command, command_result)                            \
    X(NODE_HEARTBEAT, 121, heartbeat_request, heartbeat_response)                   \
    X(NODE_SET_STATE, 122, command, command_result)                          \
    X(CLUSTER_MAP_GET, 123, empty, cluster_map)                                     \
    /* lode-meta: buckets */                                                        \
    X(BUCKET_CREATE, 140, command, command_result)                            \
    X(BUCKET_DELETE, 141, command, command_result)                            \
    X(BUCKET_HEAD, 142, name_request, bucket_record)                                \
    X(BUCKET_LIST, 143, bucket_list_request, bucket_list_response)                  \
    /* lode-meta: objects */                                                        \
    X(OBJECT_PUT, 160, command, command_result)                                  \
    X(OBJECT_GET, 161, object_get_request, object_record)                           \
    X(OBJECT_DELETE, 162, command, command_result)                            \
    X(OBJECT_LIST, 163, object_list_request, object_list_response)                  \
    /* lode-meta: multipart uploads */                                              \
    X(UPLOAD_CREATE, 180, command, command_result)                            \
    X(UPLOAD_GET, 181, upload_get_request, upload_record)                           \
    X(PART_PUT, 182, command, command_result)                                      \
    X(PART_LIST, 183, part_list_request, part_list_response)                        \
    X(UPLOAD_COMPLETE, 184, command, command_result)                        \
    X(UPLOAD_ABORT, 185, command, command_result)                              \
    X(UPLOAD_LIST, 186, upload_list_request, upload_list_response)                  \
    /* lode-meta: users and keys */                                                 \
    X(USER_CREATE, 200, command, user_create_response)                         \
    X(USER_DELETE, 201, command, command_result)                               \
    X(USER_LIST, 202, empty, user_list_response)                                    \
    X(ACCESS_KEY_GET, 203, access_key_request, access_key_record)                   \
    /* lode-meta: garbage collection queue */                                       \
    X(GC_ENQUEUE, 220, command, command_result)                                  \
    X(GC_LIST, 221, gc_list_request, gc_list_response)                              \
    X(GC_ACK, 222, command, command_result)                                         \
    /* lode-meta: chunks that failed verification, reported by nodes for repair */  \
    X(CORRUPT_REPORT, 230, command, command_result)                                 \
    X(CORRUPT_LIST, 231, corrupt_list_request, corrupt_list_response)               \
    /* lode-node: the chunk service */                                              \
    X(CHUNK_PUT, 300, chunk_put_request, chunk_info)                                \
    X(CHUNK_GET, 301, chunk_get_request, chunk_info)                                \
    X(CHUNK_DELETE, 302, chunk_id_request, chunk_info)                              \
    X(CHUNK_STAT, 303, chunk_id_request, chunk_info)                                \
    X(CHUNK_LIST, 304, chunk_list_request, chunk_list_response)                     \
    X(NODE_HEALTH, 305, empty, node_health_response)                                \
    X(FANOUT_PUSH, 306, fanout_push_request, fanout_push_response)

enum cmn_rpc_method {
#define CMN_RPC_METHOD_ENUM(name, num, req, resp) CMN_RPC_##name = num,
    CMN_RPC_METHOD_MAP(CMN_RPC_METHOD_ENUM)
#undef CMN_RPC_METHOD_ENUM
};

/* Name ("OBJECT_PUT") of a method number, or NULL when unknown. */
const char *cmn_rpc_method_name(unsigned method);
/* Request / response descriptors of a method, or NULL when unknown. */
const ProtobufCMessageDescriptor *cmn_rpc_method_request(unsigned method);
const ProtobufCMessageDescriptor *cmn_rpc_method_response(unsigned method);

#endif
