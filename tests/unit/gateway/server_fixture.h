/* Fixture for tests/unit/gateway/test_server.c: a handler for gateway/server.h whose
 * behaviour the request path selects, and a small blocking HTTP client.
 *
 * Handler paths (the query carries parameters):
 *   /echo         reads the body; answers "q=<query> n=<bytes> h=<FNV-1a 64 of the body>"
 *   /slow         the same, taking at most 128 KiB of body per millisecond (backpressure)
 *   /download?n=  streams n bytes of the pattern (byte k is k % 251), two 256 KiB writes
 *                 in flight at most; HEAD answers with the length only
 *   /splice?n=    the same, every other piece written into a pipe and sent from there
 *                 (gw_req_write_pipe); with end=1 (n up to 4 pieces) every piece is queued
 *                 at once and the request finished before any write completes
 *   /chunked      a chunked response "hello chunked world" in three writes
 *   /short        promises 100 bytes, writes 10, finishes
 *   /hold         never answers; /hold-body reads the body and never answers
 *   /delay?ms=    answers "delayed" after ms
 *   /auth?ok=&ms= after ms, reads the body (ok=1, so "100 Continue" goes out) or answers 403
 * Every answer carries x-amz-request-id. A failed body is answered with its S3 status and
 * "<Code>: <message>"; a bad request with its status and "<Code>". worker_start fails on
 * worker 1 when handler_data is (void *)1.
 *
 * The counters are updated by the server's worker threads and read by the test thread.
 */
#ifndef LODE_TESTS_UNIT_GATEWAY_SERVER_FIXTURE_H
#define LODE_TESTS_UNIT_GATEWAY_SERVER_FIXTURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "gateway/server.h"

struct sf_counters {
    atomic_int n_cancel, n_requests, n_bad, n_bad_with_head, n_worker_start, n_worker_stop;
    atomic_int n_body_err, last_body_err, short_rc;
    atomic_uint_fast64_t slow_consumed, hold_got;
};
extern struct sf_counters sf;

extern const char *const sf_code_name[GW_S3_ERROR_COUNT];
extern const int sf_code_status[GW_S3_ERROR_COUNT];
extern const struct gw_handler sf_handler;

#define FNV_INIT 0xcbf29ce484222325ull
uint64_t sf_fnv_add(uint64_t h, const uint8_t *p, size_t n);

/* Download bodies are this pattern: byte at offset k is k % 251. */
#define PIECE (256u << 10)
extern uint8_t sf_pattern[PIECE + 251];
void sf_init(void);

/* Creates and starts a server on 127.0.0.1:0 with sf_handler (bails out on failure). */
struct gw_server *sf_start_server(struct gw_server_opts *o);
double sf_now_s(void);
void sf_sleep_ms(int ms);

#define CLI_BUF (64u << 10)

struct cli {
    int fd;
    size_t len;
    char buf[CLI_BUF];             /* received, not yet consumed */
};

/* Connects (10 s send and receive timeouts; sndbuf: SO_SNDBUF unless 0). */
struct cli *sf_cli_open(int port, int sndbuf);
void sf_cli_close(struct cli *c);
bool sf_send_all(struct cli *c, const void *p, size_t n);
bool sf_send_str(struct cli *c, const char *s);
/* True when the server closed the connection (EOF or reset) within ms. */
bool sf_sees_close(struct cli *c, int ms);

struct resp {
    int status;
    char head[8192];
    bool chunked, close;
    long long cl;
    struct cmn_buf body;           /* the caller frees it */
};

/* A header's value (static buffer) or NULL. */
const char *sf_hdr(const struct resp *r, const char *name);
/* Reads one response. body_mode: 0 read the body, 1 none (HEAD), 2 leave it in the socket.
 * Returns 0, -1 on EOF before any byte, -2 on a broken response or timeout. */
int sf_read_resp(struct cli *c, struct resp *r, int body_mode);

#endif
