/* Units: tables of (input, expected) for each parser, rejections, and format -> parse round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/units.h"

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t us;
    } ok[] = {
        {"250ms", 250000},        {"30s", 30000000},       {"2m", 120000000},
        {"1h", 3600000000ull},    {"1.5s", 1500000},       {"100us", 100},
        {"100\xc2\xb5s", 100},    {"5", 5000000},          {"0", 0},
        {"0.25", 250000},         {"1.1s", 1100000},       {"1h30m", 5400000000ull},
        {"1m0.5s", 60500000},     {"2d", 172800000000ull}, {"0.0001s", 100},
        {"1.23456789123s", 1234567}, {"007ms", 7000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t us = 12345;
        if (units_parse_duration_us(ok[i].in, &us) != 0)
            fail_msg("rejected '%s'", ok[i].in);
        if (us != ok[i].us)
            fail_msg("'%s' -> %llu, want %llu", ok[i].in, (unsigned long long)us,
                     (unsigned long long)ok[i].us);
    }
    static const char *bad[] = {
        "",       "10 parsecs", "10parsecs", "-1s",   "+1s",   "1.5.5s", "1.s",  ".5s",
        "s",      "1 s",        " 1s",       "1s ",   "1S",    "1sec",   "1e3ms", "inf",
        "nan",    "0x10",       "1s5",       "5 ",    "1h-1m", "ms",     "1..5s",
        "99999999999999999999s", "300000000000d", "213503982335d", "18446744073709551616",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t us = 777;
        if (units_parse_duration_us(bad[i], &us) != -1)
            fail_msg("accepted '%s' as %llu", bad[i], (unsigned long long)us);
        assert_int_equal(us, 777); /* no partial result */
    }
}

static void test_bare_fraction_is_seconds(void **state)
{
    (void)state;
    uint64_t us;
    /* listed in bad[] above would be wrong: a bare "1.5" means 1.5 s */
    assert_int_equal(units_parse_duration_us("1.5", &us), 0);
    assert_int_equal(us, 1500000);
}

static void test_duration_ms(void **state)
{
    (void)state;
    uint64_t ms;
    assert_int_equal(units_parse_duration_ms("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(units_parse_duration_ms("100us", &ms), 0);
    assert_int_equal(ms, 1); /* rounded up, never 0 */
    assert_int_equal(units_parse_duration_ms("1500us", &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(units_parse_duration_ms("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(units_parse_duration_ms("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(units_parse_duration_ms("nope", &ms), -1);
    assert_int_equal(units_parse_duration_ms(NULL, &ms), -1);
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t b;
    } ok[] = {
        {"512", 512},           {"64KB", 65536},          {"64k", 65536},
        {"64K", 65536},         {"256MB", 268435456},     {"1GiB", 1073741824},
        {"1gb", 1073741824},    {"1.5MB", 1572864},       {"10B", 10},
        {"2TB", 2199023255552ull}, {"0", 0},              {"16EB", 0},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t b = 1;
        int rc = units_parse_size(ok[i].in, &b);
        if (strcmp(ok[i].in, "16EB") == 0) { /* no exabytes */
            assert_int_equal(rc, -1);
            continue;
        }
        if (rc != 0)
            fail_msg("rejected '%s'", ok[i].in);
        if (b != ok[i].b)
            fail_msg("'%s' -> %llu want %llu", ok[i].in, (unsigned long long)b,
                     (unsigned long long)ok[i].b);
    }
    static const char *bad[] = {"", "-1", "1 KB", "KB", "1KBs", "1.5.5KB", "10 parsecs",
                                "99999999TB", "18446744073709551616", "1e6", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t b = 3;
        if (units_parse_size(bad[i], &b) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(b, 3);
    }
}

static void test_percents(void **state)
{
    (void)state;
    double f;
    assert_int_equal(units_parse_percent("50%", &f), 0);
    assert_true(f == 0.5);
    assert_int_equal(units_parse_percent("0.5", &f), 0);
    assert_true(f == 0.5);
    assert_int_equal(units_parse_percent("12.5%", &f), 0);
    assert_true(f == 0.125);
    assert_int_equal(units_parse_percent("0%", &f), 0);
    assert_true(f == 0.0);
    assert_int_equal(units_parse_percent("1", &f), 0);
    assert_true(f == 1.0);
    assert_int_equal(units_parse_percent("100%", &f), 0);
    assert_true(f == 1.0);
    static const char *bad[] = {"", "50", "1.5", "-5%", "50%%", "50 %", "%", "abc", "5%0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (units_parse_percent(bad[i], &f) != -1)
            fail_msg("accepted '%s'", bad[i]);
}

static void test_rates(void **state)
{
    (void)state;
    double r;
    assert_int_equal(units_parse_rate("500/s", &r), 0);
    assert_true(r == 500.0);
    assert_int_equal(units_parse_rate("30/m", &r), 0);
    assert_true(r == 0.5);
    assert_int_equal(units_parse_rate("500", &r), 0);
    assert_true(r == 500.0);
    assert_int_equal(units_parse_rate("7200/h", &r), 0);
    assert_true(r == 2.0);
    assert_int_equal(units_parse_rate("0.5/s", &r), 0);
    assert_true(r == 0.5);
    assert_int_equal(units_parse_rate("2/ms", &r), 0);
    assert_true(r == 2000.0);
    static const char *bad[] = {"", "/s", "500/", "500/x", "500/s/s", "-1/s", "500 /s", "rps"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (units_parse_rate(bad[i], &r) != -1)
            fail_msg("accepted '%s'", bad[i]);
}

static void test_format_duration(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(units_format_duration_us(1500000, out, sizeof(out)), "1.5s");
    assert_string_equal(units_format_duration_us(250000, out, sizeof(out)), "250ms");
    assert_string_equal(units_format_duration_us(12, out, sizeof(out)), "12\xc2\xb5s");
    assert_string_equal(units_format_duration_us(0, out, sizeof(out)), "0s");
    assert_string_equal(units_format_duration_us(120000000, out, sizeof(out)), "2m");
    assert_string_equal(units_format_duration_us(7200000000ull, out, sizeof(out)), "2h");
    assert_string_equal(units_format_duration_us(1250, out, sizeof(out)), "1.25ms");
    assert_string_equal(units_format_duration_us(30000000, out, sizeof(out)), "30s");
    /* every printed form parses back to within the printed precision */
    static const uint64_t vals[] = {1, 999, 1000, 1001, 65432, 999999, 1000000, 61500000, 5400000000ull};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint64_t back;
        units_format_duration_us(vals[i], out, sizeof(out));
        if (units_parse_duration_us(out, &back) != 0)
            fail_msg("'%s' does not parse", out);
        double err = (double)(back > vals[i] ? back - vals[i] : vals[i] - back) / (double)vals[i];
        if (err > 0.001)
            fail_msg("%llu -> '%s' -> %llu", (unsigned long long)vals[i], out,
                     (unsigned long long)back);
    }
    char tiny[4];
    units_format_duration_us(1500000, tiny, sizeof(tiny));
    assert_int_equal(strlen(tiny), 3); /* truncated, still terminated */
}

static void test_format_size(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(units_format_size(65536, out, sizeof(out)), "64KB");
    assert_string_equal(units_format_size(512, out, sizeof(out)), "512B");
    assert_string_equal(units_format_size(1258291, out, sizeof(out)), "1.2MB");
    assert_string_equal(units_format_size(1073741824, out, sizeof(out)), "1GB");
    assert_string_equal(units_format_size(0, out, sizeof(out)), "0B");
    assert_string_equal(units_format_size(1023, out, sizeof(out)), "1023B");
    assert_string_equal(units_format_size(1048575, out, sizeof(out)), "1024KB"); /* rounds */
    uint64_t back;
    assert_int_equal(units_parse_size(units_format_size(3 << 20, out, sizeof(out)), &back), 0);
    assert_int_equal(back, 3 << 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),       cmocka_unit_test(test_bare_fraction_is_seconds),
        cmocka_unit_test(test_duration_ms),     cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_percents),        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_format_duration), cmocka_unit_test(test_format_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
