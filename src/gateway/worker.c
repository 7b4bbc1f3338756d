/* The worker process: one loop thread per inherited listening socket (accept, then conn.c and
 * proxy.c do the rest), an admin thread, the heartbeat into the supervisor's shared block, and
 * the graceful stop (SIGTERM: stop accepting, drain in-flight requests up to drain_timeout, close
 * idle keep-alive connections, exit 0). Not the supervisor: it never forks nor opens listeners. */
#include "gateway/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/accesslog.h"
#include "gateway/admin.h"
#include "gateway/conn.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/h2sess.h"
#include "gateway/handoff.h"
#include "gateway/route.h"
#include "gateway/statring.h"
#include "gateway/tunnel.h"
#include "gateway/upstream.h"
#include "net/sock.h"
#include "net/tls.h"
#include "version.h"

#define WORKER_TICK_MS 250
#define WORKER_DRAIN_POLL_MS 50
/* Draining: an idle kept-alive connection is read this long for a next request (answered with
 * Connection: close) before it is closed (bounded by drain_timeout). */
#define WORKER_IDLE_GRACE_MS 1000

/* ---- accept ---- */

/* The TLS context of the listener <fd> of <th> (thread t's socket of address a), NULL: plain. */
static struct tls_server *worker__listener_tls(const struct gwthread *th, int fd)
{
    for (size_t a = 0; a < th->nlisten_fds; a++)
        if (th->listen_fds[a] == fd)
            return th->sh->tls[a];
    return NULL;
}

static void worker__on_accept(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)events;
    struct gwthread *th = arg;
    struct gw_shared *sh = th->sh;
    int64_t max = sh->cfg->server.max_connections;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t slen = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN) {
                static struct log_limit accept_lim; // EMFILE comes in bursts: a line a second
                ag_log_limited(AG_LOG_WARN, &accept_lim, "accept: %s", strerror(errno));
            }
            /* EMFILE and friends: the tick retries, the kernel queue holds the clients */
            return;
        }
        metrics_counter_inc(th->ms, sh->ids.conns_accepted);
        if (max > 0 && atomic_load_explicit(&sh->conns, memory_order_relaxed) >= max) {
            /* over server.max_connections: accept and close at once, so the client gets a
             * clear refusal instead of waiting in the backlog */
            metrics_counter_inc(th->ms, sh->ids.conns_rejected);
            sock_set_linger0(cfd);
            close(cfd);
            continue;
        }
        atomic_fetch_add_explicit(&sh->conns, 1, memory_order_relaxed);
        sock_set_nodelay(cfd);
        char ip[INET6_ADDRSTRLEN] = "-";
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
        conn_accept(th, cfd, ip, worker__listener_tls(th, fd));
    }
}

/* The protocols offered by ALPN on TLS listeners, in order of preference. */
static const char *const worker_alpn[] = {"h2", "http/1.1", NULL};
static const char *const worker_alpn_h1[] = {"http/1.1", NULL}; // http2.enabled: false

static struct tls_server *worker__tls_create(const struct gw_listen_tls *t, bool h2, char *err,
                                             size_t errlen)
{
    struct tls_server_cert *cs = xcalloc(t->ncerts, sizeof(*cs));
    for (size_t i = 0; i < t->ncerts; i++)
        cs[i] = (struct tls_server_cert){t->certs[i].cert, t->certs[i].key};
    struct tls_server_opts o = {
        .certs = cs,
        .ncerts = t->ncerts,
        .client_ca = t->client_ca,
        .client_optional = t->verify_client == 1,
        .min_version = t->min_version == 1 ? 13 : 12,
        .ciphers = t->ciphers,
        .alpn = h2 ? worker_alpn : worker_alpn_h1,
        .tickets = t->session_tickets,
        .ticket_rotate_s = (unsigned)(t->ticket_rotation_ms / 1000),
        .session_cache = (long)t->session_cache,
    };
    struct tls_server *s = tls_server_create(&o, err, errlen);
    free(cs);
    return s;
}

/* ---- heartbeat, counters, drain ---- */

static void worker__publish(struct gwthread *th)
{
    struct gw_shared *sh = th->sh;
    /* the supervisor watches one slot per listening socket; this thread owns some of them */
    for (size_t i = 0; i < th->nlisten_fds; i++)
        atomic_store_explicit(&sh->shm->ticks[th->tick_slots[i]], loop_ticks(th->loop) + 1,
                              memory_order_relaxed);
    struct loop_poll_stats polls, *was = &th->polls_published;
    loop_busy_poll_stats(th->loop, &polls);
    metrics_counter_add(th->ms, sh->ids.busy_poll_event, polls.hits - was->hits);
    metrics_counter_add(th->ms, sh->ids.busy_poll_sleep, polls.misses - was->misses);
    metrics_counter_add(th->ms, sh->ids.busy_poll_time, polls.spent_us - was->spent_us);
    *was = polls;
    uint64_t delta = th->requests - th->requests_published;
    if (delta > 0) {
        th->requests_published = th->requests;
        uint64_t total = atomic_fetch_add(&sh->shm->requests, delta) + delta;
        if (sh->max_requests > 0 && total >= sh->max_requests &&
            atomic_load(&sh->shm->want_recycle) == 0) {
            atomic_store(&sh->shm->want_recycle, 1);
            ag_log(AG_LOG_INFO, "served %llu requests (max_requests %llu): asking for a recycle",
                   (unsigned long long)total, (unsigned long long)sh->max_requests);
        }
    }
}

static uint64_t worker__alog_flush_ms(const struct gw_config *cfg)
{
    return cfg->logging.access_flush_ms ? cfg->logging.access_flush_ms : 1000;
}

/* logging.access_flush: buffered lines reach the logger thread at least this often */
static void worker__on_alog_timer(struct loop *loop, void *arg)
{
    struct gwthread *th = arg;
    accesslog_flush(th->alog);
    loop_timer_start(loop, &th->alog_timer, worker__alog_flush_ms(th->sh->cfg));
}

static void worker__on_tick(struct loop *loop, void *arg)
{
    struct gwthread *th = arg;
    worker__publish(th);
    conn_trim(th); // spare conns and blocks above the need go back, RSS with them
    /* a listener that hit EMFILE gets no new edge: poll it while there is room again */
    for (size_t i = 0; i < th->nlisten_fds; i++)
        if (th->listen_fds[i] >= 0)
            worker__on_accept(loop, th->listen_fds[i], th, LOOP_READ);
    /* periodic, so an idle loop still ticks and the watchdog does not kill a healthy worker */
    loop_timer_start(loop, &th->tick, WORKER_TICK_MS);
}

static void worker__on_drain_timer(struct loop *loop, void *arg)
{
    struct gwthread *th = arg;
    conn_close_idle(th);
    h2sess_drain(th); // GOAWAY: streams under way finish, no new ones
    if (th->nconns == 0 || loop_now_ms(loop) >= th->drain_deadline_ms) {
        if (th->nconns > 0)
            ag_log(AG_LOG_WARN, "drain timeout: closing %zu connections still busy", th->nconns);
        while (th->active != NULL)
            conn_close(th->active);
        h2sess_close_all(th);
        tunnel_close_all(th); // a tunnel has no way to say "finish": it ends at the deadline
        loop_stop(loop);
        return;
    }
    loop_timer_start(loop, &th->drain_timer, WORKER_DRAIN_POLL_MS);
}

/* Posted to every loop by the signal thread. */
static void worker__drain_task(struct loop *loop, void *arg)
{
    struct gwthread *th = arg;
    if (th->draining)
        return;
    th->draining = true;
    for (size_t i = 0; i < th->nlisten_fds; i++) {
        if (th->listen_fds[i] < 0)
            continue;
        loop_del_fd(loop, th->listen_fds[i]);
        close(th->listen_fds[i]); // our copy only: the supervisor keeps its own for the next worker
        th->listen_fds[i] = -1;
    }
    th->drain_deadline_ms = loop_now_ms(loop) + th->sh->cfg->workers.drain_timeout_ms;
    uint64_t grace = th->sh->cfg->workers.drain_timeout_ms;
    th->drain_idle_until_ms = loop_now_ms(loop) + (grace < WORKER_IDLE_GRACE_MS ? grace : WORKER_IDLE_GRACE_MS);
    loop_timer_init(&th->drain_timer, worker__on_drain_timer, th);
    worker__on_drain_timer(loop, th);
}

/* ---- threads ---- */

static pthread_mutex_t worker_start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_start_cond = PTHREAD_COND_INITIALIZER;
static size_t worker_started;

static void *worker__thread(void *arg)
{
    struct gwthread *th = arg;
    struct gw_shared *sh = th->sh;
    th->ms = metrics_slot_get(sh->metrics);
    th->alog = sh->alog ? accesslog_writer_create(sh->alog) : NULL;
    if (th->alog != NULL) {
        accesslog_writer_set_batch(th->alog, (size_t)sh->cfg->logging.access_buffer);
        loop_timer_init(&th->alog_timer, worker__on_alog_timer, th);
        loop_timer_start(th->loop, &th->alog_timer, worker__alog_flush_ms(sh->cfg));
    }
    th->npools = upstream_set_count(sh->upstreams);
    th->pools = xcalloc(th->npools ? th->npools : 1, sizeof(*th->pools));
    for (size_t i = 0; i < th->npools; i++)
        th->pools[i] = upool_create(th->loop, upstream_set_at(sh->upstreams, i), th->ms);
    th->rid_seed = ((uint64_t)getpid() << 32) ^ clock_wall_ms() ^ ((uint64_t)th->index << 56);
    th->date_sec = -1;
    for (size_t i = 0; i < th->nlisten_fds; i++)
        if (loop_add_fd(th->loop, th->listen_fds[i], LOOP_READ, worker__on_accept, th) == -1)
            ag_log(AG_LOG_ERROR, "thread %u: cannot watch listener %d: %s", th->index,
                   th->listen_fds[i], strerror(errno));
    loop_timer_init(&th->tick, worker__on_tick, th);
    loop_timer_start(th->loop, &th->tick, WORKER_TICK_MS);
    filter_thread_start(th);
    worker__publish(th);
    pthread_mutex_lock(&worker_start_lock);
    worker_started++;
    pthread_cond_broadcast(&worker_start_cond);
    pthread_mutex_unlock(&worker_start_lock);

    loop_run(th->loop);

    while (th->active != NULL)
        conn_close(th->active);
    h2sess_close_all(th);
    tunnel_close_all(th);
    loop_timer_stop(th->loop, &th->tick);
    if (th->alog != NULL)
        loop_timer_stop(th->loop, &th->alog_timer);
    filter_thread_stop(th);
    loop_run_once(th->loop, 0); // deferred frees and pool closes
    worker__publish(th);
    for (size_t i = 0; i < th->npools; i++)
        upool_destroy(th->pools[i]);
    loop_run_once(th->loop, 0);
    h2sess_thread_stop(th); // the free stream objects (they hold blocks conn_free_all frees)
    conn_free_all(th);
    buf_deinit(&th->scratch);
    accesslog_writer_destroy(th->alog);
    th->alog = NULL;
    return NULL;
}

static void worker__register_metrics(struct gw_shared *sh)
{
    struct metrics *m = sh->metrics;
    const struct gw_config *cfg = sh->cfg;
    struct gw_metric_ids *ids = &sh->ids;
    const char *l_dur[] = {"http_route", "http_request_method", "http_response_status_code", NULL};
    ids->req_duration = metrics_family(m, METRICS_HISTOGRAM, "http_server_request_duration_seconds",
                                       "Duration of HTTP server requests.", l_dur);
    const char *l_rs[] = {"route", "status_class", NULL};
    ids->requests = metrics_family(m, METRICS_COUNTER, "apigate_requests_total",
                                   "Requests answered, by route and status class.", l_rs);
    const char *l_r[] = {"route", NULL};
    ids->route_duration = metrics_family(m, METRICS_HISTOGRAM,
                                         "apigate_route_request_duration_seconds",
                                         "Request duration by route (all methods and statuses).",
                                         l_r);
    ids->ttfb = metrics_family(m, METRICS_HISTOGRAM, "apigate_time_to_first_byte_seconds",
                               "Request start to the first byte of the upstream response head.",
                               l_r);
    const char *l_sr[] = {"route", "reason", NULL};
    ids->shed = metrics_family(m, METRICS_COUNTER, "apigate_shed_requests_total",
                               "Requests refused by admission control (503), by reason.", l_sr);
    ids->upstream_errors = metrics_family(m, METRICS_COUNTER, "apigate_upstream_errors_total",
                                          "Requests that failed upstream (502/503/504), by reason.",
                                          l_sr);
    int f = metrics_family(m, METRICS_GAUGE, "apigate_connections_open",
                           "Open client connections.", NULL);
    ids->conns_open = metrics_series1(m, f, NULL);
    f = metrics_family(m, METRICS_COUNTER, "apigate_connections_accepted_total",
                       "Client connections accepted.", NULL);
    ids->conns_accepted = metrics_series1(m, f, NULL);
    f = metrics_family(m, METRICS_COUNTER, "apigate_connections_rejected_total",
                       "Client connections closed at once: over server.max_connections.", NULL);
    ids->conns_rejected = metrics_series1(m, f, NULL);
    const char *l_res[] = {"result", NULL};
    f = metrics_family(m, METRICS_COUNTER, "apigate_tls_handshakes_total",
                       "TLS handshakes on client listeners: full, resumed (ticket or session "
                       "cache), failed (protocol error, refused client certificate, timeout "
                       "excluded), plain_http (an HTTP request on a TLS listener, answered 400).",
                       l_res);
    ids->tls_full = metrics_series1(m, f, "full");
    ids->tls_resumed = metrics_series1(m, f, "resumed");
    ids->tls_failed = metrics_series1(m, f, "failed");
    ids->tls_plain_http = metrics_series1(m, f, "plain_http");
    f = metrics_family(m, METRICS_COUNTER, "apigate_http2_sessions_total",
                       "HTTP/2 client sessions started (h2c prior knowledge or ALPN h2).", NULL);
    ids->h2_sessions = metrics_series1(m, f, NULL);
    f = metrics_family(m, METRICS_COUNTER, "apigate_http2_streams_total",
                       "HTTP/2 request streams started.", NULL);
    ids->h2_streams = metrics_series1(m, f, NULL);
    const char *l_reason[] = {"reason", NULL};
    f = metrics_family(m, METRICS_COUNTER, "apigate_http2_refused_total",
                       "HTTP/2 abuse bounded: rapid_reset (GOAWAY ENHANCE_YOUR_CALM), "
                       "protocol_error (GOAWAY for a broken peer), header_limit (stream reset "
                       "for headers over http2.max_header_list_size: HPACK bombs), "
                       "control_flood (over 1000 PING/SETTINGS answers queued: closed), "
                       "settings_flood (a SETTINGS frame of over 32 entries), "
                       "continuation_flood (a header block in too many CONTINUATION frames), "
                       "max_streams (a stream over http2.max_concurrent_streams: REFUSED_STREAM).",
                       l_reason);
    ids->h2_calm = metrics_series1(m, f, "rapid_reset");
    ids->h2_proto = metrics_series1(m, f, "protocol_error");
    ids->h2_hdr_limit = metrics_series1(m, f, "header_limit");
    ids->h2_flood_ctl = metrics_series1(m, f, "control_flood");
    ids->h2_flood_settings = metrics_series1(m, f, "settings_flood");
    ids->h2_flood_cont = metrics_series1(m, f, "continuation_flood");
    ids->h2_max_streams = metrics_series1(m, f, "max_streams");
    const char *l_kind[] = {"kind", NULL};
    f = metrics_family(m, METRICS_COUNTER, "apigate_http2_timeouts_total",
                       "HTTP/2 sessions closed by a timeout: idle (no stream for "
                       "server.keepalive_timeout), send (the socket took nothing for "
                       "server.send_timeout), flow_control (a response waited "
                       "server.send_timeout on a window the client kept shut: GOAWAY "
                       "ENHANCE_YOUR_CALM), body (a stream's request body stopped coming for "
                       "server.client_body_timeout: 408, or a reset once answered).",
                       l_kind);
    ids->h2_to_idle = metrics_series1(m, f, "idle");
    ids->h2_to_send = metrics_series1(m, f, "send");
    ids->h2_to_window = metrics_series1(m, f, "flow_control");
    ids->h2_to_body = metrics_series1(m, f, "body");
    f = metrics_family(m, METRICS_GAUGE, "apigate_tunnels_open",
                       "Upgrade tunnels (WebSocket...) open: client and upstream joined after a "
                       "101.", NULL);
    ids->tunnels_open = metrics_series1(m, f, NULL);
    f = metrics_family(m, METRICS_COUNTER, "apigate_tunnels_total",
                       "Upgrade tunnels started (upstream answered 101).", NULL);
    ids->tunnels_total = metrics_series1(m, f, NULL);
    const char *l_dir[] = {"direction", NULL};
    f = metrics_family(m, METRICS_COUNTER, "apigate_tunnel_bytes_total",
                       "Bytes moved through Upgrade tunnels: upstream (client to upstream), "
                       "downstream (upstream to client, the 101 head included).", l_dir);
    ids->tunnel_bytes_up = metrics_series1(m, f, "upstream");
    ids->tunnel_bytes_down = metrics_series1(m, f, "downstream");
    f = metrics_family(m, METRICS_GAUGE, "apigate_tunnel_buffered_bytes",
                       "Bytes held by Upgrade tunnels, read from one side and not yet taken by "
                       "the other (at most 2 x tunnel.buffer per tunnel).", NULL);
    ids->tunnel_buffered = metrics_series1(m, f, NULL);
    f = metrics_family(m, METRICS_COUNTER, "apigate_tunnels_closed_total",
                       "Upgrade tunnels ended, by reason: closed (both sides ended), idle_timeout, "
                       "max_duration, error (reset or I/O error), drain (closed at the drain "
                       "deadline of a reload or stop).", l_reason);
    for (size_t i = 0; i < TUNNEL_END_COUNT; i++)
        ids->tunnel_end[i] = metrics_series1(m, f, tunnel_end_names[i]);
    const char *l_result[] = {"result", NULL};
    f = metrics_family(m, METRICS_COUNTER, "apigate_loop_busy_polls_total",
                       "Busy polls of the loop threads (workers.busy_poll) by how they ended: "
                       "event (an event came within the window: no sleep, no wake-up), sleep "
                       "(the window passed and the thread slept).",
                       l_result);
    ids->busy_poll_event = metrics_series1(m, f, "event");
    ids->busy_poll_sleep = metrics_series1(m, f, "sleep");
    f = metrics_family(m, METRICS_COUNTER, "apigate_loop_busy_poll_seconds_total",
                       "Time the loop threads spent busy polling (workers.busy_poll), time they "
                       "would otherwise have slept; wall clock: on a CPU of their own it is CPU "
                       "time, on a shared one other tasks ran within it.",
                       NULL);
    ids->busy_poll_time = metrics_series1(m, f, NULL);
    f = metrics_family(m, METRICS_COUNTER_SET, "apigate_worker_restarts_total",
                       "Worker processes restarted by the supervisor (crash, hang, recycle).",
                       NULL);
    ids->worker_restarts = metrics_series1(m, f, NULL);
    f = metrics_family(m, METRICS_GAUGE_SET, "apigate_uptime_seconds",
                       "Seconds since the supervisor started.", NULL);
    ids->uptime = metrics_series1(m, f, NULL);
    const char *l_v[] = {"version", NULL};
    f = metrics_family(m, METRICS_GAUGE_SET, "apigate_build_info", "Build information.", l_v);
    ids->build_info = metrics_series1(m, f, AG_VERSION);
    metrics_gauge_set(m, ids->build_info, 1);
    const char *v_global[] = {"", "global_limit", NULL};
    ids->shed_global = metrics_series(m, ids->shed, v_global);

    static const char *const classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    /* one more pseudo-route, label "", for requests no route matched (404, 400) */
    for (size_t i = 0; i <= cfg->nroutes; i++) {
        struct gw_route_rt *rt = &sh->rt[i];
        rt->label = i < cfg->nroutes ? cfg->routes[i].match : "";
        rt->route_duration = metrics_series1(m, ids->route_duration, rt->label);
        rt->ttfb = metrics_series1(m, ids->ttfb, rt->label);
        const char *vs[] = {rt->label, "route_limit", NULL};
        rt->shed = metrics_series(m, ids->shed, vs);
        for (size_t k = 0; k < 6; k++) {
            const char *v[] = {rt->label, classes[k], NULL};
            rt->status_class[k] = metrics_series(m, ids->requests, v);
        }
        const char *vt[] = {rt->label, "timeout", NULL};
        const char *vc[] = {rt->label, "connect", NULL};
        const char *vp[] = {rt->label, "pool", NULL};
        const char *vx[] = {rt->label, "protocol", NULL};
        rt->err_timeout = metrics_series(m, ids->upstream_errors, vt);
        rt->err_connect = metrics_series(m, ids->upstream_errors, vc);
        rt->err_pool = metrics_series(m, ids->upstream_errors, vp);
        rt->err_proto = metrics_series(m, ids->upstream_errors, vx);
        rt->pool_wait = METRICS_REF_NONE; // the pool records it (apigate_pool_wait_seconds)
    }
}

static struct route_table *worker__routes(const struct gw_config *cfg)
{
    const char **pats = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*pats));
    enum route_kind *kinds = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*kinds));
    for (size_t i = 0; i < cfg->nroutes; i++) {
        pats[i] = cfg->routes[i].path;
        kinds[i] = cfg->routes[i].kind == GW_MATCH_EXACT || cfg->routes[i].exact ? ROUTE_EXACT
                   : cfg->routes[i].kind == GW_MATCH_GLOB                         ? ROUTE_GLOB
                                                                                  : ROUTE_PREFIX;
    }
    char err[256];
    struct route_table *t = route_table_create_kinds(pats, kinds, cfg->nroutes, err, sizeof(err));
    if (t == NULL)
        ag_log(AG_LOG_ERROR, "routes: %s", err);
    free(pats);
    free(kinds);
    return t;
}

int worker_run(const struct worker_ctx *ctx)
{
    const struct gw_config *cfg = ctx->cfg;
    int rc = 1;
    char err[512];
    log_set_proc("worker");
    signal(SIGPIPE, SIG_IGN);
    /* Signals go to one thread (this one, through sigtimedwait); the loop threads never see
     * them, so no system call of theirs is interrupted. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2); // the supervisor asks for the hand-over (handoff.h)
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct gw_shared *sh = xcalloc(1, sizeof(*sh));
    sh->cfg = cfg;
    sh->shm = ctx->shm;
    sh->max_requests = ctx->max_requests;
    sh->start_ms = clock_now_ms();
    /* The supervisor passes one socket per (address, thread), address-major:
     * listen_fds[a * threads + t]. Thread t serves every address's socket t. */
    size_t nthreads = cfg->workers.threads > 0 ? (size_t)cfg->workers.threads : ctx->nlisten;
    if (nthreads == 0 || ctx->nlisten % nthreads != 0 ||
        ctx->nlisten / nthreads > WORKER_LISTEN_MAX)
        nthreads = ctx->nlisten; // unexpected layout: one thread per socket still works
    size_t naddrs = nthreads ? ctx->nlisten / nthreads : 0;
    sh->nthreads = nthreads;
    sh->rt = xcalloc(cfg->nroutes + 1, sizeof(*sh->rt));
    sh->metrics = metrics_create();
    worker__register_metrics(sh);
    sh->routes = worker__routes(cfg);
    if (sh->routes == NULL)
        goto out_metrics;
    sh->upstreams = upstream_set_create(cfg, sh->metrics, nthreads, err, sizeof(err));
    if (sh->upstreams == NULL) {
        ag_log(AG_LOG_ERROR, "upstreams: %s", err);
        goto out_routes;
    }
    if (upstream_set_start(sh->upstreams, err, sizeof(err)) == -1) {
        ag_log(AG_LOG_ERROR, "upstreams: %s", err);
        goto out_upstreams;
    }
    const char *al = cfg->logging.access_log;
    if (al != NULL && strcmp(al, "off") != 0 && al[0] != '\0') {
        sh->alog = accesslog_create(al, cfg->logging.access_format == GW_FMT_JSON, err,
                                    sizeof(err));
        if (sh->alog == NULL)
            ag_log(AG_LOG_ERROR, "%s (access log off)", err);
    }
    if (ctx->nlisten == 0 || ctx->nlisten > WORKER_MAX_THREADS) {
        ag_log(AG_LOG_ERROR, "worker: %zu listening sockets (1..%d expected)", ctx->nlisten,
               WORKER_MAX_THREADS);
        goto out_alog;
    }
    /* TLS contexts, one per TLS listener, loaded by every new worker: a reload (SIGHUP) reads
     * the certificate files again for new connections, while the old worker's connections keep
     * the old contexts until they end. */
    sh->tls = xcalloc(cfg->nlisten > 0 ? cfg->nlisten : 1, sizeof(*sh->tls));
    for (size_t a = 0; a < cfg->nlisten && a < naddrs; a++) {
        if (!cfg->listen[a].tls.enabled)
            continue;
        sh->tls[a] = worker__tls_create(&cfg->listen[a].tls, cfg->http2.enabled, err, sizeof(err));
        if (sh->tls[a] == NULL) {
            ag_log(AG_LOG_ERROR, "listen %s: tls: %s", cfg->listen[a].spec, err);
            goto out_tls;
        }
    }

    filter_init(sh); // the cache and resilience layers, and each route's filter chain
    sh->ring = xmalloc(sizeof(*sh->ring));
    statring_init(sh->ring);
    /* the predecessor's cache, counters and history, before anything is served or scraped */
    struct handoff *hin = handoff_read(sh, ctx->handoff_in_fd, ctx->handoff_in_len);
    sh->threads = xcalloc(nthreads, sizeof(*sh->threads));
    pthread_t *tids = xcalloc(nthreads, sizeof(*tids));
    size_t started = 0;
    worker_started = 0;
    for (size_t i = 0; i < nthreads; i++) {
        struct gwthread *th = xcalloc(1, sizeof(*th));
        th->index = (unsigned)i;
        th->sh = sh;
        for (size_t a = 0; a < naddrs; a++) {
            th->tick_slots[a] = a * nthreads + i;
            th->listen_fds[a] = ctx->listen_fds[a * nthreads + i];
        }
        th->nlisten_fds = naddrs;
        th->loop = loop_create();
        if (th->loop == NULL) {
            ag_log(AG_LOG_ERROR, "loop_create: %s", strerror(errno));
            free(th);
            break;
        }
        loop_set_busy_poll(th->loop, (uint32_t)cfg->workers.busy_poll_us);
        sh->threads[i] = th;
        if (pthread_create(&tids[i], NULL, worker__thread, th) != 0) {
            ag_log(AG_LOG_ERROR, "cannot start loop thread %zu", i);
            loop_destroy(th->loop);
            free(th);
            sh->threads[i] = NULL;
            break;
        }
        started++;
    }
    pthread_mutex_lock(&worker_start_lock);
    while (worker_started < started)
        pthread_cond_wait(&worker_start_cond, &worker_start_lock);
    pthread_mutex_unlock(&worker_start_lock);
    struct admin *admin = NULL;
    if (started == nthreads) {
        if (ctx->admin_fd >= 0)
            admin = admin_start(sh, ctx->admin_fd);
        atomic_store(&ctx->shm->ready, 1);
        ag_log(AG_LOG_INFO, "worker %u ready: %zu loop threads, %zu routes, %zu upstreams",
               ctx->generation, started, cfg->nroutes, upstream_set_count(sh->upstreams));
        rc = 0;
        /* Wait for a stop signal. SIGHUP is the supervisor's business (it starts a new worker). */
        for (;;) {
            struct timespec ts = {.tv_sec = 1, .tv_nsec = 0};
            int sig = sigtimedwait(&set, NULL, &ts);
            /* the predecessor's final totals, once it has drained */
            handoff_poll(hin, cfg->workers.drain_timeout_ms + 10000);
            if (sig == SIGUSR2 &&
                atomic_load(&ctx->shm->handoff_state) == WORKER_HANDOFF_REQUESTED) {
                int64_t n = ctx->handoff_out_fd >= 0 ? handoff_write(sh, ctx->handoff_out_fd) : -1;
                atomic_store(&ctx->shm->handoff_len, n > 0 ? (uint64_t)n : 0);
                atomic_store(&ctx->shm->handoff_state,
                             n > 0 ? WORKER_HANDOFF_WRITTEN : WORKER_HANDOFF_FAILED);
                continue;
            }
            if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
                ag_log(AG_LOG_INFO, "%s: draining (up to %llu ms)", strsignal(sig),
                       (unsigned long long)cfg->workers.drain_timeout_ms);
                break;
            }
        }
    }
    atomic_store(&sh->draining, true);
    for (size_t i = 0; i < started; i++)
        loop_post(sh->threads[i]->loop, worker__drain_task, sh->threads[i]);
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    admin_stop(admin);
    for (size_t i = 0; i < started; i++) {
        free(sh->threads[i]->pools);
        loop_destroy(sh->threads[i]->loop);
        free(sh->threads[i]);
    }
    free(tids);
    free(sh->threads);
    /* a successor holds our snapshot: give it what we served since (before the metrics go) */
    if (atomic_load(&ctx->shm->handoff_state) == WORKER_HANDOFF_WRITTEN)
        handoff_write_final(sh, ctx->handoff_out_fd);
    handoff_destroy(hin);
    statring_deinit(sh->ring);
    free(sh->ring);
    sh->ring = NULL;
    filter_deinit(sh);
    ag_log(AG_LOG_INFO, "worker %u stopped after %llu requests", ctx->generation,
           (unsigned long long)atomic_load(&ctx->shm->requests));
out_tls:
    for (size_t a = 0; sh->tls != NULL && a < cfg->nlisten; a++)
        tls_server_destroy(sh->tls[a]);
    free(sh->tls);
out_alog:
    accesslog_destroy(sh->alog);
out_upstreams:
    upstream_set_destroy(sh->upstreams);
out_routes:
    route_table_destroy(sh->routes);
out_metrics:
    metrics_destroy(sh->metrics);
    free(sh->rt);
    free(sh);
    return rc;
}
