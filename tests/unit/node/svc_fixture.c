#include "tests/unit/node/svc_fixture.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tests/tap.h"

void svc_fixture_start(uv_loop_t *loop, const char *secret, uint32_t max_chunk,
                       struct svc_fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    if (uv_loop_init(loop) || cmn_metrics_create(&fx->metrics))
        tap_bail("loop / metrics");
    struct cmn_err err;
    cmn_err_clear(&err);
    struct node_store_options so = {.max_chunk_size = max_chunk};
    if (node_store_open(loop, &so, &fx->st, &err))
        tap_bail("store: %s", cmn_err_text(&err));
    struct node_service_options o = {.loop = loop, .store = fx->st, .metrics = fx->metrics,
                                     .cluster = "unit", .failure_domain = "rack9",
                                     .max_chunk_size = max_chunk};
    if (node_service_create(&o, &fx->svc, &err))
        tap_bail("service: %s", cmn_err_text(&err));
    uint32_t max_frame = max_chunk + (64u << 10);
    struct cmn_rpc_server_config sc = {
        .service = "lode-node",
        .secret = secret,
        .secret_len = strlen(secret),
        .max_frame = max_frame,
        .handler = node_service_handle,
        .data = fx->svc,
        .payload_alloc = node_service_payload_alloc,
        .payload_free = node_service_payload_free,
    };
    if (cmn_rpc_server_create(loop, &sc, &fx->srv) ||
        cmn_rpc_server_listen(fx->srv, "127.0.0.1:0", &err))
        tap_bail("server: %s", cmn_err_text(&err));
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", cmn_rpc_server_port(fx->srv));
    node_service_set_address(fx->svc, addr);
    struct cmn_rpc_client_config cc = {.address = addr, .secret = secret,
                                       .secret_len = strlen(secret), .max_frame = max_frame};
    if (cmn_rpc_client_create(loop, &cc, &fx->cli))
        tap_bail("client");
}
