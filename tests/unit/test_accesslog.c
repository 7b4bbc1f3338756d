/* Access log: lines reach the file only through the logger thread, in both formats, with
 * network bytes that would break a text line replaced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/accesslog.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char data[65536];
    size_t n = fread(data, 1, sizeof(data) - 1, f);
    data[n] = '\0';
    fclose(f);
    return data;
}

static void write_two(struct accesslog *log)
{
    struct accesslog_writer *w = accesslog_writer_create(log);
    struct accesslog_entry e = {.wall_ms = 1700000000123ull, .method = "GET", .method_len = 3,
                                .target = "/a b\"c?x=1", .target_len = 10, .status = 200,
                                .bytes = 1234, .total_us = 1500, .upstream_us = 1000,
                                .pool_wait_us = 2, .upstream = "127.0.0.1:9000",
                                .request_id = "abc", .request_id_len = 3, .route = "/",
                                .client = "10.1.2.3", .host = "api.example.com:8080",
                                .host_len = 20, .user_agent = "curl/8.5 (x \"y\")",
                                .user_agent_len = 16, .http_minor = 1, .cache = "HIT"};
    accesslog_write(w, &e);
    e.status = 502;
    e.upstream = NULL;
    e.request_id = NULL;
    e.client = NULL;
    e.host = NULL;
    e.user_agent = NULL;
    e.cache = NULL;
    e.route = NULL;
    e.http_minor = -1;
    accesslog_write(w, &e);
    accesslog_writer_destroy(w);
}

static void test_text(void **state)
{
    (void)state;
    char path[] = "/tmp/test_accesslog.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[128];
    struct accesslog *log = accesslog_create(path, false, err, sizeof(err));
    assert_non_null(log);
    write_two(log);
    accesslog_destroy(log);
    char *s = slurp(path);
    /* every field at a fixed position: absent ones are "-"; spaces and quotes become '_' */
    assert_string_equal(s, "2023-11-14T22:13:20.123Z GET /a_b_c?x=1 200 1234 1.500 1.000 0.002 "
                           "127.0.0.1:9000 abc - 10.1.2.3 api.example.com:8080 HTTP/1.1 HIT / "
                           "curl/8.5_(x__y_)\n"
                           "2023-11-14T22:13:20.123Z GET /a_b_c?x=1 502 1234 1.500 1.000 0.002 "
                           "- - - - - - - - -\n");
    unlink(path);
}

static void test_json(void **state)
{
    (void)state;
    char path[] = "/tmp/test_accesslog.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[128];
    struct accesslog *log = accesslog_create(path, true, err, sizeof(err));
    assert_non_null(log);
    write_two(log);
    accesslog_destroy(log);
    char *s = slurp(path);
    assert_non_null(strstr(s, "{\"time\":\"2023-11-14T22:13:20.123Z\",\"client\":\"10.1.2.3\","
                              "\"method\":\"GET\",\"path\":\"/a b\\\"c?x=1\","
                              "\"protocol\":\"HTTP/1.1\",\"host\":\"api.example.com:8080\","
                              "\"status\":200,\"bytes\":1234,"
                              "\"total_ms\":1.500,\"upstream_ms\":1.000,\"pool_wait_ms\":0.002,"
                              "\"upstream\":\"127.0.0.1:9000\",\"request_id\":\"abc\","
                              "\"route\":\"/\",\"cache\":\"HIT\","
                              "\"user_agent\":\"curl/8.5 (x \\\"y\\\")\"}\n"));
    assert_non_null(strstr(s, "\"status\":502,"));
    assert_non_null(strstr(s, "{\"time\":\"2023-11-14T22:13:20.123Z\",\"client\":null,"
                              "\"method\":\"GET\",\"path\":\"/a b\\\"c?x=1\",\"protocol\":null,"
                              "\"host\":null,"));
    assert_non_null(strstr(s, "\"upstream\":null,\"request_id\":null,\"route\":null,"
                              "\"cache\":null,\"user_agent\":null}\n"));
    unlink(path);
}

static void test_batch_size(void **state)
{
    (void)state;
    char path[] = "/tmp/test_accesslog.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[128];
    struct accesslog *log = accesslog_create(path, false, err, sizeof(err));
    struct accesslog_writer *w = accesslog_writer_create(log);
    struct accesslog_entry e = {.wall_ms = 1700000000123ull, .method = "GET", .method_len = 3,
                                .target = "/", .target_len = 1, .status = 200};
    accesslog_write(w, &e);
    assert_true(accesslog_writer_pending(w) > 0); // default batch: kept in the thread's buffer
    accesslog_writer_set_batch(w, 0);
    accesslog_write(w, &e);
    assert_int_equal(accesslog_writer_pending(w), 0); // batch 0: handed off at once
    accesslog_writer_destroy(w);
    accesslog_destroy(log);
    char *s = slurp(path);
    assert_non_null(strstr(s, "GET / 200"));
    unlink(path);
}

static void test_bad_path(void **state)
{
    (void)state;
    char err[128];
    assert_null(accesslog_create("/nonexistent-dir/x.log", false, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent-dir/x.log"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_batch_size),
        cmocka_unit_test(test_bad_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
