/* Load-balancing policies. Every pick is O(servers) at most, with no allocation; the state lives
 * in the caller's arrays so each loop thread balances on its own view (no shared counters). */
#include "gateway/balancer.h"

#include <math.h>

void balancer_init(struct balancer *b, enum balancer_policy policy, uint64_t seed)
{
    b->policy = policy;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    b->decay_us = 10e6;
    b->penalty_us = 1e6; /* Finagle uses a large constant; a second is plenty next to API times */
}

static uint64_t balancer__rand(struct balancer *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 2685821657736338717ull;
}

/* nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a, not a a a a a b c. */
static int balancer__rr(struct balancer_server *s, size_t n)
{
    int best = -1;
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s[i].eligible)
            continue;
        int64_t w = s[i].weight ? s[i].weight : 1;
        s[i].rr_current += w;
        total += w;
        if (best < 0 || s[i].rr_current > s[best].rr_current)
            best = (int)i;
    }
    if (best >= 0)
        s[best].rr_current -= total;
    return best;
}

double balancer_cost(const struct balancer *b, const struct balancer_server *s, uint64_t now_us)
{
    if (s->stamp_us == 0)
        return s->inflight ? b->penalty_us * (s->inflight + 1) : 0;
    /* Without new samples the estimate decays toward 0, so a server that was slow a while ago
     * gets probed again instead of being starved forever. */
    double dt = now_us > s->stamp_us ? (double)(now_us - s->stamp_us) : 0;
    double ewma = s->ewma_us * exp(-dt / b->decay_us);
    return ewma * (double)(s->inflight + 1);
}

static double balancer__load(const struct balancer *b, const struct balancer_server *s,
                             uint64_t now_us)
{
    if (b->policy == BALANCER_EWMA)
        return balancer_cost(b, s, now_us);
    /* least request: in flight relative to weight, +1 so weight matters at zero load too */
    return (double)(s->inflight + 1) / (double)(s->weight ? s->weight : 1);
}

/* The k-th eligible server (0-based). */
static int balancer__nth(const struct balancer_server *s, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].eligible && k-- == 0)
            return (int)i;
    return -1;
}

int balancer_pick(struct balancer *b, struct balancer_server *s, size_t n, uint64_t now_us)
{
    if (b->policy == BALANCER_ROUND_ROBIN)
        return balancer__rr(s, n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += s[i].eligible;
    if (m == 0)
        return -1;
    if (m == 1)
        return balancer__nth(s, n, 0);
    /* Power of two choices: two distinct random candidates, the less loaded wins. Avoids the herd
     * effect of "global least loaded" when every thread sees the same stale numbers. */
    size_t k1 = (size_t)(balancer__rand(b) % m);
    size_t k2 = (size_t)(balancer__rand(b) % (m - 1));
    if (k2 >= k1)
        k2++;
    int a = balancer__nth(s, n, k1), c = balancer__nth(s, n, k2);
    double la = balancer__load(b, &s[a], now_us), lc = balancer__load(b, &s[c], now_us);
    if (la == lc)
        return (balancer__rand(b) & 1) ? a : c;
    return la < lc ? a : c;
}

void balancer_observe(const struct balancer *b, struct balancer_server *s, uint64_t latency_us,
                      bool failed, uint64_t now_us)
{
    double rtt = failed ? b->penalty_us : (double)latency_us;
    if (s->stamp_us == 0 || rtt > s->ewma_us) {
        /* Peak: a slower sample replaces the estimate at once (react to trouble fast), faster
         * ones pull it down gradually (recover slowly). */
        s->ewma_us = rtt;
    } else {
        double dt = now_us > s->stamp_us ? (double)(now_us - s->stamp_us) : 0;
        double w = exp(-dt / b->decay_us);
        s->ewma_us = s->ewma_us * w + rtt * (1.0 - w);
    }
    s->stamp_us = now_us ? now_us : 1;
}
