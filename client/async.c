/* liblode: the asynchronous calls. A queue per client and up to async_threads worker
 * threads, started when a request finds no idle worker; each worker runs the synchronous
 * call and then the callback. On destroy, workers finish the request in hand, complete the
 * queued ones with LODE_ERR_CANCELED and exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"

struct job {
    struct job *next;
    bool put;
    char *bucket, *key, *content_type;
    bool has_range;
    struct lode_range range;
    uint32_t part;
    lode_buf *buf;
    uint64_t buf_off, length;
    lode_done_cb cb;
    void *user_data;
};

struct lc_async {
    lode_client *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    pthread_t threads[LC_MAX_ASYNC_THREADS];
    unsigned n_threads, idle;
    bool stop;
};

static void job_free(struct job *j)
{
    free(j->bucket);
    free(j->key);
    free(j->content_type);
    free(j);
}

static void run(lode_client *c, struct job *j, bool cancel)
{
    struct lode_result res;
    int rc;
    if (cancel) {
        memset(&res, 0, sizeof(res));
        res.transport = LODE_TRANSPORT_HTTP;
        rc = res.status = LODE_ERR_CANCELED;
        snprintf(res.message, sizeof(res.message), "canceled: the client is being destroyed");
    } else if (j->put) {
        struct lode_put_opts po = {.content_type = j->content_type};
        rc = lode_put(c, j->bucket, j->key, j->buf, j->buf_off, j->length, &po, &res);
    } else {
        struct lode_get_opts go = {.range = j->has_range ? &j->range : NULL,
                                   .part_number = j->part};
        rc = lode_get(c, j->bucket, j->key, &go, j->buf, j->buf_off, &res);
    }
    /* The hold taken at submission keeps the buffer registered until here. */
    lc_buf_release(j->buf);
    j->cb(j->user_data, rc, &res);
    job_free(j);
}

static void *worker(void *arg)
{
    struct lc_async *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->head && !a->stop) {
            a->idle++;
            pthread_cond_wait(&a->cv, &a->mu);
            a->idle--;
        }
        struct job *j = a->head;
        if (!j)
            break; /* stopping, queue empty */
        a->head = j->next;
        if (!a->head)
            a->tail = NULL;
        bool cancel = a->stop;
        pthread_mutex_unlock(&a->mu);
        run(a->c, j, cancel);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

void lc_async_destroy(struct lc_async *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    for (unsigned i = 0; i < a->n_threads; i++)
        pthread_join(a->threads[i], NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static int submit(lode_client *c, struct job *j, struct cmn_err *err)
{
    pthread_mutex_lock(&c->lock);
    if (!c->async) {
        struct lc_async *a = calloc(1, sizeof(*a));
        if (!a) {
            pthread_mutex_unlock(&c->lock);
            return cmn_err_set(err, -ENOMEM, "out of memory");
        }
        a->c = c;
        pthread_mutex_init(&a->mu, NULL);
        pthread_cond_init(&a->cv, NULL);
        c->async = a;
    }
    struct lc_async *a = c->async;
    pthread_mutex_unlock(&c->lock);

    pthread_mutex_lock(&a->mu);
    int rc = 0;
    if (a->idle == 0 && a->n_threads < c->async_threads) {
        rc = -pthread_create(&a->threads[a->n_threads], NULL, worker, a);
        if (rc == 0)
            a->n_threads++;
        else if (a->n_threads > 0)
            rc = 0; /* the running workers will get to it */
    }
    if (rc == 0) {
        if (a->tail)
            a->tail->next = j;
        else
            a->head = j;
        a->tail = j;
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc)
        return cmn_err_set(err, -EAGAIN, "cannot start a worker thread: %s", lode_strerror(rc));
    return 0;
}

static int submit_job(lode_client *c, struct job *j, const char *bucket, const char *key,
                      const char *ctype, struct cmn_err *err)
{
    int rc = 0;
    j->bucket = strdup(bucket);
    j->key = strdup(key);
    j->content_type = ctype ? strdup(ctype) : NULL;
    if (!j->bucket || !j->key || (ctype && !j->content_type))
        rc = cmn_err_set(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = lc_buf_hold(j->buf, j->buf_off, j->put ? j->length : 0, err);
    if (rc == 0) {
        rc = submit(c, j, err);
        if (rc)
            lc_buf_release(j->buf);
    }
    if (rc) {
        job_free(j);
        lc_set_last_error(err->msg);
    }
    return rc;
}

/* The checks both submissions make, and the job they fill: NULL (last error set) when the
 * arguments are wrong or memory is short. */
static struct job *new_job(const char *fn, lode_client *c, const char *bucket, const char *key,
                           lode_buf *buf, uint64_t buf_offset, lode_done_cb cb, void *user_data,
                           int *rc)
{
    struct cmn_err err;
    cmn_err_clear(&err);
    *rc = (!c || !buf || buf->c != c || !cb)
              ? cmn_err_set(&err, -EINVAL, "%s: no client, callback, or a buffer of another client",
                            fn)
              : lc_s3_check_names(bucket, key, &err);
    if (*rc) {
        lc_set_last_error(err.msg);
        return NULL;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        *rc = -ENOMEM;
        return NULL;
    }
    j->buf = buf;
    j->buf_off = buf_offset;
    j->cb = cb;
    j->user_data = user_data;
    return j;
}

int lode_get_async(lode_client *c, const char *bucket, const char *key,
                   const struct lode_get_opts *opts, lode_buf *buf, uint64_t buf_offset,
                   lode_done_cb cb, void *user_data)
{
    int rc;
    struct job *j = new_job("lode_get_async", c, bucket, key, buf, buf_offset, cb, user_data, &rc);
    if (!j)
        return rc;
    if (opts && opts->range) {
        j->has_range = true;
        j->range = *opts->range;
    }
    j->part = opts ? opts->part_number : 0;
    struct cmn_err err;
    cmn_err_clear(&err);
    return submit_job(c, j, bucket, key, NULL, &err);
}

int lode_put_async(lode_client *c, const char *bucket, const char *key, lode_buf *buf,
                   uint64_t buf_offset, uint64_t length, const struct lode_put_opts *opts,
                   lode_done_cb cb, void *user_data)
{
    int rc;
    struct job *j = new_job("lode_put_async", c, bucket, key, buf, buf_offset, cb, user_data, &rc);
    if (!j)
        return rc;
    j->put = true;
    j->length = length;
    struct cmn_err err;
    cmn_err_clear(&err);
    return submit_job(c, j, bucket, key, opts ? opts->content_type : NULL, &err);
}
