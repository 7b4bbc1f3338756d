/* Adaptive concurrency limit (see adaptive.h). The request path touches two atomics (in-flight
 * count, and the sample sums on release); the limit is recomputed once per window by the thread
 * that wins the CAS on the window's deadline, so no thread ever waits for another. */
#include "gateway/adaptive.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/xmalloc.h"
#include "gateway/gwconf.h"

struct adaptive {
    struct adaptive_conf conf;
    _Atomic int64_t inflight;
    _Atomic int64_t limit;
    _Atomic uint64_t sum_us; // samples of the current window
    _Atomic uint64_t count;
    _Atomic uint64_t window_end_ms; // the CAS that elects the updater
    _Atomic uint64_t min_rtt_us;    // 0: not measured yet
    _Atomic bool measuring;         // limit held at min while the minimum is measured
    uint64_t next_measure_ms;       // written by the updater only
    uint64_t m_sum, m_count;        // measurement samples (updater only)
    double est;                     // smoothed limit (updater only)
    int64_t saved;                  // limit before a re-measurement (updater only)
};

void adaptive_conf_from_route(const struct gw_route *gr, struct adaptive_conf *out)
{
    out->min_limit = gr->limit.adaptive_min;
    out->max_limit = gr->limit.adaptive_max;
    out->initial_limit = gr->limit.adaptive_initial;
    out->window_ms = gr->limit.adaptive_window_ms;
    out->min_rtt_interval_ms = gr->limit.min_rtt_interval_ms;
    out->min_rtt_samples = 20;
    out->smoothing = 0.5;
    /* 10% over the minimum counts as "no queue" (Envoy's jitter buffer); more makes the limit
     * settle higher above the upstream's real capacity */
    out->buffer = 0.1;
}

struct adaptive *adaptive_create(const struct adaptive_conf *conf, uint64_t now_ms)
{
    struct adaptive *a = xcalloc(1, sizeof(*a));
    a->conf = *conf;
    if (a->conf.min_limit < 1)
        a->conf.min_limit = 1;
    if (a->conf.max_limit < a->conf.min_limit)
        a->conf.max_limit = a->conf.min_limit;
    if (a->conf.initial_limit < a->conf.min_limit)
        a->conf.initial_limit = a->conf.min_limit;
    if (a->conf.initial_limit > a->conf.max_limit)
        a->conf.initial_limit = a->conf.max_limit;
    if (a->conf.window_ms == 0)
        a->conf.window_ms = 1;
    if (a->conf.min_rtt_samples == 0)
        a->conf.min_rtt_samples = 1;
    if (a->conf.smoothing <= 0 || a->conf.smoothing > 1)
        a->conf.smoothing = 1;
    /* start by measuring the minimum: the limit is held low so the samples see no queue */
    a->saved = a->conf.initial_limit;
    a->est = (double)a->conf.initial_limit;
    atomic_init(&a->limit, a->conf.min_limit);
    atomic_init(&a->measuring, true);
    atomic_init(&a->window_end_ms, now_ms + a->conf.window_ms);
    a->next_measure_ms = now_ms + a->conf.min_rtt_interval_ms;
    return a;
}

void adaptive_destroy(struct adaptive *a)
{
    free(a);
}

bool adaptive_acquire(struct adaptive *a)
{
    int64_t n = atomic_fetch_add_explicit(&a->inflight, 1, memory_order_relaxed);
    if (n >= atomic_load_explicit(&a->limit, memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&a->inflight, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

static int64_t adaptive__clamp(const struct adaptive *a, double v)
{
    if (v < (double)a->conf.min_limit)
        return a->conf.min_limit;
    if (v > (double)a->conf.max_limit)
        return a->conf.max_limit;
    return (int64_t)v;
}

/* The window ended: the elected thread moves the limit. */
static void adaptive__update(struct adaptive *a, uint64_t now_ms)
{
    uint64_t sum = atomic_exchange(&a->sum_us, 0);
    uint64_t cnt = atomic_exchange(&a->count, 0);
    if (atomic_load(&a->measuring)) {
        a->m_sum += sum;
        a->m_count += cnt;
        if (a->m_count < a->conf.min_rtt_samples)
            return; // keep holding the limit low
        uint64_t m = a->m_sum / a->m_count;
        atomic_store(&a->min_rtt_us, m ? m : 1);
        a->m_sum = a->m_count = 0;
        a->next_measure_ms = now_ms + a->conf.min_rtt_interval_ms;
        /* resume from where the limit was: a measurement must not throw away what was learnt */
        a->est = (double)a->saved;
        atomic_store(&a->limit, adaptive__clamp(a, a->est));
        atomic_store(&a->measuring, false);
        return;
    }
    if (now_ms >= a->next_measure_ms) {
        a->saved = atomic_load(&a->limit);
        atomic_store(&a->measuring, true);
        atomic_store(&a->limit, a->conf.min_limit);
        return;
    }
    if (cnt == 0)
        return;
    double sample = (double)sum / (double)cnt;
    double min_rtt = (double)atomic_load(&a->min_rtt_us);
    if (sample < min_rtt) {
        /* the first measurement was unlucky: a lower latency is the better minimum */
        min_rtt = sample > 0 ? sample : 1;
        atomic_store(&a->min_rtt_us, (uint64_t)min_rtt);
    }
    double gradient = (min_rtt * (1.0 + a->conf.buffer)) / (sample > 0 ? sample : 1);
    if (gradient < 0.5)
        gradient = 0.5;
    if (gradient > 2.0)
        gradient = 2.0;
    double cur = (double)atomic_load(&a->limit);
    double next = cur * gradient;
    /* queue allowance: room to discover that more is possible. Half the square root: at the
     * fixed point limit = capacity × (1 + buffer) + allowance, so a full sqrt would keep a queue
     * of ~3 in front of a pool of 10 */
    next += sqrt(next) / 2;
    a->est = (1.0 - a->conf.smoothing) * a->est + a->conf.smoothing * next;
    a->est = (double)adaptive__clamp(a, a->est);
    atomic_store(&a->limit, adaptive__clamp(a, a->est));
}

bool adaptive_release(struct adaptive *a, uint64_t now_ms, uint64_t rtt_us, bool sample)
{
    atomic_fetch_sub_explicit(&a->inflight, 1, memory_order_relaxed);
    if (sample) {
        atomic_fetch_add_explicit(&a->sum_us, rtt_us, memory_order_relaxed);
        atomic_fetch_add_explicit(&a->count, 1, memory_order_relaxed);
    }
    uint64_t end = atomic_load_explicit(&a->window_end_ms, memory_order_relaxed);
    if (now_ms < end)
        return false;
    if (!atomic_compare_exchange_strong(&a->window_end_ms, &end, now_ms + a->conf.window_ms))
        return false;
    int64_t before = atomic_load(&a->limit);
    adaptive__update(a, now_ms);
    return atomic_load(&a->limit) != before;
}

int64_t adaptive_limit(const struct adaptive *a)
{
    return atomic_load(&a->limit);
}

int64_t adaptive_inflight(const struct adaptive *a)
{
    return atomic_load(&a->inflight);
}

uint64_t adaptive_min_rtt_us(const struct adaptive *a)
{
    return atomic_load(&a->min_rtt_us);
}

bool adaptive_measuring(const struct adaptive *a)
{
    return atomic_load(&a->measuring);
}
