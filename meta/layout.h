/* lode-meta LMDB layout: database ids and names, key encodings, format versions.
 *
 * Everything here is part of the snapshot format (records travel as raw LMDB key/value
 * pairs), so changing any of it needs a new META_STORE_FORMAT. docs/meta-format.md is the
 * prose version of this file.
 *
 * Values are packed protobuf messages from common/proto/meta.proto unless noted.
 * Integers inside keys are big-endian so that byte order is numeric order.
 */
#ifndef LODE_META_LAYOUT_H
#define LODE_META_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Version of the key/value layout below; carried in every snapshot header. */
#define META_STORE_FORMAT 1

/* LMDB keys are at most 511 bytes (0.9.24 default build), but object keys may be 1024.
 * A logical key shorter than META_KEY_INLINE_MAX bytes is its own LMDB key. A longer one
 * lives in a "bundle": the LMDB key is the logical key's first META_KEY_INLINE_MAX bytes
 * and the value holds every logical key with that prefix, sorted by the remaining bytes
 * ("tail"). Inline keys are strictly shorter than bundle keys, so no LMDB key is both, and
 * LMDB's byte order over the whole database is still the byte order of logical keys.
 * Bundle value: repeated { u16 BE tail_len, tail, u32 BE val_len, val }, tails strictly
 * ascending, at least one entry. */
#define META_KEY_INLINE_MAX 480

/* Database ids: stable numbers used in snapshots and digests. Order = snapshot order. */
enum meta_dbi_id {
    META_DBI_SYS = 0,        /* counter name -> u64 BE */
    META_DBI_NODES = 1,      /* u32 BE nid -> NodeInfo */
    META_DBI_NODE_UUIDS = 2, /* 16-byte uuid -> u32 BE nid */
    META_DBI_BUCKETS = 3,    /* bucket name -> BucketRecord */
    META_DBI_OBJECTS = 4,    /* bucket NUL key -> ObjectRecord */
    META_DBI_UPLOADS = 5,    /* upload_id -> UploadRecord */
    META_DBI_UPLOAD_IDX = 6, /* bucket NUL key NUL upload_id -> empty */
    META_DBI_PARTS = 7,      /* upload_id NUL u32 BE part number -> PartInfo */
    META_DBI_USERS = 8,      /* user name -> UserRecord */
    META_DBI_KEYS = 9,       /* access key -> AccessKeyRecord */
    META_DBI_GC = 10,        /* u64 BE seq -> GcEntry */
    META_DBI_DEDUPE = 11,    /* 16-byte client id -> u64 BE seq, CommandResult */
    META_DBI_MEMBERS = 12,   /* u64 BE raft id -> MetaMember */
    META_DBI_CORRUPT = 13,   /* u32 BE nid, 16-byte chunk id -> CorruptChunk */
    META_DBI_COUNT
};

/* LMDB names of the databases, indexed by enum meta_dbi_id. */
#define META_DBI_NAMES                                                                    \
    {"sys", "nodes", "node_uuids", "buckets", "objects", "uploads", "upload_idx", "parts", \
     "users", "keys", "gc", "dedupe", "members", "corrupt"}

/* Keys of META_DBI_SYS. Absent counters have the default noted. */
#define META_SYS_NEXT_VERSION "next_version" /* object versions; default 1 */
#define META_SYS_NEXT_NID "next_nid"         /* node ids; default 1, never reused */
#define META_SYS_EPOCH "epoch"               /* cluster-map epoch; default 0 */
#define META_SYS_GC_NEXT_SEQ "gc_next_seq"   /* GC queue positions; default 1 */

/* Limits enforced by the state machine (besides META_NAME_MAX in fsm.h). */
#define META_UPLOAD_ID_MAX 63     /* fits struct meta_fsm_result.upload_id */
#define META_ACCESS_KEY_MAX 128
#define META_SECRET_KEY_MAX 128
#define META_USER_NAME_MAX 64
#define META_BUCKET_NAME_MAX 63
#define META_PART_NUMBER_MAX 10000
#define META_CLIENT_ID_SIZE 16
#define META_CORRUPT_REPORT_MAX 1024 /* chunks per CORRUPT_REPORT command */
#define META_NODE_UUID_SIZE 16

/* Snapshot framing (docs/meta-format.md, "Snapshots"). */
#define META_SNAPSHOT_MAGIC "LODEMSNP"       /* 8 bytes, no NUL */
#define META_SNAPSHOT_MAGIC_LEN 8
#define META_SNAPSHOT_END 0xFF               /* dbi-id byte that ends the records */

/* Continuation tokens: hex of one type byte then the position. */
#define META_TOKEN_AFTER_KEY 0x01            /* resume strictly after this key */
#define META_TOKEN_AFTER_PREFIX 0x02         /* resume after every key with this prefix */

/* Fills out[0..4) with a u32 BE key. */
static inline void meta_key_u32(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static inline void meta_key_u64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* "a" NUL "b" into out (capacity >= alen + blen + 1); returns the length. */
static inline size_t meta_key_pair(uint8_t *out, const char *a, size_t alen, const char *b,
                                   size_t blen)
{
    memcpy(out, a, alen);
    out[alen] = 0;
    if (blen)
        memcpy(out + alen + 1, b, blen);
    return alen + 1 + blen;
}

#endif
