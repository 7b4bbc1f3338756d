/* One load-generator connection on its thread's loop: non-blocking connect, then each request an
 * HTTP/1.1 exchange of net/h1cli (the same client side as the gateway's proxy): one write of the
 * request (prebuilt bytes when the request has no template), reads until the socket is drained,
 * the response head parsed in place, the body framed by http/h1body (Content-Length, chunked or
 * until close) and counted without copying unless a check needs it. Keep-alive connections are
 * reused; a connection the server closed while idle is reopened, and a request that met such a
 * stale connection is resent once. What to do after a response (next iteration, think, park) is
 * the engine's business (run.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/xmalloc.h"
#include "load/internal.h"
#include "net/tls.h"

#define CLIENT_READ_ROOM 8192
#define CLIENT_MAX_HEADERS 100
#define CLIENT_MAX_BODY_KEPT (1u << 20) /* body kept for "body contains" checks */
/* Bytes read from one connection before the loop gets a turn: a server that sends faster than
 * we parse (an endless 1xx flood, a body without end) must not keep the thread from its timers
 * (request deadlines, the end of the run) and its other connections. */
#define CLIENT_READ_BUDGET (256u * 1024)

/* The response head's fields, parsed in place: one array per load thread is enough, as a head is
 * used (checks, extracts) in the call that parsed it and parsed again from the bytes otherwise. */
static _Thread_local struct h1_header client_hdrs[CLIENT_MAX_HEADERS];

static void client__on_fd(struct loop *loop, int fd, void *arg, unsigned events);
static void client__more_cb(struct loop *loop, void *arg);

void client_init(struct client *c, struct lthread *t, unsigned vu)
{
    memset(c, 0, sizeof(*c));
    c->magic = CLIENT_MAGIC;
    c->t = t;
    c->vu = vu;
    c->fd = -1;
    c->state = CL_IDLE;
    buf_init(&c->rbuf);
    buf_init(&c->wbuf);
    buf_init(&c->body);
    size_t nv = run__scenario(t)->nvars;
    c->vars = nv ? xcalloc(nv, sizeof(*c->vars)) : NULL;
    for (size_t i = 0; i < nv; i++)
        buf_init(&c->vars[i]);
    loop_timer_init(&c->more, client__more_cb, c);
}

void client_deinit(struct client *c)
{
    client_close(c);
    loop_timer_stop(run__loop(c->t), &c->timer);
    loop_timer_stop(run__loop(c->t), &c->more);
    buf_deinit(&c->rbuf);
    buf_deinit(&c->wbuf);
    buf_deinit(&c->body);
    for (size_t i = 0; c->vars && i < run__scenario(c->t)->nvars; i++)
        buf_deinit(&c->vars[i]);
    free(c->vars);
    c->vars = NULL;
    c->magic = 0;
}

void client_close(struct client *c)
{
    loop_timer_stop(run__loop(c->t), &c->more);
    if (c->fd >= 0) {
        loop_del_fd(run__loop(c->t), c->fd);
        transport_close(&c->tr); /* the transport owns the fd */
        c->fd = -1;
        c->tls = false;
    }
    c->reused = false;
    buf_reset(&c->rbuf);
}

/* Fails the request in flight with <kind>: closes the connection (its state is unknown), or
 * resends once when a reused keep-alive connection turned out to be closed by the server. */
static void client__fail(struct client *c, enum load_err kind)
{
    bool stale =
        c->reused && !c->retried && !c->x.got_bytes && (kind == LERR_RESET || kind == LERR_CLOSED);
    client_close(c);
    if (stale) {
        c->retried = true;
        c->want_request = true;
        client_connect(c);
        return;
    }
    c->state = CL_IDLE;
    c->want_request = false;
    run__client_done(c, true, kind);
}

static enum load_err client__errno_kind(int err, bool connecting)
{
    if (err == EMFILE || err == ENFILE || err == EADDRNOTAVAIL || err == ENOBUFS)
        return LERR_LOCAL;
    if (connecting) {
        if (err == ECONNREFUSED)
            return LERR_CONNECT_REFUSED;
        if (err == ETIMEDOUT)
            return LERR_CONNECT_TIMEOUT;
        return LERR_CONNECT_OTHER;
    }
    return LERR_RESET; /* ECONNRESET, EPIPE and the rare rest: the peer broke the connection */
}

/* The error kind of a failed transport operation (TCP or TLS); the first TLS failure of the
 * thread is described for the summary, since "handshake failed" alone does not say what to fix. */
static enum load_err client__io_kind(struct client *c)
{
    if (c->tr.err == transport_err_reset)
        return LERR_RESET;
    if (c->tr.err == transport_err_io)
        return client__errno_kind(c->tr.err_errno, false);
    struct thread_stats *st = run__stats(c->t);
    if (st->tls_detail[0] == '\0')
        tls_transport_describe(&c->tr, st->tls_detail, sizeof(st->tls_detail));
    return LERR_TLS;
}

/* Starts the exchange of the current request on the connection (its first write follows). */
static void client__begin(struct client *c)
{
    h1cli_begin(&c->x, &c->tr, c->wreq, &c->rbuf);
    c->x.hdrs = client_hdrs;
    c->x.max_hdrs = CLIENT_MAX_HEADERS;
    c->x.read_chunk = CLIENT_READ_ROOM;
    c->x.head_request = c->req->is_head;
    c->state = CL_WRITING;
}

/* Writes what is left of the request. */
static void client__write(struct client *c)
{
    if (c->origin_us == 0)
        c->origin_us = clock_now_us(); /* first send after a connect: the connect is not counted */
    while (!h1cli_head_sent(&c->x)) {
        ssize_t n = h1cli_write(&c->x, NULL, 0);
        if (n == IO_AGAIN)
            return; /* CL_WRITING: the next event goes on */
        if (n < 0) {
            client__fail(c, client__io_kind(c));
            return;
        }
    }
    *run__bytes_out(c->t) += buf_pending(c->wreq);
    c->state = CL_READING;
    c->hdr_ok = 0;
    c->ex_ok = 0;
}

/* The connection is up: send the waiting request, or rest. */
static void client__connected(struct client *c)
{
    if (c->want_request) {
        c->want_request = false;
        client__begin(c);
        client__write(c);
    } else {
        c->state = CL_IDLE;
    }
}

/* The connection could not be set up (<kind>): close it, and fail the request waiting for it. */
static void client__setup_failed(struct client *c, enum load_err kind)
{
    client_close(c);
    c->state = CL_IDLE;
    if (c->want_request) {
        c->want_request = false;
        run__client_done(c, true, kind);
    }
}

/* Advances the TLS handshake; the request waits until it is done. */
static void client__handshake(struct client *c)
{
    int r = transport_handshake(&c->tr);
    if (r == IO_AGAIN)
        return;
    if (r != IO_OK) {
        client__setup_failed(c, client__io_kind(c));
        return;
    }
    client__connected(c);
}

/* TCP is up: for https, wrap the fd in TLS and start the handshake. */
static void client__tcp_up(struct client *c)
{
    struct scenario *s = run__scenario(c->t);
    if (s->tls == NULL) {
        client__connected(c);
        return;
    }
    char err[256];
    if (tls_transport_init(&c->tr, s->tls, c->fd, s->url.host, s->tls_sess, err, sizeof(err)) ==
        -1) {
        struct thread_stats *st = run__stats(c->t);
        if (st->tls_detail[0] == '\0')
            snprintf(st->tls_detail, sizeof(st->tls_detail), "%.150s", err);
        client__setup_failed(c, LERR_TLS);
        return;
    }
    c->tls = true;
    c->state = CL_HANDSHAKE;
    client__handshake(c);
}

void client_connect(struct client *c)
{
    struct scenario *s = run__scenario(c->t);
    c->state = CL_CONNECTING;
    c->deadline_us = clock_now_us() + s->timeout_us;
    int fd = sock_connect(&s->addr);
    if (fd == -1) {
        int err = errno;
        c->state = CL_IDLE;
        if (c->want_request) {
            c->want_request = false;
            run__client_done(c, true, client__errno_kind(err, true));
        }
        return;
    }
    sock_set_nodelay(fd);
    c->fd = fd;
    transport_init_tcp(&c->tr, fd); /* https makes it TLS once connected (client__tcp_up) */
    /* Registered once for both directions, edge-triggered: no epoll_ctl per request. */
    if (loop_add_fd(run__loop(c->t), fd, LOOP_READ | LOOP_WRITE, client__on_fd, c) == -1) {
        transport_close(&c->tr);
        c->fd = -1;
        c->state = CL_IDLE;
        if (c->want_request) {
            c->want_request = false;
            run__client_done(c, true, LERR_CONNECT_OTHER);
        }
    }
}

void client_start(struct client *c, size_t idx, uint64_t origin_us, uint64_t now_us)
{
    struct scenario *s = run__scenario(c->t);
    const struct load_req *r = &s->reqs[idx];
    c->req = r;
    c->req_idx = idx;
    c->origin_us = origin_us;
    c->retried = false;
    if (r->dynamic) {
        buf_reset(&c->wbuf);
        run__render(c, r, &c->wbuf);
        c->wreq = &c->wbuf;
    } else {
        c->wreq = &r->prebuilt;
    }
    if (r->need_body)
        buf_reset(&c->body);
    c->deadline_us = (origin_us && origin_us < now_us ? origin_us : now_us) + s->timeout_us;
    if (c->fd >= 0 && c->state == CL_IDLE) {
        /* Closed model on a live connection: the caller's clock reading is the send time (it was
         * taken at most a few hundred nanoseconds ago), which saves a clock call per request. */
        if (c->origin_us == 0)
            c->origin_us = now_us;
        client__begin(c);
        client__write(c);
        return;
    }
    c->want_request = true;
    if (c->state != CL_CONNECTING && c->state != CL_HANDSHAKE)
        client_connect(c);
}

void client_check_timeout(struct client *c, uint64_t now_us)
{
    if (c->state != CL_CONNECTING && c->state != CL_HANDSHAKE && c->state != CL_WRITING &&
        c->state != CL_READING)
        return;
    if (now_us < c->deadline_us)
        return;
    if ((c->state == CL_CONNECTING || c->state == CL_HANDSHAKE) && !c->want_request) {
        client_close(c); /* a warm-up connect that never finished: nobody waits for it */
        c->state = CL_IDLE;
        return;
    }
    c->retried = true; /* a timeout is never a stale connection: do not resend */
    client__fail(c, c->state == CL_CONNECTING || c->state == CL_HANDSHAKE ? LERR_CONNECT_TIMEOUT
                                                                          : LERR_TIMEOUT);
}

/* Header-present checks are answered while the head is in the buffer. */
static void client__header_checks(struct client *c, const struct h1_response *res)
{
    const struct load_req *r = c->req;
    for (size_t i = 0; i < r->nchecks; i++) {
        if (!(r->header_checks & (1u << i)))
            continue;
        for (size_t h = 0; h < res->nheaders; h++) {
            if (res->headers[h].name_len == r->checks[i].len &&
                strncasecmp(res->headers[h].name, r->checks[i].str, r->checks[i].len) == 0) {
                c->hdr_ok |= 1u << i;
                break;
            }
        }
    }
}

/* A whole response was read. */
static void client__complete(struct client *c)
{
    c->done_us = clock_now_us();
    c->state = CL_IDLE;
    c->reused = true;
    if (buf_pending(&c->rbuf) > 0)
        buf_reset(&c->rbuf); /* bytes after the response: we never pipeline, so they are junk */
    if (!c->keep_alive)
        client_close(c);
    run__client_done(c, false, 0);
}

/* The final head is in c->x.res: status, keep-alive, and what checks and extracts read of it. */
static void client__head(struct client *c)
{
    const struct h1_response *res = &c->x.res;
    c->status = res->status;
    c->keep_alive = res->keep_alive;
    if (c->req->header_checks)
        client__header_checks(c, res);
    if (c->req->nextracts)
        run__extract_headers(c, res);
}

/* Pulls the response's events: reads until the socket is drained (a short read means it is,
 * which saves the EAGAIN call; h1cli keeps that memory), the body counted and kept (up to a
 * limit) only when a check reads it. After CLIENT_READ_BUDGET body bytes it goes on from a zero
 * timer instead, once the loop had its turn. */
static void client__read(struct client *c)
{
    size_t budget = CLIENT_READ_BUDGET;
    bool keep = c->req->need_body;
    for (;;) {
        if (budget == 0) {
            loop_timer_start(run__loop(c->t), &c->more, 0);
            return;
        }
        struct h1cli_piece p;
        enum h1cli_ev ev = h1cli_next(&c->x, &p);
        c->resp_bytes = c->x.received;
        switch (ev) {
        case H1CLI_AGAIN:
            return;
        case H1CLI_HEAD:
            client__head(c);
            continue;
        case H1CLI_BODY:
            if (keep && p.len && buf_pending(&c->body) + p.len <= CLIENT_MAX_BODY_KEPT)
                buf_append(&c->body, p.data, p.len);
            budget -= p.raw_len < budget ? p.raw_len : budget;
            continue;
        case H1CLI_DONE:
            client__complete(c);
            return;
        case H1CLI_ERROR:
            if (c->x.err == h1cli_err_io) {
                client__fail(c, client__io_kind(c));
            } else if (c->x.err == h1cli_err_closed) {
                client__fail(c, LERR_CLOSED);
            } else { /* an invalid head or body, 1xx without end: never resent */
                c->retried = true;
                client__fail(c, LERR_PROTOCOL);
            }
            return;
        }
    }
}

static void client__more_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct client *c = arg;
    AG_ASSERT(c->magic == CLIENT_MAGIC);
    if (c->state == CL_READING && c->fd >= 0)
        client__read(c);
}

/* Bytes or EOF on a connection with no request: the server closed it (keep-alive timeout) or
 * sent something unasked. Either way the connection is done; the next request reconnects. */
static void client__idle_event(struct client *c)
{
    char tmp[512];
    /* TLS 1.3 session tickets arrive after the handshake: reading them yields IO_AGAIN. */
    if (transport_read(&c->tr, tmp, sizeof(tmp)) == IO_AGAIN)
        return;
    client_close(c);
}

static void client__on_fd(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct client *c = arg;
    AG_ASSERT(c->magic == CLIENT_MAGIC);
    /* TLS may need to write to read and the reverse: any event is worth a try of both. */
    if (c->state == CL_WRITING || c->state == CL_READING)
        h1cli_on_events(&c->x, c->tls ? events | LOOP_READ | LOOP_WRITE : events);
    switch (c->state) {
    case CL_CONNECTING:
        if (!(events & (LOOP_WRITE | LOOP_ERROR)))
            return;
        {
            int err = sock_connect_result(c->fd);
            if (err != 0) {
                client__setup_failed(c, client__errno_kind(err, true));
                return;
            }
        }
        client__tcp_up(c);
        return;
    case CL_HANDSHAKE:
        client__handshake(c); /* TLS may wait for either direction */
        return;
    case CL_WRITING:
        if (c->x.writable)
            client__write(c);
        if (c->state == CL_READING && c->x.readable)
            client__read(c);
        return;
    case CL_READING:
        if (c->x.readable)
            client__read(c);
        return;
    case CL_IDLE:
    case CL_PAUSED:
        if (c->fd >= 0 && (events & (LOOP_READ | LOOP_ERROR)))
            client__idle_event(c);
        return;
    }
}
