/* Latency histogram: log-linear buckets (HdrHistogram-like) over microseconds, ≤1% relative error
 * from 1 µs to 60 s (values above are clamped into the top bucket and counted in max exactly).
 * Fixed size, no allocation after init, mergeable across threads and machines (bucket counts add).
 * Not thread-safe: one per thread, merged when read. */
#ifndef AG_CORE_HIST_H
#define AG_CORE_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* 64 sub-buckets per power of two gives a bucket width ≤ 1/64 of its value; reporting the bucket's
 * midpoint bounds the error to ≤ 1/128 (0.78%). */
#define HIST_SUB_BITS 7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)          /* 128 linear buckets below 128 µs */
#define HIST_HALF_COUNT (HIST_SUB_COUNT / 2)
#define HIST_MAX_US 60000000ull                       /* 60 s */
#define HIST_BUCKETS (HIST_SUB_COUNT + 19 * HIST_HALF_COUNT) /* covers up to 2^26 µs ≈ 67 s */

struct hist {
    uint64_t count;
    uint64_t sum_us;
    uint64_t min_us;
    uint64_t max_us;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_reset(struct hist *h);
/* Records one value in microseconds. */
void hist_record(struct hist *h, uint64_t us);
/* Records <n> occurrences of <us>. */
void hist_record_n(struct hist *h, uint64_t us, uint64_t n);
/* Adds every count of <src> into <dst>. */
void hist_merge(struct hist *dst, const struct hist *src);
/* Value at percentile <p> (0..100) in µs, the midpoint of its bucket clamped to [min, max];
 * 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);
static inline uint64_t hist_count(const struct hist *h) { return h->count; }
static inline uint64_t hist_max(const struct hist *h) { return h->max_us; }
static inline uint64_t hist_min(const struct hist *h) { return h->count ? h->min_us : 0; }
/* Number of recorded values ≤ <us> (bucket resolution): "requests under 500 ms". Consistent
 * with hist_percentile(): percentile(p) ≤ us exactly when count_le(us) reaches the rank of p. */
uint64_t hist_count_le(const struct hist *h, uint64_t us);
/* Bucket helpers for exporters (Prometheus, JSON): index of <us>, and the inclusive upper bound
 * in µs of bucket <i>. */
size_t hist_bucket_of(uint64_t us);
uint64_t hist_bucket_upper(size_t i);
/* Serializes as JSON {"count":..,"sum_us":..,"min_us":..,"max_us":..,"buckets":[[index,count],..]}
 * (only non-empty buckets), and reads it back; hist_from_json returns 0 or -1. */
void hist_to_json(const struct hist *h, struct buf *out);
struct cJSON;
int hist_from_json(struct hist *h, const struct cJSON *obj);

#endif
