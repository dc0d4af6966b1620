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

#include "client/tools/put_parts.h"

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

/* The part size for len bytes: the one asked for (0: none), DEFAULT_PART above
 * AUTO_PART_ABOVE, raised to a whole MiB where 10000 parts would not hold len. */
static uint64_t part_size_for(uint64_t len, uint64_t asked, bool say)
{
    uint64_t ps = len == 0 ? 0 : asked ? asked : len > AUTO_PART_ABOVE ? DEFAULT_PART : 0;
    if (ps && (len + ps - 1) / ps > MAX_PARTS) {
        uint64_t mib = 1ull << 20;
        ps = ((len + MAX_PARTS - 1) / MAX_PARTS + mib - 1) / mib * mib;
        if (say)
            fprintf(stderr, "%s: parts of %" PRIu64 " bytes (10000 parts at most)\n", prog, ps);
    }
    return ps;
}

int main(int argc, char **argv)
{
    struct tool_opts o = {.transport = LODE_TRANSPORT_AUTO};
    const char *ctype = NULL;
    uint64_t asked_part = 0;
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
            if (tool_parse_size(optarg, &asked_part) != 0 || asked_part < MIN_PART) {
                fprintf(stderr, "%s: --part-size: a size of at least 5M\n", prog);
                return TOOL_USAGE;
            }
        } else if (opt == 2003) {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || v < 1 || v > PUT_PARTS_MAX_JOBS) {
                fprintf(stderr, "%s: --jobs: a number 1..%d\n", prog, PUT_PARTS_MAX_JOBS);
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
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
        return TOOL_LOCAL_IO;
    }
    bool say = o.progress && !o.quiet;
    /* A regular file going up in parts is read part by part as they go (memory: jobs x part
     * size); anything else is read whole first. */
    struct stat st;
    uint64_t part_size = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        part_size = part_size_for((uint64_t)st.st_size, asked_part, say);
    char *data = NULL;
    size_t len = 0;
    int rc = 0;
    if (part_size) {
        len = (size_t)st.st_size;
    } else if ((rc = slurp(fd, &data, &len)) != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(-rc));
        if (fd > STDIN_FILENO)
            close(fd);
        return TOOL_LOCAL_IO;
    } else {
        part_size = part_size_for(len, asked_part, say);
    }
    struct put_parts_args pa = {
        .prog = prog, .name = file, .bucket = bucket, .key = key, .content_type = ctype,
        .data = (const uint8_t *)data, .fd = fd, .len = len, .part_size = part_size,
        .jobs = jobs, .cuda = o.cuda, .progress = say,
    };
    lode_client *c = NULL;
    int ex = tool_client(&o, NULL, &c, prog);
    struct tool_buf buf = {0};
    lode_buf *direct = NULL; /* host input read whole: registered where it lies, no copy */
    if (!ex && data && len && !o.cuda) {
        if (lode_buf_register(c, data, len, LODE_BUF_HOST, &direct) != 0) {
            fprintf(stderr, "%s: %s\n", prog, lode_last_error());
            ex = TOOL_FAILED;
        }
        pa.reg = direct;
    } else if (!ex && !part_size) {
        ex = tool_buf_alloc(&buf, c, o.cuda, len, prog);
        if (!ex && len && tool_buf_from_host(&buf, 0, data, len, prog) != 0)
            ex = TOOL_FAILED;
    }
    struct lode_result res;
    memset(&res, 0, sizeof(res));
    double t0 = tool_now(), dt = 0;
    if (!ex) {
        if (say)
            fprintf(stderr, "%s: sending %zu bytes\n", prog, len);
        struct lode_put_opts po = {.content_type = ctype};
        int pex = TOOL_OK;
        if (part_size)
            rc = put_parts(c, &pa, &res, &pex);
        else
            rc = lode_put(c, bucket, key, direct ? direct : buf.reg, 0, len, &po, &res);
        dt = tool_now() - t0;
        if (rc) {
            fprintf(stderr, "%s: %s\n", prog, res.message);
            ex = part_size ? pex : tool_exit_for(rc);
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
        /* Read it back with plain GETs and compare with what was sent. */
        enum lode_transport http = LODE_TRANSPORT_HTTP;
        lode_client *pc = NULL;
        ex = tool_client(&o, &http, &pc, prog);
        struct tool_buf ref;
        if (!ex && part_size) {
            ex = put_parts_verify(pc, &pa, res.etag);
        } else if (!ex && (ex = tool_buf_alloc(&ref, pc, false, len, prog)) == 0) {
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
            }
            tool_buf_free(&ref);
        }
        if (!ex && !o.quiet)
            fprintf(stderr, "%s: verify: %zu bytes read back identical\n", prog, len);
        if (pc)
            lode_client_destroy(pc);
    }
    if (direct)
        lode_buf_deregister(direct);
    if (buf.reg || buf.ptr)
        tool_buf_free(&buf);
    if (c)
        lode_client_destroy(c);
    if (fd > STDIN_FILENO)
        close(fd);
    free(data);
    return ex;
}
