/* The tcp data plane's codec: exact bytes of HELLO, replies and DATA headers, the session MAC,
 * and every refusal the decoders owe. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/dp_proto.h"
#include "tests/tap.h"

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static const char secret[] = "cluster-secret-for-tests";
#define SECRET_LEN (sizeof secret - 1)
#define EXPIRES 1767225600000ull

/* Python 3, standard library:
 *   sid = bytes(range(0x10, 0x20)); exp = 1767225600000; ak = b"AKIDEXAMPLE"
 *   hmac.new(b"cluster-secret-for-tests",
 *            b"lode-session-v1" + sid + struct.pack(">Q", exp) + ak, hashlib.sha256).hexdigest() */
static const char mac_hex[] = "c44c8d701b02a8bac46efa2c3afc6beb96b7f3ee92d5741697ce5c6544d0639a";

/* b"LDP1" + struct.pack("<HH", 1, 0) + sid + struct.pack("<Q", exp) + mac
 *   + struct.pack("<HH", len(ak), 0) + ak.ljust(28, b"\0") */
static const char hello_hex[] =
    "4c44503101000000101112131415161718191a1b1c1d1e1f00a8da769b010000c44c8d701b02a8bac46efa2c3a"
    "fc6beb96b7f3ee92d5741697ce5c6544d0639a0b000000414b49444558414d504c45000000000000000000000000"
    "0000000000";

static void make_cred(struct cmn_dp_cred *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 16; i++)
        c->sid[i] = (uint8_t)(0x10 + i);
    c->expires_ms = EXPIRES;
    cmn_dp_cred_set_key(c, "AKIDEXAMPLE", 11);
}

static void test_crc(void)
{
    /* The CRC-32C check value, and the three 32-byte vectors of RFC 3720, appendix B.4. */
    is_int(cmn_dp_crc32c(0, "123456789", 9), 0xe3069283u, "crc32c check value");
    uint8_t b[32];
    memset(b, 0, sizeof b);
    is_int(cmn_dp_crc32c(0, b, 32), 0x8a9136aau, "crc32c of 32 zero bytes (RFC 3720)");
    memset(b, 0xff, sizeof b);
    is_int(cmn_dp_crc32c(0, b, 32), 0x62a8ab43u, "crc32c of 32 0xff bytes (RFC 3720)");
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    is_int(cmn_dp_crc32c(0, b, 32), 0x46dd794eu, "crc32c of 0..31 (RFC 3720)");
    is_int(cmn_dp_crc32c(cmn_dp_crc32c(0, b, 10), b + 10, 22), 0x46dd794eu, "crc32c chains");
}

static void test_mac(void)
{
    struct cmn_dp_cred c;
    make_cred(&c);
    uint8_t want[32], got[32];
    unhex(mac_hex, want);
    is_int(cmn_dp_cred_mac(secret, SECRET_LEN, &c, got), 0, "mac computed");
    ok(memcmp(got, want, 32) == 0, "mac matches HMAC-SHA256 of the documented input");
    is_int(cmn_dp_cred_sign(secret, SECRET_LEN, &c), 0, "sign");
    ok(memcmp(c.mac, want, 32) == 0, "sign stores the mac");

    struct cmn_err e;
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &c, EXPIRES - 1, &e), 0,
           "genuine credential verifies one ms before expiry");
    cmn_err_clear(&e);
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &c, EXPIRES, &e), LODE_ETIMEOUT,
           "expired at expires_ms");
    ok(strstr(e.msg, "expired") != NULL, "message says expired: %s", e.msg);
    is_int(cmn_dp_code_from_err(LODE_ETIMEOUT), CMN_DP_CODE_EXPIRED, "expired -> code 2");

    struct cmn_dp_cred f = c;
    f.mac[31] ^= 1;
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &f, 0, &e), LODE_EAUTH, "flipped mac bit");
    is_int(cmn_dp_code_from_err(LODE_EAUTH), CMN_DP_CODE_BAD_MAC, "bad mac -> code 1");
    f = c;
    f.expires_ms++;
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &f, 0, &e), LODE_EAUTH,
           "extended expiry breaks the mac");
    f = c;
    cmn_dp_cred_set_key(&f, "AKIDEXAMPLF", 11);
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &f, 0, &e), LODE_EAUTH,
           "another access key breaks the mac");
    f = c;
    f.sid[0] ^= 0x80;
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &f, 0, &e), LODE_EAUTH,
           "another sid breaks the mac");
    is_int(cmn_dp_cred_verify("other", 5, &c, 0, &e), LODE_EAUTH, "another secret: bad mac");
    /* An expired forgery must say "bad MAC", not "expired": only genuine ones learn that. */
    f = c;
    f.mac[0] ^= 1;
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &f, EXPIRES + 10, &e), LODE_EAUTH,
           "mac checked before expiry");
    f = c;
    f.access_key_len = 0;
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &f, 0, &e), LODE_EAUTH, "empty key refused");
    is_int(cmn_dp_cred_mac(secret, 0, &c, got), -EINVAL, "empty secret refused");
    is_int(cmn_dp_cred_set_key(&f, "0123456789012345678901234567", 28), 0, "28-byte key ok");
    is_int(cmn_dp_cred_set_key(&f, "01234567890123456789012345678", 29), -EINVAL,
           "29-byte key refused");
    is_int(cmn_dp_cred_set_key(&f, "", 0), -EINVAL, "empty key refused");
}

static void test_hello(void)
{
    struct cmn_dp_cred c, d;
    make_cred(&c);
    cmn_dp_cred_sign(secret, SECRET_LEN, &c);
    uint8_t want[CMN_DP_HELLO_SIZE], buf[CMN_DP_HELLO_SIZE];
    is_int(unhex(hello_hex, want), CMN_DP_HELLO_SIZE, "reference hello is 96 bytes");
    is_int(cmn_dp_hello_encode(&c, buf), 0, "hello encodes");
    ok(memcmp(buf, want, sizeof buf) == 0, "hello bytes match the struct.pack reference");
    struct cmn_err e;
    cmn_err_clear(&e);
    is_int(cmn_dp_hello_decode(want, &d, &e), 0, "reference hello decodes");
    ok(memcmp(d.sid, c.sid, 16) == 0 && d.expires_ms == EXPIRES &&
           memcmp(d.mac, c.mac, 32) == 0 && d.access_key_len == 11 &&
           strcmp(d.access_key, "AKIDEXAMPLE") == 0,
       "decoded fields");
    is_int(cmn_dp_cred_verify(secret, SECRET_LEN, &d, 0, &e), 0, "decoded credential verifies");

    static const struct {
        size_t at;
        uint8_t val;
        int want;
        const char *what;
    } bad[] = {
        {0, 'X', LODE_EBADMSG, "bad magic"},
        {4, 2, LODE_EVERSION, "version 2"},
        {5, 1, LODE_EVERSION, "version 257"},
        {6, 1, LODE_EBADMSG, "flags set"},
        {66, 1, LODE_EBADMSG, "pad set"},
        {64, 0, LODE_EBADMSG, "key length 0"},
        {64, 29, LODE_EBADMSG, "key length 29"},
        {65, 1, LODE_EBADMSG, "key length 267"},
        {79, 'x', LODE_EBADMSG, "byte after the key not zero"},
        {95, 1, LODE_EBADMSG, "last byte not zero"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(buf, want, sizeof buf);
        buf[bad[i].at] = bad[i].val;
        cmn_err_clear(&e);
        int rc = cmn_dp_hello_decode(buf, &d, &e);
        is_int(rc, bad[i].want, "hello refused: %s", bad[i].what);
        ok(e.msg[0] != '\0' && d.access_key_len == 0, "  with a message, output zeroed: %s",
           e.msg);
    }
    /* A 28-byte key fills the field exactly. */
    memcpy(buf, want, sizeof buf);
    buf[64] = 28;
    memset(buf + 68, 'k', 28);
    is_int(cmn_dp_hello_decode(buf, &d, &e), 0, "28-byte key decodes");
    is_int(d.access_key_len, 28, "  length 28");
    is_int(d.access_key[28], 0, "  NUL-terminated");
    struct cmn_dp_cred nokey = c;
    nokey.access_key_len = 0;
    is_int(cmn_dp_hello_encode(&nokey, buf), -EINVAL, "encode refuses an empty key");
}

static void test_reply(void)
{
    /* b"LDP1" + struct.pack("<HHQ", 2, 4, 0x80000003) */
    uint8_t want[16], buf[16];
    unhex("4c445031020004000300008000000000", want);
    struct cmn_dp_reply r = {.kind = CMN_DP_REPLY_ERR, .code = CMN_DP_CODE_IN_USE,
                             .source_id = 0x80000003};
    cmn_dp_reply_encode(&r, buf);
    ok(memcmp(buf, want, 16) == 0, "HELLO_ERR bytes match the reference");
    struct cmn_dp_reply d;
    struct cmn_err e;
    is_int(cmn_dp_reply_decode(want, &d, &e), 0, "reply decodes");
    ok(d.kind == 2 && d.code == 4 && d.source_id == 0x80000003, "reply fields");
    r = (struct cmn_dp_reply){.kind = CMN_DP_REPLY_OK, .code = 0, .source_id = 7};
    cmn_dp_reply_encode(&r, buf);
    is_int(cmn_dp_reply_decode(buf, &d, &e), 0, "HELLO_OK decodes");
    buf[6] = 1;
    is_int(cmn_dp_reply_decode(buf, &d, &e), LODE_EBADMSG, "OK with a code refused");
    memcpy(buf, want, 16);
    buf[6] = 0;
    is_int(cmn_dp_reply_decode(buf, &d, &e), LODE_EBADMSG, "ERR without a code refused");
    memcpy(buf, want, 16);
    buf[4] = 3;
    is_int(cmn_dp_reply_decode(buf, &d, &e), LODE_EBADMSG, "unknown kind refused");
    memcpy(buf, want, 16);
    buf[3] = 'D';
    is_int(cmn_dp_reply_decode(buf, &d, &e), LODE_EBADMSG, "DATA magic is not a reply");
    is_str(cmn_dp_code_text(CMN_DP_CODE_BUSY), "source busy (session table full)", "code text");
    is_str(cmn_dp_code_text(99), "unknown code", "unknown code text");
}

static void test_data(void)
{
    /* h = b"LDPD" + struct.pack("<IQQI", 4096, 0x7f0012345000, 0x7f0012340000, 0x9e3779b9);
     * h + struct.pack("<I", crc32c(h)), crc32c written bitwise (poly 0x82f63b78, reflected) */
    uint8_t want[32], buf[32];
    unhex("4c4450440010000000503412007f000000003412007f0000b979379e2622d70e", want);
    struct cmn_dp_data_hdr h = {.len = 4096, .addr = 0x7f0012345000ull,
                                .window_base = 0x7f0012340000ull, .tag = 0x9e3779b9u};
    cmn_dp_data_encode(&h, buf);
    ok(memcmp(buf, want, 32) == 0, "DATA header bytes match the reference");
    struct cmn_dp_data_hdr d;
    struct cmn_err e;
    is_int(cmn_dp_data_decode(want, 0, &d, &e), 0, "header decodes");
    ok(d.len == 4096 && d.addr == h.addr && d.window_base == h.window_base &&
           d.tag == 0x9e3779b9u,
       "header fields, tag included");
    is_int(cmn_dp_data_decode(want, 4096, &d, &e), 0, "len == max_frame accepted");
    is_int(cmn_dp_data_decode(want, 4095, &d, &e), LODE_EFRAMETOOBIG, "len > max_frame refused");
    /* Any single flipped bit in the first 28 bytes (the tag's included) must be caught by the
     * CRC (or magic). */
    int caught = 0;
    for (int bit = 0; bit < 32 * 8; bit++) {
        memcpy(buf, want, 32);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (cmn_dp_data_decode(buf, 0, &d, &e) == LODE_EBADMSG)
            caught++;
    }
    is_int(caught, 256, "every single-bit error in the header is refused");
    /* The same header with tag 0, as the version without tags wrote it: the tag moves the
     * CRC (reference: the struct.pack line above with 0 for the tag). */
    unhex("4c4450440010000000503412007f000000003412007f000000000000fbb55786", want);
    h.tag = 0;
    cmn_dp_data_encode(&h, buf);
    ok(memcmp(buf, want, 32) == 0, "tag 0 header bytes match the reference");
    is_int(cmn_dp_data_decode(buf, 0, &d, &e), 0, "tag 0 decodes (it just names no window)");
    h.tag = UINT32_MAX;
    cmn_dp_data_encode(&h, buf);
    ok(cmn_dp_data_decode(buf, 0, &d, &e) == 0 && d.tag == UINT32_MAX, "tag 0xffffffff");
    h.tag = 1;
    h.len = 0;
    cmn_dp_data_encode(&h, buf);
    is_int(cmn_dp_data_decode(buf, 0, &d, &e), LODE_EBADMSG, "empty payload refused");
    h.len = CMN_DP_MAX_FRAME_DEFAULT + 1;
    cmn_dp_data_encode(&h, buf);
    is_int(cmn_dp_data_decode(buf, 0, &d, &e), LODE_EFRAMETOOBIG, "default max frame applies");
}

static void test_range(void)
{
    ok(cmn_dp_range_inside(1000, 100, 1000, 100), "whole window");
    ok(cmn_dp_range_inside(1000, 100, 1099, 1), "last byte");
    ok(!cmn_dp_range_inside(1000, 100, 1099, 2), "one past the end");
    ok(!cmn_dp_range_inside(1000, 100, 999, 1), "one before the start");
    ok(cmn_dp_range_inside(1000, 100, 1100, 0), "empty range at the end");
    ok(!cmn_dp_range_inside(1000, 100, 1101, 0), "empty range past the end");
    ok(!cmn_dp_range_inside(1000, 100, UINT64_MAX, 2), "addr + len wraps");
    ok(!cmn_dp_range_inside(1000, 100, 1050, UINT64_MAX - 10), "huge len wraps");
    /* [2^64 - 10, 2^64): the last byte is UINT64_MAX. */
    ok(cmn_dp_range_inside(UINT64_MAX - 9, 10, UINT64_MAX - 1, 2), "window at the top");
    ok(!cmn_dp_range_inside(UINT64_MAX - 9, 10, UINT64_MAX - 1, 3), "past the top");
}

int main(void)
{
    test_crc();
    test_mac();
    test_hello();
    test_reply();
    test_data();
    test_range();
    return tap_done();
}
