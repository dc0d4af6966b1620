/* lode-put: writes a file as an object through liblode, from host or device memory. See
 * --help and docs/liblode.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
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

int main(int argc, char **argv)
{
    struct tool_opts o = {.transport = LODE_TRANSPORT_AUTO};
    const char *ctype = NULL;
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"content-type", required_argument, NULL, 2001},
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
                    prog, rc, res.bytes, res.etag, lode_transport_name(res.transport),
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
