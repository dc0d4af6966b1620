/* The per-worker bucket cache (see s3_bcache.h).
 *
 * Entries live in one array allocated up front; a chained hash table over the names finds
 * them, and a list in storing order gives the eviction victim. Names are at most 63 bytes,
 * so they are kept inline. */
#include "gateway/s3_bcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define MAX_ENTRIES ((size_t)1 << 20)
#define MAX_RECORD ((size_t)1 << 20)

struct entry {
    char name[GW_BCACHE_NAME_MAX + 1];
    uint8_t *rec;                      /* NULL: the slot is free */
    size_t len;
    uint64_t stored_ms;
    uint32_t hnext;                    /* next in the hash chain */
    uint32_t older, newer;             /* storing order */
};

struct gw_bcache {
    struct gw_bcache_config cfg;
    struct entry *e;
    uint32_t *heads;                   /* hash chains */
    size_t n_heads;                    /* a power of two */
    uint32_t *free_slots;
    size_t n_free;
    uint32_t oldest, newest;
    size_t n;
};

/* FNV-1a: names are short and chosen by clients, but a chain only costs a comparison per
 * entry and the table is sized for a load under one. */
static size_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (size_t)(h ^ (h >> 29));
}

int gw_bcache_create(const struct gw_bcache_config *cfg, struct gw_bcache **out)
{
    *out = NULL;
    if (!cfg || cfg->ttl_ms == 0 || cfg->max_entries == 0 || cfg->max_entries > MAX_ENTRIES ||
        cfg->max_record == 0 || cfg->max_record > MAX_RECORD)
        return -EINVAL;
    struct gw_bcache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    c->n_heads = 16;
    while (c->n_heads < cfg->max_entries * 2)
        c->n_heads *= 2;
    c->e = calloc(cfg->max_entries, sizeof(*c->e));
    c->heads = malloc(c->n_heads * sizeof(*c->heads));
    c->free_slots = malloc(cfg->max_entries * sizeof(*c->free_slots));
    if (!c->e || !c->heads || !c->free_slots) {
        gw_bcache_destroy(c);
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_heads; i++)
        c->heads[i] = NONE;
    for (size_t i = cfg->max_entries; i > 0; i--)
        c->free_slots[c->n_free++] = (uint32_t)(i - 1);
    c->oldest = c->newest = NONE;
    *out = c;
    return 0;
}

void gw_bcache_destroy(struct gw_bcache *c)
{
    if (!c)
        return;
    if (c->e)
        for (size_t i = 0; i < c->cfg.max_entries; i++)
            free(c->e[i].rec);
    free(c->e);
    free(c->heads);
    free(c->free_slots);
    free(c);
}

static uint32_t *chain_of(struct gw_bcache *c, const char *name)
{
    return &c->heads[hash_name(name) & (c->n_heads - 1)];
}

/* The slot holding `name` and the link pointing at it, or NONE. */
static uint32_t find(struct gw_bcache *c, const char *name, uint32_t **link)
{
    uint32_t *l = chain_of(c, name);
    while (*l != NONE) {
        if (strcmp(c->e[*l].name, name) == 0) {
            if (link)
                *link = l;
            return *l;
        }
        l = &c->e[*l].hnext;
    }
    return NONE;
}

static void remove_slot(struct gw_bcache *c, uint32_t i, uint32_t *link)
{
    struct entry *e = &c->e[i];
    *link = e->hnext;
    if (e->older != NONE)
        c->e[e->older].newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer != NONE)
        c->e[e->newer].older = e->older;
    else
        c->newest = e->older;
    free(e->rec);
    memset(e, 0, sizeof(*e));
    c->free_slots[c->n_free++] = i;
    c->n--;
}

void gw_bcache_drop(struct gw_bcache *c, const char *name)
{
    uint32_t *link = NULL;
    uint32_t i = find(c, name, &link);
    if (i != NONE)
        remove_slot(c, i, link);
}

bool gw_bcache_get(struct gw_bcache *c, const char *name, uint64_t now_ms, const uint8_t **rec,
                   size_t *len)
{
    uint32_t *link = NULL;
    uint32_t i = find(c, name, &link);
    if (i == NONE)
        return false;
    struct entry *e = &c->e[i];
    /* A clock that went back counts as fresh: the monotonic clock does not, and a stored
     * time in the future can only come from the caller's own clock. */
    if (now_ms >= e->stored_ms && now_ms - e->stored_ms >= c->cfg.ttl_ms) {
        remove_slot(c, i, link);
        return false;
    }
    *rec = e->rec;
    *len = e->len;
    return true;
}

int gw_bcache_put(struct gw_bcache *c, const char *name, const uint8_t *rec, size_t len,
                  uint64_t now_ms)
{
    size_t nlen = strlen(name);
    gw_bcache_drop(c, name);
    if (nlen == 0 || nlen > GW_BCACHE_NAME_MAX || len == 0 || len > c->cfg.max_record)
        return -EINVAL;
    uint8_t *copy = malloc(len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, rec, len);
    if (c->n_free == 0) {
        uint32_t *link = NULL;
        uint32_t victim = find(c, c->e[c->oldest].name, &link);
        remove_slot(c, victim, link);
    }
    uint32_t i = c->free_slots[--c->n_free];
    struct entry *e = &c->e[i];
    memcpy(e->name, name, nlen + 1);
    e->rec = copy;
    e->len = len;
    e->stored_ms = now_ms;
    uint32_t *head = chain_of(c, name);
    e->hnext = *head;
    *head = i;
    e->newer = NONE;
    e->older = c->newest;
    if (c->newest != NONE)
        c->e[c->newest].newer = i;
    else
        c->oldest = i;
    c->newest = i;
    c->n++;
    return 0;
}

size_t gw_bcache_size(const struct gw_bcache *c)
{
    return c->n;
}
