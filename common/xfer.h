/* Data transports: "write these bytes at this offset of that remote target". The node's send
 * side of GET goes through this interface, so the tcp, rc (RDMA RC) and dc (mlx5 DC)
 * fan-out transports plug in without touching the chunk store. The first implementation is
 * the RPC reply itself (the bytes travel as the response payload).
 *
 * A transport instance belongs to one libuv loop; callbacks run on it.
 */
#ifndef LODE_COMMON_XFER_H
#define LODE_COMMON_XFER_H

#include <stddef.h>
#include <stdint.h>

struct cmn_xfer;

/* Completion of one write: 0, or a negative code (the remote target is gone, fenced, timed
 * out). The source bytes may be reused or freed once this runs. */
typedef void (*cmn_xfer_cb)(void *data, int status);

struct cmn_xfer_ops {
    const char *name;           /* "rpc", "tcp", "rc", "dc" */
    /* Writes len bytes from src to offset `remote_off` of the target named by `target`
     * (transport-specific: an RPC call, a client session and window, a DC address). Returns 0
     * (cb will run exactly once) or an error (cb will not run). */
    int (*write)(struct cmn_xfer *x, void *target, uint64_t remote_off, const void *src,
                 size_t len, cmn_xfer_cb cb, void *data);
    void (*destroy)(struct cmn_xfer *x);
};

struct cmn_xfer {
    const struct cmn_xfer_ops *ops;
    void *impl;
};

static inline int cmn_xfer_write(struct cmn_xfer *x, void *target, uint64_t remote_off,
                                 const void *src, size_t len, cmn_xfer_cb cb, void *data)
{
    return x->ops->write(x, target, remote_off, src, len, cb, data);
}

#endif
