/* The merged outcome of a run, whatever produced it: a live run (run.c), a JSON report read back
 * (report_json.c), or several of those added together (merge of generator machines). Reports and
 * thresholds read only this struct. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "load/internal.h"

struct load_result *result_create(void)
{
    struct load_result *r = xcalloc(1, sizeof(*r));
    hist_init(&r->h);
    r->machines = 1;
    return r;
}

void result_destroy(struct load_result *r)
{
    if (r == NULL)
        return;
    free(r->target);
    free(r->mode);
    free(r->aborted_by);
    free(r->gw.admin);
    for (size_t i = 0; i < r->neps; i++) {
        free(r->eps[i].name);
        free(r->eps[i].method);
        free(r->eps[i].group);
        free(r->eps[i].series);
    }
    free(r->eps);
    for (size_t i = 0; i < r->nchecks; i++) {
        free(r->checks[i].label);
        free(r->checks[i].request);
    }
    free(r->checks);
    free(r->series);
    for (size_t i = 0; i < r->nth; i++)
        threshold_free(&r->th[i]);
    free(r->th);
    free(r);
}

struct result_sec *result_add_sec(struct load_result *r)
{
    if (r->nseries == r->series_cap) {
        r->series_cap = r->series_cap ? r->series_cap * 2 : 64;
        r->series = xrealloc(r->series, r->series_cap * sizeof(*r->series));
    }
    struct result_sec *s = &r->series[r->nseries++];
    memset(s, 0, sizeof(*s));
    return s;
}

struct result_ep_sec *result_ep_add_sec(struct result_ep *e)
{
    if (e->nseries == e->series_cap) {
        e->series_cap = e->series_cap ? e->series_cap * 2 : 64;
        e->series = xrealloc(e->series, e->series_cap * sizeof(*e->series));
    }
    struct result_ep_sec *s = &e->series[e->nseries++];
    memset(s, 0, sizeof(*s));
    return s;
}

/* Endpoints are matched by name and method, so a merge of runs of the same scenario adds them
 * up, and different scenarios simply list theirs side by side. The array may move: callers must
 * not keep a pointer across calls. */
static struct result_ep *result__ep(struct load_result *r, const char *name, const char *method)
{
    for (size_t i = 0; i < r->neps; i++)
        if (strcmp(r->eps[i].name, name) == 0 && strcmp(r->eps[i].method, method) == 0)
            return &r->eps[i];
    r->eps = xrealloc(r->eps, (r->neps + 1) * sizeof(*r->eps));
    struct result_ep *e = &r->eps[r->neps++];
    memset(e, 0, sizeof(*e));
    e->name = xstrdup(name);
    e->method = xstrdup(method);
    hist_init(&e->h);
    return e;
}

/* Checks are matched by label and request name, as endpoints are. */
static struct result_check *result__check(struct load_result *r, const char *label,
                                          const char *request)
{
    for (size_t i = 0; i < r->nchecks; i++)
        if (strcmp(r->checks[i].label, label) == 0 && strcmp(r->checks[i].request, request) == 0)
            return &r->checks[i];
    r->checks = xrealloc(r->checks, (r->nchecks + 1) * sizeof(*r->checks));
    struct result_check *c = &r->checks[r->nchecks++];
    memset(c, 0, sizeof(*c));
    c->label = xstrdup(label);
    c->request = xstrdup(request);
    return c;
}

/* Series of two runs added second by second. Percentiles of one second cannot be merged exactly
 * from percentiles: the larger of the two is kept, which never hides a slow machine. */
static void result__merge_series(struct load_result *dst, const struct load_result *src)
{
    struct load_result tmp = {0};
    size_t i = 0, j = 0;
    while (i < dst->nseries || j < src->nseries) {
        const struct result_sec *a = i < dst->nseries ? &dst->series[i] : NULL;
        const struct result_sec *b = j < src->nseries ? &src->series[j] : NULL;
        struct result_sec *o = result_add_sec(&tmp);
        if (a && (!b || a->t < b->t)) {
            *o = *a;
            i++;
        } else if (b && (!a || b->t < a->t)) {
            *o = *b;
            j++;
        } else if (a && b) { /* the same second in both */
            *o = *a;
            o->reqs += b->reqs;
            o->errors += b->errors;
            o->bytes_in += b->bytes_in;
            o->dropped += b->dropped;
            o->vus += b->vus;
            o->requested += b->requested; /* generators side by side: their rates add */
            o->p50_us = a->p50_us > b->p50_us ? a->p50_us : b->p50_us;
            o->p95_us = a->p95_us > b->p95_us ? a->p95_us : b->p95_us;
            o->p99_us = a->p99_us > b->p99_us ? a->p99_us : b->p99_us;
            i++;
            j++;
        }
    }
    free(dst->series);
    dst->series = tmp.series;
    dst->nseries = tmp.nseries;
    dst->series_cap = tmp.series_cap;
}

/* An endpoint's series of two runs added second by second, as result__merge_series does. */
static void result__merge_ep_series(struct result_ep *dst, const struct result_ep *src)
{
    struct result_ep tmp = {0};
    size_t i = 0, j = 0;
    while (i < dst->nseries || j < src->nseries) {
        const struct result_ep_sec *a = i < dst->nseries ? &dst->series[i] : NULL;
        const struct result_ep_sec *b = j < src->nseries ? &src->series[j] : NULL;
        struct result_ep_sec *o = result_ep_add_sec(&tmp);
        if (a && (!b || a->t < b->t)) {
            *o = *a;
            i++;
        } else if (b && (!a || b->t < a->t)) {
            *o = *b;
            j++;
        } else if (a && b) {
            *o = *a;
            o->reqs += b->reqs;
            o->errors += b->errors;
            o->p95_us = a->p95_us > b->p95_us ? a->p95_us : b->p95_us;
            i++;
            j++;
        }
    }
    free(dst->series);
    dst->series = tmp.series;
    dst->nseries = tmp.nseries;
    dst->series_cap = tmp.series_cap;
}

void result_merge(struct load_result *dst, const struct load_result *src)
{
    if (dst->target == NULL && src->target)
        dst->target = xstrdup(src->target);
    if (dst->mode == NULL && src->mode)
        dst->mode = xstrdup(src->mode);
    else if (dst->mode && src->mode && strcmp(dst->mode, src->mode) != 0) {
        free(dst->mode);
        dst->mode = xstrdup("mixed");
    }
    if (src->duration_s > dst->duration_s)
        dst->duration_s = src->duration_s;
    if (src->planned_s > dst->planned_s)
        dst->planned_s = src->planned_s;
    dst->requested_rate += src->requested_rate; /* generators side by side: their rates add */
    /* Generators that ran side by side: their rates add, over the longer window. */
    if (src->rate_s > dst->rate_s)
        dst->rate_s = src->rate_s;
    dst->rate_reqs += src->rate_reqs;
    dst->rate_iters += src->rate_iters;
    if (dst->started_at == 0 || (src->started_at && src->started_at < dst->started_at))
        dst->started_at = src->started_at;
    dst->threads += src->threads;
    if (dst->aborted_by == NULL && src->aborted_by)
        dst->aborted_by = xstrdup(src->aborted_by);
    if (src->aborted && (!dst->aborted || src->aborted_at_s < dst->aborted_at_s)) {
        dst->aborted = true; /* one interrupted machine makes the merged run partial */
        dst->aborted_at_s = src->aborted_at_s;
    }
    dst->vus_max += src->vus_max;
    dst->reqs += src->reqs;
    dst->iterations += src->iterations;
    dst->failed += src->failed;
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    dst->checks_pass += src->checks_pass;
    dst->checks_fail += src->checks_fail;
    dst->dropped += src->dropped;
    dst->late += src->late;
    dst->interrupted += src->interrupted;
    if (src->max_lag_us > dst->max_lag_us)
        dst->max_lag_us = src->max_lag_us;
    hist_merge(&dst->h, &src->h);
    for (size_t i = 0; i < 600; i++)
        dst->status[i] += src->status[i];
    for (size_t i = 0; i < LERR__COUNT; i++)
        dst->errors[i] += src->errors[i];
    for (size_t i = 0; i < src->neps; i++) {
        struct result_ep *e = result__ep(dst, src->eps[i].name, src->eps[i].method);
        if (e->group == NULL && src->eps[i].group)
            e->group = xstrdup(src->eps[i].group);
        e->reqs += src->eps[i].reqs;
        e->failed += src->eps[i].failed;
        hist_merge(&e->h, &src->eps[i].h);
        result__merge_ep_series(e, &src->eps[i]);
    }
    for (size_t i = 0; i < src->nchecks; i++) {
        struct result_check *c = result__check(dst, src->checks[i].label, src->checks[i].request);
        c->pass += src->checks[i].pass;
        c->fail += src->checks[i].fail;
    }
    result__merge_series(dst, src);
    dst->machines += src->machines;
}

/* Adds an endpoint or a check by name (the run and the JSON reader build results with these). */
struct result_ep *result_ep(struct load_result *r, const char *name, const char *method)
{
    return result__ep(r, name, method);
}

struct result_check *result_check(struct load_result *r, const char *label, const char *request)
{
    return result__check(r, label, request);
}

double result_rps(const struct load_result *r)
{
    if (r->rate_s > 0)
        return (double)r->rate_reqs / r->rate_s;
    return r->duration_s > 0 ? (double)r->reqs / r->duration_s : 0.0;
}

double result_iter_rate(const struct load_result *r)
{
    if (r->rate_s > 0)
        return (double)r->rate_iters / r->rate_s;
    return r->duration_s > 0 ? (double)r->iterations / r->duration_s : 0.0;
}

double result_failed_rate(const struct load_result *r)
{
    return r->reqs ? (double)r->failed / (double)r->reqs : 0.0;
}

double result_under(const struct load_result *r, uint64_t us)
{
    uint64_t n = hist_count(&r->h);
    return n ? (double)hist_count_le(&r->h, us) / (double)n : 0.0;
}

int result_parse_ratio(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v))
        return -1;
    if (*end == '%') {
        v /= 100.0;
        end++;
    }
    if (*end != '\0' || v < 0.0 || v > 1.0)
        return -1;
    *out = v;
    return 0;
}

const char *result_failure(const struct load_result *r, double max_failed, char *why,
                           size_t whylen)
{
    if (r->reqs == 0) {
        snprintf(why, whylen, "no request completed");
        return why;
    }
    for (size_t i = 0; i < r->nth; i++)
        if (strcmp(r->th[i].metric, "http_req_failed") == 0 && r->th[i].tag == NULL)
            return NULL; /* the user's own rule on failures decides (exit 99) */
    double allowed = max_failed < 0 ? LOAD_MAX_FAILED : max_failed;
    double rate = result_failed_rate(r);
    if (rate <= allowed)
        return NULL;
    snprintf(why, whylen,
             "%.2f%% of the requests failed (%llu of %llu), above the %g%% allowed "
             "(--max-failed, or max_failed: in a scenario)",
             rate * 100.0, (unsigned long long)r->failed, (unsigned long long)r->reqs,
             allowed * 100.0);
    return why;
}
