/* Linux epoll event loop: edge-triggered fds, a binary min-heap of timers, deferred tasks, and an
 * eventfd-woken queue of tasks posted by other threads. One loop per thread; nothing here locks
 * except the post queue. */
#include "core/loop.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/xmalloc.h"

#define LOOP_MAX_EVENTS 256
/* The first busy-poll window once sleeps turn short; it doubles up to the configured maximum. */
#define LOOP_POLL_START_US 2u

struct loop_fd {
    loop_fd_cb *cb;
    void *arg;
    uint32_t gen; /* bumped on every add/del so stale events from a batch are recognised */
    bool used;
};

struct loop_task {
    loop_task_cb *cb;
    void *arg;
};

struct loop_tasks {
    struct loop_task *v;
    size_t n, cap;
};

struct loop {
    int epfd;
    int wakefd;               /* eventfd for loop_post() and loop_stop() */
    struct loop_fd *fds;      /* indexed by fd */
    size_t nfds;              /* size of fds */
    size_t nregistered;
    struct loop_timer **heap; /* min-heap by _due_ms */
    size_t heap_len, heap_cap;
    struct loop_tasks deferred;
    struct loop_tasks running; /* deferred tasks being run: swapped, so tasks may defer again */
    pthread_mutex_t post_lock;
    struct loop_tasks posted;  /* guarded by post_lock */
    struct loop_tasks post_run;
    uint64_t now_ms;
    bool in_timers;           /* loop__run_timers() is running: see loop_timer_start() */
    bool dispatching;         /* inside loop_run_once() after the wait: now_ms is fresh */
    _Atomic uint64_t ticks;
    _Atomic bool stop;
    /* Busy polling (loop_set_busy_poll): the window now, its maximum, and what it did. */
    uint32_t poll_us, poll_max_us;
    _Atomic uint64_t poll_hits, poll_misses, poll_spent_us;
};

static void loop__tasks_push(struct loop_tasks *t, loop_task_cb *cb, void *arg)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    t->v[t->n].cb = cb;
    t->v[t->n].arg = arg;
    t->n++;
}

struct loop *loop_create(void)
{
    struct loop *loop = xcalloc(1, sizeof(*loop));
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd == -1)
        goto err;
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd == -1)
        goto err_ep;
    pthread_mutex_init(&loop->post_lock, NULL);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = UINT64_MAX};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) == -1)
        goto err_wake;
    loop->now_ms = clock_now_ms();
    return loop;
err_wake:
    pthread_mutex_destroy(&loop->post_lock);
    close(loop->wakefd);
err_ep:
    close(loop->epfd);
err:
    free(loop);
    return NULL;
}

void loop_destroy(struct loop *loop)
{
    if (loop == NULL)
        return;
    close(loop->epfd);
    close(loop->wakefd);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop->fds);
    free(loop->heap);
    free(loop->deferred.v);
    free(loop->running.v);
    free(loop->posted.v);
    free(loop->post_run.v);
    free(loop);
}

static uint32_t loop__epoll_bits(unsigned events)
{
    uint32_t e = EPOLLET | EPOLLRDHUP;
    if (events & LOOP_READ)
        e |= EPOLLIN;
    if (events & LOOP_WRITE)
        e |= EPOLLOUT;
    return e;
}

int loop_add_fd(struct loop *loop, int fd, unsigned events, loop_fd_cb *cb, void *arg)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)fd >= loop->nfds) {
        size_t n = loop->nfds ? loop->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        loop->fds = xrealloc(loop->fds, n * sizeof(*loop->fds));
        memset(loop->fds + loop->nfds, 0, (n - loop->nfds) * sizeof(*loop->fds));
        loop->nfds = n;
    }
    struct loop_fd *f = &loop->fds[fd];
    /* The generation moves only once the kernel accepted the fd: a second add of a live fd
     * (EEXIST) must not turn the events of the registration that stays into "stale" ones. */
    uint32_t gen = f->gen + 1;
    struct epoll_event ev = {.events = loop__epoll_bits(events),
                             .data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)gen << 32)};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
        return -1;
    /* f->used with a successful ADD: the old fd was closed without loop_del_fd (epoll forgot it
     * on close) and its number came back. The new registration takes the slot over. */
    if (!f->used)
        loop->nregistered++;
    f->gen = gen;
    f->cb = cb;
    f->arg = arg;
    f->used = true;
    return 0;
}

int loop_mod_fd(struct loop *loop, int fd, unsigned events)
{
    if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].used) {
        errno = EBADF;
        return -1;
    }
    struct loop_fd *f = &loop->fds[fd];
    struct epoll_event ev = {.events = loop__epoll_bits(events),
                             .data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)f->gen << 32)};
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
}

int loop_del_fd(struct loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].used) {
        errno = EBADF;
        return -1;
    }
    struct loop_fd *f = &loop->fds[fd];
    f->used = false;
    f->gen++;
    f->cb = NULL;
    f->arg = NULL;
    loop->nregistered--;
    struct epoll_event ev = {0};
    return epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, &ev);
}

/* ---- timers: binary min-heap of pointers; each timer knows its index for O(log n) removal ---- */

static void loop__heap_set(struct loop *loop, size_t i, struct loop_timer *t)
{
    loop->heap[i] = t;
    t->_heap_index = i + 1;
}

static void loop__heap_up(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->_due_ms <= t->_due_ms)
            break;
        loop__heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    loop__heap_set(loop, i, t);
}

static void loop__heap_down(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint64_t due = t->_due_ms;
        if (l < loop->heap_len && loop->heap[l]->_due_ms < due) {
            m = l;
            due = loop->heap[l]->_due_ms;
        }
        if (r < loop->heap_len && loop->heap[r]->_due_ms < due)
            m = r;
        if (m == i)
            break;
        loop__heap_set(loop, i, loop->heap[m]);
        i = m;
    }
    loop__heap_set(loop, i, t);
}

void loop_timer_init(struct loop_timer *t, loop_timer_cb *cb, void *arg)
{
    t->_due_ms = 0;
    t->_heap_index = 0;
    t->_cb = cb;
    t->_arg = arg;
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
    if (t->_heap_index == 0)
        return;
    size_t i = t->_heap_index - 1;
    t->_heap_index = 0;
    loop->heap_len--;
    if (i == loop->heap_len)
        return;
    loop__heap_set(loop, i, loop->heap[loop->heap_len]);
    loop__heap_up(loop, i);
    loop__heap_down(loop, loop->heap[i]->_heap_index - 1);
}

void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms)
{
    loop_timer_stop(loop, t);
    /* A timer that re-arms itself with no delay from its own callback would otherwise be due
     * again at once and keep loop__run_timers() spinning forever: from inside the timer pass,
     * the earliest is the next millisecond (so the next iteration). */
    if (loop->in_timers && delay_ms == 0)
        delay_ms = 1;
    /* Outside an iteration (setup before loop_run, or between loop_run_once calls) the cached
     * time may be old, and a timer counted from it would fire early. */
    if (!loop->dispatching)
        loop->now_ms = clock_now_ms();
    if (loop->heap_len == loop->heap_cap) {
        loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        loop->heap = xrealloc(loop->heap, loop->heap_cap * sizeof(*loop->heap));
    }
    /* saturate: "never" (UINT64_MAX) must not wrap around into "now" */
    t->_due_ms = delay_ms > UINT64_MAX - loop->now_ms ? UINT64_MAX : loop->now_ms + delay_ms;
    loop->heap[loop->heap_len] = t;
    t->_heap_index = ++loop->heap_len;
    loop__heap_up(loop, loop->heap_len - 1);
}

static void loop__run_timers(struct loop *loop)
{
    loop->in_timers = true;
    while (loop->heap_len > 0 && loop->heap[0]->_due_ms <= loop->now_ms) {
        struct loop_timer *t = loop->heap[0];
        loop_timer_stop(loop, t);
        t->_cb(loop, t->_arg);
    }
    loop->in_timers = false;
}

/* ---- tasks ---- */

void loop_defer(struct loop *loop, loop_task_cb *cb, void *arg)
{
    loop__tasks_push(&loop->deferred, cb, arg);
}

static void loop__wake(struct loop *loop)
{
    uint64_t one = 1;
    ssize_t r = write(loop->wakefd, &one, sizeof(one));
    (void)r; /* EAGAIN means the counter is already non-zero: the loop will wake anyway */
}

void loop_post(struct loop *loop, loop_task_cb *cb, void *arg)
{
    pthread_mutex_lock(&loop->post_lock);
    loop__tasks_push(&loop->posted, cb, arg);
    pthread_mutex_unlock(&loop->post_lock);
    loop__wake(loop);
}

static void loop__run_deferred(struct loop *loop)
{
    /* Tasks may defer more tasks (a freed conn releasing an upstream, say): swap and repeat. */
    while (loop->deferred.n > 0) {
        struct loop_tasks t = loop->deferred;
        loop->deferred = loop->running;
        loop->deferred.n = 0;
        for (size_t i = 0; i < t.n; i++)
            t.v[i].cb(loop, t.v[i].arg);
        t.n = 0;
        loop->running = t;
    }
}

static void loop__run_posted(struct loop *loop)
{
    uint64_t v;
    while (read(loop->wakefd, &v, sizeof(v)) > 0)
        ;
    pthread_mutex_lock(&loop->post_lock);
    struct loop_tasks t = loop->posted;
    loop->posted = loop->post_run;
    loop->posted.n = 0;
    pthread_mutex_unlock(&loop->post_lock);
    for (size_t i = 0; i < t.n; i++)
        t.v[i].cb(loop, t.v[i].arg);
    t.n = 0;
    loop->post_run = t;
}

void loop_set_busy_poll(struct loop *loop, uint32_t max_us)
{
    loop->poll_max_us = max_us;
    if (loop->poll_us > max_us)
        loop->poll_us = max_us;
}

void loop_busy_poll_stats(const struct loop *loop, struct loop_poll_stats *st)
{
    struct loop *l = (struct loop *)loop;
    st->hits = atomic_load_explicit(&l->poll_hits, memory_order_relaxed);
    st->misses = atomic_load_explicit(&l->poll_misses, memory_order_relaxed);
    st->spent_us = atomic_load_explicit(&l->poll_spent_us, memory_order_relaxed);
}

uint32_t loop_busy_poll_window(const struct loop *loop) { return loop->poll_us; }

/* The loop's thread is the only writer of its counters: no locked add on the hot path, readers
 * on other threads see whole values. */
static void loop__count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Waits for events as epoll_wait(2) does. With busy polling on and the loop busy, it first asks
 * without sleeping, for up to the current window: an event that comes within it is taken with no
 * sleep and no wake-up. Waking a sleeping thread costs the CPU that sends the bytes (the client's
 * or the origin's): the wake-up, and in a VM an IPI to a halted vCPU, a VM exit. A gateway faster
 * than its peers sleeps between every two batches and makes them pay that each time
 * (docs/BENCHMARKS.md, "Why the gateway busy-polls").
 * The window adapts as KVM's halt polling does: a sleep that ended within the maximum would have
 * been saved by a longer window (double it); a longer sleep says the loop is not that busy
 * (halve it, down to none). An idle or lightly loaded loop therefore never spins, and
 * sched_yield() between two polls lets a task that waits for this CPU run first. */
static int loop__wait(struct loop *loop, struct epoll_event *events, int timeout)
{
    if (timeout == 0 || loop->poll_max_us == 0)
        return epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, timeout);
    if (loop->poll_us > 0) {
        /* never past a timer that is due sooner (timeout is -1 or at least 1 ms) */
        uint64_t window = timeout > 0 && (uint64_t)timeout * 1000 < loop->poll_us
                              ? (uint64_t)timeout * 1000
                              : loop->poll_us;
        uint64_t start = clock_now_us(), spent;
        for (;;) {
            int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, 0);
            if (n < 0)
                return n; // EINTR: the caller's iteration sees no events
            spent = clock_now_us() - start;
            if (n > 0) {
                loop__count(&loop->poll_hits, 1);
                loop__count(&loop->poll_spent_us, spent);
                return n;
            }
            if (spent >= window)
                break;
            sched_yield();
        }
        loop__count(&loop->poll_misses, 1);
        loop__count(&loop->poll_spent_us, spent);
    }
    uint64_t slept = clock_now_us();
    int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, timeout);
    slept = clock_now_us() - slept;
    if (slept <= loop->poll_max_us) {
        uint32_t grown = loop->poll_us ? loop->poll_us * 2 : LOOP_POLL_START_US;
        loop->poll_us = grown < loop->poll_max_us ? grown : loop->poll_max_us;
    } else {
        loop->poll_us = loop->poll_us / 2 >= LOOP_POLL_START_US ? loop->poll_us / 2 : 0;
    }
    return n;
}

void loop_run_once(struct loop *loop, int max_wait_ms)
{
    int timeout = max_wait_ms;
    if (loop->deferred.n > 0) {
        timeout = 0;
    } else if (loop->heap_len > 0) {
        uint64_t due = loop->heap[0]->_due_ms;
        uint64_t now = clock_now_ms();
        int t = due <= now ? 0 : (due - now > 60000 ? 60000 : (int)(due - now));
        if (timeout < 0 || t < timeout)
            timeout = t;
    }
    struct epoll_event events[LOOP_MAX_EVENTS];
    int n = loop__wait(loop, events, timeout);
    loop->now_ms = clock_now_ms();
    loop->dispatching = true;
    bool woken = false;
    for (int i = 0; i < n; i++) {
        uint64_t data = events[i].data.u64;
        if (data == UINT64_MAX) {
            woken = true;
            continue;
        }
        int fd = (int)(uint32_t)data;
        uint32_t gen = (uint32_t)(data >> 32);
        if ((size_t)fd >= loop->nfds)
            continue;
        struct loop_fd *f = &loop->fds[fd];
        if (!f->used || f->gen != gen)
            continue; /* unregistered (and maybe reused) earlier in this batch */
        uint32_t e = events[i].events;
        unsigned ev = 0;
        if (e & (EPOLLIN | EPOLLRDHUP))
            ev |= LOOP_READ;
        if (e & (EPOLLRDHUP | EPOLLHUP))
            ev |= LOOP_HUP;
        if (e & EPOLLOUT)
            ev |= LOOP_WRITE;
        if (e & (EPOLLERR | EPOLLHUP))
            ev |= LOOP_ERROR | LOOP_READ | LOOP_WRITE;
        f->cb(loop, fd, f->arg, ev);
    }
    loop__run_deferred(loop);
    if (woken || atomic_load_explicit(&loop->stop, memory_order_relaxed))
        loop__run_posted(loop);
    loop__run_timers(loop);
    loop__run_deferred(loop);
    loop->dispatching = false;
    atomic_fetch_add_explicit(&loop->ticks, 1, memory_order_relaxed);
}

int loop_run(struct loop *loop)
{
    while (!atomic_load_explicit(&loop->stop, memory_order_acquire))
        loop_run_once(loop, -1);
    atomic_store(&loop->stop, false);
    return 0;
}

void loop_stop(struct loop *loop)
{
    atomic_store_explicit(&loop->stop, true, memory_order_release);
    loop__wake(loop);
}

uint64_t loop_now_ms(const struct loop *loop) { return loop->now_ms; }
void loop_update_time(struct loop *loop) { loop->now_ms = clock_now_ms(); }
uint64_t loop_ticks(const struct loop *loop)
{
    return atomic_load_explicit(&((struct loop *)loop)->ticks, memory_order_relaxed);
}
size_t loop_fd_count(const struct loop *loop) { return loop->nregistered; }
