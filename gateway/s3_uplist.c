/* ListMultipartUploads pages with common prefixes (see s3_uplist.h). */
#include "gateway/s3_uplist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(struct gw_str s)
{
    return strndup(s.p ? s.p : "", s.n);
}

/* A marker that ends where a common prefix of this listing ends. */
static bool is_common_prefix(const struct gw_uplist *ul, const char *m)
{
    size_t n = strlen(m);
    if (!ul->dlen || n < ul->plen + ul->dlen || memcmp(m, ul->prefix, ul->plen) != 0)
        return false;
    const char *d = memmem(m + ul->plen, n - ul->plen, ul->delim, ul->dlen);
    return d && (size_t)(d - m) + ul->dlen == n;
}

/* Key-marker semantics past a whole common prefix: meta lists the keys after `cp` then
 * byte 0xFF, which no UTF-8 key continues (the router refuses keys that are not UTF-8). */
static char *past_prefix(const char *cp, size_t n)
{
    char *s = malloc(n + 2);
    if (s) {
        memcpy(s, cp, n);
        s[n] = '\xff';
        s[n + 1] = '\0';
    }
    return s;
}

static int set_query(struct gw_uplist *ul, char *key, const char *upload_id)
{
    char *id = strdup(upload_id);
    if (!key || !id) {
        free(key);
        free(id);
        return -ENOMEM;
    }
    free(ul->q_key);
    free(ul->q_upload_id);
    ul->q_key = key;
    ul->q_upload_id = id;
    return 0;
}

int gw_uplist_init(struct gw_uplist *ul, const struct gw_uplist_params *p)
{
    memset(ul, 0, sizeof(*ul));
    ul->prefix = dup_str(p->prefix);
    ul->delim = dup_str(p->delimiter);
    ul->max = p->max;
    ul->v = calloc(p->max ? p->max : 1, sizeof(*ul->v));
    if (!ul->prefix || !ul->delim || !ul->v)
        return -ENOMEM;
    ul->plen = strlen(ul->prefix);
    ul->dlen = strlen(ul->delim);
    char *km = dup_str(p->key_marker);
    if (!km)
        return -ENOMEM;
    /* An upload-id-marker means nothing without a key-marker (S3 ignores it). */
    struct gw_str uim = km[0] ? p->upload_id_marker : (struct gw_str){"", 0};
    char *id = dup_str(uim);
    if (!id) {
        free(km);
        return -ENOMEM;
    }
    int rc;
    if (!id[0] && is_common_prefix(ul, km)) {
        rc = set_query(ul, past_prefix(km, strlen(km)), "");
        free(km);
    } else {
        rc = set_query(ul, km, id);
    }
    free(id);
    ul->q_max = ul->dlen ? GW_UPLIST_META_PAGE : ul->max;
    if (ul->max == 0)
        ul->done = true;
    return rc;
}

void gw_uplist_free(struct gw_uplist *ul)
{
    for (size_t i = 0; i < ul->n; i++) {
        free(ul->v[i].key);
        free(ul->v[i].upload_id);
    }
    free(ul->v);
    free(ul->prefix);
    free(ul->delim);
    free(ul->q_key);
    free(ul->q_upload_id);
    memset(ul, 0, sizeof(*ul));
}

void gw_uplist_query(const struct gw_uplist *ul, const char **prefix, const char **key_marker,
                     const char **upload_id_marker, uint32_t *max_uploads)
{
    *prefix = ul->prefix;
    *key_marker = ul->q_key;
    *upload_id_marker = ul->q_upload_id;
    *max_uploads = ul->q_max;
}

/* (key, id) strictly after (mk, mid) in meta's order; an empty mid means "after every
 * upload of mk". */
static bool after(const char *key, const char *id, const char *mk, const char *mid)
{
    int c = strcmp(key, mk);
    return c > 0 || (c == 0 && mid[0] && strcmp(id, mid) > 0);
}

static int push(struct gw_uplist *ul, const char *key, size_t klen, const char *id,
                int64_t initiated_ms)
{
    struct gw_uplist_entry *e = &ul->v[ul->n];
    e->key = strndup(key, klen);
    e->upload_id = id ? strdup(id) : NULL;
    if (!e->key || (id && !e->upload_id)) {
        free(e->key);
        free(e->upload_id);
        e->key = e->upload_id = NULL;
        return -ENOMEM;
    }
    e->initiated_ms = initiated_ms;
    ul->n++;
    return 0;
}

static bool last_is_prefix(const struct gw_uplist *ul)
{
    return ul->n && !ul->v[ul->n - 1].upload_id;
}

static int finish(struct gw_uplist *ul, bool truncated)
{
    ul->truncated = truncated && ul->n > 0;
    ul->done = true;
    return 0;
}

int gw_uplist_feed(struct gw_uplist *ul, const struct gw_uplist_item *items, size_t n_items,
                   bool meta_truncated)
{
    const char *lk = ul->q_key, *lid = ul->q_upload_id;
    size_t used = 0;

    if (ul->done)
        return 0;
    /* Every call but the last adds an entry (see the header); more means meta is confused. */
    if (++ul->calls > (unsigned)ul->max + 4)
        return finish(ul, true);
    for (size_t i = 0; i < n_items; i++) {
        const char *key = items[i].key ? items[i].key : "";
        const char *id = items[i].upload_id ? items[i].upload_id : "";
        size_t klen = strlen(key);
        if (!id[0] || klen < ul->plen || memcmp(key, ul->prefix, ul->plen) != 0 ||
            !after(key, id, lk, lid))
            continue;
        lk = key;
        lid = id;
        used++;
        const char *d = ul->dlen ? memmem(key + ul->plen, klen - ul->plen, ul->delim, ul->dlen)
                                 : NULL;
        if (d) {
            size_t cplen = (size_t)(d - key) + ul->dlen;
            const struct gw_uplist_entry *last = ul->n ? &ul->v[ul->n - 1] : NULL;
            /* Under the prefix just listed: already in the page. The rest of a page meta has
             * sent costs nothing to skip here; a prefix running past the page is skipped by
             * the next query. */
            if (last && !last->upload_id && strlen(last->key) == cplen &&
                memcmp(last->key, key, cplen) == 0)
                continue;
            if (ul->n == ul->max)
                return finish(ul, true);
            if (push(ul, key, cplen, NULL, items[i].initiated_ms))
                return -ENOMEM;
        } else {
            if (ul->n == ul->max)
                return finish(ul, true);
            if (push(ul, key, klen, id, items[i].initiated_ms))
                return -ENOMEM;
        }
    }
    /* No usable upload in a page meta says is not the last: it would answer the same again. */
    if (!meta_truncated || used == 0)
        return finish(ul, false);
    if (ul->n == ul->max && !last_is_prefix(ul))
        return finish(ul, true); /* whatever comes next is listed: something more is there */
    int rc;
    if (last_is_prefix(ul)) {
        const char *cp = ul->v[ul->n - 1].key;
        rc = set_query(ul, past_prefix(cp, strlen(cp)), "");
    } else {
        rc = set_query(ul, strdup(lk), lid);
    }
    if (rc)
        return rc;
    /* A full page only needs to know whether anything lies past its last prefix. */
    ul->q_max = ul->n == ul->max ? 1 : ul->dlen ? GW_UPLIST_META_PAGE : ul->max - (uint32_t)ul->n;
    return 1;
}

void gw_uplist_next_markers(const struct gw_uplist *ul, const char **key_marker,
                            const char **upload_id_marker)
{
    if (!ul->n) {
        *key_marker = "";
        *upload_id_marker = "";
        return;
    }
    const struct gw_uplist_entry *e = &ul->v[ul->n - 1];
    *key_marker = e->key;
    *upload_id_marker = e->upload_id ? e->upload_id : "";
}
