/* Between node/io.c (the generic part: queue-depth bound, FIFO wait list, close) and the
 * two backends (io_uring.c, io_threads.c). Not for other users of node/io.h.
 *
 * Split of work: io.c counts requests, keeps those beyond the queue depth waiting in FIFO
 * order and hands a backend at most `queue_depth` at a time through `start`; the backend
 * performs the whole transfer (short transfers resumed, EINTR retried) and reports each
 * request exactly once through node_io_done_(), on the loop thread. Once closing and nothing
 * is in flight or waiting, io.c calls `destroy`, which releases the backend's handles
 * asynchronously, frees the structure and then runs the close callback.
 */
#ifndef LODE_NODE_IO_INT_H
#define LODE_NODE_IO_INT_H

#include "node/io.h"

/* A queue depth beyond this is a configuration mistake, not a disk. */
#define NODE_IO_MAX_QUEUE_DEPTH 4096u

struct node_io_backend {
    const char *name;
    /* Issues one request (already counted in `in_flight`, result preset to 0). Must not
     * complete it synchronously: completion always comes later from the loop. */
    void (*start)(struct node_io *io, struct node_io_req *req);
    /* Releases everything (possibly later, from the loop), frees the structure, and then
     * runs io->close_cb (copied out first: `io` is gone by then). */
    void (*destroy)(struct node_io *io);
};

/* Embedded as the first member of each backend's own structure. */
struct node_io {
    uv_loop_t *loop;
    const struct node_io_backend *be;
    unsigned queue_depth;
    unsigned in_flight;              /* handed to the backend, not yet completed */
    unsigned waiting;                /* beyond the queue depth, in wait_head..wait_tail */
    struct node_io_req *wait_head, *wait_tail;
    int closing;                     /* node_io_close() was called */
    int destroying;                  /* backend destroy started */
    void (*close_cb)(void *data);
    void *close_data;
};

void node_io_init_(struct node_io *io, uv_loop_t *loop, const struct node_io_backend *be,
                   unsigned queue_depth);

/* A backend finished `req` (req->result set): frees its slot, starts waiting requests, runs
 * the caller's callback, and finishes a pending close. */
void node_io_done_(struct node_io *io, struct node_io_req *req);

int node_io_uring_create_(uv_loop_t *loop, unsigned queue_depth, struct node_io **out,
                          struct cmn_err *err);
int node_io_threads_create_(uv_loop_t *loop, unsigned queue_depth, struct node_io **out,
                            struct cmn_err *err);

#endif
