#include <errno.h>
#include <string.h>

#include "common/id.h"
#include "tests/tap.h"

int main(void)
{
    struct cmn_id a = cmn_id_random(), b = cmn_id_random();
    ok(cmn_id_cmp(&a, &b) != 0, "two random ids differ");
    ok(!cmn_id_is_zero(&a), "random id is not zero");
    struct cmn_id z;
    memset(&z, 0, sizeof(z));
    ok(cmn_id_is_zero(&z), "zero id detected");

    char hex[CMN_ID_HEX_SIZE];
    cmn_id_to_hex(&a, hex);
    is_int(strlen(hex), 32, "hex is 32 digits");
    int lower = 1;
    for (int i = 0; i < 32; i++)
        lower &= (hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f');
    ok(lower, "hex is lower case");
    struct cmn_id back;
    is_int(cmn_id_from_hex(hex, &back), 0, "parse own hex");
    is_int(cmn_id_cmp(&a, &back), 0, "hex round trip");

    struct cmn_id known;
    for (int i = 0; i < CMN_ID_SIZE; i++)
        known.b[i] = (uint8_t)(i * 17);
    cmn_id_to_hex(&known, hex);
    is_str(hex, "00112233445566778899aabbccddeeff", "known id hex");
    is_int(cmn_id_from_hex("00112233445566778899AABBCCDDEEFF", &back), 0, "upper case accepted");
    is_int(cmn_id_cmp(&known, &back), 0, "upper case parses to the same id");

    struct cmn_id untouched = known;
    is_int(cmn_id_from_hex("00112233445566778899aabbccddeef", &untouched), -EINVAL, "31 digits");
    is_int(cmn_id_from_hex("00112233445566778899aabbccddeeff0", &untouched), -EINVAL,
           "33 digits");
    is_int(cmn_id_from_hex("00112233445566778899aabbccddeefg", &untouched), -EINVAL,
           "non-hex digit");
    is_int(cmn_id_from_hex(" 0112233445566778899aabbccddeeff", &untouched), -EINVAL, "space");
    is_int(cmn_id_from_hex("", &untouched), -EINVAL, "empty");
    is_int(cmn_id_from_hex(NULL, &untouched), -EINVAL, "NULL");
    is_int(cmn_id_cmp(&known, &untouched), 0, "failed parse leaves output unchanged");

    struct cmn_id lo = z, hi = z;
    hi.b[0] = 1;
    lo.b[15] = 0xff;
    ok(cmn_id_cmp(&lo, &hi) < 0 && cmn_id_cmp(&hi, &lo) > 0, "cmp is bytewise, first byte first");

    is_int(cmn_id_from_bytes(known.b, 16, &back), 0, "from 16 bytes");
    is_int(cmn_id_cmp(&known, &back), 0, "bytes round trip");
    is_int(cmn_id_from_bytes(known.b, 15, &back), -EINVAL, "15 bytes rejected");
    is_int(cmn_id_from_bytes(known.b, 17, &back), -EINVAL, "17 bytes rejected");

    char out[16];
    cmn_hex_encode("\x00\xff\x10", 3, out);
    is_str(out, "00ff10", "hex_encode");
    cmn_hex_encode("", 0, out);
    is_str(out, "", "hex_encode of nothing");

    uint8_t r1[64], r2[64];
    is_int(cmn_random_bytes(r1, sizeof(r1)), 0, "random bytes");
    is_int(cmn_random_bytes(r2, sizeof(r2)), 0, "random bytes again");
    ok(memcmp(r1, r2, sizeof(r1)) != 0, "random buffers differ");
    int distinct = 0;
    for (int i = 1; i < 64; i++)
        distinct += r1[i] != r1[0];
    ok(distinct > 32, "random bytes are not constant");
    is_int(cmn_random_bytes(r1, 0), 0, "zero-length random");
    return tap_done();
}
