/* Rules for Redis INFO facts: keyspace hit ratio, evictions, memory headroom, clients, slow
 * commands, PING latency. Pure functions. */
#include "doctor/rules.h"

#include <stdio.h>
#include <string.h>

static void mb(long long bytes, char *out, size_t n)
{
    snprintf(out, n, "%.1f MB", (double)bytes / (1024.0 * 1024.0));
}

/* On a cluster the counters are sums over the nodes read: say so, and over how many. */
static void cluster_sums(const struct redis_facts *r, struct finding *f)
{
    if (r->cluster)
        finding_evidence(f, "summed over the %d of %d cluster nodes read", r->nodes_reached,
                         r->n_nodes);
}

/* Keyspace hit ratio: the seed's numbers — under 10% the cache is useless (every read also pays
 * a miss), under 80% is the alert. Under 100 lookups the ratio means nothing yet. */
/* apigate's own L2: each lookup is one MGET of two keys, the entry and its inv: mark (which
 * exists only after an invalidation), so an L2 hit counts a keyspace hit and a miss, and an L2
 * miss two misses: 200 L2 hits and 200 misses read as 25%. Lookups are half the reads; the L2
 * only sees the gateways' local misses, so the hit ratio users get is gw-cache-hit-ratio's. */
static void rule_l2_ratio(const struct redis_facts *r, struct finding_list *out)
{
    bool exact = r->gateway_l2 && r->gw_l2_hits >= 0 && r->gw_l2_misses >= 0;
    double hits = exact ? r->gw_l2_hits : (double)r->hits;
    double lookups = exact ? r->gw_l2_hits + r->gw_l2_misses : (double)(r->hits + r->misses) / 2;
    if (lookups < RULES_REDIS_MIN_LOOKUPS / 2.0) {
        struct finding *f = finding_add(out, "redis", "redis-hit-ratio", FINDING_INFO,
                                        "apigate L2: too few lookups to judge (%.0f)", lookups);
        finding_source(f, "INFO stats keyspace_hits, keyspace_misses");
        return;
    }
    double ratio = hits / lookups;
    if (ratio > 1)
        ratio = 1;
    enum finding_sev sev = ratio < RULES_REDIS_HIT_WARN ? FINDING_INFO : FINDING_OK;
    struct finding *f =
        finding_add(out, "redis", "redis-hit-ratio", sev,
                    "apigate L2 hit ratio %.1f%% (%.0f lookups)", ratio * 100, lookups);
    if (exact)
        finding_evidence(f, "the gateway's L2 counters: %.0f hits, %.0f misses", r->gw_l2_hits,
                         r->gw_l2_misses);
    finding_evidence(
        f,
        "keyspace_hits %lld, keyspace_misses %lld (%.1f%%): each L2 lookup reads two "
        "keys, the entry and its inv: mark, so the keyspace ratio undercounts",
        r->hits, r->misses,
        r->hits + r->misses > 0 ? 100.0 * (double)r->hits / (double)(r->hits + r->misses) : 0.0);
    finding_evidence(f, "%lld apigate:* keys seen by one SCAN step%s", r->apigate_keys,
                     r->cluster ? " on each primary" : "");
    cluster_sums(r, f);
    finding_source(f, "INFO stats; SCAN 0 MATCH apigate:*%s",
                   exact ? "; the gateway's /stats cache.l2" : "");
    if (sev != FINDING_OK)
        finding_fix(f, "the L2 only sees what each gateway's memory cache missed: a low L2 ratio "
                       "with one gateway, or right after a deploy, is expected; with several, "
                       "check the L2 entries' TTL (they live as long as the route's ttl) and "
                       "redis-evictions. The hit ratio users get is gw-cache-hit-ratio");
}

static void rule_hit_ratio(const struct redis_facts *r, struct finding_list *out)
{
    if (r->apigate_keys > 0 || r->gateway_l2) {
        rule_l2_ratio(r, out);
        return;
    }
    long long lookups = r->hits + r->misses;
    if (lookups < RULES_REDIS_MIN_LOOKUPS) {
        struct finding *f = finding_add(out, "redis", "redis-hit-ratio", FINDING_INFO,
                                        "too few lookups to judge the hit ratio (%lld)", lookups);
        cluster_sums(r, f);
        finding_source(f, "INFO stats keyspace_hits, keyspace_misses");
        return;
    }
    double ratio = (double)r->hits / (double)lookups;
    enum finding_sev sev = ratio < RULES_REDIS_HIT_CRIT   ? FINDING_CRITICAL
                           : ratio < RULES_REDIS_HIT_WARN ? FINDING_WARNING
                                                          : FINDING_OK;
    struct finding *f =
        finding_add(out, "redis", "redis-hit-ratio", sev, "keyspace hit ratio %.1f%%", ratio * 100);
    finding_evidence(f, "keyspace_hits %lld, keyspace_misses %lld", r->hits, r->misses);
    cluster_sums(r, f);
    finding_source(f, "INFO stats");
    if (sev >= FINDING_WARNING) {
        if (r->evicted_keys > 0)
            finding_fix(f, "keys are evicted before they are read again (redis-evictions): give "
                           "the cache memory first");
        finding_fix(f, "check that keys are stable (no timestamps or request ids in keys), that "
                       "TTLs outlive the re-read interval, and that writers populate what readers "
                       "ask for");
        if (!r->gateway_caches)
            finding_fix(f, "or let the gateway cache the responses in front of the application "
                           "(cache: {ttl: 60s, stale_while_revalidate: 30s})");
    }
}

/* Evictions and memory headroom. An evicting cache loses keys before they are read again; at
 * maxmemory with noeviction, writes fail outright. Memory suggestions use the peak, since the
 * data set reached it at least once. */
static void rule_evictions(const struct redis_facts *r, struct finding_list *out)
{
    char used[32], max[32], peak[32], want[32];
    mb(r->used_memory, used, sizeof(used));
    mb(r->maxmemory, max, sizeof(max));
    mb(r->used_memory_peak, peak, sizeof(peak));
    if (r->evicted_keys > 0) {
        /* Twice the peak the data reached: evictions happened because it did not fit. */
        long long target = r->used_memory_peak > r->maxmemory ? r->used_memory_peak : r->maxmemory;
        mb(target * 2, want, sizeof(want));
        struct finding *f = finding_add(out, "redis", "redis-evictions", FINDING_WARNING,
                                        "%lld keys evicted under maxmemory %s (%s)",
                                        r->evicted_keys, max, r->policy);
        finding_evidence(f, "evicted_keys %lld, used_memory %s, peak %s, maxmemory %s",
                         r->evicted_keys, used, peak, max);
        if (r->cluster)
            finding_evidence(f,
                             "evictions summed over the %d cluster nodes read; memory of the "
                             "fullest, %s",
                             r->nodes_reached, r->mem_node);
        finding_source(f, "INFO stats evicted_keys; INFO memory; CONFIG GET maxmemory-policy");
        finding_fix(f,
                    "maxmemory %lldmb (twice the peak) in redis.conf, or shorter TTLs on "
                    "large values",
                    (target * 2 + 1024 * 1024 - 1) / (1024 * 1024));
    }
    if (r->maxmemory <= 0) {
        struct finding *f = finding_add(out, "redis", "redis-memory", FINDING_INFO,
                                        "no maxmemory set (using %s)", used);
        finding_source(f, "INFO memory maxmemory");
        finding_fix(f, "for a cache: maxmemory <size> and maxmemory-policy allkeys-lru, so Redis "
                       "evicts instead of growing until the kernel kills it");
        return;
    }
    double use = (double)r->used_memory / (double)r->maxmemory;
    enum finding_sev sev = use >= RULES_REDIS_MEM_WARN ? FINDING_WARNING : FINDING_OK;
    if (sev == FINDING_WARNING && strcmp(r->policy, "noeviction") == 0)
        sev = FINDING_CRITICAL; // writes start failing with OOM errors
    struct finding *f = finding_add(out, "redis", "redis-memory", sev,
                                    "memory %s of maxmemory %s (%.0f%%)", used, max, use * 100);
    finding_evidence(f, "used_memory %lld, maxmemory %lld, policy %s", r->used_memory, r->maxmemory,
                     r->policy);
    if (r->cluster)
        finding_evidence(f, "the fullest of the %d cluster nodes read: %s", r->nodes_reached,
                         r->mem_node);
    finding_source(f, "INFO memory");
    if (sev >= FINDING_WARNING)
        finding_fix(f,
                    "raise maxmemory (maxmemory %lldmb) or set TTLs; with noeviction, writes "
                    "fail when it is full",
                    (r->used_memory * 2 + 1024 * 1024 - 1) / (1024 * 1024));
}

/* Client connections: a client per request (no pool) exhausts maxclients and adds a connect to
 * every cache lookup; any rejected connection means it already happened. */
static void rule_clients(const struct redis_facts *r, struct finding_list *out)
{
    double use = r->maxclients > 0 ? (double)r->connected_clients / (double)r->maxclients : 0;
    enum finding_sev sev = use >= RULES_REDIS_CLIENTS_WARN || r->rejected_connections > 0
                               ? FINDING_WARNING
                               : FINDING_OK;
    struct finding *f = finding_add(out, "redis", "redis-clients", sev,
                                    "%lld clients connected of maxclients %lld, %lld blocked",
                                    r->connected_clients, r->maxclients, r->blocked_clients);
    finding_evidence(f, "connected_clients %lld, blocked_clients %lld, rejected_connections %lld",
                     r->connected_clients, r->blocked_clients, r->rejected_connections);
    if (r->cluster)
        finding_evidence(f,
                         "clients of the fullest of the %d cluster nodes read, %s; rejected "
                         "connections summed",
                         r->nodes_reached, r->clients_node);
    finding_source(f, "INFO clients; INFO stats rejected_connections");
    if (sev >= FINDING_WARNING)
        finding_fix(f,
                    "reuse connections (one pool per process, not per request) or raise "
                    "maxclients %lld",
                    r->maxclients * 2);
}

/* Redis executes one command at a time: a 10 ms command delays every other client by 10 ms. */
static void rule_slowlog(const struct redis_facts *r, struct finding_list *out)
{
    if (r->n_slow == 0)
        return;
    long long worst = 0;
    for (int i = 0; i < r->n_slow; i++)
        if (r->slow[i].duration_us > worst)
            worst = r->slow[i].duration_us;
    enum finding_sev sev = worst >= RULES_REDIS_SLOW_WARN_US ? FINDING_WARNING : FINDING_INFO;
    struct finding *f = finding_add(out, "redis", "redis-slowlog", sev,
                                    "slowest logged command took %.1f ms", worst / 1000.0);
    for (int i = 0; i < r->n_slow; i++)
        finding_evidence(f, "%8.1f ms  %s", r->slow[i].duration_us / 1000.0, r->slow[i].command);
    finding_source(f, "SLOWLOG GET 5");
    if (sev >= FINDING_WARNING)
        finding_fix(f, "Redis runs one command at a time: replace KEYS with SCAN, split big "
                       "values and big collections (HGETALL/SMEMBERS/LRANGE 0 -1 on large keys)");
}

/* Round trip from this host; on the same network it should be well under a millisecond. */
static void rule_ping(const struct redis_facts *r, struct finding_list *out)
{
    enum finding_sev sev = r->ping_ms >= RULES_REDIS_PING_WARN_MS ? FINDING_WARNING : FINDING_OK;
    struct finding *f =
        finding_add(out, "redis", "redis-latency", sev, "PING round trip %.2f ms", r->ping_ms);
    finding_source(f, "median of 5 PINGs from this host");
    if (sev >= FINDING_WARNING)
        finding_fix(f, "look for slow commands (redis-slowlog), swapping, or a network hop "
                       "between the app and Redis");
}

void rules_redis(const struct redis_facts *r, struct finding_list *out)
{
    if (r->sentinel) { // a Sentinel holds no keys: its primaries, clients and round trip
        rules_redis__sentinel(r, out);
        rule_clients(r, out);
        rule_ping(r, out);
        return;
    }
    if (r->cluster)
        rules_redis__cluster(r, out);
    rule_hit_ratio(r, out);
    rule_evictions(r, out);
    rule_clients(r, out);
    rule_slowlog(r, out);
    rule_ping(r, out);
}
