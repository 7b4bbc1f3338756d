/* Error log: level filter (nothing formatted below the level), text and JSON line shapes read
 * back from a pipe that replaces stderr, escaping that keeps one event on one line, truncation of
 * long messages that keeps the JSON valid, and the repeat limiter (time passed in). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/log.h"

static int saved_stderr = -1;
static int pipe_rd = -1;

static void capture_start(void)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    saved_stderr = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    pipe_rd = p[0];
}

/* Restores stderr and returns everything written meanwhile (malloc'd). */
static char *capture_end(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap + 1);
    ssize_t r;
    while ((r = read(pipe_rd, out + len, cap - len)) > 0)
        len += (size_t)r;
    close(pipe_rd);
    pipe_rd = -1;
    out[len] = '\0';
    return out;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int formatted;
static const char *side_effect(void)
{
    formatted++;
    return "x";
}

static void test_level_filter(void **state)
{
    (void)state;
    log_set_json(false);
    log_set_level(AG_LOG_WARN);
    formatted = 0;
    capture_start();
    ag_log(AG_LOG_DEBUG, "debug %s", side_effect());
    ag_log(AG_LOG_INFO, "info %s", side_effect());
    ag_log(AG_LOG_WARN, "warn %s", side_effect());
    ag_log(AG_LOG_ERROR, "error %d", 7);
    char *out = capture_end();
    assert_int_equal(formatted, 1); /* arguments are not even evaluated below the level */
    assert_int_equal(count_lines(out), 2);
    assert_null(strstr(out, "debug"));
    assert_null(strstr(out, "info"));
    assert_non_null(strstr(out, " warn: warn x\n"));
    assert_non_null(strstr(out, " error: error 7\n"));
    free(out);
    log_set_level(AG_LOG_INFO);
}

static void test_parse_level(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_parse_level("debug", &l), 0);
    assert_int_equal(l, AG_LOG_DEBUG);
    assert_int_equal(log_parse_level("warning", &l), 0);
    assert_int_equal(l, AG_LOG_WARN);
    assert_int_equal(log_parse_level("error", &l), 0);
    assert_int_equal(l, AG_LOG_ERROR);
    assert_int_equal(log_parse_level("loud", &l), -1);
    assert_int_equal(log_parse_level("", &l), -1);
}

static void test_text_shape(void **state)
{
    (void)state;
    log_set_json(false);
    log_set_proc("worker");
    capture_start();
    log_write(AG_LOG_WARN, "upstream %s timed out\nFAKE 2026-01-01 error: injected", "api");
    char *out = capture_end();
    /* 2026-11-24T05:11:29.123Z worker[123] warn: ... */
    assert_int_equal(count_lines(out), 1);
    assert_int_equal(out[4], '-');
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
    char want[64];
    snprintf(want, sizeof(want), " worker[%d] warn: upstream api", (int)getpid());
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "timed out\\nFAKE"));
    free(out);
    log_set_proc(NULL);
}

static void test_json_shape(void **state)
{
    (void)state;
    log_set_json(true);
    log_set_proc("sup\"ervisor");
    capture_start();
    log_write(AG_LOG_ERROR, "bad \"thing\"\n\x01 \xff end");
    char *big = malloc(10000);
    memset(big, '"', 9999); /* escapes double it: the cut must not break the JSON */
    big[9999] = '\0';
    log_write(AG_LOG_INFO, "%s", big);
    free(big);
    char *out = capture_end();
    assert_int_equal(count_lines(out), 2);
    char *line2 = strchr(out, '\n') + 1;
    line2[-1] = '\0';

    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "error");
    assert_string_equal(cJSON_GetObjectItem(j, "proc")->valuestring, "sup\"ervisor");
    assert_int_equal(cJSON_GetObjectItem(j, "pid")->valueint, getpid());
    assert_string_equal(cJSON_GetObjectItem(j, "msg")->valuestring,
                        "bad \"thing\"\n\x01 \xef\xbf\xbd end");
    const char *ts = cJSON_GetObjectItem(j, "ts")->valuestring;
    assert_int_equal(strlen(ts), 24);
    cJSON_Delete(j);

    j = cJSON_Parse(line2);
    assert_non_null(j);
    size_t mlen = strlen(cJSON_GetObjectItem(j, "msg")->valuestring);
    assert_true(mlen > 1000 && mlen < 2048);
    cJSON_Delete(j);
    free(out);
    log_set_json(false);
    log_set_proc(NULL);
}

static void test_limiter(void **state)
{
    (void)state;
    struct log_limit l = {0, 0};
    uint64_t sup = 99;
    assert_true(log_limit_ok(&l, 1000, 5000, &sup));
    assert_int_equal(sup, 0);
    assert_false(log_limit_ok(&l, 1001, 5000, &sup));
    assert_false(log_limit_ok(&l, 5999, 5000, &sup));
    assert_false(log_limit_ok(&l, 3000, 5000, NULL));
    assert_true(log_limit_ok(&l, 6000, 5000, &sup));
    assert_int_equal(sup, 3); /* swallowed since the last line */
    assert_true(log_limit_ok(&l, 20000, 5000, &sup));
    assert_int_equal(sup, 0);
    /* time 0 (a loop that just started) still arms the limiter */
    struct log_limit z = {0, 0};
    assert_true(log_limit_ok(&z, 0, 5000, &sup));
    assert_false(log_limit_ok(&z, 10, 5000, &sup));
}

/* ag_log_limited: a burst on one cause is one line; another cause has its own; the first line
 * after the interval says how many were swallowed. */
static void test_limited(void **state)
{
    (void)state;
    static struct log_limit emfile, disk;
    capture_start();
    for (int i = 0; i < 351; i++)
        ag_log_limited(AG_LOG_WARN, &emfile, "accept: %s", "Too many open files");
    for (int i = 0; i < 55; i++)
        ag_log_limited(AG_LOG_WARN, &disk, "access log write failed: %s", "No space left");
    /* a second later (the limiter's clock moved back instead of sleeping) */
    atomic_store(&emfile._last_ms, atomic_load(&emfile._last_ms) - LOG_LIMIT_INTERVAL_MS);
    ag_log_limited(AG_LOG_WARN, &emfile, "accept: %s", "Too many open files");
    /* below the level: neither written nor counted */
    ag_log_limited(AG_LOG_DEBUG, &disk, "%s", "debug");
    char *out = capture_end();
    assert_int_equal(count_lines(out), 3);
    const char *first = strstr(out, "accept: Too many open files\n");
    assert_non_null(first);
    assert_non_null(strstr(out, "access log write failed: No space left\n"));
    assert_non_null(strstr(out, "accept: Too many open files (350 similar lines suppressed)\n"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_filter), cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_text_shape),   cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_limiter),      cmocka_unit_test(test_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
