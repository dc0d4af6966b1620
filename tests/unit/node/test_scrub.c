/* The scrubber (node/scrub.c) above the in-memory store: it reads every chunk, stays within
 * its rate, finds corrupt chunks (which the store then hands to the registrar), starts over
 * after a pass, skips chunks deleted under it, does nothing at rate 0, and closes cleanly
 * with a read in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "node/scrub.h"
#include "tests/tap.h"
#include "tests/unit/node/fake_store.h"

#define N 30
#define CHUNK 10000
#define RATE 200000                  /* bytes per second: a pass takes about 1.5 s */

static uv_loop_t loop;

static void on_timer_flag(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

#define RUN_UNTIL(cond, ms)                                                              \
    ({                                                                                    \
        uv_timer_t t_;                                                                    \
        int fired_ = 0;                                                                   \
        uv_timer_init(&loop, &t_);                                                        \
        t_.data = &fired_;                                                                \
        uv_timer_start(&t_, on_timer_flag, (ms), 0);                                      \
        while (!(cond) && !fired_)                                                        \
            uv_run(&loop, UV_RUN_ONCE);                                                   \
        uv_close((uv_handle_t *)&t_, NULL);                                               \
        uv_run(&loop, UV_RUN_NOWAIT);                                                     \
        !!(cond);                                                                         \
    })

static void on_flag(void *data)
{
    (*(int *)data)++;
}

static void on_deleted(void *data, int status)
{
    if (status == 0)
        (*(int *)data)++;
}

static struct node_scrub_stats stats_of(struct node_scrub *s)
{
    struct node_scrub_stats ss;
    node_scrub_stats(s, &ss);
    return ss;
}

int main(void)
{
    cmn_log_init("test_scrub", CMN_LOG_ERROR);
    if (uv_loop_init(&loop))
        tap_bail("loop");
    struct node_store *st;
    struct node_store_options so = {0};
    if (node_store_open(&loop, &so, &st, NULL))
        tap_bail("store");
    static uint8_t data[CHUNK];
    struct cmn_id ids[N];
    for (int i = 0; i < N; i++) {
        memset(data, i, sizeof(data));
        ids[i] = cmn_id_random();
        fake_store_add(st, &ids[i], data, sizeof(data));
    }
    struct cmn_id bad = ids[N / 2];
    fake_store_corrupt(st, &bad);

    /* ---- rate 0: idle ---- */
    struct node_scrub *s;
    struct node_scrub_options o = {.loop = &loop, .store = st, .rate = 0};
    is_int(node_scrub_start(&o, &s), 0, "a scrubber with rate 0 starts");
    (void)RUN_UNTIL(0, 300);
    is_int(fake_store_reads(st), 0, "and reads nothing");
    int closed = 0;
    node_scrub_close(s, on_flag, &closed);
    ok(RUN_UNTIL(closed, 2000), "and closes");

    /* ---- one pass at RATE ---- */
    o.rate = RATE;
    is_int(node_scrub_start(&o, &s), 0, "a scrubber at 200000 B/s starts");
    uint64_t t0 = cmn_mono_ms();
    (void)RUN_UNTIL(0, 700);
    uint64_t elapsed = cmn_mono_ms() - t0;
    uint64_t read = fake_store_read_bytes(st);
    ok(read > 0, "it reads (%llu bytes in %llu ms)", (unsigned long long)read,
       (unsigned long long)elapsed);
    /* Credit: the rate over the time elapsed, plus one chunk of debt. */
    ok(read <= RATE * elapsed / 1000 + CHUNK, "within its rate (%llu <= %llu)",
       (unsigned long long)read, (unsigned long long)(RATE * elapsed / 1000 + CHUNK));
    ok(RUN_UNTIL(stats_of(s).passes >= 1, 5000), "a full pass completes");
    struct node_scrub_stats ss = stats_of(s);
    is_int(ss.chunks, N - 1, "every sound chunk was read once");
    is_int(ss.bytes, (N - 1) * CHUNK, "and its bytes verified");
    is_int(ss.corrupt, 1, "the corrupt one was found");
    struct cmn_id taken[4];
    size_t n = node_store_corrupt_take(st, taken, 4);
    ok(n == 1 && cmn_id_cmp(&taken[0], &bad) == 0, "and recorded by the store for meta");

    /* ---- the next pass starts over; chunks deleted meanwhile are skipped ---- */
    int deleted = 0;
    for (int i = 0; i < 5; i++)
        node_store_delete(st, &ids[i], on_deleted, &deleted);
    ok(RUN_UNTIL(deleted == 5, 2000), "five chunks deleted");
    ok(RUN_UNTIL(stats_of(s).passes >= 2, 6000), "a second pass completes");
    ss = stats_of(s);
    ok(ss.chunks >= N - 1 + N - 6 && ss.corrupt == 2, "it read the remaining chunks again "
       "(%llu in total, %llu corrupt)", (unsigned long long)ss.chunks,
       (unsigned long long)ss.corrupt);

    /* ---- close with a read in flight ---- */
    fake_store_set_delay(st, 300);
    uint64_t reads = fake_store_reads(st);
    (void)RUN_UNTIL(0, 1200);
    closed = 0;
    node_scrub_close(s, on_flag, &closed);
    ok(closed == 0, "close waits");
    ok(RUN_UNTIL(closed, 3000), "close completes after the read in flight");
    ok(fake_store_reads(st) >= reads, "reads went on until then");

    closed = 0;
    node_store_close(st, on_flag, &closed);
    (void)RUN_UNTIL(closed, 5000);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "every handle closed");
    return tap_done();
}
