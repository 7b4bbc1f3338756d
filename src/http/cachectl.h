/* Cache-Control directive parser (RFC 9111 §5.2) for requests and responses. Unknown directives
 * are ignored, as the RFC requires; invalid delta-seconds make a directive count as absent except
 * where the RFC says to treat it as stale (max-age on a response, handled by the cache policy). */
#ifndef AG_HTTP_CACHECTL_H
#define AG_HTTP_CACHECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHECTL_ABSENT (-1)

struct cache_control {
    bool no_store, no_cache, private_, public_, must_revalidate, proxy_revalidate,
        must_understand, no_transform, only_if_cached, immutable;
    bool no_cache_fields;  /* no-cache="field-list" (qualified form) */
    bool private_fields;   /* private="field-list" (qualified form) */
    bool max_age_invalid;  /* max-age present but not a valid delta-seconds */
    int64_t max_age;       /* seconds, or CACHECTL_ABSENT; values saturate at 2^31 */
    int64_t s_maxage;
    int64_t stale_while_revalidate;
    int64_t stale_if_error;
    int64_t min_fresh;
    int64_t max_stale;     /* INT64_MAX for max-stale without a value */
};

void cachectl_init(struct cache_control *cc);
/* Adds the directives of one Cache-Control field value; call once per header line. */
void cachectl_parse(struct cache_control *cc, const char *value, size_t len);

#endif
