/* Access log: one line per request (text or JSON lines), appended to a per-thread buffer and
 * written in batches by one logger thread, so a loop thread never blocks on the log file. */
#ifndef AG_GATEWAY_ACCESSLOG_H
#define AG_GATEWAY_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct accesslog;        // process-wide: the file and the logger thread
struct accesslog_writer; // one per loop thread

/* The facts of one request. Strings are slices (not NUL-terminated) valid during the call. */
struct accesslog_entry {
    uint64_t wall_ms;      // request start, wall clock
    const char *method;
    size_t method_len;
    const char *target;    // path and query as received
    size_t target_len;
    int status;
    uint64_t bytes;        // response bytes sent to the client (head + body)
    uint64_t total_us;     // first byte of the request to last byte of the response
    uint64_t upstream_us;  // upstream request sent to response complete; 0 when not proxied
    uint64_t pool_wait_us; // time waiting for an upstream connection
    uint64_t upstream_ttfb_us; // upstream request sent to response head; 0 when not proxied
    const char *upstream;  // "127.0.0.1:9000", or NULL
    const char *request_id;
    size_t request_id_len;
    const char *route;     // route pattern, or NULL
    const char *trace_id;  // W3C trace id (32 hex), or NULL
    size_t trace_id_len;
    uint64_t connect_us;   // upstream connect (+TLS) when this request opened one; else 0
    const char *cache;     // X-Cache outcome ("HIT", "MISS", ...), or NULL
    const char *client;    // client address ("127.0.0.1", "::1"), or NULL
    const char *host;      // Host header (or the authority of an absolute target), or NULL
    size_t host_len;
    const char *user_agent; // User-Agent header, or NULL
    size_t user_agent_len;
    int http_minor;        // protocol HTTP/1.<minor>; -1: unknown (no request line parsed)
};

/* Opens <path> for appending ("-" or "stdout", and "stderr", name the standard streams).
 * Returns NULL with a message in <err> on failure. */
struct accesslog *accesslog_create(const char *path, bool json, char *err, size_t errlen);
/* Writes everything flushed so far, stops the logger thread, closes the file. */
void accesslog_destroy(struct accesslog *log);

struct accesslog_writer *accesslog_writer_create(struct accesslog *log);
/* Hands the buffer over once it holds <bytes> (default 32 KB; 0: after every line). */
void accesslog_writer_set_batch(struct accesslog_writer *w, size_t bytes);
/* Bytes formatted but not yet handed to the logger thread (tests). */
size_t accesslog_writer_pending(const struct accesslog_writer *w);
/* Flushes what is buffered and frees the writer. */
void accesslog_writer_destroy(struct accesslog_writer *w);
/* Formats one line into the writer's buffer; hands the buffer to the logger thread when it
 * passes a batch size. Never blocks on I/O. */
void accesslog_write(struct accesslog_writer *w, const struct accesslog_entry *e);
/* Hands whatever is buffered to the logger thread (call from a timer, e.g. every 250 ms). */
void accesslog_flush(struct accesslog_writer *w);

#endif
