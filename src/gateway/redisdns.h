/* The address of a Redis host given by name, kept fresh by a resolver thread of its own, so that
 * a connect on a loop thread never resolves (hiredis would call a blocking getaddrinfo). One
 * mechanism for every Redis client of the gateway: the cache's L2 and the shared rate limits. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct resolver;
struct resolve_name;

struct redisdns {
    struct resolver *resolver;
    struct resolve_name *name; // NULL: the URL gives an address (or a unix socket): nothing to do
    _Atomic uint64_t seq;      // rotates over the name's addresses, one per connect
};

/* Starts the resolver when <url> names its host; <who> ("cache l2", "rate limit") prefixes the
 * warnings. <d> zeroed before. */
void redisdns_start(struct redisdns *d, const char *url, const char *who);
/* l2redis_conf.resolve with resolve_arg = <d>: the host's current address, numeric; -1 when
 * the name has no address yet. */
int redisdns_resolve(void *arg, char *ip, size_t iplen);
/* What l2redis_conf.resolve should be: redisdns_resolve when there is a name, else NULL. */
int (*redisdns_hook(const struct redisdns *d))(void *, char *, size_t);
void redisdns_stop(struct redisdns *d);
