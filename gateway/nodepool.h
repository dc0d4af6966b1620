/* Connections from one worker loop to the data nodes, and the three chunk calls the data
 * path needs (CHUNK_PUT, CHUNK_GET, CHUNK_DELETE).
 *
 * A pool belongs to one loop: create, call and close it only from that loop's thread. Per
 * node id it keeps one cmn_rpc_client (pipelined, authenticated), created on the first call
 * to the address the current cluster map gives for that nid, replaced when the map moves the
 * node to another address (calls still in flight on the old connection finish there), and
 * closed after idle_close_ms without calls.
 *
 * Failures: a transport failure (connection refused or lost, no answer in time, node
 * shutting down, handshake refused) counts against the node, asks the cluster refresher for
 * a fresh map (gw_cluster_kick), and puts the node on hold: for fail_hold_ms (doubling with
 * each further failure, up to 8x) calls to it fail at once with LODE_EUNAVAILABLE instead
 * of each waiting for a connect timeout; the first call after the hold tries again, and a
 * success clears the record. The node's own answers (LODE_ENOCHUNK, LODE_ECORRUPT,
 * LODE_ENOSPACE, ...) are not transport failures.
 *
 * Replies are checked: a CHUNK_PUT acknowledgement must name the chunk, length and XXH3
 * sent; a CHUNK_GET reply must carry exactly the bytes asked for. A reply that does not is
 * LODE_EBADMSG.
 */
#ifndef LODE_GATEWAY_NODEPOOL_H
#define LODE_GATEWAY_NODEPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/rpc.h"
#include "gateway/cluster.h"
#include "node.pb-c.h"

struct cmn_metrics;
struct gw_nodepool;

/* Counters shared by every pool of the process (registered once, before the workers
 * start, since metric registration is not thread-safe). */
struct gw_nodepool_metrics {
    struct cmn_counter *calls[4];      /* by method: put, get, delete, fanout */
    struct cmn_counter *errors[4];     /* calls that ended with a status other than 0 */
    struct cmn_counter *transport[4];  /* of which transport failures */
    struct cmn_counter *held;          /* calls refused at once: node on hold */
    struct cmn_counter *bytes_out;     /* chunk bytes put */
    struct cmn_counter *bytes_in;      /* chunk bytes got */
};

/* Registers lode_gateway_node_* in m. Returns 0 or -ENOMEM. */
int gw_nodepool_metrics_register(struct cmn_metrics *m, struct gw_nodepool_metrics *out);

struct gw_nodepool_config {
    uv_loop_t *loop;
    struct gw_cluster *cluster;        /* node addresses; kicked on transport failures */
    const void *secret;                /* cluster secret (copied) */
    size_t secret_len;
    uint32_t connect_timeout_ms;       /* per connection attempt (> 0) */
    uint64_t idle_close_ms;            /* close a node's connection unused this long (> 0) */
    uint64_t fail_hold_ms;             /* hold after a transport failure; 0 = no hold */
    uint32_t max_frame;                /* 0 = GW_CHUNK_SIZE_MAX + GW_FRAME_SLACK */
    const struct gw_nodepool_metrics *metrics; /* optional, shared */
};

#define GW_NODEPOOL_CONFIG_DEFAULT                                                           \
    {.connect_timeout_ms = 1000, .idle_close_ms = 60000, .fail_hold_ms = 1000}

/* Returns 0, -EINVAL (missing loop, cluster or secret, or a zero timeout), -ENOMEM. */
int gw_nodepool_create(const struct gw_nodepool_config *cfg, struct gw_nodepool **out);

/* Closes every connection: calls in flight complete with LODE_ECLOSED (their callbacks may
 * run before this returns); later submissions fail with LODE_ECLOSED. `cb` (may be NULL)
 * runs on a later loop iteration once all memory is released. Callbacks may call this. */
void gw_nodepool_close(struct gw_nodepool *p, void (*cb)(void *data), void *data);

struct gw_chunk_req;
typedef void (*gw_chunk_cb)(struct gw_chunk_req *req);

/* One chunk call, embedded in the caller's state; `data` and `cb` are the caller's. The
 * outcome fields are set before cb runs; `info` and `payload` point into memory that is
 * released when cb returns (copy what must outlive it). */
struct gw_chunk_req {
    void *data;
    gw_chunk_cb cb;
    /* ---- outcome ---- */
    int status;                        /* 0 or a lode error code */
    char message[200];                 /* why, when status != 0 (also after a refused
                                          submission) */
    const Lode__ChunkInfo *info;       /* the node's reply when status == 0 */
    const Lode__FanoutPushResponse *fanout; /* FANOUT_PUSH: the node's reply (one result
                                              per piece, checked) when status == 0 */
    const uint8_t *payload;            /* CHUNK_GET: the bytes asked for */
    size_t payload_len;
    size_t spliced;                    /* gw_nodepool_get_splice: leading bytes of them that
                                          are in the pipe (payload holds the rest at the
                                          same offsets) */
    /* ---- private ---- */
    struct gw_nodepool *pool_;
    struct gw_pool_client *pc_;
    uint32_t nid_;
    unsigned method_;
    uint8_t id_[16];
    uint64_t len_;                     /* put: length sent; get: length asked (0 = to end) */
    uint64_t off_;                     /* get: offset */
    uint64_t xxh3_;                    /* put: checksum sent */
};

/* CHUNK_PUT of `len` bytes at `data` (XXH3-64 `xxh3`, the node verifies it) as chunk `id`
 * on node `nid`. The bytes are sent from the caller's memory without a copy: they must stay
 * valid and unchanged until cb runs. Returns 0 (cb runs exactly once, on a later loop
 * iteration) or an error, with req->status and req->message set and cb never run:
 *   -EINVAL          bad arguments (len 0 or above GW_CHUNK_SIZE_MAX, no cb);
 *   LODE_EUNAVAILABLE no cluster map yet, or the node is on hold after failures;
 *   LODE_ENONODE     nid is not in the current map;
 *   LODE_ECLOSED     the pool is closing;
 *   -ENOMEM, or the RPC client's submission error. */
int gw_nodepool_put(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                    const uint8_t id[16], const void *data, size_t len, uint64_t xxh3,
                    uint32_t timeout_ms);

/* CHUNK_GET of `length` bytes (0 = to the end) at `offset` of chunk `id` on node `nid`.
 * The node verifies checksums and answers LODE_ECORRUPT rather than bad bytes. Returns as
 * gw_nodepool_put. */
int gw_nodepool_get(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                    const uint8_t id[16], uint64_t offset, uint64_t length,
                    uint32_t timeout_ms);

/* Like gw_nodepool_get for `length` (> 0) bytes, read from the socket straight into `dest`
 * (length bytes, valid until cb runs; it may be written even when the call fails). On
 * success req->payload == dest. */
int gw_nodepool_get_into(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                         const uint8_t id[16], uint64_t offset, uint64_t length, void *dest,
                         uint32_t timeout_ms);

/* Like gw_nodepool_get_into, with the bytes moved from the socket into the pipe `pipe_wr`
 * (non-blocking write end) as far as it takes them (cmn_rpc_client_call_splice): on success
 * the first req->spliced bytes are in the pipe and dest holds the rest at their offsets.
 * After a failure the pipe may hold part of them. */
int gw_nodepool_get_splice(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                           const uint8_t id[16], uint64_t offset, uint64_t length, int pipe_wr,
                           void *dest, uint32_t timeout_ms);

/* CHUNK_DELETE of chunk `id` on node `nid` (LODE_ENOCHUNK when it is not there). Returns
 * as gw_nodepool_put. */
int gw_nodepool_delete(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                       const uint8_t id[16], uint32_t timeout_ms);

/* FANOUT_PUSH `q` (borrowed for the call) to node `nid`: the node writes the pieces into
 * the client's window over its data session and answers once they are written
 * (node/fanout.h). On status 0, req->fanout holds one result per piece. Returns as
 * gw_nodepool_put. */
int gw_nodepool_fanout(struct gw_nodepool *p, struct gw_chunk_req *req, uint32_t nid,
                       const Lode__FanoutPushRequest *q, uint32_t timeout_ms);

/* Whether `status` says the node could not be reached or did not answer (the failures that
 * put a node on hold), as opposed to an answer from the node. */
bool gw_nodepool_transport_failure(int status);

struct gw_nodepool_node_stats {
    uint64_t calls;                    /* submitted */
    uint64_t errors;                   /* completed with a status other than 0 */
    uint64_t transport_failures;
    uint64_t held;                     /* refused at once while on hold */
    uint64_t connects;                 /* RPC clients created for it */
    bool connected;                    /* a client exists now */
    bool on_hold;
    unsigned inflight;
};

/* What the pool knows of one node (all zero for a node it never called). */
void gw_nodepool_node_stats(struct gw_nodepool *p, uint32_t nid,
                            struct gw_nodepool_node_stats *out);

/* Calls in flight on the pool. */
unsigned gw_nodepool_inflight(const struct gw_nodepool *p);

#endif
