#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/buf.h"
#include "tests/tap.h"

static void test_growth(void)
{
    struct cmn_buf b;
    cmn_buf_init(&b);
    ok(b.data == NULL && b.len == 0 && b.cap == 0, "init is empty");
    for (unsigned i = 0; i < 10000; i++) {
        uint8_t v = (uint8_t)(i * 7);
        if (cmn_buf_append(&b, &v, 1) != 0)
            break;
    }
    is_int(b.len, 10000, "10000 single-byte appends");
    ok(b.cap >= b.len, "cap covers len");
    int same = 1;
    for (unsigned i = 0; i < 10000; i++)
        same &= b.data[i] == (uint8_t)(i * 7);
    ok(same, "contents preserved across reallocations");

    size_t cap = b.cap;
    cmn_buf_reset(&b);
    is_int(b.len, 0, "reset empties");
    is_int(b.cap, cap, "reset keeps memory");

    is_int(cmn_buf_reserve(&b, 100000), 0, "reserve");
    ok(b.cap >= 100000, "reserve grows capacity");
    is_int(cmn_buf_reserve(&b, SIZE_MAX), -ENOMEM, "absurd reserve fails with -ENOMEM");
    is_int(b.len, 0, "failed reserve leaves len");

    is_int(cmn_buf_append(&b, NULL, 0), 0, "empty append is fine");
    is_int(cmn_buf_printf(&b, "%s-%d", "abc", 42), 0, "printf");
    is_int(b.len, 6, "printf length excludes NUL");
    is_int(cmn_buf_printf(&b, "+%05u", 7u), 0, "printf appends");
    is_int(cmn_buf_terminate(&b), 0, "terminate");
    is_str((char *)b.data, "abc-42+00007", "printf contents");
    is_int(b.len, 12, "terminate does not count NUL");

    size_t len = 0;
    uint8_t *p = cmn_buf_steal(&b, &len);
    is_int(len, 12, "steal hands over length");
    ok(p && memcmp(p, "abc-42", 6) == 0, "steal hands over memory");
    ok(b.data == NULL && b.len == 0 && b.cap == 0, "steal leaves buffer empty");
    free(p);

    /* Large printf that needs growth in one step. */
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    is_int(cmn_buf_printf(&b, "[%s]", big), 0, "large printf");
    is_int(b.len, sizeof(big) + 1, "large printf length");
    ok(b.data[0] == '[' && b.data[b.len - 1] == ']' && b.data[1500] == 'x', "large printf data");
    cmn_buf_free(&b);
    ok(b.data == NULL && b.len == 0, "free back to empty");
    cmn_buf_free(&b); /* twice is harmless */
}

static void test_endian(void)
{
    uint8_t raw[8];
    cmn_put_u16be(raw, 0x1234);
    ok(raw[0] == 0x12 && raw[1] == 0x34, "u16 big-endian layout");
    cmn_put_u32be(raw, 0xdeadbeef);
    ok(raw[0] == 0xde && raw[1] == 0xad && raw[2] == 0xbe && raw[3] == 0xef,
       "u32 big-endian layout");
    cmn_put_u64be(raw, 0x0102030405060708ull);
    ok(raw[0] == 1 && raw[7] == 8 && raw[3] == 4, "u64 big-endian layout");
    is_int(cmn_get_u64be(raw) == 0x0102030405060708ull, 1, "u64 get");

    struct cmn_buf b = {0};
    static const uint64_t v64[] = {0, 1, 0xffffffffffffffffull, 0x8000000000000000ull,
                                   0x0123456789abcdefull};
    for (size_t i = 0; i < 5; i++) {
        cmn_buf_append_u8(&b, (uint8_t)(0xf0 + i));
        cmn_buf_append_u16be(&b, (uint16_t)(0xfffe - i));
        cmn_buf_append_u32be(&b, (uint32_t)(0x80000001u + i));
        cmn_buf_append_u64be(&b, v64[i]);
    }
    is_int(b.len, 5 * 15, "appended 5 records of 15 bytes");

    struct cmn_rd rd;
    cmn_rd_init(&rd, b.data, b.len);
    int good = 1;
    for (size_t i = 0; i < 5; i++) {
        good &= cmn_rd_u8(&rd) == (uint8_t)(0xf0 + i);
        good &= cmn_rd_u16be(&rd) == (uint16_t)(0xfffe - i);
        good &= cmn_rd_u32be(&rd) == (uint32_t)(0x80000001u + i);
        good &= cmn_rd_u64be(&rd) == v64[i];
    }
    ok(good, "round trip of u8/u16/u32/u64");
    is_int(rd.err, 0, "no error after exact read");
    is_int(rd.left, 0, "everything consumed");
    cmn_buf_free(&b);
}

static void test_reader_underflow(void)
{
    static const uint8_t data[] = {1, 2, 3, 4, 5, 6, 7};
    struct cmn_rd rd;

    cmn_rd_init(&rd, data, sizeof(data));
    is_int(cmn_rd_u32be(&rd), 0x01020304, "u32 read");
    is_int(cmn_rd_u32be(&rd), 0, "u32 with 3 bytes left returns 0");
    is_int(rd.err, LODE_EBADMSG, "underflow sets LODE_EBADMSG");
    is_int(cmn_rd_u8(&rd), 0, "reads after an underflow return 0");
    is_int(rd.err, LODE_EBADMSG, "error sticks");

    cmn_rd_init(&rd, data, sizeof(data));
    const uint8_t *p = cmn_rd_bytes(&rd, 3);
    ok(p == data, "bytes points into the source");
    p = cmn_rd_bytes(&rd, 4);
    ok(p == data + 3 && rd.left == 0, "bytes up to the end");
    ok(cmn_rd_bytes(&rd, 0) != NULL && rd.err == 0, "zero bytes at the end is fine");
    ok(cmn_rd_bytes(&rd, 1) == NULL, "bytes past the end is NULL");
    is_int(rd.err, LODE_EBADMSG, "bytes underflow sets err");

    cmn_rd_init(&rd, data, sizeof(data));
    ok(cmn_rd_bytes(&rd, SIZE_MAX) == NULL && rd.err == LODE_EBADMSG, "huge length rejected");

    cmn_rd_init(&rd, data, 1);
    is_int(cmn_rd_u16be(&rd), 0, "u16 underflow");
    is_int(rd.err, LODE_EBADMSG, "u16 underflow sets err");
    cmn_rd_init(&rd, data, 7);
    is_int(cmn_rd_u64be(&rd) == 0, 1, "u64 underflow returns 0");
    is_int(rd.err, LODE_EBADMSG, "u64 underflow sets err");
    cmn_rd_init(&rd, NULL, 0);
    is_int(cmn_rd_u8(&rd), 0, "empty reader");
    is_int(rd.err, LODE_EBADMSG, "empty reader underflows");
}

int main(void)
{
    test_growth();
    test_endian();
    test_reader_underflow();
    return tap_done();
}
