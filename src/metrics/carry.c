/* Carrying counters over to the next worker process (reload, recycle): the old worker writes the
 * totals of its counters and histograms, the new one adds them into a slot of its own before it
 * serves, so every series Prometheus sees as monotonic stays monotonic across the hand-over.
 * Gauges are not carried (they describe the process that reports them), nor *_SET series (kept
 * elsewhere and copied in). */
#include "metrics/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "core/hist.h"
#include "core/xmalloc.h"
#include "metrics/internal.h"

static void carry__str(struct buf *out, const char *s)
{
    uint16_t n = (uint16_t)strnlen(s, 0xffff);
    buf_append(out, &n, sizeof(n));
    buf_append(out, s, n);
}

static void carry__u64(struct buf *out, uint64_t v) { buf_append(out, &v, sizeof(v)); }

void metrics_export(struct metrics *m, struct buf *out)
{
    struct hist *h = xmalloc(sizeof(*h));
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nfamilies; i++) {
        const struct metrics_family_def *f = &m->families[i];
        if (f->type != METRICS_COUNTER && f->type != METRICS_HISTOGRAM)
            continue;
        uint8_t t = (uint8_t)f->type, nl = (uint8_t)f->nlabels;
        buf_append(out, &t, 1);
        buf_append(out, &nl, 1);
        carry__str(out, f->name);
        for (size_t l = 0; l < f->nlabels; l++)
            carry__str(out, f->labels[l]);
        uint32_t ns = (uint32_t)f->nseries;
        buf_append(out, &ns, sizeof(ns));
        for (size_t s = 0; s < f->nseries; s++) {
            const struct metrics_series_def *sd = &f->series[s];
            for (size_t l = 0; l < f->nlabels; l++)
                carry__str(out, sd->values[l]);
            if (f->type == METRICS_COUNTER) {
                carry__u64(out, (uint64_t)metrics__sum(m, f, sd->ref));
                continue;
            }
            hist_init(h);
            metrics__merge(m, sd->ref, h);
            carry__u64(out, h->count);
            carry__u64(out, h->sum_us);
            carry__u64(out, h->min_us);
            carry__u64(out, h->max_us);
            uint32_t nz = 0;
            for (size_t b = 0; b < HIST_BUCKETS; b++)
                nz += h->buckets[b] != 0;
            buf_append(out, &nz, sizeof(nz));
            for (uint32_t b = 0; b < HIST_BUCKETS; b++) {
                if (h->buckets[b] == 0)
                    continue;
                buf_append(out, &b, sizeof(b));
                carry__u64(out, h->buckets[b]);
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    free(h);
}

/* A bounded reader over the exported bytes: every read fails once one ran past the end. */
struct carry__rd {
    const char *p;
    size_t n;
    bool bad;
};

static bool carry__get(struct carry__rd *r, void *dst, size_t len)
{
    if (r->bad || r->n < len) {
        r->bad = true;
        return false;
    }
    memcpy(dst, r->p, len);
    r->p += len;
    r->n -= len;
    return true;
}

/* Reads a string into <dst> (NUL-terminated, at most <cap> - 1 bytes kept). */
static bool carry__getstr(struct carry__rd *r, char *dst, size_t cap)
{
    uint16_t n;
    if (!carry__get(r, &n, sizeof(n)) || r->n < n) {
        r->bad = true;
        return false;
    }
    size_t k = n < cap ? n : cap - 1;
    memcpy(dst, r->p, k);
    dst[k] = '\0';
    r->p += n;
    r->n -= n;
    return true;
}

/* The family <name> with this type and these labels, registered already; -1 when absent. */
static int carry__family(struct metrics *m, uint8_t type, const char *name,
                         char labels[][128], size_t nl)
{
    int id = -1;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nfamilies && id < 0; i++) {
        const struct metrics_family_def *f = &m->families[i];
        if (strcmp(f->name, name) != 0)
            continue;
        bool same = (uint8_t)f->type == type && f->nlabels == nl;
        for (size_t l = 0; same && l < nl; l++)
            same = strcmp(f->labels[l], labels[l]) == 0;
        id = same ? (int)i : -2;
    }
    pthread_mutex_unlock(&m->lock);
    return id < 0 ? -1 : id;
}

/* <base> = max(<base>, <h>) field by field: the totals of a later snapshot of the same worker. */
static void carry__hist_max(struct hist *base, const struct hist *h)
{
    if (h->count > base->count)
        base->count = h->count;
    if (h->sum_us > base->sum_us)
        base->sum_us = h->sum_us;
    if (h->min_us < base->min_us)
        base->min_us = h->min_us;
    if (h->max_us > base->max_us)
        base->max_us = h->max_us;
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        if (h->buckets[b] > base->buckets[b])
            base->buckets[b] = h->buckets[b];
}

size_t metrics_import(struct metrics *m, struct metrics_slot *base, const char *p, size_t n,
                      bool raise_to)
{
    struct carry__rd r = {p, n, false};
    struct hist *h = xmalloc(sizeof(*h));
    size_t added = 0;
    char name[256];
    char labels[METRICS_MAX_LABELS][128];
    char values[METRICS_MAX_LABELS][128];
    while (r.n > 0 && !r.bad) {
        uint8_t type, nl;
        uint32_t ns;
        if (!carry__get(&r, &type, 1) || !carry__get(&r, &nl, 1) || nl > METRICS_MAX_LABELS ||
            (type != METRICS_COUNTER && type != METRICS_HISTOGRAM) ||
            !carry__getstr(&r, name, sizeof(name)))
            break;
        for (size_t l = 0; l < nl; l++)
            carry__getstr(&r, labels[l], sizeof(labels[l]));
        if (!carry__get(&r, &ns, sizeof(ns)))
            break;
        /* only families this process registered: a metric that no longer exists is not revived */
        int fam = carry__family(m, type, name, labels, nl);
        for (uint32_t s = 0; s < ns && !r.bad; s++) {
            const char *vals[METRICS_MAX_LABELS + 1];
            for (size_t l = 0; l < nl; l++) {
                carry__getstr(&r, values[l], sizeof(values[l]));
                vals[l] = values[l];
            }
            vals[nl] = NULL;
            uint64_t v = 0;
            if (type == METRICS_COUNTER) {
                carry__get(&r, &v, sizeof(v));
            } else {
                hist_init(h);
                uint32_t nz = 0;
                carry__get(&r, &h->count, sizeof(h->count));
                carry__get(&r, &h->sum_us, sizeof(h->sum_us));
                carry__get(&r, &h->min_us, sizeof(h->min_us));
                carry__get(&r, &h->max_us, sizeof(h->max_us));
                carry__get(&r, &nz, sizeof(nz));
                for (uint32_t k = 0; k < nz && !r.bad; k++) {
                    uint32_t b;
                    uint64_t c;
                    carry__get(&r, &b, sizeof(b));
                    if (carry__get(&r, &c, sizeof(c)) && b < HIST_BUCKETS)
                        h->buckets[b] = c;
                }
            }
            if (r.bad || fam < 0)
                continue;
            metrics_ref ref = metrics_series(m, fam, nl ? vals : NULL);
            if (ref == METRICS_REF_NONE)
                continue;
            if (type == METRICS_COUNTER) {
                uint64_t cur = atomic_load_explicit(&base->values[ref], memory_order_relaxed);
                if (!raise_to)
                    metrics_counter_add(base, ref, v);
                else if (v > cur)
                    atomic_store_explicit(&base->values[ref], v, memory_order_relaxed);
            } else if (ref < METRICS_MAX_HISTS && base->hists[ref] != NULL && h->count > 0) {
                if (raise_to)
                    carry__hist_max(base->hists[ref], h);
                else
                    hist_merge(base->hists[ref], h);
            }
            added++;
        }
    }
    free(h);
    return added;
}
