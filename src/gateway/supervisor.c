/* Supervisor of `apigate serve`: the process that owns the listening sockets and the config and
 * keeps exactly one worker serving. It reacts to signals (signalfd) and to its children (waitpid)
 * in a 100 ms poll loop, reads the workers' liveness from their shared memory block, and never
 * touches client traffic. Mechanism only: what a worker does is worker_run()'s business. */
#include "gateway/supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/gwconf.h"
#include "net/sock.h"

#define SV_MAX_WORKERS 16       /* live worker processes: current, next, and draining ones */
#define SV_POLL_MS 100          /* watchdog resolution */
#define SV_POLL_FAST_MS 5       /* readiness resolution while a worker starts */
#define SV_KILL_MARGIN_MS 2000  /* after drain_timeout, before SIGKILL */
#define SV_START_MIN_MS 10000   /* a new worker gets at least this long to become ready */
#define SV_HANDOFF_MS 10000     /* the old worker writes its hand-over within this, or none */

/* Life of a worker: STARTING (forked, shm->ready not set yet) -> RUNNING (ready, watched by the
 * tick watchdog) -> DRAINING (SIGTERM sent, SIGKILL at its deadline) -> reaped. At most one
 * worker is `current` (it serves) and one is `next` (it starts to replace current on a recycle or
 * a reload); any number may be draining. The order of a handover -- start next, wait until it is
 * ready, only then SIGTERM current -- is what makes reloads lossless: both processes accept on
 * the same listening sockets during the overlap, so the kernel always has someone to hand a new
 * connection to. */
enum sv_state { SV_STARTING, SV_RUNNING, SV_DRAINING };
enum sv_why { SV_WHY_START, SV_WHY_RESTART, SV_WHY_RECYCLE, SV_WHY_RELOAD };
static const char *const sv_why_name[] = {"start", "restart", "recycle", "reload"};

struct sv_worker {
    pid_t pid;               /* 0: free slot */
    struct worker_shm *shm;
    unsigned generation;
    enum sv_state state;
    enum sv_why why;
    unsigned nthreads;       /* loop threads, for messages */
    unsigned nslots;         /* tick slots watched: one per listening socket */
    uint64_t started_ms;     /* monotonic */
    uint64_t deadline_ms;    /* STARTING: ready by then; DRAINING: SIGKILL then */
    uint64_t drain_ms;
    uint64_t worker_timeout_ms;
    struct supervisor_watch watch;
    bool hung;               /* killed by the watchdog */
    bool killed;             /* SIGKILL sent */
    int handoff_fd;          /* memory file it writes its hand-over into (handoff.h); -1: none */
};

/* The sockets a worker generation serves on. */
struct sv_socks {
    int *fds;       /* address-major: fds[a * threads + t] */
    size_t n;
    int admin_fd;   /* -1: admin off */
};

struct sv {
    const struct supervisor_opts *opts;
    struct gw_config *cfg;          /* config of the current worker */
    struct sv_socks socks;
    struct gw_config *pending_cfg;  /* reload waiting for its worker to be ready */
    struct sv_socks pending_socks;
    struct sv_worker workers[SV_MAX_WORKERS];
    struct sv_worker *current;      /* the worker that serves */
    struct sv_worker *next;         /* starting to replace current (recycle or reload) */
    unsigned generation;
    uint64_t restarts;
    uint64_t recycles;              /* the restarts that were planned (max_requests) */
    struct supervisor_backoff backoff;
    uint64_t restart_at_ms;         /* no current worker: start one at this time (0: none) */
    uint64_t recycle_retry_ms;      /* a failed replacement is retried after this */
    bool reload_requested;
    bool ever_ready;                /* some worker reported ready: later deaths are restarted */
    int exit_code;
    bool stopping;
    uint64_t stop_deadline_ms;
    int sfd;                        /* signalfd */
    sigset_t oldmask;               /* restored in the worker */
    pid_t self;
    uint64_t started_wall_ms;       /* apigate_uptime_seconds counts from here */
};

/* ---- pure parts (unit-tested) ---- */

/* Doubling keeps a crash loop (a bad deploy, a dependency that kills the worker at once) from
 * burning a CPU on fork+exit, while the first restart comes fast enough that clients barely
 * notice; the reset after SUPERVISOR_STABLE_MS keeps one crash a week from paying the 5 s cap. */
uint64_t supervisor_backoff_next(struct supervisor_backoff *b, uint64_t started_ms, uint64_t now_ms)
{
    if (now_ms >= started_ms && now_ms - started_ms >= SUPERVISOR_STABLE_MS)
        b->failures = 0;
    uint64_t d = SUPERVISOR_BACKOFF_MIN_MS;
    for (unsigned i = 0; i < b->failures && d < SUPERVISOR_BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > SUPERVISOR_BACKOFF_MAX_MS)
        d = SUPERVISOR_BACKOFF_MAX_MS;
    if (b->failures < 64)
        b->failures++;
    return d;
}

void supervisor_watch_init(struct supervisor_watch *w, unsigned nthreads, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->nthreads = nthreads > WORKER_MAX_THREADS ? WORKER_MAX_THREADS : nthreads;
    for (unsigned i = 0; i < w->nthreads; i++)
        w->moved_ms[i] = now_ms;
}

/* A thread counts as alive when its counter changed since the last look, whatever the value:
 * the counter may wrap, and nothing but "it moved" matters. The first stuck thread is reported. */
int supervisor_watch_check(struct supervisor_watch *w, const uint64_t *ticks, uint64_t now_ms,
                           uint64_t timeout_ms)
{
    int stuck = -1;
    for (unsigned i = 0; i < w->nthreads; i++) {
        if (ticks[i] != w->last[i]) {
            w->last[i] = ticks[i];
            w->moved_ms[i] = now_ms;
        } else if (stuck < 0 && now_ms - w->moved_ms[i] > timeout_ms) {
            stuck = (int)i;
        }
    }
    return stuck;
}

/* ---- config ---- */

struct gw_config *supervisor_load_config(const struct supervisor_opts *o, struct cfg_errors *errs)
{
    struct gw_config *c = gwconf_load(o->config_path, errs);
    if (c == NULL)
        return NULL;
    char err[256];
    if ((o->listen && gwconf_set_listen(c, o->listen, err, sizeof(err)) != 0) ||
        (o->admin && gwconf_set_admin(c, o->admin, err, sizeof(err)) != 0) ||
        (o->threads >= 0 && gwconf_set_threads(c, o->threads, err, sizeof(err)) != 0)) {
        cfg_error(errs, NULL, "command line: %s", err);
        gwconf_free(c);
        return NULL;
    }
    return c;
}

/* ---- sockets ---- */

static bool sv__has_fd(const struct sv_socks *s, int fd)
{
    if (fd < 0)
        return false;
    if (s->admin_fd == fd)
        return true;
    for (size_t i = 0; i < s->n; i++)
        if (s->fds[i] == fd)
            return true;
    return false;
}

/* Closes the fds of <s> that <keep> does not also hold, and empties <s>. */
static void sv__socks_release(struct sv_socks *s, const struct sv_socks *keep)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->fds[i] >= 0 && !(keep && sv__has_fd(keep, s->fds[i])))
            close(s->fds[i]);
    if (s->admin_fd >= 0 && !(keep && sv__has_fd(keep, s->admin_fd)))
        close(s->admin_fd);
    free(s->fds);
    s->fds = NULL;
    s->n = 0;
    s->admin_fd = -1;
}

static bool sv__same_admin(const struct gw_config *a, const struct gw_config *b)
{
    if (a->admin_enabled != b->admin_enabled)
        return false;
    return !a->admin_enabled || (a->admin_addr.len == b->admin_addr.len &&
                                 memcmp(&a->admin_addr.ss, &b->admin_addr.ss,
                                        a->admin_addr.len) == 0);
}

/* True when a socket of <oldc> (listen or admin) holds the port of <a> (on any address: a reload
 * from 0.0.0.0:P to 127.0.0.1:P joins our own socket): the port is ours already, and a probe
 * would only find our own sockets. */
static bool sv__port_ours(const struct gw_config *oldc, const struct sock_addr *a)
{
    if (oldc == NULL)
        return false;
    int port = sock_addr_port(a);
    for (size_t i = 0; i < oldc->nlisten; i++)
        if (sock_addr_port(&oldc->listen[i].addr) == port)
            return true;
    return oldc->admin_enabled && sock_addr_port(&oldc->admin_addr) == port;
}

/* Our SO_REUSEPORT sockets would join any SO_REUSEPORT listener of the same user on <a> (a
 * second gateway, a mock), each taking part of the connections, silently. A first bind without
 * SO_REUSEPORT fails with EADDRINUSE when anyone listens there, as nginx's does; it is closed
 * before the real sockets bind. Skipped for ports our old sockets hold (a reload) and with
 * --share-ports (a binary upgrade next to the running gateway). Returns 0 or -1 (logged). */
static int sv__probe(const struct sock_addr *a, const struct gw_config *oldc, bool share)
{
    if (share || sock_addr_port(a) == 0 || sv__port_ours(oldc, a))
        return 0;
    char err[256];
    int fd = sock_listen(a, false, 1, err, sizeof(err));
    if (fd < 0) {
        int e = errno;
        ag_log(AG_LOG_ERROR, "%s%s", err,
               e == EADDRINUSE ? " (another process listens there: a second gateway or "
                                     "another server; each address belongs to one supervisor)"
                                   : "");
        return -1;
    }
    close(fd);
    return 0;
}

/* Opens the sockets of <c> into <s>, reusing those of <old>/<oldc> that did not change.
 * Returns 0, or -1 with every socket it opened closed again. Reusing matters: a reload that kept
 * its addresses must not close and rebind them, or connections queued on the old sockets would
 * be reset and there would be a moment with nothing bound. One SO_REUSEPORT socket per loop
 * thread lets the kernel spread connections over the threads without an accept lock; a port
 * new to this supervisor is probed first (sv__probe), so that it is never shared by accident. */
static int sv__socks_open(const struct gw_config *c, struct sv_socks *s,
                          const struct gw_config *oldc, const struct sv_socks *old, bool share)
{
    size_t threads = (size_t)c->workers.threads;
    s->n = 0;
    s->admin_fd = -1;
    s->fds = xcalloc(c->nlisten * threads, sizeof(int));
    char err[256];
    if (oldc && !gwconf_listen_changed(oldc, c)) {
        memcpy(s->fds, old->fds, old->n * sizeof(int));
        s->n = old->n;
    } else {
        for (size_t a = 0; a < c->nlisten; a++) {
            if (sv__probe(&c->listen[a].addr, oldc, share) != 0)
                goto fail;
            for (size_t t = 0; t < threads; t++) {
                int fd = sock_listen(&c->listen[a].addr, true, (int)c->server.backlog, err,
                                     sizeof(err));
                if (fd < 0) {
                    ag_log(AG_LOG_ERROR, "cannot listen on %s: %s", c->listen[a].spec, err);
                    goto fail;
                }
                s->fds[s->n++] = fd;
            }
        }
    }
    if (c->admin_enabled) {
        if (oldc && old->admin_fd >= 0 && sv__same_admin(oldc, c)) {
            s->admin_fd = old->admin_fd;
        } else {
            /* SO_REUSEPORT here too, so that with --share-ports a second gateway (a new
             * version being rolled out on the same host) can start next to this one. */
            if (sv__probe(&c->admin_addr, oldc, share) != 0)
                goto fail;
            s->admin_fd = sock_listen(&c->admin_addr, true, 128, err, sizeof(err));
            if (s->admin_fd < 0) {
                ag_log(AG_LOG_ERROR, "cannot listen on admin address %s: %s", c->admin, err);
                goto fail;
            }
        }
    }
    return 0;
fail:
    sv__socks_release(s, old);
    return -1;
}

/* ---- systemd ---- */

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (Type=notify units), so
 * `systemctl start` returns once a worker serves and `systemctl reload` once the new one does. */
static void sv__notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sv__notify(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= 108)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(path);
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen)) < 0)
        ag_log(AG_LOG_DEBUG, "sd_notify: %s", strerror(errno));
    close(fd);
}

/* ---- workers ---- */

static struct sv_worker *sv__slot(struct sv *sv)
{
    for (size_t i = 0; i < SV_MAX_WORKERS; i++)
        if (sv->workers[i].pid == 0)
            return &sv->workers[i];
    return NULL;
}

static size_t sv__alive(const struct sv *sv)
{
    size_t n = 0;
    for (size_t i = 0; i < SV_MAX_WORKERS; i++)
        n += sv->workers[i].pid != 0;
    return n;
}

/* In the forked child: keeps only <mine> of the supervisor's fds and runs the worker. */
static void sv__child(struct sv *sv, const struct gw_config *c, const struct sv_socks *mine,
                      struct worker_shm *shm, unsigned generation, uint64_t max_requests,
                      int handoff_out, int handoff_in, uint64_t handoff_in_len)
{
    /* The stop signals stay blocked: worker_run() takes them with sigtimedwait(), and a SIGTERM
     * sent between fork and that point (a stop during a start) waits for it instead of killing
     * the worker with the default action. SIGCHLD goes back to what it was. */
    sigset_t mask = sv->oldmask;
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR2); /* a hand-over request: taken by worker_run(), never fatal */
    sigdelset(&mask, SIGCHLD);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    /* A worker outlives nothing: if the supervisor dies (kill -9), the worker drains and exits. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != sv->self)
        _exit(0);
    /* Ctrl-C in a terminal reaches the whole foreground group; only the supervisor should get
     * it, so that the worker drains instead of dying. */
    setpgid(0, 0);
    unsetenv("NOTIFY_SOCKET"); /* systemd hears from the supervisor only */
    close(sv->sfd);
    if (sv->pending_cfg)
        for (size_t i = 0; i < sv->pending_socks.n; i++)
            if (!sv__has_fd(mine, sv->pending_socks.fds[i]))
                close(sv->pending_socks.fds[i]);
    for (size_t i = 0; i < sv->socks.n; i++)
        if (!sv__has_fd(mine, sv->socks.fds[i]))
            close(sv->socks.fds[i]);
    if (sv->socks.admin_fd >= 0 && !sv__has_fd(mine, sv->socks.admin_fd))
        close(sv->socks.admin_fd);
    if (sv->pending_cfg && sv->pending_socks.admin_fd >= 0 &&
        !sv__has_fd(mine, sv->pending_socks.admin_fd))
        close(sv->pending_socks.admin_fd);
    for (size_t i = 0; i < SV_MAX_WORKERS; i++) {
        if (sv->workers[i].pid != 0 && sv->workers[i].shm != shm)
            munmap(sv->workers[i].shm, sizeof(struct worker_shm));
        if (sv->workers[i].pid != 0 && sv->workers[i].handoff_fd >= 0 &&
            sv->workers[i].handoff_fd != handoff_in)
            close(sv->workers[i].handoff_fd);
    }
    log_set_proc("worker");
    struct worker_ctx ctx = {
        .cfg = c,
        .listen_fds = mine->fds,
        .nlisten = mine->n,
        .admin_fd = mine->admin_fd,
        .shm = shm,
        .max_requests = max_requests,
        .generation = generation,
        .handoff_out_fd = handoff_out,
        .handoff_in_fd = handoff_in,
        .handoff_in_len = handoff_in_len,
    };
    int rc = worker_run(&ctx);
    _exit(rc & 0xff);
}

/* Asks the running worker <w> for its hand-over (cache, counters) and waits for it, at most
 * SV_HANDOFF_MS. Returns its memory file (with the length in <len>) for the replacement, or -1:
 * the replacement then starts empty, as before hand-overs existed. */
static int sv__handoff(struct sv_worker *w, uint64_t *len)
{
    *len = 0;
    if (w == NULL || w->state != SV_RUNNING || w->handoff_fd < 0 || w->killed)
        return -1;
    atomic_store(&w->shm->handoff_state, WORKER_HANDOFF_REQUESTED);
    if (kill(w->pid, SIGUSR2) != 0)
        return -1;
    uint64_t deadline = clock_now_ms() + SV_HANDOFF_MS;
    for (;;) {
        uint32_t st = atomic_load(&w->shm->handoff_state);
        if (st == WORKER_HANDOFF_WRITTEN) {
            *len = atomic_load(&w->shm->handoff_len);
            return w->handoff_fd;
        }
        if (st == WORKER_HANDOFF_FAILED || clock_now_ms() >= deadline || kill(w->pid, 0) != 0)
            break;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 2000000};
        nanosleep(&ts, NULL);
    }
    ag_log(AG_LOG_WARN, "worker pid %d (generation %u) gave no hand-over within %d ms; the next "
                        "worker starts with an empty cache", (int)w->pid, w->generation,
           SV_HANDOFF_MS);
    atomic_store(&w->shm->handoff_state, 0);
    return -1;
}

/* Forks a worker for config <c> on <socks>. Returns it, or NULL (logged). The shared block is
 * mapped before fork so both processes see the same pages; it is fresh per generation, so a
 * dying worker cannot scribble on its successor's counters. */
static struct sv_worker *sv__start(struct sv *sv, const struct gw_config *c,
                                   const struct sv_socks *socks, enum sv_why why)
{
    struct sv_worker *w = sv__slot(sv);
    if (w == NULL) {
        ag_log(AG_LOG_ERROR, "too many worker processes still draining (%d); not starting one",
               SV_MAX_WORKERS);
        return NULL;
    }
    void *m = mmap(NULL, sizeof(struct worker_shm), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        ag_log(AG_LOG_ERROR, "mmap of the worker block failed: %s", strerror(errno));
        return NULL;
    }
    struct worker_shm *shm = m;
    memset(shm, 0, sizeof(*shm));
    /* Written before fork, so the new worker's first /metrics scrape already counts itself. A
     * reload is not a restart: nothing went wrong. */
    if (why == SV_WHY_RESTART || why == SV_WHY_RECYCLE)
        sv->restarts++;
    if (why == SV_WHY_RECYCLE)
        sv->recycles++;
    atomic_store(&shm->restarts, sv->restarts);
    atomic_store(&shm->recycles, sv->recycles);
    atomic_store(&shm->started_ms, sv->started_wall_ms);
    /* Jitter per worker, not per config: gateways started together drift apart. */
    uint64_t maxreq = (uint64_t)c->workers.max_requests;
    if (maxreq > 0 && c->workers.max_requests_jitter > 0)
        maxreq += (uint64_t)random() % ((uint64_t)c->workers.max_requests_jitter + 1);
    unsigned gen = ++sv->generation;
    /* A replacement gets the running worker's cache and counters (handoff.h); every worker gets
     * a memory file of its own to write them into for its successor. */
    uint64_t hin_len = 0;
    int hin = why == SV_WHY_RELOAD || why == SV_WHY_RECYCLE ? sv__handoff(sv->current, &hin_len)
                                                           : -1;
    int hout = memfd_create("apigate-handoff", MFD_CLOEXEC);
    if (hout < 0)
        ag_log(AG_LOG_WARN, "memfd_create: %s (no cache hand-over from this worker)",
               strerror(errno));

    pid_t pid = fork();
    if (pid < 0) {
        ag_log(AG_LOG_ERROR, "fork failed: %s", strerror(errno));
        if (hout >= 0)
            close(hout);
        munmap(m, sizeof(struct worker_shm));
        sv->generation--;
        if (why == SV_WHY_RESTART || why == SV_WHY_RECYCLE)
            sv->restarts--;
        if (why == SV_WHY_RECYCLE)
            sv->recycles--;
        return NULL;
    }
    if (pid == 0)
        sv__child(sv, c, socks, shm, gen, maxreq, hout, hin, hin_len);

    uint64_t now = clock_now_ms();
    memset(w, 0, sizeof(*w));
    w->pid = pid;
    w->shm = shm;
    w->generation = gen;
    w->state = SV_STARTING;
    w->why = why;
    w->nthreads = (unsigned)c->workers.threads;
    w->nslots = (unsigned)(socks->n < WORKER_MAX_THREADS ? socks->n : WORKER_MAX_THREADS);
    w->started_ms = now;
    w->handoff_fd = hout;
    w->worker_timeout_ms = c->workers.worker_timeout_ms;
    w->drain_ms = c->workers.drain_timeout_ms;
    w->deadline_ms = now + (w->worker_timeout_ms > SV_START_MIN_MS ? w->worker_timeout_ms
                                                                    : SV_START_MIN_MS);
    if (maxreq > 0)
        ag_log(AG_LOG_INFO, "worker pid %d started (generation %u, %s, %u threads, recycle after "
                            "%llu requests)", (int)pid, gen, sv_why_name[why], w->nthreads,
               (unsigned long long)maxreq);
    else
        ag_log(AG_LOG_INFO, "worker pid %d started (generation %u, %s, %u threads)", (int)pid,
               gen, sv_why_name[why], w->nthreads);
    return w;
}

static void sv__kill(struct sv_worker *w, int sig)
{
    if (w->pid > 0 && kill(w->pid, sig) != 0 && errno != ESRCH)
        ag_log(AG_LOG_WARN, "kill(%d, %d): %s", (int)w->pid, sig, strerror(errno));
    if (sig == SIGKILL)
        w->killed = true;
}

/* Tells <w> to stop accepting and finish its requests; SIGKILL if it is not gone in time. */
static void sv__drain(struct sv_worker *w, uint64_t now)
{
    w->state = SV_DRAINING;
    w->deadline_ms = now + w->drain_ms + SV_KILL_MARGIN_MS;
    sv__kill(w, SIGTERM);
}

/* Makes the reload's config and sockets the current ones, closing sockets no longer listed. */
static void sv__commit_pending(struct sv *sv)
{
    if (sv->pending_cfg == NULL)
        return;
    sv__socks_release(&sv->socks, &sv->pending_socks);
    gwconf_free(sv->cfg);
    sv->cfg = sv->pending_cfg;
    sv->socks = sv->pending_socks;
    sv->pending_cfg = NULL;
    memset(&sv->pending_socks, 0, sizeof(sv->pending_socks));
    sv->pending_socks.admin_fd = -1;
    log_set_level((enum log_level)sv->cfg->logging.level);
    log_set_json(sv->cfg->logging.format == GW_FMT_JSON);
}

static void sv__abort_pending(struct sv *sv)
{
    if (sv->pending_cfg == NULL)
        return;
    sv__socks_release(&sv->pending_socks, &sv->socks);
    gwconf_free(sv->pending_cfg);
    sv->pending_cfg = NULL;
}

/* A worker exited with <status>: a draining one is simply gone; a `next` that died takes its
 * reload or recycle down with it (the current worker keeps serving); a `current` that died is
 * replaced, at once by a `next` already starting, else after the backoff. */
static void sv__reaped(struct sv *sv, struct sv_worker *w, int status, uint64_t now)
{
    char how[64];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));

    if (w->state == SV_DRAINING) {
        ag_log(w->killed ? AG_LOG_WARN : AG_LOG_INFO, "worker pid %d (generation %u) %s after "
               "draining%s", (int)w->pid, w->generation, how,
               w->killed ? " (drain_timeout passed: in-flight requests were cut)" : "");
    } else if (w == sv->next) {
        ag_log(AG_LOG_ERROR, "new worker pid %d (generation %u, %s) %s before it was ready; %s",
               (int)w->pid, w->generation, sv_why_name[w->why], how,
               sv->current ? "the running worker keeps serving" : "starting another");
        sv->next = NULL;
        if (w->why == SV_WHY_RELOAD) {
            sv__abort_pending(sv);
            sv__notify("READY=1\nSTATUS=reload failed; serving the previous configuration");
        }
        sv->recycle_retry_ms = now + supervisor_backoff_next(&sv->backoff, w->started_ms, now);
    } else if (w == sv->current) {
        sv->current = NULL;
        uint64_t delay = supervisor_backoff_next(&sv->backoff, w->started_ms, now);
        if (sv->stopping) {
            ag_log(AG_LOG_INFO, "worker pid %d (generation %u) %s", (int)w->pid, w->generation,
                   how);
        } else if (!sv->ever_ready && w->state == SV_STARTING) {
            /* The very first worker could not start: a config the worker rejects, a resource
             * limit. Retrying forever would hide it; fail like nginx does at start. */
            ag_log(AG_LOG_ERROR, "the first worker (pid %d) %s before it was ready; not "
                                 "retrying: see the worker's messages above", (int)w->pid, how);
            sv->stopping = true;
            sv->stop_deadline_ms = now;
            sv->exit_code = 1;
        } else if (sv->next != NULL) {
            /* Its replacement is already starting: it takes over at once. */
            ag_log(AG_LOG_WARN, "worker pid %d (generation %u) %s; generation %u takes over",
                   (int)w->pid, w->generation, how, sv->next->generation);
            sv->current = sv->next;
            sv->next = NULL;
            if (sv->current->why == SV_WHY_RELOAD)
                sv__commit_pending(sv);
        } else {
            ag_log(AG_LOG_WARN, "worker pid %d (generation %u) %s%s; restarting in %llu ms "
                   "(restart #%llu)", (int)w->pid, w->generation, how,
                   w->hung ? " by the watchdog" : "", (unsigned long long)delay,
                   (unsigned long long)sv->restarts + 1);
            sv->restart_at_ms = now + delay;
        }
    } else {
        ag_log(AG_LOG_INFO, "worker pid %d (generation %u) %s", (int)w->pid, w->generation, how);
    }
    if (sv->current == w)
        sv->current = NULL;
    if (sv->next == w)
        sv->next = NULL;
    munmap(w->shm, sizeof(struct worker_shm));
    if (w->handoff_fd >= 0)
        close(w->handoff_fd);
    memset(w, 0, sizeof(*w));
}

static void sv__reap(struct sv *sv)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            if (pid < 0 && errno == EINTR)
                continue;
            return;
        }
        uint64_t now = clock_now_ms();
        for (size_t i = 0; i < SV_MAX_WORKERS; i++)
            if (sv->workers[i].pid == pid)
                sv__reaped(sv, &sv->workers[i], status, now);
    }
}

/* SIGHUP: read the file again; on success start a worker with it, else keep everything. The new
 * config only becomes `sv->cfg` when its worker is ready (sv__commit_pending): until then a crash
 * of the current worker restarts it with the config it was running. */
static void sv__reload(struct sv *sv, uint64_t now)
{
    sv->reload_requested = false;
    struct cfg_errors errs = {NULL, 0};
    ag_log(AG_LOG_INFO, "SIGHUP: reloading %s", sv->opts->config_path);
    sv__notify("RELOADING=1\nSTATUS=reloading");
    struct gw_config *c = supervisor_load_config(sv->opts, &errs);
    if (c == NULL) {
        sv__notify("READY=1\nSTATUS=reload failed; serving the previous configuration");
        for (size_t i = 0; i < errs.n; i++)
            ag_log(AG_LOG_ERROR, "%s", errs.msgs[i]);
        ag_log(AG_LOG_ERROR, "reload failed: %zu error%s in %s; still serving with the previous "
                             "configuration (generation %u)", errs.n, errs.n == 1 ? "" : "s",
               sv->opts->config_path, sv->current ? sv->current->generation : sv->generation);
        cfg_errors_free(&errs);
        return;
    }
    cfg_errors_free(&errs);
    if (sv__socks_open(c, &sv->pending_socks, sv->cfg, &sv->socks, sv->opts->share_ports) != 0) {
        ag_log(AG_LOG_ERROR, "reload failed: cannot open the new sockets; still serving with the "
                             "previous configuration");
        sv__notify("READY=1\nSTATUS=reload failed; serving the previous configuration");
        gwconf_free(c);
        return;
    }
    sv->pending_cfg = c;
    if (sv->current == NULL) {
        /* Nothing serves right now (restart backoff): the new config applies at once. */
        sv__commit_pending(sv);
        sv->restart_at_ms = now;
        return;
    }
    sv->next = sv__start(sv, sv->pending_cfg, &sv->pending_socks, SV_WHY_RELOAD);
    if (sv->next == NULL)
        sv__abort_pending(sv);
}

static void sv__signals(struct sv *sv, uint64_t now)
{
    struct signalfd_siginfo si;
    while (read(sv->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGHUP:
            if (!sv->stopping)
                sv->reload_requested = true;
            break;
        case SIGTERM:
        case SIGINT:
            if (sv->stopping) {
                ag_log(AG_LOG_WARN, "second %s: killing the workers now",
                       strsignal((int)si.ssi_signo));
                for (size_t i = 0; i < SV_MAX_WORKERS; i++)
                    if (sv->workers[i].pid)
                        sv__kill(&sv->workers[i], SIGKILL);
                break;
            }
            sv->stopping = true;
            sv__notify("STOPPING=1\nSTATUS=draining");
            uint64_t drain = 0;
            for (size_t i = 0; i < SV_MAX_WORKERS; i++) {
                struct sv_worker *w = &sv->workers[i];
                if (w->pid == 0)
                    continue;
                if (w->state != SV_DRAINING)
                    sv__drain(w, now);
                if (w->deadline_ms > now && w->deadline_ms - now > drain)
                    drain = w->deadline_ms - now;
            }
            sv->stop_deadline_ms = now + drain;
            ag_log(AG_LOG_INFO, "%s: draining %zu worker%s (up to %llu ms), then exiting",
                   strsignal((int)si.ssi_signo), sv__alive(sv), sv__alive(sv) == 1 ? "" : "s",
                   (unsigned long long)drain);
            /* New connections are refused from now on rather than queued for nobody. */
            sv__abort_pending(sv);
            sv__socks_release(&sv->socks, NULL);
            break;
        default:
            break; /* SIGCHLD: reaped below */
        }
    }
}

/* Readiness, watchdog and recycling of the live workers, once per poll. Reading the shared
 * counters is lock-free: the worker writes them with atomics, and a stale read only delays a
 * decision by one poll. */
static void sv__check(struct sv *sv, uint64_t now)
{
    for (size_t i = 0; i < SV_MAX_WORKERS; i++) {
        struct sv_worker *w = &sv->workers[i];
        if (w->pid == 0 || w->killed)
            continue;
        if (w->state == SV_DRAINING) {
            if (now >= w->deadline_ms) {
                ag_log(AG_LOG_WARN, "worker pid %d (generation %u) still draining after %llu ms; "
                                    "SIGKILL", (int)w->pid, w->generation,
                       (unsigned long long)(w->drain_ms + SV_KILL_MARGIN_MS));
                sv__kill(w, SIGKILL);
            }
            continue;
        }
        if (w->state == SV_STARTING) {
            if (atomic_load(&w->shm->ready)) {
                w->state = SV_RUNNING;
                if (!sv->ever_ready)
                    sv__notify("READY=1\nMAINPID=%d\nSTATUS=serving (generation %u)",
                               (int)sv->self, w->generation);
                sv->ever_ready = true;
                supervisor_watch_init(&w->watch, w->nslots, now);
                ag_log(AG_LOG_INFO, "worker pid %d (generation %u) ready in %llu ms", (int)w->pid,
                       w->generation,
                       (unsigned long long)(now > w->started_ms ? now - w->started_ms : 0));
                if (w == sv->next) {
                    /* The replacement serves; the old worker stops accepting and drains. */
                    if (sv->current) {
                        ag_log(AG_LOG_INFO, "%s: worker pid %d (generation %u) drains",
                               sv_why_name[w->why], (int)sv->current->pid,
                               sv->current->generation);
                        /* its hand-over was read before `w` became ready: free the pages */
                        if (sv->current->handoff_fd >= 0 &&
                            ftruncate(sv->current->handoff_fd, 0) != 0)
                            ag_log(AG_LOG_DEBUG, "ftruncate: %s", strerror(errno));
                        sv__drain(sv->current, now);
                    }
                    if (w->why == SV_WHY_RELOAD) {
                        sv__commit_pending(sv);
                        ag_log(AG_LOG_INFO, "reload done: generation %u serves the new "
                                            "configuration", w->generation);
                        sv__notify("READY=1\nSTATUS=serving (generation %u)", w->generation);
                    }
                    sv->current = w;
                    sv->next = NULL;
                }
            } else if (now >= w->deadline_ms) {
                ag_log(AG_LOG_ERROR, "worker pid %d (generation %u) not ready after %llu ms; "
                                     "SIGKILL", (int)w->pid, w->generation,
                       (unsigned long long)(now - w->started_ms));
                w->hung = true;
                sv__kill(w, SIGKILL);
            }
            continue;
        }
        /* SV_RUNNING */
        uint64_t ticks[WORKER_MAX_THREADS];
        for (unsigned t = 0; t < w->nslots; t++)
            ticks[t] = atomic_load(&w->shm->ticks[t]);
        int stuck = supervisor_watch_check(&w->watch, ticks, now, w->worker_timeout_ms);
        if (stuck >= 0) {
            ag_log(AG_LOG_ERROR, "worker pid %d (generation %u): loop thread %d has not ticked "
                                 "for %llu ms (worker_timeout %llu ms); SIGKILL and replace",
                   (int)w->pid, w->generation,
                   /* slots are address-major: slot a * threads + t belongs to thread t */
                   w->nthreads ? stuck % (int)w->nthreads : stuck,
                   (unsigned long long)(now - w->watch.moved_ms[stuck]),
                   (unsigned long long)w->worker_timeout_ms);
            w->hung = true;
            sv__kill(w, SIGKILL);
            continue;
        }
        if (w == sv->current && sv->next == NULL && !sv->stopping &&
            atomic_load(&w->shm->want_recycle) && now >= sv->recycle_retry_ms) {
            ag_log(AG_LOG_INFO, "worker pid %d (generation %u) served %llu requests: recycling",
                   (int)w->pid, w->generation,
                   (unsigned long long)atomic_load(&w->shm->requests));
            sv->next = sv__start(sv, sv->cfg, &sv->socks, SV_WHY_RECYCLE);
            if (sv->next == NULL)
                sv->recycle_retry_ms = now + SUPERVISOR_BACKOFF_MAX_MS;
        }
    }
}

/* Writes the pid file of <o>, if any; a failure is logged, not fatal. */
static void sv__pid_file(const struct supervisor_opts *o)
{
    if (o->pid_file == NULL)
        return;
    FILE *f = fopen(o->pid_file, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
        ag_log(AG_LOG_WARN, "cannot write pid file %s: %s", o->pid_file, strerror(errno));
}

int supervisor_run_single(const struct supervisor_opts *o, struct gw_config *cfg)
{
    struct sv_socks socks = {NULL, 0, -1};
    if (sv__socks_open(cfg, &socks, NULL, NULL, o->share_ports) != 0) {
        gwconf_free(cfg);
        return 1;
    }
    struct worker_shm *shm = xcalloc(1, sizeof(*shm));
    atomic_store(&shm->started_ms, clock_wall_ms());
    sv__pid_file(o);
    ag_log(AG_LOG_INFO, "apigate serve: single process (no supervisor) pid %d, config %s",
           (int)getpid(), o->config_path);
    log_set_proc("worker");
    struct worker_ctx ctx = {
        .cfg = cfg,
        .listen_fds = socks.fds,
        .nlisten = socks.n,
        .admin_fd = socks.admin_fd,
        .shm = shm,
        .max_requests = 0, /* nobody would replace it */
        .generation = 1,
        .handoff_out_fd = -1,
        .handoff_in_fd = -1,
    };
    int rc = worker_run(&ctx);
    sv__socks_release(&socks, NULL);
    free(shm);
    if (o->pid_file)
        unlink(o->pid_file);
    gwconf_free(cfg);
    return rc;
}

/* How long to sleep: short while a worker is starting (the handover waits on its readiness) or
 * a restart is due, else the watchdog period. */
static int sv__poll_ms(const struct sv *sv, uint64_t now)
{
    int ms = SV_POLL_MS;
    for (size_t i = 0; i < SV_MAX_WORKERS; i++)
        if (sv->workers[i].pid != 0 && sv->workers[i].state == SV_STARTING)
            ms = SV_POLL_FAST_MS;
    if (!sv->stopping && sv->current == NULL && sv->restart_at_ms != 0) {
        uint64_t left = sv->restart_at_ms > now ? sv->restart_at_ms - now : 0;
        if (left < (uint64_t)ms)
            ms = (int)left;
    }
    return ms;
}

int supervisor_run(const struct supervisor_opts *o, struct gw_config *cfg)
{
    struct sv sv_storage, *sv = &sv_storage;
    memset(sv, 0, sizeof(*sv));
    sv->opts = o;
    sv->cfg = cfg;
    sv->self = getpid();
    sv->started_wall_ms = clock_wall_ms();
    sv->socks.admin_fd = -1;
    sv->pending_socks.admin_fd = -1;
    log_set_proc("supervisor");
    srandom((unsigned)(clock_wall_ms() ^ (uint64_t)getpid()));

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, &sv->oldmask) != 0 ||
        (sv->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        ag_log(AG_LOG_ERROR, "signalfd: %s", strerror(errno));
        gwconf_free(cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    if (sv__socks_open(cfg, &sv->socks, NULL, NULL, o->share_ports) != 0) {
        close(sv->sfd);
        sigprocmask(SIG_SETMASK, &sv->oldmask, NULL);
        gwconf_free(cfg);
        return 1;
    }
    char lst[512];
    size_t off = 0;
    lst[0] = '\0';
    for (size_t i = 0; i < cfg->nlisten; i++)
        off += (size_t)snprintf(lst + off, off < sizeof(lst) ? sizeof(lst) - off : 0, "%s%s",
                                i ? ", " : "", cfg->listen[i].spec);
    ag_log(AG_LOG_INFO, "apigate serve: supervisor pid %d, config %s, listening on %s "
                        "(%lld threads), admin %s", (int)sv->self, o->config_path, lst,
           (long long)cfg->workers.threads, cfg->admin_enabled ? cfg->admin : "off");

    if (gwconf_admin_open(cfg))
        ag_log(AG_LOG_WARN, "admin %s is not on loopback and has no token_file (admin.insecure: "
                            "true): anyone who reaches it may POST /cache/purge", cfg->admin);
    sv__pid_file(o);
    sv->current = sv__start(sv, sv->cfg, &sv->socks, SV_WHY_START);
    if (sv->current == NULL)
        sv->restart_at_ms = clock_now_ms() + SUPERVISOR_BACKOFF_MIN_MS;

    /* One pass: take signals, reap children (which may schedule restarts), then act on time:
     * start a due restart, begin a requested reload, check readiness and the watchdog. */
    for (;;) {
        uint64_t now = clock_now_ms();
        sv__signals(sv, now);
        sv__reap(sv);
        now = clock_now_ms();
        if (sv->stopping) {
            if (sv__alive(sv) == 0)
                break;
            if (now >= sv->stop_deadline_ms) {
                for (size_t i = 0; i < SV_MAX_WORKERS; i++)
                    if (sv->workers[i].pid && !sv->workers[i].killed) {
                        ag_log(AG_LOG_WARN, "worker pid %d still running after drain_timeout; "
                                            "SIGKILL", (int)sv->workers[i].pid);
                        sv__kill(&sv->workers[i], SIGKILL);
                    }
            }
        } else {
            if (sv->current == NULL && sv->restart_at_ms != 0 && now >= sv->restart_at_ms) {
                sv->restart_at_ms = 0;
                sv->current = sv__start(sv, sv->cfg, &sv->socks, SV_WHY_RESTART);
                if (sv->current == NULL)
                    sv->restart_at_ms = now + SUPERVISOR_BACKOFF_MAX_MS;
            }
            if (sv->reload_requested && sv->next == NULL)
                sv__reload(sv, now);
            sv__check(sv, now);
        }
        struct pollfd pfd = {.fd = sv->sfd, .events = POLLIN};
        if (poll(&pfd, 1, sv__poll_ms(sv, clock_now_ms())) < 0 && errno != EINTR) {
            ag_log(AG_LOG_ERROR, "poll: %s", strerror(errno));
            break;
        }
    }

    /* Leaves no child behind, even after a poll failure. */
    for (size_t i = 0; i < SV_MAX_WORKERS; i++) {
        struct sv_worker *w = &sv->workers[i];
        if (w->pid == 0)
            continue;
        kill(w->pid, SIGKILL);
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        munmap(w->shm, sizeof(struct worker_shm));
        w->pid = 0;
    }
    sv__abort_pending(sv);
    sv__socks_release(&sv->socks, NULL);
    close(sv->sfd);
    sigprocmask(SIG_SETMASK, &sv->oldmask, NULL);
    gwconf_free(sv->cfg);
    if (o->pid_file)
        unlink(o->pid_file);
    ag_log(AG_LOG_INFO, "apigate serve: stopped");
    return sv->exit_code;
}
