#include "common/rpc_codec.h"

#include <errno.h>
#include <string.h>

#include <lode/errno.h>

#include "common/rpc_internal.h"
#include "common/rpc_methods.h"

/* Frames larger than this keep the reader's buffer allocated between frames only until the
 * frame is consumed; afterwards the memory goes back, so one large frame does not pin
 * max_frame bytes per idle connection. */
#define READER_KEEP_BYTES (256u << 10)

static const char mac_label_client[] = "lode-rpc-v1 client";
static const char mac_label_server[] = "lode-rpc-v1 server";

void cmn_rpc_header_pack(const struct cmn_rpc_header *h, uint8_t out[CMN_RPC_HEADER_SIZE])
{
    cmn_put_u32be(out + 0, CMN_RPC_MAGIC);
    out[4] = h->version;
    out[5] = h->kind;
    cmn_put_u16be(out + 6, h->flags);
    cmn_put_u16be(out + 8, h->method);
    cmn_put_u16be(out + 10, 0);
    cmn_put_u64be(out + 12, h->request_id);
    cmn_put_u32be(out + 20, (uint32_t)h->status);
    cmn_put_u32be(out + 24, h->body_len);
    cmn_put_u32be(out + 28, h->payload_len);
}

static const char *kind_name(unsigned kind)
{
    switch (kind) {
    case CMN_RPC_HELLO: return "HELLO";
    case CMN_RPC_AUTH: return "AUTH";
    case CMN_RPC_AUTH_OK: return "AUTH_OK";
    case CMN_RPC_AUTH_FAIL: return "AUTH_FAIL";
    case CMN_RPC_REQUEST: return "REQUEST";
    case CMN_RPC_RESPONSE: return "RESPONSE";
    case CMN_RPC_PROTO_ERROR: return "PROTO_ERROR";
    default: return NULL;
    }
}

const char *cmn_rpc_kind_name(unsigned kind)
{
    const char *n = kind_name(kind);
    return n ? n : "unknown";
}

int cmn_rpc_header_unpack(const uint8_t in[CMN_RPC_HEADER_SIZE], uint32_t max_frame,
                          struct cmn_rpc_header *h, struct cmn_err *err)
{
    uint32_t magic = cmn_get_u32be(in);
    if (magic != CMN_RPC_MAGIC)
        return cmn_err_set(err, LODE_EBADMSG,
                           "bad frame magic 0x%08x (expected 0x%08x \"LODE\"): not a lode RPC peer",
                           magic, CMN_RPC_MAGIC);
    h->version = in[4];
    h->kind = in[5];
    h->flags = cmn_get_u16be(in + 6);
    h->method = cmn_get_u16be(in + 8);
    uint16_t reserved = cmn_get_u16be(in + 10);
    h->request_id = cmn_get_u64be(in + 12);
    h->status = (int32_t)cmn_get_u32be(in + 20);
    h->body_len = cmn_get_u32be(in + 24);
    h->payload_len = cmn_get_u32be(in + 28);

    if (h->version != CMN_RPC_VERSION)
        return cmn_err_set(err, LODE_EVERSION,
                           "unsupported RPC protocol version %u (this build speaks version %u)",
                           h->version, CMN_RPC_VERSION);
    if (!kind_name(h->kind))
        return cmn_err_set(err, LODE_EBADMSG, "unknown frame kind %u", h->kind);
    if (reserved != 0)
        return cmn_err_set(err, LODE_EBADMSG, "reserved header field is 0x%04x, must be 0",
                           reserved);
    uint64_t total = (uint64_t)h->body_len + h->payload_len;
    if (total > max_frame)
        return cmn_err_set(err, LODE_EFRAMETOOBIG,
                           "frame of %llu bytes (body %u + payload %u) exceeds the limit of %u bytes",
                           (unsigned long long)total, h->body_len, h->payload_len, max_frame);
    return 0;
}

int cmn_rpc_frame_append(struct cmn_buf *out, const struct cmn_rpc_header *h, const void *body,
                         const void *payload)
{
    if ((h->body_len && !body) || (h->payload_len && !payload))
        return -EINVAL;
    size_t total = CMN_RPC_HEADER_SIZE + (size_t)h->body_len + h->payload_len;
    int rc = cmn_buf_reserve(out, total);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    cmn_rpc_header_pack(h, p);
    p += CMN_RPC_HEADER_SIZE;
    if (h->body_len)
        memcpy(p, body, h->body_len);
    p += h->body_len;
    if (h->payload_len)
        memcpy(p, payload, h->payload_len);
    out->len += total;
    return 0;
}

int cmn_rpc_auth_mac(const void *secret, size_t secret_len, int server_side,
                     const uint8_t server_nonce[CMN_RPC_NONCE_SIZE],
                     const uint8_t client_nonce[CMN_RPC_NONCE_SIZE], uint8_t out[CMN_HMAC_SIZE])
{
    /* Both labels have the same length, so the three pieces cannot be re-split into a
     * different valid input. */
    const char *label = server_side ? mac_label_server : mac_label_client;
    struct cmn_iov_c pieces[3] = {
        {label, sizeof(mac_label_client) - 1},
        {server_nonce, CMN_RPC_NONCE_SIZE},
        {client_nonce, CMN_RPC_NONCE_SIZE},
    };
    return cmn_hmac_sha256(secret, secret_len, pieces, 3, out);
}

void cmn_rpc_reader_init(struct cmn_rpc_reader *r, uint32_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame ? max_frame : CMN_RPC_DEFAULT_MAX_FRAME;
    cmn_buf_init(&r->frame);
    cmn_err_clear(&r->err);
}

void cmn_rpc_reader_free(struct cmn_rpc_reader *r)
{
    cmn_buf_free(&r->frame);
    r->hdr_have = 0;
}

/* A zero-length body still gets a valid pointer, so callbacks can hand it to protobuf-c
 * or memcmp without special cases. */
static const uint8_t empty_frame[1];

static int reader_deliver(struct cmn_rpc_reader *r, const uint8_t *frame, cmn_rpc_frame_cb cb,
                          void *cb_data)
{
    const uint8_t *body = frame ? frame : empty_frame;
    const uint8_t *payload = frame ? frame + r->cur.body_len : empty_frame;
    struct cmn_rpc_header h = r->cur;
    r->hdr_have = 0;
    return cb(cb_data, &h, body, payload);
}

int cmn_rpc_reader_feed(struct cmn_rpc_reader *r, const uint8_t *data, size_t len,
                        cmn_rpc_frame_cb cb, void *cb_data)
{
    if (r->dead)
        return r->err.code;
    while (len > 0) {
        if (r->hdr_have < CMN_RPC_HEADER_SIZE) {
            size_t n = CMN_RPC_HEADER_SIZE - r->hdr_have;
            if (n > len)
                n = len;
            memcpy(r->hdr + r->hdr_have, data, n);
            r->hdr_have += n;
            data += n;
            len -= n;
            if (r->hdr_have < CMN_RPC_HEADER_SIZE)
                break;
            int rc = cmn_rpc_header_unpack(r->hdr, r->max_frame, &r->cur, &r->err);
            if (rc) {
                r->dead = 1;
                return rc;
            }
            cmn_buf_reset(&r->frame);
        }
        size_t need = (size_t)r->cur.body_len + r->cur.payload_len;
        int rc;
        if (r->frame.len == 0 && len >= need) {
            /* The whole frame is in the caller's buffer: hand it over without copying. */
            rc = reader_deliver(r, need ? data : NULL, cb, cb_data);
            data += need;
            len -= need;
        } else {
            size_t n = need - r->frame.len;
            if (n > len)
                n = len;
            /* Grow with what actually arrived, never by the announced length: a peer that
             * announces max_frame and stalls must not cost max_frame bytes of memory. */
            if (cmn_buf_append(&r->frame, data, n)) {
                r->dead = 1;
                return cmn_err_set(&r->err, -ENOMEM, "out of memory buffering a %zu-byte frame",
                                   need);
            }
            data += n;
            len -= n;
            if (r->frame.len < need)
                break;
            rc = reader_deliver(r, r->frame.data, cb, cb_data);
            if (r->frame.cap > READER_KEEP_BYTES)
                cmn_buf_free(&r->frame);
            else
                cmn_buf_reset(&r->frame);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int cmn_rpc_error_pack(struct cmn_buf *out, const char *message, const char *leader_address,
                       uint64_t leader_id)
{
    Lode__RpcError e = LODE__RPC_ERROR__INIT;
    e.message = (char *)(message ? message : "");
    e.leader_address = (char *)(leader_address ? leader_address : "");
    e.leader_id = leader_id;
    size_t n = lode__rpc_error__get_packed_size(&e);
    int rc = cmn_buf_reserve(out, n);
    if (rc)
        return rc;
    out->len += lode__rpc_error__pack(&e, out->data + out->len);
    return 0;
}

const char *cmn_rpc_method_name(unsigned method)
{
    switch (method) {
#define METHOD_NAME(name, num, req, resp) \
    case num: return #name;
        CMN_RPC_METHOD_MAP(METHOD_NAME)
#undef METHOD_NAME
    }
    return NULL;
}

const ProtobufCMessageDescriptor *cmn_rpc_method_request(unsigned method)
{
    switch (method) {
#define METHOD_REQ(name, num, req, resp) \
    case num: return &lode__##req##__descriptor;
        CMN_RPC_METHOD_MAP(METHOD_REQ)
#undef METHOD_REQ
    }
    return NULL;
}

const ProtobufCMessageDescriptor *cmn_rpc_method_response(unsigned method)
{
    switch (method) {
#define METHOD_RESP(name, num, req, resp) \
    case num: return &lode__##resp##__descriptor;
        CMN_RPC_METHOD_MAP(METHOD_RESP)
#undef METHOD_RESP
    }
    return NULL;
}
