/* Route matching for the gateway: exact, prefix and glob patterns compiled once at config load
 * into a table that a loop thread searches without allocating. Knows paths and patterns only;
 * what a route does (upstream, cache, limits) stays with the caller's index. */
#ifndef AG_GATEWAY_ROUTE_H
#define AG_GATEWAY_ROUTE_H

#include <stddef.h>

struct route_table;

enum route_kind { ROUTE_EXACT, ROUTE_PREFIX, ROUTE_GLOB };

/* Pattern forms:
 *   "= /path"  or "=/path"  exact match only;
 *   "/a/ *.json" (no space), "/v?/x"
 *                           glob: '*' matches any run of bytes except '/', '**' any run
 *                           including '/', '?' one byte other than '/';
 *   "/api/users/"           prefix (anything else).
 * Precedence: an exact match wins; otherwise the most specific of the matching prefix and glob
 * patterns, specificity being the number of literal bytes; ties go to the earlier pattern. */
/* Compiles <n> patterns, their kind inferred from the text as described above; route_match()
 * returns indexes into this array. Returns NULL and writes a message for people into <err> when a
 * pattern is invalid (empty, or not starting with '/'). */
struct route_table *route_table_create(const char *const *patterns, size_t n, char *err,
                                       size_t errlen);
/* Same, with the kind of each pattern given (the config decided it); patterns carry no "=". */
struct route_table *route_table_create_kinds(const char *const *patterns,
                                             const enum route_kind *kinds, size_t n, char *err,
                                             size_t errlen);
void route_table_destroy(struct route_table *t);

/* Index of the route for <path>[0,<len>) (the path without the query), or -1 when none matches. */
int route_match(const struct route_table *t, const char *path, size_t len);

/* Same, considering only the patterns for which <ok>(<arg>, index) is true (routes restricted to
 * a Host or to methods): the best acceptable pattern wins, in the same precedence. */
typedef int route_filter_cb(void *arg, size_t index);
int route_match_filtered(const struct route_table *t, const char *path, size_t len,
                         route_filter_cb *ok, void *arg);

/* The kind and the literal text of pattern <i> as compiled (for /stats labels and docs). */
enum route_kind route_kind_of(const struct route_table *t, size_t i);

#endif
