/* Fixture for the tcp data plane tests over loopback (test_dp_tcp: sessions, refusals,
 * sources that fail; test_dp_fence: the fence, tags, staged windows, backpressure).
 *
 * Data servers (common/dp_server.c) run on one loop thread of the fixture's own, with a fake
 * wall clock the test moves (df_set_now); every df_ call that touches a server runs its work
 * on that thread and waits for it. liblode's receiver (client/dp_recv.c) runs in the test's
 * process as the application would use it, and raw sockets stand in for clients and sources
 * that misbehave.
 *
 * The fixture never emits TAP points: failures to set up bail out (tap_bail), everything
 * else is for the test to assert. Start the loop first (df_loop_start) and stop it last.
 */
#ifndef LODE_TESTS_UNIT_COMMON_DP_FIXTURE_H
#define LODE_TESTS_UNIT_COMMON_DP_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/dp_recv.h"
#include "common/dp_proto.h"
#include "common/dp_server.h"

#define DF_SECRET "dataplane-test-secret"
#define DF_SECRET_LEN (sizeof DF_SECRET - 1)
#define DF_KEY "AKIDTESTKEY"
#define DF_MIB (1024u * 1024)
#define DF_NOW0 1800000000000ull /* the servers' fake wall clock starts here */

/* Starts the server loop thread; the clock reads DF_NOW0. */
void df_loop_start(void);
/* Stops and joins it; returns uv_loop_close's result (0: no handle was left behind). */
int df_loop_stop(void);
/* Sets the servers' wall clock (ms since the epoch). */
void df_set_now(uint64_t now_ms);

/* A data server listening on 127.0.0.1 (a free port, in *port), with the fixture's secret
 * and clock, a 50 ms expiry sweep, and the limits given (0 = the server's default). */
struct cmn_dp_server *df_server_new(uint64_t source_id, uint64_t max_queued,
                                    uint32_t max_sessions, uint32_t hello_timeout_ms,
                                    uint32_t max_handshakes, int *port);
/* Closes a server and waits (10 s at most) until its memory is released; true once it is. */
bool df_server_close(struct cmn_dp_server *srv);
struct cmn_dp_server_stats df_server_stats(struct cmn_dp_server *srv);
void df_server_set_source_id(struct cmn_dp_server *srv, uint64_t id);

/* One cmn_dp_push: the arguments in its order. */
struct df_piece {
    struct cmn_dp_server *srv;
    const uint8_t *sid;
    const char *key;
    uint64_t base;
    uint32_t tag;
    uint64_t addr;
    const void *src;
    size_t len;
};

/* Submits n pieces on the server thread, in order; returns the first submission error (0:
 * all taken). Completions are counted until df_push_counts reads them. */
int df_push(const struct df_piece *p, size_t n);
/* Waits until every push taken has completed; false after `seconds`. */
bool df_pushes_drain(int seconds);
/* Completions since the last call (successful, failed), and resets both counts. */
void df_push_counts(uint64_t *ok_count, uint64_t *failed);
/* The status the latest completed push reported. */
int df_last_push_status(void);

/* A deterministic pseudo-random stream (xorshift; the same sequence every run). */
uint64_t df_rng(void);
void df_fill_random(uint8_t *p, size_t n);

/* A credential with sid bytes sid_tag * 16 + i, DF_KEY, signed with the fixture's secret;
 * forge flips a bit of its MAC. */
struct cmn_dp_cred df_cred_make(uint8_t sid_tag, uint64_t expires, bool forge);
/* A receiver holding `c` (3 s connect timeout); bails out on failure. */
struct lc_dp_recv *df_recv_new(const struct cmn_dp_cred *c);
/* lc_dp_recv_add_source for 127.0.0.1:port. */
int df_add(struct lc_dp_recv *r, uint64_t id, int port);

bool df_all_equal(const uint8_t *p, size_t n, uint8_t v);
void df_sleep_ms(unsigned ms);
/* Polls the receiver's stats until pred(stats, arg) holds; false after 5 s. */
bool df_wait_stats(struct lc_dp_recv *r,
                   bool (*pred)(const struct lc_dp_recv_stats *, uint64_t), uint64_t arg);
/* A df_wait_stats predicate: at least `n` frames dropped. */
bool df_dropped_at_least(const struct lc_dp_recv_stats *st, uint64_t n);

/* Raw sockets (blocking; bail out when the socket cannot be made). */
int df_raw_connect(int port);
/* A listener on 127.0.0.1 (port in *port). */
int df_raw_listen(int *port);
/* Reads exactly n bytes (5 s timeout). Returns n, or how many came before EOF/error. */
size_t df_read_full(int fd, void *buf, size_t n);
bool df_write_full(int fd, const void *buf, size_t n);
/* True when the peer closes within ms (EOF or reset), ignoring data. */
bool df_peer_closes_within(int fd, int ms);
bool df_peer_closes(int fd);
/* Accepts the receiver's connection on listener lfd, reads its HELLO and answers HELLO_OK
 * as source_id. Returns the connection; bails out when no HELLO comes. */
int df_raw_source_accept(int lfd, uint64_t source_id);
/* Writes a DATA frame (header with the right CRC, then len bytes of `fill`) to fd. */
bool df_raw_frame(int fd, uint64_t base, uint32_t tag, uint64_t addr, uint32_t len,
                  uint8_t fill);

#endif
