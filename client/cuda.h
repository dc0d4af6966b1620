/* The CUDA driver API, loaded at run time: liblode has no link-time dependency on CUDA and
 * no cuda.h in its build, so one binary runs on hosts with and without GPUs.
 *
 * lc_cuda_load() dlopens libcuda.so.1 (or the library named by $LODE_CUDA_DRIVER: a driver
 * installed elsewhere, or the tests' fake), resolves every entry point through cuGetProcAddress
 * (falling back to dlsym of the versioned names on drivers without it) and calls cuInit.
 * The handful of types and constants used are declared here (ABI-stable values of the
 * driver API).
 *
 * Staging (struct lc_cuda_stage): device memory is reached through pinned host slots; bytes
 * received into a slot are copied to the device with cuMemcpyHtoDAsync on the stage's own
 * stream, and a slot is lent again only once its copy has completed (an event per slot).
 * The stage pushes the buffer's context around every driver call, so it works from any
 * thread (the tcp receive thread included).
 */
#ifndef LODE_CLIENT_CUDA_H
#define LODE_CLIENT_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/dp_recv.h"
#include "client/http.h"
#include "common/err.h"

typedef int lc_curesult;                 /* CUresult: 0 is CUDA_SUCCESS */
typedef unsigned long long lc_cudeviceptr; /* CUdeviceptr */
typedef struct lc_cuctx_st *lc_cucontext;
typedef struct lc_custream_st *lc_custream;
typedef struct lc_cuevent_st *lc_cuevent;

#define LC_CUDA_ERROR_NO_DEVICE 100
#define LC_CUDA_ERROR_NOT_READY 600

/* The driver entry points liblode and its tools use. */
struct lc_cuda {
    void *dl;
    int driver_version;
    lc_curesult (*cuInit)(unsigned);
    lc_curesult (*cuDriverGetVersion)(int *);
    lc_curesult (*cuDeviceGetCount)(int *);
    lc_curesult (*cuDeviceGet)(int *, int);
    lc_curesult (*cuDevicePrimaryCtxRetain)(lc_cucontext *, int);
    lc_curesult (*cuDevicePrimaryCtxRelease)(int);
    lc_curesult (*cuCtxSetCurrent)(lc_cucontext);
    lc_curesult (*cuCtxGetCurrent)(lc_cucontext *);
    lc_curesult (*cuCtxPushCurrent)(lc_cucontext);
    lc_curesult (*cuCtxPopCurrent)(lc_cucontext *);
    lc_curesult (*cuPointerGetAttribute)(void *, int, lc_cudeviceptr);
    lc_curesult (*cuMemAlloc)(lc_cudeviceptr *, size_t);
    lc_curesult (*cuMemFree)(lc_cudeviceptr);
    lc_curesult (*cuMemHostAlloc)(void **, size_t, unsigned);
    lc_curesult (*cuMemFreeHost)(void *);
    lc_curesult (*cuMemcpyHtoD)(lc_cudeviceptr, const void *, size_t);
    lc_curesult (*cuMemcpyDtoH)(void *, lc_cudeviceptr, size_t);
    lc_curesult (*cuMemcpyHtoDAsync)(lc_cudeviceptr, const void *, size_t, lc_custream);
    lc_curesult (*cuMemsetD8)(lc_cudeviceptr, unsigned char, size_t);
    lc_curesult (*cuStreamCreate)(lc_custream *, unsigned);
    lc_curesult (*cuStreamSynchronize)(lc_custream);
    lc_curesult (*cuStreamDestroy)(lc_custream);
    lc_curesult (*cuEventCreate)(lc_cuevent *, unsigned);
    lc_curesult (*cuEventRecord)(lc_cuevent, lc_custream);
    lc_curesult (*cuEventSynchronize)(lc_cuevent);
    lc_curesult (*cuEventDestroy)(lc_cuevent);
    lc_curesult (*cuGetErrorString)(lc_curesult, const char **);
    lc_curesult (*cuDeviceGetAttribute)(int *, int, int);
    /* Optional (CUDA 11.7 and later): NULL on older drivers. */
    lc_curesult (*cuMemGetHandleForAddressRange)(void *, lc_cudeviceptr, size_t, int,
                                                 unsigned long long);
};

/* Loads the driver into *cu (zeroed first). Returns 0, or LODE_ERR_NO_CUDA when
 * libcuda.so.1 cannot be loaded, lacks an entry point, or finds no device (the message
 * says which), LODE_ERR_CUDA when cuInit fails otherwise. Thread-safe (no shared state). */
int lc_cuda_load(struct lc_cuda *cu, struct cmn_err *err);

/* dlcloses the driver. Safe on a zeroed or failed struct. */
void lc_cuda_unload(struct lc_cuda *cu);

/* Sets err to LODE_ERR_CUDA with "<what>: <driver's text> (code)". Returns LODE_ERR_CUDA. */
int lc_cuda_fail(const struct lc_cuda *cu, lc_curesult r, const char *what, struct cmn_err *err);

/* Checks that [ptr, ptr+size) is device memory of one allocation and returns its context.
 * Returns 0, -EINVAL (not device memory, or the range leaves its allocation), or
 * LODE_ERR_CUDA. */
int lc_cuda_check_ptr(const struct lc_cuda *cu, lc_cudeviceptr ptr, size_t size,
                      lc_cucontext *ctx, struct cmn_err *err);

/* Device memory exported for RDMA registration (ibv_reg_dmabuf_mr): the dma-buf covers the
 * host pages around [ptr, ptr + len); the buffer starts `offset` bytes into it. */
struct lc_cuda_dmabuf {
    int fd;                        /* owned by the caller: close it once registered */
    uint64_t offset;
    size_t len;                    /* of the exported range (page multiple) */
};

/* Exports [ptr, ptr + len) of device memory (of context ctx) as a dma-buf. The driver wants
 * host-page-aligned ranges, so the exported range is widened to whole pages, which must still
 * lie inside the allocation. Returns 0 and *out, or: -EOPNOTSUPP with a message when the
 * driver is too old (no cuMemGetHandleForAddressRange) or the device cannot export dma-bufs
 * (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED is 0: e.g. the proprietary kernel module), -EINVAL
 * (not device memory, or the widened range leaves the allocation), LODE_ERR_CUDA. */
int lc_cuda_dmabuf_export(const struct lc_cuda *cu, lc_cucontext ctx, lc_cudeviceptr ptr,
                          size_t len, struct lc_cuda_dmabuf *out, struct cmn_err *err);

#define LC_CUDA_SLOT_SIZE (4u * 1024 * 1024)
#define LC_CUDA_SLOTS_MAX 32

/* One request's staging into (or out of) device memory [dst, dst + cap). */
struct lc_cuda_stage {
    const struct lc_cuda *cu;
    lc_cucontext ctx;
    lc_custream stream;
    lc_cudeviceptr dst;
    uint64_t cap;
    int rc;                        /* first failure, sticky */
    struct cmn_err err;
    unsigned n_slots;
    int http_slot;                 /* HTTP sink: the slot lent last, committed next */
    struct {
        void *mem;                 /* pinned host memory, LC_CUDA_SLOT_SIZE bytes */
        lc_cuevent done;           /* recorded after the slot's copy */
        int state;                 /* free, lent, copying */
    } slot[LC_CUDA_SLOTS_MAX];
};

/* Prepares a stage (a stream and the first slots). Returns 0, or LODE_ERR_CUDA / -ENOMEM
 * with a message; on failure the stage needs no finish. */
int lc_cuda_stage_init(struct lc_cuda_stage *st, const struct lc_cuda *cu, lc_cucontext ctx,
                       lc_cudeviceptr dst, uint64_t cap, struct cmn_err *err);

/* Waits for every copy issued, frees slots, events and the stream. Returns the stage's
 * sticky error (0 when every copy succeeded), with its message in err. */
int lc_cuda_stage_finish(struct lc_cuda_stage *st, struct cmn_err *err);

/* The stage as a dp_recv sink (window offsets = offsets from dst). */
void lc_cuda_stage_dp_sink(struct lc_cuda_stage *st, struct lc_dp_sink *sink);

/* The stage as an HTTP body sink (body offset o goes to dst + o). */
void lc_cuda_stage_http_sink(struct lc_cuda_stage *st, struct lc_http_sink *sink);

/* The stage as an HTTP body source for a PUT: body offset o comes from dst + o (copied to a
 * pinned slot synchronously). */
void lc_cuda_stage_http_source(struct lc_cuda_stage *st, struct lc_http_source *src);

#endif
