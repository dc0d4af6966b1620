/* The XML reader and writer (gateway/xml.c, gateway/xml_write.c): well-formed documents as S3
 * clients send them, hostile documents (entity bombs, DOCTYPE, deep nesting, huge names, bad
 * UTF-8, unclosed and mismatched tags, '<' in attributes, truncations), the limits, exact
 * writer output, and writer-to-reader round trips of arbitrary text. The rules are those of
 * XML 1.0 (fifth edition) and Namespaces in XML 1.0. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "gateway/s3_util.h"
#include "gateway/xml.h"
#include "tests/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static enum gw_s3_error parse(const char *s, struct gw_xml_doc *d, struct gw_s3_err *e)
{
    gw_s3_err_clear(e);
    return gw_xml_parse(s, strlen(s), NULL, d, e);
}

static void test_wellformed(void)
{
    struct gw_xml_doc d;
    struct gw_s3_err e;
    const char *doc =
        "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\" standalone='yes' ?>\r\n"
        "<!-- a comment -->\n"
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\r\n"
        "  <Part><PartNumber> 1 </PartNumber><ETag>&quot;abc&quot;</ETag></Part>\n"
        "  <!-- between -->\n"
        "  <Part>\n"
        "    <PartNumber>2</PartNumber>\n"
        "    <ETag><![CDATA[\"<x>&amp;\"]]></ETag>\n"
        "    <s3:Note xmlns:s3='urn:x'>caf&#xE9; &#233;&#x1F600; a&lt;b&gt;c&apos;d&amp;e</s3:Note>\n"
        "    <Empty/><Empty2></Empty2><Spaced   >  </Spaced   >\n"
        "    <Lines>a\r\nb\rc\nd&#13;e</Lines>\n"
        "  </Part>\n"
        "</CompleteMultipartUpload>\n<!-- trailing -->\n  ";
    ok(parse(doc, &d, &e) == GW_S3_OK, "a document with every accepted construct parses (%s)",
       e.msg);
    const struct gw_xml_node *root = gw_xml_root(&d);
    ok(gw_xml_is(root, "CompleteMultipartUpload") && root->n_children == 2 && root->depth == 1,
       "root and its two children");
    const struct gw_xml_node *p1 = gw_xml_child(&d, root, "Part");
    const struct gw_xml_node *p2 = p1 ? gw_xml_next(&d, p1, "Part") : NULL;
    ok(p1 && p2 && gw_xml_next(&d, p2, NULL) == NULL, "sibling navigation");
    const struct gw_xml_node *n = p1 ? gw_xml_child(&d, p1, "PartNumber") : NULL;
    ok(n && strcmp(n->text, " 1 ") == 0 && n->text_len == 3, "text kept exactly");
    n = p1 ? gw_xml_child(&d, p1, "ETag") : NULL;
    ok(n && strcmp(n->text, "\"abc\"") == 0, "&quot; decoded");
    n = p2 ? gw_xml_child(&d, p2, "ETag") : NULL;
    ok(n && strcmp(n->text, "\"<x>&amp;\"") == 0, "CDATA kept raw");
    n = p2 ? gw_xml_child(&d, p2, "Note") : NULL;
    ok(n && strcmp(n->text, "caf\xc3\xa9 \xc3\xa9\xf0\x9f\x98\x80 a<b>c'd&e") == 0,
       "prefixed element known by its local name; references decoded to UTF-8");
    ok(n && n->depth == 3 && n->parent == (uint32_t)(p2 - d.nodes), "depth and parent");
    n = p2 ? gw_xml_child(&d, p2, "Empty") : NULL;
    ok(n && n->text_len == 0 && n->text && n->text[0] == '\0', "empty-element tag");
    n = p2 ? gw_xml_child(&d, p2, "Spaced") : NULL;
    ok(n && strcmp(n->text, "  ") == 0, "whitespace in tags; whitespace text of a leaf kept");
    n = p2 ? gw_xml_child(&d, p2, "Lines") : NULL;
    ok(n && strcmp(n->text, "a\nb\nc\nd\re") == 0, "CR LF and CR read as LF; &#13; is a CR");
    ok(p1 && strcmp(p1->text, "") == 0, "an element with children has no text");
    ok(gw_xml_child(&d, root, "Nope") == NULL, "missing child");
    gw_xml_doc_free(&d);
    gw_xml_doc_free(&d); /* twice is harmless */

    ok(parse("<a/>", &d, &e) == GW_S3_OK && d.n == 1, "smallest document");
    gw_xml_doc_free(&d);
    ok(parse("<p:a xmlns:p='u'><p:b/><c xmlns='v'/></p:a>", &d, &e) == GW_S3_OK, "namespaces");
    gw_xml_doc_free(&d);
    ok(parse("<a xml:lang='en'/>", &d, &e) == GW_S3_OK, "the xml prefix needs no declaration");
    gw_xml_doc_free(&d);
    ok(parse("<\xc3\xa9l\xc3\xa9ment/>", &d, &e) == GW_S3_OK && strcmp(d.nodes[0].name, "\xc3\xa9l\xc3\xa9ment") == 0,
       "non-ASCII names");
    gw_xml_doc_free(&d);
}

static void test_hostile(void)
{
    static const struct {
        const char *doc;
        const char *why;
    } v[] = {
        {"", "empty body"},
        {"   ", "only whitespace"},
        {"<?xml version=\"1.0\"?>", "declaration only"},
        {"<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>"
         "<lolz>&lol2;</lolz>",
         "billion laughs"},
        {"<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a/>", "external DTD"},
        {"<a>&xxe;</a>", "undeclared entity"},
        {"<a>&lt</a>", "entity without ';'"},
        {"<a>&#0;</a>", "reference to NUL"},
        {"<a>&#x1;</a>", "reference to a C0 control"},
        {"<a>&#xD800;</a>", "reference to a surrogate"},
        {"<a>&#xFFFE;</a>", "reference to U+FFFE"},
        {"<a>&#x110000;</a>", "reference past U+10FFFF"},
        {"<a>&#99999999999;</a>", "overlong reference"},
        {"<a>&#;</a>", "empty reference"},
        {"<a>&#x;</a>", "empty hex reference"},
        {"<a>&#12a;</a>", "bad digit in a reference"},
        {"<?xml-stylesheet href='x'?><a/>", "processing instruction"},
        {"<a><?php echo 1; ?></a>", "processing instruction in content"},
        {"<a/><?x?>", "processing instruction after the root"},
        {"<a/>\n<?xml version=\"1.0\"?>", "XML declaration not at the start"},
        {" <?xml version=\"1.0\"?><a/>", "XML declaration after whitespace"},
        {"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>", "non-UTF-8 encoding"},
        {"<?xml version=\"2.0\"?><a/>", "XML 2.0"},
        {"<?xml encoding=\"UTF-8\"?><a/>", "declaration without version"},
        {"<?xml version=\"1.0\" standalone=\"maybe\"?><a/>", "bad standalone"},
        {"<?xml version=\"1.0\"encoding=\"UTF-8\"?><a/>", "no space in the declaration"},
        {"<a>", "unclosed root"},
        {"<a><b></a>", "unclosed child"},
        {"<a></b>", "mismatched tags"},
        {"<a><b></a></b>", "crossed tags"},
        {"<a></A>", "tags are case-sensitive"},
        {"<a/><b/>", "two roots"},
        {"text<a/>", "text before the root"},
        {"<a/>text", "text after the root"},
        {"<a x='<'/>", "'<' in an attribute"},
        {"<a x=\"1\" x=\"2\"/>", "repeated attribute"},
        {"<a x=1/>", "unquoted attribute"},
        {"<a x='1'y='2'/>", "attributes without whitespace between"},
        {"<a x='1/>", "unterminated attribute"},
        {"<a x='&bogus;'/>", "undeclared entity in an attribute"},
        {"<p:a/>", "undeclared prefix"},
        {"<a p:x='1'/>", "undeclared attribute prefix"},
        {"<xmlns:a/>", "xmlns as an element prefix"},
        {"<a xmlns:p=''/>", "empty prefixed namespace"},
        {"<a:/>", "name ending with ':'"},
        {"<a:b:c/>", "two colons"},
        {"<a:1 xmlns:a='u'/>", "local name starting with a digit"},
        {"<1a/>", "name starting with a digit"},
        {"< a/>", "space before the name"},
        {"<a>x<b/></a>", "text before a child (mixed content)"},
        {"<a><b/>x</a>", "text after a child (mixed content)"},
        {"<a>x]]>y</a>", "']]>' in text"},
        {"<a><!-- a -- b --></a>", "'--' in a comment"},
        {"<a><!-- a ---></a>", "comment ending in '-'"},
        {"<a><!-- unterminated </a>", "unterminated comment"},
        {"<a><![CDATA[ unterminated </a>", "unterminated CDATA"},
        {"<![CDATA[x]]><a/>", "CDATA outside the root"},
        {"<a><!ELEMENT a ANY></a>", "declaration in content"},
        {"<a>\x01</a>", "raw control character"},
        {"<a>\x7f\x1b</a>", "raw ESC"},
        {"<a>\xff</a>", "invalid UTF-8 in text"},
        {"<a>\xc0\xaf</a>", "overlong UTF-8"},
        {"<a>\xed\xa0\x80</a>", "UTF-8 surrogate"},
        {"<a>\xef\xbf\xbe</a>", "raw U+FFFE"},
        {"<a\xff/>", "invalid UTF-8 in a name"},
        {"<a x='\xff'/>", "invalid UTF-8 in an attribute"},
        {"<a><!-- \xff --></a>", "invalid UTF-8 in a comment"},
        {"<a></a ", "truncated end tag"},
        {"<a", "truncated start tag"},
        {"<a b", "truncated attribute"},
        {"<a>&", "truncated reference"},
        {"<a>&#x4", "truncated character reference"},
    };
    struct gw_xml_doc d;
    struct gw_s3_err e;
    for (size_t i = 0; i < N(v); i++) {
        enum gw_s3_error rc = parse(v[i].doc, &d, &e);
        ok(rc == GW_S3_MALFORMED_XML && d.n == 0 && d.nodes == NULL && d.arena == NULL &&
               strstr(e.msg, "not well-formed") != NULL,
           "refused: %s (%s)", v[i].why, e.msg);
    }
    ok(parse("<!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>", &d, &e) == GW_S3_MALFORMED_XML &&
           strstr(e.msg, "DOCTYPE") != NULL && strstr(e.msg, "at byte 0") != NULL,
       "a DOCTYPE is refused as such, where it starts (%s)", e.msg);
    /* An embedded NUL byte (not expressible in the C strings above). */
    static const char nul[] = "<a>x\0y</a>";
    ok(gw_xml_parse(nul, sizeof(nul) - 1, NULL, &d, &e) == GW_S3_MALFORMED_XML, "raw NUL byte");

    /* Every proper prefix of a valid document is refused: truncation never passes. */
    static const char full[] = "<?xml version=\"1.0\"?><Delete xmlns=\"" GW_XML_NS_S3
                               "\"><Object><Key>a&amp;b</Key></Object><!--c--><Quiet>true"
                               "</Quiet></Delete>";
    bool all = true;
    for (size_t l = 0; l < sizeof(full) - 1; l++)
        if (gw_xml_parse(full, l, NULL, &d, &e) != GW_S3_MALFORMED_XML) {
            all = false;
            diag("prefix of %zu bytes accepted", l);
            gw_xml_doc_free(&d);
        }
    ok(all, "every truncation of a %zu-byte document is refused", sizeof(full) - 1);
    ok(gw_xml_parse(full, sizeof(full) - 1, NULL, &d, &e) == GW_S3_OK, "the whole one parses");
    gw_xml_doc_free(&d);
}

static void test_limits(void)
{
    struct gw_xml_doc d;
    struct gw_s3_err e;
    struct gw_xml_limits lim = gw_xml_limits_default;

    /* Depth: 8 by default. */
    char deep[4096];
    size_t l = 0;
    for (int i = 0; i < 8; i++)
        l += (size_t)snprintf(deep + l, sizeof(deep) - l, "<d%d>", i);
    for (int i = 7; i >= 0; i--)
        l += (size_t)snprintf(deep + l, sizeof(deep) - l, "</d%d>", i);
    ok(gw_xml_parse(deep, l, NULL, &d, &e) == GW_S3_OK && d.nodes[7].depth == 8, "depth 8 passes");
    gw_xml_doc_free(&d);
    l = 0;
    for (int i = 0; i < 9; i++)
        l += (size_t)snprintf(deep + l, sizeof(deep) - l, "<d>");
    for (int i = 0; i < 9; i++)
        l += (size_t)snprintf(deep + l, sizeof(deep) - l, "</d>");
    ok(gw_xml_parse(deep, l, NULL, &d, &e) == GW_S3_MALFORMED_XML && strstr(e.msg, "deeper"),
       "depth 9 is refused");
    /* A million nested opens cost nothing: refused at the first level too deep. */
    size_t big = 3u << 20;
    char *bomb = malloc(big);
    for (size_t i = 0; i + 3 <= big; i += 3)
        memcpy(bomb + i, "<a>", 3);
    lim.max_bytes = big;
    lim.max_depth = 100000;
    ok(gw_xml_parse(bomb, big / 3 * 3, &lim, &d, &e) == GW_S3_MALFORMED_XML &&
           strstr(e.msg, "deeper than 256"),
       "a requested depth above the 256 ceiling is capped");
    /* Element count. */
    lim = gw_xml_limits_default;
    lim.max_bytes = big;
    l = 0;
    memcpy(bomb, "<r>", 3);
    l = 3;
    for (int i = 0; i < 1000; i++, l += 4)
        memcpy(bomb + l, "<e/>", 4);
    memcpy(bomb + l, "</r>", 4);
    l += 4;
    ok(gw_xml_parse(bomb, l, &lim, &d, &e) == GW_S3_MALFORMED_XML && strstr(e.msg, "more than 1000 elements"),
       "1001 elements refused (root + 1000)");
    lim.max_elements = 1001;
    ok(gw_xml_parse(bomb, l, &lim, &d, &e) == GW_S3_OK && d.n == 1001 && d.nodes[0].n_children == 1000,
       "1001 elements allowed when the limit says so");
    gw_xml_doc_free(&d);
    /* Name length. */
    lim = gw_xml_limits_default;
    memset(bomb, 'n', 200);
    bomb[0] = '<';
    memcpy(bomb + 129, "/>", 2);
    ok(gw_xml_parse(bomb, 131, &lim, &d, &e) == GW_S3_OK, "a 128-byte name passes");
    gw_xml_doc_free(&d);
    bomb[129] = 'n';
    memcpy(bomb + 130, "/>", 2);
    ok(gw_xml_parse(bomb, 132, &lim, &d, &e) == GW_S3_MALFORMED_XML && strstr(e.msg, "name longer"),
       "a 129-byte name is refused");
    /* Text length, counted after decoding. */
    l = 0;
    memcpy(bomb, "<t>", 3);
    l = 3;
    for (int i = 0; i < 4096; i++)
        bomb[l++] = 'x';
    memcpy(bomb + l, "</t>", 4);
    ok(gw_xml_parse(bomb, l + 4, &lim, &d, &e) == GW_S3_OK && d.nodes[0].text_len == 4096,
       "4096 bytes of text pass");
    gw_xml_doc_free(&d);
    bomb[l++] = 'x';
    memcpy(bomb + l, "</t>", 4);
    ok(gw_xml_parse(bomb, l + 4, &lim, &d, &e) == GW_S3_MALFORMED_XML && strstr(e.msg, "text longer"),
       "4097 bytes of text are refused");
    /* Attributes. */
    ok(parse("<a a1='' a2='' a3='' a4='' a5='' a6='' a7='' a8=''/>", &d, &e) == GW_S3_OK,
       "8 attributes pass");
    gw_xml_doc_free(&d);
    ok(parse("<a a1='' a2='' a3='' a4='' a5='' a6='' a7='' a8='' a9=''/>", &d, &e) ==
           GW_S3_MALFORMED_XML,
       "9 attributes are refused");
    /* Body size: refused before parsing. */
    lim.max_bytes = 10;
    ok(gw_xml_parse("<a>12345</a>", 12, &lim, &d, &e) == GW_S3_MALFORMED_XML && strstr(e.msg, "larger"),
       "a body over max_bytes is refused");
    free(bomb);
}

static void test_writer(void)
{
    struct gw_xml_w w;
    char *out;
    size_t len;
    gw_xml_w_init(&w, 4096);
    gw_xml_w_decl(&w);
    static const char *const attrs[] = {"xmlns", GW_XML_NS_S3, "note", "q\"<&\t\n"};
    gw_xml_w_open_attrs(&w, "Root", attrs, 2);
    gw_xml_w_elem(&w, "T", "a&b<c>d\"e'f\rg\th\ni", 17);
    gw_xml_w_elem_u64(&w, "N", UINT64_MAX);
    gw_xml_w_elem_bool(&w, "B", false);
    gw_xml_w_elem_time(&w, "When", 1255369830123);
    gw_xml_w_elem_url(&w, "U", "a b/\xc3\xa9+", 7, true);
    gw_xml_w_elem_url(&w, "V", "a b", 3, false);
    gw_xml_w_elem_etag(&w, "E", "abc", 3);
    gw_xml_w_elem_etag(&w, "Q", "\"abc\"", 5);
    gw_xml_w_elem_cstr(&w, "Z", NULL);
    gw_xml_w_close(&w);
    ok(gw_xml_w_finish(&w, &out, &len) == 0, "document finished");
    static const char want[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Root xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\" note=\"q&quot;&lt;&amp;&#9;&#10;\">"
        "<T>a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;g\th\ni</T>"
        "<N>18446744073709551615</N><B>false</B><When>2009-10-12T17:50:30.123Z</When>"
        "<U>a%20b/%C3%A9%2B</U><V>a b</V><E>&quot;abc&quot;</E><Q>&quot;abc&quot;</Q><Z></Z>"
        "</Root>";
    is_str(out, want, "exact writer output, every escape");
    ok(len == strlen(want) && w.buf == NULL, "length, and the buffer was handed over");
    free(out);
    gw_xml_w_free(&w);

    /* Bytes XML cannot carry are replaced, and counted. */
    gw_xml_w_init(&w, 4096);
    gw_xml_w_open(&w, "a");
    gw_xml_w_text(&w, "x\x01y\xffz\xef\xbf\xbe.\xc3", 10);
    gw_xml_w_close(&w);
    ok(gw_xml_w_finish(&w, &out, &len) == 0 &&
           strcmp(out, "<a>x\xef\xbf\xbdy\xef\xbf\xbdz\xef\xbf\xbd.\xef\xbf\xbd</a>") == 0 &&
           w.replaced == 4,
       "C0 control, invalid byte, U+FFFE, truncated sequence: U+FFFD each");
    free(out);

    /* The cap. */
    gw_xml_w_init(&w, 20);
    gw_xml_w_open(&w, "a");
    gw_xml_w_text(&w, "0123456789012345", 16);
    gw_xml_w_close(&w);
    out = NULL;
    ok(gw_xml_w_finish(&w, &out, &len) == LODE_ETOOLARGE && out == NULL, "over the cap: ETOOLARGE");
    gw_xml_w_free(&w);
    gw_xml_w_init(&w, 9);
    gw_xml_w_elem(&w, "a", "12", 2); /* exactly 9 bytes: <a>12</a> */
    ok(gw_xml_w_finish(&w, &out, &len) == 0 && len == 9, "exactly at the cap");
    free(out);

    /* Misuse cannot produce a broken document. */
    static const char *const bad_names[] = {"", "1a", "a b", "a<", "a:", "a:b:c", "\xc3\xa9", NULL};
    for (size_t i = 0; i < N(bad_names); i++) {
        gw_xml_w_init(&w, 100);
        gw_xml_w_open(&w, bad_names[i]);
        ok(gw_xml_w_finish(&w, &out, &len) == -EINVAL, "bad element name #%zu refused", i);
        gw_xml_w_free(&w);
    }
    gw_xml_w_init(&w, 100);
    gw_xml_w_open(&w, "a");
    ok(gw_xml_w_finish(&w, &out, &len) == -EINVAL, "unclosed element");
    gw_xml_w_free(&w);
    gw_xml_w_init(&w, 100);
    gw_xml_w_close(&w);
    ok(gw_xml_w_finish(&w, &out, &len) == -EINVAL, "close without open");
    gw_xml_w_free(&w);
    gw_xml_w_init(&w, 100);
    gw_xml_w_text(&w, "x", 1);
    ok(gw_xml_w_finish(&w, &out, &len) == -EINVAL, "text outside an element");
    gw_xml_w_free(&w);
    gw_xml_w_init(&w, 1000);
    for (int i = 0; i < GW_XML_W_MAX_DEPTH + 1; i++)
        gw_xml_w_open(&w, "d");
    ok(w.err == -EINVAL, "deeper than %d", GW_XML_W_MAX_DEPTH);
    gw_xml_w_free(&w);
    gw_xml_w_init(&w, 100);
    gw_xml_w_elem_time(&w, "t", -5);
    ok(gw_xml_w_finish(&w, &out, &len) == -EINVAL, "a time out of range");
    gw_xml_w_free(&w);
    ok(gw_xml_name_ok("ArgumentName") && gw_xml_name_ok("xsi:type") && !gw_xml_name_ok("x y"),
       "name check");
}

static uint64_t rng = 88172645463325252ull;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* Random text from an alphabet of markup characters, whitespace, controls and UTF-8 of every
 * length; written, parsed back, compared: what the writer emits, the reader reads as written
 * (after the writer's U+FFFD replacement, which the reference copy applies too). */
static void test_round_trip(void)
{
    static const char *const atoms[] = {"a", "<", ">", "&", "\"", "'", " ", "\t", "\n", "\r",
                                        "]]>", "&amp;", "\xc3\xa9", "\xe6\x97\xa5",
                                        "\xf0\x9f\x98\x80", "\x01", "\xff", "\xef\xbf\xbf", "/",
                                        "%", "+", "--", "<!--", "<![CDATA["};
    int failures = 0;
    for (int round = 0; round < 500; round++) {
        char text[512], expect[2048];
        size_t tl = 0, el = 0;
        int atoms_n = 1 + (int)(next_rand() % 40);
        for (int k = 0; k < atoms_n; k++) {
            const char *a = atoms[next_rand() % N(atoms)];
            size_t al = strlen(a);
            memcpy(text + tl, a, al);
            tl += al;
            if (strcmp(a, "\x01") == 0 || strcmp(a, "\xff") == 0 || strcmp(a, "\xef\xbf\xbf") == 0)
                memcpy(expect + el, "\xef\xbf\xbd", 3), el += 3;
            else
                memcpy(expect + el, a, al), el += al;
        }
        struct gw_xml_w w;
        gw_xml_w_init(&w, 1 << 16);
        gw_xml_w_decl(&w);
        gw_xml_w_open(&w, "Root");
        gw_xml_w_elem(&w, "Key", text, tl);
        gw_xml_w_elem_url(&w, "Url", text, tl, true);
        gw_xml_w_close(&w);
        char *out;
        size_t len;
        struct gw_xml_doc d;
        if (gw_xml_w_finish(&w, &out, &len) != 0) {
            failures++;
            continue;
        }
        if (gw_xml_parse(out, len, NULL, &d, NULL) != GW_S3_OK) {
            failures++;
            free(out);
            continue;
        }
        const struct gw_xml_node *k = gw_xml_child(&d, gw_xml_root(&d), "Key");
        const struct gw_xml_node *u = gw_xml_child(&d, gw_xml_root(&d), "Url");
        char dec[512];
        ssize_t dl = u ? gw_pct_decode(u->text, u->text_len, dec, false) : -1;
        if (!k || k->text_len != el || memcmp(k->text, expect, el) != 0 || dl != (ssize_t)tl ||
            memcmp(dec, text, tl) != 0)
            failures++;
        gw_xml_doc_free(&d);
        free(out);
    }
    ok(failures == 0, "500 random texts survive writer -> reader (plain and url-encoded)");
}

int main(void)
{
    test_wellformed();
    test_hostile();
    test_limits();
    test_writer();
    test_round_trip();
    return tap_done();
}
