/* libFuzzer target for the HTTP/2 client session (gateway/h2sess.c): the input is what a client
 * sends after the connection was accepted (the preface is prepended when the input lacks it, so
 * the fuzzer spends its time on frames and HPACK). The session runs over one end of a socketpair
 * on a real loop thread with the request layer behind it: streams become requests that are
 * routed (one route, whose upstream refuses connections: 502 after a connect attempt; every
 * other path: a local 404), answered through the HEADERS/DATA translation, reset, or refused.
 * Properties: no crash, no leak, no read outside the input (ASan/valgrind); the session always
 * closes and frees its streams. With AG_FUZZ_REPLAY_MAIN the corpus replays under ctest. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/cfg.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "gateway/h2sess.h"
#include "gateway/route.h"
#include "gateway/upool.h"
#include "gateway/upstream.h"
#include "metrics/metrics.h"
#include "net/transport.h"

#include "fz_worker.h"

static const char fz_yaml[] = "listen: 127.0.0.1:1\n"
                              "http2: {max_concurrent_streams: 8, max_resets: 20}\n"
                              "upstreams:\n  api: {servers: [127.0.0.1:1]}\n"
                              "routes:\n  - {match: /a, upstream: api}\n";

static struct loop *fz_loop;
static struct gwthread *fz_th;

/* One worker thread, made once and kept (libFuzzer runs many inputs per process). */
static void fz_start(void)
{
    fz_loop = loop_create();
    struct cfg_errors errs = {NULL, 0};
    struct gw_config *cfg = gwconf_load_string(fz_yaml, strlen(fz_yaml), "fuzz.yaml", &errs);
    if (cfg == NULL) {
        cfg_errors_print(&errs, stderr);
        abort();
    }
    cfg_errors_free(&errs);
    struct gw_shared *sh = xcalloc(1, sizeof(*sh));
    sh->cfg = cfg;
    sh->nthreads = 1;
    sh->rt = xcalloc(cfg->nroutes + 1, sizeof(*sh->rt));
    sh->metrics = metrics_create();
    fz_metrics(sh);
    const char *pats[] = {cfg->routes[0].path};
    enum route_kind kinds[] = {ROUTE_PREFIX};
    char err[256];
    sh->routes = route_table_create_kinds(pats, kinds, 1, err, sizeof(err));
    sh->upstreams = upstream_set_create(cfg, sh->metrics, 1, err, sizeof(err));
    if (sh->routes == NULL || sh->upstreams == NULL ||
        upstream_set_start(sh->upstreams, err, sizeof(err)) != 0)
        abort();
    filter_init(sh);
    struct gwthread *th = xcalloc(1, sizeof(*th));
    fz_th = th;
    sh->threads = &fz_th;
    th->sh = sh;
    th->loop = fz_loop;
    th->ms = metrics_slot_get(sh->metrics);
    th->npools = upstream_set_count(sh->upstreams);
    th->pools = xcalloc(th->npools, sizeof(*th->pools));
    for (size_t i = 0; i < th->npools; i++)
        th->pools[i] = upool_create(fz_loop, upstream_set_at(sh->upstreams, i), th->ms);
    th->date_sec = -1;
    th->rid_seed = 7;
    filter_thread_start(th);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fz_loop == NULL)
        fz_start();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    size_t plen =
        size >= H2SESS_PREFACE_LEN && memcmp(data, H2SESS_PREFACE, H2SESS_PREFACE_LEN) == 0
            ? 0
            : H2SESS_PREFACE_LEN;
    char *in = xmalloc(plen + size + 1);
    memcpy(in, H2SESS_PREFACE, plen);
    if (size > 0)
        memcpy(in + plen, data, size);
    struct transport tp;
    transport_init_tcp(&tp, sv[0]);
    fz_th->nconns = 0;
    h2sess_accept(fz_th, &tp, "fuzz", in, plen + size);
    free(in);
    char sink[65536];
    for (int i = 0; i < 8; i++) {
        while (read(sv[1], sink, sizeof(sink)) > 0)
            ;
        loop_run_once(fz_loop, i < 6 ? 0 : 1); // upstream connects are refused at once
    }
    h2sess_close_all(fz_th);
    loop_run_once(fz_loop, 0); // deferred frees
    close(sv[1]);
    if (fz_th->h2_active != NULL)
        abort();
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
