/* Outlier ejection: N failures in a row eject (a success in between breaks the run), the k-th
 * ejection lasts k × base up to the cap, failures while ejected change nothing, at most
 * max_percent of the servers are out at once (but one always may be), and the multiplier is
 * forgiven one step per base time served. Time is an argument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway/outlier.h"

static struct outlier *mk(size_t n, double pct)
{
    struct outlier_conf c = {.consecutive = 3, .base_ms = 1000, .max_ms = 2500, .max_percent = pct};
    return outlier_create(&c, n);
}

static void test_consecutive(void **state)
{
    (void)state;
    struct outlier *o = mk(4, 0.5);
    assert_int_equal(outlier_failure(o, 0, 10), 0);
    assert_int_equal(outlier_failure(o, 0, 11), 0);
    outlier_success(o, 0, 12); // breaks the run
    assert_int_equal(outlier_failure(o, 0, 13), 0);
    assert_int_equal(outlier_failure(o, 0, 14), 0);
    assert_int_equal(outlier_failure(o, 0, 15), 1000);
    assert_true(outlier_ejected(o, 0, 16));
    assert_false(outlier_ejected(o, 0, 1015));
    assert_false(outlier_ejected(o, 1, 16));
    /* failures while ejected (requests sent before) do not extend it */
    for (int i = 0; i < 10; i++)
        assert_int_equal(outlier_failure(o, 0, 500), 0);
    assert_false(outlier_ejected(o, 0, 1015));
    outlier_destroy(o);
}

static void test_growing_and_capped(void **state)
{
    (void)state;
    struct outlier *o = mk(2, 0.5);
    uint64_t t = 0;
    uint64_t want[] = {1000, 2000, 2500, 2500};
    for (int k = 0; k < 4; k++) {
        uint64_t d = 0;
        for (int i = 0; i < 3; i++)
            d = outlier_failure(o, 1, t);
        assert_int_equal(d, want[k]);
        assert_int_equal(outlier_multiplier(o, 1), (unsigned)k + 1);
        t += d; // back in at once, fails again at once
    }
    /* forgiveness: a base time served without ejection lowers the multiplier by one per step */
    outlier_success(o, 1, t + 500);
    assert_int_equal(outlier_multiplier(o, 1), 4);
    outlier_success(o, 1, t + 1000);
    assert_int_equal(outlier_multiplier(o, 1), 3);
    outlier_success(o, 1, t + 1500);
    assert_int_equal(outlier_multiplier(o, 1), 3);
    outlier_success(o, 1, t + 2000);
    assert_int_equal(outlier_multiplier(o, 1), 2);
    assert_false(outlier_ejected(o, 1, t + 2000));
    outlier_destroy(o);
}

static void test_max_percent(void **state)
{
    (void)state;
    /* 4 servers, 50%: two may be out, the third stays in whatever it does */
    struct outlier *o = mk(4, 0.5);
    for (size_t s = 0; s < 3; s++)
        for (int i = 0; i < 3; i++)
            outlier_failure(o, s, 100);
    assert_true(outlier_ejected(o, 0, 101));
    assert_true(outlier_ejected(o, 1, 101));
    assert_false(outlier_ejected(o, 2, 101));
    /* once one is back, the next may go */
    assert_int_equal(outlier_failure(o, 2, 1200), 1000);
    outlier_destroy(o);

    /* 2 servers, 10%: one may still be ejected, never both */
    o = mk(2, 0.1);
    for (int i = 0; i < 3; i++)
        outlier_failure(o, 0, 10);
    for (int i = 0; i < 3; i++)
        outlier_failure(o, 1, 10);
    assert_true(outlier_ejected(o, 0, 11));
    assert_false(outlier_ejected(o, 1, 11));
    outlier_destroy(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consecutive),
        cmocka_unit_test(test_growing_and_capped),
        cmocka_unit_test(test_max_percent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
