/* Prometheus text exposition, format 0.0.4: # HELP / # TYPE per family, one line per series,
 * histograms as cumulative _bucket{le="…"} lines (seconds) plus _sum and _count. The buckets are
 * counted from the full-resolution core/hist.h histograms, so the fixed `le` set costs no
 * precision anywhere else (/stats percentiles). */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "metrics/internal.h"

static const char *const prom_type_names[] = {
    [METRICS_COUNTER] = "counter",
    [METRICS_GAUGE] = "gauge",
    [METRICS_GAUGE_SET] = "gauge",
    [METRICS_HISTOGRAM] = "histogram",
    [METRICS_COUNTER_SET] = "counter",
};

/* Label values escape backslash, double quote and newline; HELP text backslash and newline. */
static void prom_escape(struct buf *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_append(out, "\\\\", 2);
        else if (*s == '\n')
            buf_append(out, "\\n", 2);
        else if (*s == '"' && quote)
            buf_append(out, "\\\"", 2);
        else
            buf_append(out, s, 1);
    }
}

/* Writes {a="x",b="y"[,le="…"]} (nothing when there are no labels and no le). */
static void prom_labels(struct buf *out, const struct metrics_family_def *f,
                        const struct metrics_series_def *s, const char *le)
{
    if (f->nlabels == 0 && le == NULL)
        return;
    buf_append(out, "{", 1);
    for (size_t l = 0; l < f->nlabels; l++) {
        if (l)
            buf_append(out, ",", 1);
        buf_append_str(out, f->labels[l]);
        buf_append(out, "=\"", 2);
        prom_escape(out, s->values[l], true);
        buf_append(out, "\"", 1);
    }
    if (le != NULL)
        buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    buf_append(out, "}", 1);
}

static void prom_hist(struct metrics *m, struct buf *out, const struct metrics_family_def *f,
                      const struct metrics_series_def *s)
{
    struct hist h;
    hist_init(&h);
    metrics__merge(m, s->ref, &h);
    char le[32];
    for (size_t i = 0; i < metrics_le_count; i++) {
        uint64_t le_us = (uint64_t)(metrics_le_seconds[i] * 1e6 + 0.5);
        snprintf(le, sizeof(le), "%g", metrics_le_seconds[i]);
        buf_printf(out, "%s_bucket", f->name);
        prom_labels(out, f, s, le);
        buf_printf(out, " %" PRIu64 "\n", hist_count_le(&h, le_us));
    }
    buf_printf(out, "%s_bucket", f->name);
    prom_labels(out, f, s, "+Inf");
    buf_printf(out, " %" PRIu64 "\n", h.count);
    buf_printf(out, "%s_sum", f->name);
    prom_labels(out, f, s, NULL);
    buf_printf(out, " %.6f\n", (double)h.sum_us / 1e6);
    buf_printf(out, "%s_count", f->name);
    prom_labels(out, f, s, NULL);
    buf_printf(out, " %" PRIu64 "\n", h.count);
}

/* A counter of time is named in seconds (Prometheus' base unit) but kept in microseconds, so
 * that threads add integers: rendered with six decimals. */
static bool prom_counts_us(const char *name)
{
    size_t n = strlen(name), k = sizeof("_seconds_total") - 1;
    return n > k && strcmp(name + n - k, "_seconds_total") == 0;
}

void metrics_render_prom(struct metrics *m, struct buf *out)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nfamilies; i++) {
        const struct metrics_family_def *f = &m->families[i];
        buf_printf(out, "# HELP %s ", f->name);
        prom_escape(out, f->help, false);
        buf_printf(out, "\n# TYPE %s %s\n", f->name, prom_type_names[f->type]);
        for (size_t s = 0; s < f->nseries; s++) {
            if (f->type == METRICS_HISTOGRAM) {
                prom_hist(m, out, f, &f->series[s]);
                continue;
            }
            buf_append_str(out, f->name);
            prom_labels(out, f, &f->series[s], NULL);
            int64_t v = metrics__sum(m, f, f->series[s].ref);
            if (f->type == METRICS_COUNTER && prom_counts_us(f->name))
                buf_printf(out, " %" PRIu64 ".%06" PRIu64 "\n", (uint64_t)v / 1000000,
                           (uint64_t)v % 1000000);
            else if (f->type == METRICS_COUNTER || f->type == METRICS_COUNTER_SET)
                buf_printf(out, " %" PRIu64 "\n", (uint64_t)v);
            else
                buf_printf(out, " %" PRId64 "\n", v);
        }
    }
    pthread_mutex_unlock(&m->lock);
}
