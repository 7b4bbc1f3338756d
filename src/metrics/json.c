/* JSON snapshot of every metric for /stats and the dashboard: counters and gauges as numbers,
 * histograms as count, sum and a few percentiles in seconds (from the full-resolution histogram,
 * not the Prometheus buckets). */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "metrics/internal.h"

static const char *const json_type_names[] = {
    [METRICS_COUNTER] = "counter",
    [METRICS_GAUGE] = "gauge",
    [METRICS_GAUGE_SET] = "gauge",
    [METRICS_HISTOGRAM] = "histogram",
    [METRICS_COUNTER_SET] = "counter",
};

static void json_hist(struct metrics *m, struct buf *out, metrics_ref r)
{
    struct hist h;
    hist_init(&h);
    metrics__merge(m, r, &h);
    buf_printf(out,
               "\"count\":%" PRIu64 ",\"sum_s\":%.6f,\"p50_s\":%.6f,\"p90_s\":%.6f,"
               "\"p99_s\":%.6f,\"max_s\":%.6f",
               h.count, (double)h.sum_us / 1e6, (double)hist_percentile(&h, 50) / 1e6,
               (double)hist_percentile(&h, 90) / 1e6, (double)hist_percentile(&h, 99) / 1e6,
               (double)hist_max(&h) / 1e6);
}

void metrics_render_json(struct metrics *m, struct buf *out)
{
    pthread_mutex_lock(&m->lock);
    buf_append(out, "{", 1);
    for (size_t i = 0; i < m->nfamilies; i++) {
        const struct metrics_family_def *f = &m->families[i];
        if (i)
            buf_append(out, ",", 1);
        buf_append_json_str(out, f->name, strlen(f->name));
        buf_printf(out, ":{\"type\":\"%s\",\"help\":", json_type_names[f->type]);
        buf_append_json_str(out, f->help, strlen(f->help));
        buf_append_str(out, ",\"series\":[");
        for (size_t s = 0; s < f->nseries; s++) {
            const struct metrics_series_def *sd = &f->series[s];
            buf_append_str(out, s ? ",{\"labels\":{" : "{\"labels\":{");
            for (size_t l = 0; l < f->nlabels; l++) {
                if (l)
                    buf_append(out, ",", 1);
                buf_append_json_str(out, f->labels[l], strlen(f->labels[l]));
                buf_append(out, ":", 1);
                buf_append_json_str(out, sd->values[l], strlen(sd->values[l]));
            }
            buf_append_str(out, "},");
            if (f->type == METRICS_HISTOGRAM)
                json_hist(m, out, sd->ref);
            else
                buf_printf(out, "\"value\":%" PRId64, metrics__sum(m, f, sd->ref));
            buf_append(out, "}", 1);
        }
        buf_append_str(out, "]}");
    }
    buf_append(out, "}", 1);
    pthread_mutex_unlock(&m->lock);
}
