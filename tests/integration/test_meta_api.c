/* The lode-meta RPC methods end to end on a 3-replica group: buckets (head, list with and
 * without an owner, delete), ListObjects paginated over more than 2000 keys against a model,
 * multipart uploads (create, parts, listings, failed and successful completion, abort), the
 * GC queue, users and access keys (no secret is ever listed or logged), retried commands
 * applied once, and stale reads served by a follower.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/meta_client.h"
#include "common/rpc_methods.h"
#include "tests/lib/proc.h"
#include "tests/tap.h"

#define T_MS 5000
#define BUCKET_MP "uploads"

static struct tl_cluster *cl;
static struct cmn_meta_client *mc;

static void msg_free(void *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

/* A read through the leader (replica < 0: linearizable) or at one replica with STALE_OK.
 * Returns the reply unpacked as the method's response type (free with msg_free), or NULL
 * with *rc, and the server's message in msg when given (512 bytes), saying why. */
static void *get_at(int replica, unsigned method, void *req, int *rc, char *msg)
{
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    *rc = replica < 0 ? cmn_meta_client_call(mc, method, req, T_MS, &res)
                      : tl_call_at(cl, (unsigned)replica, method, CMN_RPC_FLAG_STALE_OK, req,
                                   T_MS, &res);
    void *m = *rc == 0 ? protobuf_c_message_unpack(cmn_rpc_method_response(method), NULL,
                                                   res.body.len, res.body.data)
                       : NULL;
    if (*rc == 0 && !m)
        *rc = LODE_EBADMSG;
    if (msg)
        snprintf(msg, 512, "%s", res.message);
    cmn_rpc_result_free(&res);
    return m;
}

static void *get(unsigned method, void *req, int *rc)
{
    return get_at(-1, method, req, rc, NULL);
}

/* The status of a read (its reply dropped). */
static int get_status(unsigned method, void *req)
{
    int rc;
    msg_free(get(method, req, &rc));
    return rc;
}

/* ---- Buckets */

/* The commands that only name their target: BUCKET_DELETE, UPLOAD_ABORT, USER_DELETE. */
static int commit_named(unsigned method, const char *name, struct tl_commit_result *r)
{
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__DeleteBucket db = LODE__DELETE_BUCKET__INIT;
    Lode__AbortUpload ab = LODE__ABORT_UPLOAD__INIT;
    Lode__DeleteUser du = LODE__DELETE_USER__INIT;
    db.name = ab.upload_id = du.name = (char *)name;
    if (method == CMN_RPC_BUCKET_DELETE) {
        cmd.op_case = LODE__COMMAND__OP_DELETE_BUCKET;
        cmd.delete_bucket = &db; /* one member of the op union */
    } else if (method == CMN_RPC_UPLOAD_ABORT) {
        cmd.op_case = LODE__COMMAND__OP_ABORT_UPLOAD;
        cmd.abort_upload = &ab;
    } else {
        cmd.op_case = LODE__COMMAND__OP_DELETE_USER;
        cmd.delete_user = &du;
    }
    return tl_commit(mc, method, &cmd, T_MS, r);
}

static int bucket_delete(const char *name, struct tl_commit_result *r)
{
    return commit_named(CMN_RPC_BUCKET_DELETE, name, r);
}

/* Names of BUCKET_LIST (owner may be NULL), comma-joined into out; returns the status. */
static int bucket_names(const char *owner, char *out, size_t size)
{
    Lode__BucketListRequest r = LODE__BUCKET_LIST_REQUEST__INIT;
    int rc;
    r.owner = (char *)owner;
    Lode__BucketListResponse *l = get(CMN_RPC_BUCKET_LIST, &r, &rc);
    out[0] = '\0';
    for (size_t i = 0; l && i < l->n_buckets; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", i ? "," : "", l->buckets[i]->name);
    }
    msg_free(l);
    return rc;
}

static void check_buckets(void)
{
    struct tl_commit_result r;
    char names[512];
    int rc, fails = 0;
    static const char *const mk[][2] = {{"beta", "bob"}, {"alpha", "alice"}, {"gamma", "alice"}};
    for (unsigned i = 0; i < 3; i++)
        fails += tl_bucket_create(mc, mk[i][0], mk[i][1], T_MS, &r) != 0;
    is_int(fails, 0, "create buckets beta (bob), alpha and gamma (alice)");

    Lode__NameRequest nr = LODE__NAME_REQUEST__INIT;
    nr.name = (char *)"gamma";
    Lode__BucketRecord *b = get(CMN_RPC_BUCKET_HEAD, &nr, &rc);
    ok(b && strcmp(b->name, "gamma") == 0 && strcmp(b->owner, "alice") == 0 && b->created_ms > 0,
       "BUCKET_HEAD gamma: its name, owner and creation time");
    msg_free(b);
    nr.name = (char *)"missing";
    is_int(get_status(CMN_RPC_BUCKET_HEAD, &nr), LODE_ENOBUCKET,
           "BUCKET_HEAD of a missing bucket: ENOBUCKET");
    nr.name = (char *)"";
    is_int(get_status(CMN_RPC_BUCKET_HEAD, &nr), LODE_ENOBUCKET,
           "BUCKET_HEAD of an empty name: ENOBUCKET");

    rc = bucket_names(NULL, names, sizeof(names));
    ok(rc == 0 && strcmp(names, "alpha,beta,gamma") == 0,
       "BUCKET_LIST without an owner: every bucket in name order (%s)", names);
    rc = bucket_names("alice", names, sizeof(names));
    ok(rc == 0 && strcmp(names, "alpha,gamma") == 0, "BUCKET_LIST owner alice: alpha,gamma (%s)",
       names);
    rc = bucket_names("bob", names, sizeof(names));
    ok(rc == 0 && strcmp(names, "beta") == 0, "BUCKET_LIST owner bob: beta (%s)", names);
    rc = bucket_names("nobody", names, sizeof(names));
    ok(rc == 0 && names[0] == '\0', "BUCKET_LIST of an owner without buckets: empty");

    is_int(bucket_delete("gamma", &r), 0, "BUCKET_DELETE of an empty bucket%s",
           tl_why(r.message));
    nr.name = (char *)"gamma";
    is_int(get_status(CMN_RPC_BUCKET_HEAD, &nr), LODE_ENOBUCKET,
           "the deleted bucket is gone (BUCKET_HEAD: ENOBUCKET)");
    rc = bucket_names("alice", names, sizeof(names));
    ok(rc == 0 && strcmp(names, "alpha") == 0, "alice's buckets are now just alpha (%s)", names);
    is_int(bucket_delete("gamma", &r), LODE_ENOBUCKET, "deleting it again: ENOBUCKET (%s)",
           r.message);
    is_int(bucket_delete("never-was", &r), LODE_ENOBUCKET,
           "BUCKET_DELETE of a missing bucket: ENOBUCKET");
    is_int(tl_bucket_create(mc, "gamma", "bob", T_MS, &r), 0,
           "a deleted bucket's name can be created again");
}

/* ---- ListObjects */

#define MAX_KEYS_ALL 2200

static char *keys[MAX_KEYS_ALL];   /* sorted (byte order) after fill_keys */
static size_t n_keys;

static uint64_t key_size(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 1099511628211ull;
    return h % 1000003;
}

static void add_key(const char *k)
{
    if (n_keys < MAX_KEYS_ALL && !(keys[n_keys++] = strdup(k)))
        tap_bail("out of memory");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void fill_keys(void)
{
    char k[64];
    for (unsigned i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "top-%04u", i);
        add_key(k);
    }
    for (unsigned d = 0; d < 20; d++)
        for (unsigned f = 0; f < 90; f++) {
            snprintf(k, sizeof(k), "dir%02u/file%04u", d, f);
            add_key(k);
        }
    for (unsigned d = 0; d < 20; d += 3)
        for (unsigned f = 0; f < 5; f++) {
            snprintf(k, sizeof(k), "dir%02u/sub/deep%u", d, f);
            add_key(k);
        }
    /* Neighbours of a common prefix, a key that is itself a common prefix, an empty path
     * segment, and bytes above ASCII. */
    static const char *const odd[] = {"dir07", "dir07-x", "dir07/", "dir07.", "a//b", "a/",
                                      "\xc3\xbc/x", "\xc3\xbc", "zz/", "zz/y/z"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        add_key(odd[i]);
    qsort(keys, n_keys, sizeof(keys[0]), cmp_str);
}

/* What S3 answers, from the sorted key list: keys[] entries (borrowed) and common prefixes
 * (malloc'd). */
struct listing {
    const char **keys;
    char **cps;
    size_t n, n_cps;
};

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n_cps; i++)
        free(l->cps[i]);
    free(l->keys);
    free(l->cps);
}

static void model(const char *prefix, const char *delim, const char *start_after,
                  struct listing *out)
{
    size_t plen = strlen(prefix), dlen = strlen(delim);
    out->keys = calloc(n_keys + 1, sizeof(*out->keys));
    out->cps = calloc(n_keys + 1, sizeof(*out->cps));
    out->n = out->n_cps = 0;
    if (!out->keys || !out->cps)
        tap_bail("out of memory");
    for (size_t i = 0; i < n_keys; i++) {
        const char *k = keys[i];
        if (strncmp(k, prefix, plen) != 0 || (start_after && strcmp(k, start_after) <= 0))
            continue;
        const char *d = dlen ? strstr(k + plen, delim) : NULL;
        if (!d) {
            out->keys[out->n++] = k;
            continue;
        }
        char *cp = strndup(k, (size_t)(d - k) + dlen);
        if (!cp)
            tap_bail("out of memory");
        if (out->n_cps && strcmp(out->cps[out->n_cps - 1], cp) == 0)
            free(cp);
        else
            out->cps[out->n_cps++] = cp;
    }
}

/* Whether got is want[*pos], advancing *pos; names the first difference. */
static bool next_is(const char *what, const char *got, const char *const *want, size_t n_want,
                    size_t *pos, unsigned *bad)
{
    const char *w = *pos < n_want ? want[*pos] : "(end)";
    (*pos)++;
    if (strcmp(got, w) == 0)
        return true;
    if ((*bad)++ == 0)
        diag("%s #%zu: got '%s', want '%s'", what, *pos - 1, got, w);
    return false;
}

/* Lists everything through continuation tokens and compares with the model as it goes:
 * every key (with its size) and common prefix once and in order, a truncated page full
 * (entries + prefixes == max) with a token, the last page without one, and exactly as many
 * pages as that makes. replica < 0: the leader; else that replica with STALE_OK. */
static void check_list_case(const char *prefix, const char *delim, const char *start_after,
                            uint32_t max_keys, int replica)
{
    struct listing want;
    char token[2048] = "", msg[512];
    unsigned pages = 0, bad = 0;
    size_t ki = 0, ci = 0;
    uint32_t eff = max_keys == 0 || max_keys > 1000 ? 1000 : max_keys;
    int rc = 0;
    model(prefix, delim, start_after, &want);
    size_t total = want.n + want.n_cps;
    unsigned want_pages = total ? (unsigned)((total + eff - 1) / eff) : 1;
    for (;;) {
        Lode__ObjectListRequest r = LODE__OBJECT_LIST_REQUEST__INIT;
        r.bucket = (char *)"listing";
        r.prefix = (char *)prefix;
        r.delimiter = (char *)delim;
        r.start_after = (char *)(start_after ? start_after : "");
        r.continuation_token = token;
        r.max_keys = max_keys;
        Lode__ObjectListResponse *l = get_at(replica, CMN_RPC_OBJECT_LIST, &r, &rc, msg);
        if (!l) {
            diag("OBJECT_LIST prefix '%s' delimiter '%s': %s (%s)", prefix, delim,
                 lode_errname(rc), msg);
            break;
        }
        pages++;
        size_t n = l->n_entries + l->n_common_prefixes;
        bool has_token = l->next_continuation_token[0] != '\0';
        if ((n > eff || (l->is_truncated && (n != eff || !has_token)) ||
             (!l->is_truncated && has_token)) && bad++ == 0)
            diag("page %u: %zu entries + %zu prefixes, truncated %d, token '%s' (max %u)", pages,
                 l->n_entries, l->n_common_prefixes, l->is_truncated,
                 l->next_continuation_token, eff);
        for (size_t i = 0; i < l->n_entries; i++) {
            const Lode__ObjectListEntry *e = l->entries[i];
            if (next_is("key", e->key, want.keys, want.n, &ki, &bad) &&
                (e->size != key_size(e->key) || !e->etag[0] || !e->version) && bad++ == 0)
                diag("key '%s': size %" PRIu64 ", etag '%s', version %" PRIu64, e->key, e->size,
                     e->etag, e->version);
        }
        for (size_t i = 0; i < l->n_common_prefixes; i++)
            next_is("prefix", l->common_prefixes[i], (const char *const *)want.cps, want.n_cps,
                    &ci, &bad);
        bool more = l->is_truncated && has_token && pages < 5000;
        snprintf(token, sizeof(token), "%s", l->next_continuation_token);
        msg_free(l);
        if (!more)
            break;
    }
    ok(rc == 0 && bad == 0 && ki == want.n && ci == want.n_cps && pages == want_pages,
       "OBJECT_LIST%s prefix '%s' delimiter '%s'%s%s max %u: %zu keys and %zu common prefixes, "
       "each once and in order, in %u well-formed pages",
       replica >= 0 ? " (follower, STALE_OK)" : "", prefix, delim, start_after ? " after " : "",
       start_after ? start_after : "", max_keys, want.n, want.n_cps, pages);
    listing_free(&want);
}

static void check_object_list(void)
{
    struct tl_commit_result r;
    fill_keys();
    if (tl_bucket_create(mc, "listing", "alice", T_MS, &r) != 0)
        tap_bail("create bucket listing: %s", r.message);
    uint64_t t0 = cmn_mono_ms();
    unsigned fails = 0;
    for (size_t i = 0; i < n_keys; i++)
        if (tl_object_put(mc, "listing", keys[i], key_size(keys[i]), 0, false, T_MS, &r) != 0 &&
            fails++ < 3)
            diag("put '%s': %s", keys[i], r.message);
    is_int(fails, 0, "put %zu keys (%" PRIu64 " ms)", n_keys, cmn_mono_ms() - t0);
    ok(n_keys >= 2000, "the listing has more than 2000 keys");

    check_list_case("", "", NULL, 250, -1);
    check_list_case("", "", NULL, 0, -1);
    check_list_case("", "", NULL, 5000, -1); /* capped at 1000 */
    check_list_case("", "/", NULL, 7, -1);
    check_list_case("dir06/", "/", NULL, 13, -1);
    check_list_case("dir07", "/", NULL, 4, -1);
    check_list_case("dir07/", "/", NULL, 1000, -1);
    check_list_case("dir1", "", NULL, 0, -1);
    check_list_case("dir0", "/sub/", NULL, 50, -1);
    check_list_case("", "", "dir05/file0044", 333, -1);
    check_list_case("", "/", "dir05/file0044", 5, -1);
    check_list_case("a", "/", NULL, 1, -1);
    check_list_case("nothing-here", "/", NULL, 10, -1);
    check_list_case("\xc3\xbc", "/", NULL, 1, -1);

    /* Tokens the server never issued. */
    static const char *const bad_tokens[] = {"zz", "abc", "0", "05" "6869", "01", "0100",
                                             "01zz", "not a token"};
    Lode__ObjectListRequest lr = LODE__OBJECT_LIST_REQUEST__INIT;
    char msg[512];
    unsigned clear = 0;
    int rc;
    lr.bucket = (char *)"listing";
    lr.max_keys = 10;
    for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
        lr.continuation_token = (char *)bad_tokens[i];
        msg_free(get_at(-1, CMN_RPC_OBJECT_LIST, &lr, &rc, msg));
        if (rc == -EINVAL && strstr(msg, "continuation token"))
            clear++;
        else
            diag("token '%s': %s (%s)", bad_tokens[i], lode_errname(rc), msg);
    }
    is_int(clear, sizeof(bad_tokens) / sizeof(bad_tokens[0]),
           "malformed continuation tokens: EINVAL saying 'invalid continuation token'");
    lr.continuation_token = (char *)"";
    lr.bucket = (char *)"no-such-bucket";
    is_int(get_status(CMN_RPC_OBJECT_LIST, &lr), LODE_ENOBUCKET,
           "OBJECT_LIST of a missing bucket: ENOBUCKET");
}

/* ---- Multipart uploads */

struct part_def {
    uint32_t number;
    uint64_t size;
    char etag[40];
    struct cmn_id chunks[3];
};

/* UPLOAD_CREATE in BUCKET_MP (or `bucket`); id NULL lets the leader choose. */
static int upload_create(const char *bucket, const char *key, const char *id, char out_id[128])
{
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__CreateUpload cu = LODE__CREATE_UPLOAD__INIT;
    Lode__UploadRecord up = LODE__UPLOAD_RECORD__INIT;
    Lode__ObjectRecord tmpl = LODE__OBJECT_RECORD__INIT;
    struct tl_commit_result r;
    tmpl.content_type = (char *)"video/mp4";
    up.bucket = (char *)(bucket ? bucket : BUCKET_MP);
    up.key = (char *)key;
    up.owner = (char *)"alice";
    up.upload_id = (char *)(id ? id : "");
    up.template_ = &tmpl;
    cu.upload = &up;
    cmd.op_case = LODE__COMMAND__OP_CREATE_UPLOAD;
    cmd.create_upload = &cu;
    int rc = tl_commit(mc, CMN_RPC_UPLOAD_CREATE, &cmd, T_MS, &r);
    if (out_id)
        snprintf(out_id, 128, "%s", rc == 0 ? r.upload_id : "");
    return rc;
}

static void part_init(struct part_def *p, uint32_t number)
{
    p->number = number;
    p->size = (5u << 20) + number;
    struct cmn_id e = cmn_id_random();
    cmn_id_to_hex(&e, p->etag);
    for (unsigned c = 0; c < 3; c++)
        p->chunks[c] = cmn_id_random();
}

/* PART_PUT with a one-stripe layout (2 + 1) over the part's three chunks. */
static int part_put(const char *upload_id, const struct part_def *p)
{
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__PutPart pp = LODE__PUT_PART__INIT;
    Lode__PartInfo pi = LODE__PART_INFO__INIT;
    Lode__Layout lay = LODE__LAYOUT__INIT;
    Lode__Stripe st = LODE__STRIPE__INIT, *stp = &st;
    Lode__ChunkRef refs[3], *refp[3];
    for (unsigned c = 0; c < 3; c++) {
        lode__chunk_ref__init(&refs[c]);
        refs[c].nid = c + 1;
        refs[c].chunk_id.data = (uint8_t *)p->chunks[c].b;
        refs[c].chunk_id.len = CMN_ID_SIZE;
        refp[c] = &refs[c];
    }
    st.length = p->size;
    st.n_chunks = 3;
    st.chunks = refp;
    lay.k = 2;
    lay.m = 1;
    lay.chunk_size = 4u << 20;
    lay.n_stripes = 1;
    lay.stripes = &stp;
    lay.format = 1;
    pi.number = p->number;
    pi.size = p->size;
    pi.etag = (char *)p->etag;
    pi.layout = &lay;
    pp.upload_id = (char *)upload_id;
    pp.part = &pi;
    cmd.op_case = LODE__COMMAND__OP_PUT_PART;
    cmd.put_part = &pp;
    return tl_commit(mc, CMN_RPC_PART_PUT, &cmd, T_MS, NULL);
}

/* UPLOAD_COMPLETE with the given (number, etag) list. */
static int upload_complete(const char *upload_id, const uint32_t *numbers,
                           const char *const *etags, size_t n, struct tl_commit_result *r)
{
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__CompleteUpload co = LODE__COMPLETE_UPLOAD__INIT;
    Lode__CompletePart cp[8], *cpp[8];
    for (size_t i = 0; i < n && i < 8; i++) {
        lode__complete_part__init(&cp[i]);
        cp[i].number = numbers[i];
        cp[i].etag = (char *)etags[i];
        cpp[i] = &cp[i];
    }
    co.upload_id = (char *)upload_id;
    co.n_parts = n;
    co.parts = cpp;
    co.etag = (char *)"0123456789abcdef0123456789abcdef-3";
    cmd.op_case = LODE__COMMAND__OP_COMPLETE_UPLOAD;
    cmd.complete_upload = &co;
    return tl_commit(mc, CMN_RPC_UPLOAD_COMPLETE, &cmd, T_MS, r);
}

static Lode__PartListResponse *part_list(const char *upload_id, uint32_t marker, uint32_t max,
                                         int *rc)
{
    Lode__PartListRequest r = LODE__PART_LIST_REQUEST__INIT;
    r.upload_id = (char *)upload_id;
    r.part_number_marker = marker;
    r.max_parts = max;
    return get(CMN_RPC_PART_LIST, &r, rc);
}

static Lode__UploadListResponse *upload_list(const char *bucket, const char *prefix,
                                             const char *key_marker, const char *id_marker,
                                             uint32_t max, int *rc)
{
    Lode__UploadListRequest r = LODE__UPLOAD_LIST_REQUEST__INIT;
    r.bucket = (char *)bucket;
    r.prefix = (char *)prefix;
    r.key_marker = (char *)key_marker;
    r.upload_id_marker = (char *)id_marker;
    r.max_uploads = max;
    return get(CMN_RPC_UPLOAD_LIST, &r, rc);
}

static Lode__GcListResponse *gc_list(uint64_t after_seq, uint32_t max)
{
    Lode__GcListRequest r = LODE__GC_LIST_REQUEST__INIT;
    int rc;
    r.after_seq = after_seq;
    r.max = max;
    Lode__GcListResponse *l = get(CMN_RPC_GC_LIST, &r, &rc);
    if (!l)
        diag("GC_LIST: %s", lode_errname(rc));
    return l;
}

static const Lode__GcEntry *gc_find(const Lode__GcListResponse *l, const struct cmn_id *chunk)
{
    for (size_t i = 0; l && i < l->n_entries; i++) {
        const Lode__ChunkRef *c = l->entries[i]->chunk;
        if (c && c->chunk_id.len == CMN_ID_SIZE &&
            memcmp(c->chunk_id.data, chunk->b, CMN_ID_SIZE) == 0)
            return l->entries[i];
    }
    return NULL;
}

/* How many chunks of the part are queued with `reason` (NULL: queued at all). */
static unsigned gc_count(const Lode__GcListResponse *l, const struct part_def *p,
                         const char *reason)
{
    unsigned n = 0;
    for (unsigned c = 0; c < 3; c++) {
        const Lode__GcEntry *e = gc_find(l, &p->chunks[c]);
        n += e && (!reason || strcmp(e->reason, reason) == 0);
    }
    return n;
}

/* PART_LIST in pages of two, following next_part_number_marker: each part once, every
 * truncated page full and pointing at its last part. */
static void check_part_pages(const char *upload_id)
{
    uint32_t marker = 0, seen[8] = {0};
    unsigned pages = 0, bad = 0;
    int rc;
    for (;;) {
        Lode__PartListResponse *pl = part_list(upload_id, marker, 2, &rc);
        if (!pl) {
            bad++;
            break;
        }
        pages++;
        for (size_t i = 0; i < pl->n_parts; i++)
            seen[pl->parts[i]->number < 8 ? pl->parts[i]->number : 0]++;
        bool last = !pl->is_truncated;
        bad += pl->n_parts > 2 ||
               (pl->is_truncated &&
                (pl->n_parts != 2 || pl->next_part_number_marker != pl->parts[1]->number));
        marker = pl->next_part_number_marker;
        msg_free(pl);
        if (last || pages > 10)
            break;
    }
    ok(pages == 3 && bad == 0 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1 && seen[4] == 1 &&
           seen[5] == 1 && seen[6] == 0 && seen[0] == 0,
       "PART_LIST with max 2 and the returned markers: 3 pages, every part once (%u pages)",
       pages);
    Lode__PartListResponse *pl = part_list(upload_id, 5, 0, &rc);
    ok(pl && pl->n_parts == 0 && !pl->is_truncated, "PART_LIST after the last part: empty");
    msg_free(pl);
    msg_free(part_list("no-such-upload", 0, 0, &rc));
    is_int(rc, LODE_ENOUPLOAD, "PART_LIST of an unknown upload: ENOUPLOAD");
}

/* UPLOAD_LIST: (key, upload id) order, whole and one at a time with the markers. */
static void check_upload_list(const char *const *want_keys, const char *const *want_ids)
{
    int rc;
    Lode__UploadListResponse *ul = upload_list(BUCKET_MP, "", "", "", 0, &rc);
    int good = ul && ul->n_uploads == 4 && !ul->is_truncated;
    for (size_t i = 0; good && i < 4; i++)
        good = strcmp(ul->uploads[i]->key, want_keys[i]) == 0 &&
               strcmp(ul->uploads[i]->upload_id, want_ids[i]) == 0;
    ok(good, "UPLOAD_LIST: the four uploads in (key, upload id) order");
    msg_free(ul);

    char km[128] = "", im[128] = "";
    unsigned got = 0, pages;
    good = 1;
    for (pages = 0; pages < 10; pages++) {
        ul = upload_list(BUCKET_MP, "", km, im, 1, &rc);
        if (!ul || ul->n_uploads > 1 || (ul->is_truncated && ul->n_uploads != 1)) {
            good = 0;
            msg_free(ul);
            break;
        }
        if (ul->n_uploads == 1)
            good &= got < 4 && strcmp(ul->uploads[0]->upload_id, want_ids[got++]) == 0;
        bool last = !ul->is_truncated;
        snprintf(km, sizeof(km), "%s", ul->next_key_marker);
        snprintf(im, sizeof(im), "%s", ul->next_upload_id_marker);
        msg_free(ul);
        if (last)
            break;
    }
    ok(good && got == 4, "UPLOAD_LIST one at a time with the next markers: the same four, once "
       "each");
    ul = upload_list(BUCKET_MP, "vid", "", "", 0, &rc);
    ok(ul && ul->n_uploads == 2 && strcmp(ul->uploads[0]->upload_id, want_ids[1]) == 0 &&
           strcmp(ul->uploads[1]->upload_id, want_ids[2]) == 0,
       "UPLOAD_LIST prefix 'vid': the two uploads of video.bin");
    msg_free(ul);
    ul = upload_list(BUCKET_MP, "", "video.bin", "", 0, &rc);
    ok(ul && ul->n_uploads == 1 && strcmp(ul->uploads[0]->key, "zeta.bin") == 0,
       "UPLOAD_LIST after key marker video.bin: only zeta.bin");
    msg_free(ul);
    msg_free(upload_list("no-such-bucket", "", "", "", 0, &rc));
    is_int(rc, LODE_ENOBUCKET, "UPLOAD_LIST of a missing bucket: ENOBUCKET");
}

static void check_multipart(void)
{
    struct tl_commit_result r;
    int rc;
    char u1[128], u2[128], u3[128], u4[128];
    if (tl_bucket_create(mc, BUCKET_MP, "alice", T_MS, &r) != 0)
        tap_bail("create bucket %s: %s", BUCKET_MP, r.message);

    rc = upload_create(NULL, "video.bin", NULL, u1);
    struct cmn_id parsed;
    ok(rc == 0 && cmn_id_from_hex(u1, &parsed) == 0,
       "UPLOAD_CREATE without an id: the leader generated one (%s)", u1);
    rc = upload_create(NULL, "video.bin", NULL, u2) | upload_create(NULL, "audio.bin", NULL, u3) |
         upload_create(NULL, "zeta.bin", "caller-chosen-id", u4);
    ok(rc == 0 && strcmp(u1, u2) != 0 && strcmp(u4, "caller-chosen-id") == 0,
       "three more uploads: a fresh id for the same key, and a caller's id kept as given");
    is_int(upload_create(NULL, "other.bin", "caller-chosen-id", NULL), -EEXIST,
           "an upload id already in use: EEXIST");
    is_int(upload_create("no-such-bucket", "x", NULL, NULL), LODE_ENOBUCKET,
           "UPLOAD_CREATE in a missing bucket: ENOBUCKET");

    Lode__UploadGetRequest ug = LODE__UPLOAD_GET_REQUEST__INIT;
    ug.upload_id = u1;
    Lode__UploadRecord *up = get(CMN_RPC_UPLOAD_GET, &ug, &rc);
    ok(up && strcmp(up->upload_id, u1) == 0 && strcmp(up->bucket, BUCKET_MP) == 0 &&
           strcmp(up->key, "video.bin") == 0 && strcmp(up->owner, "alice") == 0 &&
           up->initiated_ms > 0 && up->template_ &&
           strcmp(up->template_->content_type, "video/mp4") == 0,
       "UPLOAD_GET: bucket, key, owner, start time and the object template");
    msg_free(up);
    ug.upload_id = (char *)"no-such-upload";
    is_int(get_status(CMN_RPC_UPLOAD_GET, &ug), LODE_ENOUPLOAD,
           "UPLOAD_GET of an unknown id: ENOUPLOAD");

    /* Parts 1..5 of u1, 1..2 of u2; then part 3 of u1 again. */
    struct part_def p1[6], p2[3], p3_old, bad;
    int fails = 0;
    for (uint32_t n = 1; n <= 5; n++) {
        part_init(&p1[n], n);
        fails += part_put(u1, &p1[n]) != 0;
    }
    for (uint32_t n = 1; n <= 2; n++) {
        part_init(&p2[n], n);
        fails += part_put(u2, &p2[n]) != 0;
    }
    p3_old = p1[3];
    part_init(&p1[3], 3);
    fails += part_put(u1, &p1[3]) != 0;
    is_int(fails, 0, "PART_PUT: five parts of one upload, two of another, one part replaced");
    part_init(&bad, 0);
    is_int(part_put(u1, &bad), LODE_EBADPART, "part number 0: EBADPART");
    bad.number = 10001;
    is_int(part_put(u1, &bad), LODE_EBADPART, "part number 10001: EBADPART");
    bad.number = 1;
    is_int(part_put("no-such-upload", &bad), LODE_ENOUPLOAD,
           "a part of an unknown upload: ENOUPLOAD");

    Lode__PartListResponse *pl = part_list(u1, 0, 0, &rc);
    int good = pl && pl->n_parts == 5 && !pl->is_truncated && pl->upload &&
               strcmp(pl->upload->upload_id, u1) == 0;
    for (size_t i = 0; good && i < 5; i++)
        good = pl->parts[i]->number == i + 1 && pl->parts[i]->size == p1[i + 1].size &&
               strcmp(pl->parts[i]->etag, p1[i + 1].etag) == 0 && pl->parts[i]->layout &&
               pl->parts[i]->layout->n_stripes == 1 && pl->parts[i]->mtime_ms > 0;
    ok(good, "PART_LIST: parts 1..5 with the replaced part 3's etag, sizes and layouts");
    msg_free(pl);
    check_part_pages(u1);

    const char *vid_lo = strcmp(u1, u2) < 0 ? u1 : u2, *vid_hi = strcmp(u1, u2) < 0 ? u2 : u1;
    const char *want_keys[] = {"audio.bin", "video.bin", "video.bin", "zeta.bin"};
    const char *want_ids[] = {u3, vid_lo, vid_hi, u4};
    check_upload_list(want_keys, want_ids);

    /* Completions that must fail, and change nothing. */
    uint32_t n12[] = {1, 2}, n21[] = {2, 1}, n11[] = {1, 1}, n19[] = {1, 9};
    const char *e11[] = {p1[1].etag, p1[1].etag}, *e12[] = {p1[1].etag, p1[2].etag};
    const char *e21[] = {p1[2].etag, p1[1].etag};
    is_int(upload_complete(u1, n12, e11, 2, &r), LODE_EBADPART,
           "UPLOAD_COMPLETE with a wrong etag: EBADPART (%s)", r.message);
    is_int(upload_complete(u1, n21, e21, 2, &r), LODE_EPARTORDER,
           "UPLOAD_COMPLETE with parts out of order: EPARTORDER (%s)", r.message);
    is_int(upload_complete(u1, n11, e11, 2, &r), LODE_EPARTORDER,
           "UPLOAD_COMPLETE with a part twice: EPARTORDER");
    is_int(upload_complete(u1, n19, e11, 2, &r), LODE_EBADPART,
           "UPLOAD_COMPLETE naming a part never uploaded: EBADPART");
    is_int(upload_complete(u1, n12, e12, 0, &r), LODE_EBADPART,
           "UPLOAD_COMPLETE without parts: EBADPART");
    is_int(upload_complete("no-such-upload", n12, e12, 2, &r), LODE_ENOUPLOAD,
           "UPLOAD_COMPLETE of an unknown upload: ENOUPLOAD");
    pl = part_list(u1, 0, 0, &rc);
    Lode__ObjectGetRequest og = LODE__OBJECT_GET_REQUEST__INIT;
    og.bucket = (char *)BUCKET_MP;
    og.key = (char *)"video.bin";
    ok(pl && pl->n_parts == 5 && get_status(CMN_RPC_OBJECT_GET, &og) == LODE_ENOKEY,
       "after the failed completions the upload keeps its 5 parts and no object exists");
    msg_free(pl);

    is_int(commit_named(CMN_RPC_UPLOAD_ABORT, u2, &r), 0, "UPLOAD_ABORT%s", tl_why(r.message));
    ug.upload_id = u2;
    is_int(get_status(CMN_RPC_UPLOAD_GET, &ug), LODE_ENOUPLOAD,
           "the aborted upload is gone (UPLOAD_GET: ENOUPLOAD)");
    is_int(commit_named(CMN_RPC_UPLOAD_ABORT, u2, &r), LODE_ENOUPLOAD,
           "aborting it again: ENOUPLOAD");
    msg_free(part_list(u2, 0, 0, &rc));
    is_int(rc, LODE_ENOUPLOAD, "its parts are gone too (PART_LIST: ENOUPLOAD)");

    /* Complete with parts 1, 3, 5 (one etag quoted, as clients send them). */
    char quoted[48];
    snprintf(quoted, sizeof(quoted), "\"%s\"", p1[3].etag);
    uint32_t n135[] = {1, 3, 5};
    const char *e135[] = {p1[1].etag, quoted, p1[5].etag};
    rc = upload_complete(u1, n135, e135, 3, &r);
    ok(rc == 0 && r.version > 0, "UPLOAD_COMPLETE with parts 1, 3, 5: version %" PRIu64 "%s",
       r.version, tl_why(r.message));
    Lode__ObjectRecord *o = get(CMN_RPC_OBJECT_GET, &og, &rc);
    ok(o && o->version == r.version && o->n_parts == 3 && o->parts[1]->number == 3 &&
           o->size == p1[1].size + p1[3].size + p1[5].size &&
           strcmp(o->content_type, "video/mp4") == 0 && strcmp(o->owner, "alice") == 0 &&
           strcmp(o->etag, "0123456789abcdef0123456789abcdef-3") == 0,
       "the object has the three parts, their total size, the template's content type, the "
       "owner and the multipart etag");
    msg_free(o);
    Lode__UploadListResponse *ul = upload_list(BUCKET_MP, "", "", "", 0, &rc);
    ok(ul && ul->n_uploads == 2 && strcmp(ul->uploads[0]->upload_id, u3) == 0 &&
           strcmp(ul->uploads[1]->upload_id, u4) == 0,
       "UPLOAD_LIST now holds only the two untouched uploads");
    msg_free(ul);

    Lode__GcListResponse *gl = gc_list(0, 0);
    ok(gl && gc_count(gl, &p3_old, "overwrite") == 3,
       "GC_LIST: the replaced part's chunks, reason 'overwrite'");
    ok(gl && gc_count(gl, &p2[1], "abort") == 3 && gc_count(gl, &p2[2], "abort") == 3,
       "GC_LIST: every chunk of the aborted upload's parts, reason 'abort'");
    ok(gl && gc_count(gl, &p1[2], "unlisted-part") == 3 &&
           gc_count(gl, &p1[4], "unlisted-part") == 3,
       "GC_LIST: the parts left out of the completion, reason 'unlisted-part'");
    ok(gl && gc_count(gl, &p1[1], NULL) == 0 && gc_count(gl, &p1[3], NULL) == 0 &&
           gc_count(gl, &p1[5], NULL) == 0,
       "the chunks of the completed object's parts are not queued");
    int ascending = gl && gl->n_entries == 15;
    for (size_t i = 1; ascending && i < gl->n_entries; i++)
        ascending = gl->entries[i]->seq > gl->entries[i - 1]->seq &&
                    gl->entries[i]->enqueued_ms > 0;
    ok(ascending, "the queue holds those 15 entries in ascending seq order (%zu)",
       gl ? gl->n_entries : 0);
    msg_free(gl);
}

/* ---- The GC queue */

static int gc_enqueue(const struct cmn_id *ids, size_t n, size_t id_len, const char *reason)
{
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__GcEnqueue g = LODE__GC_ENQUEUE__INIT;
    Lode__ChunkRef refs[8], *refp[8];
    for (size_t i = 0; i < n && i < 8; i++) {
        lode__chunk_ref__init(&refs[i]);
        refs[i].nid = 7;
        refs[i].chunk_id.data = (uint8_t *)ids[i].b;
        refs[i].chunk_id.len = id_len;
        refp[i] = &refs[i];
    }
    g.n_chunks = n;
    g.chunks = refp;
    g.reason = (char *)reason;
    cmd.op_case = LODE__COMMAND__OP_GC_ENQUEUE;
    cmd.gc_enqueue = &g;
    return tl_commit(mc, CMN_RPC_GC_ENQUEUE, &cmd, T_MS, NULL);
}

static int gc_ack(const uint64_t *seqs, size_t n)
{
    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__GcAck a = LODE__GC_ACK__INIT;
    a.n_seqs = n;
    a.seqs = (uint64_t *)seqs;
    cmd.op_case = LODE__COMMAND__OP_GC_ACK;
    cmd.gc_ack = &a;
    return tl_commit(mc, CMN_RPC_GC_ACK, &cmd, T_MS, NULL);
}

static void check_gc(void)
{
    struct cmn_id ids[6];
    for (unsigned i = 0; i < 6; i++)
        ids[i] = cmn_id_random();
    Lode__GcListResponse *before = gc_list(0, 0);
    size_t n_before = before ? before->n_entries : 0;
    uint64_t last_before = n_before ? before->entries[n_before - 1]->seq : 0;
    msg_free(before);

    is_int(gc_enqueue(ids, 5, CMN_ID_SIZE, "test"), 0, "GC_ENQUEUE of five chunks");
    is_int(gc_enqueue(&ids[5], 1, CMN_ID_SIZE, ""), 0, "GC_ENQUEUE of one more, no reason");
    is_int(gc_enqueue(ids, 1, 5, "test"), LODE_EBADMSG,
           "GC_ENQUEUE of a 5-byte chunk id: EBADMSG");
    Lode__GcListResponse *all = gc_list(0, 0);
    uint64_t seq[6] = {0};
    int good = all && all->n_entries == n_before + 6;
    for (unsigned i = 0; good && i < 6; i++) {
        const Lode__GcEntry *e = gc_find(all, &ids[i]);
        good = e && e->seq > last_before && (i == 0 || e->seq > seq[i - 1]) &&
               e->chunk->nid == 7 && strcmp(e->reason, i < 5 ? "test" : "requested") == 0;
        seq[i] = e ? e->seq : 0;
    }
    ok(good, "GC_LIST: the six new entries after the older ones, in order, with their reason "
       "('requested' when none was given)");

    /* Pages of (after_seq, max = 4) walk the same queue. */
    uint64_t after = 0;
    size_t walked = 0;
    unsigned pages = 0, mismatch = 0;
    while (all && pages < 100) {
        Lode__GcListResponse *p = gc_list(after, 4);
        if (!p) {
            mismatch++;
            break;
        }
        pages++;
        size_t n = p->n_entries;
        for (size_t i = 0; i < n; i++, walked++)
            mismatch += walked >= all->n_entries || p->entries[i]->seq != all->entries[walked]->seq;
        if (n)
            after = p->entries[n - 1]->seq;
        mismatch += n > 4;
        msg_free(p);
        if (n < 4)
            break;
    }
    ok(all && mismatch == 0 && walked == all->n_entries,
       "GC_LIST(after_seq, max 4) page by page: the same %zu entries (%u pages)", walked, pages);
    Lode__GcListResponse *tail = gc_list(seq[1], 2);
    ok(tail && tail->n_entries == 2 && tail->entries[0]->seq == seq[2] &&
           tail->entries[1]->seq == seq[3],
       "GC_LIST after seq %" PRIu64 " max 2: exactly the next two", seq[1]);
    msg_free(tail);

    uint64_t acks[] = {seq[0], seq[2], seq[4], 999999999};
    is_int(gc_ack(acks, 4), 0, "GC_ACK of three entries and a seq that does not exist");
    Lode__GcListResponse *left = gc_list(0, 0);
    ok(left && left->n_entries == n_before + 3 && !gc_find(left, &ids[0]) &&
           gc_find(left, &ids[1]) && !gc_find(left, &ids[2]) && gc_find(left, &ids[3]) &&
           !gc_find(left, &ids[4]) && gc_find(left, &ids[5]),
       "acknowledged entries disappear, the others stay");
    msg_free(left);
    is_int(gc_ack(acks, 1), 0, "acknowledging again is harmless");
    msg_free(all);
}

/* ---- Users and keys */

/* USER_CREATE through `cmd` (fresh, or carrying a caller's client id and seq); ak/sk get
 * the key and secret of the reply (128 bytes each). */
static int user_create(const char *name, const char *ak_in, const char *sk_in, Lode__Command *cmd,
                       char *ak, char *sk)
{
    Lode__CreateUser cu = LODE__CREATE_USER__INIT;
    int rc;
    cu.name = (char *)name;
    cu.access_key = (char *)(ak_in ? ak_in : "");
    cu.secret_key = (char *)(sk_in ? sk_in : "");
    cmd->version = 1;
    cmd->op_case = LODE__COMMAND__OP_CREATE_USER;
    cmd->create_user = &cu;
    Lode__UserCreateResponse *u = get(CMN_RPC_USER_CREATE, cmd, &rc);
    cmd->create_user = NULL;
    snprintf(ak, 128, "%s", u ? u->access_key : "");
    snprintf(sk, 128, "%s", u ? u->secret_key : "");
    msg_free(u);
    return rc;
}

static int access_key_get(const char *ak, char *user, char *secret)
{
    Lode__AccessKeyRequest r = LODE__ACCESS_KEY_REQUEST__INIT;
    int rc;
    r.access_key = (char *)ak;
    Lode__AccessKeyRecord *k = get(CMN_RPC_ACCESS_KEY_GET, &r, &rc);
    snprintf(user, 128, "%s", k ? k->user : "");
    snprintf(secret, 128, "%s", k ? k->secret_key : "");
    msg_free(k);
    return rc;
}

/* USER_LIST's raw reply: whether `user` is listed (with access key ak) and whether any of
 * the secrets appears anywhere in its bytes. */
static int user_list_scan(const char *user, const char *ak, const char *const *secrets,
                          size_t n_secrets, bool *listed, bool *leaked)
{
    struct cmn_rpc_result res;
    Lode__Empty e = LODE__EMPTY__INIT;
    cmn_rpc_result_init(&res);
    int rc = cmn_meta_client_call(mc, CMN_RPC_USER_LIST, &e.base, T_MS, &res);
    *listed = *leaked = false;
    for (size_t i = 0; rc == 0 && i < n_secrets; i++)
        *leaked |= memmem(res.body.data, res.body.len, secrets[i], strlen(secrets[i])) != NULL;
    Lode__UserListResponse *l =
        rc == 0 ? lode__user_list_response__unpack(NULL, res.body.len, res.body.data) : NULL;
    for (size_t i = 0; l && i < l->n_users; i++)
        *listed |= strcmp(l->users[i]->name, user) == 0 && l->users[i]->n_access_keys == 1 &&
                   strcmp(l->users[i]->access_keys[0], ak) == 0;
    msg_free(l);
    cmn_rpc_result_free(&res);
    return rc;
}

/* Whether any replica's log holds the string. */
static bool in_logs(const char *s)
{
    bool found = false;
    for (unsigned i = 0; i < cl->n && !found; i++) {
        FILE *f = fopen(cl->r[i].log_path, "rb");
        long len = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
        char *buf = len > 0 ? malloc((size_t)len) : NULL;
        if (buf && fseek(f, 0, SEEK_SET) == 0 && fread(buf, 1, (size_t)len, f) == (size_t)len)
            found = memmem(buf, (size_t)len, s, strlen(s)) != NULL;
        free(buf);
        if (f)
            fclose(f);
    }
    return found;
}

static void check_users(void)
{
    char ak[128], sk[128], ak2[128], sk2[128], user[128], secret[128];
    Lode__Command cmd = LODE__COMMAND__INIT, cmd2 = LODE__COMMAND__INIT;
    int rc = user_create("dave", NULL, NULL, &cmd, ak, sk);
    ok(rc == 0 && ak[0] && strlen(sk) >= 20,
       "USER_CREATE dave: the leader generated an access key (%s) and a secret", ak);
    rc = user_create("erin", "LKERINCHOSENKEY00001", "erin-chosen-secret-0123456789/+ab", &cmd2,
                     ak2, sk2);
    ok(rc == 0 && strcmp(ak2, "LKERINCHOSENKEY00001") == 0 &&
           strcmp(sk2, "erin-chosen-secret-0123456789/+ab") == 0,
       "USER_CREATE erin with her own key and secret keeps them");

    rc = access_key_get(ak, user, secret);
    ok(rc == 0 && strcmp(user, "dave") == 0 && strcmp(secret, sk) == 0,
       "ACCESS_KEY_GET returns dave's key with the same secret");
    rc = access_key_get(ak2, user, secret);
    ok(rc == 0 && strcmp(user, "erin") == 0 && strcmp(secret, sk2) == 0,
       "ACCESS_KEY_GET returns erin's chosen secret");

    const char *secrets[] = {sk, sk2};
    bool listed = false, leaked = true;
    rc = user_list_scan("dave", ak, secrets, 2, &listed, &leaked);
    ok(rc == 0 && listed, "USER_LIST shows dave with his access key");
    ok(rc == 0 && !leaked, "USER_LIST's reply bytes hold no secret key");
    ok(!in_logs(sk) && !in_logs(sk2), "no replica's log holds a secret key");

    is_int(commit_named(CMN_RPC_USER_DELETE, "dave", NULL), 0, "USER_DELETE dave");
    is_int(access_key_get(ak, user, secret), LODE_ENOACCESSKEY,
           "ACCESS_KEY_GET of the deleted user's key: ENOACCESSKEY");
    rc = user_list_scan("dave", ak, secrets, 2, &listed, &leaked);
    ok(rc == 0 && !listed, "USER_LIST no longer shows dave");
    is_int(commit_named(CMN_RPC_USER_DELETE, "dave", NULL), LODE_ENOUSER,
           "deleting dave again: ENOUSER");
    is_int(access_key_get("LKNOSUCHKEY", user, secret), LODE_ENOACCESSKEY,
           "ACCESS_KEY_GET of an unknown key: ENOACCESSKEY");
}

/* ---- Retries: the same (client_id, seq) twice */

/* Sends a command as is (its client id already set, so the client stamps nothing). */
static int send_raw(unsigned method, Lode__Command *cmd, uint64_t *version, char *msg)
{
    int rc;
    Lode__CommandResult *cr = get_at(-1, method, cmd, &rc, msg);
    if (cr)
        rc = cr->status;
    *version = cr ? cr->version : 0;
    msg_free(cr);
    return rc;
}

static void check_retries(void)
{
    struct tl_commit_result r;
    struct cmn_id cid = cmn_id_random();
    char msg[512];
    uint64_t v1, v2;
    if (tl_bucket_create(mc, "retry", "", T_MS, &r) != 0)
        tap_bail("create bucket retry: %s", r.message);

    Lode__Command cmd = LODE__COMMAND__INIT;
    Lode__PutObject po = LODE__PUT_OBJECT__INIT;
    Lode__ObjectRecord rec = LODE__OBJECT_RECORD__INIT;
    rec.size = 42;
    rec.etag = (char *)"00112233445566778899aabbccddeeff";
    po.bucket = (char *)"retry";
    po.key = (char *)"once";
    po.record = &rec;
    cmd.version = 1;
    cmd.client_id.data = cid.b;
    cmd.client_id.len = CMN_ID_SIZE;
    cmd.seq = 1;
    cmd.op_case = LODE__COMMAND__OP_PUT_OBJECT;
    cmd.put_object = &po;
    int a = send_raw(CMN_RPC_OBJECT_PUT, &cmd, &v1, msg);
    int b = send_raw(CMN_RPC_OBJECT_PUT, &cmd, &v2, msg);
    ok(a == 0 && b == 0 && v1 > 0 && v1 == v2,
       "OBJECT_PUT sent twice with the same (client_id, seq): success with version %" PRIu64
       " both times (%" PRIu64 ")", v1, v2);
    Lode__ObjectGetRequest g = LODE__OBJECT_GET_REQUEST__INIT;
    g.bucket = (char *)"retry";
    g.key = (char *)"once";
    Lode__ObjectRecord *o = get(CMN_RPC_OBJECT_GET, &g, &a);
    ok(o && o->version == v1, "the object holds that version: the put applied once");
    msg_free(o);
    is_int(tl_object_put(mc, "retry", "next", 1, 0, false, T_MS, &r), 0, "a fresh put");
    is_int(r.version, v1 + 1, "... gets the next version: the retry consumed none");

    /* A create that would fail if applied twice. */
    Lode__Command cb = LODE__COMMAND__INIT;
    Lode__CreateBucket cbk = LODE__CREATE_BUCKET__INIT;
    Lode__BucketRecord br = LODE__BUCKET_RECORD__INIT;
    br.name = (char *)"retried-bucket";
    cbk.bucket = &br;
    cb.version = 1;
    cb.client_id = cmd.client_id;
    cb.seq = 2;
    cb.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    cb.create_bucket = &cbk;
    a = send_raw(CMN_RPC_BUCKET_CREATE, &cb, &v1, msg);
    b = send_raw(CMN_RPC_BUCKET_CREATE, &cb, &v2, msg);
    ok(a == 0 && b == 0,
       "BUCKET_CREATE retried with the same seq: success twice, not EBUCKETEXISTS (%s, %s)",
       lode_errname(a), lode_errname(b));
    a = send_raw(CMN_RPC_OBJECT_PUT, &cmd, &v1, msg);
    is_int(a, LODE_EPRECONDITION, "a retry of an older seq: EPRECONDITION (%s)", msg);

    /* USER_CREATE retried: the first attempt's key and secret, not fresh ones. */
    Lode__Command uc = LODE__COMMAND__INIT;
    uc.client_id = cmd.client_id;
    uc.seq = 3;
    char ak1[128], sk1[128], ak2[128], sk2[128];
    a = user_create("frank", NULL, NULL, &uc, ak1, sk1);
    b = user_create("frank", NULL, NULL, &uc, ak2, sk2);
    ok(a == 0 && b == 0 && ak1[0] && strcmp(ak1, ak2) == 0 && strcmp(sk1, sk2) == 0,
       "USER_CREATE retried with the same seq: the same access key and secret both times");
}

/* ---- Stale reads on a follower */

static void check_stale_reads(void)
{
    unsigned leader = 0;
    if (tl_cluster_wait_leader(cl, 10000, &leader) != 0) {
        ok(0, "a leader");
        return;
    }
    is_int(tl_cluster_wait_converged(cl, 15000), 0, "the three replicas converge");
    unsigned f = (leader + 1) % cl->n;
    struct cmn_rpc_result lres, fres;
    Lode__ObjectGetRequest g = LODE__OBJECT_GET_REQUEST__INIT;
    g.bucket = (char *)BUCKET_MP;
    g.key = (char *)"video.bin";
    cmn_rpc_result_init(&lres);
    cmn_rpc_result_init(&fres);
    int rc = tl_call_at(cl, leader, CMN_RPC_OBJECT_GET, 0, &g.base, T_MS, &lres);
    int frc = tl_call_at(cl, f, CMN_RPC_OBJECT_GET, CMN_RPC_FLAG_STALE_OK, &g.base, T_MS, &fres);
    Lode__ObjectRecord *fo =
        frc == 0 ? lode__object_record__unpack(NULL, fres.body.len, fres.body.data) : NULL;
    ok(rc == 0 && fo && fo->n_parts == 3 && lres.body.len == fres.body.len &&
           memcmp(lres.body.data, fres.body.data, lres.body.len) == 0,
       "a follower answers OBJECT_GET with STALE_OK from its own state: the leader's record");
    msg_free(fo);
    cmn_rpc_result_free(&fres);
    cmn_rpc_result_init(&fres);
    frc = tl_call_at(cl, f, CMN_RPC_OBJECT_GET, 0, &g.base, T_MS, &fres);
    is_int(frc, LODE_ENOTLEADER, "without STALE_OK the follower redirects: ENOTLEADER");
    g.key = (char *)"missing";
    cmn_rpc_result_free(&fres);
    cmn_rpc_result_init(&fres);
    frc = tl_call_at(cl, f, CMN_RPC_OBJECT_GET, CMN_RPC_FLAG_STALE_OK, &g.base, T_MS, &fres);
    is_int(frc, LODE_ENOKEY, "a stale read of a missing key: ENOKEY");
    cmn_rpc_result_free(&fres);
    cmn_rpc_result_free(&lres);
    check_list_case("", "/", NULL, 100, (int)f);
}

int main(void)
{
    struct tl_cluster_options o = TL_CLUSTER_OPTIONS_DEFAULT;
    struct cmn_err err;
    unsigned leader;
    cmn_err_clear(&err);
    o.name = "test_meta_api";
    if (tl_cluster_start(&o, &cl, &err) != 0)
        tap_bail("start cluster: %s", err.msg);
    mc = tl_cluster_client(cl);
    if (!mc || tl_cluster_wait_leader(cl, 15000, &leader) != 0)
        tap_bail("no leader elected");

    uint64_t t0 = cmn_mono_ms();
    check_buckets();
    check_object_list();
    check_multipart();
    check_gc();
    check_users();
    check_retries();
    check_stale_reads();
    diag("API checks took %" PRIu64 " ms", cmn_mono_ms() - t0);

    for (unsigned i = 0; i < cl->n; i++)
        ok(tl_cluster_alive(cl, i), "replica %u is still running", cl->r[i].id);
    is_int(tl_cluster_crash_count(cl), 0, "no replica logged a crash");

    int rc = tap_done();
    tl_cluster_destroy(cl, rc != 0);
    for (size_t i = 0; i < n_keys; i++)
        free(keys[i]);
    return rc;
}
