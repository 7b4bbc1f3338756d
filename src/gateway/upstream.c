/* Run-time upstreams: builds servers, TLS contexts, DNS names and metric series from the config,
 * owns the resolver and health threads, and answers readiness. The per-request work is in
 * upool.c; this file runs at start-up plus a few atomic helpers. */
#include "gateway/upstream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/health.h"
#include "gateway/outlier.h"
#include "gateway/upool.h"
#include "gateway/upstream_priv.h"
#include "net/resolve.h"
#include "net/tls.h"

const char *const upstream_connect_reasons[UPSTREAM_CONNECT_REASONS] = {
    upool_err_connect_refused, upool_err_connect_timeout, upool_err_connect,
    upool_err_tls_handshake,   upool_err_tls_verify,
};

const char *const upstream_close_reasons[UPSTREAM_CLOSE_COUNT] = {
    "idle_timeout", "upstream_closed", "max_idle", "not_reusable", "max_requests", "shutdown",
    "stray_bytes", "upgraded",
};

size_t upstream__reason_index(const char *err)
{
    for (size_t i = 0; i < UPSTREAM_CONNECT_REASONS; i++)
        if (upstream_connect_reasons[i] == err)
            return i;
    return 2; /* connect_error */
}

/* Metric families of the upstream side; series per upstream and per server. */
static void upstream__metrics(struct upstream_set *set, struct upstream *u)
{
    struct metrics *m = set->metrics;
    const char *name = u->conf->name;
    const char *ul[] = {"upstream", NULL};
    const char *usl[] = {"upstream", "server", NULL};
    const char *usrl[] = {"upstream", "server", "reason", NULL};
    const char *ustrl[] = {"upstream", "server", "result", NULL};
    const char *ustl[] = {"upstream", "state", NULL};
    const char *url[] = {"upstream", "reason", NULL};
    const char *uresl[] = {"upstream", "resumed", NULL};

    int conn = metrics_family(m, METRICS_GAUGE, "apigate_pool_connections",
                              "Upstream connections of the pools by state.", ustl);
    const char *v_in_use[] = {name, "in_use", NULL};
    const char *v_idle[] = {name, "idle", NULL};
    const char *v_connecting[] = {name, "connecting", NULL};
    u->m_in_use = metrics_series(m, conn, v_in_use);
    u->m_idle = metrics_series(m, conn, v_idle);
    u->m_connecting = metrics_series(m, conn, v_connecting);
    /* The most connections this worker can open to the upstream: what a capacity plan multiplies
     * by the number of gateway instances and compares with the upstream's own limit. */
    int maxc = metrics_family(m, METRICS_GAUGE_SET, "apigate_pool_max_connections",
                              "Upper bound of open connections to the upstream from this "
                              "process (pool.max_connections x loop threads x servers).",
                              ul);
    metrics_gauge_set(m, metrics_series1(m, maxc, name),
                      u->conf->pool.max_connections * (int64_t)set->nthreads *
                          (int64_t)u->nservers);
    int waiting = metrics_family(m, METRICS_GAUGE, "apigate_pool_waiting",
                                 "Requests queued for an upstream connection.", ul);
    u->m_waiting = metrics_series1(m, waiting, name);
    int wait = metrics_family(m, METRICS_HISTOGRAM, "apigate_pool_wait_seconds",
                              "Time requests waited in the pool queue for a connection.", ul);
    u->m_wait = metrics_series1(m, wait, name);
    int ctime = metrics_family(m, METRICS_HISTOGRAM, "apigate_upstream_connect_duration_seconds",
                               "Time to open an upstream connection (TCP connect and TLS "
                               "handshake).",
                               ul);
    u->m_connect_time = metrics_series1(m, ctime, name);
    int reuses = metrics_family(m, METRICS_COUNTER, "apigate_pool_reuses_total",
                                "Requests that got an idle kept-alive connection.", ul);
    u->m_reuses = metrics_series1(m, reuses, name);
    int closed = metrics_family(m, METRICS_COUNTER, "apigate_pool_closed_total",
                                "Upstream connections closed by the pool, by reason.", url);
    for (size_t i = 0; i < UPSTREAM_CLOSE_COUNT; i++) {
        const char *v[] = {name, upstream_close_reasons[i], NULL};
        u->m_closed[i] = metrics_series(m, closed, v);
    }
    int perr = metrics_family(m, METRICS_COUNTER, "apigate_pool_errors_total",
                              "Requests that got no upstream connection from the pool, by "
                              "reason.",
                              url);
    const char *v_qt[] = {name, upool_err_queue_timeout, NULL};
    const char *v_qf[] = {name, upool_err_queue_full, NULL};
    const char *v_nh[] = {name, upool_err_no_healthy, NULL};
    u->m_err_queue_timeout = metrics_series(m, perr, v_qt);
    u->m_err_queue_full = metrics_series(m, perr, v_qf);
    u->m_err_no_healthy = metrics_series(m, perr, v_nh);
    if (u->tls != NULL) {
        int hs = metrics_family(m, METRICS_COUNTER, "apigate_upstream_tls_handshakes_total",
                                "TLS handshakes with upstream servers (resumed: session reuse).",
                                uresl);
        const char *v_full[] = {name, "false", NULL};
        const char *v_res[] = {name, "true", NULL};
        u->m_tls_full = metrics_series(m, hs, v_full);
        u->m_tls_resumed = metrics_series(m, hs, v_res);
    } else {
        u->m_tls_full = u->m_tls_resumed = METRICS_REF_NONE;
    }

    int connects = metrics_family(m, METRICS_COUNTER, "apigate_upstream_connects_total",
                                  "Upstream connections opened (high rates mean connection "
                                  "churn: check pool sizes and keep-alive).",
                                  usl);
    int cerr = metrics_family(m, METRICS_COUNTER, "apigate_upstream_connect_errors_total",
                              "Failed upstream connection attempts, by reason.", usrl);
    int healthy = metrics_family(m, METRICS_GAUGE_SET, "apigate_upstream_healthy",
                                 "1 when active health checks find the server healthy (always 1 "
                                 "without checks), else 0.",
                                 usl);
    int checks = metrics_family(m, METRICS_COUNTER, "apigate_upstream_health_checks_total",
                                "Active health checks by result.", ustrl);
    int ejections = metrics_family(m, METRICS_COUNTER, "apigate_upstream_ejections_total",
                                   "Times a server was marked down (active or passive).", usl);
    /* OpenTelemetry's name for the client side of HTTP; one exchange on a pooled connection. */
    int duration = metrics_family(m, METRICS_HISTOGRAM, "http_client_request_duration_seconds",
                                  "Duration of HTTP requests to upstream servers (request "
                                  "written to response read).",
                                  usl);
    for (size_t i = 0; i < u->nservers; i++) {
        struct upstream_server *s = &u->servers[i];
        const char *v[] = {name, s->name, NULL};
        s->m_connects = metrics_series(m, connects, v);
        s->m_duration = metrics_series(m, duration, v);
        for (size_t r = 0; r < UPSTREAM_CONNECT_REASONS; r++) {
            const char *vr[] = {name, s->name, upstream_connect_reasons[r], NULL};
            s->m_connect_errors[r] = metrics_series(m, cerr, vr);
        }
        s->m_healthy = metrics_series(m, healthy, v);
        metrics_gauge_set(m, s->m_healthy, 1);
        s->m_ejections = metrics_series(m, ejections, v);
        if (u->conf->health.enabled) {
            const char *vok[] = {name, s->name, "ok", NULL};
            const char *vfail[] = {name, s->name, "fail", NULL};
            s->m_checks_ok = metrics_series(m, checks, vok);
            s->m_checks_fail = metrics_series(m, checks, vfail);
        } else {
            s->m_checks_ok = s->m_checks_fail = METRICS_REF_NONE;
        }
    }
}

static int upstream__init_one(struct upstream_set *set, struct upstream *u, size_t index,
                              const struct gw_upstream *conf, char *err, size_t errlen)
{
    u->conf = conf;
    u->set = set;
    u->index = index;
    u->nservers = conf->nservers;
    u->servers = xcalloc(conf->nservers ? conf->nservers : 1, sizeof(*u->servers));
    bool any_tls = conf->tls.enabled;
    for (size_t i = 0; i < conf->nservers; i++)
        any_tls |= conf->servers[i].tls;
    if (any_tls) {
        struct tls_client_opts o = {
            .verify = conf->tls.verify,
            .ca_file = conf->tls.ca_file,
            .cert_file = conf->tls.cert_file,
            .key_file = conf->tls.key_file,
        };
        char e[512];
        u->tls = tls_client_create(&o, e, sizeof(e));
        if (u->tls == NULL) {
            snprintf(err, errlen, "upstream %s: %s", conf->name, e);
            return -1;
        }
        if (!conf->tls.verify)
            ag_log(AG_LOG_WARN, "upstream %s: TLS certificate verification is off", conf->name);
    }
    for (size_t i = 0; i < conf->nservers; i++) {
        struct upstream_server *s = &u->servers[i];
        const struct gw_upserver *sc = &conf->servers[i];
        s->conf = sc;
        s->name = xstrdup(sc->spec);
        s->tls_name = conf->tls.sni ? conf->tls.sni : sc->host;
        atomic_store(&s->healthy, true);
        s->hc_saw_healthy = true;
        if (sc->tls || conf->tls.enabled)
            s->tls_sess = tls_session_create();
        if (sc->numeric)
            continue;
        if (set->resolver == NULL)
            set->resolver = resolve_create(30000);
        char e[512];
        s->dns = resolve_add(set->resolver, sc->host, sc->port, e, sizeof(e));
        if (e[0] != '\0')
            ag_log(AG_LOG_WARN, "upstream %s: server %s: %s; retrying in the background",
                   conf->name, s->name, e);
    }
    if (conf->outlier.consecutive > 0) {
        struct outlier_conf oc = {
            .consecutive = (unsigned)conf->outlier.consecutive,
            .base_ms = conf->outlier.base_ejection_ms,
            .max_ms = conf->outlier.max_ejection_ms,
            .max_percent = conf->outlier.max_ejection_percent,
        };
        u->outlier = outlier_create(&oc, u->nservers);
    }
    upstream__metrics(set, u);
    return 0;
}

struct upstream_set *upstream_set_create(const struct gw_config *cfg, struct metrics *m,
                                         size_t nthreads, char *err, size_t errlen)
{
    struct upstream_set *set = xcalloc(1, sizeof(*set));
    set->cfg = cfg;
    set->metrics = m;
    set->nthreads = nthreads ? nthreads : 1;
    set->n = cfg->nupstreams;
    set->ups = xcalloc(set->n ? set->n : 1, sizeof(*set->ups));
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        if (upstream__init_one(set, &set->ups[i], i, &cfg->upstreams[i], err, errlen) != 0) {
            upstream_set_destroy(set);
            return NULL;
        }
    }
    set->health = health_create(set);
    return set;
}

int upstream_set_start(struct upstream_set *s, char *err, size_t errlen)
{
    if (s->resolver != NULL && resolve_start(s->resolver) != 0) {
        snprintf(err, errlen, "cannot start the resolver thread: %s", strerror(errno));
        return -1;
    }
    if (s->health != NULL && health_start(s->health, err, errlen) != 0)
        return -1;
    return 0;
}

void upstream_set_destroy(struct upstream_set *s)
{
    if (s == NULL)
        return;
    health_destroy(s->health); /* first: it reads the servers */
    s->health = NULL;
    resolve_destroy(s->resolver);
    s->resolver = NULL;
    for (size_t i = 0; i < s->n; i++) {
        struct upstream *u = &s->ups[i];
        for (size_t k = 0; u->servers != NULL && k < u->nservers; k++) {
            free(u->servers[k].name);
            tls_session_destroy(u->servers[k].tls_sess);
        }
        free(u->servers);
        tls_client_destroy(u->tls);
        outlier_destroy(u->outlier);
        u->outlier = NULL;
    }
    free(s->ups);
    free(s);
}

size_t upstream_set_count(const struct upstream_set *s) { return s->n; }

struct upstream *upstream_set_at(struct upstream_set *s, size_t i)
{
    return i < s->n ? &s->ups[i] : NULL;
}

bool upstream_set_ready(const struct upstream_set *s, char *why, size_t whylen)
{
    const struct gw_config *cfg = s->cfg;
    for (size_t r = 0; r < cfg->nroutes; r++) {
        size_t i = cfg->routes[r].upstream_index;
        if (i >= s->n || upstream_has_healthy(&s->ups[i]))
            continue;
        if (why != NULL)
            snprintf(why, whylen, "upstream %s (route %s) has no healthy server",
                     s->ups[i].conf->name, cfg->routes[r].match);
        return false;
    }
    return true;
}

void upstream_set_status_json(const struct upstream_set *s, struct buf *out)
{
    uint64_t now = clock_now_ms();
    buf_append_str(out, "[");
    for (size_t i = 0; i < s->n; i++) {
        const struct upstream *u = &s->ups[i];
        buf_append_str(out, i ? ",{\"name\":" : "{\"name\":");
        buf_append_json_str(out, u->conf->name, strlen(u->conf->name));
        buf_printf(out, ",\"balance\":\"%s\",\"health_checks\":%s,\"servers\":[",
                   u->conf->balance == GW_BALANCE_ROUND_ROBIN   ? "round_robin"
                   : u->conf->balance == GW_BALANCE_EWMA        ? "ewma"
                                                                : "least_request",
                   u->conf->health.enabled ? "true" : "false");
        for (size_t k = 0; k < u->nservers; k++) {
            const struct upstream_server *sv = &u->servers[k];
            uint64_t down = atomic_load(&sv->down_until_ms);
            buf_append_str(out, k ? ",{\"server\":" : "{\"server\":");
            buf_append_json_str(out, sv->name, strlen(sv->name));
            buf_printf(out,
                       ",\"tls\":%s,\"backup\":%s,\"healthy\":%s,\"resolved\":%s,"
                       "\"ejected_ms\":%" PRIu64 ",\"usable\":%s,\"last_check\":",
                       sv->tls_sess ? "true" : "false", sv->conf->backup ? "true" : "false",
                       atomic_load(&sv->healthy) ? "true" : "false",
                       upstream__resolved(sv) ? "true" : "false",
                       down > now ? down - now : 0, upstream__usable(sv, now) ? "true" : "false");
            buf_append_json_str(out, sv->hc_last, strnlen(sv->hc_last, sizeof(sv->hc_last)));
            buf_append_str(out, "}");
        }
        buf_append_str(out, "]}");
    }
    buf_append_str(out, "]");
}

const char *upstream_name(const struct upstream *u) { return u->conf->name; }
size_t upstream_server_count(const struct upstream *u) { return u->nservers; }
const char *upstream_server_name(const struct upstream *u, size_t i)
{
    return i < u->nservers ? u->servers[i].name : NULL;
}

bool upstream__resolved(const struct upstream_server *s)
{
    return s->dns == NULL || resolve_has_addr(s->dns);
}

bool upstream__usable(const struct upstream_server *s, uint64_t now_ms)
{
    return atomic_load_explicit(&s->healthy, memory_order_relaxed) && upstream__resolved(s) &&
           atomic_load_explicit(&s->down_until_ms, memory_order_relaxed) <= now_ms;
}

bool upstream_has_healthy(const struct upstream *u)
{
    uint64_t now = clock_now_ms();
    for (size_t i = 0; i < u->nservers; i++)
        if (upstream__usable(&u->servers[i], now))
            return true;
    return false;
}

bool upstream_server_healthy(const struct upstream *u, size_t i)
{
    return i < u->nservers && upstream__usable(&u->servers[i], clock_now_ms());
}

bool upstream__addr(struct upstream_server *s, uint64_t seq, struct sock_addr *out)
{
    if (s->dns == NULL) {
        *out = s->conf->addr;
        return true;
    }
    return resolve_get(s->dns, seq, out);
}

bool upstream__fail(struct upstream *u, struct upstream_server *s, uint64_t now_ms)
{
    if (u->outlier != NULL) {
        /* consecutive failures (outlier.c): a growing ejection, capped by max_ejection_percent */
        uint64_t d = outlier_failure(u->outlier, (size_t)(s - u->servers), now_ms);
        if (d > 0) {
            if (atomic_load(&s->down_until_ms) < now_ms + d)
                atomic_store(&s->down_until_ms, now_ms + d);
            ag_log(AG_LOG_WARN,
                   "upstream %s: server %s ejected for %" PRIu64 " ms after %" PRId64
                   " consecutive failures (ejection %u)",
                   u->conf->name, s->name, d, u->conf->outlier.consecutive,
                   outlier_multiplier(u->outlier, (size_t)(s - u->servers)));
            return true;
        }
    }
    int64_t max_fails = u->conf->max_fails;
    uint64_t window = u->conf->fail_timeout_ms;
    if (max_fails <= 0 || window == 0)
        return false;
    /* A window of fail_timeout: failures older than that are forgotten (nginx max_fails). Threads
     * race on these atomics; a lost update shifts the count by one, which is harmless. */
    uint64_t start = atomic_load(&s->fail_window_ms);
    if (now_ms - start > window) {
        atomic_store(&s->fail_window_ms, now_ms);
        atomic_store(&s->fails, 0);
    }
    uint32_t n = atomic_fetch_add(&s->fails, 1) + 1;
    if (n < (uint32_t)max_fails || atomic_load(&s->down_until_ms) > now_ms)
        return false;
    atomic_store(&s->down_until_ms, now_ms + window);
    atomic_store(&s->fails, 0);
    ag_log(AG_LOG_WARN,
           "upstream %s: server %s ejected for %" PRIu64 " ms after %" PRId64 " failures",
           u->conf->name, s->name, window, max_fails);
    return true;
}

void upstream__set_healthy(struct upstream *u, struct upstream_server *s, bool healthy,
                           const char *why)
{
    bool was = atomic_exchange(&s->healthy, healthy);
    metrics_gauge_set(u->set->metrics, s->m_healthy, healthy ? 1 : 0);
    if (was == healthy)
        return;
    if (healthy) {
        ag_log(AG_LOG_INFO, "upstream %s: server %s is healthy again (%s)", u->conf->name, s->name,
               why);
    } else {
        ag_log(AG_LOG_WARN, "upstream %s: server %s marked down by health checks: %s",
               u->conf->name, s->name, why);
    }
}

void upstream__success(struct upstream *u, struct upstream_server *s, uint64_t now_ms)
{
    if (u->outlier != NULL)
        outlier_success(u->outlier, (size_t)(s - u->servers), now_ms);
    /* A real answer outranks a verdict from before it: a server tried in panic mode (or right
     * after its ejection) that answers is up now, not after the next healthy_threshold checks. */
    uint64_t down = atomic_load_explicit(&s->down_until_ms, memory_order_relaxed);
    if (down > now_ms && atomic_compare_exchange_strong(&s->down_until_ms, &down, 0))
        ag_log(AG_LOG_INFO, "upstream %s: server %s answered: ejection ended", u->conf->name,
               s->name);
    if (!atomic_load_explicit(&s->healthy, memory_order_relaxed))
        upstream__set_healthy(u, s, true, "a proxied request succeeded");
}

void upstream__panic(struct upstream *u, bool on)
{
    if (atomic_load_explicit(&u->panic, memory_order_relaxed) == on ||
        atomic_exchange(&u->panic, on) == on)
        return;
    if (on)
        ag_log(AG_LOG_WARN,
               "upstream %s: every server is down; trying them anyway (panic mode) rather than "
               "refusing requests",
               u->conf->name);
    else
        ag_log(AG_LOG_INFO, "upstream %s: a server is up again; panic mode over", u->conf->name);
}
