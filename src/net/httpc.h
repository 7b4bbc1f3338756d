/* A blocking HTTP/1.1 client for tools (doctor samples and /stats, top, the demo's admin calls):
 * one request per connection, every step bounded with poll(), the time of each step recorded like
 * curl -w. http and https (through net/tls.c, certificates verified). Not for hot paths: the
 * gateway and the load generator use the event loop. */
#ifndef AG_NET_HTTPC_H
#define AG_NET_HTTPC_H

#include <stddef.h>

#include "core/buf.h"

struct httpc_timing {
    double dns_ms, connect_ms, tls_ms, ttfb_ms, total_ms; /* from the start, as curl -w */
};

struct httpc_resp {
    int status;
    struct buf body; /* decoded (chunked removed), NUL-terminated past len */
};

/* Sends <method> <url> with no body on a new connection (Connection: close), each step (connect,
 * TLS, request and response) bounded by <timeout_ms>; <agent> is the User-Agent. <t> may be NULL.
 * Returns 0 with <resp> filled, any status (free with httpc_resp_deinit, also after -1), or -1
 * with a reason for people in <err>. */
int httpc_request(const char *method, const char *url, int timeout_ms, const char *agent,
                  struct httpc_resp *resp, struct httpc_timing *t, char *err, size_t errlen);
void httpc_resp_deinit(struct httpc_resp *r);

#endif
