/* Retry policy of one route: which failures may be retried (`retry.on`), which methods are safe
 * to repeat, the pause before attempt n (exponential backoff with full jitter), and the retry
 * budget: retries stay under a fraction of the requests of a rolling window (Envoy's retry
 * budget, Finagle's RetryBudget), so retries never multiply an outage. Shared by every loop
 * thread through atomics; time and randomness are passed in for the unit tests. */
#ifndef AG_GATEWAY_RETRY_H
#define AG_GATEWAY_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What `retry.on` allows. */
struct retry_on {
    bool connect_error;   /* the connection could not be opened (refused, timeout, TLS) */
    bool reset;           /* the connection broke before any response byte */
    bool timeout;         /* no response head before the first-byte deadline */
    uint64_t statuses[2]; /* bit s-500 for the 5xx statuses listed (500..599) */
};

/* Parses the words of `retry.on` (<n> strings): connect_error, reset, timeout, 5xx, or a status
 * 500..599. An empty list means connect_error + reset. Returns 0, or -1 with the first unknown
 * word in <bad>. */
int retry_on_parse(const char *const *words, size_t n, struct retry_on *out, const char **bad);
/* True when <status> is listed. */
bool retry_on_status(const struct retry_on *on, int status);

/* Methods that may be repeated without the client's consent (RFC 9110 9.2.2): GET, HEAD, PUT,
 * DELETE, OPTIONS, TRACE, by their h1parse method ids. */
bool retry_idempotent(int method_id);

/* Pause before retry number <attempt> (1 = the first retry): a uniform draw in
 * [0, base * 2^(attempt-1)] ("full jitter"), capped at <cap_ms>. <rnd> is a random 64-bit
 * value. */
uint64_t retry_backoff_ms(uint64_t base_ms, unsigned attempt, uint64_t cap_ms, uint64_t rnd);

struct retry_budget;

/* A budget allowing retries ≤ <ratio> × requests over a rolling <window_ms> of <buckets>. */
struct retry_budget *retry_budget_create(double ratio, uint64_t window_ms, unsigned buckets);
void retry_budget_destroy(struct retry_budget *b);
/* Counts a request (its first attempt) at <now_ms>. */
void retry_budget_request(struct retry_budget *b, uint64_t now_ms);
/* Takes one retry from the budget: true (counted) when retries in the window stay below
 * ratio × requests, false when the budget is spent (counted as exhausted). */
bool retry_budget_take(struct retry_budget *b, uint64_t now_ms);
/* Requests and retries in the window, and refusals so far. */
void retry_budget_window(struct retry_budget *b, uint64_t now_ms, uint64_t *requests,
                         uint64_t *retries);
uint64_t retry_budget_exhausted(const struct retry_budget *b);

#endif
