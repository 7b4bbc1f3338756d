/* The response cache of the gateway as a request filter (cachehook_filter, filter.h): per-route
 * cache policies, the lookup at request start, hits written as one writev, parking coalesced
 * misses, filling an entry while the response streams, 304 refreshes, stale-if-error,
 * invalidation after writes; plus the admin endpoints and the cache metrics. The request path
 * reaches it only through the filter chain. */
#ifndef AG_GATEWAY_CACHEHOOK_H
#define AG_GATEWAY_CACHEHOOK_H

#include <stdbool.h>

#include "core/buf.h"
#include "http/h1parse.h"

struct gw_shared;

/* admin.c: handles /cache/purge, /cache/stats and /metrics/cache. True when <req> was one of them
 * (<body>, <status> and <ctype> are then set). */
bool cachehook_admin(struct gw_shared *sh, const struct h1_request *req, struct buf *body,
                     int *status, const char **ctype);
/* admin.c: the value of the "cache" member of /stats. */
void cachehook_stats_json(struct gw_shared *sh, struct buf *out);
/* admin.c, before rendering /metrics: copies the store's counters into their gauges. */
void cachehook_refresh_metrics(struct gw_shared *sh);

#endif
