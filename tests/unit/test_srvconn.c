/* The server-side connection core (net/srvconn) over a socketpair and a real loop: a tiny server
 * written the way its users are (read, head, answer, keep-alive or close) answers each request
 * with its path. Checked: pipelined requests answered in order from one write, the head limit
 * (431, reading stops at the limit), a slow head timed out from its first byte (its deadline
 * never moves with more bytes), and a client that goes away in every phase: before a byte,
 * mid-head, between requests, while its answer waits for the socket, during the lingering close.
 * Timeouts use short real timers driven by loop_run_once, no sleep(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "net/srvconn.h"

struct tsrv {
    struct loop *loop;
    struct srvconn sc;
    struct h1_limits lim;
    uint64_t header_ms, idle_ms;
    size_t body_size;  // answer bodies this long (the path, then 'x's)
    bool closed;
    int answered;
    int bad_status;    // the status of a refused head
    int timeouts[SRVCONN_T_LINGER + 1];
    size_t max_in;     // most bytes s->in held
};

static void tsrv_close(struct tsrv *t)
{
    if (t->closed)
        return;
    t->closed = true;
    srvconn_close(&t->sc, t->loop);
}

static void tsrv_on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct tsrv *t = arg;
    t->timeouts[t->sc.timer_kind]++;
    tsrv_close(t);
}

static void tsrv_answer(struct tsrv *t, const struct h1_request *req)
{
    size_t len = t->body_size > req->path_len ? t->body_size : req->path_len;
    buf_printf(&t->sc.out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
    buf_append(&t->sc.out, req->path, req->path_len);
    for (size_t i = req->path_len; i < len; i++)
        buf_append(&t->sc.out, "x", 1);
}

static void tsrv_serve(struct tsrv *t)
{
    struct srvconn *sc = &t->sc;
    for (;;) {
        if (srvconn_read(sc, 512, t->lim.max_head + 1) == IO_ERR) {
            tsrv_close(t);
            return;
        }
        if (buf_pending(&sc->in) > t->max_in)
            t->max_in = buf_pending(&sc->in);
        bool answered = false;
        while (!sc->closing && buf_pending(&sc->out) == 0 && buf_pending(&sc->in) > 0) {
            struct h1_header hdrs[16];
            struct h1_request req;
            int r = srvconn_head(sc, t->loop, &req, hdrs, 16, &t->lim, t->header_ms);
            if (r == SRVCONN_HEAD_MORE)
                break;
            if (r == SRVCONN_HEAD_EOF) {
                tsrv_close(t);
                return;
            }
            bool keep = false;
            if (r == SRVCONN_HEAD_BAD) {
                t->bad_status = h1_err_status(req.err);
                buf_printf(&sc->out, "HTTP/1.1 %d Bad\r\nContent-Length: 0\r\n\r\n",
                           t->bad_status);
            } else {
                keep = req.keep_alive;
                tsrv_answer(t, &req);
                buf_consume(&sc->in, (size_t)r);
                t->answered++;
            }
            if (srvconn_answered(sc, t->loop, keep, t->idle_ms, 200) == IO_ERR) {
                tsrv_close(t);
                return;
            }
            answered = true;
        }
        if (sc->closing || buf_pending(&sc->out) > 0)
            break;
        if (sc->read_eof) {
            tsrv_close(t);
            return;
        }
        if (!answered || !sc->readable)
            break;
    }
}

static void tsrv_on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)fd;
    struct tsrv *t = arg;
    if (t->closed)
        return;
    srvconn_on_events(&t->sc, events);
    if (t->sc.closing || buf_pending(&t->sc.out) > 0) {
        int rc = srvconn_drain(&t->sc, loop, 200);
        if (rc == IO_ERR) {
            tsrv_close(t);
            return;
        }
        if (rc == IO_AGAIN)
            return;
    }
    tsrv_serve(t);
}

/* A server on one end of a socketpair; the test is the client on *<client>. */
static void tsrv_start(struct tsrv *t, int *client)
{
    memset(t, 0, sizeof(*t));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    t->loop = loop_create();
    assert_non_null(t->loop);
    t->lim = (struct h1_limits){.max_request_line = 512, .max_head = 1024, .max_headers = 16};
    t->header_ms = 5000;
    t->idle_ms = 5000;
    srvconn_init(&t->sc, tsrv_on_timer, t);
    srvconn_open(&t->sc, sv[0]);
    assert_int_equal(loop_add_fd(t->loop, sv[0], LOOP_READ | LOOP_WRITE, tsrv_on_event, t), 0);
    srvconn_arm(&t->sc, t->loop, SRVCONN_T_HEADER, t->header_ms);
    *client = sv[1];
}

static void tsrv_stop(struct tsrv *t, int client)
{
    tsrv_close(t);
    loop_run_once(t->loop, 0);
    srvconn_deinit(&t->sc);
    loop_destroy(t->loop);
    if (client != -1)
        close(client);
}

/* Runs the loop until <t> closed or <ms> passed. */
static void run_until_closed(struct tsrv *t, uint64_t ms)
{
    uint64_t end = clock_now_ms() + ms;
    while (!t->closed && clock_now_ms() < end)
        loop_run_once(t->loop, 10);
}

static void run_for(struct tsrv *t, int rounds)
{
    for (int i = 0; i < rounds && !t->closed; i++)
        loop_run_once(t->loop, 1);
}

static void send_all(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = write(fd, s + off, len - off);
        if (n > 0)
            off += (size_t)n;
        else
            assert_true(n == -1 && errno == EAGAIN);
    }
}

/* Reads what the server sent until EOF (or <ms>), driving its loop meanwhile. */
static size_t read_all(struct tsrv *t, int fd, char *out, size_t cap, uint64_t ms)
{
    size_t len = 0;
    uint64_t end = clock_now_ms() + ms;
    while (clock_now_ms() < end) {
        if (!t->closed)
            loop_run_once(t->loop, 1);
        ssize_t n = read(fd, out + len, cap - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        assert_true(errno == EAGAIN);
    }
    out[len] = '\0';
    return len;
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    send_all(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bb HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /ccc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    char got[4096];
    read_all(&t, fd, got, sizeof(got), 2000);
    const char *a = strstr(got, "\r\n\r\n/a");
    const char *b = strstr(got, "\r\n\r\n/bb");
    const char *c = strstr(got, "\r\n\r\n/ccc");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_int_equal(t.answered, 3);
    /* the last answer said close: the server half-closed (our EOF) and lingers for ours */
    assert_true(t.sc.closing);
    shutdown(fd, SHUT_WR);
    run_until_closed(&t, 2000);
    assert_true(t.closed);
    assert_int_equal(t.timeouts[SRVCONN_T_LINGER], 0); // our EOF ended it, not the timer
    tsrv_stop(&t, fd);
}

static void test_pipelined_one_byte_at_a_time(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    const char *reqs = "GET /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n";
    for (const char *p = reqs; *p; p++) {
        char one[2] = {*p, 0};
        send_all(fd, one);
        run_for(&t, 3);
    }
    char got[1024];
    shutdown(fd, SHUT_WR);
    read_all(&t, fd, got, sizeof(got), 2000);
    assert_int_equal(t.answered, 2);
    assert_true(strstr(got, "/x") < strstr(got, "/y"));
    tsrv_stop(&t, fd);
}

static void test_head_limit(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    char big[4096];
    strcpy(big, "GET / HTTP/1.1\r\nX-Big: ");
    size_t n = strlen(big);
    memset(big + n, 'a', 3000);
    big[n + 3000] = '\0';
    send_all(fd, big); // no end of head: only the limit can stop it
    run_for(&t, 20);
    assert_int_equal(t.bad_status, 431);
    assert_int_equal(t.answered, 0);
    /* reading stopped at the limit (give or take one read's room), not at the 3 KB sent */
    assert_true(t.max_in > t.lim.max_head && t.max_in < n + 3000);
    char got[1024];
    read_all(&t, fd, got, sizeof(got), 2000);
    assert_non_null(strstr(got, "HTTP/1.1 431"));
    tsrv_stop(&t, fd);
}

static void test_slow_head_times_out_from_first_byte(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    t.header_ms = 300;
    srvconn_arm(&t.sc, t.loop, SRVCONN_T_IDLE, 5000); // as after an earlier request
    send_all(fd, "GET / HTTP/1.1\r\n");
    run_for(&t, 3);
    assert_int_equal(t.sc.timer_kind, SRVCONN_T_HEADER);
    uint64_t due = t.sc.timer._due_ms;
    /* a byte at a time, each read parses again: the deadline stays where the first byte set it */
    for (int i = 0; i < 5 && !t.closed; i++) {
        send_all(fd, "X");
        run_for(&t, 3);
        assert_int_equal(t.sc.timer_kind, SRVCONN_T_HEADER);
        assert_int_equal(t.sc.timer._due_ms, due);
    }
    run_until_closed(&t, 3000);
    assert_true(t.closed);
    assert_int_equal(t.timeouts[SRVCONN_T_HEADER], 1);
    assert_int_equal(t.answered, 0);
    tsrv_stop(&t, fd);
}

static void test_complete_head_resets_header_timer(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    send_all(fd, "GET /k HTTP/1.1\r\nHost: x\r\n\r\n");
    run_for(&t, 5);
    assert_int_equal(t.answered, 1);
    assert_int_equal(t.sc.timer_kind, SRVCONN_T_IDLE); // keep-alive: waiting for the next one
    send_all(fd, "GET /l HTTP/1.1\r\n");
    run_for(&t, 5);
    assert_int_equal(t.sc.timer_kind, SRVCONN_T_HEADER); // the next head has its own deadline
    tsrv_stop(&t, fd);
}

static void test_abort_before_any_byte(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    close(fd);
    run_until_closed(&t, 2000);
    assert_true(t.closed);
    assert_int_equal(t.answered, 0);
    assert_int_equal(t.timeouts[SRVCONN_T_HEADER], 0);
    tsrv_stop(&t, -1);
}

static void test_abort_mid_head(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    send_all(fd, "GET /half HTTP/1.1\r\nHost:");
    run_for(&t, 5);
    assert_false(t.closed);
    close(fd);
    run_until_closed(&t, 2000);
    assert_true(t.closed);
    assert_int_equal(t.answered, 0);
    assert_int_equal(t.bad_status, 0); // half a head then EOF: nothing to answer
    tsrv_stop(&t, -1);
}

static void test_abort_between_requests(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    send_all(fd, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    char got[1024];
    run_for(&t, 5);
    assert_true(read(fd, got, sizeof(got)) > 0);
    assert_false(t.closed);
    close(fd);
    run_until_closed(&t, 2000);
    assert_true(t.closed);
    assert_int_equal(t.answered, 1);
    assert_int_equal(t.timeouts[SRVCONN_T_IDLE], 0);
    tsrv_stop(&t, -1);
}

static void test_abort_while_answer_waits(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    t.body_size = 8u << 20; // more than the socketpair holds: the rest waits in s->out
    send_all(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    run_for(&t, 5);
    assert_int_equal(t.answered, 1);
    assert_true(buf_pending(&t.sc.out) > 0);
    assert_false(t.sc.writable);
    assert_int_equal(t.sc.timer_kind, SRVCONN_T_SEND); // a client that reads nothing goes too
    close(fd); // never reads its answer
    run_until_closed(&t, 2000);
    assert_true(t.closed);
    assert_int_equal(t.timeouts[SRVCONN_T_SEND], 0); // the write error closed it, not the timer
    tsrv_stop(&t, -1);
}

static void test_abort_during_linger(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    send_all(fd, "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    run_for(&t, 5);
    assert_true(t.sc.closing);
    assert_int_equal(t.sc.timer_kind, SRVCONN_T_LINGER);
    send_all(fd, "more bytes the server drops while it lingers");
    run_for(&t, 5);
    assert_false(t.closed);
    close(fd);
    run_until_closed(&t, 2000);
    assert_true(t.closed);
    assert_int_equal(t.timeouts[SRVCONN_T_LINGER], 0);
    tsrv_stop(&t, -1);
}

static void test_linger_times_out(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    send_all(fd, "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    run_until_closed(&t, 3000); // the client never closes: the linger timer does (200 ms)
    assert_true(t.closed);
    assert_int_equal(t.timeouts[SRVCONN_T_LINGER], 1);
    tsrv_stop(&t, fd);
}

static void test_sendv_keeps_what_the_socket_refuses(void **state)
{
    (void)state;
    struct tsrv t;
    int fd;
    tsrv_start(&t, &fd);
    static char chunk[256 * 1024];
    memset(chunk, 'z', sizeof(chunk));
    struct iovec iov[2] = {{chunk, sizeof(chunk)}, {chunk, sizeof(chunk)}};
    ssize_t w = srvconn_sendv(&t.sc, iov, 2);
    assert_true(w > 0);
    assert_int_equal((size_t)w + buf_pending(&t.sc.out), 2 * sizeof(chunk));
    assert_false(t.sc.writable);
    /* not writable: everything is queued behind, in order */
    struct iovec tail = {"END", 3};
    assert_int_equal(srvconn_sendv(&t.sc, &tail, 1), 0);
    size_t total = 0;
    char rd[65536];
    bool end = false;
    for (int i = 0; i < 100000 && !end; i++) {
        ssize_t n = read(fd, rd, sizeof(rd));
        if (n > 0) {
            total += (size_t)n;
            end = n >= 3 && memcmp(rd + n - 3, "END", 3) == 0;
            continue;
        }
        t.sc.writable = true;
        assert_true(srvconn_flush(&t.sc) >= 0);
    }
    assert_true(end);
    assert_int_equal(total, 2 * sizeof(chunk) + 3);
    tsrv_stop(&t, fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_pipelined_one_byte_at_a_time),
        cmocka_unit_test(test_head_limit),
        cmocka_unit_test(test_slow_head_times_out_from_first_byte),
        cmocka_unit_test(test_complete_head_resets_header_timer),
        cmocka_unit_test(test_abort_before_any_byte),
        cmocka_unit_test(test_abort_mid_head),
        cmocka_unit_test(test_abort_between_requests),
        cmocka_unit_test(test_abort_while_answer_waits),
        cmocka_unit_test(test_abort_during_linger),
        cmocka_unit_test(test_linger_times_out),
        cmocka_unit_test(test_sendv_keeps_what_the_socket_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
