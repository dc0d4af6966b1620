/* liblode's device-memory paths (client/cuda.c) against the strict fake driver of
 * fake_cuda.c, loaded through $LODE_CUDA_DRIVER, and the fake gateway: tcp fan-out and
 * plain GETs into "device memory" (pinned slots, asynchronous copies on the receive thread,
 * the stream synchronised before the call returns), ranges, a PUT from device memory, and
 * the registration checks. The bytes are read back through the fake driver and compared
 * with pattern(). The fake refuses host access to device addresses (they are PROT_NONE),
 * calls without a current context, and runs asynchronous copies only when they are
 * synchronised, so early slot reuse or a missing synchronisation shows as wrong bytes. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lode/client.h>

#include "client/cuda.h"

#include "tests/tap.h"
#include "tests/unit/client/fake_gateway.h"

typedef int (*get_proc_fn)(const char *, void **, int, unsigned long long, int *);
static int (*cu_init)(unsigned);
static int (*cu_retain)(void **, int);
static int (*cu_set)(void *);
static int (*cu_get)(void **);
static int (*cu_alloc)(unsigned long long *, size_t);
static int (*cu_free)(unsigned long long);
static int (*cu_dtoh)(void *, unsigned long long, size_t);
static int (*cu_htod)(unsigned long long, const void *, size_t);
static unsigned long (*async_copies)(void);

static void *sym(get_proc_fn gp, const char *name)
{
    void *f = NULL;
    int st;
    if (gp(name, &f, 12000, 0, &st) != 0 || !f)
        tap_bail("fake driver lacks %s", name);
    return f;
}

/* Device memory of n bytes, as an integer and as the pointer liblode takes. */
static void *dev_alloc(size_t n)
{
    unsigned long long p = 0;
    if (cu_alloc(&p, n) != 0)
        tap_bail("fake cuMemAlloc");
    return (void *)(uintptr_t)p;
}

/* dma-buf export for RDMA registration (lc_cuda_dmabuf_export), straight against the driver. */
static void test_dmabuf(void *dl, void *ctx)
{
    void (*last)(unsigned long long *, size_t *);
    *(void **)&last = dlsym(dl, "fake_cuda_last_export");
    if (!last)
        tap_bail("fake driver lacks fake_cuda_last_export");
    struct lc_cuda cu;
    struct cmn_err e;
    cmn_err_clear(&e);
    if (lc_cuda_load(&cu, &e) != 0)
        tap_bail("lc_cuda_load: %s", e.msg);
    ok(cu.cuMemGetHandleForAddressRange != NULL, "dma-buf: the entry point is resolved");
    const size_t n = 3u << 20;
    void *d = dev_alloc(n);
    unsigned long long base = (unsigned long long)(uintptr_t)d;
    struct lc_cuda_dmabuf db;
    /* 1 MiB at offset 100: pages [0, 1 MiB + 4096) of the allocation, the buffer 100 in. */
    is_int(lc_cuda_dmabuf_export(&cu, ctx, base + 100, 1u << 20, &db, &e), 0,
           "dma-buf: 1 MiB at offset 100 exported (%s)", e.msg);
    unsigned long long xb = 0;
    size_t xs = 0;
    last(&xb, &xs);
    ok(db.fd >= 0 && db.offset == 100 && db.len == (1u << 20) + 4096,
       "dma-buf: fd, offset 100, length widened to whole pages (%llu, %zu)",
       (unsigned long long)db.offset, db.len);
    ok(xb == base && xs == (1u << 20) + 4096, "dma-buf: the driver was asked for exactly those pages");
    if (db.fd >= 0)
        close(db.fd);
    is_int(lc_cuda_dmabuf_export(&cu, ctx, base + n - 10, 100, &db, &e), -EINVAL,
           "dma-buf: a range past the allocation is refused");
    is_int(lc_cuda_dmabuf_export(&cu, ctx, base, 0, &db, &e), -EINVAL, "dma-buf: empty range refused");
    uint8_t host[16];
    is_int(lc_cuda_dmabuf_export(&cu, ctx, (unsigned long long)(uintptr_t)host, 16, &db, &e), -EINVAL,
           "dma-buf: host memory refused");
    /* 5000 bytes: the last page would reach past the allocation. */
    void *small = dev_alloc(5000);
    is_int(lc_cuda_dmabuf_export(&cu, ctx, (unsigned long long)(uintptr_t)small, 5000, &db, &e),
           -EINVAL, "dma-buf: a buffer whose pages leave the allocation is refused");
    ok(strstr(e.msg, "page") != NULL && db.fd == -1, "... saying why, no fd (%s)", e.msg);
    setenv("FAKE_CUDA_NO_DMABUF", "1", 1);
    is_int(lc_cuda_dmabuf_export(&cu, ctx, base, 4096, &db, &e), -EOPNOTSUPP,
           "dma-buf: a device without dma-buf support: EOPNOTSUPP");
    ok(strstr(e.msg, "dma-buf") != NULL, "... with a message (%s)", e.msg);
    unsetenv("FAKE_CUDA_NO_DMABUF");
    lc_cuda_unload(&cu);
    setenv("FAKE_CUDA_OLD", "1", 1);
    is_int(lc_cuda_load(&cu, &e), 0, "dma-buf: an older driver still loads");
    ok(cu.cuMemGetHandleForAddressRange == NULL, "... without the optional entry point");
    is_int(lc_cuda_dmabuf_export(&cu, ctx, base, 4096, &db, &e), -EOPNOTSUPP,
           "... and export says it is unsupported (%s)", e.msg);
    unsetenv("FAKE_CUDA_OLD");
    lc_cuda_unload(&cu);
    cu_free(base);
    cu_free((unsigned long long)(uintptr_t)small);
}

static bool dev_same(void *d, uint64_t first, size_t n)
{
    uint8_t *h = malloc(n ? n : 1);
    bool r = cu_dtoh(h, (unsigned long long)(uintptr_t)d, n) == 0 && same(h, first, n);
    free(h);
    return r;
}

int main(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/unit/client/.libs/libfakecuda.so", LODE_BUILDDIR);
    if (access(path, R_OK) != 0)
        tap_bail("%s not built", path);
    setenv("LODE_CUDA_DRIVER", path, 1);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        tap_bail("dlopen %s: %s", path, dlerror());
    get_proc_fn gp = (get_proc_fn)dlsym(dl, "cuGetProcAddress_v2");
    if (!gp)
        tap_bail("no cuGetProcAddress_v2");
    *(void **)&cu_init = sym(gp, "cuInit");
    *(void **)&cu_retain = sym(gp, "cuDevicePrimaryCtxRetain");
    *(void **)&cu_set = sym(gp, "cuCtxSetCurrent");
    *(void **)&cu_get = sym(gp, "cuCtxGetCurrent");
    *(void **)&cu_alloc = sym(gp, "cuMemAlloc");
    *(void **)&cu_free = sym(gp, "cuMemFree");
    *(void **)&cu_dtoh = sym(gp, "cuMemcpyDtoH");
    *(void **)&cu_htod = sym(gp, "cuMemcpyHtoD");
    *(void **)&async_copies = dlsym(dl, "fake_cuda_async_copies");
    void *ctx = NULL;
    if (!async_copies || cu_init(0) != 0 || cu_retain(&ctx, 0) != 0 || cu_set(ctx) != 0)
        tap_bail("fake driver setup");

    test_dmabuf(dl, ctx);
    fgw_start();
    lode_client *tcp = client(LODE_TRANSPORT_TCP, LODE_CLIENT_NO_FALLBACK, 5000, NULL);
    lode_client *http = client(LODE_TRANSPORT_HTTP, 0, 5000, NULL);
    const size_t big = 9 * 1024 * 1024 + 4321; /* more than two 4 MiB slots */
    is_int(put_object(http, "big", big), 0, "PUT 9 MiB + 4321 from host memory");

    /* Registration checks. */
    uint8_t host[64];
    lode_buf *b;
    is_int(lode_buf_register(tcp, host, sizeof(host), LODE_BUF_CUDA, &b), -EINVAL,
           "host memory registered as device memory: refused");
    void *d = dev_alloc(big + 100);
    is_int(lode_buf_register(tcp, d, big + 101, LODE_BUF_CUDA, &b), -EINVAL,
           "a device range past its allocation: refused");
    ok(strstr(lode_last_error(), "allocation") != NULL, "... saying so (%s)", lode_last_error());
    is_int(lode_buf_register(tcp, d, big + 100, LODE_BUF_CUDA, &b), 0, "device buffer registered");
    ok(lode_buf_kind_of(b) == LODE_BUF_CUDA && lode_buf_ptr(b) == d, "buffer kind and pointer");

    /* tcp fan-out into device memory. */
    struct lode_result res;
    unsigned long copies = async_copies();
    is_int(lode_get(tcp, "bkt", "big", NULL, b, 50, &res), 0, "tcp GET into device memory");
    ok(res.transport == LODE_TRANSPORT_TCP && !res.fell_back && res.bytes == big,
       "tcp: the fan-out moved it (%s)", res.message);
    ok(async_copies() > copies, "tcp: through asynchronous copies (%lu)", async_copies() - copies);
    ok(dev_same((uint8_t *)d + 50, 0, big), "tcp: device memory holds the object");
    void *cur = NULL;
    ok(cu_get(&cur) == 0 && cur == ctx, "the caller's current context is unchanged");

    /* Again into the same memory (a new tag), and a range. */
    struct lode_range rg = {1234567, 5000000};
    struct lode_get_opts go = {.range = &rg};
    is_int(lode_get(tcp, "bkt", "big", &go, b, 0, &res), 0, "tcp GET of a range into device memory");
    ok(res.bytes == 5000000 && res.offset == 1234567 && dev_same(d, 1234567, 5000000),
       "tcp range: the bytes");

    /* AUTO prefers rc, device memory included (as a dma-buf); with no RDMA device here it
     * goes on with tcp. RC asked for, without a device: plain HTTP, same bytes. */
    memset(host, 0xee, sizeof(host)); /* overwrites the object's first bytes before each GET */
    lode_client *autoc = client(LODE_TRANSPORT_AUTO, 0, 5000, NULL);
    lode_buf *ab;
    is_int(lode_buf_register(autoc, d, big + 100, LODE_BUF_CUDA, &ab), 0, "AUTO: device buffer");
    cu_htod((unsigned long long)(uintptr_t)d, host, sizeof(host));
    is_int(lode_get(autoc, "bkt", "big", NULL, ab, 0, &res), 0, "AUTO GET into device memory");
    ok(res.transport == LODE_TRANSPORT_TCP && res.bytes == big && dev_same(d, 0, big),
       "AUTO without RDMA: tcp, the bytes (%s)", res.message);
    lode_buf_deregister(ab);
    lode_client_destroy(autoc);
    lode_client *rcc = client(LODE_TRANSPORT_RC, 0, 5000, NULL);
    is_int(lode_buf_register(rcc, d, big + 100, LODE_BUF_CUDA, &ab), 0, "RC: device buffer");
    cu_htod((unsigned long long)(uintptr_t)d, host, sizeof(host));
    is_int(lode_get(rcc, "bkt", "big", NULL, ab, 0, &res), 0, "RC GET into device memory");
    ok(res.fell_back && res.transport == LODE_TRANSPORT_HTTP && res.bytes == big &&
       dev_same(d, 0, big), "RC without RDMA: plain HTTP fallback, the bytes (%s)", res.message);
    lode_buf_deregister(ab);
    lode_client_destroy(rcc);

    /* Plain HTTP into device memory. */
    lode_buf *hb;
    void *d2 = dev_alloc(big);
    is_int(lode_buf_register(http, d2, big, LODE_BUF_CUDA, &hb), 0, "a second device buffer");
    is_int(lode_get(http, "bkt", "big", NULL, hb, 0, &res), 0, "http GET into device memory");
    ok(res.transport == LODE_TRANSPORT_HTTP && res.bytes == big && dev_same(d2, 0, big),
       "http: device memory holds the object");
    rg = (struct lode_range){100, 10};
    is_int(lode_get(http, "bkt", "big", &go, hb, big - 10, &res), 0, "http GET of 10 bytes at the end");
    ok(dev_same((uint8_t *)d2 + big - 10, 100, 10), "http range: the bytes");

    /* PUT from device memory, read back into host memory. */
    is_int(lode_put(http, "bkt", "fromdev", hb, 1000, 6000000, NULL, &res), 0,
           "PUT 6000000 bytes from device memory");
    uint8_t *back = mem(6000000);
    lode_buf *bb;
    lode_buf_register(http, back, 6000000, LODE_BUF_HOST, &bb);
    is_int(lode_get(http, "bkt", "fromdev", NULL, bb, 0, &res), 0, "GET it into host memory");
    ok(res.bytes == 6000000 && same(back, 1000, 6000000), "PUT from device: the stored bytes");

    lode_buf_deregister(bb);
    lode_buf_deregister(hb);
    lode_buf_deregister(b);
    lode_client_destroy(tcp);
    lode_client_destroy(http);
    free(back);
    cu_free((unsigned long long)(uintptr_t)d);
    cu_free((unsigned long long)(uintptr_t)d2);
    fgw_stop();
    dlclose(dl);
    return tap_done();
}
