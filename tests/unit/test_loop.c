/* Event loop: edge-triggered readiness, registration errors, stale events of a batch, timer order,
 * stop and re-arm, many timers, a timer re-arming itself at 0 ms, deferred tasks that defer more,
 * loop_post/loop_stop from another thread, and the busy-poll window's rule. Waits are epoll waits
 * of a few ms inside the loop (bounded by a watchdog timer), never sleep(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/loop.h"

/* ---- fds ---- */

struct fd_hits {
    int calls;
    unsigned last;
};

static void on_fd(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct fd_hits *h = arg;
    h->calls++;
    h->last = events;
}

static void test_edge_triggered(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    assert_non_null(loop);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct fd_hits h = {0, 0};
    assert_int_equal(loop_add_fd(loop, p[0], LOOP_READ, on_fd, &h), 0);
    assert_int_equal(loop_fd_count(loop), 1);
    loop_run_once(loop, 0);
    assert_int_equal(h.calls, 0);
    assert_int_equal(write(p[1], "a", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 1);
    assert_true(h.last & LOOP_READ);
    /* not read: edge-triggered, so no second report */
    loop_run_once(loop, 0);
    assert_int_equal(h.calls, 1);
    /* new data is a new edge */
    assert_int_equal(write(p[1], "b", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 2);
    /* the writer closes: READ (read() then says EOF) */
    close(p[1]);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 3);
    assert_true(h.last & LOOP_READ);
    assert_int_equal(loop_del_fd(loop, p[0]), 0);
    assert_int_equal(loop_fd_count(loop), 0);
    close(p[0]);
    loop_destroy(loop);
}

static void test_write_and_mod(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct fd_hits h = {0, 0};
    assert_int_equal(loop_add_fd(loop, sv[0], LOOP_READ, on_fd, &h), 0);
    loop_run_once(loop, 0);
    assert_int_equal(h.calls, 0); /* writable, but nobody asked */
    assert_int_equal(loop_mod_fd(loop, sv[0], LOOP_READ | LOOP_WRITE), 0);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 1);
    assert_true(h.last & LOOP_WRITE);
    assert_false(h.last & LOOP_READ);
    assert_int_equal(loop_mod_fd(loop, 999, LOOP_READ), -1);
    assert_int_equal(errno, EBADF);
    /* adding twice fails and leaves the first registration working */
    struct fd_hits h2 = {0, 0};
    assert_int_equal(loop_add_fd(loop, sv[0], LOOP_READ, on_fd, &h2), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(write(sv[1], "x", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 2);
    assert_true(h.last & LOOP_READ);
    assert_int_equal(h2.calls, 0);
    /* the peer goes away: READ for the EOF */
    close(sv[1]);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 3);
    assert_true(h.last & LOOP_READ);
    assert_int_equal(loop_del_fd(loop, sv[0]), 0);
    assert_int_equal(loop_del_fd(loop, sv[0]), -1);
    assert_int_equal(loop_fd_count(loop), 0);
    assert_int_equal(loop_add_fd(loop, -1, LOOP_READ, on_fd, &h), -1);
    close(sv[0]);
    loop_destroy(loop);
}

/* A caller that closes an fd without loop_del_fd: epoll forgets it, the number comes back from
 * pipe(), and registering it again must work (and count once). */
static void test_closed_without_del(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct fd_hits h = {0, 0}, h2 = {0, 0};
    assert_int_equal(loop_add_fd(loop, p[0], LOOP_READ, on_fd, &h), 0);
    int old = p[0];
    close(p[0]);
    close(p[1]);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(p[0], old);
    assert_int_equal(loop_add_fd(loop, p[0], LOOP_READ, on_fd, &h2), 0);
    assert_int_equal(loop_fd_count(loop), 1);
    assert_int_equal(write(p[1], "q", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 0);
    assert_int_equal(h2.calls, 1);
    loop_del_fd(loop, p[0]);
    close(p[0]);
    close(p[1]);
    loop_destroy(loop);
}

/* Two readable pipes in one batch: whichever callback runs first unregisters and closes the
 * other, then opens a new pipe that (very likely) reuses the closed fd number and registers it.
 * The event collected for the old fd must reach nobody. */
struct stale {
    int rd[2], wr[2];
    int calls[2];
    int fresh_rd, fresh_wr;
    struct fd_hits fresh;
};

static void on_stale(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)events;
    struct stale *s = arg;
    int me = fd == s->rd[0] ? 0 : 1, other = 1 - me;
    s->calls[me]++;
    if (s->rd[other] >= 0) {
        int old = s->rd[other];
        assert_int_equal(loop_del_fd(loop, old), 0);
        close(old);
        close(s->wr[other]);
        s->rd[other] = s->wr[other] = -1;
        int p[2];
        assert_int_equal(pipe(p), 0);
        s->fresh_rd = p[0];
        s->fresh_wr = p[1];
        assert_int_equal(loop_add_fd(loop, p[0], LOOP_READ, on_fd, &s->fresh), 0);
    }
}

static void test_stale_events_dropped(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    struct stale s;
    memset(&s, 0, sizeof(s));
    for (int i = 0; i < 2; i++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        s.rd[i] = p[0];
        s.wr[i] = p[1];
        assert_int_equal(loop_add_fd(loop, p[0], LOOP_READ, on_stale, &s), 0);
        assert_int_equal(write(p[1], "z", 1), 1);
    }
    loop_run_once(loop, 100);
    assert_int_equal(s.calls[0] + s.calls[1], 1);
    assert_int_equal(s.fresh.calls, 0);
    for (int i = 0; i < 2; i++) {
        if (s.rd[i] >= 0) {
            loop_del_fd(loop, s.rd[i]);
            close(s.rd[i]);
            close(s.wr[i]);
        }
    }
    loop_del_fd(loop, s.fresh_rd);
    close(s.fresh_rd);
    close(s.fresh_wr);
    loop_destroy(loop);
}

/* ---- timers ---- */

struct fired {
    int order[64];
    int n;
};

struct tctx {
    struct fired *f;
    int id;
};

static void on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct tctx *c = arg;
    c->f->order[c->f->n++] = c->id;
}

static void on_watchdog(struct loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
    fail_msg("watchdog: the loop did not finish in time");
}

/* Runs the loop until <done> says so, bounded by a 5 s watchdog. */
static void run_until(struct loop *loop, int *counter, int want)
{
    struct loop_timer wd;
    loop_timer_init(&wd, on_watchdog, NULL);
    loop_timer_start(loop, &wd, 5000);
    while (*counter < want)
        loop_run_once(loop, -1);
    loop_timer_stop(loop, &wd);
}

struct order_setup {
    struct loop_timer t[4];
    struct tctx c[4];
    struct fired f;
    uint64_t start;
};

/* Arms the timers from inside an iteration, where loop time is one cached value: their order
 * then depends on the delays only, however slow the machine (valgrind) is. */
static void arm_in_order(struct loop *loop, void *arg)
{
    struct order_setup *o = arg;
    static const uint64_t delays[4] = {3, 1, 2, 4};
    for (int i = 0; i < 4; i++) {
        o->c[i].f = &o->f;
        o->c[i].id = i;
        loop_timer_init(&o->t[i], on_timer, &o->c[i]);
        assert_false(loop_timer_armed(&o->t[i]));
        loop_timer_start(loop, &o->t[i], delays[i]);
        assert_true(loop_timer_armed(&o->t[i]));
    }
    loop_timer_stop(loop, &o->t[3]);
    assert_false(loop_timer_armed(&o->t[3]));
    loop_timer_stop(loop, &o->t[3]); /* stopping twice is harmless */
    /* re-arming moves: timer 0 from 3 ms to 0 ms, so it fires first */
    loop_timer_start(loop, &o->t[0], 0);
    o->start = loop_now_ms(loop);
}

static void test_timer_order_stop_rearm(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    struct order_setup o;
    memset(&o, 0, sizeof(o));
    loop_defer(loop, arm_in_order, &o);
    run_until(loop, &o.f.n, 3);
    assert_int_equal(o.f.n, 3);
    assert_int_equal(o.f.order[0], 0);
    assert_int_equal(o.f.order[1], 1);
    assert_int_equal(o.f.order[2], 2);
    assert_true(loop_now_ms(loop) >= o.start + 2);
    for (int i = 0; i < 4; i++)
        assert_false(loop_timer_armed(&o.t[i]));
    loop_run_once(loop, 10);
    assert_int_equal(o.f.n, 3); /* the stopped one never fires */
    loop_destroy(loop);
}

struct many {
    struct loop_timer t;
    uint64_t due;
    struct many_state *st;
    bool fired;
};
struct many_state {
    int fired;
    uint64_t last_due;
    bool out_of_order;
    bool early;
    struct loop *loop;
};

static void on_many(struct loop *loop, void *arg)
{
    struct many *m = arg;
    m->fired = true;
    m->st->fired++;
    if (m->due < m->st->last_due)
        m->st->out_of_order = true;
    if (loop_now_ms(loop) < m->due)
        m->st->early = true;
    m->st->last_due = m->due;
}

static void test_many_timers(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct loop *loop = loop_create();
    struct many *ms = calloc(N, sizeof(*ms));
    struct many_state st = {0, 0, false, false, loop};
    uint64_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t delay = (seed >> 33) % 6;
        ms[i].st = &st;
        loop_timer_init(&ms[i].t, on_many, &ms[i]);
        loop_timer_start(loop, &ms[i].t, delay);
        ms[i].due = loop_now_ms(loop) + delay;
    }
    /* stop every third one, re-arm every fifth (stopped or not) further away */
    int expected = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            loop_timer_stop(loop, &ms[i].t);
        if (i % 5 == 0) {
            loop_timer_start(loop, &ms[i].t, 7);
            ms[i].due = loop_now_ms(loop) + 7;
        }
        if (i % 3 != 0 || i % 5 == 0)
            expected++;
    }
    run_until(loop, &st.fired, expected);
    loop_run_once(loop, 0);
    assert_int_equal(st.fired, expected);
    assert_false(st.out_of_order);
    assert_false(st.early);
    for (int i = 0; i < N; i++)
        assert_int_equal(ms[i].fired, i % 3 != 0 || i % 5 == 0);
    free(ms);
    loop_destroy(loop);
}

struct again {
    struct loop_timer t;
    int fired;
};

static void on_again(struct loop *loop, void *arg)
{
    struct again *a = arg;
    a->fired++;
    if (a->fired < 3)
        loop_timer_start(loop, &a->t, 0); /* at once, again */
}

static void test_timer_rearm_zero_from_callback(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    struct again a = {.fired = 0};
    loop_timer_init(&a.t, on_again, &a);
    loop_timer_start(loop, &a.t, 0);
    loop_run_once(loop, 0);
    /* once per iteration: it must not spin inside one timer pass */
    assert_int_equal(a.fired, 1);
    run_until(loop, &a.fired, 3);
    assert_int_equal(a.fired, 3);
    assert_false(loop_timer_armed(&a.t));
    /* a delay of "forever" must not wrap around to "now" */
    loop_timer_start(loop, &a.t, UINT64_MAX);
    loop_run_once(loop, 0);
    assert_int_equal(a.fired, 3);
    assert_true(loop_timer_armed(&a.t));
    loop_timer_stop(loop, &a.t);
    loop_destroy(loop);
}

static void test_timer_counts_from_now_outside_loop(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    /* setup work between loop_create and the first iteration (busy, not asleep) */
    uint64_t t0 = clock_now_ms();
    while (clock_now_ms() < t0 + 60)
        ;
    struct again a = {.fired = 0};
    loop_timer_init(&a.t, on_again, &a);
    a.fired = 5; /* no re-arm */
    loop_timer_start(loop, &a.t, 50);
    loop_run_once(loop, 0);
    /* counted from the cached creation time it would be 10 ms overdue already */
    assert_int_equal(a.fired, 5);
    loop_timer_stop(loop, &a.t);
    loop_destroy(loop);
}

/* ---- tasks ---- */

struct tasks {
    int order[16];
    int n;
};

static void task_b(struct loop *loop, void *arg)
{
    (void)loop;
    struct tasks *t = arg;
    t->order[t->n++] = 2;
}

static void task_a(struct loop *loop, void *arg)
{
    struct tasks *t = arg;
    t->order[t->n++] = 1;
    loop_defer(loop, task_b, t); /* deferred from a deferred task: same iteration */
}

static void on_fd_defers(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)fd;
    (void)events;
    struct tasks *t = arg;
    t->order[t->n++] = 0;
    loop_defer(loop, task_a, t);
}

static void test_defer(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    struct tasks t = {{0}, 0};
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(loop_add_fd(loop, p[0], LOOP_READ, on_fd_defers, &t), 0);
    assert_int_equal(write(p[1], "a", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.order[0], 0);
    assert_int_equal(t.order[1], 1);
    assert_int_equal(t.order[2], 2);
    /* a pending deferred task makes the next wait non-blocking */
    loop_defer(loop, task_b, &t);
    uint64_t ticks = loop_ticks(loop);
    loop_run_once(loop, -1);
    assert_int_equal(t.n, 4);
    assert_int_equal(loop_ticks(loop), ticks + 1);
    loop_del_fd(loop, p[0]);
    close(p[0]);
    close(p[1]);
    loop_destroy(loop);
}

/* ---- threads ---- */

struct post_ctx {
    struct loop *loop;
    pthread_t self;
    int ran;
    bool on_loop_thread;
    int mode; /* 0: post tasks, the last one stops; 1: loop_stop directly */
};

static void posted(struct loop *loop, void *arg)
{
    struct post_ctx *c = arg;
    c->ran++;
    c->on_loop_thread = pthread_equal(pthread_self(), c->self);
    if (c->ran == 100)
        loop_stop(loop);
}

static void *poster(void *arg)
{
    struct post_ctx *c = arg;
    if (c->mode == 0) {
        for (int i = 0; i < 100; i++)
            loop_post(c->loop, posted, c);
    } else {
        /* wait until the loop is blocked in epoll_wait (it ticked once), then stop it */
        while (loop_ticks(c->loop) == 0)
            sched_yield();
        loop_stop(c->loop);
    }
    return NULL;
}

static void on_watchdog_stop(struct loop *loop, void *arg)
{
    *(bool *)arg = true;
    loop_stop(loop);
}

static void run_with_thread(struct post_ctx *c)
{
    bool timed_out = false;
    struct loop_timer wd;
    loop_timer_init(&wd, on_watchdog_stop, &timed_out);
    loop_timer_start(c->loop, &wd, 5000);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, poster, c), 0);
    assert_int_equal(loop_run(c->loop), 0);
    pthread_join(th, NULL);
    loop_timer_stop(c->loop, &wd);
    assert_false(timed_out);
}

static void test_post_from_thread(void **state)
{
    (void)state;
    struct post_ctx c = {loop_create(), pthread_self(), 0, false, 0};
    run_with_thread(&c);
    assert_int_equal(c.ran, 100);
    assert_true(c.on_loop_thread);
    loop_destroy(c.loop);
}

static void on_tick_timer(struct loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void test_stop_from_thread(void **state)
{
    (void)state;
    struct post_ctx c = {loop_create(), pthread_self(), 0, false, 1};
    /* one quick iteration first so that loop_ticks() moves, then an endless wait */
    struct loop_timer t;
    loop_timer_init(&t, on_tick_timer, NULL);
    loop_timer_start(c.loop, &t, 0);
    run_with_thread(&c);
    assert_true(loop_ticks(c.loop) >= 1);
    /* loop_run can run again after a stop */
    c.mode = 0;
    c.ran = 0;
    run_with_thread(&c);
    assert_int_equal(c.ran, 100);
    loop_destroy(c.loop);
}

/* ---- busy polling ---- */

static void on_busy_timer(struct loop *loop, void *arg)
{
    (void)loop;
    ++*(int *)arg;
}

/* The window opens only after a short sleep, catches an event without sleeping, and shuts after a
 * long sleep: an idle loop never polls. Off by default. Sleeps here are epoll waits that return
 * at once (an event already there, "short" against a 1 ms maximum) or a 5 ms timer ("long"). */
static void test_busy_poll_adapts(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct fd_hits h = {0, 0};
    assert_int_equal(loop_add_fd(loop, p[0], LOOP_READ, on_fd, &h), 0);
    struct loop_poll_stats st;

    /* off: a short sleep opens nothing */
    assert_int_equal(write(p[1], "a", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 1);
    assert_int_equal(loop_busy_poll_window(loop), 0);

    loop_set_busy_poll(loop, 1000);
    /* the event was there: the sleep was shorter than the maximum, the window opens */
    assert_int_equal(write(p[1], "b", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 2);
    assert_int_equal(loop_busy_poll_window(loop), 2);
    loop_busy_poll_stats(loop, &st);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.misses, 0);

    /* the next event is taken by the poll: no sleep */
    assert_int_equal(write(p[1], "c", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(h.calls, 3);
    loop_busy_poll_stats(loop, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 0);
    assert_int_equal(loop_busy_poll_window(loop), 2);
    /* a lower maximum clamps an open window */
    loop_set_busy_poll(loop, 1);
    assert_int_equal(loop_busy_poll_window(loop), 1);
    loop_set_busy_poll(loop, 1000);

    /* nothing for 5 ms: the poll misses, the long sleep shuts the window */
    int fired = 0;
    struct loop_timer t;
    loop_timer_init(&t, on_busy_timer, &fired);
    loop_timer_start(loop, &t, 5);
    while (fired == 0)
        loop_run_once(loop, -1);
    loop_busy_poll_stats(loop, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_true(st.spent_us >= 1); // the missed poll ran its whole 1 us window
    assert_int_equal(loop_busy_poll_window(loop), 0);

    /* idle: long sleeps only, and no poll before them */
    for (int i = 0; i < 5; i++) {
        loop_timer_start(loop, &t, 2);
        int before = fired;
        while (fired == before)
            loop_run_once(loop, -1);
    }
    loop_busy_poll_stats(loop, &st);
    assert_int_equal(st.hits + st.misses, 2);
    assert_int_equal(loop_busy_poll_window(loop), 0);

    /* busy again, then off: 0 shuts the window */
    assert_int_equal(write(p[1], "d", 1), 1);
    loop_run_once(loop, 100);
    assert_int_equal(loop_busy_poll_window(loop), 2);
    loop_set_busy_poll(loop, 0);
    assert_int_equal(loop_busy_poll_window(loop), 0);

    assert_int_equal(loop_del_fd(loop, p[0]), 0);
    close(p[0]);
    close(p[1]);
    loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_triggered),
        cmocka_unit_test(test_write_and_mod),
        cmocka_unit_test(test_stale_events_dropped),
        cmocka_unit_test(test_closed_without_del),
        cmocka_unit_test(test_timer_order_stop_rearm),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_timer_rearm_zero_from_callback),
        cmocka_unit_test(test_timer_counts_from_now_outside_loop),
        cmocka_unit_test(test_defer),
        cmocka_unit_test(test_post_from_thread),
        cmocka_unit_test(test_stop_from_thread),
        cmocka_unit_test(test_busy_poll_adapts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
