/* lodectl output: aligned text tables for people, JSON documents for scripts.
 *
 * Tables collect every cell first (so column widths are known), then print. Cell text is
 * copied; bytes that would confuse a terminal (control characters) are shown as \xNN.
 *
 * The JSON writer streams to a FILE and keeps just enough state to place commas and check
 * nesting. Strings are escaped per RFC 8259; invalid UTF-8 becomes U+FFFD, so the output
 * always parses whatever bytes a name holds. All functions abort on allocation failure (a
 * CLI has nothing better to do).
 */
#ifndef LODE_CLI_OUTPUT_H
#define LODE_CLI_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cli_table;

/* Columns named by `headers` (ncols of them; copied). */
struct cli_table *cli_table_create(unsigned ncols, const char *const *headers);
void cli_table_destroy(struct cli_table *t);
/* Starts a new row; then cli_table_cell once per column (missing cells print empty). */
void cli_table_row(struct cli_table *t);
void cli_table_cell(struct cli_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Right-aligns column `col` (numbers). */
void cli_table_align_right(struct cli_table *t, unsigned col);
/* Prints the header and rows, columns separated by two spaces, no trailing blanks. */
void cli_table_print(const struct cli_table *t, FILE *out);
unsigned cli_table_rows(const struct cli_table *t);

#define CLI_JSON_MAX_DEPTH 32

struct cli_json {
    FILE *out;
    int depth;
    bool first[CLI_JSON_MAX_DEPTH]; /* no member written yet at this level */
    bool after_key;                 /* a key was written; its value comes next */
};

void cli_json_init(struct cli_json *j, FILE *out);
void cli_json_object_begin(struct cli_json *j);
void cli_json_object_end(struct cli_json *j);
void cli_json_array_begin(struct cli_json *j);
void cli_json_array_end(struct cli_json *j);
void cli_json_key(struct cli_json *j, const char *key);
void cli_json_string(struct cli_json *j, const char *s);   /* NULL writes null */
void cli_json_string_n(struct cli_json *j, const char *s, size_t len);
void cli_json_int(struct cli_json *j, int64_t v);
void cli_json_uint(struct cli_json *j, uint64_t v);
void cli_json_bool(struct cli_json *j, bool v);
void cli_json_null(struct cli_json *j);
/* Ends the document with a newline. */
void cli_json_finish(struct cli_json *j);

/* Writes s as a JSON string literal (with quotes) to out. */
void cli_json_write_string(FILE *out, const char *s, size_t len);

#endif
