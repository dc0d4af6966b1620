#include "common/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

void cmn_buf_init(struct cmn_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cmn_buf_free(struct cmn_buf *b)
{
    free(b->data);
    cmn_buf_init(b);
}

void cmn_buf_reset(struct cmn_buf *b)
{
    b->len = 0;
}

int cmn_buf_reserve(struct cmn_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    /* No object may exceed PTRDIFF_MAX; asking for more is a length bug upstream. */
    if (need > PTRDIFF_MAX)
        return -ENOMEM;
    /* Doubling keeps appends amortised O(1); start at 64 so small buffers do not
     * reallocate on every byte. */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > PTRDIFF_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cmn_buf_append(struct cmn_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    int rc = cmn_buf_reserve(b, len);
    if (rc)
        return rc;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

int cmn_buf_append_u8(struct cmn_buf *b, uint8_t v)
{
    return cmn_buf_append(b, &v, 1);
}

int cmn_buf_append_u16be(struct cmn_buf *b, uint16_t v)
{
    uint8_t tmp[2];
    cmn_put_u16be(tmp, v);
    return cmn_buf_append(b, tmp, sizeof(tmp));
}

int cmn_buf_append_u32be(struct cmn_buf *b, uint32_t v)
{
    uint8_t tmp[4];
    cmn_put_u32be(tmp, v);
    return cmn_buf_append(b, tmp, sizeof(tmp));
}

int cmn_buf_append_u64be(struct cmn_buf *b, uint64_t v)
{
    uint8_t tmp[8];
    cmn_put_u64be(tmp, v);
    return cmn_buf_append(b, tmp, sizeof(tmp));
}

int cmn_buf_printf(struct cmn_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    /* +1 for the NUL vsnprintf always writes; it is not counted in len. */
    int rc = cmn_buf_reserve(b, (size_t)n + 1);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int cmn_buf_terminate(struct cmn_buf *b)
{
    int rc = cmn_buf_reserve(b, 1);
    if (rc)
        return rc;
    b->data[b->len] = '\0';
    return 0;
}

uint8_t *cmn_buf_steal(struct cmn_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    cmn_buf_init(b);
    return p;
}

void cmn_put_u16be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void cmn_put_u32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void cmn_put_u64be(uint8_t *p, uint64_t v)
{
    cmn_put_u32be(p, (uint32_t)(v >> 32));
    cmn_put_u32be(p + 4, (uint32_t)v);
}

uint16_t cmn_get_u16be(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

uint32_t cmn_get_u32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t cmn_get_u64be(const uint8_t *p)
{
    return (uint64_t)cmn_get_u32be(p) << 32 | cmn_get_u32be(p + 4);
}

void cmn_rd_init(struct cmn_rd *rd, const void *data, size_t len)
{
    rd->p = data;
    rd->left = data ? len : 0;
    rd->err = 0;
}

/* Consumes n bytes or marks the reader failed. Once failed, every later read fails too,
 * so a half-parsed record never yields plausible-looking values. */
static const uint8_t *rd_take(struct cmn_rd *rd, size_t n)
{
    if (rd->err || rd->left < n) {
        rd->err = LODE_EBADMSG;
        rd->left = 0;
        return NULL;
    }
    const uint8_t *p = rd->p;
    rd->p += n;
    rd->left -= n;
    return p;
}

uint8_t cmn_rd_u8(struct cmn_rd *rd)
{
    const uint8_t *p = rd_take(rd, 1);
    return p ? p[0] : 0;
}

uint16_t cmn_rd_u16be(struct cmn_rd *rd)
{
    const uint8_t *p = rd_take(rd, 2);
    return p ? cmn_get_u16be(p) : 0;
}

uint32_t cmn_rd_u32be(struct cmn_rd *rd)
{
    const uint8_t *p = rd_take(rd, 4);
    return p ? cmn_get_u32be(p) : 0;
}

uint64_t cmn_rd_u64be(struct cmn_rd *rd)
{
    const uint8_t *p = rd_take(rd, 8);
    return p ? cmn_get_u64be(p) : 0;
}

const uint8_t *cmn_rd_bytes(struct cmn_rd *rd, size_t len)
{
    if (len == 0 && !rd->err)
        return rd->p ? rd->p : (const uint8_t *)"";
    return rd_take(rd, len);
}
