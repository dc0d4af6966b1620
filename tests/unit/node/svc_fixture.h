/* The node's chunk service behind real authenticated RPC on loopback, for unit tests of the
 * service and what hangs off it (fan-out): a server on 127.0.0.1:0 dispatching to `svc`, and a
 * client connected to it with the same secret. Bails out (TAP) on any failure. */
#ifndef LODE_TESTS_UNIT_NODE_SVC_FIXTURE_H
#define LODE_TESTS_UNIT_NODE_SVC_FIXTURE_H

#include <stdint.h>

#include <uv.h>

#include "common/rpc.h"
#include "node/service.h"

void svc_fixture_start(uv_loop_t *loop, struct node_service *svc, const char *secret,
                       uint32_t max_frame, struct cmn_rpc_server **srv,
                       struct cmn_rpc_client **cli);

#endif
