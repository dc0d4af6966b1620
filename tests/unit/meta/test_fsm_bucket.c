/* The state machine's CreateBucket and a bucket's own erasure scheme: the schemes a gateway
 * can write are stored and read back, every other one is refused with a message naming the
 * limits and leaves no bucket behind, and 0+0 (the gateway's default) stays the default.
 * The limits are the gateway coder's (gateway/ec.h: 1..16 data, 0..8 parity chunks). */
#include <errno.h>

#include "common/log.h"
#include "tests/unit/meta/fsm_helpers.h"

static int create_with(const char *name, uint32_t k, uint32_t m, char *msg, size_t cap)
{
    Lode__Command c = LODE__COMMAND__INIT;
    Lode__CreateBucket cb = LODE__CREATE_BUCKET__INIT;
    Lode__BucketRecord b = LODE__BUCKET_RECORD__INIT;
    struct meta_fsm_result r;
    b.name = (char *)name;
    b.owner = "alice";
    b.ec_k = k;
    b.ec_m = m;
    cb.bucket = &b;
    c.op_case = LODE__COMMAND__OP_CREATE_BUCKET;
    c.create_bucket = &cb;
    apply(&c, &r);
    if (msg)
        snprintf(msg, cap, "%s", r.message);
    return r.status;
}

/* The stored record of `name`, or NULL when there is none. */
static Lode__BucketRecord *get(const char *name)
{
    struct cmn_buf b;
    struct cmn_err err;
    cmn_buf_init(&b);
    cmn_err_clear(&err);
    Lode__BucketRecord *br = NULL;
    if (meta_fsm_bucket_get(fsm, name, &b, &err) == 0)
        br = lode__bucket_record__unpack(NULL, b.len, b.data);
    cmn_buf_free(&b);
    return br;
}

static void test_accepted(void)
{
    /* Every corner of the accepted range, and the usual schemes. */
    static const struct {
        const char *name;
        uint32_t k, m;
    } good[] = {
        {"ec-default", 0, 0}, {"ec-4-2", 4, 2},   {"ec-2-1", 2, 1},  {"ec-1-0", 1, 0},
        {"ec-1-8", 1, 8},     {"ec-16-0", 16, 0}, {"ec-16-8", 16, 8}, {"ec-8-3", 8, 3},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        is_int(create_with(good[i].name, good[i].k, good[i].m, NULL, 0), 0,
               "%u+%u is accepted", good[i].k, good[i].m);
        Lode__BucketRecord *br = get(good[i].name);
        ok(br && br->ec_k == good[i].k && br->ec_m == good[i].m,
           "... and read back as %u+%u", good[i].k, good[i].m);
        if (br)
            lode__bucket_record__free_unpacked(br, NULL);
    }
}

static void test_refused(void)
{
    static const struct {
        const char *name;
        uint32_t k, m;
    } bad[] = {
        {"bad-0-2", 0, 2},    /* parity without data: not the default either */
        {"bad-17-0", 17, 0},  /* one data chunk beyond the coder */
        {"bad-4-9", 4, 9},    /* one parity chunk beyond the coder */
        {"bad-17-9", 17, 9},
        {"bad-huge", 4000000000u, 2},
        {"bad-huge-m", 4, 4000000000u},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char msg[256];
        is_int(create_with(bad[i].name, bad[i].k, bad[i].m, msg, sizeof(msg)), -EINVAL,
               "%u+%u is refused", bad[i].k, bad[i].m);
        ok(strstr(msg, "erasure scheme") && strstr(msg, "1 to 16") && strstr(msg, "0 to 8"),
           "... with a message naming the limits (%s)", msg);
        Lode__BucketRecord *br = get(bad[i].name);
        ok(!br, "... and no bucket is created");
        if (br)
            lode__bucket_record__free_unpacked(br, NULL);
    }
    /* A name that is invalid and a scheme that is invalid: the name is reported first, as
     * before schemes existed. */
    is_int(create_with("Bad_Name", 99, 99, NULL, 0), LODE_EINVALNAME,
           "an invalid name with an invalid scheme is refused for its name");
    /* The refusals changed nothing: the name is still free for a valid scheme. */
    is_int(create_with("bad-4-9", 4, 2, NULL, 0), 0, "a refused name can be created validly");
    /* An existing bucket keeps its scheme: creating it again with another is refused. */
    is_int(create_with("ec-2-1", 4, 2, NULL, 0), LODE_EBUCKETEXISTS,
           "creating an existing bucket with another scheme is refused");
    Lode__BucketRecord *br = get("ec-2-1");
    ok(br && br->ec_k == 2 && br->ec_m == 1, "... and its scheme is unchanged");
    if (br)
        lode__bucket_record__free_unpacked(br, NULL);
}

int main(void)
{
    make_root("test_fsm_bucket");
    cmn_log_set_level(CMN_LOG_WARN);
    fsm = open_at("main", 0);
    test_accepted();
    test_refused();
    meta_fsm_close(fsm);
    remove_root();
    return tap_done();
}
