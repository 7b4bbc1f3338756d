/* trace.c: traceparent parse (valid and invalid tables from W3C Trace Context level 1),
 * continuation keeps the trace id with a new span, generation, formatting round trip, and the
 * Server-Timing value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void test_parse_valid(void **state)
{
    (void)state;
    struct trace_ctx t;
    assert_int_equal(trace_parse(TP, strlen(TP), &t), 0);
    assert_int_equal(t.trace_id[0], 0x4b);
    assert_int_equal(t.trace_id[15], 0x36);
    assert_int_equal(t.span_id[0], 0x00);
    assert_int_equal(t.span_id[7], 0xb7);
    assert_int_equal(t.flags, 1);
    char out[TRACE_HEADER_LEN + 1];
    assert_int_equal(trace_format(&t, out), TRACE_HEADER_LEN);
    assert_string_equal(out, TP);
    char id[TRACE_ID_HEX + 1];
    trace_id_hex(&t, id);
    assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    /* blanks around the value (OWS), a future version with an extra field */
    const char *ok[] = {
        "  " TP " ",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-the-future-holds",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(trace_parse(ok[i], strlen(ok[i]), &t), 0);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",      // short
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",    // v00 with extra
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",     // uppercase
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     // zero span id
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // separator
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x",   // future: no '-' after
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct trace_ctx t;
        memset(&t, 0xaa, sizeof(t));
        assert_int_equal(trace_parse(bad[i], strlen(bad[i]), &t), -1);
        assert_int_equal(t.flags, 0xaa); // untouched on failure
    }
    struct trace_ctx t;
    assert_int_equal(trace_parse(NULL, 0, &t), -1);
}

static void test_continue(void **state)
{
    (void)state;
    trace_seed(42);
    struct trace_ctx t;
    assert_true(trace_continue(TP, strlen(TP), &t));
    char out[TRACE_HEADER_LEN + 1];
    trace_format(&t, out);
    /* same trace, new parent span id, sampled kept */
    assert_memory_equal(out, TP, 36);
    assert_memory_not_equal(out + 36, &TP[36], 16);
    assert_string_equal(out + 52, "-01");
    struct trace_ctx back;
    assert_int_equal(trace_parse(out, strlen(out), &back), 0);
    /* unknown flag bits are not passed on; the unsampled decision is */
    const char *f = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe";
    assert_true(trace_continue(f, strlen(f), &t));
    assert_int_equal(t.flags, 0);
    /* absent or invalid: a new trace, sampled */
    assert_false(trace_continue(NULL, 0, &t));
    assert_int_equal(t.flags, TRACE_FLAG_SAMPLED);
    trace_format(&t, out);
    assert_int_equal(trace_parse(out, strlen(out), &back), 0);
    assert_false(trace_continue("garbage", 7, &back));
    assert_memory_not_equal(back.trace_id, t.trace_id, 16);
}

static void test_generate_unique(void **state)
{
    (void)state;
    trace_seed(7);
    struct trace_ctx prev, t;
    trace_generate(&prev);
    for (int i = 0; i < 1000; i++) {
        trace_generate(&t);
        assert_memory_not_equal(t.trace_id, prev.trace_id, 16);
        assert_memory_not_equal(t.span_id, prev.span_id, 8);
        prev = t;
    }
    /* same seed, same ids: the seed is the whole state */
    trace_seed(7);
    struct trace_ctx a, b;
    trace_generate(&a);
    trace_seed(7);
    trace_generate(&b);
    assert_memory_equal(&a, &b, sizeof(a));
}

static void test_server_timing(void **state)
{
    (void)state;
    char out[128];
    struct trace_timing t = {.cache = "MISS", .pool_us = 12, .upstream_us = 12500,
                             .total_us = 12734};
    size_t n = trace_server_timing(out, sizeof(out), &t);
    assert_string_equal(out, "cache;desc=MISS, pool;dur=0.012, upstream;dur=12.500, "
                             "total;dur=12.734");
    assert_int_equal(n, strlen(out));
    struct trace_timing hit = {.cache = "HIT", .pool_us = -1, .upstream_us = -1,
                               .total_us = 1001};
    trace_server_timing(out, sizeof(out), &hit);
    assert_string_equal(out, "cache;desc=HIT, total;dur=1.001");
    struct trace_timing nocache = {.pool_us = -1, .upstream_us = 2000000, .total_us = -1};
    trace_server_timing(out, sizeof(out), &nocache);
    assert_string_equal(out, "upstream;dur=2000.000");
    struct trace_timing none = {.pool_us = -1, .upstream_us = -1, .total_us = -1};
    assert_int_equal(trace_server_timing(out, sizeof(out), &none), 0);
    assert_string_equal(out, "");
    /* too small: nothing rather than a truncated header */
    assert_int_equal(trace_server_timing(out, 20, &t), 0);
    assert_string_equal(out, "");
    assert_int_equal(trace_server_timing(out, 0, &t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),     cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_continue),        cmocka_unit_test(test_generate_unique),
        cmocka_unit_test(test_server_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
