/* OpenSSL transports, client and server: the only file that includes <openssl/...>. WANT_READ /
 * WANT_WRITE become IO_AGAIN here (wrk src/ssl.c), so callers treat TCP and TLS alike. Client:
 * sessions arrive through the new-session callback (TLS 1.3 sends tickets after the handshake) and
 * are kept per server. Server: one SSL_CTX per group of certificates with the same names, switched
 * by the SNI callback; ticket keys rotated in memory; ALPN from the caller's list. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/xmalloc.h"

struct tls_client {
    SSL_CTX *ctx;
    bool verify;
};

struct tls_session {
    pthread_mutex_t lock;
    SSL_SESSION *sess; /* latest resumable session, one reference owned here */
};

const char tls_err_plain_http[] = "tls_plain_http";

/* Per-SSL state that outlives a single call: the error text and the session slot. */
struct tls_conn {
    SSL *ssl;
    struct tls_session *slot;
    const struct tls_server *srv; /* server side: its ALPN list; NULL for a client */
    unsigned long last_err;   /* ERR_get_error() of the last failure */
    long verify_result;       /* X509_V_OK or why the chain was rejected */
    bool short_read;          /* server: the last read(2) of the last SSL_read returned fewer
                                 bytes than asked (the socket was empty then) */
};

static int tls_ex_index = -1;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls__init_once(void)
{
    tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Stores a copy of a session the server just granted into the per-server slot. A copy, because
 * OpenSSL marks the connection's own session object not resumable when that connection is freed
 * without a close_notify (an idle connection the server reset, an idle timeout), although the
 * ticket itself stays valid. Returning 0 leaves OpenSSL's reference alone. */
static int tls__new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_conn *tc = SSL_get_ex_data(ssl, tls_ex_index);
    if (tc == NULL || tc->slot == NULL)
        return 0;
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy == NULL)
        return 0;
    pthread_mutex_lock(&tc->slot->lock);
    SSL_SESSION *old = tc->slot->sess;
    tc->slot->sess = copy;
    pthread_mutex_unlock(&tc->slot->lock);
    if (old != NULL)
        SSL_SESSION_free(old);
    return 0;
}

static void tls__errtext(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

struct tls_client *tls_client_create(const struct tls_client_opts *o, char *err, size_t errlen)
{
    pthread_once(&tls_once, tls__init_once);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        tls__errtext(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Partial writes and a moving buffer: the caller's iovecs are retried from where they stopped,
     * not necessarily from the same address. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* Many servers close without close_notify; HTTP framing detects truncation itself. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, tls__new_session);
    if (o->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            char what[512];
            snprintf(what, sizeof(what), "cannot load CA certificates from %s",
                     o->ca_file ? o->ca_file : "the system store");
            tls__errtext(err, errlen, what);
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            tls__errtext(err, errlen, "cannot load the client certificate");
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file ? o->key_file : o->cert_file,
                                        SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            tls__errtext(err, errlen, "cannot load the client key");
            goto fail;
        }
    }
    struct tls_client *c = xcalloc(1, sizeof(*c));
    c->ctx = ctx;
    c->verify = o->verify;
    return c;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_client_destroy(struct tls_client *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ctx);
    free(c);
}

struct tls_session *tls_session_create(void)
{
    struct tls_session *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void tls_session_destroy(struct tls_session *s)
{
    if (s == NULL)
        return;
    if (s->sess != NULL)
        SSL_SESSION_free(s->sess);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static struct tls_conn *tls__conn(const struct transport *t) { return t->_tls; }

/* Maps the result of an SSL call. <n> > 0 is data; WANT_* is IO_AGAIN; a clean close is 0. */
static ssize_t tls__result(struct transport *t, int n)
{
    struct tls_conn *tc = tls__conn(t);
    int e = SSL_get_error(tc->ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || n == 0) {
            ERR_clear_error();
            return 0; /* EOF without close_notify */
        }
        t->err_errno = errno;
        t->err = (errno == ECONNRESET || errno == EPIPE) ? transport_err_reset : transport_err_io;
        ERR_clear_error();
        return IO_ERR;
    default:
        tc->last_err = ERR_peek_last_error();
        tc->verify_result = SSL_get_verify_result(tc->ssl);
        t->err = tc->verify_result != X509_V_OK ? transport_err_tls_verify : transport_err_tls;
        /* OpenSSL recognises "GET ", "POST ", "HEAD ", "PUT " where a record header belongs. */
        if (ERR_GET_LIB(tc->last_err) == ERR_LIB_SSL &&
            ERR_GET_REASON(tc->last_err) == SSL_R_HTTP_REQUEST)
            t->err = tls_err_plain_http;
        t->err_errno = 0;
        ERR_clear_error();
        return IO_ERR;
    }
}

/* Empties the thread's error queue before an SSL call, as SSL_get_error() needs. It is empty
 * almost always (every failure path here clears it): a peek then costs a few instructions, where
 * ERR_clear_error() resets all sixteen slots on every record (~3% of an HTTPS/1.1 hit's user
 * instructions, callgrind). */
static inline void tls__clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

static ssize_t tls_read(struct transport *t, void *buf, size_t len)
{
    struct tls_conn *tc = tls__conn(t);
    if (len > INT32_MAX)
        len = INT32_MAX;
    tls__clear_errors();
    errno = 0;
    tc->short_read = false;
    int n = SSL_read(tc->ssl, buf, (int)len);
    return n > 0 ? n : tls__result(t, n);
}

/* The server side's socket BIO: OpenSSL's socket BIO with its read wrapped, to watch whether a
 * read(2) came back short (with read-ahead OpenSSL asks for all the room its buffer has, so a
 * read that returns less found the socket empty at that moment). A method rather than a BIO
 * callback: a callback also runs twice around every BIO_ctrl, and OpenSSL makes dozens of those
 * per record (BIO_ctrl and the callback were ~5% of an HTTPS/1.1 hit's user instructions,
 * callgrind). The tls_conn rides in the BIO's callback argument, which no callback reads. */
static BIO_METHOD *tls__sock_method;
static int (*tls__sock_bread)(BIO *, char *, int);
static pthread_once_t tls__sock_once = PTHREAD_ONCE_INIT;

/* The socket BIO's read_ex (OpenSSL's bread_conv over its read), plus the short-read watch. */
static int tls__sock_read(BIO *b, char *buf, size_t len, size_t *got)
{
    if (len > INT32_MAX)
        len = INT32_MAX;
    int n = tls__sock_bread(b, buf, (int)len);
    if (n <= 0) {
        *got = 0;
        return n;
    }
    *got = (size_t)n;
    struct tls_conn *tc = (struct tls_conn *)BIO_get_callback_arg(b);
    if (tc != NULL)
        tc->short_read = (size_t)n < len;
    return 1;
}

static void tls__sock_method_init(void)
{
    const BIO_METHOD *sock = BIO_s_socket();
    if (BIO_meth_get_read(sock) == NULL)
        return; // tls_server_transport_init falls back to SSL_set_fd (no short-read watch)
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "apigate socket");
    if (m == NULL)
        return;
    /* the socket's own read (under our read_ex) and write (BIO_meth_set_write installs
     * OpenSSL's _ex adapter over it; copying the socket's _ex form instead would leave that
     * adapter without the function it calls), its ctrl (BIO_set_fd, BIO_get_fd, flush...),
     * new and free */
    tls__sock_bread = BIO_meth_get_read(sock);
    BIO_meth_set_read_ex(m, tls__sock_read);
    BIO_meth_set_write(m, BIO_meth_get_write(sock));
    BIO_meth_set_puts(m, BIO_meth_get_puts(sock));
    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock));
    BIO_meth_set_create(m, BIO_meth_get_create(sock));
    BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock));
    tls__sock_method = m;
}

static bool tls_drained(const struct transport *t, size_t got, size_t asked)
{
    (void)got;
    (void)asked;
    const struct tls_conn *tc = tls__conn(t);
    /* Bytes OpenSSL already holds (a second record, half a record) are not announced by epoll
     * again; bytes that arrive after that short read are (edge-triggered: every arrival). Only a
     * server-side connection watches its read(2)s (read-ahead asks for all the room, so a short
     * one found the socket empty): a client reads on until IO_AGAIN. */
    return tc != NULL && tc->srv != NULL && tc->short_read && !SSL_has_pending(tc->ssl);
}

/* Writes the iovecs as TLS records. Small pieces are coalesced into chunks of up to one record
 * (16 KiB): fewer records and syscalls. The chunking also keeps OpenSSL's retry rule: after
 * WANT_WRITE the next SSL_write must offer at least the bytes of the pending record, and every
 * chunk built here from the same unsent bytes is min(16 KiB, all of them) long, or longer. */
static ssize_t tls_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    struct tls_conn *tc = tls__conn(t);
    char small[16384];
    ssize_t done = 0;
    int i = 0;
    size_t off = 0; /* into iov[i] */
    for (;;) {
        while (i < iovcnt && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (i == iovcnt)
            return done;
        const char *ptr = (const char *)iov[i].iov_base + off;
        size_t len = iov[i].iov_len - off;
        if (len < sizeof(small) && i + 1 < iovcnt) {
            /* Gather up to one record from this and the following pieces. */
            size_t n = 0;
            int k = i;
            size_t koff = off;
            while (k < iovcnt && n < sizeof(small)) {
                size_t take = iov[k].iov_len - koff;
                if (take > sizeof(small) - n)
                    take = sizeof(small) - n;
                memcpy(small + n, (const char *)iov[k].iov_base + koff, take);
                n += take;
                koff += take;
                if (koff == iov[k].iov_len) {
                    k++;
                    koff = 0;
                }
            }
            ptr = small;
            len = n;
        }
        if (len > INT32_MAX)
            len = INT32_MAX;
        tls__clear_errors();
        errno = 0;
        int w = SSL_write(tc->ssl, ptr, (int)len);
        if (w <= 0) {
            ssize_t r = tls__result(t, w);
            if (done > 0 && r == IO_AGAIN)
                return done;
            return r == 0 ? IO_ERR : r;
        }
        done += w;
        /* Advance the position by <w> bytes over the iovecs. */
        size_t adv = (size_t)w;
        while (adv > 0 && i < iovcnt) {
            size_t room = iov[i].iov_len - off;
            if (adv < room) {
                off += adv;
                adv = 0;
            } else {
                adv -= room;
                i++;
                off = 0;
            }
        }
        if ((size_t)w < len)
            return done;
    }
}

static int tls_handshake(struct transport *t)
{
    struct tls_conn *tc = tls__conn(t);
    ERR_clear_error();
    errno = 0;
    int n = SSL_do_handshake(tc->ssl); /* connect or accept, as the state was set */
    if (n == 1)
        return IO_OK;
    ssize_t r = tls__result(t, n);
    if (r == 0) {
        /* The peer closed during the handshake (client: wrong port, a plain HTTP server;
         * server: a port scan, a client that gave up). */
        t->err = transport_err_tls;
        return IO_ERR;
    }
    return (int)r;
}

static void tls_shutdown(struct transport *t)
{
    struct tls_conn *tc = tls__conn(t);
    ERR_clear_error();
    SSL_shutdown(tc->ssl); /* best effort: close_notify, no wait for the peer's */
    ERR_clear_error();
    shutdown(t->fd, SHUT_WR);
}

static void tls_close(struct transport *t)
{
    struct tls_conn *tc = tls__conn(t);
    /* OpenSSL drops the session of a connection freed without a close_notify from the server's
     * session cache, as if the connection had failed. A connection that ends without an error
     * (idle timeout, the client's EOF, our Connection: close) keeps its session resumable. */
    if (tc != NULL && tc->srv != NULL && t->err == NULL && SSL_is_init_finished(tc->ssl))
        SSL_set_shutdown(tc->ssl, SSL_get_shutdown(tc->ssl) | SSL_SENT_SHUTDOWN);
    if (tc != NULL) {
        SSL_free(tc->ssl);
        free(tc);
        t->_tls = NULL;
    }
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
}

static const struct transport_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .handshake = tls_handshake,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .drained = tls_drained,
};

static bool tls__is_ip(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int tls_transport_init(struct transport *t, struct tls_client *c, int fd, const char *host,
                       struct tls_session *sess, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(c->ctx);
    if (ssl == NULL) {
        tls__errtext(err, errlen, "cannot create a TLS connection");
        return -1;
    }
    bool ip = tls__is_ip(host);
    /* SNI carries host names only (RFC 6066 3); IP literals are checked against the SAN iPAddress. */
    if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1)
        goto fail;
    if (c->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) : SSL_set1_host(ssl, host);
        if (ok != 1)
            goto fail;
    }
    if (SSL_set_fd(ssl, fd) != 1)
        goto fail;
    struct tls_conn *tc = xcalloc(1, sizeof(*tc));
    tc->ssl = ssl;
    tc->slot = sess;
    tc->verify_result = X509_V_OK;
    SSL_set_ex_data(ssl, tls_ex_index, tc);
    if (sess != NULL) {
        pthread_mutex_lock(&sess->lock);
        if (sess->sess != NULL)
            SSL_set_session(ssl, sess->sess); /* takes its own reference */
        pthread_mutex_unlock(&sess->lock);
    }
    SSL_set_connect_state(ssl);
    t->ops = &tls_ops;
    t->fd = fd;
    t->err = NULL;
    t->err_errno = 0;
    t->_tls = tc;
    return 0;
fail:
    tls__errtext(err, errlen, "cannot set up TLS for the server name");
    SSL_free(ssl);
    return -1;
}

bool tls_transport_resumed(const struct transport *t)
{
    const struct tls_conn *tc = tls__conn(t);
    return tc != NULL && SSL_session_reused(tc->ssl) == 1;
}

bool tls_transport_wants_write(const struct transport *t)
{
    const struct tls_conn *tc = tls__conn(t);
    return tc != NULL && SSL_want_write(tc->ssl);
}

const char *tls_transport_describe(const struct transport *t, char *buf, size_t len)
{
    const struct tls_conn *tc = tls__conn(t);
    if (tc == NULL) {
        snprintf(buf, len, "%s", t->err ? t->err : "no TLS error");
        return buf;
    }
    if (tc->verify_result != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed: %s",
                 X509_verify_cert_error_string(tc->verify_result));
    } else if (tc->last_err != 0) {
        char e[256];
        ERR_error_string_n(tc->last_err, e, sizeof(e));
        snprintf(buf, len, "TLS error: %s", e);
    } else if (t->err_errno != 0) {
        snprintf(buf, len, "%s", strerror(t->err_errno));
    } else {
        snprintf(buf, len, "TLS handshake failed (peer closed the connection)");
    }
    return buf;
}

/* ---- server side ---- */

/* The modern default for TLS 1.2 (Mozilla "intermediate" without DHE): forward secrecy and AEAD
 * only. TLS 1.3 suites are OpenSSL's defaults, all of them AEAD. */
static const char tls__default_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static const char *const tls__default_alpn[] = {"http/1.1", NULL};

#define TLS_TICKET_KEYS 3 /* the current key and two older ones that still decrypt */

struct tls_ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    time_t created;
};

/* Certificates with the same names: one SSL_CTX holding each key type once. */
struct tls_group {
    SSL_CTX *ctx;
    X509 *leaf;        /* the first certificate's leaf, for SNI matching (one reference) */
    char *names;       /* its DNS names (or CN), sorted and joined by ',' */
    unsigned key_types; /* bit per EVP_PKEY base id seen: 1 RSA, 2 EC, 4 other */
};

struct tls_server {
    struct tls_group *groups; /* [0]: the default, whose context owns tickets and the cache */
    size_t ngroups;
    const char *const *alpn;  /* the caller's list (not copied: static strings) */
    unsigned char alpn_wire[256];
    size_t alpn_len;
    bool tickets;
    unsigned rotate_s;
    pthread_mutex_t keys_lock;
    struct tls_ticket_key keys[TLS_TICKET_KEYS]; /* [0] current; created 0: empty */
};

static int tls_srv_index = -1; /* SSL_CTX ex data: the owning tls_server */
static pthread_once_t tls_srv_once = PTHREAD_ONCE_INIT;

static void tls__srv_init_once(void)
{
    tls_srv_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Makes a fresh current key, the older ones shifted down (the oldest dropped). Under keys_lock. */
static int tls__ticket_rotate(struct tls_server *s, time_t now)
{
    memmove(&s->keys[1], &s->keys[0], sizeof(s->keys[0]) * (TLS_TICKET_KEYS - 1));
    struct tls_ticket_key *k = &s->keys[0];
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1) {
        memset(k, 0, sizeof(*k));
        return -1;
    }
    k->created = now;
    return 0;
}

/* Session ticket keys (RFC 5077 layout, as OpenSSL's own): a new ticket is sealed with the current
 * key (rotated every rotate_s); a ticket sealed with an older key still resumes and is renewed
 * (return 2), as is every TLS 1.3 one; an unknown or expired key means a full handshake (0). */
static int tls__ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                          EVP_MAC_CTX *hctx, int enc)
{
    struct tls_server *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_srv_index);
    if (s == NULL)
        return -1;
    time_t now = time(NULL);
    struct tls_ticket_key k;
    int ret = 1;
    pthread_mutex_lock(&s->keys_lock);
    if (enc) {
        if ((s->keys[0].created == 0 || now - s->keys[0].created >= (time_t)s->rotate_s) &&
            tls__ticket_rotate(s, now) != 0) {
            pthread_mutex_unlock(&s->keys_lock);
            return -1;
        }
        k = s->keys[0];
    } else {
        int found = -1;
        for (int i = 0; i < TLS_TICKET_KEYS && found < 0; i++)
            if (s->keys[i].created != 0 &&
                now - s->keys[i].created < (time_t)s->rotate_s * TLS_TICKET_KEYS &&
                memcmp(s->keys[i].name, name, 16) == 0)
                found = i;
        if (found < 0) {
            pthread_mutex_unlock(&s->keys_lock);
            return 0;
        }
        k = s->keys[found];
        /* 2 (renew): sealed by an older key, or TLS 1.3, whose client uses a ticket once
         * (RFC 8446 C.4): with no fresh ticket after a resumption its next connection would be a
         * full handshake (OpenSSL sends a TLS 1.3 ticket after a resumption only when asked). */
        ret = found == 0 && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
    }
    pthread_mutex_unlock(&s->keys_lock);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (enc) {
        memcpy(name, k.name, 16);
        if (RAND_bytes(iv, 16) != 1 ||
            EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            ret = -1;
    } else if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        ret = -1;
    }
    if (ret > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
        ret = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return ret;
}

/* SNI: the first group whose leaf certificate covers the name (wildcards as browsers do); the
 * default group otherwise (no error: a client without SNI or with an unknown name still gets the
 * default certificate, as nginx does). */
static int tls__sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct tls_server *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || s->ngroups < 2)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < s->ngroups; i++) {
        if (X509_check_host(s->groups[i].leaf, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                            NULL) == 1) {
            if (i != 0)
                SSL_set_SSL_CTX(ssl, s->groups[i].ctx);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: the first of the server's protocols that the client offers. */
static int tls__alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                        const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    struct tls_server *s = arg;
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    if (SSL_select_next_proto(&sel, &sellen, s->alpn_wire, (unsigned)s->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 7301 3.2: no_application_protocol */
    *out = sel;
    *outlen = sellen;
    return SSL_TLSEXT_ERR_OK;
}

/* The DNS names of <x> (subjectAltName, else the CN), sorted and joined by ','. */
static char *tls__cert_names(X509 *x)
{
    char *names[64];
    size_t n = 0;
    GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; san && i < sk_GENERAL_NAME_num(san) && n < 64; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
        if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            names[n++] = xstrndup((const char *)d, (size_t)ASN1_STRING_length(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            char buf[64];
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            int len = ASN1_STRING_length(g->d.iPAddress);
            if (inet_ntop(len == 4 ? AF_INET : AF_INET6, d, buf, sizeof(buf)) != NULL)
                names[n++] = xstrdup(buf);
        }
    }
    GENERAL_NAMES_free(san);
    if (n == 0) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                      sizeof(cn)) > 0)
            names[n++] = xstrdup(cn);
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *tmp = names[j];
            names[j] = names[j - 1];
            names[j - 1] = tmp;
        }
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(names[i]) + 1;
    char *out = xmalloc(total);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, names[i]);
        free(names[i]);
    }
    return out;
}

/* Everything a context of <s> needs, the same on every group's context, because after the SNI
 * switch OpenSSL reads ALPN, verification and the certificate from the new context. */
static int tls__server_ctx_setup(struct tls_server *s, SSL_CTX *ctx, const struct tls_server_opts *o,
                                 char *err, size_t errlen)
{
    SSL_CTX_set_ex_data(ctx, tls_srv_index, s);
    SSL_CTX_set_min_proto_version(ctx, o->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* One read(2) takes whatever the socket holds, not a record header then its body: a
     * keep-alive request costs one read instead of two (plus the one that meets EAGAIN). */
    SSL_CTX_set_read_ahead(ctx, 1);
    long opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
    if (!o->tickets)
        opts |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, opts);
    if (SSL_CTX_set_cipher_list(ctx, o->ciphers ? o->ciphers : tls__default_ciphers) != 1) {
        tls__errtext(err, errlen, "ciphers: no usable cipher in the list");
        return -1;
    }
    static const unsigned char sid[] = "apigate";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, tls__alpn_cb, s);
    SSL_CTX_set_tlsext_servername_callback(ctx, tls__sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, s);
    if (o->tickets)
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls__ticket_cb);
    /* Sessions (tickets and cache entries) live as long as the keys that seal them. */
    SSL_CTX_set_timeout(ctx, (long)s->rotate_s * (TLS_TICKET_KEYS - 1));
    if (o->session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, o->session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (o->client_ca != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, o->client_ca, NULL) != 1) {
            char what[512];
            snprintf(what, sizeof(what), "client_ca: cannot load CA certificates from %s",
                     o->client_ca);
            tls__errtext(err, errlen, what);
            return -1;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ctx, names); /* the CertificateRequest's hint */
        ERR_clear_error();
        /* optional: the certificate is asked for and verified when sent, never required */
        SSL_CTX_set_verify(ctx, o->client_optional
                                    ? SSL_VERIFY_PEER
                                    : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           NULL);
    }
    return 0;
}

static unsigned tls__key_type(EVP_PKEY *k)
{
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
        return 1;
    case EVP_PKEY_EC:
        return 2;
    default:
        return 4;
    }
}

/* Loads one certificate and key into <s>: into the group with the same names (another key type),
 * or a new group. */
static int tls__server_add_cert(struct tls_server *s, const struct tls_server_opts *o,
                                const struct tls_server_cert *c, char *err, size_t errlen)
{
    char what[1024];
    X509 *leaf = NULL;
    FILE *f = fopen(c->cert_file, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read certificate %s: %s", c->cert_file, strerror(errno));
        return -1;
    }
    leaf = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (leaf == NULL) {
        snprintf(what, sizeof(what), "%s is not a PEM certificate", c->cert_file);
        tls__errtext(err, errlen, what);
        return -1;
    }
    char *names = tls__cert_names(leaf);
    struct tls_group *g = NULL;
    for (size_t i = 0; i < s->ngroups && g == NULL; i++)
        if (strcmp(s->groups[i].names, names) == 0)
            g = &s->groups[i];
    bool fresh = g == NULL;
    if (fresh) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == NULL) {
            tls__errtext(err, errlen, "cannot create a TLS context");
            goto fail;
        }
        if (tls__server_ctx_setup(s, ctx, o, err, errlen) != 0) {
            SSL_CTX_free(ctx);
            goto fail;
        }
        s->groups = xrealloc(s->groups, (s->ngroups + 1) * sizeof(*s->groups));
        g = &s->groups[s->ngroups++];
        *g = (struct tls_group){.ctx = ctx, .leaf = leaf, .names = names};
        leaf = NULL;
        names = NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(g->ctx, c->cert_file) != 1) {
        snprintf(what, sizeof(what), "cannot load certificate chain %s", c->cert_file);
        tls__errtext(err, errlen, what);
        goto fail;
    }
    /* The key's type, read apart from the context, so that a second certificate of a type the
     * group already has is named as a duplicate rather than silently replacing the first. */
    f = fopen(c->key_file, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read key %s: %s", c->key_file, strerror(errno));
        goto fail;
    }
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (pk == NULL) {
        snprintf(what, sizeof(what), "%s is not a PEM private key (or is encrypted)", c->key_file);
        tls__errtext(err, errlen, what);
        goto fail;
    }
    unsigned kt = tls__key_type(pk);
    if (!fresh && (g->key_types & kt)) {
        EVP_PKEY_free(pk);
        snprintf(err, errlen, "%s: another certificate with the same names (%s) and key type is "
                              "listed before; give one certificate per key type and names",
                 c->cert_file, g->names);
        goto fail;
    }
    int ok = SSL_CTX_use_PrivateKey(g->ctx, pk);
    EVP_PKEY_free(pk);
    if (ok != 1 || SSL_CTX_check_private_key(g->ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "the key %s does not match the certificate %s", c->key_file,
                 c->cert_file);
        goto fail;
    }
    g->key_types |= kt;
    X509_free(leaf);
    free(names);
    return 0;
fail:
    X509_free(leaf);
    free(names);
    return -1;
}

struct tls_server *tls_server_create(const struct tls_server_opts *o, char *err, size_t errlen)
{
    pthread_once(&tls_once, tls__init_once);
    pthread_once(&tls_srv_once, tls__srv_init_once);
    if (o->ncerts == 0) {
        snprintf(err, errlen, "no certificate; give cert and key");
        return NULL;
    }
    struct tls_server *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->keys_lock, NULL);
    s->tickets = o->tickets;
    s->rotate_s = o->ticket_rotate_s ? o->ticket_rotate_s : 3600;
    s->alpn = o->alpn ? o->alpn : tls__default_alpn;
    for (size_t i = 0; s->alpn[i] != NULL; i++) {
        size_t l = strlen(s->alpn[i]);
        if (l == 0 || l > 255 || s->alpn_len + 1 + l > sizeof(s->alpn_wire)) {
            snprintf(err, errlen, "ALPN protocol '%s' is empty or too long", s->alpn[i]);
            goto fail;
        }
        s->alpn_wire[s->alpn_len++] = (unsigned char)l;
        memcpy(s->alpn_wire + s->alpn_len, s->alpn[i], l);
        s->alpn_len += l;
    }
    ERR_clear_error();
    for (size_t i = 0; i < o->ncerts; i++)
        if (tls__server_add_cert(s, o, &o->certs[i], err, errlen) != 0)
            goto fail;
    return s;
fail:
    ERR_clear_error();
    tls_server_destroy(s);
    return NULL;
}

void tls_server_destroy(struct tls_server *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->ngroups; i++) {
        SSL_CTX_free(s->groups[i].ctx);
        X509_free(s->groups[i].leaf);
        free(s->groups[i].names);
    }
    free(s->groups);
    OPENSSL_cleanse(s->keys, sizeof(s->keys));
    pthread_mutex_destroy(&s->keys_lock);
    free(s);
}

void tls_server_rotate_tickets(struct tls_server *s)
{
    pthread_mutex_lock(&s->keys_lock);
    /* A failed RAND leaves no current key: the next ticket makes one. */
    tls__ticket_rotate(s, time(NULL));
    pthread_mutex_unlock(&s->keys_lock);
}

int tls_server_transport_init(struct transport *t, struct tls_server *s, int fd, char *err,
                              size_t errlen)
{
    ERR_clear_error();
    pthread_once(&tls__sock_once, tls__sock_method_init);
    SSL *ssl = SSL_new(s->groups[0].ctx);
    BIO *bio = ssl != NULL && tls__sock_method != NULL ? BIO_new(tls__sock_method) : NULL;
    if (bio != NULL) {
        BIO_set_fd(bio, fd, BIO_NOCLOSE);
        SSL_set_bio(ssl, bio, bio); // one reference, owned by the SSL
    }
    if (ssl == NULL || (bio == NULL && SSL_set_fd(ssl, fd) != 1)) {
        tls__errtext(err, errlen, "cannot create a TLS connection");
        SSL_free(ssl);
        return -1;
    }
    struct tls_conn *tc = xcalloc(1, sizeof(*tc));
    tc->ssl = ssl;
    tc->srv = s;
    tc->verify_result = X509_V_OK;
    SSL_set_ex_data(ssl, tls_ex_index, tc);
    if (bio != NULL)
        BIO_set_callback_arg(bio, (char *)tc);
    SSL_set_accept_state(ssl);
    t->ops = &tls_ops;
    t->fd = fd;
    t->err = NULL;
    t->err_errno = 0;
    t->_tls = tc;
    return 0;
}

int tls_transport_client_verify(const struct transport *t)
{
    const struct tls_conn *tc = tls__conn(t);
    if (tc == NULL || tc->srv == NULL || !(SSL_get_verify_mode(tc->ssl) & SSL_VERIFY_PEER))
        return -1;
    /* a presented certificate that failed verification already failed the handshake */
    X509 *peer = SSL_get0_peer_certificate(tc->ssl);
    return peer != NULL && SSL_get_verify_result(tc->ssl) == X509_V_OK ? 1 : 0;
}

const char *tls_transport_alpn(const struct transport *t)
{
    const struct tls_conn *tc = tls__conn(t);
    if (tc == NULL)
        return NULL;
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(tc->ssl, &p, &len);
    if (p == NULL || len == 0)
        return NULL;
    const char *const *list = tc->srv ? tc->srv->alpn : tls__default_alpn;
    for (size_t i = 0; list[i] != NULL; i++)
        if (strlen(list[i]) == len && memcmp(list[i], p, len) == 0)
            return list[i];
    return NULL;
}

const char *tls_transport_sni(const struct transport *t)
{
    const struct tls_conn *tc = tls__conn(t);
    return tc ? SSL_get_servername(tc->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

const char *tls_transport_version(const struct transport *t)
{
    const struct tls_conn *tc = tls__conn(t);
    return tc ? SSL_get_version(tc->ssl) : NULL;
}
