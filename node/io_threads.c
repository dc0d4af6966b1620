/* The thread-pool disk backend: each request is one uv_queue_work() job doing plain
 * pread/pwrite/fdatasync, for hosts where io_uring is forbidden (containers, seccomp) or
 * file systems that refuse O_DIRECT. The job resumes short transfers and retries EINTR, so
 * the caller sees the same contract as with io_uring.
 *
 * libuv's pool is shared (4 threads unless UV_THREADPOOL_SIZE says otherwise); io.c already
 * bounds our share to queue_depth jobs per disk. The work slots are allocated once, one per
 * unit of queue depth, so submitting never allocates.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "node/io_int.h"

struct work_slot {
    uv_work_t work;
    struct node_io_req *req;
    struct threads_io *owner;
    ssize_t result;              /* written by the worker, read in after_work */
    struct work_slot *next_free;
};

struct threads_io {
    struct node_io base;         /* first: io.c hands us a struct node_io * */
    uv_idle_t closer;            /* never started: closing it makes close asynchronous */
    struct work_slot *free_slots;
    struct work_slot slots[];
};

/* A whole transfer, on a pool thread. */
static ssize_t run_req(const struct node_io_req *req)
{
    if (req->op == NODE_IO_FDATASYNC) {
        while (fdatasync(req->fd) != 0) {
            if (errno != EINTR)
                return -errno;
        }
        return 0;
    }
    size_t done = 0;
    while (done < req->len) {
        ssize_t n;
        if (req->op == NODE_IO_READ)
            n = pread(req->fd, (char *)req->buf + done, req->len - done,
                      (off_t)(req->off + done));
        else
            n = pwrite(req->fd, (const char *)req->buf + done, req->len - done,
                       (off_t)(req->off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* A short O_DIRECT read stops at end of file, which need not be aligned; some
             * file systems refuse the unaligned remainder instead of returning 0. */
            if (errno == EINVAL && req->op == NODE_IO_READ && done > 0)
                break;
            return -errno;
        }
        if (n == 0) {
            /* End of file for a read; a write making no progress would spin forever. */
            if (req->op == NODE_IO_READ)
                break;
            return -EIO;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static void on_work(uv_work_t *w)
{
    struct work_slot *slot = w->data;
    slot->result = run_req(slot->req);
}

static void after_work(uv_work_t *w, int status)
{
    struct work_slot *slot = w->data;
    struct threads_io *t = slot->owner;
    struct node_io_req *req = slot->req;
    /* We never uv_cancel(), so status is 0; be exact anyway. */
    req->result = status < 0 ? (status == UV_ECANCELED ? -ECANCELED : status) : slot->result;
    slot->req = NULL;
    slot->next_free = t->free_slots;
    t->free_slots = slot;
    node_io_done_(&t->base, req);
}

static void threads_start(struct node_io *io, struct node_io_req *req)
{
    struct threads_io *t = (struct threads_io *)io;
    struct work_slot *slot = t->free_slots; /* never NULL: in_flight <= queue depth = slots */
    t->free_slots = slot->next_free;
    slot->req = req;
    slot->result = 0;
    /* Fails only for a NULL work callback. */
    (void)uv_queue_work(io->loop, &slot->work, on_work, after_work);
}

static void on_closer_closed(uv_handle_t *h)
{
    struct threads_io *t = h->data;
    void (*cb)(void *) = t->base.close_cb;
    void *data = t->base.close_data;
    free(t);
    if (cb != NULL)
        cb(data);
}

static void threads_destroy(struct node_io *io)
{
    struct threads_io *t = (struct threads_io *)io;
    uv_close((uv_handle_t *)&t->closer, on_closer_closed);
}

static const struct node_io_backend threads_backend = {
    .name = "threads",
    .start = threads_start,
    .destroy = threads_destroy,
};

int node_io_threads_create_(uv_loop_t *loop, unsigned queue_depth, struct node_io **out,
                            struct cmn_err *err)
{
    struct threads_io *t = calloc(1, sizeof(*t) + queue_depth * sizeof(t->slots[0]));
    if (t == NULL)
        return cmn_err_set(err, -ENOMEM, "disk I/O threads: out of memory");
    node_io_init_(&t->base, loop, &threads_backend, queue_depth);
    uv_idle_init(loop, &t->closer);
    t->closer.data = t;
    for (unsigned i = 0; i < queue_depth; i++) {
        t->slots[i].owner = t;
        t->slots[i].work.data = &t->slots[i];
        t->slots[i].next_free = t->free_slots;
        t->free_slots = &t->slots[i];
    }
    *out = &t->base;
    return 0;
}
