/* Test servers for the RPC tests (test_rpc: blocking clients and hostile input;
 * test_rpc_async: the asynchronous client).
 *
 * One handler (rf_handler) serves a handful of methods with behaviours the tests need:
 * echo, a fixed error with a leader hint, delayed replies, replies held until the test
 * releases them, flag reporting and an idempotent-mutation check. A server with
 * redirect_to set answers everything with ENOTLEADER naming that address instead.
 *
 * Threading: an rf_srv belongs to the loop it was started on; only that loop's thread may
 * touch it (held calls included). rf_thread runs three servers on a loop of its own thread:
 * A (the test handler, with metrics), R (redirects everything to A) and idle (closes
 * connections idle for 100 ms). The fixture never emits TAP points: failures to set up
 * bail out, everything else is for the test to assert.
 */
#ifndef LODE_TESTS_UNIT_COMMON_RPC_FIXTURE_H
#define LODE_TESTS_UNIT_COMMON_RPC_FIXTURE_H

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <uv.h>

#include "common/metrics.h"
#include "common/rpc.h"

#define RF_SECRET "test-cluster-secret-0123456789"
#define RF_SECRET_LEN (sizeof(RF_SECRET) - 1)

/* What rf_handler does with each method (any other method gets LODE_EINTERNAL). */
#define ECHO_METHOD CMN_RPC_BUCKET_HEAD        /* body and payload sent back as they came */
#define ERROR_METHOD CMN_RPC_OBJECT_GET        /* ENOTLEADER, leader 127.0.0.1:4242 id 7 */
#define DELAY_METHOD CMN_RPC_BUCKET_LIST       /* echo after BucketListRequest.owner ms */
#define HOLD_METHOD CMN_RPC_CLUSTER_MAP_GET    /* kept on rf_srv.held until released */
#define FLAGS_METHOD CMN_RPC_META_STATUS       /* MetaStatusResponse.role "stale" or "leader" */
#define PUT_METHOD CMN_RPC_OBJECT_PUT          /* Command: reports whether a retry kept its
                                                  (client_id, seq) */

struct rf_held {
    struct cmn_rpc_call *call;
    struct rf_held *next;
};

struct rf_delayed;

struct rf_srv {
    uv_loop_t *loop;
    struct cmn_rpc_server *srv;
    char addr[64];               /* "127.0.0.1:port" once listening */
    const char *redirect_to;     /* answer everything with ENOTLEADER naming this */
    struct rf_held *held;        /* newest first */
    unsigned n_held;
    struct rf_delayed *delayed;
    int put_fail_first;          /* fail this many PUT_METHOD attempts with ENOLEADER */
    int put_seen;
    uint8_t put_cid[16];
    uint64_t put_seq;
};

/* The request handler; `data` is the struct rf_srv. For servers a test configures itself. */
void rf_handler(void *data, struct cmn_rpc_call *call);

/* Creates a server with rf_handler on `loop` and listens on `addr` ("127.0.0.1:0" for a
 * free port); sc must be zeroed (or configured: redirect_to, put_fail_first) beforehand.
 * idle_ms 0 = no idle timeout; metrics may be NULL. Returns 0 or the create/listen error
 * (logged as a TAP diagnostic); on a listen failure the server still exists and must be
 * closed with cmn_rpc_server_close. */
int rf_server_start(struct rf_srv *sc, uv_loop_t *loop, const char *addr,
                    uint32_t handshake_ms, uint32_t idle_ms, struct cmn_metrics *metrics);

/* Replies LODE_EINTERNAL to every held call (which frees it) and returns how many of them
 * were orphaned. *all_closed (may be NULL) is set to whether every reply returned
 * LODE_ECLOSED. */
unsigned rf_release_held(struct rf_srv *sc, int *all_closed);

/* Answers every delayed call now (empty body) and frees its timer on a later iteration. */
void rf_release_delayed(struct rf_srv *sc);

struct rf_thread {
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t stop;
    sem_t ready;
    int start_rc;
    int loop_close_rc;
    struct cmn_metrics *metrics; /* server A's lode_rpc_* counters */
    struct rf_srv a, r, idle;
};

/* Starts the thread and waits until A, R and idle listen; bails out if they cannot.
 * st is initialised here (no need to zero it). */
void rf_thread_start(struct rf_thread *st);

/* Releases what A still holds, closes the servers, joins the thread and returns
 * uv_loop_close's result (0 = no handle left behind). st->metrics stays valid until
 * rf_thread_destroy. */
int rf_thread_stop(struct rf_thread *st);
void rf_thread_destroy(struct rf_thread *st);

/* Connects with the blocking client and PINGs: 1 if that worked, 0 (with a diagnostic
 * naming `what`) if not. Used to show a server survived whatever came before. */
int rf_ping_ok(const char *addr, const char *what);

/* The process log, sent to a file in a fresh directory under $TEST_TMPDIR (or /tmp) so that
 * tests can check what was logged (and what never is). */
struct rf_log {
    char dir[512];
    char path[600];
};

/* Initialises logging as `prog` and redirects it to the file; bails out on failure. */
void rf_log_start(struct rf_log *l, const char *prog);
/* Stops writing to the file (the file stays for rf_log_contains). */
void rf_log_stop(struct rf_log *l);
/* 1 if a line of the file contains `needle`. */
int rf_log_contains(const struct rf_log *l, const char *needle);
/* Removes the file and the directory. */
void rf_log_remove(struct rf_log *l);

#endif
