/* S3 documents (gateway/s3_xml_in.c, gateway/s3_xml_out.c): the request bodies S3 clients
 * send (shapes from the S3 API reference and what S3 SDKs emit), their refusals,
 * and the exact bytes of each response document for a small case, checked against the
 * element names and order of the S3 API reference examples. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "gateway/s3_xml.h"
#include "tests/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define XD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define NS " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static struct gw_str S(const char *s)
{
    return (struct gw_str){s, strlen(s)};
}

static bool str_is(struct gw_str s, const char *lit)
{
    return s.p && gw_str_eq(s, lit);
}

/* ---- CompleteMultipartUpload ---- */

static void test_complete(void)
{
    struct gw_complete_upload c;
    struct gw_s3_err e;
    /* As S3 SDKs send it: with the S3 namespace, ETag before PartNumber. */
    const char *body =
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Part><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag><PartNumber>1</PartNumber></Part>"
        "<Part><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber>2</PartNumber>"
        "<ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME><ChecksumCRC32>DUoRhQ==</ChecksumCRC32>"
        "<Unknown>ignored</Unknown></Part>\n"
        "<Part>\n  <PartNumber> 3 </PartNumber>\n  <ETag> acbd18db4cc2f85cedef654fccc4a4d8 </ETag>\n</Part>"
        "</CompleteMultipartUpload>";
    ok(gw_xml_parse_complete_upload(body, strlen(body), &c, &e) == GW_S3_OK, "parts decoded (%s)",
       e.msg);
    ok(c.n == 3, "three parts");
    ok(c.n == 3 && c.parts[0].number == 1 && str_is(c.parts[0].etag, "a54357aff0632cce46d942af68356b38"),
       "part 1: number and unquoted ETag");
    ok(c.n == 3 && c.parts[1].number == 2 && str_is(c.parts[1].etag, "0c78aef83f66abc1fa1e8477f296d394") &&
           str_is(c.parts[1].checksums.crc64nvme, "AAAAAAAAAAA=") &&
           str_is(c.parts[1].checksums.crc32, "DUoRhQ==") && c.parts[1].checksums.sha256.p == NULL,
       "part 2: &quot; ETag, checksums, unknown element ignored");
    ok(c.n == 3 && c.parts[2].number == 3 && str_is(c.parts[2].etag, "acbd18db4cc2f85cedef654fccc4a4d8"),
       "part 3: whitespace around number and ETag");
    gw_complete_upload_free(&c);

    static const struct {
        const char *body;
        enum gw_s3_error want;
        const char *why;
    } bad[] = {
        {"", GW_S3_MALFORMED_XML, "empty body"},
        {"<CompleteMultipartUpload/>", GW_S3_MALFORMED_XML, "no parts"},
        {"<Complete><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Complete>",
         GW_S3_MALFORMED_XML, "another root"},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
         GW_S3_MALFORMED_XML, "no ETag"},
        {"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
         GW_S3_MALFORMED_XML, "no PartNumber"},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber>"
         "<ETag>x</ETag></Part></CompleteMultipartUpload>",
         GW_S3_MALFORMED_XML, "two PartNumbers"},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag><ETag>y</ETag>"
         "</Part></CompleteMultipartUpload>",
         GW_S3_MALFORMED_XML, "two ETags"},
        {"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part>"
         "</CompleteMultipartUpload>",
         GW_S3_MALFORMED_XML, "PartNumber not a number"},
        {"<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>x</ETag></Part>"
         "</CompleteMultipartUpload>",
         GW_S3_MALFORMED_XML, "negative PartNumber"},
        {"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>x</ETag></Part>"
         "</CompleteMultipartUpload>",
         GW_S3_INVALID_ARGUMENT, "PartNumber 0"},
        {"<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>x</ETag></Part>"
         "</CompleteMultipartUpload>",
         GW_S3_INVALID_ARGUMENT, "PartNumber 10001"},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"\"</ETag></Part>"
         "</CompleteMultipartUpload>",
         GW_S3_MALFORMED_XML, "empty ETag"},
        {"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>x</ETag></Part>"
         "<Part><PartNumber>1</PartNumber><ETag>y</ETag></Part></CompleteMultipartUpload>",
         GW_S3_INVALID_PART_ORDER, "descending"},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>"
         "<Part><PartNumber>1</PartNumber><ETag>y</ETag></Part></CompleteMultipartUpload>",
         GW_S3_INVALID_PART_ORDER, "repeated part"},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag>"
         "<ChecksumCRC32>DUoRhQ=</ChecksumCRC32></Part></CompleteMultipartUpload>",
         GW_S3_INVALID_ARGUMENT, "malformed base64 checksum"},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag>"
         "<ChecksumSHA256>DUoRhQ==</ChecksumSHA256></Part></CompleteMultipartUpload>",
         GW_S3_INVALID_ARGUMENT, "checksum of the wrong size"},
        {"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>",
         GW_S3_MALFORMED_XML, "truncated"},
        {"<!DOCTYPE x [<!ENTITY a 'b'>]><CompleteMultipartUpload/>", GW_S3_MALFORMED_XML,
         "DOCTYPE"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        memset(&c, 0xa5, sizeof(c));
        enum gw_s3_error rc = gw_xml_parse_complete_upload(bad[i].body, strlen(bad[i].body), &c, &e);
        ok(rc == bad[i].want && c.parts == NULL && c.n == 0 && c.doc.arena == NULL,
           "complete refuses: %s (%s)", bad[i].why, e.msg);
    }

    /* 10000 parts pass, 10001 do not. */
    size_t cap = 10001 * 96 + 128, l = 0;
    char *big = malloc(cap);
    l += (size_t)snprintf(big, cap, "<CompleteMultipartUpload>");
    for (int i = 1; i <= 10000; i++)
        l += (size_t)snprintf(big + l, cap - l,
                              "<Part><PartNumber>%d</PartNumber><ETag>\"%032d\"</ETag></Part>", i, i);
    size_t l10000 = l;
    l += (size_t)snprintf(big + l, cap - l, "</CompleteMultipartUpload>");
    ok(gw_xml_parse_complete_upload(big, l, &c, &e) == GW_S3_OK && c.n == 10000 &&
           c.parts[9999].number == 10000,
       "10000 parts (%zu bytes)", l);
    gw_complete_upload_free(&c);
    l = l10000;
    l += (size_t)snprintf(big + l, cap - l,
                          "<Part><PartNumber>10000</PartNumber><ETag>x</ETag></Part>"
                          "</CompleteMultipartUpload>");
    ok(gw_xml_parse_complete_upload(big, l, &c, &e) == GW_S3_MALFORMED_XML &&
           strstr(e.msg, "more than 10000"),
       "10001 parts are refused");
    free(big);
}

/* ---- Delete ---- */

static void test_delete(void)
{
    struct gw_delete_request d;
    struct gw_s3_err e;
    const char *body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                       "<Object><Key>sample1.txt</Key></Object>"
                       "<Object><Key> spaced key &amp; more </Key><VersionId>null</VersionId></Object>"
                       "<Object><Key>caf&#xE9;/\xe6\x97\xa5</Key></Object>"
                       "<Object><Key>a/../b</Key></Object>"
                       "<Object><Key>tab&#9;key</Key></Object>"
                       "<Quiet>true</Quiet></Delete>";
    ok(gw_xml_parse_delete(body, strlen(body), &d, &e) == GW_S3_OK, "delete decoded (%s)", e.msg);
    ok(d.n == 5 && d.quiet, "five objects, quiet");
    ok(d.n == 5 && str_is(d.objects[0].key, "sample1.txt") && d.objects[0].version_id.p == NULL &&
           d.objects[0].key_error == GW_S3_OK,
       "plain key");
    ok(d.n == 5 && str_is(d.objects[1].key, " spaced key & more ") &&
           str_is(d.objects[1].version_id, "null"),
       "key kept exactly (spaces, entity), VersionId");
    ok(d.n == 5 && str_is(d.objects[2].key, "caf\xc3\xa9/\xe6\x97\xa5") &&
           d.objects[2].key.p[d.objects[2].key.n] == '\0',
       "unicode key, NUL-terminated");
    ok(d.n == 5 && d.objects[3].key_error == GW_S3_INVALID_ARGUMENT,
       "a key lode cannot store is flagged, not fatal");
    ok(d.n == 5 && d.objects[4].key_error == GW_S3_INVALID_ARGUMENT, "a tab in a key is flagged");
    gw_delete_request_free(&d);

    const char *loud = "<Delete><Quiet> False </Quiet><Object><Key>k</Key></Object></Delete>";
    ok(gw_xml_parse_delete(loud, strlen(loud), &d, &e) == GW_S3_OK && !d.quiet && d.n == 1,
       "Quiet false, no namespace");
    gw_delete_request_free(&d);

    static const struct {
        const char *body;
        enum gw_s3_error want;
        const char *why;
    } bad[] = {
        {"<Delete></Delete>", GW_S3_MALFORMED_XML, "no objects"},
        {"<Delete><Quiet>true</Quiet></Delete>", GW_S3_MALFORMED_XML, "only Quiet"},
        {"<Remove><Object><Key>k</Key></Object></Remove>", GW_S3_MALFORMED_XML, "another root"},
        {"<Delete><Object></Object></Delete>", GW_S3_MALFORMED_XML, "no Key"},
        {"<Delete><Object><Key></Key></Object></Delete>", GW_S3_MALFORMED_XML, "empty Key"},
        {"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>", GW_S3_MALFORMED_XML,
         "two Keys"},
        {"<Delete><Object><Key>a</Key><VersionId>1</VersionId><VersionId>2</VersionId></Object>"
         "</Delete>",
         GW_S3_MALFORMED_XML, "two VersionIds"},
        {"<Delete><Object><Key>k</Key></Object><Quiet>yes</Quiet></Delete>", GW_S3_MALFORMED_XML,
         "Quiet not a boolean"},
        {"<Delete><Object><Key>k</Key></Object><Quiet>true</Quiet><Quiet>true</Quiet></Delete>",
         GW_S3_MALFORMED_XML, "two Quiets"},
        {"<Delete><Object><Key>k</Key><ETag>\"x\"</ETag></Object></Delete>", GW_S3_NOT_IMPLEMENTED,
         "conditional delete on ETag"},
        {"<Delete><Object><Key>k</Key><Size>3</Size></Object></Delete>", GW_S3_NOT_IMPLEMENTED,
         "conditional delete on size"},
        {"<Delete><Object><Key>k<b/></Key></Object></Delete>", GW_S3_MALFORMED_XML,
         "markup inside a key"},
        {"<Delete><Object><Key>k</Key></Object>", GW_S3_MALFORMED_XML, "truncated"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        enum gw_s3_error rc = gw_xml_parse_delete(bad[i].body, strlen(bad[i].body), &d, &e);
        ok(rc == bad[i].want && d.objects == NULL && d.n == 0, "delete refuses: %s (%s)", bad[i].why,
           e.msg);
    }

    /* Key length: 1024 bytes pass, 1025 are KeyTooLongError. */
    char *big = malloc(1100);
    int l = snprintf(big, 1100, "<Delete><Object><Key>%01024d</Key></Object></Delete>", 7);
    ok(gw_xml_parse_delete(big, (size_t)l, &d, &e) == GW_S3_OK && d.objects[0].key.n == 1024,
       "a 1024-byte key");
    gw_delete_request_free(&d);
    l = snprintf(big, 1100, "<Delete><Object><Key>%01025d</Key></Object></Delete>", 7);
    ok(gw_xml_parse_delete(big, (size_t)l, &d, &e) == GW_S3_KEY_TOO_LONG, "a 1025-byte key");
    free(big);

    /* 1000 objects of 1024-byte keys (over 1 MiB) pass; 1001 objects do not. */
    size_t cap = 1001 * 1060 + 64, n = 0;
    big = malloc(cap);
    n += (size_t)snprintf(big, cap, "<Delete>");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(big + n, cap - n, "<Object><Key>%01024d</Key></Object>", i);
    size_t n1000 = n;
    n += (size_t)snprintf(big + n, cap - n, "</Delete>");
    ok(gw_xml_parse_delete(big, n, &d, &e) == GW_S3_OK && d.n == 1000, "1000 objects, %zu bytes",
       n);
    gw_delete_request_free(&d);
    n = n1000;
    n += (size_t)snprintf(big + n, cap - n, "<Object><Key>x</Key></Object></Delete>");
    ok(gw_xml_parse_delete(big, n, &d, &e) == GW_S3_MALFORMED_XML && strstr(e.msg, "1000"),
       "1001 objects are refused");
    free(big);
}

static void test_create_bucket(void)
{
    struct gw_create_bucket_conf c;
    struct gw_s3_err e;
    ok(gw_xml_parse_create_bucket("", 0, &c, &e) == GW_S3_OK && !c.has_location, "empty body");
    ok(gw_xml_parse_create_bucket(" \r\n", 3, &c, &e) == GW_S3_OK && !c.has_location, "whitespace body");
    const char *b = "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                    "<LocationConstraint> eu-west-1 </LocationConstraint></CreateBucketConfiguration>";
    ok(gw_xml_parse_create_bucket(b, strlen(b), &c, &e) == GW_S3_OK && c.has_location &&
           strcmp(c.location, "eu-west-1") == 0,
       "a location constraint");
    b = "<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>";
    ok(gw_xml_parse_create_bucket(b, strlen(b), &c, &e) == GW_S3_OK && c.has_location &&
           c.location[0] == '\0',
       "an empty location constraint");
    b = "<CreateBucketConfiguration><Bucket><Type>Directory</Type></Bucket></CreateBucketConfiguration>";
    ok(gw_xml_parse_create_bucket(b, strlen(b), &c, &e) == GW_S3_OK && !c.has_location,
       "other elements ignored");
    b = "<CreateBucketConfiguration><LocationConstraint>EU West</LocationConstraint></CreateBucketConfiguration>";
    ok(gw_xml_parse_create_bucket(b, strlen(b), &c, &e) == GW_S3_INVALID_ARGUMENT, "invalid location");
    b = "<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint><LocationConstraint>b"
        "</LocationConstraint></CreateBucketConfiguration>";
    ok(gw_xml_parse_create_bucket(b, strlen(b), &c, &e) == GW_S3_MALFORMED_XML, "two locations");
    b = "<BucketConfiguration/>";
    ok(gw_xml_parse_create_bucket(b, strlen(b), &c, &e) == GW_S3_MALFORMED_XML, "another root");
    b = "<CreateBucketConfiguration>";
    ok(gw_xml_parse_create_bucket(b, strlen(b), &c, &e) == GW_S3_MALFORMED_XML, "truncated");
}

/* ---- builders ---- */

static char *finish(struct gw_xml_w *w)
{
    char *out = NULL;
    size_t len;
    if (gw_xml_w_finish(w, &out, &len) != 0) {
        gw_xml_w_free(w);
        return NULL;
    }
    /* Every document the builders make must read back. */
    struct gw_xml_doc d;
    if (gw_xml_parse(out, len, NULL, &d, NULL) != GW_S3_OK) {
        free(out);
        return NULL;
    }
    gw_xml_doc_free(&d);
    return out;
}

static void check_doc(struct gw_xml_w *w, const char *want, const char *what)
{
    char *got = finish(w);
    is_str(got, want, "%s", what);
    free(got);
}

/* Times in the expected documents: Python's datetime.fromtimestamp(ms / 1000, timezone.utc). */
static void test_builders(void)
{
    struct gw_xml_w w;
    struct gw_owner owner = {"75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a",
                             "webfile"};
    struct gw_owner bare = {"u1", NULL};

    gw_xml_w_init(&w, 1 << 16);
    struct gw_bucket_entry b[] = {{"quotes", 1137528970000}, {"samples", 1137528974000}};
    gw_xml_list_buckets(&w, &owner, b, N(b));
    check_doc(&w,
              XD "<ListAllMyBucketsResult" NS "><Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7fae"
                 "ebf76c078efc7c6caea54ba06a</ID><DisplayName>webfile</DisplayName></Owner><Buckets>"
                 "<Bucket><Name>quotes</Name><CreationDate>2006-01-17T20:16:10.000Z</CreationDate>"
                 "</Bucket><Bucket><Name>samples</Name><CreationDate>2006-01-17T20:16:14.000Z"
                 "</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>",
              "ListAllMyBucketsResult");

    /* V1 with a delimiter, truncated, URL-encoded. */
    struct gw_list_params p = {0};
    p.prefix = S("photos/");
    p.delimiter = S("/");
    p.has_delimiter = true;
    p.marker = S("photos/a b");
    p.max = 2;
    p.url_encode = true;
    struct gw_list_entry ents[] = {
        {S("photos/c+d.jpg"), 434234, S("fba9dede5f27731c9771645a39863328"), 1255369830000, NULL, &bare},
    };
    struct gw_str pre[] = {S("photos/2006/")};
    struct gw_list_result r = {GW_LIST_V1, "example-bucket", true, S("photos/2006/"), {0},
                               ents, 1, pre, 1};
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_list_objects(&w, &p, &r);
    check_doc(&w,
              XD "<ListBucketResult" NS "><Name>example-bucket</Name><Prefix>photos/</Prefix>"
                 "<Marker>photos/a%20b</Marker><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter>"
                 "<IsTruncated>true</IsTruncated><NextMarker>photos/2006/</NextMarker>"
                 "<EncodingType>url</EncodingType><Contents><Key>photos/c%2Bd.jpg</Key>"
                 "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
                 "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
                 "<Owner><ID>u1</ID><DisplayName>u1</DisplayName></Owner>"
                 "<StorageClass>STANDARD</StorageClass></Contents>"
                 "<CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes></ListBucketResult>",
              "ListBucketResult v1, url-encoded, truncated");

    /* V2: KeyCount, tokens, Owner only with fetch-owner, plain text escaped. */
    memset(&p, 0, sizeof(p));
    p.max = 1000;
    p.start_after = S("a<b");
    p.continuation_token = S("tok");
    struct gw_list_entry e2[] = {{S("a&b"), 0, S("\"d41d8cd98f00b204e9800998ecf8427e\""), 0, "STANDARD", &owner}};
    struct gw_list_result r2 = {GW_LIST_V2, "b", false, {0}, S("ignored: not truncated"), e2, 1,
                                NULL, 0};
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_list_objects(&w, &p, &r2);
    check_doc(&w,
              XD "<ListBucketResult" NS "><Name>b</Name><Prefix></Prefix>"
                 "<ContinuationToken>tok</ContinuationToken><StartAfter>a&lt;b</StartAfter>"
                 "<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
                 "<Contents><Key>a&amp;b</Key><LastModified>1970-01-01T00:00:00.000Z</LastModified>"
                 "<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size>"
                 "<StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>",
              "ListBucketResult v2 without fetch-owner");
    p.fetch_owner = true;
    r2.truncated = true;
    r2.next_continuation_token = S("next");
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_list_objects(&w, &p, &r2);
    char *got = finish(&w);
    ok(got && strstr(got, "<NextContinuationToken>next</NextContinuationToken>") &&
           strstr(got, "<Owner><ID>75aa") && strstr(got, "<IsTruncated>true</IsTruncated>"),
       "v2 with fetch-owner and a next token");
    free(got);

    /* Versions emulation. */
    memset(&p, 0, sizeof(p));
    p.max = 1000;
    struct gw_list_result r3 = {GW_LIST_VERSIONS, "b", false, {0}, {0}, e2, 1, NULL, 0};
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_list_objects(&w, &p, &r3);
    got = finish(&w);
    ok(got && strstr(got, "<ListVersionsResult") && strstr(got, "<Version><Key>a&amp;b</Key>"
                                                                 "<VersionId>null</VersionId>"
                                                                 "<IsLatest>true</IsLatest>"),
       "ListVersionsResult: every object its own null version");
    free(got);

    /* Multipart uploads. */
    memset(&p, 0, sizeof(p));
    p.max = 1000;
    struct gw_upload_entry up[] = {{S("my-movie.m2ts"), S("VXBsb2FkIElE"), 1291218052000, &bare, NULL}};
    struct gw_uploads_result ur = {"bucket", false, {0}, {0}, up, 1, NULL, 0};
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_list_uploads(&w, &p, &ur);
    check_doc(&w,
              XD "<ListMultipartUploadsResult" NS "><Bucket>bucket</Bucket><KeyMarker></KeyMarker>"
                 "<UploadIdMarker></UploadIdMarker><MaxUploads>1000</MaxUploads>"
                 "<IsTruncated>false</IsTruncated><Upload><Key>my-movie.m2ts</Key>"
                 "<UploadId>VXBsb2FkIElE</UploadId><Initiator><ID>u1</ID><DisplayName>u1"
                 "</DisplayName></Initiator><Owner><ID>u1</ID><DisplayName>u1</DisplayName>"
                 "</Owner><StorageClass>STANDARD</StorageClass>"
                 "<Initiated>2010-12-01T15:40:52.000Z</Initiated></Upload>"
                 "</ListMultipartUploadsResult>",
              "ListMultipartUploadsResult");

    /* Parts. */
    memset(&p, 0, sizeof(p));
    p.max = 2;
    p.part_number_marker = 1;
    struct gw_part_entry parts[] = {{2, 1291218052000, S("7778aef83f66abc1fa1e8477f296d394"), 10485760,
                                     {.crc32 = S("DUoRhQ==")}}};
    struct gw_parts_result pr = {"b", S("k"), S("up"), &bare, NULL, "CRC32", true, 2, parts, 1};
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_list_parts(&w, &p, &pr);
    check_doc(&w,
              XD "<ListPartsResult" NS "><Bucket>b</Bucket><Key>k</Key><UploadId>up</UploadId>"
                 "<Initiator><ID>u1</ID><DisplayName>u1</DisplayName></Initiator>"
                 "<Owner><ID>u1</ID><DisplayName>u1</DisplayName></Owner>"
                 "<StorageClass>STANDARD</StorageClass><PartNumberMarker>1</PartNumberMarker>"
                 "<NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>2</MaxParts>"
                 "<IsTruncated>true</IsTruncated><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
                 "<Part><PartNumber>2</PartNumber><LastModified>2010-12-01T15:40:52.000Z"
                 "</LastModified><ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag>"
                 "<Size>10485760</Size><ChecksumCRC32>DUoRhQ==</ChecksumCRC32></Part>"
                 "</ListPartsResult>",
              "ListPartsResult");

    gw_xml_w_init(&w, 1 << 16);
    gw_xml_initiate_upload(&w, "example-bucket", S("example-object"),
                           S("VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"));
    check_doc(&w,
              XD "<InitiateMultipartUploadResult" NS "><Bucket>example-bucket</Bucket>"
                 "<Key>example-object</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRz"
                 "IHVwbG9hZA</UploadId></InitiateMultipartUploadResult>",
              "InitiateMultipartUploadResult");

    struct gw_checksums cs = {.crc64nvme = S("AAAAAAAAAAA=")};
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_complete_upload_result(&w, "http://Example-Bucket.s3.example.com/Example-Object",
                                  "Example-Bucket", S("Example-Object"),
                                  S("3858f62230ac3c915f300c664312c11f-9"), &cs, "FULL_OBJECT");
    check_doc(&w,
              XD "<CompleteMultipartUploadResult" NS "><Location>http://Example-Bucket.s3.example"
                 ".com/Example-Object</Location><Bucket>Example-Bucket</Bucket>"
                 "<Key>Example-Object</Key><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;"
                 "</ETag><ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME>"
                 "<ChecksumType>FULL_OBJECT</ChecksumType></CompleteMultipartUploadResult>",
              "CompleteMultipartUploadResult");

    gw_xml_w_init(&w, 1 << 16);
    gw_xml_copy_result(&w, false, S("9b2cf535f27731c974343645a3985328"), 1235667210000, NULL);
    check_doc(&w,
              XD "<CopyObjectResult" NS "><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;"
                 "</ETag><LastModified>2009-02-26T16:53:30.000Z</LastModified></CopyObjectResult>",
              "CopyObjectResult");
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_copy_result(&w, true, S("x"), 0, &cs);
    got = finish(&w);
    ok(got && strstr(got, "<CopyPartResult" NS "><ETag>&quot;x&quot;</ETag>") &&
           strstr(got, "<ChecksumCRC64NVME>"),
       "CopyPartResult");
    free(got);

    struct gw_delete_outcome outs[] = {
        {S("sample1.txt"), {0}, GW_S3_OK, NULL},
        {S("sample2.txt"), S("null"), GW_S3_ACCESS_DENIED, NULL},
        {S("a<b"), {0}, GW_S3_INTERNAL_ERROR, "node unreachable"},
    };
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_delete_result(&w, outs, N(outs), false);
    check_doc(&w,
              XD "<DeleteResult" NS "><Deleted><Key>sample1.txt</Key></Deleted><Error>"
                 "<Key>sample2.txt</Key><VersionId>null</VersionId><Code>AccessDenied</Code>"
                 "<Message>Access Denied.</Message></Error><Error><Key>a&lt;b</Key>"
                 "<Code>InternalError</Code><Message>node unreachable</Message></Error>"
                 "</DeleteResult>",
              "DeleteResult");
    gw_xml_w_init(&w, 1 << 16);
    gw_xml_delete_result(&w, outs, 1, true);
    check_doc(&w, XD "<DeleteResult" NS "></DeleteResult>", "quiet DeleteResult omits Deleted");

    gw_xml_w_init(&w, 4096);
    gw_xml_location(&w, "us-east-1");
    check_doc(&w, XD "<LocationConstraint" NS "></LocationConstraint>",
              "LocationConstraint of us-east-1 is empty");
    gw_xml_w_init(&w, 4096);
    gw_xml_location(&w, "eu-west-1");
    check_doc(&w, XD "<LocationConstraint" NS ">eu-west-1</LocationConstraint>", "LocationConstraint");

    gw_xml_w_init(&w, 4096);
    gw_xml_acl(&w, &bare);
    check_doc(&w,
              XD "<AccessControlPolicy" NS "><Owner><ID>u1</ID><DisplayName>u1</DisplayName>"
                 "</Owner><AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/"
                 "XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>u1</ID><DisplayName>u1"
                 "</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
                 "</AccessControlList></AccessControlPolicy>",
              "AccessControlPolicy");
    gw_xml_w_init(&w, 4096);
    gw_xml_versioning(&w);
    check_doc(&w, XD "<VersioningConfiguration" NS "></VersioningConfiguration>",
              "VersioningConfiguration, never enabled");
    gw_xml_w_init(&w, 4096);
    gw_xml_empty_tagging(&w);
    check_doc(&w, XD "<Tagging" NS "><TagSet></TagSet></Tagging>", "empty Tagging");

    /* Sub-resources: documents, not-found errors, not implemented. */
    struct gw_s3_err e;
    static const struct {
        enum gw_subresource sub;
        enum gw_s3_error want;
        const char *doc_part;
    } subs[] = {
        {GW_SUB_POLICY, GW_S3_NO_SUCH_POLICY, NULL},
        {GW_SUB_LIFECYCLE, GW_S3_NO_SUCH_LIFECYCLE, NULL},
        {GW_SUB_CORS, GW_S3_NO_SUCH_CORS, NULL},
        {GW_SUB_ENCRYPTION, GW_S3_NO_SUCH_ENCRYPTION, NULL},
        {GW_SUB_TAGGING, GW_S3_NO_SUCH_TAG_SET, NULL},
        {GW_SUB_LOGGING, GW_S3_OK, "<BucketLoggingStatus" NS "></BucketLoggingStatus>"},
        {GW_SUB_REQUEST_PAYMENT, GW_S3_OK, "<Payer>BucketOwner</Payer>"},
        {GW_SUB_OWNERSHIP_CONTROLS, GW_S3_OK, "<ObjectOwnership>BucketOwnerEnforced</ObjectOwnership>"},
        {GW_SUB_PUBLIC_ACCESS_BLOCK, GW_S3_OK, "<RestrictPublicBuckets>true</RestrictPublicBuckets>"},
        {GW_SUB_WEBSITE, GW_S3_NOT_IMPLEMENTED, NULL},
        {GW_SUB_OBJECT_LOCK, GW_S3_NOT_IMPLEMENTED, NULL},
    };
    for (size_t i = 0; i < N(subs); i++) {
        gw_xml_w_init(&w, 4096);
        enum gw_s3_error rc = gw_xml_subresource(&w, subs[i].sub, &e);
        if (subs[i].doc_part) {
            got = finish(&w);
            ok(rc == GW_S3_OK && got && strstr(got, subs[i].doc_part), "?%s answers a document",
               gw_subresource_name(subs[i].sub));
            free(got);
        } else {
            ok(rc == subs[i].want && e.code == subs[i].want && w.len == 0, "?%s answers %s",
               gw_subresource_name(subs[i].sub), gw_s3_error_code(subs[i].want));
            gw_xml_w_free(&w);
        }
    }

    /* A listing too large for its cap fails cleanly instead of truncating. */
    gw_xml_w_init(&w, 100);
    memset(&p, 0, sizeof(p));
    gw_xml_list_objects(&w, &p, &r);
    char *o;
    size_t ol;
    ok(gw_xml_w_finish(&w, &o, &ol) == LODE_ETOOLARGE, "over the cap: an error, not a cut document");
    gw_xml_w_free(&w);
}

int main(void)
{
    test_complete();
    test_delete();
    test_create_bucket();
    test_builders();
    return tap_done();
}
