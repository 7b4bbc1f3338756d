/* OpenSSL client transport: the only file that includes <openssl/...>. WANT_READ / WANT_WRITE become
 * IO_AGAIN here (wrk src/ssl.c), so callers treat TCP and TLS alike. Sessions arrive through the
 * new-session callback (TLS 1.3 sends tickets after the handshake) and are kept per server. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
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

/* Per-SSL state that outlives a single call: the error text and the session slot. */
struct tls_conn {
    SSL *ssl;
    struct tls_session *slot;
    unsigned long last_err;   /* ERR_get_error() of the last failure */
    long verify_result;       /* X509_V_OK or why the chain was rejected */
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
        t->err_errno = 0;
        ERR_clear_error();
        return IO_ERR;
    }
}

static ssize_t tls_read(struct transport *t, void *buf, size_t len)
{
    struct tls_conn *tc = tls__conn(t);
    if (len > INT32_MAX)
        len = INT32_MAX;
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(tc->ssl, buf, (int)len);
    return n > 0 ? n : tls__result(t, n);
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
        ERR_clear_error();
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
    int n = SSL_connect(tc->ssl);
    if (n == 1)
        return IO_OK;
    ssize_t r = tls__result(t, n);
    if (r == 0) {
        /* The server closed during the handshake (wrong port, plain HTTP server). */
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
