/* The node's side of a dc FANOUT_PUSH that runs without a ConnectX NIC: the DcTarget message
 * on the wire (node.proto) and node_fanout_dc_token, the re-validation a node applies to a
 * transport-3 request before any read. Expected values are independent of the code: the
 * token fields are those of a hand-written 81-character token, and the packed bytes were
 * computed with Python's standard library (protobuf wire format by hand, see below). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/dp_dc.h"
#include "common/rdma_token.h"
#include "node.pb-c.h"
#include "node/fanout.h"
#include "tests/tap.h"

/* GID ::ffff:192.168.0.1 (IPv4-mapped), network order. */
static const uint8_t GID4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 1};

static void target(Lode__DcTarget *d, uint8_t *gid)
{
    lode__dc_target__init(d);
    memcpy(gid, GID4, 16);
    d->rkey = 0x01020304;
    d->lid = 0;
    d->dctn = 0x010203;
    d->g = 1;
    d->gid.data = gid;
    d->gid.len = 16;
    d->desc_base = 0x0102030405060708ull;
    d->desc_size = 0x100000;
}

static void request(Lode__FanoutPushRequest *q, Lode__DcTarget *d)
{
    lode__fanout_push_request__init(q);
    q->transport = NODE_FANOUT_DC;
    q->window_base = 0x0102030405060708ull;
    q->window_size = 0x100000;
    q->dc = d;
}

static void test_wire(void)
{
    Lode__DcTarget d;
    uint8_t gid[16];
    target(&d, gid);
    /* Packed by hand after the protobuf encoding rules (Python):
     *   def v(n): out=b''; ... base-128 varint
     *   b'\x08'+v(0x01020304) + b'\x18'+v(0x010203) + b'\x20\x01' + b'\x2a\x10'+gid
     *   + b'\x30'+v(0x0102030405060708) + b'\x38'+v(0x100000)
     * (lid 0 is the default and is not written). */
    static const uint8_t want[] = {
        0x08, 0x84, 0x86, 0x88, 0x08,                   /* rkey 0x01020304 */
        0x18, 0x83, 0x84, 0x04,                         /* dctn 0x010203 */
        0x20, 0x01,                                     /* g 1 */
        0x2a, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 1, /* gid */
        0x30, 0x88, 0x8e, 0x98, 0xa8, 0xc0, 0xe0, 0x80, 0x81, 0x01, /* desc_base */
        0x38, 0x80, 0x80, 0x40,                         /* desc_size 0x100000 */
    };
    uint8_t buf[128];
    size_t n = lode__dc_target__get_packed_size(&d);
    is_int(n, sizeof(want), "DcTarget packs to %zu bytes", sizeof(want));
    lode__dc_target__pack(&d, buf);
    ok(n == sizeof(want) && memcmp(buf, want, n) == 0, "... byte for byte as the wire format says");

    Lode__FanoutPushRequest q;
    request(&q, &d);
    size_t qn = lode__fanout_push_request__get_packed_size(&q);
    uint8_t *qb = malloc(qn);
    lode__fanout_push_request__pack(&q, qb);
    Lode__FanoutPushRequest *back = lode__fanout_push_request__unpack(NULL, qn, qb);
    ok(back && back->transport == 3 && back->dc && back->dc->rkey == 0x01020304 &&
           back->dc->dctn == 0x010203 && back->dc->g == 1 && back->dc->gid.len == 16 &&
           memcmp(back->dc->gid.data, GID4, 16) == 0 &&
           back->dc->desc_base == 0x0102030405060708ull && back->dc->desc_size == 0x100000,
       "a FANOUT_PUSH with transport 3 and its DcTarget round-trips");
    if (back)
        lode__fanout_push_request__free_unpacked(back, NULL);
    free(qb);

    /* A request without the field (every tcp/rc request) decodes with dc NULL. */
    Lode__FanoutPushRequest plain = LODE__FANOUT_PUSH_REQUEST__INIT;
    plain.transport = 1;
    qn = lode__fanout_push_request__get_packed_size(&plain);
    qb = malloc(qn);
    lode__fanout_push_request__pack(&plain, qb);
    back = lode__fanout_push_request__unpack(NULL, qn, qb);
    ok(back && back->dc == NULL, "a tcp request carries no DcTarget");
    if (back)
        lode__fanout_push_request__free_unpacked(back, NULL);
    free(qb);
}

/* The token the node rebuilds must be the one the gateway parsed. */
static void test_valid(void)
{
    const char *text = "0102030405060708:00100000:01020304:0000:010203:1:"
                       "00000000000000000000ffffc0a80001";
    struct cmn_rdma_token parsed, rebuilt;
    struct cmn_err err;
    cmn_err_clear(&err);
    is_int(cmn_rdma_token_parse(text, strlen(text), &parsed, &err), 0, "the 81-char token parses");
    Lode__DcTarget d;
    uint8_t gid[16];
    target(&d, gid);
    Lode__FanoutPushRequest q;
    request(&q, &d);
    is_int(node_fanout_dc_token(&q, NULL, &rebuilt, &err), 0, "a valid target is accepted (%s)",
           err.msg);
    ok(rebuilt.kind == CMN_RDMA_DC && rebuilt.base == parsed.base &&
           rebuilt.size == parsed.size && rebuilt.u.dc.rkey == parsed.u.dc.rkey &&
           rebuilt.u.dc.lid == parsed.u.dc.lid && rebuilt.u.dc.dctn == parsed.u.dc.dctn &&
           rebuilt.u.dc.g == parsed.u.dc.g &&
           memcmp(rebuilt.u.dc.gid, parsed.u.dc.gid, 16) == 0 && !rebuilt.u.dc.legacy,
       "... rebuilt into the token the gateway parsed");

    /* A legacy (115-char) token: the request window is a suffix inside the descriptor's. */
    q.window_base = 0x0102030405060708ull + 0x1000;
    q.window_size = 0x2000;
    is_int(node_fanout_dc_token(&q, NULL, &rebuilt, &err), 0, "a legacy window inside the "
           "descriptor's is accepted");
    ok(rebuilt.u.dc.legacy && rebuilt.base == q.window_base && rebuilt.size == 0x2000,
       "... marked legacy, with the request's window");

    /* g = 0: addressed by LID. */
    request(&q, &d);
    d.g = 0;
    d.lid = 0x0017;
    memset(gid, 0, 16);
    is_int(node_fanout_dc_token(&q, NULL, &rebuilt, &err), 0, "g = 0 with unicast LID 0x17");
}

#define BAD(what, ...)                                                                    \
    do {                                                                                  \
        Lode__DcTarget d;                                                                 \
        uint8_t gid[16];                                                                  \
        Lode__FanoutPushRequest q;                                                        \
        struct cmn_rdma_token t;                                                          \
        struct cmn_err err;                                                               \
        cmn_err_clear(&err);                                                              \
        target(&d, gid);                                                                  \
        request(&q, &d);                                                                  \
        __VA_ARGS__;                                                                      \
        int rc_ = node_fanout_dc_token(&q, NULL, &t, &err);                               \
        is_int(rc_, -EINVAL, "refused: %s (%s)", what, err.msg);                          \
        ok(!strstr(err.msg, "1020304") && t.kind == CMN_RDMA_NONE,                        \
           "... without naming the rkey, and nothing rebuilt");                           \
    } while (0)

static void test_invalid(void)
{
    BAD("no DcTarget", q.dc = NULL);
    BAD("a 15-byte gid", d.gid.len = 15);
    BAD("g = 2", d.g = 2);
    BAD("a 17-bit lid", d.lid = 0x10000);
    BAD("a 25-bit dctn", d.dctn = 0x1000000);
    BAD("an empty window", q.window_size = 0);
    BAD("a window that wraps", q.window_base = UINT64_MAX - 10; q.window_size = 100;
        d.desc_base = 0; d.desc_size = UINT64_MAX);
    BAD("a window larger than a DC token names", q.window_size = (uint64_t)1 << 32;
        d.desc_size = (uint64_t)1 << 33);
    BAD("an empty descriptor window", d.desc_size = 0);
    BAD("a request window reaching past the descriptor's", q.window_base += 16);
    BAD("a request window starting before the descriptor's", q.window_base -= 16);
    BAD("an all-zero GID with g = 1", memset(gid, 0, 16));
    BAD("LID 0 with g = 0", d.g = 0; d.lid = 0);
    BAD("a multicast LID with g = 0", d.g = 0; d.lid = 0xc001);
}

int main(void)
{
    test_wire();
    test_valid();
    test_invalid();
    return tap_done();
}
