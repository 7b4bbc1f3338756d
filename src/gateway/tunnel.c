/* Upgrade tunnels (see tunnel.h): two sockets joined by two bounded buffers. Each direction reads
 * one side into its buffer only while the buffer has room, and writes it to the other side as
 * that side takes it, so a peer that never reads stops the other peer (TCP backpressure) and
 * costs the gateway at most tunnel.buffer per direction. An EOF on one side is passed on as a
 * half-close (shutdown of the other side's write) once its buffer is written; the tunnel ends
 * when both directions ended, on an error, after tunnel.idle_timeout without a byte,
 * tunnel.max_duration, or at the drain deadline. One access log line at the end (status 101).
 * The client side is a socket (HTTP/1.1 Upgrade) or an HTTP/2 stream (RFC 8441 extended CONNECT):
 * then the session pushes the client's DATA in and pulls the upstream's bytes out as its flow
 * control allows (tunnel_stream_*), and every entry from the session only queues a pump after
 * the batch, so no tunnel work (nor its end) runs inside nghttp2's callbacks. */
#include "gateway/tunnel.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/assert.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "gateway/accesslog.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "gateway/req.h"
#include "gateway/trace.h"
#include "net/transport.h"

#define TUNNEL_MAGIC 0x74756e6eu /* "tunn" */

const char *const tunnel_end_names[TUNNEL_END_COUNT] = {"closed", "idle_timeout", "max_duration",
                                                        "error", "drain"};

enum { T_CLIENT = 0, T_UP = 1 };

struct tunnel_side {
    struct tunnel *t;
    struct transport tp;
    unsigned idx;        // T_CLIENT or T_UP
    bool readable;       // edge-triggered readiness memory
    bool writable;
    bool hup;            // the peer closed: read on to the EOF even after a short read
    bool eof;            // read side ended (EOF): nothing more comes from this side
    bool shut;           // our write side towards this peer was shut down (half-close passed on)
    bool registered;
};

struct tunnel {
    unsigned magic;
    bool started, closing;
    struct gwthread *th;
    struct tunnel *next, *prev;   // th->tunnels
    struct tunnel_side s[2];
    struct buf b[2];              // b[i]: bytes read from side i, not yet written to the other
    size_t cap;                   // tunnel.buffer: most bytes read ahead per direction
    uint64_t moved[2];            // bytes written to the other side, by the side they came from
    uint64_t idle_ms, max_ms;
    uint64_t start_ms;            // loop time of the start (max_duration counts from there)
    uint64_t last_ms;             // loop time of the last byte moved (idle_timeout)
    struct loop_timer timer;
    enum tunnel_end end;
    // the access log line, copied from the request at the 101
    struct accesslog_entry log;
    char *strs;                   // the copies the entry points into (one allocation)
    uint64_t t_start_us;          // the request's first byte
    uint64_t t_sent_us;           // request sent upstream
    // the client side as an HTTP/2 stream (NULL: a socket)
    const struct tunnel_stream_ops *sops;
    void *sarg;
    bool pump_queued;             // a pump waits for the end of the event batch
    bool quiet;                   // ended by the stream's session: no ops->ended
};

static void tunnel__on_event(struct loop *loop, int fd, void *arg, unsigned events);
static void tunnel__on_timer(struct loop *loop, void *arg);
static void tunnel__pump(struct tunnel *t);
static void tunnel__close(struct tunnel *t, enum tunnel_end why);

/* ---- creation ---- */

/* Copies of the request's log strings into one block, for the line written at the end. */
static char *tunnel__copy(char **p, const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *d = *p;
    memcpy(d, s, n);
    d[n] = '\0';
    *p += n + 1;
    return d;
}

struct tunnel *tunnel_create(struct gw_req *r, struct transport *up)
{
    const struct gw_config *cfg = r->th->sh->cfg;
    const struct gw_route *gr = &cfg->routes[r->route];
    struct tunnel *t = xcalloc(1, sizeof(*t));
    t->magic = TUNNEL_MAGIC;
    t->th = r->th;
    t->s[T_UP].tp = *up;
    up->fd = -1;
    up->_tls = NULL;
    for (unsigned i = 0; i < 2; i++) {
        t->s[i].t = t;
        t->s[i].idx = i;
        buf_init(&t->b[i]);
    }
    t->cap = (size_t)gr->tunnel.buffer;
    t->idle_ms = gr->tunnel.idle_timeout_ms;
    t->max_ms = gr->tunnel.max_duration_ms;
    loop_timer_init(&t->timer, tunnel__on_timer, t);
    size_t need = r->method_len + r->target_len + r->rid_len + TRACE_ID_HEX + r->log_host_len +
                  r->log_ua_len + strlen(r->client_ip) + 8;
    char *p = t->strs = xmalloc(need);
    struct accesslog_entry *e = &t->log;
    e->wall_ms = r->wall_ms;
    e->method = tunnel__copy(&p, r->method, r->method_len);
    e->method_len = r->method_len;
    e->target = tunnel__copy(&p, r->target, r->target_len);
    e->target_len = r->target_len;
    e->status = 101;
    e->pool_wait_us = r->px.pool_wait_us;
    e->upstream = r->px.server; // the pool's server name: lives as long as the worker
    e->request_id = tunnel__copy(&p, r->rid_len ? r->rid : NULL, r->rid_len);
    e->request_id_len = r->rid_len;
    e->route = r->th->sh->rt[r->route].label;
    e->trace_id = tunnel__copy(&p, r->traceparent[0] ? r->traceparent + 3 : NULL, TRACE_ID_HEX);
    e->trace_id_len = r->traceparent[0] ? TRACE_ID_HEX : 0;
    e->connect_us = r->px.connect_us;
    e->client = tunnel__copy(&p, r->client_ip[0] ? r->client_ip : NULL, strlen(r->client_ip));
    e->host = tunnel__copy(&p, r->log_host, r->log_host_len);
    e->host_len = r->log_host_len;
    e->user_agent = tunnel__copy(&p, r->log_ua, r->log_ua_len);
    e->user_agent_len = r->log_ua_len;
    e->http_minor = r->log_minor; // HTTP/1.1, or HTTP/2 for an extended CONNECT
    t->t_start_us = r->t_start_us;
    t->t_sent_us = r->px.t_sent_us;
    e->upstream_ttfb_us = r->px.t_first_byte_us > r->px.t_sent_us && r->px.t_sent_us
                              ? r->px.t_first_byte_us - r->px.t_sent_us
                              : 0;
    return t;
}

static void tunnel__free(struct tunnel *t)
{
    for (unsigned i = 0; i < 2; i++)
        buf_deinit(&t->b[i]);
    free(t->strs);
    t->strs = NULL;
    t->magic = 0;
    free(t);
}

void tunnel_destroy(struct tunnel *t)
{
    if (t == NULL)
        return;
    AG_ASSERT(t->magic == TUNNEL_MAGIC && !t->started);
    transport_close(&t->s[T_UP].tp);
    tunnel__free(t);
}

/* Moves <n> bytes into direction <i>'s buffer (the pending bytes of the hand-over: they may be
 * over the cap once; the side is then not read until they went out). */
static void tunnel__preload(struct tunnel *t, unsigned i, const char *p, size_t n)
{
    struct gwthread *th = t->th;
    if (n > 0) {
        buf_append(&t->b[i], p, n);
        metrics_gauge_add(th->ms, th->sh->ids.tunnel_buffered, (int64_t)n);
    }
}

static void tunnel__arm(struct tunnel *t)
{
    uint64_t now = loop_now_ms(t->th->loop);
    uint64_t due = t->last_ms + t->idle_ms;
    if (t->max_ms && t->start_ms + t->max_ms < due)
        due = t->start_ms + t->max_ms;
    loop_timer_start(t->th->loop, &t->timer, due > now ? due - now : 0);
}

void tunnel_start(struct tunnel *t, struct transport *client, const char *to_up, size_t n_to_up,
                  const char *to_client, size_t n_to_client)
{
    AG_ASSERT(t->magic == TUNNEL_MAGIC && !t->started);
    struct gwthread *th = t->th;
    struct gw_shared *sh = th->sh;
    t->started = true;
    t->s[T_CLIENT].tp = *client;
    client->fd = -1;
    client->_tls = NULL;
    tunnel__preload(t, T_CLIENT, to_up, n_to_up);
    tunnel__preload(t, T_UP, to_client, n_to_client);
    t->start_ms = t->last_ms = loop_now_ms(th->loop);
    /* a connection of the thread like the session it replaces: drain waits for it, max_connections
     * counts it */
    t->prev = NULL;
    t->next = th->tunnels;
    if (th->tunnels)
        th->tunnels->prev = t;
    th->tunnels = t;
    th->nconns++;
    atomic_fetch_add(&sh->conns, 1);
    metrics_gauge_add(th->ms, sh->ids.conns_open, 1);
    metrics_gauge_add(th->ms, sh->ids.tunnels_open, 1);
    metrics_counter_inc(th->ms, sh->ids.tunnels_total);
    for (unsigned i = 0; i < 2; i++) {
        struct tunnel_side *sd = &t->s[i];
        /* anything may already wait in either socket: its edge came before this registration */
        sd->readable = sd->writable = true;
        if (loop_add_fd(th->loop, sd->tp.fd, LOOP_READ | LOOP_WRITE, tunnel__on_event, sd) ==
            -1) {
            static struct log_limit lim;
            ag_log_limited(AG_LOG_WARN, &lim, "tunnel: register fd: %s", strerror(errno));
            tunnel__close(t, TUNNEL_END_ERROR);
            return;
        }
        sd->registered = true;
    }
    tunnel__arm(t);
    tunnel__pump(t);
}

/* ---- the end ---- */

static void tunnel__free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    tunnel__free(arg);
}

static void tunnel__close(struct tunnel *t, enum tunnel_end why)
{
    if (t->closing)
        return;
    struct gwthread *th = t->th;
    struct gw_shared *sh = th->sh;
    t->closing = true;
    t->end = why;
    loop_timer_stop(th->loop, &t->timer);
    for (unsigned i = 0; i < 2; i++) {
        struct tunnel_side *sd = &t->s[i];
        if (sd->registered)
            loop_del_fd(th->loop, sd->tp.fd);
        sd->registered = false;
        transport_close(&sd->tp); // (a stream's client side has no transport: fd -1)
        int64_t held = (int64_t)buf_pending(&t->b[i]);
        if (held > 0)
            metrics_gauge_add(th->ms, sh->ids.tunnel_buffered, -held);
        gwthread_buf_give(th, &t->b[i]);
    }
    if (t->prev)
        t->prev->next = t->next;
    else
        th->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
    if (t->sops == NULL) { // a stream's tunnel is not a connection: its session is
        th->nconns--;
        atomic_fetch_sub(&sh->conns, 1);
        metrics_gauge_add(th->ms, sh->ids.conns_open, -1);
    }
    metrics_gauge_add(th->ms, sh->ids.tunnels_open, -1);
    metrics_counter_inc(th->ms, sh->ids.tunnel_end[why]);
    if (th->alog != NULL) {
        uint64_t now = clock_now_us();
        t->log.bytes = t->moved[T_UP]; // what the client got: the 101 head and the upstream's
        t->log.total_us = t->t_start_us && now > t->t_start_us ? now - t->t_start_us : 0;
        t->log.upstream_us = t->t_sent_us && now > t->t_sent_us ? now - t->t_sent_us : 0;
        accesslog_write(th->alog, &t->log);
    }
    ag_log(AG_LOG_DEBUG, "tunnel %.*s ended (%s): %llu bytes to the upstream, %llu to the client",
           (int)t->log.request_id_len, t->log.request_id ? t->log.request_id : "",
           tunnel_end_names[why], (unsigned long long)t->moved[T_CLIENT],
           (unsigned long long)t->moved[T_UP]);
    /* never freed inside its own callback: after the event batch */
    loop_defer(th->loop, tunnel__free_cb, t);
    if (t->sops != NULL && !t->quiet)
        t->sops->ended(t->sarg, why); // the stream is reset (or, closed cleanly, let go)
}

void tunnel_close_all(struct gwthread *th)
{
    while (th->tunnels != NULL)
        tunnel__close(th->tunnels, TUNNEL_END_DRAIN);
}

/* ---- moving bytes ---- */

/* Writes what direction <i> holds to the other side. Returns 1 when bytes moved, 0 when not,
 * -1 on a write error. */
static int tunnel__flush(struct tunnel *t, unsigned i)
{
    struct gwthread *th = t->th;
    struct tunnel_side *to = &t->s[1 - i];
    struct buf *b = &t->b[i];
    int moved = 0;
    if (t->sops != NULL && to->idx == T_CLIENT) {
        /* towards an HTTP/2 stream: its session pulls the bytes (tunnel_stream_read) when the
         * client's windows allow; tell it they are there */
        if ((buf_pending(b) > 0 || t->s[T_UP].eof) && !to->shut)
            t->sops->wake(t->sarg);
        return 0;
    }
    while (buf_pending(b) > 0 && to->writable) {
        ssize_t w = transport_write(&to->tp, buf_head(b), buf_pending(b));
        if (w == IO_AGAIN) {
            to->writable = false;
            break;
        }
        if (w < 0)
            return -1;
        buf_consume(b, (size_t)w);
        t->moved[i] += (uint64_t)w;
        if (t->sops != NULL) // the client's DATA went out: its stream window may open again
            t->sops->consumed(t->sarg, (size_t)w);
        metrics_counter_add(th->ms, i == T_CLIENT ? th->sh->ids.tunnel_bytes_up
                                                  : th->sh->ids.tunnel_bytes_down,
                            (uint64_t)w);
        metrics_gauge_add(th->ms, th->sh->ids.tunnel_buffered, -(int64_t)w);
        moved = 1;
    }
    /* An empty direction holds no memory: its block goes back to the thread (a quiet tunnel,
     * the common WebSocket state, then costs its struct and its two sockets). */
    if (buf_pending(b) == 0 && b->data != NULL)
        gwthread_buf_give(th, b);
    /* the side this direction reads from ended and everything it sent is out: pass the end on */
    if (buf_pending(b) == 0 && t->s[i].eof && !to->shut) {
        transport_shutdown(&to->tp);
        to->shut = true;
        moved = 1;
    }
    return moved;
}

/* Reads side <i> into its buffer while it has room. Returns 1 when bytes (or the EOF) came, 0
 * when not, -1 on a read error. */
static int tunnel__fill(struct tunnel *t, unsigned i)
{
    struct gwthread *th = t->th;
    struct tunnel_side *from = &t->s[i];
    struct buf *b = &t->b[i];
    int moved = 0;
    while (from->readable && !from->eof && buf_pending(b) < t->cap) {
        /* a block of the thread's first; grown (compacted first) only while the other side
         * lags, never past the cap */
        size_t want = t->cap - buf_pending(b);
        gwthread_buf_take(th, b);
        if (buf_room(b) == 0)
            buf_reserve(b, want < CONN_BLOCK ? want : CONN_BLOCK);
        if (want > buf_room(b))
            want = buf_room(b);
        ssize_t n = transport_read(&from->tp, buf_tail(b), want);
        if (n > 0) {
            buf_commit(b, (size_t)n);
            metrics_gauge_add(th->ms, th->sh->ids.tunnel_buffered, n);
            moved = 1;
            /* a drained socket (transport_drained) brings an edge with its next bytes (not once
             * the peer closed: its FIN brings none) */
            if (!from->hup && transport_drained(&from->tp, (size_t)n, want))
                from->readable = false;
            continue;
        }
        if (n == 0) {
            from->eof = true;
            from->readable = false;
            return 1;
        }
        if (n == IO_AGAIN) {
            from->readable = false;
            break;
        }
        return -1;
    }
    return moved;
}

static void tunnel__pump(struct tunnel *t)
{
    if (t->closing)
        return;
    for (;;) {
        int progress = 0;
        for (unsigned i = 0; i < 2; i++) {
            int a = tunnel__flush(t, i);
            int b = a < 0 ? 0 : tunnel__fill(t, i);
            int c = a < 0 || b < 0 ? 0 : tunnel__flush(t, i);
            if (t->closing) // a stream's session ended it while it was told of bytes
                return;
            if (a < 0 || b < 0 || c < 0) {
                tunnel__close(t, TUNNEL_END_ERROR);
                return;
            }
            progress |= a | b | c;
        }
        if (!progress)
            break;
        t->last_ms = loop_now_ms(t->th->loop);
    }
    /* both directions ended and were passed on: nothing more can move */
    if (t->s[T_CLIENT].shut && t->s[T_UP].shut)
        tunnel__close(t, TUNNEL_END_CLOSED);
}

static void tunnel__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct tunnel_side *sd = arg;
    struct tunnel *t = sd->t;
    AG_ASSERT(t->magic == TUNNEL_MAGIC);
    if (t->closing)
        return;
    if (events & (LOOP_READ | LOOP_ERROR))
        sd->readable = true;
    if (events & LOOP_HUP)
        sd->hup = true;
    if (events & (LOOP_WRITE | LOOP_ERROR))
        sd->writable = true;
    if (events & LOOP_ERROR) {
        /* A reset peer is gone both ways, but its socket would say so only to a read or a
         * write, and neither may come: its direction's buffer is full (not read) and the other
         * side sends nothing (no write). Ask the socket. A plain hang-up (FIN) is a half-close:
         * the peer may still read, and the tunnel goes on. */
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(sd->tp.fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
            tunnel__close(t, TUNNEL_END_ERROR);
            return;
        }
    }
    tunnel__pump(t);
}

static void tunnel__on_timer(struct loop *loop, void *arg)
{
    struct tunnel *t = arg;
    AG_ASSERT(t->magic == TUNNEL_MAGIC);
    uint64_t now = loop_now_ms(loop);
    if (t->max_ms && now >= t->start_ms + t->max_ms) {
        tunnel__close(t, TUNNEL_END_MAX);
        return;
    }
    if (now >= t->last_ms + t->idle_ms) {
        tunnel__close(t, TUNNEL_END_IDLE);
        return;
    }
    tunnel__arm(t); // bytes moved since it was armed: wait for the new deadline
}

/* ---- the client side as an HTTP/2 stream (RFC 8441) ---- */

static void tunnel__pump_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct tunnel *t = arg;
    AG_ASSERT(t->magic == TUNNEL_MAGIC);
    t->pump_queued = false;
    tunnel__pump(t);
}

/* The session's calls come from inside nghttp2's callbacks: the pump (and what it may call back:
 * a reset, the end) runs after the event batch. Queued before a close only, so it always runs
 * before the deferred free. */
static void tunnel__pump_soon(struct tunnel *t)
{
    if (t->pump_queued || t->closing)
        return;
    t->pump_queued = true;
    loop_defer(t->th->loop, tunnel__pump_cb, t);
}

void tunnel_start_stream(struct tunnel *t, const struct tunnel_stream_ops *ops, void *arg,
                         const char *to_up, size_t n_to_up, const char *to_client,
                         size_t n_to_client)
{
    AG_ASSERT(t->magic == TUNNEL_MAGIC && !t->started);
    struct gwthread *th = t->th;
    struct gw_shared *sh = th->sh;
    t->started = true;
    t->sops = ops;
    t->sarg = arg;
    t->log.status = 200; // what the client got: the stream's answer, not the upstream's 101
    t->s[T_CLIENT].tp.fd = -1; // no socket: the stream's bytes come and go through the session
    tunnel__preload(t, T_CLIENT, to_up, n_to_up);
    tunnel__preload(t, T_UP, to_client, n_to_client);
    t->start_ms = t->last_ms = loop_now_ms(th->loop);
    t->prev = NULL;
    t->next = th->tunnels; // on the list for the drain deadline, not counted as a connection
    if (th->tunnels)
        th->tunnels->prev = t;
    th->tunnels = t;
    metrics_gauge_add(th->ms, sh->ids.tunnels_open, 1);
    metrics_counter_inc(th->ms, sh->ids.tunnels_total);
    struct tunnel_side *up = &t->s[T_UP];
    up->readable = up->writable = true; // its edges came before this registration
    if (loop_add_fd(th->loop, up->tp.fd, LOOP_READ | LOOP_WRITE, tunnel__on_event, up) == -1) {
        static struct log_limit lim;
        ag_log_limited(AG_LOG_WARN, &lim, "tunnel: register fd: %s", strerror(errno));
        tunnel__close(t, TUNNEL_END_ERROR);
        return;
    }
    up->registered = true;
    tunnel__arm(t);
    tunnel__pump_soon(t);
}

void tunnel_stream_data(struct tunnel *t, const char *p, size_t n)
{
    AG_ASSERT(t->magic == TUNNEL_MAGIC && t->sops != NULL);
    if (t->closing || n == 0)
        return;
    /* over tunnel.buffer only by what the client's window let it send: the window opens again
     * only as these bytes reach the upstream (ops->consumed) */
    gwthread_buf_take(t->th, &t->b[T_CLIENT]);
    tunnel__preload(t, T_CLIENT, p, n);
    t->last_ms = loop_now_ms(t->th->loop);
    tunnel__pump_soon(t);
}

void tunnel_stream_eof(struct tunnel *t)
{
    AG_ASSERT(t->magic == TUNNEL_MAGIC && t->sops != NULL);
    if (t->closing)
        return;
    t->s[T_CLIENT].eof = true; // the upstream's write side is shut once the bytes are out
    tunnel__pump_soon(t);
}

size_t tunnel_stream_read(struct tunnel *t, char *dst, size_t len, bool *eof)
{
    AG_ASSERT(t->magic == TUNNEL_MAGIC && t->sops != NULL);
    struct gwthread *th = t->th;
    struct buf *b = &t->b[T_UP];
    *eof = false;
    if (t->closing)
        return 0;
    size_t n = buf_pending(b) < len ? buf_pending(b) : len;
    if (n > 0) {
        bool was_full = buf_pending(b) >= t->cap;
        memcpy(dst, buf_head(b), n);
        buf_consume(b, n);
        t->moved[T_UP] += n;
        metrics_counter_add(th->ms, th->sh->ids.tunnel_bytes_down, n);
        metrics_gauge_add(th->ms, th->sh->ids.tunnel_buffered, -(int64_t)n);
        t->last_ms = loop_now_ms(th->loop);
        if (buf_pending(b) == 0)
            gwthread_buf_give(th, b);
        if (was_full) // the upstream was not read while the client lagged: read it again
            tunnel__pump_soon(t);
    }
    if (buf_pending(b) == 0 && t->s[T_UP].eof && !t->s[T_CLIENT].shut) {
        *eof = true; // the stream's END_STREAM: the half-close passed on
        t->s[T_CLIENT].shut = true;
        tunnel__pump_soon(t); // ends the tunnel if the client's side ended too
    }
    return n;
}

void tunnel_stream_reset(struct tunnel *t, enum tunnel_end why)
{
    AG_ASSERT(t->magic == TUNNEL_MAGIC && t->sops != NULL);
    t->quiet = true; // the session asked: no callback into it
    tunnel__close(t, why);
}
