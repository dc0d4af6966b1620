/* Leader-following client of the lode-meta group, on top of the blocking RPC client.
 *
 * Retry policy (docs/wire-protocol.md, "Redirects and retries"):
 *   - LODE_ENOTLEADER naming a leader: go there at once (the address is added to the list
 *     when it is new, e.g. a voter added since the client started);
 *   - LODE_ENOTLEADER without a leader, LODE_ENOLEADER, LODE_ESHUTDOWN, LODE_EUNAVAILABLE
 *     (a replica still starting) and transport failures (connect errors, LODE_ECLOSED, a
 *     local LODE_ETIMEOUT): wait 50-200 ms and try the next replica;
 *   - anything else, success included, is the answer.
 * until the call's deadline. LODE_EAUTH is final: a wrong secret does not fix itself.
 */
#include "common/meta_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/rpc_internal.h"

#define DEFAULT_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 1000
/* One unresponsive replica must not eat the whole deadline: an attempt gets at most half of
 * it (but never less than this), so there is time left to try another. */
#define MIN_ATTEMPT_MS 3000
#define MAX_REPLICAS 64

struct replica {
    char *addr;
    struct cmn_rpc_sync *conn;   /* cached authenticated connection, or NULL */
};

struct cmn_meta_client {
    struct replica *reps;
    size_t n;
    size_t leader;               /* index to try first */
    int have_leader;             /* reps[leader] answered as leader */
    uint8_t *secret;
    size_t secret_len;
    struct cmn_id client_id;
    uint64_t seq;
};

static int add_replica(struct cmn_meta_client *mc, const char *addr, size_t len)
{
    if (mc->n >= MAX_REPLICAS)
        return -E2BIG;
    struct replica *r = realloc(mc->reps, (mc->n + 1) * sizeof(*r));
    if (!r)
        return -ENOMEM;
    mc->reps = r;
    char *a = strndup(addr, len);
    if (!a)
        return -ENOMEM;
    mc->reps[mc->n].addr = a;
    mc->reps[mc->n].conn = NULL;
    return (int)mc->n++;
}

static int find_replica(const struct cmn_meta_client *mc, const char *addr)
{
    for (size_t i = 0; i < mc->n; i++)
        if (strcmp(mc->reps[i].addr, addr) == 0)
            return (int)i;
    return -1;
}

int cmn_meta_client_create(const char *addrs, const void *secret, size_t secret_len,
                           struct cmn_meta_client **out, struct cmn_err *err)
{
    if (!addrs || !secret || !secret_len || !out)
        return cmn_err_set(err, -EINVAL, "meta client: replica list and secret are required");
    struct cmn_meta_client *mc = calloc(1, sizeof(*mc));
    if (!mc)
        return cmn_err_set(err, -ENOMEM, "meta client: out of memory");
    int rc = 0;
    const char *p = addrs;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        char one[CMN_RPC_HOST_MAX + 16];
        char host[CMN_RPC_HOST_MAX], port[8];
        snprintf(one, sizeof(one), "%.*s", (int)len, p);
        rc = cmn_rpc_addr_split(one, host, port, err);
        if (rc) {
            cmn_err_wrap(err, "meta replica list '%s'", addrs);
            goto fail;
        }
        if (find_replica(mc, one) < 0 && (rc = add_replica(mc, p, len)) < 0) {
            cmn_err_set(err, rc, "meta replica list '%s': %s", addrs, lode_strerror(rc));
            goto fail;
        }
        p += len;
    }
    if (mc->n == 0) {
        rc = cmn_err_set(err, LODE_ECONFIG, "meta replica list '%s' names no replica", addrs);
        goto fail;
    }
    mc->secret = malloc(secret_len);
    if (!mc->secret) {
        rc = cmn_err_set(err, -ENOMEM, "meta client: out of memory");
        goto fail;
    }
    memcpy(mc->secret, secret, secret_len);
    mc->secret_len = secret_len;
    mc->client_id = cmn_id_random();
    *out = mc;
    return 0;
fail:
    cmn_meta_client_destroy(mc);
    return rc < 0 ? rc : LODE_ECONFIG;
}

void cmn_meta_client_destroy(struct cmn_meta_client *mc)
{
    if (!mc)
        return;
    for (size_t i = 0; i < mc->n; i++) {
        cmn_rpc_sync_close(mc->reps[i].conn);
        free(mc->reps[i].addr);
    }
    free(mc->reps);
    if (mc->secret) {
        explicit_bzero(mc->secret, mc->secret_len);
        free(mc->secret);
    }
    free(mc);
}

const char *cmn_meta_client_leader(const struct cmn_meta_client *mc)
{
    return mc->have_leader ? mc->reps[mc->leader].addr : NULL;
}

static void drop_conn(struct replica *r)
{
    cmn_rpc_sync_close(r->conn);
    r->conn = NULL;
}

/* One attempt against one replica. Returns the status; *transport tells whether it was a
 * local failure (connect, lost connection, no reply) rather than the server's answer. */
static int attempt(struct cmn_meta_client *mc, size_t idx, unsigned method, unsigned flags,
                   const ProtobufCMessage *req, uint32_t timeout_ms, struct cmn_rpc_result *res,
                   int *transport)
{
    struct replica *r = &mc->reps[idx];
    *transport = 0;
    int reused = r->conn != NULL;
    if (!r->conn) {
        struct cmn_err err;
        cmn_err_clear(&err);
        uint32_t ct = timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS;
        int rc = cmn_rpc_sync_connect(r->addr, mc->secret, mc->secret_len, ct, &r->conn, &err);
        if (rc) {
            r->conn = NULL;
            *transport = 1;
            cmn_buf_reset(&res->body);
            cmn_buf_reset(&res->payload);
            cmn_rpc_result_set_local(res, rc, "%s", cmn_err_text(&err));
            return rc;
        }
    }
    uint64_t start = cmn_mono_ms();
    int rc = cmn_rpc_sync_call(r->conn, method, flags, req, timeout_ms, res);
    if (cmn_rpc_sync_broken(r->conn)) {
        drop_conn(r);
        *transport = 1;
        /* A cached connection the server has since closed (idle timeout, restart) is not
         * a reason to leave this replica: try once more on a fresh connection. Safe for
         * mutations too, thanks to (client_id, seq). */
        uint64_t spent = cmn_mono_ms() - start;
        if (reused && rc == LODE_ECLOSED && spent < timeout_ms)
            return attempt(mc, idx, method, flags, req, (uint32_t)(timeout_ms - spent), res,
                           transport);
    }
    return rc;
}

static void backoff(uint64_t deadline)
{
    uint16_t rnd = 0;
    cmn_random_bytes(&rnd, sizeof(rnd));
    uint64_t ms = 50 + rnd % 151;
    uint64_t now = cmn_mono_ms();
    if (now >= deadline)
        return;
    if (now + ms > deadline)
        ms = deadline - now;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int retriable(int status, int transport)
{
    if (transport)
        return status != LODE_EAUTH && status != LODE_EFRAMETOOBIG && status != -ENOMEM &&
               status != LODE_ECONFIG;
    return status == LODE_ENOLEADER || status == LODE_ENOTLEADER || status == LODE_ESHUTDOWN ||
           status == LODE_EUNAVAILABLE;
}

static void append_tried(char *tried, size_t size, const char *addr)
{
    if (strstr(tried, addr))
        return;
    size_t len = strlen(tried);
    snprintf(tried + len, size - len, "%s%s", len ? ", " : "", addr);
}

int cmn_meta_client_call(struct cmn_meta_client *mc, unsigned method, ProtobufCMessage *req,
                         uint32_t timeout_ms, struct cmn_rpc_result *res)
{
    if (!timeout_ms)
        timeout_ms = DEFAULT_TIMEOUT_MS;
    uint64_t start = cmn_mono_ms();
    uint64_t deadline = start + timeout_ms;

    /* Stamp (client_id, seq) once, before the first attempt, so every retry is the same
     * command to the state machine's dedupe table. The caller's message is restored
     * afterwards: it must not keep a pointer into this client. */
    Lode__Command *cmd = NULL;
    if (req && req->descriptor == &lode__command__descriptor &&
        cmn_rpc_method_request(method) == &lode__command__descriptor) {
        cmd = (Lode__Command *)req;
        if (cmd->client_id.len == 0) {
            cmd->client_id.data = mc->client_id.b;
            cmd->client_id.len = CMN_ID_SIZE;
            cmd->seq = ++mc->seq;
        } else {
            cmd = NULL;
        }
    }

    char tried[1024] = "";
    char last[sizeof(res->message)] = "";
    int last_rc = 0;
    size_t idx = mc->leader < mc->n ? mc->leader : 0;
    int rc;
    unsigned redirects = 0;
    for (;;) {
        uint64_t now = cmn_mono_ms();
        uint32_t left = now < deadline ? (uint32_t)(deadline - now) : 0;
        if (left == 0) {
            /* Out of time: report the last thing that went wrong, and where we looked. */
            const char *name = cmn_rpc_method_name(method);
            rc = last_rc ? last_rc : LODE_ETIMEOUT;
            cmn_buf_reset(&res->body);
            cmn_buf_reset(&res->payload);
            cmn_rpc_result_set_local(res, rc,
                                     "%s: no meta leader answered within %u ms (tried %s); "
                                     "last error: %s",
                                     name ? name : "call", timeout_ms,
                                     tried[0] ? tried : "none", last[0] ? last : "none");
            break;
        }
        uint32_t per = left / 2 > MIN_ATTEMPT_MS ? left / 2 : MIN_ATTEMPT_MS;
        if (per > left)
            per = left;
        int transport = 0;
        append_tried(tried, sizeof(tried), mc->reps[idx].addr);
        rc = attempt(mc, idx, method, 0, req, per, res, &transport);
        if (!retriable(rc, transport)) {
            if (!transport) {
                mc->leader = idx;
                mc->have_leader = 1;
            }
            break;
        }
        last_rc = rc;
        snprintf(last, sizeof(last), "%s", res->message);
        mc->have_leader = 0;
        if (rc == LODE_ENOTLEADER && res->leader_address[0] &&
            strcmp(res->leader_address, mc->reps[idx].addr) != 0) {
            int j = find_replica(mc, res->leader_address);
            if (j < 0)
                j = add_replica(mc, res->leader_address, strlen(res->leader_address));
            if (j >= 0) {
                LOG_DEBUG("meta-client", "%s is not the leader; redirected to %s",
                          mc->reps[idx].addr, res->leader_address);
                idx = (size_t)j;
                mc->leader = idx;
                /* Followers may briefly disagree during an election; pause when redirects
                 * start going round in circles. */
                if (++redirects % mc->n == 0)
                    backoff(deadline);
                continue;
            }
        }
        idx = (idx + 1) % mc->n;
        mc->leader = idx;
        backoff(deadline);
    }
    if (cmd) {
        cmd->client_id.data = NULL;
        cmd->client_id.len = 0;
        cmd->seq = 0;
    }
    return rc;
}

int cmn_meta_client_call_at(struct cmn_meta_client *mc, const char *addr, unsigned method,
                            unsigned flags, const ProtobufCMessage *req, uint32_t timeout_ms,
                            struct cmn_rpc_result *res)
{
    int idx = find_replica(mc, addr);
    if (idx < 0) {
        char host[CMN_RPC_HOST_MAX], port[8];
        struct cmn_err err;
        cmn_err_clear(&err);
        if (cmn_rpc_addr_split(addr, host, port, &err)) {
            cmn_rpc_result_set_local(res, err.code, "%s", cmn_err_text(&err));
            return res->status;
        }
        idx = add_replica(mc, addr, strlen(addr));
        if (idx < 0) {
            cmn_rpc_result_set_local(res, idx, "%s: %s", addr, lode_strerror(idx));
            return idx;
        }
    }
    int transport = 0;
    return attempt(mc, (size_t)idx, method, flags, req, timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS,
                   res, &transport);
}
