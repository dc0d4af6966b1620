/* Blocking RPC client: one non-blocking socket driven with poll(2) so every step has a
 * deadline, and the same handshake as the libuv client. */
#include "common/rpc_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/rpc_internal.h"

#define RBUF_SIZE (64u << 10)
/* cmn_rpc_sync_send and _send_raw take no timeout; a peer that stops reading for this long
 * is treated as gone. */
#define SEND_TIMEOUT_MS 30000

struct cmn_rpc_sync {
    int fd;
    char *address;
    uint64_t next_id;
    uint32_t max_frame;
    int broken;                  /* after a transport error: no further use */
    uint8_t *rbuf;
    size_t rpos, rlen;           /* unread input is rbuf[rpos, rlen) */
};

static uint64_t deadline_after(uint32_t timeout_ms)
{
    return cmn_mono_ms() + timeout_ms;
}

/* 0 when fd is ready for `events`, LODE_ETIMEOUT past the deadline, or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = cmn_mono_ms();
        if (now >= deadline)
            return LODE_ETIMEOUT;
        uint64_t left = deadline - now;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* Writes the iovecs in order (they are consumed). sendmsg, not writev: MSG_NOSIGNAL keeps a
 * peer that went away from raising SIGPIPE. */
static int write_allv(struct cmn_rpc_sync *c, struct iovec *iov, int iovcnt, uint64_t deadline)
{
    while (iovcnt > 0 && iov->iov_len == 0) {
        iov++;
        iovcnt--;
    }
    while (iovcnt > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n > 0) {
            size_t left = (size_t)n;
            while (iovcnt > 0 && left >= iov->iov_len) {
                left -= iov->iov_len;
                iov++;
                iovcnt--;
            }
            if (iovcnt > 0) {
                iov->iov_base = (uint8_t *)iov->iov_base + left;
                iov->iov_len -= left;
            }
            while (iovcnt > 0 && iov->iov_len == 0) {
                iov++;
                iovcnt--;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == EPIPE || errno == ECONNRESET ? LODE_ECLOSED : -errno;
        int rc = wait_fd(c->fd, POLLOUT, deadline);
        if (rc)
            return rc;
    }
    return 0;
}

static int write_all(struct cmn_rpc_sync *c, const void *data, size_t len, uint64_t deadline)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return write_allv(c, &iov, 1, deadline);
}

static int read_exact(struct cmn_rpc_sync *c, void *dst, size_t n, uint64_t deadline)
{
    uint8_t *out = dst;
    while (n > 0) {
        if (c->rpos < c->rlen) {
            size_t k = c->rlen - c->rpos;
            if (k > n)
                k = n;
            memcpy(out, c->rbuf + c->rpos, k);
            c->rpos += k;
            out += k;
            n -= k;
            continue;
        }
        c->rpos = c->rlen = 0;
        /* Large reads go straight to the destination; small ones through the buffer so a
         * frame header does not cost a syscall of its own. */
        int direct = n >= RBUF_SIZE;
        ssize_t r = recv(c->fd, direct ? out : c->rbuf, direct ? n : RBUF_SIZE, 0);
        if (r > 0) {
            if (direct) {
                out += r;
                n -= (size_t)r;
            } else {
                c->rlen = (size_t)r;
            }
            continue;
        }
        if (r == 0)
            return LODE_ECLOSED;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == ECONNRESET ? LODE_ECLOSED : -errno;
        int rc = wait_fd(c->fd, POLLIN, deadline);
        if (rc)
            return rc;
    }
    return 0;
}

static const char *io_error_text(int rc)
{
    switch (rc) {
    case LODE_ECLOSED: return "connection closed by the peer";
    case LODE_ETIMEOUT: return "timed out waiting for the peer";
    default: return lode_strerror(rc);
    }
}

/* Reads one frame: header into *h, then the body into `body` and the payload into `payload`
 * (payload may be NULL to read both into body). On error the message names the address. */
static int read_frame(struct cmn_rpc_sync *c, struct cmn_rpc_header *h, struct cmn_buf *body,
                      struct cmn_buf *payload, uint64_t deadline, struct cmn_err *err)
{
    uint8_t hdr[CMN_RPC_HEADER_SIZE];
    int rc = read_exact(c, hdr, sizeof(hdr), deadline);
    if (rc)
        return cmn_err_set(err, rc, "%s: %s", c->address, io_error_text(rc));
    rc = cmn_rpc_header_unpack(hdr, c->max_frame, h, err);
    if (rc)
        return cmn_err_wrap(err, "%s", c->address);
    cmn_buf_reset(body);
    size_t blen = payload ? h->body_len : (size_t)h->body_len + h->payload_len;
    if (cmn_buf_reserve(body, blen))
        return cmn_err_set(err, -ENOMEM, "%s: out of memory for a %zu-byte frame", c->address,
                           blen);
    rc = read_exact(c, body->data, blen, deadline);
    if (rc)
        return cmn_err_set(err, rc, "%s: %s", c->address, io_error_text(rc));
    body->len = blen;
    if (payload) {
        cmn_buf_reset(payload);
        if (cmn_buf_reserve(payload, h->payload_len))
            return cmn_err_set(err, -ENOMEM, "%s: out of memory for a %u-byte payload",
                               c->address, h->payload_len);
        rc = read_exact(c, payload->data, h->payload_len, deadline);
        if (rc)
            return cmn_err_set(err, rc, "%s: %s", c->address, io_error_text(rc));
        payload->len = h->payload_len;
    }
    return 0;
}

/* The body comes from msg or raw; the payload is written from where it is (writev). */
static int send_frame(struct cmn_rpc_sync *c, uint8_t kind, unsigned method, unsigned flags,
                      uint64_t id, const ProtobufCMessage *msg, const void *raw, size_t raw_len,
                      const void *payload, size_t payload_len, uint64_t deadline)
{
    size_t body_len = msg ? protobuf_c_message_get_packed_size(msg) : raw_len;
    if ((uint64_t)body_len + payload_len > c->max_frame)
        return LODE_EFRAMETOOBIG;
    struct cmn_buf f;
    cmn_buf_init(&f);
    if (cmn_buf_reserve(&f, CMN_RPC_HEADER_SIZE + body_len))
        return -ENOMEM;
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = kind,
                               .flags = (uint16_t)flags, .method = (uint16_t)method,
                               .request_id = id, .body_len = (uint32_t)body_len,
                               .payload_len = (uint32_t)payload_len};
    cmn_rpc_header_pack(&h, f.data);
    if (msg)
        protobuf_c_message_pack(msg, f.data + CMN_RPC_HEADER_SIZE);
    else if (raw_len)
        memcpy(f.data + CMN_RPC_HEADER_SIZE, raw, raw_len);
    f.len = CMN_RPC_HEADER_SIZE + body_len;
    struct iovec iov[2] = {{.iov_base = f.data, .iov_len = f.len},
                           {.iov_base = (void *)payload, .iov_len = payload_len}};
    int rc = write_allv(c, iov, payload_len ? 2 : 1, deadline);
    cmn_buf_free(&f);
    if (rc)
        c->broken = 1;
    return rc;
}

static int connect_fd(const char *addr, uint64_t deadline, struct cmn_err *err)
{
    char host[CMN_RPC_HOST_MAX], port[8];
    int rc = cmn_rpc_addr_split(addr, host, port, err);
    if (rc)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(*host ? host : "127.0.0.1", port, &hints, &res);
    if (g != 0)
        return cmn_err_set(err, -EHOSTUNREACH, "connect to %s: cannot resolve '%s': %s", addr,
                           host, gai_strerror(g));
    rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (errno != EINPROGRESS) {
                rc = -errno;
                close(fd);
                continue;
            }
            rc = wait_fd(fd, POLLOUT, deadline);
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
                rc = -soerr;
            if (rc) {
                close(fd);
                if (rc == LODE_ETIMEOUT)
                    break;
                continue;
            }
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        freeaddrinfo(res);
        return fd;
    }
    freeaddrinfo(res);
    if (rc == LODE_ETIMEOUT)
        return cmn_err_set(err, rc, "connect to %s: timed out", addr);
    return cmn_err_set(err, rc, "connect to %s: %s", addr, lode_strerror(rc));
}

/* Error frames during the handshake: AUTH_FAIL is always LODE_EAUTH; PROTO_ERROR carries
 * its own status. */
static int handshake_reject(struct cmn_rpc_sync *c, const struct cmn_rpc_header *h,
                            const struct cmn_buf *body, struct cmn_err *err)
{
    int status = h->kind == CMN_RPC_AUTH_FAIL ? LODE_EAUTH
                 : h->status < 0            ? h->status
                                            : LODE_EBADMSG;
    struct cmn_rpc_result r;
    cmn_rpc_result_init(&r);
    cmn_rpc_result_set_error(&r, status, body->data, body->len, NULL);
    return cmn_err_set(err, status, "%s rejected the connection: %s", c->address, r.message);
}

static int handshake(struct cmn_rpc_sync *c, const void *secret, size_t secret_len,
                     uint64_t deadline, struct cmn_err *err)
{
    struct cmn_rpc_header h;
    struct cmn_buf body;
    cmn_buf_init(&body);
    int rc = read_frame(c, &h, &body, NULL, deadline, err);
    if (rc)
        goto out;
    if (h.kind == CMN_RPC_AUTH_FAIL || h.kind == CMN_RPC_PROTO_ERROR) {
        rc = handshake_reject(c, &h, &body, err);
        goto out;
    }
    if (h.kind != CMN_RPC_HELLO || body.len != CMN_RPC_NONCE_SIZE) {
        rc = cmn_err_set(err, LODE_EBADMSG,
                         "%s: expected a HELLO frame with a %u-byte nonce, got %s (%zu bytes)",
                         c->address, CMN_RPC_NONCE_SIZE, cmn_rpc_kind_name(h.kind), body.len);
        goto out;
    }
    uint8_t server_nonce[CMN_RPC_NONCE_SIZE];
    uint8_t auth[CMN_RPC_NONCE_SIZE + CMN_HMAC_SIZE];
    memcpy(server_nonce, body.data, CMN_RPC_NONCE_SIZE);
    if (cmn_random_bytes(auth, CMN_RPC_NONCE_SIZE) < 0 ||
        cmn_rpc_auth_mac(secret, secret_len, 0, server_nonce, auth, auth + CMN_RPC_NONCE_SIZE)) {
        rc = cmn_err_set(err, LODE_EINTERNAL, "%s: cannot compute the handshake MAC", c->address);
        goto out;
    }
    rc = send_frame(c, CMN_RPC_AUTH, 0, 0, 0, NULL, auth, sizeof(auth), NULL, 0, deadline);
    if (rc) {
        cmn_err_set(err, rc, "%s: sending AUTH: %s", c->address, io_error_text(rc));
        goto out;
    }
    rc = read_frame(c, &h, &body, NULL, deadline, err);
    if (rc)
        goto out;
    if (h.kind == CMN_RPC_AUTH_FAIL || h.kind == CMN_RPC_PROTO_ERROR) {
        rc = handshake_reject(c, &h, &body, err);
        goto out;
    }
    if (h.kind != CMN_RPC_AUTH_OK || body.len != CMN_HMAC_SIZE) {
        rc = cmn_err_set(err, LODE_EBADMSG,
                         "%s: expected AUTH_OK with a %u-byte MAC, got %s (%zu bytes)",
                         c->address, CMN_HMAC_SIZE, cmn_rpc_kind_name(h.kind), body.len);
        goto out;
    }
    uint8_t expect[CMN_HMAC_SIZE];
    if (cmn_rpc_auth_mac(secret, secret_len, 1, server_nonce, auth, expect) ||
        !cmn_ct_equal(expect, body.data, CMN_HMAC_SIZE)) {
        rc = cmn_err_set(err, LODE_EAUTH,
                         "%s: authentication failed: the server did not prove the cluster "
                         "secret (wrong secret on one side, or not a lode peer)", c->address);
        goto out;
    }
    rc = 0;
out:
    cmn_buf_free(&body);
    return rc;
}

int cmn_rpc_sync_connect(const char *addr, const void *secret, size_t secret_len,
                         uint32_t timeout_ms, struct cmn_rpc_sync **out, struct cmn_err *err)
{
    if (!addr || !secret || !secret_len || !out)
        return cmn_err_set(err, -EINVAL, "connect: address and a non-empty secret are required");
    uint64_t deadline = deadline_after(timeout_ms ? timeout_ms : 3000);
    struct cmn_rpc_sync *c = calloc(1, sizeof(*c));
    if (!c || !(c->address = strdup(addr)) || !(c->rbuf = malloc(RBUF_SIZE))) {
        if (c)
            free(c->address);
        free(c);
        return cmn_err_set(err, -ENOMEM, "connect to %s: out of memory", addr);
    }
    c->max_frame = CMN_RPC_DEFAULT_MAX_FRAME;
    c->fd = connect_fd(addr, deadline, err);
    if (c->fd < 0) {
        int rc = c->fd;
        c->fd = -1;
        cmn_rpc_sync_close(c);
        return rc;
    }
    int rc = handshake(c, secret, secret_len, deadline, err);
    if (rc) {
        cmn_rpc_sync_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cmn_rpc_sync_close(struct cmn_rpc_sync *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->rbuf);
    free(c->address);
    free(c);
}

const char *cmn_rpc_sync_address(const struct cmn_rpc_sync *c)
{
    return c->address;
}

int cmn_rpc_sync_fd(const struct cmn_rpc_sync *c)
{
    return c->fd;
}

int cmn_rpc_sync_broken(const struct cmn_rpc_sync *c)
{
    return c->broken;
}

int cmn_rpc_sync_send_payload(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                              const ProtobufCMessage *req, const void *payload,
                              size_t payload_len, uint64_t *id)
{
    if (c->broken)
        return LODE_ECLOSED;
    if (method > UINT16_MAX || flags > UINT16_MAX)
        return -EINVAL;
    uint64_t rid = ++c->next_id;
    int rc = send_frame(c, CMN_RPC_REQUEST, method, flags, rid, req, NULL, 0, payload,
                        payload_len, deadline_after(SEND_TIMEOUT_MS));
    if (rc == 0 && id)
        *id = rid;
    return rc;
}

int cmn_rpc_sync_send(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                      const ProtobufCMessage *req, uint64_t *id)
{
    return cmn_rpc_sync_send_payload(c, method, flags, req, NULL, 0, id);
}

static int recv_until(struct cmn_rpc_sync *c, uint64_t deadline, struct cmn_rpc_result *res)
{
    res->message[0] = '\0';
    res->leader_address[0] = '\0';
    res->leader_id = 0;
    res->request_id = 0;
    if (c->broken) {
        cmn_rpc_result_set_local(res, LODE_ECLOSED,
                                 "%s: connection unusable after an earlier error", c->address);
        return res->status;
    }
    struct cmn_err err;
    cmn_err_clear(&err);
    struct cmn_rpc_header h;
    int rc = read_frame(c, &h, &res->body, &res->payload, deadline, &err);
    if (rc) {
        c->broken = 1;
        cmn_buf_reset(&res->body);
        cmn_buf_reset(&res->payload);
        cmn_rpc_result_set_local(res, rc, "%s", cmn_err_text(&err));
        return rc;
    }
    res->request_id = h.request_id;
    if (h.kind == CMN_RPC_RESPONSE && h.status == 0) {
        res->status = 0;
        return 0;
    }
    if (h.kind == CMN_RPC_RESPONSE) {
        cmn_rpc_result_set_error(res, h.status, res->body.data, res->body.len, NULL);
    } else if (h.kind == CMN_RPC_PROTO_ERROR || h.kind == CMN_RPC_AUTH_FAIL) {
        c->broken = 1;
        int status = h.kind == CMN_RPC_AUTH_FAIL ? LODE_EAUTH : h.status < 0 ? h.status
                                                                            : LODE_EBADMSG;
        char ctx[CMN_RPC_HOST_MAX + 40];
        snprintf(ctx, sizeof(ctx), "%s closed the connection", c->address);
        cmn_rpc_result_set_error(res, status, res->body.data, res->body.len, ctx);
    } else {
        c->broken = 1;
        cmn_rpc_result_set_local(res, LODE_EBADMSG, "%s: unexpected %s frame (expected RESPONSE)",
                                 c->address, cmn_rpc_kind_name(h.kind));
    }
    cmn_buf_reset(&res->body);
    cmn_buf_reset(&res->payload);
    return res->status;
}

int cmn_rpc_sync_recv(struct cmn_rpc_sync *c, uint32_t timeout_ms, struct cmn_rpc_result *res)
{
    return recv_until(c, deadline_after(timeout_ms ? timeout_ms : 10000), res);
}

static int sync_call(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                     const ProtobufCMessage *req, const void *payload, size_t payload_len,
                     uint32_t timeout_ms, struct cmn_rpc_result *res)
{
    uint64_t deadline = deadline_after(timeout_ms ? timeout_ms : 10000);
    cmn_buf_reset(&res->body);
    cmn_buf_reset(&res->payload);
    if (c->broken) {
        cmn_rpc_result_set_local(res, LODE_ECLOSED,
                                 "%s: connection unusable after an earlier error", c->address);
        return res->status;
    }
    if (method > UINT16_MAX || flags > UINT16_MAX || (payload_len && !payload)) {
        cmn_rpc_result_set_local(res, -EINVAL, "invalid method %u, flags %u or payload", method,
                                 flags);
        return res->status;
    }
    uint64_t id = ++c->next_id;
    int rc = send_frame(c, CMN_RPC_REQUEST, method, flags, id, req, NULL, 0, payload,
                        payload_len, deadline);
    if (rc) {
        const char *name = cmn_rpc_method_name(method);
        cmn_rpc_result_set_local(res, rc, "%s to %s: sending the request: %s",
                                 name ? name : "call", c->address, io_error_text(rc));
        return rc;
    }
    for (;;) {
        rc = recv_until(c, deadline, res);
        /* A reply to an earlier request (one whose caller gave up) is skipped. */
        if (res->request_id == id || c->broken)
            break;
    }
    if (rc == LODE_ETIMEOUT && c->broken) {
        const char *name = cmn_rpc_method_name(method);
        cmn_rpc_result_set_local(res, rc, "%s to %s: no reply within %u ms", name ? name : "call",
                                 c->address, timeout_ms ? timeout_ms : 10000);
    }
    return rc;
}

int cmn_rpc_sync_call(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                      const ProtobufCMessage *req, uint32_t timeout_ms,
                      struct cmn_rpc_result *res)
{
    return sync_call(c, method, flags, req, NULL, 0, timeout_ms, res);
}

int cmn_rpc_sync_call_payload(struct cmn_rpc_sync *c, unsigned method, unsigned flags,
                              const ProtobufCMessage *req, const void *payload,
                              size_t payload_len, uint32_t timeout_ms, struct cmn_rpc_result *res)
{
    return sync_call(c, method, flags, req, payload, payload_len, timeout_ms, res);
}

int cmn_rpc_sync_send_raw(struct cmn_rpc_sync *c, const void *data, size_t len)
{
    int rc = write_all(c, data, len, deadline_after(SEND_TIMEOUT_MS));
    if (rc)
        c->broken = 1;
    return rc;
}
