/* Serializer: exact bytes of status/request lines, headers, chunks and simple responses, and that
 * what we write parses back with our own strict parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "http/h1parse.h"
#include "http/h1write.h"

#define assert_buf(b, want)                                                                   \
    do {                                                                                      \
        if (buf_pending(b) != strlen(want) || memcmp(buf_head(b), want, strlen(want)) != 0)   \
            fail_msg("got \"%.*s\" want \"%s\"", (int)buf_pending(b), buf_head(b), want);     \
    } while (0)

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(h1_status_reason(200), "OK");
    assert_string_equal(h1_status_reason(404), "Not Found");
    assert_string_equal(h1_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(h1_status_reason(504), "Gateway Timeout");
    assert_string_equal(h1_status_reason(299), "Unknown");
    assert_string_equal(h1_status_reason(-1), "Unknown");
    /* every status the parser can answer with has a real reason */
    for (int e = H1_ERR_METHOD; e <= H1_ERR_PSEUDO; e++)
        assert_string_not_equal(h1_status_reason(h1_err_status((enum h1_err)e)), "Unknown");
}

static void test_lines(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    h1_write_status_line(&b, 200, NULL);
    assert_buf(&b, "HTTP/1.1 200 OK\r\n");
    buf_reset(&b);
    h1_write_status_line(&b, 503, "Busy");
    assert_buf(&b, "HTTP/1.1 503 Busy\r\n");
    buf_reset(&b);
    h1_write_status_line(&b, 42, NULL); /* garbage status becomes 500, never 2 or 4 digits */
    assert_memory_equal(buf_head(&b), "HTTP/1.1 500 ", 13);
    buf_reset(&b);
    h1_write_header(&b, "X-A", 3, "v", 1);
    h1_write_header(&b, "X-Empty", 7, "", 0);
    h1_write_header_str(&b, "Host", "h");
    h1_write_header_u64(&b, "Content-Length", 0);
    h1_write_header_u64(&b, "X-Max", UINT64_MAX);
    h1_write_end_head(&b);
    assert_buf(&b, "X-A: v\r\nX-Empty: \r\nHost: h\r\nContent-Length: 0\r\n"
                   "X-Max: 18446744073709551615\r\n\r\n");
    buf_deinit(&b);
}

static void test_chunks(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    h1_write_chunk(&b, "hello", 5);
    h1_write_chunk(&b, "0123456789abcdefg", 17);
    h1_write_chunk(&b, NULL, 0);
    assert_buf(&b, "5\r\nhello\r\n11\r\n0123456789abcdefg\r\n0\r\n\r\n");
    buf_deinit(&b);
}

/* What the writers produce is what our parser accepts, with the same framing. */
static void test_head_parses_back(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    h1_write_status_line(&b, 404, NULL);
    h1_write_header_str(&b, "Content-Type", "application/json");
    h1_write_header_u64(&b, "Content-Length", 2);
    h1_write_end_head(&b);
    buf_append(&b, "{}", 2);
    assert_buf(&b, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                   "Content-Length: 2\r\n\r\n{}");
    struct h1_header h[8];
    struct h1_response r;
    int n = h1_parse_response(buf_head(&b), buf_pending(&b), &r, h, 8, NULL, false);
    assert_int_equal(n, (int)buf_pending(&b) - 2);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.body, H1_BODY_LENGTH);
    assert_int_equal(r.content_length, 2);
    assert_true(r.keep_alive);

    buf_reset(&b);
    h1_write_status_line(&b, 400, NULL);
    h1_write_header(&b, "Connection", 10, "close", 5);
    h1_write_header_u64(&b, "Content-Length", 0);
    h1_write_end_head(&b);
    n = h1_parse_response(buf_head(&b), buf_pending(&b), &r, h, 8, NULL, false);
    assert_int_equal(n, (int)buf_pending(&b));
    assert_false(r.keep_alive);

    /* a request head we write is one our parser accepts */
    buf_reset(&b);
    buf_append_str(&b, "POST /x HTTP/1.1\r\n");
    h1_write_header_str(&b, "Host", "example.com");
    h1_write_header_u64(&b, "Content-Length", 12345);
    h1_write_end_head(&b);
    struct h1_request q;
    n = h1_parse_request(buf_head(&b), buf_pending(&b), &q, h, 8, NULL);
    assert_int_equal(n, (int)buf_pending(&b));
    assert_int_equal(q.content_length, 12345);
    buf_deinit(&b);
}

/* The request head writer every client of ours shares (the proxy and the cache's refresh through
 * proxy_write_head, load, net/httpc): request line with or without a separate query, Host with
 * IPv6 brackets and the default port left out. */
static void test_request_head(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    h1_write_request_line(&b, "GET", 3, "/a/b?x=1", 8, NULL, 0);
    assert_buf(&b, "GET /a/b?x=1 HTTP/1.1\r\n");
    buf_reset(&b);
    h1_write_request_line(&b, "DELETE", 6, "/p", 2, "k=v&z", 5);
    assert_buf(&b, "DELETE /p?k=v&z HTTP/1.1\r\n");
    buf_reset(&b);
    h1_write_request_line(&b, "GET", 3, "/", 1, "", 0); // "?" with an empty query stays
    assert_buf(&b, "GET /? HTTP/1.1\r\n");

    buf_reset(&b);
    h1_write_host(&b, "example.com", 11, 8080, 0);
    assert_buf(&b, "Host: example.com:8080\r\n");
    buf_reset(&b);
    h1_write_host(&b, "example.com", 11, 80, 80);
    assert_buf(&b, "Host: example.com\r\n");
    buf_reset(&b);
    h1_write_host(&b, "example.com", 11, 443, 80); // https on 443 with http's default: written
    assert_buf(&b, "Host: example.com:443\r\n");
    buf_reset(&b);
    h1_write_host(&b, "::1", 3, 9000, 0);
    assert_buf(&b, "Host: [::1]:9000\r\n");
    buf_reset(&b);
    h1_write_host(&b, "fe80::2", 7, 0, 80);
    assert_buf(&b, "Host: [fe80::2]\r\n");
    buf_reset(&b);
    h1_write_host(&b, "h", 1, 2147483647, 0); // any int: the reservation holds 10 digits
    assert_buf(&b, "Host: h:2147483647\r\n");

    /* a whole head of these parses back */
    buf_reset(&b);
    h1_write_request_line(&b, "POST", 4, "/x", 2, "q", 1);
    h1_write_host(&b, "::1", 3, 81, 80);
    h1_write_header_u64(&b, "Content-Length", 0);
    h1_write_end_head(&b);
    struct h1_header h[8];
    struct h1_request q;
    int n = h1_parse_request(buf_head(&b), buf_pending(&b), &q, h, 8, NULL);
    assert_int_equal(n, (int)buf_pending(&b));
    assert_int_equal(q.method_id, H1_M_POST);
    assert_int_equal(q.query_len, 1);
    assert_int_equal(q.host_len, 8);
    assert_memory_equal(q.host, "[::1]:81", 8);
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_head_parses_back),
        cmocka_unit_test(test_request_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
