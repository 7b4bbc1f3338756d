/* Active health checks against a local HTTP responder thread whose answer the test changes:
 * consecutive failures (a 503, garbage, silence past the timeout, a closed port) mark the server
 * down after unhealthy_threshold; successes bring it back after healthy_threshold; the checks are
 * counted and /upstreams shows the last result. A 103 Early Hints before the 200 is skipped, an
 * endless stream of 1xx responses is a failure. Short real intervals (20 ms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "gateway/gwconf.h"
#include "gateway/upstream.h"
#include "metrics/metrics.h"
#include "net/sock.h"

enum { ANSWER_STATUS, ANSWER_GARBAGE, ANSWER_SILENT, ANSWER_EARLY_HINTS, ANSWER_1XX_FLOOD };
static _Atomic int mode = ANSWER_STATUS;
static _Atomic int status = 200;
static _Atomic int requests;
static int lfd = -1;
static int port;
static pthread_t responder_thread;

static void *responder(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char b[1024];
        ssize_t n = read(fd, b, sizeof(b));
        if (n > 0 && memcmp(b, "GET /hc HTTP/1.1\r\n", 18) == 0)
            atomic_fetch_add(&requests, 1);
        char out[128];
        int len = 0;
        if (mode == ANSWER_STATUS)
            len = snprintf(out, sizeof(out),
                           "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                           atomic_load(&status));
        else if (mode == ANSWER_GARBAGE)
            len = snprintf(out, sizeof(out), "SSH-2.0-OpenSSH_9.2\r\n");
        else if (mode == ANSWER_EARLY_HINTS) {
            /* two interim responses, the first in its own write, then the final one */
            const char *hint = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
            if (write(fd, hint, strlen(hint)) < 0)
                perror("write");
            nanosleep(&(struct timespec){0, 2 * 1000000}, NULL);
            len = snprintf(out, sizeof(out), "%sHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                           "HTTP/1.1 100 Continue\r\n\r\n");
        } else if (mode == ANSWER_1XX_FLOOD) {
            /* until the probe gives up and closes */
            const char *hint = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n";
            for (int i = 0; i < 100000 && write(fd, hint, strlen(hint)) > 0; i++)
                ;
        }
        else
            nanosleep(&(struct timespec){0, 150 * 1000000}, NULL); /* past the 50 ms timeout */
        if (len > 0 && write(fd, out, (size_t)len) < 0)
            perror("write");
        close(fd);
    }
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* a probe may close while the responder writes */
    struct sock_addr a;
    char err[128];
    sock_parse_addr("127.0.0.1:0", &a, err, sizeof(err));
    lfd = sock_listen(&a, false, 64, err, sizeof(err));
    if (lfd < 0)
        return -1;
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) & ~O_NONBLOCK);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    port = ntohs(sin.sin_port);
    pthread_create(&responder_thread, NULL, responder, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    shutdown(lfd, SHUT_RDWR); /* accept() fails: the responder returns */
    pthread_join(responder_thread, NULL);
    close(lfd);
    return 0;
}

struct fix {
    char spec[32];
    struct gw_upserver server;
    struct gw_upstream up;
    struct gw_route route;
    struct gw_config cfg;
    struct metrics *m;
    struct upstream_set *set;
};

static struct fix *fix_create(int server_port)
{
    struct fix *f = calloc(1, sizeof(*f));
    char err[256];
    snprintf(f->spec, sizeof(f->spec), "127.0.0.1:%d", server_port);
    f->server = (struct gw_upserver){.spec = f->spec, .host = "127.0.0.1", .port = server_port,
                                     .numeric = true, .weight = 1};
    assert_int_equal(sock_parse_addr(f->spec, &f->server.addr, err, sizeof(err)), 0);
    f->up = (struct gw_upstream){.name = "api", .servers = &f->server, .nservers = 1,
                                 .connect_timeout_ms = 1000};
    f->up.health = (struct gw_health){.enabled = true, .path = "/hc", .interval_ms = 20,
                                      .timeout_ms = 50, .healthy_threshold = 2,
                                      .unhealthy_threshold = 2, .expect_min = 200,
                                      .expect_max = 399};
    f->route = (struct gw_route){.match = "/", .upstream_index = 0};
    f->cfg = (struct gw_config){.upstreams = &f->up, .nupstreams = 1, .routes = &f->route,
                                .nroutes = 1};
    f->m = metrics_create();
    f->set = upstream_set_create(&f->cfg, f->m, 1, err, sizeof(err));
    assert_non_null(f->set);
    assert_int_equal(upstream_set_start(f->set, err, sizeof(err)), 0);
    return f;
}

static void fix_destroy(struct fix *f)
{
    upstream_set_destroy(f->set);
    metrics_destroy(f->m);
    free(f);
}

static bool wait_healthy(struct fix *f, bool want, uint64_t max_ms)
{
    uint64_t t0 = clock_now_ms();
    while (clock_now_ms() - t0 < max_ms) {
        if (upstream_server_healthy(upstream_set_at(f->set, 0), 0) == want)
            return true;
        nanosleep(&(struct timespec){0, 5 * 1000000}, NULL);
    }
    return false;
}

static int64_t checks(struct fix *f, const char *result)
{
    const char *v[] = {"api", f->spec, result, NULL};
    return metrics_read(f->m, metrics_lookup(f->m, "apigate_upstream_health_checks_total", v),
                        METRICS_COUNTER);
}

static void test_thresholds(void **state)
{
    (void)state;
    mode = ANSWER_STATUS;
    status = 200;
    struct fix *f = fix_create(port);
    char why[128];
    /* Healthy from the start, and probes arrive with the configured path. */
    assert_true(upstream_set_ready(f->set, why, sizeof(why)));
    uint64_t t0 = clock_now_ms();
    while (checks(f, "ok") < 3 && clock_now_ms() - t0 < 2000)
        nanosleep(&(struct timespec){0, 5 * 1000000}, NULL);
    assert_true(checks(f, "ok") >= 3);
    assert_true(atomic_load(&requests) >= 3);

    status = 503; /* outside expect_min..expect_max */
    assert_true(wait_healthy(f, false, 2000));
    assert_true(checks(f, "fail") >= 2);
    assert_false(upstream_set_ready(f->set, why, sizeof(why)));
    struct buf out = BUF_INIT;
    upstream_set_status_json(f->set, &out);
    buf_append(&out, "", 1);
    assert_non_null(strstr(out.data, "\"healthy\":false"));
    assert_non_null(strstr(out.data, "status 503"));
    buf_deinit(&out);

    status = 302; /* a redirect is within 200..399 */
    assert_true(wait_healthy(f, true, 2000));
    assert_true(upstream_set_ready(f->set, why, sizeof(why)));

    mode = ANSWER_GARBAGE;
    assert_true(wait_healthy(f, false, 2000));
    mode = ANSWER_STATUS;
    status = 200;
    assert_true(wait_healthy(f, true, 2000));

    mode = ANSWER_SILENT;
    assert_true(wait_healthy(f, false, 3000));
    mode = ANSWER_STATUS;
    assert_true(wait_healthy(f, true, 3000));

    /* interim responses: skipped before a 200, a failure when they never end */
    mode = ANSWER_1XX_FLOOD;
    assert_true(wait_healthy(f, false, 3000));
    upstream_set_status_json(f->set, &out);
    buf_append(&out, "", 1);
    assert_non_null(strstr(out.data, "too many 1xx responses"));
    buf_deinit(&out);
    mode = ANSWER_EARLY_HINTS;
    assert_true(wait_healthy(f, true, 3000));
    int64_t ok0 = checks(f, "ok");
    t0 = clock_now_ms();
    while (checks(f, "ok") < ok0 + 3 && clock_now_ms() - t0 < 2000)
        nanosleep(&(struct timespec){0, 5 * 1000000}, NULL);
    assert_true(checks(f, "ok") >= ok0 + 3);
    mode = ANSWER_STATUS;
    fix_destroy(f);
}

static void test_closed_port(void **state)
{
    (void)state;
    /* A port nobody listens on: connect refused, down after two probes. */
    struct sock_addr a;
    char err[128];
    sock_parse_addr("127.0.0.1:0", &a, err, sizeof(err));
    int fd = sock_listen(&a, false, 1, err, sizeof(err));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    struct fix *f = fix_create(ntohs(sin.sin_port));
    assert_true(wait_healthy(f, false, 2000));
    const char *v[] = {"api", f->spec, NULL};
    assert_true(metrics_read(f->m, metrics_lookup(f->m, "apigate_upstream_ejections_total", v),
                             METRICS_COUNTER) >= 1);
    fix_destroy(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_closed_port),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
