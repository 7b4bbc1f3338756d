/* Registry layout shared by the files of src/metrics (metrics.c registers, prom.c
 * renders). No other folder includes this. */
#ifndef AG_METRICS_INTERNAL_H
#define AG_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "metrics/metrics.h"

#define METRICS_MAX_FAMILIES 256

struct metrics_series_def {
    char *values[METRICS_MAX_LABELS]; /* one per label name of the family */
    metrics_ref ref;                  /* values[] index, or hists[] index for histograms */
};

struct metrics_family_def {
    char *name;
    char *help;
    enum metrics_type type;
    char *labels[METRICS_MAX_LABELS];
    size_t nlabels;
    struct metrics_series_def *series;
    size_t nseries;
    size_t cap;
};

struct metrics {
    pthread_mutex_t lock; /* registration, slot creation and rendering; never the hot path */
    struct metrics_family_def families[METRICS_MAX_FAMILIES];
    size_t nfamilies;
    uint32_t next_value; /* next free index of metrics_slot.values (and of global[]) */
    uint32_t next_hist;  /* next free index of metrics_slot.hists */
    struct metrics_slot *slots[METRICS_MAX_SLOTS];
    size_t nslots;
    bool warned_full;    /* the "registry full" warning was logged */
    _Atomic int64_t global[METRICS_MAX_VALUES]; /* METRICS_GAUGE_SET / COUNTER_SET values */
};

/* Sum of a counter or gauge series over the slots (or its global value); lock held. */
int64_t metrics__sum(struct metrics *m, const struct metrics_family_def *f, metrics_ref r);
/* Merge of a histogram series over the slots into <out> (hist_init'ed by the caller); lock held. */
void metrics__merge(struct metrics *m, metrics_ref r, struct hist *out);

#endif
