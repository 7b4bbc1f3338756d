/* Metrics: counters, gauges and latency histograms kept per thread (one cache-line aligned slot
 * per loop thread, written without locks or atomic read-modify-write) and summed when scraped.
 * Families are registered with a name, help text and label names; each label value tuple (a
 * "series") is registered once, from config words only (route, upstream and server names, status
 * classes): the cardinality is bounded by the config, never by traffic. Exposition: Prometheus
 * text format 0.0.4 (prom.c). */
#ifndef AG_METRICS_METRICS_H
#define AG_METRICS_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/hist.h"

struct metrics;

enum metrics_type {
    METRICS_COUNTER,   /* monotonic, summed over threads; name ends in _total (a name in
                          _seconds_total counts microseconds, rendered as seconds) */
    METRICS_GAUGE,     /* per-thread deltas summed over threads (in use, idle, waiting) */
    METRICS_GAUGE_SET, /* one process-wide value, set by any thread (healthy 0/1, config values) */
    METRICS_HISTOGRAM, /* latency in seconds: _bucket{le=} / _sum / _count */
    METRICS_COUNTER_SET, /* a counter kept elsewhere (shared memory, another process) and copied
                            in with metrics_counter_set(); exposed as a counter */
};

#define METRICS_MAX_LABELS 4      /* label names per family */
#define METRICS_MAX_VALUES 8192   /* counter + gauge series over all families */
#define METRICS_MAX_HISTS 512     /* histogram series over all families */
#define METRICS_MAX_SLOTS 72      /* loop threads + helper threads (health, admin) */

/* A registered series: index into the slot arrays (counters/gauges, or histograms by type).
 * Invalid refs (METRICS_REF_NONE, from a failed registration) are ignored by every update call,
 * so a full registry degrades into missing series, never a crash. */
typedef uint32_t metrics_ref;
#define METRICS_REF_NONE UINT32_MAX

/* Storage of one thread. Only its own thread writes it; scrapes read it concurrently (relaxed
 * atomic loads and stores: no lock prefix on the hot path). Published for the inline updaters. */
struct metrics_slot {
    _Alignas(64) _Atomic uint64_t values[METRICS_MAX_VALUES]; /* counters; gauges as int64 */
    struct hist *hists[METRICS_MAX_HISTS];                    /* allocated at registration */
};

/* Creates an empty registry. */
struct metrics *metrics_create(void);
/* Frees the registry and its slots. No thread may still use a slot. */
void metrics_destroy(struct metrics *m);

/* Returns a slot for the calling thread's exclusive use (at most METRICS_MAX_SLOTS; aborts when
 * exhausted: the number of threads is bounded by config). Owned by <m>. */
struct metrics_slot *metrics_slot_get(struct metrics *m);

/* Registers a family. <name> follows Prometheus naming (base units: seconds, bytes; counters end in
 * _total), <labels> is NULL-terminated (≤ METRICS_MAX_LABELS names, may be NULL for none).
 * Registering the same name again returns the same family if type and labels match. Returns the
 * family id (≥ 0) or -1 (bad name, mismatch, too many families). Strings are copied. Thread-safe,
 * but meant for start-up. */
int metrics_family(struct metrics *m, enum metrics_type type, const char *name, const char *help,
                   const char *const *labels);
/* Registers the series of <family> with <values> (one per label, NULL-terminated as the label
 * names; NULL when the family has no labels). Registering an existing tuple returns its ref.
 * Returns METRICS_REF_NONE when the registry is full. Thread-safe (slots exist already: the new
 * series starts at zero everywhere). */
metrics_ref metrics_series(struct metrics *m, int family, const char *const *values);
/* Shorthand for families with one label value (or none: <value> NULL). */
metrics_ref metrics_series1(struct metrics *m, int family, const char *value);

/* Hot path: an array update in the caller's slot. */
static inline void metrics_counter_add(struct metrics_slot *s, metrics_ref r, uint64_t n)
{
    if (r >= METRICS_MAX_VALUES)
        return;
    uint64_t v = atomic_load_explicit(&s->values[r], memory_order_relaxed);
    atomic_store_explicit(&s->values[r], v + n, memory_order_relaxed);
}
static inline void metrics_counter_inc(struct metrics_slot *s, metrics_ref r)
{
    metrics_counter_add(s, r, 1);
}
/* METRICS_GAUGE: adds <delta> to this thread's share (the scrape sums the shares). */
static inline void metrics_gauge_add(struct metrics_slot *s, metrics_ref r, int64_t delta)
{
    metrics_counter_add(s, r, (uint64_t)delta);
}
/* METRICS_HISTOGRAM: records one latency in microseconds. */
static inline void metrics_hist_observe_us(struct metrics_slot *s, metrics_ref r, uint64_t us)
{
    if (r < METRICS_MAX_HISTS && s->hists[r] != NULL)
        hist_record(s->hists[r], us);
}
/* METRICS_GAUGE_SET: sets the process-wide value (any thread). */
void metrics_gauge_set(struct metrics *m, metrics_ref r, int64_t value);
/* METRICS_COUNTER_SET: sets the process-wide counter value (any thread; must not decrease). */
static inline void metrics_counter_set(struct metrics *m, metrics_ref r, uint64_t value)
{
    metrics_gauge_set(m, r, (int64_t)value);
}

/* Reads back, summed over all slots (tests, /stats, doctor). <out> for histograms is merged into
 * (the caller hist_init()s it). */
int64_t metrics_read(struct metrics *m, metrics_ref r, enum metrics_type type);
void metrics_read_hist(struct metrics *m, metrics_ref r, struct hist *out);
/* Looks a series up by family name and label values (tests, /stats); METRICS_REF_NONE if absent. */
metrics_ref metrics_lookup(struct metrics *m, const char *name, const char *const *values);

/* Appends the totals of every counter and histogram series to <out> (carry.c), for the worker
 * that replaces this one. */
void metrics_export(struct metrics *m, struct buf *out);
/* Adds what metrics_export wrote (<p>[0, <n>)) into <base>, a slot of <m> kept for it: series of
 * families <m> has registered (same type and labels) are created as needed; others are dropped.
 * With <raise_to>, each value of <base> is raised to the exported one instead (never lowered): a
 * later export of the same worker replaces an earlier one without a scrape ever seeing a value go
 * down. Returns the number of series carried; stops at malformed bytes. */
size_t metrics_import(struct metrics *m, struct metrics_slot *base, const char *p, size_t n,
                      bool raise_to);
/* Appends the Prometheus text exposition (format 0.0.4, Content-Type
 * "text/plain; version=0.0.4; charset=utf-8") of every family to <out>. Histograms use the fixed
 * boundaries of metrics_le_seconds, counted from the full-resolution histograms. */
void metrics_render_prom(struct metrics *m, struct buf *out);

/* The `le` boundaries of the exposition, in seconds (0.0005 .. 60), and their number. */
extern const double metrics_le_seconds[];
extern const size_t metrics_le_count;

#endif
