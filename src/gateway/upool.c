/* Per-thread keep-alive pool of one upstream. A connection is in exactly one state: connecting
 * (TCP, then TLS handshake), idle (in its server's LIFO list, idle timer armed), lent (the data path
 * owns its events through c->cb) or closed (waiting for its deferred free). The fd is registered
 * once, for READ|WRITE edge-triggered, when the connection is created; only the callback target
 * changes afterwards. Waiters that find no room queue FIFO; one timer watches the queue head
 * (every waiter of a pool has the same queue_timeout, so the head always expires first). */
#include "gateway/upool.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/balancer.h"
#include "gateway/upstream_priv.h"
#include "metrics/metrics.h"
#include "net/sock.h"
#include "net/tls.h"
#include "net/transport.h"

const char upool_err_no_healthy[] = "no_healthy_server";
const char upool_err_queue_full[] = "queue_full";
const char upool_err_queue_timeout[] = "queue_timeout";
const char upool_err_connect_refused[] = "connect_refused";
const char upool_err_connect_timeout[] = "connect_timeout";
const char upool_err_connect[] = "connect_error";
const char upool_err_tls_handshake[] = "tls_handshake";
const char upool_err_tls_verify[] = "tls_verify";
const char upool_err_closed[] = "pool_closed";

#define UCONN_MAGIC 0x55434f4eu /* "UCON" */
#define UPOOL_MAGIC 0x55504f4cu /* "UPOL" */

enum uconn_state { UC_CONNECTING = 0, UC_HANDSHAKE, UC_IDLE, UC_LENT, UC_CLOSED };
enum { W_NONE = 0, W_QUEUED, W_CONNECTING };

struct uconn {
    uint32_t magic;
    enum uconn_state state;
    struct transport tp;
    struct upool *pool;
    size_t server;
    uint64_t nrequests;          /* exchanges completed on this connection */
    uconn_cb *cb;                /* where fd events go while lent */
    void *cb_arg;
    struct loop_timer timer;     /* connect timeout, then idle timeout */
    struct uconn *prev, *next;   /* idle list of its server */
    struct uconn *all_prev, *all_next; /* every live connection of the pool */
    struct upool_waiter *waiter; /* the request this connection is being opened for */
    uint64_t t0_us;              /* connect start, then lend time */
    uint64_t connect_us;         /* how long the connect (+ TLS handshake) took */
    uint64_t quiet_at_ms;        /* idle: not reused before this loop time (pool.settle) */
    uint64_t idle_ms;            /* loop time it went idle */
    bool settled;                /* this lend: new, or idle at least pool.settle before */
    bool observed;               /* upool_observe called during this lend */
    bool counted;                /* balancer_start done, balancer_done pending */
    bool settle;                 /* the response of this lend had no body (uconn_settle) */
};

struct upool_srv {
    struct uconn *idle_head, *idle_tail; /* head = most recently used (LIFO reuse) */
    size_t nidle;
    size_t nopen;                        /* connecting + idle + lent */
    uint64_t suspect_until_ms;           /* stray bytes seen: every release settles until then */
};

/* How long a server that sent stray bytes has every connection settle before reuse. */
#define UPOOL_SUSPECT_MS (10u * 60u * 1000u)

struct upool {
    uint32_t magic;
    struct loop *loop;
    struct upstream *u;
    struct metrics_slot *slot;
    struct balancer bal;
    struct upool_srv *srv;
    struct balancer_server *bs; /* per server, contiguous for balancer_pick */
    size_t n;
    struct uconn *all;
    struct upool_waiter *qhead, *qtail;
    struct loop_timer qtimer;
    bool dispatch_pending;
    bool destroyed;              /* the pending dispatch task frees the pool */
    uint64_t addr_seq;           /* rotates over the A/AAAA records of hostnames */
    struct upool_stats st;
    struct log_limit loglim;     /* connect errors: a line a second */
    struct log_limit straylim;   /* stray bytes */
};

static void upool__on_fd(struct loop *loop, int fd, void *arg, unsigned events);
static void upool__on_timer(struct loop *loop, void *arg);
static void upool__on_queue_timer(struct loop *loop, void *arg);
static void upool__schedule_dispatch(struct upool *p);

static uint64_t upool__max_conns(const struct upool *p)
{
    int64_t m = p->u->conf->pool.max_connections;
    return m > 0 ? (uint64_t)m : UINT64_MAX;
}

struct upool *upool_create(struct loop *loop, struct upstream *u, struct metrics_slot *slot)
{
    struct upool *p = xcalloc(1, sizeof(*p));
    p->magic = UPOOL_MAGIC;
    p->loop = loop;
    p->u = u;
    p->slot = slot;
    p->n = u->nservers;
    p->srv = xcalloc(p->n ? p->n : 1, sizeof(*p->srv));
    p->bs = xcalloc(p->n ? p->n : 1, sizeof(*p->bs));
    for (size_t i = 0; i < p->n; i++) {
        int64_t w = u->servers[i].conf->weight;
        p->bs[i].weight = (uint32_t)(w > 0 ? w : 1);
    }
    /* Seeded per pool so that threads do not draw the same P2C pairs in lockstep. */
    balancer_init(&p->bal, (enum balancer_policy)u->conf->balance,
                  clock_now_ns() ^ (uint64_t)(uintptr_t)p);
    loop_timer_init(&p->qtimer, upool__on_queue_timer, p);
    return p;
}

/* ---- connection states and gauges ---- */

static metrics_ref upool__state_gauge(const struct upool *p, enum uconn_state s)
{
    switch (s) {
    case UC_CONNECTING:
    case UC_HANDSHAKE:
        return p->u->m_connecting;
    case UC_IDLE:
        return p->u->m_idle;
    case UC_LENT:
        return p->u->m_in_use;
    default:
        return METRICS_REF_NONE;
    }
}

static size_t *upool__state_count(struct upool *p, enum uconn_state s)
{
    switch (s) {
    case UC_CONNECTING:
    case UC_HANDSHAKE:
        return &p->st.connecting;
    case UC_IDLE:
        return &p->st.idle;
    case UC_LENT:
        return &p->st.in_use;
    default:
        return NULL;
    }
}

static void upool__set_state(struct upool *p, struct uconn *c, enum uconn_state s)
{
    size_t *from = upool__state_count(p, c->state), *to = upool__state_count(p, s);
    metrics_ref gf = upool__state_gauge(p, c->state), gt = upool__state_gauge(p, s);
    if (from != to) {
        if (from)
            (*from)--;
        if (to)
            (*to)++;
        if (gf != METRICS_REF_NONE)
            metrics_gauge_add(p->slot, gf, -1);
        if (gt != METRICS_REF_NONE)
            metrics_gauge_add(p->slot, gt, 1);
    }
    c->state = s;
}

static void upool__idle_unlink(struct upool *p, struct uconn *c)
{
    struct upool_srv *sv = &p->srv[c->server];
    if (c->prev)
        c->prev->next = c->next;
    else
        sv->idle_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        sv->idle_tail = c->prev;
    c->prev = c->next = NULL;
    sv->nidle--;
}

static void upool__free_task(struct loop *loop, void *arg)
{
    (void)loop;
    struct uconn *c = arg;
    c->magic = 0;
    free(c);
}

/* Closes <c> whatever its state. The memory is freed after the current event batch, so a caller
 * up the stack (its own fd callback) may still look at it. */
static void upool__close(struct upool *p, struct uconn *c, int reason, bool defer_free)
{
    if (c->state == UC_CLOSED)
        return;
    if (c->state == UC_IDLE)
        upool__idle_unlink(p, c);
    if (c->counted) {
        balancer_done(&p->bs[c->server]);
        c->counted = false;
    }
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        p->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    loop_timer_stop(p->loop, &c->timer);
    if (c->tp.fd >= 0)
        loop_del_fd(p->loop, c->tp.fd);
    transport_close(&c->tp);
    p->srv[c->server].nopen--;
    if (reason >= 0 && reason < UPSTREAM_CLOSE_COUNT)
        metrics_counter_inc(p->slot, p->u->m_closed[reason]);
    upool__set_state(p, c, UC_CLOSED);
    c->cb = NULL;
    if (defer_free)
        loop_defer(p->loop, upool__free_task, c);
    else
        upool__free_task(p->loop, c);
}

/* Puts <c> on its server's idle list (most recent first) with the idle timer armed; trims the
 * list to max_idle unless requests are waiting (they take the connection next). */
static void upool__make_idle(struct upool *p, struct uconn *c)
{
    struct upool_srv *sv = &p->srv[c->server];
    upool__set_state(p, c, UC_IDLE);
    c->cb = NULL;
    c->waiter = NULL;
    c->idle_ms = loop_now_ms(p->loop);
    c->prev = NULL;
    c->next = sv->idle_head;
    if (sv->idle_head)
        sv->idle_head->prev = c;
    else
        sv->idle_tail = c;
    sv->idle_head = c;
    sv->nidle++;
    loop_timer_start(p->loop, &c->timer, p->u->conf->pool.idle_timeout_ms);
    int64_t max_idle = p->u->conf->pool.max_idle;
    while (p->qhead == NULL && (int64_t)sv->nidle > max_idle && sv->idle_tail != NULL)
        upool__close(p, sv->idle_tail, UPSTREAM_CLOSE_MAX_IDLE, true);
}

/* A server sent bytes no request asked for: close <c>, and from now on let every connection of
 * that server settle before reuse (a late body must land on an idle connection, never be read as
 * the next request's response). */
static void upool__stray(struct upool *p, struct uconn *c, const char *what)
{
    struct upool_srv *sv = &p->srv[c->server];
    uint64_t now = loop_now_ms(p->loop);
    if (sv->suspect_until_ms <= now)
        ag_log_limited(AG_LOG_WARN, &p->straylim,
                       "upstream %s: server %s sent %s; its connections now settle %llu ms "
                       "before reuse",
                       p->u->conf->name, p->u->servers[c->server].name, what,
                       (unsigned long long)p->u->conf->pool.settle_ms);
    sv->suspect_until_ms = now + UPOOL_SUSPECT_MS;
    upool__close(p, c, UPSTREAM_CLOSE_STRAY, true);
}

/* Nothing may be pending on an idle connection: bytes are stray (or, on TLS, a record the TLS
 * layer eats, such as a session ticket), EOF means the server closed it. A non-blocking peek,
 * so a clean connection costs one syscall. Returns false after closing <c>. */
static bool upool__clean(struct upool *p, struct uconn *c)
{
    char b;
    ssize_t r = recv(c->tp.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    if (r > 0 && c->tp._tls != NULL) {
        char buf[256];
        ssize_t n = transport_read(&c->tp, buf, sizeof(buf));
        if (n == IO_AGAIN)
            return true;
        r = n;
    }
    if (r > 0)
        upool__stray(p, c, "bytes on an idle connection");
    else
        upool__close(p, c, UPSTREAM_CLOSE_PEER, true);
    return false;
}

/* An idle connection of server <si> for a new request, or NULL: open a new one (room is then
 * guaranteed: either there was room or closing a dirty idle connection made some). Prefers the
 * most recently used one that has settled; when none has and the server has room, a new
 * connection is opened instead; at the connection cap the longest idle one is used. */
static struct uconn *upool__take_idle(struct upool *p, size_t si, bool settled)
{
    struct upool_srv *sv = &p->srv[si];
    uint64_t now = loop_now_ms(p->loop);
    uint64_t settle = p->u->conf->pool.settle_ms;
    struct uconn *c = sv->idle_head;
    while (c != NULL) {
        struct uconn *next = c->next;
        bool ok = c->quiet_at_ms <= now && (!settled || c->idle_ms + settle <= now);
        if (ok && upool__clean(p, c)) {
            c->settled = c->idle_ms + settle <= now;
            return c;
        }
        c = next;
    }
    if (sv->nopen < upool__max_conns(p))
        return NULL;
    /* At the cap, waiting for a settled connection would stall every miss of a busy cached
     * route and storing nothing would empty the cache under load (e2e/90: hit ratio 0.6): a
     * server never seen sending stray bytes is trusted; a suspect one is not (its connections
     * settle anyway, so its responses are served and not stored). */
    bool trusted = sv->suspect_until_ms <= now;
    for (c = sv->idle_tail; c != NULL;) {
        struct uconn *prev = c->prev;
        if (upool__clean(p, c)) {
            c->settled = trusted || c->idle_ms + settle <= now;
            return c;
        }
        c = prev;
    }
    return NULL;
}

/* Hands <c> to the data path. */
static void upool__lend(struct upool *p, struct uconn *c)
{
    if (c->state == UC_IDLE) {
        upool__idle_unlink(p, c);
        loop_timer_stop(p->loop, &c->timer);
    }
    upool__set_state(p, c, UC_LENT);
    c->cb = NULL;
    c->waiter = NULL;
    c->observed = false;
    c->t0_us = clock_now_us();
    if (!c->counted) {
        balancer_start(&p->bs[c->server]);
        c->counted = true;
    }
}

/* ---- choosing a server ---- */

/* Marks the servers that can take a request now (usable, with an idle connection or room for
 * one). Backup servers count only when no primary is usable. When no server at all is usable
 * (every one marked down by checks or ejected), every server with an address is tried anyway:
 * panic mode, as Envoy's healthy panic threshold, so that a verdict from before a recovery never
 * refuses requests the origin could answer now. Returns how many are eligible; <usable> gets how
 * many could take traffic at all. */
static size_t upool__eligible(struct upool *p, uint64_t now_ms, size_t *usable)
{
    size_t primaries = 0, any = 0;
    /* First pass: usable servers, noted in .eligible; second pass: backups and room. */
    for (size_t i = 0; i < p->n; i++) {
        p->bs[i].eligible = upstream__usable(&p->u->servers[i], now_ms);
        primaries += p->bs[i].eligible && !p->u->servers[i].conf->backup;
        any += p->bs[i].eligible;
    }
    bool panic = any == 0;
    if (panic) {
        for (size_t i = 0; i < p->n; i++) {
            p->bs[i].eligible = upstream__resolved(&p->u->servers[i]);
            primaries += p->bs[i].eligible && !p->u->servers[i].conf->backup;
            any += p->bs[i].eligible;
        }
    }
    upstream__panic(p->u, panic && any > 0);
    size_t n = 0, u = 0;
    uint64_t maxc = upool__max_conns(p);
    for (size_t i = 0; i < p->n; i++) {
        struct upool_srv *sv = &p->srv[i];
        bool use = p->bs[i].eligible && (primaries == 0 || !p->u->servers[i].conf->backup);
        u += use;
        p->bs[i].eligible = use && (sv->nidle > 0 || sv->nopen < maxc);
        n += p->bs[i].eligible;
    }
    *usable = u;
    return n;
}

/* A retry skips the server that just failed it, when another eligible one has room. */
static void upool__avoid(struct upool *p, const struct upool_waiter *w, size_t *n)
{
    if (w->avoid == 0 || w->avoid > p->n || *n < 2 || !p->bs[w->avoid - 1].eligible)
        return;
    p->bs[w->avoid - 1].eligible = false;
    (*n)--;
}

/* ---- opening connections ---- */

static const char *upool__errno_reason(int err)
{
    if (err == ECONNREFUSED)
        return upool_err_connect_refused;
    if (err == ETIMEDOUT)
        return upool_err_connect_timeout;
    return upool_err_connect;
}

static void upool__log_connect_error(struct upool *p, size_t server, const char *text)
{
    ag_log_limited(AG_LOG_WARN, &p->loglim, "upstream %s: cannot connect to %s: %s",
                   p->u->conf->name, p->u->servers[server].name, text);
}

/* Counts a failed connect (metrics, passive ejection, log). */
static void upool__count_connect_error(struct upool *p, size_t server, const char *reason,
                                       const char *text)
{
    struct upstream_server *s = &p->u->servers[server];
    p->st.connect_errors++;
    metrics_counter_inc(p->slot, s->m_connect_errors[upstream__reason_index(reason)]);
    upool__log_connect_error(p, server, text);
    balancer_observe(&p->bal, &p->bs[server], 0, true, clock_now_us());
    if (upstream__fail(p->u, s, loop_now_ms(p->loop)))
        metrics_counter_inc(p->slot, s->m_ejections);
}

/* Starts a connection to server <si>. Returns it (connecting), or NULL with <err> when the
 * connect failed at once. */
static struct uconn *upool__open(struct upool *p, size_t si, uint64_t connect_timeout_ms,
                                 const char **err)
{
    struct upstream_server *s = &p->u->servers[si];
    struct sock_addr addr;
    if (!upstream__addr(s, p->addr_seq++, &addr)) {
        *err = upool_err_no_healthy;
        return NULL;
    }
    p->st.connects++;
    metrics_counter_inc(p->slot, s->m_connects);
    int fd = sock_connect(&addr);
    if (fd < 0) {
        int e = errno;
        *err = upool__errno_reason(e);
        upool__count_connect_error(p, si, *err, strerror(e));
        return NULL;
    }
    sock_set_nodelay(fd);
    struct uconn *c = xcalloc(1, sizeof(*c));
    c->magic = UCONN_MAGIC;
    c->pool = p;
    c->server = si;
    c->state = UC_CLOSED; /* upool__set_state below counts it as connecting */
    transport_init_tcp(&c->tp, fd);
    loop_timer_init(&c->timer, upool__on_timer, c);
    if (loop_add_fd(p->loop, fd, LOOP_READ | LOOP_WRITE, upool__on_fd, c) != 0) {
        int e = errno;
        transport_close(&c->tp);
        free(c);
        *err = upool_err_connect;
        upool__count_connect_error(p, si, *err, strerror(e));
        return NULL;
    }
    c->all_next = p->all;
    if (p->all)
        p->all->all_prev = c;
    p->all = c;
    p->srv[si].nopen++;
    upool__set_state(p, c, UC_CONNECTING);
    c->t0_us = clock_now_us();
    if (connect_timeout_ms == 0)
        connect_timeout_ms = p->u->conf->connect_timeout_ms;
    loop_timer_start(p->loop, &c->timer, connect_timeout_ms);
    return c;
}

/* The connection is ready: give it to its waiter, or to the queue, or keep it idle. */
static void upool__connected(struct upool *p, struct uconn *c)
{
    loop_timer_stop(p->loop, &c->timer);
    c->connect_us = clock_now_us() - c->t0_us;
    metrics_hist_observe_us(p->slot, p->u->m_connect_time, c->connect_us);
    struct upool_waiter *w = c->waiter;
    if (w != NULL) {
        w->_conn = NULL;
        w->_state = W_NONE;
        upool__lend(p, c);
        w->ready(w, c, NULL);
        return;
    }
    /* Its request went away meanwhile: the connection serves the next one. */
    if (c->counted) {
        balancer_done(&p->bs[c->server]);
        c->counted = false;
    }
    upool__make_idle(p, c);
    if (p->qhead != NULL)
        upool__schedule_dispatch(p);
}

static void upool__connect_failed(struct upool *p, struct uconn *c, const char *reason,
                                  const char *text)
{
    struct upool_waiter *w = c->waiter;
    size_t si = c->server;
    c->waiter = NULL;
    upool__count_connect_error(p, si, reason, text);
    upool__close(p, c, -1, true);
    if (w != NULL) {
        w->_conn = NULL;
        w->_state = W_NONE;
        w->ready(w, NULL, reason);
    }
    /* A slot of that server is free again. */
    if (p->qhead != NULL)
        upool__schedule_dispatch(p);
}

static void upool__handshake(struct upool *p, struct uconn *c)
{
    int r = transport_handshake(&c->tp);
    if (r == IO_AGAIN)
        return;
    if (r == IO_OK) {
        bool resumed = tls_transport_resumed(&c->tp);
        metrics_counter_inc(p->slot, resumed ? p->u->m_tls_resumed : p->u->m_tls_full);
        upool__connected(p, c);
        return;
    }
    char text[300];
    tls_transport_describe(&c->tp, text, sizeof(text));
    const char *reason =
        c->tp.err == transport_err_tls_verify ? upool_err_tls_verify : upool_err_tls_handshake;
    char msg[400];
    snprintf(msg, sizeof(msg), "TLS handshake failed: %s%s", text,
             reason == upool_err_tls_verify ? " (check tls.ca_file and tls.sni)" : "");
    upool__connect_failed(p, c, reason, msg);
}

static void upool__on_fd(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct uconn *c = arg;
    AG_ASSERT(c->magic == UCONN_MAGIC);
    struct upool *p = c->pool;
    switch (c->state) {
    case UC_CONNECTING: {
        int e = sock_connect_result(c->tp.fd);
        if (e != 0) {
            upool__connect_failed(p, c, upool__errno_reason(e), strerror(e));
            return;
        }
        if (!(events & LOOP_WRITE))
            return;
        struct upstream_server *s = &p->u->servers[c->server];
        if (s->tls_sess == NULL) {
            upool__connected(p, c);
            return;
        }
        char err[300];
        int tfd = c->tp.fd;
        if (tls_transport_init(&c->tp, p->u->tls, tfd, s->tls_name, s->tls_sess, err,
                               sizeof(err)) != 0) {
            upool__connect_failed(p, c, upool_err_tls_handshake, err);
            return;
        }
        upool__set_state(p, c, UC_HANDSHAKE);
        upool__handshake(p, c);
        return;
    }
    case UC_HANDSHAKE:
        upool__handshake(p, c);
        return;
    case UC_IDLE: {
        if (!(events & (LOOP_READ | LOOP_ERROR)))
            return;
        /* Bytes or EOF on an idle connection: the server closed it (keep-alive timeout) or broke
         * the protocol. TLS may deliver a session ticket here, which reads as IO_AGAIN. */
        char b[256];
        ssize_t r = transport_read(&c->tp, b, sizeof(b));
        if (r > 0)
            upool__stray(p, c, "bytes on an idle connection");
        else if (r != IO_AGAIN)
            upool__close(p, c, UPSTREAM_CLOSE_PEER, true);
        return;
    }
    case UC_LENT:
        if (c->cb != NULL)
            c->cb(c, events, c->cb_arg);
        return;
    case UC_CLOSED:
        return;
    }
}

static void upool__on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct uconn *c = arg;
    struct upool *p = c->pool;
    if (c->state == UC_CONNECTING || c->state == UC_HANDSHAKE) {
        char text[128];
        snprintf(text, sizeof(text), "%s timed out",
                 c->state == UC_CONNECTING ? "connect" : "TLS handshake");
        upool__connect_failed(p, c, upool_err_connect_timeout, text);
    } else if (c->state == UC_IDLE) {
        upool__close(p, c, UPSTREAM_CLOSE_IDLE_TIMEOUT, true);
    }
}

/* ---- the queue ---- */

static void upool__dequeue(struct upool *p, struct upool_waiter *w)
{
    if (w->_prev)
        w->_prev->_next = w->_next;
    else
        p->qhead = w->_next;
    if (w->_next)
        w->_next->_prev = w->_prev;
    else
        p->qtail = w->_prev;
    w->_next = w->_prev = NULL;
    w->_state = W_NONE;
    p->st.waiting--;
    metrics_gauge_add(p->slot, p->u->m_waiting, -1);
    uint64_t now = clock_now_us();
    w->wait_us = now > w->_queued_us ? now - w->_queued_us : 0;
    metrics_hist_observe_us(p->slot, p->u->m_wait, w->wait_us);
}

static void upool__arm_queue_timer(struct upool *p)
{
    if (p->qhead == NULL) {
        loop_timer_stop(p->loop, &p->qtimer);
        return;
    }
    uint64_t due = p->qhead->_queued_us + p->u->conf->pool.queue_timeout_ms * 1000;
    uint64_t now = clock_now_us();
    uint64_t delay_ms = due > now ? (due - now + 999) / 1000 : 0;
    loop_timer_start(p->loop, &p->qtimer, delay_ms);
}

static int upool__enqueue(struct upool *p, struct upool_waiter *w, const char **err)
{
    int64_t max_queue = p->u->conf->pool.max_queue;
    if ((int64_t)p->st.waiting >= max_queue) {
        *err = upool_err_queue_full;
        metrics_counter_inc(p->slot, p->u->m_err_queue_full);
        return -1;
    }
    w->_queued_us = clock_now_us();
    w->_next = NULL;
    w->_prev = p->qtail;
    if (p->qtail)
        p->qtail->_next = w;
    else
        p->qhead = w;
    p->qtail = w;
    w->_state = W_QUEUED;
    p->st.waiting++;
    metrics_gauge_add(p->slot, p->u->m_waiting, 1);
    if (!loop_timer_armed(&p->qtimer))
        upool__arm_queue_timer(p);
    return 0;
}

static void upool__on_queue_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct upool *p = arg;
    uint64_t now = clock_now_us();
    uint64_t limit = p->u->conf->pool.queue_timeout_ms * 1000;
    while (p->qhead != NULL && p->qhead->_queued_us + limit <= now + 500) {
        struct upool_waiter *w = p->qhead;
        upool__dequeue(p, w);
        metrics_counter_inc(p->slot, p->u->m_err_queue_timeout);
        w->ready(w, NULL, upool_err_queue_timeout);
    }
    upool__arm_queue_timer(p);
}

/* Serves queued waiters while some server has room. Runs deferred (never inside the caller's
 * upool_release), so ready() callbacks do not nest into the code that freed the room. */
static void upool__dispatch(struct loop *loop, void *arg)
{
    (void)loop;
    struct upool *p = arg;
    p->dispatch_pending = false;
    if (p->destroyed) {
        p->magic = 0;
        free(p);
        return;
    }
    while (p->qhead != NULL) {
        size_t usable;
        uint64_t now_ms = loop_now_ms(p->loop);
        size_t n = upool__eligible(p, now_ms, &usable);
        struct upool_waiter *w = p->qhead;
        if (usable == 0) {
            upool__dequeue(p, w);
            metrics_counter_inc(p->slot, p->u->m_err_no_healthy);
            w->ready(w, NULL, upool_err_no_healthy);
            continue;
        }
        if (n == 0)
            break;
        upool__avoid(p, w, &n);
        int si = balancer_pick(&p->bal, p->bs, p->n, clock_now_us());
        upool__dequeue(p, w);
        struct uconn *c = upool__take_idle(p, (size_t)si, w->settled);
        if (c != NULL) {
            upool__lend(p, c);
            p->st.reuses++;
            metrics_counter_inc(p->slot, p->u->m_reuses);
            w->ready(w, c, NULL);
            continue;
        }
        const char *err = NULL;
        c = upool__open(p, (size_t)si, w->_connect_timeout_ms, &err);
        if (c == NULL) {
            w->ready(w, NULL, err);
            continue;
        }
        balancer_start(&p->bs[si]);
        c->counted = true;
        c->waiter = w;
        w->_conn = c;
        w->_state = W_CONNECTING;
    }
    upool__arm_queue_timer(p);
}

static void upool__schedule_dispatch(struct upool *p)
{
    if (p->dispatch_pending)
        return;
    p->dispatch_pending = true;
    loop_defer(p->loop, upool__dispatch, p);
}

/* ---- public API ---- */

struct uconn *upool_acquire(struct upool *p, struct upool_waiter *w, uint64_t connect_timeout_ms,
                            const char **err)
{
    *err = NULL;
    w->_pool = p;
    w->_conn = NULL;
    w->_next = w->_prev = NULL;
    w->_state = W_NONE;
    w->_connect_timeout_ms = connect_timeout_ms;
    w->wait_us = 0;
    size_t usable;
    size_t n = upool__eligible(p, loop_now_ms(p->loop), &usable);
    if (usable == 0) {
        *err = upool_err_no_healthy;
        metrics_counter_inc(p->slot, p->u->m_err_no_healthy);
        return NULL;
    }
    /* Behind a queue nobody jumps ahead, even when a connection frees up this very moment. Room
     * can also appear without a release (a server back from ejection): let the queue move. */
    if (n == 0 || p->qhead != NULL) {
        if (upool__enqueue(p, w, err) == 0 && n > 0)
            upool__schedule_dispatch(p);
        return NULL;
    }
    upool__avoid(p, w, &n);
    int si = balancer_pick(&p->bal, p->bs, p->n, clock_now_us());
    struct uconn *c = upool__take_idle(p, (size_t)si, w->settled);
    if (c != NULL) {
        upool__lend(p, c);
        p->st.reuses++;
        metrics_counter_inc(p->slot, p->u->m_reuses);
        return c;
    }
    c = upool__open(p, (size_t)si, connect_timeout_ms, err);
    if (c == NULL)
        return NULL;
    balancer_start(&p->bs[si]);
    c->counted = true;
    c->waiter = w;
    w->_conn = c;
    w->_state = W_CONNECTING;
    return NULL;
}

bool upool_waiter_queued(const struct upool_waiter *w)
{
    return w->_state == W_QUEUED;
}

void upool_cancel(struct upool_waiter *w)
{
    struct upool *p = w->_pool;
    if (p == NULL)
        return;
    if (w->_state == W_QUEUED) {
        upool__dequeue(p, w);
        upool__arm_queue_timer(p);
    } else if (w->_state == W_CONNECTING && w->_conn != NULL) {
        w->_conn->waiter = NULL; /* keeps connecting; serves the queue or goes idle */
        w->_conn = NULL;
    }
    w->_state = W_NONE;
}

void upool_observe(struct upool *p, struct uconn *c, uint64_t latency_us, bool failed)
{
    balancer_observe(&p->bal, &p->bs[c->server], latency_us, failed, clock_now_us());
    c->observed = true;
    if (failed) {
        struct upstream_server *s = &p->u->servers[c->server];
        if (upstream__fail(p->u, s, loop_now_ms(p->loop)))
            metrics_counter_inc(p->slot, s->m_ejections);
    } else {
        upstream__success(p->u, &p->u->servers[c->server], loop_now_ms(p->loop));
    }
}

void upool_release(struct upool *p, struct uconn *c, bool reusable)
{
    if (c == NULL)
        return;
    AG_ASSERT(c->magic == UCONN_MAGIC);
    if (c->state != UC_LENT)
        return;
    struct balancer_server *bs = &p->bs[c->server];
    uint64_t now = clock_now_us();
    uint64_t held = now > c->t0_us ? now - c->t0_us : 0;
    metrics_hist_observe_us(p->slot, p->u->servers[c->server].m_duration, held);
    if (!c->observed)
        balancer_observe(&p->bal, bs, held, false, now);
    if (c->counted) {
        balancer_done(bs);
        c->counted = false;
    }
    c->cb = NULL;
    c->nrequests++;
    uint64_t now_ms = loop_now_ms(p->loop);
    bool settle = c->settle || p->srv[c->server].suspect_until_ms > now_ms;
    c->settle = false;
    c->quiet_at_ms = settle ? now_ms + p->u->conf->pool.settle_ms : 0;
    int64_t max_req = p->u->conf->pool.keepalive_requests;
    if (!reusable)
        upool__close(p, c, UPSTREAM_CLOSE_NOT_REUSABLE, true);
    else if (max_req > 0 && c->nrequests >= (uint64_t)max_req)
        upool__close(p, c, UPSTREAM_CLOSE_MAX_REQUESTS, true);
    else
        upool__make_idle(p, c);
    if (p->qhead != NULL)
        upool__schedule_dispatch(p);
}

void upool_take(struct upool *p, struct uconn *c, struct transport *out)
{
    AG_ASSERT(c->magic == UCONN_MAGIC && c->state == UC_LENT);
    uint64_t now = clock_now_us();
    uint64_t held = now > c->t0_us ? now - c->t0_us : 0;
    if (!c->observed)
        balancer_observe(&p->bal, &p->bs[c->server], held, false, now);
    /* the pool closes a struct with no stream: the tunnel owns the socket from here */
    if (c->tp.fd >= 0)
        loop_del_fd(p->loop, c->tp.fd);
    *out = c->tp;
    c->tp.fd = -1;
    c->tp._tls = NULL;
    upool__close(p, c, UPSTREAM_CLOSE_UPGRADED, true);
    if (p->qhead != NULL)
        upool__schedule_dispatch(p);
}

void upool_destroy(struct upool *p)
{
    if (p == NULL)
        return;
    while (p->qhead != NULL) {
        struct upool_waiter *w = p->qhead;
        upool__dequeue(p, w);
        w->ready(w, NULL, upool_err_closed);
    }
    loop_timer_stop(p->loop, &p->qtimer);
    while (p->all != NULL) {
        struct uconn *c = p->all;
        struct upool_waiter *w = c->waiter;
        c->waiter = NULL;
        upool__close(p, c, UPSTREAM_CLOSE_SHUTDOWN, false);
        if (w != NULL) {
            w->_state = W_NONE;
            w->_conn = NULL;
            w->ready(w, NULL, upool_err_closed);
        }
    }
    free(p->srv);
    p->srv = NULL;
    free(p->bs);
    p->bs = NULL;
    if (p->dispatch_pending) {
        p->destroyed = true; /* the queued dispatch task owns the pool now and frees it */
        return;
    }
    p->magic = 0;
    free(p);
}

void uconn_settle(struct uconn *c) { c->settle = true; }

void uconn_stray(struct uconn *c, const char *what)
{
    if (c == NULL || c->magic != UCONN_MAGIC || c->state != UC_LENT)
        return;
    struct upool *p = c->pool;
    if (c->counted) {
        balancer_done(&p->bs[c->server]);
        c->counted = false;
    }
    upool__stray(p, c, what);
    if (p->qhead != NULL)
        upool__schedule_dispatch(p);
}

void uconn_set_handler(struct uconn *c, uconn_cb *cb, void *arg)
{
    c->cb = cb;
    c->cb_arg = arg;
}

struct transport *uconn_transport(struct uconn *c) { return &c->tp; }
bool uconn_reused(const struct uconn *c) { return c->nrequests > 0; }
bool uconn_settled(const struct uconn *c) { return c->nrequests == 0 || c->settled; }
uint64_t uconn_connect_us(const struct uconn *c) { return c->connect_us; }
size_t uconn_server(const struct uconn *c) { return c->server; }
const char *uconn_server_name(const struct uconn *c)
{
    return c->pool->u->servers[c->server].name;
}

void upool_get_stats(const struct upool *p, struct upool_stats *out) { *out = p->st; }
