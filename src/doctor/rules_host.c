/* Rules for host facts (/proc) and for the target probe's samples: ephemeral ports per
 * destination, TIME_WAIT, file descriptors, listen queue overflows, somaxconn, CPUs vs threads,
 * and the latency breakdown of sample requests. Pure functions. */
#include "doctor/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

/* Ports per destination: every connection to one ip:port needs its own local port, so the busiest
 * destination is what exhausts the range first (connect() then fails with EADDRNOTAVAIL). Sockets
 * in TIME_WAIT count: they hold their port for 60 s after the close, which is why connection churn
 * and not concurrency is what usually exhausts it. */
static void rule_ports(const struct host_facts *h, struct finding_list *out)
{
    int range = h->port_hi - h->port_lo + 1;
    if (range <= 0)
        return;
    int top = h->n_dests > 0 ? h->dests[0].total : 0;
    double use = (double)top / range;
    enum finding_sev sev = use >= RULES_HOST_PORTS_CRIT   ? FINDING_CRITICAL
                           : use >= RULES_HOST_PORTS_WARN ? FINDING_WARNING
                                                          : FINDING_OK;
    struct finding *f;
    if (h->n_dests > 0)
        f = finding_add(out, "host", "host-ephemeral-ports", sev,
                        "%d sockets to %s use %.1f%% of the %d ephemeral ports", top,
                        h->dests[0].addr, use * 100, range);
    else
        f = finding_add(out, "host", "host-ephemeral-ports", sev,
                        "no outgoing connections (%d ephemeral ports)", range);
    finding_evidence(f, "ip_local_port_range %d-%d; %d TCP sockets, %d in TIME_WAIT", h->port_lo,
                     h->port_hi, h->sockets, h->time_wait);
    for (int i = 0; i < h->n_dests; i++)
        finding_evidence(f, "%6d sockets (%d TIME_WAIT) to %s", h->dests[i].total,
                         h->dests[i].time_wait, h->dests[i].addr);
    finding_source(f, "/proc/net/tcp, /proc/net/tcp6, /proc/sys/net/ipv4/ip_local_port_range");
    if (sev >= FINDING_WARNING) {
        finding_fix(f,
                    "reuse connections to %s (keep-alive pools; the gateway's upstream pool "
                    "does this) instead of one connection per request",
                    h->dests[0].addr);
        finding_fix(f, "behind SNAT each NAT IP gives one port range per destination: add NAT "
                       "IPs, or widen net.ipv4.ip_local_port_range = 1024 65535");
    }
}

/* Every socket is a file descriptor: the system-wide table and the per-process limit cap how many
 * connections a server can hold ("Too many open files"). */
static void rule_fds(const struct host_facts *h, struct finding_list *out)
{
    if (h->fd_max > 0) {
        double use = (double)h->fd_allocated / (double)h->fd_max;
        enum finding_sev sev = use >= RULES_HOST_FD_WARN ? FINDING_WARNING : FINDING_OK;
        struct finding *f =
            finding_add(out, "host", "host-file-descriptors", sev,
                        "%lld file handles open of fs.file-max %lld", h->fd_allocated, h->fd_max);
        finding_source(f, "/proc/sys/fs/file-nr");
        if (sev >= FINDING_WARNING)
            finding_fix(f, "sysctl fs.file-max=%lld", h->fd_max * 2);
    }
    if (h->nofile_soft > 0 && h->nofile_soft < RULES_HOST_NOFILE_MIN) {
        struct finding *f = finding_add(out, "host", "host-nofile", FINDING_WARNING,
                                        "open files limit (ulimit -n) is %lld", h->nofile_soft);
        finding_evidence(f, "each client and upstream connection takes one descriptor");
        finding_source(f, "getrlimit(RLIMIT_NOFILE)");
        finding_fix(f, "LimitNOFILE=65536 in the systemd unit, or ulimit -n 65536 before "
                       "starting the server");
    }
}

/* A full accept queue drops SYNs or completed handshakes: clients see connect timeouts and
 * retransmits (1 s, 3 s) although the server looks idle. */
static void rule_listen(const struct host_facts *h, struct finding_list *out)
{
    if (h->listen_overflows >= 0) {
        enum finding_sev sev = h->listen_overflows > 0 ? FINDING_WARNING : FINDING_OK;
        struct finding *f =
            finding_add(out, "host", "host-listen-overflows", sev,
                        "%lld listen queue overflows since boot", h->listen_overflows);
        finding_evidence(f, "ListenOverflows %lld, ListenDrops %lld, somaxconn %d",
                         h->listen_overflows, h->listen_drops, h->somaxconn);
        finding_source(f, "/proc/net/netstat TcpExt");
        if (sev >= FINDING_WARNING)
            finding_fix(f,
                        "the accept queue filled: the server accepts too slowly (blocked "
                        "workers) or its backlog is small: sysctl net.core.somaxconn=%d and a "
                        "matching listen backlog",
                        h->somaxconn < 4096 ? 4096 : h->somaxconn * 2);
    }
    if (h->somaxconn > 0 && h->somaxconn < RULES_HOST_SOMAXCONN_MIN) {
        struct finding *f = finding_add(out, "host", "host-somaxconn", FINDING_WARNING,
                                        "net.core.somaxconn is %d", h->somaxconn);
        finding_source(f, "/proc/sys/net/core/somaxconn");
        finding_fix(f, "sysctl net.core.somaxconn=4096");
    }
}

/* One event loop per CPU is the gateway's model: fewer leaves cores idle, many more adds context
 * switches without adding throughput. */
static void rule_cpus(const struct host_facts *h, struct finding_list *out)
{
    if (h->cpus <= 0)
        return;
    if (h->gateway_threads <= 0) {
        struct finding *f = finding_add(out, "host", "host-cpus", FINDING_OK, "%d CPUs", h->cpus);
        finding_source(f, "sched_getaffinity");
        return;
    }
    enum finding_sev sev = h->gateway_threads > 2 * h->cpus || h->gateway_threads < h->cpus
                               ? FINDING_INFO
                               : FINDING_OK;
    struct finding *f =
        finding_add(out, "host", "host-cpus", sev, "gateway runs %d loop threads on %d CPUs",
                    h->gateway_threads, h->cpus);
    finding_source(f, "sched_getaffinity; gateway /stats threads");
    if (sev != FINDING_OK)
        finding_fix(f, "workers: {threads: %d} (one event loop per CPU)", h->cpus);
}

void rules_host_db_port(struct host_facts *h, int port, const char *service)
{
    static const struct host_db_port known[] = {{5432, "PostgreSQL"}, {6432, "PgBouncer"},
                                                {3306, "MySQL"},      {6379, "Redis"},
                                                {27017, "MongoDB"},   {11211, "memcached"}};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        bool have = false;
        for (int k = 0; k < h->n_db_ports && !have; k++)
            have = h->db_ports[k].port == known[i].port;
        if (!have && h->n_db_ports < 16)
            h->db_ports[h->n_db_ports++] = known[i];
    }
    if (port <= 0 || port > 65535)
        return;
    for (int k = 0; k < h->n_db_ports; k++)
        if (h->db_ports[k].port == port)
            return;
    if (h->n_db_ports < 16) {
        struct host_db_port *p = &h->db_ports[h->n_db_ports++];
        p->port = port;
        snprintf(p->service, sizeof(p->service), "%s", service);
    }
}

/* Connection churn toward a database: an application that opens a connection per request (no
 * pool) leaves one TIME_WAIT socket per request to the database's port, pays a connection setup
 * (for PostgreSQL a process fork and authentication) on every request, and drains the ephemeral
 * ports. */
static void rule_db_churn(const struct host_facts *h, struct finding_list *out)
{
    for (int i = 0; i < h->n_db_dests; i++) {
        const struct host_dest *d = &h->db_dests[i];
        enum finding_sev sev = d->time_wait >= RULES_HOST_DB_TIME_WAIT_CRIT   ? FINDING_CRITICAL
                               : d->time_wait >= RULES_HOST_DB_TIME_WAIT_WARN ? FINDING_WARNING
                                                                              : FINDING_OK;
        struct finding *f =
            sev >= FINDING_WARNING
                ? finding_add(out, "host", "host-db-connection-churn", sev,
                              "%d TIME_WAIT sockets to %s at %s: a new connection per request",
                              d->time_wait, d->service, d->addr)
                : finding_add(out, "host", "host-db-connection-churn", sev,
                              "%d sockets to %s at %s, %d in TIME_WAIT", d->total, d->service,
                              d->addr, d->time_wait);
        finding_evidence(f,
                         "%d sockets from this host to %s, %d of them closed in the last "
                         "minute and waiting out TIME_WAIT (the side that closes first keeps "
                         "it for 60 s)",
                         d->total, d->addr, d->time_wait);
        finding_source(f, "/proc/net/tcp, /proc/net/tcp6 (state 06 = TIME_WAIT)");
        if (sev < FINDING_WARNING)
            continue;
        if (strcmp(d->service, "PostgreSQL") == 0 || strcmp(d->service, "MySQL") == 0)
            finding_fix(f, "keep connections open in a pool inside each process (SQLAlchemy "
                           "create_engine(pool_size=5, max_overflow=10), a pooled DataSource) "
                           "instead of connect/close per request; with many processes, "
                           "PgBouncer in transaction mode next to them");
        else
            finding_fix(f,
                        "keep connections to %s open and reuse them (one client or pool per "
                        "process, created at start, not per request)",
                        d->addr);
    }
}

void rules_host(const struct host_facts *h, struct finding_list *out)
{
    rule_ports(h, out);
    rule_db_churn(h, out);
    rule_fds(h, out);
    rule_listen(h, out);
    rule_cpus(h, out);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double rules_percentile(const double *v, int n, double p)
{
    if (n <= 0)
        return 0;
    double *c = xmalloc((size_t)n * sizeof(*c));
    memcpy(c, v, (size_t)n * sizeof(*c));
    qsort(c, (size_t)n, sizeof(*c), cmp_double);
    /* Nearest rank: the smallest value with at least p% of the values at or below it. */
    int rank = (int)(p / 100.0 * n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    double r = c[rank - 1];
    free(c);
    return r;
}

/* A target that answers cache statistics (an application's /metrics/cache, or apigate's): its
 * hit ratio against the same alert (80%) and target (90%) as the gateway's. */
static void rule_target_cache(const struct target_facts *t, struct finding_list *out)
{
    double r = t->cache_rate;
    double n = -1;
    if (t->cache_hits >= 0 && t->cache_misses >= 0) {
        n = t->cache_hits + t->cache_misses;
        if (n < RULES_GW_MIN_REQUESTS) {
            struct finding *f = finding_add(out, "target", "target-cache-hit-ratio", FINDING_INFO,
                                            "%s: too few cache lookups to judge (%.0f)", t->url, n);
            finding_source(f, "GET %s: hits, misses", t->url);
            return;
        }
        r = t->cache_hits / n;
    }
    if (r < 0)
        return;
    enum finding_sev sev = r < RULES_GW_HIT_WARN     ? FINDING_WARNING
                           : r < RULES_GW_HIT_TARGET ? FINDING_INFO
                                                     : FINDING_OK;
    struct finding *f =
        finding_add(out, "target", "target-cache-hit-ratio", sev, "%s: cache hit ratio %.1f%%%s",
                    t->url, r * 100, sev == FINDING_INFO ? ", below the 90% target" : "");
    if (n >= 0)
        finding_evidence(f, "hits %.0f, misses %.0f (since the endpoint's counters started)",
                         t->cache_hits, t->cache_misses);
    finding_source(f, "GET %s: %s", t->url, n >= 0 ? "hits, misses" : "hitRate");
    if (sev >= FINDING_WARNING)
        finding_fix(f, "below the 80%% alert: check what the cache keys vary on (per-user or "
                       "per-request parts), the TTLs against how often each key is read, and "
                       "whether responses are stored at all; doctor --gateway gives the breakdown "
                       "for an apigate cache");
}

/* Sample requests: the p95 of a handful of sequential requests is what one user feels; a failed
 * sample is reported with its reason, all failed is critical. */
void rules_target(const struct target_facts *t, struct finding_list *out)
{
    int ok = 0;
    double *tot = xmalloc((size_t)(t->n > 0 ? t->n : 1) * sizeof(double));
    double *ttfb = xmalloc((size_t)(t->n > 0 ? t->n : 1) * sizeof(double));
    double *conn = xmalloc((size_t)(t->n > 0 ? t->n : 1) * sizeof(double));
    const char *err = NULL;
    for (int i = 0; i < t->n; i++) {
        const struct target_sample *s = &t->samples[i];
        if (!s->ok) {
            err = s->error;
            continue;
        }
        tot[ok] = s->total_ms;
        ttfb[ok] = s->ttfb_ms;
        conn[ok] = s->connect_ms;
        ok++;
    }
    if (ok == 0) {
        struct finding *f = finding_add(out, "target", "target-unreachable", FINDING_CRITICAL,
                                        "%s: all %d requests failed", t->url, t->n);
        finding_evidence(f, "%s", err ? err : "no sample");
        finding_source(f, "GET %s", t->url);
    } else {
        double p50 = rules_percentile(tot, ok, 50), p95 = rules_percentile(tot, ok, 95);
        enum finding_sev sev =
            p95 > RULES_TARGET_P95_WARN_MS || ok < t->n ? FINDING_WARNING : FINDING_OK;
        struct finding *f = finding_add(out, "target", "target-latency", sev,
                                        "%s: p50 %.1f ms, p95 %.1f ms over %d requests (%d failed)",
                                        t->url, p50, p95, t->n, t->n - ok);
        finding_evidence(f, "connect p50 %.2f ms, first byte p50 %.1f ms / p95 %.1f ms",
                         rules_percentile(conn, ok, 50), rules_percentile(ttfb, ok, 50),
                         rules_percentile(ttfb, ok, 95));
        finding_evidence(f, "  #  status      dns  connect      tls  first-byte    total (ms, "
                            "cumulative like curl -w)");
        for (int i = 0; i < t->n; i++) {
            const struct target_sample *s = &t->samples[i];
            if (s->ok)
                finding_evidence(f, "%3d  %6d %8.2f %8.2f %8.2f %11.2f %8.2f", i + 1, s->status,
                                 s->dns_ms, s->connect_ms, s->tls_ms, s->ttfb_ms, s->total_ms);
            else
                finding_evidence(f, "%3d  failed: %s", i + 1, s->error);
        }
        finding_source(f, "%d sequential GET %s, a new connection each", t->n, t->url);
        if (sev >= FINDING_WARNING)
            finding_fix(f, "most of the time is %s: %s",
                        p95 > 0 && rules_percentile(ttfb, ok, 95) > p95 / 2
                            ? "waiting for the first byte"
                            : "transfer or connection setup",
                        "cache the response in the gateway (cache: {ttl: 30s}) or make the "
                        "upstream faster; failures are listed above");
    }
    free(tot);
    free(ttfb);
    free(conn);
    rule_target_cache(t, out);
}
