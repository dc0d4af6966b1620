/* Fuzz target: raft entries and list requests as the metadata state machine decodes them.
 * Input byte 0 picks the mode: even = a raft entry for meta_fsm_apply_entry (any bytes must
 * become a result, never a crash), odd = a packed ObjectListRequest (continuation tokens and
 * delimiters from the fuzzer). One state machine lives across inputs so entries build state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "meta/fsm.h"
#include "tests/fuzz/fuzz.h"

static struct meta_fsm *fsm;
static char dir[512];

static void cleanup(void)
{
    if (fsm)
        meta_fsm_close(fsm);
    if (dir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz_meta_entry: could not remove %s\n", dir);
    }
}

static struct meta_fsm *get_fsm(void)
{
    if (fsm)
        return fsm;
    const char *t = getenv("TEST_TMPDIR");
    snprintf(dir, sizeof(dir), "%s/fuzz-meta-%d", t ? t : "/tmp", (int)getpid());
    struct meta_fsm_options o = {.dir = dir, .map_size = 64u << 20};
    struct cmn_err err;
    if (meta_fsm_open(&o, &fsm, &err) != 0) {
        fprintf(stderr, "fuzz_meta_entry: %s\n", err.msg);
        abort();
    }
    atexit(cleanup);
    return fsm;
}

/* Seeds: valid entries (bucket create, puts with odd keys) and list requests. */
static struct fuzz_seed seeds[8];
static size_t nseeds;

static void add_cmd_seed(const Lode__Command *cmd)
{
    size_t n = meta_cmd_entry_size(cmd);
    uint8_t *b = malloc(n + 1);
    b[0] = 0; /* mode: entry */
    meta_cmd_entry_pack(cmd, b + 1);
    seeds[nseeds].data = b;
    seeds[nseeds].len = n + 1;
    nseeds++;
}

const struct fuzz_seed *fuzz_seeds(size_t *n)
{
    if (nseeds == 0) {
        Lode__Command cmd;
        Lode__CreateBucket cb;
        Lode__BucketRecord br;
        lode__command__init(&cmd);
        lode__create_bucket__init(&cb);
        lode__bucket_record__init(&br);
        br.name = "fuzz";
        cb.bucket = &br;
        cmd.version = 1;
        cmd.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
        cmd.create_bucket = &cb;
        add_cmd_seed(&cmd);

        Lode__PutObject put;
        Lode__ObjectRecord rec;
        lode__put_object__init(&put);
        lode__object_record__init(&rec);
        put.bucket = "fuzz";
        put.key = "a/b/c";
        put.record = &rec;
        rec.size = 7;
        cmd.op_case = LODE__COMMAND__OP_PUT_OBJECT;
        cmd.put_object = &put;
        add_cmd_seed(&cmd);
        put.key = "a/\xff/z";
        put.if_absent = 1;
        add_cmd_seed(&cmd);

        Lode__DeleteObject del;
        lode__delete_object__init(&del);
        del.bucket = "fuzz";
        del.key = "a/b/c";
        cmd.op_case = LODE__COMMAND__OP_DELETE_OBJECT;
        cmd.delete_object = &del;
        add_cmd_seed(&cmd);

        Lode__ObjectListRequest lr;
        lode__object_list_request__init(&lr);
        lr.bucket = "fuzz";
        lr.prefix = "a/";
        lr.delimiter = "/";
        lr.continuation_token = "00";
        lr.max_keys = 2;
        size_t len = lode__object_list_request__get_packed_size(&lr);
        uint8_t *b = malloc(len + 1);
        b[0] = 1; /* mode: list */
        lode__object_list_request__pack(&lr, b + 1);
        seeds[nseeds].data = b;
        seeds[nseeds].len = len + 1;
        nseeds++;
    }
    *n = nseeds;
    return seeds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct meta_fsm *f = get_fsm();
    if ((data[0] & 1) == 0) {
        struct meta_fsm_result res;
        if (meta_fsm_apply_entry(f, data + 1, size - 1, &res) != 0)
            abort(); /* LMDB failure: not something input may cause */
        return 0;
    }
    Lode__ObjectListRequest *req = lode__object_list_request__unpack(NULL, size - 1, data + 1);
    if (!req)
        return 0;
    struct cmn_buf out;
    struct cmn_err err;
    cmn_buf_init(&out);
    int rc = meta_fsm_object_list(f, req, &out, &err);
    if (rc == 0) {
        Lode__ObjectListResponse *resp = lode__object_list_response__unpack(NULL, out.len, out.data);
        if (!resp)
            abort(); /* we must always produce a decodable answer */
        lode__object_list_response__free_unpacked(resp, NULL);
    }
    cmn_buf_free(&out);
    lode__object_list_request__free_unpacked(req, NULL);
    return 0;
}
