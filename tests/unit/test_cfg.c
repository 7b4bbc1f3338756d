/* Descriptor tables: defaults, every type with its bounds, nested sections, unknown keys with
 * suggestions, required keys, all errors of one load collected with file:line:col, reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/cfg.h"

struct sample {
    char *match;
    char *upstream;
    uint64_t connect_timeout;
    uint64_t max_body;
    double threshold;
    bool override;
    int balance;
    int64_t retries;
    struct cfg_strlist servers;
    struct cfg_strlist methods;
    struct {
        int64_t max_connections;
        uint64_t idle_timeout;
        char *name;
    } pool;
};

static const struct cfg_desc pool_desc[] = {
    {"max_connections", CFG_INT, offsetof(struct sample, pool.max_connections), "64", "1", "10000",
     "connections per upstream", NULL, NULL, false},
    {"idle_timeout", CFG_DURATION, offsetof(struct sample, pool.idle_timeout), "60s", "1s", "1h",
     "close idle connections after", NULL, NULL, false},
    {"name", CFG_STRING, offsetof(struct sample, pool.name), NULL, NULL, NULL, "pool label", NULL,
     NULL, true},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, false},
};

static const struct cfg_desc sample_desc[] = {
    {"match", CFG_STRING, offsetof(struct sample, match), NULL, "1", NULL, "path prefix", NULL,
     NULL, true},
    {"upstream", CFG_STRING, offsetof(struct sample, upstream), "api", NULL, NULL, "upstream name",
     NULL, NULL, false},
    {"connect_timeout", CFG_DURATION, offsetof(struct sample, connect_timeout), "2s", "1ms", "1h",
     "time to open an upstream TCP connection", NULL, NULL, false},
    {"max_body", CFG_SIZE, offsetof(struct sample, max_body), "1MB", "1KB", "1GB",
     "largest request body", NULL, NULL, false},
    {"threshold", CFG_PERCENT, offsetof(struct sample, threshold), "50%", NULL, NULL,
     "error ratio that opens the breaker", NULL, NULL, false},
    {"override", CFG_BOOL, offsetof(struct sample, override), "false", NULL, NULL,
     "ignore origin cache headers", NULL, NULL, false},
    {"balance", CFG_ENUM, offsetof(struct sample, balance), "least_request", NULL, NULL,
     "load balancing", "round_robin|least_request|ewma", NULL, false},
    {"retries", CFG_INT, offsetof(struct sample, retries), "2", "0", "10", "retries", NULL, NULL,
     false},
    {"servers", CFG_STRLIST, offsetof(struct sample, servers), NULL, "1", "4", "host:port list",
     NULL, NULL, false},
    {"methods", CFG_STRLIST, offsetof(struct sample, methods), "[GET, HEAD]", NULL, NULL,
     "cacheable methods", NULL, NULL, false},
    {"pool", CFG_SECTION, 0, NULL, NULL, NULL, "connection pool", NULL, pool_desc, false},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, false},
};

static struct ynode *load(const char *text)
{
    char err[256];
    struct ynode *root = yaml_load_string(text, strlen(text), "c.yaml", err, sizeof(err));
    if (root == NULL)
        fail_msg("yaml: %s", err);
    return root;
}

/* Asserts that some error of <e> equals <want>. */
static void has_error(const struct cfg_errors *e, const char *want)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->msgs[i], want) == 0)
            return;
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "  got: %s\n", e->msgs[i]);
    fail_msg("missing error: %s", want);
}

static void test_defaults(void **state)
{
    (void)state;
    struct sample s;
    memset(&s, 0, sizeof(s));
    cfg_defaults(sample_desc, &s);
    assert_null(s.match);
    assert_string_equal(s.upstream, "api");
    assert_int_equal(s.connect_timeout, 2000);
    assert_int_equal(s.max_body, 1 << 20);
    assert_true(s.threshold == 0.5);
    assert_false(s.override);
    assert_int_equal(s.balance, 1);
    assert_int_equal(s.retries, 2);
    assert_int_equal(s.servers.n, 0);
    assert_int_equal(s.methods.n, 2);
    assert_string_equal(s.methods.v[1], "HEAD");
    assert_int_equal(s.pool.max_connections, 64);
    assert_int_equal(s.pool.idle_timeout, 60000);
    cfg_defaults(sample_desc, &s); /* again: no leak, same values */
    assert_int_equal(s.methods.n, 2);
    cfg_free_section(sample_desc, &s);
    assert_null(s.upstream);
    assert_null(s.methods.v);
}

static void test_apply_all_types(void **state)
{
    (void)state;
    struct ynode *root = load("match: /api/users/\n"
                              "connect_timeout: 250ms\n"
                              "max_body: 64KB\n"
                              "threshold: 25%\n"
                              "override: yes\n"
                              "balance: ewma\n"
                              "retries: 0\n"
                              "servers: 127.0.0.1:9000\n"
                              "methods: [GET]\n"
                              "pool: {max_connections: 8, name: p1}\n");
    struct sample s;
    memset(&s, 0, sizeof(s));
    struct cfg_errors e = {NULL, 0};
    assert_int_equal(cfg_apply(sample_desc, &s, root, &e), 0);
    assert_string_equal(s.match, "/api/users/");
    assert_string_equal(s.upstream, "api");
    assert_int_equal(s.connect_timeout, 250);
    assert_int_equal(s.max_body, 65536);
    assert_true(s.threshold == 0.25);
    assert_true(s.override);
    assert_int_equal(s.balance, 2);
    assert_int_equal(s.retries, 0);
    assert_int_equal(s.servers.n, 1); /* a scalar is a list of one */
    assert_string_equal(s.servers.v[0], "127.0.0.1:9000");
    assert_int_equal(s.methods.n, 1);
    assert_int_equal(s.pool.max_connections, 8);
    assert_int_equal(s.pool.idle_timeout, 60000); /* default inside a given section */
    assert_string_equal(s.pool.name, "p1");
    cfg_free_section(sample_desc, &s);
    yaml_tree_free(root);
}

static void test_all_errors_at_once(void **state)
{
    (void)state;
    struct ynode *root = load("match: /\n"
                              "conect_timeout: 1s\n"
                              "max_body: 2GB\n"
                              "threshold: 150%\n"
                              "override: maybe\n"
                              "balance: random\n"
                              "retries: 1.5\n"
                              "servers: [a, {b: 1}]\n"
                              "colour: blue\n"
                              "connect_timeout: 10 parsecs\n"
                              "pool:\n"
                              "  max_connections: 0\n"
                              "  idle_timeout: [1s]\n"
                              "  name: x\n");
    struct sample s;
    memset(&s, 0, sizeof(s));
    struct cfg_errors e = {NULL, 0};
    size_t n = cfg_apply(sample_desc, &s, root, &e);
    assert_int_equal(n, e.n);
    has_error(&e, "c.yaml:2:1: conect_timeout: unknown key; did you mean 'connect_timeout'? known: "
                  "match, upstream, connect_timeout, max_body, threshold, override, balance, "
                  "retries, servers, methods, pool");
    has_error(&e, "c.yaml:3:11: max_body: 2GB is out of range; allowed 1KB..1GB");
    has_error(&e, "c.yaml:4:12: threshold: 150% is out of range; allowed 0%..100%");
    has_error(&e, "c.yaml:5:11: override: 'maybe' is not a boolean; use true or false");
    has_error(&e, "c.yaml:6:10: balance: 'random' is not allowed; use one of: round_robin, "
                  "least_request, ewma");
    has_error(&e, "c.yaml:7:10: retries: '1.5' is not an integer");
    has_error(&e, "c.yaml:8:14: servers: item 2 is a map; expected a string");
    has_error(&e, "c.yaml:9:1: colour: unknown key; known: match, upstream, connect_timeout, "
                  "max_body, threshold, override, balance, retries, servers, methods, pool");
    has_error(&e, "c.yaml:10:18: connect_timeout: '10 parsecs' is not a duration (e.g. 250ms, 2s, "
                  "1m)");
    has_error(&e, "c.yaml:12:20: pool.max_connections: 0 is out of range; allowed 1..10000");
    has_error(&e, "c.yaml:13:17: pool.idle_timeout: expected a duration (e.g. 250ms, 2s, 1m), got "
                  "a sequence");
    assert_int_equal(e.n, 11);
    /* failed values leave the defaults in place */
    assert_int_equal(s.max_body, 1 << 20);
    assert_int_equal(s.connect_timeout, 2000);
    assert_int_equal(s.servers.n, 0);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cfg_errors_print(&e, f);
    fclose(f);
    assert_non_null(strstr(text, "\nc.yaml:3:11: max_body:"));
    free(text);
    cfg_errors_free(&e);
    assert_int_equal(e.n, 0);
    cfg_free_section(sample_desc, &s);
    yaml_tree_free(root);
}

static void test_required(void **state)
{
    (void)state;
    struct sample s;
    memset(&s, 0, sizeof(s));
    struct cfg_errors e = {NULL, 0};
    /* whole table absent: no position to give */
    assert_int_equal(cfg_apply(sample_desc, &s, NULL, &e), 2);
    has_error(&e, "match: missing (required: path prefix)");
    has_error(&e, "pool.name: missing (required: pool label)");
    cfg_errors_free(&e);
    cfg_free_section(sample_desc, &s);

    struct ynode *root = load("upstream: x\npool: {max_connections: 3}\nmatch: ''\n");
    memset(&s, 0, sizeof(s));
    assert_int_equal(cfg_apply(sample_desc, &s, root, &e), 2);
    has_error(&e, "c.yaml:2:7: pool.name: missing (required: pool label)");
    has_error(&e, "c.yaml:3:8: match: must not be empty");
    cfg_errors_free(&e);
    cfg_free_section(sample_desc, &s);
    yaml_tree_free(root);

    root = load("upstream: x\n");
    memset(&s, 0, sizeof(s));
    assert_int_equal(cfg_apply(sample_desc, &s, root, &e), 2);
    has_error(&e, "c.yaml:1:1: match: missing (required: path prefix)");
    has_error(&e, "c.yaml:1:1: pool.name: missing (required: pool label)");
    cfg_errors_free(&e);
    cfg_free_section(sample_desc, &s);
    yaml_tree_free(root);
}

static void test_shapes(void **state)
{
    (void)state;
    struct sample s;
    memset(&s, 0, sizeof(s));
    struct cfg_errors e = {NULL, 0};
    struct ynode *root = load("- a\n- b\n");
    assert_int_equal(cfg_apply(sample_desc, &s, root, &e), 1);
    has_error(&e, "c.yaml:1:1: expected a map of settings, got a sequence");
    cfg_errors_free(&e);
    cfg_free_section(sample_desc, &s);
    yaml_tree_free(root);

    root = load("match: /\npool: [1]\nretries:\nupstream:\nservers:\n");
    memset(&s, 0, sizeof(s));
    assert_int_equal(cfg_apply(sample_desc, &s, root, &e), 3);
    has_error(&e, "c.yaml:2:7: pool: expected a map of settings, got a sequence");
    has_error(&e, "c.yaml:3:9: retries: needs a value: an integer");
    has_error(&e, "c.yaml:5:9: servers: needs at least 1 items (has 0)");
    assert_null(s.upstream); /* "upstream:" clears the default */
    cfg_errors_free(&e);
    cfg_free_section(sample_desc, &s);
    yaml_tree_free(root);

    root = load("match: \"a\\0b\"\npool: {name: p}\nupstream: \"x\\0\"\n");
    memset(&s, 0, sizeof(s));
    assert_int_equal(cfg_apply(sample_desc, &s, root, &e), 2);
    has_error(&e, "c.yaml:1:8: match: contains a NUL byte");
    has_error(&e, "c.yaml:3:11: upstream: contains a NUL byte");
    cfg_errors_free(&e);
    cfg_free_section(sample_desc, &s);
    yaml_tree_free(root);

    root = load("match: /\npool: {name: p}\nservers: [a, b, c, d, e]\nthreshold: 0.25\n");
    memset(&s, 0, sizeof(s));
    assert_int_equal(cfg_apply(sample_desc, &s, root, &e), 1);
    has_error(&e, "c.yaml:3:10: servers: allows at most 4 items (has 5)");
    assert_true(s.threshold == 0.25);
    cfg_errors_free(&e);
    cfg_free_section(sample_desc, &s);
    yaml_tree_free(root);
}

static void test_parse_scalar(void **state)
{
    (void)state;
    struct cfg_errors e = {NULL, 0};
    struct ynode *root = load("a: 90s\nb: 3h\n");
    uint64_t ms = 0;
    assert_int_equal(cfg_parse_scalar(&sample_desc[2], ynode_get(root, "a"), &ms, &e), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(cfg_parse_scalar(&sample_desc[2], ynode_get(root, "b"), &ms, &e), -1);
    assert_int_equal(ms, 90000);
    has_error(&e, "c.yaml:2:4: connect_timeout: 3h is out of range; allowed 1ms..1h");
    cfg_error(&e, NULL, "plain %d", 7);
    has_error(&e, "plain 7");
    cfg_errors_free(&e);
    yaml_tree_free(root);
}

static void test_reference(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cfg_print_reference(sample_desc, "routes[]", f);
    fclose(f);
    assert_non_null(strstr(text, "| `routes[].connect_timeout` | duration | `2s` | 1ms..1h | time to "
                                 "open an upstream TCP connection |\n"));
    assert_non_null(strstr(text, "| `routes[].balance` | round_robin\\|least_request\\|ewma | "
                                 "`least_request` | - | load balancing |\n"));
    assert_non_null(strstr(text, "| `routes[].match` | string | required | ≥ 1 | path prefix |\n"));
    assert_non_null(strstr(text, "| `routes[].pool.idle_timeout` | duration | `60s` | 1s..1h |"));
    /* one row per key, nested included */
    size_t rows = 0;
    for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        rows++;
    assert_int_equal(rows, 11 + 3);
    free(text);
}

static void test_apply_at(void **state)
{
    (void)state;
    static const char *const manual[] = {"routes", "health", NULL};
    struct ynode *root = load("api:\n"
                              "  match: /\n"
                              "  balance: random\n"
                              "  routes: [{a: 1}]\n"
                              "  helth: x\n"
                              "  pool: {name: p, max_connections: -1}\n"
                              "empty:\n"
                              "list: [1]\n");
    struct sample s;
    memset(&s, 0, sizeof(s));
    struct cfg_errors e = {NULL, 0};
    assert_int_equal(cfg_apply_at(sample_desc, &s, ynode_get(root, "api"), "upstreams.api", manual,
                                  &e),
                     3);
    has_error(&e, "c.yaml:3:12: upstreams.api.balance: 'random' is not allowed; use one of: "
                  "round_robin, least_request, ewma");
    has_error(&e, "c.yaml:5:3: upstreams.api.helth: unknown key; did you mean 'health'? known: "
                  "match, upstream, connect_timeout, max_body, threshold, override, balance, "
                  "retries, servers, methods, pool, routes, health");
    has_error(&e, "c.yaml:6:36: upstreams.api.pool.max_connections: -1 is out of range; allowed "
                  "1..10000");
    cfg_free_section(sample_desc, &s);

    /* "empty:" alone: defaults, and the required keys are reported where it is */
    memset(&s, 0, sizeof(s));
    assert_int_equal(cfg_apply_at(sample_desc, &s, ynode_get(root, "empty"), "r", NULL, &e), 2);
    has_error(&e, "c.yaml:7:7: r.match: missing (required: path prefix)");
    has_error(&e, "c.yaml:7:7: r.pool.name: missing (required: pool label)");
    assert_string_equal(s.upstream, "api");
    cfg_free_section(sample_desc, &s);

    memset(&s, 0, sizeof(s));
    assert_int_equal(cfg_apply_at(sample_desc, &s, ynode_get(root, "list"), "routes[0]", NULL, &e),
                     1);
    has_error(&e, "c.yaml:8:7: routes[0]: expected a map of settings, got a sequence");
    cfg_free_section(sample_desc, &s);

    /* sorted top to bottom, stable, position-less first */
    cfg_error(&e, NULL, "global problem");
    cfg_error(&e, ynode_get(root, "api"), "second at 2:3");
    cfg_errors_sort(&e, 0);
    assert_string_equal(e.msgs[0], "global problem");
    assert_string_equal(e.msgs[1], "c.yaml:2:3: second at 2:3");
    assert_non_null(strstr(e.msgs[2], "c.yaml:3:12: "));
    assert_non_null(strstr(e.msgs[3], "c.yaml:5:3: "));
    assert_non_null(strstr(e.msgs[4], "c.yaml:6:36: "));
    assert_non_null(strstr(e.msgs[5], "c.yaml:7:7: r.match"));
    assert_non_null(strstr(e.msgs[6], "c.yaml:7:7: r.pool.name"));
    assert_non_null(strstr(e.msgs[7], "c.yaml:8:7: "));
    assert_int_equal(e.n, 8);
    cfg_errors_free(&e);
    yaml_tree_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_apply_all_types),
        cmocka_unit_test(test_all_errors_at_once), cmocka_unit_test(test_required),
        cmocka_unit_test(test_shapes),       cmocka_unit_test(test_parse_scalar),
        cmocka_unit_test(test_reference),    cmocka_unit_test(test_apply_at),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
