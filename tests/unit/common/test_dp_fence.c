/* The tcp data plane's fence on loopback: frames outside a window or after its close never
 * land, request tags keep a finished request's late frames out of the next window opened at
 * the same base, staged windows give their slots back, and a slow reader never makes a
 * source queue more than its cap. The fixture is tests/unit/common/dp_fixture.h;
 * test_dp_tcp.c has sessions, refusals and failing sources. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/dp_recv.h"
#include "common/dp_proto.h"
#include "common/dp_server.h"
#include "common/log.h"
#include "tests/tap.h"
#include "tests/unit/common/dp_fixture.h"

/* The request tag the tests' windows and pushes use unless a test is about tags. */
#define TAG 0x5eed0001u

/* The fence: nothing lands after window_close, and frames outside a window never land. */
static void test_fence(void)
{
    int port;
    struct cmn_dp_server *srv = df_server_new(5, 0, 0, 0, 0, &port);
    struct cmn_dp_cred c = df_cred_make(3, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    df_add(r, 5, port);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "source ready");

    /* Guards on both sides of the window show that out-of-window frames never land. */
    size_t size = 64 * 1024, guard = 4096;
    uint8_t *mem = malloc(size + 2 * guard);
    memset(mem, 0xa5, size + 2 * guard);
    uint64_t base = 0x5000000;
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, base, size, TAG, mem + guard, NULL, &w);
    uint8_t *src = malloc(16 * DF_MIB);
    memset(src, 0x11, 16 * DF_MIB);
    struct df_piece bad[] = {
        {srv, c.sid, DF_KEY, base, TAG, base + size - 100, src, 200}, /* crosses the end */
        {srv, c.sid, DF_KEY, base, TAG, base - 1, src, 2},            /* starts before */
        {srv, c.sid, DF_KEY, base + 1, TAG, base + 1, src, 10},       /* no window has that base */
        {srv, c.sid, DF_KEY, base, TAG, UINT64_MAX - 4, src, 10},     /* addr + len wraps */
        {srv, c.sid, DF_KEY, base, TAG + 1, base, src, 20},           /* the base's, not its tag */
    };
    is_int(df_push(bad, 5), 0, "five stray frames submitted");
    ok(df_wait_stats(r, df_dropped_at_least, 5), "receiver dropped all five");
    ok(df_all_equal(mem, size + 2 * guard, 0xa5), "window and guards untouched");
    is_int(lc_dp_recv_window_dropped(r, w), 200 + 2 + 10, "window counts its own strays");
    struct lc_dp_recv_stats sts;
    lc_dp_recv_stats(r, &sts);
    is_int(sts.stale_frames, 1, "the frame with another tag counted as stale");
    is_int(lc_dp_recv_window_bytes(r, w, 5), 0, "no bytes counted");
    is_int(lc_dp_recv_source_state(r, 5, NULL), LC_DP_SOURCE_READY, "connection survives strays");

    /* A frame after close. */
    lc_dp_recv_window_close(r, w);
    struct lc_dp_recv_stats st0;
    lc_dp_recv_stats(r, &st0);
    struct df_piece late = {srv, c.sid, DF_KEY, base, TAG, base, src, size};
    df_push(&late, 1);
    ok(df_wait_stats(r, df_dropped_at_least, st0.dropped_frames + 1), "late frame dropped");
    ok(df_all_equal(mem, size + 2 * guard, 0xa5), "late frame never touched the memory");

    /* Close while 16 MiB frames stream in: once close returns, the memory is the receiver's
     * no more. Repaint it with the canary and check that it stays. */
    size_t big = 64 * DF_MIB;
    uint8_t *bigmem = malloc(big);
    memset(bigmem, 0, big);
    uint64_t bbase = 0x40000000;
    lc_dp_recv_window_open(r, bbase, big, TAG, bigmem, NULL, &w);
    struct df_piece stream[4];
    for (int i = 0; i < 4; i++)
        stream[i] = (struct df_piece){srv, c.sid, DF_KEY, bbase, TAG,
                                      bbase + (uint64_t)i * 16 * DF_MIB, src, 16 * DF_MIB};
    df_push(stream, 4);
    /* Close as soon as the first bytes land, so reads into the window are under way. */
    for (int i = 0; i < 2000 && lc_dp_recv_window_bytes(r, w, 5) == 0; i++)
        df_sleep_ms(1);
    uint64_t landed = lc_dp_recv_window_bytes(r, w, 5);
    lc_dp_recv_window_close(r, w);
    ok(landed > 0 && landed < big, "closed mid-stream (%llu bytes had landed)",
       (unsigned long long)landed);
    memset(bigmem, 0xa5, big);
    ok(df_pushes_drain(10), "the rest of the stream was sent");
    /* The receiver has read (and dropped) everything once its frame count settles. */
    struct lc_dp_recv_stats st1;
    uint64_t prev = UINT64_MAX;
    for (int i = 0; i < 100; i++) {
        lc_dp_recv_stats(r, &st1);
        if (st1.dropped_bytes == prev)
            break;
        prev = st1.dropped_bytes;
        df_sleep_ms(50);
    }
    ok(df_all_equal(bigmem, big, 0xa5), "no byte written after window_close returned");
    uint64_t okc, failed;
    df_push_counts(&okc, &failed);
    lc_dp_recv_destroy(r);
    df_server_close(srv);
    free(mem);
    free(bigmem);
    free(src);
}

/* A staged window: frames go through lent slots, committed in pieces. */
struct staging {
    uint8_t *dst;
    uint8_t slots[4][5000];
    bool busy[4];                /* I/O thread only */
    _Atomic int lent, committed, dropped;
};

static void *st_get(void *data, uint64_t off, size_t len, size_t *cap)
{
    (void)off;
    struct staging *s = data;
    for (int i = 0; i < 4; i++) {
        if (!s->busy[i]) {
            s->busy[i] = true;
            s->lent++;
            *cap = len < sizeof s->slots[i] ? len : sizeof s->slots[i];
            return s->slots[i];
        }
    }
    return NULL;
}

static int slot_index(struct staging *s, void *slot)
{
    for (int i = 0; i < 4; i++) {
        if (slot == s->slots[i])
            return i;
    }
    return -1;
}

static void st_commit(void *data, void *slot, uint64_t off, size_t len)
{
    struct staging *s = data;
    memcpy(s->dst + off, slot, len);
    s->busy[slot_index(s, slot)] = false;
    s->committed++;
}

static void st_drop(void *data, void *slot)
{
    struct staging *s = data;
    s->busy[slot_index(s, slot)] = false;
    s->dropped++;
}

/* Closing a staged window while a slot is half full gives the slot back before close
 * returns, and the rest of that frame is discarded without losing the stream. */
static void test_staged_fence(void)
{
    int port;
    int lfd = df_raw_listen(&port);
    struct cmn_dp_cred c = df_cred_make(19, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    df_add(r, 9, port);
    int fd = accept(lfd, NULL, NULL);
    uint8_t hello[CMN_DP_HELLO_SIZE], rep[CMN_DP_REPLY_SIZE];
    df_read_full(fd, hello, sizeof hello);
    struct cmn_dp_reply okr = {.kind = CMN_DP_REPLY_OK, .source_id = 9};
    cmn_dp_reply_encode(&okr, rep);
    df_write_full(fd, rep, sizeof rep);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "raw source ready");
    static struct staging stg;
    memset(&stg, 0, sizeof stg);
    stg.dst = calloc(1, 10000);
    struct lc_dp_sink sink = {st_get, st_commit, st_drop, &stg};
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, 0x4000, 10000, TAG, NULL, &sink, &w);
    uint8_t frame[CMN_DP_DATA_HDR_SIZE + 10000];
    struct cmn_dp_data_hdr h = {.len = 10000, .addr = 0x4000, .window_base = 0x4000, .tag = TAG};
    cmn_dp_data_encode(&h, frame);
    memset(frame + CMN_DP_DATA_HDR_SIZE, 0x77, 10000);
    df_write_full(fd, frame, CMN_DP_DATA_HDR_SIZE + 3000);
    for (int i = 0; i < 500 && atomic_load(&stg.lent) == 0; i++)
        df_sleep_ms(10);
    is_int(atomic_load(&stg.lent), 1, "a slot is lent for the first bytes");
    is_int(atomic_load(&stg.committed), 0, "not committed: the slot is not full");
    lc_dp_recv_window_close(r, w);
    is_int(atomic_load(&stg.dropped), 1, "close gave the half-full slot back");
    df_write_full(fd, frame + CMN_DP_DATA_HDR_SIZE + 3000, 7000);
    /* The stream is still in step: a frame for a new window lands. */
    uint8_t mem[64];
    memset(mem, 0, sizeof mem);
    lc_dp_recv_window_open(r, 0x90000, sizeof mem, TAG, mem, NULL, &w);
    struct cmn_dp_data_hdr h2 = {.len = 64, .addr = 0x90000, .window_base = 0x90000, .tag = TAG};
    cmn_dp_data_encode(&h2, frame);
    memset(frame + CMN_DP_DATA_HDR_SIZE, 0x55, 64);
    df_write_full(fd, frame, CMN_DP_DATA_HDR_SIZE + 64);
    struct lc_dp_expect exp = {9, 64};
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), 0, "next frame lands");
    ok(df_all_equal(mem, sizeof mem, 0x55), "with the right bytes");
    is_int(atomic_load(&stg.lent), 1, "the closed window's sink was not asked again");
    ok(df_all_equal(stg.dst, 10000, 0), "nothing committed into the closed window");
    lc_dp_recv_window_close(r, w);
    lc_dp_recv_destroy(r);
    close(fd);
    close(lfd);
    free(stg.dst);
}

static void test_staged(void)
{
    int port;
    struct cmn_dp_server *srv = df_server_new(41, 0, 0, 0, 0, &port);
    struct cmn_dp_cred c = df_cred_make(17, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    df_add(r, 41, port);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "source ready");
    size_t size = 1 * DF_MIB;
    uint8_t *src = malloc(size);
    static struct staging stg;
    stg.dst = calloc(1, size);
    df_fill_random(src, size);
    struct lc_dp_sink sink = {st_get, st_commit, st_drop, &stg};
    struct lc_dp_window *w;
    int bad = lc_dp_recv_window_open(r, 0x300000, size, TAG, stg.dst, &sink, &w);
    is_int(bad, -EINVAL, "dest and sink together refused");
    is_int(lc_dp_recv_window_open(r, 0x300000, size, TAG, NULL, &sink, &w), 0,
           "staged window open");
    struct df_piece p[8];
    for (int i = 0; i < 8; i++)
        p[i] = (struct df_piece){srv, c.sid, DF_KEY, 0x300000, TAG,
                                 0x300000 + (uint64_t)i * size / 8,
                              src + i * size / 8, size / 8};
    df_push(p, 8);
    struct lc_dp_expect exp = {41, size};
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 10000, &e), 0, "staged window complete");
    ok(memcmp(stg.dst, src, size) == 0, "committed bytes are byte-identical");
    /* 8 frames of 131072 bytes in 5000-byte slots: ceil(131072/5000) = 27 slots each. */
    is_int(atomic_load(&stg.committed), 8 * 27, "slots committed");
    is_int(atomic_load(&stg.lent), atomic_load(&stg.committed), "every lent slot committed");
    lc_dp_recv_window_close(r, w);
    ok(df_pushes_drain(5), "pushes done");
    uint64_t okc, failed;
    df_push_counts(&okc, &failed);
    lc_dp_recv_destroy(r);
    df_server_close(srv);
    free(src);
    free(stg.dst);
}

/* One buffer reused for sequential requests at the same base (the common case): a late frame
 * of the first request arrives after the second opened its window. The tag keeps it out; the
 * second request's own frames land. */
static void test_tag_fence(void)
{
    int port;
    struct cmn_dp_server *srv = df_server_new(6, 0, 0, 0, 0, &port);
    struct cmn_dp_cred c = df_cred_make(20, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    df_add(r, 6, port);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "source ready");
    size_t size = 64 * 1024;
    uint8_t *mem = malloc(size), *one = malloc(size), *two = malloc(size);
    memset(one, 0x11, size);
    memset(two, 0x22, size);
    uint64_t base = 0x6000000;

    struct lc_dp_window *w;
    is_int(lc_dp_recv_window_open(r, base, size, 1, mem, NULL, &w), 0,
           "request 1: window (B, tag 1)");
    struct df_piece first = {srv, c.sid, DF_KEY, base, 1, base, one, size / 2};
    df_push(&first, 1);
    struct lc_dp_expect exp = {6, size / 2};
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), 0, "request 1's first frame landed");
    lc_dp_recv_window_close(r, w);

    /* Request 2 reuses the memory: the canary stands for what the application put there. */
    memset(mem, 0xa5, size);
    is_int(lc_dp_recv_window_open(r, base, size, 2, mem, NULL, &w), 0,
           "request 2: window (B, tag 2) in the same memory");
    struct lc_dp_recv_stats st0, st1;
    lc_dp_recv_stats(r, &st0);
    struct df_piece late = {srv, c.sid, DF_KEY, base, 1, base, one, size};
    is_int(df_push(&late, 1), 0, "a late tag-1 frame for B is pushed");
    ok(df_wait_stats(r, df_dropped_at_least, st0.dropped_frames + 1), "the late frame is dropped");
    ok(df_all_equal(mem, size, 0xa5), "canary intact: the late frame did not land");
    lc_dp_recv_stats(r, &st1);
    is_int(st1.stale_frames - st0.stale_frames, 1, "counted as stale");
    is_int(st1.dropped_bytes - st0.dropped_bytes, size, "all its bytes dropped");
    is_int(lc_dp_recv_window_bytes(r, w, 6), 0, "nothing counted for request 2");
    is_int(lc_dp_recv_window_dropped(r, w), 0, "not one of request 2's own strays");
    is_int(lc_dp_recv_source_state(r, 6, NULL), LC_DP_SOURCE_READY, "the connection stays");

    struct df_piece own = {srv, c.sid, DF_KEY, base, 2, base, two, size};
    is_int(df_push(&own, 1), 0, "a tag-2 frame for B is pushed");
    exp.bytes = size;
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), 0, "the tag-2 frame lands %s", e.msg);
    ok(df_all_equal(mem, size, 0x22), "with request 2's bytes");
    lc_dp_recv_window_close(r, w);

    /* A staged window at the same base: a frame with another tag never reaches its sink. */
    static struct staging stg;
    memset(&stg, 0, sizeof stg);
    stg.dst = calloc(1, size);
    struct lc_dp_sink sink = {st_get, st_commit, st_drop, &stg};
    is_int(lc_dp_recv_window_open(r, base, size, 3, NULL, &sink, &w), 0,
           "request 3: staged window (B, tag 3)");
    lc_dp_recv_stats(r, &st0);
    struct df_piece stale2 = {srv, c.sid, DF_KEY, base, 2, base, two, size};
    df_push(&stale2, 1);
    ok(df_wait_stats(r, df_dropped_at_least, st0.dropped_frames + 1), "the tag-2 frame dropped");
    is_int(atomic_load(&stg.lent), 0, "the sink was never asked for a slot");
    struct df_piece own3 = {srv, c.sid, DF_KEY, base, 3, base, one, size};
    df_push(&own3, 1);
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), 0, "the tag-3 frame lands through the sink");
    ok(df_all_equal(stg.dst, size, 0x11), "with request 3's bytes");
    lc_dp_recv_window_close(r, w);

    ok(df_pushes_drain(5), "pushes done");
    uint64_t okc, failed;
    df_push_counts(&okc, &failed);
    is_int(okc, 5, "all five pushes were sent");
    lc_dp_recv_destroy(r);
    df_server_close(srv);
    free(stg.dst);
    free(mem);
    free(one);
    free(two);
}

/* Backpressure: 256 MiB pushed at a slow reader never queues more than the cap. */
static void test_backpressure(void)
{
    int port;
    uint64_t cap = 8 * DF_MIB;
    struct cmn_dp_server *srv = df_server_new(51, cap, 0, 0, 0, &port);
    struct cmn_dp_cred c = df_cred_make(18, DF_NOW0 + 3600000, false);
    uint8_t hello[CMN_DP_HELLO_SIZE], rep[CMN_DP_REPLY_SIZE];
    cmn_dp_hello_encode(&c, hello);
    int fd = df_raw_connect(port);
    df_write_full(fd, hello, sizeof hello);
    is_int(df_read_full(fd, rep, sizeof rep), sizeof rep, "raw session open");
    size_t frame = 4 * DF_MIB;
    uint8_t *src = malloc(frame);
    df_fill_random(src, frame);
    enum { N = 64 };
    static struct df_piece p[N];
    for (int i = 0; i < N; i++)
        p[i] = (struct df_piece){srv, c.sid, DF_KEY, 0, TAG, (uint64_t)i * frame, src, frame};
    is_int(df_push(p, N), 0, "256 MiB submitted in 64 pushes");
    struct cmn_dp_server_stats st = df_server_stats(srv);
    ok(st.queued_bytes <= cap, "queued %llu <= cap", (unsigned long long)st.queued_bytes);
    ok(st.waiting_pushes >= N - 3, "the rest waits in the FIFO (%llu)",
       (unsigned long long)st.waiting_pushes);
    /* Read slowly at first, then at full speed; check every header. */
    uint8_t *buf = malloc(frame);
    uint64_t max_queued = 0, total = 0;
    int frames_ok = 0;
    for (int i = 0; i < N; i++) {
        if (i < 4)
            df_sleep_ms(50);
        uint8_t hdr[CMN_DP_DATA_HDR_SIZE];
        struct cmn_dp_data_hdr h;
        if (df_read_full(fd, hdr, sizeof hdr) != sizeof hdr ||
            cmn_dp_data_decode(hdr, 0, &h, NULL) != 0 || h.len != frame ||
            h.addr != (uint64_t)i * frame || df_read_full(fd, buf, frame) != frame)
            break;
        if (memcmp(buf, src, frame) == 0)
            frames_ok++;
        total += h.len;
        if (i % 8 == 0) {
            st = df_server_stats(srv);
            if (st.queued_bytes > max_queued)
                max_queued = st.queued_bytes;
        }
    }
    is_int(frames_ok, N, "all 64 frames arrived in order, intact");
    is_int(total, 256ull * DF_MIB, "256 MiB read");
    ok(df_pushes_drain(10), "every push completed");
    uint64_t okc, failed;
    df_push_counts(&okc, &failed);
    is_int(okc, N, "all succeeded");
    st = df_server_stats(srv);
    ok(st.queued_peak <= cap, "peak queued %llu never above the %llu cap",
       (unsigned long long)st.queued_peak, (unsigned long long)cap);
    ok(max_queued <= cap, "sampled queue under the cap");
    is_int(st.waiting_pushes + st.waiting_bytes + st.queued_bytes, 0, "queues empty at the end");
    close(fd);
    df_server_close(srv);
    free(src);
    free(buf);
}

int main(void)
{
    cmn_log_init("test_dp_fence", CMN_LOG_ERROR);
    df_loop_start();
    test_fence();
    test_tag_fence();
    test_staged();
    test_staged_fence();
    test_backpressure();
    is_int(df_loop_stop(), 0, "server loop closed with no handle left");
    return tap_done();
}
