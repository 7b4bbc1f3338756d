/* k6-style thresholds: `http_req_duration: ['p(95)<500', 'avg<200']`, `http_req_failed:
 * ['rate<0.01']`, `checks: ['rate>0.99']`, per request name with `metric{name:login}`. Parsed once,
 * evaluated on a merged result, so a merge of several machines re-evaluates them on the whole.
 * Durations are in milliseconds, as in k6. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "load/internal.h"

enum th_kind { TH_TREND, TH_RATE_METRIC, TH_COUNTER };

static const struct {
    const char *name;
    enum th_kind kind;
    bool taggable;
} th_metrics[] = {
    {"http_req_duration", TH_TREND, true}, {"http_req_failed", TH_RATE_METRIC, true},
    {"checks", TH_RATE_METRIC, true},      {"http_reqs", TH_COUNTER, true},
    {"iterations", TH_COUNTER, false},     {"dropped_iterations", TH_COUNTER, false},
    {"data_received", TH_COUNTER, false},  {"data_sent", TH_COUNTER, false},
};
#define TH_NMETRICS (sizeof(th_metrics) / sizeof(th_metrics[0]))

/* Index of <name> in th_metrics, -1 when unknown. */
static int th__metric(const char *name)
{
    for (size_t i = 0; i < TH_NMETRICS; i++)
        if (strcmp(th_metrics[i].name, name) == 0)
            return (int)i;
    return -1;
}

static const char *th__skip(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* "metric" or "metric{name:value}" into <t>->metric / <t>->tag. */
static int th__parse_key(struct threshold *t, const char *key, char *err, size_t errlen)
{
    const char *brace = strchr(key, '{');
    size_t mlen = brace ? (size_t)(brace - key) : strlen(key);
    while (mlen > 0 && key[mlen - 1] == ' ')
        mlen--;
    t->metric = xstrndup(key, mlen);
    int m = th__metric(t->metric);
    if (m < 0) {
        snprintf(err, errlen,
                 "unknown metric '%s'; known: http_req_duration, http_req_failed, checks, "
                 "http_reqs, iterations, dropped_iterations, data_received, data_sent",
                 t->metric);
        return -1;
    }
    if (brace == NULL)
        return 0;
    const char *close = strchr(brace, '}');
    if (close == NULL || *th__skip(close + 1) != '\0') {
        snprintf(err, errlen, "'%s': a tag filter looks like %s{name:login}", key, t->metric);
        return -1;
    }
    const char *p = th__skip(brace + 1);
    if (strncmp(p, "name", 4) != 0 || *th__skip(p + 4) != ':') {
        snprintf(err, errlen, "'%s': only the 'name' tag is supported ({name:login})", key);
        return -1;
    }
    p = th__skip(th__skip(p + 4) + 1);
    const char *end = close;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == p) {
        snprintf(err, errlen, "'%s': empty request name", key);
        return -1;
    }
    if (!th_metrics[m].taggable) {
        snprintf(err, errlen, "'%s': %s has no per-request values", key, t->metric);
        return -1;
    }
    /* Quotes around the name are allowed, as k6 writes them in summaries. */
    if ((*p == '\'' || *p == '"') && end - p >= 2 && end[-1] == *p) {
        p++;
        end--;
    }
    t->tag = xstrndup(p, (size_t)(end - p));
    return 0;
}

int threshold_parse(struct threshold *t, const char *metric_key, const char *expr, char *err,
                    size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (th__parse_key(t, metric_key, err, errlen) == -1)
        goto fail;
    enum th_kind kind = th_metrics[th__metric(t->metric)].kind;
    const char *p = th__skip(expr);
    if (strncmp(p, "p(", 2) == 0) {
        char *end;
        t->agg = TH_P;
        t->pct = strtod(p + 2, &end);
        if (end == p + 2 || *end != ')' || !(t->pct >= 0.0 && t->pct <= 100.0)) {
            snprintf(err, errlen, "'%s': a percentile is p(N) with N in 0..100", expr);
            goto fail;
        }
        p = end + 1;
    } else {
        static const struct {
            const char *s;
            enum th_agg a;
        } aggs[] = {{"avg", TH_AVG}, {"min", TH_MIN},   {"med", TH_MED},
                    {"max", TH_MAX}, {"rate", TH_RATE}, {"count", TH_COUNT}};
        size_t i;
        for (i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++) {
            size_t n = strlen(aggs[i].s);
            if (strncmp(p, aggs[i].s, n) == 0 && !isalnum((unsigned char)p[n])) {
                t->agg = aggs[i].a;
                p += n;
                break;
            }
        }
        if (i == sizeof(aggs) / sizeof(aggs[0])) {
            snprintf(err, errlen,
                     "'%s': expected an aggregation (avg, min, med, max, p(N), rate, "
                     "count) then a comparison, like 'p(95)<500'",
                     expr);
            goto fail;
        }
    }
    bool ok_agg = (kind == TH_TREND && t->agg <= TH_P) ||
                  (kind == TH_RATE_METRIC && t->agg == TH_RATE) ||
                  (kind == TH_COUNTER && (t->agg == TH_COUNT || t->agg == TH_RATE));
    if (!ok_agg) {
        snprintf(err, errlen, "'%s': %s takes %s", expr, t->metric,
                 kind == TH_TREND ? "avg, min, med, max or p(N)"
                                  : (kind == TH_RATE_METRIC ? "rate" : "count or rate"));
        goto fail;
    }
    p = th__skip(p);
    static const struct {
        const char *s;
        enum th_op op;
    } ops[] = {{"<=", TH_LE}, {">=", TH_GE}, {"===", TH_EQ}, {"==", TH_EQ},
               {"!=", TH_NE}, {"<", TH_LT},  {">", TH_GT}};
    size_t i;
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t n = strlen(ops[i].s);
        if (strncmp(p, ops[i].s, n) == 0) {
            t->op = ops[i].op;
            p += n;
            break;
        }
    }
    if (i == sizeof(ops) / sizeof(ops[0])) {
        snprintf(err, errlen,
                 "'%s': expected a comparison (<, <=, >, >=, ==, !=) after the "
                 "aggregation",
                 expr);
        goto fail;
    }
    p = th__skip(p);
    char *end;
    t->value = strtod(p, &end);
    if (end == p || *th__skip(end) != '\0' || !isfinite(t->value)) {
        snprintf(err, errlen, "'%s': expected a number after the comparison", expr);
        goto fail;
    }
    t->expr = xstrdup(expr);
    return 0;
fail:
    threshold_free(t);
    return -1;
}

void threshold_free(struct threshold *t)
{
    free(t->metric);
    free(t->tag);
    free(t->expr);
    t->metric = t->tag = t->expr = NULL;
}

/* The endpoint named <tag>, or NULL (then every aggregation reads 0). */
static const struct result_ep *th__ep(const struct load_result *r, const char *tag)
{
    for (size_t i = 0; i < r->neps; i++)
        if (strcmp(r->eps[i].name, tag) == 0)
            return &r->eps[i];
    return NULL;
}

/* The observed value of <t>'s metric and aggregation on <r>. */
static double th__observe(const struct threshold *t, const struct load_result *r)
{
    const struct result_ep *ep = t->tag ? th__ep(r, t->tag) : NULL;
    double secs = r->duration_s > 0 ? r->duration_s : 1.0;
    if (strcmp(t->metric, "http_req_duration") == 0) {
        static const struct hist empty; /* count 0: every answer is 0 */
        const struct hist *h = t->tag ? (ep ? &ep->h : &empty) : &r->h;
        switch (t->agg) {
        case TH_AVG:
            return hist_mean(h) / 1000.0;
        case TH_MIN:
            return (double)hist_min(h) / 1000.0;
        case TH_MED:
            return (double)hist_percentile(h, 50) / 1000.0;
        case TH_MAX:
            return (double)hist_max(h) / 1000.0;
        case TH_P:
            return (double)hist_percentile(h, t->pct) / 1000.0;
        default:
            return 0.0;
        }
    }
    if (strcmp(t->metric, "http_req_failed") == 0) {
        uint64_t n = t->tag ? (ep ? ep->reqs : 0) : r->reqs;
        uint64_t f = t->tag ? (ep ? ep->failed : 0) : r->failed;
        return n ? (double)f / (double)n : 0.0;
    }
    if (strcmp(t->metric, "checks") == 0) {
        uint64_t pass = 0, fail = 0;
        for (size_t i = 0; i < r->nchecks; i++) {
            if (t->tag && strcmp(r->checks[i].request, t->tag) != 0)
                continue;
            pass += r->checks[i].pass;
            fail += r->checks[i].fail;
        }
        return pass + fail ? (double)pass / (double)(pass + fail) : 0.0;
    }
    uint64_t count = 0;
    if (t->agg == TH_RATE && !t->tag && strcmp(t->metric, "http_reqs") == 0)
        return result_rps(r); /* the planned duration's requests, as the summary shows */
    if (t->agg == TH_RATE && strcmp(t->metric, "iterations") == 0)
        return result_iter_rate(r);
    if (strcmp(t->metric, "http_reqs") == 0)
        count = t->tag ? (ep ? ep->reqs : 0) : r->reqs;
    else if (strcmp(t->metric, "iterations") == 0)
        count = r->iterations;
    else if (strcmp(t->metric, "dropped_iterations") == 0)
        count = r->dropped;
    else if (strcmp(t->metric, "data_received") == 0)
        count = r->bytes_in;
    else if (strcmp(t->metric, "data_sent") == 0)
        count = r->bytes_out;
    return t->agg == TH_RATE ? (double)count / secs : (double)count;
}

bool threshold_eval(struct threshold *t, const struct load_result *r)
{
    double v = th__observe(t, r);
    bool ok = false;
    switch (t->op) {
    case TH_LT:
        ok = v < t->value;
        break;
    case TH_LE:
        ok = v <= t->value;
        break;
    case TH_GT:
        ok = v > t->value;
        break;
    case TH_GE:
        ok = v >= t->value;
        break;
    case TH_EQ:
        ok = v == t->value;
        break;
    case TH_NE:
        ok = v != t->value;
        break;
    }
    t->observed = v;
    t->evaluated = true;
    t->ok = ok;
    return ok;
}

bool threshold_live(const struct threshold *t)
{
    static const char *const live[] = {"http_req_duration", "http_req_failed", "http_reqs",
                                       "data_received", "dropped_iterations"};
    if (t->tag)
        return false;
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
        if (strcmp(t->metric, live[i]) == 0)
            return true;
    return false;
}

size_t threshold_eval_all(struct threshold *th, size_t n, const struct load_result *r)
{
    size_t failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += !threshold_eval(&th[i], r);
    return failed;
}

void threshold_format_observed(const struct threshold *t, char *out, size_t outlen)
{
    if (strcmp(t->metric, "http_req_duration") == 0)
        snprintf(out, outlen, "%.2fms", t->observed);
    else if (strcmp(t->metric, "http_req_failed") == 0 || strcmp(t->metric, "checks") == 0)
        snprintf(out, outlen, "%.2f%%", t->observed * 100.0);
    else if (t->agg == TH_RATE)
        snprintf(out, outlen, "%.2f/s", t->observed);
    else
        snprintf(out, outlen, "%.0f", t->observed);
}
