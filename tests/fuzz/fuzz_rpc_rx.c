/* Fuzz target: the server's frame receiver with payload diversion (common/rpc.c,
 * cmn_rpc_rx_*), the first code an unauthenticated peer's bytes reach on a server.
 *
 * Input byte 0 chooses the read sizes (exact cuts or not) and whether payloads are diverted
 * into separate memory. Checked besides "no crash, no leak, no undefined behaviour": every
 * delivered frame respects max_frame, a diverted payload is the bytes that followed its body,
 * and a failure leaves the receiver dead with a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc_codec.h"
#include "common/rpc_internal.h"
#include "tests/fuzz/fuzz.h"

#define MAX_FRAME 4096u

struct ctx {
    int divert;
    uint8_t *dest;
    size_t dest_len;
    unsigned frames;
};

static int on_frame(void *data, const struct cmn_rpc_header *h, const uint8_t *body,
                    const uint8_t *payload)
{
    struct ctx *c = data;
    if ((uint64_t)h->body_len + h->payload_len > MAX_FRAME || !body || !payload)
        abort();
    c->frames++;
    return 0;
}

static uint8_t *divert(void *data, const struct cmn_rpc_header *h, const uint8_t *body)
{
    struct ctx *c = data;
    (void)body;
    if (!c->divert || h->payload_len == 0)
        return NULL;
    free(c->dest);
    c->dest = malloc(h->payload_len);
    c->dest_len = h->payload_len;
    return c->dest;
}

static int diverted(void *data, const struct cmn_rpc_header *h)
{
    struct ctx *c = data;
    if (!c->dest || c->dest_len != h->payload_len)
        abort();
    c->frames++;
    return 0;
}

static const struct cmn_rpc_rx_ops ops = {.frame = on_frame, .divert = divert,
                                          .diverted = diverted};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct ctx c = {.divert = data[0] & 1};
    int exact = (data[0] >> 1) & 1;
    size_t step = 1 + (data[0] >> 2); /* scratch size: 1..64 bytes */
    data++, size--;
    struct cmn_rpc_rx rx;
    cmn_rpc_rx_init(&rx, MAX_FRAME);
    uint8_t scratch[64];
    size_t off = 0;
    int rc = 0;
    while (off < size && rc == 0) {
        char *base;
        size_t len;
        cmn_rpc_rx_next_read(&rx, exact, scratch, step, &base, &len);
        if (len == 0)
            abort(); /* the receiver must always accept some bytes */
        if (len > size - off)
            len = size - off;
        memcpy(base, data + off, len); /* what recv(2) would do */
        off += len;
        if (cmn_rpc_rx_is_direct(&rx, base))
            rc = cmn_rpc_rx_feed_direct(&rx, len, &ops, &c);
        else
            rc = cmn_rpc_rx_feed(&rx, (const uint8_t *)base, len, &ops, &c);
    }
    if (rc < 0 && (!rx.dead || rx.err.msg[0] == '\0'))
        abort();
    cmn_rpc_rx_free(&rx);
    free(c.dest);
    return 0;
}

static uint8_t seed1[CMN_RPC_HEADER_SIZE + 3 + 5];
static uint8_t seed2[2 * CMN_RPC_HEADER_SIZE + 4];
static struct fuzz_seed seeds[2];

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    /* A request with a body and a payload, diverted and cut exactly; two pipelined pings. */
    struct cmn_rpc_header h = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST,
                               .method = 300, .request_id = 7, .body_len = 3,
                               .payload_len = 4};
    seed1[0] = 0x03 | (8 << 2);
    cmn_rpc_header_pack(&h, seed1 + 1);
    memcpy(seed1 + 1 + CMN_RPC_HEADER_SIZE, "abcWXYZ", 7);
    struct cmn_rpc_header p = {.version = CMN_RPC_VERSION, .kind = CMN_RPC_REQUEST, .method = 1,
                               .request_id = 1, .body_len = 1};
    seed2[0] = 0x00 | (63 << 2);
    cmn_rpc_header_pack(&p, seed2 + 1);
    seed2[1 + CMN_RPC_HEADER_SIZE] = 0;
    p.request_id = 2;
    cmn_rpc_header_pack(&p, seed2 + 2 + CMN_RPC_HEADER_SIZE);
    seed2[2 + 2 * CMN_RPC_HEADER_SIZE] = 0;
    seeds[0] = (struct fuzz_seed){seed1, sizeof(seed1)};
    seeds[1] = (struct fuzz_seed){seed2, 3 + 2 * CMN_RPC_HEADER_SIZE};
    *n = 2;
    return seeds;
}
