/* Downstream HTTP/1.1 connection: reads requests into a per-connection buffer until EAGAIN, parses
 * heads in place, routes and admits them, hands them to the proxy, and writes responses in order
 * (one request at a time; pipelined requests wait in the buffer). Owns the client-side timeouts:
 * header (slowloris -> 408), keep-alive idle, body, send. Knows nothing of upstream sockets. */
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

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/accesslog.h"
#include "gateway/cachehook.h"
#include "gateway/gwconf.h"
#include "gateway/route.h"
#include "gateway/trace.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "http/url.h"

enum conn_timer_kind { T_NONE = 0, T_HEADER, T_IDLE, T_BODY, T_SEND, T_LINGER };

#define CONN_READ_CHUNK CONN_BLOCK
#define CONN_PARK_MIN 1040u   /* smallest parked partial head buffer (conn__park_head) */
#define CONN_ARENA_CHUNK 4096 /* only for copies that do not fit the <strs> block */

_Static_assert(PX_RES_HEADERS_MAX * sizeof(struct h1_header) <= CONN_BLOCK,
               "response headers fit a block");
#define CONN_LINGER_MS 2000 /* after an error response: drain the client before close (no RST) */

static void conn__on_event(struct loop *loop, int fd, void *arg, unsigned events);
static void conn__on_timer(struct loop *loop, void *arg);
static void conn__process(struct conn *c);
static void conn__arm(struct conn *c, enum conn_timer_kind kind, uint64_t ms);
static int conn__read(struct conn *c);
static void conn__next_cb(struct loop *loop, void *arg);
static void conn__make_rid(struct conn *c, const struct h1_header *h);
static void conn__hdrs_give(struct conn *c);

const char *conn_date(struct gwthread *th)
{
    int64_t now = clock_wall_s();
    if (now != th->date_sec) {
        http_date_format(now, th->date);
        th->date_sec = now;
    }
    return th->date;
}

/* ---- blocks lent per request ---- */

/* Under ASan a block on the free list is poisoned (but for its next pointer): a stale pointer
 * into a block given back is reported like a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CONN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define CONN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define CONN_POISON(p, n) ((void)(p), (void)(n))
#define CONN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

void *conn_block_take(struct gwthread *th)
{
    void *b = th->free_blocks;
    if (b == NULL)
        return xmalloc(CONN_BLOCK);
    memcpy(&th->free_blocks, b, sizeof(void *));
    th->nfree_blocks--;
    CONN_UNPOISON((char *)b + sizeof(void *), CONN_BLOCK - sizeof(void *));
    return b;
}

void conn_block_give(struct gwthread *th, void *block)
{
    if (block == NULL)
        return;
    if (th->nfree_blocks >= CONN_BLOCKS_KEPT) {
        free(block);
        return;
    }
    memcpy(block, &th->free_blocks, sizeof(void *));
    CONN_POISON((char *)block + sizeof(void *), CONN_BLOCK - sizeof(void *));
    th->free_blocks = block;
    th->nfree_blocks++;
}

static void conn__free_blocks(struct gwthread *th)
{
    while (th->free_blocks != NULL) {
        void *b = th->free_blocks;
        memcpy(&th->free_blocks, b, sizeof(void *));
        CONN_UNPOISON((char *)b + sizeof(void *), CONN_BLOCK - sizeof(void *));
        free(b);
    }
    th->nfree_blocks = 0;
}

void conn_buf_take(struct gwthread *th, struct buf *b)
{
    if (b->data != NULL)
        return;
    b->data = conn_block_take(th);
    b->cap = CONN_BLOCK;
    b->off = b->len = 0;
}

void conn_buf_give(struct gwthread *th, struct buf *b)
{
    if (b->data != NULL && b->cap == CONN_BLOCK) {
        conn_block_give(th, b->data);
        buf_init(b);
    } else {
        buf_deinit(b);
    }
}

/* The request header array: a block when max_headers fits one (the default 100 does). */
static void conn__hdrs_take(struct conn *c)
{
    if (c->hdrs != NULL)
        return;
    size_t size = c->max_hdrs * sizeof(*c->hdrs);
    c->hdrs = size <= CONN_BLOCK ? conn_block_take(c->th) : xmalloc(size);
}

/* Hands back everything a request borrowed. Only for a connection with no request in progress
 * and nothing pending in either direction: what is left in the buffers is dead. */
static void conn__release(struct gwthread *th, struct conn *c)
{
    th->parked_bytes -= c->in_parked;
    c->in_parked = 0;
    conn_buf_give(th, &c->in);
    conn_buf_give(th, &c->out);
    conn__hdrs_give(c);
    struct proxy *px = &c->px;
    conn_buf_give(th, &px->head);
    conn_buf_give(th, &px->uin);
    conn_buf_give(th, &px->uout);
    conn_buf_give(th, &px->trail);
    conn_block_give(th, px->res_hdrs);
    px->res_hdrs = NULL;
    conn_block_give(th, c->strs);
    c->strs = NULL;
    c->strs_used = 0;
    arena_deinit(&c->arena); // normally empty: only an oversized target used it
}

/* Gives the request header array back (it is filled again by every parse of the head). */
static void conn__hdrs_give(struct conn *c)
{
    if (c->hdrs == NULL)
        return;
    if (c->max_hdrs * sizeof(*c->hdrs) <= CONN_BLOCK)
        conn_block_give(c->th, c->hdrs);
    else
        free(c->hdrs);
    c->hdrs = NULL;
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
    size_t pend = buf_pending(&c->in);
    if (c->in_parked > 0 || pend == 0)
        return 0;
    if (th->parked_bytes + pend > th->sh->cfg->server.max_head_memory) {
        ag_log(AG_LOG_DEBUG, "client %s: closed, partial request heads hold over "
               "server.max_head_memory", c->client_ip);
        conn_close(c);
        return -1;
    }
    /* Whole 512-byte steps, never under CONN_PARK_MIN: fewer sizes, and none small enough for
     * glibc's per-thread cache, whose chunks would pin scattered pages after the attack. */
    size_t cap = (pend + 511) & ~(size_t)511;
    if (cap < CONN_PARK_MIN)
        cap = CONN_PARK_MIN;
    char *p = xmalloc(cap);
    memcpy(p, buf_head(&c->in), pend);
    conn_buf_give(th, &c->in);
    c->in.data = p;
    c->in.cap = cap;
    c->in.len = pend;
    c->in.off = 0;
    c->in_parked = cap;
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
    if (c->in.len > CONN_BLOCK / 2)
        return;
    struct buf small = c->in;
    buf_init(&c->in);
    conn_buf_take(th, &c->in);
    memcpy(c->in.data, small.data, small.len);
    c->in.len = small.len;
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
        proxy_deinit(&c->px);
        buf_deinit(&c->in);
        buf_deinit(&c->out);
        arena_deinit(&c->arena);
        free(c->hdrs);
        c->magic = 0;
        free(c);
        freed += sizeof(*c);
    }
    size_t keep_blocks = 16 + th->nconns / 4;
    while (th->nfree_blocks > keep_blocks) {
        void *b = th->free_blocks;
        memcpy(&th->free_blocks, b, sizeof(void *));
        CONN_UNPOISON((char *)b + sizeof(void *), CONN_BLOCK - sizeof(void *));
        free(b);
        th->nfree_blocks--;
        freed += CONN_BLOCK;
    }
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

/* A NUL-terminated copy of <s> that lives until the request ends (for the log): in the block
 * lent for the request, or in the arena when it does not fit. NULL when over the arena limit. */
static char *conn__strndup(struct conn *c, const char *s, size_t n)
{
    if (c->strs == NULL) {
        c->strs = conn_block_take(c->th);
        c->strs_used = 0;
    }
    if (n >= CONN_BLOCK - c->strs_used)
        return arena_strndup(&c->arena, s, n);
    char *p = c->strs + c->strs_used;
    memcpy(p, s, n);
    p[n] = '\0';
    c->strs_used += n + 1;
    return p;
}

/* A keep-alive connection waiting for its next request with nothing buffered holds no block:
 * thousands of idle clients then cost about their struct each (nginx and HAProxy free their
 * buffers the same way). The next request takes blocks from the thread's free list again, so
 * a busy connection pays a few pointer moves per request, not a malloc. */
static void conn__idle_release(struct conn *c)
{
    if (c->state != CONN_HEAD || c->readable || c->read_eof || c->px.state != PX_IDLE ||
        buf_pending(&c->in) > 0 || buf_pending(&c->out) > 0)
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
    buf_init(&c->in);
    buf_init(&c->out);
    arena_init(&c->arena, CONN_ARENA_CHUNK, 1u << 20);
    c->max_hdrs = (size_t)cfg->server.max_headers;
    if (c->max_hdrs == 0)
        c->max_hdrs = 100;
    c->hdrs = NULL; // lent per request (conn__hdrs_take)
    loop_timer_init(&c->timer, conn__on_timer, c);
    proxy_init(&c->px);
    return c;
}

/* Gives the blocks back to the thread (a closed conn holds none) and keeps the struct. */
static void conn__put(struct gwthread *th, struct conn *c)
{
    conn__release(th, c);
    arena_reset(&c->arena);
    if (th->nfree >= 1024) {
        proxy_deinit(&c->px);
        arena_deinit(&c->arena);
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
        proxy_deinit(&c->px);
        buf_deinit(&c->in);
        buf_deinit(&c->out);
        arena_deinit(&c->arena);
        free(c->hdrs);
        c->magic = 0;
        free(c);
    }
    th->nfree = 0;
    conn__free_blocks(th);
}

static void conn__reset_request(struct conn *c)
{
    cachehook_request_end(c);
    c->route = -1;
    c->admitted_route = c->admitted_global = false;
    c->method = c->target = NULL;
    c->method_len = c->target_len = 0;
    c->log_host = c->log_ua = NULL;
    c->log_host_len = c->log_ua_len = 0;
    c->log_minor = -1;
    c->rid_len = 0;
    c->traceparent[0] = '\0';
    c->status = 0;
    c->head_sent = false;
    c->bytes_out = 0;
    c->counted = false;
    c->sent_continue = false;
    c->t_start_us = 0;
    /* the proxy's per-request facts are read by the access log even for local answers */
    c->px.t_sent_us = c->px.t_first_byte_us = 0;
    c->px.pool_wait_us = 0;
    c->px.connect_us = 0;
    c->cache_served = NULL;
    c->px.server = NULL;
    c->px.req_body = H1_BODY_NONE;
    c->px.req_body_read = true;
    c->strs_used = 0;
    arena_reset(&c->arena);
}

void conn_accept(struct gwthread *th, int fd, const char *ip)
{
    struct conn *c = conn__get(th);
    c->fd = fd;
    c->th = th;
    c->state = CONN_HEAD;
    snprintf(c->client_ip, sizeof(c->client_ip), "%s", ip);
    c->readable = false;
    c->writable = true;
    c->read_eof = false;
    c->peer_hup = false;
    c->keep_alive = true;
    c->requests = 0;
    c->accept_ms = loop_now_ms(th->loop);
    c->timer_kind = T_NONE;
    conn__reset_request(c);
    if (loop_add_fd(th->loop, fd, LOOP_READ | LOOP_WRITE, conn__on_event, c) == -1) {
        static struct log_limit reg_lim;
        ag_log_limited(AG_LOG_WARN, &reg_lim, "register client fd: %s", strerror(errno));
        close(fd);
        c->fd = -1;
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
    conn__arm(c, T_HEADER, th->sh->cfg->server.client_header_timeout_ms);
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
    proxy_abort(c);
    cachehook_request_end(c);
    resil_request_end(c);
    if (c->admitted_route) {
        atomic_fetch_sub(&th->sh->rt[c->route].inflight, 1);
        c->admitted_route = false;
    }
    if (c->admitted_global) {
        atomic_fetch_sub(&th->sh->inflight, 1);
        c->admitted_global = false;
    }
    c->state = CONN_CLOSED;
    loop_timer_stop(th->loop, &c->timer);
    loop_del_fd(th->loop, c->fd);
    close(c->fd);
    c->fd = -1;
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
        c->keep_alive = false; // finish the current request, then close
        if (c->state != CONN_HEAD || buf_pending(&c->in) > 0 || buf_pending(&c->out) > 0)
            continue;
        /* A request may already wait in the socket (its edge not handled yet): serve it rather
         * than close under it. An idle kept-alive connection is not closed at once either: the
         * client may be sending its next request right now, and a close would reset it (wrk's
         * "Socket errors: read" on every reload). It stays read until th->drain_idle_until_ms:
         * a request that arrives is served with Connection: close (HAProxy's
         * idle-close-on-response). A connection that has not sent its first request yet gets a
         * second from its accept: it was accepted to be served. */
        c->readable = true;
        if (conn__read(c) == -1)
            continue; // closed
        uint64_t now = loop_now_ms(th->loop);
        if (buf_pending(&c->in) > 0 || c->read_eof)
            loop_defer(th->loop, conn__next_cb, c);
        else if (c->requests > 0 ? now >= th->drain_idle_until_ms : now - c->accept_ms > 1000)
            conn_close(c); // silent through the grace: it would only delay the exit
    }
}

/* ---- timers ---- */

static void conn__arm(struct conn *c, enum conn_timer_kind kind, uint64_t ms)
{
    c->timer_kind = kind;
    if (kind == T_NONE || ms == 0)
        loop_timer_stop(c->th->loop, &c->timer);
    else
        loop_timer_start(c->th->loop, &c->timer, ms);
}

static void conn__on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    switch ((enum conn_timer_kind)c->timer_kind) {
    case T_HEADER:
        if (buf_pending(&c->in) > 0 && buf_pending(&c->out) == 0) {
            /* a head that trickles in (slowloris): 408, then close */
            c->keep_alive = false;
            c->state = CONN_BUSY;
            conn__make_rid(c, NULL); // the answer and the log name it like any request
            if (c->t_start_us == 0)
                c->t_start_us = clock_now_us();
            c->wall_ms = clock_wall_ms();
            conn_respond_error(c, 408, "request_timeout", "request head not received in time",
                               NULL);
        } else {
            conn_close(c);
        }
        break;
    case T_BODY:
        if (c->state == CONN_BUSY && c->px.req_body_read) {
            c->timer_kind = T_NONE; // the body completed meanwhile: the upstream's turn now
            break;
        }
        c->keep_alive = false;
        if (!c->head_sent && c->state == CONN_BUSY) {
            proxy_abort(c);
            conn_respond_error(c, 408, "request_timeout", "request body not received in time",
                               NULL);
        } else {
            conn_close(c);
        }
        break;
    case T_IDLE:
    case T_SEND:
    case T_LINGER:
    default:
        conn_close(c);
        break;
    }
}

/* ---- output ---- */

static void conn__linger(struct conn *c)
{
    /* Half-close, then read and drop what the client still sends, so the kernel does not answer
     * unread bytes with a RST that would destroy the error response before the client reads it. */
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_CLOSING;
    conn__arm(c, T_LINGER, CONN_LINGER_MS);
    char scratch[4096];
    for (;;) {
        ssize_t n = read(c->fd, scratch, sizeof(scratch));
        if (n > 0)
            continue;
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return;
        conn_close(c);
        return;
    }
}

int conn_send(struct conn *c, const char *slice, size_t slice_len)
{
    if (c->state == CONN_CLOSED)
        return -1;
    if (!c->writable) {
        if (slice_len)
            buf_append(&c->out, slice, slice_len);
        if (buf_pending(&c->out) > 0 && c->timer_kind != T_SEND)
            conn__arm(c, T_SEND, c->th->sh->cfg->server.send_timeout_ms);
        return 0;
    }
    bool progressed = false;
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        size_t pend = buf_pending(&c->out);
        if (pend) {
            iov[n].iov_base = buf_head(&c->out);
            iov[n++].iov_len = pend;
        }
        if (slice_len) {
            iov[n].iov_base = (void *)slice;
            iov[n++].iov_len = slice_len;
        }
        if (n == 0)
            break;
        ssize_t w = writev(c->fd, iov, n);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                c->writable = false;
                break;
            }
            conn_close(c);
            return -1;
        }
        c->bytes_out += (uint64_t)w;
        progressed = true;
        size_t wz = (size_t)w;
        if (wz >= pend) {
            buf_consume(&c->out, pend);
            wz -= pend;
            slice += wz;
            slice_len -= wz;
        } else {
            buf_consume(&c->out, wz);
        }
    }
    if (slice_len)
        buf_append(&c->out, slice, slice_len); // the socket is full: keep a copy
    if (buf_pending(&c->out) > 0) {
        /* send_timeout is the longest pause between two writes that made progress */
        if (progressed || c->timer_kind != T_SEND)
            conn__arm(c, T_SEND, c->th->sh->cfg->server.send_timeout_ms);
    } else if (c->timer_kind == T_SEND) {
        conn__arm(c, T_NONE, 0);
    }
    return 0;
}

static void conn__flush(struct conn *c)
{
    if (conn_send(c, NULL, 0) == -1)
        return;
    if (buf_pending(&c->out) > 0)
        return;
    switch (c->state) {
    case CONN_CLOSING:
        if (c->timer_kind != T_LINGER)
            conn__linger(c);
        break;
    case CONN_BUSY:
        proxy_on_client_drained(c);
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

/* ---- responses generated here ---- */

void conn_respond_error(struct conn *c, int status, const char *code, const char *msg,
                        const char *extra_headers)
{
    if (c->state == CONN_CLOSED)
        return;
    if (c->head_sent) {
        /* part of an upstream response went out already: the only honest signal is a close */
        c->status = c->status ? c->status : status;
        c->keep_alive = false;
        conn_request_done(c);
        return;
    }
    /* A request body that was not read entirely cannot be skipped reliably: close after. */
    if (c->state == CONN_BUSY && c->px.req_body != H1_BODY_NONE && !c->px.req_body_read)
        c->keep_alive = false;
    if (c->th->draining)
        c->keep_alive = false;
    /* every string escaped: the message may quote a parser text, the id comes from the client */
    struct buf *jbp = &c->th->scratch; // per thread, reused: no allocation after warm-up
    buf_reset(jbp);
    buf_append_str(jbp, "{\"error\":");
    buf_append_json_str(jbp, code, strlen(code));
    buf_printf(jbp, ",\"status\":%d,\"message\":", status);
    buf_append_json_str(jbp, msg, strlen(msg));
    buf_append_str(jbp, ",\"request_id\":");
    buf_append_json_str(jbp, c->rid, c->rid_len);
    buf_append_str(jbp, "}\n");
    int blen = (int)buf_pending(jbp);
    struct buf *b = &c->out;
    size_t before = buf_pending(b);
    h1_write_status_line(b, status, NULL);
    buf_append_str(b, "Date: ");
    buf_append(b, conn_date(c->th), HTTP_DATE_LEN);
    buf_append_str(b, "\r\nContent-Type: application/json\r\n");
    h1_write_header_u64(b, "Content-Length", (uint64_t)blen);
    if (c->rid_len)
        h1_write_header(b, "X-Request-Id", 12, c->rid, c->rid_len);
    if (extra_headers)
        buf_append_str(b, extra_headers);
    if (c->state == CONN_BUSY && cachehook_status(c) != NULL) {
        cachehook_client_headers(c, b); // a cached route's answers all carry X-Cache (cache.md)
    } else if (c->state == CONN_BUSY && c->route >= 0 && c->th->sh->cache != NULL &&
               c->th->sh->cfg->routes[c->route].cache.enabled) {
        /* refused before the cache was asked (a concurrency limit): not served from it */
        buf_append_str(b, "X-Cache: MISS\r\n");
        c->cache_served = "MISS";
    }
    if (!c->keep_alive)
        buf_append_str(b, "Connection: close\r\n");
    h1_write_end_head(b);
    if (c->req.method_id != H1_M_HEAD || c->state != CONN_BUSY)
        buf_append(b, buf_head(jbp), (size_t)blen);
    (void)before;
    c->status = status;
    c->head_sent = true;
    if (c->route >= 0 && status >= 500) {
        /* counted by the caller's reason counter; nothing here */
    }
    if (conn_send(c, NULL, 0) == -1)
        return;
    conn_request_done(c);
}

/* ---- request accounting ---- */

static void conn__record(struct conn *c)
{
    struct gwthread *th = c->th;
    struct gw_shared *sh = th->sh;
    uint64_t now = clock_now_us();
    uint64_t total = c->t_start_us ? now - c->t_start_us : 0;
    int method = c->req.method_id;
    metrics_ref r = worker_duration_series(th, c->route, method, c->status);
    metrics_hist_observe_us(th->ms, r, total);
    {
        struct gw_route_rt *rt = &sh->rt[c->route >= 0 ? (size_t)c->route : sh->cfg->nroutes];
        metrics_hist_observe_us(th->ms, rt->route_duration, total);
        int cls = c->status / 100;
        metrics_counter_inc(th->ms, rt->status_class[cls >= 1 && cls <= 5 ? cls : 0]);
        if (c->px.t_first_byte_us && c->px.t_sent_us)
            metrics_hist_observe_us(th->ms, rt->ttfb, c->px.t_first_byte_us - c->t_start_us);
    }
    if (th->alog) {
        struct accesslog_entry e = {
            .wall_ms = c->wall_ms,
            .method = c->method,
            .method_len = c->method_len,
            .target = c->target,
            .target_len = c->target_len,
            .status = c->status,
            .bytes = c->bytes_out + buf_pending(&c->out),
            .total_us = total,
            .upstream_us = c->px.t_sent_us ? now - c->px.t_sent_us : 0,
            .pool_wait_us = c->px.pool_wait_us,
            .upstream_ttfb_us = c->px.t_first_byte_us && c->px.t_sent_us
                                    ? c->px.t_first_byte_us - c->px.t_sent_us
                                    : 0,
            .upstream = c->px.server,
            .request_id = c->rid_len ? c->rid : NULL,
            .request_id_len = c->rid_len,
            .route = c->route >= 0 ? sh->rt[c->route].label : NULL,
            .trace_id = c->traceparent[0] ? c->traceparent + 3 : NULL,
            .trace_id_len = c->traceparent[0] ? TRACE_ID_HEX : 0,
            .connect_us = c->px.connect_us,
            .cache = c->cache_served ? c->cache_served : cachehook_status(c),
            .client = c->client_ip[0] ? c->client_ip : NULL,
            .host = c->log_host,
            .host_len = c->log_host_len,
            .user_agent = c->log_ua,
            .user_agent_len = c->log_ua_len,
            .http_minor = c->log_minor,
        };
        accesslog_write(th->alog, &e);
    }
    worker_count_request(th);
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
    if (buf_pending(&c->in) > 0 || c->readable || c->read_eof)
        conn__process(c);
}

void conn_request_done(struct conn *c)
{
    if (c->state == CONN_CLOSED || c->counted)
        return;
    struct gwthread *th = c->th;
    struct gw_shared *sh = th->sh;
    c->counted = true;
    conn__record(c);
    resil_request_end(c);
    if (c->admitted_route) {
        atomic_fetch_sub(&sh->rt[c->route].inflight, 1);
        c->admitted_route = false;
    }
    if (c->admitted_global) {
        atomic_fetch_sub(&sh->inflight, 1);
        c->admitted_global = false;
    }
    c->requests++;
    int64_t ka = sh->cfg->server.keepalive_requests;
    if (ka > 0 && c->requests >= (uint64_t)ka)
        c->keep_alive = false;
    if (th->draining)
        c->keep_alive = false;
    c->px.state = PX_IDLE;
    if (!c->keep_alive) {
        c->state = CONN_CLOSING;
        /* A response head may sit in c->out unwritten (an upstream body that failed right
         * after it): no write edge would ever come for it, so write it now or arm T_SEND. */
        if (conn_send(c, NULL, 0) == -1)
            return;
        if (buf_pending(&c->out) == 0)
            conn__linger(c);
        return;
    }
    c->state = CONN_HEAD;
    conn__reset_request(c);
    if (buf_pending(&c->out) == 0 && c->timer_kind != T_IDLE)
        conn__arm(c, T_IDLE, sh->cfg->server.keepalive_timeout_ms);
    /* The next pipelined request (or a read we postponed) runs after this event batch, never
     * from inside the upstream handler that just finished the response. */
    if (buf_pending(&c->in) > 0 || c->readable || c->read_eof)
        loop_defer(th->loop, conn__next_cb, c);
    else
        loop_defer(th->loop, conn__idle_cb, c); // the socket was drained: wait empty-handed
}

/* ---- input ---- */

/* Whether reading the client now would only pile up bytes nobody consumes yet. */
static bool conn__read_paused(const struct conn *c)
{
    const struct gw_config *cfg = c->th->sh->cfg;
    size_t pend = buf_pending(&c->in);
    if (c->state == CONN_HEAD)
        return pend > cfg->server.max_head_size;
    if (c->state != CONN_BUSY)
        return c->state != CONN_CLOSING;
    if (!c->px.req_body_read)
        return pend >= CONN_BUF_HIGH || buf_pending(&c->px.uout) >= CONN_BUF_HIGH;
    /* body done: only the next pipelined head may be buffered */
    return pend > cfg->server.max_head_size;
}

/* Reads until EAGAIN (or until the buffer reached what may be buffered). Returns -1 when the
 * conn was closed. */
static int conn__read(struct conn *c)
{
    while (c->readable && !c->read_eof && !conn__read_paused(c)) {
        conn__unpark_head(c);
        conn_buf_take(c->th, &c->in);
        /* a head is read into the room the block has, growing only once it is full */
        buf_reserve(&c->in, c->state == CONN_HEAD ? 1 : CONN_READ_CHUNK);
        ssize_t n = read(c->fd, buf_tail(&c->in), buf_room(&c->in));
        if (n > 0) {
            buf_commit(&c->in, (size_t)n);
            if (buf_room(&c->in) > 0 && !c->peer_hup) {
                /* A short read drained the socket: new bytes bring a new edge, so the EAGAIN
                 * read can be skipped (nginx does the same). Not when the client closed its
                 * side (LOOP_HUP): a FIN that came with these bytes brings no edge of its own,
                 * and the connection would wait for the keep-alive timeout to see it. */
                c->readable = false;
                break;
            }
            continue;
        }
        if (n == 0) {
            c->read_eof = true;
            c->readable = false;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            c->readable = false;
            break;
        }
        conn_close(c);
        return -1;
    }
    return 0;
}

void conn_resume_read(struct conn *c)
{
    if (c->state != CONN_BUSY || !c->readable || conn__read_paused(c))
        return;
    if (conn__read(c) == -1)
        return;
    proxy_on_client_data(c);
}

static void conn__make_rid(struct conn *c, const struct h1_header *h)
{
    if (h != NULL && h->value_len > 0 && h->value_len <= sizeof(c->rid)) {
        memcpy(c->rid, h->value, h->value_len);
        c->rid_len = h->value_len;
        return;
    }
    /* 16 hex digits of a per-thread seed mixed with a counter: unique enough to grep logs. */
    struct gwthread *th = c->th;
    uint64_t x = th->rid_seed + (++th->rid_counter) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++)
        c->rid[i] = hex[(x >> (60 - 4 * i)) & 0xf];
    c->rid_len = 16;
}

static const char *conn__method_name(struct conn *c)
{
    return c->method;
}

/* Route filter: the route's `host` and `methods` restrictions. */
static int conn__route_ok(void *arg, size_t i)
{
    const struct conn *c = arg;
    const struct gw_route *gr = &c->th->sh->cfg->routes[i];
    const struct h1_request *req = &c->req;
    if (gr->methods.n > 0) {
        bool ok = false;
        for (size_t k = 0; k < gr->methods.n && !ok; k++)
            ok = strlen(gr->methods.v[k]) == req->method_len &&
                 memcmp(gr->methods.v[k], req->method, req->method_len) == 0;
        if (!ok)
            return 0;
    }
    if (gr->host != NULL) {
        if (req->host == NULL)
            return 0;
        size_t hl = req->host_len;
        /* compare without the port */
        const char *colon = memchr(req->host, ':', hl);
        if (colon != NULL && req->host[0] != '[')
            hl = (size_t)(colon - req->host);
        if (strlen(gr->host) != hl || !headers_name_eq(req->host, hl, gr->host))
            return 0;
    }
    return 1;
}

/* The path is routed, keyed and forwarded in canonical form (url_path_canon: dot segments
 * removed, unreserved %XX decoded, "//" merged): /api/../internal/x must not be routed as /api/
 * and then resolved by the origin to /internal/x. c->req's target, path and query are pointed at
 * the canonical origin-form copy (the access log keeps the target as sent, c->target). Returns
 * 0, or -1 for a path that is refused (%00, %2F/%5C by config, ".." above the root): <why>. */
static int conn__canon_path(struct conn *c, const char **why)
{
    struct h1_request *req = &c->req;
    const struct gw_path_norm *pn = &c->th->sh->cfg->path_norm;
    unsigned flags = (pn->merge_slashes ? URL_CANON_MERGE_SLASHES : 0) |
                     (pn->reject_encoded_slash ? URL_CANON_REJECT_ENCODED_SLASH : 0);
    /* the canonical target is never longer than the one received: path_len >= 1 in origin
     * form, and an absolute-form target holds its scheme and authority besides */
    char *t = conn__strndup(c, req->target, req->target_len);
    if (t == NULL)
        return -1;
    size_t n = 0;
    if (url_path_canon(req->path, req->path_len, flags, t, &n, why) != 0)
        return -1;
    size_t path_len = n;
    if (req->query != NULL) {
        t[n++] = '?';
        memcpy(t + n, req->query, req->query_len);
        req->query = t + n;
        n += req->query_len;
    }
    t[n] = '\0';
    req->target = req->path = t;
    req->target_len = n;
    req->path_len = path_len;
    return 0;
}

/* A complete head is in c->in: route, admit, hand over to the proxy. */
/* Request header names with '_' (headers.underscores, per route or top level): dropped from the
 * parsed head, so neither the upstream nor the cache key ever sees them, or refused. Returns -1
 * when the request must get 400. */
static int conn__underscores(struct conn *c, const struct gw_route *gr)
{
    const struct gw_config *cfg = c->th->sh->cfg;
    int policy = gr->headers.underscores ? gr->headers.underscores - 1 : cfg->headers.underscores;
    if (policy == GW_US_ALLOW)
        return 0;
    struct h1_request *req = &c->req;
    size_t kept = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        if (memchr(h->name, '_', h->name_len) != NULL) {
            if (policy == GW_US_REJECT)
                return -1;
            continue;
        }
        if (kept != i)
            req->headers[kept] = *h;
        kept++;
    }
    req->nheaders = kept;
    return 0;
}

static void conn__start_request(struct conn *c, size_t head_len)
{
    struct gwthread *th = c->th;
    struct gw_shared *sh = th->sh;
    const struct gw_config *cfg = sh->cfg;
    struct h1_request *req = &c->req;
    c->state = CONN_BUSY;
    conn__arm(c, T_NONE, 0);
    conn_buf_take(th, &c->out); // response heads are appended without growing from 256 bytes
    if (c->t_start_us == 0)
        c->t_start_us = clock_now_us();
    c->wall_ms = clock_wall_ms();
    /* keepalive_timeout 0 means no keep-alive at all */
    c->keep_alive = req->keep_alive && !th->draining && cfg->server.keepalive_timeout_ms > 0;
    c->method = conn__strndup(c, req->method, req->method_len);
    c->method_len = c->method ? req->method_len : 0;
    c->target = conn__strndup(c, req->target, req->target_len);
    c->target_len = c->target ? req->target_len : 0;
    c->log_minor = req->minor_version;
    if (th->alog != NULL) {
        /* copied (the head may move once the body streams) only when a log line will use them */
        if (req->host != NULL) {
            c->log_host = conn__strndup(c, req->host, req->host_len);
            c->log_host_len = c->log_host ? req->host_len : 0;
        }
        const struct h1_header *ua = headers_find(req->headers, req->nheaders, "user-agent");
        if (ua != NULL) {
            c->log_ua = conn__strndup(c, ua->value, ua->value_len);
            c->log_ua_len = c->log_ua ? ua->value_len : 0;
        }
    }
    conn__make_rid(c, headers_find(req->headers, req->nheaders, "x-request-id"));
    {
        /* continue the client's trace (new span for our hop) or start one: every request has a
         * trace id for the access log and the upstream */
        const struct h1_header *tp = headers_find(req->headers, req->nheaders, "traceparent");
        struct trace_ctx tc;
        trace_continue(tp ? tp->value : NULL, tp ? tp->value_len : 0, &tc);
        trace_format(&tc, c->traceparent);
    }
    (void)conn__method_name;

    /* Framing facts the proxy needs even when we answer locally. */
    c->px.req_body = req->body;
    c->px.req_body_read = req->body == H1_BODY_NONE;

    if (req->method_id == H1_M_CONNECT) {
        buf_consume(&c->in, head_len);
        conn_respond_error(c, 501, "not_implemented", "CONNECT is not supported", NULL);
        return;
    }
    if (req->body == H1_BODY_LENGTH && req->content_length > cfg->server.max_body_size) {
        buf_consume(&c->in, head_len);
        c->keep_alive = false;
        conn_respond_error(c, 413, "payload_too_large", "request body over server.max_body_size",
                           NULL);
        return;
    }
    const char *why = NULL;
    if (conn__canon_path(c, &why) != 0) {
        buf_consume(&c->in, head_len);
        c->keep_alive = false;
        conn_respond_error(c, 400, "bad_path", why ? why : "request path not usable", NULL);
        return;
    }
    int r = route_match_filtered(sh->routes, req->path, req->path_len, conn__route_ok, c);
    c->route = r;
    /* the slices stay valid: nothing reads into c->in before proxy_start() copied them */
    buf_consume(&c->in, head_len);
    if (r < 0) {
        conn_respond_error(c, 404, "no_route", "no route matches this request", NULL);
        return;
    }
    const struct gw_route *gr = &cfg->routes[r];
    if (conn__underscores(c, gr) != 0) {
        conn_respond_error(c, 400, "bad_header",
                           "header name with '_' (headers.underscores: reject)", NULL);
        return;
    }
    /* Admission: the route's concurrency limit, then the global one. */
    struct gw_route_rt *rt = &sh->rt[r];
    if (gr->limit.concurrency > 0) {
        if (atomic_fetch_add(&rt->inflight, 1) >= gr->limit.concurrency) {
            atomic_fetch_sub(&rt->inflight, 1);
            metrics_counter_inc(th->ms, rt->shed);
            char hdr[64];
            snprintf(hdr, sizeof(hdr), "Retry-After: %llu\r\n",
                     (unsigned long long)((gr->limit.retry_after_ms + 999) / 1000));
            conn_respond_error(c, 503, "overloaded", "route concurrency limit reached", hdr);
            return;
        }
        c->admitted_route = true;
    }
    if (cfg->server.concurrency > 0) {
        if (atomic_fetch_add(&sh->inflight, 1) >= cfg->server.concurrency) {
            atomic_fetch_sub(&sh->inflight, 1);
            metrics_counter_inc(th->ms, sh->ids.shed_global);
            uint64_t ra = gr->limit.retry_after_ms ? gr->limit.retry_after_ms : 1000;
            char hdr[64];
            snprintf(hdr, sizeof(hdr), "Retry-After: %llu\r\n",
                     (unsigned long long)((ra + 999) / 1000));
            conn_respond_error(c, 503, "overloaded", "gateway concurrency limit reached", hdr);
            return;
        }
        c->admitted_global = true;
    }
    /* Cache: a hit answers from memory, a coalesced miss parks; else on to the upstream. */
    if (cachehook_request(c))
        return;
    if (req->expect_continue && req->body != H1_BODY_NONE && buf_pending(&c->in) == 0) {
        /* Answer 100 ourselves: the upstream never sees Expect (we strip it), and a client that
         * waits for it would otherwise stall until its own timeout. */
        buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        c->sent_continue = true;
        if (conn_send(c, NULL, 0) == -1)
            return;
    }
    proxy_start(c);
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
        if (buf_pending(&c->out) >= CONN_BUF_HIGH)
            return; // the client is not reading its responses: wait for the drain
        size_t pend = buf_pending(&c->in);
        if (pend == 0) {
            if (c->read_eof) {
                conn_close(c);
                return;
            }
            if (c->timer_kind != T_IDLE && c->timer_kind != T_HEADER)
                conn__arm(c, T_IDLE, cfg->server.keepalive_timeout_ms);
            conn__idle_release(c); // the read met EAGAIN: nothing to hold a block for
            return;
        }
        conn__hdrs_take(c);
        struct h1_limits lim = {.max_request_line = 0,
                                .max_head = cfg->server.max_head_size,
                                .max_headers = c->max_hdrs};
        int r = h1_parse_request(buf_head(&c->in), pend, &c->req, c->hdrs, c->max_hdrs, &lim);
        if (r == -2) {
            if (c->read_eof) {
                conn_close(c); // half a head and then EOF: nothing to answer
                return;
            }
            if (c->timer_kind != T_HEADER) {
                /* the header timeout counts from the first byte, never re-armed per read:
                 * that is what defeats a slowloris client */
                c->t_start_us = clock_now_us();
                conn__arm(c, T_HEADER, cfg->server.client_header_timeout_ms);
            }
            if (!c->readable)
                conn__park_head(c); // the socket is drained: wait holding only these bytes
            return;
        }
        if (r == -1) {
            c->state = CONN_BUSY;
            c->keep_alive = false;
            if (c->t_start_us == 0)
                c->t_start_us = clock_now_us();
            c->wall_ms = clock_wall_ms();
            conn__arm(c, T_NONE, 0);
            c->route = -1;
            /* a generated id: the client's X-Request-Id is in a head we just refused */
            conn__make_rid(c, NULL);
            conn_respond_error(c, h1_err_status(c->req.err), "bad_request",
                               h1_err_text(c->req.err), NULL);
            return;
        }
        conn__start_request(c, (size_t)r);
        /* the rest of the body has to come in time too */
        if (c->state == CONN_BUSY && !c->px.req_body_read && !c->readable && !c->read_eof &&
            c->timer_kind == T_NONE)
            conn__arm(c, T_BODY, cfg->server.client_body_timeout_ms);
        return;
    }
    case CONN_BUSY:
        if (!c->px.req_body_read) {
            proxy_on_client_data(c);
            if (c->state == CONN_BUSY && !c->px.req_body_read && !c->read_eof) {
                if (c->readable)
                    return;
                conn__arm(c, T_BODY, cfg->server.client_body_timeout_ms);
            }
        }
        if (c->state == CONN_BUSY && c->read_eof && !c->px.req_body_read) {
            /* the client went away in the middle of its body */
            conn_close(c);
        }
        return;
    case CONN_CLOSING:
        if (c->timer_kind == T_LINGER) {
            char scratch[4096];
            for (;;) {
                ssize_t n = read(c->fd, scratch, sizeof(scratch));
                if (n > 0)
                    continue;
                if (n == -1 && (errno == EINTR))
                    continue;
                if (n == -1 && errno == EAGAIN)
                    return;
                conn_close(c);
                return;
            }
        }
        buf_reset(&c->in);
        return;
    default:
        return;
    }
}

static void conn__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct conn *c = arg;
    if (c->magic != CONN_MAGIC || c->state == CONN_CLOSED)
        return;
    if (events & LOOP_WRITE) {
        c->writable = true;
        if (buf_pending(&c->out) > 0) {
            conn__flush(c);
            if (c->state == CONN_CLOSED)
                return;
        }
    }
    if (events & LOOP_HUP)
        c->peer_hup = true;
    if (events & LOOP_READ) {
        c->readable = true;
        if (c->state == CONN_CLOSING && c->timer_kind != T_LINGER) {
            /* still flushing the last response: drop what arrives */
            char scratch[4096];
            while (read(c->fd, scratch, sizeof(scratch)) > 0)
                ;
            c->readable = false;
            return;
        }
        conn__process(c);
    }
}
