/* Per-route response counters of the mock, by status, one slot array per loop thread so the hot
 * path never shares a cache line: a thread only adds to its own slots (relaxed atomics, so a
 * reader on another thread sees whole values), and /_mock/stats sums them. Tests read these to
 * prove that a cache saved origin work, so they count what was really answered, exactly. */
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "mock/internal.h"

#define MOCK_NSTATUS (MOCK_STATUS_MAX - MOCK_STATUS_MIN + 1)

struct mock_stat_slot {
    _Atomic uint64_t status[MOCK_NSTATUS];
};

struct mock_stats {
    size_t nthreads;
    size_t nslots;                /* routes + 1 (unmatched) */
    struct mock_stat_slot *slots; /* [thread * nslots + route] */
};

struct mock_stats *mock_stats_create(size_t nthreads, size_t nroutes)
{
    struct mock_stats *s = xcalloc(1, sizeof(*s));
    s->nthreads = nthreads;
    s->nslots = nroutes + 1;
    s->slots = xcalloc(nthreads * s->nslots, sizeof(*s->slots));
    return s;
}

/* With its profile, when the last request of that profile is gone. */
void mock_stats_destroy(struct mock_stats *s)
{
    if (!s)
        return;
    free(s->slots);
    free(s);
}

/* Statuses outside 100..599 cannot happen here; clamp rather than index out of range. */
static int mock_stats__clamp(int status)
{
    if (status < MOCK_STATUS_MIN || status > MOCK_STATUS_MAX)
        return MOCK_STATUS_MAX; /* never happens with our own statuses; keeps the index safe */
    return status;
}

/* Hot path: one relaxed atomic add on this thread's own slot. */
void mock_stats_count(struct mock_stats *s, size_t thread, size_t route, int status)
{
    if (route >= s->nslots)
        route = s->nslots - 1;
    struct mock_stat_slot *slot = &s->slots[thread * s->nslots + route];
    atomic_fetch_add_explicit(&slot->status[mock_stats__clamp(status) - MOCK_STATUS_MIN], 1,
                              memory_order_relaxed);
}

/* POST /_mock/reset. A count racing with the reset may survive it; tests reset when idle. */
void mock_stats_reset(struct mock_stats *s)
{
    for (size_t i = 0; i < s->nthreads * s->nslots; i++)
        for (size_t k = 0; k < MOCK_NSTATUS; k++)
            atomic_store_explicit(&s->slots[i].status[k], 0, memory_order_relaxed);
}

uint64_t mock_stats_get(const struct mock_stats *s, size_t route, int status)
{
    uint64_t n = 0;
    for (size_t t = 0; t < s->nthreads; t++) {
        struct mock_stat_slot *slot = &s->slots[t * s->nslots + route];
        if (status != 0) {
            n += atomic_load_explicit(&slot->status[mock_stats__clamp(status) - MOCK_STATUS_MIN],
                                      memory_order_relaxed);
            continue;
        }
        for (size_t k = 0; k < MOCK_NSTATUS; k++)
            n += atomic_load_explicit(&slot->status[k], memory_order_relaxed);
    }
    return n;
}

/* {"served": N, "status": {"200": n, …}} for one route, with <sum> accumulating the totals. */
static void mock_stats__route_json(const struct mock_stats *s, size_t route, uint64_t *sum,
                                   struct buf *out)
{
    uint64_t served = 0;
    buf_append_str(out, "\"status\":{");
    bool first = true;
    for (int st = MOCK_STATUS_MIN; st <= MOCK_STATUS_MAX; st++) {
        uint64_t n = mock_stats_get(s, route, st);
        if (n == 0)
            continue;
        buf_printf(out, "%s\"%d\":%llu", first ? "" : ",", st, (unsigned long long)n);
        first = false;
        served += n;
        sum[st - MOCK_STATUS_MIN] += n;
    }
    buf_printf(out, "},\"served\":%llu", (unsigned long long)served);
}

/* Sums the threads' slots: the only place that reads them all. */
void mock_stats_json(const struct mock_profile *p, struct buf *out)
{
    const struct mock_stats *s = p->stats;
    uint64_t *sum = xcalloc(MOCK_NSTATUS, sizeof(*sum));
    buf_append_str(out, "\"routes\":[");
    for (size_t r = 0; r < p->nroutes; r++) {
        const struct mock_route *rt = &p->routes[r];
        buf_append_str(out, r ? ",{\"name\":" : "{\"name\":");
        buf_append_json_str(out, rt->name, strlen(rt->name));
        buf_append_str(out, ",\"method\":");
        buf_append_json_str(out, rt->method, strlen(rt->method));
        buf_append_str(out, ",\"path\":");
        buf_append_json_str(out, rt->pattern.text, strlen(rt->pattern.text));
        buf_append_str(out, ",");
        mock_stats__route_json(s, r, sum, out);
        buf_append_str(out, "}");
    }
    buf_append_str(out, "],\"unmatched\":{");
    mock_stats__route_json(s, p->nroutes, sum, out);
    buf_append_str(out, "},\"total\":{\"status\":{");
    uint64_t total = 0;
    bool first = true;
    for (int st = MOCK_STATUS_MIN; st <= MOCK_STATUS_MAX; st++) {
        uint64_t n = sum[st - MOCK_STATUS_MIN];
        if (n == 0)
            continue;
        buf_printf(out, "%s\"%d\":%llu", first ? "" : ",", st, (unsigned long long)n);
        first = false;
        total += n;
    }
    buf_printf(out, "},\"served\":%llu}", (unsigned long long)total);
    free(sum);
}
