/* The engine of `apigate load`: one epoll loop per thread, each owning its share of the VUs
 * (closed model: VU v runs on thread v % threads and is active while v < the stage target) or of
 * the arrival schedule (open model: iterations i ≡ thread (mod threads), sent at their intended
 * time on a free connection, latency counted from that intended time so a stalled server cannot
 * hide behind fewer requests, as in wrk2). The main thread only collects per-second slots for the
 * progress line and the time series, then merges the per-thread stats into one result. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/xmalloc.h"
#include "load/internal.h"

#define RUN_TICK_MS 100
#define RUN_BACKOFF_CONNECT_MS 10 /* a VU whose connect failed waits this long before retrying */
#define RUN_BACKOFF_ERROR_MS 1    /* after another failure: never retry in the same loop pass */

struct run;

struct lthread {
    struct run *run;
    unsigned idx;
    struct loop *loop;
    pthread_t tid;
    struct thread_stats st;
    struct client *clients;
    unsigned nclients;
    uint64_t rng;
    struct tmpl_ctx tctx;
    struct buf scratch;
    uint64_t bytes_out;
    unsigned active; /* closed: active VUs */
    unsigned busy;   /* iterations in flight */
    bool open;
    struct sched_open so; /* open model */
    struct loop_timer arrival;
    struct client *idle; /* open: free connections */
    unsigned opened;     /* open: clients[0, opened) have been handed out */
    bool in_dispatch;
    struct loop_timer tick;
    bool stopping;
    uint64_t last_done_us;
    _Atomic bool finished;
};

struct run {
    struct scenario *s;
    unsigned n;
    struct lthread *th;
    uint64_t start_us;
    /* The end of the plan and of the graceful stop: atomic because a Ctrl-C moves them earlier
     * from the main thread while the loops read them. */
    _Atomic uint64_t end_us, hard_end_us;
    _Atomic uint64_t seq;
};

struct scenario *run__scenario(const struct lthread *t)
{
    return t->run->s;
}
struct thread_stats *run__stats(struct lthread *t)
{
    return &t->st;
}
struct loop *run__loop(const struct lthread *t)
{
    return t->loop;
}
uint64_t *run__bytes_out(struct lthread *t)
{
    return &t->bytes_out;
}

void run__render(struct client *c, const struct load_req *r, struct buf *out)
{
    struct lthread *t = c->t;
    t->tctx.vars = c->vars;
    scenario_render(t->run->s, r, &t->tctx, out);
    t->tctx.vars = NULL;
}

/* Weighted choice of the next iteration: a request, or a flow. */
static size_t run__pick(struct lthread *t)
{
    const struct scenario *s = t->run->s;
    if (s->nflows == 1)
        return 0;
    uint64_t x = (uint64_t)(((unsigned __int128)tmpl_rand_next(&t->rng) * s->total_weight) >> 64);
    for (size_t i = 0; i < s->nflows; i++) {
        if (x < s->flows[i].weight)
            return i;
        x -= s->flows[i].weight;
    }
    return s->nflows - 1;
}

/* Starts a new iteration on <c>: its first step, with the VU's variables emptied (a variable
 * lives for one iteration of one VU). */
static void run__begin(struct lthread *t, struct client *c, uint64_t origin_us, uint64_t now_us)
{
    const struct scenario *s = t->run->s;
    c->flow = run__pick(t);
    c->step = 0;
    c->flow_pending = false;
    for (size_t i = 0; i < s->nvars; i++)
        buf_reset(&c->vars[i]);
    client_start(c, s->flows[c->flow].first, origin_us, now_us);
}

/* A value for variable <x>: kept when it fits a request (no line break, not too long). */
static bool run__keep_value(struct buf *v)
{
    if (buf_pending(v) > EXTRACT_MAX_VALUE || memchr(buf_head(v), '\r', buf_pending(v)) ||
        memchr(buf_head(v), '\n', buf_pending(v))) {
        buf_reset(v);
        return false;
    }
    return true;
}

void run__extract_headers(struct client *c, const struct h1_response *res)
{
    const struct load_req *r = c->req;
    for (size_t i = 0; i < r->nextracts; i++) {
        const struct load_extract *x = &r->extracts[i];
        if (x->kind != EXTRACT_HEADER)
            continue;
        struct buf *v = &c->vars[x->var];
        buf_reset(v);
        size_t nl = strlen(x->expr);
        for (size_t h = 0; h < res->nheaders; h++) {
            if (res->headers[h].name_len == nl &&
                strncasecmp(res->headers[h].name, x->expr, nl) == 0) {
                buf_append(v, res->headers[h].value, res->headers[h].value_len);
                if (run__keep_value(v))
                    c->ex_ok |= 1u << i;
                break;
            }
        }
    }
}

/* Body extracts of a finished request (header ones were done with the head); a request that got
 * no response extracts nothing, and its variables are left empty. */
static void run__extract_body(struct client *c, bool err)
{
    const struct load_req *r = c->req;
    for (size_t i = 0; i < r->nextracts; i++) {
        const struct load_extract *x = &r->extracts[i];
        struct buf *v = &c->vars[x->var];
        if (err) {
            buf_reset(v);
            c->ex_ok &= ~(1u << i);
            continue;
        }
        if (x->kind == EXTRACT_HEADER)
            continue;
        buf_reset(v);
        int rc = x->kind == EXTRACT_JSON
                     ? extract_json(buf_head(&c->body), buf_pending(&c->body), x->expr, v)
                     : extract_regex(x, buf_head(&c->body), buf_pending(&c->body), v);
        if (rc == 0 && run__keep_value(v))
            c->ex_ok |= 1u << i;
        else
            buf_reset(v);
    }
}

/* Checks of one finished iteration; <c> holds the response (status, body, header bits). */
static void run__checks(struct lthread *t, struct client *c, bool err, uint64_t latency_us)
{
    const struct load_req *r = c->req;
    for (size_t i = 0; i < r->nchecks; i++) {
        const struct load_check *k = &r->checks[i];
        bool ok = false;
        if (!err) {
            switch (k->kind) {
            case CHECK_STATUS:
                for (size_t j = 0; j < k->nstatuses && !ok; j++)
                    ok = k->statuses[j] == c->status;
                break;
            case CHECK_BODY:
                ok = buf_pending(&c->body) == 0 ? k->len == 0
                                                : memmem(buf_head(&c->body), buf_pending(&c->body),
                                                         k->str, k->len) != NULL;
                break;
            case CHECK_HEADER:
                ok = (c->hdr_ok >> i) & 1u;
                break;
            case CHECK_LATENCY:
                ok = latency_us < k->latency_us;
                break;
            case CHECK_EXTRACT:
                ok = (c->ex_ok >> k->len) & 1u;
                break;
            }
        }
        if (ok)
            t->st.check_pass[k->id]++;
        else
            t->st.check_fail[k->id]++;
    }
}

/* ---- closed model ---- */

static void run__vu_park(struct client *c)
{
    loop_timer_stop(c->t->loop, &c->timer);
    client_close(c);
    c->state = CL_IDLE;
    c->flow_pending = false; /* a flow cut by the end (or a ramp-down) is not resumed */
}

/* Starts the next iteration of VU <c>; <now_us> is a fresh clock reading. */
static void run__vu_next(struct client *c, uint64_t now_us)
{
    struct lthread *t = c->t;
    /* Past the end of the plan no new iteration starts, even before the tick notices. */
    if (t->stopping || !c->active ||
        now_us >= atomic_load_explicit(&t->run->end_us, memory_order_relaxed)) {
        run__vu_park(c);
        return;
    }
    c->state = CL_IDLE;
    t->busy++;
    if (c->flow_pending) {
        c->flow_pending = false;
        client_start(c, t->run->s->flows[c->flow].first + c->step, 0, now_us);
        return;
    }
    run__begin(t, c, 0, now_us);
}

static void run__vu_timer(struct loop *loop, void *arg)
{
    (void)loop;
    run__vu_next(arg, clock_now_us());
}

/* ---- open model ---- */

static void run__dispatch(struct lthread *t)
{
    if (t->in_dispatch || t->stopping)
        return;
    t->in_dispatch = true;
    uint64_t now = clock_now_us();
    uint64_t rel = now - t->run->start_us;
    while (t->so.qlen > 0) {
        struct client *c = t->idle;
        if (c) {
            t->idle = c->next_idle;
        } else if (t->opened < t->nclients) {
            c = &t->clients[t->opened++];
        } else {
            break;
        }
        uint64_t intended;
        sched_open_take(&t->so, rel, &intended);
        t->busy++;
        run__begin(t, c, t->run->start_us + intended, now);
    }
    t->in_dispatch = false;
}

static void run__arrival(struct loop *loop, void *arg)
{
    struct lthread *t = arg;
    if (t->stopping)
        return;
    uint64_t now = clock_now_us();
    uint64_t rel = now - t->run->start_us;
    uint64_t dropped = t->so.dropped;
    sched_open_arrivals(&t->so, rel);
    /* Drops go into the series too: the second where the rate could not be met is visible. */
    stats_record_dropped(&t->st, t->so.dropped - dropped, now);
    run__dispatch(t);
    sched_open_settle(&t->so);
    if (t->so.next_us != UINT64_MAX) {
        uint64_t now_rel = clock_now_us() - t->run->start_us;
        uint64_t wait = t->so.next_us > now_rel ? t->so.next_us - now_rel : 0;
        loop_timer_start(loop, &t->arrival, (wait + 999) / 1000);
    }
}

/* ---- both ---- */

void run__client_done(struct client *c, bool err, enum load_err kind)
{
    struct lthread *t = c->t;
    t->busy--;
    uint64_t now = err ? clock_now_us() : c->done_us;
    uint64_t latency = 0;
    if (err) {
        stats_record_error(&t->st, c->req_idx, kind, now);
    } else {
        latency = now > c->origin_us ? now - c->origin_us : 0;
        stats_record(&t->st, c->req_idx, c->status, latency, now, c->resp_bytes, c->status >= 400);
    }
    if (c->req->nextracts)
        run__extract_body(c, err);
    if (c->req->nchecks)
        run__checks(t, c, err, latency);
    const struct load_flow *fl = &t->run->s->flows[c->flow];
    bool more = c->step + 1 < fl->n; /* the flow has steps left: the iteration goes on */
    bool in_window = now <= atomic_load_explicit(&t->run->end_us, memory_order_relaxed);
    if (!more)
        t->st.iterations++;
    if (in_window) {
        t->st.win_reqs++;
        t->st.win_iters += !more;
    }
    t->last_done_us = now;
    if (more && t->open && !t->stopping) {
        c->step++; /* open model: steps go back to back (the arrivals set the pace) */
        t->busy++;
        client_start(c, fl->first + c->step, 0, clock_now_us());
        return;
    }
    if (more && !t->open) {
        c->step++;
        c->flow_pending = true;
    }
    if (t->open) {
        c->state = CL_IDLE;
        c->next_idle = t->idle;
        t->idle = c;
        run__dispatch(t);
        return;
    }
    if (t->stopping || !c->active) {
        run__vu_park(c);
        return;
    }
    uint64_t pause_ms = 0;
    const struct load_req *r = c->req;
    if (r->think_max_us > 0) {
        uint64_t span = r->think_max_us - r->think_min_us;
        uint64_t us =
            r->think_min_us +
            (span ? (uint64_t)(((unsigned __int128)tmpl_rand_next(&t->rng) * (span + 1)) >> 64)
                  : 0);
        pause_ms = (us + 999) / 1000;
    }
    if (err) {
        uint64_t b = kind <= LERR_LOCAL ? RUN_BACKOFF_CONNECT_MS : RUN_BACKOFF_ERROR_MS;
        if (pause_ms < b)
            pause_ms = b;
    }
    if (pause_ms) {
        c->state = CL_PAUSED;
        loop_timer_start(t->loop, &c->timer, pause_ms);
        return;
    }
    run__vu_next(c, now);
}

static void run__stop_issuing(struct lthread *t)
{
    t->stopping = true;
    if (t->open) {
        loop_timer_stop(t->loop, &t->arrival);
        uint64_t dropped = t->so.dropped;
        sched_open_drop_all(&t->so);
        stats_record_dropped(&t->st, t->so.dropped - dropped, clock_now_us());
    }
    for (unsigned i = 0; i < t->nclients; i++) {
        struct client *c = &t->clients[i];
        if (c->state == CL_PAUSED || (c->state == CL_IDLE && !t->open))
            run__vu_park(c);
    }
}

static void run__adjust_vus(struct lthread *t, uint64_t rel)
{
    const struct scenario *s = t->run->s;
    unsigned target = sched_vus_at(&s->plan, rel, s->max_vus);
    for (unsigned i = 0; i < t->nclients; i++) {
        struct client *c = &t->clients[i];
        bool should = c->vu < target;
        if (should && !c->active) {
            c->active = true;
            t->active++;
            if (c->state == CL_IDLE)
                run__vu_next(c, clock_now_us());
        } else if (!should && c->active) {
            /* Ramping down: a VU finishes the request it has in flight (k6's graceful ramp-down).
             */
            c->active = false;
            t->active--;
            if (c->state == CL_PAUSED || c->state == CL_IDLE)
                run__vu_park(c);
        }
    }
}

static void run__finish(struct lthread *t)
{
    t->st.interrupted += t->busy;
    for (unsigned i = 0; i < t->nclients; i++) {
        loop_timer_stop(t->loop, &t->clients[i].timer);
        client_close(&t->clients[i]);
    }
    loop_timer_stop(t->loop, &t->tick);
    loop_timer_stop(t->loop, &t->arrival);
    stats_roll(&t->st, t->last_done_us);
    loop_stop(t->loop);
}

static void run__tick(struct loop *loop, void *arg)
{
    struct lthread *t = arg;
    uint64_t now = clock_now_us();
    uint64_t rel = now - t->run->start_us;
    struct run *run = t->run;
    uint64_t end_us = atomic_load_explicit(&run->end_us, memory_order_relaxed);
    uint64_t hard_end_us = atomic_load_explicit(&run->hard_end_us, memory_order_relaxed);
    if (now < hard_end_us)
        stats_roll(&t->st, now);
    for (unsigned i = 0; i < t->nclients; i++)
        client_check_timeout(&t->clients[i], now);
    if (!t->stopping && now >= end_us)
        run__stop_issuing(t);
    if (!t->stopping) {
        if (!t->open)
            run__adjust_vus(t, rel);
        stats_set_vus(&t->st, t->open ? t->busy : t->active);
    } else if (t->busy == 0 || now >= hard_end_us) {
        run__finish(t);
        return;
    }
    /* The last tick lands on the end of the plan, so a run stops on time. */
    uint64_t next = RUN_TICK_MS;
    if (!t->stopping && end_us > now && (end_us - now) / 1000 < next)
        next = (end_us - now + 999) / 1000;
    loop_timer_start(loop, &t->tick, next);
}

static void *run__thread(void *arg)
{
    struct lthread *t = arg;
    struct run *run = t->run;
    const struct scenario *s = run->s;
    for (unsigned i = 0; i < t->nclients; i++) {
        client_init(&t->clients[i], t, t->open ? i : i * run->n + t->idx);
        loop_timer_init(&t->clients[i].timer, run__vu_timer, &t->clients[i]);
    }
    loop_timer_init(&t->tick, run__tick, t);
    loop_timer_init(&t->arrival, run__arrival, t);
    /* Wait for the common start so every thread's schedule has the same origin. */
    uint64_t now = clock_now_us();
    if (run->start_us > now)
        usleep((useconds_t)(run->start_us - now));
    loop_update_time(t->loop);
    if (t->open) {
        unsigned pre = s->pre_vus / run->n + (t->idx < s->pre_vus % run->n);
        if (pre > t->nclients)
            pre = t->nclients;
        for (unsigned i = 0; i < pre; i++) {
            struct client *c = &t->clients[t->opened++];
            client_connect(c);
            c->next_idle = t->idle;
            t->idle = c;
        }
        run__arrival(t->loop, t);
    }
    run__tick(t->loop, t);
    loop_run(t->loop);
    for (unsigned i = 0; i < t->nclients; i++)
        client_deinit(&t->clients[i]);
    stats_finish(&t->st);
    atomic_store_explicit(&t->finished, true, memory_order_release);
    return NULL;
}

/* ---- main thread: collection, progress, result ---- */

struct run_collect {
    int64_t next_sec;
    struct hist h; /* scratch for one second of all threads */
    size_t *ep_of; /* per request definition: its endpoint's index in the result's eps */
    uint64_t last_progress_sec;
    /* Everything collected so far, for abortOnFail thresholds (only when one exists). */
    struct load_result live;
};

/* The endpoints' own series for second col->next_sec: the first STATS_EP_SERIES request
 * definitions (two with the same name and method are one endpoint), seconds with requests only. */
static void run__collect_eps(struct run *run, struct load_result *r, struct run_collect *col)
{
    size_t n = run->s->nreqs < STATS_EP_SERIES ? run->s->nreqs : STATS_EP_SERIES;
    for (size_t e = 0; e < n; e++) {
        bool first = true;
        for (size_t p = 0; p < e && first; p++)
            first = col->ep_of[p] != col->ep_of[e];
        if (!first)
            continue; /* added with the first definition of its endpoint */
        uint64_t reqs = 0, errors = 0;
        hist_reset(&col->h);
        for (size_t d = e; d < n; d++) {
            if (col->ep_of[d] != col->ep_of[e])
                continue;
            for (unsigned i = 0; i < run->n; i++) {
                struct stats_sec *s = &run->th[i].st.ring[col->next_sec % STATS_RING];
                if (atomic_load_explicit(&s->sec, memory_order_relaxed) != col->next_sec)
                    continue;
                hist_merge(&col->h, &s->ep[d].h);
                reqs += s->ep[d].reqs;
                errors += s->ep[d].errors;
            }
        }
        if (reqs == 0)
            continue;
        struct result_ep_sec *o = result_ep_add_sec(&r->eps[col->ep_of[e]]);
        o->t = col->next_sec;
        o->reqs = reqs;
        o->errors = errors;
        o->p95_us = hist_percentile(&col->h, 95);
    }
}

/* Moves every second that all threads have published into the series. */
static void run__collect(struct run *run, struct load_result *r, struct run_collect *col, bool all)
{
    int64_t ready = INT64_MAX;
    for (unsigned i = 0; i < run->n; i++) {
        int64_t d = all ? run->th[i].st.cur_sec
                        : atomic_load_explicit(&run->th[i].st.done_sec, memory_order_acquire);
        if (d < ready)
            ready = d;
    }
    if (all) {
        for (unsigned i = 0; i < run->n; i++)
            if (run->th[i].st.cur_sec > ready)
                ready = run->th[i].st.cur_sec;
    }
    for (; col->next_sec <= ready; col->next_sec++) {
        struct result_sec *o = result_add_sec(r);
        o->t = col->next_sec;
        hist_reset(&col->h);
        for (unsigned i = 0; i < run->n; i++) {
            struct stats_sec *s = &run->th[i].st.ring[col->next_sec % STATS_RING];
            if (atomic_load_explicit(&s->sec, memory_order_relaxed) != col->next_sec)
                continue;
            hist_merge(&col->h, &s->h);
            o->reqs += s->reqs;
            o->errors += s->errors;
            o->bytes_in += s->bytes_in;
            o->dropped += s->dropped;
            o->vus += s->vus;
        }
        col->live.reqs += o->reqs;
        col->live.rate_reqs += o->reqs;
        col->live.failed += o->errors;
        col->live.bytes_in += o->bytes_in;
        col->live.dropped += o->dropped;
        hist_merge(&col->live.h, &col->h);
        o->p50_us = hist_percentile(&col->h, 50);
        o->p95_us = hist_percentile(&col->h, 95);
        o->p99_us = hist_percentile(&col->h, 99);
        if (run->th[0].open) /* the plan's rate over this second: a ramp is a ramp */
            o->requested =
                sched_iterations_by(&run->s->plan, (uint64_t)(col->next_sec + 1) * 1000000u) -
                sched_iterations_by(&run->s->plan, (uint64_t)col->next_sec * 1000000u);
        run__collect_eps(run, r, col);
    }
}

/* "2s", "2.5s": whole seconds without a fraction. */
static const char *run__secs(double s, char *out, size_t n)
{
    snprintf(out, n, s == floor(s) ? "%.0fs" : "%.1fs", s);
    return out;
}

/* One progress line for the newest collected second: rewritten in place on a terminal, one line
 * per second otherwise. <last>: the run is over (a terminal line gets its newline). */
static void run__progress(const struct run *run, const struct load_result *r,
                          const struct run_opts *o, bool last)
{
    if (!o->progress || r->nseries == 0)
        return;
    const struct result_sec *s = &r->series[r->nseries - 1];
    char p95[32], el[32], tot[32];
    double total = (double)run->s->plan.total_us / 1e6;
    if ((double)s->t >= ceil(total)) {
        /* The tail after the plan (in-flight requests finishing): only ends the TTY line. */
        if (o->tty && last)
            fputc('\n', stderr);
        return;
    }
    double elapsed = (double)(s->t + 1) < total ? (double)(s->t + 1) : total;
    fprintf(stderr, "%s[%6s/%s] %8" PRIu64 " req/s  p95 %-9s errors %-6" PRIu64 " vus %u%s",
            o->tty ? "\r\033[K" : "", run__secs(elapsed, el, sizeof(el)),
            run__secs(total, tot, sizeof(tot)), s->reqs,
            load_fmt_us((double)s->p95_us, p95, sizeof(p95)), s->errors, s->vus,
            o->tty ? (last ? "\n" : "") : "\n");
    fflush(stderr);
}

static void run__copy_thresholds(struct load_result *r, const struct scenario *s)
{
    r->nth = s->nth;
    r->th = xcalloc(s->nth ? s->nth : 1, sizeof(*r->th));
    for (size_t i = 0; i < s->nth; i++) {
        r->th[i] = s->th[i];
        r->th[i].metric = xstrdup(s->th[i].metric);
        r->th[i].tag = s->th[i].tag ? xstrdup(s->th[i].tag) : NULL;
        r->th[i].expr = xstrdup(s->th[i].expr);
    }
}

/* abortOnFail: judges the live thresholds on what was collected (whole seconds up to
 * <col->next_sec>); returns the first that failed past its delayAbortEval, or NULL. */
static struct threshold *run__abort_check(struct scenario *s, struct run_collect *col)
{
    double secs = (double)col->next_sec;
    if (secs <= 0)
        return NULL;
    col->live.rate_s = secs;
    col->live.duration_s = secs;
    for (size_t i = 0; i < s->nth; i++) {
        struct threshold *t = &s->th[i];
        if (!t->abort_on_fail || (double)t->delay_abort_us / 1e6 > secs)
            continue;
        if (!threshold_eval(t, &col->live))
            return t;
    }
    return NULL;
}

static _Atomic bool run_sigint;

static void run__on_sigint(int sig)
{
    (void)sig;
    atomic_store(&run_sigint, true);
    signal(SIGINT, SIG_DFL); /* the second Ctrl-C quits at once */
}

/* The first Ctrl-C of a run ends it early with a report, as k6 does. A SIGINT that our parent
 * ignores (a background job of a script) stays ignored. */
static void run__catch_sigint(void)
{
    atomic_store(&run_sigint, false);
    struct sigaction old;
    if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = run__on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

struct load_result *run_scenario(struct scenario *s, const struct run_opts *o)
{
    struct run run = {0};
    run.s = s;
    run.n = s->threads ? s->threads : 1;
    bool open = s->plan.kind == SCHED_RATE;
    if (!open && run.n > s->max_vus && s->max_vus > 0)
        run.n = s->max_vus;
    run.th = xcalloc(run.n, sizeof(*run.th));
    /* A short common delay lets every thread reach its loop before the schedule's time zero. */
    run.start_us = clock_now_us() + 20000;
    atomic_store(&run.end_us, run.start_us + s->plan.total_us);
    atomic_store(&run.hard_end_us, run.start_us + s->plan.total_us + s->graceful_us);
    run__catch_sigint();
    int64_t wall = clock_wall_s();
    for (unsigned i = 0; i < run.n; i++) {
        struct lthread *t = &run.th[i];
        t->run = &run;
        t->idx = i;
        t->open = open;
        t->rng = clock_now_ns() ^ ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull);
        t->tctx.rng = &t->rng;
        t->tctx.seq = &run.seq;
        buf_init(&t->scratch);
        t->tctx.scratch = &t->scratch;
        t->loop = loop_create();
        if (t->loop == NULL) {
            fprintf(stderr, "apigate load: cannot create an event loop\n");
            exit(1);
        }
        if (open) {
            t->nclients = s->max_vus / run.n + (i < s->max_vus % run.n);
            if (t->nclients == 0)
                t->nclients = 1;
            sched_open_init(&t->so, &s->plan, i, run.n, t->nclients);
        } else {
            t->nclients = s->max_vus / run.n + (i < s->max_vus % run.n);
        }
        t->clients = xcalloc(t->nclients ? t->nclients : 1, sizeof(*t->clients));
        stats_init(&t->st, s->nreqs, s->nchecks, run.start_us);
    }
    for (unsigned i = 0; i < run.n; i++) {
        if (pthread_create(&run.th[i].tid, NULL, run__thread, &run.th[i]) != 0) {
            fprintf(stderr, "apigate load: cannot start thread %u\n", i);
            exit(1);
        }
    }

    struct load_result *r = result_create();
    struct run_collect *col = xcalloc(1, sizeof(*col));
    hist_init(&col->h);
    /* the endpoints exist from the start (in the scenario's order, as the totals add them at the
     * end), so that their series can be collected during the run */
    col->ep_of = xcalloc(s->nreqs ? s->nreqs : 1, sizeof(*col->ep_of));
    for (size_t e = 0; e < s->nreqs; e++)
        col->ep_of[e] = (size_t)(result_ep(r, s->reqs[e].name, s->reqs[e].method) - r->eps);
    hist_init(&col->live.h);
    bool live_th = false;
    for (size_t i = 0; i < s->nth; i++)
        live_th |= s->th[i].abort_on_fail;
    for (;;) {
        bool all_done = true;
        for (unsigned i = 0; i < run.n; i++)
            all_done &= atomic_load_explicit(&run.th[i].finished, memory_order_acquire);
        if (all_done)
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        if (atomic_load(&run_sigint) && !r->aborted) {
            /* Ctrl-C: end the plan now; requests in flight get the graceful stop, then the report
             * is printed as for a complete run. A second Ctrl-C kills (default action again). */
            uint64_t now = clock_now_us();
            r->aborted = true;
            r->aborted_at_s = now > run.start_us ? (double)(now - run.start_us) / 1e6 : 0.0;
            if (now < atomic_load(&run.end_us)) {
                atomic_store(&run.end_us, now);
                atomic_store(&run.hard_end_us, now + s->graceful_us);
            }
            if (o->progress)
                fprintf(stderr,
                        "%sapigate load: interrupted, finishing the requests in flight "
                        "(Ctrl-C again to quit now)\n",
                        o->tty ? "\r\033[K" : "");
        }
        size_t before = r->nseries;
        run__collect(&run, r, col, false);
        if (r->nseries != before)
            run__progress(&run, r, o, false);
        if (o->gw)
            gwctx_poll(o->gw, clock_now_us());
        struct threshold *th;
        if (live_th && r->nseries != before && r->aborted_by == NULL &&
            (th = run__abort_check(s, col)) != NULL) {
            /* k6's abortOnFail: end the plan now, as a Ctrl-C does, and say which one. */
            uint64_t now = clock_now_us();
            struct buf why = BUF_INIT;
            buf_printf(&why, "%s%s%s%s: %s", th->metric, th->tag ? "{name:" : "",
                       th->tag ? th->tag : "", th->tag ? "}" : "", th->expr);
            buf_append(&why, "", 1);
            r->aborted_by = why.data;
            r->aborted_at_s = now > run.start_us ? (double)(now - run.start_us) / 1e6 : 0.0;
            if (now < atomic_load(&run.end_us)) {
                atomic_store(&run.end_us, now);
                atomic_store(&run.hard_end_us, now + s->graceful_us);
            }
            if (o->progress)
                fprintf(stderr, "%sapigate load: threshold %s failed (abortOnFail): ending the run\n",
                        o->tty ? "\r\033[K" : "", r->aborted_by);
        }
    }
    for (unsigned i = 0; i < run.n; i++)
        pthread_join(run.th[i].tid, NULL);
    if (!atomic_load(&run_sigint)) {
        struct sigaction cur;
        if (sigaction(SIGINT, NULL, &cur) == 0 && cur.sa_handler == run__on_sigint)
            signal(SIGINT, SIG_DFL);
    }
    size_t before = r->nseries;
    run__collect(&run, r, col, true);
    if (r->nseries != before)
        run__progress(&run, r, o, true);
    else if (o->tty && o->progress && r->nseries > 0)
        fputc('\n', stderr); /* end the line rewritten in place */
    free(col->ep_of);
    free(col);

    /* Merge the threads. */
    r->target = xstrdup(s->base_url);
    r->mode = xstrdup(open ? "open" : "closed");
    r->planned_s = (double)s->plan.total_us / 1e6;
    r->requested_rate = open ? sched_peak(&s->plan) : 0.0;
    r->threads = run.n;
    r->vus_max = s->max_vus;
    r->started_at = wall;
    uint64_t last = atomic_load(&run.end_us);
    for (unsigned i = 0; i < run.n; i++) {
        struct lthread *t = &run.th[i];
        struct thread_stats *st = &t->st;
        if (t->last_done_us > last)
            last = t->last_done_us;
        hist_merge(&r->h, &st->all);
        r->reqs += st->reqs;
        r->failed += st->failed;
        r->iterations += st->iterations;
        r->rate_reqs += st->win_reqs;
        r->rate_iters += st->win_iters;
        r->bytes_in += st->bytes_in;
        r->bytes_out += t->bytes_out;
        r->interrupted += st->interrupted;
        if (r->tls_detail[0] == '\0' && st->tls_detail[0] != '\0')
            memcpy(r->tls_detail, st->tls_detail, sizeof(r->tls_detail));
        for (size_t k = 0; k < 600; k++)
            r->status[k] += st->status[k];
        for (size_t k = 0; k < LERR__COUNT; k++)
            r->errors[k] += st->errors[k];
        for (size_t e = 0; e < s->nreqs; e++) {
            struct result_ep *ep = result_ep(r, s->reqs[e].name, s->reqs[e].method);
            if (ep->group == NULL && s->reqs[e].group)
                ep->group = xstrdup(s->reqs[e].group);
            ep->reqs += st->ep[e].reqs;
            ep->failed += st->ep[e].failed;
            hist_merge(&ep->h, &st->ep[e].h);
        }
        for (size_t e = 0; e < s->nreqs; e++) {
            for (size_t k = 0; k < s->reqs[e].nchecks; k++) {
                const struct load_check *ck = &s->reqs[e].checks[k];
                struct result_check *rc = result_check(r, ck->label, s->reqs[e].name);
                rc->pass += st->check_pass[ck->id];
                rc->fail += st->check_fail[ck->id];
                r->checks_pass += st->check_pass[ck->id];
                r->checks_fail += st->check_fail[ck->id];
            }
        }
        if (open) {
            r->dropped += t->so.dropped;
            r->late += t->so.late;
            if (t->so.max_lag_us > r->max_lag_us)
                r->max_lag_us = t->so.max_lag_us;
            sched_open_deinit(&t->so);
        }
        stats_deinit(st);
        buf_deinit(&t->scratch);
        free(t->clients);
        loop_destroy(t->loop);
    }
    r->duration_s = (double)(last - run.start_us) / 1e6;
    if (r->duration_s <= 0)
        r->duration_s = 1e-6;
    /* The rates' window: the plan, or up to the Ctrl-C that ended it (end_us moved there). */
    uint64_t end = atomic_load(&run.end_us);
    r->rate_s = end > run.start_us ? (double)(end - run.start_us) / 1e6 : 1e-6;
    run__copy_thresholds(r, s);
    if (o->gw)
        gwctx_finish(o->gw, r, run.start_us);
    free(run.th);
    return r;
}
