/* Target probe: <samples> sequential GETs of a URL, each on a new connection, with the time of
 * each step (DNS, connect, TLS, first byte, total) as curl -w reports them. Sequential on purpose:
 * it measures one client's experience, not throughput (that is `apigate load`). */
#include <stdio.h>
#include <string.h>

#include "core/xmalloc.h"
#include "doctor/internal.h"
#include "net/httpc.h"

int probe_target_run(const char *url, int timeout_ms, int samples, struct target_facts *f,
                     struct finding_list *out)
{
    (void)out; // every outcome, failures included, is judged by rules_target()
    doctor__redact(url, f->url, sizeof(f->url));
    f->n = samples;
    f->samples = xcalloc((size_t)samples, sizeof(*f->samples));
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
