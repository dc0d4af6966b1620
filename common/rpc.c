/* Pieces of the RPC layer shared by the server (rpc_server.c), the asynchronous client
 * (rpc_client.c), the blocking client (rpc_sync.c) and the meta client. */
#include "common/rpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/rpc_internal.h"

void cmn_rpc_result_init(struct cmn_rpc_result *r)
{
    memset(r, 0, sizeof(*r));
    cmn_buf_init(&r->body);
    cmn_buf_init(&r->payload);
}

void cmn_rpc_result_free(struct cmn_rpc_result *r)
{
    cmn_buf_free(&r->body);
    cmn_buf_free(&r->payload);
    r->message[0] = '\0';
    r->leader_address[0] = '\0';
}

int cmn_rpc_addr_split(const char *addr, char host[CMN_RPC_HOST_MAX], char port[8],
                       struct cmn_err *err)
{
    if (!addr || !*addr)
        return cmn_err_set(err, LODE_ECONFIG, "empty address (expected host:port)");
    const char *colon;
    const char *h = addr;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return cmn_err_set(err, LODE_ECONFIG,
                               "address '%s': expected [ipv6]:port", addr);
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return cmn_err_set(err, LODE_ECONFIG, "address '%s' has no port (expected host:port)",
                               addr);
        hlen = (size_t)(colon - addr);
    }
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen > 5 || strspn(p, "0123456789") != plen || atoi(p) > 65535)
        return cmn_err_set(err, LODE_ECONFIG, "address '%s': invalid port '%s'", addr, p);
    if (hlen >= CMN_RPC_HOST_MAX)
        return cmn_err_set(err, LODE_ECONFIG, "address '%s': host name too long", addr);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, p, plen + 1);
    return 0;
}

void cmn_rpc_format_sockaddr(const struct sockaddr *sa, char out[CMN_RPC_PEER_MAX])
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, CMN_RPC_PEER_MAX, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, CMN_RPC_PEER_MAX, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(out, CMN_RPC_PEER_MAX, "(unknown address family %d)", sa->sa_family);
    }
}

void cmn_rpc_result_set_error(struct cmn_rpc_result *res, int status, const uint8_t *body,
                              size_t len, const char *context)
{
    res->status = status;
    res->leader_address[0] = '\0';
    res->leader_id = 0;
    const char *msg = NULL;
    Lode__RpcError *e = len ? lode__rpc_error__unpack(NULL, len, body) : NULL;
    if (e) {
        if (e->message && *e->message)
            msg = e->message;
        if (e->leader_address)
            snprintf(res->leader_address, sizeof(res->leader_address), "%s", e->leader_address);
        res->leader_id = e->leader_id;
    }
    if (!msg)
        msg = lode_strerror(status);
    if (context)
        snprintf(res->message, sizeof(res->message), "%s: %s", context, msg);
    else
        snprintf(res->message, sizeof(res->message), "%s", msg);
    if (e)
        lode__rpc_error__free_unpacked(e, NULL);
}

void cmn_rpc_result_set_local(struct cmn_rpc_result *res, int status, const char *fmt, ...)
{
    va_list ap;
    res->status = status;
    res->leader_address[0] = '\0';
    res->leader_id = 0;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
}
