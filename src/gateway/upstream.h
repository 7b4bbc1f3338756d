/* Upstreams at run time, shared by the loop threads of one worker: each configured upstream with
 * its servers, their latest resolved addresses (net/resolve.h thread), their health (health.c
 * thread), their TLS client context and session cache, and the ids of their metrics. Per-thread
 * connection pools (upool.h) point here; nothing here is touched per request except atomics. */
#ifndef AG_GATEWAY_UPSTREAM_H
#define AG_GATEWAY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct gw_config;
struct metrics;
struct upstream;
struct upstream_set;

/* Builds the run-time upstreams of <cfg> (which must outlive the set): TLS contexts (CA file read
 * here: errors are reported now, not per request), metric families and series in <m>, and the
 * first name resolution (blocking; a name that does not resolve yet is retried in the background
 * and its server is unusable until then). <nthreads>: loop threads that will create pools.
 * Returns NULL with a message for people in <err>. */
struct upstream_set *upstream_set_create(const struct gw_config *cfg, struct metrics *m,
                                         size_t nthreads, char *err, size_t errlen);
/* Starts the background threads: the resolver (when a server has a hostname) and the health
 * checker (when an upstream has health: enabled). Returns 0 or -1 with <err>. */
int upstream_set_start(struct upstream_set *s, char *err, size_t errlen);
/* Stops the threads and frees everything. Every pool (upool_destroy) must be gone first. */
void upstream_set_destroy(struct upstream_set *s);

size_t upstream_set_count(const struct upstream_set *s);
/* Upstream <i> in config order (the index of gw_route.upstream_index), NULL when out of range. */
struct upstream *upstream_set_at(struct upstream_set *s, size_t i);
/* Every upstream used by a route has a healthy server (the /readyz condition). When not, writes
 * the first upstream without one into <why> (may be NULL). */
bool upstream_set_ready(const struct upstream_set *s, char *why, size_t whylen);
/* Appends a JSON array describing every upstream and server (address, healthy, tls, last check
 * result) for the admin endpoint /upstreams. */
void upstream_set_status_json(const struct upstream_set *s, struct buf *out);

const char *upstream_name(const struct upstream *u);
size_t upstream_server_count(const struct upstream *u);
/* Server <i>'s name as configured ("127.0.0.1:9000", "https://api.example.com"): the label value. */
const char *upstream_server_name(const struct upstream *u, size_t i);
/* At least one server may take traffic (healthy, address known). */
bool upstream_has_healthy(const struct upstream *u);
bool upstream_server_healthy(const struct upstream *u, size_t i);

#endif
