/* RFC 9111 for a shared cache, the parts that matter to an API gateway: whether a request may use
 * the cache, whether a response may be stored, how long it stays fresh, how old it is, which
 * request header values make up its key. Pure functions over parsed headers and a clock passed in;
 * no I/O, no store access (store.c keeps the bytes). */
#ifndef AG_CACHE_POLICY_H
#define AG_CACHE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/cachectl.h"
#include "http/h1parse.h"

/* The name this cache answers to in Surrogate-Control targets and Surrogate-Capability. */
#define POLICY_SURROGATE_TARGET "apigate"

struct keyhash;

/* The route's cache settings, as the cache sees them (the gateway copies them from its config). */
struct policy_conf {
    uint64_t ttl_ms;                 /* default freshness; with override, the freshness */
    bool override;                   /* ignore the origin's no-store/private/no-cache/max-age */
    uint64_t swr_ms;                 /* stale-while-revalidate default (origin's directive wins) */
    uint64_t sie_ms;                 /* stale-if-error default (origin's directive wins) */
    uint64_t max_stale_ms;           /* cap on any grace window */
    const char *const *vary;         /* request headers always in the key (NULL-terminated), e.g.
                                        "Authorization" for per-user caching */
    const char *const *ignore_query; /* query parameters dropped from the key */
    const int *statuses; /* cacheable statuses; NULL: RFC 9110's heuristically cacheable */
    size_t nstatuses;
    bool allow_set_cookie;    /* store responses that carry Set-Cookie */
    uint64_t negative_ttl_ms; /* freshness of 404/410 the origin gives none for; with override,
                                 0 means 404/410 are not stored */
    const char *tag_header;   /* response header naming the entry's cache tags (stored with it,
                                 never in its stored head); NULL: none */
    const struct keyhash *key_hash; /* keyed hash of the varied header values in keys; NULL:
                                       the values in clear (unit tests only: the gateway always
                                       sets one, keys may leave the process through Redis) */
};

/* What to do with a request. */
enum policy_req_action {
    POLICY_REQ_CACHE = 0, /* look up, maybe store */
    POLICY_REQ_BYPASS,    /* not cacheable: forward, never store (X-Cache: BYPASS) */
    POLICY_REQ_UNSAFE,    /* unsafe method: forward, invalidate on success */
};

struct policy_req {
    enum policy_req_action action;
    const char *why;         /* static reason for BYPASS ("authorization", "method") */
    struct cache_control cc; /* request Cache-Control */
    bool no_cache;           /* must revalidate before serving (no-cache, Pragma: no-cache,
                                max-age=0) */
    bool no_store;           /* must not store the response */
};

/* Classifies a request. A request carrying Authorization or Cookie is BYPASS unless the route's
 * vary list names that header (then each user gets their own entry). */
void policy_classify_request(const struct policy_conf *pc, const struct h1_request *req,
                             struct policy_req *out);

/* Freshness facts computed once when a response is stored. */
struct policy_fresh {
    uint64_t lifetime_ms;    /* freshness lifetime */
    uint64_t initial_age_ms; /* corrected initial age (RFC 9111 §4.2.3) at response time */
    uint64_t swr_ms;         /* stale-while-revalidate window after expiry */
    uint64_t sie_ms;         /* stale-if-error window after expiry */
    bool no_cache;           /* stored, but must be revalidated before each use */
    bool must_revalidate;    /* once stale, never served stale (except the error path: no) */
    bool has_validator;      /* ETag or Last-Modified present */
};

/* Decides whether a response to <req> may be stored. Returns NULL when it may, or a static reason
 * ("no-store", "private", "status", "vary-star", "set-cookie", "authorization", "no-freshness").
 * When storable, fills <f> using <now_s> (wall clock) for Date/Expires arithmetic, and
 * <request_time_s>/<response_time_s> for the age correction. */
const char *policy_storable(const struct policy_conf *pc, const struct h1_request *req,
                            const struct policy_req *preq, const struct h1_response *res,
                            int64_t request_time_s, int64_t response_time_s,
                            struct policy_fresh *f);

/* Current age in ms of an entry stored at <stored_ms> (monotonic) with <initial_age_ms>. */
static inline uint64_t policy_age_ms(uint64_t initial_age_ms, uint64_t stored_ms, uint64_t now_ms)
{
    return initial_age_ms + (now_ms > stored_ms ? now_ms - stored_ms : 0);
}

/* How a stored entry may be used for a request. */
enum policy_use {
    POLICY_USE_FRESH = 0,  /* serve it */
    POLICY_USE_STALE_SWR,  /* serve it and revalidate in the background */
    POLICY_USE_REVALIDATE, /* must ask the origin first (stale or no-cache); the entry may serve
                              a 304 refresh or stale-if-error */
};
enum policy_use policy_usable(const struct policy_fresh *f, uint64_t age_ms,
                              const struct policy_req *preq);
/* True when an entry of <age_ms> may still be served because the origin failed. */
bool policy_stale_if_error_ok(const struct policy_fresh *f, uint64_t age_ms,
                              const struct policy_req *preq);

/* Appends the cache key of <req> to <out>: "<GET|HEAD class> <host><normalized path>?<normalized
 * query>" — the primary key — and returns its length; then appends, for each header of the route's
 * vary list and of <vary_names> (the origin's Vary header value, may be NULL), "\n<name>:<value>",
 * <value> being the keyed hash (pc->key_hash, 32 hex digits) of the field's joined values.
 * Returns -1 when the path is not in normal form (url_normalize_path() would change it, or cannot
 * normalize it): the request is then not cached. The gateway routes and forwards the canonical
 * path (url_path_canon), which is in normal form, so this is a guard for other callers. */
long policy_build_key(const struct policy_conf *pc, const struct h1_request *req,
                      const char *vary_names, size_t vary_len, struct buf *out);

/* Request headers an origin may act on (a rewritten URL or method, another host or scheme) and
 * that no key holds: forwarded on a cached route, one client's value picks the answer stored for
 * everyone (X-Original-URL: /evil served for /u/x). NULL-terminated, lower case. */
extern const char *const policy_unkeyed_headers[];

/* True when the request header <name>[0,<len>) must not be forwarded on a route cached under
 * <pc>: it is on policy_unkeyed_headers and the route's vary list does not name it (a route that
 * needs one keys on it by naming it in vary). */
bool policy_strip_request_header(const struct policy_conf *pc, const char *name, size_t len);

/* True when <status> is cacheable under <pc>. */
bool policy_status_cacheable(const struct policy_conf *pc, int status);

#endif
