/* Driving a libuv loop from a test (see loop.h). */
#include "tests/lib/loop.h"

#include "common/clock.h"

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

bool tl_loop_run_until(uv_loop_t *loop, const atomic_int *flag, uint64_t limit_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uint64_t end = cmn_mono_ms() + limit_ms;
    while (!atomic_load(flag) && cmn_mono_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return atomic_load(flag) != 0;
}

void tl_loop_run_for(uv_loop_t *loop, uint64_t ms)
{
    atomic_int never = 0;
    tl_loop_run_until(loop, &never, ms);
}

void tl_loop_done_flag(void *data)
{
    atomic_fetch_add((atomic_int *)data, 1);
}
