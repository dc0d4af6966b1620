#include <string.h>

#include "common/hmac.h"
#include "common/id.h"
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

/* A field is either hex or `fill` repeated `n` times (hex == NULL). */
struct field {
    const char *hex;
    uint8_t fill;
    size_t n;
};

struct vector {
    struct field key, data;
    const char *mac_hex;
    size_t truncate; /* RFC 4231 case 5 checks only the first 128 bits */
};

/* RFC 4231, section 4, HMAC-SHA-256 results. */
static const struct vector rfc4231[] = {
    {{NULL, 0x0b, 20}, {"4869205468657265", 0, 0},
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32},
    {{"4a656665", 0, 0}, {"7768617420646f2079612077616e7420666f72206e6f7468696e673f", 0, 0},
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32},
    {{NULL, 0xaa, 20}, {NULL, 0xdd, 50},
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32},
    {{"0102030405060708090a0b0c0d0e0f10111213141516171819", 0, 0}, {NULL, 0xcd, 50},
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32},
    {{NULL, 0x0c, 20}, {"546573742057697468205472756e636174696f6e", 0, 0},
     "a3b6167473100ee06e0c796c2955552b", 16},
    {{NULL, 0xaa, 131},
     {"54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368"
      "204b6579204669727374",
      0, 0},
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32},
    {{NULL, 0xaa, 131},
     {"5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a"
      "65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865"
      "206b6579206e6565647320746f20626520686173686564206265666f7265206265696e672075736564206279"
      "2074686520484d414320616c676f726974686d2e",
      0, 0},
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32},
};

static size_t field_bytes(const struct field *f, uint8_t *out)
{
    if (f->hex)
        return unhex(f->hex, out);
    memset(out, f->fill, f->n);
    return f->n;
}

int main(void)
{
    uint8_t key[256], data[256], want[32], mac[32];
    char hex[65];
    for (size_t i = 0; i < sizeof(rfc4231) / sizeof(rfc4231[0]); i++) {
        size_t klen = field_bytes(&rfc4231[i].key, key);
        size_t dlen = field_bytes(&rfc4231[i].data, data);
        size_t wlen = unhex(rfc4231[i].mac_hex, want);
        struct cmn_iov_c piece = {data, dlen};
        memset(mac, 0, sizeof(mac));
        int rc = cmn_hmac_sha256(key, klen, &piece, 1, mac);
        cmn_hex_encode(mac, rfc4231[i].truncate, hex);
        ok(rc == 0 && wlen == rfc4231[i].truncate && memcmp(mac, want, wlen) == 0,
           "RFC 4231 test case %zu (%s)", i + 1, hex);

        /* The same message split into pieces (with an empty one) gives the same MAC. */
        size_t cut = dlen / 3;
        struct cmn_iov_c split[] = {{data, cut}, {NULL, 0}, {data + cut, dlen - cut}};
        uint8_t mac2[32];
        rc = cmn_hmac_sha256(key, klen, split, 3, mac2);
        ok(rc == 0 && memcmp(mac, mac2, 32) == 0, "test case %zu in pieces", i + 1);
    }

    /* Empty key and empty message (well-known value). */
    uint8_t empty_mac[32];
    is_int(cmn_hmac_sha256(NULL, 0, NULL, 0, empty_mac), 0, "HMAC with empty key and message");
    cmn_hex_encode(empty_mac, 32, hex);
    is_str(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
           "HMAC-SHA256('', '')");

    uint8_t digest[32];
    is_int(cmn_sha256("abc", 3, digest), 0, "sha256 of abc");
    cmn_hex_encode(digest, 32, hex);
    is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "SHA-256('abc')");
    is_int(cmn_sha256(NULL, 0, digest), 0, "sha256 of nothing");
    cmn_hex_encode(digest, 32, hex);
    is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "SHA-256('')");

    uint8_t a[32], b[32];
    memset(a, 0x5a, sizeof(a));
    memcpy(b, a, sizeof(b));
    ok(cmn_ct_equal(a, b, 32), "equal buffers");
    b[31] ^= 1;
    ok(!cmn_ct_equal(a, b, 32), "last byte differs");
    ok(cmn_ct_equal(a, b, 31), "prefix equal");
    b[31] ^= 1;
    b[0] ^= 0x80;
    ok(!cmn_ct_equal(a, b, 32), "first byte differs");
    ok(cmn_ct_equal(a, b, 0), "zero length is equal");
    return tap_done();
}
