/* Scenario files: a full example loads into the expected plan, requests, checks and thresholds,
 * static requests get their exact bytes prebuilt, and each kind of bad input is reported as
 * "file:line:col: key: …" at the right place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "load/internal.h"

static char path[256];
static char errtext[8192];

/* Writes <yaml> to a temp file and loads it; the errors go to errtext. */
static struct scenario *load(const char *yaml)
{
    snprintf(path, sizeof(path), "/tmp/test_load_scenario_%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    FILE *e = fmemopen(errtext, sizeof(errtext) - 1, "w");
    struct scenario *s = scenario_load(path, e);
    fclose(e);
    unlink(path);
    return s;
}

/* The error output contains "<path>:<where>" followed by <msg> on the same line. */
static void expect_error(const char *yaml, const char *where, const char *msg)
{
    memset(errtext, 0, sizeof(errtext));
    struct scenario *s = load(yaml);
    if (s != NULL)
        fail_msg("expected an error for:\n%s", yaml);
    char want[512];
    snprintf(want, sizeof(want), "%s:%s", path, where);
    const char *line = strstr(errtext, want);
    if (line == NULL || strstr(line, msg) == NULL ||
        (strchr(line, '\n') && strstr(line, msg) > strchr(line, '\n')))
        fail_msg("wanted '%s ... %s' in:\n%s", want, msg, errtext);
}

static const char good[] = "base_url: http://127.0.0.1:9/api\n"
                           "stages:\n"
                           "  - {duration: 2m, target: 100}\n"
                           "  - {duration: 1m, target: 100}\n"
                           "  - {duration: 30s, target: 0}\n"
                           "threads: 2\n"
                           "requests:\n"
                           "  - name: products\n"
                           "    path: /catalog/products\n"
                           "    weight: 3\n"
                           "    checks:\n"
                           "      - status: [200, 304]\n"
                           "      - header: ETag\n"
                           "  - name: login\n"
                           "    method: post\n"
                           "    path: /auth/login\n"
                           "    headers: {Content-Type: application/json}\n"
                           "    body: '{\"user\":\"u{{rand 1 1000}}\"}'\n"
                           "    think: 100ms..1s\n"
                           "    checks: {body_contains: token, latency_under: 500ms}\n"
                           "thresholds:\n"
                           "  http_req_duration: ['p(95)<500', 'avg<200']\n"
                           "  'http_req_duration{name:login}': ['p(99)<800']\n"
                           "  http_req_failed: ['rate<0.1']\n";

static void test_good(void **state)
{
    (void)state;
    struct scenario *s = load(good);
    if (s == NULL)
        fail_msg("%s", errtext);
    assert_int_equal(s->plan.kind, SCHED_VUS);
    assert_int_equal(s->plan.nstages, 3);
    assert_int_equal(s->plan.total_us, 210000000ull);
    assert_int_equal(s->max_vus, 100);
    assert_int_equal(s->threads, 2);
    assert_int_equal(s->nreqs, 2);
    assert_string_equal(s->reqs[0].name, "products");
    assert_string_equal(s->reqs[0].method, "GET");
    assert_int_equal(s->reqs[0].weight, 3);
    assert_int_equal(s->reqs[0].nchecks, 2);
    assert_string_equal(s->reqs[0].checks[0].label, "status in [200, 304]");
    assert_string_equal(s->reqs[1].method, "POST");
    assert_int_equal(s->reqs[1].think_min_us, 100000);
    assert_int_equal(s->reqs[1].think_max_us, 1000000);
    assert_int_equal(s->reqs[1].nchecks, 2);
    assert_int_equal(s->nth, 4);
    assert_string_equal(s->th[2].tag, "login");

    char err[256];
    assert_int_equal(scenario_prepare(s, err, sizeof(err)), 0);
    assert_int_equal(s->total_weight, 4);
    assert_int_equal(s->nchecks, 4);
    assert_false(s->reqs[0].dynamic);
    assert_true(s->reqs[1].dynamic);
    assert_true(s->reqs[1].need_body);
    assert_int_equal(s->reqs[0].header_checks, 2u);
    const char want[] = "GET /api/catalog/products HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"
                        "User-Agent: apigate-load\r\n\r\n";
    assert_int_equal(buf_pending(&s->reqs[0].prebuilt), strlen(want));
    assert_memory_equal(buf_head(&s->reqs[0].prebuilt), want, strlen(want));
    /* The templated body is rendered with its own Content-Length. */
    uint64_t rng = 7;
    _Atomic uint64_t seq = 0;
    struct buf scratch = BUF_INIT, out = BUF_INIT;
    struct tmpl_ctx ctx = {&rng, &seq, &scratch, NULL};
    scenario_render(s, &s->reqs[1], &ctx, &out);
    buf_append(&out, "", 1);
    const char *body = strstr(out.data, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    char cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(out.data, cl));
    assert_memory_equal(out.data, "POST /api/auth/login HTTP/1.1\r\n", 31);
    assert_memory_equal(body, "{\"user\":\"u", 10);
    buf_deinit(&scratch);
    buf_deinit(&out);
    scenario_destroy(s);
}

static void test_default_headers(void **state)
{
    (void)state;
    struct scenario *s = load("base_url: http://127.0.0.1:9\n"
                              "vus: 1\n"
                              "duration: 1s\n"
                              "headers: {Accept: text/plain, X-Env: '{{env AG_SCEN_ENV}}'}\n"
                              "requests:\n"
                              "  - {path: /a}\n"
                              "  - {path: /b, headers: {accept: application/json}}\n");
    assert_null(s); /* AG_SCEN_ENV is not set: an error, not an empty header */
    assert_non_null(strstr(errtext, "AG_SCEN_ENV"));
    setenv("AG_SCEN_ENV", "prod", 1);
    s = load("base_url: http://127.0.0.1:9\n"
             "vus: 1\n"
             "duration: 1s\n"
             "headers: {Accept: text/plain, X-Env: '{{env AG_SCEN_ENV}}'}\n"
             "requests:\n"
             "  - {path: /a}\n"
             "  - {path: /b, headers: {accept: application/json}}\n");
    if (s == NULL)
        fail_msg("%s", errtext);
    char err[256];
    assert_int_equal(scenario_prepare(s, err, sizeof(err)), 0);
    struct buf *a = &s->reqs[0].prebuilt, *b = &s->reqs[1].prebuilt;
    buf_append(a, "", 1);
    buf_append(b, "", 1);
    assert_non_null(strstr(buf_head(a), "\r\nAccept: text/plain\r\nX-Env: prod\r\n"));
    /* the request's own Accept replaced the default, in place; the other default stays */
    assert_non_null(strstr(buf_head(b), "\r\nAccept: application/json\r\nX-Env: prod\r\n"));
    assert_null(strstr(buf_head(b), "text/plain"));
    scenario_destroy(s);
}

static void test_open_model(void **state)
{
    (void)state;
    struct scenario *s = load("base_url: http://127.0.0.1:9\n"
                              "executor: arrival_rate\n"
                              "rate: 500/s\n"
                              "duration: 30s\n"
                              "requests: [{path: /}]\n");
    if (s == NULL)
        fail_msg("%s", errtext);
    assert_int_equal(s->plan.kind, SCHED_RATE);
    assert_true(s->plan.start == 500.0);
    assert_int_equal(s->plan.total_us, 30000000ull);
    assert_int_equal(s->pre_vus, 50);
    assert_int_equal(s->max_vus, 500);
    assert_string_equal(s->reqs[0].name, "GET /");
    scenario_destroy(s);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("base_url: http://h\nrequests: [{path: '/x/{{nope}}'}]\n",
                 "2:", "path: unknown template function 'nope'");
    expect_error("base_url: http://h\nvus: 1\nduration: 1s\nrequests:\n  - path: /a\n    body: "
                 "'x{{rand 9 1}}'\n",
                 "6:", "body: rand");
    expect_error("base_url: http://h\nrequests: [{path: /a\n", "", "");
    expect_error(
        "base_url: http://h\nstages:\n  - {duration: 0s, target: 10}\nrequests: [{path: /}]\n",
        "3:", "stages.duration: a stage must last longer than 0");
    expect_error(
        "base_url: http://h\nstages:\n  - {duration: 10s, target: -1}\nrequests: [{path: /}]\n",
        "3:", "stages.target");
    expect_error("base_url: http://h\nstages:\n  - {duration: 10s}\nrequests: [{path: /}]\n",
                 "3:", "needs both 'duration' and 'target'");
    expect_error("base_url: http://h\nstages: [{duration: 5s, target: 0}]\nrequests: [{path: /}]\n",
                 "2:", "never starts anything");
    expect_error("base_url: ftp://h\nvus: 1\nduration: 1s\nrequests: [{path: /}]\n",
                 "1:11:", "base_url:");
    expect_error("vus: 1\nduration: 1s\nrequests: [{path: /}]\n", "1:1:", "base_url: required");
    expect_error("base_url: http://h\nvus: 1\nduration: 1s\nrequest: [{path: /}]\n",
                 "4:1:", "unknown key 'request'");
    expect_error("base_url: http://h\nvus: 1\nduration: 1s\nrequests: [{path: x}]\n",
                 "4:", "must start with '/'");
    expect_error("base_url: http://h\nvus: 1\nduration: 1s\nrequests: [{path: /}]\n"
                 "thresholds:\n  http_req_duration: ['p95<500']\n",
                 "6:", "thresholds: 'p95<500'");
    expect_error("base_url: http://h\nvus: 1\nduration: 1s\nrequests: [{path: /}]\n"
                 "thresholds:\n  'http_req_duration{name:nobody}': ['p(95)<500']\n",
                 "6:3:", "no request is named 'nobody'");
    expect_error("base_url: http://h\nvus: 1\nduration: 1s\n"
                 "requests: [{path: /, checks: [{status: 99}]}]\n",
                 "4:", "not a status code");
    expect_error("base_url: http://h\nvus: 1\nduration: soon\nrequests: [{path: /}]\n",
                 "3:11:", "duration: 'soon' is not a duration");
    expect_error("base_url: http://h\nexecutor: vus\nvus: 2\nrate: 10/s\nduration: 1s\n"
                 "requests: [{path: /}]\n",
                 "4:7:", "rate: only for the arrival_rate executor");
    expect_error("base_url: http://h\nexecutor: arrival_rate\nvus: 2\nrate: 10/s\nduration: 1s\n"
                 "requests: [{path: /}]\n",
                 "3:6:", "vus: only for the vus executor");
    expect_error("base_url: http://h\nexecutor: arrival_rate\nrate: 10/s\nduration: 1s\n"
                 "pre_allocated_vus: 5\nmax_vus: 2\nrequests: [{path: /}]\n",
                 "6:", "below pre_allocated_vus");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_default_headers),
        cmocka_unit_test(test_open_model),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
