/* The JSON report (`--json out.json`): every number of the text summary, the mergeable histograms
 * (hist_to_json) of the whole run and of each endpoint, the per-second time series and the
 * thresholds. Written with buf_printf; read back with cJSON (the only file of load that includes
 * it) for `load compare` and `load merge`. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "load/internal.h"

#define REPORT_JSON_VERSION 1

/* A JSON string, or null for a missing one. */
static void rj__str(struct buf *b, const char *s)
{
    if (s)
        buf_append_json_str(b, s, strlen(s));
    else
        buf_append_str(b, "null");
}

/* "key":value<tail>, or "key":null<tail> for a NAN (unknown). */
static void rj__opt(struct buf *b, const char *key, double v, const char *tail)
{
    if (isfinite(v))
        buf_printf(b, "\"%s\":%.6g%s", key, v, tail);
    else
        buf_printf(b, "\"%s\":null%s", key, tail);
}

/* The k6-style latency summary in milliseconds (the histogram follows for exact merging). */
static void rj__latency(struct buf *b, const struct hist *h)
{
    buf_printf(b,
               "{\"avg\":%.3f,\"min\":%.3f,\"med\":%.3f,\"p90\":%.3f,\"p95\":%.3f,\"p99\":%.3f,"
               "\"max\":%.3f}",
               hist_mean(h) / 1000.0, (double)hist_min(h) / 1000.0,
               (double)hist_percentile(h, 50) / 1000.0, (double)hist_percentile(h, 90) / 1000.0,
               (double)hist_percentile(h, 95) / 1000.0, (double)hist_percentile(h, 99) / 1000.0,
               (double)hist_max(h) / 1000.0);
}

void report_json(const struct load_result *r, struct buf *b)
{
    buf_printf(b, "{\"apigate_load\":%d,\"target\":", REPORT_JSON_VERSION);
    rj__str(b, r->target);
    buf_append_str(b, ",\"mode\":");
    rj__str(b, r->mode);
    buf_printf(b,
               ",\"started_at\":%" PRId64 ",\"duration_s\":%.6f,\"planned_s\":%.6f,"
               "\"threads\":%u,\"vus_max\":%u,\"machines\":%u,\"aborted\":%s,"
               "\"aborted_at_s\":%.3f,\"requested_rate\":%.3f,",
               r->started_at, r->duration_s, r->planned_s, r->threads, r->vus_max, r->machines,
               r->aborted ? "true" : "false", r->aborted_at_s, r->requested_rate);
    if (r->gw.present) {
        buf_append_str(b, "\"gateway\":{\"admin\":");
        rj__str(b, r->gw.admin);
        buf_append_str(b, ",");
        rj__opt(b, "requests", r->gw.requests, ",");
        rj__opt(b, "hit_ratio", r->gw.hit_ratio, ",");
        rj__opt(b, "origin_requests", r->gw.origin, ",");
        rj__opt(b, "cpu_ms_per_1k", r->gw.cpu_ms_per_1k, "},");
    }
    if (r->aborted_by) {
        buf_append_str(b, "\"aborted_by\":");
        rj__str(b, r->aborted_by);
        buf_append_str(b, ",");
    }
    if (r->verdict[0]) {
        buf_printf(b, "\"verdict\":{\"ok\":%s,\"text\":", r->verdict_ok ? "true" : "false");
        rj__str(b, r->verdict);
        buf_append_str(b, "},");
    }
    uint64_t ck = r->checks_pass + r->checks_fail;
    buf_printf(b,
               "\"totals\":{\"requests\":%" PRIu64 ",\"iterations\":%" PRIu64 ",\"rps\":%.3f,"
               "\"failed\":%" PRIu64 ",\"failed_rate\":%.6f,\"bytes_in\":%" PRIu64
               ",\"bytes_out\":%" PRIu64 ",\"checks_passed\":%" PRIu64 ",\"checks_failed\":%" PRIu64
               ",\"checks_rate\":%.6f,\"dropped\":%" PRIu64 ",\"late\":%" PRIu64
               ",\"max_lag_ms\":%.3f,\"interrupted\":%" PRIu64
               ",\"under_500ms\":%.6f,\"under_1s\":%.6f,\"rate_s\":%.6f,"
               "\"rate_requests\":%" PRIu64 ",\"rate_iterations\":%" PRIu64
               ",\"iterations_rate\":%.3f},",
               r->reqs, r->iterations, result_rps(r), r->failed, result_failed_rate(r), r->bytes_in,
               r->bytes_out, r->checks_pass, r->checks_fail,
               ck ? (double)r->checks_pass / (double)ck : 0.0, r->dropped, r->late,
               (double)r->max_lag_us / 1000.0, r->interrupted, result_under(r, 500000),
               result_under(r, 1000000), r->rate_s, r->rate_reqs, r->rate_iters,
               result_iter_rate(r));
    buf_append_str(b, "\"latency_ms\":");
    rj__latency(b, &r->h);
    buf_append_str(b, ",\"status\":{");
    bool first = true;
    for (int s = 0; s < 600; s++) {
        if (!r->status[s])
            continue;
        buf_printf(b, "%s\"%d\":%" PRIu64, first ? "" : ",", s, r->status[s]);
        first = false;
    }
    buf_append_str(b, "},\"status_classes\":{");
    uint64_t cls[6] = {0};
    for (int st = 100; st < 600; st++)
        cls[st / 100] += r->status[st];
    first = true;
    for (int k = 1; k < 6; k++) {
        if (!cls[k])
            continue;
        buf_printf(b, "%s\"%dxx\":%" PRIu64, first ? "" : ",", k, cls[k]);
        first = false;
    }
    buf_append_str(b, "},\"errors\":{");
    first = true;
    for (int k = 0; k < LERR__COUNT; k++) {
        if (!r->errors[k])
            continue;
        buf_printf(b, "%s\"%s\":%" PRIu64, first ? "" : ",", load_err_names[k], r->errors[k]);
        first = false;
    }
    buf_append_str(b, "},\"endpoints\":[");
    for (size_t i = 0; i < r->neps; i++) {
        const struct result_ep *e = &r->eps[i];
        buf_append_str(b, i ? ",{\"name\":" : "{\"name\":");
        rj__str(b, e->name);
        buf_append_str(b, ",\"method\":");
        rj__str(b, e->method);
        buf_append_str(b, ",\"group\":");
        rj__str(b, e->group);
        buf_printf(b, ",\"requests\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"latency_ms\":", e->reqs,
                   e->failed);
        rj__latency(b, &e->h);
        buf_append_str(b, ",\"hist\":");
        hist_to_json(&e->h, b);
        /* its own seconds (those with requests): the report's per-endpoint charts */
        buf_append_str(b, ",\"series\":[");
        for (size_t k = 0; k < e->nseries; k++)
            buf_printf(b, "%s{\"t\":%" PRId64 ",\"rps\":%" PRIu64 ",\"errors\":%" PRIu64
                          ",\"p95_ms\":%.3f}",
                       k ? "," : "", e->series[k].t, e->series[k].reqs, e->series[k].errors,
                       (double)e->series[k].p95_us / 1000.0);
        buf_append_str(b, "]}");
    }
    buf_append_str(b, "],\"checks\":[");
    for (size_t i = 0; i < r->nchecks; i++) {
        buf_append_str(b, i ? ",{\"name\":" : "{\"name\":");
        rj__str(b, r->checks[i].label);
        buf_append_str(b, ",\"request\":");
        rj__str(b, r->checks[i].request);
        buf_printf(b, ",\"passed\":%" PRIu64 ",\"failed\":%" PRIu64 "}", r->checks[i].pass,
                   r->checks[i].fail);
    }
    buf_append_str(b, "],\"thresholds\":[");
    for (size_t i = 0; i < r->nth; i++) {
        const struct threshold *t = &r->th[i];
        buf_append_str(b, i ? ",{\"metric\":" : "{\"metric\":");
        rj__str(b, t->metric);
        buf_append_str(b, ",\"name\":");
        rj__str(b, t->tag);
        buf_append_str(b, ",\"expr\":");
        rj__str(b, t->expr);
        buf_printf(b, ",\"observed\":%.6f,\"ok\":%s}", isfinite(t->observed) ? t->observed : 0.0,
                   t->ok ? "true" : "false");
    }
    buf_append_str(b, "],\"series\":[");
    for (size_t i = 0; i < r->nseries; i++) {
        const struct result_sec *s = &r->series[i];
        buf_printf(b,
                   "%s{\"t\":%" PRId64 ",\"rps\":%" PRIu64 ",\"errors\":%" PRIu64
                   ",\"bytes_in\":%" PRIu64 ",\"dropped\":%" PRIu64
                   ",\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"vus\":%u}",
                   i ? "," : "", s->t, s->reqs, s->errors, s->bytes_in, s->dropped,
                   (double)s->p50_us / 1000.0, (double)s->p95_us / 1000.0,
                   (double)s->p99_us / 1000.0, s->vus);
        if (s->requested > 0) {
            b->len--; /* reopen: the open model's requested rate of that second */
            buf_printf(b, ",\"requested\":%.3f}", s->requested);
        }
        if (s->gw) {
            b->len--; /* reopen the object for the gateway's second */
            buf_append_str(b, ",");
            rj__opt(b, "gw_hit_ratio", s->gw_hit_ratio, ",");
            rj__opt(b, "gw_origin", s->gw_origin, ",");
            rj__opt(b, "gw_cpu_ms_per_1k", s->gw_cpu_ms_per_1k, "}");
        }
    }
    buf_append_str(b, "],\"hist\":");
    hist_to_json(&r->h, b);
    buf_append_str(b, "}\n");
}

int report_write_file(const char *path, const struct buf *b)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "apigate load: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fwrite(buf_head(b), 1, buf_pending(b), f);
    if (fclose(f) != 0 || n != buf_pending(b)) {
        fprintf(stderr, "apigate load: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int report_check_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
        unlink(path);
        return 0;
    }
    if (errno == EEXIST && (fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
        close(fd);
        return 0;
    }
    fprintf(stderr, "apigate load: cannot write %s: %s\n", path, strerror(errno));
    return -1;
}

/* ---- reading back ---- */

static const cJSON *rj__get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Readers that treat a missing or mistyped member as 0: a report from an older or newer version
 * still compares on the fields both have. The histograms are the exception: checked strictly.
 * A number out of range is clamped, never converted as is: casting a double that does not fit
 * (-5, 1e300) to an integer type is undefined behaviour, not just a wrong value. */
static uint64_t rj__clamp_u64(double d)
{
    if (!(d > 0)) /* also NaN */
        return 0;
    d = round(d);
    return d >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)d;
}

static int64_t rj__clamp_i64(double d)
{
    if (d != d)
        return 0;
    if (d >= 9223372036854775808.0)
        return INT64_MAX;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)d;
}

static uint64_t rj__u64(const cJSON *o, const char *k)
{
    const cJSON *v = rj__get(o, k);
    return cJSON_IsNumber(v) ? rj__clamp_u64(v->valuedouble) : 0;
}

static double rj__num(const cJSON *o, const char *k)
{
    const cJSON *v = rj__get(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

/* A member in milliseconds as whole microseconds. */
static uint64_t rj__ms_us(const cJSON *o, const char *k)
{
    return rj__clamp_u64(rj__num(o, k) * 1000.0);
}

/* A member that must be an object, such as {"200": 5}: NULL otherwise, so that iterating over a
 * foreign array (whose items have no names) reads nothing instead of dereferencing a NULL name. */
static const cJSON *rj__obj(const cJSON *o, const char *k)
{
    const cJSON *v = rj__get(o, k);
    return cJSON_IsObject(v) ? v : NULL;
}

static const char *rj__s(const cJSON *o, const char *k)
{
    const cJSON *v = rj__get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define RJ_MAX_FILE (64u << 20) /* a report larger than this is not one (or not ours) */

static char *rj__read_file(const char *path, char *err, size_t errlen)
{
    struct buf b = BUF_INIT;
    char why[128];
    if (buf_read_file(&b, path, RJ_MAX_FILE, why, sizeof(why)) == -1) {
        snprintf(err, errlen, "%s: %s", path, why);
        buf_deinit(&b);
        return NULL;
    }
    buf_append(&b, "", 1);
    return b.data;
}

struct load_result *report_json_read(const char *path, char *err, size_t errlen)
{
    char *text = rj__read_file(path, err, errlen);
    if (text == NULL)
        return NULL;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (root == NULL) {
        snprintf(err, errlen, "%s: not valid JSON", path);
        return NULL;
    }
    struct load_result *r = NULL;
    if (!cJSON_IsObject(root) || !cJSON_IsNumber(rj__get(root, "apigate_load"))) {
        snprintf(err, errlen, "%s: not an apigate load report (no \"apigate_load\" key)", path);
        goto out;
    }
    r = result_create();
    const char *s;
    if ((s = rj__s(root, "target")))
        r->target = xstrdup(s);
    if ((s = rj__s(root, "mode")))
        r->mode = xstrdup(s);
    r->started_at = rj__clamp_i64(rj__num(root, "started_at"));
    r->duration_s = rj__num(root, "duration_s");
    r->planned_s = rj__num(root, "planned_s");
    r->threads = (unsigned)rj__u64(root, "threads");
    r->vus_max = (unsigned)rj__u64(root, "vus_max");
    r->machines = (unsigned)rj__u64(root, "machines");
    r->aborted = cJSON_IsTrue(rj__get(root, "aborted"));
    r->aborted_at_s = rj__num(root, "aborted_at_s");
    r->requested_rate = rj__num(root, "requested_rate");
    if ((s = rj__s(root, "aborted_by")))
        r->aborted_by = xstrdup(s);
    const cJSON *gw = rj__obj(root, "gateway");
    if (gw) {
        const cJSON *v;
        r->gw.present = true;
        r->gw.admin = xstrdup((s = rj__s(gw, "admin")) ? s : "?");
        r->gw.requests = cJSON_IsNumber(v = rj__get(gw, "requests")) ? v->valuedouble : NAN;
        r->gw.hit_ratio = cJSON_IsNumber(v = rj__get(gw, "hit_ratio")) ? v->valuedouble : NAN;
        r->gw.origin = cJSON_IsNumber(v = rj__get(gw, "origin_requests")) ? v->valuedouble : NAN;
        r->gw.cpu_ms_per_1k =
            cJSON_IsNumber(v = rj__get(gw, "cpu_ms_per_1k")) ? v->valuedouble : NAN;
    }
    if (r->machines == 0)
        r->machines = 1;
    const cJSON *t = rj__get(root, "totals");
    r->reqs = rj__u64(t, "requests");
    r->iterations = rj__u64(t, "iterations");
    r->failed = rj__u64(t, "failed");
    r->bytes_in = rj__u64(t, "bytes_in");
    r->bytes_out = rj__u64(t, "bytes_out");
    r->checks_pass = rj__u64(t, "checks_passed");
    r->checks_fail = rj__u64(t, "checks_failed");
    r->dropped = rj__u64(t, "dropped");
    r->late = rj__u64(t, "late");
    r->max_lag_us = rj__ms_us(t, "max_lag_ms");
    r->interrupted = rj__u64(t, "interrupted");
    r->rate_s = rj__num(t, "rate_s");
    r->rate_reqs = rj__u64(t, "rate_requests");
    r->rate_iters = rj__u64(t, "rate_iterations");
    if (!(r->rate_s > 0) || !isfinite(r->rate_s))
        r->rate_s = 0; /* an older report: rates over duration_s */
    if (hist_from_json(&r->h, rj__get(root, "hist")) == -1) {
        snprintf(err, errlen, "%s: \"hist\" is missing or inconsistent", path);
        goto fail;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, rj__obj(root, "status"))
    {
        long code = strtol(it->string, NULL, 10);
        if (code > 0 && code < 600 && cJSON_IsNumber(it))
            r->status[code] = rj__clamp_u64(it->valuedouble);
    }
    cJSON_ArrayForEach(it, rj__obj(root, "errors"))
    {
        for (int k = 0; k < LERR__COUNT; k++)
            if (strcmp(it->string, load_err_names[k]) == 0 && cJSON_IsNumber(it))
                r->errors[k] = rj__clamp_u64(it->valuedouble);
    }
    cJSON_ArrayForEach(it, rj__get(root, "endpoints"))
    {
        const char *name = rj__s(it, "name"), *method = rj__s(it, "method");
        struct result_ep *e = result_ep(r, name ? name : "?", method ? method : "?");
        const char *group = rj__s(it, "group");
        if (group && e->group == NULL)
            e->group = xstrdup(group);
        e->reqs = rj__u64(it, "requests");
        e->failed = rj__u64(it, "failed");
        if (hist_from_json(&e->h, rj__get(it, "hist")) == -1) {
            snprintf(err, errlen, "%s: endpoint %s: \"hist\" is missing or inconsistent", path,
                     e->name);
            goto fail;
        }
        const cJSON *sec;
        cJSON_ArrayForEach(sec, rj__get(it, "series")) /* absent in older reports */
        {
            struct result_ep_sec *o = result_ep_add_sec(e);
            o->t = rj__clamp_i64(rj__num(sec, "t"));
            o->reqs = rj__u64(sec, "rps");
            o->errors = rj__u64(sec, "errors");
            o->p95_us = rj__ms_us(sec, "p95_ms");
        }
    }
    cJSON_ArrayForEach(it, rj__get(root, "checks"))
    {
        const char *name = rj__s(it, "name"), *req = rj__s(it, "request");
        struct result_check *c = result_check(r, name ? name : "?", req ? req : "?");
        c->pass = rj__u64(it, "passed");
        c->fail = rj__u64(it, "failed");
    }
    cJSON_ArrayForEach(it, rj__get(root, "thresholds"))
    {
        const char *metric = rj__s(it, "metric"), *name = rj__s(it, "name"),
                   *expr = rj__s(it, "expr");
        if (!metric || !expr)
            continue;
        struct buf key = BUF_INIT;
        buf_printf(&key, name ? "%s{name:%s}" : "%s", metric, name ? name : "");
        buf_append(&key, "", 1);
        struct threshold th;
        char terr[256];
        if (threshold_parse(&th, key.data, expr, terr, sizeof(terr)) == 0) {
            th.observed = rj__num(it, "observed");
            th.ok = cJSON_IsTrue(rj__get(it, "ok"));
            th.evaluated = true;
            r->th = xrealloc(r->th, (r->nth + 1) * sizeof(*r->th));
            r->th[r->nth++] = th;
        }
        buf_deinit(&key);
    }
    cJSON_ArrayForEach(it, rj__get(root, "series"))
    {
        struct result_sec *o = result_add_sec(r);
        o->t = rj__clamp_i64(rj__num(it, "t"));
        o->reqs = rj__u64(it, "rps");
        o->errors = rj__u64(it, "errors");
        o->bytes_in = rj__u64(it, "bytes_in");
        o->dropped = rj__u64(it, "dropped");
        o->p50_us = rj__ms_us(it, "p50_ms");
        o->p95_us = rj__ms_us(it, "p95_ms");
        o->p99_us = rj__ms_us(it, "p99_ms");
        o->vus = (unsigned)rj__u64(it, "vus");
        o->requested = rj__num(it, "requested");
        if (!(o->requested >= 0 && o->requested < 1e12)) /* NaN, negative, absurd: none */
            o->requested = 0;
    }
    goto out;
fail:
    result_destroy(r);
    r = NULL;
out:
    cJSON_Delete(root);
    return r;
}
