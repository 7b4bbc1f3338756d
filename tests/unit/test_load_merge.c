/* `apigate load merge`: two runs merged (through their JSON reports, as the command does) equal
 * one run that recorded every request of both: same histogram buckets, so the same percentiles,
 * same counts, statuses, errors, endpoints, checks; and the per-second series adds up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "load/internal.h"

/* Records <n> requests with pseudo-random latencies into <r> (and into <both>). */
static void fill(struct load_result *r, struct load_result *both, uint64_t seed, int n,
                 uint64_t scale_us)
{
    struct load_result *dst[2] = {r, both};
    for (int k = 0; k < 2; k++) {
        struct load_result *x = dst[k];
        uint64_t rng = seed;
        /* Both added first: result_ep may move the array, so the pointers are taken after. */
        result_ep(x, "GET /a", "GET");
        result_ep(x, "login", "POST");
        struct result_ep *a = result_ep(x, "GET /a", "GET");
        struct result_ep *b = result_ep(x, "login", "POST");
        for (int i = 0; i < n; i++) {
            uint64_t us = 50 + tmpl_rand_next(&rng) % scale_us;
            struct result_ep *e = (i % 3) ? a : b;
            hist_record(&e->h, us);
            hist_record(&x->h, us);
            e->reqs++;
            x->reqs++;
            int status = (i % 50 == 0) ? 503 : 200;
            x->status[status]++;
            if (status >= 400) {
                x->failed++;
                e->failed++;
            }
        }
        x->iterations += (uint64_t)n;
        x->bytes_in += (uint64_t)n * 100;
        x->errors[LERR_RESET] += seed % 7;
        struct result_check *c = result_check(x, "status in [200]", "GET /a");
        c->pass += (uint64_t)n - 3;
        c->fail += 3;
        x->checks_pass += (uint64_t)n - 3;
        x->checks_fail += 3;
        if (x->duration_s < 10.0)
            x->duration_s = 10.0;
    }
    for (int t = 0; t < 3; t++) {
        struct result_sec *s = result_add_sec(r);
        s->t = t + (int64_t)(seed % 2); /* the second run starts a second later */
        s->reqs = 100 * (uint64_t)(t + 1);
        s->vus = 5;
        s->dropped = (uint64_t)t;
        s->p95_us = 1000 * seed;
        s->requested = 10.5 * (double)seed;
        /* the endpoint "login" has its own series, through the JSON too */
        struct result_ep_sec *es = result_ep_add_sec(result_ep(r, "login", "POST"));
        es->t = s->t;
        es->reqs = 10 * (uint64_t)(t + 1);
        es->errors = seed;
        es->p95_us = 500 * seed;
    }
}

static struct load_result *roundtrip(const struct load_result *r, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/tmp/test_load_merge_%d_%s.json", (int)getpid(), name);
    struct buf b = BUF_INIT;
    report_json(r, &b);
    assert_int_equal(report_write_file(path, &b), 0);
    buf_deinit(&b);
    char err[256];
    struct load_result *back = report_json_read(path, err, sizeof(err));
    if (back == NULL)
        fail_msg("%s", err);
    unlink(path);
    return back;
}

static void assert_hist_equal(const struct hist *a, const struct hist *b)
{
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->sum_us, b->sum_us);
    assert_int_equal(hist_min(a), hist_min(b));
    assert_int_equal(a->max_us, b->max_us);
    assert_memory_equal(a->buckets, b->buckets, sizeof(a->buckets));
    static const double ps[] = {50, 90, 95, 99, 99.9};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        assert_int_equal(hist_percentile(a, ps[i]), hist_percentile(b, ps[i]));
}

static void test_merge_equals_both(void **state)
{
    (void)state;
    struct load_result *r1 = result_create(), *r2 = result_create(), *both = result_create();
    fill(r1, both, 1, 5000, 20000);
    fill(r2, both, 2, 3000, 900000); /* a slower machine: the merged tail must show it */
    struct load_result *j1 = roundtrip(r1, "a"), *j2 = roundtrip(r2, "b");
    result_merge(j1, j2);
    assert_hist_equal(&j1->h, &both->h);
    assert_int_equal(j1->reqs, both->reqs);
    assert_int_equal(j1->failed, both->failed);
    assert_int_equal(j1->iterations, both->iterations);
    assert_int_equal(j1->bytes_in, both->bytes_in);
    assert_int_equal(j1->checks_pass, both->checks_pass);
    assert_int_equal(j1->checks_fail, both->checks_fail);
    assert_memory_equal(j1->status, both->status, sizeof(both->status));
    assert_memory_equal(j1->errors, both->errors, sizeof(both->errors));
    assert_int_equal(j1->neps, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(j1->eps[i].name, both->eps[i].name);
        assert_int_equal(j1->eps[i].reqs, both->eps[i].reqs);
        assert_int_equal(j1->eps[i].failed, both->eps[i].failed);
        assert_hist_equal(&j1->eps[i].h, &both->eps[i].h);
    }
    assert_int_equal(j1->nchecks, 1);
    assert_int_equal(j1->checks[0].pass, both->checks[0].pass);
    assert_int_equal(j1->machines, 2);
    /* Series: seconds 0..2 and 1..3 → 0..3, with requests and VUs added where both ran. */
    assert_int_equal(j1->nseries, 4);
    assert_int_equal(j1->series[0].reqs, 100);
    assert_int_equal(j1->series[1].reqs, 200 + 100);
    assert_int_equal(j1->series[2].reqs, 300 + 200);
    assert_int_equal(j1->series[3].reqs, 300);
    assert_int_equal(j1->series[1].vus, 10);
    assert_int_equal(j1->series[2].dropped, 2 + 1); /* second 2 of run 1, second 1 of run 2 */
    assert_int_equal(j1->series[1].p95_us, 2000);   /* the worse of the two */
    assert_true(j1->series[0].requested == 21.0); /* run 2 alone (run 1 starts at 1) */
    assert_true(j1->series[1].requested == 10.5 + 21.0); /* two generators' rates add */
    /* The endpoint's own series adds up the same way (read back from the JSON). */
    const struct result_ep *lg = result_ep(j1, "login", "POST");
    assert_int_equal(lg->nseries, 4);
    assert_int_equal(lg->series[0].t, 0);
    assert_int_equal(lg->series[0].reqs, 10);
    assert_int_equal(lg->series[1].reqs, 20 + 10);
    assert_int_equal(lg->series[1].errors, 1 + 2);
    assert_int_equal(lg->series[1].p95_us, 1000); /* the worse of 500 and 1000 */
    assert_int_equal(lg->series[3].reqs, 30);
    assert_int_equal(result_ep(j1, "GET /a", "GET")->nseries, 0);
    /* Two machines for 10 s each, at the same time: the rates add. */
    assert_true(result_rps(j1) > 799.9 && result_rps(j1) < 800.1);
    result_destroy(j1);
    result_destroy(j2);
    result_destroy(r1);
    result_destroy(r2);
    result_destroy(both);
}

static void test_json_rejects_garbage(void **state)
{
    (void)state;
    char path[256], err[256];
    snprintf(path, sizeof(path), "/tmp/test_load_merge_%d_bad.json", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs("{\"apigate_load\":1,\"hist\":{\"count\":5,\"sum_us\":1,\"min_us\":1,\"max_us\":1,"
          "\"buckets\":[[1,4]]}}",
          f);
    fclose(f);
    assert_null(report_json_read(path, err, sizeof(err)));
    assert_non_null(strstr(err, "hist"));
    f = fopen(path, "w");
    fputs("{\"k6\":true}", f);
    fclose(f);
    assert_null(report_json_read(path, err, sizeof(err)));
    assert_non_null(strstr(err, "not an apigate load report"));
    unlink(path);
    assert_null(report_json_read("/nonexistent/x.json", err, sizeof(err)));
}

/* A report edited by hand or written by another tool: members of the wrong JSON type and numbers
 * out of range are read as 0 or clamped; they never crash the reader (an array where the status
 * map belongs used to pass its unnamed items to strtol(NULL)). */
static void test_json_foreign_members(void **state)
{
    (void)state;
    char path[256], err[256];
    snprintf(path, sizeof(path), "/tmp/test_load_merge_%d_foreign.json", (int)getpid());
    static const char *const docs[] = {
        "{\"apigate_load\":1,\"status\":[200,503],\"errors\":[1,2],",
        "{\"apigate_load\":1,\"status\":{\"200\":-5,\"503\":1e300},\"errors\":{\"reset\":-1},"
        "\"started_at\":1e300,\"totals\":{\"requests\":1e300,\"max_lag_ms\":-1e300},"
        "\"series\":[{\"t\":-1e300,\"p95_ms\":1e300,\"p50_ms\":-3}],",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "%s\"hist\":{\"count\":0,\"sum_us\":0,\"min_us\":0,\"max_us\":0,"
                   "\"buckets\":[]}}",
                docs[i]);
        fclose(f);
        struct load_result *r = report_json_read(path, err, sizeof(err));
        assert_non_null(r);
        assert_int_equal(r->status[200], 0);
        assert_int_equal(r->errors[LERR_RESET], 0);
        if (i == 1) {
            assert_true(r->status[503] == UINT64_MAX);
            assert_true(r->started_at == INT64_MAX);
            assert_true(r->reqs == UINT64_MAX);
            assert_int_equal(r->max_lag_us, 0);
            assert_int_equal(r->nseries, 1);
            assert_true(r->series[0].t == INT64_MIN);
            assert_true(r->series[0].p95_us == UINT64_MAX);
            assert_int_equal(r->series[0].p50_us, 0);
        }
        result_destroy(r);
    }
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_equals_both),
        cmocka_unit_test(test_json_rejects_garbage),
        cmocka_unit_test(test_json_foreign_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
