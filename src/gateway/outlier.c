/* Consecutive-failure outlier detection (see outlier.h). One run counter per server; the
 * ejection itself is claimed by a compare-and-swap on the server's "ejected until" time, so two
 * threads seeing the N-th failure together eject once. */
#include "gateway/outlier.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "core/xmalloc.h"

struct outlier_host {
    _Atomic uint32_t run;      // consecutive failures
    _Atomic uint32_t mult;     // ejections not yet forgiven
    _Atomic uint64_t until_ms; // ejected until (0: never)
};

struct outlier {
    struct outlier_conf conf;
    size_t n;
    struct outlier_host *h;
};

struct outlier *outlier_create(const struct outlier_conf *conf, size_t nservers)
{
    struct outlier *o = xcalloc(1, sizeof(*o));
    o->conf = *conf;
    if (o->conf.consecutive < 1)
        o->conf.consecutive = 1;
    if (o->conf.base_ms < 1)
        o->conf.base_ms = 1;
    if (o->conf.max_ms < o->conf.base_ms)
        o->conf.max_ms = o->conf.base_ms;
    if (o->conf.max_percent <= 0 || o->conf.max_percent > 1)
        o->conf.max_percent = 1;
    o->n = nservers;
    o->h = xcalloc(nservers ? nservers : 1, sizeof(*o->h));
    return o;
}

void outlier_destroy(struct outlier *o)
{
    if (o == NULL)
        return;
    free(o->h);
    o->h = NULL;
    free(o);
}

bool outlier_ejected(const struct outlier *o, size_t i, uint64_t now_ms)
{
    return i < o->n && atomic_load_explicit(&o->h[i].until_ms, memory_order_relaxed) > now_ms;
}

unsigned outlier_multiplier(const struct outlier *o, size_t i)
{
    return i < o->n ? atomic_load(&o->h[i].mult) : 0;
}

uint64_t outlier_failure(struct outlier *o, size_t i, uint64_t now_ms)
{
    if (i >= o->n)
        return 0;
    struct outlier_host *h = &o->h[i];
    uint64_t until = atomic_load(&h->until_ms);
    if (until > now_ms)
        return 0; // already out: failures of requests sent before the ejection do not extend it
    uint32_t run = atomic_fetch_add(&h->run, 1) + 1;
    if (run < o->conf.consecutive)
        return 0;
    /* the cap: never take out more than max_percent of the pool (at least one may go), so a
     * whole-pool failure (the upstream's database is down) is not turned into "no server" */
    size_t out = 0;
    for (size_t k = 0; k < o->n; k++)
        out += outlier_ejected(o, k, now_ms);
    size_t cap = (size_t)((double)o->n * o->conf.max_percent);
    if (cap < 1)
        cap = 1;
    if (out >= cap)
        return 0;
    uint32_t mult = atomic_load(&h->mult) + 1;
    uint64_t d = o->conf.base_ms * mult;
    if (d > o->conf.max_ms || d / mult != o->conf.base_ms)
        d = o->conf.max_ms;
    if (!atomic_compare_exchange_strong(&h->until_ms, &until, now_ms + d))
        return 0; // another thread ejected it meanwhile
    atomic_store(&h->mult, mult);
    atomic_store(&h->run, 0);
    return d;
}

void outlier_success(struct outlier *o, size_t i, uint64_t now_ms)
{
    if (i >= o->n)
        return;
    struct outlier_host *h = &o->h[i];
    if (atomic_load_explicit(&h->run, memory_order_relaxed) != 0)
        atomic_store_explicit(&h->run, 0, memory_order_relaxed);
    /* forgiveness: one step per base time served without a new ejection */
    uint32_t mult = atomic_load_explicit(&h->mult, memory_order_relaxed);
    uint64_t until = atomic_load_explicit(&h->until_ms, memory_order_relaxed);
    if (mult > 0 && now_ms >= until + o->conf.base_ms) {
        /* the next step needs another base time in: the reference moves to now (a past time,
         * so the server stays in) */
        if (atomic_compare_exchange_strong(&h->mult, &mult, mult - 1))
            atomic_compare_exchange_strong(&h->until_ms, &until, now_ms);
    }
}
