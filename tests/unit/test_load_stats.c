/* Per-thread load stats with time passed in: responses and errors land in the totals, the
 * endpoint and the slot of their second; a second is published (done_sec) only once the thread
 * has moved past it, so the collector never reads a second still being written; skipped seconds
 * leave no slot; and the VU gauge keeps the maximum of its second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "load/internal.h"

#define T0 1000000000ull /* the run's start, µs */

static struct stats_sec *slot(struct thread_stats *t, int64_t sec)
{
    return &t->ring[sec % STATS_RING];
}

static void test_record_and_publish(void **state)
{
    (void)state;
    struct thread_stats t;
    stats_init(&t, 2, 1, T0);
    assert_int_equal(atomic_load(&t.done_sec), -1);
    stats_record(&t, 0, 200, 1500, T0 + 10, 100, false);
    stats_record(&t, 1, 503, 2500, T0 + 999999, 50, true);
    stats_record_error(&t, 1, LERR_RESET, T0 + 500000);
    assert_int_equal(t.reqs, 3);
    assert_int_equal(t.failed, 2);
    assert_int_equal(t.status[200], 1);
    assert_int_equal(t.status[503], 1);
    assert_int_equal(t.errors[LERR_RESET], 1);
    assert_int_equal(t.ep[0].reqs, 1);
    assert_int_equal(t.ep[1].reqs, 2);
    assert_int_equal(t.ep[1].failed, 2);
    assert_int_equal(hist_count(&t.all), 2); /* errors have no latency */
    assert_int_equal(t.bytes_in, 150);
    /* Second 0 is still open. */
    assert_int_equal(atomic_load(&t.done_sec), -1);
    assert_int_equal(slot(&t, 0)->reqs, 3);
    assert_int_equal(slot(&t, 0)->errors, 2);
    assert_int_equal(hist_count(&slot(&t, 0)->h), 2);
    /* The first event of second 1 publishes second 0. */
    stats_record(&t, 0, 200, 700, T0 + 1000000, 10, false);
    assert_int_equal(atomic_load(&t.done_sec), 0);
    assert_int_equal(atomic_load(&slot(&t, 1)->sec), 1);
    assert_int_equal(slot(&t, 1)->reqs, 1);
    assert_int_equal(hist_max(&slot(&t, 1)->h), 700);
    /* Seconds 2..4 pass without events; a roll at 5.2 s publishes up to 4 and leaves no slot. */
    stats_roll(&t, T0 + 5200000);
    assert_int_equal(atomic_load(&t.done_sec), 4);
    assert_int_equal(t.cur_sec, 5);
    assert_int_not_equal(atomic_load(&slot(&t, 3)->sec), 3);
    assert_int_equal(slot(&t, 5)->reqs, 0);
    assert_int_equal(hist_count(&slot(&t, 5)->h), 0);
    /* A roll within the same second changes nothing. */
    stats_roll(&t, T0 + 5900000);
    assert_int_equal(atomic_load(&t.done_sec), 4);
    /* finish publishes the current second too. */
    stats_finish(&t);
    assert_int_equal(atomic_load(&t.done_sec), 5);
    stats_deinit(&t);
}

static void test_ring_reuse(void **state)
{
    (void)state;
    struct thread_stats t;
    stats_init(&t, 1, 0, T0);
    /* Ten seconds of one request each: slot of second 9 is the slot of second 1, reset. */
    for (int s = 0; s < 10; s++)
        stats_record(&t, 0, 200, 100 + (uint64_t)s, T0 + (uint64_t)s * 1000000 + 1, 0, false);
    assert_int_equal(atomic_load(&slot(&t, 9)->sec), 9);
    assert_int_equal(slot(&t, 9)->reqs, 1);
    assert_int_equal(hist_min(&slot(&t, 9)->h), 109);
    assert_int_equal(hist_count(&t.all), 10);
    stats_deinit(&t);
}

static void test_vus_gauge(void **state)
{
    (void)state;
    struct thread_stats t;
    stats_init(&t, 1, 0, T0);
    stats_set_vus(&t, 3);
    stats_set_vus(&t, 7);
    stats_set_vus(&t, 5);
    assert_int_equal(slot(&t, 0)->vus, 7); /* the peak of the second */
    stats_roll(&t, T0 + 1000000);
    assert_int_equal(slot(&t, 1)->vus, 5); /* a new second starts from the current value */
    stats_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_publish),
        cmocka_unit_test(test_ring_reuse),
        cmocka_unit_test(test_vus_gauge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
