/* Route matching: exact beats everything, longest prefix, globs by specificity, no match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/route.h"

static int m(const struct route_table *t, const char *p) { return route_match(t, p, strlen(p)); }

static void test_precedence(void **state)
{
    (void)state;
    const char *pats[] = {"/", "/api/users/", "= /api/users/me", "/api/*/orders", "/api/",
                          "/static/**.css", "/v?/ping", "/api/users/"};
    char err[128];
    struct route_table *t = route_table_create(pats, 8, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(m(t, "/"), 0);
    assert_int_equal(m(t, "/other"), 0);
    assert_int_equal(m(t, "/api/users/7"), 1);       // longest prefix, first of duplicates
    assert_int_equal(m(t, "/api/users/me"), 2);      // exact
    assert_int_equal(m(t, "/api/users/me/x"), 1);    // exact is exact only
    assert_int_equal(m(t, "/api/7/orders"), 3);      // glob more specific than "/api/"
    assert_int_equal(m(t, "/api/7/8/orders"), 4);    // '*' does not cross '/'
    assert_int_equal(m(t, "/api/x"), 4);
    assert_int_equal(m(t, "/static/a/b/c.css"), 5);  // '**' crosses '/'
    assert_int_equal(m(t, "/static/a/b/c.js"), 0);
    assert_int_equal(m(t, "/v1/ping"), 6);
    assert_int_equal(m(t, "/v12/ping"), 0);
    assert_int_equal(route_kind_of(t, 2), ROUTE_EXACT);
    assert_int_equal(route_kind_of(t, 3), ROUTE_GLOB);
    assert_int_equal(route_kind_of(t, 0), ROUTE_PREFIX);
    route_table_destroy(t);
}

static void test_no_match_and_errors(void **state)
{
    (void)state;
    const char *pats[] = {"/api/", "=/health"};
    char err[128];
    struct route_table *t = route_table_create(pats, 2, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(m(t, "/ap"), -1);
    assert_int_equal(m(t, "/health"), 1);
    assert_int_equal(m(t, "/healthz"), -1);
    route_table_destroy(t);
    const char *bad[] = {"api"};
    assert_null(route_table_create(bad, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "must start with '/'"));
}

static void test_glob_hostile_path(void **state)
{
    (void)state;
    /* backtracking matchers blow up on this; the NFA is linear */
    const char *pats[] = {"/**a**a**a**a**a**a**b"};
    char err[128];
    struct route_table *t = route_table_create(pats, 1, err, sizeof(err));
    char path[8001];
    path[0] = '/';
    memset(path + 1, 'a', sizeof(path) - 2);
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(m(t, path), -1);
    path[sizeof(path) - 2] = 'b';
    assert_int_equal(m(t, path), 0);
    route_table_destroy(t);
}

static void test_explicit_kinds(void **state)
{
    (void)state;
    /* the config decided: "/a*" is a prefix here, "/b" exact */
    const char *pats[] = {"/a*", "/b"};
    enum route_kind kinds[] = {ROUTE_PREFIX, ROUTE_EXACT};
    char err[128];
    struct route_table *t = route_table_create_kinds(pats, kinds, 2, err, sizeof(err));
    assert_int_equal(m(t, "/a*x"), 0);
    assert_int_equal(m(t, "/ax"), -1);
    assert_int_equal(m(t, "/b"), 1);
    assert_int_equal(m(t, "/b/"), -1);
    route_table_destroy(t);
}

static int only_odd(void *arg, size_t i)
{
    (void)arg;
    return i % 2 == 1;
}

static void test_filtered(void **state)
{
    (void)state;
    /* same pattern twice (say GET-only then any method): the filter picks the acceptable one */
    const char *pats[] = {"= /x", "= /x", "/api/", "/api/", "/"};
    char err[128];
    struct route_table *t = route_table_create(pats, 5, err, sizeof(err));
    assert_int_equal(route_match_filtered(t, "/x", 2, NULL, NULL), 0);
    assert_int_equal(route_match_filtered(t, "/x", 2, only_odd, NULL), 1);
    assert_int_equal(route_match_filtered(t, "/api/a", 6, only_odd, NULL), 3);
    assert_int_equal(route_match_filtered(t, "/zzz", 4, only_odd, NULL), -1);
    route_table_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_no_match_and_errors),
        cmocka_unit_test(test_glob_hostile_path),
        cmocka_unit_test(test_explicit_kinds),
        cmocka_unit_test(test_filtered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
