/* `apigate mock`: command line, profile loading, and the N loop threads (one SO_REUSEPORT listener
 * each). The main thread only waits for SIGINT/SIGTERM; everything else happens on the loops. */
#include "mock/mock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mock/internal.h"

static void mock__usage(FILE *out)
{
    fprintf(
        out,
        "usage: apigate mock [--listen ADDR] [--profile FILE.yaml] [--threads N]\n"
        "       apigate mock --check [--profile FILE.yaml]\n"
        "       apigate mock --print-default\n"
        "\n"
        "A deliberately slow HTTP/1.1 API for tests, demos and benchmarks: per-route latency\n"
        "distributions, a database pool with a FIFO queue shared by all threads, error\n"
        "injection, cold starts, stalls, hangs, cache headers, an echo route and admin\n"
        "endpoints (GET /_mock/stats, POST /_mock/reset, GET|POST /_mock/profile).\n"
        "\n"
        "options:\n"
        "  --listen ADDR      host:port to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
        "  --profile FILE     YAML or JSON profile (default: the built-in seed profile;\n"
        "                     see docs/mock.md and examples/mock-seed.yaml)\n"
        "  --threads N        loop threads, each with its own SO_REUSEPORT listener\n"
        "                     (default: 1)\n"
        "  --check            validate the profile and exit (0 ok, 2 with file:line:col errors)\n"
        "  --print-default    print the built-in profile and exit\n"
        "  --log-level L      debug|info|warn|error (default info)\n"
        "  -h, --help         this help\n"
        "\n"
        "On start it prints \"listening on ADDR\" to stderr. SIGINT/SIGTERM stop it (exit 0).\n");
}

void mock_server_set_profile(struct mock_server *srv, struct mock_profile *p)
{
    pthread_mutex_lock(&srv->profile_lock);
    struct mock_profile *old = srv->profile;
    srv->profile = p;
    atomic_fetch_add_explicit(&srv->profile_gen, 1, memory_order_release);
    pthread_mutex_unlock(&srv->profile_lock);
    mock_profile_unref(old);
}

struct mock_profile *mock_server_get_profile(struct mock_server *srv)
{
    pthread_mutex_lock(&srv->profile_lock);
    struct mock_profile *p = srv->profile;
    mock_profile_ref(p);
    pthread_mutex_unlock(&srv->profile_lock);
    return p;
}

/* SIGINT/SIGTERM may land on any thread (sanitizers start their own): the handler only writes
 * the signal number to a pipe the main thread waits on. */
static int mock__sig_pipe[2] = {-1, -1};

static void mock__on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(mock__sig_pipe[1], &b, 1);
    (void)n;
    errno = saved;
}

static int mock__wait_signal(void)
{
    unsigned char b = 0;
    for (;;) {
        ssize_t n = read(mock__sig_pipe[0], &b, 1);
        if (n == 1)
            return b;
        if (n == -1 && errno == EINTR)
            continue;
        return 0;
    }
}

/* A loop thread: runs until loop_stop(), then closes its connections on its own thread. */
static void *mock__thread_main(void *arg)
{
    struct mock_thread *th = arg;
    loop_run(th->loop);
    mock_conn_close_all(th);
    loop_run_once(th->loop, 0); /* deferred frees */
    return NULL;
}

/* --threads: 1..256 (one loop and one listener each). */
static int mock__parse_threads(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 1 || v > 256)
        return -1;
    *out = (size_t)v;
    return 0;
}

/* `apigate mock`: parse options, load the profile (exit 2 with every error), start the loop
 * threads, wait for SIGINT/SIGTERM, stop and join them. Exit 0, 1 (cannot listen), 2 (usage). */
int mock_main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080";
    const char *profile_path = NULL;
    size_t nthreads = 1;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            mock__usage(stdout);
            return 0;
        } else if (strcmp(a, "--print-default") == 0) {
            fputs(mock_profile_default_yaml, stdout);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strcmp(a, "--listen") == 0 || strcmp(a, "-l") == 0) {
            if (!v)
                goto missing;
            listen = v;
            i++;
        } else if (strcmp(a, "--profile") == 0 || strcmp(a, "-p") == 0) {
            if (!v)
                goto missing;
            profile_path = v;
            i++;
        } else if (strcmp(a, "--threads") == 0 || strcmp(a, "-t") == 0) {
            if (!v)
                goto missing;
            if (mock__parse_threads(v, &nthreads) != 0) {
                fprintf(stderr, "apigate mock: --threads: '%s' is not a number in 1..256\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--log-level") == 0) {
            enum log_level lvl;
            if (!v || log_parse_level(v, &lvl) != 0) {
                fprintf(stderr, "apigate mock: --log-level: use debug, info, warn or error\n");
                return 2;
            }
            log_set_level(lvl);
            i++;
        } else {
            fprintf(stderr, "apigate mock: unknown option '%s' (see apigate mock --help)\n", a);
            return 2;
        }
        continue;
    missing:
        fprintf(stderr, "apigate mock: %s needs a value (see apigate mock --help)\n", a);
        return 2;
    }

    /* Last-Modified of routes that send it: the start of this process, second precision */
    mock_last_modified_s = (int64_t)time(NULL);
    struct tm tm;
    time_t now = (time_t)mock_last_modified_s;
    gmtime_r(&now, &tm);
    strftime(mock_last_modified, sizeof(mock_last_modified), "%a, %d %b %Y %H:%M:%S GMT", &tm);

    struct buf err = BUF_INIT;
    struct mock_profile *profile =
        profile_path
            ? mock_profile_load(profile_path, nthreads, &err)
            : mock_profile_parse(mock_profile_default_yaml, strlen(mock_profile_default_yaml),
                                 "built-in", nthreads, &err);
    if (!profile) {
        fprintf(stderr, "%.*s", (int)buf_pending(&err), buf_head(&err));
        buf_deinit(&err);
        return 2;
    }
    buf_deinit(&err);
    if (check) {
        printf("%s: ok (%zu routes)\n", profile->name, profile->nroutes);
        mock_profile_unref(profile);
        return 0;
    }

    /* load tests open thousands of connections: take the hard limit on descriptors */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct mock_server srv;
    memset(&srv, 0, sizeof(srv));
    char msg[256];
    if (sock_parse_addr(listen, &srv.addr, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "apigate mock: --listen: %s\n", msg);
        mock_profile_unref(profile);
        return 2;
    }
    pthread_mutex_init(&srv.profile_lock, NULL);
    srv.profile = profile;
    srv.nthreads = nthreads;
    srv.start_ms = clock_now_ms();
    atomic_init(&srv.last_request_ms, srv.start_ms);
    atomic_init(&srv.warm_at_ms, 0);
    atomic_init(&srv.profile_gen, 1);
    srv.threads = xcalloc(nthreads, sizeof(*srv.threads));
    for (size_t i = 0; i < nthreads; i++)
        srv.threads[i].lfd = -1; /* threads not reached after a failure must not close fd 0 */

    if (pipe2(mock__sig_pipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "apigate mock: pipe: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = mock__on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 0;
    size_t started = 0;
    for (size_t i = 0; i < nthreads; i++) {
        struct mock_thread *th = &srv.threads[i];
        th->srv = &srv;
        th->id = i;
        th->lfd = -1;
        th->rng = clock_now_ns() ^ (0x9E3779B97F4A7C15ull * (i + 1));
        th->profile = mock_server_get_profile(&srv);
        th->gen = 1;
        buf_init(&th->scratch);
        th->loop = loop_create();
        if (i == 0 && sock_addr_port(&srv.addr) != 0) {
            /* The threads share the port through SO_REUSEPORT, which would as well let this
             * mock join another one (or a gateway) already on it, each answering a part of the
             * connections. A first bind without it fails then, as any server's would. */
            int probe = sock_listen(&srv.addr, false, 1, msg, sizeof(msg));
            if (probe == -1) {
                fprintf(stderr, "apigate mock: %s\n", msg);
                rc = 1;
                break;
            }
            close(probe);
        }
        th->lfd = sock_listen(&srv.addr, true, 4096, msg, sizeof(msg));
        if (th->lfd == -1) {
            fprintf(stderr, "apigate mock: %s\n", msg);
            rc = 1;
            break;
        }
        if (i == 0 && sock_addr_port(&srv.addr) == 0) {
            /* port 0: the kernel chose; the other threads join the same port */
            srv.addr.len = sizeof(srv.addr.ss);
            getsockname(th->lfd, (struct sockaddr *)&srv.addr.ss, &srv.addr.len);
        }
        loop_add_fd(th->loop, th->lfd, LOOP_READ, mock_conn_accept, th);
        if (pthread_create(&th->tid, NULL, mock__thread_main, th) != 0) {
            fprintf(stderr, "apigate mock: cannot start a thread\n");
            rc = 1;
            break;
        }
        started++;
    }
    if (rc == 0) {
        char name[80];
        sock_addr_format(&srv.addr, name, sizeof(name));
        fprintf(stderr, "apigate mock: listening on %s (%zu thread%s, profile %s, %zu routes)\n",
                name, nthreads, nthreads > 1 ? "s" : "", profile->name, profile->nroutes);
        int sig = mock__wait_signal();
        ag_log(AG_LOG_INFO, "mock: %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    for (size_t i = 0; i < started; i++)
        loop_stop(srv.threads[i].loop);
    for (size_t i = 0; i < started; i++)
        pthread_join(srv.threads[i].tid, NULL);
    for (size_t i = 0; i < nthreads; i++) {
        struct mock_thread *th = &srv.threads[i];
        if (th->lfd >= 0) {
            close(th->lfd);
            th->lfd = -1;
        }
        if (th->loop)
            loop_destroy(th->loop);
        mock_profile_unref(th->profile);
        buf_deinit(&th->scratch);
    }
    free(srv.threads);
    mock_profile_unref(srv.profile);
    pthread_mutex_destroy(&srv.profile_lock);
    close(mock__sig_pipe[0]);
    close(mock__sig_pipe[1]);
    mock__sig_pipe[0] = mock__sig_pipe[1] = -1;
    return rc;
}
