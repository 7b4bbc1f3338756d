/* The WebSocket opening handshake's two values (RFC 6455 §4.1, §4.2.2): the Sec-WebSocket-Key a
 * client sends and the Sec-WebSocket-Accept that proves the server read it. Used where the
 * gateway itself is the WebSocket client of an upstream: an HTTP/2 extended CONNECT (RFC 8441)
 * carries no key, so the HTTP/1.1 request the gateway makes of it needs one of its own. */
#ifndef AG_NET_WSKEY_H
#define AG_NET_WSKEY_H

#include <stdbool.h>
#include <stddef.h>

#define WSKEY_LEN 24        /* base64 of 16 random bytes */
#define WSKEY_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

/* A fresh key (16 bytes from the kernel's generator, base64) into <key>, NUL-terminated. */
void wskey_new(char key[WSKEY_LEN + 1]);
/* The Sec-WebSocket-Accept a server must answer to <key>, NUL-terminated, into <out>. */
void wskey_accept(const char *key, size_t len, char out[WSKEY_ACCEPT_LEN + 1]);
/* Whether <v>[0, <vlen>) is the right Sec-WebSocket-Accept for <key>. */
bool wskey_accept_ok(const char *key, const char *v, size_t vlen);

#endif
