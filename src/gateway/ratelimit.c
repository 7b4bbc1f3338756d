/* The rate limit filter (`routes[].rate_limit`, docs/ratelimit.md): first in a route's chain, it
 * keys each request (client address, a header, or a JWT claim read without verification), takes
 * one from the key's cell in the route's table (rlimit.c: shared by the worker's threads, so a
 * limit is per gateway instance, not per thread), and answers 429 with Retry-After and the IETF
 * RateLimit-Policy / RateLimit fields, or lets it through and adds RateLimit to its answer. A 429
 * is the gateway's own answer: the filters after it (cache, breaker, retry) never see the request,
 * so it never counts as an upstream failure. A shared route (`shared: true`) admits the
 * same way, from its local cells, which rlshare.c keeps in step with every other instance
 * through Redis between requests: a request never waits for Redis. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/req.h"
#include "gateway/rlimit.h"
#include "gateway/rlshare.h"
#include "http/headers.h"
#include "metrics/metrics.h"

#define RATELIMIT_KEY_MAX 256 /* key bytes hashed; a longer header value is cut (still keyed) */

struct ratelimit_route {
    struct rlimit_table *t; // NULL: the route has no rate limit
    const struct gw_rate_limit *cfg;
    bool shared;            // synced with the other instances (rlshare.c)
    metrics_ref limited, admitted;
    uint32_t window_s; // w= of the policy
    char policy[80];   // "RateLimit-Policy: ...\r\n"
};

struct ratelimit {
    size_t nroutes;
    struct ratelimit_route *routes;
    uint64_t k0, k1; // SipHash key: keys cannot be aimed at one bucket of the table
    struct rlshare *share; // NULL: no shared route
};

/* Per request: what the RateLimit field says (set = 1 once the request was counted). */
struct ratelimit_req {
    uint32_t remaining;
    uint16_t reset_s;
    uint16_t set;
};

/* ---- SipHash-2-4 ---- */

#define RL_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define RL_SIPROUND                                                                                \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = RL_ROTL(v1, 13);                                                                      \
        v1 ^= v0;                                                                                  \
        v0 = RL_ROTL(v0, 32);                                                                      \
        v2 += v3;                                                                                  \
        v3 = RL_ROTL(v3, 16);                                                                      \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = RL_ROTL(v3, 21);                                                                      \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = RL_ROTL(v1, 17);                                                                      \
        v1 ^= v2;                                                                                  \
        v2 = RL_ROTL(v2, 32);                                                                      \
    } while (0)

static uint64_t ratelimit__hash(const struct ratelimit *rl, const unsigned char *p, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ rl->k0, v1 = 0x646f72616e646f6dull ^ rl->k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ rl->k0, v3 = 0x7465646279746573ull ^ rl->k1;
    uint64_t b = (uint64_t)n << 56;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = 0;
        for (int k = 0; k < 8; k++)
            m |= (uint64_t)p[i + k] << (8 * k);
        v3 ^= m;
        RL_SIPROUND;
        RL_SIPROUND;
        v0 ^= m;
    }
    for (int k = 0; i + (size_t)k < n; k++)
        b |= (uint64_t)p[i + k] << (8 * k);
    v3 ^= b;
    RL_SIPROUND;
    RL_SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (int k = 0; k < 4; k++)
        RL_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- worker start / stop ---- */

static void ratelimit__init(struct gw_shared *sh)
{
    const struct gw_config *cfg = sh->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nroutes; i++)
        n += cfg->routes[i].rate_limit.enabled;
    if (n == 0)
        return;
    struct ratelimit *rl = xcalloc(1, sizeof(*rl));
    rl->nroutes = cfg->nroutes;
    rl->routes = xcalloc(cfg->nroutes, sizeof(*rl->routes));
    uint64_t k[2];
    if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
        k[0] = clock_now_ns() ^ (uint64_t)(uintptr_t)rl;
        k[1] = clock_wall_ms() * 0x9E3779B97F4A7C15ull;
    }
    rl->k0 = k[0];
    rl->k1 = k[1];
    const char *l_r[] = {"route", NULL};
    int fl = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_rate_limited_total",
                            "Requests refused with 429 by the route's rate limit.", l_r);
    int fa = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_rate_limit_admitted_total",
                            "Requests admitted by the route's rate limit.", l_r);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct gw_rate_limit *c = &cfg->routes[i].rate_limit;
        struct ratelimit_route *rr = &rl->routes[i];
        if (!c->enabled)
            continue;
        struct rlimit_policy p;
        rlimit_policy_init(&p, (enum rlimit_algo)c->algorithm, c->count, c->period_ms * 1000000ull,
                           c->burst_eff);
        rr->t = rlimit_table_create(&p, (size_t)c->max_keys);
        rr->cfg = c;
        rr->limited = metrics_series1(sh->metrics, fl, sh->rt[i].label);
        rr->admitted = metrics_series1(sh->metrics, fa, sh->rt[i].label);
        rr->window_s = (uint32_t)(c->period_ms / 1000);
        snprintf(rr->policy, sizeof(rr->policy), "RateLimit-Policy: \"default\";q=%llu;w=%u\r\n",
                 (unsigned long long)c->count, rr->window_s);
        if (c->shared && cfg->cache.redis != NULL) {
            if (rl->share == NULL)
                rl->share = rlshare_create(sh);
            rlshare_add(rl->share, i, rr->t);
            rr->shared = true;
        }
    }
    sh->ratelimit = rl;
}

static void ratelimit__thread_start(struct gwthread *th)
{
    if (th->sh->ratelimit != NULL)
        rlshare_thread_start(th->sh->ratelimit->share, th);
}

static void ratelimit__thread_stop(struct gwthread *th)
{
    if (th->sh->ratelimit != NULL)
        rlshare_thread_stop(th->sh->ratelimit->share, th);
}

static void ratelimit__deinit(struct gw_shared *sh)
{
    struct ratelimit *rl = sh->ratelimit;
    if (rl == NULL)
        return;
    rlshare_destroy(rl->share);
    for (size_t i = 0; i < rl->nroutes; i++)
        rlimit_table_destroy(rl->routes[i].t);
    free(rl->routes);
    free(rl);
    sh->ratelimit = NULL;
}

static bool ratelimit__attach(struct gw_shared *sh, size_t route)
{
    struct ratelimit *rl = sh->ratelimit;
    return rl != NULL && route < rl->nroutes && rl->routes[route].t != NULL;
}

/* ---- the request ---- */

/* The key of <r>: a kind byte, then the value. A request without the header or claim is keyed
 * by its address under another kind byte, so it can never share a cell with a header value. */
static size_t ratelimit__key(struct gw_req *r, const struct gw_rate_limit *c, unsigned char *k)
{
    const struct h1_request *req = &r->req;
    if (c->key_kind == GW_RL_KEY_HEADER) {
        const struct h1_header *h = headers_find(req->headers, req->nheaders, c->key_name);
        if (h != NULL && h->value_len > 0) {
            size_t n = h->value_len < RATELIMIT_KEY_MAX - 1 ? h->value_len : RATELIMIT_KEY_MAX - 1;
            k[0] = 'h';
            memcpy(k + 1, h->value, n);
            return n + 1;
        }
    } else if (c->key_kind == GW_RL_KEY_JWT) {
        const struct h1_header *h = headers_find(req->headers, req->nheaders, "authorization");
        long n = h == NULL ? -1
                           : rlimit_jwt_claim(h->value, h->value_len, c->key_name, (char *)k + 1,
                                              RATELIMIT_KEY_MAX - 1);
        if (n > 0) {
            k[0] = 'j';
            return (size_t)n + 1;
        }
    }
    const char *ip = r->client_ip ? r->client_ip : "";
    size_t n = strnlen(ip, GW_CLIENT_IP_LEN);
    k[0] = 'c';
    memcpy(k + 1, ip, n);
    return n + 1;
}

static uint32_t ratelimit__secs(uint64_t ns)
{
    uint64_t s = (ns + 999999999ull) / 1000000000ull;
    return s > 65535 ? 65535 : (uint32_t)s;
}

/* The key being taken, for its Redis name (rlimit_name_fn: called only for a key new to its
 * cell, so the keyed HMAC is not paid per request). */
struct ratelimit_namearg {
    const struct rlshare *share;
    size_t route;
    const unsigned char *key;
    size_t len;
};

static void ratelimit__name(void *arg, char name[RLIMIT_NAME_LEN])
{
    const struct ratelimit_namearg *a = arg;
    rlshare_name(a->share, a->route, a->key, a->len, name);
}

static enum filter_verdict ratelimit__on_request(struct gw_req *r, void *st, struct gw_err *err)
{
    (void)err;
    struct ratelimit_req *rs = st;
    struct ratelimit *rl = r->th->sh->ratelimit;
    struct ratelimit_route *rr = &rl->routes[r->route];
    unsigned char key[RATELIMIT_KEY_MAX];
    size_t kn = ratelimit__key(r, rr->cfg, key);
    struct rlimit_verdict v;
    uint64_t h = ratelimit__hash(rl, key, kn);
    if (rr->shared) {
        struct ratelimit_namearg na = {rl->share, r->route, key, kn};
        rlimit_table_take_sync(rr->t, h, clock_now_ns(), &v, ratelimit__name, &na);
    } else {
        rlimit_table_take(rr->t, h, clock_now_ns(), &v);
    }
    rs->remaining = v.remaining > UINT32_MAX ? UINT32_MAX : (uint32_t)v.remaining;
    rs->reset_s = (uint16_t)ratelimit__secs(v.reset_ns);
    rs->set = 1;
    if (v.allowed) {
        metrics_counter_inc(r->th->ms, rr->admitted);
        return FILTER_CONTINUE;
    }
    metrics_counter_inc(r->th->ms, rr->limited);
    uint32_t retry = ratelimit__secs(v.retry_ns);
    rs->reset_s = (uint16_t)(retry > rs->reset_s ? retry : rs->reset_s);
    char hdr[40];
    snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n", retry ? retry : 1);
    gw_req_respond_error(r, 429, "rate_limited", "rate limit exceeded; retry after Retry-After",
                         hdr);
    return FILTER_RESPOND;
}

/* Every answer of a limited route says where the key stands (the 429 too). */
static void ratelimit__client_headers(struct gw_req *r, void *st, struct gw_head *head)
{
    const struct ratelimit_req *rs = st;
    if (!rs->set)
        return;
    const struct ratelimit_route *rr = &r->th->sh->ratelimit->routes[r->route];
    gw_head_add_lines(head, rr->policy); // "RateLimit-Policy: ...\r\n", built at start
    char v[48];
    int n = snprintf(v, sizeof(v), "\"default\";r=%u;t=%u", rs->remaining, rs->reset_s);
    if (n > 0 && (size_t)n < sizeof(v))
        gw_head_add_copy(head, "RateLimit", 9, v, (size_t)n);
}

static void ratelimit__on_end(struct gw_req *r, void *st)
{
    (void)r;
    memset(st, 0, sizeof(struct ratelimit_req));
}

const struct filter_ops ratelimit_filter = {
    .name = "ratelimit",
    .state_size = sizeof(struct ratelimit_req),
    .init = ratelimit__init,
    .deinit = ratelimit__deinit,
    .thread_start = ratelimit__thread_start,
    .thread_stop = ratelimit__thread_stop,
    .attach = ratelimit__attach,
    .on_request = ratelimit__on_request,
    .client_headers = ratelimit__client_headers,
    .on_end = ratelimit__on_end,
};
