/* `--summary-export FILE`: the end-of-test summary in the shape of k6's --summary-export (its
 * "legacy" JSON summary), so scripts and CI steps written for k6 read it unchanged:
 * metrics.http_req_duration["p(95)"] in milliseconds, metrics.http_reqs.count and .rate, rate
 * metrics as passes/fails/value (for http_req_failed, passes are the failed requests, as in k6),
 * per threshold expression true when it failed, and root_group with the checks by name, each
 * flow a group. apigate's own JSON (--json) stays the format compare and merge read. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "load/internal.h"

static void rk__str(struct buf *b, const char *s)
{
    buf_append_json_str(b, s, strlen(s));
}

/* "thresholds":{"p(95)<500":false,…} for the thresholds on <metric> (and <tag>); nothing when
 * there are none. */
static void rk__thresholds(struct buf *b, const struct load_result *r, const char *metric,
                           const char *tag)
{
    bool first = true;
    for (size_t i = 0; i < r->nth; i++) {
        const struct threshold *t = &r->th[i];
        if (strcmp(t->metric, metric) != 0 || (tag == NULL) != (t->tag == NULL) ||
            (tag && strcmp(tag, t->tag) != 0))
            continue;
        buf_append_str(b, first ? ",\"thresholds\":{" : ",");
        rk__str(b, t->expr);
        buf_printf(b, ":%s", t->evaluated && !t->ok ? "true" : "false");
        first = false;
    }
    if (!first)
        buf_append_str(b, "}");
}

static double rk__num(double v)
{
    return isfinite(v) ? v : 0.0;
}

/* A trend metric in milliseconds. */
static void rk__trend(struct buf *b, const struct load_result *r, const char *key,
                      const char *tag, const struct hist *h)
{
    buf_append_str(b, ",");
    rk__str(b, key);
    buf_printf(b,
               ":{\"avg\":%.6f,\"min\":%.6f,\"med\":%.6f,\"max\":%.6f,\"p(90)\":%.6f,"
               "\"p(95)\":%.6f,\"p(99)\":%.6f",
               rk__num(hist_mean(h) / 1000.0), (double)hist_min(h) / 1000.0,
               (double)hist_percentile(h, 50) / 1000.0, (double)hist_max(h) / 1000.0,
               (double)hist_percentile(h, 90) / 1000.0, (double)hist_percentile(h, 95) / 1000.0,
               (double)hist_percentile(h, 99) / 1000.0);
    rk__thresholds(b, r, "http_req_duration", tag);
    buf_append_str(b, "}");
}

/* A counter: count and rate per second. */
static void rk__counter(struct buf *b, const struct load_result *r, const char *metric,
                        uint64_t count, double rate)
{
    buf_printf(b, ",\"%s\":{\"count\":%" PRIu64 ",\"rate\":%.6f", metric, count, rk__num(rate));
    rk__thresholds(b, r, metric, NULL);
    buf_append_str(b, "}");
}

/* A rate: passes (true values), fails, value = passes / all. */
static void rk__rate(struct buf *b, const struct load_result *r, const char *key,
                     const char *metric, const char *tag, uint64_t passes, uint64_t fails)
{
    uint64_t n = passes + fails;
    buf_append_str(b, ",");
    rk__str(b, key);
    buf_printf(b, ":{\"passes\":%" PRIu64 ",\"fails\":%" PRIu64 ",\"value\":%.6f", passes, fails,
               n ? (double)passes / (double)n : 0.0);
    rk__thresholds(b, r, metric, tag);
    buf_append_str(b, "}");
}

/* The checks of one group (the flow <group>, or the requests outside flows when NULL). */
static void rk__checks(struct buf *b, const struct load_result *r, const char *group,
                       const char *path)
{
    buf_append_str(b, ",\"checks\":{");
    bool first = true;
    for (size_t i = 0; i < r->nchecks; i++) {
        const struct result_check *k = &r->checks[i];
        const char *g = NULL;
        for (size_t e = 0; e < r->neps; e++)
            if (strcmp(r->eps[e].name, k->request) == 0)
                g = r->eps[e].group;
        if ((g == NULL) != (group == NULL) || (g && strcmp(g, group) != 0))
            continue;
        struct buf name = BUF_INIT;
        buf_printf(&name, "%s: %s", k->request, k->label);
        buf_append(&name, "", 1);
        if (!first)
            buf_append_str(b, ",");
        rk__str(b, name.data);
        buf_append_str(b, ":{\"name\":");
        rk__str(b, name.data);
        buf_append_str(b, ",\"path\":");
        struct buf p = BUF_INIT;
        buf_printf(&p, "%s::%s", path, name.data);
        buf_append(&p, "", 1);
        rk__str(b, p.data);
        buf_printf(b, ",\"passes\":%" PRIu64 ",\"fails\":%" PRIu64 "}", k->pass, k->fail);
        buf_deinit(&p);
        buf_deinit(&name);
        first = false;
    }
    buf_append_str(b, "}");
}

void report_k6_summary(const struct load_result *r, struct buf *b)
{
    /* root_group: the checks outside flows, and one group per flow with its checks */
    buf_append_str(b, "{\"root_group\":{\"name\":\"\",\"path\":\"\",\"groups\":{");
    bool first = true;
    for (size_t e = 0; e < r->neps; e++) {
        const char *g = r->eps[e].group;
        bool seen = false;
        for (size_t k = 0; k < e && g && !seen; k++)
            seen = r->eps[k].group && strcmp(r->eps[k].group, g) == 0;
        if (g == NULL || seen)
            continue;
        struct buf path = BUF_INIT;
        buf_printf(&path, "::%s", g);
        buf_append(&path, "", 1);
        if (!first)
            buf_append_str(b, ",");
        rk__str(b, g);
        buf_append_str(b, ":{\"name\":");
        rk__str(b, g);
        buf_append_str(b, ",\"path\":");
        rk__str(b, path.data);
        buf_append_str(b, ",\"groups\":{}");
        rk__checks(b, r, g, path.data);
        buf_append_str(b, "}");
        buf_deinit(&path);
        first = false;
    }
    buf_append_str(b, "}");
    rk__checks(b, r, NULL, "");
    buf_append_str(b, "},\"metrics\":{");
    /* the first member has no leading comma: vus_max opens the object */
    buf_printf(b, "\"vus_max\":{\"value\":%u,\"min\":%u,\"max\":%u}", r->vus_max, r->vus_max,
               r->vus_max);
    rk__trend(b, r, "http_req_duration", NULL, &r->h);
    for (size_t e = 0; e < r->neps; e++) {
        /* a submetric per endpoint named by a threshold, as k6 exports tagged thresholds */
        bool named = false;
        for (size_t i = 0; i < r->nth && !named; i++)
            named = r->th[i].tag && strcmp(r->th[i].tag, r->eps[e].name) == 0;
        if (!named)
            continue;
        struct buf key = BUF_INIT;
        buf_printf(&key, "http_req_duration{name:%s}", r->eps[e].name);
        buf_append(&key, "", 1);
        rk__trend(b, r, key.data, r->eps[e].name, &r->eps[e].h);
        buf_reset(&key);
        buf_printf(&key, "http_req_failed{name:%s}", r->eps[e].name);
        buf_append(&key, "", 1);
        rk__rate(b, r, key.data, "http_req_failed", r->eps[e].name, r->eps[e].failed,
                 r->eps[e].reqs - r->eps[e].failed);
        buf_deinit(&key);
    }
    rk__rate(b, r, "http_req_failed", "http_req_failed", NULL, r->failed, r->reqs - r->failed);
    rk__counter(b, r, "http_reqs", r->reqs, result_rps(r));
    rk__counter(b, r, "iterations", r->iterations, result_iter_rate(r));
    double secs = r->duration_s > 0 ? r->duration_s : 1.0;
    rk__counter(b, r, "data_received", r->bytes_in, (double)r->bytes_in / secs);
    rk__counter(b, r, "data_sent", r->bytes_out, (double)r->bytes_out / secs);
    if (r->mode && strcmp(r->mode, "closed") != 0)
        rk__counter(b, r, "dropped_iterations", r->dropped, (double)r->dropped / secs);
    if (r->checks_pass + r->checks_fail)
        rk__rate(b, r, "checks", "checks", NULL, r->checks_pass, r->checks_fail);
    buf_append_str(b, "}}\n");
}
