/* Metrics registry and exposition: per-thread slots summed at read, gauge deltas, histogram
 * buckets, label escaping, Prometheus text parsed back line by line, and
 * `promtool check metrics` on the output when promtool is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/hist.h"
#include "metrics/metrics.h"

/* Value of the exposition line that starts with <series> followed by a space; -1 if absent. */
static double prom_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static void test_counters_summed_over_slots(void **state)
{
    (void)state;
    struct metrics *m = metrics_create();
    struct metrics_slot *a = metrics_slot_get(m);
    struct metrics_slot *b = metrics_slot_get(m);
    const char *labels[] = {"upstream", "server", NULL};
    int fam = metrics_family(m, METRICS_COUNTER, "apigate_upstream_connects_total",
                             "Upstream connections opened.", labels);
    assert_true(fam >= 0);
    const char *v1[] = {"api", "127.0.0.1:9000", NULL};
    const char *v2[] = {"api", "127.0.0.1:9001", NULL};
    metrics_ref r1 = metrics_series(m, fam, v1);
    metrics_ref r2 = metrics_series(m, fam, v2);
    assert_int_not_equal(r1, r2);
    assert_int_equal(metrics_series(m, fam, v1), r1); /* same tuple, same series */
    metrics_counter_add(a, r1, 5);
    metrics_counter_inc(b, r1);
    metrics_counter_add(b, r2, 7);
    assert_int_equal(metrics_read(m, r1, METRICS_COUNTER), 6);
    assert_int_equal(metrics_read(m, r2, METRICS_COUNTER), 7);
    assert_int_equal(metrics_lookup(m, "apigate_upstream_connects_total", v2), r2);
    const char *v3[] = {"api", "nope", NULL};
    assert_int_equal(metrics_lookup(m, "apigate_upstream_connects_total", v3), METRICS_REF_NONE);

    /* Same family registered again (a second pool) is the same family; a mismatch is refused. */
    assert_int_equal(metrics_family(m, METRICS_COUNTER, "apigate_upstream_connects_total", "x",
                                    labels),
                     fam);
    assert_int_equal(metrics_family(m, METRICS_GAUGE, "apigate_upstream_connects_total", "x",
                                    labels),
                     -1);
    assert_int_equal(metrics_family(m, METRICS_COUNTER, "bad-name", "x", NULL), -1);
    const char *bad[] = {"__reserved", NULL};
    assert_int_equal(metrics_family(m, METRICS_COUNTER, "ok_total", "x", bad), -1);
    const char *le[] = {"le", NULL};
    assert_int_equal(metrics_family(m, METRICS_HISTOGRAM, "h_seconds", "x", le), -1);
    /* Wrong number of values. */
    assert_int_equal(metrics_series1(m, fam, "api"), METRICS_REF_NONE);

    /* A full registry hands out METRICS_REF_NONE, which every update ignores. */
    int many = metrics_family(m, METRICS_COUNTER, "many_total", "x", (const char *[]){"i", NULL});
    metrics_ref last = 0;
    char v[16];
    for (int i = 0; i < METRICS_MAX_VALUES + 10; i++) {
        snprintf(v, sizeof(v), "%d", i);
        last = metrics_series1(m, many, v);
    }
    assert_int_equal(last, METRICS_REF_NONE);
    metrics_counter_inc(a, last);
    metrics_destroy(m);
}

static void test_gauges_and_set(void **state)
{
    (void)state;
    struct metrics *m = metrics_create();
    struct metrics_slot *a = metrics_slot_get(m);
    struct metrics_slot *b = metrics_slot_get(m);
    const char *labels[] = {"state", NULL};
    int fam = metrics_family(m, METRICS_GAUGE, "apigate_pool_connections", "Pool conns.", labels);
    metrics_ref in_use = metrics_series1(m, fam, "in_use");
    metrics_gauge_add(a, in_use, 3);
    metrics_gauge_add(b, in_use, 2);
    metrics_gauge_add(a, in_use, -4); /* a connection acquired on one thread, released... */
    assert_int_equal(metrics_read(m, in_use, METRICS_GAUGE), 1);
    metrics_gauge_add(b, in_use, -2);
    assert_int_equal(metrics_read(m, in_use, METRICS_GAUGE), -1); /* signed sum */

    int up = metrics_family(m, METRICS_GAUGE_SET, "apigate_upstream_healthy", "1 up.", NULL);
    metrics_ref ur = metrics_series(m, up, NULL);
    metrics_gauge_set(m, ur, 1);
    metrics_gauge_set(m, ur, 0);
    assert_int_equal(metrics_read(m, ur, METRICS_GAUGE_SET), 0);
    metrics_gauge_set(m, ur, 1);
    assert_int_equal(metrics_read(m, ur, METRICS_GAUGE_SET), 1);

    /* A counter kept elsewhere (restarts in shared memory): exposed as a counter. */
    int rs = metrics_family(m, METRICS_COUNTER_SET, "apigate_worker_restarts_total", "Restarts.",
                            NULL);
    metrics_ref rr = metrics_series(m, rs, NULL);
    metrics_counter_set(m, rr, 3);
    assert_int_equal(metrics_read(m, rr, METRICS_COUNTER_SET), 3);
    /* A counter of seconds is added in microseconds by each thread, rendered in seconds. */
    int bt = metrics_family(m, METRICS_COUNTER, "apigate_loop_busy_poll_seconds_total", "Poll.",
                            NULL);
    metrics_ref br = metrics_series(m, bt, NULL);
    metrics_counter_add(a, br, 2500000);
    metrics_counter_add(b, br, 37);
    struct buf out = BUF_INIT;
    metrics_render_prom(m, &out);
    buf_append(&out, "", 1);
    assert_non_null(strstr(out.data, "# TYPE apigate_worker_restarts_total counter\n"
                                     "apigate_worker_restarts_total 3\n"));
    assert_non_null(strstr(out.data, "# TYPE apigate_loop_busy_poll_seconds_total counter\n"
                                     "apigate_loop_busy_poll_seconds_total 2.500037\n"));
    buf_deinit(&out);
    metrics_destroy(m);
}

/* A slot created after a histogram series was registered gets its histogram too, and a series
 * registered after the slots exist reaches every slot. */
static void test_histograms(void **state)
{
    (void)state;
    struct metrics *m = metrics_create();
    struct metrics_slot *a = metrics_slot_get(m);
    const char *labels[] = {"upstream", NULL};
    int fam = metrics_family(m, METRICS_HISTOGRAM, "apigate_pool_wait_seconds", "Wait.", labels);
    metrics_ref r = metrics_series1(m, fam, "api");
    struct metrics_slot *b = metrics_slot_get(m);
    metrics_hist_observe_us(a, r, 300);     /* 0.3 ms */
    metrics_hist_observe_us(b, r, 2000);    /* 2 ms */
    metrics_hist_observe_us(b, r, 2000000); /* 2 s */
    metrics_hist_observe_us(a, METRICS_REF_NONE, 5); /* ignored, no crash */
    struct hist h;
    hist_init(&h);
    metrics_read_hist(m, r, &h);
    assert_int_equal(h.count, 3);

    struct buf out = BUF_INIT;
    metrics_render_prom(m, &out);
    buf_append(&out, "", 1);
    const char *t = out.data;
    assert_non_null(strstr(t, "# TYPE apigate_pool_wait_seconds histogram\n"));
    assert_true(prom_value(t, "apigate_pool_wait_seconds_bucket{upstream=\"api\",le=\"0.0005\"}") == 1);
    assert_true(prom_value(t, "apigate_pool_wait_seconds_bucket{upstream=\"api\",le=\"0.001\"}") == 1);
    assert_true(prom_value(t, "apigate_pool_wait_seconds_bucket{upstream=\"api\",le=\"0.0025\"}") == 2);
    assert_true(prom_value(t, "apigate_pool_wait_seconds_bucket{upstream=\"api\",le=\"1\"}") == 2);
    assert_true(prom_value(t, "apigate_pool_wait_seconds_bucket{upstream=\"api\",le=\"2.5\"}") == 3);
    assert_true(prom_value(t, "apigate_pool_wait_seconds_bucket{upstream=\"api\",le=\"+Inf\"}") == 3);
    assert_true(prom_value(t, "apigate_pool_wait_seconds_count{upstream=\"api\"}") == 3);
    double sum = prom_value(t, "apigate_pool_wait_seconds_sum{upstream=\"api\"}");
    assert_true(sum > 2.0022 && sum < 2.0024);

    /* Buckets are cumulative: every bucket line is ≥ the one before. */
    double prev = 0;
    for (size_t i = 0; i < metrics_le_count; i++) {
        char series[128];
        snprintf(series, sizeof(series), "apigate_pool_wait_seconds_bucket{upstream=\"api\",le=\"%g\"}",
                 metrics_le_seconds[i]);
        double v = prom_value(t, series);
        assert_true(v >= prev);
        prev = v;
    }
    /* Every bucket line equals hist_count_le() of the merged histogram at its boundary, so the
     * exported buckets agree with the percentiles of /stats. */
    for (int k = 0; k < 2000; k++)
        metrics_hist_observe_us(k % 2 ? a : b, r, (uint64_t)k * k * 7 + 100);
    buf_reset(&out);
    metrics_render_prom(m, &out);
    buf_append(&out, "", 1);
    hist_init(&h);
    metrics_read_hist(m, r, &h);
    for (size_t i = 0; i < metrics_le_count; i++) {
        char series[128];
        snprintf(series, sizeof(series), "apigate_pool_wait_seconds_bucket{upstream=\"api\",le=\"%g\"}",
                 metrics_le_seconds[i]);
        uint64_t le_us = (uint64_t)(metrics_le_seconds[i] * 1e6 + 0.5);
        assert_true(prom_value(out.data, series) == (double)hist_count_le(&h, le_us));
    }
    buf_deinit(&out);
    metrics_destroy(m);
}

static void test_escaping_and_no_labels(void **state)
{
    (void)state;
    struct metrics *m = metrics_create();
    struct metrics_slot *s = metrics_slot_get(m);
    const char *labels[] = {"route", NULL};
    int fam = metrics_family(m, METRICS_COUNTER, "x_total", "Help with \\ and\nnewline.", labels);
    metrics_ref r = metrics_series1(m, fam, "a\"b\\c\nd");
    metrics_counter_add(s, r, 2);
    int plain = metrics_family(m, METRICS_COUNTER, "y_total", "Plain.", NULL);
    metrics_counter_add(s, metrics_series(m, plain, NULL), 4);
    struct buf out = BUF_INIT;
    metrics_render_prom(m, &out);
    buf_append(&out, "", 1);
    assert_non_null(strstr(out.data, "# HELP x_total Help with \\\\ and\\nnewline.\n"));
    assert_true(prom_value(out.data, "x_total{route=\"a\\\"b\\\\c\\nd\"}") == 2);
    assert_true(prom_value(out.data, "y_total") == 4);
    buf_deinit(&out);
    metrics_destroy(m);
}

static struct metrics *sample_registry(void)
{
    struct metrics *m = metrics_create();
    struct metrics_slot *s = metrics_slot_get(m);
    const char *hl[] = {"http_route", "http_request_method", "http_response_status_code", NULL};
    int h = metrics_family(m, METRICS_HISTOGRAM, "http_server_request_duration_seconds",
                           "Duration of HTTP server requests.", hl);
    const char *v[] = {"/api/users/", "GET", "200", NULL};
    metrics_ref hr = metrics_series(m, h, v);
    for (uint64_t i = 1; i <= 1000; i++)
        metrics_hist_observe_us(s, hr, i * 100);
    const char *cl[] = {"upstream", "server", NULL};
    int c = metrics_family(m, METRICS_COUNTER, "apigate_upstream_connects_total", "Connects.", cl);
    const char *cv[] = {"api", "127.0.0.1:9000", NULL};
    metrics_counter_add(s, metrics_series(m, c, cv), 12);
    int g = metrics_family(m, METRICS_GAUGE, "apigate_pool_waiting", "Waiting.", NULL);
    metrics_gauge_add(s, metrics_series(m, g, NULL), 3);
    return m;
}

/* The official linter, when present: the exposition must pass `promtool check metrics`. */
static void test_promtool(void **state)
{
    (void)state;
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        skip();
        return;
    }
    struct metrics *m = sample_registry();
    struct buf out = BUF_INIT;
    metrics_render_prom(m, &out);
    char path[] = "/tmp/test_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fwrite(out.data, 1, out.len, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
    buf_deinit(&out);
    metrics_destroy(m);
}


/* Hand-over at reload (carry.c): counters and histograms of the old registry are added into a
 * slot of the new one; only families the new one registered (same type and labels) are carried,
 * new series of them are created; gauges are not carried; a cut snapshot is read safely. */
static void test_export_import(void **state)
{
    (void)state;
    struct metrics *old = metrics_create();
    struct metrics_slot *os = metrics_slot_get(old);
    const char *l_r[] = {"route", NULL};
    int oc = metrics_family(old, METRICS_COUNTER, "apigate_requests_total", "x", l_r);
    int oh = metrics_family(old, METRICS_HISTOGRAM, "apigate_route_request_duration_seconds", "x",
                            l_r);
    int og = metrics_family(old, METRICS_GAUGE, "apigate_connections_open", "x", NULL);
    int gone = metrics_family(old, METRICS_COUNTER, "apigate_gone_total", "x", NULL);
    int relabeled = metrics_family(old, METRICS_COUNTER, "apigate_relabeled_total", "x", l_r);
    metrics_counter_add(os, metrics_series1(old, oc, "/a"), 40);
    metrics_counter_add(os, metrics_series1(old, oc, "/b"), 2);
    metrics_ref h = metrics_series1(old, oh, "/a");
    metrics_hist_observe_us(os, h, 1500);
    metrics_hist_observe_us(os, h, 250000);
    metrics_gauge_add(os, metrics_series1(old, og, NULL), 9);
    metrics_counter_add(os, metrics_series1(old, gone, NULL), 5);
    metrics_counter_add(os, metrics_series1(old, relabeled, "/a"), 5);
    struct buf snap = BUF_INIT;
    metrics_export(old, &snap);
    metrics_destroy(old);

    struct metrics *m = metrics_create();
    struct metrics_slot *live = metrics_slot_get(m);
    int c = metrics_family(m, METRICS_COUNTER, "apigate_requests_total", "x", l_r);
    int hf = metrics_family(m, METRICS_HISTOGRAM, "apigate_route_request_duration_seconds", "x",
                            l_r);
    int g = metrics_family(m, METRICS_GAUGE, "apigate_connections_open", "x", NULL);
    const char *l_other[] = {"upstream", NULL};
    metrics_family(m, METRICS_COUNTER, "apigate_relabeled_total", "x", l_other);
    metrics_ref a = metrics_series1(m, c, "/a");
    metrics_counter_add(live, a, 1); /* counted by the new worker before the import */
    struct metrics_slot *base = metrics_slot_get(m);
    /* /a and /b of the counter, /a of the histogram: 3 (gauge, gone and relabeled dropped) */
    assert_int_equal(metrics_import(m, base, buf_head(&snap), buf_pending(&snap), false), 3);
    assert_int_equal(metrics_read(m, a, METRICS_COUNTER), 41);
    const char *vb[] = {"/b", NULL};
    metrics_ref b = metrics_lookup(m, "apigate_requests_total", vb);
    assert_int_not_equal(b, METRICS_REF_NONE); /* created by the import */
    assert_int_equal(metrics_read(m, b, METRICS_COUNTER), 2);
    struct hist out;
    hist_init(&out);
    metrics_read_hist(m, metrics_series1(m, hf, "/a"), &out);
    assert_int_equal(out.count, 2);
    assert_int_equal(out.sum_us, 251500);
    assert_int_equal(hist_count_le(&out, 2000), 1);
    assert_int_equal(metrics_read(m, metrics_series1(m, g, NULL), METRICS_GAUGE), 0);
    assert_int_equal(metrics_lookup(m, "apigate_gone_total", NULL), METRICS_REF_NONE);
    const char *va[] = {"/a", NULL};
    assert_int_equal(metrics_lookup(m, "apigate_relabeled_total", va), METRICS_REF_NONE);
    /* every cut of the snapshot is read without harm, never more than the whole */
    /* a later export of the same worker (its final totals) raises the carried values to its
     * own, never lowers one: /a 40 -> 50; an older one (42 < 50) changes nothing */
    struct metrics *fin = metrics_create();
    struct metrics_slot *fs = metrics_slot_get(fin);
    int fc = metrics_family(fin, METRICS_COUNTER, "apigate_requests_total", "x", l_r);
    int fh = metrics_family(fin, METRICS_HISTOGRAM, "apigate_route_request_duration_seconds", "x",
                            l_r);
    metrics_counter_add(fs, metrics_series1(fin, fc, "/a"), 50);
    metrics_ref fhr = metrics_series1(fin, fh, "/a");
    metrics_hist_observe_us(fs, fhr, 1500);
    metrics_hist_observe_us(fs, fhr, 250000);
    metrics_hist_observe_us(fs, fhr, 3000);
    struct buf later = BUF_INIT;
    metrics_export(fin, &later);
    metrics_destroy(fin);
    assert_int_equal(metrics_import(m, base, buf_head(&later), buf_pending(&later), true), 2);
    assert_int_equal(metrics_read(m, a, METRICS_COUNTER), 51); /* 50 carried + 1 live */
    assert_int_equal(metrics_read(m, b, METRICS_COUNTER), 2);  /* absent from it: kept */
    hist_init(&out);
    metrics_read_hist(m, metrics_series1(m, hf, "/a"), &out);
    assert_int_equal(out.count, 3);
    assert_int_equal(metrics_import(m, base, buf_head(&snap), buf_pending(&snap), true), 3);
    assert_int_equal(metrics_read(m, a, METRICS_COUNTER), 51);
    buf_deinit(&later);
    struct metrics_slot *junk = metrics_slot_get(m);
    for (size_t n = 0; n < buf_pending(&snap); n++)
        assert_true(metrics_import(m, junk, buf_head(&snap), n, false) <= 3);
    buf_deinit(&snap);
    metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_summed_over_slots),
        cmocka_unit_test(test_export_import),
        cmocka_unit_test(test_gauges_and_set),
        cmocka_unit_test(test_histograms),
        cmocka_unit_test(test_escaping_and_no_labels),
        cmocka_unit_test(test_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
