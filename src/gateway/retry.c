/* Retry policy and retry budget (see retry.h). The budget's window is a ring of buckets of two
 * counters, reset by the first thread that reaches a new slice, like breaker.c: a count lost in
 * that race moves the ratio by one request, never past a bound that matters. */
#include "gateway/retry.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "http/h1parse.h"

int retry_on_parse(const char *const *words, size_t n, struct retry_on *out, const char **bad)
{
    memset(out, 0, sizeof(*out));
    *bad = NULL;
    if (n == 0) {
        out->connect_error = out->reset = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *w = words[i];
        if (strcmp(w, "connect_error") == 0 || strcmp(w, "connect-failure") == 0) {
            out->connect_error = true;
        } else if (strcmp(w, "reset") == 0) {
            out->reset = true;
        } else if (strcmp(w, "timeout") == 0) {
            out->timeout = true;
        } else if (strcmp(w, "5xx") == 0) {
            out->statuses[0] = out->statuses[1] = ~(uint64_t)0;
        } else {
            char *end;
            long s = strtol(w, &end, 10);
            if (*end != '\0' || s < 500 || s > 599) {
                *bad = w;
                return -1;
            }
            out->statuses[(s - 500) / 64] |= (uint64_t)1 << ((s - 500) % 64);
        }
    }
    return 0;
}

bool retry_on_status(const struct retry_on *on, int status)
{
    if (status < 500 || status > 599)
        return false;
    return (on->statuses[(status - 500) / 64] >> ((status - 500) % 64)) & 1u;
}

bool retry_idempotent(int method_id)
{
    switch (method_id) {
    case H1_M_GET:
    case H1_M_HEAD:
    case H1_M_PUT:
    case H1_M_DELETE:
    case H1_M_OPTIONS:
    case H1_M_TRACE:
        return true;
    default:
        return false;
    }
}

uint64_t retry_backoff_ms(uint64_t base_ms, unsigned attempt, uint64_t cap_ms, uint64_t rnd)
{
    if (base_ms == 0 || attempt == 0)
        return 0;
    unsigned shift = attempt - 1 > 20 ? 20 : attempt - 1;
    uint64_t ceil = base_ms << shift;
    if (cap_ms > 0 && ceil > cap_ms)
        ceil = cap_ms;
    /* full jitter (AWS architecture blog): clients that failed together spread out */
    return rnd % (ceil + 1);
}

struct retry_bucket {
    _Atomic uint64_t epoch; // slice number + 1; 0: never used
    _Atomic uint32_t requests;
    _Atomic uint32_t retries;
};

struct retry_budget {
    double ratio;
    uint64_t bucket_ms;
    unsigned nbuckets;
    _Atomic uint64_t exhausted;
    struct retry_bucket *bk;
};

struct retry_budget *retry_budget_create(double ratio, uint64_t window_ms, unsigned buckets)
{
    struct retry_budget *b = xcalloc(1, sizeof(*b));
    b->ratio = ratio < 0 ? 0 : ratio;
    b->nbuckets = buckets < 1 ? 1 : buckets;
    b->bucket_ms = window_ms / b->nbuckets;
    if (b->bucket_ms == 0)
        b->bucket_ms = 1;
    b->bk = xcalloc(b->nbuckets, sizeof(*b->bk));
    return b;
}

void retry_budget_destroy(struct retry_budget *b)
{
    if (b == NULL)
        return;
    free(b->bk);
    b->bk = NULL;
    free(b);
}

static struct retry_bucket *retry__bucket(struct retry_budget *b, uint64_t now_ms)
{
    uint64_t e = now_ms / b->bucket_ms + 1;
    struct retry_bucket *k = &b->bk[e % b->nbuckets];
    uint64_t old = atomic_load_explicit(&k->epoch, memory_order_acquire);
    if (old < e && atomic_compare_exchange_strong(&k->epoch, &old, e)) {
        atomic_store_explicit(&k->requests, 0, memory_order_relaxed);
        atomic_store_explicit(&k->retries, 0, memory_order_relaxed);
    }
    return k;
}

void retry_budget_request(struct retry_budget *b, uint64_t now_ms)
{
    atomic_fetch_add_explicit(&retry__bucket(b, now_ms)->requests, 1, memory_order_relaxed);
}

void retry_budget_window(struct retry_budget *b, uint64_t now_ms, uint64_t *requests,
                         uint64_t *retries)
{
    uint64_t e = now_ms / b->bucket_ms + 1;
    uint64_t oldest = e >= b->nbuckets ? e - b->nbuckets + 1 : 1;
    uint64_t rq = 0, rt = 0;
    for (unsigned i = 0; i < b->nbuckets; i++) {
        uint64_t ke = atomic_load_explicit(&b->bk[i].epoch, memory_order_acquire);
        if (ke < oldest || ke > e)
            continue;
        rq += atomic_load_explicit(&b->bk[i].requests, memory_order_relaxed);
        rt += atomic_load_explicit(&b->bk[i].retries, memory_order_relaxed);
    }
    *requests = rq;
    *retries = rt;
}

bool retry_budget_take(struct retry_budget *b, uint64_t now_ms)
{
    uint64_t rq, rt;
    retry_budget_window(b, now_ms, &rq, &rt);
    /* strict: with 20% the first request of a quiet window may retry, then one per 5 requests */
    if ((double)rt >= b->ratio * (double)rq) {
        atomic_fetch_add(&b->exhausted, 1);
        return false;
    }
    atomic_fetch_add_explicit(&retry__bucket(b, now_ms)->retries, 1, memory_order_relaxed);
    return true;
}

uint64_t retry_budget_exhausted(const struct retry_budget *b)
{
    return atomic_load(&b->exhausted);
}
