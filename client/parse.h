/* liblode's parsers of what a gateway sends back: numbers and ranges in response headers,
 * the fan-out reply headers (x-amz-rdma-reply, x-lode-sources), the session document of
 * `POST /?x-lode-session`, and S3 error documents. Also the "host:port" splitter.
 *
 * Everything here is pure: no I/O, no global state, thread-safe. Inputs are byte strings
 * with a length (no NUL needed); every parser has explicit limits and answers a malformed
 * input with -EINVAL (or LODE_EBADMSG for documents) and a message, never a crash.
 */
#ifndef LODE_CLIENT_PARSE_H
#define LODE_CLIENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Limits of the session document: sources listed, host name bytes, the document itself. */
#define LC_SESSION_MAX_SOURCES 4096
#define LC_HOST_MAX 255
#define LC_SESSION_DOC_MAX (1024 * 1024)
#define LC_ACCESS_KEY_MAX 128

/* A strict decimal u64: 1..20 digits, no sign, no spaces, no overflow. Returns 0 or -EINVAL. */
int lc_parse_u64(const char *s, size_t n, uint64_t *out);

/* Content-Range of a 206 ("bytes FIRST-LAST/TOTAL", or with '*' for an unknown TOTAL) or of
 * a 416 ("bytes *" then "/TOTAL"). first <= last < total when total is known.
 * *total is UINT64_MAX for '*'; for the 416 form *first = *last = UINT64_MAX. Returns 0 or
 * -EINVAL. */
int lc_parse_content_range(const char *s, size_t n, uint64_t *first, uint64_t *last,
                              uint64_t *total);

/* x-amz-rdma-reply: a 3-digit decimal status ("200", "206", "501", ...). Returns the value
 * (100..599) or -EINVAL for anything else (the legacy "ok"/"err" forms included: lode's
 * gateway always sends decimals). */
int lc_parse_rdma_reply(const char *s, size_t n);

/* One entry of x-lode-sources: what a data source reported as sent for this request. */
struct lc_src_bytes {
    uint32_t id;
    uint64_t bytes;
};

/* x-lode-sources: "ID=BYTES,ID=BYTES,..." (decimal; optional spaces or tabs around the
 * commas; "" is an empty list). Ids are unique. At most `cap` entries. Returns 0 and
 * *n_out, or -EINVAL (syntax, duplicate id, more than cap entries). */
int lc_parse_sources(const char *s, size_t n, struct lc_src_bytes *out, size_t cap,
                        size_t *n_out);

/* Splits "host:port", "[v6addr]:port". host gets the name without brackets (NUL-terminated,
 * at most cap-1 bytes); port 1..65535. Returns 0 or -EINVAL. */
int lc_split_hostport(const char *s, size_t n, char *host, size_t cap, uint16_t *port);

/* One data endpoint of a session. */
struct lc_session_src {
    uint32_t id;                   /* a node's nid, or 0x80000000|worker for a gateway */
    bool has_tcp, has_rc;
    uint16_t tcp_port, rc_port;
    char tcp_host[LC_HOST_MAX + 1];
    char rc_host[LC_HOST_MAX + 1];
};

/* The session document (fanout contract, "Session request/response"). */
struct lc_session {
    uint8_t sid[16];
    uint64_t expires_ms;
    uint8_t mac[32];
    char access_key[LC_ACCESS_KEY_MAX + 1];
    struct lc_session_src *src; /* malloc'd, n_src entries */
    size_t n_src;
};

/* Parses
 *   <LodeSession><Sid>32 hex</Sid><Expires>ms</Expires><Mac>64 hex</Mac>
 *     <AccessKey>AK</AccessKey><Source><Id>u32</Id><Tcp>host:port</Tcp><Rc>host:port</Rc>
 *     </Source>...</LodeSession>
 * with an optional XML declaration, whitespace between elements, comments, the five
 * predefined entities and numeric references; DOCTYPE and processing instructions are
 * refused. Unknown elements are skipped (bounded like the rest). Every field is required
 * once; each Source needs a unique Id and at least one of Tcp, Rc. Returns 0 and fills *out
 * (release with lc_session_free), or LODE_EBADMSG / -ENOMEM with a message; *out is then
 * empty. */
int lc_session_parse(const char *doc, size_t n, struct lc_session *out,
                        struct cmn_err *err);

void lc_session_free(struct lc_session *s);

/* The Code and Message of an S3 error document (<Error><Code>..</Code><Message>..</Message>
 * </Error>), each truncated to its buffer and reduced to printable ASCII. Missing ones are
 * "". Returns 0, or LODE_EBADMSG when the body is not such a document (both then ""). */
int lc_s3_error_parse(const char *doc, size_t n, char *code, size_t code_cap, char *msg,
                         size_t msg_cap);

/* The text of the child `field` of the root element `root` of a result document
 * (<InitiateMultipartUploadResult>..<UploadId>ID</UploadId>..): exactly one such child,
 * 1..cap-1 printable ASCII bytes (never truncated). Other children are skipped. Returns 0,
 * or LODE_EBADMSG (another root, the field missing, repeated, empty, too long or not
 * printable, a malformed document; out is then ""), -ENOMEM. */
int lc_s3_result_field(const char *doc, size_t n, const char *root, const char *field,
                       char *out, size_t cap);

#endif
