/* Active HTTP health checks: one background thread with its own event loop probes every server
 * of every upstream that has `health:` — GET <path> every <interval>, a status in
 * expect_min..expect_max within <timeout> is a success; <unhealthy_threshold> consecutive failures
 * mark the server down, <healthy_threshold> successes bring it back. The verdict is an atomic in
 * the server that the pools' balancers read. */
#ifndef AG_GATEWAY_HEALTH_H
#define AG_GATEWAY_HEALTH_H

#include <stddef.h>

struct health;
struct upstream_set;

/* Prepares the checks of <s>; NULL when no upstream enables them. */
struct health *health_create(struct upstream_set *s);
/* Starts the checking thread; the first round runs at once. Returns 0 or -1 with <err>. */
int health_start(struct health *h, char *err, size_t errlen);
/* Stops the thread and frees <h>. */
void health_destroy(struct health *h);

#endif
