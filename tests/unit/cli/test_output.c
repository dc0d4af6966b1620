/* lodectl output: table alignment and sanitising, JSON structure and string escaping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/output.h"
#include "tests/tap.h"

/* Runs fn writing into a memory stream; returns the text (caller frees). */
static char *capture(void (*fn)(FILE *out))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        tap_bail("open_memstream");
    fn(f);
    fclose(f);
    return buf;
}

static void table_basic(FILE *out)
{
    static const char *const hdr[] = {"ID", "NAME", "SIZE"};
    struct cli_table *t = cli_table_create(3, hdr);
    cli_table_align_right(t, 2);
    cli_table_row(t);
    cli_table_cell(t, "%d", 1);
    cli_table_cell(t, "alpha");
    cli_table_cell(t, "%d", 5);
    cli_table_row(t);
    cli_table_cell(t, "%d", 22);
    cli_table_cell(t, "b");
    cli_table_cell(t, "%d", 12345);
    cli_table_print(t, out);
    cli_table_destroy(t);
}

static void table_hostile(FILE *out)
{
    static const char *const hdr[] = {"NAME", "OWNER"};
    struct cli_table *t = cli_table_create(2, hdr);
    cli_table_row(t);
    cli_table_cell(t, "%s", "evil\n\x1b[2J");
    cli_table_cell(t, "%s", "h\xc3\xa9");   /* "hé": 2 columns wide, 3 bytes */
    cli_table_row(t);                        /* missing cells print empty */
    cli_table_cell(t, "%s", "x");
    cli_table_print(t, out);
    cli_table_destroy(t);
}

static void json_doc(FILE *out)
{
    struct cli_json j;
    cli_json_init(&j, out);
    cli_json_object_begin(&j);
    cli_json_key(&j, "s");
    cli_json_string(&j, "q\"b\\n\n\t\x01/\xc3\xa9");
    cli_json_key(&j, "bad");
    cli_json_string(&j, "a\xff\xc0\xafz\xed\xa0\x80");  /* invalid byte, overlong, surrogate */
    cli_json_key(&j, "n");
    cli_json_int(&j, -5);
    cli_json_key(&j, "u");
    cli_json_uint(&j, 18446744073709551615ull);
    cli_json_key(&j, "a");
    cli_json_array_begin(&j);
    cli_json_bool(&j, true);
    cli_json_null(&j);
    cli_json_string(&j, NULL);
    cli_json_object_begin(&j);
    cli_json_object_end(&j);
    cli_json_array_begin(&j);
    cli_json_array_end(&j);
    cli_json_array_end(&j);
    cli_json_key(&j, "emoji");
    cli_json_string(&j, "\xf0\x9f\x98\x80");
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

int main(void)
{
    char *s = capture(table_basic);
    is_str(s,
           "ID  NAME    SIZE\n"
           "1   alpha      5\n"
           "22  b      12345\n",
           "columns are aligned; right-aligned numbers; no trailing blanks");
    free(s);

    s = capture(table_hostile);
    is_str(s,
           "NAME             OWNER\n"
           "evil\\x0a\\x1b[2J  h\xc3\xa9\n"
           "x\n",
           "control characters are shown as \\xNN; width counts code points; missing cells");
    free(s);

    s = capture(json_doc);
    is_str(s,
           "{\"s\":\"q\\\"b\\\\n\\n\\t\\u0001/\xc3\xa9\","
           "\"bad\":\"a\\ufffd\\ufffd\\ufffdz\\ufffd\\ufffd\\ufffd\","
           "\"n\":-5,\"u\":18446744073709551615,"
           "\"a\":[true,null,null,{},[]],"
           "\"emoji\":\"\xf0\x9f\x98\x80\"}\n",
           "JSON: escapes, U+FFFD for invalid UTF-8, commas, nesting");
    free(s);

    /* The same document through a real parser, when one is around. */
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        FILE *p = popen("python3 -c 'import json,sys; d=json.load(sys.stdin); "
                        "sys.exit(0 if d[\"s\"].endswith(\"/\\u00e9\") and "
                        "d[\"u\"] == 18446744073709551615 else 3)'",
                        "w");
        if (p) {
            s = capture(json_doc);
            fputs(s, p);
            free(s);
            is_int(pclose(p), 0, "python3's json module parses the document");
        }
    }
    return tap_done();
}
