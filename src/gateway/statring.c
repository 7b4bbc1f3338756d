/* The per-second history behind /stats/history (see statring.h). Counters are read as /stats
 * reads them: requests by status class and the latency histogram of every route, the cache's
 * hits and misses from its stats JSON; each point is the difference with the previous sample. */
#include "gateway/statring.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/xmalloc.h"
#include "gateway/cachehook.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "metrics/metrics.h"

void statring_init(struct statring *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    hist_init(&r->all);
}

void statring_deinit(struct statring *r)
{
    pthread_mutex_destroy(&r->lock);
}

/* The slot of a new point, the oldest one's once full. Called with the lock held. */
static struct statring_pt *statring__push(struct statring *r)
{
    struct statring_pt *pt = &r->pts[(r->head + r->n) % STATRING_N];
    if (r->n < STATRING_N)
        r->n++;
    else
        r->head = (r->head + 1) % STATRING_N;
    return pt;
}

/* A counter of the cache's stats JSON ("hits", "misses"), 0 when absent. */
static uint64_t statring__json_u64(const struct buf *b, const char *key)
{
    char pat[40];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = memmem(buf_head(b), buf_pending(b), pat, strlen(pat));
    return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

void statring_tick(struct statring *r, struct gw_shared *sh)
{
    struct metrics *m = sh->metrics;
    uint64_t total = 0, x5 = 0;
    struct hist all, h;
    hist_init(&all);
    for (size_t i = 0; i <= sh->cfg->nroutes; i++) {
        for (size_t k = 0; k < 6; k++) {
            uint64_t v = (uint64_t)metrics_read(m, sh->rt[i].status_class[k], METRICS_COUNTER);
            total += v;
            if (k == 5)
                x5 += v;
        }
        hist_init(&h);
        metrics_read_hist(m, sh->rt[i].route_duration, &h);
        hist_merge(&all, &h);
    }
    struct buf cs = BUF_INIT;
    cachehook_stats_json(sh, &cs);
    uint64_t hits = statring__json_u64(&cs, "hits"), misses = statring__json_u64(&cs, "misses");
    buf_deinit(&cs);
    uint64_t now = clock_now_ms();
    pthread_mutex_lock(&r->lock);
    if (r->have_prev && now > r->prev_ms && total >= r->total) {
        struct statring_pt *pt = statring__push(r);
        double dt = (double)(now - r->prev_ms) / 1000.0;
        uint64_t dn = total - r->total;
        pt->t_ms = (int64_t)clock_wall_ms();
        pt->dt_ms = (int64_t)(now - r->prev_ms);
        pt->rps = (double)dn / dt;
        pt->err = dn && x5 >= r->x5 ? 100.0 * (double)(x5 - r->x5) / (double)dn : NAN;
        uint64_t dh = hits >= r->hits ? hits - r->hits : 0;
        uint64_t dm = misses >= r->misses ? misses - r->misses : 0;
        pt->hit = dh + dm ? 100.0 * (double)dh / (double)(dh + dm) : NAN;
        /* this second's latencies: the buckets that grew, each at its upper bound */
        hist_init(&h);
        for (size_t b = 0; b < HIST_BUCKETS; b++)
            if (all.buckets[b] > r->all.buckets[b])
                hist_record_n(&h, hist_bucket_upper(b), all.buckets[b] - r->all.buckets[b]);
        bool any = hist_count(&h) > 0;
        pt->p50 = any ? (double)hist_percentile(&h, 50) / 1000.0 : NAN;
        pt->p95 = any ? (double)hist_percentile(&h, 95) / 1000.0 : NAN;
        pt->p99 = any ? (double)hist_percentile(&h, 99) / 1000.0 : NAN;
    }
    r->have_prev = true;
    r->prev_ms = now;
    r->total = total;
    r->x5 = x5;
    r->hits = hits;
    r->misses = misses;
    r->all = all;
    pthread_mutex_unlock(&r->lock);
}

static void statring__num(struct buf *out, const char *key, double v)
{
    if (isfinite(v))
        buf_printf(out, ",\"%s\":%.3f", key, v);
    else
        buf_printf(out, ",\"%s\":null", key);
}

void statring_json(struct statring *r, struct buf *out)
{
    pthread_mutex_lock(&r->lock);
    buf_append_str(out, "{\"interval_s\":1,\"points\":[");
    for (size_t i = 0; i < r->n; i++) {
        const struct statring_pt *p = &r->pts[(r->head + i) % STATRING_N];
        buf_printf(out, "%s{\"t_ms\":%lld,\"dt_ms\":%lld", i ? "," : "", (long long)p->t_ms,
                   (long long)p->dt_ms);
        statring__num(out, "rps", p->rps);
        statring__num(out, "p50", p->p50);
        statring__num(out, "p95", p->p95);
        statring__num(out, "p99", p->p99);
        statring__num(out, "err", p->err);
        statring__num(out, "hit", p->hit);
        buf_append_str(out, "}");
    }
    buf_append_str(out, "]}\n");
    pthread_mutex_unlock(&r->lock);
}

#define STATRING_REC (2 * sizeof(int64_t) + 6 * sizeof(double))

/* The sample the last point was taken against: the next worker takes its first point against it
 * too, so that point covers the seconds of the hand-over instead of leaving them out. */
struct statring_state {
    uint64_t have_prev, prev_ms, total, x5, hits, misses;
    struct hist all;
};

/* A carried sample older than this is not taken (the monotonic clock is the host's, shared by
 * both workers; the new one samples milliseconds after reading it). */
#define STATRING_STATE_MAX_AGE_MS 5000

void statring_export(struct statring *r, struct buf *out)
{
    pthread_mutex_lock(&r->lock);
    uint64_t n = r->n;
    buf_append(out, &n, sizeof(n));
    for (size_t i = 0; i < r->n; i++) {
        const struct statring_pt *p = &r->pts[(r->head + i) % STATRING_N];
        const double v[6] = {p->rps, p->p50, p->p95, p->p99, p->err, p->hit};
        buf_append(out, &p->t_ms, sizeof(p->t_ms));
        buf_append(out, &p->dt_ms, sizeof(p->dt_ms));
        buf_append(out, v, sizeof(v));
    }
    struct statring_state *st = xmalloc(sizeof(*st));
    *st = (struct statring_state){.have_prev = r->have_prev, .prev_ms = r->prev_ms,
                                  .total = r->total, .x5 = r->x5, .hits = r->hits,
                                  .misses = r->misses, .all = r->all};
    pthread_mutex_unlock(&r->lock);
    buf_append(out, st, sizeof(*st));
    free(st);
}

int statring_import(struct statring *r, const void *p, size_t n)
{
    const char *c = p;
    uint64_t count;
    if (n < sizeof(count))
        return -1;
    memcpy(&count, c, sizeof(count));
    if (count > STATRING_N ||
        n - sizeof(count) != count * STATRING_REC + sizeof(struct statring_state))
        return -1;
    c += sizeof(count);
    struct statring_state *st = xmalloc(sizeof(*st));
    memcpy(st, c + count * STATRING_REC, sizeof(*st));
    pthread_mutex_lock(&r->lock);
    uint64_t now = clock_now_ms();
    if (st->have_prev && st->prev_ms <= now && now - st->prev_ms <= STATRING_STATE_MAX_AGE_MS) {
        r->have_prev = true;
        r->prev_ms = st->prev_ms;
        r->total = st->total;
        r->x5 = st->x5;
        r->hits = st->hits;
        r->misses = st->misses;
        r->all = st->all;
    }
    free(st);
    for (uint64_t i = 0; i < count; i++, c += STATRING_REC) {
        struct statring_pt *pt = statring__push(r);
        double v[6];
        memcpy(&pt->t_ms, c, sizeof(pt->t_ms));
        memcpy(&pt->dt_ms, c + sizeof(pt->t_ms), sizeof(pt->dt_ms));
        memcpy(v, c + 2 * sizeof(int64_t), sizeof(v));
        pt->rps = v[0];
        pt->p50 = v[1];
        pt->p95 = v[2];
        pt->p99 = v[3];
        pt->err = v[4];
        pt->hit = v[5];
    }
    pthread_mutex_unlock(&r->lock);
    return (int)count;
}
