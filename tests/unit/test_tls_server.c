/* TLS termination: the `listen: [{address, tls: {...}}]` config (paths read against the config
 * file's folder, every bad file reported at its position) and the server context of net/tls.c
 * driven through a socketpair against an OpenSSL client: SNI picks the certificate (ECDSA and RSA
 * for the same names), ALPN from the caller's list, TLS 1.2 and 1.3 and min_version, resumption
 * by ticket (also after one key rotation, not after three) and by session cache, client
 * certificates required, a plain HTTP request recognised. Certificates are made by the openssl
 * CLI in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/cfg.h"
#include "gateway/gwconf.h"
#include "net/tls.h"
#include "net/transport.h"

static char dir[64];

static const char *path(const char *name)
{
    static char bufs[8][192];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (system("command -v openssl >/dev/null 2>&1") != 0)
        return -1;
    snprintf(dir, sizeof(dir), "/tmp/test_tls_server_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char cmd[4096];
    const char *ec = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                     "-days 2";
    snprintf(cmd, sizeof(cmd),
             "cd %s && mkdir conf && "
             "%s -keyout a.key -out a.pem -subj /CN=a.test "
             "-addext subjectAltName=DNS:a.test,DNS:localhost 2>/dev/null && "
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout arsa.key -out arsa.pem "
             "-subj /CN=a.test -addext subjectAltName=DNS:a.test,DNS:localhost 2>/dev/null && "
             "%s -keyout b.key -out b.pem -subj /CN=b.test -addext subjectAltName=DNS:b.test "
             "2>/dev/null && "
             "%s -keyout a2.key -out a2.pem -subj /CN=a.test "
             "-addext subjectAltName=DNS:a.test,DNS:localhost 2>/dev/null && "
             "%s -keyout ca.key -out ca.pem -subj /CN=test-ca 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout cli.key -out cli.csr -subj /CN=client 2>/dev/null && "
             "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out cli.pem -days 2 2>/dev/null && "
             "%s -keyout other.key -out other.pem -subj /CN=other 2>/dev/null && "
             "echo 'not a certificate' > junk.pem && cp a.pem a.key conf/",
             dir, ec, ec, ec, ec, ec);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- config ---- */

static const char *write_conf(const char *body)
{
    const char *p = path("conf/gw.yaml");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "%supstreams: {api: {servers: [127.0.0.1:9]}}\nroutes: [{match: /, upstream: api}]\n",
            body);
    fclose(f);
    return p;
}

/* Loads <body> as conf/gw.yaml from another working directory; expects one error containing
 * <needle> at line <line> (0: expects success, returns the config). */
static struct gw_config *conf(const char *body, int line, const char *needle)
{
    const char *p = write_conf(body);
    struct cfg_errors errs = {NULL, 0};
    struct gw_config *c = gwconf_load(p, &errs);
    if (line == 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "unexpected: %s\n", errs.msgs[i]);
        assert_non_null(c);
        assert_int_equal(errs.n, 0);
        return c;
    }
    assert_null(c);
    char at[32];
    snprintf(at, sizeof(at), "gw.yaml:%d:", line);
    bool found = false;
    for (size_t i = 0; i < errs.n; i++) {
        if (strstr(errs.msgs[i], at) && strstr(errs.msgs[i], needle))
            found = true;
    }
    if (!found)
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "got: %s\n", errs.msgs[i]);
    assert_true(found);
    cfg_errors_free(&errs);
    return NULL;
}

static void test_config_shape(void **state)
{
    (void)state;
    assert_int_equal(chdir("/"), 0); /* relative paths must not depend on the cwd */
    struct gw_config *c = conf("listen:\n"
                               "  - 127.0.0.1:8080\n"
                               "  - {address: 127.0.0.1:8443, tls: {cert: a.pem, key: a.key}}\n",
                               0, NULL);
    assert_int_equal(c->nlisten, 2);
    assert_false(c->listen[0].tls.enabled);
    assert_true(c->listen[1].tls.enabled);
    assert_int_equal(c->listen[1].tls.ncerts, 1);
    assert_string_equal(c->listen[1].tls.certs[0].cert, path("conf/a.pem"));
    assert_string_equal(c->listen[1].tls.certs[0].key, path("conf/a.key"));
    assert_int_equal(c->listen[1].tls.min_version, 0);
    assert_true(c->listen[1].tls.session_tickets);
    assert_int_equal(c->listen[1].tls.ticket_rotation_ms, 3600000);
    assert_int_equal(c->listen[1].tls.session_cache, 20000);
    /* --listen replaces the list with plain listeners (and frees the TLS settings: valgrind) */
    char err[256];
    assert_int_equal(gwconf_set_listen(c, "127.0.0.1:9000", err, sizeof(err)), 0);
    assert_int_equal(c->nlisten, 1);
    assert_false(c->listen[0].tls.enabled);
    gwconf_free(c);

    char y[2048];
    snprintf(y, sizeof(y),
             "listen:\n"
             "  - address: 127.0.0.1:8443\n"
             "    tls:\n"
             "      cert: %s\n"
             "      key: %s\n"
             "      certs: [{cert: %s, key: %s}, {cert: %s, key: %s}]\n"
             "      client_ca: %s\n"
             "      min_version: 1.3\n"
             "      session_tickets: false\n"
             "      session_cache: 0\n",
             path("a.pem"), path("a.key"), path("arsa.pem"), path("arsa.key"), path("b.pem"),
             path("b.key"), path("ca.pem"));
    c = conf(y, 0, NULL);
    assert_int_equal(c->listen[0].tls.ncerts, 3);
    assert_string_equal(c->listen[0].tls.certs[2].cert, path("b.pem"));
    assert_string_equal(c->listen[0].tls.client_ca, path("ca.pem"));
    assert_int_equal(c->listen[0].tls.min_version, 1);
    assert_false(c->listen[0].tls.session_tickets);
    gwconf_free(c);
}

static void test_config_errors(void **state)
{
    (void)state;
    char y[2048];
    conf("listen:\n  - {address: 127.0.0.1:8443, tls: {cert: missing.pem, key: a.key}}\n", 2,
         "listen[0].tls.cert: cannot read '");
    snprintf(y, sizeof(y), "listen:\n  - 127.0.0.1:8080\n"
                           "  - {address: 127.0.0.1:8443, tls: {cert: a.pem, key: %s}}\n",
             path("b.key"));
    conf(y, 3, "does not match the certificate");
    snprintf(y, sizeof(y), "listen:\n  - {address: 127.0.0.1:8443, tls: {cert: %s, key: a.key}}\n",
             path("junk.pem"));
    conf(y, 2, "is not a PEM certificate");
    snprintf(y, sizeof(y), "listen:\n  - {address: 127.0.0.1:8443, tls: {cert: a.pem, key: %s}}\n",
             path("junk.pem"));
    conf(y, 2, "is not a PEM private key");
    /* two certificates of one key type for the same names: the second would silently win */
    snprintf(y, sizeof(y),
             "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certs:\n"
             "        - {cert: a.pem, key: a.key}\n        - {cert: %s, key: %s}\n",
             path("a2.pem"), path("a2.key"));
    conf(y, 4, "same names"); /* at tls:, naming the second file */
    conf("listen:\n  - {address: 127.0.0.1:8443, tls: {cert: a.pem}}\n", 2,
         "cert and key go together");
    conf("listen:\n  - {address: 127.0.0.1:8443, tls: {}}\n", 2, "no certificate");
    conf("listen:\n  - {address: 127.0.0.1:8443, tls: {cert: a.pem, key: a.key}, port: 1}\n", 2,
         "unknown key 'port'");
    conf("listen:\n  - {tls: {cert: a.pem, key: a.key}}\n", 2, "address: missing");
    conf("listen:\n  - address: 127.0.0.1:8443\n    tls: {certs: [{cert: a.pem}]}\n", 3,
         "give cert and key");
    conf("listen:\n  - {address: 127.0.0.1:8443, tls: {cert: a.pem, key: a.key, "
         "min_version: 1.1}}\n", 2, "use one of: 1.2, 1.3");
    conf("listen:\n  - {address: 127.0.0.1:8443, tls: {cert: a.pem, key: a.key, "
         "client_ca: nope.pem}}\n", 2, "client_ca: cannot read");
    conf("listen:\n  - {address: 127.0.0.1:8443, tls: {cert: a.pem, key: a.key, "
         "ciphers: NOPE}}\n", 2, "ciphers");
}

/* ---- handshakes over a socketpair ---- */

struct pair {
    int sfd, cfd;
    struct transport srv; /* the server transport under test */
    SSL_CTX *cctx;
    SSL *cli;
};

static SSL_CTX *client_ctx(int max_version, const char *sigalgs)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (max_version)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    if (sigalgs)
        assert_int_equal(SSL_CTX_set1_sigalgs_list(ctx, sigalgs), 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    return ctx;
}

/* Connects a client with <sni> and <alpn> (wire format, may be NULL) to <s>. */
static void pair_open(struct pair *p, struct tls_server *s, SSL_CTX *cctx, const char *sni,
                      const char *alpn, SSL_SESSION *sess)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p->sfd = sv[0];
    p->cfd = sv[1];
    char err[256];
    assert_int_equal(tls_server_transport_init(&p->srv, s, p->sfd, err, sizeof(err)), 0);
    p->cctx = cctx;
    p->cli = SSL_new(cctx);
    SSL_set_fd(p->cli, p->cfd);
    if (sni)
        SSL_set_tlsext_host_name(p->cli, sni);
    if (alpn)
        SSL_set_alpn_protos(p->cli, (const unsigned char *)alpn, (unsigned)strlen(alpn));
    if (sess)
        SSL_set_session(p->cli, sess);
    SSL_set_connect_state(p->cli);
}

/* Steps both handshakes until both are done (1), or either failed (0). */
static int pair_handshake(struct pair *p)
{
    bool sdone = false, cdone = false;
    for (int i = 0; i < 100; i++) {
        if (!cdone) {
            int r = SSL_do_handshake(p->cli);
            if (r == 1)
                cdone = true;
            else if (SSL_get_error(p->cli, r) != SSL_ERROR_WANT_READ &&
                     SSL_get_error(p->cli, r) != SSL_ERROR_WANT_WRITE)
                return 0;
        }
        if (!sdone) {
            int r = transport_handshake(&p->srv);
            if (r == IO_OK)
                sdone = true;
            else if (r == IO_ERR)
                return 0;
        }
        if (sdone && cdone)
            return 1;
    }
    return 0;
}

/* One request/answer round trip through the server transport (also delivers TLS 1.3 tickets). */
static void pair_roundtrip(struct pair *p)
{
    assert_int_equal(SSL_write(p->cli, "ping", 4), 4);
    char b[16];
    ssize_t n = transport_read(&p->srv, b, sizeof(b));
    assert_int_equal(n, 4);
    assert_memory_equal(b, "ping", 4);
    assert_int_equal(transport_write(&p->srv, "pong", 4), 4);
    int r = SSL_read(p->cli, b, sizeof(b));
    assert_int_equal(r, 4);
    assert_memory_equal(b, "pong", 4);
}

static void pair_close(struct pair *p)
{
    SSL_free(p->cli);
    close(p->cfd);
    transport_close(&p->srv);
}

static struct tls_server *server(const struct tls_server_cert *certs, size_t n,
                                 const char *const *alpn, const char *client_ca, int minv)
{
    struct tls_server_opts o = {.certs = certs, .ncerts = n, .alpn = alpn,
                                .client_ca = client_ca, .min_version = minv, .tickets = true,
                                .session_cache = 100};
    char err[512];
    struct tls_server *s = tls_server_create(&o, err, sizeof(err));
    if (s == NULL)
        fprintf(stderr, "tls_server_create: %s\n", err);
    assert_non_null(s);
    return s;
}

static char *peer_cn(SSL *ssl, char *buf, size_t len)
{
    X509 *x = SSL_get1_peer_certificate(ssl);
    assert_non_null(x);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len);
    X509_free(x);
    return buf;
}

static int peer_key_type(SSL *ssl)
{
    X509 *x = SSL_get1_peer_certificate(ssl);
    int t = EVP_PKEY_get_base_id(X509_get0_pubkey(x));
    X509_free(x);
    return t;
}

static void test_sni_and_key_types(void **state)
{
    (void)state;
    struct tls_server_cert certs[] = {
        {path("a.pem"), path("a.key")}, {path("arsa.pem"), path("arsa.key")},
        {path("b.pem"), path("b.key")}};
    struct tls_server *s = server(certs, 3, NULL, NULL, 0);
    SSL_CTX *cc = client_ctx(0, NULL);
    char cn[64];
    struct pair p;
    const char *names[] = {"b.test", "a.test", NULL, "unknown.test"};
    const char *want[] = {"b.test", "a.test", "a.test", "a.test"}; /* default: the first */
    for (int i = 0; i < 4; i++) {
        pair_open(&p, s, cc, names[i], NULL, NULL);
        assert_int_equal(pair_handshake(&p), 1);
        assert_string_equal(peer_cn(p.cli, cn, sizeof(cn)), want[i]);
        if (names[i])
            assert_string_equal(tls_transport_sni(&p.srv), names[i]);
        pair_roundtrip(&p);
        pair_close(&p);
    }
    /* the same names with ECDSA and RSA: the client's signature algorithms choose */
    pair_open(&p, s, cc, "a.test", NULL, NULL);
    assert_int_equal(pair_handshake(&p), 1);
    assert_int_equal(peer_key_type(p.cli), EVP_PKEY_EC);
    pair_close(&p);
    SSL_CTX *rsa_only = client_ctx(0, "rsa_pss_rsae_sha256:rsa_pkcs1_sha256");
    pair_open(&p, s, rsa_only, "a.test", NULL, NULL);
    assert_int_equal(pair_handshake(&p), 1);
    assert_int_equal(peer_key_type(p.cli), EVP_PKEY_RSA);
    pair_close(&p);
    /* TLS 1.2 clients get the same choice */
    SSL_CTX *tls12 = client_ctx(TLS1_2_VERSION, NULL);
    pair_open(&p, s, tls12, "b.test", NULL, NULL);
    assert_int_equal(pair_handshake(&p), 1);
    assert_string_equal(peer_cn(p.cli, cn, sizeof(cn)), "b.test");
    assert_string_equal(tls_transport_version(&p.srv), "TLSv1.2");
    pair_roundtrip(&p);
    pair_close(&p);
    SSL_CTX_free(cc);
    SSL_CTX_free(rsa_only);
    SSL_CTX_free(tls12);
    tls_server_destroy(s);
}

static void test_alpn(void **state)
{
    (void)state;
    struct tls_server_cert certs[] = {{path("a.pem"), path("a.key")}};
    struct tls_server *s = server(certs, 1, NULL, NULL, 0); /* default: http/1.1 */
    SSL_CTX *cc = client_ctx(0, NULL);
    struct pair p;
    pair_open(&p, s, cc, NULL, "\x02h2\x08http/1.1", NULL);
    assert_int_equal(pair_handshake(&p), 1);
    assert_string_equal(tls_transport_alpn(&p.srv), "http/1.1");
    assert_string_equal(tls_transport_version(&p.srv), "TLSv1.3");
    pair_close(&p);
    pair_open(&p, s, cc, NULL, NULL, NULL); /* no ALPN: fine, none selected */
    assert_int_equal(pair_handshake(&p), 1);
    assert_null(tls_transport_alpn(&p.srv));
    pair_close(&p);
    pair_open(&p, s, cc, NULL, "\x02h2", NULL); /* nothing in common: refused */
    assert_int_equal(pair_handshake(&p), 0);
    pair_close(&p);
    tls_server_destroy(s);
    /* the caller's list decides, in its order (how h2 joins) */
    static const char *const h2[] = {"h2", "http/1.1", NULL};
    s = server(certs, 1, h2, NULL, 0);
    pair_open(&p, s, cc, NULL, "\x08http/1.1\x02h2", NULL);
    assert_int_equal(pair_handshake(&p), 1);
    assert_ptr_equal(tls_transport_alpn(&p.srv), h2[0]);
    pair_close(&p);
    SSL_CTX_free(cc);
    tls_server_destroy(s);
}

/* Handshakes once with <sess> offered; returns the session the client got (after one round trip,
 * so TLS 1.3 tickets are in), and whether it was resumed. */
static SSL_SESSION *connect_once(struct tls_server *s, SSL_CTX *cc, SSL_SESSION *sess,
                                 bool *resumed)
{
    struct pair p;
    /* a copy each time: a TLS 1.3 client offers one session object once */
    SSL_SESSION *offer = sess ? SSL_SESSION_dup(sess) : NULL;
    pair_open(&p, s, cc, "a.test", NULL, offer);
    SSL_SESSION_free(offer);
    assert_int_equal(pair_handshake(&p), 1);
    pair_roundtrip(&p);
    *resumed = SSL_session_reused(p.cli) == 1;
    assert_int_equal(*resumed, tls_transport_resumed(&p.srv));
    /* a copy: OpenSSL marks the connection's own session not resumable when it is freed
     * without a close_notify (as a client that just disconnects) */
    SSL_SESSION *out = SSL_SESSION_dup(SSL_get0_session(p.cli));
    pair_close(&p);
    return out;
}

/* Whether two sessions carry the same ticket bytes. */
static bool same_ticket(const SSL_SESSION *a, const SSL_SESSION *b)
{
    const unsigned char *ta = NULL, *tb = NULL;
    size_t la = 0, lb = 0;
    SSL_SESSION_get0_ticket(a, &ta, &la);
    SSL_SESSION_get0_ticket(b, &tb, &lb);
    return la == lb && (la == 0 || memcmp(ta, tb, la) == 0);
}

static void test_resumption(void **state)
{
    (void)state;
    struct tls_server_cert certs[] = {{path("a.pem"), path("a.key")}};
    struct tls_server *s = server(certs, 1, NULL, NULL, 0);
    int versions[] = {0, TLS1_2_VERSION};
    for (int v = 0; v < 2; v++) {
        SSL_CTX *cc = client_ctx(versions[v], NULL);
        bool resumed;
        SSL_SESSION *s1 = connect_once(s, cc, NULL, &resumed);
        assert_false(resumed);
        SSL_SESSION *s2 = connect_once(s, cc, s1, &resumed);
        assert_true(resumed);
        /* TLS 1.3: a resumption brings a fresh ticket, since a client uses each ticket once
         * (RFC 8446 C.4); without it every other connection would be a full handshake */
        if (versions[v] == 0)
            assert_false(same_ticket(s1, s2));
        /* a ticket sealed with the previous key still resumes (and is renewed) ... */
        tls_server_rotate_tickets(s);
        SSL_SESSION *s3 = connect_once(s, cc, s1, &resumed);
        assert_true(resumed);
        /* ... one sealed three keys ago does not: its key is forgotten */
        tls_server_rotate_tickets(s);
        tls_server_rotate_tickets(s);
        tls_server_rotate_tickets(s);
        SSL_SESSION *s4 = connect_once(s, cc, s2, &resumed);
        assert_false(resumed);
        SSL_SESSION_free(s1);
        SSL_SESSION_free(s2);
        SSL_SESSION_free(s3);
        SSL_SESSION_free(s4);
        SSL_CTX_free(cc);
    }
    tls_server_destroy(s);
    /* another server (another worker after a reload) has other keys: a full handshake */
    struct tls_server *s5 = server(certs, 1, NULL, NULL, 0);
    struct tls_server *s6 = server(certs, 1, NULL, NULL, 0);
    SSL_CTX *cc = client_ctx(0, NULL);
    bool resumed;
    SSL_SESSION *a = connect_once(s5, cc, NULL, &resumed);
    SSL_SESSION *b = connect_once(s6, cc, a, &resumed);
    assert_false(resumed);
    SSL_SESSION_free(a);
    SSL_SESSION_free(b);
    tls_server_destroy(s5);
    tls_server_destroy(s6);
    /* tickets off, TLS 1.2: the session cache resumes by session id */
    struct tls_server_opts o = {.certs = certs, .ncerts = 1, .tickets = false,
                                .session_cache = 100};
    char err[256];
    struct tls_server *s7 = tls_server_create(&o, err, sizeof(err));
    assert_non_null(s7);
    SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, NULL);
    SSL_CTX_set_options(c12, SSL_OP_NO_TICKET);
    a = connect_once(s7, c12, NULL, &resumed);
    assert_false(resumed);
    b = connect_once(s7, c12, a, &resumed);
    assert_true(resumed);
    SSL_SESSION_free(a);
    SSL_SESSION_free(b);
    SSL_CTX_free(c12);
    SSL_CTX_free(cc);
    tls_server_destroy(s7);
}

static void test_client_certificates(void **state)
{
    (void)state;
    struct tls_server_cert certs[] = {{path("a.pem"), path("a.key")}};
    struct tls_server *s = server(certs, 1, NULL, path("ca.pem"), 0);
    SSL_CTX *anon = client_ctx(0, NULL);
    struct pair p;
    /* TLS 1.3: the client finishes first and learns of the refusal when it reads */
    pair_open(&p, s, anon, NULL, NULL, NULL);
    assert_int_equal(pair_handshake(&p), 0);
    assert_non_null(p.srv.err);
    pair_close(&p);
    SSL_CTX *stranger = client_ctx(0, NULL);
    assert_int_equal(SSL_CTX_use_certificate_file(stranger, path("other.pem"), SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(stranger, path("other.key"), SSL_FILETYPE_PEM), 1);
    pair_open(&p, s, stranger, NULL, NULL, NULL);
    assert_int_equal(pair_handshake(&p), 0);
    pair_close(&p);
    SSL_CTX *known = client_ctx(0, NULL);
    assert_int_equal(SSL_CTX_use_certificate_file(known, path("cli.pem"), SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(known, path("cli.key"), SSL_FILETYPE_PEM), 1);
    pair_open(&p, s, known, NULL, NULL, NULL);
    assert_int_equal(pair_handshake(&p), 1);
    pair_roundtrip(&p);
    pair_close(&p);
    SSL_CTX_free(anon);
    SSL_CTX_free(stranger);
    SSL_CTX_free(known);
    tls_server_destroy(s);
}

/* transport_drained: a server read that found the socket empty says so (the connection then
 * skips the read that would meet EAGAIN; a socket BIO that never noted a short read(2) fails
 * the first check), and not while OpenSSL still holds a record or part of one. */
static void test_drained(void **state)
{
    (void)state;
    struct tls_server_cert certs[] = {{path("a.pem"), path("a.key")}};
    struct tls_server *s = server(certs, 1, NULL, NULL, 0);
    SSL_CTX *cc = client_ctx(0, NULL);
    struct pair p;
    pair_open(&p, s, cc, NULL, NULL, NULL);
    assert_int_equal(pair_handshake(&p), 1);
    pair_roundtrip(&p); /* the TLS 1.3 tickets are out of the way */
    char b[65536];
    /* one record, read whole: the socket is empty */
    assert_int_equal(SSL_write(p.cli, "GET", 3), 3);
    assert_int_equal(transport_read(&p.srv, b, sizeof(b)), 3);
    assert_true(transport_drained(&p.srv, 3, sizeof(b)));
    assert_int_equal(transport_read(&p.srv, b, sizeof(b)), IO_AGAIN);
    /* two records in one read(2): the first comes back while OpenSSL holds the second */
    assert_int_equal(SSL_write(p.cli, "a", 1), 1);
    assert_int_equal(SSL_write(p.cli, "b", 1), 1);
    assert_int_equal(transport_read(&p.srv, b, sizeof(b)), 1);
    assert_false(transport_drained(&p.srv, 1, sizeof(b)));
    assert_int_equal(transport_read(&p.srv, b, sizeof(b)), 1);
    assert_int_equal(b[0], 'b');
    /* more than OpenSSL's buffer takes: its first record comes back with the next one begun */
    static char big[40000];
    memset(big, 'x', sizeof(big));
    assert_int_equal(SSL_write(p.cli, big, (int)sizeof(big)), (int)sizeof(big));
    ssize_t n = transport_read(&p.srv, b, sizeof(b));
    assert_true(n > 0);
    assert_false(transport_drained(&p.srv, (size_t)n, sizeof(b)));
    size_t total = (size_t)n;
    while ((n = transport_read(&p.srv, b, sizeof(b))) > 0)
        total += (size_t)n;
    assert_int_equal(n, IO_AGAIN);
    assert_int_equal(total, sizeof(big));
    pair_close(&p);
    SSL_CTX_free(cc);
    tls_server_destroy(s);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct tls_server_cert certs[] = {{path("a.pem"), path("a.key")}};
    struct tls_server *s = server(certs, 1, NULL, NULL, 13);
    SSL_CTX *cc = client_ctx(0, NULL);
    struct pair p;
    /* plain HTTP on the TLS port is recognised, so the caller can answer it */
    pair_open(&p, s, cc, NULL, NULL, NULL);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(p.cfd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    assert_int_equal(transport_handshake(&p.srv), IO_ERR);
    assert_ptr_equal(p.srv.err, tls_err_plain_http);
    pair_close(&p);
    /* garbage records: an error, not plain HTTP */
    pair_open(&p, s, cc, NULL, NULL, NULL);
    const char junk[] = "\x16\x03\x01\x00\x05\xff\xff\xff\xff\xff\x16\x03";
    assert_int_equal(write(p.cfd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
    assert_int_equal(transport_handshake(&p.srv), IO_ERR);
    assert_ptr_equal(p.srv.err, transport_err_tls);
    pair_close(&p);
    /* nothing yet: wait; then the client leaves: an error */
    pair_open(&p, s, cc, NULL, NULL, NULL);
    assert_int_equal(transport_handshake(&p.srv), IO_AGAIN);
    shutdown(p.cfd, SHUT_WR);
    assert_int_equal(transport_handshake(&p.srv), IO_ERR);
    pair_close(&p);
    /* min_version 1.3 refuses a TLS 1.2 client */
    SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, NULL);
    pair_open(&p, s, c12, NULL, NULL, NULL);
    assert_int_equal(pair_handshake(&p), 0);
    pair_close(&p);
    SSL_CTX_free(c12);
    SSL_CTX_free(cc);
    tls_server_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_shape),      cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_sni_and_key_types), cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_resumption),        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_bad_input),         cmocka_unit_test(test_drained),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
