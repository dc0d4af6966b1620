/* ListMultipartUploads pages (gateway/s3_uplist.h) against lode-meta's UPLOAD_LIST as this
 * test reimplements it from its documented contract (meta/fsm_read.c: uploads in (key,
 * upload id) order after the markers, prefix-filtered, max per page, is_truncated):
 *   - the examples of the S3 documentation (ListMultipartUploads, "delimiter and prefix"),
 *     whose answers are written there;
 *   - random upload sets, prefixes, delimiters, markers and page sizes, each page compared
 *     with a brute-force listing written from S3's definition (every upload after the
 *     markers, keys rolled up at the first delimiter after the prefix, one entry per common
 *     prefix, the first max-uploads entries), and every listing walked page by page with
 *     NextKeyMarker / NextUploadIdMarker: nothing lost, nothing listed twice;
 *     meta answering pages of 1 to 7 uploads as well as full ones;
 *   - a common prefix over 5000 uploads costs two meta pages, not five. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/s3_uplist.h"
#include "tests/tap.h"

#define MAX_UPLOADS 6000

struct upload {
    char key[32];
    char id[16];
};

static struct upload ups[MAX_UPLOADS];
static size_t n_ups;
static unsigned meta_calls;
/* meta may answer fewer uploads than asked, with is_truncated: pages this small make every
 * page boundary (inside a common prefix, right after one) happen in small listings. */
static uint32_t meta_cap = GW_UPLIST_META_PAGE;

static int cmp_upload(const void *a, const void *b)
{
    const struct upload *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->id, y->id);
}

static void add(const char *key, const char *id)
{
    snprintf(ups[n_ups].key, sizeof(ups[n_ups].key), "%s", key);
    snprintf(ups[n_ups].id, sizeof(ups[n_ups].id), "%s", id);
    n_ups++;
}

static void sort_uploads(void)
{
    qsort(ups, n_ups, sizeof(ups[0]), cmp_upload);
}

/* meta's UPLOAD_LIST: after (km, uim) -- after every upload of km when uim is empty --,
 * keys starting with prefix, at most max, is_truncated when more remain. */
static size_t meta_list(const char *prefix, const char *km, const char *uim, uint32_t max,
                        struct gw_uplist_item *out, bool *truncated)
{
    size_t n = 0, plen = strlen(prefix);
    meta_calls++;
    if (max > meta_cap)
        max = meta_cap;
    *truncated = false;
    for (size_t i = 0; i < n_ups; i++) {
        const struct upload *u = &ups[i];
        if (strncmp(u->key, prefix, plen) != 0)
            continue;
        if (*km) {
            int c = strcmp(u->key, km);
            if (c < 0 || (c == 0 && (!*uim || strcmp(u->id, uim) <= 0)))
                continue;
        }
        if (n == max) {
            *truncated = true;
            break;
        }
        out[n].key = u->key;
        out[n].upload_id = u->id;
        out[n].initiated_ms = (int64_t)i;
        n++;
    }
    return n;
}

/* One listed entry: "U key id" or "P prefix". */
struct ref {
    char text[80];
};

/* S3's definition, directly: the complete listing after the markers (no max). */
static size_t reference(const char *prefix, const char *delim, const char *km, const char *uim,
                        struct ref *out)
{
    size_t n = 0, plen = strlen(prefix), dlen = strlen(delim), kmlen = strlen(km);
    char last_cp[40] = "";
    /* A key-marker that is itself a common prefix of this listing stands for that prefix. */
    bool km_is_cp = false;
    if (dlen && !*uim && kmlen >= plen + dlen && strncmp(km, prefix, plen) == 0) {
        const char *d = strstr(km + plen, delim);
        km_is_cp = d && (size_t)(d - km) + dlen == kmlen;
    }
    for (size_t i = 0; i < n_ups; i++) {
        const struct upload *u = &ups[i];
        if (strncmp(u->key, prefix, plen) != 0)
            continue;
        if (*km) {
            int c = strcmp(u->key, km);
            if (c < 0 || (c == 0 && (!*uim || strcmp(u->id, uim) <= 0)))
                continue;
        }
        const char *d = dlen ? strstr(u->key + plen, delim) : NULL;
        if (d) {
            char cp[40];
            int cplen = (int)(d - u->key + (long)dlen);
            snprintf(cp, sizeof(cp), "%.*s", cplen, u->key);
            if (strcmp(cp, last_cp) == 0 || (km_is_cp && strcmp(cp, km) == 0))
                continue;
            snprintf(last_cp, sizeof(last_cp), "%s", cp);
            snprintf(out[n++].text, sizeof(out[0].text), "P %s", cp);
        } else {
            last_cp[0] = '\0';
            snprintf(out[n++].text, sizeof(out[0].text), "U %.31s %.15s", u->key, u->id);
        }
    }
    return n;
}

static struct gw_str gs(const char *s)
{
    return (struct gw_str){s, strlen(s)};
}

/* Runs the module against meta_list; returns 0 or -1 when it failed or asked too much. */
static int run_page(const char *prefix, const char *delim, const char *km, const char *uim,
                    uint32_t max, struct gw_uplist *ul)
{
    static struct gw_uplist_item items[GW_UPLIST_META_PAGE + 1];
    struct gw_uplist_params p = {gs(prefix), gs(delim), gs(km), gs(uim), max};
    if (gw_uplist_init(ul, &p))
        return -1;
    meta_calls = 0;
    int rc = 1;
    while (!ul->done && rc == 1) {
        const char *qp, *qk, *qu;
        uint32_t qm;
        gw_uplist_query(ul, &qp, &qk, &qu, &qm);
        if (qm == 0 || qm > GW_UPLIST_META_PAGE || strcmp(qp, prefix) != 0)
            return -1;
        bool more;
        size_t n = meta_list(qp, qk, qu, qm, items, &more);
        rc = gw_uplist_feed(ul, items, n, more);
        if (meta_calls > max + 2u)
            return -1;
    }
    return rc < 0 ? -1 : 0;
}

static void entry_text(const struct gw_uplist_entry *e, char *out, size_t cap)
{
    if (e->upload_id)
        snprintf(out, cap, "U %s %s", e->key, e->upload_id);
    else
        snprintf(out, cap, "P %s", e->key);
}

/* The page as "U k id|P p|..." for messages. */
static void page_text(const struct gw_uplist *ul, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ul->n && off + 1 < cap; i++) {
        char t[80];
        entry_text(&ul->v[i], t, sizeof(t));
        off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? "|" : "", t);
    }
}

static void test_documentation(void)
{
    /* S3 documentation, ListMultipartUploads, "Using the delimiter and prefix parameters". */
    n_ups = 0;
    add("photos/2006/January/sample.jpg", "id1");
    add("photos/2006/February/sample.jpg", "id2");
    add("photos/2006/March/sample.jpg", "id3");
    add("videos/2006/March/sample.wmv", "id4");
    add("sample.jpg", "id5");
    sort_uploads();
    struct gw_uplist ul;
    char got[512];

    is_int(run_page("", "/", "", "", 1000, &ul), 0, "delimiter '/': listed");
    page_text(&ul, got, sizeof(got));
    is_str(got, "P photos/|U sample.jpg id5|P videos/",
           "delimiter '/': sample.jpg and the common prefixes photos/ and videos/");
    ok(!ul.truncated, "... not truncated");
    gw_uplist_free(&ul);

    is_int(run_page("photos/2006/", "/", "", "", 1000, &ul), 0, "prefix photos/2006/: listed");
    page_text(&ul, got, sizeof(got));
    is_str(got, "P photos/2006/February/|P photos/2006/January/|P photos/2006/March/",
           "prefix photos/2006/ with '/': the three month prefixes, no upload");
    gw_uplist_free(&ul);

    is_int(run_page("", "", "", "", 1000, &ul), 0, "no delimiter: listed");
    is_int(ul.n, 5, "no delimiter: all five uploads");
    gw_uplist_free(&ul);

    /* Paging over common prefixes: max-uploads 1, then the markers given back. */
    is_int(run_page("", "/", "", "", 1, &ul), 0, "max-uploads 1: listed");
    const char *nk, *nid;
    gw_uplist_next_markers(&ul, &nk, &nid);
    ok(ul.truncated && ul.n == 1 && !strcmp(nk, "photos/") && !strcmp(nid, ""),
       "max-uploads 1: photos/, truncated, NextKeyMarker photos/, empty NextUploadIdMarker");
    gw_uplist_free(&ul);
    is_int(run_page("", "/", "photos/", "", 1, &ul), 0, "key-marker photos/: listed");
    gw_uplist_next_markers(&ul, &nk, &nid);
    ok(ul.truncated && ul.n == 1 && ul.v[0].upload_id && !strcmp(ul.v[0].key, "sample.jpg") &&
           !strcmp(nk, "sample.jpg") && !strcmp(nid, "id5"),
       "key-marker photos/ skips the prefix: sample.jpg next, markers sample.jpg/id5");
    gw_uplist_free(&ul);
    is_int(run_page("", "/", "sample.jpg", "id5", 1, &ul), 0, "the third page: listed");
    ok(!ul.truncated && ul.n == 1 && !ul.v[0].upload_id && !strcmp(ul.v[0].key, "videos/"),
       "the third page holds videos/ and is the last");
    gw_uplist_free(&ul);

    /* max-uploads 0: complete at once, no meta call. */
    struct gw_uplist_params p = {gs(""), gs("/"), gs(""), gs(""), 0};
    is_int(gw_uplist_init(&ul, &p), 0, "max-uploads 0: set up");
    ok(ul.done && ul.n == 0 && !ul.truncated, "max-uploads 0: an empty, complete page");
    gw_uplist_free(&ul);

    /* An upload-id-marker without a key-marker means nothing (S3 ignores it). */
    is_int(run_page("", "", "", "id3", 1000, &ul), 0, "upload-id-marker alone: listed");
    is_int(ul.n, 5, "upload-id-marker alone is ignored");
    gw_uplist_free(&ul);
}

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void random_key(char *out, size_t cap)
{
    static const char *const alpha[] = {"a", "b", "/", "-"};
    unsigned len = 1 + rnd(6);
    size_t off = 0;
    for (unsigned i = 0; i < len && off + 2 < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s", alpha[rnd(4)]);
}

static void test_random(void)
{
    static const char *const prefixes[] = {"", "a", "a/", "b/a", "/"};
    static const char *const delims[] = {"", "/", "-", "a/", "//"};
    static const uint32_t maxes[] = {1, 2, 3, 5, 1000};
    static struct ref full[MAX_UPLOADS];
    unsigned bad_pages = 0, bad_walks = 0, failures = 0, pages = 0, truncated = 0, prefixed = 0;

    for (int trial = 0; trial < 300; trial++) {
        n_ups = 0;
        unsigned nk = 1 + rnd(60);
        for (unsigned i = 0; i < nk; i++) {
            char key[16], id[16];
            random_key(key, sizeof(key));
            unsigned copies = 1 + rnd(3); /* several uploads of one key */
            for (unsigned c = 0; c < copies; c++) {
                /* Unique, in no particular order against the keys (as meta's random ids). */
                snprintf(id, sizeof(id), "u%03u%03u", rnd(1000), i * 3 + c);
                add(key, id);
            }
        }
        sort_uploads();
        for (int q = 0; q < 20; q++) {
            const char *prefix = prefixes[rnd(5)], *delim = delims[rnd(5)];
            uint32_t max = maxes[rnd(5)];
            static const uint32_t caps[] = {1, 2, 3, 7, GW_UPLIST_META_PAGE};
            meta_cap = caps[rnd(5)];
            /* Markers: none, an existing upload, its key alone, or a random string. */
            char km[40] = "", uim[16] = "";
            unsigned mk = rnd(4);
            if (mk == 1 || mk == 2) {
                const struct upload *u = &ups[rnd((unsigned)n_ups)];
                snprintf(km, sizeof(km), "%s", u->key);
                if (mk == 1)
                    snprintf(uim, sizeof(uim), "%s", u->id);
            } else if (mk == 3) {
                random_key(km, sizeof(km));
            }
            size_t nf = reference(prefix, delim, km, uim, full);
            struct gw_uplist ul;
            pages++;
            if (run_page(prefix, delim, km, uim, max, &ul) != 0) {
                failures++;
                gw_uplist_free(&ul);
                continue;
            }
            size_t want_n = nf < max ? nf : max;
            bool same = ul.n == want_n && ul.truncated == (nf > max);
            for (size_t i = 0; same && i < ul.n; i++) {
                char t[80];
                entry_text(&ul.v[i], t, sizeof(t));
                same = strcmp(t, full[i].text) == 0;
                prefixed += !ul.v[i].upload_id;
            }
            truncated += ul.truncated;
            if (!same && bad_pages++ < 3) {
                char got[2048];
                page_text(&ul, got, sizeof(got));
                diag("prefix '%s' delim '%s' marker '%s'/'%s' max %u: got %s", prefix, delim,
                     km, uim, max, got);
            }
            /* Walk the whole listing with the markers each page gives back. */
            size_t seen = 0;
            bool walk_ok = same;
            for (int guard = 0; walk_ok && guard < MAX_UPLOADS; guard++) {
                for (size_t i = 0; walk_ok && i < ul.n; i++) {
                    char t[80];
                    entry_text(&ul.v[i], t, sizeof(t));
                    walk_ok = seen < nf && strcmp(t, full[seen].text) == 0;
                    seen++;
                }
                if (!walk_ok || !ul.truncated)
                    break;
                const char *nk2, *nid2;
                char k2[40], id2[16];
                gw_uplist_next_markers(&ul, &nk2, &nid2);
                snprintf(k2, sizeof(k2), "%s", nk2);
                snprintf(id2, sizeof(id2), "%s", nid2);
                gw_uplist_free(&ul);
                if (run_page(prefix, delim, k2, id2, max, &ul) != 0)
                    walk_ok = false;
            }
            gw_uplist_free(&ul);
            if (walk_ok && seen != nf)
                walk_ok = false;
            if (!walk_ok && same && bad_walks++ < 3)
                diag("walk: prefix '%s' delim '%s' max %u: %zu of %zu entries", prefix, delim,
                     max, seen, nf);
        }
    }
    meta_cap = GW_UPLIST_META_PAGE;
    is_int(failures, 0, "no page failed or asked meta more than max-uploads + 2 times");
    is_int(bad_pages, 0, "%u random pages equal S3's listing", pages);
    is_int(bad_walks, 0, "walking every listing by its markers lists each entry once");
    ok(truncated > 500 && prefixed > 1000, "the run exercised truncation (%u) and common "
       "prefixes (%u)", truncated, prefixed);
}

static void test_big_prefix(void)
{
    n_ups = 0;
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "logs/%05d", i);
        add(key, "u1");
    }
    add("a-first", "u1");
    add("zzz", "u1");
    add("logz", "u1");
    sort_uploads();
    struct gw_uplist ul;
    char got[256];
    is_int(run_page("", "/", "", "", 1000, &ul), 0, "5003 uploads, 5000 under logs/: listed");
    page_text(&ul, got, sizeof(got));
    is_str(got, "U a-first u1|P logs/|U logz u1|U zzz u1",
           "logs/ is one common prefix among the uploads around it");
    ok(meta_calls == 2, "... reading %u meta pages (skipping past the prefix)", meta_calls);
    gw_uplist_free(&ul);
    is_int(run_page("", "/", "", "", 2, &ul), 0, "max-uploads 2: listed");
    ok(ul.truncated && ul.n == 2 && meta_calls == 2,
       "max-uploads 2 ending on logs/: truncated, found with %u meta pages", meta_calls);
    gw_uplist_free(&ul);
    is_int(run_page("", "/", "logs/", "", 1000, &ul), 0, "key-marker logs/: listed");
    page_text(&ul, got, sizeof(got));
    is_str(got, "U logz u1|U zzz u1", "key-marker logs/ lists what follows the prefix");
    is_int(meta_calls, 1, "... in one meta page");
    gw_uplist_free(&ul);
}

/* Answers meta could give if confused must not make the page loop or crash. */
static void test_confused_meta(void)
{
    struct gw_uplist ul;
    struct gw_uplist_params p = {gs("a"), gs("/"), gs(""), gs(""), 5};
    struct gw_uplist_item same[2] = {{"a/1", "u1", 0}, {"a/1", "u1", 0}};
    struct gw_uplist_item outside[1] = {{"b", "u1", 0}};
    if (gw_uplist_init(&ul, &p))
        tap_bail("init");
    int rc = gw_uplist_feed(&ul, same, 2, true);
    ok(rc == 1 && ul.n == 1, "a repeated upload is listed once");
    rc = gw_uplist_feed(&ul, same, 2, true);
    ok(rc == 0 && ul.done, "a page of nothing new that claims more ends the listing");
    gw_uplist_free(&ul);
    if (gw_uplist_init(&ul, &p))
        tap_bail("init");
    rc = gw_uplist_feed(&ul, outside, 1, false);
    ok(rc == 0 && ul.n == 0, "an upload outside the prefix is ignored");
    gw_uplist_free(&ul);
}

int main(void)
{
    test_documentation();
    test_random();
    test_big_prefix();
    test_confused_meta();
    return tap_done();
}
