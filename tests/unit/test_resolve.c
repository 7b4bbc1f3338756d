/* Resolver: a name is resolved at registration, copies come out under the per-name lock with
 * rotation over several records, a name that does not resolve has no address (and no crash), the
 * same name twice is one handle, and the background thread starts and stops cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>

#include "net/resolve.h"
#include "net/sock.h"

static void test_localhost(void **state)
{
    (void)state;
    struct resolver *r = resolve_create(1000);
    char err[256];
    struct resolve_name *n = resolve_add(r, "localhost", 8080, err, sizeof(err));
    assert_non_null(n);
    assert_string_equal(err, "");
    struct sock_addr a;
    assert_true(resolve_has_addr(n));
    assert_true(resolve_get(n, 0, &a));
    assert_int_equal(sock_addr_port(&a), 8080);
    char text[64];
    sock_addr_format(&a, text, sizeof(text));
    assert_true(strstr(text, "127.0.0.1") != NULL || strstr(text, "::1") != NULL);
    /* Rotation never leaves the set. */
    for (uint64_t i = 0; i < 10; i++) {
        assert_true(resolve_get(n, i, &a));
        assert_int_equal(sock_addr_port(&a), 8080);
    }
    assert_ptr_equal(resolve_add(r, "localhost", 8080, err, sizeof(err)), n);
    assert_ptr_not_equal(resolve_add(r, "localhost", 8081, err, sizeof(err)), n);
    resolve_refresh_all(r); /* a refresh keeps the name usable */
    assert_true(resolve_has_addr(n));
    assert_true(resolve_get(n, 0, &a));
    assert_int_equal(sock_addr_port(&a), 8080);
    assert_int_equal(resolve_start(r), 0);
    resolve_destroy(r);
}

static void test_unresolvable(void **state)
{
    (void)state;
    struct resolver *r = resolve_create(1000);
    char err[256];
    /* .invalid never resolves (RFC 6761); no network is needed to learn that. */
    struct resolve_name *n = resolve_add(r, "no-such-host.invalid", 80, err, sizeof(err));
    assert_non_null(n);
    assert_non_null(strstr(err, "no-such-host.invalid"));
    struct sock_addr a;
    assert_false(resolve_has_addr(n));
    assert_false(resolve_get(n, 0, &a));
    resolve_refresh_all(r); /* still failing: keeps nothing, logs once */
    assert_false(resolve_get(n, 0, &a));
    resolve_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localhost),
        cmocka_unit_test(test_unresolvable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
