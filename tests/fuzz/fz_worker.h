/* Shared by the tests that run a worker thread without sockets of its own (fuzz_h2sess,
 * fuzz_proxy, unit/test_req): registers the metric families and per-route series the request
 * path uses, as worker.c does, under short names. Include after gateway/gwthread.h and metrics/metrics.h. */
#ifndef AG_TESTS_FUZZ_FZ_WORKER_H
#define AG_TESTS_FUZZ_FZ_WORKER_H

static void fz_metrics(struct gw_shared *sh)
{
    struct metrics *m = sh->metrics;
    const char *l_dur[] = {"route", "method", "status", NULL};
    sh->ids.req_duration = metrics_family(m, METRICS_HISTOGRAM, "f_duration", "d", l_dur);
    const char *l_r[] = {"route", NULL};
    const char *l_rk[] = {"route", "k", NULL};
    int dur = metrics_family(m, METRICS_HISTOGRAM, "f_route_duration", "d", l_r);
    int ttfb = metrics_family(m, METRICS_HISTOGRAM, "f_ttfb", "d", l_r);
    sh->ids.shed = metrics_family(m, METRICS_COUNTER, "f_shed", "d", l_rk);
    int req = metrics_family(m, METRICS_COUNTER, "f_requests", "d", l_rk);
    int err = metrics_family(m, METRICS_COUNTER, "f_errors", "d", l_rk);
    int cnt = metrics_family(m, METRICS_COUNTER, "f_h2", "d", l_r);
    int g = metrics_family(m, METRICS_GAUGE, "f_conns", "d", NULL);
    sh->ids.conns_open = metrics_series1(m, g, NULL);
    sh->ids.h2_sessions = metrics_series1(m, cnt, "sessions");
    sh->ids.h2_streams = metrics_series1(m, cnt, "streams");
    sh->ids.h2_calm = metrics_series1(m, cnt, "calm");
    sh->ids.h2_proto = metrics_series1(m, cnt, "proto");
    sh->ids.h2_hdr_limit = metrics_series1(m, cnt, "hdr");
    const char *vg[] = {"", "global", NULL};
    sh->ids.shed_global = metrics_series(m, sh->ids.shed, vg);
    static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (size_t i = 0; i <= sh->cfg->nroutes; i++) {
        struct gw_route_rt *rt = &sh->rt[i];
        rt->label = i < sh->cfg->nroutes ? sh->cfg->routes[i].match : "";
        rt->route_duration = metrics_series1(m, dur, rt->label);
        rt->ttfb = metrics_series1(m, ttfb, rt->label);
        const char *vs[] = {rt->label, "route_limit", NULL};
        rt->shed = metrics_series(m, sh->ids.shed, vs);
        for (size_t k = 0; k < 6; k++) {
            const char *v[] = {rt->label, cls[k], NULL};
            rt->status_class[k] = metrics_series(m, req, v);
        }
        const char *vt[] = {rt->label, "timeout", NULL}, *vc[] = {rt->label, "connect", NULL};
        const char *vp[] = {rt->label, "pool", NULL}, *vx[] = {rt->label, "protocol", NULL};
        rt->err_timeout = metrics_series(m, err, vt);
        rt->err_connect = metrics_series(m, err, vc);
        rt->err_pool = metrics_series(m, err, vp);
        rt->err_proto = metrics_series(m, err, vx);
        rt->pool_wait = METRICS_REF_NONE;
    }
}

#endif
