/* Request coalescing: a table of fetches in flight, shared by every loop thread of a worker.
 * The first miss for a key leads (it goes to the origin); later misses for the same key park as
 * waiters and are woken on their own loop thread (loop_post) when the leader is done, to look the
 * cache up again. Knows keys and loops; nothing of HTTP. */
#ifndef AG_CACHE_COALESCE_H
#define AG_CACHE_COALESCE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/loop.h"

struct coalesce;
struct coalesce_flight;

/* A parked request. Owned by the caller; must stay valid until either coalesce_cancel() returns
 * true, or <wake> has run (wake is posted to <loop> and runs there exactly once otherwise). */
struct coalesce_waiter {
    struct loop *loop;
    loop_task_cb *wake; /* called as wake(loop, waiter) */
    void *arg;          /* for the caller */
    /* private */
    struct coalesce_waiter *_next;
    struct coalesce_flight *_flight; /* set while parked */
    unsigned _stripe;
};

enum coalesce_role {
    COALESCE_LEADER = 0, /* nothing in flight: the caller fetches and must coalesce_finish() */
    COALESCE_WAITING,    /* parked behind a leader */
};

struct coalesce *coalesce_create(void);
/* Frees the table. No flight may be pending. */
void coalesce_destroy(struct coalesce *t);

/* Joins the flight of <key>. As leader, *<lead> receives the flight to finish. */
enum coalesce_role coalesce_join(struct coalesce *t, const char *key, size_t len,
                                 struct coalesce_waiter *w, struct coalesce_flight **lead);
/* Leads the flight of <key> when none is in flight (true, *<lead> set); else joins nothing and
 * returns false. For background refreshes: one per key, and nobody waits on a miss for them. */
bool coalesce_try_lead(struct coalesce *t, const char *key, size_t len,
                       struct coalesce_flight **lead);
/* Ends a flight: every parked waiter gets its wake posted. Returns how many were woken. */
size_t coalesce_finish(struct coalesce *t, struct coalesce_flight *f);
/* Withdraws a parked waiter. True when it was still parked (its wake will never run); false
 * when its wake is already posted (it will run: the caller must let it find out). */
bool coalesce_cancel(struct coalesce *t, struct coalesce_waiter *w);
/* Flights in progress (stats). */
size_t coalesce_inflight(struct coalesce *t);

#endif
