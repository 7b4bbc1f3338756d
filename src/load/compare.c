/* `apigate load compare BEFORE.json AFTER.json`: the before/after table with deltas marked better
 * or worse; and `apigate load merge A.json B.json …`: the results of several generator machines
 * added into one (histograms add exactly, so merged percentiles are the percentiles of all the
 * requests, not an average of percentiles). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "load/internal.h"

#define COMPARE_SAME 0.02 /* changes under 2% are noise, not better or worse */

enum cmp_dir { CMP_HIGHER, CMP_LOWER, CMP_NEUTRAL };
enum cmp_unit { CMP_MS, CMP_PCT, CMP_NUM, CMP_RATE };

/* A value in its unit for the table. */
static void cmp__fmt(double v, enum cmp_unit u, char *out, size_t n)
{
    switch (u) {
    case CMP_MS:
        snprintf(out, n, "%.2f ms", v);
        break;
    case CMP_PCT:
        snprintf(out, n, "%.2f%%", v * 100.0);
        break;
    case CMP_NUM:
        snprintf(out, n, "%.0f", v);
        break;
    case CMP_RATE:
        snprintf(out, n, "%.1f/s", v);
        break;
    }
}

/* One row: before, after, the delta (relative, or in percentage points for rates) and the
 * verdict for a metric where higher (<dir> CMP_HIGHER) or lower is better. */
static void cmp__row(FILE *out, const char *name, double a, double b, enum cmp_unit u,
                     enum cmp_dir dir)
{
    char sa[32], sb[32], sd[32];
    cmp__fmt(a, u, sa, sizeof(sa));
    cmp__fmt(b, u, sb, sizeof(sb));
    const char *verdict = "";
    if (u == CMP_PCT) {
        /* Rates compare in percentage points: 1% → 0.5% errors is not "-50%" worth of news. */
        snprintf(sd, sizeof(sd), "%+.2f pp", (b - a) * 100.0);
    } else if (a != 0.0) {
        snprintf(sd, sizeof(sd), "%+.1f%%", (b - a) / fabs(a) * 100.0);
    } else {
        snprintf(sd, sizeof(sd), b == 0.0 ? "0" : "new");
    }
    if (dir != CMP_NEUTRAL) {
        double base = fabs(a) > 0 ? fabs(a) : 1.0;
        double rel = u == CMP_PCT ? (b - a) : (b - a) / base;
        double tol = u == CMP_PCT ? 0.001 : COMPARE_SAME;
        if (fabs(rel) <= tol)
            verdict = "same";
        else if ((rel > 0) == (dir == CMP_HIGHER))
            verdict = "better";
        else
            verdict = "worse";
    }
    fprintf(out, "  %-24s %14s %14s %12s  %s\n", name, sa, sb, sd, verdict);
}

/* Checks passed / all; 1 when a run had no checks, so "none" never reads as a regression. */
static double cmp__checks_rate(const struct load_result *r)
{
    uint64_t n = r->checks_pass + r->checks_fail;
    return n ? (double)r->checks_pass / (double)n : 1.0;
}

void compare_print(const struct load_result *a, const struct load_result *b, FILE *out)
{
    fprintf(out, "\n  before: %s (%s, %.1fs)\n  after:  %s (%s, %.1fs)\n\n",
            a->target ? a->target : "?", a->mode ? a->mode : "?", a->duration_s,
            b->target ? b->target : "?", b->mode ? b->mode : "?", b->duration_s);
    fprintf(out, "  %-24s %14s %14s %12s  %s\n", "metric", "before", "after", "delta", "");
    cmp__row(out, "requests/s", result_rps(a), result_rps(b), CMP_RATE, CMP_HIGHER);
    cmp__row(out, "requests", (double)a->reqs, (double)b->reqs, CMP_NUM, CMP_NEUTRAL);
    cmp__row(out, "latency avg", hist_mean(&a->h) / 1e3, hist_mean(&b->h) / 1e3, CMP_MS, CMP_LOWER);
    static const struct {
        const char *name;
        double p;
    } ps[] = {{"latency p50", 50}, {"latency p90", 90}, {"latency p95", 95}, {"latency p99", 99}};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        cmp__row(out, ps[i].name, (double)hist_percentile(&a->h, ps[i].p) / 1e3,
                 (double)hist_percentile(&b->h, ps[i].p) / 1e3, CMP_MS, CMP_LOWER);
    cmp__row(out, "latency max", (double)hist_max(&a->h) / 1e3, (double)hist_max(&b->h) / 1e3,
             CMP_MS, CMP_LOWER);
    cmp__row(out, "error rate", result_failed_rate(a), result_failed_rate(b), CMP_PCT, CMP_LOWER);
    cmp__row(out, "requests under 500ms", result_under(a, 500000), result_under(b, 500000), CMP_PCT,
             CMP_HIGHER);
    cmp__row(out, "requests under 1s", result_under(a, 1000000), result_under(b, 1000000), CMP_PCT,
             CMP_HIGHER);
    if (a->checks_pass + a->checks_fail + b->checks_pass + b->checks_fail)
        cmp__row(out, "checks passed", cmp__checks_rate(a), cmp__checks_rate(b), CMP_PCT,
                 CMP_HIGHER);
    if (a->dropped || b->dropped)
        cmp__row(out, "dropped iterations", (double)a->dropped, (double)b->dropped, CMP_NUM,
                 CMP_LOWER);
    /* Per endpoint, for the names both runs have. */
    bool header = false;
    for (size_t i = 0; i < a->neps; i++) {
        for (size_t j = 0; j < b->neps; j++) {
            if (strcmp(a->eps[i].name, b->eps[j].name) != 0)
                continue;
            if (!header) {
                fprintf(out, "\n  per endpoint (p95):\n");
                header = true;
            }
            cmp__row(out, a->eps[i].name, (double)hist_percentile(&a->eps[i].h, 95) / 1e3,
                     (double)hist_percentile(&b->eps[j].h, 95) / 1e3, CMP_MS, CMP_LOWER);
        }
    }
    fputc('\n', out);
}

int compare_main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: apigate load compare BEFORE.json AFTER.json\n\n"
               "Prints the before/after table of two JSON reports (apigate load --json):\n"
               "requests/s, latency avg/p50/p90/p95/p99/max, error rate, requests under\n"
               "500 ms and 1 s, checks, per-endpoint p95; each delta marked better or worse.\n");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: apigate load compare BEFORE.json AFTER.json\n");
        return 2;
    }
    char err[LOAD_ERR_LEN];
    struct load_result *a = report_json_read(argv[1], err, sizeof(err));
    if (a == NULL) {
        fprintf(stderr, "apigate load compare: %s\n", err);
        return 2;
    }
    struct load_result *b = report_json_read(argv[2], err, sizeof(err));
    if (b == NULL) {
        fprintf(stderr, "apigate load compare: %s\n", err);
        result_destroy(a);
        return 2;
    }
    compare_print(a, b, stdout);
    result_destroy(a);
    result_destroy(b);
    return 0;
}

int merge_main(int argc, char **argv)
{
    const char *json = NULL, *html = NULL;
    const char **files = xcalloc((size_t)argc, sizeof(char *));
    size_t nf = 0;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: apigate load merge A.json B.json ... [--json OUT.json] [--html "
                   "OUT.html]\n\n"
                   "Adds the JSON reports of several generator machines into one summary:\n"
                   "counts add, histograms merge exactly, thresholds are evaluated again on the\n"
                   "whole. Exit 99 when a threshold fails.\n");
            free(files);
            return 0;
        }
        if ((strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "--html") == 0) && i + 1 < argc) {
            const char **dst = argv[i][2] == 'j' ? &json : &html;
            *dst = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "apigate load merge: unknown option '%s'\n", argv[i]);
            free(files);
            return 2;
        } else {
            files[nf++] = argv[i];
        }
    }
    if (nf < 1) {
        fprintf(stderr, "usage: apigate load merge A.json B.json ... [--json OUT.json]\n");
        free(files);
        return 2;
    }
    char err[LOAD_ERR_LEN];
    struct load_result *sum = NULL;
    for (size_t i = 0; i < nf; i++) {
        struct load_result *r = report_json_read(files[i], err, sizeof(err));
        if (r == NULL) {
            fprintf(stderr, "apigate load merge: %s\n", err);
            goto out;
        }
        if (sum == NULL) {
            sum = r;
            continue;
        }
        result_merge(sum, r);
        result_destroy(r);
    }
    if (sum == NULL) /* nf >= 1, so only when every read failed, which jumped to out */
        goto out;
    size_t failed = threshold_eval_all(sum->th, sum->nth, sum);
    report_text(sum, stdout);
    rc = 0;
    if (json) {
        struct buf b = BUF_INIT;
        report_json(sum, &b);
        rc = report_write_file(json, &b) == -1 ? 1 : rc;
        buf_deinit(&b);
    }
    if (html) {
        struct buf b = BUF_INIT;
        report_html(sum, &b);
        rc = report_write_file(html, &b) == -1 ? 1 : rc;
        buf_deinit(&b);
    }
    if (failed)
        rc = 99;
out:
    result_destroy(sum);
    free(files);
    return rc;
}
