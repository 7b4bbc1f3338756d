/* Gateway config: the DESIGN.md example, defaults of every section, each accepted form, and one
 * case per kind of error (each must carry file:line:col and the key). Also the supervisor's pure
 * parts (restart backoff, tick watchdog), which have no file of their own to test against. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/gwconf.h"
#include "gateway/supervisor.h"

static const char design_yaml[] =
    "listen: 127.0.0.1:8080\n"
    "admin: 127.0.0.1:9901\n"
    "workers: {threads: 2, worker_timeout: 30s, max_requests: 0, drain_timeout: 10s}\n"
    "upstreams:\n"
    "  api:\n"
    "    servers: [127.0.0.1:9000]            # host:port or https://host:port\n"
    "    balance: least_request               # round_robin | least_request | ewma\n"
    "    pool: {max_connections: 64, max_idle: 32, idle_timeout: 60s, queue_timeout: 1s}\n"
    "    connect_timeout: 1s\n"
    "    health: {path: /api/health, interval: 2s}\n"
    "cache:\n"
    "  memory: 256MB\n"
    "  max_object_size: 1MB\n"
    "  redis: redis://127.0.0.1:6379/0        # optional L2\n"
    "routes:\n"
    "  - match: /api/users/                    # prefix; exact and glob forms too\n"
    "    upstream: api\n"
    "    cache: {ttl: 60s, override: true, stale_while_revalidate: 30s, stale_if_error: 5m,\n"
    "            invalidate: [/api/users]}\n"
    "    timeout: {connect: 1s, first_byte: 3s, total: 10s}\n"
    "    limit: {concurrency: 100}\n"
    "    breaker: {window: 10s, buckets: 10, error_threshold: 50%, min_requests: 20, open_for: "
    "30s}\n"
    "  - match: /api/auth/me\n"
    "    upstream: api\n"
    "    cache: {ttl: 5m, override: true, vary: [Authorization]}\n"
    "  - match: /\n"
    "    upstream: api\n"
    "    cache: {}                             # caching on, pure RFC 9111\n";

static const char minimal_yaml[] = "upstreams:\n"
                                   "  api: {servers: [127.0.0.1:9000]}\n"
                                   "routes:\n"
                                   "  - {match: /, upstream: api}\n";

static struct gw_config *load(const char *text, struct cfg_errors *errs)
{
    return gwconf_load_string(text, strlen(text), "t.yaml", errs);
}

static struct gw_config *load_ok(const char *text)
{
    struct cfg_errors errs = {NULL, 0};
    struct gw_config *c = load(text, &errs);
    if (c == NULL)
        cfg_errors_print(&errs, stderr);
    assert_non_null(c);
    assert_int_equal(errs.n, 0);
    cfg_errors_free(&errs);
    return c;
}

static void test_design_example(void **state)
{
    (void)state;
    struct gw_config *c = load_ok(design_yaml);
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0].spec, "127.0.0.1:8080");
    assert_true(c->admin_enabled);
    assert_string_equal(c->admin, "127.0.0.1:9901");
    assert_int_equal(c->workers.threads, 2);
    assert_int_equal(c->workers.worker_timeout_ms, 30000);
    assert_int_equal(c->workers.drain_timeout_ms, 10000);

    assert_int_equal(c->nupstreams, 1);
    const struct gw_upstream *u = gwconf_upstream_by_name(c, "api");
    assert_non_null(u);
    assert_ptr_equal(u, gwconf_upstream(c, 0));
    assert_null(gwconf_upstream_by_name(c, "nope"));
    assert_null(gwconf_upstream(c, 1));
    assert_int_equal(u->nservers, 1);
    assert_string_equal(u->servers[0].host, "127.0.0.1");
    assert_int_equal(u->servers[0].port, 9000);
    assert_true(u->servers[0].numeric);
    assert_false(u->servers[0].tls);
    assert_int_equal(u->balance, GW_BALANCE_LEAST_REQUEST);
    assert_int_equal(u->pool.max_connections, 64);
    assert_int_equal(u->pool.max_idle, 32);
    assert_int_equal(u->pool.idle_timeout_ms, 60000);
    assert_int_equal(u->pool.queue_timeout_ms, 1000);
    assert_int_equal(u->connect_timeout_ms, 1000);
    assert_true(u->health.enabled);
    assert_string_equal(u->health.path, "/api/health");
    assert_int_equal(u->health.interval_ms, 2000);
    assert_int_equal(u->health.timeout_ms, 1000);
    assert_int_equal(u->health.healthy_threshold, 2);
    assert_int_equal(u->health.unhealthy_threshold, 3);

    assert_int_equal(c->cache.memory, 256u << 20);
    assert_int_equal(c->cache.max_object_size, 1u << 20);
    assert_string_equal(c->cache.redis, "redis://127.0.0.1:6379/0");

    assert_int_equal(c->nroutes, 3);
    const struct gw_route *r = gwconf_route(c, 0);
    assert_string_equal(r->match, "/api/users/");
    assert_int_equal(r->kind, GW_MATCH_PREFIX);
    assert_int_equal(r->upstream_index, 0);
    assert_true(r->cache.enabled);
    assert_int_equal(r->cache.ttl_ms, 60000);
    assert_true(r->cache.override);
    assert_int_equal(r->cache.stale_while_revalidate_ms, 30000);
    assert_int_equal(r->cache.stale_if_error_ms, 300000);
    assert_int_equal(r->cache.invalidate.n, 1);
    assert_string_equal(r->cache.invalidate.v[0], "/api/users");
    assert_int_equal(r->timeout.connect_ms, 1000);
    assert_int_equal(r->timeout.first_byte_ms, 3000);
    assert_int_equal(r->timeout.total_ms, 10000);
    assert_int_equal(r->limit.concurrency, 100);
    assert_true(r->breaker.enabled);
    assert_int_equal(r->breaker.window_ms, 10000);
    assert_int_equal(r->breaker.buckets, 10);
    assert_true(r->breaker.error_threshold > 0.499 && r->breaker.error_threshold < 0.501);
    assert_int_equal(r->breaker.min_requests, 20);
    assert_int_equal(r->breaker.open_for_ms, 30000);

    r = gwconf_route(c, 1);
    assert_true(r->cache.enabled);
    assert_int_equal(r->cache.ttl_ms, 300000);
    assert_int_equal(r->cache.vary.n, 1);
    assert_string_equal(r->cache.vary.v[0], "Authorization");
    assert_false(r->breaker.enabled);

    r = gwconf_route(c, 2);
    assert_true(r->cache.enabled); /* cache: {} means on */
    assert_int_equal(r->cache.ttl_ms, 0);
    assert_false(r->cache.override);
    assert_null(gwconf_route(c, 3));
    gwconf_free(c);
}

static void test_defaults(void **state)
{
    (void)state;
    struct gw_config *c = load_ok(minimal_yaml);
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0].spec, "127.0.0.1:8080");
    assert_true(c->admin_enabled);
    assert_string_equal(c->admin, "127.0.0.1:9901");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* affinity or a CPU quota may give fewer */
    assert_true(c->workers.threads >= 1 && c->workers.threads <= (cpus > 64 ? 64 : cpus));
    assert_int_equal(c->workers.worker_timeout_ms, 30000);
    assert_int_equal(c->workers.max_requests, 0);
    assert_int_equal(c->workers.max_requests_jitter, 0);
    assert_int_equal(c->workers.drain_timeout_ms, 10000);
    assert_int_equal(c->workers.busy_poll_us, 50);
    assert_int_equal(c->server.client_header_timeout_ms, 10000);
    assert_int_equal(c->server.client_body_timeout_ms, 30000);
    assert_int_equal(c->server.keepalive_timeout_ms, 5000);
    assert_int_equal(c->server.max_head_size, 32 * 1024);
    assert_int_equal(c->server.max_body_size, 10 * 1024 * 1024);
    assert_int_equal(c->server.max_connections, 10000);
    assert_int_equal(c->server.concurrency, 0);
    assert_int_equal(c->logging.level, GW_LEVEL_INFO);
    assert_int_equal(c->logging.format, GW_FMT_TEXT);
    assert_string_equal(c->logging.access_log, "off");
    assert_int_equal(c->logging.access_format, GW_FMT_TEXT);
    assert_int_equal(c->cache.memory, 256u << 20);
    assert_int_equal(c->cache.max_object_size, 1u << 20);
    assert_null(c->cache.redis);
    assert_true(c->cache.coalesce);

    const struct gw_upstream *u = gwconf_upstream(c, 0);
    assert_int_equal(u->balance, GW_BALANCE_ROUND_ROBIN);
    assert_int_equal(u->pool.max_connections, 64);
    assert_int_equal(u->pool.max_idle, 32);
    assert_int_equal(u->pool.idle_timeout_ms, 60000);
    assert_int_equal(u->pool.queue_timeout_ms, 1000);
    assert_int_equal(u->connect_timeout_ms, 1000);
    assert_false(u->health.enabled);
    assert_false(u->tls.enabled);
    assert_true(u->tls.verify);
    assert_int_equal(u->servers[0].weight, 1);

    const struct gw_route *r = gwconf_route(c, 0);
    assert_false(r->cache.enabled); /* no cache key: not cached */
    assert_false(r->breaker.enabled);
    assert_false(r->fallback.enabled);
    assert_int_equal(r->limit.concurrency, 0);
    assert_int_equal(r->methods.n, 0);
    assert_null(r->host);
    gwconf_free(c);
}

static void test_forms(void **state)
{
    (void)state;
    struct gw_config *c = load_ok(
        "listen: [127.0.0.1:8080, '[::1]:8081']\n"
        "admin: off\n"
        "logging: {level: debug, format: json, access_log: stderr, access_format: json}\n"
        "server: {max_head_size: 64KB, concurrency: 500}\n"
        "upstreams:\n"
        "  ext:\n"
        "    servers: ['https://api.example.com', {address: 10.0.0.2:8443, weight: 3, backup: "
        "true}]\n"
        "    tls: {sni: api.example.com}\n"
        "  plain:\n"
        "    servers: http://localhost\n"
        "    balance: ewma\n"
        "routes:\n"
        "  - {match: '= /exact', upstream: ext}\n"
        "  - {match: /x, exact: true, upstream: ext, methods: [get, head]}\n"
        "  - {match: '/a/*.json', upstream: plain, host: example.com}\n"
        "  - match: /f\n"
        "    upstream: plain\n"
        "    cache:\n"
        "    fallback: {status: 503, headers: {Content-Type: application/json}, body: '{}'}\n"
        "    retry: {attempts: 2, on: [connect_error, '503']}\n");
    assert_int_equal(c->nlisten, 2);
    assert_int_equal(c->listen[1].addr.ss.ss_family, AF_INET6);
    assert_false(c->admin_enabled);
    assert_null(c->admin);
    assert_int_equal(c->logging.level, GW_LEVEL_DEBUG);
    assert_int_equal(c->logging.format, GW_FMT_JSON);
    assert_string_equal(c->logging.access_log, "stderr");
    assert_int_equal(c->server.max_head_size, 64 * 1024);
    assert_int_equal(c->server.concurrency, 500);

    const struct gw_upstream *u = gwconf_upstream_by_name(c, "ext");
    assert_true(u->tls.enabled);
    assert_true(u->tls.verify);
    assert_string_equal(u->tls.sni, "api.example.com");
    assert_int_equal(u->nservers, 2);
    assert_string_equal(u->servers[0].host, "api.example.com");
    assert_int_equal(u->servers[0].port, 443);
    assert_true(u->servers[0].tls);
    assert_false(u->servers[0].numeric); /* left to the resolver */
    assert_int_equal(u->servers[1].weight, 3);
    assert_true(u->servers[1].backup);
    assert_true(u->servers[1].tls); /* tls: section covers every server */
    u = gwconf_upstream_by_name(c, "plain");
    assert_int_equal(u->nservers, 1);
    assert_int_equal(u->servers[0].port, 80);
    assert_true(u->servers[0].numeric); /* localhost */
    assert_int_equal(u->balance, GW_BALANCE_EWMA);
    assert_false(u->tls.enabled);

    assert_int_equal(c->routes[0].kind, GW_MATCH_EXACT);
    assert_string_equal(c->routes[0].match, "= /exact");
    assert_string_equal(c->routes[0].path, "/exact");
    assert_int_equal(c->routes[1].kind, GW_MATCH_EXACT);
    assert_string_equal(c->routes[1].match, "= /x");
    assert_int_equal(c->routes[1].methods.n, 2);
    assert_string_equal(c->routes[1].methods.v[0], "GET");
    assert_int_equal(c->routes[2].kind, GW_MATCH_GLOB);
    assert_string_equal(c->routes[2].host, "example.com");
    assert_int_equal(c->routes[2].upstream_index, 1);
    const struct gw_route *r = &c->routes[3];
    assert_true(r->cache.enabled); /* "cache:" alone = on */
    assert_true(r->fallback.enabled);
    assert_int_equal(r->fallback.status, 503);
    assert_int_equal(r->fallback.nheaders, 1);
    assert_string_equal(r->fallback.headers[0].name, "Content-Type");
    assert_string_equal(r->fallback.headers[0].value, "application/json");
    assert_string_equal(r->fallback.body, "{}");
    assert_int_equal(r->fallback.body_len, 2);
    assert_int_equal(r->retry.attempts, 2);
    assert_int_equal(r->retry.on.n, 2);
    gwconf_free(c);
}

/* A default never conflicts with a written value next to it: it gives way. */
static void test_defaults_give_way(void **state)
{
    (void)state;
    struct gw_config *c = load_ok("cache: {memory: 512KB}\n"
                                  "upstreams:\n"
                                  "  a: {servers: [127.0.0.1:9000], health: {interval: 500ms}}\n"
                                  "routes:\n"
                                  "  - {match: /a, upstream: a, timeout: {total: 10s}}\n"
                                  "  - {match: /b, upstream: a, timeout: {first_byte: 90s}}\n");
    assert_int_equal(c->upstreams[0].health.timeout_ms, 250);
    assert_int_equal(c->cache.max_object_size, 512 * 1024);
    assert_int_equal(c->routes[0].timeout.first_byte_ms, 10000);
    assert_int_equal(c->routes[0].timeout.total_ms, 10000);
    assert_int_equal(c->routes[1].timeout.first_byte_ms, 90000);
    assert_int_equal(c->routes[1].timeout.total_ms, 90000);
    gwconf_free(c);
    struct cfg_errors errs = {NULL, 0};
    assert_null(load("upstreams:\n  a: {servers: [127.0.0.1:9000]}\nroutes:\n"
                     "  - {match: /a, upstream: a, timeout: {first_byte: 5s, total: 2s}}\n",
                     &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "t.yaml:4:"));
    assert_non_null(strstr(errs.msgs[0], "first_byte: 5000ms is above total 2000ms"));
    cfg_errors_free(&errs);
}

/* ${NAME} and ${NAME:-default} from the environment, errors with positions. */
static void test_env(void **state)
{
    (void)state;
    setenv("AGT_PORT", "7123", 1);
    setenv("AGT_REDIS", "redis://:s3cret@127.0.0.1:6379/2", 1);
    setenv("AGT_EMPTY", "", 1);
    unsetenv("AGT_UNSET");
    struct gw_config *c = load_ok(
        "# comments are left alone: ${AGT_UNSET}\n"
        "listen: 127.0.0.1:${AGT_PORT}\n"
        "cache: {redis: \"${AGT_REDIS}\"}   # ${AGT_UNSET} here too\n"
        "upstreams:\n"
        "  api: {servers: ['${AGT_UNSET:-127.0.0.1}:${AGT_EMPTY:-9000}']}\n"
        "routes:\n"
        "  - match: /\n"
        "    upstream: api\n"
        "    fallback: {body: 'literal $${AGT_PORT} and $5'}\n");
    assert_string_equal(c->listen[0].spec, "127.0.0.1:7123");
    assert_string_equal(c->cache.redis, "redis://:s3cret@127.0.0.1:6379/2");
    assert_string_equal(c->upstreams[0].servers[0].spec, "127.0.0.1:9000");
    assert_string_equal(c->routes[0].fallback.body, "literal ${AGT_PORT} and $5");
    gwconf_free(c);

    struct cfg_errors errs = {NULL, 0};
    setenv("AGT_NL", "a\nb", 1);
    assert_null(load("listen: ${AGT_UNSET}\n"
                     "admin: ${1BAD}\n"
                     "x-a: ${AGT_NL}\n",
                     &errs));
    assert_int_equal(errs.n, 3);
    assert_non_null(strstr(errs.msgs[0], "t.yaml:1:9: ${AGT_UNSET}: environment variable not set"));
    assert_non_null(strstr(errs.msgs[1], "t.yaml:2:8: '${1BAD}': bad variable reference"));
    assert_non_null(strstr(errs.msgs[2], "t.yaml:3:6: ${AGT_NL}: the value has a line break"));
    cfg_errors_free(&errs);
    unsetenv("AGT_NL");

    /* A value inside quotes arrives as it is in the environment: a backslash is not a YAML
     * escape ("\t" became a tab), and a quote does not end the string. */
    setenv("AGT_PW", "p\\tw\"x'y", 1);
    c = load_ok("cache: {redis: \"redis://:${AGT_PW}@127.0.0.1:6379\"}\n"
                "upstreams:\n"
                "  api: {servers: [127.0.0.1:9000]}\n"
                "routes:\n"
                "  - {match: /, upstream: api, fallback: {body: '${AGT_PW}'}}\n");
    assert_string_equal(c->cache.redis, "redis://:p\\tw\"x'y@127.0.0.1:6379");
    assert_string_equal(c->routes[0].fallback.body, "p\\tw\"x'y");
    gwconf_free(c);
    unsetenv("AGT_PW");
}

/* YAML anchors and merge keys, with the shared parts under a top-level x- key. */
static void test_anchors(void **state)
{
    (void)state;
    struct gw_config *c = load_ok("x-cache: &cache {ttl: 30s, override: true}\n"
                                  "x-pool: &pool {max_connections: 8}\n"
                                  "upstreams:\n"
                                  "  a: {servers: [127.0.0.1:9000], pool: *pool}\n"
                                  "  b: {servers: [127.0.0.1:9001],\n"
                                  "      pool: {<<: *pool, max_idle: 4}}\n"
                                  "routes:\n"
                                  "  - {match: /a/, upstream: a, cache: *cache}\n"
                                  "  - {match: /b/, upstream: b, cache: {<<: *cache, ttl: 5s}}\n");
    assert_int_equal(c->upstreams[0].pool.max_connections, 8);
    assert_int_equal(c->upstreams[0].pool.max_idle, 8); /* default 32 follows max_connections */
    assert_int_equal(c->upstreams[1].pool.max_connections, 8);
    assert_int_equal(c->upstreams[1].pool.max_idle, 4);
    assert_int_equal(c->routes[0].cache.ttl_ms, 30000);
    assert_true(c->routes[0].cache.override);
    assert_int_equal(c->routes[1].cache.ttl_ms, 5000);
    assert_true(c->routes[1].cache.override);
    gwconf_free(c);
    /* x- is only free at the top level. */
    struct cfg_errors errs = {NULL, 0};
    assert_null(load("upstreams:\n  a: {servers: [127.0.0.1:9000], x-note: 1}\n", &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "x-note: unknown key"));
    cfg_errors_free(&errs);
}

/* One error kind per row: the snippet, the line it must be reported at, and a word the message
 * must contain. */
struct bad_case {
    const char *yaml;
    int line;
    const char *needle;
};

#define UP "upstreams:\n  api: {servers: [127.0.0.1:9000]}\n"
#define RT "routes:\n  - {match: /, upstream: api}\n"
static const struct bad_case bad_cases[] = {
    {"bogus: 1\n" UP RT, 1, "bogus: unknown key"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: 1/s, shared: true}}\n", 4,
     "routes[0].rate_limit.shared: needs cache.redis"},
    {UP "routes:\n  - {match: /, upstream: api, cache: {invalidate: {tag: [a]}}}\n", 4,
     "routes[0].cache.invalidate.tag: unknown key"},
    {"workers: {threads: 2, worker_timeout: 3x}\n" UP RT, 1, "workers.worker_timeout"},
    {"workers: {busy_poll: 2ms}\n" UP RT, 1,
     "workers.busy_poll: 2ms is out of range; allowed 0us..1ms"},
    {"workers: {busy_poll: fast}\n" UP RT, 1, "'fast' is not a duration (e.g. 50us, 1ms)"},
    {UP "routes:\n  - {match: /, upstream: nope}\n", 4, "unknown upstream 'nope'; defined: api"},
    {"listen: 127.0.0.1\n" UP RT, 1, "listen: bad address"},
    {"listen: 127.0.0.1:70000\n" UP RT, 1, "listen: bad address"},
    {"admin: nowhere\n" UP RT, 1, "admin: bad address"},
    {"upstreams:\n  api:\n    servers: [127.0.0.1:9000]\n    pool: {max_connections: -5}\n" RT,
     4, "upstreams.api.pool.max_connections"},
    {"upstreams:\n  api:\n    servers: [127.0.0.1:9000]\n    balance: fastest\n" RT, 4,
     "round_robin"},
    {"upstreams:\n  api:\n    servers: []\n" RT, 3, "upstreams.api.servers: empty"},
    {"upstreams:\n  api:\n    servers: [127.0.0.1:9000]\n    pool: {max_connections: 4, "
     "max_idle: 5}\n" RT, 4, "pool.max_idle: 5 is above max_connections 4"},
    {"upstreams:\n  api: {balance: ewma}\n" RT, 2, "upstreams.api.servers: missing"},
    {"upstreams:\n  api: {servers: ['ftp://h:1']}\n" RT, 2, "unsupported scheme"},
    {"upstreams:\n  api: {servers: [example.com]}\n" RT, 2, "missing port"},
    {"listen: [127.0.0.1:8080\n" UP RT, 2, ""}, /* YAML syntax error */
    {UP "routes:\n  - {upstream: api}\n", 4, "routes[0].match: missing"},
    {UP "routes:\n  - {match: , upstream: api}\n", 4, "routes[0].match: empty"},
    {UP "routes:\n  - {match: /, upstream: }\n", 4, "routes[0].upstream: empty"},
    {UP "routes:\n  - {match: /}\n", 4, "routes[0].upstream: missing"},
    {UP "routes:\n  - {match: api, upstream: api}\n", 4, "must start with '/'"},
    {UP "routes:\n  - {match: /, upstream: api, cache: {ttl: forever}}\n", 4, "ttl"},
    {UP "routes:\n  - {match: /, upstream: api, cache: {statuses: [200, 999]}}\n", 4,
     "statuses"},
    {UP "routes:\n  - {match: /, upstream: api, breaker: {error_threshold: 150%}}\n", 4,
     "error_threshold"},
    {UP "routes:\n  - {match: /, upstream: api}\n  - {match: /, upstream: api}\n", 5,
     "repeats routes[0]"},
    {"listen: 127.0.0.1:8080\nadmin: 127.0.0.1:8080\n" UP RT, 2, "also a listen address"},
    {"workers: 4\n" UP RT, 1, "workers"},
    {"cache: {memory: 1MB, max_object_size: 2MB}\n" UP RT, 1, "max_object_size"},
    {"cache: {redis: 'http://x'}\n" UP RT, 1, "not a Redis URL"},
    {"upstreams:\n  api:\n    servers: [127.0.0.1:9000]\n    tls: {ca_file: /nonexistent.pem}\n"
     RT, 4, "cannot read"},
    {"upstreams:\n  api:\n    servers: [127.0.0.1:9000]\n    health: {interval: 1s, timeout: 2s}\n"
     RT, 4, "below interval"},
    {"logging: {level: loud}\n" UP RT, 1, "level"},
    {"admin:\n" UP RT, 1, "admin: must not be empty"},
    {"upstreams:\n  api: {servers: [127.0.0.1:9000], health: {path: }}\n" RT, 2,
     "health.path: must not be empty"},
    {"upstreams:\n  api: {servers: [127.0.0.1:9000], host: 'a b'}\n" RT, 2, "api.host"},
    {UP "routes:\n  - {match: /, upstream: api, host: 'x/y'}\n", 4, "routes[0].host"},
    {UP "routes:\n  - {match: /, upstream: api, cache: {vary: ['Accept Language']}}\n", 4,
     "vary: 'Accept Language' is not a header name"},
    {"routes: {match: /}\n" UP, 1, "routes: expected a list"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: 200/d}}\n", 4,
     "routes[0].rate_limit.rate: '200/d' is not a rate"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: 0/s}}\n", 4, "not a rate"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: 20000000/s}}\n", 4,
     "not a rate"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: /s}}\n", 4, "not a rate"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {burst: 3}}\n", 4,
     "routes[0].rate_limit.rate: missing"},
    {UP "routes:\n  - {match: /, upstream: api,\n     rate_limit: {rate: 1/s, key: 'header:a b'}}\n",
     5, "rate_limit.key: 'header:a b' is not a key"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: 1/s, key: 'jwt:'}}\n", 4,
     "is not a key"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: 1/s, key: ip}}\n", 4,
     "is not a key"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: 1/s, algorithm: leaky}}\n",
     4, "gcra"},
    {UP "routes:\n  - {match: /, upstream: api,\n     rate_limit: {rate: 9/m, algorithm: "
        "sliding_window, burst: 2}}\n",
     5, "burst: only with algorithm gcra"},
    {UP "routes:\n  - {match: /, upstream: api, rate_limit: {rate: 1/s, max_keys: 10}}\n", 4,
     "max_keys"},
    {"workers: {threads: 1}\nworkers: {threads: 2}\n" UP RT, 2, "duplicate key"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct cfg_errors errs = {NULL, 0};
        struct gw_config *c = load(bc->yaml, &errs);
        if (c != NULL || errs.n == 0)
            fprintf(stderr, "case %zu accepted:\n%s\n", i, bc->yaml);
        assert_null(c);
        assert_true(errs.n > 0);
        char pos[32];
        snprintf(pos, sizeof(pos), "t.yaml:%d:", bc->line);
        bool found = false;
        for (size_t j = 0; j < errs.n && !found; j++)
            found = strncmp(errs.msgs[j], pos, strlen(pos)) == 0 &&
                    strstr(errs.msgs[j], bc->needle) != NULL;
        if (!found) {
            fprintf(stderr, "case %zu: no message at %s with '%s'; got:\n", i, pos, bc->needle);
            cfg_errors_print(&errs, stderr);
        }
        assert_true(found);
        cfg_errors_free(&errs);
    }
}

/* One run reports every error of the file, in file order. */
static void test_all_errors_at_once(void **state)
{
    (void)state;
    struct cfg_errors errs = {NULL, 0};
    struct gw_config *c = load("routes:\n"
                               "  - {match: /, upstream: ghost}\n"
                               "workers: {drain_timeout: soon}\n"
                               "upstreams:\n"
                               "  api: {servers: [127.0.0.1:9000], balance: random}\n"
                               "typo: 1\n",
                               &errs);
    assert_null(c);
    assert_int_equal(errs.n, 4);
    assert_non_null(strstr(errs.msgs[0], "t.yaml:2:"));
    assert_non_null(strstr(errs.msgs[0], "ghost"));
    assert_non_null(strstr(errs.msgs[1], "t.yaml:3:"));
    assert_non_null(strstr(errs.msgs[2], "t.yaml:5:"));
    assert_non_null(strstr(errs.msgs[3], "t.yaml:6:"));
    cfg_errors_free(&errs);
}

/* A token file with <text>; returns its path (static storage, one at a time). */
static const char *token_file(const char *text)
{
    static char path[] = "/tmp/test_gwconf_token_XXXXXX";
    strcpy(path, "/tmp/test_gwconf_token_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void load_err(const char *yaml, int line, const char *needle)
{
    struct cfg_errors errs = {NULL, 0};
    struct gw_config *c = load(yaml, &errs);
    if (c != NULL || errs.n != 1 || strstr(errs.msgs[0], needle) == NULL)
        fprintf(stderr, "for:\n%s\nexpected one error with '%s', got %zu:\n%s\n", yaml, needle,
                errs.n, errs.n ? errs.msgs[0] : "");
    assert_null(c);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], needle));
    char at[32];
    snprintf(at, sizeof(at), "t.yaml:%d:", line);
    assert_non_null(strstr(errs.msgs[0], at));
    cfg_errors_free(&errs);
}

/* cache.key_secret / key_secret_file and path_normalization: loaded, checked at their line, the
 * secret freed with the config (valgrind). */
static void test_key_secret_and_paths(void **state)
{
    (void)state;
    char y[512];
    snprintf(y, sizeof(y), "%scache: {key_secret: 0123456789abcdef-x}\n", minimal_yaml);
    struct gw_config *c = load_ok(y);
    assert_int_equal(c->cache.key_secret_len, 18);
    assert_memory_equal(c->cache.key_secret_data, "0123456789abcdef-x", 18);
    assert_true(c->path_norm.merge_slashes); /* safe defaults */
    assert_true(c->path_norm.reject_encoded_slash);
    gwconf_free(c);
    const char *f = token_file("a-secret-from-a-file-0123\n\n");
    snprintf(y, sizeof(y),
             "%scache: {key_secret_file: %s}\npath_normalization: {merge_slashes: false}\n",
             minimal_yaml, f);
    c = load_ok(y);
    assert_int_equal(c->cache.key_secret_len, 25); /* trailing newlines dropped */
    assert_memory_equal(c->cache.key_secret_data, "a-secret-from-a-file-0123", 25);
    assert_false(c->path_norm.merge_slashes);
    assert_true(c->path_norm.reject_encoded_slash);
    gwconf_free(c);
    snprintf(y, sizeof(y), "%scache: {key_secret_file: %s, key_secret: 0123456789abcdef}\n",
             minimal_yaml, f);
    load_err(y, 5, "give one of them");
    unlink(f);
    snprintf(y, sizeof(y), "%scache: {key_secret: short}\n", minimal_yaml);
    load_err(y, 5, "cache.key_secret: 5 bytes; at least 16");
    snprintf(y, sizeof(y), "%scache:\n  key_secret_file: /nonexistent/secret\n", minimal_yaml);
    load_err(y, 6, "cache.key_secret_file: cannot read");
    snprintf(y, sizeof(y), "%spath_normalization: {merge_slashes: maybe}\n", minimal_yaml);
    struct cfg_errors errs = {NULL, 0};
    assert_null(load(y, &errs));
    assert_true(errs.n >= 1);
    cfg_errors_free(&errs);
}

/* `admin:` as an address or a map; the token file; the rule that an admin off loopback needs a
 * token (or insecure: true), from the file and from --admin. */
static void test_admin(void **state)
{
    (void)state;
    struct gw_config *c = load_ok("admin: 127.0.0.1:9901\n" UP RT);
    assert_string_equal(c->admin, "127.0.0.1:9901");
    assert_null(c->admin_cfg.token_file);
    assert_null(c->admin_cfg.token);
    assert_false(c->admin_cfg.insecure);
    assert_false(c->admin_cfg.readyz_strict);
    assert_int_equal(c->admin_cfg.max_connections, 64);
    assert_int_equal(c->admin_cfg.header_timeout_ms, 10000);
    assert_int_equal(c->admin_cfg.idle_timeout_ms, 30000);
    assert_false(gwconf_admin_open(c));
    gwconf_free(c);
    c = load_ok(minimal_yaml); /* absent: the default address */
    assert_string_equal(c->admin, "127.0.0.1:9901");
    assert_int_equal(c->admin_cfg.max_connections, 64);
    gwconf_free(c);

    char yaml[1024];
    const char *tf = token_file("0123456789abcdef-TOKEN \r\n\n");
    snprintf(yaml, sizeof(yaml),
             "admin:\n  address: 0.0.0.0:9901\n  token_file: %s\n  readyz_strict: true\n"
             "  max_connections: 8\n  header_timeout: 2s\n  idle_timeout: 1m\n" UP RT, tf);
    c = load_ok(yaml);
    assert_true(c->admin_enabled);
    assert_string_equal(c->admin, "0.0.0.0:9901");
    assert_string_equal(c->admin_cfg.token, "0123456789abcdef-TOKEN"); /* trailing space cut */
    assert_int_equal(c->admin_cfg.token_len, 22);
    assert_true(c->admin_cfg.readyz_strict);
    assert_int_equal(c->admin_cfg.max_connections, 8);
    assert_int_equal(c->admin_cfg.header_timeout_ms, 2000);
    assert_int_equal(c->admin_cfg.idle_timeout_ms, 60000);
    assert_false(gwconf_admin_open(c));
    gwconf_free(c);
    unlink(tf);

    /* loopback in every spelling needs no token */
    const char *lo[] = {"127.0.0.1:1", "127.9.8.7:1", "'[::1]:1'", "localhost:1",
                        "{address: 127.0.0.1:1}"};
    for (size_t i = 0; i < sizeof(lo) / sizeof(lo[0]); i++) {
        snprintf(yaml, sizeof(yaml), "admin: %s\n" UP RT, lo[i]);
        gwconf_free(load_ok(yaml));
    }
    /* off loopback: an error unless insecure */
    load_err("admin: 0.0.0.0:9901\n" UP RT, 1, "admin: 0.0.0.0:9901 is not a loopback address");
    load_err("admin: '[::]:9901'\n" UP RT, 1, "is not a loopback address and has no token_file");
    load_err("admin: 10.1.2.3:9901\n" UP RT, 1, "admin.insecure: true");
    load_err("admin:\n  address: 0.0.0.0:9901\n" UP RT, 2, "not a loopback address");
    c = load_ok("admin: {address: 0.0.0.0:9901, insecure: true}\n" UP RT);
    assert_true(gwconf_admin_open(c));
    gwconf_free(c);
    load_err("admin: [127.0.0.1:1]\n" UP RT, 1, "admin: expected host:port, off, or a map");
    load_err("admin: {adress: 127.0.0.1:1}\n" UP RT, 1, "admin.adress: unknown key");
    load_err("admin: {address: nowhere}\n" UP RT, 1, "admin.address: bad address");
    load_err("admin: {max_connections: 0}\n" UP RT, 1, "admin.max_connections");
    load_err("admin: {token_file: /nonexistent/token}\n" UP RT, 1,
             "admin.token_file: cannot read '/nonexistent/token'");
    tf = token_file("tooshort\n");
    snprintf(yaml, sizeof(yaml), "admin:\n  token_file: %s\n" UP RT, tf);
    load_err(yaml, 2, "holds 8 characters");
    unlink(tf);
    tf = token_file("0123456789 abcdef\n");
    snprintf(yaml, sizeof(yaml), "admin:\n  token_file: %s\n" UP RT, tf);
    load_err(yaml, 2, "space or control character at byte 11");
    unlink(tf);

    /* --admin goes by the same rule, and a refused one leaves the config as it was */
    char err[600];
    c = load_ok(minimal_yaml);
    assert_int_equal(gwconf_set_admin(c, "0.0.0.0:7009", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--admin 0.0.0.0:7009 is not a loopback address"));
    assert_string_equal(c->admin, "127.0.0.1:9901");
    assert_int_equal(gwconf_set_admin(c, "127.0.0.1:7009", err, sizeof(err)), 0);
    c->admin_cfg.insecure = true;
    assert_int_equal(gwconf_set_admin(c, "0.0.0.0:7009", err, sizeof(err)), 0);
    assert_true(gwconf_admin_open(c));
    gwconf_free(c);
}

static void test_file_and_overrides(void **state)
{
    (void)state;
    char path[] = "/tmp/test_gwconf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, minimal_yaml, strlen(minimal_yaml)), (ssize_t)strlen(minimal_yaml));
    close(fd);
    struct cfg_errors errs = {NULL, 0};
    struct gw_config *c = gwconf_load(path, &errs);
    assert_non_null(c);
    assert_string_equal(c->path, path);
    struct gw_config *d = gwconf_load(path, &errs);
    assert_false(gwconf_listen_changed(c, d));

    char err[256];
    assert_int_equal(gwconf_set_listen(d, "127.0.0.1:7001,127.0.0.1:7002", err, sizeof(err)), 0);
    assert_int_equal(d->nlisten, 2);
    assert_true(gwconf_listen_changed(c, d));
    assert_int_equal(gwconf_set_listen(d, "nonsense", err, sizeof(err)), -1);
    assert_int_equal(d->nlisten, 2); /* unchanged on error */
    assert_int_equal(gwconf_set_admin(d, "off", err, sizeof(err)), 0);
    assert_false(d->admin_enabled);
    assert_int_equal(gwconf_set_admin(d, "127.0.0.1:7009", err, sizeof(err)), 0);
    assert_true(d->admin_enabled);
    assert_string_equal(d->admin, "127.0.0.1:7009");
    assert_int_equal(gwconf_set_admin(d, "x", err, sizeof(err)), -1);
    assert_int_equal(gwconf_set_threads(d, 3, err, sizeof(err)), 0);
    assert_int_equal(d->workers.threads, 3);
    assert_int_equal(gwconf_set_threads(d, 65, err, sizeof(err)), -1);
    gwconf_free(d);
    gwconf_free(c);
    unlink(path);

    c = gwconf_load("/nonexistent/apigate.yaml", &errs);
    assert_null(c);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "/nonexistent/apigate.yaml"));
    cfg_errors_free(&errs);
}

static void test_reference(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    gwconf_print_reference(f);
    fclose(f);
    const char *keys[] = {"`listen`", "`admin`", "`admin.token_file`", "`admin.readyz_strict`",
                          "`admin.header_timeout`", "`workers.threads`", "`workers.max_requests`",
                          "`server.max_head_size`", "`logging.access_log`", "`cache.memory`",
                          "`upstreams.NAME.servers`", "`upstreams.NAME.pool.max_connections`",
                          "`upstreams.NAME.health.interval`", "`upstreams.NAME.tls.verify`",
                          "`routes[].match`", "`routes[].cache.ttl`", "`routes[].timeout.total`",
                          "`routes[].limit.concurrency`", "`routes[].breaker.open_for`",
                          "`routes[].fallback.status`"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strstr(text, keys[i]) == NULL)
            fprintf(stderr, "reference lacks %s\n", keys[i]);
        assert_non_null(strstr(text, keys[i]));
    }
    free(text);
}

static char *dump_of(const struct gw_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    gwconf_dump(c, f);
    fclose(f);
    return text;
}

/* dump -> load -> dump gives the same text: the dump holds every value exactly. */
static void roundtrip(const char *yaml)
{
    struct gw_config *a = load_ok(yaml);
    char *da = dump_of(a);
    struct gw_config *b = load_ok(da);
    char *db = dump_of(b);
    if (strcmp(da, db) != 0)
        fprintf(stderr, "first dump:\n%s\nsecond dump:\n%s\n", da, db);
    assert_string_equal(da, db);
    free(da);
    free(db);
    gwconf_free(a);
    gwconf_free(b);
}

/* rate_limit: the rate's forms, the key forms, the burst default, the algorithm. */
static void test_rate_limit(void **state)
{
    (void)state;
    struct gw_config *c = load_ok(
        UP "cache: {redis: redis://127.0.0.1:6379/0}\n"
           "routes:\n"
           "  - {match: /a/, upstream: api,\n"
           "     rate_limit: {rate: 200/s, burst: 50, key: header:X-Api-Key, shared: true}}\n"
           "  - {match: /b/, upstream: api, rate_limit: {rate: 1000/m}}\n"
           "  - {match: /c/, upstream: api,\n"
           "     rate_limit: {rate: 5/h, key: jwt:sub, algorithm: fixed_window}}\n"
           "  - {match: /d/, upstream: api}\n");
    const struct gw_rate_limit *a = &c->routes[0].rate_limit, *b = &c->routes[1].rate_limit;
    const struct gw_rate_limit *d = &c->routes[2].rate_limit;
    assert_true(a->enabled);
    assert_int_equal(a->count, 200);
    assert_int_equal(a->period_ms, 1000);
    assert_int_equal(a->burst_eff, 50);
    assert_int_equal(a->key_kind, GW_RL_KEY_HEADER);
    assert_string_equal(a->key_name, "X-Api-Key");
    assert_true(a->shared);
    assert_int_equal(a->sync_interval_ms, 50);
    assert_int_equal(a->algorithm, 0);
    assert_int_equal(b->count, 1000);
    assert_int_equal(b->period_ms, 60000);
    assert_int_equal(b->burst_eff, 100); // N/10
    assert_int_equal(b->key_kind, GW_RL_KEY_CLIENT);
    assert_int_equal(b->max_keys, 65536);
    assert_int_equal(d->period_ms, 3600000);
    assert_int_equal(d->burst_eff, 1);
    assert_int_equal(d->key_kind, GW_RL_KEY_JWT);
    assert_string_equal(d->key_name, "sub");
    assert_int_equal(d->algorithm, 1);
    assert_false(c->routes[3].rate_limit.enabled);
    gwconf_free(c);
}

static void test_dump_roundtrip(void **state)
{
    (void)state;
    roundtrip(UP "routes:\n  - {match: /, upstream: api,\n"
                 "     rate_limit: {rate: 7/m, key: jwt:tenant, algorithm: sliding_window}}\n");
    roundtrip(design_yaml);
    roundtrip(minimal_yaml);
    roundtrip("admin: {address: '[::1]:9902', readyz_strict: true, max_connections: 3,\n"
              "        header_timeout: 1500ms, idle_timeout: 2m}\n" UP RT);
    roundtrip("admin: {address: 0.0.0.0:9901, insecure: true}\n" UP RT);
    roundtrip("listen: ['[::1]:8080', 127.0.0.1:8081]\n"
              "admin: off\n"
              "workers: {threads: 3, worker_timeout: 1500ms, max_requests: 1000,\n"
              "          busy_poll: 250us}\n"
              "server: {max_body_size: 1536, keepalive_timeout: 45m}\n"
              "cache: {memory: 3GB, redis: 'redis://r:6379/1', eviction: s3fifo}\n"
              "upstreams:\n"
              "  \"odd name\": {servers: ['https://x.example:8443'], tls: {verify: false}}\n"
              "routes:\n"
              "  - match: '= /q'\n"
              "    upstream: odd name\n"
              "    methods: [GET]\n"
              "    cache: {ttl: 1h30m, statuses: [200, 404], vary: [Accept-Encoding]}\n"
              "    breaker: {error_threshold: 12.5%}\n"
              "    retry: {budget: 0.2}\n"
              "    fallback:\n"
              "      status: 200\n"
              "      headers: {X-Fallback: 'yes \"really\"'}\n"
              "      body: \"line1\\nline2\\t\\\\ end $${NOT_EXPANDED}\"\n");
    /* The values survive, not only the text. */
    struct gw_config *a = load_ok(design_yaml);
    char *d = dump_of(a);
    struct gw_config *b = load_ok(d);
    assert_int_equal(b->routes[0].cache.stale_if_error_ms, 300000);
    assert_true(b->routes[0].breaker.enabled);
    assert_false(b->routes[1].breaker.enabled);
    assert_true(b->routes[2].cache.enabled);
    assert_true(b->upstreams[0].health.enabled);
    assert_int_equal(b->upstreams[0].balance, GW_BALANCE_LEAST_REQUEST);
    free(d);
    gwconf_free(a);
    gwconf_free(b);
}

static void test_backoff(void **state)
{
    (void)state;
    struct supervisor_backoff b = {0};
    const uint64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    uint64_t t = 1000000;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(supervisor_backoff_next(&b, t, t + 50), want[i]);
        t += 10000;
    }
    /* A worker that lived 30 s resets the sequence. */
    assert_int_equal(supervisor_backoff_next(&b, t, t + SUPERVISOR_STABLE_MS), 100);
    assert_int_equal(supervisor_backoff_next(&b, t, t + 10), 200);
}

static void test_watchdog(void **state)
{
    (void)state;
    struct supervisor_watch w;
    uint64_t ticks[3] = {0, 0, 0};
    supervisor_watch_init(&w, 3, 1000);
    assert_int_equal(supervisor_watch_check(&w, ticks, 1500, 1000), -1);
    ticks[0] = 5;
    ticks[1] = 7;
    assert_int_equal(supervisor_watch_check(&w, ticks, 2000, 1000), -1);
    /* thread 2 never ticked since 1000 */
    ticks[0] = 6;
    ticks[1] = 8;
    assert_int_equal(supervisor_watch_check(&w, ticks, 2001, 1000), 2);
    ticks[2] = 1;
    assert_int_equal(supervisor_watch_check(&w, ticks, 2002, 1000), -1);
    /* thread 1 stalls from 2001 on */
    ticks[0] = 7;
    ticks[2] = 2;
    assert_int_equal(supervisor_watch_check(&w, ticks, 3000, 1000), -1);
    ticks[0] = 8;
    ticks[2] = 3;
    assert_int_equal(supervisor_watch_check(&w, ticks, 3002, 1000), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_anchors),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_defaults_give_way),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_all_errors_at_once),
        cmocka_unit_test(test_admin),
        cmocka_unit_test(test_file_and_overrides),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_dump_roundtrip),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_watchdog),
        cmocka_unit_test(test_key_secret_and_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
