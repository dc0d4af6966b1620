/* The XML writer; see xml.h for the contract. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "gateway/s3_util.h"
#include "gateway/xml.h"

void gw_xml_w_init(struct gw_xml_w *w, size_t limit)
{
    memset(w, 0, sizeof(*w));
    w->limit = limit;
}

void gw_xml_w_free(struct gw_xml_w *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->alloc = 0;
}

/* Room for `extra` more bytes plus the final NUL, within the cap. */
static bool w_reserve(struct gw_xml_w *w, size_t extra)
{
    if (w->err)
        return false;
    if (extra > w->limit - w->len) {
        w->err = LODE_ETOOLARGE;
        return false;
    }
    size_t need = w->len + extra + 1;
    if (need <= w->alloc)
        return true;
    size_t a = w->alloc ? w->alloc : 256;
    while (a < need)
        a = a > SIZE_MAX / 2 ? need : a * 2;
    if (a > w->limit + 1)
        a = w->limit + 1;
    char *b = realloc(w->buf, a);
    if (!b) {
        w->err = -ENOMEM;
        return false;
    }
    w->buf = b;
    w->alloc = a;
    return true;
}

static void w_put(struct gw_xml_w *w, const char *s, size_t n)
{
    if (!w_reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void w_puts(struct gw_xml_w *w, const char *s)
{
    w_put(w, s, strlen(s));
}

/* Escapes text (or an attribute value, where tab and LF must be references too, since
 * attribute-value normalisation would turn them into spaces). */
static void w_escaped(struct gw_xml_w *w, const char *s, size_t n, bool attr)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: bytes at p + i - run that need no escaping */
    while (i < n && !w->err) {
        const char *rep = NULL;
        unsigned char c = p[i];
        size_t adv = 1;
        if (c >= 0x80) {
            uint32_t cp;
            adv = gw_utf8_decode(p + i, n - i, &cp);
            if (adv == 0 || !gw_xml_char_ok(cp)) {
                rep = "\xEF\xBF\xBD"; /* U+FFFD */
                adv = adv ? adv : 1;
                w->replaced++;
            }
        } else if (c == '&') {
            rep = "&amp;";
        } else if (c == '<') {
            rep = "&lt;";
        } else if (c == '>') {
            rep = "&gt;";
        } else if (c == '"') {
            rep = "&quot;";
        } else if (c == '\'') {
            rep = "&apos;";
        } else if (c == '\r') {
            rep = "&#13;"; /* a raw CR would be read back as LF */
        } else if (c == '\t' || c == '\n') {
            if (attr)
                rep = c == '\t' ? "&#9;" : "&#10;";
        } else if (c < 0x20) {
            rep = "\xEF\xBF\xBD";
            w->replaced++;
        }
        if (rep) {
            w_put(w, s + i - run, run);
            w_puts(w, rep);
            run = 0;
        } else {
            run += adv;
        }
        i += adv;
    }
    w_put(w, s + i - run, run);
}

bool gw_xml_name_ok(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s), colons = 0;
    if (n == 0 || n > 64 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
                              s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (c == ':') {
            colons++;
            continue;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return colons <= 1 && s[n - 1] != ':';
}

void gw_xml_w_decl(struct gw_xml_w *w)
{
    w_puts(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
}

void gw_xml_w_open_attrs(struct gw_xml_w *w, const char *name, const char *const *attrs,
                         size_t n_attrs)
{
    if (w->err)
        return;
    if (!gw_xml_name_ok(name) || w->depth >= GW_XML_W_MAX_DEPTH) {
        w->err = -EINVAL;
        return;
    }
    for (size_t i = 0; i < n_attrs; i++)
        if (!gw_xml_name_ok(attrs[2 * i]) || !attrs[2 * i + 1]) {
            w->err = -EINVAL;
            return;
        }
    w_puts(w, "<");
    w_puts(w, name);
    for (size_t i = 0; i < n_attrs; i++) {
        w_puts(w, " ");
        w_puts(w, attrs[2 * i]);
        w_puts(w, "=\"");
        w_escaped(w, attrs[2 * i + 1], strlen(attrs[2 * i + 1]), true);
        w_puts(w, "\"");
    }
    w_puts(w, ">");
    if (!w->err)
        w->open[w->depth++] = name;
}

void gw_xml_w_open(struct gw_xml_w *w, const char *name)
{
    gw_xml_w_open_attrs(w, name, NULL, 0);
}

void gw_xml_w_close(struct gw_xml_w *w)
{
    if (w->err)
        return;
    if (w->depth == 0) {
        w->err = -EINVAL;
        return;
    }
    const char *name = w->open[--w->depth];
    w_puts(w, "</");
    w_puts(w, name);
    w_puts(w, ">");
}

void gw_xml_w_text(struct gw_xml_w *w, const char *s, size_t n)
{
    if (w->depth == 0 && !w->err)
        w->err = -EINVAL; /* text outside the root element */
    w_escaped(w, s, n, false);
}

void gw_xml_w_elem(struct gw_xml_w *w, const char *name, const char *s, size_t n)
{
    gw_xml_w_open(w, name);
    w_escaped(w, s, n, false);
    gw_xml_w_close(w);
}

void gw_xml_w_elem_cstr(struct gw_xml_w *w, const char *name, const char *s)
{
    gw_xml_w_elem(w, name, s ? s : "", s ? strlen(s) : 0);
}

void gw_xml_w_elem_u64(struct gw_xml_w *w, const char *name, uint64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%" PRIu64, v);
    gw_xml_w_elem(w, name, b, (size_t)n);
}

void gw_xml_w_elem_bool(struct gw_xml_w *w, const char *name, bool v)
{
    gw_xml_w_elem_cstr(w, name, v ? "true" : "false");
}

void gw_xml_w_elem_time(struct gw_xml_w *w, const char *name, int64_t ms)
{
    char b[GW_ISO8601_LEN + 1];
    if (gw_iso8601_format(ms, b) != 0) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    gw_xml_w_elem(w, name, b, GW_ISO8601_LEN);
}

void gw_xml_w_elem_url(struct gw_xml_w *w, const char *name, const char *s, size_t n,
                       bool url_encode)
{
    if (!url_encode) {
        gw_xml_w_elem(w, name, s, n);
        return;
    }
    gw_xml_w_open(w, name);
    char b[3 * 256];
    for (size_t i = 0; i < n; i += 256) {
        size_t k = n - i < 256 ? n - i : 256;
        w_put(w, b, gw_url_encode(s + i, k, b, true));
    }
    gw_xml_w_close(w);
}

void gw_xml_w_elem_etag(struct gw_xml_w *w, const char *name, const char *s, size_t n)
{
    bool quoted = n >= 2 && s[0] == '"' && s[n - 1] == '"';
    gw_xml_w_open(w, name);
    if (!quoted)
        w_puts(w, "&quot;");
    w_escaped(w, s, n, false);
    if (!quoted)
        w_puts(w, "&quot;");
    gw_xml_w_close(w);
}

int gw_xml_w_finish(struct gw_xml_w *w, char **out, size_t *len)
{
    if (!w->err && w->depth != 0)
        w->err = -EINVAL;
    if (!w->err)
        w_reserve(w, 0);
    if (w->err)
        return w->err;
    w->buf[w->len] = '\0';
    *out = w->buf;
    *len = w->len;
    w->buf = NULL;
    w->len = w->alloc = 0;
    return 0;
}
