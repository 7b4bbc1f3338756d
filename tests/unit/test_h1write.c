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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_head_parses_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
