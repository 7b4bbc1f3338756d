/* Connections of `apigate mock`: accept, read, parse (strict, pipelined), route, delay and answer
 * in order. A request's response bytes are built when it is parsed; what the profile simulates is
 * only *when* they are released: loop timers for latency, the shared DB pool queue, cold start and
 * stall windows. A request with nothing to wait for, on a connection with nothing pending, is
 * answered straight into the output buffer (one read and one write per request). Never blocks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "http/chunked.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "mock/internal.h"
#include "net/srvconn.h"

/* Structs that travel through the loop as void * carry a magic, asserted on entry (zeroed when
 * freed, so a stale pointer aborts at once instead of corrupting another connection). */
#define MOCK_CONN_MAGIC 0x4d434f4eu
#define MOCK_REQ_MAGIC 0x4d524551u
#define MOCK_MAX_HEADERS 100
#define MOCK_MAX_PIPELINE 128   /* requests pending per connection before we stop parsing */
#define MOCK_MAX_OUT (4u << 20) /* unsent bytes beyond which we stop parsing */
#define MOCK_READ_SIZE 16384
#define MOCK_LINGER_MS 2000 /* drain after a final answer at most this long */
#define MOCK_IN_SLACK 65536 /* input beyond max_body + this is not read until parsed */

enum mock_req_state {
    MOCK_REQ_DELAY,   /* application latency / cold start timer */
    MOCK_REQ_QUEUED,  /* waiting for a DB slot (queue timeout timer maybe armed) */
    MOCK_REQ_SERVICE, /* holding a DB slot for its service time */
    MOCK_REQ_STALL,   /* ready, held by a stall window */
    MOCK_REQ_READY,   /* response ready, waiting for the ones before it */
    MOCK_REQ_HANG,    /* never answered */
};

struct mock_req {
    uint32_t magic;
    enum mock_req_state state;
    struct mock_conn *conn; /* NULL once orphaned: its connection closed while a DB grant
                               was on its way from another thread */
    struct mock_thread *th;
    struct mock_profile *profile;   /* a reference: the route and the pool live in it */
    const struct mock_route *route; /* NULL for admin and error answers */
    size_t stat_index;              /* route index, or nroutes for unmatched */
    bool counted;                   /* counts in the stats when flushed */
    struct mock_req *next;          /* connection order */
    struct mock_waiter waiter;      /* first-come first-served place in the DB pool */
    struct loop_timer timer;
    struct buf resp;
    int status;
    bool close_after;
    bool head_only;
    bool keep_alive;
    int minor;
};

struct mock_conn {
    uint32_t magic;
    struct mock_thread *th;
    struct srvconn sc; /* socket, in/out, the idle or linger timer (net/srvconn: the servers' core) */
    struct mock_req *head, *tail; /* pending requests, in arrival order */
    size_t npending;
    bool stop_parsing; /* an error or "close" answer is queued: nothing after it is read */
    bool closed;
    bool busy;         /* inside mock_conn__input(): no re-entry from a flush */
    bool read_blocked; /* input stopped at a limit before EAGAIN: resume after a flush */
    bool chunk_active; /* a chunked request body is being decoded */
    struct h1_chunked chunk;
    struct buf body; /* its decoded bytes so far */
    struct mock_conn *prev, *next; /* the thread's list */
};

/* Closes <c> now and frees it after the event batch. Its requests are dropped; one whose DB
 * grant is on its way from another thread becomes an orphan that the grant frees. */
static void mock_conn__close(struct mock_conn *c);
static void mock_conn__input(struct mock_conn *c);
static void mock_req__abort(struct mock_req *q);
/* <q>'s answer may go out, unless a stall window holds it; it goes only when every request
 * before it on the connection is out (pipelining keeps request order). */
static void mock_req__ready(struct mock_req *q);
/* The one timer of a request: what it meant depends on the state it was armed in. */
static void mock_req__timer(struct loop *loop, void *arg);

/* Milliseconds left in the current stall window, 0 when none. */
static uint64_t mock_conn__stall_left(struct mock_thread *th, const struct mock_profile *p)
{
    if (p->stall_every_ms == 0)
        return 0;
    uint64_t now = loop_now_ms(th->loop);
    uint64_t phase = now > th->srv->start_ms ? (now - th->srv->start_ms) % p->stall_every_ms : 0;
    return phase < p->stall_for_ms ? p->stall_for_ms - phase : 0;
}

/* Cold start: the first request after <idle> without traffic makes every request wait until the
 * "instance" is warm again, <extra> later. */
static uint64_t mock_conn__cold_left(struct mock_thread *th, const struct mock_profile *p)
{
    if (p->cold_idle_ms == 0)
        return 0;
    struct mock_server *srv = th->srv;
    uint64_t now = loop_now_ms(th->loop);
    uint64_t last = atomic_exchange_explicit(&srv->last_request_ms, now, memory_order_relaxed);
    if (now > last && now - last >= p->cold_idle_ms)
        atomic_store_explicit(&srv->warm_at_ms, now + p->cold_extra_ms, memory_order_relaxed);
    uint64_t warm = atomic_load_explicit(&srv->warm_at_ms, memory_order_relaxed);
    return warm > now ? warm - now : 0;
}

/* In-flight requests (created and not yet answered or dropped), read by GET /_mock/stats. */
static void mock_thread__inflight(struct mock_thread *th, long d)
{
    /* only the owner thread writes: a relaxed load and store is enough for readers */
    long v = atomic_load_explicit(&th->inflight, memory_order_relaxed);
    atomic_store_explicit(&th->inflight, v + d, memory_order_relaxed);
}

/* The thread's profile, refreshed when POST /_mock/profile swapped it. */
static struct mock_profile *mock_thread__profile(struct mock_thread *th)
{
    uint64_t gen = atomic_load_explicit(&th->srv->profile_gen, memory_order_acquire);
    if (gen != th->gen) {
        struct mock_profile *p = mock_server_get_profile(th->srv);
        mock_profile_unref(th->profile);
        th->profile = p;
        th->gen = gen;
    }
    return th->profile;
}

/* ---- requests ---- */

static struct mock_req *mock_req__create(struct mock_conn *c, struct mock_profile *p,
                                         const struct mock_route *r)
{
    struct mock_req *q = xcalloc(1, sizeof(*q));
    q->magic = MOCK_REQ_MAGIC;
    q->conn = c;
    q->th = c->th;
    q->profile = p;
    mock_profile_ref(p);
    q->route = r;
    q->stat_index = r ? r->index : p->nroutes;
    loop_timer_init(&q->timer, mock_req__timer, q);
    buf_init(&q->resp);
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->npending++;
    mock_thread__inflight(c->th, 1);
    return q;
}

/* Frees <q> (on its owner thread): its timer, its profile reference, its bytes. */
static void mock_req__free(struct mock_req *q)
{
    AG_ASSERT(q->magic == MOCK_REQ_MAGIC);
    loop_timer_stop(q->th->loop, &q->timer);
    mock_thread__inflight(q->th, -1);
    mock_profile_unref(q->profile);
    buf_deinit(&q->resp);
    q->magic = 0;
    free(q);
}

/* Gives back the DB slot <q> held; the next waiter in the shared FIFO gets it, on its own thread.
 */
static void mock_req__granted(struct loop *loop, void *arg);

static void mock_req__release_slot(struct mock_req *q)
{
    struct mock_waiter *w = mock_pool_release(q->profile->pool);
    if (!w)
        return;
    struct mock_req *next = (struct mock_req *)((char *)w - offsetof(struct mock_req, waiter));
    if (next->th == q->th)
        mock_req__granted(q->th->loop, next);
    else
        loop_post(next->th->loop, mock_req__granted, next);
}

/* <q> holds a DB slot: it keeps it for one sample of the pool's service time. */
static void mock_req__start_service(struct mock_req *q)
{
    q->state = MOCK_REQ_SERVICE;
    double ms = mock_dist_sample(&q->profile->pool_conf.service, &q->th->rng);
    loop_timer_start(q->th->loop, &q->timer, (uint64_t)(ms + 0.5));
}

/* On the owner thread: the DB slot handed over by a release (maybe from another thread). */
static void mock_req__granted(struct loop *loop, void *arg)
{
    (void)loop;
    struct mock_req *q = arg;
    AG_ASSERT(q->magic == MOCK_REQ_MAGIC);
    if (!q->conn) {
        /* its connection is gone: pass the slot on, as a real pool would get it back */
        mock_req__release_slot(q);
        mock_req__free(q);
        return;
    }
    loop_timer_stop(q->th->loop, &q->timer); /* the queue timeout */
    mock_req__start_service(q);
}

/* Replaces the prepared answer with a 503 (queue full / queue timeout), as an overloaded
 * service in front of a saturated pool does. */
static void mock_req__overloaded(struct mock_req *q, const char *why)
{
    buf_reset(&q->resp);
    q->status = 503;
    struct buf body = BUF_INIT;
    mock_body_error(&body, why);
    /* what a load-shedding service says: come back in a second */
    mock_resp_write(q->th, &q->resp, 503, NULL, NULL, buf_head(&body), buf_pending(&body), NULL,
                    "Retry-After: 1\r\n", q->keep_alive, q->minor, q->head_only);
    buf_deinit(&body);
}

/* The application latency is over: a DB route now asks the pool for a slot (at once, queued,
 * or refused), any other route is ready. */
static void mock_req__after_delay(struct mock_req *q)
{
    const struct mock_route *r = q->route;
    if (!r || !r->db) {
        mock_req__ready(q);
        return;
    }
    switch (mock_pool_acquire(q->profile->pool, &q->waiter)) {
    case MOCK_POOL_GRANTED:
        mock_req__start_service(q);
        break;
    case MOCK_POOL_QUEUED:
        q->state = MOCK_REQ_QUEUED;
        if (q->profile->pool_conf.queue_timeout_ms > 0)
            loop_timer_start(q->th->loop, &q->timer, q->profile->pool_conf.queue_timeout_ms);
        break;
    case MOCK_POOL_FULL:
        mock_req__overloaded(q, "database pool queue is full");
        mock_req__ready(q);
        break;
    }
}

static void mock_req__timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct mock_req *q = arg;
    AG_ASSERT(q->magic == MOCK_REQ_MAGIC);
    switch (q->state) {
    case MOCK_REQ_DELAY:
        mock_req__after_delay(q);
        break;
    case MOCK_REQ_QUEUED:
        if (mock_pool_cancel(q->profile->pool, &q->waiter)) {
            mock_req__overloaded(q, "timed out waiting for a database connection");
            mock_req__ready(q);
        }
        /* else the grant is on its way: it will start the service */
        break;
    case MOCK_REQ_SERVICE:
        mock_req__release_slot(q);
        q->waiter.state = MOCK_WAIT_NONE;
        mock_req__ready(q);
        break;
    case MOCK_REQ_STALL:
        mock_req__ready(q);
        break;
    case MOCK_REQ_READY:
    case MOCK_REQ_HANG:
        break;
    }
}

/* ---- connection output ---- */

static void mock_conn__write(struct mock_conn *c)
{
    struct srvconn *sc = &c->sc;
    if (buf_pending(&sc->out) > 0) {
        if (srvconn_flush(sc) == IO_ERR) {
            mock_conn__close(c);
            return;
        }
        if (buf_pending(&sc->out) > 0)
            return; /* LOOP_WRITE (edge-triggered, registered once) calls us back */
    }
    if (c->stop_parsing && c->npending == 0 && !sc->read_eof) {
        /* The last answer said Connection: close and it is out. Closing now, with the rest of an
         * upload unread, would send a RST that can destroy the answer in the client's buffers:
         * half-close, drain, and close on EOF or after a grace (nginx's lingering close). */
        if (sc->timer_kind != SRVCONN_T_LINGER &&
            srvconn_linger(sc, c->th->loop, MOCK_LINGER_MS) != IO_AGAIN)
            mock_conn__close(c); /* the client was done already */
    } else if (c->npending == 0 && (sc->read_eof || c->stop_parsing)) {
        mock_conn__close(c);
    }
}

/* Moves ready answers at the head of the queue to the output, in order. */
static void mock_conn__flush(struct mock_conn *c)
{
    bool moved = false;
    while (c->head && c->head->state == MOCK_REQ_READY) {
        struct mock_req *q = c->head;
        c->head = q->next;
        if (!c->head)
            c->tail = NULL;
        c->npending--;
        buf_append(&c->sc.out, buf_head(&q->resp), buf_pending(&q->resp));
        if (q->counted)
            mock_stats_count(q->profile->stats, c->th->id, q->stat_index, q->status);
        bool close_after = q->close_after;
        mock_req__free(q);
        moved = true;
        if (close_after) {
            /* nothing after a "Connection: close" answer is sent */
            c->stop_parsing = true;
            while (c->head) {
                struct mock_req *rest = c->head;
                c->head = rest->next;
                c->npending--;
                mock_req__abort(rest);
            }
            c->tail = NULL;
            break;
        }
    }
    if (moved || buf_pending(&c->sc.out) > 0)
        mock_conn__write(c);
}

static void mock_req__ready(struct mock_req *q)
{
    uint64_t left = mock_conn__stall_left(q->th, q->profile);
    if (left > 0) {
        q->state = MOCK_REQ_STALL;
        loop_timer_start(q->th->loop, &q->timer, left);
        return;
    }
    q->state = MOCK_REQ_READY;
    struct mock_conn *c = q->conn;
    if (c && c->head == q && !c->busy) {
        mock_conn__flush(c);
        if (!c->closed && c->read_blocked)
            mock_conn__input(c); /* requests held back by the pipeline limit */
    }
}

/* Frees a request whose connection is closing; a DB grant in flight keeps it alive (orphan). */
static void mock_req__abort(struct mock_req *q)
{
    switch (q->state) {
    case MOCK_REQ_QUEUED:
        if (!mock_pool_cancel(q->profile->pool, &q->waiter)) {
            q->conn = NULL; /* granted meanwhile: mock_req__granted() frees it */
            loop_timer_stop(q->th->loop, &q->timer);
            return;
        }
        break;
    case MOCK_REQ_SERVICE:
        mock_req__release_slot(q);
        break;
    default:
        break;
    }
    mock_req__free(q);
}

/* Deferred from mock_conn__close(): the loop has dropped the fd's pending events by now. */
static void mock_conn__free(struct loop *loop, void *arg)
{
    (void)loop;
    struct mock_conn *c = arg;
    srvconn_deinit(&c->sc);
    buf_deinit(&c->body);
    c->magic = 0;
    free(c);
}

static void mock_conn__close(struct mock_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    while (c->head) {
        struct mock_req *q = c->head;
        c->head = q->next;
        mock_req__abort(q);
    }
    c->tail = NULL;
    c->npending = 0;
    srvconn_close(&c->sc, c->th->loop);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->th->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* never free a connection inside its own callback */
    loop_defer(c->th->loop, mock_conn__free, c);
}

/* Shutdown, on the thread itself after its loop stopped. */
void mock_conn_close_all(struct mock_thread *th)
{
    while (th->conns)
        mock_conn__close(th->conns);
}

/* ---- dispatch ---- */

/* Queues an answer that is ready now (admin, errors), after the pending ones. */
static void mock_conn__answer_now(struct mock_conn *c, struct mock_profile *p, int status,
                                  struct buf *resp, bool close_after, bool counted,
                                  size_t stat_index)
{
    if (c->npending == 0) {
        buf_append(&c->sc.out, buf_head(resp), buf_pending(resp));
        if (counted)
            mock_stats_count(p->stats, c->th->id, stat_index, status);
        if (close_after)
            c->stop_parsing = true;
        return;
    }
    struct mock_req *q = mock_req__create(c, p, NULL);
    q->stat_index = stat_index;
    q->counted = counted;
    q->status = status;
    q->close_after = close_after;
    buf_append(&q->resp, buf_head(resp), buf_pending(resp));
    q->state = MOCK_REQ_READY;
    if (close_after)
        c->stop_parsing = true;
}

/* Finds the route for <req>: the first whose pattern and method match. <path_matched> tells a 405
 * from a 404 when none does. */
static const struct mock_route *mock_conn__route(struct mock_profile *p,
                                                 const struct h1_request *req,
                                                 struct mock_param *params, int *nparams,
                                                 bool *path_matched)
{
    *path_matched = false;
    for (size_t i = 0; i < p->nroutes; i++) {
        const struct mock_route *r = &p->routes[i];
        int n = mock_pattern_match(&r->pattern, req->path, req->path_len, params);
        if (n < 0)
            continue;
        *path_matched = true;
        bool ok = strcmp(r->method, "ANY") == 0 ||
                  (strlen(r->method) == req->method_len &&
                   memcmp(r->method, req->method, req->method_len) == 0) ||
                  (req->method_id == H1_M_HEAD && strcmp(r->method, "GET") == 0);
        if (ok) {
            *nparams = n;
            return r;
        }
    }
    return NULL;
}

/* Answers one parsed request: admin endpoints, route lookup, error injection, the response
 * bytes (precomputed, or built by the handler, or a 304), then when they may go out. The bytes
 * are built now because <req>'s slices point into the input buffer, which moves on. */
static void mock_conn__dispatch(struct mock_conn *c, const struct h1_request *req, const char *body,
                                size_t body_len)
{
    struct mock_thread *th = c->th;
    struct mock_profile *p = mock_thread__profile(th);
    bool keep_alive = req->keep_alive;
    bool head_only = req->method_id == H1_M_HEAD;
    struct buf *scratch = &th->scratch;
    buf_reset(scratch);

    if (req->path_len >= 7 && memcmp(req->path, "/_mock/", 7) == 0) {
        int status = mock_admin_handle(th, req, body, body_len, scratch);
        p = mock_thread__profile(th); /* a POST /_mock/profile may have swapped it */
        struct buf resp = BUF_INIT;
        mock_resp_write(th, &resp, status, NULL, NULL, buf_head(scratch), buf_pending(scratch),
                        NULL, NULL, keep_alive, req->minor_version, head_only);
        mock_conn__answer_now(c, p, status, &resp, !keep_alive, false, 0);
        buf_deinit(&resp);
        return;
    }

    struct mock_param params[MOCK_MAX_PARAMS];
    int nparams = 0;
    bool path_matched;
    const struct mock_route *r = mock_conn__route(p, req, params, &nparams, &path_matched);
    if (!r) {
        struct buf resp = BUF_INIT;
        int status = path_matched ? 405 : 404;
        mock_resp_error(th, &resp, status, path_matched ? "method not allowed" : "no such route",
                        keep_alive, req->minor_version);
        mock_conn__answer_now(c, p, status, &resp, !keep_alive, true, p->nroutes);
        buf_deinit(&resp);
        return;
    }
    if (r->close)
        keep_alive = false;

    /* when does this answer go out? */
    double delay = (double)mock_conn__cold_left(th, p);
    delay += mock_dist_sample(&r->latency, &th->rng);
    bool immediate =
        !r->hang && !r->db && delay < 0.5 && c->npending == 0 && mock_conn__stall_left(th, p) == 0;
    bool error = r->error_rate > 0 && mock_rng_unit(&th->rng) < r->error_rate;

    /* the bytes: into the output buffer directly when nothing waits, else into the request */
    struct mock_req *q = NULL;
    struct buf *dst = &c->sc.out;
    if (!immediate) {
        q = mock_req__create(c, p, r);
        q->counted = true;
        q->keep_alive = keep_alive;
        q->minor = req->minor_version;
        q->head_only = head_only;
        q->close_after = !keep_alive;
        dst = &q->resp;
    }
    int status;
    if (error) {
        status = r->error_status;
        mock_resp_error(th, dst, status, "injected failure", keep_alive, req->minor_version);
    } else if (r->pre && keep_alive && req->minor_version == 1 && !head_only &&
               !(r->etag && headers_find(req->headers, req->nheaders, "If-None-Match")) &&
               !(r->last_modified &&
                 headers_find(req->headers, req->nheaders, "If-Modified-Since"))) {
        /* precomputed: status line, Date, then the constant bytes */
        status = r->status;
        buf_reserve(dst, r->pre_len + 64);
        if (status == 200)
            buf_append(dst, "HTTP/1.1 200 OK\r\nDate: ", 23);
        else
            buf_printf(dst, "HTTP/1.1 %d %s\r\nDate: ", status, h1_status_reason(status));
        buf_append(dst, mock_thread_date(th), HTTP_DATE_LEN);
        buf_append(dst, "\r\n", 2);
        buf_append(dst, r->pre, r->pre_len);
    } else {
        struct mock_reqinfo ri = {req, params, (size_t)nparams, body, body_len};
        status = mock_body_build(r, &ri, scratch);
        char etag[24];
        bool has_etag = r->etag && status >= 200 && status < 300;
        if (has_etag)
            mock_body_etag(buf_head(scratch), buf_pending(scratch), etag);
        if (status == r->status && (has_etag || r->last_modified) &&
            mock_resp_not_modified(req, r, has_etag ? etag : NULL))
            status = 304;
        mock_resp_write(th, dst, status, r, r->content_type, buf_head(scratch),
                        buf_pending(scratch), has_etag ? etag : NULL,
                        status == 401 ? "WWW-Authenticate: Bearer realm=\"mock\"\r\n" : NULL,
                        keep_alive, req->minor_version, head_only);
    }

    if (immediate) {
        mock_stats_count(p->stats, th->id, r->index, status);
        if (!keep_alive)
            c->stop_parsing = true;
        return;
    }
    q->status = status;
    if (!keep_alive)
        c->stop_parsing = true;
    if (r->hang) {
        q->state = MOCK_REQ_HANG;
        return;
    }
    if (delay >= 0.5) {
        q->state = MOCK_REQ_DELAY;
        /* the loop's cached time may be from before a long batch: a 20 ms route must not answer
         * in 19 */
        loop_update_time(th->loop);
        loop_timer_start(th->loop, &q->timer, (uint64_t)(delay + 0.5));
        return;
    }
    mock_req__after_delay(q);
}

/* ---- input ---- */

static void mock_conn__bad_request(struct mock_conn *c, int status, const char *msg)
{
    struct mock_profile *p = mock_thread__profile(c->th);
    struct buf resp = BUF_INIT;
    mock_resp_error(c->th, &resp, status, msg, false, 1);
    mock_conn__answer_now(c, p, status, &resp, true, true, p->nroutes);
    buf_deinit(&resp);
}

/* Parses and dispatches one request from the input. Returns 1 when one was consumed, 0 when more
 * bytes are needed, -1 when the connection stops reading (error answered). */
static int mock_conn__one(struct mock_conn *c)
{
    struct h1_header headers[MOCK_MAX_HEADERS];
    struct h1_request req;
    struct buf *inb = &c->sc.in;
    const char *in = buf_head(inb);
    size_t len = buf_pending(inb);
    /* no header timeout: the keep-alive idle timer, moved by every read, bounds a silent client */
    int hl = srvconn_head(&c->sc, c->th->loop, &req, headers, MOCK_MAX_HEADERS, NULL, 0);
    if (hl == SRVCONN_HEAD_MORE || hl == SRVCONN_HEAD_EOF)
        return 0; /* at the EOF, mock_conn__input closes once the rest is answered */
    if (hl < 0) {
        mock_conn__bad_request(c, h1_err_status(req.err), h1_err_text(req.err));
        return -1;
    }
    struct mock_profile *p = mock_thread__profile(c->th);
    const char *body = NULL;
    size_t body_len = 0, consumed = (size_t)hl;
    if (req.body == H1_BODY_LENGTH) {
        if (req.content_length > p->max_body) {
            mock_conn__bad_request(c, 413, "request body over the mock's max_body");
            return -1;
        }
        if (len - (size_t)hl < req.content_length)
            goto incomplete;
        body = in + hl;
        body_len = (size_t)req.content_length;
        consumed += body_len;
    } else if (req.body == H1_BODY_CHUNKED) {
        /* Decoded incrementally across reads: the state and the data so far live in the
         * connection, and the framing already decoded is cut out of the input (the head stays,
         * its slices are still needed), so a large upload costs one pass and the input never
         * holds more than the head plus the undecoded tail. */
        if (!c->chunk_active) {
            h1_chunked_init(&c->chunk);
            buf_reset(&c->body);
            c->chunk_active = true;
        }
        size_t pos = (size_t)hl;
        while (!c->chunk.done) {
            const char *data;
            size_t dlen;
            long n = h1_chunked_step(&c->chunk, in + pos, len - pos, &data, &dlen);
            if (n < 0) {
                c->chunk_active = false;
                mock_conn__bad_request(c, 400, "invalid chunked body");
                return -1;
            }
            if (n == 0)
                break;
            buf_append(&c->body, data, dlen);
            pos += (size_t)n;
            if (buf_pending(&c->body) > p->max_body) {
                c->chunk_active = false;
                mock_conn__bad_request(c, 413, "request body over the mock's max_body");
                return -1;
            }
        }
        if (pos > (size_t)hl) {
            memmove(buf_head(inb) + hl, buf_head(inb) + pos, len - pos);
            inb->len -= pos - (size_t)hl;
        }
        if (!c->chunk.done)
            goto incomplete;
        c->chunk_active = false;
        consumed = (size_t)hl;
        body = buf_head(&c->body);
        body_len = buf_pending(&c->body);
    }
    mock_conn__dispatch(c, &req, body, body_len);
    buf_consume(inb, consumed);
    if (c->body.cap > (1u << 20))
        buf_deinit(&c->body); /* one big upload should not pin its memory to the connection */
    c->sc.sent_continue = false;
    return 1;

incomplete:
    if (req.expect_continue && !c->sc.sent_continue && c->npending == 0 &&
        buf_pending(&c->sc.out) == 0) {
        buf_append_str(&c->sc.out, "HTTP/1.1 100 Continue\r\n\r\n");
        c->sc.sent_continue = true;
    }
    return 0;
}

/* Parses and dispatches the buffered requests while the connection may take more. */
static void mock_conn__process(struct mock_conn *c)
{
    while (!c->closed && !c->stop_parsing && buf_pending(&c->sc.in) > 0 &&
           c->npending < MOCK_MAX_PIPELINE && !srvconn_out_full(&c->sc, MOCK_MAX_OUT)) {
        if (mock_conn__one(c) <= 0)
            break;
    }
}

/* Reads until EAGAIN (or a short read, which means the same with edge-triggered epoll), parsing
 * as it goes. Stops reading early when the connection has too much pending (pipeline, output,
 * unparsed input); then read_blocked says a later flush must call it again, since no new edge
 * will come for bytes already waiting in the socket. */
static void mock_conn__input(struct mock_conn *c)
{
    struct srvconn *sc = &c->sc;
    uint64_t idle = mock_thread__profile(c->th)->keepalive_timeout_ms;
    if (idle > 0 && sc->timer_kind != SRVCONN_T_LINGER) /* moved on each read: cheap */
        srvconn_arm(sc, c->th->loop, SRVCONN_T_IDLE, idle);
    c->busy = true;
    c->read_blocked = false;
    for (;;) {
        if (c->stop_parsing) {
            /* drop what follows an error or a "Connection: close" answer */
            if (sc->readable && !sc->read_eof && srvconn_drop_input(sc) != IO_AGAIN)
                sc->read_eof = true; /* its EOF, or an error: the client is done either way */
            break;
        }
        size_t high = (size_t)mock_thread__profile(c->th)->max_body + MOCK_IN_SLACK;
        while (sc->readable && !sc->read_eof && buf_pending(&sc->in) < high &&
               c->npending < MOCK_MAX_PIPELINE && !srvconn_out_full(sc, MOCK_MAX_OUT)) {
            if (srvconn_read_once(sc, &sc->in, MOCK_READ_SIZE) == IO_ERR) {
                c->busy = false;
                mock_conn__close(c);
                return;
            }
        }
        /* drained: a short read, EAGAIN or the EOF (a short read says as much as an EAGAIN with
         * edge-triggered epoll) */
        bool drained = !sc->readable || sc->read_eof;
        size_t before = buf_pending(&sc->in);
        mock_conn__process(c);
        if (c->closed) {
            c->busy = false;
            return;
        }
        if (!c->stop_parsing && buf_pending(&sc->in) > 0 &&
            (c->npending >= MOCK_MAX_PIPELINE || srvconn_out_full(sc, MOCK_MAX_OUT))) {
            /* Parsing stopped at a limit with requests still buffered: a drained socket brings
             * no edge for bytes already read, so the flush that lifts the limit parses them. */
            c->read_blocked = true;
            break;
        }
        if (drained)
            break;
        if (c->stop_parsing)
            continue; /* drain the rest above */
        if (buf_pending(&sc->in) == before) {
            c->read_blocked = true; /* no progress: wait for answers to go out */
            break;
        }
    }
    c->busy = false;
    mock_conn__flush(c);
    if (c->closed || !sc->read_eof)
        return;
    /* the peer is done sending: close once everything is answered, or at once when what blocks
     * the queue is a hang (it would never be answered, and the client has gone) */
    if ((c->npending == 0 && buf_pending(&sc->out) == 0) ||
        (c->head && c->head->state == MOCK_REQ_HANG))
        mock_conn__close(c);
}

/* The fd callback: registered once for read and write (edge-triggered), no epoll_ctl per request.
 */
static void mock_conn__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct mock_conn *c = arg;
    AG_ASSERT(c->magic == MOCK_CONN_MAGIC);
    if (c->closed)
        return;
    srvconn_on_events(&c->sc, events);
    if (events & LOOP_READ)
        mock_conn__input(c);
    if (!c->closed && (events & LOOP_WRITE) && buf_pending(&c->sc.out) > 0)
        mock_conn__write(c);
    if (!c->closed && c->read_blocked && !srvconn_out_full(&c->sc, MOCK_MAX_OUT))
        mock_conn__input(c); /* the client read its answers: take the next requests */
}

/* The connection's one timer. SRVCONN_T_LINGER: the lingering close waited long enough for the
 * client's EOF. SRVCONN_T_IDLE: global.keepalive_timeout; a connection with nothing to do for that
 * long is closed, as servers in front of a gateway's pool do (the race a pool must survive). Busy
 * ones are looked at later. */
static void mock_conn__on_timer(struct loop *loop, void *arg)
{
    struct mock_conn *c = arg;
    AG_ASSERT(c->magic == MOCK_CONN_MAGIC);
    if (c->sc.timer_kind == SRVCONN_T_LINGER) {
        mock_conn__close(c);
        return;
    }
    uint64_t idle = mock_thread__profile(c->th)->keepalive_timeout_ms;
    if (c->npending == 0 && buf_pending(&c->sc.out) == 0 && buf_pending(&c->sc.in) == 0 &&
        !c->chunk_active) {
        mock_conn__close(c);
        return;
    }
    if (idle > 0)
        srvconn_arm(&c->sc, loop, SRVCONN_T_IDLE, idle);
}

/* The listener callback: accept until EAGAIN, TCP_NODELAY on each connection. */
void mock_conn_accept(struct loop *loop, int lfd, void *arg, unsigned events)
{
    (void)events;
    struct mock_thread *th = arg;
    int fd;
    while ((fd = srvconn_accept(lfd)) != -1) {
        sock_set_nodelay(fd);
        struct mock_conn *c = xcalloc(1, sizeof(*c));
        c->magic = MOCK_CONN_MAGIC;
        c->th = th;
        srvconn_init(&c->sc, mock_conn__on_timer, c);
        srvconn_open(&c->sc, fd);
        buf_init(&c->body);
        if (loop_add_fd(loop, fd, LOOP_READ | LOOP_WRITE, mock_conn__on_event, c) != 0) {
            close(fd);
            srvconn_deinit(&c->sc);
            free(c);
            continue;
        }
        uint64_t idle = mock_thread__profile(th)->keepalive_timeout_ms;
        if (idle > 0)
            srvconn_arm(&c->sc, loop, SRVCONN_T_IDLE, idle);
        c->next = th->conns;
        if (th->conns)
            th->conns->prev = c;
        th->conns = c;
    }
}
