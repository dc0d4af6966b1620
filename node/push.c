#include "node/push.h"

#include <errno.h>
#include <stdlib.h>

#include <lode/errno.h>

/* ---- the "rpc" transport ------------------------------------------------------------- */

/* One write in progress. cmn_rpc_reply_payload may run `release` before it returns (the
 * connection was already gone); then the outcome is only known after the return, so the
 * completion is decided there. */
struct rpc_write {
    cmn_xfer_cb cb;
    void *data;
    int submitting;              /* inside cmn_rpc_reply_payload */
    int released;                /* release ran while submitting */
    int failed;                  /* the write returned an error: nobody waits for release */
};

static void rpc_release(void *arg)
{
    struct rpc_write *w = arg;
    if (w->submitting) {
        w->released = 1;
        return;
    }
    if (!w->failed)
        w->cb(w->data, 0);
    free(w);
}

static int rpc_write(struct cmn_xfer *x, void *target, uint64_t remote_off, const void *src,
                     size_t len, cmn_xfer_cb cb, void *data)
{
    (void)x;
    struct node_push_rpc_target *t = target;
    if (!t || !t->call || !cb)
        return -EINVAL;
    if (remote_off != 0) {
        cmn_rpc_reply_error(t->call, -EINVAL, NULL, 0,
                            "the rpc transport sends whole responses (offset %llu)",
                            (unsigned long long)remote_off);
        return -EINVAL;
    }
    struct rpc_write *w = calloc(1, sizeof(*w));
    if (!w) {
        cmn_rpc_reply_error(t->call, -ENOMEM, NULL, 0, "out of memory");
        return -ENOMEM;
    }
    w->cb = cb;
    w->data = data;
    w->submitting = 1;
    int rc = cmn_rpc_reply_payload(t->call, t->reply, src, len, rpc_release, w);
    w->submitting = 0;
    if (rc != 0) {
        /* The caller keeps the bytes and gets no callback: drop the record now if release
         * already ran, or let release drop it when it does. */
        if (w->released)
            free(w);
        else
            w->failed = 1;
        return rc;
    }
    if (w->released) {
        /* Written (or dropped) synchronously: complete now. */
        cb(data, 0);
        free(w);
    }
    return 0;
}

static void rpc_destroy(struct cmn_xfer *x)
{
    free(x);
}

static const struct cmn_xfer_ops rpc_ops = {
    .name = "rpc",
    .write = rpc_write,
    .destroy = rpc_destroy,
};

int node_push_rpc_create(struct cmn_xfer **out)
{
    struct cmn_xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->ops = &rpc_ops;
    x->impl = NULL;
    *out = x;
    return 0;
}

void node_push_destroy(struct cmn_xfer *x)
{
    if (x)
        x->ops->destroy(x);
}

/* ---- pushing a store read ------------------------------------------------------------ */

static void push_done(void *data, int status)
{
    struct node_push *p = data;
    /* The transport is done with the bytes: the store may reuse the buffer. */
    struct node_read *rd = p->rd;
    p->rd = NULL;
    node_read_release(rd);
    p->cb(p->data, status);
}

int node_push_read(struct node_push *p, struct cmn_xfer *x, void *target, uint64_t remote_off,
                   struct node_read *rd)
{
    if (!p || !p->cb || !x || !rd)
        return -EINVAL;
    p->rd = rd;
    int rc = cmn_xfer_write(x, target, remote_off, rd->data, rd->len, push_done, p);
    if (rc != 0)
        p->rd = NULL;
    return rc;
}
