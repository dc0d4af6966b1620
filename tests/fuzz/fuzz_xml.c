/* Fuzz target: the XML reader (gateway/xml.c), the S3 body decoders (gateway/s3_xml_in.c) and
 * the writer (gateway/xml_write.c). The first byte picks what runs on the rest:
 *   0 generic parse, 1 CompleteMultipartUpload, 2 Delete, 3 CreateBucketConfiguration,
 *   4 writer: the bytes as element text and as URL-encoded text must read back.
 * Any input must give GW_S3_OK with a consistent result, or a clean refusal with a message;
 * never a crash, a leak or unbounded memory. */
#include <stdlib.h>
#include <string.h>

#include "gateway/s3_util.h"
#include "gateway/s3_xml.h"
#include "gateway/xml.h"
#include "tests/fuzz/fuzz.h"

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c))                                                                            \
            __builtin_trap();                                                                \
    } while (0)

static void check_doc(const struct gw_xml_doc *d)
{
    CHECK(d->n > 0 && d->nodes[0].parent == GW_XML_NONE && d->nodes[0].depth == 1);
    for (size_t i = 0; i < d->n; i++) {
        const struct gw_xml_node *n = &d->nodes[i];
        CHECK(n->name && n->name[0] && n->text);
        CHECK(strlen(n->text) == n->text_len && gw_utf8_valid(n->text, n->text_len));
        CHECK(gw_utf8_valid(n->name, strlen(n->name)) && !strchr(n->name, ':'));
        uint32_t kids = 0;
        for (const struct gw_xml_node *c = gw_xml_child(d, n, NULL); c; c = gw_xml_next(d, c, NULL)) {
            CHECK(c->parent == i && c->depth == n->depth + 1);
            kids++;
        }
        CHECK(kids == n->n_children && (kids == 0 || n->text_len == 0));
    }
}

static void fuzz_writer(const uint8_t *data, size_t size)
{
    struct gw_xml_w w;
    gw_xml_w_init(&w, 1 << 20);
    gw_xml_w_decl(&w);
    gw_xml_w_open(&w, "Root");
    gw_xml_w_elem(&w, "Text", (const char *)data, size);
    gw_xml_w_elem_url(&w, "Url", (const char *)data, size, true);
    gw_xml_w_close(&w);
    char *out;
    size_t len;
    CHECK(gw_xml_w_finish(&w, &out, &len) == 0);
    struct gw_xml_doc d;
    struct gw_xml_limits lim = gw_xml_limits_default;
    lim.max_bytes = len;
    lim.max_text = len;
    CHECK(gw_xml_parse(out, len, &lim, &d, NULL) == GW_S3_OK);
    check_doc(&d);
    const struct gw_xml_node *u = gw_xml_child(&d, gw_xml_root(&d), "Url");
    CHECK(u != NULL);
    char *dec = malloc(u->text_len + 1);
    ssize_t dl = gw_pct_decode(u->text, u->text_len, dec, false);
    CHECK(dl == (ssize_t)size && memcmp(dec, data, size) == 0);
    const struct gw_xml_node *t = gw_xml_child(&d, gw_xml_root(&d), "Text");
    /* Without replacements, the text reads back exactly. */
    if (w.replaced == 0)
        CHECK(t && t->text_len == size && memcmp(t->text, data, size) == 0);
    free(dec);
    free(out);
    gw_xml_doc_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0] % 5;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    struct gw_s3_err err;
    gw_s3_err_clear(&err);
    enum gw_s3_error rc;
    switch (mode) {
    case 0: {
        struct gw_xml_doc d;
        rc = gw_xml_parse(body, n, NULL, &d, &err);
        if (rc == GW_S3_OK)
            check_doc(&d);
        else /* the arena is sized from the input: running out of it would be a bug */
            CHECK(d.n == 0 && d.nodes == NULL && err.msg[0] && !strstr(err.msg, "arena"));
        gw_xml_doc_free(&d);
        break;
    }
    case 1: {
        struct gw_complete_upload c;
        rc = gw_xml_parse_complete_upload(body, n, &c, &err);
        if (rc == GW_S3_OK) {
            CHECK(c.n >= 1 && c.n <= GW_XML_MAX_PARTS);
            for (size_t i = 0; i < c.n; i++) {
                CHECK(c.parts[i].number >= 1 && c.parts[i].number <= GW_XML_MAX_PARTS);
                CHECK(c.parts[i].etag.n > 0);
                CHECK(i == 0 || c.parts[i].number > c.parts[i - 1].number);
            }
        } else {
            CHECK(c.parts == NULL && c.n == 0 && err.code == rc);
        }
        gw_complete_upload_free(&c);
        break;
    }
    case 2: {
        struct gw_delete_request d;
        rc = gw_xml_parse_delete(body, n, &d, &err);
        if (rc == GW_S3_OK) {
            CHECK(d.n >= 1 && d.n <= GW_XML_DELETE_MAX_OBJECTS);
            for (size_t i = 0; i < d.n; i++)
                CHECK(d.objects[i].key.n >= 1 && d.objects[i].key.n <= GW_KEY_MAX &&
                      d.objects[i].key.p[d.objects[i].key.n] == '\0');
        } else {
            CHECK(d.objects == NULL && d.n == 0 && err.code == rc);
        }
        gw_delete_request_free(&d);
        break;
    }
    case 3: {
        struct gw_create_bucket_conf c;
        rc = gw_xml_parse_create_bucket(body, n, &c, &err);
        CHECK(rc != GW_S3_OK || strlen(c.location) < sizeof(c.location));
        break;
    }
    default:
        fuzz_writer((const uint8_t *)body, n);
        break;
    }
    return 0;
}

#define SEED(s) {(const uint8_t *)(s), sizeof(s) - 1}
static const struct fuzz_seed seeds[] = {
    SEED("\x00<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c --><p:a xmlns:p='u' x=\"1\">"
         "<b>t&amp;&#233;&#x1F600;</b><c><![CDATA[<raw>]]></c><d/></p:a>"),
    SEED("\x01<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
         "<Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag>"
         "<ChecksumCRC32>DUoRhQ==</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber>"
         "<ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag></Part>"
         "</CompleteMultipartUpload>"),
    SEED("\x02<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/"
         "doc/2006-03-01/\"><Object><Key>a b&amp;c</Key><VersionId>null</VersionId></Object>"
         "<Object><Key>x/../y</Key></Object><Quiet>true</Quiet></Delete>"),
    SEED("\x03<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>"
         "</CreateBucketConfiguration>"),
    SEED("\x04plain & <markup> \"quotes\" 'apos' \r\n\t caf\xc3\xa9 \xff\x01 \xef\xbf\xbe"),
    SEED("\x00<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>"),
};

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    *n = sizeof(seeds) / sizeof(seeds[0]);
    return seeds;
}
