/* Adaptive concurrency limit of one route, gradient algorithm as in Envoy's adaptive concurrency
 * filter and Netflix's concurrency-limits: the minimum latency (min RTT) is measured with the
 * limit held low, then every sample window the limit follows
 *     gradient = clamp((minRTT + buffer) / sampleRTT, 0.5, 2),
 *     limit' = limit * gradient + sqrt(limit * gradient)        (queue allowance)
 * smoothed, clamped to [min, max]. When the upstream's latency rises above its minimum (a queue
 * forms in front of a database) the limit falls and the excess is refused at once. Shared by the
 * loop threads through atomics; the window update is done by whichever thread wins a CAS on the
 * window's deadline. Time is passed in. */
#ifndef AG_GATEWAY_ADAPTIVE_H
#define AG_GATEWAY_ADAPTIVE_H

#include <stdbool.h>
#include <stdint.h>

struct gw_route;

struct adaptive_conf {
    int64_t min_limit;
    int64_t max_limit;
    int64_t initial_limit;
    uint64_t window_ms;           /* samples are averaged over this */
    uint64_t min_rtt_interval_ms; /* re-measure the minimum this often */
    unsigned min_rtt_samples;     /* samples at the held limit that make one minimum */
    double smoothing;             /* weight of the new limit (0..1] */
    double buffer;                /* tolerated latency above the minimum, as a fraction of it */
};

struct adaptive;

/* The conf of route <gr> (its limit.adaptive_* keys) with the fixed parameters filled in. */
void adaptive_conf_from_route(const struct gw_route *gr, struct adaptive_conf *out);
/* Creates a limiter; the first min RTT measurement starts at <now_ms>. */
struct adaptive *adaptive_create(const struct adaptive_conf *conf, uint64_t now_ms);
void adaptive_destroy(struct adaptive *a);

/* Takes a slot: true when in-flight requests are below the limit (the slot is held until
 * adaptive_release), false to shed. */
bool adaptive_acquire(struct adaptive *a);
/* Gives the slot back at <now_ms>; when <sample>, <rtt_us> is a latency sample. Returns true when
 * this call moved the limit (a window ended). */
bool adaptive_release(struct adaptive *a, uint64_t now_ms, uint64_t rtt_us, bool sample);

int64_t adaptive_limit(const struct adaptive *a);
int64_t adaptive_inflight(const struct adaptive *a);
/* Current minimum latency (0 until measured) and whether a measurement is running. */
uint64_t adaptive_min_rtt_us(const struct adaptive *a);
bool adaptive_measuring(const struct adaptive *a);

#endif
