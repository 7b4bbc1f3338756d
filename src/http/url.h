/* URLs: parsing absolute http(s) URLs (load targets, upstream servers, doctor probes), and the
 * path/query normalization used in cache keys. */
#ifndef AG_HTTP_URL_H
#define AG_HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

struct url {
    bool tls;       /* https */
    char host[256]; /* without brackets for IPv6 */
    int port;       /* 80/443 when absent */
    char path[2048];/* path and query, "/" when absent */
};

/* Parses "http://host[:port][/path?query]" or "https://…". Returns 0, or -1 with a message for
 * people in <err> (<errlen> bytes). */
int url_parse(const char *s, struct url *u, char *err, size_t errlen);

/* Appends the normalized form of a request path to <out>: percent-encodings of unreserved
 * characters decoded, other percent-encodings upper-cased, "." and ".." segments removed
 * (RFC 3986 §6.2.2). Returns 0, or -1 for an invalid percent-encoding. */
int url_normalize_path(const char *path, size_t len, struct buf *out);

/* Appends the normalized query: parameters sorted by name, a repeated name's values kept in the
 * order received (their order can change the meaning), parameters whose name matches one of
 * <ignore> dropped (a trailing '*' matches a prefix: "utm_*"), empty parameters dropped.
 * <ignore> is NULL-terminated or NULL. Writes nothing when no parameter is left. */
void url_normalize_query(const char *query, size_t len, const char *const *ignore,
                         struct buf *out);

#endif
