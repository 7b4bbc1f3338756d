/* Forwarding one request to the upstream and the response back: rewrites the request head
 * (hop-by-hop headers out, X-Forwarded-*, Via, X-Request-Id in), streams the request body
 * (Content-Length or chunked, re-framed) and the response body (Content-Length, chunked,
 * until-close) with backpressure on both sides, and gives the upstream connection back to the
 * pool as reusable only when the exchange ended cleanly. Deadlines: first byte and total (504),
 * connect and queue through the pool. Never returns a connection to the pool mid-response. */
#include "gateway/proxy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/req.h"
#include "gateway/trace.h"
#include "gateway/tunnel.h"
#include "net/transport.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "net/wskey.h"

#define PX_READ_CHUNK (16u * 1024u)
#define PX_MAX_RESPONSE_HEAD (64u * 1024u)

static void proxy__pump(struct gw_req *r);
static void proxy__acquire(struct gw_req *r);
static void proxy__retry_later(struct gw_req *r);
static void proxy__arm(struct gw_req *r);
static void proxy__switch(struct gw_req *r);

void proxy_init(struct proxy *px)
{
    memset(px, 0, sizeof(*px));
    buf_init(&px->head);
    buf_init(&px->uout);
    buf_init(&px->uin);
    buf_init(&px->trail);
    buf_init(&px->req_trail);
    buf_init(&px->xout);
}

void proxy_deinit(struct proxy *px)
{
    buf_deinit(&px->head);
    buf_deinit(&px->uout);
    buf_deinit(&px->uin);
    buf_deinit(&px->trail);
    buf_deinit(&px->req_trail);
    buf_deinit(&px->xout);
    free(px->res_hdrs); // blocks are plain allocations
    px->res_hdrs = NULL;
}

static const struct gw_route *proxy__route(const struct gw_req *r)
{
    return &r->th->sh->cfg->routes[r->route];
}

/* ---- the upstream connection ---- */

static void proxy__detach(struct gw_req *r, bool reusable)
{
    struct proxy *px = &r->px;
    if (px->state == PX_WAIT_CONN)
        upool_cancel(&px->waiter);
    if (px->uc != NULL) {
        upool_release(px->pool, px->uc, reusable);
        px->uc = NULL;
    }
    loop_timer_stop(r->th->loop, &px->timer);
    px->retry_at_ms = 0;
}

void proxy_abort(struct gw_req *r)
{
    struct proxy *px = &r->px;
    if (px->state == PX_IDLE || px->state == PX_DONE) {
        loop_timer_stop(r->th->loop, &px->timer);
        px->retry_at_ms = 0;
        return;
    }
    proxy__detach(r, false);
    px->state = PX_DONE;
}

/* Ends the exchange with an error: the filters get it first (a retry, a stale copy, the
 * route's fallback), else an error page (or a close when the response head already went out).
 * <kind> says what failed and picks the route's error counter. */
static void proxy__fail_err(struct gw_req *r, int status, const char *code, const char *msg,
                            enum gw_err_kind kind, bool untried)
{
    struct proxy *px = &r->px;
    struct gw_route_rt *rt = &r->th->sh->rt[r->route];
    metrics_ref counter = kind == GW_ERR_TIMEOUT ? rt->err_timeout
                          : kind == GW_ERR_POOL  ? rt->err_pool
                          : kind == GW_ERR_PROTO ? rt->err_proto
                                                 : rt->err_connect;
    metrics_counter_inc(r->th->ms, counter);
    ag_log(AG_LOG_DEBUG, "upstream %s: %s, route: %s, request: %.*s", code, msg, rt->label,
           (int)r->rid_len, r->rid);
    proxy__detach(r, false); // a broken or late exchange never goes back to the pool
    px->state = PX_DONE;
    const char *extra = status == 503 ? "Retry-After: 1\r\n" : NULL;
    struct gw_err err = {.status = status, .code = code, .msg = msg, .extra_headers = extra,
                         .kind = kind, .head_received = px->head_done,
                         .got_bytes = px->x.got_bytes, .untried = untried};
    r->retry_delay_ms = 0;
    switch (filter_error(r, FILTER_MAX, &err)) {
    case FILTER_RETRY:
        proxy__retry_later(r);
        return;
    case FILTER_RESPOND:
        return; // a stale copy or the route's fallback answered
    default:
        break;
    }
    if (r->head_sent) {
        r->keep_alive = false;
        gw_req_end(r);
        return;
    }
    gw_req_respond_error(r, status, code, msg, extra);
}

static void proxy__fail(struct gw_req *r, int status, const char *code, const char *msg,
                        enum gw_err_kind kind)
{
    proxy__fail_err(r, status, code, msg, kind, false);
}

static void proxy__on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct gw_req *r = arg;
    struct proxy *px = &r->px;
    if (px->retry_at_ms != 0 && loop_now_ms(r->th->loop) >= px->retry_at_ms) {
        /* a retry's backoff is over (a filter never asks for one past the total deadline) */
        px->retry_at_ms = 0;
        proxy__arm(r);
        if (px->state == PX_WAIT_CONN && px->uc == NULL)
            proxy__acquire(r);
        return;
    }
    if (px->state == PX_WAIT_CONN)
        /* still queued in the gateway: the origin was not tried */
        proxy__fail_err(r, 504, "gateway_timeout",
                        "no upstream connection before the total timeout", GW_ERR_TIMEOUT,
                        upool_waiter_queued(&px->waiter));
    else if (!px->head_done)
        proxy__fail(r, 504, "gateway_timeout", "upstream did not answer in time", GW_ERR_TIMEOUT);
    else
        proxy__fail(r, 504, "gateway_timeout", "upstream response exceeded the total timeout",
                    GW_ERR_TIMEOUT);
}

/* The nearest deadline that applies now. */
static void proxy__arm(struct gw_req *r)
{
    struct proxy *px = &r->px;
    uint64_t due = px->total_deadline_ms;
    if (!px->head_done && px->first_byte_deadline_ms &&
        (due == 0 || px->first_byte_deadline_ms < due))
        due = px->first_byte_deadline_ms;
    if (px->retry_at_ms != 0 && (due == 0 || px->retry_at_ms < due))
        due = px->retry_at_ms;
    if (due == 0) {
        loop_timer_stop(r->th->loop, &px->timer);
        return;
    }
    uint64_t now = loop_now_ms(r->th->loop);
    loop_timer_start(r->th->loop, &px->timer, due > now ? due - now : 0);
}

static void proxy__on_up_event(struct uconn *uc, unsigned events, void *arg)
{
    (void)uc;
    struct gw_req *r = arg;
    AG_ASSERT(r->magic == GW_REQ_MAGIC);
    if (r->state != GW_REQ_ACTIVE)
        return;
    h1cli_on_events(&r->px.x, events);
    proxy__pump(r);
}

static void proxy__attach(struct gw_req *r, struct uconn *uc)
{
    struct proxy *px = &r->px;
    px->uc = uc;
    px->state = PX_EXCHANGE;
    px->server = uconn_server_name(uc);
    px->waiter.avoid = uconn_server(uc) + 1; // a retry of this request prefers another server
    px->connect_us = uconn_reused(uc) ? 0 : uconn_connect_us(uc);
    /* the exchange: the head from its start, the response into uin, headers in a thread block
     * (given back when the request is released) */
    struct h1cli *x = &px->x;
    h1cli_begin(x, uconn_transport(uc), &px->head, &px->uin);
    if (px->res_hdrs == NULL)
        px->res_hdrs = gwthread_block_take(r->th);
    x->read_chunk = PX_READ_CHUNK;
    x->hdrs = px->res_hdrs;
    x->max_hdrs = (size_t)r->th->sh->cfg->server.max_response_headers;
    x->lim = (struct h1_limits){.max_request_line = 0, .max_head = PX_MAX_RESPONSE_HEAD,
                                .max_headers = x->max_hdrs};
    x->head_request = r->req.method_id == H1_M_HEAD;
    /* An answer to a request head the server has not seen yet, on a connection that carried an
     * earlier exchange, is that exchange's late bytes, never this request's response. (On a
     * fresh connection it is an early 431 or 400: read on.) */
    x->early_stray = uconn_reused(uc);
    px->t_sent_us = clock_now_us();
    px->first_byte_deadline_ms = 0; // starts once the whole request is sent (proxy__send)
    uconn_set_handler(uc, proxy__on_up_event, r);
    proxy__arm(r);
    proxy__pump(r);
}

static void proxy__on_conn_ready(struct upool_waiter *w, struct uconn *uc, const char *err)
{
    struct gw_req *r = w->arg;
    struct proxy *px = &r->px;
    AG_ASSERT(r->magic == GW_REQ_MAGIC);
    if (r->state != GW_REQ_ACTIVE || px->state != PX_WAIT_CONN) {
        if (uc != NULL)
            upool_release(w->_pool, uc, true);
        return;
    }
    px->pool_wait_us += w->wait_us;
    struct gw_route_rt *rt = &r->th->sh->rt[r->route];
    metrics_hist_observe_us(r->th->ms, rt->pool_wait, w->wait_us);
    if (uc != NULL) {
        proxy__attach(r, uc);
        return;
    }
    px->state = PX_DONE;
    if (err == upool_err_queue_timeout)
        proxy__fail(r, 503, "pool_timeout", "no upstream connection free within queue_timeout",
                    GW_ERR_POOL);
    else if (err == upool_err_connect_timeout)
        proxy__fail(r, 504, "connect_timeout", "upstream connect timed out", GW_ERR_CONNECT);
    else /* no server with an address: the origin was not tried */
        proxy__fail_err(r, 502, "bad_gateway", err ? err : "upstream connection failed",
                        GW_ERR_CONNECT, err == upool_err_no_healthy);
}

static void proxy__acquire(struct gw_req *r)
{
    struct proxy *px = &r->px;
    const struct gw_route *gr = proxy__route(r);
    struct gw_route_rt *rt = &r->th->sh->rt[r->route];
    px->waiter.ready = proxy__on_conn_ready;
    px->waiter.arg = r;
    px->waiter.wait_us = 0;
    /* a response the cache may keep comes on a connection with no exchange just before it: late
     * bytes of that exchange can never be what is stored (proxy.md, late bytes) */
    px->waiter.settled = gr->cache.enabled && (r->req.method_id == H1_M_GET ||
                                               r->req.method_id == H1_M_HEAD);
    const char *err = NULL;
    px->state = PX_WAIT_CONN;
    struct uconn *uc = upool_acquire(px->pool, &px->waiter, gr->timeout.connect_ms, &err);
    if (uc != NULL) {
        metrics_hist_observe_us(r->th->ms, rt->pool_wait, 0);
        proxy__attach(r, uc);
        return;
    }
    if (err != NULL) {
        px->state = PX_DONE;
        if (err == upool_err_queue_full)
            proxy__fail(r, 503, "pool_full", "upstream pool queue is full", GW_ERR_POOL);
        else /* no server with an address: the origin was not tried */
            proxy__fail_err(r, 502, "bad_gateway", err, GW_ERR_CONNECT,
                            err == upool_err_no_healthy);
        return;
    }
    proxy__arm(r); // waiting: only the total deadline applies
}

/* ---- request head ---- */

/* Headers we never forward as received: hop-by-hop ones, framing (re-written), the ones we set
 * ourselves, and the client's own claims about the hop we are (host, scheme, port, prefix: an
 * origin that builds links from Forwarded or X-Forwarded-Port would otherwise put the client's
 * values into a response the cache then serves to everyone). A switch on the length keeps this
 * to one or two comparisons per header. */
bool proxy_skip_request_header(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return headers_name_eq(n, len, "te");
    case 4:
        return headers_name_eq(n, len, "host");
    case 6:
        return headers_name_eq(n, len, "expect");
    case 7:
        return headers_name_eq(n, len, "trailer") || headers_name_eq(n, len, "upgrade");
    case 9:
        return headers_name_eq(n, len, "forwarded"); // RFC 7239: X-Forwarded-* say it for us
    case 10:
        return headers_name_eq(n, len, "connection") || headers_name_eq(n, len, "keep-alive");
    case 11:
        return headers_name_eq(n, len, "traceparent"); // replaced by our hop's (trace.c)
    case 12:
        return headers_name_eq(n, len, "x-request-id"); // replaced by the logged one (conn.c)
    case 14:
        return headers_name_eq(n, len, "content-length");
    case 15:
        return headers_name_eq(n, len, "x-forwarded-for") ||
               headers_name_eq(n, len, "x-forwarded-ssl");
    case 16:
        return headers_name_eq(n, len, "x-forwarded-host") ||
               headers_name_eq(n, len, "x-forwarded-port") ||
               headers_name_eq(n, len, "proxy-connection");
    case 17:
        return headers_name_eq(n, len, "transfer-encoding") ||
               headers_name_eq(n, len, "x-forwarded-proto");
    case 18:
        return headers_name_eq(n, len, "proxy-authenticate") ||
               headers_name_eq(n, len, "x-forwarded-prefix");
    case 19:
        return headers_name_eq(n, len, "proxy-authorization");
    default:
        return false;
    }
}

/* True when the client's traceparent was valid, so our traceparent continues its trace (then its
 * tracestate goes on with it). Only asked when a tracestate header is present. */
static bool proxy__trace_continued(const struct h1_request *req)
{
    const struct h1_header *tp = headers_find(req->headers, req->nheaders, "traceparent");
    struct trace_ctx t;
    return tp != NULL && trace_parse(tp->value, tp->value_len, &t) == 0;
}

void proxy_write_forwarded(struct buf *b, const struct h1_request *req, const char *client_ip)
{
    /* X-Forwarded-For: every earlier hop (all such headers, in order), then the client. */
    buf_append_str(b, "X-Forwarded-For: ");
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        if (h->name_len == 15 && headers_name_eq(h->name, 15, "x-forwarded-for") &&
            h->value_len > 0) {
            buf_append(b, h->value, h->value_len);
            buf_append(b, ", ", 2);
        }
    }
    buf_append_str(b, client_ip);
    buf_append_str(b, req->https ? "\r\nX-Forwarded-Proto: https\r\n"
                                 : "\r\nX-Forwarded-Proto: http\r\n");
    if (req->host) {
        buf_append_str(b, "X-Forwarded-Host: ");
        buf_append(b, req->host, req->host_len);
        buf_append(b, "\r\n", 2);
    }
    buf_append_str(b, "Via: 1.1 apigate\r\n");
}

void proxy_write_head(struct buf *b, const struct px_head *h)
{
    const struct h1_request *req = h->req;
    const struct gw_upstream *up = h->up;
    buf_reserve(b, 512 + req->target_len + 64 * req->nheaders);
    const char *m = h->method != NULL ? h->method : req->method;
    size_t ml = h->method != NULL ? strlen(h->method) : req->method_len;
    if (req->target_len > 0 && req->target[0] == '/')
        h1_write_request_line(b, m, ml, req->target, req->target_len, NULL, 0);
    else /* absolute-form from a client that thinks we are a forward proxy: origin-form upstream */
        h1_write_request_line(b, m, ml, req->path_len ? req->path : "/",
                              req->path_len ? req->path_len : 1, req->query, req->query_len);
    if (up->host)
        h1_write_header_str(b, "Host", up->host);
    else if (req->host)
        h1_write_header(b, "Host", 4, req->host, req->host_len);
    else
        h1_write_host(b, up->servers[0].host, strlen(up->servers[0].host), up->servers[0].port,
                      0);
    bool has_connection = false;
    for (size_t i = 0; i < req->nheaders && !has_connection; i++)
        has_connection = req->headers[i].name_len == 10 &&
                         headers_name_eq(req->headers[i].name, 10, "connection");
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *hd = &req->headers[i];
        if (h->upgrade && hd->name_len == 7 && headers_name_eq(hd->name, 7, "upgrade")) {
            /* the one hop-by-hop header an Upgrade keeps (with Connection: upgrade, added by
             * the caller) */
            h1_write_header(b, hd->name, hd->name_len, hd->value, hd->value_len);
            continue;
        }
        if (h->ws_key != NULL && hd->name_len == 17 &&
            headers_name_eq(hd->name, 17, "sec-websocket-key"))
            continue; // the gateway is the WebSocket client of this hop: its key is ours
        if (proxy_skip_request_header(hd->name, hd->name_len) ||
            (h->skip != NULL && h->skip(h->skip_arg, hd->name, hd->name_len)))
            continue; // hop-by-hop, ours to set, or not in a cached route's key
        if (h->client_verify != NULL && hd->name_len == 15 &&
            headers_name_eq(hd->name, 15, "x-client-verify"))
            continue; // ours to say on a listener that verifies client certificates
        if (hd->name_len == 10 && headers_name_eq(hd->name, 10, "tracestate") &&
            !proxy__trace_continued(req))
            continue; // W3C: a tracestate without a valid traceparent is discarded
        if (has_connection &&
            headers_listed_in_connection(req->headers, req->nheaders, hd->name, hd->name_len))
            continue;
        buf_append(b, hd->name, hd->name_len);
        buf_append(b, ": ", 2);
        buf_append(b, hd->value, hd->value_len);
        buf_append(b, "\r\n", 2);
    }
    if (h->ws_key != NULL) {
        buf_append_str(b, "Upgrade: websocket\r\nSec-WebSocket-Key: ");
        buf_append_str(b, h->ws_key);
        buf_append(b, "\r\n", 2);
    }
    proxy_write_forwarded(b, req, h->client_ip);
    if (h->client_verify != NULL) {
        buf_append_str(b, "X-Client-Verify: ");
        buf_append_str(b, h->client_verify);
        buf_append(b, "\r\n", 2);
    }
    if (h->traceparent != NULL) {
        buf_append_str(b, "traceparent: ");
        buf_append(b, h->traceparent, TRACE_HEADER_LEN);
        buf_append(b, "\r\n", 2);
    }
    if (h->rid != NULL) {
        buf_append_str(b, "X-Request-Id: ");
        buf_append(b, h->rid, h->rid_len);
        buf_append(b, "\r\n", 2);
    }
    if (h->framing && req->body == H1_BODY_LENGTH)
        h1_write_header_u64(b, "Content-Length", req->content_length);
    else if (h->framing && req->body == H1_BODY_CHUNKED)
        buf_append_str(b, "Transfer-Encoding: chunked\r\n");
}

static bool proxy__filter_skip(void *arg, const char *name, size_t len)
{
    return filter_upstream_header_skip(arg, name, len);
}

static void proxy__build_head(struct gw_req *r)
{
    struct proxy *px = &r->px;
    const struct gw_config *cfg = r->th->sh->cfg;
    const struct gw_route *gr = proxy__route(r);
    struct buf *b = &px->head;
    buf_reset(b);
    gwthread_buf_take(r->th, b); // a block lent for the request: no malloc on the busy path
    /* Always exactly one X-Request-Id: the client's when it was usable, else ours
     * (gw_req_make_rid), so the origin's logs and the access log name the request alike. */
    struct px_head h = {.req = &r->req,
                        .up = &cfg->upstreams[gr->upstream_index],
                        .client_ip = r->client_ip,
                        .skip = proxy__filter_skip,
                        .skip_arg = r,
                        .traceparent = r->traceparent[0] ? r->traceparent : NULL,
                        .rid = r->rid,
                        .rid_len = r->rid_len,
                        .framing = true,
                        .upgrade = r->upgrade,
                        /* RFC 8441 -> RFC 6455: the stream's CONNECT is an HTTP/1.1 GET upstream
                         * (the access log and metrics keep the client's CONNECT) */
                        .method = r->ws_key[0] ? "GET" : NULL,
                        .ws_key = r->ws_key[0] ? r->ws_key : NULL,
                        .client_verify = r->client_verify < 0    ? NULL
                                         : r->client_verify == 1 ? "SUCCESS"
                                                                 : "NONE"};
    proxy_write_head(b, &h);
    filter_upstream_headers(r, b); // the cache's stored validators of a revalidation
    if (r->upgrade)
        buf_append_str(b, "Connection: upgrade\r\n");
    buf_append(b, "\r\n", 2);
}

/* Everything one attempt at the upstream exchange leaves behind, cleared for the next one: the
 * first attempt, a retry after a 5xx, the resend after a kept-alive connection died. One place,
 * so no path can carry an earlier attempt's head progress, response state or timings (a retry
 * once logged attempt 1's first byte minus attempt 2's send time, an unsigned underflow).
 * The request body state is not here: requests with a body are never sent twice. */
static void proxy__exchange_reset(struct proxy *px)
{
    buf_reset(&px->uin);
    buf_reset(&px->trail);
    buf_reset(&px->xout);
    px->req_done = false;
    px->head_done = px->res_done = false;
    px->x.got_bytes = false; // h1cli_begin clears the rest when a connection is attached
    px->xform = 0;
    px->xform_failed = false;
    px->xform_sent = false;
    px->client_head_queued = false;
    px->out = PX_OUT_NONE;
    px->t_sent_us = px->t_first_byte_us = 0;
    px->connect_us = 0;
    px->server = NULL;
    px->first_byte_deadline_ms = 0;
}

/* A filter asked for a retry (FILTER_RETRY): drops the failed attempt (its connection is closed,
 * the total deadline stays armed) and acquires a connection again after r->retry_delay_ms, always
 * through the timer, even for 0 ms: never re-enter the exchange from its own handler. Only for
 * requests without a body (the filter checks). */
static void proxy__retry_later(struct gw_req *r)
{
    struct proxy *px = &r->px;
    /* a 5xx dropped for a retry still counts against its server (balancer, ejection) */
    if (px->uc != NULL && px->t_first_byte_us > px->t_sent_us)
        upool_observe(px->pool, px->uc, px->t_first_byte_us - px->t_sent_us, true);
    proxy__detach(r, false); // the failed attempt's connection is never reused
    proxy__exchange_reset(px);
    px->state = PX_WAIT_CONN; // proxy_abort and the total deadline see a pending wait
    px->retry_at_ms = loop_now_ms(r->th->loop) + r->retry_delay_ms;
    proxy__arm(r); // the deadline timer wakes at the backoff's end first
}

void proxy_start(struct gw_req *r)
{
    struct proxy *px = &r->px;
    struct gwthread *th = r->th;
    const struct gw_route *gr = proxy__route(r);
    px->pool = th->pools[gr->upstream_index];
    px->uc = NULL;
    buf_reset(&px->uout);
    px->req_body = r->req.body;
    px->req_remaining = r->req.body == H1_BODY_LENGTH ? r->req.content_length : 0;
    px->req_body_read = r->req.body == H1_BODY_NONE ||
                        (r->req.body == H1_BODY_LENGTH && px->req_remaining == 0);
    h1_chunked_init(&px->req_chunk);
    px->req_chunk.max_size = th->sh->cfg->server.max_body_size; // a bigger chunk: 413 at once
    proxy__exchange_reset(px);
    px->retried = false;
    px->pool_wait_us = 0;
    uint64_t now = loop_now_ms(th->loop);
    px->total_deadline_ms = gr->timeout.total_ms ? now + gr->timeout.total_ms : 0;
    loop_timer_init(&px->timer, proxy__on_timer, r);
    proxy__build_head(r); // copies every slice of r->req it needs: r->in may move afterwards
    px->waiter.avoid = 0;
    proxy__acquire(r);
}

/* ---- request body ---- */

/* Moves chunked body bytes from r->in into px->uout, re-framed (one chunk per data run, no
 * extensions) with the trailer section, if any, less the fields that must not be trailers
 * (h1_chunked_filter_trailers, as for a response's): an HTTP/1.1 client's, or an HTTP/2
 * client's trailing HEADERS (h2sess.c writes them as this section). Returns -1 on invalid
 * framing or an oversize body. */
static int proxy__reframe_chunked(struct gw_req *r)
{
    struct proxy *px = &r->px;
    const struct gw_config *cfg = r->th->sh->cfg;
    while (!px->req_body_read && buf_pending(r->in) > 0 &&
           buf_pending(&px->uout) < CONN_BUF_HIGH) {
        const char *data;
        size_t dlen;
        bool in_trailers = px->req_chunk.trailers;
        long n = h1_chunked_step(&px->req_chunk, buf_head(r->in), buf_pending(r->in), &data,
                                 &dlen);
        if (n < 0)
            return px->req_chunk.too_large ? -2 : -1;
        if (in_trailers && n > 0) // validated and bounded (16 KB) by the decoder
            buf_append(&px->req_trail, buf_head(r->in), (size_t)n);
        if (dlen > 0) {
            px->req_remaining += dlen; // bytes of body seen so far, for the size limit
            if (px->req_remaining > cfg->server.max_body_size)
                return -2;
            h1_write_chunk(&px->uout, data, dlen);
        }
        buf_consume(r->in, (size_t)n);
        if (px->req_chunk.done) {
            if (buf_pending(&px->req_trail) > 0) { // the field lines and the final CRLF
                size_t tl = h1_chunked_filter_trailers(buf_head(&px->req_trail),
                                                       buf_pending(&px->req_trail));
                buf_append_str(&px->uout, "0\r\n");
                buf_append(&px->uout, buf_head(&px->req_trail), tl);
                buf_deinit(&px->req_trail); // rare: not kept
            } else {
                h1_write_chunk(&px->uout, NULL, 0);
            }
            px->req_body_read = true;
        }
        if (n == 0)
            break;
    }
    return 0;
}

/* Writes what is pending towards the upstream: the rest of the head, re-framed chunks, then
 * Content-Length body bytes straight from the client buffer. Returns -1 on a write error. */
static int proxy__send(struct gw_req *r)
{
    struct proxy *px = &r->px;
    struct h1cli *x = &px->x;
    while (x->writable) {
        struct iovec iov[2];
        int n = 0;
        size_t upend = buf_pending(&px->uout);
        if (upend) {
            iov[n].iov_base = buf_head(&px->uout);
            iov[n++].iov_len = upend;
        }
        size_t slice = 0;
        if (px->req_body == H1_BODY_LENGTH && px->req_remaining > 0) {
            slice = buf_pending(r->in);
            if (slice > px->req_remaining)
                slice = (size_t)px->req_remaining;
            if (slice) {
                iov[n].iov_base = buf_head(r->in);
                iov[n++].iov_len = slice;
            }
        }
        if (n == 0 && h1cli_head_sent(x))
            break;
        ssize_t w = h1cli_write(x, iov, n); // the rest of the head first, then these
        if (w == IO_AGAIN)
            break;
        if (w < 0)
            return -1;
        size_t wz = (size_t)w;
        size_t take = wz < upend ? wz : upend;
        buf_consume(&px->uout, take);
        wz -= take;
        if (wz) {
            buf_consume(r->in, wz);
            px->req_remaining -= wz;
            if (px->req_remaining == 0)
                px->req_body_read = true;
        }
    }
    bool was_done = px->req_done;
    px->req_done = px->req_body_read && h1cli_head_sent(x) && buf_pending(&px->uout) == 0;
    /* timeout.first_byte is the origin's thinking time: it runs from the last request byte, so
     * a large upload at the client's pace (bounded by the body timeout) is not cut short. */
    if (px->req_done && !was_done && !px->head_done) {
        uint64_t fb = proxy__route(r)->timeout.first_byte_ms;
        if (fb) {
            px->first_byte_deadline_ms = loop_now_ms(r->th->loop) + fb;
            proxy__arm(r);
        }
    }
    return 0;
}

/* ---- response ---- */

/* Response headers the client never gets from us as received. */
static bool proxy__skip_res_header(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return headers_name_eq(n, len, "te");
    case 7:
        return headers_name_eq(n, len, "trailer") || headers_name_eq(n, len, "upgrade");
    case 10:
        return headers_name_eq(n, len, "connection") || headers_name_eq(n, len, "keep-alive");
    case 14:
        return headers_name_eq(n, len, "content-length");
    case 16:
        return headers_name_eq(n, len, "proxy-connection");
    case 17:
        return headers_name_eq(n, len, "transfer-encoding");
    case 18:
        return headers_name_eq(n, len, "proxy-authenticate");
    default:
        return false;
    }
}

static void proxy__write_client_head(struct gw_req *r)
{
    struct proxy *px = &r->px;
    const struct h1_response *res = &px->x.res;
    bool client11 = r->req.minor_version == 1;
    /* decide the framing towards the client */
    switch (px->res_body) {
    case H1_BODY_NONE:
        px->out = PX_OUT_NONE;
        break;
    case H1_BODY_LENGTH:
        px->out = PX_OUT_LENGTH;
        break;
    case H1_BODY_CHUNKED:
    case H1_BODY_UNTIL_CLOSE:
        px->out = client11 ? PX_OUT_CHUNKED : PX_OUT_RAW_CLOSE;
        break;
    }
    /* a filter re-encodes the body (compression): its length is known only at the end */
    px->xform = px->out != PX_OUT_NONE ? (uint8_t)filter_transformer(r) : 0;
    if (px->xform)
        px->out = client11 ? PX_OUT_CHUNKED : PX_OUT_RAW_CLOSE;
    if (px->out == PX_OUT_RAW_CLOSE || !px->req_body_read)
        r->keep_alive = false;
    struct gw_head h;
    gw_head_init(&h, res->status);
    h.reason = res->reason;
    h.reason_len = res->reason_len;
    bool has_connection = false, has_date = false;
    for (size_t i = 0; i < res->nheaders && !has_connection; i++)
        has_connection = res->headers[i].name_len == 10 &&
                         headers_name_eq(res->headers[i].name, 10, "connection");
    const struct h1_header *cl = NULL;
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *hd = &res->headers[i];
        if (proxy__skip_res_header(hd->name, hd->name_len)) {
            if (hd->name_len == 14 && cl == NULL)
                cl = hd;
            continue;
        }
        if (has_connection &&
            headers_listed_in_connection(res->headers, res->nheaders, hd->name, hd->name_len))
            continue;
        if (filter_client_header_skip(r, hd->name, hd->name_len)) // cache tags
            continue;
        if (hd->name_len == 4 && headers_name_eq(hd->name, 4, "date"))
            has_date = true;
        gw_head_add(&h, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    if (!has_date)
        gw_head_add(&h, "Date", 4, gwthread_date(r->th), HTTP_DATE_LEN);
    switch (px->out) {
    case PX_OUT_LENGTH:
        gw_head_add_u64(&h, "Content-Length", 14, res->content_length);
        h.body = H1_BODY_LENGTH;
        h.content_length = res->content_length;
        break;
    case PX_OUT_NONE:
        /* HEAD and 304 keep the length of the representation they describe */
        if (cl != NULL && res->status != 204 && res->status >= 200)
            gw_head_add(&h, "Content-Length", 14, cl->value, cl->value_len);
        break;
    case PX_OUT_CHUNKED:
        gw_head_add(&h, "Transfer-Encoding", 17, "chunked", 7);
        h.body = H1_BODY_CHUNKED;
        break;
    case PX_OUT_RAW_CLOSE:
        h.body = H1_BODY_UNTIL_CLOSE;
        break;
    }
    filter_client_headers(r, &h); // X-Cache
    if (r->th->sh->cfg->server.server_timing) {
        uint64_t now = clock_now_us();
        struct trace_timing tt = {
            .cache = filter_cache_status(r),
            .pool_us = (int64_t)px->pool_wait_us,
            .upstream_us = px->t_sent_us && px->t_first_byte_us > px->t_sent_us
                               ? (int64_t)(px->t_first_byte_us - px->t_sent_us)
                               : -1,
            .total_us = r->t_start_us ? (int64_t)(now - r->t_start_us) : -1,
        };
        char st[160];
        size_t n = trace_server_timing(st, sizeof(st), &tt);
        if (n > 0)
            gw_head_add_copy(&h, "Server-Timing", 13, st, n);
    }
    if (!r->keep_alive)
        gw_head_add(&h, "Connection", 10, "close", 5);
    else if (!client11)
        gw_head_add(&h, "Connection", 10, "keep-alive", 10);
    h.retractable = px->xform != 0; // a re-encoding that fails at once takes it back
    gw_req_head(r, &h); // the session copies the slices: uin may be consumed after
    gw_head_deinit(&h);
    px->client_head_queued = true;
}

/* The upstream switched protocols (101) for an Upgrade request: its head goes to the client
 * (hop-by-hop headers out but Upgrade, and Connection: upgrade), with any bytes the upstream sent
 * after it, and the upstream connection leaves the pool for a tunnel (tunnel.c). The request ends
 * here (its metrics as a 101; its access log line when the tunnel ends); the session starts the
 * tunnel with the client side in gw_sess_ops.done. The filters never see a 101: nothing about it
 * can be cached, retried, re-encoded or judged as an answer. */
static void proxy__switch(struct gw_req *r)
{
    struct proxy *px = &r->px;
    const struct h1_response *res = &px->x.res;
    struct gw_head h;
    gw_head_init(&h, 101);
    h.reason = res->reason;
    h.reason_len = res->reason_len;
    h.body = H1_BODY_UNTIL_CLOSE; // the tunnel's first bytes may follow
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *hd = &res->headers[i];
        bool upg = hd->name_len == 7 && headers_name_eq(hd->name, 7, "upgrade");
        if (!upg && (proxy__skip_res_header(hd->name, hd->name_len) ||
                     headers_listed_in_connection(res->headers, res->nheaders, hd->name,
                                                  hd->name_len)))
            continue;
        gw_head_add(&h, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    gw_head_add(&h, "Connection", 10, "upgrade", 7);
    gw_req_head(r, &h);
    gw_head_deinit(&h);
    buf_append(r->out, buf_head(&px->uin), buf_pending(&px->uin)); // past the head: tunnel bytes
    buf_reset(&px->uin);
    px->t_first_byte_us = clock_now_us();
    px->head_done = px->res_done = true;
    r->status = 101;
    r->head_sent = true;
    r->keep_alive = false;
    loop_timer_stop(r->th->loop, &px->timer);
    px->retry_at_ms = 0;
    struct transport up;
    upool_take(px->pool, px->uc, &up);
    px->uc = NULL;
    px->state = PX_DONE;
    r->tunnel = tunnel_create(r, &up);
    gw_req_end(r);
}

/* Whether the 101 to the WebSocket Upgrade the gateway made of an extended CONNECT accepted our
 * key (Sec-WebSocket-Accept) for the websocket protocol (Upgrade: websocket). */
static bool proxy__ws_accepted(const struct gw_req *r, const struct h1_response *res)
{
    const struct h1_header *acc = headers_find(res->headers, res->nheaders, "sec-websocket-accept");
    const struct h1_header *upg = headers_find(res->headers, res->nheaders, "upgrade");
    return acc != NULL && wskey_accept_ok(r->ws_key, acc->value, acc->value_len) &&
           upg != NULL && upg->value_len == 9 && headers_name_eq(upg->value, 9, "websocket");
}

/* The final response head arrived (px->x.res; its bytes are consumed from px->uin, the slices
 * still there): a 101, the filters' verdict, the client's head. Returns 1 when the body follows
 * (or the response is complete: px->res_done), -1 when the exchange ended here. */
static int proxy__on_head(struct gw_req *r)
{
    struct proxy *px = &r->px;
    const struct h1_response *res = &px->x.res;
    if (res->status == 101) {
        if (!r->upgrade) // never asked: the stream that follows is not HTTP we can read
            proxy__fail(r, 502, "bad_gateway", "upstream switched protocols unasked",
                        GW_ERR_PROTO);
        else if (!headers_find(res->headers, res->nheaders, "upgrade"))
            proxy__fail(r, 502, "bad_gateway", "upstream 101 without an Upgrade header",
                        GW_ERR_PROTO);
        else if (r->ws_key[0] && !proxy__ws_accepted(r, res))
            /* our key, our check (RFC 6455 §4.1): a 101 that did not read this request (a
             * cache, a confused middlebox) must not become the client's tunnel */
            proxy__fail(r, 502, "bad_gateway", "upstream 101 without the right Sec-WebSocket-Accept",
                        GW_ERR_PROTO);
        else
            proxy__switch(r);
        return -1;
    }
    if (r->ws_key[0] && res->status >= 200 && res->status < 300) {
        /* RFC 8441 §5: a 2xx to an extended CONNECT means the tunnel is open; an upstream that
         * answered the Upgrade without switching must not say so to the client */
        proxy__fail(r, 502, "bad_gateway", "upstream answered the WebSocket Upgrade without 101",
                    GW_ERR_PROTO);
        return -1;
    }
    px->t_first_byte_us = clock_now_us();
    /* the filters: a retry (retry.on lists the status), the cache storing the response,
     * refreshing its copy by a 304 or serving it instead of a 5xx */
    enum filter_verdict v = filter_response_head(r, &px->x.res);
    if (v == FILTER_RETRY) {
        proxy__retry_later(r);
        return -1;
    }
    px->res_body = res->body;
    /* h1cli framed the body by HEAD's and the statuses' no-body rules */
    bool no_body = px->x.body.state == H1BODY_DONE;
    if (v == FILTER_RESPOND && !no_body) {
        /* a filter answered (a stale copy instead of a 5xx): the body is not read, so the
         * connection cannot be reused */
        proxy__detach(r, false);
        px->state = PX_DONE;
        if (gw_req_send(r, NULL, 0) == 0)
            gw_req_end(r);
        return -1;
    }
    if (v == FILTER_CONTINUE)
        proxy__write_client_head(r); // copies the header slices before uin is read into again
    else
        px->out = PX_OUT_NONE; // a filter wrote the answer (the cache, from a 304)
    px->head_done = true;
    proxy__arm(r); // first-byte deadline no longer applies
    if (no_body)
        px->res_done = true;
    return 1;
}

/* A re-encoding failed before any byte of the answer reached the client (its head still waits
 * whole at the end of r->out, nothing of the body followed): the head is taken back, so the
 * client gets an error answer instead of a cut body. */
static bool proxy__unsend_head(struct gw_req *r)
{
    struct proxy *px = &r->px;
    if (px->xform_sent || r->bytes_out > 0 || !px->client_head_queued || !gw_req_unhead(r))
        return false;
    px->client_head_queued = false;
    r->head_sent = false;
    r->status = 0;
    return true;
}

/* Re-encodes <n> body bytes (<last>: the end) through the filter that transforms the body into
 * px->xout. 0, or -3 when the filter failed (px->xform_failed: the client must be closed
 * without a last chunk, unless nothing of the answer went out yet: then r->head_sent is false
 * again and an error page can answer). */
static int proxy__xform_step(struct gw_req *r, const char *p, size_t n, bool last)
{
    struct proxy *px = &r->px;
    buf_reset(&px->xout);
    if (filter_transform(r, px->xform, p, n, last, &px->xout) == -1) {
        px->xform_failed = true;
        if (!proxy__unsend_head(r))
            r->keep_alive = false;
        return -3;
    }
    return 0;
}

/* Sends what proxy__xform_step left in px->xout, framed for the client (<last>: and the end of
 * the chunks). -1 when the client is gone. */
static int proxy__xform_send(struct gw_req *r, bool last)
{
    struct proxy *px = &r->px;
    size_t len = buf_pending(&px->xout);
    int rc = 0;
    if (len > 0) {
        px->xform_sent = true;
        if (px->out == PX_OUT_CHUNKED)
            buf_printf(r->out, "%zx\r\n", len);
        rc = gw_req_send(r, buf_head(&px->xout), len);
        if (rc == 0 && px->out == PX_OUT_CHUNKED)
            buf_append(r->out, "\r\n", 2);
    }
    if (rc == 0 && last && px->out == PX_OUT_CHUNKED)
        buf_append(r->out, "0\r\n\r\n", 5);
    if (buf_room(&px->xout) > 4 * CONN_BLOCK) { // one big step: do not keep its memory
        buf_deinit(&px->xout);
        buf_init(&px->xout);
    }
    return rc;
}

/* Both: -1 when the client is gone, -3 when the filter failed. */
static int proxy__send_transformed(struct gw_req *r, const char *p, size_t n, bool last)
{
    int rc = proxy__xform_step(r, p, n, last);
    return rc != 0 ? rc : proxy__xform_send(r, last);
}

/* Sends one piece of the body (h1cli: raw bytes and the decoded ones among them) to the client,
 * framed for it. Returns -1 when the client is gone, -3 when a re-encoding failed. */
static int proxy__forward(struct gw_req *r, const struct h1cli_piece *pc)
{
    struct proxy *px = &r->px;
    const char *data = pc->data;
    size_t dlen = pc->len;
    if (px->x.body.state == H1BODY_DONE)
        px->res_done = true;
    filter_body(r, data, dlen);
    int rc = 0;
    if (px->xform) {
        /* re-encoded: the last piece and the end of the chunks come from proxy__finish */
        if (dlen > 0)
            rc = proxy__send_transformed(r, data, dlen, false);
    } else if (px->res_body == H1_BODY_CHUNKED && px->out == PX_OUT_CHUNKED) {
        /* chunked to chunked: the validated bytes go out as they are, but for the trailer
         * section, collected (the decoder bounds it) and sent without the fields that must
         * not be trailers (a Content-Length trailer, Host...) */
        if (!pc->trailers) {
            rc = gw_req_send(r, pc->raw, pc->raw_len);
        } else {
            buf_append(&px->trail, pc->raw, pc->raw_len);
            if (px->res_done) {
                size_t tl = h1_chunked_filter_trailers(buf_head(&px->trail),
                                                       buf_pending(&px->trail));
                rc = gw_req_send(r, buf_head(&px->trail), tl);
                buf_reset(&px->trail);
            }
        }
    } else if (px->out == PX_OUT_CHUNKED && dlen > 0) {
        /* until the close, re-framed as one chunk per run */
        buf_printf(r->out, "%zx\r\n", dlen);
        rc = gw_req_send(r, data, dlen);
        if (rc == 0)
            buf_append(r->out, "\r\n", 2);
    } else if (dlen > 0) {
        rc = gw_req_send(r, data, dlen); // Content-Length as is; decoded to an HTTP/1.0 client
    }
    return rc;
}

/* The response is complete: give the connection back and end the request. */
static void proxy__finish(struct gw_req *r)
{
    struct proxy *px = &r->px;
    /* an upstream that heard an Upgrade and answered otherwise may still switch: not reused */
    bool reusable = px->x.res.keep_alive && px->req_done && buf_pending(&px->uin) == 0 &&
                    px->res_body != H1_BODY_UNTIL_CLOSE && !r->upgrade;
    /* Bytes past a complete response answer no request: the origin's framing is off (a body
     * after HEAD/204/304, more than Content-Length), so this response may itself be the stray
     * bytes of an earlier exchange. Not stored; the connection is closed, never reused. Nor is
     * an answer that came before the request was sent. */
    bool stray = buf_pending(&px->uin) > 0 && px->res_body != H1_BODY_UNTIL_CLOSE;
    /* nor one from a connection reused right after an exchange (no settled one was free) */
    bool settled = px->uc == NULL || uconn_settled(px->uc);
    /* the last step of a re-encoded body runs before the filters hear the response is done:
     * the cache may then store the whole encoded body as the stored response's variant */
    int xrc = px->xform && !px->xform_failed ? proxy__xform_step(r, NULL, 0, true) : 0;
    filter_response_done(r, !stray && px->req_done && settled); // the cache stores its copy
    if (px->uc != NULL)
        upool_observe(px->pool, px->uc, px->t_first_byte_us - px->t_sent_us,
                      px->x.res.status >= 500);
    if (stray && px->uc != NULL) {
        uconn_stray(px->uc, "bytes past the end of a response");
        px->uc = NULL;
    } else if (px->uc != NULL && px->res_body == H1_BODY_NONE) {
        uconn_settle(px->uc); // a late body must find the connection idle (pool.settle)
    }
    proxy__detach(r, reusable);
    px->state = PX_DONE;
    if (px->xform) {
        int rc = xrc != 0 ? xrc : px->xform_failed ? 0 : proxy__xform_send(r, true);
        if (rc == -1)
            return;
        if (rc == -3 && !r->head_sent) {
            gw_req_respond_error(r, 502, "bad_gateway", "the response could not be re-encoded",
                                 NULL);
            return;
        }
    } else if (px->out == PX_OUT_CHUNKED && px->res_body == H1_BODY_UNTIL_CLOSE) {
        buf_append(r->out, "0\r\n\r\n", 5);
    }
    if (px->xform_failed)
        r->keep_alive = false; // the body is cut short: only the close tells the client
    if (!px->req_body_read)
        r->keep_alive = false; // the upstream answered before the whole body: cannot resync
    if (px->out == PX_OUT_RAW_CLOSE)
        r->keep_alive = false;
    if (gw_req_send(r, NULL, 0) == -1)
        return;
    gw_req_end(r);
}

/* The upstream closed or failed before the response was complete (a body that lasts until the
 * close is complete there: h1cli says H1CLI_DONE). */
static void proxy__upstream_gone(struct gw_req *r, bool eof)
{
    struct proxy *px = &r->px;
    /* A kept-alive connection the server closed meanwhile: the request never reached it. Try
     * once more on a fresh connection when that cannot repeat a side effect. */
    if (!px->x.got_bytes && !px->retried && px->uc != NULL && uconn_reused(px->uc) &&
        px->req_body == H1_BODY_NONE) {
        upool_release(px->pool, px->uc, false);
        px->uc = NULL;
        px->retried = true;
        /* The whole head may have gone into the dead socket: send it again from the start, or
         * the fresh connection would wait for a request that was marked sent. */
        proxy__exchange_reset(px);
        proxy__acquire(r);
        return;
    }
    if (!px->head_done)
        proxy__fail(r, 502, "bad_gateway",
                    eof ? "upstream closed the connection before answering"
                        : "upstream connection failed",
                    GW_ERR_PROTO);
    else
        proxy__fail(r, 502, "bad_gateway", "upstream closed mid-response", GW_ERR_PROTO);
}

static void proxy__pump(struct gw_req *r)
{
    struct proxy *px = &r->px;
    if (px->state != PX_EXCHANGE || px->uc == NULL)
        return;
    /* request side */
    while (!px->req_done) {
        size_t in_before = buf_pending(r->in);
        size_t uout_before = buf_pending(&px->uout);
        if (px->req_body == H1_BODY_CHUNKED && !px->req_body_read) {
            int rc = proxy__reframe_chunked(r);
            if (rc < 0) {
                r->keep_alive = false;
                proxy__detach(r, false);
                px->state = PX_DONE;
                if (rc == -2)
                    gw_req_respond_error(r, 413, "payload_too_large",
                                       "request body over server.max_body_size", NULL);
                else
                    gw_req_respond_error(r, 400, "bad_request", "invalid chunked request body",
                                       NULL);
                return;
            }
        }
        if (proxy__send(r) == -1) {
            /* The upstream may have answered already (413, 401…) and stopped reading: read what
             * it sent before judging. EOF or an error on that read ends in upstream_gone (and
             * its retry of a stale kept-alive connection). */
            px->x.writable = false;
            px->x.readable = true;
        }
        /* Re-framing stops at the high mark; when the upstream then took it all, go on with
         * what the client buffer still holds: no event will come for bytes already read (the
         * chunked upload stall: the body timeout fired with the rest of the body in r->in).
         * Progress is either side moving: the client buffer shrank (re-framed) or the output
         * did (written). The output alone moves when it was at its mark on entry, so nothing
         * was re-framed here: the re-framer ran while the upstream was blocked (a read had
         * brought more than the mark at once, so the client buffer stays over its mark and
         * reads stay paused), and now the upstream took the whole output in one write (issue
         * #12; tests/unit/test_req.c test_chunked_body_stall). The next turn re-frames at least
         * one byte (the decoder consumes all it is given until the body ends), so this ends. */
        if (px->req_body == H1_BODY_CHUNKED && !px->req_body_read && px->x.writable &&
            buf_pending(r->in) > 0 && buf_pending(&px->uout) < CONN_BUF_HIGH &&
            (buf_pending(r->in) < in_before || buf_pending(&px->uout) < uout_before))
            continue;
        /* the client buffer drained into the upstream: read more body */
        if (!px->req_body_read) { // the session reads only when the socket has bytes
            r->sops->resume_read(r);
            if (px->state != PX_EXCHANGE)
                return;
        }
        break;
    }
    /* response side: h1cli reads when what uin holds is not enough */
    while (!px->res_done) {
        if (px->head_done && buf_pending(r->out) >= CONN_BUF_HIGH)
            return; // the client is slower than the upstream: wait for its drain
        gwthread_buf_take(r->th, &px->uin);
        struct h1cli_piece pc;
        enum h1cli_ev ev = h1cli_next(&px->x, &pc);
        if (ev == H1CLI_AGAIN)
            break;
        if (ev == H1CLI_HEAD) {
            if (proxy__on_head(r) < 0)
                return;
            continue;
        }
        if (ev == H1CLI_BODY) {
            int rc = proxy__forward(r, &pc);
            if (rc == -1)
                return;
            if (rc == -3) {
                proxy__fail(r, 502, "bad_gateway", "the response could not be re-encoded",
                            GW_ERR_PROTO);
                return;
            }
            continue;
        }
        if (ev == H1CLI_DONE) { // the body ended at the close, or with no byte of its own
            px->res_done = true;
            break;
        }
        const char *err = px->x.err;
        if (err == h1cli_err_closed || err == h1cli_err_io) {
            proxy__upstream_gone(r, err == h1cli_err_closed);
        } else if (err == h1cli_err_early) {
            uconn_stray(px->uc, "a response before the request was sent");
            px->uc = NULL;
            proxy__fail(r, 502, "bad_gateway", "upstream answered before the request was sent",
                        GW_ERR_PROTO);
        } else {
            proxy__fail(r, 502, "bad_gateway",
                        err == h1cli_err_head      ? "invalid response head from upstream"
                        : err == h1cli_err_interim ? "endless interim (1xx) responses from upstream"
                                                   : "invalid chunked response",
                        GW_ERR_PROTO);
        }
        return;
    }
    if (px->res_done && px->state == PX_EXCHANGE) {
        /* Flush the client side first, then finish: a response that went out whole may leave
         * the request body unsent (early answer), which proxy__finish accounts for. */
        if (!px->req_done && px->uc != NULL && proxy__send(r) == -1)
            px->req_done = false;
        proxy__finish(r);
    }
}

void proxy_on_client_data(struct gw_req *r)
{
    struct proxy *px = &r->px;
    if (px->state == PX_EXCHANGE)
        proxy__pump(r);
    /* waiting for a connection: the bytes stay in r->in (reads pause at the high mark) */
}

void proxy_on_client_drained(struct gw_req *r)
{
    struct proxy *px = &r->px;
    if (px->state == PX_EXCHANGE && px->head_done && !px->res_done)
        proxy__pump(r); // what uin holds goes first
}
