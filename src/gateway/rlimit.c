/* Rate limit algorithms, the per-key table and the JWT claim reader (see rlimit.h). */
#include "gateway/rlimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/xmalloc.h"

void rlimit_policy_init(struct rlimit_policy *p, enum rlimit_algo algo, uint64_t count,
                        uint64_t period_ns, uint64_t burst)
{
    AG_ASSERT(count >= 1 && period_ns >= 1);
    memset(p, 0, sizeof(*p));
    p->algo = algo;
    p->count = count;
    p->period_ns = period_ns;
    p->burst = burst >= 1 ? burst : 1;
    p->t_ns = period_ns / count;
    if (p->t_ns == 0)
        p->t_ns = 1;
    /* burst * t_ns is how far a key's TAT may run ahead of now: cap it at 2^62 ns (146 years)
     * so that it and now + it never wrap (10,000,000 at 1/h would be 3.6e19 ns) */
    const uint64_t span_max = UINT64_C(1) << 62;
    if (p->burst > span_max / p->t_ns)
        p->burst = span_max / p->t_ns;
}

/* ---- GCRA ---- */

static void rlimit__gcra(const struct rlimit_policy *p, struct rlimit_cell *c, uint64_t now,
                         struct rlimit_verdict *v)
{
    uint64_t tau = p->burst * p->t_ns; // the most the TAT may run ahead of now, after a take
    uint64_t tat = c->a > now ? c->a : now;
    uint64_t next = tat + p->t_ns;
    if (next > now + tau) {
        v->allowed = false;
        v->remaining = 0;
        v->retry_ns = next - (now + tau);
        v->reset_ns = tat - now;
        return;
    }
    c->a = next;
    v->allowed = true;
    v->remaining = (now + tau - next) / p->t_ns;
    v->retry_ns = 0;
    v->reset_ns = next - now;
}

/* ---- windows ---- */

/* The key's counts as of <now>: the current window's and the previous one's. */
static void rlimit__roll(const struct rlimit_policy *p, const struct rlimit_cell *c, uint64_t now,
                         uint64_t *idx, uint64_t *cur, uint64_t *prev)
{
    *idx = now / p->period_ns + 1; // + 1: zero is a key never seen
    uint64_t ccur = c->b & 0xffffffffu, cprev = c->b >> 32;
    if (c->a == *idx) {
        *cur = ccur;
        *prev = cprev;
    } else if (c->a + 1 == *idx) {
        *cur = 0;
        *prev = ccur;
    } else {
        *cur = 0;
        *prev = 0;
    }
}

/* Sliding estimate: the previous window weighted by the part of it still inside the period
 * that ends now, plus the current window. */
static double rlimit__estimate(const struct rlimit_policy *p, uint64_t elapsed, uint64_t cur,
                               uint64_t prev)
{
    return (double)prev * (double)(p->period_ns - elapsed) / (double)p->period_ns + (double)cur;
}

static void rlimit__window(const struct rlimit_policy *p, struct rlimit_cell *c, uint64_t now,
                           struct rlimit_verdict *v)
{
    uint64_t idx, cur, prev;
    rlimit__roll(p, c, now, &idx, &cur, &prev);
    uint64_t elapsed = now - (idx - 1) * p->period_ns;
    uint64_t left = p->period_ns - elapsed; // until the current window ends
    double n = (double)p->count;
    bool ok;
    if (p->algo == RLIMIT_FIXED)
        ok = cur < p->count;
    else
        ok = rlimit__estimate(p, elapsed, cur + 1, prev) <= n;
    v->reset_ns = left;
    if (ok) {
        cur++;
        c->a = idx;
        c->b = (prev << 32) | cur;
        v->allowed = true;
        v->retry_ns = 0;
        if (p->algo == RLIMIT_FIXED) {
            v->remaining = p->count - cur;
        } else {
            double rem = n - rlimit__estimate(p, elapsed, cur, prev);
            v->remaining = rem > 0 ? (uint64_t)rem : 0;
        }
        return;
    }
    c->a = idx; // keep the rolled counts
    c->b = (prev << 32) | cur;
    v->allowed = false;
    v->remaining = 0;
    if (p->algo == RLIMIT_FIXED) {
        v->retry_ns = left;
        return;
    }
    /* The estimate falls as the previous window slides out: find when one more fits. */
    double per = (double)p->period_ns;
    if (cur + 1 > p->count) {
        /* not in this window: in the next, the current count becomes the previous one */
        double e = per * (1.0 - (n - 1.0) / (double)cur);
        v->retry_ns = left + (e > 0 ? (uint64_t)e + 1 : 0);
    } else {
        double e = per - per * (n - 1.0 - (double)cur) / (double)prev; // prev > 0 here
        uint64_t at = e > 0 ? (uint64_t)e + 1 : 0;
        v->retry_ns = at > elapsed ? at - elapsed : 1;
        if (v->retry_ns > left)
            v->retry_ns = left;
    }
}

void rlimit_take(const struct rlimit_policy *p, struct rlimit_cell *c, uint64_t now_ns,
                 struct rlimit_verdict *v)
{
    if (p->algo == RLIMIT_GCRA)
        rlimit__gcra(p, c, now_ns, v);
    else
        rlimit__window(p, c, now_ns, v);
}

/* How far <c> is from a whole quota; 0 when idle. The table evicts the lowest. */
static uint64_t rlimit__load(const struct rlimit_policy *p, const struct rlimit_cell *c,
                             uint64_t now)
{
    if (p->algo == RLIMIT_GCRA)
        return c->a > now ? c->a - now : 0;
    uint64_t idx, cur, prev;
    rlimit__roll(p, c, now, &idx, &cur, &prev);
    if (p->algo == RLIMIT_FIXED)
        return cur;
    double e = rlimit__estimate(p, now - (idx - 1) * p->period_ns, cur, prev) * 1024.0;
    return e > 0 ? (uint64_t)e + (cur > 0 || prev > 0) : 0;
}

bool rlimit_cell_idle(const struct rlimit_policy *p, const struct rlimit_cell *c, uint64_t now_ns)
{
    return rlimit__load(p, c, now_ns) == 0;
}

/* ---- the table ---- */

#define RLIMIT__NOBUDGET UINT32_MAX

#define RLIMIT_SHARDS 64u
#define RLIMIT_WAYS 8u

struct rlimit_slot {
    uint64_t key; // 0: free
    struct rlimit_cell c;
};

/* A cell's sync state (rlimit_table_sync_enable), at the same index as its slot. */
struct rlimit_sync {
    uint32_t pending; // admitted since the last report
    bool dirty;       // listed in the shard's dirty list
    bool inflight;    // reported, answer not merged yet
    bool named;       // <name> is the key's (a key taken without a name is never reported)
    uint32_t budget;  // windows: admissions left until the next merge (RLIMIT__NOBUDGET: no limit)
    uint64_t wend;    // windows: when the Redis window of <budget> ends (0: unknown)
    char name[RLIMIT_NAME_LEN];
};

struct rlimit_shard {
    _Alignas(64) pthread_mutex_t mu;
    struct rlimit_slot *slots; // nbuckets * RLIMIT_WAYS
    _Atomic uint64_t evictions;
    struct rlimit_sync *sync; // NULL: no sharing
    uint32_t *dirty;          // indices of cells active since their last report
    size_t ndirty;
};

struct rlimit_table {
    struct rlimit_policy p;
    size_t nbuckets; // per shard
    size_t drain_next; // the shard the next drain starts with (fairness when <max> cuts it)
    struct rlimit_shard shards[RLIMIT_SHARDS];
};

struct rlimit_table *rlimit_table_create(const struct rlimit_policy *p, size_t max_keys)
{
    struct rlimit_table *t = xcalloc(1, sizeof(*t));
    t->p = *p;
    size_t per = RLIMIT_SHARDS * RLIMIT_WAYS;
    t->nbuckets = (max_keys + per - 1) / per;
    if (t->nbuckets == 0)
        t->nbuckets = 1;
    for (size_t i = 0; i < RLIMIT_SHARDS; i++) {
        pthread_mutex_init(&t->shards[i].mu, NULL);
        t->shards[i].slots = xcalloc(t->nbuckets * RLIMIT_WAYS, sizeof(struct rlimit_slot));
    }
    return t;
}

void rlimit_table_destroy(struct rlimit_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < RLIMIT_SHARDS; i++) {
        pthread_mutex_destroy(&t->shards[i].mu);
        free(t->shards[i].slots);
        free(t->shards[i].sync);
        free(t->shards[i].dirty);
    }
    free(t);
}

static struct rlimit_shard *rlimit__shard(struct rlimit_table *t, uint64_t key)
{
    return &t->shards[key % RLIMIT_SHARDS];
}

static size_t rlimit__bucket(const struct rlimit_table *t, uint64_t key)
{
    return ((key / RLIMIT_SHARDS) % t->nbuckets) * RLIMIT_WAYS;
}

/* The cell of <key> in its (locked) shard: found, else a free or idle one, else the bucket's
 * least loaded (counted as an eviction). <fresh>: the cell is new to the key. */
static size_t rlimit__slot(struct rlimit_table *t, struct rlimit_shard *sh, uint64_t key,
                           uint64_t now_ns, bool *fresh)
{
    size_t base = rlimit__bucket(t, key);
    struct rlimit_slot *b = sh->slots + base;
    size_t victim = 0;
    uint64_t vload = UINT64_MAX;
    for (unsigned i = 0; i < RLIMIT_WAYS; i++) {
        if (b[i].key == key) {
            *fresh = false;
            return base + i;
        }
        uint64_t load = b[i].key == 0 ? 0 : rlimit__load(&t->p, &b[i].c, now_ns);
        if (load < vload) {
            vload = load;
            victim = i;
        }
    }
    if (vload > 0)
        atomic_fetch_add_explicit(&sh->evictions, 1, memory_order_relaxed);
    struct rlimit_slot *s = &b[victim];
    s->key = key;
    memset(&s->c, 0, sizeof(s->c));
    if (sh->sync != NULL) { /* the old key's report is dropped; a listed cell stays listed */
        struct rlimit_sync *y = &sh->sync[base + victim];
        y->pending = 0;
        y->inflight = false;
    }
    *fresh = true;
    return base + victim;
}

/* A shared window's lease, as a budget. */
static uint32_t rlimit__lease(const struct rlimit_policy *p)
{
    uint64_t l = rlimit_window_lease(p);
    return l < RLIMIT__NOBUDGET ? (uint32_t)l : RLIMIT__NOBUDGET - 1;
}

/* A shared window's take: the local window, within the budget of the last merge. */
static void rlimit__take_budget(const struct rlimit_policy *p, struct rlimit_cell *c,
                                struct rlimit_sync *y, uint64_t now, struct rlimit_verdict *v)
{
    if (y->wend != 0 && now >= y->wend) {
        /* the Redis window of the grant is over: the lease (what Redis assumes for an instance
         * of the previous window until it reports); a sliding budget is the smaller of the two
         * (the previous window still weighs) */
        uint32_t lease = rlimit__lease(p);
        if (y->budget != RLIMIT__NOBUDGET && (p->algo == RLIMIT_FIXED || y->budget > lease))
            y->budget = lease;
        y->wend = 0;
    }
    if (y->budget == 0) {
        struct rlimit_cell copy = *c; /* the local verdict's times, without taking */
        rlimit_take(p, &copy, now, v);
        v->allowed = false;
        v->remaining = 0;
        if (y->wend > now)
            v->reset_ns = y->wend - now;
        if (v->retry_ns == 0) /* the next sync may grant more; the window's end does */
            v->retry_ns = v->reset_ns;
        return;
    }
    rlimit_take(p, c, now, v);
    if (y->budget == RLIMIT__NOBUDGET)
        return;
    if (v->allowed)
        y->budget--;
    if (v->remaining > y->budget)
        v->remaining = y->budget;
}

void rlimit_table_take(struct rlimit_table *t, uint64_t key, uint64_t now_ns,
                       struct rlimit_verdict *v)
{
    rlimit_table_take_sync(t, key, now_ns, v, NULL, NULL);
}

void rlimit_table_take_sync(struct rlimit_table *t, uint64_t key, uint64_t now_ns,
                            struct rlimit_verdict *v, rlimit_name_fn *name, void *arg)
{
    if (key == 0)
        key = 1;
    struct rlimit_shard *sh = rlimit__shard(t, key);
    pthread_mutex_lock(&sh->mu);
    bool fresh;
    size_t i = rlimit__slot(t, sh, key, now_ns, &fresh);
    struct rlimit_sync *y = sh->sync != NULL ? &sh->sync[i] : NULL;
    if (y != NULL && fresh) {
        y->named = name != NULL;
        if (name != NULL)
            name(arg, y->name);
        y->budget = y->named ? rlimit__lease(&t->p) : RLIMIT__NOBUDGET;
        y->wend = 0;
    }
    if (y != NULL && t->p.algo != RLIMIT_GCRA)
        rlimit__take_budget(&t->p, &sh->slots[i].c, y, now_ns, v);
    else
        rlimit_take(&t->p, &sh->slots[i].c, now_ns, v);
    if (y != NULL) {
        if (v->allowed && y->pending < UINT32_MAX)
            y->pending++;
        if (!y->dirty && y->named) {
            y->dirty = true;
            AG_ASSERT(sh->ndirty < t->nbuckets * RLIMIT_WAYS);
            sh->dirty[sh->ndirty++] = (uint32_t)i;
        }
    }
    pthread_mutex_unlock(&sh->mu);
}

void rlimit_table_sync_enable(struct rlimit_table *t)
{
    size_t cells = t->nbuckets * RLIMIT_WAYS;
    for (size_t i = 0; i < RLIMIT_SHARDS; i++) {
        struct rlimit_shard *sh = &t->shards[i];
        if (sh->sync != NULL)
            continue;
        sh->sync = xcalloc(cells, sizeof(*sh->sync));
        sh->dirty = xcalloc(cells, sizeof(*sh->dirty));
    }
}

size_t rlimit_table_drain(struct rlimit_table *t, struct rlimit_report *out, size_t max)
{
    size_t n = 0;
    for (size_t k = 0; k < RLIMIT_SHARDS; k++) {
        struct rlimit_shard *sh = &t->shards[(t->drain_next + k) % RLIMIT_SHARDS];
        if (sh->sync == NULL)
            return 0;
        pthread_mutex_lock(&sh->mu);
        size_t keep = 0;
        for (size_t j = 0; j < sh->ndirty; j++) {
            uint32_t i = sh->dirty[j];
            struct rlimit_sync *y = &sh->sync[i];
            if (sh->slots[i].key == 0 || !y->named) { /* freed (not today), or taken by a key
                                                        * without a name since it was listed */
                y->dirty = false;
                continue;
            }
            if (y->inflight || n == max) { /* its answer first; or the next drain */
                sh->dirty[keep++] = i;
                continue;
            }
            out[n].key = sh->slots[i].key;
            out[n].delta = y->pending;
            memcpy(out[n].name, y->name, sizeof(out[n].name));
            n++;
            y->pending = 0;
            y->inflight = true;
            y->dirty = false;
        }
        sh->ndirty = keep;
        pthread_mutex_unlock(&sh->mu);
    }
    t->drain_next = (t->drain_next + 1) % RLIMIT_SHARDS;
    return n;
}

void rlimit_table_merge(struct rlimit_table *t, uint64_t key, bool ok, uint64_t debt_ns,
                        uint64_t now_ns)
{
    if (key == 0)
        key = 1;
    struct rlimit_shard *sh = rlimit__shard(t, key);
    if (sh->sync == NULL)
        return;
    size_t base = rlimit__bucket(t, key);
    pthread_mutex_lock(&sh->mu);
    for (unsigned i = 0; i < RLIMIT_WAYS; i++) {
        struct rlimit_slot *s = &sh->slots[base + i];
        if (s->key != key)
            continue;
        struct rlimit_sync *y = &sh->sync[base + i];
        if (y->inflight && ok && t->p.algo == RLIMIT_GCRA)
            s->c.a = rlimit_gcra_merge(&t->p, now_ns, debt_ns, y->pending);
        y->inflight = false;
        break;
    }
    pthread_mutex_unlock(&sh->mu);
}

void rlimit_table_merge_window(struct rlimit_table *t, uint64_t key, bool ok, uint64_t grant,
                               uint64_t wend_ns)
{
    if (key == 0)
        key = 1;
    struct rlimit_shard *sh = rlimit__shard(t, key);
    if (sh->sync == NULL)
        return;
    size_t base = rlimit__bucket(t, key);
    pthread_mutex_lock(&sh->mu);
    for (unsigned i = 0; i < RLIMIT_WAYS; i++) {
        struct rlimit_slot *s = &sh->slots[base + i];
        if (s->key != key)
            continue;
        struct rlimit_sync *y = &sh->sync[base + i];
        if (y->inflight && ok) {
            /* what was admitted here since the report is in the grant, not in Redis's count */
            uint64_t b = grant > y->pending ? grant - y->pending : 0;
            y->budget = b < RLIMIT__NOBUDGET ? (uint32_t)b : RLIMIT__NOBUDGET - 1;
            y->wend = wend_ns;
        } else if (y->inflight) {
            y->budget = RLIMIT__NOBUDGET;
            y->wend = 0;
        }
        y->inflight = false;
        break;
    }
    pthread_mutex_unlock(&sh->mu);
}

uint64_t rlimit_window_lease(const struct rlimit_policy *p)
{
    return (p->count + RLIMIT_LEASE_DIV - 1) / RLIMIT_LEASE_DIV;
}

uint64_t rlimit_window_grant(const struct rlimit_policy *p, uint64_t mine, uint64_t delta,
                             uint64_t others, uint64_t prev, uint64_t elapsed_ns)
{
    double held = (double)mine + (double)others;
    if (p->algo == RLIMIT_SLIDING) {
        if (elapsed_ns > p->period_ns)
            elapsed_ns = p->period_ns;
        held = rlimit__estimate(p, elapsed_ns, mine + others, prev);
    }
    if (held >= (double)p->count)
        return 0;
    uint64_t left = (uint64_t)((double)p->count - held);
    uint64_t want = 2 * delta, lease = rlimit_window_lease(p);
    if (want < lease)
        want = lease;
    return want < left ? want : left;
}

size_t rlimit_table_active(struct rlimit_table *t)
{
    size_t n = 0;
    for (size_t i = 0; i < RLIMIT_SHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].mu);
        n += t->shards[i].ndirty;
        pthread_mutex_unlock(&t->shards[i].mu);
    }
    return n;
}

/* ---- the shared GCRA's arithmetic ---- */

double rlimit_gcra_global(double tat, double now, uint64_t delta, double t_us, double cap_us)
{
    if (tat < now)
        tat = now; /* an idle key: its whole burst is there */
    if (delta > 0) {
        tat += (double)delta * t_us;
        if (tat > now + cap_us)
            tat = now + cap_us; /* a debt is forgiven past the cap (fallback spells) */
    }
    return tat;
}

uint64_t rlimit_gcra_merge(const struct rlimit_policy *p, uint64_t now_ns, uint64_t debt_ns,
                           uint64_t pending)
{
    return now_ns + debt_ns + pending * p->t_ns;
}

size_t rlimit_table_capacity(const struct rlimit_table *t)
{
    return RLIMIT_SHARDS * t->nbuckets * RLIMIT_WAYS;
}

size_t rlimit_table_live(struct rlimit_table *t, uint64_t now_ns)
{
    size_t n = 0;
    for (size_t i = 0; i < RLIMIT_SHARDS; i++) {
        struct rlimit_shard *sh = &t->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (size_t k = 0; k < t->nbuckets * RLIMIT_WAYS; k++)
            if (sh->slots[k].key != 0 && rlimit__load(&t->p, &sh->slots[k].c, now_ns) > 0)
                n++;
        pthread_mutex_unlock(&sh->mu);
    }
    return n;
}

uint64_t rlimit_table_evictions(const struct rlimit_table *t)
{
    uint64_t n = 0;
    for (size_t i = 0; i < RLIMIT_SHARDS; i++)
        n += atomic_load_explicit(&t->shards[i].evictions, memory_order_relaxed);
    return n;
}

const struct rlimit_policy *rlimit_table_policy(const struct rlimit_table *t)
{
    return &t->p;
}

/* ---- JWT claim (unverified) ---- */

#define RLIMIT_JWT_MAX 4096 /* decoded payload bytes read */

static int rlimit__b64url(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

/* base64url without padding (trailing '=' tolerated). Returns the decoded length or -1. */
static long rlimit__b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = rlimit__b64url((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

static size_t rlimit__ws(const unsigned char *p, size_t i, size_t n)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* A JSON string at p[i] == '"': returns the index after its closing quote, or 0. */
static size_t rlimit__str(const unsigned char *p, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\') {
            i++;
            continue;
        }
        if (p[i] == '"')
            return i + 1;
        if (p[i] < 0x20)
            return 0;
    }
    return 0;
}

/* Skips one JSON value at p[i]; returns the index after it, or 0 when malformed. Nesting is
 * walked with a counter (strings skipped whole), bounded by the payload size. */
static size_t rlimit__skip(const unsigned char *p, size_t i, size_t n)
{
    if (i >= n)
        return 0;
    if (p[i] == '"')
        return rlimit__str(p, i, n);
    if (p[i] == '{' || p[i] == '[') {
        size_t depth = 0;
        for (; i < n; i++) {
            if (p[i] == '"') {
                size_t e = rlimit__str(p, i, n);
                if (e == 0)
                    return 0;
                i = e - 1;
            } else if (p[i] == '{' || p[i] == '[') {
                depth++;
            } else if (p[i] == '}' || p[i] == ']') {
                if (--depth == 0)
                    return i + 1;
            }
        }
        return 0;
    }
    size_t s = i;
    while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' &&
           p[i] != '\n' && p[i] != '\r')
        i++;
    return i > s ? i : 0;
}

long rlimit_jwt_claim(const char *auth, size_t len, const char *claim, char *out, size_t cap)
{
    size_t i = 0;
    while (i < len && (auth[i] == ' ' || auth[i] == '\t'))
        i++;
    if (len - i < 7 || strncasecmp(auth + i, "bearer ", 7) != 0)
        return -1;
    i += 7;
    while (i < len && auth[i] == ' ')
        i++;
    const char *tok = auth + i, *end = auth + len;
    while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    const char *d1 = memchr(tok, '.', (size_t)(end - tok));
    if (d1 == NULL)
        return -1;
    const char *pl = d1 + 1;
    const char *d2 = memchr(pl, '.', (size_t)(end - pl));
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        return -1; // three segments (JWS compact), no more
    unsigned char p[RLIMIT_JWT_MAX];
    long pn = rlimit__b64url_decode(pl, (size_t)(d2 - pl), p, sizeof(p));
    if (pn < 2)
        return -1;
    size_t n = (size_t)pn, clen = strlen(claim);
    size_t k = rlimit__ws(p, 0, n);
    if (k >= n || p[k] != '{')
        return -1;
    k = rlimit__ws(p, k + 1, n);
    if (k < n && p[k] == '}')
        return -1;
    while (k < n) {
        if (p[k] != '"')
            return -1;
        size_t ke = rlimit__str(p, k, n);
        if (ke == 0)
            return -1;
        bool match = ke - k - 2 == clen && memcmp(p + k + 1, claim, clen) == 0;
        k = rlimit__ws(p, ke, n);
        if (k >= n || p[k] != ':')
            return -1;
        k = rlimit__ws(p, k + 1, n);
        size_t ve = rlimit__skip(p, k, n);
        if (ve == 0)
            return -1;
        if (match) {
            const unsigned char *v = p + k;
            size_t vn = ve - k;
            if (v[0] == '"') {
                v++;
                vn -= 2;
            } else if (v[0] == '{' || v[0] == '[' || (vn == 4 && memcmp(v, "null", 4) == 0)) {
                return -1;
            }
            if (vn > cap)
                return -1;
            memcpy(out, v, vn);
            return (long)vn;
        }
        k = rlimit__ws(p, ve, n);
        if (k < n && p[k] == ',') {
            k = rlimit__ws(p, k + 1, n);
            continue;
        }
        return -1; // '}' without the claim, or garbage
    }
    return -1;
}
