/* YAML node tree: positions, scalars and quoting, aliases and merge keys, duplicate keys, error
 * messages with file:line:col, and bounds against hostile documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/yaml.h"

static struct ynode *load(const char *text, char *err, size_t errlen)
{
    return yaml_load_string(text, strlen(text), "t.yaml", err, errlen);
}

static void expect_error(const char *text, const char *want)
{
    char err[512];
    struct ynode *root = load(text, err, sizeof(err));
    if (root != NULL) {
        yaml_tree_free(root);
        fail_msg("accepted: %s", text);
    }
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' does not contain '%s'", err, want);
}

static void test_tree_and_positions(void **state)
{
    (void)state;
    char err[256];
    const char *text = "listen: 8080\n"
                       "routes:\n"
                       "  - path: /api\n"
                       "    upstreams: [a, \"b\"]\n"
                       "  - path: '/x'\n"
                       "empty:\n"
                       "nul: null\n"
                       "qnul: \"null\"\n"
                       "multi: |\n"
                       "  line1\n"
                       "  line2\n";
    struct ynode *root = load(text, err, sizeof(err));
    assert_non_null(root);
    assert_int_equal(root->type, YNODE_MAP);
    assert_int_equal(ynode_size(root), 6);
    assert_string_equal(root->file, "t.yaml");

    const struct ynode *listen = ynode_get(root, "listen");
    assert_non_null(listen);
    assert_int_equal(listen->type, YNODE_SCALAR);
    assert_string_equal(listen->str, "8080");
    assert_int_equal(listen->len, 4);
    assert_int_equal(listen->line, 1);
    assert_int_equal(listen->col, 9);
    assert_false(listen->quoted);

    const struct ynode *routes = ynode_get(root, "routes");
    assert_int_equal(routes->type, YNODE_SEQ);
    assert_int_equal(ynode_size(routes), 2);
    const struct ynode *r0 = ynode_item(routes, 0);
    assert_int_equal(r0->type, YNODE_MAP);
    assert_int_equal(r0->line, 3);
    assert_int_equal(r0->col, 5);
    const struct ynode *ups = ynode_get(r0, "upstreams");
    assert_int_equal(ynode_size(ups), 2);
    assert_false(ynode_item(ups, 0)->quoted);
    assert_true(ynode_item(ups, 1)->quoted);
    assert_int_equal(ynode_item(ups, 1)->line, 4);
    assert_int_equal(ynode_item(ups, 1)->col, 20);
    assert_true(ynode_get(ynode_item(routes, 1), "path")->quoted);
    assert_string_equal(ynode_get(ynode_item(routes, 1), "path")->str, "/x");

    assert_string_equal(ynode_get(root, "empty")->str, "");
    assert_false(ynode_get(root, "nul")->quoted);
    assert_true(ynode_get(root, "qnul")->quoted);
    assert_string_equal(ynode_get(root, "multi")->str, "line1\nline2\n");

    assert_string_equal(ynode_key(root, 1)->str, "routes");
    assert_ptr_equal(ynode_value(root, 1), routes);
    assert_null(ynode_key(root, 99));
    assert_null(ynode_get(routes, "x")); /* not a map */
    assert_null(ynode_item(root, 0));    /* not a sequence */
    assert_null(ynode_get(NULL, "x"));
    assert_string_equal(ynode_type_name(root), "map");
    assert_string_equal(ynode_type_name(routes), "sequence");
    assert_string_equal(ynode_type_name(listen), "scalar");
    yaml_tree_free(root);
}

static void test_empty_documents(void **state)
{
    (void)state;
    static const char *empties[] = {"", "# only a comment\n", "---\n", "\n\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        char err[128];
        struct ynode *root = load(empties[i], err, sizeof(err));
        assert_non_null(root);
        assert_int_equal(root->type, YNODE_MAP);
        assert_int_equal(ynode_size(root), 0);
        yaml_tree_free(root);
    }
}

static void test_aliases(void **state)
{
    (void)state;
    char err[256];
    const char *text = "defaults: &d\n"
                       "  timeout: 2s\n"
                       "  retries: 3\n"
                       "name: &n svc\n"
                       "a: *d\n"
                       "b: *n\n";
    struct ynode *root = load(text, err, sizeof(err));
    assert_non_null(root);
    const struct ynode *a = ynode_get(root, "a");
    assert_int_equal(a->type, YNODE_MAP);
    assert_string_equal(ynode_get(a, "timeout")->str, "2s");
    assert_int_equal(a->line, 5); /* reported where the alias is */
    assert_ptr_not_equal(a, ynode_get(root, "defaults")); /* a copy */
    assert_string_equal(ynode_get(root, "b")->str, "svc");
    yaml_tree_free(root);
}

static void test_merge_keys(void **state)
{
    (void)state;
    char err[256];
    const char *text = "base: &b {timeout: 2s, retries: 3, cache: on}\n"
                       "other: &o {retries: 9, extra: x}\n"
                       "r1:\n"
                       "  <<: *b\n"
                       "  retries: 5\n"
                       "r2:\n"
                       "  <<: [*o, *b]\n"
                       "r3:\n"
                       "  <<: &inline {k: v}\n"
                       "r4: *inline\n";
    struct ynode *root = load(text, err, sizeof(err));
    if (root == NULL)
        fail_msg("%s", err);
    const struct ynode *r1 = ynode_get(root, "r1");
    assert_int_equal(ynode_size(r1), 3);
    assert_string_equal(ynode_get(r1, "retries")->str, "5"); /* explicit wins */
    assert_string_equal(ynode_get(r1, "timeout")->str, "2s");
    assert_null(ynode_get(r1, "<<"));
    const struct ynode *r2 = ynode_get(root, "r2");
    assert_string_equal(ynode_get(r2, "retries")->str, "9"); /* earlier source wins */
    assert_string_equal(ynode_get(r2, "extra")->str, "x");
    assert_string_equal(ynode_get(r2, "cache")->str, "on");
    assert_int_equal(ynode_size(r2), 4);
    assert_string_equal(ynode_get(ynode_get(root, "r3"), "k")->str, "v");
    assert_string_equal(ynode_get(ynode_get(root, "r4"), "k")->str, "v"); /* anchor survives */
    yaml_tree_free(root);
    expect_error("a:\n  <<: 5\n", "t.yaml:2:7: '<<' merges a map or a list of maps, not a scalar");
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key 'a' (first at line 1)");
    expect_error("x:\n  k: 1\n  j: 2\n  k: 3\n", "t.yaml:4:3: duplicate key 'k'");
    expect_error("a: *nope\n", "t.yaml:1:4: unknown alias '*nope'");
    expect_error("a: &s [1, *s]\n", "unknown alias '*s'"); /* self-reference */
    expect_error("a: 1\n---\nb: 2\n", "t.yaml:2:1: only one YAML document");
    expect_error("a: 1\n b: 2\n", "t.yaml:2:3:");
    expect_error("a: [1, 2\n", "t.yaml:2:1:");
    expect_error("key: \"unterminated\n", "t.yaml:");
    expect_error("? [a, b]\n: 1\n", "t.yaml:1:3: a key must be a plain value, not a sequence");
    expect_error("a: \"\xff\xfe\"\n", "t.yaml:1:");
    expect_error("a:\tb: c\n", "t.yaml:");
    /* a message that names the problem, not just a position */
    char err[256];
    assert_null(load("a: 1\n- b\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:2:1: did not find expected key while parsing a block mapping "
                             "(started at line 1)");
}

static void test_bounds(void **state)
{
    (void)state;
    /* billion laughs: 9 levels of x10 would be 10^9 nodes */
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof(text), "l0: &l0 [a,a,a,a,a,a,a,a,a,a]\n");
    for (int i = 1; i < 9; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "l%d: &l%d [*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d]\n", i, i,
                              i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    expect_error(text, "document too large");

    /* deep nesting */
    char *deep = malloc(2 * 1000 + 8);
    size_t k = 0;
    deep[k++] = 'a', deep[k++] = ':', deep[k++] = ' ';
    for (int i = 0; i < 1000; i++)
        deep[k++] = '[';
    for (int i = 0; i < 1000; i++)
        deep[k++] = ']';
    deep[k] = '\0';
    expect_error(deep, "nesting deeper than");
    free(deep);
}

static void test_files(void **state)
{
    (void)state;
    char err[256];
    assert_null(yaml_load_file("/nonexistent/apigate.yaml", err, sizeof(err)));
    assert_string_equal(err, "/nonexistent/apigate.yaml: cannot open: No such file or directory");

    char path[] = "/tmp/test_yaml_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "a:\n  b: [1, 2]\n  b: 3\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_null(yaml_load_file(path, err, sizeof(err)));
    char want[128];
    snprintf(want, sizeof(want), "%s:3:3: duplicate key 'b'", path);
    assert_non_null(strstr(err, want));

    FILE *f = fopen(path, "w");
    fputs("a:\n  b: [1, 2]\n", f);
    fclose(f);
    struct ynode *root = yaml_load_file(path, err, sizeof(err));
    assert_non_null(root);
    const struct ynode *b = ynode_get(ynode_get(root, "a"), "b");
    assert_string_equal(b->file, path);
    assert_int_equal(b->line, 2);
    assert_int_equal(ynode_size(b), 2);
    yaml_tree_free(root);

    /* "-" reads standard input */
    int saved = dup(STDIN_FILENO);
    f = fopen(path, "w");
    fputs("x: [1,\n", f);
    fclose(f);
    assert_non_null(freopen(path, "r", stdin));
    assert_null(yaml_load_file("-", err, sizeof(err)));
    assert_non_null(strstr(err, "<stdin>:2:1: "));
    dup2(saved, STDIN_FILENO);
    close(saved);
    clearerr(stdin);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_and_positions), cmocka_unit_test(test_empty_documents),
        cmocka_unit_test(test_aliases),            cmocka_unit_test(test_merge_keys),
        cmocka_unit_test(test_errors),             cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
