/* hiredis async on our event loop. Attachment follows hiredis's adapters/ae.h: the ev.addRead /
 * delRead / addWrite / delWrite / cleanup hooks. Our loop is edge-triggered and registers the fd
 * once for both directions, so the hooks only record what hiredis wants: a write it asks for is
 * flushed after the current event batch (every command issued in the batch goes out in one
 * write: pipelining for free), and a read edge drains the socket (hiredis reads one buffer per
 * call). hiredis 0.14 has no command timeouts: each lookup carries its own loop timer. */
#include "cache/l2redis.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"

#define L2REDIS_LOG_INTERVAL_MS 10000
#define L2REDIS_MAX_BACKOFF_FACTOR 10

struct l2conn {
    struct l2redis *r;
    redisAsyncContext *ac;
    int fd;
    bool sub; // the subscriber connection
    bool connected;
    bool want_write;
    bool flush_queued; // a deferred write is pending
    bool registered;   // fd in the loop
    struct loop_timer retry;
    uint64_t backoff_ms;
};

struct l2redis {
    struct loop *loop;
    char host[256];
    int port;
    int db;
    bool is_unix;
    uint64_t timeout_ms, reconnect_ms;
    struct l2conn cmd, sub;
    char *channel;
    l2redis_msg_cb *on_msg;
    void *msg_arg;
    uint64_t errors;
    struct log_limit limit;
    bool destroying;
};

struct l2redis_req {
    struct l2redis *r;
    l2redis_get_cb *cb;
    void *arg;
    struct loop_timer timer;
    bool answered; // cb called (or timed out)
    bool cancelled;
};

static void l2__connect(struct l2conn *k);

int l2redis_parse_url(const char *url, char *host, size_t hostlen, int *port, int *db, char *err,
                      size_t errlen)
{
    *port = 6379;
    *db = 0;
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(host, hostlen, "%s", url + 7);
        *port = -1;
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "'%s' is not a redis:// URL", url);
        return -1;
    }
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at != NULL)
        p = at + 1; /* credentials are not supported; a local Redis has none */
    const char *end = p + strcspn(p, ":/");
    size_t hl = (size_t)(end - p);
    if (hl == 0 || hl >= hostlen) {
        snprintf(err, errlen, "'%s': missing or long host", url);
        return -1;
    }
    memcpy(host, p, hl);
    host[hl] = '\0';
    p = end;
    if (*p == ':') {
        char *e;
        long v = strtol(p + 1, &e, 10);
        if (v <= 0 || v > 65535) {
            snprintf(err, errlen, "'%s': bad port", url);
            return -1;
        }
        *port = (int)v;
        p = e;
    }
    if (*p == '/' && p[1] != '\0') {
        char *e;
        long v = strtol(p + 1, &e, 10);
        if (v < 0 || v > 1000 || *e != '\0') {
            snprintf(err, errlen, "'%s': bad database number", url);
            return -1;
        }
        *db = (int)v;
    }
    return 0;
}

static void l2__complain(struct l2redis *r, const char *what, const char *detail)
{
    uint64_t suppressed = 0;
    if (log_limit_ok(&r->limit, loop_now_ms(r->loop), L2REDIS_LOG_INTERVAL_MS, &suppressed))
        ag_log(AG_LOG_WARN, "cache l2: redis %s:%d %s: %s (%llu similar messages suppressed)",
               r->host, r->port, what, detail ? detail : "", (unsigned long long)suppressed);
}

/* ---- loop attachment ---- */

static void l2__flush_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2conn *k = arg;
    k->flush_queued = false;
    if (k->ac != NULL && k->connected && k->want_write)
        redisAsyncHandleWrite(k->ac);
}

static void l2__add_read(void *priv)
{
    (void)priv;
}
static void l2__del_read(void *priv)
{
    (void)priv;
}

static void l2__add_write(void *priv)
{
    struct l2conn *k = priv;
    k->want_write = true;
    /* edge-triggered: the socket may be writable already and never signal again */
    if (k->connected && !k->flush_queued) {
        k->flush_queued = true;
        loop_defer(k->r->loop, l2__flush_cb, k);
    }
}

static void l2__del_write(void *priv)
{
    struct l2conn *k = priv;
    k->want_write = false;
}

static void l2__cleanup(void *priv)
{
    struct l2conn *k = priv;
    if (k->registered) {
        loop_del_fd(k->r->loop, k->fd); /* hiredis closes the fd right after */
        k->registered = false;
    }
    k->fd = -1;
}

static void l2__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct l2conn *k = arg;
    if (k->ac == NULL)
        return;
    if (events & (LOOP_WRITE | LOOP_ERROR)) {
        if (!k->connected || k->want_write)
            redisAsyncHandleWrite(k->ac);
        if (k->ac == NULL)
            return;
    }
    if (events & (LOOP_READ | LOOP_ERROR)) {
        for (;;) {
            redisAsyncHandleRead(k->ac);
            if (k->ac == NULL)
                return;
            int avail = 0;
            if (ioctl(k->fd, FIONREAD, &avail) == -1 || avail <= 0)
                break;
        }
    }
}

/* ---- connection lifetime ---- */

static void l2__retry_cb(struct loop *loop, void *arg)
{
    (void)loop;
    l2__connect(arg);
}

static void l2__schedule_retry(struct l2conn *k)
{
    struct l2redis *r = k->r;
    if (r->destroying)
        return;
    if (k->backoff_ms == 0)
        k->backoff_ms = r->reconnect_ms;
    loop_timer_start(r->loop, &k->retry, k->backoff_ms);
    uint64_t cap = r->reconnect_ms * L2REDIS_MAX_BACKOFF_FACTOR;
    k->backoff_ms = k->backoff_ms * 2 > cap ? cap : k->backoff_ms * 2;
}

static void l2__on_connect(const redisAsyncContext *ac, int status)
{
    struct l2conn *k = ac->data;
    if (status != REDIS_OK) {
        k->r->errors++;
        l2__complain(k->r, "connect failed", ac->errstr);
        k->ac = NULL; /* hiredis frees it after this callback */
        k->connected = false;
        l2__schedule_retry(k);
        return;
    }
    if (k->backoff_ms > k->r->reconnect_ms)
        ag_log(AG_LOG_INFO, "cache l2: redis %s:%d connected", k->r->host, k->r->port);
    k->connected = true;
    k->backoff_ms = 0;
    if (k->want_write && !k->flush_queued) {
        k->flush_queued = true;
        loop_defer(k->r->loop, l2__flush_cb, k);
    }
}

static void l2__on_disconnect(const redisAsyncContext *ac, int status)
{
    struct l2conn *k = ac->data;
    k->ac = NULL;
    k->connected = false;
    if (k->r->destroying)
        return;
    k->r->errors++;
    l2__complain(k->r, "connection lost", status == REDIS_OK ? "closed" : ac->errstr);
    l2__schedule_retry(k);
}

static void l2__on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct l2conn *k = priv;
    redisReply *rep = reply;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
        return;
    redisReply *kind = rep->element[0], *msg = rep->element[2];
    if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "message") == 0 &&
        msg->type == REDIS_REPLY_STRING && k->r->on_msg != NULL)
        k->r->on_msg(k->r->msg_arg, msg->str, (size_t)msg->len);
}

static void l2__connect(struct l2conn *k)
{
    struct l2redis *r = k->r;
    if (r->destroying || k->ac != NULL)
        return;
    redisAsyncContext *ac =
        r->is_unix ? redisAsyncConnectUnix(r->host) : redisAsyncConnect(r->host, r->port);
    if (ac == NULL || ac->err) {
        r->errors++;
        l2__complain(r, "connect failed", ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        l2__schedule_retry(k);
        return;
    }
    k->ac = ac;
    k->fd = ac->c.fd;
    k->connected = false;
    k->want_write = false;
    ac->data = k;
    ac->ev.data = k;
    ac->ev.addRead = l2__add_read;
    ac->ev.delRead = l2__del_read;
    ac->ev.addWrite = l2__add_write;
    ac->ev.delWrite = l2__del_write;
    ac->ev.cleanup = l2__cleanup;
    if (loop_add_fd(r->loop, k->fd, LOOP_READ | LOOP_WRITE, l2__on_event, k) == 0)
        k->registered = true;
    redisAsyncSetConnectCallback(ac, l2__on_connect);
    redisAsyncSetDisconnectCallback(ac, l2__on_disconnect);
    if (k->sub)
        redisAsyncCommand(ac, l2__on_sub_reply, k, "SUBSCRIBE %s", r->channel);
    else if (r->db != 0)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", r->db);
}

struct l2redis *l2redis_create(struct loop *loop, const struct l2redis_conf *conf,
                               const char *channel, l2redis_msg_cb *on_msg, void *msg_arg)
{
    struct l2redis *r = xcalloc(1, sizeof(*r));
    char err[256];
    if (l2redis_parse_url(conf->url, r->host, sizeof(r->host), &r->port, &r->db, err,
                          sizeof(err)) == -1) {
        ag_log(AG_LOG_ERROR, "cache l2: %s", err);
        free(r);
        return NULL;
    }
    r->is_unix = r->port == -1;
    r->loop = loop;
    r->timeout_ms = conf->timeout_ms ? conf->timeout_ms : 50;
    r->reconnect_ms = conf->reconnect_ms ? conf->reconnect_ms : 1000;
    r->channel = xstrdup(channel ? channel : "apigate:purge");
    r->on_msg = on_msg;
    r->msg_arg = msg_arg;
    struct l2conn *ks[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++) {
        ks[i]->r = r;
        ks[i]->fd = -1;
        ks[i]->sub = i == 1;
        loop_timer_init(&ks[i]->retry, l2__retry_cb, ks[i]);
    }
    l2__connect(&r->cmd);
    if (on_msg != NULL)
        l2__connect(&r->sub);
    return r;
}

static void l2__free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2redis *r = arg;
    free(r->channel);
    free(r);
}

void l2redis_destroy(struct l2redis *r)
{
    if (r == NULL)
        return;
    r->destroying = true;
    struct l2conn *ks[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++) {
        loop_timer_stop(r->loop, &ks[i]->retry);
        if (ks[i]->ac != NULL) {
            redisAsyncContext *ac = ks[i]->ac;
            ks[i]->ac = NULL;
            redisAsyncFree(ac); /* pending callbacks run with a NULL reply */
        }
    }
    /* after deferred flushes that may still name the connections */
    loop_defer(r->loop, l2__free_cb, r);
}

bool l2redis_connected(const struct l2redis *r)
{
    return r != NULL && r->cmd.connected;
}
uint64_t l2redis_errors(const struct l2redis *r)
{
    return r != NULL ? r->errors : 0;
}

/* ---- commands ---- */

static void l2__on_timeout(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2redis_req *q = arg;
    if (q->answered || q->cancelled)
        return;
    q->answered = true;
    q->r->errors++;
    l2__complain(q->r, "lookup timed out", "counted as a miss");
    q->cb(q->arg, L2REDIS_ERROR, NULL, NULL, 0);
}

static void l2__on_get_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct l2redis_req *q = priv;
    struct l2redis *r = q->r;
    if (!r->destroying)
        loop_timer_stop(r->loop, &q->timer);
    if (!q->answered && !q->cancelled) {
        q->answered = true;
        redisReply *rep = reply;
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements > 4) {
            r->errors++;
            q->cb(q->arg, L2REDIS_ERROR, NULL, NULL, 0);
        } else {
            const char *vals[4] = {NULL};
            size_t lens[4] = {0};
            bool any = false;
            for (size_t i = 0; i < rep->elements; i++) {
                if (rep->element[i]->type == REDIS_REPLY_STRING) {
                    vals[i] = rep->element[i]->str;
                    lens[i] = (size_t)rep->element[i]->len;
                    any = any || i == 0;
                }
            }
            q->cb(q->arg, any ? L2REDIS_HIT : L2REDIS_MISS, vals, lens, rep->elements);
        }
    }
    free(q);
}

struct l2redis_req *l2redis_mget(struct l2redis *r, const char *const *keys, const size_t *klens,
                                 size_t n, l2redis_get_cb *cb, void *arg)
{
    if (r == NULL || !r->cmd.connected || r->cmd.ac == NULL || n == 0 || n > 4) {
        if (r != NULL)
            r->errors++;
        return NULL;
    }
    const char *argv[5] = {"MGET"};
    size_t argl[5] = {4};
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = keys[i];
        argl[i + 1] = klens[i];
    }
    struct l2redis_req *q = xcalloc(1, sizeof(*q));
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    loop_timer_init(&q->timer, l2__on_timeout, q);
    if (redisAsyncCommandArgv(r->cmd.ac, l2__on_get_reply, q, (int)n + 1, argv, argl) != REDIS_OK) {
        r->errors++;
        free(q);
        return NULL;
    }
    loop_timer_start(r->loop, &q->timer, r->timeout_ms);
    return q;
}

void l2redis_cancel(struct l2redis_req *q)
{
    if (q == NULL)
        return;
    q->cancelled = true;
    loop_timer_stop(q->r->loop, &q->timer);
}

void l2redis_set(struct l2redis *r, const char *key, size_t klen, const char *val, size_t vlen,
                 uint64_t ttl_ms)
{
    if (r == NULL || !r->cmd.connected || r->cmd.ac == NULL || ttl_ms == 0)
        return;
    char ttl[32];
    int tl = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    const char *argv[5] = {"SET", key, val, "PX", ttl};
    size_t argl[5] = {3, klen, vlen, 2, (size_t)tl};
    if (redisAsyncCommandArgv(r->cmd.ac, NULL, NULL, 5, argv, argl) != REDIS_OK)
        r->errors++;
}

void l2redis_publish(struct l2redis *r, const char *channel, const char *msg, size_t len)
{
    if (r == NULL || !r->cmd.connected || r->cmd.ac == NULL) {
        if (r != NULL)
            r->errors++;
        return;
    }
    const char *argv[3] = {"PUBLISH", channel, msg};
    size_t argl[3] = {7, strlen(channel), len};
    if (redisAsyncCommandArgv(r->cmd.ac, NULL, NULL, 3, argv, argl) != REDIS_OK)
        r->errors++;
}
