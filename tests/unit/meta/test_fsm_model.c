/* Randomized model test: thousands of mixed commands applied both to the state machine and
 * to a plain in-memory model (sorted arrays), comparing every result code and version,
 * GC volume, point reads and full paginated listings. Midway the state is moved to a second
 * state machine through snapshot/restore and the run continues there.
 *
 * The seed is printed; LODE_TEST_SEED=<n> replays a run. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "meta/fsm.h"
#include "tests/tap.h"

#define OPS 6000
#define NBUCKETS 4
#define NUSERS 5
#define MAX_PART 6
#define LONG_KEY 500 /* above the LMDB inline-key limit: exercises bundles */

static struct meta_fsm *fsm;
static char root[PATH_MAX];
static uint64_t rng_state;
static int64_t now_ms = 1700000000000;
static int mismatches;

static uint64_t rnd64(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static unsigned rnd(unsigned n)
{
    return (unsigned)(rnd64() % n);
}

#define MISMATCH(...)                                                                    \
    do {                                                                                 \
        if (++mismatches <= 10)                                                          \
            diag(__VA_ARGS__);                                                           \
    } while (0)

/* ---- the model */

struct mobj {
    char *key;
    uint64_t version, size;
    unsigned chunks;
};

struct mbucket {
    char name[8];
    bool exists;
    struct mobj *objs;   /* sorted by key (strcmp: byte order) */
    size_t n, cap;
};

struct mpart {
    bool present;
    char etag[24];
    uint64_t size;
    unsigned chunks;
};

struct mupload {
    char id[16];
    int bucket;
    char *key;
    bool live;
    struct mpart parts[MAX_PART + 1];
};

struct muser {
    bool exists;
    char ak[24];
};

static struct mbucket buckets[NBUCKETS];
static struct mupload *uploads;
static size_t n_uploads, cap_uploads;
static struct muser users[NUSERS];
static uint64_t next_version = 1;
static uint64_t gc_expected;
static unsigned etag_rev, ak_counter;

static long obj_find(struct mbucket *b, const char *key, bool *found)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(b->objs[mid].key, key);
        if (c == 0) {
            *found = true;
            return (long)mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return (long)lo;
}

static struct mobj *obj_get(struct mbucket *b, const char *key)
{
    bool found;
    long i = obj_find(b, key, &found);
    return found ? &b->objs[i] : NULL;
}

static void obj_set(struct mbucket *b, const char *key, uint64_t version, uint64_t size,
                    unsigned chunks)
{
    bool found;
    long i = obj_find(b, key, &found);
    if (!found) {
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 64;
            b->objs = realloc(b->objs, b->cap * sizeof(*b->objs));
        }
        memmove(&b->objs[i + 1], &b->objs[i], (b->n - (size_t)i) * sizeof(*b->objs));
        b->objs[i].key = strdup(key);
        b->n++;
    }
    b->objs[i].version = version;
    b->objs[i].size = size;
    b->objs[i].chunks = chunks;
}

static void obj_del(struct mbucket *b, const char *key)
{
    bool found;
    long i = obj_find(b, key, &found);
    if (!found)
        return;
    free(b->objs[i].key);
    memmove(&b->objs[i], &b->objs[i + 1], (b->n - (size_t)i - 1) * sizeof(*b->objs));
    b->n--;
}

/* ---- command plumbing */

static Lode__Layout *layout(unsigned chunks, Lode__Layout *l, Lode__Stripe *s,
                            Lode__Stripe **sp, Lode__ChunkRef *c, Lode__ChunkRef **cp,
                            uint8_t (*ids)[16])
{
    lode__layout__init(l);
    lode__stripe__init(s);
    l->n_stripes = 1;
    sp[0] = s;
    l->stripes = sp;
    s->n_chunks = chunks;
    s->chunks = cp;
    for (unsigned i = 0; i < chunks; i++) {
        lode__chunk_ref__init(&c[i]);
        uint64_t id = rnd64();
        memcpy(ids[i], &id, 8);
        memset(ids[i] + 8, 0, 8);
        c[i].nid = i + 1;
        c[i].chunk_id.data = ids[i];
        c[i].chunk_id.len = 16;
        cp[i] = &c[i];
    }
    return l;
}

#define LAYOUT_VARS(n)                                                                   \
    Lode__Layout lay_;                                                                    \
    Lode__Stripe st_, *stp_[1];                                                           \
    Lode__ChunkRef ch_[n], *chp_[n];                                                      \
    uint8_t ids_[n][16]
#define LAYOUT(chunks) layout(chunks, &lay_, &st_, stp_, ch_, chp_, ids_)

static struct meta_fsm_result apply(Lode__Command *c)
{
    struct meta_fsm_result r;
    c->version = 1;
    c->now_ms = ++now_ms;
    size_t n = meta_cmd_entry_size(c);
    uint8_t *buf = malloc(n);
    meta_cmd_entry_pack(c, buf);
    if (meta_fsm_apply_entry(fsm, buf, n, &r))
        tap_bail("apply failed: %s", r.message);
    free(buf);
    return r;
}

static void expect(const char *what, const struct meta_fsm_result *r, int want,
                   uint64_t want_version)
{
    if (r->status != want)
        MISMATCH("%s: status %d (%s), model says %d", what, r->status, r->message, want);
    else if (want == 0 && want_version && r->version != want_version)
        MISMATCH("%s: version %" PRIu64 ", model says %" PRIu64, what, r->version, want_version);
}

/* Keys: a small alphabet with '/' so delimiters matter, sometimes long (bundled) keys. */
static void rand_key(char *out)
{
    static const char alpha[] = "ab/c";
    size_t n = 0;
    if (rnd(25) == 0) {
        memset(out, 'a', LONG_KEY);
        n = LONG_KEY;
    }
    size_t len = 1 + rnd(5);
    for (size_t i = 0; i < len; i++)
        out[n++] = alpha[rnd(4)];
    out[n] = 0;
}

/* ---- operations: each applies one command and checks it against the model */

static void op_put(void)
{
    char key[LONG_KEY + 16];
    int bi = (int)rnd(NBUCKETS);
    struct mbucket *b = &buckets[bi];
    rand_key(key);
    if (rnd(200) == 0)
        key[0] = 0; /* invalid */
    struct mobj *cur = b->exists ? obj_get(b, key) : NULL;
    unsigned kind = rnd(4), chunks = 1 + rnd(3);
    uint64_t if_version = 0;
    bool if_absent = kind == 1;
    if (kind == 2)
        if_version = cur && rnd(3) ? cur->version : 1 + rnd((unsigned)next_version + 2);

    LAYOUT_VARS(3);
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__PutObject p = LODE__PUT_OBJECT__INIT;
    Lode__ObjectRecord o = LODE__OBJECT_RECORD__INIT;
    o.size = rnd(1 << 20);
    o.etag = "etag";
    o.layout = LAYOUT(chunks);
    p.bucket = b->name;
    p.key = key;
    p.record = &o;
    p.if_absent = if_absent;
    p.if_version = if_version;
    c.op_case = LODE__COMMAND__OP_PUT_OBJECT;
    c.put_object = &p;
    struct meta_fsm_result r = apply(&c);

    int want = 0;
    if (!b->exists)
        want = LODE_ENOBUCKET;
    else if (!key[0])
        want = LODE_EINVALNAME;
    else if (if_absent && cur)
        want = LODE_EPRECONDITION;
    else if (if_version && (!cur || cur->version != if_version))
        want = LODE_EPRECONDITION;
    uint64_t v = want ? 0 : next_version;
    expect("put", &r, want, v);
    if (want)
        return;
    next_version++;
    if (cur)
        gc_expected += cur->chunks;
    obj_set(b, key, v, o.size, chunks);
}

static void op_delete(void)
{
    char key[LONG_KEY + 16];
    struct mbucket *b = &buckets[rnd(NBUCKETS)];
    if (b->exists && b->n && rnd(4))
        strcpy(key, b->objs[rnd((unsigned)b->n)].key); /* mostly existing keys */
    else
        rand_key(key);
    struct mobj *cur = b->exists ? obj_get(b, key) : NULL;
    uint64_t if_version = 0;
    if (rnd(3) == 0)
        if_version = cur && rnd(2) ? cur->version : 1 + rnd((unsigned)next_version + 2);

    Lode__Command c = LODE__COMMAND__INIT;
    Lode__DeleteObject d = LODE__DELETE_OBJECT__INIT;
    d.bucket = b->name;
    d.key = key;
    d.if_version = if_version;
    c.op_case = LODE__COMMAND__OP_DELETE_OBJECT;
    c.delete_object = &d;
    struct meta_fsm_result r = apply(&c);

    int want = !b->exists ? LODE_ENOBUCKET
               : !cur     ? LODE_ENOKEY
               : if_version && cur->version != if_version ? LODE_EPRECONDITION
                                                          : 0;
    expect("delete", &r, want, 0);
    if (want)
        return;
    gc_expected += cur->chunks;
    obj_del(b, key);
}

static void op_bucket(void)
{
    int bi = (int)rnd(NBUCKETS);
    struct mbucket *b = &buckets[bi];
    Lode__Command c = LODE__COMMAND__INIT;
    if (rnd(3)) {
        Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
        Lode__BucketRecord br = LODE__BUCKET_RECORD__INIT;
        bool invalid = rnd(20) == 0;
        br.name = invalid ? "Bad_Name" : b->name;
        cb.bucket = &br;
        c.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
        c.create_bucket = &cb;
        struct meta_fsm_result r = apply(&c);
        int want = invalid ? LODE_EINVALNAME : b->exists ? LODE_EBUCKETEXISTS : 0;
        expect("create bucket", &r, want, 0);
        if (!want)
            b->exists = true;
        return;
    }
    /* Deleting a bucket needs it empty: now and then empty it first, through the fsm. */
    if (b->exists && rnd(5) == 0) {
        while (b->n) {
            Lode__Command dc = LODE__COMMAND__INIT;
            Lode__DeleteObject d = LODE__DELETE_OBJECT__INIT;
            d.bucket = b->name;
            d.key = b->objs[0].key;
            dc.op_case = LODE__COMMAND__OP_DELETE_OBJECT;
            dc.delete_object = &d;
            struct meta_fsm_result r = apply(&dc);
            expect("empty bucket", &r, 0, 0);
            gc_expected += b->objs[0].chunks;
            obj_del(b, b->objs[0].key);
        }
    }
    Lode__DeleteBucket db = LODE__DELETE_BUCKET__INIT;
    db.name = b->name;
    c.op_case = LODE__COMMAND__OP_DELETE_BUCKET;
    c.delete_bucket = &db;
    struct meta_fsm_result r = apply(&c);
    int want = !b->exists ? LODE_ENOBUCKET : b->n ? LODE_EBUCKETNOTEMPTY : 0;
    expect("delete bucket", &r, want, 0);
    if (want)
        return;
    b->exists = false;
    for (size_t i = 0; i < n_uploads; i++) {
        struct mupload *u = &uploads[i];
        if (!u->live || u->bucket != bi)
            continue;
        for (int n = 1; n <= MAX_PART; n++)
            if (u->parts[n].present)
                gc_expected += u->parts[n].chunks;
        u->live = false;
    }
}

static struct mupload *pick_upload(void)
{
    if (!n_uploads || rnd(10) == 0)
        return NULL;
    /* Prefer live uploads, but sometimes pick a finished one. */
    for (int tries = 0; tries < 4; tries++) {
        struct mupload *u = &uploads[rnd((unsigned)n_uploads)];
        if (u->live || tries == 3)
            return u;
    }
    return NULL;
}

static void op_create_upload(void)
{
    char key[LONG_KEY + 16], id[16];
    int bi = (int)rnd(NBUCKETS);
    const struct mupload *taken = NULL;
    rand_key(key);
    /* Sometimes reuse the id of a live upload: the state machine must refuse it. */
    if (n_uploads && rnd(20) == 0) {
        const struct mupload *u = &uploads[rnd((unsigned)n_uploads)];
        if (u->live)
            taken = u;
    }
    snprintf(id, sizeof(id), "%s", taken ? taken->id : "");
    if (!taken)
        snprintf(id, sizeof(id), "up%zu", n_uploads);

    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CreateUpload cu = LODE__CREATE_UPLOAD__INIT;
    Lode__UploadRecord ur = LODE__UPLOAD_RECORD__INIT;
    ur.bucket = buckets[bi].name;
    ur.key = key;
    ur.upload_id = id;
    cu.upload = &ur;
    c.op_case = LODE__COMMAND__OP_CREATE_UPLOAD;
    c.create_upload = &cu;
    struct meta_fsm_result r = apply(&c);

    int want = !buckets[bi].exists ? LODE_ENOBUCKET : taken ? -EEXIST : 0;
    expect("create upload", &r, want, 0);
    if (want)
        return;
    if (strcmp(r.upload_id, id) != 0)
        MISMATCH("create upload: id '%s', want '%s'", r.upload_id, id);
    if (n_uploads == cap_uploads) {
        cap_uploads = cap_uploads ? cap_uploads * 2 : 64;
        uploads = realloc(uploads, cap_uploads * sizeof(*uploads));
    }
    struct mupload *u = &uploads[n_uploads++];
    memset(u, 0, sizeof(*u));
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->bucket = bi;
    u->key = strdup(key);
    u->live = true;
}

static void op_put_part(void)
{
    struct mupload *u = pick_upload();
    uint32_t number = rnd(30) == 0 ? (rnd(2) ? 0 : 10001) : 1 + rnd(MAX_PART);
    unsigned chunks = 1 + rnd(3);
    char etag[24];
    snprintf(etag, sizeof(etag), "pe%u", ++etag_rev);

    LAYOUT_VARS(3);
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__PutPart pp = LODE__PUT_PART__INIT;
    Lode__PartInfo p = LODE__PART_INFO__INIT;
    p.number = number;
    p.size = 1 + rnd(1000);
    p.etag = etag;
    p.layout = LAYOUT(chunks);
    pp.upload_id = u ? u->id : "no-such-upload";
    pp.part = &p;
    c.op_case = LODE__COMMAND__OP_PUT_PART;
    c.put_part = &pp;
    struct meta_fsm_result r = apply(&c);

    int want = !u || !u->live ? LODE_ENOUPLOAD : number < 1 || number > 10000 ? LODE_EBADPART : 0;
    expect("put part", &r, want, 0);
    if (want)
        return;
    struct mpart *mp = &u->parts[number];
    if (mp->present)
        gc_expected += mp->chunks;
    mp->present = true;
    snprintf(mp->etag, sizeof(mp->etag), "%s", etag);
    mp->size = p.size;
    mp->chunks = chunks;
}

static void op_complete(void)
{
    struct mupload *u = pick_upload();
    uint32_t numbers[MAX_PART + 2];
    char etags[MAX_PART + 2][24];
    size_t n = 0;
    for (uint32_t i = 1; i <= MAX_PART + 1 && n < MAX_PART + 2; i++) {
        bool present = u && i <= MAX_PART && u->parts[i].present;
        if ((present && rnd(4)) || rnd(25) == 0) {
            numbers[n] = i;
            snprintf(etags[n], sizeof(etags[n]), "%s",
                     present ? u->parts[i].etag : "missing");
            if (present && rnd(2))
                snprintf(etags[n], sizeof(etags[n]), "\"%s\"", u->parts[i].etag);
            n++;
        }
    }
    if (n && rnd(25) == 0)
        snprintf(etags[rnd((unsigned)n)], 24, "wrong");
    if (n >= 2 && rnd(20) == 0) {
        uint32_t t = numbers[0];
        numbers[0] = numbers[1];
        numbers[1] = t;
    }
    bool if_absent = rnd(6) == 0;

    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CompleteUpload cu = LODE__COMPLETE_UPLOAD__INIT;
    Lode__CompletePart parts[MAX_PART + 2], *pp[MAX_PART + 2];
    for (size_t i = 0; i < n; i++) {
        lode__complete_part__init(&parts[i]);
        parts[i].number = numbers[i];
        parts[i].etag = etags[i];
        pp[i] = &parts[i];
    }
    cu.upload_id = u ? u->id : "no-such-upload";
    cu.n_parts = n;
    cu.parts = pp;
    cu.if_absent = if_absent;
    cu.etag = "mp-etag";
    c.op_case = LODE__COMMAND__OP_COMPLETE_UPLOAD;
    c.complete_upload = &cu;
    struct meta_fsm_result r = apply(&c);

    /* The model's rules, in the state machine's order of checks. */
    int want = 0;
    uint64_t size = 0;
    unsigned chunks = 0;
    struct mobj *cur = NULL;
    if (!u || !u->live)
        want = LODE_ENOUPLOAD;
    else if (n == 0)
        want = LODE_EBADPART;
    for (size_t i = 1; !want && i < n; i++)
        if (numbers[i] <= numbers[i - 1])
            want = LODE_EPARTORDER;
    for (size_t i = 0; !want && i < n; i++) {
        const char *e = etags[i];
        char bare[24];
        size_t el = strlen(e);
        if (el >= 2 && e[0] == '"' && e[el - 1] == '"') {
            snprintf(bare, sizeof(bare), "%.*s", (int)(el - 2), e + 1);
            e = bare;
        }
        if (numbers[i] > MAX_PART || !u->parts[numbers[i]].present ||
            strcmp(u->parts[numbers[i]].etag, e) != 0)
            want = LODE_EBADPART;
        else {
            size += u->parts[numbers[i]].size;
            chunks += u->parts[numbers[i]].chunks;
        }
    }
    if (!want) {
        cur = obj_get(&buckets[u->bucket], u->key);
        if (if_absent && cur)
            want = LODE_EPRECONDITION;
    }
    uint64_t v = want ? 0 : next_version;
    expect("complete", &r, want, v);
    if (want)
        return;
    next_version++;
    if (cur)
        gc_expected += cur->chunks;
    for (uint32_t i = 1; i <= MAX_PART; i++) {
        bool listed = false;
        for (size_t j = 0; j < n; j++)
            listed |= numbers[j] == i;
        if (u->parts[i].present && !listed)
            gc_expected += u->parts[i].chunks;
    }
    obj_set(&buckets[u->bucket], u->key, v, size, chunks);
    u->live = false;
}

static void op_abort(void)
{
    struct mupload *u = pick_upload();
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__AbortUpload a = LODE__ABORT_UPLOAD__INIT;
    a.upload_id = u ? u->id : "no-such-upload";
    c.op_case = LODE__COMMAND__OP_ABORT_UPLOAD;
    c.abort_upload = &a;
    struct meta_fsm_result r = apply(&c);
    int want = !u || !u->live ? LODE_ENOUPLOAD : 0;
    expect("abort", &r, want, 0);
    if (want)
        return;
    for (int i = 1; i <= MAX_PART; i++)
        if (u->parts[i].present)
            gc_expected += u->parts[i].chunks;
    u->live = false;
}

static void op_user(void)
{
    int ui = (int)rnd(NUSERS);
    char name[16], ak[24];
    snprintf(name, sizeof(name), "usr%d", ui);
    Lode__Command c = LODE__COMMAND__INIT;
    if (rnd(3)) {
        int other = (int)rnd(NUSERS);
        bool reuse = rnd(10) == 0 && users[other].exists;
        if (reuse)
            snprintf(ak, sizeof(ak), "%s", users[other].ak);
        else
            snprintf(ak, sizeof(ak), "AK%u", ++ak_counter);
        Lode__CreateUser cu = LODE__CREATE_USER__INIT;
        cu.name = name;
        cu.access_key = ak;
        cu.secret_key = "secret";
        c.op_case = LODE__COMMAND__OP_CREATE_USER;
        c.create_user = &cu;
        struct meta_fsm_result r = apply(&c);
        int want = users[ui].exists ? LODE_EUSEREXISTS : reuse ? -EEXIST : 0;
        expect("create user", &r, want, 0);
        if (!want) {
            users[ui].exists = true;
            snprintf(users[ui].ak, sizeof(users[ui].ak), "%s", ak);
        }
        return;
    }
    Lode__DeleteUser du = LODE__DELETE_USER__INIT;
    du.name = name;
    c.op_case = LODE__COMMAND__OP_DELETE_USER;
    c.delete_user = &du;
    struct meta_fsm_result r = apply(&c);
    int want = users[ui].exists ? 0 : LODE_ENOUSER;
    expect("delete user", &r, want, 0);
    if (!want)
        users[ui].exists = false;
}

/* ---- reads */

static void check_get(void)
{
    char key[LONG_KEY + 16];
    struct mbucket *b = &buckets[rnd(NBUCKETS)];
    if (b->exists && b->n && rnd(2))
        strcpy(key, b->objs[rnd((unsigned)b->n)].key);
    else
        rand_key(key);
    struct cmn_buf buf = {0};
    struct cmn_err err;
    int rc = meta_fsm_object_get(fsm, b->name, key, &buf, &err);
    struct mobj *o = b->exists ? obj_get(b, key) : NULL;
    int want = !b->exists ? LODE_ENOBUCKET : !o ? LODE_ENOKEY : 0;
    if (rc != want) {
        MISMATCH("get %s/%.20s: %d, model says %d", b->name, key, rc, want);
    } else if (rc == 0) {
        Lode__ObjectRecord *r = lode__object_record__unpack(NULL, buf.len, buf.data);
        if (!r || r->version != o->version || r->size != o->size)
            MISMATCH("get %s/%.20s: record differs from the model", b->name, key);
        lode__object_record__free_unpacked(r, NULL);
    }
    cmn_buf_free(&buf);
}

struct item {
    bool is_prefix;
    const char *s;
    size_t len;
    const struct mobj *o;
};

/* What a complete listing must return, computed the obvious way. */
static size_t model_list(const struct mbucket *b, const char *prefix, const char *delim,
                         const char *sa, struct item *out)
{
    size_t plen = strlen(prefix), dlen = strlen(delim), n = 0;
    const char *last_cp = NULL;
    size_t last_cp_len = 0;
    for (size_t i = 0; i < b->n; i++) {
        const char *k = b->objs[i].key;
        if (strncmp(k, prefix, plen) != 0 || (*sa && strcmp(k, sa) <= 0))
            continue;
        const char *d = dlen ? strstr(k + plen, delim) : NULL;
        if (d) {
            size_t cpl = (size_t)(d - k) + dlen;
            if (last_cp && cpl == last_cp_len && strncmp(k, last_cp, cpl) == 0)
                continue;
            last_cp = k;
            last_cp_len = cpl;
            out[n++] = (struct item){true, k, cpl, NULL};
            continue;
        }
        out[n++] = (struct item){false, k, strlen(k), &b->objs[i]};
    }
    return n;
}

static void check_list(void)
{
    static const char *prefixes[] = {"", "", "a", "a/", "b", "ab", "a/b/", "c", "/", NULL, NULL};
    static const char *delims[] = {"", "/", "/", "b", "/a", "ca", "//"};
    static const uint32_t maxes[] = {0, 1, 2, 3, 5, 8, 1000};
    char long_prefix[LONG_KEY + 4], sa[LONG_KEY + 16] = "";
    memset(long_prefix, 'a', LONG_KEY);
    strcpy(long_prefix + LONG_KEY, rnd(2) ? "/" : "");
    int bi = (int)rnd(NBUCKETS);
    struct mbucket *b = &buckets[bi];
    if (!b->exists)
        return;
    unsigned pi = rnd(sizeof(prefixes) / sizeof(*prefixes));
    const char *prefix = prefixes[pi] ? prefixes[pi] : long_prefix;
    const char *delim = delims[rnd(sizeof(delims) / sizeof(*delims))];
    uint32_t max = maxes[rnd(sizeof(maxes) / sizeof(*maxes))];
    if (rnd(4) == 0)
        rand_key(sa);

    struct item *want = calloc(b->n + 1, sizeof(*want));
    size_t n_want = model_list(b, prefix, delim, sa, want), got = 0;
    char *token = NULL;
    bool bad = false;
    int pages = 0;
    for (;;) {
        Lode__ObjectListRequest q = LODE__OBJECT_LIST_REQUEST__INIT;
        struct cmn_buf buf = {0};
        struct cmn_err err;
        q.bucket = b->name;
        q.prefix = (char *)prefix;
        q.delimiter = (char *)delim;
        q.start_after = sa;
        q.continuation_token = token;
        q.max_keys = max;
        int rc = meta_fsm_object_list(fsm, &q, &buf, &err);
        Lode__ObjectListResponse *r =
            rc ? NULL : lode__object_list_response__unpack(NULL, buf.len, buf.data);
        cmn_buf_free(&buf);
        if (!r) {
            MISMATCH("list failed: %d %s", rc, err.msg);
            bad = true;
            break;
        }
        pages++;
        /* Entries and prefixes interleave by key: merge them back into one sequence. */
        size_t ei = 0, ci = 0, items = r->n_entries + r->n_common_prefixes;
        while (!bad && (ei < r->n_entries || ci < r->n_common_prefixes)) {
            bool take_prefix = ei == r->n_entries ||
                               (ci < r->n_common_prefixes &&
                                strcmp(r->common_prefixes[ci], r->entries[ei]->key) < 0);
            const char *s = take_prefix ? r->common_prefixes[ci++] : r->entries[ei++]->key;
            const struct item *w = got < n_want ? &want[got] : NULL;
            if (!w || w->is_prefix != take_prefix || strlen(s) != w->len ||
                strncmp(s, w->s, w->len) != 0) {
                MISMATCH("list %s prefix '%.12s' delim '%s' sa '%.12s' max %u: item %zu is "
                         "'%.24s'%s, model says '%.*s'%s",
                         b->name, prefix, delim, sa, max, got, s, take_prefix ? " (prefix)" : "",
                         w ? (int)(w->len > 24 ? 24 : w->len) : 3, w ? w->s : "end",
                         w && w->is_prefix ? " (prefix)" : "");
                bad = true;
            } else if (!take_prefix) {
                const Lode__ObjectListEntry *e = r->entries[ei - 1];
                if (e->version != w->o->version || e->size != w->o->size) {
                    MISMATCH("list entry '%.24s': version/size differ from the model", s);
                    bad = true;
                }
            }
            got++;
        }
        uint32_t eff = max ? max : 1000;
        if (!bad && r->is_truncated && (items != eff || !*r->next_continuation_token)) {
            MISMATCH("truncated page with %zu of %u items", items, eff);
            bad = true;
        }
        bool more = r->is_truncated;
        free(token);
        token = more ? strdup(r->next_continuation_token) : NULL;
        lode__object_list_response__free_unpacked(r, NULL);
        if (bad || !more)
            break;
    }
    if (!bad && got != n_want)
        MISMATCH("list %s prefix '%.12s' delim '%s' max %u: %zu items, model says %zu", b->name,
                 prefix, delim, max, got, n_want);
    free(token);
    free(want);
}

static uint64_t gc_count(void)
{
    uint64_t after = 0, n = 0;
    for (;;) {
        struct cmn_buf buf = {0};
        if (meta_fsm_gc_list(fsm, after, 10000, &buf))
            tap_bail("gc list failed");
        Lode__GcListResponse *g = lode__gc_list_response__unpack(NULL, buf.len, buf.data);
        cmn_buf_free(&buf);
        if (!g)
            tap_bail("gc list undecodable");
        size_t k = g->n_entries;
        n += k;
        if (k)
            after = g->entries[k - 1]->seq;
        lode__gc_list_response__free_unpacked(g, NULL);
        if (!k)
            return n;
    }
}

static struct meta_fsm *open_fsm(const char *name)
{
    char dir[PATH_MAX + 32];
    struct meta_fsm *f;
    struct cmn_err err;
    snprintf(dir, sizeof(dir), "%s/%s", root, name);
    struct meta_fsm_options o = {.dir = dir};
    if (meta_fsm_open(&o, &f, &err))
        tap_bail("open %s: %s", dir, cmn_err_text(&err));
    return f;
}

/* Moves the state to a fresh state machine through a snapshot. */
static void move_by_snapshot(void)
{
    struct cmn_buf snap = {0};
    struct cmn_err err;
    uint8_t d1[32], d2[32];
    is_int(meta_fsm_snapshot(fsm, &snap), 0, "midway snapshot (%zu bytes)", snap.len);
    struct meta_fsm *f2 = open_fsm("second");
    is_int(meta_fsm_restore(f2, snap.data, snap.len, &err), 0, "restored into a second fsm");
    ok(meta_fsm_digest(fsm, d1) == 0 && meta_fsm_digest(f2, d2) == 0 && memcmp(d1, d2, 32) == 0,
       "same digest");
    meta_fsm_close(fsm);
    fsm = f2;
    cmn_buf_free(&snap);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void)
{
    const char *env = getenv("LODE_TEST_SEED"), *base = getenv("TEST_TMPDIR");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0)
                                : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    diag("seed %" PRIu64 " (replay with LODE_TEST_SEED=%" PRIu64 ")", seed, seed);
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
    if (!rng_state)
        rng_state = 1;
    snprintf(root, sizeof(root), "%s/test_fsm_model.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(root))
        tap_bail("mkdtemp: %s", strerror(errno));
    cmn_log_set_level(CMN_LOG_WARN);
    fsm = open_fsm("first");

    for (int i = 0; i < NBUCKETS; i++)
        snprintf(buckets[i].name, sizeof(buckets[i].name), "bk%d", i);
    for (int i = 0; i < NBUCKETS - 1; i++) { /* the last bucket starts missing */
        Lode__Command c = LODE__COMMAND__INIT;
        Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
        Lode__BucketRecord br = LODE__BUCKET_RECORD__INIT;
        br.name = buckets[i].name;
        cb.bucket = &br;
        c.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
        c.create_bucket = &cb;
        struct meta_fsm_result r = apply(&c);
        expect("initial bucket", &r, 0, 0);
        buckets[i].exists = true;
    }

    int lists = 0, gets = 0, gc_checks = 0, gc_bad = 0;
    size_t peak = 0;
    for (int i = 0; i < OPS; i++) {
        unsigned r = rnd(100);
        if (r < 30)
            op_put();
        else if (r < 44)
            op_delete();
        else if (r < 45)
            op_bucket();
        else if (r < 54)
            op_create_upload();
        else if (r < 68)
            op_put_part();
        else if (r < 76)
            op_complete();
        else if (r < 80)
            op_abort();
        else if (r < 84)
            op_user();
        else {
            check_get();
            gets++;
        }
        size_t live = 0;
        for (int k = 0; k < NBUCKETS; k++)
            live += buckets[k].n;
        if (live > peak)
            peak = live;
        if (i % 100 == 99) {
            for (int k = 0; k < 4; k++, lists++)
                check_list();
            gc_checks++;
            uint64_t g = gc_count();
            if (g != gc_expected && ++gc_bad <= 3)
                diag("op %d: %" PRIu64 " GC entries, model says %" PRIu64, i, g, gc_expected);
        }
        if (i == OPS / 2) {
            is_int(mismatches, 0, "first half: %d operations agree with the model", i + 1);
            move_by_snapshot();
        }
    }
    size_t objects = 0;
    for (int i = 0; i < NBUCKETS; i++)
        objects += buckets[i].n;
    diag("%d ops, %d listings, %d gets; %zu objects (peak %zu), %" PRIu64 " versions, %" PRIu64
         " GC entries at the end",
         OPS, lists, gets, objects, peak, next_version - 1, gc_expected);
    is_int(mismatches, 0, "every result, read and listing agrees with the model");
    is_int(gc_bad, 0, "GC queue length matched the model at all %d checks", gc_checks);
    /* Puts are about a third of the operations: a run below a tenth did not exercise much. */
    ok(peak >= 100 && next_version > OPS / 10, "the run did real work");

    meta_fsm_close(fsm);
    for (int i = 0; i < NBUCKETS; i++) {
        for (size_t j = 0; j < buckets[i].n; j++)
            free(buckets[i].objs[j].key);
        free(buckets[i].objs);
    }
    for (size_t i = 0; i < n_uploads; i++)
        free(uploads[i].key);
    free(uploads);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
