/* A fake CUDA driver (loaded by liblode through $LODE_CUDA_DRIVER) for testing liblode's
 * device-memory paths on hosts without a GPU. It is strict where a real driver would fail
 * quietly or only sometimes:
 *   - "device memory" lives at addresses of a PROT_NONE reservation, so any host access to
 *     a device pointer by liblode crashes; its bytes live in a separate shadow;
 *   - memory calls need a current context (CUDA_ERROR_INVALID_CONTEXT otherwise), so a
 *     thread that forgot cuCtxPushCurrent (liblode's receive thread) is caught;
 *   - cuMemcpyHtoDAsync only queues the copy; it happens at cuEventSynchronize or
 *     cuStreamSynchronize and reads the pinned source then, so a slot reused before its copy
 *     completed, or a call returning before its stream was synchronised, shows as wrong
 *     bytes;
 *   - copies outside an allocation fail with CUDA_ERROR_INVALID_VALUE;
 *   - dma-buf export (cuMemGetHandleForAddressRange) wants host-page-aligned ranges inside
 *     one allocation and a current context, and hands out a memfd; $FAKE_CUDA_NO_DMABUF=1
 *     makes the device report no dma-buf support, $FAKE_CUDA_OLD=1 hides the entry point.
 * Entry points are found through cuGetProcAddress_v2, as liblode looks them up. */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int CUresult;
typedef unsigned long long dptr;

#define OK 0
#define ERR_INVALID_VALUE 1
#define ERR_INVALID_CONTEXT 201
#define ERR_NOT_FOUND 500

#define ARENA_SIZE (1ull << 34)
#define MAX_ALLOCS 256

struct alloc {
    dptr base;
    size_t size;
    uint8_t *shadow;
};

struct op {
    dptr dst;
    const void *src;
    size_t n;
};

struct stream {
    pthread_mutex_t mu;
    struct op *ops;
    size_t n, cap, done;
};

struct event {
    struct stream *s;
    size_t upto;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *arena;
static size_t arena_used;
static struct alloc allocs[MAX_ALLOCS];
static int ctx_token;
#define FAKE_CTX ((void *)&ctx_token)
static __thread void *ctx_stack[16];
static __thread int ctx_depth;      /* ctx_stack[ctx_depth - 1] is current */
static unsigned long async_copies, deferred_runs;

/* For the test: counters of the asynchronous copies queued and executed late. */
unsigned long fake_cuda_async_copies(void);
unsigned long fake_cuda_async_copies(void)
{
    return async_copies;
}

static bool have_ctx(void)
{
    return ctx_depth > 0 && ctx_stack[ctx_depth - 1] == FAKE_CTX;
}

/* The shadow bytes of [p, p+n) or NULL when the range leaves every allocation. */
static uint8_t *shadow(dptr p, size_t n)
{
    uint8_t *s = NULL;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].shadow && p >= allocs[i].base && p - allocs[i].base <= allocs[i].size &&
            n <= allocs[i].size - (p - allocs[i].base)) {
            s = allocs[i].shadow + (p - allocs[i].base);
            break;
        }
    pthread_mutex_unlock(&mu);
    return s;
}

static CUresult cuInit(unsigned flags)
{
    pthread_mutex_lock(&mu);
    if (!arena) {
        void *a = mmap(NULL, ARENA_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        arena = a == MAP_FAILED ? NULL : a;
    }
    pthread_mutex_unlock(&mu);
    return arena ? OK : ERR_INVALID_VALUE;
}

static CUresult cuDriverGetVersion(int *v)
{
    *v = 12040;
    return OK;
}

static CUresult cuDeviceGetCount(int *n)
{
    *n = 1;
    return OK;
}

static CUresult cuDeviceGet(int *d, int ordinal)
{
    *d = 0;
    return ordinal == 0 ? OK : ERR_INVALID_VALUE;
}

static CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev)
{
    *ctx = FAKE_CTX;
    return OK;
}

static CUresult cuDevicePrimaryCtxRelease(int dev)
{
    return OK;
}

static CUresult cuCtxSetCurrent(void *ctx)
{
    if (ctx_depth == 0)
        ctx_depth = 1;
    ctx_stack[ctx_depth - 1] = ctx;
    return OK;
}

static CUresult cuCtxGetCurrent(void **ctx)
{
    *ctx = ctx_depth ? ctx_stack[ctx_depth - 1] : NULL;
    return OK;
}

static CUresult cuCtxPushCurrent(void *ctx)
{
    if (ctx != FAKE_CTX || ctx_depth == 16)
        return ERR_INVALID_CONTEXT;
    ctx_stack[ctx_depth++] = ctx;
    return OK;
}

static CUresult cuCtxPopCurrent(void **ctx)
{
    if (ctx_depth == 0)
        return ERR_INVALID_CONTEXT;
    *ctx = ctx_stack[--ctx_depth];
    return OK;
}

static CUresult cuPointerGetAttribute(void *data, int attr, dptr p)
{
    pthread_mutex_lock(&mu);
    struct alloc *a = NULL;
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].shadow && p >= allocs[i].base && p - allocs[i].base < allocs[i].size)
            a = &allocs[i];
    pthread_mutex_unlock(&mu);
    if (!a)
        return ERR_INVALID_VALUE;
    switch (attr) {
    case 1: *(void **)data = FAKE_CTX; return OK;
    case 9: *(int *)data = 0; return OK;         /* CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL */
    case 2: *(unsigned *)data = 2; return OK;   /* CU_MEMORYTYPE_DEVICE */
    case 11: *(dptr *)data = a->base; return OK;
    case 12: *(size_t *)data = a->size; return OK;
    default: return ERR_INVALID_VALUE;
    }
}

static CUresult cuMemAlloc(dptr *p, size_t n)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    pthread_mutex_lock(&mu);
    CUresult r = ERR_INVALID_VALUE;
    size_t rounded = (n + 4095) & ~(size_t)4095; /* page-aligned bases, as the driver's */
    for (int i = 0; i < MAX_ALLOCS && arena && n && arena_used + rounded <= ARENA_SIZE; i++)
        if (!allocs[i].shadow) {
            allocs[i].shadow = calloc(1, n);
            if (!allocs[i].shadow)
                break;
            allocs[i].base = (dptr)(uintptr_t)(arena + arena_used);
            allocs[i].size = n;
            arena_used += rounded;
            *p = allocs[i].base;
            r = OK;
            break;
        }
    pthread_mutex_unlock(&mu);
    return r;
}

static CUresult cuMemFree(dptr p)
{
    pthread_mutex_lock(&mu);
    CUresult r = ERR_INVALID_VALUE;
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].shadow && allocs[i].base == p) {
            free(allocs[i].shadow);
            allocs[i].shadow = NULL;
            r = OK;
        }
    pthread_mutex_unlock(&mu);
    return r;
}

static CUresult cuMemHostAlloc(void **p, size_t n, unsigned flags)
{
    *p = malloc(n);
    return *p ? OK : ERR_INVALID_VALUE;
}

static CUresult cuMemFreeHost(void *p)
{
    free(p);
    return OK;
}

static CUresult cuMemcpyHtoD(dptr dst, const void *src, size_t n)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    uint8_t *s = shadow(dst, n);
    if (!s)
        return ERR_INVALID_VALUE;
    memcpy(s, src, n);
    return OK;
}

static CUresult cuMemcpyDtoH(void *dst, dptr src, size_t n)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    uint8_t *s = shadow(src, n);
    if (!s)
        return ERR_INVALID_VALUE;
    memcpy(dst, s, n);
    return OK;
}

static CUresult cuMemsetD8(dptr dst, unsigned char v, size_t n)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    uint8_t *s = shadow(dst, n);
    if (!s)
        return ERR_INVALID_VALUE;
    memset(s, v, n);
    return OK;
}

static CUresult cuMemcpyHtoDAsync(dptr dst, const void *src, size_t n, struct stream *st)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    if (!st || !shadow(dst, n))
        return ERR_INVALID_VALUE;
    pthread_mutex_lock(&st->mu);
    if (st->n == st->cap) {
        size_t nc = st->cap ? 2 * st->cap : 64;
        struct op *o = realloc(st->ops, nc * sizeof(*o));
        if (!o) {
            pthread_mutex_unlock(&st->mu);
            return ERR_INVALID_VALUE;
        }
        st->ops = o;
        st->cap = nc;
    }
    st->ops[st->n++] = (struct op){dst, src, n};
    __atomic_add_fetch(&async_copies, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&st->mu);
    return OK;
}

/* Runs the queued copies of st up to index upto. */
static void run_ops(struct stream *st, size_t upto)
{
    pthread_mutex_lock(&st->mu);
    for (; st->done < upto && st->done < st->n; st->done++) {
        struct op *o = &st->ops[st->done];
        memcpy(shadow(o->dst, o->n), o->src, o->n);
        __atomic_add_fetch(&deferred_runs, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&st->mu);
}

static CUresult cuStreamCreate(struct stream **s, unsigned flags)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    *s = calloc(1, sizeof(**s));
    if (!*s)
        return ERR_INVALID_VALUE;
    pthread_mutex_init(&(*s)->mu, NULL);
    return OK;
}

static CUresult cuStreamSynchronize(struct stream *s)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    run_ops(s, SIZE_MAX);
    return OK;
}

static CUresult cuStreamDestroy(struct stream *s)
{
    run_ops(s, SIZE_MAX);
    pthread_mutex_destroy(&s->mu);
    free(s->ops);
    free(s);
    return OK;
}

static CUresult cuEventCreate(struct event **e, unsigned flags)
{
    *e = calloc(1, sizeof(**e));
    return *e ? OK : ERR_INVALID_VALUE;
}

static CUresult cuEventRecord(struct event *e, struct stream *s)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    pthread_mutex_lock(&s->mu);
    e->s = s;
    e->upto = s->n;
    pthread_mutex_unlock(&s->mu);
    return OK;
}

static CUresult cuEventSynchronize(struct event *e)
{
    if (e->s)
        run_ops(e->s, e->upto);
    return OK;
}

static CUresult cuEventDestroy(struct event *e)
{
    free(e);
    return OK;
}

static dptr last_export_base;
static size_t last_export_size;

/* What the last successful export covered, for the tests. */
void fake_cuda_last_export(dptr *base, size_t *size);
void fake_cuda_last_export(dptr *base, size_t *size)
{
    pthread_mutex_lock(&mu);
    *base = last_export_base;
    *size = last_export_size;
    pthread_mutex_unlock(&mu);
}

static CUresult cuDeviceGetAttribute(int *v, int attr, int dev)
{
    if (dev != 0)
        return ERR_INVALID_VALUE;
    if (attr != 124)               /* CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED */
        return ERR_INVALID_VALUE;
    const char *no = getenv("FAKE_CUDA_NO_DMABUF");
    *v = no && no[0] == '1' ? 0 : 1;
    return OK;
}

static CUresult cuMemGetHandleForAddressRange(void *handle, dptr p, size_t n, int type,
                                              unsigned long long flags)
{
    if (!have_ctx())
        return ERR_INVALID_CONTEXT;
    long page = sysconf(_SC_PAGESIZE);
    if (type != 1 || flags != 0 || n == 0 || p % (dptr)page || n % (size_t)page)
        return ERR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    bool inside = false;
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].shadow && p >= allocs[i].base && p - allocs[i].base <= allocs[i].size &&
            n <= allocs[i].size - (p - allocs[i].base))
            inside = true;
    if (inside) {
        last_export_base = p;
        last_export_size = n;
    }
    pthread_mutex_unlock(&mu);
    if (!inside)
        return ERR_INVALID_VALUE;
    int fd = memfd_create("fake-dmabuf", MFD_CLOEXEC);
    if (fd < 0)
        return ERR_INVALID_VALUE;
    *(int *)handle = fd;
    return OK;
}

static CUresult cuGetErrorString(CUresult r, const char **s)
{
    *s = r == ERR_INVALID_CONTEXT ? "fake: no current context" : "fake: invalid value";
    return OK;
}

struct entry {
    const char *name;
    void *fn;
};

#define E(n) {#n, (void *)n}
static const struct entry table[] = {
    E(cuInit), E(cuDriverGetVersion), E(cuDeviceGetCount), E(cuDeviceGet),
    E(cuDevicePrimaryCtxRetain), E(cuDevicePrimaryCtxRelease), E(cuCtxSetCurrent),
    E(cuCtxGetCurrent), E(cuCtxPushCurrent), E(cuCtxPopCurrent), E(cuPointerGetAttribute),
    E(cuMemAlloc), E(cuMemFree), E(cuMemHostAlloc), E(cuMemFreeHost), E(cuMemcpyHtoD),
    E(cuMemcpyDtoH), E(cuMemcpyHtoDAsync), E(cuMemsetD8), E(cuStreamCreate),
    E(cuStreamSynchronize), E(cuStreamDestroy), E(cuEventCreate), E(cuEventRecord),
    E(cuEventSynchronize), E(cuEventDestroy), E(cuGetErrorString), E(cuDeviceGetAttribute),
    E(cuMemGetHandleForAddressRange),
};
#undef E

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version,
                             unsigned long long flags, int *status);
CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version,
                             unsigned long long flags, int *status)
{
    const char *old = getenv("FAKE_CUDA_OLD");
    bool hide = old && old[0] == '1' && strcmp(symbol, "cuMemGetHandleForAddressRange") == 0;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]) && !hide; i++)
        if (strcmp(table[i].name, symbol) == 0) {
            *pfn = table[i].fn;
            if (status)
                *status = 0;
            return OK;
        }
    *pfn = NULL;
    if (status)
        *status = 1;
    return ERR_NOT_FOUND;
}
