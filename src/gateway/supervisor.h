/* The supervisor process of `apigate serve`: owns the config and the listening sockets, forks the
 * worker that serves traffic, and keeps one running — restart after a crash (exponential
 * backoff), replacement of a hung worker (watchdog on the shared tick counters), graceful
 * recycling after max_requests, reload on SIGHUP, drain on SIGTERM. It never touches client
 * traffic. */
#ifndef AG_GATEWAY_SUPERVISOR_H
#define AG_GATEWAY_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#include "config/cfg.h"
#include "gateway/worker.h"

struct gw_config;

/* What `serve` was started with; a reload re-reads config_path and applies the same overrides. */
struct supervisor_opts {
    const char *config_path;
    const char *listen; /* --listen: replaces the file's listen (comma-separated), or NULL */
    const char *admin;  /* --admin: replaces the file's admin ("off" disables), or NULL */
    long threads;       /* --threads: replaces workers.threads (0 = CPU count); -1: the file's */
    const char *pid_file; /* --pid-file: the supervisor's pid is written there, or NULL */
    bool share_ports;     /* --share-ports: bind even where another process listens */
};

/* Loads <o>->config_path and applies the overrides. Returns the config, or NULL with every error
 * in <errs>. */
struct gw_config *supervisor_load_config(const struct supervisor_opts *o, struct cfg_errors *errs);

/* Runs until SIGTERM/SIGINT and every worker has exited; takes ownership of <cfg>. Returns the
 * process exit status (0 after a clean stop, 1 when the sockets could not be opened). */
int supervisor_run(const struct supervisor_opts *o, struct gw_config *cfg);

/* Debugging (gdb, valgrind): opens the sockets and runs the worker in this process, without a
 * supervisor (no restart, no reload). Takes ownership of <cfg>; returns the exit status. */
int supervisor_run_single(const struct supervisor_opts *o, struct gw_config *cfg);

/* Restart backoff after crashes: 100 ms doubling up to 5 s; a worker that ran 30 s without a
 * crash resets it. Time is passed in (ms, monotonic). */
struct supervisor_backoff {
    unsigned failures;   /* crashes in a row */
};
#define SUPERVISOR_BACKOFF_MIN_MS 100
#define SUPERVISOR_BACKOFF_MAX_MS 5000
#define SUPERVISOR_STABLE_MS 30000
/* A worker that started at <started_ms> died at <now_ms>: returns the delay before the next
 * start. */
uint64_t supervisor_backoff_next(struct supervisor_backoff *b, uint64_t started_ms,
                                 uint64_t now_ms);

/* Watchdog of one worker: the last tick value seen per thread and when it last moved. */
struct supervisor_watch {
    unsigned nthreads;
    uint64_t last[WORKER_MAX_THREADS];
    uint64_t moved_ms[WORKER_MAX_THREADS];
};
void supervisor_watch_init(struct supervisor_watch *w, unsigned nthreads, uint64_t now_ms);
/* Feeds the current <ticks>; returns the index of a thread stuck for more than <timeout_ms>, or
 * -1 when every thread has ticked recently. */
int supervisor_watch_check(struct supervisor_watch *w, const uint64_t *ticks, uint64_t now_ms,
                           uint64_t timeout_ms);

#endif
