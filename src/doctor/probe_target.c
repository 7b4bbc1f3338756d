/* Target probe: <samples> sequential GETs of a URL, each on a new connection, with the time of
 * each step (DNS, connect, TLS, first byte, total) as curl -w reports them. Sequential on purpose:
 * it measures one client's experience, not throughput (that is `apigate load`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/xmalloc.h"
#include "doctor/internal.h"
#include "net/httpc.h"

/* A number, or a percentage string ("99.95%"), as a ratio; -1 otherwise. */
static double ratio_of(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return v->valuedouble > 1 ? v->valuedouble / 100.0 : v->valuedouble;
    if (cJSON_IsString(v)) {
        char *end;
        double d = strtod(v->valuestring, &end);
        if (end != v->valuestring && *end == '%')
            return d / 100.0;
    }
    return -1;
}

static double count_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : -1;
}

void probe_target__parse_cache(const char *body, struct target_facts *f)
{
    f->cache_hits = f->cache_misses = f->cache_rate = -1;
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    if (cJSON_IsObject(root)) {
        const cJSON *o = root;
        const cJSON *nested = cJSON_GetObjectItemCaseSensitive(root, "cache");
        if (count_of(o, "hits") < 0 && cJSON_IsObject(nested))
            o = nested; // {"cache": {"hits": ...}} as /stats has it
        f->cache_hits = count_of(o, "hits");
        f->cache_misses = count_of(o, "misses");
        f->cache_rate = ratio_of(cJSON_GetObjectItemCaseSensitive(o, "hitRate"));
        if (f->cache_rate < 0)
            f->cache_rate = ratio_of(cJSON_GetObjectItemCaseSensitive(o, "hit_rate"));
        if (f->cache_rate > 1)
            f->cache_rate = -1;
    }
    cJSON_Delete(root);
}

int probe_target_run(const char *url, int timeout_ms, int samples, struct target_facts *f,
                     struct finding_list *out)
{
    (void)out; // every outcome, failures included, is judged by rules_target()
    doctor__redact(url, f->url, sizeof(f->url));
    f->n = samples;
    f->samples = xcalloc((size_t)samples, sizeof(*f->samples));
    f->cache_hits = f->cache_misses = f->cache_rate = -1;
    for (int i = 0; i < samples; i++) {
        struct target_sample *s = &f->samples[i];
        struct httpc_resp resp;
        struct httpc_timing t;
        if (httpc_request("GET", url, timeout_ms, "apigate-doctor", &resp, &t, s->error,
                          sizeof(s->error)) == 0) {
            s->ok = true;
            s->status = resp.status;
            if (resp.status >= 500) {
                s->ok = false;
                snprintf(s->error, sizeof(s->error), "status %d", resp.status);
            } else if (resp.status == 200) {
                probe_target__parse_cache(resp.body.data, f); // the last answer counts
            }
        }
        s->dns_ms = t.dns_ms;
        s->connect_ms = t.connect_ms;
        s->tls_ms = t.tls_ms;
        s->ttfb_ms = t.ttfb_ms;
        s->total_ms = t.total_ms;
        httpc_resp_deinit(&resp);
    }
    return 0;
}
