/* lodectl output: tables and JSON (see output.h). */
#include "cli/output.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("lodectl: out of memory\n", stderr);
        abort();
    }
    return q;
}

/* ---- tables ---- */

struct cli_table {
    unsigned ncols;
    char **headers;
    bool *right;
    char **cells;                /* rows * ncols, row-major; NULL = empty */
    unsigned rows, cap_rows;
    unsigned cur_col;            /* next cell of the current row */
};

struct cli_table *cli_table_create(unsigned ncols, const char *const *headers)
{
    struct cli_table *t = xrealloc(NULL, sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    t->headers = xrealloc(NULL, ncols * sizeof(char *));
    t->right = xrealloc(NULL, ncols * sizeof(bool));
    for (unsigned i = 0; i < ncols; i++) {
        t->headers[i] = strdup(headers[i]);
        if (!t->headers[i])
            abort();
        t->right[i] = false;
    }
    return t;
}

void cli_table_destroy(struct cli_table *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < t->ncols; i++)
        free(t->headers[i]);
    for (size_t i = 0; i < (size_t)t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->headers);
    free(t->right);
    free(t->cells);
    free(t);
}

void cli_table_row(struct cli_table *t)
{
    if (t->rows == t->cap_rows) {
        t->cap_rows = t->cap_rows ? t->cap_rows * 2 : 8;
        t->cells = xrealloc(t->cells, (size_t)t->cap_rows * t->ncols * sizeof(char *));
    }
    memset(&t->cells[(size_t)t->rows * t->ncols], 0, t->ncols * sizeof(char *));
    t->rows++;
    t->cur_col = 0;
}

/* Copies s with control characters shown as \xNN, so a hostile name cannot move the cursor
 * or clear the screen. */
static char *sanitize(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *out = xrealloc(NULL, n * 4 + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            o += (size_t)sprintf(out + o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

void cli_table_cell(struct cli_table *t, const char *fmt, ...)
{
    va_list ap;
    char *raw = NULL;
    if (t->rows == 0 || t->cur_col >= t->ncols)
        return;
    va_start(ap, fmt);
    int n = vasprintf(&raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    t->cells[(size_t)(t->rows - 1) * t->ncols + t->cur_col++] = sanitize(raw);
    free(raw);
}

void cli_table_align_right(struct cli_table *t, unsigned col)
{
    if (col < t->ncols)
        t->right[col] = true;
}

unsigned cli_table_rows(const struct cli_table *t)
{
    return t->rows;
}

/* Display width: code points, not bytes (continuation bytes do not advance the cursor). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; s && *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void print_row(const struct cli_table *t, char *const *row, const size_t *w, FILE *out)
{
    char *line = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&line, &len);
    if (!m)
        abort();
    for (unsigned c = 0; c < t->ncols; c++) {
        const char *s = row[c] ? row[c] : "";
        int pad = (int)(w[c] - width(s));
        if (t->right[c])
            fprintf(m, "%*s%s", pad, "", s);
        else
            fprintf(m, "%s%*s", s, pad, "");
        if (c + 1 < t->ncols)
            fputs("  ", m);
    }
    fclose(m);
    /* Empty trailing cells would leave blanks that break `grep ' $'`-style checks. */
    while (len && line[len - 1] == ' ')
        len--;
    fwrite(line, 1, len, out);
    fputc('\n', out);
    free(line);
}

void cli_table_print(const struct cli_table *t, FILE *out)
{
    size_t *w = xrealloc(NULL, t->ncols * sizeof(size_t));
    for (unsigned c = 0; c < t->ncols; c++) {
        w[c] = width(t->headers[c]);
        for (unsigned r = 0; r < t->rows; r++) {
            size_t cw = width(t->cells[(size_t)r * t->ncols + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    }
    print_row(t, t->headers, w, out);
    for (unsigned r = 0; r < t->rows; r++)
        print_row(t, &t->cells[(size_t)r * t->ncols], w, out);
    free(w);
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one (overlong forms,
 * surrogates and code points above U+10FFFF are invalid too). */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void cli_json_write_string(FILE *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        switch (c) {
        case '"': fputs("\\\"", out); i++; continue;
        case '\\': fputs("\\\\", out); i++; continue;
        case '\b': fputs("\\b", out); i++; continue;
        case '\f': fputs("\\f", out); i++; continue;
        case '\n': fputs("\\n", out); i++; continue;
        case '\r': fputs("\\r", out); i++; continue;
        case '\t': fputs("\\t", out); i++; continue;
        default: break;
        }
        if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
            i++;
            continue;
        }
        size_t n = utf8_len(s + i, len - i);
        if (n == 0) {
            fputs("\\ufffd", out);
            i++;
            continue;
        }
        fwrite(s + i, 1, n, out);
        i += n;
    }
    fputc('"', out);
}

void cli_json_init(struct cli_json *j, FILE *out)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
    j->first[0] = true;
}

/* Separator before a value or key at the current level. */
static void before_value(struct cli_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (!j->first[j->depth])
        fputc(',', j->out);
    j->first[j->depth] = false;
}

static void open_level(struct cli_json *j, char ch)
{
    before_value(j);
    fputc(ch, j->out);
    if (j->depth + 1 >= CLI_JSON_MAX_DEPTH)
        abort(); /* a programming error: lodectl documents are shallow */
    j->first[++j->depth] = true;
}

static void close_level(struct cli_json *j, char ch)
{
    if (j->depth == 0)
        abort();
    j->depth--;
    fputc(ch, j->out);
}

void cli_json_object_begin(struct cli_json *j)
{
    open_level(j, '{');
}

void cli_json_object_end(struct cli_json *j)
{
    close_level(j, '}');
}

void cli_json_array_begin(struct cli_json *j)
{
    open_level(j, '[');
}

void cli_json_array_end(struct cli_json *j)
{
    close_level(j, ']');
}

void cli_json_key(struct cli_json *j, const char *key)
{
    before_value(j);
    cli_json_write_string(j->out, key, strlen(key));
    fputc(':', j->out);
    j->after_key = true;
}

void cli_json_string_n(struct cli_json *j, const char *s, size_t len)
{
    before_value(j);
    cli_json_write_string(j->out, s, len);
}

void cli_json_string(struct cli_json *j, const char *s)
{
    if (!s) {
        cli_json_null(j);
        return;
    }
    cli_json_string_n(j, s, strlen(s));
}

void cli_json_int(struct cli_json *j, int64_t v)
{
    before_value(j);
    fprintf(j->out, "%lld", (long long)v);
}

void cli_json_uint(struct cli_json *j, uint64_t v)
{
    before_value(j);
    fprintf(j->out, "%llu", (unsigned long long)v);
}

void cli_json_bool(struct cli_json *j, bool v)
{
    before_value(j);
    fputs(v ? "true" : "false", j->out);
}

void cli_json_null(struct cli_json *j)
{
    before_value(j);
    fputs("null", j->out);
}

void cli_json_finish(struct cli_json *j)
{
    fputc('\n', j->out);
    fflush(j->out);
}
