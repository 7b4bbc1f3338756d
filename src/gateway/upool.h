/* Keep-alive connection pool of one loop thread for one upstream: per server, an idle list (LIFO,
 * idle_timeout, max_idle) and a cap on open connections (pool.max_connections per server per
 * thread); requests that find every allowed connection busy wait in a FIFO queue up to
 * queue_timeout. The balancer (balancer.h) picks the server among the healthy ones with room.
 * New connections are opened non-blocking (connect, then the TLS handshake for https servers).
 * Owns the fds: the data path borrows a connection between upool_acquire and upool_release and
 * gets its fd events through a per-connection handler, so no epoll_ctl happens per request.
 * Single-threaded: every call on the pool's loop thread. */
#ifndef AG_GATEWAY_UPOOL_H
#define AG_GATEWAY_UPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

struct metrics_slot;
struct transport;
struct upstream;
struct upool;
struct uconn;

/* Why an acquire failed: static strings compared by pointer, also the `reason` label of
 * apigate_upstream_connect_errors_total / the pool's error counters. */
extern const char upool_err_no_healthy[];       /* "no_healthy_server": all down or unresolved */
extern const char upool_err_queue_full[];       /* "queue_full": pool.max_queue waiters already */
extern const char upool_err_queue_timeout[];    /* "queue_timeout": waited pool.queue_timeout */
extern const char upool_err_connect_refused[];  /* "connect_refused": ECONNREFUSED */
extern const char upool_err_connect_timeout[];  /* "connect_timeout": connect (+ handshake) slower
                                                   than connect_timeout */
extern const char upool_err_connect[];          /* "connect_error": any other connect failure */
extern const char upool_err_tls_handshake[];    /* "tls_handshake": TLS protocol failure */
extern const char upool_err_tls_verify[];       /* "tls_verify": certificate not trusted / name */
extern const char upool_err_closed[];           /* "pool_closed": the pool is being destroyed */

struct upool_waiter;
/* Called on the loop thread, exactly once per pending acquire (never from inside upool_acquire,
 * never after upool_cancel): either <c> is a connected connection now lent to the caller, or <c>
 * is NULL and <err> says why. */
typedef void upool_ready_cb(struct upool_waiter *w, struct uconn *c, const char *err);

/* Embedded by the caller (in its request struct); must stay in place while pending. */
struct upool_waiter {
    upool_ready_cb *ready;
    void *arg;                  /* for the caller */
    uint64_t wait_us;           /* set before ready(): time spent queued (0 when not queued) */
    size_t avoid;               /* 1 + index of a server to skip when another one can take the
                                   request (a retry after that server failed); 0: none */
    bool settled;               /* wants a connection that has been idle pool.settle, or a new
                                   one (a response that may be cached: late bytes of the last
                                   exchange can then not answer it); see uconn_settled */
    /* private */
    struct upool *_pool;
    struct upool_waiter *_next, *_prev;
    uint64_t _queued_us;
    uint64_t _connect_timeout_ms;
    struct uconn *_conn;        /* connection being opened on its behalf */
    int _state;
};

/* fd events of a lent connection: LOOP_READ / LOOP_WRITE / LOOP_ERROR bits as in core/loop.h. */
typedef void uconn_cb(struct uconn *c, unsigned events, void *arg);

/* Creates the pool of <u> for the thread running <loop>; metrics go to <slot> (the thread's).
 * <u> must outlive the pool. */
struct upool *upool_create(struct loop *loop, struct upstream *u, struct metrics_slot *slot);
/* Closes every connection and fails pending waiters with upool_err_closed (their ready() is
 * called). Release lent connections first: any still lent are closed too, and their holders must
 * not touch them afterwards. */
void upool_destroy(struct upool *p);

/* Asks for a connection. <connect_timeout_ms> 0 means the upstream's connect_timeout (a route may
 * ask for another). Returns an idle keep-alive connection at once when the chosen server has one
 * (ready() is then not called); otherwise returns NULL and either
 * - sets *<err> (upool_err_no_healthy, upool_err_queue_full, or a connect error when the
 *   connect failed at once): nothing is pending, or
 * - leaves *<err> NULL: the waiter is pending (a new connection is being opened for it, or it is
 *   queued FIFO) and ready() will be called. */
struct uconn *upool_acquire(struct upool *p, struct upool_waiter *w, uint64_t connect_timeout_ms,
                            const char **err);
/* Is <w> queued for a connection (no connect on its behalf under way)? */
bool upool_waiter_queued(const struct upool_waiter *w);
/* Withdraws a pending waiter (client gone, request deadline). A connection being opened for it
 * keeps opening and serves the next waiter or goes idle. No-op when not pending. */
void upool_cancel(struct upool_waiter *w);

/* Feeds the balancer with the outcome of the exchange on <c>: <latency_us> from request sent to
 * response head received, <failed> for a server failure (reset, timeout, 5xx the route counts as
 * failure). Optional: without it, release feeds the time since the lend as a success. A failure
 * also counts toward the upstream's passive ejection (max_fails within fail_timeout). */
void upool_observe(struct upool *p, struct uconn *c, uint64_t latency_us, bool failed);
/* Gives <c> back. <reusable>: the response was read completely, its framing was known and no side
 * asked to close; the connection then goes idle (or to the next waiter), else it is closed. An
 * idle connection is reused only when a non-blocking peek shows nothing pending (bytes: stray,
 * the server is marked as in uconn_stray; EOF: closed) and, after uconn_settle, once it has been
 * idle pool.settle (until then another idle or a new connection takes requests). The
 * handler is cleared: no event reaches the caller after this. May be called from inside the
 * connection's own handler: the close of a connection is deferred past the event batch. */
void upool_release(struct upool *p, struct uconn *c, bool reusable);

/* The server switched protocols on lent <c> (101): the connection leaves the pool for good and
 * its byte stream moves into *<out> (registered with no loop: the caller adds the fd), counted
 * as apigate_pool_closed_total{reason="upgraded"}. <c> must not be touched afterwards. */
void upool_take(struct upool *p, struct uconn *c, struct transport *out);

/* The response on lent <c> had no body by definition (HEAD, 204, 304): an origin that sends one
 * anyway sends it late, so upool_release keeps <c> idle for pool.settle before reusing it (a
 * late body then lands on the idle connection, which closes it). */
void uconn_settle(struct uconn *c);
/* The server sent bytes on lent <c> that no request asked for (left over after a complete
 * response, or a response before the request was sent): closes <c> (do not release it; the
 * holder must not touch it afterwards) and makes every connection of that server settle before
 * reuse for the next 10 minutes. <what> goes to the (rate-limited) log line. */
void uconn_stray(struct uconn *c, const char *what);

/* Whether lent <c> is new, or was idle at least pool.settle before this lend (always true with
 * pool.settle 0). A waiter with .settled gets such a connection unless the server is at its
 * connection cap; then its response must not be stored. */
bool uconn_settled(const struct uconn *c);

/* Routes the fd events of lent <c> to <cb>(<c>, events, <arg>). The fd is registered for
 * LOOP_READ | LOOP_WRITE edge-triggered: write right away, and on IO_AGAIN wait for the event. */
void uconn_set_handler(struct uconn *c, uconn_cb *cb, void *arg);
/* The byte stream (TCP or TLS) of <c>; valid while lent. */
struct transport *uconn_transport(struct uconn *c);
/* True when <c> already carried a request: a write that fails or a read that hits EOF before any
 * response byte means the server closed the idle connection meanwhile, and an idempotent request
 * may be retried on a fresh connection (upool_acquire again) without counting as a failure. */
bool uconn_reused(const struct uconn *c);
/* Microseconds the connection took to open (TCP connect + TLS handshake), for the access log. */
uint64_t uconn_connect_us(const struct uconn *c);
/* Index and name of the server <c> is connected to (labels for logs and metrics). */
size_t uconn_server(const struct uconn *c);
const char *uconn_server_name(const struct uconn *c);

/* Counts of this thread's pool (tests, /stats): connections lent, idle, being opened, and waiters. */
struct upool_stats {
    size_t in_use;
    size_t idle;
    size_t connecting;
    size_t waiting;
    uint64_t connects;        /* connections opened so far (connection churn) */
    uint64_t connect_errors;
    uint64_t reuses;          /* acquires served by an idle connection */
};
void upool_get_stats(const struct upool *p, struct upool_stats *out);

#endif
