/* URL parsing (schemes, ports, IPv6, error messages) and cache-key normalization: RFC 3986
 * §6.2.2 path normalization with §5.2.4 dot-segment removal, and sorted, filtered queries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "http/url.h"

static void test_parse_ok(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool tls;
        const char *host;
        int port;
        const char *path;
    } t[] = {
        {"http://example.com", false, "example.com", 80, "/"},
        {"https://example.com", true, "example.com", 443, "/"},
        {"HTTP://Example.com:8080/a/b?x=1", false, "Example.com", 8080, "/a/b?x=1"},
        {"http://127.0.0.1:9/", false, "127.0.0.1", 9, "/"},
        {"http://[::1]:8443/p", false, "::1", 8443, "/p"},
        {"https://[2001:db8::1]/", true, "2001:db8::1", 443, "/"},
        {"http://[::ffff:1.2.3.4]", false, "::ffff:1.2.3.4", 80, "/"},
        {"http://h?q=1", false, "h", 80, "/?q=1"},
        {"http://h/p#frag", false, "h", 80, "/p"},
        {"http://h:65535", false, "h", 65535, "/"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct url u;
        char err[256] = "";
        if (url_parse(t[i].in, &u, err, sizeof(err)) != 0)
            fail_msg("%s: %s", t[i].in, err);
        assert_int_equal(u.tls, t[i].tls);
        assert_string_equal(u.host, t[i].host);
        assert_int_equal(u.port, t[i].port);
        assert_string_equal(u.path, t[i].path);
    }
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *msg; /* part of the message */
    } t[] = {
        {"ftp://h/", "expected http:// or https://"},
        {"example.com", "expected http:// or https://"},
        {"http://", "missing host"},
        {"http://:80/", "missing host"},
        {"http://h:/", "empty port"},
        {"http://h:0/", "out of range"},
        {"http://h:65536/", "out of range"},
        {"http://h:8x/", "not a number"},
        {"http://u:p@h/", "user:password@"},
        {"http://[::1/", "missing ']'"},
        {"http://[]/", "empty IPv6"},
        {"http://[::1]x/", "after ']'"},
        {"http://[g::1]/", "invalid character in IPv6"},
        {"http://a b/", "whitespace"},
        {"http://h/a b", "whitespace"},
        {"http://h\x01/", "control"},
        {"http://h<x>/", "invalid character in host"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct url u;
        char err[256] = "";
        if (url_parse(t[i].in, &u, err, sizeof(err)) != -1)
            fail_msg("accepted %s", t[i].in);
        if (!strstr(err, t[i].msg))
            fail_msg("%s: message \"%s\" lacks \"%s\"", t[i].in, err, t[i].msg);
    }
    /* a long host or path is an error, not an overflow */
    char big[3000] = "http://";
    memset(big + 7, 'a', 300);
    big[307] = '\0';
    struct url u;
    char err[128];
    assert_int_equal(url_parse(big, &u, err, sizeof(err)), -1);
    memcpy(big, "http://h/", 9);
    memset(big + 9, 'p', 2500);
    big[2509] = '\0';
    assert_int_equal(url_parse(big, &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "path longer"));
    /* err may be NULL */
    assert_int_equal(url_parse("nope", &u, NULL, 0), -1);
}

static void check_path(const char *in, const char *want)
{
    struct buf b = BUF_INIT;
    buf_append(&b, "K:", 2); /* appends: existing content stays */
    if (url_normalize_path(in, strlen(in), &b) != 0)
        fail_msg("rejected %s", in);
    if (buf_pending(&b) != strlen(want) + 2 || memcmp(buf_head(&b) + 2, want, strlen(want)) != 0)
        fail_msg("%s -> %.*s, want %s", in, (int)buf_pending(&b) - 2, buf_head(&b) + 2, want);
    buf_deinit(&b);
}

static void test_normalize_path(void **state)
{
    (void)state;
    check_path("/", "/");
    check_path("", "/");
    check_path("/a/b/c", "/a/b/c");
    check_path("/a/./b", "/a/b");
    check_path("/a/../b", "/b");
    check_path("/a/b/../../c", "/c");
    check_path("/../a", "/a");
    check_path("/a/..", "/");
    check_path("/a/b/..", "/a/");
    check_path("/a/.", "/a/");
    check_path("/.", "/");
    check_path("/a//b", "/a//b");
    /* RFC 3986 §5.4 examples, absolute-path part */
    check_path("/a/b/c/./../../g", "/a/g");
    check_path("/mid/content=5/../6", "/mid/6");
    /* percent-encodings: unreserved decoded, others upper-cased */
    check_path("/%7euser/%41%62c", "/~user/Abc");
    check_path("/a%2fb", "/a%2Fb");
    check_path("/%e2%82%ac", "/%E2%82%AC");
    check_path("/a%20b", "/a%20b");
    /* encoded dots are dots after decoding (§6.2.2.3 after §6.2.2.2) */
    check_path("/a/%2E%2E/b", "/b");
    check_path("/a/%2e/b", "/a/b");
    /* an encoded slash is not a separator */
    check_path("/a/..%2Fb", "/a/..%2Fb");
    static const char *const bad[] = {"/%", "/%4", "/%G1", "/a%zz", "/%%41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf b = BUF_INIT;
        if (url_normalize_path(bad[i], strlen(bad[i]), &b) != -1)
            fail_msg("accepted %s", bad[i]);
        buf_deinit(&b);
    }
}

static void check_query(const char *in, const char *const *ignore, const char *want)
{
    struct buf b = BUF_INIT;
    url_normalize_query(in, strlen(in), ignore, &b);
    /* an empty result may leave the buffer unallocated: compare only what is there */
    if (buf_pending(&b) != strlen(want) ||
        (buf_pending(&b) && memcmp(buf_head(&b), want, strlen(want)) != 0))
        fail_msg("%s -> %.*s, want %s", in, (int)buf_pending(&b), b.data ? buf_head(&b) : "",
                 want);
    buf_deinit(&b);
}

static void test_normalize_query(void **state)
{
    (void)state;
    check_query("b=2&a=1", NULL, "a=1&b=2");
    /* a repeated name keeps its order: "id=1&id=2" and "id=2&id=1" are different requests to an
     * origin that reads the first (or the last) value, so they must be different keys */
    check_query("a=2&a=1&a=10", NULL, "a=2&a=1&a=10");
    check_query("id=2&b=1&id=1", NULL, "b=1&id=2&id=1");
    check_query("id=1&b=1&id=2", NULL, "b=1&id=1&id=2");
    check_query("a&&b=&=c&", NULL, "=c&a&b="); /* empty parameters dropped */
    check_query("", NULL, "");
    check_query("x=1", NULL, "x=1");
    /* "ab" sorts after "a" whatever the value */
    check_query("ab=1&a=2", NULL, "a=2&ab=1");
    const char *ign[] = {"utm_*", "fbclid", NULL};
    check_query("utm_source=x&b=1&fbclid=9&utm_=2&fbclidx=3&a=0", ign, "a=0&b=1&fbclidx=3");
    check_query("utm_a=1&fbclid=2", ign, "");
    const char *all[] = {"*", NULL};
    check_query("a=1&b=2", all, "");
    /* many parameters (beyond the on-stack array) */
    char q[2048] = "";
    size_t n = 0;
    for (int i = 99; i >= 0; i--)
        n += (size_t)snprintf(q + n, sizeof(q) - n, "%sk%02d=v", i == 99 ? "" : "&", i);
    struct buf b = BUF_INIT;
    url_normalize_query(q, n, NULL, &b);
    assert_int_equal(buf_pending(&b), n);
    assert_memory_equal(buf_head(&b), "k00=v&k01=v&k02=v", 17);
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),       cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_normalize_path), cmocka_unit_test(test_normalize_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
