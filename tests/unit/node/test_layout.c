/* The on-disk format (node/layout.h, node/store_layout.h): sizes and offsets, record size
 * arithmetic, encode/decode round trips, and rejection of every kind of damage. */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxh_x86dispatch.h>

#include "node/layout.h"
#include "node/store_layout.h"
#include "tests/tap.h"

static void test_sizes(void)
{
    is_int(sizeof(struct node_superblock), 4096, "superblock is 4096 bytes");
    is_int(offsetof(struct node_superblock, format), 8, "sb.format at 8");
    is_int(offsetof(struct node_superblock, block_size), 12, "sb.block_size at 12");
    is_int(offsetof(struct node_superblock, node_uuid), 16, "sb.node_uuid at 16");
    is_int(offsetof(struct node_superblock, disk_uuid), 32, "sb.disk_uuid at 32");
    is_int(offsetof(struct node_superblock, cluster), 48, "sb.cluster at 48");
    is_int(offsetof(struct node_superblock, created_ms), 112, "sb.created_ms at 112");
    is_int(offsetof(struct node_superblock, volume_size), 120, "sb.volume_size at 120");
    is_int(offsetof(struct node_superblock, checksum), 4088, "sb.checksum at 4088");
    is_int(sizeof(struct node_volume_header), 64, "volume header is 64 bytes");
    is_int(offsetof(struct node_volume_header, volume_id), 12, "vh.volume_id at 12");
    is_int(offsetof(struct node_volume_header, salt), 32, "vh.salt at 32");
    is_int(offsetof(struct node_volume_header, size), 48, "vh.size at 48");
    is_int(offsetof(struct node_volume_header, checksum), 56, "vh.checksum at 56");
    is_int(sizeof(struct node_record_header), 64, "record header is 64 bytes");
    is_int(offsetof(struct node_record_header, type), 6, "rh.type at 6");
    is_int(offsetof(struct node_record_header, chunk_id), 8, "rh.chunk_id at 8");
    is_int(offsetof(struct node_record_header, length), 24, "rh.length at 24");
    is_int(offsetof(struct node_record_header, hash), 32, "rh.hash at 32");
    is_int(offsetof(struct node_record_header, seq), 40, "rh.seq at 40");
    is_int(offsetof(struct node_record_header, created_ms), 48, "rh.created_ms at 48");
    is_int(offsetof(struct node_record_header, synced_upto), 56, "rh.synced_upto at 56");
    is_int(offsetof(struct node_record_header, header_check), 60, "rh.header_check at 60");
}

static void test_record_math(void)
{
    is_int(node_record_n_sums(1), 1, "1 byte: one checksum");
    is_int(node_record_n_sums(NODE_SUM_BLOCK), 1, "64 KiB: one checksum");
    is_int(node_record_n_sums(NODE_SUM_BLOCK + 1), 2, "64 KiB + 1: two checksums");
    is_int(node_record_n_sums(8u << 20), 128, "8 MiB: 128 checksums");
    is_int(NODE_REC_HEAD, 128, "two 64-byte header copies");
    is_int(node_record_data_offset(1), 136, "data after both header copies and one checksum");
    is_int(node_record_data_offset(16), 128 + 128, "data after 16 checksums");
    is_int(node_record_size(1, 512), 512, "1-byte chunk fills one 512-byte block");
    is_int(node_record_size(512 - 136, 512), 512, "exactly one block");
    is_int(node_record_size(512 - 135, 512), 1024, "one byte more: two blocks");
    is_int(node_record_size(4096, 512), 4608, "4 KiB chunk at 512-byte blocks");
    is_int(node_record_size(4096, 4096), 8192, "4 KiB chunk at 4 KiB blocks");
    is_int(node_record_size(1u << 20, 4096), 1052672, "1 MiB chunk at 4 KiB blocks");
    is_int(node_record_size(4096 - 136, 4096), 4096, "the largest chunk in one 4 KiB block");
    ok(node_record_size(12345, 4096) % 4096 == 0, "sizes are block multiples");
}

static void fill_sb(struct node_superblock *sb)
{
    memset(sb, 0, sizeof(*sb));
    sb->block_size = 4096;
    for (int i = 0; i < 16; i++) {
        sb->node_uuid[i] = (uint8_t)(i + 1);
        sb->disk_uuid[i] = (uint8_t)(0xa0 + i);
    }
    strcpy(sb->cluster, "prod-east");
    sb->created_ms = 1700000000123ull;
    sb->volume_size = 256ull << 20;
}

/* Rewrites the superblock checksum of an image after a deliberate field change. */
static void sb_reseal(uint8_t *img)
{
    uint64_t sum = htole64(XXH3_64bits_dispatch(img, 4088));
    memcpy(img + 4088, &sum, 8);
}

static void test_superblock(void)
{
    struct node_superblock sb, back;
    static uint8_t img[NODE_SB_SIZE], bad[NODE_SB_SIZE];
    struct cmn_err err;
    fill_sb(&sb);
    node_sb_encode(&sb, img);
    ok(!memcmp(img, NODE_SB_MAGIC, 8), "superblock magic first");
    uint64_t vs;
    memcpy(&vs, img + 120, 8);
    is_int(le64toh(vs), 256ull << 20, "volume_size stored little-endian at 120");
    is_int(node_sb_decode(img, sizeof(img), &back, &err), 0, "superblock decodes");
    ok(!memcmp(back.node_uuid, sb.node_uuid, 16) && !memcmp(back.disk_uuid, sb.disk_uuid, 16),
       "uuids round trip");
    is_str(back.cluster, "prod-east", "cluster round trips");
    is_int(back.block_size, 4096, "block size round trips");
    is_int(back.created_ms, 1700000000123ull, "created_ms round trips");
    is_int(back.volume_size, 256ull << 20, "volume size round trips");

    /* every single-byte change is caught */
    int caught = 0;
    for (size_t i = 0; i < NODE_SB_SIZE; i += 7) {
        memcpy(bad, img, sizeof(bad));
        bad[i] ^= 0x10;
        caught += node_sb_decode(bad, sizeof(bad), &back, NULL) == LODE_EWRONGDISK;
    }
    is_int(caught, (NODE_SB_SIZE + 6) / 7, "every flipped byte is rejected");
    memcpy(bad, img, sizeof(bad));
    bad[0] = 'X';
    node_sb_decode(bad, sizeof(bad), &back, &err);
    ok(strstr(err.msg, "magic") != NULL, "bad magic says so: %s", err.msg);
    memcpy(bad, img, sizeof(bad));
    bad[60] ^= 1;
    is_int(node_sb_decode(bad, sizeof(bad), &back, &err), LODE_EWRONGDISK, "flip in cluster");
    ok(strstr(err.msg, "checksum") != NULL, "checksum failure says so: %s", err.msg);
    is_int(node_sb_decode(img, NODE_SB_SIZE - 1, &back, &err), LODE_EWRONGDISK, "short image");
    is_int(node_sb_decode(img, NODE_SB_SIZE + 1, &back, &err), LODE_EWRONGDISK, "long image");

    memcpy(bad, img, sizeof(bad));
    uint32_t f = htole32(NODE_DISK_FORMAT + 1);
    memcpy(bad + 8, &f, 4);
    sb_reseal(bad);
    is_int(node_sb_decode(bad, sizeof(bad), &back, &err), LODE_EWRONGDISK, "a newer format refused");
    ok(strstr(err.msg, "format") != NULL, "unknown format says so: %s", err.msg);
    memcpy(bad, img, sizeof(bad));
    uint32_t b = htole32(3000);
    memcpy(bad + 12, &b, 4);
    sb_reseal(bad);
    is_int(node_sb_decode(bad, sizeof(bad), &back, &err), LODE_EWRONGDISK,
           "block size not a power of two refused");
    memcpy(bad, img, sizeof(bad));
    memset(bad + 48, 'a', 64);
    sb_reseal(bad);
    is_int(node_sb_decode(bad, sizeof(bad), &back, &err), LODE_EWRONGDISK,
           "unterminated cluster name refused");
    memcpy(bad, img, sizeof(bad));
    uint64_t v = htole64((256ull << 20) + 100);
    memcpy(bad + 120, &v, 8);
    sb_reseal(bad);
    is_int(node_sb_decode(bad, sizeof(bad), &back, &err), LODE_EWRONGDISK,
           "volume size not a block multiple refused");
}

static void test_volume_header(void)
{
    struct node_volume_header vh, back;
    uint8_t img[64], bad[64];
    memset(&vh, 0, sizeof(vh));
    vh.volume_id = 42;
    vh.salt = 0x1122334455667788ull;
    vh.created_ms = 99;
    vh.size = 4u << 20;
    for (int i = 0; i < 16; i++)
        vh.disk_uuid[i] = (uint8_t)i;
    node_vh_encode(&vh, img);
    ok(!memcmp(img, NODE_VOL_MAGIC, 8), "volume magic first");
    is_int(node_vh_decode(img, &back, NULL), 0, "volume header decodes");
    is_int(back.volume_id, 42, "volume id");
    ok(back.salt == vh.salt, "salt");
    is_int(back.size, 4u << 20, "size");
    ok(!memcmp(back.disk_uuid, vh.disk_uuid, 16), "disk uuid");
    int caught = 0;
    for (size_t i = 0; i < 64; i++) {
        memcpy(bad, img, 64);
        bad[i] ^= 0x01;
        caught += node_vh_decode(bad, &back, NULL) == LODE_ECORRUPT;
    }
    is_int(caught, 64, "every flipped bit of the volume header is rejected");
}

static void fill_rh(struct node_record_header *rh)
{
    memset(rh, 0, sizeof(*rh));
    rh->type = NODE_REC_CHUNK;
    for (int i = 0; i < 16; i++)
        rh->chunk_id[i] = (uint8_t)(0x30 + i);
    rh->length = 100000;
    rh->hash = 0xfeedfacecafebeefull;
    rh->seq = 77;
    rh->created_ms = 1234;
    rh->synced_upto = 4321;
}

static void test_record_header(void)
{
    const uint64_t salt = 0xabcdef0123456789ull;
    struct node_record_header rh, back;
    uint8_t img[NODE_REC_HEAD], bad[NODE_REC_HEAD];
    fill_rh(&rh);
    node_rh_encode(&rh, salt, img);
    uint32_t m;
    memcpy(&m, img, 4);
    is_int(le32toh(m), NODE_REC_MAGIC, "record magic");
    is_int(node_rh_decode(img, salt, &back), NODE_RH_OK, "record header decodes");
    ok(!memcmp(back.chunk_id, rh.chunk_id, 16), "chunk id");
    is_int(back.length, 100000, "length");
    ok(back.hash == rh.hash, "hash");
    is_int(back.seq, 77, "seq");
    is_int(back.created_ms, 1234, "created");
    is_int(back.synced_upto, 4321, "synced_upto");
    is_int(node_record_n_sums(back.length), 2, "two block checksums (derived from length)");
    is_int(back.type, NODE_REC_CHUNK, "type");

    /* The check is keyed by the volume's salt. */
    is_int(node_rh_decode(img, salt + 1, &back), NODE_RH_DAMAGED,
           "another volume's salt: not a valid header");
    int rejected = 0;
    for (size_t i = 0; i < 64; i++) {
        memcpy(bad, img, 64);
        bad[i] ^= 0x04;
        rejected += node_rh_decode(bad, salt, &back) != NODE_RH_OK;
    }
    is_int(rejected, 64, "every flipped bit of a record header is rejected");
    memcpy(bad, img, 64);
    bad[50] ^= 1; /* created_ms: magic, format and type intact */
    is_int(node_rh_decode(bad, salt, &back), NODE_RH_DAMAGED, "damage outside magic: DAMAGED");
    ok(!memcmp(back.chunk_id, rh.chunk_id, 16), "damaged header still names its chunk");
    memcpy(bad, img, 64);
    bad[0] ^= 1;
    is_int(node_rh_decode(bad, salt, &back), NODE_RH_JUNK, "damaged magic: JUNK");

    memset(bad, 0, 64);
    is_int(node_rh_decode(bad, salt, &back), NODE_RH_ZERO, "zeros: ZERO");
    for (int i = 0; i < 64; i++)
        bad[i] = (uint8_t)(i * 37 + 11);
    is_int(node_rh_decode(bad, salt, &back), NODE_RH_JUNK, "random bytes: JUNK");

    /* Client data crafted to look like a header cannot pass without the salt. */
    struct node_record_header forged;
    fill_rh(&forged);
    node_rh_encode(&forged, 0, bad);
    is_int(node_rh_decode(bad, salt, &back), NODE_RH_DAMAGED, "forged with salt 0 fails");

    fill_rh(&rh);
    rh.synced_upto = 0xFFFFFFFFu; /* the decoder does not judge it: the scan knows offsets */
    node_rh_encode(&rh, salt, img);
    is_int(node_rh_decode(img, salt, &back), NODE_RH_OK, "any synced_upto decodes");
    is_int(back.synced_upto, 0xFFFFFFFFu, "synced_upto round-trips its full range");
    fill_rh(&rh);
    rh.length = 0;
    node_rh_encode(&rh, salt, img);
    is_int(node_rh_decode(img, salt, &back), NODE_RH_INVALID, "empty chunk: INVALID");
    fill_rh(&rh);
    rh.type = NODE_REC_TOMBSTONE;
    node_rh_encode(&rh, salt, img);
    is_int(node_rh_decode(img, salt, &back), NODE_RH_INVALID, "tombstone with a length: INVALID");
    rh.length = 0;
    node_rh_encode(&rh, salt, img);
    is_int(node_rh_decode(img, salt, &back), NODE_RH_OK, "tombstone: OK");
    is_int(back.type, NODE_REC_TOMBSTONE, "tombstone type");
    rh.type = NODE_REC_SEAL;
    node_rh_encode(&rh, salt, img);
    is_int(node_rh_decode(img, salt, &back), NODE_RH_OK, "seal: OK");
    rh.type = 9;
    node_rh_encode(&rh, salt, img);
    is_int(node_rh_decode(img, salt, &back), NODE_RH_INVALID, "unknown type: INVALID");
}

/* The mirror: a second copy right after the header, with its own magic and check. */
static void test_record_mirror(void)
{
    const uint64_t salt = 0x1122334455667788ull;
    struct node_record_header rh, back;
    uint8_t img[NODE_REC_HEAD], bad[NODE_REC_HEAD];
    bool degraded = true;
    fill_rh(&rh);
    node_rh_encode(&rh, salt, img);
    uint32_t m;
    memcpy(&m, img + 64, 4);
    is_int(le32toh(m), NODE_REC_MIRROR_MAGIC, "mirror magic at offset 64");
    is_int(node_rh_decode_copy(img + 64, salt, 1, &back), NODE_RH_OK, "the mirror decodes");
    ok(!memcmp(back.chunk_id, rh.chunk_id, 16) && back.length == rh.length &&
           back.hash == rh.hash && back.seq == rh.seq && back.synced_upto == rh.synced_upto,
       "the mirror carries the same fields");
    ok(node_rh_decode_copy(img + 64, salt, 0, &back) != NODE_RH_OK,
       "a mirror is never taken for a header (the scan resynchronises on headers)");
    ok(node_rh_decode_copy(img, salt, 1, &back) != NODE_RH_OK,
       "a header is never taken for a mirror");
    is_int(node_rh_decode_head(img, salt, &back, &degraded), NODE_RH_OK, "intact head: OK");
    ok(!degraded, "intact head: not degraded");

    /* Any single damaged byte in either copy: still identified, but degraded. */
    int identified = 0, flagged = 0;
    for (size_t i = 0; i < NODE_REC_HEAD; i++) {
        memcpy(bad, img, sizeof(img));
        bad[i] ^= (uint8_t)(1u << (i % 8));
        memset(&back, 0, sizeof(back));
        degraded = false;
        if (node_rh_decode_head(bad, salt, &back, &degraded) == NODE_RH_OK &&
            !memcmp(back.chunk_id, rh.chunk_id, 16) && back.length == rh.length &&
            back.hash == rh.hash && back.type == rh.type)
            identified++;
        flagged += degraded;
    }
    is_int(identified, NODE_REC_HEAD, "a flip anywhere in the head keeps the record identified");
    is_int(flagged, NODE_REC_HEAD, "and every such flip is flagged as damage");

    /* The header destroyed (zeros or garbage): the mirror names the chunk. */
    memcpy(bad, img, sizeof(img));
    memset(bad, 0, 64);
    is_int(node_rh_decode_head(bad, salt, &back, &degraded), NODE_RH_OK, "header zeroed: OK");
    ok(degraded && back.seq == 77, "from the mirror, degraded");
    for (int i = 0; i < 64; i++)
        bad[i] = (uint8_t)(i * 91 + 3);
    is_int(node_rh_decode_head(bad, salt, &back, &degraded), NODE_RH_OK,
           "header overwritten: OK from the mirror");
    /* The mirror destroyed: the header alone. */
    memcpy(bad, img, sizeof(img));
    memset(bad + 64, 0xEE, 64);
    is_int(node_rh_decode_head(bad, salt, &back, &degraded), NODE_RH_OK, "mirror destroyed: OK");
    ok(degraded, "mirror destroyed: degraded");

    /* Both copies valid but naming different records: degraded (not one record). */
    struct node_record_header other = rh;
    other.seq = 78;
    uint8_t img2[NODE_REC_HEAD];
    node_rh_encode(&other, salt, img2);
    memcpy(bad, img, 64);
    memcpy(bad + 64, img2 + 64, 64);
    is_int(node_rh_decode_head(bad, salt, &back, &degraded), NODE_RH_OK, "copies differ: OK");
    ok(degraded && back.seq == 77, "copies differ: degraded, the header wins");

    /* Both destroyed: the header's own status, never OK. */
    memcpy(bad, img, sizeof(img));
    bad[10] ^= 1;
    bad[64 + 10] ^= 1;
    is_int(node_rh_decode_head(bad, salt, &back, &degraded), NODE_RH_DAMAGED,
           "both copies damaged: DAMAGED");
    ok(!degraded, "not reported as degraded");
    memset(bad, 0, sizeof(bad));
    is_int(node_rh_decode_head(bad, salt, &back, &degraded), NODE_RH_ZERO, "zeros: ZERO");
    for (size_t i = 0; i < sizeof(bad); i++)
        bad[i] = (uint8_t)(i * 37 + 11);
    is_int(node_rh_decode_head(bad, salt, &back, &degraded), NODE_RH_JUNK, "garbage: JUNK");
    /* Another volume's salt fails both. */
    ok(node_rh_decode_head(img, salt ^ 1, &back, &degraded) != NODE_RH_OK,
       "another volume's salt: no copy passes");
}

static void test_sums(void)
{
    size_t len = 3 * NODE_SUM_BLOCK + 5;
    uint8_t *data = malloc(len);
    uint8_t sums[8 * 4];
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 9));
    uint64_t whole = node_data_sums(data, len, sums);
    ok(whole == XXH3_64bits_dispatch(data, len), "whole hash computed with the block sums");
    ok(whole == node_data_hash(data, len), "node_data_hash is XXH3-64");
    ok(node_sum_get(sums, 3) == XXH3_64bits_dispatch(data + 3 * NODE_SUM_BLOCK, 5),
       "last (short) block checksum");
    ok(node_sums_check(sums, len, 0, 3, data), "all blocks verify");
    ok(node_sums_check(sums, len, 2, 3, data + 2 * NODE_SUM_BLOCK), "blocks 2..3 verify");
    data[2 * NODE_SUM_BLOCK + 100] ^= 0x40;
    ok(!node_sums_check(sums, len, 2, 2, data + 2 * NODE_SUM_BLOCK), "damaged block fails");
    ok(node_sums_check(sums, len, 0, 1, data), "blocks before it still verify");
    ok(node_sums_check(sums, len, 3, 3, data + 3 * NODE_SUM_BLOCK), "block after it verifies");
    ok(!node_sums_check(sums, len, 0, 3, data), "whole range fails");
    ok(!node_sums_check(sums, len, 4, 4, data), "block past the end fails");
    free(data);
}

int main(void)
{
    test_sizes();
    test_record_math();
    test_superblock();
    test_volume_header();
    test_record_header();
    test_record_mirror();
    test_sums();
    return tap_done();
}
