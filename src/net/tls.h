/* TLS client for upstream connections (OpenSSL, kept out of every other file): one context per
 * upstream with certificate verification on by default (system store or ca_file), SNI and host
 * name checks, ALPN http/1.1, and session resumption per server shared by all loop threads. The
 * handshake is non-blocking: transport_handshake() returns IO_AGAIN until done. OpenSSL writes
 * with write(2), so a process using TLS transports must ignore SIGPIPE (serve, load and mock do). */
#ifndef AG_NET_TLS_H
#define AG_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/transport.h"

struct tls_client;
struct tls_session;

struct tls_client_opts {
    bool verify;            /* verify chain and name (default on; off only for tests/labs) */
    const char *ca_file;    /* PEM bundle; NULL: the system store */
    const char *cert_file;  /* client certificate for mutual TLS, NULL: none */
    const char *key_file;
};

/* Builds a client context. Reads the CA and certificate files now, so a bad path is reported at
 * start-up. Returns NULL with a message for people in <err>. Thread-safe afterwards. */
struct tls_client *tls_client_create(const struct tls_client_opts *o, char *err, size_t errlen);
void tls_client_destroy(struct tls_client *c);

/* A server's resumable session, shared by the threads connecting to it (mutex inside). */
struct tls_session *tls_session_create(void);
void tls_session_destroy(struct tls_session *s);

/* Makes <t> a TLS transport over the connected (or connecting) non-blocking <fd>, taken over by
 * <t>. <host> is sent as SNI (when not an IP literal) and checked against the certificate when
 * verification is on. <sess>, may be NULL, offers the last session of that server and receives
 * the new one. Returns 0, or -1 with <err> (then <fd> is not taken: the caller closes it). */
int tls_transport_init(struct transport *t, struct tls_client *c, int fd, const char *host,
                       struct tls_session *sess, char *err, size_t errlen);
/* After the handshake: true when the session was resumed (no full handshake). */
bool tls_transport_resumed(const struct transport *t);
/* After IO_AGAIN from <t>: true when OpenSSL waits to write (so poll for POLLOUT), false when it
 * waits to read. For blocking clients that poll one direction (net/httpc.c). */
bool tls_transport_wants_write(const struct transport *t);
/* A sentence on why the last TLS operation of <t> failed ("certificate verify failed: self-signed
 * certificate in certificate chain"), written into <buf>; returns <buf>. */
const char *tls_transport_describe(const struct transport *t, char *buf, size_t len);

#endif
