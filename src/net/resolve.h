/* Resolver thread: upstream hostnames are resolved once at start, then refreshed in the background
 * every <refresh_ms>, so a loop thread never calls getaddrinfo. A loop thread reads the latest
 * addresses of a name under a tiny per-name lock (a copy of a few bytes). A failed refresh keeps
 * the previous addresses (a DNS outage does not take the upstream down). */
#ifndef AG_NET_RESOLVE_H
#define AG_NET_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/sock.h"

#define RESOLVE_MAX_ADDRS 8 /* addresses kept per name (rotated by resolve_get) */

struct resolver;
struct resolve_name;

/* Creates an idle resolver refreshing every <refresh_ms> (≥ 100). */
struct resolver *resolve_create(uint64_t refresh_ms);
/* Registers <host>:<port> and resolves it now (blocking: call at start). Returns the name handle
 * (owned by <r>) even when this first resolution fails, in which case <err> says why and
 * resolve_get() has nothing until a background refresh succeeds. Same host and port twice: same
 * handle. Not to be called after resolve_start(). */
struct resolve_name *resolve_add(struct resolver *r, const char *host, int port, char *err,
                                 size_t errlen);
/* Starts the background thread (only needed when names were added). Returns 0 or -1 with errno. */
int resolve_start(struct resolver *r);
/* Stops the thread (if started) and frees every name. */
void resolve_destroy(struct resolver *r);

/* Copies the address number <seq> modulo the count into <out> (pass a counter to rotate over
 * several A/AAAA records). Returns false when the name has no address yet. Thread-safe, cheap. */
bool resolve_get(struct resolve_name *n, uint64_t seq, struct sock_addr *out);
/* True once the name has an address (lock-free: a loop thread may ask per request). */
bool resolve_has_addr(const struct resolve_name *n);
/* Resolves every name now, in the calling thread (tests; the thread does the same on its timer). */
void resolve_refresh_all(struct resolver *r);

#endif
