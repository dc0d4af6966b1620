/* dc_smoke: the dc transport (common/dp_dc.c) on real ConnectX hardware. Not run by make
 * check: it needs an mlx5 NIC with an active port. tests/hw/README.md says how to use it.
 *
 *   dc_smoke loop   --device mlx5_0 [options]         one host: a DC target and the source in
 *                                                     one process, through the NIC
 *   dc_smoke target --device mlx5_0 [options]         host A: prints a token, waits for Enter,
 *                                                     then checks what host B wrote
 *   dc_smoke source --device mlx5_0 --token T [opts]  host B: writes, reads back, fences
 *
 * Options: --port N, --gid-index N (default: first RoCEv2 IPv4 entry, else IPv6), --size BYTES
 * (window, default 64 MiB), --dc-key HEX (default cuObject's 0xffeeddcc), --rtr-av (DCI RTR
 * with an address vector), --wrong-key (also check that a wrong DC key times out).
 *
 * The target plays the client's part the way cuObject does: an mlx5 DCT on an SRQ, a buffer
 * registered for remote read and write, and the 81-character token naming both. The window's
 * first half is written by the source with pattern A; its second half is filled with pattern B
 * by the target for the source to read. Output is TAP.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>

#include "common/clock.h"
#include "common/dc_params.h"
#include "common/dp_dc.h"
#include "common/log.h"
#include "common/rdma_token.h"
#include "tests/tap.h"

struct opts {
    const char *mode, *device, *token;
    uint8_t port;
    int gid_index;
    uint64_t size, dc_key;
    bool rtr_av, wrong_key;
};

static uint8_t pat_a(uint64_t i) { return (uint8_t)(i * 131 + 7); }
static uint8_t pat_b(uint64_t i) { return (uint8_t)((i * 17 + 1) ^ 0x5a); }

/* ------------------------------------------------------------------ the client's side */

struct dct_side {
    struct ibv_context *ctx;
    struct ibv_pd *pd;
    struct ibv_cq *cq;
    struct ibv_srq *srq;
    struct ibv_qp *dct;
    struct ibv_mr *mr;
    uint8_t *buf;
    char token[CMN_RDMA_TOKEN_DC_LEN + 1];
};

static struct ibv_context *open_dev(const char *name)
{
    int n = 0;
    struct ibv_device **l = ibv_get_device_list(&n);
    struct ibv_context *ctx = NULL;
    for (int i = 0; l && i < n; i++)
        if (strcmp(ibv_get_device_name(l[i]), name) == 0)
            ctx = ibv_open_device(l[i]);
    if (l)
        ibv_free_device_list(l);
    return ctx;
}

static int pick_gid(struct ibv_context *ctx, const struct opts *o, uint8_t *idx, uint8_t gid[16])
{
    /* the table call wants room for every port's rows */
    static struct ibv_gid_entry all[1024];
    ssize_t n = ibv_query_gid_table(ctx, all, 1024, 0);
    static struct cmn_gid_entry t[1024];
    size_t k = 0;
    for (ssize_t i = 0; i < n; i++) {
        if (all[i].port_num != o->port || all[i].gid_index > 255)
            continue;
        memcpy(t[k].gid, all[i].gid.raw, 16);
        t[k].type = all[i].gid_type == IBV_GID_TYPE_ROCE_V2   ? CMN_GID_TYPE_ROCE_V2
                    : all[i].gid_type == IBV_GID_TYPE_ROCE_V1 ? CMN_GID_TYPE_ROCE_V1
                                                              : CMN_GID_TYPE_IB;
        t[k].index = all[i].gid_index;
        k++;
    }
    if (o->gid_index >= 0) {
        *idx = (uint8_t)o->gid_index;
    } else {
        static const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
        static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        struct cmn_err e;
        if (cmn_dc_pick_sgid(t, k, v4, idx, &e) != 0 && cmn_dc_pick_sgid(t, k, v6, idx, &e) != 0) {
            fprintf(stderr, "dc_smoke: %s\n", e.msg);
            return -1;
        }
    }
    union ibv_gid g;
    if (ibv_query_gid(ctx, o->port, *idx, &g) != 0)
        return -1;
    memcpy(gid, g.raw, 16);
    return 0;
}

static int dct_up(struct dct_side *s, const struct opts *o)
{
    memset(s, 0, sizeof *s);
    s->ctx = open_dev(o->device);
    if (!s->ctx) {
        fprintf(stderr, "dc_smoke: cannot open %s\n", o->device);
        return -1;
    }
    struct ibv_port_attr pa;
    if (ibv_query_port(s->ctx, o->port, &pa) != 0)
        return -1;
    bool roce = pa.link_layer == IBV_LINK_LAYER_ETHERNET;
    uint8_t gidx = 0, gid[16] = {0};
    if (roce && pick_gid(s->ctx, o, &gidx, gid) != 0)
        return -1;
    s->pd = ibv_alloc_pd(s->ctx);
    s->cq = s->pd ? ibv_create_cq(s->ctx, 16, NULL, NULL, 0) : NULL;
    struct ibv_srq_init_attr sa = {.attr = {.max_wr = 1, .max_sge = 1}};
    s->srq = s->cq ? ibv_create_srq(s->pd, &sa) : NULL;
    s->buf = aligned_alloc(4096, o->size);
    if (!s->srq || !s->buf)
        return -1;
    for (uint64_t i = 0; i < o->size; i++)
        s->buf[i] = i < o->size / 2 ? 0 : pat_b(i);
    s->mr = ibv_reg_mr(s->pd, s->buf, o->size,
                       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
    if (!s->mr) {
        perror("dc_smoke: ibv_reg_mr (RLIMIT_MEMLOCK?)");
        return -1;
    }
    struct ibv_qp_init_attr_ex qa;
    memset(&qa, 0, sizeof qa);
    qa.qp_type = IBV_QPT_DRIVER;
    qa.send_cq = s->cq;
    qa.recv_cq = s->cq;
    qa.srq = s->srq;
    qa.pd = s->pd;
    qa.comp_mask = IBV_QP_INIT_ATTR_PD;
    struct mlx5dv_qp_init_attr dv;
    memset(&dv, 0, sizeof dv);
    dv.comp_mask = MLX5DV_QP_INIT_ATTR_MASK_DC;
    dv.dc_init_attr.dc_type = MLX5DV_DCTYPE_DCT;
    dv.dc_init_attr.dct_access_key = o->dc_key;
    s->dct = mlx5dv_create_qp(s->ctx, &qa, &dv);
    if (!s->dct) {
        perror("dc_smoke: mlx5dv_create_qp(DCT)");
        return -1;
    }
    struct ibv_qp_attr a;
    memset(&a, 0, sizeof a);
    a.qp_state = IBV_QPS_INIT;
    a.port_num = o->port;
    a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
    if (ibv_modify_qp(s->dct, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
                                      IBV_QP_ACCESS_FLAGS) != 0) {
        perror("dc_smoke: DCT to INIT");
        return -1;
    }
    memset(&a, 0, sizeof a);
    a.qp_state = IBV_QPS_RTR;
    a.path_mtu = pa.active_mtu;
    a.min_rnr_timer = 12;
    a.ah_attr.port_num = o->port;
    a.ah_attr.is_global = roce;
    a.ah_attr.grh.sgid_index = gidx;
    a.ah_attr.grh.hop_limit = 64;
    if (ibv_modify_qp(s->dct, &a, IBV_QP_STATE | IBV_QP_MIN_RNR_TIMER | IBV_QP_AV |
                                      IBV_QP_PATH_MTU) != 0) {
        perror("dc_smoke: DCT to RTR");
        return -1;
    }
    /* the token, as cuObject's client formats it (docs/rdma-token.md) */
    int n = snprintf(s->token, sizeof s->token, "%016" PRIx64 ":%08" PRIx64 ":%08x:%04x:%06x:%d:",
                     (uint64_t)(uintptr_t)s->buf, o->size, s->mr->rkey, roce ? 0 : pa.lid,
                     s->dct->qp_num & 0xffffff, roce ? 1 : 0);
    for (int i = 0; i < 16; i++)
        n += snprintf(s->token + n, sizeof s->token - (size_t)n, "%02x", gid[i]);
    return n == CMN_RDMA_TOKEN_DC_LEN ? 0 : -1;
}

static void dct_down(struct dct_side *s)
{
    if (s->dct)
        ibv_destroy_qp(s->dct);
    if (s->mr)
        ibv_dereg_mr(s->mr);
    if (s->srq)
        ibv_destroy_srq(s->srq);
    if (s->cq)
        ibv_destroy_cq(s->cq);
    if (s->pd)
        ibv_dealloc_pd(s->pd);
    if (s->ctx)
        ibv_close_device(s->ctx);
    free(s->buf);
}

static bool check_a(const uint8_t *buf, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (buf[i] != pat_a(i)) {
            diag("first wrong byte at %" PRIu64 ": %u, want %u", i, buf[i], pat_a(i));
            return false;
        }
    return true;
}

/* ------------------------------------------------------------------ the source's side */

struct waiter {
    int pending, status;
};

static void w_cb(void *data, int status)
{
    struct waiter *w = data;
    w->pending--;
    if (status != 0 && w->status == 0)
        w->status = status;
}

static void run_until(uv_loop_t *loop, struct waiter *w, uint64_t max_ms)
{
    uint64_t end = cmn_mono_ms() + max_ms;
    while (w->pending > 0 && cmn_mono_ms() < end)
        uv_run(loop, UV_RUN_NOWAIT);
    if (w->pending > 0)
        tap_bail("callbacks missing after %" PRIu64 " ms", max_ms);
}

static void closed(void *data) { *(int *)data = 1; }

static struct cmn_dp_dc *source_up(uv_loop_t *loop, const struct opts *o, uint64_t key)
{
    struct cmn_dp_dc_config c;
    cmn_dp_dc_config_defaults(&c);
    c.device = o->device;
    c.port = o->port;
    c.gid_index = o->gid_index;
    c.dc_key = key;
    c.rtr_av = o->rtr_av;
    struct cmn_dp_dc *dc = NULL;
    struct cmn_err e;
    if (cmn_dp_dc_create(loop, &c, &dc, &e) != 0)
        tap_bail("cmn_dp_dc_create: %s", e.msg);
    return dc;
}

static void source_down(uv_loop_t *loop, struct cmn_dp_dc *dc)
{
    int done = 0;
    cmn_dp_dc_close(dc, closed, &done);
    while (!done)
        uv_run(loop, UV_RUN_ONCE);
}

static void run_source(const struct opts *o, const char *token, uint8_t *local_view)
{
    struct cmn_rdma_token t;
    struct cmn_err e;
    if (cmn_rdma_token_parse(token, strlen(token), &t, &e) != 0 || t.kind != CMN_RDMA_DC)
        tap_bail("token: %s", e.msg);
    uint64_t half = t.size / 2;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cmn_dp_dc *dc = source_up(&loop, o, o->dc_key);

    /* 1. GET's path: four parallel writes of pattern A into the first half. */
    uint8_t *a = malloc(half), *b = malloc(t.size - half);
    for (uint64_t i = 0; i < half; i++)
        a[i] = pat_a(i);
    struct waiter w = {0};
    uint64_t piece = (half + 3) / 4, t0 = cmn_mono_ms();
    for (uint64_t off = 0; off < half; off += piece) {
        uint64_t len = half - off < piece ? half - off : piece;
        w.pending++;
        if (cmn_dp_dc_write(dc, &t, off, a + off, len, w_cb, &w) != 0)
            tap_bail("cmn_dp_dc_write refused");
    }
    run_until(&loop, &w, 30000);
    is_int(w.status, 0, "RDMA WRITE of %" PRIu64 " bytes (%.1f ms)", half,
           (double)(cmn_mono_ms() - t0));
    if (local_view)
        ok(check_a(local_view, half), "  the bytes landed in the client's buffer");

    /* 2. PUT's path: read the second half back. */
    w = (struct waiter){.pending = 1};
    t0 = cmn_mono_ms();
    cmn_dp_dc_read(dc, &t, half, b, t.size - half, w_cb, &w);
    run_until(&loop, &w, 30000);
    is_int(w.status, 0, "RDMA READ of %" PRIu64 " bytes (%.1f ms)", t.size - half,
           (double)(cmn_mono_ms() - t0));
    bool good = true;
    for (uint64_t i = half; i < t.size && good; i++)
        good = b[i - half] == pat_b(i);
    ok(good, "  the bytes read are the client's");

    /* 3. A fence with nothing in flight. */
    w = (struct waiter){.pending = 1};
    cmn_dp_dc_fence(dc, &t, w_cb, &w);
    run_until(&loop, &w, 10000);
    is_int(w.status, 0, "fence");

    /* 4. A wrong rkey: the client's NIC must refuse it, and the DCI must recover. */
    struct cmn_rdma_token bad = t;
    bad.u.dc.rkey ^= 0x00ff0000u;
    w = (struct waiter){.pending = 1};
    cmn_dp_dc_write(dc, &bad, 0, a, 64, w_cb, &w);
    run_until(&loop, &w, 10000);
    is_int(w.status, LODE_EWINDOW, "a wrong rkey fails with LODE_EWINDOW");
    w = (struct waiter){.pending = 1};
    cmn_dp_dc_write(dc, &t, 0, a, 4096, w_cb, &w);
    run_until(&loop, &w, 10000);
    is_int(w.status, 0, "  and the next write on the recovered DCI succeeds");

    struct cmn_dp_dc_stats st;
    cmn_dp_dc_get_stats(dc, &st);
    diag("stats: %" PRIu64 " writes, %" PRIu64 " reads, %" PRIu64 " WRs, %" PRIu64
         " WR errors, %" PRIu64 " recoveries, %" PRIu64 " reposts",
         st.writes, st.reads, st.wrs_posted, st.wr_errors, st.dci_recoveries, st.wrs_reposted);
    uint64_t drain = cmn_dp_dc_drain_ms(dc);
    source_down(&loop, dc);

    /* 5. A wrong DC key: the client's DCT drops the packets; the write must fail within the
     * drain bound (this is what the fence relies on). */
    if (o->wrong_key) {
        dc = source_up(&loop, o, o->dc_key ^ 1);
        w = (struct waiter){.pending = 1};
        t0 = cmn_mono_ms();
        cmn_dp_dc_write(dc, &t, 0, a, 64, w_cb, &w);
        run_until(&loop, &w, 4 * drain + 5000);
        uint64_t took = cmn_mono_ms() - t0;
        ok(w.status != 0, "a wrong DC key fails (%s) after %" PRIu64 " ms",
           lode_strerror(w.status), took);
        ok(took <= drain + 500, "  within the drain bound of %" PRIu64 " ms", drain);
        source_down(&loop, dc);
    }
    uv_loop_close(&loop);
    free(a);
    free(b);
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr, "usage: dc_smoke loop|target|source --device NAME [--token T] [--port N] "
                    "[--gid-index N] [--size BYTES] [--dc-key HEX] [--rtr-av] [--wrong-key]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = {.port = 1, .gid_index = -1, .size = 64ull << 20,
                     .dc_key = CMN_DP_DC_KEY_DEFAULT};
    if (argc < 2)
        usage();
    o.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--rtr-av")) {
            o.rtr_av = true;
            continue;
        }
        if (!strcmp(k, "--wrong-key")) {
            o.wrong_key = true;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (!strcmp(k, "--device"))
            o.device = v;
        else if (!strcmp(k, "--token"))
            o.token = v;
        else if (!strcmp(k, "--port"))
            o.port = (uint8_t)atoi(v);
        else if (!strcmp(k, "--gid-index"))
            o.gid_index = atoi(v);
        else if (!strcmp(k, "--size"))
            o.size = strtoull(v, NULL, 0);
        else if (!strcmp(k, "--dc-key"))
            o.dc_key = strtoull(v, NULL, 16);
        else
            usage();
    }
    if (!o.device || o.size < 8192 || o.size > CMN_RDMA_DC_WINDOW_MAX)
        usage();
    cmn_log_init("dc_smoke", CMN_LOG_INFO);
    if (!strcmp(o.mode, "source")) {
        if (!o.token)
            usage();
        run_source(&o, o.token, NULL);
        return tap_done();
    }
    struct dct_side s;
    if (dct_up(&s, &o) != 0)
        tap_bail("could not set up the DC target on %s port %u", o.device, o.port);
    if (!strcmp(o.mode, "target")) {
        printf("# token (pass it to: dc_smoke source --token ...):\n%s\n", s.token);
        printf("# press Enter once the source is done\n");
        fflush(stdout);
        int ch;
        while ((ch = getchar()) != EOF && ch != '\n') {
        }
        ok(check_a(s.buf, o.size / 2), "the source's pattern is in the first half");
    } else if (!strcmp(o.mode, "loop")) {
        run_source(&o, s.token, s.buf);
    } else {
        usage();
    }
    dct_down(&s);
    return tap_done();
}
