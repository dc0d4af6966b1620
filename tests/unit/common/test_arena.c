/* common/arena.c: allocation, alignment, refusals, wrap-around, stats; a random model that
 * checks buffers never overlap and no request is refused while a long enough free run exists;
 * four threads sharing one arena. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "tests/tap.h"

#define U CMN_ARENA_UNIT

static void test_basics(void)
{
    struct cmn_arena *a = NULL;
    is_int(cmn_arena_create(0, &a), -EINVAL, "size 0 refused");
    is_int(cmn_arena_create((size_t)1 << 41, &a), -EINVAL, "2 TiB refused");
    is_int(cmn_arena_create(10 * U - 5, &a), 0, "a 10-unit arena");
    is_int(cmn_arena_size(a), 10 * U, "size rounded up to whole units");

    size_t cap = 0;
    uint8_t *p = cmn_arena_alloc(a, 1, 4096, &cap);
    ok(p != NULL && p == cmn_arena_base(a), "first buffer at the base");
    is_int(cap, U, "1 byte takes one unit");
    ok(((uintptr_t)p % 4096) == 0, "aligned");
    uint8_t *q = cmn_arena_alloc(a, 3 * U + 1, 64, &cap);
    ok(q == p + U, "next buffer follows");
    is_int(cap, 4 * U, "3 units and a byte take 4");
    memset(q, 0xab, cap); /* writable all through */
    ok(cmn_arena_contains(a, q, cap), "contains its buffer");
    ok(!cmn_arena_contains(a, q, 10 * U), "a range running past the end is not inside");
    ok(!cmn_arena_contains(a, (uint8_t *)cmn_arena_base(a) - 1, 1), "a byte before is not");
    ok(!cmn_arena_contains(NULL, q, 1), "no arena contains nothing");

    ok(cmn_arena_alloc(a, 6 * U, 64, &cap) == NULL, "6 units do not fit in the 5 left");
    ok(cmn_arena_alloc(a, 0, 64, &cap) == NULL, "len 0 refused");
    ok(cmn_arena_alloc(a, 64, 2 * U, &cap) == NULL, "alignment above a unit refused");
    ok(cmn_arena_alloc(a, 64, 3, &cap) == NULL, "alignment not a power of two refused");
    uint8_t *r = cmn_arena_alloc(a, 5 * U, 64, &cap);
    ok(r == q + 4 * U, "the last 5 units");
    ok(cmn_arena_alloc(a, 1, 64, &cap) == NULL, "full");

    is_int(cmn_arena_free(a, q + 1), -EINVAL, "a pointer inside a buffer is refused");
    is_int(cmn_arena_free(a, q + U), -EINVAL, "a unit inside a buffer is refused");
    int x;
    is_int(cmn_arena_free(a, &x), -EINVAL, "a pointer from elsewhere is refused");
    is_int(cmn_arena_free(a, q), 0, "free");
    is_int(cmn_arena_free(a, q), -EINVAL, "double free refused");

    /* wrap-around: the search starts after the last allocation and comes back for the hole */
    uint8_t *w = cmn_arena_alloc(a, 4 * U, 64, &cap);
    ok(w == q, "the freed hole is found again from the start");
    struct cmn_arena_stats st;
    cmn_arena_get_stats(a, &st);
    is_int(st.used, 10 * U, "stats: all used");
    ok(st.allocs == 4 && st.misses == 2,
       "stats: 4 allocations, 2 misses (bad arguments are not misses)");
    cmn_arena_free(a, p);
    cmn_arena_free(a, r);
    is_int(cmn_arena_destroy(a), -EBUSY, "destroy with a buffer still out: -EBUSY");
    w[0] = 1; /* still mapped (ASan and the kernel would both object otherwise) */
    is_int(cmn_arena_free(a, w), 0, "and the late free still works");
    cmn_arena_get_stats(a, &st);
    is_int(st.used, 0, "stats: nothing used after freeing all");
    is_int(cmn_arena_destroy(a), 0, "destroy once all are back");
    is_int(cmn_arena_destroy(NULL), 0, "destroy(NULL) is fine");
}

/* Random allocations and frees against a model: buffers never overlap, every free run that
 * the model has is found, and contents survive other buffers' churn. */
static void test_model(void)
{
    enum { UNITS = 300, SLOTS = 64 };
    struct cmn_arena *a = NULL;
    cmn_arena_create(UNITS * U, &a);
    uint8_t owner[UNITS];
    memset(owner, 0xff, sizeof owner);
    struct { uint8_t *p; size_t n; } live[SLOTS] = {{0}};
    uint8_t *base = cmn_arena_base(a);
    unsigned seed = 7;
    int bad_overlap = 0, bad_miss = 0, bad_fill = 0, allocs = 0;
    for (int step = 0; step < 20000; step++) {
        int s = rand_r(&seed) % SLOTS;
        if (live[s].p) {
            size_t first = (size_t)(live[s].p - base) / U;
            for (size_t k = 0; k < live[s].n * U; k += 4096)
                bad_fill += live[s].p[k] != (uint8_t)s;
            for (size_t k = first; k < first + live[s].n; k++)
                owner[k] = 0xff;
            if (cmn_arena_free(a, live[s].p) != 0)
                bad_fill++;
            live[s].p = NULL;
            continue;
        }
        size_t n = 1 + (size_t)(rand_r(&seed) % 12);
        size_t cap;
        uint8_t *p = cmn_arena_alloc(a, n * U - (size_t)(rand_r(&seed) % 100), 4096, &cap);
        /* does the model have a free run of n? */
        size_t run = 0, best = 0;
        for (size_t k = 0; k < UNITS; k++) {
            run = owner[k] == 0xff ? run + 1 : 0;
            if (run > best)
                best = run;
        }
        if (!p) {
            bad_miss += best >= n;
            continue;
        }
        allocs++;
        size_t first = (size_t)(p - base) / U;
        for (size_t k = first; k < first + n; k++) {
            bad_overlap += owner[k] != 0xff;
            owner[k] = (uint8_t)s;
        }
        for (size_t k = 0; k < n * U; k += 4096)
            p[k] = (uint8_t)s;
        live[s].p = p;
        live[s].n = n;
    }
    ok(allocs > 5000, "model: %d allocations", allocs);
    is_int(bad_overlap, 0, "model: no two buffers overlap");
    is_int(bad_miss, 0, "model: no refusal while a long enough free run existed");
    is_int(bad_fill, 0, "model: contents survive, frees accepted");
    for (int s = 0; s < SLOTS; s++)
        if (live[s].p)
            cmn_arena_free(a, live[s].p);
    cmn_arena_destroy(a);
}

static struct cmn_arena *shared;
static int thread_errors;

static void *churn(void *arg)
{
    uint8_t tag = (uint8_t)(uintptr_t)arg;
    int errors = 0;
    for (int i = 0; i < 20000; i++) {
        size_t cap;
        uint8_t *p = cmn_arena_alloc(shared, U + 1, 4096, &cap);
        if (!p)
            continue;
        p[0] = tag;
        p[U] = tag;
        sched_yield();
        errors += p[0] != tag || p[U] != tag;
        errors += cmn_arena_free(shared, p) != 0;
    }
    __atomic_add_fetch(&thread_errors, errors, __ATOMIC_RELAXED);
    return NULL;
}

static void test_threads(void)
{
    cmn_arena_create(16 * U, &shared);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, (void *)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    is_int(thread_errors, 0, "4 threads: no buffer handed to two at once, every free accepted");
    struct cmn_arena_stats st;
    cmn_arena_get_stats(shared, &st);
    is_int(st.used, 0, "4 threads: nothing left used");
    cmn_arena_destroy(shared);
}

int main(void)
{
    test_basics();
    test_model();
    test_threads();
    return tap_done();
}
