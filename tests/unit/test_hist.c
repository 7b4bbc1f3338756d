/* Histogram accuracy against exact percentiles of sorted data, merging, counts, JSON round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <math.h>

#include "core/hist.h"

#define N 100000

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static double rng_unit(void) { return (double)(rng_next() >> 11) / 9007199254740992.0; }
static double rng_normal(void)
{
    double u1 = rng_unit(), u2 = rng_unit();
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted <v>: the definition hist_percentile() follows. */
static uint64_t exact_percentile(const uint64_t *v, size_t n, double p)
{
    double r = ceil(p / 100.0 * (double)n - 1e-9);
    size_t rank = r < 1 ? 1 : (size_t)r;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static void check_against_exact(uint64_t *v, size_t n)
{
    struct hist *h = malloc(sizeof(*h));
    hist_init(h);
    long double sum = 0;
    for (size_t i = 0; i < n; i++) {
        hist_record(h, v[i]);
        sum += v[i];
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    static const double ps[] = {1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        uint64_t want = exact_percentile(v, n, ps[i]);
        uint64_t got = hist_percentile(h, ps[i]);
        double err = fabs((double)got - (double)want) / (double)want;
        if (err > 0.01)
            fail_msg("p%g: got %llu want %llu (err %.4f)", ps[i], (unsigned long long)got,
                     (unsigned long long)want, err);
        /* The layout promises better than 1%: half a bucket of 1/64. */
        assert_true(err <= 1.0 / 128 + 1e-12);
    }
    assert_int_equal(hist_count(h), n);
    assert_int_equal(hist_min(h), v[0]);
    assert_int_equal(hist_max(h), v[n - 1]);
    assert_int_equal(hist_percentile(h, 0), v[0]);
    assert_int_equal(hist_percentile(h, 100), v[n - 1]);
    double mean = (double)(sum / n);
    assert_true(fabs(hist_mean(h) - mean) <= 1e-9 * mean + 1e-9);
    free(h);
}

static void test_uniform(void **state)
{
    (void)state;
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++)
        v[i] = 1 + rng_next() % HIST_MAX_US;
    check_against_exact(v, N);
    free(v);
}

static void test_lognormal(void **state)
{
    (void)state;
    uint64_t *v = malloc(N * sizeof(*v));
    /* median ≈ 5 ms, long tail into seconds */
    for (size_t i = 0; i < N; i++) {
        double x = exp(log(5000.0) + 1.5 * rng_normal());
        if (x < 1)
            x = 1;
        if (x > HIST_MAX_US)
            x = HIST_MAX_US;
        v[i] = (uint64_t)x;
    }
    check_against_exact(v, N);
    free(v);
}

static void test_bimodal(void **state)
{
    (void)state;
    uint64_t *v = malloc(N * sizeof(*v));
    /* cache hits around 300 µs, misses around 80 ms */
    for (size_t i = 0; i < N; i++) {
        double x = (rng_next() % 100 < 85) ? 300 + 40 * rng_normal() : 80000 + 15000 * rng_normal();
        v[i] = x < 1 ? 1 : (uint64_t)x;
    }
    check_against_exact(v, N);
    free(v);
}

static void test_small_values_exact(void **state)
{
    (void)state;
    uint64_t v[200];
    for (size_t i = 0; i < 200; i++)
        v[i] = 1 + rng_next() % 127;
    check_against_exact(v, 200);
    for (uint64_t x = 0; x < HIST_SUB_COUNT; x++) {
        assert_int_equal(hist_bucket_of(x), x);
        assert_int_equal(hist_bucket_upper(x), x);
    }
}

static void test_bucket_layout(void **state)
{
    (void)state;
    /* Buckets are contiguous, increasing, and each holds exactly the values up to its upper. */
    uint64_t prev = 0;
    for (size_t i = 1; i < HIST_BUCKETS; i++) {
        uint64_t up = hist_bucket_upper(i);
        assert_true(up > prev);
        assert_int_equal(hist_bucket_of(prev + 1), i);
        assert_int_equal(hist_bucket_of(up), i);
        /* width ≤ 1/64 of the lowest value */
        assert_true((double)(up - prev) <= (double)(prev + 1) / 64.0 + 1.0);
        prev = up;
    }
    assert_true(hist_bucket_upper(HIST_BUCKETS - 1) >= HIST_MAX_US);
    assert_int_equal(hist_bucket_of(HIST_MAX_US * 1000), HIST_BUCKETS - 1);
    assert_int_equal(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
}

static void test_clamp_keeps_max(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    hist_record(&h, 1000);
    hist_record(&h, 3600ull * 1000000); /* an hour */
    assert_int_equal(hist_max(&h), 3600ull * 1000000);
    assert_int_equal(hist_percentile(&h, 100), 3600ull * 1000000);
    assert_int_equal(h.buckets[HIST_BUCKETS - 1], 1);
    /* p99 lands in the top bucket: the answer is its midpoint, not the exact hour */
    uint64_t p99 = hist_percentile(&h, 99);
    assert_true(p99 >= HIST_MAX_US && p99 <= 3600ull * 1000000);
}

static void test_empty(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    assert_int_equal(hist_percentile(&h, 50), 0);
    assert_int_equal(hist_min(&h), 0);
    assert_int_equal(hist_max(&h), 0);
    assert_true(hist_mean(&h) == 0.0);
    assert_int_equal(hist_count_le(&h, 1000), 0);
}

static void test_merge_halves(void **state)
{
    (void)state;
    struct hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));
    struct hist *empty = malloc(sizeof(*empty));
    hist_init(a);
    hist_init(b);
    hist_init(all);
    hist_init(empty);
    for (size_t i = 0; i < N; i++) {
        uint64_t x = (uint64_t)exp(log(2000.0) + 2.0 * rng_normal());
        hist_record(i % 2 ? a : b, x);
        hist_record(all, x);
    }
    hist_merge(a, b);
    assert_memory_equal(a, all, sizeof(*a));
    hist_merge(a, empty); /* an empty source must not spoil min */
    assert_memory_equal(a, all, sizeof(*a));
    hist_merge(empty, all);
    assert_memory_equal(empty, all, sizeof(*a));
    free(a);
    free(b);
    free(all);
    free(empty);
}

static void test_record_n_and_mean(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    hist_record_n(&h, 200, 3);
    hist_record_n(&h, 1000, 1);
    hist_record_n(&h, 5, 0); /* no-op */
    assert_int_equal(hist_count(&h), 4);
    assert_int_equal(hist_min(&h), 200);
    assert_true(hist_mean(&h) == 400.0);
    assert_int_equal(hist_percentile(&h, 75), 200);
    assert_int_equal(hist_percentile(&h, 76), 1000);
    /* saturating sum instead of wrapping */
    hist_record_n(&h, UINT64_MAX / 2, 4);
    assert_int_equal(h.sum_us, UINT64_MAX);
}

static void test_count_le(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    for (uint64_t i = 1; i <= 1000; i++)
        hist_record(&h, i * 1000); /* 1 ms .. 1 s */
    assert_int_equal(hist_count_le(&h, 999), 0);
    /* 1000 sits in [1000, 1007], which stands for 1003 (as p0.1 says): counted from there */
    assert_int_equal(hist_count_le(&h, 1002), 0);
    assert_int_equal(hist_count_le(&h, 1003), 1);
    assert_int_equal(hist_percentile(&h, 0.1), 1003);
    assert_int_equal(hist_count_le(&h, 1000000), 1000);
    assert_int_equal(hist_count_le(&h, UINT64_MAX), 1000);
    uint64_t n = hist_count_le(&h, 500000);
    /* 500 values are ≤ 500 ms; the bucket of 500 ms is 4096 µs wide (4 values of this data), so
     * the answer is off by at most 4 */
    assert_true(n >= 496 && n <= 504);
    /* monotonic */
    uint64_t prev = 0;
    for (uint64_t us = 0; us < 1100000; us += 777) {
        uint64_t c = hist_count_le(&h, us);
        assert_true(c >= prev);
        prev = c;
    }
}

static void test_count_le_agrees_with_percentile(void **state)
{
    (void)state;
    struct hist *h = malloc(sizeof(*h));
    hist_init(h);
    for (size_t i = 0; i < N; i++)
        hist_record(h, (uint64_t)exp(log(20000.0) + 1.2 * rng_normal()));
    for (double p = 0.5; p < 100; p += 0.5) {
        uint64_t us = hist_percentile(h, p);
        uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)N - 1e-9);
        /* the value reported for p has at least rank values at or under it... */
        assert_true(hist_count_le(h, us) >= rank);
        /* ...and anything under it has fewer */
        assert_true(hist_count_le(h, us - 1) < rank);
    }
    free(h);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    struct hist *h = malloc(sizeof(*h)), *back = malloc(sizeof(*back));
    hist_init(h);
    for (size_t i = 0; i < 5000; i++)
        hist_record(h, 1 + rng_next() % 2000000);
    struct buf b = BUF_INIT;
    hist_to_json(h, &b);
    buf_append(&b, "", 1);
    cJSON *j = cJSON_Parse(b.data);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "count")->valuedouble, 5000);
    assert_int_equal(hist_from_json(back, j), 0);
    assert_memory_equal(h, back, sizeof(*h));
    cJSON_Delete(j);

    /* empty */
    hist_init(h);
    buf_reset(&b);
    hist_to_json(h, &b);
    buf_append(&b, "", 1);
    assert_string_equal(b.data, "{\"count\":0,\"sum_us\":0,\"min_us\":0,\"max_us\":0,\"buckets\":[]}");
    j = cJSON_Parse(b.data);
    memset(back, 0xff, sizeof(*back));
    assert_int_equal(hist_from_json(back, j), 0);
    assert_memory_equal(h, back, sizeof(*h));
    cJSON_Delete(j);
    buf_deinit(&b);
    free(h);
    free(back);
}

static void test_json_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "[]",
        "{\"count\":1,\"sum_us\":5,\"min_us\":5,\"max_us\":5}",
        "{\"count\":2,\"sum_us\":5,\"min_us\":5,\"max_us\":5,\"buckets\":[[5,1]]}",
        "{\"count\":1,\"sum_us\":5,\"min_us\":5,\"max_us\":5,\"buckets\":[[99999,1]]}",
        "{\"count\":1,\"sum_us\":5,\"min_us\":5,\"max_us\":5,\"buckets\":[[-1,1]]}",
        "{\"count\":1,\"sum_us\":5,\"min_us\":5,\"max_us\":5,\"buckets\":[[5]]}",
        "{\"count\":1,\"sum_us\":5,\"min_us\":5,\"max_us\":5,\"buckets\":[[5,0.5]]}",
        "{\"count\":\"1\",\"sum_us\":5,\"min_us\":5,\"max_us\":5,\"buckets\":[[5,1]]}",
        "{\"count\":1,\"sum_us\":5,\"min_us\":9,\"max_us\":5,\"buckets\":[[5,1]]}",
        "{\"count\":1,\"sum_us\":5,\"min_us\":7,\"max_us\":7,\"buckets\":[[5,1]]}",
    };
    struct hist h;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        assert_non_null(j);
        hist_init(&h);
        hist_record(&h, 42);
        if (hist_from_json(&h, j) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(hist_count(&h), 1); /* untouched on failure */
        cJSON_Delete(j);
    }
    assert_int_equal(hist_from_json(&h, NULL), -1);
    const char *ok = "{\"count\":1,\"sum_us\":5,\"min_us\":5,\"max_us\":5,\"buckets\":[[5,1]]}";
    cJSON *j = cJSON_Parse(ok);
    assert_int_equal(hist_from_json(&h, j), 0);
    assert_int_equal(hist_percentile(&h, 50), 5);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),          cmocka_unit_test(test_lognormal),
        cmocka_unit_test(test_bimodal),          cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_bucket_layout),    cmocka_unit_test(test_clamp_keeps_max),
        cmocka_unit_test(test_empty),            cmocka_unit_test(test_merge_halves),
        cmocka_unit_test(test_record_n_and_mean), cmocka_unit_test(test_count_le),
        cmocka_unit_test(test_count_le_agrees_with_percentile),
        cmocka_unit_test(test_json_round_trip),  cmocka_unit_test(test_json_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
