/* Fuzz target: the tcp data plane's decoders (HELLO, replies, DATA headers) and liblode's
 * receiver (client/dp_recv.c) reading an arbitrary byte stream from a source.
 *
 * Decoders: any 96/16/32 bytes must decode or be refused with a message, and what decodes
 * must encode back to the same bytes.
 * Receiver: a fake source on loopback answers the receiver's HELLO and then sends the input.
 * The first input byte picks a mode: bit 0 repairs every frame header's CRC and steers its
 * window_base/tag/addr/len towards the receiver's two windows (so mutations reach the window
 * checks instead of dying at the CRC; the tag is the window's, another window's or left as it
 * came), bit 1 sends the first 16 stream bytes as the HELLO reply instead of a valid HELLO_OK.
 * Whatever comes, the receiver must not write outside its windows (guard bytes stay), must
 * write into host window A exactly what a model of the landing rule written here says (frames
 * with A's base and tag, inside A; payload bytes land as they arrive), must account for every
 * slot a staged sink lends, and must end the connection cleanly. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/dp_recv.h"
#include "common/dp_proto.h"
#include "common/log.h"
#include "tests/fuzz/fuzz.h"

#define WIN_A_BASE 0x10000ull
#define WIN_B_BASE 0x900000ull
#define TAG_A 0x0a0a0a0au
#define TAG_B 0xb0b0b0b0u
#define MAX_FRAME 65536u
#define WIN_SIZE 4096u
#define GUARD 512u
#define SLOT 700u
#define NSLOTS 3

static struct {
    bool ready;
    int lfd, port;
    struct lc_dp_recv *r;
    struct lc_dp_window *wa, *wb;
    uint8_t mem[GUARD + WIN_SIZE + GUARD];   /* window A: host memory between guards */
    uint8_t expect_a[WIN_SIZE];              /* what window A must hold (the model's) */
    uint8_t dst_b[WIN_SIZE];
    uint8_t slots[NSLOTS][SLOT];
    _Atomic bool busy[NSLOTS];
    _Atomic long lent, committed, dropped;
    _Atomic bool bad_commit;
} F;

static void *sink_get(void *data, uint64_t off, size_t len, size_t *cap)
{
    (void)data;
    if (off >= WIN_SIZE || len > WIN_SIZE - off)
        atomic_store(&F.bad_commit, true);
    for (int i = 0; i < NSLOTS; i++) {
        if (!atomic_load(&F.busy[i])) {
            atomic_store(&F.busy[i], true);
            atomic_fetch_add(&F.lent, 1);
            *cap = len < SLOT ? len : SLOT;
            return F.slots[i];
        }
    }
    return NULL;
}

static int slot_of(const void *slot)
{
    for (int i = 0; i < NSLOTS; i++) {
        if (slot == F.slots[i])
            return i;
    }
    __builtin_trap();
}

static void sink_commit(void *data, void *slot, uint64_t off, size_t len)
{
    (void)data;
    if (off > WIN_SIZE || len > WIN_SIZE - off || len > SLOT)
        atomic_store(&F.bad_commit, true);
    else
        memcpy(F.dst_b + off, slot, len);
    atomic_store(&F.busy[slot_of(slot)], false);
    atomic_fetch_add(&F.committed, 1);
}

static void sink_drop(void *data, void *slot)
{
    (void)data;
    atomic_store(&F.busy[slot_of(slot)], false);
    atomic_fetch_add(&F.dropped, 1);
}

static void teardown(void)
{
    if (!F.ready)
        return;
    lc_dp_recv_window_close(F.r, F.wa);
    lc_dp_recv_window_close(F.r, F.wb);
    lc_dp_recv_destroy(F.r);
    close(F.lfd);
    F.ready = false;
}

static void setup(void)
{
    cmn_log_init("fuzz_dp_frames", CMN_LOG_OFF);
    F.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (F.lfd < 0 || bind(F.lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(F.lfd, 4) != 0 || getsockname(F.lfd, (struct sockaddr *)&sa, &len) != 0)
        __builtin_trap();
    F.port = ntohs(sa.sin_port);
    struct lc_dp_recv_config cfg = {.connect_timeout_ms = 5000, .max_frame = MAX_FRAME};
    memset(cfg.cred.sid, 7, sizeof cfg.cred.sid);
    cfg.cred.expires_ms = 1;
    cmn_dp_cred_set_key(&cfg.cred, "AKIDFUZZ", 8);
    if (lc_dp_recv_create(&cfg, &F.r, NULL) != 0)
        __builtin_trap();
    memset(F.mem, 0xa5, sizeof F.mem);
    memset(F.expect_a, 0xa5, sizeof F.expect_a);
    struct lc_dp_sink sink = {sink_get, sink_commit, sink_drop, NULL};
    if (lc_dp_recv_window_open(F.r, WIN_A_BASE, WIN_SIZE, TAG_A, F.mem + GUARD, NULL, &F.wa) ||
        lc_dp_recv_window_open(F.r, WIN_B_BASE, WIN_SIZE, TAG_B, NULL, &sink, &F.wb))
        __builtin_trap();
    F.ready = true;
    atexit(teardown);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Makes each header on the walk a plausible one: magic, a length up to 2 KiB (0 stays 0), a
 * base of one of the windows (or just off one), its tag (or the other window's, or the
 * input's), an address near the window, a right CRC. The selector is the base field as it
 * came: bit 0 window B, bits 1-2 both set base + 1, bits 3-4 the tag (0, 1: the window's;
 * 2: the other window's; 3: left as it came). */
static void steer(uint8_t *s, size_t n)
{
    size_t at = 0;
    while (at + CMN_DP_DATA_HDR_SIZE <= n) {
        uint8_t *h = s + at;
        uint64_t sel = get64(h + 16);
        uint32_t len = get32(h + 4) % 2049;
        uint64_t base = (sel & 1) ? WIN_B_BASE : WIN_A_BASE;
        uint32_t own = (sel & 1) ? TAG_B : TAG_A, other = (sel & 1) ? TAG_A : TAG_B;
        if ((sel & 6) == 6)
            base += 1;
        int64_t delta = (int64_t)(get64(h + 8) % (WIN_SIZE + 256)) - 128;
        memcpy(h, CMN_DP_MAGIC_DATA, 4);
        put32(h + 4, len);
        put64(h + 8, base + (uint64_t)delta);
        put64(h + 16, base);
        unsigned tag_mode = (unsigned)(sel >> 3) & 3;
        if (tag_mode < 2)
            put32(h + 24, own);
        else if (tag_mode == 2)
            put32(h + 24, other);
        put32(h + 28, cmn_dp_crc32c(0, h, 28));
        at += CMN_DP_DATA_HDR_SIZE + len;
    }
}

static void check_codecs(const uint8_t *d, size_t n)
{
    if (n >= CMN_DP_HELLO_SIZE) {
        struct cmn_dp_cred c;
        struct cmn_err e;
        cmn_err_clear(&e);
        uint8_t back[CMN_DP_HELLO_SIZE];
        int rc = cmn_dp_hello_decode(d, &c, &e);
        if (rc != 0 && e.msg[0] == '\0')
            __builtin_trap();
        if (rc == 0 && (cmn_dp_hello_encode(&c, back) != 0 || memcmp(back, d, sizeof back) != 0))
            __builtin_trap();
        if (rc == 0)
            cmn_dp_cred_verify("k", 1, &c, 0, &e);
    }
    if (n >= CMN_DP_DATA_HDR_SIZE) {
        struct cmn_dp_data_hdr h;
        struct cmn_err e;
        cmn_err_clear(&e);
        uint8_t back[CMN_DP_DATA_HDR_SIZE];
        int rc = cmn_dp_data_decode(d, 0, &h, &e);
        if (rc != 0 && e.msg[0] == '\0')
            __builtin_trap();
        if (rc == 0) {
            cmn_dp_data_encode(&h, back);
            if (memcmp(back, d, sizeof back) != 0)
                __builtin_trap();
        }
    }
    if (n >= CMN_DP_REPLY_SIZE) {
        struct cmn_dp_reply r;
        uint8_t back[CMN_DP_REPLY_SIZE];
        if (cmn_dp_reply_decode(d, &r, NULL) == 0) {
            cmn_dp_reply_encode(&r, back);
            if (memcmp(back, d, sizeof back) != 0)
                __builtin_trap();
        }
    }
}

/* The landing rule for host window A, written apart from the receiver: after a HELLO_OK
 * from source 1, frames are read in order until a header fails to decode; a frame whose base
 * and tag are A's and whose range lies inside A writes its payload there, as far as the
 * stream goes (a frame cut short by the end of the stream lands what came). */
static void model_window_a(const uint8_t reply[CMN_DP_REPLY_SIZE], const uint8_t *s, size_t n)
{
    struct cmn_dp_reply rep;
    if (cmn_dp_reply_decode(reply, &rep, NULL) != 0 || rep.kind != CMN_DP_REPLY_OK ||
        rep.source_id != 1)
        return;
    size_t at = 0;
    while (n - at >= CMN_DP_DATA_HDR_SIZE) {
        struct cmn_dp_data_hdr h;
        if (cmn_dp_data_decode(s + at, MAX_FRAME, &h, NULL) != 0)
            return;
        at += CMN_DP_DATA_HDR_SIZE;
        size_t got = n - at < h.len ? n - at : h.len;
        uint64_t off = h.addr - WIN_A_BASE;
        if (h.window_base == WIN_A_BASE && h.tag == TAG_A && h.addr >= WIN_A_BASE &&
            off <= WIN_SIZE && h.len <= WIN_SIZE - off)
            memcpy(F.expect_a + off, s + at, got);
        at += got;
    }
}

static void run_stream(const uint8_t *data, size_t size)
{
    uint8_t mode = size ? data[0] : 0;
    size_t n = size ? size - 1 : 0;
    uint8_t *s = malloc(n + 1);
    if (!s)
        return;
    if (n)
        memcpy(s, data + 1, n);
    size_t off = 0;
    uint8_t reply[CMN_DP_REPLY_SIZE];
    if ((mode & 2) && n >= CMN_DP_REPLY_SIZE) {
        memcpy(reply, s, sizeof reply);
        off = CMN_DP_REPLY_SIZE;
    } else {
        struct cmn_dp_reply ok = {.kind = CMN_DP_REPLY_OK, .source_id = 1};
        cmn_dp_reply_encode(&ok, reply);
    }
    if (mode & 1)
        steer(s + off, n - off);
    model_window_a(reply, s + off, n - off);
    char hp[32];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", F.port);
    if (lc_dp_recv_add_source(F.r, 1, hp, NULL) != 0)
        __builtin_trap();
    int fd = accept(F.lfd, NULL, NULL);
    if (fd < 0)
        __builtin_trap();
    uint8_t hello[CMN_DP_HELLO_SIZE];
    size_t got = 0;
    while (got < sizeof hello) {
        ssize_t k = read(fd, hello + got, sizeof hello - got);
        if (k <= 0)
            __builtin_trap();
        got += (size_t)k;
    }
    send(fd, reply, sizeof reply, MSG_NOSIGNAL);
    if (n > off)
        send(fd, s + off, n - off, MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    /* Every stream ends in a failure of the source (EOF at the latest): wait for it. The
     * wait's code alone cannot tell a timeout from a source refused as expired (both
     * LODE_ETIMEOUT): the source's state can. */
    struct lc_dp_expect never = {1, UINT64_MAX};
    int rc = lc_dp_recv_wait(F.r, F.wa, &never, 1, 10000, NULL);
    if (rc == 0 || lc_dp_recv_source_state(F.r, 1, NULL) != LC_DP_SOURCE_FAILED)
        __builtin_trap();
    close(fd);
    free(s);
    for (size_t i = 0; i < GUARD; i++) {
        if (F.mem[i] != 0xa5 || F.mem[GUARD + WIN_SIZE + i] != 0xa5)
            __builtin_trap();
    }
    if (memcmp(F.mem + GUARD, F.expect_a, WIN_SIZE) != 0)
        __builtin_trap();
    if (atomic_load(&F.bad_commit))
        __builtin_trap();
    /* The connection is gone: every slot lent was committed or given back. */
    if (atomic_load(&F.lent) != atomic_load(&F.committed) + atomic_load(&F.dropped))
        __builtin_trap();
}

/* Seeds: a valid stream with frames for both windows, one stray and one with the other
 * window's tag; a bad reply. */
static uint8_t seed_stream[1 + 4 * (CMN_DP_DATA_HDR_SIZE + 100)];
static uint8_t seed_reply[1 + CMN_DP_REPLY_SIZE + CMN_DP_DATA_HDR_SIZE + 8];
static struct fuzz_seed seeds[2];

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    uint8_t *p = seed_stream;
    *p++ = 1;
    /* A with its tag, B with its tag, B + 1, A with B's tag: the steer() selectors. */
    const uint64_t sels[4] = {0, 1, 7, 16};
    for (int i = 0; i < 4; i++) {
        struct cmn_dp_data_hdr h = {.len = 100};
        cmn_dp_data_encode(&h, p);
        /* steer() reads the selector from the base and the offset from the address. */
        put64(p + 16, sels[i]);
        put64(p + 8, 128 + 64 * (uint64_t)i);
        p += CMN_DP_DATA_HDR_SIZE;
        memset(p, 'a' + i, 100);
        p += 100;
    }
    p = seed_reply;
    *p++ = 2;
    struct cmn_dp_reply err = {.kind = CMN_DP_REPLY_ERR, .code = 4, .source_id = 1};
    cmn_dp_reply_encode(&err, p);
    seeds[0] = (struct fuzz_seed){seed_stream, sizeof seed_stream};
    seeds[1] = (struct fuzz_seed){seed_reply, sizeof seed_reply};
    *n = 2;
    return seeds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!F.ready)
        setup();
    check_codecs(data, size);
    run_stream(data, size);
    return 0;
}
