/* Upstream pool logic against a real loop and local listening sockets: keep-alive reuse (one
 * connect for many requests), max_connections with a FIFO queue, queue timeout, idle timeout,
 * max_idle, an idle connection closed by the server is dropped, connect refused, no healthy
 * server, cancel, round robin over two servers, passive ejection after max_fails. Timeouts use
 * short real timers (tens of ms) driven by loop_run_once, no sleep(). Late bytes: a dirty idle
 * connection is never lent, pool.settle after bodyless answers and once a server was stray, and
 * .settled waiters (what the cache may keep) skip a connection released just before. */
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
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "gateway/gwconf.h"
#include "gateway/upool.h"
#include "gateway/upstream.h"
#include "gateway/upstream_priv.h"
#include "metrics/metrics.h"
#include "net/sock.h"

/* A listening socket on 127.0.0.1:<ephemeral> that accepts into an array. */
struct server {
    int lfd;
    int port;
    int fds[64];
    int naccepted;
};

static void server_on_accept(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)events;
    struct server *s = arg;
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        if (s->naccepted < 64)
            s->fds[s->naccepted++] = c;
        else
            close(c);
    }
}

static void server_start(struct loop *loop, struct server *s)
{
    memset(s, 0, sizeof(*s));
    struct sock_addr a;
    char err[128];
    assert_int_equal(sock_parse_addr("127.0.0.1:0", &a, err, sizeof(err)), 0);
    s->lfd = sock_listen(&a, false, 64, err, sizeof(err));
    assert_true(s->lfd >= 0);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(s->lfd, (struct sockaddr *)&sin, &len);
    s->port = ntohs(sin.sin_port);
    assert_int_equal(loop_add_fd(loop, s->lfd, LOOP_READ, server_on_accept, s), 0);
}

static void server_stop(struct loop *loop, struct server *s)
{
    loop_del_fd(loop, s->lfd);
    close(s->lfd);
    for (int i = 0; i < s->naccepted; i++)
        if (s->fds[i] >= 0)
            close(s->fds[i]);
}

/* A free port with nothing listening: bind, read the port, close. */
static int dead_port(void)
{
    struct server s;
    struct sock_addr a;
    char err[128];
    sock_parse_addr("127.0.0.1:0", &a, err, sizeof(err));
    s.lfd = sock_listen(&a, false, 1, err, sizeof(err));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(s.lfd, (struct sockaddr *)&sin, &len);
    close(s.lfd);
    return ntohs(sin.sin_port);
}

/* The test fixture: one upstream "api" with up to two servers. */
struct fix {
    struct loop *loop;
    struct server srv[2];
    char spec[2][32];
    struct gw_upserver servers[2];
    struct gw_upstream up;
    struct gw_config cfg;
    struct metrics *m;
    struct metrics_slot *slot;
    struct upstream_set *set;
    struct upool *pool;
};

static void fix_server(struct fix *f, size_t i, int port)
{
    char err[128];
    snprintf(f->spec[i], sizeof(f->spec[i]), "127.0.0.1:%d", port);
    struct gw_upserver *s = &f->servers[i];
    memset(s, 0, sizeof(*s));
    s->spec = f->spec[i];
    s->host = "127.0.0.1";
    s->port = port;
    s->numeric = true;
    s->weight = 1;
    assert_int_equal(sock_parse_addr(f->spec[i], &s->addr, err, sizeof(err)), 0);
}

/* Sets up with defaults; <tune> adjusts the upstream config before the set is built. */
static struct fix *fix_create(size_t nservers, void (*tune)(struct gw_upstream *))
{
    struct fix *f = calloc(1, sizeof(*f));
    f->loop = loop_create();
    for (size_t i = 0; i < nservers; i++) {
        server_start(f->loop, &f->srv[i]);
        fix_server(f, i, f->srv[i].port);
    }
    f->up.name = "api";
    f->up.servers = f->servers;
    f->up.nservers = nservers;
    f->up.balance = GW_BALANCE_ROUND_ROBIN;
    f->up.pool.max_connections = 8;
    f->up.pool.max_idle = 8;
    f->up.pool.idle_timeout_ms = 60000;
    f->up.pool.queue_timeout_ms = 1000;
    f->up.pool.max_queue = 100;
    f->up.connect_timeout_ms = 1000;
    f->up.fail_timeout_ms = 10000;
    if (tune)
        tune(&f->up);
    f->cfg.upstreams = &f->up;
    f->cfg.nupstreams = 1;
    f->m = metrics_create();
    f->slot = metrics_slot_get(f->m);
    char err[256];
    f->set = upstream_set_create(&f->cfg, f->m, 1, err, sizeof(err));
    assert_non_null(f->set);
    f->pool = upool_create(f->loop, upstream_set_at(f->set, 0), f->slot);
    return f;
}

static void fix_destroy(struct fix *f)
{
    upool_destroy(f->pool);
    loop_run_once(f->loop, 0); /* deferred frees */
    upstream_set_destroy(f->set);
    metrics_destroy(f->m);
    for (size_t i = 0; i < 2; i++)
        if (f->srv[i].lfd > 0)
            server_stop(f->loop, &f->srv[i]);
    loop_destroy(f->loop);
    free(f);
}

/* A request waiting for a connection. */
struct req {
    struct upool_waiter w;
    struct uconn *c;
    const char *err;
    int called;
    int order; /* when it was served, among all reqs */
};
static int served_seq;

static void req_ready(struct upool_waiter *w, struct uconn *c, const char *err)
{
    struct req *r = (struct req *)w;
    r->c = c;
    r->err = err;
    r->called++;
    r->order = ++served_seq;
}

/* Acquires for <r>: returns true when served at once. */
static bool req_acquire(struct fix *f, struct req *r)
{
    memset(r, 0, sizeof(*r));
    r->w.ready = req_ready;
    const char *err = NULL;
    struct uconn *c = upool_acquire(f->pool, &r->w, 0, &err);
    if (c != NULL) {
        r->c = c;
        r->called = 1;
        r->order = ++served_seq;
        return true;
    }
    if (err != NULL) {
        r->err = err;
        r->called = 1;
    }
    return false;
}

/* Runs the loop until <cond> holds or <max_ms> pass. */
#define RUN_UNTIL(f, cond, max_ms)                                                                 \
    do {                                                                                           \
        uint64_t t0_ = clock_now_ms();                                                             \
        while (!(cond) && clock_now_ms() - t0_ < (max_ms))                                         \
            loop_run_once((f)->loop, 5);                                                           \
    } while (0)

static int64_t metric(struct fix *f, const char *name, const char *a, const char *b,
                      const char *c)
{
    const char *v[] = {a, b, c, NULL};
    metrics_ref r = metrics_lookup(f->m, name, v);
    assert_int_not_equal(r, METRICS_REF_NONE);
    return metrics_read(f->m, r, METRICS_COUNTER);
}

static void test_reuse(void **state)
{
    (void)state;
    struct fix *f = fix_create(1, NULL);
    struct req r1, r2;
    assert_false(req_acquire(f, &r1)); /* no idle connection: opening one */
    RUN_UNTIL(f, r1.called, 1000);
    assert_int_equal(r1.called, 1);
    assert_non_null(r1.c);
    assert_null(r1.err);
    assert_false(uconn_reused(r1.c));
    assert_string_equal(uconn_server_name(r1.c), f->spec[0]);
    upool_release(f->pool, r1.c, true);
    struct upool_stats st;
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.in_use, 0);

    for (int i = 0; i < 10; i++) {
        assert_true(req_acquire(f, &r2)); /* the idle one, at once */
        assert_ptr_equal(r2.c, r1.c);
        assert_true(uconn_reused(r2.c));
        upool_release(f->pool, r2.c, true);
    }
    RUN_UNTIL(f, f->srv[0].naccepted >= 1, 200);
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reuses, 10);
    assert_int_equal(f->srv[0].naccepted, 1);
    assert_int_equal(metric(f, "apigate_upstream_connects_total", "api", f->spec[0], NULL), 1);
    assert_int_equal(metric(f, "apigate_pool_reuses_total", "api", NULL, NULL), 10);
    const char *idle[] = {"api", "idle", NULL};
    assert_int_equal(metrics_read(f->m, metrics_lookup(f->m, "apigate_pool_connections", idle),
                                  METRICS_GAUGE),
                     1);

    /* Not reusable: closed, next acquire opens a new connection. */
    assert_true(req_acquire(f, &r2));
    upool_release(f->pool, r2.c, false);
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.idle, 0);
    assert_int_equal(metric(f, "apigate_pool_closed_total", "api", "not_reusable", NULL), 1);
    assert_false(req_acquire(f, &r2));
    RUN_UNTIL(f, r2.called, 1000);
    assert_non_null(r2.c);
    upool_release(f->pool, r2.c, true);
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.connects, 2);
    fix_destroy(f);
}

static void tune_max2(struct gw_upstream *u)
{
    u->pool.max_connections = 2;
}

static void test_max_connections_fifo(void **state)
{
    (void)state;
    struct fix *f = fix_create(1, tune_max2);
    struct req r[5];
    served_seq = 0;
    for (int i = 0; i < 5; i++)
        assert_false(req_acquire(f, &r[i]));
    struct upool_stats st;
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.connecting, 2);
    assert_int_equal(st.waiting, 3);
    RUN_UNTIL(f, r[0].called && r[1].called, 1000);
    assert_non_null(r[0].c);
    assert_non_null(r[1].c);
    assert_int_equal(r[2].called + r[3].called + r[4].called, 0);

    /* Each release serves the oldest waiter, with the same connection. */
    struct uconn *c0 = r[0].c;
    upool_release(f->pool, c0, true);
    RUN_UNTIL(f, r[2].called, 500);
    assert_ptr_equal(r[2].c, c0);
    assert_int_equal(r[3].called, 0);
    assert_true(r[2].w.wait_us > 0);
    upool_release(f->pool, r[1].c, true);
    RUN_UNTIL(f, r[3].called, 500);
    assert_non_null(r[3].c);
    upool_release(f->pool, r[2].c, true);
    RUN_UNTIL(f, r[4].called, 500);
    assert_non_null(r[4].c);
    assert_true(r[2].order < r[3].order && r[3].order < r[4].order);
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(f->srv[0].naccepted, 2);

    /* A queued waiter that cancels is never called and leaves the queue. */
    struct req late;
    assert_false(req_acquire(f, &late));
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.waiting, 1);
    upool_cancel(&late.w);
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.waiting, 0);
    upool_release(f->pool, r[3].c, true);
    upool_release(f->pool, r[4].c, true);
    RUN_UNTIL(f, false, 20);
    assert_int_equal(late.called, 0);
    fix_destroy(f);
}

static void tune_queue(struct gw_upstream *u)
{
    u->pool.max_connections = 1;
    u->pool.queue_timeout_ms = 40;
    u->pool.max_queue = 1;
}

static void test_queue_timeout_and_full(void **state)
{
    (void)state;
    struct fix *f = fix_create(1, tune_queue);
    struct req a, b, c;
    assert_false(req_acquire(f, &a));
    RUN_UNTIL(f, a.called, 1000);
    assert_non_null(a.c);
    assert_false(req_acquire(f, &b)); /* queued */
    assert_int_equal(b.called, 0);
    assert_false(req_acquire(f, &c)); /* max_queue 1: refused at once */
    assert_ptr_equal(c.err, upool_err_queue_full);
    uint64_t t0 = clock_now_ms();
    RUN_UNTIL(f, b.called, 1000);
    uint64_t waited = clock_now_ms() - t0;
    assert_int_equal(b.called, 1);
    assert_null(b.c);
    assert_ptr_equal(b.err, upool_err_queue_timeout);
    assert_true(waited >= 30 && waited < 500);
    assert_true(b.w.wait_us >= 35000);
    assert_int_equal(metric(f, "apigate_pool_errors_total", "api", "queue_timeout", NULL), 1);
    assert_int_equal(metric(f, "apigate_pool_errors_total", "api", "queue_full", NULL), 1);
    struct hist h;
    hist_init(&h);
    const char *v[] = {"api", NULL};
    metrics_read_hist(f->m, metrics_lookup(f->m, "apigate_pool_wait_seconds", v), &h);
    assert_int_equal(h.count, 1);
    upool_release(f->pool, a.c, true);
    fix_destroy(f);
}

static void tune_idle(struct gw_upstream *u)
{
    u->pool.idle_timeout_ms = 30;
    u->pool.max_idle = 1;
}

static void test_idle_timeout_and_max_idle(void **state)
{
    (void)state;
    struct fix *f = fix_create(1, tune_idle);
    struct req a, b;
    assert_false(req_acquire(f, &a));
    assert_false(req_acquire(f, &b));
    RUN_UNTIL(f, a.called && b.called, 1000);
    upool_release(f->pool, a.c, true);
    upool_release(f->pool, b.c, true); /* second idle one: over max_idle, the oldest closes */
    struct upool_stats st;
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.idle, 1);
    assert_int_equal(metric(f, "apigate_pool_closed_total", "api", "max_idle", NULL), 1);
    RUN_UNTIL(f, (upool_get_stats(f->pool, &st), st.idle == 0), 500);
    assert_int_equal(st.idle, 0);
    assert_int_equal(metric(f, "apigate_pool_closed_total", "api", "idle_timeout", NULL), 1);
    fix_destroy(f);
}

static void test_upstream_closed_idle(void **state)
{
    (void)state;
    struct fix *f = fix_create(1, NULL);
    struct req a;
    assert_false(req_acquire(f, &a));
    RUN_UNTIL(f, a.called && f->srv[0].naccepted == 1, 1000);
    upool_release(f->pool, a.c, true);
    struct upool_stats st;
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.idle, 1);
    /* The server closes its side of the kept-alive connection (its keep-alive timeout). */
    close(f->srv[0].fds[0]);
    f->srv[0].fds[0] = -1;
    RUN_UNTIL(f, (upool_get_stats(f->pool, &st), st.idle == 0), 1000);
    assert_int_equal(st.idle, 0);
    assert_int_equal(metric(f, "apigate_pool_closed_total", "api", "upstream_closed", NULL), 1);
    /* The next request opens a fresh connection instead of writing into a dead one. */
    assert_false(req_acquire(f, &a));
    RUN_UNTIL(f, a.called, 1000);
    assert_non_null(a.c);
    assert_false(uconn_reused(a.c));
    upool_release(f->pool, a.c, true);
    fix_destroy(f);
}

static void tune_settle(struct gw_upstream *u) { u->pool.settle_ms = 300; }

/* Late bytes: an idle connection with bytes pending is never lent (the peek sees them before the
 * loop does), and the server is then suspect: every release settles. A bodyless answer
 * (uconn_settle) settles its connection; a .settled waiter skips one freshly released. */
static void test_late_bytes(void **state)
{
    (void)state;
    struct fix *f = fix_create(1, tune_settle);
    struct req a, b;
    struct upool_stats st;
    assert_false(req_acquire(f, &a));
    RUN_UNTIL(f, a.called && f->srv[0].naccepted == 1, 1000);
    struct uconn *first = a.c;
    /* a response without a body: settles, so the next request gets a new connection */
    uconn_settle(first);
    upool_release(f->pool, first, true);
    assert_false(req_acquire(f, &b));
    RUN_UNTIL(f, b.called, 1000);
    assert_non_null(b.c);
    assert_ptr_not_equal(b.c, first);
    assert_true(uconn_settled(b.c)); /* new */
    /* an ordinary answer: reusable at once */
    upool_release(f->pool, b.c, true);
    assert_true(req_acquire(f, &a));
    assert_ptr_equal(a.c, b.c);
    assert_false(uconn_settled(a.c)); /* reused right after its exchange */
    upool_release(f->pool, a.c, true);
    /* a waiter that wants a settled connection skips it (the other one settles until later) */
    memset(&a, 0, sizeof(a));
    a.w.ready = req_ready;
    a.w.settled = true;
    const char *err = NULL;
    assert_null(upool_acquire(f->pool, &a.w, 0, &err));
    assert_null(err);
    RUN_UNTIL(f, a.called, 1000);
    assert_non_null(a.c);
    assert_true(uconn_settled(a.c));
    upool_release(f->pool, a.c, true);
    RUN_UNTIL(f, f->srv[0].naccepted == 3, 1000);
    assert_int_equal(f->srv[0].naccepted, 3);

    /* bytes from the server on idle connections, not yet seen by the loop: the peek finds them,
     * they are closed, and the request gets a new connection */
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.idle, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(write(f->srv[0].fds[i], "late", 4), 4);
    assert_false(req_acquire(f, &a));
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.idle, 1); /* the settling one was not a candidate: the loop closes it */
    assert_int_equal(metric(f, "apigate_pool_closed_total", "api", "stray_bytes", NULL), 2);
    RUN_UNTIL(f, a.called && (upool_get_stats(f->pool, &st), st.idle == 0), 1000);
    assert_int_equal(st.idle, 0);
    assert_int_equal(metric(f, "apigate_pool_closed_total", "api", "stray_bytes", NULL), 3);
    assert_non_null(a.c);
    assert_false(uconn_reused(a.c));
    /* the server is suspect now: an ordinary answer settles too */
    upool_release(f->pool, a.c, true);
    assert_false(req_acquire(f, &b));
    RUN_UNTIL(f, b.called, 1000);
    assert_ptr_not_equal(b.c, a.c);
    upool_release(f->pool, b.c, true);
    fix_destroy(f);
}

static void tune_passive(struct gw_upstream *u)
{
    u->max_fails = 2;
    u->fail_timeout_ms = 60000;
}

static void test_connect_refused_and_ejection(void **state)
{
    (void)state;
    struct fix *f = fix_create(0, tune_passive);
    /* Rebuild with one dead server (nothing listening). */
    fix_destroy(f);
    f = calloc(1, sizeof(*f));
    f->loop = loop_create();
    fix_server(f, 0, dead_port());
    f->up = (struct gw_upstream){.name = "api", .servers = f->servers, .nservers = 1,
                                 .connect_timeout_ms = 1000, .max_fails = 2,
                                 .fail_timeout_ms = 60000};
    f->up.pool = (struct gw_pool){.max_connections = 4, .max_idle = 4, .idle_timeout_ms = 1000,
                                  .queue_timeout_ms = 1000, .max_queue = 10};
    f->cfg.upstreams = &f->up;
    f->cfg.nupstreams = 1;
    f->m = metrics_create();
    f->slot = metrics_slot_get(f->m);
    char err[256];
    f->set = upstream_set_create(&f->cfg, f->m, 1, err, sizeof(err));
    f->pool = upool_create(f->loop, upstream_set_at(f->set, 0), f->slot);

    struct req a, b, c;
    req_acquire(f, &a);
    RUN_UNTIL(f, a.called, 1000);
    assert_null(a.c);
    assert_ptr_equal(a.err, upool_err_connect_refused);
    assert_int_equal(metric(f, "apigate_upstream_connect_errors_total", "api", f->spec[0],
                            "connect_refused"),
                     1);
    assert_true(upstream_has_healthy(upstream_set_at(f->set, 0)));
    req_acquire(f, &b);
    RUN_UNTIL(f, b.called, 1000);
    assert_ptr_equal(b.err, upool_err_connect_refused);
    /* Two failures = max_fails: ejected for fail_timeout. It is the only server: the next
     * request tries it anyway (panic mode) rather than failing without touching the network. */
    assert_false(upstream_has_healthy(upstream_set_at(f->set, 0)));
    assert_int_equal(metric(f, "apigate_upstream_ejections_total", "api", f->spec[0], NULL), 1);
    req_acquire(f, &c);
    RUN_UNTIL(f, c.called, 1000);
    assert_ptr_equal(c.err, upool_err_connect_refused);
    assert_true(atomic_load(&upstream_set_at(f->set, 0)->panic));
    fix_destroy(f);
}

static void test_no_healthy_and_backup(void **state)
{
    (void)state;
    struct fix *f = fix_create(2, NULL);
    struct upstream *u = upstream_set_at(f->set, 0);
    f->servers[1].backup = true;
    struct req a;
    /* The backup server takes nothing while the primary is up. */
    for (int i = 0; i < 4; i++) {
        req_acquire(f, &a);
        RUN_UNTIL(f, a.called, 1000);
        assert_int_equal(uconn_server(a.c), 0);
        upool_release(f->pool, a.c, false);
    }
    upstream__set_healthy(u, &u->servers[0], false, "test");
    req_acquire(f, &a);
    RUN_UNTIL(f, a.called, 1000);
    assert_non_null(a.c);
    assert_int_equal(uconn_server(a.c), 1);
    upool_release(f->pool, a.c, true);
    upstream__set_healthy(u, &u->servers[1], false, "test");
    /* Both down: panic mode tries the primary anyway, and its success marks it up at once. */
    req_acquire(f, &a);
    RUN_UNTIL(f, a.called, 1000);
    assert_non_null(a.c);
    assert_int_equal(uconn_server(a.c), 0);
    assert_true(atomic_load(&u->panic));
    upool_observe(f->pool, a.c, 1000, false);
    upool_release(f->pool, a.c, true);
    assert_true(upstream_server_healthy(u, 0));
    upstream__set_healthy(u, &u->servers[0], false, "test");
    char why[128];
    f->cfg.nroutes = 0;
    assert_true(upstream_set_ready(f->set, why, sizeof(why))); /* no route uses it */
    struct gw_route route = {.match = "/", .upstream_index = 0};
    f->cfg.routes = &route;
    f->cfg.nroutes = 1;
    assert_false(upstream_set_ready(f->set, why, sizeof(why)));
    assert_non_null(strstr(why, "api"));
    upstream__set_healthy(u, &u->servers[0], true, "test");
    assert_true(upstream_set_ready(f->set, why, sizeof(why)));
    f->cfg.nroutes = 0;
    fix_destroy(f);
}

static void test_round_robin_two_servers(void **state)
{
    (void)state;
    struct fix *f = fix_create(2, NULL);
    struct req r[6];
    for (int i = 0; i < 6; i++)
        req_acquire(f, &r[i]);
    RUN_UNTIL(f, r[5].called && f->srv[0].naccepted + f->srv[1].naccepted == 6, 1000);
    int per[2] = {0, 0};
    for (int i = 0; i < 6; i++) {
        assert_non_null(r[i].c);
        per[uconn_server(r[i].c)]++;
    }
    assert_int_equal(per[0], 3);
    assert_int_equal(per[1], 3);
    assert_int_equal(f->srv[0].naccepted, 3);
    assert_int_equal(f->srv[1].naccepted, 3);
    for (int i = 0; i < 6; i++)
        upool_release(f->pool, r[i].c, true);
    /* The JSON status lists both servers. */
    struct buf out = BUF_INIT;
    upstream_set_status_json(f->set, &out);
    buf_append(&out, "", 1);
    assert_non_null(strstr(out.data, f->spec[1]));
    buf_deinit(&out);
    fix_destroy(f);
}

/* A waiter whose connection is still being opened cancels: the connection goes idle and the
 * waiter is never called. */
static void test_cancel_while_connecting(void **state)
{
    (void)state;
    struct fix *f = fix_create(1, NULL);
    struct req a;
    assert_false(req_acquire(f, &a));
    upool_cancel(&a.w);
    struct upool_stats st;
    RUN_UNTIL(f, (upool_get_stats(f->pool, &st), st.idle == 1), 1000);
    assert_int_equal(st.idle, 1);
    assert_int_equal(a.called, 0);
    fix_destroy(f);
}

/* A server given by host name goes through the resolver (never getaddrinfo on the loop): with
 * "localhost" against a dual-stack listener, connections work whichever record comes first. */
static void test_hostname_server(void **state)
{
    (void)state;
    struct fix *f = calloc(1, sizeof(*f));
    f->loop = loop_create();
    struct sock_addr any;
    char err[256];
    assert_int_equal(sock_parse_addr("[::]:0", &any, err, sizeof(err)), 0);
    f->srv[0].lfd = sock_listen(&any, false, 64, err, sizeof(err));
    if (f->srv[0].lfd < 0) { /* no IPv6 on this host: nothing to learn here */
        loop_destroy(f->loop);
        free(f);
        skip();
        return;
    }
    struct sockaddr_in6 sin6;
    socklen_t len = sizeof(sin6);
    getsockname(f->srv[0].lfd, (struct sockaddr *)&sin6, &len);
    f->srv[0].port = ntohs(sin6.sin6_port);
    assert_int_equal(loop_add_fd(f->loop, f->srv[0].lfd, LOOP_READ, server_on_accept, &f->srv[0]), 0);
    snprintf(f->spec[0], sizeof(f->spec[0]), "localhost:%d", f->srv[0].port);
    f->servers[0] = (struct gw_upserver){.spec = f->spec[0], .host = "localhost",
                                         .port = f->srv[0].port, .numeric = false, .weight = 1};
    f->up = (struct gw_upstream){.name = "api", .servers = f->servers, .nservers = 1,
                                 .connect_timeout_ms = 1000};
    f->up.pool = (struct gw_pool){.max_connections = 4, .max_idle = 4, .idle_timeout_ms = 1000,
                                  .queue_timeout_ms = 1000, .max_queue = 10};
    f->cfg.upstreams = &f->up;
    f->cfg.nupstreams = 1;
    f->m = metrics_create();
    f->slot = metrics_slot_get(f->m);
    f->set = upstream_set_create(&f->cfg, f->m, 1, err, sizeof(err));
    assert_non_null(f->set);
    assert_int_equal(upstream_set_start(f->set, err, sizeof(err)), 0);
    f->pool = upool_create(f->loop, upstream_set_at(f->set, 0), f->slot);
    assert_true(upstream_has_healthy(upstream_set_at(f->set, 0)));
    struct req a[3];
    for (int i = 0; i < 3; i++) {
        req_acquire(f, &a[i]);
        RUN_UNTIL(f, a[i].called, 1000);
        assert_non_null(a[i].c);
    }
    for (int i = 0; i < 3; i++)
        upool_release(f->pool, a[i].c, true);
    fix_destroy(f);
}

static void tune_fast_connect_timeout(struct gw_upstream *u)
{
    u->connect_timeout_ms = 60;
}

/* A server whose accept queue is full drops SYNs: the connect hangs until connect_timeout. */
static void test_connect_timeout(void **state)
{
    (void)state;
    struct fix *f = fix_create(1, tune_fast_connect_timeout);
    /* Stop accepting and fill the backlog (listen(…, 64) holds 65) with plain sockets. */
    loop_del_fd(f->loop, f->srv[0].lfd);
    struct sock_addr a = f->servers[0].addr;
    int fill[80];
    int nfill = 0;
    for (; nfill < 80; nfill++) {
        fill[nfill] = sock_connect(&a);
        if (fill[nfill] < 0)
            break;
    }
    /* Let the handshakes of the filler sockets complete or stall. */
    RUN_UNTIL(f, false, 50);
    struct req r;
    req_acquire(f, &r);
    uint64_t t0 = clock_now_ms();
    RUN_UNTIL(f, r.called, 2000);
    uint64_t took = clock_now_ms() - t0;
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    assert_int_equal(r.called, 1);
    assert_null(r.c);
    assert_ptr_equal(r.err, upool_err_connect_timeout);
    assert_true(took >= 50 && took < 1000);
    assert_int_equal(metric(f, "apigate_upstream_connect_errors_total", "api", f->spec[0],
                            "connect_timeout"),
                     1);
    fix_destroy(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_max_connections_fifo),
        cmocka_unit_test(test_queue_timeout_and_full),
        cmocka_unit_test(test_idle_timeout_and_max_idle),
        cmocka_unit_test(test_upstream_closed_idle),
        cmocka_unit_test(test_connect_refused_and_ejection),
        cmocka_unit_test(test_no_healthy_and_backup),
        cmocka_unit_test(test_round_robin_two_servers),
        cmocka_unit_test(test_cancel_while_connecting),
        cmocka_unit_test(test_hostname_server),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_late_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
