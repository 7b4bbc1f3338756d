/* Monotonic and wall clock helpers. Monotonic time is what every timeout, timer and latency
 * measurement uses; wall time is only for logs and HTTP dates. */
#ifndef AG_CORE_CLOCK_H
#define AG_CORE_CLOCK_H

#include <stdint.h>

/* Monotonic time (CLOCK_MONOTONIC) in nanoseconds, microseconds, milliseconds. */
uint64_t clock_now_ns(void);
uint64_t clock_now_us(void);
uint64_t clock_now_ms(void);

/* Wall-clock time (CLOCK_REALTIME) in milliseconds and seconds since the epoch. */
uint64_t clock_wall_ms(void);
int64_t clock_wall_s(void);

#endif
