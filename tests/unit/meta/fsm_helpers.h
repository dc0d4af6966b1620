/* Helpers shared by the state-machine tests (test_fsm, test_fsm_multipart): state machines
 * in a temporary directory, commands applied through the raft-entry encoding as replicas
 * apply them, and builders for the commands and reads the tests use.
 *
 * Each test program is one translation unit including this once: the state below is that
 * program's own. Setup failures bail out (tap_bail); the builders return the command's
 * result status for the test to assert.
 */
#ifndef LODE_TESTS_UNIT_META_FSM_HELPERS_H
#define LODE_TESTS_UNIT_META_FSM_HELPERS_H

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/fsm.h"
#include "tests/tap.h"

static struct meta_fsm *fsm;           /* the state machine most tests work on */
static int64_t now_ms = 1700000000000; /* the leader clock stamped on each command */
static char root[PATH_MAX];            /* make_root's directory */

/* ---- fixture */

static inline int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes the directory of make_root and everything in it. */
static inline void remove_root(void)
{
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory for this program's state machines, under $TEST_TMPDIR (or /tmp). */
static inline void make_root(const char *prog)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(root, sizeof(root), "%s/%s.XXXXXX", base && *base ? base : "/tmp", prog);
    if (!mkdtemp(root))
        tap_bail("mkdtemp %s: %s", root, strerror(errno));
}

static inline struct meta_fsm *open_at(const char *name, uint64_t map_size)
{
    char dir[PATH_MAX + 64];
    struct meta_fsm *f;
    struct cmn_err err;
    snprintf(dir, sizeof(dir), "%s/%s", root, name);
    struct meta_fsm_options o = {.dir = dir, .map_size = map_size};
    cmn_err_clear(&err);
    if (meta_fsm_open(&o, &f, &err))
        tap_bail("open fsm in %s: %s", dir, cmn_err_text(&err));
    return f;
}

/* Applies through the raft-entry encoding, as replicas do. */
static inline void apply_on(struct meta_fsm *f, Lode__Command *c, struct meta_fsm_result *r)
{
    if (!c->version)
        c->version = 1;
    c->now_ms = now_ms;
    size_t n = meta_cmd_entry_size(c);
    uint8_t *buf = malloc(n);
    meta_cmd_entry_pack(c, buf);
    int rc = meta_fsm_apply_entry(f, buf, n, r);
    free(buf);
    if (rc)
        tap_bail("apply failed with %d (%s)", rc, r->message);
}

static inline void apply(Lode__Command *c, struct meta_fsm_result *r)
{
    apply_on(fsm, c, r);
}

static inline void digest(struct meta_fsm *f, uint8_t out[32])
{
    if (meta_fsm_digest(f, out))
        tap_bail("digest failed");
}

/* ---- builders */

/* A one-stripe layout whose chunk ids carry (tag, index) so GC entries can be traced. */
struct lay {
    Lode__Layout l;
    Lode__Stripe s;
    Lode__Stripe *sp[1];
    Lode__ChunkRef c[6];
    Lode__ChunkRef *cp[6];
    uint8_t ids[6][16];
};

static inline Lode__Layout *lay_init(struct lay *x, uint32_t tag, int n)
{
    lode__layout__init(&x->l);
    lode__stripe__init(&x->s);
    x->l.k = 4;
    x->l.m = 2;
    x->l.chunk_size = 1 << 20;
    x->l.n_stripes = 1;
    x->sp[0] = &x->s;
    x->l.stripes = x->sp;
    x->s.n_chunks = (size_t)n;
    x->s.chunks = x->cp;
    for (int i = 0; i < n; i++) {
        lode__chunk_ref__init(&x->c[i]);
        memset(x->ids[i], 0, 16);
        x->ids[i][0] = (uint8_t)(tag >> 24);
        x->ids[i][1] = (uint8_t)(tag >> 16);
        x->ids[i][2] = (uint8_t)(tag >> 8);
        x->ids[i][3] = (uint8_t)tag;
        x->ids[i][4] = (uint8_t)i;
        x->c[i].nid = (uint32_t)i + 1;
        x->c[i].chunk_id.data = x->ids[i];
        x->c[i].chunk_id.len = 16;
        x->cp[i] = &x->c[i];
    }
    return &x->l;
}

static inline uint32_t chunk_tag(const Lode__ChunkRef *c)
{
    const uint8_t *d = c->chunk_id.data;
    return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}

static inline int create_bucket(const char *name, const char *owner)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
    Lode__BucketRecord b = LODE__BUCKET_RECORD__INIT;
    struct meta_fsm_result r;
    b.name = (char *)name;
    b.owner = (char *)owner;
    cb.bucket = &b;
    c.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    c.create_bucket = &cb;
    apply(&c, &r);
    return r.status;
}

static inline int delete_bucket(const char *name)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__DeleteBucket d = LODE__DELETE_BUCKET__INIT;
    struct meta_fsm_result r;
    d.name = (char *)name;
    c.op_case = LODE__COMMAND__OP_DELETE_BUCKET;
    c.delete_bucket = &d;
    apply(&c, &r);
    return r.status;
}

static inline int put_object(const char *bucket, const char *key, uint64_t size,
                             Lode__Layout *layout, uint64_t if_version, bool if_absent,
                             uint64_t *version)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__PutObject p = LODE__PUT_OBJECT__INIT;
    Lode__ObjectRecord o = LODE__OBJECT_RECORD__INIT;
    struct meta_fsm_result r;
    o.size = size;
    o.etag = "0123456789abcdef0123456789abcdef";
    o.content_type = "application/octet-stream";
    o.layout = layout;
    p.bucket = (char *)bucket;
    p.key = (char *)key;
    p.record = &o;
    p.if_version = if_version;
    p.if_absent = if_absent;
    c.op_case = LODE__COMMAND__OP_PUT_OBJECT;
    c.put_object = &p;
    apply(&c, &r);
    if (version)
        *version = r.version;
    return r.status;
}

static inline int delete_object(const char *bucket, const char *key, uint64_t if_version)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__DeleteObject d = LODE__DELETE_OBJECT__INIT;
    struct meta_fsm_result r;
    d.bucket = (char *)bucket;
    d.key = (char *)key;
    d.if_version = if_version;
    c.op_case = LODE__COMMAND__OP_DELETE_OBJECT;
    c.delete_object = &d;
    apply(&c, &r);
    return r.status;
}

/* Unpacked object, or NULL with the read's code in *code. */
static inline Lode__ObjectRecord *get_object(struct meta_fsm *f, const char *bucket,
                                             const char *key, int *code)
{
    struct cmn_buf b = {0};
    struct cmn_err err;
    cmn_err_clear(&err);
    *code = meta_fsm_object_get(f, bucket, key, &b, &err);
    Lode__ObjectRecord *o = *code ? NULL : lode__object_record__unpack(NULL, b.len, b.data);
    cmn_buf_free(&b);
    return o;
}

/* GC entries after `after`, unpacked (caller frees). */
static inline Lode__GcListResponse *gc_list(uint64_t after)
{
    struct cmn_buf b = {0};
    if (meta_fsm_gc_list(fsm, after, 0, &b))
        tap_bail("gc_list failed");
    Lode__GcListResponse *g = lode__gc_list_response__unpack(NULL, b.len, b.data);
    cmn_buf_free(&b);
    if (!g)
        tap_bail("gc_list: undecodable");
    return g;
}

static inline uint64_t gc_last_seq(void)
{
    Lode__GcListResponse *g = gc_list(0);
    uint64_t s = g->n_entries ? g->entries[g->n_entries - 1]->seq : 0;
    lode__gc_list_response__free_unpacked(g, NULL);
    return s;
}

/* Counts GC entries after `after` with this tag and reason. */
static inline size_t gc_count(uint64_t after, uint32_t tag, const char *reason)
{
    Lode__GcListResponse *g = gc_list(after);
    size_t n = 0;
    for (size_t i = 0; i < g->n_entries; i++)
        if (chunk_tag(g->entries[i]->chunk) == tag && strcmp(g->entries[i]->reason, reason) == 0)
            n++;
    lode__gc_list_response__free_unpacked(g, NULL);
    return n;
}

static inline size_t gc_total(uint64_t after)
{
    Lode__GcListResponse *g = gc_list(after);
    size_t n = g->n_entries;
    lode__gc_list_response__free_unpacked(g, NULL);
    return n;
}

#endif
