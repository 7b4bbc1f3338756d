/* A blocking HTTP/1.1 client (see httpc.h): one request per connection, every step bounded by a
 * timeout with poll(), and the time of each step recorded like curl -w (dns, connect, tls, first
 * byte, total, cumulative). TLS goes through the transport of net/tls.c. */
#include "net/httpc.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "http/h1parse.h"
#include "http/h1write.h"
#include "http/url.h"
#include "net/h1cli.h"
#include "net/sock.h"
#include "net/tls.h"
#include "net/transport.h"

#define HTTPC_MAX_RESPONSE (8u << 20) /* bodies above this are cut: tools read JSON and samples */

/* One connection: the socket (fd, until a transport takes it over), the transport, and the TLS
 * context for https (NULL for http). */
struct httpc_conn {
    int fd;
    struct transport t; /* ops NULL until set up */
    struct tls_client *tls;
    uint64_t deadline_ns; /* for the current step */
};

static double ms_since(uint64_t t0)
{
    return (double)(clock_now_ns() - t0) / 1e6;
}

static void set_deadline(struct httpc_conn *c, int timeout_ms)
{
    c->deadline_ns = clock_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* Waits until the connection is ready for <events> or the step's deadline passes. 0 or -1
 * (timeout). After IO_AGAIN from TLS, waits for what OpenSSL asks (it may need to write to read,
 * and the reverse), not for what the caller wanted to do. */
static int wait_fd(struct httpc_conn *c, short events)
{
    if (c->t.ops != NULL && c->tls != NULL)
        events = tls_transport_wants_write(&c->t) ? POLLOUT : POLLIN;
    for (;;) {
        uint64_t now = clock_now_ns();
        if (now >= c->deadline_ns)
            return -1;
        struct pollfd p = {c->fd, events, 0};
        int n = poll(&p, 1, (int)((c->deadline_ns - now) / 1000000 + 1));
        if (n > 0)
            return 0;
        if (n == -1 && errno != EINTR)
            return -1;
    }
}

/* Why the transport's last step failed, after "<what>: ". */
static void io_error(struct httpc_conn *c, const char *what, char *err, size_t errlen)
{
    char why[256];
    if (c->tls != NULL)
        tls_transport_describe(&c->t, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%s", strerror(c->t.err_errno ? c->t.err_errno : EIO));
    snprintf(err, errlen, "%s: %s", what, why);
}

/* Makes the connected socket a transport: plain TCP, or TLS with the handshake done (system CA
 * store, or SSL_CERT_FILE; the host name or IP literal checked against the certificate). */
static int transport_start(struct httpc_conn *c, const struct url *u, char *err, size_t errlen)
{
    if (!u->tls) {
        transport_init_tcp(&c->t, c->fd);
        return 0;
    }
    char why[256];
    struct tls_client_opts o = {.verify = true};
    c->tls = tls_client_create(&o, why, sizeof(why));
    if (c->tls == NULL) {
        snprintf(err, errlen, "TLS: %s", why);
        return -1;
    }
    if (tls_transport_init(&c->t, c->tls, c->fd, u->host, NULL, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "TLS: %s", why);
        return -1;
    }
    for (;;) {
        int r = transport_handshake(&c->t);
        if (r == IO_OK)
            return 0;
        if (r == IO_ERR) {
            io_error(c, "TLS handshake", err, errlen);
            return -1;
        }
        if (wait_fd(c, POLLIN) < 0) {
            snprintf(err, errlen, "TLS handshake timed out");
            return -1;
        }
    }
}

static void conn_close(struct httpc_conn *c)
{
    if (c->t.ops != NULL) {
        transport_close(&c->t); // closes the fd it took over
        c->t.ops = NULL;
    } else if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    tls_client_destroy(c->tls);
    c->tls = NULL;
}

/* Resolves (blocking getaddrinfo: tools are not on a hot path) and tries each address in order
 * with a non-blocking connect bounded by the timeout; records dns and connect times. */
static int connect_to(struct httpc_conn *c, const struct url *u, int timeout_ms,
                      struct httpc_timing *t, uint64_t t0, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof(port), "%d", u->port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(u->host, port, &hints, &res);
    t->dns_ms = ms_since(t0);
    if (g != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(g));
        return -1;
    }
    int e = ECONNREFUSED;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        struct sock_addr sa;
        memcpy(&sa.ss, a->ai_addr, a->ai_addrlen);
        sa.len = a->ai_addrlen;
        c->fd = sock_connect(&sa);
        if (c->fd < 0) {
            e = errno;
            continue;
        }
        set_deadline(c, timeout_ms);
        if (wait_fd(c, POLLOUT) < 0) {
            e = ETIMEDOUT;
        } else if ((e = sock_connect_result(c->fd)) == 0) {
            break;
        }
        close(c->fd);
        c->fd = -1;
    }
    freeaddrinfo(res);
    t->connect_ms = ms_since(t0);
    if (c->fd < 0) {
        snprintf(err, errlen, "cannot connect to %s:%d: %s", u->host, u->port,
                 e == ETIMEDOUT ? "timed out" : strerror(e));
        return -1;
    }
    sock_set_nodelay(c->fd);
    return 0;
}

/* One request: connect, TLS, send, read the head (first byte time), read the body by its framing.
 * The exchange after the connect has one deadline per step: TLS, then request + response. */
int httpc_request(const char *method, const char *url, int timeout_ms, const char *agent,
                  struct httpc_resp *resp, struct httpc_timing *t, char *err, size_t errlen)
{
    struct url u;
    struct httpc_timing unused;
    if (t == NULL)
        t = &unused;
    memset(resp, 0, sizeof(*resp));
    memset(t, 0, sizeof(*t));
    buf_init(&resp->body);
    if (url_parse(url, &u, err, errlen) < 0)
        return -1;
    struct httpc_conn c = {.fd = -1};
    uint64_t t0 = clock_now_ns();
    int rc = -1;
    struct buf in = BUF_INIT;
    struct buf req = BUF_INIT; // the request head
    if (connect_to(&c, &u, timeout_ms, t, t0, err, errlen) < 0)
        goto out;
    set_deadline(&c, timeout_ms);
    if (transport_start(&c, &u, err, errlen) < 0)
        goto out;
    t->tls_ms = ms_since(t0);
    /* The head is written by http/h1write, as every client of ours writes its requests. A
     * method other than GET and HEAD says its (empty) body, as servers may wait for one. */
    bool head_req = strcmp(method, "HEAD") == 0;
    bool bodyless = head_req || strcmp(method, "GET") == 0;
    h1_write_request_line(&req, method, strlen(method), u.path, strlen(u.path), NULL, 0);
    h1_write_host(&req, u.host, strlen(u.host), u.port, 0);
    h1_write_header_str(&req, "User-Agent", agent);
    h1_write_header(&req, "Accept", 6, "*/*", 3);
    if (!bodyless)
        h1_write_header(&req, "Content-Length", 14, "0", 1);
    h1_write_header(&req, "Connection", 10, "close", 5);
    h1_write_end_head(&req);
    /* The exchange is net/h1cli's, as for every client of ours; here it is driven by poll()
     * with one deadline for the request and the response. */
    struct h1_header hdrs[64];
    struct h1cli x = {0};
    h1cli_begin(&x, &c.t, &req, &in);
    x.hdrs = hdrs;
    x.max_hdrs = sizeof(hdrs) / sizeof(hdrs[0]);
    x.head_request = head_req;
    x.read_chunk = 65536;
    set_deadline(&c, timeout_ms);
    while (!h1cli_head_sent(&x)) {
        ssize_t w = h1cli_write(&x, NULL, 0);
        if (w == IO_ERR) {
            io_error(&c, "write", err, errlen);
            goto out;
        }
        if (w == IO_AGAIN) {
            if (wait_fd(&c, POLLOUT) < 0) {
                snprintf(err, errlen, "timed out sending the request");
                goto out;
            }
            h1cli_on_events(&x, LOOP_WRITE);
        }
    }
    h1cli_on_events(&x, LOOP_READ); // a blocking client: try the read, poll() when it waits
    for (bool done = false; !done;) {
        /* checked before each step, not only while waiting: a server that always has bytes
         * ready would otherwise never meet it */
        if (clock_now_ns() >= c.deadline_ns) {
            snprintf(err, errlen, "timed out reading the response");
            goto out;
        }
        struct h1cli_piece piece;
        switch (h1cli_next(&x, &piece)) {
        case H1CLI_AGAIN:
            if (wait_fd(&c, POLLIN) < 0) {
                snprintf(err, errlen, "timed out reading the response");
                goto out;
            }
            h1cli_on_events(&x, LOOP_READ);
            break;
        case H1CLI_HEAD:
            resp->status = x.res.status;
            break;
        case H1CLI_BODY:
            buf_append(&resp->body, piece.data, piece.len);
            done = resp->body.len >= HTTPC_MAX_RESPONSE; // tools read JSON and samples
            break;
        case H1CLI_DONE:
            done = true;
            break;
        case H1CLI_ERROR:
            if (x.err == h1cli_err_io)
                io_error(&c, "read", err, errlen);
            else if (x.err == h1cli_err_closed)
                snprintf(err, errlen, "connection closed before %s",
                         x.head_done ? "the end of the body" : "a complete response head");
            else if (x.err == h1cli_err_head)
                snprintf(err, errlen, "invalid response head: %s", h1_err_text(x.res.err));
            else if (x.err == h1cli_err_interim)
                snprintf(err, errlen, "invalid response: more than %u bytes of 1xx heads",
                         H1CLI_MAX_INTERIM); // x.max_interim: the default
            else
                snprintf(err, errlen, "invalid chunked body");
            goto out;
        }
        if (x.got_bytes && t->ttfb_ms == 0)
            t->ttfb_ms = ms_since(t0);
    }
    buf_append(&resp->body, "", 1); // NUL for parsers; not counted below
    resp->body.len--;
    t->total_ms = ms_since(t0);
    rc = 0;
out:
    buf_deinit(&req);
    buf_deinit(&in);
    conn_close(&c);
    return rc;
}

void httpc_resp_deinit(struct httpc_resp *r)
{
    buf_deinit(&r->body);
}
