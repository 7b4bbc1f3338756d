/* `apigate load compare RUN1.json RUN2.json [RUN3.json …]`: the history table of N runs, one
 * column per run with the change from the first marked better or worse (two runs: the before/after
 * table), as text, JSON (--json) or one HTML page with the runs overlaid (--html); --fail-on
 * 'p95>+10%' gives CI an exit code when a metric of the last run got worse than the first's beyond
 * a limit. And `apigate load merge A.json B.json …`: the results of several generator machines
 * added into one (histograms add exactly, so merged percentiles are the percentiles of all the
 * requests, not an average of percentiles). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "load/internal.h"

#define COMPARE_SAME 0.02 /* changes under 2% are noise, not better or worse */
#define COMPARE_MAX_RUNS 64

enum cmp_dir { CMP_HIGHER, CMP_LOWER, CMP_NEUTRAL };
enum cmp_unit { CMP_MS, CMP_PCT, CMP_NUM, CMP_RATE };

/* One metric over every run: values[i] of run i (has[i] false when the run lacks it, such as an
 * endpoint another run did not call). */
struct cmp_row {
    char *key;   /* what --fail-on names: p95, rps, error_rate, p95{name:login} */
    char *label; /* what the table shows */
    enum cmp_unit unit;
    enum cmp_dir dir;
    double *v;
    bool *has;
    bool endpoint;
};

struct cmp_table {
    const struct load_result **runs;
    const char **files;
    size_t nruns;
    struct cmp_row *rows;
    size_t nrows;
};

/* --fail-on 'KEY>+10%': fails when the change of KEY from the first run to the last is beyond. */
struct cmp_rule {
    const char *text;
    char *key;
    bool gt;     /* '>': fails above the limit; '<': below */
    double lim;  /* in % (relative) or percentage points */
    bool points; /* the limit is in percentage points ("pp") */
    /* result */
    bool found, failed;
    double observed;
};

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

static const char *const cmp_unit_names[] = {"ms", "ratio", "count", "per_s"};

/* The change from <a> to <b>: relative in %, or in percentage points for rates (1% → 0.5%
 * errors is not "-50%" worth of news). NAN when it has no value (from 0). */
static double cmp__change(double a, double b, enum cmp_unit u)
{
    if (u == CMP_PCT)
        return (b - a) * 100.0;
    if (a != 0.0)
        return (b - a) / fabs(a) * 100.0;
    return b == 0.0 ? 0.0 : NAN;
}

static void cmp__fmt_change(double a, double b, enum cmp_unit u, char *out, size_t n)
{
    double c = cmp__change(a, b, u);
    if (u == CMP_PCT)
        snprintf(out, n, "%+.2f pp", c);
    else if (isnan(c))
        snprintf(out, n, "new");
    else if (a == 0.0)
        snprintf(out, n, "0");
    else
        snprintf(out, n, "%+.1f%%", c);
}

/* "better", "worse", "same" (under 2%, or 0.1 percentage point), or "" for neutral rows. */
static const char *cmp__verdict(double a, double b, enum cmp_unit u, enum cmp_dir dir)
{
    if (dir == CMP_NEUTRAL)
        return "";
    double base = fabs(a) > 0 ? fabs(a) : 1.0;
    double rel = u == CMP_PCT ? (b - a) : (b - a) / base;
    double tol = u == CMP_PCT ? 0.001 : COMPARE_SAME;
    if (fabs(rel) <= tol)
        return "same";
    return (rel > 0) == (dir == CMP_HIGHER) ? "better" : "worse";
}

/* Checks passed / all; 1 when a run had no checks, so "none" never reads as a regression. */
static double cmp__checks_rate(const struct load_result *r)
{
    uint64_t n = r->checks_pass + r->checks_fail;
    return n ? (double)r->checks_pass / (double)n : 1.0;
}

static struct cmp_row *cmp__add(struct cmp_table *t, const char *key, const char *label,
                                enum cmp_unit u, enum cmp_dir dir)
{
    t->rows = xrealloc(t->rows, (t->nrows + 1) * sizeof(*t->rows));
    struct cmp_row *row = &t->rows[t->nrows++];
    memset(row, 0, sizeof(*row));
    row->key = xstrdup(key);
    row->label = xstrdup(label);
    row->unit = u;
    row->dir = dir;
    row->v = xcalloc(t->nruns, sizeof(double));
    row->has = xcalloc(t->nruns, sizeof(bool));
    return row;
}

enum cmp_metric {
    M_RPS,
    M_REQS,
    M_AVG,
    M_P50,
    M_P90,
    M_P95,
    M_P99,
    M_MAX,
    M_ERR,
    M_U500,
    M_U1S,
    M_CHECKS,
    M_DROPPED
};

static double cmp__metric(const struct load_result *r, enum cmp_metric m)
{
    switch (m) {
    case M_RPS:
        return result_rps(r);
    case M_REQS:
        return (double)r->reqs;
    case M_AVG:
        return hist_mean(&r->h) / 1e3;
    case M_P50:
        return (double)hist_percentile(&r->h, 50) / 1e3;
    case M_P90:
        return (double)hist_percentile(&r->h, 90) / 1e3;
    case M_P95:
        return (double)hist_percentile(&r->h, 95) / 1e3;
    case M_P99:
        return (double)hist_percentile(&r->h, 99) / 1e3;
    case M_MAX:
        return (double)hist_max(&r->h) / 1e3;
    case M_ERR:
        return result_failed_rate(r);
    case M_U500:
        return result_under(r, 500000);
    case M_U1S:
        return result_under(r, 1000000);
    case M_CHECKS:
        return cmp__checks_rate(r);
    case M_DROPPED:
        return (double)r->dropped;
    }
    return 0.0;
}

/* Every row of the table for <n> runs. */
static void cmp__build(struct cmp_table *t)
{
    static const struct {
        const char *key, *label;
        enum cmp_metric m;
        enum cmp_unit u;
        enum cmp_dir dir;
    } ms[] = {
        {"rps", "requests/s", M_RPS, CMP_RATE, CMP_HIGHER},
        {"requests", "requests", M_REQS, CMP_NUM, CMP_NEUTRAL},
        {"avg", "latency avg", M_AVG, CMP_MS, CMP_LOWER},
        {"p50", "latency p50", M_P50, CMP_MS, CMP_LOWER},
        {"p90", "latency p90", M_P90, CMP_MS, CMP_LOWER},
        {"p95", "latency p95", M_P95, CMP_MS, CMP_LOWER},
        {"p99", "latency p99", M_P99, CMP_MS, CMP_LOWER},
        {"max", "latency max", M_MAX, CMP_MS, CMP_LOWER},
        {"error_rate", "error rate", M_ERR, CMP_PCT, CMP_LOWER},
        {"under_500ms", "requests under 500ms", M_U500, CMP_PCT, CMP_HIGHER},
        {"under_1s", "requests under 1s", M_U1S, CMP_PCT, CMP_HIGHER},
        {"checks", "checks passed", M_CHECKS, CMP_PCT, CMP_HIGHER},
        {"dropped", "dropped iterations", M_DROPPED, CMP_NUM, CMP_LOWER},
    };
    bool any_checks = false, any_dropped = false;
    for (size_t i = 0; i < t->nruns; i++) {
        any_checks |= t->runs[i]->checks_pass + t->runs[i]->checks_fail > 0;
        any_dropped |= t->runs[i]->dropped > 0;
    }
    for (size_t k = 0; k < sizeof(ms) / sizeof(ms[0]); k++) {
        if ((ms[k].m == M_CHECKS && !any_checks) || (ms[k].m == M_DROPPED && !any_dropped))
            continue;
        struct cmp_row *row = cmp__add(t, ms[k].key, ms[k].label, ms[k].u, ms[k].dir);
        for (size_t i = 0; i < t->nruns; i++) {
            row->v[i] = cmp__metric(t->runs[i], ms[k].m);
            row->has[i] = true;
        }
    }
    /* The gateway's side (load --gateway-admin), for the runs that have it. */
    bool any_gw = false;
    for (size_t i = 0; i < t->nruns; i++)
        any_gw |= t->runs[i]->gw.present;
    if (any_gw) {
        static const struct {
            const char *key, *label;
            enum cmp_unit u;
            enum cmp_dir dir;
        } gs[] = {
            {"gw_hit_ratio", "gateway hit ratio", CMP_PCT, CMP_HIGHER},
            {"gw_origin", "gateway origin requests", CMP_NUM, CMP_NEUTRAL},
            {"gw_cpu_per_1k", "gateway CPU ms per 1k", CMP_MS, CMP_LOWER},
        };
        for (size_t k = 0; k < sizeof(gs) / sizeof(gs[0]); k++) {
            struct cmp_row *row = cmp__add(t, gs[k].key, gs[k].label, gs[k].u, gs[k].dir);
            for (size_t i = 0; i < t->nruns; i++) {
                const struct result_gw *g = &t->runs[i]->gw;
                double v = k == 0 ? g->hit_ratio : k == 1 ? g->origin : g->cpu_ms_per_1k;
                row->has[i] = g->present && isfinite(v);
                row->v[i] = row->has[i] ? v : 0.0;
            }
        }
    }
    /* Per endpoint p95, for the endpoints of the first run that another run also has. */
    const struct load_result *a = t->runs[0];
    for (size_t e = 0; e < a->neps; e++) {
        bool shared = false;
        for (size_t i = 1; i < t->nruns && !shared; i++)
            for (size_t j = 0; j < t->runs[i]->neps && !shared; j++)
                shared = strcmp(t->runs[i]->eps[j].name, a->eps[e].name) == 0;
        if (!shared)
            continue;
        struct buf key = BUF_INIT;
        buf_printf(&key, "p95{name:%s}", a->eps[e].name);
        buf_append(&key, "", 1);
        struct cmp_row *row = cmp__add(t, key.data, a->eps[e].name, CMP_MS, CMP_LOWER);
        buf_deinit(&key);
        row->endpoint = true;
        for (size_t i = 0; i < t->nruns; i++) {
            for (size_t j = 0; j < t->runs[i]->neps; j++) {
                if (strcmp(t->runs[i]->eps[j].name, a->eps[e].name) != 0)
                    continue;
                row->v[i] = (double)hist_percentile(&t->runs[i]->eps[j].h, 95) / 1e3;
                row->has[i] = true;
                break;
            }
        }
    }
}

static void cmp__free(struct cmp_table *t)
{
    for (size_t i = 0; i < t->nrows; i++) {
        free(t->rows[i].key);
        free(t->rows[i].label);
        free(t->rows[i].v);
        free(t->rows[i].has);
    }
    free(t->rows);
}

/* Two runs: the before/after table. */
static void cmp__print2(const struct cmp_table *t, FILE *out)
{
    const struct load_result *a = t->runs[0], *b = t->runs[1];
    fprintf(out, "\n  before: %s (%s, %.1fs)\n  after:  %s (%s, %.1fs)\n\n",
            a->target ? a->target : "?", a->mode ? a->mode : "?", a->duration_s,
            b->target ? b->target : "?", b->mode ? b->mode : "?", b->duration_s);
    fprintf(out, "  %-24s %14s %14s %12s  %s\n", "metric", "before", "after", "delta", "");
    bool header = false;
    for (size_t r = 0; r < t->nrows; r++) {
        const struct cmp_row *row = &t->rows[r];
        if (!row->has[0] || !row->has[1]) {
            if (row->endpoint)
                continue;
            char va[32] = "-", vb[32] = "-";
            if (row->has[0])
                cmp__fmt(row->v[0], row->unit, va, sizeof(va));
            if (row->has[1])
                cmp__fmt(row->v[1], row->unit, vb, sizeof(vb));
            fprintf(out, "  %-24s %14s %14s\n", row->label, va, vb);
            continue;
        }
        if (row->endpoint && !header) {
            fprintf(out, "\n  per endpoint (p95):\n");
            header = true;
        }
        char sa[32], sb[32], sd[32];
        cmp__fmt(row->v[0], row->unit, sa, sizeof(sa));
        cmp__fmt(row->v[1], row->unit, sb, sizeof(sb));
        cmp__fmt_change(row->v[0], row->v[1], row->unit, sd, sizeof(sd));
        fprintf(out, "  %-24s %14s %14s %12s  %s\n", row->label, sa, sb, sd,
                cmp__verdict(row->v[0], row->v[1], row->unit, row->dir));
    }
    fputc('\n', out);
}

/* N runs: one column per run, each later one with its change from the first; the verdict is the
 * last run's against the first. */
static void cmp__printn(const struct cmp_table *t, FILE *out)
{
    fputc('\n', out);
    for (size_t i = 0; i < t->nruns; i++) {
        const struct load_result *r = t->runs[i];
        fprintf(out, "  #%zu: %s  %s (%s, %.1fs)\n", i + 1, t->files[i],
                r->target ? r->target : "?", r->mode ? r->mode : "?", r->duration_s);
    }
    fprintf(out, "\n  %-24s", "metric");
    for (size_t i = 0; i < t->nruns; i++) {
        char h[32];
        snprintf(h, sizeof(h), "#%zu", i + 1);
        fprintf(out, " %24s", h);
    }
    fprintf(out, "  %s\n", "last vs #1");
    bool header = false;
    for (size_t r = 0; r < t->nrows; r++) {
        const struct cmp_row *row = &t->rows[r];
        if (row->endpoint && !header) {
            fprintf(out, "\n  per endpoint (p95):\n");
            header = true;
        }
        fprintf(out, "  %-24.24s", row->label);
        for (size_t i = 0; i < t->nruns; i++) {
            char v[32], d[32], cell[72];
            if (!row->has[i]) {
                fprintf(out, " %24s", "-");
                continue;
            }
            cmp__fmt(row->v[i], row->unit, v, sizeof(v));
            if (i == 0 || !row->has[0]) {
                fprintf(out, " %24s", v);
                continue;
            }
            cmp__fmt_change(row->v[0], row->v[i], row->unit, d, sizeof(d));
            snprintf(cell, sizeof(cell), "%s (%s)", v, d);
            fprintf(out, " %24s", cell);
        }
        size_t l = t->nruns - 1;
        fprintf(out, "  %s\n",
                row->has[0] && row->has[l] ? cmp__verdict(row->v[0], row->v[l], row->unit, row->dir)
                                           : "");
    }
    fputc('\n', out);
}

void compare_print(const struct load_result *a, const struct load_result *b, FILE *out)
{
    const struct load_result *runs[2] = {a, b};
    const char *files[2] = {"before", "after"};
    struct cmp_table t = {.runs = runs, .files = files, .nruns = 2};
    cmp__build(&t);
    cmp__print2(&t, out);
    cmp__free(&t);
}

/* 'p95>+10%', 'rps<-5%', 'error_rate>+0.5pp', 'p95{name:login}>+20%'. 0, or -1 with a message. */
static int cmp__parse_rule(struct cmp_rule *r, const char *text, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->text = text;
    const char *op = strpbrk(text, "<>");
    const char *brace = strchr(text, '{');
    if (brace && op && op > brace) /* a name may hold '<' or '>': the operator follows the '}' */
        op = strchr(text, '}') ? strpbrk(strchr(text, '}'), "<>") : NULL;
    if (op == NULL || op == text) {
        snprintf(err, errlen,
                 "expected METRIC>+N%% or METRIC<-N%% (e.g. 'p95>+10%%', "
                 "'rps<-5%%', 'error_rate>+0.5pp')");
        return -1;
    }
    r->gt = *op == '>';
    char *end;
    r->lim = strtod(op + 1, &end);
    if (end == op + 1 || !isfinite(r->lim)) {
        snprintf(err, errlen, "'%s' is not a change like +10%% or +0.5pp", op + 1);
        return -1;
    }
    if (strcmp(end, "%") == 0) {
        r->points = false;
    } else if (strcmp(end, "pp") == 0) {
        r->points = true;
    } else {
        snprintf(err, errlen,
                 "the change '%s' needs a unit: %% (relative) or pp (percentage "
                 "points, for rates)",
                 op + 1);
        return -1;
    }
    r->key = xstrndup(text, (size_t)(op - text));
    return 0;
}

/* Evaluates <r> on the last run against the first. -1 when its metric is unknown (message). */
static int cmp__eval_rule(struct cmp_rule *r, const struct cmp_table *t, char *err, size_t errlen)
{
    const struct cmp_row *row = NULL;
    for (size_t i = 0; i < t->nrows && !row; i++)
        if (strcmp(t->rows[i].key, r->key) == 0)
            row = &t->rows[i];
    if (row == NULL) {
        struct buf known = BUF_INIT;
        for (size_t i = 0; i < t->nrows; i++)
            if (!t->rows[i].endpoint)
                buf_printf(&known, "%s%s", known.len ? ", " : "", t->rows[i].key);
        buf_append(&known, "", 1);
        snprintf(err, errlen, "no metric '%s' in these runs; known: %s, p95{name:ENDPOINT}", r->key,
                 known.data);
        buf_deinit(&known);
        return -1;
    }
    if (r->points && row->unit != CMP_PCT) {
        snprintf(err, errlen,
                 "pp (percentage points) is for rates (error_rate, under_500ms, "
                 "under_1s, checks); use %% for %s",
                 r->key);
        return -1;
    }
    size_t l = t->nruns - 1;
    r->found = row->has[0] && row->has[l];
    if (!r->found)
        return 0;
    double a = row->v[0], b = row->v[l];
    if (r->points)
        r->observed = (b - a) * 100.0;
    else if (a != 0.0)
        r->observed = (b - a) / fabs(a) * 100.0;
    else
        r->observed = b == 0.0 ? 0.0 : (b > 0 ? INFINITY : -INFINITY);
    r->failed = r->gt ? r->observed > r->lim : r->observed < r->lim;
    return 0;
}

static void cmp__json(const struct cmp_table *t, const struct cmp_rule *rules, size_t nrules,
                      struct buf *b)
{
    buf_append_str(b, "{\"apigate_compare\":1,\"runs\":[");
    for (size_t i = 0; i < t->nruns; i++) {
        const struct load_result *r = t->runs[i];
        buf_append_str(b, i ? ",{\"file\":" : "{\"file\":");
        buf_append_json_str(b, t->files[i], strlen(t->files[i]));
        buf_append_str(b, ",\"target\":");
        if (r->target)
            buf_append_json_str(b, r->target, strlen(r->target));
        else
            buf_append_str(b, "null");
        buf_printf(b, ",\"mode\":\"%s\",\"started_at\":%lld,\"duration_s\":%.3f}",
                   r->mode ? r->mode : "?", (long long)r->started_at, r->duration_s);
    }
    buf_append_str(b, "],\"metrics\":[");
    for (size_t k = 0; k < t->nrows; k++) {
        const struct cmp_row *row = &t->rows[k];
        buf_append_str(b, k ? ",{\"key\":" : "{\"key\":");
        buf_append_json_str(b, row->key, strlen(row->key));
        buf_append_str(b, ",\"label\":");
        buf_append_json_str(b, row->label, strlen(row->label));
        buf_printf(b, ",\"unit\":\"%s\",\"better\":\"%s\",\"values\":[", cmp_unit_names[row->unit],
                   row->dir == CMP_HIGHER  ? "higher"
                   : row->dir == CMP_LOWER ? "lower"
                                           : "none");
        for (size_t i = 0; i < t->nruns; i++) {
            if (row->has[i])
                buf_printf(b, "%s%.6g", i ? "," : "", row->v[i]);
            else
                buf_append_str(b, i ? ",null" : "null");
        }
        buf_printf(b, "],\"change_unit\":\"%s\",\"change\":[", row->unit == CMP_PCT ? "pp" : "%");
        for (size_t i = 0; i < t->nruns; i++) {
            double c = i && row->has[0] && row->has[i]
                           ? cmp__change(row->v[0], row->v[i], row->unit)
                           : NAN;
            if (isfinite(c))
                buf_printf(b, "%s%.3f", i ? "," : "", c);
            else
                buf_append_str(b, i ? ",null" : "null");
        }
        buf_append_str(b, "],\"verdict\":[");
        for (size_t i = 0; i < t->nruns; i++) {
            const char *v = i && row->has[0] && row->has[i]
                                ? cmp__verdict(row->v[0], row->v[i], row->unit, row->dir)
                                : "";
            if (*v)
                buf_printf(b, "%s\"%s\"", i ? "," : "", v);
            else
                buf_append_str(b, i ? ",null" : "null");
        }
        buf_append_str(b, "]}");
    }
    buf_append_str(b, "],\"fail_on\":[");
    bool failed = false;
    for (size_t i = 0; i < nrules; i++) {
        buf_append_str(b, i ? ",{\"rule\":" : "{\"rule\":");
        buf_append_json_str(b, rules[i].text, strlen(rules[i].text));
        if (isfinite(rules[i].observed))
            buf_printf(b, ",\"observed\":%.3f", rules[i].observed);
        else
            buf_append_str(b, ",\"observed\":null");
        buf_printf(b, ",\"failed\":%s}", rules[i].failed ? "true" : "false");
        failed |= rules[i].failed;
    }
    buf_printf(b, "],\"failed\":%s}\n", failed ? "true" : "false");
}

static void cmp__usage(FILE *out)
{
    fprintf(out,
            "usage: apigate load compare RUN1.json RUN2.json [RUN3.json ...] [--fail-on RULE]...\n"
            "                            [--json OUT.json] [--html OUT.html]\n\n"
            "Compares JSON reports (apigate load --json): requests/s, latency avg/p50/p90/p95/\n"
            "p99/max, error rate, requests under 500 ms and 1 s, checks, per-endpoint p95. Two\n"
            "runs: before/after with the delta; more: one column per run with its change from\n"
            "the first. Each change is marked better, worse or same (under 2%%, 0.1 pp).\n"
            "  --fail-on RULE  exit 1 when the last run's change from the first breaks RULE:\n"
            "                  'p95>+10%%', 'rps<-5%%', 'error_rate>+0.5pp', 'p95{name:X}>+20%%'\n"
            "                  (repeatable)\n"
            "  --json FILE     the table as JSON      --html FILE  one page, runs overlaid\n"
            "Exit codes: 0 ok, 1 a --fail-on rule broken, 2 bad usage or unreadable report.\n");
}

int compare_main(int argc, char **argv)
{
    const char *json = NULL, *html = NULL;
    const char **files = xcalloc((size_t)argc, sizeof(char *));
    struct cmp_rule *rules = xcalloc((size_t)argc, sizeof(*rules));
    const struct load_result **runs = xcalloc((size_t)argc, sizeof(*runs));
    size_t nf = 0, nrules = 0;
    int rc = 2;
    char err[LOAD_ERR_LEN];
    struct cmp_table t = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmp__usage(stdout);
            rc = 0;
            goto out;
        }
        if ((strcmp(a, "--json") == 0 || strcmp(a, "--html") == 0 || strcmp(a, "--fail-on") == 0) &&
            i + 1 < argc) {
            const char *v = argv[++i];
            if (a[2] == 'j') {
                json = v;
            } else if (a[3] == 't') {
                html = v;
            } else if (cmp__parse_rule(&rules[nrules], v, err, sizeof(err)) == -1) {
                fprintf(stderr, "apigate load compare: --fail-on '%s': %s\n", v, err);
                goto out;
            } else {
                nrules++;
            }
        } else if (a[0] == '-') {
            fprintf(stderr,
                    "apigate load compare: unknown option '%s' (apigate load compare "
                    "--help)\n",
                    a);
            goto out;
        } else {
            files[nf++] = a;
        }
    }
    if (nf < 2 || nf > COMPARE_MAX_RUNS) {
        fprintf(stderr, "usage: apigate load compare RUN1.json RUN2.json [RUN3.json ...] "
                        "[--fail-on RULE] [--json F] [--html F]\n");
        goto out;
    }
    if ((json && report_check_path(json) == -1) || (html && report_check_path(html) == -1))
        goto out;
    for (size_t i = 0; i < nf; i++) {
        if ((runs[i] = report_json_read(files[i], err, sizeof(err))) == NULL) {
            fprintf(stderr, "apigate load compare: %s\n", err);
            goto out;
        }
    }
    t.runs = runs;
    t.files = files;
    t.nruns = nf;
    cmp__build(&t);
    for (size_t i = 0; i < nrules; i++) {
        if (cmp__eval_rule(&rules[i], &t, err, sizeof(err)) == -1) {
            fprintf(stderr, "apigate load compare: --fail-on '%s': %s\n", rules[i].text, err);
            goto out;
        }
    }
    if (nf == 2)
        cmp__print2(&t, stdout);
    else
        cmp__printn(&t, stdout);
    rc = 0;
    for (size_t i = 0; i < nrules; i++) {
        const struct cmp_rule *r = &rules[i];
        if (!r->found) {
            printf("  ? %s: not in both the first and the last run\n", r->text);
            continue;
        }
        printf("  %s %s: %+.2f%s\n", r->failed ? "✗" : "✓", r->text, r->observed,
               r->points ? "pp" : "%");
        if (r->failed)
            rc = 1;
    }
    if (nrules)
        putchar('\n');
    if (json) {
        struct buf b = BUF_INIT;
        cmp__json(&t, rules, nrules, &b);
        if (report_write_file(json, &b) == -1 && rc == 0)
            rc = 1;
        buf_deinit(&b);
    }
    if (html) {
        struct buf b = BUF_INIT, j = BUF_INIT;
        cmp__json(&t, rules, nrules, &j);
        report_html_compare(runs, files, nf, &j, &b);
        if (report_write_file(html, &b) == -1 && rc == 0)
            rc = 1;
        buf_deinit(&j);
        buf_deinit(&b);
    }
    if (rc == 1)
        fprintf(stderr, "apigate load compare: FAILED: a --fail-on rule was broken\n");
out:
    cmp__free(&t);
    for (size_t i = 0; i < nf; i++)
        result_destroy((struct load_result *)runs[i]);
    for (size_t i = 0; i < nrules; i++)
        free(rules[i].key);
    free(runs);
    free(rules);
    free(files);
    return rc;
}

/* Why runs <a> and <b> are not parts of one test (another target, or other endpoints: another
 * scenario), in <why>; NULL when they are. */
static const char *merge__differs(const struct load_result *a, const struct load_result *b,
                                  char *why, size_t whylen)
{
    if (strcmp(a->target ? a->target : "", b->target ? b->target : "") != 0) {
        snprintf(why, whylen, "another target (%s, not %s)", b->target ? b->target : "?",
                 a->target ? a->target : "?");
        return why;
    }
    bool same = a->neps == b->neps;
    for (size_t i = 0; i < a->neps && same; i++) {
        bool found = false;
        for (size_t j = 0; j < b->neps && !found; j++)
            found = strcmp(a->eps[i].name, b->eps[j].name) == 0 &&
                    strcmp(a->eps[i].method, b->eps[j].method) == 0;
        same = found;
    }
    if (!same) {
        snprintf(why, whylen, "another scenario (its endpoints differ)");
        return why;
    }
    return NULL;
}

int merge_main(int argc, char **argv)
{
    const char *json = NULL, *html = NULL;
    bool mixed = false;
    const char **files = xcalloc((size_t)argc, sizeof(char *));
    size_t nf = 0;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: apigate load merge A.json B.json ... [--json OUT.json] [--html "
                   "OUT.html]\n"
                   "                          [--allow-mixed]\n\n"
                   "Adds the JSON reports of several generator machines into one summary:\n"
                   "counts add, histograms merge exactly, thresholds are evaluated again on the\n"
                   "whole. Exit 99 when a threshold fails. Runs of another target or scenario\n"
                   "are refused (exit 2) unless --allow-mixed labels the result as mixed.\n");
            free(files);
            return 0;
        }
        if (strcmp(argv[i], "--allow-mixed") == 0) {
            mixed = true;
        } else if ((strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "--html") == 0) &&
                   i + 1 < argc) {
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
        char why[LOAD_ERR_LEN];
        if (merge__differs(sum, r, why, sizeof(why))) {
            if (!mixed) {
                fprintf(stderr,
                        "apigate load merge: %s is not a part of the same test as %s: %s; merge "
                        "runs of one scenario against one target (generators run side by side), "
                        "or give --allow-mixed to add them up anyway, labelled as mixed\n",
                        files[i], files[0], why);
                result_destroy(r);
                goto out;
            }
            if (strncmp(sum->target ? sum->target : "", "mixed: ", 7) != 0) {
                struct buf t = BUF_INIT;
                buf_printf(&t, "mixed: %s", sum->target ? sum->target : "?");
                buf_append(&t, "", 1);
                free(sum->target);
                sum->target = t.data;
            }
            if (strstr(sum->target, r->target ? r->target : "?") == NULL) {
                struct buf t = BUF_INIT;
                buf_printf(&t, "%s + %s", sum->target, r->target ? r->target : "?");
                buf_append(&t, "", 1);
                free(sum->target);
                sum->target = t.data;
            }
        }
        result_merge(sum, r);
        result_destroy(r);
    }
    if (sum == NULL) /* nf >= 1, so only when every read failed, which jumped to out */
        goto out;
    size_t failed = threshold_eval_all(sum->th, sum->nth, sum);
    sum->verdict_ok = failed == 0;
    if (failed)
        snprintf(sum->verdict, sizeof(sum->verdict),
                 "FAILED: %zu of %zu threshold%s failed on the merged run (exit 99)", failed,
                 sum->nth, sum->nth == 1 ? "" : "s");
    else
        snprintf(sum->verdict, sizeof(sum->verdict), "%s: %.2f%% of the requests failed",
                 sum->nth ? "PASSED, every threshold held" : "MERGED",
                 100.0 * result_failed_rate(sum));
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
