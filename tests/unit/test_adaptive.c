/* Adaptive concurrency limit: held at the minimum while the unloaded latency is measured, then
 * grows while latency stays at the minimum, falls when latency rises above it (a queue forms),
 * never leaves [min, max], sheds above the limit, re-measures the minimum periodically, and only
 * one caller per window moves the limit. Time and latencies are arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway/adaptive.h"

static struct adaptive_conf conf(void)
{
    struct adaptive_conf c = {.min_limit = 2,
                              .max_limit = 200,
                              .initial_limit = 20,
                              .window_ms = 100,
                              .min_rtt_interval_ms = 60000,
                              .min_rtt_samples = 10,
                              .smoothing = 0.5,
                              .buffer = 0.25};
    return c;
}

/* Runs one window of <n> requests of latency <rtt_us> ending at <now>. */
static void window(struct adaptive *a, uint64_t now, int n, uint64_t rtt_us)
{
    for (int i = 0; i < n; i++) {
        if (!adaptive_acquire(a))
            continue;
        adaptive_release(a, now - 1, rtt_us, true);
    }
    assert_true(adaptive_acquire(a));
    adaptive_release(a, now, rtt_us, true);
}

static void test_measure_then_grow_then_fall(void **state)
{
    (void)state;
    struct adaptive_conf c = conf();
    struct adaptive *a = adaptive_create(&c, 0);
    assert_true(adaptive_measuring(a));
    assert_int_equal(adaptive_limit(a), 2);
    /* held at 2 while measuring: a third concurrent request is shed */
    assert_true(adaptive_acquire(a));
    assert_true(adaptive_acquire(a));
    assert_false(adaptive_acquire(a));
    assert_int_equal(adaptive_inflight(a), 2);
    adaptive_release(a, 10, 40000, true);
    adaptive_release(a, 10, 40000, true);
    /* 10 samples of 40 ms make the minimum; the limit resumes at the initial value */
    window(a, 100, 10, 40000);
    assert_false(adaptive_measuring(a));
    assert_in_range(adaptive_min_rtt_us(a), 39000, 41000);
    assert_int_equal(adaptive_limit(a), 20);
    /* latency at the minimum: the limit grows */
    int64_t before = adaptive_limit(a);
    for (uint64_t t = 200; t <= 1000; t += 100)
        window(a, t, 5, 40000);
    assert_true(adaptive_limit(a) > before);
    /* latency 4x the minimum (a queue): the limit falls, towards the minimum */
    int64_t high = adaptive_limit(a);
    for (uint64_t t = 1100; t <= 3000; t += 100)
        window(a, t, 5, 160000);
    assert_true(adaptive_limit(a) < high / 2);
    assert_true(adaptive_limit(a) >= 2);
    adaptive_destroy(a);
}

static void test_bounds_and_one_updater(void **state)
{
    (void)state;
    struct adaptive_conf c = conf();
    c.max_limit = 30;
    c.min_rtt_samples = 1;
    struct adaptive *a = adaptive_create(&c, 0);
    window(a, 100, 1, 10000);
    assert_false(adaptive_measuring(a));
    for (uint64_t t = 200; t <= 5000; t += 100)
        window(a, t, 3, 10000);
    assert_int_equal(adaptive_limit(a), 30);
    /* releases within one window: only the first past the deadline moves the limit */
    assert_true(adaptive_acquire(a));
    assert_true(adaptive_acquire(a));
    bool moved1 = adaptive_release(a, 5200, 100000, true);
    bool moved2 = adaptive_release(a, 5200, 100000, true);
    assert_true(moved1);
    assert_false(moved2);
    adaptive_destroy(a);
}

static void test_remeasure(void **state)
{
    (void)state;
    struct adaptive_conf c = conf();
    c.min_rtt_interval_ms = 1000;
    c.min_rtt_samples = 1;
    struct adaptive *a = adaptive_create(&c, 0);
    window(a, 100, 1, 20000);
    assert_false(adaptive_measuring(a));
    int64_t lim = adaptive_limit(a);
    assert_int_equal(lim, 20);
    window(a, 1300, 0, 20000); // interval passed: measuring again, limit held at the minimum
    assert_true(adaptive_measuring(a));
    assert_int_equal(adaptive_limit(a), 2);
    window(a, 1500, 1, 30000); // the new minimum; the limit resumes where it was
    assert_false(adaptive_measuring(a));
    assert_in_range(adaptive_min_rtt_us(a), 29000, 31000);
    assert_int_equal(adaptive_limit(a), lim);
    adaptive_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measure_then_grow_then_fall),
        cmocka_unit_test(test_bounds_and_one_updater),
        cmocka_unit_test(test_remeasure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
