/* Glue between the gateway's request path (conn.c, proxy.c, admin.c, worker.c) and the response
 * cache (cache/cache.h, cache/coalesce.h): per-route cache policies, the lookup at request start,
 * hits written as one writev, parking coalesced misses, filling an entry while the response
 * streams, 304 refreshes, stale-if-error, invalidation after writes, the admin endpoints and the
 * cache metrics. Each function is a no-op when the worker or the route has no cache. */
#ifndef AG_GATEWAY_CACHEHOOK_H
#define AG_GATEWAY_CACHEHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "http/h1parse.h"

struct conn;
struct gw_shared;
struct gwthread;
struct cachehook;

/* Creates the worker's cache (NULL when cache.memory is 0 or no route caches). Call after the
 * metrics registry exists and sh->nthreads is set, before the loop threads start. */
struct cachehook *cachehook_create(struct gw_shared *sh);
void cachehook_destroy(struct cachehook *ch);
/* Called on each loop thread once it runs (Redis L2 attaches to the loop). */
void cachehook_thread_start(struct gwthread *th);
void cachehook_thread_stop(struct gwthread *th);

/* conn.c, after admission: true when the cache took the request (answered it, or parked it behind
 * a fetch in flight); false: forward it (proxy_start). */
bool cachehook_request(struct conn *c);
/* conn.c: the request is over (answered, or the conn closes): drops references, wakes waiters of
 * a fetch this request led, cancels a wait. */
void cachehook_request_end(struct conn *c);

/* proxy.c, building the upstream request head: true when the request header <name> must not be
 * forwarded because the route is cached and the header is not in its key (policy_unkeyed_headers,
 * unless the route's vary names it). */
bool cachehook_strip_header(const struct conn *c, const char *name, size_t len);
/* proxy.c, building the upstream request head: adds the stored validators of a revalidation. */
void cachehook_upstream_headers(struct conn *c, struct buf *b);
/* proxy.c, response head parsed, before anything goes to the client. Returns 0: forward as usual
 * (maybe copying into a new entry); 1: the cache wrote the whole answer to c->out (a 304 refreshed
 * the entry) and the response has no body; 2: the cache wrote the answer (a stale copy instead of
 * a 5xx) and the upstream response must be dropped. */
int cachehook_response_head(struct conn *c);
/* The X-Cache value of the current request ("HIT", "MISS", ...), or NULL when the route is not
 * cached (Server-Timing, logs). */
const char *cachehook_status(const struct conn *c);
/* proxy.c, client head being written: appends X-Cache. */
void cachehook_client_headers(struct conn *c, struct buf *b);
/* proxy.c: decoded response body bytes as they go to the client. */
void cachehook_response_body(struct conn *c, const char *p, size_t n);
/* proxy.c: the response was received completely. */
void cachehook_response_done(struct conn *c);
/* proxy.c: the response cannot be trusted (the upstream sent bytes past it, or answered before
 * the request was sent): whatever was being stored is dropped; call before response_done. */
void cachehook_response_discard(struct conn *c);
/* proxy.c, the exchange failed before the response head went out: true when a stale copy was
 * served instead (stale-if-error); the request is then done. */
bool cachehook_upstream_failed(struct conn *c);

/* admin.c: handles /cache/purge, /cache/stats and /metrics/cache. True when <req> was one of them
 * (<body>, <status> and <ctype> are then set). */
bool cachehook_admin(struct gw_shared *sh, const struct h1_request *req, struct buf *body,
                     int *status, const char **ctype);
/* admin.c: the value of the "cache" member of /stats. */
void cachehook_stats_json(struct gw_shared *sh, struct buf *out);
/* admin.c, before rendering /metrics: copies the store's counters into their gauges. */
void cachehook_refresh_metrics(struct gw_shared *sh);

#endif
