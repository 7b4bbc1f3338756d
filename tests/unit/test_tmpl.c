/* Load templates: literals pass through, every function renders within its contract ({{rand}}
 * bounds, {{seq}} increments across calls, {{uuid}} is a version-4 UUID, {{pick}} picks only its
 * choices, {{env}} is resolved at compile time), and errors name the function and the offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load/internal.h"

struct ctx {
    uint64_t rng;
    _Atomic uint64_t seq;
    struct buf scratch;
    struct tmpl_ctx c;
};

static void ctx_init(struct ctx *x)
{
    x->rng = 42;
    atomic_store(&x->seq, 0);
    buf_init(&x->scratch);
    x->c.rng = &x->rng;
    x->c.seq = &x->seq;
    x->c.scratch = &x->scratch;
}

/* Renders <src> once into a static string. */
static const char *render(struct ctx *x, const struct tmpl *t)
{
    static char out[512];
    struct buf b = BUF_INIT;
    tmpl_render(t, &x->c, &b);
    assert_true(buf_pending(&b) < sizeof(out));
    if (buf_pending(&b))
        memcpy(out, buf_head(&b), buf_pending(&b));
    out[buf_pending(&b)] = '\0';
    buf_deinit(&b);
    return out;
}

static void test_literal(void **state)
{
    (void)state;
    struct ctx x;
    ctx_init(&x);
    struct tmpl t;
    char err[128];
    size_t off;
    assert_int_equal(tmpl_compile(&t, "/api/users?x={1}", err, sizeof(err), &off), 0);
    assert_false(t.dynamic);
    assert_string_equal(render(&x, &t), "/api/users?x={1}");
    tmpl_free(&t);
    assert_int_equal(tmpl_compile(&t, "", err, sizeof(err), &off), 0);
    assert_string_equal(render(&x, &t), "");
    tmpl_free(&t);
}

static void test_rand_bounds(void **state)
{
    (void)state;
    struct ctx x;
    ctx_init(&x);
    struct tmpl t;
    char err[128];
    size_t off;
    assert_int_equal(tmpl_compile(&t, "/u/{{rand 3 7}}", err, sizeof(err), &off), 0);
    assert_true(t.dynamic);
    int seen[8] = {0};
    for (int i = 0; i < 2000; i++) {
        const char *s = render(&x, &t);
        assert_memory_equal(s, "/u/", 3);
        long v = strtol(s + 3, NULL, 10);
        assert_true(v >= 3 && v <= 7);
        seen[v]++;
    }
    for (int v = 3; v <= 7; v++)
        assert_true(seen[v] > 250); /* uniform enough: 400 expected each */
    tmpl_free(&t);
    /* Negative and single-value ranges. */
    assert_int_equal(tmpl_compile(&t, "{{ rand -2 -2 }}", err, sizeof(err), &off), 0);
    assert_string_equal(render(&x, &t), "-2");
    tmpl_free(&t);
}

static void test_seq_uuid_pick(void **state)
{
    (void)state;
    struct ctx x;
    ctx_init(&x);
    struct tmpl t;
    char err[128];
    size_t off;
    assert_int_equal(tmpl_compile(&t, "{{seq}}-{{seq}}", err, sizeof(err), &off), 0);
    assert_string_equal(render(&x, &t), "1-2");
    assert_string_equal(render(&x, &t), "3-4");
    tmpl_free(&t);

    assert_int_equal(tmpl_compile(&t, "{{uuid}}", err, sizeof(err), &off), 0);
    char a[64];
    strcpy(a, render(&x, &t));
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[14], '4');               /* version 4 */
    assert_true(strchr("89ab", a[19]) != NULL); /* RFC variant */
    assert_string_not_equal(a, render(&x, &t));
    tmpl_free(&t);

    assert_int_equal(tmpl_compile(&t, "q={{pick red green}}", err, sizeof(err), &off), 0);
    int red = 0, green = 0;
    for (int i = 0; i < 200; i++) {
        const char *s = render(&x, &t);
        if (strcmp(s, "q=red") == 0)
            red++;
        else if (strcmp(s, "q=green") == 0)
            green++;
        else
            fail_msg("unexpected pick: %s", s);
    }
    assert_true(red > 0 && green > 0);
    tmpl_free(&t);
}

static void test_env(void **state)
{
    (void)state;
    struct ctx x;
    ctx_init(&x);
    struct tmpl t;
    char err[128];
    size_t off;
    setenv("AG_TMPL_TOKEN", "s3cr3t", 1);
    assert_int_equal(tmpl_compile(&t, "Bearer {{env AG_TMPL_TOKEN}}", err, sizeof(err), &off), 0);
    assert_false(t.dynamic); /* resolved once: the request can be prebuilt */
    assert_string_equal(render(&x, &t), "Bearer s3cr3t");
    tmpl_free(&t);
    unsetenv("AG_TMPL_NOPE");
    assert_int_equal(tmpl_compile(&t, "x{{env AG_TMPL_NOPE}}", err, sizeof(err), &off), -1);
    assert_non_null(strstr(err, "AG_TMPL_NOPE"));
    assert_int_equal(off, 1);
}

/* What a header value must not render: a line break, from literal text, {{env}} or {{pick}}. */
static void test_line_break(void **state)
{
    (void)state;
    struct tmpl t;
    char err[128];
    size_t off;
    setenv("AG_TMPL_CRLF", "a\r\nX-Injected: 1", 1);
    static const struct {
        const char *src;
        bool has;
    } cases[] = {
        {"Bearer {{env AG_TMPL_TOKEN}} {{rand 1 9}} {{uuid}}", false},
        {"a\nb", true},
        {"Bearer {{env AG_TMPL_CRLF}}", true},
        {"{{pick a b\rc}}", true},
    };
    setenv("AG_TMPL_TOKEN", "s3cr3t", 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(tmpl_compile(&t, cases[i].src, err, sizeof(err), &off), 0);
        assert_int_equal(tmpl_has_line_break(&t), cases[i].has);
        tmpl_free(&t);
    }
    unsetenv("AG_TMPL_CRLF");
}

static void test_errors(void **state)
{
    (void)state;
    struct tmpl t;
    char err[256];
    size_t off;
    static const struct {
        const char *src;
        size_t off;
        const char *msg;
    } bad[] = {
        {"/a/{{nope 1}}", 3, "unknown template function 'nope'"},
        {"/a/{{rand 5 1}}", 3, "rand"},
        {"/a/{{rand x 1}}", 3, "rand"},
        {"/a/{{rand 1}}", 3, "rand"},
        {"ab{{seq", 2, "without a closing"},
        {"{{}}", 0, "empty"},
        {"{{pick}}", 0, "pick"},
        {"{{uuid 3}}", 0, "no argument"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        off = 999;
        assert_int_equal(tmpl_compile(&t, bad[i].src, err, sizeof(err), &off), -1);
        assert_int_equal(off, bad[i].off);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("%s: message '%s' lacks '%s'", bad[i].src, err, bad[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),       cmocka_unit_test(test_rand_bounds),
        cmocka_unit_test(test_seq_uuid_pick), cmocka_unit_test(test_env),
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_line_break),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
