/* Circuit breaker: rolling window of buckets plus a state word, both lock-free (see breaker.h).
 * The state, the probe count, the success count and a generation share one 64-bit word changed
 * only by compare-and-swap, so "K probes, M successes" holds across threads without a lock and
 * each transition has exactly one winner (who logs and counts it). */
#include "gateway/breaker.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "core/xmalloc.h"

/* Layout of the state word: bits 0-1 state, 2-17 probes admitted, 18-33 probe successes,
 * 34-63 generation (bumped on every transition). */
#define W_STATE(w) ((int)((w)&3u))
#define W_PROBES(w) ((unsigned)(((w) >> 2) & 0xffffu))
#define W_SUCC(w) ((unsigned)(((w) >> 18) & 0xffffu))
#define W_GEN(w) ((uint32_t)((w) >> 34))
#define W_MAKE(st, pr, su, gen)                                                                    \
    ((uint64_t)(st) | ((uint64_t)(pr) << 2) | ((uint64_t)(su) << 18) | ((uint64_t)(gen) << 34))

/* One slice of the window. A bucket is reused when time comes back to its slot: the first
 * thread to see the new epoch resets it (a count racing with that reset may be lost, which only
 * blurs the ratio by one request). */
struct breaker_bucket {
    _Atomic uint64_t epoch; // now / bucket_ms + 1 of the slice it counts; 0: never used
    _Atomic uint32_t total;
    _Atomic uint32_t fails;
};

struct breaker {
    struct breaker_conf conf;
    uint64_t bucket_ms;
    _Atomic uint64_t word;
    _Atomic uint64_t open_until_ms;
    _Atomic uint64_t reset_epoch; // buckets older than this epoch are ignored (after a close)
    _Atomic uint64_t transitions;
    _Atomic uint64_t opens;
    struct breaker_bucket *bk;
};

struct breaker *breaker_create(const struct breaker_conf *conf)
{
    struct breaker *b = xcalloc(1, sizeof(*b));
    b->conf = *conf;
    if (b->conf.buckets < 1)
        b->conf.buckets = 1;
    if (b->conf.buckets > 1000)
        b->conf.buckets = 1000;
    if (b->conf.window_ms < b->conf.buckets)
        b->conf.window_ms = b->conf.buckets;
    if (b->conf.probes < 1)
        b->conf.probes = 1;
    if (b->conf.probes > 0xffffu)
        b->conf.probes = 0xffffu;
    if (b->conf.successes < 1 || b->conf.successes > b->conf.probes)
        b->conf.successes = b->conf.probes;
    if (b->conf.min_requests < 1)
        b->conf.min_requests = 1;
    b->bucket_ms = b->conf.window_ms / b->conf.buckets;
    b->bk = xcalloc(b->conf.buckets, sizeof(*b->bk));
    atomic_init(&b->word, W_MAKE(BREAKER_CLOSED, 0, 0, 1));
    return b;
}

void breaker_destroy(struct breaker *b)
{
    if (b == NULL)
        return;
    free(b->bk);
    b->bk = NULL;
    free(b);
}

static void breaker__count(struct breaker *b, uint64_t now_ms, bool failed)
{
    uint64_t e = now_ms / b->bucket_ms + 1;
    struct breaker_bucket *k = &b->bk[e % b->conf.buckets];
    uint64_t old = atomic_load_explicit(&k->epoch, memory_order_acquire);
    if (old != e && old < e && atomic_compare_exchange_strong(&k->epoch, &old, e)) {
        atomic_store_explicit(&k->total, 0, memory_order_relaxed);
        atomic_store_explicit(&k->fails, 0, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&k->total, 1, memory_order_relaxed);
    if (failed)
        atomic_fetch_add_explicit(&k->fails, 1, memory_order_relaxed);
}

void breaker_window(struct breaker *b, uint64_t now_ms, uint64_t *requests, uint64_t *failures)
{
    uint64_t e = now_ms / b->bucket_ms + 1;
    uint64_t oldest = e >= b->conf.buckets ? e - b->conf.buckets + 1 : 1;
    uint64_t reset = atomic_load_explicit(&b->reset_epoch, memory_order_relaxed);
    if (reset > oldest)
        oldest = reset;
    uint64_t t = 0, f = 0;
    for (unsigned i = 0; i < b->conf.buckets; i++) {
        struct breaker_bucket *k = &b->bk[i];
        uint64_t ke = atomic_load_explicit(&k->epoch, memory_order_acquire);
        if (ke < oldest || ke > e)
            continue;
        t += atomic_load_explicit(&k->total, memory_order_relaxed);
        f += atomic_load_explicit(&k->fails, memory_order_relaxed);
    }
    *requests = t;
    *failures = f;
}

/* Moves the word from <w> to state <st> of a new generation. Returns true when this call won. */
static bool breaker__transition(struct breaker *b, uint64_t w, int st, uint64_t now_ms)
{
    if (st == BREAKER_OPEN) {
        /* written before the swap so no reader sees OPEN with an old deadline; a loser of the
         * race writes nearly the same value */
        atomic_store(&b->open_until_ms, now_ms + b->conf.open_for_ms);
    }
    uint64_t nw = W_MAKE(st, 0, 0, W_GEN(w) + 1);
    if (!atomic_compare_exchange_strong(&b->word, &w, nw))
        return false;
    if (st == BREAKER_CLOSED) {
        /* the failures that opened it must not re-open it at once */
        atomic_store(&b->reset_epoch, now_ms / b->bucket_ms + 1);
    }
    if (st == BREAKER_OPEN)
        atomic_fetch_add(&b->opens, 1);
    atomic_fetch_add(&b->transitions, 1);
    return true;
}

bool breaker_allow(struct breaker *b, uint64_t now_ms, struct breaker_ticket *t, int *changed)
{
    *changed = BREAKER_NO_CHANGE;
    t->probe = false;
    t->gen = 0;
    for (;;) {
        uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
        switch (W_STATE(w)) {
        case BREAKER_CLOSED:
            t->gen = W_GEN(w);
            return true;
        case BREAKER_OPEN:
            if (now_ms < atomic_load(&b->open_until_ms))
                return false;
            if (breaker__transition(b, w, BREAKER_HALF_OPEN, now_ms))
                *changed = BREAKER_HALF_OPEN;
            continue; // take a probe slot in the new round (or see who won)
        case BREAKER_HALF_OPEN: {
            if (W_PROBES(w) >= b->conf.probes)
                return false;
            uint64_t nw = W_MAKE(BREAKER_HALF_OPEN, W_PROBES(w) + 1, W_SUCC(w), W_GEN(w));
            if (!atomic_compare_exchange_weak(&b->word, &w, nw))
                continue;
            t->gen = W_GEN(w);
            t->probe = true;
            return true;
        }
        default:
            return false;
        }
    }
}

void breaker_record(struct breaker *b, uint64_t now_ms, const struct breaker_ticket *t, bool failed,
                    int *changed)
{
    *changed = BREAKER_NO_CHANGE;
    breaker__count(b, now_ms, failed);
    for (;;) {
        uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
        int st = W_STATE(w);
        if (t->probe) {
            /* a probe of an earlier round (or the round already decided) says nothing now */
            if (st != BREAKER_HALF_OPEN || W_GEN(w) != t->gen)
                return;
            if (failed) {
                if (breaker__transition(b, w, BREAKER_OPEN, now_ms)) {
                    *changed = BREAKER_OPEN;
                    return;
                }
                continue;
            }
            unsigned succ = W_SUCC(w) + 1;
            if (succ >= b->conf.successes) {
                if (breaker__transition(b, w, BREAKER_CLOSED, now_ms)) {
                    *changed = BREAKER_CLOSED;
                    return;
                }
                continue;
            }
            uint64_t nw = W_MAKE(st, W_PROBES(w), succ, W_GEN(w));
            if (atomic_compare_exchange_weak(&b->word, &w, nw))
                return;
            continue;
        }
        /* successes never open it: the window sum is only taken on a failure */
        if (st != BREAKER_CLOSED || !failed)
            return;
        uint64_t req, fails;
        breaker_window(b, now_ms, &req, &fails);
        if (req < b->conf.min_requests || (double)fails < b->conf.error_threshold * (double)req)
            return;
        if (breaker__transition(b, w, BREAKER_OPEN, now_ms)) {
            *changed = BREAKER_OPEN;
            return;
        }
        /* lost the race: someone else moved it, look again */
    }
}

void breaker_release(struct breaker *b, const struct breaker_ticket *t)
{
    if (!t->probe)
        return;
    for (;;) {
        uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
        if (W_STATE(w) != BREAKER_HALF_OPEN || W_GEN(w) != t->gen || W_PROBES(w) == 0)
            return;
        uint64_t nw = W_MAKE(BREAKER_HALF_OPEN, W_PROBES(w) - 1, W_SUCC(w), W_GEN(w));
        if (atomic_compare_exchange_weak(&b->word, &w, nw))
            return;
    }
}

enum breaker_state breaker_state(const struct breaker *b)
{
    return (enum breaker_state)W_STATE(atomic_load_explicit(&b->word, memory_order_acquire));
}

uint64_t breaker_transitions(const struct breaker *b)
{
    return atomic_load(&b->transitions);
}

uint64_t breaker_opens(const struct breaker *b)
{
    return atomic_load(&b->opens);
}

const char *breaker_state_name(int state)
{
    switch (state) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    default:
        return "?";
    }
}
