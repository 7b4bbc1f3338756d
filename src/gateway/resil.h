/* Resilience of the request path, the glue between the gateway (conn.c, proxy.c, worker.c,
 * admin.c) and the mechanisms breaker.c, retry.c, adaptive.c: per-route circuit breakers (stale
 * copy, then the route's fallback, while open), retries with backoff under a budget, the
 * adaptive concurrency limit, their metrics and their /stats member. Each call is a no-op for a
 * route that configures none of them. */
#ifndef AG_GATEWAY_RESIL_H
#define AG_GATEWAY_RESIL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/loop.h"
#include "gateway/breaker.h"

struct conn;
struct gw_shared;
struct resil;

/* Per-request state, embedded in struct conn (zero is the idle state). */
struct resil_req {
    struct loop_timer backoff; // pause before a retry (initialised on first use)
    bool timer_ready;
    bool ticket_held; // admitted by the breaker, outcome not yet recorded
    bool limited;     // admitted by the adaptive limit: one slot held
    struct breaker_ticket ticket;
    unsigned retries;   // retries done for this request
    uint64_t t_sent_us; // first attempt started (adaptive latency sample)
};

/* Builds the per-route breakers, budgets and limits of sh->cfg and registers their metrics in
 * sh->metrics. Call once at worker start, before the loop threads run. Never NULL. */
struct resil *resil_create(struct gw_shared *sh);
void resil_destroy(struct resil *r);

/* proxy.c, first thing of proxy_start: admission to the upstream. Returns true when the request
 * may go on; false when it was answered here (breaker open: stale copy, else the route's
 * fallback, else 503; adaptive limit reached: 503 at once). */
bool resil_admit(struct conn *c);
/* proxy.c, the exchange failed (<counter> is the error counter proxy__fail got, which says what
 * failed). True when a retry was scheduled (the exchange restarts through proxy_retry), false
 * when the failure is final (its outcome is then recorded). */
bool resil_failed(struct conn *c, int status, uint32_t counter);
/* proxy.c, before proxy__fail for a failure the gateway made itself without an upstream outcome
 * (no server with an address, the total deadline passed while queued for a connection): the
 * breaker ticket is given back unjudged (a half-open probe slot goes to the next request), so
 * only connect failures, timeouts and 5xx of the origin feed the breaker. Pool queue timeouts
 * and a full queue (rt->err_pool) are recognised by resil_failed itself. */
void resil_local_failure(struct conn *c);
/* proxy.c, a response head with <status> arrived. True when this response is dropped for a
 * retry (retry.on lists the status, budget left); false: go on (the outcome is recorded). */
bool resil_response(struct conn *c, int status);
/* proxy.c, a final failure with nothing sent yet and no stale copy: writes the route's fallback
 * (status, headers, body) and ends the request. False when the route has none. */
bool resil_fallback(struct conn *c);
/* conn.c: the request is over (answered or the connection closed): releases what it holds. */
void resil_request_end(struct conn *c);

/* admin.c: number of breakers open now (half-open counts as open). */
int resil_breakers_open(struct gw_shared *sh);
/* admin.c: appends the JSON array of breakers [{"route","upstream","state","requests","failures",
 * "opens","transitions"}] for /stats. */
void resil_stats_json(struct gw_shared *sh, struct buf *out);
/* admin.c: appends the JSON array of adaptive limits [{"route","limit","inflight","min_rtt_ms",
 * "measuring"}] for /stats. */
void resil_adaptive_json(struct gw_shared *sh, struct buf *out);

#endif
