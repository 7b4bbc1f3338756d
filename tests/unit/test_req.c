/* The request layer (gateway/req.c) and its filters (cache, resil, fallback) over an in-memory
 * session: a fake gw_sess_ops collects what would go to the client, and a scripted origin on a
 * loopback socket answers (or fails) per request. No struct conn is involved: the request layer
 * must work with any session. Covers the cache filter's verdicts (MISS then HIT without the
 * origin; a stale copy instead of a 5xx), a retry of a 503, the breaker's open path (503
 * circuit_open, then the fallback), upstream errors in each phase (connect refused, closed before
 * answering, cut mid-body) and the client going away in each phase (queued for a connection,
 * waiting for the answer, mid-body), with admission and ends counted; and the chunked request
 * body pump against an upstream that blocks and then takes everything (issue #12), with the
 * session's reads paused at the high marks as conn.c pauses them. Real timers of a few ms,
 * driven by loop_run_once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/cfg.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "gateway/req.h"
#include "gateway/route.h"
#include "gateway/upool.h"
#include "gateway/upstream.h"
#include "http/chunked.h"
#include "metrics/metrics.h"
#include "net/sock.h"
#include "net/transport.h"

#include "fuzz/fz_worker.h"

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"
#define OK_2 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

/* ---- a scripted origin ---- */

#define ORIGIN_FDS 32

/* answers[i] answers the i-th request head (the last one repeats): the bytes to write; "" to
 * never answer; NULL to close at once. <cut>: write only the first <cut> bytes, then close. */
struct origin {
    struct loop *loop;
    int lfd, port;
    int fds[ORIGIN_FDS];
    int nfds;
    int requests;
    const char *answers[8];
    int nanswers;
    size_t cut;
    int eofs; // connections the gateway closed
    /* body mode (test_chunked_body_stall): one request with a chunked body, decoded as it comes;
     * 200 once it is whole. <hold>: read nothing (the socket fills, the gateway's writes stall) */
    bool body_mode, hold;
    struct buf bhead;         // the request head so far
    bool bhead_done;
    struct h1_chunked bchunk; // the body's framing
    uint64_t bbytes;          // body data bytes received
};

static void origin_close(struct origin *o, int fd)
{
    loop_del_fd(o->loop, fd);
    close(fd);
    for (int i = 0; i < o->nfds; i++)
        if (o->fds[i] == fd)
            o->fds[i] = -1;
}

static void origin_on_read(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)events;
    struct origin *o = arg;
    char b[8192];
    for (;;) {
        ssize_t n = read(fd, b, sizeof(b));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            o->eofs++;
            origin_close(o, fd);
            return;
        }
        if (n < 0)
            return;
        /* request heads without bodies: one per blank line */
        for (ssize_t i = 0; i + 3 < n; i++) {
            if (memcmp(b + i, "\r\n\r\n", 4) != 0)
                continue;
            int k = o->requests < o->nanswers ? o->requests : o->nanswers - 1;
            o->requests++;
            const char *a = o->answers[k];
            if (a == NULL) {
                origin_close(o, fd);
                return;
            }
            size_t len = strlen(a);
            if (o->cut > 0 && o->cut < len) {
                assert_int_equal(write(fd, a, o->cut), (ssize_t)o->cut);
                origin_close(o, fd);
                return;
            }
            if (len > 0)
                assert_int_equal(write(fd, a, len), (ssize_t)len);
        }
    }
}

/* Body mode: the head, then the chunked body through the same decoder the gateway uses. */
static void origin_on_body_read(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)events;
    struct origin *o = arg;
    char b[65536];
    while (!o->hold && !o->bchunk.done) {
        ssize_t n = read(fd, b, sizeof(b));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            o->eofs++;
            origin_close(o, fd);
            return;
        }
        if (n < 0)
            return;
        const char *p = b;
        size_t len = (size_t)n;
        if (!o->bhead_done) {
            buf_append(&o->bhead, p, len);
            const char *h = buf_head(&o->bhead);
            const char *end = memmem(h, buf_pending(&o->bhead), "\r\n\r\n", 4);
            if (end == NULL)
                continue;
            o->bhead_done = true;
            o->requests++;
            size_t hl = (size_t)(end + 4 - h);
            len = buf_pending(&o->bhead) - hl;
            memmove(b, h + hl, len); // the body bytes read with the head
            p = b;
        }
        while (len > 0 && !o->bchunk.done) {
            const char *d;
            size_t dl;
            long k = h1_chunked_step(&o->bchunk, p, len, &d, &dl);
            assert_true(k > 0); // the gateway re-frames validly
            o->bbytes += dl;
            p += k;
            len -= (size_t)k;
        }
        if (o->bchunk.done)
            assert_int_equal(write(fd, OK_2, strlen(OK_2)), (ssize_t)strlen(OK_2));
    }
}

static void origin_on_accept(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)events;
    struct origin *o = arg;
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        assert_true(o->nfds < ORIGIN_FDS);
        o->fds[o->nfds++] = c;
        assert_int_equal(
            loop_add_fd(loop, c, LOOP_READ, o->body_mode ? origin_on_body_read : origin_on_read, o),
            0);
    }
}

static void origin_start(struct loop *loop, struct origin *o)
{
    memset(o, 0, sizeof(*o));
    o->loop = loop;
    h1_chunked_init(&o->bchunk);
    struct sock_addr a;
    char err[128];
    assert_int_equal(sock_parse_addr("127.0.0.1:0", &a, err, sizeof(err)), 0);
    o->lfd = sock_listen(&a, false, 64, err, sizeof(err));
    assert_true(o->lfd >= 0);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(o->lfd, (struct sockaddr *)&sin, &len);
    o->port = ntohs(sin.sin_port);
    assert_int_equal(loop_add_fd(loop, o->lfd, LOOP_READ, origin_on_accept, o), 0);
}

static void origin_stop(struct origin *o)
{
    if (o->lfd >= 0) {
        loop_del_fd(o->loop, o->lfd);
        close(o->lfd);
    }
    for (int i = 0; i < o->nfds; i++)
        if (o->fds[i] >= 0)
            origin_close(o, o->fds[i]);
    buf_deinit(&o->bhead);
}

/* ---- an in-memory session ---- */

struct fsess {
    struct gw_req r;
    struct buf in, out;
    int done;       // gw_sess_ops.done calls
    int status;     // status of the last ended request
    bool keep_alive;
    bool gone;      // the client went away: the next send fails and aborts the request
    struct buf q;   // what the client sent that the session has not read (its socket)
};

static int fs_send(struct gw_req *r, const struct iovec *iov, int n)
{
    struct fsess *fs = r->sess;
    if (fs->gone) {
        gw_req_abort(r); // what a session does when its client is gone
        return -1;
    }
    for (int i = 0; i < n; i++)
        buf_append(&fs->out, iov[i].iov_base, iov[i].iov_len);
    return 0;
}

/* Reads the client's socket (fs->q) as conn.c does (conn__read): while neither the input nor
 * the re-framed body waiting for the upstream is at its high mark (conn__read_paused), a read
 * takes what the buffer's room allows once CONN_READ_CHUNK is reserved (srvconn_read_once), so
 * one read may bring much more than the mark. */
static bool fs_read_paused(struct fsess *fs)
{
    return buf_pending(&fs->in) >= CONN_BUF_HIGH || buf_pending(&fs->r.px.uout) >= CONN_BUF_HIGH;
}

static void fs_read(struct fsess *fs)
{
    while (buf_pending(&fs->q) > 0 && !fs_read_paused(fs)) {
        buf_reserve(&fs->in, CONN_BLOCK);
        size_t n = buf_room(&fs->in);
        if (n > buf_pending(&fs->q))
            n = buf_pending(&fs->q);
        buf_append(&fs->in, buf_head(&fs->q), n);
        buf_consume(&fs->q, n);
    }
}

/* gw_sess_ops.resume_read as conn.c's: nothing when the socket is drained or reads are paused */
static void fs_resume_read(struct gw_req *r)
{
    struct fsess *fs = r->sess;
    if (buf_pending(&fs->q) == 0 || fs_read_paused(fs))
        return;
    fs_read(fs);
    gw_req_on_body(r);
}

/* Client bytes arrived (conn__process on LOOP_READ): read what may be read, hand it on. */
static void fs_client_edge(struct fsess *fs)
{
    fs_read(fs);
    gw_req_on_body(&fs->r);
}

static void fs_done(struct gw_req *r)
{
    struct fsess *fs = r->sess;
    fs->done++;
    fs->status = r->status;
    fs->keep_alive = r->keep_alive;
    gw_req_reset(r); // ready for the next request, as the HTTP/1 session does
}

static void fs_continue_100(struct gw_req *r) { (void)r; }

static const struct gw_sess_ops fs_ops = {
    .send = fs_send,
    .resume_read = fs_resume_read,
    .done = fs_done,
    .continue_100 = fs_continue_100,
};

/* ---- the worker around one thread ---- */

struct env {
    struct loop *loop;
    struct origin o;
    struct gw_config *cfg;
    struct gw_shared *sh;
    struct gwthread *th;
    struct fsess fs;
};

static struct route_table *env_routes(const struct gw_config *cfg)
{
    const char **pats = xcalloc(cfg->nroutes, sizeof(*pats));
    enum route_kind *kinds = xcalloc(cfg->nroutes, sizeof(*kinds));
    for (size_t i = 0; i < cfg->nroutes; i++) {
        pats[i] = cfg->routes[i].path;
        kinds[i] = cfg->routes[i].kind == GW_MATCH_EXACT || cfg->routes[i].exact ? ROUTE_EXACT
                   : cfg->routes[i].kind == GW_MATCH_GLOB                         ? ROUTE_GLOB
                                                                                  : ROUTE_PREFIX;
    }
    char err[256];
    struct route_table *t = route_table_create_kinds(pats, kinds, cfg->nroutes, err, sizeof(err));
    assert_non_null(t);
    free(pats);
    free(kinds);
    return t;
}

/* <yaml> is a format with one %d: the origin's port. */
static void env_start(struct env *e, const char *yaml)
{
    memset(e, 0, sizeof(*e));
    e->loop = loop_create();
    assert_non_null(e->loop);
    origin_start(e->loop, &e->o);
    char text[4096];
    snprintf(text, sizeof(text), yaml, e->o.port);
    struct cfg_errors errs = {NULL, 0};
    e->cfg = gwconf_load_string(text, strlen(text), "t.yaml", &errs);
    if (e->cfg == NULL)
        cfg_errors_print(&errs, stderr);
    assert_non_null(e->cfg);
    cfg_errors_free(&errs);
    struct gw_shared *sh = xcalloc(1, sizeof(*sh));
    e->sh = sh;
    sh->cfg = e->cfg;
    sh->nthreads = 1;
    sh->rt = xcalloc(e->cfg->nroutes + 1, sizeof(*sh->rt));
    sh->metrics = metrics_create();
    fz_metrics(sh); // the metric ids the request path uses, as worker.c registers them
    sh->routes = env_routes(e->cfg);
    char err[256];
    sh->upstreams = upstream_set_create(e->cfg, sh->metrics, 1, err, sizeof(err));
    assert_non_null(sh->upstreams);
    assert_int_equal(upstream_set_start(sh->upstreams, err, sizeof(err)), 0);
    filter_init(sh);
    struct gwthread *th = xcalloc(1, sizeof(*th));
    e->th = th;
    sh->threads = &e->th;
    th->sh = sh;
    th->loop = e->loop;
    th->ms = metrics_slot_get(sh->metrics);
    th->npools = upstream_set_count(sh->upstreams);
    th->pools = xcalloc(th->npools, sizeof(*th->pools));
    for (size_t i = 0; i < th->npools; i++)
        th->pools[i] = upool_create(e->loop, upstream_set_at(sh->upstreams, i), th->ms);
    th->date_sec = -1;
    th->rid_seed = 42;
    filter_thread_start(th);
    struct fsess *fs = &e->fs;
    buf_init(&fs->in);
    buf_init(&fs->out);
    buf_init(&fs->q);
    gw_req_init(&fs->r, &fs_ops, fs, &fs->in, &fs->out, "127.0.0.9");
    fs->r.th = th;
    fs->r.max_hdrs = 64;
    fs->r.hdrs = xcalloc(fs->r.max_hdrs, sizeof(*fs->r.hdrs));
    gw_req_reset(&fs->r);
}

static void env_stop(struct env *e)
{
    struct gwthread *th = e->th;
    struct gw_shared *sh = e->sh;
    if (e->fs.r.state == GW_REQ_ACTIVE)
        gw_req_abort(&e->fs.r);
    gw_req_release(&e->fs.r);
    free(e->fs.r.hdrs);
    gw_req_deinit(&e->fs.r);
    buf_deinit(&e->fs.in);
    buf_deinit(&e->fs.out);
    buf_deinit(&e->fs.q);
    filter_thread_stop(th);
    loop_run_once(e->loop, 0);
    for (size_t i = 0; i < th->npools; i++)
        upool_destroy(th->pools[i]);
    loop_run_once(e->loop, 0);
    origin_stop(&e->o);
    loop_run_once(e->loop, 0);
    gwthread_blocks_free(th);
    buf_deinit(&th->scratch);
    free(th->pools);
    filter_deinit(sh);
    upstream_set_destroy(sh->upstreams);
    route_table_destroy(sh->routes);
    metrics_destroy(sh->metrics);
    free(sh->rt);
    free(sh);
    free(th);
    loop_destroy(e->loop);
    gwconf_free(e->cfg);
}

/* Starts the request <head> on the session, as the HTTP/1 session would. */
static void env_request(struct env *e, const char *head)
{
    struct fsess *fs = &e->fs;
    struct gw_req *r = &fs->r;
    buf_reset(&fs->in);
    buf_reset(&fs->out);
    fs->gone = false;
    buf_append_str(&fs->in, head);
    gw_req_begin(r);
    r->t_start_us = clock_now_us();
    r->wall_ms = clock_wall_ms();
    struct h1_limits lim = {.max_request_line = 0, .max_head = 65536, .max_headers = r->max_hdrs};
    int n = h1_parse_request(buf_head(&fs->in), buf_pending(&fs->in), &r->req, r->hdrs,
                             r->max_hdrs, &lim);
    assert_true(n > 0);
    r->keep_alive = r->req.keep_alive;
    buf_consume(&fs->in, (size_t)n);
    gw_req_start(r);
}

/* Runs the loop until the request ended (or <ms> passed). Returns the number of ends. */
static int env_wait_done(struct env *e, int before, int ms)
{
    uint64_t until = clock_now_ms() + (uint64_t)ms;
    while (e->fs.done == before && clock_now_ms() < until)
        loop_run_once(e->loop, 5);
    return e->fs.done - before;
}

static void env_run(struct env *e, int ms)
{
    uint64_t until = clock_now_ms() + (uint64_t)ms;
    while (clock_now_ms() < until)
        loop_run_once(e->loop, 5);
}

static bool out_has(const struct env *e, const char *s)
{
    const struct buf *b = &e->fs.out;
    return memmem(b->data + b->off, b->len - b->off, s, strlen(s)) != NULL;
}


/* ---- tests ---- */

static const char plain_yaml[] = "upstreams:\n"
                                 "  api: {servers: ['127.0.0.1:%d'], max_fails: 0}\n"
                                 "routes:\n"
                                 "  - match: /lim/\n"
                                 "    upstream: api\n"
                                 "    limit: {concurrency: 1}\n"
                                 "  - match: /\n"
                                 "    upstream: api\n"
                                 "    timeout: {total: 2s}\n";

static void test_forward(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, plain_yaml);
    e.o.answers[0] = OK_2;
    e.o.nanswers = 1;
    env_request(&e, GET("/a"));
    assert_int_equal(env_wait_done(&e, 0, 2000), 1);
    assert_int_equal(e.fs.status, 200);
    assert_true(out_has(&e, "HTTP/1.1 200 OK\r\n"));
    assert_true(out_has(&e, "\r\n\r\nok"));
    assert_true(e.fs.keep_alive);
    assert_int_equal(e.o.requests, 1);
    env_stop(&e);
}

static void test_upstream_errors(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, plain_yaml);
    /* closed before answering: 502 once the reused-connection resend is spent */
    e.o.answers[0] = NULL;
    e.o.nanswers = 1;
    env_request(&e, GET("/a"));
    assert_int_equal(env_wait_done(&e, 0, 2000), 1);
    assert_int_equal(e.fs.status, 502);
    assert_true(out_has(&e, "\"error\":\"bad_gateway\""));
    /* cut mid-body after the head went out: the status stays, the client is closed */
    e.o.answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
    e.o.cut = strlen(e.o.answers[0]);
    e.o.cut -= 3;
    env_request(&e, GET("/b"));
    assert_int_equal(env_wait_done(&e, 1, 2000), 1);
    assert_int_equal(e.fs.status, 200);
    assert_false(e.fs.keep_alive);
    assert_false(out_has(&e, "bad_gateway"));
    /* the origin never answers: 504 at the total timeout (2 s) */
    e.o.cut = 0;
    e.o.answers[0] = "";
    env_request(&e, GET("/c"));
    assert_int_equal(env_wait_done(&e, 2, 4000), 1);
    assert_int_equal(e.fs.status, 504);
    env_stop(&e);
}

static void test_connect_refused(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, plain_yaml);
    /* nothing listens any more */
    loop_del_fd(e.loop, e.o.lfd);
    close(e.o.lfd);
    e.o.lfd = -1;
    env_request(&e, GET("/a"));
    assert_int_equal(env_wait_done(&e, 0, 3000), 1);
    assert_int_equal(e.fs.status, 502);
    env_stop(&e);
}

static void test_client_abort(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, plain_yaml);
    struct gw_route_rt *lim = &e.sh->rt[0];
    /* waiting for the answer: aborted, the upstream connection closed, the admission released */
    e.o.answers[0] = "";
    e.o.nanswers = 1;
    env_request(&e, GET("/lim/a"));
    env_run(&e, 100);
    assert_int_equal(e.o.requests, 1);
    assert_int_equal(atomic_load(&lim->inflight), 1);
    gw_req_abort(&e.fs.r);
    assert_int_equal(atomic_load(&lim->inflight), 0);
    env_run(&e, 100);
    assert_int_equal(e.o.eofs, 1); // a mid-exchange connection is never reused
    assert_int_equal(e.fs.done, 0); // not ended: never recorded as answered
    gw_req_reset(&e.fs.r);
    /* mid-body: the client is gone when the body arrives */
    e.o.answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    env_request(&e, GET("/lim/b"));
    e.fs.gone = true;
    env_run(&e, 200);
    assert_int_equal(e.fs.done, 0);
    assert_int_equal(e.fs.r.state, GW_REQ_ENDED);
    assert_int_equal(atomic_load(&lim->inflight), 0);
    gw_req_reset(&e.fs.r);
    /* queued for a connection (the origin's accept never answers): abort before the connect */
    e.fs.gone = false;
    env_request(&e, GET("/lim/c"));
    gw_req_abort(&e.fs.r);
    assert_int_equal(atomic_load(&lim->inflight), 0);
    env_run(&e, 50);
    gw_req_reset(&e.fs.r);
    /* the route's limit is free again: a request goes through */
    e.o.answers[0] = OK_2;
    env_request(&e, GET("/lim/d"));
    assert_int_equal(env_wait_done(&e, 0, 2000), 1);
    assert_int_equal(e.fs.status, 200);
    env_stop(&e);
}

static const char cache_yaml[] = "cache: {memory: 1MB}\n"
                                 "upstreams:\n"
                                 "  api: {servers: ['127.0.0.1:%d'], max_fails: 0}\n"
                                 "routes:\n"
                                 "  - match: /\n"
                                 "    upstream: api\n"
                                 "    cache: {ttl: 60s, override: true}\n";

static void test_cache_filter(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, cache_yaml);
    assert_int_equal(e.sh->rt[0].chain.n, 1);
    assert_ptr_equal(e.sh->rt[0].chain.f[0].ops, &cachehook_filter);
    e.o.answers[0] = OK_2;
    e.o.nanswers = 1;
    env_request(&e, GET("/item"));
    assert_int_equal(env_wait_done(&e, 0, 2000), 1);
    assert_true(out_has(&e, "X-Cache: MISS"));
    /* a hit: answered from memory by the filter (RESPOND), the origin not asked */
    env_request(&e, GET("/item"));
    assert_int_equal(e.fs.done, 2); // ended before gw_req_start returned
    assert_int_equal(e.fs.status, 200);
    assert_true(out_has(&e, "X-Cache: HIT"));
    assert_true(out_has(&e, "\r\n\r\nok"));
    assert_int_equal(e.o.requests, 1);
    env_stop(&e);
}

static const char resil_yaml[] =
    "upstreams:\n"
    "  api: {servers: ['127.0.0.1:%d'], max_fails: 0}\n"
    "routes:\n"
    "  - match: /retry/\n"
    "    upstream: api\n"
    "    retry: {attempts: 2, budget: 100%%, on: [503], backoff: 1ms}\n"
    "  - match: /br/\n"
    "    upstream: api\n"
    "    breaker: {window: 10s, min_requests: 2, error_threshold: 50%%, open_for: 30s}\n"
    "    fallback: {status: 200, body: '{\"fallback\":true}'}\n"
    "  - match: /\n"
    "    upstream: api\n"
    "    breaker: {window: 10s, min_requests: 2, error_threshold: 50%%, open_for: 30s}\n";

static void test_retry(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, resil_yaml);
    e.o.answers[0] = "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
    e.o.answers[1] = OK_2;
    e.o.nanswers = 2;
    env_request(&e, GET("/retry/a"));
    assert_int_equal(env_wait_done(&e, 0, 2000), 1);
    assert_int_equal(e.fs.status, 200); // the 503 was dropped (FILTER_RETRY) and sent again
    assert_int_equal(e.o.requests, 2);
    assert_false(out_has(&e, "503"));
    env_stop(&e);
}

static void test_breaker_open(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, resil_yaml);
    e.o.answers[0] = "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";
    e.o.nanswers = 1;
    for (int i = 0; i < 2; i++) {
        env_request(&e, GET("/x"));
        assert_int_equal(env_wait_done(&e, i, 2000), 1);
        assert_int_equal(e.fs.status, 500);
    }
    /* open: refused before the upstream (FILTER_ABORT), no fallback on this route: 503 */
    env_request(&e, GET("/x"));
    assert_int_equal(e.fs.done, 3);
    assert_int_equal(e.fs.status, 503);
    assert_true(out_has(&e, "\"error\":\"circuit_open\""));
    assert_int_equal(e.o.requests, 2);
    /* the /br/ route: its fallback answers the refusal (on_error of the fallback filter) */
    for (int i = 0; i < 2; i++) {
        env_request(&e, GET("/br/y"));
        assert_int_equal(env_wait_done(&e, 3 + i, 2000), 1);
    }
    assert_false(out_has(&e, "X-Fallback: 1")); // a 500 is an answer, not a failure
    env_request(&e, GET("/br/y"));
    assert_int_equal(e.fs.done, 6);
    assert_int_equal(e.fs.status, 200);
    assert_true(out_has(&e, "{\"fallback\":true}"));
    assert_int_equal(e.o.requests, 4);
    env_stop(&e);
}

/* Appends <n> bytes of body data to the client's socket as chunks of <size> bytes. Returns n. */
static uint64_t client_chunks(struct fsess *fs, size_t n, size_t size)
{
    static char data[4096];
    memset(data, 'b', sizeof(data));
    AG_ASSERT(size <= sizeof(data));
    for (size_t done = 0; done < n; done += size) {
        size_t k = n - done < size ? n - done : size;
        buf_printf(&fs->q, "%zx\r\n", k);
        buf_append(&fs->q, data, k);
        buf_append_str(&fs->q, "\r\n");
    }
    return n;
}

/* Issue #12: a chunked upload stalled until the body timeout (408) with the rest of the body
 * read already. The state: the upstream socket full (EAGAIN), the client buffer at its high mark
 * (a read brought more than the mark at once) and the re-framed output at its mark too (the
 * re-framer ran while the upstream was blocked). When the upstream then takes all of the
 * re-framed output in one write, that pump re-framed nothing (the output was full on entry), so
 * "the client buffer shrank" was false and it did not go on; reads stay paused (the client
 * buffer is over its mark) and no event comes for bytes already read. Driven step by step: the
 * origin holds its reads until the gateway's writes stall, the client's last burst arrives,
 * then the origin reads and the gateway's socket buffer is large enough to take the whole
 * re-framed output (as after autotuning). */
static void test_chunked_body_stall(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, plain_yaml);
    e.o.body_mode = true;
    e.o.hold = true;
    struct fsess *fs = &e.fs;
    struct proxy *px = &fs->r.px;
    buf_reserve(&fs->in, 1u << 20); // a client buffer grown by earlier reads (conn.c: 512 KB+)
    env_request(&e, "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 400 && (px->state != PX_EXCHANGE || !h1cli_head_sent(&px->x)); i++)
        loop_run_once(e.loop, 5);
    assert_int_equal(px->state, PX_EXCHANGE);
    /* 1. the client sends 16 KB at a time until the upstream's socket is full (a small send
     * buffer: the socket fills soon, whatever the machine's autotuning) */
    int ufd = uconn_transport(px->uc)->fd;
    int sndbuf = 32768;
    assert_int_equal(setsockopt(ufd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    uint64_t sent = 0;
    for (int i = 0; i < 4096 && px->x.writable; i++) {
        sent += client_chunks(fs, 16384, 1000);
        fs_client_edge(fs);
        loop_run_once(e.loop, 0);
    }
    assert_false(px->x.writable);
    assert_int_equal(buf_pending(&fs->q), 0);
    assert_true(buf_pending(&px->uout) < CONN_BUF_HIGH);
    /* 2. the rest of the body in one burst, read at once: re-framed up to the mark, no write */
    sent += client_chunks(fs, 2 * CONN_BUF_HIGH + 65536, 1000);
    buf_append_str(&fs->q, "0\r\n\r\n");
    fs_client_edge(fs);
    assert_int_equal(buf_pending(&fs->q), 0);
    assert_true(buf_pending(&fs->in) >= CONN_BUF_HIGH);
    assert_true(buf_pending(&px->uout) >= CONN_BUF_HIGH);
    assert_int_equal(e.fs.done, 0);
    /* 3. the upstream takes everything in one write (its send buffer grew: SO_SNDBUFFORCE when
     * root, else up to net.core.wmem_max): the body must go on from the client buffer. Before
     * the fix it stalled there, and the route's total timeout (2 s) ended it with a 504. */
    sndbuf = 4 << 20;
    if (setsockopt(ufd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) != 0)
        assert_int_equal(setsockopt(ufd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    e.o.hold = false;
    for (int i = 0; i < e.o.nfds; i++)
        if (e.o.fds[i] >= 0)
            origin_on_body_read(e.loop, e.o.fds[i], &e.o, LOOP_READ);
    assert_int_equal(env_wait_done(&e, 0, 3000), 1);
    assert_int_equal(e.fs.status, 200);
    assert_true(e.o.bchunk.done);
    assert_int_equal(e.o.bbytes, sent);
    assert_int_equal(e.o.requests, 1);
    env_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),       cmocka_unit_test(test_upstream_errors),
        cmocka_unit_test(test_connect_refused), cmocka_unit_test(test_client_abort),
        cmocka_unit_test(test_cache_filter),  cmocka_unit_test(test_retry),
        cmocka_unit_test(test_breaker_open),  cmocka_unit_test(test_chunked_body_stall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
