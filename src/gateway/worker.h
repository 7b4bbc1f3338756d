/* The boundary between the supervisor process and a worker process. The supervisor owns the
 * listening sockets and the config; it forks a worker that runs N loop threads on them and reports
 * its liveness through a shared memory block. */
#ifndef AG_GATEWAY_WORKER_H
#define AG_GATEWAY_WORKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct gw_config;

#define WORKER_MAX_THREADS 64

/* Shared (MAP_SHARED | MAP_ANONYMOUS, created by the supervisor before fork) between the
 * supervisor and one worker. One block per worker generation. */
struct worker_shm {
    _Atomic uint64_t ticks[WORKER_MAX_THREADS]; /* loop iterations per thread: the watchdog input */
    _Atomic uint64_t requests;      /* requests completed by this worker */
    _Atomic uint32_t ready;         /* set by the worker once every thread runs */
    _Atomic uint32_t want_recycle;  /* set by the worker when it reached max_requests */
    _Atomic uint64_t restarts;      /* worker restarts so far (written by the supervisor) */
    _Atomic uint64_t recycles;      /* ... of which planned max_requests recycles (the rest crashed
                                       or hung) */
    _Atomic uint64_t started_ms;    /* wall clock ms when the supervisor started */
    /* hand-over to the replacement (handoff.h): the supervisor sets 1 and sends SIGUSR2; the
     * worker writes its snapshot into its handoff_out_fd and sets 2 (written, handoff_len bytes)
     * or 3 (failed) */
    _Atomic uint32_t handoff_state;
    _Atomic uint64_t handoff_len;
};
#define WORKER_HANDOFF_REQUESTED 1
#define WORKER_HANDOFF_WRITTEN 2
#define WORKER_HANDOFF_FAILED 3

struct worker_ctx {
    const struct gw_config *cfg;
    const int *listen_fds;   /* one SO_REUSEPORT socket per loop thread, already listening */
    size_t nlisten;          /* equals the number of loop threads */
    int admin_fd;            /* admin listener, -1 if disabled */
    struct worker_shm *shm;
    uint64_t max_requests;   /* 0: never recycle; jitter already applied by the supervisor */
    unsigned generation;     /* 1 for the first worker, +1 per restart or reload */
    int handoff_out_fd;      /* memory file this worker writes its hand-over into; -1: none */
    int handoff_in_fd;       /* the predecessor's hand-over to read before serving; -1: none */
    uint64_t handoff_in_len; /* its length */
};

/* Runs a worker in the current (forked) process: installs its signal handlers (SIGTERM: stop
 * accepting, drain in-flight requests up to cfg drain_timeout, exit), starts one loop thread per
 * listen fd, and returns the process exit status when it stops. */
int worker_run(const struct worker_ctx *ctx);

#endif
