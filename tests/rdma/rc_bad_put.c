/* A staged rc PUT whose RDMA READ the client's NIC refuses, for test_rc_cluster.sh (in the
 * guest). It does what liblode does for a staged upload (a data session, rc connections to
 * the gateway's workers, a registered window, a signed PUT with an rc1 token and no body),
 * except for one thing, chosen by MODE:
 *   rkey     the token carries another rkey than the window's (a forged or stale token);
 *   noread   the window is registered without remote-read access (a client that registered
 *            it for a GET).
 * The gateway's READ then fails at the NIC: the PUT must fail with 500 RDMATransferFailed,
 * carry no ETag, and store nothing (the shell checks the object with a plain GET).
 *
 *   rc_bad_put MODE BUCKET KEY SIZE
 * Prints "<http status> <S3 code or -> <etag or ->" and exits 0, or exits 1 with a message
 * when it could not get as far as sending the PUT. Endpoint and credentials from
 * LODE_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; the RDMA device from
 * LODE_RDMA_LOCAL. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/client.h>

#include "client/client_int.h"
#include "client/dp_rc_client.h"
#include "client/parse.h"
#include "common/rdma_token.h"

static int fail(const char *what, const struct cmn_err *err)
{
    fprintf(stderr, "rc_bad_put: %s: %s\n", what, err && err->msg[0] ? err->msg : "failed");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "rkey") != 0 && strcmp(argv[1], "noread") != 0)) {
        fprintf(stderr, "usage: rc_bad_put rkey|noread BUCKET KEY SIZE\n");
        return 2;
    }
    bool forge = strcmp(argv[1], "rkey") == 0;
    size_t size = strtoull(argv[4], NULL, 10);
    const char *ep = getenv("LODE_ENDPOINT"), *ak = getenv("AWS_ACCESS_KEY_ID"),
               *sk = getenv("AWS_SECRET_ACCESS_KEY"), *local = getenv("LODE_RDMA_LOCAL");
    if (!ep || !ak || !sk || !local || size == 0) {
        fprintf(stderr, "rc_bad_put: LODE_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                        "LODE_RDMA_LOCAL and a SIZE > 0 are needed\n");
        return 2;
    }
    struct lode_client_config cfg;
    lode_client_config_init(&cfg);
    cfg.endpoint = ep;
    cfg.access_key = ak;
    cfg.secret_key = sk;
    cfg.transport = LODE_TRANSPORT_HTTP;
    lode_client *c;
    if (lode_client_create(&cfg, &c) != 0)
        return fail("client", NULL);
    struct cmn_err err;
    cmn_err_clear(&err);

    /* The data session, as liblode asks for it. */
    struct lc_s3_req sq = {.method = "POST", .query = "x-lode-session", .send_length = true};
    struct lc_call call;
    if (lc_call_start(c, &sq, NULL, 0, NULL, &call, &err) != 0)
        return fail("session request", &err);
    struct cmn_buf doc;
    cmn_buf_init(&doc);
    int rc = call.resp->status == 200
                 ? lc_call_read_small(c, &call, &doc, LC_SESSION_DOC_MAX, &err)
                 : lc_call_fail(c, &call, "session request", NULL, 0, &err);
    lc_call_end(c, &call);
    struct lc_session s;
    if (rc || lc_session_parse((const char *)doc.data, doc.len, &s, &err) != 0)
        return fail("session", &err);
    cmn_buf_free(&doc);

    /* rc connections to every gateway worker: whichever serves the PUT must hold one. */
    struct lc_rc_client_config rcfg = {.local_host = local};
    memcpy(rcfg.cred.sid, s.sid, sizeof(rcfg.cred.sid));
    rcfg.cred.expires_ms = s.expires_ms;
    memcpy(rcfg.cred.mac, s.mac, sizeof(rcfg.cred.mac));
    cmn_dp_cred_set_key(&rcfg.cred, ak, strlen(ak));
    struct lc_rc_client *rcc;
    if (lc_rc_client_create(&rcfg, &rcc, &err) != 0)
        return fail("rc client", &err);
    struct lc_rc_source srcs[64];
    char addrs[64][LC_HOST_MAX + 16];
    size_t n = 0;
    for (size_t i = 0; i < s.n_src && n < 64; i++) {
        if (!s.src[i].has_rc || !(s.src[i].id & 0x80000000u))
            continue;
        snprintf(addrs[n], sizeof(addrs[n]), "%s:%u", s.src[i].rc_host, s.src[i].rc_port);
        srcs[n] = (struct lc_rc_source){.source_id = s.src[i].id, .addr = addrs[n]};
        n++;
    }
    if (n == 0 || lc_rc_client_connect(rcc, srcs, n, 10000, &err) != 0)
        return fail(n ? "rc connect" : "no gateway rc source in the session", &err);

    uint8_t *mem = malloc(size);
    if (!mem)
        return fail("memory", NULL);
    for (size_t i = 0; i < size; i++)
        mem[i] = (uint8_t)(i * 7 + 1);
    struct lc_rc_window *w;
    if (lc_rc_window_register(rcc, mem, size, forge ? LC_RC_REMOTE_READ : LC_RC_REMOTE_WRITE,
                              &w, &err) != 0)
        return fail("register", &err);
    struct cmn_rdma_token t = {.kind = CMN_RDMA_RC, .base = lc_rc_window_base(w), .size = size};
    memcpy(t.u.rc.sid, s.sid, sizeof(t.u.rc.sid));
    t.u.rc.rkey = lc_rc_window_rkey(w) ^ (forge ? 0x00ff0000u : 0);
    char token[CMN_RDMA_TOKEN_FMT_SIZE];
    if (cmn_rdma_token_format(&t, token, sizeof(token), &err) < 0)
        return fail("token", &err);

    struct lc_s3_req q = {.method = "PUT", .bucket = argv[2], .key = argv[3],
                          .send_length = true, .token = token};
    if (lc_call_start(c, &q, NULL, 0, NULL, &call, &err) != 0)
        return fail("PUT", &err);
    char etag[LODE_ETAG_MAX], code[64] = "";
    lc_copy_header(call.resp, "etag", etag, sizeof(etag));
    int status = call.resp->status;
    if (status != 200)
        lc_call_fail(c, &call, "PUT", code, sizeof(code), &err);
    lc_call_end(c, &call);
    printf("%d %s %s\n", status, code[0] ? code : "-", etag[0] ? etag : "-");

    lc_rc_window_deregister(rcc, w);
    lc_rc_client_destroy(rcc);
    lc_session_free(&s);
    free(mem);
    lode_client_destroy(c);
    return 0;
}
