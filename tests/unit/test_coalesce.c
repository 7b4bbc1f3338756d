/* Unit tests for cache/coalesce.c: the first join of a key leads, later joins wait; finish posts
 * every waiter's wake to its own loop exactly once (across threads too); a cancelled waiter is
 * never woken; a cancel after the finish reports that the wake is on its way; try_lead never
 * parks; distinct keys do not interfere. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cache/coalesce.h"
#include "core/loop.h"

static int woken;

static void on_wake(struct loop *loop, void *arg)
{
    (void)loop;
    struct coalesce_waiter *w = arg;
    (*(int *)w->arg)++;
    woken++;
}

static void test_lead_wait_finish(void **state)
{
    (void)state;
    struct loop *l = loop_create();
    struct coalesce *t = coalesce_create();
    struct coalesce_flight *lead = NULL, *other = NULL;
    struct coalesce_waiter w0 = {0}, w[3] = {{0}};
    int hits[3] = {0};
    assert_int_equal(coalesce_join(t, "GET x/a", 7, &w0, &lead), COALESCE_LEADER);
    assert_non_null(lead);
    for (int i = 0; i < 3; i++) {
        w[i].loop = l;
        w[i].wake = on_wake;
        w[i].arg = &hits[i];
        assert_int_equal(coalesce_join(t, "GET x/a", 7, &w[i], &other), COALESCE_WAITING);
    }
    /* another key leads its own flight */
    struct coalesce_flight *lead_b = NULL;
    assert_int_equal(coalesce_join(t, "GET x/b", 7, &w0, &lead_b), COALESCE_LEADER);
    assert_int_equal(coalesce_inflight(t), 2);
    /* the middle waiter leaves (timeout) */
    assert_true(coalesce_cancel(t, &w[1]));
    woken = 0;
    assert_int_equal(coalesce_finish(t, lead), 2);
    assert_int_equal(woken, 0); /* posted, not run inline */
    loop_run_once(l, 0);
    assert_int_equal(woken, 2);
    assert_int_equal(hits[0], 1);
    assert_int_equal(hits[1], 0);
    assert_int_equal(hits[2], 1);
    /* cancelling after the finish: the wake already ran / is on its way */
    assert_false(coalesce_cancel(t, &w[0]));
    /* the key is free again */
    struct coalesce_flight *again = NULL;
    assert_true(coalesce_try_lead(t, "GET x/a", 7, &again));
    assert_false(coalesce_try_lead(t, "GET x/a", 7, &other));
    coalesce_finish(t, again);
    coalesce_finish(t, lead_b);
    assert_int_equal(coalesce_inflight(t), 0);
    coalesce_destroy(t);
    loop_destroy(l);
}

/* Waiters on another thread's loop are woken there. */
struct th {
    struct loop *loop;
    int count;
    _Atomic int done;
};

static void th_wake(struct loop *loop, void *arg)
{
    struct coalesce_waiter *w = arg;
    struct th *x = w->arg;
    x->count++;
    if (x->count == 50)
        loop_stop(loop);
}

static void *th_main(void *arg)
{
    struct th *x = arg;
    loop_run(x->loop);
    x->done = 1;
    return NULL;
}

static void test_cross_thread(void **state)
{
    (void)state;
    struct coalesce *t = coalesce_create();
    struct th x = {.loop = loop_create()};
    pthread_t tid;
    pthread_create(&tid, NULL, th_main, &x);
    struct coalesce_flight *lead = NULL;
    struct coalesce_waiter leader = {0};
    assert_int_equal(coalesce_join(t, "k", 1, &leader, &lead), COALESCE_LEADER);
    static struct coalesce_waiter ws[50];
    for (int i = 0; i < 50; i++) {
        ws[i].loop = x.loop;
        ws[i].wake = th_wake;
        ws[i].arg = &x;
        struct coalesce_flight *f;
        assert_int_equal(coalesce_join(t, "k", 1, &ws[i], &f), COALESCE_WAITING);
    }
    assert_int_equal(coalesce_finish(t, lead), 50);
    pthread_join(tid, NULL);
    assert_int_equal(x.count, 50);
    loop_destroy(x.loop);
    coalesce_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lead_wait_finish),
        cmocka_unit_test(test_cross_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
