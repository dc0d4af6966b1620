/* Encoding and checking of the on-disk structures of node/layout.h: the superblock, volume
 * headers, record headers and the per-64-KiB data checksums. Pure functions, no I/O: used by
 * the chunk store, its scan, the offline inspector and the format tests.
 *
 * The structs of layout.h hold host-order values here; the encoders write the little-endian
 * image (with its checksum) and the decoders check and convert it back. A decoder never
 * trusts a field before the structure's checksum passed.
 */
#ifndef LODE_NODE_STORE_LAYOUT_H
#define LODE_NODE_STORE_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "node/layout.h"

/* ---- superblock ---- */

/* Writes the NODE_SB_SIZE-byte image of `sb` (magic, format and checksum are set here; the
 * reserved bytes are zeroed) to `out`. */
void node_sb_encode(const struct node_superblock *sb, void *out);

/* Checks and decodes a superblock image of `len` bytes. Returns 0, or LODE_EWRONGDISK with a
 * message saying what is wrong (size, magic, checksum, format, block size, volume size,
 * unterminated cluster name). */
int node_sb_decode(const void *buf, size_t len, struct node_superblock *out, struct cmn_err *err);

/* ---- volume header (first 64 bytes of the first block of a volume) ---- */

void node_vh_encode(const struct node_volume_header *vh, void *out /* 64 bytes */);
/* Returns 0 or LODE_ECORRUPT (magic, checksum, format) with a message. */
int node_vh_decode(const void *buf, struct node_volume_header *out, struct cmn_err *err);

/* ---- record headers ---- */

enum node_rh_status {
    NODE_RH_OK = 0,
    NODE_RH_ZERO,       /* 64 zero bytes: space never written */
    NODE_RH_JUNK,       /* not a header at all (data, garbage) */
    NODE_RH_DAMAGED,    /* magic, format and type look right but header_check fails: a header
                         * that was written and later damaged; chunk_id is a best guess */
    NODE_RH_INVALID,    /* checksum right, fields inconsistent (type, length): never
                         * written by a correct node */
};

/* Writes the NODE_REC_HEAD-byte image of `rh` at `out`: the header then its mirror, each with
 * its magic, format and header_check (keyed by the volume's salt) filled in. */
void node_rh_encode(const struct node_record_header *rh, uint64_t salt, void *out);

/* Decodes one 64-byte copy at `buf`: copy 0 is the header (magic NODE_REC_MAGIC), copy 1 the
 * mirror (NODE_REC_MIRROR_MAGIC). `out` is filled for OK, DAMAGED and INVALID (as read). */
enum node_rh_status node_rh_decode_copy(const void *buf, uint64_t salt, unsigned copy,
                                        struct node_record_header *out);
/* The header only (copy 0). */
enum node_rh_status node_rh_decode(const void *buf, uint64_t salt, struct node_record_header *out);

/* Both copies at a record start (NODE_REC_HEAD bytes at `buf`). Returns NODE_RH_OK when at
 * least one copy is OK, with `out` taken from it (the header when both are); `*degraded`
 * then says whether the other copy failed or differs: the record is identified but its
 * metadata was damaged. Otherwise returns the header's status (with `out` as
 * node_rh_decode fills it) and *degraded is false. */
enum node_rh_status node_rh_decode_head(const void *buf, uint64_t salt,
                                        struct node_record_header *out, bool *degraded);
const char *node_rh_status_name(enum node_rh_status s);

/* ---- data checksums ---- */

uint64_t node_data_hash(const void *data, size_t len);
/* One XXH3-64 per NODE_SUM_BLOCK of data (the last one short), stored little-endian at
 * `sums` (node_record_n_sums(len) u64s); returns the hash of the whole data, computed in
 * the same pass while each block is still in cache. */
uint64_t node_data_sums(const void *data, size_t len, void *sums);
/* The stored (little-endian) checksum number `i`. */
uint64_t node_sum_get(const void *sums, uint32_t i);
/* Checks data blocks [first, last] of a chunk of `length` bytes against `sums`. `data` points
 * to the first byte of block `first`. Returns true when every block matches. */
bool node_sums_check(const void *sums, uint64_t length, uint32_t first, uint32_t last,
                     const void *data);

#endif
