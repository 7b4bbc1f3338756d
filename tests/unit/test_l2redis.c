/* Unit tests for cache/l2redis.c without a Redis server: URL parsing (host, port, database, unix
 * sockets, errors), and the "Redis is down" path — a client pointed at a closed port never blocks,
 * answers lookups as unavailable at once (NULL handle, callback never called), counts errors and
 * keeps retrying; destroy with nothing pending is clean. A peer that accepts and never reads nor
 * answers (a stopped server) holds a bounded number of commands and bytes, not all we send it.
 * The e2e tests 24_cache_redis and 26_cache_redis_bad_peer cover a real and a hostile server. */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache/l2redis.h"
#include "core/loop.h"

static void test_parse_url(void **state)
{
    (void)state;
    char host[64], err[128];
    int port, db;
    assert_int_equal(l2redis_parse_url("redis://127.0.0.1:6380/2", host, sizeof(host), &port, &db,
                                       err, sizeof(err)),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6380);
    assert_int_equal(db, 2);
    assert_int_equal(
        l2redis_parse_url("redis://cache.local", host, sizeof(host), &port, &db, err, sizeof(err)),
        0);
    assert_string_equal(host, "cache.local");
    assert_int_equal(port, 6379);
    assert_int_equal(db, 0);
    assert_int_equal(l2redis_parse_url("unix:///run/redis.sock", host, sizeof(host), &port, &db,
                                       err, sizeof(err)),
                     0);
    assert_string_equal(host, "/run/redis.sock");
    assert_int_equal(port, -1);
    assert_int_equal(
        l2redis_parse_url("http://x", host, sizeof(host), &port, &db, err, sizeof(err)), -1);
    assert_int_equal(
        l2redis_parse_url("redis://x:99999", host, sizeof(host), &port, &db, err, sizeof(err)), -1);
    assert_int_equal(
        l2redis_parse_url("redis://x:1/abc", host, sizeof(host), &port, &db, err, sizeof(err)), -1);
}

static int called;
static void on_get(void *arg, enum l2redis_status st, const char *const *vals, const size_t *lens,
                   size_t n)
{
    (void)arg;
    (void)st;
    (void)vals;
    (void)lens;
    (void)n;
    called++;
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_down(void **state)
{
    (void)state;
    struct loop *loop = loop_create();
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", closed_port());
    struct l2redis_conf conf = {.url = url, .timeout_ms = 20, .reconnect_ms = 10};
    struct l2redis *r = l2redis_create(loop, &conf, "chan", NULL, NULL);
    assert_non_null(r);
    const char *keys[1] = {"k"};
    size_t lens[1] = {1};
    for (int i = 0; i < 20; i++)
        loop_run_once(loop, 5);
    assert_false(l2redis_connected(r));
    uint64_t before = l2redis_errors(r);
    assert_true(before >= 1); /* the refused connects */
    called = 0;
    assert_null(l2redis_mget(r, keys, lens, 1, on_get, NULL));
    assert_true(l2redis_errors(r) > before);
    l2redis_set(r, "k", 1, "v", 1, 1000); /* dropped, no crash */
    l2redis_publish(r, "chan", "m", 1);   /* counted */
    for (int i = 0; i < 5; i++)
        loop_run_once(loop, 5);
    assert_int_equal(called, 0);
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    loop_destroy(loop);
    /* a bad URL is refused at creation */
    conf.url = "memcache://x";
    assert_null(l2redis_create(NULL, &conf, NULL, NULL, NULL));
}

/* A listening socket never accepted from: connects complete (the kernel's backlog), and nothing
 * sent is ever read or answered, as with a SIGSTOPped redis-server. */
static void test_silent_peer(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    socklen_t al = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", ntohs(a.sin_port));
    struct loop *loop = loop_create();
    struct l2redis_conf conf = {.url = url, .timeout_ms = 20, .reconnect_ms = 10};
    struct l2redis *r = l2redis_create(loop, &conf, "chan", NULL, NULL);
    assert_non_null(r);
    for (int i = 0; i < 20 && !l2redis_connected(r); i++)
        loop_run_once(loop, 5);
    assert_true(l2redis_connected(r));
    /* lookups: a bounded number in flight, then refused at once */
    const char *keys[1] = {"k"};
    size_t lens[1] = {1};
    called = 0;
    int accepted = 0;
    for (int i = 0; i < 100000; i++) {
        if (l2redis_mget(r, keys, lens, 1, on_get, NULL) == NULL)
            break;
        accepted++;
        if (i % 64 == 0)
            loop_run_once(loop, 0); /* the writes go out */
    }
    assert_true(accepted > 0);
    assert_true(accepted < 100000);
    /* each lookup times out after 20 ms; the bound is generous for valgrind, which is slow */
    for (int i = 0; i < 500 && called < accepted; i++)
        loop_run_once(loop, 30);
    assert_int_equal(called, accepted); /* each timed out, exactly once */
    /* fire-and-forget writes: once the unsent bytes reach the bound, SETs are dropped and counted */
    static char val[1 << 20];
    memset(val, 'v', sizeof(val));
    uint64_t before = l2redis_errors(r);
    for (int i = 0; i < 200 && l2redis_errors(r) == before; i++) {
        l2redis_set(r, "k", 1, val, sizeof(val), 60000);
        loop_run_once(loop, 0);
    }
    assert_true(l2redis_errors(r) > before);
    assert_true(l2redis_connected(r)); /* a slow server is not dropped for being slow */
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    loop_destroy(loop);
    close(lfd);
}

/* l2redis_conf.resolve: the address the gateway's resolver thread would give. */
static int resolve_calls;
static int resolve_loopback(void *arg, char *ip, size_t iplen)
{
    (void)arg;
    resolve_calls++;
    snprintf(ip, iplen, "127.0.0.1");
    return 0;
}
static int resolve_nothing(void *arg, char *ip, size_t iplen)
{
    (void)arg, (void)ip, (void)iplen;
    resolve_calls++;
    return -1;
}

/* A host given by name connects to the address the resolve hook gives (hiredis never sees the
 * name: it would resolve it with a blocking getaddrinfo on the loop thread), and with no address
 * yet the connect is an error that retries later, not a lookup. ".invalid" never resolves. */
static void test_resolve_hook(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    socklen_t al = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    char url[96];
    snprintf(url, sizeof(url), "redis://redis.example.invalid:%d/0", ntohs(a.sin_port));
    struct loop *loop = loop_create();
    struct l2redis_conf conf = {.url = url, .timeout_ms = 20, .reconnect_ms = 10,
                                .resolve = resolve_nothing};
    resolve_calls = 0;
    struct l2redis *r = l2redis_create(loop, &conf, "chan", NULL, NULL);
    assert_non_null(r);
    for (int i = 0; i < 10; i++)
        loop_run_once(loop, 5);
    assert_false(l2redis_connected(r));
    assert_true(resolve_calls >= 2); /* asked again on every retry */
    assert_true(l2redis_errors(r) >= 1);
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    conf.resolve = resolve_loopback;
    resolve_calls = 0;
    r = l2redis_create(loop, &conf, "chan", NULL, NULL);
    assert_non_null(r);
    for (int i = 0; i < 20 && !l2redis_connected(r); i++)
        loop_run_once(loop, 5);
    assert_true(l2redis_connected(r));
    assert_int_equal(resolve_calls, 1);
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    loop_destroy(loop);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_down),
        cmocka_unit_test(test_silent_peer),
        cmocka_unit_test(test_resolve_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
