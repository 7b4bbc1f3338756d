/* Rate limits shared by every gateway instance (`rate_limit: {shared: true}`), the Redis side: one
 * client of cache.redis (one node, a Cluster or a Sentinel-managed primary) on loop thread 0,
 * which every sync interval drains each shared route's table of the keys active since their last
 * report (rlimit_table_drain), sends each its admitted count in one atomic script (EVAL: the
 * global GCRA TAT moved and read back) and merges the answer into the key's cell. A request
 * never waits for Redis; Redis down, slow or wrong leaves each instance on its own count (the
 * fallback: counted, logged once per spell, a gauge) until a sync succeeds again. Keys in Redis
 * are keyed hashes (cache/keyhash.c) of route and key, under the hash tag of that hash. */
#ifndef AG_GATEWAY_RLSHARE_H
#define AG_GATEWAY_RLSHARE_H

#include <stddef.h>

#include "gateway/rlimit.h"

struct gw_shared;
struct gwthread;
struct rlshare;

/* The sync of a worker whose config has shared routes (cache.redis set: the loader checks it).
 * Agrees on the key-hash secret with the other gateways through Redis when the config gives
 * none (blocking, bounded: worker start only). */
struct rlshare *rlshare_create(struct gw_shared *sh);
void rlshare_destroy(struct rlshare *s);
/* Route <route>'s table <t> is shared (before the threads start). */
void rlshare_add(struct rlshare *s, size_t route, struct rlimit_table *t);
/* Loop thread 0 runs the sync; the others do nothing. */
void rlshare_thread_start(struct rlshare *s, struct gwthread *th);
void rlshare_thread_stop(struct rlshare *s, struct gwthread *th);
/* The Redis name of key bytes <k> (<n>) on <route> (any thread). */
void rlshare_name(const struct rlshare *s, size_t route, const unsigned char *k, size_t n,
                  char name[RLIMIT_NAME_LEN]);

#endif
