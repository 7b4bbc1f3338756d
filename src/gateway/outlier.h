/* Outlier detection of one upstream (Envoy's consecutive_5xx): N consecutive failures (5xx,
 * connect failures, broken exchanges) of a server eject it for base × k (k: how often it was
 * ejected recently), capped at max, and never more than max_ejection_percent of the servers are
 * ejected by it at once (at least one may always be). Shared by the loop threads through atomics;
 * time is passed in. The caller applies the ejection (upstream.c: the server's down_until). */
#ifndef AG_GATEWAY_OUTLIER_H
#define AG_GATEWAY_OUTLIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct outlier_conf {
    unsigned consecutive; /* failures in a row that eject (≥ 1) */
    uint64_t base_ms;     /* first ejection time; the k-th lasts k × base */
    uint64_t max_ms;      /* cap of an ejection */
    double max_percent;   /* share of the servers that may be ejected at once (0..1] */
};

struct outlier;

struct outlier *outlier_create(const struct outlier_conf *conf, size_t nservers);
void outlier_destroy(struct outlier *o);

/* A failure of server <i> at <now_ms>. Returns the ejection time in ms when this failure ejected
 * it (exactly one caller per ejection), else 0 (not enough in a row, already ejected, or the
 * max_percent cap is reached). */
uint64_t outlier_failure(struct outlier *o, size_t i, uint64_t now_ms);
/* A success of server <i>: the run of failures is broken; a server that stayed in for a base
 * time since its last ejection has its multiplier lowered by one. */
void outlier_success(struct outlier *o, size_t i, uint64_t now_ms);
/* Is <i> ejected by the outlier detector at <now_ms>? */
bool outlier_ejected(const struct outlier *o, size_t i, uint64_t now_ms);
/* Times <i> was ejected and not yet forgiven (the multiplier). */
unsigned outlier_multiplier(const struct outlier *o, size_t i);

#endif
