#include "client/cuda.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lode/client.h>

/* CUDA 12.0 semantics for every entry point cuGetProcAddress resolves: the 64-bit (_v2)
 * memory API and the legacy default stream. */
#define LC_CUDA_API_VERSION 12000
#define LC_CU_POINTER_ATTRIBUTE_CONTEXT 1
#define LC_CU_POINTER_ATTRIBUTE_MEMORY_TYPE 2
#define LC_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR 11
#define LC_CU_POINTER_ATTRIBUTE_RANGE_SIZE 12
#define LC_CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL 9
#define LC_CU_MEMORYTYPE_DEVICE 2
#define LC_CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED 124
#define LC_CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD 1
#define LC_CU_MEMHOSTALLOC_PORTABLE 1
#define LC_CU_STREAM_NON_BLOCKING 1
#define LC_CU_EVENT_DISABLE_TIMING 2

typedef lc_curesult (*get_proc_v2_fn)(const char *, void **, int, unsigned long long, int *);
typedef lc_curesult (*get_proc_v1_fn)(const char *, void **, int, unsigned long long);

/* name (as cuGetProcAddress knows it), the versioned export for plain dlsym, the slot. */
struct entry {
    const char *name, *export_name;
    size_t off;
    bool optional;                 /* a newer driver's: liblode works without it */
};

#define E(n, x) {#n, x, offsetof(struct lc_cuda, n), false}
#define OPT(n, x) {#n, x, offsetof(struct lc_cuda, n), true}
static const struct entry entries[] = {
    E(cuInit, "cuInit"),
    E(cuDriverGetVersion, "cuDriverGetVersion"),
    E(cuDeviceGetCount, "cuDeviceGetCount"),
    E(cuDeviceGet, "cuDeviceGet"),
    E(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    E(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    E(cuCtxSetCurrent, "cuCtxSetCurrent"),
    E(cuCtxGetCurrent, "cuCtxGetCurrent"),
    E(cuCtxPushCurrent, "cuCtxPushCurrent_v2"),
    E(cuCtxPopCurrent, "cuCtxPopCurrent_v2"),
    E(cuPointerGetAttribute, "cuPointerGetAttribute"),
    E(cuMemAlloc, "cuMemAlloc_v2"),
    E(cuMemFree, "cuMemFree_v2"),
    E(cuMemHostAlloc, "cuMemHostAlloc"),
    E(cuMemFreeHost, "cuMemFreeHost"),
    E(cuMemcpyHtoD, "cuMemcpyHtoD_v2"),
    E(cuMemcpyDtoH, "cuMemcpyDtoH_v2"),
    E(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    E(cuMemsetD8, "cuMemsetD8_v2"),
    E(cuStreamCreate, "cuStreamCreate"),
    E(cuStreamSynchronize, "cuStreamSynchronize"),
    E(cuStreamDestroy, "cuStreamDestroy_v2"),
    E(cuEventCreate, "cuEventCreate"),
    E(cuEventRecord, "cuEventRecord"),
    E(cuEventSynchronize, "cuEventSynchronize"),
    E(cuEventDestroy, "cuEventDestroy_v2"),
    E(cuGetErrorString, "cuGetErrorString"),
    E(cuDeviceGetAttribute, "cuDeviceGetAttribute"),
    OPT(cuMemGetHandleForAddressRange, "cuMemGetHandleForAddressRange"),
};
#undef E
#undef OPT

int lc_cuda_fail(const struct lc_cuda *cu, lc_curesult r, const char *what, struct cmn_err *err)
{
    const char *s = NULL;
    if (!cu->cuGetErrorString || cu->cuGetErrorString(r, &s) != 0 || !s)
        s = "unknown CUDA error";
    return cmn_err_set(err, LODE_ERR_CUDA, "%s: %s (CUDA error %d)", what, s, r);
}

int lc_cuda_load(struct lc_cuda *cu, struct cmn_err *err)
{
    memset(cu, 0, sizeof(*cu));
    const char *lib = getenv("LODE_CUDA_DRIVER");
    if (!lib || !lib[0])
        lib = "libcuda.so.1";
    cu->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!cu->dl) {
        const char *why = dlerror();
        return cmn_err_set(err, LODE_ERR_NO_CUDA, "CUDA driver not available: %s",
                           why ? why : "cannot load the driver library");
    }
    get_proc_v2_fn gp2 = (get_proc_v2_fn)dlsym(cu->dl, "cuGetProcAddress_v2");
    get_proc_v1_fn gp1 = gp2 ? NULL : (get_proc_v1_fn)dlsym(cu->dl, "cuGetProcAddress");
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        void *fn = NULL;
        int status = 0;
        if (gp2 && (gp2(entries[i].name, &fn, LC_CUDA_API_VERSION, 0, &status) != 0 || status != 0))
            fn = NULL;
        else if (gp1 && gp1(entries[i].name, &fn, LC_CUDA_API_VERSION, 0) != 0)
            fn = NULL;
        /* Before cuInit, cuGetProcAddress may still answer: when it did not, dlsym. */
        if (!fn)
            fn = dlsym(cu->dl, entries[i].export_name);
        if (!fn && entries[i].optional)
            continue;
        if (!fn) {
            int rc = cmn_err_set(err, LODE_ERR_NO_CUDA,
                                 "CUDA driver too old: no entry point %s", entries[i].name);
            lc_cuda_unload(cu);
            return rc;
        }
        memcpy((char *)cu + entries[i].off, &fn, sizeof(fn));
    }
    lc_curesult r = cu->cuInit(0);
    int count = 0;
    if (r == 0)
        r = cu->cuDeviceGetCount(&count);
    if (r == LC_CUDA_ERROR_NO_DEVICE || (r == 0 && count == 0)) {
        lc_cuda_unload(cu);
        return cmn_err_set(err, LODE_ERR_NO_CUDA, "CUDA driver loaded, but no CUDA device");
    }
    if (r != 0) {
        int rc = lc_cuda_fail(cu, r, "cuInit", err);
        lc_cuda_unload(cu);
        return rc;
    }
    if (cu->cuDriverGetVersion(&cu->driver_version) != 0)
        cu->driver_version = 0;
    return 0;
}

void lc_cuda_unload(struct lc_cuda *cu)
{
    if (cu->dl)
        dlclose(cu->dl);
    memset(cu, 0, sizeof(*cu));
}

int lc_cuda_check_ptr(const struct lc_cuda *cu, lc_cudeviceptr ptr, size_t size,
                      lc_cucontext *ctx, struct cmn_err *err)
{
    unsigned int type = 0;
    lc_curesult r = cu->cuPointerGetAttribute(&type, LC_CU_POINTER_ATTRIBUTE_MEMORY_TYPE, ptr);
    if (r != 0 || type != LC_CU_MEMORYTYPE_DEVICE)
        return cmn_err_set(err, -EINVAL, "the pointer is not CUDA device memory");
    lc_cudeviceptr start = 0;
    size_t range = 0;
    if (cu->cuPointerGetAttribute(&start, LC_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, ptr) == 0 &&
        cu->cuPointerGetAttribute(&range, LC_CU_POINTER_ATTRIBUTE_RANGE_SIZE, ptr) == 0 &&
        (ptr - start > range || size > range - (ptr - start)))
        return cmn_err_set(err, -EINVAL,
                           "the buffer runs past the end of its CUDA allocation (%zu bytes)",
                           range);
    r = cu->cuPointerGetAttribute(ctx, LC_CU_POINTER_ATTRIBUTE_CONTEXT, ptr);
    if (r != 0)
        return lc_cuda_fail(cu, r, "cuPointerGetAttribute(CONTEXT)", err);
    return 0;
}

int lc_cuda_dmabuf_export(const struct lc_cuda *cu, lc_cucontext ctx, lc_cudeviceptr ptr,
                          size_t len, struct lc_cuda_dmabuf *out, struct cmn_err *err)
{
    out->fd = -1;
    out->offset = 0;
    out->len = 0;
    if (!cu->cuMemGetHandleForAddressRange)
        return cmn_err_set(err, -EOPNOTSUPP,
                           "the CUDA driver cannot export dma-bufs (cuMemGetHandleForAddressRange "
                           "needs CUDA 11.7 or later)");
    if (len == 0)
        return cmn_err_set(err, -EINVAL, "an empty range cannot be exported");
    int ordinal = -1, dev = 0, supported = 0;
    lc_curesult r = cu->cuPointerGetAttribute(&ordinal, LC_CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, ptr);
    if (r != 0)
        return cmn_err_set(err, -EINVAL, "the pointer is not CUDA device memory");
    r = cu->cuDeviceGet(&dev, ordinal);
    if (r == 0)
        r = cu->cuDeviceGetAttribute(&supported, LC_CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, dev);
    if (r != 0)
        return lc_cuda_fail(cu, r, "cuDeviceGetAttribute(DMA_BUF_SUPPORTED)", err);
    if (!supported)
        return cmn_err_set(err, -EOPNOTSUPP,
                           "GPU %d cannot export dma-bufs (the driver reports no DMA_BUF support; "
                           "it needs the open GPU kernel modules)", ordinal);
    /* The driver exports whole host pages; the allocation must contain them. */
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    lc_cudeviceptr first = ptr & ~(lc_cudeviceptr)(page - 1);
    if (len > UINT64_MAX - page || ptr > UINT64_MAX - page - len)
        return cmn_err_set(err, -EINVAL, "the range wraps around");
    lc_cudeviceptr end = (ptr + len + page - 1) & ~(lc_cudeviceptr)(page - 1);
    lc_cudeviceptr start = 0;
    size_t range = 0;
    if (cu->cuPointerGetAttribute(&start, LC_CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, ptr) == 0 &&
        cu->cuPointerGetAttribute(&range, LC_CU_POINTER_ATTRIBUTE_RANGE_SIZE, ptr) == 0 &&
        (first < start || end - start > range))
        return cmn_err_set(err, -EINVAL,
                           "the buffer's pages reach outside its CUDA allocation; allocate it "
                           "page-aligned (cuMemAlloc does) to register it for RDMA");
    r = cu->cuCtxPushCurrent(ctx);
    if (r != 0)
        return lc_cuda_fail(cu, r, "cuCtxPushCurrent", err);
    int fd = -1;
    r = cu->cuMemGetHandleForAddressRange(&fd, first, (size_t)(end - first),
                                          LC_CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0);
    lc_cucontext popped;
    cu->cuCtxPopCurrent(&popped);
    if (r != 0)
        return lc_cuda_fail(cu, r, "cuMemGetHandleForAddressRange(DMA_BUF_FD)", err);
    if (fd < 0)
        return cmn_err_set(err, LODE_ERR_CUDA, "the driver returned no dma-buf descriptor");
    out->fd = fd;
    out->offset = ptr - first;
    out->len = (size_t)(end - first);
    return 0;
}

/* ---- staging ---- */

enum { SLOT_FREE, SLOT_LENT, SLOT_COPYING };

static int stage_fail(struct lc_cuda_stage *st, lc_curesult r, const char *what)
{
    if (!st->rc)
        st->rc = lc_cuda_fail(st->cu, r, what, &st->err);
    return st->rc;
}

static bool push(struct lc_cuda_stage *st)
{
    lc_curesult r = st->cu->cuCtxPushCurrent(st->ctx);
    if (r)
        stage_fail(st, r, "cuCtxPushCurrent");
    return r == 0;
}

static void pop(struct lc_cuda_stage *st)
{
    lc_cucontext c;
    st->cu->cuCtxPopCurrent(&c);
}

/* Adds a slot; the context is current. */
static int add_slot(struct lc_cuda_stage *st)
{
    unsigned i = st->n_slots;
    if (i == LC_CUDA_SLOTS_MAX)
        return -ENOSPC;
    lc_curesult r = st->cu->cuMemHostAlloc(&st->slot[i].mem, LC_CUDA_SLOT_SIZE,
                                           LC_CU_MEMHOSTALLOC_PORTABLE);
    if (r)
        return stage_fail(st, r, "cuMemHostAlloc");
    r = st->cu->cuEventCreate(&st->slot[i].done, LC_CU_EVENT_DISABLE_TIMING);
    if (r) {
        st->cu->cuMemFreeHost(st->slot[i].mem);
        return stage_fail(st, r, "cuEventCreate");
    }
    st->slot[i].state = SLOT_FREE;
    st->n_slots++;
    return 0;
}

int lc_cuda_stage_init(struct lc_cuda_stage *st, const struct lc_cuda *cu, lc_cucontext ctx,
                       lc_cudeviceptr dst, uint64_t cap, struct cmn_err *err)
{
    memset(st, 0, sizeof(*st));
    st->cu = cu;
    st->ctx = ctx;
    st->dst = dst;
    st->cap = cap;
    if (!push(st))
        goto fail;
    lc_curesult r = cu->cuStreamCreate(&st->stream, LC_CU_STREAM_NON_BLOCKING);
    if (r)
        stage_fail(st, r, "cuStreamCreate");
    /* Two slots to start with: one being filled while the other is copied. More come when
     * several connections are mid-frame at once. */
    for (int i = 0; i < 2 && !st->rc; i++)
        add_slot(st);
    pop(st);
    if (!st->rc)
        return 0;
fail:
    if (err)
        *err = st->err;
    lc_cuda_stage_finish(st, NULL);
    return err ? err->code : LODE_ERR_CUDA;
}

int lc_cuda_stage_finish(struct lc_cuda_stage *st, struct cmn_err *err)
{
    bool pushed = st->cu && st->cu->cuCtxPushCurrent(st->ctx) == 0;
    if (pushed) {
        if (st->stream) {
            lc_curesult r = st->cu->cuStreamSynchronize(st->stream);
            if (r)
                stage_fail(st, r, "cuStreamSynchronize");
            st->cu->cuStreamDestroy(st->stream);
        }
        for (unsigned i = 0; i < st->n_slots; i++) {
            st->cu->cuEventDestroy(st->slot[i].done);
            st->cu->cuMemFreeHost(st->slot[i].mem);
        }
        pop(st);
    } else if (st->cu && !st->rc) {
        st->rc = cmn_err_set(&st->err, LODE_ERR_CUDA, "cannot make the CUDA context current");
    }
    st->n_slots = 0;
    st->stream = NULL;
    if (err && st->rc)
        *err = st->err;
    return st->rc;
}

/* A free slot (waiting for the oldest copy when all are copying); the context is current. */
static int take_slot(struct lc_cuda_stage *st)
{
    for (unsigned i = 0; i < st->n_slots; i++)
        if (st->slot[i].state == SLOT_FREE)
            return (int)i;
    if (st->n_slots < LC_CUDA_SLOTS_MAX && st->n_slots < 4) {
        if (add_slot(st) == 0)
            return (int)st->n_slots - 1;
        return -1;
    }
    for (unsigned i = 0; i < st->n_slots; i++)
        if (st->slot[i].state == SLOT_COPYING) {
            lc_curesult r = st->cu->cuEventSynchronize(st->slot[i].done);
            if (r) {
                stage_fail(st, r, "cuEventSynchronize");
                return -1;
            }
            st->slot[i].state = SLOT_FREE;
            return (int)i;
        }
    /* Every slot is lent (many connections mid-frame): grow. */
    if (add_slot(st) == 0)
        return (int)st->n_slots - 1;
    if (!st->rc)
        st->rc = cmn_err_set(&st->err, LODE_ERR_CUDA, "out of staging slots");
    return -1;
}

static int slot_index(const struct lc_cuda_stage *st, const void *mem)
{
    for (unsigned i = 0; i < st->n_slots; i++)
        if (st->slot[i].mem == mem)
            return (int)i;
    return -1;
}

static void *lend(struct lc_cuda_stage *st, uint64_t off, size_t len, size_t *cap)
{
    if (st->rc || off >= st->cap || !push(st))
        return NULL;
    int i = take_slot(st);
    pop(st);
    if (i < 0)
        return NULL;
    st->slot[i].state = SLOT_LENT;
    size_t n = len < LC_CUDA_SLOT_SIZE ? len : LC_CUDA_SLOT_SIZE;
    if (n > st->cap - off)
        n = (size_t)(st->cap - off);
    *cap = n;
    return st->slot[i].mem;
}

static int copy_in(struct lc_cuda_stage *st, void *slot, uint64_t off, size_t len)
{
    int i = slot_index(st, slot);
    if (i < 0)
        return LODE_EINTERNAL;
    if (st->rc || !push(st)) {
        st->slot[i].state = SLOT_FREE;
        return st->rc;
    }
    lc_curesult r = st->cu->cuMemcpyHtoDAsync(st->dst + off, slot, len, st->stream);
    if (r == 0)
        r = st->cu->cuEventRecord(st->slot[i].done, st->stream);
    pop(st);
    if (r) {
        st->slot[i].state = SLOT_FREE;
        return stage_fail(st, r, "cuMemcpyHtoDAsync");
    }
    st->slot[i].state = SLOT_COPYING;
    return 0;
}

static void *dp_get_slot(void *data, uint64_t off, size_t len, size_t *cap)
{
    return lend(data, off, len, cap);
}

static void dp_commit_slot(void *data, void *slot, uint64_t off, size_t len)
{
    copy_in(data, slot, off, len);
}

static void dp_drop_slot(void *data, void *slot)
{
    struct lc_cuda_stage *st = data;
    int i = slot_index(st, slot);
    if (i >= 0)
        st->slot[i].state = SLOT_FREE;
}

void lc_cuda_stage_dp_sink(struct lc_cuda_stage *st, struct lc_dp_sink *sink)
{
    sink->get_slot = dp_get_slot;
    sink->commit_slot = dp_commit_slot;
    sink->drop_slot = dp_drop_slot;
    sink->data = st;
}

/* HTTP bodies arrive in order, so the slot lent last is the one committed next. */
static void *http_space(void *data, uint64_t off, size_t *n, int *rc)
{
    struct lc_cuda_stage *st = data;
    size_t cap;
    void *p = lend(st, off, *n, &cap);
    if (!p) {
        *rc = st->rc ? st->rc : LODE_ETOOLARGE;
        return NULL;
    }
    *n = cap;
    st->http_slot = slot_index(st, p);
    return p;
}

static int http_commit(void *data, uint64_t off, size_t n)
{
    struct lc_cuda_stage *st = data;
    int i = st->http_slot;
    st->http_slot = -1;
    if (st->rc)
        return st->rc;
    if (i < 0 || (unsigned)i >= st->n_slots)
        return LODE_EINTERNAL;
    return copy_in(st, st->slot[i].mem, off, n);
}

void lc_cuda_stage_http_sink(struct lc_cuda_stage *st, struct lc_http_sink *sink)
{
    sink->space = http_space;
    sink->commit = http_commit;
    sink->data = st;
}

static const void *src_get(void *data, uint64_t off, size_t *n, int *rc)
{
    struct lc_cuda_stage *st = data;
    if (st->rc || off >= st->cap || st->n_slots == 0 || !push(st)) {
        *rc = st->rc ? st->rc : LODE_EINTERNAL;
        return NULL;
    }
    size_t len = *n < LC_CUDA_SLOT_SIZE ? *n : LC_CUDA_SLOT_SIZE;
    if (len > st->cap - off)
        len = (size_t)(st->cap - off);
    lc_curesult r = st->cu->cuMemcpyDtoH(st->slot[0].mem, st->dst + off, len);
    pop(st);
    if (r) {
        *rc = stage_fail(st, r, "cuMemcpyDtoH");
        return NULL;
    }
    *n = len;
    return st->slot[0].mem;
}

void lc_cuda_stage_http_source(struct lc_cuda_stage *st, struct lc_http_source *src)
{
    src->get = src_get;
    src->data = st;
}
