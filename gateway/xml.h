/* A small XML writer and a strict, small XML reader for S3 documents.
 *
 * The writer builds a document into a growing buffer with a hard cap. It cannot produce
 * invalid XML: element names are checked, tags are closed from its own stack, text is escaped
 * (& < > " ' and CR as references) and bytes that XML 1.0 cannot carry (invalid UTF-8, C0
 * controls other than tab and LF, U+FFFE/U+FFFF) become U+FFFD, counted in `replaced` so a
 * caller can tell (listings avoid this with encoding-type=url). Errors are sticky: after the
 * first, every call does nothing and gw_xml_w_finish reports it, so builders check once.
 *
 * The reader parses a request body into a tree of elements, enforcing the limits it is given
 * (body size, depth, element count, name and text length, attributes per element) and the
 * well-formedness rules S3 bodies need: UTF-8 only, an optional XML declaration, comments,
 * CDATA, the five predefined entities and numeric references to valid characters, namespace
 * prefixes that are declared. It refuses DOCTYPE (and with it every entity declaration, so no
 * entity expansion is possible), processing instructions, unknown entities, mixed content
 * (text beside child elements), and anything malformed, with GW_S3_MALFORMED_XML and a
 * message saying what and at which byte. Namespaces are accepted and ignored: elements are
 * known by their local name, as S3 clients send the S3 namespace or none.
 */
#ifndef LODE_GATEWAY_XML_H
#define LODE_GATEWAY_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gw_types.h"
#include "gateway/s3_errdoc.h"

#define GW_XML_NS_S3 "http://s3.amazonaws.com/doc/2006-03-01/"

/* ---- writer ---- */

#define GW_XML_W_MAX_DEPTH 16

struct gw_xml_w {
    char *buf;
    size_t len, alloc;
    size_t limit;  /* hard cap on len */
    int err;       /* 0, -ENOMEM, LODE_ETOOLARGE (cap reached) or -EINVAL (misuse): sticky */
    unsigned depth;
    const char *open[GW_XML_W_MAX_DEPTH];
    size_t replaced; /* characters replaced by U+FFFD so far */
};

/* Starts an empty document that may grow to `limit` bytes. Nothing is allocated until the
 * first write. */
void gw_xml_w_init(struct gw_xml_w *w, size_t limit);

/* Frees the buffer (when not taken by gw_xml_w_finish). Safe to call twice. */
void gw_xml_w_free(struct gw_xml_w *w);

/* Whether gw_xml_w_open accepts `name` as an element or attribute name. */
bool gw_xml_name_ok(const char *name);

/* Writes <?xml version="1.0" encoding="UTF-8"?> and a newline. */
void gw_xml_w_decl(struct gw_xml_w *w);

/* Opens an element. `name` must be an XML name (ASCII letters, digits, '_', '-', '.', one ':'
 * at most) and must stay valid until closed (use literals): anything else, or more than
 * GW_XML_W_MAX_DEPTH open elements, is -EINVAL. */
void gw_xml_w_open(struct gw_xml_w *w, const char *name);

/* Opens an element with attributes: attrs holds n_attrs (name, value) pairs, names checked as
 * above, values escaped. */
void gw_xml_w_open_attrs(struct gw_xml_w *w, const char *name, const char *const *attrs,
                         size_t n_attrs);

/* Closes the innermost open element (-EINVAL when none is open). */
void gw_xml_w_close(struct gw_xml_w *w);

/* Escaped character data inside the current element. */
void gw_xml_w_text(struct gw_xml_w *w, const char *s, size_t n);

/* <name>escaped text</name>. */
void gw_xml_w_elem(struct gw_xml_w *w, const char *name, const char *s, size_t n);

/* The same with a NUL-terminated string (NULL writes an empty element). */
void gw_xml_w_elem_cstr(struct gw_xml_w *w, const char *name, const char *s);

/* <name>decimal</name>. */
void gw_xml_w_elem_u64(struct gw_xml_w *w, const char *name, uint64_t v);

/* <name>true</name> or <name>false</name>. */
void gw_xml_w_elem_bool(struct gw_xml_w *w, const char *name, bool v);

/* <name>2009-10-12T17:50:30.000Z</name>; a time out of range is -EINVAL. */
void gw_xml_w_elem_time(struct gw_xml_w *w, const char *name, int64_t ms);

/* <name>text</name>, the text URL-encoded first when url_encode (encoding-type=url: '/'
 * kept, everything outside A-Za-z0-9-_.~ as %XX). */
void gw_xml_w_elem_url(struct gw_xml_w *w, const char *name, const char *s, size_t n,
                       bool url_encode);

/* <name>"etag"</name>: quotes added unless the ETag already has them. */
void gw_xml_w_elem_etag(struct gw_xml_w *w, const char *name, const char *s, size_t n);

/* Ends the document: every element must be closed. On success returns 0 and hands the
 * NUL-terminated buffer to the caller (*out, malloc'd, free() it; *len without the NUL); the
 * writer is then empty. Otherwise returns the sticky error (-ENOMEM, LODE_ETOOLARGE, -EINVAL)
 * and the caller still owns the writer (gw_xml_w_free). */
int gw_xml_w_finish(struct gw_xml_w *w, char **out, size_t *len);

/* ---- reader ---- */

struct gw_xml_limits {
    size_t max_bytes;    /* the body */
    unsigned max_depth;  /* the root element is depth 1 */
    size_t max_elements;
    size_t max_name;     /* bytes of a qualified name */
    size_t max_text;     /* decoded bytes of one element's text */
    unsigned max_attrs;  /* per element */
};

/* 64 KiB, depth 8, 1000 elements, names of 128 bytes, text of 4 KiB, 8 attributes: enough
 * for small configuration bodies; the S3 decoders use their own. */
extern const struct gw_xml_limits gw_xml_limits_default;

#define GW_XML_NONE UINT32_MAX

struct gw_xml_node {
    const char *name; /* local name (prefix dropped), NUL-terminated */
    const char *text; /* decoded UTF-8 text of a leaf ("" for elements with children);
                         NUL-terminated, contains no NUL (XML cannot carry one) */
    size_t text_len;
    uint32_t parent, first_child, next_sibling; /* indexes into nodes, GW_XML_NONE if none */
    uint32_t n_children;
    uint32_t depth; /* root: 1 */
};

/* A parsed document. nodes[0] is the root element. Names and texts live in `arena`. */
struct gw_xml_doc {
    struct gw_xml_node *nodes;
    size_t n;
    char *arena;
    size_t arena_len, arena_cap;
    size_t alloc;
};

/* Parses data[0..n) (need not be NUL-terminated) under `lim` (NULL: the defaults). Returns
 * GW_S3_OK and fills *doc (free with gw_xml_doc_free), or GW_S3_MALFORMED_XML (any
 * well-formedness or limit violation; a body over max_bytes is refused before parsing),
 * GW_S3_INTERNAL_ERROR when out of memory; *doc is then empty. Memory is bounded: n bytes
 * plus a node (48 bytes) per element, plus small stacks sized by the depth and attribute
 * limits. */
enum gw_s3_error gw_xml_parse(const void *data, size_t n, const struct gw_xml_limits *lim,
                              struct gw_xml_doc *doc, struct gw_s3_err *err);

void gw_xml_doc_free(struct gw_xml_doc *doc);

/* The root element (never NULL after a successful parse). */
const struct gw_xml_node *gw_xml_root(const struct gw_xml_doc *doc);

/* The first child of `parent` named `name` (local name, case-sensitive; NULL: any), or NULL. */
const struct gw_xml_node *gw_xml_child(const struct gw_xml_doc *doc,
                                       const struct gw_xml_node *parent, const char *name);

/* The next sibling after `node` named `name` (NULL: any), or NULL. */
const struct gw_xml_node *gw_xml_next(const struct gw_xml_doc *doc,
                                      const struct gw_xml_node *node, const char *name);

/* Whether the node's local name is `name`. */
bool gw_xml_is(const struct gw_xml_node *node, const char *name);

#endif
