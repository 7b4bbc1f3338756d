/* Server choice for one upstream on one loop thread: smooth weighted round robin (nginx), least
 * request as the power of two random choices over in-flight counts (Envoy, Finagle), and peak-EWMA
 * latency (Finagle/Linkerd: cost = decayed latency estimate × (in flight + 1), P2C over the cost).
 * Pure policy: the caller (upool.c) keeps the per-server state, says which servers are eligible
 * (healthy and with room) and passes the time. */
#ifndef AG_GATEWAY_BALANCER_H
#define AG_GATEWAY_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Same order as enum gw_balance of gwconf.h. */
enum balancer_policy { BALANCER_ROUND_ROBIN = 0, BALANCER_LEAST_REQUEST, BALANCER_EWMA };

/* Per-server state, one per server in the caller's array. Zero-initialise, then set weight. */
struct balancer_server {
    bool eligible;        /* set by the caller before each pick */
    uint32_t weight;      /* relative share, ≥ 1 */
    uint32_t inflight;    /* requests lent and not finished (balancer_start / balancer_done) */
    int64_t rr_current;   /* smooth weighted round robin running weight */
    double ewma_us;       /* peak-EWMA latency estimate, µs; 0 before the first sample */
    uint64_t stamp_us;    /* time of the last EWMA update (0: never) */
};

struct balancer {
    enum balancer_policy policy;
    uint64_t rng;         /* xorshift state: P2C draws */
    double decay_us;      /* EWMA time constant (Finagle's decayTime, default 10 s) */
    double penalty_us;    /* cost of a server with requests in flight and no sample yet */
};

void balancer_init(struct balancer *b, enum balancer_policy policy, uint64_t seed);

/* Index of the chosen server among <n> (only eligible ones), or -1 when none is eligible.
 * <now_us> is monotonic time (EWMA decay). */
int balancer_pick(struct balancer *b, struct balancer_server *s, size_t n, uint64_t now_us);

/* A request starts on / finishes at server <s>. */
static inline void balancer_start(struct balancer_server *s) { s->inflight++; }
static inline void balancer_done(struct balancer_server *s)
{
    if (s->inflight > 0)
        s->inflight--;
}
/* Feeds one latency sample (µs) observed at <now_us>. A failure counts as a sample of
 * <penalty_us> so that an erroring fast server stops looking attractive. */
void balancer_observe(const struct balancer *b, struct balancer_server *s, uint64_t latency_us,
                      bool failed, uint64_t now_us);
/* The cost the EWMA policy compares (exported for tests and /upstreams). */
double balancer_cost(const struct balancer *b, const struct balancer_server *s, uint64_t now_us);

#endif
