/* Admin endpoints on their own thread and loop: small, keep-alive capable, one request at a time
 * per connection. Reads the metrics registry (summed over the loop threads' slots) and the shared
 * block; never touches a loop thread's private state. */
#include "gateway/admin.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/hist.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "gateway/adminauth.h"
#include "gateway/cachehook.h"
#include "gateway/gwthread.h"
#include "gateway/dashboard.h"
#include "gateway/procstat.h"
#include "gateway/gwconf.h"
#include "gateway/resil.h"
#include "gateway/statring.h"
#include "gateway/upstream.h"
#include "gateway/worker.h"
#include "http/date.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "net/srvconn.h"

#define ADMIN_MAX_HEAD 8192
#define ADMIN_LINGER_MS 2000 /* after a last answer: the client's EOF is awaited this long */
/* Above admin.max_connections, this many more connections may ask /healthz or /readyz (one
 * request each, head within ADMIN_PROBE_HEAD_MS), so that clients holding every slot (64 heads
 * trickled a byte every 5 s) cannot make a liveness probe fail; when all are taken, the oldest
 * probe connection gives way to the new one. */
#define ADMIN_PROBE_SLOTS 4
#define ADMIN_PROBE_HEAD_MS 2000

struct admin_conn {
    struct admin *a;
    struct srvconn sc; // the socket, its buffers and timer (net/srvconn: the servers' core)
    uint64_t seq;  // accept order (the oldest probe connection gives way first)
    bool closed;
    bool probe;    // over the limit: /healthz and /readyz only, one request
};

struct admin {
    struct gw_shared *sh;
    const struct gw_admin *conf;
    struct loop *loop;
    int fd;
    pthread_t thread;
    struct admin_conn **conns;  // conf->max_connections slots, then ADMIN_PROBE_SLOTS
    size_t nslots;
    uint64_t seq;
    struct procstat proc; // process_* metrics, refreshed on scrape
    struct loop_timer ring_timer;
};

static void admin__ring_tick(struct loop *loop, void *arg)
{
    struct admin *a = arg;
    statring_tick(a->sh->ring, a->sh);
    loop_timer_start(loop, &a->ring_timer, 1000);
}

static void admin__conn_free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct admin_conn *ac = arg;
    srvconn_deinit(&ac->sc);
    free(ac);
}

static void admin__close(struct admin_conn *ac)
{
    if (ac->closed)
        return;
    struct admin *a = ac->a;
    ac->closed = true;
    srvconn_close(&ac->sc, a->loop);
    for (size_t i = 0; i < a->nslots; i++)
        if (a->conns[i] == ac)
            a->conns[i] = NULL;
    loop_defer(a->loop, admin__conn_free_cb, ac);
}

/* Every timeout closes: a head not complete in time (header_timeout from its first byte, the
 * first one from the accept), idle_timeout between requests, an answer the client does not read
 * for as long, the end of a lingering close. */
static void admin__on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    admin__close(arg);
}

/* ---- /stats ---- */

static double admin__ms(uint64_t us) { return (double)us / 1000.0; }

static int64_t admin__read(struct metrics *m, const char *name, const char *const *v,
                           enum metrics_type t)
{
    metrics_ref r = metrics_lookup(m, name, v);
    return r == METRICS_REF_NONE ? 0 : metrics_read(m, r, t);
}

/* Cumulative request counts at fine "le" boundaries (R10 series, 0.1 ms .. 60 s), all routes.
 * The dashboard subtracts two snapshots and interpolates per-second percentiles from them, which
 * the cumulative latency_ms percentiles cannot give. */
static void admin__latency_window(const struct hist *all, struct buf *out)
{
    static const double r10[] = {1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8};
    struct buf le = BUF_INIT, counts = BUF_INIT;
    for (double dec = 0.1; dec < 100000; dec *= 10) {
        for (size_t i = 0; i < sizeof(r10) / sizeof(r10[0]); i++) {
            double ms = dec * r10[i];
            if (ms > 60000.0 + 1e-9)
                break;
            buf_printf(&le, "%s%g", le.len ? "," : "", ms);
            buf_printf(&counts, "%s%llu", counts.len ? "," : "",
                       (unsigned long long)hist_count_le(all, (uint64_t)(ms * 1000.0 + 0.5)));
        }
    }
    buf_append_str(out, "\"latency_window\":{\"le_ms\":[");
    buf_append(out, buf_head(&le), buf_pending(&le));
    buf_append_str(out, "],\"counts\":[");
    buf_append(out, buf_head(&counts), buf_pending(&counts));
    buf_printf(out, "],\"count\":%llu,\"sum_ms\":%.3f},", (unsigned long long)all->count,
               (double)all->sum_us / 1000.0);
    buf_deinit(&le);
    buf_deinit(&counts);
}

void admin_stats_json(struct gw_shared *sh, struct buf *out)
{
    struct metrics *m = sh->metrics;
    const struct gw_config *cfg = sh->cfg;
    uint64_t cls[6] = {0};
    struct hist all;
    hist_init(&all);
    struct hist h;
    uint64_t shed = (uint64_t)metrics_read(m, sh->ids.shed_global, METRICS_COUNTER);
    struct buf routes = BUF_INIT;
    buf_append_str(&routes, "[");
    for (size_t i = 0; i <= cfg->nroutes; i++) {
        struct gw_route_rt *rt = &sh->rt[i];
        uint64_t rc[6];
        uint64_t count = 0;
        for (size_t k = 0; k < 6; k++) {
            rc[k] = (uint64_t)metrics_read(m, rt->status_class[k], METRICS_COUNTER);
            cls[k] += rc[k];
            count += rc[k];
        }
        hist_init(&h);
        metrics_read_hist(m, rt->route_duration, &h);
        hist_merge(&all, &h);
        uint64_t rshed = i < cfg->nroutes
                             ? (uint64_t)metrics_read(m, rt->shed, METRICS_COUNTER)
                             : 0;
        shed += rshed;
        if (i == cfg->nroutes && count == 0)
            continue; // the "unmatched" pseudo-route only when it saw traffic
        uint64_t uerr = 0;
        metrics_ref errs[4] = {rt->err_timeout, rt->err_connect, rt->err_pool, rt->err_proto};
        for (size_t k = 0; k < 4; k++)
            uerr += (uint64_t)metrics_read(m, errs[k], METRICS_COUNTER);
        if (routes.len > 1)
            buf_append_str(&routes, ",");
        buf_append_str(&routes, "{\"route\":");
        buf_append_json_str(&routes, rt->label, strlen(rt->label));
        buf_append_str(&routes, ",\"upstream\":");
        if (i < cfg->nroutes) {
            const char *un = cfg->upstreams[cfg->routes[i].upstream_index].name;
            buf_append_json_str(&routes, un, strlen(un));
        } else {
            buf_append_str(&routes, "null");
        }
        buf_printf(&routes,
                   ",\"count\":%llu,\"errors\":%llu,\"status\":{\"2xx\":%llu,\"3xx\":%llu,"
                   "\"4xx\":%llu,\"5xx\":%llu},\"upstream_errors\":%llu,\"shed\":%llu,"
                   "\"inflight\":%lld,\"avg_ms\":%.3f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,"
                   "\"p99_ms\":%.3f,\"max_ms\":%.3f}",
                   (unsigned long long)count, (unsigned long long)rc[5],
                   (unsigned long long)rc[2], (unsigned long long)rc[3],
                   (unsigned long long)rc[4], (unsigned long long)rc[5],
                   (unsigned long long)uerr, (unsigned long long)rshed,
                   (long long)atomic_load(&rt->inflight), hist_mean(&h) / 1000.0,
                   admin__ms(hist_percentile(&h, 50)), admin__ms(hist_percentile(&h, 95)),
                   admin__ms(hist_percentile(&h, 99)), admin__ms(hist_max(&h)));
    }
    buf_append_str(&routes, "]");

    struct buf ups = BUF_INIT;
    buf_append_str(&ups, "[");
    struct hist pw_all;
    hist_init(&pw_all);
    uint64_t connects_all = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct gw_upstream *u = &cfg->upstreams[i];
        const char *vi[] = {u->name, "in_use", NULL};
        const char *vd[] = {u->name, "idle", NULL};
        const char *vc[] = {u->name, "connecting", NULL};
        const char *vn[] = {u->name, NULL};
        int64_t in_use = admin__read(m, "apigate_pool_connections", vi, METRICS_GAUGE);
        int64_t idle = admin__read(m, "apigate_pool_connections", vd, METRICS_GAUGE);
        int64_t connecting = admin__read(m, "apigate_pool_connections", vc, METRICS_GAUGE);
        int64_t waiting = admin__read(m, "apigate_pool_waiting", vn, METRICS_GAUGE);
        int64_t reuses = admin__read(m, "apigate_pool_reuses_total", vn, METRICS_COUNTER);
        uint64_t connects = 0;
        for (size_t s = 0; s < u->nservers; s++) {
            const char *v[] = {u->name, u->servers[s].spec, NULL};
            connects += (uint64_t)admin__read(m, "apigate_upstream_connects_total", v,
                                              METRICS_COUNTER);
        }
        connects_all += connects;
        hist_init(&h);
        metrics_ref pw = metrics_lookup(m, "apigate_pool_wait_seconds", vn);
        if (pw != METRICS_REF_NONE)
            metrics_read_hist(m, pw, &h);
        hist_merge(&pw_all, &h);
        if (i > 0)
            buf_append_str(&ups, ",");
        buf_append_str(&ups, "{\"name\":");
        buf_append_json_str(&ups, u->name, strlen(u->name));
        buf_printf(&ups,
                   ",\"in_use\":%lld,\"idle\":%lld,\"connecting\":%lld,\"waiting\":%lld,"
                   "\"connects\":%llu,\"reuses\":%lld,\"pool_wait_p95_ms\":%.3f,"
                   "\"pool_wait_max_ms\":%.3f}",
                   (long long)in_use, (long long)idle, (long long)connecting, (long long)waiting,
                   (unsigned long long)connects, (long long)reuses,
                   admin__ms(hist_percentile(&h, 95)), admin__ms(hist_max(&h)));
    }
    buf_append_str(&ups, "]");

    uint64_t total = 0;
    for (size_t k = 0; k < 6; k++)
        total += cls[k];
    uint64_t started = atomic_load(&sh->shm->started_ms);
    uint64_t now_wall = clock_wall_ms();
    double uptime = started && now_wall > started ? (now_wall - started) / 1000.0
                                                  : (clock_now_ms() - sh->start_ms) / 1000.0;
    buf_printf(out,
               "{\"version\":1,\"uptime_s\":%.3f,\"worker_restarts\":%llu,"
               "\"worker_crashes\":%llu,\"worker_recycles\":%llu,"
               "\"requests\":{\"total\":%llu,\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,"
               "\"4xx\":%llu,\"5xx\":%llu},"
               "\"latency_ms\":{\"avg\":%.3f,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
               "\"shed\":%llu,\"inflight\":%lld,"
               "\"connections\":{\"open\":%lld,\"accepted\":%lld,\"rejected\":%lld},"
               "\"tunnels\":{\"open\":%lld,\"total\":%lld,\"bytes_upstream\":%lld,"
               "\"bytes_downstream\":%lld,\"buffered\":%lld},"
               "\"breakers_open\":%d,"
               "\"pool\":{\"connects\":%llu,\"wait_p95_ms\":%.3f},",
               uptime, (unsigned long long)atomic_load(&sh->shm->restarts),
               (unsigned long long)(atomic_load(&sh->shm->restarts) -
                                    atomic_load(&sh->shm->recycles)),
               (unsigned long long)atomic_load(&sh->shm->recycles),
               (unsigned long long)total, (unsigned long long)cls[1], (unsigned long long)cls[2],
               (unsigned long long)cls[3], (unsigned long long)cls[4], (unsigned long long)cls[5],
               hist_mean(&all) / 1000.0, admin__ms(hist_percentile(&all, 50)),
               admin__ms(hist_percentile(&all, 95)), admin__ms(hist_percentile(&all, 99)),
               admin__ms(hist_max(&all)), (unsigned long long)shed,
               (long long)atomic_load(&sh->inflight),
               (long long)metrics_read(m, sh->ids.conns_open, METRICS_GAUGE),
               (long long)metrics_read(m, sh->ids.conns_accepted, METRICS_COUNTER),
               (long long)metrics_read(m, sh->ids.conns_rejected, METRICS_COUNTER),
               (long long)metrics_read(m, sh->ids.tunnels_open, METRICS_GAUGE),
               (long long)metrics_read(m, sh->ids.tunnels_total, METRICS_COUNTER),
               (long long)metrics_read(m, sh->ids.tunnel_bytes_up, METRICS_COUNTER),
               (long long)metrics_read(m, sh->ids.tunnel_bytes_down, METRICS_COUNTER),
               (long long)metrics_read(m, sh->ids.tunnel_buffered, METRICS_GAUGE),
               resil_breakers_open(sh), (unsigned long long)connects_all,
               admin__ms(hist_percentile(&pw_all, 95)));
    admin__latency_window(&all, out);
    buf_append_str(out, "\"breakers\":");
    resil_stats_json(sh, out); // per-route circuit breakers (resil.c)
    buf_append_str(out, ",\"adaptive\":");
    resil_adaptive_json(sh, out); // per-route adaptive concurrency limits
    buf_append_str(out, ",\"cache\":");
    cachehook_stats_json(sh, out);
    buf_append_str(out, ",\"routes\":");
    buf_append(out, buf_head(&routes), buf_pending(&routes));
    buf_append_str(out, ",\"upstreams\":");
    buf_append(out, buf_head(&ups), buf_pending(&ups));
    /* CPU time of this worker process (user + system), for load's CPU per 1k requests */
    struct rusage ru;
    double cpu = getrusage(RUSAGE_SELF, &ru) == 0
                     ? (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6
                     : 0.0;
    buf_printf(out, ",\"cpu_s\":%.3f}\n", cpu);
    buf_deinit(&routes);
    buf_deinit(&ups);
}

/* ---- requests ---- */

/* <etag> NULL: a live document, never stored (Cache-Control: no-store). Otherwise a file of the
 * binary (the dashboard's): stored, revalidated on every use (no-cache) with If-None-Match, which
 * costs a 304 instead of Chart.js' 200 KB on each page load. */
static void admin__respond(struct admin_conn *ac, int status, const char *ctype,
                           const struct buf *body, const char *etag, bool head_only,
                           bool keep_alive)
{
    struct buf *b = &ac->sc.out;
    h1_write_status_line(b, status, NULL);
    char date[HTTP_DATE_LEN + 1];
    http_date_format(clock_wall_s(), date);
    h1_write_header_str(b, "Date", date);
    h1_write_header_str(b, "Content-Type", ctype);
    h1_write_header_str(b, "Cache-Control", etag ? "no-cache" : "no-store");
    if (etag != NULL)
        h1_write_header_str(b, "ETag", etag);
    if (status == 401)
        h1_write_header_str(b, "WWW-Authenticate", "Bearer realm=\"apigate admin\"");
    if (status != 304)
        h1_write_header_u64(b, "Content-Length", buf_pending(body));
    if (!keep_alive)
        h1_write_header_str(b, "Connection", "close");
    h1_write_end_head(b);
    if (!head_only)
        buf_append(b, buf_head(body), buf_pending(body));
}

/* A request that may change something (any method but GET and HEAD) needs the Bearer token
 * when one is configured (always off loopback, unless admin.insecure: gwconf's rule). */
static bool admin__authorized(const struct admin *a, const struct h1_request *req)
{
    if (a->conf->token == NULL || req->method_id == H1_M_GET || req->method_id == H1_M_HEAD)
        return true;
    const struct h1_header *h = headers_find(req->headers, req->nheaders, "authorization");
    return h != NULL &&
           adminauth_bearer_ok(a->conf->token, a->conf->token_len, h->value, h->value_len);
}

/* /readyz: this gateway can serve (its worker is up with a loaded config and not draining).
 * The upstreams' health is /upstreams' business; with ?strict=1 or admin.readyz_strict it
 * counts too (one unhealthy upstream then takes every replica out of a load balancer). */
static void admin__readyz(struct admin_conn *ac, const struct h1_request *req, struct buf *body,
                          int *status)
{
    struct gw_shared *sh = ac->a->sh;
    bool strict = ac->a->conf->readyz_strict;
    const char *q = req->query, *end = req->query ? req->query + req->query_len : NULL;
    while (q != NULL && q < end) { /* strict=1|true or strict=0|false; the last one counts */
        const char *amp = memchr(q, '&', (size_t)(end - q));
        size_t n = (size_t)((amp ? amp : end) - q);
        if ((n == 8 && memcmp(q, "strict=1", 8) == 0) || (n == 11 && memcmp(q, "strict=true", 11) == 0))
            strict = true;
        else if ((n == 8 && memcmp(q, "strict=0", 8) == 0) ||
                 (n == 12 && memcmp(q, "strict=false", 12) == 0))
            strict = false;
        q = amp ? amp + 1 : end;
    }
    char why[256] = "", uwhy[256] = "";
    bool serving = atomic_load(&sh->shm->ready) && !atomic_load(&sh->draining);
    if (!serving)
        snprintf(why, sizeof(why), "%s",
                 atomic_load(&sh->draining) ? "draining" : "the worker is not ready yet");
    bool ups = upstream_set_ready(sh->upstreams, uwhy, sizeof(uwhy));
    bool ready = serving && (ups || !strict);
    if (serving && !ready)
        snprintf(why, sizeof(why), "%s", uwhy);
    *status = ready ? 200 : 503;
    buf_append_str(body, ready ? "{\"status\":\"ready\"" : "{\"status\":\"not_ready\",\"why\":");
    if (!ready)
        buf_append_json_str(body, why, strlen(why));
    if (ready && !ups) { /* told, not counted: the gateway still answers (stale, fallbacks) */
        buf_append_str(body, ",\"upstreams\":");
        buf_append_json_str(body, uwhy, strlen(uwhy));
    }
    buf_append_str(body, "}\n");
}

/* True when the If-None-Match value <v> (a list of entity tags, or *) holds <etag>; a weak
 * W/ prefix compares as the tag (RFC 9110 §13.1.2: weak comparison). */
static bool admin__etag_match(const char *v, size_t n, const char *etag)
{
    size_t el = strlen(etag);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == 1 && v[s] == '*')
            return true;
        if (e - s > 2 && v[s] == 'W' && v[s + 1] == '/')
            s += 2;
        if (e - s == el && memcmp(v + s, etag, el) == 0)
            return true;
    }
    return false;
}

static void admin__handle(struct admin_conn *ac, const struct h1_request *req, bool keep_alive)
{
    struct gw_shared *sh = ac->a->sh;
    struct buf body = BUF_INIT;
    int status = 200;
    const char *ctype = "application/json";
    const char *etag = NULL; // a file of the binary: cacheable
    struct dashboard_file file;
    bool get = req->method_id == H1_M_GET || req->method_id == H1_M_HEAD;
#define PATH_IS(s) (req->path_len == sizeof(s) - 1 && memcmp(req->path, s, sizeof(s) - 1) == 0)
    if (ac->probe && !(get && (PATH_IS("/healthz") || PATH_IS("/readyz")))) {
        status = 503;
        buf_append_str(&body, "{\"error\":\"admin connection limit reached; only /healthz and "
                              "/readyz are answered\"}\n");
    } else if (!admin__authorized(ac->a, req)) {
        status = 401;
        buf_append_str(&body, "{\"error\":\"unauthorized\",\"detail\":\"this admin request "
                              "needs 'Authorization: Bearer TOKEN' (admin.token_file)\"}\n");
    } else if (cachehook_admin(sh, req, &body, &status, &ctype)) {
        /* /cache/purge, /cache/stats, /metrics/cache */
    } else if (!get) {
        status = 405;
        buf_append_str(&body, "{\"error\":\"method_not_allowed\"}\n");
    } else if (PATH_IS("/healthz")) {
        buf_append_str(&body, "{\"status\":\"ok\"}\n");
    } else if (PATH_IS("/readyz")) {
        admin__readyz(ac, req, &body, &status);
    } else if (PATH_IS("/metrics")) {
        struct metrics *m = sh->metrics;
        metrics_counter_set(m, sh->ids.worker_restarts, atomic_load(&sh->shm->restarts));
        uint64_t started = atomic_load(&sh->shm->started_ms);
        uint64_t now = clock_wall_ms();
        metrics_gauge_set(m, sh->ids.uptime,
                          (int64_t)(started && now > started ? (now - started) / 1000
                                                             : (clock_now_ms() - sh->start_ms) /
                                                                   1000));
        cachehook_refresh_metrics(sh);
        procstat_refresh(m, &ac->a->proc);
        metrics_render_prom(m, &body);
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    } else if (PATH_IS("/stats")) {
        admin_stats_json(sh, &body);
    } else if (PATH_IS("/stats/history")) {
        statring_json(sh->ring, &body);
    } else if (dashboard_find(req->path, req->path_len, &file) == 0) {
        ctype = file.ctype;
        etag = file.etag;
        const struct h1_header *inm =
            headers_find(req->headers, req->nheaders, "if-none-match");
        if (inm != NULL && admin__etag_match(inm->value, inm->value_len, etag))
            status = 304;
        else
            buf_append(&body, file.data, file.len);
    } else if (PATH_IS("/upstreams")) {
        upstream_set_status_json(sh->upstreams, &body);
        buf_append_str(&body, "\n");
    } else {
        status = 404;
        buf_append_str(&body, "{\"error\":\"not_found\",\"endpoints\":[\"/healthz\",\"/readyz\","
                              "\"/metrics\",\"/stats\",\"/stats/history\",\"/upstreams\","
                              "\"/dashboard\",\"/dashboard/app.js\",\"/dashboard/chart.js\"]}\n");
    }
#undef PATH_IS
    admin__respond(ac, status, ctype, &body, etag, req->method_id == H1_M_HEAD || status == 304,
                   keep_alive);
    buf_deinit(&body);
}

/* Reads what the client sent and answers its complete requests in order, one answer in flight at
 * a time. Called on every edge and after each drained answer: the socket is edge-triggered, so
 * bytes left in it (a pipeline over ADMIN_MAX_HEAD, requests behind an answer that waited for the
 * socket) get no second edge and must be picked up from here. The timer is the core's: the header
 * timeout runs from a head's first byte (the first head's from the accept), the idle timeout
 * between requests. */
static void admin__serve(struct admin_conn *ac)
{
    struct admin *a = ac->a;
    struct srvconn *sc = &ac->sc;
    uint64_t head_ms = a->conf->header_timeout_ms;
    if (ac->probe && head_ms > ADMIN_PROBE_HEAD_MS)
        head_ms = ADMIN_PROBE_HEAD_MS;
    for (;;) {
        /* read up to a head's worth: the rest stays in the socket (sc->readable) for later */
        if (srvconn_read(sc, 4096, ADMIN_MAX_HEAD + 1) == IO_ERR) {
            admin__close(ac);
            return;
        }
        bool answered = false;
        while (!sc->closing && buf_pending(&sc->out) == 0 && buf_pending(&sc->in) > 0) {
            struct h1_header hdrs[64];
            struct h1_request req;
            struct h1_limits lim = {.max_request_line = 4096, .max_head = ADMIN_MAX_HEAD,
                                    .max_headers = 64};
            int r = srvconn_head(sc, a->loop, &req, hdrs, 64, &lim, head_ms);
            if (r == SRVCONN_HEAD_MORE)
                break;
            if (r == SRVCONN_HEAD_EOF) {
                admin__close(ac); // all answered; what is left is half a head
                return;
            }
            bool keep_alive = false;
            if (r == SRVCONN_HEAD_BAD) {
                struct buf body = BUF_INIT;
                buf_printf(&body, "{\"error\":\"%s\"}\n", h1_err_text(req.err));
                admin__respond(ac, h1_err_status(req.err), "application/json", &body, NULL,
                               false, false);
                buf_deinit(&body);
            } else {
                /* admin endpoints take no body: do not try to skip one */
                keep_alive = req.keep_alive && !ac->probe && req.body == H1_BODY_NONE;
                admin__handle(ac, &req, keep_alive);
                buf_consume(&sc->in, (size_t)r);
            }
            if (srvconn_answered(sc, a->loop, keep_alive, a->conf->idle_timeout_ms,
                                 ADMIN_LINGER_MS) == IO_ERR) {
                admin__close(ac);
                return;
            }
            answered = true;
        }
        if (sc->closing || buf_pending(&sc->out) > 0)
            break; // the drain goes on (and closes) once the socket takes the answer
        if (sc->read_eof) {
            admin__close(ac); // all answered
            return;
        }
        if (!answered || !sc->readable)
            break;
    }
}

static void admin__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)fd;
    struct admin_conn *ac = arg;
    if (ac->closed)
        return;
    struct srvconn *sc = &ac->sc;
    srvconn_on_events(sc, events);
    if (sc->closing || buf_pending(&sc->out) > 0) {
        int rc = srvconn_drain(sc, loop, ADMIN_LINGER_MS);
        if (rc == IO_ERR) {
            admin__close(ac);
            return;
        }
        if (rc == IO_AGAIN)
            return; // output still pending, or lingering
        if (sc->timer_kind == SRVCONN_T_SEND)
            srvconn_arm(sc, loop, SRVCONN_T_IDLE, ac->a->conf->idle_timeout_ms);
    }
    admin__serve(ac);
}

static void admin__on_accept(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)events;
    struct admin *a = arg;
    int cfd;
    while ((cfd = srvconn_accept(fd)) != -1) {
        size_t nreg = (size_t)a->conf->max_connections;
        size_t slot = a->nslots, oldest = a->nslots;
        for (size_t i = 0; i < a->nslots && slot == a->nslots; i++) {
            if (a->conns[i] == NULL)
                slot = i;
            else if (i >= nreg && (oldest == a->nslots || a->conns[i]->seq < a->conns[oldest]->seq))
                oldest = i;
        }
        if (slot == a->nslots) { /* every slot taken: the oldest probe connection gives way */
            admin__close(a->conns[oldest]);
            slot = oldest;
        }
        struct admin_conn *ac = xcalloc(1, sizeof(*ac));
        ac->a = a;
        ac->seq = ++a->seq;
        ac->probe = slot >= nreg;
        srvconn_init(&ac->sc, admin__on_timer, ac);
        srvconn_open(&ac->sc, cfd);
        if (loop_add_fd(loop, cfd, LOOP_READ | LOOP_WRITE, admin__on_event, ac) == -1) {
            close(cfd);
            srvconn_deinit(&ac->sc);
            free(ac);
            continue;
        }
        a->conns[slot] = ac;
        /* the first request's head is due header_timeout after the accept */
        uint64_t head_ms = a->conf->header_timeout_ms;
        if (ac->probe && head_ms > ADMIN_PROBE_HEAD_MS)
            head_ms = ADMIN_PROBE_HEAD_MS;
        srvconn_arm(&ac->sc, loop, SRVCONN_T_HEADER, head_ms);
    }
}

static void *admin__thread(void *arg)
{
    struct admin *a = arg;
    loop_run(a->loop);
    for (size_t i = 0; i < a->nslots; i++)
        if (a->conns[i] != NULL)
            admin__close(a->conns[i]);
    loop_run_once(a->loop, 0);
    return NULL;
}

struct admin *admin_start(struct gw_shared *sh, int fd)
{
    struct admin *a = xcalloc(1, sizeof(*a));
    a->sh = sh;
    a->conf = &sh->cfg->admin_cfg;
    a->nslots = (size_t)a->conf->max_connections + ADMIN_PROBE_SLOTS;
    a->conns = xcalloc(a->nslots, sizeof(*a->conns));
    a->fd = fd;
    procstat_register(sh->metrics, &a->proc);
    a->loop = loop_create();
    if (a->loop == NULL) {
        ag_log(AG_LOG_ERROR, "admin: loop_create: %s", strerror(errno));
        free(a->conns);
        free(a);
        return NULL;
    }
    /* the ring is the worker's (it holds the predecessor's points already): sample it */
    loop_timer_init(&a->ring_timer, admin__ring_tick, a);
    statring_tick(sh->ring, sh); /* the first sample: points start a second later */
    loop_timer_start(a->loop, &a->ring_timer, 1000);
    if (loop_add_fd(a->loop, fd, LOOP_READ, admin__on_accept, a) == -1 ||
        pthread_create(&a->thread, NULL, admin__thread, a) != 0) {
        ag_log(AG_LOG_ERROR, "admin: cannot start: %s", strerror(errno));
        loop_destroy(a->loop);
        free(a->conns);
        free(a);
        return NULL;
    }
    return a;
}

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    loop_stop(a->loop);
    pthread_join(a->thread, NULL);
    loop_del_fd(a->loop, a->fd);
    close(a->fd);
    a->fd = -1;
    loop_destroy(a->loop);
    free(a->conns);
    free(a);
}
