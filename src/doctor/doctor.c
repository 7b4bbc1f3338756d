/* `apigate doctor`: the command line, the probes on their own threads with a deadline, the rules
 * run on the facts after the join (plus the rules that need two components), the report and the
 * exit code. `apigate doctor plan` is plan.c. */
#include "doctor/doctor.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/units.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "doctor/internal.h"
#include "http/url.h"

/* What --all probes. */
#define DEFAULT_GATEWAY "http://127.0.0.1:9901"
#define DEFAULT_POSTGRES "postgres://postgres@127.0.0.1:5432/postgres"
#define DEFAULT_PGBOUNCER "postgres://pgbouncer@127.0.0.1:6432/pgbouncer"
#define DEFAULT_REDIS "redis://127.0.0.1:6379"

enum job_kind { JOB_PG, JOB_PGB, JOB_REDIS, JOB_GATEWAY, JOB_HOST, JOB_TARGET, JOB_COUNT };

static const char *const job_names[] = {"postgres", "pgbouncer", "redis",
                                        "gateway",  "host",      "target"};

/* One probe run. The thread writes only its own job; the main thread reads it after the join, or
 * never when the deadline passed (the job is then leaked with the process exit). */
struct job {
    enum job_kind kind;
    const char *url; /* or the /proc root for JOB_HOST */
    int timeout_ms;
    int samples;
    int window_ms;
    bool explain_analyze;
    int rc; /* the probe's 0 / -1 */
    struct finding_list out;
    struct pg_facts pg;
    struct pgb_facts pgb;
    struct redis_facts redis;
    struct gw_facts gw;
    struct host_facts host;
    struct target_facts target;
};

void doctor__first_line(char *s)
{
    s[strcspn(s, "\r\n")] = '\0';
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '.'))
        s[--n] = '\0';
}

void doctor__redact(const char *url, char *out, size_t outlen)
{
    /* URL form: mask between the first ':' of the authority and its last '@'. */
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : NULL;
    const char *end = auth ? auth + strcspn(auth, "/?#") : NULL;
    const char *at = NULL;
    for (const char *p = auth; p && p < end; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon)
        snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - url), url, at);
    else
        snprintf(out, outlen, "%s", url);
    /* conninfo or query parameter form: password=secret */
    for (char *p = strstr(out, "password="); p; p = strstr(p, "password=")) {
        char *v = p + 9;
        size_t n = strcspn(v, " &");
        if (n >= 3) {
            memcpy(v, "***", 3);
            memmove(v + 3, v + n, strlen(v + n) + 1);
        } else {
            memset(v, '*', n); // shorter than the mask: masked in place
        }
        p = v; // search on after the mask
    }
}

/* The port of a postgres:// URL ("postgres://u@h:5433/db") or conninfo ("host=h port=5433");
 * <dflt> when none is given, 0 when it cannot be read. */
static int pg_port(const char *url, int dflt)
{
    const char *p = strstr(url, "port=");
    if (p && (p == url || p[-1] == ' ' || p[-1] == '&' || p[-1] == '?'))
        return atoi(p + 5);
    const char *auth = strstr(url, "://");
    if (auth == NULL)
        return dflt;
    auth += 3;
    size_t n = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *q = auth; q < auth + n; q++)
        if (*q == '@')
            at = q;
    const char *host = at ? at + 1 : auth;
    const char *end = auth + n;
    if (*host == '[') { // [::1]:5432
        const char *rb = memchr(host, ']', (size_t)(end - host));
        host = rb ? rb + 1 : end;
    }
    const char *colon = memchr(host, ':', (size_t)(end - host));
    return colon ? atoi(colon + 1) : dflt;
}

static void *job_thread(void *arg)
{
    struct job *j = arg;
    switch (j->kind) {
    case JOB_PG:
        j->rc = probe_pg_run(j->url, j->timeout_ms, j->explain_analyze, &j->pg, &j->out);
        break;
    case JOB_PGB:
        j->rc = probe_pgbouncer_run(j->url, j->timeout_ms, &j->pgb, &j->out);
        break;
    case JOB_REDIS:
        j->rc = probe_redis_run(j->url, j->timeout_ms, &j->redis, &j->out);
        break;
    case JOB_GATEWAY:
        j->rc = probe_gateway_run(j->url, j->timeout_ms, j->window_ms, &j->gw, &j->out);
        break;
    case JOB_HOST:
        j->rc = probe_host_run(j->url, &j->host, &j->out);
        break;
    case JOB_TARGET:
        j->rc = probe_target_run(j->url, j->timeout_ms, j->samples, &j->target, &j->out);
        break;
    case JOB_COUNT:
        break;
    }
    return NULL;
}

/* The one place that decides the exit code, shared with `doctor plan`. */
int doctor__report(struct finding_list *l, bool json, enum finding_sev fail_on)
{
    finding_list_sort(l);
    if (json) {
        struct buf b = BUF_INIT;
        finding_report_json(l, &b);
        fwrite(buf_head(&b), 1, buf_pending(&b), stdout);
        buf_deinit(&b);
    } else {
        finding_report_text(l, stdout, isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL);
    }
    fflush(stdout);
    return finding_list_worst(l) >= fail_on ? 1 : 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: apigate doctor [PROBES] [--json] [--fail-on warning|critical]\n"
            "       apigate doctor plan --help      capacity calculator\n\n"
            "Reads a running stack and prints findings with evidence and the fix, grouped by\n"
            "component, worst first. Probes run in parallel, each bounded by --timeout.\n\n"
            "probes (each runs only when asked):\n"
            "  --gateway URL      apigate admin address; reads URL/stats (e.g. %s)\n"
            "  --postgres URL     postgres://user@host:port/db (pg_stat_activity, locks,\n"
            "                     pg_stat_statements, seq scans, cache, replication)\n"
            "  --pgbouncer URL    admin console, postgres://user@host:6432/pgbouncer\n"
            "  --redis URL        redis://[:password@]host:port (of a cluster: any node, the\n"
            "                     others are discovered and read too)\n"
            "  --host             this machine's /proc: ports per destination, fds, listen queue\n"
            "  --target URL       N timed GET requests (DNS, connect, TLS, first byte, total)\n"
            "  --all              every probe with its default address:\n"
            "                     %s, %s,\n"
            "                     %s, %s, --host\n\n"
            "options:\n"
            "  --samples N        requests for --target (default 10)\n"
            "  --window DUR       the gateway is judged over this window between two samples\n"
            "                     of /stats (default 3s; 0: counters since start)\n"
            "  --explain-analyze  EXPLAIN ANALYZE the top statements without parameters (runs\n"
            "                     them, read-only and rolled back); default: EXPLAIN only\n"
            "  --timeout DUR      per network step (default 5s)\n"
            "  --proc DIR         read the host's files from DIR instead of /proc\n"
            "  --json             one JSON document (see docs/doctor.md#json)\n"
            "  --fail-on SEV      exit 1 when a finding is at or above SEV: warning or critical\n"
            "                     (default critical); 0 otherwise; 2 on bad input\n",
            DEFAULT_GATEWAY, DEFAULT_GATEWAY, DEFAULT_POSTGRES, DEFAULT_PGBOUNCER, DEFAULT_REDIS);
}

/* Waits for <j> until <deadline>; returns true when it finished. */
static bool job_join(pthread_t th, const struct timespec *deadline)
{
    return pthread_timedjoin_np(th, NULL, deadline) == 0;
}

/* Parses the options (bad input exits 2 before anything runs), starts one thread per probe, waits
 * for each until the shared deadline, runs the rules on the facts of the probes that finished,
 * merges the findings and reports. */
int doctor_main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "plan") == 0)
        return plan_main(argc - 1, argv + 1);
    const char *urls[JOB_COUNT] = {0};
    bool json = false;
    bool explain_analyze = false;
    enum finding_sev fail_on = FINDING_CRITICAL;
    int samples = 10;
    uint64_t timeout_ms = 5000;
    uint64_t window_ms = 3000;
    const char *proc = "/proc";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int kind = -1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        } else if (strcmp(a, "--explain-analyze") == 0) {
            explain_analyze = true;
            continue;
        } else if (strcmp(a, "--host") == 0) {
            urls[JOB_HOST] = proc;
            continue;
        } else if (strcmp(a, "--all") == 0) {
            urls[JOB_GATEWAY] = DEFAULT_GATEWAY;
            urls[JOB_PG] = DEFAULT_POSTGRES;
            urls[JOB_PGB] = DEFAULT_PGBOUNCER;
            urls[JOB_REDIS] = DEFAULT_REDIS;
            urls[JOB_HOST] = proc;
            continue;
        } else if (strcmp(a, "--gateway") == 0) {
            kind = JOB_GATEWAY;
        } else if (strcmp(a, "--postgres") == 0) {
            kind = JOB_PG;
        } else if (strcmp(a, "--pgbouncer") == 0) {
            kind = JOB_PGB;
        } else if (strcmp(a, "--redis") == 0) {
            kind = JOB_REDIS;
        } else if (strcmp(a, "--target") == 0) {
            kind = JOB_TARGET;
        } else if (strcmp(a, "--proc") != 0 && strcmp(a, "--samples") != 0 &&
                   strcmp(a, "--timeout") != 0 && strcmp(a, "--fail-on") != 0 &&
                   strcmp(a, "--window") != 0) {
            fprintf(stderr, "apigate doctor: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (v == NULL || v[0] == '\0') {
            fprintf(stderr, "apigate doctor: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (kind == JOB_GATEWAY || kind == JOB_TARGET) {
            struct url u;
            char err[256];
            if (url_parse(v, &u, err, sizeof(err)) < 0) {
                fprintf(stderr, "apigate doctor: %s '%s': %s\n", a, v, err);
                return 2;
            }
        }
        if (kind == JOB_REDIS) {
            char host[256], pass[128];
            int port;
            if (probe_redis_parse_url(v, host, sizeof(host), &port, pass, sizeof(pass)) < 0) {
                /* the URL may hold a password: say what is expected, not what was given */
                fprintf(stderr,
                        "apigate doctor: --redis: expected redis://[:password@]host[:port][/db] "
                        "with a port from 1 to 65535\n");
                return 2;
            }
        }
        if (kind >= 0) {
            urls[kind] = v;
        } else if (strcmp(a, "--proc") == 0) {
            proc = v;
            if (urls[JOB_HOST])
                urls[JOB_HOST] = proc;
        } else if (strcmp(a, "--samples") == 0) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || *end || n < 1 || n > 10000) {
                fprintf(stderr, "apigate doctor: --samples '%s': expected 1..10000\n", v);
                return 2;
            }
            samples = (int)n;
        } else if (strcmp(a, "--window") == 0) {
            uint64_t w = 0;
            if (strcmp(v, "0") != 0 && (units_parse_duration_ms(v, &w) < 0 || w > 600000)) {
                fprintf(stderr,
                        "apigate doctor: --window '%s': expected 0 or a duration such as 3s "
                        "(up to 10m)\n",
                        v);
                return 2;
            }
            window_ms = w;
        } else if (strcmp(a, "--timeout") == 0) {
            if (units_parse_duration_ms(v, &timeout_ms) < 0 || timeout_ms == 0 ||
                timeout_ms > 600000) {
                fprintf(stderr,
                        "apigate doctor: --timeout '%s': expected a duration such as "
                        "500ms or 5s (up to 10m)\n",
                        v);
                return 2;
            }
        } else if (finding_sev_parse(v, &fail_on) < 0 || fail_on < FINDING_WARNING) {
            fprintf(stderr, "apigate doctor: --fail-on '%s': expected warning or critical\n", v);
            return 2;
        }
    }
    int asked = 0;
    for (int k = 0; k < JOB_COUNT; k++)
        asked += urls[k] != NULL;
    if (asked == 0) {
        fprintf(stderr, "apigate doctor: no probe selected\n\n");
        usage(stderr);
        return 2;
    }

    struct job *jobs[JOB_COUNT] = {0};
    pthread_t threads[JOB_COUNT];
    bool started[JOB_COUNT] = {0};
    for (int k = 0; k < JOB_COUNT; k++) {
        if (urls[k] == NULL)
            continue;
        struct job *j = xcalloc(1, sizeof(*j));
        j->kind = (enum job_kind)k;
        j->url = urls[k];
        j->timeout_ms = (int)timeout_ms;
        j->samples = samples;
        j->explain_analyze = explain_analyze;
        j->window_ms = (int)window_ms;
        if (k == JOB_HOST) { // churn toward the databases this run was told about, too
            rules_host_db_port(&j->host, 0, "");
            if (urls[JOB_PG])
                rules_host_db_port(&j->host, pg_port(urls[JOB_PG], 5432), "PostgreSQL");
            if (urls[JOB_PGB])
                rules_host_db_port(&j->host, pg_port(urls[JOB_PGB], 6432), "PgBouncer");
            char host[256], pass[128];
            int port;
            if (urls[JOB_REDIS] && probe_redis_parse_url(urls[JOB_REDIS], host, sizeof(host), &port,
                                                         pass, sizeof(pass)) == 0)
                rules_host_db_port(&j->host, port, "Redis");
        }
        finding_list_init(&j->out);
        j->redis.gw_l2_hits = j->redis.gw_l2_misses = -1;
        jobs[k] = j;
        started[k] = pthread_create(&threads[k], NULL, job_thread, j) == 0;
        if (!started[k])
            job_thread(j); // no thread: run it here, still bounded by its own timeouts
    }
    /* A probe does a handful of network steps each bounded by the timeout; the target probe does
     * <samples> requests. Past this deadline a probe is reported as stuck, not waited for. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    /* libpq cannot wait less than 2 s for a connect, whatever --timeout says. */
    uint64_t step_ms = timeout_ms < 2000 ? 2000 : timeout_ms;
    uint64_t budget_ms = step_ms * 4 + (urls[JOB_TARGET] ? timeout_ms * (uint64_t)samples : 0) +
                         (urls[JOB_GATEWAY] ? window_ms + step_ms * 2 : 0);
    deadline.tv_sec += (time_t)(budget_ms / 1000);
    deadline.tv_nsec += (long)(budget_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    struct finding_list all;
    finding_list_init(&all);
    bool done[JOB_COUNT] = {0};
    for (int k = 0; k < JOB_COUNT; k++) {
        if (jobs[k] == NULL)
            continue;
        done[k] = !started[k] || job_join(threads[k], &deadline);
        if (!done[k]) {
            struct finding *f = finding_add(&all, job_names[k], "probe-timeout", FINDING_CRITICAL,
                                            "%s probe did not finish within %.1f s", job_names[k],
                                            (double)budget_ms / 1000);
            char safe[512];
            doctor__redact(urls[k], safe, sizeof(safe));
            finding_source(f, "%s", safe);
            finding_fix(f, "the service accepts connections but does not answer: check its load "
                           "and logs");
            pthread_detach(threads[k]);
            jobs[k] = NULL; // still owned by its thread; freed by the exit
        }
    }
    /* Rules that need two components use facts from both when both probes succeeded. */
    if (jobs[JOB_PGB] && jobs[JOB_PG] && jobs[JOB_PG]->rc == 0)
        jobs[JOB_PGB]->pgb.server_max_connections = jobs[JOB_PG]->pg.max_connections;
    if (jobs[JOB_REDIS] && jobs[JOB_GATEWAY] && jobs[JOB_GATEWAY]->rc == 0)
        jobs[JOB_REDIS]->redis.gateway_caches =
            jobs[JOB_GATEWAY]->gw.life_requests > 0 &&
            jobs[JOB_GATEWAY]->gw.cache_hits + jobs[JOB_GATEWAY]->gw.cache_misses > 0;
    if (jobs[JOB_REDIS] && jobs[JOB_GATEWAY] && jobs[JOB_GATEWAY]->rc == 0 &&
        jobs[JOB_GATEWAY]->gw.l2_enabled) {
        jobs[JOB_REDIS]->redis.gateway_l2 = true;
        jobs[JOB_REDIS]->redis.gw_l2_hits = jobs[JOB_GATEWAY]->gw.l2_hits;
        jobs[JOB_REDIS]->redis.gw_l2_misses = jobs[JOB_GATEWAY]->gw.l2_misses;
    }
    if (jobs[JOB_PG] && jobs[JOB_PGB] && jobs[JOB_PGB]->rc == 0)
        jobs[JOB_PG]->pg.pgbouncer_in_front = true;
    if (jobs[JOB_HOST] && jobs[JOB_GATEWAY] && jobs[JOB_GATEWAY]->rc == 0 &&
        jobs[JOB_GATEWAY]->gw.threads > 0)
        jobs[JOB_HOST]->host.gateway_threads = (int)jobs[JOB_GATEWAY]->gw.threads;
    for (int k = 0; k < JOB_COUNT; k++) {
        struct job *j = jobs[k];
        if (j == NULL)
            continue;
        if (j->rc == 0) {
            switch (j->kind) {
            case JOB_PG:
                rules_pg(&j->pg, &j->out);
                break;
            case JOB_PGB:
                rules_pgbouncer(&j->pgb, &j->out);
                break;
            case JOB_REDIS:
                rules_redis(&j->redis, &j->out);
                break;
            case JOB_GATEWAY:
                rules_gateway(&j->gw, &j->out);
                break;
            case JOB_HOST:
                rules_host(&j->host, &j->out);
                break;
            case JOB_TARGET:
                rules_target(&j->target, &j->out);
                break;
            case JOB_COUNT:
                break;
            }
        }
        finding_list_move(&all, &j->out);
        free(j->target.samples);
        free(j);
        jobs[k] = NULL;
    }
    int rc = doctor__report(&all, json, fail_on);
    finding_list_deinit(&all);
    return rc;
}
