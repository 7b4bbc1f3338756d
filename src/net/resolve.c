/* Background DNS: one thread that re-resolves every registered name on a timer. Readers copy the
 * address under a per-name mutex held for a memcpy only; the writer prepares the new set outside
 * the lock. */
#include "net/resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"

struct resolve_name {
    char *host;
    int port;
    pthread_mutex_t lock;
    struct sock_addr addrs[RESOLVE_MAX_ADDRS];
    size_t naddrs;
    _Atomic bool has_addr;   /* naddrs > 0, readable without the lock */
    bool failing;            /* last attempt failed: log recovery once */
    struct resolve_name *next;
};

struct resolver {
    uint64_t refresh_ms;
    struct resolve_name *names;
    pthread_t thread;
    bool started;
    bool stop;
    pthread_mutex_t lock;    /* stop flag + condition */
    pthread_cond_t cond;
};

struct resolver *resolve_create(uint64_t refresh_ms)
{
    struct resolver *r = xcalloc(1, sizeof(*r));
    r->refresh_ms = refresh_ms < 100 ? 100 : refresh_ms;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    return r;
}

/* Resolves <n> into a local array, then swaps it in under the lock. Returns 0 or -1 (<err>). */
static int resolve__one(struct resolve_name *n, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", n->port);
    int rc = getaddrinfo(n->host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve '%s': %s", n->host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    struct sock_addr tmp[RESOLVE_MAX_ADDRS];
    size_t k = 0;
    for (struct addrinfo *ai = res; ai != NULL && k < RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(tmp[k].ss))
            continue;
        memset(&tmp[k], 0, sizeof(tmp[k]));
        memcpy(&tmp[k].ss, ai->ai_addr, ai->ai_addrlen);
        tmp[k].len = ai->ai_addrlen;
        k++;
    }
    freeaddrinfo(res);
    pthread_mutex_lock(&n->lock);
    memcpy(n->addrs, tmp, k * sizeof(tmp[0]));
    n->naddrs = k;
    atomic_store_explicit(&n->has_addr, k > 0, memory_order_release);
    pthread_mutex_unlock(&n->lock);
    return 0;
}

struct resolve_name *resolve_add(struct resolver *r, const char *host, int port, char *err,
                                 size_t errlen)
{
    err[0] = '\0';
    for (struct resolve_name *n = r->names; n != NULL; n = n->next)
        if (n->port == port && strcmp(n->host, host) == 0)
            return n;
    struct resolve_name *n = xcalloc(1, sizeof(*n));
    n->host = xstrdup(host);
    n->port = port;
    pthread_mutex_init(&n->lock, NULL);
    n->next = r->names;
    r->names = n;
    if (resolve__one(n, err, errlen) != 0)
        n->failing = true;
    return n;
}

void resolve_refresh_all(struct resolver *r)
{
    for (struct resolve_name *n = r->names; n != NULL; n = n->next) {
        char err[256];
        if (resolve__one(n, err, sizeof(err)) != 0) {
            /* Keep serving the old addresses; say so once per outage, not every refresh. */
            if (!n->failing)
                ag_log(AG_LOG_WARN, "resolver: %s (keeping the previous addresses)", err);
            n->failing = true;
        } else if (n->failing) {
            ag_log(AG_LOG_INFO, "resolver: '%s' resolves again", n->host);
            n->failing = false;
        }
    }
}

static void *resolve__thread(void *arg)
{
    struct resolver *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (r->refresh_ms % 1000) * 1000000ull;
        ts.tv_sec += (time_t)(r->refresh_ms / 1000 + ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        while (!r->stop && pthread_cond_timedwait(&r->cond, &r->lock, &ts) != ETIMEDOUT)
            ;
        if (r->stop)
            break;
        pthread_mutex_unlock(&r->lock);
        resolve_refresh_all(r);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int resolve_start(struct resolver *r)
{
    if (r->started || r->names == NULL)
        return 0;
    int rc = pthread_create(&r->thread, NULL, resolve__thread, r);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    r->started = true;
    return 0;
}

void resolve_destroy(struct resolver *r)
{
    if (r == NULL)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
    }
    struct resolve_name *n = r->names;
    while (n != NULL) {
        struct resolve_name *next = n->next;
        pthread_mutex_destroy(&n->lock);
        free(n->host);
        free(n);
        n = next;
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

bool resolve_get(struct resolve_name *n, uint64_t seq, struct sock_addr *out)
{
    bool ok = false;
    pthread_mutex_lock(&n->lock);
    if (n->naddrs > 0) {
        *out = n->addrs[seq % n->naddrs];
        ok = true;
    }
    pthread_mutex_unlock(&n->lock);
    return ok;
}

bool resolve_has_addr(const struct resolve_name *n)
{
    return atomic_load_explicit(&n->has_addr, memory_order_acquire);
}
