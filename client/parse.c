#include "client/parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lc_parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The index of `c` in s[from..n), or n. */
static size_t find(const char *s, size_t n, size_t from, char c)
{
    for (size_t i = from; i < n; i++)
        if (s[i] == c)
            return i;
    return n;
}

int lc_parse_content_range(const char *s, size_t n, uint64_t *first, uint64_t *last,
                              uint64_t *total)
{
    if (n < 6 || memcmp(s, "bytes ", 6) != 0)
        return -EINVAL;
    s += 6;
    n -= 6;
    size_t slash = find(s, n, 0, '/');
    if (slash == n)
        return -EINVAL;
    uint64_t t = UINT64_MAX, a, b;
    if (!(n - slash - 1 == 1 && s[slash + 1] == '*') &&
        lc_parse_u64(s + slash + 1, n - slash - 1, &t) != 0)
        return -EINVAL;
    if (slash == 1 && s[0] == '*') {
        if (t == UINT64_MAX)
            return -EINVAL; /* "bytes * / *" says nothing */
        *first = *last = UINT64_MAX;
        *total = t;
        return 0;
    }
    size_t dash = find(s, slash, 0, '-');
    if (dash == slash || lc_parse_u64(s, dash, &a) != 0 ||
        lc_parse_u64(s + dash + 1, slash - dash - 1, &b) != 0 || a > b ||
        (t != UINT64_MAX && b >= t))
        return -EINVAL;
    *first = a;
    *last = b;
    *total = t;
    return 0;
}

int lc_parse_rdma_reply(const char *s, size_t n)
{
    uint64_t v;
    if (n != 3 || lc_parse_u64(s, n, &v) != 0 || v < 100 || v > 599)
        return -EINVAL;
    return (int)v;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

int lc_parse_sources(const char *s, size_t n, struct lc_src_bytes *out, size_t cap,
                        size_t *n_out)
{
    size_t count = 0, i = 0;
    *n_out = 0;
    while (i < n && ows(s[i]))
        i++;
    if (i == n)
        return 0;
    while (i <= n) {
        size_t end = find(s, n, i, ',');
        size_t a = i, b = end;
        while (a < b && ows(s[a]))
            a++;
        while (b > a && ows(s[b - 1]))
            b--;
        size_t eq = find(s, b, a, '=');
        uint64_t id, bytes;
        if (eq == b || lc_parse_u64(s + a, eq - a, &id) != 0 || id > UINT32_MAX ||
            lc_parse_u64(s + eq + 1, b - eq - 1, &bytes) != 0)
            return -EINVAL;
        if (count == cap)
            return -EINVAL;
        for (size_t k = 0; k < count; k++)
            if (out[k].id == id)
                return -EINVAL;
        out[count].id = (uint32_t)id;
        out[count].bytes = bytes;
        count++;
        if (end == n)
            break;
        i = end + 1;
    }
    *n_out = count;
    return 0;
}

int lc_split_hostport(const char *s, size_t n, char *host, size_t cap, uint16_t *port)
{
    size_t hb, he, colon;
    if (n > 0 && s[0] == '[') {
        size_t close = find(s, n, 1, ']');
        if (close == n || close + 1 >= n || s[close + 1] != ':')
            return -EINVAL;
        hb = 1;
        he = close;
        colon = close + 1;
    } else {
        colon = n;
        for (size_t i = n; i > 0; i--)
            if (s[i - 1] == ':') {
                colon = i - 1;
                break;
            }
        if (colon == n || find(s, colon, 0, ':') != colon)
            return -EINVAL; /* no port, or an unbracketed IPv6 address */
        hb = 0;
        he = colon;
    }
    uint64_t p;
    if (he == hb || he - hb >= cap || lc_parse_u64(s + colon + 1, n - colon - 1, &p) != 0 ||
        p == 0 || p > 65535)
        return -EINVAL;
    for (size_t i = hb; i < he; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '[' || c == ']' || c == '@')
            return -EINVAL;
    }
    memcpy(host, s + hb, he - hb);
    host[he - hb] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* ---- a small strict XML scanner for the two documents a gateway sends liblode ---- */

#define XML_MAX_DEPTH 8
#define XML_NAME_MAX 64
#define XML_TEXT_MAX 1024
#define XML_MAX_TOKENS (16 * LC_SESSION_MAX_SOURCES + 64)

enum xml_tok { XML_START, XML_END, XML_TEXT, XML_EOF };

struct xml {
    const char *p;
    size_t n, i;
    size_t tokens;
    unsigned depth;
    bool root_seen, root_closed, pending_end;
    char stack[XML_MAX_DEPTH][XML_NAME_MAX + 1];
    char name[XML_NAME_MAX + 1];   /* START/END: the local name */
    char text[XML_TEXT_MAX + 1];   /* TEXT: decoded, NUL-terminated */
    size_t text_len;
    const char *why;
};

static bool name_char(unsigned char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && ((c >= '0' && c <= '9') || c == '-' || c == '.'));
}

static bool xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool starts(const struct xml *x, const char *lit)
{
    size_t l = strlen(lit);
    return x->n - x->i >= l && memcmp(x->p + x->i, lit, l) == 0;
}

static int xml_fail(struct xml *x, const char *why)
{
    x->why = why;
    return -1;
}

/* Reads a name at x->i into x->name (the part after any prefix). */
static int xml_name(struct xml *x)
{
    size_t b = x->i, colon = SIZE_MAX;
    while (x->i < x->n && name_char((unsigned char)x->p[x->i], x->i == b)) {
        if (x->p[x->i] == ':')
            colon = x->i;
        x->i++;
    }
    size_t l = x->i - b;
    if (l == 0 || l > XML_NAME_MAX)
        return xml_fail(x, "bad element name");
    size_t s = colon == SIZE_MAX ? b : colon + 1;
    if (s == x->i)
        return xml_fail(x, "bad element name");
    memcpy(x->name, x->p + s, x->i - s);
    x->name[x->i - s] = '\0';
    return 0;
}

static int put_utf8(struct xml *x, unsigned long cp)
{
    char b[4];
    size_t l;
    if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return xml_fail(x, "bad character reference");
    if (cp < 0x80) {
        b[0] = (char)cp;
        l = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        l = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        l = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        l = 4;
    }
    if (x->text_len + l > XML_TEXT_MAX)
        return xml_fail(x, "text too long");
    memcpy(x->text + x->text_len, b, l);
    x->text_len += l;
    return 0;
}

/* Decodes character data up to the next '<' into x->text. */
static int xml_chars(struct xml *x)
{
    x->text_len = 0;
    while (x->i < x->n && x->p[x->i] != '<') {
        char c = x->p[x->i];
        if (c == '&') {
            size_t semi = find(x->p, x->n, x->i, ';');
            if (semi == x->n || semi - x->i > 12)
                return xml_fail(x, "bad entity");
            const char *e = x->p + x->i + 1;
            size_t el = semi - x->i - 1;
            unsigned long cp = 0;
            if (el == 2 && memcmp(e, "lt", 2) == 0)
                cp = '<';
            else if (el == 2 && memcmp(e, "gt", 2) == 0)
                cp = '>';
            else if (el == 3 && memcmp(e, "amp", 3) == 0)
                cp = '&';
            else if (el == 4 && memcmp(e, "quot", 4) == 0)
                cp = '"';
            else if (el == 4 && memcmp(e, "apos", 4) == 0)
                cp = '\'';
            else if (el >= 2 && e[0] == '#') {
                bool hex = e[1] == 'x';
                size_t k = hex ? 2 : 1;
                if (k == el)
                    return xml_fail(x, "bad character reference");
                for (; k < el; k++) {
                    char d = e[k];
                    unsigned v;
                    if (d >= '0' && d <= '9')
                        v = (unsigned)(d - '0');
                    else if (hex && d >= 'a' && d <= 'f')
                        v = (unsigned)(d - 'a' + 10);
                    else if (hex && d >= 'A' && d <= 'F')
                        v = (unsigned)(d - 'A' + 10);
                    else
                        return xml_fail(x, "bad character reference");
                    cp = cp * (hex ? 16 : 10) + v;
                    if (cp > 0x10ffff)
                        return xml_fail(x, "bad character reference");
                }
            } else {
                return xml_fail(x, "unknown entity");
            }
            if (put_utf8(x, cp))
                return -1;
            x->i = semi + 1;
            continue;
        }
        if ((unsigned char)c < 0x20 && !xml_space(c))
            return xml_fail(x, "control character");
        if (x->text_len == XML_TEXT_MAX)
            return xml_fail(x, "text too long");
        x->text[x->text_len++] = c;
        x->i++;
    }
    x->text[x->text_len] = '\0';
    return 0;
}

/* Skips the attributes of a start tag up to '>' or "/>"; values are not kept. */
static int xml_attrs(struct xml *x, bool *empty)
{
    for (unsigned count = 0;; count++) {
        while (x->i < x->n && xml_space(x->p[x->i]))
            x->i++;
        if (starts(x, "/>")) {
            x->i += 2;
            *empty = true;
            return 0;
        }
        if (starts(x, ">")) {
            x->i++;
            *empty = false;
            return 0;
        }
        if (count == 8)
            return xml_fail(x, "too many attributes");
        char keep[XML_NAME_MAX + 1];
        memcpy(keep, x->name, sizeof(keep));
        if (xml_name(x))
            return -1;
        memcpy(x->name, keep, sizeof(keep));
        while (x->i < x->n && xml_space(x->p[x->i]))
            x->i++;
        if (!starts(x, "="))
            return xml_fail(x, "bad attribute");
        x->i++;
        while (x->i < x->n && xml_space(x->p[x->i]))
            x->i++;
        if (x->i == x->n || (x->p[x->i] != '"' && x->p[x->i] != '\''))
            return xml_fail(x, "bad attribute");
        char q = x->p[x->i++];
        size_t end = find(x->p, x->n, x->i, q);
        if (end == x->n || find(x->p, end, x->i, '<') != end)
            return xml_fail(x, "bad attribute");
        x->i = end + 1;
    }
}

/* The next token. Whitespace-only text between elements is skipped; comments too. */
static int xml_next(struct xml *x, enum xml_tok *tok)
{
    if (++x->tokens > XML_MAX_TOKENS)
        return xml_fail(x, "document too large");
    if (x->pending_end) {
        x->pending_end = false;
        *tok = XML_END;
        return 0;
    }
    for (;;) {
        if (x->i == x->n) {
            if (!x->root_closed)
                return xml_fail(x, "truncated document");
            *tok = XML_EOF;
            return 0;
        }
        if (x->p[x->i] != '<') {
            if (xml_chars(x))
                return -1;
            bool blank = true;
            for (size_t k = 0; k < x->text_len; k++)
                blank = blank && xml_space(x->text[k]);
            if (blank)
                continue;
            if (x->depth == 0)
                return xml_fail(x, "text outside the root element");
            *tok = XML_TEXT;
            return 0;
        }
        if (starts(x, "<!--")) {
            size_t k = x->i + 4;
            for (; k + 3 <= x->n; k++)
                if (memcmp(x->p + k, "-->", 3) == 0)
                    break;
            if (k + 3 > x->n)
                return xml_fail(x, "unterminated comment");
            x->i = k + 3;
            continue;
        }
        if (starts(x, "<?xml") && x->i == 0) {
            size_t k = x->i + 5;
            for (; k + 2 <= x->n; k++)
                if (memcmp(x->p + k, "?>", 2) == 0)
                    break;
            if (k + 2 > x->n || (x->i + 5 < x->n && !xml_space(x->p[x->i + 5])))
                return xml_fail(x, "bad XML declaration");
            x->i = k + 2;
            continue;
        }
        if (starts(x, "<!") || starts(x, "<?"))
            return xml_fail(x, "DOCTYPE, CDATA and processing instructions are not accepted");
        if (starts(x, "</")) {
            x->i += 2;
            if (xml_name(x))
                return -1;
            while (x->i < x->n && xml_space(x->p[x->i]))
                x->i++;
            if (!starts(x, ">"))
                return xml_fail(x, "bad end tag");
            x->i++;
            if (x->depth == 0 || strcmp(x->stack[x->depth - 1], x->name) != 0)
                return xml_fail(x, "mismatched end tag");
            if (--x->depth == 0)
                x->root_closed = true;
            *tok = XML_END;
            return 0;
        }
        x->i++;
        if (xml_name(x))
            return -1;
        if (x->root_closed)
            return xml_fail(x, "content after the root element");
        if (x->depth == XML_MAX_DEPTH)
            return xml_fail(x, "elements nested too deep");
        bool empty;
        if (xml_attrs(x, &empty))
            return -1;
        x->root_seen = true;
        if (empty) {
            if (x->depth == 0)
                x->root_closed = true;
            x->pending_end = true;
        } else {
            memcpy(x->stack[x->depth++], x->name, sizeof(x->name));
        }
        *tok = XML_START;
        return 0;
    }
}

static void xml_init(struct xml *x, const char *doc, size_t n)
{
    memset(x, 0, sizeof(*x));
    x->p = doc;
    x->n = n;
}

/* The text of a leaf element whose START was just read: its text ("" when empty), then
 * its END. Fails when it has children. */
static int xml_leaf(struct xml *x)
{
    enum xml_tok t;
    if (xml_next(x, &t))
        return -1;
    if (t == XML_END) {
        x->text[0] = '\0';
        x->text_len = 0;
        return 0;
    }
    if (t != XML_TEXT)
        return xml_fail(x, "element with children where text was expected");
    char keep[XML_TEXT_MAX + 1];
    size_t kl = x->text_len;
    memcpy(keep, x->text, kl + 1);
    if (xml_next(x, &t))
        return -1;
    if (t != XML_END)
        return xml_fail(x, "mixed content");
    memcpy(x->text, keep, kl + 1);
    x->text_len = kl;
    return 0;
}

/* Skips the rest of an element whose START was just read. */
static int xml_skip(struct xml *x)
{
    unsigned depth = 1;
    while (depth) {
        enum xml_tok t;
        if (xml_next(x, &t))
            return -1;
        if (t == XML_START)
            depth++;
        else if (t == XML_END)
            depth--;
    }
    return 0;
}

static int unhex(const char *s, size_t n, uint8_t *out, size_t out_len)
{
    if (n != 2 * out_len)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned v;
        if (c >= '0' && c <= '9')
            v = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = (unsigned)(c - 'A' + 10);
        else
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return 0;
}

static int parse_source(struct xml *x, struct lc_session_src *src, struct cmn_err *err)
{
    bool have_id = false;
    memset(src, 0, sizeof(*src));
    for (;;) {
        enum xml_tok t;
        if (xml_next(x, &t))
            return cmn_err_set(err, LODE_EBADMSG, "session document: %s", x->why);
        if (t == XML_END)
            break;
        if (t != XML_START)
            return cmn_err_set(err, LODE_EBADMSG, "session document: text inside <Source>");
        bool id = strcmp(x->name, "Id") == 0, tcp = strcmp(x->name, "Tcp") == 0,
             rc = strcmp(x->name, "Rc") == 0;
        if (!id && !tcp && !rc) {
            if (xml_skip(x))
                return cmn_err_set(err, LODE_EBADMSG, "session document: %s", x->why);
            continue;
        }
        if (xml_leaf(x))
            return cmn_err_set(err, LODE_EBADMSG, "session document: %s", x->why);
        uint64_t v;
        if (id) {
            if (have_id || lc_parse_u64(x->text, x->text_len, &v) != 0 || v > UINT32_MAX)
                return cmn_err_set(err, LODE_EBADMSG, "session document: bad source <Id>");
            src->id = (uint32_t)v;
            have_id = true;
        } else if (tcp) {
            if (src->has_tcp || lc_split_hostport(x->text, x->text_len, src->tcp_host,
                                                     sizeof(src->tcp_host), &src->tcp_port))
                return cmn_err_set(err, LODE_EBADMSG, "session document: bad source <Tcp>");
            src->has_tcp = true;
        } else {
            if (src->has_rc || lc_split_hostport(x->text, x->text_len, src->rc_host,
                                                    sizeof(src->rc_host), &src->rc_port))
                return cmn_err_set(err, LODE_EBADMSG, "session document: bad source <Rc>");
            src->has_rc = true;
        }
    }
    if (!have_id || (!src->has_tcp && !src->has_rc))
        return cmn_err_set(err, LODE_EBADMSG,
                           "session document: a <Source> needs an <Id> and a <Tcp> or <Rc>");
    return 0;
}

static int session_body(struct xml *x, struct lc_session *s, struct cmn_err *err)
{
    enum xml_tok t;
    if (xml_next(x, &t))
        return cmn_err_set(err, LODE_EBADMSG, "session document: %s", x->why);
    if (t != XML_START || strcmp(x->name, "LodeSession") != 0)
        return cmn_err_set(err, LODE_EBADMSG, "session document: root is not <LodeSession>");
    bool sid = false, exp = false, mac = false, ak = false;
    size_t cap = 0;
    for (;;) {
        if (xml_next(x, &t))
            return cmn_err_set(err, LODE_EBADMSG, "session document: %s", x->why);
        if (t == XML_END)
            break;
        if (t != XML_START)
            return cmn_err_set(err, LODE_EBADMSG, "session document: text inside <LodeSession>");
        if (strcmp(x->name, "Source") == 0) {
            if (s->n_src == LC_SESSION_MAX_SOURCES)
                return cmn_err_set(err, LODE_EBADMSG, "session document: more than %d sources",
                                   LC_SESSION_MAX_SOURCES);
            if (s->n_src == cap) {
                size_t nc = cap ? 2 * cap : 16;
                void *p = realloc(s->src, nc * sizeof(*s->src));
                if (!p)
                    return cmn_err_set(err, -ENOMEM, "session document: out of memory");
                s->src = p;
                cap = nc;
            }
            int rc = parse_source(x, &s->src[s->n_src], err);
            if (rc)
                return rc;
            for (size_t k = 0; k < s->n_src; k++)
                if (s->src[k].id == s->src[s->n_src].id)
                    return cmn_err_set(err, LODE_EBADMSG,
                                       "session document: source id %u listed twice",
                                       s->src[k].id);
            s->n_src++;
            continue;
        }
        bool is_sid = strcmp(x->name, "Sid") == 0, is_exp = strcmp(x->name, "Expires") == 0,
             is_mac = strcmp(x->name, "Mac") == 0, is_ak = strcmp(x->name, "AccessKey") == 0;
        if (!is_sid && !is_exp && !is_mac && !is_ak) {
            if (xml_skip(x))
                return cmn_err_set(err, LODE_EBADMSG, "session document: %s", x->why);
            continue;
        }
        if (xml_leaf(x))
            return cmn_err_set(err, LODE_EBADMSG, "session document: %s", x->why);
        if (is_sid) {
            if (sid || unhex(x->text, x->text_len, s->sid, sizeof(s->sid)))
                return cmn_err_set(err, LODE_EBADMSG, "session document: bad <Sid>");
            sid = true;
        } else if (is_exp) {
            if (exp || lc_parse_u64(x->text, x->text_len, &s->expires_ms))
                return cmn_err_set(err, LODE_EBADMSG, "session document: bad <Expires>");
            exp = true;
        } else if (is_mac) {
            if (mac || unhex(x->text, x->text_len, s->mac, sizeof(s->mac)))
                return cmn_err_set(err, LODE_EBADMSG, "session document: bad <Mac>");
            mac = true;
        } else {
            bool okc = x->text_len > 0 && x->text_len <= LC_ACCESS_KEY_MAX;
            for (size_t k = 0; okc && k < x->text_len; k++)
                okc = (unsigned char)x->text[k] > 0x20 && (unsigned char)x->text[k] < 0x7f;
            if (ak || !okc)
                return cmn_err_set(err, LODE_EBADMSG, "session document: bad <AccessKey>");
            memcpy(s->access_key, x->text, x->text_len + 1);
            ak = true;
        }
    }
    if (xml_next(x, &t) || t != XML_EOF)
        return cmn_err_set(err, LODE_EBADMSG, "session document: %s",
                           x->why ? x->why : "content after the root element");
    if (!sid || !exp || !mac || !ak)
        return cmn_err_set(err, LODE_EBADMSG, "session document: missing <%s>",
                           !sid ? "Sid" : !exp ? "Expires" : !mac ? "Mac" : "AccessKey");
    if (s->n_src == 0)
        return cmn_err_set(err, LODE_EBADMSG, "session document: no <Source>");
    return 0;
}

int lc_session_parse(const char *doc, size_t n, struct lc_session *out,
                        struct cmn_err *err)
{
    memset(out, 0, sizeof(*out));
    if (n > LC_SESSION_DOC_MAX)
        return cmn_err_set(err, LODE_EBADMSG, "session document over %d bytes",
                           LC_SESSION_DOC_MAX);
    struct xml *x = malloc(sizeof(*x));
    if (!x)
        return cmn_err_set(err, -ENOMEM, "session document: out of memory");
    xml_init(x, doc, n);
    int rc = session_body(x, out, err);
    free(x);
    if (rc)
        lc_session_free(out);
    return rc;
}

void lc_session_free(struct lc_session *s)
{
    free(s->src);
    memset(s, 0, sizeof(*s));
}

static void copy_printable(char *dst, size_t cap, const char *src, size_t n)
{
    if (cap == 0)
        return;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : (c == '\n' || c == '\t') ? ' ' : '?';
    }
    dst[o] = '\0';
}

int lc_s3_error_parse(const char *doc, size_t n, char *code, size_t code_cap, char *msg,
                         size_t msg_cap)
{
    if (code_cap)
        code[0] = '\0';
    if (msg_cap)
        msg[0] = '\0';
    if (n > 64 * 1024)
        return LODE_EBADMSG;
    struct xml *x = malloc(sizeof(*x));
    if (!x)
        return -ENOMEM;
    xml_init(x, doc, n);
    enum xml_tok t;
    int rc = LODE_EBADMSG;
    if (xml_next(x, &t) || t != XML_START || strcmp(x->name, "Error") != 0)
        goto out;
    for (;;) {
        if (xml_next(x, &t) || t == XML_TEXT)
            goto out;
        if (t == XML_END)
            break;
        bool is_code = strcmp(x->name, "Code") == 0, is_msg = strcmp(x->name, "Message") == 0;
        if (!is_code && !is_msg) {
            if (xml_skip(x))
                goto out;
            continue;
        }
        if (xml_leaf(x))
            goto out;
        if (is_code)
            copy_printable(code, code_cap, x->text, x->text_len);
        else
            copy_printable(msg, msg_cap, x->text, x->text_len);
    }
    rc = 0;
out:
    if (rc) {
        if (code_cap)
            code[0] = '\0';
        if (msg_cap)
            msg[0] = '\0';
    }
    free(x);
    return rc;
}

int lc_s3_result_field(const char *doc, size_t n, const char *root, const char *field,
                       char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (n > 64 * 1024 || cap == 0)
        return LODE_EBADMSG;
    struct xml *x = malloc(sizeof(*x));
    if (!x)
        return -ENOMEM;
    xml_init(x, doc, n);
    enum xml_tok t;
    int rc = LODE_EBADMSG;
    bool found = false;
    if (xml_next(x, &t) || t != XML_START || strcmp(x->name, root) != 0)
        goto out;
    for (;;) {
        if (xml_next(x, &t) || t == XML_TEXT)
            goto out;
        if (t == XML_END)
            break;
        if (strcmp(x->name, field) != 0) {
            if (xml_skip(x))
                goto out;
            continue;
        }
        /* Once, not empty, printable, and whole: a truncated upload id names nothing. */
        if (found || xml_leaf(x) || x->text_len == 0 || x->text_len >= cap)
            goto out;
        for (size_t i = 0; i < x->text_len; i++)
            if ((unsigned char)x->text[i] < 0x20 || (unsigned char)x->text[i] >= 0x7f)
                goto out;
        memcpy(out, x->text, x->text_len + 1);
        found = true;
    }
    /* Nothing may follow the root but whitespace and comments. */
    if (found && xml_next(x, &t) == 0 && t == XML_EOF)
        rc = 0;
out:
    if (rc)
        out[0] = '\0';
    free(x);
    return rc;
}
