/* The tcp data plane end to end on loopback: sessions, sources, windows, refusals and
 * sources that fail. Data servers (common/dp_server.c) run on the fixture's loop thread,
 * liblode's receiver (client/dp_recv.c) in this process, and raw sockets stand in where a
 * test needs a client or source that misbehaves (tests/unit/common/dp_fixture.h).
 * test_dp_fence.c has the fence, the tags, staged windows and backpressure. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/dp_recv.h"
#include "common/dp_proto.h"
#include "common/dp_server.h"
#include "common/log.h"
#include "tests/tap.h"
#include "tests/unit/common/dp_fixture.h"

#define WIN (32u * DF_MIB)
/* The request tag the tests' windows and pushes use unless a test is about tags. */
#define TAG 0x5eed0001u

/* Three sources fill one 32 MiB window with interleaved pieces of varied sizes. */
static void test_three_sources(void)
{
    int port[3];
    uint64_t ids[3] = {1, 2, 0x80000000u};
    struct cmn_dp_server *srv[3];
    for (int i = 0; i < 3; i++)
        srv[i] = df_server_new(ids[i], 0, 0, 0, 0, &port[i]);
    struct cmn_dp_cred c = df_cred_make(1, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    for (int i = 0; i < 3; i++)
        is_int(df_add(r, ids[i], port[i]), 0, "add source %llu", (unsigned long long)ids[i]);
    struct cmn_err e;
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "all three sources ready %s", e.msg);
    is_int(lc_dp_recv_source_state(r, 2, NULL), LC_DP_SOURCE_READY, "source 2 ready");
    is_int(lc_dp_recv_source_state(r, 77, NULL), LC_DP_SOURCE_UNKNOWN, "source 77 unknown");
    is_int(df_add(r, 2, port[1]), -EEXIST, "adding a ready source again refused");

    uint8_t *src = malloc(WIN), *dst = malloc(WIN);
    df_fill_random(src, WIN);
    memset(dst, 0, WIN);
    uint64_t base = 0x7f0000000000ull;
    struct lc_dp_window *w;
    is_int(lc_dp_recv_window_open(r, base, WIN, TAG, dst, NULL, &w), 0, "32 MiB window open");
    struct lc_dp_window *w2;
    is_int(lc_dp_recv_window_open(r, base + WIN - 1, 10, TAG + 1, dst, NULL, &w2), -EBUSY,
           "overlapping window refused");
    is_int(lc_dp_recv_window_open(r, base, WIN, TAG + 1, dst, NULL, &w2), -EBUSY,
           "a window at the same base refused while the first is open, whatever its tag");
    is_int(lc_dp_recv_window_open(r, 0x1000, 10, 0, dst, NULL, &w2), -EINVAL, "tag 0 refused");

    static struct df_piece pieces[8192];
    size_t n = 0;
    uint64_t per[3] = {0, 0, 0};
    for (uint64_t off = 0; off < WIN;) {
        size_t len = 1 + (size_t)(df_rng() % (256 * 1024));
        if (off + len > WIN)
            len = (size_t)(WIN - off);
        int s = (int)(df_rng() % 3);
        pieces[n++] = (struct df_piece){srv[s], c.sid, DF_KEY, base, TAG, base + off, src + off,
                                        len};
        per[s] += len;
        off += len;
    }
    /* Each source sends its pieces in a scrambled order. */
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(df_rng() % (i + 1));
        struct df_piece t = pieces[i];
        pieces[i] = pieces[j];
        pieces[j] = t;
    }
    is_int(df_push(pieces, n), 0, "%zu pieces submitted", n);
    struct lc_dp_expect exp[3];
    for (int i = 0; i < 3; i++)
        exp[i] = (struct lc_dp_expect){ids[i], per[i]};
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait(r, w, exp, 3, 15000, &e), 0, "wait: every source delivered %s",
           e.msg);
    ok(memcmp(src, dst, WIN) == 0, "window is byte-identical to the source data");
    for (int i = 0; i < 3; i++)
        is_int(lc_dp_recv_window_bytes(r, w, ids[i]), per[i], "bytes counted for source %d", i);
    ok(df_pushes_drain(10), "every push completed");
    uint64_t okc, failed;
    df_push_counts(&okc, &failed);
    is_int(okc, n, "all pushes succeeded");
    is_int(failed, 0, "no push failed");
    struct cmn_dp_server_stats st = df_server_stats(srv[0]);
    is_int(st.bytes, per[0], "server 0 counted its payload bytes");
    is_int(st.sessions, 1, "server 0 has one session");
    is_int(st.queued_bytes, 0, "nothing left queued");

    /* A wait for more than was sent times out and says what is missing. */
    exp[1].bytes = per[1] + 1;
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait(r, w, exp, 3, 200, &e), LODE_ETIMEOUT, "wait for too much times out");
    ok(strstr(e.msg, "source 2") != NULL, "timeout names the source: %s", e.msg);
    struct lc_dp_expect unknown = {55, 1};
    is_int(lc_dp_recv_wait(r, w, &unknown, 1, 100, &e), -ENOENT, "unknown source in wait");
    lc_dp_recv_window_close(r, w);
    lc_dp_recv_destroy(r);
    for (int i = 0; i < 3; i++)
        ok(df_server_close(srv[i]), "server %d closed", i);
    free(src);
    free(dst);
}

/* Two requests at once: frames of both, from the same sources, interleaved. */
static void test_two_windows(void)
{
    int port[2];
    struct cmn_dp_server *srv[2];
    for (int i = 0; i < 2; i++)
        srv[i] = df_server_new((uint64_t)i + 1, 0, 0, 0, 0, &port[i]);
    struct cmn_dp_cred c = df_cred_make(2, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    df_add(r, 1, port[0]);
    df_add(r, 2, port[1]);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "two sources ready");
    size_t size = 4 * DF_MIB;
    uint8_t *src = malloc(2 * size), *dst = calloc(1, 2 * size);
    df_fill_random(src, 2 * size);
    uint64_t base[2] = {0x1000000, 0x9000000};
    struct lc_dp_window *w[2];
    for (int k = 0; k < 2; k++)
        is_int(lc_dp_recv_window_open(r, base[k], size, TAG + (uint32_t)k, dst + k * size, NULL,
                                      &w[k]), 0,
               "window %d open", k);
    static struct df_piece pieces[256];
    size_t n = 0;
    uint64_t per[2][2] = {{0, 0}, {0, 0}};
    size_t chunk = 256 * 1024;
    for (size_t off = 0; off < size; off += chunk) {
        for (int k = 0; k < 2; k++) {
            int s = (int)((off / chunk + (size_t)k) % 2);
            pieces[n++] = (struct df_piece){srv[s], c.sid, DF_KEY, base[k], TAG + (uint32_t)k,
                                            base[k] + off,
                                         src + k * size + off, chunk};
            per[k][s] += chunk;
        }
    }
    is_int(df_push(pieces, n), 0, "pieces of both windows submitted");
    for (int k = 0; k < 2; k++) {
        struct lc_dp_expect exp[2] = {{1, per[k][0]}, {2, per[k][1]}};
        is_int(lc_dp_recv_wait(r, w[k], exp, 2, 10000, &e), 0, "window %d complete", k);
        ok(memcmp(dst + k * size, src + k * size, size) == 0, "window %d byte-identical", k);
        is_int(lc_dp_recv_window_bytes(r, w[k], 1), per[k][0], "window %d: source 1 count", k);
    }
    ok(df_pushes_drain(10), "pushes done");
    uint64_t okc, failed;
    df_push_counts(&okc, &failed);
    for (int k = 0; k < 2; k++)
        lc_dp_recv_window_close(r, w[k]);
    lc_dp_recv_destroy(r);
    for (int i = 0; i < 2; i++)
        df_server_close(srv[i]);
    free(src);
    free(dst);
}

/* Refusals: forged MAC, expired, duplicate sid, wrong key on push, session cap, garbage. */
static void test_refusals(void)
{
    int port, port_cap;
    struct cmn_dp_server *srv = df_server_new(7, 0, 0, 300, 0, &port);
    struct cmn_dp_server *cap = df_server_new(8, 0, 1, 0, 2, &port_cap);
    struct cmn_err e;

    struct cmn_dp_cred good = df_cred_make(4, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&good);
    df_add(r, 7, port);
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "genuine session accepted");

    struct cmn_dp_cred forged = df_cred_make(5, DF_NOW0 + 3600000, true);
    struct lc_dp_recv *rf = df_recv_new(&forged);
    df_add(rf, 7, port);
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(rf, 5000, &e), LODE_EAUTH, "forged mac refused");
    ok(strstr(e.msg, "source 7") && strstr(e.msg, "bad mac"), "error names source: %s", e.msg);
    lc_dp_recv_destroy(rf);

    struct cmn_dp_cred old = df_cred_make(6, DF_NOW0 - 1, false);
    struct lc_dp_recv *ro = df_recv_new(&old);
    df_add(ro, 7, port);
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(ro, 5000, &e), LODE_ETIMEOUT, "expired credential refused");
    ok(strstr(e.msg, "expired") != NULL, "says expired: %s", e.msg);
    lc_dp_recv_destroy(ro);

    struct lc_dp_recv *rd = df_recv_new(&good);
    df_add(rd, 7, port);
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(rd, 5000, &e), -EBUSY, "second connection for a live sid");
    ok(strstr(e.msg, "in use") != NULL, "says in use: %s", e.msg);
    lc_dp_recv_destroy(rd);

    /* A receiver that expects another source id than the one answering. */
    struct cmn_dp_cred other = df_cred_make(9, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *rw = df_recv_new(&other);
    df_add(rw, 99, port);
    is_int(lc_dp_recv_wait_ready(rw, 5000, &e), LODE_EBADMSG, "wrong source id detected");
    lc_dp_recv_destroy(rw);

    /* Session cap of 1. */
    struct cmn_dp_cred c1 = df_cred_make(10, DF_NOW0 + 3600000, false),
                      c2 = df_cred_make(11, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r1 = df_recv_new(&c1), *r2 = df_recv_new(&c2);
    df_add(r1, 8, port_cap);
    is_int(lc_dp_recv_wait_ready(r1, 5000, &e), 0, "first session under the cap");
    df_add(r2, 8, port_cap);
    is_int(lc_dp_recv_wait_ready(r2, 5000, &e), LODE_EUNAVAILABLE, "second session: busy");
    lc_dp_recv_destroy(r2);
    lc_dp_recv_destroy(r1);
    /* At most two connections of that server may wait for their HELLO (5 s each): a third
     * is closed at once, the first two stay. */
    int silent[3];
    for (int i = 0; i < 3; i++) {
        silent[i] = df_raw_connect(port_cap);
        df_sleep_ms(20);
    }
    ok(df_peer_closes_within(silent[2], 2000), "third pending handshake closed at once");
    ok(!df_peer_closes_within(silent[0], 100), "the first one still waits for its HELLO");
    for (int i = 0; i < 3; i++)
        close(silent[i]);

    /* Pushes: only the owner's key, only live sessions, bounded sizes. */
    uint8_t buf[64] = {0};
    struct df_piece p = {srv, good.sid, "AKIDOTHERKEY", 0, TAG, 0, buf, sizeof buf};
    is_int(df_push(&p, 1), LODE_ENOSESSION, "push with another access key refused");
    p.key = DF_KEY;
    uint8_t nosid[16] = {1};
    p.sid = nosid;
    is_int(df_push(&p, 1), LODE_ENOSESSION, "push to an unknown sid refused");
    p.sid = good.sid;
    p.tag = 0;
    is_int(df_push(&p, 1), -EINVAL, "push with tag 0 refused");
    p.tag = TAG;
    p.len = 0;
    is_int(df_push(&p, 1), -EINVAL, "empty push refused");
    p.len = CMN_DP_MAX_FRAME_DEFAULT + 1;
    static uint8_t huge_src[1];
    p.src = huge_src;
    is_int(df_push(&p, 1), -EINVAL, "push above max frame refused");

    /* Garbage instead of a HELLO: an HTTP request. */
    int fd = df_raw_connect(port);
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nAccept: */*\r\n"
                        "Connection: keep-alive\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    ok(sizeof http - 1 >= CMN_DP_HELLO_SIZE, "garbage is at least a HELLO long");
    df_write_full(fd, http, CMN_DP_HELLO_SIZE);
    uint8_t rep[CMN_DP_REPLY_SIZE];
    struct cmn_dp_reply rr;
    is_int(df_read_full(fd, rep, sizeof rep), sizeof rep, "garbage gets a reply");
    ok(cmn_dp_reply_decode(rep, &rr, &e) == 0 && rr.kind == CMN_DP_REPLY_ERR &&
           rr.code == CMN_DP_CODE_MALFORMED && rr.source_id == 7,
       "HELLO_ERR malformed from source 7");
    ok(df_peer_closes(fd), "then the server closes");
    close(fd);
    /* Half a HELLO, then silence: the hello timeout (300 ms here) closes it. */
    fd = df_raw_connect(port);
    df_write_full(fd, "LDP1", 4);
    ok(df_peer_closes(fd), "silent client closed after the hello timeout");
    close(fd);
    /* A valid HELLO, then a byte: the connection is send-only. */
    struct cmn_dp_cred c3 = df_cred_make(12, DF_NOW0 + 3600000, false);
    uint8_t hello[CMN_DP_HELLO_SIZE];
    cmn_dp_hello_encode(&c3, hello);
    fd = df_raw_connect(port);
    df_write_full(fd, hello, sizeof hello);
    is_int(df_read_full(fd, rep, sizeof rep), sizeof rep, "raw hello answered");
    ok(cmn_dp_reply_decode(rep, &rr, &e) == 0 && rr.kind == CMN_DP_REPLY_OK, "HELLO_OK");
    df_write_full(fd, "x", 1);
    ok(df_peer_closes(fd), "a byte from the client closes the session");
    close(fd);

    /* The genuine session survived all of that. */
    uint8_t dst[64] = {0}, data[64];
    memset(data, 0x3c, sizeof data);
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, 0x100000, sizeof dst, TAG, dst, NULL, &w);
    struct df_piece gp = {srv, good.sid, DF_KEY, 0x100000, TAG, 0x100000, data, sizeof data};
    is_int(df_push(&gp, 1), 0, "push on the genuine session");
    struct lc_dp_expect exp = {7, sizeof data};
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), 0, "delivered after the abuse");
    ok(memcmp(dst, data, sizeof dst) == 0, "bytes right");
    struct cmn_dp_server_stats st = df_server_stats(srv);
    ok(st.hello_refused == 5, "server counted the five refusals (%llu)",
       (unsigned long long)st.hello_refused);
    is_int(st.sessions, 1, "one live session left");
    lc_dp_recv_window_close(r, w);
    ok(df_pushes_drain(5), "pushes done");
    uint64_t okc, failed;
    df_push_counts(&okc, &failed);
    lc_dp_recv_destroy(r);
    df_server_close(srv);
    df_server_close(cap);
}

/* A raw source that sends a DATA header with a bad CRC. */
static void test_corrupt_header(void)
{
    int port;
    int lfd = df_raw_listen(&port);
    struct cmn_dp_cred c = df_cred_make(13, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    df_add(r, 9, port);
    int fd = accept(lfd, NULL, NULL);
    uint8_t hello[CMN_DP_HELLO_SIZE];
    is_int(df_read_full(fd, hello, sizeof hello), sizeof hello, "receiver sent its HELLO");
    struct cmn_dp_cred got;
    struct cmn_err e;
    ok(cmn_dp_hello_decode(hello, &got, &e) == 0 &&
           cmn_dp_cred_verify(DF_SECRET, DF_SECRET_LEN, &got, DF_NOW0, &e) == 0,
       "the HELLO carries the credential");
    uint8_t rep[CMN_DP_REPLY_SIZE];
    struct cmn_dp_reply okr = {.kind = CMN_DP_REPLY_OK, .source_id = 9};
    cmn_dp_reply_encode(&okr, rep);
    df_write_full(fd, rep, sizeof rep);
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "raw source ready");
    uint8_t mem[4096];
    memset(mem, 0xa5, sizeof mem);
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, 0x2000, sizeof mem, TAG, mem, NULL, &w);
    /* One good frame, then one whose CRC is off by a bit. */
    uint8_t frame[CMN_DP_DATA_HDR_SIZE + 100];
    struct cmn_dp_data_hdr h = {.len = 100, .addr = 0x2000, .window_base = 0x2000, .tag = TAG};
    cmn_dp_data_encode(&h, frame);
    memset(frame + CMN_DP_DATA_HDR_SIZE, 0x42, 100);
    df_write_full(fd, frame, sizeof frame);
    h.addr = 0x2000 + 100;
    cmn_dp_data_encode(&h, frame);
    frame[28] ^= 1;
    df_write_full(fd, frame, sizeof frame);
    struct lc_dp_expect exp = {9, 200};
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait(r, w, &exp, 1, 5000, &e), LODE_EBADMSG, "corrupt header fails the wait");
    ok(strstr(e.msg, "source 9") && strstr(e.msg, "100 of 200"), "names source and bytes: %s",
       e.msg);
    ok(df_all_equal(mem, 100, 0x42) && df_all_equal(mem + 100, sizeof mem - 100, 0xa5),
       "only the good frame landed");
    struct lc_dp_recv_stats st;
    lc_dp_recv_stats(r, &st);
    is_int(st.bad_headers, 1, "bad header counted");
    ok(df_peer_closes(fd), "receiver closed the desynchronised connection");
    close(fd);
    is_int(lc_dp_recv_source_state(r, 9, &e), LC_DP_SOURCE_FAILED, "source 9 failed");
    lc_dp_recv_window_close(r, w);
    lc_dp_recv_destroy(r);
    close(lfd);
}

/* A source closed mid-stream: the wait fails naming it; pending pushes fail. */
static void test_source_dies(void)
{
    int port[2];
    struct cmn_dp_server *a = df_server_new(21, 0, 0, 0, 0, &port[0]);
    struct cmn_dp_server *b = df_server_new(22, 0, 0, 0, 0, &port[1]);
    struct cmn_dp_cred c = df_cred_make(14, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    df_add(r, 21, port[0]);
    df_add(r, 22, port[1]);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "two sources ready");
    size_t size = 8 * DF_MIB;
    uint8_t *src = malloc(size), *dst = calloc(1, size);
    df_fill_random(src, size);
    struct lc_dp_window *w;
    lc_dp_recv_window_open(r, 0x10000000, size, TAG, dst, NULL, &w);
    /* a delivers its half; b delivers a quarter, then dies. */
    struct df_piece pa = {a, c.sid, DF_KEY, 0x10000000, TAG, 0x10000000, src, size / 2};
    struct df_piece pb = {b, c.sid, DF_KEY, 0x10000000, TAG, 0x10000000 + size / 2,
                          src + size / 2, size / 4};
    df_push(&pa, 1);
    df_push(&pb, 1);
    struct lc_dp_expect part[2] = {{21, size / 2}, {22, size / 4}};
    is_int(lc_dp_recv_wait(r, w, part, 2, 5000, &e), 0, "first parts delivered");
    ok(df_pushes_drain(5), "first pushes completed");
    uint64_t okc, failed;
    df_push_counts(&okc, &failed);
    ok(df_server_close(b), "source 22 killed");
    struct lc_dp_expect full[2] = {{21, size / 2}, {22, size / 2}};
    cmn_err_clear(&e);
    int rc = lc_dp_recv_wait(r, w, full, 2, 5000, &e);
    is_int(rc, LODE_ECLOSED, "wait fails when a source dies short of its count");
    ok(strstr(e.msg, "source 22") != NULL, "names the dead source: %s", e.msg);
    is_int(lc_dp_recv_wait(r, w, part, 2, 100, &e), 0, "what it delivered before still counts");
    ok(memcmp(dst, src, size / 2 + size / 4) == 0, "delivered bytes are right");

    /* Pending pushes fail with LODE_ECLOSED when the server closes under them: a slow raw
     * client (never reading) lets them pile up behind the cap. */
    int port_c;
    struct cmn_dp_server *s3 = df_server_new(23, 1 * DF_MIB, 0, 0, 0, &port_c);
    struct cmn_dp_cred c4 = df_cred_make(15, DF_NOW0 + 3600000, false);
    uint8_t hello[CMN_DP_HELLO_SIZE], rep[CMN_DP_REPLY_SIZE];
    cmn_dp_hello_encode(&c4, hello);
    int fd = df_raw_connect(port_c);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    df_write_full(fd, hello, sizeof hello);
    df_read_full(fd, rep, sizeof rep);
    struct df_piece many[16];
    for (int i = 0; i < 16; i++)
        many[i] = (struct df_piece){s3, c4.sid, DF_KEY, 0, TAG, 0, src, 1 * DF_MIB};
    is_int(df_push(many, 16), 0, "16 MiB pushed at a client that does not read");
    struct cmn_dp_server_stats st = df_server_stats(s3);
    ok(st.waiting_pushes > 0, "pushes wait behind the cap (%llu)",
       (unsigned long long)st.waiting_pushes);
    ok(df_server_close(s3), "server closed with pushes pending");
    ok(df_pushes_drain(5), "every pending push completed");
    df_push_counts(&okc, &failed);
    is_int(okc + failed, 16, "each push completed once");
    ok(failed > 0 && df_last_push_status() == LODE_ECLOSED, "pending pushes failed LODE_ECLOSED");
    close(fd);

    lc_dp_recv_window_close(r, w);
    lc_dp_recv_destroy(r);
    df_server_close(a);
    free(src);
    free(dst);
}

/* Expiry: a session whose credential expires is closed by the sweep. */
static void test_expiry(void)
{
    int port;
    struct cmn_dp_server *srv = df_server_new(31, 0, 0, 0, 0, &port);
    struct cmn_dp_cred c = df_cred_make(16, DF_NOW0 + 1000, false);
    struct lc_dp_recv *r = df_recv_new(&c);
    df_add(r, 31, port);
    struct cmn_err e;
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "short-lived session accepted");
    df_set_now(DF_NOW0 + 1000);
    bool failed = false;
    for (int i = 0; i < 300 && !failed; i++) {
        failed = lc_dp_recv_source_state(r, 31, &e) == LC_DP_SOURCE_FAILED;
        if (!failed)
            df_sleep_ms(10);
    }
    ok(failed, "expired session closed by the server: %s", e.msg);
    struct cmn_dp_server_stats st = df_server_stats(srv);
    is_int(st.sessions_expired, 1, "counted as expired");
    is_int(st.sessions, 0, "no live session");
    df_set_now(DF_NOW0);
    /* A failed source may be added again (here it is refused: the credential expired). */
    df_set_now(DF_NOW0 + 5000);
    is_int(df_add(r, 31, port), 0, "failed source re-added");
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), LODE_ETIMEOUT, "reconnect refused: expired");
    df_set_now(DF_NOW0);
    lc_dp_recv_destroy(r);
    df_server_close(srv);
}

/* A node learns its nid only once it registered with meta: the HELLO replies carry the id
 * set last. */
static void test_source_id(void)
{
    int port;
    struct cmn_dp_server *srv = df_server_new(0, 0, 0, 0, 0, &port);
    struct cmn_dp_cred c1 = df_cred_make(22, DF_NOW0 + 3600000, false);
    uint8_t hello[CMN_DP_HELLO_SIZE], rep[CMN_DP_REPLY_SIZE];
    struct cmn_dp_reply rr;
    struct cmn_err e;
    cmn_dp_hello_encode(&c1, hello);
    int fd = df_raw_connect(port);
    df_write_full(fd, hello, sizeof hello);
    is_int(df_read_full(fd, rep, sizeof rep), sizeof rep, "raw hello answered");
    ok(cmn_dp_reply_decode(rep, &rr, &e) == 0 && rr.kind == CMN_DP_REPLY_OK && rr.source_id == 0,
       "before the id is set: HELLO_OK as source 0");
    close(fd);

    df_server_set_source_id(srv, 42);
    struct cmn_dp_cred c2 = df_cred_make(23, DF_NOW0 + 3600000, false);
    struct lc_dp_recv *r = df_recv_new(&c2);
    df_add(r, 42, port);
    cmn_err_clear(&e);
    is_int(lc_dp_recv_wait_ready(r, 5000, &e), 0, "a receiver expecting source 42 is served %s",
           e.msg);
    fd = df_raw_connect(port);
    memset(hello, 'x', sizeof hello);
    df_write_full(fd, hello, sizeof hello);
    is_int(df_read_full(fd, rep, sizeof rep), sizeof rep, "garbage answered");
    ok(cmn_dp_reply_decode(rep, &rr, &e) == 0 && rr.kind == CMN_DP_REPLY_ERR &&
           rr.source_id == 42,
       "HELLO_ERR carries the new id too");
    close(fd);
    lc_dp_recv_destroy(r);
    df_server_close(srv);
}

int main(void)
{
    cmn_log_init("test_dp_tcp", CMN_LOG_ERROR);
    df_loop_start();
    test_three_sources();
    test_two_windows();
    test_refusals();
    test_corrupt_header();
    test_source_dies();
    test_expiry();
    test_source_id();
    is_int(df_loop_stop(), 0, "server loop closed with no handle left");
    return tap_done();
}
