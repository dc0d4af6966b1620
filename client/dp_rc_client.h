/* liblode's side of the rc data plane: RDMA RC connections to data sources and the windows
 * they write into or read from.
 *
 * For one session credential, the client holds one RC connection per data source (a data
 * node, or a gateway worker that RDMA-READs staged PUTs), all on one RDMA device and one
 * protection domain, so that one registered window has one rkey that every source can use:
 * that rkey goes into the request's rc1 token. The sources act; the client never posts a data
 * transfer and learns nothing per transfer. An RDMA WRITE completes at the source only once
 * the client's NIC has placed the data, so when the gateway's HTTP reply says a GET is done,
 * the bytes are in the window: no per-source byte accounting is needed here.
 *
 * Fence: lc_rc_window_deregister() revokes the rkey; from then on the NIC refuses every
 * access with it (a late write fails at its source and lands nowhere). That is the strong
 * fence; deregister (or re-register) a window before reusing memory after a failed request.
 *
 * Connections are made with blocking calls (bounded by a timeout). Thread-safe: every
 * function may be called from any thread; calls on one client are serialised.
 * docs/dataplane-rc.md describes the protocol.
 */
#ifndef LODE_CLIENT_DP_RC_CLIENT_H
#define LODE_CLIENT_DP_RC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/dp_proto.h"
#include "common/err.h"

struct lc_rc_client;
struct lc_rc_window;

struct lc_rc_client_config {
    struct cmn_dp_cred cred;       /* copied */
    /* Local address to connect from (chooses the RDMA device), or NULL: the route to the
     * first source chooses it. Every later source must be reachable through the same device. */
    const char *local_host;
    uint32_t max_sources;          /* 0: 1024 */
};

/* Window access the sources get. */
enum lc_rc_access {
    LC_RC_REMOTE_WRITE = 1,        /* sources may RDMA-WRITE into it (GET) */
    LC_RC_REMOTE_READ = 2,         /* sources may RDMA-READ from it (staged PUT) */
};

/* Creates a client. With local_host set, opens its RDMA device now (so windows can be
 * registered before any source is connected). Returns 0 and *out, or a negative code with a
 * message in err: -EINVAL (bad key length or address), LODE_EUNAVAILABLE (no RDMA connection
 * manager or device for that address), -ENOMEM. Free with lc_rc_client_destroy. */
int lc_rc_client_create(const struct lc_rc_client_config *cfg, struct lc_rc_client **out,
                        struct cmn_err *err);

/* Disconnects every source, deregisters every window still registered (their handles become
 * invalid), frees everything. NULL is a no-op. */
void lc_rc_client_destroy(struct lc_rc_client *c);

struct lc_rc_source {
    uint64_t source_id;            /* the id the session listed; HELLO_OK must carry it */
    const char *addr;              /* its rc endpoint "host:port" ("[v6]:port" for IPv6) */
    int status;                    /* out: 0 connected, or the failure code */
};

/* Connects to n sources at once (those already connected are left alone and report 0; a
 * failed or disconnected one is connected again) and waits until each is connected or failed,
 * or timeout_ms passes. Returns 0 when all are connected, else the first failure's code with
 * its message in err, naming the source: LODE_EAUTH (bad MAC), LODE_ETIMEOUT (credential
 * expired, or no answer in time), -EBUSY (the session is already connected to that source),
 * LODE_EUNAVAILABLE (the source is full or shutting down), LODE_EBADMSG (malformed exchange,
 * or the source answered with another source id), LODE_ECLOSED (the connection dropped during
 * the exchange), -ECONNREFUSED (no rc listener there), -EXDEV (the source is reachable only
 * through another RDMA device), -EINVAL (bad address), other -errno. Per-source codes are in
 * srcs[i].status. A source refusing the session as in use is retried every 50 ms until the
 * timeout: right after a connection dropped, the source may still be tearing it down. */
int lc_rc_client_connect(struct lc_rc_client *c, struct lc_rc_source *srcs, size_t n,
                         uint32_t timeout_ms, struct cmn_err *err);

/* 0 when the source is connected; LODE_ECLOSED when its connection dropped (the source
 * failed, fenced the session, or went away: connect it again); -ENOENT when it was never
 * connected. Looks at pending connection events first, without blocking. */
int lc_rc_client_source_state(struct lc_rc_client *c, uint64_t source_id);

/* Drops the connection to one source (e.g. before reconnecting). -ENOENT if unknown. */
int lc_rc_client_disconnect(struct lc_rc_client *c, uint64_t source_id);

/* Registers [addr, addr + len) of host memory as a window with the given access (a mask of
 * enum lc_rc_access). The memory must stay valid until the window is deregistered. Returns
 * 0 and *out, or: -EINVAL (len 0, no access), LODE_ESTATE (no RDMA device chosen yet: give
 * local_host or connect a source first), or -errno from the NIC with a message (-ENOMEM often
 * means RLIMIT_MEMLOCK is too low). */
int lc_rc_window_register(struct lc_rc_client *c, void *addr, size_t len, unsigned access,
                          struct lc_rc_window **out, struct cmn_err *err);

/* The same for device memory exported as a dma-buf (a CUDA allocation through
 * cuMemGetHandleForAddressRange): `fd` is the dma-buf, `offset` the start within it, `iova`
 * the address the tokens use for its first byte (the device pointer). The fd may be closed
 * after this returns. -EOPNOTSUPP where the NIC or kernel cannot register dma-bufs. */
int lc_rc_window_register_dmabuf(struct lc_rc_client *c, int fd, uint64_t offset, size_t len,
                                 uint64_t iova, unsigned access, struct lc_rc_window **out,
                                 struct cmn_err *err);

/* The window's rkey, base address and size: the rc1 token's fields. */
uint32_t lc_rc_window_rkey(const struct lc_rc_window *w);
uint64_t lc_rc_window_base(const struct lc_rc_window *w);
uint64_t lc_rc_window_size(const struct lc_rc_window *w);

/* Deregisters the window (the fence above) and frees the handle. NULL is a no-op. */
void lc_rc_window_deregister(struct lc_rc_client *c, struct lc_rc_window *w);

#endif
