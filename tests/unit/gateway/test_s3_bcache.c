/* The per-worker bucket cache (gateway/s3_bcache.h): hits within the TTL and misses from
 * the TTL on, drops, refusals of what it must not hold, eviction of the entry stored first
 * when full, and a long random run checked step by step against a plain model (an array
 * scanned in full): 120 names over 40 entries, so hash chains hold several names and
 * removals from their middle happen. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/s3_bcache.h"
#include "tests/tap.h"

static bool get_str(struct gw_bcache *c, const char *name, uint64_t now, const char *want)
{
    const uint8_t *rec = NULL;
    size_t len = 0;
    if (!gw_bcache_get(c, name, now, &rec, &len))
        return want == NULL;
    return want && len == strlen(want) && memcmp(rec, want, len) == 0;
}

static int put_str(struct gw_bcache *c, const char *name, const char *rec, uint64_t now)
{
    return gw_bcache_put(c, name, (const uint8_t *)rec, strlen(rec), now);
}

static void test_config(void)
{
    struct gw_bcache *c = (struct gw_bcache *)1;
    struct gw_bcache_config bad[] = {
        {.ttl_ms = 0, .max_entries = 10, .max_record = 100},
        {.ttl_ms = 1, .max_entries = 0, .max_record = 100},
        {.ttl_ms = 1, .max_entries = 10, .max_record = 0},
        {.ttl_ms = 1, .max_entries = ((size_t)1 << 20) + 1, .max_record = 100},
        {.ttl_ms = 1, .max_entries = 10, .max_record = ((size_t)1 << 20) + 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(gw_bcache_create(&bad[i], &c), -EINVAL, "config %zu is refused", i);
        ok(c == NULL, "... and nothing is returned");
    }
    is_int(gw_bcache_create(NULL, &c), -EINVAL, "no config is refused");
    gw_bcache_destroy(NULL);
    ok(1, "destroying NULL is harmless");
}

static void test_ttl_and_drop(void)
{
    struct gw_bcache_config cfg = GW_BCACHE_CONFIG_DEFAULT;
    struct gw_bcache *c;
    cfg.ttl_ms = 2000;
    if (gw_bcache_create(&cfg, &c))
        tap_bail("create");
    ok(get_str(c, "photos", 0, NULL), "an empty cache misses");
    is_int(put_str(c, "photos", "rec-1", 10000), 0, "a record is stored");
    ok(get_str(c, "photos", 10000, "rec-1"), "... and found at once");
    ok(get_str(c, "photos", 11999, "rec-1"), "... and 1999 ms later (TTL 2000 ms)");
    ok(get_str(c, "photos", 9000, "rec-1"), "a clock behind the stored time still hits");
    ok(get_str(c, "photos", 12000, NULL), "2000 ms after it was stored it has expired");
    is_int(gw_bcache_size(c), 0, "... and the expired entry was dropped");

    is_int(put_str(c, "photos", "rec-1", 20000), 0, "stored again");
    is_int(put_str(c, "photos", "rec-2-longer", 21000), 0, "replaced by a newer record");
    ok(get_str(c, "photos", 22500, "rec-2-longer"), "the newer bytes, timed from the replace");
    is_int(gw_bcache_size(c), 1, "one entry for the name");
    ok(get_str(c, "photo", 22500, NULL) && get_str(c, "photos2", 22500, NULL),
       "names differing by a character do not match");
    gw_bcache_drop(c, "photos");
    ok(get_str(c, "photos", 22500, NULL), "a dropped name misses");
    gw_bcache_drop(c, "photos");
    gw_bcache_drop(c, "never-there");
    ok(1, "dropping an absent name is harmless");

    /* What must not be stored: refused, and an older entry of the name goes too (it may be
     * what the refused record was to replace). */
    char name64[65];
    memset(name64, 'a', 64);
    name64[64] = '\0';
    is_int(put_str(c, name64, "x", 0), -EINVAL, "a 64-byte name is refused");
    name64[63] = '\0';
    is_int(put_str(c, name64, "x", 0), 0, "a 63-byte name is stored");
    is_int(put_str(c, "", "x", 0), -EINVAL, "an empty name is refused");
    is_int(gw_bcache_put(c, "empty", (const uint8_t *)"", 0, 0), -EINVAL,
           "an empty record is refused");
    uint8_t big[4097];
    memset(big, 7, sizeof(big));
    is_int(put_str(c, "big", "small", 0), 0, "a record is stored under 'big'");
    is_int(gw_bcache_put(c, "big", big, sizeof(big), 0), -EINVAL,
           "a record over max_record (4096) is refused");
    ok(get_str(c, "big", 0, NULL), "... and the older record of that name is gone");
    is_int(gw_bcache_put(c, "big", big, 4096, 0), 0, "a record of exactly 4096 bytes is kept");
    gw_bcache_destroy(c);
}

static void test_eviction(void)
{
    struct gw_bcache_config cfg = {.ttl_ms = 1000, .max_entries = 3, .max_record = 16};
    struct gw_bcache *c;
    if (gw_bcache_create(&cfg, &c))
        tap_bail("create");
    put_str(c, "aaa", "1", 0);
    put_str(c, "bbb", "2", 0);
    put_str(c, "ccc", "3", 0);
    put_str(c, "ddd", "4", 0);
    ok(get_str(c, "aaa", 0, NULL) && get_str(c, "bbb", 0, "2") && get_str(c, "ccc", 0, "3") &&
           get_str(c, "ddd", 0, "4"),
       "full at 3: the entry stored first (aaa) is evicted");
    put_str(c, "bbb", "2b", 0); /* stored again: now the newest */
    put_str(c, "eee", "5", 0);
    ok(get_str(c, "ccc", 0, NULL) && get_str(c, "bbb", 0, "2b") && get_str(c, "ddd", 0, "4") &&
           get_str(c, "eee", 0, "5"),
       "a replaced entry counts as stored anew: ccc goes next");
    is_int(gw_bcache_size(c), 3, "never more than max_entries");
    gw_bcache_drop(c, "ddd");
    put_str(c, "fff", "6", 0);
    ok(get_str(c, "bbb", 0, "2b") && get_str(c, "eee", 0, "5") && get_str(c, "fff", 0, "6"),
       "a slot freed by a drop is used before evicting");
    gw_bcache_destroy(c);
}

/* The model: at most MODEL_MAX (name, value, stored, order) rows scanned in full. */
#define MODEL_MAX 40
#define NAMES 120
struct row {
    int name;       /* -1: free */
    unsigned value;
    uint64_t stored;
    uint64_t order; /* when stored: the smallest is evicted */
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    /* xorshift64*: the sequence only needs to be fixed, not good. */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static int model_find(struct row *m, int name)
{
    for (int i = 0; i < MODEL_MAX; i++)
        if (m[i].name == name)
            return i;
    return -1;
}

static void test_model(void)
{
    struct gw_bcache_config cfg = {.ttl_ms = 50, .max_entries = MODEL_MAX, .max_record = 16};
    struct gw_bcache *c;
    struct row m[MODEL_MAX];
    uint64_t now = 1000, order = 0;
    unsigned mismatches = 0, hits = 0, evictions = 0;
    if (gw_bcache_create(&cfg, &c))
        tap_bail("create");
    for (int i = 0; i < MODEL_MAX; i++)
        m[i].name = -1;
    for (int step = 0; step < 200000 && mismatches < 5; step++) {
        int name = (int)(next_rand() % NAMES);
        char key[16], val[16];
        snprintf(key, sizeof(key), "bucket-%03d", name);
        unsigned op = (unsigned)(next_rand() % 10);
        now += next_rand() % 4;
        int at = model_find(m, name);
        if (op < 5) { /* get */
            bool fresh = at >= 0 && now - m[at].stored < cfg.ttl_ms;
            if (at >= 0 && !fresh)
                m[at].name = -1;
            if (fresh)
                snprintf(val, sizeof(val), "v%u", m[at].value);
            if (!get_str(c, key, now, fresh ? val : NULL)) {
                mismatches++;
                diag("step %d: get %s disagrees with the model", step, key);
            }
            hits += fresh;
        } else if (op < 9) { /* put */
            unsigned v = (unsigned)(next_rand() % 100000);
            snprintf(val, sizeof(val), "v%u", v);
            if (at < 0)
                at = model_find(m, -1);
            if (at < 0) { /* full: evict the row stored first */
                at = 0;
                for (int i = 1; i < MODEL_MAX; i++)
                    if (m[i].order < m[at].order)
                        at = i;
                evictions++;
            }
            m[at] = (struct row){name, v, now, order++};
            if (put_str(c, key, val, now) != 0) {
                mismatches++;
                diag("step %d: put %s failed", step, key);
            }
        } else { /* drop */
            if (at >= 0)
                m[at].name = -1;
            gw_bcache_drop(c, key);
        }
    }
    size_t live = 0;
    for (int i = 0; i < MODEL_MAX; i++)
        live += m[i].name >= 0;
    is_int(mismatches, 0, "200000 random gets, puts and drops agree with the model");
    is_int(gw_bcache_size(c), live, "... and so does the entry count at the end");
    ok(hits > 10000 && evictions > 1000, "the run exercised hits (%u) and evictions (%u)", hits,
       evictions);
    gw_bcache_destroy(c);
}

int main(void)
{
    test_config();
    test_ttl_and_drop();
    test_eviction();
    test_model();
    return tap_done();
}
