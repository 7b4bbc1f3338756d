/* Cache-Control parsing: every directive, quoted values, qualified no-cache/private, case,
 * duplicates (first occurrence wins, booleans accumulate), invalid max-age flagged, and the
 * http-cache-tests cc-parse cases that decide a response's freshness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/cachectl.h"

static struct cache_control cc_of(const char *v)
{
    struct cache_control cc;
    cachectl_init(&cc);
    cachectl_parse(&cc, v, strlen(v));
    return cc;
}

static void test_init(void **state)
{
    (void)state;
    struct cache_control cc = cc_of("");
    assert_int_equal(cc.max_age, CACHECTL_ABSENT);
    assert_int_equal(cc.s_maxage, CACHECTL_ABSENT);
    assert_int_equal(cc.max_stale, CACHECTL_ABSENT);
    assert_int_equal(cc.min_fresh, CACHECTL_ABSENT);
    assert_int_equal(cc.stale_while_revalidate, CACHECTL_ABSENT);
    assert_int_equal(cc.stale_if_error, CACHECTL_ABSENT);
    assert_false(cc.no_store || cc.no_cache || cc.private_ || cc.public_ || cc.max_age_invalid);
}

static void test_all_directives(void **state)
{
    (void)state;
    struct cache_control cc =
        cc_of("public, max-age=60, s-maxage=120, stale-while-revalidate=30, stale-if-error=600, "
              "must-revalidate, proxy-revalidate, must-understand, no-transform, immutable");
    assert_true(cc.public_);
    assert_int_equal(cc.max_age, 60);
    assert_int_equal(cc.s_maxage, 120);
    assert_int_equal(cc.stale_while_revalidate, 30);
    assert_int_equal(cc.stale_if_error, 600);
    assert_true(cc.must_revalidate && cc.proxy_revalidate && cc.must_understand &&
                cc.no_transform && cc.immutable);
    assert_false(cc.no_store || cc.no_cache || cc.private_);

    cc = cc_of("no-store");
    assert_true(cc.no_store);
    cc = cc_of("max-stale, min-fresh=5, only-if-cached, no-cache");
    assert_int_equal(cc.max_stale, INT64_MAX);
    assert_int_equal(cc.min_fresh, 5);
    assert_true(cc.only_if_cached);
    assert_true(cc.no_cache);
    cc = cc_of("max-stale=10");
    assert_int_equal(cc.max_stale, 10);
}

static void test_case_and_spacing(void **state)
{
    (void)state;
    struct cache_control cc = cc_of("  Max-Age=10 ,NO-STORE,,\tPrivate  ");
    assert_int_equal(cc.max_age, 10);
    assert_true(cc.no_store);
    assert_true(cc.private_);
    assert_false(cc.private_fields);
}

static void test_qualified(void **state)
{
    (void)state;
    struct cache_control cc = cc_of("no-cache=\"Set-Cookie, X-Foo\", max-age=5");
    assert_false(cc.no_cache);
    assert_true(cc.no_cache_fields);
    assert_int_equal(cc.max_age, 5);
    cc = cc_of("private=\"Authorization\"");
    assert_false(cc.private_);
    assert_true(cc.private_fields);
    cc = cc_of("no-cache=Set-Cookie, no-cache");
    assert_true(cc.no_cache);
    assert_true(cc.no_cache_fields);
}

static void test_quoted(void **state)
{
    (void)state;
    /* quoted delta-seconds is tolerated (senders must not, recipients may) */
    struct cache_control cc = cc_of("max-age=\"3600\"");
    assert_int_equal(cc.max_age, 3600);
    /* max-age inside a quoted extension value is not a directive (cc-parse, required) */
    cc = cc_of("extension=\"max-age=3600\", max-age=1");
    assert_int_equal(cc.max_age, 1);
    cc = cc_of("max-age=1, extension=\"max-age=3600\"");
    assert_int_equal(cc.max_age, 1);
    cc = cc_of("ext=\"a,no-store,\\\"b\", public");
    assert_false(cc.no_store);
    assert_true(cc.public_);
    /* single quotes are not quotes: invalid (cc-parse freshness-max-age-single-quoted) */
    cc = cc_of("max-age='3600'");
    assert_int_equal(cc.max_age, CACHECTL_ABSENT);
    assert_true(cc.max_age_invalid);
    /* unterminated quote */
    cc = cc_of("max-age=\"36");
    assert_true(cc.max_age_invalid);
}

static void test_duplicates(void **state)
{
    (void)state;
    /* RFC 9111 §4.2.1: the first occurrence is used */
    struct cache_control cc = cc_of("max-age=1800, max-age=1");
    assert_int_equal(cc.max_age, 1800);
    cc = cc_of("max-age=1, max-age=1800");
    assert_int_equal(cc.max_age, 1);
    /* across field lines: one call per line, same rule */
    cachectl_init(&cc);
    cachectl_parse(&cc, "max-age=1800", 12);
    cachectl_parse(&cc, "max-age=1", 9);
    assert_int_equal(cc.max_age, 1800);
    /* an invalid first max-age makes it invalid; a later valid one does not rescue it */
    cc = cc_of("max-age=abc, max-age=60");
    assert_true(cc.max_age_invalid);
    assert_int_equal(cc.max_age, CACHECTL_ABSENT);
    /* booleans accumulate: the most restrictive wins */
    cc = cc_of("public, no-store, public");
    assert_true(cc.no_store);
    cc = cc_of("s-maxage=10, s-maxage=20");
    assert_int_equal(cc.s_maxage, 10);
}

static void test_invalid_values(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "max-age=", "max-age", "max-age=-1", "max-age=a3600", "max-age=3600a", "max-age=3600.0",
        "max-age =3600", "max-age= 3600", "max-age=+5", "max-age=0x10",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cache_control cc = cc_of(bad[i]);
        if (!cc.max_age_invalid || cc.max_age != CACHECTL_ABSENT)
            fail_msg("%s: invalid=%d max_age=%lld", bad[i], cc.max_age_invalid,
                     (long long)cc.max_age);
    }
    /* leading zeros are fine (cc-parse freshness-max-age-leading-zero) */
    struct cache_control cc = cc_of("max-age=003600");
    assert_int_equal(cc.max_age, 3600);
    assert_false(cc.max_age_invalid);
    /* huge values saturate at 2^31 (RFC 9111 §1.2.2) */
    cc = cc_of("max-age=99999999999999999999999, s-maxage=2147483648");
    assert_int_equal(cc.max_age, INT64_C(2147483648));
    assert_int_equal(cc.s_maxage, INT64_C(2147483648));
    /* an invalid s-maxage is just absent */
    cc = cc_of("s-maxage=x");
    assert_int_equal(cc.s_maxage, CACHECTL_ABSENT);
    /* junk elements are skipped without losing the rest */
    cc = cc_of("@@@, max-age=5, \"x,y\", no-store");
    assert_int_equal(cc.max_age, 5);
    assert_true(cc.no_store);
    /* length is respected */
    cachectl_init(&cc);
    cachectl_parse(&cc, "max-age=12345", 10);
    assert_int_equal(cc.max_age, 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),           cmocka_unit_test(test_all_directives),
        cmocka_unit_test(test_case_and_spacing), cmocka_unit_test(test_qualified),
        cmocka_unit_test(test_quoted),         cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_invalid_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
