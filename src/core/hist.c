/* Latency histogram over microseconds, HdrHistogram layout with 2 significant binary digits more
 * than needed: 128 exact buckets for 0..127 µs, then 64 sub-buckets for each power of two up to
 * 2^26 µs (≈ 67 s). A value v in [2^k, 2^(k+1)) lands in a bucket of width 2^(k-6), so the
 * bucket midpoint is within 2^(k-7) / 2^k = 1/128 of any value in it. No allocation, no floats on
 * the record path. The JSON reader lives in hist_json.c (it needs cJSON). */
#include "core/hist.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Index of the highest power of two range: values at or above 2^(HIST_TOP_EXP+1) are clamped. */
#define HIST_FIRST_EXP HIST_SUB_BITS /* 2^7 = 128: first value past the linear buckets */
#define HIST_RANGES ((HIST_BUCKETS - HIST_SUB_COUNT) / HIST_HALF_COUNT)
#define HIST_TOP_EXP (HIST_FIRST_EXP + HIST_RANGES - 1)

_Static_assert((HIST_BUCKETS - HIST_SUB_COUNT) % HIST_HALF_COUNT == 0,
               "whole power-of-two ranges only");
_Static_assert((1ull << (HIST_TOP_EXP + 1)) > HIST_MAX_US, "buckets must cover HIST_MAX_US");

void hist_init(struct hist *h) { hist_reset(h); }

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_us = UINT64_MAX;
}

size_t hist_bucket_of(uint64_t us)
{
    if (us < HIST_SUB_COUNT)
        return (size_t)us;
    unsigned exp = 63u - (unsigned)__builtin_clzll(us); /* us >= 128, so exp >= 7 */
    if (exp > HIST_TOP_EXP)
        return HIST_BUCKETS - 1;
    unsigned shift = exp - (HIST_SUB_BITS - 1); /* leaves the top 7 bits: 64..127 */
    size_t sub = (size_t)(us >> shift) - HIST_HALF_COUNT;
    return HIST_SUB_COUNT + (size_t)(exp - HIST_FIRST_EXP) * HIST_HALF_COUNT + sub;
}

/* Lowest value and width of bucket <i>. */
static void hist__bucket_range(size_t i, uint64_t *lo, uint64_t *width)
{
    if (i < HIST_SUB_COUNT) {
        *lo = i;
        *width = 1;
        return;
    }
    size_t j = i - HIST_SUB_COUNT;
    unsigned exp = HIST_FIRST_EXP + (unsigned)(j / HIST_HALF_COUNT);
    unsigned shift = exp - (HIST_SUB_BITS - 1);
    *lo = (uint64_t)(HIST_HALF_COUNT + j % HIST_HALF_COUNT) << shift;
    *width = 1ull << shift;
}

uint64_t hist_bucket_upper(size_t i)
{
    if (i >= HIST_BUCKETS)
        i = HIST_BUCKETS - 1;
    uint64_t lo, width;
    hist__bucket_range(i, &lo, &width);
    return lo + width - 1;
}

static uint64_t hist__bucket_mid(size_t i)
{
    uint64_t lo, width;
    hist__bucket_range(i, &lo, &width);
    return lo + (width - 1) / 2; /* integer midpoint of [lo, lo + width - 1] */
}

void hist_record_n(struct hist *h, uint64_t us, uint64_t n)
{
    if (n == 0)
        return;
    h->buckets[hist_bucket_of(us)] += n;
    h->count += n;
    /* Saturate rather than wrap: a mean that is too low beats a mean that is garbage. */
    uint64_t add = us;
    if (n > 1 && us > UINT64_MAX / n)
        add = UINT64_MAX;
    else
        add = us * n;
    h->sum_us = h->sum_us > UINT64_MAX - add ? UINT64_MAX : h->sum_us + add;
    if (us < h->min_us)
        h->min_us = us;
    if (us > h->max_us)
        h->max_us = us;
}

void hist_record(struct hist *h, uint64_t us) { hist_record_n(h, us, 1); }

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum_us = dst->sum_us > UINT64_MAX - src->sum_us ? UINT64_MAX : dst->sum_us + src->sum_us;
    if (src->min_us < dst->min_us)
        dst->min_us = src->min_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (!(p > 0.0)) /* also NaN */
        return h->min_us;
    if (p >= 100.0)
        return h->max_us;
    /* The rank of the value at percentile p (1-based, nearest-rank definition). The epsilon keeps
     * p99.9 of 1000 values at rank 999 despite 99.9 * 1000 / 100 = 999.0000000000001. */
    double r = ceil(p / 100.0 * (double)h->count - 1e-9);
    uint64_t rank = r < 1.0 ? 1 : (r >= (double)h->count ? h->count : (uint64_t)r);
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist__bucket_mid(i);
            if (v < h->min_us)
                v = h->min_us;
            if (v > h->max_us)
                v = h->max_us;
            return v;
        }
    }
    return h->max_us; /* counts and buckets disagree (a corrupt merge): the safe answer */
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum_us / (double)h->count : 0.0;
}

uint64_t hist_count_le(const struct hist *h, uint64_t us)
{
    if (h->count == 0 || us < h->min_us)
        return 0;
    if (us >= h->max_us)
        return h->count;
    /* A bucket counts when the value that stands for it (its midpoint clamped to [min, max], as
     * in hist_percentile) is <= us. Then the two answers agree: hist_percentile(h, p) <= us
     * exactly when hist_count_le(h, us) reaches the rank of p, so "p99 = 480 ms" and "99.2%
     * under 500 ms" never contradict each other. The bucket resolution (≤ 1/128) is the same. */
    uint64_t n = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        if (h->buckets[i] == 0)
            continue;
        uint64_t v = hist__bucket_mid(i);
        v = v < h->min_us ? h->min_us : (v > h->max_us ? h->max_us : v);
        if (v > us)
            break;
        n += h->buckets[i];
    }
    return n;
}

void hist_to_json(const struct hist *h, struct buf *out)
{
    buf_printf(out, "{\"count\":%" PRIu64 ",\"sum_us\":%" PRIu64 ",\"min_us\":%" PRIu64
                    ",\"max_us\":%" PRIu64 ",\"buckets\":[",
               h->count, h->sum_us, hist_min(h), h->max_us);
    bool first = true;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        if (h->buckets[i] == 0)
            continue;
        buf_printf(out, "%s[%zu,%" PRIu64 "]", first ? "" : ",", i, h->buckets[i]);
        first = false;
    }
    buf_append(out, "]}", 2);
}
