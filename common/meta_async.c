/* Leader-following client of the lode-meta group on a libuv loop (see meta_async.h); the
 * retry policy is the one of the blocking twin, common/meta_client.c:
 *   - LODE_ENOTLEADER naming a leader: go there at once (the address is added to the list
 *     when it is new); when redirects go round the whole list, pause first, since followers
 *     may briefly disagree during an election;
 *   - LODE_ENOTLEADER without a leader, LODE_ENOLEADER, LODE_ESHUTDOWN, LODE_EUNAVAILABLE and
 *     transport failures: wait 50-200 ms, then the next replica;
 *   - anything else is the answer;
 * until the call's deadline. One attempt gets at most half of the time left (but never less
 * than MIN_ATTEMPT_MS), so one unresponsive replica cannot eat the whole deadline.
 *
 * Call states: WAITING (timer armed: first attempt, backoff or redirect) -> IN FLIGHT (an RPC
 * on one replica's client) -> WAITING ... -> DONE (callback fired, exactly once) -> freed once
 * no RPC is in flight and the timer handle has closed. Every attempt starts from the timer,
 * so a callback never runs inside cmn_meta_async_call and retries never recurse.
 *
 * The asynchronous RPC client cannot say whether LODE_ETIMEOUT or LODE_ECLOSED came from the
 * server or from the connection, so both count as transport failures: safe, since every
 * mutation is stamped and meta never answers those codes itself for a finished command.
 */
#include "common/meta_async.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lode/errno.h>

#include "common/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "common/rpc_internal.h"

#define LOG_CTX "meta-client"
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_CONNECT_MS 1000
#define MIN_ATTEMPT_MS 3000
#define MAX_REPLICAS 64
#define BACKOFF_MIN_MS 50
#define BACKOFF_SPREAD_MS 151

struct replica {
    char *addr;
    struct cmn_rpc_client *cli;  /* created on first use */
};

struct mcall {
    struct cmn_meta_async *ma;
    struct mcall *prev, *next;   /* in ma->calls while not done */
    unsigned method;
    unsigned flags;
    ProtobufCMessage *req;       /* the call's own copy (unpacked), or NULL */
    uint32_t timeout_ms;
    uint64_t deadline;           /* monotonic ms */
    size_t idx;                  /* replica of the current / next attempt */
    unsigned redirects;
    int in_flight;               /* an RPC is outstanding: its callback will come */
    int done;                    /* the user callback has run */
    int closing;                 /* timer handle closing: freed in its close callback */
    int last_rc;
    char last[512];
    char tried[1024];
    uv_timer_t timer;
    cmn_meta_async_cb cb;
    void *data;
};

struct cmn_meta_async {
    uv_loop_t *loop;
    struct replica *reps;
    size_t n;
    size_t leader;               /* index to try first */
    int have_leader;             /* reps[leader] answered as leader */
    uint8_t *secret;
    size_t secret_len;
    uint32_t max_frame;
    uint32_t connect_timeout_ms;
    struct cmn_id client_id;
    uint64_t seq;
    struct mcall *calls;         /* not yet done */
    unsigned n_pending;          /* calls not yet done */
    unsigned n_calls;            /* calls not yet freed */
    unsigned n_clients_open;     /* replica clients closing */
    uv_timer_t tick;             /* never started; closing it defers close_cb */
    int tick_open;
    int closing;
    void (*close_cb)(void *data);
    void *close_data;
};

static void attempt(struct mcall *c);

/* ---- replicas ------------------------------------------------------------------------- */

static int find_replica(const struct cmn_meta_async *ma, const char *addr)
{
    for (size_t i = 0; i < ma->n; i++)
        if (strcmp(ma->reps[i].addr, addr) == 0)
            return (int)i;
    return -1;
}

static int add_replica(struct cmn_meta_async *ma, const char *addr, size_t len)
{
    if (ma->n >= MAX_REPLICAS)
        return -E2BIG;
    struct replica *r = realloc(ma->reps, (ma->n + 1) * sizeof(*r));
    if (!r)
        return -ENOMEM;
    ma->reps = r;
    char *a = strndup(addr, len);
    if (!a)
        return -ENOMEM;
    ma->reps[ma->n].addr = a;
    ma->reps[ma->n].cli = NULL;
    return (int)ma->n++;
}

static int replica_client(struct cmn_meta_async *ma, size_t idx, struct cmn_rpc_client **out)
{
    struct replica *r = &ma->reps[idx];
    if (!r->cli) {
        struct cmn_rpc_client_config cc = {
            .address = r->addr,
            .secret = ma->secret,
            .secret_len = ma->secret_len,
            .max_frame = ma->max_frame,
            .connect_timeout_ms = ma->connect_timeout_ms,
        };
        int rc = cmn_rpc_client_create(ma->loop, &cc, &r->cli);
        if (rc) {
            r->cli = NULL;
            return rc;
        }
    }
    *out = r->cli;
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void maybe_finish(struct cmn_meta_async *ma)
{
    if (!ma->closing || ma->tick_open || ma->n_calls || ma->n_clients_open)
        return;
    void (*cb)(void *) = ma->close_cb;
    void *data = ma->close_data;
    for (size_t i = 0; i < ma->n; i++)
        free(ma->reps[i].addr);
    free(ma->reps);
    explicit_bzero(ma->secret, ma->secret_len);
    free(ma->secret);
    free(ma);
    if (cb)
        cb(data);
}

static void destroy_unstarted(struct cmn_meta_async *ma)
{
    for (size_t i = 0; i < ma->n; i++)
        free(ma->reps[i].addr);
    free(ma->reps);
    if (ma->secret) {
        explicit_bzero(ma->secret, ma->secret_len);
        free(ma->secret);
    }
    free(ma);
}

int cmn_meta_async_create(uv_loop_t *loop, const struct cmn_meta_async_config *cfg,
                          struct cmn_meta_async **out, struct cmn_err *err)
{
    if (!loop || !cfg || !out || !cfg->addrs)
        return cmn_err_set(err, -EINVAL, "meta client: loop and replica list are required");
    if (!cfg->secret || !cfg->secret_len)
        return cmn_err_set(err, -EINVAL, "meta client: the cluster secret is required");
    struct cmn_meta_async *ma = calloc(1, sizeof(*ma));
    if (!ma)
        return cmn_err_set(err, -ENOMEM, "meta client: out of memory");
    int rc = 0;
    const char *p = cfg->addrs;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        char one[CMN_RPC_HOST_MAX + 16];
        char host[CMN_RPC_HOST_MAX], port[8];
        if (len >= sizeof(one)) {
            rc = cmn_err_set(err, LODE_ECONFIG, "meta replica list: an entry is too long");
            goto fail;
        }
        snprintf(one, sizeof(one), "%.*s", (int)len, p);
        rc = cmn_rpc_addr_split(one, host, port, err);
        if (rc) {
            cmn_err_wrap(err, "meta replica list '%s'", cfg->addrs);
            goto fail;
        }
        if (find_replica(ma, one) < 0 && (rc = add_replica(ma, p, len)) < 0) {
            cmn_err_set(err, rc, "meta replica list '%s': %s", cfg->addrs, lode_strerror(rc));
            goto fail;
        }
        rc = 0;
        p += len;
    }
    if (ma->n == 0) {
        rc = cmn_err_set(err, LODE_ECONFIG, "meta replica list '%s' names no replica",
                         cfg->addrs);
        goto fail;
    }
    ma->secret = malloc(cfg->secret_len);
    if (!ma->secret) {
        rc = cmn_err_set(err, -ENOMEM, "meta client: out of memory");
        goto fail;
    }
    memcpy(ma->secret, cfg->secret, cfg->secret_len);
    ma->secret_len = cfg->secret_len;
    ma->loop = loop;
    ma->max_frame = cfg->max_frame;
    ma->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
                                                     : DEFAULT_CONNECT_MS;
    ma->client_id = cmn_id_random();
    uv_timer_init(loop, &ma->tick);
    ma->tick.data = ma;
    ma->tick_open = 1;
    *out = ma;
    return 0;
fail:
    destroy_unstarted(ma);
    return rc < 0 ? rc : LODE_ECONFIG;
}

unsigned cmn_meta_async_pending(const struct cmn_meta_async *ma)
{
    return ma->n_pending;
}

const char *cmn_meta_async_leader(const struct cmn_meta_async *ma)
{
    return ma->have_leader && ma->leader < ma->n ? ma->reps[ma->leader].addr : NULL;
}

/* ---- calls ---------------------------------------------------------------------------- */

static void on_call_timer_closed(uv_handle_t *h)
{
    struct mcall *c = h->data;
    struct cmn_meta_async *ma = c->ma;
    if (c->req)
        protobuf_c_message_free_unpacked(c->req, NULL);
    free(c);
    ma->n_calls--;
    maybe_finish(ma);
}

static void maybe_free(struct mcall *c)
{
    if (!c->done || c->in_flight || c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->timer, on_call_timer_closed);
}

static void unlink_call(struct mcall *c)
{
    struct cmn_meta_async *ma = c->ma;
    if (c->prev)
        c->prev->next = c->next;
    else
        ma->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Fires the user callback (exactly once) and lets the call go. */
static void complete(struct mcall *c, const struct cmn_rpc_result *res)
{
    if (c->done)
        return;
    c->done = 1;
    unlink_call(c);
    c->ma->n_pending--;
    uv_timer_stop(&c->timer);
    c->cb(c->data, res);
    maybe_free(c);
}

static void complete_local(struct mcall *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void complete_local(struct mcall *c, int status, const char *fmt, ...)
{
    struct cmn_rpc_result res;
    cmn_rpc_result_init(&res);
    char msg[sizeof(res.message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cmn_rpc_result_set_local(&res, status, "%s", msg);
    complete(c, &res);
    cmn_rpc_result_free(&res);
}

static uint64_t backoff_ms(void)
{
    uint16_t rnd = 0;
    cmn_random_bytes(&rnd, sizeof(rnd));
    return BACKOFF_MIN_MS + rnd % BACKOFF_SPREAD_MS;
}

static void on_timer(uv_timer_t *t)
{
    struct mcall *c = t->data;
    if (!c->done)
        attempt(c);
}

static void schedule(struct mcall *c, uint64_t delay_ms)
{
    uint64_t now = cmn_mono_ms();
    if (now + delay_ms > c->deadline)
        delay_ms = c->deadline > now ? c->deadline - now : 0;
    uv_timer_start(&c->timer, on_timer, delay_ms, 0);
}

static int transport_failure(int status)
{
    switch (status) {
    case LODE_ECLOSED:
    case LODE_ETIMEOUT:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EHOSTUNREACH:
    case -EHOSTDOWN:
    case -ENETUNREACH:
    case -ENETDOWN:
    case -ETIMEDOUT:
    case -EPIPE:
    case -ENOTCONN:
    case -EADDRNOTAVAIL:
    case -EAGAIN:
        return 1;
    default:
        /* Name resolution failures (UV_EAI_*): a replica's name may resolve again. */
        return status <= UV_EAI_ADDRFAMILY && status >= UV_EAI_PROTOCOL;
    }
}

static int server_retry(int status)
{
    return status == LODE_ENOLEADER || status == LODE_ENOTLEADER || status == LODE_ESHUTDOWN ||
           status == LODE_EUNAVAILABLE;
}

int cmn_meta_async_transient(int status)
{
    return transport_failure(status) || server_retry(status);
}

static void append_tried(char *tried, size_t size, const char *addr)
{
    if (strstr(tried, addr))
        return;
    size_t len = strlen(tried);
    snprintf(tried + len, size - len, "%s%s", len ? ", " : "", addr);
}

/* What to do after one attempt ended with `status` (res may be NULL for a local failure
 * to submit; then msg says why). */
static void attempt_done(struct mcall *c, const struct cmn_rpc_result *res, int status,
                         const char *msg)
{
    struct cmn_meta_async *ma = c->ma;
    int transport = transport_failure(status);
    if (!transport && !server_retry(status)) {
        if (res) {
            ma->leader = c->idx;
            ma->have_leader = 1;
            complete(c, res);
        } else {
            const char *name = cmn_rpc_method_name(c->method);
            complete_local(c, status, "%s to %s: %s", name ? name : "call",
                           ma->reps[c->idx].addr, msg);
        }
        return;
    }
    c->last_rc = status;
    snprintf(c->last, sizeof(c->last), "%s", msg);
    ma->have_leader = 0;
    if (res && status == LODE_ENOTLEADER && res->leader_address[0] &&
        strcmp(res->leader_address, ma->reps[c->idx].addr) != 0) {
        int j = find_replica(ma, res->leader_address);
        if (j < 0)
            j = add_replica(ma, res->leader_address, strlen(res->leader_address));
        if (j >= 0) {
            LOG_DEBUG(LOG_CTX, "%s is not the leader; redirected to %s", ma->reps[c->idx].addr,
                      res->leader_address);
            c->idx = (size_t)j;
            ma->leader = c->idx;
            schedule(c, ++c->redirects % ma->n == 0 ? backoff_ms() : 0);
            return;
        }
    }
    c->idx = (c->idx + 1) % ma->n;
    ma->leader = c->idx;
    schedule(c, backoff_ms());
}

static void on_response(void *data, const struct cmn_rpc_result *res)
{
    struct mcall *c = data;
    c->in_flight = 0;
    if (c->done) {               /* completed by close while this RPC was out */
        maybe_free(c);
        return;
    }
    if (c->ma->closing) {
        complete_local(c, LODE_ECLOSED, "meta client closed");
        return;
    }
    attempt_done(c, res, res->status, res->message);
}

static void attempt(struct mcall *c)
{
    struct cmn_meta_async *ma = c->ma;
    uint64_t now = cmn_mono_ms();
    uint64_t left = now < c->deadline ? c->deadline - now : 0;
    if (left == 0) {
        /* Out of time: report the last thing that went wrong, and where we looked. */
        const char *name = cmn_rpc_method_name(c->method);
        complete_local(c, c->last_rc ? c->last_rc : LODE_ETIMEOUT,
                       "%s: no meta leader answered within %u ms (tried %s); last error: %s",
                       name ? name : "call", c->timeout_ms, c->tried[0] ? c->tried : "none",
                       c->last[0] ? c->last : "none");
        return;
    }
    uint64_t per = left / 2 > MIN_ATTEMPT_MS ? left / 2 : MIN_ATTEMPT_MS;
    if (per > left)
        per = left;
    if (c->idx >= ma->n)
        c->idx = 0;
    append_tried(c->tried, sizeof(c->tried), ma->reps[c->idx].addr);
    struct cmn_rpc_client *cli;
    int rc = replica_client(ma, c->idx, &cli);
    if (rc == 0) {
        c->in_flight = 1;
        rc = cmn_rpc_client_call(cli, c->method, c->flags, c->req, (uint32_t)per, on_response,
                                 c);
        if (rc == 0)
            return;          /* on_response may already have run: touch nothing */
        c->in_flight = 0;
    }
    attempt_done(c, NULL, rc, lode_strerror(rc));
}

int cmn_meta_async_call(struct cmn_meta_async *ma, unsigned method, unsigned flags,
                        ProtobufCMessage *req, uint32_t timeout_ms, cmn_meta_async_cb cb,
                        void *data)
{
    if (!ma || !cb)
        return -EINVAL;
    if (ma->closing)
        return LODE_ECLOSED;
    struct mcall *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;

    if (req) {
        /* Stamp (client_id, seq) once, here, so every retry is the same command to the state
         * machine's dedupe table; the caller's message is restored right after packing. */
        Lode__Command *cmd = NULL;
        if (req->descriptor == &lode__command__descriptor &&
            cmn_rpc_method_request(method) == &lode__command__descriptor &&
            ((Lode__Command *)req)->client_id.len == 0) {
            cmd = (Lode__Command *)req;
            cmd->client_id.data = ma->client_id.b;
            cmd->client_id.len = CMN_ID_SIZE;
            cmd->seq = ++ma->seq;
        }
        size_t len = protobuf_c_message_get_packed_size(req);
        uint32_t max = ma->max_frame ? ma->max_frame : CMN_RPC_DEFAULT_MAX_FRAME;
        uint8_t *buf = len > max ? NULL : malloc(len ? len : 1);
        if (buf)
            protobuf_c_message_pack(req, buf);
        if (cmd) {
            cmd->client_id.data = NULL;
            cmd->client_id.len = 0;
            cmd->seq = 0;
        }
        if (!buf) {
            free(c);
            return len > max ? LODE_EFRAMETOOBIG : -ENOMEM;
        }
        /* The call keeps its own copy: the caller's message may be gone by the retry. */
        c->req = protobuf_c_message_unpack(req->descriptor, NULL, len, buf);
        free(buf);
        if (!c->req) {
            free(c);
            return -ENOMEM;
        }
    }
    c->ma = ma;
    c->method = method;
    c->flags = flags;
    c->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
    c->deadline = cmn_mono_ms() + c->timeout_ms;
    c->idx = ma->leader < ma->n ? ma->leader : 0;
    c->cb = cb;
    c->data = data;
    uv_timer_init(ma->loop, &c->timer);
    c->timer.data = c;
    c->next = ma->calls;
    if (ma->calls)
        ma->calls->prev = c;
    ma->calls = c;
    ma->n_pending++;
    ma->n_calls++;
    uv_timer_start(&c->timer, on_timer, 0, 0);
    return 0;
}

/* ---- close ---------------------------------------------------------------------------- */

static void on_client_closed(void *data)
{
    struct cmn_meta_async *ma = data;
    ma->n_clients_open--;
    maybe_finish(ma);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct cmn_meta_async *ma = h->data;
    ma->tick_open = 0;
    maybe_finish(ma);
}

void cmn_meta_async_close(struct cmn_meta_async *ma, void (*cb)(void *data), void *data)
{
    if (!ma || ma->closing)
        return;
    ma->closing = 1;
    ma->close_cb = cb;
    ma->close_data = data;
    /* Calls first (new submissions from their callbacks are refused), then the clients: an
     * RPC still out on one of them completes into an already finished call and is dropped. */
    while (ma->calls)
        complete_local(ma->calls, LODE_ECLOSED, "call abandoned: meta client closed");
    for (size_t i = 0; i < ma->n; i++) {
        if (!ma->reps[i].cli)
            continue;
        struct cmn_rpc_client *cli = ma->reps[i].cli;
        ma->reps[i].cli = NULL;
        ma->n_clients_open++;
        cmn_rpc_client_close(cli, on_client_closed, ma);
    }
    uv_close((uv_handle_t *)&ma->tick, on_tick_closed);
}
