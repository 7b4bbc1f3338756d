/* Flow extracts: a JSON path finds strings (escapes decoded), numbers and booleans through
 * nested objects and arrays, skipping values of every kind on the way; anything else (a missing
 * key, an index past the end, an object, null, truncated or malformed JSON) is "not found"; path
 * syntax errors are caught before a run; a regex gives its first group, or the whole match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load/internal.h"

/* extract_json on <body> at <path>: the value as a C string, or NULL when not found. */
static const char *json_at(const char *body, const char *path)
{
    static char out[256];
    struct buf b = BUF_INIT;
    int rc = extract_json(body, strlen(body), path, &b);
    if (rc == 0) {
        assert_true(buf_pending(&b) < sizeof(out));
        memcpy(out, buf_head(&b), buf_pending(&b));
        out[buf_pending(&b)] = '\0';
    }
    buf_deinit(&b);
    return rc == 0 ? out : NULL;
}

static void test_json_found(void **state)
{
    (void)state;
    const char *doc = " { \"skip\": {\"a\": [1, {\"b\": \"}]\"}, true], \"c\": null},"
                      " \"token\" : \"tok-\\\"x\\\\y\\u0041\", \"n\": -12.5e3, \"ok\": false,"
                      " \"items\": [ {\"id\": 7}, {\"id\": \"second\", \"tags\": [\"t0\", \"t1\"]} ],"
                      " \"a key\": \"spaced\" } ";
    assert_string_equal(json_at(doc, "$.token"), "tok-\"x\\yA");
    assert_string_equal(json_at(doc, "$.n"), "-12.5e3");
    assert_string_equal(json_at(doc, "$.ok"), "false");
    assert_string_equal(json_at(doc, "$.items[0].id"), "7");
    assert_string_equal(json_at(doc, "$.items[1].id"), "second");
    assert_string_equal(json_at(doc, "$.items[1].tags[1]"), "t1");
    assert_string_equal(json_at(doc, "$['a key']"), "spaced");
    assert_string_equal(json_at("\"top\"", "$"), "top");
}

static void test_json_not_found(void **state)
{
    (void)state;
    const char *doc = "{\"a\": {\"b\": [1, 2]}, \"z\": null, \"e\": {}}";
    assert_null(json_at(doc, "$.missing"));
    assert_null(json_at(doc, "$.a"));         /* an object */
    assert_null(json_at(doc, "$.a.b"));       /* an array */
    assert_null(json_at(doc, "$.a.b[2]"));    /* past the end */
    assert_null(json_at(doc, "$.a.b.c"));     /* a key into an array */
    assert_null(json_at(doc, "$.a.b[0][0]")); /* an index into a number */
    assert_null(json_at(doc, "$.z"));         /* null */
    assert_null(json_at(doc, "$.e.x"));       /* an empty object */
    assert_null(json_at("{\"a\": \"unterminated", "$.a"));
    assert_null(json_at("{\"a\" 1}", "$.a"));
    assert_null(json_at("", "$.a"));
    assert_null(json_at("not json", "$.a"));
    /* deep nesting is bounded, not a stack overflow */
    char deep[4096] = "{\"x\":";
    for (int i = 0; i < 1000; i++)
        strcat(deep, "[");
    strcat(deep, "}");
    assert_null(json_at(deep, "$.y"));
}

static void test_json_path_check(void **state)
{
    (void)state;
    char err[256];
    const char *good[] = {"$", "$.a", "$.a.b[0]", "$['x y'].z", "$[3]"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(extract_json_path_check(good[i], err, sizeof(err)), 0);
    const char *bad[] = {"token", "$.", "$..a", "$[x]", "$[-1]", "$['a]", "$a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (extract_json_path_check(bad[i], err, sizeof(err)) != -1)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_regex(void **state)
{
    (void)state;
    char err[256];
    struct load_extract x = {.kind = EXTRACT_REGEX, .expr = strdup("\"id\":([0-9]+)")};
    assert_int_equal(extract_regex_compile(&x, err, sizeof(err)), 0);
    struct buf b = BUF_INIT;
    const char *body = "{\"name\":\"a\",\"id\":4711}";
    assert_int_equal(extract_regex(&x, body, strlen(body), &b), 0);
    assert_int_equal(buf_pending(&b), 4);
    assert_memory_equal(buf_head(&b), "4711", 4);
    assert_int_equal(extract_regex(&x, "{}", 2, &b), -1);
    extract_free(&x);
    /* no group: the whole match */
    struct load_extract w = {.kind = EXTRACT_REGEX, .expr = strdup("tok-[a-z]+")};
    assert_int_equal(extract_regex_compile(&w, err, sizeof(err)), 0);
    buf_reset(&b);
    assert_int_equal(extract_regex(&w, "x tok-abc y", 11, &b), 0);
    assert_int_equal(buf_pending(&b), 7);
    extract_free(&w);
    struct load_extract bad = {.kind = EXTRACT_REGEX, .expr = strdup("(")};
    assert_int_equal(extract_regex_compile(&bad, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a valid regex"));
    extract_free(&bad);
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_found),
        cmocka_unit_test(test_json_not_found),
        cmocka_unit_test(test_json_path_check),
        cmocka_unit_test(test_regex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
