/* wskey.c: the accept value of RFC 6455 §1.3's own example, a fresh key's shape and that two
 * keys differ, and the accept check refusing a near miss. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/wskey.h"

static void test_rfc_example(void **state)
{
    (void)state;
    char out[WSKEY_ACCEPT_LEN + 1];
    wskey_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_true(wskey_accept_ok("dGhlIHNhbXBsZSBub25jZQ==", out, strlen(out)));
    assert_false(wskey_accept_ok("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=", 28));
    assert_false(wskey_accept_ok("dGhlIHNhbXBsZSBub25jZQ==", out, 27));
}

static void test_new_key(void **state)
{
    (void)state;
    char a[WSKEY_LEN + 1], b[WSKEY_LEN + 1];
    wskey_new(a);
    wskey_new(b);
    assert_int_equal(strlen(a), WSKEY_LEN);
    assert_string_equal(a + 22, "=="); // 16 bytes: two padding characters
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_example),
        cmocka_unit_test(test_new_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
