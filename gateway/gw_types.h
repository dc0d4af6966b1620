/* Small types shared by the gateway's I/O-free modules (HTTP parsing, SigV4, S3 routing), so
 * that none of them depends on another's internals. */
#ifndef LODE_GATEWAY_GW_TYPES_H
#define LODE_GATEWAY_GW_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* A borrowed byte string: not NUL-terminated unless said otherwise; valid as long as the
 * buffer it points into (a parsed request keeps its own). */
struct gw_str {
    const char *p;
    size_t n;
};

#define GW_STR(lit) ((struct gw_str){.p = (lit), .n = sizeof(lit) - 1})

/* One request header, name and value as received (the value without surrounding
 * whitespace). Names compare case-insensitively; a name may repeat. */
struct gw_header {
    struct gw_str name;
    struct gw_str value;
};

/* What the HTTP layer hands to everything above it: the request line and the headers. All
 * pointers borrow from the parser's buffer and stay valid until the response is finished. */
struct gw_request_head {
    struct gw_str method;          /* "GET", "PUT", ... */
    struct gw_str target;          /* the request-target as sent: raw path, '?', raw query */
    struct gw_str path;            /* target up to '?' (still percent-encoded) */
    struct gw_str query;           /* after '?' (still percent-encoded), empty when none */
    const struct gw_header *headers;
    size_t n_headers;
};

static inline bool gw_str_eq(struct gw_str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.n == n && memcmp(a.p, lit, n) == 0;
}

static inline bool gw_str_ieq(struct gw_str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.n == n && strncasecmp(a.p, lit, n) == 0;
}

/* The first header named `name` (case-insensitive), or NULL. */
static inline const struct gw_header *gw_header_find(const struct gw_request_head *h,
                                                     const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (gw_str_ieq(h->headers[i].name, name))
            return &h->headers[i];
    return NULL;
}

#endif
