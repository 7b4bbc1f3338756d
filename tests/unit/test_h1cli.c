/* The client side of an HTTP/1.1 exchange (net/h1cli: the proxy's and the cache refresh's) over a
 * socketpair, the test playing the origin. Checked: the head written before any body byte and
 * partial writes accounted; interim 1xx skipped; a Content-Length body across reads with the
 * bytes after it left alone; chunked pieces whose raw bytes rebuild the input, trailers flagged;
 * a body until the close; HEAD and 101 without a body; a head parsed again only when bytes came;
 * every failure: closed before the head and mid-body, invalid head, head over the limit, bad
 * chunk, early bytes on a reused connection, a transport error; and the edge-triggered rule (a
 * short read waits for the next LOOP_READ, but not after LOOP_HUP). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/loop.h"
#include "net/h1cli.h"
#include "net/transport.h"

struct tx {
    int peer;              // the origin's end
    struct transport tp;   // ours
    struct buf head, in;
    struct h1_header hdrs[16];
    struct h1cli x;
};

static void tx_open(struct tx *t, const char *head)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    transport_init_tcp(&t->tp, sv[0]);
    t->peer = sv[1];
    buf_init(&t->head);
    buf_init(&t->in);
    buf_append_str(&t->head, head);
    memset(&t->x, 0, sizeof(t->x));
    h1cli_begin(&t->x, &t->tp, &t->head, &t->in);
    t->x.hdrs = t->hdrs;
    t->x.max_hdrs = 16;
    t->x.lim = (struct h1_limits){.max_head = 4096, .max_headers = 16};
}

static void tx_close(struct tx *t)
{
    transport_close(&t->tp);
    if (t->peer >= 0)
        close(t->peer);
    buf_deinit(&t->head);
    buf_deinit(&t->in);
}

/* The origin sends <s> and the loop would say so. */
static void tx_send(struct tx *t, const char *s)
{
    assert_int_equal(write(t->peer, s, strlen(s)), (ssize_t)strlen(s));
    h1cli_on_events(&t->x, LOOP_READ);
}

/* Writes the whole request head (a socketpair takes it at once). */
static void tx_write_head(struct tx *t)
{
    assert_int_equal(h1cli_write(&t->x, NULL, 0), 0);
    assert_true(h1cli_head_sent(&t->x));
    char got[256];
    ssize_t n = read(t->peer, got, sizeof(got));
    assert_int_equal(n, (ssize_t)buf_pending(&t->head));
}

/* Next event; for a body piece, its decoded bytes are appended to <body>, its raw ones to <raw>. */
static enum h1cli_ev tx_next(struct tx *t, struct buf *body, struct buf *raw, bool *trailers)
{
    struct h1cli_piece p;
    enum h1cli_ev ev = h1cli_next(&t->x, &p);
    if (ev == H1CLI_BODY) {
        assert_true(p.raw_len > 0);
        if (body != NULL && p.len)
            buf_append(body, p.data, p.len);
        if (raw != NULL)
            buf_append(raw, p.raw, p.raw_len);
        if (trailers != NULL && p.trailers)
            *trailers = true;
    }
    return ev;
}

static void assert_bytes(const struct buf *b, const char *want)
{
    if (buf_pending(b) != strlen(want) || memcmp(buf_head(b), want, strlen(want)) != 0)
        fail_msg("got \"%.*s\" want \"%s\"", (int)buf_pending(b), buf_head(b), want);
}

static void test_length_body(void **state)
{
    (void)state;
    struct tx t;
    tx_open(&t, "GET /a HTTP/1.1\r\nHost: o\r\n\r\n");
    /* nothing is read before the transport says so */
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_AGAIN);
    assert_false(t.x.got_bytes);
    tx_write_head(&t);
    tx_send(&t, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: 1\r\n\r\n01234");
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_HEAD);
    assert_int_equal(t.x.res.status, 200);
    assert_int_equal(t.x.res.nheaders, 2);
    assert_memory_equal(t.x.res.headers[1].name, "X-A", 3);
    struct buf body = BUF_INIT;
    assert_int_equal(tx_next(&t, &body, NULL, NULL), H1CLI_BODY);
    /* the short read drained the socket: no read until the next edge */
    assert_false(t.x.readable);
    assert_int_equal(tx_next(&t, &body, NULL, NULL), H1CLI_AGAIN);
    tx_send(&t, "56789HTTP/1.1 200 OK\r\n");
    assert_int_equal(tx_next(&t, &body, NULL, NULL), H1CLI_BODY);
    assert_int_equal(tx_next(&t, &body, NULL, NULL), H1CLI_DONE);
    assert_int_equal(tx_next(&t, &body, NULL, NULL), H1CLI_DONE);
    assert_bytes(&body, "0123456789");
    assert_int_equal(t.x.body.received, 10);
    assert_bytes(&t.in, "HTTP/1.1 200 OK\r\n"); // past the response: the caller's to judge
    buf_deinit(&body);
    tx_close(&t);
}

static void test_write_with_body(void **state)
{
    (void)state;
    struct tx t;
    tx_open(&t, "POST /u HTTP/1.1\r\nContent-Length: 200000\r\n\r\n");
    int small = 4096;
    setsockopt(t.tp.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    static char big[200000];
    memset(big, 'b', sizeof(big));
    struct iovec iov[2] = {{big, 100}, {big + 100, sizeof(big) - 100}};
    ssize_t w = h1cli_write(&t.x, iov, 2);
    assert_true(w >= 0);
    assert_true(h1cli_head_sent(&t.x)); // the head goes before any body byte
    size_t taken = (size_t)w;
    assert_true(taken < sizeof(big));
    /* the socket is full: IO_AGAIN, and writable stays false until LOOP_WRITE */
    struct iovec rest = {big + taken, sizeof(big) - taken};
    assert_int_equal(h1cli_write(&t.x, &rest, 1), IO_AGAIN);
    assert_false(t.x.writable);
    char got[8192];
    ssize_t n = read(t.peer, got, sizeof(got));
    assert_true(n > (ssize_t)buf_pending(&t.head));
    assert_memory_equal(got, buf_head(&t.head), buf_pending(&t.head));
    assert_int_equal(got[buf_pending(&t.head)], 'b');
    h1cli_on_events(&t.x, LOOP_WRITE);
    assert_true(t.x.writable);
    /* with the head sent, nothing to write is 0 */
    assert_int_equal(h1cli_write(&t.x, NULL, 0), 0);
    tx_close(&t);
}

static void test_chunked_raw_and_trailers(void **state)
{
    (void)state;
    struct tx t;
    tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
    tx_write_head(&t);
    const char *body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: v\r\n\r\n";
    tx_send(&t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_HEAD);
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_AGAIN);
    struct buf dec = BUF_INIT, raw = BUF_INIT;
    bool trailers = false;
    /* one byte at a time: every piece's raw bytes, in order, are the input */
    for (const char *p = body; *p; p++) {
        char one[2] = {*p, 0};
        tx_send(&t, one);
        enum h1cli_ev ev;
        while ((ev = tx_next(&t, &dec, &raw, &trailers)) == H1CLI_BODY)
            ;
        assert_int_equal(ev, p[1] ? H1CLI_AGAIN : H1CLI_DONE);
    }
    assert_bytes(&dec, "hello world");
    assert_bytes(&raw, body);
    assert_true(trailers);
    buf_deinit(&dec);
    buf_deinit(&raw);
    tx_close(&t);
}

static void test_until_close_and_hup(void **state)
{
    (void)state;
    struct tx t;
    tx_open(&t, "GET / HTTP/1.0\r\n\r\n");
    tx_write_head(&t);
    assert_int_equal(write(t.peer, "HTTP/1.1 200 OK\r\n\r\nabc", 22), 22);
    shutdown(t.peer, SHUT_WR);
    h1cli_on_events(&t.x, LOOP_READ | LOOP_HUP);
    struct buf body = BUF_INIT;
    assert_int_equal(tx_next(&t, &body, NULL, NULL), H1CLI_HEAD);
    assert_int_equal(tx_next(&t, &body, NULL, NULL), H1CLI_BODY);
    /* after LOOP_HUP a short read does not wait for an edge: the EOF is read at once */
    assert_true(t.x.readable);
    assert_int_equal(tx_next(&t, &body, NULL, NULL), H1CLI_DONE);
    assert_bytes(&body, "abc");
    buf_deinit(&body);
    tx_close(&t);
}

static void test_no_body_heads(void **state)
{
    (void)state;
    struct tx t;
    tx_open(&t, "HEAD / HTTP/1.1\r\n\r\n");
    t.x.head_request = true;
    tx_write_head(&t);
    tx_send(&t, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_HEAD);
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_DONE);
    tx_close(&t);

    /* a 101: no body; the bytes after its head are the new protocol's, left to the caller */
    tx_open(&t, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    tx_write_head(&t);
    tx_send(&t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi");
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_HEAD);
    assert_int_equal(t.x.res.status, 101);
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_DONE);
    assert_bytes(&t.in, "\x81\x02hi");
    tx_close(&t);

    /* 204 and 304 whatever their headers say */
    tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
    tx_write_head(&t);
    tx_send(&t, "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n");
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_HEAD);
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_DONE);
    tx_close(&t);
}

static void test_head_in_pieces(void **state)
{
    (void)state;
    struct tx t;
    tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
    tx_write_head(&t);
    const char *head = "HTTP/1.1 204 No Content\r\nA: b\r\n\r\n";
    for (const char *p = head; *p; p++) {
        char one[2] = {*p, 0};
        tx_send(&t, one);
        assert_int_equal(tx_next(&t, NULL, NULL, NULL), p[1] ? H1CLI_AGAIN : H1CLI_HEAD);
        /* without new bytes the incomplete head is not parsed again: still AGAIN */
        if (p[1])
            assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_AGAIN);
    }
    assert_int_equal(t.x.res.status, 204);
    tx_close(&t);
}

/* Sends <resp> (then closes when <eof>) and runs the exchange to its end: the final event. */
static enum h1cli_ev run_to_end(struct tx *t, const char *resp, bool eof)
{
    tx_write_head(t);
    if (*resp)
        assert_int_equal(write(t->peer, resp, strlen(resp)), (ssize_t)strlen(resp));
    if (eof) {
        close(t->peer);
        t->peer = -1;
    }
    h1cli_on_events(&t->x, LOOP_READ | (eof ? LOOP_HUP : 0));
    enum h1cli_ev ev;
    do
        ev = tx_next(t, NULL, NULL, NULL);
    while (ev == H1CLI_HEAD || ev == H1CLI_BODY);
    return ev;
}

static void test_failures(void **state)
{
    (void)state;
    struct tx t;
    struct {
        const char *resp;
        bool eof;
        const char *err;
        bool got_bytes, head_done;
    } cases[] = {
        {"", true, h1cli_err_closed, false, false}, // a kept-alive connection closed meanwhile
        {"HTTP/1.1 200 OK\r\nContent-Le", true, h1cli_err_closed, true, false},
        {"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", true, h1cli_err_closed, true, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", true, h1cli_err_closed,
         true, true},
        {"HTTP/9.1 200 OK\r\n\r\n", false, h1cli_err_head, true, false},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", false,
         h1cli_err_head, true, false},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, h1cli_err_body,
         true, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
        assert_int_equal(run_to_end(&t, cases[i].resp, cases[i].eof), H1CLI_ERROR);
        if (t.x.err != cases[i].err)
            fail_msg("case %zu: err %s, want %s", i, t.x.err ? t.x.err : "none", cases[i].err);
        assert_int_equal(t.x.got_bytes, cases[i].got_bytes);
        assert_int_equal(t.x.head_done, cases[i].head_done);
        /* an error stays */
        assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_ERROR);
        tx_close(&t);
    }

    /* a head that does not end within lim.max_head */
    tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
    t.x.lim.max_head = 64;
    char big[200];
    memset(big, 'a', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(run_to_end(&t, big, false), H1CLI_ERROR);
    assert_ptr_equal(t.x.err, h1cli_err_head);
    assert_int_equal(t.x.res.err, H1_ERR_HEAD_TOO_LARGE);
    tx_close(&t);

    /* bytes while our head is not all sent, on a connection that carried an exchange before */
    tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
    t.x.early_stray = true;
    tx_send(&t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_ERROR);
    assert_ptr_equal(t.x.err, h1cli_err_early);
    tx_close(&t);
    /* the same on a fresh connection is an early answer (a 431): read */
    tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
    tx_send(&t, "HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_HEAD);
    assert_int_equal(t.x.res.status, 431);
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_DONE);
    tx_close(&t);

    /* the transport fails */
    tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
    t.x.readable = true;
    close(t.tp.fd); // reads now fail with EBADF: an I/O error
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_ERROR);
    assert_ptr_equal(t.x.err, h1cli_err_io);
    t.tp.fd = -1; // closed above
    tx_close(&t);
}

/* A server that sends 1xx heads without end: the reader gives up past max_interim bytes of them
 * within one call, rather than reading as long as the server writes (a socketpair holds far less
 * than the default 1 MB, so a small bound here). A few interim heads before the final one
 * (test_length_body) stay fine. */
static void test_endless_interim(void **state)
{
    (void)state;
    struct tx t;
    tx_open(&t, "GET / HTTP/1.1\r\n\r\n");
    t.x.max_interim = 16 * 1024;
    tx_write_head(&t);
    int big = 1 << 20;
    setsockopt(t.peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    fcntl(t.peer, F_SETFL, O_NONBLOCK);
    static const char hint[] = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
    size_t sent = 0;
    while (sent < 2 * t.x.max_interim) {
        ssize_t w = write(t.peer, hint, sizeof(hint) - 1);
        if (w < 0)
            break;
        sent += (size_t)w;
    }
    assert_true(sent > t.x.max_interim + t.x.lim.max_head); // more than the bound is waiting
    h1cli_on_events(&t.x, LOOP_READ);
    assert_int_equal(tx_next(&t, NULL, NULL, NULL), H1CLI_ERROR);
    assert_ptr_equal(t.x.err, h1cli_err_interim);
    assert_false(t.x.head_done);
    tx_close(&t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_body),
        cmocka_unit_test(test_write_with_body),
        cmocka_unit_test(test_chunked_raw_and_trailers),
        cmocka_unit_test(test_until_close_and_hup),
        cmocka_unit_test(test_no_body_heads),
        cmocka_unit_test(test_head_in_pieces),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_endless_interim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
