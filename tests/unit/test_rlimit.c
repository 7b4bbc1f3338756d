/* Rate limit algorithms with time as an argument: GCRA admits its burst at once then one per
 * emission interval, and its admitted count over any span is rate*span + burst; fixed windows
 * reset at the boundary; the sliding estimate carries the previous window's weight; Retry-After
 * is when a request is admitted again (not earlier, not much later); the table keeps keys apart,
 * stays at its capacity under a flood of keys and drops idle keys before busy ones. The JWT
 * claim reader on good tokens and hostile ones. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcra_burst_then_rate),
        cmocka_unit_test(test_gcra_long_run),
        cmocka_unit_test(test_rates_per_minute_hour),
        cmocka_unit_test(test_fixed_window),
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_sliding_retry_next_window),
        cmocka_unit_test(test_table_keys_apart_and_bounded),
        cmocka_unit_test(test_jwt_claims),
        cmocka_unit_test(test_jwt_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
