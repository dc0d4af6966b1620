/* Listing edge cases: ListObjects (prefix, delimiter, start_after, continuation, max_keys,
 * byte order, long keys, seeking past common prefixes) and part / upload pagination. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "meta/fsm.h"
#include "tests/tap.h"

static struct meta_fsm *fsm;
static char root[PATH_MAX];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void apply(Lode__Command *c)
{
    struct meta_fsm_result r;
    c->version = 1;
    c->now_ms = 1700000000000;
    if (meta_fsm_apply(fsm, c, &r))
        tap_bail("apply: %s", r.message);
    if (r.status)
        tap_bail("setup command failed: %s", r.message);
}

static void create_bucket(const char *name)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
    Lode__BucketRecord b = LODE__BUCKET_RECORD__INIT;
    b.name = (char *)name;
    cb.bucket = &b;
    c.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    c.create_bucket = &cb;
    apply(&c);
}

static void put(const char *bucket, const char *key)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__PutObject p = LODE__PUT_OBJECT__INIT;
    Lode__ObjectRecord o = LODE__OBJECT_RECORD__INIT;
    o.size = strlen(key);
    o.etag = "e";
    o.owner = "alice";
    p.bucket = (char *)bucket;
    p.key = (char *)key;
    p.record = &o;
    c.op_case = LODE__COMMAND__OP_PUT_OBJECT;
    c.put_object = &p;
    apply(&c);
}

/* One ListObjects call. Returns the code; *out unpacked on success. */
static int list1(const char *bucket, const char *prefix, const char *delim, const char *sa,
                 const char *token, uint32_t max, Lode__ObjectListResponse **out,
                 struct cmn_err *err)
{
    Lode__ObjectListRequest q = LODE__OBJECT_LIST_REQUEST__INIT;
    struct cmn_buf b = {0};
    q.bucket = (char *)bucket;
    q.prefix = (char *)prefix;
    q.delimiter = (char *)delim;
    q.start_after = (char *)sa;
    q.continuation_token = (char *)token;
    q.max_keys = max;
    cmn_err_clear(err);
    int rc = meta_fsm_object_list(fsm, &q, &b, err);
    *out = rc ? NULL : lode__object_list_response__unpack(NULL, b.len, b.data);
    if (!rc && !*out)
        tap_bail("undecodable list response");
    cmn_buf_free(&b);
    return rc;
}

/* Appends s to a description, showing bytes above 0x7E as \xNN. */
static void desc_add(char *d, size_t cap, const char *s, const char *sep)
{
    size_t n = strlen(d);
    if (n && n + 1 < cap)
        d[n++] = *sep, d[n] = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 5 < cap; p++) {
        if (*p > 0x7e)
            n += (size_t)snprintf(d + n, cap - n, "\\x%02x", *p);
        else
            d[n++] = (char)*p, d[n] = 0;
    }
}

/* Lists everything by following continuation tokens; entries and common prefixes end up as
 * space-separated descriptions. Returns the number of pages, or -1 on an error. */
static int list_all(const char *bucket, const char *prefix, const char *delim, const char *sa,
                    uint32_t max, char *keys, char *prefixes, size_t cap)
{
    char *token = NULL;
    int pages = 0;
    keys[0] = prefixes[0] = 0;
    for (;;) {
        Lode__ObjectListResponse *r;
        struct cmn_err err;
        if (list1(bucket, prefix, delim, sa, token, max, &r, &err)) {
            free(token);
            return -1;
        }
        pages++;
        for (size_t i = 0; i < r->n_entries; i++)
            desc_add(keys, cap, r->entries[i]->key, " ");
        for (size_t i = 0; i < r->n_common_prefixes; i++)
            desc_add(prefixes, cap, r->common_prefixes[i], " ");
        size_t items = r->n_entries + r->n_common_prefixes;
        bool more = r->is_truncated;
        free(token);
        token = more ? strdup(r->next_continuation_token) : NULL;
        bool bad = (more && (!*r->next_continuation_token || items != max)) ||
                   (!more && *r->next_continuation_token) || items > (max ? max : 1000);
        lode__object_list_response__free_unpacked(r, NULL);
        if (bad) {
            free(token);
            diag("page %d: inconsistent truncation (%zu items)", pages, items);
            return -1;
        }
        if (!more)
            return pages;
        if (pages > 10000) {
            free(token);
            return -1;
        }
    }
}

#define CHECK_LIST(bucket, prefix, delim, sa, max, want_keys, want_prefixes, ...)          \
    do {                                                                                 \
        char k_[8192], p_[8192];                                                         \
        int pages_ = list_all(bucket, prefix, delim, sa, max, k_, p_, sizeof(k_));       \
        ok(pages_ > 0, __VA_ARGS__);                                                     \
        is_str(k_, want_keys, "  keys");                                                 \
        is_str(p_, want_prefixes, "  common prefixes");                                  \
    } while (0)

static const char *const keys[] = {
    "a", "a/b", "a/b/c", "a/b/d", "a/c", "a/c/x", "b", "b+c", "b+d+e", "c/", "c//x", "d",
    "\xc3\xa9t\xc3\xa9", "z", "\xff", "a%", "a-",
};

static void test_objects(void)
{
    create_bucket("lst");
    for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
        put("lst", keys[i]);

    CHECK_LIST("lst", "", "", "", 0,
               "a a% a- a/b a/b/c a/b/d a/c a/c/x b b+c b+d+e c/ c//x d z \\xc3\\xa9t\\xc3\\xa9 "
               "\\xff",
               "", "everything in byte order (bytes > 0x7F after ASCII)");
    CHECK_LIST("lst", "", "/", "", 0, "a a% a- b b+c b+d+e d z \\xc3\\xa9t\\xc3\\xa9 \\xff",
               "a/ c/", "delimiter '/'");
    CHECK_LIST("lst", "a/", "/", "", 0, "a/b a/c", "a/b/ a/c/", "prefix 'a/' + delimiter");
    CHECK_LIST("lst", "a", "/", "", 0, "a a% a-", "a/", "prefix 'a' (no trailing delimiter)");
    CHECK_LIST("lst", "a/b/", "/", "", 0, "a/b/c a/b/d", "", "nested prefix 'a/b/'");
    CHECK_LIST("lst", "", "+", "", 0,
               "a a% a- a/b a/b/c a/b/d a/c a/c/x b c/ c//x d z \\xc3\\xa9t\\xc3\\xa9 \\xff", "b+",
               "delimiter '+'");
    CHECK_LIST("lst", "b+", "+", "", 0, "b+c", "b+d+", "prefix 'b+' + delimiter '+'");
    CHECK_LIST("lst", "", "/b/", "", 0,
               "a a% a- a/b a/c a/c/x b b+c b+d+e c/ c//x d z \\xc3\\xa9t\\xc3\\xa9 \\xff", "a/b/",
               "multi-byte delimiter '/b/'");
    CHECK_LIST("lst", "c/", "/", "", 0, "c/", "c//", "key equal to the prefix; empty segment");
    CHECK_LIST("lst", "", "\xc3\xa9", "", 0, "a a% a- a/b a/b/c a/b/d a/c a/c/x b b+c b+d+e c/ "
               "c//x d z \\xff", "\\xc3\\xa9", "non-ASCII delimiter");
    CHECK_LIST("lst", "q", "/", "", 0, "", "", "prefix matching nothing");
    CHECK_LIST("lst", "a/b/c", "", "", 0, "a/b/c", "", "prefix equal to a key");

    CHECK_LIST("lst", "", "/", "a/b/c", 0, "b b+c b+d+e d z \\xc3\\xa9t\\xc3\\xa9 \\xff",
               "a/ c/", "start_after inside a common prefix still reports that prefix");
    CHECK_LIST("lst", "", "/", "a/c/x", 0, "b b+c b+d+e d z \\xc3\\xa9t\\xc3\\xa9 \\xff", "c/",
               "start_after the last key of a prefix skips it");
    CHECK_LIST("lst", "", "", "b+c", 0, "b+d+e c/ c//x d z \\xc3\\xa9t\\xc3\\xa9 \\xff", "",
               "start_after is exclusive");
    CHECK_LIST("lst", "", "", "\xc3", 0, "\\xc3\\xa9t\\xc3\\xa9 \\xff", "",
               "start_after between keys");
    CHECK_LIST("lst", "a/", "", "0", 0, "a/b a/b/c a/b/d a/c a/c/x", "",
               "start_after below the prefix");
    CHECK_LIST("lst", "a/", "", "zz", 0, "", "", "start_after above the prefix");
    CHECK_LIST("lst", "", "", "\xff", 0, "", "", "start_after the last key");

    for (uint32_t max = 1; max <= 4; max++) {
        CHECK_LIST("lst", "", "/", "", max, "a a% a- b b+c b+d+e d z \\xc3\\xa9t\\xc3\\xa9 \\xff",
                   "a/ c/", "delimiter '/', pages of %u", max);
        CHECK_LIST("lst", "a/", "/", "", max, "a/b a/c", "a/b/ a/c/",
                   "prefix + delimiter, pages of %u", max);
        CHECK_LIST("lst", "", "", "a/b", max,
                   "a/b/c a/b/d a/c a/c/x b b+c b+d+e c/ c//x d z \\xc3\\xa9t\\xc3\\xa9 \\xff", "",
                   "no delimiter, start_after, pages of %u", max);
    }
    char got_k[8192], got_p[8192];
    is_int(list_all("lst", "", "", "", 1, got_k, got_p, sizeof(got_k)), 17, "max_keys 1: one key a page");
    is_int(list_all("lst", "", "/", "", 1, got_k, got_p, sizeof(got_k)), 12,
           "max_keys 1 with '/': a prefix counts as one item");
    is_int(list_all("lst", "", "/", "", 12, got_k, got_p, sizeof(got_k)), 1,
           "exactly max_keys items: one page, not truncated");
    is_int(list_all("lst", "", "/", "", 11, got_k, got_p, sizeof(got_k)), 2, "one over: two pages");

    /* The continuation token wins over start_after. */
    Lode__ObjectListResponse *r, *r2;
    struct cmn_err err;
    is_int(list1("lst", "", "/", "", NULL, 4, &r, &err), 0, "first page of 4");
    ok(r->is_truncated && r->n_entries == 3 && r->n_common_prefixes == 1,
       "page 1: three keys and a/");
    is_int(list1("lst", "", "/", "zzz", r->next_continuation_token, 2, &r2, &err), 0,
           "second page with a conflicting start_after");
    ok(r2->n_entries == 2 && strcmp(r2->entries[0]->key, "b") == 0,
       "token wins over start_after (got %s)", r2->n_entries ? r2->entries[0]->key : "-");
    ok(r2->n_entries && r2->entries[0]->size == 1 && strcmp(r2->entries[0]->etag, "e") == 0 &&
           strcmp(r2->entries[0]->owner, "alice") == 0 && r2->entries[0]->version > 0 &&
           r2->entries[0]->mtime_ms == 1700000000000,
       "entries carry size, etag, owner, version, mtime");
    lode__object_list_response__free_unpacked(r, NULL);
    lode__object_list_response__free_unpacked(r2, NULL);

    static const char *bad_tokens[] = {"zz", "0", "01", "010", "0161g2", "03616263", "016100",
                                       "01 61", "xyz"};
    for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(*bad_tokens); i++) {
        int rc = list1("lst", "", "", "", bad_tokens[i], 0, &r, &err);
        is_int(rc, -EINVAL, "malformed token '%s' rejected", bad_tokens[i]);
        is_str(err.msg, "invalid continuation token", "  with a clear message");
    }
    char longtok[2 * 1100 + 7];
    memset(longtok, '6', sizeof(longtok) - 1);
    longtok[0] = '0';
    longtok[1] = '1';
    longtok[sizeof(longtok) - 1] = 0;
    is_int(list1("lst", "", "", "", longtok, 0, &r, &err), -EINVAL, "oversized token rejected");

    create_bucket("empty");
    CHECK_LIST("empty", "", "/", "", 0, "", "", "empty bucket");
    is_int(list1("nope", "", "", "", NULL, 0, &r, &err), LODE_ENOBUCKET, "missing bucket");
    /* Bucket "lst" must not leak into "lst2" and vice versa. */
    create_bucket("lst2");
    put("lst2", "a");
    CHECK_LIST("lst2", "", "", "", 0, "a", "", "neighbouring bucket lists only its own keys");
    is_int(list1("lst", "", "", "", NULL, 5000, &r, &err), 0, "max_keys above 1000");
    ok(r->n_entries == 17 && !r->is_truncated, "is capped, not rejected");
    lode__object_list_response__free_unpacked(r, NULL);
}

/* A listing that rolls keys into a common prefix seeks past them instead of reading them. */
static void test_seek(void)
{
    char key[64];
    create_bucket("seek");
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "dir/%05d", i);
        put("seek", key);
    }
    put("seek", "a");
    put("seek", "e");
    uint64_t before = meta_fsm_list_steps(fsm);
    CHECK_LIST("seek", "", "/", "", 0, "a e", "dir/", "3000 keys under one common prefix");
    uint64_t steps = meta_fsm_list_steps(fsm) - before;
    ok(steps <= 5, "listing visited %llu entries, not 3000", (unsigned long long)steps);
    before = meta_fsm_list_steps(fsm);
    CHECK_LIST("seek", "", "/", "", 1, "a e", "dir/", "same in pages of 1");
    steps = meta_fsm_list_steps(fsm) - before;
    ok(steps <= 10, "paging visited %llu entries", (unsigned long long)steps);
}

/* Keys longer than LMDB's key limit live in bundles; listing must not notice. */
static void test_long_keys(void)
{
    char base[601], k[1100];
    create_bucket("long");
    memset(base, 'L', 600);
    base[600] = 0;
    const char *tails[] = {"/a", "/b/c", "/b/d", "0", "/c", ""};
    for (size_t i = 0; i < sizeof(tails) / sizeof(*tails); i++) {
        snprintf(k, sizeof(k), "%s%s", base, tails[i]);
        put("long", k);
    }
    memset(k, 'L', 1024);
    k[1024] = 0;
    put("long", k);
    memset(k, 'L', 599);
    k[599] = 0;
    put("long", k); /* 599 bytes: below the others */
    put("long", "M");

    char pfx[700], sa[700], want_k[4096], want_p[4096], got_k[8192], got_p[8192];
    snprintf(pfx, sizeof(pfx), "%s/", base);
    snprintf(want_k, sizeof(want_k), "%s/a %s/c", base, base);
    snprintf(want_p, sizeof(want_p), "%s/b/", base);
    for (uint32_t max = 0; max <= 2; max++) {
        int pages = list_all("long", pfx, "/", "", max, got_k, got_p, sizeof(got_k));
        ok(pages > 0, "long keys: prefix + delimiter, pages of %u", max);
        ok(strcmp(got_k, want_k) == 0 && strcmp(got_p, want_p) == 0, "  right keys and prefix");
    }
    snprintf(sa, sizeof(sa), "%s/b/c", base);
    list_all("long", "", "/", sa, 1, got_k, got_p, sizeof(got_k));
    ok(strstr(got_p, "/b/") == NULL && strncmp(got_k, base, 600) == 0,
       "start_after inside a long common prefix");
    int pages = list_all("long", "", "", "", 1, got_k, got_p, sizeof(got_k));
    is_int(pages, 9, "all nine long keys, one per page");
    int n = 0;
    size_t prev_len = 0;
    bool order = true;
    for (char *s = strtok(got_k, " "); s; s = strtok(NULL, " "), n++) {
        size_t len = strlen(s);
        /* Expected order: 599 L's, 600 L's, +"/a", "/b/c", "/b/d", "/c", "0", 1024 L's, M. */
        static const size_t want_len[] = {599, 600, 602, 604, 604, 602, 601, 1024, 1};
        if (n >= 9 || len != want_len[n])
            order = false;
        prev_len = len;
    }
    (void)prev_len;
    ok(order && n == 9, "long keys in byte order across bundle boundaries");
}

/* ---- multipart listings */

static void create_upload(const char *bucket, const char *key, const char *id)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CreateUpload cu = LODE__CREATE_UPLOAD__INIT;
    Lode__UploadRecord u = LODE__UPLOAD_RECORD__INIT;
    u.bucket = (char *)bucket;
    u.key = (char *)key;
    u.upload_id = (char *)id;
    cu.upload = &u;
    c.op_case = LODE__COMMAND__OP_CREATE_UPLOAD;
    c.create_upload = &cu;
    apply(&c);
}

static void put_part(const char *id, uint32_t number)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__PutPart pp = LODE__PUT_PART__INIT;
    Lode__PartInfo p = LODE__PART_INFO__INIT;
    p.number = number;
    p.size = number * 10;
    p.etag = "x";
    pp.upload_id = (char *)id;
    pp.part = &p;
    c.op_case = LODE__COMMAND__OP_PUT_PART;
    c.put_part = &pp;
    apply(&c);
}

static Lode__PartListResponse *parts(const char *id, uint32_t marker, uint32_t max, int *rc)
{
    Lode__PartListRequest q = LODE__PART_LIST_REQUEST__INIT;
    struct cmn_buf b = {0};
    q.upload_id = (char *)id;
    q.part_number_marker = marker;
    q.max_parts = max;
    *rc = meta_fsm_part_list(fsm, &q, &b, NULL);
    Lode__PartListResponse *r = *rc ? NULL : lode__part_list_response__unpack(NULL, b.len, b.data);
    cmn_buf_free(&b);
    return r;
}

static void test_parts(void)
{
    int rc;
    create_bucket("mpl");
    create_upload("mpl", "obj", "up-1");
    create_upload("mpl", "obj", "up-10"); /* "up-1" NUL ... must not see up-10's parts */
    const uint32_t nums[] = {8, 1, 3, 2, 5};
    for (size_t i = 0; i < 5; i++)
        put_part("up-1", nums[i]);
    put_part("up-10", 4);

    Lode__PartListResponse *r = parts("up-1", 0, 2, &rc);
    ok(r && r->n_parts == 2 && r->parts[0]->number == 1 && r->parts[1]->number == 2 &&
           r->is_truncated && r->next_part_number_marker == 2 && r->upload &&
           strcmp(r->upload->upload_id, "up-1") == 0,
       "parts page 1: 1,2, truncated, marker 2, with the upload");
    lode__part_list_response__free_unpacked(r, NULL);
    r = parts("up-1", 2, 2, &rc);
    ok(r && r->n_parts == 2 && r->parts[0]->number == 3 && r->parts[1]->number == 5 &&
           r->is_truncated && r->next_part_number_marker == 5,
       "parts page 2: 3,5, truncated, marker 5");
    lode__part_list_response__free_unpacked(r, NULL);
    r = parts("up-1", 5, 2, &rc);
    ok(r && r->n_parts == 1 && r->parts[0]->number == 8 && r->parts[0]->size == 80 &&
           !r->is_truncated,
       "parts page 3: 8, not truncated");
    lode__part_list_response__free_unpacked(r, NULL);
    r = parts("up-1", 0, 5, &rc);
    ok(r && r->n_parts == 5 && !r->is_truncated, "exactly max_parts: not truncated");
    lode__part_list_response__free_unpacked(r, NULL);
    r = parts("up-1", 8, 0, &rc);
    ok(r && r->n_parts == 0 && !r->is_truncated, "marker at the last part: empty");
    lode__part_list_response__free_unpacked(r, NULL);
    r = parts("up-10", 0, 0, &rc);
    ok(r && r->n_parts == 1 && r->parts[0]->number == 4, "an id that extends another's");
    lode__part_list_response__free_unpacked(r, NULL);
    r = parts("nope", 0, 0, &rc);
    is_int(rc, LODE_ENOUPLOAD, "parts of a missing upload");
}

static Lode__UploadListResponse *uploads(const char *bucket, const char *prefix, const char *km,
                                         const char *uim, uint32_t max, int *rc)
{
    Lode__UploadListRequest q = LODE__UPLOAD_LIST_REQUEST__INIT;
    struct cmn_buf b = {0};
    q.bucket = (char *)bucket;
    q.prefix = (char *)prefix;
    q.key_marker = (char *)km;
    q.upload_id_marker = (char *)uim;
    q.max_uploads = max;
    *rc = meta_fsm_upload_list(fsm, &q, &b, NULL);
    Lode__UploadListResponse *r =
        *rc ? NULL : lode__upload_list_response__unpack(NULL, b.len, b.data);
    cmn_buf_free(&b);
    return r;
}

static void describe_uploads(const Lode__UploadListResponse *r, char *d, size_t cap)
{
    d[0] = 0;
    for (size_t i = 0; r && i < r->n_uploads; i++) {
        char one[128];
        snprintf(one, sizeof(one), "%s:%s", r->uploads[i]->key, r->uploads[i]->upload_id);
        desc_add(d, cap, one, " ");
    }
}

static void test_uploads(void)
{
    char d[1024];
    int rc;
    create_bucket("upl");
    create_bucket("upl2");
    create_upload("upl", "a", "u3");
    create_upload("upl", "a", "u1");
    create_upload("upl", "b", "u2");
    create_upload("upl", "c/d", "u4");
    create_upload("upl2", "a", "u9");

    Lode__UploadListResponse *r = uploads("upl", "", "", "", 0, &rc);
    describe_uploads(r, d, sizeof(d));
    is_str(d, "a:u1 a:u3 b:u2 c/d:u4", "uploads by key, then upload id");
    ok(r && !r->is_truncated, "not truncated");
    lode__upload_list_response__free_unpacked(r, NULL);

    /* Follow the markers one upload at a time. */
    char km[64] = "", uim[64] = "", all[256] = "";
    int pages = 0;
    for (;;) {
        r = uploads("upl", "", km, uim, 1, &rc);
        if (!r)
            break;
        pages++;
        describe_uploads(r, d, sizeof(d));
        desc_add(all, sizeof(all), d, " ");
        bool more = r->is_truncated;
        if (more) {
            snprintf(km, sizeof(km), "%s", r->next_key_marker);
            snprintf(uim, sizeof(uim), "%s", r->next_upload_id_marker);
        }
        lode__upload_list_response__free_unpacked(r, NULL);
        if (!more || pages > 10)
            break;
    }
    is_str(all, "a:u1 a:u3 b:u2 c/d:u4", "paginated with key and upload-id markers");
    is_int(pages, 4, "four pages of one");

    r = uploads("upl", "", "a", "", 0, &rc);
    describe_uploads(r, d, sizeof(d));
    is_str(d, "b:u2 c/d:u4", "key_marker alone skips every upload of that key");
    lode__upload_list_response__free_unpacked(r, NULL);
    r = uploads("upl", "", "a", "u1", 0, &rc);
    describe_uploads(r, d, sizeof(d));
    is_str(d, "a:u3 b:u2 c/d:u4", "key_marker + upload_id_marker");
    lode__upload_list_response__free_unpacked(r, NULL);
    r = uploads("upl", "c/", "", "", 0, &rc);
    describe_uploads(r, d, sizeof(d));
    is_str(d, "c/d:u4", "prefix");
    lode__upload_list_response__free_unpacked(r, NULL);
    r = uploads("nope", "", "", "", 0, &rc);
    is_int(rc, LODE_ENOBUCKET, "uploads of a missing bucket");
}

int main(void)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(root, sizeof(root), "%s/test_fsm_list.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(root))
        tap_bail("mkdtemp: %s", strerror(errno));
    cmn_log_set_level(CMN_LOG_WARN);
    struct meta_fsm_options o = {.dir = root};
    struct cmn_err err;
    if (meta_fsm_open(&o, &fsm, &err))
        tap_bail("open: %s", cmn_err_text(&err));
    test_objects();
    test_seek();
    test_long_keys();
    test_parts();
    test_uploads();
    meta_fsm_close(fsm);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
