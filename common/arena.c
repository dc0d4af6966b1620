/* See arena.h. */
#include "common/arena.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#define MAX_SIZE ((size_t)1 << 40)

struct cmn_arena {
    pthread_mutex_t lock;
    uint8_t *base;
    size_t size, units;
    uint64_t *used;          /* bit per unit */
    uint32_t *run;           /* at a buffer's first unit: its length in units; else 0 */
    size_t hint;             /* where the next search starts */
    struct cmn_arena_stats st;
};

static bool bit(const struct cmn_arena *a, size_t i)
{
    return (a->used[i / 64] >> (i % 64)) & 1;
}

static void set_bits(struct cmn_arena *a, size_t i, size_t n, bool on)
{
    for (size_t k = i; k < i + n; k++) {
        if (on)
            a->used[k / 64] |= UINT64_C(1) << (k % 64);
        else
            a->used[k / 64] &= ~(UINT64_C(1) << (k % 64));
    }
}

int cmn_arena_create(size_t size, struct cmn_arena **out)
{
    if (size == 0 || size > MAX_SIZE)
        return -EINVAL;
    size_t units = (size + CMN_ARENA_UNIT - 1) / CMN_ARENA_UNIT;
    struct cmn_arena *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->units = units;
    a->size = units * CMN_ARENA_UNIT;
    a->used = calloc((units + 63) / 64, sizeof *a->used);
    a->run = calloc(units, sizeof *a->run);
    /* MAP_NORESERVE: the pages cost nothing until touched (or pinned by a registration). */
    void *p = mmap(NULL, a->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!a->used || !a->run || p == MAP_FAILED) {
        if (p != MAP_FAILED)
            munmap(p, a->size);
        free(a->used);
        free(a->run);
        free(a);
        return -ENOMEM;
    }
    a->base = p;
    a->st.size = a->size;
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return 0;
}

int cmn_arena_destroy(struct cmn_arena *a)
{
    if (!a)
        return 0;
    pthread_mutex_lock(&a->lock);
    size_t used = a->st.used;
    pthread_mutex_unlock(&a->lock);
    if (used != 0)
        return -EBUSY;
    munmap(a->base, a->size);
    pthread_mutex_destroy(&a->lock);
    free(a->used);
    free(a->run);
    free(a);
    return 0;
}

/* First index of a run of n free units in [from, limit), or SIZE_MAX. */
static size_t find_run(const struct cmn_arena *a, size_t from, size_t limit, size_t n)
{
    size_t i = from;
    while (i + n <= limit) {
        if (i % 64 == 0 && a->used[i / 64] == UINT64_MAX) {
            i += 64;                     /* a full word: nothing starts in it */
            continue;
        }
        if (bit(a, i)) {
            i++;
            continue;
        }
        size_t k = 1;
        while (k < n && !bit(a, i + k))
            k++;
        if (k == n)
            return i;
        i += k + 1;                      /* unit i + k is taken: restart after it */
    }
    return SIZE_MAX;
}

void *cmn_arena_alloc(struct cmn_arena *a, size_t len, size_t align, size_t *cap)
{
    if (!a || len == 0 || len > a->size || align > CMN_ARENA_UNIT || (align & (align - 1)))
        return NULL;
    size_t n = (len + CMN_ARENA_UNIT - 1) / CMN_ARENA_UNIT;
    pthread_mutex_lock(&a->lock);
    size_t hint = a->hint < a->units ? a->hint : 0;
    size_t i = find_run(a, hint, a->units, n);
    if (i == SIZE_MAX)
        i = find_run(a, 0, hint + n - 1 < a->units ? hint + n - 1 : a->units, n);
    void *p = NULL;
    if (i == SIZE_MAX) {
        a->st.misses++;
    } else {
        set_bits(a, i, n, true);
        a->run[i] = (uint32_t)n;
        a->hint = i + n;
        a->st.used += n * CMN_ARENA_UNIT;
        a->st.allocs++;
        p = a->base + i * CMN_ARENA_UNIT;
        if (cap)
            *cap = n * CMN_ARENA_UNIT;
    }
    pthread_mutex_unlock(&a->lock);
    return p;
}

int cmn_arena_free(struct cmn_arena *a, void *p)
{
    if (!a || !cmn_arena_contains(a, p, 1))
        return -EINVAL;
    size_t off = (size_t)((uint8_t *)p - a->base);
    if (off % CMN_ARENA_UNIT != 0)
        return -EINVAL;
    size_t i = off / CMN_ARENA_UNIT;
    pthread_mutex_lock(&a->lock);
    size_t n = a->run[i];
    if (n == 0) {
        pthread_mutex_unlock(&a->lock);
        return -EINVAL;                  /* not handed out, or freed twice */
    }
    a->run[i] = 0;
    set_bits(a, i, n, false);
    a->st.used -= n * CMN_ARENA_UNIT;
    pthread_mutex_unlock(&a->lock);
    return 0;
}

bool cmn_arena_contains(const struct cmn_arena *a, const void *p, size_t len)
{
    if (!a || !p)
        return false;
    uintptr_t b = (uintptr_t)a->base, q = (uintptr_t)p;
    return q >= b && q - b < a->size && len <= a->size - (q - b);
}

void *cmn_arena_base(const struct cmn_arena *a) { return a ? a->base : NULL; }
size_t cmn_arena_size(const struct cmn_arena *a) { return a ? a->size : 0; }

void cmn_arena_get_stats(struct cmn_arena *a, struct cmn_arena_stats *out)
{
    pthread_mutex_lock(&a->lock);
    *out = a->st;
    pthread_mutex_unlock(&a->lock);
}
