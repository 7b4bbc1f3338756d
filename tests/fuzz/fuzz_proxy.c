/* libFuzzer target for the whole request path: the HTTP/1 client session (conn.c) over one end of
 * a socketpair, the request layer, the route's filter chain (cache, then resil: retry + breaker),
 * the proxy and the upstream pool, against an origin whose answers come from the input too.
 * Input: 2 bytes (big endian) give the length of the client part, which follows; the rest is the
 * origin's part, NUL-separated answers: the k-th request head the origin reads gets the k-th
 * answer (an empty answer: never answered; none left: the origin closes that connection). The
 * origin is a listener on 127.0.0.1:0 served by the same loop (upool opens its connections with
 * connect(2); there is no connect seam yet), so nothing leaves the host and every step is driven
 * by loop_run_once(loop, 0): no timer is waited for. After the exchange the origin closes its
 * connections (responses framed by EOF end), then a check request for a path derived from a hash
 * of the input goes over a second client connection; the origin answers it with a fixed body.
 * Properties: no crash, no leak (ASan/valgrind), every request ends once (AG_ASSERT in req.c),
 * every connection closes at teardown, and the check request is answered with its own body or an
 * error status: a response stored or left over from the fuzzed exchange is never served for
 * another key. With AG_FUZZ_REPLAY_MAIN the corpus replays under ctest. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/cfg.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "gateway/conn.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "gateway/route.h"
#include "gateway/tunnel.h"
#include "gateway/upool.h"
#include "gateway/upstream.h"
#include "metrics/metrics.h"
#include "net/sock.h"

#include "fz_worker.h"

static const char fz_yaml[] =
    "listen: 127.0.0.1:1\n"
    "cache: {memory: 1MB}\n"
    "upstreams:\n  api: {servers: ['127.0.0.1:%d'], max_fails: 0}\n"
    "routes:\n"
    "  - match: /\n"
    "    upstream: api\n"
    "    timeout: {total: 2s}\n"
    "    cache: {ttl: 60s}\n"
    "    retry: {attempts: 2, budget: 100%%, on: [502, 503], backoff: 0ms}\n"
    "    breaker: {window: 10s, min_requests: 4, error_threshold: 50%%, open_for: 30s}\n";

#define FZ_CHECK_BODY "CHECK-BODY"
static const char fz_check_answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
                                      "Cache-Control: no-store\r\n\r\n" FZ_CHECK_BODY;

/* ---- the origin: answers request heads with the input's NUL-separated parts ---- */

#define FZ_ORIGIN_FDS 32

struct fz_origin {
    struct loop *loop;
    int lfd, port;
    int fds[FZ_ORIGIN_FDS];
    int nfds;
    const uint8_t *data; // the origin's part of the input, consumed answer by answer
    size_t len, off;
    bool exhausted;
    char check_path[40];
};

static void fz_origin_close(struct fz_origin *o, int fd)
{
    loop_del_fd(o->loop, fd);
    close(fd);
    for (int i = 0; i < o->nfds; i++)
        if (o->fds[i] == fd)
            o->fds[i] = -1;
}

static void fz_write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return; // the gateway closed, or its buffer is full: the rest is lost, as on a wire
        s += w;
        n -= (size_t)w;
    }
}

static void fz_origin_on_read(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)events;
    struct fz_origin *o = arg;
    char b[16384];
    for (;;) {
        ssize_t n = read(fd, b, sizeof(b));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            fz_origin_close(o, fd);
            return;
        }
        if (n < 0)
            return;
        ssize_t from = 0;
        for (ssize_t i = 0; i + 3 < n; i++) {
            if (memcmp(b + i, "\r\n\r\n", 4) != 0)
                continue;
            bool check =
                memmem(b + from, (size_t)(i - from), o->check_path, strlen(o->check_path)) != NULL;
            from = i + 4;
            if (check) {
                fz_write_all(fd, fz_check_answer, sizeof(fz_check_answer) - 1);
                continue;
            }
            if (o->exhausted) {
                fz_origin_close(o, fd);
                return;
            }
            const uint8_t *a = o->data + o->off;
            const uint8_t *nul = memchr(a, 0, o->len - o->off);
            size_t alen = nul != NULL ? (size_t)(nul - a) : o->len - o->off;
            o->off += alen + (nul != NULL);
            o->exhausted = nul == NULL;
            fz_write_all(fd, a, alen);
        }
    }
}

static void fz_origin_on_accept(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)events;
    struct fz_origin *o = arg;
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        if (o->nfds == FZ_ORIGIN_FDS || loop_add_fd(loop, c, LOOP_READ, fz_origin_on_read, o)) {
            close(c); // a connect the gateway sees fail: fine for any input
            continue;
        }
        o->fds[o->nfds++] = c;
    }
}

static void fz_origin_close_all(struct fz_origin *o)
{
    for (int i = 0; i < o->nfds; i++)
        if (o->fds[i] >= 0)
            fz_origin_close(o, o->fds[i]);
}

/* ---- the worker thread ---- */

struct fz_env {
    struct loop *loop;
    struct fz_origin o;
    struct gw_config *cfg;
    struct gw_shared *sh;
    struct gwthread *th;
};

static void fz_env_start(struct fz_env *e)
{
    memset(e, 0, sizeof(*e));
    e->loop = loop_create();
    struct fz_origin *o = &e->o;
    o->loop = e->loop;
    struct sock_addr a;
    char err[256];
    if (sock_parse_addr("127.0.0.1:0", &a, err, sizeof(err)) != 0)
        abort();
    o->lfd = sock_listen(&a, false, 64, err, sizeof(err));
    if (o->lfd < 0)
        abort();
    struct sockaddr_in sin;
    socklen_t slen = sizeof(sin);
    getsockname(o->lfd, (struct sockaddr *)&sin, &slen);
    o->port = ntohs(sin.sin_port);
    if (loop_add_fd(e->loop, o->lfd, LOOP_READ, fz_origin_on_accept, o) != 0)
        abort();
    char text[1024];
    snprintf(text, sizeof(text), fz_yaml, o->port);
    struct cfg_errors errs = {NULL, 0};
    e->cfg = gwconf_load_string(text, strlen(text), "fuzz.yaml", &errs);
    if (e->cfg == NULL) {
        cfg_errors_print(&errs, stderr);
        abort();
    }
    cfg_errors_free(&errs);
    struct gw_shared *sh = xcalloc(1, sizeof(*sh));
    e->sh = sh;
    sh->cfg = e->cfg;
    sh->nthreads = 1;
    sh->rt = xcalloc(e->cfg->nroutes + 1, sizeof(*sh->rt));
    sh->metrics = metrics_create();
    fz_metrics(sh);
    const char *pats[] = {e->cfg->routes[0].path};
    enum route_kind kinds[] = {ROUTE_PREFIX};
    sh->routes = route_table_create_kinds(pats, kinds, 1, err, sizeof(err));
    sh->upstreams = upstream_set_create(e->cfg, sh->metrics, 1, err, sizeof(err));
    if (sh->routes == NULL || sh->upstreams == NULL ||
        upstream_set_start(sh->upstreams, err, sizeof(err)) != 0)
        abort();
    filter_init(sh);
    if (sh->rt[0].chain.n < 2) // cache and resil, or the target fuzzes less than it says
        abort();
    struct gwthread *th = xcalloc(1, sizeof(*th));
    e->th = th;
    sh->threads = &e->th;
    th->sh = sh;
    th->loop = e->loop;
    th->ms = metrics_slot_get(sh->metrics);
    th->npools = upstream_set_count(sh->upstreams);
    th->pools = xcalloc(th->npools, sizeof(*th->pools));
    for (size_t i = 0; i < th->npools; i++)
        th->pools[i] = upool_create(e->loop, upstream_set_at(sh->upstreams, i), th->ms);
    th->date_sec = -1;
    th->rid_seed = 7;
    filter_thread_start(th);
}

static void fz_env_stop(struct fz_env *e)
{
    struct gwthread *th = e->th;
    struct gw_shared *sh = e->sh;
    while (th->active != NULL)
        conn_close(th->active);
    tunnel_close_all(th); // an Upgrade the origin accepted (101) left a tunnel
    filter_thread_stop(th);
    loop_run_once(e->loop, 0); // deferred frees and pool closes
    if (th->nconns != 0)
        abort();
    for (size_t i = 0; i < th->npools; i++)
        upool_destroy(th->pools[i]);
    loop_run_once(e->loop, 0);
    fz_origin_close_all(&e->o);
    loop_del_fd(e->loop, e->o.lfd);
    close(e->o.lfd);
    conn_free_all(th);
    gwthread_blocks_free(th);
    buf_deinit(&th->scratch);
    free(th->pools);
    filter_deinit(sh);
    upstream_set_destroy(sh->upstreams);
    route_table_destroy(sh->routes);
    metrics_destroy(sh->metrics);
    free(sh->rt);
    free(sh);
    free(th);
    loop_destroy(e->loop);
    gwconf_free(e->cfg);
}

/* Runs <rounds> loop iterations without waiting, collecting what reaches client <fd>. */
static void fz_run(struct fz_env *e, int fd, struct buf *got, int rounds)
{
    char b[16384];
    for (int i = 0; i < rounds; i++) {
        loop_run_once(e->loop, 0);
        ssize_t n;
        while (fd >= 0 && (n = read(fd, b, sizeof(b))) > 0)
            if (got != NULL)
                buf_append(got, b, (size_t)n);
    }
}

static int fz_client(struct fz_env *e, const void *bytes, size_t len)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    conn_accept(e->th, sv[0], "127.0.0.9", NULL);
    fz_write_all(sv[1], bytes, len);
    return sv[1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t clen = (size_t)data[0] << 8 | data[1];
    if (clen > size - 2)
        clen = size - 2;
    struct fz_env e;
    fz_env_start(&e);
    struct fz_origin *o = &e.o;
    o->data = data + 2 + clen;
    o->len = size - 2 - clen;
    uint64_t h = 14695981039346656037ull; // FNV-1a of the input: a path no input can name
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ull;
    snprintf(o->check_path, sizeof(o->check_path), "/__fzcheck/%016llx", (unsigned long long)h);

    int cfd = fz_client(&e, data + 2, clen);
    fz_run(&e, cfd, NULL, 48);
    fz_origin_close_all(o); // responses framed by the end of the connection end here
    fz_run(&e, cfd, NULL, 16);
    close(cfd); // the client goes away: whatever is still running is aborted
    fz_run(&e, -1, NULL, 4);

    char req[128];
    int rlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n",
                        o->check_path);
    struct buf got;
    buf_init(&got);
    int kfd = fz_client(&e, req, (size_t)rlen);
    fz_run(&e, kfd, &got, 32);
    close(kfd);
    /* The check request gets its own body, or an error status (the breaker may be open after the
     * fuzzed exchange): never a success with bytes the origin sent for another request. */
    const char *r = buf_head(&got);
    size_t rn = buf_pending(&got);
    if (rn < 12 || memcmp(r, "HTTP/1.1 ", 9) != 0)
        abort(); // no answer at all: the check request hung or the connection broke
    if (r[9] == '2') {
        size_t bl = sizeof(FZ_CHECK_BODY) - 1;
        if (rn < bl + 4 || memcmp(r + rn - bl - 4, "\r\n\r\n" FZ_CHECK_BODY, bl + 4) != 0) {
            fprintf(stderr, "fuzz_proxy: check request answered with foreign bytes:\n%.*s\n",
                    (int)rn, r);
            abort();
        }
    } else if (r[9] != '5') {
        fprintf(stderr, "fuzz_proxy: check request answered %.*s\n", (int)rn, r);
        abort();
    }
    buf_deinit(&got);
    fz_env_stop(&e);
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
