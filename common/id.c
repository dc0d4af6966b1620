#include "common/id.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int cmn_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        /* getrandom returns at most 32 MiB per call and may be interrupted by a signal
         * before the pool is initialised; loop until everything is filled. */
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

struct cmn_id cmn_id_random(void)
{
    struct cmn_id id;
    int rc = cmn_random_bytes(id.b, sizeof(id.b));
    if (rc) {
        /* A predictable id could alias another node's chunk or upload; refuse to go on. */
        fprintf(stderr, "fatal: getrandom failed: %s\n", strerrordesc_np(-rc));
        abort();
    }
    return id;
}

bool cmn_id_is_zero(const struct cmn_id *id)
{
    for (size_t i = 0; i < CMN_ID_SIZE; i++)
        if (id->b[i])
            return false;
    return true;
}

int cmn_id_cmp(const struct cmn_id *a, const struct cmn_id *b)
{
    int c = memcmp(a->b, b->b, CMN_ID_SIZE);
    return (c > 0) - (c < 0);
}

void cmn_hex_encode(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * len] = '\0';
}

void cmn_id_to_hex(const struct cmn_id *id, char out[CMN_ID_HEX_SIZE])
{
    cmn_hex_encode(id->b, CMN_ID_SIZE, out);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cmn_id_from_hex(const char *hex, struct cmn_id *out)
{
    if (!hex || strlen(hex) != 2 * CMN_ID_SIZE)
        return -EINVAL;
    struct cmn_id id;
    for (size_t i = 0; i < CMN_ID_SIZE; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        id.b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = id;
    return 0;
}

int cmn_id_from_bytes(const void *data, size_t len, struct cmn_id *out)
{
    if (!data || len != CMN_ID_SIZE)
        return -EINVAL;
    memcpy(out->b, data, CMN_ID_SIZE);
    return 0;
}
