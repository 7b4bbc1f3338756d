/* Admin Bearer tokens: the constant-time comparison and the Authorization header forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/adminauth.h"

static void test_equal(void **state)
{
    (void)state;
    const char *t = "0123456789abcdef";
    assert_true(adminauth_equal(t, 16, "0123456789abcdef", 16));
    assert_false(adminauth_equal(t, 16, "0123456789abcdeF", 16)); /* last byte */
    assert_false(adminauth_equal(t, 16, "1123456789abcdef", 16)); /* first byte */
    assert_false(adminauth_equal(t, 16, "0123456789abcde", 15));  /* a prefix */
    assert_false(adminauth_equal(t, 16, "0123456789abcdef0", 17)); /* longer */
    assert_false(adminauth_equal(t, 16, "", 0));
    /* a longer guess whose extra bytes are NUL: the length still differs */
    assert_false(adminauth_equal(t, 16, "0123456789abcdef\0", 17));
    /* the bytes of a shorter guess are compared against NUL, never read past */
    assert_false(adminauth_equal("ab\0\0", 4, "ab", 2));
}

static void test_bearer(void **state)
{
    (void)state;
    const char *t = "0123456789abcdef";
#define OK(v) assert_true(adminauth_bearer_ok(t, 16, v, strlen(v)))
#define NO(v) assert_false(adminauth_bearer_ok(t, 16, v, strlen(v)))
    OK("Bearer 0123456789abcdef");
    OK("bearer 0123456789abcdef");
    OK("BEARER  0123456789abcdef ");
    OK("\tBearer\t0123456789abcdef");
    NO("Bearer 0123456789abcde");
    NO("Bearer 0123456789abcdefg");
    NO("Bearer 0123456789abcdef x");
    NO("Basic 0123456789abcdef");
    NO("0123456789abcdef");
    NO("Bearer0123456789abcdef");
    NO("Bearer");
    NO("Bearer ");
    NO("");
    assert_false(adminauth_bearer_ok(t, 16, NULL, 0));
    assert_false(adminauth_bearer_ok(NULL, 0, "Bearer x", 8));
    assert_false(adminauth_bearer_ok("", 0, "Bearer ", 7)); /* no token configured: never ok */
#undef OK
#undef NO
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_bearer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
