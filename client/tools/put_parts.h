/* lode-put's multipart uploads (put_parts.c). Only the public liblode API is used. */
#ifndef LODE_CLIENT_TOOLS_PUT_PARTS_H
#define LODE_CLIENT_TOOLS_PUT_PARTS_H

#include <stdbool.h>
#include <stdint.h>

#include "client/tools/tool.h"

#define PUT_PARTS_MAX_JOBS 64

struct put_parts_args {
    const char *prog, *name;       /* for messages: the tool, the input */
    const char *bucket, *key, *content_type;
    const uint8_t *data;           /* the input in memory, or NULL: read `fd` with pread */
    lode_buf *reg;                 /* `data` registered as host memory: parts go straight
                                      from it (no per-part buffer, no copy); or NULL */
    int fd;
    uint64_t len;                  /* input bytes (> 0) */
    uint64_t part_size;            /* every part but the last */
    unsigned jobs;                 /* parts in flight, 1..PUT_PARTS_MAX_JOBS */
    bool cuda;                     /* parts go through device memory */
    bool progress;
};

/* Uploads the input in parts. Returns 0 with res from the completion (bytes, transport, a
 * part's fallback), or a failure code with res' message set (the upload was aborted);
 * *exit_code is the tool's exit code either way. */
int put_parts(lode_client *c, const struct put_parts_args *a, struct lode_result *res,
              int *exit_code);

/* Reads the object back part by part with pc (plain ranged GETs) and compares with the
 * input, and each answer's ETag with `etag`. Returns TOOL_OK or an exit code (message
 * printed). */
int put_parts_verify(lode_client *pc, const struct put_parts_args *a, const char *etag);

#endif
