/* The background scrubber (see scrub.h).
 *
 * Token bucket: a timer adds `rate` bytes of credit per second (at most one second's worth
 * is saved up); a chunk is read when the credit is positive and its length (capped at the
 * store's maximum chunk size, so a bogus length cannot stall the scrubber) is then taken
 * off, so credit may go negative after a large chunk and the average never exceeds the rate.
 * One read in flight at a time.
 *
 * The walk lists the index a page at a time after a cursor (the last id seen), so chunks put
 * or deleted during a pass cost nothing: new ones are scrubbed when the cursor passes them
 * or in the next pass, deleted ones answer LODE_ENOCHUNK and are skipped. A pass over a
 * small store finishes quickly; the next one starts MIN_PASS_PAUSE_MS later at the earliest,
 * so a handful of chunks is not read thousands of times a second.
 */
#include "node/scrub.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/metrics.h"

#define LOG_CTX "scrub"
#define TICK_MS 100
#define PAGE 256
#define MIN_PASS_PAUSE_MS 1000
#define DEFAULT_MAX_CHUNK (8ull << 20)

struct node_scrub {
    uv_loop_t *loop;
    struct node_store *st;
    uint64_t rate;
    uint64_t max_cost;                /* bytes: the most one read is charged */
    int64_t tokens;                   /* bytes of credit; negative = debt */
    uint64_t refilled_ms;             /* monotonic time credit was last added */
    uv_timer_t timer;
    int timer_open;
    int reading;
    struct node_chunk_info cur;       /* the chunk being read */

    struct node_chunk_info page[PAGE];
    size_t page_n, page_pos;
    bool page_more;
    struct cmn_id cursor;
    bool have_cursor;
    uint64_t pass_start_ms;
    uint64_t next_pass_ms;            /* monotonic: the next pass may not start before */
    struct node_scrub_stats pass;     /* counters of the current pass */
    struct node_scrub_stats total;

    struct cmn_counter *c_bytes, *c_chunks, *c_corrupt, *c_passes;
    struct cmn_log_ratelimit rl;

    int closing;
    void (*close_cb)(void *data);
    void *close_data;
};

static void pump(struct node_scrub *s);

static void refill(struct node_scrub *s)
{
    uint64_t now = cmn_mono_ms();
    uint64_t elapsed = now > s->refilled_ms ? now - s->refilled_ms : 0;
    int64_t cap = s->rate > INT64_MAX ? INT64_MAX : (int64_t)s->rate;
    /* At most one second's worth is saved up, so a long pause (or a huge rate) cannot
     * overflow the product. */
    uint64_t credit = elapsed >= 1000 ? (uint64_t)cap
                      : s->rate > UINT64_MAX / 1000 ? (uint64_t)cap
                      : s->rate * elapsed / 1000;
    if (credit == 0)
        return;              /* keep the elapsed time: a slow rate accumulates */
    s->refilled_ms = now;
    if (credit > (uint64_t)cap)
        credit = (uint64_t)cap;
    s->tokens = s->tokens > cap - (int64_t)credit ? cap : s->tokens + (int64_t)credit;
}

/* What a read of `length` bytes costs: never more than the largest chunk the store takes, so
 * a bogus length (a damaged index entry, a buggy listing) cannot put the bucket into a debt
 * it would take years to repay. */
static int64_t read_cost(const struct node_scrub *s, uint64_t length)
{
    uint64_t c = length < s->max_cost ? length : s->max_cost;
    return c > INT64_MAX ? INT64_MAX : (int64_t)c;
}

static void pass_done(struct node_scrub *s)
{
    uint64_t now = cmn_mono_ms();
    s->total.passes++;
    cmn_counter_add(s->c_passes, 1);
    if (s->pass.chunks || s->pass.corrupt)
        LOG_INFO(LOG_CTX, "pass %" PRIu64 " done: %" PRIu64 " chunks, %" PRIu64 " bytes "
                 "verified, %" PRIu64 " corrupt, in %" PRIu64 " s",
                 s->total.passes, s->pass.chunks, s->pass.bytes, s->pass.corrupt,
                 (now - s->pass_start_ms) / 1000);
    s->pass = (struct node_scrub_stats){0};
    s->have_cursor = false;
    s->page_n = s->page_pos = 0;
    s->page_more = false;
    s->next_pass_ms = s->pass_start_ms + MIN_PASS_PAUSE_MS;
    if (s->next_pass_ms < now)
        s->next_pass_ms = now;
    s->pass_start_ms = 0;
}

/* The next chunk to scrub: 1 with *out filled, or 0 when there is none right now (store
 * empty, pass just finished, or waiting for the next pass). */
static int next_chunk(struct node_scrub *s, struct node_chunk_info *out)
{
    if (s->page_pos >= s->page_n) {
        if (s->page_n > 0 && !s->page_more) {
            pass_done(s);
            return 0;
        }
        if (!s->have_cursor && cmn_mono_ms() < s->next_pass_ms)
            return 0;
        size_t n = 0;
        bool more = false;
        int rc = node_store_list(s->st, s->have_cursor ? &s->cursor : NULL, PAGE, s->page, &n,
                                 &more);
        s->page_pos = 0;
        s->page_n = rc == 0 ? n : 0;
        s->page_more = rc == 0 && more;
        if (rc != 0 || n == 0) {
            if (s->have_cursor)
                pass_done(s);    /* everything after the cursor went away */
            return 0;
        }
        if (!s->have_cursor)
            s->pass_start_ms = cmn_mono_ms();
        s->cursor = s->page[n - 1].id;
        s->have_cursor = true;
    }
    *out = s->page[s->page_pos++];
    return 1;
}

static void maybe_finish(struct node_scrub *s)
{
    if (!s->closing || s->timer_open || s->reading)
        return;
    void (*cb)(void *) = s->close_cb;
    void *data = s->close_data;
    free(s);
    if (cb)
        cb(data);
}

static void read_done(void *data, int status, struct node_read *rd)
{
    struct node_scrub *s = data;
    s->reading = 0;
    const struct node_chunk_info *info = &s->cur;
    char hex[CMN_ID_HEX_SIZE];
    uint32_t dropped = 0;
    switch (status) {
    case 0:
        s->pass.bytes += rd->len;
        s->total.bytes += rd->len;
        s->pass.chunks++;
        s->total.chunks++;
        cmn_counter_add(s->c_bytes, rd->len);
        cmn_counter_add(s->c_chunks, 1);
        node_read_release(rd);
        break;
    case LODE_ECORRUPT:
        /* The store has recorded it; the registrar reports it to meta. */
        s->pass.corrupt++;
        s->total.corrupt++;
        cmn_counter_add(s->c_corrupt, 1);
        cmn_id_to_hex(&info->id, hex);
        LOG_WARN(LOG_CTX, "chunk %s failed verification (disk %" PRIu32 ")", hex, info->disk);
        break;
    case LODE_ENOCHUNK:          /* deleted since it was listed */
    case LODE_ESHUTDOWN:
        break;
    default:
        if (cmn_log_ratelimit_ok(&s->rl, &dropped)) {
            cmn_id_to_hex(&info->id, hex);
            LOG_WARN(LOG_CTX, "reading chunk %s: %s%s", hex, lode_strerror(status),
                     dropped ? " (similar messages suppressed)" : "");
        }
        break;
    }
    if (s->closing) {
        maybe_finish(s);
        return;
    }
    pump(s);
}

static void pump(struct node_scrub *s)
{
    refill(s);
    while (!s->closing && !s->reading && s->tokens > 0) {
        struct node_chunk_info info;
        if (!next_chunk(s, &info))
            return;
        int64_t cost = read_cost(s, info.length);
        /* tokens > 0 here and cost >= 0: the difference cannot overflow */
        s->tokens -= cost;
        s->reading = 1;
        s->cur = info;
        int rc = node_store_get_flags(s->st, &info.id, 0, 0, NODE_GET_CHECK_HASH, read_done, s);
        if (rc == 0)
            return;
        s->reading = 0;
        if (rc == LODE_ECORRUPT) {
            /* Already known corrupt (and reported): count it in this pass, say nothing. */
            s->pass.corrupt++;
            continue;
        }
        if (rc != LODE_ENOCHUNK) {
            uint32_t dropped = 0;
            if (cmn_log_ratelimit_ok(&s->rl, &dropped))
                LOG_WARN(LOG_CTX, "cannot start a read: %s", lode_strerror(rc));
            return;              /* try again at the next tick */
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    pump(t->data);
}

int node_scrub_start(const struct node_scrub_options *o, struct node_scrub **out)
{
    struct node_scrub *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = o->loop;
    s->st = o->store;
    s->rate = o->rate;
    s->max_cost = o->max_chunk_size ? o->max_chunk_size : DEFAULT_MAX_CHUNK;
    s->refilled_ms = cmn_mono_ms();
    s->rl = (struct cmn_log_ratelimit)CMN_LOG_RATELIMIT_INIT(60000, 5);
    if (o->metrics) {
        s->c_bytes = cmn_metrics_counter(o->metrics, "lode_node_scrub_bytes_total", NULL,
                                         "Bytes read and verified by the scrubber.");
        s->c_chunks = cmn_metrics_counter(o->metrics, "lode_node_scrub_chunks_total", NULL,
                                          "Chunks read and verified by the scrubber.");
        s->c_corrupt = cmn_metrics_counter(o->metrics, "lode_node_scrub_corrupt_total", NULL,
                                           "Chunks the scrubber found corrupt.");
        s->c_passes = cmn_metrics_counter(o->metrics, "lode_node_scrub_passes_total", NULL,
                                          "Complete scrub passes over the index.");
    }
    uv_timer_init(o->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = 1;
    if (s->rate)
        uv_timer_start(&s->timer, on_tick, TICK_MS, TICK_MS);
    *out = s;
    return 0;
}

void node_scrub_stats(const struct node_scrub *s, struct node_scrub_stats *out)
{
    *out = s->total;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct node_scrub *s = h->data;
    s->timer_open = 0;
    maybe_finish(s);
}

void node_scrub_close(struct node_scrub *s, void (*cb)(void *data), void *data)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_data = data;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
