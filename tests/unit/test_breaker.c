/* Circuit breaker: stays closed below min_requests and below the threshold, opens at the
 * threshold within the window, refuses while open, lets exactly K probes through after open_for,
 * closes after M successful probes (and forgets the failures that opened it), re-opens on a
 * failed probe, ignores probes of an earlier round, forgets failures that left the window, frees
 * the slot of a probe without outcome, and reports each transition once. Time is an argument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway/breaker.h"

static struct breaker_conf conf(void)
{
    struct breaker_conf c = {.window_ms = 10000,
                             .buckets = 10,
                             .error_threshold = 0.5,
                             .min_requests = 10,
                             .open_for_ms = 30000,
                             .probes = 3,
                             .successes = 3};
    return c;
}

/* Sends one request at <now>: admitted or not, and when admitted records <failed>. Returns the
 * transition seen by record (or by allow when refused). */
static int one(struct breaker *b, uint64_t now, bool failed, bool *admitted)
{
    struct breaker_ticket t;
    int ch;
    *admitted = breaker_allow(b, now, &t, &ch);
    if (!*admitted)
        return ch;
    int ch2;
    breaker_record(b, now, &t, failed, &ch2);
    return ch2 != BREAKER_NO_CHANGE ? ch2 : ch;
}

static void test_opens_at_threshold(void **state)
{
    (void)state;
    struct breaker_conf c = conf();
    struct breaker *b = breaker_create(&c);
    bool ok;
    uint64_t t = 1000;
    /* 9 failures: below min_requests, no decision */
    for (int i = 0; i < 9; i++)
        assert_int_equal(one(b, t, true, &ok), BREAKER_NO_CHANGE);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    breaker_destroy(b);

    /* 40% failures over 20 requests: stays closed */
    b = breaker_create(&c);
    for (int i = 0; i < 20; i++)
        assert_int_equal(one(b, t + (uint64_t)i * 100, i % 5 >= 3, &ok), BREAKER_NO_CHANGE);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    /* more failures push the window to 50%: opens exactly once */
    int opened = 0;
    for (int i = 0; i < 10; i++)
        opened += one(b, t + 2000 + (uint64_t)i * 10, true, &ok) == BREAKER_OPEN;
    assert_int_equal(opened, 1);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    assert_int_equal(breaker_opens(b), 1);
    breaker_destroy(b);
}

static void test_old_failures_leave_the_window(void **state)
{
    (void)state;
    struct breaker_conf c = conf();
    struct breaker *b = breaker_create(&c);
    bool ok;
    for (int i = 0; i < 9; i++)
        one(b, 1000, true, &ok);
    uint64_t rq, fl;
    breaker_window(b, 1000, &rq, &fl);
    assert_int_equal(rq, 9);
    assert_int_equal(fl, 9);
    /* 11 s later those 9 failures are gone: one more failure is 1 of 1, under min_requests */
    assert_int_equal(one(b, 12000, true, &ok), BREAKER_NO_CHANGE);
    breaker_window(b, 12000, &rq, &fl);
    assert_int_equal(rq, 1);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    breaker_destroy(b);
}

static struct breaker *opened(uint64_t at)
{
    struct breaker_conf c = conf();
    struct breaker *b = breaker_create(&c);
    bool ok;
    for (int i = 0; i < 10; i++)
        one(b, at, true, &ok);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    return b;
}

static void test_open_refuses_then_probes(void **state)
{
    (void)state;
    struct breaker *b = opened(1000);
    struct breaker_ticket t[5];
    int ch;
    /* refused for open_for */
    assert_false(breaker_allow(b, 1000, &t[0], &ch));
    assert_false(breaker_allow(b, 30999, &t[0], &ch));
    assert_int_equal(ch, BREAKER_NO_CHANGE);
    /* then exactly K = 3 probes; the first caller sees the half-open transition */
    assert_true(breaker_allow(b, 31000, &t[0], &ch));
    assert_int_equal(ch, BREAKER_HALF_OPEN);
    assert_true(t[0].probe);
    assert_true(breaker_allow(b, 31001, &t[1], &ch));
    assert_int_equal(ch, BREAKER_NO_CHANGE);
    assert_true(breaker_allow(b, 31002, &t[2], &ch));
    assert_false(breaker_allow(b, 31003, &t[3], &ch));
    assert_int_equal(breaker_state(b), BREAKER_HALF_OPEN);
    /* a probe that ends without outcome frees its slot for another */
    breaker_release(b, &t[2]);
    assert_true(breaker_allow(b, 31004, &t[2], &ch));
    /* M = 3 successes close it; the third one reports the transition */
    breaker_record(b, 31100, &t[0], false, &ch);
    assert_int_equal(ch, BREAKER_NO_CHANGE);
    breaker_record(b, 31100, &t[1], false, &ch);
    assert_int_equal(ch, BREAKER_NO_CHANGE);
    breaker_record(b, 31100, &t[2], false, &ch);
    assert_int_equal(ch, BREAKER_CLOSED);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    /* closed again, and the failures that opened it do not count any more */
    uint64_t rq, fl;
    breaker_window(b, 31200, &rq, &fl);
    assert_int_equal(fl, 0);
    bool ok;
    assert_int_equal(one(b, 31300, true, &ok), BREAKER_NO_CHANGE);
    assert_true(ok);
    assert_int_equal(breaker_transitions(b), 3); // open, half-open, closed
    breaker_destroy(b);
}

static void test_failed_probe_reopens(void **state)
{
    (void)state;
    struct breaker *b = opened(1000);
    struct breaker_ticket t1, t2, t3;
    int ch;
    assert_true(breaker_allow(b, 31000, &t1, &ch));
    assert_true(breaker_allow(b, 31000, &t2, &ch));
    breaker_record(b, 31050, &t1, true, &ch);
    assert_int_equal(ch, BREAKER_OPEN);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    /* a probe of the old round says nothing about the new one */
    breaker_record(b, 31060, &t2, false, &ch);
    assert_int_equal(ch, BREAKER_NO_CHANGE);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    /* open_for counts from the re-opening */
    assert_false(breaker_allow(b, 61000, &t3, &ch));
    assert_true(breaker_allow(b, 61050, &t3, &ch));
    assert_int_equal(ch, BREAKER_HALF_OPEN);
    assert_int_equal(breaker_opens(b), 2);
    breaker_destroy(b);
}

static void test_clamps(void **state)
{
    (void)state;
    struct breaker_conf c = {.window_ms = 5,
                             .buckets = 0,
                             .error_threshold = 1.0,
                             .min_requests = 0,
                             .open_for_ms = 10,
                             .probes = 0,
                             .successes = 9};
    struct breaker *b = breaker_create(&c);
    bool ok;
    assert_int_equal(one(b, 1, true, &ok), BREAKER_OPEN); // min 1 request, 100%
    struct breaker_ticket t;
    int ch;
    assert_true(breaker_allow(b, 11, &t, &ch));
    assert_false(breaker_allow(b, 11, &t, &ch)); // one probe
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
    breaker_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_at_threshold),
        cmocka_unit_test(test_old_failures_leave_the_window),
        cmocka_unit_test(test_open_refuses_then_probes),
        cmocka_unit_test(test_failed_probe_reopens),
        cmocka_unit_test(test_clamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
