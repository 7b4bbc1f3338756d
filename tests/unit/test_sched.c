/* Executor arithmetic with time passed in: stage interpolation, VU targets, the integral of a
 * ramping rate and its inverse (intended send times), and the open-model queue's late/dropped
 * accounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "load/internal.h"

#define S(x) ((uint64_t)((x)*1000000.0))

static void test_vus_stages(void **state)
{
    (void)state;
    /* The seed's k6 test, shortened: 0 → 100 in 10 s, hold 10 s, → 200 in 10 s, → 0 in 10 s. */
    struct sched_stage st[] = {{S(10), 100}, {S(10), 100}, {S(10), 200}, {S(10), 0}};
    struct sched_plan p = {SCHED_VUS, 0, st, 4, 0};
    sched_plan_finish(&p);
    assert_int_equal(p.total_us, S(40));
    assert_int_equal(sched_vus_at(&p, 0, 1000), 0);
    assert_int_equal(sched_vus_at(&p, S(5), 1000), 50);
    assert_int_equal(sched_vus_at(&p, S(9.99), 1000), 99);
    assert_int_equal(sched_vus_at(&p, S(10), 1000), 100);
    assert_int_equal(sched_vus_at(&p, S(15), 1000), 100);
    assert_int_equal(sched_vus_at(&p, S(25), 1000), 150);
    assert_int_equal(sched_vus_at(&p, S(35), 1000), 100);
    assert_int_equal(sched_vus_at(&p, S(40), 1000), 0);  /* over */
    assert_int_equal(sched_vus_at(&p, S(25), 120), 120); /* capped */
    assert_true(sched_peak(&p) == 200.0);
}

static void test_constant_rate_times(void **state)
{
    (void)state;
    struct sched_stage st[] = {{S(10), 100}};
    struct sched_plan p = {SCHED_RATE, 100, st, 1, 0};
    sched_plan_finish(&p);
    /* 100/s: iteration n is due at n × 10 ms. */
    assert_int_equal(sched_intended_us(&p, 0), 0);
    assert_int_equal(sched_intended_us(&p, 1), 10000);
    assert_int_equal(sched_intended_us(&p, 250), 2500000);
    assert_int_equal(sched_intended_us(&p, 999), 9990000);
    assert_int_equal(sched_intended_us(&p, 1000), UINT64_MAX); /* 1000 iterations in 10 s */
    assert_true(sched_iterations_by(&p, S(2.5)) == 250.0);
}

static void test_ramping_rate_times(void **state)
{
    (void)state;
    /* 0 → 100/s over 10 s: I(t) = 5 t², so 500 iterations, iteration n at sqrt(n / 5) s. */
    struct sched_stage st[] = {{S(10), 100}, {S(5), 100}};
    struct sched_plan p = {SCHED_RATE, 0, st, 2, 0};
    sched_plan_finish(&p);
    assert_true(sched_iterations_by(&p, S(10)) == 500.0);
    assert_true(sched_iterations_by(&p, S(15)) == 1000.0);
    assert_int_equal(sched_intended_us(&p, 0), 0);
    assert_int_equal(sched_intended_us(&p, 5), 1000000);   /* sqrt(1) */
    assert_int_equal(sched_intended_us(&p, 125), 5000000); /* sqrt(25) */
    assert_int_equal(sched_intended_us(&p, 500), 10000000);
    assert_int_equal(sched_intended_us(&p, 600), 11000000); /* 100 more at 100/s */
    /* Times increase with n, and the inverse agrees with the integral everywhere. */
    uint64_t prev = 0;
    for (uint64_t n = 1; n < 1000; n++) {
        uint64_t t = sched_intended_us(&p, n);
        assert_true(t > prev);
        prev = t;
        double back = sched_iterations_by(&p, t);
        assert_true(back > (double)n - 0.01 && back < (double)n + 0.01);
    }
    assert_int_equal(sched_intended_us(&p, 1000), UINT64_MAX);
    /* A rate that ramps down to 0 ends: no iteration after the area is used up. */
    struct sched_stage down[] = {{S(2), 0}};
    struct sched_plan q = {SCHED_RATE, 10, down, 1, 0};
    sched_plan_finish(&q);
    assert_true(sched_iterations_by(&q, S(2)) == 10.0);
    assert_true(sched_intended_us(&q, 9) < S(2));
    assert_int_equal(sched_intended_us(&q, 10), UINT64_MAX);
}

static void test_open_queue(void **state)
{
    (void)state;
    struct sched_stage st[] = {{S(1), 1000}};
    struct sched_plan p = {SCHED_RATE, 1000, st, 1, 0};
    sched_plan_finish(&p);
    /* Two threads: thread 1 gets iterations 1, 3, 5, … at 1, 3, 5 … ms. */
    struct sched_open s;
    sched_open_init(&s, &p, 1, 2, 4);
    assert_int_equal(s.next_us, 1000);
    assert_int_equal(sched_open_arrivals(&s, 500), 0);
    assert_int_equal(sched_open_arrivals(&s, 5000), 3); /* 1, 3, 5 ms */
    uint64_t t;
    /* One connection free at 5 ms: it takes the oldest, 4 ms behind. */
    assert_int_equal(sched_open_take(&s, 5000, &t), 1);
    assert_int_equal(t, 1000);
    assert_int_equal(s.max_lag_us, 4000);
    sched_open_settle(&s);
    assert_int_equal(s.late, 2); /* 3 ms and 5 ms found no connection */
    /* Taking them later does not count them twice. */
    assert_int_equal(sched_open_take(&s, 6000, &t), 1);
    assert_int_equal(t, 3000);
    sched_open_settle(&s);
    assert_int_equal(s.late, 2);
    /* Queue of 4 with 5 ms still in it: 7, 9, 11 ms fill it, 13 and 15 ms are dropped. */
    assert_int_equal(sched_open_arrivals(&s, 15000), 5);
    assert_int_equal(s.qlen, 4);
    assert_int_equal(s.dropped, 2);
    sched_open_settle(&s);
    assert_int_equal(s.late, 5);
    /* End of the run: the queued ones are dropped, not late. */
    sched_open_drop_all(&s);
    assert_int_equal(s.dropped, 6);
    assert_int_equal(s.late, 1);
    assert_int_equal(s.qlen, 0);
    sched_open_deinit(&s);
}

static void test_open_on_time(void **state)
{
    (void)state;
    /* A dispatcher that always has a connection: nothing late, nothing dropped, all 500 sent. */
    struct sched_stage st[] = {{S(5), 100}};
    struct sched_plan p = {SCHED_RATE, 100, st, 1, 0};
    sched_plan_finish(&p);
    struct sched_open s;
    sched_open_init(&s, &p, 0, 1, 8);
    uint64_t sent = 0, t;
    for (uint64_t now = 0; now <= S(6); now += 1000) {
        sched_open_arrivals(&s, now);
        while (sched_open_take(&s, now, &t))
            sent++;
        sched_open_settle(&s);
    }
    assert_int_equal(sent, 500);
    assert_int_equal(s.late, 0);
    assert_int_equal(s.dropped, 0);
    assert_true(s.max_lag_us < 1000);
    sched_open_deinit(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vus_stages),         cmocka_unit_test(test_constant_rate_times),
        cmocka_unit_test(test_ramping_rate_times), cmocka_unit_test(test_open_queue),
        cmocka_unit_test(test_open_on_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
