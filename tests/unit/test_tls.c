/* TLS upstream connections through the pool against a local OpenSSL server thread with
 * certificates made by the openssl CLI in a temp dir: verification on with ca_file works (host name
 * and IP SAN), a wrong CA or a wrong SNI name fails with upool_err_tls_verify and is counted, the
 * second connection resumes the session, and bytes flow both ways through the transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "gateway/gwconf.h"
#include "gateway/upool.h"
#include "gateway/upstream.h"
#include "metrics/metrics.h"
#include "net/sock.h"
#include "net/transport.h"

static char dir[64];
static char ca_good[128], ca_bad[128], cli_crt[128], cli_key[128];

/* A TLS server thread: <ctx> decides whether it asks for a client certificate. */
struct tsrv {
    int lfd;
    int port;
    SSL_CTX *ctx;
    pthread_t thread;
};

/* Connection threads, joined at teardown (they end when the client side closes). */
static pthread_t conn_threads[256];
static int nconn_threads;
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tsrv plain_srv = {.lfd = -1}, mtls_srv = {.lfd = -1};
static int port; /* plain_srv.port */

struct tconn {
    int fd;
    SSL_CTX *ctx;
};

/* One server connection: answers "pong" to each "ping" until EOF. */
static void *server_conn(void *arg)
{
    struct tconn tc = *(struct tconn *)arg;
    free(arg);
    SSL *ssl = SSL_new(tc.ctx);
    SSL_set_fd(ssl, tc.fd);
    if (SSL_accept(ssl) == 1) {
        char b[64];
        int n;
        while ((n = SSL_read(ssl, b, sizeof(b))) > 0)
            if (SSL_write(ssl, "pong", 4) <= 0)
                break;
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(tc.fd);
    return NULL;
}

static void *server_main(void *arg)
{
    struct tsrv *srv = arg;
    for (;;) {
        int fd = accept(srv->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        struct tconn *tc = malloc(sizeof(*tc));
        tc->fd = fd;
        tc->ctx = srv->ctx;
        pthread_t t;
        pthread_create(&t, NULL, server_conn, tc);
        pthread_mutex_lock(&conn_lock);
        if (nconn_threads < 256)
            conn_threads[nconn_threads++] = t;
        else
            pthread_detach(t);
        pthread_mutex_unlock(&conn_lock);
    }
}

static int tsrv_start(struct tsrv *srv, SSL_CTX *ctx)
{
    struct sock_addr a;
    char err[128];
    sock_parse_addr("127.0.0.1:0", &a, err, sizeof(err));
    srv->lfd = sock_listen(&a, false, 64, err, sizeof(err));
    if (srv->lfd < 0)
        return -1;
    /* sock_listen makes it non-blocking; the server thread wants to block in accept. */
    fcntl(srv->lfd, F_SETFL, fcntl(srv->lfd, F_GETFL) & ~O_NONBLOCK);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(srv->lfd, (struct sockaddr *)&sin, &len);
    srv->port = ntohs(sin.sin_port);
    srv->ctx = ctx;
    pthread_create(&srv->thread, NULL, server_main, srv);
    return 0;
}

static SSL_CTX *server_ctx_new(const char *crt, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* peers here close while the other side writes, as in serve */
    if (system("command -v openssl >/dev/null 2>&1") != 0)
        return -1;
    snprintf(dir, sizeof(dir), "/tmp/test_tls_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.crt -days 2 -subj /CN=apigate-test-ca 2>/dev/null && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout bad.key -out bad.crt -days 2 -subj /CN=other-ca 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key "
             "-out srv.csr -subj /CN=localhost 2>/dev/null && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out srv.crt -days 2 -extfile ext.cnf 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout cli.key "
             "-out cli.csr -subj /CN=apigate-client 2>/dev/null && "
             "openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out cli.crt -days 2 2>/dev/null",
             dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(ca_good, sizeof(ca_good), "%s/ca.crt", dir);
    snprintf(ca_bad, sizeof(ca_bad), "%s/bad.crt", dir);
    snprintf(cli_crt, sizeof(cli_crt), "%s/cli.crt", dir);
    snprintf(cli_key, sizeof(cli_key), "%s/cli.key", dir);
    char crt[128], key[128];
    snprintf(crt, sizeof(crt), "%s/srv.crt", dir);
    snprintf(key, sizeof(key), "%s/srv.key", dir);
    SSL_CTX *plain = server_ctx_new(crt, key);
    SSL_CTX *mtls = server_ctx_new(crt, key);
    if (plain == NULL || mtls == NULL)
        return -1;
    /* The mutual-TLS server accepts only clients with a certificate from the test CA. */
    SSL_CTX_set_verify(mtls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (SSL_CTX_load_verify_locations(mtls, ca_good, NULL) != 1)
        return -1;
    if (tsrv_start(&plain_srv, plain) != 0 || tsrv_start(&mtls_srv, mtls) != 0)
        return -1;
    port = plain_srv.port;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* wakes the server threads out of accept(); every client connection is closed by now, so the
     * connection threads end too */
    shutdown(plain_srv.lfd, SHUT_RDWR);
    shutdown(mtls_srv.lfd, SHUT_RDWR);
    pthread_join(plain_srv.thread, NULL);
    pthread_join(mtls_srv.thread, NULL);
    close(plain_srv.lfd);
    close(mtls_srv.lfd);
    for (int i = 0; i < nconn_threads; i++)
        pthread_join(conn_threads[i], NULL);
    SSL_CTX_free(plain_srv.ctx);
    SSL_CTX_free(mtls_srv.ctx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

struct fix {
    struct loop *loop;
    char spec[64];
    struct gw_upserver server;
    struct gw_upstream up;
    struct gw_config cfg;
    struct metrics *m;
    struct metrics_slot *slot;
    struct upstream_set *set;
    struct upool *pool;
};

static struct fix *fix_create_at(int server_port, const char *host, const char *ca,
                                 const char *sni, const char *cert, const char *key)
{
    int port = server_port;
    struct fix *f = calloc(1, sizeof(*f));
    f->loop = loop_create();
    snprintf(f->spec, sizeof(f->spec), "https://%s:%d", host, port);
    char addr[64], err[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    f->server = (struct gw_upserver){.spec = f->spec, .host = (char *)host, .port = port,
                                     .tls = true, .numeric = true, .weight = 1};
    assert_int_equal(sock_parse_addr(addr, &f->server.addr, err, sizeof(err)), 0);
    f->up = (struct gw_upstream){.name = "secure", .servers = &f->server, .nservers = 1,
                                 .connect_timeout_ms = 2000};
    f->up.pool = (struct gw_pool){.max_connections = 4, .max_idle = 4, .idle_timeout_ms = 5000,
                                  .queue_timeout_ms = 1000, .max_queue = 10};
    f->up.tls = (struct gw_tls){.enabled = true, .verify = true, .ca_file = (char *)ca,
                                .sni = (char *)sni, .cert_file = (char *)cert,
                                .key_file = (char *)key};
    f->cfg.upstreams = &f->up;
    f->cfg.nupstreams = 1;
    f->m = metrics_create();
    f->slot = metrics_slot_get(f->m);
    f->set = upstream_set_create(&f->cfg, f->m, 1, err, sizeof(err));
    assert_non_null(f->set);
    f->pool = upool_create(f->loop, upstream_set_at(f->set, 0), f->slot);
    return f;
}

static struct fix *fix_create(const char *host, const char *ca, const char *sni)
{
    return fix_create_at(port, host, ca, sni, NULL, NULL);
}

static void fix_destroy(struct fix *f)
{
    upool_destroy(f->pool);
    loop_run_once(f->loop, 0);
    upstream_set_destroy(f->set);
    metrics_destroy(f->m);
    loop_destroy(f->loop);
    free(f);
}

struct req {
    struct upool_waiter w;
    struct uconn *c;
    const char *err;
    int called;
};

static void req_ready(struct upool_waiter *w, struct uconn *c, const char *err)
{
    struct req *r = (struct req *)w;
    r->c = c;
    r->err = err;
    r->called = 1;
}

static void acquire(struct fix *f, struct req *r)
{
    memset(r, 0, sizeof(*r));
    r->w.ready = req_ready;
    const char *err = NULL;
    struct uconn *c = upool_acquire(f->pool, &r->w, 0, &err);
    if (c != NULL || err != NULL) {
        r->c = c;
        r->err = err;
        r->called = 1;
    }
    uint64_t t0 = clock_now_ms();
    while (!r->called && clock_now_ms() - t0 < 3000)
        loop_run_once(f->loop, 10);
}

/* Sends "ping" and waits for "pong" through the TLS transport, driving the loop. */
static void ping(struct fix *f, struct uconn *c)
{
    struct transport *t = uconn_transport(c);
    ssize_t n = transport_write(t, "ping", 4);
    assert_int_equal(n, 4);
    char b[16];
    size_t got = 0;
    uint64_t t0 = clock_now_ms();
    while (got < 4 && clock_now_ms() - t0 < 3000) {
        ssize_t r = transport_read(t, b + got, sizeof(b) - got);
        if (r == IO_AGAIN) {
            loop_run_once(f->loop, 10);
            continue;
        }
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_int_equal(got, 4);
    assert_memory_equal(b, "pong", 4);
}

static int64_t counter(struct fix *f, const char *name, const char *a, const char *b,
                       const char *c)
{
    const char *v[] = {a, b, c, NULL};
    metrics_ref r = metrics_lookup(f->m, name, v);
    assert_int_not_equal(r, METRICS_REF_NONE);
    return metrics_read(f->m, r, METRICS_COUNTER);
}

static void test_verified_and_resumed(void **state)
{
    (void)state;
    struct fix *f = fix_create("localhost", ca_good, NULL);
    struct req a, b;
    acquire(f, &a);
    assert_null(a.err);
    assert_non_null(a.c);
    ping(f, a.c);
    /* Both lent at once: the second must be a new connection, offered the first one's session. */
    acquire(f, &b);
    assert_null(b.err);
    assert_non_null(b.c);
    assert_ptr_not_equal(a.c, b.c);
    ping(f, b.c);
    assert_int_equal(counter(f, "apigate_upstream_tls_handshakes_total", "secure", "false", NULL),
                     1);
    assert_int_equal(counter(f, "apigate_upstream_tls_handshakes_total", "secure", "true", NULL),
                     1);
    /* Kept alive: a released TLS connection is reused, no handshake. */
    upool_release(f->pool, a.c, true);
    for (int i = 0; i < 20; i++)
        loop_run_once(f->loop, 1); /* let late session tickets arrive on the idle connection */
    struct req c;
    acquire(f, &c);
    assert_ptr_equal(c.c, a.c);
    ping(f, c.c);
    upool_release(f->pool, c.c, true);
    upool_release(f->pool, b.c, true);
    struct upool_stats st;
    upool_get_stats(f->pool, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.idle, 2);
    fix_destroy(f);
}

/* The session survives its connection being dropped without close_notify (released as not
 * reusable): the next connection still resumes. */
static void test_resume_after_close(void **state)
{
    (void)state;
    struct fix *f = fix_create("localhost", ca_good, NULL);
    struct req a, b;
    acquire(f, &a);
    assert_non_null(a.c);
    ping(f, a.c); /* reads the response, and with it the session tickets */
    upool_release(f->pool, a.c, false);
    acquire(f, &b);
    assert_non_null(b.c);
    ping(f, b.c);
    upool_release(f->pool, b.c, false);
    assert_int_equal(counter(f, "apigate_upstream_tls_handshakes_total", "secure", "true", NULL),
                     1);
    fix_destroy(f);
}

/* Scattered writes larger than a record (head + 200 KB body + trailer) go through in pieces,
 * whatever the split, and the connection stays usable. */
static void test_large_writev(void **state)
{
    (void)state;
    struct fix *f = fix_create("localhost", ca_good, NULL);
    struct req a;
    acquire(f, &a);
    assert_non_null(a.c);
    struct transport *t = uconn_transport(a.c);
    static char body[200000];
    memset(body, 'x', sizeof(body));
    char head[] = "head", tail[] = "tail";
    struct iovec iov[3] = {{head, 4}, {body, sizeof(body)}, {tail, 4}};
    size_t total = 4 + sizeof(body) + 4, sent = 0;
    uint64_t t0 = clock_now_ms();
    while (sent < total && clock_now_ms() - t0 < 5000) {
        /* Rebuild the remaining iovecs from <sent>, as a caller does. */
        struct iovec rest[3];
        int n = 0;
        size_t skip = sent;
        for (int i = 0; i < 3; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            rest[n].iov_base = (char *)iov[i].iov_base + skip;
            rest[n].iov_len = iov[i].iov_len - skip;
            skip = 0;
            n++;
        }
        ssize_t w = transport_writev(t, rest, n);
        if (w == IO_AGAIN) {
            loop_run_once(f->loop, 5);
            continue;
        }
        assert_true(w > 0);
        sent += (size_t)w;
    }
    assert_int_equal(sent, total);
    upool_release(f->pool, a.c, false);
    fix_destroy(f);
}

static void test_ip_san(void **state)
{
    (void)state;
    struct fix *f = fix_create("127.0.0.1", ca_good, NULL);
    struct req a;
    acquire(f, &a);
    assert_null(a.err);
    ping(f, a.c);
    upool_release(f->pool, a.c, true);
    fix_destroy(f);
}

static void test_wrong_ca(void **state)
{
    (void)state;
    struct fix *f = fix_create("localhost", ca_bad, NULL);
    struct req a;
    acquire(f, &a);
    assert_null(a.c);
    assert_ptr_equal(a.err, upool_err_tls_verify);
    assert_int_equal(counter(f, "apigate_upstream_connect_errors_total", "secure", f->spec,
                             "tls_verify"),
                     1);
    fix_destroy(f);
}

static void test_wrong_name(void **state)
{
    (void)state;
    struct fix *f = fix_create("localhost", ca_good, "api.example.com");
    struct req a;
    acquire(f, &a);
    assert_null(a.c);
    assert_ptr_equal(a.err, upool_err_tls_verify);
    fix_destroy(f);
}

/* Mutual TLS: with tls.cert_file/key_file the server that demands a client certificate
 * answers; without them it refuses (with TLS 1.3 the refusal arrives after the client's side of
 * the handshake, on the first read). */
static void test_client_certificate(void **state)
{
    (void)state;
    struct fix *f = fix_create_at(mtls_srv.port, "localhost", ca_good, NULL, cli_crt, cli_key);
    struct req a;
    acquire(f, &a);
    assert_null(a.err);
    assert_non_null(a.c);
    ping(f, a.c);
    upool_release(f->pool, a.c, true);
    fix_destroy(f);

    f = fix_create_at(mtls_srv.port, "localhost", ca_good, NULL, NULL, NULL);
    acquire(f, &a);
    bool refused = a.c == NULL;
    if (!refused) {
        struct transport *t = uconn_transport(a.c);
        transport_write(t, "ping", 4);
        char b[16];
        ssize_t r = IO_AGAIN;
        uint64_t t0 = clock_now_ms();
        while (r == IO_AGAIN && clock_now_ms() - t0 < 3000) {
            loop_run_once(f->loop, 10);
            r = transport_read(t, b, sizeof(b));
        }
        refused = r == 0 || r == IO_ERR;
        upool_release(f->pool, a.c, false);
    }
    assert_true(refused);
    fix_destroy(f);

    /* A key file that does not exist is a start-up error with the reason. */
    struct gw_upserver sv = {.spec = "https://localhost:1", .host = "localhost", .port = 1,
                             .tls = true, .numeric = true, .weight = 1};
    char err[256];
    sock_parse_addr("127.0.0.1:1", &sv.addr, err, sizeof(err));
    struct gw_upstream up = {.name = "m", .servers = &sv, .nservers = 1};
    up.tls = (struct gw_tls){.enabled = true, .verify = true, .ca_file = ca_good,
                             .cert_file = cli_crt, .key_file = "/nonexistent/key.pem"};
    struct gw_config cfg = {.upstreams = &up, .nupstreams = 1};
    struct metrics *m = metrics_create();
    assert_null(upstream_set_create(&cfg, m, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "client key"));
    metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verified_and_resumed),
        cmocka_unit_test(test_resume_after_close),
        cmocka_unit_test(test_large_writev),
        cmocka_unit_test(test_ip_san),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_wrong_name),
        cmocka_unit_test(test_client_certificate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
