/* TLS transports (OpenSSL, kept out of every other file). The client side, for upstream
 * connections: one context per upstream with certificate verification on by default (system store
 * or ca_file), SNI and host name checks, ALPN http/1.1, and session resumption per server shared by
 * all loop threads. The server side, for `listen` entries with `tls:`: certificates chosen by SNI
 * (ECDSA and RSA side by side), ALPN from a list the caller gives, TLS 1.2 and 1.3, session
 * tickets with keys rotated in memory plus a session cache, optional client certificates. Every
 * handshake is non-blocking: transport_handshake() returns IO_AGAIN until done. OpenSSL writes
 * with write(2), so a process using TLS transports must ignore SIGPIPE (serve, load and mock do). */
#ifndef AG_NET_TLS_H
#define AG_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/transport.h"

struct tls_client;
struct tls_session;
struct tls_server;

/* Why a server handshake failed, besides transport_err_tls: the client spoke plain HTTP ("GET /"
 * arrived where a TLS record was expected). Compared by pointer, as transport_err_*. */
extern const char tls_err_plain_http[];

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

/* ---- server side ---- */

/* One certificate of a listener: a PEM chain (leaf first) and its private key. */
struct tls_server_cert {
    const char *cert_file;
    const char *key_file;
};

struct tls_server_opts {
    /* Certificates; the first is the default (no SNI, or no certificate matches the name).
     * Certificates with the same names and different key types (ECDSA and RSA) are served side by
     * side, OpenSSL picking the one the client's signature algorithms allow. */
    const struct tls_server_cert *certs;
    size_t ncerts;
    const char *client_ca;        /* PEM bundle: clients must present a certificate it signed;
                                     NULL: no client certificate asked */
    bool client_optional;         /* with client_ca: a client without a certificate is let in
                                     (tls_transport_client_verify says 0); a certificate it does
                                     present must still chain to client_ca */
    int min_version;              /* 12 (TLS 1.2, the default when 0) or 13 */
    const char *ciphers;          /* TLS 1.2 cipher list (OpenSSL syntax); NULL: a modern default
                                     (ECDHE with AES-GCM or ChaCha20) */
    const char *const *alpn;      /* protocols in the server's order of preference, NULL-ended
                                     ({"h2", "http/1.1", NULL}); NULL: {"http/1.1", NULL}. A
                                     client offering ALPN without any of them gets an alert. */
    bool tickets;                 /* session tickets (stateless resumption) */
    unsigned ticket_rotate_s;     /* a new ticket key this often (tickets stay valid for two
                                     periods); 0: 3600 */
    long session_cache;           /* session cache entries (resumption by session id); 0: off */
};

/* Builds a server context: reads and checks every certificate and key now (a missing file, a file
 * that is no PEM, a key that does not match its certificate, two certificates of one key type for
 * the same names), so check and a reload report them. Returns NULL with a sentence in <err>.
 * Thread-safe afterwards: one per listener, shared by the loop threads of a worker (the ticket keys
 * and the session cache are shared too). */
struct tls_server *tls_server_create(const struct tls_server_opts *o, char *err, size_t errlen);
void tls_server_destroy(struct tls_server *s);
/* Starts a new ticket key now, as the rotation period does (tickets sealed with the previous two
 * keys still resume and are renewed). For tests and for an operator's "forget old keys". */
void tls_server_rotate_tickets(struct tls_server *s);

/* Makes <t> a server TLS transport over the accepted non-blocking <fd>, taken over by <t>. The
 * handshake runs through transport_handshake(). Returns 0, or -1 with <err> (then <fd> is not
 * taken). */
int tls_server_transport_init(struct transport *t, struct tls_server *s, int fd, char *err,
                              size_t errlen);
/* After the handshake: the protocol ALPN selected (one of the server's alpn strings, so it may be
 * compared by pointer), or NULL when the client offered no ALPN. */
const char *tls_transport_alpn(const struct transport *t);
/* After the handshake: the server name the client asked for (SNI), or NULL. */
const char *tls_transport_sni(const struct transport *t);
/* "TLSv1.3" / "TLSv1.2" after the handshake (static strings). */
const char *tls_transport_version(const struct transport *t);
/* After the handshake of a server transport: -1 when the listener asks no client certificate
 * (no client_ca, or not TLS), 0 when the client presented none (verify_client: optional), 1 when
 * it presented one that chains to client_ca. */
int tls_transport_client_verify(const struct transport *t);

#endif
