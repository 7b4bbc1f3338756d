/* Per-request tracing headers: W3C Trace Context `traceparent` (parse, validate, generate, and a
 * child span for the upstream hop) and the `Server-Timing` response header value. Pure string
 * work with no I/O and no allocation, so the request path can call it on every request. */
#ifndef AG_GATEWAY_TRACE_H
#define AG_GATEWAY_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_HEADER_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define TRACE_ID_HEX 32
#define TRACE_FLAG_SAMPLED 0x01

/* One position in a trace: the trace it belongs to, this hop's span, the trace flags. */
struct trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;
};

/* Parses a `traceparent` value (<v>, <len> bytes, surrounding blanks allowed) into <out>.
 * Follows W3C Trace Context level 1: lowercase hex only, version ff and all-zero ids are invalid,
 * a future version may carry more fields after a '-'. Returns 0, or -1 when invalid (then the
 * header must be ignored and a new trace started). */
int trace_parse(const char *v, size_t len, struct trace_ctx *out);

/* Starts a new trace in <out>: random trace id and span id, sampled flag set. Randomness comes
 * from a per-thread generator seeded from getrandom(2): no lock, no syscall per request. */
void trace_generate(struct trace_ctx *out);

/* The context to send upstream for a request that arrived with the header <v> (NULL when absent):
 * the same trace id and flags with a new span id (the gateway's hop becomes the parent of the
 * upstream's span), or a new trace when <v> is absent or invalid. Returns true when the trace
 * was continued, false when a new one was started. */
bool trace_continue(const char *v, size_t len, struct trace_ctx *out);

/* Writes "00-<trace>-<span>-<flags>" (TRACE_HEADER_LEN chars and a NUL) into <out>. Returns
 * TRACE_HEADER_LEN. */
size_t trace_format(const struct trace_ctx *t, char out[TRACE_HEADER_LEN + 1]);

/* Writes the 32 hex digits of the trace id and a NUL into <out>. */
void trace_id_hex(const struct trace_ctx *t, char out[TRACE_ID_HEX + 1]);

/* Replaces the generator state of the calling thread (tests: reproducible ids). */
void trace_seed(uint64_t seed);

/* The facts of one response for Server-Timing. A duration < 0 is left out. */
struct trace_timing {
    const char *cache;   // X-Cache outcome ("HIT", "MISS", "STALE", ...), or NULL
    int64_t pool_us;     // time waiting for an upstream connection
    int64_t upstream_us; // upstream request sent to response head received
    int64_t total_us;    // request start to response head written
};

/* Writes the value of a Server-Timing header (no name, no CRLF) into <out> of <cap> bytes, e.g.
 * `cache;desc=HIT, pool;dur=0.012, upstream;dur=12.5, total;dur=12.7` (durations in
 * milliseconds, as the header defines). Returns the length, or 0 when there is nothing to say
 * or it does not fit (then <out> holds an empty string when cap > 0). */
size_t trace_server_timing(char *out, size_t cap, const struct trace_timing *t);

#endif
