/* The Redis second level as the gateway uses it (cache.redis): each loop thread has its own
 * client (cache/l2redis.c); an L1 miss that leads its key asks Redis (MGET of the entry and of
 * the path's invalidation mark, one round trip) before the origin; entries stored in L1 are
 * written to Redis with TTL = freshness left + grace. Invalidations are published on a channel;
 * every gateway subscribed (thread 0 holds the subscription) drops the path from its L1, and a
 * mark "path invalidated at T" in Redis makes every instance refuse L2 copies older than T.
 * Entries keyed on the origin's Vary stay L1-only. Redis down or slow: lookups count an error
 * and go to the origin; nothing waits longer than redis_timeout. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/keyhash.h"
#include "cache/l2redis.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/cachehook_priv.h"
#include "gateway/gwconf.h"
#include "gateway/redisdns.h"
#include "gateway/req.h"
#include "http/url.h"

#define CHL2_INV_TTL_MS (7ull * 24 * 3600 * 1000) /* longer than any entry lives in L2 */
#define CHL2_MARKER "AGV1" /* a Vary marker in L2: these 4 bytes, then the origin's Vary names */
#define CHL2_ENVELOPE                                                                              \
    "AGE1" /* an entry in L2: these 4 bytes, 16 hex digits (purge sequence), blob */
#define CHL2_ENV_LEN 20
#define CHL2_MAX_MARKS 1024  /* prefix purge marks kept (Redis and memory); more: purge-all */
#define CHL2_POLL_MS 1000    /* thread 0: pending purges sent, marks reloaded when due */
#define CHL2_RELOAD_MS 5000  /* marks reloaded from Redis at least this often */
#define CHL2_MAX_PENDING 256 /* prefix purges waiting for Redis to come back */
#define CHL2_VIEW_MS 500     /* each thread's view of Redis is copied for /stats this often */

/* A prefix purge in Redis (one script, so O(1) whatever L2 holds): the purge sequence becomes
 * max(Redis time in microseconds, last + 1), the mark <prefix> = sequence goes into the marks
 * hash (an empty prefix, purge-all, replaces every mark; so does a purge that finds the hash
 * full), and every gateway is told "<instance> S <sequence> <prefix>". KEYS: sequence, marks;
 * ARGV: prefix, channel, instance. Both keys carry the hash tag {purge} (one cluster slot). */
static const char chl2__purge_lua[] =
    "local t = redis.call('TIME')\n"
    "local s = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local last = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "if s <= last then s = last + 1 end\n"
    "local ss = string.format('%.0f', s)\n"
    "redis.call('SET', KEYS[1], ss)\n"
    "local p = ARGV[1]\n"
    "if p == '' or redis.call('HLEN', KEYS[2]) >= 1024 then p = ''; redis.call('DEL', KEYS[2]) "
    "end\n"
    "redis.call('HSET', KEYS[2], p, ss)\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' S ' .. ss .. ' ' .. p)\n"
    "return ss\n";
/* The purge state: the sequence, then the marks hash's fields and values. */
static const char chl2__load_lua[] = "local r = redis.call('HGETALL', KEYS[2])\n"
                                     "table.insert(r, 1, redis.call('GET', KEYS[1]) or '0')\n"
                                     "return r\n";

/* Every entry of L2 was stamped with the purge sequence its gateway knew when the request that
 * fetched it began; a prefix mark refuses the entries under its prefix stamped before it. */
struct chl2_mark {
    char *prefix; // "" for everything; "#T": tag T purged, "~T": tag T soft-purged (stale)
    size_t len;
    uint64_t seq;
};
#define CHL2_IS_TAG(m) ((m)->len > 1 && ((m)->prefix[0] == '#' || (m)->prefix[0] == '~'))

static void chl2__on_get(void *arg, enum l2redis_status st, const char *const *vals,
                         const size_t *lens, size_t n);
static bool chl2__mget(struct chl2 *l, struct gw_req *r, struct chreq *cr);

/* One loop thread's view of its Redis (nodes, slots, errors), copied on its loop for the admin
 * thread, which cannot read a client that lives on another thread. */
struct chl2_view {
    struct chl2 *l;
    size_t index;
    struct loop *loop;
    struct loop_timer timer;
    bool valid; // under l->view_mu, as v
    struct l2redis_view v;
};

struct chl2 {
    struct cachehook *ch;
    struct l2redis **clients; // per loop thread (index = gwthread.index)
    size_t n;
    const char *prefix;
    const char *channel;
    char instance[24]; // our id in purge messages (our own are not applied twice)
    uint64_t max_object;
    /* A Redis host given by name is resolved by a resolver thread of our own (refreshed every
     * 30 s, the last good addresses kept), as upstream names are: never on a loop thread. */
    struct redisdns dns;
    /* prefix purges (all threads read them, thread 0 writes them) */
    pthread_mutex_t mu;
    struct chl2_mark *marks;
    size_t nmarks;
    _Atomic uint64_t seq; // highest purge sequence learned
    char **pending;       // prefix purges not sent yet (Redis down): thread 0 retries
    size_t npending;
    /* thread 0 */
    struct loop_timer poll;
    struct loop *loop0;
    uint64_t loaded_ms; // last reload of the marks
    bool reload, loading;
    char seq_key[160], marks_key[160];
    pthread_mutex_t view_mu;
    struct chl2_view *views; // per loop thread
};

struct chl2 *chl2_create(struct cachehook *ch)
{
    const struct gw_config *cfg = ch->sh->cfg;
    if (cfg->cache.redis == NULL || cfg->cache.redis[0] == '\0')
        return NULL;
    struct chl2 *l = xcalloc(1, sizeof(*l));
    l->ch = ch;
    l->n = ch->nthreads;
    l->clients = xcalloc(l->n, sizeof(*l->clients));
    l->prefix = cfg->cache.redis_prefix ? cfg->cache.redis_prefix : "apigate:";
    l->channel = cfg->cache.redis_channel ? cfg->cache.redis_channel : "apigate:purge";
    l->max_object = cfg->cache.redis_max_object_size;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->view_mu, NULL);
    l->views = xcalloc(l->n, sizeof(*l->views));
    snprintf(l->seq_key, sizeof(l->seq_key), "%s{purge}:seq", l->prefix);
    snprintf(l->marks_key, sizeof(l->marks_key), "%s{purge}:marks", l->prefix);
    snprintf(l->instance, sizeof(l->instance), "%llx",
             (unsigned long long)(clock_wall_ms() * 2654435761u ^ (uint64_t)getpid()));
    redisdns_start(&l->dns, cfg->cache.redis, "cache l2");
    return l;
}

long chl2_agree_secret(struct chl2 *l, const char *proposal, size_t plen, char *out, size_t outlen)
{
    const struct gw_cache *cc = &l->ch->sh->cfg->cache;
    struct l2redis_conf conf = {
        .url = cc->redis, .resolve = redisdns_hook(&l->dns), .resolve_arg = &l->dns};
    char key[512], err[256];
    snprintf(key, sizeof(key), "%skey-secret", l->prefix);
    /* a start is not held up longer than this by a slow or wrong peer */
    uint64_t timeout = cc->redis_timeout_ms > 1000 ? cc->redis_timeout_ms : 1000;
    long n = l2redis_agree(&conf, key, proposal, plen, out, outlen, KEYHASH_MIN_SECRET, timeout,
                           err, sizeof(err));
    if (n < 0)
        ag_log(AG_LOG_WARN,
               "cache l2: no key secret agreed through Redis (%s): this worker uses "
               "its own, so the entries of varied routes (vary, the origin's Vary) "
               "are not shared with other gateways; set cache.key_secret_file",
               err);
    return n;
}

void chl2_destroy(struct chl2 *l)
{
    if (l == NULL)
        return;
    redisdns_stop(&l->dns);
    for (size_t i = 0; i < l->nmarks; i++)
        free(l->marks[i].prefix);
    free(l->marks);
    for (size_t i = 0; i < l->npending; i++)
        free(l->pending[i]);
    free(l->pending);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->view_mu);
    free(l->views);
    free(l->clients);
    free(l);
}

/* ---- prefix purges: marks ---- */

uint64_t chl2_seq(const struct chl2 *l)
{
    return l != NULL ? atomic_load(&l->seq) : 0;
}

static void chl2__marks_clear(struct chl2 *l)
{
    for (size_t i = 0; i < l->nmarks; i++)
        free(l->marks[i].prefix);
    l->nmarks = 0;
}

/* Adds mark <p> = <seq>, under l->mu. An empty prefix (everything) replaces every mark. */
static void chl2__mark_add(struct chl2 *l, const char *p, size_t n, uint64_t seq)
{
    if (n == 0 || l->nmarks >= CHL2_MAX_MARKS)
        chl2__marks_clear(l);
    for (size_t i = 0; i < l->nmarks; i++) {
        struct chl2_mark *m = &l->marks[i];
        if (m->len == n && memcmp(m->prefix, p, n) == 0) {
            if (seq > m->seq)
                m->seq = seq;
            return;
        }
    }
    if (l->marks == NULL)
        l->marks = xcalloc(CHL2_MAX_MARKS, sizeof(*l->marks));
    struct chl2_mark *m = &l->marks[l->nmarks++];
    m->prefix = xmalloc(n + 1);
    memcpy(m->prefix, p, n);
    m->prefix[n] = '\0';
    m->len = n;
    m->seq = seq;
}

static void chl2__seq_learn(struct chl2 *l, uint64_t seq)
{
    uint64_t cur = atomic_load(&l->seq);
    while (seq > cur && !atomic_compare_exchange_weak(&l->seq, &cur, seq))
        ;
}

/* True when a mark refuses an L2 entry stamped <seq> under primary key <key>: the mark is newer
 * and its prefix starts the key's path (and query), as cache_purge's prefixes do. Under l->mu. */
static bool chl2__refused(const struct chl2 *l, const char *key, size_t primary_len, uint64_t seq)
{
    const char *path;
    size_t plen;
    cache_key_path(key, primary_len, &path, &plen);
    size_t whole = primary_len - (size_t)(path - key);
    for (size_t i = 0; i < l->nmarks; i++) {
        const struct chl2_mark *m = &l->marks[i];
        if (m->seq > seq && !CHL2_IS_TAG(m) && whole >= m->len &&
            memcmp(path, m->prefix, m->len) == 0)
            return true;
    }
    return false;
}

/* What the tag marks newer than <seq> do to entry <e>: CACHE_TAG_GONE, _STALE or _NONE. Under
 * l->mu. */
static unsigned char chl2__tag_verdict(const struct chl2 *l, const struct cache_entry *e,
                                       uint64_t seq)
{
    unsigned char v = CACHE_TAG_NONE;
    for (size_t i = 0; e->tags != NULL && i < l->nmarks && v != CACHE_TAG_GONE; i++) {
        const struct chl2_mark *m = &l->marks[i];
        if (m->seq > seq && CHL2_IS_TAG(m) && cache_entry_has_tag(e, m->prefix + 1, m->len - 1))
            v = m->prefix[0] == '#' ? CACHE_TAG_GONE : CACHE_TAG_STALE;
    }
    return v;
}

static uint64_t chl2__parse_u64(const char *v, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 20; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    return x;
}

/* The purge state read from Redis (chl2__load_lua): it replaces the marks. */
static void chl2__on_load(void *arg, enum l2redis_status st, const char *const *vals,
                          const size_t *lens, size_t n)
{
    struct chl2 *l = arg;
    l->loading = false;
    if (st == L2REDIS_ERROR || n == 0 || n % 2 == 0)
        return; /* tried again at the next poll */
    l->reload = false;
    l->loaded_ms = loop_now_ms(l->loop0);
    pthread_mutex_lock(&l->mu);
    chl2__marks_clear(l);
    for (size_t i = 1; i + 1 < n; i += 2)
        if (vals[i] != NULL && vals[i + 1] != NULL)
            chl2__mark_add(l, vals[i], lens[i], chl2__parse_u64(vals[i + 1], lens[i + 1]));
    pthread_mutex_unlock(&l->mu);
    if (vals[0] != NULL)
        chl2__seq_learn(l, chl2__parse_u64(vals[0], lens[0]));
}

/* Sends prefix purge <p> to Redis on <r>; -1 when Redis is unavailable now. */
static int chl2__purge_send(struct chl2 *l, struct l2redis *r, const char *p, size_t n)
{
    const char *argv[] = {"EVAL", chl2__purge_lua, "2",        l->seq_key, l->marks_key,
                          p,      l->channel,      l->instance};
    size_t argl[] = {4,
                     strlen(chl2__purge_lua),
                     1,
                     strlen(l->seq_key),
                     strlen(l->marks_key),
                     n,
                     strlen(l->channel),
                     strlen(l->instance)};
    return l2redis_send(r, 8, argv, argl, 3);
}

/* Thread 0, every CHL2_POLL_MS: sends the purges that waited for Redis, reloads the marks when
 * the subscription was (re)made or CHL2_RELOAD_MS passed. */
static void chl2__poll_cb(struct loop *loop, void *arg)
{
    struct chl2 *l = arg;
    struct l2redis *r = l->clients[0];
    if (r != NULL && l2redis_connected(r)) {
        pthread_mutex_lock(&l->mu);
        size_t sent = 0;
        while (sent < l->npending &&
               chl2__purge_send(l, r, l->pending[sent], strlen(l->pending[sent])) == 0)
            free(l->pending[sent++]);
        if (sent > 0) { // l->pending is NULL until a purge waited: memmove(NULL, ..) is UB
            memmove(l->pending, l->pending + sent, (l->npending - sent) * sizeof(*l->pending));
            l->npending -= sent;
        }
        pthread_mutex_unlock(&l->mu);
        uint64_t now = loop_now_ms(loop);
        if (!l->loading && (l->reload || now - l->loaded_ms >= CHL2_RELOAD_MS)) {
            const char *argv[] = {"EVAL", chl2__load_lua, "2", l->seq_key, l->marks_key};
            size_t argl[] = {4, strlen(chl2__load_lua), 1, strlen(l->seq_key),
                             strlen(l->marks_key)};
            l->loading = l2redis_command(r, 5, argv, argl, 3, 2 * CHL2_MAX_MARKS + 2, chl2__on_load,
                                         l) != NULL;
        }
    }
    loop_timer_start(loop, &l->poll, CHL2_POLL_MS);
}

/* A purge message from any gateway: "<instance> P <path>" (a path, every query and variant),
 * "<instance> S <sequence> <prefix>" (a prefix purge that Redis ordered: the mark first, then
 * L1; our own too, since an L2 copy may have refilled our L1 before the mark came back), or
 * "<instance> X <prefix>" (from gateways before prefix marks). NULL: (re)subscribed, reload. */
static void chl2__on_msg(void *arg, const char *msg, size_t len)
{
    struct chl2 *l = arg;
    if (msg == NULL) {
        l->reload = true;
        if (l->loop0 != NULL)
            loop_timer_start(l->loop0, &l->poll, 0);
        return;
    }
    const char *sp = memchr(msg, ' ', len);
    if (sp == NULL || (size_t)(sp - msg) + 3 > len)
        return;
    size_t il = (size_t)(sp - msg);
    bool ours = il == strlen(l->instance) && memcmp(msg, l->instance, il) == 0;
    char kind = sp[1];
    const char *path = sp + 3;
    size_t plen = len - (size_t)(path - msg);
    struct cache *c = l->ch->cache;
    if (kind == 'S') {
        const char *e = memchr(path, ' ', plen);
        if (e == NULL)
            return;
        uint64_t seq = chl2__parse_u64(path, (size_t)(e - path));
        const char *p = e + 1;
        size_t n = plen - (size_t)(p - path);
        pthread_mutex_lock(&l->mu);
        chl2__mark_add(l, p, n, seq);
        pthread_mutex_unlock(&l->mu);
        chl2__seq_learn(l, seq);
        if (n > 1 && (p[0] == '#' || p[0] == '~'))
            cache_purge_tag(c, p + 1, n - 1, p[0] == '~');
        else
            cache_purge(c, n == 0 ? "*" : p, n == 0 ? 1 : n, true);
        return;
    }
    if (ours)
        return; /* applied when it happened */
    if (kind == 'P')
        cache_invalidate_path(c, NULL, 0, path, plen);
    else if (kind == 'X')
        cache_purge(c, path, plen, true);
}

static void chl2__view_cb(struct loop *loop, void *arg)
{
    struct chl2_view *w = arg;
    struct chl2 *l = w->l;
    struct l2redis *r = l->clients[w->index];
    if (r == NULL)
        return;
    static _Thread_local struct l2redis_view v; // 6 KB: not on the loop's stack
    l2redis_view(r, &v);
    pthread_mutex_lock(&l->view_mu);
    w->v = v;
    w->valid = true;
    pthread_mutex_unlock(&l->view_mu);
    loop_timer_start(loop, &w->timer, CHL2_VIEW_MS);
}

void chl2_thread_start(struct cachehook *ch, struct gwthread *th)
{
    struct chl2 *l = ch->l2;
    if (l == NULL || th->index >= l->n)
        return;
    const struct gw_cache *cc = &th->sh->cfg->cache;
    struct l2redis_conf conf = {.url = cc->redis,
                                .timeout_ms = cc->redis_timeout_ms,
                                .reconnect_ms = cc->redis_reconnect_ms,
                                /* an entry and the invalidation mark, with room to spare */
                                .max_reply = 2 * (size_t)l->max_object + 65536,
                                .resolve = redisdns_hook(&l->dns),
                                .resolve_arg = &l->dns};
    l->clients[th->index] =
        l2redis_create(th->loop, &conf, l->channel, th->index == 0 ? chl2__on_msg : NULL, l);
    struct chl2_view *w = &l->views[th->index];
    w->l = l;
    w->index = th->index;
    w->loop = th->loop;
    loop_timer_init(&w->timer, chl2__view_cb, w);
    loop_timer_start(th->loop, &w->timer, 0);
    if (th->index == 0) {
        l->loop0 = th->loop;
        l->reload = true;
        loop_timer_init(&l->poll, chl2__poll_cb, l);
        loop_timer_start(th->loop, &l->poll, 0);
    }
}

void chl2_thread_stop(struct cachehook *ch, struct gwthread *th)
{
    struct chl2 *l = ch->l2;
    if (l == NULL || th->index >= l->n)
        return;
    if (th->index == 0 && l->loop0 != NULL) {
        loop_timer_stop(th->loop, &l->poll);
        l->loop0 = NULL;
    }
    struct chl2_view *w = &l->views[th->index];
    if (w->loop != NULL)
        loop_timer_stop(th->loop, &w->timer);
    pthread_mutex_lock(&l->view_mu);
    w->valid = false;
    pthread_mutex_unlock(&l->view_mu);
    l2redis_destroy(l->clients[th->index]);
    l->clients[th->index] = NULL;
}

/* The loop threads' views merged: a node once (its errors summed over the threads, connected
 * when every thread that knows it is), the slots covered by the thread that covers fewest, and
 * the failovers the thread that saw most saw (each thread sees the same ones). */
void chl2_stats_json(struct chl2 *l, struct buf *out)
{
    if (l == NULL)
        return;
    static const size_t max = L2REDIS_VIEW_NODES;
    struct l2redis_node_view *nodes = xcalloc(max, sizeof(*nodes));
    size_t n = 0, covered = SIZE_MAX;
    uint64_t failovers = 0, redirects = 0;
    const char *mode = NULL;
    pthread_mutex_lock(&l->view_mu);
    for (size_t t = 0; t < l->n; t++) {
        const struct chl2_view *w = &l->views[t];
        if (!w->valid)
            continue;
        mode = w->v.mode;
        covered = w->v.slots_covered < covered ? w->v.slots_covered : covered;
        failovers = w->v.failovers > failovers ? w->v.failovers : failovers;
        redirects += w->v.redirects;
        for (size_t i = 0; i < w->v.n; i++) {
            const struct l2redis_node_view *nv = &w->v.node[i];
            size_t j = 0;
            while (j < n && strcmp(nodes[j].addr, nv->addr) != 0)
                j++;
            if (j == n) {
                if (n == max)
                    continue;
                nodes[n++] = *nv;
                continue;
            }
            nodes[j].connected = nodes[j].connected && nv->connected;
            nodes[j].errors += nv->errors;
            nodes[j].slots = nv->slots > nodes[j].slots ? nv->slots : nodes[j].slots;
            if (nv->slots > 0)
                nodes[j].role = nv->role;
        }
    }
    pthread_mutex_unlock(&l->view_mu);
    size_t connected = 0;
    for (size_t i = 0; i < n; i++)
        connected += nodes[i].connected;
    buf_printf(out, ",\"mode\":\"%s\",\"nodes_known\":%zu,\"nodes_connected\":%zu",
               mode ? mode : "unknown", n, connected);
    if (mode != NULL && strcmp(mode, "cluster") == 0)
        buf_printf(out, ",\"slots_covered\":%zu", covered == SIZE_MAX ? 0 : covered);
    buf_printf(out,
               ",\"failovers\":%llu,\"redirects\":%llu,\"prefix\":", (unsigned long long)failovers,
               (unsigned long long)redirects);
    buf_append_json_str(out, l->prefix, strlen(l->prefix));
    buf_append_str(out, ",\"nodes\":[");
    for (size_t i = 0; i < n; i++) {
        buf_append_str(out, i ? ",{\"addr\":" : "{\"addr\":");
        buf_append_json_str(out, nodes[i].addr, strlen(nodes[i].addr));
        buf_printf(out, ",\"role\":\"%s\",\"connected\":%s,\"slots\":%u,\"errors\":%llu}",
                   nodes[i].role, nodes[i].connected ? "true" : "false", nodes[i].slots,
                   (unsigned long long)nodes[i].errors);
    }
    buf_append_str(out, "]");
    free(nodes);
}

/* The Redis key of cache key <k> (<n> bytes; its first <primary_len> are the primary key):
 * <prefix>{<path>}<k>. The hash tag {<path>} puts the entry, its variants' marker and the path's
 * invalidation mark in one Redis Cluster slot, so one MGET reads them. */
static void chl2__key(const struct chl2 *l, const char *k, size_t n, size_t primary_len,
                      struct buf *out)
{
    const char *path;
    size_t plen;
    cache_key_path(k, primary_len, &path, &plen);
    buf_append_str(out, l->prefix);
    buf_append_str(out, "{");
    buf_append(out, path, plen);
    buf_append_str(out, "}");
    buf_append(out, k, n);
}

/* The invalidation mark of a normalized path: <prefix>inv:{<path>}. */
static void chl2__inv_key(const struct chl2 *l, const char *path, size_t n, struct buf *out)
{
    buf_append_str(out, l->prefix);
    buf_append_str(out, "inv:{");
    buf_append(out, path, n);
    buf_append_str(out, "}");
}

/* The purge sequence an L2 value was stamped with, and the blob after its envelope (a value
 * without one, from an older gateway, is stamped 0: every matching mark refuses it). */
static uint64_t chl2__envelope(const char **blob, size_t *len)
{
    if (*len < CHL2_ENV_LEN || memcmp(*blob, CHL2_ENVELOPE, 4) != 0)
        return 0;
    uint64_t seq = 0;
    for (size_t i = 4; i < CHL2_ENV_LEN; i++) {
        char ch = (*blob)[i];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                              : 16;
        if (d == 16)
            return 0;
        seq = seq << 4 | d;
    }
    *blob += CHL2_ENV_LEN;
    *len -= CHL2_ENV_LEN;
    return seq;
}

static void chl2__on_get(void *arg, enum l2redis_status st, const char *const *vals,
                         const size_t *lens, size_t n)
{
    struct gw_req *r = arg;
    struct chreq *cr = cachehook__cr(r);
    struct cachehook *ch = r->th->sh->cache;
    cr->l2 = NULL;
    if (st == L2REDIS_HIT && n == 2 && vals[0] != NULL && lens[0] >= 4 &&
        memcmp(vals[0], CHL2_MARKER, 4) == 0 && !cr->l2_varied) {
        /* the origin varies this URI: key again with the named request headers, ask again */
        struct buf k = BUF_INIT;
        policy_build_key(&cr->route->pc, &r->req, vals[0] + 4, lens[0] - 4, &k);
        cache_insert_marker(ch->cache, k.data, cr->base_len, cr->primary_len, vals[0] + 4,
                            lens[0] - 4, loop_now_ms(r->th->loop), 60000);
        free(cr->key);
        cr->key = xmalloc(k.len + 1);
        memcpy(cr->key, k.data, k.len);
        cr->key_len = k.len;
        buf_deinit(&k);
        cr->l2_varied = true;
        if (chl2__mget(ch->l2, r, cr))
            return;
        st = L2REDIS_ERROR;
    }
    if (st == L2REDIS_HIT && n == 2 && vals[0] != NULL) {
        const char *blob = vals[0];
        size_t blen = lens[0];
        uint64_t eseq = chl2__envelope(&blob, &blen);
        uint64_t stored = cache_serialized_stored_wall(blob, blen);
        uint64_t inv = 0;
        if (vals[1] != NULL) {
            char tmp[32];
            size_t k = lens[1] < sizeof(tmp) - 1 ? lens[1] : sizeof(tmp) - 1;
            memcpy(tmp, vals[1], k);
            tmp[k] = '\0';
            inv = strtoull(tmp, NULL, 10);
        }
        uint64_t now = loop_now_ms(r->th->loop);
        struct store_obj *o = NULL;
        /* checked and inserted under the marks' lock: a prefix purge arriving meanwhile either
         * refuses it here or finds it in L1 when it walks the store after adding its mark */
        struct chl2 *l = ch->l2;
        pthread_mutex_lock(&l->mu);
        if (stored != 0 && stored > inv && !chl2__refused(l, cr->key, cr->primary_len, eseq))
            o = cache_insert_serialized(ch->cache, blob, blen, cr->key, cr->key_len,
                                        cr->primary_len, cr->path_gen, now, clock_wall_ms());
        unsigned char tagged = CACHE_TAG_NONE;
        if (o != NULL) { /* purged by one of its tags since: gone, or kept stale in L1 */
            struct cache_entry *ne = o->payload;
            tagged = chl2__tag_verdict(l, ne, eseq);
            if (tagged != CACHE_TAG_NONE)
                atomic_store(&ne->tag_purged, tagged);
        }
        pthread_mutex_unlock(&l->mu);
        if (o != NULL && tagged == CACHE_TAG_GONE) {
            cache_release(ch->cache, o);
            o = NULL;
        }
        if (o != NULL) {
            const struct cache_entry *e = o->payload;
            uint64_t age = policy_age_ms(e->fresh.initial_age_ms, e->stored_ms, now);
            if (tagged == CACHE_TAG_NONE &&
                policy_usable(&e->fresh, age, &cr->preq) == POLICY_USE_FRESH) {
                metrics_counter_inc(r->th->ms, ch->m_l2_hits);
                cachehook__finish_flight(ch, cr); /* waiters find it in L1 now */
                cachehook__serve(r, o, age, CACHE_HIT);
                cache_release(ch->cache, o);
                return;
            }
            cache_release(ch->cache, o);
        }
        metrics_counter_inc(r->th->ms, ch->m_l2_misses);
    } else if (st == L2REDIS_ERROR) {
        metrics_counter_inc(r->th->ms, ch->m_l2_errors);
    } else {
        metrics_counter_inc(r->th->ms, ch->m_l2_misses);
    }
    cachehook__count(r, cr->st);
    gw_req_continue(r);
}

/* MGET of the entry under cr->key (the base key, or the full key once a marker was seen) and of
 * the path's invalidation mark. */
static bool chl2__mget(struct chl2 *l, struct gw_req *r, struct chreq *cr)
{
    struct l2redis *rc = l->clients[r->th->index];
    const char *path;
    size_t plen;
    cache_key_path(cr->key, cr->primary_len, &path, &plen);
    struct buf k1 = BUF_INIT, k2 = BUF_INIT;
    chl2__key(l, cr->key, cr->key_len, cr->primary_len, &k1);
    chl2__inv_key(l, path, plen, &k2);
    const char *keys[2] = {k1.data, k2.data};
    size_t lens[2] = {k1.len, k2.len};
    cr->l2 = l2redis_mget(rc, keys, lens, 2, chl2__on_get, r);
    buf_deinit(&k1);
    buf_deinit(&k2);
    return cr->l2 != NULL;
}

bool chl2_lookup(struct cachehook *ch, struct gw_req *r, struct chreq *cr)
{
    struct chl2 *l = ch->l2;
    if (l == NULL || l->clients[r->th->index] == NULL || r->req.method_id != H1_M_GET)
        return false;
    struct l2redis *rc = l->clients[r->th->index];
    if (!l2redis_connected(rc)) {
        metrics_counter_inc(r->th->ms, ch->m_l2_errors);
        return false; /* down: straight to the origin, no waiting */
    }
    if (!chl2__mget(l, r, cr)) {
        metrics_counter_inc(r->th->ms, ch->m_l2_errors);
        return false;
    }
    return true;
}

void chl2_request_end(struct cachehook *ch, struct gw_req *r, struct chreq *cr)
{
    (void)ch;
    (void)r;
    if (cr->l2 != NULL) {
        l2redis_cancel(cr->l2);
        cr->l2 = NULL;
    }
}

void chl2_store(struct cachehook *ch, struct gwthread *th, struct store_obj *o, uint64_t seq)
{
    struct chl2 *l = ch->l2;
    if (l == NULL || th == NULL || l->clients[th->index] == NULL)
        return;
    const struct cache_entry *e = o->payload;
    if (e->marker || e->head_len + e->body_len > l->max_object)
        return;
    uint64_t now = loop_now_ms(th->loop);
    uint64_t ttl = cache_entry_ttl_ms(e, now);
    if (ttl < 1000)
        return; /* gone before another gateway could use it */
    struct buf k = BUF_INIT, v = BUF_INIT;
    chl2__key(l, o->key, o->key_len, o->primary_len, &k);
    buf_printf(&v, "%s%016llx", CHL2_ENVELOPE, (unsigned long long)seq);
    cache_entry_serialize(e, now, clock_wall_ms(), &v);
    l2redis_set(l->clients[th->index], k.data, k.len, v.data, v.len, ttl);
    if (e->varied && e->vary != NULL && e->base_len <= o->key_len) {
        /* the marker under the base key tells other gateways which headers to key on */
        buf_reset(&k);
        buf_reset(&v);
        chl2__key(l, o->key, e->base_len, o->primary_len, &k);
        buf_append_str(&v, CHL2_MARKER);
        buf_append(&v, e->vary, e->vary_len);
        l2redis_set(l->clients[th->index], k.data, k.len, v.data, v.len, ttl + 60000);
    }
    buf_deinit(&k);
    buf_deinit(&v);
}

/* Sends a purge: for a path, a message and the invalidation mark; for a prefix, the purge script
 * (kept for thread 0's poll while Redis is unavailable). Loop thread only. */
static void chl2__publish_on(struct chl2 *l, struct l2redis *r, char kind, const char *p, size_t n)
{
    if (kind == 'X') {
        if (n == 1 && (p[0] == '*' || p[0] == '/'))
            n = 0; /* everything */
        if (chl2__purge_send(l, r, p, n) == 0)
            return;
        pthread_mutex_lock(&l->mu);
        if (l->pending == NULL)
            l->pending = xcalloc(CHL2_MAX_PENDING, sizeof(*l->pending));
        if (l->npending >= CHL2_MAX_PENDING || n == 0) { /* too many: all of them is one */
            for (size_t i = 0; i < l->npending; i++)
                free(l->pending[i]);
            l->npending = 0;
            n = 0;
        }
        char *copy = xmalloc(n + 1);
        memcpy(copy, p, n);
        copy[n] = '\0';
        l->pending[l->npending++] = copy;
        pthread_mutex_unlock(&l->mu);
        static struct log_limit purge_lim; // one per purge request while Redis is away
        ag_log_limited(AG_LOG_WARN, &purge_lim,
                       "cache l2: prefix purge '%.*s' waits for Redis (L1 purged now)",
                       (int)(n < 200 ? n : 200), p);
        return;
    }
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "%s %c ", l->instance, kind);
    buf_append(&msg, p, n);
    l2redis_publish(r, l->channel, msg.data, msg.len);
    if (kind == 'P') {
        struct buf k = BUF_INIT;
        chl2__inv_key(l, p, n, &k);
        char now[32];
        int nl = snprintf(now, sizeof(now), "%llu", (unsigned long long)clock_wall_ms());
        l2redis_set(r, k.data, k.len, now, (size_t)nl, CHL2_INV_TTL_MS);
        buf_deinit(&k);
    }
    buf_deinit(&msg);
}

struct chl2_post {
    struct chl2 *l;
    char kind;
    size_t n;
    char p[];
};

static void chl2__post_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct chl2_post *m = arg;
    if (m->l->clients[0] != NULL)
        chl2__publish_on(m->l, m->l->clients[0], m->kind, m->p, m->n);
    free(m);
}

void chl2_publish_tag(struct cachehook *ch, struct gwthread *th, const char *tag, size_t len,
                      bool soft)
{
    if (ch->l2 == NULL || len == 0)
        return;
    /* a mark of the marks hash: "#T" (gone) or "~T" (stale), sent as a prefix purge is */
    char *field = xmalloc(len + 2);
    field[0] = soft ? '~' : '#';
    memcpy(field + 1, tag, len);
    field[len + 1] = '\0';
    chl2_publish(ch, th, field, len + 1, true);
    free(field);
}

void chl2_publish(struct cachehook *ch, struct gwthread *th, const char *path, size_t len,
                  bool prefix)
{
    struct chl2 *l = ch->l2;
    if (l == NULL)
        return;
    /* exact paths travel normalized: the form the keys hold */
    struct buf norm = BUF_INIT;
    if (prefix || url_normalize_path(path, len, &norm) != 0) {
        buf_reset(&norm);
        buf_append(&norm, path, len);
    }
    char kind = prefix ? 'X' : 'P';
    if (th != NULL) {
        if (l->clients[th->index] != NULL)
            chl2__publish_on(l, l->clients[th->index], kind, norm.data, norm.len);
    } else if (ch->sh->threads != NULL && ch->sh->threads[0] != NULL) {
        /* the admin thread has no client: thread 0 publishes for it */
        struct chl2_post *m = xmalloc(sizeof(*m) + norm.len + 1);
        m->l = l;
        m->kind = kind;
        m->n = norm.len;
        memcpy(m->p, norm.data, norm.len);
        loop_post(ch->sh->threads[0]->loop, chl2__post_cb, m);
    }
    buf_deinit(&norm);
}
