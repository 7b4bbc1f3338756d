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

/* url_path_canon() flags. */
#define URL_CANON_MERGE_SLASHES 1u        /* "//" counts as "/" (before dot segments) */
#define URL_CANON_REJECT_ENCODED_SLASH 2u /* %2F and %5C are refused; else kept encoded */

/* The path a request is routed and forwarded by: percent-encodings of unreserved characters
 * decoded (%2E is '.', so /a/%2e%2e/b is /b), other encodings kept and upper-cased, "//" merged
 * with URL_CANON_MERGE_SLASHES, then "." and ".." segments removed (RFC 3986 §5.2.4). The result
 * is in url_normalize_path() normal form. <out> has room for max(<len>, 1) bytes (the result is
 * never longer); its length goes to <out_len>. Returns 0, or -1 with a static reason in <why>
 * for a path that must be refused (400): an invalid percent-encoding, %00, %2F or %5C with
 * URL_CANON_REJECT_ENCODED_SLASH, a raw backslash, a dot segment with parameters ("..;",
 * Tomcat's dot segment), a ".." that climbs above the root, no leading '/'. */
int url_path_canon(const char *path, size_t len, unsigned flags, char *out, size_t *out_len,
                   const char **why);

/* Appends the normalized query: parameters sorted by name, a repeated name's values kept in the
 * order received (their order can change the meaning), parameters whose name matches one of
 * <ignore> dropped (a trailing '*' matches a prefix: "utm_*"), empty parameters dropped.
 * <ignore> is NULL-terminated or NULL. Writes nothing when no parameter is left. A query with a
 * ';' is appended as sent, neither sorted nor filtered (origins disagree on whether ';' separates
 * parameters: "utm_source=x;callback=evil" must not be keyed as the bare path). */
void url_normalize_query(const char *query, size_t len, const char *const *ignore,
                         struct buf *out);

#endif
