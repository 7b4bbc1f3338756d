/* The end-of-run summary on stdout, shaped like k6's: one dotted line per metric, then status
 * codes, error kinds, the per-endpoint table and the thresholds with ✓/✗. Reads only the merged
 * result, so it prints the same for a live run and for merged JSON files. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "load/internal.h"

const char *load_fmt_us(double us, char *out, size_t outlen)
{
    if (us < 1000.0)
        snprintf(out, outlen, "%.0fµs", us);
    else if (us < 1e6)
        snprintf(out, outlen, "%.2fms", us / 1000.0);
    else
        snprintf(out, outlen, "%.2fs", us / 1e6);
    return out;
}

const char *load_fmt_bytes(uint64_t b, char *out, size_t outlen)
{
    if (b < 1000)
        snprintf(out, outlen, "%" PRIu64 " B", b);
    else if (b < 1000000)
        snprintf(out, outlen, "%.1f kB", (double)b / 1e3);
    else if (b < 1000000000)
        snprintf(out, outlen, "%.1f MB", (double)b / 1e6);
    else
        snprintf(out, outlen, "%.2f GB", (double)b / 1e9);
    return out;
}

/* "  name........: " with dots up to a fixed column, as k6 aligns its summary. */
static void rt__key(FILE *out, const char *mark, const char *name)
{
    fprintf(out, "  %s %s", mark, name);
    for (size_t n = strlen(name); n < 30; n++)
        fputc('.', out);
    fputs(": ", out);
}

/* Whether any threshold on <metric> exists, and whether they all passed: the ✓/✗ before it. */
static const char *rt__mark(const struct load_result *r, const char *metric)
{
    bool any = false, ok = true;
    for (size_t i = 0; i < r->nth; i++) {
        if (strcmp(r->th[i].metric, metric) != 0 || !r->th[i].evaluated)
            continue;
        any = true;
        ok &= r->th[i].ok;
    }
    return any ? (ok ? "✓" : "✗") : " ";
}

void report_text(const struct load_result *r, FILE *out)
{
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32];
    double secs = r->duration_s > 0 ? r->duration_s : 1.0;
    fprintf(out, "\n  target: %s\n", r->target ? r->target : "?");
    fprintf(out, "  model:  %s, %u %s, %u thread%s, %.1fs", r->mode ? r->mode : "?", r->vus_max,
            r->mode && strcmp(r->mode, "open") == 0 ? "max connections" : "max VUs", r->threads,
            r->threads == 1 ? "" : "s", r->rate_s > 0 ? r->rate_s : r->duration_s);
    if (r->rate_s > 0 && r->duration_s > r->rate_s + 0.05)
        fprintf(out, " (+%.1fs for the requests in flight; rates count the %.1fs)",
                r->duration_s - r->rate_s, r->rate_s);
    if (r->requested_rate > 0)
        fprintf(out, ", requested %.1f/s", r->requested_rate);
    if (r->machines > 1)
        fprintf(out, ", merged from %u runs", r->machines);
    if (r->aborted)
        fprintf(out, "\n  INTERRUPTED at %.1fs of %.1fs: the numbers cover that part only",
                r->aborted_at_s, r->planned_s);
    if (r->aborted_by)
        fprintf(out, "\n  ABORTED at %.1fs of %.1fs by threshold %s (abortOnFail)",
                r->aborted_at_s, r->planned_s, r->aborted_by);
    fputs("\n\n", out);

    uint64_t ck = r->checks_pass + r->checks_fail;
    if (ck) {
        rt__key(out, rt__mark(r, "checks"), "checks");
        fprintf(out, "%.2f%%  ✓ %" PRIu64 "  ✗ %" PRIu64 "\n",
                100.0 * (double)r->checks_pass / (double)ck, r->checks_pass, r->checks_fail);
    }
    rt__key(out, " ", "data_received");
    fprintf(out, "%s  %s/s\n", load_fmt_bytes(r->bytes_in, a, sizeof(a)),
            load_fmt_bytes((uint64_t)((double)r->bytes_in / secs), b, sizeof(b)));
    rt__key(out, " ", "data_sent");
    fprintf(out, "%s  %s/s\n", load_fmt_bytes(r->bytes_out, a, sizeof(a)),
            load_fmt_bytes((uint64_t)((double)r->bytes_out / secs), b, sizeof(b)));
    if (r->mode && strcmp(r->mode, "closed") != 0) {
        rt__key(out, rt__mark(r, "dropped_iterations"), "dropped_iterations");
        fprintf(out, "%" PRIu64 "\n", r->dropped);
        rt__key(out, " ", "late_iterations");
        fprintf(out, "%" PRIu64 "  (max lag %s)\n", r->late,
                load_fmt_us((double)r->max_lag_us, a, sizeof(a)));
    }
    const struct hist *h = &r->h;
    rt__key(out, rt__mark(r, "http_req_duration"), "http_req_duration");
    fprintf(out, "avg=%s min=%s med=%s p(90)=%s p(95)=%s p(99)=%s max=%s\n",
            load_fmt_us(hist_mean(h), a, sizeof(a)), load_fmt_us((double)hist_min(h), b, sizeof(b)),
            load_fmt_us((double)hist_percentile(h, 50), c, sizeof(c)),
            load_fmt_us((double)hist_percentile(h, 90), d, sizeof(d)),
            load_fmt_us((double)hist_percentile(h, 95), e, sizeof(e)),
            load_fmt_us((double)hist_percentile(h, 99), f, sizeof(f)),
            load_fmt_us((double)hist_max(h), g, sizeof(g)));
    rt__key(out, rt__mark(r, "http_req_failed"), "http_req_failed");
    fprintf(out, "%.2f%%  ✓ %" PRIu64 "  ✗ %" PRIu64 "\n", 100.0 * result_failed_rate(r), r->failed,
            r->reqs - r->failed);
    rt__key(out, rt__mark(r, "http_reqs"), "http_reqs");
    fprintf(out, "%" PRIu64 "  %.1f/s\n", r->reqs, result_rps(r));
    rt__key(out, rt__mark(r, "iterations"), "iterations");
    fprintf(out, "%" PRIu64 "  %.1f/s\n", r->iterations, result_iter_rate(r));
    rt__key(out, " ", "requests_under_500ms");
    fprintf(out, "%.2f%%\n", 100.0 * result_under(r, 500000));
    rt__key(out, " ", "requests_under_1s");
    fprintf(out, "%.2f%%\n", 100.0 * result_under(r, 1000000));
    if (r->gw.present) {
        /* The gateway's side, next to latency: what its cache did and what it cost. */
        rt__key(out, " ", "gateway_cache_hit_ratio");
        if (isfinite(r->gw.hit_ratio))
            fprintf(out, "%.2f%%  (%s)\n", 100.0 * r->gw.hit_ratio, r->gw.admin);
        else
            fprintf(out, "-  (no cache lookups; %s)\n", r->gw.admin);
        rt__key(out, " ", "gateway_origin_requests");
        fprintf(out, "%.0f  (%.1f%% of the %.0f it answered)\n", r->gw.origin,
                r->gw.requests > 0 ? 100.0 * r->gw.origin / r->gw.requests : 0.0, r->gw.requests);
        rt__key(out, " ", "gateway_cpu_per_1k_requests");
        if (isfinite(r->gw.cpu_ms_per_1k))
            fprintf(out, "%.1f ms  (%.0f requests per CPU-second)\n", r->gw.cpu_ms_per_1k,
                    r->gw.cpu_ms_per_1k > 0 ? 1e6 / r->gw.cpu_ms_per_1k : 0.0);
        else
            fputs("-\n", out);
    }
    if (r->interrupted) {
        rt__key(out, " ", "interrupted");
        fprintf(out, "%" PRIu64 " (still in flight after graceful_stop, not counted)\n",
                r->interrupted);
    }

    fputs("\n  status codes:", out);
    bool any = false;
    for (int s = 0; s < 600; s++) {
        if (r->status[s]) {
            fprintf(out, "  %d=%" PRIu64, s, r->status[s]);
            any = true;
        }
    }
    fputs(any ? "\n" : "  (no responses)\n", out);
    if (any) {
        /* Status classes: the error side (4xx, 5xx) at a glance next to the exact codes. */
        uint64_t cls[6] = {0};
        for (int st = 100; st < 600; st++)
            cls[st / 100] += r->status[st];
        fputs("  status classes:", out);
        for (int k = 1; k < 6; k++)
            if (cls[k])
                fprintf(out, "  %dxx=%" PRIu64 " (%.2f%%)", k, cls[k],
                        100.0 * (double)cls[k] / (double)(r->reqs ? r->reqs : 1));
        fputc('\n', out);
    }
    uint64_t nerr = 0;
    for (int k = 0; k < LERR__COUNT; k++)
        nerr += r->errors[k];
    if (nerr) {
        fputs("  errors:\n", out);
        for (int k = 0; k < LERR__COUNT; k++)
            if (r->errors[k])
                fprintf(out, "    %-16s %10" PRIu64 "  %s%s%s\n", load_err_names[k], r->errors[k],
                        load_err_text[k], k == LERR_TLS && r->tls_detail[0] ? ": " : "",
                        k == LERR_TLS ? r->tls_detail : "");
    }
    if (r->reqs > 0 && r->failed == r->reqs)
        fprintf(out, "  every request failed: %s\n",
                nerr ? "the target could not be reached or broke the connections (see errors)"
                     : "every response had an error status");
    if (r->reqs == 0 && r->interrupted > 0)
        fprintf(out,
                "  no request completed: %" PRIu64 " were still waiting for a connection or a "
                "response when the run ended (a target that accepts nothing or never answers; "
                "a shorter --timeout / timeout: turns them into errors)\n",
                r->interrupted);
    if (r->dropped)
        fprintf(out,
                "  WARNING: the requested rate was not met: %" PRIu64
                " iterations dropped (no free connection); raise max_vus (-c in quick mode) or "
                "check the "
                "target\n",
                r->dropped);

    if (r->neps > 0) {
        fprintf(out, "\n  %-32s %10s %8s %10s %10s %10s\n", "endpoint", "calls", "errors", "avg",
                "p95", "p99");
        for (size_t i = 0; i < r->neps; i++) {
            const struct result_ep *ep = &r->eps[i];
            /* The steps of a flow under its group's name, as k6 prints groups. */
            if (ep->group && (i == 0 || r->eps[i - 1].group == NULL ||
                              strcmp(r->eps[i - 1].group, ep->group) != 0))
                fprintf(out, "  █ %s\n", ep->group);
            fprintf(out, "  %-32.32s %10" PRIu64 " %8" PRIu64 " %10s %10s %10s\n", ep->name,
                    ep->reqs, ep->failed, load_fmt_us(hist_mean(&ep->h), a, sizeof(a)),
                    load_fmt_us((double)hist_percentile(&ep->h, 95), b, sizeof(b)),
                    load_fmt_us((double)hist_percentile(&ep->h, 99), c, sizeof(c)));
        }
    }
    if (r->nchecks > 0) {
        fputs("\n  checks:\n", out);
        for (size_t i = 0; i < r->nchecks; i++) {
            const struct result_check *k = &r->checks[i];
            fprintf(out, "    %s %s: %s  (✓ %" PRIu64 " ✗ %" PRIu64 ")\n", k->fail == 0 ? "✓" : "✗",
                    k->request, k->label, k->pass, k->fail);
        }
    }
    if (r->nth > 0) {
        fputs("\n  thresholds:\n", out);
        for (size_t i = 0; i < r->nth; i++) {
            const struct threshold *t = &r->th[i];
            threshold_format_observed(t, a, sizeof(a));
            fprintf(out, "    %s %s%s%s%s: %s  (observed %s)\n", t->ok ? "✓" : "✗", t->metric,
                    t->tag ? "{name:" : "", t->tag ? t->tag : "", t->tag ? "}" : "", t->expr, a);
        }
    }
    fputc('\n', out);
}
