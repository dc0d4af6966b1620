/* The node's chunk service above the in-memory store (fake_store.c), behind real authenticated
 * RPC on loopback, for unit tests of the service and what hangs off it (fan-out): initialises
 * the loop, a metrics registry, the store (max_chunk bytes per chunk), the service (cluster
 * "unit", failure domain "rack9"), a server on 127.0.0.1:0 dispatching to it, and a client
 * connected to it with the same secret. Bails out (TAP) on any failure. */
#ifndef LODE_TESTS_UNIT_NODE_SVC_FIXTURE_H
#define LODE_TESTS_UNIT_NODE_SVC_FIXTURE_H

#include <stdint.h>

#include <uv.h>

#include "common/metrics.h"
#include "common/rpc.h"
#include "node/service.h"
#include "node/store.h"

struct svc_fixture {
    struct cmn_metrics *metrics;
    struct node_store *st;
    struct node_service *svc;
    struct cmn_rpc_server *srv;
    struct cmn_rpc_client *cli;
};

void svc_fixture_start(uv_loop_t *loop, const char *secret, uint32_t max_chunk,
                       struct svc_fixture *fx);

#endif
