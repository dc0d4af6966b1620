/* The io_uring disk backend: one ring per struct node_io, completions reaped on the loop
 * thread.
 *
 * Completions: the ring signals an eventfd (io_uring_register_eventfd) that a uv_poll_t
 * watches, so the loop wakes for disk completions the same way it does for sockets, and no
 * thread of ours ever blocks in io_uring_enter.
 * Submissions: start() only fills an SQE; a uv_prepare_t, which runs once per loop
 * iteration just before the loop blocks, submits everything queued meanwhile with one
 * io_uring_enter. A burst of puts from one read callback thus costs one system call.
 * The SQ has queue_depth entries and io.c never has more than queue_depth requests here,
 * each holding at most one SQE at a time, so an SQE is always available and the CQ (twice
 * the SQ) never overflows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <liburing.h>

#include "common/log.h"
#include "node/io_int.h"

/* Longest transfer put into one SQE (the kernel caps a read/write near 2 GiB anyway); the
 * rest follows as a resumed short transfer. */
#define URING_MAX_XFER (1u << 30)
/* Back-off after io_uring_enter failed for lack of resources. */
#define URING_RETRY_MS 1

struct uring_io {
    struct node_io base;        /* first: io.c hands us a struct node_io * */
    struct io_uring ring;
    int efd;
    uv_poll_t poll;             /* on efd: completions are ready */
    uv_prepare_t prep;          /* active while SQEs wait to be submitted */
    uv_timer_t retry;           /* a failed submission is retried from here */
    int handles_open;
    struct cmn_log_ratelimit submit_rl;
};

static struct uring_io *of(struct node_io *io)
{
    return (struct uring_io *)io;
}

static void on_prepare(uv_prepare_t *h);

/* Fills one SQE for the part of `req` not yet transferred (req->result bytes are done). */
static void queue_sqe(struct uring_io *u, struct node_io_req *req)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) {
        /* Impossible by construction (see the top of this file): a broken invariant here
         * would otherwise lose a request silently. */
        LOG_ERROR("io_uring", "submission queue full with %u requests in flight",
                  u->base.in_flight);
        abort();
    }
    size_t done = (size_t)req->result;
    size_t left = req->len - done;
    unsigned n = left > URING_MAX_XFER ? URING_MAX_XFER : (unsigned)left;
    switch (req->op) {
    case NODE_IO_READ:
        io_uring_prep_read(sqe, req->fd, (char *)req->buf + done, n, req->off + done);
        break;
    case NODE_IO_WRITE:
        io_uring_prep_write(sqe, req->fd, (const char *)req->buf + done, n, req->off + done);
        break;
    case NODE_IO_FDATASYNC:
        io_uring_prep_fsync(sqe, req->fd, IORING_FSYNC_DATASYNC);
        break;
    }
    io_uring_sqe_set_data(sqe, req);
    uv_prepare_start(&u->prep, on_prepare); /* no-op when already active */
}

static void uring_start(struct node_io *io, struct node_io_req *req)
{
    struct uring_io *u = of(io);
    queue_sqe(u, req);
    uv_ref((uv_handle_t *)&u->poll); /* a completion is owed: keep the loop alive for it */
}

static void on_retry(uv_timer_t *h)
{
    on_prepare(&((struct uring_io *)h->data)->prep);
}

/* Submits every queued SQE. */
static void on_prepare(uv_prepare_t *h)
{
    struct uring_io *u = h->data;
    uv_prepare_stop(&u->prep);
    while (io_uring_sq_ready(&u->ring) > 0) {
        int rc = io_uring_submit(&u->ring);
        if (rc == -EINTR)
            continue;
        if (rc <= 0) {
            /* -EAGAIN/-ENOMEM: the kernel lacks resources right now. The SQEs stay in
             * the ring; try again shortly rather than failing requests. */
            uint32_t dropped;
            if (cmn_log_ratelimit_ok(&u->submit_rl, &dropped))
                LOG_WARN("io_uring", "io_uring_enter: %s; retrying (%u similar suppressed)",
                         rc < 0 ? strerror(-rc) : "nothing submitted", dropped);
            uv_timer_start(&u->retry, on_retry, URING_RETRY_MS, 0);
            return;
        }
    }
}

/* One CQE for `req`: resume a short transfer, or complete it. */
static void on_cqe(struct uring_io *u, struct node_io_req *req, int res)
{
    if (res == -EINTR || res == -EAGAIN) {
        queue_sqe(u, req);
        return;
    }
    if (res == -EINVAL && req->op == NODE_IO_READ && req->result > 0) {
        /* A short O_DIRECT read stops at end of file, which need not be aligned; some file
         * systems refuse the unaligned remainder instead of returning 0. Still EOF. */
    } else if (res < 0) {
        req->result = res;
    } else if (req->op == NODE_IO_FDATASYNC) {
        req->result = 0;
    } else {
        req->result += res;
        if ((size_t)req->result < req->len) {
            if (res > 0) {
                queue_sqe(u, req); /* short transfer: the rest goes as a new SQE */
                return;
            }
            /* 0 bytes: end of file for a read (result stays short); a write that makes
             * no progress would loop forever. */
            if (req->op == NODE_IO_WRITE)
                req->result = -EIO;
        }
    }
    node_io_done_(&u->base, req);
}

static void reap(struct uring_io *u)
{
    struct io_uring_cqe *cqe;
    /* One at a time, marking each seen before its callback: callbacks may queue SQEs or
     * close the backend. */
    while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        struct node_io_req *req = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        on_cqe(u, req, res);
    }
    if (u->base.in_flight == 0)
        uv_unref((uv_handle_t *)&u->poll);
}

static void on_eventfd(uv_poll_t *h, int status, int events)
{
    struct uring_io *u = h->data;
    uint64_t count;
    (void)events;
    if (status < 0)
        LOG_WARN("io_uring", "eventfd poll: %s", uv_strerror(status));
    /* Drain first: a completion posted after this read signals the eventfd again. */
    if (read(u->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        LOG_WARN("io_uring", "eventfd read: %s", strerror(errno));
    reap(u);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct uring_io *u = h->data;
    if (--u->handles_open > 0)
        return;
    io_uring_queue_exit(&u->ring);
    close(u->efd);
    void (*cb)(void *) = u->base.close_cb;
    void *data = u->base.close_data;
    free(u);
    if (cb != NULL)
        cb(data);
}

static void uring_destroy(struct node_io *io)
{
    struct uring_io *u = of(io);
    u->handles_open = 3;
    uv_close((uv_handle_t *)&u->poll, on_handle_closed);
    uv_close((uv_handle_t *)&u->prep, on_handle_closed);
    uv_close((uv_handle_t *)&u->retry, on_handle_closed);
}

static const struct node_io_backend uring_backend = {
    .name = "io_uring",
    .start = uring_start,
    .destroy = uring_destroy,
};

int node_io_uring_create_(uv_loop_t *loop, unsigned queue_depth, struct node_io **out,
                          struct cmn_err *err)
{
    struct uring_io *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return cmn_err_set(err, -ENOMEM, "io_uring: out of memory");
    node_io_init_(&u->base, loop, &uring_backend, queue_depth);
    u->submit_rl = (struct cmn_log_ratelimit)CMN_LOG_RATELIMIT_INIT(10000, 3);
    u->efd = -1;

    int rc = io_uring_queue_init(queue_depth, &u->ring, 0);
    if (rc < 0) {
        free(u);
        return cmn_err_set(err, rc, "io_uring_queue_init(%u entries): %s", queue_depth,
                           strerror(-rc));
    }
    u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->efd < 0) {
        rc = -errno;
        cmn_err_set(err, rc, "io_uring: eventfd: %s", strerror(-rc));
        goto fail;
    }
    rc = io_uring_register_eventfd(&u->ring, u->efd);
    if (rc < 0) {
        cmn_err_set(err, rc, "io_uring_register_eventfd: %s", strerror(-rc));
        goto fail;
    }
    rc = uv_poll_init(loop, &u->poll, u->efd);
    if (rc < 0) {
        cmn_err_set(err, rc, "io_uring: watch eventfd: %s", uv_strerror(rc));
        goto fail;
    }
    uv_prepare_init(loop, &u->prep);
    uv_timer_init(loop, &u->retry);
    u->poll.data = u->prep.data = u->retry.data = u;
    rc = uv_poll_start(&u->poll, UV_READABLE, on_eventfd);
    if (rc < 0) {
        cmn_err_set(err, rc, "io_uring: watch eventfd: %s", uv_strerror(rc));
        /* The handles exist now: release through the asynchronous path. */
        u->base.closing = u->base.destroying = 1;
        uring_destroy(&u->base);
        return rc;
    }
    /* Idle, the backend must not keep the loop running; uring_start refs it. */
    uv_unref((uv_handle_t *)&u->poll);
    *out = &u->base;
    return 0;

fail:
    if (u->efd >= 0)
        close(u->efd);
    io_uring_queue_exit(&u->ring);
    free(u);
    return rc;
}
