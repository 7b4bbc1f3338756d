/* Event loop for one thread: epoll in edge-triggered mode for fd readiness, a min-heap of
 * millisecond timers, deferred callbacks run after each event batch, and a thread-safe post queue
 * woken through an eventfd. Knows fds and timers only, nothing about HTTP. */
#ifndef AG_CORE_LOOP_H
#define AG_CORE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

#define LOOP_READ 0x1u  /* readable, or peer closed its side */
#define LOOP_WRITE 0x2u /* writable */
#define LOOP_ERROR 0x4u /* error or hang-up: the next read/write says which */
/* With LOOP_READ: the peer has closed its side, so an EOF waits behind whatever data is there.
 * Edge-triggered: a reader that stops at a short read must read on to that EOF, because when the
 * FIN came with the last bytes no further edge will announce it. */
#define LOOP_HUP 0x8u

/* Called with the events that are ready (LOOP_* bits). */
typedef void loop_fd_cb(struct loop *loop, int fd, void *arg, unsigned events);
typedef void loop_timer_cb(struct loop *loop, void *arg);
typedef void loop_task_cb(struct loop *loop, void *arg);

/* A timer embedded in the caller's struct; initialise once with loop_timer_init(). */
struct loop_timer {
    uint64_t _due_ms;    /* loop time at which it fires */
    size_t _heap_index;  /* position in the heap + 1; 0 when not armed */
    loop_timer_cb *_cb;
    void *_arg;
};

struct loop *loop_create(void);
/* Frees the loop; registered fds are not closed, pending timers are forgotten. */
void loop_destroy(struct loop *loop);

/* Registers <fd> once, edge-triggered, for <events> (LOOP_READ | LOOP_WRITE). <cb> gets <arg>.
 * Returns 0 or -1 with errno. Registering for both and ignoring WRITE until needed is the cheap
 * pattern: no epoll_ctl per request. */
int loop_add_fd(struct loop *loop, int fd, unsigned events, loop_fd_cb *cb, void *arg);
/* Changes the interest set of a registered fd. */
int loop_mod_fd(struct loop *loop, int fd, unsigned events);
/* Unregisters <fd> (call before close()); events already collected for it are dropped. */
int loop_del_fd(struct loop *loop, int fd);

void loop_timer_init(struct loop_timer *t, loop_timer_cb *cb, void *arg);
/* Arms <t> to fire once after <delay_ms>, counted from the loop time of the current iteration
 * (from the clock when called outside one); re-arming an armed timer moves it. A timer re-armed
 * with 0 ms from a timer callback fires in the next iteration, not in the same pass. */
void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms);
void loop_timer_stop(struct loop *loop, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t) { return t->_heap_index != 0; }

/* Runs <cb>(<arg>) on this loop's thread after the current event batch (same thread only).
 * Use it to free a connection outside its own callback. */
void loop_defer(struct loop *loop, loop_task_cb *cb, void *arg);
/* Thread-safe: queues <cb>(<arg>) to run on <loop>'s thread and wakes it. */
void loop_post(struct loop *loop, loop_task_cb *cb, void *arg);

/* Runs until loop_stop(); returns 0. */
int loop_run(struct loop *loop);
/* Runs one iteration, waiting at most <max_wait_ms> (-1: until an event or timer). */
void loop_run_once(struct loop *loop, int max_wait_ms);
/* Thread-safe: makes loop_run() return after the current iteration. */
void loop_stop(struct loop *loop);

/* Busy polling: before sleeping, a busy loop asks for events without sleeping for up to an
 * adaptive window of at most <max_us> (0, the default: never). See loop.c for the rule. */
void loop_set_busy_poll(struct loop *loop, uint32_t max_us);
/* Thread-safe counters: polls that caught an event, polls that ended in a sleep, and the time
 * spent polling (wall clock: time a loop without busy polling would have slept; CPU time when
 * the thread has its CPU to itself, as sched_yield() lets waiting tasks run within it). */
struct loop_poll_stats {
    uint64_t hits, misses, spent_us;
};
void loop_busy_poll_stats(const struct loop *loop, struct loop_poll_stats *st);
/* The window now, in µs (0: the next wait sleeps at once). */
uint32_t loop_busy_poll_window(const struct loop *loop);

/* Loop time in ms (monotonic), updated once per iteration: cheap, and the same for one batch. */
uint64_t loop_now_ms(const struct loop *loop);
/* Refreshes the cached time (after a long computation). */
void loop_update_time(struct loop *loop);
/* Number of completed iterations: a watchdog reads it from another thread to detect a hung loop. */
uint64_t loop_ticks(const struct loop *loop);
/* Number of registered fds. */
size_t loop_fd_count(const struct loop *loop);

#endif
