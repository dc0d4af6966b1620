/* Stripe geometry of an object (or of one multipart part), and the policy choosing it.
 *
 * An object of `size` bytes written with (k, m, chunk_size) is cut into stripes of
 * k * chunk_size data bytes: stripe i covers object bytes [i * k * cs, min(size,
 * (i + 1) * k * cs)), and within a stripe data chunk j holds the stripe's bytes [j * cs,
 * (j + 1) * cs). Only the last stripe may be short. Chunks are stored at their REAL length,
 * never padded on disk:
 *   - data chunk j of a stripe of length L: clamp(L - j * cs, 0, cs) bytes;
 *   - every parity chunk: the length of data chunk 0, min(L, cs) (the coding pads the short
 *     data chunks with zeroes in memory, gateway/ec.h).
 * A data chunk of length 0 (possible only in a short stripe, e.g. a 1-byte tail stripe) is
 * not stored at all: its ChunkRef in the layout has nid 0 and an empty chunk_id (nid 0 is
 * never assigned to a node), it needs no node, and it takes part in decoding as a present
 * all-zero chunk, so the stripe still survives the loss of any m of its stored chunks.
 *
 * These structures mirror lode.Layout / lode.Stripe (common/proto/meta.proto): k, m,
 * chunk_size, and per stripe its offset and length. Everything here is pure arithmetic:
 * no allocation, no I/O, thread-safe.
 */
#ifndef LODE_GATEWAY_STRIPE_H
#define LODE_GATEWAY_STRIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "gateway/ec.h"

/* Chunk sizes chosen by the policy are multiples of this, so the chunks of a stripe buffer
 * start on SIMD-friendly boundaries. */
#define GW_STRIPE_ALIGN 64u
/* The policy's default and allowed maximum chunk sizes: the largest is lode-node's default
 * max-chunk-size, so nodes with default settings accept every chunk (the gateway's
 * chunk-size setting has the same bounds). */
#define GW_LAYOUT_CHUNK_DEFAULT (1u << 20)
#define GW_LAYOUT_CHUNK_MIN 4096u
#define GW_LAYOUT_CHUNK_MAX (8u << 20)
/* Largest chunk size a stored layout may name (lode-node's own upper bound), so layouts
 * written under another configuration still read. */
#define GW_GEOM_CHUNK_MAX (512u << 20)
/* Default small-object threshold: objects below 256 KiB (4 x 64 KiB) are replicated. */
#define GW_SMALL_THRESHOLD_DEFAULT (256u << 10)
/* Size not known in advance (aws-chunked or chunked transfer without a decoded length). */
#define GW_SIZE_UNKNOWN UINT64_MAX
/* Largest object or part the geometry accepts: 5 TiB, the S3 object limit. */
#define GW_OBJECT_MAX ((uint64_t)5 << 40)

/* The geometry of one object or part. */
struct gw_geom {
    unsigned k, m;          /* data and parity chunks per stripe (gateway/ec.h limits) */
    uint32_t chunk_size;    /* 1..GW_GEOM_CHUNK_MAX */
    uint64_t size;          /* object bytes, 0..GW_OBJECT_MAX */
};

/* Returns 0, or -EINVAL with a message when a field is out of range. Every function below
 * assumes a geometry that passed this check. */
int gw_geom_check(const struct gw_geom *g, struct cmn_err *err);

/* Data bytes in a full stripe: k * chunk_size. */
uint64_t gw_geom_stripe_bytes(const struct gw_geom *g);

/* Number of stripes: ceil(size / (k * chunk_size)); 0 for an empty object. */
uint64_t gw_geom_stripes(const struct gw_geom *g);

/* Object offset of stripe s (s < stripes). */
uint64_t gw_stripe_offset(const struct gw_geom *g, uint64_t s);

/* Data bytes in stripe s: k * chunk_size except for a short last one; 0 when s is past the
 * end. */
uint64_t gw_stripe_len(const struct gw_geom *g, uint64_t s);

/* Stored length of chunk c (0..k+m-1) of stripe s, as above; 0 for an absent data chunk or
 * when s or c is out of range. */
uint32_t gw_chunk_len(const struct gw_geom *g, uint64_t s, unsigned c);

/* Mask of the chunks of stripe s that are stored (non-zero length): all k + m for a full
 * stripe. The placement count of the stripe is the number of bits set. */
uint32_t gw_stripe_stored(const struct gw_geom *g, uint64_t s);

/* Checks one stripe record of a stored layout against the geometry: its index, offset,
 * length and number of ChunkRefs (k + m). Returns 0 or LODE_ECORRUPT with a message, so a
 * reader refuses a damaged layout instead of serving wrong bytes. */
int gw_stripe_verify(const struct gw_geom *g, uint64_t s, uint64_t offset, uint64_t length,
                     unsigned n_chunks, struct cmn_err *err);

/* One contiguous piece of a byte range: `len` bytes at `chunk_off` in chunk `chunk` of
 * stripe `stripe`, which go to offset `out_off` of the range's output. */
struct gw_piece {
    uint64_t stripe;
    unsigned chunk;         /* a data chunk index, 0..k-1 */
    uint32_t chunk_off;
    uint32_t len;           /* >= 1 */
    uint64_t out_off;       /* from the start of the range */
};

/* Walks the pieces of object bytes [off, off + len) in order: stripes ascending, chunks
 * ascending within a stripe; out_off grows by each piece's len, with no gaps. A piece never
 * crosses a chunk boundary and always lies within the chunk's stored length. Bounded memory
 * whatever the range (a 5 TiB read is 5 million pieces at 1 MiB chunks): a plain value,
 * caller-owned, no cleanup. */
struct gw_piece_iter {
    struct gw_geom g;
    uint64_t pos, end, start;
};

/* Starts a walk. Returns 0; -EINVAL (invalid geometry) or -ERANGE when the range does not
 * lie within the object (off + len > size, or overflow), each with a message. An empty
 * range (len 0) yields no pieces. Range syntax and 416 answers belong to the S3 layer. */
int gw_piece_iter_init(struct gw_piece_iter *it, const struct gw_geom *g, uint64_t off,
                       uint64_t len, struct cmn_err *err);

/* The next piece into *p: true, or false at the end of the range. */
bool gw_piece_next(struct gw_piece_iter *it, struct gw_piece *p);

/* ---- the layout policy ---- */

struct gw_layout_policy {
    unsigned k, m;              /* erasure code for large objects (cluster or bucket) */
    uint32_t max_chunk_size;    /* 0 = GW_LAYOUT_CHUNK_DEFAULT; else a multiple of 4096 in
                                 * [GW_LAYOUT_CHUNK_MIN, GW_LAYOUT_CHUNK_MAX] */
    uint64_t small_threshold;   /* objects with 0 < size < this are replicated (k = 1);
                                 * 0 = never (GW_SMALL_THRESHOLD_DEFAULT is the usual) */
};

/* What the policy chose for one object. */
struct gw_layout_choice {
    unsigned k, m;
    uint32_t chunk_size;
};

/* Chooses k, m and chunk_size for an object of `size` bytes (or GW_SIZE_UNKNOWN):
 *   - size 0: k = 1 and no stripes (nothing is stored);
 *   - 0 < size < small_threshold: 1 + m replicas (k = 1), chunk_size the size rounded up to
 *     GW_STRIPE_ALIGN (one stripe) or max_chunk_size if smaller: 1 + m nodes, survives any m
 *     losses, any copy serves a read;
 *   - small_threshold <= size < k * max_chunk_size: k + m with the chunk size shrunk to
 *     ceil(size / k) rounded up to GW_STRIPE_ALIGN, so one stripe holds the object and no
 *     chunk is mostly padding;
 *   - larger, or GW_SIZE_UNKNOWN: k + m with max_chunk_size;
 *   - with pol->k = 1 every object is replicated, in chunks of at most max_chunk_size.
 * A streaming upload of unknown size buffers its first stripe before writing anything
 * (encoding needs the whole stripe); when the body ends inside that stripe, call again
 * with the size now known, so a small streamed object gets the small-object layout too.
 * Returns 0, -EINVAL with a message for an invalid policy, or -ERANGE when size exceeds
 * GW_OBJECT_MAX. */
int gw_layout_choose(const struct gw_layout_policy *pol, uint64_t size,
                     struct gw_layout_choice *out, struct cmn_err *err);

/* A policy for a cluster where only `domains` failure domains can take a chunk, when that
 * is fewer than k + m: the same m (the same number of losses survived) with fewer data
 * chunks, k' = domains - m, the rest of the policy unchanged. The storage
 * overhead grows from (k + m) / k to (k' + m) / k'. Whether to write degraded or refuse is
 * the caller's policy. Returns 0 and *out (a copy of *pol when it already fits), or
 * LODE_ENOSPACE with a message when domains < m + 1. */
int gw_layout_fit_domains(const struct gw_layout_policy *pol, unsigned domains,
                          struct gw_layout_policy *out, struct cmn_err *err);

#endif
