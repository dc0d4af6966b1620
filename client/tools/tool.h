/* What lode-get and lode-put share: the common options, the client they describe, buffers
 * (host memory or CUDA device memory), and exit codes. Only the public liblode API is used. */
#ifndef LODE_CLIENT_TOOLS_TOOL_H
#define LODE_CLIENT_TOOLS_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lode/client.h>

/* Exit codes (documented in docs/liblode.md and --help). */
enum tool_exit {
    TOOL_OK = 0,
    TOOL_FAILED = 1,       /* the request failed (network, server, protocol) */
    TOOL_USAGE = 2,        /* bad command line or missing credentials */
    TOOL_MISMATCH = 3,     /* --verify found different bytes */
    TOOL_NOT_FOUND = 4,    /* no such bucket or key */
    TOOL_LOCAL_IO = 5,     /* reading the input or writing the output failed */
    TOOL_NO_CUDA = 6,      /* --buffer cuda without a usable CUDA driver and device */
    TOOL_NO_FALLBACK = 7,  /* --no-fallback and the transport asked for was not used */
};

struct tool_opts {
    const char *endpoint, *access_key, *secret_key, *region;
    const char *rdma_local;        /* --rdma-local, or NULL */
    enum lode_transport transport;
    bool no_fallback;
    bool cuda;                     /* --buffer cuda */
    bool verify, stats, progress, quiet;
    uint32_t timeout_ms;
};

/* Handles an option common to both tools. Returns 1 when `opt` (a getopt_long code) was
 * one, 0 when not, -1 on a bad value (message printed). */
int tool_common_opt(struct tool_opts *o, int opt, const char *arg, const char *prog);

/* The getopt_long entries of the common options (terminated by the caller's own). */
#define TOOL_COMMON_LONGOPTS                                                               \
    {"endpoint", required_argument, NULL, 'e'}, {"access-key", required_argument, NULL, 1001}, \
        {"secret-key", required_argument, NULL, 1002}, {"region", required_argument, NULL, 1003}, \
        {"transport", required_argument, NULL, 't'}, {"no-fallback", no_argument, NULL, 1004}, \
        {"buffer", required_argument, NULL, 'b'}, {"verify", no_argument, NULL, 1005},         \
        {"stats", no_argument, NULL, 's'}, {"progress", no_argument, NULL, 1006},               \
        {"quiet", no_argument, NULL, 'q'}, {"timeout", required_argument, NULL, 1007},     \
        {"rdma-local", required_argument, NULL, 1008}
#define TOOL_COMMON_SHORTOPTS "e:t:b:sq"

extern const char tool_common_help[];

/* Fills endpoint, credentials and the rc device's address from the environment where not
 * given (LODE_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
 * LODE_RDMA_LOCAL), then creates a client with the transport (or `transport_override` when
 * not NULL). Returns TOOL_OK or an exit code. */
int tool_client(const struct tool_opts *o, const enum lode_transport *transport_override,
                lode_client **out, const char *prog);

/* A buffer of `size` bytes (at least 1 allocated): host memory, or device memory when cuda.
 * For device memory, host_view is NULL. */
struct tool_buf {
    bool cuda;
    void *ptr;                     /* host pointer or device pointer */
    size_t size, alloc;
    lode_buf *reg;
};

/* Allocates and registers. Returns TOOL_OK or an exit code (message printed). */
int tool_buf_alloc(struct tool_buf *b, lode_client *c, bool cuda, size_t size, const char *prog);
void tool_buf_free(struct tool_buf *b);

/* Copies n bytes at offset off between the buffer and host memory (plain memcpy for host
 * buffers). Return 0 or -1 (message printed). */
int tool_buf_to_host(const struct tool_buf *b, size_t off, void *dst, size_t n, const char *prog);
int tool_buf_from_host(struct tool_buf *b, size_t off, const void *src, size_t n, const char *prog);

/* The exit code for a liblode error. */
int tool_exit_for(int rc);

/* Parses a size with an optional K/M/G/T suffix (powers of 1024) or "KiB"-style suffix. */
int tool_parse_size(const char *s, uint64_t *out);

/* Monotonic seconds. */
double tool_now(void);

/* ---- tool_cuda.c: device memory for the tools (libcuda.so.1 loaded at run time) ---- */

/* Loads the driver and makes device 0's primary context current. Returns 0, or -1 with a
 * message in why (static or in a static buffer). */
int tool_cuda_init(const char **why);
int tool_cuda_alloc(void **dptr, size_t size);
void tool_cuda_free(void *dptr);
int tool_cuda_htod(void *dptr, const void *src, size_t n);
int tool_cuda_dtoh(void *dst, const void *dptr, size_t n);

#endif
