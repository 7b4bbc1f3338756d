/* Byte buffer: growth, consume/compact, printf of any length, appending a part of itself, and JSON
 * string escaping (control characters, quotes, UTF-8 kept, invalid bytes replaced). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/buf.h"

static void test_growth_and_consume(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(buf_pending(&b), 0);
    for (int i = 0; i < 10000; i++)
        buf_append(&b, "0123456789", 10);
    assert_int_equal(buf_pending(&b), 100000);
    assert_true(b.cap >= 100000);
    assert_memory_equal(buf_head(&b) + 99990, "0123456789", 10);
    buf_consume(&b, 5);
    assert_int_equal(buf_pending(&b), 99995);
    assert_memory_equal(buf_head(&b), "56789", 5);
    buf_compact(&b);
    assert_int_equal(b.off, 0);
    assert_memory_equal(b.data, "567890", 6);
    buf_consume(&b, buf_pending(&b));
    assert_int_equal(b.off, 0); /* all consumed: back to the start */
    assert_int_equal(b.len, 0);
    buf_deinit(&b);
    assert_null(b.data);
}

static void test_reserve_reclaims_consumed(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    buf_reserve(&b, 1000);
    size_t cap = b.cap;
    /* a read/parse loop: write a chunk, consume most of it; the buffer must not grow */
    for (int i = 0; i < 1000; i++) {
        buf_reserve(&b, 100);
        memset(buf_tail(&b), 'x', 100);
        buf_commit(&b, 100);
        buf_consume(&b, buf_pending(&b) - 7); /* a partial message stays pending */
    }
    assert_int_equal(b.cap, cap);
    assert_int_equal(buf_pending(&b), 7);
    assert_true(buf_room(&b) <= b.cap);
    buf_reset(&b);
    assert_int_equal(buf_pending(&b), 0);
    buf_deinit(&b);
}

static void test_printf(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s=%d", "a", 42);
    assert_int_equal(b.len, 4);
    char big[5000];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_printf(&b, "[%s]", big); /* longer than the first guess */
    assert_int_equal(b.len, 4 + 2 + 4999);
    assert_memory_equal(b.data, "a=42[yyy", 8);
    assert_int_equal(b.data[b.len - 1], ']');
    buf_printf(&b, "%s", "");
    assert_int_equal(b.len, 4 + 2 + 4999);
    buf_append_str(&b, "z");
    assert_int_equal(b.data[b.len - 1], 'z');
    buf_deinit(&b);
}

static void test_append_self(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_append_str(&b, "abc");
    buf_consume(&b, 1);
    for (int i = 0; i < 12; i++) /* doubles each time, growing past several reallocs */
        buf_append(&b, buf_head(&b), buf_pending(&b));
    assert_int_equal(buf_pending(&b), 2 << 12);
    for (size_t i = 0; i < buf_pending(&b); i += 2)
        assert_memory_equal(buf_head(&b) + i, "bc", 2);
    buf_deinit(&b);
}

static char *json_of(const char *s, size_t n)
{
    struct buf b = BUF_INIT;
    buf_append_json_str(&b, s, n);
    buf_append(&b, "", 1);
    return b.data;
}

static void test_json_escaping(void **state)
{
    (void)state;
    char *j = json_of("a\"b\\c\n\r\t\x01\x7f", 10);
    assert_string_equal(j, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u007f\"");
    free(j);
    j = json_of("", 0);
    assert_string_equal(j, "\"\"");
    free(j);
    /* embedded NUL */
    j = json_of("a\0b", 3);
    assert_string_equal(j, "\"a\\u0000b\"");
    free(j);
    /* valid UTF-8 is kept as it is */
    j = json_of("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14);
    assert_string_equal(j, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    free(j);
    /* invalid: lone continuation, truncated sequence, overlong '/', surrogate, > U+10FFFF */
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } bad[] = {
        {"a\x80z", 3, "\"a\\ufffdz\""},
        {"a\xc3", 2, "\"a\\ufffd\""},
        {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},
        {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},
        {"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
        {"\xe2\x82", 2, "\"\\ufffd\\ufffd\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = json_of(bad[i].in, bad[i].n);
        assert_string_equal(j, bad[i].want);
        free(j);
    }
    /* every byte value round-trips through a JSON parser (as a valid document) */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    struct buf b = BUF_INIT;
    buf_append_str(&b, "[");
    buf_append_json_str(&b, all, sizeof(all));
    buf_append(&b, "]", 2);
    cJSON *doc = cJSON_Parse(b.data);
    assert_non_null(doc);
    const char *back = cJSON_GetArrayItem(doc, 0)->valuestring;
    assert_int_equal(back[0], 0); /* \u0000 ends a C string in cJSON: first byte was NUL */
    cJSON_Delete(doc);
    buf_deinit(&b);
    j = json_of(all + 1, 127); /* 0x01..0x7f */
    doc = cJSON_Parse(j);
    assert_non_null(doc);
    assert_memory_equal(doc->valuestring, all + 1, 127);
    cJSON_Delete(doc);
    free(j);
}

/* Whole files: content kept byte for byte, a directory and an endless file refused. */
static void test_read_file(void **state)
{
    (void)state;
    char path[64], err[128];
    snprintf(path, sizeof(path), "/tmp/test_buf_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("a\0b\n", 1, 4, f);
    fclose(f);
    struct buf b = BUF_INIT;
    assert_int_equal(buf_read_file(&b, path, 4, err, sizeof(err)), 0);
    assert_int_equal(buf_pending(&b), 4);
    assert_memory_equal(buf_head(&b), "a\0b\n", 4);
    buf_reset(&b);
    assert_int_equal(buf_read_file(&b, path, 3, err, sizeof(err)), -1);
    assert_string_equal(err, "larger than 3 bytes");
    unlink(path);
    buf_reset(&b);
    assert_int_equal(buf_read_file(&b, path, 100, err, sizeof(err)), -1);
    assert_string_equal(err, "cannot open: No such file or directory");
    assert_int_equal(buf_read_file(&b, "/tmp", 100, err, sizeof(err)), -1);
    assert_string_equal(err, "is a directory");
    assert_int_equal(buf_read_file(&b, "/dev/zero", 1u << 20, err, sizeof(err)), -1);
    assert_string_equal(err, "larger than 1 MB");
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth_and_consume), cmocka_unit_test(test_reserve_reclaims_consumed),
        cmocka_unit_test(test_printf),             cmocka_unit_test(test_append_self),
        cmocka_unit_test(test_json_escaping),      cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
