/* Shared by the dc transport's unit tests (test_dp_dc.c: the pure pieces; test_dp_dc_engine.c:
 * the engine against a fake NIC): test targets made through the real token parser, a small
 * valid configuration, a DCI's QP parameters, and the fake NIC that records every post and
 * modify-QP step. */
#ifndef LODE_TESTS_UNIT_COMMON_DP_DC_TEST_H
#define LODE_TESTS_UNIT_COMMON_DP_DC_TEST_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/dp_dc_int.h"
#include "tests/tap.h"

#define SLOT 4096u

static inline void target(struct cmn_dc_target *t, uint8_t host, uint32_t dctn, uint64_t base,
                   uint32_t size)
{
    /* A RoCEv2 client ::ffff:192.168.0.<host>, rkey 0xa1b2c3d4, through the real parser. */
    char s[128];
    snprintf(s, sizeof s, "%016llx:%08x:a1b2c3d4:0000:%06x:1:00000000000000000000ffffc0a800%02x",
             (unsigned long long)base, size, dctn, host);
    struct cmn_rdma_token tok;
    struct cmn_err e;
    struct cmn_dc_local l = {.sgid_index = 3, .hop_limit = 64, .traffic_class = 96,
                             .dc_key = 0x1122334455667788ull, .timeout = 16, .retry_cnt = 7};
    if (cmn_rdma_token_parse(s, strlen(s), &tok, &e) != 0 || cmn_dc_derive(&tok, &l, t, &e) != 0)
        tap_bail("test token: %s", e.msg);
}

/* A target of host `host` whose calls go to DCI `want` of n (tries DCT numbers). */
static inline void target_on(struct cmn_dc_target *t, uint8_t host, uint32_t want, uint32_t n,
                      uint32_t skip_dctn)
{
    for (uint32_t dctn = 1; dctn < 100000; dctn++) {
        if (dctn == skip_dctn)
            continue;
        target(t, host, dctn, 0x7f0000000000ull, 1u << 20);
        if (dc_pick_dci(t, n) == want)
            return;
    }
    tap_bail("no DCT number maps to DCI %u", want);
}

static inline struct cmn_dp_dc_config small_cfg(void)
{
    struct cmn_dp_dc_config c;
    cmn_dp_dc_config_defaults(&c);
    c.device = "fake0";
    c.num_dcis = 2;
    c.sq_depth = 4;
    c.slot_bytes = SLOT;
    c.staging_bytes = 8 * SLOT;
    c.max_queued = 16;
    struct cmn_err e;
    if (cmn_dp_dc_config_check(&c, &c, &e) != 0)
        tap_bail("small config: %s", e.msg);
    return c;
}

static const struct dc_qp_params qp_ok = {
    .port = 1, .path_mtu = 5, .timeout = 16, .retry_cnt = 7, .rnr_retry = 0,
    .max_rd_atomic = 16, .is_global = true, .sgid_index = 3, .hop_limit = 64,
};

/* ------------------------------------------------------------------ the fake NIC */

#define MAX_POSTS 256
#define MAX_STEPS 256

struct fake {
    struct dc_post posts[MAX_POSTS];
    uint32_t post_dci[MAX_POSTS];
    uint8_t *post_data[MAX_POSTS];   /* the slot's bytes when posted */
    size_t nposts;
    struct dc_qp_step steps[MAX_STEPS];
    uint32_t step_dci[MAX_STEPS];
    size_t nsteps;
    int fail_post;                   /* errno to return from the next post, once */
    int fail_modify_dci;             /* -1, or a DCI whose modifies fail */
    bool ah_fail;
    int ah_live, ah_created;
    struct cmn_dc_ah last_ah;
};

static inline int fake_post(void *hw, uint32_t dci, const struct dc_post *p)
{
    struct fake *f = hw;
    if (f->fail_post) {
        int e = f->fail_post;
        f->fail_post = 0;
        return -e;
    }
    if (f->nposts == MAX_POSTS)
        tap_bail("too many posts");
    f->posts[f->nposts] = *p;
    f->post_dci[f->nposts] = dci;
    f->post_data[f->nposts] = malloc(p->len);
    memcpy(f->post_data[f->nposts], p->local, p->len);
    f->nposts++;
    return 0;
}

static inline int fake_modify(void *hw, uint32_t dci, const struct dc_qp_step *s)
{
    struct fake *f = hw;
    if (f->nsteps == MAX_STEPS)
        tap_bail("too many steps");
    f->steps[f->nsteps] = *s;
    f->step_dci[f->nsteps] = dci;
    f->nsteps++;
    return (int)dci == f->fail_modify_dci ? -EINVAL : 0;
}

static inline void *fake_ah_create(void *hw, const struct cmn_dc_ah *attr, struct cmn_err *err)
{
    struct fake *f = hw;
    if (f->ah_fail) {
        cmn_err_set(err, LODE_EUNAVAILABLE, "fake: no route");
        return NULL;
    }
    f->last_ah = *attr;
    f->ah_live++;
    return (void *)(uintptr_t)++f->ah_created;
}

static inline void fake_ah_destroy(void *hw, void *ah)
{
    struct fake *f = hw;
    (void)ah;
    f->ah_live--;
}

static inline void fake_reset(struct fake *f)
{
    for (size_t i = 0; i < f->nposts; i++)
        free(f->post_data[i]);
    memset(f, 0, sizeof *f);
    f->fail_modify_dci = -1;
}

#endif
