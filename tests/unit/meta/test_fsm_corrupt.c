/* The state machine's record of chunks that nodes found corrupt (CORRUPT_REPORT /
 * CORRUPT_LIST): what a repair will read. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static int apply(Lode__Command *c, struct meta_fsm_result *r)
{
    c->version = 1;
    c->now_ms = 1700000000000;
    if (meta_fsm_apply(fsm, c, r))
        tap_bail("apply: %s", r->message);
    return r->status;
}

static uint32_t register_node(uint8_t tag)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__RegisterNode rn = LODE__REGISTER_NODE__INIT;
    Lode__NodeInfo n = LODE__NODE_INFO__INIT;
    uint8_t uuid[16];
    memset(uuid, tag, sizeof(uuid));
    n.uuid.data = uuid;
    n.uuid.len = sizeof(uuid);
    n.address = "127.0.0.1:9000";
    n.failure_domain = tag == 1 ? "rack1" : "rack2";
    rn.node = &n;
    c.op_case = LODE__COMMAND__OP_REGISTER_NODE;
    c.register_node = &rn;
    struct meta_fsm_result r;
    if (apply(&c, &r))
        tap_bail("register: %s", r.message);
    return r.nid;
}

static int report(uint32_t nid, const uint8_t (*ids)[16], size_t n, int64_t when,
                  struct meta_fsm_result *r)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__ReportCorrupt rc = LODE__REPORT_CORRUPT__INIT;
    Lode__CorruptChunk cc[8], *ccp[8];
    for (size_t i = 0; i < n; i++) {
        lode__corrupt_chunk__init(&cc[i]);
        cc[i].nid = nid;
        cc[i].chunk_id.data = (uint8_t *)ids[i];
        cc[i].chunk_id.len = 16;
        cc[i].detected_ms = when;
        cc[i].reason = "checksum mismatch";
        ccp[i] = &cc[i];
    }
    rc.n_chunks = n;
    rc.chunks = ccp;
    c.op_case = LODE__COMMAND__OP_REPORT_CORRUPT;
    c.report_corrupt = &rc;
    return apply(&c, r);
}

static Lode__CorruptListResponse *list(uint32_t nid, uint32_t max)
{
    struct cmn_buf out;
    cmn_buf_init(&out);
    if (meta_fsm_corrupt_list(fsm, nid, max, &out))
        tap_bail("corrupt_list failed");
    Lode__CorruptListResponse *l = lode__corrupt_list_response__unpack(NULL, out.len, out.data);
    cmn_buf_free(&out);
    if (!l)
        tap_bail("corrupt_list answer does not decode");
    return l;
}

int main(void)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(root, sizeof(root), "%s/test_fsm_corrupt.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(root))
        tap_bail("mkdtemp: %s", strerror(errno));
    cmn_log_set_level(CMN_LOG_WARN);
    struct meta_fsm_options o = {.dir = root};
    struct cmn_err err;
    if (meta_fsm_open(&o, &fsm, &err))
        tap_bail("open: %s", cmn_err_text(&err));

    uint32_t a = register_node(1), b = register_node(2);
    uint8_t ids[3][16];
    for (int i = 0; i < 3; i++)
        memset(ids[i], 0xa0 + i, 16);
    struct meta_fsm_result r;

    is_int(report(a, ids, 2, 111, &r), 0, "node %u reports two corrupt chunks", a);
    is_int(report(b, ids + 2, 1, 0, &r), 0, "node %u reports one", b);
    Lode__CorruptListResponse *l = list(0, 0);
    is_int(l->n_chunks, 3, "all nodes: three entries");
    ok(l->n_chunks == 3 && l->chunks[0]->nid == a && l->chunks[2]->nid == b,
       "ordered by node, then chunk id");
    ok(l->n_chunks == 3 && l->chunks[2]->detected_ms == 1700000000000,
       "a report without a detection time gets the command's time");
    lode__corrupt_list_response__free_unpacked(l, NULL);

    l = list(a, 0);
    is_int(l->n_chunks, 2, "filtered to node %u: its two entries only", a);
    lode__corrupt_list_response__free_unpacked(l, NULL);
    l = list(b, 0);
    ok(l->n_chunks == 1 && memcmp(l->chunks[0]->chunk_id.data, ids[2], 16) == 0,
       "filtered to node %u: its one entry", b);
    lode__corrupt_list_response__free_unpacked(l, NULL);
    l = list(0, 2);
    is_int(l->n_chunks, 2, "max limits the answer");
    lode__corrupt_list_response__free_unpacked(l, NULL);

    is_int(report(a, ids, 1, 999, &r), 0, "a repeated report is accepted");
    l = list(a, 0);
    ok(l->n_chunks == 2 && l->chunks[0]->detected_ms == 111,
       "... and keeps the first detection time (no duplicate)");
    lode__corrupt_list_response__free_unpacked(l, NULL);

    is_int(report(77, ids, 1, 0, &r), LODE_ENONODE, "an unregistered node is refused");
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__ReportCorrupt rc = LODE__REPORT_CORRUPT__INIT;
    Lode__CorruptChunk bad = LODE__CORRUPT_CHUNK__INIT, *badp = &bad;
    bad.nid = a;
    bad.chunk_id.data = ids[0];
    bad.chunk_id.len = 5;
    rc.n_chunks = 1;
    rc.chunks = &badp;
    c.op_case = LODE__COMMAND__OP_REPORT_CORRUPT;
    c.report_corrupt = &rc;
    is_int(apply(&c, &r), LODE_EBADMSG, "a chunk id that is not 16 bytes is refused");
    l = list(0, 0);
    is_int(l->n_chunks, 3, "refused reports changed nothing");
    lode__corrupt_list_response__free_unpacked(l, NULL);

    /* Survives a snapshot: a repair after a restart still sees them. */
    struct cmn_buf snap;
    cmn_buf_init(&snap);
    uint8_t d1[32], d2[32];
    ok(meta_fsm_snapshot(fsm, &snap) == 0 && meta_fsm_digest(fsm, d1) == 0, "snapshot");
    meta_fsm_close(fsm);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(root, 0700) != 0)
        tap_bail("mkdir %s: %s", root, strerror(errno));
    if (meta_fsm_open(&o, &fsm, &err) || meta_fsm_restore(fsm, snap.data, snap.len, &err))
        tap_bail("reopen/restore: %s", cmn_err_text(&err));
    ok(meta_fsm_digest(fsm, d2) == 0 && memcmp(d1, d2, 32) == 0, "restored state is identical");
    l = list(0, 0);
    is_int(l->n_chunks, 3, "corrupt entries survive snapshot and restore");
    lode__corrupt_list_response__free_unpacked(l, NULL);
    cmn_buf_free(&snap);

    meta_fsm_close(fsm);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
