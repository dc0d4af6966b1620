/* Driving a libuv loop from a test's own thread, as a gateway worker's loop would run:
 *
 *   atomic_int done = 0;
 *   gw_cluster_stop(cl, tl_loop_done_flag, &done);
 *   ok(tl_loop_run_until(&loop, &done, 5000), "stopped within 5 s");
 *
 * Single-threaded: call from the thread that runs the loop.
 */
#ifndef LODE_TESTS_LIB_LOOP_H
#define LODE_TESTS_LIB_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

/* Runs loop until *flag becomes non-zero or limit_ms pass; a ticking timer keeps UV_RUN_ONCE
 * from blocking forever (it is closed again before returning). Returns whether the flag was
 * set. */
bool tl_loop_run_until(uv_loop_t *loop, const atomic_int *flag, uint64_t limit_ms);

/* Runs loop for ms milliseconds, whatever happens on it. */
void tl_loop_run_for(uv_loop_t *loop, uint64_t ms);

/* A completion callback (the void (*)(void *data) shape of the gateway's close and stop
 * callbacks): adds 1 to the atomic_int that data points to. */
void tl_loop_done_flag(void *data);

#endif
