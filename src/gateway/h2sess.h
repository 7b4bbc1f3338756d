/* The HTTP/2 client session of the gateway (h2sess.c, the only file that includes nghttp2): the
 * socket (plain or TLS transport), one nghttp2 server session, and one struct gw_req per stream,
 * each going through the same request layer and filters as HTTP/1.1 (req.h). Entered from the
 * HTTP/1.1 session (conn.c) when a plain connection starts with the client preface (h2c by prior
 * knowledge) or a TLS handshake selected ALPN "h2". */
#ifndef AG_GATEWAY_H2SESS_H
#define AG_GATEWAY_H2SESS_H

#include <stdbool.h>
#include <stddef.h>

struct gwthread;
struct h2sess;
struct transport;

#define H2SESS_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2SESS_PREFACE_LEN 24

/* Whether the <n> first bytes of a connection are (a prefix of) the HTTP/2 client preface. */
bool h2sess_is_preface(const char *p, size_t n);
/* Takes over <tp> (its fd registered with no loop) of a connection of <th>, counted as open
 * (th->nconns, the connection gauges), with the <npre> bytes already read from it. */
void h2sess_accept(struct gwthread *th, struct transport *tp, const char *ip, const char *pre,
                   size_t npre);
/* Drain: GOAWAY to every session of <th>; the ones without streams close. */
void h2sess_drain(struct gwthread *th);
/* Closes every session of <th> (drain deadline, thread stop). */
void h2sess_close_all(struct gwthread *th);
/* Frees stream objects kept for reuse above <keep>. Returns the bytes freed. */
size_t h2sess_trim(struct gwthread *th, size_t keep);
/* Thread stop, after the last deferred frees: frees the stream objects kept for reuse. */
void h2sess_thread_stop(struct gwthread *th);

#endif
