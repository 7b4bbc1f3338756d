/* Resilience of the request path as two request filters (see resil.h): resil_filter builds one
 * breaker / retry budget / adaptive limit per route from the config, admits each request before
 * it goes upstream, feeds them the outcome of each exchange and asks for retries (FILTER_RETRY:
 * the proxy waits out the backoff and sends again); fallback_filter writes a route's fallback
 * answer. Both keep their metrics. The mechanisms live in breaker.c, retry.c and adaptive.c,
 * which know nothing of requests. */
#include "gateway/resil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/adaptive.h"
#include "gateway/breaker.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/req.h"
#include "gateway/retry.h"
#include "http/h1write.h"
#include "http/headers.h"

#define RESIL_BUDGET_WINDOW_MS 10000 /* window of the retry budget (Envoy uses active requests) */
#define RESIL_BACKOFF_CAP_MS 2000

struct resil_route {
    const struct gw_route *gr;
    const char *label; // route pattern: the metric label
    const char *upstream;
    struct breaker *br;          // NULL: no breaker
    bool br_owner;               // false: the upstream's shared breaker, owned by another route
    struct retry_on br_fail;     // breaker.failure_statuses (when br_custom)
    bool br_custom;              // false: every 5xx is a failure
    struct retry_budget *budget; // NULL: no retries
    struct retry_on on;
    struct adaptive *ad;     // NULL: no adaptive limit
    metrics_ref m_state;     // apigate_breaker_state{route,upstream}
    metrics_ref m_to[3];     // apigate_breaker_transitions_total{route,to}
    metrics_ref m_rejected;  // apigate_breaker_rejected_total{route}
    metrics_ref m_retries;   // apigate_retries_total{route}
    metrics_ref m_exhausted; // apigate_retry_budget_exhausted_total{route}
    metrics_ref m_fallbacks; // apigate_fallback_responses_total{route}
    metrics_ref m_limit;     // apigate_adaptive_limit{route}
    metrics_ref m_shed;      // apigate_shed_requests_total{route,reason="adaptive_limit"}
};

struct resil {
    struct gw_shared *sh;
    size_t nroutes;
    struct resil_route *routes;
};

/* Per-request state of the resil filter (zero is the idle state). */
struct resil_req {
    bool ticket_held; // admitted by the breaker, outcome not yet recorded
    bool limited;     // admitted by the adaptive limit: one slot held
    struct breaker_ticket ticket;
    unsigned retries;   // retries done for this request
    uint64_t t_sent_us; // first attempt started (adaptive latency sample)
};

/* xorshift64* per thread: jitter only needs to differ between clients, not to be secret */
static _Thread_local uint64_t resil_rng;

static uint64_t resil__rand(void)
{
    if (resil_rng == 0)
        resil_rng = clock_now_us() * 0x9e3779b97f4a7c15ull | 1;
    resil_rng ^= resil_rng >> 12;
    resil_rng ^= resil_rng << 25;
    resil_rng ^= resil_rng >> 27;
    return resil_rng * 0x2545f4914f6cdd1dull;
}

static struct resil *resil_create(struct gw_shared *sh)
{
    const struct gw_config *cfg = sh->cfg;
    struct metrics *m = sh->metrics;
    struct resil *r = xcalloc(1, sizeof(*r));
    r->sh = sh;
    r->nroutes = cfg->nroutes;
    r->routes = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*r->routes));
    const char *l_ru[] = {"route", "upstream", NULL};
    const char *l_rt[] = {"route", "to", NULL};
    const char *l_r[] = {"route", NULL};
    int f_state = -1, f_trans = -1, f_rej = -1, f_retry = -1, f_exh = -1, f_fb = -1, f_lim = -1;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct gw_route *gr = &cfg->routes[i];
        struct resil_route *rr = &r->routes[i];
        rr->gr = gr;
        rr->label = gr->match;
        rr->upstream = cfg->upstreams[gr->upstream_index].name;
        rr->m_state = rr->m_rejected = rr->m_retries = rr->m_exhausted = METRICS_REF_NONE;
        rr->m_fallbacks = rr->m_limit = rr->m_shed = METRICS_REF_NONE;
        for (int k = 0; k < 3; k++)
            rr->m_to[k] = METRICS_REF_NONE;
        if (gr->breaker.enabled) {
            struct breaker_conf bc = {
                .window_ms = gr->breaker.window_ms,
                .buckets = (unsigned)gr->breaker.buckets,
                .error_threshold = gr->breaker.error_threshold,
                .min_requests = (uint64_t)gr->breaker.min_requests,
                .open_for_ms = gr->breaker.open_for_ms,
                .probes = (unsigned)gr->breaker.half_open_requests,
                .successes = (unsigned)gr->breaker.half_open_requests,
            };
            /* scope upstream: the first route of the upstream that asks creates the breaker,
             * the others share it (one verdict about one upstream) */
            for (size_t k = 0; k < i && gr->breaker.scope == GW_BREAKER_UPSTREAM; k++) {
                const struct gw_route *o = &cfg->routes[k];
                if (r->routes[k].br != NULL && o->breaker.scope == GW_BREAKER_UPSTREAM &&
                    o->upstream_index == gr->upstream_index) {
                    rr->br = r->routes[k].br;
                    break;
                }
            }
            rr->br_owner = rr->br == NULL;
            if (rr->br == NULL)
                rr->br = breaker_create(&bc);
            if (gr->breaker.failure_statuses.n > 0) {
                const char *bad = NULL;
                if (retry_on_parse((const char *const *)gr->breaker.failure_statuses.v,
                                   gr->breaker.failure_statuses.n, &rr->br_fail, &bad) == -1)
                    ag_log(AG_LOG_WARN,
                           "route %s: breaker.failure_statuses: \"%s\" is not a 5xx status; "
                           "ignored",
                           rr->label, bad);
                rr->br_custom = true;
            }
            if (f_state < 0) {
                f_state =
                    metrics_family(m, METRICS_GAUGE_SET, "apigate_breaker_state",
                                   "Circuit breaker state: 0 closed, 1 open, 2 half-open.", l_ru);
                f_trans =
                    metrics_family(m, METRICS_COUNTER, "apigate_breaker_transitions_total",
                                   "Circuit breaker state changes, by the state entered.", l_rt);
                f_rej =
                    metrics_family(m, METRICS_COUNTER, "apigate_breaker_rejected_total",
                                   "Requests not sent upstream because the breaker was open.", l_r);
            }
            const char *vs[] = {rr->label, rr->upstream, NULL};
            rr->m_state = metrics_series(m, f_state, vs);
            metrics_gauge_set(m, rr->m_state, BREAKER_CLOSED);
            for (int k = 0; k < 3; k++) {
                const char *vt[] = {rr->label, breaker_state_name(k), NULL};
                rr->m_to[k] = metrics_series(m, f_trans, vt);
            }
            rr->m_rejected = metrics_series1(m, f_rej, rr->label);
        }
        if (gr->retry.attempts > 0) {
            const char *bad = NULL;
            if (retry_on_parse((const char *const *)gr->retry.on.v, gr->retry.on.n, &rr->on,
                               &bad) == -1)
                ag_log(AG_LOG_WARN, "route %s: retry.on: unknown condition \"%s\" ignored",
                       rr->label, bad);
            rr->budget = retry_budget_create(gr->retry.budget, RESIL_BUDGET_WINDOW_MS, 10);
            if (f_retry < 0) {
                f_retry = metrics_family(m, METRICS_COUNTER, "apigate_retries_total",
                                         "Retries sent upstream.", l_r);
                f_exh = metrics_family(m, METRICS_COUNTER, "apigate_retry_budget_exhausted_total",
                                       "Retries not sent because the retry budget was spent.", l_r);
            }
            rr->m_retries = metrics_series1(m, f_retry, rr->label);
            rr->m_exhausted = metrics_series1(m, f_exh, rr->label);
        }
        if (gr->fallback.enabled || gr->breaker.enabled) {
            if (f_fb < 0)
                f_fb = metrics_family(m, METRICS_COUNTER, "apigate_fallback_responses_total",
                                      "Fallback responses written instead of an upstream answer.",
                                      l_r);
            rr->m_fallbacks = metrics_series1(m, f_fb, rr->label);
        }
        if (gr->limit.adaptive) {
            struct adaptive_conf ac;
            adaptive_conf_from_route(gr, &ac);
            rr->ad = adaptive_create(&ac, clock_now_ms());
            if (f_lim < 0)
                f_lim = metrics_family(m, METRICS_GAUGE_SET, "apigate_adaptive_limit",
                                       "Current adaptive concurrency limit of the route.", l_r);
            rr->m_limit = metrics_series1(m, f_lim, rr->label);
            metrics_gauge_set(m, rr->m_limit, adaptive_limit(rr->ad));
            const char *vs[] = {rr->label, "adaptive_limit", NULL};
            rr->m_shed = metrics_series(m, sh->ids.shed, vs);
        }
    }
    return r;
}

static void resil_destroy(struct resil *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nroutes; i++) {
        if (r->routes[i].br_owner)
            breaker_destroy(r->routes[i].br);
        retry_budget_destroy(r->routes[i].budget);
        adaptive_destroy(r->routes[i].ad);
    }
    free(r->routes);
    r->routes = NULL;
    free(r);
}

static struct resil_route *resil__route(const struct gw_req *r)
{
    struct resil *rs = r->th->sh->resil;
    if (rs == NULL || r->route < 0 || (size_t)r->route >= rs->nroutes)
        return NULL;
    return &rs->routes[r->route];
}

/* Logs and counts a transition this thread won (each is seen by exactly one caller). */
static void resil__transition(struct gw_req *r, struct resil_route *rr, int to)
{
    if (to == BREAKER_NO_CHANGE)
        return;
    /* a shared (scope: upstream) breaker changes the state of every route that uses it; the
     * transition is counted once, on the route whose request made it */
    struct resil *res = r->th->sh->resil;
    for (size_t i = 0; i < res->nroutes; i++)
        if (res->routes[i].br == rr->br)
            metrics_gauge_set(r->th->sh->metrics, res->routes[i].m_state, to);
    metrics_counter_inc(r->th->ms, rr->m_to[to]);
    uint64_t req = 0, fails = 0;
    breaker_window(rr->br, loop_now_ms(r->th->loop), &req, &fails);
    enum log_level lvl = to == BREAKER_OPEN ? AG_LOG_WARN : AG_LOG_INFO;
    const char *what = to == BREAKER_OPEN        ? "opened"
                       : to == BREAKER_HALF_OPEN ? "half-open: probing"
                                                 : "closed";
    bool shared = rr->gr->breaker.scope == GW_BREAKER_UPSTREAM;
    ag_log(lvl,
           "circuit breaker %s, route: %s, upstream: %s%s (window: %llu requests, %llu failed)",
           what, rr->label, rr->upstream, shared ? " (shared by its routes)" : "",
           (unsigned long long)req, (unsigned long long)fails);
}

/* Records the request's outcome in its breaker, once. */
static void resil__outcome(struct gw_req *r, struct resil_req *rs, struct resil_route *rr,
                           bool failed)
{
    if (!rs->ticket_held || rr->br == NULL)
        return;
    rs->ticket_held = false;
    int ch;
    breaker_record(rr->br, loop_now_ms(r->th->loop), &rs->ticket, failed, &ch);
    resil__transition(r, rr, ch);
}

/* Releases the adaptive slot; <sample>: the request completed and its latency is a sample. */
static void resil__unlimit(struct gw_req *r, struct resil_req *rs, struct resil_route *rr,
                           bool sample)
{
    if (!rs->limited || rr->ad == NULL)
        return;
    rs->limited = false;
    uint64_t now_us = clock_now_us();
    uint64_t rtt = sample && rs->t_sent_us ? now_us - rs->t_sent_us : 0;
    if (adaptive_release(rr->ad, now_us / 1000, rtt, sample))
        metrics_gauge_set(r->th->sh->metrics, rr->m_limit, adaptive_limit(rr->ad));
}

/* on_request: admission to the upstream. An open breaker refuses (FILTER_ABORT: the filters
 * before this one may still answer, with a stale copy or the route's fallback, else 503); the
 * adaptive limit sheds at once (503). */
static enum filter_verdict resil__on_request(struct gw_req *r, void *st, struct gw_err *err)
{
    struct resil_req *rs = st;
    struct resil_route *rr = resil__route(r);
    if (rr == NULL)
        return FILTER_CONTINUE;
    uint64_t now = loop_now_ms(r->th->loop);
    if (rr->br != NULL && !rs->ticket_held) {
        int ch;
        bool ok = breaker_allow(rr->br, now, &rs->ticket, &ch);
        resil__transition(r, rr, ch);
        if (!ok) {
            /* open: the upstream is not touched */
            metrics_counter_inc(r->th->ms, rr->m_rejected);
            err->status = 503;
            err->code = "circuit_open";
            err->msg = "circuit breaker open: the upstream was not tried";
            err->extra_headers = "Retry-After: 1\r\n";
            err->kind = GW_ERR_LOCAL;
            return FILTER_ABORT;
        }
        rs->ticket_held = true;
    }
    if (rr->ad != NULL && !rs->limited) {
        if (!adaptive_acquire(rr->ad)) {
            /* over the limit: shed at once, before a queue can build in front of the upstream */
            metrics_counter_inc(r->th->ms, rr->m_shed);
            if (rs->ticket_held && rr->br != NULL) {
                breaker_release(rr->br, &rs->ticket);
                rs->ticket_held = false;
            }
            gw_req_respond_error(r, 503, "overloaded", "adaptive concurrency limit reached",
                                 "Retry-After: 1\r\n");
            return FILTER_RESPOND;
        }
        rs->limited = true;
    }
    rs->t_sent_us = clock_now_us();
    if (rr->budget != NULL && rs->retries == 0)
        retry_budget_request(rr->budget, now);
    return FILTER_CONTINUE;
}

/* Whether a failure of an <allowed_kind> may be retried; if so sets r->retry_delay_ms. */
static bool resil__retry(struct gw_req *r, struct resil_req *rs, struct resil_route *rr,
                         bool allowed_kind)
{
    const struct gw_route *gr = rr->gr;
    if (rr->budget == NULL || !allowed_kind || r->head_sent)
        return false;
    if (rs->retries >= (unsigned)gr->retry.attempts)
        return false;
    /* a body was streamed from the client buffer: it cannot be sent twice; nor an Upgrade (the
     * client's first tunnel bytes may wait behind it) */
    if (r->req.body != H1_BODY_NONE || r->upgrade)
        return false;
    if (!retry_idempotent(r->req.method_id) && !gr->retry.non_idempotent)
        return false;
    uint64_t now = loop_now_ms(r->th->loop);
    uint64_t delay = retry_backoff_ms(gr->retry.backoff_ms, rs->retries + 1, RESIL_BACKOFF_CAP_MS,
                                      resil__rand());
    if (r->px.total_deadline_ms && now + delay >= r->px.total_deadline_ms)
        return false; // no time left for another attempt
    if (!retry_budget_take(rr->budget, now)) {
        metrics_counter_inc(r->th->ms, rr->m_exhausted);
        return false;
    }
    rs->retries++;
    metrics_counter_inc(r->th->ms, rr->m_retries);
    r->retry_delay_ms = delay; // the proxy drops the attempt and waits that long
    return true;
}

/* on_error: a retry when the route's retry.on lists the failure, else its outcome is final. */
static enum filter_verdict resil__on_error(struct gw_req *r, void *st, const struct gw_err *err)
{
    struct resil_req *rs = st;
    struct resil_route *rr = resil__route(r);
    if (rr == NULL)
        return FILTER_CONTINUE;
    /* The gateway's own failures (its pool queue timed out or was full, no server with an
     * address, the deadline spent queued) say nothing of the origin: the breaker ticket goes
     * back unjudged, so an overload alone never opens a breaker (nor fails a half-open probe),
     * and only connect failures, timeouts and 5xx of the origin feed it. */
    if ((err->kind == GW_ERR_POOL || err->untried) && rs->ticket_held && rr->br != NULL) {
        breaker_release(rr->br, &rs->ticket);
        rs->ticket_held = false;
    }
    bool kind = false;
    if (err->kind == GW_ERR_CONNECT)
        kind = rr->on.connect_error;
    else if (err->kind == GW_ERR_TIMEOUT)
        kind = rr->on.timeout && !err->head_received;
    else if (err->kind == GW_ERR_PROTO)
        kind = rr->on.reset && !err->got_bytes;
    if (resil__retry(r, rs, rr, kind))
        return FILTER_RETRY;
    resil__outcome(r, rs, rr, true);
    resil__unlimit(r, rs, rr, false);
    return FILTER_CONTINUE;
}

/* on_response_head: a retry when retry.on lists the status (budget left), else the outcome. */
static enum filter_verdict resil__on_response_head(struct gw_req *r, void *st,
                                                   const struct h1_response *res)
{
    struct resil_req *rs = st;
    struct resil_route *rr = resil__route(r);
    if (rr == NULL)
        return FILTER_CONTINUE;
    int status = res->status;
    if (resil__retry(r, rs, rr, retry_on_status(&rr->on, status)))
        return FILTER_RETRY;
    resil__outcome(r, rs, rr,
                   rr->br_custom ? retry_on_status(&rr->br_fail, status) : status >= 500);
    /* the adaptive sample is the time to the response head: the upstream's queue + work */
    resil__unlimit(r, rs, rr, status < 500);
    return FILTER_CONTINUE;
}

/* on_end: releases what the request holds (no outcome when the client went away). */
static void resil__on_end(struct gw_req *r, void *st)
{
    struct resil_req *rs = st;
    struct resil_route *rr = resil__route(r);
    if (rr != NULL) {
        if (rs->ticket_held && rr->br != NULL)
            breaker_release(rr->br, &rs->ticket); // no outcome: the client went away
        resil__unlimit(r, rs, rr, false);
    }
    memset(rs, 0, sizeof(*rs));
}

static void resil__init(struct gw_shared *sh) { sh->resil = resil_create(sh); }

static void resil__deinit(struct gw_shared *sh)
{
    resil_destroy(sh->resil);
    sh->resil = NULL;
}

static bool resil__attach(struct gw_shared *sh, size_t route)
{
    struct resil *res = sh->resil;
    if (res == NULL || route >= res->nroutes)
        return false;
    const struct resil_route *rr = &res->routes[route];
    return rr->br != NULL || rr->budget != NULL || rr->ad != NULL;
}

const struct filter_ops resil_filter = {
    .name = "resil",
    .state_size = sizeof(struct resil_req),
    .init = resil__init,
    .deinit = resil__deinit,
    .attach = resil__attach,
    .on_request = resil__on_request,
    .on_response_head = resil__on_response_head,
    .on_error = resil__on_error,
    .on_end = resil__on_end,
};

/* ---- the fallback answer ---- */

/* on_error: a final failure with nothing sent yet and no stale copy: writes the route's fallback
 * (status, headers, body) and ends the request. */
static enum filter_verdict fallback__on_error(struct gw_req *r, void *st, const struct gw_err *err)
{
    (void)st;
    (void)err;
    struct resil_route *rr = resil__route(r);
    if (rr == NULL || !rr->gr->fallback.enabled || r->head_sent || r->state != GW_REQ_ACTIVE)
        return FILTER_CONTINUE;
    const struct gw_fallback *fb = &rr->gr->fallback;
    if (r->ws_key[0] && fb->status >= 200 && fb->status < 300)
        /* an HTTP/2 extended CONNECT takes any 2xx for "tunnel open" (RFC 8441 §5): a 2xx
         * fallback would start a WebSocket made of its body; the error page answers instead */
        return FILTER_CONTINUE;
    gw_req_local_answer(r); // an unread body cannot be skipped reliably, a drain closes
    struct gw_head h;
    gw_head_init(&h, (int)fb->status);
    gw_head_add(&h, "Date", 4, gwthread_date(r->th), HTTP_DATE_LEN);
    bool has_ctype = false, has_retry_after = false;
    for (size_t i = 0; i < fb->nheaders; i++) {
        const struct gw_header *fh = &fb->headers[i];
        has_ctype |= strcasecmp(fh->name, "content-type") == 0;
        has_retry_after |= strcasecmp(fh->name, "retry-after") == 0;
        gw_head_add_str(&h, fh->name, fh->value);
    }
    if (!has_ctype)
        gw_head_add(&h, "Content-Type", 12, "application/json", 16);
    if (!has_retry_after && fb->status == 503)
        gw_head_add(&h, "Retry-After", 11, "1", 1);
    gw_head_add_u64(&h, "Content-Length", 14, (uint64_t)fb->body_len);
    if (r->rid_len)
        gw_head_add(&h, "X-Request-Id", 12, r->rid, r->rid_len);
    gw_head_add(&h, "X-Fallback", 10, "1", 1);
    filter_client_headers(r, &h); // a cached route's answers all carry X-Cache (cache.md)
    if (!r->keep_alive)
        gw_head_add(&h, "Connection", 10, "close", 5);
    if (r->req.method_id != H1_M_HEAD) {
        h.body = H1_BODY_LENGTH;
        h.content_length = fb->body_len;
    }
    gw_req_head(r, &h);
    gw_head_deinit(&h);
    if (r->req.method_id != H1_M_HEAD && fb->body_len > 0)
        buf_append(r->out, fb->body, fb->body_len);
    metrics_counter_inc(r->th->ms, rr->m_fallbacks);
    if (gw_req_send(r, NULL, 0) == -1)
        return FILTER_RESPOND;
    gw_req_end(r);
    return FILTER_RESPOND;
}

static bool fallback__attach(struct gw_shared *sh, size_t route)
{
    return route < sh->cfg->nroutes && sh->cfg->routes[route].fallback.enabled;
}

const struct filter_ops fallback_filter = {
    .name = "fallback",
    .attach = fallback__attach,
    .on_error = fallback__on_error,
};

int resil_breakers_open(struct gw_shared *sh)
{
    struct resil *r = sh->resil;
    int n = 0;
    for (size_t i = 0; r != NULL && i < r->nroutes; i++)
        if (r->routes[i].br_owner && breaker_state(r->routes[i].br) != BREAKER_CLOSED)
            n++; // a shared breaker counts once
    return n;
}

void resil_stats_json(struct gw_shared *sh, struct buf *out)
{
    struct resil *r = sh->resil;
    uint64_t now = clock_now_ms();
    buf_append_str(out, "[");
    bool first = true;
    for (size_t i = 0; r != NULL && i < r->nroutes; i++) {
        struct resil_route *rr = &r->routes[i];
        if (rr->br == NULL)
            continue;
        uint64_t req, fails;
        breaker_window(rr->br, now, &req, &fails);
        buf_append_str(out, first ? "{\"route\":" : ",{\"route\":");
        first = false;
        buf_append_json_str(out, rr->label, strlen(rr->label));
        buf_append_str(out, ",\"upstream\":");
        buf_append_json_str(out, rr->upstream, strlen(rr->upstream));
        buf_printf(out,
                   ",\"scope\":\"%s\",\"state\":\"%s\",\"requests\":%llu,\"failures\":%llu,"
                   "\"opens\":%llu,\"transitions\":%llu}",
                   rr->gr->breaker.scope == GW_BREAKER_UPSTREAM ? "upstream" : "route",
                   breaker_state_name(breaker_state(rr->br)), (unsigned long long)req,
                   (unsigned long long)fails, (unsigned long long)breaker_opens(rr->br),
                   (unsigned long long)breaker_transitions(rr->br));
    }
    buf_append_str(out, "]");
}

void resil_adaptive_json(struct gw_shared *sh, struct buf *out)
{
    struct resil *r = sh->resil;
    buf_append_str(out, "[");
    bool first = true;
    for (size_t i = 0; r != NULL && i < r->nroutes; i++) {
        struct resil_route *rr = &r->routes[i];
        if (rr->ad == NULL)
            continue;
        buf_append_str(out, first ? "{\"route\":" : ",{\"route\":");
        first = false;
        buf_append_json_str(out, rr->label, strlen(rr->label));
        buf_printf(out, ",\"limit\":%lld,\"inflight\":%lld,\"min_rtt_ms\":%.3f,\"measuring\":%s}",
                   (long long)adaptive_limit(rr->ad), (long long)adaptive_inflight(rr->ad),
                   adaptive_min_rtt_us(rr->ad) / 1000.0,
                   adaptive_measuring(rr->ad) ? "true" : "false");
    }
    buf_append_str(out, "]");
}
