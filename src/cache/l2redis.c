/* Redis on our event loop, with hiredis used for what cannot go wrong on hostile bytes: the RESP
 * parser (redisReader), command formatting and the non-blocking socket of a redisContext. The
 * reply dispatch is ours, not hiredis's async layer: hiredis 0.14 async.c asserts on the server's
 * bytes (a reply nobody asked for, a malformed pub/sub message) and so let any port that speaks
 * RESP abort the worker. Here a reply without a request is a protocol error that drops the
 * connection, and everything a peer can make us hold is bounded: unanswered commands
 * (L2REDIS_MAX_PENDING), unsent bytes (L2REDIS_MAX_OBUF), one reply's bytes and objects, and the
 * bytes read per event (a peer that never stops sending cannot keep the loop thread). Commands
 * issued during an event batch are written together after it (pipelining); each lookup carries
 * its own loop timer. */
#include "cache/l2redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"

#define L2REDIS_LOG_INTERVAL_MS 10000
#define L2REDIS_MAX_BACKOFF_FACTOR 10
#define L2REDIS_CONNECT_TIMEOUT_MS 2000
#define L2REDIS_MAX_PENDING 4096 /* commands sent and not answered yet, per connection */
#define L2REDIS_MAX_OBUF (16u * 1024 * 1024)  /* bytes formatted and not written yet */
#define L2REDIS_MAX_REPLY (16u * 1024 * 1024) /* least cap on one reply's unparsed bytes */
#define L2REDIS_MAX_OBJECTS 64                /* objects in one reply (a lookup's have at most 5) */
#define L2REDIS_MAX_ELEMENTS 4096             /* elements of an l2redis_command answer, at most */
#define L2REDIS_READ_BUDGET (256u * 1024)     /* bytes read per event before yielding the loop */

struct l2conn {
    struct l2redis *r;
    redisContext *c; // NULL while down
    int fd;
    bool sub;                // the subscriber connection
    bool connected;          // the TCP (or unix) connect completed
    bool flush_queued;       // a deferred write is pending
    bool registered;         // fd in the loop
    struct loop_timer retry; // reconnect pause, or the connect deadline while connecting
    struct loop_timer more;  // reading resumes here when the read budget ran out
    uint64_t backoff_ms;
    /* replies expected, oldest first: a lookup, or NULL for a command whose reply is only checked
     */
    struct l2redis_req **pend;
    size_t pend_head, pend_count;
    /* the reply being parsed */
    redisReplyObjectFunctions fns; // hiredis's defaults, wrapped to count objects
    const redisReplyObjectFunctions *base;
    unsigned objects;
    bool too_many; // the reply went over L2REDIS_MAX_OBJECTS
};

struct l2redis {
    struct loop *loop;
    char host[256];
    int port;
    int db;
    bool is_unix;
    int (*resolve)(void *arg, char *ip, size_t iplen); // l2redis_conf.resolve
    void *resolve_arg;
    uint64_t timeout_ms, reconnect_ms;
    size_t max_reply;
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
    size_t max_n; // elements the answer may have (4 for a lookup, more for l2redis_command)
    l2redis_get_cb *cb;
    void *arg;
    struct loop_timer timer;
    bool answered; // cb called (or timed out)
    bool cancelled;
};

static void l2__connect(struct l2conn *k);
static void l2__read(struct l2conn *k);

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

/* ---- connection lifetime ---- */

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

/* Closes <k>'s connection (counted and logged as <what>: <detail> unless destroying), answers
 * every pending lookup with an error and schedules the reconnect. Safe from any callback of <k>:
 * nothing of the closed connection is used afterwards. */
static void l2__fail(struct l2conn *k, const char *what, const char *detail)
{
    struct l2redis *r = k->r;
    if (k->c == NULL)
        return;
    if (!r->destroying) {
        r->errors++;
        l2__complain(r, what, detail); /* before <detail> (maybe c->errstr) is freed */
    }
    if (k->registered) {
        loop_del_fd(r->loop, k->fd);
        k->registered = false;
    }
    loop_timer_stop(r->loop, &k->more);
    loop_timer_stop(r->loop, &k->retry);
    redisFree(k->c); /* closes the fd */
    k->c = NULL;
    k->fd = -1;
    k->connected = false;
    l2__schedule_retry(k);
    /* the callbacks may issue commands: they find the connection down */
    while (k->pend_count > 0) {
        struct l2redis_req *q = k->pend[k->pend_head];
        k->pend_head = (k->pend_head + 1) % L2REDIS_MAX_PENDING;
        k->pend_count--;
        if (q == NULL)
            continue;
        loop_timer_stop(r->loop, &q->timer);
        if (!q->answered && !q->cancelled) {
            q->answered = true;
            if (!r->destroying)
                r->errors++;
            q->cb(q->arg, L2REDIS_ERROR, NULL, NULL, 0);
        }
        free(q);
    }
}

static void l2__flush(struct l2conn *k)
{
    while (k->c != NULL && k->connected && sdslen(k->c->obuf) > 0) {
        size_t before = sdslen(k->c->obuf);
        int done = 0;
        if (redisBufferWrite(k->c, &done) == REDIS_ERR) {
            l2__fail(k, "connection lost", k->c->errstr);
            return;
        }
        if (done || sdslen(k->c->obuf) == before)
            return; /* all written, or the socket is full: the next write edge resumes */
    }
}

static void l2__flush_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2conn *k = arg;
    k->flush_queued = false;
    l2__flush(k);
}

/* Commands appended during this event batch go out in one write after it. */
static void l2__queue_flush(struct l2conn *k)
{
    if (k->connected && !k->flush_queued) {
        k->flush_queued = true;
        loop_defer(k->r->loop, l2__flush_cb, k);
    }
}

static void l2__on_connected(struct l2conn *k)
{
    struct l2redis *r = k->r;
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1)
        err = errno;
    if (err != 0) {
        l2__fail(k, "connect failed", strerror(err));
        return;
    }
    loop_timer_stop(r->loop, &k->retry); /* the connect deadline */
    if (k->backoff_ms > r->reconnect_ms)
        ag_log(AG_LOG_INFO, "cache l2: redis %s:%d connected", r->host, r->port);
    k->connected = true;
    k->backoff_ms = 0;
    l2__queue_flush(k); /* SELECT or SUBSCRIBE */
}

static void l2__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct l2conn *k = arg;
    if (k->c == NULL)
        return;
    if (!k->connected) {
        l2__on_connected(k);
        if (k->c == NULL)
            return;
    }
    if (events & (LOOP_WRITE | LOOP_ERROR))
        l2__flush(k);
    if (k->c != NULL && (events & (LOOP_READ | LOOP_ERROR)))
        l2__read(k);
}

static void l2__more_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2conn *k = arg;
    if (k->c != NULL)
        l2__read(k);
}

static void l2__retry_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2conn *k = arg;
    if (k->c != NULL) { /* still connecting */
        char why[64];
        snprintf(why, sizeof(why), "no answer in %d ms", L2REDIS_CONNECT_TIMEOUT_MS);
        l2__fail(k, "connect timed out", why);
        return;
    }
    l2__connect(k);
}

/* ---- replies ---- */

/* hiredis's object constructors, counted: a reply with more objects than any of ours is refused,
 * and an array header ("*2000000000") before the parser allocates for its elements. */
static bool l2__count_object(const redisReadTask *t, int elements)
{
    struct l2conn *k = t->privdata;
    /* the reply being parsed answers the oldest command: it may allow more */
    unsigned max = L2REDIS_MAX_OBJECTS;
    if (!k->sub && k->pend_count > 0 && k->pend[k->pend_head] != NULL &&
        k->pend[k->pend_head]->max_n + 1 > max)
        max = (unsigned)k->pend[k->pend_head]->max_n + 1;
    if (elements > (int)(max - k->objects) || ++k->objects > max) {
        k->too_many = true;
        return false;
    }
    return true;
}
static void *l2__mk_string(const redisReadTask *t, char *s, size_t n)
{
    struct l2conn *k = t->privdata;
    return l2__count_object(t, 0) ? k->base->createString(t, s, n) : NULL;
}
static void *l2__mk_array(const redisReadTask *t, int n)
{
    struct l2conn *k = t->privdata;
    return l2__count_object(t, n) ? k->base->createArray(t, n) : NULL;
}
static void *l2__mk_integer(const redisReadTask *t, long long v)
{
    struct l2conn *k = t->privdata;
    return l2__count_object(t, 0) ? k->base->createInteger(t, v) : NULL;
}
static void *l2__mk_nil(const redisReadTask *t)
{
    struct l2conn *k = t->privdata;
    return l2__count_object(t, 0) ? k->base->createNil(t) : NULL;
}

/* The answer to a command: MGET's (or a script's) array, one bulk string or nil per element; a
 * single bulk string, nil or integer is an answer of one element. */
static void l2__answer(struct l2redis *r, struct l2redis_req *q, const redisReply *rep)
{
    loop_timer_stop(r->loop, &q->timer);
    if (q->answered || q->cancelled)
        return;
    q->answered = true;
    bool array = rep->type == REDIS_REPLY_ARRAY;
    if ((array && rep->elements > q->max_n) || rep->type == REDIS_REPLY_ERROR ||
        (!array && q->max_n <= 4)) {
        r->errors++;
        if (rep->type == REDIS_REPLY_ERROR)
            l2__complain(r, "lookup failed", rep->str);
        q->cb(q->arg, L2REDIS_ERROR, NULL, NULL, 0);
        return;
    }
    const redisReply *const *els = array ? (const redisReply *const *)rep->element : &rep;
    size_t n = array ? rep->elements : 1;
    const char *vals_s[4] = {NULL};
    size_t lens_s[4] = {0};
    const char **vals = n <= 4 ? vals_s : xcalloc(n, sizeof(*vals));
    size_t *lens = n <= 4 ? lens_s : xcalloc(n, sizeof(*lens));
    char ints[4][24];
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (els[i]->type == REDIS_REPLY_STRING || els[i]->type == REDIS_REPLY_STATUS) {
            vals[i] = els[i]->str;
            lens[i] = (size_t)els[i]->len;
            any = any || i == 0;
        } else if (els[i]->type == REDIS_REPLY_INTEGER && i < 4) {
            lens[i] = (size_t)snprintf(ints[i], sizeof(ints[i]), "%lld", els[i]->integer);
            vals[i] = ints[i];
            any = any || i == 0;
        }
    }
    q->cb(q->arg, any ? L2REDIS_HIT : L2REDIS_MISS, vals, lens, n);
    if (vals != vals_s) {
        free(vals);
        free(lens);
    }
}

/* One complete reply. On the command connection it answers the oldest command; one that answers
 * nothing means the peer is not the Redis we talk to, and the connection is dropped. On the
 * subscriber connection only "message" pushes on our channel matter. */
static void l2__dispatch(struct l2conn *k, const redisReply *rep)
{
    struct l2redis *r = k->r;
    if (k->sub) {
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
            rep->element[0]->type != REDIS_REPLY_STRING || r->on_msg == NULL)
            return;
        if (strcmp(rep->element[0]->str, "message") == 0 &&
            rep->element[2]->type == REDIS_REPLY_STRING)
            r->on_msg(r->msg_arg, rep->element[2]->str, (size_t)rep->element[2]->len);
        else if (strcmp(rep->element[0]->str, "subscribe") == 0)
            r->on_msg(r->msg_arg, NULL, 0); /* (re)subscribed: earlier messages may be lost */
        return;
    }
    if (k->pend_count == 0) {
        l2__fail(k, "protocol error", "a reply to no command (is this port a Redis server?)");
        return;
    }
    struct l2redis_req *q = k->pend[k->pend_head];
    k->pend_head = (k->pend_head + 1) % L2REDIS_MAX_PENDING;
    k->pend_count--;
    if (q == NULL) {
        if (rep->type == REDIS_REPLY_ERROR) {
            r->errors++;
            l2__complain(r, "command failed", rep->str);
        }
        return;
    }
    l2__answer(r, q, rep);
    free(q);
}

/* Reads what the socket has, up to L2REDIS_READ_BUDGET (then resumes from a zero timer, after
 * the other connections of this loop had their turn), and dispatches every complete reply. */
static void l2__read(struct l2conn *k)
{
    struct l2redis *r = k->r;
    char buf[16384];
    size_t budget = L2REDIS_READ_BUDGET;
    while (k->c != NULL) {
        if (budget == 0) {
            loop_timer_start(r->loop, &k->more, 0);
            return;
        }
        ssize_t n = read(k->fd, buf, sizeof(buf));
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            l2__fail(k, "connection lost", n == 0 ? "closed by the server" : strerror(errno));
            return;
        }
        budget -= (size_t)n < budget ? (size_t)n : budget;
        redisReader *rd = k->c->reader;
        if (redisReaderFeed(rd, buf, (size_t)n) != REDIS_OK) {
            l2__fail(k, "connection lost", "out of memory");
            return;
        }
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
                l2__fail(k, "protocol error",
                         k->too_many ? "a reply with too many elements" : rd->errstr);
                return;
            }
            if (reply == NULL)
                break;
            k->objects = 0;
            l2__dispatch(k, reply);
            freeReplyObject(reply);
            if (k->c == NULL)
                return;
        }
        if (rd->len - rd->pos > r->max_reply) {
            char why[96];
            snprintf(why, sizeof(why), "a reply over %zu bytes", r->max_reply);
            l2__fail(k, "protocol error", why);
            return;
        }
    }
}

static void l2__connect(struct l2conn *k)
{
    struct l2redis *r = k->r;
    if (r->destroying || k->c != NULL)
        return;
    const char *host = r->host;
    char ip[64];
    if (!r->is_unix && r->resolve != NULL) {
        if (r->resolve(r->resolve_arg, ip, sizeof(ip)) != 0) {
            r->errors++;
            l2__complain(r, "connect failed", "no address for the host yet (DNS)");
            l2__schedule_retry(k);
            return;
        }
        host = ip;
    }
    redisContext *c =
        r->is_unix ? redisConnectUnixNonBlock(host) : redisConnectNonBlock(host, r->port);
    if (c == NULL || c->err) {
        r->errors++;
        l2__complain(r, "connect failed", c ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        l2__schedule_retry(k);
        return;
    }
    k->c = c;
    k->fd = c->fd;
    k->connected = false;
    k->base = c->reader->fn;
    k->fns = *k->base;
    k->fns.createString = l2__mk_string;
    k->fns.createArray = l2__mk_array;
    k->fns.createInteger = l2__mk_integer;
    k->fns.createNil = l2__mk_nil;
    c->reader->fn = &k->fns;
    c->reader->privdata = k;
    k->objects = 0;
    k->too_many = false;
    if (loop_add_fd(r->loop, k->fd, LOOP_READ | LOOP_WRITE, l2__on_event, k) == -1) {
        l2__fail(k, "connect failed", strerror(errno));
        return;
    }
    k->registered = true;
    loop_timer_start(r->loop, &k->retry, L2REDIS_CONNECT_TIMEOUT_MS);
    if (k->sub) {
        const char *argv[2] = {"SUBSCRIBE", r->channel};
        size_t argl[2] = {9, strlen(r->channel)};
        redisAppendCommandArgv(c, 2, argv, argl);
    } else if (r->db != 0) {
        redisAppendCommand(c, "SELECT %d", r->db);
        k->pend[(k->pend_head + k->pend_count++) % L2REDIS_MAX_PENDING] = NULL;
    }
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
    r->resolve = conf->resolve;
    r->resolve_arg = conf->resolve_arg;
    r->loop = loop;
    r->timeout_ms = conf->timeout_ms ? conf->timeout_ms : 50;
    r->reconnect_ms = conf->reconnect_ms ? conf->reconnect_ms : 1000;
    r->max_reply = conf->max_reply > L2REDIS_MAX_REPLY ? conf->max_reply : L2REDIS_MAX_REPLY;
    r->channel = xstrdup(channel ? channel : "apigate:purge");
    r->on_msg = on_msg;
    r->msg_arg = msg_arg;
    struct l2conn *ks[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++) {
        ks[i]->r = r;
        ks[i]->fd = -1;
        ks[i]->sub = i == 1;
        loop_timer_init(&ks[i]->retry, l2__retry_cb, ks[i]);
        loop_timer_init(&ks[i]->more, l2__more_cb, ks[i]);
    }
    r->cmd.pend = xcalloc(L2REDIS_MAX_PENDING, sizeof(*r->cmd.pend));
    l2__connect(&r->cmd);
    if (on_msg != NULL)
        l2__connect(&r->sub);
    return r;
}

static void l2__free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2redis *r = arg;
    free(r->cmd.pend);
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
        l2__fail(ks[i], NULL, NULL); /* pending lookups are answered with an error */
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

/* Room for one more command on the command connection: connected, and neither the unanswered
 * commands nor the unsent bytes at their bound (a stopped server must not grow us). */
static bool l2__room(struct l2redis *r)
{
    struct l2conn *k = &r->cmd;
    if (k->c == NULL || !k->connected)
        return false;
    if (k->pend_count >= L2REDIS_MAX_PENDING || sdslen(k->c->obuf) >= L2REDIS_MAX_OBUF) {
        l2__complain(r, "not keeping up", "commands dropped until it answers");
        return false;
    }
    return true;
}

/* Appends a command to the command connection; its reply goes to <q> (NULL: checked only). */
static int l2__send(struct l2redis *r, int argc, const char **argv, const size_t *argl,
                    struct l2redis_req *q)
{
    struct l2conn *k = &r->cmd;
    if (redisAppendCommandArgv(k->c, argc, argv, argl) != REDIS_OK)
        return -1;
    k->pend[(k->pend_head + k->pend_count++) % L2REDIS_MAX_PENDING] = q;
    l2__queue_flush(k);
    return 0;
}

static struct l2redis_req *l2__request(struct l2redis *r, int argc, const char **argv,
                                       const size_t *argl, size_t max_n, l2redis_get_cb *cb,
                                       void *arg)
{
    if (!l2__room(r)) {
        r->errors++;
        return NULL;
    }
    struct l2redis_req *q = xcalloc(1, sizeof(*q));
    q->r = r;
    q->max_n = max_n;
    q->cb = cb;
    q->arg = arg;
    loop_timer_init(&q->timer, l2__on_timeout, q);
    if (l2__send(r, argc, argv, argl, q) == -1) {
        r->errors++;
        free(q);
        return NULL;
    }
    loop_timer_start(r->loop, &q->timer, r->timeout_ms);
    return q;
}

struct l2redis_req *l2redis_mget(struct l2redis *r, const char *const *keys, const size_t *klens,
                                 size_t n, l2redis_get_cb *cb, void *arg)
{
    if (r == NULL || n == 0 || n > 4) {
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
    return l2__request(r, (int)n + 1, argv, argl, 4, cb, arg);
}

struct l2redis_req *l2redis_command(struct l2redis *r, int argc, const char **argv,
                                    const size_t *argl, size_t max_n, l2redis_get_cb *cb, void *arg)
{
    if (r == NULL || argc < 1 || max_n > L2REDIS_MAX_ELEMENTS)
        return NULL;
    return l2__request(r, argc, argv, argl, max_n < 5 ? 5 : max_n, cb, arg);
}

int l2redis_send(struct l2redis *r, int argc, const char **argv, const size_t *argl)
{
    if (r == NULL || argc < 1)
        return -1;
    if (!l2__room(r) || l2__send(r, argc, argv, argl, NULL) == -1) {
        r->errors++;
        return -1;
    }
    return 0;
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
    if (r == NULL || !r->cmd.connected || ttl_ms == 0)
        return;
    if (!l2__room(r)) {
        r->errors++;
        return;
    }
    char ttl[32];
    int tl = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    const char *argv[5] = {"SET", key, val, "PX", ttl};
    size_t argl[5] = {3, klen, vlen, 2, (size_t)tl};
    if (l2__send(r, 5, argv, argl, NULL) == -1)
        r->errors++;
}

void l2redis_publish(struct l2redis *r, const char *channel, const char *msg, size_t len)
{
    if (r == NULL || !l2__room(r)) {
        if (r != NULL)
            r->errors++;
        return;
    }
    const char *argv[3] = {"PUBLISH", channel, msg};
    size_t argl[3] = {7, strlen(channel), len};
    if (l2__send(r, 3, argv, argl, NULL) == -1)
        r->errors++;
}

/* ---- blocking, for a worker's start ---- */

/* One command and its reply on a blocking context; NULL with <err> set on any failure. */
static redisReply *l2__blocking(redisContext *c, int argc, const char **argv, const size_t *argl,
                                char *err, size_t errlen)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, argl);
    if (rep == NULL) {
        snprintf(err, errlen, "%s: %s", argv[0], c->errstr[0] ? c->errstr : "no reply");
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %.*s", argv[0], (int)(rep->len < 200 ? rep->len : 200),
                 rep->str ? rep->str : "");
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

long l2redis_agree(const struct l2redis_conf *conf, const char *key, const char *proposal,
                   size_t plen, char *out, size_t outlen, size_t minlen, uint64_t timeout_ms,
                   char *err, size_t errlen)
{
    char host[256];
    int port, db;
    if (l2redis_parse_url(conf->url, host, sizeof(host), &port, &db, err, errlen) == -1)
        return -1;
    char ip[64];
    if (port != -1 && conf->resolve != NULL) {
        if (conf->resolve(conf->resolve_arg, ip, sizeof(ip)) != 0) {
            snprintf(err, errlen, "no address for %s yet (DNS)", host);
            return -1;
        }
        snprintf(host, sizeof(host), "%s", ip);
    }
    struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                         .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
    redisContext *c = port == -1 ? redisConnectUnixWithTimeout(host, tv)
                                 : redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        snprintf(err, errlen, "connect: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        return -1;
    }
    long n = -1;
    redisReply *rep = NULL;
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, errlen, "cannot set a timeout");
        goto out;
    }
    char dbs[16];
    snprintf(dbs, sizeof(dbs), "%d", db);
    const char *sel[] = {"SELECT", dbs};
    size_t sell[] = {6, strlen(dbs)};
    if (db != 0) {
        if ((rep = l2__blocking(c, 2, sel, sell, err, errlen)) == NULL)
            goto out;
        freeReplyObject(rep);
    }
    const char *set[] = {"SET", key, proposal, "NX"};
    size_t setl[] = {3, strlen(key), plen, 2};
    if ((rep = l2__blocking(c, 4, set, setl, err, errlen)) == NULL)
        goto out;
    freeReplyObject(rep); /* OK (ours is set) or nil (another's is): GET tells which */
    const char *get[] = {"GET", key};
    size_t getl[] = {3, strlen(key)};
    if ((rep = l2__blocking(c, 2, get, getl, err, errlen)) == NULL)
        goto out;
    if (rep->type != REDIS_REPLY_STRING || rep->len < minlen || rep->len > outlen) {
        snprintf(err, errlen, "GET %s: not a value of %zu to %zu bytes", key, minlen, outlen);
    } else {
        memcpy(out, rep->str, rep->len);
        n = (long)rep->len;
    }
    freeReplyObject(rep);
out:
    redisFree(c);
    return n;
}
