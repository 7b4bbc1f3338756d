/* Rules for the gateway's /stats counters: errors, latency, cache hit ratio, shedding, pool
 * waits, breakers, connection churn, worker restarts. Pure functions; a counter missing from
 * /stats (-1) skips its rule. */
#include "doctor/rules.h"

#include <stdio.h>

static bool have(double v)
{
    return v >= 0;
}

void rules_gateway(const struct gw_facts *g, struct finding_list *out)
{
    double req = g->requests_total;
    /* 5xx rate: errors users saw, whatever their source (upstream, timeouts, breakers). */
    if (have(req) && have(g->responses_5xx) && req > 0) {
        double rate = g->responses_5xx / req;
        enum finding_sev sev = rate > RULES_GW_5XX_CRIT   ? FINDING_CRITICAL
                               : rate > RULES_GW_5XX_WARN ? FINDING_WARNING
                                                          : FINDING_OK;
        struct finding *f = finding_add(out, "gateway", "gw-5xx-rate", sev,
                                        "5xx rate %.2f%% (%.0f of %.0f requests)", rate * 100,
                                        g->responses_5xx, req);
        finding_source(f, "%s responses_5xx / requests_total", g->where);
        if (sev >= FINDING_WARNING)
            finding_fix(f, "serve stale copies while the upstream fails (cache: {stale_if_error: "
                           "5m}) and open a breaker (breaker: {error_threshold: 50%%, open_for: "
                           "30s}); look at the upstream's own errors");
    }
    /* p95 over all routes: the seed's healthy API answers in tens of ms; 500 ms is felt. */
    if (have(g->latency_p95_ms)) {
        double p = g->latency_p95_ms;
        enum finding_sev sev = p > RULES_GW_P95_CRIT_MS   ? FINDING_CRITICAL
                               : p > RULES_GW_P95_WARN_MS ? FINDING_WARNING
                                                          : FINDING_OK;
        struct finding *f =
            finding_add(out, "gateway", "gw-latency", sev, "p95 latency %.1f ms", p);
        finding_source(f, "%s latency_p95_ms", g->where);
        if (sev >= FINDING_WARNING)
            finding_fix(f, "cache the slow GET routes (cache: {ttl: 30s, "
                           "stale_while_revalidate: 30s}) and check pool waits (gw-pool-wait) and "
                           "the database (pg-slow-statements)");
    }
    /* Hit ratio of cached routes: under 10% the cache adds a lookup and saves almost nothing. */
    if (have(g->cache_hits) && have(g->cache_misses) &&
        g->cache_hits + g->cache_misses >= RULES_GW_MIN_REQUESTS) {
        double r = g->cache_hits / (g->cache_hits + g->cache_misses);
        enum finding_sev sev = r < RULES_GW_HIT_WARN ? FINDING_WARNING : FINDING_OK;
        struct finding *f = finding_add(out, "gateway", "gw-cache-hit-ratio", sev,
                                        "cache hit ratio %.1f%% (%.0f hits, %.0f misses)", r * 100,
                                        g->cache_hits, g->cache_misses);
        finding_source(f, "%s cache_hits, cache_misses", g->where);
        if (sev >= FINDING_WARNING)
            finding_fix(f, "the origin probably sends no-cache/private: set override: true with "
                           "a ttl on the route, drop tracking parameters from the key "
                           "(ignore_query: [utm_*]), and vary only on headers that matter");
    }
    /* Shedding protects the upstream, but each shed request is a 503 for a user. */
    if (have(req) && have(g->shed_total) && req > 0 && g->shed_total > 0) {
        double r = g->shed_total / req;
        enum finding_sev sev = r >= RULES_GW_SHED_WARN ? FINDING_WARNING : FINDING_INFO;
        struct finding *f = finding_add(out, "gateway", "gw-shed", sev,
                                        "%.0f requests shed by concurrency limits (%.2f%%)",
                                        g->shed_total, r * 100);
        finding_source(f, "%s shed_total", g->where);
        finding_fix(f, "raise limit: {concurrency: N} only if the upstream has headroom; "
                       "otherwise cache more or add upstream capacity");
    }
    /* Time spent waiting for an upstream connection is pure queueing added to every request. */
    if (have(g->pool_wait_p95_ms)) {
        enum finding_sev sev =
            g->pool_wait_p95_ms > RULES_GW_POOL_WAIT_WARN_MS ? FINDING_WARNING : FINDING_OK;
        struct finding *f =
            finding_add(out, "gateway", "gw-pool-wait", sev,
                        "p95 wait for an upstream connection %.1f ms", g->pool_wait_p95_ms);
        finding_source(f, "%s pool_wait_p95_ms", g->where);
        if (sev >= FINDING_WARNING)
            finding_fix(f, "upstream pool too small for the concurrency: raise pool: "
                           "{max_connections: N} while the upstream keeps up");
    }
    if (have(g->breakers_open) && g->breakers_open > 0) {
        struct finding *f = finding_add(out, "gateway", "gw-breakers-open", FINDING_WARNING,
                                        "%.0f circuit breaker(s) open", g->breakers_open);
        finding_source(f, "%s breakers_open", g->where);
        finding_fix(f, "an upstream is failing: requests get stale copies or fallbacks; check "
                       "its health endpoint and errors");
    }
    /* Connects per request: with keep-alive pools it tends to 0; near 1 every request opens a
     * connection (handshake latency, a port in TIME_WAIT: see host-ephemeral-ports). */
    if (have(req) && have(g->upstream_connects_total) && req >= RULES_GW_MIN_REQUESTS) {
        double c = g->upstream_connects_total / req;
        enum finding_sev sev = c > RULES_GW_CHURN_WARN ? FINDING_WARNING : FINDING_OK;
        struct finding *f = finding_add(out, "gateway", "gw-connection-churn", sev,
                                        "%.2f upstream connects per request", c);
        finding_evidence(f, "upstream_connects_total %.0f, requests_total %.0f",
                         g->upstream_connects_total, req);
        finding_source(f, "%s", g->where);
        if (sev >= FINDING_WARNING)
            finding_fix(f, "connections are not reused (each costs a port in TIME_WAIT): keep "
                           "pool: {max_idle: 32, idle_timeout: 60s} and check the upstream keeps "
                           "connections alive");
    }
    if (have(g->worker_restarts) && g->worker_restarts > 0) {
        struct finding *f = finding_add(out, "gateway", "gw-worker-restarts", FINDING_WARNING,
                                        "%.0f worker restart(s)", g->worker_restarts);
        finding_source(f, "%s worker_restarts", g->where);
        finding_fix(f, "see the gateway's error log for crashes or watchdog kills "
                       "(workers: {worker_timeout: 30s})");
    }
}
