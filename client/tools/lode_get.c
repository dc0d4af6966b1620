/* lode-get: reads an object (or a range, or a part) through liblode into host or device
 * memory and writes it to a file. See --help and docs/liblode.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "client/tools/tool.h"

static const char *prog = "lode-get";

static double tv_seconds(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] BUCKET KEY [OUTPUT]\n"
            "Reads s3 object BUCKET/KEY into memory through liblode and writes it to OUTPUT\n"
            "(a file, '-' for standard output (the default), /dev/null to discard).\n"
            "  -r, --range FIRST-LAST     bytes FIRST..LAST (inclusive); FIRST- to the end\n"
            "  -p, --part N               part N of a multipart object\n"
            "      --size BYTES           buffer size (default: the object's, from a HEAD)\n"
            "      --chunk BYTES          read in ranged pieces of this size (default with\n"
            "                             --progress: 64M)\n"
            "      --parallel N           pieces in flight at once (default 1)\n"
            "      --repeat N             read it N times into the same buffer (touched before\n"
            "                             the first read, as a long-lived buffer is); --stats\n"
            "                             then also gives the reads' total time and CPU\n"
            "%s"
            "Exit: 0 ok, 1 request failed, 2 usage, 3 --verify mismatch, 4 no such bucket or\n"
            "key, 5 local I/O, 6 no CUDA, 7 --no-fallback and the transport was not used.\n",
            prog, tool_common_help);
}

struct piece_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned in_flight;
    int first_rc;
    char first_msg[LODE_MSG_MAX];
    uint64_t done_bytes;
    bool any_fallback, any_tcp, any_http;
    enum lode_fallback fallback;
    uint32_t sources;
    char etag[LODE_ETAG_MAX];
};

static void piece_done(void *ud, int status, const struct lode_result *res)
{
    struct piece_state *ps = ud;
    pthread_mutex_lock(&ps->mu);
    if (status && !ps->first_rc) {
        ps->first_rc = status;
        snprintf(ps->first_msg, sizeof(ps->first_msg), "%s", res->message);
    }
    if (!status) {
        ps->done_bytes += res->bytes;
        ps->any_tcp |= res->transport == LODE_TRANSPORT_TCP;
        ps->any_http |= res->transport == LODE_TRANSPORT_HTTP;
        if (res->fell_back) {
            ps->any_fallback = true;
            ps->fallback = res->fallback;
        }
        if (res->sources > ps->sources)
            ps->sources = res->sources;
        snprintf(ps->etag, sizeof(ps->etag), "%s", res->etag);
    }
    ps->in_flight--;
    pthread_cond_signal(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
}

/* Reads [first, first+len) in pieces of `chunk`, `parallel` at a time, into buf. */
static int get_pieces(lode_client *c, const char *bucket, const char *key, struct tool_buf *buf,
                      uint64_t first, uint64_t len, uint64_t chunk, unsigned parallel,
                      bool progress, struct lode_result *res)
{
    struct piece_state ps = {.first_rc = 0};
    pthread_mutex_init(&ps.mu, NULL);
    pthread_cond_init(&ps.cv, NULL);
    double t0 = tool_now(), last_print = 0;
    uint64_t off = 0;
    int rc = 0;
    while (rc == 0) {
        pthread_mutex_lock(&ps.mu);
        while (ps.in_flight >= parallel || (off >= len && ps.in_flight > 0))
            pthread_cond_wait(&ps.cv, &ps.mu);
        rc = ps.first_rc;
        uint64_t done = ps.done_bytes;
        pthread_mutex_unlock(&ps.mu);
        double now = tool_now();
        if (progress && (now - last_print > 0.5 || done == len)) {
            fprintf(stderr, "\r%s: %" PRIu64 " / %" PRIu64 " MiB  %.1f MB/s   ", prog,
                    done >> 20, len >> 20, now > t0 ? (double)done / 1e6 / (now - t0) : 0.0);
            last_print = now;
        }
        if (rc || off >= len)
            break;
        uint64_t n = len - off < chunk ? len - off : chunk;
        struct lode_range r = {first + off, n}; /* copied by lode_get_async */
        struct lode_get_opts go = {.range = &r};
        pthread_mutex_lock(&ps.mu);
        ps.in_flight++;
        pthread_mutex_unlock(&ps.mu);
        rc = lode_get_async(c, bucket, key, &go, buf->reg, off, piece_done, &ps);
        if (rc) {
            pthread_mutex_lock(&ps.mu);
            ps.in_flight--;
            snprintf(ps.first_msg, sizeof(ps.first_msg), "%s", lode_last_error());
            pthread_mutex_unlock(&ps.mu);
        }
        off += n;
    }
    pthread_mutex_lock(&ps.mu);
    while (ps.in_flight > 0)
        pthread_cond_wait(&ps.cv, &ps.mu);
    if (!rc)
        rc = ps.first_rc;
    pthread_mutex_unlock(&ps.mu);
    if (progress)
        fprintf(stderr, "\n");
    memset(res, 0, sizeof(*res));
    res->status = rc;
    res->bytes = ps.done_bytes;
    res->offset = first;
    res->transport = ps.any_tcp && !ps.any_http ? LODE_TRANSPORT_TCP : LODE_TRANSPORT_HTTP;
    res->fell_back = ps.any_fallback;
    res->fallback = ps.fallback;
    res->sources = ps.sources;
    memcpy(res->etag, ps.etag, sizeof(res->etag));
    snprintf(res->message, sizeof(res->message), "%s", ps.first_msg);
    if (rc == 0 && ps.done_bytes != len) {
        rc = res->status = LODE_ERR_PROTOCOL;
        snprintf(res->message, sizeof(res->message), "pieces add up to %" PRIu64 " of %" PRIu64
                 " bytes", ps.done_bytes, len);
    }
    pthread_cond_destroy(&ps.cv);
    pthread_mutex_destroy(&ps.mu);
    return rc;
}

static int parse_range(const char *s, uint64_t *first, uint64_t *last, bool *to_end)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long a = strtoull(s, &end, 10);
    if (errno || *end != '-')
        return -1;
    *first = a;
    if (end[1] == '\0') {
        *to_end = true;
        return 0;
    }
    const char *b = end + 1;
    if (*b < '0' || *b > '9')
        return -1;
    unsigned long long z = strtoull(b, &end, 10);
    if (errno || *end || z < a)
        return -1;
    *last = z;
    *to_end = false;
    return 0;
}

/* Writes n bytes of buf from offset 0 to fd, through a host bounce for device memory. */
static int write_out(int fd, const struct tool_buf *buf, uint64_t n)
{
    static char bounce[8 << 20];
    for (uint64_t off = 0; off < n;) {
        size_t k = n - off < sizeof(bounce) ? (size_t)(n - off) : sizeof(bounce);
        const char *p;
        if (buf->cuda) {
            if (tool_buf_to_host(buf, off, bounce, k, prog) != 0)
                return TOOL_FAILED;
            p = bounce;
        } else {
            p = (const char *)buf->ptr + off;
        }
        for (size_t w = 0; w < k;) {
            ssize_t r = write(fd, p + w, k - w);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                fprintf(stderr, "%s: writing the output: %s\n", prog, strerror(errno));
                return TOOL_LOCAL_IO;
            }
            w += (size_t)r;
        }
        off += k;
    }
    return TOOL_OK;
}

/* Compares buf[0..n) with a plain S3 GET of the same bytes. */
static int verify(const struct tool_opts *o, const char *bucket, const char *key,
                  const struct lode_get_opts *go, const struct tool_buf *buf,
                  const struct lode_result *got)
{
    enum lode_transport http = LODE_TRANSPORT_HTTP;
    lode_client *pc;
    int ex = tool_client(o, &http, &pc, prog);
    if (ex)
        return ex;
    struct tool_buf ref;
    ex = tool_buf_alloc(&ref, pc, false, buf->size, prog);
    if (ex) {
        lode_client_destroy(pc);
        return ex;
    }
    struct lode_result pr;
    int rc = lode_get(pc, bucket, key, go, ref.reg, 0, &pr);
    if (rc) {
        fprintf(stderr, "%s: verify: plain GET failed: %s\n", prog, pr.message);
        ex = tool_exit_for(rc);
    } else if (pr.bytes != got->bytes || pr.offset != got->offset) {
        fprintf(stderr, "%s: verify: the plain GET returned bytes %" PRIu64 "+%" PRIu64
                ", this read %" PRIu64 "+%" PRIu64 "\n", prog, pr.offset, pr.bytes,
                got->offset, got->bytes);
        ex = TOOL_MISMATCH;
    } else {
        static char bounce[8 << 20];
        for (uint64_t off = 0; off < pr.bytes && !ex;) {
            size_t k = pr.bytes - off < sizeof(bounce) ? (size_t)(pr.bytes - off) : sizeof(bounce);
            if (tool_buf_to_host(buf, off, bounce, k, prog) != 0)
                ex = TOOL_FAILED;
            else if (memcmp(bounce, (char *)ref.ptr + off, k) != 0) {
                size_t i = 0;
                while (bounce[i] == ((char *)ref.ptr + off)[i])
                    i++;
                fprintf(stderr, "%s: verify: first difference at byte %" PRIu64 "\n", prog,
                        off + i);
                ex = TOOL_MISMATCH;
            }
            off += k;
        }
        if (!ex && got->etag[0] && pr.etag[0] && strcmp(got->etag, pr.etag) != 0) {
            fprintf(stderr, "%s: verify: ETag %s, the plain GET's %s\n", prog, got->etag,
                    pr.etag);
            ex = TOOL_MISMATCH;
        }
        if (!ex && !o->quiet)
            fprintf(stderr, "%s: verify: %" PRIu64 " bytes identical to a plain GET\n", prog,
                    pr.bytes);
    }
    tool_buf_free(&ref);
    lode_client_destroy(pc);
    return ex;
}

int main(int argc, char **argv)
{
    struct tool_opts o = {.transport = LODE_TRANSPORT_AUTO};
    uint64_t first = 0, last = 0, size = 0, chunk = 0;
    bool ranged = false, to_end = false, have_size = false;
    uint32_t part = 0;
    unsigned parallel = 1, repeat = 1;
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"range", required_argument, NULL, 'r'},
        {"part", required_argument, NULL, 'p'},
        {"size", required_argument, NULL, 2001},
        {"chunk", required_argument, NULL, 2002},
        {"parallel", required_argument, NULL, 2003},
        {"repeat", required_argument, NULL, 2004},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS "r:p:h", longopts, NULL)) != -1) {
        int k = tool_common_opt(&o, opt, optarg, prog);
        if (k < 0)
            return TOOL_USAGE;
        if (k > 0)
            continue;
        uint64_t v;
        switch (opt) {
        case 'r':
            if (parse_range(optarg, &first, &last, &to_end) != 0) {
                fprintf(stderr, "%s: --range wants FIRST-LAST or FIRST-\n", prog);
                return TOOL_USAGE;
            }
            ranged = true;
            break;
        case 'p':
            if (tool_parse_size(optarg, &v) != 0 || v < 1 || v > 10000) {
                fprintf(stderr, "%s: --part wants 1..10000\n", prog);
                return TOOL_USAGE;
            }
            part = (uint32_t)v;
            break;
        case 2001:
        case 2002:
            if (tool_parse_size(optarg, &v) != 0 || (opt == 2002 && v == 0)) {
                fprintf(stderr, "%s: bad size '%s'\n", prog, optarg);
                return TOOL_USAGE;
            }
            if (opt == 2001) {
                size = v;
                have_size = true;
            } else {
                chunk = v;
            }
            break;
        case 2003:
            if (tool_parse_size(optarg, &v) != 0 || v < 1 || v > 64) {
                fprintf(stderr, "%s: --parallel wants 1..64\n", prog);
                return TOOL_USAGE;
            }
            parallel = (unsigned)v;
            break;
        case 2004:
            if (tool_parse_size(optarg, &v) != 0 || v < 1 || v > 1000000) {
                fprintf(stderr, "%s: --repeat wants 1..1000000\n", prog);
                return TOOL_USAGE;
            }
            repeat = (unsigned)v;
            break;
        case 'h':
            usage(stdout);
            return TOOL_OK;
        default:
            usage(stderr);
            return TOOL_USAGE;
        }
    }
    if (argc - optind < 2 || argc - optind > 3 || (ranged && part)) {
        usage(stderr);
        return TOOL_USAGE;
    }
    const char *bucket = argv[optind], *key = argv[optind + 1];
    const char *output = argc - optind == 3 ? argv[optind + 2] : "-";
    if (o.progress && !chunk)
        chunk = 64ull << 20;
    if (chunk && part) {
        fprintf(stderr, "%s: --chunk/--progress read ranges, not parts\n", prog);
        return TOOL_USAGE;
    }

    lode_client *c;
    int ex = tool_client(&o, NULL, &c, prog);
    if (ex)
        return ex;
    struct lode_result res;
    if (!have_size || (chunk && !ranged)) {
        int rc = lode_head(c, bucket, key, &res);
        if (rc) {
            fprintf(stderr, "%s: %s\n", prog, res.message);
            lode_client_destroy(c);
            return tool_exit_for(rc);
        }
        uint64_t obj = res.object_size;
        if (!have_size) {
            size = obj;
            if (ranged && first >= obj)
                size = 1; /* the server answers 416 */
            else if (ranged)
                size = obj - first;
        }
        if (chunk && !ranged) {
            ranged = true;
            first = 0;
            to_end = true;
        }
    }
    if (ranged && !to_end && last - first + 1 < size)
        size = last - first + 1;
    if (size > SIZE_MAX) {
        fprintf(stderr, "%s: object too large for this process\n", prog);
        lode_client_destroy(c);
        return TOOL_LOCAL_IO;
    }
    struct tool_buf buf;
    ex = tool_buf_alloc(&buf, c, o.cuda, (size_t)size, prog);
    if (ex) {
        lode_client_destroy(c);
        return ex;
    }
    struct lode_range range = {first, to_end ? LODE_RANGE_TO_END : last - first + 1};
    struct lode_get_opts go = {.range = ranged ? &range : NULL, .part_number = part};
    if (repeat > 1 && !o.cuda)
        memset(buf.ptr, 0, buf.alloc); /* page faults belong to the first use, not the reads */
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = tool_now();
    int rc = 0;
    for (unsigned i = 0; i < repeat && rc == 0; i++) {
        if (chunk && size > 0)
            rc = get_pieces(c, bucket, key, &buf, first, size, chunk, parallel, o.progress, &res);
        else
            rc = lode_get(c, bucket, key, &go, buf.reg, 0, &res);
        if (rc == 0 && o.no_fallback && res.fell_back)
            break;
    }
    double dt = tool_now() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, res.message[0] ? res.message : lode_client_strerror(rc));
        ex = tool_exit_for(rc);
    } else if (o.no_fallback && res.fell_back) {
        fprintf(stderr, "%s: fell back to plain HTTP (%s): %s\n", prog,
                lode_fallback_name(res.fallback), res.message);
        ex = TOOL_NO_FALLBACK;
    }
    if (o.stats)
        fprintf(stderr,
                "%s: status=%d bytes=%" PRIu64 " offset=%" PRIu64 " object_size=%" PRIu64
                " transport=%s fell_back=%s reason=%s sources=%u seconds=%.3f MBps=%.1f\n",
                prog, rc, res.bytes, res.offset, res.object_size,
                lode_transport_name(res.transport), res.fell_back ? "yes" : "no",
                lode_fallback_name(res.fallback), res.sources, dt,
                dt > 0 ? (double)res.bytes * repeat / 1e6 / dt : 0.0);
    if (o.stats && repeat > 1)
        fprintf(stderr, "%s: repeat=%u seconds=%.3f cpu_seconds=%.3f\n", prog, repeat, dt,
                tv_seconds(&ru1.ru_utime) + tv_seconds(&ru1.ru_stime) -
                    tv_seconds(&ru0.ru_utime) - tv_seconds(&ru0.ru_stime));
    if (!ex && o.verify) {
        struct lode_range vr = {res.offset, res.bytes ? res.bytes : 1};
        struct lode_get_opts vo = {.range = (ranged || part) && res.bytes ? &vr : NULL};
        ex = verify(&o, bucket, key, &vo, &buf, &res);
    }
    if (!ex) {
        int fd = strcmp(output, "-") == 0
                     ? STDOUT_FILENO
                     : open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, output, strerror(errno));
            ex = TOOL_LOCAL_IO;
        } else {
            ex = write_out(fd, &buf, res.bytes);
            if (fd != STDOUT_FILENO && close(fd) != 0 && !ex) {
                fprintf(stderr, "%s: %s: %s\n", prog, output, strerror(errno));
                ex = TOOL_LOCAL_IO;
            }
        }
    }
    tool_buf_free(&buf);
    lode_client_destroy(c);
    return ex;
}
