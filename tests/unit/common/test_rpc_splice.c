/* Reply payloads moved into a pipe with splice(2) by the asynchronous RPC client
 * (cmn_rpc_client_call_splice), over loopback TCP.
 *
 * A server thread answers method M_SIZED with a payload of the length the request's body
 * names (a deterministic pattern seeded by the length), so the test can mix small and large
 * replies on one connection. The client side checks, for each reply, that the pipe holds
 * exactly res->spliced leading bytes and dest holds the rest at the right offsets: with a
 * pipe large enough for the payload (everything spliced), with a small pipe (spliced up to
 * its capacity, the rest read), with many calls pipelined on one connection, and with a
 * payload larger than dest (buffered, nothing spliced).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lode/errno.h>

#include "common/log.h"
#include "common/rpc.h"
#include "node.pb-c.h"
#include "tests/tap.h"

#define SECRET "splice-test-secret-0123456789ab"
#define SECRET_LEN (sizeof(SECRET) - 1)
#define MAX_FRAME (5u << 20)
#define M_SIZED CMN_RPC_CHUNK_GET     /* replies with as many payload bytes as asked */

static struct {
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t stop;
    sem_t ready;
    struct cmn_rpc_server *srv;
    int port;
} S;

static uint8_t pat(size_t len, size_t i)
{
    uint64_t x = (uint64_t)len * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;
    return (uint8_t)((x >> 29) ^ (x >> 47));
}

static void release(void *arg)
{
    free(arg);
}

static void handler(void *data, struct cmn_rpc_call *call)
{
    (void)data;
    size_t blen;
    const uint8_t *body = cmn_rpc_call_body(call, &blen);
    Lode__ChunkGetRequest *q = lode__chunk_get_request__unpack(NULL, blen, body);
    if (!q) {
        cmn_rpc_reply_error(call, LODE_EBADMSG, NULL, 0, "bad request");
        return;
    }
    size_t len = (size_t)q->length;
    lode__chunk_get_request__free_unpacked(q, NULL);
    uint8_t *p = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        p[i] = pat(len, i);
    cmn_rpc_reply_payload(call, NULL, p, len, release, p);
}

static void on_stop(uv_async_t *a)
{
    (void)a;
    cmn_rpc_server_close(S.srv, NULL, NULL);
    uv_close((uv_handle_t *)&S.stop, NULL);
}

static void *server_main(void *arg)
{
    (void)arg;
    uv_loop_init(&S.loop);
    uv_async_init(&S.loop, &S.stop, on_stop);
    struct cmn_rpc_server_config cfg = {.service = "splice-test", .secret = SECRET,
                                        .secret_len = SECRET_LEN, .max_frame = MAX_FRAME,
                                        .handler = handler};
    struct cmn_err err;
    if (cmn_rpc_server_create(&S.loop, &cfg, &S.srv) != 0 ||
        cmn_rpc_server_listen(S.srv, "127.0.0.1:0", &err) != 0)
        tap_bail("server start failed");
    S.port = cmn_rpc_server_port(S.srv);
    sem_post(&S.ready);
    uv_run(&S.loop, UV_RUN_DEFAULT);
    uv_loop_close(&S.loop);
    return NULL;
}

struct scall {
    size_t len, cap;
    int pipe[2];
    uint8_t *dest;
    int calls, status;
    size_t spliced, got_len;
    int placed;
};

static void on_reply(void *data, const struct cmn_rpc_result *res)
{
    struct scall *c = data;
    c->calls++;
    c->status = res->status;
    c->spliced = res->spliced;
    c->got_len = res->payload.len;
    c->placed = res->payload.data == c->dest;
}

/* The pipe's bytes followed by dest's tail are the pattern, and the pipe is then empty. */
static int verify(struct scall *c)
{
    uint8_t *tmp = malloc(c->spliced ? c->spliced : 1);
    size_t got = 0;
    while (got < c->spliced) {
        ssize_t n = read(c->pipe[0], tmp + got, c->spliced - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    int good = got == c->spliced;
    for (size_t i = 0; good && i < c->spliced; i++)
        good = tmp[i] == pat(c->len, i);
    for (size_t i = c->spliced; good && i < c->len; i++)
        good = c->dest[i] == pat(c->len, i);
    uint8_t extra;
    good &= read(c->pipe[0], &extra, 1) < 0 && errno == EAGAIN;
    free(tmp);
    return good;
}

static int open_pipe(int fd[2], int size)
{
    if (pipe2(fd, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    if (size)
        fcntl(fd[1], F_SETPIPE_SZ, size);
    return fcntl(fd[1], F_GETPIPE_SZ);
}

static int submit(struct cmn_rpc_client *cli, struct scall *c)
{
    Lode__ChunkGetRequest q = LODE__CHUNK_GET_REQUEST__INIT;
    q.length = c->len;
    return cmn_rpc_client_call_splice(cli, M_SIZED, 0, &q.base, c->pipe[1], c->dest, c->cap,
                                      10000, on_reply, c);
}

static void run_until(uv_loop_t *loop, struct scall *cs, int n)
{
    for (;;) {
        int done = 0;
        for (int i = 0; i < n; i++)
            done += cs[i].calls;
        if (done >= n)
            return;
        uv_run(loop, UV_RUN_ONCE);
    }
}

static void on_closed(void *data)
{
    *(int *)data = 1;
}

static struct cmn_rpc_client *client(uv_loop_t *loop, const char *addr)
{
    struct cmn_rpc_client_config cfg = {.address = addr, .secret = SECRET,
                                        .secret_len = SECRET_LEN, .max_frame = MAX_FRAME};
    struct cmn_rpc_client *cli = NULL;
    if (cmn_rpc_client_create(loop, &cfg, &cli) != 0)
        tap_bail("client create");
    return cli;
}

static void test_splice(const char *addr)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cmn_rpc_client *cli = client(&loop, addr);
    /* Sizes around the pipe's capacity, a tiny one, and big ones that overflow it. */
    static const size_t lens[] = {1, 4096, 200000, 65536, 1u << 20, 3u << 20, 777777, 12345};
    enum { N = sizeof(lens) / sizeof(lens[0]) };
    struct scall cs[N];
    int submitted = 1, small_pipe = 0;
    for (int i = 0; i < N; i++) {
        memset(&cs[i], 0, sizeof(cs[i]));
        cs[i].len = cs[i].cap = lens[i];
        cs[i].dest = malloc(lens[i]);
        memset(cs[i].dest, 0xee, lens[i]);
        int cap = open_pipe(cs[i].pipe, i % 2 ? 1 << 20 : 0);
        if (cap < 0)
            tap_bail("pipe");
        small_pipe |= (size_t)cap < lens[i];
        submitted &= submit(cli, &cs[i]) == 0;
    }
    ok(submitted, "%d splice calls submitted together on one connection", N);
    run_until(&loop, cs, N);
    int all_ok = 1, all_good = 1, some_spliced = 0, some_read = 0;
    for (int i = 0; i < N; i++) {
        all_ok &= cs[i].calls == 1 && cs[i].status == 0 && cs[i].got_len == cs[i].len &&
                  cs[i].placed && cs[i].spliced <= cs[i].len;
        all_good &= verify(&cs[i]);
        some_spliced |= cs[i].spliced > 0;
        some_read |= cs[i].spliced < cs[i].len;
    }
    ok(all_ok, "every call answered once, with the payload's length and dest as its data");
    ok(all_good, "pipe bytes then dest's tail are exactly the payload, each pipe then empty");
    ok(some_spliced, "payload bytes went through the pipes");
    ok(!small_pipe || some_read, "a payload larger than its pipe was finished with reads");

    /* Larger than dest: buffered as for call_into, nothing spliced, dest untouched. */
    struct scall big = {.len = 100000, .cap = 99999};
    big.dest = malloc(big.len);
    memset(big.dest, 0xee, big.len);
    open_pipe(big.pipe, 0);
    ok(submit(cli, &big) == 0, "a call whose dest is a byte short submitted");
    run_until(&loop, &big, 1);
    int untouched = 1;
    for (size_t i = 0; i < big.len; i++)
        untouched &= big.dest[i] == 0xee;
    uint8_t b;
    ok(big.calls == 1 && big.status == 0 && big.spliced == 0 && !big.placed &&
           big.got_len == big.len && untouched && read(big.pipe[0], &b, 1) < 0,
       "its payload was buffered: nothing in the pipe, dest untouched");

    Lode__ChunkGetRequest q = LODE__CHUNK_GET_REQUEST__INIT;
    is_int(cmn_rpc_client_call_splice(cli, M_SIZED, 0, &q.base, -1, big.dest, big.cap, 1000,
                                      on_reply, &big),
           -EINVAL, "no pipe: refused");
    is_int(cmn_rpc_client_call_splice(cli, M_SIZED, 0, &q.base, big.pipe[1], big.dest, 0, 1000,
                                      on_reply, &big),
           -EINVAL, "no destination: refused");
    int closed = 0;
    cmn_rpc_client_close(cli, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(closed, "client closed");
    is_int(uv_loop_close(&loop), 0, "client loop clean");
    for (int i = 0; i < N; i++) {
        free(cs[i].dest);
        close(cs[i].pipe[0]);
        close(cs[i].pipe[1]);
    }
    free(big.dest);
    close(big.pipe[0]);
    close(big.pipe[1]);
}

int main(void)
{
    alarm(60);
    cmn_log_init("test_rpc_splice", CMN_LOG_ERROR);
    sem_init(&S.ready, 0, 0);
    pthread_create(&S.thread, NULL, server_main, NULL);
    sem_wait(&S.ready);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", S.port);
    test_splice(addr);
    uv_async_send(&S.stop);
    pthread_join(S.thread, NULL);
    sem_destroy(&S.ready);
    return tap_done();
}
