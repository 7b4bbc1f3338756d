/* Active health checks on a thread of their own (own event loop), so a slow or hung server never
 * delays a request thread. Each probe is a fresh connection (TCP, TLS when the server is https):
 * "GET <path> HTTP/1.1" with Connection: close; only the final status line is read (1xx interim
 * responses before it are skipped, as RFC 9110 15.2 asks of every client). */
#include "gateway/health.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "gateway/upstream_priv.h"
#include "net/sock.h"
#include "net/tls.h"
#include "net/transport.h"

#define HEALTH_MAGIC 0x4845414cu /* "HEAL" */
/* 1xx responses (103 Early Hints) before the final one are skipped, up to this many bytes: more
 * is a server flooding us, and the probe must end within its timeout. */
#define HEALTH_MAX_INTERIM 16384

enum probe_state { P_IDLE = 0, P_CONNECTING, P_HANDSHAKE, P_SENDING, P_READING };

struct probe {
    uint32_t magic;
    struct health *h;
    struct upstream *u;
    struct upstream_server *s;
    enum probe_state state;
    struct transport tp;
    struct loop_timer tick;     /* next probe */
    struct loop_timer deadline; /* probe timeout */
    char req[512];
    size_t req_len, req_off;
    char rx[1024];              /* "HTTP/1.1 200", or a whole 1xx head to skip */
    size_t rx_len;
    size_t interim;             /* bytes of 1xx responses skipped */
    uint64_t seq;
};

struct health {
    struct upstream_set *set;
    struct loop *loop;
    struct metrics_slot *slot;
    struct probe *probes;
    size_t n;
    pthread_t thread;
    bool started;
};

static void health__on_fd(struct loop *loop, int fd, void *arg, unsigned events);

static void health__close(struct probe *p)
{
    loop_timer_stop(p->h->loop, &p->deadline);
    if (p->tp.fd >= 0) {
        loop_del_fd(p->h->loop, p->tp.fd);
        transport_close(&p->tp);
    }
    p->state = P_IDLE;
}

/* Ends a probe: success or failure (<why> says what), thresholds, next tick. */
static void health__done(struct probe *p, bool ok, const char *why)
{
    health__close(p);
    const struct gw_health *hc = &p->u->conf->health;
    snprintf(p->s->hc_last, sizeof(p->s->hc_last), "%s", why);
    metrics_counter_inc(p->h->slot, ok ? p->s->m_checks_ok : p->s->m_checks_fail);
    bool healthy = atomic_load(&p->s->healthy);
    if (healthy && !p->s->hc_saw_healthy)
        p->s->hc_fail_streak = 0; // marked up by a proxied success since: a new streak
    if (ok) {
        p->s->hc_fail_streak = 0;
        p->s->hc_ok_streak++;
        if (!healthy && p->s->hc_ok_streak >= hc->healthy_threshold)
            upstream__set_healthy(p->u, p->s, true, why);
    } else {
        p->s->hc_ok_streak = 0;
        p->s->hc_fail_streak++;
        if (healthy && p->s->hc_fail_streak >= hc->unhealthy_threshold) {
            char msg[200];
            snprintf(msg, sizeof(msg), "%s (%lld consecutive failures)", why,
                     (long long)p->s->hc_fail_streak);
            /* Counted first: whoever sees the server down also sees the ejection. */
            metrics_counter_inc(p->h->slot, p->s->m_ejections);
            upstream__set_healthy(p->u, p->s, false, msg);
        }
    }
    p->s->hc_saw_healthy = atomic_load(&p->s->healthy);
    loop_timer_start(p->h->loop, &p->tick, hc->interval_ms);
}

static void health__start_probe(struct loop *loop, void *arg)
{
    (void)loop;
    struct probe *p = arg;
    if (p->state != P_IDLE)
        return;
    struct sock_addr addr;
    if (!upstream__addr(p->s, p->seq++, &addr)) {
        health__done(p, false, "address not resolved");
        return;
    }
    int fd = sock_connect(&addr);
    if (fd < 0) {
        health__done(p, false, strerror(errno));
        return;
    }
    transport_init_tcp(&p->tp, fd);
    if (loop_add_fd(p->h->loop, fd, LOOP_READ | LOOP_WRITE, health__on_fd, p) != 0) {
        transport_close(&p->tp);
        health__done(p, false, strerror(errno));
        return;
    }
    p->state = P_CONNECTING;
    p->req_off = 0;
    p->rx_len = 0;
    p->interim = 0;
    loop_timer_start(p->h->loop, &p->deadline, p->u->conf->health.timeout_ms);
}

static void health__on_timeout(struct loop *loop, void *arg)
{
    (void)loop;
    struct probe *p = arg;
    if (p->state != P_IDLE)
        health__done(p, false, "timeout");
}

/* Parses "HTTP/1.x NNN" from what was read; -1 until complete, 0 when malformed. */
static int health__status(const struct probe *p)
{
    if (p->rx_len < 12)
        return -1;
    if (memcmp(p->rx, "HTTP/1.", 7) != 0 || p->rx[8] != ' ')
        return 0;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (p->rx[i] < '0' || p->rx[i] > '9')
            return 0;
        st = st * 10 + (p->rx[i] - '0');
    }
    return st;
}

static void health__step(struct probe *p, unsigned events)
{
    if (p->state == P_CONNECTING) {
        int e = sock_connect_result(p->tp.fd);
        if (e != 0) {
            health__done(p, false, strerror(e));
            return;
        }
        if (!(events & LOOP_WRITE))
            return;
        if (p->s->tls_sess != NULL) {
            char err[300];
            int fd = p->tp.fd;
            if (tls_transport_init(&p->tp, p->u->tls, fd, p->s->tls_name, p->s->tls_sess, err,
                                   sizeof(err)) != 0) {
                health__done(p, false, err);
                return;
            }
            p->state = P_HANDSHAKE;
        } else {
            p->state = P_SENDING;
        }
    }
    if (p->state == P_HANDSHAKE) {
        int r = transport_handshake(&p->tp);
        if (r == IO_AGAIN)
            return;
        if (r != IO_OK) {
            char text[300];
            health__done(p, false, tls_transport_describe(&p->tp, text, sizeof(text)));
            return;
        }
        p->state = P_SENDING;
    }
    if (p->state == P_SENDING) {
        while (p->req_off < p->req_len) {
            ssize_t n = transport_write(&p->tp, p->req + p->req_off, p->req_len - p->req_off);
            if (n == IO_AGAIN)
                return;
            if (n < 0) {
                health__done(p, false, "write failed");
                return;
            }
            p->req_off += (size_t)n;
        }
        p->state = P_READING;
    }
    if (p->state == P_READING) {
        int st = -1;
        for (;;) {
            st = health__status(p);
            if (st >= 100 && st < 200 && st != 101) {
                /* an interim response: the final one follows its blank line */
                const char *end = memmem(p->rx, p->rx_len, "\r\n\r\n", 4);
                if (end != NULL) {
                    size_t k = (size_t)(end + 4 - p->rx);
                    memmove(p->rx, p->rx + k, p->rx_len - k);
                    p->rx_len -= k;
                    p->interim += k;
                    if (p->interim > HEALTH_MAX_INTERIM) {
                        health__done(p, false, "too many 1xx responses");
                        return;
                    }
                    continue;
                }
                if (p->rx_len == sizeof(p->rx)) {
                    health__done(p, false, "1xx response head too large");
                    return;
                }
            } else if (st >= 0) {
                break; /* the final status line, or not HTTP */
            }
            ssize_t n = transport_read(&p->tp, p->rx + p->rx_len, sizeof(p->rx) - p->rx_len);
            if (n == IO_AGAIN)
                return;
            if (n <= 0) {
                st = -1;
                break;
            }
            p->rx_len += (size_t)n;
        }
        const struct gw_health *hc = &p->u->conf->health;
        char why[64];
        if (st < 0) {
            health__done(p, false, "connection closed before a status line");
        } else if (st == 0) {
            health__done(p, false, "not an HTTP response");
        } else {
            snprintf(why, sizeof(why), "status %d", st);
            health__done(p, st >= hc->expect_min && st <= hc->expect_max, why);
        }
    }
}

static void health__on_fd(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct probe *p = arg;
    AG_ASSERT(p->magic == HEALTH_MAGIC);
    if (p->state == P_IDLE)
        return;
    health__step(p, events);
}

struct health *health_create(struct upstream_set *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->ups[i].conf->health.enabled)
            n += s->ups[i].nservers;
    if (n == 0)
        return NULL;
    struct health *h = xcalloc(1, sizeof(*h));
    h->set = s;
    h->loop = loop_create();
    h->probes = xcalloc(n, sizeof(*h->probes));
    for (size_t i = 0; i < s->n; i++) {
        struct upstream *u = &s->ups[i];
        if (!u->conf->health.enabled)
            continue;
        for (size_t k = 0; k < u->nservers; k++) {
            struct probe *p = &h->probes[h->n++];
            p->magic = HEALTH_MAGIC;
            p->h = h;
            p->u = u;
            p->s = &u->servers[k];
            p->tp.fd = -1;
            const char *host = u->conf->host ? u->conf->host : u->servers[k].conf->host;
            int len = snprintf(p->req, sizeof(p->req),
                               "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: apigate-health\r\n"
                               "Accept: */*\r\nConnection: close\r\n\r\n",
                               u->conf->health.path ? u->conf->health.path : "/", host);
            p->req_len = len > 0 && (size_t)len < sizeof(p->req) ? (size_t)len : 0;
            loop_timer_init(&p->tick, health__start_probe, p);
            loop_timer_init(&p->deadline, health__on_timeout, p);
        }
    }
    return h;
}

static void *health__thread(void *arg)
{
    struct health *h = arg;
    loop_run(h->loop);
    return NULL;
}

int health_start(struct health *h, char *err, size_t errlen)
{
    if (h == NULL || h->started)
        return 0;
    h->slot = metrics_slot_get(h->set->metrics);
    /* First round at once, spread over a few ms so the probes do not leave in one burst. */
    for (size_t i = 0; i < h->n; i++)
        loop_timer_start(h->loop, &h->probes[i].tick, i % 50);
    int rc = pthread_create(&h->thread, NULL, health__thread, h);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the health check thread: %s", strerror(rc));
        return -1;
    }
    h->started = true;
    return 0;
}

void health_destroy(struct health *h)
{
    if (h == NULL)
        return;
    if (h->started) {
        loop_stop(h->loop);
        pthread_join(h->thread, NULL);
    }
    for (size_t i = 0; i < h->n; i++) {
        struct probe *p = &h->probes[i];
        health__close(p);
        loop_timer_stop(h->loop, &p->tick);
        p->magic = 0;
    }
    loop_destroy(h->loop);
    free(h->probes);
    free(h);
}
