/* The bucket cache of one worker loop: BUCKET_HEAD answers kept for a short time, so that
 * a GET or PUT does not pay a round trip to lode-meta just to learn that its bucket exists,
 * who owns it and which erasure scheme it asks for.
 *
 * What it means for correctness (gateway/README.s3layer.md, "Bucket cache"):
 *   - only buckets that exist are cached: a bucket created through any gateway is seen at
 *     once; a name meta says is unknown is asked again on the next request;
 *   - an entry lives ttl_ms from when it was stored, and is dropped at once when the bucket
 *     is deleted through this worker or when a later meta call of a request on it answers
 *     LODE_ENOBUCKET. So a bucket deleted through another gateway (or another worker) may
 *     still pass the bucket check here for up to ttl_ms; the operation then fails at meta
 *     with NoSuchBucket (meta checks the bucket on every write and listing), and nothing is
 *     stored in a deleted bucket;
 *   - a bucket's owner and erasure scheme never change while it exists (there is no update
 *     operation), so a cached record is only ever stale by having been deleted.
 *
 * Entries hold the record as meta packed it (the caller unpacks its own copy). Memory is
 * bounded: at most max_entries entries of at most max_record bytes; a full cache evicts
 * the entry stored first (expired entries are simply replaced as they are met).
 *
 * I/O-free and not thread-safe: one cache per loop, the caller passes a monotonic clock.
 */
#ifndef LODE_GATEWAY_S3_BCACHE_H
#define LODE_GATEWAY_S3_BCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bucket names are at most 63 bytes (S3's rule, checked by the router). */
#define GW_BCACHE_NAME_MAX 63

struct gw_bcache_config {
    uint64_t ttl_ms;           /* > 0 */
    size_t max_entries;        /* 1 .. 1 << 20 */
    size_t max_record;         /* largest packed record kept, 1 .. 1 MiB */
};

#define GW_BCACHE_CONFIG_DEFAULT {.ttl_ms = 2000, .max_entries = 1024, .max_record = 4096}

struct gw_bcache;

/* Returns 0 with *out, -EINVAL for a setting out of range, -ENOMEM. */
int gw_bcache_create(const struct gw_bcache_config *cfg, struct gw_bcache **out);

/* Frees every entry and the cache; NULL is fine. */
void gw_bcache_destroy(struct gw_bcache *c);

/* Looks `name` up at time now_ms. Returns true with the packed record in *rec / *len when
 * an entry is there and stored less than ttl_ms before now_ms; the bytes stay valid until
 * the next put, drop or destroy on this cache. An expired entry is dropped and false
 * returned. */
bool gw_bcache_get(struct gw_bcache *c, const char *name, uint64_t now_ms, const uint8_t **rec,
                   size_t *len);

/* Stores (or replaces) the record of `name` (copied) as of now_ms. Returns 0, -EINVAL for
 * an empty or too long name or a record of 0 or more than max_record bytes (nothing is
 * stored, and an older entry of that name is dropped), -ENOMEM (likewise). */
int gw_bcache_put(struct gw_bcache *c, const char *name, const uint8_t *rec, size_t len,
                  uint64_t now_ms);

/* Forgets `name`; nothing happens when it is not cached. */
void gw_bcache_drop(struct gw_bcache *c, const char *name);

/* Entries held (expired ones not yet met included). */
size_t gw_bcache_size(const struct gw_bcache *c);

#endif
