/* HTTP-date: IMF-fixdate formatting and the three parse forms (RFC 9110 §5.6.7) against known
 * timestamps, two-digit RFC 850 years resolved relative to a given "now", and invalid dates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/date.h"

#define T1994 INT64_C(784111777) /* Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example */
#define T2026 INT64_C(1795000000) /* a "now" in 2026 */

static int64_t parse(const char *s, int64_t now)
{
    int64_t t = -12345;
    if (http_date_parse_at(s, strlen(s), now, &t) != 0)
        return INT64_MIN;
    return t;
}

static void test_format(void **state)
{
    (void)state;
    char out[HTTP_DATE_LEN + 1];
    http_date_format(T1994, out);
    assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    http_date_format(0, out);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    http_date_format(951782400, out); /* leap day 2000 */
    assert_string_equal(out, "Tue, 29 Feb 2000 00:00:00 GMT");
    http_date_format(INT64_C(4102444799), out);
    assert_string_equal(out, "Thu, 31 Dec 2099 23:59:59 GMT");
    http_date_format(-1, out);
    assert_string_equal(out, "Wed, 31 Dec 1969 23:59:59 GMT");
    assert_int_equal(strlen(out), HTTP_DATE_LEN);
}

static void test_parse_forms(void **state)
{
    (void)state;
    assert_int_equal(parse("Sun, 06 Nov 1994 08:49:37 GMT", T2026), T1994);
    assert_int_equal(parse("Sunday, 06-Nov-94 08:49:37 GMT", T2026), T1994);
    assert_int_equal(parse("Sun Nov  6 08:49:37 1994", T2026), T1994);
    assert_int_equal(parse("Sun Nov 06 08:49:37 1994", T2026), T1994);
    /* whitespace around, case of names */
    assert_int_equal(parse("  Sun, 06 Nov 1994 08:49:37 GMT\t", T2026), T1994);
    assert_int_equal(parse("sun, 06 nov 1994 08:49:37 gmt", T2026), T1994);
    assert_int_equal(parse("Thu, 01 Jan 1970 00:00:00 GMT", T2026), 0);
    assert_int_equal(parse("Tue, 29 Feb 2000 00:00:00 GMT", T2026), 951782400);
    /* http_date_parse uses the clock only for RFC 850 years */
    int64_t t;
    assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t), 0);
    assert_int_equal(t, T1994);
}

static void test_roundtrip(void **state)
{
    (void)state;
    char out[HTTP_DATE_LEN + 1];
    for (int64_t t = 0; t < INT64_C(4102444800); t += INT64_C(86400) * 37 + 3601) {
        http_date_format(t, out);
        assert_int_equal(parse(out, T2026), t);
    }
}

static void test_two_digit_years(void **state)
{
    (void)state;
    /* now = 2026: 94 -> 1994 (2094 is more than 50 years ahead), 30 -> 2030, 76 -> 2076,
     * 77 -> 1977 */
    assert_int_equal(parse("Sunday, 06-Nov-94 08:49:37 GMT", T2026), T1994);
    int64_t y2030 = parse("Tuesday, 01-Jan-30 00:00:00 GMT", T2026);
    assert_int_equal(y2030, INT64_C(1893456000));
    assert_int_equal(parse("Wednesday, 01-Jan-76 00:00:00 GMT", T2026), INT64_C(3345062400));
    assert_int_equal(parse("Saturday, 01-Jan-77 00:00:00 GMT", T2026), INT64_C(220924800));
    /* the same text seen in 1995 is 1930 for "30" */
    assert_int_equal(parse("Tuesday, 01-Jan-30 00:00:00 GMT", INT64_C(800000000)),
                     INT64_C(-1262304000));
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "0",
        "-1",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 GMT+1",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 1994 GMT",
        "2026-11-24T05:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], T2026) != INT64_MIN)
            fail_msg("accepted %s", bad[i]);
    /* leap second is allowed */
    assert_int_equal(parse("Sun, 06 Nov 1994 08:49:60 GMT", T2026), T1994 + 23);
    /* length is respected: no reading past len */
    int64_t t;
    assert_int_equal(http_date_parse_at("Sun, 06 Nov 1994 08:49:37 GMTXX", 29, T2026, &t), 0);
    assert_int_equal(http_date_parse_at("Sun, 06 Nov 1994 08:49:37 GMT", 28, T2026, &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),          cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_roundtrip),       cmocka_unit_test(test_two_digit_years),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
