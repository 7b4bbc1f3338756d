/* Monotonic and wall clock helpers (clock_gettime; vDSO, so no system call on x86_64). */
#include "core/clock.h"

#include <time.h>

static uint64_t clock__read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t clock_now_ns(void) { return clock__read_ns(CLOCK_MONOTONIC); }
uint64_t clock_now_us(void) { return clock__read_ns(CLOCK_MONOTONIC) / 1000u; }
uint64_t clock_now_ms(void) { return clock__read_ns(CLOCK_MONOTONIC) / 1000000u; }
uint64_t clock_wall_ms(void) { return clock__read_ns(CLOCK_REALTIME) / 1000000u; }
int64_t clock_wall_s(void) { return (int64_t)(clock__read_ns(CLOCK_REALTIME) / 1000000000u); }
