/* Header helpers: case-insensitive lookup and counting, token lists, hop-by-hop set and fields
 * named by Connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/headers.h"

#define H(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1}

static const struct h1_header hs[] = {
    H("Host", "a"),
    H("connection", "keep-alive, X-Secret ,Upgrade"),
    H("X-Secret", "1"),
    H("Accept", "*/*"),
    H("ACCEPT", "text/html"),
    H("Connection", "x-other"),
};
#define NH (sizeof(hs) / sizeof(hs[0]))

static void test_name_eq(void **state)
{
    (void)state;
    assert_true(headers_name_eq("Content-Length", 14, "content-length"));
    assert_true(headers_name_eq("CONTENT-LENGTH", 14, "Content-Length"));
    assert_false(headers_name_eq("Content-Lengt", 13, "content-length"));
    assert_false(headers_name_eq("Content-Length", 14, "content-lengthx"));
    assert_true(headers_name_eq("Content-Lengthx", 14, "content-length")); /* len respected */
    assert_true(headers_name_eq("", 0, ""));
    /* only ASCII letters fold: '@' (0x40) is not '`' (0x60) */
    assert_false(headers_name_eq("@", 1, "`"));
}

static void test_find(void **state)
{
    (void)state;
    const struct h1_header *h = headers_find(hs, NH, "accept");
    assert_non_null(h);
    assert_ptr_equal(h, &hs[3]);
    assert_null(headers_find(hs, NH, "accep"));
    assert_null(headers_find(hs, 0, "host"));
}

static void test_tokens(void **state)
{
    (void)state;
    const char *v = "gzip, Chunked ,\tdeflate";
    assert_true(headers_has_token(v, strlen(v), "chunked"));
    assert_true(headers_has_token(v, strlen(v), "gzip"));
    assert_true(headers_has_token(v, strlen(v), "DEFLATE"));
    assert_false(headers_has_token(v, strlen(v), "zip"));
    assert_false(headers_has_token(v, 4, "deflate")); /* len respected */
    assert_false(headers_has_token("", 0, "close"));
    assert_true(headers_has_token("close", 5, "close"));
    assert_false(headers_has_token("closed", 6, "close"));
    assert_true(headers_has_token(",,close,", 8, "close"));
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    static const char *const hop[] = {"Connection", "keep-alive", "Proxy-Connection", "TE",
                                      "Trailer", "Transfer-Encoding", "Upgrade",
                                      "Proxy-Authenticate", "Proxy-Authorization"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        assert_true(headers_is_hop_by_hop(hop[i], strlen(hop[i])));
    assert_false(headers_is_hop_by_hop("Host", 4));
    assert_false(headers_is_hop_by_hop("Trailers", 8));
    assert_false(headers_is_hop_by_hop("T", 1));
    assert_true(headers_listed_in_connection(hs, NH, "x-secret", 8));
    assert_true(headers_listed_in_connection(hs, NH, "X-Other", 7));
    assert_true(headers_listed_in_connection(hs, NH, "upgrade", 7));
    assert_false(headers_listed_in_connection(hs, NH, "Host", 4));
    assert_false(headers_listed_in_connection(hs, NH, "X-Secre", 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_eq),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_hop_by_hop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
