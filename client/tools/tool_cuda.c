/* Device memory for lode-get and lode-put, through the CUDA driver loaded at run time (the
 * tools, like liblode, start on hosts without CUDA). A process-wide driver table: the tools
 * are single-threaded programs. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

#include "client/tools/tool.h"

typedef int cu_result;
typedef unsigned long long cu_ptr;

static struct {
    void *dl;
    cu_result (*init)(unsigned);
    cu_result (*device_get)(int *, int);
    cu_result (*device_count)(int *);
    cu_result (*ctx_retain)(void **, int);
    cu_result (*ctx_set)(void *);
    cu_result (*mem_alloc)(cu_ptr *, size_t);
    cu_result (*mem_free)(cu_ptr);
    cu_result (*htod)(cu_ptr, const void *, size_t);
    cu_result (*dtoh)(void *, cu_ptr, size_t);
} cu;

static void *sym(const char *name, int *missing)
{
    void *p = dlsym(cu.dl, name);
    if (!p)
        (*missing)++;
    return p;
}

int tool_cuda_init(const char **why)
{
    static char msg[256];
    if (cu.dl)
        return 0;
    void *dl = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(msg, sizeof(msg), "CUDA driver not available: %s", dlerror());
        *why = msg;
        return -1;
    }
    cu.dl = dl;
    int missing = 0;
    *(void **)&cu.init = sym("cuInit", &missing);
    *(void **)&cu.device_get = sym("cuDeviceGet", &missing);
    *(void **)&cu.device_count = sym("cuDeviceGetCount", &missing);
    *(void **)&cu.ctx_retain = sym("cuDevicePrimaryCtxRetain", &missing);
    *(void **)&cu.ctx_set = sym("cuCtxSetCurrent", &missing);
    *(void **)&cu.mem_alloc = sym("cuMemAlloc_v2", &missing);
    *(void **)&cu.mem_free = sym("cuMemFree_v2", &missing);
    *(void **)&cu.htod = sym("cuMemcpyHtoD_v2", &missing);
    *(void **)&cu.dtoh = sym("cuMemcpyDtoH_v2", &missing);
    int n = 0, dev = 0;
    void *ctx = NULL;
    cu_result r = 1;
    if (!missing && (r = cu.init(0)) == 0 && (r = cu.device_count(&n)) == 0 && n > 0 &&
        (r = cu.device_get(&dev, 0)) == 0 && (r = cu.ctx_retain(&ctx, dev)) == 0)
        r = cu.ctx_set(ctx);
    if (missing || r != 0 || n == 0) {
        snprintf(msg, sizeof(msg), "%s", missing ? "CUDA driver lacks an entry point"
                                         : n == 0 && r == 0 ? "no CUDA device"
                                                            : "CUDA initialisation failed");
        *why = msg;
        dlclose(dl);
        cu.dl = NULL;
        return -1;
    }
    return 0;
}

int tool_cuda_alloc(void **dptr, size_t size)
{
    cu_ptr p = 0;
    if (cu.mem_alloc(&p, size) != 0)
        return -1;
    *dptr = (void *)(uintptr_t)p;
    return 0;
}

void tool_cuda_free(void *dptr)
{
    if (dptr)
        cu.mem_free((cu_ptr)(uintptr_t)dptr);
}

int tool_cuda_htod(void *dptr, const void *src, size_t n)
{
    return cu.htod((cu_ptr)(uintptr_t)dptr, src, n) == 0 ? 0 : -1;
}

int tool_cuda_dtoh(void *dst, const void *dptr, size_t n)
{
    return cu.dtoh(dst, (cu_ptr)(uintptr_t)dptr, n) == 0 ? 0 : -1;
}
