/* Executor arithmetic, with time passed in: stage interpolation (k6's ramping-vus and
 * ramping-arrival-rate), the intended start time of every open-model iteration (the inverse of
 * the integral of the rate, as wrk2 schedules requests), and the per-thread queue that counts late
 * and dropped iterations when the rate cannot be met. No I/O and no clock here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "load/internal.h"

void sched_plan_finish(struct sched_plan *p)
{
    p->total_us = 0;
    for (size_t i = 0; i < p->nstages; i++)
        p->total_us += p->stages[i].dur_us;
}

double sched_value_at(const struct sched_plan *p, uint64_t t_us)
{
    double prev = p->start;
    uint64_t acc = 0;
    for (size_t i = 0; i < p->nstages; i++) {
        const struct sched_stage *s = &p->stages[i];
        if (t_us < acc + s->dur_us)
            return prev + (s->target - prev) * (double)(t_us - acc) / (double)s->dur_us;
        acc += s->dur_us;
        prev = s->target;
    }
    return 0.0;
}

double sched_peak(const struct sched_plan *p)
{
    double m = p->start;
    for (size_t i = 0; i < p->nstages; i++)
        if (p->stages[i].target > m)
            m = p->stages[i].target;
    return m;
}

/* Iterations of one stage after <e> seconds in it: the area under a line from <a> to <b>. */
static double sched__area(double a, double b, double dur_s, double e)
{
    return a * e + (b - a) * e * e / (2.0 * dur_s);
}

double sched_iterations_by(const struct sched_plan *p, uint64_t t_us)
{
    double prev = p->start, sum = 0.0;
    uint64_t acc = 0;
    for (size_t i = 0; i < p->nstages; i++) {
        const struct sched_stage *s = &p->stages[i];
        double dur_s = (double)s->dur_us / 1e6;
        if (t_us < acc + s->dur_us)
            return sum + sched__area(prev, s->target, dur_s, (double)(t_us - acc) / 1e6);
        sum += sched__area(prev, s->target, dur_s, dur_s);
        acc += s->dur_us;
        prev = s->target;
    }
    return sum;
}

uint64_t sched_intended_us(const struct sched_plan *p, uint64_t n)
{
    double prev = p->start, cum = 0.0, m = (double)n;
    uint64_t acc = 0;
    for (size_t i = 0; i < p->nstages; i++) {
        const struct sched_stage *s = &p->stages[i];
        double dur_s = (double)s->dur_us / 1e6;
        double area = sched__area(prev, s->target, dur_s, dur_s);
        if (area > 0.0 && cum + area > m) {
            /* Solve a*e + k*e²/2 = r for e. The form 2r / (a + sqrt(a² + 2kr)) is the root of
             * the quadratic that stays exact when k is 0 (constant rate) and when a is 0 (a ramp
             * from zero), without the cancellation of (-a + sqrt(…)) / k. */
            double r = m - cum, a = prev, k = (s->target - prev) / dur_s;
            double disc = a * a + 2.0 * k * r;
            double e = 2.0 * r / (a + sqrt(disc > 0.0 ? disc : 0.0));
            if (!(e >= 0.0))
                e = 0.0;
            if (e > dur_s)
                e = dur_s;
            uint64_t off = (uint64_t)llround(e * 1e6);
            if (off >= s->dur_us)
                off = s->dur_us - 1;
            return acc + off;
        }
        cum += area;
        acc += s->dur_us;
        prev = s->target;
    }
    return UINT64_MAX;
}

unsigned sched_vus_at(const struct sched_plan *p, uint64_t t_us, unsigned max)
{
    if (t_us >= p->total_us)
        return 0;
    double v = floor(sched_value_at(p, t_us) + 1e-9);
    if (v <= 0.0)
        return 0;
    return v >= (double)max ? max : (unsigned)v;
}

/* ---- open-model dispatcher ---- */

void sched_open_init(struct sched_open *s, const struct sched_plan *p, uint64_t first,
                     uint64_t stride, size_t qcap)
{
    memset(s, 0, sizeof(*s));
    s->plan = p;
    s->next_n = first;
    s->stride = stride ? stride : 1;
    s->next_us = sched_intended_us(p, first);
    s->qcap = qcap ? qcap : 1;
    s->queue = xcalloc(s->qcap, sizeof(*s->queue));
}

void sched_open_deinit(struct sched_open *s)
{
    free(s->queue);
    s->queue = NULL;
}

size_t sched_open_arrivals(struct sched_open *s, uint64_t now_us)
{
    size_t n = 0;
    while (s->next_us != UINT64_MAX && s->next_us <= now_us) {
        if (s->qlen < s->qcap) {
            s->queue[(s->qhead + s->qlen) % s->qcap] = s->next_us;
            s->qlen++;
        } else {
            /* k6 drops an iteration that finds no free VU; we allow a queue as deep as the
             * connection limit first, and count the rest. */
            s->dropped++;
        }
        n++;
        s->next_n += s->stride;
        s->next_us = sched_intended_us(s->plan, s->next_n);
    }
    return n;
}

int sched_open_take(struct sched_open *s, uint64_t now_us, uint64_t *intended)
{
    if (s->qlen == 0)
        return 0;
    *intended = s->queue[s->qhead];
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    if (s->qlate > 0)
        s->qlate--;
    uint64_t lag = now_us > *intended ? now_us - *intended : 0;
    if (lag > s->max_lag_us)
        s->max_lag_us = lag;
    return 1;
}

void sched_open_settle(struct sched_open *s)
{
    /* Whatever is still queued after a tick found no free connection when it was due. */
    if (s->qlen > s->qlate)
        s->late += s->qlen - s->qlate;
    s->qlate = s->qlen;
}

void sched_open_drop_all(struct sched_open *s)
{
    s->dropped += s->qlen;
    s->late -= s->qlate < s->late ? s->qlate : s->late;
    s->qlen = 0;
    s->qlate = 0;
}
