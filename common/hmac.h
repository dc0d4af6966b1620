/* HMAC-SHA256 and constant-time comparison (OpenSSL EVP, fetched once per thread use). */
#ifndef LODE_COMMON_HMAC_H
#define LODE_COMMON_HMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMN_HMAC_SIZE 32

struct cmn_iov_c {
    const void *base;
    size_t len;
};

/* HMAC-SHA256 of the concatenation of `n` pieces. Returns 0 or LODE_EINTERNAL. */
int cmn_hmac_sha256(const void *key, size_t key_len, const struct cmn_iov_c *pieces, size_t n,
                    uint8_t out[CMN_HMAC_SIZE]);

/* SHA-256 of a buffer. Returns 0 or LODE_EINTERNAL. */
int cmn_sha256(const void *data, size_t len, uint8_t out[32]);

/* True when the two buffers are equal; time depends only on len. */
bool cmn_ct_equal(const void *a, const void *b, size_t len);

#endif
