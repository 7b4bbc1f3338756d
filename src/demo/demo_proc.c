/* Child processes and loopback probes for `apigate demo` (see demo_proc.h): fork/exec of this
 * binary with PR_SET_PDEATHSIG, polling waits that a signal flag can cut short, TERM-then-KILL
 * stops, free-port picking and blocking requests (net/httpc.h) for the servers' admin JSON. */
#include "demo/demo_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "net/httpc.h"

/* Prints the last lines of a child's log, so a failed start says why. */
void demo_proc_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[4096];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "---- last lines of %s ----\n%s%s", path, buf,
            n && buf[n - 1] != '\n' ? "\n" : "");
}

/* Picks <n> distinct free loopback ports: all sockets stay bound until every port is known, so
 * the kernel never hands out the same one twice. Someone else may take one before the child
 * binds it; the child then fails to start and says so. */
int demo_proc_free_ports(int *ports, int n)
{
    int fds[4] = {-1, -1, -1, -1};
    int rc = 0;
    for (int i = 0; i < n && i < 4; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] == -1 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &sl) == -1) {
            rc = -1;
            break;
        }
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < 4; i++)
        if (fds[i] != -1)
            close(fds[i]);
    return rc;
}

/* One blocking exchange with a loopback server (the mock's or the gateway's admin endpoints, a
 * few per run: no need for the event loop). Returns the status and the body in <body>, or -1
 * when the server cannot be reached or the answer is not HTTP. */
int demo_proc_http(int port, const char *method, const char *path, struct buf *body)
{
    char url[512], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    struct httpc_resp resp;
    int status = -1;
    if (httpc_request(method, url, 3000, "apigate-demo", &resp, NULL, err, sizeof(err)) == 0)
        status = resp.status;
    buf_reset(body);
    buf_append(body, buf_head(&resp.body), buf_pending(&resp.body));
    httpc_resp_deinit(&resp);
    return status;
}

/* Starts this binary with <argv> (argv[0] is only a name). Output goes to <out> (NULL: ours),
 * stderr to <err> (NULL: ours). A server gets its own process group, so a Ctrl-C on the terminal
 * reaches only the demo, which then stops the children in order; every child also gets SIGTERM
 * from the kernel if the demo dies without cleaning up (PR_SET_PDEATHSIG). */
pid_t demo_proc_spawn(const char *exe, char *const argv[], const char *out, const char *err,
                      bool own_group)
{
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0)
        return pid; /* the child's PID, or -1 */
    if (own_group)
        setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127); /* the demo died between fork and prctl */
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull != -1) {
        dup2(devnull, 0);
        close(devnull);
    }
    if (out) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd == -1 || dup2(fd, 1) == -1)
            _exit(127);
        close(fd);
    }
    if (err) {
        int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd == -1 || dup2(fd, 2) == -1)
            _exit(127);
        close(fd);
    }
    execv(exe, argv);
    fprintf(stderr, "apigate demo: exec %s: %s\n", exe, strerror(errno));
    _exit(127);
}

/* Waits up to <timeout_ms> (0: forever) for <pid> to exit. Returns 0 with its wait status in
 * <status>, 1 on timeout, -1 when a signal asked the demo to stop. */
int demo_proc_wait(pid_t pid, uint64_t timeout_ms, int *status, volatile sig_atomic_t *stop)
{
    uint64_t deadline = clock_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r == -1 && errno == ECHILD))
            return 0;
        if (stop && *stop)
            return -1;
        if (timeout_ms && clock_now_ms() >= deadline)
            return 1;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Stops one child: SIGTERM (servers drain and exit), SIGKILL after the grace, always reaped. */
void demo_proc_stop(pid_t *pid, const char *name, uint64_t grace_ms)
{
    if (*pid <= 0)
        return;
    int st;
    if (waitpid(*pid, &st, WNOHANG) == *pid) {
        *pid = 0;
        return;
    }
    kill(*pid, SIGTERM);
    if (demo_proc_wait(*pid, grace_ms, &st, NULL) == 1) {
        fprintf(stderr, "apigate demo: %s (pid %d) did not stop in %.1f s; killing it\n", name,
                (int)*pid, (double)grace_ms / 1000.0);
        kill(*pid, SIGKILL);
        demo_proc_wait(*pid, 0, &st, NULL);
    }
    *pid = 0;
}

/* True while <pid> runs; reaps it (and clears it) once it has exited. */
bool demo_proc_alive(pid_t *pid)
{
    int st;
    if (*pid <= 0)
        return false;
    if (waitpid(*pid, &st, WNOHANG) == *pid) {
        *pid = 0;
        return false;
    }
    return true;
}

