/* `apigate load`: the command line. Quick mode (wrk-style flags and a URL) and scenario mode
 * (`load run FILE.yaml`) both build a struct scenario, run it, print the summary and write the
 * JSON/HTML reports; `load compare` and `load merge` read reports back (compare.c). Exit codes:
 * 0 ok, 99 a threshold failed (k6's convention), 2 bad usage or bad input. */
#include "load/load.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config/units.h"
#include "core/xmalloc.h"
#include "load/internal.h"

#define LOAD_EXIT_THRESHOLDS 99

static void load__usage(FILE *out)
{
    fprintf(
        out,
        "usage: apigate load [OPTIONS] URL              quick mode, like wrk\n"
        "       apigate load run SCENARIO.yaml [OPTIONS]  scenario mode, like k6\n"
        "       apigate load compare RUN1.json RUN2.json [...] [--fail-on RULE]\n"
        "                            [--json F] [--html F]\n"
        "       apigate load merge A.json B.json ... [--json OUT.json] [--html OUT.html]\n"
        "\n"
        "Quick mode options:\n"
        "  -c, --connections N   concurrent connections (closed model: one VU each; default 10)\n"
        "  -u, --vus N           the same as -c (k6's name)\n"
        "  -d, --duration D      how long to run: 500ms, 30s, 2m (default 10s)\n"
        "  -t, --threads N       event-loop threads (default 1)\n"
        "  -H, --header 'K: V'   add a request header (repeatable)\n"
        "  -m, --method M        request method (default GET, or POST with --body)\n"
        "      --body DATA|@FILE request body\n"
        "  -R, --rate R/s        open model: this many requests per second whatever the\n"
        "                        latency; latency counted from the intended send time\n"
        "      --timeout D       per-request timeout (default 10s)\n"
        "      --threshold 'M: E' k6 threshold, e.g. 'http_req_duration: p(95)<500'\n"
        "                        (repeatable; exit 99 when one fails)\n"
        "  -k, --insecure        https: do not verify the server's certificate\n"
        "      --cacert FILE     https: trust the CAs in FILE (PEM)\n"
        "\n"
        "Options of both modes:\n"
        "      --json FILE       write the JSON report (histograms, time series)\n"
        "      --html FILE       write a self-contained HTML report\n"
        "      --summary-export F  write the summary in k6's --summary-export JSON shape\n"
        "      --gateway-admin URL the apigate gateway's admin (http://127.0.0.1:9901): its\n"
        "                        cache hit ratio, origin requests and CPU per 1k requests\n"
        "                        go into the reports\n"
        "      --max-failed R    failed requests allowed before exit 1 (default 1%%; a\n"
        "                        http_req_failed threshold replaces this rule)\n"
        "  -q, --quiet           no live progress on stderr\n"
        "  -h, --help            this help\n"
        "\n"
        "Scenario mode reads base_url, requests (templated paths: {{rand 1 1000}}, {{seq}},\n"
        "{{uuid}}, {{pick a b}}, {{env NAME}}), executor (vus with stages, or arrival_rate),\n"
        "checks and k6-style thresholds (abortOnFail too), flows (multi-step iterations whose\n"
        "steps extract: values into the VU's {{NAME}}); see docs/load.md, examples/load-*.yaml.\n"
        "Exit codes: 0 ok, 1 the run failed (no response, or more failed requests than\n"
        "--max-failed), 99 a threshold failed, 130 interrupted (Ctrl-C, after the report),\n"
        "2 bad usage or bad input.\n");
}

struct load_opts {
    const char *json, *html, *summary; /* --json, --html, --summary-export */
    const char *gw_admin;              /* --gateway-admin URL */
    bool quiet;
    double max_failed; /* --max-failed; < 0: the scenario's max_failed:, or the default */
};

/* Prints the summary, writes the reports. The exit code a CI job can rely on: 130 interrupted,
 * 99 a threshold failed (k6), 1 the run failed by the failure rule (result_failure: no response at
 * all, or more failed requests than max_failed allows when no http_req_failed threshold says
 * otherwise) or a report could not be written, 0 otherwise. */
static int load__report(struct load_result *r, const struct load_opts *o, double max_failed)
{
    size_t failed = threshold_eval_all(r->th, r->nth, r);
    if (r->aborted_by) {
        /* The abortOnFail threshold that ended the run failed, whatever the shortened run now
         * says about it (k6 exits 99 too). */
        for (size_t i = 0; i < r->nth; i++) {
            struct threshold *t = &r->th[i];
            char key[512];
            snprintf(key, sizeof(key), "%s%s%s%s: %s", t->metric, t->tag ? "{name:" : "",
                     t->tag ? t->tag : "", t->tag ? "}" : "", t->expr);
            if (t->abort_on_fail && strcmp(key, r->aborted_by) == 0 && t->ok) {
                t->ok = false;
                failed++;
            }
        }
    }
    char why[256];
    const char *rule =
        result_failure(r, o->max_failed >= 0 ? o->max_failed : max_failed, why, sizeof(why));
    /* The verdict, for the reports' banner: the exit code's reason in words. */
    r->verdict_ok = false;
    if (r->aborted)
        snprintf(r->verdict, sizeof(r->verdict),
                 "INTERRUPTED at %.1fs of %.1fs: the numbers cover that part only (exit 130)",
                 r->aborted_at_s, r->planned_s);
    else if (r->aborted_by)
        snprintf(r->verdict, sizeof(r->verdict),
                 "ABORTED at %.1fs: threshold %.200s failed (abortOnFail; exit 99)",
                 r->aborted_at_s, r->aborted_by);
    else if (failed)
        snprintf(r->verdict, sizeof(r->verdict), "FAILED: %zu of %zu threshold%s failed (exit 99)",
                 failed, r->nth, r->nth == 1 ? "" : "s");
    else if (rule)
        snprintf(r->verdict, sizeof(r->verdict), "FAILED: %s (exit 1)", rule);
    else {
        r->verdict_ok = true;
        snprintf(r->verdict, sizeof(r->verdict), "PASSED: %.2f%% of the requests failed%s",
                 100.0 * result_failed_rate(r), r->nth ? ", every threshold held" : "");
    }
    report_text(r, stdout);
    fflush(stdout);
    int rc = 0;
    if (o->json) {
        struct buf b = BUF_INIT;
        report_json(r, &b);
        if (report_write_file(o->json, &b) == -1)
            rc = 1;
        buf_deinit(&b);
    }
    if (o->html) {
        struct buf b = BUF_INIT;
        report_html(r, &b);
        if (report_write_file(o->html, &b) == -1)
            rc = 1;
        buf_deinit(&b);
    }
    if (o->summary) {
        struct buf b = BUF_INIT;
        report_k6_summary(r, &b);
        if (report_write_file(o->summary, &b) == -1)
            rc = 1;
        buf_deinit(&b);
    }
    if (r->aborted)
        return 130; /* interrupted: the shell's code for SIGINT, after the report */
    if (failed > 0) {
        fprintf(stderr, "apigate load: %zu threshold%s failed\n", failed, failed == 1 ? "" : "s");
        return LOAD_EXIT_THRESHOLDS;
    }
    if (rule) {
        fprintf(stderr, "apigate load: FAILED: %s\n", rule);
        return 1;
    }
    return rc;
}

/* One fd per connection plus each loop's epoll and eventfd: raise the soft limit as far as the
 * hard one allows, and say so when that is still not enough (connects would fail with EMFILE). */
static void load__raise_nofile(const struct scenario *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return;
    rlim_t need = (rlim_t)s->max_vus + 4 * (rlim_t)s->threads + 64;
    if (rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        fprintf(stderr,
                "apigate load: warning: %u connections need %llu file descriptors, the "
                "limit is %llu (ulimit -n): some connects will fail\n",
                s->max_vus, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

static int load__run(struct scenario *s, const struct load_opts *o)
{
    char err[LOAD_ERR_LEN];
    if ((o->json && report_check_path(o->json) == -1) ||
        (o->html && report_check_path(o->html) == -1) ||
        (o->summary && report_check_path(o->summary) == -1))
        return 2;
    if (scenario_prepare(s, err, sizeof(err)) == -1) {
        fprintf(stderr, "apigate load: %s\n", err);
        return 2;
    }
    load__raise_nofile(s);
    struct gwctx gw;
    if (gwctx_open(&gw, o->gw_admin, s, !o->quiet) == -1)
        return 2;
    struct run_opts ro = {.progress = !o->quiet, .tty = isatty(STDERR_FILENO) == 1, .gw = &gw};
    struct load_result *r = run_scenario(s, &ro);
    gwctx_close(&gw);
    int rc = load__report(r, o, s->max_failed);
    result_destroy(r);
    return rc;
}

#define LOAD_MAX_BODY_FILE (64u << 20) /* a request body larger than this is a wrong path */

/* --body DATA, or --body @FILE (read whole; binary-safe up to the first NUL, as a template). */
static char *load__read_body(const char *arg)
{
    if (arg[0] != '@')
        return xstrdup(arg);
    struct buf b = BUF_INIT;
    char err[128];
    if (buf_read_file(&b, arg + 1, LOAD_MAX_BODY_FILE, err, sizeof(err)) == -1) {
        fprintf(stderr, "apigate load: --body %s: %s\n", arg, err);
        buf_deinit(&b);
        return NULL;
    }
    buf_append(&b, "", 1);
    return b.data;
}

/* Adds "K: V" from -H to <r>; -1 on a malformed header. */
static int load__add_header(struct load_req *r, const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || colon == arg || strpbrk(arg, "\r\n")) {
        fprintf(stderr, "apigate load: -H '%s': expected 'Name: value'\n", arg);
        return -1;
    }
    char *name = xstrndup(arg, (size_t)(colon - arg));
    if (!scenario_valid_token(name)) {
        fprintf(stderr, "apigate load: -H '%s': '%s' is not a valid header name\n", arg, name);
        free(name);
        return -1;
    }
    if (scenario_header_framing(name)) {
        fprintf(stderr, "apigate load: -H '%s': %s is written from --body; remove it\n", arg,
                name);
        free(name);
        return -1;
    }
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    char err[256];
    size_t off;
    struct tmpl t;
    if (tmpl_compile(&t, v, err, sizeof(err), &off) == -1) {
        fprintf(stderr, "apigate load: -H '%s': %s\n", arg, err);
        free(name);
        return -1;
    }
    if (tmpl_has_line_break(&t)) {
        fprintf(stderr, "apigate load: -H '%s': a value cannot contain a line break (from "
                        "{{env}})\n", arg);
        tmpl_free(&t);
        free(name);
        return -1;
    }
    r->headers = xrealloc(r->headers, (r->nheaders + 1) * sizeof(*r->headers));
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = t;
    r->nheaders++;
    return 0;
}

enum {
    OPT_JSON = 256,
    OPT_HTML,
    OPT_BODY,
    OPT_TIMEOUT,
    OPT_CACERT,
    OPT_THRESHOLD,
    OPT_MAX_FAILED,
    OPT_SUMMARY,
    OPT_GW_ADMIN
};

/* --max-failed 5% (or 0.05): prints the error itself. */
static int load__max_failed_arg(const char *s, double *out)
{
    if (result_parse_ratio(s, out) == -1) {
        fprintf(stderr, "apigate load: --max-failed '%s': expected a rate like 1%% or 0.01 (0 to "
                        "100%%)\n", s);
        return -1;
    }
    return 0;
}

static const struct option load_longopts[] = {
    {"connections", required_argument, NULL, 'c'},
    {"vus", required_argument, NULL, 'u'}, /* k6's name: one VU per connection here */
    {"duration", required_argument, NULL, 'd'},
    {"threads", required_argument, NULL, 't'},
    {"header", required_argument, NULL, 'H'},
    {"method", required_argument, NULL, 'm'},
    {"rate", required_argument, NULL, 'R'},
    {"body", required_argument, NULL, OPT_BODY},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", required_argument, NULL, OPT_JSON},
    {"html", required_argument, NULL, OPT_HTML},
    {"insecure", no_argument, NULL, 'k'},
    {"threshold", required_argument, NULL, OPT_THRESHOLD},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"max-failed", required_argument, NULL, OPT_MAX_FAILED},
    {"summary-export", required_argument, NULL, OPT_SUMMARY},
    {"gateway-admin", required_argument, NULL, OPT_GW_ADMIN},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* A positive integer option in 1..<max>; prints the error itself. */
static int load__uint_arg(const char *opt, const char *s, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > max || s[0] == '-') {
        fprintf(stderr, "apigate load: %s '%s': expected an integer in 1..%lu\n", opt, s, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* Quick mode: wrk's flags and one URL become a one-request scenario: closed model with -c VUs,
 * or, with --rate, the open model over -c connections (wrk2). */
static int load__quick(int argc, char **argv)
{
    struct load_opts o = {.max_failed = -1};
    unsigned conns = 10, threads = 1;
    uint64_t dur_us = 10000000, timeout_us = 10000000;
    double rate = 0.0;
    const char *method = NULL, *body_arg = NULL;
    const char **hdrs = xcalloc((size_t)argc + 1, sizeof(char *));
    size_t nh = 0;
    const char **ths = xcalloc((size_t)argc + 1, sizeof(char *));
    size_t nths = 0;
    int rc = 2;
    struct scenario *s = NULL;
    char *body = NULL;
    optind = 1;
    int c;
    bool insecure = false;
    const char *cacert = NULL;
    while ((c = getopt_long(argc, argv, "c:u:d:t:H:m:R:kqh", load_longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
        case 'u':
            if (load__uint_arg(c == 'c' ? "-c" : "--vus", optarg, LOAD_MAX_VUS, &conns) == -1)
                goto out;
            break;
        case 't':
            if (load__uint_arg("-t", optarg, LOAD_MAX_THREADS, &threads) == -1)
                goto out;
            break;
        case 'd':
            if (units_parse_duration_us(optarg, &dur_us) == -1 || dur_us == 0) {
                fprintf(stderr, "apigate load: -d '%s': expected a duration like 30s or 2m\n",
                        optarg);
                goto out;
            }
            break;
        case OPT_TIMEOUT:
            if (units_parse_duration_us(optarg, &timeout_us) == -1 || timeout_us == 0) {
                fprintf(stderr, "apigate load: --timeout '%s': expected a duration like 5s\n",
                        optarg);
                goto out;
            }
            break;
        case 'R':
            if (units_parse_rate(optarg, &rate) == -1 || !(rate > 0.0) || rate > 1e7) {
                fprintf(stderr, "apigate load: --rate '%s': expected a rate like 500/s\n", optarg);
                goto out;
            }
            break;
        case 'H':
            hdrs[nh++] = optarg;
            break;
        case 'm':
            method = optarg;
            break;
        case OPT_BODY:
            body_arg = optarg;
            break;
        case OPT_JSON:
            o.json = optarg;
            break;
        case OPT_HTML:
            o.html = optarg;
            break;
        case OPT_SUMMARY:
            o.summary = optarg;
            break;
        case OPT_GW_ADMIN:
            o.gw_admin = optarg;
            break;
        case 'k':
            insecure = true;
            break;
        case OPT_CACERT:
            cacert = optarg;
            break;
        case OPT_THRESHOLD:
            ths[nths++] = optarg;
            break;
        case OPT_MAX_FAILED:
            if (load__max_failed_arg(optarg, &o.max_failed) == -1)
                goto out;
            break;
        case 'q':
            o.quiet = true;
            break;
        case 'h':
            load__usage(stdout);
            rc = 0;
            goto out;
        default:
            fprintf(stderr, "apigate load: see 'apigate load --help'\n");
            goto out;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc ? "apigate load: a URL is required\n"
                                       : "apigate load: exactly one URL expected\n");
        fprintf(stderr, "usage: apigate load [-c N] [-d D] [-t N] [-H 'K: V'] URL "
                        "(apigate load --help)\n");
        goto out;
    }
    const char *url = argv[optind];
    s = xcalloc(1, sizeof(*s));
    s->quick = true;
    s->max_failed = -1;
    s->tls_verify = !insecure;
    s->tls_ca_file = cacert ? xstrdup(cacert) : NULL;
    char err[LOAD_ERR_LEN];
    /* A templated path ("/items/{{rand 1 9}}") is not a URL yet: parse the scheme and authority
     * alone and keep the raw path as the template. */
    const char *path = url;
    const char *scheme_end = strstr(url, "://");
    if (scheme_end) {
        path = scheme_end + 3;
        path += strcspn(path, "/?");
    }
    char *authority = xstrndup(url, (size_t)(path - url));
    bool templated = strstr(path, "{{") != NULL;
    int prc = url_parse(templated ? authority : url, &s->url, err, sizeof(err));
    free(authority);
    if (prc == -1) {
        fprintf(stderr, "apigate load: bad URL '%s': %s\n", url, err);
        goto out;
    }
    s->base_url = xstrdup(url);
    struct load_req *r = scenario_add_req(s);
    size_t off;
    const char *tpath = templated ? (*path == '/' ? path : NULL) : s->url.path;
    if (tpath == NULL) {
        fprintf(stderr, "apigate load: bad URL '%s': the path must start with '/'\n", url);
        goto out;
    }
    if (tmpl_compile(&r->path, tpath, err, sizeof(err), &off) == -1) {
        fprintf(stderr, "apigate load: URL '%s': %s\n", url, err);
        goto out;
    }
    for (size_t i = 0; i < r->path.n; i++) {
        if (r->path.segs[i].kind == TMPL_LIT && strpbrk(r->path.segs[i].lit, " \t\r\n")) {
            fprintf(stderr, "apigate load: bad URL '%s': whitespace outside {{ }}\n", url);
            goto out;
        }
    }
    if (body_arg) {
        if ((body = load__read_body(body_arg)) == NULL)
            goto out;
        if (tmpl_compile(&r->body, body, err, sizeof(err), &off) == -1) {
            fprintf(stderr, "apigate load: --body: %s\n", err);
            goto out;
        }
        r->has_body = true;
    }
    if (method && !scenario_valid_token(method)) {
        fprintf(stderr, "apigate load: -m '%s': not a valid HTTP method (a token such as GET, "
                        "POST or PURGE)\n", method);
        goto out;
    }
    r->method = xstrdup(method ? method : (body_arg ? "POST" : "GET"));
    for (size_t i = 0; i < nh; i++)
        if (load__add_header(r, hdrs[i]) == -1)
            goto out;
    r->name = xstrdup(tpath);
    /* --threshold 'METRIC: EXPR', as in a scenario's thresholds: (exit 99 when one fails). */
    for (size_t i = 0; i < nths; i++) {
        const char *colon = strchr(ths[i], ':');
        /* the metric may carry {name:x}: split at the first ':' after any closing brace */
        const char *brace = strchr(ths[i], '}');
        if (brace && colon && colon < brace)
            colon = strchr(brace, ':');
        if (colon == NULL) {
            fprintf(stderr,
                    "apigate load: --threshold '%s': expected 'metric: expression', like "
                    "'http_req_duration: p(95)<500'\n",
                    ths[i]);
            goto out;
        }
        char *metric = xstrndup(ths[i], (size_t)(colon - ths[i]));
        struct threshold th;
        const char *expr = colon + 1;
        while (*expr == ' ' || *expr == '\t')
            expr++;
        int trc = threshold_parse(&th, metric, expr, err, sizeof(err));
        free(metric);
        if (trc == -1) {
            fprintf(stderr, "apigate load: --threshold '%s': %s\n", ths[i], err);
            goto out;
        }
        s->th = xrealloc(s->th, (s->nth + 1) * sizeof(*s->th));
        s->th[s->nth++] = th;
    }
    s->threads = threads;
    s->timeout_us = timeout_us;
    s->graceful_us = timeout_us < 5000000 ? timeout_us : 5000000;
    s->plan.stages = xcalloc(1, sizeof(*s->plan.stages));
    s->plan.nstages = 1;
    if (rate > 0.0) {
        /* wrk2 semantics: a fixed set of -c connections sharing the rate. */
        s->plan.kind = SCHED_RATE;
        s->plan.start = rate;
        s->plan.stages[0] = (struct sched_stage){dur_us, rate};
        s->pre_vus = s->max_vus = conns;
    } else {
        s->plan.kind = SCHED_VUS;
        s->plan.start = conns;
        s->plan.stages[0] = (struct sched_stage){dur_us, (double)conns};
        s->max_vus = conns;
        if (s->threads > conns)
            s->threads = conns;
    }
    sched_plan_finish(&s->plan);
    rc = load__run(s, &o);
out:
    free(body);
    free(hdrs);
    free(ths);
    scenario_destroy(s);
    return rc;
}

/* Options of `load run` that reshape a scenario file without editing it. */
struct load_overrides {
    const char *base_url;
    uint64_t duration_us; /* 0: keep */
    unsigned vus;         /* 0: keep */
    unsigned threads;     /* 0: keep */
};

/* Applies <ov> to <s>: another target, the stages stretched or shrunk to a total duration (the
 * shape kept), VU targets scaled so the peak is <vus>. Returns 0 or -1 with a message. */
static int load__override(struct scenario *s, const struct load_overrides *ov)
{
    char err[LOAD_ERR_LEN];
    if (ov->base_url) {
        if (scenario_set_base_url(s, ov->base_url, err, sizeof(err)) == -1) {
            fprintf(stderr, "apigate load run: --base-url '%s': %s\n", ov->base_url, err);
            return -1;
        }
    }
    if (ov->duration_us) {
        double f = (double)ov->duration_us / (double)s->plan.total_us;
        for (size_t i = 0; i < s->plan.nstages; i++) {
            uint64_t d = (uint64_t)((double)s->plan.stages[i].dur_us * f);
            s->plan.stages[i].dur_us = d ? d : 1;
        }
        sched_plan_finish(&s->plan);
    }
    if (ov->vus) {
        if (s->plan.kind != SCHED_VUS) {
            fprintf(stderr, "apigate load run: --vus is for the vus executor; this scenario is "
                            "arrival_rate (use pre_allocated_vus/max_vus in the file)\n");
            return -1;
        }
        double f = (double)ov->vus / sched_peak(&s->plan);
        s->plan.start = floor(s->plan.start * f + 0.5);
        for (size_t i = 0; i < s->plan.nstages; i++)
            s->plan.stages[i].target = floor(s->plan.stages[i].target * f + 0.5);
        s->max_vus = ov->vus;
    }
    if (ov->threads)
        s->threads = ov->threads;
    return 0;
}

static void load__run_usage(FILE *out)
{
    fprintf(out, "usage: apigate load run SCENARIO.yaml [--json F] [--html F] [--summary-export F]\n"
                 "                      [-q] [--check]\n"
                 "                      [--base-url URL] [--duration D] [--vus N] [--threads N]\n"
                 "                      [--max-failed R]\n"
                 "  --check         validate the file (and resolve the target), do not run\n"
                 "  --base-url URL  another target than the file's base_url\n"
                 "  --duration D    stretch or shrink the stages to last D (same shape)\n"
                 "  -u, --vus N     scale the VU targets so the peak is N (vus executor)\n"
                 "  --threads N     event-loop threads\n");
}

/* `load run FILE`: load, optionally reshape or only check, run, report. */
static int load__scenario(int argc, char **argv)
{
    struct load_opts o = {.max_failed = -1};
    struct load_overrides ov = {0};
    const char *file = NULL;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            load__run_usage(stdout);
            fputc('\n', stdout);
            load__usage(stdout);
            return 0;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o.quiet = true;
        } else if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strcmp(a, "--json") == 0 && val) {
            o.json = argv[++i];
        } else if (strcmp(a, "--html") == 0 && val) {
            o.html = argv[++i];
        } else if (strcmp(a, "--summary-export") == 0 && val) {
            o.summary = argv[++i];
        } else if (strcmp(a, "--gateway-admin") == 0 && val) {
            o.gw_admin = argv[++i];
        } else if (strcmp(a, "--max-failed") == 0 && val) {
            if (load__max_failed_arg(val, &o.max_failed) == -1)
                return 2;
            i++;
        } else if (strcmp(a, "--base-url") == 0 && val) {
            ov.base_url = argv[++i];
        } else if (strcmp(a, "--duration") == 0 && val) {
            if (units_parse_duration_us(val, &ov.duration_us) == -1 || ov.duration_us == 0) {
                fprintf(stderr, "apigate load run: --duration '%s': expected a duration like 30s\n",
                        val);
                return 2;
            }
            i++;
        } else if ((strcmp(a, "--vus") == 0 || strcmp(a, "-u") == 0) && val) {
            if (load__uint_arg("--vus", val, LOAD_MAX_VUS, &ov.vus) == -1)
                return 2;
            i++;
        } else if ((strcmp(a, "--threads") == 0 || strcmp(a, "-t") == 0) && val) {
            if (load__uint_arg("--threads", val, LOAD_MAX_THREADS, &ov.threads) == -1)
                return 2;
            i++;
        } else if (a[0] == '-' || file) {
            fprintf(stderr, "apigate load run: unexpected argument '%s'\n", a);
            load__run_usage(stderr);
            return 2;
        } else {
            file = a;
        }
    }
    if (file == NULL) {
        load__run_usage(stderr);
        return 2;
    }
    struct scenario *s = scenario_load(file, stderr);
    if (s == NULL)
        return 2;
    int rc = 2;
    if (load__override(s, &ov) == -1)
        goto out;
    if (check) {
        char err[LOAD_ERR_LEN];
        if ((o.json && report_check_path(o.json) == -1) ||
            (o.html && report_check_path(o.html) == -1) ||
            (o.summary && report_check_path(o.summary) == -1))
            goto out;
        if (scenario_prepare(s, err, sizeof(err)) == -1) {
            fprintf(stderr, "apigate load: %s\n", err);
            goto out;
        }
        printf("%s: ok (%zu request%s, %s model, %.1fs, %zu threshold%s)\n", file, s->nreqs,
               s->nreqs == 1 ? "" : "s", s->plan.kind == SCHED_RATE ? "open" : "closed",
               (double)s->plan.total_us / 1e6, s->nth, s->nth == 1 ? "" : "s");
        rc = 0;
        goto out;
    }
    rc = load__run(s, &o);
out:
    scenario_destroy(s);
    return rc;
}

int load_main(int argc, char **argv)
{
    if (argc >= 2) {
        if (strcmp(argv[1], "run") == 0)
            return load__scenario(argc - 1, argv + 1);
        if (strcmp(argv[1], "compare") == 0)
            return compare_main(argc - 1, argv + 1);
        if (strcmp(argv[1], "merge") == 0)
            return merge_main(argc - 1, argv + 1);
    }
    return load__quick(argc, argv);
}
