#include "node/store_layout.h"

#include <endian.h>
#include <stddef.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxh_x86dispatch.h>

/* Largest volume a superblock may announce: far above any real volume, low enough that
 * offsets never overflow in the arithmetic of the store. */
#define SB_VOLUME_SIZE_MAX (1ull << 40)

void node_sb_encode(const struct node_superblock *sb, void *out)
{
    struct node_superblock img;
    memset(&img, 0, sizeof(img));
    memcpy(img.magic, NODE_SB_MAGIC, sizeof(img.magic));
    img.format = htole32(NODE_DISK_FORMAT);
    img.block_size = htole32(sb->block_size);
    memcpy(img.node_uuid, sb->node_uuid, sizeof(img.node_uuid));
    memcpy(img.disk_uuid, sb->disk_uuid, sizeof(img.disk_uuid));
    memcpy(img.cluster, sb->cluster, sizeof(img.cluster));
    img.created_ms = htole64(sb->created_ms);
    img.volume_size = htole64(sb->volume_size);
    img.checksum = htole64(XXH3_64bits_dispatch(&img, offsetof(struct node_superblock, checksum)));
    memcpy(out, &img, sizeof(img));
}

int node_sb_decode(const void *buf, size_t len, struct node_superblock *out, struct cmn_err *err)
{
    struct node_superblock img;
    if (len != NODE_SB_SIZE)
        return cmn_err_set(err, LODE_EWRONGDISK, "superblock is %zu bytes, not %d", len,
                           NODE_SB_SIZE);
    memcpy(&img, buf, sizeof(img));
    if (memcmp(img.magic, NODE_SB_MAGIC, sizeof(img.magic)) != 0)
        return cmn_err_set(err, LODE_EWRONGDISK, "not a lode-node superblock (bad magic)");
    uint64_t sum = XXH3_64bits_dispatch(&img, offsetof(struct node_superblock, checksum));
    if (le64toh(img.checksum) != sum)
        return cmn_err_set(err, LODE_EWRONGDISK, "superblock checksum mismatch (damaged)");
    uint32_t format = le32toh(img.format);
    if (format != NODE_DISK_FORMAT)
        return cmn_err_set(err, LODE_EWRONGDISK,
                           "superblock has disk format %u, this build reads format %d", format,
                           NODE_DISK_FORMAT);
    uint32_t bs = le32toh(img.block_size);
    if (bs < 512 || bs > (1u << 20) || (bs & (bs - 1)) != 0)
        return cmn_err_set(err, LODE_EWRONGDISK, "superblock block size %u is invalid", bs);
    uint64_t vsize = le64toh(img.volume_size);
    if (vsize == 0 || vsize > SB_VOLUME_SIZE_MAX || vsize % bs != 0)
        return cmn_err_set(err, LODE_EWRONGDISK, "superblock volume size %llu is invalid",
                           (unsigned long long)vsize);
    if (memchr(img.cluster, 0, sizeof(img.cluster)) == NULL)
        return cmn_err_set(err, LODE_EWRONGDISK, "superblock cluster name is not terminated");
    *out = img;
    out->format = format;
    out->block_size = bs;
    out->created_ms = le64toh(img.created_ms);
    out->volume_size = vsize;
    out->checksum = sum;
    return 0;
}

void node_vh_encode(const struct node_volume_header *vh, void *out)
{
    struct node_volume_header img;
    memset(&img, 0, sizeof(img));
    memcpy(img.magic, NODE_VOL_MAGIC, sizeof(img.magic));
    img.format = htole32(NODE_DISK_FORMAT);
    img.volume_id = htole32(vh->volume_id);
    memcpy(img.disk_uuid, vh->disk_uuid, sizeof(img.disk_uuid));
    img.salt = htole64(vh->salt);
    img.created_ms = htole64(vh->created_ms);
    img.size = htole64(vh->size);
    img.checksum =
        htole64(XXH3_64bits_dispatch(&img, offsetof(struct node_volume_header, checksum)));
    memcpy(out, &img, sizeof(img));
}

int node_vh_decode(const void *buf, struct node_volume_header *out, struct cmn_err *err)
{
    struct node_volume_header img;
    memcpy(&img, buf, sizeof(img));
    if (memcmp(img.magic, NODE_VOL_MAGIC, sizeof(img.magic)) != 0)
        return cmn_err_set(err, LODE_ECORRUPT, "not a volume header (bad magic)");
    uint64_t sum = XXH3_64bits_dispatch(&img, offsetof(struct node_volume_header, checksum));
    if (le64toh(img.checksum) != sum)
        return cmn_err_set(err, LODE_ECORRUPT, "volume header checksum mismatch");
    if (le32toh(img.format) != NODE_DISK_FORMAT)
        return cmn_err_set(err, LODE_ECORRUPT, "volume header format %u unknown",
                           le32toh(img.format));
    *out = img;
    out->format = le32toh(img.format);
    out->volume_id = le32toh(img.volume_id);
    out->salt = le64toh(img.salt);
    out->created_ms = le64toh(img.created_ms);
    out->size = le64toh(img.size);
    out->checksum = sum;
    return 0;
}

static uint32_t rh_check(const void *img, uint64_t salt)
{
    return (uint32_t)XXH3_64bits_withSeed(img, offsetof(struct node_record_header, header_check),
                                          salt);
}

static const uint32_t rh_magic[2] = {NODE_REC_MAGIC, NODE_REC_MIRROR_MAGIC};

void node_rh_encode(const struct node_record_header *rh, uint64_t salt, void *out)
{
    for (unsigned copy = 0; copy < 2; copy++) {
        struct node_record_header img;
        memset(&img, 0, sizeof(img));
        img.magic = htole32(rh_magic[copy]);
        img.format = htole16(NODE_DISK_FORMAT);
        img.type = htole16(rh->type);
        memcpy(img.chunk_id, rh->chunk_id, sizeof(img.chunk_id));
        img.length = htole64(rh->length);
        img.hash = htole64(rh->hash);
        img.seq = htole64(rh->seq);
        img.created_ms = htole64(rh->created_ms);
        img.synced_upto = htole32(rh->synced_upto);
        img.header_check = htole32(rh_check(&img, salt));
        memcpy((uint8_t *)out + copy * sizeof(img), &img, sizeof(img));
    }
}

enum node_rh_status node_rh_decode_copy(const void *buf, uint64_t salt, unsigned copy,
                                        struct node_record_header *out)
{
    struct node_record_header img;
    static const uint8_t zero[sizeof(img)];
    memcpy(&img, buf, sizeof(img));
    if (memcmp(&img, zero, sizeof(img)) == 0)
        return NODE_RH_ZERO;
    uint16_t type = le16toh(img.type);
    bool looks = le32toh(img.magic) == rh_magic[copy ? 1 : 0] &&
                 le16toh(img.format) == NODE_DISK_FORMAT && type >= NODE_REC_CHUNK &&
                 type <= NODE_REC_SEAL;
    bool check_ok = le32toh(img.header_check) == rh_check(&img, salt);
    if (!looks && !check_ok)
        return NODE_RH_JUNK;
    *out = img;
    out->magic = le32toh(img.magic);
    out->format = le16toh(img.format);
    out->type = type;
    out->length = le64toh(img.length);
    out->hash = le64toh(img.hash);
    out->seq = le64toh(img.seq);
    out->created_ms = le64toh(img.created_ms);
    out->synced_upto = le32toh(img.synced_upto);
    out->header_check = le32toh(img.header_check);
    if (!check_ok)
        return NODE_RH_DAMAGED;
    if (!looks)
        return NODE_RH_INVALID;
    if (type == NODE_REC_CHUNK) {
        if (out->length == 0)
            return NODE_RH_INVALID;
    } else if (out->length != 0) {
        return NODE_RH_INVALID;
    }
    return NODE_RH_OK;
}

enum node_rh_status node_rh_decode(const void *buf, uint64_t salt, struct node_record_header *out)
{
    return node_rh_decode_copy(buf, salt, 0, out);
}

/* The copies agree on everything but their magic and check. */
static bool same_record(const struct node_record_header *a, const struct node_record_header *b)
{
    return a->type == b->type && !memcmp(a->chunk_id, b->chunk_id, sizeof(a->chunk_id)) &&
           a->length == b->length && a->hash == b->hash && a->seq == b->seq &&
           a->created_ms == b->created_ms && a->synced_upto == b->synced_upto;
}

enum node_rh_status node_rh_decode_head(const void *buf, uint64_t salt,
                                        struct node_record_header *out, bool *degraded)
{
    struct node_record_header h, m;
    memset(&h, 0, sizeof(h));
    memset(&m, 0, sizeof(m));
    enum node_rh_status hs = node_rh_decode_copy(buf, salt, 0, &h);
    enum node_rh_status ms =
        node_rh_decode_copy((const uint8_t *)buf + sizeof(h), salt, 1, &m);
    *degraded = false;
    if (hs == NODE_RH_OK) {
        *out = h;
        *degraded = ms != NODE_RH_OK || !same_record(&h, &m);
        return NODE_RH_OK;
    }
    if (ms == NODE_RH_OK) {
        *out = m;
        *degraded = true;
        return NODE_RH_OK;
    }
    if (hs != NODE_RH_ZERO && hs != NODE_RH_JUNK)
        *out = h;
    return hs;
}

const char *node_rh_status_name(enum node_rh_status s)
{
    switch (s) {
    case NODE_RH_OK: return "ok";
    case NODE_RH_ZERO: return "zeros";
    case NODE_RH_JUNK: return "not a record header";
    case NODE_RH_DAMAGED: return "damaged record header (checksum mismatch)";
    case NODE_RH_INVALID: return "inconsistent record header";
    }
    return "?";
}

uint64_t node_data_hash(const void *data, size_t len)
{
    return XXH3_64bits_dispatch(data, len);
}

uint64_t node_data_sums(const void *data, size_t len, void *sums)
{
    XXH3_state_t st;
    const uint8_t *p = data;
    uint8_t *out = sums;
    XXH3_64bits_reset(&st);
    for (size_t off = 0; off < len; off += NODE_SUM_BLOCK) {
        size_t n = len - off < NODE_SUM_BLOCK ? len - off : NODE_SUM_BLOCK;
        uint64_t s = htole64(XXH3_64bits_dispatch(p + off, n));
        memcpy(out, &s, sizeof(s));
        out += sizeof(s);
        XXH3_64bits_update_dispatch(&st, p + off, n);
    }
    return XXH3_64bits_digest(&st);
}

uint64_t node_sum_get(const void *sums, uint32_t i)
{
    uint64_t v;
    memcpy(&v, (const uint8_t *)sums + 8ull * i, sizeof(v));
    return le64toh(v);
}

bool node_sums_check(const void *sums, uint64_t length, uint32_t first, uint32_t last,
                     const void *data)
{
    const uint8_t *p = data;
    for (uint32_t i = first; i <= last; i++) {
        uint64_t start = (uint64_t)i * NODE_SUM_BLOCK;
        if (start >= length)
            return false;
        uint64_t n = length - start < NODE_SUM_BLOCK ? length - start : NODE_SUM_BLOCK;
        if (XXH3_64bits_dispatch(p, n) != node_sum_get(sums, i))
            return false;
        p += n;
    }
    return true;
}
