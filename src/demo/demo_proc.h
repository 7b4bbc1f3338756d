/* The process and probe plumbing of `apigate demo`: start this binary as a child, wait for it,
 * stop it, pick free loopback ports, and ask a loopback server one HTTP question. Blocking and
 * simple on purpose: the demo does a handful of these per run, never on a hot path. */
#ifndef AG_DEMO_DEMO_PROC_H
#define AG_DEMO_DEMO_PROC_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct buf;

/* Starts <exe> with <argv> (NULL-terminated; argv[0] is only a name), stdin from /dev/null,
 * stdout to the file <out> and stderr to the file <err> (NULL: inherited). With <own_group> the
 * child gets its own process group, so a terminal's Ctrl-C reaches only the parent, which stops
 * its children in order. Every child gets SIGTERM from the kernel if the parent dies
 * (PR_SET_PDEATHSIG), so even a SIGKILLed parent leaves no orphan behind. Returns the PID, or -1
 * with errno set when fork fails. */
pid_t demo_proc_spawn(const char *exe, char *const argv[], const char *out, const char *err,
                      bool own_group);

/* Waits up to <timeout_ms> (0: forever) for <pid> to exit. Returns 0 with its wait status in
 * <status>, 1 on timeout, -1 as soon as *<stop> is non-zero (NULL: never). */
int demo_proc_wait(pid_t pid, uint64_t timeout_ms, int *status, volatile sig_atomic_t *stop);

/* Stops *<pid>: SIGTERM (servers drain and exit), SIGKILL after <grace_ms>, always reaped; then
 * *<pid> = 0. <name> is for the message when it had to be killed. No-op when *<pid> <= 0. */
void demo_proc_stop(pid_t *pid, const char *name, uint64_t grace_ms);

/* True while *<pid> runs; reaps it and sets *<pid> = 0 once it has exited. */
bool demo_proc_alive(pid_t *pid);

/* Fills <ports> with <n> (at most 4) distinct free loopback TCP ports. Returns 0 or -1. */
int demo_proc_free_ports(int *ports, int n);

/* One request to 127.0.0.1:<port> (each step within 3 s). Returns the status with the body
 * in <body> (replaced), or -1 when the server cannot be reached or the answer is not HTTP. */
int demo_proc_http(int port, const char *method, const char *path, struct buf *body);

/* Prints the last 4 KB of the file <path> to stderr (a child's log, when it failed). */
void demo_proc_tail(const char *path);

#endif
