/* One load-generator connection on its thread's loop: non-blocking connect, one write of the
 * request (prebuilt bytes when the request has no template), reads until the socket is drained,
 * response heads parsed in place with the gateway's parser, bodies framed by http/h1body.c
 * (Content-Length, chunked or until close) and counted without copying unless a check needs them. Keep-alive connections are reused; a
 * connection the server closed while idle is reopened, and a request that met such a stale
 * connection is resent once. What to do after a response (next iteration, think, park) is the
 * engine's business (run.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

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
        if (c->tls)
            transport_close(&c->tr); /* the TLS transport owns the fd */
        else
            close(c->fd);
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
        c->reused && !c->retried && !c->got_bytes && (kind == LERR_RESET || kind == LERR_CLOSED);
    client_close(c);
    if (stale) {
        c->retried = true;
        c->woff = 0;
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

/* The error kind of a failed TLS transport operation; the first TLS failure of the thread is
 * described for the summary, since "handshake failed" alone does not say what to fix. */
static enum load_err client__tls_kind(struct client *c)
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

/* Writes what is left of the request. */
static void client__write(struct client *c)
{
    if (c->origin_us == 0)
        c->origin_us = clock_now_us(); /* first send after a connect: the connect is not counted */
    while (c->woff < c->wlen) {
        if (c->tls) {
            ssize_t n = transport_write(&c->tr, c->wptr + c->woff, c->wlen - c->woff);
            if (n >= 0) {
                c->woff += (size_t)n;
                continue;
            }
            if (n == IO_AGAIN) {
                c->state = CL_WRITING;
                return;
            }
            client__fail(c, client__tls_kind(c));
            return;
        }
        ssize_t n = send(c->fd, c->wptr + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n >= 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            c->state = CL_WRITING;
            return;
        }
        client__fail(c, client__errno_kind(errno, false));
        return;
    }
    *run__bytes_out(c->t) += c->wlen;
    c->state = CL_READING;
    c->head_done = false;
    c->got_bytes = false;
    c->resp_bytes = 0;
    c->hdr_ok = 0;
    c->ex_ok = 0;
}

/* The connection is up: send the waiting request, or rest. */
static void client__connected(struct client *c)
{
    if (c->want_request) {
        c->want_request = false;
        c->woff = 0;
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
        client__setup_failed(c, client__tls_kind(c));
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
    c->peer_closed = false;
    /* Registered once for both directions, edge-triggered: no epoll_ctl per request. */
    if (loop_add_fd(run__loop(c->t), fd, LOOP_READ | LOOP_WRITE, client__on_fd, c) == -1) {
        close(fd);
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
    c->woff = 0;
    if (r->dynamic) {
        buf_reset(&c->wbuf);
        run__render(c, r, &c->wbuf);
        c->wptr = buf_head(&c->wbuf);
        c->wlen = buf_pending(&c->wbuf);
    } else {
        c->wptr = buf_head(&r->prebuilt);
        c->wlen = buf_pending(&r->prebuilt);
    }
    if (r->need_body)
        buf_reset(&c->body);
    c->deadline_us = (origin_us && origin_us < now_us ? origin_us : now_us) + s->timeout_us;
    if (c->fd >= 0 && c->state == CL_IDLE) {
        /* Closed model on a live connection: the caller's clock reading is the send time (it was
         * taken at most a few hundred nanoseconds ago), which saves a clock call per request. */
        if (c->origin_us == 0)
            c->origin_us = now_us;
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

/* Parses what is buffered: the head, then the body. Returns 1 when the response completed, 0 when
 * more bytes are needed, -1 after a failure (already reported). */
static int client__parse(struct client *c)
{
    while (!c->head_done) {
        struct h1_header headers[CLIENT_MAX_HEADERS];
        struct h1_response res;
        size_t interim = 0; /* 100 Continue, 103 Early Hints: the real answer follows */
        int n = h1body_response_head(buf_head(&c->rbuf), buf_pending(&c->rbuf), &res, headers,
                                     CLIENT_MAX_HEADERS, NULL, c->req->is_head, &interim);
        buf_consume(&c->rbuf, interim);
        if (n == -2)
            return 0;
        if (n < 0) {
            c->retried = true;
            client__fail(c, LERR_PROTOCOL);
            return -1;
        }
        c->status = res.status;
        c->keep_alive = res.keep_alive;
        h1body_init_response(&c->framing, &res, c->req->is_head);
        if (c->req->header_checks)
            client__header_checks(c, &res);
        if (c->req->nextracts)
            run__extract_headers(c, &res);
        buf_consume(&c->rbuf, (size_t)n);
        c->head_done = true;
    }
    /* The body: counted, and kept (up to a limit) only when a check reads it. */
    bool keep = c->req->need_body;
    while (c->framing.state == H1BODY_MORE) {
        const char *data;
        size_t dlen;
        long n = h1body_step(&c->framing, buf_head(&c->rbuf), buf_pending(&c->rbuf), &data, &dlen);
        if (n < 0) {
            c->retried = true;
            client__fail(c, LERR_PROTOCOL);
            return -1;
        }
        if (keep && dlen && buf_pending(&c->body) + dlen <= CLIENT_MAX_BODY_KEPT)
            buf_append(&c->body, data, dlen);
        buf_consume(&c->rbuf, (size_t)n);
        if (n == 0)
            break;
    }
    return c->framing.state == H1BODY_DONE; /* an until-close body ends at EOF */
}

/* Reads until the socket is drained (a short read means it is, which saves the EAGAIN call),
 * parsing as it goes so a large body never accumulates; after CLIENT_READ_BUDGET bytes it goes
 * on from a zero timer instead, once the loop had its turn. */
static void client__read(struct client *c)
{
    size_t budget = CLIENT_READ_BUDGET;
    for (;;) {
        if (budget == 0) {
            loop_timer_start(run__loop(c->t), &c->more, 0);
            return;
        }
        buf_reserve(&c->rbuf, CLIENT_READ_ROOM);
        size_t room = buf_room(&c->rbuf);
        ssize_t n;
        if (c->tls) {
            n = transport_read(&c->tr, buf_tail(&c->rbuf), room);
            if (n == IO_AGAIN)
                return;
            if (n == IO_ERR) {
                client__fail(c, client__tls_kind(c));
                return;
            }
        } else {
            n = read(c->fd, buf_tail(&c->rbuf), room);
        }
        if (n > 0) {
            buf_commit(&c->rbuf, (size_t)n);
            c->resp_bytes += (uint64_t)n;
            c->got_bytes = true;
            int r = client__parse(c);
            if (r == 1) {
                client__complete(c);
                return;
            }
            if (r < 0)
                return;
            budget -= (size_t)n < budget ? (size_t)n : budget;
            /* A short read drained the socket, but not necessarily TLS's buffer of records, and
             * when the peer closed, its EOF is there with no edge to come (LOOP_HUP). */
            if ((size_t)n < room && !c->tls && !c->peer_closed)
                return;
            continue;
        }
        if (n == 0) {
            if (c->head_done && h1body_eof(&c->framing) == H1BODY_DONE) {
                c->keep_alive = false;
                client__complete(c);
            } else {
                client__fail(c, LERR_CLOSED);
            }
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return;
        client__fail(c, client__errno_kind(errno, false));
        return;
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
    if (c->tls) {
        /* TLS 1.3 session tickets arrive after the handshake: reading them yields IO_AGAIN. */
        ssize_t n = transport_read(&c->tr, tmp, sizeof(tmp));
        if (n == IO_AGAIN)
            return;
    } else {
        ssize_t n = read(c->fd, tmp, sizeof(tmp));
        if (n == -1 && errno == EAGAIN)
            return;
    }
    client_close(c);
}

static void client__on_fd(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct client *c = arg;
    AG_ASSERT(c->magic == CLIENT_MAGIC);
    if (events & LOOP_HUP)
        c->peer_closed = true;
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
        /* TLS may need to read to write: retry on any event. */
        if (c->tls || (events & (LOOP_WRITE | LOOP_ERROR)))
            client__write(c);
        if (c->state == CL_READING && (c->tls || (events & LOOP_READ)))
            client__read(c);
        return;
    case CL_READING:
        if (c->tls || (events & (LOOP_READ | LOOP_ERROR)))
            client__read(c);
        return;
    case CL_IDLE:
    case CL_PAUSED:
        if (c->fd >= 0 && (events & (LOOP_READ | LOOP_ERROR)))
            client__idle_event(c);
        return;
    }
}
