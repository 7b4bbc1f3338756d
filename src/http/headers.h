/* Helpers over parsed header arrays: case-insensitive lookup, comma-separated token lists, and the
 * hop-by-hop set a proxy must not forward (RFC 9110 §7.6.1). */
#ifndef AG_HTTP_HEADERS_H
#define AG_HTTP_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "http/h1parse.h"

/* ASCII case-insensitive equality of <a>[0,<alen>) with the NUL-terminated <b>. */
bool headers_name_eq(const char *a, size_t alen, const char *b);
/* First header named <name> (case-insensitive), or NULL. */
const struct h1_header *headers_find(const struct h1_header *h, size_t n, const char *name);
/* True when the comma-separated <value> lists <token> (case-insensitive, whitespace ignored). */
bool headers_has_token(const char *value, size_t len, const char *token);
/* True for Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authenticate, Proxy-Authorization. */
bool headers_is_hop_by_hop(const char *name, size_t len);
/* True when <name> is listed by any Connection header in <h> (those are hop-by-hop too). */
bool headers_listed_in_connection(const struct h1_header *h, size_t n, const char *name,
                                  size_t len);

#endif
