#include "common/dp_proto.h"

#include <errno.h>
#include <string.h>

#include "common/buf.h"
#include "common/hmac.h"

/* Byte offsets of the fixed layouts (docs/dataplane.md draws them). */
enum {
    HELLO_MAGIC = 0,
    HELLO_VERSION = 4,
    HELLO_FLAGS = 6,
    HELLO_SID = 8,
    HELLO_EXPIRES = 24,
    HELLO_MAC = 32,
    HELLO_KEY_LEN = 64,
    HELLO_PAD = 66,
    HELLO_KEY = 68,
    REPLY_MAGIC = 0,
    REPLY_KIND = 4,
    REPLY_CODE = 6,
    REPLY_SOURCE = 8,
    DATA_MAGIC = 0,
    DATA_LEN = 4,
    DATA_ADDR = 8,
    DATA_BASE = 16,
    DATA_TAG = 24,
    DATA_CRC = 28,
};

_Static_assert(HELLO_KEY + CMN_DP_ACCESS_KEY_MAX == CMN_DP_HELLO_SIZE, "HELLO layout");
_Static_assert(REPLY_SOURCE + 8 == CMN_DP_REPLY_SIZE, "reply layout");
_Static_assert(DATA_CRC + 4 == CMN_DP_DATA_HDR_SIZE, "DATA layout");

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Bitwise: the CRC only ever covers a 28-byte header, where a table would buy nothing. */
uint32_t cmn_dp_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

bool cmn_dp_range_inside(uint64_t base, uint64_t size, uint64_t addr, uint64_t len)
{
    if (addr < base)
        return false;
    uint64_t off = addr - base;
    return off <= size && len <= size - off;
}

int cmn_dp_cred_set_key(struct cmn_dp_cred *cred, const char *key, size_t len)
{
    if (!key || len == 0 || len > CMN_DP_ACCESS_KEY_MAX)
        return -EINVAL;
    memset(cred->access_key, 0, sizeof cred->access_key);
    memcpy(cred->access_key, key, len);
    cred->access_key_len = (uint16_t)len;
    return 0;
}

int cmn_dp_cred_mac(const void *secret, size_t secret_len, const struct cmn_dp_cred *cred,
                    uint8_t out[CMN_DP_MAC_SIZE])
{
    if (!secret || secret_len == 0 || cred->access_key_len == 0 ||
        cred->access_key_len > CMN_DP_ACCESS_KEY_MAX)
        return -EINVAL;
    uint8_t exp_be[8];
    cmn_put_u64be(exp_be, cred->expires_ms);
    const struct cmn_iov_c pieces[] = {
        {CMN_DP_MAC_CONTEXT, sizeof CMN_DP_MAC_CONTEXT - 1},
        {cred->sid, CMN_DP_SID_SIZE},
        {exp_be, sizeof exp_be},
        {cred->access_key, cred->access_key_len},
    };
    return cmn_hmac_sha256(secret, secret_len, pieces, sizeof pieces / sizeof pieces[0], out);
}

int cmn_dp_cred_sign(const void *secret, size_t secret_len, struct cmn_dp_cred *cred)
{
    return cmn_dp_cred_mac(secret, secret_len, cred, cred->mac);
}

int cmn_dp_cred_verify(const void *secret, size_t secret_len, const struct cmn_dp_cred *cred,
                       uint64_t now_ms, struct cmn_err *err)
{
    uint8_t want[CMN_DP_MAC_SIZE];
    int rc = cmn_dp_cred_mac(secret, secret_len, cred, want);
    if (rc == -EINVAL)
        return cmn_err_set(err, LODE_EAUTH, "session credential: malformed access key");
    if (rc < 0)
        return cmn_err_set(err, rc, "session credential: cannot compute the MAC");
    /* MAC first: only a genuine credential learns that it merely expired. */
    if (!cmn_ct_equal(want, cred->mac, CMN_DP_MAC_SIZE))
        return cmn_err_set(err, LODE_EAUTH, "session credential: bad MAC");
    if (cred->expires_ms <= now_ms)
        return cmn_err_set(err, LODE_ETIMEOUT, "session credential expired %llu ms ago",
                           (unsigned long long)(now_ms - cred->expires_ms));
    return 0;
}

enum cmn_dp_code cmn_dp_code_from_err(int code)
{
    switch (code) {
    case 0:
        return CMN_DP_CODE_OK;
    case LODE_EAUTH:
        return CMN_DP_CODE_BAD_MAC;
    case LODE_ETIMEOUT:
        return CMN_DP_CODE_EXPIRED;
    default:
        return CMN_DP_CODE_MALFORMED;
    }
}

const char *cmn_dp_code_text(unsigned code)
{
    switch (code) {
    case CMN_DP_CODE_OK:
        return "ok";
    case CMN_DP_CODE_BAD_MAC:
        return "bad mac";
    case CMN_DP_CODE_EXPIRED:
        return "expired";
    case CMN_DP_CODE_MALFORMED:
        return "malformed hello";
    case CMN_DP_CODE_IN_USE:
        return "session in use on this source";
    case CMN_DP_CODE_BUSY:
        return "source busy (session table full)";
    default:
        return "unknown code";
    }
}

int cmn_dp_hello_encode(const struct cmn_dp_cred *cred, uint8_t out[CMN_DP_HELLO_SIZE])
{
    if (cred->access_key_len == 0 || cred->access_key_len > CMN_DP_ACCESS_KEY_MAX)
        return -EINVAL;
    memset(out, 0, CMN_DP_HELLO_SIZE);
    memcpy(out + HELLO_MAGIC, CMN_DP_MAGIC_HELLO, 4);
    put16(out + HELLO_VERSION, CMN_DP_VERSION);
    memcpy(out + HELLO_SID, cred->sid, CMN_DP_SID_SIZE);
    put64(out + HELLO_EXPIRES, cred->expires_ms);
    memcpy(out + HELLO_MAC, cred->mac, CMN_DP_MAC_SIZE);
    put16(out + HELLO_KEY_LEN, cred->access_key_len);
    memcpy(out + HELLO_KEY, cred->access_key, cred->access_key_len);
    return 0;
}

int cmn_dp_hello_decode(const uint8_t in[CMN_DP_HELLO_SIZE], struct cmn_dp_cred *out,
                        struct cmn_err *err)
{
    memset(out, 0, sizeof *out);
    if (memcmp(in + HELLO_MAGIC, CMN_DP_MAGIC_HELLO, 4) != 0)
        return cmn_err_set(err, LODE_EBADMSG, "hello: bad magic");
    uint16_t version = get16(in + HELLO_VERSION);
    if (version != CMN_DP_VERSION)
        return cmn_err_set(err, LODE_EVERSION, "hello: version %u, this source speaks %u",
                           version, CMN_DP_VERSION);
    if (get16(in + HELLO_FLAGS) != 0 || get16(in + HELLO_PAD) != 0)
        return cmn_err_set(err, LODE_EBADMSG, "hello: reserved fields not zero");
    uint16_t klen = get16(in + HELLO_KEY_LEN);
    if (klen == 0 || klen > CMN_DP_ACCESS_KEY_MAX)
        return cmn_err_set(err, LODE_EBADMSG, "hello: access key length %u outside 1..%u",
                           klen, CMN_DP_ACCESS_KEY_MAX);
    for (size_t i = HELLO_KEY + klen; i < CMN_DP_HELLO_SIZE; i++) {
        if (in[i] != 0)
            return cmn_err_set(err, LODE_EBADMSG, "hello: access key padding not zero");
    }
    memcpy(out->sid, in + HELLO_SID, CMN_DP_SID_SIZE);
    out->expires_ms = get64(in + HELLO_EXPIRES);
    memcpy(out->mac, in + HELLO_MAC, CMN_DP_MAC_SIZE);
    out->access_key_len = klen;
    memcpy(out->access_key, in + HELLO_KEY, klen);
    return 0;
}

void cmn_dp_reply_encode(const struct cmn_dp_reply *r, uint8_t out[CMN_DP_REPLY_SIZE])
{
    memcpy(out + REPLY_MAGIC, CMN_DP_MAGIC_HELLO, 4);
    put16(out + REPLY_KIND, r->kind);
    put16(out + REPLY_CODE, r->code);
    put64(out + REPLY_SOURCE, r->source_id);
}

int cmn_dp_reply_decode(const uint8_t in[CMN_DP_REPLY_SIZE], struct cmn_dp_reply *out,
                        struct cmn_err *err)
{
    memset(out, 0, sizeof *out);
    if (memcmp(in + REPLY_MAGIC, CMN_DP_MAGIC_HELLO, 4) != 0)
        return cmn_err_set(err, LODE_EBADMSG, "hello reply: bad magic");
    uint16_t kind = get16(in + REPLY_KIND), code = get16(in + REPLY_CODE);
    if (kind == CMN_DP_REPLY_OK && code != 0)
        return cmn_err_set(err, LODE_EBADMSG, "hello reply: OK with code %u", code);
    if (kind == CMN_DP_REPLY_ERR && code == 0)
        return cmn_err_set(err, LODE_EBADMSG, "hello reply: error without a code");
    if (kind != CMN_DP_REPLY_OK && kind != CMN_DP_REPLY_ERR)
        return cmn_err_set(err, LODE_EBADMSG, "hello reply: unknown kind %u", kind);
    out->kind = kind;
    out->code = code;
    out->source_id = get64(in + REPLY_SOURCE);
    return 0;
}

void cmn_dp_data_encode(const struct cmn_dp_data_hdr *h, uint8_t out[CMN_DP_DATA_HDR_SIZE])
{
    memcpy(out + DATA_MAGIC, CMN_DP_MAGIC_DATA, 4);
    put32(out + DATA_LEN, h->len);
    put64(out + DATA_ADDR, h->addr);
    put64(out + DATA_BASE, h->window_base);
    put32(out + DATA_TAG, h->tag);
    put32(out + DATA_CRC, cmn_dp_crc32c(0, out, DATA_CRC));
}

int cmn_dp_data_decode(const uint8_t in[CMN_DP_DATA_HDR_SIZE], uint32_t max_frame,
                       struct cmn_dp_data_hdr *out, struct cmn_err *err)
{
    memset(out, 0, sizeof *out);
    if (max_frame == 0)
        max_frame = CMN_DP_MAX_FRAME_DEFAULT;
    if (memcmp(in + DATA_MAGIC, CMN_DP_MAGIC_DATA, 4) != 0)
        return cmn_err_set(err, LODE_EBADMSG, "data frame: bad magic");
    uint32_t crc = get32(in + DATA_CRC), want = cmn_dp_crc32c(0, in, DATA_CRC);
    if (crc != want)
        return cmn_err_set(err, LODE_EBADMSG, "data frame: header CRC 0x%08x, computed 0x%08x",
                           crc, want);
    uint32_t len = get32(in + DATA_LEN);
    if (len == 0)
        return cmn_err_set(err, LODE_EBADMSG, "data frame: empty payload");
    if (len > max_frame)
        return cmn_err_set(err, LODE_EFRAMETOOBIG, "data frame: length %u above %u", len,
                           max_frame);
    out->len = len;
    out->addr = get64(in + DATA_ADDR);
    out->window_base = get64(in + DATA_BASE);
    out->tag = get32(in + DATA_TAG);
    return 0;
}
