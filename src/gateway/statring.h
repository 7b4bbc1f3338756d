/* The admin's history of the last 10 minutes: one point per second (requests/s, p50/p95/p99 of
 * that second, 5xx rate, cache hit ratio), sampled by the admin thread from the same counters as
 * /stats and served as /stats/history, so the dashboard shows the last 10 minutes at once after a
 * page reload instead of starting empty. Owned by the worker (gw_shared.ring), ticked by its admin
 * thread; the hand-over (handoff.c) carries the points to the next worker, so a reload or a
 * max_requests recycle continues the history with the old points and their timestamps. */
#ifndef AG_GATEWAY_STATRING_H
#define AG_GATEWAY_STATRING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/hist.h"

#define STATRING_N 600

struct gw_shared;

struct statring_pt {
    int64_t t_ms; /* wall clock at the end of the second */
    int64_t dt_ms; /* the time it covers: about 1000, since the previous point */
    double rps, p50, p95, p99, err, hit; /* NAN: no requests (or no cache lookups) */
};

struct statring {
    pthread_mutex_t lock; /* the points: the admin thread writes, the signal thread exports */
    struct statring_pt pts[STATRING_N];
    size_t head, n; /* the oldest point is pts[head] */
    bool have_prev;
    uint64_t prev_ms; /* monotonic */
    uint64_t total, x5, hits, misses;
    struct hist all; /* cumulative latency at the previous sample */
};

void statring_init(struct statring *r);
void statring_deinit(struct statring *r);
/* Takes one sample (once a second from the admin loop). */
void statring_tick(struct statring *r, struct gw_shared *sh);
/* {"interval_s":1,"points":[{"t_ms":…,"dt_ms":…,"rps":…,"p50":…,…},…]}, oldest first, null for
 * NAN. */
void statring_json(struct statring *r, struct buf *out);
/* The points for the next worker, oldest first: u64 count, then per point the int64 t_ms and
 * dt_ms and the six doubles, then the counters of the last sample (this host's byte order and layout: both
 * workers run the same binary on the same machine). */
void statring_export(struct statring *r, struct buf *out);
/* Appends the exported points in <p, n> (before this worker's own: call it before the first
 * tick) and takes the last sample as its own previous one, so its first point covers the time
 * since the old worker's last point (its counters carry the old worker's totals). Returns the
 * points taken, or -1 when <p, n> is not an export. */
int statring_import(struct statring *r, const void *p, size_t n);

#endif
