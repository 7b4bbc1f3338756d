/* Gateway probe: GET <admin>/stats and read the counters doctor judges (docs/doctor.md#gateway
 * lists the fields). Each field is read under its flat name or its nested name ("requests.total",
 * as `apigate serve` writes it), at the top level of the JSON object or inside "summary". */
#include <stdio.h>
#include <string.h>

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

int probe_gateway__parse(const char *body, struct gw_facts *f)
{
    cJSON *root = cJSON_Parse(body);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1;
    }
    /* Flat names first (docs/doctor.md#gateway), then the nested form `apigate serve` writes. */
    f->requests_total = FIELD(root, "requests_total", "requests.total");
    f->responses_5xx = FIELD(root, "responses_5xx", "requests.5xx");
    f->latency_p95_ms = FIELD(root, "latency_p95_ms", "latency_ms.p95");
    f->cache_hits = FIELD(root, "cache_hits", "cache.hits");
    f->cache_misses = FIELD(root, "cache_misses", "cache.misses");
    f->shed_total = FIELD(root, "shed_total", "shed");
    f->pool_wait_p95_ms = FIELD(root, "pool_wait_p95_ms", "pool.wait_p95_ms");
    f->breakers_open = FIELD(root, "breakers_open");
    f->upstream_connects_total = FIELD(root, "upstream_connects_total", "pool.connects");
    f->worker_restarts = FIELD(root, "worker_restarts");
    f->threads = FIELD(root, "threads", "workers.threads");
    cJSON_Delete(root);
    return 0;
}

int probe_gateway_run(const char *url, int timeout_ms, struct gw_facts *f, struct finding_list *out)
{
    /* The admin base address gets /stats; a URL that already names a path is used as given. */
    char full[1024];
    const char *rest = strstr(url, "://");
    const char *path = rest ? strchr(rest + 3, '/') : NULL;
    if (path == NULL || strcmp(path, "/") == 0)
        snprintf(full, sizeof(full), "%.*s/stats", (int)(path ? (size_t)(path - url) : strlen(url)),
                 url);
    else
        snprintf(full, sizeof(full), "%s", url);
    char safe[512];
    doctor__redact(full, safe, sizeof(safe));
    snprintf(f->where, sizeof(f->where), "%.150s", safe);
    struct httpc_resp resp;
    struct httpc_timing t;
    char err[256];
    if (httpc_request("GET", full, timeout_ms, "apigate-doctor", &resp, &t, err, sizeof(err)) < 0) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "cannot reach the gateway at %s: %s", f->where, err);
        finding_source(fd, "GET %s", f->where);
        finding_fix(fd, "pass the admin address (admin: in the config), e.g. --gateway "
                        "http://127.0.0.1:9901");
        httpc_resp_deinit(&resp);
        return -1;
    }
    int rc = 0;
    if (resp.status != 200) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "%s answered %d instead of 200", f->where, resp.status);
        finding_source(fd, "GET %s", f->where);
        rc = -1;
    } else if (probe_gateway__parse(resp.body.data, f) < 0) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "%s did not return a JSON object", f->where);
        finding_evidence(fd, "%.200s", resp.body.data);
        finding_source(fd, "GET %s", f->where);
        rc = -1;
    }
    httpc_resp_deinit(&resp);
    return rc;
}
