/* lode-put: writes a file as an object through liblode, from host or device memory. See
 * --help and docs/liblode.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/tools/tool.h"

static const char *prog = "lode-put";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] FILE BUCKET KEY\n"
            "Writes FILE ('-' for standard input) as s3 object BUCKET/KEY through liblode.\n"
            "      --content-type TYPE    the object's Content-Type\n"
            "      --part-size SIZE       a multipart upload in parts of SIZE (at least 5M);\n"
            "                             files above 5G always go in parts (default 64M,\n"
            "                             more where 10000 parts would not hold them)\n"
            "      --jobs N               parts written at once (1..64, default 4)\n"
            "%s"
            "Exit: 0 ok, 1 request failed, 2 usage, 3 --verify mismatch, 4 no such bucket,\n"
            "5 local I/O, 6 no CUDA, 7 --no-fallback and the transport was not used.\n",
            prog, tool_common_help);
}

/* Reads all of fd into a malloc'd buffer. */
static int slurp(int fd, char **out, size_t *len)
{
    size_t cap = 1 << 20, n = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1;
    char *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            free(b);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *out = b;
    *len = n;
    return 0;
}

#define MIN_PART (5ull << 20)
#define AUTO_PART_ABOVE (5ull << 30)
#define DEFAULT_PART (64ull << 20)
#define MAX_PARTS 10000
#define MAX_JOBS 64

/* A multipart upload: workers take the next part number until none is left or one failed. */
struct mp {
    lode_upload *u;
    lode_buf *reg;
    uint64_t len, part_size;
    uint32_t n_parts;
    bool progress;
    pthread_mutex_t mu;
    uint32_t next, done;
    int rc;                        /* the first failure */
    struct lode_result fail;       /* its result */
    bool fell_back;
    struct lode_result fb;         /* a part's fallback, reported once */
    enum lode_transport transport; /* what moved the first part */
};

static void *mp_worker(void *arg)
{
    struct mp *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        uint32_t n = m->rc ? m->n_parts + 1 : ++m->next;
        pthread_mutex_unlock(&m->mu);
        if (n > m->n_parts)
            return NULL;
        uint64_t off = (uint64_t)(n - 1) * m->part_size;
        uint64_t len = m->len - off < m->part_size ? m->len - off : m->part_size;
        struct lode_result r;
        int rc = lode_upload_part(m->u, n, m->reg, off, len, &r);
        pthread_mutex_lock(&m->mu);
        if (rc && !m->rc) {
            m->rc = rc;
            m->fail = r;
        }
        if (!rc && r.fell_back && !m->fell_back) {
            m->fell_back = true;
            m->fb = r;
        }
        if (!rc && n == 1)
            m->transport = r.transport;
        uint32_t done = rc ? m->done : ++m->done;
        pthread_mutex_unlock(&m->mu);
        if (!rc && m->progress)
            fprintf(stderr, "%s: part %" PRIu32 " of %" PRIu32 " written (%" PRIu32 " done)\n",
                    prog, n, m->n_parts, done);
    }
}

/* Writes reg[0, len) as bucket/key in parts of part_size with `jobs` threads; aborts the
 * upload when anything fails. res gets the completion's (or the failure's) result. */
static int put_multipart(lode_client *c, const char *bucket, const char *key, lode_buf *reg,
                         uint64_t len, uint64_t part_size, unsigned jobs, const char *ctype,
                         bool progress, struct lode_result *res)
{
    struct lode_put_opts po = {.content_type = ctype};
    struct mp m = {.reg = reg, .len = len, .part_size = part_size, .progress = progress};
    m.n_parts = (uint32_t)((len + part_size - 1) / part_size);
    int rc = lode_upload_create(c, bucket, key, &po, &m.u, res);
    if (rc)
        return rc;
    if (progress)
        fprintf(stderr, "%s: upload %s: %" PRIu32 " parts of %" PRIu64 " bytes\n", prog,
                lode_upload_id(m.u), m.n_parts, part_size);
    pthread_mutex_init(&m.mu, NULL);
    if (jobs > m.n_parts)
        jobs = m.n_parts;
    pthread_t th[MAX_JOBS];
    unsigned started = 0;
    for (; started < jobs; started++)
        if (pthread_create(&th[started], NULL, mp_worker, &m) != 0)
            break;
    if (started == 0)
        mp_worker(&m);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&m.mu);
    if (m.rc) {
        *res = m.fail;
        struct lode_result ar;
        if (lode_upload_abort(m.u, &ar) != 0)
            fprintf(stderr, "%s: the failed upload could not be aborted (%s): upload id was "
                            "in the message above\n", prog, ar.message);
        return m.rc;
    }
    char id[1100];
    snprintf(id, sizeof(id), "%s", lode_upload_id(m.u));
    rc = lode_upload_complete(m.u, res);
    if (rc) {
        struct lode_result ar;
        if (lode_upload_abort(m.u, &ar) != 0)
            fprintf(stderr, "%s: upload %s could not be aborted: %s\n", prog, id, ar.message);
        return rc;
    }
    res->bytes = len;
    res->transport = m.transport;
    if (m.fell_back) {
        res->fell_back = true;
        res->fallback = m.fb.fallback;
        snprintf(res->message, sizeof(res->message), "%s", m.fb.message);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct tool_opts o = {.transport = LODE_TRANSPORT_AUTO};
    const char *ctype = NULL;
    uint64_t part_size = 0;
    unsigned jobs = 4;
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"content-type", required_argument, NULL, 2001},
        {"part-size", required_argument, NULL, 2002},
        {"jobs", required_argument, NULL, 2003},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS "h", longopts, NULL)) != -1) {
        int k = tool_common_opt(&o, opt, optarg, prog);
        if (k < 0)
            return TOOL_USAGE;
        if (k > 0)
            continue;
        if (opt == 2001) {
            ctype = optarg;
        } else if (opt == 2002) {
            if (tool_parse_size(optarg, &part_size) != 0 || part_size < MIN_PART) {
                fprintf(stderr, "%s: --part-size: a size of at least 5M\n", prog);
                return TOOL_USAGE;
            }
        } else if (opt == 2003) {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || v < 1 || v > MAX_JOBS) {
                fprintf(stderr, "%s: --jobs: a number 1..%d\n", prog, MAX_JOBS);
                return TOOL_USAGE;
            }
            jobs = (unsigned)v;
        } else if (opt == 'h') {
            usage(stdout);
            return TOOL_OK;
        } else {
            usage(stderr);
            return TOOL_USAGE;
        }
    }
    if (argc - optind != 3) {
        usage(stderr);
        return TOOL_USAGE;
    }
    const char *file = argv[optind], *bucket = argv[optind + 1], *key = argv[optind + 2];
    int fd = strcmp(file, "-") == 0 ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
    char *data = NULL;
    size_t len = 0;
    int rc = fd < 0 ? -errno : slurp(fd, &data, &len);
    if (fd > STDIN_FILENO)
        close(fd);
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(-rc));
        return TOOL_LOCAL_IO;
    }
    if (len == 0)
        part_size = 0; /* an empty object is one PUT */
    if (part_size == 0 && len > AUTO_PART_ABOVE)
        part_size = DEFAULT_PART;
    if (part_size && (len + part_size - 1) / part_size > MAX_PARTS) {
        uint64_t need = (len + MAX_PARTS - 1) / MAX_PARTS;
        uint64_t mib = 1ull << 20;
        need = (need + mib - 1) / mib * mib;
        if (o.progress && !o.quiet)
            fprintf(stderr, "%s: parts of %" PRIu64 " bytes (10000 parts at most)\n", prog,
                    need);
        part_size = need;
    }
    lode_client *c;
    int ex = tool_client(&o, NULL, &c, prog);
    if (ex) {
        free(data);
        return ex;
    }
    struct tool_buf buf;
    ex = tool_buf_alloc(&buf, c, o.cuda, len, prog);
    if (!ex && len && tool_buf_from_host(&buf, 0, data, len, prog) != 0)
        ex = TOOL_FAILED;
    struct lode_result res;
    double t0 = tool_now(), dt = 0;
    if (!ex) {
        if (o.progress && !o.quiet)
            fprintf(stderr, "%s: sending %zu bytes\n", prog, len);
        struct lode_put_opts po = {.content_type = ctype};
        if (part_size)
            rc = put_multipart(c, bucket, key, buf.reg, len, part_size, jobs, ctype,
                               o.progress && !o.quiet, &res);
        else
            rc = lode_put(c, bucket, key, buf.reg, 0, len, &po, &res);
        dt = tool_now() - t0;
        if (rc) {
            fprintf(stderr, "%s: %s\n", prog, res.message);
            ex = tool_exit_for(rc);
        } else if (o.no_fallback && res.fell_back) {
            fprintf(stderr, "%s: fell back to plain HTTP (%s)\n", prog,
                    lode_fallback_name(res.fallback));
            ex = TOOL_NO_FALLBACK;
        }
        if (o.stats)
            fprintf(stderr,
                    "%s: status=%d bytes=%" PRIu64 " etag=%s transport=%s fell_back=%s reason=%s"
                    " seconds=%.3f MBps=%.1f\n",
                    prog, rc, rc ? 0 : res.bytes, res.etag, lode_transport_name(res.transport),
                    res.fell_back ? "yes" : "no", lode_fallback_name(res.fallback), dt,
                    dt > 0 ? (double)res.bytes / 1e6 / dt : 0.0);
        else if (!rc && !o.quiet)
            printf("%s\n", res.etag);
    }
    if (!ex && o.verify) {
        /* Read it back with a plain GET and compare with what was sent. */
        enum lode_transport http = LODE_TRANSPORT_HTTP;
        lode_client *pc = NULL;
        ex = tool_client(&o, &http, &pc, prog);
        struct tool_buf ref;
        if (!ex && (ex = tool_buf_alloc(&ref, pc, false, len, prog)) == 0) {
            struct lode_result pr;
            rc = lode_get(pc, bucket, key, NULL, ref.reg, 0, &pr);
            if (rc) {
                fprintf(stderr, "%s: verify: %s\n", prog, pr.message);
                ex = tool_exit_for(rc);
            } else if (pr.bytes != len || (len && memcmp(ref.ptr, data, len) != 0)) {
                fprintf(stderr, "%s: verify: the stored object differs from the input\n", prog);
                ex = TOOL_MISMATCH;
            } else if (strcmp(pr.etag, res.etag) != 0) {
                fprintf(stderr, "%s: verify: ETag %s after the PUT, %s on the GET\n", prog,
                        res.etag, pr.etag);
                ex = TOOL_MISMATCH;
            } else if (!o.quiet) {
                fprintf(stderr, "%s: verify: %zu bytes read back identical\n", prog, len);
            }
            tool_buf_free(&ref);
        }
        if (pc)
            lode_client_destroy(pc);
    }
    if (buf.reg || buf.ptr)
        tool_buf_free(&buf);
    lode_client_destroy(c);
    free(data);
    return ex;
}
