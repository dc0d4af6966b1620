/* lode-put's multipart uploads: worker threads take part numbers in turn, each with its own
 * registered buffer of one part, filled from the input (a file read with pread, so memory
 * stays at jobs x part size whatever the file's size; or bytes already in memory), and
 * written with lode_upload_part. Input already in host memory is registered once and its
 * parts go straight from it. Anything failing aborts the upload. --verify reads the object
 * back part by part with plain ranged GETs and compares. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/tools/put_parts.h"

struct mp {
    const struct put_parts_args *a;
    lode_client *c;
    lode_upload *u;
    uint32_t n_parts;
    pthread_mutex_t mu;
    uint32_t next, done;
    int rc;                        /* the first failure: a liblode code, or 1 for local I/O */
    int exit_code;
    struct lode_result fail;       /* its result (liblode failures) */
    bool fell_back;
    struct lode_result fb;         /* a part's fallback, reported once */
    enum lode_transport transport; /* what moved the first part */
};

static uint64_t part_len(const struct put_parts_args *a, uint32_t n)
{
    uint64_t off = (uint64_t)(n - 1) * a->part_size;
    return a->len - off < a->part_size ? a->len - off : a->part_size;
}

/* Reads len bytes at off of the input into dst. Returns 0 or -1 (message printed). */
static int input_read(const struct put_parts_args *a, uint64_t off, uint8_t *dst, size_t len)
{
    if (a->data) {
        memcpy(dst, a->data + off, len);
        return 0;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(a->fd, dst + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "%s: %s: %s at byte %" PRIu64 "\n", a->prog, a->name,
                    r < 0 ? strerror(errno) : "the file got shorter", off + got);
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

static void note_failure(struct mp *m, int rc, int exit_code, const struct lode_result *r)
{
    pthread_mutex_lock(&m->mu);
    if (!m->rc) {
        m->rc = rc;
        m->exit_code = exit_code;
        if (r)
            m->fail = *r;
    }
    pthread_mutex_unlock(&m->mu);
}

static void *worker(void *arg)
{
    struct mp *m = arg;
    const struct put_parts_args *a = m->a;
    struct tool_buf wb = {0};
    uint8_t *tmp = NULL;
    int ex = a->reg ? TOOL_OK : tool_buf_alloc(&wb, m->c, a->cuda, a->part_size, a->prog);
    if (!ex && a->cuda && !(tmp = malloc(a->part_size)))
        ex = TOOL_LOCAL_IO;
    if (ex) {
        note_failure(m, 1, ex, NULL);
        if (wb.reg || wb.ptr)
            tool_buf_free(&wb);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&m->mu);
        uint32_t n = m->rc ? m->n_parts + 1 : ++m->next;
        pthread_mutex_unlock(&m->mu);
        if (n > m->n_parts)
            break;
        uint64_t off = (uint64_t)(n - 1) * a->part_size;
        size_t len = (size_t)part_len(a, n);
        uint8_t *dst = a->cuda ? tmp : wb.ptr;
        if (!a->reg && (input_read(a, off, dst, len) != 0 ||
                        (a->cuda && tool_buf_from_host(&wb, 0, tmp, len, a->prog) != 0))) {
            note_failure(m, 1, TOOL_LOCAL_IO, NULL);
            break;
        }
        struct lode_result r;
        int rc = a->reg ? lode_upload_part(m->u, n, a->reg, off, len, &r)
                        : lode_upload_part(m->u, n, wb.reg, 0, len, &r);
        if (rc) {
            note_failure(m, rc, tool_exit_for(rc), &r);
            break;
        }
        pthread_mutex_lock(&m->mu);
        if (r.fell_back && !m->fell_back) {
            m->fell_back = true;
            m->fb = r;
        }
        if (n == 1)
            m->transport = r.transport;
        uint32_t done = ++m->done;
        pthread_mutex_unlock(&m->mu);
        if (a->progress)
            fprintf(stderr, "%s: part %" PRIu32 " of %" PRIu32 " written (%" PRIu32 " done)\n",
                    a->prog, n, m->n_parts, done);
    }
    free(tmp);
    if (wb.reg || wb.ptr)
        tool_buf_free(&wb);
    return NULL;
}

static void abort_upload(struct mp *m, const char *id)
{
    struct lode_result ar;
    if (lode_upload_abort(m->u, &ar) != 0)
        fprintf(stderr, "%s: upload %s could not be aborted: %s\n", m->a->prog, id, ar.message);
}

int put_parts(lode_client *c, const struct put_parts_args *a, struct lode_result *res,
              int *exit_code)
{
    struct mp m = {.a = a, .c = c};
    m.n_parts = (uint32_t)((a->len + a->part_size - 1) / a->part_size);
    struct lode_put_opts po = {.content_type = a->content_type};
    int rc = lode_upload_create(c, a->bucket, a->key, &po, &m.u, res);
    if (rc) {
        *exit_code = tool_exit_for(rc);
        return rc;
    }
    char id[1100];
    snprintf(id, sizeof(id), "%s", lode_upload_id(m.u));
    if (a->progress)
        fprintf(stderr, "%s: upload %s: %" PRIu32 " parts of %" PRIu64 " bytes\n", a->prog, id,
                m.n_parts, a->part_size);
    pthread_mutex_init(&m.mu, NULL);
    unsigned jobs = a->jobs > m.n_parts ? m.n_parts : a->jobs;
    pthread_t th[PUT_PARTS_MAX_JOBS];
    unsigned started = 0;
    for (; started < jobs && started < PUT_PARTS_MAX_JOBS; started++)
        if (pthread_create(&th[started], NULL, worker, &m) != 0)
            break;
    if (started == 0)
        worker(&m);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&m.mu);
    if (m.rc) {
        if (m.rc < 0)
            *res = m.fail;
        else
            snprintf(res->message, sizeof(res->message), "the input could not be read");
        abort_upload(&m, id);
        *exit_code = m.exit_code;
        return m.rc < 0 ? m.rc : -EIO;
    }
    rc = lode_upload_complete(m.u, res);
    if (rc) {
        abort_upload(&m, id);
        *exit_code = tool_exit_for(rc);
        return rc;
    }
    res->bytes = a->len;
    res->transport = m.transport;
    if (m.fell_back) {
        res->fell_back = true;
        res->fallback = m.fb.fallback;
        snprintf(res->message, sizeof(res->message), "%s", m.fb.message);
    }
    *exit_code = TOOL_OK;
    return 0;
}

int put_parts_verify(lode_client *pc, const struct put_parts_args *a, const char *etag)
{
    struct tool_buf got;
    int ex = tool_buf_alloc(&got, pc, false, a->part_size, a->prog);
    uint8_t *want = ex ? NULL : malloc(a->part_size);
    if (!ex && !want)
        ex = TOOL_LOCAL_IO;
    uint32_t n_parts = (uint32_t)((a->len + a->part_size - 1) / a->part_size);
    for (uint32_t n = 1; !ex && n <= n_parts; n++) {
        uint64_t off = (uint64_t)(n - 1) * a->part_size;
        size_t len = (size_t)part_len(a, n);
        struct lode_range rg = {.offset = off, .length = len};
        struct lode_get_opts go = {.range = &rg};
        struct lode_result r;
        int rc = lode_get(pc, a->bucket, a->key, &go, got.reg, 0, &r);
        if (rc) {
            fprintf(stderr, "%s: verify: %s\n", a->prog, r.message);
            ex = tool_exit_for(rc);
        } else if (input_read(a, off, want, len) != 0) {
            ex = TOOL_LOCAL_IO;
        } else if (r.bytes != len || r.offset != off || r.object_size != a->len ||
                   memcmp(got.ptr, want, len) != 0) {
            fprintf(stderr, "%s: verify: bytes %" PRIu64 "..%" PRIu64 " differ from the input\n",
                    a->prog, off, off + len - 1);
            ex = TOOL_MISMATCH;
        } else if (strcmp(r.etag, etag) != 0) {
            fprintf(stderr, "%s: verify: ETag %s after the upload, %s on the GET\n", a->prog,
                    etag, r.etag);
            ex = TOOL_MISMATCH;
        }
    }
    free(want);
    if (got.reg || got.ptr)
        tool_buf_free(&got);
    return ex;
}
