/* Pieces of the RPC layer shared by the server (rpc_server.c), the asynchronous client
 * (rpc_client.c), the blocking client (rpc_sync.c) and the meta client, and the frame
 * receiver with payload diversion (rpc_internal.h) that the server reads with. */
#include "common/rpc.h"

#include <arpa/inet.h>
#include <errno.h>
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

/* ---- frame receiver with payload diversion ----------------------------------------------- */

enum { RX_HEADER, RX_FRAME, RX_DIRECT };

/* A buffer this large is released after its frame rather than kept for the next one. */
#define RX_KEEP_BYTES (256u << 10)

/* Zero-length bodies and payloads still get a valid pointer. */
static const uint8_t rx_empty[1];

void cmn_rpc_rx_init(struct cmn_rpc_rx *rx, uint32_t max_frame)
{
    memset(rx, 0, sizeof(*rx));
    rx->max_frame = max_frame ? max_frame : CMN_RPC_DEFAULT_MAX_FRAME;
    rx->phase = RX_HEADER;
    cmn_buf_init(&rx->frame);
    cmn_err_clear(&rx->err);
}

void cmn_rpc_rx_free(struct cmn_rpc_rx *rx)
{
    cmn_buf_free(&rx->frame);
    rx->phase = RX_HEADER;
    rx->hdr_have = 0;
    rx->dest = NULL;
}

/* Bytes the frame buffer must hold before the next step: the body alone while `divert` has
 * not been asked, else body and payload. */
static size_t rx_need(const struct cmn_rpc_rx *rx)
{
    return (size_t)rx->cur.body_len + (rx->ask ? 0 : rx->cur.payload_len);
}

static void rx_frame_done(struct cmn_rpc_rx *rx)
{
    if (rx->frame.cap > RX_KEEP_BYTES)
        cmn_buf_free(&rx->frame);
    else
        cmn_buf_reset(&rx->frame);
}

static int rx_oom(struct cmn_rpc_rx *rx)
{
    rx->dead = 1;
    return cmn_err_set(&rx->err, -ENOMEM, "out of memory buffering a %zu-byte frame",
                       (size_t)rx->cur.body_len + rx->cur.payload_len);
}

int cmn_rpc_rx_feed_direct(struct cmn_rpc_rx *rx, size_t n, const struct cmn_rpc_rx_ops *ops,
                           void *cb_data)
{
    rx->have += n;
    if (rx->have < rx->cur.payload_len)
        return 0;
    struct cmn_rpc_header h = rx->cur;
    rx->phase = RX_HEADER;
    rx->hdr_have = 0;
    rx->dest = NULL;
    rx->have = 0;
    return ops->diverted(cb_data, &h);
}

int cmn_rpc_rx_feed(struct cmn_rpc_rx *rx, const uint8_t *data, size_t len,
                    const struct cmn_rpc_rx_ops *ops, void *cb_data)
{
    if (rx->dead)
        return rx->err.code;
    for (;;) {
        int rc;
        if (rx->phase == RX_HEADER) {
            if (len == 0)
                return 0;
            size_t n = CMN_RPC_HEADER_SIZE - rx->hdr_have;
            if (n > len)
                n = len;
            memcpy(rx->hdr + rx->hdr_have, data, n);
            rx->hdr_have += n;
            data += n;
            len -= n;
            if (rx->hdr_have < CMN_RPC_HEADER_SIZE)
                return 0;
            rc = cmn_rpc_header_unpack(rx->hdr, rx->max_frame, &rx->cur, &rx->err);
            if (rc) {
                rx->dead = 1;
                return rc;
            }
            cmn_buf_reset(&rx->frame);
            rx->ask = ops->divert != NULL && rx->cur.payload_len > 0;
            rx->phase = RX_FRAME;
            /* On to the body even with no bytes left: an empty frame is complete now. */
        } else if (rx->phase == RX_FRAME) {
            size_t need = rx_need(rx);
            const uint8_t *f;
            if (rx->frame.len == 0 && len >= need) {
                /* All of it is in the caller's buffer: no copy. */
                f = need ? data : rx_empty;
                data += need;
                len -= need;
            } else {
                if (len == 0)
                    return 0;
                size_t n = need - rx->frame.len;
                if (n > len)
                    n = len;
                if (cmn_buf_append(&rx->frame, data, n))
                    return rx_oom(rx);
                data += n;
                len -= n;
                if (rx->frame.len < need)
                    return 0;
                f = rx->frame.data;
            }
            if (rx->ask) {
                rx->ask = 0;
                uint8_t *dest = ops->divert(cb_data, &rx->cur, f);
                if (dest) {
                    rx->dest = dest;
                    rx->have = 0;
                    rx->phase = RX_DIRECT;
                    rx_frame_done(rx);
                } else if (f != rx->frame.data && need &&
                           cmn_buf_append(&rx->frame, f, need)) {
                    /* Declined: buffer the payload behind the body, as for any frame. */
                    return rx_oom(rx);
                }
                continue;
            }
            struct cmn_rpc_header h = rx->cur;
            rx->phase = RX_HEADER;
            rx->hdr_have = 0;
            rc = ops->frame(cb_data, &h, f, h.payload_len ? f + h.body_len : rx_empty);
            rx_frame_done(rx);
            if (rc)
                return rc;
        } else {
            /* Payload bytes that came through scratch (reads were not cut exactly). */
            if (len == 0)
                return 0;
            size_t n = rx->cur.payload_len - rx->have;
            if (n > len)
                n = len;
            memcpy(rx->dest + rx->have, data, n);
            data += n;
            len -= n;
            rc = cmn_rpc_rx_feed_direct(rx, n, ops, cb_data);
            if (rc)
                return rc;
        }
    }
}

void cmn_rpc_rx_next_read(const struct cmn_rpc_rx *rx, int exact, uint8_t *scratch,
                          size_t scratch_len, char **base, size_t *len)
{
    if (rx->phase == RX_DIRECT && !rx->dead) {
        *base = (char *)rx->dest + rx->have;
        *len = rx->cur.payload_len - rx->have;
        return;
    }
    *base = (char *)scratch;
    *len = scratch_len;
    if (!exact || rx->dead)
        return;
    size_t want = rx->phase == RX_HEADER ? CMN_RPC_HEADER_SIZE - rx->hdr_have
                                         : rx_need(rx) - rx->frame.len;
    if (want > 0 && want < scratch_len)
        *len = want;
}

int cmn_rpc_rx_is_direct(const struct cmn_rpc_rx *rx, const char *base)
{
    return rx->phase == RX_DIRECT && base == (const char *)rx->dest + rx->have;
}

int cmn_rpc_rx_direct_state(const struct cmn_rpc_rx *rx, size_t *have, size_t *left)
{
    if (rx->phase != RX_DIRECT || rx->dead)
        return 0;
    *have = rx->have;
    *left = rx->cur.payload_len - rx->have;
    return 1;
}

int cmn_rpc_rx_mid_frame(const struct cmn_rpc_rx *rx)
{
    return rx->phase != RX_HEADER || rx->hdr_have > 0;
}
