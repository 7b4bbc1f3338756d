/* The HTTP/1.1 client session: reads requests into a per-connection buffer until EAGAIN, parses
 * heads in place, hands each to the request layer (req.c) and writes the responses in order (one
 * request at a time; pipelined requests wait in the buffer). The one writer of the client socket
 * (conn__send, the session's gw_sess_ops.send). Owns the client-side timeouts: header (slowloris
 * -> 408), keep-alive idle, body, send. Knows nothing of routes, filters or upstream sockets. */
#include "gateway/conn.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/gwconf.h"
#include "gateway/h2sess.h"
#include "gateway/tunnel.h"
#include "http/headers.h"
#include "net/tls.h"

#define CONN_READ_CHUNK CONN_BLOCK
#define CONN_PARK_MIN 1040u   /* smallest parked partial head buffer (conn__park_head) */
#define CONN_LINGER_MS 2000 /* after an error response: drain the client before close (no RST) */

static void conn__on_event(struct loop *loop, int fd, void *arg, unsigned events);
static void conn__on_timer(struct loop *loop, void *arg);
static void conn__process(struct conn *c);
static void conn__arm(struct conn *c, enum srvconn_timer kind, uint64_t ms);
static int conn__read(struct conn *c);
static void conn__next_cb(struct loop *loop, void *arg);
static const struct gw_sess_ops conn_sess_ops;
static void conn__hdrs_give(struct conn *c);
static void conn__req_give(struct conn *c);

/* The request header array: a block when max_headers fits one (the default 100 does). */
static void conn__hdrs_take(struct conn *c)
{
    if (c->hdrs != NULL)
        return;
    size_t size = c->max_hdrs * sizeof(*c->hdrs);
    c->hdrs = size <= CONN_BLOCK ? gwthread_block_take(c->th) : xmalloc(size);
    if (c->rq != NULL)
        c->rq->hdrs = c->hdrs;
}

/* The request object of the connection: lent from the thread's free list when the connection
 * gets busy (a head to parse), given back when it goes idle (conn__req_give), so an idle
 * keep-alive connection holds none (HTTP/2 will hold one per stream the same way). */
static struct gw_req *conn__req(struct conn *c)
{
    if (c->rq != NULL)
        return c->rq;
    struct gwthread *th = c->th;
    struct gw_req *r = th->free_reqs;
    if (r != NULL) {
        th->free_reqs = r->next_free;
        th->nfree_reqs--;
    } else {
        r = xmalloc(sizeof(*r));
        gw_req_init(r, &conn_sess_ops, c, &c->sc.in, &c->sc.out, c->client_ip);
    }
    r->next_free = NULL;
    r->sess = c;
    r->in = &c->sc.in;
    r->out = &c->sc.out;
    r->client_ip = c->client_ip;
    r->th = th;
    r->max_hdrs = c->max_hdrs;
    r->hdrs = c->hdrs;
    gw_req_reset(r);
    r->keep_alive = true;
    c->rq = r;
    return r;
}

static void conn__req_give(struct conn *c)
{
    struct gw_req *r = c->rq;
    if (r == NULL)
        return;
    AG_ASSERT(r->state != GW_REQ_ACTIVE);
    struct gwthread *th = c->th;
    gw_req_abort(r); // stops the exchange's timers (nothing else: the request ended)
    gw_req_release(r);
    c->rq = NULL;
    r->next_free = th->free_reqs;
    th->free_reqs = r;
    th->nfree_reqs++;
}

static void conn__req_free(struct gw_req *r)
{
    gw_req_release(r);
    gw_req_deinit(r);
    free(r);
}

/* Hands back everything a request borrowed. Only for a connection with no request in progress
 * and nothing pending in either direction: what is left in the buffers is dead. */
static void conn__release(struct gwthread *th, struct conn *c)
{
    th->parked_bytes -= c->in_parked;
    c->in_parked = 0;
    gwthread_buf_give(th, &c->sc.in);
    gwthread_buf_give(th, &c->sc.out);
    conn__hdrs_give(c);
    conn__req_give(c);
}

/* Gives the request header array back (it is filled again by every parse of the head). */
static void conn__hdrs_give(struct conn *c)
{
    if (c->hdrs == NULL)
        return;
    if (c->max_hdrs * sizeof(*c->hdrs) <= CONN_BLOCK)
        gwthread_block_give(c->th, c->hdrs);
    else
        free(c->hdrs);
    c->hdrs = NULL;
    if (c->rq != NULL)
        c->rq->hdrs = NULL;
}

/* A connection whose head is incomplete and whose socket is drained (a slow client, or a
 * slowloris one) keeps only the bytes it has: they move into a buffer of their size, and the
 * read block and header array go back to the thread. Memory then grows with what the client
 * sent, never by 16 KB blocks or a 32 KB grown buffer per connection. The thread's parked bytes
 * are bounded by server.max_head_memory: a connection that would go over it is closed. Returns
 * -1 when <c> was closed. */
static int conn__park_head(struct conn *c)
{
    struct gwthread *th = c->th;
    conn__hdrs_give(c);
    size_t pend = buf_pending(&c->sc.in);
    if (c->in_parked > 0 || pend == 0)
        return 0;
    /* Whole 512-byte steps, never under CONN_PARK_MIN: fewer sizes, and none small enough for
     * glibc's per-thread cache, whose chunks would pin scattered pages after the attack. */
    size_t cap = (pend + 511) & ~(size_t)511;
    if (cap < CONN_PARK_MIN)
        cap = CONN_PARK_MIN;
    if (th->parked_bytes + cap > th->sh->cfg->server.max_head_memory) {
        static struct log_limit lim; // under attack this is every new slow connection
        ag_log_limited(AG_LOG_WARN, &lim,
                       "client %s: closed: the partial request heads of this thread hold "
                       "server.max_head_memory (%zu bytes)",
                       c->client_ip, th->parked_bytes);
        conn_close(c);
        return -1;
    }
    char *p = xmalloc(cap);
    memcpy(p, buf_head(&c->sc.in), pend);
    gwthread_buf_give(th, &c->sc.in);
    c->sc.in.data = p;
    c->sc.in.cap = cap;
    c->sc.in.len = pend;
    c->sc.in.off = 0;
    c->in_parked = (uint32_t)cap;
    th->parked_bytes += cap;
    return 0;
}

/* Before a read: a parked partial head goes back into a block (or stays in its own buffer when
 * it is larger than one, growing from there). */
static void conn__unpark_head(struct conn *c)
{
    struct gwthread *th = c->th;
    if (c->in_parked == 0)
        return;
    th->parked_bytes -= c->in_parked;
    c->in_parked = 0;
    if (c->sc.in.len > CONN_BLOCK / 2)
        return;
    struct buf small = c->sc.in;
    buf_init(&c->sc.in);
    gwthread_buf_take(th, &c->sc.in);
    memcpy(c->sc.in.data, small.data, small.len);
    c->sc.in.len = small.len;
    buf_deinit(&small);
}

void conn_trim(struct gwthread *th)
{
    size_t freed = 0;
    size_t keep_conns = 64 + th->nconns / 8;
    while (th->nfree > keep_conns) {
        struct conn *c = th->free_conns;
        th->free_conns = c->next;
        th->nfree--;
        buf_deinit(&c->sc.in);
        buf_deinit(&c->sc.out);
        free(c->hdrs);
        c->magic = 0;
        free(c);
        freed += sizeof(*c);
    }
    size_t keep_reqs = 16 + th->nconns / 8;
    while (th->nfree_reqs > keep_reqs) {
        struct gw_req *r = th->free_reqs;
        th->free_reqs = r->next_free;
        th->nfree_reqs--;
        conn__req_free(r);
        freed += sizeof(*r);
    }
    /* an HTTP/2 stream holds blocks as a busy connection does */
    freed += gwthread_blocks_trim(th, 16 + th->nconns / 4 + 2 * th->h2_streams_hw);
    freed += h2sess_trim(th, 16 + th->h2_streams_hw);
    th->h2_streams_hw = th->h2_streams;
    th->trimmed_bytes += freed;
    /* Memory freed by closed connections stays in malloc's arenas (and in the RSS) until it is
     * trimmed: after a drop of many connections, or enough freed here, give it back, once the
     * wave of closes is over (the count stopped falling since the last tick). */
    if (th->trimmed_bytes >= (1u << 20) || th->peak_conns >= th->nconns + 256)
        th->trim_due = true;
    if (th->trim_due && th->nconns >= th->tick_conns) {
#if defined(__GLIBC__)
        malloc_trim(0);
#endif
        th->trim_due = false;
        th->trimmed_bytes = 0;
        th->peak_conns = th->nconns;
    }
    th->tick_conns = th->nconns;
}

/* A keep-alive connection waiting for its next request with nothing buffered holds no block:
 * thousands of idle clients then cost about their struct each (nginx and HAProxy free their
 * buffers the same way). The next request takes blocks from the thread's free list again, so
 * a busy connection pays a few pointer moves per request, not a malloc. */
static void conn__idle_release(struct conn *c)
{
    if (c->state != CONN_HEAD || c->sc.readable || c->sc.read_eof ||
        (c->rq != NULL && c->rq->px.state != PX_IDLE) ||
        buf_pending(&c->sc.in) > 0 || buf_pending(&c->sc.out) > 0)
        return;
    conn__release(c->th, c);
}

/* ---- lifetime ---- */

static struct conn *conn__get(struct gwthread *th)
{
    struct conn *c = th->free_conns;
    if (c != NULL) {
        th->free_conns = c->next;
        th->nfree--;
        return c;
    }
    const struct gw_config *cfg = th->sh->cfg;
    c = xcalloc(1, sizeof(*c));
    c->magic = CONN_MAGIC;
    srvconn_init(&c->sc, conn__on_timer, c);
    c->rq = NULL; // lent per request (conn__req)
    c->max_hdrs = (uint32_t)cfg->server.max_headers;
    if (c->max_hdrs == 0)
        c->max_hdrs = 100;
    c->hdrs = NULL; // lent per request (conn__hdrs_take)
    return c;
}

/* Gives the blocks back to the thread (a closed conn holds none) and keeps the struct. */
static void conn__put(struct gwthread *th, struct conn *c)
{
    conn__release(th, c);
    if (th->nfree >= 1024) {
        c->magic = 0;
        free(c);
        return;
    }
    c->next = th->free_conns;
    th->free_conns = c;
    th->nfree++;
}

void conn_free_all(struct gwthread *th)
{
    while (th->free_conns != NULL) {
        struct conn *c = th->free_conns;
        th->free_conns = c->next;
        buf_deinit(&c->sc.in);
        buf_deinit(&c->sc.out);
        free(c->hdrs);
        c->magic = 0;
        free(c);
    }
    th->nfree = 0;
    while (th->free_reqs != NULL) {
        struct gw_req *r = th->free_reqs;
        th->free_reqs = r->next_free;
        conn__req_free(r);
    }
    th->nfree_reqs = 0;
    gwthread_blocks_free(th);
}

static void conn__reset_request(struct conn *c)
{
    c->sc.sent_continue = false;
    if (c->rq != NULL)
        gw_req_reset(c->rq);
}

void conn_accept(struct gwthread *th, int fd, const char *ip, struct tls_server *tls)
{
    struct conn *c = conn__get(th);
    c->sc.handshaking = false;
    if (tls == NULL) {
        srvconn_open(&c->sc, fd);
    } else {
        char err[256];
        if (tls_server_transport_init(&c->sc.tp, tls, fd, err, sizeof(err)) != 0) {
            static struct log_limit tls_lim;
            ag_log_limited(AG_LOG_WARN, &tls_lim, "client %s: %s", ip, err);
            close(fd);
            conn__put(th, c);
            atomic_fetch_sub(&th->sh->conns, 1);
            return;
        }
        srvconn_open(&c->sc, -1); // the TLS transport is in place
        c->sc.handshaking = true;
    }
    c->th = th;
    c->state = CONN_HEAD;
    snprintf(c->client_ip, sizeof(c->client_ip), "%s", ip);
    c->requests = 0;
    c->accept_ms = loop_now_ms(th->loop);
    conn__reset_request(c);
    if (loop_add_fd(th->loop, fd, LOOP_READ | LOOP_WRITE, conn__on_event, c) == -1) {
        static struct log_limit reg_lim;
        ag_log_limited(AG_LOG_WARN, &reg_lim, "register client fd: %s", strerror(errno));
        transport_close(&c->sc.tp);
        conn__put(th, c);
        atomic_fetch_sub(&th->sh->conns, 1);
        return;
    }
    c->prev = NULL;
    c->next = th->active;
    if (th->active)
        th->active->prev = c;
    th->active = c;
    th->nconns++;
    if (th->nconns > th->peak_conns)
        th->peak_conns = th->nconns;
    metrics_gauge_add(th->ms, th->sh->ids.conns_open, 1);
    conn__arm(c, SRVCONN_T_HEADER, th->sh->cfg->server.client_header_timeout_ms);
}

static void conn__free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    conn__put(c->th, c);
}

void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    struct gwthread *th = c->th;
    c->state = CONN_CLOSED;
    if (c->rq != NULL)
        gw_req_abort(c->rq); // a request in progress ends unanswered
    srvconn_close(&c->sc, th->loop); // TLS: frees the session state (no close_notify wait)
    if (c->prev)
        c->prev->next = c->next;
    else
        th->active = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    th->nconns--;
    atomic_fetch_sub(&th->sh->conns, 1);
    metrics_gauge_add(th->ms, th->sh->ids.conns_open, -1);
    /* Never free inside our own callback: after the event batch. */
    loop_defer(th->loop, conn__free_cb, c);
}

void conn_close_idle(struct gwthread *th)
{
    struct conn *c = th->active, *next;
    for (; c != NULL; c = next) {
        next = c->next;
        if (c->rq != NULL)
            c->rq->keep_alive = false; // finish the current request, then close
        if (c->sc.handshaking) {
            /* a TLS client in its handshake gets a second from its accept, as below */
            if (loop_now_ms(th->loop) - c->accept_ms > 1000)
                conn_close(c);
            continue;
        }
        if (c->state != CONN_HEAD || buf_pending(&c->sc.in) > 0 || buf_pending(&c->sc.out) > 0)
            continue;
        /* A request may already wait in the socket (its edge not handled yet): serve it rather
         * than close under it. An idle kept-alive connection is not closed at once either: the
         * client may be sending its next request right now, and a close would reset it (wrk's
         * "Socket errors: read" on every reload). It stays read until th->drain_idle_until_ms:
         * a request that arrives is served with Connection: close (HAProxy's
         * idle-close-on-response). A connection that has not sent its first request yet gets a
         * second from its accept: it was accepted to be served. */
        c->sc.readable = true;
        if (conn__read(c) == -1)
            continue; // closed
        uint64_t now = loop_now_ms(th->loop);
        if (buf_pending(&c->sc.in) > 0 || c->sc.read_eof)
            loop_defer(th->loop, conn__next_cb, c);
        else if (c->requests > 0 ? now >= th->drain_idle_until_ms : now - c->accept_ms > 1000)
            conn_close(c); // silent through the grace: it would only delay the exit
    }
}

/* ---- timers ---- */

static void conn__arm(struct conn *c, enum srvconn_timer kind, uint64_t ms)
{
    srvconn_arm(&c->sc, c->th->loop, kind, ms);
}

static void conn__on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    switch ((enum srvconn_timer)c->sc.timer_kind) {
    case SRVCONN_T_HEADER:
        if (buf_pending(&c->sc.in) > 0 && buf_pending(&c->sc.out) == 0) {
            /* a head that trickles in (slowloris): 408, then close */
            struct gw_req *r = conn__req(c);
            r->keep_alive = false;
            c->state = CONN_BUSY;
            gw_req_begin(r);
            gw_req_make_rid(r, NULL); // the answer and the log name it like any request
            if (r->t_start_us == 0)
                r->t_start_us = clock_now_us();
            r->wall_ms = clock_wall_ms();
            gw_req_respond_error(r, 408, "request_timeout", "request head not received in time",
                                 NULL);
        } else {
            conn_close(c);
        }
        break;
    case SRVCONN_T_BODY:
        if (c->state == CONN_BUSY && c->rq->px.req_body_read) {
            c->sc.timer_kind = SRVCONN_T_NONE; // the body completed meanwhile: the upstream's turn now
            break;
        }
        if (c->rq != NULL)
            c->rq->keep_alive = false;
        if (c->state == CONN_BUSY && !c->rq->head_sent) {
            /* the exchange is dropped by the answer */
            gw_req_respond_error(c->rq, 408, "request_timeout",
                                 "request body not received in time", NULL);
        } else {
            conn_close(c);
        }
        break;
    case SRVCONN_T_IDLE:
    case SRVCONN_T_SEND:
    case SRVCONN_T_LINGER:
    default:
        conn_close(c);
        break;
    }
}

/* ---- output ---- */

/* Reads and drops what the client sends (a closing connection), until EAGAIN; closes <c> at its
 * EOF or error. */
static void conn__drop_input(struct conn *c)
{
    if (srvconn_drop_input(&c->sc) != IO_AGAIN)
        conn_close(c);
}

/* The lingering close (srvconn_linger): half-close, then read and drop what the client still
 * sends, so unread bytes do not make the kernel reset the error response away. */
static void conn__linger(struct conn *c)
{
    c->state = CONN_CLOSING;
    if (srvconn_linger(&c->sc, c->th->loop, CONN_LINGER_MS) != IO_AGAIN)
        conn_close(c);
}

/* The one writer of the client socket: what waits in c->sc.out, then <iov> (zero-copy: the part
 * the socket does not take is copied into c->sc.out). Returns 0, or -1 when the client is gone (the
 * conn is then closed, its request aborted). */
static int conn__sendv(struct conn *c, const struct iovec *iov, int n)
{
    if (c->state == CONN_CLOSED)
        return -1;
    bool was_writable = c->sc.writable;
    ssize_t w = srvconn_sendv(&c->sc, iov, n);
    if (w < 0) {
        conn_close(c);
        return -1;
    }
    if (w > 0 && c->rq != NULL)
        c->rq->bytes_out += (uint64_t)w;
    if (buf_pending(&c->sc.out) > 0) {
        /* send_timeout is the longest pause between two writes that made progress */
        if ((was_writable && w > 0) || c->sc.timer_kind != SRVCONN_T_SEND)
            conn__arm(c, SRVCONN_T_SEND, c->th->sh->cfg->server.send_timeout_ms);
    } else if (c->sc.timer_kind == SRVCONN_T_SEND) {
        conn__arm(c, SRVCONN_T_NONE, 0);
    }
    return 0;
}

static int conn__send(struct conn *c)
{
    return conn__sendv(c, NULL, 0);
}

static void conn__flush(struct conn *c)
{
    if (conn__send(c) == -1)
        return;
    if (buf_pending(&c->sc.out) > 0)
        return;
    switch (c->state) {
    case CONN_CLOSING:
        if (c->sc.timer_kind != SRVCONN_T_LINGER)
            conn__linger(c);
        break;
    case CONN_BUSY:
        gw_req_on_drained(c->rq);
        break;
    case CONN_HEAD:
        /* a pipelined request held back while output was pending; else the idle timer takes
         * over from the send timer */
        conn__process(c);
        break;
    default:
        break;
    }
}

/* After the batch, not inline: the proxy or cache code that ended the request may still look
 * at its buffers on the way out. */
static void conn__idle_cb(struct loop *loop, void *arg)
{
    (void)loop;
    conn__idle_release(arg);
}

static void conn__next_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    if (c->state != CONN_HEAD)
        return;
    if (buf_pending(&c->sc.in) > 0 || c->sc.readable || c->sc.read_eof)
        conn__process(c);
}

/* The upstream switched protocols: the transport, the bytes the client sent after its Upgrade
 * request (tunnel bytes) and the 101 head waiting in c->out go to the tunnel (tunnel.c); this
 * conn closes without touching the socket, as conn__to_h2 does. */
static void conn__to_tunnel(struct conn *c, struct gw_req *r)
{
    struct gwthread *th = c->th;
    struct tunnel *t = r->tunnel;
    r->tunnel = NULL;
    struct transport tp = c->sc.tp;
    loop_del_fd(th->loop, c->sc.tp.fd);
    c->sc.tp.fd = -1; // conn_close leaves the socket alone
    c->sc.tp._tls = NULL;
    tunnel_start(t, &tp, buf_head(&c->sc.in), buf_pending(&c->sc.in), buf_head(&c->sc.out),
                 buf_pending(&c->sc.out));
    buf_reset(&c->sc.in);
    buf_reset(&c->sc.out);
    conn_close(c);
}

/* gw_sess_ops.done: the request ended; keep-alive, or close once the answer is out. */
static void conn__request_done(struct gw_req *r)
{
    struct conn *c = r->sess;
    if (c->state == CONN_CLOSED)
        return;
    if (r->tunnel != NULL) {
        conn__to_tunnel(c, r);
        return;
    }
    struct gwthread *th = c->th;
    struct gw_shared *sh = th->sh;
    c->requests++;
    int64_t ka = sh->cfg->server.keepalive_requests;
    if (ka > 0 && c->requests >= (uint64_t)ka)
        r->keep_alive = false;
    if (th->draining)
        r->keep_alive = false;
    if (!r->keep_alive) {
        c->state = CONN_CLOSING;
        /* A response head may sit in c->sc.out unwritten (an upstream body that failed right
         * after it): no write edge would ever come for it, so write it now or arm SRVCONN_T_SEND. */
        if (conn__send(c) == -1)
            return;
        if (buf_pending(&c->sc.out) == 0)
            conn__linger(c);
        return;
    }
    c->state = CONN_HEAD;
    conn__reset_request(c);
    if (buf_pending(&c->sc.out) == 0 && c->sc.timer_kind != SRVCONN_T_IDLE)
        conn__arm(c, SRVCONN_T_IDLE, sh->cfg->server.keepalive_timeout_ms);
    /* The next pipelined request (or a read we postponed) runs after this event batch, never
     * from inside the upstream handler that just finished the response. */
    if (buf_pending(&c->sc.in) > 0 || c->sc.readable || c->sc.read_eof)
        loop_defer(th->loop, conn__next_cb, c);
    else
        loop_defer(th->loop, conn__idle_cb, c); // the socket was drained: wait empty-handed
}

/* ---- input ---- */

/* Whether reading the client now would only pile up bytes nobody consumes yet. */
static bool conn__read_paused(const struct conn *c)
{
    const struct gw_config *cfg = c->th->sh->cfg;
    size_t pend = buf_pending(&c->sc.in);
    if (c->state == CONN_HEAD)
        return pend > cfg->server.max_head_size;
    if (c->state != CONN_BUSY)
        return c->state != CONN_CLOSING;
    if (!c->rq->px.req_body_read)
        return pend >= CONN_BUF_HIGH || buf_pending(&c->rq->px.uout) >= CONN_BUF_HIGH;
    /* body done: only the next pipelined head may be buffered */
    return pend > cfg->server.max_head_size;
}

/* server.client_body_timeout bounds the client's silence while the gateway waits for its body:
 * the timer runs from the read that drained the socket, starts again at every read that brought
 * bytes (<got>), and is stopped while reads are paused at the high marks, where the upstream is
 * the slower side (the route's timeout.total bounds that), as the HTTP/2 session counts only
 * while a stream's window is open. It was armed only by conn__process after a read that drained
 * the socket and ran on through resume_read's reads and the pauses: an upload paced by a slow
 * upstream got 408 "request body not received in time" while it was being read (e2e/124). */
static void conn__body_timer(struct conn *c, bool got)
{
    if (c->state != CONN_BUSY || c->rq->px.req_body_read || c->sc.read_eof)
        return;
    enum srvconn_timer k = c->sc.timer_kind;
    if (k != SRVCONN_T_NONE && k != SRVCONN_T_BODY)
        return; // the send timer: the client does not read what it was sent
    if (conn__read_paused(c)) {
        if (k == SRVCONN_T_BODY)
            conn__arm(c, SRVCONN_T_NONE, 0);
        return;
    }
    if (c->sc.readable)
        return; // bytes wait in the socket: the next read takes them
    if (got || k == SRVCONN_T_NONE)
        conn__arm(c, SRVCONN_T_BODY, c->th->sh->cfg->server.client_body_timeout_ms);
}

/* Reads until EAGAIN (or until the buffer reached what may be buffered). Returns -1 when the
 * conn was closed. */
static int conn__read(struct conn *c)
{
    bool got = false;
    while (c->sc.readable && !c->sc.read_eof && !conn__read_paused(c)) {
        conn__unpark_head(c);
        gwthread_buf_take(c->th, &c->sc.in);
        /* A head is read into the room the block has, growing only once it is full. A short
         * read drained the socket (srvconn_read_once clears sc.readable): the EAGAIN read is
         * skipped, as nginx does, unless the client hung up. */
        ssize_t n =
            srvconn_read_once(&c->sc, &c->sc.in, c->state == CONN_HEAD ? 1 : CONN_READ_CHUNK);
        if (n == IO_ERR) {
            conn_close(c);
            return -1;
        }
        got |= n > 0;
    }
    conn__body_timer(c, got);
    return 0;
}

/* gw_sess_ops.resume_read: the request consumed body bytes; read more when the socket has some. */
static void conn__resume_read(struct gw_req *r)
{
    struct conn *c = r->sess;
    if (c->state == CONN_BUSY && c->sc.read_eof && buf_pending(&c->sc.in) == 0 &&
        gw_req_body_pending(r)) {
        /* everything the client sent before its FIN is consumed and the body is not whole: it
         * went away mid-body (seen here when the FIN came while a connection was awaited) */
        conn_close(c);
        return;
    }
    if (c->state != CONN_BUSY || !c->sc.readable || conn__read_paused(c))
        return;
    if (conn__read(c) == -1)
        return;
    gw_req_on_body(r);
}

/* gw_sess_ops.send */
static int conn__sess_send(struct gw_req *r, const struct iovec *iov, int n)
{
    return conn__sendv(r->sess, iov, n);
}

/* gw_sess_ops.continue_100 */
static void conn__continue_100(struct gw_req *r)
{
    struct conn *c = r->sess;
    buf_append_str(&c->sc.out, "HTTP/1.1 100 Continue\r\n\r\n");
    c->sc.sent_continue = true;
    conn__send(c);
}

/* gw_sess_ops.head: HTTP/1.1 lines queued in the output, written with the body's first bytes by
 * the next send (one writev for a cache hit). */
static void conn__head(struct gw_req *r, const struct gw_head *h)
{
    struct conn *c = r->sess;
    size_t n = gw_head_write_h1(h, &c->sc.out);
    r->head_h1_len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n; // gw_req_unhead takes it back
}

static const struct gw_sess_ops conn_sess_ops = {
    .head = conn__head,
    .send = conn__sess_send,
    .resume_read = conn__resume_read,
    .done = conn__request_done,
    .continue_100 = conn__continue_100,
};

/* A complete head is in c->sc.in: hand it to the request layer. */
static void conn__start_request(struct conn *c, size_t head_len)
{
    struct gwthread *th = c->th;
    const struct gw_config *cfg = th->sh->cfg;
    struct gw_req *r = conn__req(c);
    c->state = CONN_BUSY;
    conn__arm(c, SRVCONN_T_NONE, 0);
    gwthread_buf_take(th, &c->sc.out); // response heads are appended without growing from 256 bytes
    gw_req_begin(r);
    if (r->t_start_us == 0)
        r->t_start_us = clock_now_us();
    r->wall_ms = clock_wall_ms();
    /* keepalive_timeout 0 means no keep-alive at all */
    r->keep_alive = r->req.keep_alive && !th->draining && cfg->server.keepalive_timeout_ms > 0;
    /* The slices of r->req stay valid: nothing reads into c->sc.in before the request layer
     * copied what it keeps (the proxy's head, the cache's own copy). */
    buf_consume(&c->sc.in, head_len);
    r->req.https = c->sc.tp.ops != &transport_tcp_ops; // after the parse, which clears the struct
    r->client_verify = (signed char)tls_transport_client_verify(&c->sc.tp);
    gw_req_start(r);
}

/* The connection speaks HTTP/2 (a client preface, or ALPN h2): its transport and the bytes read
 * so far go to an HTTP/2 session (h2sess.c); this conn closes without touching the socket. */
static void conn__to_h2(struct conn *c)
{
    struct gwthread *th = c->th;
    struct transport tp = c->sc.tp;
    loop_del_fd(th->loop, c->sc.tp.fd);
    c->sc.tp.fd = -1; // conn_close leaves the socket alone
    c->sc.tp._tls = NULL;
    h2sess_accept(th, &tp, c->client_ip, buf_head(&c->sc.in), buf_pending(&c->sc.in));
    buf_reset(&c->sc.in);
    conn_close(c);
}

/* Runs the state machine over what is buffered. */
static void conn__process(struct conn *c)
{
    struct gwthread *th = c->th;
    const struct gw_config *cfg = th->sh->cfg;
    if (conn__read(c) == -1)
        return;
    switch (c->state) {
    case CONN_HEAD: {
        if (buf_pending(&c->sc.out) >= CONN_BUF_HIGH)
            return; // the client is not reading its responses: wait for the drain
        size_t pend = buf_pending(&c->sc.in);
        if (pend == 0) {
            if (c->sc.read_eof) {
                conn_close(c);
                return;
            }
            if (c->sc.timer_kind != SRVCONN_T_IDLE && c->sc.timer_kind != SRVCONN_T_HEADER)
                conn__arm(c, SRVCONN_T_IDLE, cfg->server.keepalive_timeout_ms);
            conn__idle_release(c); // the read met EAGAIN: nothing to hold a block for
            return;
        }
        if (c->requests == 0 && cfg->http2.enabled && buf_head(&c->sc.in)[0] == 'P' &&
            h2sess_is_preface(buf_head(&c->sc.in), pend)) {
            if (pend >= H2SESS_PREFACE_LEN) {
                conn__to_h2(c); // h2c by prior knowledge
                return;
            }
            if (c->sc.read_eof)
                conn_close(c);
            return; // the rest of the preface comes within the header timeout
        }
        conn__hdrs_take(c);
        struct gw_req *rq = conn__req(c);
        struct h1_limits lim = {.max_request_line = 0,
                                .max_head = cfg->server.max_head_size,
                                .max_headers = rq->max_hdrs};
        /* the header timeout counts from the first byte, never re-armed per read: that is what
         * defeats a slowloris client (srvconn_head arms it when a head is incomplete) */
        bool timed = c->sc.timer_kind == SRVCONN_T_HEADER;
        int r = srvconn_head(&c->sc, th->loop, &rq->req, c->hdrs, rq->max_hdrs, &lim,
                             cfg->server.client_header_timeout_ms);
        if (r == SRVCONN_HEAD_EOF) {
            conn_close(c); // half a head and then EOF: nothing to answer
            return;
        }
        if (r == SRVCONN_HEAD_MORE) {
            if (!timed)
                rq->t_start_us = clock_now_us();
            if (!c->sc.readable)
                conn__park_head(c); // the socket is drained: wait holding only these bytes
            return;
        }
        if (r == SRVCONN_HEAD_BAD) {
            c->state = CONN_BUSY;
            gw_req_begin(rq);
            rq->keep_alive = false;
            if (rq->t_start_us == 0)
                rq->t_start_us = clock_now_us();
            rq->wall_ms = clock_wall_ms();
            conn__arm(c, SRVCONN_T_NONE, 0);
            rq->route = -1;
            /* a generated id: the client's X-Request-Id is in a head we just refused */
            gw_req_make_rid(rq, NULL);
            gw_req_respond_error(rq, h1_err_status(rq->req.err), "bad_request",
                                 h1_err_text(rq->req.err), NULL);
            return;
        }
        conn__start_request(c, (size_t)r);
        conn__body_timer(c, false); // the rest of the body has to come in time too
        return;
    }
    case CONN_BUSY:
        if (!c->rq->px.req_body_read) {
            gw_req_on_body(c->rq);
            conn__body_timer(c, false); // reads may have paused or reopened meanwhile
            if (c->state == CONN_BUSY && !c->rq->px.req_body_read && !c->sc.read_eof &&
                c->sc.readable)
                return;
        }
        if (c->state == CONN_BUSY && c->sc.read_eof && !c->rq->px.req_body_read &&
            c->rq->px.state != PX_WAIT_CONN) {
            /* the client went away in the middle of its body (while a connection is awaited,
             * the body may be whole in c->sc.in: the proxy judges once it has moved what is there) */
            conn_close(c);
        }
        return;
    case CONN_CLOSING:
        if (c->sc.timer_kind == SRVCONN_T_LINGER) {
            conn__drop_input(c);
            return;
        }
        buf_reset(&c->sc.in);
        return;
    default:
        return;
    }
}

/* A plain HTTP request on a TLS listener gets a plain 400 that says why, then a close (nginx
 * answers 400 "The plain HTTP request was sent to HTTPS port" the same way). What the client sent
 * is read first, so the close does not reset the answer away. */
static void conn__answer_plain_http(struct conn *c)
{
#define CONN_PLAIN_BODY "This port speaks HTTPS: send the request with https://\n"
    static const char resp[] = "HTTP/1.1 400 Bad Request\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 55\r\n"
                               "Connection: close\r\n"
                               "\r\n" CONN_PLAIN_BODY;
    _Static_assert(sizeof(CONN_PLAIN_BODY) - 1 == 55, "Content-Length of the plain HTTP answer");
    char scratch[4096];
    while (recv(c->sc.tp.fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0)
        ;
    (void)!send(c->sc.tp.fd, resp, sizeof(resp) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(c->sc.tp.fd, SHUT_WR);
}

/* One step of the TLS handshake. Returns 0 when it is done (the connection goes on as HTTP),
 * 1 while it waits for the client, -1 when <c> was closed. The header timer armed at the accept
 * bounds the whole handshake. */
static int conn__handshake(struct conn *c)
{
    struct gwthread *th = c->th;
    int r = transport_handshake(&c->sc.tp);
    if (r == IO_AGAIN)
        return 1;
    if (r == IO_OK) {
        c->sc.handshaking = false;
        c->sc.readable = true;
        metrics_counter_inc(th->ms, tls_transport_resumed(&c->sc.tp) ? th->sh->ids.tls_resumed
                                                                   : th->sh->ids.tls_full);
        return 0;
    }
    if (c->sc.tp.err == tls_err_plain_http) {
        static struct log_limit plain_lim;
        ag_log_limited(AG_LOG_WARN, &plain_lim, "client %s: plain HTTP request on a TLS "
                       "listener: answered 400", c->client_ip);
        metrics_counter_inc(th->ms, th->sh->ids.tls_plain_http);
        conn__answer_plain_http(c);
    } else {
        static struct log_limit hs_lim;
        char why[256];
        ag_log_limited(AG_LOG_DEBUG, &hs_lim, "client %s: TLS handshake failed: %s",
                       c->client_ip, tls_transport_describe(&c->sc.tp, why, sizeof(why)));
        metrics_counter_inc(th->ms, th->sh->ids.tls_failed);
    }
    conn_close(c);
    return -1;
}

static void conn__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct conn *c = arg;
    AG_ASSERT(c->magic == CONN_MAGIC);
    if (c->state == CONN_CLOSED)
        return;
    if (c->sc.handshaking) {
        if (events & LOOP_HUP)
            c->sc.peer_hup = true;
        if (conn__handshake(c) != 0)
            return;
        const char *alpn = tls_transport_alpn(&c->sc.tp);
        if (alpn != NULL && strcmp(alpn, "h2") == 0) {
            conn__to_h2(c);
            return;
        }
        events |= LOOP_READ; // the first request may have come with the client's Finished
    }
    if (events & LOOP_WRITE) {
        c->sc.writable = true;
        if (buf_pending(&c->sc.out) > 0) {
            conn__flush(c);
            if (c->state == CONN_CLOSED)
                return;
        }
    }
    if (events & LOOP_HUP)
        c->sc.peer_hup = true;
    if (events & LOOP_READ) {
        c->sc.readable = true;
        if (c->state == CONN_CLOSING && c->sc.timer_kind != SRVCONN_T_LINGER) {
            /* still flushing the last response: drop what arrives */
            char scratch[4096];
            while (transport_read(&c->sc.tp, scratch, sizeof(scratch)) > 0)
                ;
            c->sc.readable = false;
            return;
        }
        conn__process(c);
    }
}
