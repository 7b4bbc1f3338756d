/* Gateway probe: GET <admin>/stats and read the counters doctor judges (docs/doctor.md#gateway
 * lists the fields). Each field may sit at the top level of the JSON object or inside a "summary"
 * object, so /stats can carry other sections (the metric families) next to it. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "doctor/internal.h"

/* A number named <key> at the top level or in "summary"; -1 when absent. Nested names "a.b" are
 * looked up as objects too ("cache.hits"). */
static double field(const cJSON *root, const char *key)
{
    const cJSON *scopes[2] = {root, cJSON_GetObjectItemCaseSensitive(root, "summary")};
    for (int s = 0; s < 2; s++) {
        const cJSON *o = scopes[s];
        if (!cJSON_IsObject(o))
            continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (cJSON_IsNumber(v))
            return v->valuedouble < 0 ? -1 : v->valuedouble;
    }
    return -1;
}

int probe_gateway__parse(const char *body, struct gw_facts *f)
{
    cJSON *root = cJSON_Parse(body);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1;
    }
    f->requests_total = field(root, "requests_total");
    f->responses_5xx = field(root, "responses_5xx");
    f->latency_p95_ms = field(root, "latency_p95_ms");
    f->cache_hits = field(root, "cache_hits");
    f->cache_misses = field(root, "cache_misses");
    f->shed_total = field(root, "shed_total");
    f->pool_wait_p95_ms = field(root, "pool_wait_p95_ms");
    f->breakers_open = field(root, "breakers_open");
    f->upstream_connects_total = field(root, "upstream_connects_total");
    f->worker_restarts = field(root, "worker_restarts");
    f->threads = field(root, "threads");
    cJSON_Delete(root);
    return 0;
}

int probe_gateway_run(const char *url, int timeout_ms, struct gw_facts *f,
                      struct finding_list *out)
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
    snprintf(f->where, sizeof(f->where), "%.150s", full);
    struct httpc_resp resp;
    struct httpc_timing t;
    char err[256];
    if (httpc_get(full, timeout_ms, &resp, &t, err, sizeof(err)) < 0) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "cannot reach the gateway at %s: %s", full, err);
        finding_source(fd, "GET %s", full);
        finding_fix(fd, "pass the admin address (admin: in the config), e.g. --gateway "
                        "http://127.0.0.1:9901");
        httpc_resp_deinit(&resp);
        return -1;
    }
    int rc = 0;
    if (resp.status != 200) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "%s answered %d instead of 200", full, resp.status);
        finding_source(fd, "GET %s", full);
        rc = -1;
    } else if (probe_gateway__parse(resp.body.data, f) < 0) {
        struct finding *fd = finding_add(out, "gateway", "gw-unreachable", FINDING_CRITICAL,
                                         "%s did not return a JSON object", full);
        finding_evidence(fd, "%.200s", resp.body.data);
        finding_source(fd, "GET %s", full);
        rc = -1;
    }
    httpc_resp_deinit(&resp);
    return rc;
}
