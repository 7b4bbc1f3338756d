/* Private to the cache glue of the gateway (cachehook.c, cachebg.c, cachel2.c): the worker's cache
 * context, the per-request state, and the functions the three files share. */
#ifndef AG_GATEWAY_CACHEHOOK_PRIV_H
#define AG_GATEWAY_CACHEHOOK_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cache/coalesce.h"
#include "core/buf.h"
#include "core/loop.h"
#include "gateway/cachehook.h"
#include "gateway/filter.h"
#include "metrics/metrics.h"

struct gw_req;
struct gw_route;
struct gwthread;
struct chl2;
struct chbg;

/* A cached route's policy, built once per worker. */
struct chroute {
    bool enabled;
    struct policy_conf pc;
    char **vary; // NULL-terminated views of the config's lists
    char **ignore;
    size_t max_object;
    bool coalesce;
    const struct gw_route *gr;
};

/* Per loop thread. */
struct chthread {
    struct buf key;  // lookup key scratch (the hit path allocates nothing)
    struct chbg *bg; // background refreshes running on this thread (cachebg.c)
    char pad[64];
};

struct cachehook {
    struct gw_shared *sh;
    struct cache *cache;
    struct coalesce *co;
    struct chroute *routes;
    size_t nroutes;
    struct chthread *threads;
    size_t nthreads;
    struct chl2 *l2; // Redis L2, NULL when not configured
    struct keyhash *kh; // keyed hash of varied header values in keys (every route's pc)
    metrics_ref m_status[CACHE_STATUS_COUNT];
    metrics_ref m_coalesced, m_coalesce_timeouts, m_stores, m_not_stored, m_revalidated,
        m_stale_errors, m_bg_refresh, m_invalidations, m_l2_hits, m_l2_misses, m_l2_errors;
    metrics_ref g_objects, g_bytes, g_limit, g_evictions, g_expired, g_purged, g_purges, g_inflight;
};

/* A request parked behind a fetch in flight. */
struct chwait {
    struct coalesce_waiter w; // w.arg: the request, NULL once the request ended
    struct loop_timer timer;  // coalesce_timeout
    struct gw_req *r;
};

/* Cache state of one request that was not a plain hit. */
struct chreq {
    const struct chroute *route;
    enum cache_status st; // X-Cache of the answer
    struct policy_req preq;
    struct buf head; // own copy of the request head (r->req points into it)
    char *key;       // full key of the lookup; [0, base_len) is the coalescing key
    size_t key_len, base_len, primary_len;
    uint64_t path_gen;
    uint64_t l2_seq; // L2 purge sequence known when the request began (cachel2.c)
    int64_t req_wall_s;
    struct store_obj *stale; // entry kept for revalidation / stale-if-error
    bool add_validators;     // revalidate with the stored ETag / Last-Modified
    bool validators_sent;
    struct cache_fill *fill;        // entry being built from the response
    struct coalesce_flight *flight; // we lead this fetch
    struct chwait *wait;            // we wait for another's fetch
    bool unsafe;                    // invalidate on success
    char *inv_host, *inv_target;
    size_t inv_host_len, inv_target_len;
    void *l2;       // L2 lookup in progress (cachel2.c)
    bool l2_varied; // the L2 answered with a Vary marker: the second lookup runs
};

/* cachehook.c */
/* The cache filter's state slot of <r> (NULL when the route does not cache), and its value. */
struct chreq **cachehook__slot(struct gw_req *r);
struct chreq *cachehook__cr(struct gw_req *r);
void cachehook__count(struct gw_req *r, enum cache_status st);
/* Answers <r> from entry <o> and ends it. */
void cachehook__serve(struct gw_req *r, struct store_obj *o, uint64_t age_ms, enum cache_status st);
void cachehook__write_entry(struct gw_req *r, struct store_obj *o, uint64_t age_ms,
                            enum cache_status st);
bool cachehook__fetch_or_wait(struct gw_req *r, struct chreq *cr);
void cachehook__finish_flight(struct cachehook *ch, struct chreq *cr);

/* cachebg.c: refreshes entry <o> in the background (stale-while-revalidate), at most one refresh
 * per key at a time. The request (r->req, owned by <cr>) is copied. */
void chbg_refresh(struct cachehook *ch, struct gw_req *r, struct chreq *cr, struct store_obj *o);
/* Aborts the refreshes of <th> (thread stop: before the pools go). */
void chbg_thread_stop(struct cachehook *ch, struct gwthread *th);

/* cachel2.c: the Redis second level. */
struct chl2 *chl2_create(struct cachehook *ch);
void chl2_destroy(struct chl2 *l2);
/* The key-hash secret every gateway of this Redis uses: <proposal> unless another gateway set
 * one first (blocking, bounded: at the worker's start). Returns its length in <out>, or -1. */
long chl2_agree_secret(struct chl2 *l, const char *proposal, size_t plen, char *out,
                       size_t outlen);
void chl2_thread_start(struct cachehook *ch, struct gwthread *th);
void chl2_thread_stop(struct cachehook *ch, struct gwthread *th);
/* L1 miss: true when an L2 lookup was started (it serves the hit or resumes the request:
 * gw_req_continue). */
bool chl2_lookup(struct cachehook *ch, struct gw_req *r, struct chreq *cr);
void chl2_request_end(struct cachehook *ch, struct gw_req *r, struct chreq *cr);
/* An entry was stored in L1 (fill or 304 refresh): write it to L2 too, stamped with the purge
 * sequence <seq> its request began with (chl2_seq then). */
void chl2_store(struct cachehook *ch, struct gwthread *th, struct store_obj *o, uint64_t seq);
/* Publishes a purge by tag (<soft>: stale, not gone) to the other gateways and L2 (<th> NULL:
 * from the admin thread). */
void chl2_publish_tag(struct cachehook *ch, struct gwthread *th, const char *tag, size_t len,
                      bool soft);
/* The highest L2 purge sequence this worker learned (0 without L2): any thread. */
uint64_t chl2_seq(const struct chl2 *l);
/* Appends the L2's view to the /stats l2 object (",\"mode\":...", no braces): mode, nodes known
 * and connected, slots covered, failovers, redirects, the key prefix, each node's role,
 * connection and errors (any thread). Nothing without L2. */
void chl2_stats_json(struct chl2 *l, struct buf *out);
/* Publishes an invalidation to the other gateways (<th> NULL: from the admin thread). */
void chl2_publish(struct cachehook *ch, struct gwthread *th, const char *path, size_t len,
                  bool prefix);

#endif
