/* On-disk format of a lode-node data directory (docs/disk-format.md is the prose version).
 *
 *   DIR/superblock          one block: who this disk belongs to
 *   DIR/LOCK                flock(2): one process per directory
 *   DIR/volumes/%08u.vol    append-only volume files, preallocated (fallocate: reads as zeros)
 *
 * All integers are little-endian. Every structure carries its own checksum. Records start at
 * multiples of the directory's block size (the O_DIRECT alignment, >= 512), so a whole record
 * is written by one aligned write and a range of it is read by one aligned read.
 */
#ifndef LODE_NODE_LAYOUT_H
#define LODE_NODE_LAYOUT_H

#include <stdint.h>

#define NODE_DISK_FORMAT 2

/* ---- superblock: DIR/superblock, NODE_SB_SIZE bytes, written once at format time
 * (write to a temp name, fsync, rename, fsync the directory) ---- */
#define NODE_SB_MAGIC "LODESB\0\1"
#define NODE_SB_SIZE 4096
#define NODE_CLUSTER_NAME_MAX 64

struct node_superblock {
    char magic[8];              /*   0 NODE_SB_MAGIC */
    uint32_t format;            /*   8 NODE_DISK_FORMAT */
    uint32_t block_size;        /*  12 record alignment in bytes (power of two, >= 512) */
    uint8_t node_uuid[16];      /*  16 the node this disk belongs to */
    uint8_t disk_uuid[16];      /*  32 this disk */
    char cluster[NODE_CLUSTER_NAME_MAX]; /* 48 cluster name, NUL-padded */
    uint64_t created_ms;        /* 112 */
    uint64_t volume_size;       /* 120 bytes per volume file */
    uint8_t reserved[NODE_SB_SIZE - 136]; /* 128..4087: zero */
    uint64_t checksum;          /* 4088 XXH3-64 of bytes 0..4087 */
} __attribute__((packed));
_Static_assert(sizeof(struct node_superblock) == NODE_SB_SIZE, "superblock size");

/* ---- volume file: a header block, then records ---- */
#define NODE_VOL_MAGIC "LODEVOL1"

/* The first block of every volume. `salt` keys every record header checksum of the volume,
 * so bytes inside chunk data (which clients choose) can never pass as a record header when a
 * scan resynchronises after a torn or missing record. */
struct node_volume_header {
    char magic[8];              /*  0 NODE_VOL_MAGIC */
    uint32_t format;            /*  8 NODE_DISK_FORMAT */
    uint32_t volume_id;         /* 12 matches the file name */
    uint8_t disk_uuid[16];      /* 16 matches the superblock */
    uint64_t salt;              /* 32 random per volume */
    uint64_t created_ms;        /* 40 */
    uint64_t size;              /* 48 preallocated size */
    uint8_t reserved[64 - 56 - 8];
    uint64_t checksum;          /* XXH3-64 of the bytes before it */
} __attribute__((packed));
_Static_assert(sizeof(struct node_volume_header) == 64, "volume header size");

enum node_record_type {
    NODE_REC_CHUNK = 1,         /* header, block sums, data */
    NODE_REC_TOMBSTONE = 2,     /* header only: chunk `id` deleted (seq orders it) */
    NODE_REC_SEAL = 3,          /* header only: the volume is full and was fsynced; no record follows */
};

#define NODE_REC_MAGIC 0x4B43484Cu  /* "LHCK" read little-endian */
#define NODE_REC_MIRROR_MAGIC 0x4D43484Cu /* "LHCM": the second copy of a header */
#define NODE_SUM_BLOCK (64u * 1024) /* data is checksummed per 64 KiB block, for range reads */

/* Every record begins with this header at a block-aligned offset, immediately followed by a
 * second copy of it (the mirror: same fields, magic NODE_REC_MIRROR_MAGIC, its own
 * header_check): NODE_REC_HEAD bytes in all. A header alone is a single point of failure:
 * with its id destroyed, a damaged chunk could not be named in a corruption report; with
 * two copies, one surviving copy still identifies the record (and its length keeps the scan
 * on the record chain). A CHUNK record continues with node_record_n_sums(length) u64 XXH3-64
 * checksums (one per NODE_SUM_BLOCK of data, the
 * last one short), then `length` data bytes, then zero padding to the next block boundary.
 *
 * `synced_upto` is the durable watermark of the volume when the record was issued: every
 * write below that offset (in blocks) had completed and been covered by a completed
 * fdatasync. At start, W = max(synced_upto) over the valid headers of an unsealed volume: a
 * record starting below W was durable (acknowledged-era), so one failing verification there
 * is bit rot, kept and reported as corrupt; at or above W it may be a torn write, dropped.
 * Always <= the record's own offset / block size. */
struct node_record_header {
    uint32_t magic;             /*  0 NODE_REC_MAGIC */
    uint16_t format;            /*  4 NODE_DISK_FORMAT */
    uint16_t type;              /*  6 enum node_record_type */
    uint8_t chunk_id[16];       /*  8 */
    uint64_t length;            /* 24 data bytes (CHUNK), 0 otherwise */
    uint64_t hash;              /* 32 XXH3-64 of the whole data: the end-to-end checksum */
    uint64_t seq;               /* 40 node-wide monotonic: orders puts, tombstones, copies */
    uint64_t created_ms;        /* 48 */
    uint32_t synced_upto;       /* 56 durable watermark of the volume, in blocks (above) */
    uint32_t header_check;      /* 60 low 32 bits of XXH3-64(bytes 0..59, seed = volume salt) */
} __attribute__((packed));
_Static_assert(sizeof(struct node_record_header) == 64, "record header size");

/* The two header copies at the start of every record. */
#define NODE_REC_HEAD (2 * sizeof(struct node_record_header))

/* Bytes from the record start to the first block checksum. */
#define NODE_REC_SUMS_OFFSET NODE_REC_HEAD

/* Bytes from the record start to the first data byte. */
static inline uint64_t node_record_data_offset(uint32_t n_sums)
{
    return NODE_REC_HEAD + 8ull * n_sums;
}

static inline uint32_t node_record_n_sums(uint64_t length)
{
    return (uint32_t)((length + NODE_SUM_BLOCK - 1) / NODE_SUM_BLOCK);
}

/* Total on-disk size of a record, padded to the block size. */
static inline uint64_t node_record_size(uint64_t length, uint32_t block_size)
{
    uint64_t n = node_record_data_offset(node_record_n_sums(length)) + length;
    return (n + block_size - 1) & ~(uint64_t)(block_size - 1);
}

#endif
