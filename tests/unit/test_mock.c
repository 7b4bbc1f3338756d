/* The mock's pure parts: latency distributions (means and quantiles from a seeded generator),
 * route patterns and query lookup, the shared DB pool's FIFO hand-over, profile parsing with
 * file:line:col errors, body padding and per-id bodies. No sockets, no sleeps. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mock/internal.h"

#define N_SAMPLES 200000

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorted samples of <l> (caller frees). */
static double *samples(const struct mock_latency *l, uint64_t seed)
{
    double *v = malloc(N_SAMPLES * sizeof(double));
    uint64_t rng = seed;
    for (size_t i = 0; i < N_SAMPLES; i++)
        v[i] = mock_dist_sample(l, &rng);
    qsort(v, N_SAMPLES, sizeof(double), cmp_double);
    return v;
}

static double mean_of(const double *v)
{
    double s = 0;
    for (size_t i = 0; i < N_SAMPLES; i++)
        s += v[i];
    return s / N_SAMPLES;
}

static double quantile(const double *v, double q)
{
    return v[(size_t)(q * (N_SAMPLES - 1))];
}

static void test_dist_fixed_and_none(void **state)
{
    (void)state;
    uint64_t rng = 1;
    struct mock_latency l = {.dist = MOCK_DIST_FIXED, .ms = 40};
    for (int i = 0; i < 100; i++)
        assert_true(mock_dist_sample(&l, &rng) == 40.0);
    struct mock_latency none = {.dist = MOCK_DIST_NONE, .ms = 40};
    assert_true(mock_dist_sample(&none, &rng) == 0.0);
}

static void test_dist_uniform(void **state)
{
    (void)state;
    struct mock_latency l = {.dist = MOCK_DIST_UNIFORM, .min = 10, .max = 30};
    double *v = samples(&l, 42);
    assert_true(v[0] >= 10 && v[N_SAMPLES - 1] <= 30);
    assert_true(fabs(mean_of(v) - 20) < 0.2);
    assert_true(fabs(quantile(v, 0.25) - 15) < 0.3);
    free(v);
}

static void test_dist_normal_clipped(void **state)
{
    (void)state;
    struct mock_latency l = {.dist = MOCK_DIST_NORMAL, .mean = 50, .stddev = 10};
    double *v = samples(&l, 7);
    assert_true(fabs(mean_of(v) - 50) < 0.3);
    /* the 84th percentile of a normal is mean + 1 stddev */
    assert_true(fabs(quantile(v, 0.8413) - 60) < 0.5);
    free(v);
    /* a wide normal never yields negative latency */
    struct mock_latency w = {.dist = MOCK_DIST_NORMAL, .mean = 1, .stddev = 10};
    v = samples(&w, 8);
    assert_true(v[0] >= 0);
    free(v);
}

static void test_dist_lognormal(void **state)
{
    (void)state;
    struct mock_latency l = {.dist = MOCK_DIST_LOGNORMAL, .median = 20, .sigma = 0.5};
    double *v = samples(&l, 9);
    assert_true(fabs(quantile(v, 0.5) - 20) < 0.4);
    /* mean of a log-normal: median * exp(sigma^2 / 2) */
    assert_true(fabs(mean_of(v) - 20 * exp(0.125)) < 0.4);
    free(v);
}

static void test_dist_pareto_tail_and_cap(void **state)
{
    (void)state;
    struct mock_latency l = {.dist = MOCK_DIST_PARETO, .min = 10, .alpha = 2};
    double *v = samples(&l, 11);
    assert_true(v[0] >= 10);
    /* P(X > x) = (x_m / x)^alpha: the 75th percentile is x_m * 2 when alpha = 2 */
    assert_true(fabs(quantile(v, 0.75) - 20) < 0.5);
    assert_true(fabs(quantile(v, 0.99) - 100) < 5);
    free(v);
    l.cap = 50;
    v = samples(&l, 12);
    assert_true(v[N_SAMPLES - 1] == 50.0);
    free(v);
}

static void test_dist_names(void **state)
{
    (void)state;
    enum mock_dist d;
    assert_int_equal(mock_dist_parse("lognormal", &d), 0);
    assert_int_equal(d, MOCK_DIST_LOGNORMAL);
    assert_int_equal(mock_dist_parse("pareto", &d), 0);
    assert_string_equal(mock_dist_name(d), "pareto");
    assert_int_equal(mock_dist_parse("gamma", &d), -1);
}

static int match(const char *pat, const char *path, struct mock_param *params)
{
    struct mock_pattern p;
    char err[128];
    assert_int_equal(mock_pattern_compile(&p, pat, err, sizeof(err)), 0);
    int n = mock_pattern_match(&p, path, strlen(path), params);
    /* params point into the pattern's names: copy what the test needs before freeing */
    static char names[MOCK_MAX_PARAMS][32];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "%s", params[i].name);
        params[i].name = names[i];
    }
    mock_pattern_free(&p);
    return n;
}

static void test_pattern_match(void **state)
{
    (void)state;
    struct mock_param pr[MOCK_MAX_PARAMS];
    assert_int_equal(match("/api/health", "/api/health", pr), 0);
    assert_int_equal(match("/api/health", "/api/healthz", pr), -1);
    assert_int_equal(match("/api/health", "/api/healt", pr), -1);
    assert_int_equal(match("/api/users/{id}", "/api/users/42", pr), 1);
    assert_string_equal(pr[0].name, "id");
    assert_int_equal(pr[0].value_len, 2);
    assert_memory_equal(pr[0].value, "42", 2);
    assert_int_equal(match("/api/users/{id}", "/api/users/", pr), -1);
    assert_int_equal(match("/api/users/{id}", "/api/users/4/x", pr), -1);
    assert_int_equal(match("/a/{x}/b/{y}", "/a/1/b/22", pr), 2);
    assert_memory_equal(pr[1].value, "22", 2);
    assert_int_equal(match("/static/*", "/static/a/b.css", pr), 0);
    assert_int_equal(match("/static/*", "/static", pr), 0);
    assert_int_equal(match("/static/*", "/staticx", pr), -1);
    assert_int_equal(match("/*", "/anything", pr), 0);
    assert_int_equal(match("/u/{id}/*", "/u/9/orders/1", pr), 1);
}

static void test_pattern_errors(void **state)
{
    (void)state;
    struct mock_pattern p;
    char err[128];
    assert_int_equal(mock_pattern_compile(&p, "api", err, sizeof(err)), -1);
    assert_int_equal(mock_pattern_compile(&p, "/a/*/b", err, sizeof(err)), -1);
    assert_int_equal(mock_pattern_compile(&p, "/a/{id", err, sizeof(err)), -1);
    assert_int_equal(mock_pattern_compile(&p, "/a/x{id}", err, sizeof(err)), -1);
    assert_int_equal(mock_pattern_compile(&p, "/a/{}", err, sizeof(err)), -1);
    assert_int_equal(mock_pattern_compile(&p, "/a?b", err, sizeof(err)), -1);
}

static void test_query_get(void **state)
{
    (void)state;
    const char *v;
    size_t n;
    const char *q = "a=1&user_id=42&empty=&flag";
    assert_true(mock_query_get(q, strlen(q), "user_id", &v, &n));
    assert_int_equal(n, 2);
    assert_memory_equal(v, "42", 2);
    assert_true(mock_query_get(q, strlen(q), "a", &v, &n));
    assert_int_equal(n, 1);
    assert_true(mock_query_get(q, strlen(q), "empty", &v, &n));
    assert_int_equal(n, 0);
    assert_true(mock_query_get(q, strlen(q), "flag", &v, &n));
    assert_int_equal(n, 0);
    assert_false(mock_query_get(q, strlen(q), "user", &v, &n));
    assert_false(mock_query_get(NULL, 0, "a", &v, &n));
}

static void test_pool_fifo_handover(void **state)
{
    (void)state;
    struct mock_pool *p = mock_pool_create(2, 3);
    struct mock_waiter w[6];
    memset(w, 0, sizeof(w));
    assert_int_equal(mock_pool_acquire(p, &w[0]), MOCK_POOL_GRANTED);
    assert_int_equal(mock_pool_acquire(p, &w[1]), MOCK_POOL_GRANTED);
    assert_int_equal(mock_pool_acquire(p, &w[2]), MOCK_POOL_QUEUED);
    assert_int_equal(mock_pool_acquire(p, &w[3]), MOCK_POOL_QUEUED);
    assert_int_equal(mock_pool_acquire(p, &w[4]), MOCK_POOL_QUEUED);
    assert_int_equal(mock_pool_acquire(p, &w[5]), MOCK_POOL_FULL); /* queue_limit 3 */
    uint64_t used, queued;
    mock_pool_counts(p, &used, &queued);
    assert_int_equal(used, 2);
    assert_int_equal(queued, 3);
    /* a timed-out waiter leaves; the others keep their order */
    assert_true(mock_pool_cancel(p, &w[3]));
    assert_ptr_equal(mock_pool_release(p), &w[2]);
    assert_int_equal(w[2].state, MOCK_WAIT_GRANTED);
    /* cancelling a granted waiter fails: its grant is on its way */
    assert_false(mock_pool_cancel(p, &w[2]));
    assert_ptr_equal(mock_pool_release(p), &w[4]);
    mock_pool_counts(p, &used, &queued);
    assert_int_equal(used, 2);
    assert_int_equal(queued, 0);
    /* a late arrival cannot overtake: with no waiter the slot goes back to free */
    assert_null(mock_pool_release(p));
    assert_null(mock_pool_release(p));
    mock_pool_counts(p, &used, &queued);
    assert_int_equal(used, 0);
    mock_pool_destroy(p);
}

static struct mock_profile *parse(const char *yaml, struct buf *err)
{
    return mock_profile_parse(yaml, strlen(yaml), "t.yaml", 2, err);
}

static void test_profile_default_parses(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    struct mock_profile *p = parse(mock_profile_default_yaml, &err);
    assert_non_null(p);
    assert_int_equal(p->pool_conf.size, 10);
    assert_true(p->pool_conf.service.dist == MOCK_DIST_FIXED && p->pool_conf.service.ms == 40);
    assert_int_equal(p->nroutes, 11);
    assert_string_equal(p->routes[0].name, "GET /api/users/{id}");
    assert_true(p->routes[0].db);
    mock_profile_unref(p);
    buf_deinit(&err);
}

static void test_profile_full(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    struct mock_profile *p = parse(
        "global:\n"
        "  db_pool: {size: 3, service: {dist: uniform, min: 5ms, max: 15}, queue_timeout: 2s,\n"
        "            queue_limit: 50}\n"
        "  cold_start: {idle: 30s, extra: 2s}\n"
        "  stall: {every: 5s, for: 1s}\n"
        "routes:\n"
        "  - name: slow\n"
        "    method: post\n"
        "    path: /x/{id}\n"
        "    latency: {dist: pareto, min: 2ms, alpha: 1.5}\n"
        "    error_rate: 5%\n"
        "    headers: {X-A: b}\n"
        "    etag: true\n"
        "  - {path: /y, latency: 20, chunked: true, close: true, body_size: 2KB}\n",
        &err);
    assert_non_null(p);
    assert_int_equal(p->pool_conf.size, 3);
    assert_true(p->pool_conf.service.dist == MOCK_DIST_UNIFORM);
    assert_true(p->pool_conf.service.max == 15); /* bare number in a latency map: ms */
    assert_int_equal(p->pool_conf.queue_timeout_ms, 2000);
    assert_int_equal(p->cold_idle_ms, 30000);
    assert_int_equal(p->stall_for_ms, 1000);
    assert_string_equal(p->routes[0].name, "slow");
    assert_string_equal(p->routes[0].method, "POST"); /* upper-cased */
    assert_true(p->routes[0].latency.dist == MOCK_DIST_PARETO);
    assert_true(p->routes[0].latency.cap > 0); /* a default cap bounds the tail */
    assert_true(fabs(p->routes[0].error_rate - 0.05) < 1e-9);
    assert_string_equal(p->routes[0].headers, "X-A: b\r\n");
    assert_true(p->routes[1].latency.dist == MOCK_DIST_FIXED && p->routes[1].latency.ms == 20);
    assert_true(p->routes[1].chunked && p->routes[1].close);
    assert_int_equal(p->routes[1].body_size, 2048);
    mock_profile_unref(p);
    buf_deinit(&err);
}

/* Each bad profile names the file, line and column, and the key. */
static void test_profile_errors(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        const char *expect;
    } cases[] = {
        {"routes:\n  - {path: /a, latncy: 5ms}\n", "t.yaml:2:16: route: unknown key 'latncy'"},
        {"routes:\n  - {path: /a, latency: fast}\n",
         "t.yaml:2:25: latency: 'fast' is not a duration"},
        {"routes:\n  - {path: a}\n", "t.yaml:2:12: path: 'a': must start with '/'"},
        {"routes:\n  - {path: /a, db: true}\n", "db: route uses the DB pool but global.db_pool"},
        {"routes:\n  - {path: /a, latency: {dist: gamma, ms: 1}}\n",
         "unknown distribution 'gamma'"},
        {"routes:\n  - {path: /a, latency: {dist: uniform, min: 5}}\n", "uniform latency needs"},
        {"routes:\n  - {path: /a, error_rate: 2}\n", "error_rate: '2' is not a fraction"},
        {"routes:\n  - {path: /a, status: 99}\n", "status: '99' is not an integer in 200..599"},
        {"global: {stall: {every: 1s, for: 2s}}\nroutes: []\n", "stall: needs 'every' > 'for'"},
        {"routes:\n  - {path: /a, handler: nope}\n", "unknown handler 'nope'"},
        {"routes:\n  - {path: /a, headers: {'Bad Name': x}}\n", "is not a header name"},
        {"rotes: []\n", "t.yaml:1:1: profile: unknown key 'rotes'"},
        {"routes: [\n", "t.yaml:"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf err = BUF_INIT;
        struct mock_profile *p = parse(cases[i].yaml, &err);
        buf_append(&err, "", 1);
        if (p || !strstr(err.data, cases[i].expect)) {
            fprintf(stderr, "case %zu: expected '%s', got '%s'\n", i, cases[i].expect,
                    err.data ? err.data : "(accepted)");
            fail();
        }
        buf_deinit(&err);
    }
}

static void test_body_padding(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_append_str(&b, "{\"a\":1}");
    mock_body_pad(&b, 1024);
    assert_int_equal(buf_pending(&b), 1024);
    assert_memory_equal(buf_head(&b) + 1024 - 2, "\"}", 2);
    buf_reset(&b);
    buf_append_str(&b, "{}");
    mock_body_pad(&b, 100);
    assert_int_equal(buf_pending(&b), 100);
    assert_memory_equal(buf_head(&b), "{\"padding\":\"x", 13);
    buf_reset(&b);
    buf_append_str(&b, "{\"a\":1}");
    mock_body_pad(&b, 5); /* already bigger: untouched */
    assert_int_equal(buf_pending(&b), 7);
    buf_deinit(&b);
}

/* Bodies depend on the id and on the user, so a wrong cache key is visible. */
static void test_body_depends_on_request(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    struct mock_profile *p = parse(mock_profile_default_yaml, &err);
    assert_non_null(p);
    const struct mock_route *users = &p->routes[0];
    struct h1_request req;
    memset(&req, 0, sizeof(req));
    req.method_id = H1_M_GET;
    struct mock_param a = {"id", "7", 1}, b = {"id", "8", 1};
    struct mock_reqinfo ra = {&req, &a, 1, NULL, 0}, rb = {&req, &b, 1, NULL, 0};
    struct buf x = BUF_INIT, y = BUF_INIT;
    assert_int_equal(mock_body_build(users, &ra, &x), 200);
    assert_int_equal(mock_body_build(users, &rb, &y), 200);
    assert_int_equal(buf_pending(&x), 1024);
    assert_true(buf_pending(&x) == buf_pending(&y));
    assert_true(memcmp(buf_head(&x), buf_head(&y), buf_pending(&x)) != 0);
    buf_append(&x, "", 1);
    assert_non_null(strstr(x.data, "\"id\":\"7\""));

    /* /me: 401 without a bearer token, the token's user with one */
    const struct mock_route *me = &p->routes[7];
    assert_int_equal(me->handler, MOCK_H_ME);
    buf_reset(&x);
    struct mock_reqinfo rm = {&req, NULL, 0, NULL, 0};
    assert_int_equal(mock_body_build(me, &rm, &x), 401);
    struct h1_header h = {"Authorization", 13, "Bearer tok-alice", 16};
    req.headers = &h;
    req.nheaders = 1;
    buf_reset(&x);
    assert_int_equal(mock_body_build(me, &rm, &x), 200);
    buf_append(&x, "", 1);
    assert_non_null(strstr(x.data, "\"user\":\"alice\""));

    /* login reads JSON or form bodies */
    const struct mock_route *login = &p->routes[6];
    const char *jb = "{\"user\": \"bob\", \"password\": \"x\"}";
    struct mock_reqinfo rl = {&req, NULL, 0, jb, strlen(jb)};
    buf_reset(&x);
    assert_int_equal(mock_body_build(login, &rl, &x), 200);
    buf_append(&x, "", 1);
    assert_non_null(strstr(x.data, "\"token\":\"tok-bob\""));
    rl.body = "password=x&user=carol";
    rl.body_len = strlen(rl.body);
    buf_reset(&x);
    assert_int_equal(mock_body_build(login, &rl, &x), 200);
    buf_append(&x, "", 1);
    assert_non_null(strstr(x.data, "tok-carol"));
    rl.body = "{}";
    rl.body_len = 2;
    buf_reset(&x);
    assert_int_equal(mock_body_build(login, &rl, &x), 400);

    buf_deinit(&x);
    buf_deinit(&y);
    buf_deinit(&err);
    mock_profile_unref(p);
}

static void test_stats_counts(void **state)
{
    (void)state;
    struct mock_stats *s = mock_stats_create(2, 3);
    mock_stats_count(s, 0, 1, 200);
    mock_stats_count(s, 1, 1, 200);
    mock_stats_count(s, 1, 1, 503);
    mock_stats_count(s, 0, 3, 404); /* unmatched slot */
    assert_int_equal(mock_stats_get(s, 1, 0), 3);
    assert_int_equal(mock_stats_get(s, 1, 200), 2);
    assert_int_equal(mock_stats_get(s, 1, 503), 1);
    assert_int_equal(mock_stats_get(s, 3, 404), 1);
    assert_int_equal(mock_stats_get(s, 0, 0), 0);
    mock_stats_reset(s);
    assert_int_equal(mock_stats_get(s, 1, 0), 0);
    mock_stats_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dist_fixed_and_none),
        cmocka_unit_test(test_dist_uniform),
        cmocka_unit_test(test_dist_normal_clipped),
        cmocka_unit_test(test_dist_lognormal),
        cmocka_unit_test(test_dist_pareto_tail_and_cap),
        cmocka_unit_test(test_dist_names),
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_pattern_errors),
        cmocka_unit_test(test_query_get),
        cmocka_unit_test(test_pool_fifo_handover),
        cmocka_unit_test(test_profile_default_parses),
        cmocka_unit_test(test_profile_full),
        cmocka_unit_test(test_profile_errors),
        cmocka_unit_test(test_body_padding),
        cmocka_unit_test(test_body_depends_on_request),
        cmocka_unit_test(test_stats_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
