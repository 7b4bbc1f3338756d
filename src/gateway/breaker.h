/* Circuit breaker of one route: a rolling window of N buckets counting requests and failures,
 * and the states closed -> open -> half-open -> closed. Shared by every loop thread of a worker:
 * all state is in atomics updated by compare-and-swap, no lock on the request path. Time is
 * passed in (monotonic ms), so the unit tests drive it without sleeping. Knows nothing of HTTP:
 * the caller decides what a failure is (resil.c: 5xx, timeouts, connect errors). */
#ifndef AG_GATEWAY_BREAKER_H
#define AG_GATEWAY_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state {
    BREAKER_CLOSED = 0,    /* traffic flows; failures are counted */
    BREAKER_OPEN = 1,      /* traffic refused until open_for has passed */
    BREAKER_HALF_OPEN = 2, /* K probes let through; M successes close, a failure re-opens */
};
#define BREAKER_NO_CHANGE (-1)

struct breaker_conf {
    uint64_t window_ms;     /* rolling window in which failures are counted */
    unsigned buckets;       /* the window is made of this many buckets (1..1000) */
    double error_threshold; /* failures / requests in the window that opens it (0..1] */
    uint64_t min_requests;  /* no decision with fewer requests in the window */
    uint64_t open_for_ms;   /* open -> half-open after */
    unsigned probes;        /* K: requests let through while half-open (1..65535) */
    unsigned successes;     /* M: successful probes that close it (1..K) */
};

/* What an admitted request carries until its outcome is known. */
struct breaker_ticket {
    uint32_t gen; /* breaker generation when admitted (a probe of an older round is ignored) */
    bool probe;   /* admitted as a half-open probe */
};

struct breaker;

/* Creates a closed breaker (<conf> is copied; out-of-range values are clamped). */
struct breaker *breaker_create(const struct breaker_conf *conf);
void breaker_destroy(struct breaker *b);

/* Decides whether a request may go to the upstream at <now_ms>. Returns true (with <t> filled)
 * when admitted, false when the breaker refuses it (open, or half-open with every probe slot
 * taken). <changed> receives the new state when this very call made a transition (open ->
 * half-open), else BREAKER_NO_CHANGE: exactly one caller sees each transition. */
bool breaker_allow(struct breaker *b, uint64_t now_ms, struct breaker_ticket *t, int *changed);
/* Records the outcome of an admitted request (<failed>: a failure by the caller's definition).
 * <changed> as above (closed -> open, half-open -> open or closed). */
void breaker_record(struct breaker *b, uint64_t now_ms, const struct breaker_ticket *t, bool failed,
                    int *changed);
/* An admitted request ended without an outcome (client gone): frees its probe slot. */
void breaker_release(struct breaker *b, const struct breaker_ticket *t);

enum breaker_state breaker_state(const struct breaker *b);
/* Requests and failures in the window at <now_ms> (tests, /stats). */
void breaker_window(struct breaker *b, uint64_t now_ms, uint64_t *requests, uint64_t *failures);
/* Transitions so far (any direction), and the times it opened. */
uint64_t breaker_transitions(const struct breaker *b);
uint64_t breaker_opens(const struct breaker *b);
const char *breaker_state_name(int state);

#endif
