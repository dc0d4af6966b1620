#include "client/tools/tool.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

const char tool_common_help[] =
    "  -e, --endpoint HOST:PORT   the gateway (default: $LODE_ENDPOINT)\n"
    "      --access-key KEY       (default: $AWS_ACCESS_KEY_ID)\n"
    "      --secret-key SECRET    (default: $AWS_SECRET_ACCESS_KEY; prefer the variable)\n"
    "      --region REGION        (default: $AWS_REGION, else us-east-1)\n"
    "  -t, --transport T          auto (default), tcp, rc or http\n"
    "      --rdma-local ADDR      rc: a local address of the RDMA device to use\n"
    "                             (default: $LODE_RDMA_LOCAL, else the route's device)\n"
    "      --no-fallback          fail (exit 7) instead of falling back to plain HTTP\n"
    "  -b, --buffer KIND          host (default) or cuda (device 0)\n"
    "      --verify               compare with a plain S3 GET (exit 3 on a difference)\n"
    "  -s, --stats                print what happened to stderr (bytes, transport, speed)\n"
    "      --progress             progress on stderr (lode-get reads in ranged pieces)\n"
    "  -q, --quiet                no messages except errors\n"
    "      --timeout MS           per network step (default 30000)\n";

int tool_common_opt(struct tool_opts *o, int opt, const char *arg, const char *prog)
{
    switch (opt) {
    case 'e': o->endpoint = arg; return 1;
    case 1001: o->access_key = arg; return 1;
    case 1002: o->secret_key = arg; return 1;
    case 1003: o->region = arg; return 1;
    case 't':
        if (lode_transport_parse(arg, &o->transport) != 0) {
            fprintf(stderr, "%s: unknown transport '%s' (auto, tcp, rc, http)\n", prog, arg);
            return -1;
        }
        return 1;
    case 1004: o->no_fallback = true; return 1;
    case 1008: o->rdma_local = arg; return 1;
    case 'b':
        if (strcmp(arg, "host") == 0)
            o->cuda = false;
        else if (strcmp(arg, "cuda") == 0)
            o->cuda = true;
        else {
            fprintf(stderr, "%s: unknown buffer kind '%s' (host, cuda)\n", prog, arg);
            return -1;
        }
        return 1;
    case 1005: o->verify = true; return 1;
    case 's': o->stats = true; return 1;
    case 1006: o->progress = true; return 1;
    case 'q': o->quiet = true; return 1;
    case 1007: {
        char *end;
        unsigned long v = strtoul(arg, &end, 10);
        if (*arg == '\0' || *end || v == 0 || v > 3600000) {
            fprintf(stderr, "%s: --timeout wants milliseconds (1..3600000)\n", prog);
            return -1;
        }
        o->timeout_ms = (uint32_t)v;
        return 1;
    }
    default: return 0;
    }
}

int tool_client(const struct tool_opts *o, const enum lode_transport *transport_override,
                lode_client **out, const char *prog)
{
    struct lode_client_config cfg;
    lode_client_config_init(&cfg);
    cfg.endpoint = o->endpoint ? o->endpoint : getenv("LODE_ENDPOINT");
    cfg.access_key = o->access_key ? o->access_key : getenv("AWS_ACCESS_KEY_ID");
    cfg.secret_key = o->secret_key ? o->secret_key : getenv("AWS_SECRET_ACCESS_KEY");
    cfg.region = o->region ? o->region : getenv("AWS_REGION");
    cfg.transport = transport_override ? *transport_override : o->transport;
    cfg.flags = o->no_fallback ? LODE_CLIENT_NO_FALLBACK : 0;
    cfg.timeout_ms = o->timeout_ms;
    cfg.rdma_local = o->rdma_local ? o->rdma_local : getenv("LODE_RDMA_LOCAL");
    if (!cfg.endpoint || !cfg.access_key || !cfg.secret_key) {
        fprintf(stderr, "%s: %s missing (flag or environment)\n", prog,
                !cfg.endpoint ? "endpoint (--endpoint, LODE_ENDPOINT)"
                : !cfg.access_key ? "access key (--access-key, AWS_ACCESS_KEY_ID)"
                                  : "secret key (AWS_SECRET_ACCESS_KEY)");
        return TOOL_USAGE;
    }
    int rc = lode_client_create(&cfg, out);
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, lode_last_error());
        return TOOL_USAGE;
    }
    return TOOL_OK;
}

int tool_buf_alloc(struct tool_buf *b, lode_client *c, bool cuda, size_t size, const char *prog)
{
    memset(b, 0, sizeof(*b));
    b->cuda = cuda;
    b->size = size;
    b->alloc = size ? size : 1;
    if (cuda) {
        const char *why = NULL;
        if (tool_cuda_init(&why) != 0) {
            fprintf(stderr, "%s: %s\n", prog, why);
            return TOOL_NO_CUDA;
        }
        if (tool_cuda_alloc(&b->ptr, b->alloc) != 0) {
            fprintf(stderr, "%s: cannot allocate %zu bytes of device memory\n", prog, b->alloc);
            return TOOL_NO_CUDA;
        }
    } else {
        /* mmap: large buffers without touching them first (pages appear as data lands).
         * No transparent huge pages: they save page faults, but where memory is fragmented
         * the kernel compacts it first, and a read then stalls for seconds. */
        b->ptr = mmap(NULL, b->alloc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b->ptr == MAP_FAILED) {
            b->ptr = NULL;
            fprintf(stderr, "%s: cannot allocate %zu bytes: %s\n", prog, b->alloc,
                    strerror(errno));
            return TOOL_LOCAL_IO;
        }
    }
    int rc = lode_buf_register(c, b->ptr, b->alloc, cuda ? LODE_BUF_CUDA : LODE_BUF_HOST, &b->reg);
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, lode_last_error());
        tool_buf_free(b);
        return rc == LODE_ERR_NO_CUDA ? TOOL_NO_CUDA : TOOL_FAILED;
    }
    return TOOL_OK;
}

void tool_buf_free(struct tool_buf *b)
{
    if (b->reg)
        lode_buf_deregister(b->reg);
    if (b->ptr) {
        if (b->cuda)
            tool_cuda_free(b->ptr);
        else
            munmap(b->ptr, b->alloc);
    }
    memset(b, 0, sizeof(*b));
}

int tool_buf_to_host(const struct tool_buf *b, size_t off, void *dst, size_t n, const char *prog)
{
    if (!b->cuda) {
        memcpy(dst, (const char *)b->ptr + off, n);
        return 0;
    }
    if (tool_cuda_dtoh(dst, (const char *)b->ptr + off, n) != 0) {
        fprintf(stderr, "%s: copying from the device failed\n", prog);
        return -1;
    }
    return 0;
}

int tool_buf_from_host(struct tool_buf *b, size_t off, const void *src, size_t n, const char *prog)
{
    if (!b->cuda) {
        memcpy((char *)b->ptr + off, src, n);
        return 0;
    }
    if (tool_cuda_htod((char *)b->ptr + off, src, n) != 0) {
        fprintf(stderr, "%s: copying to the device failed\n", prog);
        return -1;
    }
    return 0;
}

int tool_exit_for(int rc)
{
    switch (rc) {
    case 0: return TOOL_OK;
    case LODE_ENOKEY:
    case LODE_ENOBUCKET: return TOOL_NOT_FOUND;
    case LODE_ERR_NO_CUDA: return TOOL_NO_CUDA;
    case LODE_ERR_DECLINED:
    case LODE_ERR_NO_TRANSPORT: return TOOL_NO_FALLBACK;
    default: return TOOL_FAILED;
    }
}

int tool_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return -1;
    unsigned shift = 0;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default: return -1;
        }
        end++;
        if (strcmp(end, "") != 0 && strcmp(end, "iB") != 0 && strcmp(end, "B") != 0)
            return -1;
    }
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

double tool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
