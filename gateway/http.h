/* HTTP/1.1 request parsing and response-head formatting for the gateway, without I/O.
 *
 * The parser wraps llhttp in strict mode (no lenient flag is ever set). It is fed the bytes
 * read from one connection, split anywhere, and reports one event at a time:
 *
 *   HEAD  the request line and headers are complete: gw_http_request() describes them;
 *   BODY  a slice of the decoded body (chunked framing removed; Content-Length bodies pass
 *         through), pointing into the bytes just fed;
 *   END   the request is complete; the parser then stops (pipelined bytes stay unconsumed)
 *         until gw_http_next() says the response is done;
 *   ERROR the input is not acceptable HTTP; gw_http_error() says why (an S3 error code and
 *         a short message). The connection cannot be reused: answer and close.
 *
 * The head is copied into a per-parser arena, so its pointers stay valid while the body
 * streams, until gw_http_next() or gw_http_parser_destroy(). The arena is bounded by
 * max_header_bytes and the header table by max_headers.
 *
 * Refused on purpose (request smuggling and framing ambiguity): Content-Length together
 * with Transfer-Encoding, repeated Content-Length, a Transfer-Encoding other than exactly
 * "chunked", Transfer-Encoding in an HTTP/1.0 request, obs-fold, whitespace before the
 * colon, control characters in names or values, a missing or repeated Host in HTTP/1.1,
 * HTTP versions other than 1.x. HTTP trailers after a chunked body are parsed, counted
 * against the header limits, and dropped (S3 carries its trailers inside aws-chunked
 * bodies, not as HTTP trailers).
 *
 * Thread-safety: a parser is used by one thread at a time. The formatting functions are
 * pure and thread-safe.
 */
#ifndef LODE_GATEWAY_HTTP_H
#define LODE_GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "gateway/gw_types.h"
#include "gateway/s3_error.h"

/* Limits on what one request head may cost. Zero fields take the defaults. */
struct gw_http_limits {
    size_t max_header_bytes;       /* request line + headers + blank line (default 64 KiB) */
    size_t max_request_line;       /* method + request-target (default 16 KiB) */
    unsigned max_headers;          /* header fields, trailers counted too (default 200) */
};

#define GW_HTTP_DEFAULT_MAX_HEADER_BYTES (64u << 10)
#define GW_HTTP_DEFAULT_MAX_REQUEST_LINE (16u << 10)
#define GW_HTTP_DEFAULT_MAX_HEADERS 200u

/* What the gateway needs to know about a request beyond its head. Valid from the HEAD event
 * until gw_http_next(). */
struct gw_http_request {
    struct gw_request_head head;   /* method, target, path, query, headers (values trimmed) */
    unsigned http_minor;           /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    bool keep_alive;               /* the client allows another request on the connection */
    bool expect_continue;          /* HTTP/1.1 with "Expect: 100-continue" */
    bool chunked;                  /* Transfer-Encoding: chunked */
    bool has_content_length;
    uint64_t content_length;       /* when has_content_length */
    bool has_body;                 /* chunked, or a Content-Length above zero */
};

enum gw_http_event {
    GW_HTTP_EV_NONE,               /* everything fed was consumed (or the parser waits) */
    GW_HTTP_EV_HEAD,
    GW_HTTP_EV_BODY,
    GW_HTTP_EV_END,
    GW_HTTP_EV_ERROR,
};

struct gw_http_ev {
    enum gw_http_event type;
    const uint8_t *data;           /* BODY: decoded bytes inside the buffer given to feed */
    size_t len;
};

enum gw_http_state {
    GW_HTTP_S_IDLE,                /* between requests: no byte of the next one yet */
    GW_HTTP_S_HEAD,                /* inside a request head */
    GW_HTTP_S_BODY,                /* HEAD reported, END not yet */
    GW_HTTP_S_DONE,                /* END reported; waiting for gw_http_next() */
    GW_HTTP_S_CLOSED,              /* no further request may follow (upgrade, CONNECT) */
    GW_HTTP_S_ERROR,               /* ERROR reported; the parser is dead */
};

struct gw_http_error {
    enum gw_s3_error code;         /* BAD_REQUEST, REQUEST_HEADER_TOO_LARGE, INVALID_URI, ... */
    const char *msg;               /* short, printable; owned by the parser */
};

struct gw_http_parser;

/* Fills zero fields of *lim with the defaults. */
void gw_http_limits_default(struct gw_http_limits *lim);

/* Creates a parser with the given limits (NULL or zero fields: defaults; copied). Returns
 * 0 or -ENOMEM. Free with gw_http_parser_destroy(). */
int gw_http_parser_create(const struct gw_http_limits *lim, struct gw_http_parser **out);
void gw_http_parser_destroy(struct gw_http_parser *p);

/* Consumes a prefix of data[0..len) and reports at most one event in *ev. Returns the
 * number of bytes consumed; the caller feeds the rest again (after acting on the event).
 * A return of 0 with GW_HTTP_EV_NONE means the parser waits: for gw_http_next() in DONE,
 * forever in CLOSED and ERROR. BODY slices point into `data` and are valid as long as the
 * caller keeps those bytes. Never fails otherwise: bad input gives GW_HTTP_EV_ERROR. */
size_t gw_http_feed(struct gw_http_parser *p, const void *data, size_t len,
                    struct gw_http_ev *ev);

/* The peer closed its sending side. Reports ERROR when a request was cut short (INCOMPLETE_BODY
 * inside a body, BAD_REQUEST inside a head), NONE otherwise. */
void gw_http_eof(struct gw_http_parser *p, struct gw_http_ev *ev);

/* After END: forget the request (its head pointers become invalid) and parse the next. In
 * other states: no effect. */
void gw_http_next(struct gw_http_parser *p);

enum gw_http_state gw_http_state(const struct gw_http_parser *p);

/* The current request: non-NULL from HEAD until gw_http_next(), also in the ERROR state
 * when the error came inside the body (the caller may still answer it). */
const struct gw_http_request *gw_http_request(const struct gw_http_parser *p);

/* Why the parser refused the input: valid in the ERROR state, owned by the parser. */
const struct gw_http_error *gw_http_error(const struct gw_http_parser *p);

/* Bytes the parser holds for the current head (arena and header table), for accounting. */
size_t gw_http_memory(const struct gw_http_parser *p);

/* ---- Responses ---- */

#define GW_HTTP_LEN_CHUNKED (-1)   /* body length unknown: chunked (close-delimited for 1.0) */
#define GW_HTTP_LEN_NONE (-2)      /* no body and no Content-Length (1xx, 204, 304) */

enum gw_http_framing {
    GW_HTTP_FRAME_NONE,            /* no body bytes may follow */
    GW_HTTP_FRAME_LENGTH,          /* exactly content_length bytes follow */
    GW_HTTP_FRAME_CHUNKED,         /* chunks (gw_http_chunk_header), then GW_HTTP_LAST_CHUNK */
    GW_HTTP_FRAME_CLOSE,           /* bytes until the connection closes (HTTP/1.0 client) */
};

struct gw_http_response {
    int status;                    /* 100..599 */
    const struct gw_header *headers; /* extra headers; must not include Content-Length,
                                        Transfer-Encoding, Connection or Date */
    size_t n_headers;
    int64_t content_length;        /* >= 0, GW_HTTP_LEN_CHUNKED or GW_HTTP_LEN_NONE */
    bool head_request;             /* answering HEAD: headers as for GET, no body follows */
    bool close;                    /* the connection closes after this response */
    unsigned request_minor;        /* the request's HTTP minor version (0 or 1) */
    int64_t date_s;                /* Unix time for the Date header, from the caller */
};

#define GW_HTTP_CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"
#define GW_HTTP_LAST_CHUNK "0\r\n\r\n"
#define GW_HTTP_DATE_SIZE 30       /* "Sun, 06 Nov 1994 08:49:37 GMT" + NUL */
#define GW_HTTP_CHUNK_HEADER_SIZE 19 /* 16 hex digits + CRLF + NUL */

/* Appends the status line, Date, the caller's headers, the framing headers and the blank
 * line to out. *framing (may be NULL) says how the body must be sent. The response to an
 * HTTP/1.0 request says "Connection: keep-alive" when it stays open, and is close-delimited
 * when its length is unknown (chunked is 1.1-only); such a response forces close. Returns 0,
 * -EINVAL for a status out of range or a header that is not a token name with a value free
 * of CR, LF, NUL and other controls, or one the formatter owns (out unchanged), or -ENOMEM. */
int gw_http_format_head(const struct gw_http_response *r, struct cmn_buf *out,
                        enum gw_http_framing *framing);

/* The reason phrase for a status ("OK", "Not Found"; "Unknown" for unlisted codes).
 * Static. */
const char *gw_http_reason(int status);

/* The IMF-fixdate of RFC 9110 for a Unix time: "Sun, 06 Nov 1994 08:49:37 GMT". Times
 * before 1970 or after 9999 are clamped. */
void gw_http_format_date(int64_t unix_s, char out[GW_HTTP_DATE_SIZE]);

/* The line that starts a chunk of n bytes ("1f40\r\n"); returns its length. */
size_t gw_http_chunk_header(uint64_t n, char out[GW_HTTP_CHUNK_HEADER_SIZE]);

#endif
