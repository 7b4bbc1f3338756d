/* Gateway context for load reports: with --gateway-admin URL (the admin listener of the apigate
 * gateway under test: no guess at a default port, which on a shared host may be another
 * gateway's), its /stats is sampled once per second during the run, and the report gets, next to latency, the cache hit
 * ratio, the requests the origin had to answer and the gateway's CPU per 1k requests, over the
 * whole run and per second. Sampled with net/httpc (blocking, bounded) from the main thread,
 * which only collects seconds anyway; never on the generator's loops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/xmalloc.h"
#include "load/internal.h"
#include "net/httpc.h"

#define GWCTX_TIMEOUT_MS 500

/* A number at JSON path <path> of <body>, or NAN. */
static double gwctx__num(const struct buf *body, const char *path)
{
    struct buf v = BUF_INIT;
    double d = NAN;
    if (extract_json(buf_head(body), buf_pending(body), path, &v) == 0) {
        buf_append(&v, "", 1);
        char *end;
        d = strtod(v.data, &end);
        if (end == v.data || *end)
            d = NAN;
    }
    buf_deinit(&v);
    return d;
}

/* Reads one /stats sample (with extract.c's JSON walker: cJSON stays in report_json.c): 0, or
 * -1 when the answer is not an apigate /stats. */
static int gwctx__sample(const char *url, struct gw_sample *out)
{
    struct httpc_resp resp = {0};
    char err[256];
    int rc = -1;
    if (httpc_request("GET", url, GWCTX_TIMEOUT_MS, "apigate-load", &resp, NULL, err,
                      sizeof(err)) == 0 &&
        resp.status == 200 && isfinite(gwctx__num(&resp.body, "$.version")) &&
        isfinite(out->requests = gwctx__num(&resp.body, "$.requests.total"))) {
        double fresh = gwctx__num(&resp.body, "$.cache.fresh_hits");
        double stale = gwctx__num(&resp.body, "$.cache.stale");
        double miss = gwctx__num(&resp.body, "$.cache.misses");
        out->t_us = clock_now_us();
        out->hits = (isfinite(fresh) ? fresh : 0) + (isfinite(stale) ? stale : 0);
        out->misses = isfinite(miss) ? miss : 0;
        out->cpu_s = gwctx__num(&resp.body, "$.cpu_s");
        rc = 0;
    }
    httpc_resp_deinit(&resp);
    return rc;
}

int gwctx_open(struct gwctx *g, const char *admin, const struct scenario *s, bool verbose)
{
    memset(g, 0, sizeof(*g));
    (void)s;
    if (admin == NULL)
        return 0;
    char url[600];
    size_t n = strlen(admin);
    while (n > 0 && admin[n - 1] == '/')
        n--;
    snprintf(url, sizeof(url), "%.*s/stats", (int)n, admin);
    struct gw_sample first;
    if (gwctx__sample(url, &first) == -1) {
        fprintf(stderr,
                "apigate load: --gateway-admin %s: no apigate /stats answered at %s (give the "
                "gateway's admin address, e.g. http://127.0.0.1:9901)\n",
                admin, url);
        return -1;
    }
    g->url = xstrdup(url);
    g->samples = xcalloc(64, sizeof(*g->samples));
    g->cap = 64;
    g->samples[g->n++] = first;
    if (verbose)
        fprintf(stderr, "apigate load: gateway context from %s\n", url);
    return 0;
}

void gwctx_poll(struct gwctx *g, uint64_t now_us)
{
    if (g->url == NULL || now_us < g->next_us)
        return;
    g->next_us = now_us + 1000000;
    struct gw_sample sm;
    if (gwctx__sample(g->url, &sm) == -1) {
        g->errors++;
        return;
    }
    if (g->n == g->cap) {
        g->cap *= 2;
        g->samples = xrealloc(g->samples, g->cap * sizeof(*g->samples));
    }
    g->samples[g->n++] = sm;
}

/* Deltas from sample <a> to <b>: a counter that went down (a worker recycled) gives nothing. */
static bool gwctx__delta(const struct gw_sample *a, const struct gw_sample *b, double *req,
                         double *hits, double *miss, double *cpu)
{
    if (b->requests < a->requests || b->hits < a->hits)
        return false;
    *req = b->requests - a->requests;
    *hits = b->hits - a->hits;
    *miss = b->misses >= a->misses ? b->misses - a->misses : 0;
    *cpu = isfinite(a->cpu_s) && isfinite(b->cpu_s) && b->cpu_s >= a->cpu_s ? b->cpu_s - a->cpu_s
                                                                              : NAN;
    return true;
}

void gwctx_finish(struct gwctx *g, struct load_result *r, uint64_t start_us)
{
    if (g->url == NULL)
        return;
    gwctx_poll(g, UINT64_MAX - 1); /* the last sample, after the run */
    double req = 0, hits = 0, miss = 0, cpu = 0;
    bool cpu_ok = true;
    for (size_t i = 1; i < g->n; i++) {
        double dr, dh, dm, dc;
        if (!gwctx__delta(&g->samples[i - 1], &g->samples[i], &dr, &dh, &dm, &dc))
            continue;
        req += dr;
        hits += dh;
        miss += dm;
        if (isfinite(dc))
            cpu += dc;
        else
            cpu_ok = false;
        /* the second this interval ends in */
        const struct gw_sample *b = &g->samples[i];
        int64_t sec = b->t_us > start_us ? (int64_t)((b->t_us - start_us) / 1000000u) - 1 : -1;
        for (size_t k = 0; k < r->nseries && sec >= 0; k++) {
            struct result_sec *o = &r->series[k];
            if (o->t != sec)
                continue;
            o->gw = true;
            o->gw_hit_ratio = dh + dm > 0 ? dh / (dh + dm) : NAN;
            o->gw_origin = dr - dh;
            o->gw_cpu_ms_per_1k = isfinite(dc) && dr > 0 ? dc * 1e3 * 1000.0 / dr : NAN;
        }
    }
    r->gw.present = true;
    r->gw.admin = xstrdup(g->url);
    r->gw.requests = req;
    r->gw.hit_ratio = hits + miss > 0 ? hits / (hits + miss) : NAN;
    r->gw.origin = req - hits;
    r->gw.cpu_ms_per_1k = cpu_ok && req > 0 ? cpu * 1e3 * 1000.0 / req : NAN;
}

void gwctx_close(struct gwctx *g)
{
    free(g->url);
    free(g->samples);
    memset(g, 0, sizeof(*g));
}
