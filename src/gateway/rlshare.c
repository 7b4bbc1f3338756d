/* Shared rate limits, the Redis side (see rlshare.h). One sync per active key per interval, each
 * one EVAL of rlshare__lua on the key's own slot (a Cluster routes it by the hash tag), pipelined
 * by the client (every command of one tick goes out in one write). A key keeps one sync in
 * flight at most: a slow Redis delays merges, it never piles commands up. */
#include "gateway/rlshare.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/keyhash.h"
#include "cache/l2redis.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "gateway/redisdns.h"
#include "metrics/metrics.h"

#define RLSHARE_MAX_PER_TICK 1024   /* syncs sent per tick; more active keys wait for the next */
#define RLSHARE_MIN_TIMEOUT_MS 200  /* a sync slower than this fails (fallback for that key) */
#define RLSHARE_SECRET_MS 10000 /* the agreed secret is written again (NX) this often */
#define RLSHARE_CLOCK_WINDOW_NS 2000000000ull /* the clock offset is re-chosen this often */
#define RLSHARE_MAX_RECONNECT_MS 100 /* first reconnect pause (the client doubles it up to 10x) */

/* The global GCRA step (rlimit_gcra_global is the same arithmetic in C, unit-tested): the TAT in
 * µs of Redis's clock moves by the admissions reported, is kept at most cap ahead of now, and the
 * answer is the debt (TAT - now) and Redis's now, both µs. A report of 0 only reads. KEYS: the key's TAT; ARGV:
 * admitted, emission interval (µs), cap (µs), key TTL (ms). */
static const char rlshare__lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n" /* Redis < 5: a write
                                                                        * after TIME */
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "if tat < now then tat = now end\n"
    "local d = tonumber(ARGV[1])\n"
    "if d > 0 then\n"
    "  tat = tat + d * tonumber(ARGV[2])\n"
    "  local cap = now + tonumber(ARGV[3])\n"
    "  if tat > cap then tat = cap end\n"
    "  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', ARGV[4])\n"
    "end\n"
    "return {math.floor(tat - now), now}\n";

/* A shared window's step (fixed or sliding; rlimit_window_grant is the same arithmetic in C,
 * unit-tested): one hash per key and Redis window index, kept two periods, with per instance its
 * count ("<id>") and how far it may go ("<id>:r", its count plus its grant). The instance's
 * admissions are added, then it is granted what is left after everything used or reserved (the
 * larger of each instance's two fields; a lease for each instance of the previous window that has
 * not reported in this one; sliding: the previous window weighted), at most twice its report and
 * at least the lease. Answer (integers: the client reads four): the grant, Redis's now (µs), µs
 * into the window, the instances that reported in it. The window's names are built
 * here from the key's own (the same hash tag: the same cluster slot). KEYS: the key's window
 * prefix; ARGV: admitted, period (µs), instance id, TTL (ms), count, lease, sliding (1/0). */
static const char rlshare__lua_window[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local per = tonumber(ARGV[2])\n"
    "local idx = math.floor(now / per)\n"
    "local ck = KEYS[1] .. ':' .. string.format('%.0f', idx)\n"
    "local pk = KEYS[1] .. ':' .. string.format('%.0f', idx - 1)\n"
    "local id, d = ARGV[3], tonumber(ARGV[1])\n"
    "local cnt, lease = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local mine = redis.call('HINCRBY', ck, id, d)\n"
    "local function fields(k)\n"
    "  local f, a = {}, redis.call('HGETALL', k)\n"
    "  for i = 1, #a, 2 do f[a[i]] = tonumber(a[i + 1]) end\n"
    "  return f\n"
    "end\n"
    "local function held(f, j, u)\n"
    "  local r = f[j .. ':r'] or 0\n"
    "  if r > u then return r end\n"
    "  return u\n"
    "end\n"
    "local c, p = fields(ck), fields(pk)\n"
    "local others, n, prev = 0, 0, 0\n"
    "for j, u in pairs(c) do\n"
    "  if not string.find(j, ':', 1, true) then\n"
    "    n = n + 1\n"
    "    if j ~= id then others = others + held(c, j, u) end\n"
    "  end\n"
    "end\n"
    "for j, u in pairs(p) do\n"
    "  if not string.find(j, ':', 1, true) then\n"
    "    prev = prev + held(p, j, u)\n"
    "    if c[j] == nil then others = others + lease end\n"
    "  end\n"
    "end\n"
    "local elapsed = now - idx * per\n"
    "local h = mine + others\n"
    "if ARGV[7] == '1' then h = h + prev * (per - elapsed) / per end\n"
    "local b = 0\n"
    "if h < cnt then\n"
    "  local left = math.floor(cnt - h)\n"
    "  b = 2 * d\n"
    "  if b < lease then b = lease end\n"
    "  if b > left then b = left end\n"
    "end\n"
    "redis.call('HSET', ck, id .. ':r', mine + b)\n"
    "redis.call('PEXPIRE', ck, ARGV[4])\n"
    "return {b, now, math.floor(elapsed), n}\n";

struct rlshare_route {
    struct rlimit_table *t; // NULL: not shared
    bool window;            // fixed_window or sliding_window: rlshare__lua_window
    char period_us[24], wttl_ms[24], count[24], lease[24];
    const char *match;      // the route as written: part of its keys' names
    char t_us[32], cap_us[32], ttl_ms[24];
    metrics_ref syncs, errors, fallback;
    bool down; // the last sync of this route failed: its keys are counted here alone
};

struct rlshare {
    struct gw_shared *sh;
    struct keyhash *kh;
    /* The secret agreed through Redis (NULL: configured, or not agreed). A Redis that restarts
     * without persistence forgets it, and a gateway started then would agree on another: every
     * worker that agreed writes it again (SET NX) every RLSHARE_SECRET_MS, so a new one finds it. */
    char *secret;
    size_t secret_len;
    char secret_key[512];
    uint64_t secret_ms;
    const char *prefix;
    char instance[17]; // this worker's field in the windows' hashes (random hex)
    size_t nroutes;
    struct rlshare_route *routes;
    uint64_t interval_ms;
    /* thread 0 */
    struct gwthread *th;
    struct l2redis *redis;
    struct loop_timer tick;
    struct rlimit_report *reports; // RLSHARE_MAX_PER_TICK
    struct log_limit lim;
    /* Redis's clock as ours: local ns = Redis µs * 1000 + offset, from the sync with the
     * shortest round trip in the last RLSHARE_CLOCK_WINDOW_NS (its midpoint is the closest to
     * when the script ran: a reply that waited for a busy loop thread says nothing of that) */
    int64_t clock_off;
    uint64_t clock_rtt, clock_at;
    bool stopping; // thread stop: the syncs answered as failed now are no fallback
    /* a Redis host given by name: resolved by a thread of our own, never on the loop */
    struct redisdns dns;
};

/* One sync in flight. */
struct rlshare_sync {
    struct rlshare *s;
    size_t route;
    uint64_t key;
    uint64_t sent_ns; // when the sync was sent (the reply's time is when Redis computed it)
};

/* The key-hash secret: the config's (cache.key_secret_file), else the one every gateway of this
 * Redis agreed on (the cache's own, same Redis key), else our own: then this worker's keys have
 * names no other gateway uses, and its limits are its own until a restart finds Redis. */
static struct keyhash *rlshare__secret(struct rlshare *s, const struct gw_config *cfg)
{
    if (cfg->cache.key_secret_data != NULL)
        return keyhash_create(cfg->cache.key_secret_data, cfg->cache.key_secret_len);
    unsigned char rnd[32];
    char proposal[2 * sizeof(rnd)], agreed[256], err[256];
    if (keyhash_random(rnd, sizeof(rnd)) != 0) {
        fprintf(stderr, "fatal: rate limit: no random bytes for the key secret\n");
        abort();
    }
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(rnd); i++) {
        proposal[2 * i] = hx[rnd[i] >> 4];
        proposal[2 * i + 1] = hx[rnd[i] & 15];
    }
    struct l2redis_conf conf = {.url = cfg->cache.redis,
                                .resolve = redisdns_hook(&s->dns),
                                .resolve_arg = &s->dns};
    snprintf(s->secret_key, sizeof(s->secret_key), "%skey-secret", s->prefix);
    uint64_t timeout = cfg->cache.redis_timeout_ms > 1000 ? cfg->cache.redis_timeout_ms : 1000;
    long n = l2redis_agree(&conf, s->secret_key, proposal, sizeof(proposal), agreed, sizeof(agreed),
                           KEYHASH_MIN_SECRET, timeout, err, sizeof(err));
    if (n < 0)
        ag_log(AG_LOG_WARN,
               "rate limit: no key secret agreed through Redis (%s): this worker's shared "
               "limits are counted apart from the other gateways' until it restarts; set "
               "cache.key_secret_file",
               err);
    struct keyhash *kh = n > 0 ? keyhash_create(agreed, (size_t)n)
                               : keyhash_create(proposal, sizeof(proposal));
    if (n > 0) {
        s->secret = xmalloc((size_t)n);
        memcpy(s->secret, agreed, (size_t)n);
        s->secret_len = (size_t)n;
    }
    explicit_bzero(agreed, sizeof(agreed));
    explicit_bzero(proposal, sizeof(proposal));
    explicit_bzero(rnd, sizeof(rnd));
    return kh;
}

struct rlshare *rlshare_create(struct gw_shared *sh)
{
    const struct gw_config *cfg = sh->cfg;
    AG_ASSERT(cfg->cache.redis != NULL);
    struct rlshare *s = xcalloc(1, sizeof(*s));
    s->sh = sh;
    s->prefix = cfg->cache.redis_prefix ? cfg->cache.redis_prefix : "apigate:";
    s->nroutes = cfg->nroutes;
    s->routes = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*s->routes));
    s->reports = xcalloc(RLSHARE_MAX_PER_TICK, sizeof(*s->reports));
    redisdns_start(&s->dns, cfg->cache.redis, "rate limit");
    unsigned char id[8];
    if (keyhash_random(id, sizeof(id)) != 0) {
        fprintf(stderr, "fatal: rate limit: no random bytes for the instance id\n");
        abort();
    }
    for (size_t i = 0; i < sizeof(id); i++)
        snprintf(s->instance + 2 * i, 3, "%02x", id[i]);
    s->kh = rlshare__secret(s, cfg);
    const char *l_r[] = {"route", NULL};
    int fs = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_rate_limit_syncs_total",
                            "Shared rate limit syncs answered by Redis (one per active key and "
                            "interval).",
                            l_r);
    int fe = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_rate_limit_sync_errors_total",
                            "Shared rate limit syncs that failed (Redis down, slow or in error): "
                            "the key was counted by this instance alone meanwhile.",
                            l_r);
    int ff = metrics_family(sh->metrics, METRICS_GAUGE_SET, "apigate_rate_limit_fallback",
                            "1 while the route's shared limit is counted by this instance alone "
                            "(its last sync with Redis failed).",
                            l_r);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct gw_rate_limit *c = &cfg->routes[i].rate_limit;
        if (!c->enabled || !c->shared)
            continue;
        struct rlshare_route *rr = &s->routes[i];
        rr->match = cfg->routes[i].match;
        rr->syncs = metrics_series1(sh->metrics, fs, sh->rt[i].label);
        rr->errors = metrics_series1(sh->metrics, fe, sh->rt[i].label);
        rr->fallback = metrics_series1(sh->metrics, ff, sh->rt[i].label);
        uint64_t period_us = c->period_ms * 1000;
        double t_us = (double)period_us / (double)c->count;
        /* a debt is kept up to the burst plus one period: past it (instances that counted alone
         * for a while, then all reported) it is forgiven rather than blocking the key longer */
        double cap_us = t_us * (double)c->burst_eff + (double)period_us;
        snprintf(rr->t_us, sizeof(rr->t_us), "%.6f", t_us);
        snprintf(rr->cap_us, sizeof(rr->cap_us), "%.0f", cap_us);
        snprintf(rr->ttl_ms, sizeof(rr->ttl_ms), "%.0f", cap_us / 1000.0 + 1000.0);
        rr->window = c->algorithm != RLIMIT_GCRA;
        snprintf(rr->period_us, sizeof(rr->period_us), "%llu", (unsigned long long)period_us);
        snprintf(rr->wttl_ms, sizeof(rr->wttl_ms), "%llu",
                 (unsigned long long)(2 * c->period_ms));
        snprintf(rr->count, sizeof(rr->count), "%llu", (unsigned long long)c->count);
        snprintf(rr->lease, sizeof(rr->lease), "%llu",
                 (unsigned long long)((c->count + RLIMIT_LEASE_DIV - 1) / RLIMIT_LEASE_DIV));
        if (s->interval_ms == 0 || c->sync_interval_ms < s->interval_ms)
            s->interval_ms = c->sync_interval_ms;
    }
    if (s->interval_ms == 0)
        s->interval_ms = 50;
    return s;
}

void rlshare_destroy(struct rlshare *s)
{
    if (s == NULL)
        return;
    AG_ASSERT(s->redis == NULL);
    redisdns_stop(&s->dns);
    keyhash_destroy(s->kh);
    if (s->secret != NULL)
        explicit_bzero(s->secret, s->secret_len);
    free(s->secret);
    free(s->reports);
    free(s->routes);
    free(s);
}

void rlshare_add(struct rlshare *s, size_t route, struct rlimit_table *t)
{
    AG_ASSERT(route < s->nroutes && s->routes[route].match != NULL);
    rlimit_table_sync_enable(t);
    s->routes[route].t = t;
}

void rlshare_name(const struct rlshare *s, size_t route, const unsigned char *k, size_t n,
                  char name[RLIMIT_NAME_LEN])
{
    /* "rl", the route as written, the key: a route's limit never meets another route's, and the
     * cache's header-value hashes (same secret) never name the same thing */
    char in[1024];
    const char *m = s->routes[route].match;
    size_t ml = strnlen(m, 512);
    size_t kl = n < sizeof(in) - ml - 4 ? n : sizeof(in) - ml - 4;
    memcpy(in, "rl", 3);
    memcpy(in + 3, m, ml);
    in[3 + ml] = '\0';
    memcpy(in + 4 + ml, k, kl);
    _Static_assert(RLIMIT_NAME_LEN == KEYHASH_HEX_LEN, "a name is one keyed hash");
    keyhash_hex(s->kh, in, 4 + ml + kl, name);
}

/* ---- the sync (loop thread 0) ---- */

static void rlshare__state(struct rlshare *s, struct rlshare_route *rr, bool ok)
{
    if (ok == !rr->down)
        return;
    rr->down = !ok;
    metrics_gauge_set(s->sh->metrics, rr->fallback, ok ? 0 : 1);
    if (ok)
        ag_log(AG_LOG_INFO, "rate limit: route %s: Redis answers again: its limit is shared again",
               rr->match);
}

/* The key's sync failed: its cell counts alone until one succeeds. */
static void rlshare__merge_failed(struct rlshare_route *rr, uint64_t key)
{
    if (rr->window)
        rlimit_table_merge_window(rr->t, key, false, 0, 0);
    else
        rlimit_table_merge(rr->t, key, false, 0, clock_now_ns());
}

static void rlshare__failed(struct rlshare *s, size_t route, uint64_t key, const char *why)
{
    struct rlshare_route *rr = &s->routes[route];
    metrics_counter_inc(s->th->ms, rr->errors);
    rlshare__merge_failed(rr, key);
    if (rr->down)
        return; /* logged when the spell began; the errors are counted */
    rlshare__state(s, rr, false);
    /* once per spell, and a Redis that flaps is still at most one line a second */
    ag_log_limited(AG_LOG_WARN, &s->lim,
                   "rate limit: route %s: %s: shared limits are counted by each gateway alone "
                   "until Redis answers",
                   rr->match, why);
}

static void rlshare__on_reply(void *arg, enum l2redis_status st, const char *const *vals,
                              const size_t *lens, size_t n)
{
    struct rlshare_sync *q = arg;
    struct rlshare *s = q->s;
    struct rlshare_route *rr = &s->routes[q->route];
    if (s->stopping) {
        rlshare__merge_failed(rr, q->key);
        free(q);
        return;
    }
    /* gcra: {debt, now}; windows: {grant, now, elapsed, instances} */
    size_t want = rr->window ? 4 : 2;
    uint64_t num[4] = {0, 0, 0, 0};
    bool ok = st == L2REDIS_HIT && n == want;
    for (size_t k = 0; ok && k < want; k++) {
        ok = vals[k] != NULL && lens[k] > 0 && lens[k] < 20;
        for (size_t i = 0; ok && i < lens[k]; i++) {
            ok = vals[k][i] >= '0' && vals[k][i] <= '9';
            num[k] = num[k] * 10 + (uint64_t)(vals[k][i] - '0');
        }
    }
    if (!ok) {
        rlshare__failed(s, q->route, q->key,
                        st == L2REDIS_HIT ? "Redis answered a sync with no debt" : "sync failed");
    } else {
        metrics_counter_inc(s->th->ms, rr->syncs);
        /* The debt is as of when the script ran, on Redis's clock. Taken as of the reply, it
         * would add the way back (and any wait for this loop thread) to every key's debt: on a
         * loaded machine three gateways admitted 166/s of 200/s that way. */
        uint64_t now = clock_now_ns(), rtt = now - q->sent_ns;
        int64_t off = (int64_t)(q->sent_ns + rtt / 2) - (int64_t)(num[1] * 1000);
        if (s->clock_at == 0 || rtt <= s->clock_rtt || now - s->clock_at > RLSHARE_CLOCK_WINDOW_NS) {
            s->clock_off = off;
            s->clock_rtt = rtt;
            s->clock_at = now;
        }
        int64_t at = (int64_t)(num[1] * 1000) + s->clock_off;
        if (at > (int64_t)now || at < (int64_t)q->sent_ns)
            at = (int64_t)(q->sent_ns + rtt / 2); /* the offset is stale (a clock step) */
        if (rr->window) {
            const struct rlimit_policy *p = rlimit_table_policy(rr->t);
            uint64_t elapsed = num[2] * 1000;
            uint64_t wend = (uint64_t)at + (elapsed < p->period_ns ? p->period_ns - elapsed : 0);
            rlimit_table_merge_window(rr->t, q->key, true, num[0], wend);
        } else {
            rlimit_table_merge(rr->t, q->key, true, num[0] * 1000, (uint64_t)at);
        }
        rlshare__state(s, rr, true);
    }
    free(q);
}

static void rlshare__send(struct rlshare *s, size_t route, const struct rlimit_report *rep)
{
    struct rlshare_route *rr = &s->routes[route];
    char key[256], delta[24];
    int kl = snprintf(key, sizeof(key), "%srl:{%.*s}", s->prefix, RLIMIT_NAME_LEN, rep->name);
    if (kl < 0 || (size_t)kl >= sizeof(key))
        kl = (int)sizeof(key) - 1;
    int dl = snprintf(delta, sizeof(delta), "%llu", (unsigned long long)rep->delta);
    const char *argv[11];
    size_t argl[11];
    int argc = 8;
    if (rr->window) {
        if ((size_t)kl + 3 <= sizeof(key)) {
            memcpy(key + kl, ":w", 3);
            kl += 2;
        }
        const char *sliding = rlimit_table_policy(rr->t)->algo == RLIMIT_SLIDING ? "1" : "0";
        const char *a[] = {"EVAL", rlshare__lua_window, "1", key, delta, rr->period_us,
                           s->instance, rr->wttl_ms, rr->count, rr->lease, sliding};
        size_t l[] = {4, sizeof(rlshare__lua_window) - 1, 1, (size_t)kl, (size_t)dl,
                      strlen(rr->period_us), strlen(s->instance), strlen(rr->wttl_ms),
                      strlen(rr->count), strlen(rr->lease), 1};
        argc = 11;
        memcpy(argv, a, sizeof(a));
        memcpy(argl, l, sizeof(l));
    } else {
        const char *a[] = {"EVAL", rlshare__lua, "1", key, delta, rr->t_us, rr->cap_us, rr->ttl_ms};
        size_t l[] = {4, sizeof(rlshare__lua) - 1, 1, (size_t)kl, (size_t)dl, strlen(rr->t_us),
                      strlen(rr->cap_us), strlen(rr->ttl_ms)};
        memcpy(argv, a, sizeof(a));
        memcpy(argl, l, sizeof(l));
    }
    struct rlshare_sync *q = xcalloc(1, sizeof(*q));
    q->s = s;
    q->route = route;
    q->key = rep->key;
    q->sent_ns = clock_now_ns();
    if (l2redis_command(s->redis, argc, argv, argl, 3, 5, rlshare__on_reply, q) == NULL) {
        free(q);
        rlshare__failed(s, route, rep->key, "Redis is unavailable");
    }
}

static void rlshare__tick(struct loop *loop, void *arg)
{
    struct rlshare *s = arg;
    size_t budget = RLSHARE_MAX_PER_TICK;
    for (size_t i = 0; i < s->nroutes && budget > 0; i++) {
        struct rlshare_route *rr = &s->routes[i];
        if (rr->t == NULL)
            continue;
        size_t n = rlimit_table_drain(rr->t, s->reports, budget);
        for (size_t k = 0; k < n; k++)
            rlshare__send(s, i, &s->reports[k]);
        budget -= n;
    }
    uint64_t ms = loop_now_ms(loop);
    if (s->secret != NULL && ms - s->secret_ms >= RLSHARE_SECRET_MS &&
        l2redis_connected(s->redis)) {
        s->secret_ms = ms;
        const char *argv[] = {"SET", s->secret_key, s->secret, "NX"};
        size_t argl[] = {3, strlen(s->secret_key), s->secret_len, 2};
        l2redis_send(s->redis, 4, argv, argl, 1);
    }
    loop_timer_start(loop, &s->tick, s->interval_ms);
}

void rlshare_thread_start(struct rlshare *s, struct gwthread *th)
{
    if (s == NULL || th->index != 0)
        return;
    const struct gw_cache *cc = &th->sh->cfg->cache;
    uint64_t reconnect = cc->redis_reconnect_ms < RLSHARE_MAX_RECONNECT_MS
                             ? cc->redis_reconnect_ms
                             : RLSHARE_MAX_RECONNECT_MS;
    struct l2redis_conf conf = {
        .url = cc->redis,
        .timeout_ms = cc->redis_timeout_ms > RLSHARE_MIN_TIMEOUT_MS ? cc->redis_timeout_ms
                                                                    : RLSHARE_MIN_TIMEOUT_MS,
        .reconnect_ms = reconnect,
        .max_reply = 65536,
        .resolve = redisdns_hook(&s->dns),
        .resolve_arg = &s->dns};
    s->th = th;
    s->redis = l2redis_create(th->loop, &conf, NULL, NULL, NULL);
    loop_timer_init(&s->tick, rlshare__tick, s);
    loop_timer_start(th->loop, &s->tick, s->interval_ms);
}

void rlshare_thread_stop(struct rlshare *s, struct gwthread *th)
{
    if (s == NULL || th->index != 0 || s->redis == NULL)
        return;
    loop_timer_stop(th->loop, &s->tick);
    s->stopping = true;
    l2redis_destroy(s->redis); /* syncs in flight are answered as failed: their cells stay local */
    s->redis = NULL;
}
