/* The HTML report (`--html report.html`) and the compare page (`load compare --html`): one
 * self-contained page each, no network. The tables are written here as plain HTML (readable
 * without JavaScript); the charts (over time: RPS with the requested rate, p50/p95/p99, errors,
 * active VUs, requests/s and p95 per endpoint, the gateway's context; the latency distribution;
 * on the compare page the runs overlaid) are Chart.js charts drawn by assets/report.js from the
 * JSON embedded in the page. Both scripts are inline, embedded in the binary at build time. The
 * verdict banner is on top, so a failed run never reads as a pass until scrolled. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "load/internal.h"
#include "web/web.h"

/* Appends <s> with the five HTML specials escaped. */
static void rh__esc(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            buf_append_str(b, "&lt;");
            break;
        case '>':
            buf_append_str(b, "&gt;");
            break;
        case '&':
            buf_append_str(b, "&amp;");
            break;
        case '"':
            buf_append_str(b, "&quot;");
            break;
        case '\'':
            buf_append_str(b, "&#39;");
            break;
        default:
            buf_append(b, s, 1);
        }
    }
}

static const char rh_css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}"
    ".sub{color:#5b6475;margin-bottom:16px}"
    "table{border-collapse:collapse;background:#fff;margin-bottom:8px}"
    "td,th{border:1px solid #dde1e8;padding:4px 10px;text-align:right}"
    "th{background:#eef1f5}td.l,th.l{text-align:left}"
    ".ok{color:#18794e;font-weight:600}.bad{color:#c4320a;font-weight:600}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}"
    ".card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px}"
    ".card h3{margin:0 0 6px;font-size:14px}.box{position:relative;height:260px}"
    ".warn{background:#fff4e5;border:1px solid #f5a623;padding:8px;margin:8px 0}"
    ".banner{padding:10px 14px;border-radius:6px;font-weight:600;margin:8px 0 12px}"
    ".banner.fail{background:#fde8e4;border:1px solid #c4320a;color:#8c2307}"
    ".banner.pass{background:#e6f4ec;border:1px solid #18794e;color:#0f5132}";

/* The page's scripts, inline: Chart.js (web/web.h) and the report's own (assets/report.js), both
 * embedded at build time. "</script" cannot occur in them as they are, but a script element ends
 * at the first one whatever the JavaScript around it: any is written "<\/script", which means the
 * same in a JavaScript string or regular expression. */
extern const unsigned char report_js[];
extern const size_t report_js_len;

static void rh__script(struct buf *b, const unsigned char *js, size_t n)
{
    const char *p = (const char *)js, *end = p + n;
    buf_append_str(b, "<script>");
    for (;;) {
        const char *hit = memmem(p, (size_t)(end - p), "</script", 8);
        if (hit == NULL)
            break;
        buf_append(b, p, (size_t)(hit - p));
        buf_append_str(b, "<\\/script");
        p = hit + 8;
    }
    buf_append(b, p, (size_t)(end - p));
    buf_append_str(b, "</script>\n");
}

static void rh__scripts(struct buf *b)
{
    rh__script(b, web_chartjs, web_chartjs_len);
    rh__script(b, report_js, report_js_len);
}

/* A chart's card: its title and a box Chart.js sizes the canvas to. */
static void rh__card(struct buf *b, const char *title, const char *id)
{
    buf_printf(b, "<div class=card><h3>%s</h3><div class=box><canvas id=%s></canvas></div></div>",
               title, id);
}

static void rh__row(struct buf *b, const char *k, const char *v)
{
    buf_append_str(b, "<tr><td class=l>");
    rh__esc(b, k);
    buf_append_str(b, "</td><td>");
    rh__esc(b, v);
    buf_append_str(b, "</td></tr>");
}

static void rh__tables(const struct load_result *r, struct buf *b)
{
    char v[160], x[32], y[32], z[32];
    buf_append_str(b, "<h2>Summary</h2><table>");
    snprintf(v, sizeof(v), "%" PRIu64 " (%.1f/s)", r->reqs, result_rps(r));
    rh__row(b, "http_reqs", v);
    snprintf(v, sizeof(v), "%" PRIu64 " (%.1f/s)", r->iterations, result_iter_rate(r));
    rh__row(b, "iterations", v);
    snprintf(v, sizeof(v), "%.2f%% (%" PRIu64 " of %" PRIu64 ")", 100.0 * result_failed_rate(r),
             r->failed, r->reqs);
    rh__row(b, "http_req_failed", v);
    if (r->gw.present) {
        snprintf(v, sizeof(v), isfinite(r->gw.hit_ratio) ? "%.2f%%" : "-",
                 100.0 * r->gw.hit_ratio);
        rh__row(b, "gateway cache hit ratio", v);
        snprintf(v, sizeof(v), "%.0f of %.0f", r->gw.origin, r->gw.requests);
        rh__row(b, "gateway origin requests", v);
        snprintf(v, sizeof(v), isfinite(r->gw.cpu_ms_per_1k) ? "%.1f ms" : "-",
                 r->gw.cpu_ms_per_1k);
        rh__row(b, "gateway CPU per 1k requests", v);
    }
    const struct hist *h = &r->h;
    static const struct {
        const char *k;
        double p;
    } ps[] = {{"min", 0}, {"med", 50}, {"p(90)", 90}, {"p(95)", 95}, {"p(99)", 99}, {"max", 100}};
    snprintf(v, sizeof(v), "%s", load_fmt_us(hist_mean(h), x, sizeof(x)));
    rh__row(b, "http_req_duration avg", v);
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        char k[64];
        snprintf(k, sizeof(k), "http_req_duration %s", ps[i].k);
        rh__row(b, k, load_fmt_us((double)hist_percentile(h, ps[i].p), x, sizeof(x)));
    }
    snprintf(v, sizeof(v), "%.2f%%", 100.0 * result_under(r, 500000));
    rh__row(b, "requests_under_500ms", v);
    snprintf(v, sizeof(v), "%.2f%%", 100.0 * result_under(r, 1000000));
    rh__row(b, "requests_under_1s", v);
    uint64_t ck = r->checks_pass + r->checks_fail;
    if (ck) {
        snprintf(v, sizeof(v), "%.2f%% (%" PRIu64 " passed, %" PRIu64 " failed)",
                 100.0 * (double)r->checks_pass / (double)ck, r->checks_pass, r->checks_fail);
        rh__row(b, "checks", v);
    }
    rh__row(b, "data_received", load_fmt_bytes(r->bytes_in, x, sizeof(x)));
    rh__row(b, "data_sent", load_fmt_bytes(r->bytes_out, x, sizeof(x)));
    if (r->mode && strcmp(r->mode, "closed") != 0) {
        snprintf(v, sizeof(v), "%" PRIu64, r->dropped);
        rh__row(b, "dropped_iterations", v);
        snprintf(v, sizeof(v), "%" PRIu64 " (max lag %s)", r->late,
                 load_fmt_us((double)r->max_lag_us, x, sizeof(x)));
        rh__row(b, "late_iterations", v);
    }
    buf_append_str(b, "</table>");
    if (r->dropped)
        buf_printf(b,
                   "<div class=warn>The requested rate was not met: %" PRIu64
                   " iterations dropped (no free connection).</div>",
                   r->dropped);

    if (r->nth) {
        buf_append_str(b, "<h2>Thresholds</h2><table><tr><th class=l></th><th class=l>metric</th>"
                          "<th class=l>expression</th><th>observed</th></tr>");
        for (size_t i = 0; i < r->nth; i++) {
            const struct threshold *t = &r->th[i];
            threshold_format_observed(t, x, sizeof(x));
            buf_printf(b, "<tr><td class='l %s'>%s</td><td class=l>", t->ok ? "ok" : "bad",
                       t->ok ? "✓" : "✗");
            rh__esc(b, t->metric);
            if (t->tag) {
                buf_append_str(b, "{name:");
                rh__esc(b, t->tag);
                buf_append_str(b, "}");
            }
            buf_append_str(b, "</td><td class=l>");
            rh__esc(b, t->expr);
            buf_append_str(b, "</td><td>");
            rh__esc(b, x);
            buf_append_str(b, "</td></tr>");
        }
        buf_append_str(b, "</table>");
    }

    buf_append_str(b, "<h2>Endpoints</h2><table id=endpoints><tr><th class=l>name</th><th "
                      "class=l>method</th><th>calls</th><th>errors</th><th>avg</th><th>p95</th>"
                      "<th>p99</th></tr>");
    for (size_t i = 0; i < r->neps; i++) {
        const struct result_ep *e = &r->eps[i];
        buf_append_str(b, "<tr><td class=l>");
        if (e->group != NULL) { /* a flow's step, under the flow's name */
            rh__esc(b, e->group);
            buf_append_str(b, " › ");
        }
        rh__esc(b, e->name);
        buf_append_str(b, "</td><td class=l>");
        rh__esc(b, e->method);
        buf_printf(b,
                   "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%s</td><td>%s</td><td>%s"
                   "</td></tr>",
                   e->reqs, e->failed, load_fmt_us(hist_mean(&e->h), x, sizeof(x)),
                   load_fmt_us((double)hist_percentile(&e->h, 95), y, sizeof(y)),
                   load_fmt_us((double)hist_percentile(&e->h, 99), z, sizeof(z)));
    }
    buf_append_str(b, "</table>");

    if (r->nchecks) {
        buf_append_str(b, "<h2>Checks</h2><table><tr><th class=l></th><th class=l>request</th>"
                          "<th class=l>check</th><th>passed</th><th>failed</th></tr>");
        for (size_t i = 0; i < r->nchecks; i++) {
            const struct result_check *k = &r->checks[i];
            buf_printf(b, "<tr><td class='l %s'>%s</td><td class=l>", k->fail ? "bad" : "ok",
                       k->fail ? "✗" : "✓");
            rh__esc(b, k->request);
            buf_append_str(b, "</td><td class=l>");
            rh__esc(b, k->label);
            buf_printf(b, "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>", k->pass, k->fail);
        }
        buf_append_str(b, "</table>");
    }

    buf_append_str(b, "<h2>Status codes and errors</h2><table><tr><th class=l>status / "
                      "error</th><th>count</th></tr>");
    for (int s = 0; s < 600; s++)
        if (r->status[s])
            buf_printf(b, "<tr><td class=l>%d</td><td>%" PRIu64 "</td></tr>", s, r->status[s]);
    for (int k = 0; k < LERR__COUNT; k++)
        if (r->errors[k])
            buf_printf(b, "<tr><td class='l bad'>%s (%s)</td><td>%" PRIu64 "</td></tr>",
                       load_err_names[k], load_err_text[k], r->errors[k]);
    buf_append_str(b, "</table>");
}

/* The JSON for the script, with "</" broken so no string can close the <script> element. */
static void rh__data(const struct load_result *r, struct buf *b)
{
    struct buf j = BUF_INIT;
    report_json(r, &j);
    /* report_json() ends with "}\n": reopen the object to add the distribution as [upper bound
     * µs, count] pairs, which the page would otherwise have to recompute from bucket indexes. */
    if (buf_pending(&j) >= 2 && j.data[j.len - 2] == '}' && j.data[j.len - 1] == '\n')
        j.len -= 2;
    buf_append_str(&j, ",\"dist\":[");
    bool first = true;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        if (!r->h.buckets[i])
            continue;
        buf_printf(&j, "%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", hist_bucket_upper(i),
                   r->h.buckets[i]);
        first = false;
    }
    buf_append_str(&j, "]}");
    for (size_t i = j.off; i < j.len; i++) {
        if (j.data[i] == '<' && i + 1 < j.len && j.data[i + 1] == '/')
            buf_append_str(b, "<\\");
        else
            buf_append(b, &j.data[i], 1);
    }
    buf_deinit(&j);
}

void report_html(const struct load_result *r, struct buf *out)
{
    buf_append_str(out, "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
                        "<meta name=viewport content='width=device-width,initial-scale=1'>"
                        "<title>apigate load report: ");
    rh__esc(out, r->target ? r->target : "");
    buf_printf(out, "</title><style>%s</style></head><body>\n<h1>apigate load report</h1>", rh_css);
    buf_append_str(out, "<div class=sub>");
    rh__esc(out, r->target ? r->target : "?");
    buf_printf(out, " · %s model · %.1f s · %u thread%s", r->mode ? r->mode : "?",
               r->rate_s > 0 ? r->rate_s : r->duration_s, r->threads, r->threads == 1 ? "" : "s");
    if (r->requested_rate > 0)
        buf_printf(out, " · requested %.1f/s", r->requested_rate);
    if (r->machines > 1)
        buf_printf(out, " · merged from %u runs", r->machines);
    buf_append_str(out, "</div>\n");
    if (r->verdict[0]) {
        /* On top, so a failed run never reads as a pass until scrolled. */
        buf_printf(out, "<div id=verdict class='banner %s'>", r->verdict_ok ? "pass" : "fail");
        rh__esc(out, r->verdict);
        buf_append_str(out, "</div>\n");
    }
    buf_append_str(out, "<div class=grid>");
    rh__card(out, "Requests per second", "chart-rps");
    rh__card(out, "Latency p50 / p95 / p99", "chart-latency");
    rh__card(out, "Errors and dropped iterations per second", "chart-errors");
    rh__card(out, "Active VUs", "chart-vus");
    rh__card(out, "Requests per second per endpoint", "chart-ep-rps");
    rh__card(out, "Latency p95 per endpoint", "chart-ep-p95");
    rh__card(out, "Latency distribution (cumulative)", "chart-dist");
    if (r->gw.present) {
        rh__card(out, "Gateway: cache hit ratio and origin requests per second", "chart-gw");
        rh__card(out, "Gateway: CPU per 1k requests", "chart-gwcpu");
    }
    buf_append_str(out, "</div>\n");
    rh__tables(r, out);
    buf_append_str(out, "\n<script type=application/json id=report-data>");
    rh__data(r, out);
    buf_append_str(out, "</script>\n");
    rh__scripts(out);
    buf_append_str(out, "</body></html>\n");
}

/* ---- `load compare --html`: one page, the runs overlaid ---- */

/* Appends <j> with "</" broken, so no string can close the <script> element. */
static void rh__script_json(struct buf *b, const char *j, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (j[i] == '<' && i + 1 < n && j[i + 1] == '/')
            buf_append_str(b, "<\\");
        else
            buf_append(b, &j[i], 1);
    }
}

void report_html_compare(const struct load_result *const *runs, const char *const *files, size_t n,
                         const struct buf *cmp_json, struct buf *out)
{
    bool failed = memmem(buf_head(cmp_json), buf_pending(cmp_json), "\"failed\":true}\n", 15);
    buf_printf(out,
               "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
               "<meta name=viewport content='width=device-width,initial-scale=1'>"
               "<title>apigate load compare</title><style>%s"
               ".banner{padding:10px 14px;border-radius:6px;font-weight:600;margin:8px 0 12px}"
               ".banner.fail{background:#fde8e4;border:1px solid #c4320a;color:#8c2307}"
               ".banner.pass{background:#e6f4ec;border:1px solid #18794e;color:#0f5132}"
               "</style></head><body>\n<h1>apigate load compare</h1>",
               rh_css);
    buf_printf(out, "<div id=verdict class='banner %s'>%s</div>\n", failed ? "fail" : "pass",
               failed ? "FAILED: a --fail-on rule was broken (see below)"
                      : "No --fail-on rule broken");
    buf_append_str(out, "<table id=runs><tr><th>#</th><th class=l>file</th><th class=l>target"
                        "</th><th class=l>model</th><th>duration</th></tr>");
    for (size_t i = 0; i < n; i++) {
        buf_printf(out, "<tr><td>%zu</td><td class=l>", i + 1);
        rh__esc(out, files[i]);
        buf_append_str(out, "</td><td class=l>");
        rh__esc(out, runs[i]->target ? runs[i]->target : "?");
        buf_append_str(out, "</td><td class=l>");
        rh__esc(out, runs[i]->mode ? runs[i]->mode : "?");
        buf_printf(out, "</td><td>%.1f s</td></tr>", runs[i]->duration_s);
    }
    buf_append_str(out, "</table>\n<div class=grid>");
    rh__card(out, "Requests per second", "chart-rps");
    rh__card(out, "Latency p95", "chart-p95");
    rh__card(out, "Errors per second", "chart-errors");
    buf_append_str(out, "</div>\n<h2>Metrics</h2><table id=metrics></table><table id=rules>"
                        "</table>\n<script type=application/json id=compare-data>{\"cmp\":");
    const char *j = buf_head(cmp_json);
    size_t jn = buf_pending(cmp_json);
    while (jn > 0 && (j[jn - 1] == '\n'))
        jn--;
    rh__script_json(out, j, jn);
    buf_append_str(out, ",\"names\":[");
    for (size_t i = 0; i < n; i++) {
        const char *base = strrchr(files[i], '/');
        base = base ? base + 1 : files[i];
        struct buf q = BUF_INIT;
        buf_append_json_str(&q, base, strlen(base));
        if (i)
            buf_append_str(out, ",");
        rh__script_json(out, buf_head(&q), buf_pending(&q));
        buf_deinit(&q);
    }
    buf_append_str(out, "],\"planned\":[");
    for (size_t i = 0; i < n; i++)
        buf_printf(out, "%s%.3f", i ? "," : "",
                   runs[i]->rate_s > 0 ? runs[i]->rate_s : runs[i]->planned_s);
    buf_append_str(out, "],\"series\":[");
    for (size_t i = 0; i < n; i++) {
        buf_append_str(out, i ? ",[" : "[");
        for (size_t k = 0; k < runs[i]->nseries; k++) {
            const struct result_sec *s = &runs[i]->series[k];
            buf_printf(out, "%s{\"t\":%lld,\"rps\":%llu,\"errors\":%llu,\"p95_ms\":%.3f}",
                       k ? "," : "", (long long)s->t, (unsigned long long)s->reqs,
                       (unsigned long long)s->errors, (double)s->p95_us / 1000.0);
        }
        buf_append_str(out, "]");
    }
    /* the tables are filled by assets/report.js from the same JSON the --json option writes */
    buf_append_str(out, "]}</script>\n");
    rh__scripts(out);
    buf_append_str(out, "</body></html>\n");
}
