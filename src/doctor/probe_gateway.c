/* Gateway probe: GET <admin>/stats twice, --window apart, and judge the difference: findings are
 * about the last seconds, not about counters since start (a burst of 5xx an hour ago is history).
 * Each field is read under its flat name or its nested name ("requests.total", as `apigate serve`
 * writes it), at the top level of the JSON object or inside "summary" (docs/doctor.md#gateway
 * lists the fields). From apigate's own admin address it also reads /metrics for why upstream
 * connections were closed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "doctor/internal.h"
#include "net/httpc.h"

/* The number at <path> ("a.b" walks into objects) under <root>; -1 when absent or negative. */
static double at_path(const cJSON *root, const char *path)
{
    const cJSON *o = root;
    char key[64];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof(key), "%.*s", (int)(n < sizeof(key) ? n : sizeof(key) - 1), path);
        o = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
        path += n + (path[n] == '.');
    }
    return cJSON_IsNumber(o) && o->valuedouble >= 0 ? o->valuedouble : -1;
}

/* The first of <paths> (NULL-terminated) present at the top level or inside "summary". */
static double field(const cJSON *root, const char *const *paths)
{
    const cJSON *scopes[2] = {root, cJSON_GetObjectItemCaseSensitive(root, "summary")};
    for (int s = 0; s < 2; s++) {
        if (!cJSON_IsObject(scopes[s]))
            continue;
        for (int i = 0; paths[i]; i++) {
            double v = at_path(scopes[s], paths[i]);
            if (v >= 0)
                return v;
        }
    }
    return -1;
}

#define FIELD(root, ...) field((root), (const char *const[]){__VA_ARGS__, NULL})

/* "upstreams": [{"reuses": N}, ...] summed; -1 when there is no such array. */
static double sum_upstreams(const cJSON *root, const char *key)
{
    const cJSON *ups = cJSON_GetObjectItemCaseSensitive(root, "upstreams");
    if (!cJSON_IsArray(ups))
        return -1;
    double sum = 0;
    const cJSON *u;
    cJSON_ArrayForEach(u, ups)
    {
        double v = at_path(u, key);
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}

static void read_latency_window(const cJSON *root, struct gw_facts *f)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "latency_window");
    const cJSON *le = cJSON_GetObjectItemCaseSensitive(w, "le_ms");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(w, "counts");
    int n = cJSON_GetArraySize(le);
    if (!cJSON_IsArray(le) || !cJSON_IsArray(ct) || n != cJSON_GetArraySize(ct) || n > GW_LE_MAX)
        return;
    f->le_total = at_path(w, "count");
    if (f->le_total < 0)
        return;
    for (int i = 0; i < n; i++) {
        const cJSON *a = cJSON_GetArrayItem(le, i), *b = cJSON_GetArrayItem(ct, i);
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b))
            return;
        f->le_ms[i] = a->valuedouble;
        f->le_count[i] = b->valuedouble;
    }
    f->n_le = n;
}

/* cache.l2's view of Redis: mode, nodes, slots, failovers, and each node. */
static void read_l2_view(const cJSON *l2, struct gw_facts *f)
{
    f->l2_mode[0] = '\0';
    f->n_l2_nodes = 0;
    f->l2_errors = at_path(l2, "errors");
    f->l2_nodes_known = at_path(l2, "nodes_known");
    f->l2_nodes_connected = at_path(l2, "nodes_connected");
    f->l2_slots_covered = at_path(l2, "slots_covered");
    f->l2_failovers = at_path(l2, "failovers");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(l2, "mode");
    if (cJSON_IsString(mode))
        snprintf(f->l2_mode, sizeof(f->l2_mode), "%s", mode->valuestring);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(l2, "nodes");
    if (!cJSON_IsArray(nodes))
        return;
    const cJSON *n;
    cJSON_ArrayForEach(n, nodes)
    {
        if (f->n_l2_nodes == GW_L2_NODES)
            break;
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(n, "addr");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(n, "role");
        if (!cJSON_IsString(addr))
            continue;
        struct gw_l2_node *g = &f->l2_nodes[f->n_l2_nodes++];
        snprintf(g->addr, sizeof(g->addr), "%s", addr->valuestring);
        snprintf(g->role, sizeof(g->role), "%s", cJSON_IsString(role) ? role->valuestring : "");
        g->connected = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "connected"));
        g->slots = at_path(n, "slots");
        g->errors = at_path(n, "errors");
    }
}

int probe_gateway__parse(const char *body, struct gw_facts *f)
{
    memset(f->le_ms, 0, sizeof(f->le_ms));
    f->n_le = 0;
    f->le_total = -1;
    f->window_s = 0;
    f->reset = false;
    f->latency_windowed = false;
    cJSON *root = cJSON_Parse(body);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1;
    }
    /* Flat names first (docs/doctor.md#gateway), then the nested form `apigate serve` writes;
     * bare hits/misses are the /metrics/cache shape. */
    f->requests_total = FIELD(root, "requests_total", "requests.total");
    f->responses_5xx = FIELD(root, "responses_5xx", "requests.5xx");
    f->latency_p95_ms = FIELD(root, "latency_p95_ms", "latency_ms.p95");
    f->cache_hits = FIELD(root, "cache_hits", "cache.hits", "hits");
    f->cache_misses = FIELD(root, "cache_misses", "cache.misses", "misses");
    f->cache_stale = FIELD(root, "cache_stale", "cache.stale");
    f->cache_expired = FIELD(root, "cache_expired", "cache.expired");
    f->cache_bypass = FIELD(root, "cache_bypass", "cache.bypass");
    f->cache_not_stored = FIELD(root, "cache_not_stored", "cache.not_stored");
    f->cache_stores = FIELD(root, "cache_stores", "cache.stores");
    f->l2_hits = FIELD(root, "cache_l2_hits", "cache.l2.hits");
    f->l2_misses = FIELD(root, "cache_l2_misses", "cache.l2.misses");
    const cJSON *cache = cJSON_GetObjectItemCaseSensitive(root, "cache");
    const cJSON *l2 = cJSON_IsObject(cache) ? cJSON_GetObjectItemCaseSensitive(cache, "l2") : NULL;
    f->l2_enabled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l2, "enabled"));
    read_l2_view(l2, f);
    f->shed_total = FIELD(root, "shed_total", "shed");
    f->pool_wait_p95_ms = FIELD(root, "pool_wait_p95_ms", "pool.wait_p95_ms");
    f->breakers_open = FIELD(root, "breakers_open");
    f->upstream_connects_total = FIELD(root, "upstream_connects_total", "pool.connects");
    f->upstream_reuses = FIELD(root, "upstream_reuses");
    if (f->upstream_reuses < 0)
        f->upstream_reuses = sum_upstreams(root, "reuses");
    f->closed_not_reusable = f->closed_upstream_closed = -1;
    f->worker_restarts = FIELD(root, "worker_restarts");
    f->worker_crashes = FIELD(root, "worker_crashes");
    f->worker_recycles = FIELD(root, "worker_recycles");
    f->threads = FIELD(root, "threads", "workers.threads");
    read_latency_window(root, f);
    f->life_requests = f->requests_total;
    f->life_5xx = f->responses_5xx;
    f->life_crashes = f->worker_crashes;
    f->life_recycles = f->worker_recycles;
    cJSON_Delete(root);
    return 0;
}

void probe_gateway__parse_metrics(const char *text, struct gw_facts *f)
{
    static const char fam[] = "apigate_pool_closed_total{";
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, fam, sizeof(fam) - 1) != 0)
            continue;
        const char *end = strchr(p, '}');
        const char *eol = strchr(p, '\n');
        if (end == NULL || (eol && end > eol))
            continue;
        double v = strtod(end + 1, NULL);
        double *dst = NULL;
        const char *r = strstr(p, "reason=\"");
        if (r && r < end) {
            r += 8;
            if (strncmp(r, "not_reusable\"", 13) == 0)
                dst = &f->closed_not_reusable;
            else if (strncmp(r, "upstream_closed\"", 16) == 0)
                dst = &f->closed_upstream_closed;
        }
        if (dst) {
            if (*dst < 0)
                *dst = 0;
            *dst += v;
        }
    }
}

/* b - a for a counter, or b alone when the counter went down (it restarted in between). */
static double diff(double a, double b, bool reset)
{
    if (a < 0 || b < 0)
        return b < 0 ? -1 : (reset ? b : -1);
    return reset || b < a ? b : b - a;
}

/* p95 of the requests between two cumulative histograms, interpolated inside its bucket (as
 * Prometheus' histogram_quantile); -1 without requests. */
static double window_p95(const struct gw_facts *a, const struct gw_facts *b, bool reset)
{
    double total = reset ? b->le_total : b->le_total - a->le_total;
    if (total <= 0)
        return -1;
    double want = 0.95 * total, prev_le = 0, prev_n = 0;
    for (int i = 0; i < b->n_le; i++) {
        double n = reset ? b->le_count[i] : b->le_count[i] - a->le_count[i];
        if (n >= want) {
            double in = n - prev_n;
            return in > 0 ? prev_le + (b->le_ms[i] - prev_le) * (want - prev_n) / in : b->le_ms[i];
        }
        prev_le = b->le_ms[i];
        prev_n = n;
    }
    return b->n_le > 0 ? b->le_ms[b->n_le - 1] : -1; // beyond the last bound
}

void probe_gateway__window(const struct gw_facts *a, const struct gw_facts *b, double window_s,
                           struct gw_facts *w)
{
    *w = *b;
    w->window_s = window_s;
    w->reset =
        a->requests_total >= 0 && b->requests_total >= 0 && b->requests_total < a->requests_total;
    bool r = w->reset;
    w->requests_total = diff(a->requests_total, b->requests_total, r);
    w->responses_5xx = diff(a->responses_5xx, b->responses_5xx, r);
    w->cache_hits = diff(a->cache_hits, b->cache_hits, r);
    w->cache_misses = diff(a->cache_misses, b->cache_misses, r);
    w->cache_stale = diff(a->cache_stale, b->cache_stale, r);
    w->cache_expired = diff(a->cache_expired, b->cache_expired, r);
    w->cache_bypass = diff(a->cache_bypass, b->cache_bypass, r);
    w->cache_not_stored = diff(a->cache_not_stored, b->cache_not_stored, r);
    w->cache_stores = diff(a->cache_stores, b->cache_stores, r);
    w->l2_hits = diff(a->l2_hits, b->l2_hits, r);
    w->l2_misses = diff(a->l2_misses, b->l2_misses, r);
    w->l2_errors = diff(a->l2_errors, b->l2_errors, r);
    w->l2_failovers = diff(a->l2_failovers, b->l2_failovers, r);
    for (int i = 0; i < w->n_l2_nodes; i++) { // a node new in <b> counts from 0
        double before = 0;
        for (int j = 0; j < a->n_l2_nodes; j++)
            if (strcmp(a->l2_nodes[j].addr, w->l2_nodes[i].addr) == 0)
                before = a->l2_nodes[j].errors;
        w->l2_nodes[i].errors = diff(before, b->l2_nodes[i].errors, r);
    }
    w->shed_total = diff(a->shed_total, b->shed_total, r);
    w->upstream_connects_total = diff(a->upstream_connects_total, b->upstream_connects_total, r);
    w->upstream_reuses = diff(a->upstream_reuses, b->upstream_reuses, r);
    w->closed_not_reusable = diff(a->closed_not_reusable, b->closed_not_reusable, r);
    w->closed_upstream_closed = diff(a->closed_upstream_closed, b->closed_upstream_closed, r);
    /* The supervisor's counters survive a new worker: a plain difference. */
    w->worker_restarts = diff(a->worker_restarts, b->worker_restarts, false);
    w->worker_crashes = diff(a->worker_crashes, b->worker_crashes, false);
    w->worker_recycles = diff(a->worker_recycles, b->worker_recycles, false);
    if (b->n_le > 0 && (r || a->n_le == b->n_le)) {
        w->latency_p95_ms = window_p95(a, b, r);
        w->latency_windowed = true;
    }
}

/* GET <url> into <resp>; 0, or -1 with a gw-unreachable finding. */
static int fetch(const char *url, const char *where, int timeout_ms, struct httpc_resp *resp,
                 struct finding_list *out)
{
    struct httpc_timing t;
    char err[256];
    if (httpc_request("GET", url, timeout_ms, "apigate-doctor", resp, &t, err, sizeof(err)) < 0) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "cannot reach the gateway at %s: %s", where, err);
        finding_source(fd, "GET %s", where);
        finding_fix(fd, "pass the admin address (admin: in the config), e.g. --gateway "
                        "http://127.0.0.1:9901");
        return -1;
    }
    return 0;
}

/* One sample: /stats (and /metrics when <metrics> is not NULL). */
static int sample(const char *url, const char *metrics, const char *where, int timeout_ms,
                  struct gw_facts *f, struct finding_list *out)
{
    struct httpc_resp resp;
    if (fetch(url, where, timeout_ms, &resp, out) < 0) {
        httpc_resp_deinit(&resp);
        return -1;
    }
    int rc = 0;
    if (resp.status != 200) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "%s answered %d instead of 200", where, resp.status);
        finding_source(fd, "GET %s", where);
        rc = -1;
    } else if (probe_gateway__parse(resp.body.data, f) < 0) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "%s did not return a JSON object", where);
        finding_evidence(fd, "%.200s", resp.body.data);
        finding_source(fd, "GET %s", where);
        rc = -1;
    }
    httpc_resp_deinit(&resp);
    if (rc == 0 && metrics != NULL) {
        struct httpc_timing t;
        char err[256];
        if (httpc_request("GET", metrics, timeout_ms, "apigate-doctor", &resp, &t, err,
                          sizeof(err)) == 0 &&
            resp.status == 200 && resp.body.data != NULL)
            probe_gateway__parse_metrics(resp.body.data, f);
        httpc_resp_deinit(&resp);
    }
    return rc;
}

int probe_gateway_run(const char *url, int timeout_ms, int window_ms, struct gw_facts *f,
                      struct finding_list *out)
{
    /* The admin base address gets /stats (and /metrics); a URL that already names a path is
     * used as given. */
    char full[1024], metrics[1024];
    const char *rest = strstr(url, "://");
    const char *path = rest ? strchr(rest + 3, '/') : NULL;
    bool base = path == NULL || strcmp(path, "/") == 0;
    int hostlen = (int)(path ? (size_t)(path - url) : strlen(url));
    if (base) {
        snprintf(full, sizeof(full), "%.*s/stats", hostlen, url);
        snprintf(metrics, sizeof(metrics), "%.*s/metrics", hostlen, url);
    } else {
        snprintf(full, sizeof(full), "%s", url);
    }
    char safe[512];
    doctor__redact(full, safe, sizeof(safe));
    snprintf(f->where, sizeof(f->where), "%.150s", safe);
    struct gw_facts a = *f;
    if (sample(full, base ? metrics : NULL, f->where, timeout_ms, &a, out) < 0)
        return -1;
    if (window_ms <= 0) {
        *f = a;
        return 0;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct timespec d = {window_ms / 1000, (long)(window_ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0)
        ;
    struct gw_facts b = *f;
    if (sample(full, base ? metrics : NULL, f->where, timeout_ms, &b, out) < 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    probe_gateway__window(&a, &b, s, f);
    return 0;
}
