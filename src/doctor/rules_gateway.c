/* Rules for the gateway's /stats counters: errors, latency, cache hit ratio (and what limits it),
 * shedding, pool waits, breakers, upstream connection churn, worker crashes and recycles. Judged
 * over the probe's window (the difference of two samples) when it has one: findings are about
 * now. Pure functions; a counter missing from /stats (-1) skips its rule. */
#include "doctor/rules.h"

#include <stdio.h>
#include <string.h>

static bool have(double v)
{
    return v >= 0;
}

/* "in the last 3.0 s" or "since start", for titles. */
static const char *span(const struct gw_facts *g, char *buf, size_t n)
{
    if (g->window_s > 0)
        snprintf(buf, n, "in the last %.1f s%s", g->window_s,
                 g->reset ? " (since a new worker started in it)" : "");
    else
        snprintf(buf, n, "since start");
    return buf;
}

static double pct(double part, double whole)
{
    return whole > 0 ? 100.0 * part / whole : 0;
}

/* 5xx rate: errors users saw, whatever their source (upstream, timeouts, breakers). */
static void rule_5xx(const struct gw_facts *g, const char *when, struct finding_list *out)
{
    double req = g->requests_total;
    if (!have(req) || !have(g->responses_5xx) || req < RULES_GW_MIN_REQUESTS)
        return;
    double rate = g->responses_5xx / req;
    enum finding_sev sev = rate > RULES_GW_5XX_CRIT   ? FINDING_CRITICAL
                           : rate > RULES_GW_5XX_WARN ? FINDING_WARNING
                                                      : FINDING_OK;
    struct finding *f = finding_add(out, "gateway", "gw-5xx-rate", sev,
                                    "5xx rate %.2f%% %s (%.0f of %.0f requests)", rate * 100, when,
                                    g->responses_5xx, req);
    if (g->window_s > 0 && have(g->life_requests) && g->life_requests > 0 && have(g->life_5xx))
        finding_evidence(f, "since start: %.2f%% (%.0f of %.0f)",
                         pct(g->life_5xx, g->life_requests), g->life_5xx, g->life_requests);
    finding_source(f, "%s responses_5xx / requests_total%s", g->where,
                   g->window_s > 0 ? ", difference of two samples" : "");
    if (sev >= FINDING_WARNING)
        finding_fix(f, "serve stale copies while the upstream fails (cache: {stale_if_error: "
                       "5m}) and open a breaker (breaker: {error_threshold: 50%%, open_for: "
                       "30s}); look at the upstream's own errors");
}

static void rule_latency(const struct gw_facts *g, const char *when, struct finding_list *out)
{
    if (!have(g->latency_p95_ms))
        return;
    double p = g->latency_p95_ms;
    enum finding_sev sev = p > RULES_GW_P95_CRIT_MS   ? FINDING_CRITICAL
                           : p > RULES_GW_P95_WARN_MS ? FINDING_WARNING
                                                      : FINDING_OK;
    struct finding *f = finding_add(out, "gateway", "gw-latency", sev, "p95 latency %.1f ms %s", p,
                                    g->latency_windowed ? when : "since start");
    finding_source(f, "%s %s", g->where,
                   g->latency_windowed ? "latency_window (histogram difference of two samples)"
                                       : "latency_p95_ms");
    if (sev >= FINDING_WARNING)
        finding_fix(f, "cache the slow GET routes (cache: {ttl: 30s, "
                       "stale_while_revalidate: 30s}) and check pool waits (gw-pool-wait) and "
                       "the database (pg-slow-statements)");
}

/* Hit ratio of cached routes against the alert (80%) and the target (90%), with what limits it:
 * the evidence the counters give, largest first. */
static void rule_hit_ratio(const struct gw_facts *g, const char *when, struct finding_list *out)
{
    double hits = g->cache_hits, misses = g->cache_misses;
    if (!have(hits) || !have(misses) || hits + misses < RULES_GW_MIN_REQUESTS)
        return;
    double lookups = hits + misses;
    double r = hits / lookups;
    enum finding_sev sev = r < RULES_GW_HIT_WARN     ? FINDING_WARNING
                           : r < RULES_GW_HIT_TARGET ? FINDING_INFO
                                                     : FINDING_OK;
    struct finding *f =
        finding_add(out, "gateway", "gw-cache-hit-ratio", sev,
                    "cache hit ratio %.1f%% %s (%.0f hits, %.0f misses)%s", r * 100, when, hits,
                    misses, sev == FINDING_INFO ? ": below the 90% target" : "");
    if (have(g->cache_stale) && hits > 0)
        finding_evidence(f,
                         "%.0f of the hits were STALE (%.1f%%: served while revalidating or "
                         "while the origin failed)",
                         g->cache_stale, pct(g->cache_stale, hits));
    if (have(g->cache_expired))
        finding_evidence(f, "%.0f of the misses were expired entries (%.1f%%)", g->cache_expired,
                         pct(g->cache_expired, misses));
    if (have(g->cache_not_stored))
        finding_evidence(f,
                         "%.0f origin responses were not stored (no-store, private, "
                         "Set-Cookie or too big)",
                         g->cache_not_stored);
    if (have(g->cache_bypass))
        finding_evidence(f, "%.0f requests bypassed the cache", g->cache_bypass);
    double uncached = -1;
    if (have(g->requests_total)) {
        uncached = g->requests_total - lookups - (have(g->cache_bypass) ? g->cache_bypass : 0);
        if (uncached < 0)
            uncached = 0;
        finding_evidence(f, "%.0f of %.0f requests (%.1f%%) went to routes without a cache",
                         uncached, g->requests_total, pct(uncached, g->requests_total));
    }
    if (g->l2_enabled && have(g->l2_hits) && have(g->l2_misses))
        finding_evidence(f, "Redis L2: %.0f hits, %.0f misses (lookups after a local miss)",
                         g->l2_hits, g->l2_misses);
    finding_source(f, "%s cache (hits = fresh + stale, misses = miss + expired)", g->where);
    if (sev == FINDING_OK)
        return;
    /* What limits it, from the evidence above. */
    bool said = false;
    if (have(g->cache_not_stored) && g->cache_not_stored >= 0.2 * misses) {
        finding_fix(f,
                    "%.0f%% of the misses were not stored: the origin sends no-store/private "
                    "(or Set-Cookie); if the data is the same for everyone, override: true "
                    "with a ttl on the route",
                    pct(g->cache_not_stored, misses));
        said = true;
    }
    if (have(g->cache_expired) && g->cache_expired >= 0.2 * misses) {
        finding_fix(f,
                    "%.0f%% of the misses were expired entries: the TTL is shorter than the "
                    "re-read interval; a longer ttl, or stale_while_revalidate: 30s to refresh "
                    "in the background",
                    pct(g->cache_expired, misses));
        said = true;
    }
    if (have(g->cache_stores) && have(g->cache_expired) &&
        misses - g->cache_expired >= 0.5 * misses && g->cache_stores >= 0.5 * misses) {
        finding_fix(f, "most misses are first requests for a key that was stored and rarely read "
                       "again: keys vary too much (per-user keys from vary: [Authorization] or "
                       "Cookie, tracking parameters: ignore_query: [utm_*])");
        said = true;
    }
    if (uncached > 0 && have(g->requests_total) && uncached >= 0.2 * g->requests_total)
        finding_fix(f,
                    "%.0f%% of all requests go to routes without a cache: cache the GET routes "
                    "whose answers are shared (cache: {ttl: 30s})",
                    pct(uncached, g->requests_total));
    if (have(g->cache_stale) && hits > 0 && g->cache_stale >= 0.2 * hits)
        finding_fix(f,
                    "%.0f%% of the hits are STALE: entries outlive their ttl while being "
                    "refreshed; a longer ttl if the data allows it",
                    pct(g->cache_stale, hits));
    if (!said)
        finding_fix(f, "check the route's cache: the origin's Cache-Control (override: true with "
                       "a ttl), the key (ignore_query, vary only on headers that matter) and the "
                       "ttl against how often each key is read");
}

/* The Redis L2 as the gateway sees it: every node connected, every cluster slot known, no errors
 * in the window. A lost node costs no request (its lookups go to the origin), only the L2's use. */
static void rule_l2(const struct gw_facts *g, const char *when, struct finding_list *out)
{
    if (!g->l2_enabled || g->l2_mode[0] == '\0')
        return;
    bool cluster = strcmp(g->l2_mode, "cluster") == 0;
    double known = g->l2_nodes_known, conn = g->l2_nodes_connected;
    /* Only primaries serve lookups: a cluster node without slots (a primary replaced by its
     * replica after a failover, a seed that is a replica) or a sentinel that is down, and the
     * reconnect errors it keeps counting, cost the L2 nothing. */
    bool primary_down = false, other_down = false;
    double other_errors = 0;
    for (int i = 0; i < g->n_l2_nodes; i++) {
        const struct gw_l2_node *nd = &g->l2_nodes[i];
        bool primary = strcmp(nd->role, "primary") == 0;
        if (!nd->connected && primary)
            primary_down = true;
        else if (!nd->connected)
            other_down = true;
        if (!primary && have(nd->errors))
            other_errors += nd->errors;
    }
    if (g->n_l2_nodes == 0) // no node list: any node down counts
        primary_down = have(known) && have(conn) && conn < known;
    bool slots = cluster && have(g->l2_slots_covered) && g->l2_slots_covered < 16384;
    bool errors = have(g->l2_errors) && g->l2_errors - other_errors > 0;
    bool failover = have(g->l2_failovers) && g->l2_failovers > 0;
    enum finding_sev sev = primary_down || slots || errors ? FINDING_WARNING
                           : failover || other_down        ? FINDING_INFO
                                                           : FINDING_OK;
    char what[160];
    int n = snprintf(what, sizeof(what), "%.0f of %.0f nodes connected", have(conn) ? conn : 0,
                     have(known) ? known : 0);
    if (cluster && have(g->l2_slots_covered))
        snprintf(what + n, sizeof(what) - (size_t)n, ", %.0f of 16384 slots covered",
                 g->l2_slots_covered);
    struct finding *f =
        finding_add(out, "gateway", "gw-l2", sev, "Redis L2 (%s): %s, %.0f errors %s", g->l2_mode,
                    what, have(g->l2_errors) ? g->l2_errors : 0, when);
    for (int i = 0; i < g->n_l2_nodes; i++) {
        const struct gw_l2_node *nd = &g->l2_nodes[i];
        char sl[48] = "";
        if (cluster && strcmp(nd->role, "primary") != 0)
            snprintf(sl, sizeof(sl), ", serves no slot");
        else if (cluster)
            snprintf(sl, sizeof(sl), ", %.0f slots", have(nd->slots) ? nd->slots : 0);
        finding_evidence(f, "%s %s: %s%s, %.0f errors", nd->role, nd->addr,
                         nd->connected ? "connected" : "NOT connected", sl,
                         have(nd->errors) ? nd->errors : 0);
    }
    if (failover)
        finding_evidence(f,
                         "%.0f failover(s) %s: the primary of some slots changed and the L2 "
                         "follows the new one",
                         g->l2_failovers, when);
    finding_source(f, "%s cache.l2 (mode, nodes, slots_covered, errors, failovers)", g->where);
    if (sev < FINDING_WARNING) {
        if (other_down)
            finding_fix(f, "a node that serves nothing is down (a primary replaced by its replica, "
                           "a seed): restart it to give the new primary a replica again, or "
                           "forget it in the cluster (CLUSTER FORGET) and in cache.redis");
        return;
    }
    finding_fix(f, "lookups on a lost node's keys count as L2 errors and go to the origin: no "
                   "request fails, the L2 just does nothing for them; restart the node or let its "
                   "replica take over (doctor --redis SEED shows the cluster's side)");
    if (slots)
        finding_fix(f, "slots no node serves: a primary failed without a replica, or the cluster "
                       "is being resharded (redis-cli --cluster check SEED)");
}

/* Shedding protects the upstream, but each shed request is a 503 for a user. */
static void rule_shed(const struct gw_facts *g, const char *when, struct finding_list *out)
{
    double req = g->requests_total;
    if (!have(req) || !have(g->shed_total) || req <= 0 || g->shed_total <= 0)
        return;
    double r = g->shed_total / req;
    enum finding_sev sev = r >= RULES_GW_SHED_WARN ? FINDING_WARNING : FINDING_INFO;
    struct finding *f = finding_add(out, "gateway", "gw-shed", sev,
                                    "%.0f requests shed by concurrency limits %s (%.2f%%)",
                                    g->shed_total, when, r * 100);
    finding_source(f, "%s shed_total", g->where);
    finding_fix(f, "raise limit: {concurrency: N} only if the upstream has headroom; "
                   "otherwise cache more or add upstream capacity");
}

/* Upstream connects per upstream request: with keep-alive pools it tends to 0; near 1 every
 * request to the origin opens a connection (handshake latency, a port in TIME_WAIT: see
 * host-ephemeral-ports). Upstream requests are connects + reuses: cache hits never reach the
 * origin and would hide the churn. */
static void rule_churn(const struct gw_facts *g, const char *when, struct finding_list *out)
{
    double c = g->upstream_connects_total;
    if (!have(c))
        return;
    double up = have(g->upstream_reuses) ? c + g->upstream_reuses : -1;
    if (up < RULES_GW_MIN_REQUESTS)
        return;
    double ratio = c / up;
    enum finding_sev sev = ratio > RULES_GW_CHURN_WARN ? FINDING_WARNING : FINDING_OK;
    struct finding *f = finding_add(out, "gateway", "gw-connection-churn", sev,
                                    "%.2f upstream connects per upstream request %s", ratio, when);
    finding_evidence(f, "%.0f connects, %.0f requests on reused connections", c,
                     g->upstream_reuses);
    if (have(g->closed_not_reusable) || have(g->closed_upstream_closed))
        finding_evidence(f,
                         "connections closed: %.0f after a response the origin marked "
                         "Connection: close (not_reusable), %.0f idle ones the origin closed "
                         "(upstream_closed)",
                         have(g->closed_not_reusable) ? g->closed_not_reusable : 0,
                         have(g->closed_upstream_closed) ? g->closed_upstream_closed : 0);
    finding_source(f, "%s pool.connects, upstreams[].reuses; /metrics apigate_pool_closed_total",
                   g->where);
    if (sev < FINDING_WARNING)
        return;
    bool closes = have(g->closed_not_reusable) && g->closed_not_reusable >= 0.5 * c;
    bool idle = have(g->closed_upstream_closed) && g->closed_upstream_closed >= 0.5 * c;
    if (closes)
        finding_fix(f, "the origin closes the connection after each response (Connection: close, "
                       "as gunicorn's sync workers do): the pool cannot reuse it; run the origin "
                       "with keep-alive (gunicorn --worker-class gthread --keep-alive 5, or "
                       "behind a keep-alive server) — see docs/upstreams.md, connection churn");
    if (idle)
        finding_fix(f, "the origin closes idle connections before the pool reuses them: keep "
                       "pool: {idle_timeout} below its keep-alive timeout (nginx 75 s, Node.js "
                       "5 s, gunicorn 2 s) — see docs/upstreams.md");
    if (!closes && !idle)
        finding_fix(f, "connections are not reused (each costs a port in TIME_WAIT): check "
                       "pool: {max_idle: 32, idle_timeout: 60s}, keepalive_requests: 0, and that "
                       "the origin keeps connections alive (docs/upstreams.md)");
}

/* Crashes (or hangs killed by the watchdog) against planned recycles (workers.max_requests):
 * only crashes are a problem, and only recent ones are news. */
static void rule_workers(const struct gw_facts *g, const char *when, struct finding_list *out)
{
    if (!have(g->worker_crashes)) { // an older gateway: restarts only
        if (have(g->worker_restarts) && g->worker_restarts > 0) {
            struct finding *f = finding_add(out, "gateway", "gw-worker-restarts", FINDING_WARNING,
                                            "%.0f worker restart(s) %s", g->worker_restarts, when);
            finding_source(f, "%s worker_restarts (crashes and max_requests recycles together)",
                           g->where);
            finding_fix(f, "see the gateway's error log for crashes or watchdog kills "
                           "(workers: {worker_timeout: 30s})");
        }
        return;
    }
    if (g->worker_crashes > 0) {
        struct finding *f = finding_add(out, "gateway", "gw-worker-restarts", FINDING_WARNING,
                                        "%.0f worker crash(es) %s", g->worker_crashes, when);
        if (have(g->life_crashes))
            finding_evidence(f, "since start: %.0f crash(es), %.0f planned recycle(s)",
                             g->life_crashes, have(g->life_recycles) ? g->life_recycles : 0);
        finding_source(f, "%s worker_crashes", g->where);
        finding_fix(f, "see the gateway's error log for crashes or watchdog kills "
                       "(workers: {worker_timeout: 30s})");
    } else if (g->window_s > 0 && have(g->life_crashes) && g->life_crashes > 0) {
        struct finding *f =
            finding_add(out, "gateway", "gw-worker-restarts", FINDING_INFO,
                        "%.0f worker crash(es) since start, none %s", g->life_crashes, when);
        finding_source(f, "%s worker_crashes", g->where);
        finding_fix(f, "read the gateway's error log around them");
    }
    double rec = have(g->worker_recycles) ? g->worker_recycles : 0;
    if (rec > 0) {
        struct finding *f =
            finding_add(out, "gateway", "gw-worker-recycles", FINDING_INFO,
                        "%.0f planned worker recycle(s) %s (workers.max_requests)", rec, when);
        finding_source(f, "%s worker_recycles", g->where);
    }
}

void rules_gateway(const struct gw_facts *g, struct finding_list *out)
{
    char when[96];
    span(g, when, sizeof(when));
    double req = g->requests_total;
    if (g->window_s > 0 && have(req) && req < RULES_GW_MIN_REQUESTS) {
        struct finding *f = finding_add(out, "gateway", "gw-traffic", FINDING_INFO,
                                        "%.0f requests %s: too few to judge rates", req, when);
        if (have(g->life_requests) && have(g->life_5xx) && g->life_requests > 0)
            finding_evidence(f, "since start: %.0f requests, %.2f%% 5xx", g->life_requests,
                             pct(g->life_5xx, g->life_requests));
        finding_source(f, "%s, two samples", g->where);
        finding_fix(f, "judge a busier moment, or a longer --window");
    }
    rule_5xx(g, when, out);
    rule_latency(g, when, out);
    rule_hit_ratio(g, when, out);
    rule_l2(g, when, out);
    rule_shed(g, when, out);
    /* Time spent waiting for an upstream connection is pure queueing added to every request. */
    if (have(g->pool_wait_p95_ms)) {
        enum finding_sev sev =
            g->pool_wait_p95_ms > RULES_GW_POOL_WAIT_WARN_MS ? FINDING_WARNING : FINDING_OK;
        struct finding *f = finding_add(out, "gateway", "gw-pool-wait", sev,
                                        "p95 wait for an upstream connection %.1f ms since start",
                                        g->pool_wait_p95_ms);
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
    rule_churn(g, when, out);
    rule_workers(g, when, out);
}
