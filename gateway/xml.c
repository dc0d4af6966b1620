/* The strict XML reader for S3 request bodies; see xml.h for the contract. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "gateway/s3_util.h"
#include "gateway/xml.h"

const struct gw_xml_limits gw_xml_limits_default = {
    .max_bytes = 64 * 1024,
    .max_depth = 8,
    .max_elements = 1000,
    .max_name = 128,
    .max_text = 4096,
    .max_attrs = 8,
};

/* Hard ceilings whatever the caller asks, so the parser's own stacks stay small. */
#define DEPTH_CEIL 256
#define ATTRS_CEIL 64

struct slice {
    const unsigned char *p;
    size_t n;
};

struct frame {
    uint32_t node;
    uint32_t last_child;
    struct slice qname;
    size_t text_start; /* arena offset of this element's text */
    size_t ns_mark;    /* namespace declarations in scope before this element */
    bool has_child;
};

struct px {
    const unsigned char *s;
    size_t n, i;
    struct gw_xml_limits lim;
    struct gw_xml_doc *doc;
    struct gw_s3_err *err;
    bool failed, oom;
    struct frame *stack;
    unsigned sp;
    struct slice *ns; /* declared prefixes in scope */
    size_t n_ns, cap_ns;
};

__attribute__((format(printf, 2, 3))) static bool fail(struct px *x, const char *fmt, ...)
{
    if (x->failed)
        return false;
    x->failed = true;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (x->oom)
        gw_s3_err_set(x->err, GW_S3_INTERNAL_ERROR, NULL);
    else
        gw_s3_err_set(x->err, GW_S3_MALFORMED_XML,
                      "The XML you provided was not well-formed or did not validate against "
                      "our published schema: %s at byte %zu",
                      msg, x->i);
    return false;
}

static bool at(struct px *x, const char *lit)
{
    size_t l = strlen(lit);
    return x->n - x->i >= l && memcmp(x->s + x->i, lit, l) == 0;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool skip_ws(struct px *x)
{
    size_t s = x->i;
    while (x->i < x->n && is_ws(x->s[x->i]))
        x->i++;
    return x->i > s;
}

static bool name_start_cp(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' ||
           (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xf6) || (c >= 0xf8 && c <= 0x2ff) ||
           (c >= 0x370 && c <= 0x37d) || (c >= 0x37f && c <= 0x1fff) ||
           (c >= 0x200c && c <= 0x200d) || (c >= 0x2070 && c <= 0x218f) ||
           (c >= 0x2c00 && c <= 0x2fef) || (c >= 0x3001 && c <= 0xd7ff) ||
           (c >= 0xf900 && c <= 0xfdcf) || (c >= 0xfdf0 && c <= 0xfffd) ||
           (c >= 0x10000 && c <= 0xeffff);
}

static bool name_cp(uint32_t c)
{
    return name_start_cp(c) || c == '-' || c == '.' || (c >= '0' && c <= '9') || c == 0xb7 ||
           (c >= 0x300 && c <= 0x36f) || (c >= 0x203f && c <= 0x2040);
}

/* Next code point at x->i (without consuming); 0 length at the end or on invalid UTF-8. */
static size_t peek_cp(struct px *x, uint32_t *cp)
{
    return gw_utf8_decode(x->s + x->i, x->n - x->i, cp);
}

/* A qualified name: NCName or NCName ':' NCName. */
static bool qname(struct px *x, struct slice *out)
{
    size_t start = x->i, colon = 0;
    uint32_t cp;
    size_t l = peek_cp(x, &cp);
    if (l == 0 || !name_start_cp(cp) || cp == ':')
        return fail(x, "expected a name");
    x->i += l;
    while ((l = peek_cp(x, &cp)) != 0 && name_cp(cp)) {
        if (cp == ':') {
            if (colon)
                return fail(x, "a name may contain one ':' only");
            colon = x->i;
        }
        x->i += l;
        if (x->i - start > x->lim.max_name)
            return fail(x, "name longer than %zu bytes", x->lim.max_name);
    }
    if (colon) {
        uint32_t c2;
        size_t l2 = gw_utf8_decode(x->s + colon + 1, x->i - colon - 1, &c2);
        if (l2 == 0 || !name_start_cp(c2))
            return fail(x, "invalid local name");
    }
    out->p = x->s + start;
    out->n = x->i - start;
    return true;
}

static bool slice_eq(struct slice a, struct slice b)
{
    return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static bool slice_is(struct slice a, const char *lit)
{
    return a.n == strlen(lit) && memcmp(a.p, lit, a.n) == 0;
}

static struct slice prefix_of(struct slice q)
{
    const unsigned char *c = memchr(q.p, ':', q.n);
    return (struct slice){q.p, c ? (size_t)(c - q.p) : 0};
}

/* ---- arena (text and names); its capacity is fixed so pointers into it stay valid ---- */

static bool arena_put(struct px *x, const void *p, size_t n)
{
    struct gw_xml_doc *d = x->doc;
    if (n > d->arena_cap - d->arena_len)
        return fail(x, "internal arena overflow");
    memcpy(d->arena + d->arena_len, p, n);
    d->arena_len += n;
    return true;
}

/* Character data for the current element: whitespace only beside child elements (S3 bodies
 * have no mixed content), else appended and bounded by max_text. */
static bool text_put(struct px *x, const void *p, size_t n)
{
    struct frame *f = &x->stack[x->sp - 1];
    if (f->has_child) {
        for (size_t k = 0; k < n; k++)
            if (!is_ws(((const unsigned char *)p)[k]))
                return fail(x, "text beside child elements");
        return true;
    }
    if (x->doc->arena_len - f->text_start + n > x->lim.max_text)
        return fail(x, "text longer than %zu bytes", x->lim.max_text);
    return arena_put(x, p, n);
}

static size_t utf8_put(uint32_t cp, unsigned char *b)
{
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    b[0] = (unsigned char)(0xf0 | cp >> 18);
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A reference at x->i ('&'): the five predefined entities or a character reference to a
 * valid XML character. Nothing else exists, since no DTD can declare entities. */
static bool reference(struct px *x, uint32_t *cp)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&apos;", '\''}, {"&quot;", '"'}};
    for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]); k++)
        if (at(x, ents[k].name)) {
            x->i += strlen(ents[k].name);
            *cp = (uint32_t)ents[k].c;
            return true;
        }
    if (!at(x, "&#"))
        return fail(x, "undefined entity (only &lt; &gt; &amp; &apos; &quot; and character "
                       "references are allowed)");
    x->i += 2;
    bool hex = x->i < x->n && x->s[x->i] == 'x';
    x->i += hex;
    uint32_t v = 0;
    size_t digits = 0;
    while (x->i < x->n && x->s[x->i] != ';') {
        unsigned char c = x->s[x->i];
        int d = (c >= '0' && c <= '9')              ? c - '0'
                : hex && (c >= 'a' && c <= 'f')     ? c - 'a' + 10
                : hex && (c >= 'A' && c <= 'F')     ? c - 'A' + 10
                                                    : -1;
        if (d < 0 || ++digits > 8)
            return fail(x, "malformed character reference");
        v = v * (hex ? 16 : 10) + (uint32_t)d;
        x->i++;
    }
    if (x->i >= x->n || digits == 0)
        return fail(x, "malformed character reference");
    x->i++;
    if (!gw_xml_char_ok(v))
        return fail(x, "character reference to U+%04" PRIX32 ", not an XML character", v);
    *cp = v;
    return true;
}

/* One character of literal data at x->i (not markup): valid UTF-8 and an XML character, CR
 * and CR LF read as LF. Appends it with `put` (or only validates when put is NULL). */
static bool literal_char(struct px *x, bool (*put)(struct px *, const void *, size_t))
{
    unsigned char c = x->s[x->i];
    if (c < 0x80) {
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return fail(x, "control character 0x%02x", c);
        x->i++;
        if (c == '\r') {
            if (x->i < x->n && x->s[x->i] == '\n')
                x->i++;
            c = '\n';
        }
        return put ? put(x, &c, 1) : true;
    }
    uint32_t cp;
    size_t l = peek_cp(x, &cp);
    if (l == 0)
        return fail(x, "invalid UTF-8");
    if (!gw_xml_char_ok(cp))
        return fail(x, "U+%04" PRIX32 " is not an XML character", cp);
    const unsigned char *p = x->s + x->i;
    x->i += l;
    return put ? put(x, p, l) : true;
}

/* <!-- ... -->: no "--" inside, and not ending with '-'. */
static bool comment(struct px *x)
{
    x->i += 4;
    for (;;) {
        if (x->i >= x->n)
            return fail(x, "unterminated comment");
        if (at(x, "--")) {
            if (x->n - x->i >= 3 && x->s[x->i + 2] == '>') {
                x->i += 3;
                return true;
            }
            return fail(x, "'--' inside a comment");
        }
        if (!literal_char(x, NULL))
            return false;
    }
}

/* Whitespace, comments; refuses processing instructions and DOCTYPE. */
static bool misc(struct px *x)
{
    for (;;) {
        skip_ws(x);
        if (at(x, "<!--")) {
            if (!comment(x))
                return false;
        } else if (at(x, "<?")) {
            return fail(x, at(x, "<?xml") ? "XML declaration not at the start"
                                          : "processing instructions are not allowed");
        } else if (at(x, "<!")) {
            return fail(x, "DOCTYPE and declarations are not allowed");
        } else {
            return true;
        }
    }
}

/* A quoted attribute or declaration value: no '<', references valid, characters valid. */
static bool quoted_value(struct px *x, struct slice *raw)
{
    if (x->i >= x->n || (x->s[x->i] != '"' && x->s[x->i] != '\''))
        return fail(x, "expected a quoted value");
    unsigned char q = x->s[x->i++];
    size_t start = x->i;
    for (;;) {
        if (x->i >= x->n)
            return fail(x, "unterminated quoted value");
        unsigned char c = x->s[x->i];
        if (c == q)
            break;
        if (c == '<')
            return fail(x, "'<' in an attribute value");
        if (c == '&') {
            uint32_t cp;
            if (!reference(x, &cp))
                return false;
        } else if (!literal_char(x, NULL)) {
            return false;
        }
    }
    raw->p = x->s + start;
    raw->n = x->i - start;
    x->i++;
    return true;
}

static bool eq(struct px *x)
{
    skip_ws(x);
    if (x->i >= x->n || x->s[x->i] != '=')
        return fail(x, "expected '='");
    x->i++;
    skip_ws(x);
    return true;
}

/* <?xml version="1.x" [encoding="UTF-8"] [standalone="yes|no"] ?> */
static bool xml_decl(struct px *x)
{
    static const char *const names[] = {"version", "encoding", "standalone"};
    x->i += 5;
    size_t next = 0;
    for (;;) {
        bool ws = skip_ws(x);
        if (at(x, "?>")) {
            x->i += 2;
            return next > 0 ? true : fail(x, "XML declaration without a version");
        }
        if (!ws)
            return fail(x, "malformed XML declaration");
        size_t k = next;
        while (k < 3 && !at(x, names[k]))
            k++;
        if (k == 3 || (next == 0 && k != 0))
            return fail(x, "malformed XML declaration");
        x->i += strlen(names[k]);
        struct slice v;
        if (!eq(x) || !quoted_value(x, &v))
            return false;
        bool digits = v.n >= 3 && memcmp(v.p, "1.", 2) == 0;
        for (size_t j = 2; digits && j < v.n; j++)
            digits = v.p[j] >= '0' && v.p[j] <= '9';
        if (k == 0 && !digits)
            return fail(x, "unsupported XML version");
        if (k == 1 && !(v.n == 5 && strncasecmp((const char *)v.p, "UTF-8", 5) == 0))
            return fail(x, "only UTF-8 documents are accepted");
        if (k == 2 && !slice_is(v, "yes") && !slice_is(v, "no"))
            return fail(x, "malformed standalone declaration");
        next = k + 1;
    }
}

static bool ns_declared(struct px *x, struct slice prefix)
{
    if (slice_is(prefix, "xml"))
        return true;
    for (size_t k = x->n_ns; k-- > 0;)
        if (slice_eq(x->ns[k], prefix))
            return true;
    return false;
}

static bool new_node(struct px *x, uint32_t *idx)
{
    struct gw_xml_doc *d = x->doc;
    if (d->n >= x->lim.max_elements)
        return fail(x, "more than %zu elements", x->lim.max_elements);
    if (d->n == d->alloc) {
        size_t a = d->alloc ? d->alloc * 2 : 16;
        if (a > x->lim.max_elements)
            a = x->lim.max_elements;
        struct gw_xml_node *nn = realloc(d->nodes, a * sizeof(*nn));
        if (!nn) {
            x->oom = true;
            return fail(x, "out of memory");
        }
        d->nodes = nn;
        d->alloc = a;
    }
    *idx = (uint32_t)d->n++;
    return true;
}

/* A start tag at x->i ('<' followed by a name). Pushes a frame unless the tag is empty
 * ("<a/>"), in which case the element is complete. */
static bool start_tag(struct px *x)
{
    x->i++;
    struct slice q;
    if (!qname(x, &q))
        return false;
    if (x->sp >= x->lim.max_depth)
        return fail(x, "nested deeper than %u elements", x->lim.max_depth);
    size_t ns_mark = x->n_ns;
    struct slice attrs[ATTRS_CEIL];
    unsigned n_attrs = 0;
    bool empty = false;
    for (;;) {
        bool ws = skip_ws(x);
        if (at(x, "/>")) {
            x->i += 2;
            empty = true;
            break;
        }
        if (at(x, ">")) {
            x->i++;
            break;
        }
        if (x->i >= x->n)
            return fail(x, "unterminated start tag");
        if (!ws)
            return fail(x, "expected whitespace before an attribute");
        struct slice an, av;
        if (!qname(x, &an) || !eq(x) || !quoted_value(x, &av))
            return false;
        if (n_attrs >= x->lim.max_attrs)
            return fail(x, "more than %u attributes", x->lim.max_attrs);
        for (unsigned k = 0; k < n_attrs; k++)
            if (slice_eq(attrs[k], an))
                return fail(x, "repeated attribute");
        attrs[n_attrs++] = an;
        struct slice pre = prefix_of(an);
        if (slice_is(pre, "xmlns")) {
            struct slice declared = {an.p + 6, an.n - 6};
            if (av.n == 0 || slice_is(declared, "xmlns"))
                return fail(x, "invalid namespace declaration");
            if (x->n_ns == x->cap_ns)
                return fail(x, "too many namespace declarations");
            x->ns[x->n_ns++] = declared;
        }
    }
    struct slice pre = prefix_of(q);
    if (pre.n && (slice_is(pre, "xmlns") || !ns_declared(x, pre)))
        return fail(x, "undeclared namespace prefix");
    for (unsigned k = 0; k < n_attrs; k++) {
        struct slice ap = prefix_of(attrs[k]);
        if (ap.n && !slice_is(ap, "xmlns") && !ns_declared(x, ap))
            return fail(x, "undeclared namespace prefix");
    }

    uint32_t idx = 0;
    if (!new_node(x, &idx))
        return false;
    struct gw_xml_doc *d = x->doc;
    struct gw_xml_node *node = &d->nodes[idx];
    uint32_t parent = x->sp ? x->stack[x->sp - 1].node : GW_XML_NONE;
    *node = (struct gw_xml_node){.parent = parent,
                                 .first_child = GW_XML_NONE,
                                 .next_sibling = GW_XML_NONE,
                                 .depth = x->sp + 1};
    if (x->sp) {
        struct frame *pf = &x->stack[x->sp - 1];
        if (!pf->has_child) {
            /* What the parent collected before its first child must have been whitespace;
             * it is dropped, and from now on text_put only checks. */
            for (size_t k = pf->text_start; k < d->arena_len; k++)
                if (!is_ws((unsigned char)d->arena[k]))
                    return fail(x, "text beside child elements");
            d->arena_len = pf->text_start;
            pf->has_child = true;
        }
        if (pf->last_child == GW_XML_NONE)
            d->nodes[pf->node].first_child = idx;
        else
            d->nodes[pf->last_child].next_sibling = idx;
        pf->last_child = idx;
        d->nodes[pf->node].n_children++;
    }
    struct slice local = pre.n ? (struct slice){q.p + pre.n + 1, q.n - pre.n - 1} : q;
    size_t name_off = d->arena_len;
    if (!arena_put(x, local.p, local.n) || !arena_put(x, "", 1))
        return false;
    node = &d->nodes[idx];
    node->name = d->arena + name_off;
    if (empty) {
        node->text = d->arena + d->arena_len;
        node->text_len = 0;
        x->n_ns = ns_mark;
        return arena_put(x, "", 1);
    }
    x->stack[x->sp++] = (struct frame){.node = idx,
                                       .last_child = GW_XML_NONE,
                                       .qname = q,
                                       .text_start = d->arena_len,
                                       .ns_mark = ns_mark};
    return true;
}

static bool end_tag(struct px *x)
{
    x->i += 2;
    struct slice q;
    if (!qname(x, &q))
        return false;
    struct frame *f = &x->stack[x->sp - 1];
    if (!slice_eq(q, f->qname))
        return fail(x, "end tag does not match the start tag");
    skip_ws(x);
    if (x->i >= x->n || x->s[x->i] != '>')
        return fail(x, "malformed end tag");
    x->i++;
    struct gw_xml_doc *d = x->doc;
    struct gw_xml_node *node = &d->nodes[f->node];
    if (f->has_child) {
        node->text = "";
        node->text_len = 0;
    } else {
        node->text = d->arena + f->text_start;
        node->text_len = d->arena_len - f->text_start;
        if (!arena_put(x, "", 1))
            return false;
    }
    x->n_ns = f->ns_mark;
    x->sp--;
    return true;
}

static bool cdata(struct px *x)
{
    x->i += 9;
    for (;;) {
        if (x->i >= x->n)
            return fail(x, "unterminated CDATA section");
        if (at(x, "]]>")) {
            x->i += 3;
            return true;
        }
        if (!literal_char(x, text_put))
            return false;
    }
}

/* Everything from the root's start tag to its end tag, without recursion. */
static bool element_tree(struct px *x)
{
    if (!start_tag(x))
        return false;
    while (x->sp > 0) {
        if (x->i >= x->n)
            return fail(x, "unclosed element");
        unsigned char c = x->s[x->i];
        if (c == '<') {
            if (at(x, "</")) {
                if (!end_tag(x))
                    return false;
            } else if (at(x, "<!--")) {
                if (!comment(x))
                    return false;
            } else if (at(x, "<![CDATA[")) {
                if (!cdata(x))
                    return false;
            } else if (at(x, "<?")) {
                return fail(x, "processing instructions are not allowed");
            } else if (at(x, "<!")) {
                return fail(x, "declarations are not allowed");
            } else if (!start_tag(x)) {
                return false;
            }
        } else if (c == '&') {
            uint32_t cp;
            unsigned char b[4];
            if (!reference(x, &cp) || !text_put(x, b, utf8_put(cp, b)))
                return false;
        } else {
            if (at(x, "]]>"))
                return fail(x, "']]>' in text");
            if (!literal_char(x, text_put))
                return false;
        }
    }
    return true;
}

enum gw_s3_error gw_xml_parse(const void *data, size_t n, const struct gw_xml_limits *lim,
                              struct gw_xml_doc *doc, struct gw_s3_err *err)
{
    memset(doc, 0, sizeof(*doc));
    struct px x = {.s = data, .n = n, .doc = doc, .err = err};
    x.lim = lim ? *lim : gw_xml_limits_default;
    if (x.lim.max_depth > DEPTH_CEIL)
        x.lim.max_depth = DEPTH_CEIL;
    if (x.lim.max_attrs > ATTRS_CEIL)
        x.lim.max_attrs = ATTRS_CEIL;
    if (x.lim.max_elements > UINT32_MAX - 1)
        x.lim.max_elements = UINT32_MAX - 1;
    if (n > x.lim.max_bytes) {
        fail(&x, "body larger than %zu bytes", x.lim.max_bytes);
        return GW_S3_MALFORMED_XML;
    }
    /* The arena never holds more than the input consumed so far: a local name is no longer
     * than its start tag, decoded text no longer than its source, and each element's two
     * NULs fit in the markup around its name ("<a/>" is 4 bytes for "a\0\0"). */
    doc->arena_cap = n + 16;
    doc->arena = malloc(doc->arena_cap);
    x.cap_ns = (size_t)x.lim.max_attrs * (x.lim.max_depth ? x.lim.max_depth : 1);
    x.stack = malloc((x.lim.max_depth + 1) * sizeof(*x.stack));
    x.ns = malloc((x.cap_ns + 1) * sizeof(*x.ns));
    if (!doc->arena || !x.stack || !x.ns) {
        x.oom = true;
        fail(&x, "out of memory");
    } else {
        if (at(&x, "\xEF\xBB\xBF"))
            x.i += 3;
        if (at(&x, "<?xml") && x.n - x.i > 5 && (is_ws(x.s[x.i + 5]) || x.s[x.i + 5] == '?')) {
            if (xml_decl(&x))
                misc(&x);
        } else {
            misc(&x);
        }
        if (!x.failed) {
            if (x.i >= x.n)
                fail(&x, "no root element");
            else if (x.s[x.i] != '<')
                fail(&x, "text outside the root element");
            else if (element_tree(&x) && misc(&x) && x.i != x.n)
                fail(&x, x.s[x.i] == '<' ? "more than one root element"
                                         : "text outside the root element");
        }
    }
    free(x.stack);
    free(x.ns);
    if (x.failed) {
        gw_xml_doc_free(doc);
        return x.oom ? GW_S3_INTERNAL_ERROR : GW_S3_MALFORMED_XML;
    }
    return GW_S3_OK;
}

void gw_xml_doc_free(struct gw_xml_doc *doc)
{
    free(doc->nodes);
    free(doc->arena);
    memset(doc, 0, sizeof(*doc));
}

const struct gw_xml_node *gw_xml_root(const struct gw_xml_doc *doc)
{
    return doc->n ? &doc->nodes[0] : NULL;
}

bool gw_xml_is(const struct gw_xml_node *node, const char *name)
{
    return node && strcmp(node->name, name) == 0;
}

const struct gw_xml_node *gw_xml_next(const struct gw_xml_doc *doc,
                                      const struct gw_xml_node *node, const char *name)
{
    uint32_t k = node->next_sibling;
    while (k != GW_XML_NONE && name && !gw_xml_is(&doc->nodes[k], name))
        k = doc->nodes[k].next_sibling;
    return k == GW_XML_NONE ? NULL : &doc->nodes[k];
}

const struct gw_xml_node *gw_xml_child(const struct gw_xml_doc *doc,
                                       const struct gw_xml_node *parent, const char *name)
{
    uint32_t k = parent->first_child;
    if (k == GW_XML_NONE)
        return NULL;
    const struct gw_xml_node *c = &doc->nodes[k];
    return !name || gw_xml_is(c, name) ? c : gw_xml_next(doc, c, name);
}
