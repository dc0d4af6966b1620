#include "gateway/etag.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lode/errno.h>

#include "common/hmac.h"
#include "common/id.h"

void gw_etag_from_md5(const uint8_t md5[GW_MD5_SIZE], char out[GW_ETAG_MAX])
{
    cmn_hex_encode(md5, GW_MD5_SIZE, out);
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

/* Drops one pair of surrounding double quotes, if both are there. */
static struct gw_str unquote(struct gw_str s)
{
    if (s.n >= 2 && s.p[0] == '"' && s.p[s.n - 1] == '"')
        return (struct gw_str){s.p + 1, s.n - 2};
    return s;
}

bool gw_etag_parse_md5(struct gw_str etag, uint8_t md5[GW_MD5_SIZE])
{
    struct gw_str s = unquote(etag);
    if (s.n != 2 * GW_MD5_SIZE)
        return false;
    uint8_t tmp[GW_MD5_SIZE];
    for (size_t i = 0; i < GW_MD5_SIZE; i++) {
        int hi = hex_value(s.p[2 * i]), lo = hex_value(s.p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        tmp[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(md5, tmp, GW_MD5_SIZE);
    return true;
}

bool gw_etag_equal(struct gw_str client, const char *stored)
{
    struct gw_str s = unquote(client);
    return s.n > 0 && gw_str_ieq(s, stored);
}

int gw_etag_mp_init(struct gw_etag_mp *b)
{
    memset(b, 0, sizeof(*b));
    int rc = gw_cksum_init(&b->md5, GW_CKSUM_MD5);
    if (rc != 0)
        b->err = rc;
    return rc;
}

enum gw_s3_error gw_etag_mp_add(struct gw_etag_mp *b, struct gw_str part_etag, const char **msg)
{
    uint8_t md5[GW_MD5_SIZE];
    if (!gw_etag_parse_md5(part_etag, md5)) {
        *msg = "One or more of the specified parts could not be found. The part may not have "
               "been uploaded, or the specified entity tag may not match the part's entity tag.";
        return GW_S3_INVALID_PART;
    }
    if (b->parts >= GW_MULTIPART_MAX_PARTS) {
        *msg = "Part number must be an integer between 1 and 10000, inclusive.";
        return GW_S3_INVALID_PART;
    }
    gw_cksum_update(&b->md5, md5, sizeof(md5));
    b->parts++;
    return GW_S3_OK;
}

int gw_etag_mp_final(struct gw_etag_mp *b, char out[GW_ETAG_MAX])
{
    out[0] = '\0';
    if (b->err)
        return b->err;
    if (b->parts == 0)
        return -EINVAL;
    struct gw_cksum_value v;
    int rc = gw_cksum_final(&b->md5, &v);
    if (rc != 0)
        return b->err = rc;
    gw_etag_from_md5(v.raw, out);
    snprintf(out + 2 * GW_MD5_SIZE, GW_ETAG_MAX - 2 * GW_MD5_SIZE, "-%u", b->parts);
    return 0;
}

void gw_etag_mp_close(struct gw_etag_mp *b)
{
    gw_cksum_close(&b->md5);
}

enum gw_s3_error gw_etag_multipart(const struct gw_str *part_etags, size_t n,
                                   char out[GW_ETAG_MAX], const char **msg)
{
    out[0] = '\0';
    if (n == 0 || n > GW_MULTIPART_MAX_PARTS) {
        *msg = "A multipart object has between 1 and 10000 parts.";
        return GW_S3_INVALID_PART;
    }
    struct gw_etag_mp b;
    enum gw_s3_error e = GW_S3_OK;
    if (gw_etag_mp_init(&b) != 0) {
        *msg = "Cannot compute MD5.";
        e = GW_S3_INTERNAL_ERROR;
    }
    for (size_t i = 0; e == GW_S3_OK && i < n; i++)
        e = gw_etag_mp_add(&b, part_etags[i], msg);
    if (e == GW_S3_OK && gw_etag_mp_final(&b, out) != 0) {
        *msg = "Cannot compute MD5.";
        e = GW_S3_INTERNAL_ERROR;
    }
    gw_etag_mp_close(&b);
    return e;
}

enum gw_s3_error gw_content_md5_parse(struct gw_str value, uint8_t out[GW_MD5_SIZE],
                                      const char **msg)
{
    struct gw_cksum_value v;
    const char *ignored;
    /* Same strict base64 as the checksum headers; only the S3 error differs. */
    if (gw_cksum_parse(GW_CKSUM_MD5, value, false, &v, &ignored) != GW_S3_OK) {
        *msg = "The Content-MD5 you specified is not valid.";
        return GW_S3_INVALID_DIGEST;
    }
    memcpy(out, v.raw, GW_MD5_SIZE);
    return GW_S3_OK;
}

enum gw_s3_error gw_content_md5_check(const uint8_t claimed[GW_MD5_SIZE],
                                      const uint8_t computed[GW_MD5_SIZE], const char **msg)
{
    if (cmn_ct_equal(claimed, computed, GW_MD5_SIZE))
        return GW_S3_OK;
    *msg = "The Content-MD5 you specified did not match what we received.";
    return GW_S3_BAD_DIGEST;
}
