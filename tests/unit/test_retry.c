/* Retry policy: retry.on words (connect_error, reset, timeout, 5xx, single statuses, unknown
 * words refused, empty = connect_error + reset), idempotent methods, exponential backoff with
 * full jitter inside its bound, and the budget: retries never exceed ratio × requests of the
 * window (plus the first one), refusals are counted, and the window forgets old traffic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway/retry.h"
#include "http/h1parse.h"

static void test_on_parse(void **state)
{
    (void)state;
    struct retry_on on;
    const char *bad;
    assert_int_equal(retry_on_parse(NULL, 0, &on, &bad), 0);
    assert_true(on.connect_error && on.reset);
    assert_false(on.timeout);
    assert_false(retry_on_status(&on, 503));

    const char *w[] = {"timeout", "502", "503"};
    assert_int_equal(retry_on_parse(w, 3, &on, &bad), 0);
    assert_true(on.timeout);
    assert_false(on.connect_error);
    assert_true(retry_on_status(&on, 502));
    assert_true(retry_on_status(&on, 503));
    assert_false(retry_on_status(&on, 504));
    assert_false(retry_on_status(&on, 200));

    const char *all[] = {"5xx"};
    assert_int_equal(retry_on_parse(all, 1, &on, &bad), 0);
    assert_true(retry_on_status(&on, 500));
    assert_true(retry_on_status(&on, 599));
    assert_false(retry_on_status(&on, 600));

    const char *wrong[] = {"connect_error", "404"};
    assert_int_equal(retry_on_parse(wrong, 2, &on, &bad), -1);
    assert_string_equal(bad, "404");
    const char *junk[] = {"sometimes"};
    assert_int_equal(retry_on_parse(junk, 1, &on, &bad), -1);
    assert_string_equal(bad, "sometimes");
}

static void test_idempotent(void **state)
{
    (void)state;
    assert_true(retry_idempotent(H1_M_GET));
    assert_true(retry_idempotent(H1_M_HEAD));
    assert_true(retry_idempotent(H1_M_PUT));
    assert_true(retry_idempotent(H1_M_DELETE));
    assert_true(retry_idempotent(H1_M_OPTIONS));
    assert_false(retry_idempotent(H1_M_POST));
    assert_false(retry_idempotent(H1_M_PATCH));
    assert_false(retry_idempotent(H1_M_OTHER));
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(retry_backoff_ms(0, 1, 0, 12345), 0);
    /* the bound doubles per attempt; the draw stays inside it and covers it */
    for (unsigned a = 1; a <= 4; a++) {
        uint64_t bound = 25u << (a - 1), max = 0;
        for (uint64_t r = 0; r < 1000; r++) {
            uint64_t d = retry_backoff_ms(25, a, 0, r * 7919);
            assert_true(d <= bound);
            if (d > max)
                max = d;
        }
        assert_true(max >= bound - bound / 10);
    }
    /* capped */
    for (uint64_t r = 0; r < 100; r++)
        assert_true(retry_backoff_ms(25, 30, 2000, r * 104729) <= 2000);
}

static void test_budget_bounds_retries(void **state)
{
    (void)state;
    struct retry_budget *b = retry_budget_create(0.2, 10000, 10);
    /* every request fails and wants 3 retries: 1000 requests over 5 s */
    uint64_t retries = 0, refused = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t now = 1000 + (uint64_t)i * 5;
        retry_budget_request(b, now);
        for (int k = 0; k < 3; k++) {
            if (retry_budget_take(b, now))
                retries++;
            else
                refused++;
        }
    }
    assert_true(retries <= 200 + 1);
    assert_true(retries >= 190);
    assert_int_equal(retry_budget_exhausted(b), refused);
    uint64_t rq, rt;
    retry_budget_window(b, 6000, &rq, &rt);
    assert_int_equal(rq, 1000);
    assert_int_equal(rt, retries);
    /* 20 s later the window is empty: a new request may retry again at once */
    retry_budget_window(b, 26000, &rq, &rt);
    assert_int_equal(rq, 0);
    retry_budget_request(b, 26000);
    assert_true(retry_budget_take(b, 26000));
    assert_false(retry_budget_take(b, 26000));
    retry_budget_destroy(b);

    /* a zero budget allows nothing */
    b = retry_budget_create(0, 10000, 10);
    retry_budget_request(b, 1);
    assert_false(retry_budget_take(b, 1));
    retry_budget_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_on_parse),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_budget_bounds_retries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
