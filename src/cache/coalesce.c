/* The in-flight table behind request coalescing: buckets of flights under striped mutexes (a join
 * or a finish holds one stripe for a chain walk), waiters in a singly linked FIFO per flight. The
 * wake is posted outside the lock, and each waiter's next pointer is read before its wake is
 * posted: once posted, the waiter's own thread may free it. */
#include "cache/coalesce.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/store.h"
#include "core/xmalloc.h"

#define COALESCE_BUCKETS 4096u
#define COALESCE_STRIPES 64u

struct coalesce_flight {
    uint64_t hash;
    char *key;
    size_t len;
    unsigned bucket;
    struct coalesce_waiter *head, *tail;
    struct coalesce_flight *next;
};

struct coalesce {
    pthread_mutex_t locks[COALESCE_STRIPES];
    struct coalesce_flight *buckets[COALESCE_BUCKETS];
    _Atomic size_t inflight;
};

struct coalesce *coalesce_create(void)
{
    struct coalesce *t = xcalloc(1, sizeof(*t));
    for (unsigned i = 0; i < COALESCE_STRIPES; i++)
        pthread_mutex_init(&t->locks[i], NULL);
    return t;
}

void coalesce_destroy(struct coalesce *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < COALESCE_BUCKETS; i++) {
        while (t->buckets[i] != NULL) {
            struct coalesce_flight *f = t->buckets[i];
            t->buckets[i] = f->next;
            free(f->key);
            free(f);
        }
    }
    for (unsigned i = 0; i < COALESCE_STRIPES; i++)
        pthread_mutex_destroy(&t->locks[i]);
    free(t);
}

enum coalesce_role coalesce_join(struct coalesce *t, const char *key, size_t len,
                                 struct coalesce_waiter *w, struct coalesce_flight **lead)
{
    uint64_t h = store_hash(key, len);
    unsigned b = (unsigned)(h & (COALESCE_BUCKETS - 1));
    unsigned s = b & (COALESCE_STRIPES - 1);
    w->_next = NULL;
    w->_flight = NULL;
    w->_stripe = s;
    pthread_mutex_lock(&t->locks[s]);
    for (struct coalesce_flight *f = t->buckets[b]; f != NULL; f = f->next) {
        if (f->hash == h && f->len == len && memcmp(f->key, key, len) == 0) {
            if (f->tail != NULL)
                f->tail->_next = w;
            else
                f->head = w;
            f->tail = w;
            w->_flight = f;
            pthread_mutex_unlock(&t->locks[s]);
            return COALESCE_WAITING;
        }
    }
    struct coalesce_flight *f = xcalloc(1, sizeof(*f));
    f->hash = h;
    f->key = xmalloc(len ? len : 1);
    memcpy(f->key, key, len);
    f->len = len;
    f->bucket = b;
    f->next = t->buckets[b];
    t->buckets[b] = f;
    atomic_fetch_add_explicit(&t->inflight, 1, memory_order_relaxed);
    pthread_mutex_unlock(&t->locks[s]);
    *lead = f;
    return COALESCE_LEADER;
}

bool coalesce_try_lead(struct coalesce *t, const char *key, size_t len,
                       struct coalesce_flight **lead)
{
    uint64_t h = store_hash(key, len);
    unsigned b = (unsigned)(h & (COALESCE_BUCKETS - 1));
    unsigned s = b & (COALESCE_STRIPES - 1);
    pthread_mutex_lock(&t->locks[s]);
    for (struct coalesce_flight *f = t->buckets[b]; f != NULL; f = f->next) {
        if (f->hash == h && f->len == len && memcmp(f->key, key, len) == 0) {
            pthread_mutex_unlock(&t->locks[s]);
            return false;
        }
    }
    struct coalesce_flight *f = xcalloc(1, sizeof(*f));
    f->hash = h;
    f->key = xmalloc(len ? len : 1);
    memcpy(f->key, key, len);
    f->len = len;
    f->bucket = b;
    f->next = t->buckets[b];
    t->buckets[b] = f;
    atomic_fetch_add_explicit(&t->inflight, 1, memory_order_relaxed);
    pthread_mutex_unlock(&t->locks[s]);
    *lead = f;
    return true;
}

size_t coalesce_finish(struct coalesce *t, struct coalesce_flight *f)
{
    unsigned s = f->bucket & (COALESCE_STRIPES - 1);
    pthread_mutex_lock(&t->locks[s]);
    struct coalesce_flight **pp = &t->buckets[f->bucket];
    while (*pp != NULL && *pp != f)
        pp = &(*pp)->next;
    if (*pp == f)
        *pp = f->next;
    struct coalesce_waiter *w = f->head;
    for (struct coalesce_waiter *x = w; x != NULL; x = x->_next)
        x->_flight = NULL; /* no longer cancellable: the wake is on its way */
    atomic_fetch_sub_explicit(&t->inflight, 1, memory_order_relaxed);
    pthread_mutex_unlock(&t->locks[s]);
    size_t n = 0;
    while (w != NULL) {
        struct coalesce_waiter *next = w->_next; /* before the post: the waiter may go away */
        loop_post(w->loop, w->wake, w);
        w = next;
        n++;
    }
    free(f->key);
    free(f);
    return n;
}

bool coalesce_cancel(struct coalesce *t, struct coalesce_waiter *w)
{
    pthread_mutex_lock(&t->locks[w->_stripe]);
    struct coalesce_flight *f = w->_flight;
    if (f == NULL) {
        pthread_mutex_unlock(&t->locks[w->_stripe]);
        return false;
    }
    struct coalesce_waiter *prev = NULL;
    for (struct coalesce_waiter *x = f->head; x != NULL; prev = x, x = x->_next) {
        if (x != w)
            continue;
        if (prev != NULL)
            prev->_next = x->_next;
        else
            f->head = x->_next;
        if (f->tail == x)
            f->tail = prev;
        break;
    }
    w->_flight = NULL;
    pthread_mutex_unlock(&t->locks[w->_stripe]);
    return true;
}

size_t coalesce_inflight(struct coalesce *t)
{
    return atomic_load_explicit(&t->inflight, memory_order_relaxed);
}
