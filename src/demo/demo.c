/* `apigate demo`: the before/after story in one command. It starts `apigate mock` with the seed's
 * profile, loads it directly ("before"), starts `apigate serve` in front of it with caching,
 * coalescing, pooling and shedding, loads it again ("after") and prints the table. Every step is a
 * child process of this same binary (/proc/self/exe) whose JSON output is read back with cJSON:
 * this file orchestrates and owns the children's lifetimes; it never serves or measures itself. */
#include "demo/demo.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/units.h"
#include "core/buf.h"
#include "core/clock.h"
#include "demo/demo_proc.h"

#define DEMO_DEFAULT_DURATION_MS 25000 /* per run: two runs + start-up ≈ one minute */
#define DEMO_DEFAULT_USERS 200         /* the seed's k6 peak */
#define DEMO_MAX_USERS 20000
#define DEMO_STOP_GRACE_MS 5000 /* SIGTERM, then SIGKILL after this */
#define DEMO_FAILED 3           /* demo__story: a step failed (exit 1, logs kept) */

/* The seed API (examples/mock-seed.yaml without the comments): every DB request holds one of 10
 * pool connections for 40 ms, so the API serves at most 250 req/s and 200 users queue up. */
static const char demo_profile[] =
    "# written by apigate demo: the seed API (examples/mock-seed.yaml)\n"
    "global:\n"
    "  db_pool: {size: 10, service: {dist: fixed, ms: 40}, queue_timeout: 720ms, queue_limit: 0}\n"
    "  max_body: 1MB\n"
    "routes:\n"
    "  - {method: GET, path: '/api/users/{id}', handler: user, db: true, body_size: 1KB}\n"
    "  - {method: PUT, path: '/api/users/{id}', handler: user, db: true}\n"
    "  - {method: DELETE, path: '/api/users/{id}', handler: user, db: true}\n"
    "  - {method: GET, path: /api/orders, handler: orders, db: true, body_size: 2KB}\n"
    "  - {method: GET, path: /api/catalog/products, handler: products, db: true, body_size: 4KB,\n"
    "     cache_control: 'public, max-age=60', etag: true, last_modified: true}\n"
    "  - {method: GET, path: /api/catalog/search, handler: search, db: true, body_size: 2KB}\n"
    "  - {method: POST, path: /api/auth/login, handler: login, db: true}\n"
    "  - {method: GET, path: /api/auth/me, handler: me, db: true, body_size: 512}\n"
    "  - {method: GET, path: /api/health, handler: health}\n";

struct demo_opts {
    uint64_t duration_ms; /* of each load run */
    unsigned users;       /* peak virtual users */
    bool keep_running;
    const char *report_dir;
};

/* One run's numbers, from the load JSON report plus the servers' own counters. */
struct demo_result {
    double rps, p50_ms, p95_ms, p99_ms, error_rate, under_500ms;
    uint64_t requests, status_5xx;
    long long origin_served;          /* answers the mock wrote during the run; -1 unknown */
    double hit_ratio;                 /* gateway cache hits / lookups; < 0 when no gateway */
    long long hits, misses, coalesced; /* gateway cache counters; -1 unknown */
    long long shed;                   /* 503s from the gateway's admission control; -1 unknown */
};

struct demo {
    struct demo_opts o;
    char exe[PATH_MAX];   /* this binary: children are the same program */
    char tmp[PATH_MAX];   /* temp dir with the profile, configs and server logs */
    char path[8][PATH_MAX]; /* files in tmp, DEMO_F_* */
    int mock_port, gw_port, admin_port;
    pid_t mock_pid, gw_pid, load_pid; /* 0 when not running */
    bool failed;                      /* a step failed: keep the temp dir for its logs */
};

enum { DEMO_F_PROFILE, DEMO_F_GATEWAY, DEMO_F_SCENARIO, DEMO_F_MOCKLOG, DEMO_F_GWLOG, DEMO_F__N };
static const char *const demo_fnames[DEMO_F__N] = {"seed-profile.yaml", "gateway.yaml",
                                                   "scenario.yaml", "mock.log", "gateway.log"};

/* Set by SIGINT/SIGTERM/SIGHUP; every wait loop checks it and the demo stops its children. */
static volatile sig_atomic_t demo_signal;

static void demo__on_signal(int sig) { demo_signal = sig; }

static void demo__usage(FILE *out)
{
    fprintf(out,
            "usage: apigate demo [--duration D] [--users N] [--keep-running] [--report-dir DIR]\n"
            "\n"
            "The before/after story in about a minute, with nothing but this binary:\n"
            "  1. starts `apigate mock` with the seed's profile (40 ms per DB request, a pool of 10:\n"
            "     at most 250 req/s) on a free loopback port;\n"
            "  2. \"before\": `apigate load` ramps virtual users to N against it directly, with the\n"
            "     seed's endpoint mix (users, catalog, search, /auth/me, login);\n"
            "  3. starts `apigate serve` in front of it: response cache (per-user /me), coalescing,\n"
            "     a keep-alive upstream pool sized to the DB pool, concurrency limits (shedding);\n"
            "  4. \"after\": the same load through the gateway;\n"
            "  5. prints the before/after table and writes the reports (HTML, JSON, text).\n"
            "\n"
            "  --duration D      length of each load run (default 25s; e.g. 10s, 1m)\n"
            "  --users N         peak virtual users (default 200)\n"
            "  --keep-running    leave the gateway and the mock up after the table, until Ctrl-C\n"
            "  --report-dir DIR  where the reports go (default ./apigate-demo)\n"
            "  -h, --help        this help\n"
            "\n"
            "Every process it starts is stopped at the end, also on Ctrl-C.\n"
            "Exit codes: 0 the gateway made it better (p95 lower, error rate not higher), 1 it did\n"
            "not or a step failed, 2 bad usage, 130 interrupted before the table.\n");
}

/* Returns 0, 1 after --help, -1 on bad usage. Options take "--opt value" or "--opt=value". */
static int demo__parse(int argc, char **argv, struct demo_opts *o)
{
    o->duration_ms = DEMO_DEFAULT_DURATION_MS;
    o->users = DEMO_DEFAULT_USERS;
    o->keep_running = false;
    o->report_dir = "apigate-demo";
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *a = argv[i], *val = NULL;
        const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof(name)) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            a = name;
            val = eq + 1;
        }
        bool takes = strcmp(a, "--duration") == 0 || strcmp(a, "--users") == 0 ||
                     strcmp(a, "--report-dir") == 0;
        if (takes && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "apigate demo: %s needs a value (apigate demo --help)\n", a);
                return -1;
            }
            val = argv[++i];
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            demo__usage(stdout);
            return 1;
        } else if (strcmp(a, "--keep-running") == 0 && !val) {
            o->keep_running = true;
        } else if (strcmp(a, "--duration") == 0) {
            if (units_parse_duration_ms(val, &o->duration_ms) == -1 || o->duration_ms < 2000 ||
                o->duration_ms > 3600000) {
                fprintf(stderr, "apigate demo: --duration '%s': expected a duration between 2s "
                                "and 1h, like 10s or 1m\n", val);
                return -1;
            }
        } else if (strcmp(a, "--users") == 0) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-' || n < 1 || n > DEMO_MAX_USERS) {
                fprintf(stderr, "apigate demo: --users '%s': expected a number from 1 to %d\n", val,
                        DEMO_MAX_USERS);
                return -1;
            }
            o->users = (unsigned)n;
        } else if (strcmp(a, "--report-dir") == 0) {
            if (!*val) {
                fprintf(stderr, "apigate demo: --report-dir: empty path\n");
                return -1;
            }
            o->report_dir = val;
        } else {
            fprintf(stderr, "apigate demo: unknown option '%s'\n\n", argv[i]);
            demo__usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* Progress for people: one line per step on stderr, with the elapsed time. */
static uint64_t demo_t0_ms;
static void demo__say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void demo__say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "demo [%5.1fs] ", (double)(clock_now_ms() - demo_t0_ms) / 1000.0);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int demo__write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t n = fwrite(text, 1, len, f);
    if (fclose(f) != 0 || n != len)
        return -1;
    return 0;
}

/* Stops every child, the newest first: load, gateway (which drains into the mock), mock. */
static void demo__stop_all(struct demo *d)
{
    demo_proc_stop(&d->load_pid, "apigate load", DEMO_STOP_GRACE_MS);
    demo_proc_stop(&d->gw_pid, "apigate serve", DEMO_STOP_GRACE_MS);
    demo_proc_stop(&d->mock_pid, "apigate mock", DEMO_STOP_GRACE_MS);
}

/* Polls GET <path> on <port> until it answers 200, the child died, the time ran out or a signal
 * came. Returns 0 when ready. */
static int demo__wait_ready(pid_t *pid, int port, const char *path, uint64_t timeout_ms)
{
    struct buf body = BUF_INIT;
    uint64_t deadline = clock_now_ms() + timeout_ms;
    int rc = -1;
    while (!demo_signal && demo_proc_alive(pid) && clock_now_ms() < deadline) {
        if (demo_proc_http(port, "GET", path, &body) == 200) {
            rc = 0;
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    buf_deinit(&body);
    return rc;
}

/* The load scenario: the seed's endpoint mix, ramping to <users> over the first 30% of the run
 * and holding. Short think times keep the pressure where the seed had it (200 users push the
 * 250 req/s API into its queue); ids and users come from small sets, as real traffic does. */
static int demo__write_scenario(const struct demo *d)
{
    struct buf b = BUF_INIT;
    uint64_t ramp = d->o.duration_ms * 3 / 10;
    buf_printf(&b,
               "# written by apigate demo: the seed's endpoint mix\n"
               "base_url: http://127.0.0.1:%d/api\n"
               "executor: vus\n"
               "stages:\n"
               "  - {duration: %llums, target: %u}\n"
               "  - {duration: %llums, target: %u}\n"
               "threads: 1\n"
               "timeout: 10s\n"
               "graceful_stop: 2s\n"
               "think: 0ms..100ms\n"
               "headers: {Accept: application/json}\n"
               "requests:\n"
               "  - {name: user, path: '/users/{{rand 1 100}}', weight: 35}\n"
               "  - {name: products, path: '/catalog/products?page={{rand 1 20}}', weight: 25}\n"
               "  - {name: search, path: '/catalog/search?q={{pick shoes shirt hat bag}}', "
               "weight: 15}\n"
               "  - name: me\n"
               "    path: /auth/me\n"
               "    weight: 20\n"
               "    headers: {Authorization: 'Bearer user{{rand 1 50}}'}\n"
               "  - name: login\n"
               "    method: POST\n"
               "    path: /auth/login\n"
               "    weight: 5\n"
               "    headers: {Content-Type: application/json}\n"
               "    body: '{\"user\":\"user{{rand 1 50}}\"}'\n",
               d->mock_port, (unsigned long long)ramp, d->o.users,
               (unsigned long long)(d->o.duration_ms - ramp), d->o.users);
    int rc = demo__write_file(d->path[DEMO_F_SCENARIO], buf_head(&b), buf_pending(&b));
    buf_deinit(&b);
    return rc;
}

/* The gateway's config: what the seed's fix was. Reads are cached (users with a TTL the origin
 * does not give, the catalog by its own Cache-Control, /me per user), concurrent misses of one
 * key make one origin request, the upstream pool holds as many connections as the database has,
 * and concurrency limits answer 503 at once instead of queueing without bound. */
static int demo__write_gateway(const struct demo *d)
{
    struct buf b = BUF_INIT;
    buf_printf(&b,
               "# written by apigate demo: the gateway in front of the seed API\n"
               "listen: 127.0.0.1:%d\n"
               "admin: 127.0.0.1:%d\n"
               "workers: {threads: 1, drain_timeout: 1s}\n"
               "server: {concurrency: 10000}        # shedding: global in-flight limit\n"
               "cache: {memory: 64MB, coalesce: true}\n"
               "upstreams:\n"
               "  api:\n"
               "    servers: [127.0.0.1:%d]\n"
               "    balance: least_request\n"
               "    # as many connections as the database pool: the queue stays in the gateway\n"
               "    pool: {max_connections: 10, max_idle: 10, idle_timeout: 60s,\n"
               "           queue_timeout: 2s, max_queue: 1000}\n"
               "    connect_timeout: 1s\n"
               "routes:\n"
               "  - match: /api/users/\n"
               "    upstream: api\n"
               "    cache: {ttl: 60s, override: true, stale_while_revalidate: 30s,\n"
               "            stale_if_error: 5m, invalidate: [/api/users]}\n"
               "    timeout: {first_byte: 3s, total: 5s}\n"
               "    limit: {concurrency: 2000, retry_after: 1s}\n"
               "  - match: /api/catalog/\n"
               "    upstream: api\n"
               "    cache: {ttl: 30s, stale_while_revalidate: 30s, stale_if_error: 5m}\n"
               "    timeout: {first_byte: 3s, total: 5s}\n"
               "    limit: {concurrency: 2000, retry_after: 1s}\n"
               "  - match: = /api/auth/me\n"
               "    upstream: api\n"
               "    cache: {ttl: 60s, override: true, vary: [Authorization]}\n"
               "    timeout: {first_byte: 3s, total: 5s}\n"
               "  - match: /api/\n"
               "    upstream: api\n"
               "    timeout: {first_byte: 3s, total: 5s}\n"
               "    limit: {concurrency: 200, retry_after: 1s}\n",
               d->gw_port, d->admin_port, d->mock_port);
    int rc = demo__write_file(d->path[DEMO_F_GATEWAY], buf_head(&b), buf_pending(&b));
    buf_deinit(&b);
    return rc;
}

static double demo__num(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : -1.0;
}

static cJSON *demo__read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b = BUF_INIT;
    for (;;) {
        buf_reserve(&b, 65536);
        size_t n = fread(buf_tail(&b), 1, buf_room(&b), f);
        if (n == 0)
            break;
        buf_commit(&b, n);
    }
    fclose(f);
    buf_append(&b, "", 1);
    cJSON *j = cJSON_Parse(buf_head(&b));
    buf_deinit(&b);
    return j;
}

/* Fills the client-side numbers from the load JSON report. */
static int demo__read_load(const char *path, struct demo_result *r)
{
    cJSON *j = demo__read_json(path);
    if (!j)
        return -1;
    r->rps = demo__num(j, "totals", "rps");
    r->requests = (uint64_t)demo__num(j, "totals", "requests");
    r->error_rate = demo__num(j, "totals", "failed_rate");
    r->under_500ms = demo__num(j, "totals", "under_500ms");
    r->p50_ms = demo__num(j, "latency_ms", "med");
    r->p95_ms = demo__num(j, "latency_ms", "p95");
    r->p99_ms = demo__num(j, "latency_ms", "p99");
    r->status_5xx = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "status"))
    {
        if (it->string && it->string[0] == '5' && cJSON_IsNumber(it))
            r->status_5xx += (uint64_t)it->valuedouble;
    }
    cJSON_Delete(j);
    return r->rps < 0 || r->p95_ms < 0 ? -1 : 0;
}

/* Answers the mock wrote since its last reset (/_mock/stats total.served); -1 unknown. */
static long long demo__origin_served(const struct demo *d)
{
    struct buf body = BUF_INIT;
    long long n = -1;
    if (demo_proc_http(d->mock_port, "GET", "/_mock/stats", &body) == 200) {
        buf_append(&body, "", 1);
        cJSON *j = cJSON_Parse(buf_head(&body));
        double v = demo__num(j, "total", "served");
        if (v >= 0)
            n = (long long)v;
        cJSON_Delete(j);
    }
    buf_deinit(&body);
    return n;
}

static void demo__mock_reset(const struct demo *d)
{
    struct buf body = BUF_INIT;
    demo_proc_http(d->mock_port, "POST", "/_mock/reset", &body);
    buf_deinit(&body);
}

/* Gateway counters: cache hits/misses (/metrics/cache) and shed requests (/stats). */
static void demo__read_gateway(const struct demo *d, struct demo_result *r)
{
    struct buf body = BUF_INIT;
    if (demo_proc_http(d->admin_port, "GET", "/metrics/cache", &body) == 200) {
        buf_append(&body, "", 1);
        cJSON *j = cJSON_Parse(buf_head(&body));
        double hits = demo__num(j, "hits", NULL), misses = demo__num(j, "misses", NULL);
        double co = demo__num(j, "coalesced", NULL);
        if (hits >= 0 && misses >= 0) {
            r->hits = (long long)hits;
            r->misses = (long long)misses;
            r->hit_ratio = hits + misses > 0 ? hits / (hits + misses) : 0.0;
        }
        r->coalesced = co >= 0 ? (long long)co : -1;
        cJSON_Delete(j);
    }
    if (demo_proc_http(d->admin_port, "GET", "/stats", &body) == 200) {
        buf_append(&body, "", 1);
        cJSON *j = cJSON_Parse(buf_head(&body));
        double shed = demo__num(j, "shed", NULL);
        r->shed = shed >= 0 ? (long long)shed : -1;
        cJSON_Delete(j);
    }
    buf_deinit(&body);
}

/* Runs one load phase against <port> and reads its report back. Returns 0, -1 on failure, -2 when
 * interrupted. */
static int demo__run_load(struct demo *d, const char *phase, int port, struct demo_result *r)
{
    char url[64], json[PATH_MAX + 16], html[PATH_MAX + 16], txt[PATH_MAX + 16];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api", port);
    snprintf(json, sizeof(json), "%s/%s.json", d->o.report_dir, phase);
    snprintf(html, sizeof(html), "%s/%s.html", d->o.report_dir, phase);
    snprintf(txt, sizeof(txt), "%s/%s.txt", d->o.report_dir, phase);
    /* --max-failed 100%: the "before" run's 5xx are what the demo shows, not a failure of load
     * (which exits 1 above 1% failed by default). */
    char *argv[] = {"apigate", "load", "run", d->path[DEMO_F_SCENARIO], "--base-url", url,
                    "--json", json, "--html", html, "--max-failed", "100%", NULL};
    d->load_pid = demo_proc_spawn(d->exe, argv, txt, NULL, false);
    if (d->load_pid == -1) {
        d->load_pid = 0;
        fprintf(stderr, "apigate demo: fork: %s\n", strerror(errno));
        return -1;
    }
    int st = 0;
    /* Generous bound: the run, its graceful stop and the report. */
    int w = demo_proc_wait(d->load_pid, d->o.duration_ms + 60000, &st, &demo_signal);
    if (w == -1 || demo_signal)
        return -2; /* a terminal's Ctrl-C also reaches load, which shares our process group */
    if (w == 1) {
        fprintf(stderr, "apigate demo: apigate load (%s) did not finish; stopping it\n", phase);
        return -1;
    }
    d->load_pid = 0;
    /* 0 ok, 99 a threshold failed (the scenario has none, but the numbers are still good). */
    if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 99)) {
        fprintf(stderr, "apigate demo: apigate load (%s) failed (%s %d); its output: %s\n", phase,
                WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                txt);
        return -1;
    }
    if (demo__read_load(json, r) == -1) {
        fprintf(stderr, "apigate demo: cannot read the load report %s\n", json);
        return -1;
    }
    return 0;
}

static void demo__fmt_ms(char *out, size_t n, double ms)
{
    if (ms < 0)
        snprintf(out, n, "-");
    else if (ms < 10)
        snprintf(out, n, "%.2f ms", ms);
    else if (ms < 1000)
        snprintf(out, n, "%.1f ms", ms);
    else
        snprintf(out, n, "%.2f s", ms / 1000.0);
}

static void demo__fmt_pct(char *out, size_t n, double f)
{
    if (f < 0)
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.1f%%", f * 100.0);
}

static void demo__fmt_count(char *out, size_t n, long long v)
{
    if (v < 0)
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%lld", v);
}

/* "-94.5%" for a number, "x6.8" for a growth of more than double. */
static void demo__fmt_change(char *out, size_t n, double before, double after)
{
    if (before <= 0 || after < 0)
        out[0] = '\0';
    else if (after >= 2 * before)
        snprintf(out, n, "x%.1f", after / before);
    else
        snprintf(out, n, "%+.1f%%", (after - before) / before * 100.0);
}

static void demo__row(const char *name, const char *b, const char *a, const char *change)
{
    if (change[0])
        printf("  %-26s %16s %16s   %s\n", name, b, a, change);
    else
        printf("  %-26s %16s %16s\n", name, b, a);
}

/* The before/after table on stdout. */
static void demo__print_table(const struct demo *d, const struct demo_result *b,
                              const struct demo_result *a, bool better)
{
    char x[64], y[64], c[64];
    printf("\napigate demo: the seed API (40 ms per DB request, a pool of 10) under %u users, "
           "%.0f s per run\n\n",
           d->o.users, (double)d->o.duration_ms / 1000.0);
    demo__row("", "before (direct)", "after (apigate)", "change");
    snprintf(x, sizeof(x), "%.1f/s", b->rps);
    snprintf(y, sizeof(y), "%.1f/s", a->rps);
    demo__fmt_change(c, sizeof(c), b->rps, a->rps);
    demo__row("requests/s", x, y, c);
    demo__fmt_ms(x, sizeof(x), b->p50_ms);
    demo__fmt_ms(y, sizeof(y), a->p50_ms);
    demo__fmt_change(c, sizeof(c), b->p50_ms, a->p50_ms);
    demo__row("latency p50", x, y, c);
    demo__fmt_ms(x, sizeof(x), b->p95_ms);
    demo__fmt_ms(y, sizeof(y), a->p95_ms);
    demo__fmt_change(c, sizeof(c), b->p95_ms, a->p95_ms);
    demo__row("latency p95", x, y, c);
    demo__fmt_ms(x, sizeof(x), b->p99_ms);
    demo__fmt_ms(y, sizeof(y), a->p99_ms);
    demo__fmt_change(c, sizeof(c), b->p99_ms, a->p99_ms);
    demo__row("latency p99", x, y, c);
    snprintf(x, sizeof(x), "%.2f%%", b->error_rate * 100.0);
    snprintf(y, sizeof(y), "%.2f%%", a->error_rate * 100.0);
    snprintf(c, sizeof(c), "%+.2f pp", (a->error_rate - b->error_rate) * 100.0);
    demo__row("error rate", x, y, c);
    demo__fmt_count(x, sizeof(x), (long long)b->status_5xx);
    demo__fmt_count(y, sizeof(y), (long long)a->status_5xx);
    demo__row("5xx responses", x, y, "");
    demo__fmt_pct(x, sizeof(x), b->under_500ms);
    demo__fmt_pct(y, sizeof(y), a->under_500ms);
    snprintf(c, sizeof(c), "%+.1f pp", (a->under_500ms - b->under_500ms) * 100.0);
    demo__row("requests under 500 ms", x, y, c);
    demo__fmt_pct(x, sizeof(x), b->hit_ratio);
    demo__fmt_pct(y, sizeof(y), a->hit_ratio);
    demo__row("cache hit ratio", x, y, "");
    demo__fmt_count(x, sizeof(x), (long long)b->requests);
    demo__fmt_count(y, sizeof(y), (long long)a->requests);
    demo__row("requests answered", x, y, "");
    demo__fmt_count(x, sizeof(x), b->origin_served);
    demo__fmt_count(y, sizeof(y), a->origin_served);
    c[0] = '\0';
    if (b->origin_served > 0 && a->origin_served >= 0 && a->requests > 0)
        snprintf(c, sizeof(c), "%.1f%% of requests reached it",
                 100.0 * (double)a->origin_served / (double)a->requests);
    demo__row("origin requests served", x, y, c);
    demo__fmt_count(y, sizeof(y), a->coalesced);
    demo__row("misses coalesced", "-", y, "");
    demo__fmt_count(y, sizeof(y), a->shed);
    demo__row("shed (503 at once)", "-", y, "");
    printf("\n  verdict: %s: p95 %.1f ms -> %.1f ms, error rate %.2f%% -> %.2f%%\n",
           better ? "better" : "NOT better", b->p95_ms, a->p95_ms, b->error_rate * 100.0,
           a->error_rate * 100.0);
    printf("  reports: %s/before.html %s/after.html (JSON and text beside them, summary.json)\n",
           d->o.report_dir, d->o.report_dir);
    printf("  compare: apigate load compare %s/before.json %s/after.json\n\n", d->o.report_dir,
           d->o.report_dir);
    fflush(stdout);
}

static void demo__json_result(struct buf *b, const char *name, const struct demo_result *r)
{
    buf_printf(b,
               "\"%s\":{\"rps\":%.3f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,"
               "\"error_rate\":%.6f,\"status_5xx\":%llu,\"under_500ms\":%.6f,\"requests\":%llu,"
               "\"origin_served\":%lld,\"cache_hit_ratio\":",
               name, r->rps, r->p50_ms, r->p95_ms, r->p99_ms, r->error_rate,
               (unsigned long long)r->status_5xx, r->under_500ms,
               (unsigned long long)r->requests, r->origin_served);
    if (r->hit_ratio < 0)
        buf_append_str(b, "null");
    else
        buf_printf(b, "%.6f", r->hit_ratio);
    buf_printf(b, ",\"cache_hits\":%lld,\"cache_misses\":%lld,\"coalesced\":%lld,\"shed\":%lld}",
               r->hits, r->misses, r->coalesced, r->shed);
}

/* summary.json: the table's numbers for scripts (bench/seed_story.sh, the e2e test). */
static int demo__write_summary(const struct demo *d, const struct demo_result *b,
                               const struct demo_result *a, bool better)
{
    struct buf j = BUF_INIT;
    buf_printf(&j, "{\"apigate_demo\":1,\"users\":%u,\"duration_s\":%.3f,", d->o.users,
               (double)d->o.duration_ms / 1000.0);
    demo__json_result(&j, "before", b);
    buf_append_str(&j, ",");
    demo__json_result(&j, "after", a);
    buf_printf(&j, ",\"better\":%s}\n", better ? "true" : "false");
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/summary.json", d->o.report_dir);
    int rc = demo__write_file(path, buf_head(&j), buf_pending(&j));
    buf_deinit(&j);
    return rc;
}

static void demo__result_init(struct demo_result *r)
{
    memset(r, 0, sizeof(*r));
    r->origin_served = -1;
    r->hit_ratio = -1;
    r->hits = r->misses = r->coalesced = r->shed = -1;
}

static int demo__mkdir_p(const char *path)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) == -1 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    if (mkdir(p, 0755) == -1 && errno != EEXIST)
        return -1;
    /* EEXIST also covers a file of that name: refuse it now, not after a minute of load when
     * the first report cannot be written into it. */
    struct stat st;
    if (stat(p, &st) == -1)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return access(p, W_OK | X_OK);
}

static void demo__remove_tmp(struct demo *d)
{
    if (!d->tmp[0])
        return;
    for (int i = 0; i < DEMO_F__N; i++)
        unlink(d->path[i]);
    rmdir(d->tmp);
    d->tmp[0] = '\0';
}

/* Creates the temp dir and writes the profile, the scenario and the gateway config into it. */
static int demo__prepare(struct demo *d)
{
    ssize_t n = readlink("/proc/self/exe", d->exe, sizeof(d->exe) - 1);
    if (n <= 0) {
        fprintf(stderr, "apigate demo: cannot find its own binary (/proc/self/exe): %s\n",
                strerror(errno));
        return -1;
    }
    d->exe[n] = '\0';
    if (demo__mkdir_p(d->o.report_dir) == -1) {
        fprintf(stderr, "apigate demo: --report-dir %s: %s\n", d->o.report_dir, strerror(errno));
        return -1;
    }
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(d->tmp, sizeof(d->tmp), "%s/apigate-demo.XXXXXX", base);
    if (!mkdtemp(d->tmp)) {
        fprintf(stderr, "apigate demo: cannot create a temp dir under %s: %s\n", base,
                strerror(errno));
        d->tmp[0] = '\0';
        return -1;
    }
    for (int i = 0; i < DEMO_F__N; i++)
        snprintf(d->path[i], sizeof(d->path[i]), "%.*s/%s", PATH_MAX - 32, d->tmp,
                 demo_fnames[i]);
    int ports[3];
    if (demo_proc_free_ports(ports, 3) == -1) {
        fprintf(stderr, "apigate demo: no free loopback port: %s\n", strerror(errno));
        return -1;
    }
    d->mock_port = ports[0];
    d->gw_port = ports[1];
    d->admin_port = ports[2];
    if (demo__write_file(d->path[DEMO_F_PROFILE], demo_profile, sizeof(demo_profile) - 1) == -1 ||
        demo__write_scenario(d) == -1 || demo__write_gateway(d) == -1) {
        fprintf(stderr, "apigate demo: cannot write into %s: %s\n", d->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

static int demo__start_mock(struct demo *d)
{
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", d->mock_port);
    char *argv[] = {"apigate", "mock", "--listen", listen, "--profile", d->path[DEMO_F_PROFILE],
                    "--threads", "1", NULL};
    d->mock_pid = demo_proc_spawn(d->exe, argv, d->path[DEMO_F_MOCKLOG], d->path[DEMO_F_MOCKLOG], true);
    if (d->mock_pid == -1) {
        d->mock_pid = 0;
        fprintf(stderr, "apigate demo: fork: %s\n", strerror(errno));
        return -1;
    }
    if (demo__wait_ready(&d->mock_pid, d->mock_port, "/_mock/stats", 10000) == -1) {
        if (!demo_signal) {
            fprintf(stderr, "apigate demo: the mock did not start on %s\n", listen);
            demo_proc_tail(d->path[DEMO_F_MOCKLOG]);
        }
        return -1;
    }
    return 0;
}

static int demo__start_gateway(struct demo *d)
{
    char *argv[] = {"apigate", "serve", "-c", d->path[DEMO_F_GATEWAY], NULL};
    d->gw_pid = demo_proc_spawn(d->exe, argv, d->path[DEMO_F_GWLOG], d->path[DEMO_F_GWLOG], true);
    if (d->gw_pid == -1) {
        d->gw_pid = 0;
        fprintf(stderr, "apigate demo: fork: %s\n", strerror(errno));
        return -1;
    }
    if (demo__wait_ready(&d->gw_pid, d->admin_port, "/readyz", 15000) == -1) {
        if (!demo_signal) {
            fprintf(stderr, "apigate demo: the gateway did not become ready on 127.0.0.1:%d\n",
                    d->gw_port);
            demo_proc_tail(d->path[DEMO_F_GWLOG]);
        }
        return -1;
    }
    return 0;
}

/* The whole story. Returns the exit code (0 better, 1 not better, 130 interrupted) or DEMO_FAILED;
 * the caller stops the children and cleans up. */
static int demo__story(struct demo *d, struct demo_result *before, struct demo_result *after)
{
    demo__say("[1/5] starting the seed API: apigate mock on 127.0.0.1:%d (40 ms per DB request, "
              "pool of 10: at most 250 req/s)", d->mock_port);
    if (demo__start_mock(d) == -1)
        return demo_signal ? 130 : DEMO_FAILED;

    demo__say("[2/5] before: %u users straight at the API for %.0f s (ramp %.0f s, then hold)",
              d->o.users, (double)d->o.duration_ms / 1000.0,
              (double)(d->o.duration_ms * 3 / 10) / 1000.0);
    demo__mock_reset(d);
    int rc = demo__run_load(d, "before", d->mock_port, before);
    if (rc != 0)
        return rc == -2 ? 130 : DEMO_FAILED;
    before->origin_served = demo__origin_served(d);
    demo__say("      before: %.0f req/s, p95 %.1f ms, %.2f%% errors, origin served %lld",
              before->rps, before->p95_ms, before->error_rate * 100.0, before->origin_served);

    demo__say("[3/5] starting the gateway: apigate serve on 127.0.0.1:%d (admin 127.0.0.1:%d): "
              "cache, coalescing, a pool of 10 to the API, concurrency limits",
              d->gw_port, d->admin_port);
    if (demo__start_gateway(d) == -1)
        return demo_signal ? 130 : DEMO_FAILED;

    demo__say("[4/5] after: the same %u users through the gateway for %.0f s", d->o.users,
              (double)d->o.duration_ms / 1000.0);
    demo__mock_reset(d);
    rc = demo__run_load(d, "after", d->gw_port, after);
    if (rc != 0)
        return rc == -2 ? 130 : DEMO_FAILED;
    after->origin_served = demo__origin_served(d);
    demo__read_gateway(d, after);
    demo__say("      after: %.0f req/s, p95 %.1f ms, %.2f%% errors, origin served %lld",
              after->rps, after->p95_ms, after->error_rate * 100.0, after->origin_served);

    demo__say("[5/5] results");
    if (!demo_proc_alive(&d->mock_pid) || !demo_proc_alive(&d->gw_pid)) {
        fprintf(stderr, "apigate demo: a server died during the run; its log:\n");
        demo_proc_tail(d->path[d->mock_pid ? DEMO_F_GWLOG : DEMO_F_MOCKLOG]);
    }
    /* Better means what the seed asked for: a lower p95 without trading it for errors. */
    bool better = after->p95_ms < before->p95_ms && after->error_rate <= before->error_rate;
    demo__print_table(d, before, after, better);
    if (demo__write_summary(d, before, after, better) == -1)
        fprintf(stderr, "apigate demo: cannot write %s/summary.json: %s\n", d->o.report_dir,
                strerror(errno));
    return better ? 0 : 1;
}

int demo_main(int argc, char **argv)
{
    struct demo d;
    memset(&d, 0, sizeof(d));
    int prc = demo__parse(argc, argv, &d.o);
    if (prc != 0)
        return prc == 1 ? 0 : 2;
    demo_t0_ms = clock_now_ms();

    struct sigaction sa = {.sa_handler = demo__on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct demo_result before, after;
    demo__result_init(&before);
    demo__result_init(&after);
    int rc;
    rc = demo__prepare(&d) == -1 ? DEMO_FAILED : demo__story(&d, &before, &after);
    if (rc == DEMO_FAILED) {
        d.failed = true;
        rc = 1;
    }

    if (rc != 130 && d.o.keep_running && d.gw_pid > 0 && !demo_signal) {
        printf("Still running (--keep-running), until Ctrl-C:\n"
               "  gateway   http://127.0.0.1:%d/api/users/1   (X-Cache shows hits)\n"
               "  dashboard http://127.0.0.1:%d/dashboard   (or: apigate top --admin 127.0.0.1:%d)\n"
               "  stats     http://127.0.0.1:%d/stats   /metrics   /metrics/cache\n"
               "  origin    http://127.0.0.1:%d/_mock/stats   (what the API really served)\n"
               "  load it   apigate load -c 50 -d 10s http://127.0.0.1:%d/api/catalog/products\n",
               d.gw_port, d.admin_port, d.admin_port, d.admin_port, d.mock_port, d.gw_port);
        fflush(stdout);
        while (!demo_signal && demo_proc_alive(&d.gw_pid) && demo_proc_alive(&d.mock_pid)) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (rc == 130)
        demo__say("interrupted: stopping everything it started");
    else
        demo__say("stopping the gateway and the mock");
    demo__stop_all(&d);
    if (d.failed && d.tmp[0]) {
        /* Keep the logs of a failed run: they say why. */
        fprintf(stderr, "apigate demo: configs and logs kept in %s\n", d.tmp);
    } else {
        demo__remove_tmp(&d);
    }
    return rc;
}
