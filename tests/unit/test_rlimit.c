/* Rate limit algorithms with time as an argument: GCRA admits its burst at once then one per
 * emission interval, and its admitted count over any span is rate*span + burst; fixed windows
 * reset at the boundary; the sliding estimate carries the previous window's weight; Retry-After
 * is when a request is admitted again (not earlier, not much later); the table keeps keys apart,
 * stays at its capacity under a flood of keys and drops idle keys before busy ones. The JWT
 * claim reader on good tokens and hostile ones. Shared limits: the script's step and the merge,
 * drain and merge on a table, and N instances simulated against a model of the script (rate and
 * overshoot bound of docs/ratelimit.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/rlimit.h"

#define SEC 1000000000ull
#define MS 1000000ull

static void test_gcra_burst_then_rate(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_GCRA, 200, SEC, 50); // 200/s, burst 50: T = 5 ms
    assert_int_equal(p.t_ns, 5 * MS);
    struct rlimit_cell c = {0};
    struct rlimit_verdict v;
    uint64_t now = 1000 * SEC;
    for (int i = 0; i < 50; i++) {
        rlimit_take(&p, &c, now, &v);
        assert_true(v.allowed);
        assert_int_equal(v.remaining, (uint64_t)(49 - i));
    }
    rlimit_take(&p, &c, now, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_ns, 5 * MS);   // one emission interval
    assert_int_equal(v.reset_ns, 250 * MS); // 50 * 5 ms until whole again
    /* just before the retry time: still refused; at it: admitted */
    rlimit_take(&p, &c, now + 5 * MS - 1, &v);
    assert_false(v.allowed);
    rlimit_take(&p, &c, now + 5 * MS, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 0);
}

/* Offered 1000/s for 10 s at 200/s burst 50: admitted = 200*10 + 50 (within one). */
static void test_gcra_long_run(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_GCRA, 200, SEC, 50);
    struct rlimit_cell c = {0};
    struct rlimit_verdict v;
    uint64_t t0 = 5 * SEC, ok = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        rlimit_take(&p, &c, t0 + i * MS, &v);
        ok += v.allowed;
    }
    assert_true(ok >= 2049 && ok <= 2051);
    /* idle once the TAT passed */
    assert_false(rlimit_cell_idle(&p, &c, t0 + 10 * SEC));
    assert_true(rlimit_cell_idle(&p, &c, t0 + 11 * SEC));
}

static void test_rates_per_minute_hour(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_GCRA, 6, 60 * SEC, 1); // 6/m: one every 10 s
    struct rlimit_cell c = {0};
    struct rlimit_verdict v;
    rlimit_take(&p, &c, SEC, &v);
    assert_true(v.allowed);
    rlimit_take(&p, &c, 2 * SEC, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_ns, 9 * SEC);
    rlimit_policy_init(&p, RLIMIT_GCRA, 3, 3600 * SEC, 3); // 3/h, burst 3
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < 3; i++) {
        rlimit_take(&p, &c, SEC, &v);
        assert_true(v.allowed);
    }
    rlimit_take(&p, &c, SEC, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_ns, 1200 * SEC);
}

/* The largest burst the config takes (10,000,000) at the slowest rate (1/h): burst * interval is
 * 3.6e19 ns, past 64 bits. The policy caps the burst's span (146 years) instead of wrapping, so
 * the key still gets its whole burst and the count it is told stays exact. */
static void test_gcra_huge_burst_slow_rate(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_GCRA, 1, 3600 * SEC, 10000000);
    struct rlimit_cell c = {0};
    struct rlimit_verdict v;
    uint64_t now = 1000 * SEC;
    rlimit_take(&p, &c, now, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, p.burst - 1);
    assert_true(p.burst * p.t_ns / p.t_ns == p.burst); /* no wrap in the policy itself */
    assert_true(p.burst >= 1000000);                    /* still far more than a person meant */
    for (int i = 0; i < 1000; i++) {
        rlimit_take(&p, &c, now, &v);
        assert_true(v.allowed);
    }
    assert_int_equal(v.remaining, p.burst - 1001);
}

static void test_fixed_window(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_FIXED, 10, SEC, 0);
    struct rlimit_cell c = {0};
    struct rlimit_verdict v;
    uint64_t w = 7 * SEC; // a window start
    for (int i = 0; i < 10; i++) {
        rlimit_take(&p, &c, w + 300 * MS, &v);
        assert_true(v.allowed);
        assert_int_equal(v.remaining, (uint64_t)(9 - i));
        assert_int_equal(v.reset_ns, 700 * MS);
    }
    rlimit_take(&p, &c, w + 999 * MS, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_ns, 1 * MS);
    rlimit_take(&p, &c, w + SEC, &v); // the next window
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 9);
    assert_false(rlimit_cell_idle(&p, &c, w + SEC + 5 * MS));
    assert_true(rlimit_cell_idle(&p, &c, w + 2 * SEC));
}

static void test_sliding_window(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_SLIDING, 10, SEC, 0);
    struct rlimit_cell c = {0};
    struct rlimit_verdict v;
    uint64_t w = 20 * SEC;
    for (int i = 0; i < 10; i++) {
        rlimit_take(&p, &c, w + 900 * MS, &v);
        assert_true(v.allowed);
    }
    /* 25% into the next window, the previous 10 weigh 7.5: 2 more fit, not 3 */
    rlimit_take(&p, &c, w + 1250 * MS, &v);
    assert_true(v.allowed);
    rlimit_take(&p, &c, w + 1250 * MS, &v);
    assert_true(v.allowed);
    rlimit_take(&p, &c, w + 1250 * MS, &v);
    assert_false(v.allowed);
    /* the retry time is when 10*(1-e) + 2 + 1 <= 10: e >= 0.3 -> 50 ms later */
    uint64_t at = w + 1250 * MS + v.retry_ns;
    assert_true(v.retry_ns >= 49 * MS && v.retry_ns <= 51 * MS);
    struct rlimit_cell c2 = c;
    rlimit_take(&p, &c2, at - 2 * MS, &v);
    assert_false(v.allowed);
    rlimit_take(&p, &c, at, &v);
    assert_true(v.allowed);
    /* across a window boundary, in the second from 30.5 s to 31.5 s (1 ms apart), fixed
     * windows admit 2x the count, the sliding estimate 1.5x at most (it takes the previous
     * window as evenly spread: docs/ratelimit.md) */
    uint64_t ok[2] = {0, 0};
    for (int a = 0; a < 2; a++) {
        rlimit_policy_init(&p, a ? RLIMIT_SLIDING : RLIMIT_FIXED, 100, SEC, 0);
        memset(&c, 0, sizeof(c));
        for (uint64_t i = 0; i < 1000; i++) {
            rlimit_take(&p, &c, 30 * SEC + 500 * MS + i * MS, &v);
            ok[a] += v.allowed;
        }
    }
    assert_int_equal(ok[0], 200);
    assert_true(ok[1] >= 140 && ok[1] <= 151);
}

static void test_sliding_retry_next_window(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_SLIDING, 4, SEC, 0);
    struct rlimit_cell c = {0};
    struct rlimit_verdict v;
    for (int i = 0; i < 4; i++)
        rlimit_take(&p, &c, 3 * SEC + 100 * MS, &v); // first in its window: prev 0
    rlimit_take(&p, &c, 3 * SEC + 200 * MS, &v);
    assert_false(v.allowed);
    /* next window: 4*(1-e) + 1 <= 4 -> e >= 0.25: 800 ms + 250 ms */
    assert_true(v.retry_ns >= 1050 * MS && v.retry_ns <= 1051 * MS);
    rlimit_take(&p, &c, 3 * SEC + 200 * MS + v.retry_ns, &v);
    assert_true(v.allowed);
}

static void test_table_keys_apart_and_bounded(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_GCRA, 10, SEC, 2);
    struct rlimit_table *t = rlimit_table_create(&p, 1000);
    assert_int_equal(rlimit_table_capacity(t), 1024);
    struct rlimit_verdict v;
    uint64_t now = 100 * SEC;
    rlimit_table_take(t, 0x1111, now, &v);
    rlimit_table_take(t, 0x1111, now, &v);
    assert_true(v.allowed);
    rlimit_table_take(t, 0x1111, now, &v);
    assert_false(v.allowed); // key A spent its burst
    rlimit_table_take(t, 0x2222, now, &v);
    assert_true(v.allowed); // key B is apart
    /* a flood of 100 000 keys: the table stays at its capacity and keeps counting */
    for (uint64_t k = 0; k < 100000; k++)
        rlimit_table_take(t, k * 0x9E3779B97F4A7C15ull + 7, now, &v);
    assert_true(rlimit_table_live(t, now) <= 1024);
    assert_true(rlimit_table_evictions(t) >= 100000 - 1024);
    /* idle keys are taken before busy ones: one busy key among idle ones survives a flood of
     * its bucket's size */
    rlimit_table_destroy(t);
    t = rlimit_table_create(&p, 512); // one bucket per shard: keys k*64 + s share shard s
    uint64_t busy = 64 * 5 + 3;
    rlimit_table_take(t, busy, now, &v);
    rlimit_table_take(t, busy, now, &v); // burst spent
    for (uint64_t i = 1; i <= 7; i++)
        rlimit_table_take(t, busy + 64 * 100 * i, now - 2 * SEC, &v); // idle by now
    rlimit_table_take(t, busy + 64 * 1000, now, &v);                  // a new key: an idle one goes
    rlimit_table_take(t, busy, now, &v);
    assert_false(v.allowed); // still limited: not evicted
    assert_int_equal(rlimit_table_evictions(t), 0);
    rlimit_table_destroy(t);
}

/* base64url of the JSON payloads below, without padding (computed by the test) */
static void b64url(const char *in, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (uint32_t)(unsigned char)in[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

static long claim(const char *payload, const char *name, char *out)
{
    char b[8192], auth[9000];
    b64url(payload, b);
    snprintf(auth, sizeof(auth), "Bearer eyJhbGciOiJub25lIn0.%s.c2ln", b);
    return rlimit_jwt_claim(auth, strlen(auth), name, out, 64);
}

static void test_jwt_claims(void **state)
{
    (void)state;
    char out[64];
    long n = claim("{\"sub\":\"user-42\",\"tenant\":\"acme\"}", "sub", out);
    assert_int_equal(n, 7);
    assert_memory_equal(out, "user-42", 7);
    n = claim(" { \"iat\" : 1700000000 , \"tenant\" : \"acme\" } ", "tenant", out);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "acme", 4);
    n = claim("{\"n\":{\"sub\":\"inner\"},\"sub\":\"outer\"}", "sub", out); // top level only
    assert_int_equal(n, 5);
    assert_memory_equal(out, "outer", 5);
    n = claim("{\"a\":[1,{\"b\":\"]}\"}],\"uid\":12345}", "uid", out);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "12345", 5);
    n = claim("{\"k\":\"a\\\"b\"}", "k", out); // escapes kept as written
    assert_int_equal(n, 4);
    assert_memory_equal(out, "a\\\"b", 4);
    /* the scheme is case-insensitive; padding tolerated */
    char auth[256], b[128];
    b64url("{\"sub\":\"x\"}", b);
    snprintf(auth, sizeof(auth), "bEaReR   h.%s==.s", b);
    assert_int_equal(rlimit_jwt_claim(auth, strlen(auth), "sub", out, 64), 1);
}

static void test_jwt_hostile(void **state)
{
    (void)state;
    char out[64];
    /* absent, wrong types, truncated, not an object */
    assert_int_equal(claim("{\"sub\":\"x\"}", "tenant", out), -1);
    assert_int_equal(claim("{\"sub\":null}", "sub", out), -1);
    assert_int_equal(claim("{\"sub\":{\"a\":1}}", "sub", out), -1);
    assert_int_equal(claim("{\"sub\":[\"a\"]}", "sub", out), -1);
    assert_int_equal(claim("{\"sub\":\"unterminated}", "sub", out), -1);
    assert_int_equal(claim("{\"a\":[[[[[[{", "sub", out), -1);
    assert_int_equal(claim("[\"sub\",\"x\"]", "sub", out), -1);
    assert_int_equal(claim("{\"sub\" \"x\"}", "sub", out), -1);
    assert_int_equal(claim("{\"a\":1 \"sub\":\"x\"}", "sub", out), -1);
    assert_int_equal(claim("{\"sub\":\"x\nnl\"}", "sub", out), -1); // raw control byte
    assert_int_equal(claim("{}", "sub", out), -1);
    assert_int_equal(claim("", "sub", out), -1);
    /* a value longer than the caller's room */
    char big[200];
    memset(big, 'v', sizeof(big));
    char js[300];
    snprintf(js, sizeof(js), "{\"sub\":\"%.100s\"}", big);
    assert_int_equal(claim(js, "sub", out), -1);
    /* deep nesting before the claim is skipped without recursion */
    static char deep[6000];
    size_t o = 0;
    o += (size_t)sprintf(deep, "{\"a\":");
    for (int i = 0; i < 1500; i++)
        deep[o++] = '[';
    for (int i = 0; i < 1500; i++)
        deep[o++] = ']';
    strcpy(deep + o, ",\"sub\":\"d\"}");
    assert_int_equal(claim(deep, "sub", out), 1); // 1500 levels skipped, no recursion
    o = (size_t)sprintf(deep, "{\"a\":\"");
    memset(deep + o, 'z', 4200);
    strcpy(deep + o + 4200, "\",\"sub\":\"d\"}");
    assert_int_equal(claim(deep, "sub", out), -1); // payload over 4096 bytes: refused
    /* malformed tokens */
    const char *bad[] = {
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer abc",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer a.!!!.c",
        "Bearer a.e.c",
        "Bearer ..",
        "Token a.eyJzdWIiOiJ4In0.c",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rlimit_jwt_claim(bad[i], strlen(bad[i]), "sub", out, 64), -1);
    /* every prefix of a good token: never a crash, never a read past the end */
    char auth[256], b[128];
    b64url("{\"sub\":\"user-1\",\"x\":[1,2]}", b);
    snprintf(auth, sizeof(auth), "Bearer h.%s.s", b);
    for (size_t n = 0; n < strlen(auth); n++)
        (void)rlimit_jwt_claim(auth, n, "sub", out, 64);
    assert_int_equal(rlimit_jwt_claim(auth, strlen(auth), "sub", out, 64), 6);
}

/* ---- shared GCRA: the sync's arithmetic ---- */

static void test_shared_arithmetic(void **state)
{
    (void)state;
    /* the script's step: an idle key's TAT is now; reports move it; the cap bounds the debt */
    assert_true(rlimit_gcra_global(0, 1e9, 0, 5000, 1.25e6) == 1e9);
    assert_true(rlimit_gcra_global(5e8, 1e9, 10, 5000, 1.25e6) == 1e9 + 50000);
    assert_true(rlimit_gcra_global(1e9 + 20000, 1e9, 10, 5000, 1.25e6) == 1e9 + 70000);
    assert_true(rlimit_gcra_global(1e9 + 20000, 1e9, 0, 5000, 1.25e6) == 1e9 + 20000);
    assert_true(rlimit_gcra_global(1e9, 1e9, 100000, 5000, 1.25e6) == 1e9 + 1.25e6);
    /* the merge: now + debt + what this instance admitted since its report */
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_GCRA, 200, SEC, 50);
    assert_int_equal(rlimit_gcra_merge(&p, 100 * SEC, 0, 0), 100 * SEC);
    assert_int_equal(rlimit_gcra_merge(&p, 100 * SEC, 70 * MS, 3), 100 * SEC + 85 * MS);
}

/* drain lists each active key once, skips a key whose sync is in flight, and the merge sets the
 * cell: a debt of a whole burst refuses the next request, a failed sync leaves the local count */
static void name_fn(void *arg, char name[RLIMIT_NAME_LEN])
{
    memset(name, 'a' + *(int *)arg, RLIMIT_NAME_LEN);
}

static void test_shared_drain_merge(void **state)
{
    (void)state;
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_GCRA, 200, SEC, 50);
    struct rlimit_table *t = rlimit_table_create(&p, 1000);
    rlimit_table_sync_enable(t);
    struct rlimit_verdict v;
    struct rlimit_report rep[8];
    uint64_t now = 50 * SEC;
    int k1 = 1, k2 = 2;
    for (int i = 0; i < 5; i++)
        rlimit_table_take_sync(t, 0x1111, now, &v, name_fn, &k1);
    rlimit_table_take_sync(t, 0x2222, now, &v, name_fn, &k2);
    rlimit_table_take(t, 0x3333, now, &v); // no name: never reported
    assert_int_equal(rlimit_table_active(t), 2);
    size_t n = rlimit_table_drain(t, rep, 8);
    assert_int_equal(n, 2);
    struct rlimit_report *r1 = rep[0].key == 0x1111 ? &rep[0] : &rep[1];
    assert_int_equal(r1->key, 0x1111);
    assert_int_equal(r1->delta, 5);
    assert_int_equal(r1->name[0], 'b');
    assert_int_equal(rlimit_table_active(t), 0);
    /* in flight: active again but not drained until merged */
    rlimit_table_take_sync(t, 0x1111, now, &v, name_fn, &k1);
    assert_int_equal(rlimit_table_drain(t, rep, 8), 0);
    assert_int_equal(rlimit_table_active(t), 1);
    /* the others used the whole burst: after the merge this key is refused */
    rlimit_table_merge(t, 0x1111, true, 50 * 5 * MS, now);
    rlimit_table_take_sync(t, 0x1111, now, &v, name_fn, &k1);
    assert_false(v.allowed);
    n = rlimit_table_drain(t, rep, 8);
    assert_int_equal(n, 1);
    assert_int_equal(rep[0].delta, 1); // the one admitted after the first report
    /* a failed sync: the key keeps its local state (refused still, and admitted later alone) */
    rlimit_table_merge(t, 0x1111, false, 0, now);
    rlimit_table_take_sync(t, 0x1111, now, &v, name_fn, &k1);
    assert_false(v.allowed);
    rlimit_table_take_sync(t, 0x1111, now + 10 * MS, &v, name_fn, &k1);
    assert_true(v.allowed);
    /* a listed cell taken over by a key without a name is not reported */
    for (uint64_t k = 0x20000; k < 0x20000 + 64 * 1024; k += 64 * 4) /* one bucket, until evicted */
        rlimit_table_take_sync(t, k, now, &v, name_fn, &k2);
    for (uint64_t k = 0x90000; k < 0x90000 + 64 * 1024; k += 64 * 4)
        rlimit_table_take(t, k, now + 3600 * SEC, &v);
    n = rlimit_table_drain(t, rep, 8);
    for (size_t i = 0; i < n; i++)
        assert_true(rep[i].key < 0x90000);
    /* at most <max> per drain; the rest wait */
    for (uint64_t k = 0x10000; k < 0x10010; k++)
        rlimit_table_take_sync(t, k, now, &v, name_fn, &k2);
    assert_int_equal(rlimit_table_drain(t, rep, 8), 8);
    assert_true(rlimit_table_drain(t, rep, 8) >= 8);
    rlimit_table_destroy(t);
}

/* N instances sharing 200/s (burst 50) through a model of the script: each offered ~333/s of one
 * key, syncing every 50 ms with a round trip of <rtt_ms> (the script runs at its middle). The
 * admitted total over 1..10 s is 200/s within 2%, and over any span the excess over one GCRA
 * (rate x span + burst) stays within (N - 1) x (burst + rate x (sync + rtt)). */
static void shared_sim(unsigned ninst, uint64_t rtt_ms, double *rate, double *worst_excess)
{
    struct rlimit_policy p;
    rlimit_policy_init(&p, RLIMIT_GCRA, 200, SEC, 50);
    struct rlimit_table *t[4];
    struct {
        bool inflight;
        uint64_t delta, sent, key;
    } q[4] = {{0}};
    for (unsigned i = 0; i < ninst; i++) {
        t[i] = rlimit_table_create(&p, 512);
        rlimit_table_sync_enable(t[i]);
    }
    double gtat = 0, t_us = 5000, cap_us = 50 * 5000.0 + 1e6, debt_us[4] = {0};
    uint64_t t0 = 1000 * SEC, admitted_at_1s = 0, admitted = 0;
    static uint64_t hist[10001]; // admitted by ms
    memset(hist, 0, sizeof(hist));
    int k = 0;
    for (uint64_t ms = 0; ms <= 10000; ms++) {
        uint64_t now = t0 + ms * MS;
        for (unsigned i = 0; i < ninst; i++) {
            /* ~333/s each: one request per 3 ms, instances staggered by 1 ms */
            if ((ms + i) % 3 == 0) {
                struct rlimit_verdict v;
                rlimit_table_take_sync(t[i], 42, now, &v, name_fn, &k);
                if (v.allowed) {
                    admitted++;
                    hist[ms]++;
                }
            }
            /* the script runs in the middle of the round trip, the reply merges at its end */
            if (q[i].inflight && ms == q[i].sent + rtt_ms / 2) {
                double nowus = (double)(now / 1000);
                gtat = rlimit_gcra_global(gtat, nowus, q[i].delta, t_us, cap_us);
                debt_us[i] = gtat - nowus;
            }
            if (q[i].inflight && ms == q[i].sent + rtt_ms) {
                uint64_t at = now - (rtt_ms * MS) / 2;
                rlimit_table_merge(t[i], q[i].key, true, (uint64_t)debt_us[i] * 1000, at);
                q[i].inflight = false;
            }
            if (ms % 50 == i && !q[i].inflight) {
                struct rlimit_report rep[4];
                if (rlimit_table_drain(t[i], rep, 4) == 1) {
                    q[i].inflight = true;
                    q[i].delta = rep[0].delta;
                    q[i].key = rep[0].key;
                    q[i].sent = ms;
                }
            }
        }
        if (ms == 1000)
            admitted_at_1s = admitted;
    }
    *rate = (double)(admitted - admitted_at_1s) / 9.0;
    /* worst excess over one GCRA over any span [a, b) of whole ms */
    double worst = -1e9;
    for (uint64_t a = 0; a < 10000; a += 10) {
        uint64_t sum = 0;
        for (uint64_t b = a; b < 10000; b++) {
            sum += hist[b];
            double ex = (double)sum - (200.0 * (double)(b + 1 - a) / 1000.0 + 50.0);
            if (ex > worst)
                worst = ex;
        }
    }
    *worst_excess = worst;
    for (unsigned i = 0; i < ninst; i++)
        rlimit_table_destroy(t[i]);
}

static void test_shared_simulation(void **state)
{
    (void)state;
    const unsigned ns[] = {1, 3};
    const uint64_t rtts[] = {2, 10};
    for (size_t a = 0; a < 2; a++) {
        for (size_t b = 0; b < 2; b++) {
            double rate, excess;
            shared_sim(ns[a], rtts[b], &rate, &excess);
            double bound = (double)(ns[a] - 1) * (50.0 + 200.0 * (0.050 + (double)rtts[b] / 1000.0));
            printf("# %u instance(s), rtt %llu ms: %.1f/s admitted after the first second, worst "
                   "excess over one GCRA %.1f (bound %.0f)\n",
                   ns[a], (unsigned long long)rtts[b], rate, excess, bound);
            assert_true(rate >= 196 && rate <= 204);
            assert_true(excess <= bound + 1);
        }
    }
}

/* ---- shared windows: budgets ---- */

/* ---- shared windows: grants ---- */

static void test_window_grant(void **state)
{
    (void)state;
    struct rlimit_policy f, sl;
    rlimit_policy_init(&f, RLIMIT_FIXED, 200, SEC, 1);
    rlimit_policy_init(&sl, RLIMIT_SLIDING, 200, SEC, 1);
    assert_int_equal(rlimit_window_lease(&f), 13);
    assert_int_equal(rlimit_window_grant(&f, 0, 0, 0, 0, 0), 13);     /* the lease */
    assert_int_equal(rlimit_window_grant(&f, 20, 20, 50, 0, 0), 40);   /* twice the report */
    assert_int_equal(rlimit_window_grant(&f, 100, 90, 90, 999, 0), 10); /* what is left */
    assert_int_equal(rlimit_window_grant(&f, 150, 10, 60, 0, 0), 0);
    /* sliding: half the previous window still weighs */
    assert_int_equal(rlimit_window_grant(&sl, 50, 50, 0, 200, SEC / 2), 50);
    assert_int_equal(rlimit_window_grant(&sl, 60, 50, 0, 200, SEC / 2), 40);
    assert_int_equal(rlimit_window_grant(&sl, 0, 0, 0, 200, 0), 0);

    /* a new key: the lease; then the grant minus what was admitted since the report; the Redis
     * window's end: the lease again; a failed sync: this instance's own window alone */
    struct rlimit_table *t = rlimit_table_create(&f, 512);
    rlimit_table_sync_enable(t);
    int k = 0;
    uint64_t now = 1000 * SEC + MS;
    struct rlimit_verdict v;
    unsigned ok = 0;
    for (int i = 0; i < 20; i++) {
        rlimit_table_take_sync(t, 7, now, &v, name_fn, &k);
        ok += v.allowed;
    }
    assert_int_equal(ok, 13);
    assert_false(v.allowed);
    assert_true(v.retry_ns > 0 && v.retry_ns == v.reset_ns);
    struct rlimit_report rep[2];
    assert_int_equal(rlimit_table_drain(t, rep, 2), 1);
    assert_int_equal(rep[0].delta, 13);
    rlimit_table_merge_window(t, 7, true, 5, now + SEC / 2);
    ok = 0;
    for (int i = 0; i < 20; i++) {
        rlimit_table_take_sync(t, 7, now, &v, name_fn, &k);
        ok += v.allowed;
    }
    assert_int_equal(ok, 5);
    assert_true(v.reset_ns == SEC / 2);
    ok = 0;
    for (int i = 0; i < 100; i++) {
        rlimit_table_take_sync(t, 7, now + SEC / 2 + MS, &v, name_fn, &k);
        ok += v.allowed;
    }
    assert_int_equal(ok, 13);
    assert_int_equal(rlimit_table_drain(t, rep, 2), 1);
    rlimit_table_merge_window(t, 7, false, 0, 0); /* Redis down */
    ok = 0;
    for (int i = 0; i < 300; i++) {
        rlimit_table_take_sync(t, 7, now + SEC / 2 + 2 * MS, &v, name_fn, &k);
        ok += v.allowed;
    }
    assert_int_equal(ok, 200 - 31); /* the local window had 13 + 5 + 13 */
    rlimit_table_destroy(t);
}

/* N instances sharing a 200/s window through a model of the window script: each offered ~333/s
 * (<skewed>: instance 0 offered 1/s only) of one key, syncing every 50 ms with a round trip of
 * <rtt_ms>; local clocks are <off_ms> off Redis's windows. Admitted per Redis window (after the
 * first): the mean, the least and the most. */
#define SIM_INST 4
static void window_sim(enum rlimit_algo algo, unsigned ninst, uint64_t rtt_ms, uint64_t off_ms,
                       bool skewed, double *mean, uint64_t *worst, uint64_t *least)
{
    struct rlimit_policy p;
    rlimit_policy_init(&p, algo, 200, SEC, 1);
    struct rlimit_table *t[SIM_INST];
    struct {
        bool inflight;
        uint64_t delta, sent, key, grant, wend_ms;
    } q[SIM_INST] = {{0}};
    for (unsigned i = 0; i < ninst; i++) {
        t[i] = rlimit_table_create(&p, 512);
        rlimit_table_sync_enable(t[i]);
    }
    static uint64_t used[12][SIM_INST], resv[12][SIM_INST]; /* Redis: per window and instance */
    static bool seen[12][SIM_INST];
    static uint64_t per_window[12];
    memset(used, 0, sizeof(used));
    memset(resv, 0, sizeof(resv));
    memset(seen, 0, sizeof(seen));
    memset(per_window, 0, sizeof(per_window));
    int k = 0;
    uint64_t t0 = 1000 * SEC + off_ms * MS, lease = rlimit_window_lease(&p);
    for (uint64_t ms = 0; ms < 11000; ms++) {
        uint64_t now = t0 + ms * MS, w = ms / 1000;
        for (unsigned i = 0; i < ninst; i++) {
            bool offer = skewed && i == 0 ? ms % 1000 == 500 : (ms + i) % 3 == 0;
            if (offer) {
                struct rlimit_verdict v;
                rlimit_table_take_sync(t[i], 42, now, &v, name_fn, &k);
                if (v.allowed)
                    per_window[w]++;
            }
            if (q[i].inflight && ms == q[i].sent + rtt_ms / 2) { /* the script runs */
                used[w][i] += q[i].delta;
                seen[w][i] = true;
                uint64_t others = 0, prev = 0;
                for (unsigned j = 0; j < ninst; j++) {
                    uint64_t pj = w > 0 ? (used[w - 1][j] > resv[w - 1][j] ? used[w - 1][j]
                                                                          : resv[w - 1][j])
                                        : 0;
                    prev += pj;
                    if (j == i)
                        continue;
                    if (seen[w][j])
                        others += used[w][j] > resv[w][j] ? used[w][j] : resv[w][j];
                    else if (w > 0 && seen[w - 1][j])
                        others += lease;
                }
                q[i].grant = rlimit_window_grant(&p, used[w][i], q[i].delta, others, prev,
                                                 (ms % 1000) * MS);
                resv[w][i] = used[w][i] + q[i].grant;
                q[i].wend_ms = (w + 1) * 1000;
            }
            if (q[i].inflight && ms == q[i].sent + rtt_ms) {
                rlimit_table_merge_window(t[i], q[i].key, true, q[i].grant, t0 + q[i].wend_ms * MS);
                q[i].inflight = false;
            }
            if (ms % 50 == i && !q[i].inflight) {
                struct rlimit_report rep[4];
                if (rlimit_table_drain(t[i], rep, 4) == 1) {
                    q[i].inflight = true;
                    q[i].delta = rep[0].delta;
                    q[i].key = rep[0].key;
                    q[i].sent = ms;
                }
            }
        }
    }
    uint64_t sum = 0, hi = 0, lo = UINT64_MAX;
    for (unsigned w = 1; w < 11; w++) {
        sum += per_window[w];
        hi = per_window[w] > hi ? per_window[w] : hi;
        lo = per_window[w] < lo ? per_window[w] : lo;
    }
    *mean = (double)sum / 10.0;
    *worst = hi;
    *least = lo;
    for (unsigned i = 0; i < ninst; i++)
        rlimit_table_destroy(t[i]);
}

static void test_window_simulation(void **state)
{
    (void)state;
    const unsigned ns[] = {1, 3};
    const uint64_t rtts[] = {2, 10};
    const uint64_t offs[] = {0, 437};
    const enum rlimit_algo algos[] = {RLIMIT_FIXED, RLIMIT_SLIDING};
    for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 2; b++)
            for (size_t c = 0; c < 2; c++)
                for (size_t d = 0; d < 2; d++)
                    for (int e = 0; e < 2; e++) {
                        if (e && ns[a] == 1)
                            continue;
                        double mean;
                        uint64_t worst, least;
                        window_sim(algos[d], ns[a], rtts[b], offs[c], e, &mean, &worst, &least);
                        printf("# %s, %u instance(s)%s, rtt %llu ms, clocks %llu ms off: %.1f "
                               "admitted per window on average, %llu..%llu\n",
                               algos[d] == RLIMIT_FIXED ? "fixed" : "sliding", ns[a],
                               e ? " (one idle)" : "", (unsigned long long)rtts[b],
                               (unsigned long long)offs[c], mean, (unsigned long long)least,
                               (unsigned long long)worst);
                        assert_true(worst <= 200); /* reservations never overshoot */
                        /* an idle instance may leave its lease (13) unused; a sliding window
                         * under a steady flood admits less per calendar window, as alone */
                        double least_mean = algos[d] == RLIMIT_SLIDING ? (e ? 160 : 175) : e ? 186 : 199;
                        assert_true(mean >= least_mean);
                    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcra_burst_then_rate),
        cmocka_unit_test(test_gcra_long_run),
        cmocka_unit_test(test_rates_per_minute_hour),
        cmocka_unit_test(test_gcra_huge_burst_slow_rate),
        cmocka_unit_test(test_fixed_window),
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_sliding_retry_next_window),
        cmocka_unit_test(test_table_keys_apart_and_bounded),
        cmocka_unit_test(test_jwt_claims),
        cmocka_unit_test(test_jwt_hostile),
        cmocka_unit_test(test_shared_arithmetic),
        cmocka_unit_test(test_shared_drain_merge),
        cmocka_unit_test(test_shared_simulation),
        cmocka_unit_test(test_window_grant),
        cmocka_unit_test(test_window_simulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
