/* Growable byte buffers and bounds-checked big-endian readers.
 *
 * struct cmn_buf owns its memory (malloc); zero-initialised or cmn_buf_init() is an empty
 * buffer. Appends grow it; an allocation failure returns -ENOMEM and leaves the contents
 * as they were. struct cmn_rd reads from memory it does not own: every getter checks the
 * remaining length and, on underflow, sets rd->err = LODE_EBADMSG and returns 0, so a
 * parser can read a whole record and check rd->err once.
 */
#ifndef LODE_COMMON_BUF_H
#define LODE_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct cmn_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void cmn_buf_init(struct cmn_buf *b);
void cmn_buf_free(struct cmn_buf *b);            /* frees memory, back to empty */
void cmn_buf_reset(struct cmn_buf *b);           /* len = 0, keeps memory */
int cmn_buf_reserve(struct cmn_buf *b, size_t extra); /* room for `extra` more bytes */
int cmn_buf_append(struct cmn_buf *b, const void *data, size_t len);
int cmn_buf_append_u8(struct cmn_buf *b, uint8_t v);
int cmn_buf_append_u16be(struct cmn_buf *b, uint16_t v);
int cmn_buf_append_u32be(struct cmn_buf *b, uint32_t v);
int cmn_buf_append_u64be(struct cmn_buf *b, uint64_t v);
int cmn_buf_printf(struct cmn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a NUL without counting it in len, so data can be used as a C string. */
int cmn_buf_terminate(struct cmn_buf *b);
/* Hands the memory to the caller (who frees it) and leaves b empty. */
uint8_t *cmn_buf_steal(struct cmn_buf *b, size_t *len);

void cmn_put_u16be(uint8_t *p, uint16_t v);
void cmn_put_u32be(uint8_t *p, uint32_t v);
void cmn_put_u64be(uint8_t *p, uint64_t v);
uint16_t cmn_get_u16be(const uint8_t *p);
uint32_t cmn_get_u32be(const uint8_t *p);
uint64_t cmn_get_u64be(const uint8_t *p);

struct cmn_rd {
    const uint8_t *p;
    size_t left;
    int err;                     /* 0 or LODE_EBADMSG after an underflow */
};

void cmn_rd_init(struct cmn_rd *rd, const void *data, size_t len);
uint8_t cmn_rd_u8(struct cmn_rd *rd);
uint16_t cmn_rd_u16be(struct cmn_rd *rd);
uint32_t cmn_rd_u32be(struct cmn_rd *rd);
uint64_t cmn_rd_u64be(struct cmn_rd *rd);
/* Returns a pointer to the next `len` bytes (inside the source) or NULL on underflow. */
const uint8_t *cmn_rd_bytes(struct cmn_rd *rd, size_t len);

#endif
