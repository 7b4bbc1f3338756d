/* Glue between the request path and the response cache. A request of a cached route goes:
 *   classify (policy.c) -> BYPASS / UNSAFE: forward; X-Cache: BYPASS; invalidate after a success
 *   lookup (cache.c)    -> fresh: HIT, one writev; within stale-while-revalidate: STALE + a
 *                          background refresh (cachebg.c); else EXPIRED (revalidate with the stored
 *                          validators, the entry kept for a 304 or stale-if-error) or MISS
 *   coalesce.c          -> the first miss of a key leads the fetch, the others park until it is
 *                          stored and look up again (bounded by coalesce_timeout)
 *   proxy.c streams the response while cache_fill copies it (up to max_object_size).
 * Per-request state (struct chreq) is allocated only on the miss path; a hit allocates nothing. */
#include "gateway/cachehook.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "cache/cache.h"
#include "cache/coalesce.h"
#include "cache/keyhash.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/cachehook_priv.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/req.h"
#include "gateway/trace.h"
#include "http/headers.h"

/* ---- setup ---- */

static void cachehook__route_conf(struct chroute *r, const struct gw_route *gr,
                                  const struct gw_config *cfg)
{
    const struct gw_route_cache *rc = &gr->cache;
    r->enabled = rc->enabled;
    r->vary = xcalloc(rc->vary.n + 1, sizeof(char *));
    for (size_t i = 0; i < rc->vary.n; i++)
        r->vary[i] = rc->vary.v[i];
    r->ignore = xcalloc(rc->ignore_query.n + 1, sizeof(char *));
    for (size_t i = 0; i < rc->ignore_query.n; i++)
        r->ignore[i] = rc->ignore_query.v[i];
    struct policy_conf *pc = &r->pc;
    pc->ttl_ms = rc->ttl_ms;
    pc->override = rc->override;
    pc->swr_ms = rc->stale_while_revalidate_ms;
    pc->sie_ms = rc->stale_if_error_ms;
    pc->max_stale_ms = cfg->cache.max_stale_ms;
    pc->vary = (const char *const *)r->vary;
    pc->ignore_query = (const char *const *)r->ignore;
    pc->statuses = rc->statuses;
    pc->nstatuses = rc->nstatuses;
    pc->allow_set_cookie = rc->allow_set_cookie;
    pc->tag_header = rc->tag_header;
    pc->negative_ttl_ms = rc->negative_ttl_ms;
    r->max_object = rc->max_object_size ? rc->max_object_size : cfg->cache.max_object_size;
    r->coalesce = cfg->cache.coalesce && rc->coalesce;
    r->gr = gr;
}

static void cachehook__register_metrics(struct cachehook *ch, struct metrics *m)
{
    const char *l_st[] = {"status", NULL};
    int f = metrics_family(m, METRICS_COUNTER, "apigate_cache_requests_total",
                           "Requests of cached routes by cache outcome (the X-Cache value).", l_st);
    static const char *const names[CACHE_STATUS_COUNT] = {"",     "hit",     "stale",
                                                          "miss", "expired", "bypass"};
    for (int i = 1; i < CACHE_STATUS_COUNT; i++)
        ch->m_status[i] = metrics_series1(m, f, names[i]);
    ch->m_status[0] = METRICS_REF_NONE;
#define CTR(field, name, help)                                                                     \
    f = metrics_family(m, METRICS_COUNTER, name, help, NULL);                                      \
    ch->field = metrics_series1(m, f, NULL)
#define GSET(field, name, help)                                                                    \
    f = metrics_family(m, METRICS_GAUGE_SET, name, help, NULL);                                    \
    ch->field = metrics_series1(m, f, NULL)
/* counters the store keeps itself, copied in at scrape: exposed as counters (promtool) */
#define CSET(field, name, help)                                                                    \
    f = metrics_family(m, METRICS_COUNTER_SET, name, help, NULL);                                  \
    ch->field = metrics_series1(m, f, NULL)
    CTR(m_coalesced, "apigate_cache_coalesced_total",
        "Misses that waited for a fetch of the same key already in flight.");
    CTR(m_coalesce_timeouts, "apigate_cache_coalesce_timeouts_total",
        "Coalesced waiters that gave up after coalesce_timeout and fetched themselves.");
    CTR(m_stores, "apigate_cache_stores_total", "Responses stored in the cache.");
    CTR(m_not_stored, "apigate_cache_not_stored_total",
        "Responses of cached routes not stored (policy, size).");
    CTR(m_revalidated, "apigate_cache_revalidated_total",
        "Stale entries refreshed by a 304 from the origin.");
    CTR(m_stale_errors, "apigate_cache_stale_if_error_total",
        "Stale entries served because the origin failed (stale-if-error).");
    CTR(m_bg_refresh, "apigate_cache_background_refreshes_total",
        "Background refreshes started (stale-while-revalidate).");
    CTR(m_invalidations, "apigate_cache_invalidations_total",
        "URIs invalidated after successful unsafe requests.");
    CTR(m_l2_hits, "apigate_cache_l2_hits_total", "L1 misses answered by the Redis L2.");
    CTR(m_l2_misses, "apigate_cache_l2_misses_total", "L1 misses the Redis L2 did not have.");
    CTR(m_l2_errors, "apigate_cache_l2_errors_total",
        "Redis L2 operations that failed or timed out.");
    GSET(g_objects, "apigate_cache_objects", "Objects in the in-process cache.");
    GSET(g_bytes, "apigate_cache_bytes", "Bytes charged in the in-process cache.");
    GSET(g_limit, "apigate_cache_limit_bytes", "Byte limit of the in-process cache.");
    CSET(g_evictions, "apigate_cache_evictions_total", "Objects evicted to make room.");
    CSET(g_expired, "apigate_cache_expired_total", "Objects dropped because they expired.");
    CSET(g_purged, "apigate_cache_purged_total", "Objects removed by invalidation or purge.");
    CSET(g_purges, "apigate_cache_purges_total", "Invalidations and purges applied.");
    GSET(g_inflight, "apigate_cache_fetches_in_flight", "Coalesced fetches in progress.");
#undef CTR
#undef GSET
#undef CSET
}

/* The secret of the keys' header-value hashes: the config's; else one agreed through Redis, so
 * every gateway of the L2 keys alike; else a random one (entries then stay this worker's). */
static struct keyhash *cachehook__key_hash(struct cachehook *ch, const struct gw_config *cfg)
{
    if (cfg->cache.key_secret_data != NULL)
        return keyhash_create(cfg->cache.key_secret_data, cfg->cache.key_secret_len);
    unsigned char rnd[32];
    char proposal[2 * sizeof(rnd)], agreed[256];
    if (keyhash_random(rnd, sizeof(rnd)) != 0) {
        fprintf(stderr, "fatal: cache: no random bytes for the key secret\n");
        abort();
    }
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(rnd); i++) {
        proposal[2 * i] = hx[rnd[i] >> 4];
        proposal[2 * i + 1] = hx[rnd[i] & 15];
    }
    long n = ch->l2 != NULL ? chl2_agree_secret(ch->l2, proposal, sizeof(proposal), agreed,
                                                sizeof(agreed))
                            : -1;
    struct keyhash *kh = n > 0 ? keyhash_create(agreed, (size_t)n)
                               : keyhash_create(proposal, sizeof(proposal));
    explicit_bzero(agreed, sizeof(agreed));
    explicit_bzero(proposal, sizeof(proposal));
    explicit_bzero(rnd, sizeof(rnd));
    return kh;
}

static struct cachehook *cachehook_create(struct gw_shared *sh)
{
    const struct gw_config *cfg = sh->cfg;
    bool any = false;
    for (size_t i = 0; i < cfg->nroutes; i++)
        any = any || cfg->routes[i].cache.enabled;
    if (!any || cfg->cache.memory == 0)
        return NULL;
    struct cachehook *ch = xcalloc(1, sizeof(*ch));
    ch->sh = sh;
    unsigned shards = (unsigned)cfg->cache.shards;
    if (shards == 0)
        shards = (unsigned)(4 * (sh->nthreads ? sh->nthreads : 1));
    if (shards < 16)
        shards = 16;
    ch->cache = cache_create(cfg->cache.memory, shards, cfg->cache.max_stale_ms);
    ch->co = coalesce_create();
    ch->nroutes = cfg->nroutes;
    ch->routes = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*ch->routes));
    for (size_t i = 0; i < cfg->nroutes; i++)
        cachehook__route_conf(&ch->routes[i], &cfg->routes[i], cfg);
    ch->nthreads = sh->nthreads ? sh->nthreads : 1;
    ch->threads = xcalloc(ch->nthreads, sizeof(*ch->threads));
    for (size_t i = 0; i < ch->nthreads; i++)
        buf_init(&ch->threads[i].key);
    cachehook__register_metrics(ch, sh->metrics);
    metrics_gauge_set(sh->metrics, ch->g_limit, (int64_t)cfg->cache.memory);
    ch->l2 = chl2_create(ch);
    ch->kh = cachehook__key_hash(ch, cfg);
    for (size_t i = 0; i < cfg->nroutes; i++)
        ch->routes[i].pc.key_hash = ch->kh;
    return ch;
}

static void cachehook_destroy(struct cachehook *ch)
{
    if (ch == NULL)
        return;
    chl2_destroy(ch->l2);
    for (size_t i = 0; i < ch->nroutes; i++) {
        free(ch->routes[i].vary);
        free(ch->routes[i].ignore);
    }
    free(ch->routes);
    keyhash_destroy(ch->kh);
    for (size_t i = 0; i < ch->nthreads; i++)
        buf_deinit(&ch->threads[i].key);
    free(ch->threads);
    coalesce_destroy(ch->co);
    cache_destroy(ch->cache);
    free(ch);
}

static void cachehook_thread_start(struct gwthread *th)
{
    struct cachehook *ch = th->sh->cache;
    if (ch != NULL)
        chl2_thread_start(ch, th);
}

static void cachehook_thread_stop(struct gwthread *th)
{
    struct cachehook *ch = th->sh->cache;
    if (ch != NULL) {
        chbg_thread_stop(ch, th);
        chl2_thread_stop(ch, th);
    }
}

/* ---- per-request state ---- */

struct chreq **cachehook__slot(struct gw_req *r)
{
    return filter_state(r, &cachehook_filter);
}

struct chreq *cachehook__cr(struct gw_req *r)
{
    struct chreq **slot = cachehook__slot(r);
    return slot != NULL ? *slot : NULL;
}

static struct chreq *cachehook__creq(struct gw_req *r, const struct chroute *rte)
{
    struct chreq *cr = xcalloc(1, sizeof(*cr));
    cr->route = rte;
    cr->l2_seq = chl2_seq(r->th->sh->cache->l2);
    buf_init(&cr->head);
    *cachehook__slot(r) = cr;
    return cr;
}

/* Copies the request head into the chreq and re-points r->req at the copy: the originals are
 * slices of r->in, which the next pipelined request may overwrite while this one waits or
 * streams, and the cache reads them again at response time. */
static int cachehook__own_request(struct gw_req *r, struct chreq *cr)
{
    struct h1_request *req = &r->req;
    struct buf *b = &cr->head;
    buf_reset(b);
    buf_append(b, req->method, req->method_len);
    buf_append(b, " ", 1);
    buf_append(b, req->target, req->target_len);
    buf_append_str(b, req->minor_version == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        buf_append(b, h->name, h->name_len);
        buf_append(b, ": ", 2);
        buf_append(b, h->value, h->value_len);
        buf_append(b, "\r\n", 2);
    }
    buf_append(b, "\r\n", 2);
    struct h1_limits lim = {
        .max_request_line = b->len + 1, .max_head = b->len + 1, .max_headers = r->max_hdrs};
    struct h1_request copy;
    if (h1_parse_request(b->data, b->len, &copy, r->hdrs, r->max_hdrs, &lim) <= 0)
        return -1;
    copy.https = req->https; // not in the head: the session's
    *req = copy;
    return 0;
}

void cachehook__finish_flight(struct cachehook *ch, struct chreq *cr)
{
    if (cr->flight != NULL) {
        coalesce_finish(ch->co, cr->flight);
        cr->flight = NULL;
    }
}

/* The request is over (answered, or the client went away): drops references, wakes waiters of
 * a fetch this request led, cancels a wait. */
static void cachehook__request_end(struct gw_req *r, void *st)
{
    (void)st;
    struct chreq *cr = cachehook__cr(r);
    if (cr == NULL)
        return;
    struct cachehook *ch = r->th->sh->cache;
    *cachehook__slot(r) = NULL;
    if (cr->wait != NULL) {
        struct chwait *w = cr->wait;
        loop_timer_stop(r->th->loop, &w->timer);
        if (coalesce_cancel(ch->co, &w->w))
            free(w);
        else
            w->w.arg = NULL; /* the wake is posted: it frees the waiter */
        cr->wait = NULL;
    }
    cache_fill_abort(cr->fill);
    cr->fill = NULL;
    cachehook__finish_flight(ch, cr);
    cache_release(ch->cache, cr->stale);
    chl2_request_end(ch, r, cr);
    buf_deinit(&cr->head);
    free(cr->key);
    free(cr->inv_host);
    free(cr->inv_target);
    free(cr);
}

/* ---- serving ---- */

static const char *cachehook__conn_header(const struct gw_req *r)
{
    if (!r->keep_alive)
        return "Connection: close\r\n";
    return r->req.minor_version == 0 ? "Connection: keep-alive\r\n" : NULL;
}

void cachehook__count(struct gw_req *r, enum cache_status st)
{
    struct cachehook *ch = r->th->sh->cache;
    metrics_counter_inc(r->th->ms, ch->m_status[st]);
}

/* With server.server_timing, turns the hit block's final blank line into a Server-Timing header
 * (cache outcome and the time so far) and the blank line. Returns the new block length. */
static void cachehook__timing(struct gw_req *r, enum cache_status st, struct gw_head *h)
{
    if (!r->th->sh->cfg->server.server_timing)
        return;
    struct trace_timing tt = {.cache = cache_status_name(st),
                              .pool_us = -1,
                              .upstream_us = -1,
                              .total_us =
                                  r->t_start_us ? (int64_t)(clock_now_us() - r->t_start_us) : -1};
    char v[96];
    size_t n = trace_server_timing(v, sizeof(v), &tt);
    if (n > 0)
        gw_head_add_copy(h, "Server-Timing", 13, v, n);
}

/* ---- stored variants (filter.h) ---- */

/* What an answer from a stored entry is made of: the entry, or a variant of it. */
struct chpick {
    const struct cache_entry *e; // to answer from
    const char *extra;           // header lines every answer of the stored entry carries
    struct store_obj *ref;       // a stored variant held until the answer is written
    struct cache_entry *own;     // a variant the store refused: served once, then freed
};

/* A stored entry as the filters' variant hook sees it. */
static struct filter_stored cachehook__stored(const struct cache_entry *e)
{
    return (struct filter_stored){.head = e->data,
                                  .head_len = e->head_len,
                                  .body = e->data + e->head_len,
                                  .body_len = e->body_len,
                                  .status = e->status,
                                  .memo = (_Atomic uint32_t *)&e->memo};
}

/* Picks the representation of entry <o> that <r> gets: the entry as it is, its stored variant,
 * or one derived now (once: stored for the next hits). -1 when none may go to this client (it
 * cannot take the stored coding and decoding failed). */
static int cachehook__pick(struct gw_req *r, struct store_obj *o, struct chpick *p)
{
    const struct cache_entry *e = o->payload;
    memset(p, 0, sizeof(*p));
    p->e = e;
    struct filter_stored s = cachehook__stored(e);
    struct filter_variant v;
    unsigned which = filter_variant(r, &s, &v);
    if (which == 0 || v.id == 0) {
        p->extra = v.extra;
        return 0;
    }
    AG_ASSERT(v.id < 32 && v.name != NULL);
    struct cachehook *ch = r->th->sh->cache;
    uint64_t now = loop_now_ms(r->th->loop);
    struct store_obj *old = NULL; // a variant from before a 304 refresh: its body is reused
    p->ref = cache_variant_lookup(ch->cache, o, v.name, now, &old);
    if (p->ref != NULL) {
        p->e = p->ref->payload; // the hot path of a compressed hit: stored bytes, no work
        return 0;
    }
    /* Derived once: concurrent hits (coalesced waiters waking together) do not all build the
     * same copy; the others get the entry as it is, which they accept too. */
    _Atomic uint32_t *busy = (_Atomic uint32_t *)&e->variant_busy;
    uint32_t bit = 1u << v.id;
    bool mine = (atomic_fetch_or_explicit(busy, bit, memory_order_acq_rel) & bit) == 0;
    if (!mine && !v.required) {
        if (old != NULL)
            cache_release(ch->cache, old);
        p->extra = v.extra;
        return 0;
    }
    struct filter_stored prev = {0};
    if (old != NULL) {
        const struct cache_entry *oe = old->payload;
        prev = (struct filter_stored){.head = oe->data,
                                      .head_len = oe->head_len,
                                      .body = oe->data + oe->head_len,
                                      .body_len = oe->body_len,
                                      .status = oe->status,
                                      .memo = (_Atomic uint32_t *)&oe->memo};
    }
    struct buf head = BUF_INIT, body = BUF_INIT;
    int rc = filter_derive(r, which, &s, &v, old != NULL ? &prev : NULL, &head, &body);
    if (old != NULL)
        cache_release(ch->cache, old);
    if (rc == 0) {
        struct cache_entry *ve = cache_variant_create(o, head.data, head.len, body.data, body.len);
        /* the route's object limit holds for variants too (a decoded body may be far larger) */
        bool fits = r->route >= 0 && (size_t)r->route < ch->nroutes &&
                    head.len + body.len <= ch->routes[r->route].max_object;
        p->ref = fits ? cache_variant_store(ch->cache, o, v.name, ve, now) : NULL;
        if (p->ref == NULL)
            p->own = ve; // larger than the store takes: served this once
        p->e = p->ref != NULL ? p->ref->payload : ve;
    }
    if (mine)
        atomic_fetch_and_explicit(busy, ~bit, memory_order_acq_rel);
    buf_deinit(&head);
    buf_deinit(&body);
    if (rc != 0) {
        if (v.required)
            return -1;
        p->extra = v.extra;
    }
    return 0;
}

static void cachehook__unpick(struct gw_req *r, struct chpick *p)
{
    if (p->ref != NULL)
        cache_release(r->th->sh->cache->cache, p->ref);
    cache_entry_destroy(p->own);
    memset(p, 0, sizeof(*p));
}

/* The head of an answer from stored entry <pk> to <r>: the stored fields (a 304 keeps its
 * validators and cache headers only), then the per-hit ones (Age, X-Cache), a variant filter's
 * (Vary), the connection's and Server-Timing. The stored head's bytes go along for an HTTP/1.1
 * session to copy as they are. <is304>: the client's validators matched. */
static void cachehook__head(struct gw_req *r, const struct chpick *pk, uint64_t age_ms,
                            enum cache_status st, bool is304, struct gw_head *h)
{
    const struct cache_entry *e = pk->e;
    gw_head_init(h, is304 ? 304 : e->status);
    if (!is304) {
        /* the stored head as it is: no field copied per hit */
        h->h1 = e->data;
        h->h1_len = e->head_len;
        h->h1_refs = e->fields;
        h->h1_nrefs = e->nfields;
        h->h1_lnames = e->lnames;
    } else {
        for (size_t i = 0; i < e->nfields; i++) {
            const struct h1_field_ref *f = &e->fields[i];
            if (cache_field_in_304(e, f))
                gw_head_add(h, e->data + f->name_off, f->name_len, e->data + f->value_off,
                            f->value_len);
        }
    }
    gw_head_add_u64(h, "Age", 3, age_ms / 1000);
    gw_head_add_str(h, "X-Cache", cache_status_name(st));
    if (pk->extra != NULL)
        gw_head_add_lines(h, pk->extra);
    const char *connh = cachehook__conn_header(r);
    if (connh != NULL)
        gw_head_add_lines(h, connh);
    if (!is304)
        cachehook__timing(r, st, h);
    if (!is304 && r->req.method_id != H1_M_HEAD) {
        h->body = H1_BODY_LENGTH;
        h->content_length = e->body_len;
    }
}

/* Answers the request from entry <o> (or the variant of it the client gets): a 304 when the
 * client's validators match, else the stored head and the per-hit fields, then the stored body
 * (one writev over HTTP/1.1 when the socket takes it). Ends the request. */
void cachehook__serve(struct gw_req *r, struct store_obj *o, uint64_t age_ms, enum cache_status st)
{
    struct chpick pk;
    if (cachehook__pick(r, o, &pk) == -1) {
        cachehook__count(r, st);
        gw_req_respond_error(r, 502, "bad_gateway",
                             "the stored response is in a coding the client does not accept and "
                             "could not be decoded", NULL);
        return;
    }
    const struct cache_entry *e = pk.e;
    bool is304 = e->status >= 200 && e->status < 300 && cache_conditional_match(e, &r->req);
    struct gw_head h;
    cachehook__head(r, &pk, age_ms, st, is304, &h);
    r->cache_served = cache_status_name(st); // a fresh hit has no chreq to carry it
    cachehook__count(r, st);
    gw_req_head(r, &h);
    gw_head_deinit(&h);
    struct iovec iov = {.iov_base = e->data + e->head_len, .iov_len = e->body_len};
    /* what the client does not take at once is copied by the session: the entry may go */
    int rc = gw_req_sendv(r, &iov, h.body == H1_BODY_LENGTH && e->body_len > 0 ? 1 : 0);
    cachehook__unpick(r, &pk);
    if (rc == -1)
        return;
    gw_req_end(r);
}

/* ---- request start ---- */

static void cachehook__wake(struct loop *loop, void *arg);

static void cachehook__wait_timeout(struct loop *loop, void *arg)
{
    (void)loop;
    struct chwait *w = arg;
    struct gw_req *r = w->r;
    struct cachehook *ch = r->th->sh->cache;
    if (!coalesce_cancel(ch->co, &w->w))
        return; /* the leader finished meanwhile: the wake is on its way */
    cachehook__cr(r)->wait = NULL;
    free(w);
    metrics_counter_inc(r->th->ms, ch->m_coalesce_timeouts);
    cachehook__count(r, cachehook__cr(r)->st);
    gw_req_continue(r);
}

/* The fetch for this key is done (or abandoned): look up again; fetch ourselves when it brought
 * nothing usable. */
static void cachehook__wake(struct loop *loop, void *arg)
{
    struct chwait *w = arg;
    if (w->w.arg == NULL) {
        free(w); /* the request ended while the wake was posted */
        return;
    }
    struct gw_req *r = w->r;
    loop_timer_stop(loop, &w->timer);
    struct chreq *cr = cachehook__cr(r);
    cr->wait = NULL;
    free(w);
    struct cachehook *ch = r->th->sh->cache;
    struct chthread *t = &ch->threads[r->th->index];
    struct cache_found f;
    if (cache_lookup(ch->cache, &cr->route->pc, &r->req, &cr->preq, loop_now_ms(loop), &t->key,
                     &f) == 0 &&
        f.obj != NULL && (f.use == POLICY_USE_FRESH || f.use == POLICY_USE_STALE_SWR)) {
        struct store_obj *o = f.obj;
        cachehook__serve(r, o, f.age_ms, f.use == POLICY_USE_FRESH ? CACHE_HIT : CACHE_STALE);
        cache_release(ch->cache, o);
        return;
    }
    if (f.obj != NULL)
        cache_release(ch->cache, f.obj);
    cachehook__count(r, cr->st);
    gw_req_continue(r);
}

/* A miss or a revalidation: lead the fetch of the key, or wait for the one in flight. Returns
 * true when parked. */
bool cachehook__fetch_or_wait(struct gw_req *r, struct chreq *cr)
{
    struct cachehook *ch = r->th->sh->cache;
    if (!cr->route->coalesce || r->req.method_id != H1_M_GET)
        return false;
    struct chwait *w = xcalloc(1, sizeof(*w));
    w->r = r;
    w->w.loop = r->th->loop;
    w->w.wake = cachehook__wake;
    w->w.arg = r;
    struct coalesce_flight *lead = NULL;
    if (coalesce_join(ch->co, cr->key, cr->base_len, &w->w, &lead) == COALESCE_LEADER) {
        free(w);
        cr->flight = lead;
        return false;
    }
    cr->wait = w;
    metrics_counter_inc(r->th->ms, ch->m_coalesced);
    loop_timer_init(&w->timer, cachehook__wait_timeout, w);
    loop_timer_start(r->th->loop, &w->timer, r->th->sh->cfg->cache.coalesce_timeout_ms);
    return true;
}

static void cachehook__keep_key(struct chreq *cr, const struct buf *key,
                                const struct cache_found *f)
{
    cr->key = xmalloc(key->len + 1);
    memcpy(cr->key, key->data, key->len);
    cr->key_len = f->key_len;
    cr->base_len = f->base_len;
    cr->primary_len = f->primary_len;
    cr->path_gen = f->path_gen;
}

/* The cache's on_request: a hit answers from memory, a coalesced miss or an L2 lookup waits (and
 * resumes the request later), anything else goes on to the upstream. */
static enum filter_verdict cachehook__on_request(struct gw_req *r, void *st, struct gw_err *err)
{
    (void)st;
    (void)err;
    struct cachehook *ch = r->th->sh->cache;
    if (ch == NULL || r->route < 0 || (size_t)r->route >= ch->nroutes ||
        !ch->routes[r->route].enabled)
        return FILTER_CONTINUE;
    const struct chroute *rte = &ch->routes[r->route];
    struct policy_req preq;
    policy_classify_request(&rte->pc, &r->req, &preq);
    if (preq.action == POLICY_REQ_UNSAFE) {
        /* forwarded; a success invalidates (the slices are copied: read at response time) */
        struct chreq *cr = cachehook__creq(r, rte);
        cr->preq = preq;
        cr->st = CACHE_BYPASS;
        cr->unsafe = true;
        const struct h1_request *req = &r->req;
        if (req->host != NULL) {
            cr->inv_host = xmalloc(req->host_len + 1);
            memcpy(cr->inv_host, req->host, req->host_len);
            cr->inv_host_len = req->host_len;
        }
        cr->inv_target = xmalloc(req->path_len + 1);
        memcpy(cr->inv_target, req->path, req->path_len);
        cr->inv_target_len = req->path_len;
        cachehook__count(r, CACHE_BYPASS);
        return FILTER_CONTINUE;
    }
    /* an Upgrade is a connection, not a representation: never served, stored or coalesced */
    if (preq.action == POLICY_REQ_BYPASS || r->req.body != H1_BODY_NONE || r->upgrade) {
        struct chreq *cr = cachehook__creq(r, rte);
        cr->st = CACHE_BYPASS;
        cachehook__count(r, CACHE_BYPASS);
        return FILTER_CONTINUE;
    }
    struct chthread *t = &ch->threads[r->th->index];
    uint64_t now = loop_now_ms(r->th->loop);
    struct cache_found f;
    if (cache_lookup(ch->cache, &rte->pc, &r->req, &preq, now, &t->key, &f) == -1) {
        struct chreq *cr = cachehook__creq(r, rte);
        cr->st = CACHE_BYPASS;
        cachehook__count(r, CACHE_BYPASS);
        return FILTER_CONTINUE;
    }
    if (f.obj != NULL && f.use == POLICY_USE_FRESH) {
        /* the hot path: no allocation, one writev */
        struct store_obj *o = f.obj;
        cachehook__serve(r, o, f.age_ms, CACHE_HIT);
        cache_release(ch->cache, o);
        return FILTER_RESPOND;
    }
    struct chreq *cr = cachehook__creq(r, rte);
    cr->preq = preq;
    cr->req_wall_s = clock_wall_s();
    cachehook__keep_key(cr, &t->key, &f);
    if (f.obj != NULL && f.use == POLICY_USE_STALE_SWR && r->req.method_id == H1_M_GET) {
        struct store_obj *o = f.obj;
        if (cachehook__own_request(r, cr) == 0)
            chbg_refresh(ch, r, cr, o);
        cachehook__serve(r, o, f.age_ms, CACHE_STALE);
        cache_release(ch->cache, o);
        return FILTER_RESPOND;
    }
    if (cachehook__own_request(r, cr) == -1) {
        cache_release(ch->cache, f.obj);
        cr->st = CACHE_BYPASS;
        cachehook__count(r, CACHE_BYPASS);
        return FILTER_CONTINUE;
    }
    if (f.obj != NULL) {
        /* stale (or no-cache): revalidate; the entry stays for a 304 or stale-if-error */
        cr->st = CACHE_EXPIRED;
        cr->stale = f.obj;
        const struct cache_entry *e = f.obj->payload;
        bool client_cond = headers_find(r->req.headers, r->req.nheaders, "if-none-match") ||
                           headers_find(r->req.headers, r->req.nheaders, "if-modified-since");
        cr->add_validators = r->req.method_id == H1_M_GET && !client_cond &&
                             (e->etag != NULL || e->last_modified != INT64_MIN);
    } else {
        cr->st = CACHE_MISS;
    }
    if (preq.cc.only_if_cached) {
        cachehook__count(r, cr->st);
        gw_req_respond_error(r, 504, "not_cached", "only-if-cached and no usable stored response",
                           NULL);
        return FILTER_RESPOND;
    }
    /* counted when the outcome is known: a waiter may end up a HIT */
    if (cachehook__fetch_or_wait(r, cr))
        return FILTER_WAIT;
    if (cr->st == CACHE_MISS && chl2_lookup(ch, r, cr))
        return FILTER_WAIT; /* asked the L2; it serves the hit or resumes the request */
    cachehook__count(r, cr->st);
    return FILTER_CONTINUE;
}

/* ---- upstream exchange ---- */

/* upstream_header_skip: a request header that is not in a cached route's key is not forwarded
 * (policy_unkeyed_headers, unless the route's vary names it). */
static bool cachehook__strip_header(struct gw_req *r, void *st, const char *name, size_t len)
{
    (void)st;
    const struct cachehook *ch = r->th->sh->cache;
    if (ch == NULL || r->route < 0 || (size_t)r->route >= ch->nroutes)
        return false;
    const struct chroute *rte = &ch->routes[r->route];
    return rte->enabled && policy_strip_request_header(&rte->pc, name, len);
}

/* The route's tag header never reaches a client (it is kept with the entry). */
static bool cachehook__hide_tags(struct gw_req *r, void *st, const char *name, size_t len)
{
    (void)st;
    const struct cachehook *ch = r->th->sh->cache;
    if (ch == NULL || r->route < 0 || (size_t)r->route >= ch->nroutes)
        return false;
    const char *t = ch->routes[r->route].pc.tag_header;
    return t != NULL && strlen(t) == len && headers_name_eq(name, len, t);
}

static void cachehook__upstream_headers(struct gw_req *r, void *st, struct buf *b)
{
    (void)st;
    struct chreq *cr = cachehook__cr(r);
    if (cr == NULL)
        return;
    /* tells the origin it may address Surrogate-Control directives to us */
    buf_append_str(b, "Surrogate-Capability: " POLICY_SURROGATE_TARGET "=\"Surrogate/1.0\"\r\n");
    if (!cr->add_validators || cr->stale == NULL)
        return;
    const struct cache_entry *e = cr->stale->payload;
    if (e->etag != NULL) {
        buf_append_str(b, "If-None-Match: ");
        buf_append(b, e->etag, e->etag_len);
        buf_append(b, "\r\n", 2);
    }
    if (e->last_modified != INT64_MIN) {
        char d[HTTP_DATE_LEN + 1];
        http_date_format(e->last_modified, d);
        buf_append_str(b, "If-Modified-Since: ");
        buf_append_str(b, d);
        buf_append(b, "\r\n", 2);
    }
    cr->validators_sent = true;
}

/* Tag template <t> of invalidate_tags with each {N} replaced by the Nth segment of <path> (up to
 * '?') after the route's literal <match> (from the root when the path does not start with it).
 * -1 when a segment is missing or empty: that tag is not purged. */
static int cachehook__tag_expand(const char *t, const char *match, const char *path, size_t plen,
                                 struct buf *out)
{
    const char *q = memchr(path, '?', plen);
    size_t pl = q != NULL ? (size_t)(q - path) : plen;
    size_t ml = match != NULL ? strlen(match) : 0;
    const char *rest = path;
    if (ml > 0 && pl >= ml && memcmp(path, match, ml) == 0)
        rest = path + ml;
    const char *end = path + pl;
    for (const char *p = t; *p != '\0'; p++) {
        char *e;
        long k = *p == '{' ? strtol(p + 1, &e, 10) : 0;
        if (*p != '{' || k < 1 || *e != '}') {
            buf_append(out, p, 1);
            continue;
        }
        const char *s = rest;
        while (s < end && *s == '/')
            s++;
        for (long j = 1; j < k && s < end; j++) { /* skip to segment k */
            const char *sl = memchr(s, '/', (size_t)(end - s));
            s = sl != NULL ? sl + 1 : end;
        }
        const char *sl = s < end ? memchr(s, '/', (size_t)(end - s)) : NULL;
        size_t sn = s < end ? (size_t)((sl != NULL ? sl : end) - s) : 0;
        if (sn == 0)
            return -1;
        buf_append(out, s, sn);
        p = e;
    }
    return out->len > 0 ? 0 : -1;
}

static void cachehook__invalidate(struct gw_req *r, struct chreq *cr, const struct h1_response *res)
{
    struct cachehook *ch = r->th->sh->cache;
    const struct gw_route_cache *rc = &cr->route->gr->cache;
    const char *host = cr->inv_host;
    size_t hl = cr->inv_host_len;
    size_t n = 0;
    if (rc->invalidate_self) {
        cache_invalidate_uri(ch->cache, host, hl, cr->inv_target, cr->inv_target_len);
        chl2_publish(ch, r->th, cr->inv_target, cr->inv_target_len, false);
        n++;
        for (size_t i = 0; i < res->nheaders; i++) {
            const struct h1_header *h = &res->headers[i];
            if ((h->name_len == 8 && headers_name_eq(h->name, 8, "location")) ||
                (h->name_len == 16 && headers_name_eq(h->name, 16, "content-location"))) {
                const char *lp;
                size_t ll;
                if (cache_uri_path(host, hl, h->value, h->value_len, &lp, &ll)) {
                    cache_invalidate_path(ch->cache, host, hl, lp, ll);
                    chl2_publish(ch, r->th, lp, ll, false);
                }
                n++;
            }
        }
    }
    for (size_t i = 0; i < rc->invalidate_tags.n; i++) {
        struct buf tag = BUF_INIT;
        if (cachehook__tag_expand(rc->invalidate_tags.v[i], cr->route->gr->path, cr->inv_target,
                                  cr->inv_target_len, &tag) == 0) {
            cache_purge_tag(ch->cache, tag.data, tag.len, false);
            chl2_publish_tag(ch, r->th, tag.data, tag.len, false);
            n++;
        }
        buf_deinit(&tag);
    }
    for (size_t i = 0; i < rc->invalidate.n; i++) {
        const char *p = rc->invalidate.v[i];
        size_t len = strlen(p);
        if (len > 0 && p[len - 1] == '*') {
            cache_purge(ch->cache, p, len - 1, true);
            chl2_publish(ch, r->th, p, len - 1, true);
        } else {
            cache_invalidate_path(ch->cache, host, hl, p, len);
            chl2_publish(ch, r->th, p, len, false);
        }
        n++;
    }
    metrics_counter_add(r->th->ms, ch->m_invalidations, n);
}

/* Response head parsed, before anything goes to the client. Returns 0: forward as usual (maybe
 * copying into a new entry); 1: the cache wrote the whole answer to r->out (a 304 refreshed the
 * entry) and the response has no body; 2: the cache wrote the answer (a stale copy instead of a
 * 5xx) and the upstream response must be dropped. */
static int cachehook__response_head(struct gw_req *r, const struct h1_response *res)
{
    struct chreq *cr = cachehook__cr(r);
    if (cr == NULL)
        return 0;
    struct cachehook *ch = r->th->sh->cache;
    if (cr->unsafe) {
        if (res->status >= 200 && res->status < 400)
            cachehook__invalidate(r, cr, res);
        return 0;
    }
    if (cr->st != CACHE_MISS && cr->st != CACHE_EXPIRED)
        return 0;
    uint64_t now = loop_now_ms(r->th->loop);
    int64_t wall = clock_wall_s();
    if (res->status == 304 && cr->stale != NULL && cr->validators_sent) {
        /* our revalidation succeeded: refresh the entry, answer from it */
        struct store_obj *o =
            cache_refresh_304(ch->cache, &cr->route->pc, &r->req, &cr->preq, cr->stale, res,
                              cr->req_wall_s, wall, now, cr->key, cr->key_len, cr->primary_len);
        metrics_counter_inc(r->th->ms, ch->m_revalidated);
        struct store_obj *use = o != NULL ? o : cr->stale;
        const struct cache_entry *e = use->payload;
        uint64_t age = policy_age_ms(e->fresh.initial_age_ms, e->stored_ms, now);
        cachehook__write_entry(r, use, age, CACHE_EXPIRED);
        if (o != NULL) {
            chl2_store(ch, r->th, o, cr->l2_seq);
            cache_release(ch->cache, o);
        }
        return 1;
    }
    if (res->status >= 500 && cr->stale != NULL) {
        const struct cache_entry *e = cr->stale->payload;
        uint64_t age = policy_age_ms(e->fresh.initial_age_ms, e->stored_ms, now);
        if (policy_stale_if_error_ok(&e->fresh, age, &cr->preq)) {
            metrics_counter_inc(r->th->ms, ch->m_stale_errors);
            cachehook__write_entry(r, cr->stale, age, CACHE_STALE);
            return 2;
        }
    }
    if (r->req.method_id != H1_M_GET)
        return 0;
    const char *why = NULL;
    cr->fill =
        cache_fill_begin(ch->cache, &cr->route->pc, &r->req, &cr->preq, res, cr->req_wall_s, wall,
                         now, cr->path_gen, cr->route->max_object, gwthread_date(r->th), &why);
    if (cr->fill == NULL)
        metrics_counter_inc(r->th->ms, ch->m_not_stored);
    return 0;
}

/* Queues the whole response of entry <o> (head, then the body into r->out) for the
 * revalidation and stale-if-error paths, which run inside the proxy's exchange; the proxy sends
 * it and ends the request. */
void cachehook__write_entry(struct gw_req *r, struct store_obj *o, uint64_t age_ms,
                            enum cache_status st)
{
    struct chpick pk;
    if (cachehook__pick(r, o, &pk) == -1) // cannot decode: the stored bytes, as the origin's
        pk = (struct chpick){.e = o->payload};
    const struct cache_entry *e = pk.e;
    bool is304 = e->status >= 200 && e->status < 300 && cache_conditional_match(e, &r->req);
    struct gw_head h;
    cachehook__head(r, &pk, age_ms, st, is304, &h);
    gw_req_head(r, &h);
    gw_head_deinit(&h);
    if (h.body == H1_BODY_LENGTH)
        buf_append(r->out, e->data + e->head_len, e->body_len);
    cachehook__unpick(r, &pk);
    if (cachehook__cr(r) != NULL)
        cachehook__cr(r)->st = st;
}

static const char *cachehook__status(const struct gw_req *r, const void *st)
{
    (void)r;
    const struct chreq *cr = *(struct chreq *const *)st;
    return cr != NULL && cr->st != CACHE_NONE ? cache_status_name(cr->st) : NULL;
}

static void cachehook__client_headers(struct gw_req *r, void *st, struct gw_head *h)
{
    (void)st;
    struct chreq *cr = cachehook__cr(r);
    if (cr == NULL && !r->head_sent) {
        /* refused before the cache was asked (a concurrency limit): not served from it */
        gw_head_add(h, "X-Cache", 7, "MISS", 4);
        r->cache_served = "MISS";
        return;
    }
    if (cr == NULL || cr->st == CACHE_NONE)
        return;
    gw_head_add_str(h, "X-Cache", cache_status_name(cr->st));
}

static void cachehook__response_body(struct gw_req *r, void *st, const char *p, size_t n)
{
    (void)st;
    struct chreq *cr = cachehook__cr(r);
    if (cr == NULL || cr->fill == NULL || n == 0)
        return;
    if (cache_fill_body(cr->fill, p, n) == -1) {
        cache_fill_abort(cr->fill);
        cr->fill = NULL;
        metrics_counter_inc(r->th->ms, r->th->sh->cache->m_not_stored);
    }
}

/* The response just stored as <o> went to this client re-encoded by a filter that kept the
 * whole encoded body (compression): stored as the variant this client's request picks, so the
 * first hit serves it instead of encoding the same body a second time. */
static void cachehook__adopt_variant(struct gw_req *r, struct store_obj *o)
{
    const struct cache_entry *e = o->payload;
    struct filter_stored s = cachehook__stored(e);
    struct filter_variant v;
    unsigned which = filter_variant(r, &s, &v);
    unsigned id = 0;
    const char *body = NULL;
    size_t len = 0;
    if (which == 0 || v.id == 0 || !filter_transformed(r, which, &id, &body, &len) || id != v.id)
        return;
    /* derive with the streamed bytes as <prev>: it takes them as they are and writes the
     * variant's head (its Content-Length, ETag) */
    struct filter_stored prev = {.head = e->data,
                                 .head_len = e->head_len,
                                 .body = body,
                                 .body_len = len,
                                 .status = e->status,
                                 .memo = (_Atomic uint32_t *)&e->memo};
    struct cachehook *ch = r->th->sh->cache;
    struct buf head = BUF_INIT, vbody = BUF_INIT;
    if (filter_derive(r, which, &s, &v, &prev, &head, &vbody) == 0 && r->route >= 0 &&
        (size_t)r->route < ch->nroutes &&
        head.len + vbody.len <= ch->routes[r->route].max_object) {
        struct cache_entry *ve =
            cache_variant_create(o, head.data, head.len, vbody.data, vbody.len);
        struct store_obj *vo =
            cache_variant_store(ch->cache, o, v.name, ve, loop_now_ms(r->th->loop));
        if (vo != NULL)
            cache_release(ch->cache, vo);
        else
            cache_entry_destroy(ve);
    }
    buf_deinit(&head);
    buf_deinit(&vbody);
}

static void cachehook__response_done(struct gw_req *r, void *st, bool usable)
{
    (void)st;
    struct chreq *cr = cachehook__cr(r);
    if (cr == NULL)
        return;
    struct cachehook *ch = r->th->sh->cache;
    if (!usable && cr->fill != NULL) {
        /* bytes past the response, or an answer before the request was sent: not stored */
        cache_fill_abort(cr->fill);
        cr->fill = NULL;
        metrics_counter_inc(r->th->ms, ch->m_not_stored);
    }
    if (cr->fill != NULL) {
        struct cache_fill *f = cr->fill;
        cr->fill = NULL;
        struct store_obj *o = cache_fill_end_ref(ch->cache, f, loop_now_ms(r->th->loop));
        if (o != NULL) {
            metrics_counter_inc(r->th->ms, ch->m_stores);
            chl2_store(ch, r->th, o, cr->l2_seq);
            cachehook__adopt_variant(r, o);
            cache_release(ch->cache, o);
        } else {
            metrics_counter_inc(r->th->ms, ch->m_not_stored);
        }
    }
    /* stored (or not): the waiters look up again now */
    cachehook__finish_flight(ch, cr);
}

/* The exchange failed before the response head went out: a stale copy is served instead
 * (stale-if-error) when the entry allows it. */
static enum filter_verdict cachehook__on_error(struct gw_req *r, void *st, const struct gw_err *err)
{
    (void)st;
    (void)err;
    struct chreq *cr = cachehook__cr(r);
    if (cr == NULL || cr->stale == NULL || r->head_sent)
        return FILTER_CONTINUE;
    struct cachehook *ch = r->th->sh->cache;
    const struct cache_entry *e = cr->stale->payload;
    uint64_t now = loop_now_ms(r->th->loop);
    uint64_t age = policy_age_ms(e->fresh.initial_age_ms, e->stored_ms, now);
    /* Only within an explicit window (the origin's stale-if-error or the route's): RFC 9111
     * §4.2.4 would allow any stale copy while "disconnected", but an API client that was never
     * promised stale data should get the error, not an hour-old balance. */
    if (!policy_stale_if_error_ok(&e->fresh, age, &cr->preq))
        return FILTER_CONTINUE;
    metrics_counter_inc(r->th->ms, ch->m_stale_errors);
    struct store_obj *o = cr->stale;
    cr->stale = NULL;
    cr->st = CACHE_STALE;
    cachehook__serve(r, o, age, CACHE_STALE);
    cache_release(ch->cache, o);
    return FILTER_RESPOND;
}

/* ---- admin ---- */

static int cachehook__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* Value of query parameter <name> in <q>, percent-decoded ('+' is a space) into <out> (<cap>
 * bytes, NUL-terminated). Returns 1, 0 when absent, or -1 when the value cannot be taken as it
 * was meant: a '%' without two hex digits, an encoded NUL, or more than <cap> - 1 bytes (a
 * shortened prefix would purge more than was asked). */
static int cachehook__param(const char *q, size_t qlen, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < qlen) {
        size_t s = i;
        while (i < qlen && q[i] != '&')
            i++;
        if (i - s > nl && memcmp(q + s, name, nl) == 0 && q[s + nl] == '=') {
            size_t o = 0;
            for (size_t k = s + nl + 1; k < i; k++) {
                if (o + 1 >= cap)
                    return -1;
                char ch = q[k];
                if (ch == '%') {
                    int hi = k + 2 < i ? cachehook__hexval(q[k + 1]) : -1;
                    int lo = k + 2 < i ? cachehook__hexval(q[k + 2]) : -1;
                    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                        return -1;
                    ch = (char)(hi * 16 + lo);
                    k += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                out[o++] = ch;
            }
            out[o] = '\0';
            return 1;
        }
        i++;
    }
    return 0;
}

/* The cache's counters as one JSON object. With <stamp> (the /metrics/cache form of the seed),
 * hitRate is a percentage string ("99.95%") followed by "timestamp"; else a fraction. */
static void cachehook__json_stats(struct cachehook *ch, struct buf *out, const char *stamp)
{
    struct metrics *m = ch->sh->metrics;
    int64_t v[CACHE_STATUS_COUNT] = {0};
    for (int i = 1; i < CACHE_STATUS_COUNT; i++)
        v[i] = metrics_read(m, ch->m_status[i], METRICS_COUNTER);
    struct cache_stats s;
    cache_stats(ch->cache, &s);
    int64_t hits = v[CACHE_HIT] + v[CACHE_STALE];
    int64_t misses = v[CACHE_MISS] + v[CACHE_EXPIRED];
    int64_t total = hits + misses;
    double rate = total ? (double)hits / (double)total : 0.0;
    buf_printf(out, "{\"enabled\":true,\"hits\":%lld,\"misses\":%lld,", (long long)hits,
               (long long)misses);
    if (stamp != NULL)
        buf_printf(out, "\"hitRate\":\"%.2f%%\",\"timestamp\":\"%s\",", 100.0 * rate, stamp);
    else
        buf_printf(out, "\"hitRate\":%.4f,", rate);
    buf_printf(out,
               "\"total\":%lld,"
               "\"fresh_hits\":%lld,\"stale\":%lld,\"expired\":%lld,\"bypass\":%lld,"
               "\"coalesced\":%lld,\"coalesce_timeouts\":%lld,\"stores\":%lld,"
               "\"not_stored\":%lld,\"revalidated\":%lld,\"stale_if_error\":%lld,"
               "\"background_refreshes\":%lld,\"invalidations\":%lld,\"objects\":%llu,"
               "\"bytes\":%llu,\"limit_bytes\":%llu,\"evictions\":%llu,\"expired_removed\":%llu,"
               "\"purged\":%llu,\"purges\":%llu,\"fetches_in_flight\":%zu,",
               (long long)total, (long long)v[CACHE_HIT], (long long)v[CACHE_STALE],
               (long long)v[CACHE_EXPIRED], (long long)v[CACHE_BYPASS],
               (long long)metrics_read(m, ch->m_coalesced, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_coalesce_timeouts, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_stores, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_not_stored, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_revalidated, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_stale_errors, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_bg_refresh, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_invalidations, METRICS_COUNTER),
               (unsigned long long)s.store.objects, (unsigned long long)s.store.bytes,
               (unsigned long long)s.store.limit, (unsigned long long)s.store.evictions,
               (unsigned long long)s.store.expired, (unsigned long long)s.store.purged,
               (unsigned long long)s.purges, coalesce_inflight(ch->co));
    buf_printf(out, "\"l2\":{\"enabled\":%s,\"hits\":%lld,\"misses\":%lld,\"errors\":%lld",
               ch->l2 != NULL ? "true" : "false",
               (long long)metrics_read(m, ch->m_l2_hits, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_l2_misses, METRICS_COUNTER),
               (long long)metrics_read(m, ch->m_l2_errors, METRICS_COUNTER));
    chl2_stats_json(ch->l2, out);
    buf_append_str(out, "}}");
}

/* /metrics/cache in the seed's shape: {hits, misses, hitRate: "99.95%", total, timestamp, ...}
 * with the other counters of /cache/stats after them. */
static void cachehook__seed_json(struct gw_shared *sh, struct buf *out)
{
    uint64_t now = clock_wall_ms();
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char stamp[40];
    size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03uZ", (unsigned)(now % 1000));
    if (sh->cache == NULL)
        buf_printf(out,
                   "{\"enabled\":false,\"hits\":0,\"misses\":0,\"hitRate\":\"0.00%%\","
                   "\"timestamp\":\"%s\",\"total\":0}",
                   stamp);
    else
        cachehook__json_stats(sh->cache, out, stamp);
}

void cachehook_stats_json(struct gw_shared *sh, struct buf *out)
{
    if (sh->cache == NULL) {
        buf_append_str(out, "{\"enabled\":false,\"hits\":0,\"misses\":0,\"stale\":0}");
        return;
    }
    cachehook__json_stats(sh->cache, out, NULL);
}

void cachehook_refresh_metrics(struct gw_shared *sh)
{
    struct cachehook *ch = sh->cache;
    if (ch == NULL)
        return;
    struct cache_stats s;
    cache_stats(ch->cache, &s);
    struct metrics *m = sh->metrics;
    metrics_gauge_set(m, ch->g_objects, (int64_t)s.store.objects);
    metrics_gauge_set(m, ch->g_bytes, (int64_t)s.store.bytes);
    metrics_gauge_set(m, ch->g_evictions, (int64_t)s.store.evictions);
    metrics_gauge_set(m, ch->g_expired, (int64_t)s.store.expired);
    metrics_gauge_set(m, ch->g_purged, (int64_t)s.store.purged);
    metrics_gauge_set(m, ch->g_purges, (int64_t)s.purges);
    metrics_gauge_set(m, ch->g_inflight, (int64_t)coalesce_inflight(ch->co));
}

bool cachehook_admin(struct gw_shared *sh, const struct h1_request *req, struct buf *body,
                     int *status, const char **ctype)
{
#define PATH_IS(s) (req->path_len == sizeof(s) - 1 && memcmp(req->path, s, sizeof(s) - 1) == 0)
    bool get = req->method_id == H1_M_GET || req->method_id == H1_M_HEAD;
    struct cachehook *ch = sh->cache;
    *ctype = "application/json";
    if (PATH_IS("/cache/stats") || PATH_IS("/metrics/cache")) {
        if (!get) {
            *status = 405;
            buf_append_str(body, "{\"error\":\"method_not_allowed\"}\n");
            return true;
        }
        *status = 200;
        if (PATH_IS("/metrics/cache"))
            cachehook__seed_json(sh, body);
        else
            cachehook_stats_json(sh, body);
        buf_append_str(body, "\n");
        return true;
    }
    if (!PATH_IS("/cache/purge"))
        return false;
#undef PATH_IS
    if (req->method_id != H1_M_POST && req->method_id != H1_M_DELETE) {
        *status = 405;
        buf_append_str(body, "{\"error\":\"method_not_allowed\",\"allowed\":\"POST\"}\n");
        return true;
    }
    if (ch == NULL) {
        *status = 409;
        buf_append_str(body, "{\"error\":\"cache_disabled\"}\n");
        return true;
    }
    char val[2048];
    const char *q = req->query ? req->query : "";
    size_t ql = req->query ? req->query_len : 0;
    size_t n;
    /* ?path= is the one documented name; ?key= (its first name) stays accepted for scripts */
    int rk = cachehook__param(q, ql, "key", val, sizeof(val));
    if (rk == 0)
        rk = cachehook__param(q, ql, "path", val, sizeof(val));
    int rp = rk == 0 ? cachehook__param(q, ql, "prefix", val, sizeof(val)) : 0;
    int ra = rk == 0 && rp == 0 ? cachehook__param(q, ql, "all", val, sizeof(val)) : 0;
    int rt = rk == 0 && rp == 0 && ra == 0 ? cachehook__param(q, ql, "tag", val, sizeof(val)) : 0;
    char soft[8];
    int rs = rt == 1 ? cachehook__param(q, ql, "soft", soft, sizeof(soft)) : 0;
    const char *bad = NULL;
    if (rk == -1 || rp == -1 || ra == -1 || rt == -1 || rs == -1)
        bad = "invalid percent-encoding, encoded NUL, or a value over 2047 bytes";
    else if ((rk == 1 || rp == 1) && val[0] != '/')
        /* an empty prefix (an unset variable in a script) would purge everything */
        bad = rk == 1 ? "path must start with /"
                      : "prefix must be a path starting with / (?all=1 purges everything)";
    else if (ra == 1 && strcmp(val, "1") != 0 && strcmp(val, "true") != 0)
        bad = "all takes 1 or true";
    else if (rt == 1 && (val[0] == '\0' || strpbrk(val, " ,\t\r\n") != NULL))
        bad = "tag must be one tag (no space or comma)";
    else if (rs == 1 && strcmp(soft, "1") != 0 && strcmp(soft, "true") != 0 &&
             strcmp(soft, "0") != 0 && strcmp(soft, "false") != 0)
        bad = "soft takes 1, true, 0 or false";
    if (bad != NULL) {
        *status = 400;
        buf_append_str(body, "{\"error\":\"bad_request\",\"message\":");
        buf_append_json_str(body, bad, strlen(bad));
        buf_append_str(body, "}\n");
        return true;
    }
    if (rk == 1) {
        n = cache_purge(ch->cache, val, strlen(val), false);
        chl2_publish(ch, NULL, val, strlen(val), false);
        buf_append_str(body, "{\"purged\":");
        buf_printf(body, "%zu,\"key\":", n);
        buf_append_json_str(body, val, strlen(val));
        buf_append_str(body, "}\n");
    } else if (rp == 1) {
        n = cache_purge(ch->cache, val, strlen(val), true);
        chl2_publish(ch, NULL, val, strlen(val), true);
        buf_append_str(body, "{\"purged\":");
        buf_printf(body, "%zu,\"prefix\":", n);
        buf_append_json_str(body, val, strlen(val));
        buf_append_str(body, "}\n");
    } else if (ra == 1) {
        n = cache_purge(ch->cache, "*", 1, true);
        chl2_publish(ch, NULL, "*", 1, true);
        buf_printf(body, "{\"purged\":%zu,\"all\":true}\n", n);
    } else if (rt == 1) {
        bool sft = rs == 1 && (soft[0] == '1' || soft[0] == 't');
        n = cache_purge_tag(ch->cache, val, strlen(val), sft);
        chl2_publish_tag(ch, NULL, val, strlen(val), sft);
        buf_printf(body, "{\"purged\":%zu,\"soft\":%s,\"tag\":", n, sft ? "true" : "false");
        buf_append_json_str(body, val, strlen(val));
        buf_append_str(body, "}\n");
    } else {
        *status = 400;
        buf_append_str(body, "{\"error\":\"bad_request\",\"message\":\"give ?path=/path (exact, "
                             "every variant and query), ?prefix=/path, ?tag=T[&soft=1] or "
                             "?all=1\"}\n");
        return true;
    }
    *status = 200;
    return true;
}

/* ---- the filter ---- */

static void cachehook__init(struct gw_shared *sh)
{
    sh->cache = cachehook_create(sh); // NULL when no route caches
}

static void cachehook__deinit(struct gw_shared *sh)
{
    cachehook_destroy(sh->cache);
    sh->cache = NULL;
}

static bool cachehook__attach(struct gw_shared *sh, size_t route)
{
    struct cachehook *ch = sh->cache;
    return ch != NULL && route < ch->nroutes && ch->routes[route].enabled;
}

static enum filter_verdict cachehook__on_response_head(struct gw_req *r, void *st,
                                                       const struct h1_response *res)
{
    (void)st;
    return cachehook__response_head(r, res) == 0 ? FILTER_CONTINUE : FILTER_RESPOND;
}

const struct filter_ops cachehook_filter = {
    .name = "cache",
    .state_size = sizeof(struct chreq *),
    .init = cachehook__init,
    .deinit = cachehook__deinit,
    .thread_start = cachehook_thread_start,
    .thread_stop = cachehook_thread_stop,
    .attach = cachehook__attach,
    .on_request = cachehook__on_request,
    .upstream_header_skip = cachehook__strip_header,
    .upstream_headers = cachehook__upstream_headers,
    .on_response_head = cachehook__on_response_head,
    .client_header_skip = cachehook__hide_tags,
    .client_headers = cachehook__client_headers,
    .on_body = cachehook__response_body,
    .on_response_done = cachehook__response_done,
    .on_error = cachehook__on_error,
    .on_end = cachehook__request_end,
    .cache_status = cachehook__status,
};
