/* Metrics registry: families, series and per-thread slots. Registration takes a mutex (start-up);
 * updates are plain relaxed stores in the caller's own slot; reads sum the slots under the mutex.
 * Rendering lives in prom.c. */
#include "metrics/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "metrics/internal.h"

const double metrics_le_seconds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,   0.5,   1,      2.5,   5,    10,    30,    60};
const size_t metrics_le_count = sizeof(metrics_le_seconds) / sizeof(metrics_le_seconds[0]);

struct metrics *metrics_create(void)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nslots; i++) {
        for (uint32_t h = 0; h < m->next_hist; h++)
            free(m->slots[i]->hists[h]);
        free(m->slots[i]);
    }
    for (size_t i = 0; i < m->nfamilies; i++) {
        struct metrics_family_def *f = &m->families[i];
        for (size_t s = 0; s < f->nseries; s++)
            for (size_t l = 0; l < f->nlabels; l++)
                free(f->series[s].values[l]);
        free(f->series);
        for (size_t l = 0; l < f->nlabels; l++)
            free(f->labels[l]);
        free(f->name);
        free(f->help);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static struct hist *metrics__new_hist(void)
{
    struct hist *h = xmalloc(sizeof(*h));
    hist_init(h);
    return h;
}

struct metrics_slot *metrics_slot_get(struct metrics *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->nslots == METRICS_MAX_SLOTS) {
        /* Threads are bounded by config (workers.threads ≤ 64) plus a few helpers. */
        ag_log(AG_LOG_FATAL, "metrics: more than %d threads asked for a slot", METRICS_MAX_SLOTS);
        abort();
    }
    /* The slot is large (64 KiB of values) and cache-line aligned so that two threads' counters
     * never share a line. */
    struct metrics_slot *s = aligned_alloc(64, sizeof(*s));
    if (s == NULL) {
        ag_log(AG_LOG_FATAL, "metrics: out of memory");
        abort();
    }
    memset(s, 0, sizeof(*s));
    for (uint32_t h = 0; h < m->next_hist; h++)
        s->hists[h] = metrics__new_hist();
    m->slots[m->nslots++] = s;
    pthread_mutex_unlock(&m->lock);
    return s;
}

static bool metrics__valid_name(const char *s, bool label)
{
    if (s == NULL || s[0] == '\0')
        return false;
    if (label && s[0] == '_' && s[1] == '_')
        return false; /* reserved by Prometheus */
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                     (!label && c == ':');
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static struct metrics_family_def *metrics__find(struct metrics *m, const char *name)
{
    for (size_t i = 0; i < m->nfamilies; i++)
        if (strcmp(m->families[i].name, name) == 0)
            return &m->families[i];
    return NULL;
}

int metrics_family(struct metrics *m, enum metrics_type type, const char *name, const char *help,
                   const char *const *labels)
{
    size_t nlabels = 0;
    if (!metrics__valid_name(name, false))
        return -1;
    while (labels != NULL && labels[nlabels] != NULL) {
        if (nlabels == METRICS_MAX_LABELS || !metrics__valid_name(labels[nlabels], true))
            return -1;
        if (type == METRICS_HISTOGRAM && strcmp(labels[nlabels], "le") == 0)
            return -1;
        nlabels++;
    }
    pthread_mutex_lock(&m->lock);
    int id = -1;
    struct metrics_family_def *f = metrics__find(m, name);
    if (f != NULL) {
        /* Same name again: fine when it is the same family (two pools registering it). */
        bool same = f->type == type && f->nlabels == nlabels;
        for (size_t i = 0; same && i < nlabels; i++)
            same = strcmp(f->labels[i], labels[i]) == 0;
        if (same)
            id = (int)(f - m->families);
        goto out;
    }
    if (m->nfamilies == METRICS_MAX_FAMILIES)
        goto out;
    f = &m->families[m->nfamilies];
    memset(f, 0, sizeof(*f));
    f->name = xstrdup(name);
    f->help = xstrdup(help ? help : "");
    f->type = type;
    f->nlabels = nlabels;
    for (size_t i = 0; i < nlabels; i++)
        f->labels[i] = xstrdup(labels[i]);
    id = (int)m->nfamilies++;
out:
    pthread_mutex_unlock(&m->lock);
    return id;
}

/* Says once per registry that series are being dropped: a config with too many label values. */
static void metrics__full(struct metrics *m, const char *family)
{
    if (m->warned_full)
        return;
    m->warned_full = true;
    ag_log(AG_LOG_WARN,
           "metrics: registry full (%d counter/gauge, %d histogram series): new series of %s and "
           "later ones are not recorded",
           METRICS_MAX_VALUES, METRICS_MAX_HISTS, family);
}

metrics_ref metrics_series(struct metrics *m, int family, const char *const *values)
{
    metrics_ref ref = METRICS_REF_NONE;
    pthread_mutex_lock(&m->lock);
    if (family < 0 || (size_t)family >= m->nfamilies)
        goto out;
    struct metrics_family_def *f = &m->families[family];
    size_t nvalues = 0;
    while (values != NULL && values[nvalues] != NULL && nvalues < METRICS_MAX_LABELS)
        nvalues++;
    if (nvalues != f->nlabels)
        goto out;
    for (size_t s = 0; s < f->nseries; s++) {
        bool same = true;
        for (size_t l = 0; same && l < f->nlabels; l++)
            same = strcmp(f->series[s].values[l], values[l]) == 0;
        if (same) {
            ref = f->series[s].ref;
            goto out;
        }
    }
    if (f->type == METRICS_HISTOGRAM) {
        if (m->next_hist == METRICS_MAX_HISTS) {
            metrics__full(m, f->name);
            goto out;
        }
        ref = m->next_hist;
        /* Give every existing slot its histogram before the ref is published. */
        for (size_t i = 0; i < m->nslots; i++)
            m->slots[i]->hists[ref] = metrics__new_hist();
        m->next_hist++;
    } else {
        if (m->next_value == METRICS_MAX_VALUES) {
            metrics__full(m, f->name);
            goto out;
        }
        ref = m->next_value++;
    }
    if (f->nseries == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 8;
        f->series = xrealloc(f->series, f->cap * sizeof(*f->series));
    }
    struct metrics_series_def *sd = &f->series[f->nseries++];
    memset(sd, 0, sizeof(*sd));
    for (size_t l = 0; l < f->nlabels; l++)
        sd->values[l] = xstrdup(values[l]);
    sd->ref = ref;
out:
    pthread_mutex_unlock(&m->lock);
    return ref;
}

metrics_ref metrics_series1(struct metrics *m, int family, const char *value)
{
    const char *values[2] = {value, NULL};
    return metrics_series(m, family, values);
}

void metrics_gauge_set(struct metrics *m, metrics_ref r, int64_t value)
{
    if (r < METRICS_MAX_VALUES)
        atomic_store_explicit(&m->global[r], value, memory_order_relaxed);
}

int64_t metrics__sum(struct metrics *m, const struct metrics_family_def *f, metrics_ref r)
{
    if (r >= METRICS_MAX_VALUES)
        return 0;
    if (f->type == METRICS_GAUGE_SET || f->type == METRICS_COUNTER_SET)
        return atomic_load_explicit(&m->global[r], memory_order_relaxed);
    uint64_t sum = 0;
    for (size_t i = 0; i < m->nslots; i++)
        sum += atomic_load_explicit(&m->slots[i]->values[r], memory_order_relaxed);
    return (int64_t)sum; /* gauges are stored as two's complement deltas: the sum wraps right */
}

void metrics__merge(struct metrics *m, metrics_ref r, struct hist *out)
{
    if (r >= METRICS_MAX_HISTS)
        return;
    /* The owner thread may be recording meanwhile: a scrape can see a count one ahead of its
     * buckets, which Prometheus tolerates (the next scrape is consistent again). */
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i]->hists[r] != NULL)
            hist_merge(out, m->slots[i]->hists[r]);
}

/* The family that owns <r> for <type> (values and hists are separate index spaces). */
static const struct metrics_family_def *metrics__owner(struct metrics *m, metrics_ref r,
                                                       enum metrics_type type)
{
    bool want_hist = type == METRICS_HISTOGRAM;
    for (size_t i = 0; i < m->nfamilies; i++) {
        const struct metrics_family_def *f = &m->families[i];
        if ((f->type == METRICS_HISTOGRAM) != want_hist)
            continue;
        for (size_t s = 0; s < f->nseries; s++)
            if (f->series[s].ref == r)
                return f;
    }
    return NULL;
}

int64_t metrics_read(struct metrics *m, metrics_ref r, enum metrics_type type)
{
    pthread_mutex_lock(&m->lock);
    const struct metrics_family_def *f = metrics__owner(m, r, type);
    int64_t v = f ? metrics__sum(m, f, r) : 0;
    pthread_mutex_unlock(&m->lock);
    return v;
}

void metrics_read_hist(struct metrics *m, metrics_ref r, struct hist *out)
{
    pthread_mutex_lock(&m->lock);
    metrics__merge(m, r, out);
    pthread_mutex_unlock(&m->lock);
}

metrics_ref metrics_lookup(struct metrics *m, const char *name, const char *const *values)
{
    metrics_ref ref = METRICS_REF_NONE;
    pthread_mutex_lock(&m->lock);
    const struct metrics_family_def *f = metrics__find(m, name);
    for (size_t s = 0; f != NULL && s < f->nseries; s++) {
        bool same = true;
        for (size_t l = 0; same && l < f->nlabels; l++)
            same = values != NULL && values[l] != NULL &&
                   strcmp(f->series[s].values[l], values[l]) == 0;
        if (same) {
            ref = f->series[s].ref;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return ref;
}
