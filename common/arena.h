/* A fixed region of memory handed out in 64 KiB units, for buffers a NIC must reach.
 *
 * Why: an RDMA device can only read memory registered with it, and registering per transfer
 * pins pages and costs system calls each time. A process that reads data into buffers from
 * one arena registers the arena once, and a transfer out of any buffer in it needs no copy
 * into staging memory (the lode-node reads chunk ranges into one, and its rc listener writes
 * them to clients from where the disk put them).
 *
 * The region is reserved with mmap once and never moves or shrinks until cmn_arena_destroy,
 * so a registration of [base, base + size) stays valid for the arena's life. Allocation is
 * first fit over a bitmap of units, starting after the last allocation (buffers here live for
 * one transfer, so the next free run is usually right there). Thread-safe.
 */
#ifndef LODE_COMMON_ARENA_H
#define LODE_COMMON_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMN_ARENA_UNIT ((size_t)64 << 10)

struct cmn_arena;

struct cmn_arena_stats {
    size_t size;            /* bytes in the region */
    size_t used;            /* bytes handed out (whole units) */
    uint64_t allocs;        /* successful allocations, since creation */
    uint64_t misses;        /* allocations refused for want of a free run */
};

/* Reserves `size` bytes (rounded up to whole units). Returns 0 and *out, -EINVAL for 0 or a
 * size above 1 TiB, or -ENOMEM. */
int cmn_arena_create(size_t size, struct cmn_arena **out);
/* Unmaps the region and frees the arena; every registration of it must be gone. Returns 0
 * (also for NULL), or -EBUSY while a buffer is still handed out: then nothing is freed or
 * unmapped (the arena stays usable, so the late free of that buffer is still safe) and the
 * caller reports the leak rather than pull memory from under its holder. */
int cmn_arena_destroy(struct cmn_arena *a);

/* A buffer of at least len bytes aligned to at least `align` (a power of two up to
 * CMN_ARENA_UNIT; every buffer starts on a unit), or NULL when no free run is long enough
 * (the caller falls back to ordinary memory) or len is 0. *cap gets the usable size. */
void *cmn_arena_alloc(struct cmn_arena *a, size_t len, size_t align, size_t *cap);
/* Returns a buffer from cmn_arena_alloc. Returns -EINVAL (and changes nothing) for a pointer
 * that is not the start of a buffer out of this arena. */
int cmn_arena_free(struct cmn_arena *a, void *p);

/* Whether [p, p + len) lies inside the region (NULL arena: false). */
bool cmn_arena_contains(const struct cmn_arena *a, const void *p, size_t len);
void *cmn_arena_base(const struct cmn_arena *a);
size_t cmn_arena_size(const struct cmn_arena *a);
void cmn_arena_get_stats(struct cmn_arena *a, struct cmn_arena_stats *out);

#endif
