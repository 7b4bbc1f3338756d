/* The upstream exchange of one request (proxy.c): its state, embedded in the request (one
 * exchange at a time), and the calls of the request layer. Knows the request (req.h), never the
 * client session. */
#ifndef AG_GATEWAY_PROXY_H
#define AG_GATEWAY_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/loop.h"
#include "gateway/upool.h"
#include "http/chunked.h"
#include "http/h1body.h"
#include "http/h1parse.h"
#include "net/h1cli.h"

struct gw_req;
struct gw_upstream;

#define PX_RES_HEADERS_MAX 512    /* most server.max_response_headers: a block of h1_headers */

/* Where the response body comes from / how it is framed to the client. */
enum px_out {
    PX_OUT_NONE = 0,  // no body
    PX_OUT_LENGTH,    // Content-Length: bytes passed through
    PX_OUT_CHUNKED,   // upstream chunked or until-close, re-framed as chunked
    PX_OUT_RAW_CLOSE, // HTTP/1.0 client: decoded bytes, then close
};

enum px_state {
    PX_IDLE = 0,
    PX_WAIT_CONN,  // queued in the pool or connecting (or waiting out a retry's backoff)
    PX_EXCHANGE,   // request being sent and/or response being received
    PX_DONE,
};

/* The upstream side of one request. */
struct proxy {
    /* small fields first, together: the struct is in every connection, idle ones included */
    enum px_state state;
    enum h1_body req_body;
    enum h1_body res_body;
    enum px_out out;
    bool req_done;             // whole request (head + body) handed to the upstream socket
    bool req_body_read;        // whole request body read from the client
    bool head_done;            // response head parsed and sent on
    bool res_done;
    bool retried;
    bool xform_failed;         // the re-encoding filter failed mid-body: the client is closed
    bool xform_sent;           // some re-encoded output went to the client
    bool client_head_queued;   // proxy__write_client_head queued a head (gw_req_unhead)
    uint8_t xform;             // filter_transformer(): the filter re-encoding the body (+1), 0: none
    struct upool *pool;
    struct uconn *uc;
    struct upool_waiter waiter;
    struct loop_timer timer;   // first byte / total deadline, and the end of a retry's backoff
    uint64_t retry_at_ms;      // a retry's backoff ends then (0: none)
    uint64_t total_deadline_ms;
    uint64_t first_byte_deadline_ms;
    struct buf head;           // request head for the upstream (kept whole for a retry)
    struct buf uout;           // request body bytes (re-framed chunks) waiting for the upstream
    struct buf uin;            // response bytes from the upstream
    struct buf trail;          // the response's trailer section, filtered before it goes out
    struct buf req_trail;      // the request body's trailer section, filtered before it goes out
    struct buf xout;           // a re-encoded piece of the body, framed before it goes out
    // request body
    uint64_t req_remaining;    // Content-Length bytes still to forward
    struct h1_chunked req_chunk;
    /* the exchange on the upstream connection (net/h1cli, as the cache's refresh): readiness,
     * head progress, the response head (x.res) and its body's framing */
    struct h1cli x;
    struct h1_header *res_hdrs; // PX_RES_HEADERS_MAX entries, a thread block lent per request
    uint64_t t_sent_us;        // request head first written
    uint64_t t_first_byte_us;
    uint64_t pool_wait_us;
    uint64_t connect_us;       // connect time of a new upstream connection; 0 when reused
    const char *server;        // upstream address label
};

void proxy_init(struct proxy *px);
void proxy_deinit(struct proxy *px);
/* Starts forwarding the request (head in r->req, body bytes in *r->in) to the upstream of its
 * route. The filters already ran. */
void proxy_start(struct gw_req *r);
/* The client sent more body bytes (they are in *r->in): forward what fits. */
void proxy_on_client_data(struct gw_req *r);
/* The client output drained below the high mark: resume reading the upstream. */
void proxy_on_client_drained(struct gw_req *r);
/* Aborts the exchange (client gone, request answered otherwise): cancels the wait and the
 * timers, closes the upstream connection when mid-exchange. */
void proxy_abort(struct gw_req *r);
/* True for a request header never forwarded as received: hop-by-hop, framing, the ones we set
 * (Host, X-Request-Id, traceparent, X-Forwarded-*), and the client's Forwarded. Every request
 * sent upstream for a client (proxy, cache background refresh) filters with it. */
bool proxy_skip_request_header(const char *name, size_t len);
/* What an upstream request head is made of (proxy_write_head): every request sent upstream for
 * a client (the proxy's, the cache's background refresh) is written by the one function. */
struct px_head {
    const struct h1_request *req;     // the client's request: target, Host, headers, body framing
    const struct gw_upstream *up;     // Host: its host, else the client's, else its first server
    const char *method;               // NULL: the client's
    const char *client_ip;            // the last hop of X-Forwarded-For
    /* true for a client header not to forward, beyond proxy_skip_request_header and the ones
     * the client's Connection lists (NULL: none) */
    bool (*skip)(void *arg, const char *name, size_t len);
    void *skip_arg;
    const char *traceparent;          // our hop's (TRACE_HEADER_LEN bytes), NULL: none
    const char *rid;                  // X-Request-Id, NULL: none
    size_t rid_len;
    bool framing;                     // Content-Length or Transfer-Encoding of the request body
    bool upgrade;                     // forward the client's Upgrade (the caller adds Connection)
    /* an HTTP/2 extended CONNECT made a WebSocket Upgrade: Upgrade: websocket and this
     * Sec-WebSocket-Key (the client's own, if any, dropped); NULL: none */
    const char *ws_key;
    /* X-Client-Verify for the upstream on a listener with client_ca ("SUCCESS" or "NONE"; the
     * client's own is dropped), NULL: the listener asks no client certificate */
    const char *client_verify;
};
/* Writes the request line, Host, the client's forwardable headers, X-Forwarded-*, Via and what
 * <h> adds into <b>, short of the empty line that ends the head: the caller appends its own
 * headers (a filter's, a refresh's validators) and then "\r\n". */
void proxy_write_head(struct buf *b, const struct px_head *h);
/* Appends X-Forwarded-For (<req>'s earlier hops, then <client_ip>), X-Forwarded-Proto,
 * X-Forwarded-Host (when <req> has a host) and Via. */
void proxy_write_forwarded(struct buf *b, const struct h1_request *req, const char *client_ip);

#endif
