/* Admin listener of the worker: /healthz, /readyz, /metrics (Prometheus), /stats (JSON for the
 * dashboard and `apigate doctor`, shape in docs/stats.md), /upstreams. Runs on its own thread
 * with its own loop, so a slow scrape never delays client traffic. */
#ifndef AG_GATEWAY_ADMIN_H
#define AG_GATEWAY_ADMIN_H

#include "core/buf.h"

struct admin;
struct gw_shared;

/* Starts serving the listening socket <fd> (taken over) for the worker described by <sh>.
 * Returns NULL (logged) on failure. */
struct admin *admin_start(struct gw_shared *sh, int fd);
/* Stops the thread, closes its connections and the listener. NULL is a no-op. */
void admin_stop(struct admin *a);
/* Appends the /stats JSON document of <sh> to <out> (also used by tests). */
void admin_stats_json(struct gw_shared *sh, struct buf *out);

#endif
