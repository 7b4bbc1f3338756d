/* Hand-over from a worker to its replacement (reload, max_requests recycle): the old worker
 * writes its response cache, the totals of its counters and its /stats/history points into a memory file the supervisor
 * gave it at birth; the supervisor passes that file to the new worker, which adds the counters
 * into a slot of its own and inserts the cache entries before it serves. So a reload keeps the
 * cache (HIT before SIGHUP, HIT after), Prometheus counters stay monotonic and the dashboard's
 * history goes on.
 *
 * An entry is carried only when its route (matched again by path, Host and method in both
 * configurations) has the same pattern, restrictions and cache policy in both, and the settings
 * that shape every key (path normalisation) are unchanged; otherwise it is dropped. */
#ifndef AG_GATEWAY_HANDOFF_H
#define AG_GATEWAY_HANDOFF_H

#include <stdint.h>

struct gw_shared;

struct handoff;

/* Old worker (its signal thread, while the loop threads serve): writes the snapshot into <fd>
 * from offset 0, truncating it first. Returns the bytes written or -1 (logged). */
int64_t handoff_write(struct gw_shared *sh, int fd);
/* Old worker, once it has drained and its loop threads are gone: writes the final totals of its
 * counters into <fd> (the snapshot was read long ago), for the new worker to catch up with what
 * this one served after the snapshot. */
void handoff_write_final(struct gw_shared *sh, int fd);

/* New worker, after the metrics, the routes, the cache and the resilience state are built and
 * before any loop thread runs: reads the snapshot in <fd> (<len> bytes). Returns a handle that
 * keeps <fd> to watch for the final totals (handoff_poll), or NULL (then <fd> is closed). Logs
 * what was carried. */
struct handoff *handoff_read(struct gw_shared *sh, int fd, uint64_t len)
    __attribute__((warn_unused_result));
/* New worker, from time to time (its signal thread): when the old worker wrote its final totals,
 * raises the carried counters to them (never lowering one). Gives up after <give_up_ms> since
 * handoff_read. */
void handoff_poll(struct handoff *h, uint64_t give_up_ms);
void handoff_destroy(struct handoff *h);

#endif
