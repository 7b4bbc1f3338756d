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
/* Redis Cluster */
#define L2REDIS_MAX_NODES 64         /* nodes one client talks to (seeds, primaries, redirects) */
#define L2REDIS_MAX_REDIRECTS 3      /* MOVED/ASK followed per command, then it fails */
#define L2REDIS_TOPO_OBJECTS 65536   /* objects in a CLUSTER SLOTS reply, at most */
#define L2REDIS_TOPO_REFRESH_MS 5000 /* the slot map is read again this often */
#define L2REDIS_TOPO_SOON_MS 100     /* ... and this soon after a redirect or a lost node */
#define L2REDIS_TOPO_RETRY_MS 100    /* no node connected yet: asked again after this */
/* Sentinel */
#define L2REDIS_SENTINEL_POLL_MS 1000 /* the primary's address is asked for this often */

struct l2node;

struct l2conn {
    struct l2redis *r;
    struct l2node *node; // the node connected to (the subscriber's changes in a cluster)
    redisContext *c;     // NULL while down
    int fd;
    bool sub;                // the subscriber connection
    bool connected;          // the TCP (or unix) connect completed
    bool flush_queued;       // a deferred write is pending
    bool registered;         // fd in the loop
    struct loop_timer retry; // reconnect pause, or the connect deadline while connecting
    struct loop_timer more;  // reading resumes here when the read budget ran out
    uint64_t backoff_ms;
    /* replies expected, oldest first: a request, or NULL for a command whose reply is only
     * checked (SELECT, ASKING) */
    struct l2redis_req **pend;
    size_t pend_head, pend_count;
    /* the reply being parsed */
    redisReplyObjectFunctions fns; // hiredis's defaults, wrapped to count objects
    const redisReplyObjectFunctions *base;
    unsigned objects;
    bool too_many; // the reply went over its object limit
};

/* A Redis server: the only one, or a cluster node. */
struct l2node {
    char host[256]; // address (or unix path, or the URL's host name)
    int port;       // -1: unix socket; 0: not known yet (a sentinel-managed primary)
    bool sentinel;  // a sentinel, asked where the primary is
    struct l2conn cmd;
    uint64_t errors; // counted against this node (l2__error)
};

struct l2redis {
    struct loop *loop;
    bool cluster;
    int db;
    int (*resolve)(void *arg, char *ip, size_t iplen); // l2redis_conf.resolve (single node)
    void *resolve_arg;
    uint64_t timeout_ms, reconnect_ms;
    size_t max_reply;
    struct l2node *nodes[L2REDIS_MAX_NODES]; // [0] the single node, or the first seed
    size_t nnodes;
    struct l2conn sub;
    size_t sub_next; // cluster: the node the subscriber tries next
    char *channel;
    l2redis_msg_cb *on_msg;
    void *msg_arg;
    uint64_t errors, redirects, failovers;
    struct log_limit limit, topo_limit;
    bool destroying;
    /* cluster: slot -> node index + 1 (0: nobody known), refreshed from CLUSTER SLOTS */
    uint8_t *slots;
    uint8_t *slots_read; // the map as the last CLUSTER SLOTS gave it (MOVED leaves it alone)
    size_t slots_covered;
    struct loop_timer topo;
    bool topo_inflight;
    uint64_t topo_ms; // when the slot map was last read
    size_t topo_next; // the node asked next
    /* sentinel: nodes[0] is the primary they name; the topo timer asks them */
    bool sentinel;
    char master[129];
    struct l2node *sentinels[L2REDIS_MAX_SEEDS];
    size_t nsentinels;
    struct l2conn ssub; // subscribed to +switch-master on one sentinel
    size_t ssub_next;
};

struct l2redis_req {
    struct l2redis *r;
    size_t max_n;         // elements the answer may have (4 for a lookup, more for a command)
    unsigned max_objects; // objects its reply may have
    l2redis_get_cb *cb;   // NULL: the reply is only checked
    void (*raw)(struct l2redis *r, struct l2node *from, const redisReply *rep); // internal
    struct l2node *to; // where it was sent last
    void *arg;
    struct loop_timer timer;
    bool answered; // cb called (or timed out)
    bool cancelled;
    char *cmd; // cluster: the formatted command, sent again on a redirect
    size_t cmdlen;
    unsigned redirects;
};

static void l2__connect(struct l2conn *k);
static void l2__read(struct l2conn *k);
static void l2__topo_soon(struct l2redis *r);
static void l2__ask_sentinel(struct l2redis *r);

/* ---- parsing (pure, unit-tested) ---- */

static int l2__parse_hostport(const char *s, size_t n, char *host, size_t hostlen, int *port)
{
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (colon == NULL || colon == s || (size_t)(colon - s) >= hostlen)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [::1]:7000 */
        h++;
        hl -= 2;
    }
    long v = 0;
    const char *p = colon + 1;
    if (p == s + n)
        return -1;
    for (; p < s + n; p++) {
        if (*p < '0' || *p > '9' || (v = v * 10 + (*p - '0')) > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

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
    if (strncmp(url, L2REDIS_CLUSTER_SCHEME, strlen(L2REDIS_CLUSTER_SCHEME)) == 0) {
        /* the first seed; l2redis_parse_seeds reads them all */
        const char *p = url + strlen(L2REDIS_CLUSTER_SCHEME);
        size_t n = strcspn(p, ",");
        if (l2__parse_hostport(p, n, host, hostlen, port) == -1) {
            snprintf(err, errlen, "'%.*s' is not host:port", (int)(n < 200 ? n : 200), p);
            return -1;
        }
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

/* "host:port,host:port" up to the end of <p> or its first '/'. */
static int l2__parse_list(const char *p, char (*hosts)[64], int *ports, size_t max, char *err,
                          size_t errlen)
{
    int n = 0;
    while (*p != '\0' && *p != '/') {
        size_t len = strcspn(p, ",/");
        if ((size_t)n == max) {
            snprintf(err, errlen, "more than %zu seeds", max);
            return -1;
        }
        if (l2__parse_hostport(p, len, hosts[n], 64, &ports[n]) == -1) {
            snprintf(err, errlen, "'%.*s' is not host:port", (int)(len < 200 ? len : 200), p);
            return -1;
        }
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0) {
        snprintf(err, errlen, "no node given");
        return -1;
    }
    return n;
}

int l2redis_parse_seeds(const char *url, char (*hosts)[64], int *ports, size_t max, char *err,
                        size_t errlen)
{
    size_t sl = strlen(L2REDIS_CLUSTER_SCHEME);
    if (strncmp(url, L2REDIS_CLUSTER_SCHEME, sl) != 0) {
        snprintf(err, errlen, "'%s' is not a cluster URL", url);
        return -1;
    }
    return l2__parse_list(url + sl, hosts, ports, max, err, errlen);
}

int l2redis_parse_sentinels(const char *url, char (*hosts)[64], int *ports, size_t max,
                            char *master, size_t masterlen, char *err, size_t errlen)
{
    size_t sl = strlen(L2REDIS_SENTINEL_SCHEME);
    if (strncmp(url, L2REDIS_SENTINEL_SCHEME, sl) != 0) {
        snprintf(err, errlen, "'%s' is not a sentinel URL", url);
        return -1;
    }
    int n = l2__parse_list(url + sl, hosts, ports, max, err, errlen);
    const char *slash = strchr(url + sl, '/');
    if (n > 0 && (slash == NULL || slash[1] == '\0' || strlen(slash + 1) >= masterlen ||
                  strpbrk(slash + 1, "/, ") != NULL)) {
        snprintf(err, errlen, "'%s': no master name after the sentinels", url);
        return -1;
    }
    if (n > 0)
        snprintf(master, masterlen, "%s", slash + 1);
    return n;
}

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the Redis Cluster spec. */
uint16_t l2redis_crc16(const char *s, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)s[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned l2redis_slot(const char *key, size_t n)
{
    const char *open = memchr(key, '{', n);
    if (open != NULL) {
        size_t rest = n - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1) /* "{}" hashes the whole key */
            return l2redis_crc16(open + 1, (size_t)(close - open - 1)) & (L2REDIS_SLOTS - 1);
    }
    return l2redis_crc16(key, n) & (L2REDIS_SLOTS - 1);
}

int l2redis_parse_redirect(const char *s, size_t n, unsigned *slot, char *host, size_t hostlen,
                           int *port)
{
    int kind;
    size_t skip;
    if (n > 6 && memcmp(s, "MOVED ", 6) == 0) {
        kind = L2REDIS_MOVED;
        skip = 6;
    } else if (n > 4 && memcmp(s, "ASK ", 4) == 0) {
        kind = L2REDIS_ASK;
        skip = 4;
    } else {
        return 0;
    }
    const char *p = s + skip, *end = s + n;
    unsigned v = 0;
    const char *d = p;
    while (p < end && *p >= '0' && *p <= '9' && v < L2REDIS_SLOTS)
        v = v * 10 + (unsigned)(*p++ - '0');
    if (p == d || p >= end || *p != ' ' || v >= L2REDIS_SLOTS)
        return -1;
    p++;
    if (l2__parse_hostport(p, (size_t)(end - p), host, hostlen, port) == -1)
        return -1;
    *slot = v;
    return kind;
}

static void l2__complain(struct l2redis *r, const struct l2node *node, const char *what,
                         const char *detail)
{
    uint64_t suppressed = 0;
    if (log_limit_ok(&r->limit, loop_now_ms(r->loop), L2REDIS_LOG_INTERVAL_MS, &suppressed))
        ag_log(AG_LOG_WARN, "cache l2: redis %s:%d %s: %s (%llu similar messages suppressed)",
               node ? node->host : "cluster", node ? node->port : 0, what, detail ? detail : "",
               (unsigned long long)suppressed);
}

/* An error, counted for the client and against <node> when known. */
static void l2__error(struct l2redis *r, struct l2node *node)
{
    r->errors++;
    if (node != NULL)
        node->errors++;
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

/* A subscriber whose node failed tries the next: any cluster node, or the next sentinel. */
static void l2__next_node(struct l2conn *k)
{
    struct l2redis *r = k->r;
    if (k == &r->ssub && r->nsentinels > 0)
        k->node = r->sentinels[r->ssub_next++ % r->nsentinels];
    else if (k->sub && r->cluster && r->nnodes > 0)
        k->node = r->nodes[r->sub_next++ % r->nnodes];
}

static void l2__req_free(struct l2redis_req *q)
{
    if (q->cmd != NULL)
        redisFreeCommand(q->cmd);
    free(q);
}

/* Closes <k>'s connection (counted and logged as <what>: <detail> unless destroying), answers
 * every pending request with an error and schedules the reconnect. Safe from any callback of <k>:
 * nothing of the closed connection is used afterwards. */
static void l2__fail(struct l2conn *k, const char *what, const char *detail)
{
    struct l2redis *r = k->r;
    if (k->c == NULL)
        return;
    if (!r->destroying) {
        l2__error(r, k->node);
        l2__complain(r, k->node, what, detail); /* before <detail> (maybe c->errstr) is freed */
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
    l2__next_node(k); /* a subscriber moves on, in case its node died */
    l2__schedule_retry(k);
    if (!r->destroying && ((r->cluster && !k->sub) || (r->sentinel && k == &r->nodes[0]->cmd)))
        l2__topo_soon(r); /* a lost primary: its replica may take over */
    /* the callbacks may issue commands: they find the connection down */
    while (k->pend_count > 0) {
        struct l2redis_req *q = k->pend[k->pend_head];
        k->pend_head = (k->pend_head + 1) % L2REDIS_MAX_PENDING;
        k->pend_count--;
        if (q == NULL)
            continue;
        loop_timer_stop(r->loop, &q->timer);
        if (q->raw != NULL) {
            q->raw(r, k->node, NULL);
        } else if (q->cb != NULL && !q->answered && !q->cancelled) {
            q->answered = true;
            if (!r->destroying)
                l2__error(r, k->node);
            q->cb(q->arg, L2REDIS_ERROR, NULL, NULL, 0);
        }
        l2__req_free(q);
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
        ag_log(AG_LOG_INFO, "cache l2: redis %s:%d connected", k->node->host, k->node->port);
    k->connected = true;
    k->backoff_ms = 0;
    l2__queue_flush(k); /* SELECT or SUBSCRIBE, and what was queued meanwhile */
    if (r->cluster && !k->sub && r->slots_covered == 0)
        loop_timer_start(r->loop, &r->topo, 0); /* the first slot map */
    if (r->sentinel && k->node->sentinel && !k->sub && r->nodes[0]->port == 0)
        loop_timer_start(r->loop, &r->topo, 0); /* where is the primary? */
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

/* The most objects the reply being parsed may have: its request's limit. */
static unsigned l2__object_limit(const struct l2conn *k)
{
    if (!k->sub && k->pend_count > 0 && k->pend[k->pend_head] != NULL)
        return k->pend[k->pend_head]->max_objects;
    return L2REDIS_MAX_OBJECTS;
}

/* hiredis's object constructors, counted: a reply with more objects than its request allows is
 * refused, and an array header ("*2000000000") before the parser allocates for its elements. */
static bool l2__count_object(const redisReadTask *t, int elements)
{
    struct l2conn *k = t->privdata;
    unsigned max = l2__object_limit(k);
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
 * single bulk string, nil or integer is an answer of one element (not for a lookup). */
static void l2__answer(struct l2redis *r, struct l2redis_req *q, const redisReply *rep)
{
    loop_timer_stop(r->loop, &q->timer);
    if (q->cb == NULL) { /* only checked */
        if (rep->type == REDIS_REPLY_ERROR) {
            l2__error(r, q->to);
            l2__complain(r, q->to, "command failed", rep->str);
        }
        return;
    }
    if (q->answered || q->cancelled)
        return;
    q->answered = true;
    bool array = rep->type == REDIS_REPLY_ARRAY;
    if ((array && rep->elements > q->max_n) || rep->type == REDIS_REPLY_ERROR ||
        (!array && q->max_n <= 4)) {
        l2__error(r, q->to);
        if (rep->type == REDIS_REPLY_ERROR)
            l2__complain(r, q->to, "lookup failed", rep->str);
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

/* Room for one more command on <node>: connected, and neither the unanswered commands nor the
 * unsent bytes at their bound (a stopped server must not grow us). */
static bool l2__room(struct l2redis *r, struct l2node *node)
{
    struct l2conn *k = node != NULL ? &node->cmd : NULL;
    if (k == NULL || k->c == NULL || !k->connected)
        return false;
    if (k->pend_count + 1 >= L2REDIS_MAX_PENDING || sdslen(k->c->obuf) >= L2REDIS_MAX_OBUF) {
        l2__complain(r, node, "not keeping up", "commands dropped until it answers");
        return false;
    }
    return true;
}

static void l2__push(struct l2conn *k, struct l2redis_req *q)
{
    k->pend[(k->pend_head + k->pend_count++) % L2REDIS_MAX_PENDING] = q;
    l2__queue_flush(k);
}

static struct l2node *l2__node_find(struct l2redis *r, const char *host, int port)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->port == port && strcmp(r->nodes[i]->host, host) == 0)
            return r->nodes[i];
    return NULL;
}

static void l2__conn_init(struct l2redis *r, struct l2conn *k, struct l2node *node, bool sub);

/* The node at <host>:<port>, added (and connected) when new; NULL when the table is full. */
static struct l2node *l2__node(struct l2redis *r, const char *host, int port)
{
    struct l2node *n = l2__node_find(r, host, port);
    if (n != NULL || r->nnodes == L2REDIS_MAX_NODES)
        return n;
    n = xcalloc(1, sizeof(*n));
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    l2__conn_init(r, &n->cmd, n, false);
    r->nodes[r->nnodes++] = n;
    l2__connect(&n->cmd);
    return n;
}

static size_t l2__node_index(const struct l2redis *r, const struct l2node *n)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i] == n)
            return i;
    return 0;
}

/* A redirect for <q> (sent to <from>): MOVED updates the slot map and asks for a new one soon;
 * both send the command again to the named node (ASK after ASKING), at most
 * L2REDIS_MAX_REDIRECTS times. True when <q> went on (it is then not <from>'s any more). */
static bool l2__redirect(struct l2redis *r, struct l2node *from, struct l2redis_req *q,
                         const redisReply *rep)
{
    unsigned slot;
    char host[64];
    int port;
    int kind = l2redis_parse_redirect(rep->str, (size_t)rep->len, &slot, host, sizeof(host), &port);
    if (kind <= 0 || q->cmd == NULL)
        return false;
    r->redirects++;
    struct l2node *to = l2__node(r, host, port);
    if (kind == L2REDIS_MOVED) {
        if (to != NULL)
            r->slots[slot] = (uint8_t)(l2__node_index(r, to) + 1);
        l2__topo_soon(r);
    }
    if (++q->redirects > L2REDIS_MAX_REDIRECTS) {
        uint64_t suppressed = 0;
        if (log_limit_ok(&r->topo_limit, loop_now_ms(r->loop), L2REDIS_LOG_INTERVAL_MS,
                         &suppressed))
            ag_log(AG_LOG_WARN,
                   "cache l2: redis %s:%d: a command was redirected %d times (last "
                   "to %s:%d): given up, counted as an error (%llu similar "
                   "messages suppressed)",
                   from->host, from->port, L2REDIS_MAX_REDIRECTS, host, port,
                   (unsigned long long)suppressed);
        return false;
    }
    if (to == NULL || !l2__room(r, to))
        return false;
    if (kind == L2REDIS_ASK) {
        redisAppendCommand(to->cmd.c, "ASKING");
        l2__push(&to->cmd, NULL);
    }
    if (redisAppendFormattedCommand(to->cmd.c, q->cmd, q->cmdlen) != REDIS_OK)
        return false;
    q->to = to;
    l2__push(&to->cmd, q);
    return true;
}

/* One complete reply. On a command connection it answers the oldest command; one that answers
 * nothing means the peer is not the Redis we talk to, and the connection is dropped. On the
 * subscriber connection only "message" pushes on our channel matter. */
static void l2__dispatch(struct l2conn *k, const redisReply *rep)
{
    struct l2redis *r = k->r;
    if (k == &r->ssub) {
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(rep->element[0]->str, "message") == 0) {
            ag_log(AG_LOG_INFO, "cache l2: sentinel %s:%d: +switch-master %s", k->node->host,
                   k->node->port,
                   rep->element[2]->type == REDIS_REPLY_STRING ? rep->element[2]->str : "");
            r->topo_ms = 0;
            l2__topo_soon(r);
        }
        return;
    }
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
            l2__error(r, k->node);
            l2__complain(r, k->node, "command failed", rep->str);
        }
        return;
    }
    if (q->raw != NULL) {
        q->raw(r, k->node, rep);
        l2__req_free(q);
        return;
    }
    if (r->sentinel && rep->type == REDIS_REPLY_ERROR && rep->len >= 8 &&
        memcmp(rep->str, "READONLY", 8) == 0)
        l2__topo_soon(r); /* a demoted primary: ask the sentinels again */
    if (r->cluster && rep->type == REDIS_REPLY_ERROR && !q->cancelled &&
        !(q->answered && q->cb != NULL) && l2__redirect(r, k->node, q, rep))
        return;
    l2__answer(r, q, rep);
    l2__req_free(q);
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
    if (r->destroying || k->c != NULL || k->node == NULL || k->node->port == 0)
        return; /* port 0: the sentinels have not named the primary yet */
    const char *host = k->node->host;
    bool is_unix = k->node->port == -1;
    char ip[64];
    if (!is_unix && !r->cluster && !r->sentinel && r->resolve != NULL) {
        if (r->resolve(r->resolve_arg, ip, sizeof(ip)) != 0) {
            l2__error(r, k->node);
            l2__complain(r, k->node, "connect failed", "no address for the host yet (DNS)");
            l2__schedule_retry(k);
            return;
        }
        host = ip;
    }
    redisContext *c =
        is_unix ? redisConnectUnixNonBlock(host) : redisConnectNonBlock(host, k->node->port);
    if (c == NULL || c->err) {
        l2__error(r, k->node);
        l2__complain(r, k->node, "connect failed", c ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        l2__next_node(k);
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
        const char *chan = k == &r->ssub ? "+switch-master" : r->channel;
        const char *argv[2] = {"SUBSCRIBE", chan};
        size_t argl[2] = {9, strlen(chan)};
        redisAppendCommandArgv(c, 2, argv, argl);
    } else if (r->db != 0 && !k->node->sentinel) {
        redisAppendCommand(c, "SELECT %d", r->db);
        k->pend[(k->pend_head + k->pend_count++) % L2REDIS_MAX_PENDING] = NULL;
    }
}

static void l2__conn_init(struct l2redis *r, struct l2conn *k, struct l2node *node, bool sub)
{
    k->r = r;
    k->node = node;
    k->fd = -1;
    k->sub = sub;
    loop_timer_init(&k->retry, l2__retry_cb, k);
    loop_timer_init(&k->more, l2__more_cb, k);
    if (!sub)
        k->pend = xcalloc(L2REDIS_MAX_PENDING, sizeof(*k->pend));
}

/* ---- cluster topology ---- */

/* The answer to CLUSTER SLOTS from <from>: [[start, end, [ip, port, ...], replicas...], ...].
 * The slot map is replaced by it (a slot no range names maps to nobody: its lookups fail fast). */
static void l2__on_slots(struct l2redis *r, struct l2node *from, const redisReply *rep)
{
    r->topo_inflight = false;
    if (r->destroying)
        return;
    uint64_t now = loop_now_ms(r->loop);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        if (rep != NULL) {
            l2__error(r, from);
            l2__complain(r, from, "CLUSTER SLOTS failed",
                         rep->type == REDIS_REPLY_ERROR ? rep->str : "not an array");
        }
        loop_timer_start(r->loop, &r->topo, L2REDIS_TOPO_RETRY_MS * 5);
        return;
    }
    uint8_t *map = xcalloc(L2REDIS_SLOTS, 1);
    size_t covered = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            continue;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        const redisReply *pn = e->element[2];
        if (lo < 0 || hi >= L2REDIS_SLOTS || lo > hi ||
            pn->element[0]->type != REDIS_REPLY_STRING ||
            pn->element[1]->type != REDIS_REPLY_INTEGER || pn->element[1]->integer <= 0 ||
            pn->element[1]->integer > 65535)
            continue;
        /* an unknown endpoint ("" or "?") is the address we asked */
        const char *ip = pn->element[0]->str;
        if (ip[0] == '\0' || strcmp(ip, "?") == 0)
            ip = from->host;
        struct l2node *n = l2__node(r, ip, (int)pn->element[1]->integer);
        if (n == NULL)
            continue;
        uint8_t idx = (uint8_t)(l2__node_index(r, n) + 1);
        for (long long s = lo; s <= hi; s++) {
            covered += map[s] == 0;
            map[s] = idx;
        }
    }
    bool changed = memcmp(map, r->slots, L2REDIS_SLOTS) != 0;
    /* a served slot that another node serves now: its primary failed over (or was resharded) */
    for (size_t s = 0; s < L2REDIS_SLOTS; s++)
        if (r->slots_read[s] != 0 && map[s] != 0 && map[s] != r->slots_read[s]) {
            r->failovers++;
            break;
        }
    memcpy(r->slots, map, L2REDIS_SLOTS);
    memcpy(r->slots_read, map, L2REDIS_SLOTS);
    free(map);
    if (changed)
        ag_log(covered == L2REDIS_SLOTS ? AG_LOG_INFO : AG_LOG_WARN,
               "cache l2: redis cluster slot map from %s:%d: %zu of %d slots served, %zu ranges",
               from->host, from->port, covered, L2REDIS_SLOTS, rep->elements);
    r->slots_covered = covered;
    r->topo_ms = now;
    loop_timer_start(r->loop, &r->topo, L2REDIS_TOPO_REFRESH_MS);
}

/* Asks a connected node (each in turn) for the slot map. */
static void l2__topo_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2redis *r = arg;
    if (r->destroying || r->topo_inflight)
        return;
    if (r->sentinel) {
        l2__ask_sentinel(r);
        return;
    }
    for (size_t i = 0; i < r->nnodes; i++) {
        struct l2node *n = r->nodes[(r->topo_next + i) % r->nnodes];
        if (!l2__room(r, n))
            continue;
        r->topo_next = (r->topo_next + i + 1) % r->nnodes;
        struct l2redis_req *q = xcalloc(1, sizeof(*q));
        q->r = r;
        q->to = n;
        q->max_objects = L2REDIS_TOPO_OBJECTS;
        q->raw = l2__on_slots;
        loop_timer_init(&q->timer, NULL, NULL);
        redisAppendCommand(n->cmd.c, "CLUSTER SLOTS");
        l2__push(&n->cmd, q);
        r->topo_inflight = true;
        return;
    }
    loop_timer_start(r->loop, &r->topo, L2REDIS_TOPO_RETRY_MS); /* nobody connected yet */
}

/* The slot map is read again soon (at most every L2REDIS_TOPO_SOON_MS). */
static void l2__topo_soon(struct l2redis *r)
{
    if ((!r->cluster && !r->sentinel) || r->destroying || r->topo_inflight)
        return;
    uint64_t now = loop_now_ms(r->loop);
    uint64_t at = r->topo_ms + L2REDIS_TOPO_SOON_MS;
    loop_timer_start(r->loop, &r->topo, at > now ? at - now : 0);
}

/* ---- sentinel ---- */

/* Points <k> (a connection to the primary) at its new address: dropped and connected again now,
 * not after a backoff. */
static void l2__repoint(struct l2conn *k)
{
    struct l2redis *r = k->r;
    if (k->c != NULL)
        l2__fail(k, "primary changed", "reconnecting to the new primary");
    loop_timer_stop(r->loop, &k->retry);
    k->backoff_ms = 0;
    k->node = r->nodes[0];
    l2__connect(k);
}

/* The answer to SENTINEL get-master-addr-by-name from <from>: [ip, port], or nil when that
 * sentinel does not know the name. */
static void l2__on_master(struct l2redis *r, struct l2node *from, const redisReply *rep)
{
    r->topo_inflight = false;
    if (r->destroying)
        return;
    r->topo_ms = loop_now_ms(r->loop);
    loop_timer_start(r->loop, &r->topo, L2REDIS_SENTINEL_POLL_MS);
    if (rep == NULL)
        return; /* the sentinel went away: the next poll asks another */
    char host[64];
    long port = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len > 0 &&
        rep->element[0]->len < sizeof(host))
        port = strtol(rep->element[1]->str, NULL, 10);
    if (port <= 0 || port > 65535) {
        l2__error(r, from);
        uint64_t suppressed = 0;
        if (log_limit_ok(&r->topo_limit, loop_now_ms(r->loop), L2REDIS_LOG_INTERVAL_MS,
                         &suppressed))
            ag_log(AG_LOG_WARN,
                   "cache l2: sentinel %s:%d does not name a primary for '%s': %s "
                   "(%llu similar messages suppressed)",
                   from->host, from->port, r->master,
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "no address",
                   (unsigned long long)suppressed);
        return;
    }
    memcpy(host, rep->element[0]->str, rep->element[0]->len);
    host[rep->element[0]->len] = '\0';
    struct l2node *p = r->nodes[0];
    if (p->port == (int)port && strcmp(p->host, host) == 0)
        return;
    if (p->port != 0)
        r->failovers++;
    if (p->port != 0)
        ag_log(AG_LOG_INFO,
               "cache l2: redis primary '%s' moved from %s:%d to %s:%ld (sentinel "
               "%s:%d)",
               r->master, p->host, p->port, host, port, from->host, from->port);
    else
        ag_log(AG_LOG_INFO, "cache l2: redis primary '%s' is %s:%ld (sentinel %s:%d)", r->master,
               host, port, from->host, from->port);
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->port = (int)port;
    l2__repoint(&p->cmd);
    if (r->on_msg != NULL)
        l2__repoint(&r->sub);
}

/* Asks a connected sentinel (each in turn) where the primary is. */
static void l2__ask_sentinel(struct l2redis *r)
{
    for (size_t i = 0; i < r->nsentinels; i++) {
        struct l2node *n = r->sentinels[(r->topo_next + i) % r->nsentinels];
        if (!l2__room(r, n))
            continue;
        r->topo_next = (r->topo_next + i + 1) % r->nsentinels;
        struct l2redis_req *q = xcalloc(1, sizeof(*q));
        q->r = r;
        q->to = n;
        q->max_objects = L2REDIS_MAX_OBJECTS;
        q->raw = l2__on_master;
        loop_timer_init(&q->timer, NULL, NULL);
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", r->master};
        size_t argl[3] = {8, 23, strlen(r->master)};
        redisAppendCommandArgv(n->cmd.c, 3, argv, argl);
        l2__push(&n->cmd, q);
        r->topo_inflight = true;
        return;
    }
    loop_timer_start(r->loop, &r->topo, L2REDIS_TOPO_RETRY_MS); /* no sentinel connected yet */
}

/* ---- lifetime ---- */

struct l2redis *l2redis_create(struct loop *loop, const struct l2redis_conf *conf,
                               const char *channel, l2redis_msg_cb *on_msg, void *msg_arg)
{
    struct l2redis *r = xcalloc(1, sizeof(*r));
    char err[256];
    r->loop = loop;
    r->cluster = strncmp(conf->url, L2REDIS_CLUSTER_SCHEME, strlen(L2REDIS_CLUSTER_SCHEME)) == 0;
    r->sentinel = strncmp(conf->url, L2REDIS_SENTINEL_SCHEME, strlen(L2REDIS_SENTINEL_SCHEME)) == 0;
    char hosts[L2REDIS_MAX_SEEDS][64];
    int ports[L2REDIS_MAX_SEEDS];
    int nseeds = 0;
    char host[256];
    int port;
    if (r->cluster)
        nseeds = l2redis_parse_seeds(conf->url, hosts, ports, L2REDIS_MAX_SEEDS, err, sizeof(err));
    else if (r->sentinel)
        nseeds = l2redis_parse_sentinels(conf->url, hosts, ports, L2REDIS_MAX_SEEDS, r->master,
                                         sizeof(r->master), err, sizeof(err));
    else if (l2redis_parse_url(conf->url, host, sizeof(host), &port, &r->db, err, sizeof(err)) ==
             -1)
        nseeds = -1;
    if (nseeds < 0) {
        ag_log(AG_LOG_ERROR, "cache l2: %s", err);
        free(r);
        return NULL;
    }
    r->resolve = conf->resolve;
    r->resolve_arg = conf->resolve_arg;
    r->timeout_ms = conf->timeout_ms ? conf->timeout_ms : 50;
    r->reconnect_ms = conf->reconnect_ms ? conf->reconnect_ms : 1000;
    r->max_reply = conf->max_reply > L2REDIS_MAX_REPLY ? conf->max_reply : L2REDIS_MAX_REPLY;
    r->channel = xstrdup(channel ? channel : "apigate:purge");
    r->on_msg = on_msg;
    r->msg_arg = msg_arg;
    if (r->cluster) {
        r->slots = xcalloc(L2REDIS_SLOTS, 1);
        r->slots_read = xcalloc(L2REDIS_SLOTS, 1);
        loop_timer_init(&r->topo, l2__topo_cb, r);
        for (int i = 0; i < nseeds; i++)
            l2__node(r, hosts[i], ports[i]);
    } else if (r->sentinel) {
        loop_timer_init(&r->topo, l2__topo_cb, r);
        struct l2node *p = xcalloc(1, sizeof(*p)); /* the primary, once they name it */
        l2__conn_init(r, &p->cmd, p, false);
        r->nodes[r->nnodes++] = p;
        for (int i = 0; i < nseeds; i++) {
            struct l2node *n = xcalloc(1, sizeof(*n));
            snprintf(n->host, sizeof(n->host), "%.63s", hosts[i]);
            n->port = ports[i];
            n->sentinel = true;
            l2__conn_init(r, &n->cmd, n, false);
            r->sentinels[r->nsentinels++] = n;
            l2__connect(&n->cmd);
        }
        l2__conn_init(r, &r->ssub, r->sentinels[0], true);
        l2__connect(&r->ssub);
    } else {
        l2__node(r, host, port);
    }
    l2__conn_init(r, &r->sub, r->nodes[0], true);
    if (on_msg != NULL)
        l2__connect(&r->sub);
    return r;
}

static void l2__free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2redis *r = arg;
    for (size_t i = 0; i < r->nnodes; i++) {
        free(r->nodes[i]->cmd.pend);
        free(r->nodes[i]);
    }
    for (size_t i = 0; i < r->nsentinels; i++) {
        free(r->sentinels[i]->cmd.pend);
        free(r->sentinels[i]);
    }
    free(r->slots);
    free(r->slots_read);
    free(r->channel);
    free(r);
}

void l2redis_destroy(struct l2redis *r)
{
    if (r == NULL)
        return;
    r->destroying = true;
    if (r->cluster || r->sentinel)
        loop_timer_stop(r->loop, &r->topo);
    for (size_t i = 0; i < r->nsentinels; i++) {
        loop_timer_stop(r->loop, &r->sentinels[i]->cmd.retry);
        l2__fail(&r->sentinels[i]->cmd, NULL, NULL);
    }
    if (r->sentinel) {
        loop_timer_stop(r->loop, &r->ssub.retry);
        l2__fail(&r->ssub, NULL, NULL);
    }
    for (size_t i = 0; i < r->nnodes; i++) {
        loop_timer_stop(r->loop, &r->nodes[i]->cmd.retry);
        l2__fail(&r->nodes[i]->cmd, NULL, NULL); /* pending lookups are answered with an error */
    }
    loop_timer_stop(r->loop, &r->sub.retry);
    l2__fail(&r->sub, NULL, NULL);
    /* after deferred flushes that may still name the connections */
    loop_defer(r->loop, l2__free_cb, r);
}

bool l2redis_connected(const struct l2redis *r)
{
    if (r == NULL)
        return false;
    if (!r->cluster)
        return r->nodes[0]->cmd.connected;
    if (r->slots_covered == 0)
        return false;
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->cmd.connected)
            return true;
    return false;
}
uint64_t l2redis_errors(const struct l2redis *r)
{
    return r != NULL ? r->errors : 0;
}
uint64_t l2redis_redirects(const struct l2redis *r)
{
    return r != NULL ? r->redirects : 0;
}

static void l2__view_node(const struct l2redis *r, const struct l2node *n, unsigned slots,
                          struct l2redis_view *v)
{
    if (n->port == 0)
        return; /* a primary the sentinels have not named yet */
    v->nodes++;
    v->connected += n->cmd.connected;
    if (v->n == L2REDIS_VIEW_NODES)
        return;
    struct l2redis_node_view *nv = &v->node[v->n++];
    if (n->port == -1)
        snprintf(nv->addr, sizeof(nv->addr), "%.71s", n->host);
    else
        snprintf(nv->addr, sizeof(nv->addr), "%.60s:%d", n->host, n->port);
    nv->role = n->sentinel ? "sentinel" : (!r->cluster || slots > 0) ? "primary" : "node";
    nv->connected = n->cmd.connected;
    nv->slots = slots;
    nv->errors = n->errors;
}

void l2redis_view(const struct l2redis *r, struct l2redis_view *v)
{
    memset(v, 0, sizeof(*v));
    v->mode = r->cluster ? "cluster" : r->sentinel ? "sentinel" : "single";
    v->slots_covered = r->slots_covered;
    v->failovers = r->failovers;
    v->redirects = r->redirects;
    v->errors = r->errors;
    unsigned slots[L2REDIS_MAX_NODES] = {0};
    for (size_t s = 0; r->cluster && s < L2REDIS_SLOTS; s++)
        if (r->slots[s] != 0 && r->slots[s] <= r->nnodes)
            slots[r->slots[s] - 1]++;
    for (size_t i = 0; i < r->nnodes; i++)
        l2__view_node(r, r->nodes[i], slots[i], v);
    for (size_t i = 0; i < r->nsentinels; i++)
        l2__view_node(r, r->sentinels[i], 0, v);
}

/* ---- commands ---- */

static void l2__on_timeout(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2redis_req *q = arg;
    if (q->answered || q->cancelled)
        return;
    q->answered = true;
    l2__error(q->r, q->to);
    l2__complain(q->r, q->to, "lookup timed out", "counted as a miss");
    q->cb(q->arg, L2REDIS_ERROR, NULL, NULL, 0);
}

/* The node for a command on <key> (NULL: any connected node); NULL when nobody serves it now
 * (then the slot map is asked for soon). */
static struct l2node *l2__route(struct l2redis *r, const char *key, size_t klen)
{
    if (!r->cluster)
        return r->nodes[0];
    if (key == NULL) {
        for (size_t i = 0; i < r->nnodes; i++)
            if (r->nodes[i]->cmd.connected)
                return r->nodes[i];
        return NULL;
    }
    uint8_t idx = r->slots[l2redis_slot(key, klen)];
    if (idx == 0 || idx > r->nnodes) {
        l2__topo_soon(r);
        return NULL;
    }
    return r->nodes[idx - 1];
}

/* Sends a command on <key>'s node; its reply goes to <cb> (NULL: only checked). */
static struct l2redis_req *l2__request(struct l2redis *r, int argc, const char **argv,
                                       const size_t *argl, int key_arg, size_t max_n,
                                       l2redis_get_cb *cb, void *arg)
{
    struct l2node *node =
        l2__route(r, key_arg >= 0 ? argv[key_arg] : NULL, key_arg >= 0 ? argl[key_arg] : 0);
    if (!l2__room(r, node)) {
        l2__error(r, node);
        return NULL;
    }
    struct l2redis_req *q = xcalloc(1, sizeof(*q));
    q->r = r;
    q->to = node;
    q->max_n = max_n;
    q->max_objects = max_n + 1 > L2REDIS_MAX_OBJECTS ? (unsigned)max_n + 1 : L2REDIS_MAX_OBJECTS;
    q->cb = cb;
    q->arg = arg;
    loop_timer_init(&q->timer, l2__on_timeout, q);
    int rc;
    if (r->cluster) { /* kept for a redirect */
        char *cmd = NULL;
        int len = redisFormatCommandArgv(&cmd, argc, argv, argl);
        rc = len < 0 ? REDIS_ERR : redisAppendFormattedCommand(node->cmd.c, cmd, (size_t)len);
        if (len >= 0) { /* hiredis's buffer is ours now (redisFreeCommand is free) */
            q->cmd = cmd;
            q->cmdlen = (size_t)len;
        }
    } else {
        rc = redisAppendCommandArgv(node->cmd.c, argc, argv, argl);
    }
    if (rc != REDIS_OK) {
        l2__error(r, node);
        l2__req_free(q);
        return NULL;
    }
    l2__push(&node->cmd, q);
    if (cb != NULL)
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
    return l2__request(r, (int)n + 1, argv, argl, 1, 4, cb, arg);
}

struct l2redis_req *l2redis_command(struct l2redis *r, int argc, const char **argv,
                                    const size_t *argl, int key_arg, size_t max_n,
                                    l2redis_get_cb *cb, void *arg)
{
    if (r == NULL || argc < 1 || key_arg >= argc || max_n > L2REDIS_MAX_ELEMENTS || cb == NULL)
        return NULL;
    return l2__request(r, argc, argv, argl, key_arg, max_n < 5 ? 5 : max_n, cb, arg);
}

int l2redis_send(struct l2redis *r, int argc, const char **argv, const size_t *argl, int key_arg)
{
    if (r == NULL || argc < 1 || key_arg >= argc)
        return -1;
    return l2__request(r, argc, argv, argl, key_arg, 0, NULL, NULL) != NULL ? 0 : -1;
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
    if (r == NULL || ttl_ms == 0)
        return;
    char ttl[32];
    int tl = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    const char *argv[5] = {"SET", key, val, "PX", ttl};
    size_t argl[5] = {3, klen, vlen, 2, (size_t)tl};
    l2redis_send(r, 5, argv, argl, 1);
}

void l2redis_publish(struct l2redis *r, const char *channel, const char *msg, size_t len)
{
    const char *argv[3] = {"PUBLISH", channel, msg};
    size_t argl[3] = {7, strlen(channel), len};
    if (r != NULL)
        l2redis_send(r, 3, argv, argl, -1);
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

/* One command of l2redis_agree on a cluster: sent to <host>:<port>, following MOVED/ASK (each
 * hop its own bounded connection). NULL with <err> set on any failure. */
static redisReply *l2__blocking_cluster(char *host, size_t hostlen, int *port, struct timeval tv,
                                        int argc, const char **argv, const size_t *argl, char *err,
                                        size_t errlen)
{
    bool asking = false;
    for (int hop = 0; hop <= L2REDIS_MAX_REDIRECTS; hop++) {
        redisContext *c = redisConnectWithTimeout(host, *port, tv);
        if (c == NULL || c->err) {
            snprintf(err, errlen, "connect %s:%d: %s", host, *port,
                     c ? c->errstr : "out of memory");
            redisFree(c);
            return NULL;
        }
        redisReply *rep = NULL;
        if (redisSetTimeout(c, tv) != REDIS_OK) {
            snprintf(err, errlen, "cannot set a timeout");
            redisFree(c);
            return NULL;
        }
        if (asking) {
            redisReply *ok = redisCommand(c, "ASKING");
            freeReplyObject(ok);
        }
        rep = redisCommandArgv(c, argc, argv, argl);
        if (rep == NULL) {
            snprintf(err, errlen, "%s: %s", argv[0], c->errstr[0] ? c->errstr : "no reply");
            redisFree(c);
            return NULL;
        }
        redisFree(c);
        if (rep->type != REDIS_REPLY_ERROR)
            return rep;
        unsigned slot;
        int kind = l2redis_parse_redirect(rep->str, (size_t)rep->len, &slot, host, hostlen, port);
        if (kind <= 0) {
            snprintf(err, errlen, "%s: %.*s", argv[0], (int)(rep->len < 200 ? rep->len : 200),
                     rep->str ? rep->str : "");
            freeReplyObject(rep);
            return NULL;
        }
        freeReplyObject(rep);
        asking = kind == L2REDIS_ASK;
    }
    snprintf(err, errlen, "%s: redirected more than %d times", argv[0], L2REDIS_MAX_REDIRECTS);
    return NULL;
}

/* The primary's URL (redis://ip:port) as the first sentinel that answers names it (blocking,
 * each step bounded by <tv>); 0, or -1 with <err> set. */
static int l2__sentinel_primary(const char *surl, struct timeval tv, char *url, size_t urllen,
                                char *err, size_t errlen)
{
    char hosts[L2REDIS_MAX_SEEDS][64], master[129];
    int ports[L2REDIS_MAX_SEEDS];
    int n = l2redis_parse_sentinels(surl, hosts, ports, L2REDIS_MAX_SEEDS, master, sizeof(master),
                                    err, errlen);
    for (int i = 0; i < n; i++) {
        redisContext *c = redisConnectWithTimeout(hosts[i], ports[i], tv);
        if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
            snprintf(err, errlen, "sentinel %s:%d: %s", hosts[i], ports[i],
                     c ? c->errstr : "out of memory");
            redisFree(c);
            continue;
        }
        redisReply *rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", master);
        int rc = -1;
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len < 64) {
            snprintf(url, urllen, "redis://%s:%s", rep->element[0]->str, rep->element[1]->str);
            rc = 0;
        } else {
            snprintf(err, errlen, "sentinel %s:%d names no primary for '%s'", hosts[i], ports[i],
                     master);
        }
        freeReplyObject(rep);
        redisFree(c);
        if (rc == 0)
            return 0;
    }
    return -1;
}

/* l2redis_agree on a cluster: each seed in turn until one answers. */
static long l2__agree_cluster(const struct l2redis_conf *conf, const char *key,
                              const char *proposal, size_t plen, char *out, size_t outlen,
                              size_t minlen, struct timeval tv, char *err, size_t errlen)
{
    char hosts[L2REDIS_MAX_SEEDS][64];
    int ports[L2REDIS_MAX_SEEDS];
    int n = l2redis_parse_seeds(conf->url, hosts, ports, L2REDIS_MAX_SEEDS, err, errlen);
    for (int i = 0; i < n; i++) {
        char host[64];
        int port = ports[i];
        snprintf(host, sizeof(host), "%s", hosts[i]);
        const char *set[] = {"SET", key, proposal, "NX"};
        size_t setl[] = {3, strlen(key), plen, 2};
        redisReply *rep =
            l2__blocking_cluster(host, sizeof(host), &port, tv, 4, set, setl, err, errlen);
        if (rep == NULL)
            continue;
        freeReplyObject(rep); /* OK (ours is set) or nil (another's is): GET tells which */
        const char *get[] = {"GET", key};
        size_t getl[] = {3, strlen(key)};
        rep = l2__blocking_cluster(host, sizeof(host), &port, tv, 2, get, getl, err, errlen);
        if (rep == NULL)
            continue;
        long len = -1;
        if (rep->type != REDIS_REPLY_STRING || rep->len < minlen || rep->len > outlen) {
            snprintf(err, errlen, "GET %s: not a value of %zu to %zu bytes", key, minlen, outlen);
        } else {
            memcpy(out, rep->str, rep->len);
            len = (long)rep->len;
        }
        freeReplyObject(rep);
        return len;
    }
    return -1;
}

long l2redis_agree(const struct l2redis_conf *conf, const char *key, const char *proposal,
                   size_t plen, char *out, size_t outlen, size_t minlen, uint64_t timeout_ms,
                   char *err, size_t errlen)
{
    struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                         .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
    if (strncmp(conf->url, L2REDIS_CLUSTER_SCHEME, strlen(L2REDIS_CLUSTER_SCHEME)) == 0)
        return l2__agree_cluster(conf, key, proposal, plen, out, outlen, minlen, tv, err, errlen);
    if (strncmp(conf->url, L2REDIS_SENTINEL_SCHEME, strlen(L2REDIS_SENTINEL_SCHEME)) == 0) {
        /* the sentinels name the primary, then as with one Redis */
        char url[128];
        if (l2__sentinel_primary(conf->url, tv, url, sizeof(url), err, errlen) == -1)
            return -1;
        struct l2redis_conf pc = {.url = url};
        return l2redis_agree(&pc, key, proposal, plen, out, outlen, minlen, timeout_ms, err,
                             errlen);
    }
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
