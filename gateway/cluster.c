/* The cluster map holder with its refresher, and the access-key cache (see cluster.h).
 *
 * Refresher, on one loop, with at most one CLUSTER_MAP_GET in flight:
 *
 *   start -> fetch -> answer: publish, timer(refresh_ms)   [timer(kick_gap) if kicked meanwhile]
 *                  -> error: keep the old map, timer(refresh_ms)
 *   kick (uv_async from any thread) -> fetch in flight: remember it
 *                                   -> idle: move the timer to max(0, gap - since last fetch)
 *
 * Only transitions between "fetching works" and "fetching fails" are logged, so a meta
 * outage costs two lines, not one per interval.
 *
 * Key cache: one hash table of entries (known and unknown keys), two LRU lists (known,
 * unknown) with bounds of their own, so a flood of made-up keys evicts only other made-up
 * keys; a table of fetches in flight keyed by (meta client, key), which is what coalesces
 * concurrent misses of one loop. Fetch results are delivered on the fetch's loop; a fetch's
 * waiter list is touched only there, so it needs no lock.
 */
#include "gateway/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/conf.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc_methods.h"

#define LOG_CTX "cluster"
#define KEYS_CTX "keys"
#define ADDR_MAX 256
#define DEFAULT_REFRESH_MS 2000
#define DEFAULT_KICK_GAP_MS 250
#define DEFAULT_CALL_MS 5000
#define FETCH_BUCKETS 256

/* ======================================================================================
 * Snapshots
 * ==================================================================================== */

bool gw_map_node_writable(const struct gw_map_node *n)
{
    return n && n->state == LODE__NODE_STATE__NODE_UP;
}

bool gw_map_node_readable(const struct gw_map_node *n)
{
    return n && (n->state == LODE__NODE_STATE__NODE_UP ||
                 n->state == LODE__NODE_STATE__NODE_SUSPECT ||
                 n->state == LODE__NODE_STATE__NODE_DRAINING);
}

static int cmp_nid(const void *a, const void *b)
{
    uint32_t x = ((const struct gw_map_node *)a)->nid, y = ((const struct gw_map_node *)b)->nid;
    return x < y ? -1 : x > y;
}

static size_t str_size(const char *s)
{
    return (s ? strlen(s) : 0) + 1;
}

/* Copies s into the pool at *pos and returns the copy. */
static const char *pool_copy(char *pool, size_t *pos, const char *s)
{
    size_t n = str_size(s);
    char *dst = pool + *pos;
    memcpy(dst, s ? s : "", n);
    *pos += n;
    return dst;
}

int gw_cluster_map_from_proto(const Lode__ClusterMap *pb, uint64_t fetched_ms,
                              struct gw_cluster_map **out, struct cmn_err *err)
{
    *out = NULL;
    size_t n = pb->n_nodes, strings = 0;
    for (size_t i = 0; i < n; i++) {
        const Lode__NodeInfo *ni = pb->nodes[i];
        char host[ADDR_MAX];
        uint16_t port = 0;
        if (!ni || ni->nid == 0)
            return cmn_err_set(err, LODE_EBADMSG, "cluster map entry %zu has no node id", i);
        if (!ni->address || !*ni->address || strlen(ni->address) >= ADDR_MAX ||
            cmn_addr_split(ni->address, host, sizeof(host), &port) || port == 0)
            return cmn_err_set(err, LODE_EBADMSG, "node %" PRIu32 " has no usable address "
                               "('%.64s')", ni->nid, ni->address ? ni->address : "");
        strings += str_size(ni->address) + str_size(ni->failure_domain) +
                   str_size(ni->data_address) + str_size(ni->rdma_address);
    }
    /* One block: the map, its nodes, their strings; freed with one free(). */
    size_t size = sizeof(struct gw_cluster_map) + n * sizeof(struct gw_map_node) + strings;
    struct gw_cluster_map *m = calloc(1, size);
    if (!m)
        return cmn_err_set(err, -ENOMEM, "out of memory for a cluster map of %zu nodes", n);
    struct gw_map_node *nodes = (struct gw_map_node *)(m + 1);
    char *pool = (char *)(nodes + n);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const Lode__NodeInfo *ni = pb->nodes[i];
        nodes[i].nid = ni->nid;
        nodes[i].state = ni->state;
        nodes[i].address = pool_copy(pool, &pos, ni->address);
        nodes[i].failure_domain = pool_copy(pool, &pos, ni->failure_domain);
        nodes[i].data_address = pool_copy(pool, &pos, ni->data_address);
        nodes[i].rdma_address = pool_copy(pool, &pos, ni->rdma_address);
        nodes[i].dc = ni->dc;
        nodes[i].capacity_bytes = ni->capacity_bytes;
        nodes[i].used_bytes = ni->used_bytes;
    }
    qsort(nodes, n, sizeof(*nodes), cmp_nid);
    for (size_t i = 1; i < n; i++) {
        if (nodes[i].nid == nodes[i - 1].nid) {
            int rc = cmn_err_set(err, LODE_EBADMSG, "cluster map lists node %" PRIu32 " twice",
                                 nodes[i].nid);
            free(m);
            return rc;
        }
    }
    m->epoch = pb->epoch;
    m->fetched_ms = fetched_ms;
    m->n_nodes = n;
    m->nodes = nodes;
    atomic_init(&m->refs_, 1);
    *out = m;
    return 0;
}

const struct gw_map_node *gw_cluster_map_find(const struct gw_cluster_map *map, uint32_t nid)
{
    if (!map)
        return NULL;
    size_t lo = 0, hi = map->n_nodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (map->nodes[mid].nid == nid)
            return &map->nodes[mid];
        if (map->nodes[mid].nid < nid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

struct gw_cluster_map *gw_cluster_map_hold(struct gw_cluster_map *map)
{
    atomic_fetch_add_explicit(&map->refs_, 1, memory_order_relaxed);
    return map;
}

void gw_cluster_map_put(struct gw_cluster_map *map)
{
    /* acq_rel: the last holder must see every other holder's reads finished before free. */
    if (map && atomic_fetch_sub_explicit(&map->refs_, 1, memory_order_acq_rel) == 1)
        free(map);
}

unsigned gw_cluster_map_refs(const struct gw_cluster_map *map)
{
    return map ? atomic_load_explicit(&map->refs_, memory_order_relaxed) : 0;
}

/* ======================================================================================
 * The holder and its refresher
 * ==================================================================================== */

struct gw_cluster {
    pthread_mutex_t mu;
    pthread_cond_t ready_cv;              /* on CLOCK_MONOTONIC */
    struct gw_cluster_map *map;           /* under mu; the holder's own reference */
    _Atomic uint64_t gen;
    char last_error[256];                 /* under mu */
    struct gw_cluster_stats stats;        /* under mu */
    bool running;                         /* under mu: kicks may be sent */

    /* Refresher: its loop's thread only. */
    uint64_t refresh_ms, kick_gap_ms;
    uint32_t call_timeout_ms;
    uv_loop_t *loop;
    struct cmn_meta_async *ma;
    uv_timer_t timer;
    uv_async_t async;
    bool started, stopping, in_flight, kick_pending, failing, stop_done;
    unsigned handles_open;
    uint64_t last_fetch_ms;               /* uv_now when the last fetch left */
    void (*stop_cb)(void *data);
    void *stop_data;

    struct cmn_counter *m_ok, *m_err, *m_kicks;
    struct cmn_gauge *m_epoch, *m_nodes;
};

int gw_cluster_create(const struct gw_cluster_config *cfg, struct gw_cluster **out)
{
    *out = NULL;
    struct gw_cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&c->ready_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) {
        free(c);
        return -rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->gen, 0);
    c->refresh_ms = cfg && cfg->refresh_ms ? cfg->refresh_ms : DEFAULT_REFRESH_MS;
    c->kick_gap_ms = cfg && cfg->kick_gap_ms ? cfg->kick_gap_ms : DEFAULT_KICK_GAP_MS;
    c->call_timeout_ms = cfg && cfg->call_timeout_ms ? cfg->call_timeout_ms : DEFAULT_CALL_MS;
    snprintf(c->last_error, sizeof(c->last_error), "no cluster map fetched yet");
    struct cmn_metrics *m = cfg ? cfg->metrics : NULL;
    if (m) {
        const char *name = "lode_gateway_map_fetches_total";
        const char *help = "Cluster map fetches from lode-meta, by result";
        c->m_ok = cmn_metrics_counter(m, name, "result=\"ok\"", help);
        c->m_err = cmn_metrics_counter(m, name, "result=\"error\"", help);
        c->m_kicks = cmn_metrics_counter(m, "lode_gateway_map_kicks_total", NULL,
                                         "Early map fetches asked for after node errors");
        c->m_epoch = cmn_metrics_gauge(m, "lode_gateway_map_epoch", NULL,
                                       "Epoch of the cluster map in use");
        c->m_nodes = cmn_metrics_gauge(m, "lode_gateway_map_nodes", NULL,
                                       "Data nodes in the cluster map in use");
        if (!c->m_ok || !c->m_err || !c->m_kicks || !c->m_epoch || !c->m_nodes) {
            gw_cluster_destroy(c);
            return LODE_ECONFIG;
        }
    }
    *out = c;
    return 0;
}

void gw_cluster_destroy(struct gw_cluster *c)
{
    if (!c)
        return;
    gw_cluster_map_put(c->map);
    pthread_cond_destroy(&c->ready_cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

struct gw_cluster_map *gw_cluster_map_get(struct gw_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    struct gw_cluster_map *m = c->map ? gw_cluster_map_hold(c->map) : NULL;
    pthread_mutex_unlock(&c->mu);
    return m;
}

uint64_t gw_cluster_generation(const struct gw_cluster *c)
{
    return atomic_load_explicit(&((struct gw_cluster *)c)->gen, memory_order_acquire);
}

void gw_cluster_publish(struct gw_cluster *c, struct gw_cluster_map *map)
{
    pthread_mutex_lock(&c->mu);
    struct gw_cluster_map *old = c->map;
    c->map = map;
    c->stats.epoch = map->epoch;
    atomic_fetch_add_explicit(&c->gen, 1, memory_order_release);
    pthread_cond_broadcast(&c->ready_cv);
    pthread_mutex_unlock(&c->mu);
    if (c->m_epoch) {
        cmn_gauge_set(c->m_epoch, (double)map->epoch);
        cmn_gauge_set(c->m_nodes, (double)map->n_nodes);
    }
    /* Outside the lock: freeing the old snapshot is the only slow part of a swap. */
    gw_cluster_map_put(old);
}

bool gw_cluster_ready(struct gw_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    bool ready = c->map != NULL;
    pthread_mutex_unlock(&c->mu);
    return ready;
}

int gw_cluster_wait_ready(struct gw_cluster *c, uint32_t timeout_ms, struct cmn_err *err)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    while (!c->map && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->ready_cv, &c->mu, &dl);
    int out = 0;
    if (!c->map)
        out = cmn_err_set(err, LODE_ETIMEOUT, "no cluster map from lode-meta within %u ms: %s",
                          timeout_ms, c->last_error);
    pthread_mutex_unlock(&c->mu);
    return out;
}

void gw_cluster_stats(struct gw_cluster *c, struct gw_cluster_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}

static void on_timer(uv_timer_t *t);

static void schedule(struct gw_cluster *c, uint64_t delay_ms)
{
    if (!c->stopping)
        uv_timer_start(&c->timer, on_timer, delay_ms, 0);
}

static void maybe_stopped(struct gw_cluster *c)
{
    if (!c->stopping || c->handles_open || c->in_flight || c->stop_done)
        return;
    c->stop_done = true;
    if (c->stop_cb)
        c->stop_cb(c->stop_data);
}

static void fetch_failed(struct gw_cluster *c, const char *why)
{
    pthread_mutex_lock(&c->mu);
    c->stats.failures++;
    snprintf(c->last_error, sizeof(c->last_error), "%s", why);
    bool have_map = c->map != NULL;
    pthread_mutex_unlock(&c->mu);
    if (c->m_err)
        cmn_counter_add(c->m_err, 1);
    if (!c->failing)
        LOG_WARN(LOG_CTX, "cannot fetch the cluster map: %s (%s)", why,
                 have_map ? "using the last one fetched" : "requests needing it fail");
    c->failing = true;
}

static void on_map(void *data, const struct cmn_rpc_result *res)
{
    struct gw_cluster *c = data;
    c->in_flight = false;
    if (c->stopping) {
        maybe_stopped(c);
        return;
    }
    if (res->status != 0) {
        char why[300];
        const char *msg = res->message[0] ? res->message : lode_strerror(res->status);
        /* The meta client's own messages already name the call. */
        snprintf(why, sizeof(why), "%s%s", strstr(msg, "CLUSTER_MAP_GET") ? ""
                                                                       : "CLUSTER_MAP_GET: ",
                 msg);
        fetch_failed(c, why);
    } else {
        Lode__ClusterMap *pb = lode__cluster_map__unpack(NULL, res->body.len, res->body.data);
        struct gw_cluster_map *m = NULL;
        struct cmn_err err;
        cmn_err_clear(&err);
        if (!pb)
            cmn_err_set(&err, LODE_EBADMSG, "CLUSTER_MAP_GET answered with an undecodable map");
        else
            gw_cluster_map_from_proto(pb, cmn_mono_ms(), &m, &err);
        if (pb)
            lode__cluster_map__free_unpacked(pb, NULL);
        if (!m) {
            fetch_failed(c, cmn_err_text(&err));
        } else {
            if (c->failing)
                LOG_INFO(LOG_CTX, "cluster map fetched again (epoch %" PRIu64 ", %zu nodes)",
                         m->epoch, m->n_nodes);
            c->failing = false;
            pthread_mutex_lock(&c->mu);
            c->stats.fetches++;
            pthread_mutex_unlock(&c->mu);
            if (c->m_ok)
                cmn_counter_add(c->m_ok, 1);
            gw_cluster_publish(c, m);
        }
    }
    if (c->kick_pending) {
        c->kick_pending = false;
        schedule(c, c->kick_gap_ms);
    } else {
        schedule(c, c->refresh_ms);
    }
}

static void fetch(struct gw_cluster *c)
{
    c->in_flight = true;
    c->last_fetch_ms = uv_now(c->loop);
    int rc = cmn_meta_async_call(c->ma, CMN_RPC_CLUSTER_MAP_GET, CMN_RPC_FLAG_STALE_OK, NULL,
                                 c->call_timeout_ms, on_map, c);
    if (rc != 0) {
        c->in_flight = false;
        char why[200];
        snprintf(why, sizeof(why), "CLUSTER_MAP_GET not sent: %s", lode_strerror(rc));
        fetch_failed(c, why);
        schedule(c, c->refresh_ms);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct gw_cluster *c = t->data;
    if (c->in_flight || c->stopping)
        return;
    c->kick_pending = false;
    fetch(c);
}

static void on_kick(uv_async_t *a)
{
    struct gw_cluster *c = a->data;
    if (c->stopping)
        return;
    pthread_mutex_lock(&c->mu);
    c->stats.kicks++;
    pthread_mutex_unlock(&c->mu);
    if (c->m_kicks)
        cmn_counter_add(c->m_kicks, 1);
    if (c->in_flight) {
        c->kick_pending = true;
        return;
    }
    uint64_t since = uv_now(c->loop) - c->last_fetch_ms;
    uint64_t delay = since >= c->kick_gap_ms ? 0 : c->kick_gap_ms - since;
    if (!uv_is_active((uv_handle_t *)&c->timer) || uv_timer_get_due_in(&c->timer) > delay)
        schedule(c, delay);
}

void gw_cluster_kick(struct gw_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->running)
        uv_async_send(&c->async);
    pthread_mutex_unlock(&c->mu);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct gw_cluster *c = h->data;
    c->handles_open--;
    maybe_stopped(c);
}

int gw_cluster_start(struct gw_cluster *c, uv_loop_t *loop, struct cmn_meta_async *ma)
{
    if (c->started)
        return -EALREADY;
    /* The async handle first: it is the one that can fail (no eventfd), and nothing needs
     * closing when it does. uv_timer_init cannot fail. */
    int rc = uv_async_init(loop, &c->async, on_kick);
    if (rc)
        return rc;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->async.data = c;
    c->handles_open = 2;
    c->loop = loop;
    c->ma = ma;
    c->started = true;
    pthread_mutex_lock(&c->mu);
    c->running = true;
    pthread_mutex_unlock(&c->mu);
    fetch(c);
    return 0;
}

void gw_cluster_stop(struct gw_cluster *c, void (*cb)(void *data), void *data)
{
    if (!c->started || c->stopping) {
        if (!c->started && cb)
            cb(data);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->running = false;
    pthread_mutex_unlock(&c->mu);
    c->stopping = true;
    c->stop_cb = cb;
    c->stop_data = data;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->async, on_handle_closed);
}

/* ======================================================================================
 * The access-key cache
 * ==================================================================================== */

struct entry {
    struct entry *hnext;                  /* hash chain */
    struct entry *prev, *next;            /* its LRU list (known or unknown keys) */
    bool negative;
    uint64_t expires_ms;
    size_t key_len;
    char key[GW_KEY_ACCESS_MAX + 1];
    char user[GW_KEY_USER_MAX + 1];
    size_t secret_len;
    char secret[GW_KEY_SECRET_MAX + 1];
};

struct lru {
    struct entry *head, *tail;            /* head = most recently used */
    size_t n, max;
};

struct gw_keys_fetch {
    struct gw_keys_fetch *hnext;
    struct gw_keys *keys;
    struct cmn_meta_async *ma;            /* identifies the loop */
    size_t key_len;
    char key[GW_KEY_ACCESS_MAX + 1];
    struct gw_keys_req *waiters;          /* loop thread only */
};

struct gw_keys {
    pthread_mutex_t mu;
    struct gw_keys_config cfg;
    uint64_t seed;                        /* hash key: made-up ids cannot aim at one chain */
    size_t n_buckets;                     /* power of two */
    struct entry **buckets;
    struct lru known, unknown;
    struct gw_keys_fetch *fetches[FETCH_BUCKETS];
    unsigned n_fetches;
    struct gw_keys_stats stats;           /* entries/pending derived when read */
    struct cmn_counter *m_hit, *m_neg, *m_fetch, *m_coalesced, *m_err, *m_evict;
};

void gw_key_wipe(struct gw_key *key)
{
    explicit_bzero(key, sizeof(*key));
}

static uint64_t keys_now(struct gw_keys *k)
{
    return k->cfg.clock_ms ? k->cfg.clock_ms(k->cfg.clock_data) : cmn_mono_ms();
}

static uint64_t hash_key(const struct gw_keys *k, const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ k->seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static void lru_unlink(struct lru *l, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->n--;
}

static void lru_push(struct lru *l, struct entry *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    l->head = e;
    if (!l->tail)
        l->tail = e;
    l->n++;
}

static struct entry **entry_slot(struct gw_keys *k, const char *key, size_t len)
{
    struct entry **p = &k->buckets[hash_key(k, key, len) & (k->n_buckets - 1)];
    while (*p && !((*p)->key_len == len && memcmp((*p)->key, key, len) == 0))
        p = &(*p)->hnext;
    return p;
}

/* Unlinks *slot from the table and its list, wipes and frees it. */
static void entry_drop(struct gw_keys *k, struct entry **slot)
{
    struct entry *e = *slot;
    *slot = e->hnext;
    lru_unlink(e->negative ? &k->unknown : &k->known, e);
    explicit_bzero(e, sizeof(*e));
    free(e);
}

static void entry_evict_tail(struct gw_keys *k, struct lru *l)
{
    struct entry *victim = l->tail;
    entry_drop(k, entry_slot(k, victim->key, victim->key_len));
    k->stats.evictions++;
    if (k->m_evict)
        cmn_counter_add(k->m_evict, 1);
}

/* Caches an answer (under mu): replaces an older entry for the key. */
static void entry_insert(struct gw_keys *k, const char *key, size_t len, const struct gw_key *a,
                         uint64_t now)
{
    bool negative = a->status == LODE_ENOACCESSKEY;
    if (negative && k->cfg.negative_ttl_ms == 0)
        return;
    struct entry **slot = entry_slot(k, key, len);
    if (*slot)
        entry_drop(k, slot);
    struct lru *l = negative ? &k->unknown : &k->known;
    if (l->max == 0)
        return;
    while (l->n >= l->max)
        entry_evict_tail(k, l);
    struct entry *e = calloc(1, sizeof(*e));
    if (!e)
        return;                           /* not cached: the next lookup asks again */
    e->negative = negative;
    e->expires_ms = now + (negative ? k->cfg.negative_ttl_ms : k->cfg.ttl_ms);
    e->key_len = len;
    memcpy(e->key, key, len);
    if (!negative) {
        memcpy(e->user, a->user, sizeof(e->user));
        memcpy(e->secret, a->secret, a->secret_len);
        e->secret_len = a->secret_len;
    }
    slot = entry_slot(k, key, len);       /* evictions may have changed the chain */
    e->hnext = *slot;
    *slot = e;
    lru_push(l, e);
}

int gw_keys_create(const struct gw_keys_config *cfg, struct gw_keys **out)
{
    *out = NULL;
    if (!cfg || cfg->ttl_ms == 0 || cfg->max_entries == 0 || cfg->max_pending == 0 ||
        cfg->fetch_timeout_ms == 0 || (cfg->negative_ttl_ms && cfg->max_negative == 0))
        return -EINVAL;
    struct gw_keys *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->cfg = *cfg;
    k->known.max = cfg->max_entries;
    k->unknown.max = cfg->negative_ttl_ms ? cfg->max_negative : 0;
    size_t want = cfg->max_entries + k->unknown.max;
    k->n_buckets = 64;
    while (k->n_buckets < want && k->n_buckets < (1u << 24))
        k->n_buckets <<= 1;
    k->buckets = calloc(k->n_buckets, sizeof(*k->buckets));
    if (!k->buckets || cmn_random_bytes(&k->seed, sizeof(k->seed)) != 0) {
        free(k->buckets);
        free(k);
        return -ENOMEM;
    }
    pthread_mutex_init(&k->mu, NULL);
    struct cmn_metrics *m = cfg->metrics;
    if (m) {
        const char *name = "lode_gateway_key_cache_lookups_total";
        const char *help = "Access-key lookups, by how they were answered";
        k->m_hit = cmn_metrics_counter(m, name, "result=\"hit\"", help);
        k->m_neg = cmn_metrics_counter(m, name, "result=\"negative_hit\"", help);
        k->m_fetch = cmn_metrics_counter(m, name, "result=\"fetch\"", help);
        k->m_coalesced = cmn_metrics_counter(m, name, "result=\"coalesced\"", help);
        k->m_err = cmn_metrics_counter(m, "lode_gateway_key_fetch_errors_total", NULL,
                                       "ACCESS_KEY_GET calls that got no answer from lode-meta");
        k->m_evict = cmn_metrics_counter(m, "lode_gateway_key_cache_evictions_total", NULL,
                                         "Cached access keys dropped to make room");
        if (!k->m_hit || !k->m_neg || !k->m_fetch || !k->m_coalesced || !k->m_err ||
            !k->m_evict) {
            gw_keys_destroy(k);
            return LODE_ECONFIG;
        }
    }
    *out = k;
    return 0;
}

void gw_keys_destroy(struct gw_keys *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n_buckets; i++)
        while (k->buckets[i])
            entry_drop(k, &k->buckets[i]);
    if (k->n_fetches)
        LOG_ERROR(KEYS_CTX, "access-key cache destroyed with %u fetches in flight",
                  k->n_fetches);
    free(k->buckets);
    pthread_mutex_destroy(&k->mu);
    explicit_bzero(k, sizeof(*k));
    free(k);
}

static bool key_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > GW_KEY_ACCESS_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static struct gw_keys_fetch **fetch_slot(struct gw_keys *k, struct cmn_meta_async *ma,
                                         const char *key, size_t len)
{
    uint64_t h = hash_key(k, key, len) ^ (uint64_t)(uintptr_t)ma;
    struct gw_keys_fetch **p = &k->fetches[(h ^ (h >> 17)) % FETCH_BUCKETS];
    while (*p && !((*p)->ma == ma && (*p)->key_len == len && memcmp((*p)->key, key, len) == 0))
        p = &(*p)->hnext;
    return p;
}

/* The answer of one ACCESS_KEY_GET, decoded into `a`. The reply buffers hold the secret
 * too: they are wiped before the RPC layer frees them. */
static void decode_answer(struct gw_keys_fetch *f, const struct cmn_rpc_result *res,
                          struct gw_key *a)
{
    memset(a, 0, sizeof(*a));
    if (res->status != 0) {
        a->status = res->status;
        if (res->status == LODE_ENOACCESSKEY)
            snprintf(a->message, sizeof(a->message), "no access key '%.*s'", (int)f->key_len,
                     f->key);
        else
            snprintf(a->message, sizeof(a->message), "lode-meta did not answer: %.120s",
                     res->message[0] ? res->message : lode_strerror(res->status));
        return;
    }
    Lode__AccessKeyRecord *r = lode__access_key_record__unpack(NULL, res->body.len,
                                                               res->body.data);
    explicit_bzero(res->body.data, res->body.len);
    size_t slen = r && r->secret_key ? strlen(r->secret_key) : 0;
    size_t ulen = r && r->user ? strlen(r->user) : 0;
    if (!r || !r->access_key || strlen(r->access_key) != f->key_len ||
        memcmp(r->access_key, f->key, f->key_len) != 0 || slen == 0 ||
        slen > GW_KEY_SECRET_MAX || ulen == 0 || ulen > GW_KEY_USER_MAX) {
        a->status = LODE_EBADMSG;
        snprintf(a->message, sizeof(a->message),
                 "ACCESS_KEY_GET answered with a malformed record for '%.*s'",
                 (int)f->key_len, f->key);
    } else {
        memcpy(a->secret, r->secret_key, slen);
        a->secret_len = slen;
        memcpy(a->user, r->user, ulen);
    }
    if (r) {
        if (r->secret_key)
            explicit_bzero(r->secret_key, slen);
        lode__access_key_record__free_unpacked(r, NULL);
    }
}

static void on_fetched(void *data, const struct cmn_rpc_result *res)
{
    struct gw_keys_fetch *f = data;
    struct gw_keys *k = f->keys;
    struct gw_key a;
    decode_answer(f, res, &a);
    bool answered = a.status == 0 || a.status == LODE_ENOACCESSKEY;

    pthread_mutex_lock(&k->mu);
    struct gw_keys_fetch **slot = fetch_slot(k, f->ma, f->key, f->key_len);
    if (*slot == f) {
        *slot = f->hnext;
        k->n_fetches--;
    }
    if (answered)
        entry_insert(k, f->key, f->key_len, &a, keys_now(k));
    else
        k->stats.fetch_errors++;
    pthread_mutex_unlock(&k->mu);
    if (!answered) {
        if (k->m_err)
            cmn_counter_add(k->m_err, 1);
        LOG_DEBUG(KEYS_CTX, "%s", a.message);
    }

    /* One waiter at a time from the head: a callback may cancel another waiter. */
    struct gw_keys_req *w;
    while ((w = f->waiters) != NULL) {
        f->waiters = w->next_;
        w->next_ = NULL;
        w->fetch_ = NULL;
        w->key = a;
        w->cb(w);
    }
    gw_key_wipe(&a);
    explicit_bzero(f, sizeof(*f));
    free(f);
}

int gw_keys_lookup(struct gw_keys *k, struct cmn_meta_async *ma, const char *access_key,
                   size_t len, struct gw_keys_req *req)
{
    if (!req->cb || !ma)
        return -EINVAL;
    req->next_ = NULL;
    req->fetch_ = NULL;
    if (!key_id_valid(access_key, len)) {
        /* Never reaches meta, and its bytes are not echoed (they may be anything). */
        memset(&req->key, 0, sizeof(req->key));
        req->key.status = LODE_ENOACCESSKEY;
        snprintf(req->key.message, sizeof(req->key.message),
                 "malformed access key id (1-%d printable characters)", GW_KEY_ACCESS_MAX);
        return GW_KEYS_HIT;
    }
    uint64_t now = keys_now(k);
    pthread_mutex_lock(&k->mu);
    struct entry **slot = entry_slot(k, access_key, len);
    if (*slot && (*slot)->expires_ms <= now)
        entry_drop(k, slot);
    struct entry *e = *slot;
    if (e) {
        struct lru *l = e->negative ? &k->unknown : &k->known;
        lru_unlink(l, e);
        lru_push(l, e);
        memset(&req->key, 0, sizeof(req->key));
        if (e->negative) {
            k->stats.negative_hits++;
            req->key.status = LODE_ENOACCESSKEY;
            snprintf(req->key.message, sizeof(req->key.message), "no access key '%.*s'",
                     (int)len, access_key);
        } else {
            k->stats.hits++;
            memcpy(req->key.user, e->user, sizeof(e->user));
            memcpy(req->key.secret, e->secret, e->secret_len);
            req->key.secret_len = e->secret_len;
        }
        pthread_mutex_unlock(&k->mu);
        struct cmn_counter *c = e->negative ? k->m_neg : k->m_hit;
        if (c)
            cmn_counter_add(c, 1);
        return GW_KEYS_HIT;
    }
    struct gw_keys_fetch **fs = fetch_slot(k, ma, access_key, len);
    if (*fs) {
        /* Same loop (same meta client): the waiter list is ours to touch. */
        req->next_ = (*fs)->waiters;
        (*fs)->waiters = req;
        req->fetch_ = *fs;
        k->stats.coalesced++;
        pthread_mutex_unlock(&k->mu);
        if (k->m_coalesced)
            cmn_counter_add(k->m_coalesced, 1);
        return 0;
    }
    if (k->n_fetches >= k->cfg.max_pending) {
        pthread_mutex_unlock(&k->mu);
        return -EAGAIN;
    }
    struct gw_keys_fetch *f = calloc(1, sizeof(*f));
    if (!f) {
        pthread_mutex_unlock(&k->mu);
        return -ENOMEM;
    }
    f->keys = k;
    f->ma = ma;
    f->key_len = len;
    memcpy(f->key, access_key, len);
    f->hnext = NULL;
    *fs = f;
    k->n_fetches++;
    k->stats.fetches++;
    pthread_mutex_unlock(&k->mu);

    Lode__AccessKeyRequest q = LODE__ACCESS_KEY_REQUEST__INIT;
    q.access_key = f->key;
    int rc = cmn_meta_async_call(ma, CMN_RPC_ACCESS_KEY_GET, 0, &q.base, k->cfg.fetch_timeout_ms,
                                 on_fetched, f);
    if (rc != 0) {
        pthread_mutex_lock(&k->mu);
        fs = fetch_slot(k, ma, f->key, len);
        if (*fs == f) {
            *fs = f->hnext;
            k->n_fetches--;
        }
        k->stats.fetches--;
        pthread_mutex_unlock(&k->mu);
        free(f);
        return rc;
    }
    if (k->m_fetch)
        cmn_counter_add(k->m_fetch, 1);
    req->fetch_ = f;
    f->waiters = req;
    return 0;
}

void gw_keys_cancel(struct gw_keys_req *req)
{
    struct gw_keys_fetch *f = req->fetch_;
    if (!f)
        return;
    for (struct gw_keys_req **p = &f->waiters; *p; p = &(*p)->next_) {
        if (*p == req) {
            *p = req->next_;
            break;
        }
    }
    req->next_ = NULL;
    req->fetch_ = NULL;
}

void gw_keys_invalidate(struct gw_keys *k, const char *access_key, size_t len)
{
    if (!key_id_valid(access_key, len))
        return;
    pthread_mutex_lock(&k->mu);
    struct entry **slot = entry_slot(k, access_key, len);
    if (*slot)
        entry_drop(k, slot);
    pthread_mutex_unlock(&k->mu);
}

void gw_keys_stats(struct gw_keys *k, struct gw_keys_stats *out)
{
    pthread_mutex_lock(&k->mu);
    *out = k->stats;
    out->entries = k->known.n;
    out->negative_entries = k->unknown.n;
    out->pending = k->n_fetches;
    pthread_mutex_unlock(&k->mu);
}
