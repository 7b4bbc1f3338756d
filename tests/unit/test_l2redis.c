/* Unit tests for cache/l2redis.c without a Redis server: URL parsing (host, port, database, unix
 * sockets, errors), and the "Redis is down" path — a client pointed at a closed port never blocks,
 * answers lookups as unavailable at once (NULL handle, callback never called), counts errors and
 * keeps retrying; destroy with nothing pending is clean. A peer that accepts and never reads nor
 * answers (a stopped server) holds a bounded number of commands and bytes, not all we send it.
 * Redis Cluster: CRC16 against the spec's vector, hash-tagged slots, seed lists, MOVED/ASK
 * parsing, and a client against fake cluster nodes (threads answering RESP): the slot map read
 * from CLUSTER SLOTS routes each key to its node, a node that answers MOVED to itself forever
 * costs one lookup three redirects and an error, -CLUSTERDOWN is an error, never a hang; a
 * MOVED or ASK in the middle of a pipeline sends that command's own bytes, and only those, to
 * the named node (ASK after ASKING), also while the output buffer is trimmed under it. The RESP
 * formatter against hiredis's format, the table CRC16 against the bitwise one.
 * The e2e tests 24_cache_redis, 26_cache_redis_bad_peer and 76_cache_redis_cluster cover real
 * and hostile servers. */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache/l2redis.h"
#include "core/buf.h"
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
    /* fire-and-forget writes: once the unsent bytes reach the bound, SETs are dropped and counted
     */
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
    struct l2redis_conf conf = {
        .url = url, .timeout_ms = 20, .reconnect_ms = 10, .resolve = resolve_nothing};
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

static void test_crc16_slot(void **state)
{
    (void)state;
    /* the Redis Cluster spec: "The CRC16 of 123456789 is 0x31C3" */
    assert_int_equal(l2redis_crc16("123456789", 9), 0x31C3);
    assert_int_equal(l2redis_slot("123456789", 9), 0x31C3 & 16383);
    /* hash tags: only what is between the first { and the next } counts */
    unsigned s = l2redis_slot("user1000", 8);
    assert_int_equal(l2redis_slot("{user1000}.following", 20), s);
    assert_int_equal(l2redis_slot("foo{user1000}bar{x}", 19), s);
    assert_int_equal(l2redis_slot("{}user1000", 10), l2redis_crc16("{}user1000", 10) & 16383);
    assert_int_equal(l2redis_slot("{user1000", 9), l2redis_crc16("{user1000", 9) & 16383);
    /* the L2's keys: an entry and its path's invalidation mark share a slot */
    const char *e = "apigate:{/api/users/5}GET api.test/api/users/5?a=1";
    const char *m = "apigate:inv:{/api/users/5}";
    assert_int_equal(l2redis_slot(e, strlen(e)), l2redis_slot(m, strlen(m)));
    assert_int_equal(l2redis_slot(e, strlen(e)), l2redis_slot("/api/users/5", 12));
    /* a } in the path ends the tag early, the same way in both */
    const char *e2 = "apigate:{/a}b}GET h/a}b", *m2 = "apigate:inv:{/a}b}";
    assert_int_equal(l2redis_slot(e2, strlen(e2)), l2redis_slot(m2, strlen(m2)));
    /* the table-driven CRC16 is the spec's bitwise one on any bytes */
    unsigned seed = 12345;
    char b[64];
    for (int t = 0; t < 2000; t++) {
        size_t n = (size_t)t % sizeof(b);
        for (size_t i = 0; i < n; i++)
            b[i] = (char)((seed = seed * 1103515245u + 12345u) >> 16);
        uint16_t crc = 0;
        for (size_t i = 0; i < n; i++) {
            crc ^= (uint16_t)((unsigned char)b[i] << 8);
            for (int k = 0; k < 8; k++)
                crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
        }
        assert_int_equal(l2redis_crc16(b, n), crc);
    }
}

/* Commands in RESP as hiredis's redisFormatCommandArgv writes them (the bytes below are its
 * output): lengths of one, two and more digits, an empty and a binary argument, appended after
 * what the buffer holds. */
static void test_format(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_append_str(&b, "x");
    const char *a1[] = {"MGET", "k1", "apigate:inv:{/p}"};
    size_t l1[] = {4, 2, 16};
    l2redis_format(&b, 3, a1, l1);
    const char *want1 = "x*3\r\n$4\r\nMGET\r\n$2\r\nk1\r\n$16\r\napigate:inv:{/p}\r\n";
    assert_int_equal(b.len, strlen(want1));
    assert_memory_equal(b.data, want1, b.len);
    buf_reset(&b);
    const char *a2[] = {"SET", "", "a\r\n\0b"};
    size_t l2[] = {3, 0, 5};
    l2redis_format(&b, 3, a2, l2);
    const char want2[] = "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\r\n\0b\r\n";
    assert_int_equal(b.len, sizeof(want2) - 1);
    assert_memory_equal(b.data, want2, b.len);
    /* 12 arguments, one of 100000 bytes */
    buf_reset(&b);
    static char big[100000];
    memset(big, 'z', sizeof(big));
    const char *a3[12];
    size_t l3[12];
    for (int i = 0; i < 12; i++) {
        a3[i] = i == 7 ? big : "ab";
        l3[i] = i == 7 ? sizeof(big) : 2;
    }
    l2redis_format(&b, 12, a3, l3);
    assert_int_equal(b.len, 5 + 11 * 8 + 9 + sizeof(big) + 2);
    assert_memory_equal(b.data, "*12\r\n$2\r\nab\r\n", 13);
    assert_memory_equal(b.data + 5 + 7 * 8, "$100000\r\nzz", 11);
    assert_memory_equal(b.data + b.len - 10, "\r\n$2\r\nab\r\n", 10);
    buf_deinit(&b);
}

static void test_parse_redirect_seeds(void **state)
{
    (void)state;
    unsigned slot = 0;
    char host[64];
    int port = 0;
    /* only numeric addresses are connected to: a name would block in getaddrinfo */
    assert_true(l2redis_is_ip("127.0.0.1"));
    assert_true(l2redis_is_ip("::1"));
    assert_true(l2redis_is_ip("10.0.0.2"));
    assert_false(l2redis_is_ip("localhost"));
    assert_false(l2redis_is_ip("redis-0.redis-headless.default.svc"));
    assert_false(l2redis_is_ip(""));
    assert_false(l2redis_is_ip("127.0.0.1:6379"));
    const char *mv = "MOVED 3999 127.0.0.1:6381";
    assert_int_equal(l2redis_parse_redirect(mv, strlen(mv), &slot, host, sizeof(host), &port),
                     L2REDIS_MOVED);
    assert_int_equal(slot, 3999);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6381);
    const char *ask = "ASK 16383 [::1]:7002";
    assert_int_equal(l2redis_parse_redirect(ask, strlen(ask), &slot, host, sizeof(host), &port),
                     L2REDIS_ASK);
    assert_int_equal(slot, 16383);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7002);
    const char *other[] = {"CLUSTERDOWN The cluster is down", "ERR unknown command", "MOVE 1 a:1"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(
            l2redis_parse_redirect(other[i], strlen(other[i]), &slot, host, sizeof(host), &port),
            0);
    const char *bad[] = {
        "MOVED 16384 127.0.0.1:1",       "MOVED x 127.0.0.1:1",     "MOVED 1 127.0.0.1",
        "MOVED 1 127.0.0.1:0",           "MOVED 1 127.0.0.1:70000", "ASK 1",
        "MOVED 99999999999999999999 a:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            l2redis_parse_redirect(bad[i], strlen(bad[i]), &slot, host, sizeof(host), &port), -1);
    char hosts[4][64], err[128];
    int ports[4];
    assert_int_equal(l2redis_parse_seeds("redis+cluster://127.0.0.1:7000,10.0.0.2:7001", hosts,
                                         ports, 4, err, sizeof(err)),
                     2);
    assert_string_equal(hosts[1], "10.0.0.2");
    assert_int_equal(ports[0], 7000);
    assert_int_equal(l2redis_parse_seeds("redis+cluster://a:1,b:2,c:3,d:4,e:5", hosts, ports, 4,
                                         err, sizeof(err)),
                     -1);
    assert_int_equal(
        l2redis_parse_seeds("redis+cluster://127.0.0.1", hosts, ports, 4, err, sizeof(err)), -1);
    assert_int_equal(l2redis_parse_seeds("redis+cluster://", hosts, ports, 4, err, sizeof(err)),
                     -1);
}

/* A fake cluster node on its own thread: answers CLUSTER SLOTS with <slots> (its text, where
 * "%d" names the ports of nodes[0] and nodes[1]), ASKING with +OK and MGET by its mode. */
enum fake_mode { FAKE_VALUE, FAKE_MOVED_SELF, FAKE_CLUSTERDOWN, FAKE_REDIRECT };
struct fake {
    int lfd, port;
    _Atomic int mode; // enum fake_mode, changed while the thread runs
    atomic_int primary_port; // SENTINEL get-master-addr-by-name names 127.0.0.1:<this>; -1: nil
    char slots[512];
    int redirect_port; // FAKE_REDIRECT: an MGET of a key "m..." is MOVED there, of "a..." ASKed
    atomic_int mgets, slots_asked;
    atomic_int asked_mgets;  // MGETs right after an ASKING on their connection
    atomic_int wrong_mgets;  // MGETs of a key "m..."/"a..." received without ASKING by a node
                             // that is not redirecting (of "a...": without ASKING just before)
    atomic_bool stop;
    pthread_t th;
};

/* Reads one RESP array of bulk strings from <buf> (<len> bytes): its first word in <word>, its
 * second in <arg>, and the bytes it takes, or 0 while incomplete. */
static size_t fake_command(const char *buf, size_t len, char *word, size_t wl, char *arg,
                           size_t al)
{
    const char *p = buf, *end = buf + len;
    if (len < 4 || *p != '*')
        return 0;
    long n = strtol(p + 1, NULL, 10);
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
        return 0;
    p = nl + 1;
    word[0] = '\0';
    arg[0] = '\0';
    for (long i = 0; i < n; i++) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL || *p != '$')
            return 0;
        long bl = strtol(p + 1, NULL, 10);
        p = nl + 1;
        if (end - p < bl + 2)
            return 0;
        if (i == 0)
            snprintf(word, wl, "%.*s", (int)bl, p);
        if (i == 1)
            snprintf(arg, al, "%.*s", (int)bl, p);
        p += bl + 2;
    }
    return (size_t)(p - buf);
}

static void *fake_run(void *arg)
{
    struct fake *f = arg;
    struct pollfd pf[9] = {{.fd = f->lfd, .events = POLLIN}};
    char in[8][4096];
    size_t inl[8] = {0};
    bool asking[8] = {false};
    int n = 1;
    while (!atomic_load(&f->stop)) {
        if (poll(pf, (nfds_t)n, 20) <= 0)
            continue;
        if ((pf[0].revents & POLLIN) && n < 9) {
            int c = accept(f->lfd, NULL, NULL);
            if (c >= 0) {
                pf[n].fd = c;
                pf[n].events = POLLIN;
                inl[n - 1] = 0;
                asking[n - 1] = false;
                n++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP)) || pf[i].fd < 0)
                continue;
            ssize_t r = read(pf[i].fd, in[i - 1] + inl[i - 1], sizeof(in[0]) - inl[i - 1]);
            if (r <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                continue;
            }
            inl[i - 1] += (size_t)r;
            char word[32], arg[256], out[1024];
            size_t used;
            while ((used = fake_command(in[i - 1], inl[i - 1], word, sizeof(word), arg,
                                        sizeof(arg))) > 0) {
                int ol;
                bool was_asking = asking[i - 1];
                asking[i - 1] = strcmp(word, "ASKING") == 0;
                if (strcmp(word, "SENTINEL") == 0) {
                    ol = f->primary_port < 0
                             ? snprintf(out, sizeof(out), "*-1\r\n")
                             : snprintf(out, sizeof(out), "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n",
                                        snprintf(NULL, 0, "%d", f->primary_port), f->primary_port);
                } else if (strcmp(word, "SUBSCRIBE") == 0) {
                    ol = snprintf(out, sizeof(out), "*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n");
                } else if (strcmp(word, "CLUSTER") == 0) {
                    atomic_fetch_add(&f->slots_asked, 1);
                    ol = snprintf(out, sizeof(out), "%s", f->slots);
                } else if (strcmp(word, "MGET") == 0 && f->mode == FAKE_REDIRECT) {
                    /* "m...": MOVED elsewhere; "a...": ASK elsewhere; else the key echoed */
                    atomic_fetch_add(&f->mgets, 1);
                    atomic_fetch_add(&f->asked_mgets, was_asking);
                    bool away = f->redirect_port != 0 && (arg[0] == 'm' || arg[0] == 'a');
                    if (f->redirect_port == 0 && arg[0] == 'a' && !was_asking)
                        atomic_fetch_add(&f->wrong_mgets, 1);
                    ol = away ? snprintf(out, sizeof(out), "-%s %u 127.0.0.1:%d\r\n",
                                         arg[0] == 'm' ? "MOVED" : "ASK",
                                         l2redis_slot(arg, strlen(arg)), f->redirect_port)
                              : snprintf(out, sizeof(out), "*2\r\n$%zu\r\n%d:%s\r\n$-1\r\n",
                                         (size_t)snprintf(NULL, 0, "%d:%s", f->port, arg),
                                         f->port, arg);
                } else if (strcmp(word, "MGET") == 0) {
                    atomic_fetch_add(&f->mgets, 1);
                    ol = f->mode == FAKE_VALUE
                             ? snprintf(out, sizeof(out), "*2\r\n$%d\r\nv%d\r\n$-1\r\n",
                                        1 + (f->port > 9999 ? 5 : 4), f->port)
                         : f->mode == FAKE_MOVED_SELF
                             ? snprintf(out, sizeof(out), "-MOVED 1 127.0.0.1:%d\r\n", f->port)
                             : snprintf(out, sizeof(out), "-CLUSTERDOWN The cluster is down\r\n");
                } else {
                    ol = snprintf(out, sizeof(out), "+OK\r\n");
                }
                if (write(pf[i].fd, out, (size_t)ol) != ol)
                    break;
                memmove(in[i - 1], in[i - 1] + used, inl[i - 1] - used);
                inl[i - 1] -= used;
            }
        }
    }
    for (int i = 1; i < n; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
    memset(f, 0, sizeof(*f));
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    socklen_t al = sizeof(a);
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    f->mode = mode;
}
static void fake_go(struct fake *f)
{
    assert_int_equal(pthread_create(&f->th, NULL, fake_run, f), 0);
}
static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

/* One node's entry of a CLUSTER SLOTS reply: [lo, hi, [ip, port, id]]. */
static int slots_range(char *out, size_t n, int lo, int hi, int port)
{
    return snprintf(out, n,
                    "*3\r\n:%d\r\n:%d\r\n*3\r\n$9\r\n127.0.0.1\r\n:%d\r\n$40\r\n"
                    "0123456789012345678901234567890123456789\r\n",
                    lo, hi, port);
}

static enum l2redis_status last_st;
static char last_val[32];
static void on_get_keep(void *arg, enum l2redis_status st, const char *const *vals,
                        const size_t *lens, size_t n)
{
    (void)arg;
    called++;
    last_st = st;
    last_val[0] = '\0';
    if (n > 0 && vals != NULL && vals[0] != NULL)
        snprintf(last_val, sizeof(last_val), "%.*s", (int)lens[0], vals[0]);
}

static struct l2redis *cluster_client(struct loop *loop, int seed_port)
{
    char url[64];
    snprintf(url, sizeof(url), "redis+cluster://127.0.0.1:%d", seed_port);
    struct l2redis_conf conf = {.url = url, .timeout_ms = 500, .reconnect_ms = 10};
    struct l2redis *r = l2redis_create(loop, &conf, "chan", NULL, NULL);
    assert_non_null(r);
    for (int i = 0; i < 400 && !l2redis_connected(r); i++)
        loop_run_once(loop, 5);
    assert_true(l2redis_connected(r)); /* a slot map was read */
    for (int i = 0; i < 20; i++)       /* the nodes it named are connected meanwhile */
        loop_run_once(loop, 5);
    return r;
}

static void mget_wait(struct loop *loop, struct l2redis *r, const char *key)
{
    const char *keys[2] = {key, key};
    size_t lens[2] = {strlen(key), strlen(key)};
    called = 0;
    assert_non_null(l2redis_mget(r, keys, lens, 2, on_get_keep, NULL));
    for (int i = 0; i < 400 && called == 0; i++)
        loop_run_once(loop, 5);
    assert_int_equal(called, 1);
}

/* Two fake nodes: node A serves slots 0-8191, node B 8192-16383 (the seed, A, says so). Each key
 * goes to the node of its slot, hash tags included. */
static void test_cluster_slot_map(void **state)
{
    (void)state;
    struct fake a, b;
    fake_start(&a, FAKE_VALUE);
    fake_start(&b, FAKE_VALUE);
    int n = snprintf(a.slots, sizeof(a.slots), "*2\r\n");
    n += slots_range(a.slots + n, sizeof(a.slots) - (size_t)n, 0, 8191, a.port);
    slots_range(a.slots + n, sizeof(a.slots) - (size_t)n, 8192, 16383, b.port);
    memcpy(b.slots, a.slots, sizeof(a.slots));
    fake_go(&a);
    fake_go(&b);
    struct loop *loop = loop_create();
    struct l2redis *r = cluster_client(loop, a.port);
    /* "123456789" is slot 12739 (B); "{a}x" is crc16("a") = 15495 & 16383 -> B; "{b}" -> 3300 (A)
     */
    char want[16];
    mget_wait(loop, r, "123456789");
    assert_int_equal(last_st, L2REDIS_HIT);
    snprintf(want, sizeof(want), "v%d", b.port);
    assert_string_equal(last_val, want);
    mget_wait(loop, r, "x{b}y");
    snprintf(want, sizeof(want), "v%d", a.port);
    assert_string_equal(last_val, want);
    assert_int_equal(atomic_load(&a.mgets), 1);
    assert_int_equal(atomic_load(&b.mgets), 1);
    assert_int_equal(l2redis_redirects(r), 0);
    /* the view /stats shows: both nodes, half the slots each, no error, no failover */
    static struct l2redis_view v;
    l2redis_view(r, &v);
    assert_string_equal(v.mode, "cluster");
    assert_int_equal(v.nodes, 2);
    assert_int_equal(v.connected, 2);
    assert_int_equal(v.slots_covered, L2REDIS_SLOTS);
    assert_int_equal(v.failovers, 0);
    assert_int_equal(v.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(v.node[i].role, "primary");
        assert_int_equal(v.node[i].slots, 8192);
        assert_int_equal(v.node[i].errors, 0);
        assert_true(v.node[i].connected);
    }
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    loop_destroy(loop);
    fake_stop(&a);
    fake_stop(&b);
}

/* A node that answers every lookup "MOVED to myself" costs each lookup L2REDIS_MAX_REDIRECTS
 * redirects and an error; one that answers -CLUSTERDOWN an error. Neither hangs the loop. */
static void test_cluster_bad_nodes(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, FAKE_MOVED_SELF);
    slots_range(f.slots + snprintf(f.slots, sizeof(f.slots), "*1\r\n"), sizeof(f.slots) - 4, 0,
                16383, f.port);
    fake_go(&f);
    struct loop *loop = loop_create();
    struct l2redis *r = cluster_client(loop, f.port);
    uint64_t e0 = l2redis_errors(r);
    mget_wait(loop, r, "k");
    assert_int_equal(last_st, L2REDIS_ERROR);
    assert_int_equal(atomic_load(&f.mgets), 4); /* the first try and three redirects */
    assert_int_equal(l2redis_redirects(r), 4);
    assert_true(l2redis_errors(r) > e0);
    f.mode = FAKE_CLUSTERDOWN;
    e0 = l2redis_errors(r);
    mget_wait(loop, r, "k");
    assert_int_equal(last_st, L2REDIS_ERROR);
    assert_true(l2redis_errors(r) > e0);
    assert_true(l2redis_connected(r)); /* an error reply is not a lost connection */
    static struct l2redis_view v; /* the errors are the node's */
    l2redis_view(r, &v);
    assert_int_equal(v.n, 1);
    assert_int_equal(v.node[0].errors, l2redis_errors(r));
    assert_true(v.node[0].errors >= 2);
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    loop_destroy(loop);
    fake_stop(&f);
}

/* One pipeline of PIPE_N lookups to node A, each key ~100 bytes (the output buffer is trimmed,
 * and moved, while replies come back): A answers MOVED to B for the keys "m...", ASK to B for
 * "a...", and its own value for the others. Each redirected lookup is answered by B with its own
 * key (B got that command's bytes, no neighbour's), after ASKING for an ASK; the others by A. */
#define PIPE_N 300
static char pipe_val[PIPE_N][160];
static enum l2redis_status pipe_st[PIPE_N];
static int pipe_called;
static void on_pipe(void *arg, enum l2redis_status st, const char *const *vals, const size_t *lens,
                    size_t n)
{
    size_t i = (size_t)(uintptr_t)arg;
    pipe_called++;
    pipe_st[i] = st;
    if (n > 0 && vals != NULL && vals[0] != NULL)
        snprintf(pipe_val[i], sizeof(pipe_val[i]), "%.*s", (int)lens[0], vals[0]);
}

static void test_cluster_redirect_pipelined(void **state)
{
    (void)state;
    struct fake a, b;
    fake_start(&a, FAKE_REDIRECT);
    fake_start(&b, FAKE_REDIRECT);
    a.redirect_port = b.port;
    int n = snprintf(a.slots, sizeof(a.slots), "*2\r\n");
    n += slots_range(a.slots + n, sizeof(a.slots) - (size_t)n, 0, 8191, a.port);
    slots_range(a.slots + n, sizeof(a.slots) - (size_t)n, 8192, 16383, b.port);
    memcpy(b.slots, a.slots, sizeof(a.slots));
    fake_go(&a);
    fake_go(&b);
    struct loop *loop = loop_create();
    struct l2redis *r = cluster_client(loop, a.port);
    static char keys[PIPE_N][128];
    int moved = 0, asked = 0;
    for (size_t i = 0; i < PIPE_N; i++) { /* keys of A's slots */
        char c = i % 7 == 3 ? 'm' : i % 7 == 5 ? 'a' : 'k';
        moved += c == 'm';
        asked += c == 'a';
        for (unsigned t = 0;; t++) {
            snprintf(keys[i], sizeof(keys[i]), "%c%zu-%u-%090d", c, i, t, 0);
            if (l2redis_slot(keys[i], strlen(keys[i])) < 8192)
                break;
        }
        memset(pipe_val[i], 0, sizeof(pipe_val[i]));
        pipe_st[i] = L2REDIS_ERROR;
    }
    pipe_called = 0;
    for (size_t i = 0; i < PIPE_N; i++) { /* one event batch: one pipeline */
        const char *k[2] = {keys[i], keys[i]};
        size_t kl[2] = {strlen(keys[i]), strlen(keys[i])};
        assert_non_null(l2redis_mget(r, k, kl, 2, on_pipe, (void *)(uintptr_t)i));
    }
    for (int i = 0; i < 400 && pipe_called < PIPE_N; i++)
        loop_run_once(loop, 5);
    assert_int_equal(pipe_called, PIPE_N);
    for (size_t i = 0; i < PIPE_N; i++) {
        char want[160];
        snprintf(want, sizeof(want), "%d:%.120s", keys[i][0] == 'k' ? a.port : b.port, keys[i]);
        assert_int_equal(pipe_st[i], L2REDIS_HIT);
        assert_string_equal(pipe_val[i], want);
    }
    assert_int_equal(atomic_load(&a.mgets), PIPE_N);
    assert_int_equal(atomic_load(&b.mgets), moved + asked);
    assert_int_equal(atomic_load(&b.asked_mgets), asked); /* ASKING before each ASKed lookup */
    assert_int_equal(atomic_load(&b.wrong_mgets), 0);
    assert_int_equal(l2redis_redirects(r), (uint64_t)(moved + asked));
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    loop_destroy(loop);
    fake_stop(&a);
    fake_stop(&b);
}

/* A sentinel that names a primary nobody listens on, then one that knows no such master: the
 * client never connects, lookups are refused at once (no waiting), errors are counted, and the
 * loop keeps turning (each turn bounded). */
static void test_sentinel_bad(void **state)
{
    (void)state;
    struct fake s;
    fake_start(&s, FAKE_VALUE);
    s.primary_port = closed_port();
    fake_go(&s);
    char url[96];
    snprintf(url, sizeof(url), "redis+sentinel://127.0.0.1:%d/mymaster", s.port);
    struct loop *loop = loop_create();
    struct l2redis_conf conf = {.url = url, .timeout_ms = 50, .reconnect_ms = 10};
    struct l2redis *r = l2redis_create(loop, &conf, "chan", NULL, NULL);
    assert_non_null(r);
    for (int i = 0; i < 60; i++)
        loop_run_once(loop, 5);
    assert_false(l2redis_connected(r));
    uint64_t e0 = l2redis_errors(r);
    assert_true(e0 >= 1); /* the refused connects to the named primary */
    const char *keys[1] = {"k"};
    size_t lens[1] = {1};
    called = 0;
    assert_null(l2redis_mget(r, keys, lens, 1, on_get, NULL));
    assert_true(l2redis_errors(r) > e0);
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    /* a sentinel that does not know the name: nothing to connect to, counted */
    s.primary_port = -1;
    r = l2redis_create(loop, &conf, "chan", NULL, NULL);
    assert_non_null(r);
    for (int i = 0; i < 60; i++)
        loop_run_once(loop, 5);
    assert_false(l2redis_connected(r));
    assert_true(l2redis_errors(r) >= 1);
    l2redis_destroy(r);
    loop_run_once(loop, 0);
    loop_destroy(loop);
    fake_stop(&s);
    char hosts[4][64], master[32], err[128];
    int ports[4];
    assert_int_equal(l2redis_parse_sentinels("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster",
                                             hosts, ports, 4, master, sizeof(master), err,
                                             sizeof(err)),
                     2);
    assert_string_equal(master, "mymaster");
    assert_int_equal(ports[1], 2);
    assert_int_equal(l2redis_parse_sentinels("redis+sentinel://127.0.0.1:1", hosts, ports, 4,
                                             master, sizeof(master), err, sizeof(err)),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),        cmocka_unit_test(test_down),
        cmocka_unit_test(test_silent_peer),      cmocka_unit_test(test_resolve_hook),
        cmocka_unit_test(test_crc16_slot),       cmocka_unit_test(test_parse_redirect_seeds),
        cmocka_unit_test(test_cluster_slot_map), cmocka_unit_test(test_cluster_bad_nodes),
        cmocka_unit_test(test_sentinel_bad),     cmocka_unit_test(test_format),
        cmocka_unit_test(test_cluster_redirect_pipelined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
