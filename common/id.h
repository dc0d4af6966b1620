/* 128-bit identifiers (node uuids, chunk ids, upload ids, client ids) and random bytes.
 *
 * Ids are random (getrandom), compared as bytes, printed as 32 lower-case hex digits.
 */
#ifndef LODE_COMMON_ID_H
#define LODE_COMMON_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMN_ID_SIZE 16
#define CMN_ID_HEX_SIZE 33      /* 32 digits + NUL */

struct cmn_id {
    uint8_t b[CMN_ID_SIZE];
};

/* Fills buf with cryptographically secure random bytes. Returns 0 or -errno. */
int cmn_random_bytes(void *buf, size_t len);

/* A fresh random id. Aborts if the kernel cannot supply randomness (it always can on
 * Linux >= 3.17 once booted); ids must never be predictable or repeated. */
struct cmn_id cmn_id_random(void);

bool cmn_id_is_zero(const struct cmn_id *id);
int cmn_id_cmp(const struct cmn_id *a, const struct cmn_id *b);
void cmn_id_to_hex(const struct cmn_id *id, char out[CMN_ID_HEX_SIZE]);
/* Parses exactly 32 hex digits (either case). Returns 0 or -EINVAL. */
int cmn_id_from_hex(const char *hex, struct cmn_id *out);
/* From a 16-byte buffer (protobuf bytes field). Returns 0 or -EINVAL if len != 16. */
int cmn_id_from_bytes(const void *data, size_t len, struct cmn_id *out);

/* Lower-case hex of any byte string into out (2*len+1 bytes). */
void cmn_hex_encode(const void *data, size_t len, char *out);

#endif
