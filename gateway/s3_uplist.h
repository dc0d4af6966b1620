/* One page of ListMultipartUploads, built from lode-meta's UPLOAD_LIST pages: the rolling up
 * of keys into CommonPrefixes with a delimiter, max-uploads, and the markers of the next
 * page. I/O-free: the caller asks meta with the query this module gives and feeds it the
 * answers until it says done.
 *
 * S3's rules, as this module applies them:
 *   - uploads are listed in key order, then by upload id (meta's index order);
 *   - with a delimiter, an upload whose key holds the delimiter after the prefix is not
 *     listed; the key up to and including that first delimiter is a common prefix, listed
 *     once; uploads and common prefixes together count toward max-uploads;
 *   - IsTruncated is true only when something more would be listed (this module looks one
 *     entry ahead, past the last common prefix);
 *   - NextKeyMarker / NextUploadIdMarker are the last upload listed, or the last common
 *     prefix with an empty upload id;
 *   - a key-marker that is a common prefix of this listing (the prefix, then text without
 *     the delimiter, then the delimiter) and no upload-id-marker skips every upload under
 *     that prefix, so following NextKeyMarker never lists a common prefix twice (as
 *     ListObjects v1 does with its marker); any other key-marker lists the uploads of keys
 *     after it, and with an upload-id-marker also the uploads of that very key after that
 *     id.
 *
 * Bounded work: a meta page that ends inside a common prefix is followed by a query from past
 * that prefix (never through the uploads under it), so the first upload of every meta page
 * adds an entry: at most max-uploads + 1 meta calls per page, plus one that looks past a
 * final common prefix to tell whether the page is truncated.
 */
#ifndef LODE_GATEWAY_S3_UPLIST_H
#define LODE_GATEWAY_S3_UPLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gw_types.h"

/* meta's largest UPLOAD_LIST page (META_LIST_MAX_KEYS). */
#define GW_UPLIST_META_PAGE 1000

/* What the request asks (from gw_list_params; strings are copied). */
struct gw_uplist_params {
    struct gw_str prefix;
    struct gw_str delimiter;           /* empty: no rolling up */
    struct gw_str key_marker, upload_id_marker;
    uint32_t max;                      /* max-uploads, 1..1000 */
};

/* One upload of a meta page (borrowed during gw_uplist_feed). */
struct gw_uplist_item {
    const char *key;
    const char *upload_id;
    int64_t initiated_ms;
};

/* One entry of the page: an upload, or a common prefix (upload_id NULL). */
struct gw_uplist_entry {
    char *key;                         /* the key, or the common prefix */
    char *upload_id;
    int64_t initiated_ms;
};

struct gw_uplist {
    /* the request */
    char *prefix, *delim;
    size_t plen, dlen;
    uint32_t max;
    /* the next meta query */
    char *q_key, *q_upload_id;
    uint32_t q_max;
    /* the page so far */
    struct gw_uplist_entry *v;
    size_t n;
    bool truncated;
    bool done;
    unsigned calls;                    /* meta pages fed */
};

/* Starts a page. Returns 0 or -ENOMEM (then gw_uplist_free is still safe). */
int gw_uplist_init(struct gw_uplist *ul, const struct gw_uplist_params *p);

/* Frees what the page holds. */
void gw_uplist_free(struct gw_uplist *ul);

/* The next UPLOAD_LIST query: prefix (the request's), key_marker, upload_id_marker and
 * max_uploads. The strings are the module's, valid until the next feed. */
void gw_uplist_query(const struct gw_uplist *ul, const char **prefix, const char **key_marker,
                     const char **upload_id_marker, uint32_t *max_uploads);

/* Feeds meta's answer to the last query: its uploads in order and its is_truncated.
 * Returns 1 when another query is needed (gw_uplist_query), 0 when the page is complete
 * (v, n and truncated final), -ENOMEM. Items outside the prefix or out of order are
 * ignored, so a confused answer cannot make the page loop. */
int gw_uplist_feed(struct gw_uplist *ul, const struct gw_uplist_item *items, size_t n_items,
                   bool meta_truncated);

/* NextKeyMarker and NextUploadIdMarker of a complete, truncated page (empty strings when the
 * page is empty). */
void gw_uplist_next_markers(const struct gw_uplist *ul, const char **key_marker,
                            const char **upload_id_marker);

#endif
