/* Balancer choice distributions: smooth weighted round robin is exact and interleaved, P2C least
 * request prefers less loaded servers, peak EWMA prefers the faster server, reacts to a slowdown
 * at once, and probes a formerly slow server again once its estimate decays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/balancer.h"

static void servers_init(struct balancer_server *s, size_t n)
{
    memset(s, 0, n * sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        s[i].eligible = true;
        s[i].weight = 1;
    }
}

static void test_rr_fair_and_smooth(void **state)
{
    (void)state;
    struct balancer b;
    balancer_init(&b, BALANCER_ROUND_ROBIN, 1);
    struct balancer_server s[3];
    servers_init(s, 3);
    int count[3] = {0};
    for (int i = 0; i < 3000; i++)
        count[balancer_pick(&b, s, 3, 0)]++;
    assert_int_equal(count[0], 1000);
    assert_int_equal(count[1], 1000);
    assert_int_equal(count[2], 1000);

    /* Weights 5,1,1: exact shares, and the heavy server never takes more than 2 in a row when the
     * others have credit (nginx's smooth sequence a a b a c a a). */
    servers_init(s, 3);
    s[0].weight = 5;
    char seq[8] = {0};
    for (int i = 0; i < 7; i++)
        seq[i] = (char)('a' + balancer_pick(&b, s, 3, 0));
    assert_string_equal(seq, "aabacaa");

    /* An ineligible server is skipped and the rest share its traffic evenly. */
    servers_init(s, 3);
    s[1].eligible = false;
    memset(count, 0, sizeof(count));
    for (int i = 0; i < 1000; i++)
        count[balancer_pick(&b, s, 3, 0)]++;
    assert_int_equal(count[1], 0);
    assert_int_equal(count[0], 500);
    assert_int_equal(count[2], 500);
    s[0].eligible = s[2].eligible = false;
    assert_int_equal(balancer_pick(&b, s, 3, 0), -1);
}

static void test_p2c_prefers_less_loaded(void **state)
{
    (void)state;
    struct balancer b;
    balancer_init(&b, BALANCER_LEAST_REQUEST, 42);
    struct balancer_server s[4];
    servers_init(s, 4);
    s[0].inflight = 0;
    s[1].inflight = 3;
    s[2].inflight = 6;
    s[3].inflight = 9;
    int count[4] = {0};
    for (int i = 0; i < 12000; i++)
        count[balancer_pick(&b, s, 4, 0)]++;
    /* With two distinct candidates, server k wins when it is drawn and the other is busier:
     * shares 3/6, 2/6, 1/6, 0 of the picks. */
    assert_true(count[0] > 5600 && count[0] < 6400);
    assert_true(count[1] > 3600 && count[1] < 4400);
    assert_true(count[2] > 1600 && count[2] < 2400);
    assert_int_equal(count[3], 0);

    /* Balanced load stays balanced when picks feed back into in-flight counts. */
    servers_init(s, 4);
    for (int i = 0; i < 4000; i++) {
        int k = balancer_pick(&b, s, 4, 0);
        balancer_start(&s[k]);
    }
    for (int i = 0; i < 4; i++)
        assert_true(s[i].inflight >= 990 && s[i].inflight <= 1010);
    /* A single eligible server is always chosen. */
    servers_init(s, 4);
    s[0].eligible = s[1].eligible = s[3].eligible = false;
    assert_int_equal(balancer_pick(&b, s, 4, 0), 2);
}

static void test_ewma_prefers_faster(void **state)
{
    (void)state;
    struct balancer b;
    balancer_init(&b, BALANCER_EWMA, 7);
    struct balancer_server s[2];
    servers_init(s, 2);
    uint64_t now = 1000000;
    /* Server 0 answers in 1 ms, server 1 in 10 ms: feed samples as requests come back. */
    for (int i = 0; i < 100; i++) {
        now += 1000;
        balancer_observe(&b, &s[0], 1000, false, now);
        balancer_observe(&b, &s[1], 10000, false, now);
    }
    int count[2] = {0};
    for (int i = 0; i < 1000; i++)
        count[balancer_pick(&b, s, 2, now)]++;
    assert_int_equal(count[0], 1000); /* with 2 servers P2C always compares both */

    /* Load counts too: 12 requests in flight at the fast one cost more than 1 at the slow one. */
    s[0].inflight = 12;
    assert_int_equal(balancer_pick(&b, s, 2, now), 1);
    s[0].inflight = 0;

    /* Peak: one slow sample makes the fast server expensive at once. */
    balancer_observe(&b, &s[0], 50000, false, now);
    assert_int_equal(balancer_pick(&b, s, 2, now), 1);

    /* A failure counts as a penalty sample. */
    balancer_observe(&b, &s[1], 0, true, now);
    assert_true(balancer_cost(&b, &s[1], now) >= b.penalty_us);

    /* Decay: with no new samples for a minute, the estimates shrink toward 0. */
    double c0 = balancer_cost(&b, &s[0], now);
    double c1 = balancer_cost(&b, &s[0], now + 60000000);
    assert_true(c1 < c0 / 100);

    /* A server never measured gets probed while idle (cost 0), but only one request at a time. */
    struct balancer_server t[2];
    servers_init(t, 2);
    balancer_observe(&b, &t[0], 1000, false, now);
    assert_int_equal(balancer_pick(&b, t, 2, now), 1);
    t[1].inflight = 1;
    assert_int_equal(balancer_pick(&b, t, 2, now), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rr_fair_and_smooth),
        cmocka_unit_test(test_p2c_prefers_less_loaded),
        cmocka_unit_test(test_ewma_prefers_faster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
