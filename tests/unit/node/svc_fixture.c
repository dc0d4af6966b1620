#include "tests/unit/node/svc_fixture.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tests/tap.h"

void svc_fixture_start(uv_loop_t *loop, struct node_service *svc, const char *secret,
                       uint32_t max_frame, struct cmn_rpc_server **srv,
                       struct cmn_rpc_client **cli)
{
    struct cmn_err err;
    cmn_err_clear(&err);
    struct cmn_rpc_server_config sc = {
        .service = "lode-node",
        .secret = secret,
        .secret_len = strlen(secret),
        .max_frame = max_frame,
        .handler = node_service_handle,
        .data = svc,
        .payload_alloc = node_service_payload_alloc,
        .payload_free = node_service_payload_free,
    };
    if (cmn_rpc_server_create(loop, &sc, srv) || cmn_rpc_server_listen(*srv, "127.0.0.1:0", &err))
        tap_bail("server: %s", cmn_err_text(&err));
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", cmn_rpc_server_port(*srv));
    node_service_set_address(svc, addr);
    struct cmn_rpc_client_config cc = {.address = addr, .secret = secret,
                                       .secret_len = strlen(secret), .max_frame = max_frame};
    if (cmn_rpc_client_create(loop, &cc, cli))
        tap_bail("client");
}
