/* The simulated database pool, shared by every loop thread: <size> slots and a FIFO of waiters in
 * arrival order across threads. One mutex guards it; it is taken once per DB request and held for
 * a few pointer moves. A freed slot goes straight to the oldest waiter (never back to "free" while
 * someone waits), so a late arrival cannot overtake the queue — that is what makes latency climb
 * under load like a real connection pool. Knows nothing of loops: the caller hands a granted
 * waiter to its owner thread. */
#include <stdlib.h>

#include "core/xmalloc.h"
#include "mock/internal.h"

struct mock_pool {
    pthread_mutex_t lock;
    uint64_t size;
    uint64_t queue_limit; /* 0 = unbounded */
    uint64_t in_use;
    uint64_t queued;
    struct mock_waiter *head, *tail;
};

/* <size> slots; <queue_limit> waiting requests at most (0: unbounded). */
struct mock_pool *mock_pool_create(uint64_t size, uint64_t queue_limit)
{
    struct mock_pool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    p->size = size;
    p->queue_limit = queue_limit;
    return p;
}

/* With its profile; no waiter can be left (each holds a profile reference). */
void mock_pool_destroy(struct mock_pool *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* A slot only when nobody waits: arrival order is the only order. */
enum mock_pool_result mock_pool_acquire(struct mock_pool *p, struct mock_waiter *w)
{
    enum mock_pool_result r;
    pthread_mutex_lock(&p->lock);
    if (p->in_use < p->size && p->head == NULL) {
        p->in_use++;
        w->state = MOCK_WAIT_GRANTED;
        r = MOCK_POOL_GRANTED;
    } else if (p->queue_limit > 0 && p->queued >= p->queue_limit) {
        w->state = MOCK_WAIT_NONE;
        r = MOCK_POOL_FULL;
    } else {
        w->state = MOCK_WAIT_QUEUED;
        w->next = NULL;
        w->prev = p->tail;
        if (p->tail)
            p->tail->next = w;
        else
            p->head = w;
        p->tail = w;
        p->queued++;
        r = MOCK_POOL_QUEUED;
    }
    pthread_mutex_unlock(&p->lock);
    return r;
}

static void mock_pool__unlink(struct mock_pool *p, struct mock_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        p->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        p->tail = w->prev;
    w->prev = w->next = NULL;
    p->queued--;
}

/* Hands the slot to the oldest waiter (returned, for the caller to wake on its thread). */
struct mock_waiter *mock_pool_release(struct mock_pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct mock_waiter *w = p->head;
    if (w) {
        /* the slot changes hands: in_use stays the same */
        mock_pool__unlink(p, w);
        w->state = MOCK_WAIT_GRANTED;
    } else if (p->in_use > 0) {
        p->in_use--;
    }
    pthread_mutex_unlock(&p->lock);
    return w;
}

/* Under the lock, so a waiter is either cancelled or granted, never both. */
bool mock_pool_cancel(struct mock_pool *p, struct mock_waiter *w)
{
    pthread_mutex_lock(&p->lock);
    bool queued = w->state == MOCK_WAIT_QUEUED;
    if (queued) {
        mock_pool__unlink(p, w);
        w->state = MOCK_WAIT_NONE;
    }
    pthread_mutex_unlock(&p->lock);
    return queued;
}

/* For GET /_mock/stats. */
void mock_pool_counts(struct mock_pool *p, uint64_t *in_use, uint64_t *queued)
{
    pthread_mutex_lock(&p->lock);
    *in_use = p->in_use;
    *queued = p->queued;
    pthread_mutex_unlock(&p->lock);
}
