/* `apigate top`: the dashboard in a terminal. Polls /stats of a gateway's admin listener with a
 * blocking GET (net/httpc.h; one connection per sample: top is a human's tool, not a scraper) and
 * prints totals, per-interval rates and percentiles (from the latency_window buckets), the route
 * table and the upstream pools. Not a full-screen UI: it redraws with two ANSI codes on a TTY. */
#include "top/top.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/units.h"
#include "core/buf.h"
#include "core/clock.h"
#include "net/httpc.h"
#include "net/sock.h"

#define TOP_TIMEOUT_MS 3000

static volatile sig_atomic_t top_stop;

static void top__on_signal(int sig)
{
    (void)sig;
    top_stop = 1;
}

static void top__usage(FILE *f)
{
    fprintf(f, "usage: apigate top [--admin HOST:PORT] [--interval D] [--once]\n"
               "\n"
               "Live statistics of a running gateway in the terminal, from /stats of its admin\n"
               "listener: requests/s, 5xx rate, p50/p95/p99 per interval and since start, cache hit\n"
               "ratio, the route table (calls, rate, avg, p95, errors) and the upstream pools\n"
               "(in use, idle, waiting). Ctrl-C quits.\n"
               "\n"
               "  --admin HOST:PORT  admin listener of `apigate serve` (default 127.0.0.1:9901;\n"
               "                     an http:// prefix is accepted)\n"
               "  --interval D       time between refreshes: 1s, 500ms (default 1s, 100ms..1h)\n"
               "  --once             take two samples one interval apart, print one frame, exit\n"
               "  -h, --help         this help\n"
               "\n"
               "Exit codes: 0 ok, 1 the gateway could not be read (--once), 2 bad usage.\n");
}

static double top__num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const cJSON *top__route(const cJSON *routes, const char *name)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, routes)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "route");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return r;
    }
    return NULL;
}

/* Quantile <q> of the requests between two latency_window snapshots, linear inside a bucket (as
 * Prometheus' histogram_quantile). NAN when there were none. */
static double top__window_q(const cJSON *cur, const cJSON *prev, double q)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(cur, "latency_window");
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(prev, "latency_window");
    if (w == NULL || pw == NULL)
        return NAN;
    const cJSON *le = cJSON_GetObjectItemCaseSensitive(w, "le_ms");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(w, "counts");
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(pw, "counts");
    int n = cJSON_GetArraySize(le);
    if (n == 0 || cJSON_GetArraySize(c) != n || cJSON_GetArraySize(pc) != n)
        return NAN;
    double total = top__num(w, "count") - top__num(pw, "count");
    if (total <= 0)
        return NAN;
    double rank = q * total, below = 0, lo = 0;
    for (int i = 0; i < n; i++) {
        double hi = cJSON_GetArrayItem(le, i)->valuedouble;
        double cum = cJSON_GetArrayItem(c, i)->valuedouble - cJSON_GetArrayItem(pc, i)->valuedouble;
        if (cum >= rank && cum > below)
            return lo + (hi - lo) * (rank - below) / (cum - below);
        below = cum;
        lo = hi;
    }
    return lo; // beyond the last boundary: report the boundary
}

static void top__ms(char *out, size_t n, double v)
{
    if (isnan(v))
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.2f", v);
}

static void top__frame(FILE *f, const char *admin, const cJSON *s, const cJSON *p, double dt)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "requests");
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(s, "latency_ms");
    const cJSON *conns = cJSON_GetObjectItemCaseSensitive(s, "connections");
    const cJSON *cache = cJSON_GetObjectItemCaseSensitive(s, "cache");
    double total = top__num(req, "total"), e5 = top__num(req, "5xx");
    char up[32];
    units_format_duration_us((uint64_t)(top__num(s, "uptime_s") * 1e6), up, sizeof(up));
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char clk[16];
    strftime(clk, sizeof(clk), "%H:%M:%S", &tm);
    fprintf(f, "apigate top  %s  uptime %s  worker restarts %.0f  %s\n", admin, up,
            top__num(s, "worker_restarts"), clk);

    char rps[32] = "-", erri[32] = "-";
    if (p != NULL && dt > 0) {
        const cJSON *preq = cJSON_GetObjectItemCaseSensitive(p, "requests");
        double dn = total - top__num(preq, "total");
        snprintf(rps, sizeof(rps), "%.1f/s", dn / dt);
        if (dn > 0)
            snprintf(erri, sizeof(erri), "%.2f%%", 100.0 * (e5 - top__num(preq, "5xx")) / dn);
    }
    fprintf(f, "requests %.0f  rate %s  5xx %.2f%% (interval %s)  shed %.0f  connections %.0f\n",
            total, rps, total > 0 ? 100.0 * e5 / total : 0.0, erri, top__num(s, "shed"),
            top__num(conns, "open"));
    char w50[16] = "-", w95[16] = "-", w99[16] = "-";
    if (p != NULL) {
        top__ms(w50, sizeof(w50), top__window_q(s, p, 0.50));
        top__ms(w95, sizeof(w95), top__window_q(s, p, 0.95));
        top__ms(w99, sizeof(w99), top__window_q(s, p, 0.99));
    }
    fprintf(f, "latency ms  interval p50 %s p95 %s p99 %s  |  since start avg %.2f p50 %.2f p95 %.2f "
               "p99 %.2f max %.2f\n",
            w50, w95, w99, top__num(lat, "avg"), top__num(lat, "p50"), top__num(lat, "p95"),
            top__num(lat, "p99"), top__num(lat, "max"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cache, "enabled"))) {
        double h = top__num(cache, "hits"), m = top__num(cache, "misses");
        char sz[32];
        units_format_size((uint64_t)top__num(cache, "bytes"), sz, sizeof(sz));
        fprintf(f, "cache  hit ratio %.2f%%  hits %.0f  misses %.0f  objects %.0f  bytes %s  "
                   "evictions %.0f\n",
                h + m > 0 ? 100.0 * h / (h + m) : 0.0, h, m, top__num(cache, "objects"), sz,
                top__num(cache, "evictions"));
    } else {
        fprintf(f, "cache  off\n");
    }
    fprintf(f, "breakers open %.0f\n\n", top__num(s, "breakers_open"));

    fprintf(f, "%-28s %-12s %10s %9s %8s %8s %8s %7s\n", "ROUTE", "UPSTREAM", "CALLS", "RATE/s",
            "AVG ms", "P95 ms", "ERRORS", "INFLT");
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(s, "routes");
    const cJSON *proutes = p ? cJSON_GetObjectItemCaseSensitive(p, "routes") : NULL;
    const cJSON *r;
    cJSON_ArrayForEach(r, routes)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "route");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(r, "upstream");
        const char *name = cJSON_IsString(n) ? n->valuestring : "?";
        double cnt = top__num(r, "count");
        char rate[32] = "-";
        const cJSON *pr = proutes ? top__route(proutes, name) : NULL;
        if (pr != NULL && dt > 0)
            snprintf(rate, sizeof(rate), "%.1f", (cnt - top__num(pr, "count")) / dt);
        fprintf(f, "%-28.28s %-12.12s %10.0f %9s %8.2f %8.2f %8.0f %7.0f\n",
                name[0] ? name : "(no route)", cJSON_IsString(u) ? u->valuestring : "-", cnt,
                rate, top__num(r, "avg_ms"), top__num(r, "p95_ms"), top__num(r, "errors"),
                top__num(r, "inflight"));
    }
    fprintf(f, "\n%-20s %7s %7s %10s %8s %9s %11s\n", "UPSTREAM", "IN USE", "IDLE", "CONNECTING",
            "WAITING", "CONNECTS", "WAIT P95 ms");
    const cJSON *ups = cJSON_GetObjectItemCaseSensitive(s, "upstreams");
    cJSON_ArrayForEach(r, ups)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
        fprintf(f, "%-20.20s %7.0f %7.0f %10.0f %8.0f %9.0f %11.2f\n",
                cJSON_IsString(n) ? n->valuestring : "?", top__num(r, "in_use"),
                top__num(r, "idle"), top__num(r, "connecting"), top__num(r, "waiting"),
                top__num(r, "connects"), top__num(r, "pool_wait_p95_ms"));
    }
    const cJSON *brs = cJSON_GetObjectItemCaseSensitive(s, "breakers");
    if (cJSON_GetArraySize(brs) > 0) {
        fprintf(f, "\n%-28s %-10s %9s %9s %6s\n", "BREAKER (ROUTE)", "STATE", "REQUESTS",
                "FAILURES", "OPENS");
        cJSON_ArrayForEach(r, brs)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "route");
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "state");
            fprintf(f, "%-28.28s %-10.10s %9.0f %9.0f %6.0f\n",
                    cJSON_IsString(n) ? n->valuestring : "?",
                    cJSON_IsString(st) ? st->valuestring : "?", top__num(r, "requests"),
                    top__num(r, "failures"), top__num(r, "opens"));
        }
    }
    fflush(f);
}

/* Sleeps <ms>, cut short by Ctrl-C. */
static void top__sleep(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (!top_stop && nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* One /stats document of the gateway at <hostport>, or NULL with a message in <err>. */
static cJSON *top__sample(const char *hostport, char *err, size_t n)
{
    char url[300];
    snprintf(url, sizeof(url), "http://%s/stats", hostport);
    struct httpc_resp resp;
    cJSON *j = NULL;
    if (httpc_request("GET", url, TOP_TIMEOUT_MS, "apigate-top", &resp, NULL, err, n) == 0) {
        if (resp.status != 200) {
            snprintf(err, n, "/stats answered HTTP %d", resp.status);
        } else {
            j = cJSON_ParseWithLength(buf_head(&resp.body), buf_pending(&resp.body));
            if (j == NULL || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "requests"))) {
                snprintf(err, n, "/stats is not the gateway's JSON document");
                cJSON_Delete(j);
                j = NULL;
            }
        }
    }
    httpc_resp_deinit(&resp);
    return j;
}

int top_main(int argc, char **argv)
{
    const char *admin = "127.0.0.1:9901";
    uint64_t interval_ms = 1000;
    bool once = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            top__usage(stdout);
            return 0;
        } else if (strcmp(o, "--once") == 0) {
            once = true;
        } else if ((strcmp(o, "--admin") == 0 || strcmp(o, "--interval") == 0) && i + 1 < argc) {
            if (strcmp(o, "--admin") == 0) {
                admin = argv[++i];
            } else if (units_parse_duration_ms(argv[++i], &interval_ms) == -1 ||
                       interval_ms < 100 || interval_ms > 3600000) {
                fprintf(stderr, "apigate top: --interval: '%s' is not a duration between 100ms "
                                "and 1h (e.g. 1s, 500ms)\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "apigate top: %s: %s\n", o,
                    o[0] == '-' ? "unknown option or missing value" : "unexpected argument");
            top__usage(stderr);
            return 2;
        }
    }
    if (strncmp(admin, "http://", 7) == 0) {
        admin += 7;
    } else if (strstr(admin, "://") != NULL) {
        /* Without this, "https://h:p" was read as host "https" and port "//h:p". */
        fprintf(stderr, "apigate top: --admin '%s': expected host:port or http://host:port (the "
                        "admin listener speaks plain HTTP)\n", admin);
        return 2;
    }
    char hostport[256];
    snprintf(hostport, sizeof(hostport), "%s", admin);
    hostport[strcspn(hostport, "/")] = '\0';
    struct sock_addr addr; // only to refuse a malformed --admin as a usage error
    char err[256];
    if (sock_parse_addr(hostport, &addr, err, sizeof(err)) == -1) {
        fprintf(stderr, "apigate top: --admin '%s': %s\n", admin, err);
        return 2;
    }
    struct sigaction sa = {.sa_handler = top__on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bool tty = !once && isatty(STDOUT_FILENO);
    cJSON *prev = NULL;
    uint64_t prev_ms = 0;
    int rc = 0;
    while (!top_stop) {
        cJSON *cur = top__sample(hostport, err, sizeof(err));
        uint64_t now = clock_now_ms();
        if (cur == NULL) {
            if (once) {
                fprintf(stderr, "apigate top: cannot read http://%s/stats: %s\n", hostport, err);
                rc = 1;
                break;
            }
            if (tty)
                fputs("\033[H\033[2J", stdout);
            printf("apigate top  %s  cannot read /stats: %s (retrying)\n", hostport, err);
            fflush(stdout);
        } else if (!once || prev != NULL) {
            if (tty)
                fputs("\033[H\033[2J", stdout);
            top__frame(stdout, hostport, cur, prev, prev ? (double)(now - prev_ms) / 1000.0 : 0);
            if (once) {
                cJSON_Delete(cur);
                break;
            }
            if (!tty)
                putchar('\n');
        }
        cJSON_Delete(prev);
        prev = cur;
        prev_ms = now;
        top__sleep(interval_ms);
    }
    cJSON_Delete(prev);
    return rc;
}
