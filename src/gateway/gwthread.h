/* The context every loop thread of a worker runs in: what the threads share (config, routes,
 * upstreams, metrics ids, filters' worker-wide state) and what one thread owns (loop, pools, the
 * blocks it lends to requests, the Date header, counters). No connection and no request here:
 * the client session (conn.h) and the request layer (req.h) both sit on top of this. */
#ifndef AG_GATEWAY_GWTHREAD_H
#define AG_GATEWAY_GWTHREAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/loop.h"
#include "gateway/filter.h"
#include "http/date.h"
#include "metrics/metrics.h"

struct accesslog;
struct accesslog_writer;
struct cachehook;
struct conn;
struct h2sess;
struct tunnel;
struct gw_config;
struct resil;
struct ratelimit;
struct route_table;
struct statring;
struct upool;
struct upstream_set;
struct worker_shm;

#define WORKER_LISTEN_MAX 16     /* listen addresses per loop thread */
#define CONN_BUF_HIGH (256u * 1024u) /* pending output above this pauses the producing side */
/* Size of the blocks a thread lends to its connections and requests for the duration of a
 * request (read buffer, output, request and response header arrays, upstream buffers): an idle
 * keep-alive connection holds none of them, so it costs little more than its struct. */
#define CONN_BLOCK (16u * 1024u)
#define CONN_BLOCKS_KEPT 256u     /* free blocks a thread keeps for reuse (4 MB) */

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
    metrics_ref tls_full, tls_resumed, tls_failed, tls_plain_http; // apigate_tls_handshakes_total
    metrics_ref h2_sessions, h2_streams;           // apigate_http2_{sessions,streams}_total
    metrics_ref h2_calm, h2_proto, h2_hdr_limit;   // apigate_http2_refused_total{reason}
    metrics_ref h2_flood_ctl, h2_flood_settings, h2_flood_cont; // ... floods, same family
    metrics_ref h2_max_streams;                   // ... streams over max_concurrent_streams
    metrics_ref h2_to_idle, h2_to_send, h2_to_window, h2_to_body; // apigate_http2_timeouts_total
    metrics_ref tunnels_open;     // apigate_tunnels_open
    metrics_ref tunnels_total;    // apigate_tunnels_total
    metrics_ref busy_poll_event;  // apigate_loop_busy_polls_total{result="event"}
    metrics_ref busy_poll_sleep;  // apigate_loop_busy_polls_total{result="sleep"}
    metrics_ref busy_poll_time;   // apigate_loop_busy_poll_seconds_total (kept in µs)
    metrics_ref tunnel_bytes_up, tunnel_bytes_down; // apigate_tunnel_bytes_total{direction}
    metrics_ref tunnel_buffered;  // apigate_tunnel_buffered_bytes
    metrics_ref tunnel_end[5];    // apigate_tunnels_closed_total{reason} (tunnel.c's order)
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
    struct filter_chain chain;      // the route's filters, in request order (filter.c)
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
    struct cachehook *cache;        // response cache (the cache filter); NULL: no route caches
    struct resil *resil;            // breakers, retries, adaptive limits (the resil filter)
    struct ratelimit *ratelimit;    // per-route rate limits (ratelimit.c); NULL: none
    struct tls_server **tls;        // per cfg listen address: its TLS context, NULL for plain
    struct statring *ring;          // /stats/history (statring.c), ticked by the admin thread
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
    struct gw_req *free_reqs;    // free list of request objects (conn.c lends one per request)
    size_t nfree_reqs;
    struct conn *active;         // doubly linked list of open conns
    struct h2sess *h2_active;    // open HTTP/2 sessions (h2sess.c), counted in <nconns> too
    void *h2_free_streams;       // free list of HTTP/2 stream objects (h2sess.c)
    size_t h2_nfree_streams;
    size_t h2_streams;           // open HTTP/2 streams (each holds a request object and blocks)
    size_t h2_streams_hw;        // most open streams since the last trim tick: a session's
                                 // streams end in batches, so the free lists keep that many
    struct tunnel *tunnels;      // open Upgrade tunnels (tunnel.c), counted in <nconns> too
    size_t nconns;
    struct loop_timer tick;      // 250 ms: heartbeat, request counter
    struct loop_timer alog_timer; // logging.access_flush
    uint64_t requests;           // completed on this thread
    uint64_t requests_published; // part of <requests> already added to the shm
    struct loop_poll_stats polls_published; // the loop's busy-poll counters already counted
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

/* Current Date header value of the thread (formatted at most once per second). */
const char *gwthread_date(struct gwthread *th);
/* A CONN_BLOCK-byte block from the thread's free list (malloc only when it is empty), and back
 * (NULL is ignored). */
void *gwthread_block_take(struct gwthread *th);
void gwthread_block_give(struct gwthread *th, void *block);
/* Frees every block of the thread's free list (thread stop). */
void gwthread_blocks_free(struct gwthread *th);
/* Frees free-list blocks above <keep>. Returns the bytes freed. */
size_t gwthread_blocks_trim(struct gwthread *th, size_t keep);
/* Gives the empty, unallocated <b> a block as its storage (no-op when <b> has storage). */
void gwthread_buf_take(struct gwthread *th, struct buf *b);
/* Empties <b> and hands its storage back: to the free list when it is still a block, else to
 * free() (a buffer that grew). */
void gwthread_buf_give(struct gwthread *th, struct buf *b);
/* Records a finished request in the thread's counters (max_requests recycling). */
void gwthread_count_request(struct gwthread *th);
/* (route, method, status) -> the request duration series, cached per thread. */
metrics_ref gwthread_duration_series(struct gwthread *th, int route, int method, int status);

#endif
