/* Resilience of the request path as request filters (filter.h): resil_filter (per-route circuit
 * breakers, retries with backoff under a budget, the adaptive concurrency limit) and
 * fallback_filter (the route's configured answer when the upstream failed), their metrics and
 * their /stats members. The request path reaches them only through the filter chain. */
#ifndef AG_GATEWAY_RESIL_H
#define AG_GATEWAY_RESIL_H

#include "core/buf.h"

struct gw_shared;

/* admin.c: number of breakers open now (half-open counts as open). */
int resil_breakers_open(struct gw_shared *sh);
/* admin.c: appends the JSON array of breakers [{"route","upstream","state","requests","failures",
 * "opens","transitions"}] for /stats. */
void resil_stats_json(struct gw_shared *sh, struct buf *out);
/* admin.c: appends the JSON array of adaptive limits [{"route","limit","inflight","min_rtt_ms",
 * "measuring"}] for /stats. */
void resil_adaptive_json(struct gw_shared *sh, struct buf *out);

#endif
