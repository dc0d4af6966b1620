/* The chunk service of lode-node: the RPC handler for CHUNK_PUT, CHUNK_GET, CHUNK_DELETE,
 * CHUNK_STAT, CHUNK_LIST and NODE_HEALTH (common/proto/node.proto, docs/wire-protocol.md).
 *
 * Zero copy both ways: a put's payload is received straight into the store's record buffer
 * (node_service_payload_alloc, the RPC server's payload_alloc hook), and a get's verified
 * bytes are sent straight from the store's read buffer through node/push.h.
 *
 * A put of an id already stored with the same length and checksum succeeds (a writer's
 * retry after a lost reply); with other content it fails with -EEXIST.
 *
 * Every request is answered exactly once, with a clear error for malformed bodies, bad chunk
 * ids (not 16 bytes: LODE_EBADMSG), bad ranges (-EINVAL), unknown chunks (LODE_ENOCHUNK),
 * oversized or mismatched lengths, a full disk (LODE_ENOSPACE) and corrupt data
 * (LODE_ECORRUPT; never the bytes).
 *
 * Threading: the node's loop thread. Lifecycle: create; pass node_service_handle and the
 * payload hooks to the RPC server; set the address once listening; attach the registrar and
 * scrubber; stop before closing the store; destroy after the store has closed (its callbacks
 * have answered every call still held).
 */
#ifndef LODE_NODE_SERVICE_H
#define LODE_NODE_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/rpc.h"
#include "node/registrar.h"
#include "node/scrub.h"
#include "node/store.h"

struct cmn_metrics;
struct node_service;

struct node_service_options {
    uv_loop_t *loop;
    struct node_store *store;
    struct cmn_metrics *metrics;       /* optional: lode_node_rpc_*, lode_node_bytes_* */
    const char *cluster;               /* copied; reported by NODE_HEALTH */
    const char *failure_domain;        /* copied */
    uint64_t max_chunk_size;           /* puts above it: LODE_ETOOLARGE */
};

int node_service_create(const struct node_service_options *o, struct node_service **out,
                        struct cmn_err *err);

/* The advertised address, once the RPC server listens (copied). */
void node_service_set_address(struct node_service *svc, const char *address);
/* Where NODE_HEALTH finds the nid, meta state and scrub counters (either may be NULL). */
void node_service_attach(struct node_service *svc, struct node_registrar *reg,
                         struct node_scrub *scrub);

/* Serves FANOUT_PUSH through `fanout` (node/fanout.h); without it the method is refused. */
struct node_fanout;
void node_service_attach_fanout(struct node_service *svc, struct node_fanout *fanout);

/* cmn_rpc_handler_cb: `data` is the service. */
void node_service_handle(void *data, struct cmn_rpc_call *call);
/* The RPC server's payload_alloc / payload_free hooks (`data` is the service): CHUNK_PUT
 * payloads whose body is valid land in a store record buffer; anything else is buffered by
 * the server and refused by the handler with a clear error. */
void *node_service_payload_alloc(void *data, unsigned method, const uint8_t *body,
                                 size_t body_len, uint32_t payload_len, void **cookie);
void node_service_payload_free(void *data, void *cookie);

/* Requests from now on get LODE_ESHUTDOWN; calls already in the store complete normally. */
void node_service_stop(struct node_service *svc);
/* Requests accepted and not yet answered. */
unsigned node_service_in_flight(const struct node_service *svc);
void node_service_destroy(struct node_service *svc);

#endif
