/* Downstream (client) connection of the gateway and the per-thread context it lives in. Private
 * to the worker's request path (worker.c, conn.c, proxy.c, admin.c): the structs are published
 * here only because those files share them. */
#ifndef AG_GATEWAY_CONN_H
#define AG_GATEWAY_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/loop.h"
#include "gateway/resil.h"
#include "gateway/upool.h"
#include "http/chunked.h"
#include "http/date.h"
#include "http/h1parse.h"
#include "metrics/metrics.h"

struct accesslog;
struct accesslog_writer;
struct cachehook;
struct chreq;
struct gw_config;
struct route_table;
struct upstream_set;
struct worker_shm;

#define CONN_MAGIC 0x636f6e6eu   /* "conn" */
#define WORKER_LISTEN_MAX 16     /* listen addresses per loop thread */
#define CONN_BUF_HIGH (256u * 1024u) /* pending output above this pauses the producing side */
/* Size of the blocks a thread lends to its connections for the duration of a request (read
 * buffer, output, request and response header arrays, upstream buffers): an idle keep-alive
 * connection holds none of them, so it costs little more than its struct. */
#define CONN_BLOCK (16u * 1024u)
#define CONN_BLOCKS_KEPT 256u     /* free blocks a thread keeps for reuse (4 MB) */
#define PX_RES_HEADERS_MAX 512    /* most server.max_response_headers: a block of h1_headers */

/* Metric ids shared by every thread (registered once at worker start). */
struct gw_metric_ids {
    int req_duration;     // http_server_request_duration_seconds{http_route,method,status}
    int requests;         // apigate_requests_total{route,status_class}
    int route_duration;   // apigate_route_request_duration_seconds{route}
    int ttfb;             // apigate_time_to_first_byte_seconds{route}
    int pool_wait;        // apigate_pool_wait_seconds{upstream}
    int shed;             // apigate_shed_requests_total{route,reason}
    int upstream_errors;  // apigate_upstream_errors_total{route,reason}
    metrics_ref conns_open;       // apigate_connections_open
    metrics_ref conns_accepted;   // apigate_connections_accepted_total
    metrics_ref conns_rejected;   // apigate_connections_rejected_total (max_connections)
    metrics_ref worker_restarts;  // apigate_worker_restarts_total (from the shm, on scrape)
    metrics_ref uptime;           // apigate_uptime_seconds (on scrape)
    metrics_ref build_info;       // apigate_build_info{version} 1
    metrics_ref shed_global;      // apigate_shed_requests_total{route="",reason="global_limit"}
};

/* Per route, precomputed at worker start. */
struct gw_route_rt {
    const char *label;              // route pattern as written: the label value
    metrics_ref route_duration;
    metrics_ref ttfb;
    metrics_ref shed;               // reason="route_limit"
    metrics_ref status_class[6];    // requests_total by 1xx..5xx (index 1..5), [0] other
    metrics_ref err_timeout, err_connect, err_pool, err_proto;
    metrics_ref pool_wait;          // of the route's upstream
    _Atomic int64_t inflight;       // requests in flight on the route (all threads)
};

/* What every thread of the worker shares: read-only after start, except atomics. */
struct gw_shared {
    const struct gw_config *cfg;
    struct route_table *routes;
    struct gw_route_rt *rt;         // one per cfg route, plus [nroutes]: unmatched
    struct upstream_set *upstreams;
    struct metrics *metrics;
    struct gw_metric_ids ids;
    struct accesslog *alog;         // NULL: access log off
    struct worker_shm *shm;
    uint64_t max_requests;
    uint64_t start_ms;              // monotonic start of this worker
    _Atomic int64_t inflight;       // requests in flight (the global concurrency limit)
    _Atomic int64_t conns;          // open client connections (max_connections)
    _Atomic bool draining;
    struct gwthread **threads;
    size_t nthreads;
    struct cachehook *cache;        // response cache (cachehook.c); NULL: no route caches
    struct resil *resil;            // breakers, retries, adaptive limits (resil.c)
};

/* Per-thread cache of (route, method, status) -> histogram series, so the hot path never takes
 * the registry lock after warm-up. */
#define GW_SERIES_CACHE 512
struct gw_series_slot {
    uint32_t key; // route << 16 | method << 10 | status, 0 = empty
    metrics_ref ref;
};

/* One loop thread. */
struct gwthread {
    unsigned index;
    struct loop *loop;
    struct gw_shared *sh;
    int listen_fds[WORKER_LISTEN_MAX]; // one per listen address; -1 once draining
    size_t nlisten_fds;
    size_t tick_slots[WORKER_LISTEN_MAX]; // shm->ticks indexes this thread reports to
    struct metrics_slot *ms;
    struct accesslog_writer *alog;
    struct upool **pools;        // one per upstream
    size_t npools;
    struct conn *free_conns;     // free list of conn objects
    size_t nfree;
    void *free_blocks;           // free list of CONN_BLOCK blocks (next pointer in the block)
    size_t nfree_blocks;
    size_t parked_bytes;         // partial request heads held by this thread's conns (conn.c)
    size_t trimmed_bytes;        // given back to malloc since the last malloc_trim
    size_t peak_conns;           // most open conns since the last malloc_trim
    size_t tick_conns;           // open conns at the last conn_trim
    bool trim_due;               // a malloc_trim waits for the closes to end
    struct conn *active;         // doubly linked list of open conns
    size_t nconns;
    struct loop_timer tick;      // 250 ms: heartbeat, request counter
    struct loop_timer alog_timer; // logging.access_flush
    uint64_t requests;           // completed on this thread
    uint64_t requests_published; // part of <requests> already added to the shm
    uint64_t rid_seed;
    uint64_t rid_counter;
    int64_t date_sec;
    char date[HTTP_DATE_LEN + 1];
    struct gw_series_slot series[GW_SERIES_CACHE];
    struct buf scratch;          // error bodies and other short-lived text, reused
    bool draining;
    uint64_t drain_deadline_ms;
    uint64_t drain_idle_until_ms; // idle kept-alive connections are read until then (worker.c)
    struct loop_timer drain_timer;
};

/* Where the response body comes from / how it is framed to the client. */
enum px_out {
    PX_OUT_NONE = 0,  // no body
    PX_OUT_LENGTH,    // Content-Length: bytes passed through
    PX_OUT_CHUNKED,   // upstream chunked or until-close, re-framed as chunked
    PX_OUT_RAW_CLOSE, // HTTP/1.0 client: decoded bytes, then close
};

enum px_state {
    PX_IDLE = 0,
    PX_WAIT_CONN,  // queued in the pool or connecting
    PX_EXCHANGE,   // request being sent and/or response being received
    PX_DONE,
};

/* The upstream side of one request (embedded in the conn: one exchange at a time). */
struct proxy {
    enum px_state state;
    struct upool *pool;
    struct uconn *uc;
    struct upool_waiter waiter;
    struct loop_timer timer;   // first byte / total deadline
    uint64_t total_deadline_ms;
    uint64_t first_byte_deadline_ms;
    struct buf head;           // request head for the upstream (kept whole for a retry)
    size_t head_sent;
    struct buf uout;           // request body bytes (re-framed chunks) waiting for the upstream
    struct buf uin;            // response bytes from the upstream
    struct buf trail;          // the response's trailer section, filtered before it goes out
    // request body
    enum h1_body req_body;
    uint64_t req_remaining;    // Content-Length bytes still to forward
    struct h1_chunked req_chunk;
    bool req_done;             // whole request (head + body) handed to the upstream socket
    bool req_body_read;        // whole request body read from the client
    // response
    struct h1_response res;
    struct h1_header *res_hdrs; // PX_RES_HEADERS_MAX entries, a thread block lent per request
    bool head_done;            // response head parsed and sent on
    bool got_bytes;            // any response byte arrived
    enum h1_body res_body;
    enum px_out out;
    uint64_t res_remaining;
    struct h1_chunked res_chunk;
    bool res_done;
    bool up_readable;          // edge-triggered readiness memory
    bool up_hup;               // LOOP_HUP seen: the upstream closed, its EOF needs no new edge
    bool up_writable;
    bool retried;
    uint64_t t_sent_us;        // request head first written
    uint64_t t_first_byte_us;
    uint64_t pool_wait_us;
    uint64_t connect_us;       // connect time of a new upstream connection; 0 when reused
    const char *server;        // upstream address label
};

enum conn_state {
    CONN_HEAD = 0,  // waiting for / reading a request head (idle keep-alive included)
    CONN_BUSY,      // a request is being answered
    CONN_CLOSING,   // flushing the last bytes, then close
    CONN_CLOSED,    // closed, waiting for the deferred free
};

struct conn {
    unsigned magic;
    int fd;
    enum conn_state state;
    struct gwthread *th;
    struct conn *next, *prev;   // thread's active list, or free list (next only)
    char client_ip[48];
    struct buf in;              // client bytes: request heads and bodies
    size_t in_parked;           // >0: <in> is a right-sized copy of a partial head (its size)
    struct buf out;             // bytes for the client (heads, error bodies, copied body data)
    struct arena arena;         // per-request copies too long for <strs>, reset per request
    char *strs;                 // per-request copies (log fields): a block lent per request
    size_t strs_used;
    struct loop_timer timer;    // header / idle / body / send timeouts
    uint64_t timer_kind;        // which timeout is armed
    bool readable, writable;    // edge-triggered readiness memory
    bool read_eof;
    bool peer_hup;              // LOOP_HUP seen: the client closed its side (read on to the EOF)
    bool keep_alive;            // the connection stays open after this response
    bool sent_continue;
    uint64_t requests;          // requests served on this connection
    uint64_t accept_ms;         // loop time of the accept
    // current request
    struct h1_request req;
    struct h1_header *hdrs;     // cfg max_headers entries, lent per request (NULL when idle)
    size_t max_hdrs;
    int route;                  // index or -1
    bool admitted_route, admitted_global;
    const char *method;         // copies in the arena, for the log (valid until the reset)
    size_t method_len;
    const char *target;
    size_t target_len;
    const char *log_host;       // Host and User-Agent copies for the access log (only when on)
    size_t log_host_len;
    const char *log_ua;
    size_t log_ua_len;
    int log_minor;              // HTTP/1.<minor> of the request; -1 before a request line
    char rid[64];
    size_t rid_len;
    char traceparent[56];       // W3C traceparent sent upstream (trace.c); chars 3..34: trace id
    uint64_t t_start_us;        // first byte of the request
    uint64_t wall_ms;
    int status;                 // status sent to the client
    bool head_sent;             // the response head went out (no error page possible any more)
    uint64_t bytes_out;
    bool counted;               // request finished and recorded
    struct chreq *creq;         // cache state of the current request (cachehook.c), or NULL
    const char *cache_served;   // X-Cache word when the cache answered from memory (access log)
    struct resil_req rs;        // breaker ticket, retries, adaptive slot (resil.c)
    struct proxy px;
};

/* ---- conn.c ---- */
/* Takes over an accepted socket (non-blocking). */
void conn_accept(struct gwthread *th, int fd, const char *ip);
/* Closes <c> (deferred free). Safe from inside its own callbacks. */
void conn_close(struct conn *c);
/* Frees every conn object of the thread's free list. */
void conn_free_all(struct gwthread *th);
/* Appends bytes to the client output and tries to write them (with an optional zero-copy
 * <slice> after them: what the socket does not take is copied). Returns 0, or -1 when the
 * client is gone (the conn is then closing). */
int conn_send(struct conn *c, const char *slice, size_t slice_len);
/* A complete local response (error pages, shed), JSON body. Ends the request. */
void conn_respond_error(struct conn *c, int status, const char *code, const char *msg,
                        const char *extra_headers);
/* Called by the proxy when the response has been completely handed to conn->out. */
void conn_request_done(struct conn *c);
/* The proxy consumed client bytes / wants more body: resume reading the client. */
void conn_resume_read(struct conn *c);
/* Current Date header value of the thread (formatted at most once per second). */
const char *conn_date(struct gwthread *th);
/* Closes idle keep-alive connections (drain). */
void conn_close_idle(struct gwthread *th);
/* worker tick: frees the thread's spare conn structs and blocks above what its open connections
 * need, and asks malloc to give freed memory back to the system once enough was freed (after a
 * burst of connections, such as a slowloris attack, the RSS comes back). */
void conn_trim(struct gwthread *th);
/* A CONN_BLOCK-byte block from the thread's free list (malloc only when it is empty), and back. */
void *conn_block_take(struct gwthread *th);
void conn_block_give(struct gwthread *th, void *block);
/* Gives the empty, unallocated <b> a block as its storage (no-op when <b> has storage). */
void conn_buf_take(struct gwthread *th, struct buf *b);
/* Empties <b> and hands its storage back: to the free list when it is still a block, else to
 * free() (a buffer that grew). */
void conn_buf_give(struct gwthread *th, struct buf *b);

/* ---- proxy.c ---- */
/* Starts forwarding the parsed request of <c> (head in c->req, body bytes in c->in) to the
 * upstream of its route. */
void proxy_start(struct conn *c);
/* The client sent more body bytes (they are in c->in): forward what fits. */
void proxy_on_client_data(struct conn *c);
/* The client output drained below the high mark: resume reading the upstream. */
void proxy_on_client_drained(struct conn *c);
/* Aborts the exchange (client gone or conn closing): cancels the wait, closes the upstream
 * connection when mid-exchange. */
void proxy_abort(struct conn *c);
/* resil.c: restarts the exchange for a retry. <now> false: drops the failed attempt (the
 * connection is closed, the total deadline stays armed) and waits; true: acquires a connection
 * again (after the backoff). Only for requests without a body. */
void proxy_retry(struct conn *c, bool now);
void proxy_init(struct proxy *px);
void proxy_deinit(struct proxy *px);
/* True for a request header never forwarded as received: hop-by-hop, framing, the ones we set
 * (Host, X-Request-Id, traceparent, X-Forwarded-*), and the client's Forwarded. Every request
 * sent upstream for a client (proxy, cache background refresh) filters with it. */
bool proxy_skip_request_header(const char *name, size_t len);
/* Appends X-Forwarded-For (<req>'s earlier hops, then <client_ip>), X-Forwarded-Proto,
 * X-Forwarded-Host (when <req> has a host) and Via. */
void proxy_write_forwarded(struct buf *b, const struct h1_request *req, const char *client_ip);

/* ---- worker.c ---- */
/* Records a finished request in the thread's counters (max_requests recycling). */
void worker_count_request(struct gwthread *th);
/* (route, method, status) -> the request duration series, cached per thread. */
metrics_ref worker_duration_series(struct gwthread *th, int route, int method, int status);

#endif
