/* k6 threshold syntax: parsing (metrics, tags, aggregations, operators, errors) and evaluation on
 * a result built by hand, so every observed value is known exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load/internal.h"

static void test_parse_ok(void **state)
{
    (void)state;
    struct threshold t;
    char err[256];
    assert_int_equal(threshold_parse(&t, "http_req_duration", "p(95)<500", err, sizeof(err)), 0);
    assert_string_equal(t.metric, "http_req_duration");
    assert_null(t.tag);
    assert_int_equal(t.agg, TH_P);
    assert_true(t.pct == 95.0);
    assert_int_equal(t.op, TH_LT);
    assert_true(t.value == 500.0);
    threshold_free(&t);
    assert_int_equal(
        threshold_parse(&t, "http_req_duration{name:login}", " p(99.9) <= 1e3 ", err, sizeof(err)),
        0);
    assert_string_equal(t.tag, "login");
    assert_true(t.pct == 99.9);
    assert_int_equal(t.op, TH_LE);
    assert_true(t.value == 1000.0);
    threshold_free(&t);
    assert_int_equal(
        threshold_parse(&t, "http_req_failed{ name: 'auth me' }", "rate<0.01", err, sizeof(err)),
        0);
    assert_string_equal(t.tag, "auth me");
    assert_int_equal(t.agg, TH_RATE);
    threshold_free(&t);
    assert_int_equal(threshold_parse(&t, "checks", "rate>=0.99", err, sizeof(err)), 0);
    assert_int_equal(t.op, TH_GE);
    threshold_free(&t);
    assert_int_equal(threshold_parse(&t, "http_reqs", "count>100", err, sizeof(err)), 0);
    assert_int_equal(t.agg, TH_COUNT);
    threshold_free(&t);
    assert_int_equal(threshold_parse(&t, "dropped_iterations", "count==0", err, sizeof(err)), 0);
    assert_int_equal(t.op, TH_EQ);
    threshold_free(&t);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *metric, *expr, *msg;
    } bad[] = {
        {"http_req_duraton", "p(95)<500", "unknown metric"},
        {"http_req_duration", "p95<500", "aggregation"},
        {"http_req_duration", "p(95)", "comparison"},
        {"http_req_duration", "p(95)<", "number"},
        {"http_req_duration", "p(95)<500ms", "number"},
        {"http_req_duration", "p(101)<5", "0..100"},
        {"http_req_duration", "rate<5", "takes avg"},
        {"http_req_failed", "avg<5", "takes rate"},
        {"http_req_duration{tag:x}", "avg<5", "only the 'name' tag"},
        {"http_req_duration{name:x", "avg<5", "tag filter"},
        {"data_sent{name:x}", "count<5", "no per-request"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct threshold t;
        char err[256];
        assert_int_equal(threshold_parse(&t, bad[i].metric, bad[i].expr, err, sizeof(err)), -1);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("%s: %s: '%s' lacks '%s'", bad[i].metric, bad[i].expr, err, bad[i].msg);
    }
}

/* A result: 100 requests, 90 at 10 ms and 10 at 600 ms on "/a", 5 of them failed; checks 98/2. */
static struct load_result *make_result(void)
{
    struct load_result *r = result_create();
    struct result_ep *a = result_ep(r, "/a", "GET");
    hist_record_n(&a->h, 10000, 90);
    hist_record_n(&a->h, 600000, 10);
    a->reqs = 100;
    a->failed = 5;
    struct result_ep *b = result_ep(r, "login", "POST");
    hist_record_n(&b->h, 2000, 10);
    b->reqs = 10;
    a = &r->eps[0]; /* adding "login" may have moved the array */
    hist_merge(&r->h, &a->h);
    hist_merge(&r->h, &b->h);
    r->reqs = 110;
    r->failed = 5;
    r->iterations = 110;
    r->duration_s = 10.0;
    struct result_check *c = result_check(r, "status in [200]", "/a");
    c->pass = 98;
    c->fail = 2;
    c = result_check(r, "status in [200]", "login");
    c->pass = 10;
    return r;
}

static bool eval(struct load_result *r, const char *metric, const char *expr, double *observed)
{
    struct threshold t;
    char err[256];
    assert_int_equal(threshold_parse(&t, metric, expr, err, sizeof(err)), 0);
    bool ok = threshold_eval(&t, r);
    if (observed)
        *observed = t.observed;
    threshold_free(&t);
    return ok;
}

static void test_eval(void **state)
{
    (void)state;
    struct load_result *r = make_result();
    double v;
    /* p(90) of all 110 is 10 ms; p(95) falls in the 600 ms group. */
    assert_true(eval(r, "http_req_duration", "p(90)<11", &v));
    assert_true(v > 9.9 && v < 10.1);
    assert_false(eval(r, "http_req_duration", "p(95)<500", &v));
    assert_true(v > 594 && v < 606);
    assert_true(eval(r, "http_req_duration{name:login}", "p(95)<5", &v));
    assert_true(v > 1.98 && v < 2.02);
    assert_true(eval(r, "http_req_duration", "max>=600", NULL));
    assert_true(eval(r, "http_req_duration", "min<=2.1", NULL));
    /* avg of /a: (90 × 10 + 10 × 600) / 100 = 69 ms */
    assert_true(eval(r, "http_req_duration{name:/a}", "avg<70", &v));
    assert_true(v > 68 && v < 70);
    assert_true(eval(r, "http_req_failed", "rate<0.05", &v));
    assert_true(v > 0.0454 && v < 0.0455);
    assert_false(eval(r, "http_req_failed{name:/a}", "rate<0.05", NULL)); /* exactly 0.05 */
    assert_true(eval(r, "http_req_failed{name:login}", "rate==0", NULL));
    assert_true(eval(r, "checks", "rate>0.98", &v)); /* 108 / 110 */
    assert_false(eval(r, "checks{name:/a}", "rate>0.99", NULL));
    assert_true(eval(r, "http_reqs", "count==110", NULL));
    assert_true(eval(r, "http_reqs", "rate>10.9", NULL));
    assert_true(eval(r, "dropped_iterations", "count==0", NULL));
    /* A name that matched nothing has no data: 0. */
    assert_true(eval(r, "http_req_duration{name:ghost}", "max==0", NULL));
    /* eval_all counts failures. */
    struct threshold th[2];
    char err[64];
    threshold_parse(&th[0], "http_req_duration", "p(95)<500", err, sizeof(err));
    threshold_parse(&th[1], "http_req_failed", "rate<0.1", err, sizeof(err));
    assert_int_equal(threshold_eval_all(th, 2, r), 1);
    assert_false(th[0].ok);
    assert_true(th[1].ok);
    threshold_free(&th[0]);
    threshold_free(&th[1]);
    result_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_eval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
